//! Throwaway redis-server instances on free loopback ports.
//!
//! Each test starts its own server, so tests never share keys and never need
//! `FLUSHALL`. The server keeps nothing on disk (`--save ''`,
//! `--appendonly no`) and runs in its own temporary directory; it is killed
//! when the [`RedisServer`] is dropped.
//!
//! When `redis-server` is not installed, [`RedisServer::start_or_skip`] lets a
//! test skip with a message, except under `CI=true`, where it panics: in CI a
//! Redis test fails rather than silently skipping.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Ports tried before giving up when each turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// How long a server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable naming the redis-server binary (default: `redis-server` on the PATH).
pub const SERVER_BIN_ENV: &str = "SOIREE_REDIS_SERVER";

/// A redis-server child process on a loopback port, killed on drop.
///
/// # Examples
///
/// ```no_run
/// use soiree_test::redis::RedisServer;
///
/// let Some(server) = RedisServer::start_or_skip() else { return };
/// println!("redis at {}", server.url());
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The TLS port, for a server started with [`RedisServer::start_tls`].
    tls_port: Option<u16>,
    /// Arguments added to the server's command line.
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// An [`io::ErrorKind::NotFound`] error when redis-server is not
    /// installed; other I/O errors when it cannot be started or does not
    /// answer within 10 s.
    pub fn start() -> io::Result<Self> {
        // Another process may take the free port between our look and the
        // server's bind: then try another port, a few times.
        Self::start_with(Vec::new(), None)
    }

    /// Starts a server that also serves TLS on another free loopback port,
    /// with the given PEM files (server certificate, its key, and the CA
    /// that signed it); clients need no certificate of their own. The
    /// plain port stays open for setup and checks.
    ///
    /// # Errors
    ///
    /// As for [`RedisServer::start`]; also when redis-server was built
    /// without TLS.
    pub fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> io::Result<Self> {
        let tls_port = free_port()?;
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
        let args = vec![
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path(cert),
            "--tls-key-file".to_owned(),
            path(key),
            "--tls-ca-cert-file".to_owned(),
            path(ca),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        Self::start_with(args, Some(tls_port))
    }

    fn start_with(extra_args: Vec<String>, tls_port: Option<u16>) -> io::Result<Self> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_on(free_port()?, extra_args.clone(), tls_port) {
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => last = Some(err),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    fn start_on(port: u16, extra_args: Vec<String>, tls_port: Option<u16>) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "soiree-redis-{}-{port}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            port,
            dir,
            child: None,
            tls_port,
            extra_args,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts a server, or returns `None` after printing why when
    /// redis-server is not installed and `CI` is not `true`.
    ///
    /// # Panics
    ///
    /// When the server cannot be started, unless it is missing outside CI:
    /// a test that needs Redis must fail, not skip, in CI.
    pub fn start_or_skip() -> Option<Self> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(err) if err.kind() == io::ErrorKind::NotFound && !is_ci() => {
                eprintln!(
                    "skipping: redis-server is not installed ({err}); install it to run this test"
                );
                None
            }
            Err(err) => panic!("cannot start redis-server: {err}"),
        }
    }

    /// The server's URL, `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's TLS port, for a server started with [`RedisServer::start_tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// Kills the server (SIGKILL) and starts a new, empty one on the same port.
    ///
    /// # Errors
    ///
    /// As for [`RedisServer::start`].
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Kills the server (SIGKILL) and waits for it to exit. Its port is then
    /// closed until [`RedisServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server (SIGSTOP) without closing its port: connections
    /// and new connects are accepted by the kernel and never answered, as
    /// with a hung server. [`RedisServer::resume`] continues it; dropping
    /// the server resumes it first.
    ///
    /// # Errors
    ///
    /// When no server runs or the signal cannot be sent.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Continues a server stopped by [`RedisServer::pause`] (SIGCONT): it
    /// then reads what was sent to it meanwhile.
    ///
    /// # Errors
    ///
    /// When no server runs or the signal cannot be sent.
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    /// Sends a signal with kill(1): the crate has no libc binding of its own.
    fn signal(&self, signal: &str) -> io::Result<()> {
        let Some(child) = &self.child else {
            return Err(io::Error::other("no redis-server is running"));
        };
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal} failed: {status}")))
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let bin = std::env::var(SERVER_BIN_ENV).unwrap_or_else(|_| "redis-server".to_owned());
        let child = Command::new(&bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &self.dir.to_string_lossy()])
            .args(&self.extra_args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| io::Error::new(err.kind(), format!("{bin}: {err}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ping(self.port).is_ok() {
                // Make sure the server that answered is ours, not another
                // test's that took the port first.
                let ours = self.child.as_ref().map(Child::id);
                return match server_pid(self.port) {
                    Ok(pid) if Some(pid) == ours => Ok(()),
                    Ok(_) => {
                        self.kill();
                        Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!("port {} is taken by another redis-server", self.port),
                        ))
                    }
                    Err(err) => {
                        self.kill();
                        Err(err)
                    }
                };
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(io::Error::other(format!(
                    "redis-server exited at start: {status}"
                )));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-server did not answer PING in time",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server is continued first, so that it ends as usual.
        let _ = self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reports whether the tests run under CI (`CI=true`).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn ping(port: u16) -> io::Result<()> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"PING\r\n")?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply)?;
    if &reply == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(io::Error::other("unexpected PING reply"))
    }
}

/// The `process_id` that the server on `port` reports in `INFO server`.
fn server_pid(port: u16) -> io::Result<u32> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(b"INFO server\r\n")?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    // A bulk reply: `$<len>\r\n<text>\r\n`; read until the pid line is in.
    while !String::from_utf8_lossy(&reply).contains("\nrun_id:") && reply.len() < 64 * 1024 {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8_lossy(&reply)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| io::Error::other("INFO server has no process_id"))
}
