//! kvsim: a DynamoDB-style database simulator on a three-node Raft cluster.
//!
//! The layers, bottom up (arrows point one way: `cli -> api::wire`, `api -> cluster ->
//! {raft, store} -> model`):
//!
//! - [`model`]: DynamoDB's data model as pure data and logic: values, exact numbers, items,
//!   key encoding, expressions. No I/O.
//! - [`store`]: the replicated state machine on redb: tables and items. Knows nothing of Raft.
//! - [`dynamo`]: the leaderless engine's parts (ring, vector clocks, versions, mergers), for
//!   `--mode dynamo`; not wired into the server yet.
//! - [`raft`]: raft-rs driven over a checksummed log file; replicates opaque commands to a
//!   [`raft::StateMachine`]. Knows nothing of items.
//! - [`cluster`]: three nodes in one process, each a Raft thread, a transport and an HTTP server.
//! - [`api`]: axum; the DynamoDB JSON protocol, status, and the node-to-node routes.
//! - [`cli`]: the `kvsim` command line, a client of the API.
//! - [`sim`]: the deterministic simulation that runs all of the above but HTTP in one thread.
//!
//! [`Error`] is the one error type across all of them.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod disk;
pub mod dynamo;
pub mod error;
pub mod events;
pub mod faults;
pub mod model;
pub mod raft;
pub mod sim;
pub mod store;

pub use error::{Error, Result};

/// A node of a cluster, 1, 2, ... in either engine.
pub type NodeId = u64;
