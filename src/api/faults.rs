//! The simulator controls, `/admin/...`: network faults, DynamoDB error injection, crashing
//! and restarting nodes, leader transfer. Any live node accepts them and they act on the whole
//! cluster. Only loopback callers are served unless the server allows remote admin, and none
//! at all when it was started with `--no-faults`.
//!
//! The network faults are the same [`NetworkFaults`] the transport consults for every message,
//! so what a user sets here is exactly what the tests drive.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::AppState;
use crate::api::dispatch::error_response;
use crate::api::inject::{ErrorRule, SharedErrorRules, set_rule};
use crate::cluster::{AdminPolicy, Cluster};
use crate::events::NodeEvent;
use crate::faults::{Delay, NetworkFaults};
use crate::model::index::IndexKind;
use crate::raft::NodeId;
use crate::store::lag::MAX_LAG_MS;
use crate::{Error, Result};

/// Longest delay accepted, milliseconds.
const MAX_DELAY_MS: u64 = 60_000;

/// `GET /admin/faults`: everything in force.
#[derive(Debug, Serialize)]
pub struct FaultsDoc {
    /// One line per fault.
    pub faults: Vec<String>,
    /// The network faults, structured.
    pub network: NetworkFaults,
    /// The error injection rules.
    pub errors: Vec<ErrorRule>,
    /// GSI lags: table, index (absent: all of the table's global indexes), milliseconds.
    pub gsi_lag: Vec<GsiLag>,
    /// Nodes that are running.
    pub running: Vec<NodeId>,
}

/// One GSI lag in force.
#[derive(Debug, Serialize)]
pub struct GsiLag {
    /// The table.
    pub table: String,
    /// The index, or every global index of the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The lag.
    pub ms: u64,
}

fn doc(cluster: &Cluster) -> FaultsDoc {
    FaultsDoc {
        faults: cluster.describe_faults(),
        network: cluster
            .faults()
            .read()
            .map(|f| f.clone())
            .unwrap_or_default(),
        errors: cluster
            .error_rules()
            .read()
            .map(|r| r.clone())
            .unwrap_or_default(),
        running: cluster.handles().iter().map(|h| h.id).collect(),
        gsi_lag: cluster
            .index_lag()
            .read()
            .map(|lags| {
                lags.iter()
                    .map(|((table, index), ms)| GsiLag {
                        table: table.clone(),
                        index: index.clone(),
                        ms: *ms,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Sets (or with 0 ms removes) a GSI lag, after checking that the table has such global
/// indexes; every node then keeps views of its state for lagged reads.
fn set_gsi_lag(cluster: &Cluster, req: FaultRequest) -> Result<(String, bool)> {
    let table = member(req.table, "table", "gsi-lag")?;
    let ms = member(req.ms, "ms", "gsi-lag")?;
    if ms > MAX_LAG_MS {
        return Err(Error::validation(format!(
            "GSI lags are limited to {MAX_LAG_MS} ms"
        )));
    }
    let handle = cluster
        .handles()
        .into_iter()
        .next()
        .ok_or_else(|| Error::Unavailable("no node is running".into()))?;
    let meta = handle
        .store()
        .table(&table)?
        .ok_or_else(|| Error::validation(format!("there is no table {table}")))?;
    let globals: Vec<&str> = meta
        .indexes
        .iter()
        .filter(|i| i.kind == IndexKind::Global)
        .map(|i| i.name.as_str())
        .collect();
    match &req.index {
        Some(index) if !globals.contains(&index.as_str()) => {
            return Err(Error::validation(format!(
                "table {table} has no global secondary index {index}; its global indexes: [{}] (local indexes never lag, as in DynamoDB)",
                globals.join(", ")
            )));
        }
        None if globals.is_empty() => {
            return Err(Error::validation(format!(
                "table {table} has no global secondary index"
            )));
        }
        _ => {}
    }
    let what = match &req.index {
        Some(index) => format!("global index {index} of {table}"),
        None => format!("every global index of {table}"),
    };
    {
        let mut lags = cluster
            .index_lag()
            .write()
            .map_err(|_| Error::internal("GSI lag table poisoned"))?;
        if ms == 0 {
            lags.remove(&(table.clone(), req.index.clone()));
        } else {
            lags.insert((table.clone(), req.index.clone()), ms);
        }
    }
    // From now on, reads of the index see the state of now until the lag has passed.
    for h in cluster.handles() {
        h.store().keep_view()?;
    }
    Ok(if ms == 0 {
        (format!("{what} no longer lags"), true)
    } else {
        (
            format!("{what} lags {ms} ms behind its table on every node"),
            false,
        )
    })
}

/// Checks an admin request: loopback callers only (unless `--admin-remote`), and no changes
/// at all under `--no-faults`.
pub(crate) fn authorize(app: &AppState, peer: SocketAddr, changes: bool) -> Result<Cluster> {
    let cluster = app
        .cluster
        .upgrade()
        .ok_or_else(|| Error::Unavailable("the cluster is shutting down".into()))?;
    allowed(cluster.policy(), peer, changes)?;
    Ok(cluster)
}

/// Whether `policy` lets `peer` use the controls (loopback only unless `--admin-remote`), and
/// change anything (`changes`; never under `--no-faults`).
///
/// # Errors
/// `AccessDenied` saying which rule refused it.
pub(crate) fn allowed(policy: AdminPolicy, peer: SocketAddr, changes: bool) -> Result<()> {
    if !policy.remote && !peer.ip().is_loopback() {
        return Err(Error::AccessDenied(format!(
            "admin requests are accepted from loopback only, not from {}; start the server with --admin-remote to allow them",
            peer.ip()
        )));
    }
    if changes && !policy.faults {
        return Err(Error::AccessDenied(
            "fault injection is disabled: the server was started with --no-faults".into(),
        ));
    }
    Ok(())
}

/// An admin answer: the JSON document, or the error in DynamoDB's shape.
pub(crate) fn respond(result: Result<Value>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(&e),
    }
}

fn to_json<T: Serialize>(v: T) -> Result<Value> {
    serde_json::to_value(v).map_err(Error::internal)
}

/// `GET /admin/faults`.
pub async fn list(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    respond(authorize(&app, peer, false).and_then(|c| to_json(doc(&c))))
}

/// The body of `POST /admin/faults/{action}`; each action reads the members it needs.
#[derive(Debug, Default, Deserialize)]
pub struct FaultRequest {
    node: Option<NodeId>,
    groups: Option<Vec<Vec<NodeId>>>,
    ms: Option<u64>,
    jitter_ms: Option<u64>,
    rate: Option<f64>,
    op: Option<String>,
    error: Option<String>,
    table: Option<String>,
    index: Option<String>,
}

pub(crate) fn member<T>(v: Option<T>, name: &str, action: &str) -> Result<T> {
    v.ok_or_else(|| Error::validation(format!("{action} needs \"{name}\"")))
}

fn known_node(cluster: &Cluster, node: NodeId) -> Result<NodeId> {
    known_in(&cluster.node_ids(), node)
}

/// Applies one of the network faults (isolate, partition, delay, drop) to `next`; `None` for
/// any other action. Returns what it did and whether it removed a fault.
///
/// # Errors
/// `Validation` naming what is wrong with the request.
pub(crate) fn network_fault(
    next: &mut NetworkFaults,
    all: &[NodeId],
    action: &str,
    req: &FaultRequest,
) -> Result<Option<(String, bool)>> {
    let mut removed = false;
    let what = match action {
        "isolate" => {
            let node = known_in(all, member(req.node, "node", action)?)?;
            next.isolate(node, all)?;
            format!("isolated node {node} from the others")
        }
        "partition" => {
            let groups: Vec<BTreeSet<NodeId>> = member(req.groups.clone(), "groups", action)?
                .into_iter()
                .map(|g| g.into_iter().collect())
                .collect();
            next.set_partition(groups, all)?;
            format!("partitioned the network: {}", next.describe().join("; "))
        }
        "delay" => {
            let node = known_in(all, member(req.node, "node", action)?)?;
            let ms = member(req.ms, "ms", action)?;
            let jitter_ms = req.jitter_ms.unwrap_or(0);
            if ms
                .checked_add(jitter_ms)
                .is_none_or(|total| total > MAX_DELAY_MS)
            {
                return Err(Error::validation(format!(
                    "delays are limited to {MAX_DELAY_MS} ms in all (ms plus jitter_ms)"
                )));
            }
            if ms == 0 && jitter_ms == 0 {
                next.delays.remove(&node);
                removed = true;
                format!("removed the delay on node {node}")
            } else {
                next.delays.insert(node, Delay { ms, jitter_ms });
                if jitter_ms > 0 {
                    format!(
                        "messages to and from node {node} are delayed {ms} ms (+0..{jitter_ms} ms)"
                    )
                } else {
                    format!("messages to and from node {node} are delayed {ms} ms")
                }
            }
        }
        "drop" => {
            let node = known_in(all, member(req.node, "node", action)?)?;
            let rate = member(req.rate, "rate", action)?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(Error::validation(format!(
                    "rate must be between 0 and 1, got {rate}"
                )));
            }
            if rate == 0.0 {
                next.drops.remove(&node);
                removed = true;
                format!("node {node}'s links no longer lose messages")
            } else {
                next.drops.insert(node, rate);
                format!("node {node}'s links lose {}% of messages", rate * 100.0)
            }
        }
        _ => return Ok(None),
    };
    Ok(Some((what, removed)))
}

/// Applies an error injection action (`errors`, `clear-errors`) to `rules`; `None` for any
/// other action. Returns what it did and whether it removed rules.
///
/// # Errors
/// `Validation` naming what is wrong with the rule.
pub(crate) fn error_fault(
    rules: &SharedErrorRules,
    action: &str,
    req: &FaultRequest,
) -> Result<Option<(String, bool)>> {
    match action {
        "errors" => {
            let rule = ErrorRule::new(
                &member(req.op.clone(), "op", action)?,
                &member(req.error.clone(), "error", action)?,
                member(req.rate, "rate", action)?,
            )?;
            let what = if rule.rate > 0.0 {
                format!(
                    "inject {} into {}% of {}",
                    rule.error,
                    rule.rate * 100.0,
                    rule.op
                )
            } else {
                format!("no longer injecting {} into {}", rule.error, rule.op)
            };
            let removed = rule.rate == 0.0;
            set_rule(rules, rule);
            Ok(Some((what, removed)))
        }
        "clear-errors" => {
            if let Ok(mut all) = rules.write() {
                all.clear();
            }
            Ok(Some(("cleared every error injection rule".into(), true)))
        }
        _ => Ok(None),
    }
}

fn known_in(all: &[NodeId], node: NodeId) -> Result<NodeId> {
    if all.contains(&node) {
        Ok(node)
    } else {
        Err(Error::validation(format!(
            "there is no node {node}; nodes are {all:?}"
        )))
    }
}

/// Applies one fault action; returns what it did and whether it removed faults rather than
/// adding one (for the event log).
fn apply_fault(cluster: &Cluster, action: &str, req: FaultRequest) -> Result<(String, bool)> {
    let all = cluster.node_ids();
    let mut faults = cluster
        .faults()
        .write()
        .map_err(|_| Error::internal("fault table poisoned"))?;
    // Edit a copy so a rejected request changes nothing.
    let mut next = faults.clone();
    if let Some(done) = network_fault(&mut next, &all, action, &req)? {
        *faults = next;
        return Ok(done);
    }
    let removed;
    let what = match action {
        "errors" | "clear-errors" => {
            return error_fault(cluster.error_rules(), action, &req)
                .map(|done| done.unwrap_or_default());
        }
        "gsi-lag" => return set_gsi_lag(cluster, req),
        "heal" => {
            next.heal();
            cluster.heal_disks();
            if let Ok(mut lags) = cluster.index_lag().write() {
                lags.clear();
            }
            removed = true;
            "healed the network, the disks and the indexes: every partition, delay, loss, \
             failing disk and GSI lag removed"
                .into()
        }
        other => {
            return Err(Error::validation(format!(
                "unknown fault {other}; use isolate, partition, delay, drop, errors, clear-errors, gsi-lag or heal"
            )));
        }
    };
    *faults = next;
    Ok((what, removed))
}

/// `POST /admin/faults/{action}`.
pub async fn apply(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(action): Path<String>,
    body: Option<Json<FaultRequest>>,
) -> Response {
    respond(authorize(&app, peer, true).and_then(|cluster| {
        let (what, removed) =
            apply_fault(&cluster, &action, body.map(|b| b.0).unwrap_or_default())?;
        let kind = if removed { "fault_healed" } else { "fault_set" };
        cluster.record(app.node.id, NodeEvent::new(kind, what.clone()));
        let mut v = to_json(doc(&cluster))?;
        v["applied"] = Value::String(what);
        Ok(v)
    }))
}

/// `POST /admin/nodes/{id}/crash`, `/restart`, `/fail-disk` and `/fail-disk-sticky`.
pub async fn node_action(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(NodeId, String)>,
) -> Response {
    let result = async {
        let cluster = authorize(&app, peer, true)?;
        let id = known_node(&cluster, id)?;
        let via = app.node.id;
        let what = match action.as_str() {
            // A node cannot wait for its own server to stop: crash itself in the background.
            "crash" if id == via => {
                cluster.crash_node_in_background(id, via)?;
                format!("node {id} is crashing")
            }
            "crash" => {
                cluster.crash_node(id, via).await?;
                format!("crashed node {id}")
            }
            "restart" => {
                cluster.restart_node(id, via).await?;
                format!("restarted node {id}")
            }
            "fail-disk" | "fail-disk-sticky" => {
                let sticky = action == "fail-disk-sticky";
                cluster.fail_disk(id, sticky, via)?;
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
        let mut d = doc(&cluster);
        if action == "crash" {
            // A node crashing itself is still winding down; it is not running any more.
            d.running.retain(|n| *n != id);
        }
        let mut v = to_json(d)?;
        v["applied"] = Value::String(what);
        Ok(v)
    }
    .await;
    respond(result)
}

/// Body of `POST /admin/transfer-leader`.
#[derive(Debug, Deserialize)]
pub struct TransferRequest {
    to: NodeId,
}

/// `POST /admin/transfer-leader`: asks the current leader to hand over to `to`.
pub async fn transfer_leader(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<TransferRequest>,
) -> Response {
    respond(authorize(&app, peer, true).and_then(|cluster| {
        let to = known_node(&cluster, req.to)?;
        if cluster.node(to).is_none() {
            return Err(Error::validation(format!("node {to} is not running")));
        }
        let leader = cluster
            .handles()
            .into_iter()
            .find(|h| h.is_leader())
            .ok_or_else(|| {
                Error::Unavailable("there is no leader to transfer from; retry shortly".into())
            })?;
        if leader.id == to {
            return Err(Error::validation(format!(
                "node {to} is already the leader"
            )));
        }
        leader.transfer_leader(to)?;
        let what = format!(
            "asked leader {} to transfer leadership to node {to}",
            leader.id
        );
        cluster.record(app.node.id, NodeEvent::new("leader_transfer", what.clone()));
        Ok(serde_json::json!({"applied": what}))
    }))
}
