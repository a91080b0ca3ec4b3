//! `soiree --store postgres://…?sslmode=verify-full&sslrootcert=CA`: the
//! built binary against a throwaway PostgreSQL with `ssl=on` and a
//! certificate from a CA generated for the test. With another CA it fails
//! naming the server's host:port.

mod support;

use std::time::Duration;

use soiree_test::postgres::PostgresServer;
use soiree_test::tls::TestCerts;

const DEADLINE: Duration = Duration::from_secs(60);

/// Turns TLS on (a reload: no restart) with `certs`' server certificate.
async fn enable_ssl(server: &PostgresServer, certs: &TestCerts) {
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
    for statement in ["ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"] {
        sqlx::query(statement).execute(&admin).await.unwrap();
    }
    admin.close().await;
}

#[test]
fn inspects_over_verified_tls_and_names_the_server_on_a_wrong_ca() {
    let Some(server) = PostgresServer::start_or_skip() else {
        return;
    };
    let Some(certs) = TestCerts::generate_or_skip("cli-pg") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        enable_ssl(&server, &certs).await;
        // The application's store, which creates the tables and the group.
        let store = soiree_sql::PostgresStore::connect(&server.url())
            .await
            .unwrap();
        drop(store);
    });
    let url = |ca: std::path::PathBuf| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            server.url(),
            ca.display()
        )
    };
    let out = support::soiree_within(
        &[
            "--store",
            &url(certs.ca()),
            "stats",
            "--json",
            "--interval",
            "0s",
        ],
        DEADLINE,
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = support::soiree_within(&["--store", &url(certs.other_ca()), "stats"], DEADLINE);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{}", server.port())),
        "{out:?}"
    );
    assert!(out.stderr.contains("certificate"), "{out:?}");
}
