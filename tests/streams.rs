//! DynamoDB Streams retention: records older than `--stream-retention-secs` are trimmed
//! through the log on every node alike, and an iterator pointing before the oldest record
//! kept is `TrimmedDataAccessException`, while a new `TRIM_HORIZON` one reads what is left.

mod common;

use std::time::Duration;

use common::{TestCluster, eventually, test_tuning};
use kvsim::config::Tuning;
use serde_json::{Value, json};

const STREAMS: &str = "DynamoDBStreams_20120810";

async fn iterator(tc: &TestCluster, node: u64, arn: &str, shard: &str, kind: &str) -> String {
    let (status, body) = tc
        .call(
            node,
            &format!("{STREAMS}.GetShardIterator"),
            json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": kind}),
        )
        .await;
    assert_eq!(status, 200, "GetShardIterator: {body}");
    body["ShardIterator"]
        .as_str()
        .expect("iterator")
        .to_string()
}

async fn records(tc: &TestCluster, node: u64, it: &str) -> (u16, Value) {
    tc.call(
        node,
        &format!("{STREAMS}.GetRecords"),
        json!({"ShardIterator": it}),
    )
    .await
}

fn keys(body: &Value) -> Vec<String> {
    body["Records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    r["dynamodb"]["Keys"]["pk"]["S"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_past_their_retention_are_trimmed_on_every_node() {
    let tc = TestCluster::start_with(Tuning {
        stream_retention: Duration::from_secs(1),
        ttl_interval: Duration::from_millis(100),
        ..test_tuning()
    })
    .await;
    let leader = tc.leader().await;
    let arn = tc
        .create_streamed_table(leader, "Trimmed", "KEYS_ONLY")
        .await;
    for pk in ["a", "b"] {
        tc.put_retrying(
            &[leader],
            "Trimmed",
            json!({"pk": {"S": pk}}),
            Duration::from_secs(10),
        )
        .await;
    }
    tc.converged().await;
    let (_, described) = tc
        .call(
            leader,
            &format!("{STREAMS}.DescribeStream"),
            json!({"StreamArn": arn}),
        )
        .await;
    let shard = described["StreamDescription"]["Shards"][0]["ShardId"]
        .as_str()
        .expect("a shard")
        .to_string();
    let early = iterator(&tc, leader, &arn, &shard, "TRIM_HORIZON").await;
    let (status, body) = records(&tc, leader, &early).await;
    assert_eq!(
        (status, keys(&body)),
        (200, vec!["a".to_string(), "b".into()])
    );

    // Once the retention has passed, the leader trims them; the early iterator now points
    // before the oldest record kept.
    let trimmed = eventually(Duration::from_secs(30), "the records to be trimmed", || {
        let (tc, early) = (&tc, &early);
        async move {
            let (status, body) = records(tc, leader, early).await;
            (status == 400).then_some(body)
        }
    })
    .await;
    assert!(
        trimmed["__type"]
            .as_str()
            .is_some_and(|t| t.ends_with("#TrimmedDataAccessException")),
        "{trimmed}"
    );
    tc.put_retrying(
        &[leader],
        "Trimmed",
        json!({"pk": {"S": "c"}}),
        Duration::from_secs(10),
    )
    .await;
    tc.converged().await;
    // Trimming runs in rounds and "b" passed its retention a little after "a": every node
    // drops both, through the log, within a few rounds.
    for node in tc.running() {
        let (tc, arn, shard) = (&tc, &arn, &shard);
        eventually(
            Duration::from_secs(30),
            &format!("node {node} to trim a and b"),
            || async move {
                let horizon = iterator(tc, node, arn, shard, "TRIM_HORIZON").await;
                let (status, body) = records(tc, node, &horizon).await;
                assert_eq!(status, 200, "{body}");
                let kept = keys(&body);
                (!kept.contains(&"a".to_string()) && !kept.contains(&"b".to_string())).then_some(())
            },
        )
        .await;
    }
    tc.converged().await;
    tc.assert_identical();
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_rolls_into_child_shards_that_hold_every_record_once() {
    let tc = TestCluster::start_with(Tuning {
        stream_shard_entries: 3,
        ..test_tuning()
    })
    .await;
    let leader = tc.leader().await;
    let arn = tc
        .create_streamed_table(leader, "Rolling", "KEYS_ONLY")
        .await;
    let written: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    for pk in &written {
        tc.put_retrying(
            &[leader],
            "Rolling",
            json!({"pk": {"S": pk}}),
            Duration::from_secs(10),
        )
        .await;
    }
    tc.converged().await;
    for node in tc.running() {
        // Every shard, two to a page.
        let mut shards = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut req = json!({"StreamArn": arn, "Limit": 2});
            if let Some(s) = start.take() {
                req["ExclusiveStartShardId"] = s;
            }
            let (status, body) = tc
                .call(node, &format!("{STREAMS}.DescribeStream"), req)
                .await;
            assert_eq!(status, 200, "{body}");
            let d = &body["StreamDescription"];
            shards.extend(d["Shards"].as_array().cloned().unwrap_or_default());
            match d.get("LastEvaluatedShardId") {
                Some(last) => start = Some(last.clone()),
                None => break,
            }
        }
        assert!(
            shards.len() >= 3,
            "ten writes over three-entry shards: {shards:#?}"
        );
        for (i, shard) in shards.iter().enumerate() {
            let range = &shard["SequenceNumberRange"];
            let last = i + 1 == shards.len();
            assert_eq!(
                range.get("EndingSequenceNumber").is_none(),
                last,
                "only the last is open: {shard}"
            );
            match i {
                0 => assert!(shard.get("ParentShardId").is_none(), "{shard}"),
                _ => assert_eq!(shard["ParentShardId"], shards[i - 1]["ShardId"], "lineage"),
            }
        }
        // Read shard after shard, each to its end: every record once, in order.
        let mut seen = Vec::new();
        for shard in &shards {
            let id = shard["ShardId"].as_str().expect("id");
            let mut it = Some(iterator(&tc, node, &arn, id, "TRIM_HORIZON").await);
            while let Some(current) = it.take() {
                let (status, body) = records(&tc, node, &current).await;
                assert_eq!(status, 200, "{body}");
                let page = keys(&body);
                let empty = page.is_empty();
                seen.extend(page);
                it = body["NextShardIterator"].as_str().map(str::to_string);
                if empty {
                    break; // the open shard has nothing more yet
                }
            }
        }
        assert_eq!(seen, written, "node {node}");
    }
    tc.cluster.shutdown().await;
}
