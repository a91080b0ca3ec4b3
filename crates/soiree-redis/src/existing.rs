//! Opening a store that must already exist (`create_missing(false)`,
//! `read_only`): the events stream and the group are checked, not
//! created, and the errors name what exists instead; repairs refused for
//! lack of an ACL permission say what they need.

use std::future::Future;

use redis::Value;
use redis::streams::StreamInfoGroupsReply;

use crate::store::is_no_such_key;
use crate::{Error, RedisStore, Result};

/// Prefixes listed in an error, at most.
const LISTED_PREFIXES: usize = 20;
/// SCAN calls made to find other prefixes, at most.
const SCAN_CALLS: usize = 100;

/// A repair and what it needs from an ACL user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs {
    pub(crate) operation: &'static str,
    pub(crate) commands: &'static str,
}

/// Replaying dead letters or events.
pub(crate) const REPLAY: Needs = Needs {
    operation: "replay",
    commands: "XADD on {prefix}:events and XDEL on {prefix}:dead (ACL: +xadd +xdel, write access to the prefix's keys)",
};

/// Deleting dead letters.
pub(crate) const PURGE: Needs = Needs {
    operation: "purge dead letters",
    commands: "XDEL on {prefix}:dead (ACL: +xdel, write access to the prefix's keys)",
};

impl RedisStore {
    /// Checks that the events stream and the group exist.
    pub(crate) async fn check_existing(&self) -> Result<()> {
        let inner = &self.inner;
        let reply: Result<Value> = self
            .query(&redis::Cmd::xinfo_groups(&inner.keys.events))
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) if is_no_such_key(&err) => {
                return Err(self.not_a_store("its events stream does not exist").await);
            }
            Err(err) if err.code() == Some("WRONGTYPE") => {
                return Err(self.not_a_store("its events key is not a stream").await);
            }
            Err(Error::Redis(err)) if err.code() == Some("NOPERM") => {
                return Err(Error::PermissionDenied {
                    operation: "inspection",
                    needs: format!(
                        "read commands on the keys {}:* (ACL: ~{}:* +@read)",
                        inner.keys.prefix_braced(),
                        inner.keys.prefix_braced()
                    ),
                    lacking: format!("redis refused: {}", err.detail().unwrap_or("no permission")),
                });
            }
            Err(err) => return Err(err),
        };
        let groups: StreamInfoGroupsReply = redis::from_redis_value(reply)
            .map_err(|err| Error::UnexpectedReply(err.to_string()))?;
        let mut names: Vec<String> = groups.groups.into_iter().map(|group| group.name).collect();
        if names.contains(&inner.options.group) {
            return Ok(());
        }
        names.sort();
        Err(Error::NoSuchGroup {
            group: inner.options.group.clone(),
            groups: names,
        })
    }

    /// [`Error::NotAStore`], naming the prefixes that hold an events
    /// stream (a bounded SCAN; none listed when it fails).
    async fn not_a_store(&self, why: &str) -> Error {
        let prefixes = self.stream_prefixes().await.unwrap_or_default();
        let reason = if prefixes.is_empty() {
            format!(
                "{why} ({}); no other prefix holds one",
                self.inner.keys.events
            )
        } else {
            format!(
                "{why} ({}); prefixes with a store: {}",
                self.inner.keys.events,
                prefixes
                    .iter()
                    .map(|prefix| format!("{prefix:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Error::NotAStore {
            prefix: self.inner.options.prefix.clone(),
            reason,
        }
    }

    /// The prefixes of the `{prefix}:events` streams in this database.
    async fn stream_prefixes(&self) -> Result<Vec<String>> {
        let mut prefixes = std::collections::BTreeSet::new();
        let mut cursor: u64 = 0;
        for _ in 0..SCAN_CALLS {
            let (next, keys): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg("{*}:events")
                        .arg("COUNT")
                        .arg(1000)
                        .arg("TYPE")
                        .arg("stream"),
                )
                .await?;
            prefixes.extend(keys.iter().filter_map(|key| {
                key.strip_prefix('{')
                    .and_then(|rest| rest.strip_suffix("}:events"))
                    .map(str::to_owned)
            }));
            cursor = next;
            if cursor == 0 || prefixes.len() >= LISTED_PREFIXES {
                break;
            }
        }
        Ok(prefixes.into_iter().take(LISTED_PREFIXES).collect())
    }

    /// Runs a repair: refused on a read-only store; a `NOPERM` becomes
    /// [`Error::PermissionDenied`], naming what the repair needs.
    pub(crate) async fn privileged<T>(
        &self,
        needs: Needs,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let denied = |lacking: String| Error::PermissionDenied {
            operation: needs.operation,
            needs: needs
                .commands
                .replace("{prefix}", &self.inner.keys.prefix_braced()),
            lacking,
        };
        if self.inner.options.read_only {
            return Err(denied("the store was opened read-only".to_owned()));
        }
        match work.await {
            Err(Error::Redis(err)) if err.code() == Some("NOPERM") => Err(denied(format!(
                "redis refused: {}",
                err.detail().unwrap_or("no permission")
            ))),
            other => other,
        }
    }
}
