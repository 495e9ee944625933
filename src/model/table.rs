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

/// A table's settings that CreateTable does not set: its tags, whether point-in-time
/// recovery is on (accepted and reported; kvsim takes no backups yet), and time to live.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSettings {
    /// Tags, key to value.
    pub tags: std::collections::BTreeMap<String, String>,
    /// `PointInTimeRecoveryEnabled`.
    pub point_in_time_recovery: bool,
    /// Time to live: the attribute holding each item's expiry (epoch seconds) while TTL is
    /// enabled, `None` while it is disabled.
    pub ttl: Option<String>,
}

/// How far in the past an expiry may lie and still be acted on: DynamoDB leaves items whose
/// time-to-live value is more than five years old alone (so a value in milliseconds, which
/// reads as far in the future, or a stray small number is never taken for an expiry).
pub const TTL_HORIZON_SECS: u64 = 5 * 365 * 24 * 3600;

/// Whether `item` has expired at `now` (epoch seconds) under time to live on `attribute`: the
/// attribute is a number of epoch seconds before `now`, and not more than [`TTL_HORIZON_SECS`]
/// before it. Any other item (no such attribute, another type) never expires.
pub fn ttl_expired(item: &crate::model::Item, attribute: &str, now: u64) -> bool {
    let Some(crate::model::AttributeValue::N(at)) = item.get(attribute) else {
        return false;
    };
    let (Ok(now_n), Ok(horizon)) = (
        crate::model::number::Number::parse(&now.to_string()),
        crate::model::number::Number::parse(&now.saturating_sub(TTL_HORIZON_SECS).to_string()),
    ) else {
        return false;
    };
    *at < now_n && *at >= horizon
}

/// The time-to-live attribute after UpdateTimeToLive asks to enable (`enabled`) or disable
/// it on `attribute`, where `current` is the attribute in force.
///
/// # Errors
/// DynamoDB's `ValidationException` for enabling it twice, disabling it when off, or
/// disabling it on another attribute than the one in force.
pub fn ttl_change(
    current: Option<&str>,
    attribute: String,
    enabled: bool,
) -> crate::Result<Option<String>> {
    match (current, enabled) {
        (Some(_), true) => Err(crate::Error::validation("TimeToLive is already enabled")),
        (None, false) => Err(crate::Error::validation("TimeToLive is already disabled")),
        (Some(current), false) if current != attribute => Err(crate::Error::validation(format!(
            "TimeToLive is active on a different AttributeName: current AttributeName is {current}"
        ))),
        _ => Ok(enabled.then_some(attribute)),
    }
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
    /// The table's latest stream, enabled or not, if it ever had one.
    pub stream: Option<crate::model::stream::StreamInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttributeValue, Item};

    fn item(value: AttributeValue) -> Item {
        Item::from([("exp".to_string(), value)])
    }

    fn n(s: &str) -> AttributeValue {
        AttributeValue::N(crate::model::number::Number::parse(s).expect("number"))
    }

    #[test]
    fn items_expire_once_their_time_has_passed_within_five_years() {
        let now = 1_800_000_000;
        assert!(ttl_expired(&item(n("1799999999")), "exp", now));
        assert!(ttl_expired(&item(n("1799999999.5")), "exp", now));
        // Not yet: at or after now.
        assert!(!ttl_expired(&item(n("1800000000")), "exp", now));
        assert!(!ttl_expired(&item(n("1800000001")), "exp", now));
        // Five years back is the limit; older values are left alone, as DynamoDB leaves them.
        let horizon = (now - TTL_HORIZON_SECS).to_string();
        assert!(ttl_expired(&item(n(&horizon)), "exp", now));
        let older = (now - TTL_HORIZON_SECS - 1).to_string();
        assert!(!ttl_expired(&item(n(&older)), "exp", now));
        // Milliseconds read as far in the future; other types and other attributes never expire.
        assert!(!ttl_expired(&item(n("1799999999000")), "exp", now));
        assert!(!ttl_expired(
            &item(AttributeValue::S("1".into())),
            "exp",
            now
        ));
        assert!(!ttl_expired(&item(n("1")), "other", now));
    }
}
