//! `conformance_suite!`: the one entry point a store's tests use, expanding
//! to one test per check so that each failure names its check.
//!
//! The list of checks lives here, once (`__conformance_tests!`): adding a
//! check to the suite is an edit of this crate only. A test of this crate
//! compares the list with [`Check::ALL`](super::Check::ALL).

/// Runs the whole conformance suite against a store: expands to one
/// `#[tokio::test]` per check (named after the check's function), each on a
/// fresh store, asserting that the check passed or skipped for a reason the
/// invocation declares.
///
/// The arguments, in this order (only `store` is required):
///
/// - `setup: { … }` — statements run at the start of every test, before the
///   store is made: start a throwaway server, make a temporary directory.
///   What they bind lives until the test ends and is visible to the
///   expressions below. A `return` in them ends the test (how a test skips
///   outside CI when its server is not installed; under `CI=true` the
///   throwaway-server helpers panic instead).
/// - `store: EXPR` — the store factory: an expression evaluated inside each
///   async test (it may `.await`) giving a fresh, isolated store (its own
///   instance, database, schema or key prefix), as an `Arc` of the store or
///   an `Arc<dyn EventStore>` (see [`IntoStore`](crate::conformance::IntoStore)).
///   Every check of [`Check::ALL`](crate::conformance::Check::ALL) and every
///   [`hostile`](crate::conformance::hostile) check runs on it.
/// - `lacks: [Queue, …]` — the [`Ability`](crate::conformance::Ability) variants the
///   store does not have. A check may skip only for a declared lack (or one
///   the `config` leaves out); any other skip fails its test.
/// - `groups: EXPR` — opts into the consumer-group checks
///   ([`groups_each_run_every_event`](crate::conformance::groups_each_run_every_event)):
///   an expression giving two handles on one fresh store, reading for two
///   different consumer groups, as a pair.
/// - `inspect: EXPR` — opts into the [`Inspect`](soiree::Inspect) checks
///   of [`inspect`](crate::inspect) (those of
///   [`check_inspect`](crate::inspect::check_inspect), one test each): an
///   expression giving a fresh store that implements `EventStore +
///   Inspect`, as an `Arc` of the store (usually the `store` expression
///   again).
/// - `config: EXPR` — the [`Conformance`](crate::conformance::Conformance)
///   settings (default: `Conformance::default()`), evaluated in each test.
///
/// The invoking crate needs `tokio` (with the `macros` and
/// `rt-multi-thread` features) among its dev-dependencies. Invoke it once
/// per module: the tests are items of the module it is invoked in, so two
/// configurations of one store go in two modules.
///
/// # Examples
///
/// The in-memory store, with its queue and without (a `tests/*.rs` file):
///
/// ```
/// mod memory_queue {
///     soiree_test::conformance_suite! {
///         store: std::sync::Arc::new(soiree::MemoryStore::queue()),
///         groups: {
///             let first = soiree::MemoryStore::queue();
///             let second = first.in_group("second");
///             (std::sync::Arc::new(first), std::sync::Arc::new(second))
///         },
///     }
/// }
///
/// mod memory {
///     soiree_test::conformance_suite! {
///         store: std::sync::Arc::new(soiree::MemoryStore::new()),
///         lacks: [Queue],
///     }
/// }
/// # fn main() {}
/// ```
///
/// A store with a server starts a throwaway one in `setup`:
///
/// ```ignore
/// soiree_test::conformance_suite! {
///     setup: { let Some(server) = RedisServer::start_or_skip() else { return }; },
///     store: store(&server, "soiree").await,
///     groups: (store_in_group(&server, "first").await, store_in_group(&server, "second").await),
///     config: config(),
/// }
/// ```
#[macro_export]
macro_rules! conformance_suite {
    (
        $(setup: { $($setup:tt)* } $(,)?)?
        store: $store:expr
        $(, lacks: [$($lack:ident),* $(,)?])?
        $(, groups: $groups:expr)?
        $(, inspect: $inspect:expr)?
        $(, config: $config:expr)?
        $(,)?
    ) => {
        $crate::__conformance_tests! {
            {
                setup: [$($($setup)*)?],
                store: [$store],
                lacks: [$($($lack)*)?],
                groups: [$($groups)?],
                inspect: [$($inspect)?],
                config: [$($config)?],
            }
        }
    };
}

/// Every check of the suite, each handed to `__conformance_test!` with its
/// kind (what it takes) and the invocation's arguments.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($args:tt) => {
        $crate::__conformance_test!($args, store, saved_events_read_back_identical);
        $crate::__conformance_test!($args, store, event_history_pages_cover_all_events);
        $crate::__conformance_test!($args, store, handler_results_read_back);
        $crate::__conformance_test!($args, store, dedup_is_scoped_per_event_and_handler);
        $crate::__conformance_test!($args, store, queue_round_trip);
        $crate::__conformance_test!($args, store, queue_is_fifo_for_one_consumer);
        $crate::__conformance_test!($args, store, queue_dequeue_respects_max);
        $crate::__conformance_test!($args, store, queue_empty_dequeue_returns_nothing);
        $crate::__conformance_test!($args, store, queue_ack_removes_from_backlog);
        $crate::__conformance_test!($args, store, queue_unacked_stays_in_backlog);
        $crate::__conformance_test!($args, store, queue_redelivers_unacked);
        $crate::__conformance_test!($args, store, bus_delivers_each_event_once);
        $crate::__conformance_test!($args, store, bus_reports_listener_errors);
        $crate::__conformance_test!($args, store, unserializable_payload_persists_nothing);
        $crate::__conformance_test!($args, store, bus_skips_listeners_that_already_succeeded);
        $crate::__conformance_test!($args, store, queue_carries_events_between_buses);
        $crate::__conformance_test!(
            $args,
            store,
            listeners_registered_before_start_each_handle_the_backlog
        );
        $crate::__conformance_test!($args, store, queue_holds_delayed_events_until_due);
        $crate::__conformance_test!($args, store, cancelled_delayed_events_are_never_delivered);
        $crate::__conformance_test!($args, store, bus_delivers_delayed_events_when_due);
        $crate::__conformance_test!($args, store, bus_reruns_snoozed_listeners);
        $crate::__conformance_test!($args, store, queue_defers_without_counting_a_delivery);
        $crate::__conformance_test!($args, store, bus_keeps_long_snoozes_in_the_store);
        $crate::__conformance_test!($args, store, append_unique_keeps_one_event_per_key);
        $crate::__conformance_test!($args, store, bus_emits_a_unique_key_once);
        $crate::__conformance_test!($args, store, bus_batch_listener_settles_each_event_alone);
        $crate::__conformance_test!($args, store, lease_has_one_holder_at_a_time);
        $crate::__conformance_test!($args, store, lease_is_taken_over_only_after_expiry);
        $crate::__conformance_test!($args, store, lease_renew_and_release_only_by_the_holder);
        $crate::__conformance_test!($args, store, shared_limits_bound_slots_and_rates);
        $crate::__conformance_test!($args, store, buses_share_a_listener_limit);
        $crate::__conformance_test!($args, hostile, hostile_nesting_depth);
        $crate::__conformance_test!($args, hostile, hostile_odd_encodings);
        $crate::__conformance_test!($args, hostile, hostile_oversized_names);
        $crate::__conformance_test!($args, hostile, hostile_numbers);
        $crate::__conformance_test!($args, hostile, hostile_payload_sizes);
        $crate::__conformance_test!($args, groups, groups_each_run_every_event);
        $crate::__conformance_test!($args, inspect, stats_count_what_a_bus_did);
        $crate::__conformance_test!($args, inspect, pages_join_without_gaps);
        $crate::__conformance_test!($args, inspect, filters_select_by_topic_event_id_and_time);
        $crate::__conformance_test!($args, inspect, invalid_cursor_is_a_store_error);
        $crate::__conformance_test!($args, inspect, pending_shows_a_held_delivery);
        $crate::__conformance_test!($args, inspect, replayed_dead_letter_runs_its_listener_again);
        $crate::__conformance_test!($args, inspect, purge_deletes_only_the_selected_letters);
        $crate::__conformance_test!($args, inspect, replay_of_an_unknown_event_is_not_found);
        $crate::__conformance_test!($args, inspect, tail_yields_events_stored_after_it_started);
    };
}

/// One test: its body per kind of check. A `(names: VEC)` invocation pushes
/// `(kind, name)` onto `VEC` instead, for the test that keeps the list whole.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ((names: $names:ident), $kind:ident, $check:ident) => {
        $names.push((stringify!($kind), stringify!($check)));
    };
    (
        {
            setup: [$($setup:tt)*],
            store: [$store:expr],
            lacks: [$($lack:ident)*],
            groups: [$($groups:expr)?],
            inspect: [$($inspect:expr)?],
            config: [$($config:expr)?],
        },
        store,
        $check:ident
    ) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            $($setup)*
            let config = $crate::__conformance_config!($($config)?);
            let store = $crate::conformance::IntoStore::into_store($store);
            $crate::conformance::$check(store, &config).await.assert_expected(
                stringify!($check),
                &config,
                &[$($crate::conformance::Ability::$lack),*],
            );
        }
    };
    (
        {
            setup: [$($setup:tt)*],
            store: [$store:expr],
            lacks: [$($lack:ident)*],
            groups: [$($groups:expr)?],
            inspect: [$($inspect:expr)?],
            config: [$($config:expr)?],
        },
        hostile,
        $check:ident
    ) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            $($setup)*
            let config = $crate::__conformance_config!($($config)?);
            let store = $crate::conformance::IntoStore::into_store($store);
            $crate::conformance::hostile::$check(store, &config).await.assert_expected(
                stringify!($check),
                &config,
                &[$($crate::conformance::Ability::$lack),*],
            );
        }
    };
    (
        {
            setup: [$($setup:tt)*],
            store: [$store:expr],
            lacks: [$($lack:ident)*],
            groups: [],
            inspect: [$($inspect:expr)?],
            config: [$($config:expr)?],
        },
        groups,
        $check:ident
    ) => {};
    (
        {
            setup: [$($setup:tt)*],
            store: [$store:expr],
            lacks: [$($lack:ident)*],
            groups: [$groups:expr],
            inspect: [$($inspect:expr)?],
            config: [$($config:expr)?],
        },
        groups,
        $check:ident
    ) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            $($setup)*
            let config = $crate::__conformance_config!($($config)?);
            let (first, second) = $groups;
            let first = $crate::conformance::IntoStore::into_store(first);
            let second = $crate::conformance::IntoStore::into_store(second);
            $crate::conformance::$check(first, second, &config).await.assert_expected(
                stringify!($check),
                &config,
                &[$($crate::conformance::Ability::$lack),*],
            );
        }
    };
    (
        {
            setup: [$($setup:tt)*],
            store: [$store:expr],
            lacks: [$($lack:ident)*],
            groups: [$($groups:expr)?],
            inspect: [],
            config: [$($config:expr)?],
        },
        inspect,
        $check:ident
    ) => {};
    (
        {
            setup: [$($setup:tt)*],
            store: [$store:expr],
            lacks: [$($lack:ident)*],
            groups: [$($groups:expr)?],
            inspect: [$inspect:expr],
            config: [$($config:expr)?],
        },
        inspect,
        $check:ident
    ) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            $($setup)*
            let store = $inspect;
            // The checks bound their own waits; this bounds the whole.
            ::tokio::time::timeout(
                ::std::time::Duration::from_secs(120),
                $crate::inspect::$check(store),
            )
            .await
            .expect(concat!(stringify!($check), " ends within 120s"));
        }
    };
}

/// The invocation's `config`, or the default settings.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_config {
    () => {
        $crate::conformance::Conformance::default()
    };
    ($config:expr) => {{
        let config: $crate::conformance::Conformance = $config;
        config
    }};
}
