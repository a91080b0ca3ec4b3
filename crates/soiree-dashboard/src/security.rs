//! Who may read and who may change: the token, the session cookie, the
//! CSRF token, the Host and Origin checks, and the headers every response
//! carries.

use std::sync::atomic::Ordering;

use axum::{
    extract::{OriginalUri, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{pages, sampler};

/// The header holding the CSRF token on state-changing requests.
pub(crate) const CSRF_HEADER: &str = "x-soiree-csrf";
/// The session cookie set after a `?token=` login.
pub(crate) const SESSION_COOKIE: &str = "soiree_dashboard_session";

/// Per-process random secrets.
pub(crate) struct Secrets {
    /// Carried by the pages, required on POST.
    pub(crate) csrf: String,
    /// The value of the session cookie: not the token, so the browser never
    /// stores the token itself.
    pub(crate) session: String,
}

impl Secrets {
    pub(crate) fn generate() -> Self {
        Self {
            csrf: random_hex(),
            session: random_hex(),
        }
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Checks every request, then adds the security headers to its response.
pub(crate) async fn guard(
    State(state): State<crate::State>,
    request: Request,
    next: Next,
) -> Response {
    if !state.sampling.load(Ordering::Relaxed) {
        sampler::start(&state);
    }
    let mut response = match check(&state, &request) {
        None => next.run(request).await,
        Some(refused) => refused,
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

/// The response refusing the request, if it is refused.
fn check(state: &crate::State, request: &Request) -> Option<Response> {
    let options = &state.options;
    let headers = request.headers();
    let api = request.uri().path().starts_with("/api/");
    let bearer = bearer(headers);
    if options.has_token() {
        let token = options.token.as_deref().unwrap_or_default().as_bytes();
        match bearer {
            Some(given) if same_secret(given.as_bytes(), token) => {
                // Browsers never add an Authorization header by themselves:
                // no CSRF check is needed.
                return None;
            }
            Some(_) => return Some(refuse(api, StatusCode::UNAUTHORIZED, "invalid token")),
            None => {}
        }
        if let Some(given) = query_token(request)
            && request.method() == Method::GET
        {
            return Some(if same_secret(given.as_bytes(), token) {
                login(state, request)
            } else {
                refuse(api, StatusCode::UNAUTHORIZED, "invalid token")
            });
        }
        let session = cookie(headers, SESSION_COOKIE);
        if !session.is_some_and(|s| same_secret(s.as_bytes(), state.secrets.session.as_bytes())) {
            return Some(refuse(
                api,
                StatusCode::UNAUTHORIZED,
                "this dashboard needs its token: open it with ?token=TOKEN or send Authorization: Bearer TOKEN",
            ));
        }
    } else if !host_allowed(headers, &options.allowed_hosts) {
        return Some(refuse(
            api,
            StatusCode::FORBIDDEN,
            "host not allowed: open the dashboard on a loopback address, or allow this host (DashboardOptions::allow_host)",
        ));
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        && let Err(why) = check_csrf(state, headers)
    {
        return Some(refuse(api, StatusCode::FORBIDDEN, why));
    }
    None
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

/// A valid `?token=`: sets the session cookie and redirects to the same
/// address without the token.
fn login(state: &crate::State, request: &Request) -> Response {
    let original = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().clone(), |uri| uri.0.clone());
    let query: Vec<String> = original
        .query()
        .map(|query| {
            query
                .split('&')
                .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("token"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // Never `//host`: a redirect stays on this server.
    let path = format!("/{}", original.path().trim_start_matches('/'));
    let location = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let base = pages::base_path(&state.options, request);
    let cookie_path = base.trim_end_matches('/');
    let cookie_path = if cookie_path.is_empty() {
        "/"
    } else {
        cookie_path
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path={cookie_path}; HttpOnly; SameSite=Strict",
        state.secrets.session
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    response
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
}
