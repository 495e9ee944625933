//! Reads: describe, list, get, query and scan.
//!
//! Each call opens one redb read transaction for the tables' metadata and index entries (redb's
//! MVCC: it never blocks the writer), and holds the items' read lock ([`super::items`]) while it
//! reads items, so every item one call reads comes from one state.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::model::expr::key_condition::SortKeyCondition;
use crate::model::index::{IndexKind, IndexSpec, IndexState};
use crate::model::key::{encode_key_prefix, encode_key_value};
use crate::model::table::{TableDescription, TableMeta, TableSettings, TableStatus};
use crate::model::{AttributeValue, Item, KeySchema};
use crate::store::apply::table_not_found;
use bytes::Bytes;

use crate::store::items::{self, Tree};
use crate::store::tables::{
    INDEX_ITEMS, INDEX_STATS, STATS, StoredItem, TABLES, decode_meta, item_key, prefix_end,
    table_prefix,
};
use crate::store::{Command, Store};
use crate::{Error, Result};

/// One round of the time-to-live sweep ([`Store::expired_items`]).
#[derive(Debug, Default)]
pub struct Sweep {
    /// Per table, the keys of items found expired.
    pub expired: Vec<(String, Vec<Item>)>,
    /// Per table, the row the round stopped after; absent where it reached the table's end,
    /// so the next round starts over.
    pub cursors: BTreeMap<String, Vec<u8>>,
}

/// DynamoDB stops a Query or Scan page after reading this much item data.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// One page of a Query or Scan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// Items in the page, in the order read.
    pub items: Vec<Item>,
    /// Items evaluated (equal to `items.len()` until filters exist).
    pub scanned: usize,
    /// `LastEvaluatedKey`: the key of the last item evaluated (for an index, its key and the
    /// table's), when more items may follow.
    pub last_key: Option<Item>,
    /// The items' total size in bytes (what DynamoDB charges a Query or Scan for).
    pub bytes: u64,
}

/// Which part of a table (or of one of its indexes) to read.
pub struct Range<'a> {
    /// The index to read instead of the table.
    pub index: Option<&'a str>,
    /// Partition key value; `None` scans the whole table.
    pub partition: Option<&'a AttributeValue>,
    /// Further key values fixed by equality after the partition key's, in key order (the
    /// other attributes of a multi-attribute index key, then its leading sort attributes).
    pub then: &'a [AttributeValue],
    /// Condition on the sort key (Query only).
    pub sort: Option<&'a SortKeyCondition>,
    /// Read in ascending key order.
    pub forward: bool,
    /// Maximum number of items to evaluate.
    pub limit: Option<usize>,
    /// Resume after this key (`ExclusiveStartKey`: for an index, its key and the table's).
    pub start_after: Option<&'a Item>,
    /// For a local index that does not project everything: answer with each item as the table
    /// holds it (DynamoDB fetches what the index lacks from the table).
    pub fetch_from_table: bool,
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
        let index_stats = match txn.open_table(INDEX_STATS) {
            Ok(stats) => meta
                .indexes
                .iter()
                .map(|i| Ok(stats.get((meta.id, i.id))?.map_or((0, 0), |v| v.value())))
                .collect::<Result<Vec<_>>>()?,
            Err(redb::TableError::TableDoesNotExist(_)) => vec![(0, 0); meta.indexes.len()],
            Err(e) => return Err(e.into()),
        };
        Ok(TableDescription {
            stream: crate::store::streams::latest(&txn, meta.id)?,
            meta,
            status: TableStatus::Active,
            item_count,
            size_bytes,
            index_stats,
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

    /// The next command each deleted table still being purged and each global index being
    /// added or removed needs: a `PurgeTable`, a `Backfill` of the index's next batch, or a
    /// `RemoveIndexEntries`. The leader proposes them; empty when there is nothing to do.
    pub fn index_work(&self) -> Result<Vec<Command>> {
        let txn = self.read()?;
        let mut out = Vec::new();
        match txn.open_table(crate::store::tables::PURGES) {
            Ok(purges) => {
                for row in purges.iter()? {
                    out.push(Command::PurgeTable { id: row?.0.value() });
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(tables) = open_tables(&txn)? else {
            return Ok(out);
        };
        for row in tables.iter()? {
            let (name, meta) = row?;
            let meta = decode_meta(meta.value())?;
            for index in meta.indexes {
                let table = name.value().to_string();
                match index.state {
                    IndexState::Active => {}
                    IndexState::Backfilling { after } => out.push(Command::Backfill {
                        table,
                        index: index.name,
                        after,
                    }),
                    IndexState::Deleting => out.push(Command::RemoveIndexEntries {
                        table,
                        index: index.name,
                    }),
                }
            }
        }
        Ok(out)
    }

    /// One round of the time-to-live sweep: the keys of items that have expired at `now`
    /// (epoch seconds), in every table with time to live enabled. Each table is read from just
    /// after `cursors[table]` (where its last round stopped) and at most `max_rows` rows of it
    /// per round, so a large table is swept over several rounds; at most `max_keys` keys per
    /// table are returned, with where each table's round stopped.
    pub fn expired_items(
        &self,
        now: u64,
        cursors: &BTreeMap<String, Vec<u8>>,
        max_rows: usize,
        max_keys: usize,
    ) -> Result<Sweep> {
        let txn = self.read()?;
        let Some(tables) = open_tables(&txn)? else {
            return Ok(Default::default());
        };
        // No settings table yet: nothing can have expired.
        let settings = match txn.open_table(crate::store::tables::SETTINGS) {
            Ok(settings) => settings,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Sweep::default()),
            Err(e) => return Err(e.into()),
        };
        let mut found = Vec::new();
        let mut next = BTreeMap::new();
        for row in tables.iter()? {
            let (name, meta) = row?;
            let meta = decode_meta(meta.value())?;
            let Some(attribute) = settings
                .get(meta.id)?
                .map(|v| crate::store::tables::decode_settings(v.value()))
                .transpose()?
                .and_then(|s| s.ttl)
            else {
                continue;
            };
            let name = name.value().to_string();
            let prefix = table_prefix(meta.id);
            let lower = match cursors.get(&name) {
                Some(after) if after.starts_with(&prefix) => Bound::Excluded(after.as_slice()),
                _ => Bound::Included(prefix.as_slice()),
            };
            let end = prefix_end(&prefix);
            let upper = match &end {
                Some(e) => Bound::Excluded(e.as_slice()),
                None => Bound::Unbounded,
            };
            let mut keys = Vec::new();
            let mut read = 0;
            let mut last = None;
            let items = self.items().read();
            for (k, v) in items::range(&items, (lower, upper)) {
                let item = StoredItem::item(v)?;
                if crate::model::table::ttl_expired(&item, &attribute, now) {
                    let schema = &meta.spec.key_schema;
                    keys.push(schema.key_of_item(&item)?.to_item(schema));
                }
                read += 1;
                if read == max_rows || keys.len() == max_keys {
                    last = Some(k.to_vec());
                    break;
                }
            }
            if let Some(last) = last {
                next.insert(name.clone(), last);
            }
            if !keys.is_empty() {
                found.push((name, keys));
            }
        }
        Ok(Sweep {
            expired: found,
            cursors: next,
        })
    }

    /// Every difference between `table`'s active indexes and what its items say they should
    /// hold (entries missing, extra or stale, counts off), one line each: the simulation's
    /// index invariant. Empty when they agree or the table does not exist.
    pub fn check_indexes(&self, table: &str) -> Result<Vec<String>> {
        let txn = self.read()?;
        let Some(meta) = meta_in(&txn, table)? else {
            return Ok(Vec::new());
        };
        let mut problems = Vec::new();
        let prefix = table_prefix(meta.id);
        let schema = &meta.spec.key_schema;
        for index in meta
            .indexes
            .iter()
            .filter(|i| i.state == IndexState::Active)
        {
            let mut expected = BTreeMap::new();
            let items = self.items().read();
            for (k, v) in items::range(&items, (Bound::Included(&prefix[..]), Bound::Unbounded)) {
                if !k.starts_with(&prefix) {
                    break;
                }
                let item = StoredItem::item(v)?;
                let key = schema.key_of_item(&item)?;
                if let Ok(Some(entry)) = index.entry_key(meta.id, &item, &key) {
                    expected.insert(entry, index.project(&item, schema));
                }
            }
            drop(items);
            let index_prefix = index.prefix(meta.id);
            let mut found = BTreeMap::new();
            if let Ok(entries) = txn.open_table(INDEX_ITEMS) {
                for row in entries.range::<&[u8]>(index_prefix.as_slice()..)? {
                    let (k, v) = row?;
                    if !k.value().starts_with(&index_prefix) {
                        break;
                    }
                    found.insert(k.value().to_vec(), StoredItem::item(v.value())?);
                }
            }
            if found != expected {
                let missing = expected.keys().filter(|k| !found.contains_key(*k)).count();
                let extra = found.keys().filter(|k| !expected.contains_key(*k)).count();
                let stale = expected
                    .iter()
                    .filter(|(k, v)| found.get(*k).is_some_and(|f| f != *v))
                    .count();
                problems.push(format!(
                    "index {} of {table}: {missing} entries missing, {extra} extra, {stale} stale",
                    index.name
                ));
            }
            let counted = match txn.open_table(INDEX_STATS) {
                Ok(stats) => stats.get((meta.id, index.id))?.map_or(0, |v| v.value().0),
                Err(_) => 0,
            };
            if counted != found.len() as u64 {
                problems.push(format!(
                    "index {} of {table}: ItemCount {counted} but {} entries",
                    index.name,
                    found.len()
                ));
            }
        }
        // No entries of an index the table no longer has.
        if let Ok(entries) = txn.open_table(INDEX_ITEMS) {
            let mut orphans = BTreeMap::<u32, usize>::new();
            for row in entries.range::<&[u8]>(prefix.as_slice()..)? {
                let (k, _) = row?;
                let Some(id) = k.value().strip_prefix(prefix.as_slice()) else {
                    break;
                };
                let id = id
                    .first_chunk::<4>()
                    .map_or(u32::MAX, |b| u32::from_be_bytes(*b));
                if !meta.indexes.iter().any(|i| i.id == id) {
                    *orphans.entry(id).or_default() += 1;
                }
            }
            for (id, count) in orphans {
                problems.push(format!(
                    "{count} entries of index id {id}, which {table} no longer has"
                ));
            }
        }
        Ok(problems)
    }

    /// Every table's name with its live item count and size in bytes, by name, for metrics.
    pub fn table_sizes(&self) -> Result<Vec<(String, u64, u64)>> {
        let txn = self.read()?;
        let Some(tables) = open_tables(&txn)? else {
            return Ok(Vec::new());
        };
        let stats = match txn.open_table(STATS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in tables.iter()? {
            let (name, meta) = row?;
            let meta = decode_meta(meta.value())?;
            let (count, bytes) = match &stats {
                Some(stats) => stats.get(meta.id)?.map_or((0, 0), |v| v.value()),
                None => (0, 0),
            };
            out.push((name.value().to_string(), count, bytes));
        }
        Ok(out)
    }

    /// The number of tables.
    pub fn table_count(&self) -> Result<usize> {
        let txn = self.read()?;
        match open_tables(&txn)? {
            Some(t) => Ok(t.len()? as usize),
            None => Ok(0),
        }
    }

    /// The item with `key` in `table`, validating the key against the schema, read the way
    /// GetItem reads (see [`Store::get_stored`]): the table's metadata from the node's cache.
    pub fn get_item(&self, table: &str, key: &Item) -> Result<Option<Item>> {
        self.get_stored(table, key)?
            .map(|row| StoredItem::item(&row))
            .transpose()
    }

    /// One item's stored row, undecoded (see [`StoredItem::item`]), so a caller can decide
    /// where the decoding of a large one runs.
    pub fn get_stored(&self, table: &str, key: &Item) -> Result<Option<Bytes>> {
        let meta = self.cached_meta(table)?;
        row_of(&self.items().read(), &meta, key)
    }

    /// `table`'s metadata, from the node's metadata cache when it holds it. The cache is
    /// emptied when a table-level change is applied and again when it commits, and refuses
    /// fills in between and from lookups made before a change, so what it holds is never older
    /// than the items read after the lookup.
    fn cached_meta(&self, table: &str) -> Result<TableMeta> {
        let (generation, known) = self.meta_cache().get(table);
        match known {
            Some(meta) => Ok(meta),
            None => {
                let meta = meta_in(&self.read()?, table)?.ok_or_else(table_not_found)?;
                self.meta_cache().fill(generation, &meta);
                Ok(meta)
            }
        }
    }

    /// An eventually consistent read of one item through the read cache: the item and its
    /// version, from the cache when it holds them, else from redb (and then cached). `None`
    /// when the store has no cache, or the item is too large to decode inline: read with
    /// [`Store::get_stored`] instead.
    pub fn get_cached(
        &self,
        table: &str,
        key: &Item,
    ) -> Result<Option<Option<crate::store::cache::Cached>>> {
        let Some(cache) = self.read_cache() else {
            return Ok(None);
        };
        let generation = cache.generation();
        let meta = self.cached_meta(table)?;
        let row = item_key(meta.id, &meta.spec.key_schema.key_from_map(key)?);
        if let Some(hit) = cache.get(&row) {
            return Ok(Some(Some(hit)));
        }
        let Some(stored) = self.items().read().get(row.as_slice()).cloned() else {
            return Ok(Some(None));
        };
        let bytes = &stored[..];
        if bytes.len() > crate::api::decode::INLINE_DECODE_BYTES {
            // Too large to decode here on the async runtime: the uncached path decodes it off
            // the runtime (and such items are not cached).
            return Ok(None);
        }
        let item = std::sync::Arc::new(StoredItem::item(bytes)?);
        let version = StoredItem::header(bytes)?.0;
        cache.fill(generation, row, item.clone(), version);
        Ok(Some(Some((item, version))))
    }

    /// A table's metadata and settings (tags, point-in-time recovery).
    pub fn settings(&self, table: &str) -> Result<(TableMeta, TableSettings)> {
        let txn = self.read()?;
        let meta = meta_in(&txn, table)?.ok_or_else(table_not_found)?;
        let settings = match txn.open_table(crate::store::tables::SETTINGS) {
            Ok(t) => match t.get(meta.id)? {
                Some(v) => crate::store::tables::decode_settings(v.value())?,
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
        let prefix = crate::store::tables::table_prefix(meta.id);
        let mut out = Vec::new();
        let items = self.items().read();
        for (k, bytes) in items::range(&items, (Bound::Included(&prefix[..]), Bound::Unbounded)) {
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((StoredItem::item(bytes)?, StoredItem::header(bytes)?.0));
        }
        Ok(out)
    }

    /// Several items, all read in one transaction: one consistent snapshot of the state, as
    /// TransactGetItems promises.
    pub fn get_items(&self, keys: &[(String, Item)]) -> Result<Vec<Option<Item>>> {
        let txn = self.read()?;
        let items = self.items().read();
        keys.iter()
            .map(|(table, key)| {
                let meta = meta_in(&txn, table)?.ok_or_else(table_not_found)?;
                row_of(&items, &meta, key)?
                    .map(|row| StoredItem::item(&row))
                    .transpose()
            })
            .collect()
    }

    /// Query (with a partition) or Scan (without) over `table`, or over one of its indexes.
    pub fn read_range(&self, table: &str, range: &Range<'_>) -> Result<Page> {
        let txn = self.read()?;
        let meta = meta_in(&txn, table)?.ok_or_else(table_not_found)?;
        let index = match range.index {
            Some(name) => Some(meta.index(name).ok_or_else(|| no_such_index(name))?),
            None => None,
        };
        // A lagged global index answers from the node's view of that long ago.
        let past = match index {
            Some(i) if i.kind == IndexKind::Global => self
                .index_lag(table, &i.name)
                .and_then(|lag| self.as_of(lag)),
            _ => None,
        };
        let Some(plan) = RangePlan::new(&meta, index, range)? else {
            return Ok(Page::default());
        };
        let Some(index) = index else {
            // The table's own items.
            let rows = items::Chunks::new(self.items(), plan.bounds(), range.forward);
            return plan.page(
                rows.map(|(k, v)| Ok((k, StoredItem::item(&v)?, StoredItem::header(&v)?.1))),
            );
        };
        let source: &ReadTransaction = past.as_deref().unwrap_or(&txn);
        let rows = match source.open_table(INDEX_ITEMS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Page::default()),
            Err(e) => return Err(e.into()),
        };
        let iter = rows.range::<&[u8]>(plan.bounds())?;
        let iter: Box<dyn Iterator<Item = _>> = if range.forward {
            Box::new(iter)
        } else {
            Box::new(iter.rev())
        };
        // A local index answering with the table's items reads each as it is now.
        let fetch = range.fetch_from_table && index.kind == IndexKind::Local;
        let schema = &meta.spec.key_schema;
        let rows = iter.filter_map(|row| {
            let read = || -> Result<Option<(Vec<u8>, Item, u32)>> {
                let (k, v) = row?;
                let (entry, projected) = (k.value(), v.value());
                let item = StoredItem::item(projected)?;
                if !fetch {
                    return Ok(Some((
                        entry.to_vec(),
                        item,
                        StoredItem::header(projected)?.1,
                    )));
                }
                let key = schema.key_of_item(&item)?;
                let Some(stored) = self
                    .items()
                    .read()
                    .get(item_key(meta.id, &key).as_slice())
                    .cloned()
                else {
                    return Ok(None); // Deleted since the index entries this reads were committed.
                };
                let item = StoredItem::item(&stored)?;
                // Written since: kept only if it still belongs at this entry.
                if index
                    .entry_key(meta.id, &item, &key)
                    .ok()
                    .flatten()
                    .as_deref()
                    != Some(entry)
                {
                    return Ok(None);
                }
                Ok(Some((entry.to_vec(), item, StoredItem::header(&stored)?.1)))
            };
            read().transpose()
        });
        plan.page(rows)
    }
}

/// How one Query or Scan page reads rows, whichever engine holds them: the byte range of the
/// table's (or index's) rows in key order, and the rules each row in it is evaluated by. The
/// rows of a table are keyed by [`item_key`], those of an index by [`IndexSpec::entry_key`].
pub struct RangePlan<'a> {
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    /// Every row in range starts with this (begins_with and the partition or table itself).
    must_start_with: Vec<u8>,
    range: &'a Range<'a>,
    schema: &'a KeySchema,
    index: Option<&'a IndexSpec>,
    /// The attributes a row is matched on: the (index) partition and sort key.
    partition_name: Option<&'a str>,
    sort_name: Option<&'a str>,
}

impl<'a> RangePlan<'a> {
    /// The plan of `range` over `meta`'s table or its `index`; `None` if no row can be in it.
    ///
    /// # Errors
    /// An `ExclusiveStartKey` that does not fit the table's (or index's) key.
    pub fn new(
        meta: &'a TableMeta,
        index: Option<&'a IndexSpec>,
        range: &'a Range<'a>,
    ) -> Result<Option<RangePlan<'a>>> {
        let schema = &meta.spec.key_schema;
        let prefix = match index {
            Some(i) => i.prefix(meta.id),
            None => table_prefix(meta.id).to_vec(),
        };
        let start_after = match range.start_after {
            None => None,
            Some(start) => Some(start_key_bytes(meta, index, start)?),
        };
        let (lower, upper, must_start_with) = bounds(prefix, range, start_after);
        if is_empty(&lower, &upper) {
            return Ok(None);
        }
        let (partition_name, sort_name) = match index {
            // The sort condition is on the first key attribute after those fixed by equality.
            Some(i) => (
                i.partition.first().map(|a| a.name.as_str()),
                i.key_attributes()
                    .nth(1 + range.then.len())
                    .filter(|_| range.partition.is_some())
                    .or_else(|| i.sort.first())
                    .map(|a| a.name.as_str()),
            ),
            None => (
                Some(schema.partition.name.as_str()),
                schema.sort.as_ref().map(|a| a.name.as_str()),
            ),
        };
        Ok(Some(RangePlan {
            lower,
            upper,
            must_start_with,
            range,
            schema,
            index,
            partition_name,
            sort_name,
        }))
    }

    /// The byte range to read, in the row keys' order.
    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (as_ref(&self.lower), as_ref(&self.upper))
    }

    /// The page of `rows` (`(key, item, size)`, read from [`RangePlan::bounds`] in the
    /// range's direction): the sort condition, the parallel-scan segment, `Limit` and the
    /// 1 MB page size applied as DynamoDB applies them.
    ///
    /// # Errors
    /// Whatever reading a row failed with.
    pub fn page(&self, rows: impl Iterator<Item = Result<(Vec<u8>, Item, u32)>>) -> Result<Page> {
        let range = self.range;
        let key_of = |item: &Item| match self.index {
            Some(i) => i.last_key(item, self.schema),
            None => key_map(item, self.schema),
        };
        let mut page = Page::default();
        let mut bytes = 0usize;
        for row in rows {
            let (k, item, size) = row?;
            if !k.starts_with(&self.must_start_with) {
                if range.forward {
                    break;
                }
                continue;
            }
            if bytes >= MAX_PAGE_BYTES {
                page.last_key = page.items.last().map(key_of);
                return Ok(page);
            }
            let value = |name: Option<&str>| name.and_then(|n| item.get(n));
            if let (Some(cond), Some(sk)) = (range.sort, value(self.sort_name))
                && !cond.matches(sk)
            {
                continue;
            }
            if let Some((segment, total)) = range.segment
                && value(self.partition_name).is_none_or(|pk| segment_of(pk, total) != segment)
            {
                continue;
            }
            bytes += size as usize;
            page.bytes += u64::from(size);
            page.items.push(item);
            page.scanned += 1;
            // As DynamoDB does, a page that reached its Limit names its last key even when no
            // item follows: the client learns that only from an empty next page.
            if page.scanned == range.limit.unwrap_or(usize::MAX) {
                page.last_key = page.items.last().map(key_of);
                return Ok(page);
            }
        }
        Ok(page)
    }
}

/// DynamoDB's message for an `IndexName` the table does not have.
pub fn no_such_index(name: &str) -> Error {
    Error::validation(format!(
        "The table does not have the specified index: {name}"
    ))
}

/// The table key attributes of `item`, as `LastEvaluatedKey` names them.
fn key_map(item: &Item, schema: &KeySchema) -> Item {
    schema
        .attribute_names()
        .into_iter()
        .filter_map(|n| item.get(n).map(|v| (n.to_string(), v.clone())))
        .collect()
}

/// The row key an `ExclusiveStartKey` names: in the table, or in `index` (whose start keys
/// carry the index key and the table key).
fn start_key_bytes(meta: &TableMeta, index: Option<&IndexSpec>, start: &Item) -> Result<Vec<u8>> {
    let invalid = || {
        Error::validation(
            "The provided starting key is invalid: The provided key element does not match the schema",
        )
    };
    let schema = &meta.spec.key_schema;
    let key = schema.key_of_item(start).map_err(|_| invalid())?;
    match index {
        None => Ok(item_key(meta.id, &key)),
        Some(i) => i
            .entry_key(meta.id, start, &key)
            .map_err(|_| invalid())?
            .ok_or_else(invalid),
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

/// Byte bounds for a read of the rows under `prefix` (a table's or an index's), plus a prefix
/// every row in range must start with (begins_with and the partition or table itself). Index
/// rows continue past their sort key with the table key, so every bound on a sort key value
/// `v` covers all rows that start with `v`'s encoding.
fn bounds(
    mut prefix: Vec<u8>,
    range: &Range<'_>,
    start_after: Option<Vec<u8>>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>, Vec<u8>) {
    if let Some(pk) = range.partition {
        encode_key_value(pk, &mut prefix);
        for v in range.then {
            encode_key_value(v, &mut prefix);
        }
    }
    let with = |v: &AttributeValue| {
        let mut k = prefix.clone();
        encode_key_value(v, &mut k);
        k
    };
    // Past every row whose key starts with `k`.
    let after_all = |k: Vec<u8>| prefix_end(&k).map_or(Bound::Unbounded, Bound::Excluded);
    let start = Bound::Included(prefix.clone());
    let end = after_all(prefix.clone());
    let mut must = prefix.clone();
    let (mut lower, mut upper) = match range.sort {
        None => (start, end),
        Some(SortKeyCondition::Eq(v)) => (Bound::Included(with(v)), after_all(with(v))),
        Some(SortKeyCondition::Lt(v)) => (start, Bound::Excluded(with(v))),
        Some(SortKeyCondition::Le(v)) => (start, after_all(with(v))),
        Some(SortKeyCondition::Gt(v)) => (
            prefix_end(&with(v)).map_or(Bound::Excluded(with(v)), Bound::Included),
            end,
        ),
        Some(SortKeyCondition::Ge(v)) => (Bound::Included(with(v)), end),
        Some(SortKeyCondition::Between(a, b)) => (Bound::Included(with(a)), after_all(with(b))),
        Some(SortKeyCondition::BeginsWith(p)) => {
            encode_key_prefix(p, &mut must);
            (Bound::Included(must.clone()), after_all(must.clone()))
        }
    };
    if let Some(k) = start_after {
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

/// The stored row of the item with `key` in the table `meta` describes, validating the key
/// against the schema. The row is shared, not copied: decode it after letting go of `items`.
fn row_of(items: &Tree, meta: &TableMeta, key: &Item) -> Result<Option<Bytes>> {
    let key = meta.spec.key_schema.key_from_map(key)?;
    Ok(items.get(item_key(meta.id, &key).as_slice()).cloned())
}
