//! `rediss://` with the `tls` feature: a redis-server serving TLS on a
//! loopback port with a certificate from a CA generated for the test
//! (with the `openssl` command). Run with `cargo test -p soiree-redis
//! --features tls --test tls`.
#![cfg(feature = "tls")]

mod support;

use std::time::Duration;

use futures::StreamExt;
use soiree::{EventBus, EventQueue};
use soiree_test::tls::TestCerts;
use support::{RedisServer, builder_at, eventually};

const LIMIT: Duration = Duration::from_secs(20);

/// The CA's certificate (PEM), as a client is given it.
fn ca_pem(certs: &TestCerts) -> Vec<u8> {
    std::fs::read(certs.ca()).unwrap()
}

fn tls_server(certs: &TestCerts) -> Option<RedisServer> {
    let started = RedisServer::start_tls(&certs.cert(), &certs.key(), &certs.ca());
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
    let Some(certs) = TestCerts::generate_or_skip("ok") else {
        return;
    };
    let Some(server) = tls_server(&certs) else {
        return;
    };
    let store = tokio::time::timeout(
        LIMIT,
        builder_at(&tls_url(&server), "c1")
            .tls_root_cert(ca_pem(&certs))
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
    let Some(certs) = TestCerts::generate_or_skip("server") else {
        return;
    };
    let Some(other) = TestCerts::generate_or_skip("other") else {
        return;
    };
    let Some(server) = tls_server(&certs) else {
        return;
    };
    // Another CA, and the system's roots: neither signed the server's certificate.
    for root in [Some(ca_pem(&other)), None] {
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
