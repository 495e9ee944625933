//! Export and restore of the whole state machine, for Raft snapshots.
//!
//! The format is a stream of rows, so neither side ever holds a whole table in memory:
//! `tag:u8` then, for a row, `key_len:u32 BE, key, value_len:u32 BE, value`. Tags name the redb
//! table the row belongs to; tag 0 ends the stream. Rows are copied as stored bytes, so a
//! restored replica is byte-identical to the one that exported.

use std::io::{Read, Write};

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use crate::store::items::Tree;
use crate::store::tables::{
    INDEX_ITEMS, INDEX_STATS, ITEMS, PURGES, SETTINGS, STATS, STREAM_RECORDS, STREAMS,
    TABLE_STREAMS, TABLES, TOKEN_TIMES, TOKENS,
};
use crate::{Error, Result};

/// Longest row key a snapshot may hold: an item key is a table name (255 bytes) and a
/// primary key (at most 2,048 + 1,024 bytes) in their order-preserving encoding.
const MAX_KEY_BYTES: usize = 16 << 10;
/// Longest row value: an item (400 KB as DynamoDB counts it) in its stored encoding, with room.
const MAX_VALUE_BYTES: usize = 4 << 20;

const END: u8 = 0;
const TAG_TABLES: u8 = 1;
const TAG_ITEMS: u8 = 2;
const TAG_STATS: u8 = 3;
const TAG_TOKENS: u8 = 4;
const TAG_TOKEN_TIMES: u8 = 5;
const TAG_SETTINGS: u8 = 6;
const TAG_INDEX_ITEMS: u8 = 7;
const TAG_INDEX_STATS: u8 = 8;
const TAG_PURGES: u8 = 9;
const TAG_STREAMS: u8 = 10;
const TAG_TABLE_STREAMS: u8 = 11;
const TAG_STREAM_RECORDS: u8 = 12;

fn write_row(out: &mut dyn Write, tag: u8, key: &[u8], value: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
        return Err(Error::internal(format!(
            "a stored row is too large to snapshot ({} key bytes, {} value bytes)",
            key.len(),
            value.len()
        )));
    }
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

/// Writes every state machine row visible in `txn`, and `items`, to `out`.
pub fn export(txn: &ReadTransaction, items: &Tree, out: &mut dyn Write) -> Result<()> {
    export_table(txn, TABLES, TAG_TABLES, out, |k, v| {
        (k.as_bytes().to_vec(), v.to_vec())
    })?;
    export_table(txn, STATS, TAG_STATS, out, |k, (c, b)| {
        let mut v = c.to_be_bytes().to_vec();
        v.extend_from_slice(&b.to_be_bytes());
        (k.to_be_bytes().to_vec(), v)
    })?;
    for (key, row) in items {
        write_row(out, TAG_ITEMS, key, row)?;
    }
    export_table(txn, INDEX_ITEMS, TAG_INDEX_ITEMS, out, |k, v| {
        (k.to_vec(), v.to_vec())
    })?;
    export_table(txn, INDEX_STATS, TAG_INDEX_STATS, out, |(t, i), (c, b)| {
        let mut k = t.to_be_bytes().to_vec();
        k.extend_from_slice(&i.to_be_bytes());
        let mut v = c.to_be_bytes().to_vec();
        v.extend_from_slice(&b.to_be_bytes());
        (k, v)
    })?;
    export_table(txn, SETTINGS, TAG_SETTINGS, out, |k, v| {
        (k.to_be_bytes().to_vec(), v.to_vec())
    })?;
    export_table(txn, TOKENS, TAG_TOKENS, out, |k, (at, f)| {
        let mut v = at.to_be_bytes().to_vec();
        v.extend_from_slice(&f.to_be_bytes());
        (k.as_bytes().to_vec(), v)
    })?;
    export_table(txn, TOKEN_TIMES, TAG_TOKEN_TIMES, out, |(at, token), ()| {
        let mut k = at.to_be_bytes().to_vec();
        k.extend_from_slice(token.as_bytes());
        (k, Vec::new())
    })?;
    export_table(txn, PURGES, TAG_PURGES, out, |id, ()| {
        (id.to_be_bytes().to_vec(), Vec::new())
    })?;
    export_table(txn, STREAMS, TAG_STREAMS, out, |id, v| {
        (id.to_be_bytes().to_vec(), v.to_vec())
    })?;
    export_table(
        txn,
        TABLE_STREAMS,
        TAG_TABLE_STREAMS,
        out,
        |t, (id, view)| {
            let mut v = id.to_be_bytes().to_vec();
            v.push(view);
            (t.to_be_bytes().to_vec(), v)
        },
    )?;
    export_table(
        txn,
        STREAM_RECORDS,
        TAG_STREAM_RECORDS,
        out,
        |(id, seq), v| {
            let mut k = id.to_be_bytes().to_vec();
            k.extend_from_slice(&seq.to_be_bytes());
            (k, v.to_vec())
        },
    )?;
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

/// Reads a row length, refusing one over `max` before anything is allocated for it.
fn read_len(input: &mut dyn Read, what: &str, max: usize) -> Result<usize> {
    let mut arr = [0u8; 4];
    input
        .read_exact(&mut arr)
        .map_err(|e| Error::internal(format!("truncated snapshot: {e}")))?;
    let n = u32::from_be_bytes(arr) as usize;
    if n > max {
        return Err(Error::internal(format!(
            "corrupt snapshot: a row {what} of {n} bytes exceeds the {max} byte limit"
        )));
    }
    Ok(n)
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::internal("corrupt snapshot: short integer"))
}

/// Replaces every state machine row with the rows read from `input`: the items into `items`,
/// the rest into `txn`.
pub fn restore(txn: &WriteTransaction, input: &mut dyn Read, items: &mut Tree) -> Result<()> {
    txn.delete_table(TABLES)?;
    txn.delete_table(ITEMS)?;
    txn.delete_table(STATS)?;
    txn.delete_table(TOKENS)?;
    txn.delete_table(SETTINGS)?;
    txn.delete_table(TOKEN_TIMES)?;
    txn.delete_table(INDEX_ITEMS)?;
    txn.delete_table(INDEX_STATS)?;
    txn.delete_table(PURGES)?;
    txn.delete_table(STREAMS)?;
    txn.delete_table(TABLE_STREAMS)?;
    txn.delete_table(STREAM_RECORDS)?;
    let mut tables = txn.open_table(TABLES)?;
    let mut stats = txn.open_table(STATS)?;
    let mut tokens = txn.open_table(TOKENS)?;
    let mut settings = txn.open_table(SETTINGS)?;
    let mut token_times = txn.open_table(TOKEN_TIMES)?;
    let mut index_items = txn.open_table(INDEX_ITEMS)?;
    let mut index_stats = txn.open_table(INDEX_STATS)?;
    let mut purges = txn.open_table(PURGES)?;
    let mut streams = txn.open_table(STREAMS)?;
    let mut table_streams = txn.open_table(TABLE_STREAMS)?;
    let mut stream_records = txn.open_table(STREAM_RECORDS)?;
    let text = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| Error::internal("corrupt snapshot: a token is not text"))
    };
    loop {
        let tag = read_exact(input, 1)?[0];
        if tag == END {
            return Ok(());
        }
        let klen = read_len(input, "key", MAX_KEY_BYTES)?;
        let key = read_exact(input, klen)?;
        let vlen = read_len(input, "value", MAX_VALUE_BYTES)?;
        let value = read_exact(input, vlen)?;
        match tag {
            TAG_TABLES => {
                let name = std::str::from_utf8(&key)
                    .map_err(|_| Error::internal("corrupt snapshot: table name"))?;
                tables.insert(name, value.as_slice())?;
            }
            TAG_ITEMS => {
                items.insert(key.into(), value.into());
            }
            TAG_STATS => {
                stats.insert(u64_at(&key, 0)?, (u64_at(&value, 0)?, u64_at(&value, 8)?))?;
            }
            TAG_INDEX_ITEMS => {
                index_items.insert(key.as_slice(), value.as_slice())?;
            }
            TAG_INDEX_STATS => {
                let index = key
                    .get(8..12)
                    .and_then(|s| <[u8; 4]>::try_from(s).ok())
                    .map(u32::from_be_bytes)
                    .ok_or_else(|| Error::internal("corrupt snapshot: index stats key"))?;
                index_stats.insert(
                    (u64_at(&key, 0)?, index),
                    (u64_at(&value, 0)?, u64_at(&value, 8)?),
                )?;
            }
            TAG_SETTINGS => {
                settings.insert(u64_at(&key, 0)?, value.as_slice())?;
            }
            TAG_TOKENS => {
                tokens.insert(
                    text(&key)?.as_str(),
                    (u64_at(&value, 0)?, u64_at(&value, 8)?),
                )?;
            }
            TAG_TOKEN_TIMES => {
                let token = text(key.get(8..).unwrap_or_default())?;
                token_times.insert((u64_at(&key, 0)?, token.as_str()), ())?;
            }
            TAG_PURGES => {
                purges.insert(u64_at(&key, 0)?, ())?;
            }
            TAG_STREAMS => {
                streams.insert(u64_at(&key, 0)?, value.as_slice())?;
            }
            TAG_TABLE_STREAMS => {
                let view = *value
                    .get(8)
                    .ok_or_else(|| Error::internal("corrupt snapshot: short stream row"))?;
                table_streams.insert(u64_at(&key, 0)?, (u64_at(&value, 0)?, view))?;
            }
            TAG_STREAM_RECORDS => {
                stream_records.insert((u64_at(&key, 0)?, u64_at(&key, 8)?), value.as_slice())?;
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
pub fn digest(txn: &ReadTransaction, items: &Tree) -> Result<u64> {
    let mut f = Fingerprint(0xcbf2_9ce4_8422_2325);
    export(txn, items, &mut f)?;
    Ok(f.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;

    fn restore_bytes(bytes: &[u8]) -> Result<()> {
        let db = redb::Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(Error::internal)?;
        let txn = db.begin_write()?;
        restore(&txn, &mut &bytes[..], &mut Tree::new())
    }

    #[test]
    fn row_lengths_are_bounded_before_anything_is_allocated() {
        // A row claiming a 4 GiB key, then one claiming a 4 GiB value.
        let huge_key = [TAG_ITEMS, 0xff, 0xff, 0xff, 0xff];
        let huge_value = [TAG_ITEMS, 0, 0, 0, 1, b'k', 0xff, 0xff, 0xff, 0xff];
        for (bytes, what) in [(&huge_key[..], "key"), (&huge_value[..], "value")] {
            match restore_bytes(bytes) {
                Err(Error::Internal(m)) => assert!(
                    m.contains(&format!("a row {what} of 4294967295 bytes exceeds")),
                    "{m}"
                ),
                other => panic!("{what}: expected a refusal, got {other:?}"),
            }
        }
        assert!(
            matches!(restore_bytes(&[TAG_ITEMS, 0, 0]), Err(Error::Internal(m)) if m.contains("truncated"))
        );
        assert!(restore_bytes(&[TAG_ITEMS, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v', END]).is_ok());
    }
}
