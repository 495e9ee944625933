//! A node under hostile or careless clients: slow and half-open connections are closed, a flood
//! of idle connections does not stop it serving others, oversized and garbage requests get a
//! 4xx in DynamoDB's shape, and the node stays up through all of it.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_half_open_connections_are_closed_and_others_are_served() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let addr = tc.addr(leader);
    // A client that starts a request and never finishes its headers.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(
        b"POST / HTTP/1.1\r\nHost: kvsim\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n",
    )
    .await
    .expect("partial headers");
    // Meanwhile others are served.
    let (status, _) = tc.call(leader, "ListTables", json!({})).await;
    assert_eq!(status, 200);
    // The server closes the slow connection (EOF or an error response, then EOF).
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => continue,
            Err(_) => panic!(
                "a half-open request was still open after {:?}",
                started.elapsed()
            ),
        }
    }
    tc.cluster.shutdown().await;
}

/// Sends one `GET /status` on an open connection and returns the status code of the answer.
async fn status_on(conn: &mut TcpStream) -> Option<u16> {
    conn.write_all(b"GET /status HTTP/1.1\r\nHost: kvsim\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 64 << 10];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let head = std::str::from_utf8(buf.get(..n)?).ok()?;
    head.split(' ').nth(1)?.parse().ok()
}

/// The connection cap itself: with `max_connections` open (and kept, by a long header
/// timeout), the next connection is answered 503 and closed at once, while every one of the
/// first ones stays open and is served. Without the cap the extra connection would be held
/// open, silent, and this test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_is_refused_at_once_and_the_others_stay_open() {
    const CAP: usize = 64;
    let tc = TestCluster::start_with(kvsim::config::Tuning {
        max_connections: CAP,
        header_timeout: Duration::from_secs(120),
        ..common::test_tuning()
    })
    .await;
    let leader = tc.leader().await;
    let addr = tc.addr(leader);
    // Peer connections count too: the other nodes' transports hold some of the slots.
    let mut held = Vec::new();
    let refused_at = loop {
        assert!(
            held.len() <= CAP,
            "more than {CAP} connections were accepted"
        );
        let mut conn = TcpStream::connect(&addr).await.expect("connect");
        let started = Instant::now();
        // A connection is either served (it holds a slot) or refused with a 503 and closed.
        match status_on(&mut conn).await {
            Some(200) => held.push(conn),
            Some(503) => {
                let mut rest = Vec::new();
                let closed =
                    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
                assert!(
                    matches!(closed, Ok(Ok(_))),
                    "the refused connection is closed"
                );
                break started.elapsed();
            }
            other => panic!("connection {} got {other:?}", held.len() + 1),
        }
    };
    assert!(
        refused_at < Duration::from_secs(5),
        "refused at once, not after a timeout: {refused_at:?}"
    );
    assert!(
        held.len() > CAP / 2,
        "only {} connections were served",
        held.len()
    );
    // Every connection that got in is still open and served.
    for (i, conn) in held.iter_mut().enumerate() {
        assert_eq!(status_on(conn).await, Some(200), "held connection {i}");
    }
    // Closing one frees its slot for a newcomer.
    drop(held.pop());
    common::eventually(Duration::from_secs(10), "a freed slot", || async {
        let mut conn = TcpStream::connect(&addr).await.ok()?;
        (status_on(&mut conn).await == Some(200)).then_some(())
    })
    .await;
    drop(held);
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_do_not_stop_the_node() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let addr = tc.addr(leader);
    let mut idle = Vec::new();
    for _ in 0..2500 {
        match TcpStream::connect(&addr).await {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    // A new client is served (at the latest once idle connections time out).
    common::eventually(
        Duration::from_secs(30),
        "a request through the flooded node",
        || async {
            let resp = tc
                .http
                .get(format!("http://{addr}/status"))
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .ok()?;
            (resp.status().as_u16() == 200).then_some(())
        },
    )
    .await;
    drop(idle);
    // And the cluster still works.
    let (status, body) = tc.call(leader, "ListTables", json!({})).await;
    assert_eq!(status, 200, "{body}");
    tc.cluster.shutdown().await;
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(serde_json::Value::String),
        prop_oneof![
            Just("S"),
            Just("N"),
            Just("B"),
            Just("SS"),
            Just("M"),
            Just("L"),
            Just("NULL")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("TableName".to_string()),
                    Just("Item".to_string()),
                    Just("Key".to_string()),
                    Just("KeyConditionExpression".to_string()),
                    Just("ExpressionAttributeValues".to_string()),
                    Just("ExpressionAttributeNames".to_string()),
                    Just("Limit".to_string()),
                    Just("ExclusiveStartKey".to_string()),
                    Just("S".to_string()),
                    Just("N".to_string()),
                    "[a-z#:]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Random DynamoDB-ish JSON bodies for every operation: never a 5xx, a dropped connection or a
/// dead node; always a 4xx in DynamoDB's error shape (or a 200). The cases come from proptest
/// strategies driven by a printed seed (`KVSIM_TEST_SEED` replays it); a failure prints the
/// seed and the offending body (it is not shrunk: the cluster's state moves on between cases).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_request_bodies_always_get_a_dynamodb_shaped_answer() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Fuzz", ("pk", "S"), Some(("sk", "N")))
        .await;
    let ops = [
        "CreateTable",
        "DeleteTable",
        "DescribeTable",
        "ListTables",
        "PutItem",
        "GetItem",
        "DeleteItem",
        "Query",
        "Scan",
    ];
    let seed: u64 = std::env::var("KVSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed} (rerun with KVSIM_TEST_SEED={seed})");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        proptest::test_runner::Config::default(),
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &seed_bytes,
        ),
    );
    let strategy = (0..ops.len(), json_value(), any::<bool>());
    let mut cases = Vec::new();
    for _ in 0..300 {
        let tree = strategy.new_tree(&mut runner).expect("case");
        cases.push(tree.current());
    }
    for (op, mut body, fix_table) in cases {
        if fix_table && let Some(obj) = body.as_object_mut() {
            obj.insert("TableName".into(), json!("Fuzz"));
        }
        let (status, answer) = tc.call(leader, ops[op], body.clone()).await;
        assert!(
            status == 200 || (400..500).contains(&status),
            "seed {seed}: {} {body} -> {status} {answer}",
            ops[op]
        );
        if status != 200 {
            let t = answer["__type"].as_str().unwrap_or_default();
            assert!(
                t.contains('#') && answer["message"].is_string(),
                "seed {seed}: {} {body} -> {answer}",
                ops[op]
            );
        }
    }
    // The node is still healthy and consistent.
    let (status, _) = tc.call(leader, "ListTables", json!({})).await;
    assert_eq!(status, 200);
    tc.cluster.shutdown().await;
}
