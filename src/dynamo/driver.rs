//! The thread that runs one leaderless node, and the in-process network between the nodes.
//!
//! Like Raft's driver, it is a thin loop around the sans-I/O [`DynamoNode`]: it takes client
//! requests and peers' messages from one inbox, ticks the node every [`TICK`], and after each
//! batch calls [`DynamoNode::ready`] (which flushes before anything leaves), then delivers the
//! messages, answers the finished requests and records the events. Nothing here decides
//! anything.
//!
//! Messages between nodes go through a [`Mesh`]: straight into the peer's inbox over a link
//! without faults, otherwise as the cluster's [`SharedFaults`] say (a cut link or a lost
//! message is dropped, a delayed one is delivered by a timer task). A full inbox drops a peer's
//! message (the protocol tolerates loss) and refuses a client's request as busy.
//!
//! A storage error or a panic stops the node: it is logged, recorded as an event, kept as the
//! node's failure for `status`, and every request waiting on it fails with `Unavailable`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::dynamo::NodeId;
use crate::dynamo::node::{
    ChangeQuery, Done, DynamoNode, Gossip, Key, Msg, ReqId, VersionStore, WriteFn,
};
use crate::dynamo::storage::RedbVersions;
use crate::events::{EventLog, NodeEvent};
use crate::faults::SharedFaults;
use crate::{Error, Result};

/// How often a node ticks: its probes, timeouts, handoffs and anti-entropy count in ticks.
pub const TICK: Duration = Duration::from_millis(50);
/// Inputs waiting in a node's inbox before peers' messages are dropped and clients refused.
const INBOX: usize = 16_384;
/// Inputs handled before the node's state is made durable and sent on.
const BATCH: usize = 512;

/// A finished request's answer.
type Reply = oneshot::Sender<Result<Done>>;

/// What a node's inbox carries.
enum Input {
    Get {
        key: Key,
        all: bool,
        reply: Reply,
    },
    Put {
        key: Key,
        write: WriteFn,
        reply: Reply,
    },
    List {
        partition: Vec<u8>,
        all: bool,
        reply: Reply,
    },
    Scan {
        prefix: Vec<u8>,
        reply: Reply,
    },
    Changes {
        node: NodeId,
        query: ChangeQuery,
        reply: Reply,
    },
    Peer {
        from: NodeId,
        msg: Msg,
    },
    Status {
        reply: oneshot::Sender<Result<NodeView>>,
    },
}

/// One node's view of the cluster, for `status`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    /// Its view of every node's liveness, with incarnation numbers.
    pub view: Vec<Gossip>,
    /// The peers it suspects.
    pub suspected: BTreeSet<NodeId>,
    /// Writes it keeps for unreachable owners, by owner.
    pub hints: BTreeMap<NodeId, usize>,
    /// Its storage's counters, as Raft mode's `status` shows them.
    pub stats: StoreStats,
}

/// A node's storage counters.
#[derive(Clone, Debug, Serialize)]
pub struct StoreStats {
    /// Transactions committed with an fsync since the node started.
    pub fsyncs: u64,
}

/// How often a delayed message checks whether its link's delay was removed.
const RELEASE_CHECK: Duration = Duration::from_millis(50);

/// Node ids the flow counters cover (0 to 15; a cluster has at most 9 nodes).
const FLOW_NODES: usize = 16;

/// Messages each node sent each other, by kind, for the web console: plain atomics, cheap to
/// count and to read.
#[derive(Debug)]
pub struct MeshFlows {
    counts: Box<[[[AtomicU64; MeshFlows::KINDS.len()]; FLOW_NODES]; FLOW_NODES]>,
}

impl Default for MeshFlows {
    fn default() -> MeshFlows {
        MeshFlows {
            counts: Box::new(std::array::from_fn(|_| {
                std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            })),
        }
    }
}

impl MeshFlows {
    /// What the console calls each kind: a replica write and its acknowledgement, a replica
    /// read (of a key, a partition or a table) and its answer, hinted handoff, SWIM's probes,
    /// and anti-entropy.
    pub const KINDS: [&'static str; 7] = [
        "write",
        "write_ack",
        "read",
        "read_reply",
        "handoff",
        "gossip",
        "anti_entropy",
    ];

    fn kind(msg: &Msg) -> usize {
        match msg {
            Msg::Store { .. } => 0,
            Msg::Stored { .. } => 1,
            Msg::Fetch { .. } | Msg::List { .. } | Msg::Scan { .. } | Msg::ReadChanges { .. } => 2,
            Msg::Fetched { .. } | Msg::Listed { .. } | Msg::Changes { .. } => 3,
            Msg::Handoff { .. } | Msg::HandedOff { .. } => 4,
            Msg::Ping { .. } | Msg::Pong { .. } | Msg::PingReq { .. } | Msg::IndirectAck { .. } => {
                5
            }
            _ => 6,
        }
    }

    fn count(&self, from: NodeId, to: NodeId, msg: &Msg) {
        let slot = usize::try_from(from)
            .ok()
            .and_then(|f| self.counts.get(f))
            .and_then(|row| usize::try_from(to).ok().and_then(|t| row.get(t)));
        if let Some(kinds) = slot {
            kinds[MeshFlows::kind(msg)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Messages sent so far, as `(from, to, kind, count)` for every non-zero count.
    pub fn read(&self) -> Vec<(NodeId, NodeId, &'static str, u64)> {
        let mut out = Vec::new();
        for (from, row) in self.counts.iter().enumerate() {
            for (to, kinds) in row.iter().enumerate() {
                for (kind, n) in kinds.iter().enumerate() {
                    let n = n.load(Ordering::Relaxed);
                    if n > 0 {
                        out.push((from as NodeId, to as NodeId, MeshFlows::KINDS[kind], n));
                    }
                }
            }
        }
        out
    }
}

/// The in-process network between a cluster's nodes, with the simulator's faults.
#[derive(Clone)]
pub struct Mesh {
    inboxes: Arc<RwLock<HashMap<NodeId, SyncSender<Input>>>>,
    faults: SharedFaults,
    runtime: tokio::runtime::Handle,
    rng: Arc<Mutex<StdRng>>,
    flows: Arc<MeshFlows>,
}

impl Mesh {
    /// A network with no node on it yet, delaying messages on `runtime`'s timers.
    pub fn new(faults: SharedFaults, runtime: tokio::runtime::Handle) -> Mesh {
        Mesh {
            inboxes: Arc::default(),
            faults,
            runtime,
            rng: Arc::new(Mutex::new(StdRng::from_entropy())),
            flows: Arc::default(),
        }
    }

    /// The messages sent so far, by sender, receiver and kind.
    pub fn flows(&self) -> &MeshFlows {
        &self.flows
    }

    fn inbox(&self, id: NodeId) -> Option<SyncSender<Input>> {
        self.inboxes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Sends `msg` from `from` to `to` as the faults in force let it.
    fn send(&self, from: NodeId, to: NodeId, msg: Msg) {
        self.flows.count(from, to, &msg);
        let Some(inbox) = self.inbox(to) else {
            return; // The peer is down: the message is lost.
        };
        let fate = self
            .faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .link(from, to);
        let input = Input::Peer { from, msg };
        if fate.clean() {
            let _ = inbox.try_send(input);
            return;
        }
        let (lost, jitter) = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            (fate.loses(&mut *rng), fate.draw_jitter_ms(&mut *rng))
        };
        if fate.cut || lost {
            return;
        }
        let delay = Duration::from_millis(fate.delay_ms.saturating_add(jitter));
        let faults = self.faults.clone();
        self.runtime.spawn(async move {
            // Delivered when the delay has passed, or at once when the link's delay is
            // removed (`heal`, or `delay ... 0`), as Raft mode's transport releases it.
            let due = tokio::time::Instant::now() + delay;
            let link = || {
                faults
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .link(from, to)
            };
            loop {
                let now = tokio::time::Instant::now();
                if now >= due {
                    break;
                }
                tokio::time::sleep((due - now).min(RELEASE_CHECK)).await;
                let now_link = link();
                if now_link.delay_ms == 0 && now_link.jitter_ms == 0 {
                    break;
                }
            }
            // A partition made while the message was on its way still cuts it.
            if !link().cut {
                let _ = inbox.try_send(input);
            }
        });
    }
}

/// A running node: what the API and the cluster hold of it. Cheap to clone.
#[derive(Clone)]
pub struct DynamoHandle {
    /// The node's id.
    pub id: NodeId,
    inbox: SyncSender<Input>,
    failure: Arc<Mutex<Option<String>>>,
    stopping: Arc<AtomicBool>,
    /// The table descriptions this node read lately (see [`crate::dynamo::service`]); a
    /// restarted node starts with none.
    pub tables: Arc<crate::dynamo::service::TableCache>,
    /// Every member of the cluster, this node included.
    pub members: Arc<[NodeId]>,
}

impl DynamoHandle {
    async fn ask(&self, input: Input, answer: oneshot::Receiver<Result<Done>>) -> Result<Done> {
        self.submit(input)?;
        answer.await.map_err(|_| self.gone())?
    }

    fn submit(&self, input: Input) -> Result<()> {
        match self.inbox.try_send(input) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::Throttling(format!(
                "node {} has {INBOX} requests and messages waiting; retry",
                self.id
            ))),
            Err(TrySendError::Disconnected(_)) => Err(self.gone()),
        }
    }

    fn gone(&self) -> Error {
        match self.failure() {
            Some(why) => Error::Unavailable(format!("node {} has stopped: {why}", self.id)),
            None => Error::Unavailable(format!("node {} is stopping", self.id)),
        }
    }

    /// Reads `key` from R replicas, or from every live one of its N if `all`.
    ///
    /// # Errors
    /// `Unavailable` when too few replicas answer in time or the node is down.
    pub async fn get(&self, key: Key, all: bool) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.ask(Input::Get { key, all, reply }, answer).await
    }

    /// Writes `key` as `write` decides from a quorum read of it.
    ///
    /// # Errors
    /// What `write` returns; `NotApplied` when the read found too few replicas (nothing was
    /// written); `Unavailable` when fewer than W stored it in time (it may still arrive).
    pub async fn put(&self, key: Key, write: WriteFn) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.ask(Input::Put { key, write, reply }, answer).await
    }

    /// Lists a partition's items from R replicas, or every live one of its N if `all`.
    ///
    /// # Errors
    /// As [`DynamoHandle::get`].
    pub async fn list(&self, partition: Vec<u8>, all: bool) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.ask(
            Input::List {
                partition,
                all,
                reply,
            },
            answer,
        )
        .await
    }

    /// Every item under partitions beginning with `prefix`, from every node not suspected.
    ///
    /// # Errors
    /// As [`DynamoHandle::get`].
    pub async fn scan(&self, prefix: Vec<u8>) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.ask(Input::Scan { prefix, reply }, answer).await
    }

    /// A page of node `at`'s change records (a stream shard). See [`DynamoNode::changes`].
    ///
    /// # Errors
    /// `Unavailable` when `at` is suspected or does not answer in time, or this node is down.
    pub async fn changes(&self, at: NodeId, query: ChangeQuery) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.ask(
            Input::Changes {
                node: at,
                query,
                reply,
            },
            answer,
        )
        .await
    }

    /// The node's view of the cluster.
    ///
    /// # Errors
    /// `Unavailable` when the node is down.
    pub async fn view(&self) -> Result<NodeView> {
        let (reply, answer) = oneshot::channel();
        self.submit(Input::Status { reply })?;
        answer.await.map_err(|_| self.gone())?
    }

    /// Stops the node as a crash would: its thread ends after the batch in hand, without
    /// answering what it has not finished (what it acknowledged is already durable).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Why the node stopped, if it failed.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Starts `node` on its own thread, joined to `mesh`; it runs until [`DynamoHandle::stop`] or
/// a failure.
///
/// # Errors
/// The thread could not be spawned.
pub fn spawn(node: DynamoNode<RedbVersions>, mesh: &Mesh, events: EventLog) -> Result<Spawned> {
    let id = node.id();
    let (inbox, rx) = sync_channel(INBOX);
    let failure = Arc::new(Mutex::new(None));
    let stopping = Arc::new(AtomicBool::new(false));
    let handle = DynamoHandle {
        id,
        inbox: inbox.clone(),
        failure: failure.clone(),
        stopping: stopping.clone(),
        tables: Arc::default(),
        members: node.members().into(),
    };
    mesh.inboxes
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id, inbox);
    let mesh = mesh.clone();
    let (ended_tx, ended) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("dynamo-{id}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(node, &rx, &mesh, &events, &stopping)
            }));
            let why = match outcome {
                // Stopped on purpose (a crash, a shutdown): whatever the last batch met (a
                // crashed disk refuses it) is not a failure.
                _ if stopping.load(Ordering::SeqCst) => None,
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(panic) => Some(format!(
                    "panicked: {}",
                    crate::raft::driver::panic_text(&*panic)
                )),
            };
            stop(&mesh, id);
            if let Some(why) = why {
                tracing::error!(node = id, "node stopped: {why}");
                events.record(NodeEvent::new(
                    "node_failed",
                    format!("node {id} stopped: {why}"),
                ));
                *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(why.clone());
                let _ = ended_tx.send(Some(why));
            } else {
                let _ = ended_tx.send(None);
            }
        })
        .map_err(|e| Error::internal(format!("cannot start node {id}'s thread: {e}")))?;
    Ok(Spawned {
        handle,
        thread,
        ended,
    })
}

/// A node's thread, started.
pub struct Spawned {
    /// Its handle.
    pub handle: DynamoHandle,
    /// Its thread.
    pub thread: std::thread::JoinHandle<()>,
    /// Answers when the thread ends: why it failed, or `None` if it was stopped.
    pub ended: oneshot::Receiver<Option<String>>,
}

/// Takes node `id` off the mesh: messages to it are lost from now on.
fn stop(mesh: &Mesh, id: NodeId) {
    mesh.inboxes
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
}

fn run<S: VersionStore>(
    mut node: DynamoNode<S>,
    rx: &Receiver<Input>,
    mesh: &Mesh,
    events: &EventLog,
    stopping: &AtomicBool,
) -> Result<()> {
    let id = node.id();
    let mut waiting: BTreeMap<ReqId, Reply> = BTreeMap::new();
    let mut next_tick = Instant::now() + TICK;
    while !stopping.load(Ordering::SeqCst) {
        let first = match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut inputs: Vec<Input> = first.into_iter().collect();
        while inputs.len() < BATCH {
            match rx.try_recv() {
                Ok(input) => inputs.push(input),
                Err(_) => break,
            }
        }
        for input in inputs {
            match input {
                Input::Get { key, all, reply } => {
                    waiting.insert(node.get(key, all), reply);
                }
                Input::Put { key, write, reply } => {
                    waiting.insert(node.put(key, wall_ms(), write), reply);
                }
                Input::List {
                    partition,
                    all,
                    reply,
                } => {
                    waiting.insert(node.list(partition, all), reply);
                }
                Input::Scan { prefix, reply } => {
                    waiting.insert(node.scan(prefix), reply);
                }
                Input::Changes {
                    node: at,
                    query,
                    reply,
                } => {
                    waiting.insert(node.changes(at, query), reply);
                }
                Input::Peer { from, msg } => node.step(from, msg)?,
                Input::Status { reply } => {
                    let _ = reply.send(view_of(&node));
                }
            }
        }
        if Instant::now() >= next_tick {
            node.tick(wall_ms())?;
            next_tick = Instant::now() + TICK;
        }
        let ready = node.ready()?;
        for (to, msg) in ready.messages {
            mesh.send(id, to, msg);
        }
        for (req, outcome) in ready.done {
            if let Some(reply) = waiting.remove(&req) {
                let _ = reply.send(outcome);
            }
        }
        for event in ready.events {
            events.record(event);
        }
    }
    Ok(())
}

fn view_of<S: VersionStore>(node: &DynamoNode<S>) -> Result<NodeView> {
    let mut hints = BTreeMap::new();
    for (owner, _, _) in node.store().hints()? {
        *hints.entry(owner).or_insert(0) += 1;
    }
    Ok(NodeView {
        view: node.view(),
        suspected: node.suspected().clone(),
        hints,
        stats: StoreStats {
            fsyncs: node.store().fsyncs(),
        },
    })
}
