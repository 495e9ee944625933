//! `--mode dynamo` through its HTTP API: five leaderless nodes in this process (on free ports,
//! in memory), driven as a client would, with the simulator's faults set on the cluster.
//!
//! Conditions are polled with deadlines; nothing sleeps to synchronise.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kvsim::cluster::AdminPolicy;
use kvsim::cluster::leaderless::{LeaderlessCluster, LeaderlessConfig};
use kvsim::config::{Storage, Tuning};
use serde_json::{Value, json};

/// How long a condition may take to hold (suspicion takes 0.5 s, anti-entropy rounds 1 s).
const DEADLINE: Duration = Duration::from_secs(20);
/// Ticks before a peer is suspected in tests that crash or cut off nodes (the server's
/// default, 0.5 s).
const QUICK: u64 = kvsim::cluster::leaderless::SUSPECT_AFTER;
/// In tests where every node stays up: long enough (10 s) that a machine loaded by parallel
/// tests never makes a node suspect a live peer, which would send its reads to stand-ins.
const PATIENT: u64 = 200;

async fn start(merger: &str, suspect_after: u64) -> LeaderlessCluster {
    LeaderlessCluster::start(LeaderlessConfig {
        data_root: std::env::temp_dir(),
        host: "127.0.0.1".into(),
        base_port: 0,
        nodes: 5,
        replicas: 3,
        read_quorum: 2,
        write_quorum: 2,
        merger: merger.into(),
        tombstone_gc: Duration::from_secs(3600),
        storage: Storage::Memory,
        tuning: Tuning::default(),
        policy: AdminPolicy {
            faults: true,
            remote: false,
        },
        suspect_after,
        supervision: kvsim::config::Supervision::default(),
    })
    .await
    .expect("the cluster starts")
}

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn error_type(&self) -> &str {
        self.body["__type"]
            .as_str()
            .and_then(|t| t.rsplit('#').next())
            .unwrap_or("")
    }
}

async fn call(cluster: &LeaderlessCluster, node: u64, op: &str, input: Value) -> Answer {
    let addr = &cluster.addrs()[&node];
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/"))
        .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
        .header("content-type", "application/x-amz-json-1.0")
        .body(input.to_string())
        .send()
        .await
        .expect("the node answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("an answer");
    let body = serde_json::from_slice(&bytes).expect("a JSON answer");
    Answer {
        status,
        body,
        headers,
    }
}

async fn ok(cluster: &LeaderlessCluster, node: u64, op: &str, input: Value) -> Value {
    let a = call(cluster, node, op, input).await;
    assert_eq!(a.status, 200, "{op} at node {node}: {}", a.body);
    a.body
}

/// CreateTable of "Tab" (partition key `pk`) with `extra` members merged in.
fn create_tab(extra: Value) -> Value {
    let mut input = json!({
        "TableName": "Tab",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        input[k] = v.clone();
    }
    input
}

async fn create_table(cluster: &LeaderlessCluster) {
    ok(cluster, 1, "CreateTable", create_tab(json!({}))).await;
}

fn put(pk: &str, attrs: Value) -> Value {
    let mut item = json!({"pk": {"S": pk}});
    for (k, v) in attrs.as_object().into_iter().flatten() {
        item[k] = v.clone();
    }
    json!({"TableName": "Tab", "Item": item})
}

fn key(pk: &str) -> Value {
    json!({"TableName": "Tab", "Key": {"pk": {"S": pk}}})
}

async fn get_json(url: &str) -> Value {
    let bytes = reqwest::get(url)
        .await
        .expect("the node answers")
        .bytes()
        .await
        .expect("an answer");
    serde_json::from_slice(&bytes).expect("a JSON answer")
}

async fn status(cluster: &LeaderlessCluster, node: u64) -> Value {
    let addr = &cluster.addrs()[&node];
    get_json(&format!("http://{addr}/status")).await
}

/// Polls `check` until it holds, failing with `what` at the deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every live node in `nodes` suspects exactly `down`.
async fn suspected_by_all(cluster: &LeaderlessCluster, nodes: &[u64], down: &[u64]) {
    let down: BTreeSet<u64> = down.iter().copied().collect();
    eventually(&format!("nodes {nodes:?} suspect {down:?}"), || async {
        for &n in nodes {
            let s = status(cluster, n).await;
            let seen: BTreeSet<u64> = s["suspected"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect();
            if seen != down {
                return false;
            }
        }
        true
    })
    .await;
}

async fn events(cluster: &LeaderlessCluster) -> Vec<String> {
    let mut kinds = Vec::new();
    for n in cluster.addrs().keys() {
        let addr = &cluster.addrs()[n];
        let v = get_json(&format!("http://{addr}/events")).await;
        for e in v["events"].as_array().into_iter().flatten() {
            kinds.push(e["kind"].as_str().unwrap_or_default().to_string());
        }
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_are_written_and_read_through_any_node() {
    let cluster = start("lww", PATIENT).await;
    create_table(&cluster).await;
    for node in 1..=5 {
        let tables = ok(&cluster, node, "ListTables", json!({})).await;
        assert_eq!(tables["TableNames"], json!(["Tab"]), "node {node}");
    }
    ok(&cluster, 2, "PutItem", put("a", json!({"n": {"N": "1"}}))).await;
    // R + W > N: every read sees the acknowledged write, at whichever node it is asked.
    for node in 1..=5 {
        let got = ok(&cluster, node, "GetItem", key("a")).await;
        assert_eq!(got["Item"]["n"], json!({"N": "1"}), "node {node}");
    }
    let mut failed = put("a", json!({"n": {"N": "2"}}));
    failed["ConditionExpression"] = json!("attribute_not_exists(pk)");
    let a = call(&cluster, 3, "PutItem", failed).await;
    assert_eq!(a.error_type(), "ConditionalCheckFailedException");

    let mut add = key("a");
    add["UpdateExpression"] = json!("ADD n :one");
    add["ExpressionAttributeValues"] = json!({":one": {"N": "5"}});
    add["ReturnValues"] = json!("ALL_NEW");
    let updated = ok(&cluster, 4, "UpdateItem", add).await;
    assert_eq!(updated["Attributes"]["n"], json!({"N": "6"}));
    let got = call(&cluster, 5, "GetItem", key("a")).await;
    assert_eq!(got.body["Item"]["n"], json!({"N": "6"}));
    assert!(
        got.headers.contains_key("x-kvsim-clock"),
        "a read answers the item's vector clock"
    );

    let mut delete = key("a");
    delete["ReturnValues"] = json!("ALL_OLD");
    let old = ok(&cluster, 1, "DeleteItem", delete).await;
    assert_eq!(old["Attributes"]["n"], json!({"N": "6"}));
    for node in 1..=5 {
        let got = ok(&cluster, node, "GetItem", key("a")).await;
        assert!(got.get("Item").is_none(), "node {node} still has {got}");
    }

    let tx = call(
        &cluster,
        1,
        "TransactWriteItems",
        json!({"TransactItems": [{"Put": put("b", json!({}))}]}),
    )
    .await;
    assert_eq!(tx.error_type(), "ValidationException");
    assert!(
        tx.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("--mode raft"),
        "{}",
        tx.body
    );
    // Batches: each write on its own (as DynamoDB's batches are not atomic either).
    let batch = ok(
        &cluster,
        2,
        "BatchWriteItem",
        json!({"RequestItems": {"Tab": [
            {"PutRequest": {"Item": {"pk": {"S": "b1"}, "v": {"S": "one"}}}},
            {"PutRequest": {"Item": {"pk": {"S": "b2"}, "v": {"S": "two"}}}},
            {"DeleteRequest": {"Key": {"pk": {"S": "b3"}}}},
        ]}}),
    )
    .await;
    assert_eq!(batch["UnprocessedItems"], json!({}));
    let got = ok(
        &cluster,
        4,
        "BatchGetItem",
        json!({"RequestItems": {"Tab": {"Keys": [
            {"pk": {"S": "b1"}}, {"pk": {"S": "b2"}}, {"pk": {"S": "b3"}},
        ]}}}),
    )
    .await;
    let mut values: Vec<&str> = got["Responses"]["Tab"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["v"]["S"].as_str())
        .collect();
    values.sort_unstable();
    assert_eq!(values, ["one", "two"], "{got}");
    let missing = call(
        &cluster,
        1,
        "GetItem",
        json!({"TableName": "Nope", "Key": {"pk": {"S": "a"}}}),
    )
    .await;
    assert_eq!(missing.error_type(), "ResourceNotFoundException");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_stay_available_with_two_nodes_down_and_hints_go_back() {
    let cluster = start("lww", QUICK).await;
    create_table(&cluster).await;
    cluster.crash_node(4, 1).await.expect("node 4 crashes");
    cluster.crash_node(5, 1).await.expect("node 5 crashes");
    suspected_by_all(&cluster, &[1, 2, 3], &[4, 5]).await;
    // Every key has at least one of its three owners down: stand-ins take the writes.
    for i in 0..20 {
        ok(
            &cluster,
            1 + i % 3,
            "PutItem",
            put(&format!("k{i}"), json!({"i": {"N": i.to_string()}})),
        )
        .await;
    }
    let mut hints = 0;
    for n in 1..=3 {
        hints += status(&cluster, n).await["hints"]
            .as_object()
            .map_or(0, |h| h.values().filter_map(Value::as_u64).sum::<u64>());
    }
    assert!(hints > 0, "stand-ins hold hints for the crashed owners");
    for i in 0..20 {
        let mut read = key(&format!("k{i}"));
        read["ConsistentRead"] = json!(true);
        let got = ok(&cluster, 3 - i % 3, "GetItem", read).await;
        assert_eq!(got["Item"]["i"], json!({"N": i.to_string()}), "k{i}");
    }

    cluster.restart_node(4).await.expect("node 4 restarts");
    cluster.restart_node(5).await.expect("node 5 restarts");
    eventually("every hint is handed back", || async {
        for n in 1..=5 {
            if status(&cluster, n).await["hints"]
                .as_object()
                .is_some_and(|h| !h.is_empty())
            {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        events(&cluster)
            .await
            .iter()
            .any(|k| k == "hint_handed_off")
    );
    // With nodes 1 and 2 now down, every key still has an owner among 3, 4 and 5 holding it
    // (4 and 5 from the handoffs): a ConsistentRead asks all of them.
    cluster.crash_node(1, 3).await.expect("node 1 crashes");
    cluster.crash_node(2, 3).await.expect("node 2 crashes");
    suspected_by_all(&cluster, &[3, 4, 5], &[1, 2]).await;
    for i in 0..20 {
        let mut read = key(&format!("k{i}"));
        read["ConsistentRead"] = json!(true);
        let got = ok(&cluster, 3 + i % 3, "GetItem", read).await;
        assert_eq!(got["Item"]["i"], json!({"N": i.to_string()}), "k{i}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_diverges_then_converges_with_the_versions_merged() {
    let cluster = start("vector", QUICK).await;
    create_table(&cluster).await;
    ok(
        &cluster,
        1,
        "PutItem",
        put("x", json!({"tags": {"SS": ["base"]}})),
    )
    .await;
    let all: Vec<u64> = (1..=5).collect();
    cluster
        .faults()
        .write()
        .expect("faults")
        .set_partition(vec![[1, 2].into(), [3, 4, 5].into()], &all)
        .expect("a valid partition");
    suspected_by_all(&cluster, &[1, 2], &[3, 4, 5]).await;
    suspected_by_all(&cluster, &[3, 4, 5], &[1, 2]).await;
    // Both sides accept a write of the same item: Raft would refuse the minority's.
    ok(
        &cluster,
        1,
        "PutItem",
        put(
            "x",
            json!({"tags": {"SS": ["base", "left"]}, "l": {"N": "1"}}),
        ),
    )
    .await;
    ok(
        &cluster,
        4,
        "PutItem",
        put(
            "x",
            json!({"tags": {"SS": ["base", "right"]}, "r": {"N": "2"}}),
        ),
    )
    .await;
    let left = ok(&cluster, 2, "GetItem", key("x")).await;
    let right = ok(&cluster, 5, "GetItem", key("x")).await;
    assert_eq!(left["Item"]["l"], json!({"N": "1"}), "{left}");
    assert_eq!(right["Item"]["r"], json!({"N": "2"}), "{right}");
    assert!(left["Item"].get("r").is_none() && right["Item"].get("l").is_none());

    cluster.faults().write().expect("faults").heal();
    // Once healed, every node answers the merge of both sides, and says it merged.
    eventually("every node answers the merged item", || async {
        for n in 1..=5 {
            let a = call(&cluster, n, "GetItem", key("x")).await;
            let item = &a.body["Item"];
            let mut tags: Vec<&str> = item["tags"]["SS"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            tags.sort_unstable();
            if item["l"] != json!({"N": "1"})
                || item["r"] != json!({"N": "2"})
                || tags != ["base", "left", "right"]
                || !a.headers.contains_key("x-kvsim-merged")
            {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        events(&cluster)
            .await
            .iter()
            .any(|k| k == "conflict_detected")
    );
    // A write after the merge supersedes both siblings: once every node believes every other
    // alive again (so all send the key to the same three owners), a consistent read (every
    // live owner) at any node sees only the new write.
    suspected_by_all(&cluster, &all, &[]).await;
    ok(
        &cluster,
        3,
        "PutItem",
        put("x", json!({"tags": {"SS": ["final"]}})),
    )
    .await;
    for n in 1..=5 {
        let mut read = key("x");
        read["ConsistentRead"] = json!(true);
        let a = call(&cluster, n, "GetItem", read).await;
        assert_eq!(a.body["Item"]["tags"], json!({"SS": ["final"]}), "node {n}");
        assert!(!a.headers.contains_key("x-kvsim-merged"), "node {n}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_scan_page_through_the_table() {
    let cluster = start("lww", PATIENT).await;
    ok(
        &cluster,
        2,
        "CreateTable",
        json!({
            "TableName": "Music",
            "KeySchema": [
                {"AttributeName": "Artist", "KeyType": "HASH"},
                {"AttributeName": "Year", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "Artist", "AttributeType": "S"},
                {"AttributeName": "Year", "AttributeType": "N"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        }),
    )
    .await;
    // Numbers sort numerically (9 before 10), whatever node wrote them.
    for (i, year) in [10, 9, 1999, 100, 2000].iter().enumerate() {
        ok(
            &cluster,
            1 + i as u64 % 5,
            "PutItem",
            json!({"TableName": "Music", "Item": {
                "Artist": {"S": "Acme"}, "Year": {"N": year.to_string()}, "Hit": {"BOOL": year % 2 == 0},
            }}),
        )
        .await;
    }
    ok(
        &cluster,
        3,
        "PutItem",
        json!({"TableName": "Music", "Item": {"Artist": {"S": "Other"}, "Year": {"N": "5"}}}),
    )
    .await;
    let years = |page: &Value| -> Vec<String> {
        page["Items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["Year"]["N"].as_str().map(str::to_string))
            .collect()
    };
    let query = |extra: Value| {
        let mut q = json!({
            "TableName": "Music",
            "KeyConditionExpression": "Artist = :a AND #y BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": {"#y": "Year"},
            "ExpressionAttributeValues": {":a": {"S": "Acme"}, ":lo": {"N": "9"}, ":hi": {"N": "1999"}},
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            q[k] = v.clone();
        }
        q
    };
    let all = ok(&cluster, 4, "Query", query(json!({}))).await;
    assert_eq!(years(&all), ["9", "10", "100", "1999"]);
    let back = ok(
        &cluster,
        5,
        "Query",
        query(json!({"ScanIndexForward": false})),
    )
    .await;
    assert_eq!(years(&back), ["1999", "100", "10", "9"]);
    // Pages of two, resumed from LastEvaluatedKey.
    let first = ok(&cluster, 1, "Query", query(json!({"Limit": 2}))).await;
    assert_eq!(years(&first), ["9", "10"]);
    let second = ok(
        &cluster,
        2,
        "Query",
        query(json!({"Limit": 2, "ExclusiveStartKey": first["LastEvaluatedKey"]})),
    )
    .await;
    assert_eq!(years(&second), ["100", "1999"]);
    let filtered = ok(
        &cluster,
        3,
        "Query",
        json!({
            "TableName": "Music",
            "KeyConditionExpression": "Artist = :a",
            "FilterExpression": "Hit = :t",
            "ExpressionAttributeValues": {":a": {"S": "Acme"}, ":t": {"BOOL": true}},
        }),
    )
    .await;
    assert_eq!(years(&filtered), ["10", "100", "2000"]);
    assert_eq!(filtered["ScannedCount"], json!(5));
    let indexed = call(&cluster, 4, "Query", query(json!({"IndexName": "byHit"}))).await;
    assert_eq!(
        indexed.error_type(),
        "ValidationException",
        "{}",
        indexed.body
    );
    assert!(
        indexed.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("The table does not have the specified index: byHit"),
        "{}",
        indexed.body
    );
    // A Scan gathers the table from every node, each holding a part of it.
    let scan = ok(&cluster, 1, "Scan", json!({"TableName": "Music"})).await;
    assert_eq!(scan["Count"], json!(6), "{scan}");
    let mut seen = Vec::new();
    let mut start = Value::Null;
    loop {
        let mut input = json!({"TableName": "Music", "Limit": 4});
        if !start.is_null() {
            input["ExclusiveStartKey"] = start.clone();
        }
        let page = ok(&cluster, 2, "Scan", input).await;
        seen.extend(years(&page));
        start = page["LastEvaluatedKey"].clone();
        if start.is_null() {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, ["10", "100", "1999", "2000", "5", "9"]);
    let mut segments = 0;
    for segment in 0..3 {
        let page = ok(
            &cluster,
            3,
            "Scan",
            json!({"TableName": "Music", "Segment": segment, "TotalSegments": 3}),
        )
        .await;
        segments += page["Count"].as_u64().unwrap_or(0);
    }
    assert_eq!(
        segments, 6,
        "the segments of a parallel scan cover the table once"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_fail_requests_until_cleared() {
    let cluster = start("lww", PATIENT).await;
    create_table(&cluster).await;
    let admin = |action: &str, body: Value| {
        let addr = cluster.addrs()[&2].clone();
        let action = action.to_string();
        async move {
            let resp = reqwest::Client::new()
                .post(format!("http://{addr}/admin/faults/{action}"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("the node answers");
            assert_eq!(resp.status().as_u16(), 200, "{action}");
        }
    };
    admin(
        "errors",
        json!({"op": "GetItem", "error": "ProvisionedThroughputExceededException", "rate": 1.0}),
    )
    .await;
    let failed = call(&cluster, 4, "GetItem", key("a")).await;
    assert_eq!(
        failed.error_type(),
        "ProvisionedThroughputExceededException"
    );
    ok(&cluster, 4, "PutItem", put("a", json!({}))).await;
    admin("clear-errors", json!({})).await;
    let got = ok(&cluster, 4, "GetItem", key("a")).await;
    assert_eq!(got["Item"]["pk"], json!({"S": "a"}));
    cluster.shutdown().await;
}

/// Each node caches table descriptions for a second; a deleted table stays DELETING for two,
/// so a node still holding it never writes into a new table of the same name: it is refused
/// by every node within that time (polled), and its name is reusable only after. A table
/// created through one node is usable at every other at once (a node reads the catalog on a
/// miss).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_deleted_through_one_node_is_refused_by_the_others() {
    let cluster = start("lww", PATIENT).await;
    create_table(&cluster).await;
    for node in 1..=5 {
        ok(
            &cluster,
            node,
            "PutItem",
            put(&format!("k{node}"), json!({})),
        )
        .await;
    }
    let deleted = ok(&cluster, 1, "DeleteTable", json!({"TableName": "Tab"})).await;
    assert_eq!(
        deleted["TableDescription"]["TableStatus"],
        json!("DELETING")
    );
    let started = Instant::now();
    let described = ok(&cluster, 2, "DescribeTable", json!({"TableName": "Tab"})).await;
    assert_eq!(
        described["Table"]["TableStatus"],
        json!("DELETING"),
        "{described}"
    );
    let again = call(&cluster, 3, "DeleteTable", json!({"TableName": "Tab"})).await;
    assert_eq!(again.error_type(), "ResourceNotFoundException");
    for node in 1..=5 {
        eventually(
            &format!("node {node} refuses the deleted table"),
            || async {
                call(&cluster, node, "PutItem", put("late", json!({})))
                    .await
                    .error_type()
                    == "ResourceNotFoundException"
            },
        )
        .await;
    }
    let spec = json!({
        "TableName": "Tab",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    });
    let early = call(&cluster, 4, "CreateTable", spec.clone()).await;
    if started.elapsed() < kvsim::dynamo::service::DELETING_FOR {
        assert_eq!(
            early.error_type(),
            "ResourceInUseException",
            "{}",
            early.body
        );
    }
    eventually("the name is reusable", || async {
        call(&cluster, 4, "CreateTable", spec.clone()).await.status == 200
    })
    .await;
    // A new table, usable at once through any node, without the old one's items.
    for node in 1..=5 {
        let got = ok(&cluster, node, "GetItem", key(&format!("k{node}"))).await;
        assert!(
            got.get("Item").is_none(),
            "node {node} sees an old item: {got}"
        );
        ok(
            &cluster,
            node,
            "PutItem",
            put(&format!("n{node}"), json!({})),
        )
        .await;
    }
    let scan = ok(
        &cluster,
        3,
        "Scan",
        json!({"TableName": "Tab", "ConsistentRead": true}),
    )
    .await;
    assert_eq!(scan["Count"], json!(5), "{scan}");
}

/// Secondary indexes in `--mode dynamo` are computed from the merged items when read, so a
/// global index answers through any node, follows updates and deletes at once, and after a
/// partition heals it shows the merged item, never an entry of a losing version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_answer_from_the_merged_items() {
    let cluster = start("lww", QUICK).await;
    ok(
        &cluster,
        1,
        "CreateTable",
        json!({
            "TableName": "Orders",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "status", "AttributeType": "S"},
                {"AttributeName": "at", "AttributeType": "N"}],
            "GlobalSecondaryIndexes": [{"IndexName": "byStatus",
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                              {"AttributeName": "at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"}}],
            "LocalSecondaryIndexes": [{"IndexName": "byAt",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"}}],
            "BillingMode": "PAY_PER_REQUEST",
        }),
    )
    .await;
    let order = |pk: &str, sk: &str, status: &str, at: u32| {
        json!({"TableName": "Orders", "Item": {
            "pk": {"S": pk}, "sk": {"S": sk}, "status": {"S": status}, "at": {"N": at.to_string()},
            "note": {"S": format!("{pk}/{sk}")}}})
    };
    for (i, (pk, sk, status, at)) in [
        ("c1", "o1", "open", 30),
        ("c1", "o2", "shipped", 10),
        ("c2", "o1", "open", 20),
        ("c2", "o2", "open", 40),
    ]
    .into_iter()
    .enumerate()
    {
        ok(
            &cluster,
            1 + i as u64 % 5,
            "PutItem",
            order(pk, sk, status, at),
        )
        .await;
    }
    let by_status = |status: &str| {
        json!({"TableName": "Orders", "IndexName": "byStatus",
               "KeyConditionExpression": "#s = :s", "ExpressionAttributeNames": {"#s": "status"},
               "ExpressionAttributeValues": {":s": {"S": status}}})
    };
    let keys = |page: &Value| -> Vec<String> {
        page["Items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                format!(
                    "{}/{}",
                    i["pk"]["S"].as_str().unwrap_or(""),
                    i["sk"]["S"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    for node in 1..=5 {
        let open = ok(&cluster, node, "Query", by_status("open")).await;
        // In index key order (`at`), each with the keys only.
        assert_eq!(keys(&open), ["c2/o1", "c1/o1", "c2/o2"], "node {node}");
        assert!(open["Items"][0].get("note").is_none(), "{open}");
    }
    let mut local = json!({"TableName": "Orders", "IndexName": "byAt",
        "KeyConditionExpression": "pk = :p AND #a > :t", "ExpressionAttributeNames": {"#a": "at"},
        "ExpressionAttributeValues": {":p": {"S": "c1"}, ":t": {"N": "5"}},
        "ScanIndexForward": false});
    let c1 = ok(&cluster, 2, "Query", local.clone()).await;
    assert_eq!(keys(&c1), ["c1/o1", "c1/o2"]);
    assert_eq!(c1["Items"][0]["note"], json!({"S": "c1/o1"}));
    local["Limit"] = json!(1);
    let first = ok(&cluster, 3, "Query", local.clone()).await;
    assert_eq!(keys(&first), ["c1/o1"]);
    local["ExclusiveStartKey"] = first["LastEvaluatedKey"].clone();
    let second = ok(&cluster, 4, "Query", local).await;
    assert_eq!(keys(&second), ["c1/o2"]);

    // An update moves an item between index partitions; a delete takes it out.
    let mut ship = json!({"TableName": "Orders", "Key": {"pk": {"S": "c2"}, "sk": {"S": "o2"}},
        "UpdateExpression": "SET #s = :s", "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "shipped"}}});
    ok(&cluster, 5, "UpdateItem", ship.clone()).await;
    ok(
        &cluster,
        4,
        "DeleteItem",
        json!({"TableName": "Orders",
        "Key": {"pk": {"S": "c2"}, "sk": {"S": "o1"}}}),
    )
    .await;
    let open = ok(&cluster, 1, "Query", by_status("open")).await;
    assert_eq!(keys(&open), ["c1/o1"]);
    let shipped = ok(&cluster, 3, "Query", by_status("shipped")).await;
    assert_eq!(keys(&shipped), ["c1/o2", "c2/o2"]);

    // A mistyped index key is refused and changes nothing.
    let bad = call(
        &cluster,
        2,
        "PutItem",
        json!({"TableName": "Orders", "Item": {
        "pk": {"S": "c3"}, "sk": {"S": "o1"}, "status": {"N": "1"}}}),
    )
    .await;
    assert_eq!(bad.error_type(), "ValidationException", "{}", bad.body);
    let got = ok(
        &cluster,
        2,
        "GetItem",
        json!({"TableName": "Orders",
        "Key": {"pk": {"S": "c3"}, "sk": {"S": "o1"}}, "ConsistentRead": true}),
    )
    .await;
    assert!(got.get("Item").is_none(), "{got}");

    // Both sides of a partition change c1/o1's status; once healed and merged (last writer
    // wins), the index holds the winner alone, in every node's answer. Each update sets the
    // index's sort key too: a side whose replicas had not yet received c1/o1 when the
    // partition fell updates nothing into a new item, which without `at` would rightly be in
    // no index at all.
    let all: Vec<u64> = (1..=5).collect();
    cluster
        .faults()
        .write()
        .expect("faults")
        .set_partition(vec![[1, 2].into(), [3, 4, 5].into()], &all)
        .expect("a valid partition");
    suspected_by_all(&cluster, &[1, 2], &[3, 4, 5]).await;
    suspected_by_all(&cluster, &[3, 4, 5], &[1, 2]).await;
    let key = json!({"pk": {"S": "c1"}, "sk": {"S": "o1"}});
    ship["Key"] = key.clone();
    ship["UpdateExpression"] = json!("SET #s = :s, #a = :a");
    ship["ExpressionAttributeNames"]["#a"] = json!("at");
    ship["ExpressionAttributeValues"] = json!({":s": {"S": "shipped"}, ":a": {"N": "30"}});
    ok(&cluster, 1, "UpdateItem", ship.clone()).await;
    ship["ExpressionAttributeValues"] = json!({":s": {"S": "cancelled"}, ":a": {"N": "30"}});
    ok(&cluster, 4, "UpdateItem", ship).await;
    cluster.faults().write().expect("faults").heal();
    suspected_by_all(&cluster, &[1, 2, 3, 4, 5], &[]).await;
    // Once converged, every node's consistent read answers one merged status (last writer
    // wins), and every node's index holds c1/o1 under that status alone. (Read at each node:
    // a node that still suspects a peer reads without it, so one answer alone is no oracle.)
    eventually(
        "every node's items and index agree on the merged c1/o1",
        || async {
            let mut statuses = BTreeSet::new();
            for node in 1..=5 {
                let mut read = json!({"TableName": "Orders", "Key": key.clone()});
                read["ConsistentRead"] = json!(true);
                let got = ok(&cluster, node, "GetItem", read).await;
                let status = got["Item"]["status"]["S"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                for (s, want) in [
                    ("shipped", status == "shipped"),
                    ("cancelled", status == "cancelled"),
                ] {
                    let indexed = keys(&ok(&cluster, node, "Query", by_status(s)).await);
                    if indexed.contains(&"c1/o1".to_string()) != want {
                        return false;
                    }
                }
                statuses.insert(status);
            }
            statuses.len() == 1
        },
    )
    .await;
}

async fn admin(cluster: &LeaderlessCluster, path: &str) -> Value {
    let addr = &cluster.addrs()[&1];
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("the node answers");
    let status = resp.status().as_u16();
    let body: Value =
        serde_json::from_slice(&resp.bytes().await.expect("an answer")).expect("JSON");
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// `kvsim fault disk` in `--mode dynamo`: the node stops with a storage fault at its next
/// write and the supervisor restarts it from its data; a sticky failure makes the supervisor
/// give up after its restart intensity, status says why, and after `heal` a person's restart
/// brings the node back. Writes stay available throughout (the other replicas take them) and
/// every acknowledged one is read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_stops_a_node_and_the_supervisor_restarts_it() {
    let cluster = start("lww", QUICK).await;
    create_table(&cluster).await;
    let mut written = Vec::new();
    let mut next = 0;
    // Writes until `done` holds, each one acknowledged (W=2 of the N=3 replicas suffice).
    macro_rules! write_until {
        ($what:expr, $done:expr) => {{
            let start = Instant::now();
            loop {
                let pk = format!("k{next}");
                next += 1;
                let a = call(&cluster, 1, "PutItem", put(&pk, json!({}))).await;
                if a.status == 200 {
                    written.push(pk);
                }
                if $done {
                    break;
                }
                assert!(
                    start.elapsed() < DEADLINE,
                    "timed out waiting until {}",
                    $what
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }};
    }

    admin(&cluster, "/admin/nodes/3/fail-disk").await;
    write_until!("node 3 is restarted by the supervisor", {
        let s = status(&cluster, 3).await;
        s["supervision"]["nodes"][2]["restarts"] == json!(1) && s["running"] == json!(true)
    });
    let kinds = events(&cluster).await;
    for kind in ["node_failed", "node_restarting", "node_restarted"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} event in {kinds:?}"
        );
    }

    admin(&cluster, "/admin/nodes/3/fail-disk-sticky").await;
    write_until!("the supervisor gives up on node 3", {
        let s = status(&cluster, 3).await;
        s["supervision"]["nodes"][2]["gave_up"].is_string() && s["running"] == json!(false)
    });
    // Its disk fails the restart itself: status says so.
    let s = status(&cluster, 3).await;
    assert!(
        s["start_failure"]
            .as_str()
            .unwrap_or_default()
            .contains("simulated disk failure"),
        "{s}"
    );
    assert_eq!(s["failing_disk"], json!(true));
    admin(&cluster, "/admin/faults/heal").await;
    admin(&cluster, "/admin/nodes/3/restart").await;
    let s = status(&cluster, 3).await;
    assert_eq!(s["running"], json!(true), "{s}");
    assert_eq!(s["failing_disk"], json!(false), "{s}");
    // Node 3 is suspected by the others until its probes are answered again.
    suspected_by_all(&cluster, &[1, 2, 3, 4, 5], &[]).await;
    for pk in &written {
        let mut k = key(pk);
        k["ConsistentRead"] = json!(true);
        let got = ok(&cluster, 2, "GetItem", k).await;
        assert!(got.get("Item").is_some(), "acknowledged {pk} is gone");
    }
}

/// Every node crashed, then every node restarted: each comes back with everything it had
/// acknowledged (its commits are durable ones, even in memory), so every item is read back
/// though no node was left up to repair the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_restarted_from_their_data_keep_every_acknowledged_write() {
    let cluster = start("lww", QUICK).await;
    create_table(&cluster).await;
    for i in 0..20 {
        ok(
            &cluster,
            1 + i % 5,
            "PutItem",
            put(&format!("k{i}"), json!({"i": {"N": i.to_string()}})),
        )
        .await;
    }
    for n in 1..=5 {
        cluster.crash_node(n, n).await.expect("the node crashes");
    }
    for n in 1..=5 {
        cluster.restart_node(n).await.expect("the node restarts");
    }
    for i in 0..20 {
        let mut read = key(&format!("k{i}"));
        read["ConsistentRead"] = json!(true);
        let got = ok(&cluster, 1 + (i + 2) % 5, "GetItem", read).await;
        assert_eq!(got["Item"]["i"], json!({"N": i.to_string()}), "k{i}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_shard_per_node_and_prints_each_change_once() {
    let cluster = start("lww", PATIENT).await;
    let stream = json!({"StreamSpecification":
        {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"}});
    ok(&cluster, 1, "CreateTable", create_tab(stream)).await;
    let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_kvsim"))
        .args([
            "watch",
            "--table-name",
            "Tab",
            "--target-addr",
            &cluster.addrs()[&2],
            "--from",
            "trim-horizon",
            "--count",
            "5",
            "--output",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start kvsim watch");
    let writes = [
        ("PutItem", put("a", json!({"n": {"N": "1"}}))),
        ("PutItem", put("b", json!({}))),
        ("PutItem", put("a", json!({"n": {"N": "1"}}))), // unchanged: no record
        (
            "UpdateItem",
            json!({"TableName": "Tab", "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET n = :n",
                   "ExpressionAttributeValues": {":n": {"N": "3"}}}),
        ),
        ("PutItem", put("c", json!({}))),
        ("DeleteItem", key("a")),
    ];
    for (i, (op, input)) in writes.into_iter().enumerate() {
        ok(&cluster, 1 + i as u64 % 5, op, input).await;
    }
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = watch.try_wait().expect("wait for the watch") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = watch.kill();
            panic!("kvsim watch did not print 5 changes in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "kvsim watch exited with {status}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut watch.stdout.take().expect("stdout"), &mut out)
        .expect("read the watch's output");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    // Each item's changes in order (different items' may interleave: one shard per node).
    let of = |pk: &str| -> Vec<(String, Value)> {
        lines
            .iter()
            .filter(|l| l["keys"]["pk"] == pk)
            .map(|l| {
                (
                    l["event"].as_str().unwrap_or("").to_string(),
                    l["new"]["n"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        of("a"),
        vec![
            ("INSERT".to_string(), json!(1)),
            ("MODIFY".to_string(), json!(3)),
            ("REMOVE".to_string(), Value::Null),
        ],
        "{out}"
    );
    assert_eq!(of("b"), vec![("INSERT".to_string(), Value::Null)], "{out}");
    assert_eq!(of("c"), vec![("INSERT".to_string(), Value::Null)], "{out}");
    let modify = lines
        .iter()
        .find(|l| l["event"] == "MODIFY")
        .expect("the MODIFY line");
    assert_eq!(
        modify["json_patch"],
        json!([{"op": "replace", "path": "/n", "value": 3}])
    );
    assert_eq!(modify["version"], Value::Null, "versions are clocks here");
    cluster.shutdown().await;
}

/// What node 1 holds, owned or as hints, of the partitions beginning with `prefix` (gathered
/// from every node as a Scan does): the keys of the items there.
async fn held_under(cluster: &LeaderlessCluster, prefix: Vec<u8>) -> usize {
    match cluster.node(1).expect("node 1 runs").scan(prefix).await {
        Ok(kvsim::dynamo::node::Done::Listed { items }) => items.len(),
        other => panic!("a scan finished as {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tables_items_are_collected_even_once_its_name_is_reused() {
    let cluster = start("lww", PATIENT).await;
    create_table(&cluster).await;
    for i in 0..20 {
        ok(
            &cluster,
            1 + i % 5,
            "PutItem",
            put(&format!("k{i}"), json!({})),
        )
        .await;
    }
    let node = cluster.node(1).expect("node 1 runs");
    let old = kvsim::dynamo::service::table(&node, "Tab", true)
        .await
        .expect("the table");
    let old_prefix = kvsim::dynamo::service::table_prefix_of(&old);
    assert_eq!(held_under(&cluster, old_prefix.clone()).await, 20);
    ok(&cluster, 2, "DeleteTable", json!({"TableName": "Tab"})).await;
    // The name is reused as soon as it may be (the old table is DELETING for two seconds),
    // before the sweeper collects the old items: they are collected all the same.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let a = call(&cluster, 3, "CreateTable", create_tab(json!({}))).await;
        if a.status == 200 {
            break;
        }
        assert_eq!(a.error_type(), "ResourceInUseException", "{}", a.body);
        assert!(Instant::now() < deadline, "the name never became free");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ok(&cluster, 4, "PutItem", put("new", json!({}))).await;
    eventually("the old table's items collected", || async {
        held_under(&cluster, old_prefix.clone()).await == 0
    })
    .await;
    assert!(
        events(&cluster)
            .await
            .contains(&"deleted_table_collected".to_string())
    );
    let got = ok(&cluster, 5, "GetItem", key("new")).await;
    assert_eq!(
        got["Item"]["pk"],
        json!({"S": "new"}),
        "the new table keeps its item"
    );
    cluster.shutdown().await;
}
