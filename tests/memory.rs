//! A node under adversarial request bodies: sixteen concurrent 16 MiB bodies built to blow up
//! in decoding (huge arrays of small numbers, deep nesting, long strings, many tiny maps) get
//! a 4xx each, the server process stays under 512 MB of resident memory at its peak (read from
//! `/proc`), and GetItems on the same node keep succeeding throughout.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::process::{
    Server, call, call_raw, create_table, free_base_port, status, wait_converged,
};
use serde_json::json;

/// Just under DynamoDB's 16 MiB request limit, so each body is read and decoded, not refused
/// for its size.
const BODY: usize = (16 << 20) - 4096;

/// `prefix`, then `unit` repeated to fill [`BODY`], then `suffix`.
fn body(prefix: &str, unit: &str, suffix: &str) -> Vec<u8> {
    let n = (BODY - prefix.len() - suffix.len()) / unit.len();
    let mut b = Vec::with_capacity(BODY);
    b.extend_from_slice(prefix.as_bytes());
    for _ in 0..n {
        b.extend_from_slice(unit.as_bytes());
    }
    b.extend_from_slice(suffix.as_bytes());
    b
}

const V: &str = "com.amazon.coral.validate#ValidationException";
const SER: &str = "com.amazon.coral.service#SerializationException";

/// The adversarial requests: what each is, its operation, its body (built to make a naive
/// decoder allocate many times its size), and the error it gets when it is alone: the
/// decoder's own limits refuse it, not the memory budget.
fn adversaries() -> Vec<(&'static str, &'static str, Vec<u8>, &'static str)> {
    let item = r#"{"TableName":"Mem","Item":{"pk":{"S":"x"},"a":"#;
    vec![
        (
            "small numbers where attribute names belong",
            "GetItem",
            body(
                r#"{"TableName":"Mem","Key":{"pk":{"S":"x"}},"AttributesToGet":[0"#,
                ",0",
                "]}",
            ),
            SER,
        ),
        (
            "small numbers in an item",
            "PutItem",
            body(
                &format!(r#"{item}{{"L":[{{"N":"0"}}"#),
                r#",{"N":"0"}"#,
                "]}}}",
            ),
            V,
        ),
        (
            "a number set",
            "PutItem",
            body(&format!(r#"{item}{{"NS":["0""#), r#","1""#, "]}}}"),
            V,
        ),
        (
            "deep nesting in an item",
            "PutItem",
            body(item, r#"{"L":["#, ""),
            V,
        ),
        (
            "deep nesting in a skipped member",
            "PutItem",
            body(r#"{"TableName":"Mem","Expected":"#, "[", ""),
            SER,
        ),
        (
            "a long table name",
            "DescribeTable",
            body(r#"{"TableName":""#, "a", r#""}"#),
            V,
        ),
        (
            "a long escaped string",
            "PutItem",
            body(&format!(r#"{item}{{"S":""#), r"\u0061", r#""}}}"#),
            V,
        ),
        (
            "many tiny maps",
            "PutItem",
            body(
                &format!(r#"{item}{{"M":{{"k":{{"NULL":true}}"#),
                r#","k":{"M":{}}"#,
                "}}}}",
            ),
            V,
        ),
        (
            "many placeholder names",
            "Query",
            body(
                r##"{"TableName":"Mem","KeyConditionExpression":"pk = :v","ExpressionAttributeValues":{":v":{"S":"x"}},"ExpressionAttributeNames":{"#a":"a""##,
                r##","#b":"b""##,
                "}}",
            ),
            V,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adversarial_bodies_get_4xx_within_a_memory_bound_while_gets_go_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let server = Server::start(dir.path(), base, &[]);
    let http = reqwest::Client::new();
    wait_converged(&http, base).await;
    create_table(&http, base, "Mem", "pk").await;
    let put = call(
        &http,
        base,
        "PutItem",
        json!({"TableName": "Mem", "Item": {"pk": {"S": "x"}, "v": {"N": "1"}}}),
    )
    .await;
    assert_eq!(put.map(|p| p.0), Some(200));
    // Every adversary goes to the leader, where it is decoded rather than forwarded.
    let mut leader = None;
    for i in 0..3 {
        if status(&http, base + i)
            .await
            .is_some_and(|s| s["role"] == "leader")
        {
            leader = Some(base + i);
        }
    }
    let port = leader.expect("a leader");
    wait_converged(&http, base).await;
    let before = server.proc_status_bytes("VmRSS");
    // The server turned transparent huge pages off for itself (see main.rs), on every kernel
    // that reports the setting (Linux 5.0 and later).
    let proc_status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("/proc/<pid>/status");
    if let Some(thp) = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
    {
        assert_eq!(
            thp.trim(),
            "0",
            "transparent huge pages still on for the server"
        );
    }

    // A reader keeps reading from the same node until the barrage is over.
    let done = Arc::new(AtomicBool::new(false));
    let gets = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (http, done, gets) = (http.clone(), done.clone(), gets.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let got = call(
                    &http,
                    port,
                    "GetItem",
                    json!({"TableName": "Mem", "Key": {"pk": {"S": "x"}}}),
                )
                .await;
                match got {
                    Some((200, b)) if b["Item"]["v"]["N"] == "1" => {
                        gets.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failures.push(format!("{other:?}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        })
    };

    // One at a time, each is refused by the decoder's limits.
    let kinds = adversaries();
    for (what, op, bytes, want) in &kinds {
        let answer = call_raw(&http, port, op, bytes.clone()).await;
        let Some((status, body)) = answer else {
            panic!("{what} ({op}): no answer");
        };
        assert_eq!(
            (status, body["__type"].as_str()),
            (400, Some(*want)),
            "{what}: {body}"
        );
    }
    let alone = server.proc_status_bytes("VmHWM");

    // Sixteen at once.
    let mut senders = Vec::new();
    for i in 0..16 {
        let (what, op, bytes, _) = &kinds[i % kinds.len()];
        let (http, what, op, bytes) = (http.clone(), *what, *op, bytes.clone());
        senders.push(tokio::spawn(async move {
            (what, op, call_raw(&http, port, op, bytes).await)
        }));
    }
    let mut answers = Vec::new();
    for s in senders {
        answers.push(s.await.expect("sender"));
    }
    done.store(true, Ordering::Relaxed);
    let failures = reader.await.expect("reader");

    let peak = server.proc_status_bytes("VmHWM");
    for (what, op, answer) in &answers {
        let Some((status, body)) = answer else {
            panic!("{what} ({op}): no answer");
        };
        assert!(
            (400..500).contains(status),
            "{what} ({op}): {status} {body}"
        );
        assert!(
            body["__type"].as_str().is_some_and(|t| t.contains('#')),
            "{what} ({op}): {body}"
        );
    }
    assert!(
        failures.is_empty(),
        "GetItems failed during the barrage: {failures:?}"
    );
    assert!(
        gets.load(Ordering::Relaxed) > 0,
        "no GetItem completed during the barrage"
    );
    println!(
        "RSS before {} MiB, peak {} MiB after one at a time, {} MiB after all at once; {} \
         GetItems during the barrage; answers: {:?}",
        before >> 20,
        alone >> 20,
        peak >> 20,
        gets.load(Ordering::Relaxed),
        answers
            .iter()
            .map(|(w, _, a)| (w, a.as_ref().map(|(s, b)| (s, b["__type"].clone()))))
            .collect::<Vec<_>>()
    );
    assert!(
        peak < 512 << 20,
        "the server's peak RSS was {} MiB (before: {} MiB)",
        peak >> 20,
        before >> 20
    );
    // The node is still healthy.
    let (s, _) = call(&http, port, "ListTables", json!({}))
        .await
        .expect("answer");
    assert_eq!(s, 200);
    drop(server);
}
