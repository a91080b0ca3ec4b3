//! Says which migrations a store is about to apply: a schema change on a
//! production database deserves a line in its log.

use sqlx::migrate::{Migrate, Migrator};

/// Logs at info each migration of `migrator` that the migrations table
/// `table` does not list as applied (every one when the table does not exist
/// yet). Only a log, read before the migrator takes its lock: the migrator
/// itself reports any failure.
pub(crate) async fn log_pending<C: Migrate + Send>(
    conn: &mut C,
    migrator: &Migrator,
    table: &str,
    store: &str,
) {
    let applied = conn
        .list_applied_migrations(table)
        .await
        .unwrap_or_default();
    for migration in migrator.iter() {
        if !migration.migration_type.is_down_migration()
            && !applied.iter().any(|done| done.version == migration.version)
        {
            tracing::info!(
                store,
                version = migration.version,
                "applying migration {:04} ({})",
                migration.version,
                migration.description
            );
        }
    }
}
