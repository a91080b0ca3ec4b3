//! Mutation events staged in the caller's transaction: a mutation event
//! exists if and only if its change committed.
//!
//! [`SqlStore::record`](crate::SqlStore::record), on either database,
//! writes the events one mutation becomes ([`Mutations::events`]: the
//! entity's own event, and `mutation.detected` when that is on) into the
//! outbox on the caller's
//! connection, inside the caller's transaction. Nothing is written when
//! nobody wants the mutation ([`Mutations::wants`], checked live); where
//! the listeners run in other processes, build the [`Mutations`] with
//! [`always_stage(true)`](Mutations::always_stage).

use soiree::Event;
use soiree::mutation::{MutationPayload, Mutations};

use crate::{Error, Result};

/// The `(topic, event)` pairs `emit_all_in` takes, for one mutation.
pub(crate) fn staged_events(
    mutations: &Mutations,
    payload: &MutationPayload,
) -> Result<Vec<(String, Event)>> {
    let events = mutations.events(payload).map_err(Error::Event)?;
    Ok(events
        .into_iter()
        .map(|event| (event.topic().to_owned(), event))
        .collect())
}
