//! The console's live feed in `--mode dynamo`: the same frames as Raft mode's (nodes, links as
//! the faults leave them, the messages between nodes by kind, events, whether the controls
//! work), with each node drawn as a replica: whether it runs, whom it suspects, the hints it
//! holds for others, and the cluster's N, R, W and merger in place of a leader.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use futures_util::Stream;
use serde::Serialize;

use super::{Frame, Quorum, Source, controls, event_of, feed, flows, foreign_page, links};
use crate::NodeId;
use crate::api::leaderless::LeaderlessState;

/// How long a frame waits for one node's view (a node busy with a backlog is drawn without).
const VIEW_WAIT: Duration = Duration::from_millis(100);

/// One node as the console draws it in `--mode dynamo`.
#[derive(Debug, Serialize)]
struct ReplicaView {
    node_id: NodeId,
    addr: String,
    /// The node runs (a crashed node is down; a failed one stopped on an error).
    up: bool,
    /// `replica`, `failed` or `down`.
    role: &'static str,
    /// Why it stopped, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
    /// The peers it suspects.
    suspected: Vec<NodeId>,
    /// Writes it keeps for owners it could not reach.
    hints: usize,
    /// Its own incarnation (raised each time it refutes a suspicion).
    incarnation: u64,
    /// The network faults touching this node.
    faults: Vec<String>,
    /// Its disk fails writes after every restart.
    failing_disk: bool,
    /// Requests answered since the cluster started, and their summed latency.
    requests: u64,
    micros: u64,
}

struct Feed {
    app: LeaderlessState,
    peer: SocketAddr,
    foreign_page: Option<String>,
    sent: HashMap<(NodeId, NodeId, &'static str), u64>,
    seen: BTreeMap<NodeId, u64>,
    first: bool,
}

impl Source for Feed {
    async fn frame(&mut self) -> Event {
        let Some(cluster) = self.app.cluster.upgrade() else {
            return Event::default()
                .event("failure")
                .data("the cluster is shutting down");
        };
        let faults = cluster
            .faults()
            .read()
            .map(|f| f.clone())
            .unwrap_or_default();
        let failing = cluster.failing_disks();
        let mut nodes = Vec::new();
        for (&id, addr) in cluster.addrs() {
            let handle = cluster.node(id);
            let failure = handle.as_ref().and_then(|h| h.failure());
            let view = match &handle {
                Some(h) if failure.is_none() => tokio::time::timeout(VIEW_WAIT, h.view())
                    .await
                    .ok()
                    .and_then(Result::ok),
                _ => None,
            };
            let totals = cluster
                .metrics_of(id)
                .map(crate::api::metrics::Metrics::totals)
                .unwrap_or_default();
            nodes.push(ReplicaView {
                node_id: id,
                addr: addr.clone(),
                up: handle.is_some(),
                role: match (&handle, &failure) {
                    (Some(_), None) => "replica",
                    (Some(_), Some(_)) => "failed",
                    (None, _) => "down",
                },
                failure,
                suspected: view
                    .as_ref()
                    .map(|v| v.suspected.iter().copied().collect())
                    .unwrap_or_default(),
                hints: view.as_ref().map_or(0, |v| v.hints.values().sum()),
                incarnation: view
                    .as_ref()
                    .and_then(|v| v.view.iter().find(|g| g.node == id))
                    .map_or(0, |g| g.incarnation),
                faults: faults.describe_node(id),
                failing_disk: failing.contains(&id),
                requests: totals.requests,
                micros: totals.micros,
            });
        }
        let ids: Vec<NodeId> = cluster.addrs().keys().copied().collect();
        let flows = flows(&mut self.sent, cluster.flows().read(), self.first);
        let logs: Vec<_> = ids
            .iter()
            .map(|&id| {
                let after = self.seen.get(&id).copied().unwrap_or(0);
                (id, cluster.events(id).since(after))
            })
            .collect();
        let events = super::new_events(&mut self.seen, logs);
        let allowed = crate::api::faults::allowed(cluster.config().policy, self.peer, true);
        let controls = controls(allowed, self.foreign_page.as_ref());
        self.first = false;
        let config = cluster.config();
        event_of(&Frame::new(
            "dynamo",
            self.app.id,
            None,
            Some(Quorum {
                replicas: config.replicas,
                read_quorum: config.read_quorum,
                write_quorum: config.write_quorum,
                merger: config.merger.clone(),
            }),
            nodes,
            links(&ids, &faults),
            cluster.describe_faults(),
            flows,
            events,
            controls,
        ))
    }
}

/// `GET /console/stream` in `--mode dynamo`.
pub async fn stream(
    State(app): State<LeaderlessState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let cluster = app.cluster.upgrade();
    let (foreign, shutdown) = match &cluster {
        Some(c) => {
            let own = c.addrs().get(&app.id).cloned().unwrap_or_default();
            (
                foreign_page(&headers, c.addrs().values(), &own),
                c.shutdown_token(),
            )
        }
        None => {
            // Shutting down: a feed that ends at once.
            let token = tokio_util::sync::CancellationToken::new();
            token.cancel();
            (None, token)
        }
    };
    let source = Feed {
        app,
        peer,
        foreign_page: foreign,
        sent: HashMap::new(),
        seen: BTreeMap::new(),
        first: true,
    };
    feed(source, shutdown)
}
