//! Consumers mean the same as on the SQL stores: `Inspect::consumers` and
//! `stats().consumers` leave out a consumer that holds nothing and has not
//! read for the claim timeout (gone, though still in the group), and keep
//! one that holds pending entries whatever its idle time. A store opened
//! `read_only` creates nothing and refuses repairs.

mod support;

use std::time::Duration;

use soiree::{DeadLetterSelection, EventStore, Filter, Inspect, StoredEvent};
use support::{builder, eventually, raw};

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_idle_past_the_claim_timeout_are_not_listed() {
    let server = server_or_skip!();
    let store = builder(&server, "writer")
        .prefix("gone")
        .build()
        .await
        .unwrap();
    store
        .save_event(&StoredEvent {
            topic: "job.run".into(),
            payload: serde_json::json!({}),
            properties: serde_json::Map::new(),
        })
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    // `holder` reads the entry and never acknowledges it; `ghost` reads
    // nothing.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP",
            "soiree",
            "holder",
            "COUNT",
            "1",
            "STREAMS",
            "{gone}:events",
            ">",
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("XGROUP")
        .arg(&["CREATECONSUMER", "{gone}:events", "soiree", "ghost"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let inspector = builder(&server, "inspector")
        .prefix("gone")
        .claim_timeout(Duration::from_millis(300))
        .read_only(true)
        .build()
        .await
        .unwrap();
    let names = || async {
        let mut names: Vec<String> = inspector
            .consumers()
            .await
            .unwrap()
            .into_iter()
            .map(|consumer| consumer.name)
            .collect();
        names.sort();
        names
    };
    assert!(
        eventually(LIMIT, || async { names().await == ["holder"] }).await,
        "the ghost is left out once idle past the claim timeout: {:?}",
        names().await
    );
    let stats = inspector.stats().await.unwrap();
    assert_eq!(stats.consumers, 1, "{stats:?}");
    // Read-only: repairs are refused, saying why, and nothing was created.
    let err = inspector
        .purge_dead_letters(&DeadLetterSelection::Matching(Filter::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("opened read-only"), "{err}");
    let err = builder(&server, "inspector")
        .prefix("gone")
        .group("typo")
        .read_only(true)
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"no consumer group "typo"; groups: "soiree""#
    );
    let groups: redis::Value = redis::cmd("XINFO")
        .arg(&["GROUPS", "{gone}:events"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let groups: redis::streams::StreamInfoGroupsReply = redis::from_redis_value(groups).unwrap();
    assert_eq!(groups.groups.len(), 1);
}
