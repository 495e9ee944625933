//! DynamoDB Streams' data model: a table's stream, its view type, and the change records
//! applied writes leave in it.
//!
//! A stream is named by the log index of the entry that enabled it (its id) and labelled with
//! that entry's time, as DynamoDB labels streams. A record's sequence number is derived from
//! the log index of the write that made it: `index * 1000 + position`, the position counting
//! the records one entry made (a batch or transaction writes up to 100 items), so every
//! replica numbers every record alike and numbers sort in log order.

use serde::{Deserialize, Serialize};

use crate::model::Item;

/// How many records one log entry may make: the factor between a log index and its records'
/// sequence numbers.
pub const RECORDS_PER_ENTRY: u64 = 1000;

/// What a stream record carries besides the key (`StreamViewType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamView {
    /// Only the key attributes.
    KeysOnly,
    /// The item as the write left it.
    NewImage,
    /// The item as it was before the write.
    OldImage,
    /// Both.
    NewAndOldImages,
}

impl StreamView {
    /// DynamoDB's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamView::KeysOnly => "KEYS_ONLY",
            StreamView::NewImage => "NEW_IMAGE",
            StreamView::OldImage => "OLD_IMAGE",
            StreamView::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }

    /// Parses DynamoDB's spelling.
    pub fn parse(s: &str) -> Option<StreamView> {
        Some(match s {
            "KEYS_ONLY" => StreamView::KeysOnly,
            "NEW_IMAGE" => StreamView::NewImage,
            "OLD_IMAGE" => StreamView::OldImage,
            "NEW_AND_OLD_IMAGES" => StreamView::NewAndOldImages,
            _ => return None,
        })
    }

    /// A one-byte code for the table -> stream row (never 0, which means "disabled").
    pub fn code(self) -> u8 {
        match self {
            StreamView::KeysOnly => 1,
            StreamView::NewImage => 2,
            StreamView::OldImage => 3,
            StreamView::NewAndOldImages => 4,
        }
    }

    /// The view a [`StreamView::code`] stands for.
    pub fn from_code(code: u8) -> Option<StreamView> {
        Some(match code {
            1 => StreamView::KeysOnly,
            2 => StreamView::NewImage,
            3 => StreamView::OldImage,
            4 => StreamView::NewAndOldImages,
            _ => return None,
        })
    }

    /// Whether records keep the item as the write left it.
    pub fn keeps_new(self) -> bool {
        matches!(self, StreamView::NewImage | StreamView::NewAndOldImages)
    }

    /// Whether records keep the item as it was before the write.
    pub fn keeps_old(self) -> bool {
        matches!(self, StreamView::OldImage | StreamView::NewAndOldImages)
    }
}

/// One stream, enabled or no longer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The log index of the entry that enabled it.
    pub id: u64,
    /// Its table's name.
    pub table: String,
    /// Its table's id.
    pub table_id: u64,
    /// Its table's ARN; the stream's ARN is this plus `/stream/` and the label.
    pub table_arn: String,
    /// Its table's key schema (DescribeStream shows it after the table is gone).
    pub key_schema: crate::model::KeySchema,
    /// What its records carry.
    pub view: StreamView,
    /// When it was enabled, ms since the epoch (the log entry's time).
    pub created_ms: u64,
    /// `StreamLabel`: `created_ms` as an ISO 8601 time, made unique per table.
    pub label: String,
    /// When it was disabled (or its table deleted), ms since the epoch; `None` while enabled.
    pub disabled_ms: Option<u64>,
    /// The first sequence number still kept: records before it were trimmed after the
    /// retention period.
    pub trimmed_to: u64,
    /// Log entries per shard: shard `k` holds the records of entries `id + k * shard_entries`
    /// up to the next shard's first (DynamoDB rolls shards every few hours; kvsim by log
    /// position, so every replica has the same shards).
    pub shard_entries: u64,
}

impl StreamInfo {
    /// A stream of `meta`'s table enabled at `created_ms` (and labelled by it), enabled.
    pub fn new(
        meta: &crate::model::table::TableMeta,
        id: u64,
        view: StreamView,
        created_ms: u64,
        shard_entries: u64,
    ) -> StreamInfo {
        StreamInfo {
            id,
            table: meta.spec.name.clone(),
            table_id: meta.id,
            table_arn: meta.spec.arn.clone(),
            key_schema: meta.spec.key_schema.clone(),
            view,
            created_ms,
            label: label_at(created_ms),
            disabled_ms: None,
            trimmed_to: 0,
            shard_entries,
        }
    }

    /// `StreamArn`.
    pub fn arn(&self) -> String {
        format!("{}/stream/{}", self.table_arn, self.label)
    }

    /// `StreamStatus`.
    pub fn status(&self) -> &'static str {
        if self.disabled_ms.is_some() {
            "DISABLED"
        } else {
            "ENABLED"
        }
    }

    /// The first sequence number the stream could hold.
    pub fn first_seq(&self) -> u64 {
        self.trimmed_to
            .max(self.id.saturating_mul(RECORDS_PER_ENTRY))
    }

    /// The shard sequence number `seq` belongs to.
    pub fn shard_of(&self, seq: u64) -> u64 {
        seq_version(seq).saturating_sub(self.id) / self.shard_entries.max(1)
    }

    /// The first sequence number of shard `k`'s range (before any trimming).
    pub fn shard_start(&self, k: u64) -> u64 {
        k.saturating_mul(self.shard_entries.max(1))
            .saturating_add(self.id)
            .saturating_mul(RECORDS_PER_ENTRY)
    }

    /// The id of shard `k`.
    pub fn shard_id(&self, k: u64) -> String {
        format!("shardId-{:020}-{:08x}-{k:06}", self.created_ms, self.id)
    }

    /// The shard a [`StreamInfo::shard_id`] names, if it is one of this stream's.
    pub fn parse_shard(&self, text: &str) -> Option<u64> {
        let prefix = format!("shardId-{:020}-{:08x}-", self.created_ms, self.id);
        text.strip_prefix(&prefix)?.parse().ok()
    }
}

/// What a write did to an item (`eventName`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamEvent {
    /// A new item.
    Insert,
    /// An item changed.
    Modify,
    /// An item deleted.
    Remove,
}

impl StreamEvent {
    /// DynamoDB's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamEvent::Insert => "INSERT",
            StreamEvent::Modify => "MODIFY",
            StreamEvent::Remove => "REMOVE",
        }
    }
}

/// One change record, as applied writes leave them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// The write's log entry time, ms since the epoch (`ApproximateCreationDateTime`).
    pub at_ms: u64,
    /// What happened.
    pub event: StreamEvent,
    /// The item's key attributes.
    pub keys: Item,
    /// The item before, when the view keeps it.
    pub old: Option<Item>,
    /// The item after, when the view keeps it.
    pub new: Option<Item>,
    /// `SizeBytes`: the key and the images kept, as DynamoDB sizes items.
    pub size: u64,
    /// Made by time to live, not by a client (`userIdentity` is then DynamoDB's service).
    pub by_ttl: bool,
}

impl StreamRecord {
    /// The record a write from `old` to `new` leaves in a stream with `view`, at `at_ms`:
    /// `None` for a write that changed nothing (DynamoDB records none).
    pub fn of_write(
        view: StreamView,
        at_ms: u64,
        keys: Item,
        old: Option<&Item>,
        new: Option<&Item>,
        by_ttl: bool,
    ) -> Option<StreamRecord> {
        let event = match (old, new) {
            (None, None) => return None,
            (Some(a), Some(b)) if a == b => return None,
            (None, Some(_)) => StreamEvent::Insert,
            (Some(_), Some(_)) => StreamEvent::Modify,
            (Some(_), None) => StreamEvent::Remove,
        };
        let old = old.filter(|_| view.keeps_old()).cloned();
        let new = new.filter(|_| view.keeps_new()).cloned();
        let size = [Some(&keys), old.as_ref(), new.as_ref()]
            .into_iter()
            .flatten()
            .map(|i| crate::model::item::item_size(i) as u64)
            .sum();
        Some(StreamRecord {
            at_ms,
            event,
            keys,
            old,
            new,
            size,
            by_ttl,
        })
    }
}

/// A sequence number as DynamoDB writes them: decimal digits, at least 21.
pub fn format_seq(seq: u64) -> String {
    format!("{seq:021}")
}

/// Parses a sequence number: 21 to 40 decimal digits naming a record kvsim could have made.
pub fn parse_seq(s: &str) -> Option<u64> {
    if s.len() < 21 || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The log index a record's sequence number comes from: the item's version after the write.
pub fn seq_version(seq: u64) -> u64 {
    seq / RECORDS_PER_ENTRY
}

/// A stream label for a time: `YYYY-MM-DDTHH:MM:SS.mmm`, as DynamoDB labels streams.
pub fn label_at(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    let text = humantime::format_rfc3339_millis(t).to_string();
    text.trim_end_matches('Z').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_sort_as_text_in_log_order_and_parse_back() {
        let seqs = [0, 1, 999, 1000, 12_345_678, u64::MAX / 2];
        let texts: Vec<String> = seqs.iter().map(|s| format_seq(*s)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, texts);
        for (seq, text) in seqs.iter().zip(&texts) {
            assert_eq!(parse_seq(text), Some(*seq));
        }
        assert_eq!(parse_seq("12"), None);
        assert_eq!(parse_seq("0000000000000000000x1"), None);
        assert_eq!(parse_seq(&"9".repeat(40)), None); // beyond u64
        assert_eq!(seq_version(42 * RECORDS_PER_ENTRY + 7), 42);
    }

    #[test]
    fn shards_cover_ranges_of_log_entries() {
        let info = StreamInfo {
            id: 10,
            table: "t".into(),
            table_id: 1,
            table_arn: "arn".into(),
            key_schema: crate::model::KeySchema {
                partition: crate::model::KeyAttribute {
                    name: "pk".into(),
                    key_type: crate::model::KeyType::S,
                },
                sort: None,
            },
            view: StreamView::KeysOnly,
            created_ms: 5,
            label: "l".into(),
            disabled_ms: None,
            trimmed_to: 0,
            shard_entries: 4,
        };
        assert_eq!(info.shard_of(10 * RECORDS_PER_ENTRY), 0);
        assert_eq!(info.shard_of(13 * RECORDS_PER_ENTRY + 999), 0);
        assert_eq!(info.shard_of(14 * RECORDS_PER_ENTRY), 1);
        assert_eq!(info.shard_start(1), 14 * RECORDS_PER_ENTRY);
        assert_eq!(info.parse_shard(&info.shard_id(7)), Some(7));
        assert_eq!(info.parse_shard("shardId-0"), None);
        assert!((28..=65).contains(&info.shard_id(999_999).len()));
    }

    #[test]
    fn labels_are_dynamodb_times_and_views_round_trip() {
        assert_eq!(label_at(1_431_379_293_291), "2015-05-11T21:21:33.291");
        for view in [
            StreamView::KeysOnly,
            StreamView::NewImage,
            StreamView::OldImage,
            StreamView::NewAndOldImages,
        ] {
            assert_eq!(StreamView::parse(view.as_str()), Some(view));
            assert_eq!(StreamView::from_code(view.code()), Some(view));
        }
        assert_eq!(StreamView::from_code(0), None);
    }
}
