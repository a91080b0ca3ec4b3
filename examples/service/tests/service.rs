//! The service as a user runs it: the built binary on a free loopback port
//! and a SQLite file, an order placed over HTTP, its receipt written by the
//! listener, the metrics served, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest any one step may take.
const STEP: Duration = Duration::from_secs(30);

/// The service's process, killed if the test ends before it exits.
struct Service {
    child: Child,
    address: SocketAddr,
    dir: std::path::PathBuf,
}

impl Service {
    fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("soiree-example-service-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let database = format!("sqlite://{}", dir.join("shop.db").display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_soiree-example-service"))
            .args(["--listen", "127.0.0.1:0", "--database", &database])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the service starts");
        // The first line says where it listens; read it on a thread so that
        // the wait is bounded.
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut service = Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let line = received
            .recv_timeout(STEP)
            .expect("the service prints its address within 30 s");
        let address = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        service.address = address.parse().expect("a socket address");
        service
    }

    /// Sends one HTTP/1.1 request and returns the status and the body.
    fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect_timeout(&self.address, STEP).expect("connect");
        stream.set_read_timeout(Some(STEP)).expect("read timeout");
        stream.set_write_timeout(Some(STEP)).expect("write timeout");
        let body = body.unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        (status, body.to_owned())
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(signalled.success(), "kill -TERM failed");
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the service") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|err| panic!("not JSON ({err}): {body:?}"))
}

#[test]
fn an_order_is_confirmed_by_its_listener_and_sigterm_exits_cleanly() {
    let mut service = Service::start();

    let (status, body) =
        service.request("POST", "/orders", Some(r#"{"item":"teapot","quantity":2}"#));
    assert_eq!(status, 201, "{body}");
    let id = json(&body)["id"].as_str().expect("an order id").to_owned();

    // The listener confirms the order and writes its receipt: poll for it,
    // at most 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let order = loop {
        let (status, body) = service.request("GET", &format!("/orders/{id}"), None);
        assert_eq!(status, 200, "{body}");
        let order = json(&body);
        if order["status"] == "confirmed" {
            break order;
        }
        assert!(
            Instant::now() < deadline,
            "order not confirmed within 10 s: {order}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(order["item"], "teapot");
    assert_eq!(order["receipt"], format!("2 x teapot, order {id}"));

    let (status, body) = service.request("GET", "/orders/no-such-order", None);
    assert_eq!(status, 404, "{body}");
    let (status, body) = service.request("POST", "/orders", Some(r#"{"item":"","quantity":1}"#));
    assert_eq!(status, 422, "{body}");

    let (status, metrics) = service.request("GET", "/metrics", None);
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("soiree_") && line.contains(r#"listener="receipt""#)),
        "no soiree metric of the receipt listener in:\n{metrics}"
    );

    let exit = service.terminate();
    assert!(
        exit.success(),
        "the service exited with {exit} after SIGTERM"
    );
}
