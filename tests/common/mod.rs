//! Shared harness for in-process cluster tests: a three-node [`Cluster`] on ephemeral ports in a
//! temp dir, a DynamoDB JSON client, and deadline-bounded polling helpers. Nothing here sleeps
//! as synchronisation: every wait polls a condition and fails loudly at its deadline.

#![allow(dead_code)]

pub mod process;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use kvsim::cluster::{AdminPolicy, Cluster};
use kvsim::config::{ClusterConfig, Storage, Supervision, Tuning};
use kvsim::raft::NodeId;
use serde_json::{Value, json};

/// Timing for tests: fast enough to keep the suite short, slow enough that a loaded two-core
/// CI machine does not see spurious elections.
pub fn test_tuning() -> Tuning {
    Tuning {
        tick: Duration::from_millis(50),
        ..Tuning::default()
    }
}

/// A cluster plus the temp dir holding its data.
pub struct TestCluster {
    pub cluster: Cluster,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// Polls `check` until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestCluster {
    pub async fn start() -> TestCluster {
        Self::start_with(test_tuning()).await
    }

    pub async fn start_with(tuning: Tuning) -> TestCluster {
        Self::start_with_policy(
            tuning,
            AdminPolicy {
                faults: true,
                remote: false,
            },
        )
        .await
    }

    pub async fn start_with_policy(tuning: Tuning, policy: AdminPolicy) -> TestCluster {
        Self::start_with_all(tuning, policy, Supervision::default()).await
    }

    /// A cluster with `supervision` as its restart policy.
    pub async fn start_supervised(supervision: Supervision) -> TestCluster {
        Self::start_with_all(
            test_tuning(),
            AdminPolicy {
                faults: true,
                remote: false,
            },
            supervision,
        )
        .await
    }

    pub async fn start_with_all(
        tuning: Tuning,
        policy: AdminPolicy,
        supervision: Supervision,
    ) -> TestCluster {
        Self::start_full(tuning, policy, supervision, Storage::default()).await
    }

    /// A cluster keeping its data as `storage` says.
    pub async fn start_with_storage(storage: Storage) -> TestCluster {
        Self::start_full(
            test_tuning(),
            AdminPolicy {
                faults: true,
                remote: false,
            },
            Supervision::default(),
            storage,
        )
        .await
    }

    pub async fn start_full(
        tuning: Tuning,
        policy: AdminPolicy,
        supervision: Supervision,
        storage: Storage,
    ) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = ClusterConfig {
            data_root: dir.path().to_path_buf(),
            host: "127.0.0.1".into(),
            base_port: 0,
            tuning,
            supervision,
            storage,
        };
        let cluster = Cluster::start_with_policy(config, policy)
            .await
            .expect("cluster starts");
        TestCluster {
            cluster,
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub fn addr(&self, id: NodeId) -> String {
        self.cluster.addrs()[&id].clone()
    }

    pub fn running(&self) -> Vec<NodeId> {
        self.cluster.handles().into_iter().map(|h| h.id).collect()
    }

    /// The leader, once one running node leads and every running node follows it.
    pub async fn leader(&self) -> NodeId {
        eventually(
            Duration::from_secs(15),
            "a leader all running nodes agree on",
            || async {
                let views: Vec<_> = self
                    .cluster
                    .handles()
                    .into_iter()
                    .map(|h| h.published().raft.and_then(|r| r.leader_id))
                    .collect();
                let leader = views.first().copied().flatten()?;
                let leading = self.cluster.node(leader).is_some_and(|h| h.is_leader());
                (leading && views.iter().all(|v| *v == Some(leader))).then_some(leader)
            },
        )
        .await
    }

    /// Some running node other than `not`.
    pub fn other_than(&self, not: NodeId) -> NodeId {
        self.running()
            .into_iter()
            .find(|id| *id != not)
            .expect("another running node")
    }

    /// Sends one DynamoDB request to node `id`; returns the status and the JSON body.
    pub async fn call(&self, id: NodeId, op: &str, body: Value) -> (u16, Value) {
        call_addr(&self.http, &self.addr(id), op, body).await
    }

    /// Waits until every running node has applied everything the leader committed, and
    /// returns that index.
    pub async fn converged(&self) -> u64 {
        eventually(
            Duration::from_secs(30),
            "every running node to apply the leader's log",
            || async {
                let statuses: Vec<_> = self
                    .cluster
                    .handles()
                    .into_iter()
                    .filter_map(|h| h.published().raft)
                    .collect();
                let leader = statuses.iter().find(|s| s.role == "leader")?;
                let target = leader.commit_index;
                statuses
                    .iter()
                    .all(|s| s.applied_index == target && s.commit_index == target)
                    .then_some(target)
            },
        )
        .await
    }

    /// Fails unless every running node holds byte-identical state.
    pub fn assert_identical(&self) {
        let digests = self.digests();
        assert!(
            digests.values().all(|d| Some(d) == digests.values().next()),
            "replicas differ: {digests:?}"
        );
    }

    /// Node `id`'s `GET /status` document.
    pub async fn status_json(&self, id: NodeId) -> Value {
        let resp = self
            .http
            .get(format!("http://{}/status", self.addr(id)))
            .send()
            .await
            .expect("status");
        serde_json::from_slice(&resp.bytes().await.expect("body")).expect("status is JSON")
    }

    /// State machine fingerprint of each running node.
    pub fn digests(&self) -> BTreeMap<NodeId, u64> {
        self.cluster
            .handles()
            .into_iter()
            .map(|h| (h.id, h.store().digest().expect("digest")))
            .collect()
    }

    pub async fn create_table(
        &self,
        id: NodeId,
        name: &str,
        pk: (&str, &str),
        sk: Option<(&str, &str)>,
    ) {
        let mut schema = vec![json!({"AttributeName": pk.0, "KeyType": "HASH"})];
        let mut defs = vec![json!({"AttributeName": pk.0, "AttributeType": pk.1})];
        if let Some((n, t)) = sk {
            schema.push(json!({"AttributeName": n, "KeyType": "RANGE"}));
            defs.push(json!({"AttributeName": n, "AttributeType": t}));
        }
        let (status, body) = self
            .call(
                id,
                "CreateTable",
                json!({"TableName": name, "KeySchema": schema, "AttributeDefinitions": defs, "BillingMode": "PAY_PER_REQUEST"}),
            )
            .await;
        assert_eq!(status, 200, "CreateTable {name}: {body}");
    }

    /// Creates on-demand table `name` keyed by the string `pk`, with a stream of `view`;
    /// returns the stream's ARN.
    pub async fn create_streamed_table(&self, id: NodeId, name: &str, view: &str) -> String {
        let (status, body) = self
            .call(
                id,
                "CreateTable",
                json!({"TableName": name, "BillingMode": "PAY_PER_REQUEST",
                       "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                       "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                       "StreamSpecification": {"StreamEnabled": true, "StreamViewType": view}}),
            )
            .await;
        assert_eq!(status, 200, "CreateTable {name}: {body}");
        body["TableDescription"]["LatestStreamArn"]
            .as_str()
            .expect("a stream")
            .to_string()
    }

    /// Puts `item`, retrying retryable errors (no leader, leadership changes) until `within`.
    pub async fn put_retrying(&self, ids: &[NodeId], table: &str, item: Value, within: Duration) {
        let deadline = Instant::now() + within;
        let mut attempt = 0usize;
        loop {
            let id = ids[attempt % ids.len()];
            attempt += 1;
            let (status, body) = self
                .call(id, "PutItem", json!({"TableName": table, "Item": item}))
                .await;
            if status == 200 {
                return;
            }
            assert!(
                status >= 500,
                "PutItem failed with a non-retryable error: {status} {body}"
            );
            assert!(
                Instant::now() < deadline,
                "PutItem kept failing until the deadline: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every item in `table` as node `id` holds it locally (an eventually consistent scan that
    /// follows pagination).
    pub async fn scan_all(&self, id: NodeId, table: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut start: Option<Value> = None;
        loop {
            let mut req = json!({"TableName": table});
            if let Some(s) = start.take() {
                req["ExclusiveStartKey"] = s;
            }
            let (status, body) = self.call(id, "Scan", req).await;
            assert_eq!(status, 200, "Scan on node {id}: {body}");
            items.extend(body["Items"].as_array().cloned().unwrap_or_default());
            match body.get("LastEvaluatedKey") {
                Some(k) => start = Some(k.clone()),
                None => return items,
            }
        }
    }
}

/// Sends one request to `addr`: `op` is a DynamoDB operation, or a whole `X-Amz-Target`
/// (another API's, e.g. `DynamoDBStreams_20120810.GetRecords`) when it has a dot.
pub async fn call_addr(http: &reqwest::Client, addr: &str, op: &str, body: Value) -> (u16, Value) {
    let target = if op.contains('.') {
        op.to_string()
    } else {
        format!("DynamoDB_20120810.{op}")
    };
    let resp = http
        .post(format!("http://{addr}/"))
        .header("X-Amz-Target", target)
        .header("Content-Type", "application/x-amz-json-1.0")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{op} to {addr}: {e}"));
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("response body");
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{op} to {addr} answered non-JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

/// What a run of the real `kvsim` binary printed.
pub struct CliRun {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Runs the real `kvsim` binary (blocking; call from `spawn_blocking` in async tests).
pub fn kvsim_cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> CliRun {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvsim"))
        .args(args)
        .env_remove("KVSIM_TARGET_ADDR")
        .env_remove("RUST_LOG")
        .output()
        .expect("run kvsim");
    CliRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// Runs `kvsim` off the async runtime and returns its output.
pub async fn cli(args: &[&str]) -> CliRun {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || kvsim_cli(&args))
        .await
        .expect("kvsim runs")
}

/// Runs `kvsim` and requires success; returns stdout.
pub async fn cli_ok(args: &[&str]) -> String {
    let run = cli(args).await;
    assert_eq!(
        run.code, 0,
        "kvsim {args:?} failed ({}): {}",
        run.code, run.stderr
    );
    run.stdout
}
