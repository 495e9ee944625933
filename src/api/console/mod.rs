//! The web console: its page and assets (the files of `console/`, embedded in the binary), the
//! live feed it draws from (`GET /console/stream`, Server-Sent Events), the answer to `GET /`
//! (the page for browsers, DynamoDB's own health line for everyone else), and which web
//! origins may call the simulator controls.
//!
//! One page serves both engines: each frame names its `mode`, and [`leaderless`] feeds it in
//! `--mode dynamo` (replicas, suspicions and hints instead of Raft's roles and terms).
//!
//! The feed is one `frame` event every [`FRAME_INTERVAL`]: every node's Raft state, health and
//! request totals, the links between nodes as the faults leave them, the Raft messages each
//! node sent since the last frame (counted by kind, so a busy cluster costs the page one dot
//! per link and kind, not one per message), the events recorded since, and whether this
//! caller may use the controls. Reading it all costs a few atomic loads and short locks.
//!
//! The controls are the `/admin/...` routes. A browser sends an `Origin` with every request a
//! page makes to another site, and many to its own; the admin routes refuse any origin that
//! is not one of the cluster's own nodes, so a web page elsewhere cannot crash nodes through a
//! user's browser, while the console, served by any node, may call every node (it moves to
//! another node when the one that served it is crashed).

pub mod leaderless;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::NodeId;
use crate::api::AppState;
use crate::api::dispatch::error_response;
use crate::events::EventRecord;
use crate::faults::NetworkFaults;
use crate::raft::driver::Health;

/// How often the feed sends a frame.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(250);

/// Events sent in the first frame, at most: the page's timeline starts with recent history.
const FIRST_EVENTS: usize = 200;

static INDEX_HTML: &str = include_str!("../../../console/index.html");
static APP_JS: &str = include_str!("../../../console/app.js");
static STYLE_CSS: &str = include_str!("../../../console/style.css");

/// `GET /`: the console to a browser (a request whose `Accept` asks for HTML), and to anyone
/// else DynamoDB's health answer, `healthy: <host>` as plain text, which load balancers, SDK
/// health checks and test suites expect of the endpoint.
pub async fn root(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        return page().await;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("kvsim");
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("healthy: {host}"),
    )
        .into_response()
}

/// `GET /console`: the page. No other site may frame it: a page that framed the console
/// could trick a user into clicking its controls, and those clicks would come from the
/// cluster's own origin.
pub async fn page() -> Response {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "frame-ancestors 'none'; default-src 'self'; connect-src 'self' http:; \
             img-src 'self' data:",
        ),
    );
    response
}

/// `GET /console/app.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /console/style.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The assets are the binary's: a new build may change them.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// One node as the console draws it.
#[derive(Debug, Serialize)]
struct NodeView {
    node_id: NodeId,
    addr: String,
    /// The node's server and Raft thread run (a crashed or stopped node is down).
    up: bool,
    health: Option<Health>,
    role: &'static str,
    term: u64,
    leader_id: Option<NodeId>,
    commit_index: u64,
    applied_index: u64,
    last_log_index: u64,
    /// Entries the leader has committed that this node has not applied yet.
    lag: Option<u64>,
    pending_proposals: usize,
    pending_reads: usize,
    /// The network faults touching this node.
    faults: Vec<String>,
    /// Its disk fails writes.
    failing_disk: bool,
    /// Requests answered since the node started, and their summed latency.
    requests: u64,
    micros: u64,
}

/// A pair of nodes and what the faults do to messages between them.
#[derive(Debug, Serialize)]
pub(crate) struct LinkView {
    a: NodeId,
    b: NodeId,
    cut: bool,
    delay_ms: u64,
    drop_rate: f64,
}

/// Messages one node sent another since the last frame, of one kind.
#[derive(Debug, Serialize)]
pub(crate) struct Flow {
    from: NodeId,
    to: NodeId,
    kind: &'static str,
    count: u64,
}

/// Whether this caller may use the controls, and if not why.
#[derive(Debug, Serialize)]
pub(crate) struct Controls {
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// A leaderless cluster's replication settings, as the console shows them.
#[derive(Debug, Serialize)]
pub(crate) struct Quorum {
    pub replicas: usize,
    pub read_quorum: usize,
    pub write_quorum: usize,
    pub merger: String,
}

/// One frame of the feed, with the nodes as the engine describes them.
#[derive(Debug, Serialize)]
pub(crate) struct Frame<N> {
    time_ms: u64,
    /// `raft` or `dynamo`.
    mode: &'static str,
    /// The node serving this feed.
    via: NodeId,
    leader_id: Option<NodeId>,
    /// In `--mode dynamo`: N, R, W and the merger.
    #[serde(skip_serializing_if = "Option::is_none")]
    quorum: Option<Quorum>,
    nodes: Vec<N>,
    links: Vec<LinkView>,
    faults: Vec<String>,
    flows: Vec<Flow>,
    events: Vec<EventRecord>,
    controls: Controls,
}

impl<N> Frame<N> {
    /// A frame of `nodes` and the rest, stamped now.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        mode: &'static str,
        via: NodeId,
        leader_id: Option<NodeId>,
        quorum: Option<Quorum>,
        nodes: Vec<N>,
        links: Vec<LinkView>,
        faults: Vec<String>,
        flows: Vec<Flow>,
        events: Vec<EventRecord>,
        controls: Controls,
    ) -> Frame<N> {
        Frame {
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            mode,
            via,
            leader_id,
            quorum,
            nodes,
            links,
            faults,
            flows,
            events,
            controls,
        }
    }
}

/// The links between every pair of `ids`, as `faults` leave them.
pub(crate) fn links(ids: &[NodeId], faults: &NetworkFaults) -> Vec<LinkView> {
    let mut links = Vec::new();
    for (i, &a) in ids.iter().enumerate() {
        for &b in &ids[i + 1..] {
            let (ab, ba) = (faults.link(a, b), faults.link(b, a));
            links.push(LinkView {
                a,
                b,
                cut: ab.cut || ba.cut,
                delay_ms: ab.delay_ms.max(ba.delay_ms),
                drop_rate: ab.drop_rate.max(ba.drop_rate),
            });
        }
    }
    links
}

/// The events of every node in `logs` after the last one `seen` (updated), in time order,
/// at most [`FIRST_EVENTS`].
pub(crate) fn new_events(
    seen: &mut BTreeMap<NodeId, u64>,
    logs: impl IntoIterator<Item = (NodeId, Vec<EventRecord>)>,
) -> Vec<EventRecord> {
    let mut events = Vec::new();
    for (id, new) in logs {
        if let Some(last) = new.last() {
            seen.insert(id, last.seq);
        }
        events.extend(new);
    }
    events.sort_by_key(|e| (e.time_ms, e.node_id, e.seq));
    if events.len() > FIRST_EVENTS {
        events.drain(..events.len() - FIRST_EVENTS);
    }
    events
}

/// Whether the controls work for this feed's caller: `allowed` is the admin policy's answer,
/// `foreign_page` why the page's own address cannot use them.
pub(crate) fn controls(allowed: crate::Result<()>, foreign_page: Option<&String>) -> Controls {
    match (allowed, foreign_page) {
        (Err(e), _) => Controls {
            enabled: false,
            reason: Some(e.to_string()),
        },
        (Ok(()), Some(why)) => Controls {
            enabled: false,
            reason: Some(why.clone()),
        },
        (Ok(()), None) => Controls {
            enabled: true,
            reason: None,
        },
    }
}

/// Message counts since the last frame, from cumulative `counts` of `(from, to, kind)`,
/// remembering them in `sent` (a count below the last one: the sender restarted and counts
/// from zero again). The first frame only remembers.
pub(crate) fn flows(
    sent: &mut HashMap<(NodeId, NodeId, &'static str), u64>,
    counts: impl IntoIterator<Item = (NodeId, NodeId, &'static str, u64)>,
    first: bool,
) -> Vec<Flow> {
    let mut out = Vec::new();
    for (from, to, kind, count) in counts {
        let last = sent.insert((from, to, kind), count).unwrap_or(0);
        let new = if count >= last { count - last } else { count };
        if new > 0 && !first {
            out.push(Flow {
                from,
                to,
                kind,
                count: new,
            });
        }
    }
    out
}

/// Why a page loaded under `headers`' origin cannot use the controls, if it cannot: the admin
/// routes accept only the nodes' own addresses (`addrs`); `own` is this node's.
pub(crate) fn foreign_page<'a>(
    headers: &HeaderMap,
    addrs: impl IntoIterator<Item = &'a String>,
    own: &str,
) -> Option<String> {
    // The page's own origin: the `Origin` a cross-origin feed request carries, else the
    // address the page was loaded from (this request's `Host`).
    let page = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(|host| format!("http://{host}"))
        });
    let origins = cluster_origins(addrs);
    page.filter(|page| !origins.iter().any(|o| o.as_bytes() == page.as_bytes()))
        .map(|page| {
            format!(
                "this page was opened as {page}, and the controls accept only the nodes' own \
                 addresses; open the console at http://{own}/"
            )
        })
}

/// What draws a feed's frames.
pub(crate) trait Source: Send + 'static {
    /// The next frame, as its event.
    fn frame(&mut self) -> impl Future<Output = Event> + Send;
}

/// A frame as its SSE event (`frame`, or `failure` if it cannot be encoded).
pub(crate) fn event_of<T: Serialize>(frame: &T) -> Event {
    match Event::default().event("frame").json_data(frame) {
        Ok(event) => event,
        Err(e) => Event::default().event("failure").data(e.to_string()),
    }
}

/// The feed: one frame of `source` every [`FRAME_INTERVAL`], until the client goes away or
/// `shutdown` is cancelled.
pub(crate) fn feed<S: Source>(
    source: S,
    shutdown: CancellationToken,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut interval = tokio::time::interval(FRAME_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let frames = futures_util::stream::unfold(
        (source, interval, shutdown),
        |(mut source, mut interval, shutdown)| async move {
            tokio::select! {
                () = shutdown.cancelled() => None,
                _ = interval.tick() => {
                    let event = source.frame().await;
                    Some((Ok(event), (source, interval, shutdown)))
                }
            }
        },
    );
    Sse::new(frames).keep_alive(KeepAlive::default())
}

/// What one feed remembers between frames.
struct Feed {
    app: AppState,
    peer: SocketAddr,
    /// Why the page cannot use the controls whatever the server allows: it was opened under
    /// an address that is not one of the nodes' own, whose requests the admin routes refuse.
    foreign_page: Option<String>,
    /// Each node's message counts at the last frame.
    sent: HashMap<(NodeId, NodeId, &'static str), u64>,
    /// The last event sequence number sent, per node.
    seen: BTreeMap<NodeId, u64>,
    first: bool,
}

impl Source for Feed {
    async fn frame(&mut self) -> Event {
        event_of(&self.frame())
    }
}

impl Feed {
    fn frame(&mut self) -> Frame<NodeView> {
        let app = &self.app;
        let cluster = app.cluster.upgrade();
        let addrs = app.node.addrs();
        let faults = cluster
            .as_ref()
            .and_then(|c| c.faults().read().ok().map(|f| f.clone()))
            .unwrap_or_default();
        let failing = cluster
            .as_ref()
            .map(crate::cluster::Cluster::failing_disks)
            .unwrap_or_default();
        let mut nodes = Vec::with_capacity(addrs.len());
        let mut counts = Vec::new();
        for (&id, addr) in addrs.iter() {
            let handle = cluster.as_ref().and_then(|c| c.node(id));
            let published = handle.as_ref().map(crate::cluster::NodeHandle::published);
            let raft = published.as_ref().and_then(|p| p.raft.clone());
            let health = published.map(|p| p.health);
            let running = health == Some(Health::Running);
            let metrics = cluster.as_ref().and_then(|c| c.metrics_of(id));
            if metrics.is_none() {
                // Down: when it starts again, its counts start again from zero.
                self.sent.retain(|(from, _, _), _| *from != id);
            }
            let totals = metrics
                .map(|m| {
                    counts.extend(
                        m.raft_messages()
                            .flows
                            .read()
                            .into_iter()
                            .map(|(to, kind, count)| (id, to, kind, count)),
                    );
                    m.totals()
                })
                .unwrap_or_default();
            nodes.push(NodeView {
                node_id: id,
                addr: addr.clone(),
                up: handle.is_some(),
                role: match (&raft, running) {
                    (Some(r), true) => r.role,
                    (_, true) => "follower",
                    (_, false) if handle.is_some() => "failed",
                    _ => "down",
                },
                health,
                term: raft.as_ref().map_or(0, |r| r.term),
                leader_id: raft.as_ref().and_then(|r| r.leader_id).filter(|_| running),
                commit_index: raft.as_ref().map_or(0, |r| r.commit_index),
                applied_index: raft.as_ref().map_or(0, |r| r.applied_index),
                last_log_index: raft.as_ref().map_or(0, |r| r.last_log_index),
                lag: None,
                pending_proposals: raft.as_ref().map_or(0, |r| r.pending_proposals),
                pending_reads: raft.as_ref().map_or(0, |r| r.pending_reads),
                faults: faults.describe_node(id),
                failing_disk: failing.contains(&id),
                requests: totals.requests,
                micros: totals.micros,
            });
        }
        let flows = flows(&mut self.sent, counts, self.first);
        // The leader is the running node that says it leads, in the highest term.
        let leader = nodes
            .iter()
            .filter(|n| n.up && n.role == "leader")
            .max_by_key(|n| n.term)
            .map(|n| (n.node_id, n.commit_index));
        if let Some((_, commit)) = leader {
            for n in nodes.iter_mut().filter(|n| n.up) {
                n.lag = Some(commit.saturating_sub(n.applied_index));
            }
        }
        let ids: Vec<NodeId> = addrs.keys().copied().collect();
        let links = links(&ids, &faults);
        let events = match &cluster {
            Some(c) => {
                let seen = &self.seen;
                let logs: Vec<_> = ids
                    .iter()
                    .map(|&id| {
                        let after = seen.get(&id).copied().unwrap_or(0);
                        (
                            id,
                            c.events(id).map(|log| log.since(after)).unwrap_or_default(),
                        )
                    })
                    .collect();
                new_events(&mut self.seen, logs)
            }
            None => Vec::new(),
        };
        let allowed = crate::api::faults::authorize(app, self.peer, true).map(|_| ());
        let controls = controls(allowed, self.foreign_page.as_ref());
        self.first = false;
        Frame::new(
            "raft",
            app.node.id,
            leader.map(|(id, _)| id),
            None,
            nodes,
            links,
            cluster.map(|c| c.describe_faults()).unwrap_or_default(),
            flows,
            events,
            controls,
        )
    }
}

/// `GET /console/stream`: the console's live feed, one `frame` event every
/// [`FRAME_INTERVAL`], until the client goes away or the node's server shuts down.
pub async fn stream(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let foreign_page = foreign_page(&headers, app.node.addrs().values(), app.node.addr());
    let shutdown = app.shutdown.clone();
    let feed_state = Feed {
        app,
        peer,
        foreign_page,
        sent: HashMap::new(),
        seen: BTreeMap::new(),
        first: true,
    };
    feed(feed_state, shutdown)
}

/// The web origins of the cluster's nodes: `http://HOST:PORT` for every node's address, with
/// `localhost` and `127.0.0.1` both accepted for a loopback address.
pub fn cluster_origins<'a>(addrs: impl IntoIterator<Item = &'a String>) -> Vec<HeaderValue> {
    let mut out = Vec::new();
    for addr in addrs {
        let mut hosts = vec![addr.clone()];
        if let Some((host, port)) = addr.rsplit_once(':') {
            match host {
                "127.0.0.1" => hosts.push(format!("localhost:{port}")),
                "localhost" => hosts.push(format!("127.0.0.1:{port}")),
                _ => {}
            }
        }
        out.extend(
            hosts
                .iter()
                .filter_map(|h| HeaderValue::from_str(&format!("http://{h}")).ok()),
        );
    }
    out
}

/// Cross-origin access to the controls and the feed, for the console on any of the cluster's
/// nodes and for nothing else.
pub fn cors(origins: Vec<HeaderValue>) -> tower_http::cors::CorsLayer {
    use axum::http::Method;
    tower_http::cors::CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600))
}

/// Refuses a request that a browser sent on behalf of a page from outside the cluster (its
/// `Origin` is not one of the nodes'): the admin routes change the cluster, and CORS alone
/// does not stop a page from sending a simple `POST`, only from reading the answer.
pub async fn same_cluster_origin(
    State(origins): State<std::sync::Arc<Vec<HeaderValue>>>,
    request: Request,
    next: Next,
) -> Response {
    match request.headers().get(header::ORIGIN) {
        Some(origin) if !origins.contains(origin) => {
            let shown = origin.to_str().unwrap_or("(not text)");
            error_response(&Error::AccessDenied(format!(
                "admin requests from web pages are accepted only from the cluster's own \
                 console, not from origin {shown}"
            )))
        }
        _ => next.run(request).await,
    }
}
