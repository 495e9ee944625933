//! A leaderless replica's durable state on redb: each key's versions, the hints kept for
//! unreachable nodes, the node's write counter, and the change records of the keys it is
//! primary for (its stream shard).
//!
//! Changes collect in memory and [`VersionStore::flush`] writes them all in one durable redb
//! transaction: group commit, one fsync for everything a batch of messages stored, which the
//! node flushes before any of it is acknowledged. Reads see the pending changes over what redb
//! holds. Every commit is a durable one (its header written); with `--durability none` the
//! storage backend skips the fsync itself ([`crate::disk`]), so a killed process still loses
//! nothing it acknowledged, and with `--in-memory` a restarted node finds all it had.
//!
//! Keys are stored as the partition's length (four bytes, big-endian), the partition, then the
//! item bytes, so that a partition's items are one contiguous range.

use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::dynamo::NodeId;
use crate::dynamo::node::{Change, ChangePage, ChangeQuery, Key, VersionStore};
use crate::dynamo::ring::{Md5Hash, RingHash};
use crate::dynamo::version::{Siblings, Version};
use crate::{Error, Result};

const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dynamo_versions");
const HINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dynamo_hints");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("dynamo_changes");
const META: TableDefinition<&str, u64> = TableDefinition::new("dynamo_meta");
const COUNTER: &str = "counter";
/// The next change record's sequence number (kept, so trimming every record never lets a
/// number be used twice).
const CHANGE_SEQ: &str = "change_seq";
/// The most records one read of changes looks at, matching or not, so a shard full of other
/// tables' records costs a bounded read.
const CHANGES_EXAMINED: usize = 10_000;

/// The replica's state on a redb database. See the module documentation.
pub struct RedbVersions {
    db: Arc<Database>,
    fsync: bool,
    /// Versions written since the last flush (`None`: the key was forgotten).
    pending: BTreeMap<Vec<u8>, Option<Siblings>>,
    /// Hints added (`Some`) or removed (`None`) since the last flush.
    pending_hints: BTreeMap<Vec<u8>, Option<(NodeId, Key, Version)>>,
    counter: u64,
    counter_dirty: bool,
    /// Change records made since the last flush.
    pending_changes: Vec<(u64, Change)>,
    /// Records before this sequence number are to be forgotten at the next flush.
    trim_to: Option<u64>,
    /// The sequence number the next record gets.
    next_change: u64,
    /// The sequence number after the last flushed record.
    flushed_changes: u64,
    /// Transactions committed with an fsync since the node started.
    fsyncs: u64,
}

fn encode<T: serde::Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| Error::internal(format!("encode {what}: {e}")))
}

fn decode<'a, T: serde::Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T> {
    postcard::from_bytes(bytes)
        .map_err(|e| Error::internal(format!("stored {what} unreadable: {e}")))
}

/// A key's bytes in the versions table.
pub fn key_bytes(key: &Key) -> Result<Vec<u8>> {
    let len = u32::try_from(key.partition.len())
        .map_err(|_| Error::internal("partition key longer than 4 GiB"))?;
    let mut out = Vec::with_capacity(4 + key.partition.len() + key.item.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&key.partition);
    out.extend_from_slice(&key.item);
    Ok(out)
}

fn key_from(bytes: &[u8]) -> Result<Key> {
    let bad = || Error::internal("stored key unreadable");
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(bad());
    }
    let (partition, item) = rest.split_at(len);
    Ok(Key {
        partition: partition.to_vec(),
        item: item.to_vec(),
    })
}

fn hint_id(owner: NodeId, key: &Key, version: &Version) -> Result<Vec<u8>> {
    let mut id = owner.to_be_bytes().to_vec();
    id.extend(key_bytes(key)?);
    id.extend(Md5Hash.point(&encode("version", version)?).to_be_bytes());
    Ok(id)
}

impl RedbVersions {
    /// Opens the replica's tables on `db` (creating them if new).
    ///
    /// # Errors
    /// Storage errors, or a counter that cannot be read.
    pub fn open(db: Arc<Database>, fsync: bool) -> Result<Self> {
        let txn = db.begin_write()?;
        let (counter, next_change) = {
            txn.open_table(VERSIONS)?;
            txn.open_table(HINTS)?;
            let last = txn.open_table(CHANGES)?.last()?.map(|(k, _)| k.value());
            let meta = txn.open_table(META)?;
            let seq = meta.get(CHANGE_SEQ)?.map_or(1, |v| v.value());
            (
                meta.get(COUNTER)?.map_or(0, |v| v.value()),
                seq.max(last.map_or(1, |l| l + 1)),
            )
        };
        txn.commit()?;
        Ok(RedbVersions {
            db,
            fsync,
            pending: BTreeMap::new(),
            pending_hints: BTreeMap::new(),
            counter,
            counter_dirty: false,
            pending_changes: Vec::new(),
            trim_to: None,
            next_change,
            flushed_changes: next_change,
            fsyncs: 0,
        })
    }
}

impl RedbVersions {
    /// True if changes are waiting for a flush (after a node's `ready`, never: the simulation
    /// checks it).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
            || !self.pending_hints.is_empty()
            || self.counter_dirty
            || !self.pending_changes.is_empty()
            || self.trim_to.is_some()
    }
}

impl VersionStore for RedbVersions {
    fn fsyncs(&self) -> u64 {
        self.fsyncs
    }

    fn get(&self, key: &Key) -> Result<Siblings> {
        let k = key_bytes(key)?;
        if let Some(pending) = self.pending.get(&k) {
            return Ok(pending.clone().unwrap_or_default());
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(VERSIONS)?;
        match table.get(k.as_slice())? {
            Some(v) => decode("versions", v.value()),
            None => Ok(Siblings::new()),
        }
    }

    fn put(&mut self, key: &Key, versions: &Siblings) -> Result<()> {
        self.pending.insert(key_bytes(key)?, Some(versions.clone()));
        Ok(())
    }

    fn add_hint(&mut self, owner: NodeId, key: &Key, version: &Version) -> Result<()> {
        self.pending_hints.insert(
            hint_id(owner, key, version)?,
            Some((owner, key.clone(), version.clone())),
        );
        Ok(())
    }

    fn hints(&self) -> Result<Vec<(NodeId, Key, Version)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HINTS)?;
        let mut all = BTreeMap::new();
        for row in table.iter()? {
            let (id, value) = row?;
            all.insert(id.value().to_vec(), Some(decode("hint", value.value())?));
        }
        for (id, hint) in &self.pending_hints {
            all.insert(id.clone(), hint.clone());
        }
        Ok(all.into_values().flatten().collect())
    }

    fn hinted(&self, owners: &[NodeId], key: &Key) -> Result<Vec<Version>> {
        let k = key_bytes(key)?;
        // An id is owner (8 bytes) | key | version hash (8 bytes): a longer key with the same
        // prefix has a longer id.
        let len = 8 + k.len() + 8;
        let mut found = BTreeMap::new();
        let txn = self.db.begin_read()?;
        let table = txn.open_table(HINTS)?;
        // Every read asks: with no hint at all (the usual case), one lookup answers.
        if self.pending_hints.is_empty() && table.first()?.is_none() {
            return Ok(Vec::new());
        }
        for owner in owners {
            let mut prefix = owner.to_be_bytes().to_vec();
            prefix.extend_from_slice(&k);
            for row in table.range(prefix.as_slice()..)? {
                let (id, value) = row?;
                if !id.value().starts_with(&prefix) {
                    break;
                }
                if id.value().len() == len {
                    found.insert(id.value().to_vec(), Some(decode("hint", value.value())?));
                }
            }
            for (id, hint) in self.pending_hints.range(prefix.clone()..) {
                if !id.starts_with(&prefix) {
                    break;
                }
                if id.len() == len {
                    found.insert(id.clone(), hint.clone());
                }
            }
        }
        Ok(found
            .into_values()
            .flatten()
            .map(|(_, _, version): (NodeId, Key, Version)| version)
            .collect())
    }

    fn remove_hint(&mut self, owner: NodeId, key: &Key, version: &Version) -> Result<()> {
        self.pending_hints
            .insert(hint_id(owner, key, version)?, None);
        Ok(())
    }

    fn next_counter(&mut self) -> Result<u64> {
        self.counter += 1;
        self.counter_dirty = true;
        Ok(self.counter)
    }

    fn entries(&self) -> Result<Vec<(Key, Siblings)>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(VERSIONS)?;
        let mut all = BTreeMap::new();
        for row in table.iter()? {
            let (k, v) = row?;
            all.insert(
                k.value().to_vec(),
                Some(decode::<Siblings>("versions", v.value())?),
            );
        }
        for (k, v) in &self.pending {
            all.insert(k.clone(), v.clone());
        }
        all.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .map(|(k, v)| Ok((key_from(&k)?, v)))
            .collect()
    }

    fn partition(&self, partition: &[u8]) -> Result<Vec<(Key, Siblings)>> {
        let prefix = key_bytes(&Key {
            partition: partition.to_vec(),
            item: Vec::new(),
        })?;
        let txn = self.db.begin_read()?;
        let table = txn.open_table(VERSIONS)?;
        let mut found = BTreeMap::new();
        for row in table.range(prefix.as_slice()..)? {
            let (k, v) = row?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            found.insert(
                k.value().to_vec(),
                Some(decode::<Siblings>("versions", v.value())?),
            );
        }
        for (k, v) in self.pending.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            found.insert(k.clone(), v.clone());
        }
        found
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .map(|(k, v)| Ok((key_from(&k)?, v)))
            .collect()
    }

    fn remove(&mut self, key: &Key) -> Result<()> {
        self.pending.insert(key_bytes(key)?, None);
        Ok(())
    }

    fn record(&mut self, change: Change) -> Result<()> {
        self.pending_changes.push((self.next_change, change));
        self.next_change += 1;
        Ok(())
    }

    fn changes(&self, query: &ChangeQuery) -> Result<ChangePage> {
        let (from, limit, max_bytes) = (query.from, query.limit, query.max_bytes);
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHANGES)?;
        let first = table
            .first()?
            .map_or(self.flushed_changes, |(k, _)| k.value());
        let mut page = ChangePage {
            records: Vec::new(),
            next: from.max(first),
            first,
            at_end: false,
        };
        if limit == 0 {
            page.next = self.flushed_changes;
            page.at_end = true;
            return Ok(page);
        }
        let (mut bytes, mut examined) = (0u64, 0usize);
        let mut ended = true;
        for row in table.range(from..)? {
            let (seq, value) = row?;
            if page.records.len() >= limit || examined >= CHANGES_EXAMINED {
                ended = false;
                break;
            }
            let size = value.value().len() as u64;
            if !page.records.is_empty() && bytes + size > max_bytes {
                ended = false;
                break;
            }
            examined += 1;
            page.next = seq.value() + 1;
            let change: Change = decode("change", value.value())?;
            if change.key.partition.starts_with(&query.prefix) {
                bytes += size;
                page.records.push((seq.value(), change));
            }
        }
        if ended {
            page.next = page.next.max(self.flushed_changes);
            page.at_end = true;
        }
        Ok(page)
    }

    fn trim_changes(&mut self, before_ms: u64) -> Result<usize> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(CHANGES)?;
        let mut trimmed = 0;
        let mut to = None;
        for row in table.iter()? {
            let (seq, value) = row?;
            let change: Change = decode("change", value.value())?;
            if change.recorded_ms >= before_ms {
                break;
            }
            trimmed += 1;
            to = Some(seq.value() + 1);
        }
        if to.is_some() {
            self.trim_to = to;
        }
        Ok(trimmed)
    }

    fn flush(&mut self) -> Result<()> {
        if !self.has_pending() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut versions = txn.open_table(VERSIONS)?;
            for (k, v) in &self.pending {
                match v {
                    Some(v) => {
                        versions.insert(k.as_slice(), encode("versions", v)?.as_slice())?;
                    }
                    None => {
                        versions.remove(k.as_slice())?;
                    }
                }
            }
            let mut hints = txn.open_table(HINTS)?;
            for (id, hint) in &self.pending_hints {
                match hint {
                    Some(h) => {
                        hints.insert(id.as_slice(), encode("hint", h)?.as_slice())?;
                    }
                    None => {
                        hints.remove(id.as_slice())?;
                    }
                }
            }
            let mut changes = txn.open_table(CHANGES)?;
            for (seq, change) in &self.pending_changes {
                changes.insert(*seq, encode("change", change)?.as_slice())?;
            }
            if let Some(to) = self.trim_to {
                changes.retain_in(..to, |_, _| false)?;
            }
            let mut meta = txn.open_table(META)?;
            meta.insert(COUNTER, self.counter)?;
            meta.insert(CHANGE_SEQ, self.next_change)?;
        }
        txn.commit()?;
        self.flushed_changes = self.next_change;
        self.pending_changes.clear();
        self.trim_to = None;
        if self.fsync {
            self.fsyncs += 1;
        }
        self.pending.clear();
        self.pending_hints.clear();
        self.counter_dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::version::tests::version;
    use crate::sim::disk::SimDisk;
    use redb::Builder;

    fn key(p: &str, i: &str) -> Key {
        Key {
            partition: p.as_bytes().to_vec(),
            item: i.as_bytes().to_vec(),
        }
    }

    fn open(disk: &SimDisk) -> Result<RedbVersions> {
        let db = Arc::new(Builder::new().create_with_backend(disk.clone())?);
        RedbVersions::open(db, true)
    }

    #[test]
    fn what_was_flushed_survives_a_crash_and_nothing_else() -> Result<()> {
        let disk = SimDisk::new();
        let mut store = open(&disk)?;
        let a = Siblings::of(version(&[(1, 1)], 5, Some("a")));
        store.put(&key("p", "1"), &a)?;
        let h = version(&[(2, 1)], 6, Some("h"));
        store.add_hint(3, &key("p", "2"), &h)?;
        assert_eq!(store.next_counter()?, 1);
        assert_eq!(store.get(&key("p", "1"))?, a);
        store.flush()?;
        // After the flush: lost on a crash.
        store.put(&key("q", ""), &a)?;
        store.remove_hint(3, &key("p", "2"), &h)?;
        assert!(store.hints()?.is_empty());
        assert_eq!(store.next_counter()?, 2);
        disk.crash();
        drop(store);
        let disk = disk.recover();
        let mut store = open(&disk)?;
        assert_eq!(store.get(&key("p", "1"))?, a);
        assert!(store.get(&key("q", ""))?.is_empty());
        assert_eq!(store.hints()?, vec![(3, key("p", "2"), h)]);
        // The counter never goes back below what a flushed write used.
        assert_eq!(store.next_counter()?, 2);
        let entries = store.entries()?;
        assert_eq!(entries, vec![(key("p", "1"), a)]);
        store.remove(&key("p", "1"))?;
        assert!(store.entries()?.is_empty());
        Ok(())
    }

    fn change(p: &str, at: u64, new: &str) -> Change {
        Change {
            key: key(p, ""),
            recorded_ms: at,
            stamp: at,
            old: None,
            new: Some(crate::model::Item::from([(
                "v".to_string(),
                crate::model::AttributeValue::S(new.into()),
            )])),
        }
    }

    fn query(prefix: &[u8], from: u64, limit: usize, max_bytes: u64) -> ChangeQuery {
        ChangeQuery {
            prefix: prefix.to_vec(),
            from,
            limit,
            max_bytes,
        }
    }

    #[test]
    fn change_records_are_read_once_flushed_and_their_numbers_never_reused() -> Result<()> {
        let disk = SimDisk::new();
        let mut store = open(&disk)?;
        store.record(change("t1a", 10, "a"))?;
        store.record(change("t2b", 20, "b"))?;
        store.record(change("t1c", 30, "c"))?;
        // Not flushed: not readable (a crash could lose them and reuse their numbers).
        assert!(
            store
                .changes(&query(b"t1", 0, 10, u64::MAX))?
                .records
                .is_empty()
        );
        store.flush()?;
        let page = store.changes(&query(b"t1", 0, 10, u64::MAX))?;
        let seqs: Vec<u64> = page.records.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![1, 3]);
        assert_eq!((page.next, page.first, page.at_end), (4, 1, true));
        // A page cut short by its limit says where to go on.
        let first = store.changes(&query(b"", 0, 1, u64::MAX))?;
        assert_eq!(
            (first.records.len(), first.next, first.at_end),
            (1, 2, false)
        );
        assert_eq!(
            store.changes(&query(b"", 0, 0, 0))?.next,
            4,
            "limit 0: where the shard ends"
        );
        // Trimming forgets the oldest, up to the first young enough to keep.
        assert_eq!(store.trim_changes(25)?, 2);
        store.flush()?;
        let page = store.changes(&query(b"", 0, 10, u64::MAX))?;
        assert_eq!(page.first, 3);
        assert_eq!(page.records.len(), 1);
        // Lost in a crash before its flush: its number is given again, never a flushed one's.
        store.record(change("t1d", 40, "d"))?;
        disk.crash();
        drop(store);
        let disk = disk.recover();
        let mut store = open(&disk)?;
        assert_eq!(store.changes(&query(b"", 0, 10, u64::MAX))?.next, 4);
        assert_eq!(store.trim_changes(100)?, 1);
        store.flush()?;
        drop(store);
        let mut store = open(&disk)?;
        assert_eq!(
            store.changes(&query(b"", 0, 10, u64::MAX))?.next,
            4,
            "all trimmed"
        );
        store.record(change("t1e", 50, "e"))?;
        store.flush()?;
        let page = store.changes(&query(b"", 0, 10, u64::MAX))?;
        assert_eq!(
            page.records.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![4]
        );
        Ok(())
    }

    #[test]
    fn keys_round_trip_and_group_by_partition() -> Result<()> {
        let k = key("part", "item");
        assert_eq!(key_from(&key_bytes(&k)?)?, k);
        assert!(key_from(&[0, 0, 0, 9, 1]).is_err());
        assert!(key_bytes(&key("ab", "z"))? < key_bytes(&key("ab", "zz"))?);
        Ok(())
    }
}
