//! `GET /metrics`: one node's metrics in the Prometheus text format (OpenMetrics flavour, by
//! `prometheus-client`).
//!
//! Two kinds. What happens to requests (counts by operation and outcome, latency, forwarding,
//! open connections) is counted as it happens, in the [`Metrics`] each node's server holds.
//! The node's state (Raft role, term and indexes, pending work, the Raft layer's counters,
//! faults in force, items and bytes per table) is read from its status at each scrape, so it
//! costs nothing between scrapes. Counters start again from zero when a node restarts, which
//! Prometheus reads as a counter reset.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::AppState;
use crate::api::dispatch::Op;

/// The content type of the text this route answers.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A request's operation and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The DynamoDB operation (`PutItem`, ...), or `unknown` when the target was not one.
    pub operation: &'static str,
    /// `ok`, or the error's type without its namespace (`ConditionalCheckFailedException`).
    pub outcome: Cow<'static, str>,
}

/// A request's operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// The DynamoDB operation.
    pub operation: &'static str,
}

/// One label, for the metrics read at scrape time.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labelled {
    name: String,
}

/// A role label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

/// A table label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

/// What one node's server counts as requests come and go. Cheap to clone: every field shares
/// its values.
#[derive(Clone, Debug)]
pub struct Metrics {
    raft_messages: crate::raft::transport::MessageCounters,
    fsyncs: Histogram,
    requests: Family<RequestLabels, Counter>,
    latency: Family<OperationLabel, Histogram, fn() -> Histogram>,
    forwarded: Family<OperationLabel, Counter>,
    connections: Gauge,
    /// Requests and their summed latency, for the console's charts (which want one rate
    /// and one mean per node, not a histogram per operation).
    totals: std::sync::Arc<Totals>,
}

/// Every request's count and summed latency.
#[derive(Debug, Default)]
pub struct Totals {
    requests: AtomicU64,
    micros: AtomicU64,
}

/// A node's request count and summed latency in microseconds, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestTotals {
    /// Requests answered.
    pub requests: u64,
    /// Their latencies, summed.
    pub micros: u64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Latency buckets from 50 µs to about 13 s, each twice the one before.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Metrics {
        Metrics {
            raft_messages: crate::raft::transport::MessageCounters::default(),
            // 20 µs to about 2.6 s.
            fsyncs: Histogram::new(exponential_buckets(0.000_02, 2.0, 18)),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            forwarded: Family::default(),
            connections: Gauge::default(),
            totals: std::sync::Arc::default(),
        }
    }

    /// Requests answered since the node started, and their summed latency.
    pub fn totals(&self) -> RequestTotals {
        use std::sync::atomic::Ordering::Relaxed;
        RequestTotals {
            requests: self.totals.requests.load(Relaxed),
            micros: self.totals.micros.load(Relaxed),
        }
    }

    /// Counts one DynamoDB request: its operation (`None` when it named none), how it ended
    /// (`None` for success, else the error's type) and how long it took. A successful one
    /// allocates nothing.
    pub fn request(&self, operation: Option<Op>, error: Option<&str>, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.totals.requests.fetch_add(1, Relaxed);
        self.totals
            .micros
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
        let operation = operation.map_or("unknown", Op::name);
        let outcome = match error {
            None => Cow::Borrowed("ok"),
            // `com.amazonaws.dynamodb.v20120810#ResourceNotFoundException` → the part after #.
            Some(t) => Cow::Owned(t.rsplit('#').next().unwrap_or(t).to_string()),
        };
        self.latency
            .get_or_create(&OperationLabel { operation })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels { operation, outcome })
            .inc();
    }

    /// Counts a request this node relayed to the leader.
    pub fn forwarded(&self, operation: Op) {
        self.forwarded
            .get_or_create(&OperationLabel {
                operation: operation.name(),
            })
            .inc();
    }

    /// The counters of Raft messages, for the node's transport to move.
    pub fn raft_messages(&self) -> crate::raft::transport::MessageCounters {
        self.raft_messages.clone()
    }

    /// The histogram of fsync durations, for the node's files to fill.
    pub fn fsync_timer(&self) -> Histogram {
        self.fsyncs.clone()
    }

    /// The gauge of open client connections, for the server to move.
    pub fn connections(&self) -> Gauge {
        self.connections.clone()
    }

    /// The request metrics, registered in `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "kvsim_requests",
            "DynamoDB requests this node answered, by operation and outcome",
            self.requests.clone(),
        );
        registry.register(
            "kvsim_request_duration_seconds",
            "Time from a DynamoDB request's arrival to its answer, by operation",
            self.latency.clone(),
        );
        registry.register(
            "kvsim_forwarded_requests",
            "Requests this node relayed to the leader, by operation",
            self.forwarded.clone(),
        );
        registry.register(
            "kvsim_raft_messages_sent",
            "Raft messages this node sent, by receiving peer and message type",
            self.raft_messages.messages.clone(),
        );
        registry.register(
            "kvsim_raft_message_bytes_sent",
            "Encoded bytes of the Raft messages this node sent, by peer and type",
            self.raft_messages.bytes.clone(),
        );
        registry.register(
            "kvsim_raft_snapshots_sent",
            "Snapshots this node streamed to a peer that accepted them",
            self.raft_messages.snapshots_sent.clone(),
        );
        registry.register(
            "kvsim_raft_snapshot_bytes_sent",
            "Bytes of the snapshots this node streamed to peers",
            self.raft_messages.snapshot_bytes_sent.clone(),
        );
        registry.register(
            "kvsim_fsync_duration_seconds",
            "Duration of each fsync of this node's Raft log and tables",
            self.fsyncs.clone(),
        );
        registry.register(
            "kvsim_open_connections",
            "Client connections open on this node",
            self.connections.clone(),
        );
    }
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter<u64, AtomicU64> = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// `GET /metrics`.
pub async fn metrics(State(app): State<AppState>) -> Response {
    let doc = crate::api::admin::status_doc(&app).await;
    let tables = app
        .node
        .read(|store| store.table_sizes())
        .await
        .unwrap_or_default();
    let mut registry = Registry::default();
    app.metrics.register(&mut registry);

    let id = app.node.id;
    let info: Family<Labelled, Gauge> = Family::default();
    info.get_or_create(&Labelled {
        name: format!("node{id}"),
    })
    .set(1);
    registry.register("kvsim_node", "This node (its name as a label)", info);
    gauge(&mut registry, "kvsim_node_id", "This node's id", id);
    let up = u64::from(doc.role != "failed");
    gauge(
        &mut registry,
        "kvsim_node_up",
        "1 while the node's Raft loop runs, 0 once it stopped after a fault",
        up,
    );
    let roles: Family<RoleLabel, Gauge> = Family::default();
    for role in ["leader", "follower", "candidate", "pre_candidate", "failed"] {
        roles
            .get_or_create(&RoleLabel {
                role: role.to_string(),
            })
            .set(i64::from(doc.role == role));
    }
    registry.register(
        "kvsim_raft_role",
        "1 for the role this node has now, 0 for the others",
        roles,
    );
    let raft = [
        ("kvsim_raft_term", "Current Raft term", doc.term),
        (
            "kvsim_raft_leader_id",
            "The leader's id as this node knows it (0: none)",
            doc.leader_id.unwrap_or(0),
        ),
        (
            "kvsim_raft_commit_index",
            "Highest log index known committed",
            doc.commit_index,
        ),
        (
            "kvsim_raft_applied_index",
            "Highest log index applied to the tables",
            doc.applied_index,
        ),
        (
            "kvsim_raft_last_log_index",
            "Index of the last entry in the log",
            doc.last_log_index,
        ),
        (
            "kvsim_raft_first_log_index",
            "Index of the first entry still in the log (after compaction)",
            doc.first_log_index,
        ),
        (
            "kvsim_raft_pending_proposals",
            "Client writes waiting for their entry to commit and apply",
            doc.pending_proposals as u64,
        ),
        (
            "kvsim_raft_pending_reads",
            "Consistent reads waiting for their read index",
            doc.pending_reads as u64,
        ),
        (
            "kvsim_faults_in_force",
            "Simulated faults touching this node",
            doc.node_faults.len() as u64,
        ),
        ("kvsim_tables", "Tables on this node", doc.tables as u64),
    ];
    for (name, help, value) in raft {
        gauge(&mut registry, name, help, value);
    }
    let stats = [
        (
            "kvsim_fsyncs",
            "fsyncs of the Raft log and the tables",
            doc.stats.fsyncs,
        ),
        (
            "kvsim_raft_entries_applied",
            "Log entries applied to the tables since the node started",
            doc.stats.entries_applied,
        ),
        (
            "kvsim_raft_snapshots_installed",
            "Snapshots received from the leader and installed",
            doc.stats.snapshots_installed,
        ),
        (
            "kvsim_raft_snapshot_bytes_installed",
            "Bytes of the snapshots received from the leader and installed",
            doc.stats.snapshot_bytes_installed,
        ),
        (
            "kvsim_raft_log_compactions",
            "Compactions of the Raft log",
            doc.stats.compactions,
        ),
        (
            "kvsim_raft_ready_passes",
            "Passes of the Raft Ready loop that had work",
            doc.stats.ready_passes,
        ),
        (
            "kvsim_raft_entries_persisted",
            "Log entries written to the Raft log (with kvsim_fsyncs: entries per fsync)",
            doc.stats.entries_persisted,
        ),
        (
            "kvsim_raft_read_index_rounds",
            "ReadIndex rounds sent (each confirms a batch of consistent reads or renews a lease)",
            doc.stats.read_index_rounds,
        ),
        (
            "kvsim_raft_lease_reads",
            "Consistent reads answered from the leader's lease, without a ReadIndex round",
            doc.stats.lease_reads,
        ),
    ];
    for (name, help, value) in stats {
        counter(&mut registry, name, help, value);
    }
    if let Some(cache) = &doc.read_cache {
        counter(
            &mut registry,
            "kvsim_read_cache_hits",
            "GetItems answered from the read cache",
            cache.hits,
        );
        counter(
            &mut registry,
            "kvsim_read_cache_misses",
            "GetItems the read cache could not answer",
            cache.misses,
        );
    }
    let items: Family<TableLabel, Gauge> = Family::default();
    let bytes: Family<TableLabel, Gauge> = Family::default();
    for (table, count, size) in tables {
        let label = TableLabel { table };
        items
            .get_or_create(&label)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        bytes
            .get_or_create(&label)
            .set(i64::try_from(size).unwrap_or(i64::MAX));
    }
    registry.register("kvsim_table_items", "Items in each table", items);
    registry.register(
        "kvsim_table_bytes",
        "Bytes of item data in each table, as DynamoDB counts them",
        bytes,
    );

    encoded(&registry)
}

/// The registry in Prometheus's text format, as the answer to `GET /metrics`.
fn encoded(registry: &Registry) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not encode the metrics: {e}"),
        )
            .into_response();
    }
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// `GET /metrics` of a `--mode dynamo` node: its requests and connections as in Raft mode,
/// and the leaderless engine's state: whether the node runs, how many peers it suspects, and
/// how many hints it keeps for unreachable owners.
pub async fn leaderless_metrics(
    metrics: &Metrics,
    id: u64,
    view: Option<crate::dynamo::driver::NodeView>,
) -> Response {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    gauge(&mut registry, "kvsim_node_id", "This node's id", id);
    gauge(
        &mut registry,
        "kvsim_node_up",
        "1 while the node runs, 0 while it is crashed or stopped after a fault",
        u64::from(view.is_some()),
    );
    let (suspected, hints) = view.map_or((0, 0), |v| {
        (
            v.suspected.len() as u64,
            v.hints.values().sum::<usize>() as u64,
        )
    });
    gauge(
        &mut registry,
        "kvsim_dynamo_suspected_peers",
        "Peers this node suspects of being down (SWIM)",
        suspected,
    );
    gauge(
        &mut registry,
        "kvsim_dynamo_hints",
        "Writes this node keeps for owners it could not reach (hinted handoff)",
        hints,
    );
    encoded(&registry)
}
