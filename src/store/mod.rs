//! The replicated state machine on redb: tables and items. It knows nothing of Raft.
//!
//! Writes arrive as [`Command`]s through [`crate::raft::StateMachine::apply`], always inside the
//! Raft layer's write transaction (so the applied index lands with the data). Reads go straight
//! to redb through MVCC read transactions and never block the writer.
//!
//! - [`tables`]: every redb table definition of the state machine and the row encodings.
//! - [`command`]: the commands written into the Raft log and their outcomes.
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
pub mod lag;
pub mod read;
pub mod snapshot;
pub mod streams;
pub mod tables;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{Database, ReadTransaction, WriteTransaction};

pub use command::{
    Command, Conditional, IndexChange, IndexCharge, ItemWrite, Outcome, TableChange, Transaction,
};
pub use read::Page;

use crate::Result;
use crate::model::table::TableMeta;
use crate::raft::{LogIndex, StateMachine};
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
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("lag_views", &self.snapshots.len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store over `db` (the same database the node's Raft log lives in).
    pub fn new(db: Arc<Database>) -> Store {
        Store {
            db,
            meta: Arc::default(),
            lags: SharedIndexLag::default(),
            snapshots: Arc::default(),
            cache: None,
            written: Vec::new(),
            seen: apply::Seen::default(),
        }
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
        use redb::ReadableDatabase;
        snapshot::digest(&self.db.begin_read()?)
    }
}

impl StateMachine for Store {
    type Output = Result<Outcome>;

    fn apply(
        &mut self,
        txn: &WriteTransaction,
        index: LogIndex,
        command: &[u8],
    ) -> Result<Self::Output> {
        let output = apply::apply(txn, index, command, &mut self.seen)?;
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
        self.seen.write_back(txn)
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

    fn export(txn: &ReadTransaction, out: &mut dyn std::io::Write) -> Result<()> {
        snapshot::export(txn, out)
    }

    fn restore(&mut self, txn: &WriteTransaction, input: &mut dyn std::io::Read) -> Result<()> {
        // The metadata cache's emptying at `committed` empties the read cache too.
        self.table_changed();
        self.written.clear();
        self.seen.clear();
        snapshot::restore(txn, input)
    }
}
