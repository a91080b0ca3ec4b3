//! Consumer groups of one prefix: each keeps its own handler successes. The
//! default group reads the dedup set every group used before, so that its
//! records stay readable; a purge removes every group's.

mod support;

use soiree::{EventStore, HandlerDedup, StoredResult};
use support::{builder, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_is_per_group_and_the_default_group_reads_existing_sets() {
    let server = server_or_skip!();
    let mut conn = raw(&server).await;
    // The group and a record as a version before dedup was per group left them.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("{shop}:events")
        .arg("soiree")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("{shop}:dedup:evt-old")
        .arg("mailer")
        .query_async(&mut conn)
        .await
        .unwrap();
    let default = builder(&server, "c1").prefix("shop").build().await.unwrap();
    let billing = builder(&server, "c1")
        .prefix("shop")
        .group("billing")
        .build()
        .await
        .unwrap();
    assert!(
        default
            .handler_succeeded("evt-old", "mailer")
            .await
            .unwrap()
    );
    assert!(
        !billing
            .handler_succeeded("evt-old", "mailer")
            .await
            .unwrap()
    );

    billing
        .save_handler_result(&StoredResult::new("job.run", "evt-new", "mailer", 1, None))
        .await
        .unwrap();
    assert!(
        billing
            .handler_succeeded("evt-new", "mailer")
            .await
            .unwrap()
    );
    assert!(
        !default
            .handler_succeeded("evt-new", "mailer")
            .await
            .unwrap(),
        "another group's success counted for the default group"
    );
    let record: String = redis::cmd("GET")
        .arg("{shop}:done@7:billing:evt-new")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(record, "6:mailer");

    default.purge().await.unwrap();
    for pattern in ["{shop}:dedup*", "{shop}:done*"] {
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(left.is_empty(), "purge left {left:?}");
    }
}
