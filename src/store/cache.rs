//! The read cache (the seed's cache tier): decoded items for eventually consistent GetItems,
//! by their item row key, at most `--cache-items` of them (least recently used go first, by
//! the `quick_cache` crate) and none older than `--cache-ttl-ms`.
//!
//! It never answers with anything older than the node's applied state: every item write
//! applied on the node names its row ([`note_write`]); the rows leave the cache as soon as the
//! write is applied ([`ReadCache::writing`]), no read may fill the cache until the write's
//! transaction has committed (the generation is odd meanwhile), and at the commit the rows
//! leave it once more and the generation moves on ([`ReadCache::committed`]). A read fills the
//! cache only with the (even) generation it started in, under the same lock, so a read that
//! began before a write committed can never put the old item back afterwards.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::model::Item;

/// One cached item.
#[derive(Clone)]
struct Entry {
    item: Arc<Item>,
    version: u64,
    at: Instant,
}

/// A cached item and its version.
pub type Cached = (Arc<Item>, u64);

/// Counters for `status`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CacheStats {
    /// Items held.
    pub items: usize,
    /// The most it holds.
    pub capacity: usize,
    /// Reads answered from it.
    pub hits: u64,
    /// Reads that went to redb.
    pub misses: u64,
}

/// A node's read cache.
pub struct ReadCache {
    items: quick_cache::sync::Cache<Vec<u8>, Entry>,
    capacity: usize,
    ttl: Duration,
    /// The generation fills must have started in; moved on by every invalidation. The lock
    /// orders fills against invalidations.
    generation: Mutex<u64>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Rows written by applies on this thread whose transaction has not committed yet.
    static WRITTEN: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Notes that an apply on this thread wrote the item row `row` (see the module doc). Only
/// stores with a cache take the notes; others drop them at commit.
pub fn note_write(row: &[u8]) {
    WRITTEN.with(|w| w.borrow_mut().push(row.to_vec()));
}

/// Takes this thread's notes of written rows.
pub fn take_writes() -> Vec<Vec<u8>> {
    WRITTEN.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

impl ReadCache {
    /// A cache of at most `capacity` items, each kept at most `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> ReadCache {
        ReadCache {
            items: quick_cache::sync::Cache::new(capacity.max(1)),
            capacity,
            ttl,
            generation: Mutex::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached item at `row` and its version, if fresh; counts a hit or a miss.
    pub fn get(&self, row: &[u8]) -> Option<Cached> {
        let found = self
            .items
            .get(row)
            .filter(|e| e.at.elapsed() < self.ttl)
            .map(|e| (e.item, e.version));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The generation a read starts in: take it before opening the read transaction.
    pub fn generation(&self) -> u64 {
        *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Caches what a read that started in `generation` found at `row`, unless a write was
    /// applied since or is still uncommitted.
    pub fn fill(&self, generation: u64, row: Vec<u8>, item: Arc<Item>, version: u64) {
        let current = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *current == generation && generation.is_multiple_of(2) {
            self.items.insert(
                row,
                Entry {
                    item,
                    version,
                    at: Instant::now(),
                },
            );
        }
    }

    /// Writes to `rows` were applied and are not committed yet: the rows leave the cache, and
    /// no read fills it until [`ReadCache::committed`].
    pub fn writing(&self, rows: &[Vec<u8>]) {
        if rows.is_empty() {
            return;
        }
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for row in rows {
            self.items.remove(row.as_slice());
        }
        if generation.is_multiple_of(2) {
            *generation += 1;
        }
    }

    /// The writes to `rows` have committed: they leave the cache (again), and reads may fill
    /// it from here on.
    pub fn committed(&self, rows: &[Vec<u8>]) {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if rows.is_empty() && generation.is_multiple_of(2) {
            return;
        }
        for row in rows {
            self.items.remove(row.as_slice());
        }
        *generation += if generation.is_multiple_of(2) { 2 } else { 1 };
    }

    /// Everything changed (a snapshot was installed, a table deleted): empty it.
    pub fn clear(&self) {
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.items.clear();
        *generation += if generation.is_multiple_of(2) { 2 } else { 1 };
    }

    /// Its counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            items: self.items.len(),
            capacity: self.capacity,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttributeValue;

    fn item(v: &str) -> Arc<Item> {
        Arc::new(Item::from([("v".to_string(), AttributeValue::S(v.into()))]))
    }

    #[test]
    fn a_fill_from_before_a_committed_write_is_refused() {
        let cache = ReadCache::new(10, Duration::from_secs(60));
        let started = cache.generation();
        cache.committed(&[b"row".to_vec()]);
        cache.fill(started, b"row".to_vec(), item("old"), 1);
        assert!(cache.get(b"row").is_none(), "the stale fill was dropped");
        let now = cache.generation();
        cache.fill(now, b"row".to_vec(), item("new"), 2);
        assert_eq!(cache.get(b"row"), Some((item("new"), 2)));
        cache.committed(&[b"row".to_vec()]);
        assert!(
            cache.get(b"row").is_none(),
            "a committed write evicts the row"
        );
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 2));
    }

    #[test]
    fn nothing_is_filled_between_a_write_and_its_commit() {
        let cache = ReadCache::new(10, Duration::from_secs(60));
        cache.fill(cache.generation(), b"row".to_vec(), item("old"), 1);
        cache.writing(&[b"row".to_vec()]);
        assert!(
            cache.get(b"row").is_none(),
            "an applied write evicts at once"
        );
        // A read that began before the apply (it read the old row) fills nothing until the
        // write's transaction commits.
        cache.fill(cache.generation(), b"row".to_vec(), item("old"), 1);
        cache.fill(cache.generation(), b"other".to_vec(), item("x"), 1);
        assert!(cache.get(b"row").is_none() && cache.get(b"other").is_none());
        cache.committed(&[b"row".to_vec()]);
        cache.fill(cache.generation(), b"row".to_vec(), item("new"), 2);
        assert_eq!(cache.get(b"row"), Some((item("new"), 2)));
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let cache = ReadCache::new(10, Duration::ZERO);
        cache.fill(cache.generation(), b"row".to_vec(), item("x"), 1);
        assert!(cache.get(b"row").is_none());
    }
}
