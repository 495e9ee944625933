//! The web console's server side: `GET /` answered by content negotiation, the embedded
//! assets, the live feed (`/console/stream`) showing nodes, leader, Raft messages, events and
//! crashes, the controls refusing web pages from outside the cluster, and the same feed in
//! `--mode dynamo`.
//! (The page itself is driven in a real browser by `tests/wire/test_console.py`.)

mod common;

use std::time::Duration;

use common::{TestCluster, test_tuning};
use futures_util::StreamExt;
use kvsim::cluster::AdminPolicy;
use serde_json::{Value, json};

/// A connection to one node's feed, yielding its frames in order.
struct Feed {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl Feed {
    async fn open(http: &reqwest::Client, addr: &str) -> Feed {
        let resp = http
            .get(format!("http://{addr}/console/stream"))
            .send()
            .await
            .expect("feed answers");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().expect("text"),
            "text/event-stream"
        );
        Feed {
            body: resp.bytes_stream().boxed(),
            buf: Vec::new(),
        }
    }

    /// The next `frame` event's data.
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let bytes: Vec<u8> = self.buf.drain(..end + 2).collect();
                let event = String::from_utf8(bytes).expect("an event is UTF-8");
                if !event.lines().any(|l| l == "event: frame") {
                    continue; // a keep-alive comment
                }
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                return serde_json::from_str(&data).expect("a frame is JSON");
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.body.next())
                .await
                .expect("a frame within 5 s")
                .expect("the feed stays open")
                .expect("the feed reads");
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// Frames until one satisfies `check`, within `within`; returns what `check` returned.
    async fn until<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut check: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = self.next().await;
            if let Some(v) = check(&frame) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last frame: {frame}"
            );
        }
    }
}

fn node(frame: &Value, id: u64) -> &Value {
    frame["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node_id"] == id))
        .expect("the node is in the frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_serves_the_console_to_browsers_and_the_health_line_to_everyone_else() {
    let tc = TestCluster::start().await;
    let addr = tc.addr(2);
    let plain = tc
        .http
        .get(format!("http://{addr}/"))
        .send()
        .await
        .expect("GET /");
    assert_eq!(plain.status(), 200);
    assert_eq!(
        plain.text().await.expect("body"),
        format!("healthy: {addr}"),
        "DynamoDB's own health answer, naming the host asked"
    );
    let page = tc
        .http
        .get(format!("http://{addr}/"))
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("GET / as a browser");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("text")
            .starts_with("text/html")
    );
    assert_eq!(
        page.headers()["x-frame-options"],
        "DENY",
        "no other site may frame it"
    );
    let html = page.text().await.expect("page");
    assert!(html.contains("<title>kvsim console</title>"), "{html}");
    for (path, kind, needle) in [
        ("/console", "text/html", "/console/app.js"),
        ("/console/app.js", "text/javascript", "EventSource"),
        (
            "/console/style.css",
            "text/css",
            "prefers-color-scheme: dark",
        ),
    ] {
        let resp = tc
            .http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .expect("asset");
        assert_eq!(resp.status(), 200, "{path}");
        let ct = resp.headers()["content-type"].to_str().expect("text");
        assert!(ct.starts_with(kind), "{path}: {ct}");
        assert!(resp.text().await.expect("body").contains(needle), "{path}");
    }
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_shows_nodes_leader_messages_events_and_a_crash() {
    let tc = TestCluster::start().await;
    let leader = tc.leader().await;
    let follower = tc.other_than(leader);
    let mut feed = Feed::open(&tc.http, &tc.addr(follower)).await;
    let first = feed
        .until(Duration::from_secs(10), "a frame with a leader", |f| {
            (f["leader_id"] == leader).then(|| f.clone())
        })
        .await;
    assert_eq!(first["via"], follower);
    assert_eq!(first["nodes"].as_array().map(Vec::len), Some(3));
    assert_eq!(node(&first, leader)["role"], "leader");
    assert_eq!(first["links"].as_array().map(Vec::len), Some(3));
    assert_eq!(first["controls"]["enabled"], true, "{first}");
    assert!(
        first["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["kind"] == "leader_elected"),
        "the first frame carries recent history: {first}"
    );

    // Writes show as appends from the leader to each follower (counted only in frames whose
    // window began after the writes did), and as the leader's requests.
    tc.create_table(leader, "Console", ("k", "S"), None).await;
    let before = tc
        .cluster
        .metrics_of(leader)
        .expect("the leader runs")
        .totals()
        .requests;
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let window_ms = kvsim::api::console::FRAME_INTERVAL.as_millis() as u64;
    let mut appended = std::collections::BTreeSet::new();
    let mut puts = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while appended.len() < 2 || puts < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no appends to both followers after {puts} puts: {appended:?}"
        );
        let (code, body) = tc
            .call(
                leader,
                "PutItem",
                json!({"TableName": "Console", "Item": {"k": {"S": format!("k{puts}")}}}),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        puts += 1;
        let f = feed.next().await;
        if f["time_ms"].as_u64() < Some(start_ms + window_ms) {
            continue;
        }
        for flow in f["flows"].as_array().into_iter().flatten() {
            if flow["from"] == leader
                && flow["kind"] == "append"
                && flow["count"].as_u64() > Some(0)
            {
                appended.insert(flow["to"].as_u64());
            }
        }
    }
    feed.until(Duration::from_secs(10), "the puts counted", |f| {
        (node(f, leader)["requests"].as_u64() >= Some(before + puts)).then_some(())
    })
    .await;

    // A crashed node shows as down, and the crash is in the timeline.
    let other = [1, 2, 3]
        .into_iter()
        .find(|&id| id != leader && id != follower)
        .expect("a third node");
    tc.cluster
        .crash_node(other, follower)
        .await
        .expect("crash the other follower");
    let mut crash_seen = false;
    feed.until(Duration::from_secs(10), "the crash in the feed", |f| {
        crash_seen |= f["events"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["kind"] == "node_crashed");
        let n = node(f, other);
        (crash_seen && n["up"] == false && n["role"] == "down" && n["lag"].is_null()).then_some(())
    })
    .await;

    // The feed ends when the node serving it goes down, rather than holding its shutdown.
    tc.cluster
        .crash_node(follower, leader)
        .await
        .expect("crash the node serving the feed");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = feed.body.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the feed outlived its node");
    tc.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_accept_the_clusters_own_pages_only_and_say_why_when_disabled() {
    let tc = TestCluster::start().await;
    let addr = tc.addr(1);
    let heal = |origin: String| {
        tc.http
            .post(format!("http://{addr}/admin/faults/heal"))
            .header("Origin", origin)
            .send()
    };
    let foreign = heal("http://evil.example".into()).await.expect("answers");
    assert_eq!(foreign.status(), 403);
    let body: Value = serde_json::from_slice(&foreign.bytes().await.expect("body")).expect("JSON");
    assert!(
        body["__type"]
            .as_str()
            .is_some_and(|t| t.ends_with("AccessDeniedException")),
        "{body}"
    );
    // The console served by node 2, calling node 1, under either loopback name.
    let port2 = tc.addr(2).rsplit_once(':').map(|(_, p)| p.to_string());
    for origin in [
        format!("http://{}", tc.addr(2)),
        format!("http://localhost:{}", port2.clone().unwrap_or_default()),
    ] {
        let ok = heal(origin.clone()).await.expect("answers");
        assert_eq!(ok.status(), 200, "{origin}");
        assert_eq!(
            ok.headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some(origin.as_str())
        );
    }
    // A page opened under another name than a node's address: its controls would be refused,
    // and the feed says so rather than offering buttons that fail.
    let resp = tc
        .http
        .get(format!("http://{addr}/console/stream"))
        .header("Host", "myhost:8100")
        .send()
        .await
        .expect("feed answers");
    let mut feed = Feed {
        body: resp.bytes_stream().boxed(),
        buf: Vec::new(),
    };
    let frame = feed.next().await;
    assert_eq!(frame["controls"]["enabled"], false, "{frame}");
    assert!(
        frame["controls"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("opened as http://myhost:8100")),
        "{frame}"
    );
    tc.cluster.shutdown().await;

    let tc = TestCluster::start_with_policy(
        test_tuning(),
        AdminPolicy {
            faults: false,
            remote: false,
        },
    )
    .await;
    let mut feed = Feed::open(&tc.http, &tc.addr(1)).await;
    let frame = feed.next().await;
    assert_eq!(frame["controls"]["enabled"], false);
    assert!(
        frame["controls"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("--no-faults")),
        "{frame}"
    );
    // Nothing else is lost: the nodes are still drawn.
    assert_eq!(frame["nodes"].as_array().map(Vec::len), Some(3));
    tc.cluster.shutdown().await;
}

/// In `--mode dynamo` the same page is fed replicas instead of Raft roles: no leader, the
/// quorum settings, SWIM's probes and replica writes as message flows, a crashed node drawn
/// down and suspected by the others; the controls refuse other sites' pages there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_in_dynamo_mode_shows_replicas_suspicions_and_their_messages() {
    use kvsim::cluster::leaderless::{LeaderlessCluster, LeaderlessConfig, SUSPECT_AFTER};
    let cluster = LeaderlessCluster::start(LeaderlessConfig {
        data_root: std::env::temp_dir(),
        host: "127.0.0.1".into(),
        base_port: 0,
        nodes: 5,
        replicas: 3,
        read_quorum: 2,
        write_quorum: 2,
        merger: "lww".into(),
        tombstone_gc: Duration::from_secs(3600),
        storage: kvsim::config::Storage::Memory,
        tuning: test_tuning(),
        policy: AdminPolicy {
            faults: true,
            remote: false,
        },
        suspect_after: SUSPECT_AFTER,
        supervision: kvsim::config::Supervision::default(),
    })
    .await
    .expect("the cluster starts");
    let http = reqwest::Client::new();
    let addr = cluster.addrs()[&2].clone();
    let html = http
        .get(format!("http://{addr}/"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("the page")
        .text()
        .await
        .expect("text");
    assert!(html.contains("<title>kvsim console</title>"), "{html}");

    let mut feed = Feed::open(&http, &addr).await;
    let first = feed.next().await;
    assert_eq!(first["mode"], "dynamo");
    assert_eq!(first["via"], 2);
    assert_eq!(first["leader_id"], Value::Null);
    assert_eq!(
        first["quorum"],
        json!({"replicas": 3, "read_quorum": 2, "write_quorum": 2, "merger": "lww"})
    );
    assert_eq!(first["nodes"].as_array().map(Vec::len), Some(5));
    for id in 1..=5 {
        assert_eq!(node(&first, id)["role"], "replica", "{first}");
    }
    assert_eq!(first["links"].as_array().map(Vec::len), Some(10));
    assert_eq!(first["controls"]["enabled"], true);

    // A table and a write: replica writes and their acknowledgements flow between nodes.
    let dynamodb = |op: &'static str, body: Value| {
        http.post(format!("http://{addr}/"))
            .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string())
            .send()
    };
    let created = dynamodb(
        "CreateTable",
        json!({"TableName": "Tbl", "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
               "BillingMode": "PAY_PER_REQUEST"}),
    )
    .await
    .expect("answers");
    assert_eq!(
        created.status(),
        200,
        "{:?}",
        created.bytes().await.unwrap_or_default()
    );
    let put = dynamodb(
        "PutItem",
        json!({"TableName": "Tbl", "Item": {"k": {"S": "a"}}}),
    )
    .await
    .expect("answers");
    assert_eq!(put.status(), 200);
    let mut kinds = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(kinds.contains("write") && kinds.contains("write_ack") && kinds.contains("gossip")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no writes, acknowledgements and probes in the flows: {kinds:?}"
        );
        let frame = feed.next().await;
        for f in frame["flows"].as_array().into_iter().flatten() {
            kinds.insert(f["kind"].as_str().unwrap_or_default().to_string());
        }
    }

    cluster.crash_node(4, 2).await.expect("node 4 crashes");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let frame = feed.next().await;
        let suspected_by_all = [1, 2, 3, 5]
            .iter()
            .all(|&id| node(&frame, id)["suspected"] == json!([4]));
        if node(&frame, 4)["role"] == "down" && suspected_by_all {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 4 never drawn down and suspected: {frame}"
        );
    }

    let refused = http
        .post(format!("http://{addr}/admin/faults/heal"))
        .header("origin", "http://elsewhere.example")
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 403);
    let body: Value =
        serde_json::from_slice(&refused.bytes().await.expect("a body")).expect("JSON");
    assert!(
        body["__type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("AccessDeniedException"),
        "{body}"
    );
    cluster.shutdown().await;
}
