//! In-process cluster tests: election, replication under concurrent writes, failover, restart,
//! catch-up by snapshot, and identical state after a seeded random workload.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestCluster, eventually, test_tuning};
use kvsim::config::Tuning;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn item(pk: &str, sk: u64, v: &str) -> Value {
    json!({"pk": {"S": pk}, "sk": {"N": sk.to_string()}, "v": {"S": v}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_is_elected_and_every_node_follows_it() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let term = tc
        .cluster
        .node(leader)
        .and_then(|h| h.published().raft)
        .map(|r| r.term);
    for h in tc.cluster.handles() {
        let r = h.published().raft.expect("status");
        assert_eq!(
            r.leader_id,
            Some(leader),
            "node {} follows the leader",
            h.id
        );
        assert_eq!(Some(r.term), term, "node {} is in the leader's term", h.id);
        assert_eq!(r.role == "leader", h.id == leader);
    }
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_identical_on_every_node_and_share_fsyncs() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Tab", ("pk", "S"), Some(("sk", "N")))
        .await;
    let fsyncs_before = tc
        .cluster
        .node(leader)
        .and_then(|h| h.published().raft)
        .map(|r| r.stats.fsyncs)
        .unwrap_or(0);

    const WRITERS: u64 = 32;
    const PER_WRITER: u64 = 1000 / WRITERS + 1;
    let ids = tc.running();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let http = tc.http.clone();
        let addr = tc.addr(ids[(w as usize) % ids.len()]);
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let (status, body) = common::call_addr(
                    &http,
                    &addr,
                    "PutItem",
                    json!({"TableName": "Tab", "Item": item(&format!("p{w}"), i, &format!("w{w}-{i}"))}),
                )
                .await;
                assert_eq!(status, 200, "PutItem p{w}/{i} via {addr}: {body}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let writes = WRITERS * PER_WRITER;
    tc.converged().await;
    let fsyncs = tc
        .cluster
        .node(leader)
        .and_then(|h| h.published().raft)
        .map(|r| r.stats.fsyncs)
        .unwrap_or(0)
        - fsyncs_before;
    // One fsync per write would give a ratio of 1 (or less, counting heartbeat-era syncs);
    // 32 writers in flight must share fsyncs by a clear margin.
    assert!(
        fsyncs * 2 <= writes,
        "group commit: {writes} concurrent writes should average at least 2 per leader fsync, \
         but the leader did {fsyncs} fsyncs"
    );

    let mut scans = BTreeMap::new();
    for id in tc.running() {
        let items = tc.scan_all(id, "Tab").await;
        assert_eq!(items.len() as u64, writes, "node {id} holds every write");
        scans.insert(id, items);
    }
    let first = scans.values().next().cloned().unwrap_or_default();
    for (id, items) in &scans {
        assert_eq!(
            items, &first,
            "node {id} holds the same items in the same order"
        );
    }
    for w in 0..WRITERS {
        let (_, body) = tc
            .call(leader, "GetItem", json!({"TableName": "Tab", "Key": {"pk": {"S": format!("p{w}")}, "sk": {"N": "0"}}}))
            .await;
        assert_eq!(body["Item"]["v"]["S"], format!("w{w}-0"));
    }
    tc.assert_identical();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_leader_elects_another_and_loses_no_acknowledged_write() {
    let tc = TestCluster::start().await;
    let old = tc.leader().await;
    tc.create_table(old, "Tab", ("pk", "S"), Some(("sk", "N")))
        .await;
    for i in 0..100 {
        tc.put_retrying(
            &[old],
            "Tab",
            item("a", i, "before"),
            Duration::from_secs(10),
        )
        .await;
    }
    let old_term = tc
        .cluster
        .node(old)
        .and_then(|h| h.published().raft)
        .map(|r| r.term)
        .unwrap_or(0);
    tc.cluster.stop_node(old).await;

    let new = tc.leader().await;
    assert_ne!(new, old, "a stopped node cannot lead");
    let new_term = tc
        .cluster
        .node(new)
        .and_then(|h| h.published().raft)
        .map(|r| r.term)
        .unwrap_or(0);
    assert!(
        new_term > old_term,
        "the new leader has a newer term ({new_term} > {old_term})"
    );

    let live = tc.running();
    for i in 0..100 {
        tc.put_retrying(&live, "Tab", item("b", i, "after"), Duration::from_secs(20))
            .await;
    }
    tc.converged().await;
    for id in tc.running() {
        let items = tc.scan_all(id, "Tab").await;
        assert_eq!(
            items.len(),
            200,
            "node {id} holds all 200 acknowledged writes"
        );
    }

    // The old leader comes back as a follower and catches up.
    tc.cluster.start_node(old).await.expect("restart");
    let leader = tc.leader().await;
    assert_ne!(
        leader, old,
        "the restarted node rejoins as a follower of the current leader"
    );
    tc.converged().await;
    let items = tc.scan_all(old, "Tab").await;
    assert_eq!(items.len(), 200, "the restarted node caught up");
    tc.assert_identical();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_past_compaction_catches_up_by_snapshot() {
    // Raft messages over loopback HTTP here, as between processes: the rest of the suite hands
    // them over in process, so this keeps the streaming transport covered.
    let tuning = Tuning {
        compact_every: 20,
        log_retain: 5,
        raft_over_http: true,
        ..test_tuning()
    };
    let tc = TestCluster::start_with(tuning).await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Tab", ("pk", "S"), Some(("sk", "N")))
        .await;
    let lagger = tc.other_than(leader);
    tc.converged().await;
    let lagger_applied = tc
        .cluster
        .node(lagger)
        .and_then(|h| h.published().raft)
        .map(|r| r.applied_index)
        .unwrap_or(0);
    tc.cluster.stop_node(lagger).await;

    let live = tc.running();
    for i in 0..150 {
        tc.put_retrying(
            &live,
            "Tab",
            item("p", i, &format!("v{i}")),
            Duration::from_secs(10),
        )
        .await;
    }
    let status = tc
        .cluster
        .node(leader)
        .and_then(|h| h.published().raft)
        .expect("leader status");
    assert!(
        status.first_log_index > lagger_applied + 1,
        "the leader compacted past what the stopped node has (first {} vs applied {lagger_applied})",
        status.first_log_index
    );
    assert!(status.stats.compactions > 0);

    tc.cluster.start_node(lagger).await.expect("restart");
    tc.converged().await;
    // Waits for the condition itself (a snapshot installed), not merely for a status to exist.
    eventually(
        Duration::from_secs(10),
        "the lagging node to install a snapshot",
        || async {
            tc.cluster
                .node(lagger)
                .and_then(|h| h.published().raft)
                .filter(|r| r.stats.snapshots_installed >= 1)
        },
    )
    .await;
    let items = tc.scan_all(lagger, "Tab").await;
    assert_eq!(items.len(), 150);
    tc.assert_identical();

    // The metrics count the snapshot on both ends, with its bytes.
    let metric = |id: u64, name: &'static str| {
        let url = format!("http://{}/metrics", tc.addr(id));
        async move {
            let text = reqwest::get(url)
                .await
                .expect("metrics")
                .text()
                .await
                .expect("metrics text");
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        }
    };
    assert!(metric(leader, "kvsim_raft_snapshots_sent_total").await >= 1.0);
    assert!(metric(leader, "kvsim_raft_snapshot_bytes_sent_total").await > 0.0);
    assert!(metric(lagger, "kvsim_raft_snapshot_bytes_installed_total").await > 0.0);
    assert!(metric(lagger, "kvsim_raft_snapshots_installed_total").await >= 1.0);

    // The event logs tell the story: the leader compacted and sent a snapshot, the lagger
    // installed it.
    let kinds = |id: u64| -> Vec<String> {
        tc.cluster
            .events(id)
            .map(|log| log.since(0).into_iter().map(|e| e.kind).collect())
            .unwrap_or_default()
    };
    assert!(
        kinds(leader).iter().any(|k| k == "log_compacted"),
        "{:?}",
        kinds(leader)
    );
    assert!(
        kinds(leader).iter().any(|k| k == "snapshot_sent"),
        "{:?}",
        kinds(leader)
    );
    assert!(
        kinds(lagger).iter().any(|k| k == "snapshot_installed"),
        "{:?}",
        kinds(lagger)
    );

    // And it keeps replicating normally afterwards.
    tc.put_retrying(
        &[leader],
        "Tab",
        item("after", 1, "x"),
        Duration::from_secs(10),
    )
    .await;
    tc.converged().await;
    let (_, body) = tc
        .call(
            lagger,
            "GetItem",
            json!({"TableName": "Tab", "Key": {"pk": {"S": "after"}, "sk": {"N": "1"}}}),
        )
        .await;
    assert_eq!(body["Item"]["v"]["S"], "x");
    tc.cluster.shutdown().await;
}

/// A random attribute value of any type, from `rng`.
fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..if depth > 2 { 8 } else { 10 }) {
        0 => json!({"S": format!("s{}", rng.gen_range(0..1000))}),
        // Canonical forms only, so items compare exactly after the round trip.
        1 => {
            let n = rng.gen_range(-500i32..500);
            json!({"N": if rng.gen_bool(0.5) { n.to_string() } else { format!("{}.25", n.abs()) }})
        }
        2 => json!({"B": (["AA==", "AQI=", "/w=="][rng.gen_range(0..3)])}),
        3 => json!({"BOOL": rng.gen_bool(0.5)}),
        4 => json!({"NULL": true}),
        5 => json!({"SS": (["a", "b", "c"][..rng.gen_range(1..4)].to_vec())}),
        6 => json!({"NS": (["-3", "1", "2.5"][..rng.gen_range(1..4)].to_vec())}),
        7 => json!({"BS": (["AA==", "AQ=="][..rng.gen_range(1..3)].to_vec())}),
        8 => {
            json!({"L": (0..rng.gen_range(0..3)).map(|_| random_value(rng, depth + 1)).collect::<Vec<_>>()})
        }
        _ => {
            json!({"M": (0..rng.gen_range(0..3)).map(|i| (format!("k{i}"), random_value(rng, depth + 1))).collect::<serde_json::Map<_, _>>()})
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_random_workload_leaves_identical_state_on_every_node() {
    let seed: u64 = std::env::var("KVSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (rerun with KVSIM_TEST_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Hash", ("id", "N"), None).await;
    tc.create_table(leader, "Comp", ("pk", "B"), Some(("sk", "S")))
        .await;

    // The expected final state, maintained alongside: key -> item.
    let mut model: BTreeMap<(String, String), Value> = BTreeMap::new();
    let ids = tc.running();
    for step in 0..300 {
        let via = ids[rng.gen_range(0..ids.len())];
        let (table, key) = if rng.gen_bool(0.5) {
            (
                "Hash",
                json!({"id": {"N": rng.gen_range(0..40).to_string()}}),
            )
        } else {
            (
                "Comp",
                json!({"pk": {"B": (["AA==", "AQ==", "Ag=="][rng.gen_range(0..3)])}, "sk": {"S": format!("k{}", rng.gen_range(0..15))}}),
            )
        };
        let model_key = (table.to_string(), key.to_string());
        if rng.gen_bool(0.25) {
            let (status, body) = tc
                .call(via, "DeleteItem", json!({"TableName": table, "Key": key}))
                .await;
            assert_eq!(status, 200, "seed {seed} step {step}: DeleteItem {body}");
            model.remove(&model_key);
        } else {
            let mut item = key.clone();
            for a in 0..rng.gen_range(0..4) {
                item[format!("a{a}")] = random_value(&mut rng, 0);
            }
            let (status, body) = tc
                .call(via, "PutItem", json!({"TableName": table, "Item": item}))
                .await;
            assert_eq!(status, 200, "seed {seed} step {step}: PutItem {body}");
            model.insert(model_key, item);
        }
    }
    let index = tc.converged().await;
    let digests = tc.digests();
    if !digests.values().all(|d| Some(d) == digests.values().next()) {
        // Say what differs before failing: each node's view of every table.
        let mut views = Vec::new();
        for id in tc.running() {
            let status = tc.cluster.node(id).and_then(|h| h.published().raft);
            let hash = tc.scan_all(id, "Hash").await;
            let comp = tc.scan_all(id, "Comp").await;
            views.push(format!(
                "node {id} {status:?}\n  Hash: {hash:?}\n  Comp: {comp:?}"
            ));
        }
        panic!(
            "seed {seed}: replicas differ at index {index}: {digests:?}\n{}",
            views.join("\n")
        );
    }
    for id in tc.running() {
        for table in ["Hash", "Comp"] {
            let got = tc.scan_all(id, table).await.len();
            let want = model.keys().filter(|(t, _)| t == table).count();
            assert_eq!(got, want, "seed {seed}: node {id} table {table}");
        }
        for ((table, key), expected) in &model {
            let key: Value = serde_json::from_str(key).expect("model key");
            let (_, body) = tc
                .call(id, "GetItem", json!({"TableName": table, "Key": key}))
                .await;
            assert_eq!(
                &body["Item"], expected,
                "seed {seed}: node {id} {table} {key}"
            );
        }
    }
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_node_fails_alone_and_says_so() {
    // Without the supervisor (`--no-auto-restart`), the failed node stays failed to be looked at.
    let tc = TestCluster::start_supervised(kvsim::config::Supervision {
        auto_restart: false,
        ..Default::default()
    })
    .await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Tab", ("pk", "S"), Some(("sk", "N")))
        .await;
    let victim = tc.other_than(leader);
    tc.cluster
        .node(victim)
        .expect("victim")
        .inject_panic("test")
        .expect("deliver");
    let why = eventually(
        Duration::from_secs(10),
        "the victim to report its failure",
        || async { tc.cluster.node(victim).and_then(|h| h.failure()) },
    )
    .await;
    assert!(why.contains("injected fault: test"), "{why}");

    // Its status says failed, its API refuses with a retryable error, and the others carry on.
    let status = tc.status_json(victim).await;
    assert_eq!(status["role"], "failed");
    assert_eq!(status["health"]["state"], "failed");
    let (s, body) = tc
        .call(
            victim,
            "GetItem",
            json!({"TableName": "Tab", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}}}),
        )
        .await;
    assert_eq!(s, 503, "{body}");
    tc.put_retrying(
        &[leader],
        "Tab",
        item("a", 1, "still works"),
        Duration::from_secs(10),
    )
    .await;
    let third = tc
        .running()
        .into_iter()
        .find(|id| *id != leader && *id != victim)
        .expect("third node");
    let got = eventually(
        Duration::from_secs(10),
        "the write to reach the healthy follower",
        || async {
            let (_, b) = tc
                .call(
                    third,
                    "GetItem",
                    json!({"TableName": "Tab", "Key": {"pk": {"S": "a"}, "sk": {"N": "1"}}}),
                )
                .await;
            b.get("Item").cloned()
        },
    )
    .await;
    assert_eq!(got["v"]["S"], "still works");
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_and_unsynced_clusters_replicate_without_fsyncs() {
    use kvsim::config::Storage;
    for (storage, name) in [(Storage::Memory, "memory"), (Storage::NoFsync, "none")] {
        let tc = TestCluster::start_with_storage(storage).await;
        let leader = tc.leader().await;
        tc.create_table(leader, "Mem", ("p", "S"), None).await;
        for i in 0..20 {
            let (s, b) = tc
                .call(
                    leader,
                    "PutItem",
                    json!({"TableName": "Mem", "Item": {"p": {"S": format!("k{i}")}}}),
                )
                .await;
            assert_eq!(s, 200, "{name}: {b}");
        }
        tc.converged().await;
        tc.assert_identical();
        for id in tc.running() {
            let status = tc.status_json(id).await;
            assert_eq!(status["storage"], name, "{status}");
            assert_eq!(status["stats"]["fsyncs"], 0, "{name}: {status}");
        }
        // Memory mode writes no data files; the unsynced mode still keeps its files.
        let files = std::fs::read_dir(tc.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        match storage {
            Storage::Memory => assert_eq!(files, 0, "memory mode wrote files"),
            _ => assert!(tc.dir.path().join("node0").join("kvsim.redb").exists()),
        }
        // A crashed follower comes back with what it had (memory kept, or its file) and
        // catches up.
        let follower = tc.other_than(leader);
        tc.cluster
            .crash_node(follower, leader)
            .await
            .expect("crash");
        let (s, b) = tc
            .call(
                leader,
                "PutItem",
                json!({"TableName": "Mem", "Item": {"p": {"S": "after"}}}),
            )
            .await;
        assert_eq!(s, 200, "{name}: {b}");
        tc.cluster.start_node(follower).await.expect("restart");
        tc.converged().await;
        tc.assert_identical();
        assert_eq!(tc.scan_all(follower, "Mem").await.len(), 21, "{name}");
        tc.cluster.shutdown().await;
    }
}
