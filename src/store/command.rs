//! The commands written into the Raft log (the only thing ever replicated) and what applying
//! one yields.
//!
//! Commands carry everything apply needs to be deterministic: the leader picks a new table's
//! UUID and creation time before proposing, never the replicas.

use serde::{Deserialize, Serialize};

use crate::model::Item;
use crate::model::KeyAttribute;
use crate::model::expr::{Condition, Update};
use crate::model::index::{IndexKind, IndexSpec};
use crate::model::stream::StreamView;
use crate::model::table::{Billing, TableDescription, TableSettings, TableSpec};
use crate::{Error, Result};

/// A state machine command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Create a table.
    CreateTable(TableSpec),
    /// Delete a table and all its items.
    DeleteTable {
        /// Table name.
        name: String,
    },
    /// Write an item, replacing any item with the same key.
    PutItem {
        /// Table name.
        table: String,
        /// The whole item, key attributes included.
        item: Item,
    },
    /// Remove the item with this key, if any.
    DeleteItem {
        /// Table name.
        table: String,
        /// The key attributes.
        key: Item,
    },
    /// One item write, under a condition checked at apply time. (PutItem and DeleteItem
    /// above are what earlier logs hold; new writes are all of this form.)
    Write(Conditional),
    /// BatchWriteItem: puts and deletes of distinct items, applied together as one entry.
    Batch(Vec<ItemWrite>),
    /// TransactWriteItems: every action's condition checked, then all written or none.
    Transact(Transaction),
    /// UpdateTable, TagResource, UntagResource, UpdateContinuousBackups: one table setting.
    AlterTable {
        /// Table name.
        name: String,
        /// The change.
        change: TableChange,
    },
    /// Create a table with secondary indexes. (`CreateTable` above creates one without.)
    CreateIndexedTable {
        /// The table.
        spec: TableSpec,
        /// Its indexes, with their ids.
        indexes: Vec<IndexSpec>,
    },
    /// UpdateTable's `GlobalSecondaryIndexUpdates`: add or remove a global index.
    AlterIndexes {
        /// Table name.
        name: String,
        /// The change.
        change: IndexChange,
    },
    /// Fill a global index being added from the table's next batch of items.
    Backfill {
        /// Table name.
        table: String,
        /// Index name.
        index: String,
        /// Where the previous batch ended, as the index's state says (a batch proposed from an
        /// older state does nothing).
        after: Option<Vec<u8>>,
    },
    /// Remove the next batch of entries of a global index being deleted, and the index once
    /// none is left.
    RemoveIndexEntries {
        /// Table name.
        table: String,
        /// Index name.
        index: String,
    },
    /// Remove the next batch of rows of a deleted table (by id), and forget it once none is
    /// left.
    PurgeTable {
        /// The deleted table's id.
        id: u64,
    },
    /// Delete these items of `table` if their time to live had passed at `now`: the leader
    /// found them expired; each is checked again at apply, so one written since is kept.
    Expire {
        /// Table name.
        table: String,
        /// The items' keys.
        keys: Vec<Item>,
        /// The leader's clock when it looked, in epoch seconds.
        now: u64,
    },
    /// A command with the proposing leader's clock: the log's own time, which stream records
    /// (`ApproximateCreationDateTime`) and stream labels take, alike on every replica. Every
    /// proposal is wrapped in one; entries written before carry no time (0).
    At {
        /// Milliseconds since the epoch.
        at_ms: u64,
        /// The command.
        command: Box<Command>,
    },
    /// CreateTable with `StreamSpecification`: the table and its stream, in one entry.
    CreateTableWithStream {
        /// The table.
        spec: TableSpec,
        /// Its indexes, with their ids.
        indexes: Vec<IndexSpec>,
        /// What its stream records carry.
        view: StreamView,
        /// Log entries per stream shard.
        shard_entries: u64,
    },
    /// Remove stream records written before `before_ms` (the retention period's start), a
    /// batch at a time.
    TrimStreams {
        /// Milliseconds since the epoch.
        before_ms: u64,
    },
    /// One item write made only if the item's version (the log index of its last write) is
    /// `version` at apply (0: only if the item does not exist), besides its own condition.
    WriteIfVersion {
        /// The write.
        write: Conditional,
        /// The version it expects.
        version: u64,
    },
}

/// [`Command::At`]'s variant index.
const AT_VARIANT: u32 = 14;

/// A change to a table's global indexes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum IndexChange {
    /// Add this index (its id is chosen at apply) and the attribute definitions it needs.
    Create {
        /// The index, validated against the table as the proposer saw it.
        index: IndexSpec,
        /// The types of its key attributes.
        definitions: Vec<KeyAttribute>,
    },
    /// Remove the index with this name.
    Delete {
        /// Index name.
        index: String,
    },
    /// Set a global index's provisioned throughput `(read, write)`.
    Throughput {
        /// Index name.
        index: String,
        /// Read and write capacity units.
        units: (u64, u64),
    },
}

/// A change to a table's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TableChange {
    /// A new billing mode.
    Billing(Billing),
    /// Tags to add or overwrite.
    Tag(std::collections::BTreeMap<String, String>),
    /// Tag keys to remove.
    Untag(Vec<String>),
    /// Point-in-time recovery on or off.
    PointInTimeRecovery(bool),
    /// UpdateTimeToLive: enable TTL on `attribute`, or disable it.
    TimeToLive {
        /// The attribute holding each item's expiry, in epoch seconds.
        attribute: String,
        /// On or off.
        enabled: bool,
    },
    /// UpdateTable's `StreamSpecification`: enable a new stream with this view and this many
    /// log entries per shard, or disable the enabled one.
    Stream(Option<(StreamView, u64)>),
}

/// A TransactWriteItems as the log carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// The actions, on distinct items, in request order.
    pub actions: Vec<Conditional>,
    /// `ClientRequestToken`: a repeat within [`TOKEN_LIFETIME_MS`] with the same actions
    /// succeeds without writing again.
    pub token: Option<String>,
    /// The proposing leader's clock, milliseconds since the epoch: the log's own time, so
    /// every replica ages tokens alike.
    pub at_ms: u64,
}

/// How long a `ClientRequestToken` is remembered (DynamoDB's 10 minutes).
pub const TOKEN_LIFETIME_MS: u64 = 10 * 60 * 1000;

/// One change to one item: what a PutItem, DeleteItem or UpdateItem asks for, and what
/// batches and transactions are made of.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ItemWrite {
    /// Write an item, replacing any item with the same key.
    Put {
        /// Table name.
        table: String,
        /// The whole item, key attributes included.
        item: Item,
    },
    /// Remove the item with this key, if any.
    Delete {
        /// Table name.
        table: String,
        /// The key attributes.
        key: Item,
    },
    /// Change the item with this key (creating it if absent) by an update expression.
    Update {
        /// Table name.
        table: String,
        /// The key attributes.
        key: Item,
        /// The parsed `UpdateExpression`, placeholders resolved.
        update: Update,
    },
    /// Write nothing: a transaction's `ConditionCheck` on this item.
    Check {
        /// Table name.
        table: String,
        /// The key attributes.
        key: Item,
    },
}

impl ItemWrite {
    /// The table written.
    pub fn table(&self) -> &str {
        match self {
            ItemWrite::Put { table, .. }
            | ItemWrite::Delete { table, .. }
            | ItemWrite::Update { table, .. }
            | ItemWrite::Check { table, .. } => table,
        }
    }
}

/// An [`ItemWrite`] that happens only if `condition` holds for the item as it is at that log
/// index (an absent item is an empty one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conditional {
    /// The write.
    pub write: ItemWrite,
    /// `ConditionExpression`, placeholders resolved.
    pub condition: Option<Condition>,
    /// `ReturnValuesOnConditionCheckFailure: ALL_OLD`: a failed condition answers with the
    /// item it was checked against.
    pub old_on_failure: bool,
}

impl Command {
    /// Whether this command writes items only: it changes no table's metadata or streams.
    pub fn writes_items_only(&self) -> bool {
        match self {
            Command::At { command, .. } => command.writes_items_only(),
            Command::PutItem { .. }
            | Command::DeleteItem { .. }
            | Command::Write(_)
            | Command::WriteIfVersion { .. }
            | Command::Batch(_)
            | Command::Transact(_)
            | Command::Expire { .. } => true,
            Command::CreateTable(_)
            | Command::CreateIndexedTable { .. }
            | Command::CreateTableWithStream { .. }
            | Command::AlterIndexes { .. }
            | Command::Backfill { .. }
            | Command::RemoveIndexEntries { .. }
            | Command::PurgeTable { .. }
            | Command::TrimStreams { .. }
            | Command::DeleteTable { .. }
            | Command::AlterTable { .. } => false,
        }
    }

    /// Encodes for the Raft log.
    pub fn encode(&self) -> Result<Vec<u8>> {
        Ok(postcard::to_stdvec(self)?)
    }

    /// Encodes for the Raft log as [`Command::At`] `at_ms`, without copying the command.
    pub fn encode_at(&self, at_ms: u64) -> Result<Vec<u8>> {
        // postcard writes an enum variant as its index (a varint) followed by its fields.
        let out = postcard::to_stdvec(&(AT_VARIANT, at_ms))?;
        Ok(postcard::to_extend(self, out)?)
    }

    /// Decodes from the Raft log.
    pub fn decode(bytes: &[u8]) -> Result<Command> {
        postcard::from_bytes(bytes)
            .map_err(|e| Error::internal(format!("undecodable command in the log: {e}")))
    }
}

/// What applying a command produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A table was created or deleted; its description at that moment.
    Table(Box<TableDescription>),
    /// An item was written or deleted; the item it replaced, if any.
    Item {
        /// The log index of the write: the item's version now.
        version: u64,
        /// The previous item under that key.
        old: Option<Item>,
        /// The item as the write left it (for updates; `None` for puts and deletes).
        new: Option<Item>,
        /// The larger of the old and new item's sizes in bytes, which DynamoDB charges.
        size: u32,
        /// What the write cost each secondary index it changed.
        indexes: Vec<IndexCharge>,
    },
    /// A table's settings after a change.
    Settings(TableSettings),
    /// Expired items were deleted.
    Expired {
        /// How many (the others had been rewritten or deleted since).
        deleted: usize,
    },
    /// A batch of stream records was trimmed.
    Trimmed {
        /// Nothing more is due.
        done: bool,
    },
    /// A batch of an index's backfill or removal was applied.
    IndexWork {
        /// Nothing is left to do: the index is active (or gone, or no longer in that phase).
        done: bool,
    },
    /// A batch was written.
    Batch {
        /// How many writes it made.
        written: usize,
        /// For each write or action in order, the larger of its item's old and new sizes in
        /// bytes (for a replayed transaction, the item's size as it is now).
        sizes: Vec<u32>,
        /// For each write or action in order, what it cost each secondary index it changed.
        indexes: Vec<Vec<IndexCharge>>,
        /// A transaction whose `ClientRequestToken` had already applied: nothing was written.
        replayed: bool,
    },
}

/// One secondary index's share of an item write, from which its capacity units follow.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexCharge {
    /// Index name.
    pub index: String,
    /// Global or local.
    pub kind: IndexKind,
    /// The size in bytes of each entry write the index took: one for an entry added, removed
    /// or rewritten in place (the larger of its old and new sizes), two (the old entry
    /// deleted, the new one put) when the write changed the item's index key.
    pub writes: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_encoded_with_its_time_decodes_as_at() {
        let command = Command::DeleteTable { name: "t".into() };
        let bytes = command.encode_at(1_700_000_000_123).expect("encode");
        let want = Command::At {
            at_ms: 1_700_000_000_123,
            command: Box::new(command),
        };
        assert_eq!(Command::decode(&bytes).expect("decode"), want);
        assert_eq!(want.encode().expect("encode"), bytes);
    }
}
