//! The replicated state machine on redb: tables and items. It knows nothing of Raft.
//!
//! Writes arrive as [`Command`]s through [`crate::raft::StateMachine::apply`], always inside the
//! Raft layer's write transaction (so the applied index lands with the data). Reads go straight
//! to redb through MVCC read transactions and never block the writer.
//!
//! - [`tables`]: every redb table definition of the state machine and the row encodings.
//! - [`command`]: the commands written into the Raft log and their outcomes.
//! - [`apply`]: applying a command, with every check repeated deterministically.
//! - [`read`]: get, query, scan, describe and list over a read transaction.
//! - [`snapshot`]: export and restore of the whole state for Raft snapshots.

pub mod apply;
pub mod command;
pub mod read;
pub mod snapshot;
pub mod tables;

use std::sync::Arc;

use redb::{Database, ReadTransaction, WriteTransaction};

pub use command::{Command, Conditional, ItemWrite, Outcome, TableChange, Transaction};
pub use read::Page;

use crate::Result;
use crate::raft::{LogIndex, StateMachine};

/// The state machine of one node: a handle on its redb database.
#[derive(Clone, Debug)]
pub struct Store {
    db: Arc<Database>,
}

impl Store {
    /// A store over `db` (the same database the node's Raft log lives in).
    pub fn new(db: Arc<Database>) -> Store {
        Store { db }
    }

    /// The underlying database.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// A fingerprint of the whole state machine. Replicas that applied the same entries have
    /// equal fingerprints.
    pub fn digest(&self) -> Result<u64> {
        use redb::ReadableDatabase;
        snapshot::digest(&self.db.begin_read()?)
    }
}

impl StateMachine for Store {
    type Output = Result<Outcome>;

    fn apply(
        &mut self,
        txn: &WriteTransaction,
        index: LogIndex,
        command: &[u8],
    ) -> Result<Self::Output> {
        apply::apply(txn, index, command)
    }

    fn export(txn: &ReadTransaction, out: &mut dyn std::io::Write) -> Result<()> {
        snapshot::export(txn, out)
    }

    fn restore(&mut self, txn: &WriteTransaction, input: &mut dyn std::io::Read) -> Result<()> {
        snapshot::restore(txn, input)
    }
}
