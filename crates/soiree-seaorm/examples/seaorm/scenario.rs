//! The example's scenario, shared with the test: writes through SeaORM in
//! transactions (committed, rolled back) and on a plain connection, and
//! checks what the listeners received.

#![allow(
    unreachable_pub,
    reason = "SeaORM's derives make the entities' items `pub`; the example and its test share them"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{
    ActiveModelTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Set, TransactionTrait,
};
use soiree::EventBus;
use soiree::mutation::{MutationPayload, Mutations, Operation};
use soiree_seaorm::MutationCapture;

use super::entities::{organization, organization_setting};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The longest the listeners may take.
const LIMIT: Duration = Duration::from_secs(30);

/// Runs the scenario: `bus` consumes the outbox the SeaORM connection `db`
/// writes into (its store's tables in `schema` on PostgreSQL). Returns the
/// mutations the listeners received, sorted by topic then entity id then
/// operation.
pub async fn run(
    bus: &EventBus,
    db: &DatabaseConnection,
    schema: &str,
) -> Result<Vec<MutationPayload>, BoxError> {
    let mutations = Mutations::new(bus.clone());
    let seen: Arc<Mutex<Vec<MutationPayload>>> = Arc::default();
    for (name, entity) in [
        ("crm", organization::ENTITY),
        ("billing", organization_setting::ENTITY),
    ] {
        let sink = Arc::clone(&seen);
        mutations.add_named_mutation_listener(name, entity, move |_ctx, payload| {
            let sink = Arc::clone(&sink);
            async move {
                println!(
                    "{}: {} {} {:?}",
                    payload.entity_type,
                    payload.operation,
                    payload.entity_id,
                    payload.changed_fields
                );
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(payload);
                Ok(())
            }
        })?;
    }
    // Both listeners are registered: start delivering.
    bus.start()?;
    soiree_seaorm::install(MutationCapture::new(mutations).postgres_schema(schema));

    // An organization and its setting, in one transaction: their events
    // commit with them.
    let txn = db.begin().await?;
    let acme = organization::ActiveModel {
        id: Set(1),
        name: Set("acme".into()),
    }
    .insert(&txn)
    .await?;
    let setting = organization_setting::ActiveModel {
        id: Set(10),
        organization_id: Set(acme.id),
        plan: Set("free".into()),
        billing_email: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;

    // Rolled back: no event.
    let txn = db.begin().await?;
    organization::ActiveModel {
        id: Set(2),
        name: Set("never".into()),
    }
    .insert(&txn)
    .await?;
    txn.rollback().await?;

    // An update: the columns set are its changed fields.
    let txn = db.begin().await?;
    let mut active = setting.into_active_model();
    active.plan = Set("pro".into());
    active.billing_email = Set(Some("billing@acme.test".into()));
    active.update(&txn).await?;
    txn.commit().await?;

    // A delete on a plain connection: best effort (its own statement).
    let found = organization_setting::Entity::find_by_id(10)
        .one(db)
        .await?
        .ok_or("setting 10 is missing")?;
    found.into_active_model().delete(db).await?;

    let deadline = tokio::time::Instant::now() + LIMIT;
    while seen.lock().unwrap_or_else(|e| e.into_inner()).len() < 4 {
        if tokio::time::Instant::now() >= deadline {
            return Err("the listeners did not receive 4 mutations in time".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(LIMIT, bus.wait_for_idle()).await?;
    soiree_seaorm::uninstall();
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    seen.sort_by(|a, b| {
        (&a.entity_type, &a.entity_id, order(a.operation)).cmp(&(
            &b.entity_type,
            &b.entity_id,
            order(b.operation),
        ))
    });
    Ok(seen)
}

fn order(operation: Operation) -> u8 {
    match operation {
        Operation::Create => 0,
        Operation::UpdateOne | Operation::Update => 1,
        _ => 2,
    }
}

/// Checks what [`run`] returned.
pub fn check(seen: &[MutationPayload]) -> Result<(), BoxError> {
    let summary: Vec<(String, Operation, String, Vec<String>)> = seen
        .iter()
        .map(|p| {
            (
                p.entity_type.clone(),
                p.operation,
                p.entity_id.clone(),
                p.changed_fields.clone(),
            )
        })
        .collect();
    let strings = |fields: &[&str]| fields.iter().map(|f| (*f).to_owned()).collect::<Vec<_>>();
    let expected = vec![
        (
            "Organization".to_owned(),
            Operation::Create,
            "1".to_owned(),
            strings(&["id", "name"]),
        ),
        (
            "OrganizationSetting".to_owned(),
            Operation::Create,
            "10".to_owned(),
            strings(&["id", "organization_id", "plan"]),
        ),
        (
            "OrganizationSetting".to_owned(),
            Operation::UpdateOne,
            "10".to_owned(),
            strings(&["plan", "billing_email"]),
        ),
        (
            "OrganizationSetting".to_owned(),
            Operation::DeleteOne,
            "10".to_owned(),
            Vec::new(),
        ),
    ];
    if summary != expected {
        return Err(format!("unexpected mutations: {summary:?}").into());
    }
    let updated = &seen[2];
    let after = updated.after.as_ref().ok_or("no after")?;
    if after["plan"] != "pro" || after["billing_email"] != "billing@acme.test" {
        return Err(format!("unexpected row after the update: {after}").into());
    }
    let deleted = &seen[3];
    if deleted.before.as_ref().map(|b| b["plan"].clone()) != Some("pro".into()) {
        return Err(format!("unexpected row before the delete: {:?}", deleted.before).into());
    }
    Ok(())
}
