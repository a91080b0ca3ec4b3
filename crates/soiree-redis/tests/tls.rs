//! `rediss://` with the `tls` feature: a redis-server serving TLS on a
//! loopback port with a certificate from a CA generated for the test
//! (with the `openssl` command). Run with `cargo test -p soiree-redis
//! --features tls --test tls`.
#![cfg(feature = "tls")]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use soiree::{EventBus, EventQueue};
use support::{RedisServer, builder_at, eventually};

const LIMIT: Duration = Duration::from_secs(20);

/// A CA and a server certificate for 127.0.0.1 signed by it, in a
/// temporary directory removed on drop.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// `None` (after saying why) when `openssl` is missing outside CI.
    fn generate(name: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "soiree-tls-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = Self { dir };
        std::fs::write(
            certs.path("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
             basicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=soiree test ca",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "1",
                "-extfile",
                "server.ext",
            ],
        ];
        for args in steps {
            match Command::new("openssl")
                .args(args)
                .current_dir(&certs.dir)
                .output()
            {
                Ok(out) if out.status.success() => {}
                Ok(out) => panic!(
                    "openssl {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(err) if !soiree_test::redis::is_ci() => {
                    eprintln!("skipping: openssl is not available ({err})");
                    return None;
                }
                Err(err) => panic!("openssl: {err}"),
            }
        }
        Some(certs)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca.pem")).unwrap()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_server(certs: &Certs) -> Option<RedisServer> {
    let started = RedisServer::start_tls(
        &certs.path("server.pem"),
        &certs.path("server.key"),
        &certs.path("ca.pem"),
    );
    match started {
        Ok(server) => Some(server),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !soiree_test::redis::is_ci() => {
            eprintln!("skipping: redis-server is not installed ({err})");
            None
        }
        Err(err) => panic!("cannot start redis-server with TLS: {err}"),
    }
}

fn tls_url(server: &RedisServer) -> String {
    format!("rediss://127.0.0.1:{}/", server.tls_port().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_works_over_tls() {
    let Some(certs) = Certs::generate("ok") else {
        return;
    };
    let Some(server) = tls_server(&certs) else {
        return;
    };
    let store = tokio::time::timeout(
        LIMIT,
        builder_at(&tls_url(&server), "c1")
            .tls_root_cert(certs.ca_pem())
            .build(),
    )
    .await
    .expect("connects in time")
    .expect("the server's certificate is trusted");
    let bus = EventBus::builder()
        .store(store.clone())
        .poll_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let handled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = std::sync::Arc::clone(&handled);
    bus.on_named("h", "job.run", move |_ctx| {
        h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok(()) }
    })
    .unwrap();
    bus.start().unwrap();
    for i in 0..20 {
        let errors: Vec<_> = tokio::time::timeout(LIMIT, bus.emit("job.run", i).collect())
            .await
            .expect("emitted in time");
        assert!(errors.is_empty(), "{errors:?}");
    }
    assert!(
        eventually(LIMIT, || async {
            handled.load(std::sync::atomic::Ordering::SeqCst) == 20
        })
        .await
    );
    tokio::time::timeout(LIMIT, bus.wait_for_idle())
        .await
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);
    tokio::time::timeout(LIMIT, bus.close())
        .await
        .unwrap()
        .unwrap();
    // The events went through the TLS port: the plain port sees them too.
    let mut conn = support::raw(&server).await;
    let len: u64 = redis::cmd("XLEN")
        .arg(store.events_key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    let Some(certs) = Certs::generate("server") else {
        return;
    };
    let Some(other) = Certs::generate("other") else {
        return;
    };
    let Some(server) = tls_server(&certs) else {
        return;
    };
    // Another CA, and the system's roots: neither signed the server's certificate.
    for root in [Some(other.ca_pem()), None] {
        let mut builder =
            builder_at(&tls_url(&server), "c1").response_timeout(Duration::from_secs(2));
        if let Some(root) = root {
            builder = builder.tls_root_cert(root);
        }
        let built = tokio::time::timeout(LIMIT, builder.build())
            .await
            .expect("fails in time");
        // A refused handshake is a failed connection, naming the server.
        assert!(
            matches!(built, Err(soiree_redis::Error::Connect { .. })),
            "{built:?}"
        );
    }
}
