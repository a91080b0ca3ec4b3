//! The default consumer name: stable across restarts, distinct between live
//! processes.
//!
//! A store built without `consumer(…)` takes the lowest free slot `n` of its
//! database and group on this host and is named `<host>-<n>`. A slot is an
//! exclusive lock on a file in the temporary directory; the operating
//! system releases it when the process exits or dies (`kill -9` included).
//! So two live stores of one group on one host (in one process or two) hold
//! different slots, and a process restarted alone gets its old slot, hence
//! its old name, back: its leases are its own, and the store takes them
//! over at once instead of waiting for them to expire.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

/// The most slots tried; past them the name falls back to `<host>-<pid>`.
const MAX_SLOTS: u32 = 1024;

/// A slot held by a live store: released when the last handle of the store
/// is dropped, or by the operating system when the process ends.
#[derive(Debug)]
pub(crate) struct ConsumerSlot {
    _lock: File,
}

/// A consumer name and, when it comes from a slot, the slot that keeps it
/// unique among live processes (which makes it safe to take over the leases
/// recorded under it).
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) slot: Option<ConsumerSlot>,
}

/// Claims the lowest free slot for `scope` (the database and group, never
/// a password): `<host>-<slot>`. When no slot can be locked (an unwritable
/// temporary directory, every slot taken) the name is `<host>-<pid>`, unique
/// but not stable, and a warning says so.
pub(crate) fn default_identity(scope: &str) -> Identity {
    let host = host_name();
    let dir = std::env::temp_dir();
    let stem = format!("soiree-consumer-{:016x}", fnv1a(scope.as_bytes()));
    let mut last_error = None;
    for slot in 0..MAX_SLOTS {
        let path = dir.join(format!("{stem}-{slot}.lock"));
        match try_lock(&path) {
            Ok(Some(lock)) => {
                return Identity {
                    name: format!("{host}-{slot}"),
                    slot: Some(ConsumerSlot { _lock: lock }),
                };
            }
            Ok(None) => {}
            Err(err) => {
                last_error = Some((path, err));
                break;
            }
        }
    }
    let name = format!("{host}-{}", std::process::id());
    match last_error {
        Some((path, err)) => tracing::warn!(
            path = %path.display(), %err, consumer = %name,
            "cannot lock a consumer slot file; using a per-process consumer name, so a restarted \
             process waits for its old leases to expire (set `consumer` to a stable unique name)"
        ),
        None => tracing::warn!(
            consumer = %name, slots = MAX_SLOTS,
            "every consumer slot of this database and group is taken on this host; using a \
             per-process consumer name"
        ),
    }
    Identity { name, slot: None }
}

/// Opens and locks `path`: `Ok(None)` when another live store holds it.
fn try_lock(path: &PathBuf) -> std::io::Result<Option<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(err)) => Err(err),
    }
}

/// This host's name (`soiree` when it has none).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "soiree".to_owned())
}

/// FNV-1a, 64 bits: a hash that stays the same across builds and Rust
/// versions, so that a restarted process finds the same slot files.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> String {
        format!(
            "test-scope-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
    }

    #[test]
    fn live_identities_are_distinct_and_a_freed_slot_is_taken_again() {
        let scope = scope();
        let first = default_identity(&scope);
        let second = default_identity(&scope);
        assert!(first.slot.is_some() && second.slot.is_some());
        assert_ne!(first.name, second.name);
        let host = host_name();
        assert_eq!(first.name, format!("{host}-0"));
        assert_eq!(second.name, format!("{host}-1"));
        let name = first.name.clone();
        drop(first);
        // As a restarted process: the freed slot, hence the same name.
        let again = default_identity(&scope);
        assert_eq!(again.name, name);
        drop(second);
    }

    #[test]
    fn scopes_have_their_own_slots() {
        let a = default_identity(&format!("{}-a", scope()));
        let b = default_identity(&format!("{}-b", scope()));
        assert_eq!(a.name, b.name);
    }

    #[test]
    fn the_hash_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
