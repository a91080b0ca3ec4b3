//! Metrics: a bus reporting to its own Prometheus registry, and a typed topic
//! whose listeners are timed by operation, origin and outcome. Prints the
//! Prometheus text exposition.

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use soiree::{
    EventBus, EventContext, MetricsRegistry, ObservabilitySpec, TypedTopic, bind_listener,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signup {
    email: String,
    plan: String,
}

#[tokio::main]
async fn main() -> soiree::Result<()> {
    // Without `metrics_registry` the bus reports to MetricsRegistry::global().
    let registry = MetricsRegistry::new();
    let bus = EventBus::builder()
        .metrics_registry(registry.clone())
        .pool_name("signups")
        .build()?;

    // The spec labels this topic's listener timings; the trigger becomes a
    // field of the `soiree.observed` tracing span.
    let signups = TypedTopic::<Signup>::new("user.signup").with_observability(
        ObservabilitySpec::new("handle_signup", "listeners")
            .with_trigger(|_ctx, signup: &Signup| format!("plan:{}", signup.plan)),
    );
    bind_listener(&signups, |_ctx: EventContext, signup: Signup| async move {
        if signup.plan == "legacy" {
            return Err(format!("plan {} is retired", signup.plan).into());
        }
        Ok(())
    })
    .register(&bus)?;
    bus.start()?;

    for (email, plan) in [
        ("ada@example.com", "pro"),
        ("alan@example.com", "free"),
        ("grace@example.com", "legacy"),
    ] {
        let event = signups.wrap(Signup {
            email: email.into(),
            plan: plan.into(),
        })?;
        let errors: Vec<soiree::Error> = bus.emit(signups.name(), event).collect().await;
        for err in errors {
            println!("# listener error (counted as outcome=\"error\"): {err}");
        }
    }
    bus.wait_for_idle().await;

    // soiree_pool_tasks_* {pool="signups"} and
    // soiree_listener_duration_seconds{operation,origin,outcome}.
    print!("{}", registry.encode());
    bus.close().await
}
