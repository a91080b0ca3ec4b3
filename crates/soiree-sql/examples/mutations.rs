//! Mutation events that survive a crash: creating an organization setting
//! bills the organization exactly once, even when the process is killed
//! (`kill -9`) between the commit and the handling.
//!
//! `cargo run -p soiree-sql --example mutations` runs three processes of
//! itself on one SQLite file (in a temporary directory; set `SOIREE_DB` to
//! keep it somewhere):
//!
//! 1. `create`: installs mutation triggers on `organization_settings`,
//!    inserts a setting (plain SQL: the trigger writes the mutation event
//!    into the outbox in the same transaction), commits, and waits. The
//!    parent kills it with SIGKILL before anything is handled.
//! 2. `serve` (the restart): the `billing` listener finds the committed
//!    event and bills the organization once.
//! 3. `serve` again: nothing is billed twice (the event was acknowledged;
//!    were it delivered again, the named listener's recorded success would
//!    skip it).
//!
//! The example exits with an error unless the organization was billed
//! exactly once.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use soiree::EventBus;
use soiree::mutation::{Mutations, Operation};
use soiree_sql::SqliteStore;
use soiree_sql::triggers::MutationTrigger;

/// The environment variable telling a child process its role.
const ROLE_ENV: &str = "SOIREE_MUTATIONS_ROLE";
/// The environment variable holding the database path.
const DB_ENV: &str = "SOIREE_DB";
/// The longest any step may take.
const LIMIT: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) fn main() -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("create") => runtime.block_on(create(&db_path()?)),
        Ok("serve") => runtime.block_on(serve(&db_path()?)),
        _ => run(),
    }
}

fn db_path() -> Result<PathBuf, BoxError> {
    std::env::var_os(DB_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{DB_ENV} is not set").into())
}

/// The parent: runs the three processes and checks the outcome.
fn run() -> Result<(), BoxError> {
    let (path, temporary) = match std::env::var_os(DB_ENV) {
        Some(path) => (PathBuf::from(path), None),
        None => {
            let dir = std::env::temp_dir().join(format!("soiree-mutations-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            (dir.join("app.db"), Some(dir))
        }
    };
    println!("database: {}", path.display());
    let outcome = run_in(&path);
    if let Some(dir) = temporary {
        let _ = std::fs::remove_dir_all(dir);
    }
    let billed = outcome?;
    if billed != 1 {
        return Err(format!("the organization was billed {billed} times, not once").into());
    }
    println!("billed exactly once");
    Ok(())
}

fn child(role: &str, path: &Path) -> Result<std::process::Child, BoxError> {
    Ok(Command::new(std::env::current_exe()?)
        .env(ROLE_ENV, role)
        .env(DB_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?)
}

/// Waits for a child's line starting with `prefix`, at most [`LIMIT`].
fn wait_for_line(child: &mut std::process::Child, prefix: &str) -> Result<String, BoxError> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("  | {line}");
            if line.starts_with(&prefix) {
                let _ = tx.send(line);
            }
        }
    });
    Ok(rx.recv_timeout(LIMIT)?)
}

fn run_in(path: &Path) -> Result<u64, BoxError> {
    // 1. Commit a new setting, then die before handling it.
    let mut creator = child("create", path)?;
    let committed = wait_for_line(&mut creator, "committed")?;
    creator.kill()?; // SIGKILL: no destructor, no flush, no goodbye
    creator.wait()?;
    println!("killed the process after: {committed}");

    // 2. Restart: the committed event is handled.
    let mut server = child("serve", path)?;
    let billed = wait_for_line(&mut server, "billed")?;
    wait_success(&mut server)?;
    println!("after the restart: {billed}");

    // 3. Once more: nothing is billed twice.
    let mut again = child("serve", path)?;
    let line = wait_for_line(&mut again, "billed")?;
    wait_success(&mut again)?;
    println!("after a second restart: {line}");
    let count: u64 = line
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or("unexpected output")?;
    Ok(count)
}

fn wait_success(child: &mut std::process::Child) -> Result<(), BoxError> {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("a child process failed: {status}").into())
            };
        }
        if std::time::Instant::now() >= deadline {
            child.kill()?;
            return Err("a child process did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens the store and the application's tables.
async fn open(path: &Path) -> Result<SqliteStore, BoxError> {
    let store = SqliteStore::builder(path)
        .poll_interval(Duration::from_millis(20))
        .build()
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS organization_settings \
         (id TEXT PRIMARY KEY, organization TEXT NOT NULL, plan TEXT NOT NULL)",
    )
    .execute(store.pool())
    .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS billing_runs (setting_id TEXT NOT NULL)")
        .execute(store.pool())
        .await?;
    Ok(store)
}

/// Process 1: creates a setting and waits to be killed.
async fn create(path: &Path) -> Result<(), BoxError> {
    let store = open(path).await?;
    // Any write to the table now stages a mutation event in its own
    // transaction: raw SQL, bulk statements, other programs.
    store
        .install_mutation_triggers(&MutationTrigger::new(
            "organization_settings",
            "OrganizationSetting",
        ))
        .await?;
    let mut tx = store.begin().await?;
    sqlx::query(
        "INSERT INTO organization_settings (id, organization, plan) \
         VALUES ('os-1', 'acme', 'pro')",
    )
    .execute(&mut *tx)
    .await?;
    store.commit(tx).await?;
    println!("committed organization setting os-1");
    // No bus consumes here: the event waits in the outbox until the kill.
    tokio::time::sleep(LIMIT).await;
    Err("not killed in time".into())
}

/// Processes 2 and 3: the billing service.
async fn serve(path: &Path) -> Result<(), BoxError> {
    let store = open(path).await?;
    let bus = EventBus::builder().store(store.clone()).build()?;
    let mutations = Mutations::new(bus.clone());
    let billing = store.clone();
    // Named: its successes are recorded per event id, so an event delivered
    // again (after a crash before the acknowledgement) is not billed twice.
    mutations.add_named_mutation_listener(
        "billing",
        "OrganizationSetting",
        move |_ctx, payload| {
            let store = billing.clone();
            async move {
                if payload.operation == Operation::Create {
                    sqlx::query("INSERT INTO billing_runs (setting_id) VALUES (?1)")
                        .bind(&payload.entity_id)
                        .execute(store.pool())
                        .await?;
                }
                Ok(())
            }
        },
    )?;
    // Every listener is registered: start taking the backlog.
    bus.start()?;
    // Wait until the backlog is handled (the first poll finds it).
    tokio::time::timeout(LIMIT, async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            bus.wait_for_idle().await;
            if soiree::EventQueue::backlog(&store).await? == 0 {
                return Ok::<_, soiree::Error>(());
            }
        }
    })
    .await??;
    tokio::time::timeout(LIMIT, bus.close()).await??;
    let billed: i64 = sqlx::query_scalar("SELECT count(*) FROM billing_runs")
        .fetch_one(store.pool())
        .await?;
    println!("billed {billed}");
    Ok(())
}
