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
//! On these:
//!
//! - [`node`]: one node, sans I/O like raft-rs's `RawNode`: the quorum reads and writes it
//!   coordinates, the replica it keeps, read repair, hinted handoff, SWIM-style failure
//!   detection and anti-entropy.
//! - [`storage`]: a replica's versions, hints and clock counter on redb.
//! - [`driver`]: the thread that runs a node in real time, and the in-process network between
//!   nodes, subject to the simulator's [`faults`](crate::faults).
//! - [`service`]: DynamoDB's tables and items in the engine's terms, for the API's operations
//!   ([`crate::api::engine`]).
//!
//! `kvsim server --mode dynamo` composes these in [`crate::cluster::leaderless`]; the
//! deterministic simulation drives [`node`] directly ([`crate::sim::dynamo`]).

pub mod clock;
pub mod driver;
pub mod merge;
pub mod node;
pub mod ring;
pub mod service;
pub mod storage;
pub mod version;

pub use crate::NodeId;
