//! Throwaway nats-server instances with JetStream on free loopback ports: one
//! server ([`NatsServer`]) or a 3-server cluster ([`NatsCluster`]).
//!
//! Each server runs from a configuration file in its own temporary
//! directory, keeps its JetStream data there (`store_dir`), and is killed
//! and its directory removed when dropped. [`NatsServer::kill`] (SIGKILL)
//! and [`NatsServer::restart`] (same ports, same data) are for fault tests.
//!
//! When `nats-server` is not installed, [`NatsServer::start_or_skip`] and
//! [`NatsCluster::start_or_skip`] let a test skip with a message, except
//! under `CI=true`, where they panic: in CI a NATS test fails rather than
//! silently skipping.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::redis::is_ci;

/// The environment variable naming the nats-server binary (default:
/// `nats-server` on the PATH, then `/usr/sbin/nats-server`, where Debian
/// puts it).
pub const SERVER_BIN_ENV: &str = "SOIREE_NATS_SERVER";

/// How long a server (or the cluster's JetStream) may take to be healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Ports tried before giving up when each turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// The largest message the test servers accept: above soiree's largest
/// event (a 1 MiB payload plus 64 KiB of properties), so that the
/// hostile-row suite reaches soiree's limits before the server's.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// A nats-server child process with JetStream on a loopback port, killed
/// (and its directory removed) on drop.
///
/// # Examples
///
/// ```no_run
/// use soiree_test::nats::NatsServer;
///
/// let Some(server) = NatsServer::start_or_skip() else { return };
/// println!("nats at {}", server.url());
/// ```
#[derive(Debug)]
pub struct NatsServer {
    name: String,
    port: u16,
    http_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Removed with the server (false for a cluster member: the cluster
    /// owns the parent directory).
    owns_dir: bool,
}

impl NatsServer {
    /// Starts a server with JetStream on a free loopback port and waits
    /// until it is healthy.
    ///
    /// # Errors
    ///
    /// An [`io::ErrorKind::NotFound`] error when nats-server is not
    /// installed; other I/O errors when it cannot be started or is not
    /// healthy within 30 s.
    pub fn start() -> io::Result<Self> {
        Self::start_with("")
    }

    /// Starts a server whose configuration file also holds `extra` (for
    /// example an `authorization { … }` or `tls { … }` block).
    ///
    /// # Errors
    ///
    /// As for [`NatsServer::start`].
    pub fn start_with(extra: &str) -> io::Result<Self> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let dir = temp_dir("soiree-nats")?;
            let mut server = Self {
                name: unique_name("soiree-test"),
                port: free_port()?,
                http_port: free_port()?,
                dir,
                child: None,
                owns_dir: true,
            };
            let conf = server.config(extra);
            std::fs::write(server.conf_path(), conf)?;
            match server.spawn().and_then(|()| server.wait_healthy()) {
                Ok(()) => return Ok(server),
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    /// Starts a server, or returns `None` after printing why when
    /// nats-server is not installed and `CI` is not `true`.
    ///
    /// # Panics
    ///
    /// When the server cannot be started, unless it is missing outside CI.
    pub fn start_or_skip() -> Option<Self> {
        or_skip(Self::start())
    }

    /// The server's URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's name (`server_name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's monitoring (HTTP) port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The body of `GET <path>` on the monitoring port (`/varz`,
    /// `/connz`, `/jsz`…): JSON, read within a few seconds. Tests count a
    /// client's messages with it (`/connz`'s `in_msgs`, `out_msgs`).
    ///
    /// # Errors
    ///
    /// When the server does not answer, or not with 200.
    pub fn monitor(&self, path: &str) -> io::Result<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.http_port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        let reply = String::from_utf8_lossy(&reply).into_owned();
        if !(reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200")) {
            let status = reply.lines().next().unwrap_or("").to_owned();
            return Err(io::Error::other(format!("GET {path}: {status}")));
        }
        match reply.split_once("\r\n\r\n") {
            Some((_, body)) => Ok(body.to_owned()),
            None => Err(io::Error::other(format!("GET {path}: no body"))),
        }
    }

    /// The directory holding the configuration and the JetStream data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server (SIGKILL) and waits for it to exit; its data stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Reports whether the server process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server (SIGKILL) and starts it again on the same ports
    /// with the same data, then waits until it answers.
    ///
    /// # Errors
    ///
    /// When it cannot be started or does not answer within 30 s.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()?;
        self.wait_listening()
    }

    /// Starts a killed server again (as [`restart`](Self::restart)
    /// without the kill), without waiting for it.
    ///
    /// # Errors
    ///
    /// When it cannot be started.
    pub fn respawn(&mut self) -> io::Result<()> {
        if self.child.is_none() {
            self.spawn()?;
        }
        Ok(())
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }

    fn config(&self, extra: &str) -> String {
        format!(
            "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{http}\n\
             max_payload: {max}\njetstream {{\n  store_dir: {store:?}\n}}\n{extra}\n",
            name = self.name,
            port = self.port,
            http = self.http_port,
            max = MAX_PAYLOAD,
            store = self.dir.join("js").to_string_lossy(),
        )
    }

    fn spawn(&mut self) -> io::Result<()> {
        let bin = server_bin();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats.log"))?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(self.conf_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|err| io::Error::new(err.kind(), format!("{bin}: {err}")))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the client port answers with this server's INFO.
    fn wait_listening(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(info) = read_info(self.port) {
                if info.contains(&format!("\"server_name\":\"{}\"", self.name)) {
                    return Ok(());
                }
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("port {} is taken by another nats-server", self.port),
                ));
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nats-server on port {} did not answer in time", self.port),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the server answers and its `/healthz` (JetStream
    /// included) reports ok.
    fn wait_healthy(&mut self) -> io::Result<()> {
        self.wait_listening()?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if healthz(self.http_port).unwrap_or(false) {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nats-server on port {} was not healthy in time", self.port),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn check_alive(&mut self) -> io::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
            let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            let kind = if tail.contains("address already in use") {
                io::ErrorKind::AddrInUse
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(
                kind,
                format!("nats-server exited at start: {status}: {tail}"),
            ));
        }
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Three nats-server processes with JetStream, routed into one cluster on
/// loopback ports; streams with 3 replicas survive one of them dying.
/// Killed, and their directories removed, on drop.
///
/// # Examples
///
/// ```no_run
/// use soiree_test::nats::NatsCluster;
///
/// let Some(mut cluster) = NatsCluster::start_or_skip() else { return };
/// println!("seed: {}", cluster.urls().join(","));
/// cluster.server(1).kill();
/// cluster.server(1).restart().unwrap();
/// ```
#[derive(Debug)]
pub struct NatsCluster {
    servers: Vec<NatsServer>,
    http_ports: Vec<u16>,
    dir: PathBuf,
}

/// How many servers a [`NatsCluster`] has.
pub const CLUSTER_SIZE: usize = 3;

impl NatsCluster {
    /// Starts three servers routed into one JetStream cluster and waits
    /// until every one is healthy (a meta leader elected).
    ///
    /// # Errors
    ///
    /// As for [`NatsServer::start`].
    pub fn start() -> io::Result<Self> {
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once() {
                Ok(cluster) => return Ok(cluster),
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free port")))
    }

    /// Starts a cluster, or returns `None` after printing why when
    /// nats-server is not installed and `CI` is not `true`.
    ///
    /// # Panics
    ///
    /// When the cluster cannot be started, unless nats-server is missing
    /// outside CI.
    pub fn start_or_skip() -> Option<Self> {
        or_skip(Self::start())
    }

    fn start_once() -> io::Result<Self> {
        let dir = temp_dir("soiree-nats-cluster")?;
        let cluster_name = unique_name("soiree-cluster");
        let mut ports = Vec::new();
        for _ in 0..CLUSTER_SIZE {
            ports.push((free_port()?, free_port()?, free_port()?));
        }
        let mut servers = Vec::new();
        let mut http_ports = Vec::new();
        for (i, (port, http_port, route_port)) in ports.iter().copied().enumerate() {
            let server_dir = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&server_dir)?;
            let server = NatsServer {
                name: format!("{cluster_name}-n{i}"),
                port,
                http_port,
                dir: server_dir,
                child: None,
                owns_dir: false,
            };
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, _, route))| format!("nats-route://127.0.0.1:{route}"))
                .collect();
            let extra = format!(
                "cluster {{\n  name: {cluster_name}\n  listen: 127.0.0.1:{route_port}\n  \
                 routes: [{}]\n}}\n",
                routes.join(", ")
            );
            std::fs::write(server.conf_path(), server.config(&extra))?;
            servers.push(server);
            http_ports.push(http_port);
        }
        let mut cluster = Self {
            servers,
            http_ports,
            dir,
        };
        for server in &mut cluster.servers {
            server.spawn()?;
        }
        for server in &mut cluster.servers {
            server.wait_listening()?;
        }
        cluster.wait_healthy(START_TIMEOUT)?;
        Ok(cluster)
    }

    /// Waits until every running server reports JetStream healthy.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::TimedOut`] when they are not within `limit`.
    pub fn wait_healthy(&mut self, limit: Duration) -> io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let mut healthy = true;
            for (server, port) in self.servers.iter_mut().zip(&self.http_ports) {
                if server.child.is_some() {
                    server.check_alive()?;
                    healthy &= healthz(*port).unwrap_or(false);
                }
            }
            if healthy {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the nats cluster's JetStream was not healthy in time",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The client URLs of the three servers.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }

    /// The client URLs as one comma-separated seed list, as the NATS
    /// clients take it.
    pub fn url(&self) -> String {
        self.urls().join(",")
    }

    /// One of the servers (0, 1 or 2), to kill or restart.
    ///
    /// # Panics
    ///
    /// When `i` is 3 or more.
    pub fn server(&mut self, i: usize) -> &mut NatsServer {
        &mut self.servers[i]
    }

    /// Kills every server (SIGKILL), then starts them all again with their
    /// data and waits until each answers. `/healthz` may stay unhealthy
    /// for a while as streams catch up: callers bound their own waits for
    /// what they need (as [`NatsCluster::wait_healthy`] does).
    ///
    /// # Errors
    ///
    /// When a server cannot be started or does not answer within 30 s.
    pub fn restart_all(&mut self) -> io::Result<()> {
        for server in &mut self.servers {
            server.kill();
        }
        for server in &mut self.servers {
            server.spawn()?;
        }
        for server in &mut self.servers {
            server.wait_listening()?;
        }
        Ok(())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            server.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn or_skip<T>(started: io::Result<T>) -> Option<T> {
    match started {
        Ok(server) => Some(server),
        Err(err) if err.kind() == io::ErrorKind::NotFound && !is_ci() => {
            eprintln!(
                "skipping: nats-server is not installed ({err}); install it to run this test"
            );
            None
        }
        Err(err) => panic!("cannot start nats-server: {err}"),
    }
}

fn server_bin() -> String {
    if let Ok(bin) = std::env::var(SERVER_BIN_ENV) {
        return bin;
    }
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("nats-server").is_file())
    });
    if !on_path && Path::new("/usr/sbin/nats-server").is_file() {
        // Debian installs it in /usr/sbin, which a user's PATH may lack.
        return "/usr/sbin/nats-server".to_owned();
    }
    "nats-server".to_owned()
}

fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}

fn temp_dir(prefix: &str) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The server's `INFO {…}` line, which it sends first on every connection.
fn read_info(port: u16) -> io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.contains(&b'\n') && reply.len() < 64 * 1024 {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..read]);
    }
    let info = String::from_utf8_lossy(&reply).into_owned();
    if info.starts_with("INFO ") {
        Ok(info)
    } else {
        Err(io::Error::other("no INFO from nats-server"))
    }
}

/// Whether `GET /healthz` on the monitoring port answers 200 (JetStream
/// enabled and current, for a cluster member a meta leader known).
fn healthz(http_port: u16) -> io::Result<bool> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, http_port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(1000)))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    Ok(reply.starts_with(b"HTTP/1.1 200") || reply.starts_with(b"HTTP/1.0 200"))
}
