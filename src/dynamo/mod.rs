//! The leaderless replication engine (`--mode dynamo`, issue 16): Dynamo's design as the dkv,
//! Elixir and gossip seeds describe it, beside Raft.
//!
//! What it is made of, bottom up (each a pure module, tested on its own):
//!
//! - [`ring`]: consistent hashing with virtual nodes; a key's preference list of N distinct
//!   nodes and the stand-ins after them (sloppy quorum).
//! - [`clock`]: vector clocks; which versions descend from which and which conflict.
//! - [`version`]: a replica's versions of one key, an antichain under the clock order, so
//!   receiving versions in any order converges.
//! - [`merge`]: what concurrent versions become (`--merger lww|vector`) and what a read returns.
//!
//! The coordinator (quorum reads and writes, read repair, hinted handoff), gossip and
//! anti-entropy, and the seam that lets the API serve either engine, build on these.

pub mod clock;
pub mod driver;
pub mod merge;
pub mod node;
pub mod ring;
pub mod service;
pub mod storage;
pub mod version;

/// A node of a leaderless cluster (1, 2, ... as in Raft mode).
pub type NodeId = u64;
