//! Node-to-node messages over loopback HTTP, on each node's own port under `/internal/`.
//!
//! - `POST /internal/raft`: a batch of raft messages, each `len:u32 BE` + protobuf bytes.
//! - `POST /internal/snapshot?index=I&term=T`: a snapshot's state machine rows, streamed.
//!
//! Sending never blocks a node's loop: [`Transport::send`] drops each message into a bounded
//! per-peer queue (dropping it when the queue is full, which Raft tolerates as message loss),
//! and one async task per peer drains its queue into batched requests, one in flight at a time
//! so a peer sees messages in order. A failed request reports the peer unreachable to raft,
//! which then probes instead of streaming.
//!
//! A `MsgSnapshot` carries only metadata. The peer task hands it to a separate task that
//! streams the rows from the leader's held read transaction (see
//! [`LogStore::snapshot`](crate::raft::log_store::LogStore)) to the follower, which stages them in
//! a file; only then is the `MsgSnapshot` itself delivered, and raft is told how it went. No
//! single message ever holds a whole table.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::ReadTransaction;
use tokio::sync::mpsc;

use crate::raft::NodeId;
use crate::raft::faults::{LinkFate, SharedFaults};
use crate::raft::log_store::SnapshotSlot;
use crate::{Error, Result};

/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE: usize = 4096;
/// Most messages sent in one request.
const MAX_BATCH: usize = 256;
/// Most bytes sent in one request (the receiver accepts up to 64 MiB; raft caps one append at
/// 1 MiB of entries, so a batch stops well inside the limit).
const MAX_BATCH_BYTES: u64 = 16 << 20;
/// Timeout of one batch request.
const BATCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Size of the chunks a snapshot is streamed in.
const SNAPSHOT_CHUNK: usize = 256 * 1024;

/// Header naming the sending node.
pub const FROM_HEADER: &str = "x-kvsim-from";

/// What the transport tells its node about delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// A request to this peer failed.
    Unreachable(NodeId),
    /// A snapshot stream to this peer finished (`true`) or failed.
    Snapshot(NodeId, bool),
}

/// Writes a node's snapshot rows (the state machine's `export`).
pub type Exporter = Arc<dyn Fn(&ReadTransaction, &mut dyn Write) -> Result<()> + Send + Sync>;

/// Outbound side of one node's transport.
pub struct Transport {
    queues: BTreeMap<NodeId, mpsc::Sender<Message>>,
    report: Arc<dyn Fn(Report) + Send + Sync>,
}

/// Everything a peer task needs.
#[derive(Clone)]
pub struct TransportContext {
    /// This node's id.
    pub from: NodeId,
    /// HTTP client shared by the node's peer tasks.
    pub client: reqwest::Client,
    /// Where delivery reports go (the node's inbox).
    pub report: Arc<dyn Fn(Report) + Send + Sync>,
    /// The node's outgoing snapshot slot.
    pub snapshots: SnapshotSlot,
    /// The state machine's export.
    pub exporter: Exporter,
    /// The simulated network faults every batch is subject to.
    pub faults: SharedFaults,
}

impl TransportContext {
    fn fate(&self, to: NodeId) -> LinkFate {
        self.faults
            .read()
            .map(|f| f.link(self.from, to))
            .unwrap_or(LinkFate {
                cut: false,
                delay_ms: 0,
                jitter_ms: 0,
                drop_rate: 0.0,
            })
    }
}

impl Transport {
    /// Starts one sender task per peer on `runtime`. Tasks end when the `Transport` is dropped.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        peers: &BTreeMap<NodeId, String>,
        ctx: TransportContext,
    ) -> Transport {
        let mut queues = BTreeMap::new();
        for (&id, addr) in peers {
            if id == ctx.from {
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            queues.insert(id, tx);
            runtime.spawn(peer_task(id, addr.clone(), rx, ctx.clone()));
        }
        Transport {
            queues,
            report: ctx.report,
        }
    }

    /// Queues messages for their peers without blocking.
    pub fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            let (to, snapshot) = (m.to, m.get_msg_type() == MessageType::MsgSnapshot);
            let sent = match self.queues.get(&to) {
                Some(q) => q.try_send(m).is_ok(),
                None => false,
            };
            if !sent {
                tracing::debug!(to, "queue full, closed or unknown; dropping a raft message");
                // Raft waits for every snapshot's fate; a silently lost one would stall the peer.
                if snapshot {
                    (self.report)(Report::Snapshot(to, false));
                }
            }
        }
    }
}

/// Encodes a batch of raft messages.
pub fn encode_batch(msgs: &[Message]) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    for m in msgs {
        let bytes = m.write_to_bytes()?;
        let len =
            u32::try_from(bytes.len()).map_err(|_| Error::internal("raft message over 4 GiB"))?;
        buf.put_u32(len);
        buf.put_slice(&bytes);
    }
    Ok(buf.freeze())
}

/// Decodes a batch written by [`encode_batch`].
///
/// # Errors
/// `Validation` if the bytes are not a well-formed batch.
pub fn decode_batch(mut bytes: &[u8]) -> Result<Vec<Message>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| Error::validation("raft batch: truncated length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(Error::validation("raft batch: truncated message"));
        }
        let (msg, rest) = rest.split_at(len);
        out.push(
            Message::parse_from_bytes(msg)
                .map_err(|e| Error::validation(format!("raft batch: {e}")))?,
        );
        bytes = rest;
    }
    Ok(out)
}

async fn post_batch(ctx: &TransportContext, addr: &str, msgs: &[Message]) -> Result<()> {
    let body = encode_batch(msgs)?;
    let resp = ctx
        .client
        .post(format!("http://{addr}/internal/raft"))
        .header(FROM_HEADER, ctx.from.to_string())
        .timeout(BATCH_TIMEOUT)
        .body(body)
        .send()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(Error::Unavailable(format!(
            "peer answered {}",
            resp.status()
        )));
    }
    Ok(())
}

/// Applies the simulated network to a batch: loss, delay, and partitions (checked again after
/// the delay, which a partition may have started during). Returns the messages to deliver.
async fn through_faults(
    ctx: &TransportContext,
    to: NodeId,
    batch: Vec<Message>,
    rng: &mut StdRng,
) -> Vec<Message> {
    let fate = ctx.fate(to);
    let (mut batch, mut lost): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|_| fate.drop_rate <= 0.0 || !rng.gen_bool(fate.drop_rate.clamp(0.0, 1.0)));
    let jitter = if fate.jitter_ms > 0 {
        rng.gen_range(0..=fate.jitter_ms)
    } else {
        0
    };
    let delay = fate.delay_ms + jitter;
    if delay > 0 && !batch.is_empty() {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if fate.cut || ctx.fate(to).cut {
        lost.append(&mut batch);
    }
    // Raft waits for every snapshot's fate; a silently lost one would stall the peer forever.
    for m in lost
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
    {
        (ctx.report)(Report::Snapshot(m.to, false));
    }
    batch
}

async fn peer_task(
    to: NodeId,
    addr: String,
    mut rx: mpsc::Receiver<Message>,
    ctx: TransportContext,
) {
    let mut rng = StdRng::from_entropy();
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut bytes = u64::from(first.compute_size());
        batch.push(first);
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(m) => {
                    bytes += u64::from(m.compute_size());
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        let delivered = through_faults(&ctx, to, std::mem::take(&mut batch), &mut rng).await;
        let (snapshots, msgs): (Vec<_>, Vec<_>) = delivered
            .into_iter()
            .partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        if !msgs.is_empty()
            && let Err(e) = post_batch(&ctx, &addr, &msgs).await
        {
            tracing::debug!(from = ctx.from, to, "raft batch not delivered: {e}");
            (ctx.report)(Report::Unreachable(to));
        }
        for snap in snapshots {
            tokio::spawn(send_snapshot(to, addr.clone(), snap, ctx.clone()));
        }
    }
}

/// Streams the snapshot named by `msg` to `to`, then delivers `msg`, then reports.
async fn send_snapshot(to: NodeId, addr: String, msg: Message, ctx: TransportContext) {
    let ok = match stream_snapshot(&addr, &msg, &ctx).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(from = ctx.from, to, "snapshot not delivered: {e}");
            false
        }
    };
    // Release the read transaction once sent: a held one pins old pages in the redb file.
    // A stream still in progress keeps its own reference; the next snapshot gets a new view.
    if let Ok(mut slot) = ctx.snapshots.lock()
        && slot
            .as_ref()
            .is_some_and(|s| s.index == msg.get_snapshot().get_metadata().index)
    {
        *slot = None;
    }
    (ctx.report)(Report::Snapshot(to, ok));
}

async fn stream_snapshot(addr: &str, msg: &Message, ctx: &TransportContext) -> Result<()> {
    if ctx.fate(msg.to).cut {
        return Err(Error::Unavailable(format!(
            "the link to node {} is cut by a partition",
            msg.to
        )));
    }
    let meta = msg.get_snapshot().get_metadata();
    let (index, term) = (meta.index, meta.term);
    let txn = {
        let slot = ctx
            .snapshots
            .lock()
            .map_err(|_| Error::internal("snapshot slot poisoned"))?;
        match slot.as_ref() {
            Some(s) if s.index == index && s.term == term => s.txn.clone(),
            _ => {
                return Err(Error::Unavailable(format!(
                    "snapshot {index}/{term} is no longer held"
                )));
            }
        }
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let exporter = ctx.exporter.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            tx: tx.clone(),
            buf: BytesMut::with_capacity(SNAPSHOT_CHUNK),
        };
        let result = exporter(&txn, &mut w).and_then(|()| w.flush().map_err(Error::from));
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let resp = ctx
        .client
        .post(format!(
            "http://{addr}/internal/snapshot?index={index}&term={term}"
        ))
        .header(FROM_HEADER, ctx.from.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(Error::Unavailable(format!(
            "peer answered {} to the snapshot",
            resp.status()
        )));
    }
    post_batch(ctx, addr, std::slice::from_ref(msg)).await
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A `Write` that cuts what it is given into chunks and sends them down a channel.
struct ChunkWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: BytesMut,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SNAPSHOT_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "snapshot receiver went away",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_roundtrip_and_garbage_is_rejected() {
        let a = Message {
            to: 2,
            from: 1,
            term: 7,
            ..Default::default()
        };
        let mut b = a.clone();
        b.set_msg_type(MessageType::MsgHeartbeat);
        let bytes = encode_batch(&[a.clone(), b.clone()]).expect("encode");
        assert_eq!(decode_batch(&bytes).expect("decode"), vec![a, b]);
        assert!(decode_batch(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_batch(&[0, 0, 0, 9, 1]).is_err());
        assert!(decode_batch(&[]).expect("empty batch").is_empty());
    }
}
