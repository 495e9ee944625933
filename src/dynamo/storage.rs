//! A leaderless replica's durable state on redb: each key's versions, the hints kept for
//! unreachable nodes, and the node's write counter.
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
use crate::dynamo::node::{Key, VersionStore};
use crate::dynamo::ring::{Md5Hash, RingHash};
use crate::dynamo::version::{Siblings, Version};
use crate::{Error, Result};

const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dynamo_versions");
const HINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dynamo_hints");
const META: TableDefinition<&str, u64> = TableDefinition::new("dynamo_meta");
const COUNTER: &str = "counter";

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
        let counter = {
            txn.open_table(VERSIONS)?;
            txn.open_table(HINTS)?;
            let meta = txn.open_table(META)?;
            meta.get(COUNTER)?.map_or(0, |v| v.value())
        };
        txn.commit()?;
        Ok(RedbVersions {
            db,
            fsync,
            pending: BTreeMap::new(),
            pending_hints: BTreeMap::new(),
            counter,
            counter_dirty: false,
            fsyncs: 0,
        })
    }
}

impl RedbVersions {
    /// True if changes are waiting for a flush (after a node's `ready`, never: the simulation
    /// checks it).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.pending_hints.is_empty() || self.counter_dirty
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

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() && self.pending_hints.is_empty() && !self.counter_dirty {
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
            txn.open_table(META)?.insert(COUNTER, self.counter)?;
        }
        txn.commit()?;
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

    #[test]
    fn keys_round_trip_and_group_by_partition() -> Result<()> {
        let k = key("part", "item");
        assert_eq!(key_from(&key_bytes(&k)?)?, k);
        assert!(key_from(&[0, 0, 0, 9, 1]).is_err());
        assert!(key_bytes(&key("ab", "z"))? < key_bytes(&key("ab", "zz"))?);
        Ok(())
    }
}
