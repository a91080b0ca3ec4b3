//! What the tests of the `soiree` binary share: running it with a
//! deadline, and a fresh temporary directory.

// Each test file uses a part of it.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Stdout as JSON, after checking that the run succeeded.
    pub fn json(&self) -> Value {
        assert_eq!(self.code, Some(0), "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("{err}: {self:?}"))
    }
}

/// Runs `soiree ARGS` with stdin not a terminal (nothing to read) and no
/// `SOIREE_STORE` nor `RUST_LOG` (default logging), killing it after `deadline` (then the test fails).
pub fn soiree_within(args: &[&str], deadline: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_soiree"))
        .args(args)
        .env_remove("SOIREE_STORE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the soiree binary starts");
    // Read both pipes on threads so that a full pipe cannot stall the child.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        out.read_to_string(&mut text).map(|_| text)
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        err.read_to_string(&mut text).map(|_| text)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for soiree") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("soiree {args:?} ran longer than {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader").expect("utf-8 stdout"),
        stderr: stderr.join().expect("stderr reader").expect("utf-8 stderr"),
    }
}

/// A new empty directory under the system's temporary directory, unique
/// to this process and call (`name` tells the tests' apart).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "soiree-cli-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}
