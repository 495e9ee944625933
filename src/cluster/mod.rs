//! A local cluster: three nodes in one process, each with its own redb file, Raft thread,
//! transport and HTTP server. Nodes can be stopped and started again individually; a stopped
//! node's port refuses connections, exactly as a crashed process's would.
//!
//! [`NodeHandle`] is how the API layer talks to a node: propose a command, wait for a read
//! index, read its store and status. A node that fails is restarted by the [`supervisor`].

pub mod leaderless;
pub mod supervisor;

pub use supervisor::{NodeSupervision, SupervisionStatus};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::api::inject::SharedErrorRules;
use crate::config::{ClusterConfig, Storage, Tuning};
use crate::disk::{self, CrashSwitch};
use crate::events::{EventLog, NodeEvent};
use crate::faults::SharedFaults;
use crate::raft::driver::{self, Event, Health, Published};
use crate::raft::lease::{Clock, LeaseOptions, SharedLease};
use crate::raft::node::{NodeOptions, RaftNode, raft_logger};
use crate::raft::transport::{LocalDelivery, Report, Transport, TransportContext};
use crate::raft::{NodeId, StateMachine};
use crate::store::lag::SharedIndexLag;
use crate::store::{Command, Outcome, Store};
use crate::{Error, Result};

/// What a proposal resolves to: the outer result is Raft's, the inner the command's.
type StoreOutput = Result<Outcome>;

/// A cheap, cloneable handle on one running node.
#[derive(Clone)]
pub struct NodeHandle {
    /// The node's id.
    pub id: NodeId,
    inbox: mpsc::Sender<Event<StoreOutput>>,
    status: watch::Receiver<Published>,
    store: Store,
    addrs: Arc<BTreeMap<NodeId, String>>,
    tuning: Tuning,
    snapshot_dir: PathBuf,
    /// The node's leader lease and the clock it runs on, when leases are on.
    lease: Option<(Arc<SharedLease>, Clock)>,
    /// What the leader had applied when it answered the writes this node forwarded
    /// ([`NodeHandle::relayed`]).
    relayed: Arc<RelayFloor>,
}

/// The highest index the leader had applied when it answered a write a node forwarded, which
/// the node's local reads wait to apply ([`NodeHandle::after_relayed`]); 0 when there is
/// none to wait for.
#[derive(Default)]
struct RelayFloor(AtomicU64);

impl RelayFloor {
    fn raise(&self, index: u64) {
        self.0.fetch_max(index, Ordering::AcqRel);
    }

    /// Waits with `catch_up` (whether the node got there) for the floor, if the node's
    /// `applied` index is below it, then lowers it to 0 unless a relay raised it meanwhile.
    /// Whether the node caught up; `None` if there was nothing to wait for.
    async fn settle<F: std::future::Future<Output = bool>>(
        &self,
        applied: impl FnOnce() -> u64,
        catch_up: impl FnOnce(u64) -> F,
    ) -> Option<bool> {
        let floor = self.0.load(Ordering::Acquire);
        if floor == 0 {
            return None;
        }
        let caught_up = if floor > applied() {
            Some(catch_up(floor).await)
        } else {
            None
        };
        // Applied, or given up on: nothing to wait for, unless a later relay raised it since.
        let _ = self
            .0
            .compare_exchange(floor, 0, Ordering::AcqRel, Ordering::Relaxed);
        caught_up
    }
}

impl NodeHandle {
    /// The node's state machine, for local reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs a read of the node's state machine on a blocking thread: redb reads do I/O and a
    /// page of a Scan decodes up to 1 MiB, which must not stall the async runtime's workers.
    ///
    /// # Errors
    /// Whatever `read` returns; `Internal` if it panicked.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || read(&store))
            .await
            .map_err(|e| Error::internal(format!("a read of node {} failed: {e}", self.id)))?
    }

    /// Runs a point read (a few items by key) of the node's state machine inline, on the
    /// calling async task: it descends one B-tree per key through redb's page cache, which
    /// costs a few microseconds, less than handing it to a blocking thread and back (that
    /// hand-off was a fifth of the CPU of a GetItem). A page that is not cached yet is read
    /// with one `pread`. Anything that walks a range goes through [`NodeHandle::read`].
    ///
    /// # Errors
    /// Whatever `read` returns.
    pub fn read_point<T>(&self, read: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        read(&self.store)
    }

    /// The node's timing and limits.
    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// The node's client address.
    pub fn addr(&self) -> &str {
        self.addrs.get(&self.id).map_or("", String::as_str)
    }

    /// Client address of every node.
    pub fn addrs(&self) -> &BTreeMap<NodeId, String> {
        &self.addrs
    }

    /// Client address of node `id`.
    pub fn addr_of(&self, id: NodeId) -> Option<&str> {
        self.addrs.get(&id).map(String::as_str)
    }

    /// Where the transport stages incoming snapshots for this node.
    pub fn snapshot_dir(&self) -> &PathBuf {
        &self.snapshot_dir
    }

    /// The latest published status.
    pub fn published(&self) -> Published {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status the node publishes.
    pub fn watch(&self) -> watch::Receiver<Published> {
        self.status.clone()
    }

    /// True if the node is running and believes it leads.
    pub fn is_leader(&self) -> bool {
        let p = self.status.borrow();
        p.health == Health::Running && p.raft.as_ref().is_some_and(|r| r.role == "leader")
    }

    /// The leader this node knows of, with its address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let id = self.status.borrow().raft.as_ref()?.leader_id?;
        Some((id, self.addrs.get(&id)?.clone()))
    }

    /// The error to give a client that must go to the leader.
    pub fn not_leader(&self) -> Error {
        let leader = self.leader();
        Error::NotLeader {
            node_id: self.id,
            leader_id: leader.as_ref().map(|l| l.0),
            leader_addr: leader.map(|l| l.1),
        }
    }

    fn send(&self, ev: Event<StoreOutput>) -> Result<()> {
        self.inbox.send(ev).map_err(|_| {
            Error::Unavailable(format!(
                "node {} is not running; retry on another node",
                self.id
            ))
        })
    }

    /// Proposes `command` and waits until it is applied on this node.
    ///
    /// # Errors
    /// `NotLeader` if this node does not lead, `Unavailable` on timeouts and lost leadership,
    /// or the command's own error.
    pub async fn propose(&self, command: &Command) -> Result<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.send(Event::Propose {
            command: command.encode_at(now_ms())?,
            responder: tx,
        })?;
        // The node enforces the proposal deadline in ticks; this outer bound only catches a
        // node thread that stopped answering altogether.
        let wait = self.tuning.proposal_timeout * 2 + Duration::from_secs(1);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => Err(Error::Unavailable(format!(
                "node {} stopped before the write was confirmed; its outcome is unknown",
                self.id
            ))),
            Err(_) => Err(Error::Unavailable(format!(
                "node {} did not answer within {wait:?}; the write's outcome is unknown",
                self.id
            ))),
        }
    }

    /// Waits until this node has applied `index` (see [`RaftNode::catch_up`]), or `wait` has
    /// passed; whether it got there.
    pub async fn catch_up(&self, index: u64, wait: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.send(Event::CatchUp(index, tx)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(wait, rx).await, Ok(Ok(())))
    }

    /// Notes that this node relays the answer to a write it forwarded, given when the leader
    /// had applied `index`: from now on, its local reads first wait until it has applied that
    /// index too ([`NodeHandle::after_relayed`]). So a client reads its own write at the node
    /// it wrote through, as it expects, yet the write's answer does not wait for this node to
    /// apply it (DynamoDB promises no such thing for eventually consistent reads; waiting there
    /// cost a forwarded write a round of this node's loop, 0.1–0.5 ms at one connection, and
    /// this node its batched applies).
    pub fn relayed(&self, index: u64) {
        self.relayed.raise(index);
    }

    /// Waits, before a local read, until this node has applied every write whose answer it
    /// relayed ([`NodeHandle::relayed`]), or `wait` has passed. A node cut off from the leader
    /// since gives up on those writes once: the read that waited goes on, and later ones do not
    /// wait for them again. Costs an atomic load when nothing is pending.
    pub async fn after_relayed(&self, wait: Duration) {
        let caught_up = self
            .relayed
            .settle(|| self.applied_index(), |floor| self.catch_up(floor, wait))
            .await;
        if caught_up == Some(false) {
            tracing::debug!(
                node = self.id,
                "reading before applying a write this node relayed the answer to"
            );
        }
    }

    /// This node's applied index as last published.
    pub fn applied_index(&self) -> u64 {
        self.status
            .borrow()
            .raft
            .as_ref()
            .map_or(0, |r| r.applied_index)
    }

    /// Consistent reads this node's client handlers answered from its leases on their own,
    /// counted as they happen, when leases are on (those through the node are in its status).
    pub fn lease_reads(&self) -> Option<u64> {
        self.lease.as_ref().map(|(lease, _)| lease.reads())
    }

    /// Waits until a linearizable local read is safe on this node (the leader).
    ///
    /// # Errors
    /// `NotLeader` or `Unavailable`.
    pub async fn read_index(&self) -> Result<()> {
        // Under a lease, once the node has applied what it last committed, no round and no
        // wake-up of the node's thread is needed.
        if let Some((lease, clock)) = &self.lease
            && lease.try_read(clock.now(), self.applied_index())
        {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.send(Event::Read(tx))?;
        let wait = self.tuning.read_timeout * 2 + Duration::from_secs(1);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(Error::Unavailable(format!(
                "node {} could not confirm the consistent read; retry it",
                self.id
            ))),
        }
    }

    /// Delivers messages from a peer.
    pub fn deliver(&self, msgs: Vec<raft::eraftpb::Message>) -> Result<()> {
        self.send(Event::Raft(msgs))
    }

    /// Makes the node's Raft thread panic, as a bug would (fault injection).
    pub fn inject_panic(&self, why: &str) -> Result<()> {
        self.send(Event::InjectPanic(why.to_string()))
    }

    /// Why the node stopped, if it failed.
    pub fn failure(&self) -> Option<String> {
        match &self.status.borrow().health {
            Health::Failed(why) => Some(why.clone()),
            _ => None,
        }
    }

    /// Asks the node to hand leadership to `to`.
    pub fn transfer_leader(&self, to: NodeId) -> Result<()> {
        self.send(Event::TransferLeader(to))
    }
}

struct RunningNode {
    handle: NodeHandle,
    /// The state of the node's handlers, for requests forwarded to it from another node of
    /// this process.
    app: api::AppState,
    thread: Option<JoinHandle<()>>,
    server: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
    crash: CrashSwitch,
    /// What the node's server counts, for the console.
    metrics: api::metrics::Metrics,
    /// Which start of the node this is (the supervisor acts only on the instance that failed).
    generation: u64,
}

/// Who may use the simulator controls (`/admin/*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminPolicy {
    /// Fault injection is allowed at all (`--no-faults` turns it off).
    pub faults: bool,
    /// Admin requests from non-loopback addresses are accepted (`--admin-remote`).
    pub remote: bool,
}

struct Inner {
    config: ClusterConfig,
    addrs: Arc<BTreeMap<NodeId, String>>,
    client: reqwest::Client,
    /// Read on every Raft message delivery and forwarded request; written only when a node
    /// starts or stops.
    nodes: RwLock<BTreeMap<NodeId, RunningNode>>,
    /// Nodes being taken down: starting one again first waits for this.
    stopping: Mutex<BTreeMap<NodeId, tokio::task::JoinHandle<()>>>,
    events: BTreeMap<NodeId, EventLog>,
    faults: SharedFaults,
    errors: SharedErrorRules,
    /// GSI lags, shared by every node's store.
    index_lag: SharedIndexLag,
    policy: AdminPolicy,
    /// Nodes that could not start, and why.
    start_failures: Mutex<BTreeMap<NodeId, String>>,
    /// Some node had data when the cluster started: it is not a new cluster.
    existing_cluster: bool,
    /// A random secret the nodes send each other on `/internal/*`, so that nothing but a
    /// member (not any local process, nor a remote one with `--host 0.0.0.0`) can inject raft
    /// messages or snapshots. It lives as long as the process: all nodes share it.
    cluster_key: Arc<str>,
    /// What requests in flight may hold in memory, shared by the nodes as they share the
    /// process.
    memory: api::budget::MemoryBudget,
    /// Restarts failed nodes.
    supervisor: supervisor::Supervisor,
    /// Counts node starts, for each one's generation.
    generations: AtomicU64,
    /// Nodes started at least once by this process (a later start is a restart).
    started: Mutex<BTreeSet<NodeId>>,
    /// Set once shutdown begins: nothing is restarted from then on.
    closing: AtomicBool,
    /// Nodes whose disk fails again after every restart (`kvsim fault disk --sticky`).
    failing_disks: Mutex<BTreeSet<NodeId>>,
    /// With `--in-memory`, each node's memory "disk", kept across its restarts.
    memory_disks: BTreeMap<NodeId, disk::MemoryDisk>,
    /// With `--in-memory`, where incoming snapshots are staged (removed at shutdown).
    scratch: Option<std::path::PathBuf>,
}

/// Three nodes in one process. Cheap to clone; every clone controls the same cluster.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

/// A weak reference to a cluster, held by each node's HTTP server for the admin routes (a
/// strong one would keep the cluster alive through its own servers).
#[derive(Clone)]
pub struct ClusterRef(Weak<Inner>);

impl ClusterRef {
    /// The cluster, unless it has been shut down.
    pub fn upgrade(&self) -> Option<Cluster> {
        self.0.upgrade().map(|inner| Cluster { inner })
    }
}

async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::Unavailable(format!(
            "cannot listen on {addr}: {e} (is another kvsim server running? choose other ports with --base-port)"
        ))
    })
}

fn has_data(dir: &std::path::Path) -> bool {
    std::fs::metadata(dir.join("kvsim.redb")).is_ok_and(|m| m.len() > 0)
}

/// Opens a node's database, retrying briefly while a just-stopped instance of the same node
/// still holds the file (its last in-flight requests are finishing). Refuses to start a node
/// empty in an existing cluster: a node that lost its log cannot rejoin under its old id.
fn open_node_db(
    dir: &std::path::Path,
    existing_cluster: bool,
    sync: bool,
    timer: prometheus_client::metrics::histogram::Histogram,
) -> Result<disk::NodeStorage> {
    if existing_cluster && !has_data(dir) {
        return Err(Error::internal(format!(
            "{} has no data but the other nodes do: this node lost its Raft log and cannot rejoin \
             under its old id; restore its directory from a backup, or start a fresh cluster with \
             an empty --data-dir-root",
            dir.join("kvsim.redb").display()
        )));
    }
    open_db(dir, sync, Some(timer))
}

/// Opens (or creates) a node's database. Blocking: redb checks the whole file's integrity on
/// open, so this runs on a blocking thread, never on the async runtime.
fn open_db(
    dir: &std::path::Path,
    sync: bool,
    timer: Option<prometheus_client::metrics::histogram::Histogram>,
) -> Result<disk::NodeStorage> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::internal(format!(
            "cannot create data directory {}: {e}; make it a directory kvsim may write, or use \
             another --data-dir-root",
            dir.display()
        ))
    })?;
    let path = dir.join("kvsim.redb");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match disk::open(&path, sync, timer.clone()) {
            Err(e)
                if e.to_string().contains("already open")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl Cluster {
    /// Binds every node's port and starts all nodes, with fault injection allowed from
    /// loopback.
    ///
    /// # Errors
    /// A port that cannot be bound or a data directory that cannot be opened, named.
    pub async fn start(config: ClusterConfig) -> Result<Cluster> {
        Self::start_with_policy(
            config,
            AdminPolicy {
                faults: true,
                remote: false,
            },
        )
        .await
    }

    /// As [`Cluster::start`], with an explicit admin policy.
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub async fn start_with_policy(config: ClusterConfig, policy: AdminPolicy) -> Result<Cluster> {
        config.tuning.validate()?;
        let in_memory = config.storage == Storage::Memory;
        if !in_memory {
            for id in config.node_ids() {
                let dir = config.node_dir(id);
                if std::fs::metadata(dir.join(leaderless::DB_FILE)).is_ok() {
                    return Err(Error::validation(format!(
                        "{} holds a --mode dynamo cluster's data; start it with --mode dynamo, or use another --data-dir-root",
                        dir.display()
                    )));
                }
            }
        }
        let existing_cluster =
            !in_memory && config.node_ids().any(|id| has_data(&config.node_dir(id)));
        let memory_disks = if in_memory {
            config
                .node_ids()
                .map(|id| (id, disk::MemoryDisk::new()))
                .collect()
        } else {
            BTreeMap::new()
        };
        let scratch = in_memory.then(|| {
            std::env::temp_dir().join(format!(
                "kvsim-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ))
        });
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        let mut failures = BTreeMap::new();
        for id in config.node_ids() {
            match bind(&config.bind_addr(id)).await {
                Ok(listener) => {
                    addrs.insert(id, listener.local_addr()?.to_string());
                    listeners.insert(id, listener);
                }
                Err(e) => {
                    addrs.insert(id, config.bind_addr(id));
                    failures.insert(id, e.to_string());
                }
            }
        }
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .build()
            .map_err(Error::internal)?;
        let (supervisor, node_failures) = supervisor::Supervisor::new(config.supervision.clone());
        let cluster = Cluster {
            inner: Arc::new(Inner {
                events: config
                    .node_ids()
                    .map(|id| (id, EventLog::new(id)))
                    .collect(),
                config,
                addrs: Arc::new(addrs),
                client,
                nodes: RwLock::new(BTreeMap::new()),
                stopping: Mutex::new(BTreeMap::new()),
                faults: SharedFaults::default(),
                errors: SharedErrorRules::default(),
                index_lag: SharedIndexLag::default(),
                policy,
                start_failures: Mutex::new(BTreeMap::new()),
                existing_cluster,
                cluster_key: uuid::Uuid::new_v4().simple().to_string().into(),
                memory: api::budget::MemoryBudget::new(api::budget::BUDGET_BYTES),
                supervisor,
                generations: AtomicU64::new(0),
                started: Mutex::new(BTreeSet::new()),
                closing: AtomicBool::new(false),
                failing_disks: Mutex::new(BTreeSet::new()),
                memory_disks,
                scratch,
            }),
        };
        let weak = cluster.downgrade();
        tokio::spawn(supervisor::supervise(move || weak.upgrade(), node_failures));
        for (id, listener) in listeners {
            if let Err(e) = cluster.launch(id, listener).await {
                failures.insert(id, e.to_string());
            }
        }
        // The others keep working when some nodes cannot start: a majority still serves.
        if failures.len() == cluster.inner.addrs.len() {
            let all: Vec<String> = failures
                .iter()
                .map(|(id, e)| format!("node {id}: {e}"))
                .collect();
            return Err(Error::Unavailable(format!(
                "no node could start:\n  {}",
                all.join("\n  ")
            )));
        }
        for (id, why) in &failures {
            tracing::info!(node = id, "node did not start: {why}");
            cluster.record(
                *id,
                NodeEvent::new("node_failed", format!("node {id} did not start: {why}")),
            );
        }
        if let Ok(mut f) = cluster.inner.start_failures.lock() {
            *f = failures;
        }
        Ok(cluster)
    }

    /// Nodes that could not start, and why (they can be started later with `restart`).
    pub fn start_failures(&self) -> BTreeMap<NodeId, String> {
        self.inner
            .start_failures
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// A weak reference for the node servers.
    pub fn downgrade(&self) -> ClusterRef {
        ClusterRef(Arc::downgrade(&self.inner))
    }

    /// Client address of every node.
    pub fn addrs(&self) -> &BTreeMap<NodeId, String> {
        &self.inner.addrs
    }

    /// Every node id, running or not.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.inner.addrs.keys().copied().collect()
    }

    fn nodes(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<NodeId, RunningNode>> {
        // A poisoned lock only means a panic elsewhere while holding it; the map is still sound.
        self.inner
            .nodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Cluster::nodes`], to start or stop one.
    fn nodes_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<NodeId, RunningNode>> {
        self.inner
            .nodes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state of node `id`'s handlers, if it is running: a node forwarding a request to a
    /// leader in the same process calls its handler directly, without loopback HTTP.
    pub fn app_of(&self, id: NodeId) -> Option<api::AppState> {
        self.nodes().get(&id).map(|n| n.app.clone())
    }

    /// Raft message delivery between the nodes of this process: straight into the inbox of
    /// node `to` if it is running, without encoding them or a loopback TCP hop.
    fn local_delivery(&self) -> LocalDelivery {
        let cluster = self.downgrade();
        Arc::new(move |to, msgs| match cluster.upgrade() {
            Some(c) => match c.nodes().get(&to) {
                Some(n) => n
                    .handle
                    .inbox
                    .send(Event::Raft(msgs))
                    .map_err(|e| match e.0 {
                        Event::Raft(msgs) => msgs,
                        _ => Vec::new(),
                    }),
                None => Err(msgs),
            },
            None => Err(msgs),
        })
    }

    /// The handle of node `id`, if it is running.
    pub fn node(&self, id: NodeId) -> Option<NodeHandle> {
        self.nodes().get(&id).map(|n| n.handle.clone())
    }

    /// What running node `id`'s server has counted since it started.
    pub fn metrics_of(&self, id: NodeId) -> Option<api::metrics::Metrics> {
        self.nodes().get(&id).map(|n| n.metrics.clone())
    }

    /// Handles of every running node.
    pub fn handles(&self) -> Vec<NodeHandle> {
        self.nodes().values().map(|n| n.handle.clone()).collect()
    }

    /// The simulated network faults.
    pub fn faults(&self) -> &SharedFaults {
        &self.inner.faults
    }

    /// The DynamoDB error injection rules.
    pub fn error_rules(&self) -> &SharedErrorRules {
        &self.inner.errors
    }

    /// The GSI lags in force.
    pub fn index_lag(&self) -> &SharedIndexLag {
        &self.inner.index_lag
    }

    /// Who may use the simulator controls.
    pub fn policy(&self) -> AdminPolicy {
        self.inner.policy
    }

    /// Node `id`'s event log.
    pub fn events(&self, id: NodeId) -> Option<&EventLog> {
        self.inner.events.get(&id)
    }

    /// Records a cluster-level event in the log of node `via` (the node that took the command).
    pub fn record(&self, via: NodeId, event: NodeEvent) {
        if let Some(log) = self.events(via) {
            log.record(event);
        }
    }

    /// Where the nodes keep their data, and how durably.
    pub fn storage(&self) -> Storage {
        self.inner.config.storage
    }

    /// One line per active fault: network faults, error injection rules, failing disks and
    /// index lags.
    pub fn describe_faults(&self) -> Vec<String> {
        let mut out = crate::api::inject::describe_faults(&self.inner.faults, &self.inner.errors);
        out.extend(
            self.failing_disks()
                .iter()
                .map(|id| format!("disk of node {id} fails after every restart")),
        );
        if let Ok(lags) = self.inner.index_lag.read() {
            out.extend(lags.iter().map(|((table, index), ms)| match index {
                Some(index) => format!("global index {index} of {table} lags {ms} ms"),
                None => format!("global indexes of {table} lag {ms} ms"),
            }));
        }
        out
    }

    async fn launch(&self, id: NodeId, listener: TcpListener) -> Result<()> {
        let inner = &self.inner;
        let dir = inner.config.node_dir(id);
        let tuning = inner.config.tuning.clone();
        let snapshot_dir = match &inner.scratch {
            Some(scratch) => scratch.join(format!("node{}", id - 1)),
            None => dir.join("snapshots"),
        };
        let memory_disk = inner.memory_disks.get(&id).cloned();
        let fsync = inner.config.storage.fsyncs();
        // This node's first start in this process: every node lives here, so none can hold a
        // lease it granted before. A later start is a restart (and so is any start, should the
        // set be unreadable).
        let first_start = inner
            .started
            .lock()
            .map(|mut started| started.insert(id))
            .unwrap_or(false);
        let opts = NodeOptions {
            id,
            voters: inner.config.node_ids().collect(),
            election_ticks: tuning.election_ticks,
            heartbeat_ticks: tuning.heartbeat_ticks,
            proposal_timeout_ticks: tuning.ticks(tuning.proposal_timeout),
            read_timeout_ticks: tuning.ticks(tuning.read_timeout),
            compact_every: tuning.compact_every,
            log_retain: tuning.log_retain,
            snapshot_dir: snapshot_dir.clone(),
            fixed_election_ticks: None,
            planted_bug: None,
            lease: tuning.lease_reads.then(|| {
                let start = std::time::Instant::now();
                LeaseOptions {
                    clock: Clock::new(move || {
                        u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
                    }),
                    tick_us: u64::try_from(tuning.tick.as_micros()).unwrap_or(u64::MAX),
                    fresh_start: first_start,
                }
            }),
            fsync: inner.config.storage.fsyncs(),
        };
        // Opening the database (an integrity check that reads the whole file) and rebuilding
        // Raft's view of its log are blocking work: off the runtime, or every request on the
        // same worker would wait for them.
        let existing_cluster = inner.existing_cluster;
        let existing_cluster_has_leader = self.handles().iter().any(|h| h.leader().is_some());
        let failing_disk = inner.failing_disks.lock().is_ok_and(|d| d.contains(&id));
        let index_lag = inner.index_lag.clone();
        let (cache_items, cache_ttl) = (
            inner.config.tuning.cache_items,
            inner.config.tuning.cache_ttl,
        );
        // Created before the node's files, which time their fsyncs into it; a restarted
        // node starts from zero, as a restarted process would.
        let metrics = api::metrics::Metrics::new();
        let fsync_timer = metrics.fsync_timer();
        let lease_clock = opts.lease.as_ref().map(|l| l.clock.clone());
        let (node, store, crash) = tokio::task::spawn_blocking(move || {
            // An existing cluster's node must come back with its data; only a brand-new
            // cluster (no node had data when the server started) starts nodes empty.
            let storage = match &memory_disk {
                Some(memory) => disk::open_memory(memory)?,
                None => open_node_db(&dir, existing_cluster, fsync, fsync_timer)?,
            };
            let (db, crash, background) =
                (Arc::new(storage.db), storage.switch, storage.background);
            let store = Store::open(db.clone(), storage.items)?
                .with_index_lag(index_lag)
                .with_read_cache(cache_items, cache_ttl);
            let mut node = RaftNode::new(opts, db, storage.log, store.clone(), &raft_logger(id))?
                .with_background_sync(background);
            // The lowest id campaigns at once, so a new or restarted cluster has a leader in
            // about one round trip instead of after a 1-2 s election timeout; pre-vote makes it
            // harmless when a leader already exists.
            if id == 1 && !existing_cluster_has_leader {
                node.campaign();
            }
            if failing_disk {
                crash.fail();
            }
            Ok::<_, Error>((node, store, crash))
        })
        .await
        .map_err(|e| Error::internal(format!("node {id} failed while starting: {e}")))??;
        let lease = lease_clock.map(|clock| (node.shared_lease(), clock));
        let (inbox_tx, inbox_rx) = mpsc::channel();
        let report_tx = inbox_tx.clone();
        let ctx = TransportContext {
            from: id,
            client: inner.client.clone(),
            report: Arc::new(move |r: Report| {
                let _ = report_tx.send(Event::Transport(r));
            }),
            snapshots: node.snapshot_slot(),
            exporter: Arc::new(|txn, frozen, out| Store::export(txn, frozen, out)),
            faults: inner.faults.clone(),
            cluster_key: inner.cluster_key.clone(),
            local: (!inner.config.tuning.raft_over_http).then(|| self.local_delivery()),
            counters: metrics.raft_messages(),
        };
        let transport = Transport::start(&tokio::runtime::Handle::current(), &inner.addrs, ctx);
        let (status_tx, status_rx) = watch::channel(Published {
            health: Health::Running,
            raft: Some(node.status()),
        });
        let events = self
            .events(id)
            .cloned()
            .unwrap_or_else(|| EventLog::new(id));
        let thread = driver::spawn(
            node,
            inbox_rx,
            transport,
            status_tx,
            events.clone(),
            tuning.tick,
            {
                let crash = crash.clone();
                Box::new(move || crash.crash())
            },
        )?;
        let handle = NodeHandle {
            id,
            inbox: inbox_tx,
            status: status_rx,
            store,
            addrs: inner.addrs.clone(),
            tuning,
            snapshot_dir,
            lease,
            relayed: Arc::new(RelayFloor::default()),
        };
        let generation = inner.generations.fetch_add(1, Ordering::SeqCst);
        inner.supervisor.watch(id, generation, handle.watch());
        let shutdown = CancellationToken::new();
        tokio::spawn(index_work_loop(
            handle.clone(),
            events.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(ttl_loop(
            handle.clone(),
            inner.config.tuning.ttl_interval,
            inner.config.tuning.stream_retention,
            events,
            shutdown.clone(),
        ));
        let connections = metrics.connections();
        let app = api::AppState::new(api::AppInner {
            metrics: metrics.clone(),
            node: handle.clone(),
            client: inner.client.clone(),
            cluster: self.downgrade(),
            cluster_key: inner.cluster_key.clone(),
            memory: inner.memory.clone(),
            shutdown: shutdown.clone(),
        });
        let router = api::router(app.clone());
        let server = {
            let (router, handle, shutdown) = (router.clone(), handle.clone(), shutdown.clone());
            tokio::spawn(async move {
                api::serve(
                    listener,
                    router,
                    (handle.id, handle.tuning()),
                    connections,
                    shutdown,
                )
                .await;
            })
        };
        self.nodes_mut().insert(
            id,
            RunningNode {
                handle,
                app,
                thread: Some(thread),
                server,
                shutdown,
                crash,
                metrics,
                generation,
            },
        );
        Ok(())
    }

    /// Takes node `id` down, as a crash (`crash` true: nothing more reaches its disk, so only
    /// what was fsynced or already written survives) or as a clean stop. Its port refuses
    /// connections from then on. Returns once the node is fully down.
    async fn take_down(&self, id: NodeId, crash: bool) -> bool {
        let Some(mut node) = self.nodes_mut().remove(&id) else {
            return false;
        };
        if crash {
            node.crash.crash();
        }
        node.shutdown.cancel();
        let _ = node.handle.send(Event::Shutdown);
        let _ = node.server.await;
        if let Some(thread) = node.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        true
    }

    /// Stops node `id` cleanly: its HTTP server closes (clients get connection refused) and its
    /// Raft thread ends.
    pub async fn stop_node(&self, id: NodeId) {
        self.take_down(id, false).await;
    }

    /// Crashes node `id`: as [`Cluster::stop_node`], but its disk sees no further write, not
    /// even redb's tidy-up on close. Recorded in the event log of node `via`.
    ///
    /// # Errors
    /// `Validation` if the node is not running.
    pub async fn crash_node(&self, id: NodeId, via: NodeId) -> Result<()> {
        if !self.take_down(id, true).await {
            return Err(Error::validation(format!("node {id} is not running")));
        }
        self.record(
            via,
            NodeEvent::new("node_crashed", format!("node {id} crashed")),
        );
        Ok(())
    }

    /// Starts node `id` again from its data directory, on its old address.
    ///
    /// # Errors
    /// As [`Cluster::start`].
    pub async fn start_node(&self, id: NodeId) -> Result<()> {
        let pending = self
            .inner
            .stopping
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&id));
        if let Some(p) = pending {
            let _ = p.await;
        }
        if self.nodes().contains_key(&id) {
            return Ok(());
        }
        let addr = self
            .inner
            .addrs
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::validation(format!("there is no node {id}")))?;
        let listener = bind(&addr).await?;
        self.launch(id, listener).await
    }

    /// Restarts a crashed or stopped node; recorded in the event log of node `via`.
    ///
    /// # Errors
    /// `Validation` if the node is running already; as [`Cluster::start`] otherwise.
    pub async fn restart_node(&self, id: NodeId, via: NodeId) -> Result<()> {
        if !self.inner.addrs.contains_key(&id) {
            return Err(Error::validation(format!("there is no node {id}")));
        }
        let failed = match self.nodes().get(&id) {
            Some(node) if node.handle.failure().is_none() => {
                return Err(Error::validation(format!("node {id} is already running")));
            }
            Some(_) => true,
            None => false,
        };
        if failed {
            // A failed node's thread has ended; its port still answers that it failed.
            self.take_down(id, true).await;
        }
        self.inner.supervisor.reset(id);
        self.start_node(id).await?;
        if let Ok(mut f) = self.inner.start_failures.lock() {
            f.remove(&id);
        }
        self.record(
            via,
            NodeEvent::new(
                "node_restarted",
                format!("node {id} restarted from its data directory"),
            ),
        );
        Ok(())
    }

    /// Starts taking node `id` down in the background and returns at once; used by a node's
    /// own admin route, which cannot wait for its own server to stop.
    pub fn crash_node_in_background(&self, id: NodeId, via: NodeId) -> Result<()> {
        if !self.nodes().contains_key(&id) {
            return Err(Error::validation(format!("node {id} is not running")));
        }
        let cluster = self.clone();
        let task = tokio::spawn(async move {
            let _ = cluster.crash_node(id, via).await;
        });
        if let Ok(mut s) = self.inner.stopping.lock() {
            s.insert(id, task);
        }
        Ok(())
    }

    /// Makes node `id`'s disk fail every write and fsync from now on, as a dying disk does: the
    /// node stops with a storage fault at its next write. With `sticky` the disk fails again
    /// after every restart, until [`Cluster::heal_disks`]. Recorded in the event log of `via`.
    ///
    /// # Errors
    /// `Validation` if the node is not running.
    pub fn fail_disk(&self, id: NodeId, sticky: bool, via: NodeId) -> Result<()> {
        let nodes = self.nodes();
        let node = nodes
            .get(&id)
            .ok_or_else(|| Error::validation(format!("node {id} is not running")))?;
        node.crash.fail();
        drop(nodes);
        if sticky && let Ok(mut d) = self.inner.failing_disks.lock() {
            d.insert(id);
        }
        let what = if sticky {
            format!("node {id}'s disk fails every write, and will after every restart")
        } else {
            format!("node {id}'s disk fails every write until the node restarts")
        };
        self.record(via, NodeEvent::new("fault_set", what));
        Ok(())
    }

    /// Ends every sticky disk failure: nodes started from now on get working disks.
    pub fn heal_disks(&self) {
        if let Ok(mut d) = self.inner.failing_disks.lock() {
            d.clear();
        }
    }

    /// Nodes whose disks fail after every restart.
    pub fn failing_disks(&self) -> BTreeSet<NodeId> {
        self.inner
            .failing_disks
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// The supervisor's policy and every node's record, for status.
    pub fn supervision(&self) -> SupervisionStatus {
        self.inner.supervisor.status(self.node_ids().into_iter())
    }

    fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::SeqCst)
    }

    /// Stops every node.
    pub async fn shutdown(self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        for id in self.node_ids() {
            self.stop_node(id).await;
        }
        if let Some(scratch) = &self.inner.scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }
}

/// Makes sure `Store` really is the state machine the nodes run.
const _: fn() = || {
    fn assert_sm<M: StateMachine>() {}
    assert_sm::<Store>();
};

/// Table rows one round of the time-to-live sweep reads per table, and expired keys it deletes
/// per `Expire` entry.
const TTL_ROWS_PER_ROUND: usize = 10_000;
const TTL_KEYS_PER_ENTRY: usize = 100;

/// While this node leads, deletes the items whose time to live has passed: every
/// `ttl_interval` it sweeps the tables with TTL enabled (a bounded number of rows each, going
/// on where the last round stopped) and proposes an `Expire` entry per table with the keys it
/// found. Each replica applies the same entries, so the same items go at the same log index;
/// each item is checked again at apply, so one rewritten since is kept. Items expired but not
/// yet swept are still returned by reads, as in DynamoDB.
async fn ttl_loop(
    node: NodeHandle,
    interval: Duration,
    retention: Duration,
    events: EventLog,
    shutdown: CancellationToken,
) {
    let mut cursors = BTreeMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        if !node.is_leader() {
            continue;
        }
        trim_streams(&node, retention, &events).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let from = cursors.clone();
        let swept = node
            .read(move |store| {
                store.expired_items(now, &from, TTL_ROWS_PER_ROUND, TTL_KEYS_PER_ENTRY)
            })
            .await;
        let expired = match swept {
            Ok(sweep) => {
                cursors = sweep.cursors;
                sweep.expired
            }
            Err(e) => {
                tracing::debug!(node = node.id, "no time-to-live sweep: {e}");
                continue;
            }
        };
        for (table, keys) in expired {
            let command = Command::Expire {
                table: table.clone(),
                keys,
                now,
            };
            match node.propose(&command).await {
                Ok(Outcome::Expired { deleted }) => {
                    tracing::debug!(node = node.id, table, deleted, "expired items deleted");
                    if deleted > 0 {
                        events.record(NodeEvent::new(
                            "ttl_expired",
                            format!("deleted {deleted} expired item(s) of {table}"),
                        ));
                    }
                }
                Ok(other) => tracing::warn!(node = node.id, "expiry applied as {other:?}"),
                Err(e) => tracing::debug!(node = node.id, table, "expiry: {e}"),
            }
        }
    }
}

/// This machine's clock in milliseconds since the epoch: the time a proposal carries into
/// the log (see [`Command::At`]).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Trims stream records older than `retention` through the log, a batch per entry, while
/// there are any (the leader's part of DynamoDB Streams' 24-hour retention).
async fn trim_streams(node: &NodeHandle, retention: Duration, events: &EventLog) {
    let before_ms =
        now_ms().saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    loop {
        match node
            .read(move |store| store.stream_trim_due(before_ms))
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(node = node.id, "no stream trim: {e}");
                return;
            }
        }
        match node.propose(&Command::TrimStreams { before_ms }).await {
            Ok(Outcome::Trimmed { done }) => {
                events.record(NodeEvent::new(
                    "stream_trimmed",
                    format!("trimmed stream records written before {before_ms} ms"),
                ));
                if done {
                    return;
                }
            }
            Ok(other) => {
                tracing::warn!(node = node.id, "stream trim applied as {other:?}");
                return;
            }
            Err(e) => {
                tracing::debug!(node = node.id, "stream trim: {e}");
                return;
            }
        }
    }
}

/// How often a leader looks for index or purge work when it found none last time.
const INDEX_WORK_POLL: Duration = Duration::from_millis(50);

/// While this node leads, builds every global index UpdateTable adds, clears every one it
/// deletes, and removes the rows of tables DeleteTable left to purge: one entry at a time per
/// index or table (`Backfill`, `RemoveIndexEntries`, `PurgeTable`), each a bounded batch, so
/// client writes interleave with them. Every replica applies the same entries, so the work is
/// done the same everywhere; a new leader takes over where the log says the last batch ended.
async fn index_work_loop(node: NodeHandle, events: EventLog, shutdown: CancellationToken) {
    let mut busy = false;
    loop {
        let pause = if busy {
            Duration::ZERO
        } else {
            INDEX_WORK_POLL
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        busy = false;
        if !node.is_leader() {
            continue;
        }
        let pending = match node.read(|store| store.index_work()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(node = node.id, "no index work state: {e}");
                continue;
            }
        };
        for command in pending {
            match node.propose(&command).await {
                Ok(Outcome::IndexWork { done }) => {
                    busy = true;
                    match (&command, done) {
                        (Command::Backfill { table, index, .. }, true) => {
                            events.record(NodeEvent::new(
                                "index_active",
                                format!("index {index} of {table} backfilled: ACTIVE"),
                            ));
                        }
                        (Command::RemoveIndexEntries { table, index }, true) => {
                            events.record(NodeEvent::new(
                                "index_removed",
                                format!("index {index} of {table} removed"),
                            ));
                        }
                        (Command::PurgeTable { id }, true) => {
                            events.record(NodeEvent::new(
                                "table_purged",
                                format!("the last rows of deleted table id {id} removed"),
                            ));
                        }
                        _ => {}
                    }
                }
                Ok(other) => tracing::warn!(node = node.id, "index work applied as {other:?}"),
                Err(e) => tracing::debug!(node = node.id, "index work {command:?}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RelayFloor;

    #[tokio::test]
    async fn reads_wait_for_relayed_writes_once_and_give_up_once() {
        let floor = RelayFloor::default();
        // Nothing relayed: nothing to wait for.
        assert_eq!(
            floor.settle(|| 0, |_| async { panic!("waited") }).await,
            None
        );

        // A lower relay does not lower the floor; a node behind it waits for the highest.
        floor.raise(7);
        floor.raise(5);
        assert_eq!(
            floor.settle(|| 3, |i| async move { i == 7 }).await,
            Some(true)
        );
        assert_eq!(
            floor.settle(|| 3, |_| async { panic!("waited") }).await,
            None
        );

        // A node that already applied it does not wait, and forgets it.
        floor.raise(9);
        assert_eq!(
            floor.settle(|| 9, |_| async { panic!("waited") }).await,
            None
        );
        assert_eq!(
            floor.settle(|| 0, |_| async { panic!("waited") }).await,
            None
        );

        // A node that never gets there (cut off) makes one read wait, not every read.
        floor.raise(12);
        assert_eq!(floor.settle(|| 10, |_| async { false }).await, Some(false));
        assert_eq!(
            floor.settle(|| 10, |_| async { panic!("waited") }).await,
            None
        );

        // A relay while a read waits is kept for the next read.
        floor.raise(20);
        let waited = floor
            .settle(
                || 15,
                |_| async {
                    floor.raise(25);
                    true
                },
            )
            .await;
        assert_eq!(waited, Some(true));
        assert_eq!(
            floor.settle(|| 20, |i| async move { i == 25 }).await,
            Some(true)
        );
    }
}
