//! A KV bucket written only by compare-and-set on a key's revision: the
//! leases' (`lease`) and the shared limits' (`limits`). One place for the
//! bucket's layout, its reads, listing and conditional writes, and the
//! errors that name it with secrets scrubbed.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv, stream};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::redact::scrub;
use crate::{Error, Result};

/// Reads and compare-and-sets of one operation, at most, when other
/// writers keep changing the key between them.
pub(crate) const ATTEMPTS: usize = 8;

/// Keys of a bucket read for a listing (of leases, of limit slots), at most.
pub(crate) const LIST_SCAN: usize = 10_000;

/// The error of a feature (`leader leases`, `shared limits`) whose bucket
/// is missing: the store was opened without creating it.
pub(crate) fn missing(feature: &str, bucket: &str) -> soiree::Error {
    soiree::Error::Unsupported(format!(
        "{feature}: the bucket {bucket} is missing (open the store with create_missing)"
    ))
}

/// An open KV bucket: its handle, its name (in errors and logs) and the
/// secrets its errors must not show.
pub(crate) struct Bucket {
    js: jetstream::Context,
    kv: kv::Store,
    name: String,
    secrets: Vec<String>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A key's value as read: its revision (0: absent, which a compare-and-set
/// with revision 0 creates), when the server wrote it, and its value
/// decoded (`None`: absent, deleted, purged or not readable).
pub(crate) struct Read<T> {
    pub(crate) revision: u64,
    pub(crate) created: SystemTime,
    pub(crate) value: Option<T>,
}

impl Bucket {
    /// Opens the bucket `name`, creating it (with the store's replicas and
    /// storage) when `create`; `None` when it is missing and not created
    /// (a store opened by an inspecting tool, on a prefix an earlier
    /// version made).
    pub(crate) async fn open(
        js: &jetstream::Context,
        name: String,
        storage: stream::StorageType,
        replicas: usize,
        create: bool,
        secrets: &[String],
    ) -> Result<Option<Self>> {
        let fail = |operation: &'static str, cause: String| {
            Error::jetstream(operation, &name, scrub(&cause, secrets))
        };
        if create {
            // The layout of a KV bucket, but reads answered by the stream's
            // leader (no direct gets from a replica that may lag), so that a
            // writer does not compute its next value from an older revision.
            let config = stream::Config {
                name: format!("KV_{name}"),
                subjects: vec![format!("$KV.{name}.>")],
                max_messages_per_subject: 1,
                storage,
                num_replicas: replicas,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: false,
                discard: stream::DiscardPolicy::New,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            crate::store::create_stream(js, config)
                .await
                .map_err(|err| fail("create bucket", err.to_string()))?;
        }
        let kv = match js.get_key_value(name.clone()).await {
            Ok(kv) => kv,
            Err(_) if !create => return Ok(None),
            Err(err) => return Err(fail("open bucket", err.to_string())),
        };
        Ok(Some(Self {
            js: js.clone(),
            kv,
            name,
            secrets: secrets.to_vec(),
        }))
    }

    /// An error of `operation` on this bucket, its cause without secrets.
    pub(crate) fn err(&self, operation: &'static str, cause: impl std::fmt::Display) -> Error {
        Error::jetstream(
            operation,
            &self.name,
            scrub(&cause.to_string(), &self.secrets),
        )
    }

    /// The bucket's keys, the first [`LIST_SCAN`] of them (a listing's
    /// bound).
    pub(crate) async fn list_keys(&self, operation: &'static str) -> Result<Vec<String>> {
        use futures::StreamExt;
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|err| self.err(operation, err))?;
        let mut listed = Vec::new();
        while listed.len() < LIST_SCAN
            && let Some(key) = keys.next().await
        {
            listed.push(key.map_err(|err| self.err(operation, err))?);
        }
        Ok(listed)
    }

    /// Reads `key` (from the stream's leader: the buckets have no direct
    /// gets) and decodes its JSON value; a value that does not decode is
    /// logged with `unreadable` and read as `None`.
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        key: &str,
        unreadable: &'static str,
    ) -> Result<Read<T>> {
        let entry = self
            .kv
            .entry(key)
            .await
            .map_err(|err| self.err(operation, err))?;
        let Some(entry) = entry else {
            return Ok(Read {
                revision: 0,
                created: SystemTime::UNIX_EPOCH,
                value: None,
            });
        };
        let value = match entry.operation {
            kv::Operation::Put => serde_json::from_slice::<T>(&entry.value)
                .inspect_err(|err| tracing::warn!(bucket = %self.name, %err, "{unreadable}"))
                .ok(),
            kv::Operation::Delete | kv::Operation::Purge => None,
        };
        Ok(Read {
            revision: entry.revision,
            created: SystemTime::from(entry.created),
            value,
        })
    }

    /// Writes `value` as JSON to `key` if the key is still at `revision`
    /// (0: still absent); `false` when another write came first.
    ///
    /// A KV `update` alone is not enough on a cluster: nats-server 2.9
    /// checks the expected last subject sequence against the stored
    /// messages only, so concurrent writers that read the same revision are
    /// all stored while the first is still being replicated (seen with 8
    /// writers on an R3 bucket). The publish also carries the message id
    /// `<key>@<revision>`, which the stream's duplicate window holds from
    /// the moment the leader takes the write: of the writers from one
    /// revision only the first is stored, the others get a duplicate's
    /// acknowledgement. Revisions are stream sequences, never reused, so the
    /// id names one read.
    pub(crate) async fn compare_and_set<T: Serialize>(
        &self,
        operation: &'static str,
        key: &str,
        value: &T,
        revision: u64,
    ) -> Result<bool> {
        use jetstream::context::PublishErrorKind;
        let json = serde_json::to_vec(value).map_err(|err| self.err(operation, err))?;
        let publish = jetstream::message::PublishMessage::build()
            .payload(json.into())
            .expected_last_subject_sequence(revision)
            .message_id(format!("{key}@{revision}"));
        let ack = match self
            .js
            .send_publish(format!("$KV.{}.{key}", self.name), publish)
            .await
        {
            Ok(ack) => ack.await,
            Err(err) => Err(err),
        };
        match ack {
            Ok(ack) => Ok(!ack.duplicate),
            Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
            Err(err) => Err(self.err(operation, err)),
        }
    }
}
