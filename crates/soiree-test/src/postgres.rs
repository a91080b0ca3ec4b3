//! Throwaway PostgreSQL servers in temporary directories, on free loopback ports.
//!
//! Each test starts its own server (`initdb` into a temporary directory, then
//! `postgres` on a free loopback port, with its unix socket in that directory
//! too), so tests never share data and never touch a server of the machine
//! (such as one on port 5432). The server runs with `fsync=off` and trust
//! authentication: it is for tests only. It is shut down (immediately, as on
//! a crash) and its directory removed when the [`PostgresServer`] is dropped.
//!
//! The binaries come from the newest `/usr/lib/postgresql/<version>/bin`
//! (Debian's layout), from the directory named by [`BIN_DIR_ENV`], or from the
//! `PATH`. `initdb` refuses to run as root: when the tests run as root, the
//! server runs as the `postgres` user (through `setpriv`, or `runuser`), and
//! its directory is handed to that user.
//!
//! When PostgreSQL is not installed, [`PostgresServer::start_or_skip`] lets a
//! test skip with a message, except under `CI=true`, where it panics.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::redis::is_ci;

/// The environment variable naming the directory of the PostgreSQL binaries.
pub const BIN_DIR_ENV: &str = "SOIREE_PG_BIN";

/// Ports tried before giving up when each turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The user the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// A PostgreSQL server child process on a loopback port, shut down and
/// removed on drop.
///
/// # Examples
///
/// ```no_run
/// use soiree_test::postgres::PostgresServer;
///
/// let Some(server) = PostgresServer::start_or_skip() else { return };
/// println!("postgres at {}", server.url());
/// ```
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_user: Option<Vec<String>>,
    child: Option<Child>,
}

impl PostgresServer {
    /// Creates a cluster with `initdb` and starts a server on a free loopback
    /// port, waiting until it accepts connections.
    ///
    /// # Errors
    ///
    /// An [`io::ErrorKind::NotFound`] error when PostgreSQL is not
    /// installed; other I/O errors when the cluster cannot be created or the
    /// server does not start within 30 s.
    pub fn start() -> io::Result<Self> {
        let bin = bin_dir()?;
        let as_user = run_as()?;
        // The counter: two servers started in the same clock tick by one
        // process once got the same directory.
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "soiree-pg-{}-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            port: 0,
            dir,
            bin,
            as_user,
            child: None,
        };
        // The drop of `server` removes the directory if anything below fails.
        server.init()?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    /// Starts a server, or returns `None` after printing why when PostgreSQL
    /// is not installed and `CI` is not `true`.
    ///
    /// # Panics
    ///
    /// When the server cannot be started, unless PostgreSQL is missing
    /// outside CI: a test that needs PostgreSQL must fail, not skip, in CI.
    pub fn start_or_skip() -> Option<Self> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(err) if err.kind() == io::ErrorKind::NotFound && !is_ci() => {
                eprintln!(
                    "skipping: PostgreSQL is not installed ({err}); install it to run this test"
                );
                None
            }
            Err(err) => panic!("cannot start postgres: {err}"),
        }
    }

    /// The URL of the server's `postgres` database, as the `postgres` user
    /// (no password: trust authentication).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of another database of the server (create it first).
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`: no checkpoint, open connections cut), and waits for it to
    /// exit. Its data stays; [`PostgresServer::restart`] starts it again.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGQUIT is the immediate shutdown: the postmaster takes its
        // backends down with it, so that a restart finds no leftovers.
        let quit = Command::new("kill")
            .args(["-s", "QUIT", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !quit.is_ok_and(|status| status.success()) {
            let _ = child.kill();
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Stops the server at once (as [`PostgresServer::kill`]) and starts it
    /// again on the same port with the same data, after crash recovery.
    ///
    /// # Errors
    ///
    /// When the server does not start again within 30 s.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        // Backends of the old server may take a moment to go; until then
        // the new one refuses to start on the same data.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(err) if Instant::now() >= deadline => return Err(err),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A command running `program` from the binary directory, as the server
    /// user when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match &self.as_user {
            None => Command::new(program),
            Some(prefix) => {
                let mut command = Command::new(&prefix[0]);
                command.args(&prefix[1..]).arg(program);
                command
            }
        }
    }

    fn init(&mut self) -> io::Result<()> {
        if self.as_user.is_some() {
            let status = Command::new("chown")
                .args(["-R", &format!("{SERVER_USER}:{SERVER_USER}")])
                .arg(&self.dir)
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                return Err(io::Error::other(format!(
                    "cannot hand {} to the {SERVER_USER} user",
                    self.dir.display()
                )));
            }
        }
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
            .args(["--no-locale", "--no-sync", "--no-instructions"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|err| io::Error::new(err.kind(), format!("initdb: {err}")))?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(())
    }

    fn spawn(&mut self) -> io::Result<()> {
        let port = self.port.to_string();
        let log = std::fs::File::create(self.dir.join("server.log"))?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &port])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|err| io::Error::new(err.kind(), format!("postgres: {err}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                let kind =
                    if log.contains("could not bind") || log.contains("could not create any TCP") {
                        io::ErrorKind::AddrInUse
                    } else {
                        io::ErrorKind::Other
                    };
                return Err(io::Error::new(
                    kind,
                    format!("postgres exited at start ({status}): {}", last_lines(&log)),
                ));
            }
            // Asked through the socket in our own directory: the answer is
            // from our server, not from another one on the port.
            let ready = self
                .command("pg_isready")
                .arg("-h")
                .arg(&self.dir)
                .args(["-p", &port, "-t", "1", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if ready.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "postgres did not accept connections in time",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// The directory of the PostgreSQL binaries: [`BIN_DIR_ENV`], else the
/// newest `/usr/lib/postgresql/<version>/bin`, else the one holding `initdb`
/// on the `PATH`.
fn bin_dir() -> io::Result<PathBuf> {
    if let Ok(dir) = std::env::var(BIN_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no initdb in /usr/lib/postgresql/*/bin or on the PATH",
            )
        })
}

/// How to run the server's programs: as is, or, when running as root, as
/// the `postgres` user (`setpriv` execs in place, so the child is the
/// server itself; `runuser` is the fallback).
fn run_as() -> io::Result<Option<Vec<String>>> {
    let uid = Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Ok(None);
    }
    if let Some(setpriv) = on_path("setpriv") {
        return Ok(Some(vec![
            setpriv.to_string_lossy().into_owned(),
            format!("--reuid={SERVER_USER}"),
            format!("--regid={SERVER_USER}"),
            "--init-groups".to_owned(),
            "--".to_owned(),
        ]));
    }
    if let Some(runuser) = on_path("runuser") {
        return Ok(Some(vec![
            runuser.to_string_lossy().into_owned(),
            "-u".to_owned(),
            SERVER_USER.to_owned(),
            "--".to_owned(),
        ]));
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "running as root, but neither setpriv nor runuser is installed to run postgres as its own user",
    ))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| Path::new(candidate).is_file())
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_restarts_and_cleans_up() {
        let Some(mut server) = PostgresServer::start_or_skip() else {
            return;
        };
        let dir = server.dir.clone();
        assert!(dir.join("data").is_dir());
        assert_ne!(server.port(), 5432);
        assert!(server.url().starts_with("postgres://postgres@127.0.0.1:"));
        server.restart().expect("restart");
        drop(server);
        assert!(!dir.exists(), "the server's directory was not removed");
    }
}
