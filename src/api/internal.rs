//! The node-to-node routes: raft message batches and snapshot streams (see
//! [`crate::raft::transport`] for the sending side and the formats).

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::api::AppState;
use crate::raft::node::incoming_snapshot_path;
use crate::raft::transport::{CLUSTER_KEY_HEADER, decode_batch};

/// Largest raft batch accepted.
const MAX_RAFT_BATCH_BYTES: usize = 64 << 20;

/// Refuses a request that does not carry this cluster's key: only the other nodes of this
/// cluster may deliver raft messages or snapshots.
fn check_member(app: &AppState, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let given = headers
        .get(CLUSTER_KEY_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    // Compare every byte whatever the first mismatch, so timing reveals nothing of the key.
    let key = app.cluster_key.as_bytes();
    let same = given.len() == key.len()
        && given.iter().zip(key).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "only nodes of this cluster may use /internal/ routes".into(),
        ))
    }
}

/// `POST /internal/raft`: a batch of raft messages for this node.
pub async fn raft(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, String) {
    if let Err(refused) = check_member(&app, &headers) {
        return refused;
    }
    let bytes = match axum::body::to_bytes(body, MAX_RAFT_BATCH_BYTES).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, format!("raft batch: {e}")),
    };
    let msgs = match decode_batch(&bytes) {
        Ok(m) => m,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
    };
    match deliver(&app, msgs) {
        Ok(()) => (StatusCode::NO_CONTENT, String::new()),
        Err(refused) => refused,
    }
}

/// Hands `msgs` to this node, refusing any addressed to another node.
fn deliver(app: &AppState, msgs: Vec<raft::eraftpb::Message>) -> Result<(), (StatusCode, String)> {
    if let Some(m) = msgs.iter().find(|m| m.to != app.node.id) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "message for node {} delivered to node {}",
                m.to, app.node.id
            ),
        ));
    }
    app.node
        .deliver(msgs)
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

/// `POST /internal/raft/stream`: a peer's endless stream of raft messages for this node, each
/// delivered as soon as it has arrived whole. Ends when the peer closes it, on a malformed
/// message, when this node stops taking messages, or when this node's server shuts down.
pub async fn raft_stream(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, String) {
    if let Err(refused) = check_member(&app, &headers) {
        return refused;
    }
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    loop {
        let chunk = tokio::select! {
            () = app.shutdown.cancelled() => return (StatusCode::NO_CONTENT, String::new()),
            chunk = stream.next() => chunk,
        };
        match chunk {
            None => return (StatusCode::NO_CONTENT, String::new()),
            Some(Err(e)) => return (StatusCode::BAD_REQUEST, format!("raft stream: {e}")),
            Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
        }
        let mut msgs = Vec::new();
        while let Some(len) = buf
            .first_chunk::<4>()
            .map(|l| u32::from_be_bytes(*l) as usize)
        {
            if len > MAX_RAFT_BATCH_BYTES {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("raft message of {len} bytes"),
                );
            }
            if buf.len() < 4 + len {
                break;
            }
            let frame = buf.split_to(4 + len);
            match decode_batch(&frame) {
                Ok(m) => msgs.extend(m),
                Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
            }
        }
        if !msgs.is_empty()
            && let Err(refused) = deliver(&app, msgs)
        {
            return refused;
        }
    }
}

/// Query of a snapshot stream.
#[derive(Deserialize)]
pub struct SnapshotQuery {
    index: u64,
    term: u64,
}

/// `POST /internal/snapshot?index=I&term=T`: stages a streamed snapshot in a file, renamed into
/// place only when complete, so the node never installs a partial one.
pub async fn snapshot(
    State(app): State<AppState>,
    Query(q): Query<SnapshotQuery>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, String) {
    if let Err(refused) = check_member(&app, &headers) {
        return refused;
    }
    let dir = app.node.snapshot_dir().clone();
    let done = incoming_snapshot_path(&dir, q.index, q.term);
    let partial = done.with_extension("partial");
    let result: std::io::Result<()> = async {
        tokio::fs::create_dir_all(&dir).await?;
        let mut file = tokio::fs::File::create(&partial).await?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        drop(file);
        tokio::fs::rename(&partial, &done).await
    }
    .await;
    match result {
        Ok(()) => (StatusCode::NO_CONTENT, String::new()),
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            tracing::warn!(node = app.node.id, "snapshot stream failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}
