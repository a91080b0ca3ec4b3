//! Test binaries that are their own child processes, for the fault tests
//! that `kill -9` a consumer: the binary runs with a plain `main`
//! (`harness = false` in `Cargo.toml`), starts itself again with an
//! environment variable that makes it play the child, and kills the child
//! with SIGKILL mid-run.
//!
//! [`plain_main`] answers the test harness's questions (`--list`, a name
//! filter) the way a harness would ([`harness_question`]), and [`ChildProcess`] is the child:
//! killed and reaped when dropped, so that a failing test leaves no orphan
//! consumer behind.
//!
//! # Examples
//!
//! ```no_run
//! use soiree_test::process::{ChildProcess, plain_main};
//!
//! const CHILD_ENV: &str = "MY_CRASH_CHILD";
//!
//! fn main() {
//!     let Some(runtime) = plain_main("my_crash") else {
//!         return;
//!     };
//!     if std::env::var_os(CHILD_ENV).is_some() {
//!         // The child: consume until killed.
//!         return;
//!     }
//!     let mut child = ChildProcess::start(ChildProcess::command().env(CHILD_ENV, "1"));
//!     runtime.block_on(tokio::time::sleep(std::time::Duration::from_millis(200)));
//!     child.kill(); // SIGKILL, then reaped
//! }
//! ```

use std::process::{Child, Command};

/// Answers the test harness's question to a test binary with a plain
/// `main` named `binary`, as the harness would: the list of its tests
/// (`--list`), or that a name filter left its test out. Whether it was
/// such a question: the binary then runs nothing.
#[must_use]
pub fn harness_question(binary: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--list") {
        println!("{binary}: test");
        return true;
    }
    if let Some(filter) = args.iter().find(|arg| !arg.starts_with('-'))
        && !binary.contains(filter.as_str())
    {
        println!("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out");
        return true;
    }
    false
}

/// The runtime of a test binary with a plain `main` named `binary` (two
/// worker threads), or `None` when it was only asked a
/// [`harness_question`] (answered already).
///
/// # Panics
///
/// When the runtime cannot be built.
#[must_use]
pub fn plain_main(binary: &str) -> Option<tokio::runtime::Runtime> {
    if harness_question(binary) {
        return None;
    }
    Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    )
}

/// A child process of a test: killed with SIGKILL and reaped when dropped.
#[derive(Debug)]
#[must_use = "dropping the child kills it"]
pub struct ChildProcess(Child);

impl ChildProcess {
    /// A command that runs this test binary again (set the environment
    /// that makes it the child, then [`start`](Self::start) it).
    ///
    /// # Panics
    ///
    /// When the binary's own path is unknown.
    pub fn command() -> Command {
        Command::new(std::env::current_exe().expect("the test binary's own path"))
    }

    /// Starts `command`.
    ///
    /// # Panics
    ///
    /// When it cannot be started.
    pub fn start(command: &mut Command) -> Self {
        Self(command.spawn().expect("a child process starts"))
    }

    /// The process, for its pipes and its id.
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }

    /// Kills the process with SIGKILL (`kill -9`: no clean-up of its own)
    /// and reaps it. Killing a process that already ended does nothing.
    pub fn kill(&mut self) {
        // An error here means the process is gone already.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_child_is_killed_and_reaped() {
        let mut child = ChildProcess::start(Command::new("sleep").arg("30"));
        let pid = child.child().id();
        drop(child);
        // Reaped: no such process any more (a zombie would still be listed).
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        assert!(!alive, "process {pid} outlived its handle");
    }

    #[test]
    fn killing_twice_does_nothing_more() {
        let mut child = ChildProcess::start(Command::new("sleep").arg("30"));
        child.kill();
        child.kill();
        assert!(child.child().try_wait().expect("status").is_some());
    }
}
