//! SQLite's statements of leader leases (see [`crate::leader`]): one
//! statement each on the writer connection, expiry on this process's
//! clock.

use super::backend::SqliteBackend;
use crate::leader::{LeaseClock, Leases};

impl Leases for SqliteBackend {
    const LEASE_CLOCK: LeaseClock = LeaseClock::Process;

    const ACQUIRE_LEASE: &'static str = "INSERT INTO soiree_leader_leases (name, holder, token, expires_ms) \
         VALUES (?1, ?2, 1, ?3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
           token = soiree_leader_leases.token + 1, expires_ms = excluded.expires_ms \
         WHERE soiree_leader_leases.expires_ms <= ?4 OR soiree_leader_leases.holder = ?2 \
         RETURNING token, progress";

    const RENEW_LEASE: &'static str = "UPDATE soiree_leader_leases SET expires_ms = ?1, progress = coalesce(?2, progress) \
         WHERE name = ?3 AND holder = ?4 AND token = ?5 AND expires_ms > ?6";

    const RELEASE_LEASE: &'static str = "UPDATE soiree_leader_leases SET expires_ms = ?4 \
         WHERE name = ?1 AND holder = ?2 AND token = ?3 AND expires_ms > ?4";
}
