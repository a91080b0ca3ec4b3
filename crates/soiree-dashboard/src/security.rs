//! Who may read and who may change: the token, the login and its session
//! cookie, the CSRF token, the Host and Origin checks, and the headers
//! every response carries.

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, OriginalUri, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use crate::{
    pages, sampler,
    throttle::{Throttle, Verdict},
};

/// The header holding the CSRF token on state-changing requests.
pub(crate) const CSRF_HEADER: &str = "x-soiree-csrf";
/// The session cookie's name, followed by `_PORT` when the Host names a
/// port: dashboards on two ports of one host keep their own sessions.
const SESSION_COOKIE: &str = "soiree_dashboard_session";
/// How long a login lasts.
pub(crate) const SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions open at once; the oldest is closed past it.
const MAX_SESSIONS: usize = 256;
/// The largest login form read.
const MAX_LOGIN_FORM: usize = 4 * 1024;

/// Per-process secrets and the open sessions.
pub(crate) struct Secrets {
    /// Carried by the pages, required on POST.
    pub(crate) csrf: String,
    /// Random session ids, each opened by a login, with when it was opened:
    /// the browser never stores the token itself, and a logout ends one.
    sessions: Mutex<Vec<(String, Instant)>>,
    pub(crate) throttle: Throttle,
}

impl Secrets {
    pub(crate) fn generate() -> Self {
        Self {
            csrf: random_hex(),
            sessions: Mutex::new(Vec::new()),
            throttle: Throttle::default(),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Vec<(String, Instant)>> {
        // Every statement leaves the list consistent.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session's id.
    fn open_session(&self) -> String {
        let id = random_hex();
        let mut sessions = self.sessions();
        sessions.retain(|(_, opened)| opened.elapsed() < SESSION_MAX_AGE);
        if sessions.len() >= MAX_SESSIONS {
            sessions.remove(0);
        }
        sessions.push((id.clone(), Instant::now()));
        id
    }

    /// Whether `given` is an open session (compared with each in constant
    /// time).
    fn session_open(&self, given: &str) -> bool {
        self.sessions()
            .iter()
            .filter(|(_, opened)| opened.elapsed() < SESSION_MAX_AGE)
            .fold(false, |found, (id, _)| {
                found | same_secret(given.as_bytes(), id.as_bytes())
            })
    }

    fn close_session(&self, given: &str) {
        self.sessions()
            .retain(|(id, _)| !same_secret(given.as_bytes(), id.as_bytes()));
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

/// Why a token is too weak to guard a dashboard off loopback, if it is:
/// fewer than 128 bits by the size of its alphabet and its length (32 hex
/// characters, 22 base64 characters), too few distinct characters, or white
/// space around it (a stray space from a shell or a file).
pub(crate) fn token_weakness(token: &str) -> Option<&'static str> {
    if token.trim() != token {
        return Some("it begins or ends with white space");
    }
    let alphabet: f64 = if token.bytes().all(|b| b.is_ascii_digit()) {
        10.0
    } else if token.bytes().all(|b| b.is_ascii_hexdigit()) {
        16.0
    } else if token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b))
    {
        64.0
    } else {
        95.0
    };
    let bits = token.chars().count() as f64 * alphabet.log2();
    if bits < 128.0 {
        return Some(
            "it holds fewer than 128 bits: use at least 32 hex characters or 22 base64 characters",
        );
    }
    if token.chars().collect::<HashSet<_>>().len() < 8 {
        return Some("it repeats too few distinct characters to be random");
    }
    None
}

/// Checks every request, then adds the security headers to its response.
pub(crate) async fn guard(
    State(state): State<crate::State>,
    request: Request,
    next: Next,
) -> Response {
    if !state.sampling.load(std::sync::atomic::Ordering::Relaxed) {
        sampler::start(&state);
    }
    let mut response = match check(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(refused) => refused,
    };
    let headers = response.headers_mut();
    // A page that set its own policy keeps it.
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// How a request presents the token.
enum Attempt {
    Bearer(String),
    /// `?token=` on a GET: a link with the token, accepted once.
    Query(String),
    /// The login form, posted.
    Form,
}

const NEEDS_TOKEN: &str =
    "this dashboard needs its token: enter it below, or send Authorization: Bearer TOKEN";

/// The request, or the response refusing it.
async fn check(state: &crate::State, request: Request) -> Result<Request, Response> {
    let options = &state.options;
    let api = request.uri().path().starts_with("/api/");
    if options.has_token() {
        let attempt = if let Some(given) = bearer(request.headers()) {
            Some(Attempt::Bearer(given.to_owned()))
        } else if let Some(given) = query_token(&request)
            && matches!(*request.method(), Method::GET | Method::HEAD)
        {
            Some(Attempt::Query(given))
        } else if request.method() == Method::POST && request.uri().path() == "/login" {
            Some(Attempt::Form)
        } else {
            None
        };
        if let Some(attempt) = attempt {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip());
            if let Some(refused) = throttled(state, peer, api) {
                return Err(refused);
            }
            let token = options.token.as_deref().unwrap_or_default().as_bytes();
            return match attempt {
                // Browsers never add an Authorization header by themselves:
                // no CSRF check is needed.
                Attempt::Bearer(given) if same_secret(given.as_bytes(), token) => Ok(request),
                Attempt::Bearer(_) => {
                    wrong_token(state, peer);
                    Err(refuse(api, StatusCode::UNAUTHORIZED, "invalid token"))
                }
                Attempt::Query(given) if same_secret(given.as_bytes(), token) => {
                    let location = without_token(&original_uri(&request));
                    Err(logged_in(state, &request, &location))
                }
                Attempt::Query(_) => {
                    wrong_token(state, peer);
                    Err(if api {
                        refuse(true, StatusCode::UNAUTHORIZED, "invalid token")
                    } else {
                        login_page(state, &request, "wrong token: try again")
                    })
                }
                Attempt::Form => Err(form_login(state, request, peer).await),
            };
        }
        let session = cookie(request.headers(), &cookie_name(request.headers()));
        if !session.is_some_and(|s| state.secrets.session_open(s)) {
            return Err(if api {
                refuse(true, StatusCode::UNAUTHORIZED, NEEDS_TOKEN)
            } else {
                login_page(state, &request, NEEDS_TOKEN)
            });
        }
    } else if !host_allowed(request.headers(), &options.allowed_hosts) {
        return Err(refuse(
            api,
            StatusCode::FORBIDDEN,
            "host not allowed: open the dashboard on a loopback address, or allow this host (DashboardOptions::allow_host)",
        ));
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        && let Err(why) = check_csrf(state, request.headers())
    {
        return Err(refuse(api, StatusCode::FORBIDDEN, why));
    }
    Ok(request)
}

/// The refusal of an attempt from `peer` while its failed logins are
/// throttled, logged once per throttling.
fn throttled(state: &crate::State, peer: Option<IpAddr>, api: bool) -> Option<Response> {
    let Verdict::Refused { retry_after, first } = state.secrets.throttle.check(peer) else {
        return None;
    };
    if first {
        tracing::warn!(
            peer = %peer_text(peer),
            "dashboard: too many wrong tokens from this address; refusing its logins for a while"
        );
    }
    let mut response = refuse(
        api,
        StatusCode::TOO_MANY_REQUESTS,
        "too many wrong tokens: wait, then try again",
    );
    if let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Some(response)
}

fn wrong_token(state: &crate::State, peer: Option<IpAddr>) {
    state.secrets.throttle.failed(peer);
    tracing::warn!(peer = %peer_text(peer), "dashboard: a wrong token was presented");
}

fn peer_text(peer: Option<IpAddr>) -> String {
    peer.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// The posted login form: `token`, and `next`, the page to go back to.
async fn form_login(state: &crate::State, request: Request, peer: Option<IpAddr>) -> Response {
    let base = pages::base_path(&state.options, &request);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_LOGIN_FORM).await else {
        return pages::refused(StatusCode::PAYLOAD_TOO_LARGE, "the login form is too large");
    };
    let form = String::from_utf8_lossy(&body);
    let mut given = String::new();
    let mut next = base.clone();
    for (key, value) in query_pairs(&form) {
        match key.as_str() {
            "token" => given = value,
            "next" if is_local_path(&value) => next = without_token(&value),
            _ => {}
        }
    }
    let token = state.options.token.as_deref().unwrap_or_default();
    let request = Request::from_parts(parts, axum::body::Body::empty());
    if !same_secret(given.as_bytes(), token.as_bytes()) {
        wrong_token(state, peer);
        return pages::login(
            StatusCode::UNAUTHORIZED,
            "wrong token: try again",
            &base,
            &next,
        );
    }
    logged_in(state, &request, &next)
}

/// Whether `path` is a path on this server (never `//host` nor a scheme).
fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

/// The address the browser asked for (the router may be nested).
fn original_uri(request: &Request) -> String {
    let uri = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().clone(), |uri| uri.0.clone());
    match uri.query() {
        Some(query) => format!("{}?{query}", uri.path()),
        None => uri.path().to_owned(),
    }
}

/// `address` without its `token` parameter (however its name is
/// encoded), and never `//host`.
fn without_token(address: &str) -> String {
    let (path, query) = address.split_once('?').unwrap_or((address, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            !pair.is_empty() && percent_decode(key) != "token"
        })
        .collect();
    let path = format!("/{}", path.trim_start_matches('/'));
    if kept.is_empty() {
        path
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

/// Opens a session: sets its cookie and redirects to `location`.
fn logged_in(state: &crate::State, request: &Request, location: &str) -> Response {
    let session = state.secrets.open_session();
    let cookie = session_cookie(state, request, &session, SESSION_MAX_AGE.as_secs());
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    response
}

/// The `Set-Cookie` value of a session (`max_age` 0 deletes it).
fn session_cookie(state: &crate::State, request: &Request, value: &str, max_age: u64) -> String {
    let base = pages::base_path(&state.options, request);
    let path = match base.trim_end_matches('/') {
        "" => "/",
        path => path,
    };
    let secure = if state.options.behind_https {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
        cookie_name(request.headers())
    )
}

/// `POST logout`: ends this browser's session.
pub(crate) async fn logout(State(state): State<crate::State>, request: Request) -> Response {
    if let Some(session) = cookie(request.headers(), &cookie_name(request.headers())) {
        state.secrets.close_session(session);
    }
    let cookie = session_cookie(&state, &request, "", 0);
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The session cookie's name for this Host: one per port.
fn cookie_name(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let port = host
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    match port {
        Some(port) => format!("{SESSION_COOKIE}_{port}"),
        None => SESSION_COOKIE.to_owned(),
    }
}

/// The login page in answer to a page request without a session.
fn login_page(state: &crate::State, request: &Request, why: &str) -> Response {
    let base = pages::base_path(&state.options, request);
    let next = without_token(&original_uri(request));
    pages::login(StatusCode::UNAUTHORIZED, why, &base, &next)
}

fn check_csrf(state: &crate::State, headers: &HeaderMap) -> Result<(), &'static str> {
    let given = headers
        .get(CSRF_HEADER)
        .ok_or("missing X-Soiree-CSRF header")?;
    if !same_secret(given.as_bytes(), state.secrets.csrf.as_bytes()) {
        return Err("invalid X-Soiree-CSRF header");
    }
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return Err("cross-site request refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or("missing Host header")?;
        let origin = origin.to_str().map_err(|_| "invalid Origin header")?;
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .ok_or("cross-origin request refused")?;
        if !origin_host.eq_ignore_ascii_case(host) {
            return Err("cross-origin request refused");
        }
    }
    Ok(())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn query_token(request: &Request) -> Option<String> {
    // `%74oken` is `token` too: keys are decoded.
    query_pairs(request.uri().query()?)
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value)
}

fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn refuse(api: bool, status: StatusCode, why: &'static str) -> Response {
    if api {
        (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
    } else {
        pages::refused(status, why)
    }
}

/// Reports whether the Host header names loopback or an allowed host.
fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    if headers.get_all(header::HOST).iter().count() > 1 {
        return false;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        // HTTP/1.0 without Host: only a local client would send that.
        return true;
    };
    let host = host.to_ascii_lowercase();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':')
            .map_or(host.as_str(), |(name, _)| name)
    };
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    if name
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
    {
        return true;
    }
    allowed
        .iter()
        .any(|allowed| *allowed == host || *allowed == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_values() {
        assert_eq!(percent_decode("a%20b+c%2F"), "a b c/");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn loopback_hosts_are_allowed() {
        let allowed = |host: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            host_allowed(&headers, &["ops.example.com".into()])
        };
        assert!(allowed("127.0.0.1:8080"));
        assert!(allowed("localhost"));
        assert!(allowed("[::1]:9000"));
        assert!(allowed("ops.example.com:443"));
        assert!(!allowed("evil.example.com"));
        assert!(!allowed("10.0.0.1:80"));
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
    }

    #[test]
    fn weak_tokens_are_named() {
        for weak in [
            "a",
            " ",
            "0123456789abcdef0123456789abcde",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            " 0123456789abcdef0123456789abcdef",
        ] {
            assert!(token_weakness(weak).is_some(), "{weak:?}");
        }
        for strong in [
            "0123456789abcdef0123456789abcdef",
            "Zm9vYmFyYmF6cXV4MTIzNDU2",
            "correct horse battery staple",
        ] {
            assert_eq!(token_weakness(strong), None, "{strong:?}");
        }
    }

    #[test]
    fn the_token_is_stripped_however_encoded() {
        assert_eq!(
            without_token("/dead-letters?topic=a&token=x"),
            "/dead-letters?topic=a"
        );
        assert_eq!(without_token("/?%74oken=x"), "/");
        assert_eq!(without_token("//evil.example/?token=x"), "/evil.example/");
    }
}
