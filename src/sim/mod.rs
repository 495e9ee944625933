//! Deterministic simulation: the three Raft nodes, the real state machine and the real redb
//! storage, in one thread, on a simulated clock and network, all driven by one seed.
//!
//! Each step of simulated time the network delivers the messages that are due, every live node
//! ticks and runs its Ready loop, clients start operations and collect answers, and faults come
//! and go: partitions of any shape (any set of one-way link cuts: splits, bridges, one-way
//! links, total isolation), message loss, duplication, reordering and delay, snapshot streams
//! that break part-way, crashes and restarts, leader transfers, and leader stalls: the leader is
//! cut off, keeps taking writes it cannot replicate, then stalls (a process pause) with client
//! requests piling up while the others elect a leader that writes at the same log indexes, and
//! finally wakes on a healed network and learns it lost those indexes (see `Stall`). Clients
//! often read a key back right after their write to it was acknowledged, and query the table's
//! global indexes; meanwhile a second global index is added to the live table and later
//! removed, each in several batches, as UpdateTable does. Time to live is on: some puts write
//! values with an expiry in the past (`e…`), and `Expire` entries, as the leader's sweep
//! proposes them, delete an item only if it still holds such a value when they apply; the
//! checker holds each to that like any write. Storage is
//! [`disk::SimDisk`], which loses every write not fsynced when a node crashes, so a missing
//! fsync shows up as a lost write.
//!
//! Checked throughout: at most one leader per term; nodes that applied the same index hold
//! identical state; each active index holds exactly what the items imply and nothing is left
//! of a removed one; every committed index has one term on every node that holds it (logs
//! match); a node restarted after a crash still holds every entry and the term it had
//! persisted, so no acknowledgement it gave was lost. Checked at the end, after healing
//! everything: every key's history of puts, deletes and consistent reads is linearizable
//! ([`history`]), which also proves that every acknowledged write survived every crash and that
//! no refused write took effect; eventual reads only ever returned values that some client
//! wrote and that were not refused (eventual scans likewise, item by item). An error or panic
//! anywhere (raft-rs asserts its invariants with panics) is a violation of that seed.
//!
//! [`SimReport`] counts what a run exercised, so a test can insist the hard cases came up:
//! crashes, writes whose index another leader's entry took (each must be answered "not
//! applied", and the checker holds the run to it), consistent reads in flight while a new
//! leader was elected (each must be refused or linearizable).
//!
//! The same seed replays the same run: raft-rs's election timeouts are pinned per node (from
//! the seed), every collection iterates in a fixed order, and nothing reads the real clock.
//! Adding a client operation means adding a branch in `issue` and, for an operation the
//! checker should see, an [`OpKind`] and its arm in `collect`.

pub mod disk;
pub mod dynamo;
pub mod history;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use raft::eraftpb::{Message, MessageType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::Builder;
use tokio::sync::oneshot;

use crate::disk::{BackgroundSync, CrashableFile};
use crate::faults::NetworkFaults;
use crate::model::index::{IndexKind, IndexSpec, IndexState, Projection};
use crate::model::key::{KeyAttribute, KeySchema, KeyType};
use crate::model::table::{Billing, TableSpec};
use crate::model::{AttributeValue, Item};
use crate::raft::lease::{Clock, LeaseOptions};
use crate::raft::node::{NodeOptions, PlantedBug, RaftNode, incoming_snapshot_path, raft_logger};
use crate::raft::wal::Slot;
use crate::raft::{NodeId, StateMachine};
use crate::sim::disk::SimDisk;
use crate::sim::history::{History, Op, OpKind};
use crate::store::command::IndexChange;
use crate::store::{Command, Outcome, Store};
use crate::{Error, Result};

const NODES: [NodeId; 3] = [1, 2, 3];
const TABLE: &str = "sim";
const KEYS: u64 = 6;
/// Keys holding string sets, changed by UpdateItem ADD.
const SET_KEYS: u64 = 3;
/// Keys written by transactions.
const TXN_KEYS: u64 = 5;
/// The share of transactions issued as PartiQL.
const PARTIQL_TRANSACTIONS: f64 = 0.3;
/// Steps allowed for the cluster to settle after the workload.
const SETTLE_STEPS: u64 = 3000;

/// What one simulation run does.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// The seed everything derives from.
    pub seed: u64,
    /// Client operations to issue.
    pub ops: usize,
    /// Inject faults (off: a fault-free run, for comparison).
    pub faults: bool,
    /// A deliberate bug planted in every node, for the tests that prove the simulation catches
    /// such bugs. `None` in every real run.
    pub planted_bug: Option<PlantedBug>,
    /// Leader leases on (as `kvsim server` by default), measured on the simulated clock: a step
    /// is one tick.
    pub lease_reads: bool,
}

/// What one run did and found.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Client operations issued.
    pub ops: usize,
    /// Client operations that completed with a known outcome.
    pub completed: usize,
    /// Writes acknowledged to their client.
    pub acked_writes: usize,
    /// Consistent reads answered.
    pub consistent_reads: usize,
    /// Faults injected (only those that changed something).
    pub faults: usize,
    /// Node crashes among them.
    pub crashes: usize,
    /// Keys whose history was too large for the linearizability checker to decide.
    pub unchecked: usize,
    /// Times a leader was cut off and stalled (a process pause) while a new leader took over.
    pub stalls: usize,
    /// Writes whose leader learnt that another leader's entry took their log index, so their
    /// clients were told "not applied" (and the checker holds them to it).
    pub overwritten_proposals: u64,
    /// Consistent reads a leader answered from its lease, without a ReadIndex round.
    pub lease_reads: u64,
    /// Consistent reads sent to a node that believed it led, answered or refused only after a
    /// leader of a later term had been elected: refused, or answered and checked.
    pub reads_across_leader_change: usize,
    /// Those among them that were answered (and so are in the checked history).
    pub reads_across_leader_change_answered: usize,
    /// Compare-and-set writes whose condition held.
    pub cas_succeeded: usize,
    /// Compare-and-set writes refused because their condition was false (observations the
    /// checker holds to the register's value).
    pub cas_failed: usize,
    /// Transactions issued (each writes two or three keys, all or nothing).
    pub transactions: usize,
    /// Of those, the ones written in PartiQL (ExecuteTransaction's compilation).
    pub partiql_transactions: usize,
    /// Eventually consistent Queries of a global index that returned items (each item held
    /// to the rule for eventual reads, and to the value queried).
    pub index_reads: usize,
    /// Global indexes added to or removed from the live table (as UpdateTable does).
    pub index_changes: usize,
    /// Backfill and index-removal batches applied and acknowledged.
    pub index_batches: usize,
    /// Time-to-live expiries acknowledged as having deleted their item (each checked by the
    /// linearizability checker: only an item holding an expiring value may go).
    pub expired: usize,
    /// A hash of everything the run observed (histories, final state), to compare replays.
    pub fingerprint: u64,
    /// Simulated steps (ticks).
    pub steps: u64,
    /// Invariant violations; empty means the run passed.
    pub violations: Vec<String>,
}

struct SimNode {
    raft: RaftNode<Store>,
    store: Store,
    /// Runs the database's checkpoint fsyncs when the simulation says (see `tick_all`), so a
    /// crash can land while one is pending.
    background: BackgroundSync,
}

struct InFlight {
    at: u64,
    seq: u64,
    msg: Message,
}

enum Waiting {
    /// A write of one or more keys (a transaction writes several), each with its effect.
    Write {
        ops: Vec<(String, OpKind)>,
        rx: oneshot::Receiver<Result<Result<Outcome>>>,
    },
    Read {
        key: String,
        node: NodeId,
        /// The term of the node asked, if it believed it led when asked.
        leader_term: Option<u64>,
        rx: oneshot::Receiver<Result<()>>,
    },
}

/// A client request on its way to a node.
enum Request {
    Write {
        ops: Vec<(String, OpKind)>,
        cmd: Box<Command>,
    },
    Read {
        key: String,
    },
}

/// A leader cut off from the other nodes and then stalled, as a process is by a long GC pause
/// or a stopped VM, while the others elect a new leader that writes at the same log indexes.
///
/// Only started when the other two nodes are up and can reach each other, so they can take
/// over. While only cut off, the leader still accepts writes it cannot replicate; once stalled
/// it neither ticks nor runs its Ready loop, so its pending writes do not time out (deadlines
/// are in ticks) and the client requests sent to it wait, as in its socket, until it wakes. It
/// wakes up to `STALL_OVERSLEEP_STEPS` after a leader of a later term has committed past where
/// its own log and held writes reach (or after `STALL_MAX_STEPS`), on a healed network: every
/// network fault ends, so it hears of the new term within its grace. Still believing it leads,
/// it serves the held requests first, appending the writes at indexes the new leader already
/// filled; then it learns from the new leader's log that those entries were overwritten. Every
/// such write must be answered "not applied", every such read refused or linearizable.
struct Stall {
    node: NodeId,
    /// The step it stops running; until then it is only cut off.
    pause_at: u64,
    /// The step it wakes at the latest.
    end_by: u64,
    /// The step it wakes at, once a new leader has taken over.
    wake_at: Option<u64>,
    /// Client requests sent to it while stalled, with their call times, oldest first.
    backlog: Vec<(u64, Request)>,
}

/// Simulated microseconds per step (one tick), for leader leases.
const SIM_TICK_US: u64 = 100_000;
/// Longest a stall lasts (from the pause) when no new leader commits far enough.
const STALL_MAX_STEPS: u64 = 60;
/// Most steps a stalled leader goes on sleeping after a new leader took over, while clients
/// keep sending it requests.
const STALL_OVERSLEEP_STEPS: u64 = 10;
/// Chance per step (with faults on) that the leader is cut off and stalled.
const STALL_RATE: f64 = 0.02;
/// Chance that a snapshot stream fails part-way, with faults on.
const SNAPSHOT_FAIL_RATE: f64 = 0.5;
/// The global index the table is created with (on the register value).
const INDEX: &str = "byValue";
/// The global index the run adds to the live table (a quarter of the way through its
/// operations) and removes again (two thirds of the way), as UpdateTable does, so backfills and
/// removals run among the writes, faults and snapshots.
const ADDED_INDEX: &str = "byValueKeys";
/// Rows per backfill or index-removal entry in the simulation, so its small table takes
/// several of each.
const SIM_INDEX_BATCH: usize = 3;

/// The clock the simulation's time-to-live expiries are judged by (epoch seconds): puts of an
/// expiring value (`e…`) carry an expiry just before it, and every `Expire` names it.
const TTL_NOW: u64 = 1_700_000_000;
/// The attribute time to live is enabled on.
const TTL_ATTRIBUTE: &str = "exp";

/// Where the run stands with [`ADDED_INDEX`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum IndexPhase {
    Before,
    Added,
    Removed,
}

/// Chance that a client reads a key back right after its write to it was acknowledged.
const READ_AFTER_WRITE: f64 = 0.5;

struct Pending {
    call: u64,
    waiting: Waiting,
}

struct Sim {
    rng: StdRng,
    step: u64,
    /// Steps between the landings of checkpoints' background fsyncs: 10, 30 or 60 by seed, so
    /// some runs have checkpoints in flight for long stretches, during which a node that
    /// counts one durable too early gets its log compacted past what a crash keeps.
    fsync_every: u64,
    /// The simulated clock leases read, in microseconds: `step` ticks of [`SIM_TICK_US`].
    time: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
    node_opts: BTreeMap<NodeId, NodeOptions>,
    /// Each node's disk: its database, then its two log files.
    disks: BTreeMap<NodeId, [SimDisk; 5]>,
    nodes: BTreeMap<NodeId, Option<SimNode>>,
    net: Vec<InFlight>,
    net_seq: u64,
    faults: NetworkFaults,
    /// One-way link cuts `(from, to)`, on top of `faults` (which only knows symmetric splits).
    cut: BTreeSet<(NodeId, NodeId)>,
    dup_rate: f64,
    /// Chance that a snapshot stream fails part-way.
    snapshot_fail_rate: f64,
    /// The order of client events: each call and each return takes the next number.
    clock: u64,
    pending: Vec<Pending>,
    history: History,
    /// Every value any client tried to put, per key (for eventual reads).
    attempted: BTreeMap<String, BTreeSet<String>>,
    refused: BTreeSet<String>,
    eventual_reads: Vec<(String, Option<String>)>,
    term_leaders: BTreeMap<u64, NodeId>,
    digests: BTreeMap<u64, (NodeId, u64)>,
    last_applied: BTreeMap<NodeId, u64>,
    /// The term of every committed index any node has shown, to check logs match.
    committed_terms: BTreeMap<u64, (NodeId, u64)>,
    /// Highest committed index already compared, per node.
    terms_checked: BTreeMap<NodeId, u64>,
    /// What a crashed node had persisted: last log index, its term, and the node's term.
    persisted_at_crash: BTreeMap<NodeId, (u64, u64, u64)>,
    stall: Option<Stall>,
    /// Each transaction's marker and the keys it writes, for the all-or-nothing check.
    transactions: BTreeMap<String, Vec<String>>,
    /// How far the run has come in adding and then removing [`ADDED_INDEX`].
    added_index: IndexPhase,
    /// The index change or batch proposed last, while it is in flight.
    index_proposal: Option<oneshot::Receiver<Result<Result<Outcome>>>>,
    violations: Vec<String>,
    report: SimReport,
}

fn key_item(key: &str) -> Item {
    Item::from([("k".to_string(), AttributeValue::S(key.to_string()))])
}

/// Every `(key, value)` `range` of the table reads from `store` (nothing before the table
/// exists).
fn read_registers(
    store: &Store,
    range: &crate::store::read::Range<'_>,
) -> Result<Vec<(String, String)>> {
    let page = match store.read_range(TABLE, range) {
        Ok(p) => p,
        Err(Error::ResourceNotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(page
        .items
        .iter()
        .filter_map(|item| match (item.get("k"), register(item)) {
            (Some(AttributeValue::S(k)), Some(v)) => Some((k.clone(), v)),
            _ => None,
        })
        .collect())
}

/// The register an item holds: its `v` string, or its `s` set as members joined by commas
/// (as the history checker keeps sets).
fn register(item: &Item) -> Option<String> {
    match (item.get("v"), item.get("s")) {
        (Some(AttributeValue::S(v)), _) => Some(v.clone()),
        (_, Some(AttributeValue::Ss(set))) => {
            Some(set.iter().cloned().collect::<Vec<_>>().join(","))
        }
        _ => None,
    }
}

/// A conditional put of `value` on `key`: only if it holds `expected` (absent: `None`).
fn compare_and_set(key: &str, expected: Option<&str>, value: &str) -> Command {
    use crate::model::expr::{Comparator, Condition, Function, Operand, Path, PathElement};
    let path = |name: &str| Path {
        elements: vec![PathElement::Attribute(name.to_string())],
    };
    let condition = match expected {
        None => Condition::Function(Function::AttributeNotExists(path("k"))),
        Some(v) => Condition::Compare {
            op: Comparator::Eq,
            left: Operand::Path(path("v")),
            right: Operand::Value(AttributeValue::S(v.to_string())),
        },
    };
    let mut item = key_item(key);
    item.insert("v".into(), AttributeValue::S(value.to_string()));
    Command::Write(crate::store::Conditional {
        write: crate::store::ItemWrite::Put {
            table: TABLE.into(),
            item,
        },
        condition: Some(condition),
        old_on_failure: false,
    })
}

/// UpdateItem `ADD s :member` on `key`.
fn add_member(key: &str, member: &str) -> Command {
    use crate::model::expr::{Path, PathElement, Update};
    let path = Path {
        elements: vec![PathElement::Attribute("s".into())],
    };
    let value = AttributeValue::Ss(BTreeSet::from([member.to_string()]));
    Command::Write(crate::store::Conditional {
        write: crate::store::ItemWrite::Update {
            table: TABLE.into(),
            key: key_item(key),
            update: Update {
                add: vec![(path, value)],
                ..Update::default()
            },
        },
        condition: None,
        old_on_failure: false,
    })
}

/// A transaction putting `marker` on every one of `keys`.
fn transaction(keys: &[String], marker: &str, at: u64) -> Command {
    Command::Transact(crate::store::Transaction {
        actions: keys
            .iter()
            .map(|k| {
                let mut item = key_item(k);
                item.insert("v".into(), AttributeValue::S(marker.to_string()));
                crate::store::Conditional {
                    write: crate::store::ItemWrite::Put {
                        table: TABLE.into(),
                        item,
                    },
                    condition: None,
                    old_on_failure: false,
                }
            })
            .collect(),
        token: None,
        at_ms: at,
    })
}

/// The same kind of transaction written in PartiQL, as ExecuteTransaction runs it: one
/// `INSERT` of `marker` per key (new keys, so the insert's "key is free" condition holds),
/// parsed and compiled by [`crate::model::partiql`] into one all-or-nothing entry.
fn partiql_transaction(keys: &[String], marker: &str, at: u64) -> Result<Command> {
    use crate::model::partiql;
    let schema = crate::model::KeySchema {
        partition: crate::model::KeyAttribute {
            name: "k".into(),
            key_type: crate::model::KeyType::S,
        },
        sort: None,
    };
    let statement = format!("INSERT INTO \"{TABLE}\" VALUE {{'k': ?, 'v': ?}}");
    let mut actions = Vec::with_capacity(keys.len());
    for key in keys {
        let params = [
            AttributeValue::S(key.clone()),
            AttributeValue::S(marker.to_string()),
        ];
        let write = partiql::compile_write(&schema, partiql::parse(&statement, &params)?)?;
        let item = write
            .item
            .ok_or_else(|| Error::internal("an INSERT compiled without its item"))?;
        actions.push(crate::store::Conditional {
            write: crate::store::ItemWrite::Put {
                table: write.table,
                item,
            },
            condition: Some(write.condition),
            old_on_failure: false,
        });
    }
    Ok(Command::Transact(crate::store::Transaction {
        actions,
        token: None,
        at_ms: at,
    }))
}

impl Sim {
    fn new(opts: &SimOptions) -> Result<Sim> {
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let dir = tempfile::tempdir().map_err(|e| Error::internal(format!("sim temp dir: {e}")))?;
        // Distinct pinned election timeouts, chosen by the seed.
        let mut timeouts: Vec<usize> = (10..20).collect();
        let time = Arc::new(AtomicU64::new(0));
        let mut node_opts = BTreeMap::new();
        for id in NODES {
            let t = timeouts.remove(rng.gen_range(0..timeouts.len()));
            node_opts.insert(
                id,
                NodeOptions {
                    id,
                    voters: NODES.to_vec(),
                    election_ticks: 10,
                    heartbeat_ticks: 2,
                    proposal_timeout_ticks: 60,
                    read_timeout_ticks: 40,
                    // A short log, so a follower that was away a little catches up by
                    // snapshot: that path is where the simulation found its first bug.
                    compact_every: 20,
                    log_retain: 3,
                    snapshot_dir: dir.path().join(format!("node{id}")),
                    fixed_election_ticks: Some(t),
                    planted_bug: opts.planted_bug,
                    lease: opts.lease_reads.then(|| {
                        let time = time.clone();
                        LeaseOptions {
                            clock: Clock::new(move || time.load(Ordering::Relaxed)),
                            tick_us: SIM_TICK_US,
                            fresh_start: false,
                        }
                    }),
                    fsync: true,
                },
            );
        }
        let mut sim = Sim {
            rng,
            step: 0,
            fsync_every: [10, 30, 60][(opts.seed % 3) as usize],
            time,
            _dir: dir,
            node_opts,
            disks: NODES.iter().map(|id| (*id, Default::default())).collect(),
            nodes: BTreeMap::new(),
            net: Vec::new(),
            net_seq: 0,
            faults: NetworkFaults::default(),
            cut: BTreeSet::new(),
            dup_rate: 0.0,
            snapshot_fail_rate: if opts.faults { SNAPSHOT_FAIL_RATE } else { 0.0 },
            clock: 0,
            pending: Vec::new(),
            history: History::new(),
            attempted: BTreeMap::new(),
            refused: BTreeSet::new(),
            eventual_reads: Vec::new(),
            term_leaders: BTreeMap::new(),
            digests: BTreeMap::new(),
            last_applied: BTreeMap::new(),
            committed_terms: BTreeMap::new(),
            terms_checked: BTreeMap::new(),
            persisted_at_crash: BTreeMap::new(),
            stall: None,
            transactions: BTreeMap::new(),
            added_index: IndexPhase::Before,
            index_proposal: None,
            violations: Vec::new(),
            report: SimReport {
                seed: opts.seed,
                ..SimReport::default()
            },
        };
        for id in NODES {
            sim.start_node(id)?;
        }
        Ok(sim)
    }

    fn start_node(&mut self, id: NodeId) -> Result<()> {
        let [disk, log0, log1, items0, items1] = self.disks.get(&id).cloned().unwrap_or_default();
        let background = BackgroundSync::manual();
        let db = Arc::new(
            Builder::new().create_with_backend(CrashableFile::with_background(
                Arc::new(disk),
                background.clone(),
            ))?,
        );
        let log: [Slot; 2] = [Box::new(log0), Box::new(log1)];
        // Rotating at a few kilobytes, so crashes land around rotations too.
        let store = Store::open(db.clone(), [Box::new(items0), Box::new(items1)])?
            .with_item_log_slack(4096);
        let opts = self
            .node_opts
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::internal("sim: unknown node"))?;
        let raft = RaftNode::new(opts, db, log, store.clone(), &raft_logger(id))?
            .with_background_sync(Some(background.clone()));
        if let Some((last, last_term, term)) = self.persisted_at_crash.remove(&id) {
            let st = raft.status();
            let kept = st.last_log_index >= last
                && (last < st.first_log_index || raft.log_term(last) == Some(last_term));
            if !kept || st.term < term {
                self.violations.push(format!(
                    "node {id} lost persisted state in a crash: it had log up to {last} (term \
                     {last_term}) in term {term}, and restarted with log up to {} in term {} \
                     (step {})",
                    st.last_log_index, st.term, self.step
                ));
            }
        }
        self.nodes.insert(
            id,
            Some(SimNode {
                raft,
                store,
                background,
            }),
        );
        Ok(())
    }

    /// The next position in the order of client events.
    fn stamp(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// True if messages from `from` cannot reach `to`.
    fn link_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.faults.link(from, to).cut
            || self.cut.contains(&(from, to))
            || self
                .stall
                .as_ref()
                .is_some_and(|s| s.node == from || s.node == to)
    }

    /// True if `id` is stalled (not merely cut off).
    fn paused(&self, id: NodeId) -> bool {
        self.stall
            .as_ref()
            .is_some_and(|s| s.node == id && self.step >= s.pause_at)
    }

    /// Live nodes that are not stalled: those that can answer a request now.
    fn running(&self) -> Vec<NodeId> {
        self.alive()
            .into_iter()
            .filter(|id| !self.paused(*id))
            .collect()
    }

    fn crash_node(&mut self, id: NodeId) {
        if self.stall.as_ref().is_some_and(|s| s.node == id) {
            // The requests it held die with it: writes of unknown outcome, reads unanswered.
            for (call, request) in self.stall.take().map(|s| s.backlog).unwrap_or_default() {
                if let Request::Write { ops, .. } = request {
                    for (key, kind) in ops {
                        self.history.entry(key).or_default().push(Op {
                            kind,
                            call,
                            ret: None,
                        });
                    }
                }
            }
        }
        if let Some(slot) = self.nodes.get_mut(&id)
            && let Some(node) = slot.take()
        {
            self.report.overwritten_proposals += node.raft.overwritten_proposals();
            self.report.lease_reads += node.raft.lease_reads();
            // Every Ready that appended entries or changed the term was fsynced, so all of this
            // must survive the crash.
            let st = node.raft.status();
            if let Some(last_term) = node.raft.log_term(st.last_log_index) {
                self.persisted_at_crash
                    .insert(id, (st.last_log_index, last_term, st.term));
            }
            self.terms_checked.remove(&id);
            self.report.crashes += 1;
            if let Some(disks) = self.disks.get(&id) {
                disks.iter().for_each(SimDisk::crash);
            }
            // Only after the crash: dropping the node closes its database, and the close runs a
            // checkpoint fsync still pending (`BackgroundSync::run_pending`), which must find the
            // disk already gone rather than make the checkpoint durable.
            drop(node);
            if let Some(disks) = self.disks.get(&id) {
                let recovered = disks.each_ref().map(SimDisk::recover);
                self.disks.insert(id, recovered);
            }
            self.last_applied.remove(&id);
        }
    }

    fn alive(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn node(&mut self, id: NodeId) -> Option<&mut SimNode> {
        self.nodes.get_mut(&id).and_then(Option::as_mut)
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(id, n)| n.as_ref().filter(|n| n.raft.is_leader()).map(|_| *id))
            .collect()
    }

    /// The latest term any node has led in so far (0 before the first election).
    fn newest_leader_term(&self) -> u64 {
        let recorded = self.term_leaders.keys().next_back().copied().unwrap_or(0);
        self.nodes
            .values()
            .flatten()
            .filter(|n| n.raft.is_leader())
            .map(|n| n.raft.status().term)
            .fold(recorded, u64::max)
    }

    /// Queues messages for delivery after a random latency (and maybe twice).
    fn send(&mut self, msgs: Vec<Message>) {
        for msg in msgs {
            let fate = self.faults.link(msg.from, msg.to);
            if self.link_cut(msg.from, msg.to) || self.rng.gen_bool(fate.drop_rate.clamp(0.0, 1.0))
            {
                self.lost(&msg);
                continue;
            }
            let copies = if self.dup_rate > 0.0 && self.rng.gen_bool(self.dup_rate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let jitter = if fate.jitter_ms > 0 {
                    self.rng.gen_range(0..=fate.jitter_ms)
                } else {
                    0
                };
                let at = self.step + 1 + self.rng.gen_range(0..3) + fate.delay_ms + jitter;
                self.net_seq += 1;
                self.net.push(InFlight {
                    at,
                    seq: self.net_seq,
                    msg: msg.clone(),
                });
            }
        }
    }

    /// A message the network lost. Raft must hear about a lost snapshot, as the real transport
    /// tells it: otherwise the leader waits for that snapshot forever and the follower never
    /// catches up (a bug this simulation found: seeds 1091, 1238, 1540).
    fn lost(&mut self, msg: &Message) {
        if msg.get_msg_type() == MessageType::MsgSnapshot
            && let Some(n) = self.node(msg.from)
        {
            n.raft.report_snapshot(msg.to, false);
        }
    }

    /// Delivers a snapshot message: stages the sender's snapshot data at the receiver first, as
    /// the real transport does, and tells the sender how it went.
    fn deliver_snapshot(&mut self, msg: Message) {
        let (from, to) = (msg.from, msg.to);
        let meta = msg.get_snapshot().get_metadata();
        let (index, term) = (meta.index, meta.term);
        let staged = (|| -> Result<()> {
            let sender = self
                .nodes
                .get(&from)
                .and_then(Option::as_ref)
                .ok_or_else(|| Error::internal("sender down"))?;
            let slot = sender.raft.snapshot_slot();
            let (txn, frozen) = {
                let guard = slot.lock().map_err(|_| Error::internal("slot poisoned"))?;
                match guard.as_ref() {
                    Some(s) if s.index == index && s.term == term => {
                        (s.txn.clone(), s.frozen.clone())
                    }
                    _ => return Err(Error::internal("snapshot no longer held")),
                }
            };
            let dir = self
                .node_opts
                .get(&to)
                .map(|o| o.snapshot_dir.clone())
                .unwrap_or_default();
            std::fs::create_dir_all(&dir)?;
            let path: PathBuf = incoming_snapshot_path(&dir, index, term);
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            <Store as StateMachine>::export(&txn, &frozen, &mut file)?;
            Ok(())
        })();
        // A snapshot is a long stream, not one small message: with faults on, some fail
        // part-way (a timeout, a reset connection) even on a healthy link.
        let broke = self.snapshot_fail_rate > 0.0 && self.rng.gen_bool(self.snapshot_fail_rate);
        let ok = !broke && staged.is_ok() && self.nodes.get(&to).is_some_and(Option::is_some);
        if ok && let Some(n) = self.node(to) {
            n.raft.step(msg);
        }
        if let Some(n) = self.node(from) {
            n.raft.report_snapshot(to, ok);
        }
    }

    fn deliver_due(&mut self) {
        let now = self.step;
        let mut due: Vec<InFlight> = Vec::new();
        let mut later = Vec::new();
        for m in std::mem::take(&mut self.net) {
            if m.at <= now {
                due.push(m)
            } else {
                later.push(m)
            }
        }
        self.net = later;
        due.sort_by_key(|m| (m.at, m.seq));
        for InFlight { msg, .. } in due {
            // A partition that started while the message was in flight still cuts it.
            if self.link_cut(msg.from, msg.to) {
                self.lost(&msg);
                continue;
            }
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                self.deliver_snapshot(msg);
            } else if let Some(n) = self.node(msg.to) {
                n.raft.step(msg);
            }
        }
    }

    /// One step of simulated time for every live node.
    fn tick_all(&mut self) -> Result<()> {
        for id in self.running() {
            // A follower applies what it held back every third step (the driver: after a few
            // milliseconds), so its state machine lags its log as a real one's does.
            let flush = (self.step + id).is_multiple_of(3);
            // A checkpoint's fsync lands up to `fsync_every - 1` steps after its commit (a
            // slower disk in some seeds): a crash meanwhile finds the checkpoint before it on
            // disk.
            let synced = (self.step + id).is_multiple_of(self.fsync_every);
            let msgs = {
                let Some(n) = self.node(id) else { continue };
                if synced {
                    n.background.run_pending()?;
                }
                n.raft.tick();
                n.raft.handle_ready()?;
                if flush {
                    n.raft.flush_applies()?;
                }
                n.raft.share_lease();
                n.raft.send_replies();
                n.raft.housekeeping()?;
                n.raft.take_messages()
            };
            self.send(msgs);
        }
        Ok(())
    }

    fn check_invariants(&mut self) -> Result<()> {
        for id in self.alive() {
            let Some(n) = self.nodes.get(&id).and_then(Option::as_ref) else {
                continue;
            };
            let st = n.raft.status();
            // Logs match: a committed index has the same term everywhere.
            let from = self
                .terms_checked
                .get(&id)
                .copied()
                .unwrap_or(0)
                .max(st.first_log_index.saturating_sub(1));
            for i in from + 1..=st.commit_index {
                let Some(term) = n.raft.log_term(i) else {
                    continue;
                };
                match self.committed_terms.get(&i) {
                    Some((other, t)) if *t != term => self.violations.push(format!(
                        "logs differ at committed index {i}: term {t} on node {other}, {term} on \
                         node {id} (step {})",
                        self.step
                    )),
                    Some(_) => {}
                    None => {
                        self.committed_terms.insert(i, (id, term));
                    }
                }
            }
            self.terms_checked.insert(id, st.commit_index);
            if st.role == "leader" {
                match self.term_leaders.get(&st.term) {
                    Some(other) if *other != id => self.violations.push(format!(
                        "two leaders in term {}: nodes {other} and {id} (step {})",
                        st.term, self.step
                    )),
                    _ => {
                        self.term_leaders.insert(st.term, id);
                    }
                }
            }
            if self.last_applied.get(&id) != Some(&st.applied_index) {
                self.check_transactions(id)?;
                let Some(n) = self.nodes.get(&id).and_then(Option::as_ref) else {
                    continue;
                };
                let digest = n.store.digest()?;
                for problem in n
                    .store
                    .check_indexes(TABLE)?
                    .into_iter()
                    .chain(n.store.check_stream(TABLE)?)
                {
                    self.violations.push(format!(
                        "node {id} at applied index {}: {problem} (step {})",
                        st.applied_index, self.step
                    ));
                }
                self.last_applied.insert(id, st.applied_index);
                match self.digests.get(&st.applied_index) {
                    Some((other, d)) if *d != digest => self.violations.push(format!(
                        "nodes {other} and {id} applied index {} but hold different state (step {})",
                        st.applied_index, self.step
                    )),
                    Some(_) => {}
                    None => {
                        self.digests.insert(st.applied_index, (id, digest));
                    }
                }
            }
        }
        Ok(())
    }

    /// All or nothing at every applied index: wherever one key shows a transaction's marker,
    /// written at log index V, every other key of that transaction holds a write from index V
    /// or later (its own marker, or something written after it).
    fn check_transactions(&mut self, id: NodeId) -> Result<()> {
        let Some(n) = self.nodes.get(&id).and_then(Option::as_ref) else {
            return Ok(());
        };
        let versions: BTreeMap<String, (Option<String>, u64)> = match n.store.versions(TABLE) {
            Ok(rows) => rows
                .into_iter()
                .filter_map(|(item, version)| match item.get("k") {
                    Some(AttributeValue::S(k)) => Some((k.clone(), (register(&item), version))),
                    _ => None,
                })
                .collect(),
            Err(Error::ResourceNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        for (key, (value, version)) in &versions {
            let Some(keys) = value.as_ref().and_then(|v| self.transactions.get(v)) else {
                continue;
            };
            for other in keys.iter().filter(|k| *k != key) {
                let theirs = versions.get(other).map(|(_, v)| *v);
                if theirs.is_none_or(|v| v < *version) {
                    self.violations.push(format!(
                        "transaction {} is half applied on node {id}: {key} holds it from index \
                         {version}, {other} holds {:?} from index {theirs:?} (step {})",
                        value.as_deref().unwrap_or(""),
                        versions.get(other).and_then(|(v, _)| v.clone()),
                        self.step
                    ));
                }
            }
        }
        Ok(())
    }

    fn read_value(&self, node: NodeId, key: &str) -> Result<Option<String>> {
        let Some(n) = self.nodes.get(&node).and_then(Option::as_ref) else {
            return Err(Error::internal("node down"));
        };
        // As GetItem reads: the table's metadata from the node's cache.
        match n.store.get_item(TABLE, &key_item(key)) {
            Ok(item) => Ok(item.and_then(|item| register(&item))),
            // A node that has not yet applied the CreateTable: nothing there yet.
            Err(Error::ResourceNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts one random client operation.
    fn issue(&mut self) -> Result<()> {
        let key = format!("k{}", self.rng.gen_range(0..KEYS));
        let set_key = format!("s{}", self.rng.gen_range(0..SET_KEYS));
        let leaders = self.leaders();
        let alive = self.alive();
        let running = self.running();
        if alive.is_empty() {
            return Ok(());
        }
        let to_leader = self.client_target(&leaders, &alive);
        self.report.ops += 1;
        let id = self.report.ops;
        let roll = self.rng.gen_range(0..100);
        let call = self.stamp();
        if roll < 27 {
            // Now and then a value with an expiry in the past, which time to live may delete.
            let expires = self.rng.gen_bool(0.4);
            let value = format!("{}{id}", if expires { 'e' } else { 'v' });
            self.attempted
                .entry(key.clone())
                .or_default()
                .insert(value.clone());
            let mut item = key_item(&key);
            item.insert("v".into(), AttributeValue::S(value.clone()));
            if expires {
                item.insert(
                    TTL_ATTRIBUTE.into(),
                    AttributeValue::N(crate::model::number::Number::parse(
                        &(TTL_NOW - 10).to_string(),
                    )?),
                );
            }
            let cmd = Box::new(Command::PutItem {
                table: TABLE.into(),
                item,
            });
            let ops = vec![(key, OpKind::Put(value))];
            self.request(to_leader, call, Request::Write { ops, cmd })?;
        } else if roll < 30 {
            // What the leader's time-to-live sweep proposes for an item it found expired; it
            // deletes the item only if it still holds an expiring value when it applies.
            let cmd = Box::new(Command::Expire {
                table: TABLE.into(),
                keys: vec![key_item(&key)],
                now: TTL_NOW,
            });
            let ops = vec![(key, OpKind::Expire { deleted: None })];
            self.request(to_leader, call, Request::Write { ops, cmd })?;
        } else if roll < 40 && !running.is_empty() {
            // Read, then compare-and-set from what was read (often stale on a follower, so
            // both outcomes are common): the optimistic concurrency every ORM does.
            let node = running[self.rng.gen_range(0..running.len())];
            let expected = self.read_value(node, &key)?;
            let value = format!("v{id}");
            self.attempted
                .entry(key.clone())
                .or_default()
                .insert(value.clone());
            let cmd = Box::new(compare_and_set(&key, expected.as_deref(), &value));
            let ops = vec![(
                key,
                OpKind::Cas {
                    expected,
                    new: value,
                },
            )];
            self.request(to_leader, call, Request::Write { ops, cmd })?;
        } else if roll < 48 {
            // Deletes of plain keys, and now and then of a set.
            let target = if self.rng.gen_bool(0.8) { key } else { set_key };
            let cmd = Box::new(Command::DeleteItem {
                table: TABLE.into(),
                key: key_item(&target),
            });
            let ops = vec![(target, OpKind::Delete)];
            self.request(to_leader, call, Request::Write { ops, cmd })?;
        } else if roll < 56 {
            // UpdateItem ADD of one member to a string set.
            let member = format!("m{id}");
            self.attempted
                .entry(set_key.clone())
                .or_default()
                .insert(member.clone());
            let cmd = Box::new(add_member(&set_key, &member));
            let ops = vec![(set_key, OpKind::AddMember(member))];
            self.request(to_leader, call, Request::Write { ops, cmd })?;
        } else if roll < 62 {
            // A transaction putting one marker on two or three keys, all or nothing: as
            // TransactWriteItems on shared keys, or now and then as a PartiQL transaction
            // inserting new ones.
            let count = self.rng.gen_range(2..=3);
            let partiql = self.rng.gen_bool(PARTIQL_TRANSACTIONS);
            let mut keys: Vec<String> = Vec::new();
            while keys.len() < count {
                let k = if partiql {
                    format!("p{id}_{}", keys.len())
                } else {
                    format!("x{}", self.rng.gen_range(0..TXN_KEYS))
                };
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            let marker = format!("t{id}");
            for k in &keys {
                self.attempted
                    .entry(k.clone())
                    .or_default()
                    .insert(marker.clone());
            }
            self.transactions.insert(marker.clone(), keys.clone());
            let cmd = Box::new(if partiql {
                self.report.partiql_transactions += 1;
                partiql_transaction(&keys, &marker, self.step)?
            } else {
                transaction(&keys, &marker, self.step)
            });
            let ops = keys
                .into_iter()
                .map(|k| (k, OpKind::Put(marker.clone())))
                .collect();
            self.request(to_leader, call, Request::Write { ops, cmd })?;
            self.report.transactions += 1;
        } else if roll < 80 {
            let key = match self.rng.gen_range(0..4) {
                0 => set_key,
                1 => format!("x{}", self.rng.gen_range(0..TXN_KEYS)),
                _ => key,
            };
            self.request(to_leader, call, Request::Read { key })?;
        } else if running.is_empty() {
            // Every live node is stalled: an eventual read would wait for one to wake.
        } else if roll < 92 {
            // An eventually consistent read, served at once by any running node.
            let node = running[self.rng.gen_range(0..running.len())];
            let seen = self.read_value(node, &key)?;
            self.eventual_reads.push((key, seen));
            self.report.completed += 1;
        } else if roll < 95 {
            // An eventually consistent scan of the whole table at any running node: every item
            // it returns is held to the same rule as an eventual read.
            let node = running[self.rng.gen_range(0..running.len())];
            for (k, v) in self.scan(node)? {
                self.eventual_reads.push((k, Some(v)));
            }
            self.report.completed += 1;
        } else {
            // An eventually consistent Query of a global index at any running node, for the
            // value `key` (or a transaction's key) holds there, or now and then for another
            // value some client wrote to it: every item found must hold that value, and is
            // held to the rule for eventual reads.
            let node = running[self.rng.gen_range(0..running.len())];
            let key = if self.rng.gen_bool(0.3) {
                format!("x{}", self.rng.gen_range(0..TXN_KEYS))
            } else {
                key
            };
            let written: Vec<String> = self
                .attempted
                .get(&key)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            let value = match self.read_value(node, &key)? {
                Some(v) if self.rng.gen_bool(0.8) => v,
                _ if !written.is_empty() => written[self.rng.gen_range(0..written.len())].clone(),
                _ => return Ok(()),
            };
            let index = if self.rng.gen_bool(0.5) {
                ADDED_INDEX
            } else {
                INDEX
            };
            let found = self.query_index(node, index, &value)?;
            if !found.is_empty() {
                self.report.index_reads += 1;
            }
            for (k, v) in found {
                if v != value {
                    self.violations.push(format!(
                        "a query of index {index} on node {node} for {value} returned {k} \
                         holding {v} (step {})",
                        self.step
                    ));
                }
                self.eventual_reads.push((k, Some(v)));
            }
            self.report.completed += 1;
        }
        Ok(())
    }

    /// Every `(key, value)` a Query of global index `index` for `value` finds at `node`, read
    /// locally; nothing if the node has no such active index yet (or any more).
    fn query_index(&self, node: NodeId, index: &str, value: &str) -> Result<Vec<(String, String)>> {
        let Some(n) = self.nodes.get(&node).and_then(Option::as_ref) else {
            return Ok(Vec::new());
        };
        let active = n.store.table(TABLE)?.is_some_and(|meta| {
            meta.index(index)
                .is_some_and(|i| i.state == IndexState::Active)
        });
        if !active {
            return Ok(Vec::new());
        }
        let partition = AttributeValue::S(value.to_string());
        let range = crate::store::read::Range {
            index: Some(index),
            partition: Some(&partition),
            then: &[],
            fetch_from_table: false,
            sort: None,
            forward: value.len().is_multiple_of(2),
            limit: None,
            start_after: None,
            segment: None,
        };
        read_registers(&n.store, &range)
    }

    /// Adds [`ADDED_INDEX`] to the live table, later removes it, and meanwhile proposes the
    /// batches that fill or clear it, at the leader, one proposal at a time: what UpdateTable
    /// and the cluster's index-work loop do.
    fn drive_indexes(&mut self, total_ops: usize) -> Result<()> {
        if let Some(rx) = self.index_proposal.as_mut() {
            match rx.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return Ok(()),
                Ok(Ok(Ok(Outcome::IndexWork { .. }))) => self.report.index_batches += 1,
                // Applied, refused, lost or timed out: the leader's state says what next.
                _ => {}
            }
            self.index_proposal = None;
        }
        let Some(leader) = self.leaders().first().copied() else {
            return Ok(());
        };
        if self.paused(leader) {
            return Ok(());
        }
        let Some(n) = self.nodes.get(&leader).and_then(Option::as_ref) else {
            return Ok(());
        };
        let state = n
            .store
            .table(TABLE)?
            .and_then(|meta| meta.index(ADDED_INDEX).map(|i| i.state.clone()));
        let mut command = None;
        match (self.added_index, state) {
            (IndexPhase::Before, Some(_)) => {
                self.added_index = IndexPhase::Added;
                self.report.index_changes += 1;
            }
            (IndexPhase::Before, None) if self.report.ops >= total_ops / 4 => {
                command = Some(Command::AlterIndexes {
                    name: TABLE.into(),
                    change: IndexChange::Create {
                        index: IndexSpec {
                            name: ADDED_INDEX.into(),
                            kind: IndexKind::Global,
                            id: 0,
                            partition: vec![KeyAttribute {
                                name: "v".into(),
                                key_type: KeyType::S,
                            }],
                            sort: vec![KeyAttribute {
                                name: "k".into(),
                                key_type: KeyType::S,
                            }],
                            projection: Projection::KeysOnly,
                            throughput: None,
                            state: IndexState::Active,
                        },
                        definitions: Vec::new(),
                    },
                });
            }
            (IndexPhase::Added, None | Some(IndexState::Deleting)) => {
                self.added_index = IndexPhase::Removed;
                self.report.index_changes += 1;
            }
            (IndexPhase::Added, Some(IndexState::Active))
                if self.report.ops >= total_ops * 2 / 3 =>
            {
                command = Some(Command::AlterIndexes {
                    name: TABLE.into(),
                    change: IndexChange::Delete {
                        index: ADDED_INDEX.into(),
                    },
                });
            }
            _ => {}
        }
        let Some(command) = command.or(n.store.index_work()?.into_iter().next()) else {
            return Ok(());
        };
        let bytes = command.encode()?;
        let (tx, rx) = oneshot::channel();
        if let Some(n) = self.node(leader) {
            n.raft.propose(bytes, tx);
            self.index_proposal = Some(rx);
        }
        Ok(())
    }

    /// The node a client sends a write or consistent read to: mostly one that believes it
    /// leads (a stalled one too: the client cannot tell), sometimes any live node.
    fn client_target(&mut self, leaders: &[NodeId], alive: &[NodeId]) -> NodeId {
        if !leaders.is_empty() && self.rng.gen_bool(0.9) {
            leaders[self.rng.gen_range(0..leaders.len())]
        } else {
            alive[self.rng.gen_range(0..alive.len())]
        }
    }

    /// Hands a client request to `node`, or to its backlog if it is stalled.
    fn request(&mut self, node: NodeId, call: u64, request: Request) -> Result<()> {
        if let Some(stall) = self.stall.as_mut().filter(|s| s.node == node)
            && self.step >= stall.pause_at
        {
            stall.backlog.push((call, request));
            return Ok(());
        }
        match request {
            Request::Write { ops, cmd } => self.propose(node, ops, *cmd, call),
            Request::Read { key } => {
                let (tx, rx) = oneshot::channel();
                let now = self.time.load(Ordering::Relaxed);
                if let Some(n) = self.node(node) {
                    let leader_term = n.raft.is_leader().then(|| n.raft.status().term);
                    // As the server's client handlers do: under a lease, once the node applied
                    // what it last shared, without the node.
                    if n.raft
                        .shared_lease()
                        .try_read(now, n.raft.status().applied_index)
                    {
                        let _ = tx.send(Ok(()));
                    } else {
                        n.raft.read_index(tx);
                    }
                    self.pending.push(Pending {
                        call,
                        waiting: Waiting::Read {
                            key,
                            node,
                            leader_term,
                            rx,
                        },
                    });
                }
                Ok(())
            }
        }
    }

    /// Every `(key, value)` a node holds, read locally.
    fn scan(&self, node: NodeId) -> Result<Vec<(String, String)>> {
        let Some(n) = self.nodes.get(&node).and_then(Option::as_ref) else {
            return Ok(Vec::new());
        };
        let range = crate::store::read::Range {
            index: None,
            partition: None,
            then: &[],
            fetch_from_table: false,
            sort: None,
            forward: true,
            limit: None,
            start_after: None,
            segment: None,
        };
        read_registers(&n.store, &range)
    }

    fn propose(
        &mut self,
        node: NodeId,
        ops: Vec<(String, OpKind)>,
        cmd: Command,
        call: u64,
    ) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let bytes = cmd.encode()?;
        if let Some(n) = self.node(node) {
            n.raft.propose(bytes, tx);
            self.pending.push(Pending {
                call,
                waiting: Waiting::Write { ops, rx },
            });
        }
        Ok(())
    }

    /// Collects answers that arrived; `finish` treats anything still waiting as unknown.
    fn collect(&mut self, finish: bool) -> Result<()> {
        let mut still = Vec::new();
        let mut read_after_write = Vec::new();
        for mut p in std::mem::take(&mut self.pending) {
            match &mut p.waiting {
                Waiting::Write { ops, rx } => {
                    let ret = match rx.try_recv() {
                        Ok(Ok(Ok(outcome))) => {
                            if let (
                                [(_, OpKind::Expire { deleted })],
                                Outcome::Expired { deleted: count },
                            ) = (ops.as_mut_slice(), &outcome)
                            {
                                *deleted = Some(*count > 0);
                                self.report.expired += *count;
                            }
                            self.report.acked_writes += 1;
                            if let [(_, OpKind::Cas { .. })] = ops.as_slice() {
                                self.report.cas_succeeded += 1;
                            }
                            if !finish && self.rng.gen_bool(READ_AFTER_WRITE) {
                                read_after_write.extend(ops.iter().map(|(k, _)| k.clone()));
                            }
                            Some(Some(self.stamp()))
                        }
                        // A false condition, checked at apply time: what the client learns is
                        // an observation of the register, checked like a read.
                        Ok(Ok(Err(Error::ConditionalCheckFailed { .. })))
                            if matches!(ops.as_slice(), [(_, OpKind::Cas { .. })]) =>
                        {
                            if let [(_, OpKind::Cas { expected, .. })] = ops.as_slice() {
                                let kind = OpKind::CasFailed {
                                    expected: expected.clone(),
                                };
                                *ops = vec![(ops[0].0.clone(), kind)];
                            }
                            self.report.cas_failed += 1;
                            Some(Some(self.stamp()))
                        }
                        Ok(Ok(Err(e))) => {
                            self.violations
                                .push(format!("a write failed deterministically: {e}"));
                            None
                        }
                        // Definitely not applied: it must never be seen.
                        Ok(Err(Error::NotApplied(_) | Error::NotLeader { .. })) => {
                            for (_, kind) in ops.iter() {
                                match kind {
                                    OpKind::Put(v)
                                    | OpKind::Cas { new: v, .. }
                                    | OpKind::AddMember(v) => {
                                        self.refused.insert(v.clone());
                                    }
                                    _ => {}
                                }
                            }
                            None
                        }
                        Ok(Err(_)) | Err(oneshot::error::TryRecvError::Closed) => Some(None),
                        Err(oneshot::error::TryRecvError::Empty) if finish => Some(None),
                        Err(oneshot::error::TryRecvError::Empty) => {
                            still.push(p);
                            continue;
                        }
                    };
                    if let Some(ret) = ret {
                        if ret.is_some() {
                            self.report.completed += 1;
                        }
                        for (key, kind) in ops.iter() {
                            self.history.entry(key.clone()).or_default().push(Op {
                                kind: kind.clone(),
                                call: p.call,
                                ret,
                            });
                        }
                    }
                }
                Waiting::Read {
                    key,
                    node,
                    leader_term,
                    rx,
                } => {
                    // Asked while it believed it led, answered after a later term's leader
                    // was elected: the case where a deposed leader could serve a stale read.
                    let across = leader_term.is_some_and(|t| self.newest_leader_term() > t);
                    match rx.try_recv() {
                        // The node crashed after answering and before the value was read: the
                        // client got nothing.
                        Ok(Ok(())) if !self.alive().contains(node) => {}
                        Ok(Ok(())) => {
                            let seen = self.read_value(*node, key)?;
                            self.report.completed += 1;
                            self.report.consistent_reads += 1;
                            if across {
                                self.report.reads_across_leader_change += 1;
                                self.report.reads_across_leader_change_answered += 1;
                            }
                            let ret = self.stamp();
                            self.history.entry(key.clone()).or_default().push(Op {
                                kind: OpKind::Get(seen),
                                call: p.call,
                                ret: Some(ret),
                            });
                        }
                        Err(oneshot::error::TryRecvError::Empty) if !finish => still.push(p),
                        // Refused: a failed read tells nothing, and that is all it may do.
                        Ok(Err(_)) if across => self.report.reads_across_leader_change += 1,
                        _ => {}
                    }
                }
            }
        }
        self.pending = still;
        // A client that saw its write acknowledged reads the key back at once: a write that
        // was acknowledged but lost shows up right away, before later writes can hide it.
        let (leaders, alive) = (self.leaders(), self.alive());
        for key in read_after_write {
            if alive.is_empty() {
                break;
            }
            let node = self.client_target(&leaders, &alive);
            let call = self.stamp();
            self.request(node, call, Request::Read { key })?;
        }
        Ok(())
    }

    /// Starts or ends a fault; counts it if it changed anything. Crashes are rarer than
    /// restarts, so the cluster spends most of its time with a quorum and some without.
    fn fault(&mut self) -> Result<()> {
        let alive = self.alive();
        let down: Vec<NodeId> = NODES
            .iter()
            .copied()
            .filter(|n| !alive.contains(n))
            .collect();
        let changed = match self.rng.gen_range(0..10) {
            0 | 1 => {
                // Any shape: each of the six one-way links is cut or not. Symmetric splits,
                // bridges (one node reaching two that cannot reach each other), one-way links
                // and total isolation all come up.
                let mut cut = BTreeSet::new();
                for from in NODES {
                    for to in NODES {
                        if from != to && self.rng.gen_bool(0.4) {
                            cut.insert((from, to));
                        }
                    }
                }
                let changed = cut != self.cut;
                self.cut = cut;
                changed
            }
            2 => {
                let n = NODES[self.rng.gen_range(0..NODES.len())];
                self.faults.drops.insert(n, self.rng.gen_range(0.1..0.5));
                true
            }
            3 => {
                let n = NODES[self.rng.gen_range(0..NODES.len())];
                let ms = self.rng.gen_range(2..15);
                self.faults.delays.insert(
                    n,
                    crate::faults::Delay {
                        ms,
                        jitter_ms: self.rng.gen_range(0..5),
                    },
                );
                true
            }
            4 => {
                self.dup_rate = if self.dup_rate > 0.0 { 0.0 } else { 0.2 };
                true
            }
            5 => {
                // Crash a node, keeping at least one running; half the time one whose
                // checkpoint's fsync has not landed yet, if there is one: the crash that tests
                // what a node counts as durable.
                if alive.len() > 1 {
                    let syncing: Vec<NodeId> = alive
                        .iter()
                        .copied()
                        .filter(|n| {
                            self.nodes
                                .get(n)
                                .and_then(Option::as_ref)
                                .is_some_and(|n| n.background.running())
                        })
                        .collect();
                    let n = if !syncing.is_empty() && self.rng.gen_bool(0.5) {
                        syncing[self.rng.gen_range(0..syncing.len())]
                    } else {
                        alive[self.rng.gen_range(0..alive.len())]
                    };
                    self.crash_node(n);
                    true
                } else {
                    false
                }
            }
            6 | 7 => {
                if down.is_empty() {
                    false
                } else {
                    let n = down[self.rng.gen_range(0..down.len())];
                    self.start_node(n)?;
                    true
                }
            }
            8 => match self.leaders().into_iter().find(|l| !self.paused(*l)) {
                Some(l) => {
                    let to = NODES[self.rng.gen_range(0..NODES.len())];
                    if let Some(n) = self.node(l) {
                        n.raft.transfer_leader(to);
                    }
                    to != l
                }
                None => false,
            },
            _ => {
                let changed =
                    !self.faults.is_empty() || !self.cut.is_empty() || self.dup_rate > 0.0;
                self.faults.heal();
                self.cut.clear();
                self.dup_rate = 0.0;
                changed
            }
        };
        if changed {
            self.report.faults += 1;
        }
        Ok(())
    }

    /// Cuts off the one leader, if there is one and no stall is under way, and stalls it a
    /// few steps later (see [`Stall`]). Returns whether it did.
    fn start_stall(&mut self) -> bool {
        let leaders = self.leaders();
        let [node] = leaders[..] else {
            return false;
        };
        // Only when the other two are up and can reach each other, so they can take over.
        let others: Vec<NodeId> = NODES.iter().copied().filter(|n| *n != node).collect();
        let can_take_over = self.alive().len() == NODES.len()
            && !self.link_cut(others[0], others[1])
            && !self.link_cut(others[1], others[0]);
        if self.stall.is_some() || !can_take_over {
            return false;
        }
        // A few steps cut off but running, shorter than the check-quorum interval (election
        // ticks), so it still leads and takes writes when it stalls.
        let pause_at = self.step + self.rng.gen_range(1..6);
        self.stall = Some(Stall {
            node,
            pause_at,
            end_by: pause_at + STALL_MAX_STEPS,
            wake_at: None,
            backlog: Vec::new(),
        });
        self.report.stalls += 1;
        true
    }

    /// Ends the stall when its time comes (see [`Stall`]): schedules the wake once a leader of
    /// a later term has committed past where the stalled node's log and held writes reach, so
    /// the new leader filled every index the stalled one will claim.
    fn maybe_end_stall(&mut self) -> Result<()> {
        let Some(stall) = self.stall.as_ref() else {
            return Ok(());
        };
        if self.step < stall.pause_at {
            return Ok(());
        }
        if self.step >= stall.end_by || stall.wake_at.is_some_and(|at| self.step >= at) {
            return self.end_stall();
        }
        if stall.wake_at.is_some() {
            return Ok(());
        }
        let Some(old) = self.nodes.get(&stall.node).and_then(Option::as_ref) else {
            return Ok(());
        };
        let old = old.raft.status();
        let held_writes = stall
            .backlog
            .iter()
            .filter(|(_, r)| matches!(r, Request::Write { .. }))
            .count() as u64;
        let reach = old.last_log_index + held_writes;
        let taken_over = self.nodes.values().flatten().any(|n| {
            let st = n.raft.status();
            st.role == "leader" && st.term > old.term && st.commit_index >= reach
        });
        if taken_over {
            let at = self.step + self.rng.gen_range(0..=STALL_OVERSLEEP_STEPS);
            if let Some(stall) = self.stall.as_mut() {
                stall.wake_at = Some(at);
            }
        }
        Ok(())
    }

    /// Wakes the stalled node with its links back; it serves the requests it held first.
    fn end_stall(&mut self) -> Result<()> {
        let Some(stall) = self.stall.take() else {
            return Ok(());
        };
        // It rejoins a healthy network, so it hears of the new leader within its grace.
        self.faults.heal();
        self.cut.clear();
        self.dup_rate = 0.0;
        for (call, request) in stall.backlog {
            self.request(stall.node, call, request)?;
        }
        Ok(())
    }

    fn advance(&mut self) -> Result<()> {
        self.step += 1;
        self.time.store(self.step * SIM_TICK_US, Ordering::Relaxed);
        self.deliver_due();
        self.tick_all()?;
        self.collect(false)?;
        self.check_invariants()
    }

    /// Runs until the cluster has a leader, every node applied its commit index, and no client
    /// is waiting; returns false if it never settles.
    fn settle(&mut self) -> Result<bool> {
        for _ in 0..SETTLE_STEPS {
            self.advance()?;
            let leaders = self.leaders();
            if leaders.len() != 1 || !self.pending.is_empty() {
                continue;
            }
            let statuses: Vec<_> = self
                .nodes
                .values()
                .flatten()
                .map(|n| n.raft.status())
                .collect();
            let commit = statuses
                .iter()
                .find(|s| s.role == "leader")
                .map(|s| s.commit_index);
            if statuses.len() == NODES.len()
                && statuses.iter().all(|s| Some(s.applied_index) == commit)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn create_table(&mut self) -> Result<()> {
        for _ in 0..SETTLE_STEPS {
            if let Some(l) = self.leaders().first().copied() {
                let spec = TableSpec {
                    name: TABLE.into(),
                    key_schema: KeySchema {
                        partition: KeyAttribute {
                            name: "k".into(),
                            key_type: KeyType::S,
                        },
                        sort: None,
                    },
                    attribute_definitions: vec![
                        KeyAttribute {
                            name: "k".into(),
                            key_type: KeyType::S,
                        },
                        KeyAttribute {
                            name: "v".into(),
                            key_type: KeyType::S,
                        },
                    ],
                    billing: Billing::PayPerRequest,
                    table_uuid: format!("sim-{}", self.report.seed),
                    arn: format!("arn:aws:dynamodb:sim:000000000000:table/{TABLE}"),
                    created_at_ms: 0,
                };
                // A global index on the register value: every write path maintains it, and
                // the invariants check it against the items at every applied index.
                let indexes = vec![IndexSpec {
                    name: INDEX.into(),
                    kind: IndexKind::Global,
                    id: 1,
                    partition: vec![KeyAttribute {
                        name: "v".into(),
                        key_type: KeyType::S,
                    }],
                    sort: Vec::new(),
                    projection: Projection::All,
                    throughput: None,
                    state: IndexState::Active,
                }];
                // With a stream keeping both images: the invariants replay it against the
                // items at every applied index.
                let command = Command::CreateTableWithStream {
                    spec,
                    indexes,
                    view: crate::model::stream::StreamView::NewAndOldImages,
                    // Small shards, so a run's stream has several.
                    shard_entries: 64,
                };
                if self.setup(l, command)? {
                    // Time to live on `exp`: `Expire` operations delete expiring values.
                    return self.enable_ttl();
                }
            }
            self.advance()?;
        }
        Err(Error::internal("sim: could not create the table"))
    }

    fn enable_ttl(&mut self) -> Result<()> {
        let command = Command::AlterTable {
            name: TABLE.into(),
            change: crate::store::TableChange::TimeToLive {
                attribute: TTL_ATTRIBUTE.into(),
                enabled: true,
            },
        };
        for _ in 0..SETTLE_STEPS {
            if let Some(l) = self.leaders().first().copied()
                && self.setup(l, command.clone())?
            {
                return Ok(());
            }
            self.advance()?;
        }
        Err(Error::internal("sim: could not enable time to live"))
    }

    /// Proposes `command` at `leader` and runs until it is acknowledged (true) or fails.
    fn setup(&mut self, leader: NodeId, command: Command) -> Result<bool> {
        let (tx, mut rx) = oneshot::channel();
        let bytes = command.encode()?;
        if let Some(n) = self.node(leader) {
            n.raft.propose(bytes, tx);
        }
        for _ in 0..200 {
            self.advance()?;
            match rx.try_recv() {
                Ok(Ok(Ok(_))) => return Ok(true),
                Ok(_) | Err(oneshot::error::TryRecvError::Closed) => return Ok(false),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
        }
        Ok(false)
    }

    fn final_checks(&mut self) -> Result<()> {
        // Every acknowledged write must be visible to a final consistent read of each key.
        let Some(leader) = self.leaders().first().copied() else {
            self.violations.push("no leader after settling".into());
            return Ok(());
        };
        let keys = (0..KEYS)
            .map(|k| format!("k{k}"))
            .chain((0..SET_KEYS).map(|k| format!("s{k}")))
            .chain((0..TXN_KEYS).map(|k| format!("x{k}")));
        for key in keys {
            let (tx, rx) = oneshot::channel();
            if let Some(n) = self.node(leader) {
                n.raft.read_index(tx);
            }
            let call = self.stamp();
            self.pending.push(Pending {
                call,
                waiting: Waiting::Read {
                    key,
                    node: leader,
                    leader_term: None,
                    rx,
                },
            });
        }
        for _ in 0..200 {
            if self.pending.is_empty() {
                break;
            }
            self.advance()?;
        }
        if !self.pending.is_empty() {
            self.violations
                .push("final consistent reads did not complete".into());
        }
        // Logs agree on the committed prefix.
        let nodes: Vec<&SimNode> = self.nodes.values().flatten().collect();
        let commit = nodes
            .iter()
            .map(|n| n.raft.status().commit_index)
            .min()
            .unwrap_or(0);
        let first = nodes
            .iter()
            .map(|n| n.raft.status().first_log_index)
            .max()
            .unwrap_or(1);
        for i in first..=commit {
            let terms: BTreeSet<Option<u64>> = nodes.iter().map(|n| n.raft.log_term(i)).collect();
            if terms.len() > 1 {
                self.violations.push(format!(
                    "logs differ at committed index {i}: terms {terms:?}"
                ));
                break;
            }
        }
        match history::check(&self.history) {
            Ok(unchecked) => self.report.unchecked = unchecked.len(),
            Err(e) => self.violations.push(e),
        }
        for (key, seen) in &self.eventual_reads {
            let Some(seen) = seen else { continue };
            // A set's members were each written by some ADD.
            let parts: Vec<&str> = if key.starts_with('s') {
                seen.split(',').collect()
            } else {
                vec![seen.as_str()]
            };
            for v in parts {
                let written = self.attempted.get(key).is_some_and(|s| s.contains(v));
                if !written || self.refused.contains(v) {
                    self.violations.push(format!(
                        "an eventual read of {key} returned {v}, which was {}",
                        if written { "refused" } else { "never written" }
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Runs one simulation. An error or a panic anywhere in it (a node's storage failing to
/// reopen after a crash, raft-rs asserting an invariant) is reported as a violation of that
/// seed, like any other: the seed replays it.
pub fn run(opts: &SimOptions) -> SimReport {
    let failed = |why: String| SimReport {
        seed: opts.seed,
        violations: vec![why],
        ..SimReport::default()
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_inner(opts))) {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => failed(format!("stopped with an error: {e}")),
        Err(panic) => failed(format!(
            "panicked: {}",
            crate::raft::driver::panic_text(panic.as_ref())
        )),
    }
}

/// FNV-1a: a hash that is the same in every build, for run fingerprints.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn run_inner(opts: &SimOptions) -> Result<SimReport> {
    // State machine bugs live in the store, which knows nothing of raft's planted bugs.
    let store_bug = match opts.planted_bug {
        Some(PlantedBug::PartialTransactions) => {
            Some(crate::store::apply::PlantedBug::PartialTransactions)
        }
        Some(PlantedBug::ConditionsIgnored) => {
            Some(crate::store::apply::PlantedBug::ConditionsIgnored)
        }
        Some(PlantedBug::StaleIndexEntries) => {
            Some(crate::store::apply::PlantedBug::StaleIndexEntries)
        }
        Some(PlantedBug::IndexRemovalStopsEarly) => {
            Some(crate::store::apply::PlantedBug::IndexRemovalStopsEarly)
        }
        Some(PlantedBug::ExpiryWithoutRecheck) => {
            Some(crate::store::apply::PlantedBug::ExpiryWithoutRecheck)
        }
        Some(PlantedBug::StreamSkipsTransactions) => {
            Some(crate::store::apply::PlantedBug::StreamSkipsTransactions)
        }
        _ => None,
    };
    /// Removes the planted bug however the run ends (a panic included).
    struct Unplant;
    impl Drop for Unplant {
        fn drop(&mut self) {
            crate::store::apply::plant(None);
            crate::store::apply::set_index_batch(None);
        }
    }
    crate::store::apply::plant(store_bug);
    crate::store::apply::set_index_batch(Some(SIM_INDEX_BATCH));
    let _unplant = Unplant;
    run_with(opts)
}

fn run_with(opts: &SimOptions) -> Result<SimReport> {
    let mut sim = Sim::new(opts)?;
    sim.create_table()?;
    while sim.report.ops < opts.ops {
        if sim.rng.gen_bool(0.4) {
            sim.issue()?;
        }
        if opts.faults && sim.rng.gen_bool(0.03) {
            sim.fault()?;
        }
        if opts.faults && sim.rng.gen_bool(STALL_RATE) && sim.start_stall() {
            sim.report.faults += 1;
        }
        sim.maybe_end_stall()?;
        sim.drive_indexes(opts.ops)?;
        sim.advance()?;
    }
    // Heal everything, bring every node back, and let the cluster settle.
    sim.end_stall()?;
    sim.faults.heal();
    sim.cut.clear();
    sim.dup_rate = 0.0;
    for id in NODES {
        if sim.nodes.get(&id).is_none_or(Option::is_none) {
            sim.start_node(id)?;
        }
    }
    if !sim.settle()? {
        sim.collect(true)?;
        let states: Vec<String> = sim
            .nodes
            .values()
            .flatten()
            .map(|n| {
                let st = n.raft.status();
                format!(
                    "node {} {} term {} leader {:?} commit {} applied {} log {}..{} waiting {}",
                    st.node_id,
                    st.role,
                    st.term,
                    st.leader_id,
                    st.commit_index,
                    st.applied_index,
                    st.first_log_index,
                    st.last_log_index,
                    st.pending_proposals + st.pending_reads
                )
            })
            .collect();
        sim.violations.push(format!(
            "the cluster did not settle within {SETTLE_STEPS} steps after healing:\n  {}",
            states.join("\n  ")
        ));
    }
    sim.collect(true)?;
    sim.final_checks()?;
    for n in sim.nodes.values().flatten() {
        sim.report.overwritten_proposals += n.raft.overwritten_proposals();
        sim.report.lease_reads += n.raft.lease_reads();
    }
    let mut fingerprint = fnv1a(
        format!("{:?}", sim.history).as_bytes(),
        0xcbf2_9ce4_8422_2325,
    );
    for n in sim.nodes.values().flatten() {
        fingerprint = fnv1a(&n.store.digest()?.to_be_bytes(), fingerprint);
    }
    sim.report.fingerprint = fingerprint;
    sim.report.steps = sim.step;
    sim.report.violations = std::mem::take(&mut sim.violations);
    Ok(sim.report.clone())
}
