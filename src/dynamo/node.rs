//! One node of the leaderless engine, sans I/O: quorum reads and writes it coordinates, the
//! replica it keeps, hinted handoff, read repair and failure detection.
//!
//! Like raft-rs's `RawNode`, the node is synchronous and clock-free: the driver feeds it client
//! requests, messages from peers and ticks, and then calls [`DynamoNode::ready`], which makes
//! what the node stored durable (one flush for the whole batch) *before* it hands out the
//! acknowledgements and answers that depend on it. So an acknowledged write is on disk at W
//! replicas, and the deterministic simulation can drive the node exactly as the server does.
//!
//! **A write** (any node coordinates): read the key from R replicas of its preference list (the
//! context), check what the caller wants checked, build the new version (the joined clocks of
//! what was read, plus this node's next counter; a hybrid stamp above everything read), send it
//! to the first N live nodes of the ring walk, and answer once W have stored it. A node that
//! stands in for an unreachable one of the first N keeps the version as a *hint* for it and
//! hands it back when that node answers pings again.
//!
//! **A read** asks the first N live nodes, answers from the first R (all N live ones for
//! `all`), merges what they returned with the merger, and repairs those that lacked something.
//!
//! **Anti-entropy**: every `sync_every` ticks the node compares a two-level hash tree (a root
//! over 256 ranges of the ring, each range the XOR of its keys' hashes) of the keys it shares
//! with the next peer; only ranges whose hashes differ are exchanged, both ways.
//!
//! **Tombstones** are forgotten once past `tombstone_grace_ms` *and* once an anti-entropy round
//! with every other owner, started after this node saw the deletion, has completed (so each of
//! them holds the deletion or something newer). As in Cassandra, a replica or hint that stays
//! away longer than the grace period can still bring an item back.
//!
//! **Failure detection** is SWIM's: a probe per tick to the next peer in turn; a peer that
//! leaves `suspect_after` ticks of requests unanswered is first probed *indirectly*: up to
//! [`INDIRECT_HELPERS`] other peers are asked to ping it and to pass its answer on. Only if
//! none does within half as many ticks again is it suspected and skipped by ring walks;
//! any message from it (or passed on about it) clears that. So a node cut off from one peer
//! alone does not suspect it while others reach it. Probes and their
//! answers carry the sender's view of everyone's liveness with incarnation numbers
//! ([`Gossip`]), so a suspicion spreads without every node waiting out its own timeout, and a
//! node refutes a suspicion of itself by moving to a higher incarnation.
//!
//! **Change records** (DynamoDB Streams): a key's *primary*, the first node of its preference
//! list, records a [`Change`] whenever a version it receives changes what it resolves the key
//! to (a client write, a handoff, read repair or anti-entropy bringing it something new), in the
//! same flush as the version. So each node's records form one shard; the records of one key are
//! all in its primary's shard, each one's old image the previous one's new image, and the last
//! one's new image what the key converged to. A write the primary has not received yet (it is
//! down or cut off) is recorded when it arrives; a version the primary receives after something
//! that had already seen it changes nothing and leaves no record.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::dynamo::NodeId;
use crate::dynamo::clock::VectorClock;
use crate::dynamo::merge::{Merger, Resolved};
use crate::dynamo::ring::{Md5Hash, Ring, RingHash};
use crate::dynamo::version::{Received, Siblings, Version};
use crate::events::NodeEvent;
use crate::model::Item;
use crate::{Error, Result};

/// An item's key as the engine sees it: the bytes the ring places (the table and partition
/// key, so that a partition's items share their replicas and a Query asks one preference list)
/// and the bytes that tell items of the partition apart (the sort key), both opaque here.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// What the ring hashes.
    pub partition: Vec<u8>,
    /// The item within the partition.
    pub item: Vec<u8>,
}

/// A request this node coordinates.
pub type ReqId = u64;

/// How many peers a node asks to probe a peer that stopped answering it (SWIM's k).
pub const INDIRECT_HELPERS: usize = 2;

/// How long change records are kept: DynamoDB Streams' 24 hours.
pub const CHANGE_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// How a key's resolved item changed at its primary: one stream record. See the module
/// documentation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The key.
    pub key: Key,
    /// When the primary recorded it, ms (its wall clock: retention counts from here).
    pub recorded_ms: u64,
    /// The stamp of the version that made the change: when it was written.
    pub stamp: u64,
    /// The item before, as the primary resolved it (`None`: absent or deleted).
    pub old: Option<Item>,
    /// The item after.
    pub new: Option<Item>,
}

/// What a read of one node's change records asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeQuery {
    /// Only records of partitions beginning with this (a table).
    pub prefix: Vec<u8>,
    /// The first sequence number wanted.
    pub from: u64,
    /// The most records wanted; with 0, none, and the page's `next` is the number the next
    /// record will get.
    pub limit: usize,
    /// About the most bytes of records wanted (at least one record is returned).
    pub max_bytes: u64,
}

impl ChangeQuery {
    /// Every record of every partition.
    pub fn all() -> ChangeQuery {
        ChangeQuery {
            prefix: Vec::new(),
            from: 0,
            limit: usize::MAX,
            max_bytes: u64::MAX,
        }
    }
}

/// A page of one node's change records.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangePage {
    /// Records with their sequence numbers, in order.
    pub records: Vec<(u64, Change)>,
    /// The sequence number to read from next: past every record looked at, or the next one to
    /// be recorded when the page ends the shard.
    pub next: u64,
    /// The first sequence number still kept (older records were trimmed).
    pub first: u64,
    /// True if the page reached the last record recorded.
    pub at_end: bool,
}

/// What a replica keeps durably. Writes become durable at [`VersionStore::flush`]; a crash
/// loses what was written after the last flush and nothing before it.
pub trait VersionStore {
    /// The versions held for `key`.
    fn get(&self, key: &Key) -> Result<Siblings>;
    /// Replaces the versions held for `key`.
    fn put(&mut self, key: &Key, versions: &Siblings) -> Result<()>;
    /// Keeps `version` of `key` for `owner`, which could not be reached.
    fn add_hint(&mut self, owner: NodeId, key: &Key, version: &Version) -> Result<()>;
    /// Every hint held: `(owner, key, version)`.
    fn hints(&self) -> Result<Vec<(NodeId, Key, Version)>>;
    /// The versions of `key` held as hints for any of `owners`.
    fn hinted(&self, owners: &[NodeId], key: &Key) -> Result<Vec<Version>>;
    /// Drops a hint once its owner has stored it.
    fn remove_hint(&mut self, owner: NodeId, key: &Key, version: &Version) -> Result<()>;
    /// Transactions committed with an fsync since the store opened (for `status`).
    fn fsyncs(&self) -> u64 {
        0
    }
    /// The next counter of this node's writes: larger than any handed out before, across
    /// restarts.
    fn next_counter(&mut self) -> Result<u64>;
    /// Every key held with its versions (for anti-entropy and tombstone collection).
    fn entries(&self) -> Result<Vec<(Key, Siblings)>>;
    /// The keys held of one partition with their versions, in item order.
    fn partition(&self, partition: &[u8]) -> Result<Vec<(Key, Siblings)>>;
    /// Forgets `key` entirely (a collected tombstone).
    fn remove(&mut self, key: &Key) -> Result<()>;
    /// Records a change under the next sequence number (made durable by the next flush).
    fn record(&mut self, change: Change) -> Result<()>;
    /// The flushed records `query` asks for.
    fn changes(&self, query: &ChangeQuery) -> Result<ChangePage>;
    /// Forgets the records recorded before `before_ms` (from the oldest on, stopping at the
    /// first younger one); returns how many.
    fn trim_changes(&mut self, before_ms: u64) -> Result<usize>;
    /// Makes everything above durable.
    fn flush(&mut self) -> Result<()>;
}

/// Tunables, in ticks and replicas.
#[derive(Clone, Debug)]
pub struct Options {
    /// This node.
    pub id: NodeId,
    /// Every member, this node included.
    pub members: Vec<NodeId>,
    /// Replicas per key (N).
    pub replicas: usize,
    /// Replies a read waits for (R).
    pub read_quorum: usize,
    /// Acknowledgements a write waits for (W).
    pub write_quorum: usize,
    /// Ticks without an answer after which a peer is suspected.
    pub suspect_after: u64,
    /// Ticks a request waits for its quorum before failing.
    pub request_ticks: u64,
    /// Ticks between anti-entropy rounds this node starts (0: never).
    pub sync_every: u64,
    /// Milliseconds a tombstone is kept at least (`--tombstone-gc-secs`).
    pub tombstone_grace_ms: u64,
    /// Milliseconds change records are kept (DynamoDB Streams keeps 24 hours).
    pub change_retention_ms: u64,
    /// A deliberate bug, for the tests that prove the simulation catches it. `None` in every
    /// real run.
    pub planted_bug: Option<DynamoBug>,
}

/// Bugs the simulation's tests plant to prove it catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamoBug {
    /// Acknowledge what was stored without flushing it first.
    SkipFlush,
    /// Send each hint's handoff once and never again if it is lost (the first bug the
    /// leaderless simulation found).
    HandoffOnce,
}

impl Options {
    /// Checks the quorum settings: 1 ≤ R, W ≤ N ≤ members.
    ///
    /// # Errors
    /// A validation error naming the setting.
    pub fn validate(&self) -> Result<()> {
        let n = self.replicas;
        if n == 0 || n > self.members.len() {
            return Err(Error::validation(format!(
                "--replicas must be between 1 and the number of nodes ({}), not {n}",
                self.members.len()
            )));
        }
        for (flag, q) in [
            ("--read-quorum", self.read_quorum),
            ("--write-quorum", self.write_quorum),
        ] {
            if q == 0 || q > n {
                return Err(Error::validation(format!(
                    "{flag} must be between 1 and --replicas ({n}), not {q}"
                )));
            }
        }
        Ok(())
    }
}

/// Ranges of the ring the anti-entropy hash tree has leaves for.
const RANGES: u16 = 256;

/// The range of a ring point: its top eight bits.
fn range_of(point: u64) -> u16 {
    (point >> 56) as u16
}

/// The root of a hash tree: a hash of its leaves.
fn root_of(leaves: &[u64]) -> u64 {
    let bytes: Vec<u8> = leaves.iter().flat_map(|l| l.to_be_bytes()).collect();
    Md5Hash.point(&bytes)
}

/// A key's and its versions' hash, for the tree's leaves.
fn entry_hash(key: &Key, versions: &Siblings) -> Result<u64> {
    let mut bytes =
        postcard::to_stdvec(key).map_err(|e| Error::internal(format!("encode key: {e}")))?;
    bytes.extend(
        postcard::to_stdvec(versions)
            .map_err(|e| Error::internal(format!("encode versions: {e}")))?,
    );
    Ok(Md5Hash.point(&bytes))
}

/// Node-to-node messages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    /// Store `version` of `key` (for `hint_for` if set: keep it as a hint for that node).
    Store {
        /// The coordinator's request.
        req: ReqId,
        /// The key.
        key: Key,
        /// The version.
        version: Version,
        /// The unreachable node this one stands in for.
        hint_for: Option<NodeId>,
    },
    /// `Store` is durable here.
    Stored {
        /// The coordinator's request.
        req: ReqId,
    },
    /// Send what you hold of `key`.
    Fetch {
        /// The coordinator's request.
        req: ReqId,
        /// The key.
        key: Key,
    },
    /// What the sender holds of the key fetched.
    Fetched {
        /// The coordinator's request.
        req: ReqId,
        /// The versions held.
        versions: Siblings,
    },
    /// Send what you hold of `partition`.
    List {
        /// The coordinator's request.
        req: ReqId,
        /// The partition.
        partition: Vec<u8>,
    },
    /// Send what you hold, owned or as hints, of every partition whose bytes begin with
    /// `prefix` (a Scan of a table).
    Scan {
        /// The coordinator's request.
        req: ReqId,
        /// The partitions' common beginning.
        prefix: Vec<u8>,
    },
    /// What the sender holds of the partition listed.
    Listed {
        /// The coordinator's request.
        req: ReqId,
        /// Its keys with their versions.
        entries: Vec<(Key, Siblings)>,
    },
    /// A version stored for the receiver while it was unreachable.
    Handoff {
        /// The key.
        key: Key,
        /// The version.
        version: Version,
    },
    /// The handed-off version is durable at its owner.
    HandedOff {
        /// The key.
        key: Key,
        /// The version.
        version: Version,
    },
    /// Probe `target` for me and tell me if it answers (SWIM's indirect probe).
    PingReq {
        /// The peer the sender cannot reach.
        target: NodeId,
    },
    /// `target`, probed at the receiver's request, answered.
    IndirectAck {
        /// The peer that answered.
        target: NodeId,
    },
    /// A probe, carrying the sender's view of who is alive.
    Ping {
        /// The sender's view.
        view: Vec<Gossip>,
    },
    /// The answer to a probe, with the sender's view.
    Pong {
        /// The sender's view.
        view: Vec<Gossip>,
    },
    /// Send the change records `query` asks for.
    ReadChanges {
        /// The coordinator's request.
        req: ReqId,
        /// What is asked for.
        query: ChangeQuery,
    },
    /// The records asked for.
    Changes {
        /// The coordinator's request.
        req: ReqId,
        /// The page.
        page: ChangePage,
    },
    /// Anti-entropy, first step: the root of the sender's hash tree over the keys both hold.
    SyncRoot {
        /// The round (the sender's local time when it started).
        round: u64,
        /// The root hash.
        root: u64,
    },
    /// The roots matched: nothing to exchange.
    SyncEqual {
        /// The round.
        round: u64,
    },
    /// The roots differed: the receiver's leaves, one hash per range of the ring.
    SyncLeaves {
        /// The round.
        round: u64,
        /// One hash per range.
        leaves: Vec<u64>,
    },
    /// What the sender holds in the ranges whose leaves differed; answer with yours.
    SyncPush {
        /// The round.
        round: u64,
        /// The ranges.
        ranges: Vec<u16>,
        /// The sender's keys in them.
        entries: Vec<(Key, Siblings)>,
    },
    /// The answer to a push: what the sender holds in those ranges, after taking the push in.
    SyncPull {
        /// The round.
        round: u64,
        /// The sender's keys in the ranges pushed.
        entries: Vec<(Key, Siblings)>,
    },
}

/// One node's liveness as some node sees it, gossiped on probes (SWIM's dissemination): a
/// suspicion at incarnation *i* overrides "alive" at *i* or lower; "alive" at *i* overrides
/// anything lower. A node that hears itself suspected at its own incarnation or above refutes
/// it by moving to the next one, so a suspicion of a live node dies out, and a restarted node
/// (incarnation 0 again) is believed once it has refuted what others last heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gossip {
    /// The node.
    pub node: NodeId,
    /// Alive, or suspected.
    pub alive: bool,
    /// Its incarnation.
    pub incarnation: u64,
}

/// A finished request this node coordinated.
#[derive(Clone, Debug, PartialEq)]
pub enum Done {
    /// A read: the merged item and the versions behind it.
    Read {
        /// What the merger made of them.
        resolved: Resolved,
        /// The versions, merged from every replica that answered.
        versions: Siblings,
    },
    /// A partition's items (what the merger makes of each key's versions, deleted ones left
    /// out), in item order.
    Listed {
        /// The items.
        items: Vec<(Key, Resolved)>,
    },
    /// A page of one node's change records.
    Changes(ChangePage),
    /// A write, stored at W replicas: what the key held before (as read) and the new version.
    Written {
        /// The item before the write, as the quorum read saw it.
        old: Option<Item>,
        /// The version written.
        version: Version,
    },
}

/// What a write does to the item it read, decided by the caller (conditions, updates).
pub type WriteFn = Box<dyn FnOnce(Option<&Item>) -> Result<Option<Item>> + Send>;

enum Phase {
    /// Reading: replies so far.
    Reading {
        replies: BTreeMap<NodeId, Siblings>,
        want: usize,
        then: Option<WriteFn>,
        now_ms: u64,
    },
    /// Listing a partition: replies so far.
    Listing {
        replies: BTreeMap<NodeId, Vec<(Key, Siblings)>>,
        want: usize,
    },
    /// Waiting for a node's change records.
    Changes {
        /// The node asked.
        node: NodeId,
    },
    /// Writing: acknowledgements so far.
    Writing {
        acks: BTreeSet<NodeId>,
        /// Targets and, for stand-ins, whom they stand in for.
        targets: BTreeMap<NodeId, Option<NodeId>>,
        old: Option<Item>,
        version: Version,
    },
}

struct Pending {
    key: Key,
    phase: Phase,
    deadline: u64,
}

/// What [`DynamoNode::ready`] hands the driver: everything here may go out now.
#[derive(Default)]
pub struct Ready {
    /// Messages to peers.
    pub messages: Vec<(NodeId, Msg)>,
    /// Finished requests.
    pub done: Vec<(ReqId, Result<Done>)>,
    /// What happened, for `events`.
    pub events: Vec<NodeEvent>,
    /// The versions this node created as coordinator since the last call (for observers such
    /// as the simulation's checker).
    pub created: Vec<(Key, Version)>,
}

/// One leaderless node. See the module documentation.
pub struct DynamoNode<S: VersionStore> {
    opts: Options,
    ring: Ring,
    merger: Box<dyn Merger>,
    store: S,
    ticks: u64,
    next_req: ReqId,
    /// Hybrid clock: the largest stamp this node issued or saw.
    last_stamp: u64,
    pending: BTreeMap<ReqId, Pending>,
    /// Messages that may leave now.
    out: Vec<(NodeId, Msg)>,
    /// Messages to this node itself, handled in [`DynamoNode::ready`].
    local: VecDeque<Msg>,
    dirty: bool,
    done: Vec<(ReqId, Result<Done>)>,
    events: Vec<NodeEvent>,
    created: Vec<(Key, Version)>,
    /// Per peer: the tick of the oldest request it has not answered, if any.
    waiting_on: BTreeMap<NodeId, u64>,
    suspected: BTreeSet<NodeId>,
    /// The incarnation last heard of each peer.
    incarnations: BTreeMap<NodeId, u64>,
    /// This node's incarnation.
    incarnation: u64,
    /// Peers probed indirectly on this node's behalf, with the tick it asked.
    indirect: BTreeMap<NodeId, u64>,
    /// Peers this node probes for others: the tick it was asked, and who asked.
    relaying: BTreeMap<NodeId, (u64, BTreeSet<NodeId>)>,
    /// Peers that answer this node only through others, as last heard.
    reached_indirectly: BTreeSet<NodeId>,
    probe_next: usize,
    /// The wall clock as of the last tick, in ms.
    now_ms: u64,
    sync_next: usize,
    /// Per peer: when the latest anti-entropy round with it that completed had started.
    synced: BTreeMap<NodeId, u64>,
    /// When this node first saw each tombstone it holds (since it started).
    tombstones_seen: BTreeMap<Key, u64>,
    /// Hints whose handoff is in flight, so they are not sent again every tick.
    /// Hints whose handoff is in flight (owner, key, clock), with the tick each was sent at:
    /// one not confirmed within `suspect_after` ticks is sent again.
    handing_off: BTreeMap<(NodeId, Key, VectorClock), u64>,
}

impl<S: VersionStore> DynamoNode<S> {
    /// A node over `store`.
    ///
    /// # Errors
    /// Invalid options.
    pub fn new(opts: Options, merger: Box<dyn Merger>, store: S) -> Result<Self> {
        opts.validate()?;
        let ring = Ring::of(opts.members.iter().copied());
        Ok(DynamoNode {
            opts,
            ring,
            merger,
            store,
            ticks: 0,
            next_req: 1,
            last_stamp: 0,
            pending: BTreeMap::new(),
            out: Vec::new(),
            local: VecDeque::new(),
            dirty: false,
            done: Vec::new(),
            events: Vec::new(),
            created: Vec::new(),
            waiting_on: BTreeMap::new(),
            suspected: BTreeSet::new(),
            incarnations: BTreeMap::new(),
            incarnation: 0,
            indirect: BTreeMap::new(),
            relaying: BTreeMap::new(),
            reached_indirectly: BTreeSet::new(),
            probe_next: 0,
            now_ms: 0,
            sync_next: 0,
            synced: BTreeMap::new(),
            tombstones_seen: BTreeMap::new(),
            handing_off: BTreeMap::new(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.opts.id
    }

    /// Every member, this node included.
    pub fn members(&self) -> &[NodeId] {
        &self.opts.members
    }

    /// The store (for status and tests).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The peers this node currently suspects.
    pub fn suspected(&self) -> &BTreeSet<NodeId> {
        &self.suspected
    }

    /// The nodes a request on `key` goes to now: the first N of the ring walk that are not
    /// suspected, each with the unreachable node of the first N it stands in for, if any.
    pub fn targets(&self, partition: &[u8]) -> BTreeMap<NodeId, Option<NodeId>> {
        let walk = self.ring.walk(partition);
        let n = self.opts.replicas;
        let down: Vec<NodeId> = walk
            .iter()
            .take(n)
            .copied()
            .filter(|m| self.is_suspected(*m))
            .collect();
        let mut stand_ins = down.into_iter();
        let mut targets = BTreeMap::new();
        for (i, &m) in walk.iter().enumerate() {
            if targets.len() == n {
                break;
            }
            if self.is_suspected(m) {
                continue;
            }
            let hint_for = if i < n { None } else { stand_ins.next() };
            targets.insert(m, hint_for);
        }
        targets
    }

    fn is_suspected(&self, node: NodeId) -> bool {
        node != self.opts.id && self.suspected.contains(&node)
    }

    /// Starts a read of `key`: from R replicas, or from every live one of the first N if
    /// `all` (a consistent read).
    pub fn get(&mut self, key: Key, all: bool) -> ReqId {
        self.start_read(key, all, None, 0)
    }

    /// Starts a write of `key`: a quorum read, then `write` decides the new item (`None`
    /// deletes: a tombstone), then W replicas store it. `now_ms` is the wall clock.
    pub fn put(&mut self, key: Key, now_ms: u64, write: WriteFn) -> ReqId {
        self.start_read(key, false, Some(write), now_ms)
    }

    /// A new read's id, the nodes it asks (the first N live ones of the ring walk) and how
    /// many answers it waits for: R, or all of them if `all`.
    fn read_plan(&mut self, partition: &[u8], all: bool) -> (ReqId, Vec<NodeId>, usize) {
        let req = self.next_req;
        self.next_req += 1;
        let asked: Vec<NodeId> = self.targets(partition).into_keys().collect();
        let want = if all {
            asked.len()
        } else {
            self.opts.read_quorum.min(asked.len())
        };
        (req, asked, want)
    }

    /// Starts a listing of `partition`'s items, from R replicas or every live one of the
    /// first N if `all`. Nothing is repaired (anti-entropy does that).
    pub fn list(&mut self, partition: Vec<u8>, all: bool) -> ReqId {
        let (req, asked, want) = self.read_plan(&partition, all);
        for &to in &asked {
            self.send(
                to,
                Msg::List {
                    req,
                    partition: partition.clone(),
                },
            );
        }
        self.track(
            req,
            partition,
            Phase::Listing {
                replies: BTreeMap::new(),
                want: want.max(1),
            },
        );
        req
    }

    /// Starts a scan of every partition whose bytes begin with `prefix`: every node that is
    /// not suspected answers with what it holds there (each holds a part), and the answers are
    /// merged key by key. Nothing is repaired.
    pub fn scan(&mut self, prefix: Vec<u8>) -> ReqId {
        let req = self.next_req;
        self.next_req += 1;
        let asked: Vec<NodeId> = self
            .opts
            .members
            .iter()
            .copied()
            .filter(|m| !self.is_suspected(*m))
            .collect();
        for &to in &asked {
            self.send(
                to,
                Msg::Scan {
                    req,
                    prefix: prefix.clone(),
                },
            );
        }
        self.track(
            req,
            prefix,
            Phase::Listing {
                replies: BTreeMap::new(),
                want: asked.len().max(1),
            },
        );
        req
    }

    /// Starts a read of `node`'s change records (one shard of a stream). Fails at once if
    /// `node` is suspected, or at the deadline if it does not answer.
    pub fn changes(&mut self, node: NodeId, query: ChangeQuery) -> ReqId {
        let req = self.next_req;
        self.next_req += 1;
        if self.is_suspected(node) || !self.opts.members.contains(&node) {
            self.done.push((
                req,
                Err(Error::Unavailable(format!(
                    "node {node} holds that shard and is not reachable from node {}",
                    self.opts.id
                ))),
            ));
            return req;
        }
        let partition = query.prefix.clone();
        self.send(node, Msg::ReadChanges { req, query });
        self.track(req, partition, Phase::Changes { node });
        req
    }

    /// Waits for the answers to request `req` about `partition` until its deadline.
    fn track(&mut self, req: ReqId, partition: Vec<u8>, phase: Phase) {
        self.pending.insert(
            req,
            Pending {
                key: Key {
                    partition,
                    item: Vec::new(),
                },
                phase,
                deadline: self.ticks + self.opts.request_ticks,
            },
        );
    }

    fn on_listed(&mut self, from: NodeId, req: ReqId, entries: Vec<(Key, Siblings)>) {
        let Some(p) = self.pending.get_mut(&req) else {
            return;
        };
        let Phase::Listing { replies, want } = &mut p.phase else {
            return;
        };
        replies.insert(from, entries);
        if replies.len() < *want {
            return;
        }
        let Some(Pending {
            phase: Phase::Listing { replies, .. },
            ..
        }) = self.pending.remove(&req)
        else {
            return;
        };
        let mut merged: BTreeMap<Key, Siblings> = BTreeMap::new();
        for (key, versions) in replies.into_values().flatten() {
            let held = merged.entry(key).or_default();
            for v in versions.versions() {
                self.last_stamp = self.last_stamp.max(v.stamp);
                self.merger.receive(held, v.clone());
            }
        }
        let items = merged
            .into_iter()
            .map(|(key, versions)| (key, self.merger.resolve(&versions)))
            .filter(|(_, resolved)| resolved.item.is_some())
            .collect();
        self.done.push((req, Ok(Done::Listed { items })));
    }

    fn start_read(&mut self, key: Key, all: bool, then: Option<WriteFn>, now_ms: u64) -> ReqId {
        let (req, asked, want) = self.read_plan(&key.partition, all);
        for &to in &asked {
            self.send(
                to,
                Msg::Fetch {
                    req,
                    key: key.clone(),
                },
            );
        }
        self.pending.insert(
            req,
            Pending {
                key,
                phase: Phase::Reading {
                    replies: BTreeMap::new(),
                    want: want.max(1),
                    then,
                    now_ms,
                },
                deadline: self.ticks + self.opts.request_ticks,
            },
        );
        req
    }

    fn send(&mut self, to: NodeId, msg: Msg) {
        if to == self.opts.id {
            self.local.push_back(msg);
        } else {
            if !matches!(
                msg,
                Msg::Stored { .. }
                    | Msg::Changes { .. }
                    | Msg::Fetched { .. }
                    | Msg::Listed { .. }
                    | Msg::Pong { .. }
                    | Msg::HandedOff { .. }
            ) {
                self.waiting_on.entry(to).or_insert(self.ticks);
            }
            self.out.push((to, msg));
        }
    }

    /// Handles a message from `from`.
    ///
    /// # Errors
    /// Storage faults: the node must stop.
    pub fn step(&mut self, from: NodeId, msg: Msg) -> Result<()> {
        if from != self.opts.id {
            self.waiting_on.remove(&from);
            self.indirect.remove(&from);
            self.reached_indirectly.remove(&from);
            // Those who asked this node to probe `from` learn that it answered.
            if let Some((_, asked)) = self.relaying.remove(&from) {
                for r in asked {
                    self.out.push((r, Msg::IndirectAck { target: from }));
                }
            }
            if self.suspected.remove(&from) {
                self.events.push(NodeEvent::new(
                    "peer_alive",
                    format!("node {} hears from node {from} again", self.opts.id),
                ));
            }
        }
        match msg {
            Msg::Store {
                req,
                key,
                version,
                hint_for,
            } => {
                self.observe(version.stamp);
                match hint_for {
                    Some(owner) if owner != self.opts.id => {
                        self.store.add_hint(owner, &key, &version)?;
                        self.events.push(NodeEvent::new(
                            "hint_stored",
                            format!(
                                "node {} keeps a write for unreachable node {owner}",
                                self.opts.id
                            ),
                        ));
                    }
                    _ => self.receive(&key, version)?,
                }
                self.dirty = true;
                self.reply(from, Msg::Stored { req });
            }
            Msg::Stored { req } => self.on_stored(from, req),
            Msg::Fetch { req, key } => {
                // A stand-in answers with what it keeps for the unreachable owners too (as
                // Riak's fallback replicas do): a read that reaches only stand-ins still sees
                // the writes they took.
                let mut versions = self.store.get(&key)?;
                for v in self.store.hinted(&self.opts.members, &key)? {
                    self.merger.receive(&mut versions, v);
                }
                self.reply(from, Msg::Fetched { req, versions });
            }
            Msg::Fetched { req, versions } => self.on_fetched(from, req, versions)?,
            Msg::List { req, partition } => {
                let entries = self.store.partition(&partition)?;
                self.reply(from, Msg::Listed { req, entries });
            }
            Msg::Scan { req, prefix } => {
                let mut held: BTreeMap<Key, Siblings> = self
                    .store
                    .entries()?
                    .into_iter()
                    .filter(|(k, _)| k.partition.starts_with(&prefix))
                    .collect();
                for (_, key, version) in self.store.hints()? {
                    if key.partition.starts_with(&prefix) {
                        self.merger.receive(held.entry(key).or_default(), version);
                    }
                }
                self.reply(
                    from,
                    Msg::Listed {
                        req,
                        entries: held.into_iter().collect(),
                    },
                );
            }
            Msg::Listed { req, entries } => self.on_listed(from, req, entries),
            Msg::ReadChanges { req, query } => {
                let page = self.store.changes(&query)?;
                self.reply(from, Msg::Changes { req, page });
            }
            Msg::Changes { req, page } => {
                if matches!(
                    self.pending.get(&req),
                    Some(Pending { phase: Phase::Changes { node }, .. }) if *node == from
                ) {
                    self.pending.remove(&req);
                    self.done.push((req, Ok(Done::Changes(page))));
                }
            }
            Msg::Handoff { key, version } => {
                self.observe(version.stamp);
                self.receive(&key, version.clone())?;
                self.dirty = true;
                self.reply(from, Msg::HandedOff { key, version });
            }
            Msg::HandedOff { key, version } => {
                self.store.remove_hint(from, &key, &version)?;
                self.handing_off.remove(&(from, key, version.clock));
                self.dirty = true;
                self.events.push(NodeEvent::new(
                    "hint_handed_off",
                    format!("node {} handed a write back to node {from}", self.opts.id),
                ));
            }
            Msg::Ping { view } => {
                self.hear(from, &view);
                let view = self.view();
                self.reply(from, Msg::Pong { view });
            }
            Msg::Pong { view } => self.hear(from, &view),
            Msg::PingReq { target } => {
                if target == self.opts.id {
                    self.reply(from, Msg::IndirectAck { target });
                } else if self.opts.members.contains(&target) {
                    let ticks = self.ticks;
                    let entry = self
                        .relaying
                        .entry(target)
                        .or_insert((ticks, BTreeSet::new()));
                    entry.1.insert(from);
                    // Not tracked as a request of this node's own: a helper that cannot reach
                    // the target either does not suspect it on that account alone.
                    let view = self.view();
                    self.out.push((target, Msg::Ping { view }));
                }
            }
            Msg::IndirectAck { target } => {
                let was_late = self.waiting_on.remove(&target).is_some();
                let was_probed = self.indirect.remove(&target).is_some();
                if (was_late || was_probed) && self.reached_indirectly.insert(target) {
                    self.events.push(NodeEvent::new(
                        "peer_reached_indirectly",
                        format!(
                            "node {} cannot reach node {target}, but node {from} can: not suspected",
                            self.opts.id
                        ),
                    ));
                }
                if self.suspected.remove(&target) {
                    self.events.push(NodeEvent::new(
                        "peer_alive",
                        format!(
                            "node {} learns through node {from} that node {target} answers",
                            self.opts.id
                        ),
                    ));
                }
            }
            Msg::SyncRoot { round, root } => {
                let leaves = self.leaves(from)?;
                if root_of(&leaves) == root {
                    self.reply(from, Msg::SyncEqual { round });
                } else {
                    self.reply(from, Msg::SyncLeaves { round, leaves });
                }
            }
            Msg::SyncEqual { round } => self.synced_with(from, round),
            Msg::SyncLeaves { round, leaves } => {
                let mine = self.leaves(from)?;
                let ranges: Vec<u16> = (0..RANGES)
                    .filter(|&r| mine.get(r as usize) != leaves.get(r as usize))
                    .collect();
                let entries = self.shared_in(from, &ranges)?;
                self.send(
                    from,
                    Msg::SyncPush {
                        round,
                        ranges,
                        entries,
                    },
                );
            }
            Msg::SyncPush {
                round,
                ranges,
                entries,
            } => {
                let repaired = self.take_in(entries)?;
                self.note_repairs(from, repaired);
                let entries = self.shared_in(from, &ranges)?;
                self.reply(from, Msg::SyncPull { round, entries });
            }
            Msg::SyncPull { round, entries } => {
                let repaired = self.take_in(entries)?;
                self.note_repairs(from, repaired);
                self.synced_with(from, round);
            }
        }
        Ok(())
    }

    fn reply(&mut self, to: NodeId, msg: Msg) {
        if to == self.opts.id {
            self.local.push_back(msg);
        } else {
            self.out.push((to, msg));
        }
    }

    fn observe(&mut self, stamp: u64) {
        self.last_stamp = self.last_stamp.max(stamp);
    }

    /// True if this node is `key`'s primary: the first of its preference list, which records
    /// its changes.
    fn is_primary(&self, key: &Key) -> bool {
        self.ring.walk(&key.partition).first() == Some(&self.opts.id)
    }

    /// Receives a version into this replica, reporting a conflict, and recording a change of
    /// the resolved item if this node is the key's primary.
    fn receive(&mut self, key: &Key, version: Version) -> Result<()> {
        let mut held = self.store.get(key)?;
        let before = self
            .is_primary(key)
            .then(|| self.merger.resolve(&held).item);
        let stamp = version.stamp;
        let received = self.merger.receive(&mut held, version);
        if received == Received::Stale {
            return Ok(());
        }
        self.store.put(key, &held)?;
        if let Some(old) = before {
            let new = self.merger.resolve(&held).item;
            if new != old {
                self.store.record(Change {
                    key: key.clone(),
                    recorded_ms: self.now_ms,
                    stamp,
                    old,
                    new,
                })?;
            }
        }
        match received {
            Received::Stale | Received::Newer => {}
            Received::Conflict => {
                self.events.push(NodeEvent::new(
                    "conflict_detected",
                    format!(
                        "node {} holds concurrent versions of a key ({} merger)",
                        self.opts.id,
                        self.merger.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn on_fetched(&mut self, from: NodeId, req: ReqId, versions: Siblings) -> Result<()> {
        let Some(p) = self.pending.get_mut(&req) else {
            return Ok(());
        };
        let Phase::Reading { replies, want, .. } = &mut p.phase else {
            return Ok(());
        };
        replies.insert(from, versions);
        if replies.len() < *want {
            return Ok(());
        }
        let Some(p) = self.pending.remove(&req) else {
            return Ok(());
        };
        let Phase::Reading {
            replies,
            then,
            now_ms,
            ..
        } = p.phase
        else {
            return Ok(());
        };
        let mut merged = Siblings::new();
        for versions in replies.values() {
            for v in versions.versions() {
                self.observe(v.stamp);
                self.merger.receive(&mut merged, v.clone());
            }
        }
        // Read repair: every owner that answered without everything gets what it lacked (a
        // stand-in that answered keeps hints, not data, so it is left alone).
        let owners = self
            .ring
            .preference_list(&p.key.partition, self.opts.replicas);
        for (&node, versions) in replies.iter().filter(|(n, _)| owners.contains(n)) {
            let mut theirs = versions.clone();
            for v in merged.versions() {
                if self.merger.receive(&mut theirs, v.clone()) != Received::Stale {
                    self.send(
                        node,
                        Msg::Store {
                            req: 0,
                            key: p.key.clone(),
                            version: v.clone(),
                            hint_for: None,
                        },
                    );
                }
            }
        }
        let resolved = self.merger.resolve(&merged);
        match then {
            None => self.done.push((
                req,
                Ok(Done::Read {
                    resolved,
                    versions: merged,
                }),
            )),
            Some(write) => match write(resolved.item.as_ref()) {
                Err(e) => self.done.push((req, Err(e))),
                Ok(item) => self.start_write(req, p.key, &merged, resolved.item, item, now_ms)?,
            },
        }
        Ok(())
    }

    fn start_write(
        &mut self,
        req: ReqId,
        key: Key,
        context: &Siblings,
        old: Option<Item>,
        item: Option<Item>,
        now_ms: u64,
    ) -> Result<()> {
        let mut clock = context.context();
        clock.record(self.opts.id, self.store.next_counter()?);
        self.dirty = true;
        let stamp = now_ms.max(context.max_stamp() + 1).max(self.last_stamp + 1);
        self.last_stamp = stamp;
        let version = Version {
            clock,
            stamp,
            writer: self.opts.id,
            item,
        };
        self.created.push((key.clone(), version.clone()));
        let targets = self.targets(&key.partition);
        for (&to, &hint_for) in &targets {
            self.send(
                to,
                Msg::Store {
                    req,
                    key: key.clone(),
                    version: version.clone(),
                    hint_for,
                },
            );
        }
        self.pending.insert(
            req,
            Pending {
                key,
                phase: Phase::Writing {
                    acks: BTreeSet::new(),
                    targets,
                    old,
                    version,
                },
                deadline: self.ticks + self.opts.request_ticks,
            },
        );
        Ok(())
    }

    fn on_stored(&mut self, from: NodeId, req: ReqId) {
        let Some(p) = self.pending.get_mut(&req) else {
            return;
        };
        let Phase::Writing { acks, .. } = &mut p.phase else {
            return;
        };
        acks.insert(from);
        if acks.len() < self.opts.write_quorum {
            return;
        }
        if let Some(Pending {
            phase: Phase::Writing { old, version, .. },
            ..
        }) = self.pending.remove(&req)
        {
            self.done.push((req, Ok(Done::Written { old, version })));
        }
    }

    /// Advances time by one tick: probes, suspicion, request deadlines, retries to stand-ins,
    /// and handoffs to owners that answer again.
    ///
    /// # Errors
    /// Storage faults.
    pub fn tick(&mut self, now_ms: u64) -> Result<()> {
        self.ticks += 1;
        self.now_ms = self.now_ms.max(now_ms);
        self.probe();
        self.suspect();
        self.retry_and_expire();
        // Hints are read from storage: look every `suspect_after` ticks, the retry interval.
        if self.ticks.is_multiple_of(self.opts.suspect_after.max(1)) {
            self.hand_off()?;
        }
        if self.opts.sync_every > 0 && self.ticks.is_multiple_of(self.opts.sync_every) {
            self.start_sync()?;
            self.collect_tombstones()?;
            let before = self.now_ms.saturating_sub(self.opts.change_retention_ms);
            if self.store.trim_changes(before)? > 0 {
                self.dirty = true;
            }
        }
        Ok(())
    }

    /// Starts an anti-entropy round with the next peer that is not suspected.
    fn start_sync(&mut self) -> Result<()> {
        let peers: Vec<NodeId> = self
            .opts
            .members
            .iter()
            .copied()
            .filter(|&m| m != self.opts.id && !self.is_suspected(m))
            .collect();
        if peers.is_empty() {
            return Ok(());
        }
        let peer = peers[self.sync_next % peers.len()];
        self.sync_next += 1;
        let root = root_of(&self.leaves(peer)?);
        self.send(
            peer,
            Msg::SyncRoot {
                round: self.now_ms,
                root,
            },
        );
        Ok(())
    }

    fn synced_with(&mut self, peer: NodeId, round: u64) {
        let at = self.synced.entry(peer).or_insert(0);
        *at = (*at).max(round);
    }

    fn note_repairs(&mut self, peer: NodeId, repaired: usize) {
        if repaired > 0 {
            self.events.push(NodeEvent::new(
                "anti_entropy_repaired",
                format!(
                    "node {} took {repaired} newer key(s) from node {peer} by anti-entropy",
                    self.opts.id
                ),
            ));
        }
    }

    /// True if `peer` is one of the first N of `key`'s ring walk (ignoring suspicion: what
    /// it should hold, not who stands in now).
    fn owns(&self, peer: NodeId, key: &Key) -> bool {
        self.ring
            .preference_list(&key.partition, self.opts.replicas)
            .contains(&peer)
    }

    /// The keys this node holds that `peer` should hold too, in the given ranges.
    fn shared_in(&self, peer: NodeId, ranges: &[u16]) -> Result<Vec<(Key, Siblings)>> {
        Ok(self
            .store
            .entries()?
            .into_iter()
            .filter(|(key, _)| {
                self.owns(peer, key)
                    && ranges.contains(&range_of(self.ring.point_of(&key.partition)))
            })
            .collect())
    }

    /// The leaves of this node's hash tree over the keys `peer` should hold too: one hash per
    /// range of the ring, each the XOR of its keys' hashes (so order does not matter).
    fn leaves(&self, peer: NodeId) -> Result<Vec<u64>> {
        let mut leaves = vec![0u64; RANGES as usize];
        for (key, versions) in self.store.entries()? {
            if !self.owns(peer, &key)
                || !self.owns(self.opts.id, &key)
                || self.expired_tombstone(&versions)
            {
                continue;
            }
            let range = range_of(self.ring.point_of(&key.partition));
            leaves[range as usize] ^= entry_hash(&key, &versions)?;
        }
        Ok(leaves)
    }

    /// Receives every version of `entries`; returns how many keys changed.
    fn take_in(&mut self, entries: Vec<(Key, Siblings)>) -> Result<usize> {
        let mut changed = 0;
        for (key, versions) in entries {
            let before = self.store.get(&key)?;
            // A deletion past its grace period for a key not held here changes nothing a read
            // could see, and taking it in would undo this node's own collection of it.
            if before.is_empty() && self.expired_tombstone(&versions) {
                continue;
            }
            for v in versions.versions() {
                self.observe(v.stamp);
                self.receive(&key, v.clone())?;
            }
            if self.store.get(&key)? != before {
                changed += 1;
                self.dirty = true;
            }
        }
        Ok(changed)
    }

    /// True for deletions only, all past the grace period.
    fn expired_tombstone(&self, versions: &Siblings) -> bool {
        !versions.is_empty()
            && versions.versions().iter().all(Version::is_tombstone)
            && versions
                .max_stamp()
                .saturating_add(self.opts.tombstone_grace_ms)
                < self.now_ms
    }

    /// Forgets tombstones past their grace period that every other owner is known to hold: an
    /// anti-entropy round with each of them completed that started after this node first saw
    /// the tombstone.
    fn collect_tombstones(&mut self) -> Result<()> {
        let now = self.now_ms;
        let mut collected = 0;
        let mut still = BTreeMap::new();
        for (key, versions) in self.store.entries()? {
            if versions.is_empty() || versions.versions().iter().any(|v| !v.is_tombstone()) {
                continue;
            }
            let seen = self.tombstones_seen.get(&key).copied().unwrap_or(now);
            let old_enough = versions
                .max_stamp()
                .saturating_add(self.opts.tombstone_grace_ms)
                < now
                && seen.saturating_add(self.opts.tombstone_grace_ms) < now;
            let confirmed = self
                .ring
                .preference_list(&key.partition, self.opts.replicas)
                .into_iter()
                .filter(|&o| o != self.opts.id)
                .all(|o| self.synced.get(&o).is_some_and(|&at| at > seen));
            if old_enough && confirmed {
                self.store.remove(&key)?;
                self.dirty = true;
                collected += 1;
            } else {
                still.insert(key, seen);
            }
        }
        self.tombstones_seen = still;
        if collected > 0 {
            self.events.push(NodeEvent::new(
                "tombstones_collected",
                format!(
                    "node {} forgot {collected} deletion(s) past their grace period",
                    self.opts.id
                ),
            ));
        }
        Ok(())
    }

    fn probe(&mut self) {
        let peers: Vec<NodeId> = self
            .opts
            .members
            .iter()
            .copied()
            .filter(|&m| m != self.opts.id)
            .collect();
        if peers.is_empty() {
            return;
        }
        let to = peers[self.probe_next % peers.len()];
        self.probe_next += 1;
        let view = self.view();
        self.send(to, Msg::Ping { view });
    }

    /// This node's view of who is alive, itself included.
    pub fn view(&self) -> Vec<Gossip> {
        let mut view = vec![Gossip {
            node: self.opts.id,
            alive: true,
            incarnation: self.incarnation,
        }];
        for &m in &self.opts.members {
            if m != self.opts.id {
                view.push(Gossip {
                    node: m,
                    alive: !self.suspected.contains(&m),
                    incarnation: self.incarnations.get(&m).copied().unwrap_or(0),
                });
            }
        }
        view
    }

    /// Takes in a peer's view (see [`Gossip`] for the precedence).
    fn hear(&mut self, from: NodeId, view: &[Gossip]) {
        for g in view {
            if g.node == self.opts.id {
                if !g.alive && g.incarnation >= self.incarnation {
                    self.incarnation = g.incarnation + 1;
                    self.events.push(NodeEvent::new(
                        "suspicion_refuted",
                        format!(
                            "node {} heard from node {from} that it was suspected, and refuted it \
                             (incarnation {})",
                            self.opts.id, self.incarnation
                        ),
                    ));
                }
                continue;
            }
            if !self.opts.members.contains(&g.node) {
                continue;
            }
            let known = self.incarnations.get(&g.node).copied().unwrap_or(0);
            let suspected = self.suspected.contains(&g.node);
            if g.alive && g.incarnation > known {
                self.incarnations.insert(g.node, g.incarnation);
                if self.suspected.remove(&g.node) {
                    self.events.push(NodeEvent::new(
                        "peer_alive",
                        format!(
                            "node {} learns from node {from} that node {} is alive",
                            self.opts.id, g.node
                        ),
                    ));
                }
            } else if !g.alive && g.incarnation >= known && g.node != from {
                self.incarnations.insert(g.node, g.incarnation);
                if !suspected {
                    self.suspected.insert(g.node);
                    self.events.push(NodeEvent::new(
                        "peer_suspected",
                        format!(
                            "node {} suspects node {} on node {from}'s word",
                            self.opts.id, g.node
                        ),
                    ));
                }
            }
        }
    }

    fn suspect(&mut self) {
        let late: Vec<(NodeId, u64)> = self
            .waiting_on
            .iter()
            .filter(|&(_, &since)| self.ticks.saturating_sub(since) >= self.opts.suspect_after)
            .map(|(&n, &since)| (n, since))
            .collect();
        for (node, since) in late {
            if self.suspected.contains(&node) {
                continue;
            }
            // A probe asked for before this silence began is no answer to it.
            if self.indirect.get(&node).is_some_and(|&asked| asked < since) {
                self.indirect.remove(&node);
            }
            match self.indirect.get(&node) {
                // First ask others to probe it (SWIM's indirect probe).
                None => {
                    let helpers = self.helpers_for(node);
                    if !helpers.is_empty() {
                        for h in helpers {
                            self.out.push((h, Msg::PingReq { target: node }));
                        }
                        self.indirect.insert(node, self.ticks);
                        continue;
                    }
                }
                Some(&asked) if self.ticks.saturating_sub(asked) < self.indirect_patience() => {
                    continue;
                }
                Some(_) => {}
            }
            self.indirect.remove(&node);
            self.suspected.insert(node);
            self.events.push(NodeEvent::new(
                "peer_suspected",
                format!(
                    "node {} suspects node {node}: no answer for {} ticks, directly or through \
                     others",
                    self.opts.id, self.opts.suspect_after
                ),
            ));
        }
        // Probes for others that the target never answered are dropped.
        let ticks = self.ticks;
        let patience = self.opts.suspect_after;
        self.relaying
            .retain(|_, (asked, _)| ticks.saturating_sub(*asked) < patience);
    }

    /// Ticks an indirect probe waits for an answer: half of `suspect_after` (helpers answer
    /// within a round trip or two when the target is up).
    fn indirect_patience(&self) -> u64 {
        (self.opts.suspect_after / 2).max(1)
    }

    /// Up to [`INDIRECT_HELPERS`] peers, other than `target`, not suspected, to probe
    /// `target`: the next ones in the probing order.
    fn helpers_for(&self, target: NodeId) -> Vec<NodeId> {
        let peers: Vec<NodeId> = self
            .opts
            .members
            .iter()
            .copied()
            .filter(|&m| m != self.opts.id && m != target && !self.suspected.contains(&m))
            .collect();
        (0..peers.len().min(INDIRECT_HELPERS))
            .map(|i| peers[(self.probe_next + i) % peers.len()])
            .collect()
    }

    fn retry_and_expire(&mut self) {
        let mut resend = Vec::new();
        let mut expired = Vec::new();
        for (&req, p) in &mut self.pending {
            if self.ticks >= p.deadline {
                expired.push(req);
                continue;
            }
            // A write whose targets include a suspected node goes to the next stand-in.
            if let Phase::Writing { targets, acks, .. } = &p.phase {
                let lost: Vec<NodeId> = targets
                    .keys()
                    .copied()
                    .filter(|t| !acks.contains(t) && self.suspected.contains(t))
                    .collect();
                if !lost.is_empty() {
                    resend.push((req, lost));
                }
            }
        }
        for req in expired {
            if let Some(p) = self.pending.remove(&req) {
                let err = match &p.phase {
                    Phase::Reading {
                        replies,
                        want,
                        then,
                        ..
                    } => {
                        let what = format!(
                            "read quorum not reached: {} of {want} replicas answered in time",
                            replies.len()
                        );
                        // A write still reading has written nothing: safe to retry.
                        if then.is_some() {
                            Error::NotApplied(format!("write not performed: {what}"))
                        } else {
                            Error::Unavailable(what)
                        }
                    }
                    Phase::Listing { replies, want } => Error::Unavailable(format!(
                        "read quorum not reached: {} of {want} replicas answered in time",
                        replies.len()
                    )),
                    Phase::Changes { node } => Error::Unavailable(format!(
                        "node {node}, which holds that shard, did not answer in time"
                    )),
                    Phase::Writing { acks, .. } => Error::Unavailable(format!(
                        "write quorum not reached: {} of {} replicas stored it in time; \
                         the write may still reach the others",
                        acks.len(),
                        self.opts.write_quorum
                    )),
                };
                self.done.push((req, Err(err)));
            }
        }
        for (req, lost) in resend {
            self.resend_to_stand_ins(req, lost);
        }
    }

    fn resend_to_stand_ins(&mut self, req: ReqId, lost: Vec<NodeId>) {
        let Some(p) = self.pending.get(&req) else {
            return;
        };
        let Phase::Writing {
            targets, version, ..
        } = &p.phase
        else {
            return;
        };
        let key = p.key.clone();
        let version = version.clone();
        let mut targets = targets.clone();
        let walk = self.ring.walk(&key.partition);
        for node in lost {
            let owner = targets.remove(&node).flatten().unwrap_or(node);
            let stand_in = walk
                .iter()
                .copied()
                .find(|m| !targets.contains_key(m) && !self.is_suspected(*m) && *m != node);
            if let Some(s) = stand_in {
                targets.insert(s, Some(owner));
                self.send(
                    s,
                    Msg::Store {
                        req,
                        key: key.clone(),
                        version: version.clone(),
                        hint_for: Some(owner),
                    },
                );
            }
        }
        if let Some(Pending {
            phase: Phase::Writing { targets: t, .. },
            ..
        }) = self.pending.get_mut(&req)
        {
            *t = targets;
        }
    }

    fn hand_off(&mut self) -> Result<()> {
        for (owner, key, version) in self.store.hints()? {
            if self.is_suspected(owner) {
                continue;
            }
            let id = (owner, key, version.clock.clone());
            // Sent and not yet confirmed: wait, then send again (the message or its
            // confirmation may have been lost).
            if let Some(&sent) = self.handing_off.get(&id)
                && (self.ticks.saturating_sub(sent) < self.opts.suspect_after
                    || self.opts.planted_bug == Some(DynamoBug::HandoffOnce))
            {
                continue;
            }
            self.handing_off.insert(id.clone(), self.ticks);
            self.send(owner, Msg::Handoff { key: id.1, version });
        }
        Ok(())
    }

    /// Handles the messages the node sent itself, makes what it stored durable (one flush for
    /// the batch), and only then hands out messages, finished requests and events: nothing
    /// this node acknowledges leaves before it is on disk.
    ///
    /// # Errors
    /// Storage faults: the node must stop.
    pub fn ready(&mut self) -> Result<Ready> {
        while let Some(msg) = self.local.pop_front() {
            self.step(self.opts.id, msg)?;
        }
        if self.dirty && self.opts.planted_bug != Some(DynamoBug::SkipFlush) {
            self.store.flush()?;
            self.dirty = false;
        }
        Ok(Ready {
            messages: std::mem::take(&mut self.out),
            done: std::mem::take(&mut self.done),
            events: std::mem::take(&mut self.events),
            created: std::mem::take(&mut self.created),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::merge::{LastWriterWins, UnionMerge};
    use crate::model::value::AttributeValue;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[derive(Clone, Default, Debug, PartialEq)]
    struct State {
        keys: BTreeMap<Key, Siblings>,
        hints: Vec<(NodeId, Key, Version)>,
        counter: u64,
        changes: Vec<(u64, Change)>,
    }

    /// A store whose crash keeps only what was flushed.
    #[derive(Clone, Default)]
    struct MemStore {
        live: State,
        durable: State,
    }

    impl VersionStore for MemStore {
        fn get(&self, key: &Key) -> Result<Siblings> {
            Ok(self.live.keys.get(key).cloned().unwrap_or_default())
        }
        fn put(&mut self, key: &Key, versions: &Siblings) -> Result<()> {
            self.live.keys.insert(key.clone(), versions.clone());
            Ok(())
        }
        fn add_hint(&mut self, owner: NodeId, key: &Key, version: &Version) -> Result<()> {
            self.live.hints.push((owner, key.clone(), version.clone()));
            Ok(())
        }
        fn hints(&self) -> Result<Vec<(NodeId, Key, Version)>> {
            Ok(self.live.hints.clone())
        }
        fn remove_hint(&mut self, owner: NodeId, key: &Key, version: &Version) -> Result<()> {
            self.live
                .hints
                .retain(|(o, k, v)| !(*o == owner && k == key && v == version));
            Ok(())
        }
        fn next_counter(&mut self) -> Result<u64> {
            self.live.counter += 1;
            Ok(self.live.counter)
        }
        fn flush(&mut self) -> Result<()> {
            self.durable = self.live.clone();
            Ok(())
        }
        fn entries(&self) -> Result<Vec<(Key, Siblings)>> {
            Ok(self
                .live
                .keys
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }
        fn hinted(&self, owners: &[NodeId], key: &Key) -> Result<Vec<Version>> {
            Ok(self
                .live
                .hints
                .iter()
                .filter(|(o, k, _)| owners.contains(o) && k == key)
                .map(|(_, _, v)| v.clone())
                .collect())
        }
        fn partition(&self, partition: &[u8]) -> Result<Vec<(Key, Siblings)>> {
            Ok(self
                .live
                .keys
                .iter()
                .filter(|(k, _)| k.partition == partition)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }
        fn remove(&mut self, key: &Key) -> Result<()> {
            self.live.keys.remove(key);
            Ok(())
        }
        fn record(&mut self, change: Change) -> Result<()> {
            let seq = self.live.changes.last().map_or(1, |(s, _)| s + 1);
            self.live.changes.push((seq, change));
            Ok(())
        }
        fn changes(&self, query: &ChangeQuery) -> Result<ChangePage> {
            let (prefix, from, limit) = (&query.prefix, query.from, query.limit);
            let kept = &self.durable.changes;
            let records: Vec<(u64, Change)> = kept
                .iter()
                .filter(|(s, c)| *s >= from && c.key.partition.starts_with(prefix))
                .take(limit)
                .cloned()
                .collect();
            let end = kept.last().map_or(1, |(s, _)| s + 1);
            let next = match records.last() {
                _ if limit == 0 => end,
                Some((s, _)) => s + 1,
                None => end.max(from),
            };
            Ok(ChangePage {
                at_end: next >= end,
                next,
                first: kept.first().map_or(end, |(s, _)| *s),
                records,
            })
        }
        fn trim_changes(&mut self, before_ms: u64) -> Result<usize> {
            let old = self
                .live
                .changes
                .iter()
                .take_while(|(_, c)| c.recorded_ms < before_ms)
                .count();
            self.live.changes.drain(..old);
            Ok(old)
        }
    }

    fn k(s: &str) -> Key {
        Key {
            partition: s.as_bytes().to_vec(),
            item: Vec::new(),
        }
    }

    fn item(v: &str) -> Item {
        Item::from([("v".to_string(), AttributeValue::S(v.into()))])
    }

    /// Nodes and the network between them, driven in lockstep.
    struct Net {
        nodes: BTreeMap<NodeId, DynamoNode<MemStore>>,
        stores: BTreeMap<NodeId, MemStore>,
        opts: Options,
        merger: &'static str,
        down: BTreeSet<NodeId>,
        /// Nodes on the two sides of a partition, if any.
        side: Option<BTreeSet<NodeId>>,
        /// Links cut both ways, each as (lower id, higher id).
        cuts: BTreeSet<(NodeId, NodeId)>,
        queue: VecDeque<(NodeId, NodeId, Msg)>,
        done: BTreeMap<(NodeId, ReqId), Result<Done>>,
        events: Vec<(NodeId, &'static str)>,
        now_ms: u64,
        /// When set, a node may crash right after handling a message, before its `ready`.
        crashes: Option<StdRng>,
    }

    impl Net {
        fn new(nodes: u64, merger: &'static str) -> Net {
            let members: Vec<NodeId> = (1..=nodes).collect();
            let opts = Options {
                id: 0,
                members: members.clone(),
                replicas: 3,
                read_quorum: 2,
                write_quorum: 2,
                suspect_after: 3,
                request_ticks: 30,
                sync_every: 2,
                tombstone_grace_ms: u64::MAX / 4,
                change_retention_ms: CHANGE_RETENTION_MS,
                planted_bug: None,
            };
            let mut net = Net {
                nodes: BTreeMap::new(),
                stores: BTreeMap::new(),
                opts,
                merger,
                down: BTreeSet::new(),
                side: None,
                cuts: BTreeSet::new(),
                queue: VecDeque::new(),
                done: BTreeMap::new(),
                events: Vec::new(),
                now_ms: 1_000,
                crashes: None,
            };
            for id in members {
                net.boot(id, MemStore::default());
            }
            net
        }

        fn boot(&mut self, id: NodeId, store: MemStore) {
            let opts = Options {
                id,
                ..self.opts.clone()
            };
            let merger = crate::dynamo::merge::by_name(self.merger).expect("merger");
            let node = DynamoNode::new(opts, merger, store).expect("node");
            self.nodes.insert(id, node);
        }

        fn linked(&self, a: NodeId, b: NodeId) -> bool {
            if self.cuts.contains(&(a.min(b), a.max(b))) {
                return false;
            }
            match &self.side {
                Some(side) => side.contains(&a) == side.contains(&b),
                None => true,
            }
        }

        /// A crash: the node's unflushed writes and its requests in flight are lost.
        fn crash(&mut self, id: NodeId) {
            if let Some(node) = self.nodes.remove(&id) {
                let mut store = node.store().clone();
                store.live = store.durable.clone();
                self.stores.insert(id, store);
            }
            self.down.insert(id);
        }

        fn restart(&mut self, id: NodeId) {
            let store = self.stores.remove(&id).unwrap_or_default();
            self.boot(id, store);
            self.down.remove(&id);
        }

        fn collect(&mut self) {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                let Some(node) = self.nodes.get_mut(&id) else {
                    continue;
                };
                let ready = node.ready().expect("ready");
                for (to, msg) in ready.messages {
                    self.queue.push_back((id, to, msg));
                }
                for (req, out) in ready.done {
                    self.done.insert((id, req), out);
                }
                for e in ready.events {
                    self.events.push((id, e.kind));
                }
            }
        }

        /// One tick: every node ticks, then messages flow until none are left.
        fn tick(&mut self) {
            self.now_ms += 10;
            let now = self.now_ms;
            for node in self.nodes.values_mut() {
                node.tick(now).expect("tick");
            }
            self.collect();
            while !self.queue.is_empty() {
                while let Some((from, to, msg)) = self.queue.pop_front() {
                    if self.down.contains(&to) || !self.linked(from, to) {
                        continue;
                    }
                    if let Some(node) = self.nodes.get_mut(&to) {
                        node.step(from, msg).expect("step");
                    }
                    let crash = match &mut self.crashes {
                        Some(rng) => self.down.is_empty() && rng.gen_bool(0.01),
                        None => false,
                    };
                    if crash {
                        self.crash(to);
                    }
                }
                self.collect();
            }
        }

        fn wait(&mut self, at: NodeId, req: ReqId) -> Result<Done> {
            self.collect();
            for _ in 0..100 {
                if let Some(out) = self.done.remove(&(at, req)) {
                    return out;
                }
                if self.down.contains(&at) {
                    return Err(Error::Unavailable("the coordinator crashed".into()));
                }
                self.tick();
            }
            panic!("request {req} at node {at} never finished");
        }

        fn put(&mut self, at: NodeId, key: &str, value: Option<&str>) -> Result<Done> {
            let value = value.map(item);
            let now = self.now_ms;
            let node = self.nodes.get_mut(&at).expect("node up");
            let req = node.put(k(key), now, Box::new(move |_| Ok(value)));
            self.wait(at, req)
        }

        fn get(&mut self, at: NodeId, key: &str, all: bool) -> Result<Done> {
            let node = self.nodes.get_mut(&at).expect("node up");
            let req = node.get(k(key), all);
            self.wait(at, req)
        }

        fn preference(&self, key: &str) -> Vec<NodeId> {
            Ring::of(self.opts.members.iter().copied()).preference_list(key.as_bytes(), 3)
        }

        /// What node `id` holds durably for `key`.
        fn held(&self, id: NodeId, key: &str) -> Siblings {
            let store = match self.nodes.get(&id) {
                Some(node) => node.store(),
                None => &self.stores[&id],
            };
            store.durable.keys.get(&k(key)).cloned().unwrap_or_default()
        }

        /// The change records of `key` node `id` has flushed.
        fn changes(&self, id: NodeId, key: &str) -> Vec<Change> {
            let page = self.nodes[&id]
                .store()
                .changes(&ChangeQuery::all())
                .expect("read changes");
            page.records
                .into_iter()
                .map(|(_, c)| c)
                .filter(|c| c.key == k(key))
                .collect()
        }

        fn hints(&self, id: NodeId) -> usize {
            self.nodes[&id].store().durable.hints.len()
        }

        fn saw(&self, kind: &str) -> bool {
            self.events.iter().any(|(_, k)| *k == kind)
        }
    }

    fn read_value(done: Result<Done>) -> Option<Item> {
        match done {
            Ok(Done::Read { resolved, .. }) => resolved.item,
            other => panic!("not a read: {other:?}"),
        }
    }

    #[test]
    fn a_quorum_write_is_read_anywhere_and_held_by_the_preference_list() {
        let mut net = Net::new(5, "lww");
        let written = net.put(1, "k", Some("a"));
        assert!(
            matches!(written, Ok(Done::Written { old: None, .. })),
            "{written:?}"
        );
        for at in 1..=5 {
            assert_eq!(read_value(net.get(at, "k", false)), Some(item("a")));
        }
        let owners = net.preference("k");
        for id in 1..=5 {
            let held = net.held(id, "k");
            assert_eq!(!held.is_empty(), owners.contains(&id), "node {id}");
        }
        // Overwrite: the old item comes back, the new version descends the old.
        match net.put(3, "k", Some("b")) {
            Ok(Done::Written { old, .. }) => assert_eq!(old, Some(item("a"))),
            other => panic!("{other:?}"),
        }
        assert_eq!(read_value(net.get(5, "k", true)), Some(item("b")));
        net.put(2, "k", None).expect("delete");
        assert_eq!(read_value(net.get(4, "k", false)), None);
        assert!(!net.saw("conflict_detected"));
    }

    #[test]
    fn bad_quorums_are_refused() {
        let mut opts = Net::new(3, "lww").opts;
        opts.write_quorum = 4;
        let err = opts.validate().expect_err("W > N");
        assert!(err.to_string().contains("--write-quorum"), "{err}");
        opts.write_quorum = 2;
        opts.replicas = 4;
        assert!(opts.validate().is_err());
    }

    #[test]
    fn two_owners_down_writes_go_to_stand_ins_and_come_back() {
        let mut net = Net::new(5, "lww");
        let owners = net.preference("k");
        let (a, b) = (owners[0], owners[1]);
        net.crash(a);
        net.crash(b);
        let coordinator = (1..=5).find(|n| !owners.contains(n)).expect("a non-owner");
        // The first attempt may time out while the dead are not yet suspected; the write
        // then goes to stand-ins.
        let mut tries = 0;
        while net.put(coordinator, "k", Some("v1")).is_err() {
            tries += 1;
            assert!(tries < 3, "write never succeeded with two owners down");
        }
        assert!(net.saw("hint_stored"));
        let hints: usize = net.nodes.keys().map(|&id| net.hints(id)).sum();
        assert!(hints >= 1, "no hint kept");
        assert_eq!(
            read_value(net.get(coordinator, "k", false)),
            Some(item("v1"))
        );
        net.restart(a);
        net.restart(b);
        for _ in 0..20 {
            net.tick();
        }
        assert!(net.saw("hint_handed_off"));
        let hints: usize = net.nodes.keys().map(|&id| net.hints(id)).sum();
        assert_eq!(hints, 0, "hints left after handoff");
        // The primary was down when the write was made: it records the change once the write
        // is handed back to it, and no other node records it.
        let changes = net.changes(a, "k");
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            (&changes[0].old, &changes[0].new),
            (&None, &Some(item("v1")))
        );
        for id in (1..=5).filter(|&id| id != a) {
            assert!(net.changes(id, "k").is_empty(), "node {id} recorded k");
        }
        let owner_copy = net.held(a, "k");
        assert_eq!(
            LastWriterWins.resolve(&owner_copy).item,
            Some(item("v1")),
            "owner {a} did not get its write back"
        );
    }

    fn partition_then_heal(merger: &'static str) -> (Net, Option<Item>) {
        let mut net = Net::new(5, merger);
        net.put(1, "k", Some("before")).expect("first write");
        net.side = Some(BTreeSet::from([1, 2]));
        for _ in 0..5 {
            net.tick();
        }
        // Both sides accept a write of the same key (sloppy quorum)...
        net.put(1, "k", Some("left")).expect("left write");
        net.put(4, "k", Some("right")).expect("right write");
        // ...and each answers with its own.
        assert_eq!(read_value(net.get(2, "k", false)), Some(item("left")));
        assert_eq!(read_value(net.get(5, "k", false)), Some(item("right")));
        net.side = None;
        for _ in 0..20 {
            net.tick();
        }
        let value = read_value(net.get(3, "k", true));
        // Read repair and handoff leave every owner with the same versions.
        for _ in 0..5 {
            net.tick();
        }
        let owners = net.preference("k");
        let first = net.held(owners[0], "k");
        for &o in &owners[1..] {
            assert_eq!(
                net.held(o, "k"),
                first,
                "owner {o} differs from {}",
                owners[0]
            );
        }
        assert!(net.saw("conflict_detected"));
        // The primary's records of the key are one chain from nothing to what it converged
        // to (read above: no write since).
        let changes = net.changes(owners[0], "k");
        assert!(!changes.is_empty());
        assert_eq!(changes[0].old, None);
        for pair in changes.windows(2) {
            assert_eq!(
                pair[1].old, pair[0].new,
                "records do not chain: {changes:?}"
            );
        }
        for c in &changes {
            assert_ne!(c.old, c.new, "a record that changes nothing");
        }
        assert_eq!(changes.last().map(|c| &c.new), Some(&value));
        (net, value)
    }

    #[test]
    fn a_partition_diverges_and_lww_converges_on_one_write() {
        let (_, value) = partition_then_heal("lww");
        // The right side wrote last (its stamp is later).
        assert_eq!(value, Some(item("right")));
    }

    #[test]
    fn a_partition_diverges_and_the_vector_merger_keeps_both() {
        let (mut net, value) = partition_then_heal("vector");
        // Same attribute, different strings: the more recent write's.
        assert_eq!(value, Some(item("right")));
        match net.get(1, "k", true) {
            Ok(Done::Read { resolved, versions }) => {
                assert!(resolved.merged);
                assert_eq!(versions.versions().len(), 2);
            }
            other => panic!("{other:?}"),
        }
        // The next write has seen both siblings and replaces them.
        net.put(2, "k", Some("resolved")).expect("write");
        match net.get(5, "k", true) {
            Ok(Done::Read { resolved, versions }) => {
                assert!(!resolved.merged);
                assert_eq!(versions.versions().len(), 1);
                assert_eq!(resolved.item, Some(item("resolved")));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Random writes under random crashes and partitions; then everything heals. Every
    /// acknowledged write must have been seen by the final state of every owner, and the
    /// owners must agree.
    fn chaos(seed: u64, merger: &'static str) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut net = Net::new(5, merger);
        net.crashes = Some(StdRng::seed_from_u64(seed ^ 0x5eed));
        let keys = ["a", "b", "c", "d"];
        let mut acked: Vec<(&str, Version)> = Vec::new();
        for step in 0..60 {
            match rng.gen_range(0..10) {
                0 => {
                    let id = rng.gen_range(1..=5);
                    // Fewer than W owners of any key may be down at once for the guarantee;
                    // keep at most one node down.
                    if net.down.is_empty() {
                        net.crash(id);
                    }
                }
                1 => {
                    if let Some(&id) = net.down.iter().next() {
                        net.restart(id);
                    }
                }
                2 => {
                    net.side = if net.side.is_some() {
                        None
                    } else {
                        Some((1..=5).filter(|_| rng.gen_bool(0.5)).collect())
                    };
                }
                _ => {
                    let live: Vec<NodeId> = net.nodes.keys().copied().collect();
                    let at = live[rng.gen_range(0..live.len())];
                    let key = keys[rng.gen_range(0..keys.len())];
                    let value = (rng.gen_range(0..5) > 0).then(|| format!("s{step}"));
                    if let Ok(Done::Written { version, .. }) = net.put(at, key, value.as_deref()) {
                        acked.push((key, version));
                    }
                }
            }
            net.tick();
        }
        net.side = None;
        net.crashes = None;
        let down: Vec<NodeId> = net.down.iter().copied().collect();
        for id in down {
            net.restart(id);
        }
        for _ in 0..30 {
            net.tick();
        }
        for key in keys {
            net.get(1, key, true).expect("final read");
        }
        for _ in 0..5 {
            net.tick();
        }
        for key in keys {
            let owners = net.preference(key);
            let first = net.held(owners[0], key);
            for &o in &owners {
                let held = net.held(o, key);
                assert_eq!(held, first, "seed {seed}: owners of {key} differ");
                for (k, v) in &acked {
                    if *k == key {
                        assert!(
                            held.context().descends(&v.clock),
                            "seed {seed}: node {o} lost acknowledged write {:?} of {key}",
                            v.clock
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn chaos_converges_and_loses_no_acknowledged_write() {
        let base: u64 = std::env::var("KVSIM_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        for seed in base..base + 16 {
            chaos(seed, "lww");
            chaos(seed, "vector");
        }
    }

    #[test]
    fn a_peer_reached_only_through_others_is_not_suspected() {
        let mut net = Net::new(5, "lww");
        net.cuts.insert((1, 3));
        for _ in 0..40 {
            net.tick();
        }
        for (id, node) in &net.nodes {
            assert!(
                node.suspected().is_empty(),
                "node {id} suspects {:?} though others reach it",
                node.suspected()
            );
        }
        assert!(net.saw("peer_reached_indirectly"));
        // Writes through node 1 still succeed (node 3's acknowledgement is not needed).
        assert!(net.put(1, "k", Some("v")).is_ok());
        // Cut off from everyone, node 3 is suspected by all: nobody can vouch for it.
        for other in [2, 4, 5] {
            net.cuts.insert((other.min(3), other.max(3)));
        }
        for _ in 0..40 {
            net.tick();
        }
        for id in [1, 2, 4, 5] {
            assert!(net.nodes[&id].suspected().contains(&3), "node {id}");
        }
    }

    #[test]
    fn a_cut_off_node_is_suspected_by_all_and_refutes_it_when_healed() {
        let mut net = Net::new(5, "lww");
        net.side = Some(BTreeSet::from([5]));
        for _ in 0..20 {
            net.tick();
        }
        for id in 1..=4 {
            assert!(net.nodes[&id].suspected().contains(&5), "node {id}");
        }
        net.side = None;
        for _ in 0..30 {
            net.tick();
        }
        assert!(net.saw("suspicion_refuted"));
        for (id, node) in &net.nodes {
            assert!(
                node.suspected().is_empty(),
                "node {id} suspects {:?}",
                node.suspected()
            );
        }
        let incarnation = net.nodes[&1]
            .view()
            .iter()
            .find(|g| g.node == 5)
            .map(|g| g.incarnation);
        assert!(
            incarnation > Some(0),
            "node 5 never moved past incarnation 0"
        );
    }

    #[test]
    fn anti_entropy_repairs_a_replica_that_missed_a_write() {
        let mut net = Net::new(5, "vector");
        let owners = net.preference("k");
        let lagging = owners[2];
        // Cut off, but not yet suspected: the write reaches W owners and no stand-in.
        net.side = Some(BTreeSet::from([lagging]));
        net.put(owners[0], "k", Some("v")).expect("write");
        assert!(net.held(lagging, "k").is_empty());
        net.side = None;
        for _ in 0..40 {
            net.tick();
        }
        assert!(net.saw("anti_entropy_repaired"));
        assert_eq!(
            UnionMerge.resolve(&net.held(lagging, "k")).item,
            Some(item("v"))
        );
    }

    #[test]
    fn tombstones_are_collected_and_the_item_stays_deleted() {
        let mut net = Net::new(5, "lww");
        net.opts.tombstone_grace_ms = 100;
        for id in 1..=5 {
            net.boot(id, MemStore::default());
        }
        let owners = net.preference("k");
        net.put(owners[0], "k", Some("v")).expect("write");
        // One owner misses the delete.
        let lagging = owners[2];
        net.side = Some(BTreeSet::from([lagging]));
        net.put(owners[0], "k", None).expect("delete");
        assert!(!net.held(lagging, "k").versions()[0].is_tombstone());
        net.side = None;
        for _ in 0..200 {
            net.tick();
        }
        assert!(net.saw("tombstones_collected"));
        for id in 1..=5 {
            assert!(
                net.held(id, "k").is_empty(),
                "node {id} still holds the key"
            );
        }
        assert_eq!(read_value(net.get(lagging, "k", true)), None);
    }
}
