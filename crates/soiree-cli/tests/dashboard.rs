//! `soiree dashboard`: the binary serves the dashboard of a SQLite store on
//! a loopback port and answers with the store's counts; an address that is
//! not loopback is refused without a token or with a weak one, and a
//! mistyped token variable is an error. Every wait is bounded.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use soiree::EventBus;
use support::temp_dir;

const DEADLINE: Duration = Duration::from_secs(60);

/// Kills the dashboard process when the test ends, whatever happened.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain HTTP/1.1 GET on loopback; returns the status line and body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("the dashboard accepts connections");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serves_the_stores_counts_on_loopback() {
    let dir = temp_dir("dashboard");
    let path = dir.join("events.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = soiree_sql::SqliteStore::open(&path)
            .await
            .expect("a sqlite store");
        let bus = EventBus::builder()
            .shared_store(Arc::new(store))
            .build()
            .unwrap();
        bus.on("order.paid", |_ctx| async { Ok(()) }).unwrap();
        bus.start().unwrap();
        for i in 0..7 {
            bus.emit("order.paid", i).persisted().await.unwrap();
        }
        tokio::time::timeout(DEADLINE, bus.wait_for_idle())
            .await
            .unwrap();
        bus.close().await.unwrap();
    });

    let url = format!("sqlite://{}", path.display());
    let child = Command::new(env!("CARGO_BIN_EXE_soiree"))
        .args(["--store", &url, "dashboard", "--listen", "127.0.0.1:0"])
        .env_remove("SOIREE_DASHBOARD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the soiree binary starts");
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    // The first line names the address (port 0 picks a free one).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(DEADLINE)
        .expect("the dashboard says where it listens");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");

    let start = Instant::now();
    let (status, body) = get(&addr, "/api/stats");
    assert!(status.contains("200"), "{status} {body}");
    let stats: serde_json::Value = serde_json::from_str(&body).expect("stats are JSON");
    let text = stats.to_string();
    assert!(text.contains("\"events\":7"), "{text}");
    let (status, page) = get(&addr, "/");
    assert!(status.contains("200"), "{status}");
    assert!(page.contains("<html"), "{page}");
    assert!(start.elapsed() < DEADLINE);
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_an_address_that_is_not_loopback_without_a_token() {
    let dir = temp_dir("dashboard");
    let path = dir.join("events.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        drop(
            soiree_sql::SqliteStore::open(&path)
                .await
                .expect("a sqlite store"),
        );
    });
    let url = format!("sqlite://{}", path.display());
    let output = Command::new(env!("CARGO_BIN_EXE_soiree"))
        .args(["--store", &url, "dashboard", "--listen", "0.0.0.0:0"])
        .env_remove("SOIREE_DASHBOARD_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("the soiree binary runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without a token"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn listens_on_a_host_name_resolved_to_loopback() {
    let dir = temp_dir("dashboard");
    let path = dir.join("events.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        drop(
            soiree_sql::SqliteStore::open(&path)
                .await
                .expect("a sqlite store"),
        );
    });
    let url = format!("sqlite://{}", path.display());
    let child = Command::new(env!("CARGO_BIN_EXE_soiree"))
        .args(["--store", &url, "dashboard", "--listen", "localhost:0"])
        .env_remove("SOIREE_DASHBOARD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the soiree binary starts");
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(DEADLINE)
        .expect("the dashboard says where it listens");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    // localhost resolves to loopback; IPv4 first.
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    let (status, body) = get(&addr, "/api/stats");
    assert!(status.contains("200"), "{status} {body}");
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `soiree` with `args` and `env` to its exit, killing it after
/// [`DEADLINE`] (a dashboard that serves instead of refusing would never
/// exit); returns its exit code and standard error.
fn refused_with(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_soiree"));
    command
        .args(args)
        .env_remove("SOIREE_DASHBOARD_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = Running(command.spawn().expect("the soiree binary runs"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "soiree {args:?} did not exit: it serves instead of refusing"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code(), stderr)
}

#[test]
fn refuses_a_mistyped_token_variable_and_a_weak_token() {
    let dir = temp_dir("dashboard");
    let path = dir.join("events.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        drop(
            soiree_sql::SqliteStore::open(&path)
                .await
                .expect("a sqlite store"),
        );
    });
    let url = format!("sqlite://{}", path.display());
    let dashboard = |listen: &'static str, flags: &[&'static str]| {
        let mut args = vec!["--store", url.as_str(), "dashboard", "--listen", listen];
        args.extend_from_slice(flags);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, env: &[(&str, &str)]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused_with(&args, env)
    };

    // A typo in the variable's name, even on loopback: not a dashboard
    // without a token.
    let (code, stderr) = run(
        dashboard("127.0.0.1:0", &["--token-from-env", "OPS_TOKNE"]),
        &[("OPS_TOKEN", "0f1e2d3c4b5a69788796a5b4c3d2e1f0")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("OPS_TOKNE"), "{stderr}");
    // Set but empty.
    let (code, stderr) = run(
        dashboard("127.0.0.1:0", &[]),
        &[("SOIREE_DASHBOARD_TOKEN", "")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("SOIREE_DASHBOARD_TOKEN"), "{stderr}");
    // A weak token off loopback.
    let (code, stderr) = run(
        dashboard("0.0.0.0:0", &[]),
        &[("SOIREE_DASHBOARD_TOKEN", "a")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("weak token"), "{stderr}");
    assert!(stderr.contains("SOIREE_DASHBOARD_TOKEN"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
