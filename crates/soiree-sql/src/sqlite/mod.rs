//! The SQLite store, the embedded durable default: builder and the
//! driver's transactional emit.

mod backend;
mod common;
mod leader;
mod limits;
mod scheduled;
mod statements;
mod values;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use soiree::MetricsRegistry;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Pool, Sqlite, Transaction};

use self::backend::{SqliteBackend, append_param};
use self::statements::SQL;
use crate::backend::{NewEvent, Param, bind_params};
use crate::core::Core;
use crate::metrics::SqlMetrics;
use crate::options::Options;
use crate::{Driver, Error, Result, SqlStore, SqlStoreBuilder};

/// The store's migrations, applied by `build` (unless turned off).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// A soiree store in a SQLite file: durable events with no server, the same
/// log, leases and dedup as [`PostgresStore`](crate::PostgresStore), and
/// transactional emit ([`emit_in`](SqlStore::emit_in)): [`SqlStore`] on
/// `sqlx::Sqlite`.
///
/// The database runs in WAL mode with `synchronous=NORMAL`: a crash of the
/// process loses nothing that was committed; a power loss or OS crash may
/// lose the last commits before the WAL reached the disk. The store writes
/// through one connection (`BEGIN IMMEDIATE` for multi-statement writes) and
/// reads through a pool; other processes on the same file wait for the
/// write lock up to `busy_timeout`. Consumers find new events by polling
/// (every 25 ms by default), and at once after a commit made through this
/// store in this process.
///
/// # Examples
///
/// ```
/// use soiree::EventBus;
/// use soiree_sql::SqliteStore;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("soiree-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let store = SqliteStore::open(dir.join("events.db")).await?;
/// let bus = EventBus::builder().store(store.clone()).build()?;
/// bus.on_named("welcome", "user.created", |_ctx| async { Ok(()) })?;
/// bus.start()?;
///
/// let mut tx = store.begin().await?;
/// store.emit_in(&mut tx, "user.created", serde_json::json!({ "name": "ada" })).await?;
/// store.commit(tx).await?;
///
/// bus.wait_for_idle().await;
/// bus.close().await?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (creating it if missing) the database file at `path` with the
    /// default options and applies the migrations.
    ///
    /// # Errors
    ///
    /// As for [`SqlStoreBuilder::<Sqlite>::build`](SqlStoreBuilder::build).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: migrations run in transactions.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).build().await
    }

    /// A builder for a store in the database file at `path` (created if
    /// missing). A `sqlite:` URL is accepted too.
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        let mut options = Options::new(Duration::from_millis(25));
        options.max_connections = 4;
        SqlStoreBuilder::new(
            options,
            SqliteSettings {
                path: path.as_ref().to_path_buf(),
                busy_timeout: Duration::from_secs(10),
                synchronous: SqliteSynchronous::Normal,
            },
        )
    }
}

#[async_trait]
impl Driver for Sqlite {
    type Backend = SqliteBackend;
    type Settings = SqliteSettings;
    const KIND: &'static str = "sqlite";

    fn pool(backend: &SqliteBackend) -> &Pool<Self> {
        &backend.writer
    }

    async fn begin(backend: &SqliteBackend) -> Result<Transaction<'static, Self>> {
        Ok(backend.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn insert(
        _backend: &SqliteBackend,
        conn: &mut SqliteConnection,
        events: &[NewEvent],
    ) -> Result<()> {
        backend::insert_events(conn, events).await
    }

    async fn insert_owned(
        _backend: &SqliteBackend,
        conn: &mut SqliteConnection,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        backend::insert_owned_events(conn, events).await
    }

    async fn execute_in(
        _backend: &SqliteBackend,
        conn: &mut SqliteConnection,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<u64> {
        let query = sqlx::query(AssertSqlSafe(sql.to_owned()));
        Ok(bind_params(query, params)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn fetch_in(
        _backend: &SqliteBackend,
        conn: &mut SqliteConnection,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<SqliteRow>> {
        let query = sqlx::query(AssertSqlSafe(sql.to_owned()));
        Ok(bind_params(query, params).fetch_all(conn).await?)
    }

    fn outbox_statement(
        schema: &str,
        events: &[NewEvent],
    ) -> Result<(String, Vec<Option<String>>)> {
        let table = format!(
            "INSERT INTO {}.soiree_events",
            crate::triggers::quote_ident(crate::triggers::identifier(schema)?)
        );
        let sql = SQL.append.replacen("INSERT INTO soiree_events", &table, 1);
        Ok((sql, vec![Some(append_param(events)?)]))
    }

    async fn commit(tx: Transaction<'_, Self>) -> Result<()> {
        Ok(tx.commit().await?)
    }

    async fn fence_in(
        _backend: &SqliteBackend,
        conn: &mut SqliteConnection,
        fence: &crate::fence::TxFence<'_>,
    ) -> Result<crate::fence::Settle> {
        crate::fence::sqlite(conn, fence).await
    }
}

/// Builds a [`SqliteStore`]: `SqliteStore::builder(path)…build().await`.
///
/// | option | default | what it does |
/// |---|---|---|
/// | [`group`](SqlStoreBuilder::group) | `soiree` | consumer group: stores with the same group share the work |
/// | [`consumer`](SqlStoreBuilder::consumer) | `<host>-<n>` | this store's name on its leases |
/// | [`lease_timeout`](SqlStoreBuilder::lease_timeout) | 30 s | how long a claimed range stays with a consumer that stopped extending it |
/// | [`batch_size`](SqlStoreBuilder::batch_size) | 1000 | events per lease at most |
/// | [`max_deliveries`](SqlStoreBuilder::max_deliveries) | 5 | deliveries after which events go to the dead letters |
/// | [`poll_interval`](SqlStoreBuilder::poll_interval) | 25 ms | how often an idle consumer looks for new events |
/// | [`busy_timeout`](SqlStoreBuilder::busy_timeout) | 10 s | how long a write waits for another writer |
/// | [`durable_commits`](SqlStoreBuilder::durable_commits) | off | `synchronous=FULL` instead of `NORMAL` |
/// | [`max_connections`](SqlStoreBuilder::max_connections) | 4 | reader connections (writes use one connection) |
/// | [`acquire_timeout`](SqlStoreBuilder::acquire_timeout) | 10 s | how long to wait for a pooled connection |
/// | [`migrate`](SqlStoreBuilder::migrate) | on | apply the migrations in `build` |
/// | [`create_missing`](SqlStoreBuilder::create_missing) | on | create the store and group when missing (off: open only an existing one) |
/// | [`read_only`](SqlStoreBuilder::read_only) | off | inspect only: read-only connections, nothing created |
/// | [`ordered_by_key`](SqlStoreBuilder::ordered_by_key) | off | one event at a time per `soiree.key`, in log order |
/// | [`metrics_registry`](SqlStoreBuilder::metrics_registry) | [`MetricsRegistry::global`] | where the metrics go |
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use soiree_sql::SqliteStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree_sql::Result<()> {
/// let store = SqliteStore::builder("events.db")
///     .group("mailer")
///     .poll_interval(Duration::from_millis(10))
///     .build()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
pub type SqliteStoreBuilder = SqlStoreBuilder<Sqlite>;

/// The builder's options that only SQLite has.
#[doc(hidden)]
#[derive(Debug)]
pub struct SqliteSettings {
    path: std::path::PathBuf,
    busy_timeout: Duration,
    synchronous: SqliteSynchronous,
}

impl SqlStoreBuilder<Sqlite> {
    /// Sets how long a write waits for another connection's write lock
    /// (default 10 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.settings.busy_timeout = timeout;
        self
    }

    /// With `true`, every commit waits for the disk (`synchronous=FULL`):
    /// no committed event is lost even on power loss, at the cost of a sync
    /// per commit. The default, `synchronous=NORMAL` in WAL mode, loses
    /// nothing when the process crashes, but a power loss or OS crash may
    /// lose the last commits.
    pub fn durable_commits(mut self, durable: bool) -> Self {
        self.settings.synchronous = if durable {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        };
        self
    }

    /// Opens the database (creating the file if missing), applies the
    /// migrations (unless turned off) and registers the consumer group,
    /// starting at the beginning of the log.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad path or option,
    /// [`Error::Open`] when the file cannot be opened or created (naming
    /// the file, and a missing directory),
    /// [`Error::Migrate`] when the migrations fail, [`Error::NotAStore`]
    /// and [`Error::NoSuchGroup`] when the store or group does not exist
    /// and may not be created (`create_missing(false)`, `read_only`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: migrations run in transactions.
    pub async fn build(mut self) -> Result<SqliteStore> {
        self.options.validate()?;
        if self.settings.busy_timeout.is_zero() {
            return Err(Error::InvalidConfig("busy_timeout must be positive".into()));
        }
        let text = self.settings.path.to_string_lossy();
        if text.is_empty() || text.contains(":memory:") || text.contains("mode=memory") {
            return Err(Error::InvalidConfig(
                "the SQLite store needs a database file (an in-memory database is not shared between its connections)".into(),
            ));
        }
        let base = if text.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(&text)
                .map_err(|err| Error::InvalidConfig(format!("sqlite url {text:?}: {err}")))?
        } else {
            SqliteConnectOptions::new().filename(&self.settings.path)
        };
        let file = base.get_filename().to_path_buf();
        check_directory(&file)?;
        let location: Arc<str> = Arc::from(file.display().to_string());
        let creates = self.options.creates();
        let connect = if creates {
            base.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(self.settings.synchronous)
        } else {
            // Nothing that changes the file: no journal mode (WAL stays
            // WAL, a file that is not a store stays as it is).
            if !base.get_filename().is_file() {
                return Err(Error::NotAStore {
                    location: location.to_string(),
                    reason: "the file does not exist".to_owned(),
                });
            }
            let base = base.create_if_missing(false);
            if self.options.read_only {
                base.read_only(true)
            } else {
                base.synchronous(self.settings.synchronous)
            }
        }
        .busy_timeout(self.settings.busy_timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // No ping (a round trip to the connection's thread) before
            // each statement.
            .test_before_acquire(false)
            .min_connections(1)
            .acquire_timeout(self.options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(|err| open_error(&file, err))?;
        if creates && self.options.migrate {
            let mut migrator =
                sqlx::migrate::Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
            crate::migration_log::log_pending(
                &mut *writer.acquire().await?,
                &migrator,
                crate::MIGRATIONS_TABLE,
                &location,
            )
            .await;
            migrator.dangerous_set_table_name(crate::MIGRATIONS_TABLE);
            migrator.run(&writer).await?;
        }
        let readers = SqlitePoolOptions::new()
            .max_connections(self.options.max_connections)
            // No ping (a round trip to the connection's thread) before
            // each statement.
            .test_before_acquire(false)
            .acquire_timeout(self.options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|err| open_error(&file, err))?;
        // The file exists now: its canonical path names the database
        // whichever way it was reached.
        let database = std::fs::canonicalize(&*location)
            .map_or_else(|_| location.to_string(), |path| path.display().to_string());
        let own_name = self.options.resolve_consumer(&database);
        if creates {
            sqlx::query("INSERT OR IGNORE INTO soiree_cursors (group_name) VALUES (?1)")
                .bind(&self.options.group)
                .execute(&writer)
                .await?;
            if own_name {
                take_over_leases(&writer, &self.options).await?;
            }
        } else {
            let groups = sqlx::query_scalar::<_, String>(
                "SELECT group_name FROM soiree_cursors ORDER BY group_name LIMIT ?1",
            )
            .bind(i64::try_from(crate::existing::LISTED_GROUPS + 1).unwrap_or(i64::MAX))
            .fetch_all(&readers)
            .await;
            crate::existing::check_group(groups, &self.options.group, || Error::NotAStore {
                location: location.to_string(),
                reason: "it has no soiree_cursors table".to_owned(),
            })?;
        }
        let registry = self
            .registry
            .unwrap_or_else(|| MetricsRegistry::global().clone());
        let metrics = SqlMetrics::new(&registry, Sqlite::KIND, &location, &self.options.group);
        let backend = SqliteBackend {
            writer,
            readers,
            group: Arc::from(self.options.group.as_str()),
            consumer: self.options.consumer_name().to_owned(),
            lease_ms: self.options.lease_ms(),
        };
        Ok(SqlStore {
            core: Core::new(backend, self.options, metrics, None),
            location,
        })
    }
}

/// Makes the leases and claimed retry rows recorded under this store's
/// consumer name claimable at once: the name comes from a slot no live store
/// holds, so they are left by this consumer's previous life (a process
/// killed or crashed), and waiting `lease_timeout` for them would only
/// delay their events. Their fencing tokens change when they are claimed
/// again, as for any expired lease.
async fn take_over_leases(writer: &SqlitePool, options: &Options) -> Result<()> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        });
    let leases = sqlx::query(
        "UPDATE soiree_leases SET expires_at = ?3 - 1 \
         WHERE group_name = ?1 AND consumer = ?2 AND expires_at >= ?3",
    )
    .bind(&options.group)
    .bind(options.consumer_name())
    .bind(now_ms)
    .execute(writer)
    .await?
    .rows_affected();
    let retries = sqlx::query(
        "UPDATE soiree_retries SET run_at = ?3, consumer = NULL \
         WHERE group_name = ?1 AND consumer = ?2",
    )
    .bind(&options.group)
    .bind(options.consumer_name())
    .bind(now_ms)
    .execute(writer)
    .await?
    .rows_affected();
    if leases + retries > 0 {
        tracing::info!(
            consumer = options.consumer_name(), group = %options.group, leases, retries,
            "took over the deliveries this consumer held before it restarted"
        );
    }
    Ok(())
}

/// Refuses a database file whose directory does not exist, by name: SQLite
/// creates the file but not its directories, and says only "unable to open
/// database file".
fn check_directory(file: &Path) -> Result<()> {
    let Some(directory) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    if directory.is_dir() {
        return Ok(());
    }
    let reason = if directory.exists() {
        format!("{} is not a directory", directory.display())
    } else {
        format!(
            "directory {} does not exist; create it first (the store creates the database file, not its directories)",
            directory.display()
        )
    };
    Err(Error::Open {
        path: file.display().to_string(),
        reason,
    })
}

/// A failure to open the database file, naming the file.
fn open_error(file: &Path, err: sqlx::Error) -> Error {
    let reason = match err {
        sqlx::Error::Database(db) => format!(
            "{}; check that the file and its directory are readable and writable by this process",
            db.message()
        ),
        other => other.to_string(),
    };
    Error::Open {
        path: file.display().to_string(),
        reason,
    }
}
