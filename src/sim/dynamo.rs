//! Deterministic simulation of the leaderless engine (`kvsim sim --mode dynamo`): five
//! [`DynamoNode`]s on redb over [`SimDisk`], a simulated network and clock, and one seed.
//!
//! Each step the network delivers the messages that are due (delayed, reordered, lost or
//! duplicated when faults are on), every live node ticks with its own skewed wall clock,
//! clients start puts, deletes, quorum reads and all-replica reads at random nodes, and faults
//! come and go: partitions of random shape, crashes (the disk keeps only what was fsynced) and
//! restarts. Then everything heals and anti-entropy runs.
//!
//! Checked: every acknowledged write is seen by the final state of every owner of its key (no
//! acknowledged write lost, whatever crashed); every owner of a key ends with identical
//! versions (so the merger resolves them identically everywhere); no version a client's
//! acknowledged write had seen comes back (a deleted item stays deleted; an overwritten value
//! stays overwritten); every read returns only values some client wrote; and without faults,
//! with R + W > N, a read sees the latest acknowledged write of a key no other write was
//! touching.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::Builder;

use crate::dynamo::NodeId;
use crate::dynamo::clock::VectorClock;
use crate::dynamo::merge::{self, Merger};
use crate::dynamo::node::{
    Change, ChangeQuery, Done, DynamoBug, DynamoNode, Key, Msg, Options, ReqId, VersionStore,
};
use crate::dynamo::ring::Ring;
use crate::dynamo::storage::RedbVersions;
use crate::dynamo::version::{Siblings, Version};
use crate::model::Item;
use crate::model::value::AttributeValue;
use crate::sim::disk::SimDisk;
use crate::{Error, Result};

const NODES: u64 = 5;
const KEYS: u64 = 5;
const MS_PER_STEP: u64 = 10;
const SETTLE_STEPS: u64 = 400;

/// What to run.
#[derive(Clone, Debug)]
pub struct DynamoSimOptions {
    /// The seed everything derives from.
    pub seed: u64,
    /// Client operations to issue.
    pub ops: usize,
    /// Inject faults.
    pub faults: bool,
    /// `lww` or `vector`.
    pub merger: String,
    /// A bug planted in every node, for the tests that prove the simulation catches it.
    pub planted_bug: Option<DynamoBug>,
}

/// What one run did and found.
#[derive(Clone, Debug, Default)]
pub struct DynamoSimReport {
    /// Client operations that finished (successfully or not).
    pub completed: usize,
    /// Faults injected.
    pub faults: usize,
    /// Crashes among them.
    pub crashes: usize,
    /// Writes acknowledged.
    pub acknowledged: usize,
    /// Conflicts replicas detected.
    pub conflicts: usize,
    /// Hints handed back to their owners.
    pub handoffs: usize,
    /// Keys repaired by anti-entropy.
    pub repairs: usize,
    /// Tombstone collections.
    pub collections: usize,
    /// What went wrong; empty for a pass.
    pub violations: Vec<String>,
}

impl DynamoSimReport {
    /// Adds another run's counts (violations are the caller's to report).
    pub fn add(&mut self, other: &DynamoSimReport) {
        self.completed += other.completed;
        self.faults += other.faults;
        self.crashes += other.crashes;
        self.acknowledged += other.acknowledged;
        self.conflicts += other.conflicts;
        self.handoffs += other.handoffs;
        self.repairs += other.repairs;
        self.collections += other.collections;
    }
}

struct InFlight {
    deliver_at: u64,
    from: NodeId,
    to: NodeId,
    msg: Msg,
}

enum ClientOp {
    Write { key: u64 },
    Read { key: u64, started: u64, quiet: bool },
}

struct Sim {
    rng: StdRng,
    opts: DynamoSimOptions,
    node_opts: Options,
    nodes: BTreeMap<NodeId, DynamoNode<RedbVersions>>,
    disks: BTreeMap<NodeId, SimDisk>,
    skew: BTreeMap<NodeId, u64>,
    step: u64,
    net: Vec<InFlight>,
    /// Nodes on one side of a partition.
    side: Option<BTreeSet<NodeId>>,
    pending: BTreeMap<(NodeId, ReqId), ClientOp>,
    /// Writes in flight per key (for the fault-free read check).
    writing: BTreeMap<u64, usize>,
    /// Per key: the step of its latest write's start, and the latest acknowledged write.
    last_write_start: BTreeMap<u64, u64>,
    acked: Vec<(u64, Version)>,
    /// Every version any coordinator created, by clock (each write's clock is its own).
    created: BTreeMap<VectorClock, (Key, Version)>,
    /// The same by writer and stamp: a last-writer-wins collapse keeps its winner's, but
    /// joins the clocks.
    created_stamps: BTreeSet<(NodeId, u64)>,
    values_written: BTreeSet<String>,
    next_value: u64,
    report: DynamoSimReport,
}

fn key(k: u64) -> Key {
    Key {
        partition: format!("k{k}").into_bytes(),
        item: Vec::new(),
    }
}

fn value_of(item: &Item) -> Option<String> {
    match item.get("v") {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Runs one seed.
pub fn run(opts: &DynamoSimOptions) -> DynamoSimReport {
    match Sim::new(opts.clone()).and_then(Sim::run) {
        Ok(report) => report,
        Err(e) => DynamoSimReport {
            violations: vec![format!("seed {}: {e}", opts.seed)],
            ..DynamoSimReport::default()
        },
    }
}

impl Sim {
    fn new(opts: DynamoSimOptions) -> Result<Sim> {
        if merge::by_name(&opts.merger).is_none() {
            return Err(Error::validation(format!(
                "unknown merger {:?}: lww or vector",
                opts.merger
            )));
        }
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let node_opts = Options {
            id: 0,
            members: (1..=NODES).collect(),
            replicas: 3,
            read_quorum: 2,
            write_quorum: 2,
            suspect_after: 6,
            request_ticks: 60,
            sync_every: 3,
            tombstone_grace_ms: 1_000,
            change_retention_ms: crate::dynamo::node::CHANGE_RETENTION_MS,
            planted_bug: opts.planted_bug,
        };
        let skew = (1..=NODES).map(|id| (id, rng.gen_range(0..300))).collect();
        let mut sim = Sim {
            rng,
            opts,
            node_opts,
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            skew,
            step: 0,
            net: Vec::new(),
            side: None,
            pending: BTreeMap::new(),
            writing: BTreeMap::new(),
            last_write_start: BTreeMap::new(),
            acked: Vec::new(),
            created: BTreeMap::new(),
            created_stamps: BTreeSet::new(),
            values_written: BTreeSet::new(),
            next_value: 0,
            report: DynamoSimReport::default(),
        };
        for id in 1..=NODES {
            let disk = SimDisk::new();
            sim.disks.insert(id, disk.clone());
            sim.boot(id, disk)?;
        }
        Ok(sim)
    }

    fn merger(&self) -> Result<Box<dyn Merger>> {
        merge::by_name(&self.opts.merger).ok_or_else(|| Error::internal("merger vanished"))
    }

    fn boot(&mut self, id: NodeId, disk: SimDisk) -> Result<()> {
        let db = Arc::new(Builder::new().create_with_backend(disk)?);
        let store = RedbVersions::open(db, true)?;
        let opts = Options {
            id,
            ..self.node_opts.clone()
        };
        let node = DynamoNode::new(opts, self.merger()?, store)?;
        self.nodes.insert(id, node);
        Ok(())
    }

    fn now_of(&self, id: NodeId) -> u64 {
        10_000 + self.step * MS_PER_STEP + self.skew.get(&id).copied().unwrap_or(0)
    }

    fn linked(&self, a: NodeId, b: NodeId) -> bool {
        self.side
            .as_ref()
            .is_none_or(|side| side.contains(&a) == side.contains(&b))
    }

    fn crash(&mut self, id: NodeId) {
        if self.nodes.remove(&id).is_some() {
            if let Some(disk) = self.disks.get(&id) {
                disk.crash();
            }
            self.pending.retain(|(at, _), op| {
                if *at == id
                    && let ClientOp::Write { key } = op
                    && let Some(n) = self.writing.get_mut(key)
                {
                    *n = n.saturating_sub(1);
                }
                *at != id
            });
            self.report.crashes += 1;
        }
    }

    fn restart(&mut self, id: NodeId) -> Result<()> {
        if self.nodes.contains_key(&id) {
            return Ok(());
        }
        let disk = self
            .disks
            .get(&id)
            .map(SimDisk::recover)
            .ok_or_else(|| Error::internal("no disk"))?;
        self.disks.insert(id, disk.clone());
        self.boot(id, disk)
    }

    fn run(mut self) -> Result<DynamoSimReport> {
        let mut issued = 0;
        while issued < self.opts.ops {
            if self.rng.gen_bool(0.5) {
                self.issue()?;
                issued += 1;
            }
            if self.opts.faults && self.rng.gen_bool(0.03) {
                self.fault()?;
            }
            self.advance()?;
        }
        // Heal everything and let anti-entropy and handoffs run.
        self.side = None;
        for id in 1..=NODES {
            self.restart(id)?;
        }
        for _ in 0..SETTLE_STEPS {
            self.advance()?;
        }
        self.check_final()?;
        Ok(self.report)
    }

    fn fault(&mut self) -> Result<()> {
        self.report.faults += 1;
        match self.rng.gen_range(0..4) {
            0 => {
                let id = self.rng.gen_range(1..=NODES);
                self.crash(id);
            }
            1 => {
                let id = self.rng.gen_range(1..=NODES);
                self.restart(id)?;
            }
            2 => {
                let side: BTreeSet<NodeId> =
                    (1..=NODES).filter(|_| self.rng.gen_bool(0.5)).collect();
                self.side = Some(side);
            }
            _ => self.side = None,
        }
        Ok(())
    }

    fn issue(&mut self) -> Result<()> {
        let live: Vec<NodeId> = self.nodes.keys().copied().collect();
        if live.is_empty() {
            return Ok(());
        }
        let at = live[self.rng.gen_range(0..live.len())];
        let k = self.rng.gen_range(0..KEYS);
        let now = self.now_of(at);
        let kind = self.rng.gen_range(0..10);
        let Some(node) = self.nodes.get_mut(&at) else {
            return Ok(());
        };
        let (req, op) = if kind < 5 {
            let value = (kind > 0).then(|| {
                self.next_value += 1;
                format!("s{}-{}", self.opts.seed, self.next_value)
            });
            if let Some(v) = &value {
                self.values_written.insert(v.clone());
            }
            let item = value.map(|v| Item::from([("v".to_string(), AttributeValue::S(v))]));
            let req = node.put(key(k), now, Box::new(move |_| Ok(item)));
            *self.writing.entry(k).or_insert(0) += 1;
            self.last_write_start.insert(k, self.step);
            (req, ClientOp::Write { key: k })
        } else {
            let req = node.get(key(k), kind == 9);
            let quiet = self.writing.get(&k).copied().unwrap_or(0) == 0;
            (
                req,
                ClientOp::Read {
                    key: k,
                    started: self.step,
                    quiet,
                },
            )
        };
        self.pending.insert((at, req), op);
        Ok(())
    }

    /// One step: deliver what is due, tick every node, collect what they hand out.
    fn advance(&mut self) -> Result<()> {
        self.step += 1;
        let due: Vec<InFlight>;
        (due, self.net) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| m.deliver_at <= self.step);
        for m in due {
            if !self.linked(m.from, m.to) {
                continue;
            }
            if let Some(node) = self.nodes.get_mut(&m.to) {
                node.step(m.from, m.msg)?;
            }
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let now = self.now_of(id);
            let Some(node) = self.nodes.get_mut(&id) else {
                continue;
            };
            node.tick(now)?;
            let ready = node.ready()?;
            if node.store().has_pending() {
                self.violate(format!(
                    "node {id} handed out messages with changes not yet on disk"
                ));
            }
            for e in &ready.events {
                match e.kind {
                    "conflict_detected" => self.report.conflicts += 1,
                    "hint_handed_off" => self.report.handoffs += 1,
                    "anti_entropy_repaired" => self.report.repairs += 1,
                    "tombstones_collected" => self.report.collections += 1,
                    _ => {}
                }
            }
            for (key, version) in ready.created {
                self.created_stamps.insert((version.writer, version.stamp));
                self.created.insert(version.clock.clone(), (key, version));
            }
            for (to, msg) in ready.messages {
                self.send(id, to, msg);
            }
            for (req, out) in ready.done {
                self.finish(id, req, out);
            }
        }
        Ok(())
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Msg) {
        let faults = self.opts.faults;
        let delay = if faults {
            self.rng.gen_range(1..4)
        } else {
            self.rng.gen_range(1..2)
        };
        if faults && self.rng.gen_bool(0.02) {
            return; // lost
        }
        if faults && self.rng.gen_bool(0.02) {
            self.net.push(InFlight {
                deliver_at: self.step + delay + 2,
                from,
                to,
                msg: msg.clone(),
            });
        }
        self.net.push(InFlight {
            deliver_at: self.step + delay,
            from,
            to,
            msg,
        });
    }

    fn finish(&mut self, at: NodeId, req: ReqId, out: Result<Done>) {
        let Some(op) = self.pending.remove(&(at, req)) else {
            return;
        };
        self.report.completed += 1;
        match (op, out) {
            (ClientOp::Write { key }, out) => {
                if let Some(n) = self.writing.get_mut(&key) {
                    *n = n.saturating_sub(1);
                }
                if let Ok(Done::Written { version, .. }) = out {
                    self.report.acknowledged += 1;
                    self.acked.push((key, version));
                }
            }
            (
                ClientOp::Read {
                    key,
                    started,
                    quiet,
                },
                Ok(Done::Read { resolved, .. }),
            ) => {
                let got = resolved.item.as_ref().and_then(value_of);
                if let Some(v) = &got
                    && !self.values_written.contains(v)
                {
                    self.violate(format!(
                        "a read of k{key} returned {v:?}, which nobody wrote"
                    ));
                }
                // Without faults and with no write to the key since well before the read,
                // R + W > N: the read must see the latest acknowledged write.
                let settled = self
                    .last_write_start
                    .get(&key)
                    .is_none_or(|&s| s + 100 < started);
                let still_quiet = self.writing.get(&key).copied().unwrap_or(0) == 0;
                if !self.opts.faults && quiet && still_quiet && settled {
                    // What the acknowledged writes resolve to (concurrent ones merged).
                    let mut acked = Siblings::new();
                    let merger = self.merger();
                    if let Ok(merger) = merger {
                        for (_, v) in self.acked.iter().filter(|(k, _)| *k == key) {
                            merger.receive(&mut acked, v.clone());
                        }
                        let expected = merger.resolve(&acked).item;
                        if !acked.is_empty() && expected != resolved.item {
                            self.violate(format!(
                                "without faults a read of k{key} returned {got:?}, not what \
                                 the acknowledged writes resolve to: {:?}",
                                expected.as_ref().and_then(value_of)
                            ));
                        }
                    }
                }
            }
            (ClientOp::Read { .. }, _) => {}
        }
    }

    fn violate(&mut self, what: String) {
        self.report.violations.push(format!(
            "seed {}, step {}: {what}",
            self.opts.seed, self.step
        ));
    }

    fn check_final(&mut self) -> Result<()> {
        let mut left = Vec::new();
        for (id, node) in &self.nodes {
            let hints = node.store().hints()?.len();
            if hints > 0 {
                left.push(format!(
                    "node {id} still holds {hints} hint(s) after healing"
                ));
            }
        }
        for what in left {
            self.violate(what);
        }
        let ring = Ring::of(1..=NODES);
        let lww = self.opts.merger == "lww";
        let merger = self.merger()?;
        let mut changes: BTreeMap<NodeId, Vec<Change>> = BTreeMap::new();
        for (id, node) in &self.nodes {
            let page = node.store().changes(&ChangeQuery::all())?;
            changes.insert(*id, page.records.into_iter().map(|(_, c)| c).collect());
        }
        for k in 0..KEYS {
            let owners = ring.preference_list(&key(k).partition, self.node_opts.replicas);
            // The primary's change records of the key (a stream shard) chain from nothing to
            // what it holds now.
            if let Some(&primary) = owners.first()
                && let Some(node) = self.nodes.get(&primary)
            {
                let held = merger.resolve(&node.store().get(&key(k))?).item;
                let mine: Vec<&Change> = changes
                    .get(&primary)
                    .into_iter()
                    .flatten()
                    .filter(|c| c.key == key(k))
                    .collect();
                let mut last = None;
                for c in &mine {
                    if c.old != last || c.old == c.new {
                        self.violate(format!(
                            "node {primary}'s change records of k{k} do not chain: one from \
                             {:?} to {:?} after one to {:?}",
                            c.old.as_ref().and_then(value_of),
                            c.new.as_ref().and_then(value_of),
                            last.as_ref().and_then(value_of)
                        ));
                    }
                    last = c.new.clone();
                }
                if last != held {
                    self.violate(format!(
                        "node {primary}'s last change record of k{k} ends at {:?}, it holds {:?}",
                        last.as_ref().and_then(value_of),
                        held.as_ref().and_then(value_of)
                    ));
                }
            }
            for (id, recorded) in &changes {
                if *id != owners.first().copied().unwrap_or_default()
                    && recorded.iter().any(|c| c.key == key(k))
                {
                    let what =
                        format!("node {id} recorded changes of k{k}, whose primary it is not");
                    self.violate(what);
                }
            }
            let mut states: Vec<(NodeId, Siblings)> = Vec::new();
            for &o in &owners {
                let Some(node) = self.nodes.get(&o) else {
                    continue;
                };
                states.push((o, node.store().get(&key(k))?));
            }
            if let Some((first_node, first)) = states.first().cloned() {
                for (o, s) in &states[1..] {
                    if *s != first {
                        self.violate(format!(
                            "after healing, owners {first_node} and {o} of k{k} hold different \
                             versions: {:?} vs {:?}",
                            clocks(&first),
                            clocks(s)
                        ));
                    }
                }
            }
            let acked: Vec<Version> = self
                .acked
                .iter()
                .filter(|(kk, _)| *kk == k)
                .map(|(_, v)| v.clone())
                .collect();
            for (o, s) in &states {
                let seen = s.context();
                for v in &acked {
                    // A write superseded by a deletion that was then collected is gone, and
                    // later writes start a new history: then that deletion must exist.
                    let collected = self
                        .created
                        .values()
                        .any(|(tk, t)| *tk == key(k) && t.is_tombstone() && beats(lww, t, v));
                    if !seen.descends(&v.clock) && !collected {
                        self.violate(format!(
                            "node {o} lost the acknowledged write {} of k{k} (it holds {:?})",
                            v.clock,
                            clocks(s)
                        ));
                    }
                }
                for held in s.versions() {
                    if !self.created_stamps.contains(&(held.writer, held.stamp)) {
                        self.violate(format!(
                            "node {o} holds a version of k{k} nobody wrote: {}",
                            held.clock
                        ));
                    }
                    // A version an acknowledged write had seen must never come back.
                    for v in &acked {
                        if v.clock != held.clock && v.clock.descends(&held.clock) {
                            self.violate(format!(
                                "node {o} holds version {} of k{k}, which acknowledged write \
                                 {} had replaced",
                                held.clock, v.clock
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// True if `t` supersedes `v`: it has seen it, or, under last-writer-wins, it is concurrent
/// and more recent.
fn beats(lww: bool, t: &Version, v: &Version) -> bool {
    t.clock.descends(&v.clock) || (lww && !v.clock.descends(&t.clock) && t.recency() > v.recency())
}

fn clocks(s: &Siblings) -> Vec<String> {
    s.versions().iter().map(|v| v.clock.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_seeds_pass_with_both_mergers() {
        for merger in ["lww", "vector"] {
            for seed in 1..4 {
                let report = run(&DynamoSimOptions {
                    seed,
                    ops: 60,
                    faults: true,
                    merger: merger.into(),
                    planted_bug: None,
                });
                assert!(
                    report.violations.is_empty(),
                    "seed {seed} ({merger}): {:?}",
                    report.violations
                );
                assert!(report.completed > 0);
            }
        }
    }
}
