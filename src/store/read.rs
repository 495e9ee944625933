//! Reads over a redb read transaction: describe, list, get, query and scan.
//!
//! Each call opens one read transaction, so a table's metadata and its items are read from the
//! same consistent snapshot. Reads never block the writer (redb MVCC).

use std::ops::Bound;

use redb::{ReadTransaction, ReadableDatabase, ReadableTableMetadata};

use crate::model::expr::key_condition::SortKeyCondition;
use crate::model::key::{encode_key_prefix, encode_key_value};
use crate::model::table::{TableDescription, TableMeta, TableSettings, TableStatus};
use crate::model::{AttributeValue, Item, PrimaryKey};
use crate::store::Store;
use crate::store::apply::table_not_found;
use crate::store::tables::{
    ITEMS, STATS, StoredItem, TABLES, decode_meta, item_key, prefix_end, table_prefix,
};
use crate::{Error, Result};

/// DynamoDB stops a Query or Scan page after reading this much item data.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// One page of a Query or Scan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// Items in the page, in the order read.
    pub items: Vec<Item>,
    /// Items evaluated (equal to `items.len()` until filters exist).
    pub scanned: usize,
    /// The key of the last item evaluated, when more items may follow.
    pub last_key: Option<PrimaryKey>,
    /// The items' total size in bytes (what DynamoDB charges a Query or Scan for).
    pub bytes: u64,
}

/// Which part of a table to read.
pub struct Range<'a> {
    /// Partition key value; `None` scans the whole table.
    pub partition: Option<&'a AttributeValue>,
    /// Condition on the sort key (Query only).
    pub sort: Option<&'a SortKeyCondition>,
    /// Read in ascending key order.
    pub forward: bool,
    /// Maximum number of items to evaluate.
    pub limit: Option<usize>,
    /// Resume after this key (ExclusiveStartKey).
    pub start_after: Option<&'a PrimaryKey>,
    /// A parallel Scan's `(Segment, TotalSegments)`: only items whose partition key hashes to
    /// that segment are evaluated.
    pub segment: Option<(u32, u32)>,
}

/// The parallel-scan segment of a partition key value among `total`: a stable hash of its
/// encoding, so a partition's items all fall in one segment, the same on every replica.
pub fn segment_of(partition: &AttributeValue, total: u32) -> u32 {
    let mut bytes = Vec::new();
    crate::model::key::encode_key_value(partition, &mut bytes);
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    u32::try_from(hash % u64::from(total.max(1))).unwrap_or(0)
}

fn open_tables(
    txn: &ReadTransaction,
) -> Result<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>> {
    match txn.open_table(TABLES) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn meta_in(txn: &ReadTransaction, name: &str) -> Result<Option<TableMeta>> {
    let Some(tables) = open_tables(txn)? else {
        return Ok(None);
    };
    let row = tables.get(name)?;
    row.map(|v| decode_meta(v.value())).transpose()
}

impl Store {
    fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db().begin_read()?)
    }

    /// The table named `name`, if it exists.
    pub fn table(&self, name: &str) -> Result<Option<TableMeta>> {
        meta_in(&self.read()?, name)
    }

    /// DescribeTable: the table with its live item count and size.
    pub fn describe(&self, name: &str) -> Result<TableDescription> {
        let txn = self.read()?;
        let meta = meta_in(&txn, name)?.ok_or_else(|| {
            Error::ResourceNotFound(format!(
                "Requested resource not found: Table: {name} not found"
            ))
        })?;
        let (item_count, size_bytes) = match txn.open_table(STATS) {
            Ok(stats) => stats.get(meta.id)?.map(|v| v.value()).unwrap_or((0, 0)),
            Err(redb::TableError::TableDoesNotExist(_)) => (0, 0),
            Err(e) => return Err(e.into()),
        };
        Ok(TableDescription {
            meta,
            status: TableStatus::Active,
            item_count,
            size_bytes,
        })
    }

    /// Table names in order, after `start_after`, at most `limit`; plus the last name returned
    /// when more follow.
    pub fn list_tables(
        &self,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        let txn = self.read()?;
        let Some(tables) = open_tables(&txn)? else {
            return Ok((Vec::new(), None));
        };
        let lower = start_after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut names = Vec::new();
        let mut more = false;
        for row in tables.range::<&str>((lower, Bound::Unbounded))? {
            let (k, _) = row?;
            if names.len() == limit {
                more = true;
                break;
            }
            names.push(k.value().to_string());
        }
        let last = if more { names.last().cloned() } else { None };
        Ok((names, last))
    }

    /// The number of tables.
    pub fn table_count(&self) -> Result<usize> {
        let txn = self.read()?;
        match open_tables(&txn)? {
            Some(t) => Ok(t.len()? as usize),
            None => Ok(0),
        }
    }

    /// GetItem: the item with `key` in `table`, validating the key against the schema.
    pub fn get_item(&self, table: &str, key: &Item) -> Result<Option<Item>> {
        let txn = self.read()?;
        get_in(&txn, table, key)
    }

    /// One item's stored row, undecoded (see [`StoredItem::item`]), so a caller can decide
    /// where the decoding of a large one runs.
    pub fn get_stored(&self, table: &str, key: &Item) -> Result<Option<Vec<u8>>> {
        let txn = self.read()?;
        stored_in(&txn, table, key, |row| Ok(row.to_vec()))
    }

    /// A table's metadata and settings (tags, point-in-time recovery).
    pub fn settings(&self, table: &str) -> Result<(TableMeta, TableSettings)> {
        let txn = self.read()?;
        let meta = meta_in(&txn, table)?.ok_or_else(table_not_found)?;
        let settings = match txn.open_table(crate::store::tables::SETTINGS) {
            Ok(t) => match t.get(meta.id)? {
                Some(v) => postcard::from_bytes(v.value())
                    .map_err(|e| Error::internal(format!("undecodable table settings: {e}")))?,
                None => TableSettings::default(),
            },
            Err(redb::TableError::TableDoesNotExist(_)) => TableSettings::default(),
            Err(e) => return Err(e.into()),
        };
        Ok((meta, settings))
    }

    /// Every item of `table` with its version (the log index of its last write), for the
    /// simulation's checks of what each replica holds.
    pub fn versions(&self, table: &str) -> Result<Vec<(Item, u64)>> {
        let txn = self.read()?;
        let meta = meta_in(&txn, table)?.ok_or_else(table_not_found)?;
        let items = match txn.open_table(ITEMS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let prefix = crate::store::tables::table_prefix(meta.id);
        let mut out = Vec::new();
        for row in items.range::<&[u8]>(prefix.as_slice()..)? {
            let (k, v) = row?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            let bytes = v.value();
            out.push((StoredItem::item(bytes)?, StoredItem::header(bytes)?.0));
        }
        Ok(out)
    }

    /// Several items, all read in one transaction: one consistent snapshot of the state, as
    /// TransactGetItems promises.
    pub fn get_items(&self, keys: &[(String, Item)]) -> Result<Vec<Option<Item>>> {
        let txn = self.read()?;
        keys.iter()
            .map(|(table, key)| get_in(&txn, table, key))
            .collect()
    }

    /// Query (with a partition) or Scan (without) over `table`.
    pub fn read_range(&self, table: &str, range: &Range<'_>) -> Result<Page> {
        let txn = self.read()?;
        let meta = meta_in(&txn, table)?.ok_or_else(table_not_found)?;
        let items = match txn.open_table(ITEMS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Page::default()),
            Err(e) => return Err(e.into()),
        };
        let (lower, upper, must_start_with) = bounds(&meta, range);
        if is_empty(&lower, &upper) {
            return Ok(Page::default());
        }
        let iter = items.range::<&[u8]>((as_ref(&lower), as_ref(&upper)))?;
        let iter: Box<dyn Iterator<Item = _>> = if range.forward {
            Box::new(iter)
        } else {
            Box::new(iter.rev())
        };
        let mut page = Page::default();
        let mut bytes = 0usize;
        let mut last_key = None;
        for row in iter {
            let (k, v) = row?;
            let key_bytes = k.value();
            if !key_bytes.starts_with(&must_start_with) {
                if range.forward {
                    break;
                }
                continue;
            }
            if bytes >= MAX_PAGE_BYTES {
                page.last_key = last_key;
                return Ok(page);
            }
            let key = PrimaryKey::decode(&meta.spec.key_schema, &key_bytes[8..])?;
            if let (Some(cond), Some(sk)) = (range.sort, key.sort.as_ref())
                && !cond.matches(sk)
            {
                continue;
            }
            if let Some((segment, total)) = range.segment
                && segment_of(&key.partition, total) != segment
            {
                continue;
            }
            let (_, size) = StoredItem::header(v.value())?;
            bytes += size as usize;
            page.bytes += u64::from(size);
            page.items.push(StoredItem::item(v.value())?);
            page.scanned += 1;
            // As DynamoDB does, a page that reached its Limit names its last key even when no
            // item follows: the client learns that only from an empty next page.
            if page.scanned == range.limit.unwrap_or(usize::MAX) {
                page.last_key = Some(key);
                return Ok(page);
            }
            last_key = Some(key);
        }
        Ok(page)
    }
}

/// True if no key lies between the bounds (redb, like `BTreeMap`, must not be asked for an
/// inverted range).
fn is_empty(lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
        _ => false,
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Byte bounds for a read, plus a prefix every key in range must start with (begins_with
/// and the partition or table itself).
fn bounds(meta: &TableMeta, range: &Range<'_>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>, Vec<u8>) {
    let mut prefix = table_prefix(meta.id).to_vec();
    if let Some(pk) = range.partition {
        encode_key_value(pk, &mut prefix);
    }
    let with = |v: &AttributeValue| {
        let mut k = prefix.clone();
        encode_key_value(v, &mut k);
        k
    };
    let start = Bound::Included(prefix.clone());
    let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let mut must = prefix.clone();
    let (mut lower, mut upper) = match range.sort {
        None => (start, end),
        Some(SortKeyCondition::Eq(v)) => (Bound::Included(with(v)), Bound::Included(with(v))),
        Some(SortKeyCondition::Lt(v)) => (start, Bound::Excluded(with(v))),
        Some(SortKeyCondition::Le(v)) => (start, Bound::Included(with(v))),
        Some(SortKeyCondition::Gt(v)) => (Bound::Excluded(with(v)), end),
        Some(SortKeyCondition::Ge(v)) => (Bound::Included(with(v)), end),
        Some(SortKeyCondition::Between(a, b)) => {
            (Bound::Included(with(a)), Bound::Included(with(b)))
        }
        Some(SortKeyCondition::BeginsWith(p)) => {
            encode_key_prefix(p, &mut must);
            (
                Bound::Included(must.clone()),
                prefix_end(&must).map_or(Bound::Unbounded, Bound::Excluded),
            )
        }
    };
    if let Some(after) = range.start_after {
        let k = item_key(meta.id, after);
        if range.forward {
            lower = tighter_lower(lower, k);
        } else {
            upper = tighter_upper(upper, k);
        }
    }
    (lower, upper, must)
}

fn tighter_lower(current: Bound<Vec<u8>>, after: Vec<u8>) -> Bound<Vec<u8>> {
    match &current {
        Bound::Included(c) | Bound::Excluded(c) if *c > after => current,
        _ => Bound::Excluded(after),
    }
}

fn tighter_upper(current: Bound<Vec<u8>>, before: Vec<u8>) -> Bound<Vec<u8>> {
    match &current {
        Bound::Included(c) | Bound::Excluded(c) if *c < before => current,
        _ => Bound::Excluded(before),
    }
}

/// The item with `key` in `table` as `txn` sees it, validating the key against the schema.
fn get_in(txn: &ReadTransaction, table: &str, key: &Item) -> Result<Option<Item>> {
    stored_in(txn, table, key, StoredItem::item)
}

/// Looks up one item and hands its stored row to `decode`.
fn stored_in<T>(
    txn: &ReadTransaction,
    table: &str,
    key: &Item,
    decode: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<Option<T>> {
    let meta = meta_in(txn, table)?.ok_or_else(table_not_found)?;
    let key = meta.spec.key_schema.key_from_map(key)?;
    let items = match txn.open_table(ITEMS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let row = items.get(item_key(meta.id, &key).as_slice())?;
    row.map(|v| decode(v.value())).transpose()
}
