//! Supervision, as the Elixir seed asks: a node that fails (a panic caught in its thread, or a
//! storage fault) is restarted from its data directory, after a backoff, under an OTP-style
//! restart intensity: at most `max_restarts` restarts of one node within `period`. Past that
//! it stays failed and the cluster's status says why, until a person restarts it.
//!
//! A node crashed or stopped on purpose is never restarted: taking a node down removes it from
//! the cluster's registry first, and the supervisor acts only on the instance that failed
//! (each start of a node is a new generation). Every restart, failed restart and refusal is an
//! event in `kvsim events` and a line in the `supervision` section of `GET /status`.
//!
//! Both engines' clusters are supervised by the same code: each says what restarting one of
//! its nodes takes (the `Supervised` trait).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use super::Cluster;
use crate::NodeId;
use crate::Result;
use crate::config::Supervision;
use crate::events::NodeEvent;
use crate::raft::driver::Health;

/// A node instance that failed: its id and the generation of the start that failed.
#[derive(Clone, Copy, Debug)]
pub(super) struct Failure {
    pub id: NodeId,
    pub generation: u64,
}

/// What the supervisor has done for one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NodeSupervision {
    /// The node.
    pub node_id: NodeId,
    /// Automatic restarts so far.
    pub restarts: u64,
    /// Why the node last failed, if it ever did.
    pub last_failure: Option<String>,
    /// Set when the supervisor stopped restarting the node: why.
    pub gave_up: Option<String>,
}

/// The `supervision` section of a node's status: the policy and every node's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SupervisionStatus {
    /// Failed nodes are restarted (false with `--no-auto-restart`).
    pub auto_restart: bool,
    /// Most restarts of one node within the period.
    pub max_restarts: u32,
    /// The period, in seconds.
    pub period_secs: u64,
    /// Each node's record, by id.
    pub nodes: Vec<NodeSupervision>,
}

#[derive(Default)]
struct Record {
    /// When recent restarts happened, oldest first (pruned to the period).
    recent: VecDeque<Instant>,
    shown: NodeSupervision,
}

/// The supervisor's policy and memory; failures reach it through `failures`.
pub(super) struct Supervisor {
    policy: Supervision,
    records: Mutex<BTreeMap<NodeId, Record>>,
    failures: mpsc::UnboundedSender<Failure>,
}

impl Supervisor {
    /// A supervisor with `policy`, and the receiving end its task reads failures from.
    pub fn new(policy: Supervision) -> (Supervisor, mpsc::UnboundedReceiver<Failure>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sup = Supervisor {
            policy,
            records: Mutex::new(BTreeMap::new()),
            failures: tx,
        };
        (sup, rx)
    }

    fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Record>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Watches a newly started Raft node instance and reports it to the supervisor if it
    /// fails.
    pub fn watch(
        &self,
        id: NodeId,
        generation: u64,
        mut status: tokio::sync::watch::Receiver<crate::raft::driver::Published>,
    ) {
        self.watch_until(id, generation, async move {
            loop {
                if matches!(status.borrow_and_update().health, Health::Failed(_)) {
                    return true;
                }
                // The node's thread ended (its sender dropped) without failing: nothing to do.
                if status.changed().await.is_err() {
                    return false;
                }
            }
        });
    }

    /// Reports node instance `id`/`generation` to the supervisor if `failed` ends true.
    pub fn watch_until(
        &self,
        id: NodeId,
        generation: u64,
        failed: impl std::future::Future<Output = bool> + Send + 'static,
    ) {
        if !self.policy.auto_restart {
            return;
        }
        let tx = self.failures.clone();
        tokio::spawn(async move {
            if failed.await {
                let _ = tx.send(Failure { id, generation });
            }
        });
    }

    /// Forgets a node's recent restarts and any refusal: a person restarted it.
    pub fn reset(&self, id: NodeId) {
        if let Some(r) = self.records().get_mut(&id) {
            r.recent.clear();
            r.shown.gave_up = None;
        }
    }

    /// The `supervision` section of a status.
    pub fn status(&self, ids: impl Iterator<Item = NodeId>) -> SupervisionStatus {
        let records = self.records();
        SupervisionStatus {
            auto_restart: self.policy.auto_restart,
            max_restarts: self.policy.max_restarts,
            period_secs: self.policy.period.as_secs(),
            nodes: ids
                .map(|id| {
                    records.get(&id).map_or(
                        NodeSupervision {
                            node_id: id,
                            ..NodeSupervision::default()
                        },
                        |r| NodeSupervision {
                            node_id: id,
                            ..r.shown.clone()
                        },
                    )
                })
                .collect(),
        }
    }

    /// Decides about one more restart of `id`, which failed because of `why`: the backoff to
    /// wait, or the refusal (also recorded) when the restart intensity is spent.
    pub(super) fn admit(
        &self,
        id: NodeId,
        why: &str,
    ) -> std::result::Result<std::time::Duration, String> {
        let mut records = self.records();
        let r = records.entry(id).or_default();
        r.shown.last_failure = Some(why.to_string());
        let now = Instant::now();
        while r
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.period)
        {
            r.recent.pop_front();
        }
        if r.recent.len() >= self.policy.max_restarts as usize {
            let refusal = format!(
                "not restarted: {} restarts within {} s is the limit (--max-restarts, \
                 --restart-period-secs); it last failed with: {why}; restart it with `kvsim \
                 fault restart --node {id}`",
                r.recent.len(),
                self.policy.period.as_secs()
            );
            r.shown.gave_up = Some(refusal.clone());
            return Err(refusal);
        }
        Ok(self.policy.backoff_after(r.recent.len()))
    }

    /// Counts a restart attempt of `id`; returns its number within the period.
    pub(super) fn count_restart(&self, id: NodeId) -> usize {
        let mut records = self.records();
        let r = records.entry(id).or_default();
        r.recent.push_back(Instant::now());
        r.shown.restarts += 1;
        r.recent.len()
    }
}

/// What the supervisor needs of a cluster (Raft's or the leaderless one) to restart its nodes.
pub(super) trait Supervised: Send + Sync + Sized + 'static {
    /// The cluster's supervisor.
    fn supervisor(&self) -> &Supervisor;
    /// Why `failure`'s instance failed, if it is still the node's running instance.
    fn failed_instance(&self, failure: Failure) -> Option<String>;
    /// The cluster is shutting down.
    fn is_closing(&self) -> bool;
    /// Node `id` runs (a person may have restarted it during the backoff).
    fn is_running(&self, id: NodeId) -> bool;
    /// Records an event in node `id`'s log.
    fn record(&self, id: NodeId, event: NodeEvent);
    /// Remembers (or, with `None`, forgets) why node `id` could not be started.
    fn note_start_failure(&self, id: NodeId, why: Option<String>);
    /// Takes the failed node's remains down (its thread has ended; its port closes).
    fn take_down(&self, id: NodeId) -> impl std::future::Future<Output = ()> + Send;
    /// Starts node `id` from its data.
    fn start(&self, id: NodeId) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// The supervisor's task: receives failures for as long as the cluster lives (`upgrade`
/// answers it) and handles each on a task of its own, so one node's backoff never delays
/// another's restart.
pub(super) async fn supervise<S: Supervised>(
    upgrade: impl Fn() -> Option<S> + Send + 'static,
    mut failures: mpsc::UnboundedReceiver<Failure>,
) {
    while let Some(failure) = failures.recv().await {
        let Some(cluster) = upgrade() else {
            return;
        };
        tokio::spawn(async move { restart_failed(&cluster, failure).await });
    }
}

/// Restarts the failed instance `failure`, retrying a start that fails, within the restart
/// intensity.
async fn restart_failed<S: Supervised>(cluster: &S, failure: Failure) {
    let id = failure.id;
    let Some(mut why) = cluster.failed_instance(failure) else {
        return;
    };
    let sup = cluster.supervisor();
    loop {
        if cluster.is_closing() {
            return;
        }
        let backoff = match sup.admit(id, &why) {
            Ok(b) => b,
            Err(refusal) => {
                tracing::warn!(node = id, "{refusal}");
                cluster.record(id, NodeEvent::new("supervisor_gave_up", refusal));
                return;
            }
        };
        cluster.record(
            id,
            NodeEvent::new(
                "node_restarting",
                format!(
                    "the supervisor restarts node {id} in {} ms after: {why}",
                    backoff.as_millis()
                ),
            ),
        );
        // Its thread has ended; close its port too, as a crashed process's would be.
        cluster.take_down(id).await;
        tokio::time::sleep(backoff).await;
        // Shutting down, or a person restarted it meanwhile.
        if cluster.is_closing() || cluster.is_running(id) {
            return;
        }
        let n = sup.count_restart(id);
        match cluster.start(id).await {
            Ok(()) => {
                cluster.note_start_failure(id, None);
                tracing::info!(node = id, "the supervisor restarted the node");
                cluster.record(
                    id,
                    NodeEvent::new(
                        "node_restarted",
                        format!(
                            "the supervisor restarted node {id} from its data directory \
                             (restart {n} of at most {} within {} s)",
                            sup.policy.max_restarts,
                            sup.policy.period.as_secs()
                        ),
                    ),
                );
                return;
            }
            Err(e) => {
                why = format!("it did not start again: {e}");
                cluster.note_start_failure(id, Some(why.clone()));
                cluster.record(
                    id,
                    NodeEvent::new("node_failed", format!("node {id} {why}")),
                );
            }
        }
    }
}

impl Supervised for Cluster {
    fn supervisor(&self) -> &Supervisor {
        &self.inner.supervisor
    }

    fn failed_instance(&self, failure: Failure) -> Option<String> {
        let nodes = self.nodes();
        let node = nodes.get(&failure.id)?;
        if node.generation != failure.generation {
            return None;
        }
        node.handle.failure()
    }

    fn is_closing(&self) -> bool {
        Cluster::is_closing(self)
    }

    fn is_running(&self, id: NodeId) -> bool {
        self.nodes().contains_key(&id)
    }

    fn record(&self, id: NodeId, event: NodeEvent) {
        Cluster::record(self, id, event);
    }

    fn note_start_failure(&self, id: NodeId, why: Option<String>) {
        if let Ok(mut f) = self.inner.start_failures.lock() {
            match why {
                Some(why) => f.insert(id, why),
                None => f.remove(&id),
            };
        }
    }

    async fn take_down(&self, id: NodeId) {
        Cluster::take_down(self, id, true).await;
    }

    async fn start(&self, id: NodeId) -> Result<()> {
        self.start_node(id).await
    }
}
