//! The seed's `Watch` and `Edit` through the real CLI against an in-process cluster:
//! `kvsim watch --output json` follows a table's stream from shard to shard and across a
//! crash of the node it reads from, printing every change once with patches that turn the old item into the new one, and
//! eight `kvsim edit` processes incrementing one counter under optimistic concurrency lose no
//! increment.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestCluster, cli_ok, eventually};
use serde_json::{Value, json};

/// Sends `op` to the nodes in turn until one succeeds (retryable errors are retried).
async fn call_retrying(tc: &TestCluster, ids: &[u64], op: &str, body: Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        let (status, answer) = tc.call(ids[attempt % ids.len()], op, body.clone()).await;
        if status == 200 {
            return;
        }
        assert!(status >= 500, "{op} failed: {status} {answer}");
        assert!(Instant::now() < deadline, "{op} kept failing: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn put(pk: &str, n: i64) -> (&'static str, Value) {
    (
        "PutItem",
        json!({"TableName": "Feed", "Item": {"pk": {"S": pk}, "n": {"N": n.to_string()}, "tags": {"M": {"a": {"S": "x"}}}}}),
    )
}

fn update(pk: &str, n: i64) -> (&'static str, Value) {
    (
        "UpdateItem",
        json!({"TableName": "Feed", "Key": {"pk": {"S": pk}},
               "UpdateExpression": "SET n = :n, tags.b = :b REMOVE tags.a",
               "ExpressionAttributeValues": {":n": {"N": n.to_string()}, ":b": {"L": [{"N": "1"}]}}}),
    )
}

fn delete(pk: &str) -> (&'static str, Value) {
    (
        "DeleteItem",
        json!({"TableName": "Feed", "Key": {"pk": {"S": pk}}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_every_change_once_with_patches_across_a_crash_of_its_node() {
    // Two log entries per stream shard: the watch follows the shards' lineage too.
    let tc = TestCluster::start_with(kvsim::config::Tuning {
        stream_shard_entries: 2,
        ..common::test_tuning()
    })
    .await;
    let leader = tc.leader().await;
    tc.create_streamed_table(leader, "Feed", "NEW_AND_OLD_IMAGES")
        .await;
    tc.converged().await;

    let before = vec![
        put("a", 1),
        put("b", 2),
        put("a", 1), // unchanged: no record
        update("a", 3),
        delete("b"),
        delete("missing"), // nothing to delete: no record
    ];
    let after = vec![put("c", 4), update("c", 5), put("a", 6), delete("a")];
    // (event, key) of each effective write, in order.
    let expected: Vec<(&str, &str)> = vec![
        ("INSERT", "a"),
        ("INSERT", "b"),
        ("MODIFY", "a"),
        ("REMOVE", "b"),
        ("INSERT", "c"),
        ("MODIFY", "c"),
        ("MODIFY", "a"),
        ("REMOVE", "a"),
    ];

    // The watch reads from the leader, which is about to crash.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_kvsim"))
        .args([
            "watch",
            "--table-name",
            "Feed",
            "--from",
            "trim-horizon",
            "--output",
            "json",
            "--count",
            &expected.len().to_string(),
            "--target-addr",
            &tc.addr(leader),
        ])
        .env_remove("KVSIM_TARGET_ADDR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kvsim watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    let others: Vec<u64> = tc
        .running()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    for (op, body) in before {
        call_retrying(&tc, &others, op, body).await;
    }
    // Wait until the watch has printed the first changes, so the crash comes mid-stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the watch printed {lines:?} only"
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
    cli_ok(&[
        "fault",
        "crash",
        "--node",
        &leader.to_string(),
        "--target-addr",
        &tc.addr(others[0]),
    ])
    .await;
    for (op, body) in after {
        call_retrying(&tc, &others, op, body).await;
    }
    cli_ok(&[
        "fault",
        "restart",
        "--node",
        &leader.to_string(),
        "--target-addr",
        &tc.addr(others[0]),
    ])
    .await;

    let deadline = Instant::now() + Duration::from_secs(60);
    while lines.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "the watch printed only {lines:#?}"
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(line);
        }
    }
    let status = eventually(
        Duration::from_secs(10),
        "the watch to exit after --count",
        || {
            let status = watch.try_wait().expect("wait");
            async move { status }
        },
    )
    .await;
    assert!(status.success(), "kvsim watch exited with {status}");

    let changes: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let seen: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["event"].as_str().unwrap_or(""),
                c["keys"]["pk"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(seen, expected, "every change once, in order");
    let mut last_seq = String::new();
    let mut last_version = 0;
    for c in &changes {
        let seq = c["sequence_number"]
            .as_str()
            .expect("sequence number")
            .to_string();
        assert!(
            seq > last_seq,
            "sequence numbers rise: {seq} after {last_seq}"
        );
        let version = c["version"].as_u64().expect("version");
        assert!(version > last_version, "versions rise");
        (last_seq, last_version) = (seq, version);
        let old = if c["old"].is_null() {
            json!({})
        } else {
            c["old"].clone()
        };
        let new = if c["new"].is_null() {
            json!({})
        } else {
            c["new"].clone()
        };
        let mut patched = old.clone();
        let ops: json_patch::Patch =
            serde_json::from_value(c["json_patch"].clone()).expect("a JSON Patch");
        json_patch::patch(&mut patched, &ops).expect("the JSON Patch applies");
        assert_eq!(patched, new, "JSON Patch of {c}");
        let mut merged = old;
        json_patch::merge(&mut merged, &c["merge_patch"]);
        assert_eq!(merged, new, "Merge Patch of {c}");
    }
    // The update's changes are visible in its patch.
    assert_eq!(
        changes[2]["merge_patch"],
        json!({"n": 3, "tags": {"a": null, "b": [1]}})
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_editors_incrementing_one_counter_lose_nothing() {
    const EDITORS: usize = 8;
    const EACH: usize = 25;
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Counters", ("pk", "S"), None).await;
    tc.put_retrying(
        &[leader],
        "Counters",
        json!({"pk": {"S": "hits"}, "count": {"N": "0"}}),
        Duration::from_secs(10),
    )
    .await;
    tc.converged().await;
    let addrs: Vec<String> = tc.running().into_iter().map(|id| tc.addr(id)).collect();
    // A filter that costs little to start (each conflict runs it again): the counter item
    // arrives as {"pk":"hits","count":N}.
    let increment =
        r#"awk -F'"count":' '{sub(/}$/, "", $2); printf "%s\"count\":%d}\n", $1, $2 + 1}'"#;
    let editors: Vec<_> = (0..EDITORS)
        .map(|e| {
            let addr = addrs[e % addrs.len()].clone();
            std::thread::spawn(move || {
                let mut verbose = String::new();
                for _ in 0..EACH {
                    let out = Command::new(env!("CARGO_BIN_EXE_kvsim"))
                        .args([
                            "edit",
                            "-v",
                            "--table-name",
                            "Counters",
                            "--partition-key",
                            "hits",
                            "--apply",
                            increment,
                            "--max-retries",
                            "1000",
                            "--retry-delay-ms",
                            "2",
                            "--max-retry-delay-ms",
                            "40",
                            "--target-addr",
                            &addr,
                        ])
                        .env_remove("KVSIM_TARGET_ADDR")
                        .output()
                        .expect("run kvsim edit");
                    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                    assert!(out.status.success(), "kvsim edit failed: {stderr}");
                    verbose.push_str(&stderr);
                }
                verbose
            })
        })
        .collect();
    let mut conflicts = 0;
    for editor in editors {
        let verbose = tokio::task::spawn_blocking(move || editor.join().expect("editor"))
            .await
            .expect("join");
        conflicts += verbose
            .lines()
            .filter(|l| l.starts_with("conflict "))
            .count();
    }
    let (status, body) = tc
        .call(
            leader,
            "GetItem",
            json!({"TableName": "Counters", "Key": {"pk": {"S": "hits"}}, "ConsistentRead": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["Item"]["count"],
        json!({"N": (EDITORS * EACH).to_string()})
    );
    assert!(
        conflicts > 0,
        "eight editors at once conflicted at least once (-v shows each)"
    );
    eprintln!("{conflicts} conflicts retried");
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_gives_up_with_exit_code_7_when_the_item_keeps_changing() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Hot", ("pk", "S"), None).await;
    let addr = tc.addr(leader);
    tc.put_retrying(
        &[leader],
        "Hot",
        json!({"pk": {"S": "hot"}, "n": {"N": "1"}}),
        Duration::from_secs(10),
    )
    .await;
    // The filter itself rewrites the item before answering, so every write back conflicts.
    let filter = format!(
        r#"{} put-item --target-addr {addr} --table-name Hot --item-data '{{"pk":"hot","n":1}}' >/dev/null && sed 's/"n":1/"n":2/'"#,
        env!("CARGO_BIN_EXE_kvsim")
    );
    let run = common::cli(&[
        "edit",
        "-v",
        "--table-name",
        "Hot",
        "--partition-key",
        "hot",
        "--apply",
        &filter,
        "--max-retries",
        "2",
        "--retry-delay-ms",
        "1",
        "--target-addr",
        &addr,
    ])
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("conflict "))
            .count(),
        2,
        "each retried conflict is shown: {}",
        run.stderr
    );
    assert!(run.stderr.contains("gave up"), "{}", run.stderr);
    let (_, body) = tc
        .call(
            leader,
            "GetItem",
            json!({"TableName": "Hot", "Key": {"pk": {"S": "hot"}}, "ConsistentRead": true}),
        )
        .await;
    assert_eq!(
        body["Item"]["n"],
        json!({"N": "1"}),
        "the edit wrote nothing"
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_cleanly_on_ctrl_c_and_says_how_to_enable_a_missing_stream() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Plain", ("pk", "S"), None).await;
    let addr = tc.addr(leader);
    let run = common::cli(&["watch", "--table-name", "Plain", "--target-addr", &addr]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "enable one with: kvsim stream --table-name Plain --enable new-and-old-images"
        ),
        "{}",
        run.stderr
    );
    cli_ok(&[
        "stream",
        "--table-name",
        "Plain",
        "--enable",
        "new-and-old-images",
        "--target-addr",
        &addr,
    ])
    .await;
    let mut watch = Command::new(env!("CARGO_BIN_EXE_kvsim"))
        .args(["watch", "--table-name", "Plain", "--target-addr", &addr])
        .env_remove("KVSIM_TARGET_ADDR")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start kvsim watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Once it prints a change it is following the stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    let first = loop {
        n += 1;
        let item = json!({"pk": {"S": "x"}, "n": {"N": n.to_string()}});
        tc.put_retrying(&[leader], "Plain", item, Duration::from_secs(10))
            .await;
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            break line;
        }
        assert!(Instant::now() < deadline, "the watch printed nothing");
    };
    assert!(first.contains("pk=\"x\""), "{first}");
    let interrupted = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let status = eventually(
        Duration::from_secs(10),
        "the watch to end on SIGINT",
        || {
            let status = watch.try_wait().expect("wait");
            async move { status }
        },
    )
    .await;
    assert!(
        status.success(),
        "Ctrl+C ends the watch with 0, got {status}"
    );
    tc.cluster.shutdown().await;
}
