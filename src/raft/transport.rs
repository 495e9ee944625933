//! Node-to-node messages. A node of the same process gets them straight into its inbox (see
//! [`LocalDelivery`]): at once over a link without faults, otherwise from the peer's queue once
//! the link's faults let them through. Any other node, or every node with
//! `--raft-over-http`, gets them over loopback HTTP on its own port under `/internal/`.
//!
//! - `POST /internal/raft/stream`: one long-lived request per peer whose body never ends: an
//!   endless sequence of messages, each `len:u32 BE` + protobuf bytes, written the moment they
//!   are due. One request per message batch (`POST /internal/raft`, still served) cost a whole
//!   HTTP exchange per batch, several per client write; a stream costs one write per batch.
//! - `POST /internal/raft`: a batch of raft messages in the same format, in one request.
//! - `POST /internal/snapshot?index=I&term=T`: a snapshot's state machine rows, streamed.
//!
//! Sending never blocks a node's loop: [`Transport::send`] drops each message into a bounded
//! per-peer queue (dropping it when the queue is full, which Raft tolerates as message loss),
//! and one async task per peer writes its queue to the peer's stream in order. When the stream
//! ends or fails, the peer is reported unreachable to raft (which then probes instead of
//! streaming appends) and the next batch opens a new stream; messages written to a stream that
//! broke are lost, which Raft tolerates.
//!
//! Only cluster members may use these routes: every request carries the cluster's key
//! ([`CLUSTER_KEY_HEADER`]), a random secret the process picks at start, and a node refuses
//! any request without it. A forged `MsgSnapshot` or append could otherwise wipe a replica.
//!
//! The simulated network ([`faults`](crate::faults)) acts per message: a message is due
//! when it was queued plus the link's current delay, and loss and partitions are decided when
//! it is due. The link re-reads the faults while messages wait, so `fault heal` releases
//! delayed messages at once.
//!
//! A `MsgSnapshot` carries only metadata. The peer task hands it to a separate task that
//! streams the rows from the leader's held read transaction (see
//! [`LogStore::snapshot`](crate::raft::log_store::LogStore)) to the follower, which stages them in
//! a file; only then is the `MsgSnapshot` itself delivered, and raft is told how it went. No
//! single message ever holds a whole table.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use rand::SeedableRng;
use rand::rngs::StdRng;
use redb::ReadTransaction;
use tokio::sync::mpsc;

use crate::faults::{LinkFate, SharedFaults};
use crate::raft::NodeId;
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
/// How often a link holding delayed messages re-reads the faults, so a heal (or a shorter
/// delay) applies to messages already waiting.
const FAULT_RECHECK: Duration = Duration::from_millis(20);
/// Batches written to a peer's stream and not yet sent before the peer task waits.
const STREAM_QUEUE: usize = 64;

/// Header naming the sending node.
pub const FROM_HEADER: &str = "x-kvsim-from";
/// Header carrying the cluster's key; requests to `/internal/*` without it are refused.
pub const CLUSTER_KEY_HEADER: &str = "x-kvsim-cluster-key";

/// What the transport tells its node about delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// A request to this peer failed.
    Unreachable(NodeId),
    /// A snapshot stream to this peer finished (`true`) or failed.
    Snapshot(NodeId, bool),
}

/// Writes a node's snapshot rows (the state machine's `export`).
pub type Exporter =
    Arc<dyn Fn(&ReadTransaction, &crate::raft::Frozen, &mut dyn Write) -> Result<()> + Send + Sync>;

/// Hands messages straight to a node of the same process, or gives them back if `to` is not
/// running here (they then go the long way, over HTTP, and fail there as they would for a
/// remote peer).
pub type LocalDelivery =
    Arc<dyn Fn(NodeId, Vec<Message>) -> std::result::Result<(), Vec<Message>> + Send + Sync>;

/// Outbound side of one node's transport.
/// A peer and a Raft message type, the labels of [`MessageCounters`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct MessageLabels {
    /// The receiving node's id.
    pub peer: String,
    /// `MsgAppend`, `MsgHeartbeat`, `MsgRequestVote`, `MsgSnapshot`, ...
    pub msg_type: String,
}

/// Raft messages handed to the transport and their encoded bytes, by peer and type, for
/// `/metrics` (a snapshot message's bytes are its metadata; its rows stream separately).
#[derive(Clone, Debug, Default)]
pub struct MessageCounters {
    /// Messages.
    pub messages: Family<MessageLabels, Counter>,
    /// Their encoded size.
    pub bytes: Family<MessageLabels, Counter>,
    /// Snapshots streamed to a peer that accepted them.
    pub snapshots_sent: Counter,
    /// The bytes of those snapshots' rows.
    pub snapshot_bytes_sent: Counter,
    /// Messages by peer and kind, in plain atomics, for the console to sample.
    pub flows: Arc<Flows>,
}

/// Node ids the flow counters cover (0 to 15; a cluster has at most 9 nodes).
const FLOW_PEERS: usize = 16;

/// Messages sent to each peer, by kind: cheap to count, cheap to read.
#[derive(Debug)]
pub struct Flows {
    counts: [[std::sync::atomic::AtomicU64; Flows::KINDS.len()]; FLOW_PEERS],
}

impl Default for Flows {
    fn default() -> Flows {
        Flows {
            counts: std::array::from_fn(|_| std::array::from_fn(|_| Default::default())),
        }
    }
}

impl Flows {
    /// What the console calls each kind.
    pub const KINDS: [&'static str; 8] = [
        "append",
        "append_response",
        "heartbeat",
        "heartbeat_response",
        "vote",
        "vote_response",
        "snapshot",
        "other",
    ];

    fn kind(t: MessageType) -> usize {
        use MessageType::*;
        match t {
            MsgAppend => 0,
            MsgAppendResponse => 1,
            MsgHeartbeat => 2,
            MsgHeartbeatResponse => 3,
            MsgRequestVote | MsgRequestPreVote => 4,
            MsgRequestVoteResponse | MsgRequestPreVoteResponse => 5,
            MsgSnapshot => 6,
            _ => 7,
        }
    }

    fn count(&self, m: &Message) {
        if let Some(peer) = usize::try_from(m.to)
            .ok()
            .and_then(|to| self.counts.get(to))
        {
            peer[Flows::kind(m.get_msg_type())].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Messages sent so far, as `(peer, kind, count)` for every non-zero count.
    pub fn read(&self) -> Vec<(NodeId, &'static str, u64)> {
        let mut out = Vec::new();
        for (peer, kinds) in self.counts.iter().enumerate() {
            for (kind, n) in kinds.iter().enumerate() {
                let n = n.load(std::sync::atomic::Ordering::Relaxed);
                if n > 0 {
                    out.push((peer as NodeId, Flows::KINDS[kind], n));
                }
            }
        }
        out
    }
}

impl MessageCounters {
    fn count(&self, m: &Message) {
        self.flows.count(m);
        let labels = MessageLabels {
            peer: m.to.to_string(),
            msg_type: format!("{:?}", m.get_msg_type()),
        };
        self.messages.get_or_create(&labels).inc();
        self.bytes
            .get_or_create(&labels)
            .inc_by(u64::from(m.compute_size()));
    }
}

pub struct Transport {
    queues: BTreeMap<NodeId, mpsc::Sender<(Instant, Message)>>,
    counters: MessageCounters,
    report: Arc<dyn Fn(Report) + Send + Sync>,
    /// Clean links to nodes of this process skip the queue and the peer task.
    local: Option<LocalDelivery>,
    faults: SharedFaults,
    from: NodeId,
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
    /// The simulated network faults every message is subject to.
    pub faults: SharedFaults,
    /// The cluster's key, sent with every request so the peer knows it comes from a member.
    pub cluster_key: Arc<str>,
    /// Delivery to nodes running in this process, if any: no encoding, no loopback TCP.
    pub local: Option<LocalDelivery>,
    /// What is counted of the messages sent.
    pub counters: MessageCounters,
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
            counters: ctx.counters,
            report: ctx.report,
            local: ctx.local,
            faults: ctx.faults,
            from: ctx.from,
        }
    }

    /// Queues messages for their peers without blocking. Messages for a node of this process
    /// over a link without faults are handed to it at once (Raft tolerates the reordering
    /// against messages still delayed in a queue from before a heal).
    pub fn send(&self, msgs: Vec<Message>) {
        for m in &msgs {
            self.counters.count(m);
        }
        let msgs = match &self.local {
            Some(local) => self.send_local(local, msgs),
            None => msgs,
        };
        for m in msgs {
            let (to, snapshot) = (m.to, m.get_msg_type() == MessageType::MsgSnapshot);
            let sent = match self.queues.get(&to) {
                Some(q) => q.try_send((Instant::now(), m)).is_ok(),
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

    /// Delivers what it can straight to nodes of this process; returns the rest.
    fn send_local(&self, local: &LocalDelivery, msgs: Vec<Message>) -> Vec<Message> {
        let Ok(faults) = self.faults.read() else {
            return msgs;
        };
        let mut by_peer: BTreeMap<NodeId, Vec<Message>> = BTreeMap::new();
        let mut rest = Vec::new();
        for m in msgs {
            // A snapshot's rows travel separately (see `send_snapshot`).
            if m.get_msg_type() != MessageType::MsgSnapshot && faults.link(self.from, m.to).clean()
            {
                by_peer.entry(m.to).or_default().push(m);
            } else {
                rest.push(m);
            }
        }
        drop(faults);
        for (to, batch) in by_peer {
            if let Err(batch) = local(to, batch) {
                rest.extend(batch);
            }
        }
        rest
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

/// Sends `msgs` in one request of their own (a snapshot's `MsgSnapshot`, once its rows are
/// streamed).
async fn post_batch(ctx: &TransportContext, addr: &str, msgs: &[Message]) -> Result<()> {
    let body = encode_batch(msgs)?;
    let resp = ctx
        .client
        .post(format!("http://{addr}/internal/raft"))
        .header(FROM_HEADER, ctx.from.to_string())
        .header(CLUSTER_KEY_HEADER, &*ctx.cluster_key)
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

/// One peer's stream: the sending half of a `POST /internal/raft/stream` body.
struct Link {
    body: mpsc::Sender<std::io::Result<Bytes>>,
    /// Set when the request has ended, for whatever reason.
    ended: Arc<AtomicBool>,
}

/// Opens a stream to the peer `to` at `addr`. The request runs in its own task; when it ends
/// with anything but the peer closing it cleanly, the peer is reported unreachable.
fn open_link(ctx: &TransportContext, to: NodeId, addr: &str) -> Link {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(STREAM_QUEUE);
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let request = ctx
        .client
        .post(format!("http://{addr}/internal/raft/stream"))
        .header(FROM_HEADER, ctx.from.to_string())
        .header(CLUSTER_KEY_HEADER, &*ctx.cluster_key)
        .body(reqwest::Body::wrap_stream(chunks));
    let ended = Arc::new(AtomicBool::new(false));
    let (flag, report, from) = (ended.clone(), ctx.report.clone(), ctx.from);
    tokio::spawn(async move {
        let outcome = request.send().await;
        flag.store(true, AtomicOrdering::SeqCst);
        match outcome {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => {
                tracing::debug!(from, to, "raft stream refused: {}", resp.status());
                report(Report::Unreachable(to));
            }
            Err(e) => {
                tracing::debug!(from, to, "raft stream ended: {e}");
                report(Report::Unreachable(to));
            }
        }
    });
    Link { body: tx, ended }
}

/// Writes `msgs` to the peer's stream, opening a new one if there is none or it has ended.
async fn write_to_link(
    link: &mut Option<Link>,
    ctx: &TransportContext,
    to: NodeId,
    addr: &str,
    msgs: &[Message],
) -> Result<()> {
    let bytes = encode_batch(msgs)?;
    if link
        .as_ref()
        .is_none_or(|l| l.ended.load(AtomicOrdering::SeqCst))
    {
        *link = Some(open_link(ctx, to, addr));
    }
    let sent = match link.as_ref() {
        Some(l) => tokio::time::timeout(BATCH_TIMEOUT, l.body.send(Ok(bytes))).await,
        None => return Err(Error::internal("no raft stream")),
    };
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => {
            *link = None;
            Err(Error::Unavailable(
                "the raft stream to the peer ended".into(),
            ))
        }
        Err(_) => {
            // The peer takes nothing: start over on a new stream.
            *link = None;
            Err(Error::Unavailable(
                "the peer stopped reading its raft stream".into(),
            ))
        }
    }
}

/// Applies loss and partitions to messages that are due. Returns the ones to deliver.
fn through_faults(
    ctx: &TransportContext,
    fate: &LinkFate,
    batch: Vec<Message>,
    rng: &mut StdRng,
) -> Vec<Message> {
    let (batch, lost): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|_| !fate.cut && !fate.loses(rng));
    // Raft waits for every snapshot's fate; a silently lost one would stall the peer forever.
    for m in lost
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
    {
        (ctx.report)(Report::Snapshot(m.to, false));
    }
    batch
}

/// A message waiting on a link: when it was queued and the extra random delay it drew.
struct Queued {
    at: Instant,
    jitter_ms: u64,
    msg: Message,
}

impl Queued {
    /// When the message may be sent under `fate` (jitter never beyond the link's current one).
    fn due(&self, fate: &LinkFate) -> Instant {
        let ms = fate
            .delay_ms
            .saturating_add(self.jitter_ms.min(fate.jitter_ms));
        self.at + Duration::from_millis(ms)
    }
}

async fn peer_task(
    to: NodeId,
    addr: String,
    mut rx: mpsc::Receiver<(Instant, Message)>,
    ctx: TransportContext,
) {
    let mut rng = StdRng::from_entropy();
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut open = true;
    let mut link: Option<Link> = None;
    let enqueue =
        |queue: &mut VecDeque<Queued>, rng: &mut StdRng, (at, msg): (Instant, Message)| {
            let jitter_ms = ctx.fate(to).draw_jitter_ms(rng);
            queue.push_back(Queued { at, jitter_ms, msg });
        };
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(m) => enqueue(&mut queue, &mut rng, m),
                None => return,
            }
        }
        // Whatever else is waiting joins, up to PEER_QUEUE here (the channel holds as many
        // again; beyond both the node's sends are dropped, as on a congested link). Messages
        // already queued still go out after their delay even if this node has since crashed,
        // as packets already on the wire would.
        while queue.len() < PEER_QUEUE {
            match rx.try_recv() {
                Ok(m) => enqueue(&mut queue, &mut rng, m),
                Err(_) => break,
            }
        }
        let fate = ctx.fate(to);
        let now = Instant::now();
        let Some(head_due) = queue.front().map(|q| q.due(&fate)) else {
            continue;
        };
        if head_due > now {
            let wake = head_due.min(now + FAULT_RECHECK);
            tokio::select! {
                m = rx.recv(), if open && queue.len() < PEER_QUEUE => match m {
                    Some(m) => enqueue(&mut queue, &mut rng, m),
                    None => open = false,
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            continue;
        }
        // The due messages, in queue order (a delayed link delivers in order, like TCP).
        let (mut batch, mut bytes) = (Vec::new(), 0u64);
        while let Some(q) = queue.front() {
            if q.due(&fate) > now || batch.len() >= MAX_BATCH || bytes >= MAX_BATCH_BYTES {
                break;
            }
            if let Some(q) = queue.pop_front() {
                bytes += u64::from(q.msg.compute_size());
                batch.push(q.msg);
            }
        }
        let delivered = through_faults(&ctx, &fate, batch, &mut rng);
        let (snapshots, msgs): (Vec<_>, Vec<_>) = delivered
            .into_iter()
            .partition(|m| m.get_msg_type() == MessageType::MsgSnapshot);
        let msgs = match &ctx.local {
            Some(local) if !msgs.is_empty() => local(to, msgs).err().unwrap_or_default(),
            _ => msgs,
        };
        if !msgs.is_empty()
            && let Err(e) = write_to_link(&mut link, &ctx, to, &addr, &msgs).await
        {
            tracing::debug!(from = ctx.from, to, "raft batch not delivered: {e}");
            (ctx.report)(Report::Unreachable(to));
        }
        for snap in snapshots {
            tokio::spawn(send_snapshot(to, addr.clone(), snap, ctx.clone()));
        }
        if !open && queue.is_empty() {
            return;
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
    let (txn, frozen) = {
        let slot = ctx
            .snapshots
            .lock()
            .map_err(|_| Error::internal("snapshot slot poisoned"))?;
        match slot.as_ref() {
            Some(s) if s.index == index && s.term == term => (s.txn.clone(), s.frozen.clone()),
            _ => {
                return Err(Error::Unavailable(format!(
                    "snapshot {index}/{term} is no longer held"
                )));
            }
        }
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let exporter = ctx.exporter.clone();
    let sent = Arc::new(AtomicU64::new(0));
    let streamed = sent.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            tx: tx.clone(),
            buf: BytesMut::with_capacity(SNAPSHOT_CHUNK),
            sent: streamed,
        };
        let result = exporter(&txn, &frozen, &mut w).and_then(|()| w.flush().map_err(Error::from));
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
        .header(CLUSTER_KEY_HEADER, &*ctx.cluster_key)
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
    ctx.counters.snapshots_sent.inc();
    ctx.counters
        .snapshot_bytes_sent
        .inc_by(sent.load(AtomicOrdering::Relaxed));
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
    /// Bytes sent so far.
    sent: Arc<AtomicU64>,
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
        self.sent
            .fetch_add(chunk.len() as u64, AtomicOrdering::Relaxed);
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
