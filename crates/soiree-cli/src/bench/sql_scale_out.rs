//! sql-scale-out: sql-outbox with three consumer processes sharing one
//! consumer group on PostgreSQL; this process only emits (transactions of
//! 100 from 4 concurrent tasks).
//!
//! The consumers are this binary again, started with
//! `SOIREE_BENCH_SQL_CONSUMER` set (see [`consumer_process`]): each says
//! `ready` once its listener is registered, and when its stdin closes it
//! stops and prints the event ids it handled, one per line. Timed from the
//! first emit until the group's backlog is empty; checked: every event id
//! handled exactly once over all consumers.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use soiree::{EventBus, EventQueue, MetricsRegistry};
use soiree_sql::PostgresStore;

use super::report::Report;
use super::scenario::{Needs, Scenario, Setup};
use super::sql_outbox::{Outbox, bench_schema, drop_schema, store_error};
use crate::error::{Error, Result};

pub(super) const SCENARIO: Scenario = Scenario {
    name: "sql-scale-out",
    default_n: 50_000,
    needs: Needs::Postgres,
    run: |setup| run(setup).boxed(),
};

const TOPIC: &str = "order.paid";
const CONSUMERS: usize = 3;
const PRODUCERS: u64 = 4;
const PER_TX: u64 = 100;
const CONSUMER_ENV: &str = "SOIREE_BENCH_SQL_CONSUMER";
const URL_ENV: &str = "SOIREE_BENCH_POSTGRES";
const SCHEMA_ENV: &str = "SOIREE_BENCH_SCHEMA";
const LIMIT: Duration = Duration::from_secs(600);

fn failed(what: impl std::fmt::Display) -> Error {
    Error::Bus(soiree::Error::store(what.to_string()))
}

async fn run(setup: Setup) -> Result<Report> {
    let url = setup.postgres.clone().unwrap_or_default();
    let schema = bench_schema();
    let store = PostgresStore::builder(&url)
        .schema(&schema)
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .map_err(store_error)?;
    let report = measure(&setup, &store, &url, &schema).await;
    drop_schema(&store, &schema).await;
    report
}

async fn measure(setup: &Setup, store: &PostgresStore, url: &str, schema: &str) -> Result<Report> {
    let mut consumers = Consumers(Vec::new());
    for i in 0..CONSUMERS {
        let mut child = Command::new(std::env::current_exe()?)
            .env(CONSUMER_ENV, format!("consumer-{i}"))
            .env(URL_ENV, url)
            .env(SCHEMA_ENV, schema)
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

    let n = setup.n;
    let outbox = Outbox::Postgres(store.clone());
    let start = Instant::now();
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let outbox = outbox.clone();
        producers.push(tokio::spawn(async move {
            let mine: Vec<u64> = (0..n).filter(|i| i % PRODUCERS == producer).collect();
            for chunk in mine.chunks(PER_TX as usize) {
                let batch = chunk.iter().map(|&i| (TOPIC, i)).collect();
                outbox.emit_batch(batch).await?;
            }
            Ok::<_, soiree_sql::Error>(())
        }));
    }
    for producer in producers {
        producer.await.map_err(failed)?.map_err(store_error)?;
    }
    let emitted = start.elapsed();
    let deadline = start + LIMIT;
    while store.backlog().await? > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let backlog = store.backlog().await?;

    let handled = tokio::task::block_in_place(|| consumers.collect())?;
    let total: usize = handled.iter().map(Vec::len).sum();
    let distinct: HashSet<&String> = handled.iter().flatten().collect();
    let distinct = distinct.len() as u64;
    let mut report = Report::new(setup, elapsed, n)
        .figure("emit_seconds", emitted.as_secs_f64(), 4)
        .count("consumers", CONSUMERS as u64)
        .count("handled", total as u64)
        .count("distinct", distinct)
        .count("backlog", backlog);
    for (i, ids) in handled.iter().enumerate() {
        report = report.check(!ids.is_empty(), || format!("consumer-{i} handled nothing"));
    }
    Ok(report
        .check(total as u64 == n && distinct == n, || {
            format!("{total} handlings of {distinct} distinct events for {n} emitted")
        })
        .check(backlog == 0, || format!("{backlog} events left pending")))
}

/// The consumer processes; killed if still running when dropped.
struct Consumers(Vec<(Child, BufReader<std::process::ChildStdout>)>);

impl Consumers {
    /// Closes every consumer's stdin, then reads the ids it handled.
    fn collect(&mut self) -> Result<Vec<Vec<String>>> {
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

/// Runs this process as a sql-scale-out consumer when started as one;
/// `None` otherwise.
pub(crate) fn consumer_process() -> Option<ExitCode> {
    let name = std::env::var(CONSUMER_ENV).ok()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(async move { tokio::spawn(consume(name)).await }),
        Err(err) => {
            eprintln!("consumer: {err}");
            return Some(ExitCode::FAILURE);
        }
    };
    Some(match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(err)) => {
            eprintln!("consumer: {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("consumer: {err}");
            ExitCode::FAILURE
        }
    })
}

async fn consume(name: String) -> Result<()> {
    let url = std::env::var(URL_ENV).map_err(failed)?;
    let schema = std::env::var(SCHEMA_ENV).map_err(failed)?;
    let store = PostgresStore::builder(&url)
        .schema(schema)
        .consumer(name)
        .metrics_registry(MetricsRegistry::new())
        .build()
        .await
        .map_err(store_error)?;
    let bus = EventBus::builder()
        .store(store)
        .metrics_registry(MetricsRegistry::new())
        .build()?;
    let handled = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&handled);
    bus.on_named("bench", TOPIC, move |ctx| {
        if let (Some(id), Ok(mut handled)) = (ctx.event_id(), record.lock()) {
            handled.push(id);
        }
        futures::future::ready(Ok(()))
    })?;
    println!("ready");
    std::io::stdout().flush()?;
    // Runs until the parent closes stdin.
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
