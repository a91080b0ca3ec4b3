//! Listener successes: one string per event, written with one command for
//! an event's first success, read for a whole batch with one; the sets of
//! earlier versions read while they may still hold a success.

mod support;

use std::time::Duration;

use soiree::{Event, EventQueue, EventStore, HandlerDedup, StoredEvent, StoredResult};
use support::{builder, raw};

const LIMIT: Duration = Duration::from_secs(10);

async fn get<T: redis::FromRedisValue>(
    conn: &mut redis::aio::MultiplexedConnection,
    cmd: &str,
    key: &str,
) -> T {
    redis::cmd(cmd).arg(key).query_async(conn).await.unwrap()
}

fn stored(id: &str) -> StoredEvent {
    let event = Event::new("job.run", 1);
    event.properties().set(soiree::PROPERTY_EVENT_ID, id);
    StoredEvent::from_event(&event).unwrap()
}

async fn commands(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{name}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_successes_are_one_string_with_the_dedup_ttl() {
    let server = server_or_skip!();
    let mut conn = raw(&server).await;
    let store = builder(&server, "c1")
        .prefix("shop")
        .dedup_ttl(Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    store.enqueue(&stored("evt-1")).await.unwrap();
    let got = tokio::time::timeout(LIMIT, store.dequeue(10, Duration::from_millis(500)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
    let (sets, appends) = (
        commands(&mut conn, "set").await,
        commands(&mut conn, "append").await,
    );
    for listener in ["mailer", "a:b"] {
        store
            .save_handler_result(&StoredResult::new("job.run", "evt-1", listener, 1, None))
            .await
            .unwrap();
    }
    // Acknowledging waits for the results written behind.
    tokio::time::timeout(LIMIT, store.ack(&[got[0].receipt.clone()]))
        .await
        .unwrap()
        .unwrap();
    let key = "{shop}:done@6:soiree:evt-1";
    assert_eq!(get::<String>(&mut conn, "GET", key).await, "6:mailer3:a:b");
    let ttl: i64 = get(&mut conn, "TTL", key).await;
    assert!((3000..=3600).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        (
            commands(&mut conn, "set").await - sets,
            commands(&mut conn, "append").await - appends
        ),
        (1, 1),
        "the first success is one SET, the second appends"
    );

    // A success of an event the store does not hold appends, with the TTL.
    store
        .save_handler_result(&StoredResult::new("job.run", "evt-2", "mailer", 1, None))
        .await
        .unwrap();
    assert!(store.handler_succeeded("evt-2", "mailer").await.unwrap());
    assert!(!store.handler_succeeded("evt-2", "a").await.unwrap());
    let ttl: i64 = get(&mut conn, "TTL", "{shop}:done@6:soiree:evt-2").await;
    assert!((3000..=3600).contains(&ttl), "ttl {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dequeued_batch_reads_its_successes_with_one_mget() {
    let server = server_or_skip!();
    let mut conn = raw(&server).await;
    let store = builder(&server, "c1").prefix("shop").build().await.unwrap();
    // Recorded by an earlier delivery, and a damaged record.
    let _: () = redis::cmd("SET")
        .arg("{shop}:done@6:soiree:evt-1")
        .arg("6:mailer5:audit")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("{shop}:done@6:soiree:evt-2")
        .arg("6:mailer99:x")
        .query_async(&mut conn)
        .await
        .unwrap();
    for id in ["evt-1", "evt-2", "evt-3"] {
        store.enqueue(&stored(id)).await.unwrap();
    }
    let (mgets, gets) = (
        commands(&mut conn, "mget").await,
        commands(&mut conn, "get").await,
    );
    let got = tokio::time::timeout(LIMIT, store.dequeue(10, Duration::from_millis(500)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 3);
    let mut answers = Vec::new();
    for (event, listener) in [
        ("evt-1", "mailer"),
        ("evt-1", "audit"),
        ("evt-1", "billing"),
        ("evt-2", "mailer"),
        ("evt-2", "x"),
        ("evt-3", "mailer"),
    ] {
        answers.push(store.handler_succeeded(event, listener).await.unwrap());
    }
    assert_eq!(answers, [true, true, false, true, false, false]);
    assert_eq!(
        (
            commands(&mut conn, "mget").await - mgets,
            commands(&mut conn, "get").await - gets
        ),
        (1, 0),
        "the batch's successes came with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sets_of_earlier_versions_are_read_only_where_a_group_existed() {
    let server = server_or_skip!();
    let mut conn = raw(&server).await;
    // "old": a group an earlier version created, with its sets; "new": sets
    // under a group this version creates (none can be its own).
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("{shop}:events")
        .arg("old")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    for key in ["{shop}:dedup@3:old:evt-1", "{shop}:dedup@3:new:evt-1"] {
        let _: () = redis::cmd("SADD")
            .arg(key)
            .arg("mailer")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let ttl = Duration::from_secs(3600);
    let open = |group: &'static str| {
        builder(&server, "c1")
            .prefix("shop")
            .group(group)
            .dedup_ttl(ttl)
            .build()
    };
    let old = open("old").await.unwrap();
    let new = open("new").await.unwrap();
    assert!(old.handler_succeeded("evt-1", "mailer").await.unwrap());
    assert!(!new.handler_succeeded("evt-1", "mailer").await.unwrap());
    // Read while a set can live: one dedup TTL from the first opening.
    let until: u64 = get(&mut conn, "GET", "{shop}:dedup-legacy@3:old").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(until > now && until <= now + 3_600_000, "{until} vs {now}");
    assert_eq!(
        get::<u64>(&mut conn, "GET", "{shop}:dedup-legacy@3:new").await,
        0
    );

    // A later opening keeps the first one's time.
    let again = open("old").await.unwrap();
    assert!(again.handler_succeeded("evt-1", "mailer").await.unwrap());
    assert_eq!(
        get::<u64>(&mut conn, "GET", "{shop}:dedup-legacy@3:old").await,
        until
    );

    // Once the time has passed, the sets are no longer read.
    let _: () = redis::cmd("SET")
        .arg("{shop}:dedup-legacy@3:old")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let later = open("old").await.unwrap();
    assert!(!later.handler_succeeded("evt-1", "mailer").await.unwrap());

    // A store that may not write reads them when no time is kept.
    let _: () = redis::cmd("DEL")
        .arg("{shop}:dedup-legacy@3:old")
        .query_async(&mut conn)
        .await
        .unwrap();
    let existing = builder(&server, "c1")
        .prefix("shop")
        .group("old")
        .create_missing(false)
        .build()
        .await
        .unwrap();
    assert!(existing.handler_succeeded("evt-1", "mailer").await.unwrap());
    let kept: Option<u64> = get(&mut conn, "GET", "{shop}:dedup-legacy@3:old").await;
    assert_eq!(kept, None, "written by a store that may not create");
}
