//! The worker pool on its own: at most `workers` tasks at once, resizable
//! while running, with panics caught per task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{Pool, PoolOptions};

/// Counts running tasks and remembers the most seen at once.
#[derive(Debug, Default)]
struct Gauge {
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    async fn work(&self, millis: u64) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    fn take_peak(&self) -> usize {
        self.peak.swap(0, Ordering::SeqCst)
    }
}

#[tokio::main]
async fn main() -> soiree::Result<()> {
    let pool = Pool::new(PoolOptions::default().workers(2).name("example"))?;
    let gauge = Arc::new(Gauge::default());

    // submit: fire and forget; wait_for_idle waits for everything submitted.
    for _ in 0..6 {
        let gauge = Arc::clone(&gauge);
        pool.submit(async move { gauge.work(20).await })?;
    }
    pool.wait_for_idle().await;
    println!(
        "{} workers: at most {} tasks ran at once",
        pool.workers(),
        gauge.take_peak()
    );

    // resize while running: more workers start when work is queued.
    pool.resize(4)?;
    let tasks = (0..8).map(|_| {
        let gauge = Arc::clone(&gauge);
        async move { gauge.work(20).await }
    });
    // submit_all_and_wait: submit a batch and wait for exactly that batch.
    pool.submit_all_and_wait(tasks).await?;
    println!(
        "{} workers: at most {} tasks ran at once",
        pool.workers(),
        gauge.take_peak()
    );

    // A panicking task is caught; the batch reports it, the others finish.
    let finished = Arc::new(AtomicUsize::new(0));
    let batch = (0..3).map(|i| {
        let finished = Arc::clone(&finished);
        async move {
            if i == 1 {
                panic!("task {i} is broken");
            }
            finished.fetch_add(1, Ordering::SeqCst);
        }
    });
    std::panic::set_hook(Box::new(|_| {})); // the result below reports it
    let outcome = pool.submit_all_and_wait(batch).await;
    let _ = std::panic::take_hook();
    println!(
        "batch with a panic: {outcome:?}, {} tasks finished",
        finished.load(Ordering::SeqCst)
    );

    // release: stop accepting work and wait for what is queued.
    pool.release().await;
    match pool.submit(async {}) {
        Err(err) => println!("submit after release: {err}"),
        Ok(()) => println!("submit after release unexpectedly succeeded"),
    }
    Ok(())
}
