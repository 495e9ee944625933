//! Crash safety of the real binary: concurrent writers, `kill -9` mid-stream, restart, and every
//! acknowledged write is still there on every node.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
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
    start_logged(dir, base, &dir.join("server.log"))
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

/// Every node's state fingerprint, once all have applied the same index.
async fn agreed_digest(http: &reqwest::Client, base: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut views = Vec::new();
        for i in 0..3 {
            let resp = http
                .get(format!("http://127.0.0.1:{}/admin/digest", base + i))
                .send()
                .await;
            let body = match resp {
                Ok(r) => r
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok()),
                Err(_) => None,
            };
            views.push(body.map(|b| (b["applied_index"].clone(), b["digest"].clone())));
        }
        if let [Some(a), Some(b), Some(c)] = views.as_slice()
            && a == b
            && b == c
        {
            return a.1.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never agreed: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_write() {
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
        // A random moment: after a random number of further acknowledged writes.
        let target = acked.lock().expect("lock").len() + rng.gen_range(1..300);
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
        // And every node holds exactly the same state.
        agreed_digest(&http, base).await;
    }
    server.kill().expect("kill");
    let _ = server.wait();
}

/// Starts the server with its output going to `log`; returns once it printed its ready line
/// (or exited).
fn start_logged(dir: &Path, base: u16, log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(BIN)
        .args([
            "server",
            "--tick-ms",
            "50",
            "--base-port",
            &base.to_string(),
            "--data-dir-root",
        ])
        .arg(dir)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start kvsim server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("press Ctrl+C") || text.contains("error:") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
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
    let mut server = start_logged(&data, base, &log);
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
    server.kill().expect("kill");
    let _ = server.wait();
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
                for b in bytes.iter_mut().skip(9000).take(20_000) {
                    *b ^= 0x5a;
                }
                std::fs::write(&node1, bytes).expect("write");
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
        let mut server = start_logged(&data, base, &log);
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
        server.kill().expect("kill");
        let _ = server.wait();
    }

    // A port already in use is named, and the other nodes start.
    std::fs::remove_dir_all(&data).expect("reset");
    copy_dir(&pristine, &data);
    let blocker = TcpListener::bind(("127.0.0.1", base + 2)).expect("occupy a port");
    let mut server = start_logged(&data, base, &log);
    assert_eq!(wait_count(&http, base).await, 10);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(&format!("cannot listen on 127.0.0.1:{}", base + 2)),
        "{text}"
    );
    server.kill().expect("kill");
    let _ = server.wait();
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
