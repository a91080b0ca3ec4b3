//! The operating subcommands: each runs against any `Arc<dyn Inspect>`
//! and writes to a [`Console`], so that they are tested in process.

mod console;
mod consumers;
mod dashboard;
mod dead_letter_repair;
mod dead_letters;
mod event;
mod leases;
mod letter_error;
mod list;
mod output;
mod pending;
mod replay;
mod scheduled;
mod stats;
mod tail;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod repair_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use soiree::Inspect;

pub(crate) use self::console::Console;
use crate::error::{Error, Result};
use crate::opt::{
    Command, DeadLettersCommand, LeasesCommand, LimitsCommand, ScheduledCommand, StoreOpt,
};

/// Opens the store and runs an operating subcommand on the terminal.
pub(crate) fn run(store: &StoreOpt, command: Command) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let access = crate::store::Access::of(&command);
        let store = crate::store::open(store, access).await?;
        let mut console = Console::stdio();
        let ctrl_c = async {
            // Without a signal handler there is no ctrl-c to wait for.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        execute(command, store, &mut console, ctrl_c).await
    });
    // The store's background writers hold nothing to flush for an inspection.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// Runs an operating subcommand; `stop` ends `tail`.
pub(crate) async fn execute(
    command: Command,
    shared: Arc<dyn Inspect>,
    console: &mut Console,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let store = &*shared;
    match command {
        Command::Stats(opt) => stats::run(store, &opt, console).await,
        Command::Events(opt) => list::events(store, &opt, console).await,
        Command::Event(opt) => event::run(store, &opt, console).await,
        Command::Results(opt) => list::results(store, &opt, console).await,
        Command::Pending(opt) => pending::run(store, &opt, console).await,
        Command::Consumers(opt) => consumers::run(store, &opt, console).await,
        Command::DeadLetters(DeadLettersCommand::List(opt)) => {
            dead_letters::list(store, &opt, console).await
        }
        Command::DeadLetters(DeadLettersCommand::Show(opt)) => {
            dead_letters::show(store, &opt, console).await
        }
        Command::DeadLetters(DeadLettersCommand::Replay(opt)) => {
            dead_letter_repair::replay(store, &opt, console).await
        }
        Command::DeadLetters(DeadLettersCommand::Purge(opt)) => {
            dead_letter_repair::purge(store, &opt, console).await
        }
        Command::Scheduled(ScheduledCommand::List(opt)) => {
            scheduled::list(store, &opt, console).await
        }
        Command::Leases(LeasesCommand::List(opt)) => leases::leases(store, &opt, console).await,
        Command::Limits(LimitsCommand::List(opt)) => leases::limits(store, &opt, console).await,
        Command::Replay(opt) => replay::run(store, &opt, console).await,
        Command::Tail(opt) => tail::run(store, &opt, console, stop).await,
        Command::Dashboard(opt) => dashboard::run(Arc::clone(&shared), &opt, console, stop).await,
    }
}

/// An [`Inspect`] call's error, `NotFound` kept as one.
fn store_error(store: &dyn Inspect) -> impl Fn(soiree::Error) -> Error + '_ {
    move |err| Error::from_store(&store.info().kind, err)
}
