//! Criterion benches for profiling the hot paths; `soiree-bench` (crate
//! soiree-bench) holds the suite's scenarios and their figures.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use soiree::{EventBus, MetricsRegistry, topic_matches};

fn matching(c: &mut Criterion) {
    c.bench_function("topic_matches/globstar", |b| {
        b.iter(|| topic_matches(black_box("event.**.run"), black_box("event.some.thing.run")));
    });
    // The longest topic a bus accepts, against two `**`: no match, so the
    // whole topic is scanned.
    let long = long_topic();
    c.bench_function("topic_matches/256_segments_two_globstars", |b| {
        b.iter(|| topic_matches(black_box("a.**.x.**.b"), black_box(&long)));
    });
}

/// 256 segments of `a`, as many as a topic may have.
fn long_topic() -> String {
    vec!["a"; 256].join(".")
}

fn routing(c: &mut Criterion) {
    let bus = EventBus::builder()
        .metrics_registry(MetricsRegistry::new())
        .build()
        .expect("default options are valid");
    for i in 0..333 {
        for pattern in [
            format!("svc{i}.user.created"),
            format!("svc{i}.*.created"),
            format!("svc{i}.**"),
        ] {
            bus.on(&pattern, |_ctx| async { Ok(()) })
                .expect("valid pattern");
        }
    }
    // The route cache answers after the first lookup of each topic.
    c.bench_function("interested_in/1k_patterns", |b| {
        b.iter(|| bus.interested_in(black_box("svc7.user.created")));
    });

    // A cache miss: the trie walk itself, on a long topic with several `**`
    // patterns active at every segment. Registering and removing a listener
    // (untimed) clears the cache before each lookup.
    for pattern in ["**.x.**.b", "a.**.a.**.c", "**.a.*.**", "a.**"] {
        bus.on(pattern, |_ctx| async { Ok(()) })
            .expect("valid pattern");
    }
    let long = long_topic();
    c.bench_function("route_miss/256_segments_globstars", |b| {
        b.iter_batched(
            || {
                let id = bus.on("unrelated", |_ctx| async { Ok(()) }).expect("valid");
                bus.off("unrelated", &id).expect("registered");
            },
            |()| bus.interested_in(black_box(&long)),
            BatchSize::PerIteration,
        );
    });
}

fn emitting(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let bus = EventBus::builder()
        .metrics_registry(MetricsRegistry::new())
        .build()
        .expect("default options are valid");
    bus.on("user.created", |_ctx| async { Ok(()) })
        .expect("valid pattern");
    // Timed inside a spawned task, as a tokio service emits: a round trip
    // from the thread that calls `block_on` would time a thread wake-up.
    c.bench_function("emit/round_trip", |b| {
        b.iter_custom(|iterations| {
            let bus = bus.clone();
            let task = runtime.spawn(async move {
                let start = std::time::Instant::now();
                for i in 0..iterations {
                    let errors: Vec<_> = bus.emit("user.created", i).collect().await;
                    black_box(errors);
                }
                start.elapsed()
            });
            runtime.block_on(task).expect("the timing task ran")
        });
    });
}

criterion_group!(benches, matching, routing, emitting);
criterion_main!(benches);
