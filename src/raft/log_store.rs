//! The Raft log on redb: entries, hard state, conf state, the truncation point and the applied
//! index, with [`raft::Storage`] implemented over them.
//!
//! Writes never commit on their own: every mutating method takes the caller's
//! [`WriteTransaction`], so one Ready's entries, hard state and applied state machine changes
//! land in a single redb commit (one fsync). The in-memory cache (`terms`, `recent`, hard state)
//! mirrors what that transaction wrote; if a commit fails the node stops, so the cache can never
//! be observed out of step with disk.
//!
//! Invariants:
//! - the log holds the contiguous range `first_index() ..= last_index()`;
//! - `truncated` is `(first_index() - 1, its term)`: the last compacted or snapshotted entry;
//! - `hard_state.commit >= applied`, written together, so a restart never sees applied beyond
//!   commit (raft-rs panics on that).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction};

use crate::{Error, Result};

/// Log entries by index, each a protobuf-encoded `Entry`.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries");
/// Raft's small persistent facts, by name (see the `KEY_*` consts).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const KEY_HARD_STATE: &str = "hard_state";
const KEY_CONF_STATE: &str = "conf_state";
/// `(index, term)` of the last entry removed by compaction or replaced by a snapshot.
const KEY_TRUNCATED: &str = "truncated";
/// Index of the last entry applied to the state machine.
const KEY_APPLIED: &str = "applied";

/// How many of the newest entries are kept in memory, so that the leader building appends and
/// every node reading committed entries rarely touches redb for them.
const RECENT_ENTRIES: usize = 4096;

/// A consistent view of the state machine at a snapshot point, held for the transport to stream.
pub struct SnapshotSource {
    /// Snapshot index (the applied index inside `txn`).
    pub index: u64,
    /// Term of the entry at `index`.
    pub term: u64,
    /// The read transaction whose contents are the snapshot.
    pub txn: Arc<ReadTransaction>,
}

/// Shared slot for the newest outgoing snapshot; the transport reads it to stream the data.
pub type SnapshotSlot = Arc<Mutex<Option<SnapshotSource>>>;

/// Raft log storage on redb. See the module docs.
pub struct LogStore {
    db: Arc<Database>,
    hard_state: HardState,
    conf_state: ConfState,
    truncated: (u64, u64),
    /// Terms of entries `first_index()..=last_index()`, so `term()` never reads disk.
    terms: VecDeque<u64>,
    /// A suffix of the log (the newest entries), contiguous and ending at `last_index()`.
    recent: VecDeque<Entry>,
    applied: u64,
    outgoing_snapshot: SnapshotSlot,
}

fn encode_pair(a: u64, b: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_be_bytes());
    out[8..].copy_from_slice(&b.to_be_bytes());
    out
}

fn decode_pair(bytes: &[u8]) -> Result<(u64, u64)> {
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| Error::internal("raft_meta: truncated state is not 16 bytes"))?;
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&arr[..8]);
    b.copy_from_slice(&arr[8..]);
    Ok((u64::from_be_bytes(a), u64::from_be_bytes(b)))
}

fn store_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

impl LogStore {
    /// Opens the log in `db`, initialising it with `voters` on first use.
    ///
    /// # Errors
    /// Storage errors, or undecodable metadata (a damaged file).
    pub fn open(db: Arc<Database>, voters: &[u64]) -> Result<LogStore> {
        let read = db.begin_read()?;
        let existing = match read.open_table(META) {
            Ok(meta) => {
                let get = |key: &str| -> Result<Option<Vec<u8>>> {
                    Ok(meta.get(key)?.map(|v| v.value().to_vec()))
                };
                match get(KEY_CONF_STATE)? {
                    Some(cs) => Some((
                        cs,
                        get(KEY_HARD_STATE)?,
                        get(KEY_TRUNCATED)?,
                        get(KEY_APPLIED)?,
                    )),
                    None => None,
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        drop(read);

        let mut store = LogStore {
            db,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            truncated: (0, 0),
            terms: VecDeque::new(),
            recent: VecDeque::new(),
            applied: 0,
            outgoing_snapshot: Arc::new(Mutex::new(None)),
        };
        match existing {
            Some((cs, hs, truncated, applied)) => {
                store.conf_state = ConfState::parse_from_bytes(&cs)?;
                if let Some(hs) = hs {
                    store.hard_state = HardState::parse_from_bytes(&hs)?;
                }
                if let Some(t) = truncated {
                    store.truncated = decode_pair(&t)?;
                }
                if let Some(a) = applied {
                    let arr: [u8; 8] = a
                        .as_slice()
                        .try_into()
                        .map_err(|_| Error::internal("raft_meta: applied index is not 8 bytes"))?;
                    store.applied = u64::from_be_bytes(arr);
                }
                store.load_terms()?;
            }
            None => {
                let txn = store.db.begin_write()?;
                store.conf_state.voters = voters.to_vec();
                {
                    let mut meta = txn.open_table(META)?;
                    meta.insert(
                        KEY_CONF_STATE,
                        store.conf_state.write_to_bytes()?.as_slice(),
                    )?;
                    meta.insert(
                        KEY_HARD_STATE,
                        store.hard_state.write_to_bytes()?.as_slice(),
                    )?;
                    meta.insert(KEY_TRUNCATED, encode_pair(0, 0).as_slice())?;
                }
                txn.commit()?;
            }
        }
        Ok(store)
    }

    fn load_terms(&mut self) -> Result<()> {
        let read = self.db.begin_read()?;
        let table = match read.open_table(ENTRIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let first = self.truncated.0 + 1;
        for (expected, row) in (first..).zip(table.range(first..)?) {
            let (k, v) = row?;
            if k.value() != expected {
                return Err(Error::internal(format!(
                    "raft log has a gap: expected entry {expected}, found {}",
                    k.value()
                )));
            }
            let entry = Entry::parse_from_bytes(v.value())?;
            self.terms.push_back(entry.term);
            self.recent.push_back(entry);
            if self.recent.len() > RECENT_ENTRIES {
                self.recent.pop_front();
            }
        }
        Ok(())
    }

    /// The shared slot the transport reads outgoing snapshots from.
    pub fn snapshot_slot(&self) -> SnapshotSlot {
        self.outgoing_snapshot.clone()
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The index of the last entry applied to the state machine (as persisted).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Index of the first entry still in the log.
    pub fn first(&self) -> u64 {
        self.truncated.0 + 1
    }

    /// Index of the last entry in the log.
    pub fn last(&self) -> u64 {
        self.truncated.0 + self.terms.len() as u64
    }

    /// Appends `entries`, first removing any existing entries at or after the first new index
    /// (a new leader overwriting an uncommitted suffix).
    pub fn append(&mut self, txn: &WriteTransaction, entries: &[Entry]) -> Result<()> {
        let Some(first_new) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        if first_new <= self.truncated.0 {
            return Err(Error::internal(format!(
                "append at {first_new} below the compacted index {}",
                self.truncated.0
            )));
        }
        if first_new > self.last() + 1 {
            return Err(Error::internal(format!(
                "append at {first_new} leaves a gap after {}",
                self.last()
            )));
        }
        let mut table = txn.open_table(ENTRIES)?;
        if first_new <= self.last() {
            table.retain_in(first_new.., |_, _| false)?;
            self.terms.truncate((first_new - self.first()) as usize);
            while self.recent.back().is_some_and(|e| e.index >= first_new) {
                self.recent.pop_back();
            }
        }
        for entry in entries {
            table.insert(entry.index, entry.write_to_bytes()?.as_slice())?;
            self.terms.push_back(entry.term);
            self.recent.push_back(entry.clone());
        }
        while self.recent.len() > RECENT_ENTRIES {
            self.recent.pop_front();
        }
        Ok(())
    }

    /// Persists a new hard state.
    pub fn set_hard_state(&mut self, txn: &WriteTransaction, hs: &HardState) -> Result<()> {
        self.hard_state = hs.clone();
        self.write_hard_state(txn)
    }

    fn write_hard_state(&self, txn: &WriteTransaction) -> Result<()> {
        let mut meta = txn.open_table(META)?;
        meta.insert(KEY_HARD_STATE, self.hard_state.write_to_bytes()?.as_slice())?;
        Ok(())
    }

    /// Records a commit index learnt from a `LightReady`; written with the next transaction
    /// that persists hard state or applied state.
    pub fn note_commit(&mut self, commit: u64) {
        self.hard_state.commit = self.hard_state.commit.max(commit);
    }

    /// Persists the applied index, and the commit index with it so that commit >= applied holds
    /// on disk.
    pub fn set_applied(&mut self, txn: &WriteTransaction, applied: u64) -> Result<()> {
        self.applied = applied;
        self.hard_state.commit = self.hard_state.commit.max(applied);
        self.write_hard_state(txn)?;
        let mut meta = txn.open_table(META)?;
        meta.insert(KEY_APPLIED, applied.to_be_bytes().as_slice())?;
        Ok(())
    }

    /// Replaces the whole log with a snapshot point: every entry is dropped, the log restarts
    /// after `meta.index`, and commit and applied move to it.
    pub fn apply_snapshot(
        &mut self,
        txn: &WriteTransaction,
        meta: &SnapshotMetadata,
    ) -> Result<()> {
        let mut table = txn.open_table(ENTRIES)?;
        table.retain_in(0u64.., |_, _| false)?;
        drop(table);
        self.terms.clear();
        self.recent.clear();
        self.truncated = (meta.index, meta.term);
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        {
            let mut m = txn.open_table(META)?;
            m.insert(KEY_TRUNCATED, encode_pair(meta.index, meta.term).as_slice())?;
            m.insert(KEY_CONF_STATE, self.conf_state.write_to_bytes()?.as_slice())?;
        }
        self.set_applied(txn, meta.index)
    }

    /// Removes entries up to and including `to`, which must not exceed the applied index.
    pub fn compact(&mut self, txn: &WriteTransaction, to: u64) -> Result<()> {
        if to <= self.truncated.0 {
            return Ok(());
        }
        if to > self.applied || to > self.last() {
            return Err(Error::internal(format!(
                "compaction to {to} beyond applied {} or last {}",
                self.applied,
                self.last()
            )));
        }
        let term = self
            .term_of(to)
            .ok_or_else(|| Error::internal("compaction point has no term"))?;
        let mut table = txn.open_table(ENTRIES)?;
        table.retain_in(..=to, |_, _| false)?;
        let removed = (to - self.truncated.0) as usize;
        self.terms.drain(..removed);
        while self.recent.front().is_some_and(|e| e.index <= to) {
            self.recent.pop_front();
        }
        self.truncated = (to, term);
        let mut m = txn.open_table(META)?;
        m.insert(KEY_TRUNCATED, encode_pair(to, term).as_slice())?;
        Ok(())
    }

    fn term_of(&self, idx: u64) -> Option<u64> {
        if idx == self.truncated.0 {
            return Some(self.truncated.1);
        }
        if idx < self.truncated.0 {
            return None;
        }
        self.terms
            .get((idx - self.truncated.0 - 1) as usize)
            .copied()
    }
}

/// Reads the applied index recorded in a read transaction (the snapshot point of its state).
fn applied_in(txn: &ReadTransaction) -> Result<u64> {
    let meta = txn.open_table(META)?;
    let Some(v) = meta.get(KEY_APPLIED)? else {
        return Ok(0);
    };
    let arr: [u8; 8] = v
        .value()
        .try_into()
        .map_err(|_| Error::internal("raft_meta: applied index is not 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut size = 0u64;
        let mut push = |e: Entry, out: &mut Vec<Entry>| -> bool {
            size += u64::from(e.compute_size());
            // raft-rs wants at least one entry even when it alone exceeds the limit.
            if !out.is_empty() && size > max_size {
                return false;
            }
            out.push(e);
            true
        };
        if let Some(front) = self.recent.front().map(|e| e.index)
            && low >= front
        {
            for e in self
                .recent
                .range((low - front) as usize..(high - front) as usize)
            {
                if !push(e.clone(), &mut out) {
                    break;
                }
            }
            return Ok(out);
        }
        let read = self.db.begin_read().map_err(store_err)?;
        let table = read.open_table(ENTRIES).map_err(store_err)?;
        for row in table.range(low..high).map_err(store_err)? {
            let (_, v) = row.map_err(store_err)?;
            let e = Entry::parse_from_bytes(v.value()).map_err(store_err)?;
            if !push(e, &mut out) {
                break;
            }
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.truncated.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.term_of(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// Builds a snapshot of the state machine as it stands now. The data is not copied: the
    /// snapshot's metadata points at a redb read transaction kept in the shared slot, and the
    /// transport streams the state out of it to the follower.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let mut slot = self.outgoing_snapshot.lock().map_err(store_err)?;
        // Reuse the held view unless it is too old to be useful: behind what was asked for, or
        // behind the compaction point (the follower would need compacted entries after it).
        let reuse = slot
            .as_ref()
            .is_some_and(|s| s.index >= request_index && s.index >= self.truncated.0);
        if !reuse {
            let txn = self.db.begin_read().map_err(store_err)?;
            let index = applied_in(&txn).map_err(store_err)?;
            if index < request_index {
                return Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ));
            }
            let term = self.term_of(index).ok_or(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ))?;
            *slot = Some(SnapshotSource {
                index,
                term,
                txn: Arc::new(txn),
            });
        }
        let Some(source) = slot.as_ref() else {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        };
        let mut snap = Snapshot::default();
        let meta = snap.mut_metadata();
        meta.index = source.index;
        meta.term = source.term;
        meta.set_conf_state(self.conf_state.clone());
        Ok(snap)
    }
}
