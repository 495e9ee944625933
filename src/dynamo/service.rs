//! DynamoDB's tables and items on the leaderless engine: what the API asks of a node in
//! `--mode dynamo`, in the engine's terms (keys, quorum reads and writes, partition listings).
//!
//! - **Tables** are kept in the ring like items, under one reserved partition (the catalog),
//!   each table's description under its name; so they are replicated, hinted, repaired and
//!   merged like any item. A table's items live under partitions named by the table's name,
//!   its random id (so a table re-created under the same name never sees the old one's items)
//!   and the encoded partition key; the sort key tells a partition's items apart, in
//!   DynamoDB's order.
//! - **Secondary indexes** are not stored: [`read_page`] computes an index's entries from the
//!   merged items of the whole table whenever one is read, so an index never disagrees with
//!   its table, whatever conflicts, crashes or partitions did.
//! - **Conditions and updates** run at the coordinator, on what its quorum read returned, by
//!   the same pure [`decide`] that Raft's apply uses. Two coordinators writing one key at once
//!   may both pass a condition: they are not atomic across replicas (there is no serialization
//!   point); their writes are then concurrent versions, detected and merged like any conflict.
//! - **Table descriptions are cached** by each node for [`TABLE_CACHE_TTL`] from the start of
//!   the catalog read that found them, so an item request costs one quorum round (two for a
//!   write: its read and its write), not one more for the catalog. A table created through
//!   any node is usable at once everywhere (a node that has not cached it reads the
//!   catalog, and a table that R replicas do not hold is looked up again at every live
//!   replica before it is said not to exist, since with owners down R stand-ins may all lack
//!   it). A deleted table stays `DELETING` for [`DELETING_FOR`] (twice the cache's
//!   lifetime), as DynamoDB's own tables do for a while: DescribeTable says so, item requests
//!   are refused at the node that deleted it and at any node whose cache has expired, and its
//!   name cannot be reused yet. So a node whose cache still holds the deleted table can only
//!   write into the deleted table (whose items nobody reads again), never into a new table of
//!   the same name under the old one's id. DescribeTable and ListTables always read the
//!   catalog; a deleted table's catalog entry stays as a small marker until its name is
//!   reused.
//! - **Streams** are described in the table's catalog entry (every stream the table had, so a
//!   disabled one stays readable for its retention period, also after the table is deleted).
//!   Their records are the nodes' change records ([`crate::dynamo::node::Change`]): each node
//!   is one shard, holding the changes of the keys it is primary for, and a shard is read
//!   from its node over the mesh (so it is unavailable while that node is down or cut off).
//!   A stream holds the changes whose writes were stamped while it was enabled.
//! - What needs a serialization point (transactions) is refused by the API, naming
//!   `--mode raft`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::dynamo::NodeId;
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::node::{CHANGE_RETENTION_MS, Change, ChangePage, ChangeQuery, Done, Key};
use crate::model::item::{check_item_size, item_size};
use crate::model::key::encode_key_value;
use crate::model::stream::{StreamInfo, StreamRecord, StreamView};
use crate::model::table::{
    TableDescription, TableMeta, TableSettings, TableSpec, TableStatus, ttl_expired,
};
use crate::model::{AttributeValue, Item, PrimaryKey};
use crate::store::Conditional;
use crate::store::TableChange;
use crate::store::apply::{change_setting, decide, index_charges};
use crate::store::read::{Page, Range, RangePlan, no_such_index};
use crate::{Error, Result};

/// The partition that holds every table's description.
const CATALOG: &[u8] = b"\0catalog";
/// The attribute of a catalog item holding the table's description (JSON).
const META: &str = "meta";
/// The attribute of a deleted table's catalog item: when it was deleted (Unix ms).
const DELETED: &str = "deleted_ms";
/// The attribute of a catalog item holding the table's settings (tags, point-in-time
/// recovery, time to live; JSON).
const SETTINGS: &str = "settings";

/// The attribute of a catalog item holding every stream the table has had (JSON list of
/// [`StreamInfo`], oldest first).
const STREAMS: &str = "streams";

/// The attribute of a catalog item listing earlier tables of its name whose items may still
/// be in the ring (JSON list of `[name, id]`), to be collected.
const ORPHANS: &str = "orphans";
/// The attribute of a deleted table's catalog item once its items are all collected.
const COLLECTED: &str = "collected";

/// Most expired items one time-to-live sweep deletes per table.
pub const EXPIRE_PER_ROUND: usize = 1000;

fn settings_of(item: &Item) -> Result<TableSettings> {
    match item.get(SETTINGS) {
        Some(AttributeValue::S(json)) => serde_json::from_str(json)
            .map_err(|e| Error::internal(format!("decode table settings: {e}"))),
        _ => Ok(TableSettings::default()),
    }
}

/// The engine-key prefix every partition of `meta`'s table starts with.
pub fn table_prefix_of(meta: &TableMeta) -> Vec<u8> {
    prefix_of(&meta.spec.name, meta.id)
}

/// The engine-key prefix of the partitions of table `name` with id `id`.
fn prefix_of(name: &str, id: u64) -> Vec<u8> {
    let mut prefix = name.as_bytes().to_vec();
    prefix.push(0);
    prefix.extend_from_slice(&id.to_be_bytes());
    prefix
}

/// A table whose items are to be collected: its name and id.
type Orphan = (String, u64);

/// The list a catalog item keeps as JSON in `attr` (empty if absent).
fn json_list<T: serde::de::DeserializeOwned>(item: &Item, attr: &str) -> Result<Vec<T>> {
    match item.get(attr) {
        Some(AttributeValue::S(json)) => serde_json::from_str(json)
            .map_err(|e| Error::internal(format!("decode catalog attribute {attr}: {e}"))),
        _ => Ok(Vec::new()),
    }
}

/// Keeps `list` as JSON in `item`'s `attr` (removing the attribute when it is empty).
fn set_json_list<T: serde::Serialize>(item: &mut Item, attr: &str, list: &[T]) -> Result<()> {
    if list.is_empty() {
        item.remove(attr);
        return Ok(());
    }
    let json = serde_json::to_string(list)
        .map_err(|e| Error::internal(format!("encode catalog attribute {attr}: {e}")))?;
    item.insert(attr.to_string(), AttributeValue::S(json));
    Ok(())
}

fn orphans_of(item: &Item) -> Result<Vec<Orphan>> {
    json_list(item, ORPHANS)
}

fn with_orphans(item: &mut Item, orphans: &[Orphan]) -> Result<()> {
    set_json_list(item, ORPHANS, orphans)
}

/// The tables whose items are still to be collected once the deleted table of catalog item
/// `old` is replaced by a new one of its name: its own list, and itself unless collected.
fn orphans_after(old: &Item) -> Result<Vec<Orphan>> {
    let mut orphans = orphans_of(old)?;
    if deleted_at(old).is_some() && !old.contains_key(COLLECTED) {
        let meta = meta_of(old)?;
        orphans.push((meta.spec.name, meta.id));
    }
    Ok(orphans)
}

/// True for a stream enabled, or disabled less than the retention period ago.
fn retained(stream: &StreamInfo) -> bool {
    stream
        .disabled_ms
        .is_none_or(|at| at.saturating_add(CHANGE_RETENTION_MS) > now_ms())
}

fn streams_of(item: &Item) -> Result<Vec<StreamInfo>> {
    json_list(item, STREAMS)
}

fn with_streams(item: &mut Item, streams: &[StreamInfo]) -> Result<()> {
    set_json_list(item, STREAMS, streams)
}

/// Starts a stream on `meta`'s table at `at_ms` after the `earlier` ones (whose labels it must
/// not repeat).
fn new_stream(
    meta: &TableMeta,
    view: StreamView,
    at_ms: u64,
    earlier: &[StreamInfo],
) -> StreamInfo {
    let created_ms = earlier
        .iter()
        .map(|s| s.created_ms + 1)
        .fold(at_ms, u64::max);
    // Shards are nodes here, not ranges of a log.
    StreamInfo::new(meta, created_ms, view, created_ms, 0)
}

/// How long a deleted table stays `DELETING` (its name cannot be reused meanwhile).
pub const DELETING_FOR: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// When a catalog item's table was deleted (Unix ms), if it was.
fn deleted_at(item: &Item) -> Option<u64> {
    match item.get(DELETED) {
        Some(AttributeValue::N(n)) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// A catalog entry: a live table, one being deleted, or nothing (never created, or deleted
/// longer ago than [`DELETING_FOR`]).
enum Entry {
    Live(Box<TableMeta>),
    Deleting,
    Gone,
}

fn entry_of(item: Option<&Item>) -> Result<Entry> {
    let Some(item) = item else {
        return Ok(Entry::Gone);
    };
    let meta = meta_of(item)?;
    Ok(match deleted_at(item) {
        None => Entry::Live(Box::new(meta)),
        Some(at) if now_ms() < at.saturating_add(millis(DELETING_FOR)) => Entry::Deleting,
        Some(_) => Entry::Gone,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn catalog_key(name: &str) -> Key {
    Key {
        partition: CATALOG.to_vec(),
        item: name.as_bytes().to_vec(),
    }
}

fn meta_item(meta: &TableMeta) -> Result<Item> {
    let json = serde_json::to_string(meta)
        .map_err(|e| Error::internal(format!("encode table description: {e}")))?;
    Ok(Item::from([(META.to_string(), AttributeValue::S(json))]))
}

fn meta_of(item: &Item) -> Result<TableMeta> {
    match item.get(META) {
        Some(AttributeValue::S(json)) => serde_json::from_str(json)
            .map_err(|e| Error::internal(format!("decode table description: {e}"))),
        _ => Err(Error::internal(
            "a catalog entry without a table description",
        )),
    }
}

fn not_found() -> Error {
    crate::store::apply::table_not_found()
}

fn describe(meta: TableMeta, status: TableStatus) -> TableDescription {
    TableDescription {
        meta,
        status,
        // Counted in the background by DescribeTable ([`with_counts`]).
        item_count: 0,
        size_bytes: 0,
        index_stats: Vec::new(),
        stream: None,
    }
}

/// The description of the table of catalog item `item`, with its latest stream.
fn describe_item(item: &Item, status: TableStatus) -> Result<TableDescription> {
    let meta = meta_of(item)?;
    let id = meta.id;
    let mut desc = describe(meta, status);
    desc.stream = streams_of(item)?.into_iter().rfind(|s| s.table_id == id);
    Ok(desc)
}

/// The engine key of an item of `meta`'s table.
pub fn item_key(meta: &TableMeta, key: &PrimaryKey) -> Key {
    let mut item = Vec::new();
    if let Some(sort) = &key.sort {
        encode_key_value(sort, &mut item);
    }
    Key {
        partition: partition_of(meta, &key.partition),
        item,
    }
}

/// The engine partition of a partition key value of `meta`'s table.
pub fn partition_of(meta: &TableMeta, value: &AttributeValue) -> Vec<u8> {
    let mut partition = meta.spec.name.as_bytes().to_vec();
    partition.push(0);
    partition.extend_from_slice(&meta.id.to_be_bytes());
    encode_key_value(value, &mut partition);
    partition
}

fn written(done: Done) -> Result<(Option<Item>, Option<Item>)> {
    match done {
        Done::Written { old, version } => Ok((old, version.item)),
        other => Err(Error::internal(format!("a write finished as {other:?}"))),
    }
}

/// Creates a table with its secondary indexes (no streams).
///
/// # Errors
/// `ResourceInUse` when the quorum read finds the table; quorum errors.
pub async fn create_table(
    node: &DynamoHandle,
    spec: TableSpec,
    indexes: Vec<crate::model::index::IndexSpec>,
    stream: Option<StreamView>,
) -> Result<TableDescription> {
    let meta = TableMeta {
        spec,
        id: rand::thread_rng().r#gen(),
        indexes,
    };
    let mut item = meta_item(&meta)?;
    if let Some(view) = stream {
        with_streams(&mut item, &[new_stream(&meta, view, now_ms(), &[])])?;
    }
    let created = item.clone();
    let name = meta.spec.name.clone();
    let done = node
        .put(
            catalog_key(&name),
            Box::new(move |old| match entry_of(old)? {
                Entry::Live(_) => Err(Error::ResourceInUse(format!(
                    "Table already exists: {name}"
                ))),
                Entry::Deleting => Err(Error::ResourceInUse(format!(
                    "Attempt to change a resource which is still in use: Table is being \
                     deleted: {name}"
                ))),
                Entry::Gone => {
                    // The streams of a deleted table of this name stay listed under it until
                    // their retention ends, as DynamoDB keeps them.
                    let mut streams = match old {
                        Some(old) => streams_of(old)?,
                        None => Vec::new(),
                    };
                    streams.retain(retained);
                    streams.extend(streams_of(&item)?);
                    let mut item = item;
                    if !streams.is_empty() {
                        with_streams(&mut item, &streams)?;
                    }
                    // The deleted table's items, if not collected yet, still are to be.
                    let orphans = match old {
                        Some(old) => orphans_after(old)?,
                        None => Vec::new(),
                    };
                    if !orphans.is_empty() {
                        with_orphans(&mut item, &orphans)?;
                    }
                    Ok(Some(item))
                }
            }),
        )
        .await?;
    written(done)?;
    node.tables.put(&meta, Instant::now());
    node.tables.counted(
        meta.id,
        Some(Counts {
            indexes: vec![(0, 0); meta.indexes.len()],
            ..Counts::default()
        }),
    );
    describe_item(&created, TableStatus::Active)
}

/// How long a node uses a table description it read or wrote before reading it again.
pub const TABLE_CACHE_TTL: Duration = Duration::from_secs(1);

/// The most table descriptions one node caches; past it the cache starts over.
const TABLE_CACHE_MAX: usize = 4096;

/// One node's recently read table descriptions, by name (see the module's documentation).
#[derive(Debug, Default)]
pub struct TableCache {
    entries: Mutex<HashMap<String, (Instant, TableMeta)>>,
    /// Item counts by table id, with when they were counted.
    counts: Mutex<HashMap<u64, (Instant, Counts)>>,
    /// Tables being counted now.
    counting: Mutex<std::collections::HashSet<u64>>,
}

/// A table's items and bytes, and each index's (in the table's index order).
#[derive(Clone, Debug, Default, PartialEq)]
struct Counts {
    items: u64,
    bytes: u64,
    indexes: Vec<(u64, u64)>,
}

/// How long a node reports a table's item counts before counting again.
pub const COUNTS_TTL: Duration = Duration::from_secs(5);

impl TableCache {
    /// Table `id`'s last counts, and whether it is time to count again.
    fn counts(&self, id: u64) -> (Option<Counts>, bool) {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        match counts.get(&id) {
            Some((at, c)) => (Some(c.clone()), at.elapsed() >= COUNTS_TTL),
            None => (None, true),
        }
    }

    /// True if the caller should count table `id` (nobody else is).
    fn start_counting(&self, id: u64) -> bool {
        self.counting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id)
    }

    /// Table `id` was counted (`None`: the count failed; try again next time).
    fn counted(&self, id: u64, counts: Option<Counts>) {
        if let Some(c) = counts {
            let mut all = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
            if all.len() >= TABLE_CACHE_MAX {
                all.clear();
            }
            all.insert(id, (Instant::now(), c));
        }
        self.counting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
    fn get(&self, name: &str) -> Option<TableMeta> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(name)
            .filter(|(at, _)| at.elapsed() < TABLE_CACHE_TTL)
            .map(|(_, meta)| meta.clone())
    }

    /// Caches `meta` as read by a catalog read that started at `read_at`.
    fn put(&self, meta: &TableMeta, read_at: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= TABLE_CACHE_MAX {
            entries.clear();
        }
        entries.insert(meta.spec.name.clone(), (read_at, meta.clone()));
    }

    fn forget(&self, name: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }
}

/// The description of a table an item request names: from this node's cache if it read the
/// table within [`TABLE_CACHE_TTL`], else from R replicas of the catalog.
///
/// # Errors
/// `ResourceNotFound`; quorum errors.
pub async fn table_for_items(node: &DynamoHandle, name: &str) -> Result<TableMeta> {
    match node.tables.get(name) {
        Some(meta) => Ok(meta),
        None => table(node, name, false).await,
    }
}

/// A table's catalog entry, read from R replicas (all N live ones if `consistent`); a live
/// table is cached, anything else forgotten.
async fn entry(node: &DynamoHandle, name: &str, consistent: bool) -> Result<Entry> {
    Ok(entry_and_item(node, name, consistent).await?.0)
}

/// [`entry`], and the catalog item it was read from.
async fn entry_and_item(
    node: &DynamoHandle,
    name: &str,
    consistent: bool,
) -> Result<(Entry, Option<Item>)> {
    let started = Instant::now();
    let item = catalog_item(node, name, consistent).await?;
    let entry = entry_of(item.as_ref())?;
    match &entry {
        Entry::Live(meta) => node.tables.put(meta, started),
        _ => node.tables.forget(name),
    }
    Ok((entry, item))
}

/// A table's catalog item, read from R replicas (all N live ones if `consistent`).
async fn catalog_item(node: &DynamoHandle, name: &str, consistent: bool) -> Result<Option<Item>> {
    let read = |consistent| async move {
        match node.get(catalog_key(name), consistent).await? {
            Done::Read { resolved, .. } => Ok(resolved.item),
            other => Err(Error::internal(format!("a read finished as {other:?}"))),
        }
    };
    match read(consistent).await? {
        // R replies may all come from stand-ins that never held the table (its owners down):
        // a table is said not to exist only once every live replica of the N says so.
        None if !consistent => read(true).await,
        found => Ok(found),
    }
}

/// A table's description, read from R replicas (all N live ones if `consistent`).
///
/// # Errors
/// `ResourceNotFound` (also for a table being deleted); quorum errors.
pub async fn table(node: &DynamoHandle, name: &str, consistent: bool) -> Result<TableMeta> {
    match entry(node, name, consistent).await? {
        Entry::Live(meta) => Ok(*meta),
        Entry::Deleting | Entry::Gone => Err(not_found()),
    }
}

/// A table's item counts: its items gathered as a Scan gathers them, merged, and counted
/// with their sizes and their index entries.
async fn count(node: &DynamoHandle, meta: &TableMeta) -> Result<Counts> {
    let items = match node.scan(table_prefix_of(meta)).await? {
        Done::Listed { items } => items,
        other => return Err(Error::internal(format!("a scan finished as {other:?}"))),
    };
    let mut counts = Counts {
        indexes: vec![(0, 0); meta.indexes.len()],
        ..Counts::default()
    };
    for item in items.into_iter().filter_map(|(_, r)| r.item) {
        counts.items += 1;
        counts.bytes += item_size(&item) as u64;
        let key = meta.spec.key_schema.key_of_item(&item)?;
        for (spec, stat) in meta.indexes.iter().zip(counts.indexes.iter_mut()) {
            if let Ok(Some((_, _, size))) =
                crate::store::apply::index_entry(meta, spec, &item, &key)
            {
                *stat = (stat.0 + 1, stat.1 + u64::from(size));
            }
        }
    }
    Ok(counts)
}

/// Fills `desc`'s item counts from this node's last count of the table, and starts counting
/// it again in the background when that count is older than [`COUNTS_TTL`] (or there is
/// none): like DynamoDB's, the counts lag the writes.
fn with_counts(node: &DynamoHandle, mut desc: TableDescription) -> TableDescription {
    let (counts, stale) = node.tables.counts(desc.meta.id);
    if let Some(c) = counts {
        desc.item_count = c.items;
        desc.size_bytes = c.bytes;
        desc.index_stats = c.indexes;
    }
    if stale && desc.status == TableStatus::Active && node.tables.start_counting(desc.meta.id) {
        let (node, meta) = (node.clone(), desc.meta.clone());
        tokio::spawn(async move {
            let counted = count(&node, &meta).await;
            if let Err(e) = &counted {
                tracing::debug!(node = node.id, table = %meta.spec.name, "count failed: {e}");
            }
            node.tables.counted(meta.id, counted.ok());
        });
    }
    desc
}

/// DescribeTable, from R replicas of the catalog (all N live ones if `consistent`): `ACTIVE`,
/// or `DELETING` for [`DELETING_FOR`] after it was deleted. Its item counts are this node's
/// last count of the table, counted again in the background once older than [`COUNTS_TTL`].
///
/// # Errors
/// `ResourceNotFound`; quorum errors.
pub async fn describe_table(
    node: &DynamoHandle,
    name: &str,
    consistent: bool,
) -> Result<TableDescription> {
    match entry_and_item(node, name, consistent).await? {
        (Entry::Live(_), Some(item)) => Ok(with_counts(
            node,
            describe_item(&item, TableStatus::Active)?,
        )),
        (Entry::Deleting, Some(item)) => describe_item(&item, TableStatus::Deleting),
        _ => Err(not_found()),
    }
}

/// Deletes a table: its catalog entry is marked deleted (see the module's documentation).
/// Its items stay in the ring under the old table's id, unreachable (a re-created table has a
/// new id).
///
/// # Errors
/// `ResourceNotFound` (also for a table being deleted); quorum errors.
pub async fn delete_table(node: &DynamoHandle, name: &str) -> Result<TableDescription> {
    let done = node
        .put(
            catalog_key(name),
            Box::new(|old| match old {
                Some(item) if deleted_at(item).is_none() => {
                    let at = now_ms();
                    let mut marked = item.clone();
                    marked.insert(
                        DELETED.to_string(),
                        AttributeValue::N(crate::model::Number::from_i64(
                            i64::try_from(at).unwrap_or(i64::MAX),
                        )),
                    );
                    // Deleting a table disables its stream; its records stay readable.
                    let mut streams = streams_of(item)?;
                    if let Some(s) = streams.last_mut().filter(|s| s.disabled_ms.is_none()) {
                        s.disabled_ms = Some(at);
                        with_streams(&mut marked, &streams)?;
                    }
                    Ok(Some(marked))
                }
                _ => Err(not_found()),
            }),
        )
        .await;
    node.tables.forget(name);
    let (_, new) = written(done?)?;
    new.as_ref().map_or_else(
        || Err(not_found()),
        |item| describe_item(item, TableStatus::Deleting),
    )
}

/// Every table's name, in order, from R replicas of the catalog.
///
/// # Errors
/// Quorum errors.
pub async fn list_tables(node: &DynamoHandle) -> Result<Vec<String>> {
    match node.list(CATALOG.to_vec(), false).await? {
        Done::Listed { items } => {
            let mut names = Vec::with_capacity(items.len());
            for (key, resolved) in items {
                // A table being deleted is listed, as DynamoDB lists it.
                if !matches!(entry_of(resolved.item.as_ref())?, Entry::Gone) {
                    names.push(String::from_utf8_lossy(&key.item).into_owned());
                }
            }
            Ok(names)
        }
        other => Err(Error::internal(format!("a listing finished as {other:?}"))),
    }
}

/// One item read, and whether the read merged concurrent versions.
#[derive(Debug)]
pub struct ItemRead {
    /// The item, if present.
    pub item: Option<Item>,
    /// The read found concurrent versions and merged them.
    pub merged: bool,
    /// How many versions the replicas held (more than one: siblings).
    pub versions: usize,
    /// The version's vector clock, as `{node: counter, ...}`.
    pub clock: String,
    /// Every version the replicas held (more than one: concurrent siblings).
    pub siblings: Vec<crate::dynamo::version::Version>,
}

/// GetItem: from R replicas, or all N live ones if `consistent`.
///
/// # Errors
/// Quorum errors.
pub async fn get_item(
    node: &DynamoHandle,
    meta: &TableMeta,
    key: &PrimaryKey,
    consistent: bool,
) -> Result<ItemRead> {
    match node.get(item_key(meta, key), consistent).await? {
        Done::Read { resolved, versions } => Ok(ItemRead {
            item: resolved.item,
            merged: resolved.merged,
            versions: versions.versions().len(),
            clock: versions.context().to_string(),
            siblings: versions.versions().to_vec(),
        }),
        other => Err(Error::internal(format!("a read finished as {other:?}"))),
    }
}

/// One item write (put, update or delete) under its condition, decided at the coordinator on
/// its quorum read: the item before and after.
///
/// # Errors
/// `ConditionalCheckFailed`, the update's errors, quorum errors.
pub async fn write(
    node: &DynamoHandle,
    meta: &TableMeta,
    key: &PrimaryKey,
    write: Conditional,
) -> Result<(Option<Item>, Option<Item>)> {
    let schema = meta.spec.key_schema.clone();
    // The new item's index key values are checked as Raft's apply checks them.
    let indexed = (!meta.indexes.is_empty()).then(|| meta.clone());
    let k = key.clone();
    let done = node
        .put(
            item_key(meta, key),
            Box::new(move |old| {
                let new = decide(&schema, &k, old, write, true)?;
                if let Some(item) = &new {
                    check_item_size(item)?;
                }
                if let Some(meta) = &indexed {
                    index_charges(meta, &k, old, new.as_ref())?;
                }
                Ok(new)
            }),
        )
        .await?;
    written(done)
}

/// A Query's or Scan's page of `meta`'s table or one of its indexes, paged by the same
/// [`RangePlan`] as Raft mode's reads. A Query of the table reads its one partition from R
/// replicas (all N live ones if `consistent`). Anything else (a Scan, or any read of an
/// index) gathers the whole table: every node that is not suspected sends what it holds of
/// it, owned or as hints, and the coordinator merges the versions key by key. An index is
/// not stored: its entries are computed from the merged items as the read needs them, so it
/// can never disagree with the table, and each such page reads the whole table (fine for a
/// simulator's tables, not for large ones).
///
/// # Errors
/// `Validation` for an index the table does not have or a start key that does not fit;
/// quorum errors; `Unavailable` when a node asked does not answer in time.
pub async fn read_page(
    node: &DynamoHandle,
    meta: &TableMeta,
    range: &Range<'_>,
    consistent: bool,
) -> Result<Page> {
    let index = match range.index {
        Some(name) => Some(meta.index(name).ok_or_else(|| no_such_index(name))?),
        None => None,
    };
    let Some(plan) = RangePlan::new(meta, index, range)? else {
        return Ok(Page::default());
    };
    let listed = match (index, range.partition) {
        (None, Some(partition)) => node.list(partition_of(meta, partition), consistent).await?,
        _ => node.scan(table_prefix_of(meta)).await?,
    };
    let Done::Listed { items } = listed else {
        return Err(Error::internal(format!("a listing finished as {listed:?}")));
    };
    let schema = &meta.spec.key_schema;
    let mut rows: BTreeMap<Vec<u8>, Item> = BTreeMap::new();
    for item in items.into_iter().filter_map(|(_, resolved)| resolved.item) {
        let key = schema.key_of_item(&item)?;
        match index {
            None => {
                rows.insert(crate::store::tables::item_key(meta.id, &key), item);
            }
            // An item without the index's key (or, written before a mistyped one, with it
            // mistyped) is not in the index.
            Some(i) => {
                if let Ok(Some(entry)) = i.entry_key(meta.id, &item, &key) {
                    let local = i.kind == crate::model::index::IndexKind::Local;
                    let answer = if range.fetch_from_table && local {
                        item
                    } else {
                        i.project(&item, schema)
                    };
                    rows.insert(entry, answer);
                }
            }
        }
    }
    let in_range = rows.range::<[u8], _>(plan.bounds());
    let in_order: Box<dyn Iterator<Item = (&Vec<u8>, &Item)>> = if range.forward {
        Box::new(in_range)
    } else {
        Box::new(in_range.rev())
    };
    plan.page(in_order.map(|(k, item)| {
        let size = u32::try_from(item_size(item)).unwrap_or(u32::MAX);
        Ok((k.clone(), item.clone(), size))
    }))
}

/// Changes a table's description in its catalog entry (UpdateTable: billing, global
/// indexes) by `change`, and caches the result at this node (other nodes see it once their
/// cached description expires, within [`TABLE_CACHE_TTL`]). A new index needs no backfill
/// here: index entries are computed from the items when read.
///
/// # Errors
/// `ResourceNotFound`; `change`'s errors; quorum errors.
pub async fn alter_table(
    node: &DynamoHandle,
    name: &str,
    change: impl FnOnce(&mut TableMeta) -> Result<()> + Send + 'static,
) -> Result<TableDescription> {
    let entry = alter_entry(node, name, move |item| {
        let mut meta = meta_of(item)?;
        change(&mut meta)?;
        let mut next = item.clone();
        next.extend(meta_item(&meta)?);
        Ok(next)
    })
    .await?;
    node.tables.put(&meta_of(&entry)?, Instant::now());
    describe_item(&entry, TableStatus::Active)
}

/// Enables a stream with `view` on table `name`, or disables its stream (`None`), by the rules
/// of Raft mode: one enabled stream at a time, and only an enabled one can be disabled.
///
/// # Errors
/// `ResourceNotFound`; `Validation` as above; quorum errors.
pub async fn alter_stream(
    node: &DynamoHandle,
    name: &str,
    view: Option<StreamView>,
) -> Result<TableDescription> {
    let at = now_ms();
    let entry = alter_entry(node, name, move |item| {
        let meta = meta_of(item)?;
        let mut streams = streams_of(item)?;
        let enabled = streams
            .last_mut()
            .filter(|s| s.disabled_ms.is_none() && s.table_id == meta.id);
        match (view, enabled) {
            (Some(_), Some(_)) => {
                return Err(Error::validation(format!(
                    "Table already has an enabled stream: TableName: {}",
                    meta.spec.name
                )));
            }
            (Some(view), None) => {
                streams.retain(retained);
                let stream = new_stream(&meta, view, at, &streams);
                streams.push(stream);
            }
            (None, Some(stream)) => stream.disabled_ms = Some(at),
            (None, None) => {
                return Err(Error::validation(format!(
                    "Table does not have an enabled stream to disable: TableName: {}",
                    meta.spec.name
                )));
            }
        }
        let mut next = item.clone();
        with_streams(&mut next, &streams)?;
        Ok(next)
    })
    .await?;
    describe_item(&entry, TableStatus::Active)
}

/// Every stream of every table (also of deleted ones) still within its retention period,
/// oldest first, from R replicas of the catalog.
///
/// # Errors
/// Quorum errors.
pub async fn list_streams(node: &DynamoHandle) -> Result<Vec<StreamInfo>> {
    let items = match node.list(CATALOG.to_vec(), false).await? {
        Done::Listed { items } => items,
        other => return Err(Error::internal(format!("a listing finished as {other:?}"))),
    };
    let mut all = Vec::new();
    for item in items.into_iter().filter_map(|(_, r)| r.item) {
        all.extend(streams_of(&item)?.into_iter().filter(retained));
    }
    all.sort_by_key(|s| (s.created_ms, s.id));
    Ok(all)
}

/// The stream `arn` names, from R replicas of its table's catalog entry.
///
/// # Errors
/// `ResourceNotFound` naming the stream; quorum errors.
pub async fn find_stream(node: &DynamoHandle, arn: &str) -> Result<StreamInfo> {
    let missing = || {
        Error::ResourceNotFound(format!(
            "Requested resource not found: Stream: {arn} not found"
        ))
    };
    let table = arn
        .split_once(":table/")
        .and_then(|(_, rest)| rest.split_once("/stream/"))
        .map(|(table, _)| table)
        .ok_or_else(missing)?;
    let item = catalog_item(node, table, false)
        .await?
        .ok_or_else(missing)?;
    streams_of(&item)?
        .into_iter()
        .filter(retained)
        .find(|s| s.arn() == arn)
        .ok_or_else(missing)
}

/// Sequence numbers of the records of every shard: a node's own record number times this plus
/// the node's id, so they are unique across shards and name their shard.
pub const SEQ_NODES: u64 = 16;

/// A page of `stream`'s records in the shard of node `shard`, read from that node: from
/// sequence number `from` on (in [`SEQ_NODES`] form), at most `limit` records and about
/// `max_bytes` of items. Only the records of writes stamped while the stream was enabled are
/// kept in the page, shaped by its view. The page's `next` and `first` are in the same form.
///
/// # Errors
/// `Unavailable` when the shard's node is down or cut off from this one.
pub async fn shard_page(
    node: &DynamoHandle,
    stream: &StreamInfo,
    shard: NodeId,
    from: u64,
    limit: usize,
    max_bytes: u64,
) -> Result<(Vec<(u64, StreamRecord)>, ChangePage)> {
    let local = from / SEQ_NODES;
    let query = ChangeQuery {
        prefix: prefix_of(&stream.table, stream.table_id),
        from: local,
        limit,
        max_bytes,
    };
    let done = node.changes(shard, query).await?;
    let Done::Changes(mut page) = done else {
        return Err(Error::internal(format!(
            "a change read finished as {done:?}"
        )));
    };
    let global = |seq: u64| seq.saturating_mul(SEQ_NODES).saturating_add(shard);
    let mut records = Vec::new();
    for (seq, change) in std::mem::take(&mut page.records) {
        let enabled = change.stamp >= stream.created_ms
            && stream.disabled_ms.is_none_or(|at| change.stamp < at);
        if enabled && let Some(record) = stream_record(stream, change) {
            records.push((global(seq), record));
        }
    }
    page.next = global(page.next);
    page.first = global(page.first);
    Ok((records, page))
}

/// A change as a stream record of `stream`'s view; `None` for one that changes nothing.
fn stream_record(stream: &StreamInfo, change: Change) -> Option<StreamRecord> {
    let any = change.new.as_ref().or(change.old.as_ref())?;
    let keys = stream
        .key_schema
        .key_of_item(any)
        .ok()?
        .to_item(&stream.key_schema);
    StreamRecord::of_write(
        stream.view,
        change.stamp,
        keys,
        change.old.as_ref(),
        change.new.as_ref(),
        false,
    )
}

/// A table's settings (tags, point-in-time recovery, time to live), from R replicas of the
/// catalog.
///
/// # Errors
/// `ResourceNotFound`; quorum errors.
pub async fn settings(node: &DynamoHandle, name: &str) -> Result<TableSettings> {
    match catalog_item(node, name, false).await? {
        Some(item) if matches!(entry_of(Some(&item))?, Entry::Live(_)) => settings_of(&item),
        _ => Err(not_found()),
    }
}

/// Changes one of a table's settings in its catalog entry, by the rules Raft mode's apply
/// uses ([`change_setting`]); the settings after.
///
/// # Errors
/// `ResourceNotFound`; the rules' `Validation` errors; quorum errors.
pub async fn alter_settings(
    node: &DynamoHandle,
    name: &str,
    change: TableChange,
) -> Result<TableSettings> {
    let entry = alter_entry(node, name, move |item| {
        let mut settings = settings_of(item)?;
        change_setting(&mut settings, change)?;
        let json = serde_json::to_string(&settings)
            .map_err(|e| Error::internal(format!("encode table settings: {e}")))?;
        let mut next = item.clone();
        next.insert(SETTINGS.to_string(), AttributeValue::S(json));
        Ok(next)
    })
    .await?;
    settings_of(&entry)
}

/// Rewrites a live table's catalog entry by one quorum write: `change` gets the entry its
/// quorum read found and returns the new one, which is returned.
///
/// # Errors
/// `ResourceNotFound` (also for a table being deleted); `change`'s errors; quorum errors.
async fn alter_entry(
    node: &DynamoHandle,
    name: &str,
    change: impl FnOnce(&Item) -> Result<Item> + Send + 'static,
) -> Result<Item> {
    let done = node
        .put(
            catalog_key(name),
            Box::new(move |old| match old.filter(|i| deleted_at(i).is_none()) {
                Some(item) => change(item).map(Some),
                None => Err(not_found()),
            }),
        )
        .await?;
    written(done)?.1.ok_or_else(not_found)
}

/// Collects what deleted tables left in the ring, coordinated by `node`: for each deleted
/// table (once no node can still be writing into it: past [`DELETING_FOR`] and a cache
/// lifetime), and each earlier table of a re-created name, its items are deleted by quorum
/// writes (at most [`EXPIRE_PER_ROUND`] per table per call; their tombstones are then
/// collected as any). A table found empty is marked collected in the catalog and not looked
/// at again. Returns how many items of each table it deleted.
///
/// # Errors
/// Quorum errors reading the catalog or a table.
pub async fn collect_deleted(node: &DynamoHandle) -> Result<Vec<(String, usize)>> {
    let catalog = match node.list(CATALOG.to_vec(), false).await? {
        Done::Listed { items } => items,
        other => return Err(Error::internal(format!("a listing finished as {other:?}"))),
    };
    let settled = millis(DELETING_FOR) + millis(TABLE_CACHE_TTL);
    let mut out = Vec::new();
    for item in catalog.into_iter().filter_map(|(_, r)| r.item) {
        let mut tables = orphans_of(&item)?;
        if let Some(at) = deleted_at(&item)
            && !item.contains_key(COLLECTED)
            && at.saturating_add(settled) < now_ms()
        {
            let meta = meta_of(&item)?;
            tables.push((meta.spec.name, meta.id));
        }
        for (name, id) in tables {
            let items = match node.scan(prefix_of(&name, id)).await? {
                Done::Listed { items } => items,
                other => return Err(Error::internal(format!("a scan finished as {other:?}"))),
            };
            if items.is_empty() {
                mark_collected(node, &name, id).await?;
                continue;
            }
            let mut deleted = 0;
            for (key, _) in items.into_iter().take(EXPIRE_PER_ROUND) {
                match node.put(key, Box::new(|_| Ok(None))).await {
                    Ok(_) => deleted += 1,
                    Err(e) => tracing::debug!(node = node.id, "collection left for later: {e}"),
                }
            }
            out.push((name, deleted));
        }
    }
    Ok(out)
}

/// Records in the catalog that table `name` with id `id` has no items left.
async fn mark_collected(node: &DynamoHandle, name: &str, id: u64) -> Result<()> {
    match node
        .put(
            catalog_key(name),
            Box::new(move |old| {
                let Some(item) = old else {
                    return Err(not_found());
                };
                let mut next = item.clone();
                let mut orphans = orphans_of(item)?;
                orphans.retain(|(_, o)| *o != id);
                with_orphans(&mut next, &orphans)?;
                if deleted_at(item).is_some() && meta_of(item)?.id == id {
                    next.insert(COLLECTED.to_string(), AttributeValue::Bool(true));
                }
                Ok(Some(next))
            }),
        )
        .await
    {
        Ok(_) | Err(Error::ResourceNotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One time-to-live sweep coordinated by `node`: in every table with time to live enabled,
/// the items whose time has passed at `now` (epoch seconds) are deleted (at most
/// [`EXPIRE_PER_ROUND`] per table), each by its own quorum write on the condition that it is
/// still expired when the write reads it (an item rewritten meanwhile stays). Finding them
/// gathers each such table as a Scan does. Items expired but not swept yet are still read, as
/// in DynamoDB. Returns how many items of each table it deleted.
///
/// # Errors
/// Quorum errors reading the catalog or a table; a failed deletion is left for the next sweep.
pub async fn expire(node: &DynamoHandle, now: u64) -> Result<Vec<(String, usize)>> {
    let catalog = match node.list(CATALOG.to_vec(), false).await? {
        Done::Listed { items } => items,
        other => return Err(Error::internal(format!("a listing finished as {other:?}"))),
    };
    let mut out = Vec::new();
    for (_, resolved) in catalog {
        let Some(entry) = resolved.item else {
            continue;
        };
        let attribute = settings_of(&entry).ok().and_then(|s| s.ttl);
        let (Entry::Live(meta), Some(attribute)) = (entry_of(Some(&entry))?, attribute) else {
            continue;
        };
        let items = match node.scan(table_prefix_of(&meta)).await? {
            Done::Listed { items } => items,
            other => return Err(Error::internal(format!("a scan finished as {other:?}"))),
        };
        let mut deleted = 0;
        for (key, resolved) in items {
            if deleted >= EXPIRE_PER_ROUND {
                break;
            }
            if !resolved
                .item
                .is_some_and(|item| ttl_expired(&item, &attribute, now))
            {
                continue;
            }
            let attribute = attribute.clone();
            let done = node
                .put(
                    key,
                    Box::new(move |old| match old {
                        Some(item) if ttl_expired(item, &attribute, now) => Ok(None),
                        _ => Err(Error::ConditionalCheckFailed {
                            message: "no longer expired".into(),
                            item: None,
                        }),
                    }),
                )
                .await;
            match done {
                Ok(_) => deleted += 1,
                Err(e) => tracing::debug!(node = node.id, "expiry of an item left for later: {e}"),
            }
        }
        if deleted > 0 {
            out.push((meta.spec.name, deleted));
        }
    }
    Ok(out)
}
