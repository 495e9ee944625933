//! Crash safety of the real binary: concurrent writers, `kill -9` mid-stream, restart, and every
//! acknowledged write is still there on every node.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kvsim");

/// A base port with the next two also free (checked by binding them).
fn free_base_port() -> u16 {
    for _ in 0..200 {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = probe.local_addr().expect("addr").port();
        drop(probe);
        if base > 65000 {
            continue;
        }
        if (0..3).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no three consecutive free ports");
}

fn start(dir: &Path, base: u16) -> Child {
    Command::new(BIN)
        .args([
            "server",
            "--tick-ms",
            "50",
            "--base-port",
            &base.to_string(),
            "--data-dir-root",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kvsim server")
}

async fn call(http: &reqwest::Client, port: u16, op: &str, body: Value) -> Option<(u16, Value)> {
    let resp = http
        .post(format!("http://127.0.0.1:{port}/"))
        .header("X-Amz-Target", format!("DynamoDB_20120810.{op}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .timeout(Duration::from_secs(15))
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    let value = serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
    Some((status, value))
}

async fn status(http: &reqwest::Client, port: u16) -> Option<Value> {
    let resp = http
        .get(format!("http://127.0.0.1:{port}/status"))
        .send()
        .await
        .ok()?;
    serde_json::from_slice(&resp.bytes().await.ok()?).ok()
}

/// Waits until a leader exists and every node applied the leader's commit index.
async fn wait_converged(http: &reqwest::Client, base: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = Vec::new();
        for i in 0..3 {
            all.push(status(http, base + i).await);
        }
        let ok = all.iter().all(Option::is_some) && {
            let s: Vec<&Value> = all.iter().flatten().collect();
            let leader = s.iter().find(|v| v["role"] == "leader");
            leader.is_some_and(|l| {
                s.iter().all(|v| {
                    v["applied_index"] == l["commit_index"] && v["leader_id"] == l["node_id"]
                })
            })
        };
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not converge: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let http = reqwest::Client::new();
    let mut server = start(dir.path(), base);
    wait_converged(&http, base).await;
    let created = call(
        &http,
        base,
        "CreateTable",
        json!({"TableName": "Crash", "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"}),
    )
    .await;
    assert_eq!(created.map(|c| c.0), Some(200));

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
        let target = acked.lock().expect("lock").len() + 150;
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().expect("lock").len() < target {
            assert!(Instant::now() < deadline, "writes stalled before the kill");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill().expect("kill -9");
        let _ = server.wait();
        for w in writers {
            w.await.expect("writer");
        }

        server = start(dir.path(), base);
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
    }
    server.kill().expect("kill");
    let _ = server.wait();
}
