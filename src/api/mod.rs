//! HTTP: the only module that knows axum. Every node serves, on its one port:
//!
//! - `POST /` — the DynamoDB JSON protocol ([`dispatch`], one file per operation in [`ops`]);
//! - `GET /` — a health check;
//! - `GET /status` — the node's Raft and storage status as JSON ([`admin`]);
//! - `GET /events` — the node's recent events ([`admin`]);
//! - `GET|POST /admin/...` — the simulator controls: faults, crash, restart, leader transfer
//!   ([`faults`]), loopback only unless the server allows remote admin;
//! - `POST /internal/raft`, `POST /internal/snapshot` — the node-to-node link ([`internal`]).

pub mod admin;
pub mod dispatch;
pub mod faults;
pub mod inject;
pub mod internal;
pub mod ops;
pub mod wire;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterRef, NodeHandle};

/// What every handler of one node shares.
#[derive(Clone)]
pub struct AppState {
    /// The node this server fronts.
    pub node: NodeHandle,
    /// HTTP client for forwarding requests to the leader.
    pub client: reqwest::Client,
    /// The cluster, for the simulator controls and error injection.
    pub cluster: ClusterRef,
}

/// The node's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", post(dispatch::dynamodb).get(admin::health))
        .route("/status", get(admin::status))
        .route("/events", get(admin::events))
        .route("/admin/faults", get(faults::list))
        .route("/admin/faults/{action}", post(faults::apply))
        .route("/admin/nodes/{id}/{action}", post(faults::node_action))
        .route("/admin/transfer-leader", post(faults::transfer_leader))
        .route("/internal/raft", post(internal::raft))
        .route("/internal/snapshot", post(internal::snapshot))
        .with_state(state)
}

/// Serves a node on `listener` until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: CancellationToken) {
    let id = state.node.id;
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(node = id, "HTTP server failed: {e}");
    }
}
