//! The read cache (`--cache-items`): eventually consistent GetItems are answered from it, and
//! a write applied on a node evicts the item there first, so a node never answers older than
//! its own applied state.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually, test_tuning};
use kvsim::config::Tuning;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_reads_follow_every_write_the_node_applies() {
    let tc = TestCluster::start_with(Tuning {
        cache_items: 100,
        ..test_tuning()
    })
    .await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Cached", ("pk", "S"), None).await;
    let follower = tc.other_than(leader);
    let get = json!({"TableName": "Cached", "Key": {"pk": {"S": "k"}}});
    for n in 0..20 {
        tc.put_retrying(
            &[leader],
            "Cached",
            json!({"pk": {"S": "k"}, "n": {"N": n.to_string()}}),
            Duration::from_secs(10),
        )
        .await;
        let applied = tc.converged().await;
        // Read twice: the first fills the cache (or finds it filled), the second hits it.
        for _ in 0..2 {
            let (status, body) = tc.call(follower, "GetItem", get.clone()).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(
                body["Item"]["n"],
                json!({"N": n.to_string()}),
                "node {follower} applied index {applied} but answered an older item"
            );
        }
    }
    let stats = eventually(Duration::from_secs(5), "the cache's counters", || async {
        let status = tc.status_json(follower).await;
        Some(status["read_cache"].clone())
    })
    .await;
    assert!(stats["hits"].as_u64().is_some_and(|h| h >= 20), "{stats}");
    assert!(stats["misses"].as_u64().is_some_and(|m| m >= 1), "{stats}");
    // A consistent read never uses it, and a deleted item is gone from it at once.
    call_ok(
        &tc,
        leader,
        "DeleteItem",
        json!({"TableName": "Cached", "Key": {"pk": {"S": "k"}}}),
    )
    .await;
    tc.converged().await;
    let (_, body) = tc.call(follower, "GetItem", get).await;
    assert!(
        body.get("Item").is_none(),
        "a deleted item is not served from the cache: {body}"
    );
    tc.cluster.shutdown().await;
}

async fn call_ok(tc: &TestCluster, id: u64, op: &str, body: serde_json::Value) {
    let (status, answer) = tc.call(id, op, body).await;
    assert_eq!(status, 200, "{op}: {answer}");
}
