//! CLI tests: golden sessions in `tests/cli/*.txt` run the real `kvsim` binary against an
//! in-process cluster and compare command, stdout, stderr and exit code; plus every command
//! through each of the three ports, and `status` in both output modes.
//!
//! Golden format: `$ kvsim ARGS` runs a command (shell quoting; `{node1}`..`{node3}`,
//! `{leader}` and `{follower}` become node addresses). The lines after it are its stdout, then
//! its stderr prefixed with `! `, then `? CODE` when the exit code is not 0. `#` lines are
//! comments. Volatile values are masked in the output: node addresses become their placeholder,
//! UUIDs `<uuid>`, timestamps `<time>`. Regenerate with `UPDATE_GOLDENFILES=1 cargo test --test
//! cli` and review the diff.

mod common;

use std::path::Path;

use common::{CliRun as Run, TestCluster, kvsim_cli};
use regex::Regex;
use serde_json::Value;

fn kvsim(args: &[String]) -> Run {
    kvsim_cli(args)
}

/// Placeholder -> address, for the cluster under test.
fn placeholders(tc: &TestCluster, leader: u64) -> Vec<(String, String)> {
    let follower = tc.other_than(leader);
    let mut p = vec![
        ("{leader}".to_string(), tc.addr(leader)),
        ("{follower}".to_string(), tc.addr(follower)),
    ];
    for id in 1..=3 {
        p.push((format!("{{node{id}}}"), tc.addr(id)));
    }
    p
}

fn mask(text: &str, places: &[(String, String)]) -> String {
    let mut out = text.to_string();
    // Leader and follower first: their addresses are also some {nodeN}.
    for (ph, addr) in places {
        out = out.replace(addr.as_str(), ph);
    }
    let rules = [
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "<uuid>",
        ),
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>"),
        (
            r#"("(CreationDateTime|LastUpdateToPayPerRequestDateTime)": )[0-9.e+]+"#,
            "${1}<time>",
        ),
        (
            r"redirected to leader \d+ at",
            "redirected to leader <id> at",
        ),
    ];
    for (re, with) in rules {
        out = Regex::new(re)
            .expect("mask regex")
            .replace_all(&out, with)
            .into_owned();
    }
    out
}

/// Runs one golden file and returns the transcript it should contain.
fn run_script(script: &str, places: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut lines = script.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(cmd) = line.strip_prefix("$ ") {
            let mut args =
                shlex::split(cmd).unwrap_or_else(|| panic!("bad quoting in golden command: {cmd}"));
            assert_eq!(
                args.first().map(String::as_str),
                Some("kvsim"),
                "golden commands start with kvsim: {cmd}"
            );
            args.remove(0);
            for a in &mut args {
                for (ph, addr) in places {
                    *a = a.replace(ph.as_str(), addr);
                }
            }
            let run = kvsim(&args);
            out.push_str(line);
            out.push('\n');
            out.push_str(&mask(&run.stdout, places));
            for l in mask(&run.stderr, places).lines() {
                out.push_str(format!("! {l}").trim_end_matches(' '));
                out.push('\n');
            }
            if run.code != 0 {
                out.push_str(&format!("? {}\n", run.code));
            }
            // Skip the recorded output of this command.
            while lines
                .peek()
                .is_some_and(|l| !l.starts_with("$ ") && !l.starts_with('#'))
            {
                lines.next();
            }
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim_end().to_string() + "\n"
}

async fn golden(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli")
        .join(format!("{name}.txt"));
    let script =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let places = placeholders(&tc, leader);
    let script_for_thread = script.clone();
    let actual = tokio::task::spawn_blocking(move || run_script(&script_for_thread, &places))
        .await
        .expect("script runs");
    tc.cluster.shutdown().await;
    if std::env::var_os("UPDATE_GOLDENFILES").is_some() {
        std::fs::write(&path, &actual).expect("write golden file");
        return;
    }
    if actual != script {
        let diff: Vec<String> = script
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(5)
            .map(|(i, (want, got))| format!("line {}:\n  want: {want}\n  got:  {got}", i + 1))
            .collect();
        panic!(
            "{} differs from the CLI's output (UPDATE_GOLDENFILES=1 regenerates it):\n{}\n--- full output ---\n{actual}",
            path.display(),
            diff.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_tables() {
    golden("tables").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_items() {
    golden("items").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_queries() {
    golden("queries").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_indexes() {
    golden("indexes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_ttl() {
    golden("ttl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_errors() {
    golden("errors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_expressions() {
    golden("expressions").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_followers() {
    golden("followers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_partiql() {
    golden("partiql").await;
}

fn ok(args: &[&str]) -> String {
    let run = kvsim(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(run.code, 0, "kvsim {args:?} failed: {}", run.stderr);
    run.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_works_through_each_port() {
    let tc = TestCluster::start().await;
    tc.leader().await;
    let addrs: Vec<String> = (1..=3).map(|id| tc.addr(id)).collect();
    tokio::task::spawn_blocking(move || {
        for (i, addr) in addrs.iter().enumerate() {
            let table = format!("Port{i}");
            let t = ["--target-addr", addr.as_str()];
            let with = |args: &[&str]| -> Vec<String> {
                args.iter().chain(t.iter()).map(|s| s.to_string()).collect()
            };
            let run = |args: &[&str]| {
                let r = kvsim(&with(args));
                assert_eq!(r.code, 0, "kvsim {args:?} via {addr}: {}", r.stderr);
                r.stdout
            };
            run(&[
                "create-table",
                "--table-name",
                &table,
                "--partition-key-name",
                "pk",
                "--sort-key-name",
                "sk",
                "--sort-key-type",
                "N",
            ]);
            run(&[
                "put-item",
                "--table-name",
                &table,
                "--item-data",
                r#"{"pk":"a","sk":1,"v":"one"}"#,
            ]);
            // The second item comes from a file, as items too big for a command line do.
            let file = tempfile::NamedTempFile::new().expect("temp file");
            std::fs::write(file.path(), r#"{"pk":"a","sk":2,"v":"two"}"#).expect("write item");
            run(&[
                "put-item",
                "--table-name",
                &table,
                "--item-data",
                &format!("file://{}", file.path().display()),
            ]);
            // An eventual read at this node sees the write once it has replicated here.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let r = kvsim(&with(&[
                    "get-item",
                    "--table-name",
                    &table,
                    "--partition-key",
                    "a",
                    "--sort-key",
                    "2",
                    "--output",
                    "json",
                ]));
                if r.code == 0 {
                    let got: Value = serde_json::from_str(&r.stdout).expect("json");
                    assert_eq!(got["v"], "two", "eventual read via {addr}");
                    break;
                }
                // Until the write (or the table itself) has replicated here.
                assert!(
                    r.code == 4 || (r.code == 1 && r.stderr.contains("does not exist")),
                    "only 'not found' while replicating: {}",
                    r.stderr
                );
                assert!(
                    std::time::Instant::now() < deadline,
                    "the write never reached {addr}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let status: Value =
                serde_json::from_str(&run(&["status", "--output", "json"])).expect("json");
            assert_eq!(status["addr"], addr.as_str(), "status of the node asked");
            // Consistent reads go to the leader, so they see the writes from any port.
            let got: Value = serde_json::from_str(&run(&[
                "get-item",
                "--table-name",
                &table,
                "--partition-key",
                "a",
                "--sort-key",
                "2",
                "--consistent",
                "--output",
                "json",
            ]))
            .expect("json");
            assert_eq!(got["v"], "two");
            let q: Value = serde_json::from_str(&run(&[
                "query-items",
                "--table-name",
                &table,
                "--partition-key",
                "a",
                "--sort-key-ge",
                "1",
                "--consistent",
                "--output",
                "json",
            ]))
            .expect("json");
            assert_eq!(q.as_array().map(Vec::len), Some(2));
            let s: Value = serde_json::from_str(&run(&[
                "scan",
                "--table-name",
                &table,
                "--consistent",
                "--output",
                "json",
            ]))
            .expect("json");
            assert_eq!(s.as_array().map(Vec::len), Some(2));
            let d: Value = serde_json::from_str(&run(&[
                "describe-table",
                "--table-name",
                &table,
                "--output",
                "json",
            ]))
            .expect("json");
            assert_eq!(d["TableName"], table.as_str());
            let l: Value =
                serde_json::from_str(&run(&["list-tables", "--output", "json"])).expect("json");
            assert!(
                l.as_array()
                    .is_some_and(|a| a.iter().any(|n| n == table.as_str()))
            );
            run(&[
                "delete-item",
                "--table-name",
                &table,
                "--partition-key",
                "a",
                "--sort-key",
                "1",
            ]);
            run(&["delete-table", "--table-name", &table]);
        }
    })
    .await
    .expect("commands");
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_node_or_one() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.converged().await;
    let addr1 = tc.addr(1);
    let leader_addr = tc.addr(leader);
    tokio::task::spawn_blocking(move || {
        let all: Value = serde_json::from_str(&ok(&[
            "status",
            "--all",
            "--target-addr",
            &addr1,
            "--output",
            "json",
        ]))
        .expect("json");
        let nodes = all.as_array().expect("an array for all nodes");
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes.iter().filter(|n| n["role"] == "leader").count(), 1);
        assert!(
            nodes
                .iter()
                .all(|n| n["leader_addr"] == leader_addr.as_str())
        );

        let one: Value = serde_json::from_str(&ok(&[
            "status",
            "--target-addr",
            &addr1,
            "--output",
            "json",
        ]))
        .expect("json");
        assert_eq!(one["node_id"], 1);
        assert_eq!(one["addr"], addr1.as_str());

        let table = ok(&["status", "--all", "--target-addr", &addr1]);
        let header = table.lines().nth(1).unwrap_or_default();
        for col in [
            "node", "address", "role", "term", "leader", "commit", "applied", "lag", "faults",
        ] {
            assert!(
                header.contains(col),
                "status table header lacks {col}: {table}"
            );
        }
        let roles: Vec<String> = table
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| node"))
            .filter_map(|l| l.split('|').nth(3).map(|c| c.trim().to_string()))
            .collect();
        assert_eq!(
            roles.iter().filter(|r| *r == "leader").count(),
            1,
            "{table}"
        );
        assert_eq!(
            roles.iter().filter(|r| *r == "follower").count(),
            2,
            "{table}"
        );
    })
    .await
    .expect("status");
    tc.cluster.shutdown().await;
}

/// Server settings out of range are refused at start-up by name, before anything is opened:
/// huge compaction values used to overflow index arithmetic inside a running node.
#[test]
fn server_settings_out_of_range_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    for (flag, value, range) in [
        (
            "--compact-every",
            "18446744073709551615",
            "between 1 and 1000000000",
        ),
        ("--compact-every", "0", "between 1 and 1000000000"),
        (
            "--log-retain",
            "18446744073709551615",
            "between 0 and 1000000000",
        ),
        ("--tick-ms", "0", "between 1 and 60000"),
        ("--tick-ms", "86400000", "between 1 and 60000"),
    ] {
        let run = common::kvsim_cli(&[
            "server",
            "--base-port",
            "1",
            "--data-dir-root",
            data,
            flag,
            value,
        ]);
        assert_eq!(run.code, 1, "{flag} {value}: {}", run.stderr);
        assert_eq!(
            run.stderr.trim(),
            format!("error: {flag} must be {range}, got {value}"),
            "{flag} {value}"
        );
    }
    assert!(
        !std::path::Path::new(data).exists(),
        "nothing was created for a refused start"
    );
}

/// `--in-memory` and `--durability` name two different storage choices: asking for both is a
/// usage error, and an unknown durability is refused with the choices.
#[test]
fn storage_flags_are_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let both = common::kvsim_cli(&[
        "server",
        "--data-dir-root",
        data,
        "--in-memory",
        "--durability",
        "none",
    ]);
    assert_eq!(both.code, 2, "{}", both.stderr);
    assert!(
        both.stderr.contains("--in-memory") && both.stderr.contains("--durability"),
        "{}",
        both.stderr
    );
    let unknown = common::kvsim_cli(&["server", "--data-dir-root", data, "--durability", "often"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("fsync") && unknown.stderr.contains("none"),
        "{}",
        unknown.stderr
    );
    assert!(!std::path::Path::new(data).exists(), "nothing was created");
}

/// `kvsim bench`'s options are checked before anything is sent, and a `--workload` run with
/// `--requests` makes exactly that many requests, reported as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_checks_its_options_and_counts_a_workload() {
    for (args, want) in [
        (vec!["bench", "--workload", "scan"], "unknown workload"),
        (vec!["bench", "--workload", "mixed:120"], "0 to 100"),
        (vec!["bench", "--requests", "10"], "go with --workload"),
        (vec!["bench", "--clients", "0"], "at least 1"),
        (
            vec!["bench", "--workload", "transact", "--keys", "1"],
            "at least 2",
        ),
    ] {
        let run = common::kvsim_cli(&args);
        assert_ne!(run.code, 0, "{args:?}");
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let addr = tc.addr(leader);
    let follower = tc.addr(tc.other_than(leader));
    let out = common::cli_ok(&[
        "bench",
        "--workload",
        "mixed:50",
        "--target-addr",
        &addr,
        "--target-addr",
        &follower,
        "--clients",
        "3",
        "--requests",
        "60",
        "--preload",
        "30",
        "--keys",
        "30",
        "--output",
        "json",
    ])
    .await;
    let reports: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    let r = &reports[0];
    assert_eq!(r["op"], "mixed:50", "{out}");
    assert_eq!(r["requests"], 60, "{out}");
    assert_eq!(
        (r["errors"].as_u64(), r["misses"].as_u64()),
        (Some(0), Some(0)),
        "{out}"
    );
    let p50 = r["p50_ms"].as_f64().unwrap_or(-1.0);
    let p99 = r["p99_ms"].as_f64().unwrap_or(-1.0);
    let max = r["max_ms"].as_f64().unwrap_or(-1.0);
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{out}");
    tc.cluster.shutdown().await;
}

/// `kvsim completions SHELL` prints a script that completes the subcommands and their flags;
/// bash accepts it; an unknown shell is a usage error (exit 2) that names the choices.
#[test]
fn completions_cover_every_command_and_load_in_bash() {
    for shell in ["bash", "zsh", "fish"] {
        let run = kvsim(&["completions".to_string(), shell.to_string()]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        for word in ["put-item", "query-items", "table-name", "target-addr"] {
            assert!(run.stdout.contains(word), "{shell} script lacks {word}");
        }
    }
    let script = std::env::temp_dir().join(format!("kvsim-completion-{}.bash", std::process::id()));
    let bash = kvsim(&["completions".to_string(), "bash".to_string()]);
    std::fs::write(&script, bash.stdout).expect("write script");
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p kvsim", script.display()))
        .output()
        .expect("run bash");
    let _ = std::fs::remove_file(&script);
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("-F _kvsim kvsim"));
    let bad = kvsim(&["completions".to_string(), "tcsh".to_string()]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("possible values"), "{}", bad.stderr);
}
