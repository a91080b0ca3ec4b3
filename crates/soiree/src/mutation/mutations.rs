//! The mutation eventer: listeners per entity type, the live interest check,
//! and emitting.

use std::future::Future;

use super::{AfterCommit, MutationPayload};
use crate::{
    BoxError, Emission, Event, EventBus, EventContext, ListenerId, Result, TypedTopic,
    bind_listener,
};

/// The topic of an entity type's mutations: the type name itself, trimmed
/// (as the Go package's `mutationTopic` uses ent's schema type).
///
/// # Errors
///
/// [`Error::InvalidTopicName`](crate::Error::InvalidTopicName) when the name is not a valid topic (empty,
/// with empty segments or wildcards, …).
///
/// # Examples
///
/// ```
/// assert_eq!(soiree::mutation::mutation_topic(" OrganizationSetting ").unwrap(), "OrganizationSetting");
/// assert!(soiree::mutation::mutation_topic("org..setting").is_err());
/// ```
pub fn mutation_topic(entity_type: &str) -> Result<String> {
    crate::topic::validate_topic(entity_type).map(str::to_owned)
}

/// Mutation events over a bus: the Go package's `Eventer`.
///
/// Listeners subscribe per entity type and receive a typed
/// [`MutationPayload`]; a data layer reports changes with [`Mutations::emit`]
/// (no transaction), an [`AfterCommit`] (emitted after the caller's commit,
/// best effort), or — durably — by staging them in its own transaction with
/// `soiree-sql`. Cheap to clone.
///
/// # Examples
///
/// The unit-test pattern of the Go package: a bus, a listener, a fake
/// payload.
///
/// ```
/// use futures::StreamExt;
/// use soiree::EventBus;
/// use soiree::mutation::{MutationPayload, Mutations, Operation};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree::Result<()> {
/// let mutations = Mutations::new(EventBus::new());
/// mutations.add_mutation_listener("OrganizationSetting", |_ctx, payload| async move {
///     if payload.operation != Operation::UpdateOne {
///         return Ok(());
///     }
///     println!("reconcile billing of {}", payload.entity_id);
///     Ok(())
/// })?;
///
/// let payload = MutationPayload::new(Operation::UpdateOne, "OrganizationSetting", "org-setting-id");
/// let errors: Vec<_> = mutations.emit(payload)?.collect().await;
/// assert!(errors.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Mutations {
    bus: EventBus,
    always_stage: bool,
    detected: bool,
}

impl Mutations {
    /// Mutation events on `bus`.
    pub fn new(bus: EventBus) -> Self {
        Self {
            bus,
            always_stage: false,
            detected: false,
        }
    }

    /// Captures every mutation, listened to here or not (default false).
    /// Turn it on where the listeners live in other processes, behind a
    /// durable store: this process's bus then knows nothing of them.
    #[must_use]
    pub fn always_stage(mut self, always: bool) -> Self {
        self.always_stage = always;
        self
    }

    /// Also emits `mutation.detected` with a
    /// [`MutationDetectedPayload`](crate::workflow::MutationDetectedPayload)
    /// for every captured mutation, as the workflow topics expect (default
    /// false).
    #[cfg(feature = "workflow")]
    #[must_use]
    pub fn emit_detected(mut self, detected: bool) -> Self {
        self.detected = detected;
        self
    }

    /// The bus the events go to.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Registers `handler` for mutations of `entity_type`.
    ///
    /// # Errors
    ///
    /// As [`EventBus::on`], and [`Error::InvalidTopicName`](crate::Error::InvalidTopicName) for an entity
    /// type that is not a valid topic.
    pub fn add_mutation_listener<F, Fut>(&self, entity_type: &str, handler: F) -> Result<ListenerId>
    where
        F: Fn(EventContext, MutationPayload) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let topic = TypedTopic::<MutationPayload>::new(mutation_topic(entity_type)?);
        bind_listener(&topic, handler).register(&self.bus)
    }

    /// As [`Mutations::add_mutation_listener`], with a stable listener id
    /// (for de-duplication across restarts with a durable store).
    ///
    /// # Errors
    ///
    /// As [`Mutations::add_mutation_listener`].
    pub fn add_named_mutation_listener<F, Fut>(
        &self,
        name: &str,
        entity_type: &str,
        handler: F,
    ) -> Result<ListenerId>
    where
        F: Fn(EventContext, MutationPayload) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let topic = TypedTopic::<MutationPayload>::new(mutation_topic(entity_type)?);
        bind_listener(&topic, handler)
            .named(name)
            .register(&self.bus)
    }

    /// Reports whether a mutation of `entity_type` should be captured: some
    /// listener of this bus hears its topic (or `mutation.detected`, when
    /// that is on), or [`always_stage`](Self::always_stage) is on. Checked
    /// live, so listeners added later are honoured.
    pub fn wants(&self, entity_type: &str) -> bool {
        self.always_stage
            || self.bus.interested_in(entity_type)
            || (self.detected && self.bus.interested_in(MUTATION_DETECTED))
    }

    /// The events one mutation becomes: the mutation's own on its entity
    /// type's topic (when it is wanted) and `mutation.detected` (when on).
    /// What every way of capture emits or stages.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTopicName`](crate::Error::InvalidTopicName) for an entity type that is not a valid
    /// topic.
    pub fn events(&self, payload: &MutationPayload) -> Result<Vec<Event>> {
        let topic = mutation_topic(&payload.entity_type)?;
        let mut events = Vec::with_capacity(2);
        if !self.wants(&topic) {
            return Ok(events);
        }
        if self.always_stage || self.bus.interested_in(&topic) {
            events.push(Event::new(&topic, payload.clone()));
        }
        #[cfg(feature = "workflow")]
        if self.detected {
            let detected = crate::workflow::MutationDetectedPayload {
                schema_type: payload.entity_type.clone(),
                object_id: payload.entity_id.clone(),
                operation: payload.operation.verb().to_owned(),
                changed_fields: payload.changed_fields.clone(),
                user_id: payload.actor_id.clone().unwrap_or_default(),
            };
            events.push(Event::new(MUTATION_DETECTED, detected));
        }
        Ok(events)
    }

    /// Emits one mutation now, outside any transaction (the Go hook's
    /// non-transactional path). The emission is the mutation event's; a
    /// `mutation.detected` event goes out detached. With nobody listening
    /// the emission is already over.
    ///
    /// # Errors
    ///
    /// As [`Mutations::events`].
    pub fn emit(&self, payload: MutationPayload) -> Result<Emission> {
        let mut emission = Emission::completed([]);
        for event in self.events(&payload)? {
            if event.topic() == MUTATION_DETECTED {
                self.bus.emit_event(event).detach();
            } else {
                emission = self.bus.emit_event(event);
            }
        }
        Ok(emission)
    }

    /// Collects mutations made in a transaction, to emit them once it
    /// commits (best effort: see [`AfterCommit`]).
    pub fn after_commit(&self) -> AfterCommit {
        AfterCommit::new(self.clone())
    }
}

/// The workflow topic of detected mutations.
const MUTATION_DETECTED: &str = "mutation.detected";
