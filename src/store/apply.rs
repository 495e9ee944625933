//! Applying one committed command inside the Raft layer's write transaction.
//!
//! Every check the API made before proposing is made again here, because the proposer's view
//! may have been stale (the table deleted or re-created in between). Checks come before any
//! write, so a rejected command changes nothing. Deterministic errors are returned as the
//! command's result; storage errors are faults and propagate to stop the node.
//!
//! Last-write-wins by log index falls out of applying in log order: each write stores its index
//! as the item's version, and a later index always overwrites an earlier one.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};

use crate::error::CancellationReason;
use crate::model::expr::eval::evaluate;
use crate::model::index::{IndexKind, IndexSpec, IndexState, MAX_GLOBAL_INDEXES};
use crate::model::item::{check_item_size, item_size};
use crate::model::stream::StreamView;
use crate::model::table::{
    TableDescription, TableMeta, TableSettings, TableSpec, TableStatus, ttl_expired,
};
use crate::model::{Item, KeySchema, PrimaryKey};
use crate::store::command::{
    Command, Conditional, IndexChange, IndexCharge, ItemWrite, Outcome, TOKEN_LIFETIME_MS,
    TableChange, Transaction,
};
use crate::store::streams;
use crate::store::tables::{
    INDEX_ITEMS, INDEX_STATS, PURGES, SETTINGS, STATS, StoredItem, TABLES, TOKEN_TIMES, TOKENS,
    decode_meta, decode_settings, encode_meta, encode_settings, item_key, prefix_end, table_prefix,
};
use crate::{Error, Result};

/// Deliberate state machine bugs, planted only by the simulation's tests of itself (see
/// `raft::node::PlantedBug`), for the running thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// A transaction writes only its first action.
    PartialTransactions,
    /// Conditions are not checked.
    ConditionsIgnored,
    /// Old index entries are never removed.
    StaleIndexEntries,
    /// A deleted index is forgotten after its first batch of entries.
    IndexRemovalStopsEarly,
    /// Expired items are deleted without checking they still are.
    ExpiryWithoutRecheck,
    /// Transactions leave no stream records.
    StreamSkipsTransactions,
}

thread_local! {
    static PLANTED: std::cell::Cell<Option<PlantedBug>> = const { std::cell::Cell::new(None) };
}

/// Plants `bug` in every state machine applying on this thread (`None` removes it). Only the
/// deterministic simulation, which runs every node on one thread, calls this.
pub fn plant(bug: Option<PlantedBug>) {
    PLANTED.with(|p| p.set(bug));
}

fn planted(bug: PlantedBug) -> bool {
    PLANTED.with(|p| p.get() == Some(bug))
}

/// Table metadata and stream state as the applies of one redb transaction have read them, so
/// a run of item writes decodes each table's metadata once instead of once per item; and the
/// tables' item counts and sizes as those writes left them, written to `STATS` once per
/// transaction ([`Seen::write_back`]) instead of once per item.
///
/// Only commands that are not item writes change the metadata or read the counts, so every
/// such command writes the counts back and empties it before it runs, and empties it again
/// after; the state machine writes back before every commit and empties it after. Each state
/// machine owns one and lends it to [`apply`] (the simulation applies every node's entries on
/// one thread).
#[derive(Debug, Default)]
pub struct Seen {
    metas: HashMap<String, Arc<TableMeta>>,
    streams: HashMap<u64, Option<(u64, StreamView)>>,
    /// `(item count, item bytes)` by table id, as item writes not yet written back left them.
    stats: BTreeMap<u64, (u64, u64)>,
}

/// A clone starts empty: what one transaction read is no other's business.
impl Clone for Seen {
    fn clone(&self) -> Seen {
        Seen::default()
    }
}

impl Seen {
    /// Forgets everything read, and any counts not written back (a restore replaces them).
    pub fn clear(&mut self) {
        self.metas.clear();
        self.streams.clear();
        self.stats.clear();
    }

    /// Writes the item counts the applies changed into `txn`'s `STATS`: call before the
    /// transaction commits, or its item writes are committed with the counts they had before.
    ///
    /// # Errors
    /// A storage fault.
    pub fn write_back(&mut self, txn: &WriteTransaction) -> Result<()> {
        if self.stats.is_empty() {
            return Ok(());
        }
        let mut table = txn.open_table(STATS)?;
        // In id order, so every replica writes its rows alike.
        for (id, counts) in std::mem::take(&mut self.stats) {
            table.insert(id, counts)?;
        }
        Ok(())
    }

    /// Whether item counts are waiting for [`Seen::write_back`].
    pub fn has_unwritten_counts(&self) -> bool {
        !self.stats.is_empty()
    }
}

/// The items, locked once per command for every item write it plans and commits.
type Items<'t> = crate::store::items::ItemsTxn<'t>;

thread_local! {
    /// The [`Seen`] of the state machine applying on this thread, during [`apply`].
    static SEEN: RefCell<Seen> = RefCell::default();
}

/// `name`'s metadata, through the applying state machine's [`Seen`].
fn meta_of(txn: &WriteTransaction, name: &str) -> Result<Option<Arc<TableMeta>>> {
    if let Some(meta) = SEEN.with(|s| s.borrow().metas.get(name).cloned()) {
        return Ok(Some(meta));
    }
    let Some(meta) = load_meta(txn, name)?.map(Arc::new) else {
        return Ok(None);
    };
    SEEN.with(|s| {
        s.borrow_mut()
            .metas
            .insert(name.to_string(), Arc::clone(&meta))
    });
    Ok(Some(meta))
}

/// The stream enabled on table `id`, through the applying state machine's [`Seen`].
fn stream_of(txn: &WriteTransaction, id: u64) -> Result<Option<(u64, StreamView)>> {
    if let Some(stream) = SEEN.with(|s| s.borrow().streams.get(&id).copied()) {
        return Ok(stream);
    }
    let stream = streams::active(txn, id)?;
    SEEN.with(|s| s.borrow_mut().streams.insert(id, stream));
    Ok(stream)
}

/// Applies the encoded command committed at `index`.
///
/// # Errors
/// The outer `Err` is a fault (storage); the inner one is the command's deterministic result.
pub fn apply(
    txn: &WriteTransaction,
    items: &mut Items,
    index: u64,
    bytes: &[u8],
    seen: &mut Seen,
) -> Result<Result<Outcome>> {
    let (at_ms, command) = match Command::decode(bytes) {
        Ok(Command::At { at_ms, command }) => (at_ms, *command),
        Ok(command) => (0, command),
        // Identical bytes on every replica, so this is a deterministic result, not a fault.
        Err(e) => return Ok(Err(e)),
    };
    let items_only = command.writes_items_only();
    if !items_only {
        // The command may read the counts, or delete the table they belong to.
        seen.write_back(txn)?;
        seen.clear();
    }
    SEEN.with(|s| std::mem::swap(&mut *s.borrow_mut(), seen));
    let result = run(txn, items, index, at_ms, command);
    SEEN.with(|s| std::mem::swap(&mut *s.borrow_mut(), seen));
    if !items_only {
        seen.clear();
    }
    match result {
        Err(e) if !e.is_deterministic() => Err(e),
        other => Ok(other),
    }
}

/// Applies `command`, committed at `index` with the log's time `at_ms` (0 if it has none).
fn run(
    txn: &WriteTransaction,
    items: &mut Items,
    index: u64,
    at_ms: u64,
    command: Command,
) -> Result<Outcome> {
    let plain = |write| Conditional {
        write,
        condition: None,
        old_on_failure: false,
    };
    let by_client = Stamp {
        at_ms,
        by_ttl: false,
    };
    match command {
        Command::At { command, .. } => run(txn, items, index, at_ms, *command),
        Command::CreateTable(spec) => create_table(txn, index, spec, Vec::new(), None),
        Command::CreateIndexedTable { spec, indexes } => {
            create_table(txn, index, spec, indexes, None)
        }
        Command::CreateTableWithStream {
            spec,
            indexes,
            view,
            shard_entries,
        } => create_table(txn, index, spec, indexes, Some((view, shard_entries))),
        Command::AlterIndexes { name, change } => alter_indexes(txn, &name, change),
        Command::Backfill {
            table,
            index: name,
            after,
        } => backfill(txn, items, index, &table, &name, after),
        Command::RemoveIndexEntries { table, index } => remove_index_entries(txn, &table, &index),
        Command::Expire { table, keys, now } => {
            let at_ms = if at_ms == 0 {
                now.saturating_mul(1000)
            } else {
                at_ms
            };
            expire(txn, items, index, at_ms, &table, keys, now)
        }
        Command::PurgeTable { id } => purge_table(txn, items, id),
        Command::TrimStreams { before_ms } => Ok(Outcome::Trimmed {
            done: !streams::trim(txn, before_ms)?,
        }),
        Command::DeleteTable { name } => delete_table(txn, items, &name, at_ms),
        Command::PutItem { table, item } => conditional(
            txn,
            items,
            index,
            by_client,
            plain(ItemWrite::Put { table, item }),
        ),
        Command::DeleteItem { table, key } => conditional(
            txn,
            items,
            index,
            by_client,
            plain(ItemWrite::Delete { table, key }),
        ),
        Command::Write(c) => conditional(txn, items, index, by_client, c),
        Command::WriteIfVersion { write, version } => {
            let old_on_failure = write.old_on_failure;
            let planned = plan(txn, items, index, write)?;
            if planned.old_version != version {
                return Err(Error::ConditionalCheckFailed {
                    message: format!(
                        "The conditional request failed: the item's version is {}, not {version}",
                        planned.old_version
                    ),
                    item: planned
                        .old
                        .filter(|_| old_on_failure)
                        .map(|(item, _)| Box::new(item)),
                });
            }
            commit(txn, items, index, by_client, planned)
        }
        Command::Batch(writes) => batch(txn, items, index, by_client, writes),
        Command::Transact(t) => transact(txn, items, index, at_ms, t),
        Command::AlterTable { name, change } => alter_table(txn, index, at_ms, &name, change),
    }
}

/// When and by whom an item write was made, for its stream record.
#[derive(Clone, Copy)]
struct Stamp {
    /// The log entry's time, ms since the epoch.
    at_ms: u64,
    /// Time to live deleted the item.
    by_ttl: bool,
}

/// DynamoDB's message for an operation on a table that does not exist.
pub fn table_not_found() -> Error {
    Error::ResourceNotFound("Requested resource not found".into())
}

fn load_meta(txn: &WriteTransaction, name: &str) -> Result<Option<TableMeta>> {
    let tables = txn.open_table(TABLES)?;
    let row = tables.get(name)?;
    row.map(|v| decode_meta(v.value())).transpose()
}

fn create_table(
    txn: &WriteTransaction,
    index: u64,
    spec: TableSpec,
    indexes: Vec<IndexSpec>,
    stream: Option<(StreamView, u64)>,
) -> Result<Outcome> {
    if load_meta(txn, &spec.name)?.is_some() {
        return Err(Error::ResourceInUse(format!(
            "Table already exists: {}",
            spec.name
        )));
    }
    let meta = TableMeta {
        spec,
        id: index,
        indexes,
    };
    txn.open_table(TABLES)?
        .insert(meta.spec.name.as_str(), encode_meta(&meta)?.as_slice())?;
    txn.open_table(STATS)?.insert(meta.id, (0, 0))?;
    let mut index_stats = txn.open_table(INDEX_STATS)?;
    for i in &meta.indexes {
        index_stats.insert((meta.id, i.id), (0, 0))?;
    }
    if let Some((view, shard_entries)) = stream {
        streams::enable(
            txn,
            &meta,
            index,
            meta.spec.created_at_ms,
            view,
            shard_entries,
        )?;
    }
    Ok(Outcome::Table(Box::new(TableDescription {
        index_stats: vec![(0, 0); meta.indexes.len()],
        stream: streams::latest_in(txn, meta.id)?,
        meta,
        status: TableStatus::Active,
        item_count: 0,
        size_bytes: 0,
    })))
}

fn delete_table(
    txn: &WriteTransaction,
    items: &mut Items,
    name: &str,
    at_ms: u64,
) -> Result<Outcome> {
    let meta = load_meta(txn, name)?.ok_or_else(|| {
        Error::ResourceNotFound(format!(
            "Requested resource not found: Table: {name} not found"
        ))
    })?;
    let (item_count, size_bytes) = txn
        .open_table(STATS)?
        .remove(meta.id)?
        .map(|v| v.value())
        .unwrap_or((0, 0));
    txn.open_table(TABLES)?.remove(name)?;
    txn.open_table(SETTINGS)?.remove(meta.id)?;
    let stream = streams::latest_in(txn, meta.id)?;
    streams::table_deleted(txn, meta.id, at_ms)?;
    // The rows go now if they are few, else in batches (`PurgeTable` entries the leader
    // proposes), so deleting a large table never stalls the node. They are unreachable from
    // here on: a table created again under the name gets a new id.
    if !purge_batch(txn, items, meta.id)? {
        txn.open_table(PURGES)?.insert(meta.id, ())?;
    }
    let mut stats = txn.open_table(INDEX_STATS)?;
    let index_stats = meta
        .indexes
        .iter()
        .map(|i| Ok(stats.remove((meta.id, i.id))?.map_or((0, 0), |v| v.value())))
        .collect::<Result<Vec<_>>>()?;
    Ok(Outcome::Table(Box::new(TableDescription {
        meta,
        stream,
        status: TableStatus::Deleting,
        item_count,
        size_bytes,
        index_stats,
    })))
}

/// Removes every row whose key starts with `prefix` (a table's items, or an index's entries).
/// Removes the first `limit` rows under `prefix` (item or index entry rows), returning each
/// one's stored size.
fn remove_first(
    rows: &mut redb::Table<&[u8], &[u8]>,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<u32>> {
    let end = prefix_end(prefix);
    let upper = match &end {
        Some(e) => std::ops::Bound::Excluded(e.as_slice()),
        None => std::ops::Bound::Unbounded,
    };
    let batch = rows
        .range::<&[u8]>((std::ops::Bound::Included(prefix), upper))?
        .take(limit)
        .map(|row| {
            let (k, v) = row?;
            Ok((k.value().to_vec(), StoredItem::header(v.value())?.1))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut sizes = Vec::with_capacity(batch.len());
    for (key, size) in batch {
        rows.remove(key.as_slice())?;
        sizes.push(size);
    }
    Ok(sizes)
}

/// Removes the first `limit` items whose keys start with `prefix`; how many it removed.
fn remove_first_items(items: &mut Items, prefix: &[u8], limit: usize) -> Result<usize> {
    let end = prefix_end(prefix);
    let upper = match &end {
        Some(e) => std::ops::Bound::Excluded(e.as_slice()),
        None => std::ops::Bound::Unbounded,
    };
    let batch: Vec<Vec<u8>> = items
        .range((std::ops::Bound::Included(prefix), upper))
        .take(limit)
        .map(|(k, _)| k.to_vec())
        .collect();
    for key in &batch {
        items.remove(key)?;
    }
    Ok(batch.len())
}

/// Removes the next [`index_batch`] rows (items, then index entries) of deleted table `id`;
/// true when none is left.
fn purge_batch(txn: &WriteTransaction, items: &mut Items, id: u64) -> Result<bool> {
    let prefix = table_prefix(id);
    let mut budget = index_batch();
    budget -= remove_first_items(items, &prefix, budget)?;
    if budget == 0 {
        return Ok(false);
    }
    budget -= remove_first(&mut txn.open_table(INDEX_ITEMS)?, &prefix, budget)?.len();
    Ok(budget > 0)
}

/// Removes the next batch of rows of deleted table `id`, and forgets it once none is left.
/// Does nothing for a table not being purged, so a retried proposal is harmless.
fn purge_table(txn: &WriteTransaction, items: &mut Items, id: u64) -> Result<Outcome> {
    if txn.open_table(PURGES)?.get(id)?.is_none() {
        return Ok(Outcome::IndexWork { done: true });
    }
    let done = purge_batch(txn, items, id)?;
    if done {
        txn.open_table(PURGES)?.remove(id)?;
    }
    Ok(Outcome::IndexWork { done })
}

/// Changes one setting of a table: its billing (kept in its spec) or its tags and
/// point-in-time recovery (kept in `SETTINGS`).
fn alter_table(
    txn: &WriteTransaction,
    index: u64,
    at_ms: u64,
    name: &str,
    change: TableChange,
) -> Result<Outcome> {
    let mut meta = load_meta(txn, name)?.ok_or_else(table_not_found)?;
    if let TableChange::Stream(view) = change {
        match view {
            Some((view, shard_entries)) => {
                streams::enable(txn, &meta, index, at_ms, view, shard_entries)?;
            }
            None => streams::disable(txn, &meta, at_ms)?,
        }
        return describe_in(txn, meta);
    }
    if let TableChange::Billing(billing) = change {
        meta.spec.billing = billing;
        txn.open_table(TABLES)?
            .insert(name, encode_meta(&meta)?.as_slice())?;
        return describe_in(txn, meta);
    }
    let mut settings = load_settings(txn, meta.id)?;
    let mut table = txn.open_table(SETTINGS)?;
    change_setting(&mut settings, change)?;
    table.insert(meta.id, encode_settings(&settings)?.as_slice())?;
    Ok(Outcome::Settings(settings))
}

/// Applies a change of a table's settings (tags, point-in-time recovery, time to live) by
/// DynamoDB's rules; billing and streams are not settings and change nothing here. Pure, so
/// both engines keep settings by the same rules.
///
/// # Errors
/// Time to live's `Validation` errors ([`crate::model::table::ttl_change`]).
pub fn change_setting(settings: &mut TableSettings, change: TableChange) -> Result<()> {
    match change {
        TableChange::Tag(tags) => settings.tags.extend(tags),
        TableChange::Untag(keys) => {
            for k in keys {
                settings.tags.remove(&k);
            }
        }
        TableChange::PointInTimeRecovery(on) => settings.point_in_time_recovery = on,
        TableChange::TimeToLive { attribute, enabled } => {
            settings.ttl =
                crate::model::table::ttl_change(settings.ttl.as_deref(), attribute, enabled)?;
        }
        TableChange::Billing(_) | TableChange::Stream(_) => {}
    }
    Ok(())
}

/// The settings of table `id` as `txn` has them.
fn load_settings(txn: &WriteTransaction, id: u64) -> Result<TableSettings> {
    match txn.open_table(SETTINGS)?.get(id)? {
        Some(v) => decode_settings(v.value()),
        None => Ok(TableSettings::default()),
    }
}

/// Deletes those of `keys` whose item in `table` has expired at `now` under the table's time
/// to live, through the same path as DeleteItem (indexes included). An item rewritten since
/// the leader looked (no longer expired), already gone, or in a table whose TTL was turned
/// off meanwhile is left as it is: the check is made here, on the state at this log index.
fn expire(
    txn: &WriteTransaction,
    items: &mut Items,
    index: u64,
    at_ms: u64,
    table: &str,
    keys: Vec<Item>,
    now: u64,
) -> Result<Outcome> {
    let Some(meta) = load_meta(txn, table)? else {
        return Ok(Outcome::Expired { deleted: 0 });
    };
    let Some(attribute) = load_settings(txn, meta.id)?.ttl else {
        return Ok(Outcome::Expired { deleted: 0 });
    };
    let mut deleted = 0;
    for key in keys {
        let write = Conditional {
            write: ItemWrite::Delete {
                table: table.to_string(),
                key,
            },
            condition: None,
            old_on_failure: false,
        };
        let planned = match plan(txn, items, index, write) {
            Ok(p) => p,
            Err(e) if e.is_deterministic() => continue,
            Err(e) => return Err(e),
        };
        if planned.old.as_ref().is_some_and(|(item, _)| {
            ttl_expired(item, &attribute, now) || planted(PlantedBug::ExpiryWithoutRecheck)
        }) {
            let stamp = Stamp {
                at_ms,
                by_ttl: true,
            };
            commit(txn, items, index, stamp, planned)?;
            deleted += 1;
        }
    }
    Ok(Outcome::Expired { deleted })
}

/// Moves table `id`'s counts for one item write, in the applying state machine's [`Seen`]
/// (written back to `STATS` before the transaction commits).
fn adjust_stats(
    txn: &WriteTransaction,
    id: u64,
    old_size: Option<u32>,
    new_size: Option<u32>,
) -> Result<()> {
    let current = match SEEN.with(|s| s.borrow().stats.get(&id).copied()) {
        Some(counts) => counts,
        None => txn
            .open_table(STATS)?
            .get(id)?
            .map_or((0, 0), |v| v.value()),
    };
    let next = moved(current, old_size, new_size);
    SEEN.with(|s| s.borrow_mut().stats.insert(id, next));
    Ok(())
}

/// `(count, bytes)` after a row of `old` bytes (if any) is replaced by one of `new` (if any).
fn moved((count, bytes): (u64, u64), old: Option<u32>, new: Option<u32>) -> (u64, u64) {
    let (mut count, mut bytes) = (count, bytes);
    if let Some(old) = old {
        count = count.saturating_sub(1);
        bytes = bytes.saturating_sub(u64::from(old));
    }
    if let Some(new) = new {
        count += 1;
        bytes += u64::from(new);
    }
    (count, bytes)
}

/// Rows one backfill or index-removal entry handles: small enough that writes interleave.
pub const INDEX_BATCH: usize = 256;

thread_local! {
    static BATCH: std::cell::Cell<usize> = const { std::cell::Cell::new(INDEX_BATCH) };
}

/// Sets the rows per backfill or index-removal entry for every state machine applying on this
/// thread (`None`: [`INDEX_BATCH`]). Only the deterministic simulation, which runs every node
/// on one thread, calls this, so its small table takes several batches.
pub fn set_index_batch(rows: Option<usize>) {
    BATCH.with(|b| b.set(rows.unwrap_or(INDEX_BATCH).max(1)));
}

fn index_batch() -> usize {
    BATCH.with(std::cell::Cell::get)
}

/// Adds a global index (empty, to be filled by `Backfill` entries; writes keep it up to date
/// from now on), marks one deleting (its entries go by `RemoveIndexEntries` entries), or sets
/// one's provisioned throughput.
fn alter_indexes(txn: &WriteTransaction, name: &str, change: IndexChange) -> Result<Outcome> {
    let mut meta = load_meta(txn, name)?.ok_or_else(table_not_found)?;
    if let Some(created) = change_indexes(&mut meta, change, true)? {
        txn.open_table(INDEX_STATS)?
            .insert((meta.id, created), (0, 0))?;
    }
    txn.open_table(TABLES)?
        .insert(name, encode_meta(&meta)?.as_slice())?;
    describe_in(txn, meta)
}

/// Applies an UpdateTable index change to `meta` by DynamoDB's rules; the id of an index
/// created. With `stored` (Raft mode, which keeps index rows) a new index starts backfilling
/// and a deleted one is marked for purging; without (the leaderless engine, which computes
/// index entries from the items when read) a new index is active at once and a deleted one
/// goes at once.
///
/// # Errors
/// An index that exists already or not at all, a second change while one is under way, the
/// limit on global indexes, a key attribute defined with another type, throughput on an
/// on-demand table.
pub fn change_indexes(
    meta: &mut TableMeta,
    change: IndexChange,
    stored: bool,
) -> Result<Option<u32>> {
    let name = meta.spec.name.clone();
    match change {
        IndexChange::Create {
            mut index,
            definitions,
        } => {
            if meta.index(&index.name).is_some() {
                return Err(Error::validation(format!(
                    "One or more parameter values were invalid: Attempting to create an index which already exists: {}",
                    index.name
                )));
            }
            one_online_change(meta)?;
            let globals = meta
                .indexes
                .iter()
                .filter(|i| i.kind == IndexKind::Global)
                .count();
            if globals >= MAX_GLOBAL_INDEXES {
                return Err(Error::LimitExceeded(format!(
                    "One or more parameter values were invalid: GlobalSecondaryIndex count exceeds the per-table limit of {MAX_GLOBAL_INDEXES}"
                )));
            }
            for d in definitions {
                match meta
                    .spec
                    .attribute_definitions
                    .iter()
                    .find(|a| a.name == d.name)
                {
                    Some(a) if a.key_type != d.key_type => {
                        return Err(Error::validation(format!(
                            "One or more parameter values were invalid: Attribute {} is already defined with type {}, not {}",
                            d.name, a.key_type, d.key_type
                        )));
                    }
                    Some(_) => {}
                    None => meta.spec.attribute_definitions.push(d),
                }
            }
            index.id = meta.indexes.iter().map(|i| i.id).max().unwrap_or(0) + 1;
            index.state = if stored {
                IndexState::Backfilling { after: None }
            } else {
                IndexState::Active
            };
            let id = index.id;
            meta.indexes.push(index);
            Ok(Some(id))
        }
        IndexChange::Delete { index } => {
            let Some(at) = meta.indexes.iter().position(|i| {
                i.name == index && i.kind == IndexKind::Global && i.state != IndexState::Deleting
            }) else {
                return Err(Error::ResourceNotFound(format!(
                    "Requested resource not found: Index: {index} not found for table {name}"
                )));
            };
            one_online_change(meta)?;
            if stored {
                meta.indexes[at].state = IndexState::Deleting;
            } else {
                meta.indexes.remove(at);
            }
            Ok(None)
        }
        IndexChange::Throughput { index, units } => {
            let Some(spec) = meta.indexes.iter_mut().find(|i| {
                i.name == index && i.kind == IndexKind::Global && i.state != IndexState::Deleting
            }) else {
                return Err(Error::ResourceNotFound(format!(
                    "Requested resource not found: Index: {index} not found for table {name}"
                )));
            };
            if spec.throughput.is_none() {
                return Err(Error::validation(format!(
                    "One or more parameter values were invalid: ProvisionedThroughput should not be specified for index: {index} when BillingMode is PAY_PER_REQUEST"
                )));
            }
            spec.throughput = Some(units);
            Ok(None)
        }
    }
}

/// DynamoDB adds or removes one global index of a table at a time.
fn one_online_change(meta: &TableMeta) -> Result<()> {
    if meta.indexes.iter().any(|i| i.state != IndexState::Active) {
        return Err(Error::LimitExceeded(
            "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table".into(),
        ));
    }
    Ok(())
}

/// The description of `meta`'s table as `txn` has it.
fn describe_in(txn: &WriteTransaction, meta: TableMeta) -> Result<Outcome> {
    let (item_count, size_bytes) = txn
        .open_table(STATS)?
        .get(meta.id)?
        .map(|v| v.value())
        .unwrap_or((0, 0));
    let stats = txn.open_table(INDEX_STATS)?;
    let index_stats = meta
        .indexes
        .iter()
        .map(|i| Ok(stats.get((meta.id, i.id))?.map_or((0, 0), |v| v.value())))
        .collect::<Result<Vec<_>>>()?;
    Ok(Outcome::Table(Box::new(TableDescription {
        stream: streams::latest_in(txn, meta.id)?,
        meta,
        status: TableStatus::Active,
        item_count,
        size_bytes,
        index_stats,
    })))
}

/// Fills index `name` of `table` from the next [`index_batch`] items after `after`, and
/// marks it active when the table has no more. A batch proposed from an older state (its
/// `after` is not where the index stands) does nothing, so a retried or duplicated proposal
/// is harmless. Items whose index key has the wrong type are left out, as DynamoDB leaves them.
fn backfill(
    txn: &WriteTransaction,
    items: &mut Items,
    index: u64,
    table: &str,
    name: &str,
    after: Option<Vec<u8>>,
) -> Result<Outcome> {
    let Some(mut meta) = load_meta(txn, table)? else {
        return Ok(Outcome::IndexWork { done: true });
    };
    let Some(at) = meta.indexes.iter().position(|i| i.name == name) else {
        return Ok(Outcome::IndexWork { done: true });
    };
    match &meta.indexes[at].state {
        IndexState::Backfilling { after: at_now } if *at_now == after => {}
        IndexState::Backfilling { .. } => return Ok(Outcome::IndexWork { done: false }),
        IndexState::Active | IndexState::Deleting => return Ok(Outcome::IndexWork { done: true }),
    }
    let spec = meta.indexes[at].clone();
    let prefix = table_prefix(meta.id);
    let lower = match &after {
        Some(k) => std::ops::Bound::Excluded(k.as_slice()),
        None => std::ops::Bound::Included(prefix.as_slice()),
    };
    let end = prefix_end(&prefix);
    let upper = match &end {
        Some(e) => std::ops::Bound::Excluded(e.as_slice()),
        None => std::ops::Bound::Unbounded,
    };
    let batch = index_batch();
    let mut rows = Vec::new();
    for (k, v) in items.range((lower, upper)) {
        rows.push((k.to_vec(), StoredItem::item(v)?));
        if rows.len() == batch {
            break;
        }
    }
    let mut entries = txn.open_table(INDEX_ITEMS)?;
    let mut stats = txn.open_table(INDEX_STATS)?;
    let stat = (meta.id, spec.id);
    let mut current = stats.get(stat)?.map_or((0, 0), |v| v.value());
    for (_, item) in &rows {
        let key = meta.spec.key_schema.key_of_item(item)?;
        let Ok(Some((entry, projected, size))) = index_entry(&meta, &spec, item, &key) else {
            continue;
        };
        let row = StoredItem::encode(index, size, &projected)?;
        if let Some(old) = entries.insert(entry.as_slice(), row.as_slice())? {
            current = moved(current, Some(StoredItem::header(old.value())?.1), None);
        }
        current = moved(current, None, Some(size));
    }
    stats.insert(stat, current)?;
    drop((entries, stats));
    let done = rows.len() < batch;
    meta.indexes[at].state = if done {
        IndexState::Active
    } else {
        IndexState::Backfilling {
            after: rows.last().map(|(k, _)| k.clone()),
        }
    };
    txn.open_table(TABLES)?
        .insert(table, encode_meta(&meta)?.as_slice())?;
    Ok(Outcome::IndexWork { done })
}

/// Removes the next [`index_batch`] entries of index `name` of `table`, which UpdateTable
/// is deleting, and the index itself (its statistics too) once none is left. Does nothing to
/// an index in any other state, so a retried proposal is harmless.
fn remove_index_entries(txn: &WriteTransaction, table: &str, name: &str) -> Result<Outcome> {
    let Some(mut meta) = load_meta(txn, table)? else {
        return Ok(Outcome::IndexWork { done: true });
    };
    let Some(at) = meta
        .indexes
        .iter()
        .position(|i| i.name == name && i.state == IndexState::Deleting)
    else {
        return Ok(Outcome::IndexWork { done: true });
    };
    let prefix = meta.indexes[at].prefix(meta.id);
    let mut entries = txn.open_table(INDEX_ITEMS)?;
    let mut stats = txn.open_table(INDEX_STATS)?;
    let stat = (meta.id, meta.indexes[at].id);
    let mut current = stats.get(stat)?.map_or((0, 0), |v| v.value());
    let removed = remove_first(&mut entries, &prefix, index_batch())?;
    for size in &removed {
        current = moved(current, Some(*size), None);
    }
    let done = removed.len() < index_batch() || planted(PlantedBug::IndexRemovalStopsEarly);
    if done {
        stats.remove(stat)?;
        drop((entries, stats));
        meta.indexes.remove(at);
        txn.open_table(TABLES)?
            .insert(table, encode_meta(&meta)?.as_slice())?;
    } else {
        stats.insert(stat, current)?;
    }
    Ok(Outcome::IndexWork { done })
}

/// DynamoDB's message for a failed condition.
pub const CONDITION_FAILED: &str = "The conditional request failed";

/// One item write, checked and computed but not yet written.
struct Planned {
    table_id: u64,
    row_key: Vec<u8>,
    old: Option<(Item, u32)>,
    new: Option<(Item, u32)>,
    return_new: bool,
    /// A `ConditionCheck`: nothing to write.
    check_only: bool,
    /// What the write changes in each secondary index.
    index_writes: Vec<IndexWrite>,
    /// The table's enabled stream, with the item's key attributes for its record.
    stream: Option<((u64, StreamView), Item)>,
    /// The item's version before the write (0 if it did not exist).
    old_version: u64,
}

/// One item write's change to one secondary index: its old entry goes, its new one comes.
struct IndexWrite {
    index_id: u32,
    /// What it costs the index.
    charge: IndexCharge,
    /// The old entry's key and size.
    remove: Option<(Vec<u8>, u32)>,
    /// The new entry's key, its `StoredItem` row, and its size.
    put: Option<(Vec<u8>, Vec<u8>, u32)>,
}

/// The entry `item` (with primary key `key`) has in `index`: key, projected item and size.
/// An item the index cannot hold (a key attribute missing, or mistyped in an old item written
/// before the index existed) has none.
pub(crate) fn index_entry(
    meta: &TableMeta,
    index: &IndexSpec,
    item: &Item,
    key: &PrimaryKey,
) -> Result<Option<(Vec<u8>, Item, u32)>> {
    let Some(entry) = index.entry_key(meta.id, item, key)? else {
        return Ok(None);
    };
    let projected = index.project(item, &meta.spec.key_schema);
    let size = u32::try_from(item_size(&projected))
        .map_err(|_| Error::internal("an index entry over 4 GiB"))?;
    Ok(Some((entry, projected, size)))
}

/// How a write from `old` to `new` changes each of the table's indexes. Fails, before anything
/// is written, if `new` has a mistyped or empty index key value.
fn plan_indexes(
    meta: &TableMeta,
    key: &PrimaryKey,
    index: u64,
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Vec<IndexWrite>> {
    let mut writes = Vec::new();
    for spec in meta
        .indexes
        .iter()
        .filter(|i| i.state != IndexState::Deleting)
    {
        let before = match old {
            Some(item) => index_entry(meta, spec, item, key).unwrap_or(None),
            None => None,
        };
        let after = match new {
            Some(item) => index_entry(meta, spec, item, key)?,
            None => None,
        };
        if let (Some(b), Some(a)) = (&before, &after)
            && b.0 == a.0
            && b.1 == a.1
        {
            continue; // the entry would be rewritten as it is (version aside)
        }
        if before.is_none() && after.is_none() {
            continue;
        }
        let writes_taken = match (&before, &after) {
            (Some(b), Some(a)) if b.0 == a.0 => vec![b.2.max(a.2)],
            _ => before.iter().chain(&after).map(|e| e.2).collect(),
        };
        writes.push(IndexWrite {
            index_id: spec.id,
            charge: IndexCharge {
                index: spec.name.clone(),
                kind: spec.kind,
                writes: writes_taken,
            },
            remove: before.map(|(k, _, size)| (k, size)),
            put: after
                .map(|(k, projected, size)| {
                    StoredItem::encode(index, size, &projected).map(|row| (k, row, size))
                })
                .transpose()?,
        });
    }
    Ok(writes)
}

/// What a write from `old` to `new` (of the item with primary key `key`) costs each of
/// `meta`'s secondary indexes it changes, for an engine that keeps no index rows itself (the
/// leaderless one).
///
/// # Errors
/// DynamoDB's `ValidationException` if `new` has a mistyped or empty index key value.
pub fn index_charges(
    meta: &TableMeta,
    key: &PrimaryKey,
    old: Option<&Item>,
    new: Option<&Item>,
) -> Result<Vec<IndexCharge>> {
    Ok(plan_indexes(meta, key, 0, old, new)?
        .into_iter()
        .map(|w| w.charge)
        .collect())
}

impl Planned {
    /// The larger of the item's old and new sizes: what DynamoDB charges a write for.
    fn charged_size(&self) -> u32 {
        let old = self.old.as_ref().map_or(0, |(_, size)| *size);
        let new = self.new.as_ref().map_or(0, |(_, size)| *size);
        old.max(new)
    }

    /// What the write costs each secondary index it changes.
    fn index_charges(&self) -> Vec<IndexCharge> {
        self.index_writes.iter().map(|w| w.charge.clone()).collect()
    }
}

/// Checks one item write under its condition and computes what it writes, changing nothing.
/// The condition is evaluated on the item as it is at this log index, so every replica reaches
/// the same answer; a false condition is a deterministic `ConditionalCheckFailed` result.
fn plan(txn: &WriteTransaction, items: &Items, index: u64, c: Conditional) -> Result<Planned> {
    let meta = meta_of(txn, c.write.table())?.ok_or_else(table_not_found)?;
    let schema = &meta.spec.key_schema;
    let key = match &c.write {
        ItemWrite::Put { item, .. } => schema.key_of_item(item)?,
        ItemWrite::Delete { key, .. }
        | ItemWrite::Update { key, .. }
        | ItemWrite::Check { key, .. } => schema.key_from_map(key)?,
    };
    let check_only = matches!(c.write, ItemWrite::Check { .. });
    let row_key = item_key(meta.id, &key);
    let mut old_version = 0;
    let old = match items.get(row_key.as_slice()) {
        Some(bytes) => {
            let (version, size) = StoredItem::header(bytes)?;
            old_version = version;
            // Log order makes this hold; a violation would mean an entry applied twice.
            if version >= index {
                return Err(Error::internal(format!(
                    "item version {version} is not older than the write at index {index}"
                )));
            }
            Some((StoredItem::item(bytes)?, size))
        }
        None => None,
    };
    let return_new = matches!(c.write, ItemWrite::Update { .. });
    let new = decide(
        schema,
        &key,
        old.as_ref().map(|(item, _)| item),
        c,
        !planted(PlantedBug::ConditionsIgnored),
    )?;
    let new = match new {
        Some(item) => {
            check_item_size(&item)?;
            let size = u32::try_from(item_size(&item)).map_err(|_| {
                Error::validation("Item size has exceeded the maximum allowed size")
            })?;
            Some((item, size))
        }
        None => None,
    };
    let index_writes = if check_only || meta.indexes.is_empty() {
        Vec::new()
    } else {
        plan_indexes(
            &meta,
            &key,
            index,
            old.as_ref().map(|(item, _)| item),
            new.as_ref().map(|(item, _)| item),
        )?
    };
    let stream = if check_only {
        None
    } else {
        stream_of(txn, meta.id)?.map(|s| (s, key.to_item(schema)))
    };
    Ok(Planned {
        table_id: meta.id,
        row_key,
        old,
        new,
        return_new,
        check_only,
        index_writes,
        stream,
        old_version,
    })
}

/// What one item write makes of the item it finds (`old`, `None` when absent): the new item,
/// or `None` when it deletes or only checks, after checking its condition (when `check`).
/// Pure, so the leaderless engine's coordinator decides writes exactly as apply does.
///
/// # Errors
/// `ConditionalCheckFailed` (with the old item when the write asked for it), or what the
/// update expression rejects.
pub fn decide(
    schema: &KeySchema,
    key: &PrimaryKey,
    old: Option<&Item>,
    c: Conditional,
    check: bool,
) -> Result<Option<Item>> {
    if let Some(condition) = &c.condition {
        let empty = Item::new();
        if check && !evaluate(condition, old.unwrap_or(&empty)) {
            return Err(Error::ConditionalCheckFailed {
                message: CONDITION_FAILED.into(),
                item: old
                    .filter(|_| c.old_on_failure)
                    .map(|item| Box::new(item.clone())),
            });
        }
    }
    Ok(match c.write {
        ItemWrite::Put { item, .. } => Some(item),
        ItemWrite::Delete { .. } | ItemWrite::Check { .. } => None,
        ItemWrite::Update { update, .. } => {
            // An absent item starts as just its key, as DynamoDB creates it.
            let base = old.map_or_else(|| key.to_item(schema), Clone::clone);
            let next = update.apply(&base)?;
            // The API refuses updates of key attributes; a changed key here would be a bug.
            if schema.key_of_item(&next)? != *key {
                return Err(Error::internal("an update changed the item's key"));
            }
            Some(next)
        }
    })
}

/// Writes a planned item write, with `index` as the item's version.
fn commit(
    txn: &WriteTransaction,
    items: &mut Items,
    index: u64,
    stamp: Stamp,
    planned: Planned,
) -> Result<Outcome> {
    let size = planned.charged_size();
    if planned.check_only {
        return Ok(Outcome::Item {
            version: index,
            old: planned.old.map(|(item, _)| item),
            new: None,
            size,
            indexes: Vec::new(),
        });
    }
    crate::store::cache::note_write(&planned.row_key);
    match &planned.new {
        Some((item, size)) => {
            items.insert(
                planned.row_key.as_slice(),
                StoredItem::encode(index, *size, item)?,
            )?;
        }
        None => {
            items.remove(planned.row_key.as_slice())?;
        }
    }
    let old_size = planned.old.as_ref().map(|(_, size)| *size);
    let new_size = planned.new.as_ref().map(|(_, size)| *size);
    if old_size.is_some() || new_size.is_some() {
        adjust_stats(txn, planned.table_id, old_size, new_size)?;
    }
    if !planned.index_writes.is_empty() {
        let mut entries = txn.open_table(INDEX_ITEMS)?;
        let mut stats = txn.open_table(INDEX_STATS)?;
        for w in &planned.index_writes {
            // The entries really there count, not the ones the old item implies: an index
            // still being backfilled may not have them yet.
            let mut gone = Vec::new();
            if let Some((key, _)) = &w.remove
                && !planted(PlantedBug::StaleIndexEntries)
                && let Some(old) = entries.remove(key.as_slice())?
            {
                gone.push(StoredItem::header(old.value())?.1);
            }
            if let Some((key, row, _)) = &w.put
                && let Some(old) = entries.insert(key.as_slice(), row.as_slice())?
            {
                gone.push(StoredItem::header(old.value())?.1);
            }
            let stat = (planned.table_id, w.index_id);
            let mut current = stats.get(stat)?.map_or((0, 0), |v| v.value());
            for size in gone {
                current = moved(current, Some(size), None);
            }
            current = moved(current, None, w.put.as_ref().map(|(_, _, size)| *size));
            stats.insert(stat, current)?;
        }
    }
    if let Some((stream, keys)) = planned.stream.clone() {
        streams::record(
            txn,
            stream,
            index,
            stamp.at_ms,
            keys,
            planned.old.as_ref().map(|(item, _)| item),
            planned.new.as_ref().map(|(item, _)| item),
            stamp.by_ttl,
        )?;
    }
    let indexes = planned.index_charges();
    Ok(Outcome::Item {
        version: index,
        indexes,
        old: planned.old.map(|(item, _)| item),
        new: planned
            .new
            .filter(|_| planned.return_new)
            .map(|(item, _)| item),
        size,
    })
}

/// Applies one item write under its condition.
fn conditional(
    txn: &WriteTransaction,
    items: &mut Items,
    index: u64,
    stamp: Stamp,
    c: Conditional,
) -> Result<Outcome> {
    let planned = plan(txn, items, index, c)?;
    commit(txn, items, index, stamp, planned)
}

/// Applies a batch of unconditional writes to distinct items, all or nothing: every write is
/// checked before any is made, so a batch that fails (its table deleted meanwhile) writes none.
fn batch(
    txn: &WriteTransaction,
    items: &mut Items,
    index: u64,
    stamp: Stamp,
    writes: Vec<ItemWrite>,
) -> Result<Outcome> {
    let planned = writes
        .into_iter()
        .map(|write| {
            plan(
                txn,
                items,
                index,
                Conditional {
                    write,
                    condition: None,
                    old_on_failure: false,
                },
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let written = planned.len();
    let sizes = planned.iter().map(Planned::charged_size).collect();
    let indexes = planned.iter().map(Planned::index_charges).collect();
    for p in planned {
        commit(txn, items, index, stamp, p)?;
    }
    Ok(Outcome::Batch {
        written,
        sizes,
        indexes,
        replayed: false,
    })
}

/// Applies a transaction: every action is checked on the state at this log index before any
/// is written; if any fails, none is, and the answer gives each action's reason in order. A
/// `ClientRequestToken` seen within its lifetime for the same actions succeeds again without
/// writing; for different actions it is refused.
fn transact(
    txn: &WriteTransaction,
    items: &mut Items,
    index: u64,
    at_ms: u64,
    t: Transaction,
) -> Result<Outcome> {
    let stamp = Stamp {
        at_ms: if at_ms == 0 { t.at_ms } else { at_ms },
        by_ttl: false,
    };
    expire_tokens(txn, t.at_ms)?;
    let fingerprint = match &t.token {
        Some(token) => {
            let fingerprint = fnv1a(&postcard::to_stdvec(&t.actions)?);
            let used = txn
                .open_table(TOKENS)?
                .get(token.as_str())?
                .map(|v| v.value());
            match used {
                Some((_, f)) if f == fingerprint => return replayed(txn, items, index, t.actions),
                Some(_) => {
                    return Err(Error::IdempotentParameterMismatch(
                        "The request uses the same client token as a previous, but non-identical request."
                            .into(),
                    ));
                }
                None => Some(fingerprint),
            }
        }
        None => None,
    };
    let mut planned = Vec::new();
    let mut reasons = Vec::new();
    let mut cancelled = false;
    for action in t.actions {
        match plan(txn, items, index, action) {
            Ok(p) => {
                planned.push(p);
                reasons.push(CancellationReason {
                    code: "None".into(),
                    message: None,
                    item: None,
                });
            }
            Err(e) if e.is_deterministic() => {
                cancelled = true;
                reasons.push(cancellation_reason(e));
            }
            Err(e) => return Err(e),
        }
    }
    if cancelled {
        let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
        return Err(Error::TransactionCanceled {
            message: format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                codes.join(", ")
            ),
            reasons,
        });
    }
    let written = planned.iter().filter(|p| !p.check_only).count();
    let sizes = planned.iter().map(Planned::charged_size).collect();
    let indexes = planned.iter().map(Planned::index_charges).collect();
    let keep = if planted(PlantedBug::PartialTransactions) {
        1
    } else {
        planned.len()
    };
    for mut p in planned.into_iter().take(keep) {
        if planted(PlantedBug::StreamSkipsTransactions) {
            p.stream = None;
        }
        commit(txn, items, index, stamp, p)?;
    }
    if let (Some(token), Some(fingerprint)) = (&t.token, fingerprint) {
        txn.open_table(TOKENS)?
            .insert(token.as_str(), (t.at_ms, fingerprint))?;
        txn.open_table(TOKEN_TIMES)?
            .insert((t.at_ms, token.as_str()), ())?;
    }
    Ok(Outcome::Batch {
        written,
        sizes,
        indexes,
        replayed: false,
    })
}

/// The answer to a transaction replayed under its `ClientRequestToken`: nothing is written,
/// and DynamoDB charges the reads of the items as they are now.
fn replayed(
    txn: &WriteTransaction,
    items: &Items,
    index: u64,
    actions: Vec<Conditional>,
) -> Result<Outcome> {
    let sizes: Vec<u32> = actions
        .into_iter()
        .map(|mut action| {
            action.condition = None;
            // An action that would no longer apply (its table gone) still reads nothing.
            plan(txn, items, index, action).map_or(0, |p| p.old.map_or(0, |(_, size)| size))
        })
        .collect();
    Ok(Outcome::Batch {
        written: 0,
        indexes: vec![Vec::new(); sizes.len()],
        sizes,
        replayed: true,
    })
}

/// One failed action's reason, as DynamoDB names it.
fn cancellation_reason(e: Error) -> CancellationReason {
    match e {
        Error::ConditionalCheckFailed { message, item } => CancellationReason {
            code: "ConditionalCheckFailed".into(),
            message: Some(message),
            item: item.map(|i| *i),
        },
        other => CancellationReason {
            code: "ValidationError".into(),
            message: Some(other.to_string()),
            item: None,
        },
    }
}

/// Forgets tokens used longer ago than their lifetime, as of `now_ms` (the log's time).
fn expire_tokens(txn: &WriteTransaction, now_ms: u64) -> Result<()> {
    let cutoff = now_ms.saturating_sub(TOKEN_LIFETIME_MS);
    let mut times = txn.open_table(TOKEN_TIMES)?;
    let expired: Vec<(u64, String)> = times
        .range::<(u64, &str)>(..(cutoff, ""))?
        .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_string())))
        .collect::<std::result::Result<_, _>>()?;
    let mut tokens = txn.open_table(TOKENS)?;
    for (at, token) in expired {
        times.remove((at, token.as_str()))?;
        // A token reused since keeps its newer record.
        if tokens
            .get(token.as_str())?
            .is_some_and(|v| v.value().0 == at)
        {
            tokens.remove(token.as_str())?;
        }
    }
    Ok(())
}

/// FNV-1a: a stable fingerprint (the same on every replica and every build).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
