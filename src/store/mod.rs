//! The replicated state machine: tables and their metadata in redb, items in memory with a log
//! of their own. It knows nothing of Raft.
//!
//! Writes arrive as [`Command`]s through [`crate::raft::StateMachine::apply`], always inside the
//! Raft layer's write transaction (so the applied index lands with the data, and with where
//! the items' log ends). Reads go to redb through MVCC read transactions, which never block the
//! writer, and to the items under their map's read lock, which the writer takes one command at
//! a time.
//!
//! - [`tables`]: every redb table definition of the state machine and the row encodings.
//! - [`command`]: the commands written into the Raft log and their outcomes.
//! - [`items`]: the items in memory, and the log that makes them durable.
//! - [`apply`]: applying a command, with every check repeated deterministically.
//! - [`read`]: get, query, scan, describe and list over a read transaction.
//! - [`streams`]: DynamoDB Streams: records made at apply, trimming, and their reads.
//! - [`snapshot`]: export and restore of the whole state for Raft snapshots.
//! - [`lag`]: global indexes answering from the past when a GSI lag is set.
//! - [`MetaCache`]: table metadata cached for the request path.
//! - [`cache`]: the optional read cache of items for eventually consistent GetItems.

pub mod apply;
pub mod cache;
pub mod command;
pub mod items;
pub mod lag;
pub mod read;
pub mod snapshot;
pub mod streams;
pub mod tables;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{Database, Durability, ReadTransaction, ReadableDatabase, WriteTransaction};

pub use command::{
    Command, Conditional, IndexChange, IndexCharge, ItemWrite, Outcome, TableChange, Transaction,
};
pub use read::Page;

use crate::Result;
use crate::model::table::TableMeta;
use crate::raft::wal::Slot;
use crate::raft::{Freezer, Frozen, LogIndex, StateMachine};
use crate::store::items::{ItemLog, ItemMap, Position, Tree};
use crate::store::lag::{LagSnapshots, SharedIndexLag};

/// Table metadata by name, as this node last read it from redb, so that a write need not open a
/// read transaction on a blocking thread just to learn its table's key schema.
///
/// Never stale for longer than one apply pass: a table-level command applied on this node
/// empties it, and again once its transaction has committed, and every fill carries the
/// generation it started in, so a read that began before a change cannot put the old metadata
/// back afterwards. (The request path's checks are repeated at apply anyway; a stale entry
/// could only word an error differently.)
#[derive(Debug, Default)]
pub struct MetaCache {
    /// Bumped at every emptying; with the cached entries.
    entries: Mutex<(u64, HashMap<String, TableMeta>)>,
    /// A table-level command was applied and its transaction has not committed yet.
    dirty: AtomicBool,
}

impl MetaCache {
    fn lock(&self) -> MutexGuard<'_, (u64, HashMap<String, TableMeta>)> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached metadata of `name` if any, and the generation to [`MetaCache::fill`] with.
    pub fn get(&self, name: &str) -> (u64, Option<TableMeta>) {
        let entries = self.lock();
        (entries.0, entries.1.get(name).cloned())
    }

    /// Caches `meta` for its table, unless the cache was emptied since `generation` or a
    /// table-level change is applied but not yet committed (a view begun before that commit
    /// would put the old metadata back).
    pub fn fill(&self, generation: u64, meta: &TableMeta) {
        let mut entries = self.lock();
        if entries.0 == generation && !self.dirty.load(Ordering::SeqCst) {
            entries.1.insert(meta.spec.name.clone(), meta.clone());
        }
    }

    fn empty(&self) {
        let mut entries = self.lock();
        entries.0 += 1;
        entries.1.clear();
    }
}

/// The state machine of one node: a handle on its redb database.
#[derive(Clone)]
pub struct Store {
    /// Every table's items (shared by every clone). Before `db`: fields drop in order, and
    /// a clean close of redb makes its last commit durable, which must find the log it
    /// names fsynced ([`ItemLog`]'s drop) already.
    items: Arc<ItemMap>,
    /// Their log, which only the node applying writes.
    log: Arc<Mutex<ItemLog>>,
    db: Arc<Database>,
    meta: Arc<MetaCache>,
    /// The cluster's GSI lags, and this node's past views for them.
    lags: SharedIndexLag,
    snapshots: Arc<LagSnapshots>,
    /// The read cache, when one is configured.
    cache: Option<Arc<cache::ReadCache>>,
    /// Item rows written by applies whose transaction has not committed yet (on the copy the
    /// Raft node applies with).
    written: Vec<Vec<u8>>,
    /// Table metadata read by the applies of the transaction in progress.
    seen: apply::Seen,
    /// The log's position as last recorded in redb (on the copy the Raft node applies with).
    recorded: Option<Position>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("lag_views", &self.snapshots.len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The store over `db` (the same database the node's Raft log lives in), with its items
    /// read from their log in `item_slots` up to where `db` says it ends.
    ///
    /// A database that records no position is a new node's, or one whose items an older kvsim
    /// kept in redb: those move into a new log, and the position is committed durably at once.
    ///
    /// # Errors
    /// A database or log that cannot be read, or a log damaged before its recorded end.
    pub fn open(db: Arc<Database>, item_slots: [Slot; 2]) -> Result<Store> {
        let at = {
            let txn = db.begin_read()?;
            match txn.open_table(tables::ITEM_LOG) {
                Ok(t) => t.get("at")?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            }
        };
        let (log, tree) = match at {
            Some(at) => ItemLog::open(item_slots, Some(at))?,
            None => {
                let legacy = legacy_items(&db)?;
                let (mut log, _) = ItemLog::open(item_slots, None)?;
                if !legacy.is_empty() {
                    log.rotate(&legacy)?;
                }
                let mut txn = db.begin_write()?;
                txn.delete_table(tables::ITEMS)?;
                record_position(&txn, log.position())?;
                txn.set_durability(Durability::Immediate)?;
                txn.commit()?;
                (log, legacy)
            }
        };
        Ok(Store {
            db,
            meta: Arc::default(),
            lags: SharedIndexLag::default(),
            snapshots: Arc::default(),
            cache: None,
            written: Vec::new(),
            seen: apply::Seen::default(),
            recorded: Some(log.position()),
            items: Arc::new(ItemMap::new(tree)),
            log: Arc::new(Mutex::new(log)),
        })
    }

    /// A store over `db` with its items' log in memory, for tests (a database an older kvsim
    /// wrote has its items moved out of it, as [`Store::open`] does).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn in_memory(db: Arc<Database>) -> Result<Store> {
        let slot = || -> Slot { Box::new(crate::disk::MemoryFile::default()) };
        Store::open(db, [slot(), slot()])
    }

    /// The same store, its items' log rotating once it holds more than twice what the live
    /// items need plus `slack` bytes (the simulation rotates at small sizes).
    #[must_use]
    pub fn with_item_log_slack(self, slack: u64) -> Store {
        self.item_log().set_slack(slack);
        self
    }

    /// The items, for reads.
    pub fn items(&self) -> &ItemMap {
        &self.items
    }

    /// Applies the encoded `command` at `index` with `seen` as its transaction's metadata and
    /// counts: the rules alone, without the caches [`StateMachine::apply`] keeps (for tests
    /// of the rules).
    ///
    /// # Errors
    /// As [`apply::apply`].
    pub fn apply_with(
        &self,
        txn: &WriteTransaction,
        index: LogIndex,
        command: &[u8],
        seen: &mut apply::Seen,
    ) -> Result<Result<Outcome>> {
        apply_items(&self.items, &self.log, txn, index, command, seen)
    }

    fn item_log(&self) -> MutexGuard<'_, ItemLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes out the items' log and records its position in `txn`, if it moved.
    fn record_items(&mut self, txn: &WriteTransaction) -> Result<()> {
        let position = {
            let mut log = self.item_log();
            log.write_out()?;
            log.position()
        };
        if self.recorded != Some(position) {
            record_position(txn, position)?;
            self.recorded = Some(position);
        }
        Ok(())
    }

    /// The same store with a read cache of `items` items kept at most `ttl` (no cache for 0).
    #[must_use]
    pub fn with_read_cache(mut self, items: usize, ttl: std::time::Duration) -> Store {
        self.cache = (items > 0).then(|| Arc::new(cache::ReadCache::new(items, ttl)));
        self
    }

    /// The read cache, if the store has one.
    pub fn read_cache(&self) -> Option<&cache::ReadCache> {
        self.cache.as_deref()
    }

    /// The read cache's counters, if the store has one.
    pub fn read_cache_stats(&self) -> Option<cache::CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// The same store reading its GSI lags from `lags` (the cluster's, shared by its nodes).
    #[must_use]
    pub fn with_index_lag(mut self, lags: SharedIndexLag) -> Store {
        self.lags = lags;
        self
    }

    /// The lag of global index `index` of `table`, if one is set.
    pub fn index_lag(&self, table: &str, index: &str) -> Option<std::time::Duration> {
        self.lags
            .read()
            .ok()
            .and_then(|lags| lag::lag_of(&lags, table, index))
    }

    /// The state as it was `lag` ago, for a lagged index read (`None`: the present will do).
    pub fn as_of(&self, lag: std::time::Duration) -> Option<Arc<ReadTransaction>> {
        self.snapshots.as_of(lag, std::time::Instant::now())
    }

    /// Takes a view of the present for lagged reads at once (when a lag is set).
    ///
    /// # Errors
    /// A read transaction that cannot be opened.
    pub fn keep_view(&self) -> Result<()> {
        let lags = self.lags.read().map(|l| l.clone()).unwrap_or_default();
        self.snapshots
            .committed(&self.db, &lags, std::time::Instant::now())
    }

    /// The node's table metadata cache.
    pub fn meta_cache(&self) -> &MetaCache {
        &self.meta
    }

    fn table_changed(&self) {
        self.meta.dirty.store(true, Ordering::SeqCst);
        self.meta.empty();
    }

    /// The underlying database.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// A fingerprint of the whole state machine. Replicas that applied the same entries have
    /// equal fingerprints.
    pub fn digest(&self) -> Result<u64> {
        // A copy, so the export runs without holding up the node's applies.
        let (items, txn) = {
            let items = self.items.read();
            (items.clone(), self.db.begin_read()?)
        };
        snapshot::digest(&txn, &items)
    }
}

/// Applies one command with the items' write lock held throughout (so readers see all of its
/// item writes or none), and writes the items' log out if much is pending.
fn apply_items(
    items: &ItemMap,
    log: &Mutex<ItemLog>,
    txn: &WriteTransaction,
    index: LogIndex,
    command: &[u8],
    seen: &mut apply::Seen,
) -> Result<Result<Outcome>> {
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    let mut writes = items.begin(&mut log);
    let output = match apply::apply(txn, &mut writes, index, command, seen) {
        Ok(output) => output,
        Err(fault) => {
            // The node stops; until then no reader sees half of this command.
            writes.roll_back();
            return Err(fault);
        }
    };
    drop(writes);
    log.write_out_if_large()?;
    Ok(output)
}

/// Records where the items' log ends in `txn`.
fn record_position(txn: &WriteTransaction, at: Position) -> Result<()> {
    txn.open_table(tables::ITEM_LOG)?.insert("at", at)?;
    Ok(())
}

/// The items a database written by an older kvsim holds in redb.
fn legacy_items(db: &Database) -> Result<Tree> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(tables::ITEMS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Tree::new()),
        Err(e) => return Err(e.into()),
    };
    let mut tree = Tree::new();
    for row in redb::ReadableTable::iter(&table)? {
        let (k, v) = row?;
        tree.insert(k.value().into(), bytes::Bytes::copy_from_slice(v.value()));
    }
    Ok(tree)
}

impl StateMachine for Store {
    type Output = Result<Outcome>;

    fn apply(
        &mut self,
        txn: &WriteTransaction,
        index: LogIndex,
        command: &[u8],
    ) -> Result<Self::Output> {
        let output = apply_items(&self.items, &self.log, txn, index, command, &mut self.seen)?;
        let written = cache::take_writes();
        if let Some(cache) = &self.cache {
            cache.writing(&written);
            self.written.extend(written);
        }
        // Everything that rewrites a table's metadata (a backfill batch moves its index's
        // progress) empties the cache.
        if matches!(
            output,
            Ok(Outcome::Table(_) | Outcome::Settings(_) | Outcome::IndexWork { .. })
        ) {
            self.table_changed();
        }
        Ok(output)
    }

    fn before_commit(&mut self, txn: &WriteTransaction) -> Result<()> {
        self.seen.write_back(txn)?;
        self.record_items(txn)
    }

    fn checkpoint(&mut self, txn: &WriteTransaction) -> Result<()> {
        {
            // The log's lock first, then the map's, as an apply takes them.
            let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            log.checkpoint(&self.items.read())?;
        }
        self.before_commit(txn)
    }

    fn freezer(&self) -> Freezer {
        let items = Arc::clone(&self.items);
        Arc::new(move || -> Frozen { Arc::new(items.freeze()) })
    }

    fn committed(&mut self) {
        if self.seen.has_unwritten_counts() {
            // A caller that commits without `before_commit`: the counts drift from the items.
            tracing::error!("a transaction committed item writes without their tables' counts");
        }
        self.seen.clear();
        if self.meta.dirty.swap(false, Ordering::SeqCst) {
            self.meta.empty();
            // A table deleted or re-created: its cached items go too.
            if let Some(cache) = &self.cache {
                cache.clear();
            }
        }
        if let Some(cache) = &self.cache {
            cache.committed(&self.written);
            self.written.clear();
        }
        let lagging = self.lags.read().is_ok_and(|l| !l.is_empty());
        if (lagging || !self.snapshots.is_empty())
            && let Err(e) = self.keep_view()
        {
            // Only lagged reads lose: they answer from a later view.
            tracing::warn!("no view kept for lagged index reads: {e}");
        }
    }

    fn export(txn: &ReadTransaction, frozen: &Frozen, out: &mut dyn std::io::Write) -> Result<()> {
        let items = frozen
            .downcast_ref::<Tree>()
            .ok_or_else(|| crate::Error::internal("a snapshot's items were not frozen"))?;
        snapshot::export(txn, items, out)
    }

    fn restore(&mut self, txn: &WriteTransaction, input: &mut dyn std::io::Read) -> Result<()> {
        // The metadata cache's emptying at `committed` empties the read cache too.
        self.table_changed();
        self.written.clear();
        self.seen.clear();
        let mut tree = Tree::new();
        snapshot::restore(txn, input, &mut tree)?;
        // Into the other slot, fsynced; the install's durable commit then records it.
        self.item_log().rotate(&tree)?;
        self.items.replace(tree);
        Ok(())
    }
}
