//! The items of every table: in memory, in key order, and made durable by a log of their
//! writes beside the node's redb file.
//!
//! Why not redb: with writes to random keys nearly every redb insert copies a 4 KB leaf page
//! of its own and its path to the root, and every commit re-roots the tables it touched. Under
//! PutItem at 32 connections that was about half of each Raft thread's CPU (the insert 16%,
//! redb's commits 18%, reading the old item 4%), and a checkpoint's durable commit of a few
//! thousand such pages was what stalled the nodes. Here an apply is an insert into a
//! `BTreeMap` and a record of a few hundred bytes appended to a buffer.
//!
//! # The map
//!
//! [`ItemMap`]: row key ([`super::tables::item_key`]) to stored row
//! ([`super::tables::StoredItem`] bytes), behind one `RwLock`. The node applying takes the
//! write lock for one command at a time ([`ItemsTxn`]), so every item a transaction writes
//! appears to readers at once; a reader takes the read lock for one read (a GetItem, a page of
//! a Query or Scan, all the items of a TransactGetItems), so it sees one state.
//!
//! # The log
//!
//! Two slot files, `items.0` and `items.1`, like the Raft log's ([`crate::raft::wal`]): a slot
//! is a sequence of records `len: u32 LE | crc: u32 LE | kind: u8 | body`, where `len` counts
//! `kind` and `body` and `crc` is CRC-32 over the slot's generation (`u64` LE), `kind` and
//! `body`. The first record is a *header* holding the generation; then *put* (`key_len: u32 LE
//! | key | row`) and *delete* (`key`) records, in the order the writes were applied.
//!
//! Applies append records to a buffer; it is written to the file (without an fsync) before
//! each redb commit, and that commit records in redb where the log then ends: `(generation,
//! offset)` in `ITEM_LOG`. A checkpoint (redb's durable commit) first fsyncs the log up to
//! there, so **whenever redb holds a position, the log holds everything before it**. Opening
//! reads the active slot up to the position redb holds, nothing after it: a crash takes redb
//! back to its last checkpoint and the items to the same point, and Raft applies the entries
//! after it again, as it always did.
//!
//! # Rotation
//!
//! The log only grows, by every write, overwrites included. At a checkpoint where it holds
//! more than twice what the live items need (plus [`ROTATE_SLACK`]), the live items are written
//! into the *other* slot under the next generation and fsynced, and the checkpoint records
//! that slot. The slot it leaves stays intact until the rotation after, which runs only once
//! this checkpoint is durable (the node starts no checkpoint while the last one's fsync runs),
//! so a crash always finds the slot its redb position names. An older generation's records
//! left in a reused slot fail the new generation's checksums, and are never read anyway: reading
//! stops at the recorded position.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use crate::raft::wal::{HEAD, MAX_RECORD, Slot, checksum, encode};
use crate::{Error, Result};

/// The slots' file names (in a node's directory), also used in messages.
pub const ITEM_FILES: [&str; 2] = ["items.0", "items.1"];

/// Row key to stored row.
pub type Tree = BTreeMap<Box<[u8]>, Bytes>;

/// Where the log ends: `(generation, offset)`; the generation's parity names the slot.
pub type Position = (u64, u64);

/// A rotation is due once the log holds more than twice the live items' records plus this.
pub const ROTATE_SLACK: u64 = 64 << 20;

const KIND_HEADER: u8 = 1;
const KIND_PUT: u8 = 2;
const KIND_DELETE: u8 = 3;
/// Pending records are written out once they reach this, even mid-transaction.
const WRITE_OUT_AT: usize = 4 << 20;
/// How much of a slot is read at a time when opening, and written at a time when rotating.
const CHUNK: usize = 1 << 20;

/// The items, shared by the node applying and its readers. See the module docs.
#[derive(Debug, Default)]
pub struct ItemMap(RwLock<Tree>);

impl ItemMap {
    /// The map of `tree`.
    pub fn new(tree: Tree) -> ItemMap {
        ItemMap(RwLock::new(tree))
    }

    /// A read view of every item, held for one read.
    pub fn read(&self) -> RwLockReadGuard<'_, Tree> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tree> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of every item as they are now (for a Raft snapshot; rows are shared, not copied).
    pub fn freeze(&self) -> Tree {
        self.read().clone()
    }

    /// Opens the write side for one command's item writes.
    pub fn begin<'a>(&'a self, log: &'a mut ItemLog) -> ItemsTxn<'a> {
        ItemsTxn {
            tree: self.write(),
            pending: log.pending.len(),
            live: log.live,
            log,
            undo: Vec::new(),
        }
    }

    /// Replaces every item with `tree` (a restored snapshot).
    pub fn replace(&self, tree: Tree) {
        *self.write() = tree;
    }
}

/// One command's item writes: the map's write lock and the log. Dropped, it lets readers in.
pub struct ItemsTxn<'a> {
    tree: RwLockWriteGuard<'a, Tree>,
    log: &'a mut ItemLog,
    /// What each write replaced, in order, for [`ItemsTxn::roll_back`].
    undo: Vec<(Box<[u8]>, Option<Bytes>)>,
    /// The log's pending length and live bytes when the command began.
    pending: usize,
    live: u64,
}

impl ItemsTxn<'_> {
    /// The stored row of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.tree.get(key)
    }

    /// Stores `row` under `key`; the row it replaced, if any.
    ///
    /// # Errors
    /// A record too large for the log (over 4 GiB), which changes nothing.
    pub fn insert(&mut self, key: &[u8], row: Vec<u8>) -> Result<Option<Bytes>> {
        self.log.put(key, &row)?;
        // An exact-size allocation: `Bytes` of a `Vec` with spare capacity keeps all of it
        // (and a box of its own), for as long as the item lives.
        let old = self
            .tree
            .insert(key.into(), Bytes::from(row.into_boxed_slice()));
        if let Some(old) = &old {
            self.log.forget(key, old);
        }
        self.undo.push((key.into(), old.clone()));
        Ok(old)
    }

    /// Removes `key`; its row, if it had one.
    ///
    /// # Errors
    /// As [`ItemsTxn::insert`].
    pub fn remove(&mut self, key: &[u8]) -> Result<Option<Bytes>> {
        let Some(old) = self.tree.remove(key) else {
            return Ok(None);
        };
        if let Err(e) = self.log.delete(key) {
            self.tree.insert(key.into(), old);
            return Err(e);
        }
        self.log.forget(key, &old);
        self.undo.push((key.into(), Some(old.clone())));
        Ok(Some(old))
    }

    /// Takes back every write of this command, in the map and in the log, before readers see
    /// any (a command that failed half-way on a storage fault).
    pub fn roll_back(mut self) {
        self.undo_all();
    }

    /// Takes back every write so far (see [`ItemsTxn::roll_back`]).
    fn undo_all(&mut self) {
        for (key, old) in std::mem::take(&mut self.undo).into_iter().rev() {
            match old {
                Some(row) => self.tree.insert(key, row),
                None => self.tree.remove(&key),
            };
        }
        self.log.pending.truncate(self.pending);
        self.log.live = self.live;
    }

    /// The rows whose keys fall in `bounds`, in key order.
    pub fn range<'s>(
        &'s self,
        bounds: (Bound<&[u8]>, Bound<&[u8]>),
    ) -> impl DoubleEndedIterator<Item = (&'s [u8], &'s Bytes)> + 's {
        range(&self.tree, bounds)
    }
}

impl Drop for ItemsTxn<'_> {
    /// A command that panicked half-way is taken back too, before its write lock lets readers
    /// in: the node stops, and until it restarts its readers see none of that command.
    fn drop(&mut self) {
        if std::thread::panicking() && !self.undo.is_empty() {
            self.undo_all();
        }
    }
}

/// The rows of `tree` whose keys fall in `bounds`, in key order; nothing for an empty or
/// inverted range (where `BTreeMap::range` would panic).
pub fn range<'s>(
    tree: &'s Tree,
    bounds: (Bound<&[u8]>, Bound<&[u8]>),
) -> impl DoubleEndedIterator<Item = (&'s [u8], &'s Bytes)> + 's {
    let valid = match bounds {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a < b,
        _ => true,
    };
    valid
        .then(|| tree.range::<[u8], _>(bounds))
        .into_iter()
        .flatten()
        .map(|(k, v)| (&**k, v))
}

/// Rows a [`Chunks`] copies out per hold of the read lock.
const SCAN_CHUNK: usize = 256;

/// The rows of an [`ItemMap`] in a range, in key order or reversed, copied out a chunk at a
/// time under the read lock: the lock is never held while the caller works on a row, so a long
/// Query or Scan (or one skipping most rows) never holds up the node's applies for long. The
/// rows of one chunk come from one state of the map; later chunks may see later writes, as
/// the pages of a DynamoDB Scan do.
pub struct Chunks<'a> {
    map: &'a ItemMap,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    forward: bool,
    buf: std::collections::VecDeque<(Vec<u8>, Bytes)>,
    done: bool,
}

impl<'a> Chunks<'a> {
    /// The rows of `map` within `bounds`.
    pub fn new(map: &'a ItemMap, bounds: (Bound<&[u8]>, Bound<&[u8]>), forward: bool) -> Self {
        Chunks {
            map,
            lower: bounds.0.map(<[u8]>::to_vec),
            upper: bounds.1.map(<[u8]>::to_vec),
            forward,
            buf: std::collections::VecDeque::new(),
            done: false,
        }
    }

    fn fill(&mut self) {
        let tree = self.map.read();
        let bounds = (
            self.lower.as_ref().map(Vec::as_slice),
            self.upper.as_ref().map(Vec::as_slice),
        );
        let rows = range(&tree, bounds);
        let copy = |(k, v): (&[u8], &Bytes)| (k.to_vec(), v.clone());
        let rows: Vec<_> = if self.forward {
            rows.take(SCAN_CHUNK).map(copy).collect()
        } else {
            rows.rev().take(SCAN_CHUNK).map(copy).collect()
        };
        drop(tree);
        self.done = rows.len() < SCAN_CHUNK;
        if let Some((last, _)) = rows.last() {
            let after = Bound::Excluded(last.clone());
            if self.forward {
                self.lower = after;
            } else {
                self.upper = after;
            }
        }
        self.buf.extend(rows);
    }
}

impl Iterator for Chunks<'_> {
    type Item = (Vec<u8>, Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            self.fill();
        }
        self.buf.pop_front()
    }
}

/// Bytes a record of `key` and `row` takes in the log.
fn put_size(key: &[u8], row: &[u8]) -> u64 {
    (HEAD + 1 + 4 + key.len() + row.len()) as u64
}

/// The log of item writes. See the module docs.
pub struct ItemLog {
    slots: [Slot; 2],
    generation: u64,
    /// Bytes of the active slot written so far; the next record goes here.
    end: u64,
    /// How far the active slot is known durable.
    synced: u64,
    /// Encoded records not yet written.
    pending: Vec<u8>,
    /// Bytes the live items' records take (what a rotation would write).
    live: u64,
    /// A rotation is due past `2 * live + slack`.
    slack: u64,
}

impl std::fmt::Debug for ItemLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemLog")
            .field("generation", &self.generation)
            .field("end", &self.end)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

fn io_error(what: &str, e: &std::io::Error) -> Error {
    Error::internal(format!("items log: {what}: {e}"))
}

/// Writes `data` at `at` in `slot`, growing it first (a backend need not grow on its own) by at
/// least [`CHUNK`], so that appends rarely change the file's size.
fn write_at(slot: &dyn redb::StorageBackend, at: u64, data: &[u8]) -> std::io::Result<()> {
    let need = at + data.len() as u64;
    if slot.len()? < need {
        slot.set_len(need.max(at + CHUNK as u64))?;
    }
    slot.write(at, data)
}

impl ItemLog {
    /// Opens the log at `at` (the position redb recorded) and returns it with the items it
    /// holds; `None` starts an empty log in a new generation (a new node, or one whose items
    /// were in redb: the caller records the new position durably before anything else).
    ///
    /// # Errors
    /// A slot that cannot be read, or one damaged before `at` (which never happens to records
    /// a checkpoint fsynced: the message says which file).
    pub fn open(slots: [Slot; 2], at: Option<Position>) -> Result<(ItemLog, Tree)> {
        let mut log = ItemLog {
            slots,
            generation: 0,
            end: 0,
            synced: 0,
            pending: Vec::new(),
            live: 0,
            slack: ROTATE_SLACK,
        };
        let mut tree = Tree::new();
        match at {
            None => log.rotate(&tree)?,
            Some((generation, end)) => {
                log.generation = generation;
                log.read_into(end, &mut tree)?;
                log.end = end;
                // Not known durable: a clean stop that failed before its last fsync may have
                // left it in the page cache only. The next checkpoint makes sure.
                log.synced = 0;
            }
        }
        Ok((log, tree))
    }

    /// Rotates past `2 * live + slack` bytes instead of [`ROTATE_SLACK`] (the simulation
    /// rotates at small sizes).
    pub fn set_slack(&mut self, slack: u64) {
        self.slack = slack;
    }

    fn active(&self) -> usize {
        usize::from(self.generation % 2 == 1)
    }

    fn file(&self) -> &'static str {
        ITEM_FILES[self.active()]
    }

    /// Where the log ends once what is pending is written: what redb records at a commit.
    pub fn position(&self) -> Position {
        (self.generation, self.end + self.pending.len() as u64)
    }

    fn put(&mut self, key: &[u8], row: &[u8]) -> Result<()> {
        let klen = u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes();
        encode(
            &mut self.pending,
            self.generation,
            KIND_PUT,
            &[&klen, key, row],
        )?;
        self.live += put_size(key, row);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        encode(&mut self.pending, self.generation, KIND_DELETE, &[key])
    }

    /// A row the map no longer holds: its record is garbage now.
    fn forget(&mut self, key: &[u8], row: &[u8]) {
        self.live = self.live.saturating_sub(put_size(key, row));
    }

    /// Writes out pending records if there are many (bounds the buffer within one commit).
    ///
    /// # Errors
    /// The write's.
    pub fn write_out_if_large(&mut self) -> Result<()> {
        if self.pending.len() >= WRITE_OUT_AT {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes pending records to the active slot, without an fsync.
    ///
    /// # Errors
    /// The write's.
    pub fn write_out(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let file = self.file();
        write_at(&*self.slots[self.active()], self.end, &self.pending)
            .map_err(|e| io_error(&format!("cannot write {file}"), &e))?;
        self.end += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes out and fsyncs: everything before [`ItemLog::position`] is durable after this.
    /// Rotates first when the log has grown past what the live items need (see the module
    /// docs), which must only happen where the slot it would overwrite is no longer named by
    /// any durable redb commit: at a checkpoint, with the one before it durable.
    ///
    /// # Errors
    /// A write or fsync that failed: the node must stop.
    pub fn checkpoint(&mut self, tree: &Tree) -> Result<()> {
        self.write_out()?;
        if self.end > self.live.saturating_mul(2).saturating_add(self.slack) {
            return self.rotate(tree);
        }
        if self.synced < self.end {
            let file = self.file();
            self.slots[self.active()]
                .sync_data()
                .map_err(|e| io_error(&format!("cannot fsync {file}"), &e))?;
            self.synced = self.end;
        }
        Ok(())
    }

    /// Writes `tree` into the other slot under the next generation, fsyncs it and makes it
    /// the active one (see the module docs for when that is safe).
    ///
    /// # Errors
    /// A write or fsync that failed.
    pub fn rotate(&mut self, tree: &Tree) -> Result<()> {
        let generation = self.generation + 1;
        let slot = usize::from(generation % 2 == 1);
        let file = ITEM_FILES[slot];
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        encode(
            &mut buf,
            generation,
            KIND_HEADER,
            &[&generation.to_le_bytes()],
        )?;
        let mut at = 0u64;
        let mut live = 0u64;
        let write = |at: &mut u64, buf: &mut Vec<u8>, slots: &[Slot; 2]| -> Result<()> {
            write_at(&*slots[slot], *at, buf)
                .map_err(|e| io_error(&format!("cannot write {file}"), &e))?;
            *at += buf.len() as u64;
            buf.clear();
            Ok(())
        };
        for (key, row) in tree {
            let klen = u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes();
            encode(&mut buf, generation, KIND_PUT, &[&klen, key, row])?;
            live += put_size(key, row);
            if buf.len() >= CHUNK {
                write(&mut at, &mut buf, &self.slots)?;
            }
        }
        write(&mut at, &mut buf, &self.slots)?;
        // The slot may still be as long as an older, larger generation made it: give back
        // what this one does not need (keeping a chunk's room to grow into). Nothing past `at`
        // is read, so whether the shorter length survives a crash does not matter.
        let keep = at + CHUNK as u64;
        let len = self.slots[slot]
            .len()
            .map_err(|e| io_error(&format!("cannot read {file}"), &e))?;
        if len > keep {
            self.slots[slot]
                .set_len(keep)
                .map_err(|e| io_error(&format!("cannot truncate {file}"), &e))?;
        }
        self.slots[slot]
            .sync_data()
            .map_err(|e| io_error(&format!("cannot fsync {file}"), &e))?;
        self.generation = generation;
        self.end = at;
        self.synced = at;
        self.live = live;
        self.pending.clear();
        Ok(())
    }

    /// Replays the active slot's records before `end` into `tree`.
    fn read_into(&mut self, end: u64, tree: &mut Tree) -> Result<()> {
        let file = self.file();
        let generation = self.generation;
        let damaged = |at: u64, why: &str| {
            Error::internal(format!(
                "{file} is damaged at offset {at} ({why}), before where the database says it \
                 ends ({end}); restore the node's directory from a backup, or start it empty \
                 to catch up from the other nodes"
            ))
        };
        let cannot_read = |e: std::io::Error| io_error(&format!("cannot read {file}"), &e);
        let mut reader = Reader {
            slot: &*self.slots[self.active()],
            buf: Vec::new(),
            base: 0,
            end,
        };
        let len = reader.slot.len().map_err(cannot_read)?;
        if len < end {
            return Err(damaged(len, "the file is shorter"));
        }
        let mut at = 0u64;
        let mut live = 0u64;
        while at < end {
            if end - at < HEAD as u64 {
                return Err(damaged(at, "a record runs past the end"));
            }
            let head = reader.get(at, HEAD).map_err(cannot_read)?;
            let word =
                |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
            let (rlen, crc) = (word(0), word(4));
            if rlen == 0 || rlen > MAX_RECORD {
                return Err(damaged(at, "a record of an impossible length"));
            }
            let total = HEAD as u64 + u64::from(rlen);
            if end - at < total {
                return Err(damaged(at, "a record runs past the end"));
            }
            let payload = reader
                .get(at + HEAD as u64, rlen as usize)
                .map_err(cannot_read)?;
            if checksum(generation, payload) != crc {
                return Err(damaged(at, "a checksum does not match"));
            }
            let (kind, body) = (payload[0], &payload[1..]);
            match kind {
                KIND_HEADER if at == 0 => {
                    if body != generation.to_le_bytes() {
                        return Err(damaged(at, "the header names another generation"));
                    }
                }
                _ if at == 0 => return Err(damaged(at, "no header")),
                KIND_PUT => {
                    let klen = body
                        .get(..4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                        .ok_or_else(|| damaged(at, "a short put record"))?;
                    let key_end = klen
                        .checked_add(4)
                        .ok_or_else(|| damaged(at, "a short put record"))?;
                    let key = body
                        .get(4..key_end)
                        .ok_or_else(|| damaged(at, "a short put record"))?;
                    let row = body.get(key_end..).unwrap_or_default();
                    live += put_size(key, row);
                    if let Some(old) = tree.insert(key.into(), Bytes::copy_from_slice(row)) {
                        live = live.saturating_sub(put_size(key, &old));
                    }
                }
                KIND_DELETE => {
                    if let Some(old) = tree.remove(body) {
                        live = live.saturating_sub(put_size(body, &old));
                    }
                }
                _ => return Err(damaged(at, "a record of an unknown kind")),
            }
            at += total;
        }
        if end == 0 {
            return Err(damaged(0, "no header"));
        }
        self.live = live;
        Ok(())
    }
}

impl Drop for ItemLog {
    /// fsyncs what was written, at best: a clean shutdown makes redb's last commit durable, and
    /// the position it records should be on disk too. Nothing pending is written: a node
    /// restarted in this process may already have opened the slots again.
    fn drop(&mut self) {
        if self.synced < self.end {
            let _ = self.slots[self.active()].sync_data();
        }
    }
}

/// Reads a slot a chunk at a time.
struct Reader<'a> {
    slot: &'a dyn redb::StorageBackend,
    buf: Vec<u8>,
    /// The slot offset `buf` starts at.
    base: u64,
    /// Nothing at or past this is read.
    end: u64,
}

impl Reader<'_> {
    /// Bytes `at..at + n` of the slot (which the caller knows end by `end`).
    fn get(&mut self, at: u64, n: usize) -> std::io::Result<&[u8]> {
        if at < self.base || at + n as u64 > self.base + self.buf.len() as u64 {
            let len = (n.max(CHUNK) as u64).min(self.end.saturating_sub(at));
            self.buf.resize(usize::try_from(len).unwrap_or(n).max(n), 0);
            self.slot.read(at, &mut self.buf)?;
            self.base = at;
        }
        let off = usize::try_from(at - self.base).unwrap_or(usize::MAX);
        self.buf
            .get(off..off.saturating_add(n))
            .ok_or_else(|| std::io::Error::other("read past the buffer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::disk::SimDisk;
    use redb::StorageBackend;

    fn slots(disks: &[SimDisk; 2]) -> [Slot; 2] {
        [Box::new(disks[0].clone()), Box::new(disks[1].clone())]
    }

    fn put(map: &ItemMap, log: &mut ItemLog, k: &str, v: &str) {
        map.begin(log)
            .insert(k.as_bytes(), v.as_bytes().to_vec())
            .unwrap();
    }

    fn contents(tree: &Tree) -> Vec<(String, String)> {
        tree.iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_rotation_gives_back_what_an_older_generation_left_in_its_slot() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let (mut log, _) = ItemLog::open(slots(&disks), None).unwrap();
        let map = ItemMap::default();
        put(&map, &mut log, "k", "v");
        log.checkpoint(&map.read()).unwrap();
        let before = log.position();
        // The slot the next rotation writes into, as long as a big old generation left it.
        let next = usize::from((before.0 + 1) % 2 == 1);
        let long = 8 * CHUNK as u64;
        disks[next].set_len(long).unwrap();
        log.slack = 0;
        for round in 0..3 {
            put(&map, &mut log, "k", &format!("v{round}"));
        }
        log.checkpoint(&map.read()).unwrap();
        let after = log.position();
        assert_eq!(after.0, before.0 + 1, "rotated");
        let len = disks[next].len().unwrap();
        assert!(len < long && len <= after.1 + CHUNK as u64, "{len}");
        let (_, tree) = ItemLog::open(slots(&disks), Some(after)).unwrap();
        assert_eq!(contents(&tree), [("k".into(), "v2".into())]);
    }

    #[test]
    fn a_command_that_panics_half_way_leaves_no_trace() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let (mut log, _) = ItemLog::open(slots(&disks), None).unwrap();
        let map = ItemMap::default();
        put(&map, &mut log, "a", "1");
        let (pending, live) = (log.pending.len(), log.live);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut writes = map.begin(&mut log);
            writes.insert(b"a", b"2".to_vec()).unwrap();
            writes.insert(b"b", b"3".to_vec()).unwrap();
            writes.remove(b"a").unwrap();
            panic!("a bug half-way through a command");
        }));
        assert!(panicked.is_err());
        assert_eq!(contents(&map.read()), [("a".into(), "1".into())]);
        assert_eq!((log.pending.len(), log.live), (pending, live));
        // A command that ends normally keeps its writes.
        put(&map, &mut log, "b", "4");
        assert_eq!(contents(&map.read()).len(), 2);
    }

    #[test]
    fn a_log_reopened_at_a_position_holds_exactly_the_writes_before_it() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let (mut log, tree) = ItemLog::open(slots(&disks), None).unwrap();
        assert!(tree.is_empty());
        let map = ItemMap::default();
        put(&map, &mut log, "a", "1");
        put(&map, &mut log, "b", "2");
        map.begin(&mut log).remove(b"a").unwrap();
        put(&map, &mut log, "c", "3");
        log.checkpoint(&map.read()).unwrap();
        let at = log.position();
        // Written after the checkpoint, even written out: not part of position `at`.
        put(&map, &mut log, "d", "4");
        log.write_out().unwrap();
        let (again, tree) = ItemLog::open(slots(&disks), Some(at)).unwrap();
        assert_eq!(
            contents(&tree),
            [("b".into(), "2".into()), ("c".into(), "3".into())]
        );
        assert_eq!(again.position(), at);
        assert_eq!(again.live, log.live - put_size(b"d", b"4"));
    }

    #[test]
    fn a_crash_finds_each_checkpoint_whole_and_a_rotation_leaves_the_old_slot_alone() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let (mut log, _) = ItemLog::open(slots(&disks), None).unwrap();
        let map = ItemMap::default();
        put(&map, &mut log, "k", "v0");
        put(&map, &mut log, "j", "w");
        log.checkpoint(&map.read()).unwrap();
        let first = log.position();
        // Three more versions of one item: past twice the live records with no slack, so the
        // next checkpoint rotates.
        log.slack = 0;
        for round in 1..4 {
            put(&map, &mut log, "k", &format!("v{round}"));
        }
        map.begin(&mut log).remove(b"j").unwrap();
        log.checkpoint(&map.read()).unwrap();
        let second = log.position();
        assert_eq!(second.0, first.0 + 1, "rotated into the next generation");
        assert_eq!(second.1, log.live + (HEAD + 1 + 8) as u64);
        // Written after it and never synced: a crash loses it, and neither position needs it.
        put(&map, &mut log, "k", "lost");
        log.write_out().unwrap();
        disks.iter().for_each(SimDisk::crash);
        let recovered = [disks[0].recover(), disks[1].recover()];
        let (_, tree) = ItemLog::open(slots(&recovered), Some(second)).unwrap();
        assert_eq!(contents(&tree), [("k".into(), "v3".into())]);
        let (_, tree) = ItemLog::open(slots(&recovered), Some(first)).unwrap();
        assert_eq!(
            contents(&tree),
            [("j".into(), "w".into()), ("k".into(), "v0".into())]
        );
    }

    #[test]
    fn damage_before_the_recorded_end_is_refused_with_the_file_named() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let (mut log, _) = ItemLog::open(slots(&disks), None).unwrap();
        let map = ItemMap::default();
        put(&map, &mut log, "a", "1");
        log.checkpoint(&map.read()).unwrap();
        let at = log.position();
        let file = ITEM_FILES[log.active()];
        // Flip a byte of the put record's row.
        let slot = &log.slots[log.active()];
        let mut byte = [0u8];
        slot.read(at.1 - 1, &mut byte).unwrap();
        slot.write(at.1 - 1, &[byte[0] ^ 1]).unwrap();
        match ItemLog::open(slots(&disks), Some(at)) {
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains(file) && m.contains("checksum"), "{m}");
            }
            Ok(_) => panic!("a damaged log was accepted"),
        }
        slot.write(at.1 - 1, &byte).unwrap();
        assert!(ItemLog::open(slots(&disks), Some(at)).is_ok());
        // A position past what was written is damage too (a lost write), not an empty tail:
        // past the file's end, or into the zeros it was grown with.
        let len = slot.len().unwrap();
        for (end, why) in [(len + 1, "shorter"), (at.1 + 100, "impossible length")] {
            match ItemLog::open(slots(&disks), Some((at.0, end))) {
                Err(e) => assert!(e.to_string().contains(why), "{e}"),
                Ok(_) => panic!("a log ending before {end} was accepted"),
            }
        }
    }

    #[test]
    fn chunks_read_a_range_both_ways_across_chunks_and_see_later_writes() {
        let map = ItemMap::default();
        let disks = [SimDisk::new(), SimDisk::new()];
        let (mut log, _) = ItemLog::open(slots(&disks), None).unwrap();
        let n = SCAN_CHUNK * 2 + 7;
        for i in 0..n {
            put(&map, &mut log, &format!("k{i:05}"), "v");
        }
        let all: Vec<String> = (0..n).map(|i| format!("k{i:05}")).collect();
        let keys = |c: Chunks<'_>| {
            c.map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
                .collect::<Vec<_>>()
        };
        let unbounded = (Bound::Unbounded, Bound::Unbounded);
        assert_eq!(keys(Chunks::new(&map, unbounded, true)), all);
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(keys(Chunks::new(&map, unbounded, false)), reversed);
        let from = b"k00300".as_slice();
        assert_eq!(
            keys(Chunks::new(
                &map,
                (Bound::Excluded(from), Bound::Unbounded),
                true
            )),
            all[301..]
        );
        // A write after the first chunk was copied out shows up in a later one.
        let mut rows = Chunks::new(&map, unbounded, true);
        assert_eq!(rows.next().map(|(k, _)| k), Some(b"k00000".to_vec()));
        put(&map, &mut log, "z", "late");
        assert_eq!(rows.last().map(|(k, _)| k), Some(b"z".to_vec()));
    }

    #[test]
    fn ranges_that_are_empty_or_inverted_yield_nothing() {
        let map = ItemMap::default();
        let disks = [SimDisk::new(), SimDisk::new()];
        let (mut log, _) = ItemLog::open(slots(&disks), None).unwrap();
        for k in ["a", "b", "c"] {
            put(&map, &mut log, k, k);
        }
        let tree = map.read();
        let keys = |lo: Bound<&[u8]>, hi: Bound<&[u8]>| {
            range(&tree, (lo, hi))
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(Bound::Included(b"a"), Bound::Excluded(b"c")),
            ["a", "b"]
        );
        assert!(keys(Bound::Excluded(b"b"), Bound::Excluded(b"b")).is_empty());
        assert!(keys(Bound::Included(b"c"), Bound::Included(b"a")).is_empty());
        assert!(keys(Bound::Excluded(b"b"), Bound::Included(b"b")).is_empty());
        assert_eq!(keys(Bound::Excluded(b"a"), Bound::Unbounded), ["b", "c"]);
    }
}
