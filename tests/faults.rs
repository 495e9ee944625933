//! The simulator controls, driven through the real CLI against an in-process cluster: crash
//! and restart (failover), isolating the leader (partition), delaying a follower (stale
//! reads), error injection, and the events and status that show each of them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestCluster, cli, cli_ok, eventually, test_tuning};
use kvsim::cluster::AdminPolicy;
use serde_json::{Value, json};

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `kvsim events --output json` through `addr`.
async fn events(addr: &str) -> Vec<Value> {
    let out = cli_ok(&["events", "--target-addr", addr, "--output", "json"]).await;
    json_of(&out).as_array().cloned().unwrap_or_default()
}

fn has_event(events: &[Value], kind: &str, detail_part: &str) -> bool {
    events.iter().any(|e| {
        e["kind"] == kind
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains(detail_part))
    })
}

/// `kvsim fault delay --node NODE --ms MS`, sent through `addr`.
async fn delay(addr: &str, node: u64, ms: u64) {
    cli_ok(&[
        "fault",
        "delay",
        "--node",
        &node.to_string(),
        "--ms",
        &ms.to_string(),
        "--target-addr",
        addr,
    ])
    .await;
}

/// `kvsim fault isolate --node NODE`, sent through `addr`.
async fn isolate(addr: &str, node: u64) {
    cli_ok(&[
        "fault",
        "isolate",
        "--node",
        &node.to_string(),
        "--target-addr",
        addr,
    ])
    .await;
}

async fn put(addr: &str, table: &str, item: &str) {
    cli_ok(&[
        "put-item",
        "--target-addr",
        addr,
        "--table-name",
        table,
        "--item-data",
        item,
    ])
    .await;
}

/// The leader's id and term once one is elected among the running nodes, other than `not`.
async fn new_leader(tc: &TestCluster, not: u64, old_term: u64) -> (u64, u64) {
    eventually(
        Duration::from_secs(15),
        "a new leader with a newer term",
        || async {
            tc.cluster
                .handles()
                .into_iter()
                .filter(|h| h.id != not && h.is_leader())
                .filter_map(|h| h.published().raft.map(|r| (h.id, r.term)))
                .find(|(_, term)| *term > old_term)
        },
    )
    .await
}

fn term_of(tc: &TestCluster, id: u64) -> u64 {
    tc.cluster
        .node(id)
        .and_then(|h| h.published().raft)
        .map_or(0, |r| r.term)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_the_leader_elects_another_and_the_restarted_node_catches_up() {
    let tc = TestCluster::start().await;
    let old = tc.leader().await;
    let other = tc.addr(tc.other_than(old));
    cli_ok(&[
        "create-table",
        "--target-addr",
        &other,
        "--table-name",
        "Songs",
        "--partition-key-name",
        "k",
        "--output",
        "json",
    ])
    .await;
    for i in 0..20 {
        put(&other, "Songs", &format!(r#"{{"k":"before-{i}"}}"#)).await;
    }
    let old_term = term_of(&tc, old);

    let out = cli_ok(&[
        "fault",
        "crash",
        "--node",
        &old.to_string(),
        "--target-addr",
        &other,
    ])
    .await;
    assert!(out.contains(&format!("crashed node {old}")), "{out}");
    // The crashed node's port refuses connections, as a dead process's would.
    let run = cli(&["status", "--target-addr", &tc.addr(old)]).await;
    assert_eq!(
        run.code, 3,
        "a crashed node does not answer: {}",
        run.stderr
    );
    assert!(run.stderr.contains("connection refused"), "{}", run.stderr);

    let (new, new_term) = new_leader(&tc, old, old_term).await;
    assert_ne!(new, old);
    for i in 0..20 {
        put(&other, "Songs", &format!(r#"{{"k":"after-{i}"}}"#)).await;
    }

    let out = cli_ok(&[
        "fault",
        "restart",
        "--node",
        &old.to_string(),
        "--target-addr",
        &other,
    ])
    .await;
    assert!(out.contains(&format!("restarted node {old}")), "{out}");
    tc.converged().await;
    let items = tc.scan_all(old, "Songs").await;
    assert_eq!(items.len(), 40, "the restarted node caught up");
    tc.assert_identical();

    // Status and events tell the story.
    let status = json_of(
        &cli_ok(&[
            "status",
            "--target-addr",
            &other,
            "--all",
            "--output",
            "json",
        ])
        .await,
    );
    let nodes = status.as_array().expect("array");
    assert_eq!(nodes.iter().filter(|n| n["role"] == "leader").count(), 1);
    assert!(
        nodes
            .iter()
            .all(|n| n["leader_id"] == new && n["term"] == new_term),
        "{status}"
    );
    let ev = events(&other).await;
    assert!(
        has_event(&ev, "node_crashed", &format!("node {old} crashed")),
        "{ev:?}"
    );
    assert!(
        has_event(&ev, "node_restarted", &format!("node {old} restarted")),
        "{ev:?}"
    );
    assert!(
        has_event(
            &ev,
            "leader_elected",
            &format!("node {new} won the election for term {new_term}")
        ),
        "{ev:?}"
    );
    let times: Vec<u64> = ev.iter().filter_map(|e| e["time_ms"].as_u64()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "events are merged by time"
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_steps_down_and_its_writes_are_never_acknowledged() {
    let tc = TestCluster::start().await;
    let old = tc.leader().await;
    let old_addr = tc.addr(old);
    let majority: Vec<u64> = tc.running().into_iter().filter(|id| *id != old).collect();
    let via = tc.addr(majority[0]);
    cli_ok(&[
        "create-table",
        "--target-addr",
        &via,
        "--table-name",
        "Cut",
        "--partition-key-name",
        "k",
        "--output",
        "json",
    ])
    .await;
    let old_term = term_of(&tc, old);

    isolate(&via, old).await;
    // A write sent to the isolated leader right away: it cannot reach a majority.
    let http = tc.http.clone();
    let refused = tokio::spawn(async move {
        common::call_addr(
            &http,
            &old_addr,
            "PutItem",
            json!({"TableName": "Cut", "Item": {"k": {"S": "refused"}}}),
        )
        .await
    });

    let (new, _) = new_leader(&tc, old, old_term).await;
    // What a user sees in `kvsim status`: the majority's new leader in a later term (the other
    // majority node learns it with the first append, so poll), and the cut-off old leader no
    // longer leading (check-quorum).
    eventually(
        Duration::from_secs(15),
        "the majority to agree on the new leader in status",
        || {
            let via = via.clone();
            async move {
                let all = json_of(
                    &cli_ok(&["status", "--all", "--target-addr", &via, "--output", "json"]).await,
                );
                let majority_view: Vec<Value> = all
                    .as_array()
                    .map(|a| a.iter().filter(|n| n["node_id"] != old).cloned().collect())
                    .unwrap_or_default();
                (majority_view.len() == 2
                    && majority_view
                        .iter()
                        .all(|n| n["leader_id"] == new && n["term"].as_u64() > Some(old_term)))
                .then_some(())
            }
        },
    )
    .await;
    let old_status = tc.addr(old);
    eventually(
        Duration::from_secs(15),
        "the isolated leader to step down",
        || {
            let addr = old_status.clone();
            async move {
                let s =
                    json_of(&cli_ok(&["status", "--target-addr", &addr, "--output", "json"]).await);
                (s["role"] != "leader").then_some(())
            }
        },
    )
    .await;
    let mut acked = BTreeSet::new();
    for i in 0..20 {
        let k = format!("majority-{i}");
        put(&tc.addr(new), "Cut", &format!(r#"{{"k":"{k}"}}"#)).await;
        acked.insert(k);
    }
    // Through the isolated node, a client asking for a hint learns there is no leader.
    let body = json!({"TableName": "Cut", "Item": {"k": {"S": "hinted"}}}).to_string();
    let resp = tc
        .http
        .post(format!("http://{}/", tc.addr(old)))
        .header("X-Amz-Target", "DynamoDB_20120810.PutItem")
        .header("x-kvsim-redirect", "hint")
        .body(body)
        .send()
        .await
        .expect("the isolated node still answers clients");
    assert_eq!(resp.status().as_u16(), 421);
    let hint: Value = serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json");
    assert_eq!(hint["__type"], "kvsim#NotLeaderException");

    // Faults show in every node's status while they last.
    let status =
        json_of(&cli_ok(&["status", "--target-addr", &tc.addr(old), "--output", "json"]).await);
    assert!(
        status["faults"].as_array().is_some_and(|f| f
            .iter()
            .any(|x| x.as_str().is_some_and(|s| s.starts_with("partition")))),
        "{status}"
    );

    cli_ok(&["fault", "heal", "--target-addr", &via]).await;
    let (status, body) = refused.await.expect("refused write finished");
    assert!(
        status >= 500,
        "a write to an isolated leader must fail retryably, got {status} {body}"
    );
    tc.converged().await;
    for id in tc.running() {
        let keys: BTreeSet<String> = tc
            .scan_all(id, "Cut")
            .await
            .iter()
            .filter_map(|i| i["k"]["S"].as_str().map(str::to_string))
            .collect();
        assert_eq!(
            keys, acked,
            "node {id} holds every acknowledged write and nothing refused"
        );
    }
    let ev = events(&via).await;
    assert!(
        has_event(&ev, "fault_set", &format!("isolated node {old}")),
        "{ev:?}"
    );
    assert!(
        has_event(
            &ev,
            "leader_elected",
            &format!("node {new} won the election")
        ),
        "{ev:?}"
    );
    assert!(
        has_event(&ev, "fault_healed", "healed the network"),
        "{ev:?}"
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_refuses_writes_instead_of_forwarding_them() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let follower = tc.other_than(leader);
    let l = tc.addr(leader);
    cli_ok(&[
        "create-table",
        "--target-addr",
        &l,
        "--table-name",
        "Fwd",
        "--partition-key-name",
        "k",
        "--output",
        "json",
    ])
    .await;
    tc.converged().await;
    isolate(&l, follower).await;
    // An SDK-style write (no hint header) to the cut-off follower: forwarding it to the leader
    // crosses the cut link, so it is refused, retryably, whether or not the follower has
    // noticed yet that it lost its leader.
    let (status, body) = common::call_addr(
        &tc.http,
        &tc.addr(follower),
        "PutItem",
        json!({"TableName": "Fwd", "Item": {"k": {"S": "cut"}}}),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["__type"]
            .as_str()
            .is_some_and(|t| t.ends_with("ServiceUnavailable")),
        "{body}"
    );
    cli_ok(&["fault", "heal", "--target-addr", &l]).await;
    tc.converged().await;
    for id in tc.running() {
        assert!(
            tc.scan_all(id, "Fwd").await.is_empty(),
            "node {id}: the refused write was never applied"
        );
    }
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_follower_serves_stale_reads_until_healed() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let follower = tc.other_than(leader);
    let (l, f) = (tc.addr(leader), tc.addr(follower));
    cli_ok(&[
        "create-table",
        "--target-addr",
        &l,
        "--table-name",
        "Lag",
        "--partition-key-name",
        "k",
        "--output",
        "json",
    ])
    .await;
    put(&l, "Lag", r#"{"k":"x","v":"old"}"#).await;
    tc.converged().await;

    // Long enough that no loaded machine can outlast it: the heal below ends it.
    delay(&l, follower, 60000).await;
    put(&l, "Lag", r#"{"k":"x","v":"new"}"#).await;
    let get = |addr: String, consistent: bool| async move {
        let mut args = vec![
            "get-item",
            "--target-addr",
            &addr,
            "--table-name",
            "Lag",
            "--partition-key",
            "x",
            "--output",
            "json",
        ];
        if consistent {
            args.push("--consistent");
        }
        json_of(&cli_ok(&args).await)["v"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(
        get(f.clone(), false).await.as_deref(),
        Some("old"),
        "the delayed follower is stale"
    );
    assert_eq!(
        get(f.clone(), true).await.as_deref(),
        Some("new"),
        "a consistent read is fresh"
    );
    let status = json_of(&cli_ok(&["status", "--target-addr", &f, "--output", "json"]).await);
    assert!(status["faults"].as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x.as_str().is_some_and(|s| s.starts_with("delay")))
    }));

    cli_ok(&["fault", "heal", "--target-addr", &l]).await;
    eventually(Duration::from_secs(15), "the follower to converge", || {
        let f = f.clone();
        async move { (get(f, false).await.as_deref() == Some("new")).then_some(()) }
    })
    .await;

    // Healing ends a delay at once, even for messages already waiting: with a 60 s delay in
    // force, the follower falls behind (its own status shows the lag), and converges within
    // seconds of the heal, long before the delay would have run out.
    delay(&l, follower, 60000).await;
    put(&l, "Lag", r#"{"k":"x","v":"newer"}"#).await;
    let table = cli_ok(&["status", "--target-addr", &f]).await;
    let row = table
        .lines()
        .find(|line| line.starts_with(&format!("| {follower} ")))
        .unwrap_or_else(|| panic!("no row for node {follower}: {table}"));
    let lag: u64 = row
        .split('|')
        .nth(8)
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or_else(|| panic!("no lag in {row:?}"));
    assert!(lag > 0, "the delayed follower shows its lag: {table}");
    assert!(
        row.contains("delay 60000ms"),
        "the follower's row names its fault: {table}"
    );
    cli_ok(&["fault", "heal", "--target-addr", &l]).await;
    eventually(
        Duration::from_secs(15),
        "the follower to converge after the heal",
        || {
            let f = f.clone();
            async move { (get(f, false).await.as_deref() == Some("newer")).then_some(()) }
        },
    )
    .await;
    let ev = events(&l).await;
    assert!(has_event(&ev, "fault_set", "delayed 60000 ms"), "{ev:?}");
    assert!(
        has_event(&ev, "fault_healed", "healed the network"),
        "{ev:?}"
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_fail_requests_with_dynamodb_errors_and_change_nothing() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let l = tc.addr(leader);
    cli_ok(&[
        "create-table",
        "--target-addr",
        &l,
        "--table-name",
        "Inj",
        "--partition-key-name",
        "k",
        "--output",
        "json",
    ])
    .await;
    cli_ok(&[
        "fault",
        "errors",
        "--op",
        "PutItem",
        "--error",
        "ProvisionedThroughputExceededException",
        "--rate",
        "1",
        "--target-addr",
        &l,
    ])
    .await;
    for id in tc.running() {
        let (status, body) = tc
            .call(
                id,
                "PutItem",
                json!({"TableName": "Inj", "Item": {"k": {"S": "no"}}}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["__type"],
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
        );
    }
    // Other operations are untouched, and nothing was written.
    let (status, body) = tc
        .call(
            leader,
            "GetItem",
            json!({"TableName": "Inj", "Key": {"k": {"S": "no"}}}),
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    // Through the CLI the error is named, with the exit code for "retrying later may work".
    let run = cli(&[
        "put-item",
        "--target-addr",
        &l,
        "--table-name",
        "Inj",
        "--item-data",
        r#"{"k":"cli"}"#,
    ])
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("injected") || run.stderr.contains("throughput"),
        "{}",
        run.stderr
    );
    let list = json_of(&cli_ok(&["fault", "list", "--target-addr", &l, "--output", "json"]).await);
    assert_eq!(list["errors"][0]["op"], "PutItem");
    // Every injectable error is one a client may retry: the CLI exits 3 for each.
    for error in kvsim::api::inject::INJECTABLE {
        cli_ok(&["fault", "errors", "--clear", "--target-addr", &l]).await;
        cli_ok(&[
            "fault",
            "errors",
            "--op",
            "GetItem",
            "--error",
            error,
            "--rate",
            "1",
            "--target-addr",
            &l,
        ])
        .await;
        let run = cli(&[
            "get-item",
            "--target-addr",
            &l,
            "--table-name",
            "Inj",
            "--partition-key",
            "cli",
        ])
        .await;
        assert_eq!(run.code, 3, "{error}: {}", run.stderr);
        assert!(run.stderr.contains("injected"), "{error}: {}", run.stderr);
    }
    cli_ok(&["fault", "errors", "--clear", "--target-addr", &l]).await;
    let (status, _) = tc
        .call(
            leader,
            "PutItem",
            json!({"TableName": "Inj", "Item": {"k": {"S": "yes"}}}),
        )
        .await;
    assert_eq!(status, 200);
    // Bad fault commands are refused with one clear line and change nothing.
    let run = cli(&[
        "fault",
        "errors",
        "--op",
        "PutItem",
        "--error",
        "Nope",
        "--rate",
        "1",
        "--target-addr",
        &l,
    ])
    .await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("cannot inject Nope"), "{}", run.stderr);
    let run = cli(&["fault", "partition", "1", "2", "--target-addr", &l]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("node 3 is in none"), "{}", run.stderr);
    let list = json_of(&cli_ok(&["fault", "list", "--target-addr", &l, "--output", "json"]).await);
    assert_eq!(list["faults"], json!([]));
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_leader_moves_leadership() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let target = tc.other_than(leader);
    cli_ok(&[
        "transfer-leader",
        "--to",
        &target.to_string(),
        "--target-addr",
        &tc.addr(leader),
    ])
    .await;
    eventually(Duration::from_secs(15), "the target to lead", || async {
        tc.cluster
            .node(target)
            .filter(|h| h.is_leader())
            .map(|_| ())
    })
    .await;
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_with_no_faults_refuses_fault_commands() {
    let tc = TestCluster::start_with_policy(
        test_tuning(),
        AdminPolicy {
            faults: false,
            remote: false,
        },
    )
    .await;
    let leader = tc.leader().await;
    let addr = tc.addr(leader);
    for args in [
        vec!["fault", "isolate", "--node", "1"],
        vec!["fault", "crash", "--node", "2"],
        vec!["fault", "heal"],
        vec!["transfer-leader", "--to", "3"],
    ] {
        let mut args = args.clone();
        args.extend(["--target-addr", addr.as_str()]);
        let run = cli(&args).await;
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("--no-faults"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // Listing is still allowed, and nothing changed.
    let list =
        json_of(&cli_ok(&["fault", "list", "--target-addr", &addr, "--output", "json"]).await);
    assert_eq!(list["faults"], json!([]));
    assert_eq!(tc.running().len(), 3);
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_prints_new_events_as_they_happen() {
    use std::io::{BufRead, BufReader};
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let addr = tc.addr(leader);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kvsim"))
        .args([
            "events",
            "--follow",
            "--output",
            "json",
            "--target-addr",
            &addr,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kvsim events --follow");
    let stdout = child.stdout.take().expect("stdout");
    // Read lines on a thread; the test sets a fault, then waits for its event to stream by.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    cli_ok(&[
        "fault",
        "drop",
        "--node",
        "2",
        "--rate",
        "0.25",
        "--target-addr",
        &addr,
    ])
    .await;
    let seen = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while let Ok(line) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if event["kind"] == "fault_set" {
                return Some(event);
            }
        }
        None
    })
    .await
    .expect("reader");
    let _ = child.kill();
    let _ = child.wait();
    let event = seen.expect("the fault_set event streamed by within the deadline");
    assert!(
        event["detail"]
            .as_str()
            .is_some_and(|d| d.contains("lose 25% of messages")),
        "{event}"
    );
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_stops_a_node_and_the_supervisor_restarts_it() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let follower = tc.other_than(leader);
    let l = tc.addr(leader);
    cli_ok(&[
        "create-table",
        "--target-addr",
        &l,
        "--table-name",
        "Disk",
        "--partition-key-name",
        "k",
        "--output",
        "json",
    ])
    .await;
    let out = cli_ok(&[
        "fault",
        "disk",
        "--node",
        &follower.to_string(),
        "--target-addr",
        &l,
    ])
    .await;
    assert!(
        out.contains(&format!("node {follower}'s disk fails writes")),
        "{out}"
    );
    // The next append the follower receives fails on its disk.
    put(&l, "Disk", r#"{"k":"a"}"#).await;
    let table = eventually(
        Duration::from_secs(20),
        "status to show the supervisor's restart",
        || {
            let l = l.clone();
            async move {
                let t = cli_ok(&["status", "--target-addr", &l, "--all"]).await;
                t.contains(&format!(
                    "node {follower}: restarted 1 time by the supervisor"
                ))
                .then_some(t)
            }
        },
    )
    .await;
    assert!(table.contains("simulated disk failure"), "{table}");
    let ev = events(&l).await;
    assert!(
        has_event(&ev, "node_restarted", "the supervisor restarted node"),
        "{ev:?}"
    );
    tc.converged().await;
    tc.assert_identical();
    tc.cluster.shutdown().await;
}

/// Leader leases (on by default): the leader answers consistent reads from its lease (counted
/// in its status, and shown by `kvsim status --output json`), and once it is cut off and
/// another leader has written, it never answers a consistent read with the old value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_lease_serves_consistent_reads_and_never_outlives_a_cut() {
    let tc = TestCluster::start().await;
    let old = tc.leader().await;
    let old_addr = tc.addr(old);
    tc.create_table(old, "Leased", ("k", "S"), None).await;
    put(&old_addr, "Leased", r#"{"k":"a","v":"1"}"#).await;
    let get = json!({"TableName": "Leased", "Key": {"k": {"S": "a"}}, "ConsistentRead": true});
    for _ in 0..5 {
        let (status, body) = tc.call(old, "GetItem", get.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["Item"]["v"]["S"], "1", "{body}");
    }
    let status = tc.status_json(old).await;
    assert!(
        status["stats"]["lease_reads"].as_u64() >= Some(1)
            && status["stats"]["read_index_rounds"].as_u64() >= Some(1),
        "consistent reads at the leader used no lease: {status}"
    );
    // A read keeps the lease running, so status shows it.
    let shown = eventually(Duration::from_secs(15), "status to show the lease", || {
        let (tc, get, addr) = (&tc, get.clone(), old_addr.clone());
        async move {
            let _ = tc.call(old, "GetItem", get).await;
            let out = cli_ok(&["status", "--target-addr", &addr, "--output", "json"]).await;
            let s = json_of(&out);
            s["lease_ms"].as_u64().map(|ms| (ms, s["node_id"].clone()))
        }
    })
    .await;
    // At most 9/10 of nine of the tests' 50 ms ticks.
    assert!(shown.0 <= 405 && shown.1 == old, "{shown:?}");

    let majority: Vec<u64> = tc.running().into_iter().filter(|id| *id != old).collect();
    let via = tc.addr(majority[0]);
    let old_term = term_of(&tc, old);
    isolate(&via, old).await;
    let (new, _) = new_leader(&tc, old, old_term).await;
    put(&tc.addr(new), "Leased", r#"{"k":"a","v":"2"}"#).await;
    for _ in 0..3 {
        let (status, body) = tc.call(old, "GetItem", get.clone()).await;
        assert!(
            status != 200 || body["Item"]["v"]["S"] == "2",
            "the cut-off old leader answered a consistent read with a stale value: {status} \
             {body}"
        );
    }
    tc.cluster.shutdown().await;
}

/// `kvsim server --no-lease-reads`: every consistent read takes a ReadIndex round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_leases_every_consistent_read_takes_a_round() {
    let tc = TestCluster::start_with(kvsim::config::Tuning {
        lease_reads: false,
        ..test_tuning()
    })
    .await;
    let leader = tc.leader().await;
    tc.create_table(leader, "Unleased", ("k", "S"), None).await;
    put(&tc.addr(leader), "Unleased", r#"{"k":"a","v":"1"}"#).await;
    let get = json!({"TableName": "Unleased", "Key": {"k": {"S": "a"}}, "ConsistentRead": true});
    for _ in 0..5 {
        let (status, body) = tc.call(leader, "GetItem", get.clone()).await;
        assert_eq!(body["Item"]["v"]["S"], "1", "{status} {body}");
    }
    let status = tc.status_json(leader).await;
    assert!(
        status["stats"]["lease_reads"] == 0
            && status["stats"]["read_index_rounds"].as_u64() >= Some(5)
            && status.get("lease_ms").is_none(),
        "{status}"
    );
    tc.cluster.shutdown().await;
}
