//! A table's durable description: name, key schema, indexes, billing, identity and status.

use serde::{Deserialize, Serialize};

use crate::model::index::IndexSpec;
use crate::model::{KeyAttribute, KeySchema};

/// How a table is billed. kvsim does not throttle; the setting is kept so DescribeTable
/// answers what CreateTable was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Billing {
    /// On-demand (`PAY_PER_REQUEST`).
    PayPerRequest,
    /// Provisioned capacity units.
    Provisioned {
        /// ReadCapacityUnits.
        read: u64,
        /// WriteCapacityUnits.
        write: u64,
    },
}

/// A table's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableStatus {
    /// Usable. kvsim tables are active as soon as CreateTable returns.
    Active,
    /// Being deleted (only ever seen in DeleteTable's answer).
    Deleting,
}

impl TableStatus {
    /// DynamoDB's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TableStatus::Active => "ACTIVE",
            TableStatus::Deleting => "DELETING",
        }
    }
}

/// Everything CreateTable decides about a table. The leader fills in the identity and time
/// before proposing, so applying it is deterministic on every replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSpec {
    /// Table name.
    pub name: String,
    /// Partition and optional sort key.
    pub key_schema: KeySchema,
    /// Declared attributes (the key attributes).
    pub attribute_definitions: Vec<KeyAttribute>,
    /// Billing mode.
    pub billing: Billing,
    /// TableId (a UUID).
    pub table_uuid: String,
    /// TableArn.
    pub arn: String,
    /// CreationDateTime, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// A table's settings that CreateTable does not set: its tags and whether point-in-time
/// recovery is on (accepted and reported; kvsim takes no backups yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSettings {
    /// Tags, key to value.
    pub tags: std::collections::BTreeMap<String, String>,
    /// `PointInTimeRecoveryEnabled`.
    pub point_in_time_recovery: bool,
}

/// A table as stored: its spec plus the log index that created it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    /// What CreateTable asked for.
    pub spec: TableSpec,
    /// The Raft log index of the CreateTable; unique for the life of the cluster, so a table
    /// re-created under the same name never sees the old table's items.
    pub id: u64,
    /// Secondary indexes, global and local, in the order they were asked for.
    pub indexes: Vec<IndexSpec>,
}

impl TableMeta {
    /// The index named `name`, if the table has it.
    pub fn index(&self, name: &str) -> Option<&IndexSpec> {
        self.indexes.iter().find(|i| i.name == name)
    }
}

/// DescribeTable's view: the stored meta plus live figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDescription {
    /// The table.
    pub meta: TableMeta,
    /// Status to report.
    pub status: TableStatus,
    /// Number of items.
    pub item_count: u64,
    /// Sum of item sizes in bytes, as DynamoDB counts them.
    pub size_bytes: u64,
    /// Each index's `(item count, size in bytes)`, in the order of `meta.indexes`.
    pub index_stats: Vec<(u64, u64)>,
}
