//! HTTP: the only module that knows axum. Every node serves, on its one port:
//!
//! - `POST /` — the DynamoDB JSON protocol ([`dispatch`], one file per operation in [`ops`]);
//! - `GET /` — a health check;
//! - `GET /status` — the node's Raft and storage status as JSON ([`admin`]);
//! - `POST /internal/raft`, `POST /internal/snapshot` — the node-to-node link ([`internal`]).

pub mod admin;
pub mod dispatch;
pub mod internal;
pub mod ops;
pub mod wire;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cluster::NodeHandle;

/// What every handler of one node shares.
#[derive(Clone)]
pub struct AppState {
    /// The node this server fronts.
    pub node: NodeHandle,
    /// HTTP client for forwarding requests to the leader.
    pub client: reqwest::Client,
}

/// The node's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", post(dispatch::dynamodb).get(admin::health))
        .route("/status", get(admin::status))
        .route("/internal/raft", post(internal::raft))
        .route("/internal/snapshot", post(internal::snapshot))
        .with_state(state)
}

/// Serves `node` on `listener` until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    node: NodeHandle,
    client: reqwest::Client,
    shutdown: CancellationToken,
) {
    let id = node.id;
    let app = router(AppState { node, client });
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(node = id, "HTTP server failed: {e}");
    }
}
