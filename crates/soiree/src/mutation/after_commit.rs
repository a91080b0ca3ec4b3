//! Emitting a transaction's mutations once it commits: the Go hook's
//! semantics, best effort.

use super::{MutationPayload, Mutations};
use crate::{Emission, Result};

/// The mutations of one transaction, emitted by [`AfterCommit::committed`]
/// once the caller's transaction committed, and dropped unemitted when it
/// rolls back (or the value is dropped).
///
/// This is the Go package's behaviour and has its weakness: a crash between
/// the commit and `committed` loses the events. Stage them in the same
/// transaction with `soiree-sql` where that matters.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use soiree::EventBus;
/// use soiree::mutation::{MutationPayload, Mutations, Operation};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
/// let mutations = Mutations::new(EventBus::new());
/// mutations.add_mutation_listener("Invoice", |_ctx, payload| async move {
///     println!("invoice {} changed", payload.entity_id);
///     Ok(())
/// })?;
///
/// let mut pending = mutations.after_commit();
/// pending.record(MutationPayload::new(Operation::Create, "Invoice", "inv-1"));
/// // … tx.commit().await? …
/// for emission in pending.committed()? {
///     let errors: Vec<_> = emission.collect().await;
///     assert!(errors.is_empty());
/// }
///
/// let mut rolled_back = mutations.after_commit();
/// rolled_back.record(MutationPayload::new(Operation::Create, "Invoice", "inv-2"));
/// drop(rolled_back); // nothing is emitted
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "mutations are emitted only by `committed`"]
pub struct AfterCommit {
    mutations: Mutations,
    staged: Vec<MutationPayload>,
}

impl AfterCommit {
    pub(super) fn new(mutations: Mutations) -> Self {
        Self {
            mutations,
            staged: Vec::new(),
        }
    }

    /// Keeps a mutation for the commit, unless nobody wants it (checked
    /// now, as the Go hook does when the mutation runs).
    pub fn record(&mut self, payload: MutationPayload) {
        if self.mutations.wants(&payload.entity_type) {
            self.staged.push(payload);
        }
    }

    /// The mutations kept so far.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    /// Reports whether no mutation is kept.
    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// The transaction committed: emits every kept mutation, in order.
    ///
    /// # Errors
    ///
    /// As [`Mutations::emit`]; the mutations before the failing one were
    /// emitted.
    pub fn committed(self) -> Result<Vec<Emission>> {
        let mut emissions = Vec::with_capacity(self.staged.len());
        for payload in self.staged {
            emissions.push(self.mutations.emit(payload)?);
        }
        Ok(emissions)
    }
}
