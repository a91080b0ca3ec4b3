//! nats-durable and nats-durable-r3: a NATS JetStream store (one
//! throwaway nats-server, or a 3-server cluster with R3 streams), one
//! counting listener; N events emitted without awaiting, timed until every
//! one is handled and nothing is left pending. Paired in the same run with
//! a probe of bare async-nats doing the minimal cycle (publish awaiting its
//! ack, pipelined; fetch; ack) on a stream of its own, so that the store's
//! figure reads as a share of what the client and server can do.

use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use soiree::EventQueue;
use soiree_nats::NatsStore;

use super::bus::count_through;
use super::redis_durable::REDIS_WORKERS;
use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use crate::error::{Error, Result};

pub(super) const NATS_DURABLE: Scenario = Scenario {
    name: "nats-durable",
    default_n: 20_000,
    needs: Needs::Nats,
    run: |setup| run(setup, false).boxed(),
};

pub(super) const NATS_DURABLE_R3: Scenario = Scenario {
    name: "nats-durable-r3",
    default_n: 20_000,
    needs: Needs::Nats,
    run: |setup| run(setup, true).boxed(),
};

const TOPIC: &str = "user.created";

/// Publishes awaiting their ack at once, in the probe (the store's default).
const PROBE_IN_FLIGHT: usize = 1024;

/// Messages per fetch in the probe (the bus's read-ahead is of this order).
const PROBE_BATCH: usize = 100;

fn io(err: impl std::fmt::Display) -> Error {
    Error::Bus(soiree::Error::store(err.to_string()))
}

async fn run(setup: Setup, cluster: bool) -> Result<Report> {
    // The servers live as long as the run; starting them blocks.
    let (url, replicas, mut single, mut cluster) = if cluster {
        let started = tokio::task::spawn_blocking(soiree_test::nats::NatsCluster::start)
            .await
            .map_err(io)?
            .map_err(io)?;
        (started.url(), 3, None, Some(started))
    } else {
        let started = tokio::task::spawn_blocking(soiree_test::nats::NatsServer::start)
            .await
            .map_err(io)?
            .map_err(io)?;
        (started.url(), 1, Some(started), None)
    };
    let before = server_msgs(&mut single, &mut cluster);
    let probe = probe(&url, replicas, setup.n).await?;
    let probe_msgs = server_msgs(&mut single, &mut cluster).saturating_sub(before);

    let store = NatsStore::builder(&url)
        .prefix("bench")
        .replicas(replicas)
        .build()
        .await
        .map_err(|err| Error::Bus(err.into()))?;
    let before = server_msgs(&mut single, &mut cluster);
    let (elapsed, calls) = count_through(&store, REDIS_WORKERS, TOPIC, setup.n).await?;
    let msgs = server_msgs(&mut single, &mut cluster).saturating_sub(before);
    let backlog = store.backlog().await?;
    let rate = setup.n as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    Ok(Report::new(&setup, elapsed, setup.n)
        .count("replicas", replicas as u64)
        .count("probe_per_sec", probe as u64)
        .figure("of_probe", rate / probe.max(f64::EPSILON), 2)
        .figure("msgs_per_event", msgs as f64 / setup.n.max(1) as f64, 1)
        .figure(
            "probe_msgs_per_event",
            probe_msgs as f64 / setup.n.max(1) as f64,
            1,
        )
        .count("backlog", backlog)
        .check(calls == setup.n, || {
            format!("the listener ran {calls} times for {} events", setup.n)
        })
        .check(backlog == 0, || format!("{backlog} events left pending")))
}

/// The messages the servers took in and sent out so far (`/varz`
/// `in_msgs` + `out_msgs`, summed over the servers, routes included): the
/// difference over a phase, per event, is what one event costs the
/// servers. 0 when a server does not answer.
fn server_msgs(
    single: &mut Option<soiree_test::nats::NatsServer>,
    cluster: &mut Option<soiree_test::nats::NatsCluster>,
) -> u64 {
    let varz = |server: &soiree_test::nats::NatsServer| {
        let body = server.monitor("/varz").unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        ["in_msgs", "out_msgs"]
            .iter()
            .map(|key| json[key].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    match (single, cluster) {
        (Some(server), _) => varz(server),
        (None, Some(cluster)) => (0..soiree_test::nats::CLUSTER_SIZE)
            .map(|i| varz(cluster.server(i)))
            .sum(),
        (None, None) => 0,
    }
}

/// Events per second of the minimal JetStream cycle with async-nats alone:
/// publish `n` messages awaiting each ack (at most [`PROBE_IN_FLIGHT`] in
/// flight), while a durable pull consumer fetches and acks them.
async fn probe(url: &str, replicas: usize, n: u64) -> Result<f64> {
    use async_nats::jetstream::{self, consumer, stream};
    let urls: Vec<&str> = url.split(',').collect();
    let client = async_nats::connect(&urls[..]).await.map_err(io)?;
    let js = jetstream::new(client);
    let events = js
        .create_stream(stream::Config {
            name: "PROBE".into(),
            subjects: vec!["probe.>".into()],
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(io)?;
    let consumer: consumer::PullConsumer = events
        .create_consumer(consumer::pull::Config {
            durable_name: Some("probe".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .map_err(io)?;
    let start = Instant::now();
    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            let mut acks = futures::stream::FuturesUnordered::new();
            for i in 0..n {
                if acks.len() >= PROBE_IN_FLIGHT
                    && let Some(done) = acks.next().await
                {
                    done?;
                }
                let ack = js
                    .publish("probe.user.created", i.to_string().into())
                    .await?;
                acks.push(ack.into_future());
            }
            while let Some(done) = acks.next().await {
                done?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
    };
    let mut handled = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while handled < n && Instant::now() < deadline {
        let mut batch = consumer
            .batch()
            .max_messages(PROBE_BATCH)
            .expires(Duration::from_millis(100))
            .messages()
            .await
            .map_err(io)?;
        while let Some(message) = batch.next().await {
            message.map_err(io)?.ack().await.map_err(io)?;
            handled += 1;
        }
    }
    publisher.await.map_err(io)?.map_err(io)?;
    let elapsed = start.elapsed();
    if handled < n {
        return Err(io(format!("the probe handled {handled} of {n} in time")));
    }
    Ok(n as f64 / elapsed.as_secs_f64().max(f64::EPSILON))
}
