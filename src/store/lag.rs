//! GSI lag on demand: global secondary indexes answering from the past, as DynamoDB's do.
//!
//! DynamoDB updates a global index asynchronously, so a Query on it right after a write may not
//! see the write; kvsim keeps its indexes exact, in the same transaction as the item, and shows
//! the lag only when asked (`kvsim fault gsi-lag`). The lags are one setting for the whole
//! cluster ([`SharedIndexLag`]); each node then keeps redb read transactions taken after its
//! applies ([`LagSnapshots`]), and a read of a lagged index uses the newest one at least the lag
//! old: the index exactly as it was then (entries missing, stale or already deleted), while the
//! table itself and local indexes answer from the present. Holding those snapshots keeps the
//! pages they see from being reused, which costs disk and memory in proportion to what is
//! written within the longest lag; nothing is held while no lag is set.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadTransaction, ReadableDatabase};

use crate::Result;

/// Longest lag accepted, milliseconds.
pub const MAX_LAG_MS: u64 = 600_000;
/// Snapshots are taken at most this often, which bounds how many a node holds.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(5);

/// Lags by table and index (`None`: every global index of the table), in milliseconds.
pub type IndexLags = BTreeMap<(String, Option<String>), u64>;

/// The cluster's lags, shared by every node.
pub type SharedIndexLag = Arc<RwLock<IndexLags>>;

/// The lag of `index` of `table`, if one is set: the index's own, else the table's.
pub fn lag_of(lags: &IndexLags, table: &str, index: &str) -> Option<Duration> {
    lags.get(&(table.to_string(), Some(index.to_string())))
        .or_else(|| lags.get(&(table.to_string(), None)))
        .map(|ms| Duration::from_millis(*ms))
}

/// One node's past states, newest last.
#[derive(Default)]
pub struct LagSnapshots {
    held: Mutex<VecDeque<(Instant, Arc<ReadTransaction>)>>,
}

impl LagSnapshots {
    fn held(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Arc<ReadTransaction>)>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After a commit: keeps a view of the state just committed, and lets go of views no lag in
    /// `lags` can reach any more (all of them when no lag is set).
    ///
    /// # Errors
    /// A read transaction that cannot be opened.
    pub fn committed(&self, db: &Database, lags: &IndexLags, now: Instant) -> Result<()> {
        let mut held = self.held();
        let Some(longest) = lags.values().max().map(|ms| Duration::from_millis(*ms)) else {
            held.clear();
            return Ok(());
        };
        // The oldest view never moves forward: it is what a read gets while no view is yet as
        // old as the lag, and must not show writes made after the lag was set.
        if held.len() < 2
            || held
                .back()
                .is_none_or(|(at, _)| now.duration_since(*at) >= SNAPSHOT_EVERY)
        {
            held.push_back((now, Arc::new(db.begin_read()?)));
        } else if let Some(last) = held.back_mut() {
            // Too soon for another: the newest view moves forward instead, keeping its time,
            // so a lagged read may see up to SNAPSHOT_EVERY less lag, never more.
            *last = (last.0, Arc::new(db.begin_read()?));
        }
        prune(&mut held, now, longest);
        Ok(())
    }

    /// The state as it was `lag` ago: the newest view at least that old, or the oldest one
    /// held if none is (the lag was set more recently than that). `None` when nothing is held:
    /// nothing was written since the lag was set, so the present is the past.
    pub fn as_of(&self, lag: Duration, now: Instant) -> Option<Arc<ReadTransaction>> {
        let held = self.held();
        let due = now.checked_sub(lag);
        held.iter()
            .rev()
            .find(|(at, _)| due.is_some_and(|due| *at <= due))
            .or_else(|| held.front())
            .map(|(_, txn)| txn.clone())
    }

    /// How many views are held (for tests and status).
    pub fn len(&self) -> usize {
        self.held().len()
    }

    /// True when no view is held.
    pub fn is_empty(&self) -> bool {
        self.held().is_empty()
    }
}

/// Drops every view older than the newest one at least `longest` old: no read needs them.
fn prune<T>(held: &mut VecDeque<(Instant, T)>, now: Instant, longest: Duration) {
    let Some(due) = now.checked_sub(longest) else {
        return;
    };
    while held.len() > 1 && held.get(1).is_some_and(|(at, _)| *at <= due) {
        held.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;

    #[test]
    fn pruning_keeps_the_newest_view_old_enough_and_everything_newer() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut held: VecDeque<(Instant, u32)> = (0..10).map(|i| (at(i * 100), i as u32)).collect();
        // At 1,000 ms with a 350 ms lag, a read wants the view of 600 ms (taken at 600).
        prune(&mut held, at(1000), Duration::from_millis(350));
        let kept: Vec<u32> = held.iter().map(|(_, v)| *v).collect();
        assert_eq!(kept, [6, 7, 8, 9]);
    }

    const T: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("t");

    /// An empty database, a one-second lag on table `T` and no views yet.
    fn lagged() -> Result<(Database, IndexLags, LagSnapshots, Instant)> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(crate::Error::internal)?;
        let lags = IndexLags::from([(("T".to_string(), None), 1_000)]);
        Ok((db, lags, LagSnapshots::default(), Instant::now()))
    }

    #[test]
    fn a_lagged_read_sees_the_state_of_lag_ago() -> Result<()> {
        let (db, lags, snapshots, start) = lagged()?;
        let table = T;
        for (i, ms) in [0u64, 400, 800, 1_200].into_iter().enumerate() {
            let txn = db.begin_write()?;
            txn.open_table(table)?.insert(0, i as u64)?;
            txn.commit()?;
            snapshots.committed(&db, &lags, start + Duration::from_millis(ms))?;
        }
        let value_at = |now_ms: u64| -> Result<u64> {
            let txn = snapshots
                .as_of(
                    Duration::from_millis(1_000),
                    start + Duration::from_millis(now_ms),
                )
                .ok_or_else(|| crate::Error::internal("no view"))?;
            let value = txn.open_table(table)?.get(0)?.map(|v| v.value());
            value.ok_or_else(|| crate::Error::internal("no row"))
        };
        assert_eq!(value_at(1_300)?, 0); // as of 300 ms: the write of 400 is still to come
        assert_eq!(value_at(1_500)?, 1);
        assert_eq!(value_at(1_900)?, 2);
        assert_eq!(value_at(2_200)?, 3);
        assert_eq!(
            snapshots.len(),
            4,
            "a read at 1,200 ms still wants the view of 0 ms"
        );
        let txn = db.begin_write()?;
        txn.open_table(table)?.insert(0, 4)?;
        txn.commit()?;
        snapshots.committed(&db, &lags, start + Duration::from_millis(2_500))?;
        assert_eq!(
            snapshots.len(),
            2,
            "views older than the one of 1,200 ms are let go"
        );
        snapshots.committed(&db, &IndexLags::new(), start)?;
        assert!(snapshots.is_empty(), "no lag set: nothing held");
        Ok(())
    }

    /// A write right after the lag is set (sooner than a new view is due) must not reach the
    /// view a read falls back to while no view is as old as the lag.
    #[test]
    fn a_write_just_after_the_lag_is_set_stays_hidden() -> Result<()> {
        let (db, lags, snapshots, start) = lagged()?;
        let table = T;
        let write = |v: u64| -> Result<()> {
            let txn = db.begin_write()?;
            txn.open_table(table)?.insert(0, v)?;
            txn.commit()?;
            Ok(())
        };
        write(0)?;
        snapshots.committed(&db, &lags, start)?; // the lag is set: a view of the present
        write(1)?;
        snapshots.committed(&db, &lags, start + Duration::from_millis(1))?;
        write(2)?;
        snapshots.committed(&db, &lags, start + Duration::from_millis(2))?;
        let txn = snapshots
            .as_of(
                Duration::from_millis(1_000),
                start + Duration::from_millis(3),
            )
            .ok_or_else(|| crate::Error::internal("no view"))?;
        let value = txn.open_table(table)?.get(0)?.map(|v| v.value());
        assert_eq!(value, Some(0), "the writes after the lag was set show");
        Ok(())
    }
}
