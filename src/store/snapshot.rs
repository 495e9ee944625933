//! Export and restore of the whole state machine, for Raft snapshots.
//!
//! The format is a stream of rows, so neither side ever holds a whole table in memory:
//! `tag:u8` then, for a row, `key_len:u32 BE, key, value_len:u32 BE, value`. Tags name the redb
//! table the row belongs to; tag 0 ends the stream. Rows are copied as stored bytes, so a
//! restored replica is byte-identical to the one that exported.

use std::io::{Read, Write};

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use crate::store::tables::{ITEMS, STATS, TABLES};
use crate::{Error, Result};

const END: u8 = 0;
const TAG_TABLES: u8 = 1;
const TAG_ITEMS: u8 = 2;
const TAG_STATS: u8 = 3;

fn write_row(out: &mut dyn Write, tag: u8, key: &[u8], value: &[u8]) -> Result<()> {
    let len = |n: usize| u32::try_from(n).map_err(|_| Error::internal("snapshot row too large"));
    out.write_all(&[tag])?;
    out.write_all(&len(key.len())?.to_be_bytes())?;
    out.write_all(key)?;
    out.write_all(&len(value.len())?.to_be_bytes())?;
    out.write_all(value)?;
    Ok(())
}

fn export_table<K, V>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
    tag: u8,
    out: &mut dyn Write,
    encode: impl Fn(K::SelfType<'_>, V::SelfType<'_>) -> (Vec<u8>, Vec<u8>),
) -> Result<()>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let table = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for row in table.iter()? {
        let (k, v) = row?;
        let (k, v) = encode(k.value(), v.value());
        write_row(out, tag, &k, &v)?;
    }
    Ok(())
}

/// Writes every state machine row visible in `txn` to `out`.
pub fn export(txn: &ReadTransaction, out: &mut dyn Write) -> Result<()> {
    export_table(txn, TABLES, TAG_TABLES, out, |k, v| {
        (k.as_bytes().to_vec(), v.to_vec())
    })?;
    export_table(txn, STATS, TAG_STATS, out, |k, (c, b)| {
        let mut v = c.to_be_bytes().to_vec();
        v.extend_from_slice(&b.to_be_bytes());
        (k.to_be_bytes().to_vec(), v)
    })?;
    export_table(txn, ITEMS, TAG_ITEMS, out, |k, v| (k.to_vec(), v.to_vec()))?;
    out.write_all(&[END])?;
    out.flush()?;
    Ok(())
}

fn read_exact(input: &mut dyn Read, n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    input
        .read_exact(&mut buf)
        .map_err(|e| Error::internal(format!("truncated snapshot: {e}")))?;
    Ok(buf)
}

fn read_u32(input: &mut dyn Read) -> Result<usize> {
    let b = read_exact(input, 4)?;
    let arr: [u8; 4] = b
        .as_slice()
        .try_into()
        .map_err(|_| Error::internal("snapshot length"))?;
    Ok(u32::from_be_bytes(arr) as usize)
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::internal("corrupt snapshot: short integer"))
}

/// Replaces every state machine row with the rows read from `input`.
pub fn restore(txn: &WriteTransaction, input: &mut dyn Read) -> Result<()> {
    txn.delete_table(TABLES)?;
    txn.delete_table(ITEMS)?;
    txn.delete_table(STATS)?;
    let mut tables = txn.open_table(TABLES)?;
    let mut items = txn.open_table(ITEMS)?;
    let mut stats = txn.open_table(STATS)?;
    loop {
        let tag = read_exact(input, 1)?[0];
        if tag == END {
            return Ok(());
        }
        let klen = read_u32(input)?;
        let key = read_exact(input, klen)?;
        let vlen = read_u32(input)?;
        let value = read_exact(input, vlen)?;
        match tag {
            TAG_TABLES => {
                let name = std::str::from_utf8(&key)
                    .map_err(|_| Error::internal("corrupt snapshot: table name"))?;
                tables.insert(name, value.as_slice())?;
            }
            TAG_ITEMS => {
                items.insert(key.as_slice(), value.as_slice())?;
            }
            TAG_STATS => {
                stats.insert(u64_at(&key, 0)?, (u64_at(&value, 0)?, u64_at(&value, 8)?))?;
            }
            other => {
                return Err(Error::internal(format!(
                    "corrupt snapshot: unknown row tag {other}"
                )));
            }
        }
    }
}

/// FNV-1a over everything written to it: a stable fingerprint of an export.
struct Fingerprint(u64);

impl Write for Fingerprint {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fingerprint of every state machine row visible in `txn`: two replicas with equal
/// fingerprints hold (with overwhelming likelihood) byte-identical state.
pub fn digest(txn: &ReadTransaction) -> Result<u64> {
    let mut f = Fingerprint(0xcbf2_9ce4_8422_2325);
    export(txn, &mut f)?;
    Ok(f.0)
}
