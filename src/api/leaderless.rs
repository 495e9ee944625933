//! The routes of a node in `--mode dynamo`: the same DynamoDB protocol on `POST /` (each
//! operation's `run_leaderless`, sharing its validation with Raft mode through
//! [`crate::api::engine`]), `GET /status`, `GET /events` and `GET /metrics`, and the
//! simulator's network and node controls under `/admin/`.
//!
//! Any node coordinates any request: there is no leader, so nothing is forwarded and no hint
//! is given. What needs a single serialization point (transactions) is refused with a
//! `ValidationException` naming `--mode raft`; what is not built for this engine yet says so.
//! The web console is Raft mode's page, fed by [`crate::api::console::leaderless`].

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use crate::api::budget::MemoryBudget;
use crate::api::console;
use crate::api::dispatch::{
    add_headers, error_response, json_response, read_body, region, request_id, target,
};
use crate::api::faults::{FaultRequest, error_fault, network_fault, respond};
use crate::api::inject::ErrorRule;
use crate::api::metrics::Metrics;
use crate::api::ops::{self, Request};
use crate::cluster::leaderless::{LeaderlessCluster, LeaderlessRef};
use crate::dynamo::NodeId;
use crate::dynamo::driver::NodeView;
use crate::events::NodeEvent;
use crate::faults::NetworkFaults;
use crate::{Error, Result};

/// What every handler of one leaderless node shares.
#[derive(Clone)]
pub struct LeaderlessState {
    /// The node this server fronts.
    pub id: NodeId,
    /// Its cluster.
    pub cluster: LeaderlessRef,
    /// What requests in flight may hold in memory.
    pub memory: MemoryBudget,
    /// The node's request counters.
    pub metrics: Metrics,
}

/// The node's routes: Raft mode's layout ([`crate::api::routes`]) with this engine's
/// handlers.
pub fn router(state: LeaderlessState, addrs: &[String]) -> Router {
    crate::api::routes(
        crate::api::Routes {
            dynamodb: post(dynamodb),
            status: get(status),
            events: get(events),
            metrics: get(metrics),
            console_stream: get(console::leaderless::stream),
            controls: Router::new()
                .route("/admin/faults", get(list_faults))
                .route("/admin/faults/{action}", post(apply_fault))
                .route("/admin/nodes/{id}/{action}", post(node_action)),
            internal: Router::new(),
        },
        addrs,
    )
    .with_state(state)
}

fn cluster(app: &LeaderlessState) -> Result<LeaderlessCluster> {
    app.cluster
        .upgrade()
        .ok_or_else(|| Error::Unavailable("the cluster is shutting down".into()))
}

/// `POST /`: one DynamoDB operation, coordinated by this node.
async fn dynamodb(State(app): State<LeaderlessState>, headers: HeaderMap, body: Body) -> Response {
    let start = std::time::Instant::now();
    let op = target(&headers).ok().map(|(_, op)| op);
    // Boxed, as in the Raft mode's handler: a small future is cheaper for the layers to move.
    let mut resp = Box::pin(answer(&app, &headers, body)).await;
    let error = resp
        .extensions()
        .get::<crate::api::dispatch::ErrorType>()
        .map(|e| e.0.as_str());
    app.metrics.request(op, error, start.elapsed());
    if let Ok(value) = HeaderValue::from_bytes(&request_id()) {
        resp.headers_mut().insert("x-amzn-requestid", value);
    }
    resp
}

async fn answer(app: &LeaderlessState, headers: &HeaderMap, body: Body) -> Response {
    let (body, charge) = match read_body(&app.memory, body).await {
        Ok(read) => read,
        Err(resp) => return resp,
    };
    let (_, op) = match target(headers) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let (node, addr) = match cluster(app).and_then(|c| {
        let addr = c.addrs().get(&app.id).cloned().unwrap_or_default();
        c.node(app.id).map(|node| (node, addr)).ok_or_else(|| {
            Error::Unavailable(format!(
                "node {} is down; send requests to another node",
                app.id
            ))
        })
    }) {
        Ok(found) => found,
        Err(e) => return error_response(&e),
    };
    // Injected faults fire where the operation executes, before it does anything.
    if let Some(e) = app
        .cluster
        .upgrade()
        .and_then(|c| crate::api::inject::roll(c.error_rules(), op))
    {
        return error_response(&e);
    }
    let mut request = Request::new(body, charge, region(headers));
    request.siblings = headers
        .get(crate::api::wire::SIBLINGS_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    request.expected_version = match crate::api::dispatch::expected_version(headers) {
        Ok(v) => v,
        Err(e) => return error_response(&e),
    };
    let node = &node;
    let req = &mut request;
    let result = ops::run_leaderless(node, &addr, op, req).await;
    match result {
        Ok(encoded) => {
            let mut resp = json_response(StatusCode::OK, encoded);
            add_headers(&mut resp, req);
            resp
        }
        Err(e) => {
            if matches!(e, Error::Internal(_)) {
                tracing::error!(node = app.id, ?op, "internal error: {e}");
            }
            error_response(&e)
        }
    }
}

/// `GET /status` in `--mode dynamo`.
#[derive(Debug, Serialize)]
pub struct LeaderlessStatus {
    /// Always `dynamo`.
    pub mode: &'static str,
    /// This node.
    pub node_id: NodeId,
    /// Its address.
    pub addr: String,
    /// Every node, as `{node_id, addr}`.
    pub nodes: Vec<Value>,
    /// Whether the node runs (its port answers even when it is down).
    pub running: bool,
    /// Why it stopped, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Replicas per key (N).
    pub replicas: usize,
    /// Read quorum (R).
    pub read_quorum: usize,
    /// Write quorum (W).
    pub write_quorum: usize,
    /// The merger of concurrent versions.
    pub merger: String,
    /// The node's view of the ring and of who is alive, and the hints it holds.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub view: Option<NodeView>,
    /// The network faults touching this node.
    pub faults: Vec<String>,
    /// Its disk fails writes after every restart (`kvsim fault disk --sticky`).
    pub failing_disk: bool,
    /// Why it could not be started again, while it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_failure: Option<String>,
    /// The supervisor's policy and every node's record, as in Raft mode's status.
    pub supervision: crate::cluster::SupervisionStatus,
}

async fn status(State(app): State<LeaderlessState>) -> Response {
    let result = async {
        let cluster = cluster(&app)?;
        let node = cluster.node(app.id);
        let view = match &node {
            Some(node) => node.view().await.ok(),
            None => None,
        };
        let config = cluster.config();
        Ok::<_, Error>(LeaderlessStatus {
            mode: "dynamo",
            node_id: app.id,
            addr: cluster.addrs().get(&app.id).cloned().unwrap_or_default(),
            nodes: cluster
                .addrs()
                .iter()
                .map(|(id, addr)| serde_json::json!({"node_id": id, "addr": addr}))
                .collect(),
            running: node.as_ref().is_some_and(|n| n.failure().is_none()),
            failure: node
                .as_ref()
                .and_then(crate::dynamo::driver::DynamoHandle::failure),
            replicas: config.replicas,
            read_quorum: config.read_quorum,
            write_quorum: config.write_quorum,
            merger: config.merger.clone(),
            view,
            faults: cluster
                .faults()
                .read()
                .map(|f| f.describe_node(app.id))
                .unwrap_or_default(),
            failing_disk: cluster.failing_disks().contains(&app.id),
            start_failure: cluster.start_failure(app.id),
            supervision: cluster.supervision(),
        })
    }
    .await;
    match result {
        Ok(s) => Json(s).into_response(),
        Err(e) => error_response(&e),
    }
}

/// `GET /metrics`.
async fn metrics(State(app): State<LeaderlessState>) -> Response {
    let view = match app.cluster.upgrade().and_then(|c| c.node(app.id)) {
        Some(node) => node.view().await.ok(),
        None => None,
    };
    crate::api::metrics::leaderless_metrics(&app.metrics, app.id, view).await
}

/// `GET /events?since=N`.
async fn events(
    State(app): State<LeaderlessState>,
    Query(q): Query<crate::api::admin::EventsQuery>,
) -> Response {
    match cluster(&app) {
        Ok(c) => {
            crate::api::admin::events_doc(app.id, c.events(app.id).since(q.since)).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// Loopback callers only, unless the server allows remote admin; no changes under
/// `--no-faults`.
fn authorize(app: &LeaderlessState, peer: SocketAddr, changes: bool) -> Result<LeaderlessCluster> {
    let cluster = cluster(app)?;
    crate::api::faults::allowed(cluster.config().policy, peer, changes)?;
    Ok(cluster)
}

fn faults_doc(cluster: &LeaderlessCluster) -> Value {
    let network: NetworkFaults = cluster
        .faults()
        .read()
        .map(|f| f.clone())
        .unwrap_or_default();
    let errors: Vec<ErrorRule> = cluster
        .error_rules()
        .read()
        .map(|r| r.clone())
        .unwrap_or_default();
    let lines = cluster.describe_faults();
    let running: Vec<NodeId> = cluster
        .addrs()
        .keys()
        .copied()
        .filter(|id| cluster.node(*id).is_some())
        .collect();
    serde_json::json!({
        "faults": lines,
        "network": network,
        "errors": errors,
        "gsi_lag": [],
        "running": running,
    })
}

async fn list_faults(
    State(app): State<LeaderlessState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    respond(authorize(&app, peer, false).map(|c| faults_doc(&c)))
}

async fn apply_fault(
    State(app): State<LeaderlessState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(action): Path<String>,
    body: Option<Json<FaultRequest>>,
) -> Response {
    respond(authorize(&app, peer, true).and_then(|cluster| {
        let req = body.map(|b| b.0).unwrap_or_default();
        let all: Vec<NodeId> = cluster.addrs().keys().copied().collect();
        let mut faults = cluster
            .faults()
            .write()
            .map_err(|_| Error::internal("fault table poisoned"))?;
        let mut next = faults.clone();
        let (what, removed) = if action == "heal" {
            next.heal();
            cluster.heal_disks();
            (
                "healed the network and the disks: every partition, delay, loss and failing \
                 disk removed"
                    .to_string(),
                true,
            )
        } else if action == "gsi-lag" {
            return Err(Error::validation(
                "gsi-lag is a --mode raft fault: in --mode dynamo an index is computed from \
                 the table's items whenever it is read, so it cannot lag behind them",
            ));
        } else if let Some(done) = error_fault(cluster.error_rules(), &action, &req)? {
            done
        } else {
            network_fault(&mut next, &all, &action, &req)?.ok_or_else(|| {
                Error::validation(format!(
                    "unknown fault {action} in --mode dynamo; use isolate, partition, delay, drop, errors, clear-errors or heal"
                ))
            })?
        };
        *faults = next;
        drop(faults);
        let kind = if removed { "fault_healed" } else { "fault_set" };
        cluster.events(app.id).record(NodeEvent::new(kind, what.clone()));
        let mut v = faults_doc(&cluster);
        v["applied"] = Value::String(what);
        Ok(v)
    }))
}

async fn node_action(
    State(app): State<LeaderlessState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(NodeId, String)>,
) -> Response {
    let result = async {
        let cluster = authorize(&app, peer, true)?;
        if !cluster.addrs().contains_key(&id) {
            return Err(Error::validation(format!(
                "there is no node {id}; nodes are {:?}",
                cluster.addrs().keys().collect::<Vec<_>>()
            )));
        }
        let what = match action.as_str() {
            "crash" => {
                cluster.crash_node(id, app.id).await?;
                format!("crashed node {id}")
            }
            "restart" => {
                cluster.restart_node(id).await?;
                format!("restarted node {id}")
            }
            "fail-disk" | "fail-disk-sticky" => {
                let sticky = action == "fail-disk-sticky";
                cluster.fail_disk(id, sticky, app.id)?;
                format!(
                    "node {id}'s disk fails writes{}",
                    if sticky {
                        ", after every restart too"
                    } else {
                        ""
                    }
                )
            }
            other => {
                return Err(Error::validation(format!(
                    "unknown node action {other}; use crash, restart, fail-disk or fail-disk-sticky"
                )));
            }
        };
        let mut v = faults_doc(&cluster);
        v["applied"] = Value::String(what);
        Ok(v)
    }
    .await;
    respond(result)
}
