//! What a store may lack, and the skips each lack explains.

use std::fmt;

use super::{Conformance, Outcome};

/// The skip of [`queue_redelivers_unacked`](super::queue_redelivers_unacked)
/// when [`Conformance::redelivery_after`] is not set.
pub(super) const REDELIVERY_NOT_SET: &str = "redelivery_after is not set";

/// An optional ability of an [`EventStore`](soiree::EventStore): a check
/// that needs one the store lacks returns [`Outcome::Skipped`] with
/// [`Ability::missing`] as its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ability {
    /// [`EventStore::queue`](soiree::EventStore::queue).
    Queue,
    /// [`EventStore::dedup`](soiree::EventStore::dedup).
    Dedup,
    /// [`EventStore::history`](soiree::EventStore::history).
    History,
    /// A queue that holds delayed events until due
    /// ([`EventQueue::schedules`](soiree::EventQueue::schedules)).
    Scheduling,
    /// [`EventStore::append_unique`](soiree::EventStore::append_unique).
    UniqueKeys,
    /// A queue that keeps snoozes ([`EventQueue::defers`](soiree::EventQueue::defers)).
    Deferral,
    /// [`EventStore::leases`](soiree::EventStore::leases): leader leases,
    /// for periodic events fired once across processes.
    Leases,
    /// [`EventStore::limits`](soiree::EventStore::limits): listener limits
    /// shared by the store's processes (without, each process enforces its own).
    SharedLimits,
}

impl Ability {
    /// Every ability.
    pub const ALL: [Ability; 8] = [
        Ability::Queue,
        Ability::Dedup,
        Ability::History,
        Ability::Scheduling,
        Ability::UniqueKeys,
        Ability::Deferral,
        Ability::Leases,
        Ability::SharedLimits,
    ];

    /// The reason a check gives when it skips for the lack of this ability.
    pub const fn missing(self) -> &'static str {
        match self {
            Ability::Queue => "the store has no queue",
            Ability::Dedup => "the store has no handler dedup",
            Ability::History => "the store has no history",
            Ability::Scheduling => "the store's queue does not schedule delayed events",
            Ability::UniqueKeys => "the store does not implement append_unique",
            Ability::Deferral => "the store's queue does not defer deliveries",
            Ability::Leases => "the store has no leader leases",
            Ability::SharedLimits => "the store does not share listener limits",
        }
    }
}

impl fmt::Display for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ability::Queue => "queue",
            Ability::Dedup => "dedup",
            Ability::History => "history",
            Ability::Scheduling => "scheduling",
            Ability::UniqueKeys => "unique keys",
            Ability::Deferral => "deferral",
            Ability::Leases => "leader leases",
            Ability::SharedLimits => "shared limits",
        })
    }
}

impl Outcome {
    /// Asserts that `check` passed, or skipped for a reason the caller
    /// declared: the lack of one of the abilities in `lacks`, or a check
    /// `config` leaves out. What [`conformance_suite!`](crate::conformance_suite)
    /// asserts of every check.
    ///
    /// # Examples
    ///
    /// ```
    /// use soiree_test::conformance::{Ability, Conformance, Outcome};
    ///
    /// let skipped = Outcome::Skipped(Ability::Queue.missing());
    /// skipped.assert_expected("queue_round_trip", &Conformance::default(), &[Ability::Queue]);
    /// Outcome::Passed.assert_expected("queue_round_trip", &Conformance::default(), &[]);
    /// ```
    ///
    /// # Panics
    ///
    /// When the check skipped for any other reason: a store that lost an
    /// ability, or a check left out by mistake, fails instead of passing
    /// silently.
    pub fn assert_expected(self, check: &str, config: &Conformance, lacks: &[Ability]) {
        let Outcome::Skipped(reason) = self else {
            println!("conformance check {check}: passed");
            return;
        };
        let declared = lacks.iter().any(|ability| ability.missing() == reason)
            || (reason == REDELIVERY_NOT_SET && config.redelivery_after.is_none());
        assert!(
            declared,
            "conformance check {check} skipped ({reason}), but the store does not declare that lack: \
             list it in `lacks` or give the store the ability"
        );
        println!("conformance check {check}: skipped ({reason}), as declared");
    }
}
