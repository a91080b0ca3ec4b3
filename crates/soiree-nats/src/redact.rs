//! Keeping credentials out of Debug output, errors and logs.

/// What stands in for a secret.
const MASK: &str = "***";

/// The server list of a NATS URL (one or several, comma-separated) without
/// user names, passwords or tokens: `nats://host:port,…`. A part that does
/// not parse is not shown at all.
pub(crate) fn redact_urls(urls: &str) -> String {
    urls.split(',')
        .map(|part| redact_url(part.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_url(url: &str) -> String {
    let with_scheme = if url.contains("://") {
        url.to_owned()
    } else {
        format!("nats://{url}")
    };
    let Ok(parsed) = url::Url::parse(&with_scheme) else {
        return "<unparsable url, not shown>".to_owned();
    };
    let host = parsed.host_str().unwrap_or("");
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    let who = if parsed.username().is_empty() && parsed.password().is_none() {
        ""
    } else {
        "***@"
    };
    format!("{}://{who}{host}{port}", parsed.scheme())
}

/// `text` with every occurrence of each secret replaced by `***`, for
/// errors of the client that may quote what it was given.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(secret.as_str(), MASK);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            redact_urls("nats://ada:s3cret@10.0.0.1:4222, tls://tok3n@h:4223"),
            "nats://***@10.0.0.1:4222,tls://***@h:4223"
        );
        assert_eq!(redact_urls("127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert!(!redact_urls("nats://u:p%40ss@[::1").contains("p%40ss"));
    }

    #[test]
    fn scrub_removes_every_secret() {
        let text = scrub("auth s3cret failed for s3cret", &["s3cret".into()]);
        assert_eq!(text, "auth *** failed for ***");
    }
}
