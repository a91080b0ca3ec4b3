//! PostgreSQL's statements of leader leases (see [`crate::leader`]): one
//! statement each, expiry on the server's clock (`clock_timestamp()`), so
//! that processes on machines whose clocks differ agree on it.

use super::backend::PgBackend;
use crate::leader::{LeaseClock, Leases};

/// Now on the server, in Unix milliseconds.
macro_rules! now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

impl Leases for PgBackend {
    const LEASE_CLOCK: LeaseClock = LeaseClock::Server;

    const SERVER_NOW_MS: &'static str = now_ms!();

    const ACQUIRE_LEASE: &'static str = concat!(
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
    );

    const RENEW_LEASE: &'static str = concat!(
        "UPDATE soiree_leader_leases SET expires_ms = ",
        now_ms!(),
        " + $1, progress = coalesce($2, progress) \
         WHERE name = $3 AND holder = $4 AND token = $5 AND expires_ms > ",
        now_ms!()
    );

    const RELEASE_LEASE: &'static str = concat!(
        "UPDATE soiree_leader_leases SET expires_ms = ",
        now_ms!(),
        " WHERE name = $1 AND holder = $2 AND token = $3 AND expires_ms > ",
        now_ms!()
    );
}
