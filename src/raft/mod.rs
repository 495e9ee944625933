//! Everything that touches raft-rs. This module knows nothing of tables or items: it replicates
//! opaque commands and hands committed ones to a [`StateMachine`].
//!
//! # The pieces
//!
//! - [`log_store`]: the Raft log, hard state and applied index on redb; `impl raft::Storage`.
//! - [`node`]: [`node::RaftNode`], a synchronous wrapper over `RawNode`. It never reads the clock,
//!   sleeps or does network I/O: time arrives as `tick()`, peer messages as `step()`, and the
//!   messages it wants sent are collected for the caller. This is what a deterministic
//!   simulation drives directly.
//! - [`proposals`]: pending client writes and consistent reads, matched to log entries by id.
//! - [`driver`]: the thin threaded shell that runs one `RaftNode` in real time.
//! - [`transport`]: batching node-to-node messages over loopback HTTP, and snapshot streaming,
//!   subject to the simulated network [`faults`].
//! - [`events`]: each node's ring of recent events (elections, snapshots, compactions, ...).
//!
//! # The Ready loop
//!
//! Each pass of [`node::RaftNode::handle_ready`] follows raft-rs's documented order:
//!
//! 1. collect `messages`, the ones raft-rs allows out before this node's own fsync (a leader's
//!    appends and heartbeats);
//! 2. install an incoming snapshot, if any, into the state machine;
//! 3. apply `committed_entries`;
//! 4. append new `entries` and the `HardState`;
//!
//! Steps 2-4 share **one redb write transaction**, committed with an fsync when raft says the
//! Ready must be synced. Every client write that arrived since the last pass rides in that same
//! transaction, which is how concurrent writes share fsyncs (group commit).
//!
//! 5. only after that commit collect `persisted_messages` (votes and append acknowledgements
//!    must never promise what is not on disk);
//! 6. `advance`, then the `LightReady`: its commit index, messages and committed entries (applied
//!    in a transaction that needs no fsync, see below); `advance_apply`.
//!
//! Every message collected in a pass is sent when the pass ends ([`driver`] hands
//! [`node::RaftNode::take_messages`] to the transport after `handle_ready` returns), so today a
//! leader's appends leave only after its own fsync: the leader's fsync and its followers'
//! fsyncs run one after the other, not side by side as step 1 would allow. That is safe (it
//! only delays messages raft-rs lets out early) and costs one fsync of latency per write.
//!
//! # Apply state
//!
//! The applied index is written in the same transaction as the state machine changes it
//! describes (tikv's apply state), and the hard state's commit index is raised to at least the
//! applied index in that transaction too. On restart `Config::applied` is set from it, so an
//! entry is never applied twice. An apply-only transaction may skip the fsync: the entries it
//! applies are already durable in the log, so a crash at worst re-applies them from the log.
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
//! has committed an entry of its own term: raft-rs silently drops a ReadIndex before that.
//!
//! # What is left out
//!
//! Membership change (the three voters are fixed at bootstrap), learners, and async log writes.

pub mod driver;
pub mod events;
pub mod faults;
pub mod log_store;
pub mod node;
pub mod proposals;
pub mod transport;

use std::io::{Read, Write};

use redb::{ReadTransaction, WriteTransaction};

use crate::Result;

/// A Raft node's id (1, 2, 3 in a local cluster).
pub type NodeId = u64;
/// A Raft term.
pub type Term = u64;
/// A position in the Raft log.
pub type LogIndex = u64;

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

    /// Writes the whole state visible in `txn` to `out`, in a form `restore` reads.
    fn export(txn: &ReadTransaction, out: &mut dyn Write) -> Result<()>
    where
        Self: Sized;

    /// Replaces the whole state with a snapshot written by `export`.
    fn restore(&mut self, txn: &WriteTransaction, input: &mut dyn Read) -> Result<()>;
}
