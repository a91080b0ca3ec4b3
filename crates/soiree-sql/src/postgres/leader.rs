//! PostgreSQL's statements of leader leases (see [`crate::leader`]): one
//! statement each, expiry on the server's clock (`clock_timestamp()`), so
//! that processes on machines whose clocks differ agree on it.

use async_trait::async_trait;

use super::backend::PgBackend;
use crate::Result;
use crate::leader::Leases;

/// Now on the server, in Unix milliseconds.
macro_rules! now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

#[async_trait]
impl Leases for PgBackend {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<(i64, Option<i64>)>> {
        let granted: Option<(i64, Option<i64>)> = sqlx::query_as(self.q(concat!(
            "INSERT INTO soiree_leader_leases AS l (name, holder, token, expires_ms) \
             VALUES ($1, $2, 1, ",
            now_ms!(),
            " + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               token = l.token + 1, expires_ms = excluded.expires_ms \
             WHERE l.expires_ms <= ",
            now_ms!(),
            " OR l.holder = $2 \
             RETURNING token, progress"
        )))
        .bind(name)
        .bind(holder)
        .bind(ttl_ms)
        .fetch_optional(&self.pool)
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
        let done = sqlx::query(self.q(concat!(
            "UPDATE soiree_leader_leases SET expires_ms = ",
            now_ms!(),
            " + $1, progress = coalesce($2, progress) \
             WHERE name = $3 AND holder = $4 AND token = $5 AND expires_ms > ",
            now_ms!()
        )))
        .bind(ttl_ms)
        .bind(progress)
        .bind(name)
        .bind(holder)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_lease(&self, name: &str, holder: &str, token: i64) -> Result<bool> {
        let done = sqlx::query(self.q(concat!(
            "UPDATE soiree_leader_leases SET expires_ms = ",
            now_ms!(),
            " WHERE name = $1 AND holder = $2 AND token = $3 AND expires_ms > ",
            now_ms!()
        )))
        .bind(name)
        .bind(holder)
        .bind(token)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
