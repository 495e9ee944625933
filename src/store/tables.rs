//! Every redb table of the state machine, and how rows are encoded. One place per fact.
//!
//! - `TABLES`: table name -> postcard [`TableMeta`].
//! - `ITEMS`: `table id (u64 BE) ++ PrimaryKey::encode()` -> [`StoredItem`] bytes. Key bytes
//!   sort as DynamoDB orders keys, so one partition is one contiguous range in sort-key order.
//!   The items themselves live in memory with a log of their own ([`super::items`]), keyed
//!   the same way; this table only holds those of a node written by an older kvsim, until it
//!   opens and moves them.
//! - `ITEM_LOG`: `"at"` -> where the items' log ended at this commit, `(generation, offset)`.
//! - `STATS`: table id -> `(item count, total item bytes)`.
//! - `INDEX_ITEMS`: a secondary index entry's key (table id, index id, index key, primary key;
//!   see [`crate::model::index`]) -> [`StoredItem`] bytes of what the index projects.
//! - `INDEX_STATS`: `(table id, index id)` -> `(entry count, total entry bytes)`.
//! - `SETTINGS`: table id -> postcard `TableSettings`, for tables that have any.
//! - `PURGES`: ids of deleted tables whose rows are still being removed, a batch per entry.
//! - `TOKENS`: a transaction's `ClientRequestToken` -> `(at_ms, fingerprint)` of the
//!   transaction that used it; `TOKEN_TIMES`: `(at_ms, token)` -> `()`, to expire them in order.
//! - `STREAMS`: stream id -> postcard [`crate::model::stream::StreamInfo`]; `TABLE_STREAMS`:
//!   table id -> `(latest stream id, view code or 0 once disabled)`; `STREAM_RECORDS`:
//!   `(stream id, sequence number)` -> postcard [`crate::model::stream::StreamRecord`].

use redb::TableDefinition;

use crate::model::table::{TableMeta, TableSettings};
use crate::model::{Item, PrimaryKey};
use crate::{Error, Result};

/// Table name -> postcard-encoded `TableMeta`.
pub const TABLES: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_tables");
/// Encoded item key -> encoded `StoredItem`.
pub const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_items");
/// `"at"` -> `(generation, offset)`: where the items' log ([`super::items`]) ended at this commit.
pub const ITEM_LOG: TableDefinition<&str, (u64, u64)> = TableDefinition::new("sm_item_log");
/// Table id -> (item count, size in bytes).
pub const STATS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("sm_stats");
/// Index entry key (see [`crate::model::index`]) -> encoded `StoredItem` of the projected item.
pub const INDEX_ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sm_index_items");
/// (table id, index id) -> (entry count, size in bytes).
pub const INDEX_STATS: TableDefinition<(u64, u32), (u64, u64)> =
    TableDefinition::new("sm_index_stats");
/// Table id -> postcard-encoded `TableSettings` (tags, point-in-time recovery).
pub const SETTINGS: TableDefinition<u64, &[u8]> = TableDefinition::new("sm_settings");
/// Ids of deleted tables whose rows (items, index entries) are still being removed in batches.
pub const PURGES: TableDefinition<u64, ()> = TableDefinition::new("sm_purges");
/// ClientRequestToken -> (when it was used, ms; fingerprint of the transaction).
pub const TOKENS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("sm_tokens");
/// (when a token was used, ms; the token) -> (), oldest first, for expiry.
pub const TOKEN_TIMES: TableDefinition<(u64, &str), ()> = TableDefinition::new("sm_token_times");

/// Stream id (the log index that enabled it) -> postcard-encoded `StreamInfo`.
pub const STREAMS: TableDefinition<u64, &[u8]> = TableDefinition::new("sm_streams");
/// Table id -> (its latest stream's id, that stream's view code, or 0 once it is disabled).
pub const TABLE_STREAMS: TableDefinition<u64, (u64, u8)> = TableDefinition::new("sm_table_streams");
/// (stream id, sequence number) -> postcard-encoded `StreamRecord`.
pub const STREAM_RECORDS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("sm_stream_records");

/// The bytes that prefix every item key of table `id`.
pub fn table_prefix(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The ITEMS key of `key` in table `id`.
pub fn item_key(id: u64, key: &PrimaryKey) -> Vec<u8> {
    let mut out = table_prefix(id).to_vec();
    out.extend_from_slice(&key.encode());
    out
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` if
/// there is none (all bytes 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The first byte of a `TableMeta` row: its format. Rows written before tables had indexes
/// have none and start with the table name's length (at least 3), so they never mix up.
const META_WITH_INDEXES: u8 = 0;
/// Indexes that can be backfilled (the current format; an index's `state` was an optional
/// backfill position before indexes could be deleted, which encodes the same bytes).
const META_WITH_BACKFILL: u8 = 1;

/// A `TableMeta` row as kvsim wrote it before indexes.
#[derive(serde::Deserialize)]
struct MetaBeforeIndexes {
    spec: crate::model::table::TableSpec,
    id: u64,
}

/// A `TableMeta` row of the first format with indexes (no backfill state).
#[derive(serde::Deserialize)]
struct MetaBeforeBackfill {
    spec: crate::model::table::TableSpec,
    id: u64,
    indexes: Vec<IndexBeforeBackfill>,
}

#[derive(serde::Deserialize)]
struct IndexBeforeBackfill {
    name: String,
    kind: crate::model::index::IndexKind,
    id: u32,
    partition: Vec<crate::model::KeyAttribute>,
    sort: Vec<crate::model::KeyAttribute>,
    projection: crate::model::index::Projection,
    throughput: Option<(u64, u64)>,
}

/// Encodes a `TableMeta` row.
pub fn encode_meta(meta: &TableMeta) -> Result<Vec<u8>> {
    let mut out = vec![META_WITH_BACKFILL];
    out.extend_from_slice(&postcard::to_stdvec(meta)?);
    Ok(out)
}

/// Decodes a `TableMeta` row of any format kvsim has written.
pub fn decode_meta(bytes: &[u8]) -> Result<TableMeta> {
    let corrupt = |e: postcard::Error| Error::internal(format!("corrupt table metadata: {e}"));
    match bytes.split_first() {
        Some((&META_WITH_BACKFILL, rest)) => postcard::from_bytes(rest).map_err(corrupt),
        Some((&META_WITH_INDEXES, rest)) => {
            let old: MetaBeforeBackfill = postcard::from_bytes(rest).map_err(corrupt)?;
            Ok(TableMeta {
                spec: old.spec,
                id: old.id,
                indexes: old
                    .indexes
                    .into_iter()
                    .map(|i| crate::model::index::IndexSpec {
                        name: i.name,
                        kind: i.kind,
                        id: i.id,
                        partition: i.partition,
                        sort: i.sort,
                        projection: i.projection,
                        throughput: i.throughput,
                        state: crate::model::index::IndexState::Active,
                    })
                    .collect(),
            })
        }
        _ => {
            let old: MetaBeforeIndexes = postcard::from_bytes(bytes).map_err(corrupt)?;
            Ok(TableMeta {
                spec: old.spec,
                id: old.id,
                indexes: Vec::new(),
            })
        }
    }
}

/// A `TableSettings` row as kvsim wrote it before time to live.
#[derive(serde::Deserialize)]
struct SettingsBeforeTtl {
    tags: std::collections::BTreeMap<String, String>,
    point_in_time_recovery: bool,
}

/// Encodes a `SETTINGS` row.
pub fn encode_settings(settings: &TableSettings) -> Result<Vec<u8>> {
    Ok(postcard::to_stdvec(settings)?)
}

/// Decodes a `SETTINGS` row of any format kvsim has written. Rows from before time to live
/// end where its field would start, so they fail to decode as the current format (and a
/// current row never decodes as an old one: decoding stops short of its last field only
/// when asked for the old shape, which is tried second).
pub fn decode_settings(bytes: &[u8]) -> Result<TableSettings> {
    match postcard::take_from_bytes::<TableSettings>(bytes) {
        Ok((settings, [])) => Ok(settings),
        _ => {
            let old: SettingsBeforeTtl = postcard::from_bytes(bytes)
                .map_err(|e| Error::internal(format!("undecodable table settings: {e}")))?;
            Ok(TableSettings {
                tags: old.tags,
                point_in_time_recovery: old.point_in_time_recovery,
                ttl: None,
            })
        }
    }
}

/// An item as stored: its version (the log index of its last write), its DynamoDB size, and
/// the attributes. The fixed header lets a write learn the old size without decoding the item.
pub struct StoredItem;

const HEADER: usize = 12;

impl StoredItem {
    /// Encodes an item row.
    pub fn encode(version: u64, size: u32, item: &Item) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(HEADER + 64);
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&size.to_be_bytes());
        Ok(postcard::to_extend(item, out)?)
    }

    /// The version and size from a row's header.
    pub fn header(bytes: &[u8]) -> Result<(u64, u32)> {
        if bytes.len() < HEADER {
            return Err(Error::internal("corrupt item row: shorter than its header"));
        }
        let mut v = [0u8; 8];
        let mut s = [0u8; 4];
        v.copy_from_slice(&bytes[..8]);
        s.copy_from_slice(&bytes[8..HEADER]);
        Ok((u64::from_be_bytes(v), u32::from_be_bytes(s)))
    }

    /// The attributes of a row.
    pub fn item(bytes: &[u8]) -> Result<Item> {
        if bytes.len() < HEADER {
            return Err(Error::internal("corrupt item row: shorter than its header"));
        }
        postcard::from_bytes(&bytes[HEADER..])
            .map_err(|e| Error::internal(format!("corrupt item row: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_least_upper_bound() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(&[]), None);
    }

    #[test]
    fn settings_rows_written_before_ttl_still_decode() {
        #[derive(serde::Serialize)]
        struct Old {
            tags: std::collections::BTreeMap<String, String>,
            point_in_time_recovery: bool,
        }
        let tags = std::collections::BTreeMap::from([("team".to_string(), "db".to_string())]);
        let old = postcard::to_stdvec(&Old {
            tags: tags.clone(),
            point_in_time_recovery: true,
        })
        .expect("encode");
        let settings = decode_settings(&old).expect("old row");
        assert_eq!(
            settings,
            TableSettings {
                tags: tags.clone(),
                point_in_time_recovery: true,
                ttl: None,
            }
        );
        for ttl in [None, Some("expires".to_string())] {
            let new = TableSettings {
                tags: tags.clone(),
                point_in_time_recovery: false,
                ttl,
            };
            let bytes = encode_settings(&new).expect("encode");
            assert_eq!(decode_settings(&bytes).expect("new row"), new);
        }
        assert!(decode_settings(&[0xff]).is_err());
    }

    #[test]
    fn table_rows_written_before_indexes_still_decode() {
        use crate::model::index::IndexState;
        use crate::model::table::{Billing, TableSpec};
        use crate::model::{KeyAttribute, KeySchema, KeyType};
        #[derive(serde::Serialize)]
        struct Old<'a> {
            spec: &'a TableSpec,
            id: u64,
        }
        let spec = TableSpec {
            name: "abc".into(),
            key_schema: KeySchema {
                partition: KeyAttribute {
                    name: "pk".into(),
                    key_type: KeyType::S,
                },
                sort: None,
            },
            attribute_definitions: Vec::new(),
            billing: Billing::PayPerRequest,
            table_uuid: "u".into(),
            arn: "a".into(),
            created_at_ms: 1,
        };
        let old = postcard::to_stdvec(&Old { spec: &spec, id: 9 }).expect("encode");
        let meta = decode_meta(&old).expect("old row");
        assert_eq!(
            (meta.spec, meta.id, meta.indexes.len()),
            (spec.clone(), 9, 0)
        );
        // The first format with indexes: tag 0, indexes without backfill state.
        #[derive(serde::Serialize)]
        struct OldIndex {
            name: &'static str,
            kind: crate::model::index::IndexKind,
            id: u32,
            partition: Vec<KeyAttribute>,
            sort: Vec<KeyAttribute>,
            projection: crate::model::index::Projection,
            throughput: Option<(u64, u64)>,
        }
        #[derive(serde::Serialize)]
        struct OldWithIndexes<'a> {
            spec: &'a TableSpec,
            id: u64,
            indexes: Vec<OldIndex>,
        }
        let index = OldIndex {
            name: "gsi",
            kind: crate::model::index::IndexKind::Global,
            id: 1,
            partition: vec![KeyAttribute {
                name: "g".into(),
                key_type: KeyType::S,
            }],
            sort: Vec::new(),
            projection: crate::model::index::Projection::KeysOnly,
            throughput: None,
        };
        let mut tag0 = vec![0u8];
        tag0.extend(
            postcard::to_stdvec(&OldWithIndexes {
                spec: &spec,
                id: 11,
                indexes: vec![index],
            })
            .expect("encode"),
        );
        let meta = decode_meta(&tag0).expect("tag 0 row");
        assert_eq!((meta.id, meta.indexes.len()), (11, 1));
        assert_eq!(meta.indexes[0].name, "gsi");
        assert_eq!(meta.indexes[0].state, IndexState::Active);
        // Tag 1 before indexes could be deleted: the state was `Option<Backfill>`.
        #[derive(serde::Serialize)]
        struct Backfill {
            after: Option<Vec<u8>>,
        }
        // Postcard writes a nested struct as its fields in order: a tag 1 index is a tag 0
        // index followed by its backfill state.
        #[derive(serde::Serialize)]
        struct Tag1Index {
            index: OldIndex,
            backfill: Option<Backfill>,
        }
        #[derive(serde::Serialize)]
        struct Tag1<'a> {
            spec: &'a TableSpec,
            id: u64,
            indexes: Vec<Tag1Index>,
        }
        let tag1_index = |name, backfill| Tag1Index {
            index: OldIndex {
                name,
                kind: crate::model::index::IndexKind::Global,
                id: 2,
                partition: Vec::new(),
                sort: Vec::new(),
                projection: crate::model::index::Projection::All,
                throughput: Some((1, 2)),
            },
            backfill,
        };
        let mut tag1 = vec![1u8];
        tag1.extend(
            postcard::to_stdvec(&Tag1 {
                spec: &spec,
                id: 12,
                indexes: vec![
                    tag1_index("done", None),
                    tag1_index("filling", Some(Backfill { after: None })),
                    tag1_index(
                        "halfway",
                        Some(Backfill {
                            after: Some(vec![7, 8]),
                        }),
                    ),
                ],
            })
            .expect("encode"),
        );
        let meta = decode_meta(&tag1).expect("tag 1 row");
        let states: Vec<_> = meta.indexes.iter().map(|i| i.state.clone()).collect();
        assert_eq!(
            states,
            [
                IndexState::Active,
                IndexState::Backfilling { after: None },
                IndexState::Backfilling {
                    after: Some(vec![7, 8])
                }
            ]
        );
        assert_eq!(meta.indexes[2].throughput, Some((1, 2)));
        let new = TableMeta {
            spec,
            id: 10,
            indexes: Vec::new(),
        };
        assert_eq!(
            decode_meta(&encode_meta(&new).expect("encode")).expect("new row"),
            new
        );
    }
}
