//! A local cluster: three nodes in one process, each with its own redb file, Raft thread,
//! transport and HTTP server. Nodes can be stopped and started again individually; a stopped
//! node's port refuses connections, exactly as a crashed process's would.
//!
//! [`NodeHandle`] is how the API layer talks to a node: propose a command, wait for a read
//! index, read its store and status.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use redb::Database;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::config::{ClusterConfig, Tuning};
use crate::raft::driver::{self, Event, Health, Published};
use crate::raft::node::{NodeOptions, RaftNode, raft_logger};
use crate::raft::transport::{Report, Transport, TransportContext};
use crate::raft::{NodeId, StateMachine};
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
}

impl NodeHandle {
    /// The node's state machine, for local reads.
    pub fn store(&self) -> &Store {
        &self.store
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
            command: command.encode()?,
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

    /// Waits until a linearizable local read is safe on this node (the leader).
    ///
    /// # Errors
    /// `NotLeader` or `Unavailable`.
    pub async fn read_index(&self) -> Result<()> {
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
    thread: Option<JoinHandle<()>>,
    server: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

/// Three nodes in one process.
pub struct Cluster {
    config: ClusterConfig,
    addrs: Arc<BTreeMap<NodeId, String>>,
    nodes: BTreeMap<NodeId, RunningNode>,
    client: reqwest::Client,
}

async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::Unavailable(format!(
            "cannot listen on {addr}: {e} (is another kvsim server running? choose other ports with --base-port)"
        ))
    })
}

fn open_db(dir: &std::path::Path) -> Result<Database> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::internal(format!(
            "cannot create data directory {}: {e}",
            dir.display()
        ))
    })?;
    let path = dir.join("kvsim.redb");
    Database::create(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::internal(format!(
            "{} is already open in another kvsim process; stop it or use another --data-dir-root",
            path.display()
        )),
        other => Error::internal(format!("cannot open {}: {other}", path.display())),
    })
}

impl Cluster {
    /// Binds every node's port and starts all nodes.
    ///
    /// # Errors
    /// A port that cannot be bound or a data directory that cannot be opened, named.
    pub async fn start(config: ClusterConfig) -> Result<Cluster> {
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for id in config.node_ids() {
            let listener = bind(&config.bind_addr(id)).await?;
            addrs.insert(id, listener.local_addr()?.to_string());
            listeners.insert(id, listener);
        }
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .map_err(Error::internal)?;
        let mut cluster = Cluster {
            config,
            addrs: Arc::new(addrs),
            nodes: BTreeMap::new(),
            client,
        };
        for (id, listener) in listeners {
            cluster.launch(id, listener)?;
        }
        Ok(cluster)
    }

    /// Client address of every node.
    pub fn addrs(&self) -> &BTreeMap<NodeId, String> {
        &self.addrs
    }

    /// The handle of a running node.
    pub fn node(&self, id: NodeId) -> Option<&NodeHandle> {
        self.nodes.get(&id).map(|n| &n.handle)
    }

    /// Handles of every running node.
    pub fn handles(&self) -> impl Iterator<Item = &NodeHandle> {
        self.nodes.values().map(|n| &n.handle)
    }

    fn launch(&mut self, id: NodeId, listener: TcpListener) -> Result<()> {
        let dir = self.config.node_dir(id);
        let db = Arc::new(open_db(&dir)?);
        let tuning = self.config.tuning.clone();
        let snapshot_dir = dir.join("snapshots");
        let opts = NodeOptions {
            id,
            voters: self.config.node_ids().collect(),
            election_ticks: tuning.election_ticks,
            heartbeat_ticks: tuning.heartbeat_ticks,
            proposal_timeout_ticks: tuning.ticks(tuning.proposal_timeout),
            read_timeout_ticks: tuning.ticks(tuning.read_timeout),
            compact_every: tuning.compact_every,
            log_retain: tuning.log_retain,
            snapshot_dir: snapshot_dir.clone(),
        };
        let store = Store::new(db.clone());
        let node = RaftNode::new(opts, db, store.clone(), &raft_logger(id))?;
        let (inbox_tx, inbox_rx) = mpsc::channel();
        let report_tx = inbox_tx.clone();
        let ctx = TransportContext {
            from: id,
            client: self.client.clone(),
            report: Arc::new(move |r: Report| {
                let _ = report_tx.send(Event::Transport(r));
            }),
            snapshots: node.snapshot_slot(),
            exporter: Arc::new(|txn, out| Store::export(txn, out)),
        };
        let transport = Transport::start(&tokio::runtime::Handle::current(), &self.addrs, ctx);
        let (status_tx, status_rx) = watch::channel(Published {
            health: Health::Running,
            raft: Some(node.status()),
        });
        let thread = driver::spawn(node, inbox_rx, transport, status_tx, tuning.tick)?;
        let handle = NodeHandle {
            id,
            inbox: inbox_tx,
            status: status_rx,
            store,
            addrs: self.addrs.clone(),
            tuning,
            snapshot_dir,
        };
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(api::serve(
            listener,
            handle.clone(),
            self.client.clone(),
            shutdown.clone(),
        ));
        self.nodes.insert(
            id,
            RunningNode {
                handle,
                thread: Some(thread),
                server,
                shutdown,
            },
        );
        Ok(())
    }

    /// Stops node `id`: its HTTP server closes (clients get connection refused) and its Raft
    /// thread ends. Only what it had fsynced survives, as in a crash, because every
    /// acknowledged state change was fsynced when made.
    pub async fn stop_node(&mut self, id: NodeId) {
        let Some(mut node) = self.nodes.remove(&id) else {
            return;
        };
        node.shutdown.cancel();
        let _ = node.handle.send(Event::Shutdown);
        let _ = node.server.await;
        if let Some(thread) = node.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Starts node `id` again from its data directory, on its old address.
    ///
    /// # Errors
    /// As for [`Cluster::start`].
    pub async fn start_node(&mut self, id: NodeId) -> Result<()> {
        if self.nodes.contains_key(&id) {
            return Ok(());
        }
        let addr = self
            .addrs
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::validation(format!("there is no node {id}")))?;
        let listener = bind(&addr).await?;
        self.launch(id, listener)
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop_node(id).await;
        }
    }
}

/// Makes sure `Store` really is the state machine the nodes run.
const _: fn() = || {
    fn assert_sm<M: StateMachine>() {}
    assert_sm::<Store>();
};
