//! Runs the built `soiree-bench` binary: output format, checks, progress
//! and exit codes. Small event counts: timings are not asserted here.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Generous for a debug build on a loaded machine; a hang fails the test.
const DEADLINE: Duration = Duration::from_secs(180);

/// How a run of the binary ended.
#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `soiree-bench ARGS` with stdin, stdout and stderr not terminals,
/// killing it after [`DEADLINE`] (then the test fails).
fn soiree(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_soiree-bench"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the soiree-bench binary starts");
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
        if let Some(status) = child.try_wait().expect("wait for soiree-bench") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("soiree-bench {args:?} ran longer than {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: status.code(),
        stdout: stdout.join().expect("stdout reader").expect("utf-8 stdout"),
        stderr: stderr.join().expect("stderr reader").expect("utf-8 stderr"),
    }
}

/// Parses `key=value …`, checking that the keys come in the documented order.
fn parse_line(line: &str) -> (Vec<String>, HashMap<String, String>) {
    let mut keys = Vec::new();
    let mut fields = HashMap::new();
    for token in line.split(' ') {
        let (key, value) = token
            .split_once('=')
            .unwrap_or_else(|| panic!("{token:?} in {line:?} is not key=value"));
        assert!(!value.is_empty(), "empty value for {key} in {line:?}");
        keys.push(key.to_owned());
        assert!(
            fields.insert(key.to_owned(), value.to_owned()).is_none(),
            "{key} twice in {line:?}"
        );
    }
    assert_eq!(
        keys[..4],
        ["scenario", "n", "seconds", "rate"],
        "in {line:?}"
    );
    for (key, value) in &fields {
        if key != "scenario" {
            let number: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value} is not a number in {line:?}"));
            assert!(
                number.is_finite() && number >= 0.0,
                "{key}={value} in {line:?}"
            );
        }
    }
    (keys, fields)
}

#[test]
fn every_in_memory_scenario_prints_one_checked_line() {
    let out = soiree(&["--n", "2000"]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let names: Vec<String> = lines
        .iter()
        .map(|line| parse_line(line).1["scenario"].clone())
        .collect();
    assert_eq!(
        names,
        [
            "emit-throughput",
            "round-trip",
            "fanout-10",
            "wildcard-1k",
            "error-delivery",
            "slow-listener"
        ],
        "stdout: {}",
        out.stdout
    );
    let by_name: HashMap<String, (Vec<String>, HashMap<String, String>)> = lines
        .iter()
        .map(|line| {
            let parsed = parse_line(line);
            (parsed.1["scenario"].clone(), parsed)
        })
        .collect();
    for (_, fields) in by_name.values() {
        assert_eq!(fields["n"], "2000");
    }
    let extras = |name: &str| by_name[name].0[4..].to_vec();
    if cfg!(target_os = "linux") {
        assert_eq!(extras("emit-throughput"), ["peak_rss_mb", "backlog"]);
    }
    assert_eq!(extras("round-trip"), ["p50_us", "p99_us"]);
    assert_eq!(by_name["fanout-10"].1["invocations"], "20000");
    assert_eq!(by_name["wildcard-1k"].1["invocations"], "8000");
    assert_eq!(by_name["error-delivery"].1["errors"], "40000");
    assert_eq!(extras("slow-listener"), ["sleep_ms"]);

    let p50: f64 = by_name["round-trip"].1["p50_us"].parse().unwrap();
    let p99: f64 = by_name["round-trip"].1["p99_us"].parse().unwrap();
    assert!(p50 <= p99, "p50 {p50} above p99 {p99}");
}

#[test]
fn json_prints_one_object_per_scenario() {
    let out = soiree(&["--json", "--n", "500", "error-delivery", "round-trip"]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let objects: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    // Table order, whatever the order on the command line.
    assert_eq!(objects.len(), 2, "stdout: {}", out.stdout);
    assert_eq!(objects[0]["scenario"], "round-trip");
    assert_eq!(objects[1]["scenario"], "error-delivery");
    for object in &objects {
        assert_eq!(object["n"], 500);
        assert!(
            object["seconds"].as_f64().is_some_and(|s| s > 0.0),
            "{object}"
        );
        assert!(object["rate"].as_f64().is_some_and(|r| r > 0.0), "{object}");
    }
    assert!(objects[0]["p99_us"].is_number());
    assert_eq!(objects[1]["errors"], 10_000);
}

#[test]
fn a_scenario_named_twice_runs_once() {
    let out = soiree(&["--n", "100", "fanout-10", "fanout-10"]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 1, "stdout: {}", out.stdout);
}

#[test]
fn an_unknown_scenario_exits_2() {
    let out = soiree(&["no-such-scenario"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("no-such-scenario"),
        "stderr: {}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
}

#[test]
fn a_planned_scenario_is_refused_as_not_available() {
    // Help lists the planned scenarios that this build cannot run yet; once
    // every one is in, there is nothing left to refuse.
    let help = soiree(&["--help"]);
    let Some(planned) = help
        .stdout
        .lines()
        .find(|line| line.contains("(not available yet)"))
        .and_then(|line| line.split_whitespace().next())
    else {
        return;
    };
    let out = soiree(&[
        "--redis",
        "redis://127.0.0.1:1",
        "--postgres",
        "postgres://127.0.0.1:1/none",
        planned,
    ]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("not available"),
        "stderr: {}",
        out.stderr
    );
    assert!(out.stderr.contains(planned), "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
}

#[test]
fn zero_events_is_a_usage_error() {
    let out = soiree(&["--n", "0", "round-trip"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
}

#[test]
fn help_lists_the_scenarios() {
    let out = soiree(&["--help"]);
    assert_eq!(out.code, Some(0));
    for name in [
        "emit-throughput",
        "wildcard-1k",
        "slow-listener",
        "redis-durable",
    ] {
        assert!(out.stdout.contains(name), "help: {}", out.stdout);
    }
    let version = soiree(&["--version"]);
    assert_eq!(version.code, Some(0));
    assert!(
        version.stdout.starts_with("soiree-bench "),
        "{}",
        version.stdout
    );
}

#[test]
fn mutation_capture_reports_each_store() {
    let out = soiree(&["--n", "300", "mutation-capture"]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let line = out.stdout.lines().next().expect("one line");
    let (keys, fields) = parse_line(line);
    assert_eq!(fields["scenario"], "mutation-capture");
    assert_eq!(fields["n"], "300");
    assert!(keys.iter().any(|k| k == "sqlite_rate"), "{line}");
    // A throwaway PostgreSQL is started when one is installed.
    let skipped = out.stderr.contains("skipping PostgreSQL");
    assert_eq!(
        keys.iter().any(|k| k == "postgres_rate"),
        !skipped,
        "{line} / {}",
        out.stderr
    );
}

#[test]
fn progress_goes_to_stderr_as_plain_lines_and_results_to_stdout() {
    let out = soiree(&["--n", "100", "round-trip"]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let line = out.stdout.lines().next().expect("one line");
    assert_eq!(parse_line(line).1["scenario"], "round-trip");
    assert_eq!(out.stdout.lines().count(), 1, "stdout: {}", out.stdout);
    assert!(
        out.stderr.contains("[1/1] running round-trip"),
        "stderr: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("round-trip done in "),
        "stderr: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("scenario="), "stderr: {}", out.stderr);
}

#[test]
fn delayed_lateness_reports_each_store_it_ran_on() {
    let out = soiree(&[
        "--n",
        "200",
        "--spread",
        "1",
        "--stores",
        "memory,sqlite",
        "delayed-lateness",
    ]);
    // Exit 0: on each store no event came early, every id was handled
    // once, and nothing was left pending or scheduled.
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout: {}", out.stdout);
    let (keys, fields) = parse_line(lines[0]);
    assert_eq!(fields["scenario"], "delayed-lateness");
    assert_eq!(fields["n"], "200");
    assert_eq!(
        keys[4..],
        [
            "memory_p50_ms",
            "memory_p99_ms",
            "memory_max_ms",
            "memory_early",
            "memory_emit_s",
            "memory_stored_late",
            "sqlite_p50_ms",
            "sqlite_p99_ms",
            "sqlite_max_ms",
            "sqlite_early",
            "sqlite_emit_s",
            "sqlite_stored_late",
        ],
        "{}",
        lines[0]
    );
    for store in ["memory", "sqlite"] {
        assert_eq!(fields[&format!("{store}_early")], "0", "{}", lines[0]);
        let ms = |figure: &str| -> f64 { fields[&format!("{store}_{figure}_ms")].parse().unwrap() };
        assert!(
            ms("p50") <= ms("p99") && ms("p99") <= ms("max"),
            "{}",
            lines[0]
        );
    }
}

#[test]
fn delayed_lateness_refuses_an_unknown_store_and_a_zero_spread() {
    for args in [
        ["--stores", "mongo", "delayed-lateness"],
        ["--spread", "0", "delayed-lateness"],
    ] {
        let out = soiree(&args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    }
}
