//! Passwords stay out of Debug output and errors; ACL users (username +
//! password) connect and work; a wrong password is a typed error.

mod support;

use std::time::Duration;

use soiree::{Event, EventQueue, PROPERTY_EVENT_ID, StoredEvent};
use soiree_redis::{Error, RedisStore};
use support::RedisServer;

const LIMIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "s3cret-Pa55word";

/// Adds an ACL user `app` with [`PASSWORD`] and every permission.
async fn add_acl_user(server: &RedisServer) {
    let mut conn = support::raw(server).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(format!(">{PASSWORD}"))
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut conn)
        .await
        .unwrap();
}

fn url_as(server: &RedisServer, user: &str, password: &str) -> String {
    format!("redis://{user}:{password}@127.0.0.1:{}/", server.port())
}

fn assert_hidden(text: &str) {
    assert!(!text.contains(PASSWORD), "password shown in: {text}");
    assert!(
        !text.contains("wrong-Pa55word"),
        "password shown in: {text}"
    );
}

#[test]
fn the_builders_debug_masks_the_password() {
    for url in [
        format!("redis://app:{PASSWORD}@db.internal:6380/2"),
        format!("redis://:{PASSWORD}@db.internal/"),
        format!("redis+unix:///run/redis.sock?user=app&pass={PASSWORD}"),
        format!("rediss://app:{PASSWORD}@db.internal:6380/#insecure"),
    ] {
        let shown = format!("{:?}", RedisStore::builder(&url));
        assert_hidden(&shown);
        assert!(shown.contains("***"), "{shown}");
        assert!(shown.contains("db.internal") || shown.contains("redis.sock"));
    }
    let shown = format!(
        "{:#?}",
        RedisStore::builder(&format!("redis://app:{PASSWORD}@h/"))
    );
    assert_hidden(&shown);
    assert!(shown.contains("app"), "the user name stays: {shown}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_unparsable_url_is_not_echoed() {
    for url in [
        format!("redis://app:{PASSWORD}@host:notaport/"),
        format!("redis//:{PASSWORD}@host"),
        format!("http://app:{PASSWORD}@host/"),
        format!("redis://app:{PASSWORD}@0.0.0.0/"),
    ] {
        let err = tokio::time::timeout(LIMIT, RedisStore::builder(&url).build())
            .await
            .expect("fails in time")
            .expect_err("not a usable url");
        assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
        assert_hidden(&err.to_string());
        assert_hidden(&format!("{err:?}"));
        let core: soiree::Error = err.into();
        assert_hidden(&core.to_string());
        assert_hidden(&format!("{core:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_connects_and_works() {
    let server = server_or_skip!();
    add_acl_user(&server).await;
    let store = tokio::time::timeout(
        LIMIT,
        support::builder_at(&url_as(&server, "app", PASSWORD), "c1")
            .prefix("acl")
            .build(),
    )
    .await
    .expect("connects in time")
    .expect("the ACL user is accepted");
    assert_hidden(&format!("{store:?}"));
    let event = Event::new("job.run", 1);
    event.properties().set(PROPERTY_EVENT_ID, "evt-1");
    store
        .enqueue(&StoredEvent::from_event(&event).unwrap())
        .await
        .unwrap();
    let got = store.dequeue(1, Duration::from_millis(200)).await.unwrap();
    assert_eq!(got.len(), 1);
    store.ack(&[got[0].receipt.clone()]).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), 0);

    // The store connected as `app`, not as the default user.
    let mut conn = support::raw(&server).await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(clients.contains("user=app"), "{clients}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_typed_error_without_the_password() {
    let server = server_or_skip!();
    add_acl_user(&server).await;
    for url in [
        url_as(&server, "app", "wrong-Pa55word"),
        url_as(&server, "nobody", "wrong-Pa55word"),
    ] {
        let err = tokio::time::timeout(LIMIT, RedisStore::builder(&url).build())
            .await
            .expect("fails in time")
            .expect_err("wrong credentials");
        assert!(matches!(err, Error::Auth(_)), "{err:?}");
        assert_hidden(&err.to_string());
        assert_hidden(&format!("{err:?}"));
    }
    // A server that wants a password, and a client that sends none.
    let mut conn = support::raw(&server).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = tokio::time::timeout(LIMIT, RedisStore::builder(&server.url()).build())
        .await
        .expect("fails in time")
        .expect_err("no credentials");
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    // The password-only form (`redis://:password@…`) then works.
    let store = tokio::time::timeout(
        LIMIT,
        RedisStore::builder(&format!("redis://:{PASSWORD}@127.0.0.1:{}/", server.port())).build(),
    )
    .await
    .expect("connects in time")
    .expect("the password is accepted");
    assert_eq!(store.backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn a_connection_error_names_the_server_but_not_the_password() {
    // A loopback port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://app:hunter2-secret@127.0.0.1:{port}/0");
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        soiree_redis::RedisStore::builder(&url)
            .response_timeout(std::time::Duration::from_millis(500))
            .build(),
    )
    .await
    .expect("a refused connection fails in time");
    let Err(err) = result else {
        panic!("nothing listens there");
    };
    let text = err.to_string();
    assert!(
        matches!(err, soiree_redis::Error::Connect { .. }),
        "{err:?}"
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!format!("{err:?}").contains("hunter2"));
}
