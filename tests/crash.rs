//! Crash safety of the real binary: concurrent writers, `kill -9` mid-stream, restart, and every
//! acknowledged write is still there on every node.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{
    BIN, Server, agreed_digest, call, create_table, free_base_port, wait_converged,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    kill_9_rounds(&[]).await;
}

/// The same with a checkpoint every 50 entries, so restarts recover from checkpoints whose
/// fsyncs ran in the background under load, and the log compacted up to them. (A `kill -9`
/// keeps the OS's page cache, so it cannot test the fsync's ordering itself; the simulation
/// checks that a checkpoint counts only once its fsync has finished.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_frequent_checkpoints_loses_no_acknowledged_write() {
    kill_9_rounds(&["--compact-every", "50"]).await;
}

async fn kill_9_rounds(args: &[&str]) {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("KVSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (rerun with KVSIM_TEST_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let http = reqwest::Client::new();
    let mut server = Server::start(dir.path(), base, args);
    wait_converged(&http, base).await;
    create_table(&http, base, "Crash", "k").await;

    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    for round in 0..3 {
        // Writers hammer every node until the process dies under them.
        let mut writers = Vec::new();
        for w in 0..8u16 {
            let http = http.clone();
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("r{round}-w{w}-{i}");
                    let port = base + (w % 3);
                    match call(&http, port, "PutItem", json!({"TableName": "Crash", "Item": {"k": {"S": key}, "v": {"N": i.to_string()}}})).await {
                        Some((200, _)) => {
                            acked.lock().expect("lock").insert(key);
                        }
                        Some((status, _)) if status >= 500 => {}
                        Some((status, body)) => panic!("PutItem {key}: unexpected {status} {body}"),
                        None => return,
                    }
                }
            }));
        }
        // A random moment: after a random number of further acknowledged writes.
        let target = acked.lock().expect("lock").len() + rng.gen_range(1..300);
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().expect("lock").len() < target {
            assert!(Instant::now() < deadline, "writes stalled before the kill");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        for w in writers {
            w.await.expect("writer");
        }

        server = Server::start(dir.path(), base, args);
        wait_converged(&http, base).await;
        let acked_now = acked.lock().expect("lock").clone();
        for key in &acked_now {
            let got = call(
                &http,
                base + (round % 3),
                "GetItem",
                json!({"TableName": "Crash", "Key": {"k": {"S": key}}, "ConsistentRead": true}),
            )
            .await;
            let found = got
                .as_ref()
                .is_some_and(|(s, b)| *s == 200 && b["Item"]["k"]["S"] == key.as_str());
            assert!(
                found,
                "round {round}: acknowledged write {key} lost after kill -9: {got:?}"
            );
        }
        // Every node holds at least every acknowledged write.
        for i in 0..3 {
            let (_, count) = call(
                &http,
                base + i,
                "Scan",
                json!({"TableName": "Crash", "Select": "COUNT"}),
            )
            .await
            .expect("scan");
            let n = count["Count"].as_u64().unwrap_or(0) as usize;
            assert!(
                n >= acked_now.len(),
                "round {round}: node {} has {n} items, {} were acknowledged",
                i + 1,
                acked_now.len()
            );
        }
        // And every node holds exactly the same state.
        agreed_digest(&http, base).await;
    }
    server.kill();
}

/// `kill -9` of a `--mode dynamo` server (three nodes, N=3, W=2) under concurrent writers
/// loses no acknowledged write: each was fsynced by two replicas before it was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_leaderless_mode_loses_no_acknowledged_write() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("KVSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (rerun with KVSIM_TEST_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let http = reqwest::Client::new();
    let args = ["--mode", "dynamo", "--nodes", "3", "--replicas", "3"];
    let mut server = Server::start(dir.path(), base, &args);
    wait_running(&http, base).await;
    create_table(&http, base, "Crash", "k").await;
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    for round in 0..2 {
        let mut writers = Vec::new();
        for w in 0..6u16 {
            let http = http.clone();
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("r{round}-w{w}-{i}");
                    let put = json!({"TableName": "Crash", "Item": {"k": {"S": key}}});
                    match call(&http, base + (w % 3), "PutItem", put).await {
                        Some((200, _)) => {
                            acked.lock().expect("lock").insert(key);
                        }
                        Some((status, _)) if status >= 500 => {}
                        Some((status, body)) => panic!("PutItem {key}: unexpected {status} {body}"),
                        None => return,
                    }
                }
            }));
        }
        let target = acked.lock().expect("lock").len() + rng.gen_range(1..200);
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().expect("lock").len() < target {
            assert!(Instant::now() < deadline, "writes stalled before the kill");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill();
        for w in writers {
            w.await.expect("writer");
        }
        server = Server::start(dir.path(), base, &args);
        wait_running(&http, base).await;
        let acked_now = acked.lock().expect("lock").clone();
        for (n, key) in acked_now.iter().enumerate() {
            let got = call(
                &http,
                base + (n % 3) as u16,
                "GetItem",
                json!({"TableName": "Crash", "Key": {"k": {"S": key}}}),
            )
            .await;
            let found = got
                .as_ref()
                .is_some_and(|(s, b)| *s == 200 && b["Item"]["k"]["S"] == key.as_str());
            assert!(
                found,
                "round {round}: acknowledged write {key} lost after kill -9: {got:?}"
            );
        }
    }
    server.kill();
}

/// Waits until the three nodes of a `--mode dynamo` server run.
async fn wait_running(http: &reqwest::Client, base: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut running = 0;
        for i in 0..3 {
            if let Some(s) = common::process::status(http, base + i).await
                && s["running"] == true
            {
                running += 1;
            }
        }
        if running == 3 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the leaderless nodes did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn consistent_count(http: &reqwest::Client, port: u16) -> Option<u64> {
    let (status, body) = call(
        http,
        port,
        "Scan",
        json!({"TableName": "Crash", "Select": "COUNT", "ConsistentRead": true}),
    )
    .await?;
    (status == 200).then(|| body["Count"].as_u64()).flatten()
}

/// Waits until `port` answers a consistent count (a leader among the nodes that started).
async fn wait_count(http: &reqwest::Client, port: u16) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(n) = consistent_count(http, port).await {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "the surviving nodes never served a consistent read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_missing_node_data_is_refused_by_name_and_the_others_keep_working() {
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    // A cluster with some data, stopped cleanly.
    let mut server = Server::start_logged(&data, base, &log, &[]);
    wait_converged(&http, base).await;
    create_table(&http, base, "Crash", "k").await;
    for i in 0..10 {
        let put = call(
            &http,
            base,
            "PutItem",
            json!({"TableName": "Crash", "Item": {"k": {"S": format!("k{i}")}}}),
        )
        .await;
        assert_eq!(put.map(|p| p.0), Some(200));
    }
    wait_converged(&http, base).await;
    server.kill();
    let pristine = dir.path().join("pristine");
    copy_dir(&data, &pristine);

    let node1 = data.join("node1").join("kvsim.redb");
    // What was done, what the error must name, and the damage itself.
    type Damage<'a> = (&'a str, &'a str, Box<dyn Fn() + 'a>);
    let damages: Vec<Damage> = vec![
        (
            "truncated",
            "node1/kvsim.redb",
            Box::new(|| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&node1)
                    .expect("open");
                f.set_len(4096).expect("truncate");
            }),
        ),
        (
            "corrupted",
            "node1/kvsim.redb",
            Box::new(|| {
                let mut bytes = std::fs::read(&node1).expect("read");
                for b in bytes.iter_mut().take(20_000) {
                    *b ^= 0x5a;
                }
                std::fs::write(&node1, bytes).expect("write");
            }),
        ),
        (
            // A byte flipped inside the fourth record of the Raft log, with whole records
            // after it: damage, not a write torn by a crash, so it must not be cut off.
            "log corrupted",
            "raft-log.0 is damaged",
            Box::new(|| {
                let path = data.join("node1").join("raft-log.0");
                let mut bytes = std::fs::read(&path).expect("read");
                let mut at = 0;
                for _ in 0..3 {
                    let len: [u8; 4] = bytes[at..at + 4].try_into().expect("len");
                    at += 8 + u32::from_le_bytes(len) as usize;
                }
                bytes[at + 10] ^= 0xff;
                std::fs::write(&path, bytes).expect("write");
            }),
        ),
        (
            "missing",
            "node1/kvsim.redb",
            Box::new(|| std::fs::remove_dir_all(data.join("node1")).expect("remove")),
        ),
        (
            // Unusable as a directory (permissions cannot be tested as root, which CI may be).
            "not a directory",
            "node1",
            Box::new(|| {
                std::fs::remove_dir_all(data.join("node1")).expect("remove");
                std::fs::write(data.join("node1"), b"x").expect("file");
            }),
        ),
    ];
    for (what, names, damage) in damages {
        std::fs::remove_dir_all(&data).expect("reset");
        copy_dir(&pristine, &data);
        damage();
        let mut server = Server::start_logged(&data, base, &log, &[]);
        let n = wait_count(&http, base).await;
        assert_eq!(n, 10, "{what}: nodes 1 and 3 still serve every item");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            text.contains("node 2 did not start") && text.contains(names),
            "{what}: the log names the node and its file:\n{text}"
        );
        assert!(
            text.contains("--data-dir-root"),
            "{what}: the log says what to do:\n{text}"
        );
        assert!(
            call(&http, base + 1, "Scan", json!({"TableName": "Crash"}))
                .await
                .is_none(),
            "{what}: node 2's port is closed"
        );
        server.kill();
    }

    // A port already in use is named, and the other nodes start.
    std::fs::remove_dir_all(&data).expect("reset");
    copy_dir(&pristine, &data);
    let blocker = TcpListener::bind(("127.0.0.1", base + 2)).expect("occupy a port");
    let mut server = Server::start_logged(&data, base, &log, &[]);
    assert_eq!(wait_count(&http, base).await, 10);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(&format!("cannot listen on 127.0.0.1:{}", base + 2)),
        "{text}"
    );
    server.kill();
    drop(blocker);

    // A data root that cannot be a directory stops the server with an error naming it.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("file");
    let out = Command::new(BIN)
        .args([
            "server",
            "--base-port",
            &base.to_string(),
            "--data-dir-root",
        ])
        .arg(&file)
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-a-dir"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
