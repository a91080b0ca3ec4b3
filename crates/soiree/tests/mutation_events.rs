//! Mutation events over a bus: typed listeners per entity type, the live
//! interest check, after-commit emission, and `mutation.detected`.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use soiree::EventBus;
use soiree::mutation::{MutationPayload, Mutations, Operation};
use soiree::workflow::MutationDetectedPayload;

struct BillingClient {
    reconciled: Mutex<Vec<String>>,
}

#[tokio::test]
async fn a_listener_gets_the_typed_payload_and_the_client() {
    let bus = EventBus::builder()
        .client(BillingClient {
            reconciled: Mutex::new(Vec::new()),
        })
        .build()
        .unwrap();
    let mutations = Mutations::new(bus.clone());
    mutations
        .add_mutation_listener("OrganizationSetting", |ctx, payload| async move {
            assert_eq!(ctx.topic(), "OrganizationSetting");
            let client = ctx.client::<BillingClient>().expect("the bus's client");
            client.reconciled.lock().unwrap().push(format!(
                "{} {} {:?}",
                payload.operation, payload.entity_id, payload.changed_fields
            ));
            Ok(())
        })
        .unwrap();
    let payload = MutationPayload::new(Operation::UpdateOne, "OrganizationSetting", "os-1")
        .with_changed_fields(["billing_email"]);
    let errors: Vec<_> = mutations.emit(payload).unwrap().collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    let client = bus.client::<BillingClient>().unwrap();
    assert_eq!(
        *client.reconciled.lock().unwrap(),
        ["OpUpdateOne os-1 [\"billing_email\"]"]
    );
}

#[tokio::test]
async fn nobody_listening_means_nothing_is_captured_unless_always_stage() {
    let mutations = Mutations::new(EventBus::new());
    assert!(!mutations.wants("Invoice"));
    let payload = MutationPayload::new(Operation::Create, "Invoice", "inv-1");
    assert!(mutations.events(&payload).unwrap().is_empty());
    let staged = mutations.clone().always_stage(true);
    assert!(staged.wants("Invoice"));
    let events = staged.events(&payload).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].topic(), "Invoice");
    let stored = soiree::StoredEvent::from_event(&events[0]).unwrap();
    assert_eq!(stored.payload["operation"], "OpCreate");

    // Listeners added later are honoured: the check is live.
    mutations
        .add_mutation_listener("Invoice", |_ctx, _payload| async { Ok(()) })
        .unwrap();
    assert!(mutations.wants("Invoice"));
}

#[tokio::test]
async fn after_commit_emits_on_commit_and_nothing_on_rollback() {
    let mutations = Mutations::new(EventBus::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    mutations
        .add_mutation_listener("Invoice", move |_ctx, payload| {
            s.lock().unwrap().push(payload.entity_id);
            async { Ok(()) }
        })
        .unwrap();

    let mut rolled_back = mutations.after_commit();
    rolled_back.record(MutationPayload::new(
        Operation::Create,
        "Invoice",
        "rolled-back",
    ));
    assert_eq!(rolled_back.len(), 1);
    drop(rolled_back);

    let mut committed = mutations.after_commit();
    committed.record(MutationPayload::new(Operation::Create, "Invoice", "a"));
    committed.record(MutationPayload::new(Operation::Create, "Unheard", "b"));
    committed.record(MutationPayload::new(Operation::DeleteOne, "Invoice", "c"));
    assert_eq!(committed.len(), 2, "a mutation nobody hears is not kept");
    for emission in committed.committed().unwrap() {
        let errors: Vec<_> = emission.collect().await;
        assert!(errors.is_empty());
    }
    mutations.bus().wait_for_idle().await;
    assert_eq!(*seen.lock().unwrap(), ["a", "c"]);
}

#[tokio::test]
async fn mutation_detected_feeds_the_workflow_topic() {
    let bus = EventBus::new();
    let mutations = Mutations::new(bus.clone()).emit_detected(true);
    let detected = Arc::new(Mutex::new(Vec::new()));
    let d = Arc::clone(&detected);
    bus.on("mutation.detected", move |ctx| {
        let payload = soiree::unwrap_payload::<MutationDetectedPayload>(ctx.event()).unwrap();
        d.lock().unwrap().push(payload);
        async { Ok(()) }
    })
    .unwrap();
    assert!(
        mutations.wants("Control"),
        "mutation.detected listens to every entity"
    );
    let payload = MutationPayload::new(Operation::UpdateOne, "Control", "ctl-1")
        .with_changed_fields(["status"])
        .with_actor("user-7");
    mutations.emit(payload).unwrap().detach();
    bus.wait_for_idle().await;
    let detected = detected.lock().unwrap();
    assert_eq!(detected.len(), 1);
    assert_eq!(detected[0].schema_type, "Control");
    assert_eq!(detected[0].object_id, "ctl-1");
    assert_eq!(detected[0].operation, "update");
    assert_eq!(detected[0].changed_fields, ["status"]);
    assert_eq!(detected[0].user_id, "user-7");
}

#[test]
fn an_invalid_entity_type_is_a_typed_error() {
    let mutations = Mutations::new(EventBus::new());
    let err = mutations
        .add_mutation_listener("bad..type", |_ctx, _payload| async { Ok(()) })
        .unwrap_err();
    assert!(matches!(err, soiree::Error::InvalidTopicName { .. }));
    let payload = MutationPayload::new(Operation::Create, "", "x");
    assert!(
        mutations
            .clone()
            .always_stage(true)
            .events(&payload)
            .is_err()
    );
}
