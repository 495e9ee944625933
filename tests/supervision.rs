//! The supervisor: a node that fails (here, its disk starts refusing writes) is restarted from
//! its data directory and catches up; a disk that keeps failing makes the supervisor give up
//! after its restart intensity, with the reason in status and events; a node crashed on
//! purpose is never restarted.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually};
use kvsim::config::Supervision;
use kvsim::raft::NodeId;
use serde_json::{Value, json};

fn fast(max_restarts: u32) -> Supervision {
    Supervision {
        max_restarts,
        backoff: Duration::from_millis(50),
        ..Supervision::default()
    }
}

fn item(i: usize) -> Value {
    json!({"pk": {"S": format!("k{i}")}})
}

/// The supervisor's record of `id`, from any node's status.
async fn record(tc: &TestCluster, via: NodeId, id: NodeId) -> Value {
    let status = tc.status_json(via).await;
    status["supervision"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node_id"] == id).cloned())
        .unwrap_or_else(|| panic!("no supervision record of node {id}: {status}"))
}

fn event_kinds(tc: &TestCluster, id: NodeId) -> Vec<(String, String)> {
    tc.cluster
        .events(id)
        .map(|log| {
            log.since(0)
                .into_iter()
                .map(|e| (e.kind, e.detail))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_failed_is_restarted_and_catches_up() {
    let tc = TestCluster::start_supervised(fast(3)).await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Sup", ("pk", "S"), None).await;
    let victim = tc.other_than(leader);
    // A crash on purpose first: it must never be restarted.
    let bystander = tc
        .running()
        .into_iter()
        .find(|id| *id != leader && *id != victim)
        .expect("a third node");
    tc.cluster
        .crash_node(bystander, leader)
        .await
        .expect("crash");

    // The disk fails; the victim stops at its next write (the next append it receives).
    tc.cluster
        .fail_disk(victim, false, leader)
        .expect("fail the disk");
    let live = [leader, victim];
    tc.put_retrying(&[leader], "Sup", item(0), Duration::from_secs(10))
        .await;
    // Restarted on a working disk: running again, with the write.
    let rec = eventually(
        Duration::from_secs(20),
        "the supervisor to restart the victim",
        || async {
            let rec = record(&tc, leader, victim).await;
            (rec["restarts"] == 1
                && tc
                    .cluster
                    .node(victim)
                    .is_some_and(|h| h.failure().is_none()))
            .then_some(rec)
        },
    )
    .await;
    assert!(
        rec["last_failure"]
            .as_str()
            .is_some_and(|w| w.contains("simulated disk failure")),
        "{rec}"
    );
    assert!(rec["gave_up"].is_null(), "{rec}");
    for i in 1..20 {
        tc.put_retrying(&live, "Sup", item(i), Duration::from_secs(10))
            .await;
    }
    tc.converged().await;
    assert_eq!(tc.scan_all(victim, "Sup").await.len(), 20);
    tc.assert_identical();
    let events = event_kinds(&tc, victim);
    for kind in ["node_restarting", "node_restarted"] {
        assert!(events.iter().any(|(k, _)| k == kind), "{kind}: {events:?}");
    }
    // The crashed node was left alone: still down, never restarted.
    assert!(
        tc.cluster.node(bystander).is_none(),
        "the crashed node stays down"
    );
    assert_eq!(record(&tc, leader, bystander).await["restarts"], 0);
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_keeps_failing_makes_the_supervisor_give_up_and_say_why() {
    let tc = TestCluster::start_supervised(fast(2)).await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Sup", ("pk", "S"), None).await;
    let victim = tc.other_than(leader);
    tc.cluster
        .fail_disk(victim, true, leader)
        .expect("fail the disk for good");
    // Writes keep coming, so every restarted instance meets its failing disk.
    let mut i = 0;
    let rec = eventually(Duration::from_secs(30), "the supervisor to give up", || {
        i += 1;
        let n = i;
        let tc = &tc;
        async move {
            tc.put_retrying(&[leader], "Sup", item(n), Duration::from_secs(10))
                .await;
            let rec = record(tc, leader, victim).await;
            (!rec["gave_up"].is_null()).then_some(rec)
        }
    })
    .await;
    assert_eq!(rec["restarts"], 2, "{rec}");
    let why = rec["gave_up"].as_str().unwrap_or_default();
    assert!(
        why.contains("not restarted: 2 restarts within 60 s is the limit")
            && why.contains("simulated disk failure"),
        "{why}"
    );
    assert!(
        event_kinds(&tc, victim)
            .iter()
            .any(|(k, d)| k == "supervisor_gave_up" && d == why),
        "{:?}",
        event_kinds(&tc, victim)
    );
    // Its own status says it failed and why it stays so; the others carry on.
    let own = tc.status_json(victim).await;
    assert_eq!(own["role"], "failed", "{own}");
    assert!(
        own["faults"].as_array().is_some_and(|f| f
            .iter()
            .any(|x| x == &json!(format!("disk of node {victim} fails after every restart")))),
        "{own}"
    );
    let n = tc.scan_all(leader, "Sup").await.len();
    tc.put_retrying(&[leader], "Sup", item(1000), Duration::from_secs(10))
        .await;

    // Healed and restarted by hand, it runs again and catches up; the refusal is cleared.
    tc.cluster.heal_disks();
    tc.cluster
        .restart_node(victim, leader)
        .await
        .expect("a failed node can be restarted by hand");
    tc.converged().await;
    assert_eq!(tc.scan_all(victim, "Sup").await.len(), n + 1);
    assert!(record(&tc, leader, victim).await["gave_up"].is_null());
    tc.cluster.shutdown().await;
}
