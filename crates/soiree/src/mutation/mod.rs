//! Mutation events: the Go package's ent integration, for any data layer.
//!
//! A data layer reports each change it makes as a [`MutationPayload`]
//! (operation, entity type and id, changed fields, optional before/after
//! JSON, the actor); listeners subscribe per entity type with
//! [`Mutations::add_mutation_listener`]. The topic of an entity's mutations
//! is its type name ([`mutation_topic`]), as the Go package's `mutationTopic`
//! makes it from ent's schema type.
//!
//! How a mutation becomes an event decides what a crash can lose:
//!
//! | way in | when the event exists | crash between commit and emit |
//! |---|---|---|
//! | [`Mutations::emit`] | at once (no transaction) | n/a |
//! | [`AfterCommit`] | emitted after the caller's commit (the Go semantics) | lost: best effort |
//! | `soiree-sql`: staged in the caller's transaction (outbox) | if and only if the change committed | nothing lost |
//!
//! Only interested listeners cost anything: with nobody listening to an
//! entity's topic in this process, [`Mutations::wants`] is false and
//! capture skips it (the Go hook's live check). Where listeners live in
//! other processes (a durable store between them), turn on
//! [`Mutations::always_stage`].

mod after_commit;
mod mutations;
mod operation;
mod payload;

pub use after_commit::AfterCommit;
pub use mutations::{Mutations, mutation_topic};
pub use operation::Operation;
pub use payload::MutationPayload;
