//! kvsim's own endpoints for people and scripts: health and status.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use serde::{Deserialize, Serialize};

use crate::api::AppState;
use crate::raft::driver::Health;
use crate::raft::node::{NodeStats, PeerProgress};

/// The status document of one node. Field names are stable: scripts and the CLI rely on them.
#[derive(Clone, Debug, Serialize)]
pub struct StatusDoc {
    /// This node's id.
    pub node_id: u64,
    /// This node's client address.
    pub addr: String,
    /// `running`, `stopped` or `failed` (with `error`).
    pub health: Health,
    /// `leader`, `follower`, `candidate`, `pre_candidate`, or `failed` when the node stopped.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader's id, if known.
    pub leader_id: Option<u64>,
    /// The leader's client address, if known.
    pub leader_addr: Option<String>,
    /// Highest committed index.
    pub commit_index: u64,
    /// Highest applied index.
    pub applied_index: u64,
    /// Last index in the log.
    pub last_log_index: u64,
    /// First index still in the log.
    pub first_log_index: u64,
    /// Number of tables.
    pub tables: usize,
    /// On the leader: each peer's replication progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<PeerProgress>>,
    /// Writes waiting for commit.
    pub pending_proposals: usize,
    /// Consistent reads waiting.
    pub pending_reads: usize,
    /// On a leader with leases on (the default; `--no-lease-reads` turns them off): milliseconds
    /// left of its lease, during which consistent reads need no ReadIndex round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
    /// Counters (fsyncs, entries applied, snapshots, compactions).
    pub stats: NodeStats,
    /// Every node of the cluster with its client address.
    pub nodes: Vec<NodeAddr>,
    /// Active simulator faults (network and error injection), one line each.
    pub faults: Vec<String>,
    /// The network faults that touch this node (`cut off from 1,3`, `delay 100ms`, ...).
    pub node_faults: Vec<String>,
    /// The supervisor's policy and what it did for each node (restarts, refusals).
    pub supervision: Option<crate::cluster::SupervisionStatus>,
    /// Where the data lives and how durably: `fsync` (the default), `none` (files, never
    /// fsynced) or `memory`.
    pub storage: &'static str,
    /// The read cache's size and hits, when `--cache-items` turned it on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_cache: Option<crate::store::cache::CacheStats>,
}

/// A node's id and client address.
#[derive(Clone, Debug, Serialize)]
pub struct NodeAddr {
    /// Node id.
    pub node_id: u64,
    /// Client address.
    pub addr: String,
}

/// Builds the status document of `app`'s node.
pub async fn status_doc(app: &AppState) -> StatusDoc {
    let tables = app
        .node
        .read(|store| store.table_count())
        .await
        .unwrap_or(0);
    let published = app.node.published();
    let raft = published
        .raft
        .unwrap_or_else(|| crate::raft::node::RaftStatus {
            node_id: app.node.id,
            role: "follower",
            term: 0,
            leader_id: None,
            commit_index: 0,
            applied_index: 0,
            last_log_index: 0,
            first_log_index: 0,
            peers: None,
            pending_proposals: 0,
            pending_reads: 0,
            lease_ms: None,
            stats: NodeStats::default(),
        });
    let mut raft = raft;
    // Reads the client handlers answered from the lease, counted as they happen (they do not
    // wake the node, whose own count is the published one).
    if let Some(reads) = app.node.lease_reads() {
        raft.stats.lease_reads += reads;
    }
    let running = published.health == Health::Running;
    let leader_id = raft.leader_id.filter(|_| running);
    StatusDoc {
        node_id: app.node.id,
        addr: app.node.addr().to_string(),
        role: if running {
            raft.role.to_string()
        } else {
            "failed".to_string()
        },
        health: published.health,
        term: raft.term,
        leader_id,
        leader_addr: leader_id
            .and_then(|id| app.node.addr_of(id))
            .map(str::to_string),
        commit_index: raft.commit_index,
        applied_index: raft.applied_index,
        last_log_index: raft.last_log_index,
        first_log_index: raft.first_log_index,
        tables,
        peers: raft.peers.filter(|_| running),
        pending_proposals: raft.pending_proposals,
        pending_reads: raft.pending_reads,
        lease_ms: raft.lease_ms.filter(|_| running),
        stats: raft.stats,
        nodes: app
            .node
            .addrs()
            .iter()
            .map(|(id, addr)| NodeAddr {
                node_id: *id,
                addr: addr.clone(),
            })
            .collect(),
        faults: app
            .cluster
            .upgrade()
            .map(|c| c.describe_faults())
            .unwrap_or_default(),
        storage: match app.cluster.upgrade().map(|c| c.storage()) {
            Some(crate::config::Storage::Memory) => "memory",
            Some(crate::config::Storage::NoFsync) => "none",
            _ => "fsync",
        },
        node_faults: app
            .cluster
            .upgrade()
            .and_then(|c| c.faults().read().ok().map(|f| f.describe_node(app.node.id)))
            .unwrap_or_default(),
        supervision: app.cluster.upgrade().map(|c| c.supervision()),
        read_cache: app.node.store().read_cache_stats(),
    }
}

/// `GET /status`.
pub async fn status(State(app): State<AppState>) -> Json<StatusDoc> {
    Json(status_doc(&app).await)
}

/// Query of `GET /events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Only events with a higher sequence number.
    #[serde(default)]
    pub since: u64,
}

/// `GET /events`' answer: node `id`'s `events`.
pub fn events_doc(id: u64, events: Vec<crate::events::EventRecord>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "node_id": id, "events": events }))
}

/// `GET /events?since=N`: this node's recent events, oldest first.
pub async fn events(
    State(app): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Json<serde_json::Value> {
    let events = app
        .cluster
        .upgrade()
        .and_then(|c| c.events(app.node.id).map(|log| log.since(q.since)))
        .unwrap_or_default();
    events_doc(app.node.id, events)
}

/// `GET /admin/digest`: a fingerprint of this node's whole state machine with the index it
/// reflects, so scripts and tests can check that replicas agree. It reads every item: cheap
/// for a simulator's data, not for a large table.
pub async fn digest(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Err(e) = crate::api::faults::authorize(&app, peer, false) {
        return crate::api::dispatch::error_response(&e);
    }
    let store = app.node.store().clone();
    let applied = app.node.published().raft.map(|r| r.applied_index);
    match tokio::task::spawn_blocking(move || store.digest()).await {
        Ok(Ok(d)) => Json(serde_json::json!({
            "node_id": app.node.id,
            "applied_index": applied,
            "digest": format!("{d:016x}"),
        }))
        .into_response(),
        Ok(Err(e)) => crate::api::dispatch::error_response(&e),
        Err(e) => crate::api::dispatch::error_response(&crate::Error::internal(e)),
    }
}
