//! In-process tests of the repairs' safety nets: dry runs, `--limit`, the
//! preview before the confirmation prompt.

use std::sync::atomic::Ordering;

use clap::Parser;
use serde_json::json;

use super::tests::{Fixture, soiree};
use crate::opt::Opt;

#[tokio::test]
async fn dry_runs_change_nothing_and_say_what_would_be_done() {
    let fx = Fixture::standard().await;
    fx.emit("invoice.sent", json!({"invoice": 8})).await;
    fx.failures_reach(2).await;
    assert_eq!(fx.stats().await.dead_letters, 2);

    // No --yes and no terminal: a dry run needs no confirmation.
    let out = soiree(
        fx.inspect(),
        &["dead-letters", "replay", "--all", "--dry-run"],
        None,
    )
    .await
    .ok();
    assert!(out.contains("LISTENER") && out.contains("mailer"), "{out}");
    assert!(
        out.trim_end()
            .ends_with("dry run: would replay 2 dead letters; nothing was changed"),
        "{out}"
    );
    let json = soiree(
        fx.inspect(),
        &[
            "dead-letters",
            "purge",
            "--topic",
            "invoice.*",
            "--limit",
            "1",
            "--dry-run",
            "--json",
        ],
        None,
    )
    .await
    .json();
    assert_eq!(json["action"], "purge");
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["selected"], 1);
    assert_eq!(json["done"], 0);
    assert_eq!(json["items"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["items"][0]["event"]["payload"], json!({"invoice": 7}));

    let letters = soiree(fx.inspect(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let event_id = letters["items"][0]["event_id"].as_str().unwrap().to_owned();
    let out = soiree(fx.inspect(), &["replay", &event_id, "--dry-run"], None)
        .await
        .ok();
    assert!(
        out.contains(&format!("event \"{event_id}\": topic \"invoice.sent\"")),
        "{out}"
    );
    assert!(out.contains("1 dead letter(s)"), "{out}");
    assert!(out.contains("dry run: would replay event"), "{out}");
    let json = soiree(
        fx.inspect(),
        &["replay", &event_id, "--dry-run", "--json"],
        None,
    )
    .await
    .json();
    assert_eq!(
        json,
        json!({"action": "replay", "selected": 1, "done": 0, "event_id": event_id, "dry_run": true})
    );
    let err = soiree(fx.inspect(), &["replay", "nope", "--dry-run"], None)
        .await
        .err();
    assert_eq!(err.exit_code(), 3);

    assert_eq!(fx.stats().await.dead_letters, 2, "nothing was changed");
    assert_eq!(
        fx.failures.load(Ordering::SeqCst),
        2,
        "nothing was replayed"
    );
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn limit_takes_the_oldest_of_the_selection() {
    let fx = Fixture::standard().await;
    fx.emit("invoice.sent", json!({"invoice": 8})).await;
    fx.emit("invoice.sent", json!({"invoice": 9})).await;
    fx.failures_reach(3).await;
    let out = soiree(
        fx.inspect(),
        &["dead-letters", "purge", "--all", "--limit", "2", "--yes"],
        None,
    )
    .await
    .ok();
    assert_eq!(out.trim(), "purged 2 dead letter(s)");
    let left = soiree(fx.inspect(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    assert_eq!(left["items"].as_array().unwrap().len(), 1, "{left}");
    assert_eq!(left["items"][0]["event"]["payload"], json!({"invoice": 9}));
    let err = Opt::try_parse_from(["soiree", "dead-letters", "replay", "--all", "--limit", "0"])
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    fx.bus.close().await.unwrap();
}

#[tokio::test]
async fn the_selection_is_shown_before_the_prompt() {
    let fx = Fixture::standard().await;
    let run = soiree(
        fx.inspect(),
        &["dead-letters", "replay", "--topic", "invoice.*"],
        Some("n\n"),
    )
    .await;
    let prompt = run
        .err
        .find("replay 1 dead letter? [y/N]")
        .expect("a prompt");
    let table = run.err.find("LISTENER").expect("a preview");
    assert!(table < prompt, "{}", run.err);
    assert!(run.err.contains("smtp down"), "{}", run.err);
    assert_eq!(run.err().exit_code(), 2);

    let letters = soiree(fx.inspect(), &["dead-letters", "list", "--json"], None)
        .await
        .json();
    let event_id = letters["items"][0]["event_id"].as_str().unwrap().to_owned();
    let run = soiree(fx.inspect(), &["replay", &event_id], Some("n\n")).await;
    assert!(
        run.err
            .starts_with(&format!("event \"{event_id}\": topic \"invoice.sent\"")),
        "{}",
        run.err
    );
    assert!(run.err.contains("? [y/N]"), "{}", run.err);
    assert_eq!(
        fx.failures.load(Ordering::SeqCst),
        1,
        "nothing was replayed"
    );
    fx.bus.close().await.unwrap();
}
