//! Request tracing in the real binary: with `--log-format json` and `RUST_LOG=kvsim=debug`,
//! each request's end is one JSON log line carrying the id its client got in
//! `x-amzn-RequestId`, its operation, table, node and outcome.

mod common;

use std::time::Duration;

use common::eventually;
use common::process::{Server, create_table, free_base_port, wait_converged};
use serde_json::{Value, json};

/// The `request done` log line of request `id`, if the log has it yet.
fn done_line(log: &str, id: &str) -> Option<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|v| v["fields"]["message"] == "request done" && v["span"]["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_each_requests_id_operation_table_and_outcome() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let log = dir.path().join("server.log");
    let mut server = Server::start_with_env(
        dir.path(),
        base,
        &log,
        &["--log-format", "json"],
        &[("RUST_LOG", "kvsim=debug")],
    );
    let http = reqwest::Client::new();
    wait_converged(&http, base).await;
    create_table(&http, base, "Traced", "k").await;
    // At the leader: a follower forwards writes before reading their table's name (the
    // leader's own line for the forwarded request has it).
    let status: Value = serde_json::from_slice(
        &http
            .get(format!("http://127.0.0.1:{base}/status"))
            .send()
            .await
            .expect("status")
            .bytes()
            .await
            .expect("status body"),
    )
    .expect("status JSON");
    let leader = status["leader_id"].as_u64().expect("a leader") as u16;
    let port = base + leader - 1;

    let send = |table: &'static str| {
        let http = http.clone();
        async move {
            let resp = http
                .post(format!("http://127.0.0.1:{port}/"))
                .header("X-Amz-Target", "DynamoDB_20120810.PutItem")
                .header("Content-Type", "application/x-amz-json-1.0")
                .body(json!({"TableName": table, "Item": {"k": {"S": "a"}}}).to_string())
                .send()
                .await
                .expect("PutItem");
            let id = resp
                .headers()
                .get("x-amzn-requestid")
                .and_then(|v| v.to_str().ok())
                .expect("a request id")
                .to_string();
            (resp.status().as_u16(), id)
        }
    };
    let (status, ok_id) = send("Traced").await;
    assert_eq!(status, 200);
    let (status, missing_id) = send("Missing").await;
    assert_eq!(status, 400);
    assert_ne!(ok_id, missing_id);
    assert_eq!(ok_id.len(), 52, "{ok_id}");

    let line_of = |id: String| {
        let log = log.clone();
        async move {
            eventually(
                Duration::from_secs(10),
                "the request's log line",
                || async { done_line(&std::fs::read_to_string(&log).unwrap_or_default(), &id) },
            )
            .await
        }
    };
    let ok = line_of(ok_id).await;
    assert_eq!(ok["span"]["op"], "PutItem", "{ok}");
    assert_eq!(ok["span"]["table"], "Traced", "{ok}");
    assert_eq!(ok["span"]["node"], u64::from(leader), "{ok}");
    assert_eq!(ok["fields"]["outcome"], "ok", "{ok}");
    assert_eq!(ok["fields"]["status"], 200, "{ok}");
    let missing = line_of(missing_id).await;
    assert_eq!(missing["span"]["table"], "Missing", "{missing}");
    assert_eq!(
        missing["fields"]["outcome"], "ResourceNotFoundException",
        "{missing}"
    );
    server.kill();
}
