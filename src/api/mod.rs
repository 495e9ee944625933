//! HTTP: the only module that knows axum. Every node serves, on its one port:
//!
//! - `POST /` — the DynamoDB JSON protocol ([`dispatch`], one file per operation in [`ops`]);
//! - `GET /` — the web console to browsers, DynamoDB's health line to everyone else;
//! - `GET /console`, `GET /console/stream` — the web console and its live feed ([`console`]);
//! - `GET /status` — the node's Raft and storage status as JSON ([`admin`]);
//! - `GET /events` — the node's recent events ([`admin`]);
//! - `GET|POST /admin/...` — the simulator controls: faults, crash, restart, leader transfer
//!   ([`faults`]), loopback only unless the server allows remote admin;
//! - `POST /internal/raft`, `POST /internal/snapshot` — the node-to-node link ([`internal`]).
//!
//! Both engines' nodes serve this one layout ([`routes`]); what differs is only the handlers
//! behind it: Raft mode's here, `--mode dynamo`'s in [`leaderless`] (which has no internal
//! routes: its nodes talk over the in-process mesh).

pub mod admin;
pub mod budget;
pub mod console;
pub mod decode;
pub mod dispatch;
pub mod engine;
pub mod faults;
pub mod inject;
pub mod internal;
pub mod leaderless;
pub mod lean;
pub mod metrics;
pub mod ops;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::{MethodRouter, get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::cluster::{ClusterRef, NodeHandle};

/// What every handler of one node shares: one `Arc`, since axum clones the state for every
/// request (cloning the fields themselves cost a few allocations and a dozen atomic counts per
/// request, a few percent of a GetItem's CPU).
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

impl AppState {
    /// The state of a node's handlers.
    pub fn new(inner: AppInner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppInner {
    /// The node this server fronts.
    pub node: NodeHandle,
    /// HTTP client for forwarding requests to the leader.
    pub client: reqwest::Client,
    /// The cluster, for the simulator controls and error injection.
    pub cluster: ClusterRef,
    /// The secret the cluster's nodes prove membership with on `/internal/*`.
    pub cluster_key: Arc<str>,
    /// What requests in flight may hold in memory, shared by the node's connections.
    pub memory: budget::MemoryBudget,
    /// What the node's server counts for `GET /metrics`.
    pub metrics: metrics::Metrics,
    /// Cancelled when the node's server shuts down: endless requests (peers' raft streams)
    /// end then, rather than holding the shutdown for its whole drain timeout.
    pub shutdown: CancellationToken,
}

/// What one engine's node answers on each route: the only part of the routes that differs
/// between Raft mode and `--mode dynamo` ([`leaderless`]); [`routes`] lays them out.
pub struct Routes<S> {
    /// `POST /`: a DynamoDB operation.
    pub dynamodb: MethodRouter<S>,
    /// `GET /status`.
    pub status: MethodRouter<S>,
    /// `GET /events`.
    pub events: MethodRouter<S>,
    /// `GET /metrics`.
    pub metrics: MethodRouter<S>,
    /// `GET /console/stream`: the console's live feed.
    pub console_stream: MethodRouter<S>,
    /// The simulator's controls, under `/admin/`.
    pub controls: Router<S>,
    /// Routes only the cluster's own nodes call (none in `--mode dynamo`).
    pub internal: Router<S>,
}

/// The node's routes. The DynamoDB endpoint (`/`) also gets what DynamoDB's own has around
/// it: gzip request bodies accepted, gzip answers for clients that ask, the `x-amz-crc32`
/// checksum of every answer (some SDKs verify it), and CORS so browser clients and GUIs can
/// call it; the CORS and gzip layers run only for the requests that need them ([`lean`]). The
/// admin routes and the console's feed answer cross-origin requests from the cluster's own nodes
/// (`addrs`) only (the console moves between nodes), and refuse requests
/// from any other web origin: a web page must not be able to crash nodes through a user's
/// browser. The internal routes get no CORS.
pub fn routes<'a, S: Clone + Send + Sync + 'static>(
    r: Routes<S>,
    addrs: impl IntoIterator<Item = &'a String>,
) -> Router<S> {
    use tower::ServiceBuilder;
    use tower_http::compression::CompressionLayer;
    use tower_http::cors::{Any, CorsLayer};
    use tower_http::decompression::RequestDecompressionLayer;

    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers(Any)
        .max_age(Duration::from_secs(3600));
    // The layers only for the requests that need them ([`lean`]).
    let endpoint = r.dynamodb.get(console::root).layer(lean::Choose {
        plain: axum::middleware::map_response(dispatch::add_crc32),
        full: ServiceBuilder::new()
            .layer(cors)
            .layer(axum::middleware::map_response(dispatch::add_crc32))
            .layer(CompressionLayer::new().gzip(true))
            .layer(RequestDecompressionLayer::new().gzip(true))
            .map_request(|req: axum::http::Request<_>| req.map(axum::body::Body::new)),
    });
    let origins = console::cluster_origins(addrs);
    let controls = r
        .controls
        .route("/console/stream", r.console_stream)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(origins.clone()),
            console::same_cluster_origin,
        ))
        .layer(console::cors(origins));
    Router::new()
        .route("/", endpoint)
        .route("/console", get(console::page))
        .route("/console/app.js", get(console::script))
        .route("/console/style.css", get(console::style))
        .route("/status", r.status)
        .route("/metrics", r.metrics)
        .route("/events", r.events)
        .merge(controls)
        .merge(r.internal)
}

/// A Raft node's routes ([`routes`]).
pub fn router(state: AppState) -> Router {
    let addrs = state.node.addrs().values().cloned().collect::<Vec<_>>();
    routes(
        Routes {
            dynamodb: post(dispatch::dynamodb),
            status: get(admin::status),
            events: get(admin::events),
            metrics: get(metrics::metrics),
            console_stream: get(console::stream),
            controls: Router::new()
                .route("/admin/digest", get(admin::digest))
                .route("/admin/faults", get(faults::list))
                .route("/admin/faults/{action}", post(faults::apply))
                .route("/admin/nodes/{id}/{action}", post(faults::node_action))
                .route("/admin/transfer-leader", post(faults::transfer_leader)),
            internal: Router::new()
                .route("/internal/raft", post(internal::raft))
                .route("/internal/raft/stream", post(internal::raft_stream))
                .route("/internal/snapshot", post(internal::snapshot)),
        },
        &addrs,
    )
    .with_state(state)
}

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves a node on `listener` until `shutdown` is cancelled, then finishes in-flight requests.
///
/// A hand-rolled accept loop rather than `axum::serve`, for the limits a database server
/// needs (the node's [`crate::config::Tuning`]): at most `max_connections` connections, a
/// connection beyond them answered `ServiceUnavailable` and closed at once (as a database
/// refuses "too many clients" rather than leaving them hanging), and `header_timeout` to send
/// each request head, so that slow, half-open or thousands of idle connections cannot exhaust
/// the node. (Request bodies have their own size limit and timeout in [`dispatch`].)
pub async fn serve(
    listener: TcpListener,
    router: Router,
    (id, tuning): (u64, &crate::config::Tuning),
    connections: prometheus_client::metrics::gauge::Gauge,
    shutdown: CancellationToken,
) {
    let max = tuning.max_connections;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(tuning.header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(node = id, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, id, max));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req)
            });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let open = connections.clone();
        open.inc();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(node = id, %peer, "connection ended: {e}");
            }
            open.dec();
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!(node = id, "in-flight requests did not finish within {DRAIN_TIMEOUT:?}");
        }
    }
}

/// Answers a connection over the limit with DynamoDB's retryable `ServiceUnavailable` and
/// closes it, without reading its request: it holds no slot and costs a few bytes.
async fn refuse(mut stream: tokio::net::TcpStream, id: crate::raft::NodeId, max: usize) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
        "message": format!(
            "node {id} already has {max} connections open, its limit; retry, or reuse connections"
        ),
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        wire::CONTENT_TYPE,
        body.len()
    );
    // Bounded: a client that does not read cannot hold this task.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
