//! `conformance_suite!` runs every check (its list is the suite's), and
//! fails a check that skips for a reason the store did not declare.

use soiree_test::conformance::{Ability, Check, Conformance, Outcome};

/// The checks the macro expands to, as `(kind, name)`.
fn listed() -> Vec<(&'static str, &'static str)> {
    let mut names: Vec<(&'static str, &'static str)> = Vec::new();
    let list = &mut names;
    soiree_test::__conformance_tests!((names: list));
    names
}

#[test]
fn the_macro_runs_every_check_of_the_suite() {
    let on_one_store: Vec<&str> = listed()
        .into_iter()
        .filter(|(kind, _)| *kind == "store")
        .map(|(_, name)| name)
        .collect();
    let all: Vec<&str> = Check::ALL.iter().map(|check| check.name()).collect();
    assert_eq!(on_one_store, all);
}

#[test]
fn the_macro_runs_the_hostile_and_group_checks() {
    let others: Vec<(&str, &str)> = listed()
        .into_iter()
        .filter(|(kind, _)| *kind != "store")
        .collect();
    assert_eq!(
        others,
        [
            ("hostile", "hostile_nesting_depth"),
            ("hostile", "hostile_odd_encodings"),
            ("hostile", "hostile_oversized_names"),
            ("hostile", "hostile_numbers"),
            ("hostile", "hostile_payload_sizes"),
            ("groups", "groups_each_run_every_event"),
            ("inspect", "stats_count_what_a_bus_did"),
            ("inspect", "pages_join_without_gaps"),
            ("inspect", "filters_select_by_topic_event_id_and_time"),
            ("inspect", "invalid_cursor_is_a_store_error"),
            ("inspect", "pending_shows_a_held_delivery"),
            ("inspect", "replayed_dead_letter_runs_its_listener_again"),
            ("inspect", "purge_deletes_only_the_selected_letters"),
            ("inspect", "replay_of_an_unknown_event_is_not_found"),
            ("inspect", "tail_yields_events_stored_after_it_started"),
        ]
    );
}

#[test]
#[should_panic(expected = "does not declare that lack")]
fn a_skip_for_an_undeclared_lack_fails() {
    Outcome::Skipped(Ability::Queue.missing()).assert_expected(
        "queue_round_trip",
        &Conformance::default(),
        &[Ability::Dedup],
    );
}

#[test]
#[should_panic(expected = "does not declare that lack")]
fn a_redelivery_skip_fails_when_redelivery_is_asked_for() {
    let config = Conformance {
        redelivery_after: Some(std::time::Duration::from_secs(1)),
        ..Conformance::default()
    };
    Outcome::Skipped("redelivery_after is not set").assert_expected(
        "queue_redelivers_unacked",
        &config,
        &[],
    );
}

#[test]
fn a_declared_lack_explains_its_skip() {
    Outcome::Skipped(Ability::Queue.missing()).assert_expected(
        "queue_round_trip",
        &Conformance::default(),
        &[Ability::Queue],
    );
}
