//! Everything that touches raft-rs. This module knows nothing of tables or items: it replicates
//! opaque commands and hands committed ones to a [`StateMachine`].
//!
//! # The pieces
//!
//! - [`wal`]: the Raft log file: entries and hard state as checksummed records, one write and
//!   one fsync per Ready, rotated into a second slot at compaction.
//! - [`log_store`]: `impl raft::Storage` over the log file, with the conf state, the applied
//!   index and the last snapshot point kept in redb beside the state machine.
//! - [`node`]: [`node::RaftNode`], a synchronous wrapper over `RawNode`. It never reads the clock,
//!   sleeps or does network I/O: time arrives as `tick()`, peer messages as `step()`, and the
//!   messages it wants sent are collected for the caller. This is what a deterministic
//!   simulation drives directly.
//! - [`proposals`]: pending client writes and consistent reads, matched to log entries by id.
//! - [`driver`]: the thin threaded shell that runs one `RaftNode` in real time.
//! - [`transport`]: batching node-to-node messages over loopback HTTP, and snapshot streaming,
//!   subject to the simulated network [`faults`](crate::faults).
//!
//! Events (elections, snapshots, compactions, ...) go to each node's ring in
//! [`crate::events`], shared with the leaderless engine.
//!
//! # The Ready loop
//!
//! Each pass of [`node::RaftNode::handle_ready`] follows raft-rs's documented order:
//!
//! 1. collect `messages`, the ones raft-rs allows out before this node's own fsync (a leader's
//!    appends and heartbeats);
//! 2. install an incoming snapshot, if any, into the state machine: one durable redb commit,
//!    after which the log file restarts after the snapshot;
//! 3. take `committed_entries`, to apply in step 6;
//! 4. append new `entries` and the `HardState` to the [`wal`] with one write, and fsync it when
//!    raft says the Ready must be synced. Every client write that arrived since the last pass
//!    rides in that one fsync (group commit);
//! 5. only after that send `persisted_messages` (votes and append acknowledgements must never
//!    promise what is not on disk), at once: the leader waits for them, not for our apply;
//! 6. `advance`, then the `LightReady`: its commit index and messages; then apply the committed
//!    entries of both Readies in one redb transaction that commits **without** an fsync, and
//!    `advance_apply`. A follower with no client waiting on it (no proposal, no consistent
//!    read, no local read waiting for a write it relayed to be readable there) holds them
//!    back instead, up to a few milliseconds or a few hundred entries, and
//!    applies the batch in one transaction ([`node::RaftNode::flush_applies`]): redb's commit
//!    was a third of a follower's CPU when it ran once per Ready.
//!
//! Step 1's messages go to the transport before step 4's fsync ([`driver`] passes
//! `transport.send` to [`node::RaftNode::handle_ready_with`]), so a leader's fsync and its
//! followers' overlap instead of running one after the other. Replies to clients go out after
//! step 6, and only then does [`node::RaftNode::housekeeping`] run a checkpoint or a
//! compaction that is due, so their stalls delay no answer already known.
//!
//! # Apply state and checkpoints
//!
//! The applied index is written in the same redb transaction as the state machine changes it
//! describes (tikv's apply state). Those transactions skip the fsync: the entries they apply are
//! durable in the log. Every few thousand applied entries a *checkpoint* commits redb durably;
//! on disk its fsync runs on a thread of its own ([`crate::disk::BackgroundSync`], whose docs
//! say why that is safe), and the checkpoint counts (for compaction) only once it has finished.
//! A crash takes redb back to its last checkpoint; on restart `Config::applied` is set from it
//! and raft applies the entries after it again from the log (which is why the log is compacted
//! only up to the last checkpoint). Each entry is thus applied exactly once to the state it was
//! first applied to.
//!
//! # Proposals and reads
//!
//! A write is proposed with a unique id in the entry's context and filed with the index and
//! term it was appended at. It is answered when that index is applied: with the state machine's
//! output if the applied entry carries its id, or with a retryable "not applied" error if another
//! entry took the index (a new leader overwrote it). A proposal that is not resolved within its
//! deadline fails with a retryable error saying its outcome is unknown. Consistent reads use
//! ReadIndex, batched: all reads that arrive in one pass share one `read_index` call, and are
//! released once the applied index reaches the read index. A new leader holds reads until it
//! has committed an entry of its own term: raft-rs silently drops a ReadIndex before that. With
//! leader leases on ([`lease`]), a leader answers consistent reads at its commit index without a
//! round while a recent round's quorum still guarantees no other leader can exist.
//!
//! # What is left out
//!
//! Membership change (the three voters are fixed at bootstrap), learners, and async log writes.

pub mod driver;
pub mod lease;
pub mod log_store;
pub mod node;
pub mod proposals;
pub mod transport;
pub mod wal;

use std::io::{Read, Write};

use redb::{ReadTransaction, WriteTransaction};

use crate::Result;

pub use crate::NodeId;
/// A Raft term.
pub type Term = u64;
/// A position in the Raft log.
pub type LogIndex = u64;

/// What a state machine keeps of its state for a snapshot beyond redb's read transaction
/// (taken by its [`Freezer`] at the snapshot point; `()` for one that keeps all in redb).
pub type Frozen = std::sync::Arc<dyn std::any::Any + Send + Sync>;
/// Takes a [`Frozen`] copy, on the node's thread, between applies.
pub type Freezer = std::sync::Arc<dyn Fn() -> Frozen + Send + Sync>;

/// The replicated state machine, as the Raft layer sees it.
///
/// `apply` must be deterministic: the same commands at the same indexes give the same state and
/// outputs on every replica. Errors that are results (bad input) go inside `Output`; an `Err`
/// means a fault (I/O) and stops the node.
pub trait StateMachine: Send + 'static {
    /// What a client waiting on a proposal receives.
    type Output: Send + 'static;

    /// Applies the command committed at `index`, inside the caller's transaction.
    fn apply(
        &mut self,
        txn: &WriteTransaction,
        index: LogIndex,
        command: &[u8],
    ) -> Result<Self::Output>;

    /// Writes the whole state visible in `txn` and `frozen` (taken at the same point) to
    /// `out`, in a form `restore` reads.
    fn export(txn: &ReadTransaction, frozen: &Frozen, out: &mut dyn Write) -> Result<()>
    where
        Self: Sized;

    /// What takes the state kept outside redb at a snapshot point (see [`Frozen`]).
    fn freezer(&self) -> Freezer {
        std::sync::Arc::new(|| -> Frozen { std::sync::Arc::new(()) })
    }

    /// Replaces the whole state with a snapshot written by `export`.
    fn restore(&mut self, txn: &WriteTransaction, input: &mut dyn Read) -> Result<()>;

    /// Called just before the transaction of the `apply` and `restore` calls since the last
    /// commit commits: the last chance to write into it (what `apply` deferred).
    fn before_commit(&mut self, _txn: &WriteTransaction) -> Result<()> {
        Ok(())
    }

    /// Called instead of `before_commit` before a checkpoint's durable commit: whatever the
    /// state machine keeps outside redb must be durable up to this point before it returns.
    fn checkpoint(&mut self, txn: &WriteTransaction) -> Result<()> {
        self.before_commit(txn)
    }

    /// Called once the transaction of the `apply` and `restore` calls before it has committed:
    /// what they wrote is now what readers see.
    fn committed(&mut self) {}
}
