//! TLS: a server that requires it, trusted through a given CA; a client
//! that trusts another CA is refused with an error naming the server.

mod support;

use soiree::{EventQueue, StoredEvent};
use soiree_test::tls::TestCerts;
use support::builder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_is_reached_through_its_ca_only() {
    let Some(certs) = TestCerts::generate_or_skip("nats") else {
        return;
    };
    let config = format!(
        "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n}}\n",
        certs.cert().to_string_lossy(),
        certs.key().to_string_lossy()
    );
    let server = match support::NatsServer::start_with(&config) {
        Ok(server) => server,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !soiree_test::nats::is_ci() => {
            return;
        }
        Err(err) => panic!("cannot start nats-server: {err}"),
    };
    let url = format!("tls://127.0.0.1:{}", server.port());
    let store = builder(&url)
        .tls_root_certificate(certs.ca())
        .require_tls(true)
        .prefix("tls")
        .build()
        .await
        .unwrap();
    store
        .enqueue(&StoredEvent {
            topic: "secure.event".into(),
            payload: serde_json::json!(1),
            properties: Default::default(),
        })
        .await
        .unwrap();
    assert_eq!(store.backlog().await.unwrap(), 1);

    let err = builder(&url)
        .tls_root_certificate(certs.other_ca())
        .require_tls(true)
        .request_timeout(std::time::Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, soiree_nats::Error::Connect { .. }), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", server.port())),
        "{text}"
    );
}
