//! The dashboard against hostile clients: slow headers, too many
//! connections, weak tokens, guessing, tokens in addresses, malformed
//! input. Over real sockets where the server's bounds are what is tested,
//! through the router otherwise.

mod support;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use soiree::{Inspect, MemoryStore};
use soiree_dashboard::{DashboardOptions, Error};
use support::within;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:9180";
const TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = within("the dashboard answers", router.clone().oneshot(request))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = within("the body is read", response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::HOST, HOST)
        .body(Body::empty())
        .unwrap()
}

fn bearer(uri: &str, token: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::HOST, HOST)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn store() -> Arc<dyn Inspect> {
    Arc::new(MemoryStore::queue())
}

/// A server of its own on loopback, stopped when the sender is dropped.
async fn start(options: DashboardOptions) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server = soiree_dashboard::bind(store(), "127.0.0.1:0".parse().unwrap(), options)
        .await
        .expect("the dashboard binds");
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let (addr, _stop) =
        start(DashboardOptions::default().header_timeout(Duration::from_secs(1))).await;

    // Half a request, never finished: closed without an answer to it.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let sent = within(
        "the half-open connection is closed",
        until_closed(&mut slow),
    )
    .await;
    assert!(!sent.contains("200 OK"), "{sent}");

    // An idle keep-alive connection is closed after as long.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let sent = within("the idle connection is closed", until_closed(&mut idle)).await;
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_connection_cap_is_served_once_slow_clients_are_cut() {
    let (addr, _stop) = start(
        DashboardOptions::default()
            .max_connections(4)
            .header_timeout(Duration::from_secs(1)),
    )
    .await;
    // Every slot held by a client that never finishes its headers.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        slow.push(stream);
    }
    // The operator's request waits in the backlog, then is answered.
    let mut operator = TcpStream::connect(addr).await.unwrap();
    operator
        .write_all(b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = within("the operator is answered", until_closed(&mut operator)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    for mut stream in slow {
        within("a slow client is cut", until_closed(&mut stream)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_tokens_are_refused_off_loopback() {
    // 192.0.2.0/24 is never bound: the check comes first.
    let lan: SocketAddr = "192.0.2.10:9180".parse().unwrap();
    for weak in [
        "a",
        " ",
        "0123456789abcdef0123456789abcde",
        "correct-horse",
        " 0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    ] {
        let refused =
            soiree_dashboard::bind(store(), lan, DashboardOptions::default().token(weak)).await;
        let Err(err @ Error::WeakToken { .. }) = refused else {
            panic!("{weak:?} is refused: {refused:?}");
        };
        let message = err.to_string();
        assert!(message.contains("SOIREE_DASHBOARD_TOKEN"), "{message}");
        assert!(!message.contains("DashboardOptions::token)") || message.contains("in code"));
        if weak.len() > 3 {
            assert!(
                !message.contains(weak.trim()),
                "the token is never shown: {message}"
            );
        }
    }
    let refused = soiree_dashboard::bind(store(), lan, DashboardOptions::default()).await;
    let Err(err @ Error::TokenRequired { .. }) = refused else {
        panic!("no token is refused: {refused:?}");
    };
    assert!(err.to_string().contains("SOIREE_DASHBOARD_TOKEN"), "{err}");
    // A strong one passes the check (the bind itself then fails: the
    // address is not this machine's).
    let strong =
        soiree_dashboard::bind(store(), lan, DashboardOptions::default().token(TOKEN)).await;
    assert!(matches!(strong, Err(Error::Bind { .. })), "{strong:?}");
}

/// Log lines, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn wrong_tokens_are_throttled_and_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let router = soiree_dashboard::router(store(), DashboardOptions::default().token(TOKEN));

    let mut statuses = Vec::new();
    for guess in 0..12 {
        let reply = send(&router, bearer("/api/stats", &format!("guess-{guess}"))).await;
        statuses.push(reply.status);
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(!reply.header(header::RETRY_AFTER).is_empty());
        }
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses[10..], [StatusCode::TOO_MANY_REQUESTS; 2]);
    // While throttled even the right token is refused: its answer would
    // tell a right guess from a wrong one.
    let reply = send(&router, bearer("/api/stats", TOKEN)).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        log.matches("a wrong token was presented").count(),
        10,
        "{log}"
    );
    assert_eq!(
        log.matches("too many wrong tokens").count(),
        1,
        "logged once: {log}"
    );
    assert!(!log.contains("guess-"), "the guesses are not logged: {log}");
    assert!(!log.contains(TOKEN));
}

fn login_form(token: &str, next: &str) -> Request<Body> {
    let body = format!(
        "next={}&token={}",
        next.replace('/', "%2F")
            .replace('?', "%3F")
            .replace('&', "%26")
            .replace('=', "%3D"),
        token
    );
    Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_is_a_posted_form_with_a_bounded_session() {
    let router = soiree_dashboard::router(store(), DashboardOptions::default().token(TOKEN));

    // The login page posts the token: never in the address.
    let page = send(&router, get("/dead-letters?topic=a.*")).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("method=\"post\""), "{}", page.body);
    assert!(page.body.contains("action=\"/login\""), "{}", page.body);
    assert!(
        page.body.contains("value=\"/dead-letters?topic=a.*\""),
        "it comes back to the page: {}",
        page.body
    );

    let wrong = send(&router, login_form("nope", "/dead-letters")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.header(header::SET_COOKIE).is_empty());

    let reply = send(&router, login_form(TOKEN, "/dead-letters?topic=a.*")).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.header(header::LOCATION), "/dead-letters?topic=a.*");
    let set_cookie = reply.header(header::SET_COOKIE).to_owned();
    assert!(
        set_cookie.starts_with("soiree_dashboard_session_9180="),
        "one cookie per port: {set_cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert!(!set_cookie.contains(TOKEN));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |uri: &str| {
        Request::builder()
            .uri(uri)
            .header(header::HOST, HOST)
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(&router, with_cookie("/api/stats")).await.status,
        StatusCode::OK
    );

    // A `next` off this server is not followed.
    let reply = send(&router, login_form(TOKEN, "//evil.example/")).await;
    assert_eq!(reply.header(header::LOCATION), "/");

    // Logging out ends the session, on the server too.
    let page = send(&router, with_cookie("/")).await;
    let marker = "name=\"soiree-csrf\" content=\"";
    let start = page.body.find(marker).unwrap() + marker.len();
    let csrf = page.body[start..start + 64].to_owned();
    assert!(page.body.contains("data-action=\"logout\""));
    let reply = send(
        &router,
        Request::builder()
            .method(Method::POST)
            .uri("/logout")
            .header(header::HOST, HOST)
            .header(header::COOKIE, &cookie)
            .header("x-soiree-csrf", &csrf)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert!(reply.header(header::SET_COOKIE).contains("Max-Age=0"));
    assert_eq!(
        send(&router, with_cookie("/api/stats")).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A link with the token, however its name is encoded, logs in once and
    // redirects without it.
    for query in ["token=", "%74oken=", "%74%6Fken="] {
        let reply = send(&router, get(&format!("/events?topic=x&{query}{TOKEN}"))).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{query}");
        assert_eq!(reply.header(header::LOCATION), "/events?topic=x", "{query}");
        let cookie = reply
            .header(header::SET_COOKIE)
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let followed = send(
            &router,
            Request::builder()
                .uri(reply.header(header::LOCATION))
                .header(header::HOST, HOST)
                .header(header::COOKIE, &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(followed.status, StatusCode::OK, "no redirect loop: {query}");
    }

    // Behind HTTPS the cookie is Secure.
    let secure = soiree_dashboard::router(
        store(),
        DashboardOptions::default().token(TOKEN).behind_https(true),
    );
    let reply = send(&secure, login_form(TOKEN, "/")).await;
    assert!(reply.header(header::SET_COOKIE).contains("; Secure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_a_json_400() {
    let router = soiree_dashboard::router(store(), DashboardOptions::default());
    for uri in [
        "/api/events?cursor=abc",
        "/api/events?cursor=1%3Bdrop",
        "/api/events?cursor=99999999999999999999999",
        "/api/dead-letters?cursor=-",
        "/api/dead-letters?cursor=1-2-3",
        "/api/pending?cursor=x",
        "/api/events?limit=many",
        "/api/leases?limit=many",
        "/api/limit-slots?limit=-1",
        "/api/events?topic=a%00b",
        "/api/dead-letters?event_id=%1B%5B31m",
        "/api/dead-letter-count?topic=%00",
        "/api/tail?topic=%00",
    ] {
        let reply = send(&router, get(uri)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            reply.body
        );
        assert!(reply.json()["error"].is_string(), "{uri}: {}", reply.body);
    }
    // A stream entry id is a Redis cursor, not a memory store's.
    let reply = send(&router, get("/api/dead-letters?cursor=1700000000000-3")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    // Well-formed cursors pass.
    for uri in ["/api/events?cursor=42", "/api/dead-letters?cursor=0"] {
        let reply = send(&router, get(uri)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_bounded_in_bytes() {
    use soiree::{EventStore, StoredEvent};

    const BIG: usize = 512 * 1024;
    const EVENTS: usize = 40;
    let memory = Arc::new(MemoryStore::queue());
    for i in 0..EVENTS {
        let mut properties = serde_json::Map::new();
        properties.insert(soiree::PROPERTY_EVENT_ID.into(), format!("big-{i}").into());
        // Each carries a large property too (near the properties limit),
        // which is not cut: the page's byte budget ends the page instead.
        properties.insert("trace".into(), "t".repeat(60 * 1024).into());
        let event = StoredEvent {
            topic: "blob.stored".into(),
            payload: serde_json::json!({ "blob": "x".repeat(BIG), "n": i }),
            properties,
        };
        memory.save_event(&event).await.unwrap();
    }
    let router = soiree_dashboard::router(memory, DashboardOptions::default());

    // Payloads in a listing are cut, with their full size; the body stays
    // under the budget and the next page goes on where it ended.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    for _ in 0..EVENTS {
        pages += 1;
        let reply = send(
            &router,
            get(&format!("/api/events?limit=500&cursor={cursor}")),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert!(
            reply.body.len() < 3 * 1024 * 1024,
            "{} bytes",
            reply.body.len()
        );
        let page = reply.json();
        for item in page["items"].as_array().unwrap() {
            let payload = item["payload"].as_str().expect("a cut payload is text");
            assert!(payload.len() <= 4 * 1024, "{}", payload.len());
            assert!(payload.starts_with("{\"blob\":\"xxx"), "{payload:.40}");
            assert!(item["payload_bytes"].as_u64().unwrap() > BIG as u64);
            seen.push(item["event_id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..EVENTS).rev().map(|i| format!("big-{i}")).collect();
    assert_eq!(seen, expected, "every event once, newest first");
    assert!(pages > 1, "the byte budget ended a page of 500");

    // An event's view cuts at its own bound, unless asked for all.
    let reply = send(&router, get("/api/event/big-1")).await;
    let detail = reply.json();
    assert!(detail["event"]["payload"].is_string());
    // The payload's 256 KiB and the properties (not cut, within their limit).
    let bound = 256 * 1024 + soiree::limits::MAX_PROPERTIES_LEN + 16 * 1024;
    assert!(reply.body.len() < bound, "{}", reply.body.len());
    let reply = send(&router, get("/api/event/big-1?full=true")).await;
    assert_eq!(reply.json()["event"]["payload"]["n"], 1);
    assert!(reply.json()["event"].get("payload_bytes").is_none());
}
