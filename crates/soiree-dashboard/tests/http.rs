//! The dashboard over plain HTTP, no browser: security (token, cookie
//! login, CSRF, Host), escaping, and the API against a store with known
//! counts.

mod support;

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::Value;
use soiree::{Inspect, MemoryStore};
use soiree_dashboard::{DashboardOptions, Error};
use support::{DEAD_LETTERS, EVENTS, Fixture, HOSTILE, within};
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:9180";

async fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::queue());
    support::populate(store.clone(), store).await
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap())
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

fn get(uri: &str) -> axum::http::request::Builder {
    get_from(uri, HOST)
}

fn get_from(uri: &str, host: &str) -> axum::http::request::Builder {
    Request::builder().uri(uri).header(header::HOST, host)
}

fn post(uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/json")
}

/// The CSRF token a page carries.
async fn csrf(router: &Router, cookie: Option<&str>) -> String {
    let mut request = get("/");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let page = send(router, request.body(Body::empty()).unwrap()).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let marker = "name=\"soiree-csrf\" content=\"";
    let start = page
        .body
        .find(marker)
        .expect("the page carries a CSRF token")
        + marker.len();
    page.body[start..start + 64].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_off_loopback() {
    let store: Arc<dyn Inspect> = Arc::new(MemoryStore::queue());
    let everywhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
    for options in [
        DashboardOptions::default(),
        DashboardOptions::default().token(""),
    ] {
        let refused = within(
            "serve refuses",
            soiree_dashboard::serve(store.clone(), everywhere, options),
        )
        .await;
        assert!(
            matches!(refused, Err(Error::TokenRequired { .. })),
            "{refused:?}"
        );
    }
    let lan: SocketAddr = "192.0.2.10:9180".parse().unwrap();
    let refused = soiree_dashboard::bind(store.clone(), lan, DashboardOptions::default()).await;
    assert!(matches!(refused, Err(Error::TokenRequired { .. })));
    // Loopback needs none.
    let server = soiree_dashboard::bind(
        store,
        "127.0.0.1:0".parse().unwrap(),
        DashboardOptions::default(),
    )
    .await
    .expect("loopback binds without a token");
    assert!(server.local_addr().ip().is_loopback());
    assert_ne!(server.local_addr().port(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_every_route() {
    const TOKEN: &str = "correct horse battery staple";
    let fixture = fixture().await;
    let router = soiree_dashboard::router(
        fixture.store.clone(),
        DashboardOptions::default().token(TOKEN),
    );

    // Nothing without the token: not the API, not the pages.
    let reply = send(&router, get("/api/stats").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.json()["error"].as_str().unwrap().contains("token"));
    let reply = send(&router, get("/dead-letters").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("<form"), "a login form: {}", reply.body);
    assert!(!reply.body.contains(TOKEN));

    // A wrong bearer token.
    let reply = send(
        &router,
        get("/api/stats")
            .header(
                header::AUTHORIZATION,
                "Bearer correct horse battery stapler",
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // The right one, also from any host, and without CSRF on POST: browsers
    // never send it by themselves.
    let reply = send(
        &router,
        get_from("/api/stats", "ops.example.com")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["stats"]["events"], EVENTS as u64);
    let body = serde_json::json!({ "ids": [] });
    let reply = send(
        &router,
        post("/api/purge")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    // A wrong ?token= is refused; the right one sets a session cookie and
    // redirects without the token in the address.
    let reply = send(
        &router,
        get("/dead-letters?token=guess&topic=x")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = send(
        &router,
        get("/dead-letters?topic=invoice.sent&token=correct+horse%20battery+staple")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        reply.header(header::LOCATION),
        "/dead-letters?topic=invoice.sent"
    );
    let set_cookie = reply.header(header::SET_COOKIE).to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains("horse"), "the cookie is not the token");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let page = send(
        &router,
        get("/dead-letters")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(TOKEN), "the token is never rendered");

    // With the cookie, POST needs the CSRF header.
    let body = serde_json::json!({ "ids": ["no-such-letter"] });
    let reply = send(
        &router,
        post("/api/purge")
            .header(header::COOKIE, &cookie)
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let token = csrf(&router, Some(&cookie)).await;
    let reply = send(
        &router,
        post("/api/purge")
            .header(header::COOKIE, &cookie)
            .header("x-soiree-csrf", &token)
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["purged"], 0);
    fixture.bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_need_the_csrf_header_and_a_same_origin() {
    let fixture = fixture().await;
    let router = soiree_dashboard::router(fixture.store.clone(), DashboardOptions::default());
    let letter = support::dead_letter_of(fixture.store.as_ref(), &fixture.invoice_ids[0])
        .await
        .expect("the invoice is a dead letter");
    let body = serde_json::json!({ "ids": [letter.id] });

    // No header, a wrong one, a right one from another origin or site.
    let token = csrf(&router, None).await;
    for (csrf_header, origin, site) in [
        (None, None, None),
        (Some("0".repeat(64)), None, None),
        (Some(token.clone()), Some("http://evil.example"), None),
        (Some(token.clone()), None, Some("cross-site")),
    ] {
        let mut request = post("/api/replay");
        if let Some(value) = &csrf_header {
            request = request.header("x-soiree-csrf", value);
        }
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        let reply = send(&router, request.body(Body::from(body.to_string())).unwrap()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    }
    assert_eq!(
        fixture.store.stats().await.unwrap().dead_letters as usize,
        DEAD_LETTERS,
        "nothing was replayed"
    );

    // The page's own request.
    fixture.smtp_up.store(true, Ordering::SeqCst);
    let reply = send(
        &router,
        post("/api/replay")
            .header("x-soiree-csrf", &token)
            .header(header::ORIGIN, format!("http://{HOST}"))
            .header("sec-fetch-site", "same-origin")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["replayed"], 1);
    within(
        "the replayed invoice is handled",
        fixture.bus.wait_for_idle(),
    )
    .await;
    assert!(
        support::dead_letter_of(fixture.store.as_ref(), &fixture.invoice_ids[0])
            .await
            .is_none()
    );

    // A page of another host (DNS rebinding) is refused without a token.
    let reply = send(
        &router,
        get_from("/api/stats", "rebind.evil.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let allowed = soiree_dashboard::router(
        fixture.store.clone(),
        DashboardOptions::default().allow_host("ops.internal"),
    );
    let reply = send(
        &allowed,
        get_from("/api/stats", "ops.internal:8080")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    fixture.bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_markup_is_never_served_as_html() {
    let fixture = fixture().await;
    let router = soiree_dashboard::router(fixture.store.clone(), DashboardOptions::default());
    for page in [
        "/",
        "/events",
        "/dead-letters",
        "/tail",
        "/pending",
        "/nope",
    ] {
        let uri = format!("{page}?id=%3Cscript%3E&topic=%22%3E%3Cscript%3E");
        let reply = send(&router, get(&uri).body(Body::empty()).unwrap()).await;
        assert!(!reply.body.contains("<script>"), "{page}: {}", reply.body);
        assert!(!reply.body.contains("__pwned"), "{page}");
        let csp = reply.header(header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("default-src 'none'"), "{page}: {csp}");
        assert!(!csp.contains("script-src 'unsafe-inline'"), "{page}: {csp}");
        assert_eq!(reply.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    }
    // The API serves stored markup as JSON text, never as a document.
    let reply = send(
        &router,
        get(&format!("/api/event/{}", fixture.probe_id))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .header(header::CONTENT_TYPE)
            .starts_with("application/json")
    );
    let detail = reply.json();
    assert_eq!(detail["event"]["payload"]["note"], HOSTILE);
    assert!(
        detail["dead_letters"][0]["error"]
            .as_str()
            .unwrap()
            .contains(HOSTILE)
    );
    // The script inserts it as text only.
    let script = send(&router, get("/assets/app.js").body(Body::empty()).unwrap()).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script
            .header(header::CONTENT_TYPE)
            .starts_with("text/javascript")
    );
    assert!(!script.body.contains("innerHTML"));
    assert!(!script.body.contains("insertAdjacentHTML"));
    fixture.bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reports_what_the_store_holds() {
    let fixture = fixture().await;
    // Nested under a prefix, as an application mounts it.
    let router = Router::new().nest(
        "/ops/bus",
        soiree_dashboard::router(fixture.store.clone(), DashboardOptions::default()),
    );
    let page = send(&router, get("/ops/bus").body(Body::empty()).unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<base href=\"/ops/bus/\">"),
        "{}",
        page.body
    );
    let page = send(
        &router,
        get("/ops/bus/dead-letters").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(page.body.contains("<base href=\"/ops/bus/\">"));
    assert!(page.body.contains("href=\"events\""), "relative links");

    let stats = send(
        &router,
        get("/ops/bus/api/stats").body(Body::empty()).unwrap(),
    )
    .await;
    let stats = stats.json();
    let truth = fixture.store.stats().await.unwrap();
    assert_eq!(stats["stats"]["events"], truth.events);
    assert_eq!(stats["stats"]["dead_letters"], DEAD_LETTERS as u64);
    assert_eq!(stats["store"]["kind"], "memory");

    let topics = send(
        &router,
        get("/ops/bus/api/topics").body(Body::empty()).unwrap(),
    )
    .await;
    let topics = topics.json();
    assert_eq!(topics["scanned"], EVENTS as u64);
    assert_eq!(topics["topics"][0]["topic"], "order.paid");
    assert_eq!(topics["topics"][0]["count"], support::ORDERS as u64);

    let events = send(
        &router,
        get("/ops/bus/api/events?topic=invoice.*&limit=2")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        events["items"][0]["event_id"], fixture.invoice_ids[2],
        "newest first"
    );
    assert!(events["next"].is_string());

    let letters = send(
        &router,
        get("/ops/bus/api/dead-letters?topic=invoice.sent")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(
        letters["items"].as_array().unwrap().len(),
        support::INVOICES
    );
    assert!(
        letters["items"][0]["error"]
            .as_str()
            .unwrap()
            .contains("smtp down")
    );
    let id = letters["items"][0]["id"].as_str().unwrap();
    let one = send(
        &router,
        get(&format!("/ops/bus/api/dead-letters/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["id"], id);

    let detail = send(
        &router,
        get(&format!("/ops/bus/api/event/{}", fixture.order_ids[0]))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(detail["event"]["topic"], "order.paid");
    assert_eq!(detail["results"][0]["listener"], "fulfilment");
    assert_eq!(detail["results"][0]["ok"], true);
    let missing = send(
        &router,
        get("/ops/bus/api/event/no-such-event")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let consumers = send(
        &router,
        get("/ops/bus/api/consumers").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(consumers.status, StatusCode::OK);
    let pending = send(
        &router,
        get("/ops/bus/api/pending").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(pending.json()["items"], serde_json::json!([]));

    // Bad requests.
    let body = serde_json::json!({ "ids": ["1"], "filter": {} });
    let token = {
        let page = send(&router, get("/ops/bus").body(Body::empty()).unwrap()).await;
        let marker = "name=\"soiree-csrf\" content=\"";
        let start = page.body.find(marker).unwrap() + marker.len();
        page.body[start..start + 64].to_owned()
    };
    let reply = send(
        &router,
        post("/ops/bus/api/purge")
            .header("x-soiree-csrf", &token)
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // Purge by filter.
    let body = serde_json::json!({ "filter": { "topic": "probe.*" } });
    let reply = send(
        &router,
        post("/ops/bus/api/purge")
            .header("x-soiree-csrf", &token)
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["purged"], support::PROBES as u64);
    assert_eq!(
        fixture.store.stats().await.unwrap().dead_letters as usize,
        support::INVOICES
    );
    fixture.bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_by_filter_acts_only_on_what_was_confirmed() {
    let fixture = fixture().await;
    let router = soiree_dashboard::router(fixture.store.clone(), DashboardOptions::default());
    let token = csrf(&router, None).await;
    let purge = |body: Value| {
        post("/api/purge")
            .header("x-soiree-csrf", &token)
            .body(Body::from(body.to_string()))
            .unwrap()
    };

    // What a confirmation shows.
    let count = send(
        &router,
        get("/api/dead-letter-count?topic=invoice.*")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(count.status, StatusCode::OK, "{}", count.body);
    assert_eq!(
        count.json(),
        serde_json::json!({ "count": support::INVOICES, "complete": true })
    );

    // A blank filter (spaces) is every dead letter: refused without "all".
    for filter in [
        serde_json::json!({ "topic": "   " }),
        serde_json::json!({}),
        serde_json::json!({ "topic": "", "event_id": " " }),
    ] {
        let reply = send(&router, purge(serde_json::json!({ "filter": filter }))).await;
        assert_eq!(
            reply.status,
            StatusCode::CONFLICT,
            "{filter}: {}",
            reply.body
        );
        assert!(reply.json()["error"].as_str().unwrap().contains("\"all\""));
    }
    assert_eq!(
        fixture.store.stats().await.unwrap().dead_letters as usize,
        DEAD_LETTERS
    );

    // A count that no longer matches is refused, with the count now.
    let reply = send(
        &router,
        purge(serde_json::json!({ "filter": { "topic": "invoice.*" }, "expected": 2 })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert_eq!(reply.json()["count"], support::INVOICES as u64);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("selection changed")
    );
    assert_eq!(
        fixture.store.stats().await.unwrap().dead_letters as usize,
        DEAD_LETTERS,
        "nothing was purged"
    );

    // The confirmed count acts.
    let reply = send(
        &router,
        purge(serde_json::json!({ "filter": { "topic": "probe.*" }, "expected": support::PROBES })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["purged"], support::PROBES as u64);

    // "all" with the count shown purges every one.
    let reply = send(
        &router,
        purge(serde_json::json!({ "filter": {}, "all": true, "expected": support::INVOICES })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["purged"], support::INVOICES as u64);
    assert_eq!(fixture.store.stats().await.unwrap().dead_letters, 0);
    fixture.bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_api_pages_delayed_events_soonest_first() {
    let store = Arc::new(MemoryStore::queue());
    let bus = soiree::EventBus::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    bus.on_named("later", "digest.*", |_ctx| async { Ok(()) })
        .unwrap();
    bus.start().unwrap();
    for (topic, hours) in [("digest.weekly", 2), ("digest.daily", 1)] {
        let mut emission = bus.emit_after(
            topic,
            serde_json::json!({ "note": HOSTILE }),
            std::time::Duration::from_secs(hours * 3600),
        );
        within("the delayed event is stored", emission.persisted())
            .await
            .unwrap();
    }
    let router = soiree_dashboard::router(store.clone(), DashboardOptions::default());

    let first = send(
        &router,
        get("/api/scheduled?limit=1").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.header(header::CONTENT_TYPE), "application/json");
    let first = first.json();
    assert_eq!(first["supported"], true);
    assert_eq!(first["items"][0]["topic"], "digest.daily", "soonest first");
    assert_eq!(first["items"][0]["payload"]["note"], HOSTILE);
    let next = first["next"].as_str().expect("a next page").to_owned();
    let second = send(
        &router,
        get(&format!("/api/scheduled?limit=1&cursor={next}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(second["items"][0]["topic"], "digest.weekly");
    assert!(
        second["items"][0]["due_at"].as_u64() > first["items"][0]["due_at"].as_u64(),
        "{first} {second}"
    );
    let filtered = send(
        &router,
        get("/api/scheduled?topic=digest.weekly")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1, "{filtered}");
    let refused = send(
        &router,
        get("/api/scheduled?cursor=%07")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    bus.close().await.unwrap();
}

/// The lease and slot views list a held lease and a taken slot, stored
/// strings (markup in a holder) as JSON strings, never as markup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_and_slot_apis_list_holders_and_expiries() {
    use soiree::EventStore;
    let store = Arc::new(MemoryStore::queue());
    let router = soiree_dashboard::router(store.clone(), DashboardOptions::default());
    let none = send(&router, get("/api/leases").body(Body::empty()).unwrap())
        .await
        .json();
    assert_eq!(none, serde_json::json!({"items": [], "supported": true}));

    let ttl = std::time::Duration::from_secs(60);
    let holder = format!("host-{HOSTILE}");
    let leases = store.leases().unwrap();
    let held = leases
        .acquire("nightly-report", &holder, ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(
        leases
            .renew(&held, ttl, Some(1_700_000_000_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .limits()
            .unwrap()
            .acquire_slot("mailer", 1, &holder, ttl)
            .await
            .unwrap()
    );
    let listed = send(
        &router,
        get("/api/leases?limit=10").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.header(header::CONTENT_TYPE), "application/json");
    let listed = listed.json();
    let lease = &listed["items"][0];
    assert_eq!(listed["supported"], true);
    assert_eq!(lease["name"], "nightly-report", "{listed}");
    assert_eq!(lease["holder"], holder.as_str(), "{listed}");
    assert_eq!(lease["held"], true, "{listed}");
    assert_eq!(lease["progress"], 1_700_000_000_000_i64, "{listed}");
    let now_ms = now_ms();
    assert!(lease["expires_at"].as_u64().unwrap() > now_ms, "{listed}");

    let slots = send(
        &router,
        get("/api/limit-slots").body(Body::empty()).unwrap(),
    )
    .await
    .json();
    assert_eq!(slots["supported"], true);
    assert_eq!(slots["items"][0]["key"], "mailer", "{slots}");
    assert_eq!(slots["items"][0]["holder"], holder.as_str(), "{slots}");
    assert!(slots["items"][0]["expires_at"].as_u64().unwrap() > now_ms);
    let refused = send(
        &router,
        get("/api/leases?limit=x").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
