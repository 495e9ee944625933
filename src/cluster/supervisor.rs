//! Supervision, as the Elixir seed asks: a node that fails (a panic caught in its thread, or a
//! storage fault) is restarted from its data directory, after a backoff, under an OTP-style
//! restart intensity: at most `max_restarts` restarts of one node within `period`. Past that
//! it stays failed and the cluster's status says why, until a person restarts it.
//!
//! A node crashed or stopped on purpose is never restarted: taking a node down removes it from
//! the cluster's registry first, and the supervisor acts only on the instance that failed
//! (each start of a node is a new generation). Every restart, failed restart and refusal is an
//! event in `kvsim events` and a line in the `supervision` section of `GET /status`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use super::{Cluster, ClusterRef};
use crate::config::Supervision;
use crate::events::NodeEvent;
use crate::raft::NodeId;
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

    /// Watches a newly started node instance and reports it to the supervisor if it fails.
    pub fn watch(
        &self,
        id: NodeId,
        generation: u64,
        mut status: tokio::sync::watch::Receiver<crate::raft::driver::Published>,
    ) {
        if !self.policy.auto_restart {
            return;
        }
        let tx = self.failures.clone();
        tokio::spawn(async move {
            loop {
                if matches!(status.borrow_and_update().health, Health::Failed(_)) {
                    let _ = tx.send(Failure { id, generation });
                    return;
                }
                // The node's thread ended (its sender dropped) without failing: nothing to do.
                if status.changed().await.is_err() {
                    return;
                }
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
    fn admit(&self, id: NodeId, why: &str) -> std::result::Result<std::time::Duration, String> {
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
    fn count_restart(&self, id: NodeId) -> usize {
        let mut records = self.records();
        let r = records.entry(id).or_default();
        r.recent.push_back(Instant::now());
        r.shown.restarts += 1;
        r.recent.len()
    }
}

/// The supervisor's task: receives failures for as long as the cluster lives and handles each
/// on a task of its own, so one node's backoff never delays another's restart.
pub(super) async fn supervise(cluster: ClusterRef, mut failures: mpsc::UnboundedReceiver<Failure>) {
    while let Some(failure) = failures.recv().await {
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        tokio::spawn(async move { cluster.restart_failed(failure).await });
    }
}

impl Cluster {
    /// Restarts the failed instance `failure`, retrying a start that fails, within the
    /// restart intensity.
    async fn restart_failed(&self, failure: Failure) {
        let id = failure.id;
        let Some(mut why) = self.failed_instance(failure) else {
            return;
        };
        let sup = &self.inner.supervisor;
        loop {
            if self.is_closing() {
                return;
            }
            let backoff = match sup.admit(id, &why) {
                Ok(b) => b,
                Err(refusal) => {
                    tracing::warn!(node = id, "{refusal}");
                    self.record(id, NodeEvent::new("supervisor_gave_up", refusal));
                    return;
                }
            };
            self.record(
                id,
                NodeEvent::new(
                    "node_restarting",
                    format!(
                        "the supervisor restarts node {id} in {} ms after: {why}",
                        backoff.as_millis()
                    ),
                ),
            );
            // Its Raft thread has ended; close its port too, as a crashed process's would be.
            self.take_down(id, true).await;
            tokio::time::sleep(backoff).await;
            // Shutting down, or a person restarted it meanwhile.
            if self.is_closing() || self.nodes().contains_key(&id) {
                return;
            }
            let n = sup.count_restart(id);
            match self.start_node(id).await {
                Ok(()) => {
                    if let Ok(mut f) = self.inner.start_failures.lock() {
                        f.remove(&id);
                    }
                    tracing::info!(node = id, "the supervisor restarted the node");
                    self.record(
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
                    if let Ok(mut f) = self.inner.start_failures.lock() {
                        f.insert(id, why.clone());
                    }
                    self.record(
                        id,
                        NodeEvent::new("node_failed", format!("node {id} {why}")),
                    );
                }
            }
        }
    }

    /// Why `failure`'s instance failed, if it is still the node's running instance.
    fn failed_instance(&self, failure: Failure) -> Option<String> {
        let nodes = self.nodes();
        let node = nodes.get(&failure.id)?;
        if node.generation != failure.generation {
            return None;
        }
        node.handle.failure()
    }
}
