//! PostgreSQL over TLS: a throwaway server with `ssl=on` and a certificate
//! for 127.0.0.1 signed by a CA generated for the test (with the `openssl`
//! command). `sslmode=verify-full` with that CA connects; with another CA
//! it fails with an error naming the server's host:port.
#![cfg(feature = "postgres")]

mod support;

use std::time::Duration;

use soiree_test::postgres::PostgresServer;
use soiree_test::tls::TestCerts;
use support::within;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_connects_and_a_wrong_ca_is_named() {
    let Some(server) = PostgresServer::start_or_skip() else {
        return;
    };
    let Some(certs) = TestCerts::generate_or_skip("pg") else {
        return;
    };
    certs.key_for_postgres().unwrap();
    let admin = sqlx::PgPool::connect(&server.url()).await.unwrap();
    for (name, file) in [
        ("ssl_cert_file", certs.cert()),
        ("ssl_key_file", certs.key()),
    ] {
        let path = file.display().to_string().replace('\'', "''");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER SYSTEM SET {name} = '{path}'"
        )))
        .execute(&admin)
        .await
        .unwrap();
    }
    sqlx::query("ALTER SYSTEM SET ssl = on")
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;

    let url = |ca: std::path::PathBuf| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            server.url(),
            ca.display()
        )
    };
    let store = within(
        LIMIT,
        "connect over TLS",
        soiree_sql::PostgresStore::builder(&url(certs.ca())).build(),
    )
    .await
    .expect("verify-full with the server's CA connects");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(ssl, "the connection is encrypted");

    let err = within(
        LIMIT,
        "connect with a wrong CA",
        soiree_sql::PostgresStore::builder(&url(certs.other_ca()))
            .acquire_timeout(Duration::from_secs(5))
            .build(),
    )
    .await
    .expect_err("another CA does not verify the server");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", server.port())),
        "the error names the server: {text}"
    );
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}
