//! Consumer processes of the scale-out scenarios (redis-scale-out,
//! sql-scale-out, nats-scale-out): this binary started again with a
//! scenario's environment variable set to the consumer's name. Each says
//! `ready` on stdout once its listener is registered; when its stdin closes
//! it stops and prints the event ids it handled, one per line.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use soiree::{EventBus, EventContext, EventQueue, EventStore, MetricsRegistry};

use super::report::Report;
use crate::error::{Error, Result};

/// How many consumer processes a scale-out scenario starts.
pub(super) const CONSUMERS: usize = 3;

/// The most time a scale-out scenario waits for the consumers.
const LIMIT: Duration = Duration::from_secs(600);

/// A scenario failure that is not the bus's own.
pub(super) fn failed(what: impl std::fmt::Display) -> Error {
    Error::Bus(soiree::Error::store(what.to_string()))
}

/// The consumer processes; killed if still running when dropped.
pub(super) struct Consumers(Vec<(Child, BufReader<ChildStdout>)>);

impl Consumers {
    /// Starts [`CONSUMERS`] processes named `consumer-N` in `name_env`, with
    /// `env` beside it, and waits until each says `ready`.
    pub(super) fn start(name_env: &str, env: &[(&str, &str)]) -> Result<Self> {
        super::progress::say(&format!("starting {CONSUMERS} consumer processes …"));
        let mut consumers = Self(Vec::new());
        for i in 0..CONSUMERS {
            let mut child = Command::new(std::env::current_exe()?)
                .env(name_env, format!("consumer-{i}"))
                .envs(env.iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| failed("no consumer stdout"))?;
            consumers.0.push((child, BufReader::new(stdout)));
        }
        let ready = tokio::task::block_in_place(|| {
            consumers.0.iter_mut().all(|(_, out)| {
                let mut line = String::new();
                out.read_line(&mut line).is_ok() && line.trim() == "ready"
            })
        });
        if !ready {
            return Err(failed("a consumer process did not start"));
        }
        Ok(consumers)
    }

    /// Closes every consumer's stdin, then reads the ids it handled.
    pub(super) fn collect(&mut self) -> Result<Vec<Vec<String>>> {
        tokio::task::block_in_place(|| {
            for (child, _) in &mut self.0 {
                drop(child.stdin.take());
            }
            let mut handled = Vec::new();
            for (child, out) in &mut self.0 {
                let ids: Vec<String> = out.lines().map_while(|line| line.ok()).collect();
                let status = child.wait()?;
                if !status.success() {
                    return Err(failed(format!("a consumer process failed: {status}")));
                }
                handled.push(ids);
            }
            Ok(handled)
        })
    }
}

impl Drop for Consumers {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Waits until `store`'s group has nothing undelivered or unacknowledged,
/// at most [`LIMIT`] from `start`; the time since `start` then.
pub(super) async fn until_drained(store: &impl EventQueue, start: Instant) -> Result<Duration> {
    let deadline = start + LIMIT;
    while store.backlog().await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(start.elapsed())
}

/// The producer of the Redis and NATS scale-out scenarios: `n` events of
/// `topic` emitted without awaiting from a bus of `workers` over `store`
/// that consumes nothing, timed from the first emit until the consumers
/// drained the group ([`until_drained`]).
pub(super) async fn emit_and_drain<S>(
    store: &S,
    workers: usize,
    topic: &str,
    n: u64,
) -> Result<Duration>
where
    S: EventStore + EventQueue + Clone + 'static,
{
    let producer = EventBus::builder()
        .store(store.clone())
        .workers(workers)
        .consume(false)
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let start = Instant::now();
    for i in 0..n {
        producer.emit_async(topic, i).await.detach();
    }
    producer.wait_for_idle().await;
    let elapsed = until_drained(store, start).await?;
    producer.close().await?;
    Ok(elapsed)
}

/// The scenario's counts and checks of what the consumers handled: the
/// backlog left (none), every consumer took part, every event handled
/// exactly once.
pub(super) fn check_drained(
    report: Report,
    handled: &[Vec<String>],
    n: u64,
    backlog: u64,
) -> Report {
    check_handled(report.count("backlog", backlog), handled, n)
        .check(backlog == 0, || format!("{backlog} events left pending"))
}

/// The counts and checks of what the consumers handled: every one took
/// part, every event handled exactly once.
fn check_handled(report: Report, handled: &[Vec<String>], n: u64) -> Report {
    let total = handled.iter().map(Vec::len).sum::<usize>() as u64;
    let distinct = handled.iter().flatten().collect::<HashSet<_>>().len() as u64;
    let mut report = report
        .count("consumers", CONSUMERS as u64)
        .count("handled", total)
        .count("distinct", distinct);
    for (i, ids) in handled.iter().enumerate() {
        report = report.check(!ids.is_empty(), || format!("consumer-{i} handled nothing"));
    }
    report.check(total == n && distinct == n, || {
        format!("{total} handlings of {distinct} distinct events for {n} emitted")
    })
}

/// Runs this process as a consumer when `name_env` is set: `consume` gets
/// the consumer's name; `None` when not started as one.
pub(super) fn run_as_consumer<F, Fut>(name_env: &str, consume: F) -> Option<ExitCode>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let name = std::env::var(name_env).ok()?;
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::from)
        .and_then(|runtime| {
            let consuming = consume(name);
            runtime
                .block_on(async move { tokio::spawn(consuming).await })
                .map_err(failed)?
        });
    Some(match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("consumer: {err}");
            ExitCode::FAILURE
        }
    })
}

/// The event ids a consumer handled.
pub(super) type Handled = Arc<Mutex<Vec<String>>>;
/// What the recording listener returns.
type Outcome = futures::future::Ready<Result<(), soiree::BoxError>>;

/// A listener that records the ids of the events it handles.
pub(super) fn recorder() -> (
    Handled,
    impl Fn(EventContext) -> Outcome + Send + Sync + 'static,
) {
    let handled = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&handled);
    let listener = move |ctx: EventContext| {
        if let (Some(id), Ok(mut handled)) = (ctx.event_id(), record.lock()) {
            handled.push(id);
        }
        futures::future::ready(Ok(()))
    };
    (handled, listener)
}

/// Says `ready`, consumes until the parent closes stdin, closes the bus and
/// prints the recorded ids.
pub(super) async fn serve(bus: EventBus, handled: Handled) -> Result<()> {
    println!("ready");
    std::io::stdout().flush()?;
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await
        .map_err(failed)??;
    bus.close().await?;
    let handled = handled.lock().map_err(|_| failed("poisoned"))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for id in handled.iter() {
        writeln!(out, "{id}")?;
    }
    out.flush()?;
    Ok(())
}
