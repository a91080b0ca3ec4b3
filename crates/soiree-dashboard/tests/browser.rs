//! The dashboard in a real (headless) Chromium, driven by chromedriver:
//! the overview shows the store's counts, a dead letter is replayed from
//! its page and runs again (checked through the store), an event's page
//! shows its results per listener, stored markup stays text. A screenshot
//! of each page lands in `target/dashboard-screenshots/`.
//!
//! Needs `chromium` and `chromedriver` (Debian: chromium, chromium-driver).
//! Without them the tests are skipped, except under `CI=true`, where they
//! fail.

mod support;

use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use soiree::{EventStore, Inspect, MemoryStore, Query};
use soiree_dashboard::DashboardOptions;
use support::{Fixture, HOSTILE, within};

// ------------------------------------------------------------------ driver

/// A chromedriver process on a free loopback port, killed (with the
/// browsers it started: its process group) on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
}

fn find_binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    names.iter().find_map(|name| {
        dirs.iter()
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

impl ChromeDriver {
    fn start() -> io::Result<(Self, PathBuf)> {
        let missing =
            |what: &str| io::Error::new(io::ErrorKind::NotFound, format!("{what} not found"));
        let driver = find_binary("CHROMEDRIVER", &["chromedriver"])
            .ok_or_else(|| missing("chromedriver"))?;
        let chromium = find_binary(
            "CHROMIUM",
            &[
                "chromium",
                "chromium-browser",
                "google-chrome",
                "google-chrome-stable",
            ],
        )
        .ok_or_else(|| missing("chromium"))?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let mut command = Command::new(driver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn()?;
        let mut driver = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if driver.ready() {
                return Ok((driver, chromium));
            }
            if let Some(status) = driver.child.try_wait()? {
                return Err(io::Error::other(format!("chromedriver exited: {status}")));
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("chromedriver did not start in 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Answers `/status` as ready.
    fn ready(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        if stream
            .write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply.contains("\"ready\":true") || reply.contains("\"ready\": true")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts chromedriver, or `None` when it or chromium is missing
    /// outside CI. Under CI, a browser that cannot start fails the test.
    fn start_or_skip() -> Option<(Self, PathBuf)> {
        match Self::start() {
            Ok(started) => Some(started),
            Err(err) if err.kind() == io::ErrorKind::NotFound && !soiree_test::redis::is_ci() => {
                eprintln!(
                    "skipping: {err}; install chromium and chromium-driver to run the browser tests"
                );
                None
            }
            Err(err) => panic!("cannot start chromedriver: {err}"),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            // The whole group: chromedriver and the browsers it started.
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &ChromeDriver, chromium: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1440,1100",
                "--force-device-scale-factor=1",
                "--lang=en-US",
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = within(
        "a browser session starts",
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url()),
    )
    .await
    .expect("a browser session");
    within("the window is sized", client.set_window_size(1440, 1100))
        .await
        .expect("window size");
    client
}

// ------------------------------------------------------------------ helpers

/// Runs `script` until it returns something truthy; returns that.
async fn until(client: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + support::STEP;
    let mut last;
    loop {
        match within(what, client.execute(script, vec![])).await {
            Ok(value)
                if !matches!(value, Value::Null | Value::Bool(false))
                    && value != json!(0)
                    && value != json!("") =>
            {
                return value;
            }
            Ok(value) => last = value,
            Err(err) => last = json!(err.to_string()),
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} (last: {last})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn open(client: &Client, url: &str) {
    within("a page opens", client.goto(url))
        .await
        .unwrap_or_else(|err| panic!("cannot open {url}: {err}"));
    until(
        client,
        "the page has loaded its data",
        "return document.getElementById('content').dataset.loaded === 'true'",
    )
    .await;
}

fn screenshot_dir() -> PathBuf {
    // target/tmp → target/dashboard-screenshots (CARGO_TARGET_DIR aware).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    // Let the page settle (fonts, a chart redraw).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = within("a screenshot", client.screenshot())
        .await
        .expect("screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("screenshot written");
    eprintln!("screenshot: {}", path.display());
}

async fn no_injection(client: &Client) {
    let pwned = within(
        "checking for injected markup",
        client.execute(
            "return [window.__pwned === true, document.querySelectorAll('img[src=\"x\"], #content script').length]",
            vec![],
        ),
    )
    .await
    .unwrap();
    assert_eq!(pwned, json!([false, 0]), "stored markup ran or was parsed");
}

/// Waits for the page's confirmation dialog, checks it names `count`, and
/// confirms; returns the dialog's text.
async fn confirm(client: &Client, count: usize) -> String {
    let shown = until(
        client,
        "the confirmation dialog",
        "const d = document.querySelector('dialog[open][data-confirm]');\
         return d && [d.dataset.count, d.textContent]",
    )
    .await;
    assert_eq!(shown[0], json!(count.to_string()), "{shown}");
    let text = shown[1].as_str().unwrap().to_owned();
    let noun = if count == 1 {
        "dead letter"
    } else {
        "dead letters"
    };
    assert!(
        text.contains(&format!("{count} {noun}")) || text.contains(&format!("{count} event")),
        "the dialog names the count: {text}"
    );
    click(client, "[data-confirm-go]").await;
    until(
        client,
        "the dialog closes",
        "return !document.querySelector('dialog[open]')",
    )
    .await;
    text
}

async fn click(client: &Client, css: &str) {
    let element = within("finding a button", client.find(Locator::Css(css)))
        .await
        .unwrap_or_else(|err| panic!("no {css}: {err}"));
    within("clicking", element.click())
        .await
        .unwrap_or_else(|err| panic!("cannot click {css}: {err}"));
}

/// The number the dead-letter page shows as matching its filter, once
/// counted.
async fn shown_count(client: &Client, expected: usize) {
    until(
        client,
        "the matching count",
        &format!(
            "return document.getElementById('dead-letter-count').dataset.count === '{expected}'"
        ),
    )
    .await;
}

async fn dead_letter_count(store: &dyn Inspect) -> usize {
    within("reading the stats", store.stats())
        .await
        .expect("stats")
        .dead_letters as usize
}

// ------------------------------------------------------------------ the run

/// Traffic while the sampler runs, for the chart: waves of events, some
/// handled slowly so a backlog builds and drains.
async fn traffic(fixture: &Fixture) {
    let topics = ["order.paid", "user.created", "shipment.created"];
    for wave in 0..12u64 {
        let burst = 4 + (wave * 7) % 13;
        for i in 0..burst {
            let topic = topics[(i as usize + wave as usize) % topics.len()];
            let mut emission = fixture
                .bus
                .emit(topic, json!({ "wave": wave, "n": i, "note": "traffic" }));
            within("traffic is persisted", emission.persisted())
                .await
                .expect("persisted");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    support::settle(&fixture.bus, fixture.store.as_ref()).await;
}

/// Everything the browser checks, against one store. `name` prefixes the
/// screenshots.
async fn exercise(name: &str, events: Arc<dyn EventStore>, store: Arc<dyn Inspect>) {
    let Some((driver, chromium)) = ChromeDriver::start_or_skip() else {
        return;
    };
    let fixture = support::populate(events, store.clone()).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    fixture
        .bus
        .on_named("shipping-label", "shipment.created", |_ctx| async {
            // A slow printer: 120 ms a label.
            tokio::time::sleep(Duration::from_millis(120)).await;
            Ok(())
        })
        .expect("listener registers");
    let held = gate.clone();
    fixture
        .bus
        .on_named("report-builder", "report.requested", move |_ctx| {
            let held = held.clone();
            async move {
                // Holds its delivery until the test lets it go.
                let _permit = held.acquire().await;
                Ok(())
            }
        })
        .expect("listener registers");

    let server = soiree_dashboard::bind(
        store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        DashboardOptions::default().sample_every(Duration::from_millis(250)),
    )
    .await
    .expect("the dashboard binds");
    let base = format!("http://{}/", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    traffic(&fixture).await;

    let client = browser(&driver, &chromium).await;

    // ---- Overview: the shown counts are the store's.
    open(&client, &base).await;
    until(
        &client,
        "the chart has samples",
        "return document.querySelector('#chart-throughput svg') !== null",
    )
    .await;
    let truth = store.stats().await.expect("stats");
    let shown = within(
        "reading the cards",
        client.execute(
            "return Object.fromEntries([...document.querySelectorAll('[data-stat]')]\
             .map(c => [c.dataset.stat, c.querySelector('.value').textContent.replace(/[^0-9]/g, '')]))",
            vec![],
        ),
    )
    .await
    .unwrap();
    for (key, value) in [
        ("events", truth.events),
        ("emitted", truth.emitted),
        ("results", truth.results),
        ("backlog", truth.backlog),
        ("dead_letters", truth.dead_letters),
        ("consumers", truth.consumers),
    ] {
        assert_eq!(
            shown[key],
            json!(value.to_string()),
            "overview card {key}: {shown}"
        );
    }
    assert_eq!(truth.dead_letters as usize, support::DEAD_LETTERS);
    let topic_rows = within(
        "reading the topic counts",
        client.execute(
            "return Object.fromEntries([...document.querySelectorAll('[data-topic-row]')]\
             .map(r => [r.dataset.topicRow, Number(r.querySelector('[data-count]').dataset.count)]))",
            vec![],
        ),
    )
    .await
    .unwrap();
    let mut expected = std::collections::HashMap::<String, u64>::new();
    let newest = store.events(&Query::newest(1_000)).await.expect("events");
    for record in newest.items {
        *expected.entry(record.item.topic).or_default() += 1;
    }
    for (topic, count) in &expected {
        assert_eq!(
            topic_rows[topic],
            json!(count),
            "topic {topic}: {topic_rows}"
        );
    }
    screenshot(&client, &format!("{name}-overview")).await;

    // ---- Dead letters: one row per letter, markup shown as text.
    open(&client, &format!("{base}dead-letters")).await;
    let rows = until(
        &client,
        "dead letter rows",
        "return document.querySelectorAll('tr[data-dead-letter]').length",
    )
    .await;
    assert_eq!(rows, json!(support::DEAD_LETTERS));
    let texts = within(
        "reading the errors",
        client.execute(
            "return [...document.querySelectorAll('.error-text')].map(e => e.textContent)",
            vec![],
        ),
    )
    .await
    .unwrap();
    assert!(
        texts
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().contains(HOSTILE)),
        "the hostile error is shown as text: {texts}"
    );
    no_injection(&client).await;
    screenshot(&client, &format!("{name}-dead-letters")).await;

    // The mail server is fixed: replay the first invoice from its row.
    fixture.smtp_up.store(true, Ordering::SeqCst);
    let invoice = fixture.invoice_ids[0].clone();
    let before = results_of(store.as_ref(), &invoice).await;
    assert!(before.iter().all(|r| r.error.is_some()), "{before:?}");
    let button = within(
        "finding the row's replay button",
        client.find(Locator::XPath(&format!(
            "//tr[.//a[@data-event-link='{invoice}']]//button[@data-action='replay']"
        ))),
    )
    .await
    .expect("the invoice's replay button");
    within("clicking replay", button.click())
        .await
        .expect("click");
    confirm(&client, 1).await;
    until(
        &client,
        "the replayed row leaves the table",
        &format!(
            "return document.querySelectorAll('tr[data-dead-letter]').length === {} \
             && !document.querySelector('a[data-event-link=\"{invoice}\"]')",
            support::DEAD_LETTERS - 1
        ),
    )
    .await;
    // Through the store: the event ran again, and succeeded.
    within("the replayed event is handled", async {
        loop {
            let results = results_of(store.as_ref(), &invoice).await;
            if results
                .iter()
                .any(|r| r.error.is_none() && r.handler_id == "mailer")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        support::dead_letter_of(store.as_ref(), &invoice)
            .await
            .is_none(),
        "the replayed letter is gone"
    );
    assert_eq!(
        store.stats().await.unwrap().dead_letters as usize,
        support::DEAD_LETTERS - 1
    );

    // ---- Events: the newest first.
    open(&client, &format!("{base}events")).await;
    let newest = store.events(&Query::newest(1)).await.expect("events");
    let first = until(
        &client,
        "event rows",
        "const row = document.querySelector('tr[data-event]'); return row && row.dataset.event",
    )
    .await;
    assert_eq!(
        first,
        json!(soiree::inspect::event_id_text(&newest.items[0].item).unwrap())
    );
    screenshot(&client, &format!("{name}-events")).await;

    // ---- Event lookup: the replayed invoice, a failed attempt then a
    // successful one.
    open(&client, &format!("{base}events?id={invoice}")).await;
    let detail = store
        .event(&invoice)
        .await
        .expect("event")
        .expect("the invoice is stored");
    let shown = until(
        &client,
        "the results table",
        "const rows = [...document.querySelectorAll('#event-results tr[data-result]')];\
         return rows.length && rows.map(r => [r.dataset.result, r.querySelector('.badge').textContent])",
    )
    .await;
    let expected: Vec<Value> = detail
        .results
        .iter()
        .map(|r| {
            json!([
                r.item.handler_id,
                if r.item.error.is_none() {
                    "ok"
                } else {
                    "failed"
                }
            ])
        })
        .collect();
    assert_eq!(shown, json!(expected));
    assert!(expected.contains(&json!(["mailer", "ok"])), "{expected:?}");
    assert!(
        expected.contains(&json!(["mailer", "failed"])),
        "{expected:?}"
    );
    let id_shown = within(
        "reading the event id",
        client.find(Locator::Css("[data-field='event_id']")),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(id_shown, invoice);
    screenshot(&client, &format!("{name}-event")).await;

    // The probe's payload is shown as text.
    open(&client, &format!("{base}events?id={}", fixture.probe_id)).await;
    let payload = within(
        "reading the payload",
        client.find(Locator::Id("event-payload")),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(payload.contains("<script>window.__pwned"), "{payload}");
    no_injection(&client).await;

    // A missing event says so.
    open(&client, &format!("{base}events?id=no-such-event")).await;
    until(
        &client,
        "the empty state",
        "return document.querySelector('[data-empty]') !== null",
    )
    .await;

    // ---- Live tail: new events appear.
    open(&client, &format!("{base}tail")).await;
    until(
        &client,
        "the tail connects",
        "return document.getElementById('status').classList.contains('ok')",
    )
    .await;
    let mut tailed = Vec::new();
    for i in 0..4 {
        let mut emission = fixture.bus.emit(
            if i % 2 == 0 {
                "order.paid"
            } else {
                "user.created"
            },
            json!({ "order": 2000 + i, "source": "tail-test" }),
        );
        tailed.push(
            within("tail event persisted", emission.persisted())
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let shown = until(
        &client,
        "tailed rows",
        "const ids = [...document.querySelectorAll('tr[data-event]')].map(r => r.dataset.event);\
         return ids.length >= 4 && ids",
    )
    .await;
    for id in &tailed {
        assert!(
            shown.as_array().unwrap().contains(&json!(id)),
            "{id} in {shown}"
        );
    }
    screenshot(&client, &format!("{name}-tail")).await;

    // ---- Pending: deliveries held by a slow listener.
    for i in 0..2 {
        let mut emission = fixture.bus.emit(
            "report.requested",
            json!({ "report": format!("monthly-{i}") }),
        );
        within("report persisted", emission.persisted())
            .await
            .unwrap();
    }
    let truth = within("the reports are taken", async {
        loop {
            let pending = store.pending(&Query::oldest(100)).await.unwrap();
            let covered: u64 = pending.items.iter().map(|p| p.events).sum();
            if covered >= 2 {
                break pending;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    open(&client, &format!("{base}pending")).await;
    let rows = until(
        &client,
        "pending rows",
        "return document.querySelectorAll('tr[data-pending]').length",
    )
    .await;
    assert_eq!(rows, json!(truth.items.len()));
    screenshot(&client, &format!("{name}-pending")).await;
    gate.add_permits(1_000);

    within("the browser closes", client.close())
        .await
        .expect("close");
    let _ = stop.send(());
    within("the server stops", serving)
        .await
        .expect("server task")
        .expect("server");
    within("the bus closes", fixture.bus.close())
        .await
        .expect("bus closes");
    drop(driver);
}

async fn results_of(store: &dyn Inspect, event_id: &str) -> Vec<soiree::StoredResult> {
    let query = Query::oldest(1_000).filter(soiree::Filter::default().event_id(event_id));
    store
        .results(&query)
        .await
        .expect("results")
        .items
        .into_iter()
        .map(|record| record.item)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_browser_memory() {
    let store = Arc::new(MemoryStore::queue());
    exercise("memory", store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_browser_redis() {
    let Some(server) = soiree_test::redis::RedisServer::start_or_skip() else {
        return;
    };
    let store = Arc::new(
        within(
            "the Redis store connects",
            soiree_redis::RedisStore::builder(&server.url())
                .consumer("dashboard-test")
                .build(),
        )
        .await
        .expect("a Redis store"),
    );
    exercise("redis", store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_browser_sqlite() {
    let dir = std::env::temp_dir().join(format!(
        "soiree-dashboard-sqlite-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = Arc::new(
        within(
            "the SQLite store opens",
            soiree_sql::SqliteStore::open(dir.join("events.db")),
        )
        .await
        .expect("a SQLite store"),
    );
    exercise("sqlite", store.clone(), store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_browser_postgres() {
    let Some(server) = soiree_test::postgres::PostgresServer::start_or_skip() else {
        return;
    };
    let store = Arc::new(
        within(
            "the PostgreSQL store connects",
            soiree_sql::PostgresStore::connect(&server.url()),
        )
        .await
        .expect("a PostgreSQL store"),
    );
    exercise("postgres", store.clone(), store).await;
}

/// Replay and purge act on what the operator saw: the filter applied (not
/// what is typed in the box), the count confirmed in a dialog; a selection
/// does not survive a filter change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_actions_act_on_what_was_shown() {
    let Some((driver, chromium)) = ChromeDriver::start_or_skip() else {
        return;
    };
    let store = Arc::new(MemoryStore::queue());
    let fixture = support::populate(store.clone(), store.clone()).await;
    let inspect = fixture.store.clone();
    let server = soiree_dashboard::bind(
        inspect.clone(),
        "127.0.0.1:0".parse().unwrap(),
        DashboardOptions::default(),
    )
    .await
    .expect("the dashboard binds");
    let base = format!("http://{}/", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let client = browser(&driver, &chromium).await;

    // A selection is cleared when another filter is applied.
    open(&client, &format!("{base}dead-letters?topic=invoice.*")).await;
    shown_count(&client, support::INVOICES).await;
    click(&client, "tr[data-dead-letter] input[type=checkbox]").await;
    until(
        &client,
        "one row selected",
        "return document.getElementById('selection-info').dataset.selected === '1'",
    )
    .await;
    let topic = within(
        "the topic box",
        client.find(Locator::Css("input[aria-label='topic']")),
    )
    .await
    .unwrap();
    within("clearing the box", topic.clear()).await.unwrap();
    within("typing a topic", topic.send_keys("probe.*\n"))
        .await
        .unwrap();
    shown_count(&client, support::PROBES).await;
    let selection = until(
        &client,
        "the selection cleared",
        "const info = document.getElementById('selection-info');\
         return info.dataset.selected === '0' && [info.textContent, \
         document.querySelector('[data-action=replay-selected]').disabled]",
    )
    .await;
    assert_eq!(selection, json!(["", true]));

    // The box cleared but Filter not pressed: "Purge all matching" purges
    // the one probe on screen, not every dead letter.
    within("clearing the box", topic.clear()).await.unwrap();
    click(&client, "[data-action='purge-all']").await;
    let text = confirm(&client, support::PROBES).await;
    assert!(
        text.contains("probe.*"),
        "the dialog names the filter: {text}"
    );
    within("the probe is purged", async {
        while dead_letter_count(inspect.as_ref()).await != support::INVOICES {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    shown_count(&client, 0).await;
    assert!(
        support::dead_letter_of(inspect.as_ref(), &fixture.invoice_ids[0])
            .await
            .is_some(),
        "the invoices stay"
    );

    // The count changed behind the page: the server refuses, nothing is
    // replayed, the page shows the new count.
    open(&client, &format!("{base}dead-letters")).await;
    shown_count(&client, support::INVOICES).await;
    let mut emission = fixture.bus.emit(
        "probe.markup",
        json!({ "note": "a new failure while the page is open" }),
    );
    within("the probe is persisted", emission.persisted())
        .await
        .unwrap();
    within("the new probe is dead-lettered", async {
        while dead_letter_count(inspect.as_ref()).await != support::INVOICES + 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    click(&client, "[data-action='replay-all']").await;
    let text = confirm(&client, support::INVOICES).await;
    assert!(text.contains("Every dead letter"), "{text}");
    let toast = until(
        &client,
        "the refusal is shown",
        "const t = document.querySelector('.toast.bad'); return t && t.textContent",
    )
    .await;
    assert!(
        toast.as_str().unwrap().contains("selection changed"),
        "{toast}"
    );
    shown_count(&client, support::INVOICES + 1).await;
    until(
        &client,
        "the listing shows the new letter",
        &format!(
            "return document.querySelectorAll('tr[data-dead-letter]').length === {}",
            support::INVOICES + 1
        ),
    )
    .await;
    assert_eq!(
        dead_letter_count(inspect.as_ref()).await,
        support::INVOICES + 1,
        "nothing was replayed"
    );
    // Cancelling a confirmation does nothing.
    click(&client, "tr[data-dead-letter] button[data-action='purge']").await;
    until(
        &client,
        "the confirmation dialog",
        "return document.querySelector('dialog[open][data-confirm]') !== null",
    )
    .await;
    click(&client, "[data-confirm-cancel]").await;
    until(
        &client,
        "the dialog closes",
        "return !document.querySelector('dialog[open]')",
    )
    .await;
    assert_eq!(
        dead_letter_count(inspect.as_ref()).await,
        support::INVOICES + 1
    );
    screenshot(&client, "memory-confirm").await;

    within("the browser closes", client.close())
        .await
        .expect("close");
    let _ = stop.send(());
    within("the server stops", serving)
        .await
        .expect("server task")
        .expect("server");
    within("the bus closes", fixture.bus.close())
        .await
        .expect("bus closes");
    drop(driver);
}

/// The scheduled page lists the delayed events a store holds (soonest
/// first, stored strings as text), and an event's page shows a snoozed
/// attempt as "snoozed", not as a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_events_and_snoozes_show_as_text() {
    let Some((driver, chromium)) = ChromeDriver::start_or_skip() else {
        return;
    };
    let store = Arc::new(MemoryStore::queue());
    let bus = soiree::EventBus::builder()
        .shared_store(store.clone())
        .build()
        .expect("bus builds");
    let snoozed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    bus.on_named("report-builder", "report.ready", move |_ctx| {
        let first = !snoozed.swap(true, Ordering::SeqCst);
        async move {
            if first {
                return Err(soiree::Snooze::after(Duration::from_millis(50)).into());
            }
            Ok(())
        }
    })
    .expect("listener registers");
    bus.start().expect("the bus starts");

    // Two delayed events, the later one first; one with markup in its
    // event id and payload.
    let hostile_id = format!("later-{HOSTILE}");
    for (topic, id, delay) in [
        ("digest.weekly", hostile_id.as_str(), 7_200),
        ("report.ready", "sooner", 3_600),
    ] {
        let event = soiree::Event::new(topic, json!({ "note": HOSTILE }));
        event.properties().set(soiree::PROPERTY_EVENT_ID, id);
        let mut emission = bus.emit_after(topic, event, Duration::from_secs(delay));
        within("the delayed event is stored", emission.persisted())
            .await
            .expect("persisted");
    }
    // One event whose listener snoozes once, then succeeds.
    let event = soiree::Event::new("report.ready", json!({ "report": 7 }));
    event
        .properties()
        .set(soiree::PROPERTY_EVENT_ID, "report-7");
    let mut emission = bus.emit_event(event);
    within("the event is stored", emission.persisted())
        .await
        .expect("persisted");
    within("the snoozed listener succeeds", async {
        while !results_of(store.as_ref(), "report-7")
            .await
            .iter()
            .any(soiree::StoredResult::succeeded)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let server = soiree_dashboard::bind(
        store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        DashboardOptions::default(),
    )
    .await
    .expect("the dashboard binds");
    let base = format!("http://{}/", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let client = browser(&driver, &chromium).await;

    // ---- Scheduled: both delayed events, soonest first, as text.
    open(&client, &format!("{base}scheduled")).await;
    let rows = until(
        &client,
        "the scheduled rows",
        "const rows = [...document.querySelectorAll('tr[data-scheduled]')];\
         return rows.length === 2 && rows.map(r => [...r.cells].map(c => c.textContent))",
    )
    .await;
    assert_eq!(rows[0][2], json!("report.ready"), "soonest first: {rows}");
    assert_eq!(rows[0][3], json!("sooner"), "{rows}");
    assert_eq!(rows[1][2], json!("digest.weekly"), "{rows}");
    assert_eq!(
        rows[1][3],
        json!(hostile_id),
        "the event id as text: {rows}"
    );
    // The payload is shown as JSON: the markup's quotes escaped.
    assert!(
        rows[1][4]
            .as_str()
            .unwrap()
            .contains("<script>window.__pwned = true</script><img src=x onerror="),
        "the payload as text: {rows}"
    );
    no_injection(&client).await;
    let current = within(
        "the nav",
        client.execute(
            "return document.querySelector('nav a[aria-current]').dataset.nav",
            vec![],
        ),
    )
    .await
    .unwrap();
    assert_eq!(current, json!("scheduled"));
    screenshot(&client, "memory-scheduled").await;

    // ---- The snoozed event's results: a snooze, then a success.
    open(&client, &format!("{base}events?id=report-7")).await;
    let outcomes = until(
        &client,
        "the results per listener",
        "const cells = [...document.querySelectorAll('#event-results td[data-outcome]')];\
         return cells.length === 2 && cells.map(c => [c.dataset.outcome, c.textContent])",
    )
    .await;
    assert_eq!(
        outcomes,
        json!([["snoozed", "snoozed"], ["succeeded", "ok"]]),
        "a snooze is shown as snoozed, not failed"
    );
    screenshot(&client, "memory-snoozed").await;

    within("the browser closes", client.close())
        .await
        .expect("close");
    let _ = stop.send(());
    within("the server stops", serving)
        .await
        .expect("server task")
        .expect("server");
    within("the bus closes", bus.close())
        .await
        .expect("bus closes");
    drop(driver);
}
