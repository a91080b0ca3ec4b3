//! The pages: one HTML shell per page, drawn by the embedded script from the
//! API; the assets, embedded in the binary.

use axum::{
    extract::{OriginalUri, Path, Request, State},
    http::{HeaderValue, StatusCode, Uri, header},
    response::{Html, IntoResponse, Response},
};
use rust_embed::RustEmbed;

use crate::DashboardOptions;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The pages, by path: (path, key, title).
const PAGES: &[(&str, &str, &str)] = &[
    ("/", "overview", "Overview"),
    ("/events", "events", "Events"),
    ("/dead-letters", "dead-letters", "Dead letters"),
    ("/tail", "tail", "Live tail"),
    ("/pending", "pending", "Pending"),
    ("/scheduled", "scheduled", "Scheduled"),
];

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The path the browser sees the dashboard's root at, ending in `/`: the
/// configured one, else the request's path less the path inside the
/// router (which differ when the router is nested).
pub(crate) fn base_path(options: &DashboardOptions, request: &Request) -> String {
    if let Some(base) = &options.base_path {
        return base.clone();
    }
    let original = request
        .extensions()
        .get::<OriginalUri>()
        .map(|uri| uri.0.path().to_owned());
    base_from(original.as_deref(), request.uri())
}

fn base_from(original: Option<&str>, inner: &Uri) -> String {
    let inner = inner.path();
    let original = original.unwrap_or(inner);
    let prefix = if inner == "/" {
        original.trim_end_matches('/')
    } else {
        original.strip_suffix(inner).unwrap_or("")
    };
    // Never a protocol-relative base (`//host/`).
    format!("/{}", format!("{prefix}/").trim_start_matches('/'))
}

pub(crate) async fn page(
    State(state): State<crate::State>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
) -> Response {
    let (_, key, title) = PAGES
        .iter()
        .find(|(path, _, _)| *path == uri.path())
        .copied()
        .unwrap_or(PAGES[0]);
    let base = match &state.options.base_path {
        Some(base) => base.clone(),
        None => base_from(Some(original.path()), &uri),
    };
    let nav: String = PAGES
        .iter()
        .map(|(path, nav_key, nav_title)| {
            let href = if *path == "/" { "./" } else { &path[1..] };
            let current = if *nav_key == key {
                " aria-current=\"page\" class=\"current\""
            } else {
                ""
            };
            format!(
                "<a href=\"{href}\" data-nav=\"{nav_key}\"{current}><span class=\"icon icon-{nav_key}\"></span>{nav_title}</a>"
            )
        })
        .collect();
    let html = SHELL
        .replace("{{BASE}}", &escape(&base))
        .replace("{{CSRF}}", &escape(&state.secrets.csrf))
        .replace("{{PAGE}}", key)
        .replace("{{TITLE}}", &escape(title))
        .replace("{{NAV}}", &nav)
        .replace(
            "{{LOGOUT}}",
            if state.options.has_token() {
                "<button type=\"button\" class=\"small\" data-action=\"logout\">Log out</button>"
            } else {
                ""
            },
        );
    Html(html).into_response()
}

pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    let Some(file) = Assets::get(&path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mime = match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    let mut response = file.data.into_owned().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    response
}

pub(crate) async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": "no such route" })),
        )
            .into_response()
    } else {
        refused(StatusCode::NOT_FOUND, "There is no such page.")
    }
}

/// A small page saying why a request was refused (no script, no stored
/// text: only fixed messages).
pub(crate) fn refused(status: StatusCode, why: &str) -> Response {
    small_page(status, why, "")
}

/// The login page: a form posting the token to `{base}login` (never in
/// the address, so never in a proxy's log), then back to `next`.
pub(crate) fn login(status: StatusCode, why: &str, base: &str, next: &str) -> Response {
    let form = format!(
        "<form method=\"post\" action=\"{}login\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" autofocus></label> \
         <button type=\"submit\">Open</button></form>",
        escape(base),
        escape(next)
    );
    small_page(status, why, &form)
}

fn small_page(status: StatusCode, why: &str, login: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>soiree dashboard</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
         <body style=\"font-family: system-ui, sans-serif; margin: 4rem auto; max-width: 36rem; color: #1f2937\">\
         <h1 style=\"font-size: 1.3rem\">soiree dashboard</h1><p>{}</p>{login}</body></html>",
        escape(why)
    );
    let mut response = (status, Html(html)).into_response();
    // Fixed text only: inline style is harmless here, scripts stay banned.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

const SHELL: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<base href="{{BASE}}">
<meta name="soiree-csrf" content="{{CSRF}}">
<title>{{TITLE}} · soiree</title>
<link rel="stylesheet" href="assets/app.css">
<link rel="icon" href="assets/favicon.svg" type="image/svg+xml">
<script src="assets/app.js" defer></script>
</head>
<body data-page="{{PAGE}}">
<aside class="sidebar">
  <div class="brand"><span class="logo"></span>soiree</div>
  <nav>{{NAV}}</nav>
  <div class="store" id="store-info"><span class="muted">store</span></div>
</aside>
<main>
  <header class="topbar">
    <h1>{{TITLE}}</h1>
    <div class="topbar-right"><span id="status" class="status-pill">loading…</span>{{LOGOUT}}</div>
  </header>
  <div id="content" class="content"><noscript>The dashboard needs JavaScript.</noscript></div>
</main>
<div id="toasts" class="toasts" aria-live="polite"></div>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths() {
        let uri = |p: &str| p.parse::<Uri>().unwrap();
        assert_eq!(base_from(None, &uri("/")), "/");
        assert_eq!(base_from(Some("/"), &uri("/")), "/");
        assert_eq!(base_from(Some("/ops"), &uri("/")), "/ops/");
        assert_eq!(base_from(Some("/ops/"), &uri("/")), "/ops/");
        assert_eq!(base_from(Some("/ops/tail"), &uri("/tail")), "/ops/");
        assert_eq!(base_from(Some("/tail"), &uri("/tail")), "/");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
