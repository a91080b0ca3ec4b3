//! The standalone worker pool: submitting, waiting, resizing while busy,
//! releasing, panics, and its six Prometheus metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use soiree::{Error, MetricsRegistry, Pool, PoolOptions};
use tokio::sync::Semaphore;

/// Tasks that count themselves in and out, record the most running at
/// once, and wait for a permit from the test before finishing.
#[derive(Default)]
struct Tracker {
    running: AtomicUsize,
    max: AtomicUsize,
    done: AtomicUsize,
}

impl Tracker {
    fn task(self: &Arc<Self>, gate: &Arc<Semaphore>) -> impl Future<Output = ()> + Send + 'static {
        let (tracker, gate) = (Arc::clone(self), Arc::clone(gate));
        async move {
            let now = tracker.running.fetch_add(1, Ordering::SeqCst) + 1;
            tracker.max.fetch_max(now, Ordering::SeqCst);
            gate.acquire().await.expect("gate open").forget();
            tracker.running.fetch_sub(1, Ordering::SeqCst);
            tracker.done.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until `n` tasks have finished.
    async fn until_done(&self, n: usize) {
        let reached = tokio::time::timeout(Duration::from_secs(10), async {
            while self.done() < n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(reached.is_ok(), "{} done, expected {n}", self.done());
    }

    /// Waits (bounded) until exactly `n` tasks are running.
    async fn until_running(&self, n: usize) {
        let reached = tokio::time::timeout(Duration::from_secs(10), async {
            while self.running() != n {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(reached.is_ok(), "{} running, expected {n}", self.running());
    }
}

fn pool(workers: usize, name: &str, registry: &MetricsRegistry) -> Pool {
    Pool::new(
        PoolOptions::default()
            .workers(workers)
            .name(name)
            .registry(registry.clone()),
    )
    .unwrap()
}

/// The value of `metric{pool="name"}` in the registry's text exposition.
fn metric(registry: &MetricsRegistry, metric: &str, pool: &str) -> i64 {
    let text = registry.encode();
    let prefix = format!("{metric}{{pool=\"{pool}\"}} ");
    let line = text
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"));
    line[prefix.len()..]
        .parse()
        .unwrap_or_else(|err| panic!("{line}: {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_tasks_all_run() {
    let pool = pool(3, "submit", &MetricsRegistry::new());
    assert_eq!(pool.workers(), 3);
    assert_eq!(pool.name(), "submit");
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..100 {
        let done = Arc::clone(&done);
        pool.submit(async move {
            tokio::task::yield_now().await;
            done.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), pool.wait_for_idle())
        .await
        .expect("idle");
    assert_eq!(done.load(Ordering::SeqCst), 100);
    assert_eq!(pool.pending(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_workers_tasks_run_at_once() {
    let pool = pool(3, "bounded", &MetricsRegistry::new());
    let tracker = Arc::new(Tracker::default());
    let gate = Arc::new(Semaphore::new(0));
    for _ in 0..9 {
        pool.submit(tracker.task(&gate)).unwrap();
    }
    tracker.until_running(3).await;
    assert_eq!(pool.pending(), 9);
    gate.add_permits(9);
    pool.wait_for_idle().await;
    assert_eq!(tracker.max(), 3);
    assert_eq!(tracker.done(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_all_and_wait_waits_for_every_task() {
    let pool = pool(2, "all", &MetricsRegistry::new());
    let done = Arc::new(AtomicUsize::new(0));
    let tasks = (0..20).map(|_| {
        let done = Arc::clone(&done);
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            done.fetch_add(1, Ordering::SeqCst);
        }
    });
    pool.submit_all_and_wait(tasks).await.unwrap();
    assert_eq!(
        done.load(Ordering::SeqCst),
        20,
        "every task finished before it returned"
    );
    // An empty batch returns at once.
    pool.submit_all_and_wait(Vec::<std::future::Ready<()>>::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_all_and_wait_reports_the_first_panic() {
    let registry = MetricsRegistry::new();
    let pool = pool(2, "panicky", &registry);
    let done = Arc::new(AtomicUsize::new(0));
    let tasks = (0..6).map(|n| {
        let done = Arc::clone(&done);
        async move {
            if n == 2 || n == 4 {
                panic!("task {n} exploded");
            }
            done.fetch_add(1, Ordering::SeqCst);
        }
    });
    match pool.submit_all_and_wait(tasks).await {
        Err(Error::Panicked {
            listener_id,
            message,
        }) => {
            assert_eq!(listener_id, "task 2");
            assert_eq!(message, "task 2 exploded");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(done.load(Ordering::SeqCst), 4, "the other tasks ran");
    // The pool still works.
    let after = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&after);
    pool.submit(async move {
        count.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    pool.wait_for_idle().await;
    assert_eq!(after.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizing_up_and_down_while_busy() {
    let pool = pool(2, "resize", &MetricsRegistry::new());
    let tracker = Arc::new(Tracker::default());
    let gate = Arc::new(Semaphore::new(0));
    for _ in 0..8 {
        pool.submit(tracker.task(&gate)).unwrap();
    }
    tracker.until_running(2).await;
    assert_eq!(tracker.max(), 2);

    // Up: queued tasks start at once on the new workers.
    pool.resize(4).unwrap();
    assert_eq!(pool.workers(), 4);
    tracker.until_running(4).await;
    assert_eq!(tracker.max(), 4);

    // Down: the surplus workers leave after their current task, so the
    // four queued tasks then run one at a time.
    pool.resize(1).unwrap();
    assert_eq!(pool.workers(), 1);
    gate.add_permits(4);
    tracker.until_done(4).await;
    for done in 5..=8 {
        tracker.until_running(1).await;
        // Give a surplus worker, if one were left, the time to start another.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(tracker.running(), 1, "one worker after shrinking");
        gate.add_permits(1);
        tracker.until_done(done).await;
    }
    pool.wait_for_idle().await;
    assert_eq!(tracker.max(), 4);

    assert!(matches!(pool.resize(0), Err(Error::InvalidConfig(_))));
    assert_eq!(pool.workers(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_waits_for_the_work_then_refuses_more() {
    let pool = pool(2, "release", &MetricsRegistry::new());
    let tracker = Arc::new(Tracker::default());
    let gate = Arc::new(Semaphore::new(0));
    for _ in 0..5 {
        pool.submit(tracker.task(&gate)).unwrap();
    }
    let releasing = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.release().await })
    };
    tracker.until_running(2).await;
    gate.add_permits(5);
    tokio::time::timeout(Duration::from_secs(10), releasing)
        .await
        .expect("release returned")
        .unwrap();
    assert_eq!(
        tracker.done(),
        5,
        "release waited for queued and running tasks"
    );
    assert!(matches!(pool.submit(async {}), Err(Error::PoolReleased)));
    assert!(matches!(
        pool.submit_all_and_wait([async {}]).await,
        Err(Error::PoolReleased)
    ));
}

#[tokio::test]
async fn wait_for_idle_on_an_unused_pool_returns() {
    let pool = pool(1, "unused", &MetricsRegistry::new());
    tokio::time::timeout(Duration::from_secs(5), pool.wait_for_idle())
        .await
        .expect("idle");
}

#[test]
fn a_pool_needs_a_worker() {
    assert!(matches!(
        Pool::new(PoolOptions::default().workers(0)),
        Err(Error::InvalidConfig(_))
    ));
    assert_eq!(PoolOptions::default().workers_count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_six_metrics_are_labelled_by_pool() {
    let registry = MetricsRegistry::new();
    let pool = pool(1, "metered", &registry);
    let other = pool_with_name(&registry, "other");
    let tracker = Arc::new(Tracker::default());
    let gate = Arc::new(Semaphore::new(0));
    for _ in 0..3 {
        pool.submit(tracker.task(&gate)).unwrap();
    }
    tracker.until_running(1).await;
    // One running, two waiting.
    assert_eq!(
        metric(&registry, "soiree_pool_tasks_submitted_total", "metered"),
        3
    );
    assert_eq!(
        metric(&registry, "soiree_pool_tasks_started_total", "metered"),
        1
    );
    assert_eq!(metric(&registry, "soiree_pool_tasks_running", "metered"), 1);
    assert_eq!(metric(&registry, "soiree_pool_tasks_queued", "metered"), 2);
    assert_eq!(
        metric(&registry, "soiree_pool_tasks_completed_total", "metered"),
        0
    );

    pool.submit(async { panic!("counted") }).unwrap();
    gate.add_permits(3);
    pool.wait_for_idle().await;

    for (name, value) in [
        ("soiree_pool_tasks_submitted_total", 4),
        ("soiree_pool_tasks_started_total", 4),
        ("soiree_pool_tasks_completed_total", 4),
        ("soiree_pool_tasks_panicked_total", 1),
        ("soiree_pool_tasks_queued", 0),
        ("soiree_pool_tasks_running", 0),
    ] {
        assert_eq!(metric(&registry, name, "metered"), value, "{name}");
        // The other pool's series are separate.
        assert_eq!(
            metric(&registry, name, "other"),
            0,
            "{name} of the other pool"
        );
    }
    drop(other);
}

fn pool_with_name(registry: &MetricsRegistry, name: &str) -> Pool {
    pool(2, name, registry)
}
