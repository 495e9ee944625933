//! The real-time shell around a [`RaftNode`]: one OS thread per node.
//!
//! The thread waits on its inbox until the next tick is due, drains everything that arrived
//! (so concurrent client writes share one Ready and one fsync), ticks if due, runs the Ready
//! loop, hands outgoing messages to the transport and publishes a status snapshot. A dedicated
//! thread rather than an async task, because the Ready loop blocks on fsync and must not stall
//! the HTTP runtime's workers.
//!
//! A panic or storage fault in the loop is caught here: the node's waiting clients are failed,
//! the failure is logged and published in the node's status, and the thread ends. Other nodes
//! and the process carry on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;
use serde::Serialize;
use tokio::sync::watch;

use crate::events::{EventLog, NodeEvent};
use crate::raft::node::{RaftNode, RaftStatus};
use crate::raft::proposals::{ReadResponder, Responder};
use crate::raft::transport::{Report, Transport};
use crate::raft::{NodeId, StateMachine};

/// Most inbox events handled before the Ready loop runs, so ticks stay on time under load.
const MAX_EVENTS_PER_PASS: usize = 8192;

/// Longest a follower holds committed entries back from applying, to apply them in one batch
/// (see [`RaftNode::flush_applies`]): its eventually consistent reads lag this much more, at
/// most, and its apply costs one redb commit per batch instead of one per Ready.
const APPLY_DELAY: Duration = Duration::from_millis(5);

/// Passes slower than this are logged at debug level: on a healthy disk they are checkpoints,
/// and the Ready passes on other nodes whose fsyncs queued behind a checkpoint's writes.
const SLOW_PASS: Duration = Duration::from_millis(10);

/// Something for a node's thread to do.
pub enum Event<O> {
    /// Messages from a peer.
    Raft(Vec<Message>),
    /// A client write.
    Propose {
        /// Encoded command.
        command: Vec<u8>,
        /// Gets the apply output.
        responder: Responder<O>,
    },
    /// A linearizable read.
    Read(ReadResponder),
    /// Answer once this node has applied the index ([`RaftNode::catch_up`]).
    CatchUp(u64, tokio::sync::oneshot::Sender<()>),
    /// A delivery report from the transport.
    Transport(Report),
    /// Hand leadership to another node.
    TransferLeader(NodeId),
    /// Fault injection: panic inside the loop, as a bug in this node would. The simulator's
    /// fault controls and the isolation tests use it.
    InjectPanic(String),
    /// Stop the thread.
    Shutdown,
}

/// A node's health as shown in its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "error", rename_all = "snake_case")]
pub enum Health {
    /// The loop is running.
    Running,
    /// Stopped on request.
    Stopped,
    /// Stopped by a fault; the message says what happened.
    Failed(String),
}

/// What a node's thread publishes after every pass.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    /// Running, stopped or failed.
    pub health: Health,
    /// Raft state; `None` until the first pass.
    pub raft: Option<RaftStatus>,
}

/// The message a panic carried, for logs and status.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Starts the node's thread. `on_fault` runs once if the node stops on a fault (a storage
/// error or a panic), before its health says so: the cluster crashes the node's disk there,
/// so that nothing the stopped node left in memory (redb's last commit without fsync, which
/// closing the database would make durable) reaches the disk after files it depends on that
/// were never fsynced. The node then restarts from its files as after `kill -9`.
///
/// # Errors
/// If the OS refuses to start a thread.
pub fn spawn<M: StateMachine>(
    node: RaftNode<M>,
    inbox: Receiver<Event<M::Output>>,
    transport: Transport,
    status: watch::Sender<Published>,
    events: EventLog,
    tick: Duration,
    on_fault: Box<dyn FnOnce() + Send>,
) -> std::io::Result<JoinHandle<()>> {
    let id = node.id();
    let lease = node.shared_lease();
    std::thread::Builder::new()
        .name(format!("raft-node-{id}"))
        .spawn(move || {
            let status_on_panic = status.clone();
            let events_on_panic = events.clone();
            let outcome = catch_unwind(AssertUnwindSafe(move || {
                run(node, inbox, transport, &status, &events, tick)
            }));
            let health = match outcome {
                Ok(h) => h,
                Err(panic) => {
                    // Its client handlers must stop answering from its lease at once too.
                    lease.set(None);
                    let text = panic_text(panic.as_ref());
                    tracing::error!(node = id, "node panicked and stopped: {text}");
                    Health::Failed(format!("panic: {text}"))
                }
            };
            if let Health::Failed(why) = &health {
                on_fault();
                events_on_panic.record(NodeEvent::new(
                    "node_failed",
                    format!("node {id} stopped after a fault: {why}"),
                ));
            }
            status_on_panic.send_modify(|p| p.health = health);
        })
}

/// Runs `work`, logging `what` at debug level when it takes longer than [`SLOW_PASS`].
fn timed<T>(node: NodeId, what: &'static str, work: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = work();
    let took = start.elapsed();
    if took > SLOW_PASS {
        tracing::debug!(node, ms = took.as_millis() as u64, "{what}");
    }
    out
}

fn run<M: StateMachine>(
    mut node: RaftNode<M>,
    inbox: Receiver<Event<M::Output>>,
    transport: Transport,
    status: &watch::Sender<Published>,
    events: &EventLog,
    tick: Duration,
) -> Health {
    let mut next_tick = Instant::now() + tick;
    // When the oldest entry a follower holds back from applying is due to be applied.
    let mut apply_due: Option<Instant> = None;
    let health = loop {
        let wake = apply_due.map_or(next_tick, |due| due.min(next_tick));
        let wait = wake.saturating_duration_since(Instant::now());
        let first = match inbox.recv_timeout(wait) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break Health::Stopped,
        };
        let mut stop = false;
        for ev in first
            .into_iter()
            .chain(inbox.try_iter().take(MAX_EVENTS_PER_PASS))
        {
            match ev {
                Event::Raft(msgs) => msgs.into_iter().for_each(|m| node.step(m)),
                Event::Propose { command, responder } => node.propose(command, responder),
                Event::Read(responder) => node.read_index(responder),
                Event::CatchUp(index, done) => node.catch_up(index, done),
                Event::Transport(Report::Unreachable(peer)) => node.report_unreachable(peer),
                Event::Transport(Report::Snapshot(peer, ok)) => {
                    let (id, outcome) = (node.id(), if ok { "sent" } else { "failed to send" });
                    events.record(NodeEvent::new(
                        "snapshot_sent",
                        format!("node {id} {outcome} a snapshot to node {peer}"),
                    ));
                    node.report_snapshot(peer, ok);
                }
                Event::TransferLeader(to) => node.transfer_leader(to),
                Event::InjectPanic(why) => panic!("injected fault: {why}"),
                Event::Shutdown => stop = true,
            }
        }
        if stop {
            break Health::Stopped;
        }
        let now = Instant::now();
        if now >= next_tick {
            node.tick();
            // Skip ticks missed while blocked rather than bursting them (a burst would fire
            // elections at once after a long fsync).
            next_tick = now + tick;
        }
        let r0 = timed(node.id(), "slow Ready pass", || {
            node.handle_ready_with(&mut |msgs| transport.send(msgs))
        });
        let r0 = r0.and_then(|()| {
            if !node.has_deferred() {
                apply_due = None;
                return Ok(());
            }
            let due = *apply_due.get_or_insert(now + APPLY_DELAY);
            if Instant::now() < due {
                return Ok(());
            }
            apply_due = None;
            node.flush_applies()
        });
        if let Err(e) = r0 {
            tracing::error!(node = node.id(), "storage fault, node stopped: {e}");
            break Health::Failed(format!("storage fault: {e}"));
        }
        transport.send(node.take_messages());
        for e in node.take_events() {
            events.record(e);
        }
        // The lease goes to the client handlers with the commit index of this pass, before any
        // write of the pass is answered (see `SharedLease`).
        node.share_lease();
        let raft = node.status();
        // Updated in place without waking anyone: the only waiter (the supervisor) waits for
        // health changes, and readers of the status borrow the latest value. Waking it at
        // every pass cost a cross-thread wake-up per Ready.
        status.send_if_modified(|p| {
            p.raft = Some(raft);
            false
        });
        // After publishing: an acknowledged write is already covered by the status.
        node.send_replies();
        let r1 = timed(node.id(), "slow checkpoint or compaction", || {
            node.housekeeping()
        });
        for e in node.take_events() {
            events.record(e);
        }
        if let Err(e) = r1 {
            tracing::error!(node = node.id(), "storage fault, node stopped: {e}");
            break Health::Failed(format!("storage fault: {e}"));
        }
    };
    node.fail_all("the node stopped before answering; retry the request");
    if matches!(health, Health::Stopped)
        && let Err(e) = node.close()
    {
        // A crashed node's disk refuses the last checkpoint, as it should.
        tracing::debug!(node = node.id(), "no last checkpoint at stop: {e}");
    }
    health
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use tokio::sync::{oneshot, watch};

    use super::{Event, Health, Published, spawn};
    use crate::disk::{self, MemoryDisk};
    use crate::events::EventLog;
    use crate::raft::node::{NodeOptions, RaftNode, raft_logger};
    use crate::raft::transport::{MessageCounters, Transport, TransportContext};
    use crate::store::Store;

    /// Runs a one-node cluster's driver whose disk fails at `fail`; returns its health once
    /// the thread ends and whether `on_fault` ran.
    fn run_until_stopped(fail: bool) -> (Health, bool) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("dir");
        let storage = disk::open_memory(&MemoryDisk::default()).expect("storage");
        let db = Arc::new(storage.db);
        let store = Store::open(db.clone(), storage.items).expect("store");
        let opts = NodeOptions::for_tests(1, vec![1], 10, dir.path());
        let mut node = RaftNode::new(opts, db, storage.log, store, &raft_logger(1)).expect("node");
        node.campaign();
        let snapshots = node.snapshot_slot();
        let transport = Transport::start(
            runtime.handle(),
            &BTreeMap::new(),
            TransportContext {
                from: 1,
                client: reqwest::Client::new(),
                report: Arc::new(|_| {}),
                snapshots,
                exporter: Arc::new(|_, _, _| Ok(())),
                faults: Default::default(),
                cluster_key: Arc::from("k"),
                local: None,
                counters: MessageCounters::default(),
            },
        );
        let (inbox, rx) = mpsc::channel();
        let (status, mut watch_rx) = watch::channel(Published {
            health: Health::Running,
            raft: None,
        });
        let faulted = Arc::new(AtomicBool::new(false));
        let flag = faulted.clone();
        let thread = spawn(
            node,
            rx,
            transport,
            status,
            EventLog::new(1),
            Duration::from_millis(5),
            Box::new(move || flag.store(true, Ordering::SeqCst)),
        )
        .expect("thread");
        // A leader first (one voter: its own vote elects it).
        let deadline = Instant::now() + Duration::from_secs(10);
        while watch_rx
            .borrow_and_update()
            .raft
            .as_ref()
            .is_none_or(|r| r.role != "leader")
        {
            assert!(Instant::now() < deadline, "no leader");
            std::thread::sleep(Duration::from_millis(1));
        }
        if fail {
            storage.switch.fail();
            let (responder, _answer) = oneshot::channel();
            inbox
                .send(Event::Propose {
                    command: b"anything: the log write fails first".to_vec(),
                    responder,
                })
                .expect("send");
        } else {
            inbox.send(Event::Shutdown).expect("send");
        }
        thread.join().expect("join");
        let health = watch_rx.borrow().health.clone();
        (health, faulted.load(Ordering::SeqCst))
    }

    #[test]
    fn a_node_stopped_by_a_fault_runs_on_fault_and_a_clean_stop_does_not() {
        let (health, faulted) = run_until_stopped(true);
        assert!(
            matches!(&health, Health::Failed(why) if why.contains("storage fault")),
            "{health:?}"
        );
        assert!(faulted, "on_fault did not run after a storage fault");
        let (health, faulted) = run_until_stopped(false);
        assert!(matches!(health, Health::Stopped), "{health:?}");
        assert!(!faulted, "on_fault ran after a clean stop");
    }
}
