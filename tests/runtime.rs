//! Storage work never runs on the async runtime: restarting a node with a large log (redb's
//! integrity check, the Raft log file read back, the entries since the last checkpoint applied
//! again) happens on a blocking thread, so the other nodes keep answering at their usual speed
//! meanwhile.
//!
//! The cluster runs on a runtime with a single worker thread, so any blocking work on it
//! would stall every request for as long as it lasts.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use kvsim::config::Tuning;
use kvsim::raft::NodeId;
use serde_json::json;

/// Items written to grow the log, and the size of each: enough that a restart takes more than
/// twice the latency bound below, as the test requires (1,000 restarted in 174 ms on a fast
/// machine; 3,000 took 860 ms).
const ITEMS: usize = 3000;
const ITEM_BYTES: usize = 48 << 10;

/// How long one GetItem takes, through HTTP, at node `id`.
async fn get_latency(tc: &TestCluster, id: NodeId, key: usize) -> Duration {
    let started = Instant::now();
    let (status, body) = tc
        .call(
            id,
            "GetItem",
            json!({"TableName": "Big", "Key": {"pk": {"S": format!("k{}", key % ITEMS)}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["Item"]["pk"]["S"].is_string(), "{body}");
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn restarting_a_node_with_a_large_log_does_not_stall_the_others() {
    let tuning = Tuning {
        // No compaction: the whole log stays, and a restart reads all of it.
        compact_every: kvsim::config::MAX_LOG_ENTRIES,
        ..common::test_tuning()
    };
    let tc = TestCluster::start_with(tuning).await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Big", ("pk", "S"), None).await;
    let filler = "x".repeat(ITEM_BYTES);
    let writing = Instant::now();
    let mut writers = Vec::new();
    for w in 0..16 {
        let (http, addr, filler) = (tc.http.clone(), tc.addr(leader), filler.clone());
        writers.push(tokio::spawn(async move {
            for i in (w..ITEMS).step_by(16) {
                let item = json!({"TableName": "Big", "Item": {"pk": {"S": format!("k{i}")}, "v": {"S": filler}}});
                // Sixteen writers of 48 KB items can starve a loaded two-core machine into an
                // election; a write refused as retryable (503) is retried, as an SDK would.
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let (status, body) =
                        common::call_addr(&http, &addr, "PutItem", item.clone()).await;
                    if status == 200 {
                        break;
                    }
                    assert!(
                        status == 503 && Instant::now() < deadline,
                        "{status} {body}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    tc.converged().await;
    println!("wrote {ITEMS} items in {:?}", writing.elapsed());
    let victim = tc.other_than(leader);
    let readers: Vec<NodeId> = tc
        .running()
        .into_iter()
        .filter(|&id| id != victim)
        .collect();

    let mut idle = Vec::new();
    for i in 0..60 {
        idle.push(get_latency(&tc, readers[i % 2], i).await);
    }
    let idle = median(idle);

    tc.cluster
        .crash_node(victim, leader)
        .await
        .expect("crash the victim");
    let cluster = tc.cluster.clone();
    let started = Instant::now();
    let restart = tokio::spawn(async move { cluster.restart_node(victim, leader).await });
    let mut during = Vec::new();
    while !restart.is_finished() {
        let i = during.len();
        during.push(get_latency(&tc, readers[i % 2], i).await);
    }
    let took = started.elapsed();
    restart.await.expect("restart task").expect("restart");
    let worst = during.iter().max().copied().unwrap_or_default();
    println!(
        "restart took {took:?}; GetItem idle median {idle:?}; {} GetItems during it, worst {worst:?}",
        during.len()
    );
    // The bound: a small multiple of the idle latency, with a floor for a noisy machine.
    let bound = (idle * 10).max(Duration::from_millis(100));
    assert!(
        took > bound * 2,
        "the restart took only {took:?}: too quick to tell a stall from noise (grow the log)"
    );
    assert!(
        worst <= bound,
        "a GetItem took {worst:?} while a node restarted (idle median {idle:?}, bound {bound:?})"
    );
    // And the restarted node caught up.
    tc.converged().await;
    tc.cluster.shutdown().await;
}
