//! The PostgreSQL store: builder, the driver's transactional emit, wakeups.

mod backend;
mod common;
mod leader;
mod limits;
mod partitions;
mod scheduled;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use soiree::MetricsRegistry;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow, PgSslMode,
};
use sqlx::{AssertSqlSafe, Pool, Postgres, Transaction};

use self::backend::{APPEND, PgBackend, Statements, bind_events, qualify, text_array};
use self::partitions::Partitions;
use crate::backend::{NewEvent, Param, bind_params};
use crate::core::Core;
use crate::metrics::SqlMetrics;
use crate::options::Options;
use crate::{Driver, Error, MIGRATIONS_TABLE, Result, SqlStore, SqlStoreBuilder, redact};

/// The store's migrations, applied by `build` (unless turned off).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A soiree store on PostgreSQL: [`SqlStore`] on `sqlx::Postgres`, with
/// the builder's options that only PostgreSQL has (schema, `LISTEN`/`NOTIFY`
/// wakeups, partitions of the log).
///
/// # Examples
///
/// ```no_run
/// use soiree::EventBus;
/// use soiree_sql::PostgresStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://app@127.0.0.1/app").await?;
/// let bus = EventBus::builder().store(store.clone()).build()?;
/// bus.on_named("welcome", "user.created", |_ctx| async { Ok(()) })?;
/// bus.start()?;
///
/// // The event is committed with the row it describes, or not at all.
/// let mut tx = store.begin().await?;
/// sqlx::query("INSERT INTO users (name) VALUES ('ada')").execute(&mut *tx).await?;
/// store.emit_in(&mut tx, "user.created", serde_json::json!({ "name": "ada" })).await?;
/// store.commit(tx).await?;
///
/// bus.wait_for_idle().await;
/// bus.close().await?;
/// # Ok(()) }
/// ```
pub type PostgresStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects with the default options (schema `public`, group `soiree`)
    /// and applies the migrations.
    ///
    /// # Errors
    ///
    /// As for [`SqlStoreBuilder::<Postgres>::build`](SqlStoreBuilder::build).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is kept from a cancelled call (migrations run in
    /// transactions, but for one concurrent index build, which the next
    /// call finishes).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).build().await
    }

    /// A builder for a store on the database at `url`
    /// (`postgres://user:password@host:port/database`).
    pub fn builder(url: &str) -> PostgresStoreBuilder {
        SqlStoreBuilder::new(
            Options::new(Duration::from_millis(250)),
            PgSettings {
                url: url.to_owned(),
                schema: "public".to_owned(),
                listen: true,
                notify_interval: Duration::from_millis(2),
                partition_size: DEFAULT_PARTITION_SIZE,
            },
        )
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        self.core.backend.sql.schema()
    }

    /// Creates the log's next partitions now, until they cover the next
    /// event id plus two spans of
    /// [`partition_size`](SqlStoreBuilder::partition_size) ids; returns
    /// how many it created. A store with a
    /// [`retention`](SqlStoreBuilder::retention) window does it by
    /// itself (when built, and with every pruning), as does
    /// [`prune_consumed`](SqlStore::prune_consumed); call it from a
    /// deployment step, or before a burst of appends, to keep events out of
    /// the DEFAULT partition. Safe to call from several processes at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(store: soiree_sql::PostgresStore) -> soiree_sql::Result<()> {
    /// let created = store.create_partitions_ahead().await?;
    /// println!("{created} partitions created");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when a statement fails, a lock timeout (2 s)
    /// included: nothing was created then.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the partitions are created in one transaction.
    pub async fn create_partitions_ahead(&self) -> Result<u32> {
        let backend = &self.core.backend;
        backend.partitions.ensure_ahead(&backend.pool).await
    }
}

#[async_trait]
impl Driver for Postgres {
    type Backend = PgBackend;
    type Settings = PgSettings;
    const KIND: &'static str = "postgres";

    fn pool(backend: &PgBackend) -> &Pool<Self> {
        &backend.pool
    }

    async fn begin(backend: &PgBackend) -> Result<Transaction<'static, Self>> {
        Ok(backend.pool.begin().await?)
    }

    async fn insert(
        backend: &PgBackend,
        conn: &mut PgConnection,
        events: &[NewEvent],
    ) -> Result<()> {
        bind_events(&backend.sql.append, events)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn execute_in(
        backend: &PgBackend,
        conn: &mut PgConnection,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<u64> {
        let query = sqlx::query(backend.q(sql));
        Ok(bind_params(query, params)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn fetch_in(
        backend: &PgBackend,
        conn: &mut PgConnection,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<Vec<PgRow>> {
        let query = sqlx::query(backend.q(sql));
        Ok(bind_params(query, params).fetch_all(conn).await?)
    }

    fn outbox_statement(
        schema: &str,
        events: &[NewEvent],
    ) -> Result<(String, Vec<Option<String>>)> {
        let schema = crate::triggers::identifier(schema)?;
        let column =
            |text: fn(&NewEvent) -> Option<&str>| Some(text_array(events.iter().map(text)));
        let values = vec![
            column(|e| Some(&e.topic)),
            column(|e| e.event_id.as_deref()),
            column(|e| Some(&e.payload)),
            column(|e| Some(&e.properties)),
            column(|e| e.key.as_deref()),
        ];
        // The arrays arrive as text, so the statement says so (`::text`
        // first): a statement cache (sqlx's, under an ORM too) that
        // prepared the store's own text of it for `text[]` binds must not
        // be handed text for them.
        let sql = qualify(schema, &APPEND.replace("::text[]", "::text::text[]"));
        Ok((sql.as_str().to_owned(), values))
    }

    async fn commit(mut tx: Transaction<'_, Self>) -> Result<()> {
        // In an aborted transaction this fails (SQLSTATE 25P02); `tx` is
        // then dropped, which rolls it back.
        sqlx::raw_sql("SELECT").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fence_in(
        backend: &PgBackend,
        conn: &mut PgConnection,
        fence: &crate::fence::TxFence<'_>,
    ) -> Result<crate::fence::Settle> {
        crate::fence::postgres(conn, backend.sql.schema(), fence).await
    }

    /// Starts listening for other processes' notifications, once.
    fn before_dequeue(store: &SqlStore<Self>) {
        let backend = &store.core.backend;
        if !backend.listen
            || backend.listening.load(Ordering::Relaxed)
            || backend.listening.swap(true, Ordering::AcqRel)
        {
            return;
        }
        tokio::spawn(listen(
            Arc::downgrade(&store.core),
            backend.pool.clone(),
            backend.channel.clone(),
            backend.notify_tag.clone(),
        ));
    }
}

/// Wakes this process's consumers on every notification of the channel
/// but the store's own (tagged `own`); ends when the store is dropped.
async fn listen(core: Weak<Core<PgBackend>>, pool: PgPool, channel: String, own: String) {
    let mut listener: Option<PgListener> = None;
    loop {
        if core.strong_count() == 0 {
            return;
        }
        let Some(active) = listener.as_mut() else {
            match PgListener::connect_with(&pool).await {
                Ok(mut new) => match new.listen(&channel).await {
                    Ok(()) => listener = Some(new),
                    Err(err) => {
                        tracing::debug!(%err, "cannot listen; polling meanwhile");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                Err(err) => {
                    tracing::debug!(%err, "cannot connect to listen; polling meanwhile");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            // Events may have arrived while nobody listened.
            if let Some(core) = core.upgrade() {
                core.wake_local();
            }
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(1), active.try_recv()).await {
            Err(_) => {}
            // Its own: the consumers were woken when it was sent.
            Ok(Ok(Some(notification))) if notification.payload() == own => {}
            Ok(Ok(Some(_))) => {
                if let Some(core) = core.upgrade() {
                    core.wake_local();
                }
            }
            // The connection was lost: reconnect (polling covers the gap).
            Ok(Ok(None)) | Ok(Err(_)) => listener = None,
        }
    }
}

/// Builds a [`PostgresStore`]: `PostgresStore::builder(url)…build().await`.
///
/// | option | default | what it does |
/// |---|---|---|
/// | [`schema`](SqlStoreBuilder::schema) | `public` | the schema of the store's tables (created if missing) |
/// | [`group`](SqlStoreBuilder::group) | `soiree` | consumer group: stores with the same group share the work |
/// | [`consumer`](SqlStoreBuilder::consumer) | `<host>-<n>` | this store's name on its leases |
/// | [`lease_timeout`](SqlStoreBuilder::lease_timeout) | 30 s | how long a claimed range stays with a consumer that stopped extending it |
/// | [`batch_size`](SqlStoreBuilder::batch_size) | 1000 | events per lease at most |
/// | [`max_deliveries`](SqlStoreBuilder::max_deliveries) | 5 | deliveries after which events go to the dead letters |
/// | [`poll_interval`](SqlStoreBuilder::poll_interval) | 250 ms | how often an idle consumer looks without a wakeup |
/// | [`listen`](SqlStoreBuilder::listen) | on | `LISTEN`/`NOTIFY` wakeups across processes |
/// | [`notify_interval`](SqlStoreBuilder::notify_interval) | 2 ms | at most one `NOTIFY` per interval |
/// | [`max_connections`](SqlStoreBuilder::max_connections) | 10 | size of the connection pool |
/// | [`acquire_timeout`](SqlStoreBuilder::acquire_timeout) | 10 s | how long to wait for a pooled connection |
/// | [`migrate`](SqlStoreBuilder::migrate) | on | apply the migrations in `build` |
/// | [`create_missing`](SqlStoreBuilder::create_missing) | on | create the store and group when missing (off: open only an existing one) |
/// | [`read_only`](SqlStoreBuilder::read_only) | off | inspect only: read-only connections, nothing created |
/// | [`ordered_by_key`](SqlStoreBuilder::ordered_by_key) | off | one event at a time per `soiree.key`, in log order |
/// | [`retention`](SqlStoreBuilder::retention) | none | remove consumed events older than this (whole partitions) |
/// | [`partition_size`](SqlStoreBuilder::partition_size) | 1,000,000 | event ids per partition of the log |
/// | [`metrics_registry`](SqlStoreBuilder::metrics_registry) | [`MetricsRegistry::global`] | where the metrics go |
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use soiree_sql::PostgresStore;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> soiree_sql::Result<()> {
/// let store = PostgresStore::builder("postgres://app@127.0.0.1/app")
///     .schema("events")
///     .group("order-workers")
///     .lease_timeout(Duration::from_secs(60))
///     .build()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
pub type PostgresStoreBuilder = SqlStoreBuilder<Postgres>;

/// The builder's options that only PostgreSQL has.
#[doc(hidden)]
pub struct PgSettings {
    url: String,
    schema: String,
    listen: bool,
    notify_interval: Duration,
    partition_size: u64,
}

/// Event ids per partition of the log, by default.
const DEFAULT_PARTITION_SIZE: u64 = 1_000_000;

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("listen", &self.listen)
            .field("partition_size", &self.partition_size)
            .finish_non_exhaustive()
    }
}

impl SqlStoreBuilder<Postgres> {
    /// Sets the schema of the store's tables (default `public`): letters,
    /// digits and `_`, not starting with a digit, at most 50 characters.
    /// It is created when missing. Stores in different schemas share nothing.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.settings.schema = schema.into();
        self
    }

    /// Whether consumers `LISTEN` for other processes' `NOTIFY` (default
    /// on) and this store sends one after its commits. Off, consumers in
    /// other processes find new events by polling.
    pub fn listen(mut self, listen: bool) -> Self {
        self.settings.listen = listen;
        self
    }

    /// Sets the least time between two `NOTIFY` this store sends (default
    /// 2 ms): commits in between share one.
    pub fn notify_interval(mut self, interval: Duration) -> Self {
        self.settings.notify_interval = interval;
        self
    }

    /// Sets how many event ids each partition of the log covers (default
    /// 1,000,000; between 1 and 2^60).
    ///
    /// The log (`soiree_events`) is partitioned by range of id, and
    /// retention ([`retention`](Self::retention),
    /// [`prune_consumed`](SqlStore::prune_consumed)) truncates and
    /// drops whole partitions once every group passed them, no lease covers
    /// them and their newest event is older than the window: no `DELETE`,
    /// no dead rows, no vacuum debt. Stores that apply retention create the
    /// partitions ahead, two spans past the newest id; events beyond them
    /// land in a DEFAULT partition (a warning is logged), are delivered as
    /// usual and are pruned by batched deletes.
    ///
    /// Space is given back a partition at a time: pick a size so that a
    /// partition fills in a fraction of the retention window. Every
    /// partition kept costs each claim an index probe (reads of the log
    /// cannot be narrowed to some partitions), so keep the retained log to
    /// tens of partitions, not thousands. A new size applies to the
    /// partitions created from then on.
    pub fn partition_size(mut self, ids: u64) -> Self {
        self.settings.partition_size = ids;
        self
    }

    /// Connects, applies the migrations (unless turned off) and registers
    /// the consumer group, starting at the beginning of the log.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad URL, schema or option,
    /// [`Error::Connect`] when the server cannot be reached (within the
    /// [`acquire_timeout`](SqlStoreBuilder::acquire_timeout); a refused connection
    /// fails at once), [`Error::Database`] when the server refuses the
    /// connection or a statement (a database that does not exist, a wrong
    /// password), [`Error::Migrate`] when the migrations fail,
    /// [`Error::MigrationLocked`] when another process has been migrating
    /// the schema for more than 10 minutes, [`Error::NotAStore`] and
    /// [`Error::NoSuchGroup`] when the store or group does not exist and may
    /// not be created (`create_missing(false)`, `read_only`). No message
    /// contains the URL's password.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: migrations run in transactions, but for the concurrent
    /// index build of migration 0007, whose interrupted index the next
    /// `build` finishes (see the crate README's upgrade notes).
    pub async fn build(mut self) -> Result<PostgresStore> {
        self.options.validate()?;
        validate_schema(&self.settings.schema)?;
        if self.settings.partition_size == 0 || self.settings.partition_size > 1 << 60 {
            return Err(Error::InvalidConfig(
                "partition_size must be between 1 and 2^60".to_owned(),
            ));
        }
        let connect = PgConnectOptions::from_str(&self.settings.url)
            .map_err(|err| {
                Error::InvalidConfig(format!(
                    "invalid postgres url {}: {}",
                    redact(&self.settings.url),
                    crate::redact_in(&err.to_string(), &self.settings.url)
                ))
            })?
            .application_name("soiree")
            // A generic plan made while the log was small would scan it whole.
            .options([("plan_cache_mode", "force_custom_plan")]);
        let connect = plain_on_loopback(connect, &self.settings.url);
        let mut location = format!(
            "{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or(connect.get_username())
        );
        if self.settings.schema != "public" {
            location.push_str(&format!(" (schema {})", self.settings.schema));
        }
        let own_name = self.options.resolve_consumer(&location);
        // Every transaction read-only: nothing this store does can write.
        let connect = if self.options.read_only {
            connect.options([("default_transaction_read_only", "on")])
        } else {
            connect
        };
        let creates = self.options.creates();
        connect_once(&connect, self.options.acquire_timeout).await?;
        let pool = PgPoolOptions::new()
            .max_connections(self.options.max_connections)
            .acquire_timeout(self.options.acquire_timeout)
            // No ping before each statement (a round trip, and server CPU,
            // per statement): a connection broken by a restart fails its
            // next statement and is replaced; callers retry.
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await
            .map_err(|err| connect_error(&connect, err))?;
        if creates && self.options.migrate {
            migrate(&connect, &self.settings.schema).await?;
        }
        let sql = Arc::new(Statements::new(&self.settings.schema));
        if creates {
            sqlx::query(sql.ensure_cursor.clone())
                .bind(&self.options.group)
                .execute(&pool)
                .await?;
            if own_name {
                take_over_leases(&pool, &self.settings.schema, &self.options).await?;
            }
        } else {
            check_existing(&pool, &self.settings.schema, &self.options.group, &location).await?;
        }
        let registry = self
            .registry
            .unwrap_or_else(|| MetricsRegistry::global().clone());
        let metrics = SqlMetrics::new(&registry, Postgres::KIND, &location, &self.options.group);
        let backend = PgBackend {
            pool,
            sql,
            group: self.options.group.clone(),
            consumer: self.options.consumer_name().to_owned(),
            lease_ms: self.options.lease_ms(),
            channel: format!("soiree_{}", self.settings.schema),
            notify_tag: ulid::Ulid::generate().to_string(),
            partitions: Partitions::new(&self.settings.schema, self.settings.partition_size),
            listen: self.settings.listen,
            listening: AtomicBool::new(false),
        };
        if creates && self.options.retention.is_some() {
            // Before the first append, so that events start in a partition.
            if let Err(err) = backend.partitions.ensure_ahead(&backend.pool).await {
                tracing::warn!(%err, "cannot create log partitions ahead; retrying later");
            }
        }
        let notify = (self.settings.listen && !self.options.read_only)
            .then_some(self.settings.notify_interval);
        Ok(SqlStore {
            location: Arc::from(location),
            core: Core::new(backend, self.options, metrics, notify),
        })
    }
}

/// Makes the leases and claimed retry rows recorded under this store's
/// consumer name claimable at once: the name comes from a slot no live store
/// holds, so they are left by this consumer's previous life (a process
/// killed or crashed), and waiting `lease_timeout` for them would only
/// delay their events. Their fencing tokens change when they are claimed
/// again, as for any expired lease.
async fn take_over_leases(pool: &PgPool, schema: &str, options: &Options) -> Result<()> {
    let leases = sqlx::query(AssertSqlSafe(format!(
        "UPDATE \"{schema}\".soiree_leases \
         SET expires_at = clock_timestamp() - interval '1 millisecond' \
         WHERE group_name = $1 AND consumer = $2 AND expires_at >= clock_timestamp()"
    )))
    .bind(&options.group)
    .bind(options.consumer_name())
    .execute(pool)
    .await?
    .rows_affected();
    let retries = sqlx::query(AssertSqlSafe(format!(
        "UPDATE \"{schema}\".soiree_retries SET run_at = clock_timestamp(), consumer = NULL \
         WHERE group_name = $1 AND consumer = $2"
    )))
    .bind(&options.group)
    .bind(options.consumer_name())
    .execute(pool)
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

/// Checks that `schema` holds a store with the cursor of `group`; else
/// names the groups there, or the schemas that hold a store.
async fn check_existing(pool: &PgPool, schema: &str, group: &str, location: &str) -> Result<()> {
    let groups = sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
        "SELECT group_name FROM \"{schema}\".soiree_cursors ORDER BY group_name LIMIT $1"
    )))
    .bind(i64::try_from(crate::existing::LISTED_GROUPS + 1).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await;
    let missing = groups
        .as_ref()
        .err()
        .is_some_and(crate::existing::is_missing_table);
    // Only when the table is missing: where else a store is.
    let elsewhere = if missing {
        sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT table_schema::text FROM information_schema.tables \
             WHERE table_name = 'soiree_cursors' ORDER BY 1 LIMIT 20",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    crate::existing::check_group(groups, group, || Error::NotAStore {
        location: location.to_owned(),
        reason: if elsewhere.is_empty() {
            format!("schema {schema:?} has no soiree_cursors table, nor does any other schema")
        } else {
            format!(
                "schema {schema:?} has no soiree_cursors table; schemas with a store: {}",
                elsewhere
                    .iter()
                    .map(|name| format!("{name:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    })
}

/// A failed first connection: [`Error::Connect`] naming the server when
/// it could not be reached or its TLS handshake failed.
fn connect_error(connect: &PgConnectOptions, err: sqlx::Error) -> Error {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => Error::Connect {
            server: format!("{}:{}", connect.get_host(), connect.get_port()),
            reason: match err {
                sqlx::Error::Io(io) => io.to_string(),
                other => other.to_string(),
            },
        },
        other => other.into(),
    }
}

/// Connects once, before the pool is made: the pool reports a refused or
/// unreachable server only as a timeout after its `acquire_timeout`, without
/// the address; one connection says at once which server, and why.
async fn connect_once(connect: &PgConnectOptions, within: Duration) -> Result<()> {
    use sqlx::Connection as _;
    let server = format!("{}:{}", connect.get_host(), connect.get_port());
    let connection = match tokio::time::timeout(within, PgConnection::connect_with(connect)).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err @ (sqlx::Error::Io(_) | sqlx::Error::Tls(_)))) => {
            let reason = match err {
                sqlx::Error::Io(io) => io.to_string(),
                other => other.to_string(),
            };
            return Err(Error::Connect { server, reason });
        }
        Ok(Err(err)) => return Err(err.into()),
        Err(_) => {
            return Err(Error::Connect {
                server,
                reason: format!("no answer within {within:?} (the acquire timeout)"),
            });
        }
    };
    // Closing politely is a courtesy: the pool opens its own connections.
    let _ = tokio::time::timeout(within, connection.close()).await;
    Ok(())
}

fn validate_schema(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok
        || schema.len() > 50
        || !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::InvalidConfig(format!(
            "schema {schema:?}: letters, digits and _, not starting with a digit, at most 50 characters"
        )));
    }
    Ok(())
}

/// Applies the migrations in `schema`, recording them in
/// [`MIGRATIONS_TABLE`](crate::MIGRATIONS_TABLE) there.
async fn migrate(connect: &PgConnectOptions, schema: &str) -> Result<()> {
    // A pool of one (not a bare connection): its futures are `Send` for any
    // lifetime, so that `build` can run in a spawned task.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect.clone().options([("search_path", schema)]))
        .await?;
    let created = sqlx::query(AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
    )))
    .execute(&pool)
    .await;
    if let Err(err) = created {
        // `IF NOT EXISTS` is not atomic: of two stores creating the schema
        // at once, the second fails on the catalog's unique index (23505)
        // or as a duplicate (42P06), and the schema exists all the same.
        let code = err.as_database_error().and_then(|db| db.code());
        if !matches!(code.as_deref(), Some("23505" | "42P06")) {
            return Err(err.into());
        }
    }
    // One store migrates a schema at a time. The lock is polled, not
    // awaited: a session blocked in pg_advisory_lock holds a snapshot, which
    // the concurrent index build of migration 0007 waits for while the lock
    // holder waits for the build, a deadlock PostgreSQL breaks by failing
    // one of them. sqlx's own lock is still taken inside (uncontended but
    // by older versions of the store).
    let lock_key = format!("soiree migrations {schema}");
    let deadline = tokio::time::Instant::now() + MIGRATION_LOCK_WAIT;
    loop {
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(&lock_key)
                .fetch_one(&pool)
                .await?;
        if locked {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            pool.close().await;
            return Err(Error::MigrationLocked {
                schema: schema.to_owned(),
                waited_s: MIGRATION_LOCK_WAIT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut migrator = sqlx::migrate::Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
    let table = format!("\"{schema}\".{MIGRATIONS_TABLE}");
    crate::migration_log::log_pending(&mut *pool.acquire().await?, &migrator, &table, schema).await;
    migrator.dangerous_set_table_name(table);
    let migrated = migrator.run(&pool).await;
    // Closing the session releases the advisory lock too.
    pool.close().await;
    migrated?;
    Ok(())
}

/// Connects in plain text to a loopback server when neither the URL
/// (`sslmode`) nor the environment (`PGSSLMODE`) says how: sqlx, as libpq,
/// otherwise prefers TLS whenever the server offers it (Debian's
/// PostgreSQL does, with its snakeoil certificate), and on loopback TLS
/// protects nothing while it slowed consumption 2.7× (sql-outbox, measured
/// on this project's benchmark). Any explicit mode is kept as given.
fn plain_on_loopback(connect: PgConnectOptions, url: &str) -> PgConnectOptions {
    let explicit = url.split_once('?').is_some_and(|(_, query)| {
        query.split('&').any(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            key.eq_ignore_ascii_case("sslmode") || key.eq_ignore_ascii_case("ssl-mode")
        })
    }) || std::env::var_os("PGSSLMODE").is_some();
    if explicit || !is_loopback(connect.get_host()) {
        return connect;
    }
    connect.ssl_mode(PgSslMode::Disable)
}

/// Whether `host` is this machine: `localhost`, a loopback address, or a
/// Unix socket directory.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How long `build` waits for another process migrating the same schema.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_without_a_mode_is_plain_and_every_explicit_mode_is_kept() {
        let mode = |url: &str| {
            let connect = PgConnectOptions::from_str(url).unwrap();
            format!("{:?}", plain_on_loopback(connect, url).get_ssl_mode())
        };
        if std::env::var_os("PGSSLMODE").is_none() {
            for url in [
                "postgres://u@127.0.0.1:5432/db",
                "postgres://u@127.8.0.1/db",
                "postgres://u@localhost/db",
                "postgres://u@[::1]:5432/db",
            ] {
                assert_eq!(mode(url), "Disable", "{url}");
            }
            assert_eq!(mode("postgres://u@db.example.com/db"), "Prefer");
            assert_eq!(mode("postgres://u@10.1.2.3/db"), "Prefer");
        }
        assert_eq!(mode("postgres://u@127.0.0.1/db?sslmode=require"), "Require");
        assert_eq!(mode("postgres://u@localhost/db?sslmode=prefer"), "Prefer");
        assert_eq!(
            mode("postgres://u@127.0.0.1/db?application_name=x&sslmode=verify-full"),
            "VerifyFull"
        );
    }

    #[test]
    fn schema_names_are_checked() {
        for good in ["public", "soiree_1", "_x", "Events"] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "a-b", "a\"b", "a b", "é", &"x".repeat(51)] {
            assert!(
                matches!(validate_schema(bad), Err(Error::InvalidConfig(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn a_bad_url_is_a_typed_error_without_the_password() {
        let err = PostgresStore::connect("postgres://user:s3cret@[bad/db")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
        let builder = PostgresStore::builder("postgres://user:s3cret@localhost/db");
        assert!(!format!("{builder:?}").contains("s3cret"));
    }
}
