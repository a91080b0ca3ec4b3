//! Keeping passwords out of Debug output, errors and logs.

/// Query parameters that carry a password (`redis+unix:///…?pass=…`).
const SECRET_PARAMS: [&str; 2] = ["pass", "password"];

/// What stands in for a password.
const MASK: &str = "***";

/// The URL with its password (userinfo `user:password@` or `:password@`,
/// or a `pass=` query parameter) replaced by `***`. A URL that does not
/// parse is not shown at all: where its password is cannot be told.
pub(crate) fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<unparsable url, not shown>".to_owned();
    };
    if parsed.password().is_some() && parsed.set_password(Some(MASK)).is_err() {
        return "<url, not shown>".to_owned();
    }
    let secret = |key: &str| SECRET_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p));
    if parsed.query_pairs().any(|(key, _)| secret(&key)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if secret(&key) {
                    MASK.to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// Where the server is, never with credentials: `redis://host:port/db`
/// (`rediss://` for TLS, `redis+unix:///path?db=n` for a socket), built
/// from the parsed connection info rather than the URL, so that neither a
/// user name nor a password can show.
pub(crate) fn server_location(info: &redis::ConnectionInfo) -> String {
    let db = info.redis_settings().db();
    let host = |host: &str| {
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        }
    };
    match info.addr() {
        redis::ConnectionAddr::Tcp(h, port) => format!("redis://{}:{port}/{db}", host(h)),
        redis::ConnectionAddr::TcpTls { host: h, port, .. } => {
            format!("rediss://{}:{port}/{db}", host(h))
        }
        redis::ConnectionAddr::Unix(path) => {
            format!("redis+unix://{}?db={db}", path.display())
        }
        other => format!("{other} (db {db})"),
    }
}

/// Why `url` cannot be used, without echoing it.
pub(crate) fn url_error(url: &str, err: &redis::RedisError) -> String {
    match url::Url::parse(url) {
        Err(parse) => format!(
            "the redis url does not parse ({parse}); it is not shown, as it may hold a password"
        ),
        Ok(_) => format!("redis url {}: {err}", redact_url(url)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact_url("redis://app:s3cret@host:6380/2"),
            "redis://app:***@host:6380/2"
        );
        assert_eq!(redact_url("redis://:s3cret@host/"), "redis://:***@host/");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        let unix = redact_url("redis+unix:///run/redis.sock?db=1&user=app&pass=s3cret");
        assert!(
            !unix.contains("s3cret") && unix.contains("user=app"),
            "{unix}"
        );
        let at = redact_url("redis://app:p@ss@host/");
        assert!(!at.contains("p@ss") && !at.contains("p%40ss"), "{at}");
        assert!(!redact_url("redis://app:s3cret@host:port/").contains("s3cret"));
    }

    #[test]
    fn locations_hold_no_credentials() {
        let location = |url: &str| {
            use redis::IntoConnectionInfo;
            server_location(&url.into_connection_info().unwrap())
        };
        assert_eq!(
            location("redis://app:s3cret@host:6380/2"),
            "redis://host:6380/2"
        );
        assert_eq!(location("redis://127.0.0.1/"), "redis://127.0.0.1:6379/0");
        assert_eq!(location("redis://[::1]:7000"), "redis://[::1]:7000/0");
        let unix = location("redis+unix:///run/redis.sock?db=1&user=app&pass=s3cret");
        assert_eq!(unix, "redis+unix:///run/redis.sock?db=1");
    }
}
