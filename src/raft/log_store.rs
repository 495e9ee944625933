//! The Raft log and its persistent state, with [`raft::Storage`] implemented over them.
//!
//! Two stores, each for what it is good at:
//! - the log entries and the hard state go to the node's [`Wal`]: appended, and fsynced once per
//!   Ready ([`LogStore::persist`]);
//! - the conf state, the applied index and the point of the last installed snapshot live in the
//!   node's redb, **in the same transaction** as the state machine changes they describe. Those
//!   transactions commit without an fsync and are made durable now and then by a checkpoint
//!   (see [`crate::raft::node`]); [`LogStore::durable_applied`] says how far they are durable.
//!
//! After a crash, redb is back at its last checkpoint and raft re-applies the entries after it
//! from the log, which is why compaction never goes past the durable applied index.
//!
//! Invariants:
//! - the log holds the contiguous range `first_index() ..= last_index()`;
//! - `truncated` is `(first_index() - 1, its term)`: the last compacted or snapshotted entry;
//! - the hard state's commit index is at least the applied index (raft-rs panics otherwise), so
//!   opening raises it to the applied index when the log's last hard state is older.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction};

use crate::raft::wal::{Record, Slot, Wal};
use crate::raft::{Freezer, Frozen};
use crate::{Error, Result};

/// Raft's small persistent facts in redb, by name (see the `KEY_*` consts).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const KEY_CONF_STATE: &str = "conf_state";
/// `(index, term)` of the last snapshot installed into the state machine.
const KEY_SNAPSHOT: &str = "snapshot";
/// Index of the last entry applied to the state machine.
const KEY_APPLIED: &str = "applied";

/// Where kvsim before its write-ahead log kept the entries, the hard state and the compaction
/// point, in redb. A node opened over such a database moves them into the log once.
const LEGACY_ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_entries");
const LEGACY_HARD_STATE: &str = "hard_state";
const LEGACY_TRUNCATED: &str = "truncated";

/// How many of the newest entries are kept in memory, so that the leader building appends and
/// every node reading committed entries rarely reads the log file for them.
const RECENT_ENTRIES: usize = 4096;

/// A consistent view of the state machine at a snapshot point, held for the transport to stream.
pub struct SnapshotSource {
    /// Snapshot index (the applied index inside `txn`).
    pub index: u64,
    /// Term of the entry at `index`.
    pub term: u64,
    /// The read transaction whose contents are the snapshot.
    pub txn: Arc<ReadTransaction>,
    /// What the state machine keeps outside redb, as of the same point.
    pub frozen: Frozen,
}

/// Shared slot for the newest outgoing snapshot; the transport reads it to stream the data.
pub type SnapshotSlot = Arc<Mutex<Option<SnapshotSource>>>;

/// Raft log storage. See the module docs.
pub struct LogStore {
    db: Arc<Database>,
    wal: Wal,
    hard_state: HardState,
    conf_state: ConfState,
    truncated: (u64, u64),
    /// Terms of entries `first_index()..=last_index()`, so `term()` never reads disk.
    terms: VecDeque<u64>,
    /// Where each of those entries' records is in the log file.
    offsets: VecDeque<u64>,
    /// A suffix of the log (the newest entries), contiguous and ending at `last_index()`.
    recent: VecDeque<Entry>,
    applied: u64,
    /// The applied index as of the last durable redb commit.
    durable_applied: u64,
    outgoing_snapshot: SnapshotSlot,
    /// Takes the state machine's state outside redb at a snapshot point.
    freezer: Option<Freezer>,
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
        .map_err(|_| Error::internal("raft_meta: a log position is not 16 bytes"))?;
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&arr[..8]);
    b.copy_from_slice(&arr[8..]);
    Ok((u64::from_be_bytes(a), u64::from_be_bytes(b)))
}

fn store_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

/// What redb holds of raft's state.
#[derive(Default)]
struct Meta {
    conf_state: Option<ConfState>,
    snapshot: (u64, u64),
    applied: u64,
    legacy_hard_state: Option<HardState>,
    legacy_truncated: (u64, u64),
}

fn read_meta(db: &Database) -> Result<Meta> {
    let read = db.begin_read()?;
    let meta = match read.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Meta::default()),
        Err(e) => return Err(e.into()),
    };
    let get =
        |key: &str| -> Result<Option<Vec<u8>>> { Ok(meta.get(key)?.map(|v| v.value().to_vec())) };
    let mut out = Meta::default();
    if let Some(cs) = get(KEY_CONF_STATE)? {
        out.conf_state = Some(ConfState::parse_from_bytes(&cs)?);
    }
    if let Some(s) = get(KEY_SNAPSHOT)? {
        out.snapshot = decode_pair(&s)?;
    }
    if let Some(a) = get(KEY_APPLIED)? {
        let arr: [u8; 8] = a
            .as_slice()
            .try_into()
            .map_err(|_| Error::internal("raft_meta: applied index is not 8 bytes"))?;
        out.applied = u64::from_be_bytes(arr);
    }
    if let Some(hs) = get(LEGACY_HARD_STATE)? {
        out.legacy_hard_state = Some(HardState::parse_from_bytes(&hs)?);
    }
    if let Some(t) = get(LEGACY_TRUNCATED)? {
        out.legacy_truncated = decode_pair(&t)?;
    }
    Ok(out)
}

/// The entries an older kvsim kept in redb, after `truncated`.
fn legacy_entries(db: &Database, truncated: u64) -> Result<Vec<Entry>> {
    let read = db.begin_read()?;
    let table = match read.open_table(LEGACY_ENTRIES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for row in table.range(truncated + 1..)? {
        let (_, v) = row?;
        out.push(Entry::parse_from_bytes(v.value())?);
    }
    Ok(out)
}

impl LogStore {
    /// Opens the log over `db` and the log file's `slots`, initialising both with `voters` on
    /// first use (and moving an older kvsim's log out of redb).
    ///
    /// # Errors
    /// Storage errors, or undecodable state (a damaged file).
    pub fn open(db: Arc<Database>, slots: [Slot; 2], voters: &[u64]) -> Result<LogStore> {
        let meta = read_meta(&db)?;
        let mut hard_state = None;
        let mut terms = VecDeque::new();
        let mut offsets = VecDeque::new();
        let mut recent: VecDeque<Entry> = VecDeque::new();
        let mut first = None;
        let (wal, truncated) = Wal::open(slots, |record| {
            match record {
                Record::HardState(hs) => hard_state = Some(hs),
                Record::Entry(entry, offset) => {
                    let base = *first.get_or_insert(entry.index);
                    let last = base + terms.len() as u64;
                    if entry.index < base || entry.index > last {
                        return Err(Error::internal(format!(
                            "raft log file: entry {} does not follow the log (entries {base}..{last})",
                            entry.index
                        )));
                    }
                    let keep = (entry.index - base) as usize;
                    terms.truncate(keep);
                    offsets.truncate(keep);
                    while recent.back().is_some_and(|e| e.index >= entry.index) {
                        recent.pop_back();
                    }
                    terms.push_back(entry.term);
                    offsets.push_back(offset);
                    recent.push_back(entry);
                    if recent.len() > RECENT_ENTRIES {
                        recent.pop_front();
                    }
                }
            }
            Ok(())
        })?;
        let mut store = LogStore {
            db,
            wal,
            hard_state: hard_state.unwrap_or_default(),
            conf_state: meta.conf_state.clone().unwrap_or_default(),
            truncated: (0, 0),
            terms,
            offsets,
            recent,
            applied: meta.applied,
            durable_applied: meta.applied,
            outgoing_snapshot: Arc::new(Mutex::new(None)),
            freezer: None,
        };
        match truncated {
            Some(truncated) if meta.snapshot.0 > truncated.0 => {
                // A snapshot was installed and the node stopped before the log restarted after
                // it: everything in the log predates the snapshot.
                store.truncated = meta.snapshot;
                store.clear_entries();
                store.rotate()?;
            }
            Some(truncated) => {
                if store.first_loaded().is_some_and(|f| f != truncated.0 + 1) {
                    return Err(Error::internal(
                        "raft log file: entries do not start right after the truncation point",
                    ));
                }
                store.truncated = truncated;
            }
            None => {
                // No log yet: a new node, or a database from before the log file.
                let legacy = meta.legacy_hard_state.is_some();
                if legacy {
                    store.hard_state = meta.legacy_hard_state.clone().unwrap_or_default();
                    store.truncated = meta.legacy_truncated;
                    for entry in legacy_entries(&store.db, meta.legacy_truncated.0)? {
                        store.terms.push_back(entry.term);
                        store.offsets.push_back(0);
                        store.recent.push_back(entry);
                    }
                    // Every entry is in `recent`, so the rotation reads none from the file (the
                    // offsets are placeholders until it sets them); trim `recent` afterwards.
                    store.rotate()?;
                } else {
                    store.conf_state.voters = voters.to_vec();
                    store.rotate()?;
                }
                let mut txn = store.db.begin_write()?;
                txn.set_durability(redb::Durability::Immediate)?;
                {
                    let mut m = txn.open_table(META)?;
                    m.insert(
                        KEY_CONF_STATE,
                        store.conf_state.write_to_bytes()?.as_slice(),
                    )?;
                    m.insert(
                        KEY_SNAPSHOT,
                        encode_pair(store.truncated.0, store.truncated.1).as_slice(),
                    )?;
                    m.remove(LEGACY_HARD_STATE)?;
                    m.remove(LEGACY_TRUNCATED)?;
                }
                if legacy {
                    txn.delete_table(LEGACY_ENTRIES)?;
                }
                txn.commit()?;
                while store.recent.len() > RECENT_ENTRIES {
                    store.recent.pop_front();
                }
            }
        }
        store.hard_state.commit = store.hard_state.commit.max(store.applied);
        store.hard_state.term = store.hard_state.term.max(store.truncated.1);
        Ok(store)
    }

    fn first_loaded(&self) -> Option<u64> {
        let newest = self.recent.back()?.index;
        Some(newest + 1 - self.terms.len() as u64)
    }

    fn clear_entries(&mut self) {
        self.terms.clear();
        self.offsets.clear();
        self.recent.clear();
    }

    /// Rewrites the log file as a new generation: the truncation point, the hard state and every
    /// entry still in the log.
    fn rotate(&mut self) -> Result<()> {
        let mut entries = Vec::with_capacity(self.terms.len());
        let front = self.recent.front().map_or(u64::MAX, |e| e.index);
        for (i, offset) in self.offsets.iter().enumerate() {
            let index = self.truncated.0 + 1 + i as u64;
            if index >= front {
                break;
            }
            entries.push(self.wal.read_entry(*offset)?);
        }
        entries.extend(self.recent.iter().cloned());
        let offsets = self
            .wal
            .rotate(self.truncated, &self.hard_state, entries.iter())?;
        self.offsets = offsets.into();
        Ok(())
    }

    /// Sets what takes the state machine's state outside redb for a snapshot.
    pub fn set_freezer(&mut self, freezer: Freezer) {
        self.freezer = Some(freezer);
    }

    /// The shared slot the transport reads outgoing snapshots from.
    pub fn snapshot_slot(&self) -> SnapshotSlot {
        self.outgoing_snapshot.clone()
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The index of the last entry applied to the state machine.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The applied index as of the last durable redb commit: what a crash would go back to.
    pub fn durable_applied(&self) -> u64 {
        self.durable_applied
    }

    /// Records that redb's last commit was durable, so everything applied so far is.
    pub fn checkpointed(&mut self) {
        self.durable_applied = self.applied;
    }

    /// Records that redb's commits up to the one that applied `applied` are durable (a
    /// checkpoint whose fsync ran in the background).
    pub fn checkpointed_at(&mut self, applied: u64) {
        self.durable_applied = self.durable_applied.max(applied.min(self.applied));
    }

    /// Index of the first entry still in the log.
    pub fn first(&self) -> u64 {
        self.truncated.0 + 1
    }

    /// Index of the last entry in the log.
    pub fn last(&self) -> u64 {
        self.truncated.0 + self.terms.len() as u64
    }

    /// Queues `entries` for the log file, first removing any existing entries at or after the
    /// first new index (a new leader overwriting an uncommitted suffix). Durable only after
    /// [`LogStore::persist`].
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
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
        if first_new <= self.last() {
            let keep = (first_new - self.first()) as usize;
            self.terms.truncate(keep);
            self.offsets.truncate(keep);
            while self.recent.back().is_some_and(|e| e.index >= first_new) {
                self.recent.pop_back();
            }
        }
        for entry in entries {
            self.offsets.push_back(self.wal.append(entry)?);
            self.terms.push_back(entry.term);
            self.recent.push_back(entry.clone());
        }
        while self.recent.len() > RECENT_ENTRIES {
            self.recent.pop_front();
        }
        Ok(())
    }

    /// Queues a new hard state for the log file.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<()> {
        self.hard_state = hs.clone();
        self.wal.set_hard_state(hs)
    }

    /// Writes what was queued to the log file, fsyncing it if `sync`. Returns whether there
    /// was anything to write.
    ///
    /// # Errors
    /// I/O errors: the node must stop.
    pub fn persist(&mut self, sync: bool) -> Result<bool> {
        let wrote = self.wal.has_pending();
        self.wal.flush(sync && wrote)?;
        Ok(wrote)
    }

    /// Records a commit index learnt from a `LightReady`; it reaches disk with the next hard
    /// state, and opening raises the commit index to the applied index anyway.
    pub fn note_commit(&mut self, commit: u64) {
        self.hard_state.commit = self.hard_state.commit.max(commit);
    }

    /// Records the applied index in `txn`, beside the state machine changes it covers.
    pub fn set_applied(&mut self, txn: &WriteTransaction, applied: u64) -> Result<()> {
        self.applied = applied;
        self.hard_state.commit = self.hard_state.commit.max(applied);
        let mut meta = txn.open_table(META)?;
        meta.insert(KEY_APPLIED, applied.to_be_bytes().as_slice())?;
        Ok(())
    }

    /// Replaces the whole log with a snapshot point in `txn` and in memory: every entry is
    /// dropped, the log restarts after `meta.index`, and commit and applied move to it. Once
    /// `txn` has committed durably, [`LogStore::restart_log`] must start the log file afresh.
    pub fn apply_snapshot(
        &mut self,
        txn: &WriteTransaction,
        meta: &SnapshotMetadata,
    ) -> Result<()> {
        self.clear_entries();
        self.truncated = (meta.index, meta.term);
        self.conf_state = meta.get_conf_state().clone();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        {
            let mut m = txn.open_table(META)?;
            m.insert(KEY_SNAPSHOT, encode_pair(meta.index, meta.term).as_slice())?;
            m.insert(KEY_CONF_STATE, self.conf_state.write_to_bytes()?.as_slice())?;
        }
        self.set_applied(txn, meta.index)
    }

    /// Starts a new generation of the log file holding the log as it stands (after a snapshot
    /// was installed and made durable). Fsyncs.
    ///
    /// # Errors
    /// I/O errors: the node must stop.
    pub fn restart_log(&mut self) -> Result<()> {
        self.wal.flush(false)?;
        self.rotate()
    }

    /// Removes entries up to and including `to`, which must not exceed the durable applied
    /// index (a crash must find every entry after redb's last checkpoint), and rewrites the log
    /// file without them. Fsyncs.
    ///
    /// # Errors
    /// I/O errors, or a compaction point the log cannot have.
    pub fn compact(&mut self, to: u64) -> Result<()> {
        if to <= self.truncated.0 {
            return Ok(());
        }
        if to > self.durable_applied || to > self.last() {
            return Err(Error::internal(format!(
                "compaction to {to} beyond durably applied {} or last {}",
                self.durable_applied,
                self.last()
            )));
        }
        let term = self
            .term_of(to)
            .ok_or_else(|| Error::internal("compaction point has no term"))?;
        let removed = (to - self.truncated.0) as usize;
        self.terms.drain(..removed);
        self.offsets.drain(..removed);
        while self.recent.front().is_some_and(|e| e.index <= to) {
            self.recent.pop_front();
        }
        self.truncated = (to, term);
        self.wal.flush(false)?;
        self.rotate()
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
        // The newest entries from memory, older ones from the log file (where they have long
        // been written: only entries appended in the current Ready are not, and they are new).
        let front = self.recent.front().map_or(u64::MAX, |e| e.index);
        let first = self.first();
        for index in low..high {
            let e = if index >= front {
                self.recent[(index - front) as usize].clone()
            } else {
                self.wal
                    .read_entry(self.offsets[(index - first) as usize])
                    .map_err(store_err)?
            };
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
            // Called between applies, so the state outside redb is at `index` too.
            let frozen: Frozen = match &self.freezer {
                Some(freeze) => freeze(),
                None => Arc::new(()),
            };
            *slot = Some(SnapshotSource {
                index,
                term,
                txn: Arc::new(txn),
                frozen,
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

#[cfg(test)]
mod tests {
    use raft::Storage;
    use redb::backends::InMemoryBackend;

    use super::*;
    use crate::disk::MemoryFile;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8].into(),
            ..Default::default()
        }
    }

    /// Checks the log of the legacy database below, however it was opened.
    fn check(store: &LogStore) {
        assert_eq!((store.first(), store.last()), (5, 8));
        assert_eq!(
            store.term(4).ok(),
            Some(2),
            "the truncation point keeps its term"
        );
        assert_eq!(store.term(7).ok(), Some(3));
        let hs = store.hard_state();
        assert_eq!((hs.term, hs.vote, hs.commit), (3, 2, 7));
        assert_eq!(store.applied(), 6);
        let entries = store
            .entries(5, 9, None, GetEntriesContext::empty(false))
            .expect("entries");
        let data: Vec<u8> = entries.iter().map(|e| e.data[0]).collect();
        assert_eq!(data, vec![5, 6, 7, 8]);
    }

    /// kvsim before its log file kept entries, hard state and the compaction point in redb. A
    /// node opened over such a database moves them into the log file once, and they are gone
    /// from redb.
    #[test]
    fn a_log_an_older_kvsim_kept_in_redb_moves_to_the_log_file_once() {
        let db = Arc::new(
            Database::builder()
                .create_with_backend(InMemoryBackend::new())
                .expect("db"),
        );
        let txn = db.begin_write().expect("txn");
        {
            let mut meta = txn.open_table(META).expect("meta");
            let cs = ConfState {
                voters: vec![1, 2, 3],
                ..Default::default()
            };
            let hs = HardState {
                term: 3,
                vote: 2,
                commit: 7,
                ..Default::default()
            };
            let bytes = |m: &dyn protobuf::Message| m.write_to_bytes().expect("encode");
            meta.insert(KEY_CONF_STATE, bytes(&cs).as_slice())
                .expect("insert");
            meta.insert(LEGACY_HARD_STATE, bytes(&hs).as_slice())
                .expect("insert");
            meta.insert(LEGACY_TRUNCATED, encode_pair(4, 2).as_slice())
                .expect("insert");
            meta.insert(KEY_APPLIED, 6u64.to_be_bytes().as_slice())
                .expect("insert");
            let mut entries = txn.open_table(LEGACY_ENTRIES).expect("entries");
            for (i, term) in [(3, 1), (4, 2), (5, 2), (6, 2), (7, 3), (8, 3)] {
                let e = entry(i, term);
                entries.insert(i, bytes(&e).as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");

        let files = [MemoryFile::default(), MemoryFile::default()];
        let slots = || -> [Slot; 2] { [Box::new(files[0].clone()), Box::new(files[1].clone())] };
        check(&LogStore::open(db.clone(), slots(), &[9]).expect("open"));
        let read = db.begin_read().expect("read");
        assert!(matches!(
            read.open_table(LEGACY_ENTRIES),
            Err(redb::TableError::TableDoesNotExist(_))
        ));
        let meta = read.open_table(META).expect("meta");
        assert!(meta.get(LEGACY_HARD_STATE).expect("get").is_none());
        drop((meta, read));

        // Opened again, everything comes from the log file.
        let store = LogStore::open(db, slots(), &[9]).expect("reopen");
        check(&store);
        assert_eq!(
            store.initial_state().expect("state").conf_state.voters,
            vec![1, 2, 3]
        );
    }
}
