//! The composition root of `kvsim server --mode dynamo`: N leaderless nodes in one process,
//! each with its own redb file (`<data root>/node<i>/dynamo.redb`), its own thread
//! ([`crate::dynamo::driver`]) and its own HTTP port, joined by an in-process network that
//! obeys the simulator's network faults.
//!
//! A crashed node's thread stops and its database closes; its port stays open and answers
//! `Unavailable`, as a Raft node's does, until it is restarted from what it had made durable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::cluster::AdminPolicy;
use crate::cluster::supervisor::{self, Failure, Supervised, Supervisor};
use crate::config::{Storage, Tuning};
use crate::dynamo::NodeId;
use crate::dynamo::driver::{self, DynamoHandle, Mesh};
use crate::dynamo::merge;
use crate::dynamo::node::{DynamoNode, Options};
use crate::dynamo::service;
use crate::dynamo::storage::RedbVersions;
use crate::events::{EventLog, NodeEvent};
use crate::faults::SharedFaults;
use crate::{Error, Result};

/// The file of a leaderless node's data, in its directory.
pub const DB_FILE: &str = "dynamo.redb";
/// Ticks without an answer before a peer is suspected, by default (with [`driver::TICK`]:
/// 0.5 s).
pub const SUSPECT_AFTER: u64 = 10;
/// Ticks a request waits for its quorum (2 s).
const REQUEST_TICKS: u64 = 40;
/// Ticks between a node's anti-entropy rounds (1 s).
const SYNC_EVERY: u64 = 20;

/// What `kvsim server --mode dynamo` was asked for.
#[derive(Clone, Debug)]
pub struct LeaderlessConfig {
    /// Where the node directories are.
    pub data_root: PathBuf,
    /// The address the nodes listen on.
    pub host: String,
    /// Node 1's port; node i listens on `base_port + i - 1` (0: any free ports).
    pub base_port: u16,
    /// How many nodes.
    pub nodes: u64,
    /// Replicas per key (N).
    pub replicas: usize,
    /// Replies a read waits for (R).
    pub read_quorum: usize,
    /// Acknowledgements a write waits for (W).
    pub write_quorum: usize,
    /// `lww` or `vector`.
    pub merger: String,
    /// How long a tombstone is kept at least.
    pub tombstone_gc: Duration,
    /// On disk with or without fsync, or in memory.
    pub storage: Storage,
    /// Connection limits and timeouts of the HTTP servers.
    pub tuning: Tuning,
    /// Who may use the simulator controls.
    pub policy: AdminPolicy,
    /// Ticks a peer may leave a request unanswered before it is suspected ([`SUSPECT_AFTER`]
    /// by default). Longer means fewer false suspicions on a loaded machine, and slower
    /// failover to stand-ins.
    pub suspect_after: u64,
    /// How failed nodes are restarted.
    pub supervision: crate::config::Supervision,
}

impl LeaderlessConfig {
    /// Node ids, 1 to `nodes`.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> {
        1..=self.nodes
    }

    /// Data directory of node `id` (`node0` holds node 1, as in Raft mode).
    pub fn node_dir(&self, id: NodeId) -> PathBuf {
        self.data_root.join(format!("node{}", id - 1))
    }

    fn bind_addr(&self, id: NodeId) -> String {
        let port = if self.base_port == 0 {
            0
        } else {
            u64::from(self.base_port) + id - 1
        };
        format!("{}:{port}", self.host)
    }

    /// Checks the quorum settings and the merger.
    ///
    /// # Errors
    /// A validation error naming the flag.
    pub fn validate(&self) -> Result<()> {
        if !(3..=9).contains(&self.nodes) {
            return Err(Error::validation(format!(
                "--nodes must be 3 to 9, got {}",
                self.nodes
            )));
        }
        if u64::from(self.base_port) + self.nodes - 1 > u64::from(u16::MAX) {
            return Err(Error::validation(format!(
                "--base-port {} leaves no room for {} nodes (ports up to 65535)",
                self.base_port, self.nodes
            )));
        }
        if merge::by_name(&self.merger).is_none() {
            return Err(Error::validation(format!(
                "--merger must be lww or vector, got {}",
                self.merger
            )));
        }
        self.options(1).validate().map_err(|e| {
            Error::validation(format!(
                "{} (--replicas {}, --read-quorum {}, --write-quorum {}, --nodes {})",
                e, self.replicas, self.read_quorum, self.write_quorum, self.nodes
            ))
        })
    }

    fn options(&self, id: NodeId) -> Options {
        Options {
            id,
            members: self.node_ids().collect(),
            replicas: self.replicas,
            read_quorum: self.read_quorum,
            write_quorum: self.write_quorum,
            suspect_after: self.suspect_after,
            request_ticks: REQUEST_TICKS,
            sync_every: SYNC_EVERY,
            tombstone_grace_ms: u64::try_from(self.tombstone_gc.as_millis()).unwrap_or(u64::MAX),
            change_retention_ms: crate::dynamo::node::CHANGE_RETENTION_MS,
            planted_bug: None,
        }
    }
}

/// A running node.
struct Running {
    handle: DynamoHandle,
    thread: std::thread::JoinHandle<()>,
    /// Crashes its storage (`fault crash`) or makes it fail (`fault disk`).
    switch: crate::disk::CrashSwitch,
    /// Which start of the node this is (the supervisor acts only on the instance that failed).
    generation: u64,
}

struct Inner {
    config: LeaderlessConfig,
    addrs: BTreeMap<NodeId, String>,
    mesh: Mesh,
    faults: SharedFaults,
    errors: crate::api::inject::SharedErrorRules,
    events: BTreeMap<NodeId, EventLog>,
    nodes: Mutex<BTreeMap<NodeId, Running>>,
    /// In-memory databases' contents, kept across a node's crash and restart.
    memory: Mutex<BTreeMap<NodeId, crate::disk::MemoryFile>>,
    /// Nodes whose disk fails again after every restart (`kvsim fault disk --sticky`).
    failing_disks: Mutex<std::collections::BTreeSet<NodeId>>,
    /// Starts of nodes so far (each start is a new generation).
    generations: std::sync::atomic::AtomicU64,
    shutdown: CancellationToken,
    servers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Each node's request counters (its server's).
    metrics: BTreeMap<NodeId, api::metrics::Metrics>,
    /// Restarts failed nodes.
    supervisor: Supervisor,
    /// Why a node could not be started again, while it cannot.
    start_failures: Mutex<BTreeMap<NodeId, String>>,
}

/// A leaderless cluster. Cheap to clone.
#[derive(Clone)]
pub struct LeaderlessCluster {
    inner: Arc<Inner>,
}

/// What the HTTP handlers hold of their cluster: it does not keep the cluster alive.
#[derive(Clone)]
pub struct LeaderlessRef(Weak<Inner>);

impl LeaderlessRef {
    /// The cluster, unless it has shut down.
    pub fn upgrade(&self) -> Option<LeaderlessCluster> {
        self.0.upgrade().map(|inner| LeaderlessCluster { inner })
    }
}

impl LeaderlessCluster {
    /// Binds every node's port, opens its data and starts it.
    ///
    /// # Errors
    /// Invalid settings, a port in use, data that cannot be opened, or a data directory that
    /// holds a Raft cluster.
    pub async fn start(config: LeaderlessConfig) -> Result<LeaderlessCluster> {
        config.validate()?;
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for id in config.node_ids() {
            if config.storage != Storage::Memory {
                let dir = config.node_dir(id);
                if std::fs::metadata(dir.join("kvsim.redb")).is_ok() {
                    return Err(Error::validation(format!(
                        "{} holds a --mode raft cluster's data; start it with --mode raft, or use another --data-dir-root",
                        dir.display()
                    )));
                }
            }
            let addr = config.bind_addr(id);
            let listener = TcpListener::bind(&addr).await.map_err(|e| {
                Error::Unavailable(format!(
                    "cannot listen on {addr}: {e} (is another kvsim server running? choose other ports with --base-port)"
                ))
            })?;
            addrs.insert(id, listener.local_addr()?.to_string());
            listeners.insert(id, listener);
        }
        let faults = SharedFaults::default();
        let metrics = config
            .node_ids()
            .map(|id| (id, api::metrics::Metrics::new()))
            .collect();
        let (supervisor, node_failures) = Supervisor::new(config.supervision.clone());
        let cluster = LeaderlessCluster {
            inner: Arc::new(Inner {
                supervisor,
                start_failures: Mutex::new(BTreeMap::new()),
                events: config
                    .node_ids()
                    .map(|id| (id, EventLog::new(id)))
                    .collect(),
                mesh: Mesh::new(faults.clone(), tokio::runtime::Handle::current()),
                faults,
                errors: Default::default(),
                addrs,
                config,
                nodes: Mutex::new(BTreeMap::new()),
                memory: Mutex::new(BTreeMap::new()),
                failing_disks: Mutex::new(std::collections::BTreeSet::new()),
                generations: std::sync::atomic::AtomicU64::new(0),
                shutdown: CancellationToken::new(),
                servers: Mutex::new(Vec::new()),
                metrics,
            }),
        };
        let weak = LeaderlessRef(Arc::downgrade(&cluster.inner));
        tokio::spawn(supervisor::supervise(move || weak.upgrade(), node_failures));
        for id in cluster.inner.config.node_ids() {
            cluster.start_node(id).await?;
        }
        let memory = api::budget::MemoryBudget::new(api::budget::BUDGET_BYTES);
        for (id, listener) in listeners {
            let state = api::leaderless::LeaderlessState {
                id,
                cluster: LeaderlessRef(Arc::downgrade(&cluster.inner)),
                memory: memory.clone(),
                metrics: cluster
                    .metrics_of(id)
                    .cloned()
                    .unwrap_or_else(api::metrics::Metrics::new),
            };
            let connections = state.metrics.connections();
            let all: Vec<String> = cluster.addrs().values().cloned().collect();
            let router = api::leaderless::router(state, &all);
            let shutdown = cluster.inner.shutdown.clone();
            let tuning = cluster.inner.config.tuning.clone();
            let server = tokio::spawn(async move {
                api::serve(listener, router, (id, &tuning), connections, shutdown).await;
            });
            cluster
                .inner
                .servers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(server);
        }
        tokio::spawn(ttl_loop(
            LeaderlessRef(Arc::downgrade(&cluster.inner)),
            cluster.inner.config.tuning.ttl_interval,
            cluster.inner.shutdown.clone(),
        ));
        Ok(cluster)
    }

    /// Opens node `id`'s database on a crashable backend (its file, or its memory).
    fn open(&self, id: NodeId) -> Result<(Arc<redb::Database>, crate::disk::CrashSwitch)> {
        let config = &self.inner.config;
        if config.storage == Storage::Memory {
            let file = self
                .inner
                .memory
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id)
                .or_default()
                .clone();
            let (db, switch) = crate::disk::open_memory_database(&file)?;
            return Ok((Arc::new(db), switch));
        }
        let dir = config.node_dir(id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::internal(format!(
                "cannot create {}: {e}; check that kvsim may write there, or use another --data-dir-root",
                dir.display()
            ))
        })?;
        let path = dir.join(DB_FILE);
        // A just-crashed instance may still be closing the file: retry briefly.
        let mut tries = 0;
        loop {
            match crate::disk::open_database(&path, config.storage == Storage::Fsync) {
                Ok((db, switch)) => return Ok((Arc::new(db), switch)),
                Err(e) if tries < 50 && e.to_string().contains("already open") => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_node(&self, id: NodeId) -> Result<()> {
        let this = self.clone();
        let (db, switch) = tokio::task::spawn_blocking(move || this.open(id))
            .await
            .map_err(|e| Error::internal(format!("opening node {id}: {e}")))??;
        if self
            .inner
            .failing_disks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&id)
        {
            switch.fail();
        }
        let config = &self.inner.config;
        let fsync = config.storage == Storage::Fsync;
        let store = RedbVersions::open(db, fsync)?;
        let merger = merge::by_name(&config.merger)
            .ok_or_else(|| Error::validation(format!("unknown merger {}", config.merger)))?;
        let node = DynamoNode::new(config.options(id), merger, store)?;
        let events = self.events(id);
        let driver::Spawned {
            handle,
            thread,
            ended,
        } = driver::spawn(node, &self.inner.mesh, events.clone())?;
        let generation = self
            .inner
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner
            .supervisor
            .watch_until(
                id,
                generation,
                async move { matches!(ended.await, Ok(Some(_))) },
            );
        self.inner
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                Running {
                    handle,
                    thread,
                    switch,
                    generation,
                },
            );
        events.record(NodeEvent::new("node_started", format!("node {id} started")));
        Ok(())
    }

    /// Node `id`'s handle, while it runs.
    pub fn node(&self, id: NodeId) -> Option<DynamoHandle> {
        self.inner
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .map(|r| r.handle.clone())
    }

    /// Node `id`'s request counters.
    pub fn metrics_of(&self, id: NodeId) -> Option<&api::metrics::Metrics> {
        self.inner.metrics.get(&id)
    }

    /// The messages the nodes sent each other so far, by sender, receiver and kind.
    pub fn flows(&self) -> &driver::MeshFlows {
        self.inner.mesh.flows()
    }

    /// Cancelled when the cluster shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Every fault in force, one line each: the network's, the injected errors, the disks
    /// that fail after every restart.
    pub fn describe_faults(&self) -> Vec<String> {
        let mut lines = crate::api::inject::describe_faults(&self.inner.faults, &self.inner.errors);
        lines.extend(
            self.failing_disks()
                .iter()
                .map(|id| format!("disk of node {id} fails after every restart")),
        );
        lines
    }

    /// Every node's address.
    pub fn addrs(&self) -> &BTreeMap<NodeId, String> {
        &self.inner.addrs
    }

    /// The settings it runs with.
    pub fn config(&self) -> &LeaderlessConfig {
        &self.inner.config
    }

    /// The network faults in force.
    pub fn faults(&self) -> &SharedFaults {
        &self.inner.faults
    }

    /// The DynamoDB errors injected into requests (`kvsim fault errors`).
    pub fn error_rules(&self) -> &crate::api::inject::SharedErrorRules {
        &self.inner.errors
    }

    /// Node `id`'s event log.
    pub fn events(&self, id: NodeId) -> EventLog {
        self.inner
            .events
            .get(&id)
            .cloned()
            .unwrap_or_else(|| EventLog::new(id))
    }

    /// Crashes node `id`: its thread stops without answering what it has not finished; what
    /// it acknowledged is durable. `via` is the node whose API was asked.
    ///
    /// # Errors
    /// `Validation` when the node is already down.
    pub async fn crash_node(&self, id: NodeId, via: NodeId) -> Result<()> {
        let running = self
            .inner
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
            .ok_or_else(|| Error::validation(format!("node {id} is already down")))?;
        // Stopped first, so that what its last batch meets is not taken for a failure; then
        // nothing more reaches its disk, not even redb's tidy-up on close.
        running.handle.stop();
        running.switch.crash();
        tokio::task::spawn_blocking(move || running.thread.join())
            .await
            .map_err(|e| Error::internal(format!("stopping node {id}: {e}")))?
            .map_err(|_| Error::internal(format!("node {id}'s thread panicked")))?;
        self.events(via)
            .record(NodeEvent::new("node_crashed", format!("node {id} crashed")));
        Ok(())
    }

    /// Restarts a crashed or failed node from its data (a person's restart: the supervisor's
    /// count for it starts over).
    ///
    /// # Errors
    /// `Validation` when it runs; its data cannot be opened.
    pub async fn restart_node(&self, id: NodeId) -> Result<()> {
        match self.node(id) {
            Some(node) if node.failure().is_none() => {
                return Err(Error::validation(format!("node {id} is running")));
            }
            Some(_) => self.remove(id).await,
            None => {}
        }
        self.inner.supervisor.reset(id);
        let started = self.start_node(id).await;
        self.note_failure(id, started.as_ref().err().map(ToString::to_string));
        started
    }

    /// Takes node `id` out of the registry and waits for its thread to end.
    async fn remove(&self, id: NodeId) {
        let running = self
            .inner
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        if let Some(running) = running {
            running.handle.stop();
            running.switch.crash();
            let _ = tokio::task::spawn_blocking(move || running.thread.join()).await;
        }
    }

    fn note_failure(&self, id: NodeId, why: Option<String>) {
        let mut failures = self
            .inner
            .start_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match why {
            Some(why) => failures.insert(id, why),
            None => failures.remove(&id),
        };
    }

    /// Why node `id` could not be started again, while it cannot.
    pub fn start_failure(&self, id: NodeId) -> Option<String> {
        self.inner
            .start_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Makes node `id`'s disk fail every write and fsync from now on, as a dying disk does:
    /// the node stops with a storage fault at its next write, and the supervisor restarts it
    /// on a working disk, or, with `sticky`, on a disk that fails again, until
    /// [`LeaderlessCluster::heal_disks`]. Recorded in the event log of `via`.
    ///
    /// # Errors
    /// `Validation` if the node is not running.
    pub fn fail_disk(&self, id: NodeId, sticky: bool, via: NodeId) -> Result<()> {
        {
            let nodes = self
                .inner
                .nodes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let node = nodes
                .get(&id)
                .filter(|n| n.handle.failure().is_none())
                .ok_or_else(|| Error::validation(format!("node {id} is not running")))?;
            node.switch.fail();
        }
        if sticky {
            self.inner
                .failing_disks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id);
        }
        let what = if sticky {
            format!("node {id}'s disk fails every write, and will after every restart")
        } else {
            format!("node {id}'s disk fails every write until the node restarts")
        };
        self.events(via).record(NodeEvent::new("fault_set", what));
        Ok(())
    }

    /// Ends every sticky disk failure: nodes started from now on get working disks.
    pub fn heal_disks(&self) {
        self.inner
            .failing_disks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Nodes whose disks fail after every restart.
    pub fn failing_disks(&self) -> std::collections::BTreeSet<NodeId> {
        self.inner
            .failing_disks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The supervisor's policy and every node's record, for status.
    pub fn supervision(&self) -> crate::cluster::SupervisionStatus {
        self.inner.supervisor.status(self.inner.config.node_ids())
    }

    /// Stops every node and server.
    pub async fn shutdown(self) {
        self.inner.shutdown.cancel();
        let servers: Vec<_> = std::mem::take(
            &mut *self
                .inner
                .servers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for server in servers {
            let _ = server.await;
        }
        let ids: Vec<NodeId> = self.inner.config.node_ids().collect();
        for id in ids {
            let _ = self.crash_node(id, id).await;
        }
    }
}

/// Every `interval`, the lowest-numbered running node sweeps the tables with time to live
/// enabled and deletes their expired items through the ring ([`service::expire`]), recording
/// `ttl_expired` events; one sweeper at a time, so each expired item is deleted once.
async fn ttl_loop(cluster: LeaderlessRef, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(c) = cluster.upgrade() else {
            return;
        };
        let sweeper = c
            .addrs()
            .keys()
            .find_map(|&id| c.node(id).filter(|n| n.failure().is_none()));
        let Some(node) = sweeper else {
            continue;
        };
        let events = c.events(node.id);
        drop(c);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let swept = service::expire(&node, now).await;
        let collected = service::collect_deleted(&node).await;
        for (result, kind, what) in [
            (swept, "ttl_expired", "expired item(s) of"),
            (
                collected,
                "deleted_table_collected",
                "item(s) left by deleted table",
            ),
        ] {
            match result {
                Ok(done) => {
                    for (table, deleted) in done {
                        events.record(NodeEvent::new(
                            kind,
                            format!("deleted {deleted} {what} {table}"),
                        ));
                    }
                }
                Err(e) => tracing::debug!(node = node.id, "no {kind} sweep this round: {e}"),
            }
        }
    }
}

impl Supervised for LeaderlessCluster {
    fn supervisor(&self) -> &Supervisor {
        &self.inner.supervisor
    }

    fn failed_instance(&self, failure: Failure) -> Option<String> {
        let nodes = self
            .inner
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let node = nodes.get(&failure.id)?;
        if node.generation != failure.generation {
            return None;
        }
        node.handle.failure()
    }

    fn is_closing(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    fn is_running(&self, id: NodeId) -> bool {
        self.node(id).is_some()
    }

    fn record(&self, id: NodeId, event: NodeEvent) {
        self.events(id).record(event);
    }

    fn note_start_failure(&self, id: NodeId, why: Option<String>) {
        self.note_failure(id, why);
    }

    async fn take_down(&self, id: NodeId) {
        self.remove(id).await;
    }

    async fn start(&self, id: NodeId) -> Result<()> {
        self.start_node(id).await
    }
}
