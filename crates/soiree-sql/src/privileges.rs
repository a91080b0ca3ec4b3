//! Repairs refused for lack of a privilege: told as what the operation
//! needs and which of it is lacking, not as the database's bare
//! "permission denied for table x".

use std::future::Future;

use crate::backend::Backend;
use crate::core::Core;
use crate::{Error, Result};

/// A repair and the table privileges it needs (privilege, table).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs {
    pub(crate) operation: &'static str,
    pub(crate) grants: &'static [(&'static str, &'static str)],
}

/// Replaying dead letters or events: through the retry table.
pub(crate) const REPLAY: Needs = Needs {
    operation: "replay",
    grants: &[
        ("SELECT", "soiree_events"),
        ("SELECT", "soiree_dead_letters"),
        ("DELETE", "soiree_dead_letters"),
        ("INSERT", "soiree_retries"),
    ],
};

/// Deleting dead letters.
pub(crate) const PURGE: Needs = Needs {
    operation: "purge dead letters",
    grants: &[
        ("SELECT", "soiree_dead_letters"),
        ("DELETE", "soiree_dead_letters"),
    ],
};

impl Needs {
    /// `INSERT on soiree_retries, DELETE on soiree_dead_letters, …`.
    pub(crate) fn describe(&self) -> String {
        self.grants
            .iter()
            .map(|(privilege, table)| format!("{privilege} on {table}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether the database refused a write for lack of a privilege:
/// PostgreSQL's insufficient_privilege or read_only_sql_transaction,
/// SQLite's SQLITE_READONLY (any extended code).
pub(crate) fn is_denied(err: &Error) -> bool {
    let Error::Database(err) = err else {
        return false;
    };
    let Some(db) = err.as_database_error() else {
        return false;
    };
    match db.code().as_deref() {
        Some("42501" | "25006") => true,
        Some(code) => code.parse::<i64>().is_ok_and(|code| code & 0xff == 8),
        None => false,
    }
}

impl<B: Backend> Core<B> {
    /// Runs a repair; a refusal for lack of a privilege becomes
    /// [`Error::PermissionDenied`], naming what is lacking.
    pub(crate) async fn privileged<T>(
        &self,
        needs: Needs,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match work.await {
            Err(err) if is_denied(&err) => {
                let lacking = match self.backend.lacking(needs.grants).await {
                    Ok(lacking) => lacking,
                    Err(_) => err.to_string(),
                };
                Err(Error::PermissionDenied {
                    operation: needs.operation,
                    needs: needs.describe(),
                    lacking,
                })
            }
            other => other,
        }
    }
}
