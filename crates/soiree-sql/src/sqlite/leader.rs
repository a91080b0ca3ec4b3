//! SQLite's statements of leader leases (see [`crate::leader`]): one
//! statement each on the writer connection, expiry on this process's
//! clock.

use async_trait::async_trait;

use super::backend::SqliteBackend;
use crate::Result;
use crate::leader::Leases;
use crate::scheduled::now_ms;

#[async_trait]
impl Leases for SqliteBackend {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<(i64, Option<i64>)>> {
        let now = now_ms();
        let granted: Option<(i64, Option<i64>)> = sqlx::query_as(
            "INSERT INTO soiree_leader_leases (name, holder, token, expires_ms) \
             VALUES (?1, ?2, 1, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               token = soiree_leader_leases.token + 1, expires_ms = excluded.expires_ms \
             WHERE soiree_leader_leases.expires_ms <= ?4 OR soiree_leader_leases.holder = ?2 \
             RETURNING token, progress",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(ttl_ms))
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(granted)
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        token: i64,
        ttl_ms: i64,
        progress: Option<i64>,
    ) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE soiree_leader_leases SET expires_ms = ?1, progress = coalesce(?2, progress) \
             WHERE name = ?3 AND holder = ?4 AND token = ?5 AND expires_ms > ?6",
        )
        .bind(now.saturating_add(ttl_ms))
        .bind(progress)
        .bind(name)
        .bind(holder)
        .bind(token)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_lease(&self, name: &str, holder: &str, token: i64) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE soiree_leader_leases SET expires_ms = ?1 \
             WHERE name = ?2 AND holder = ?3 AND token = ?4 AND expires_ms > ?1",
        )
        .bind(now)
        .bind(name)
        .bind(holder)
        .bind(token)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
