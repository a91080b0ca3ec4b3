//! The matcher against the conformance table
//! (`tests/data/topic_matching.tsv`), row by row: `topic_matches`
//! itself, and a bus with the row's pattern registered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use soiree::{EventBus, topic_matches};

/// One row of the table, with its line number in the file.
struct Row {
    line: usize,
    pattern: String,
    subject: String,
    matches: bool,
}

/// The conformance table, compiled into the test from the repository.
const TABLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/topic_matching.tsv"
));

fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for (index, line) in TABLE.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert!(
            fields.len() >= 3,
            "line {}: too few fields: {line:?}",
            index + 1
        );
        let matches = match fields[2] {
            "true" => true,
            "false" => false,
            other => panic!("line {}: matches is {other:?}", index + 1),
        };
        rows.push(Row {
            line: index + 1,
            pattern: fields[0].to_owned(),
            subject: fields[1].to_owned(),
            matches,
        });
    }
    assert!(rows.len() >= 50, "the table has {} rows", rows.len());
    rows
}

/// A subject a bus accepts for emitting: non-empty segments, no wildcards.
fn is_emittable(subject: &str) -> bool {
    !subject.is_empty() && !subject.contains('*') && subject.split('.').all(|s| !s.is_empty())
}

#[test]
fn topic_matches_passes_every_row() {
    let failures: Vec<String> = rows()
        .iter()
        .filter(|row| topic_matches(&row.pattern, &row.subject) != row.matches)
        .map(|row| {
            format!(
                "line {}: topic_matches({:?}, {:?}) should be {}",
                row.line, row.pattern, row.subject, row.matches
            )
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_bus_dispatches_exactly_the_matching_rows() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for row in rows().iter().filter(|row| is_emittable(&row.subject)) {
        let bus = EventBus::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        bus.on(&row.pattern, move |_ctx| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .unwrap_or_else(|err| panic!("line {}: pattern rejected: {err}", row.line));

        if bus.interested_in(&row.subject) != row.matches {
            failures.push(format!(
                "line {}: interested_in({:?}) with {:?} registered should be {}",
                row.line, row.subject, row.pattern, row.matches
            ));
        }
        let errors: Vec<_> = bus.emit(&row.subject, ()).collect().await;
        assert!(errors.is_empty(), "line {}: {errors:?}", row.line);
        let expected = usize::from(row.matches);
        if calls.load(Ordering::SeqCst) != expected {
            failures.push(format!(
                "line {}: emitting {:?} ran the {:?} listener {} times, expected {expected}",
                row.line,
                row.subject,
                row.pattern,
                calls.load(Ordering::SeqCst)
            ));
        }
        checked += 1;
        bus.close().await.expect("first close");
    }
    assert!(checked >= 45, "only {checked} rows were emittable");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn one_bus_with_every_pattern_routes_each_subject_to_its_matches() {
    // All patterns on one bus: the trie must pick out exactly the matching
    // ones per subject, not just work with a single pattern registered.
    let rows = rows();
    let bus = EventBus::new();
    let heard = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut patterns: Vec<&str> = rows.iter().map(|row| row.pattern.as_str()).collect();
    patterns.sort_unstable();
    patterns.dedup();
    for pattern in &patterns {
        let heard = Arc::clone(&heard);
        let name = (*pattern).to_owned();
        bus.on(pattern, move |_ctx| {
            let heard = Arc::clone(&heard);
            let name = name.clone();
            async move {
                heard.lock().unwrap().push(name);
                Ok(())
            }
        })
        .unwrap();
    }
    let mut subjects: Vec<&str> = rows
        .iter()
        .map(|row| row.subject.as_str())
        .filter(|subject| is_emittable(subject))
        .collect();
    subjects.sort_unstable();
    subjects.dedup();
    for subject in subjects {
        heard.lock().unwrap().clear();
        let errors: Vec<_> = bus.emit(subject, ()).collect().await;
        assert!(errors.is_empty(), "{subject}: {errors:?}");
        let mut got = heard.lock().unwrap().clone();
        got.sort_unstable();
        let want: Vec<String> = patterns
            .iter()
            .filter(|pattern| topic_matches(pattern, subject))
            .map(|pattern| (*pattern).to_owned())
            .collect();
        assert_eq!(got, want, "listeners that heard {subject:?}");
        // Rows of the table for this subject agree too (not just topic_matches).
        for row in rows.iter().filter(|row| row.subject == subject) {
            assert_eq!(
                got.contains(&row.pattern),
                row.matches,
                "line {}: {:?} on {subject:?}",
                row.line,
                row.pattern
            );
        }
    }
}
