//! Leader leases ([`soiree::LeaderLease`]) in the KV bucket
//! `SOIREE_<prefix>_LEASES`: one key per lease name (the name in hex),
//! whose value is the current grant as JSON: `{"holder", "token",
//! "ttl_ms", "progress", "released"}`.
//!
//! Every change is a compare-and-set on the key's revision (a KV write
//! that JetStream stores only while the key's last revision is the one
//! read, with a message id naming that revision: see
//! [`Bucket::compare_and_set`]), so of two processes writing after reading
//! the same grant one fails, reads again and sees the other's: two holders
//! can never both be granted. A grant is taken from its holder only once it expired or was
//! released; renew and release check the holder and the token.
//!
//! Expiry: a grant starts at the server's timestamp of its write (the KV
//! entry's `created`, on the clock of the stream's leader) and lasts its
//! `ttl_ms`. A process compares that with its own clock, so the processes'
//! and the servers' clocks must agree (NTP): a process whose clock runs
//! `d` ahead of the server's may take an expired-looking grant over up to
//! `d` early. A process also counts a grant as expired once it has seen
//! the same revision unchanged for the time to live on its monotonic clock,
//! which needs no clock agreement at all (so a process whose clock is
//! behind still takes over, at most one time to live after it first looked).
//!
//! Tokens are the key's revision read before the grant's write, plus one:
//! revisions are stream sequences, which only grow (a deleted key's marker
//! too), so every grant's token is higher than the ones before it. A
//! released grant stays in the value (`released`), with its progress, for
//! the next holder to go on from.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};
use soiree::Lease;
use soiree::kit::{check_lease_args, ttl_ms};

use crate::bucket::{ATTEMPTS, Bucket};
use crate::{NatsStore, Result};

/// Lease names whose last revision a handle remembers (for the expiry on
/// its monotonic clock); past that it forgets them all and starts again.
const SEEN_MAX: usize = 1024;

/// The value of a lease's key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Grant {
    holder: String,
    token: u64,
    ttl_ms: i64,
    #[serde(default)]
    progress: Option<i64>,
    #[serde(default)]
    released: bool,
}

/// A lease's key as read: its revision (0: absent), when the server wrote
/// it, and the grant it holds (`None`: none, or not readable).
type Current = crate::bucket::Read<Grant>;

/// The store's lease bucket.
pub(crate) struct Leases {
    bucket: Bucket,
    /// Lease name → the revision this handle last read and when it first
    /// read it (see the module docs' expiry).
    seen: Mutex<HashMap<String, (u64, Instant)>>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// The name of a prefix's lease bucket.
pub(crate) fn bucket_name(prefix: &str) -> String {
    format!("SOIREE_{prefix}_LEASES")
}

/// Opens the prefix's lease bucket, creating it (with the store's replicas
/// and storage) when `create`; `None` when it is missing and not created
/// (a store opened by an inspecting tool, on a prefix an earlier version
/// made).
pub(crate) async fn open(
    js: &jetstream::Context,
    prefix: &str,
    storage: stream::StorageType,
    replicas: usize,
    create: bool,
    secrets: &[String],
) -> Result<Option<Leases>> {
    let bucket = Bucket::open(js, bucket_name(prefix), storage, replicas, create, secrets).await?;
    Ok(bucket.map(|bucket| Leases {
        bucket,
        seen: Mutex::new(HashMap::new()),
    }))
}

fn key(name: &str) -> String {
    crate::names::hex(name)
}

impl Leases {
    async fn read(&self, name: &str) -> Result<Current> {
        self.bucket
            .read(
                "lease read",
                &key(name),
                "a lease's value is not a grant: treated as free",
            )
            .await
    }

    /// Writes `grant` if the key is still at `revision`; `false` when
    /// another write came first.
    async fn write(&self, name: &str, grant: &Grant, revision: u64) -> Result<bool> {
        self.bucket
            .compare_and_set("lease write", &key(name), grant, revision)
            .await
    }

    /// Whether the grant read at `current` lapsed on the server's
    /// timestamp and this process's clock.
    fn lapsed(current: &Current, grant: &Grant) -> bool {
        let ttl = Duration::from_millis(u64::try_from(grant.ttl_ms).unwrap_or(0));
        current
            .created
            .checked_add(ttl)
            .is_none_or(|end| SystemTime::now() >= end)
    }

    /// Whether another holder's grant read at `current` is over: released,
    /// lapsed, or seen unchanged by this handle for its time to live.
    fn expired(&self, name: &str, current: &Current, grant: &Grant) -> bool {
        if grant.released || Self::lapsed(current, grant) {
            return true;
        }
        let ttl = Duration::from_millis(u64::try_from(grant.ttl_ms).unwrap_or(0));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(name) {
            Some((revision, since)) if *revision == current.revision => since.elapsed() >= ttl,
            _ => {
                if seen.len() >= SEEN_MAX {
                    seen.clear();
                }
                // After the read: the grant was written before this
                // instant, so its holder counts its time from earlier.
                seen.insert(name.to_owned(), (current.revision, Instant::now()));
                false
            }
        }
    }

    pub(crate) async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> soiree::Result<Option<Lease>> {
        check_lease_args(name, holder, ttl)?;
        for _ in 0..ATTEMPTS {
            let current = self.read(name).await?;
            let progress = current.value.as_ref().and_then(|g| g.progress);
            if let Some(grant) = &current.value
                && grant.holder != holder
                && !self.expired(name, &current, grant)
            {
                return Ok(None);
            }
            let token = current.revision + 1;
            let grant = Grant {
                holder: holder.to_owned(),
                token,
                ttl_ms: ttl_ms(ttl),
                progress,
                released: false,
            };
            if self.write(name, &grant, current.revision).await? {
                return Ok(Some(Lease::new(name, holder, token, progress)));
            }
        }
        // Others kept writing it: someone holds it.
        Ok(None)
    }

    /// The current grant when it is `lease`'s and live.
    async fn held(&self, lease: &Lease) -> Result<Option<(Current, Grant)>> {
        let current = self.read(&lease.name).await?;
        let Some(grant) = current.value.clone() else {
            return Ok(None);
        };
        let ours = grant.holder == lease.holder
            && grant.token == lease.token
            && !grant.released
            && !Self::lapsed(&current, &grant);
        Ok(ours.then_some((current, grant)))
    }

    pub(crate) async fn renew(
        &self,
        lease: &Lease,
        ttl: Duration,
        progress: Option<i64>,
    ) -> soiree::Result<bool> {
        check_lease_args(&lease.name, &lease.holder, ttl)?;
        for _ in 0..ATTEMPTS {
            let Some((current, mut grant)) = self.held(lease).await? else {
                return Ok(false);
            };
            grant.ttl_ms = ttl_ms(ttl);
            if progress.is_some() {
                grant.progress = progress;
            }
            if self.write(&lease.name, &grant, current.revision).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) async fn release(&self, lease: &Lease) -> soiree::Result<bool> {
        check_lease_args(&lease.name, &lease.holder, Duration::from_millis(1))?;
        for _ in 0..ATTEMPTS {
            let Some((current, mut grant)) = self.held(lease).await? else {
                return Ok(false);
            };
            grant.released = true;
            if self.write(&lease.name, &grant, current.revision).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Leases {
    /// The leases, by name, at most `limit`: the bucket's keys listed (the
    /// first [`LIST_SCAN`](crate::bucket::LIST_SCAN)), then each read, 32 at a time. A grant is held
    /// while unreleased and unexpired on this process's clock.
    pub(crate) async fn lease_infos(&self, limit: usize) -> Result<Vec<soiree::LeaseInfo>> {
        use futures::StreamExt;
        let keys = self.bucket.list_keys("lease list").await?;
        let names: Vec<String> = keys
            .iter()
            .filter_map(|key| crate::names::unhex(key))
            .collect();
        let mut reads = futures::stream::iter(names)
            .map(|name| async move { self.read(&name).await.map(|current| (name, current)) })
            .buffer_unordered(32);
        let mut leases = Vec::new();
        while let Some(read) = reads.next().await {
            let (name, current) = read?;
            let Some(grant) = &current.value else {
                continue;
            };
            let ttl = Duration::from_millis(u64::try_from(grant.ttl_ms).unwrap_or(0));
            let expires_at = current.created.checked_add(ttl).unwrap_or(current.created);
            let held = !grant.released && !Self::lapsed(&current, grant);
            leases.push(soiree::LeaseInfo::new(
                name,
                grant.holder.clone(),
                grant.token,
                expires_at,
                held,
                grant.progress,
            ));
        }
        leases.sort_by(|a, b| a.name.cmp(&b.name));
        leases.truncate(limit);
        Ok(leases)
    }
}

impl NatsStore {
    pub(crate) fn lease_bucket(&self) -> soiree::Result<&Leases> {
        self.inner.leases.as_deref().ok_or_else(|| {
            crate::bucket::missing("leader leases", &bucket_name(&self.inner.names.prefix))
        })
    }
}

/// Leases in the KV bucket `SOIREE_<prefix>_LEASES`, shared by every group
/// of the prefix: see the crate docs. Expiry starts at the server's
/// timestamp of the grant's write and is judged on the process's clock,
/// so keep the processes' and servers' clocks in step (NTP); a process
/// whose clock runs ahead of the server's by `d` may take a grant over up
/// to `d` early.
#[soiree::async_trait]
impl soiree::LeaderLease for NatsStore {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> soiree::Result<Option<Lease>> {
        self.lease_bucket()?.acquire(name, holder, ttl).await
    }

    async fn renew(
        &self,
        lease: &Lease,
        ttl: Duration,
        progress: Option<i64>,
    ) -> soiree::Result<bool> {
        self.lease_bucket()?.renew(lease, ttl, progress).await
    }

    async fn release(&self, lease: &Lease) -> soiree::Result<bool> {
        self.lease_bucket()?.release(lease).await
    }
}
