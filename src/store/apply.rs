//! Applying one committed command inside the Raft layer's write transaction.
//!
//! Every check the API made before proposing is made again here, because the proposer's view
//! may have been stale (the table deleted or re-created in between). Checks come before any
//! write, so a rejected command changes nothing. Deterministic errors are returned as the
//! command's result; storage errors are faults and propagate to stop the node.
//!
//! Last-write-wins by log index falls out of applying in log order: each write stores its index
//! as the item's version, and a later index always overwrites an earlier one.

use redb::{ReadableTable, WriteTransaction};

use crate::model::Item;
use crate::model::item::{check_item_size, item_size};
use crate::model::table::{TableDescription, TableMeta, TableSpec, TableStatus};
use crate::store::command::{Command, Outcome};
use crate::store::tables::{
    ITEMS, STATS, StoredItem, TABLES, decode_meta, encode_meta, item_key, prefix_end, table_prefix,
};
use crate::{Error, Result};

/// Applies the encoded command committed at `index`.
///
/// # Errors
/// The outer `Err` is a fault (storage); the inner one is the command's deterministic result.
pub fn apply(txn: &WriteTransaction, index: u64, bytes: &[u8]) -> Result<Result<Outcome>> {
    let result = match Command::decode(bytes) {
        Ok(Command::CreateTable(spec)) => create_table(txn, index, spec),
        Ok(Command::DeleteTable { name }) => delete_table(txn, &name),
        Ok(Command::PutItem { table, item }) => put_item(txn, index, &table, item),
        Ok(Command::DeleteItem { table, key }) => delete_item(txn, &table, &key),
        // Identical bytes on every replica, so this is a deterministic result, not a fault.
        Err(e) => return Ok(Err(e)),
    };
    match result {
        Err(e) if !e.is_deterministic() => Err(e),
        other => Ok(other),
    }
}

/// DynamoDB's message for an operation on a table that does not exist.
pub fn table_not_found() -> Error {
    Error::ResourceNotFound("Requested resource not found".into())
}

fn load_meta(txn: &WriteTransaction, name: &str) -> Result<Option<TableMeta>> {
    let tables = txn.open_table(TABLES)?;
    let row = tables.get(name)?;
    row.map(|v| decode_meta(v.value())).transpose()
}

fn create_table(txn: &WriteTransaction, index: u64, spec: TableSpec) -> Result<Outcome> {
    if load_meta(txn, &spec.name)?.is_some() {
        return Err(Error::ResourceInUse(format!(
            "Table already exists: {}",
            spec.name
        )));
    }
    let meta = TableMeta { spec, id: index };
    txn.open_table(TABLES)?
        .insert(meta.spec.name.as_str(), encode_meta(&meta)?.as_slice())?;
    txn.open_table(STATS)?.insert(meta.id, (0, 0))?;
    Ok(Outcome::Table(TableDescription {
        meta,
        status: TableStatus::Active,
        item_count: 0,
        size_bytes: 0,
    }))
}

fn delete_table(txn: &WriteTransaction, name: &str) -> Result<Outcome> {
    let meta = load_meta(txn, name)?.ok_or_else(|| {
        Error::ResourceNotFound(format!(
            "Requested resource not found: Table: {name} not found"
        ))
    })?;
    let (item_count, size_bytes) = txn
        .open_table(STATS)?
        .remove(meta.id)?
        .map(|v| v.value())
        .unwrap_or((0, 0));
    txn.open_table(TABLES)?.remove(name)?;
    let prefix = table_prefix(meta.id);
    let mut items = txn.open_table(ITEMS)?;
    match prefix_end(&prefix) {
        Some(end) => items.retain_in(prefix.as_slice()..end.as_slice(), |_, _| false)?,
        None => items.retain_in(prefix.as_slice().., |_, _| false)?,
    }
    Ok(Outcome::Table(TableDescription {
        meta,
        status: TableStatus::Deleting,
        item_count,
        size_bytes,
    }))
}

fn adjust_stats(
    txn: &WriteTransaction,
    id: u64,
    old_size: Option<u32>,
    new_size: Option<u32>,
) -> Result<()> {
    let mut stats = txn.open_table(STATS)?;
    let (mut count, mut bytes) = stats.get(id)?.map(|v| v.value()).unwrap_or((0, 0));
    if let Some(old) = old_size {
        count = count.saturating_sub(1);
        bytes = bytes.saturating_sub(u64::from(old));
    }
    if let Some(new) = new_size {
        count += 1;
        bytes += u64::from(new);
    }
    stats.insert(id, (count, bytes))?;
    Ok(())
}

fn put_item(txn: &WriteTransaction, index: u64, table: &str, item: Item) -> Result<Outcome> {
    let meta = load_meta(txn, table)?.ok_or_else(table_not_found)?;
    let key = meta.spec.key_schema.key_of_item(&item)?;
    check_item_size(&item)?;
    let size = u32::try_from(item_size(&item))
        .map_err(|_| Error::validation("Item size has exceeded the maximum allowed size"))?;
    let row = StoredItem::encode(index, size, &item)?;
    let mut items = txn.open_table(ITEMS)?;
    let (old_item, old_size) =
        match items.insert(item_key(meta.id, &key).as_slice(), row.as_slice())? {
            Some(v) => {
                let bytes = v.value();
                let (version, old_size) = StoredItem::header(bytes)?;
                // Log order makes this hold; a violation would mean an entry applied twice.
                if version >= index {
                    return Err(Error::internal(format!(
                        "item version {version} is not older than the write at index {index}"
                    )));
                }
                (Some(StoredItem::item(bytes)?), Some(old_size))
            }
            None => (None, None),
        };
    drop(items);
    adjust_stats(txn, meta.id, old_size, Some(size))?;
    Ok(Outcome::Item { old: old_item })
}

fn delete_item(txn: &WriteTransaction, table: &str, key: &Item) -> Result<Outcome> {
    let meta = load_meta(txn, table)?.ok_or_else(table_not_found)?;
    let key = meta.spec.key_schema.key_from_map(key)?;
    let mut items = txn.open_table(ITEMS)?;
    let (old_item, old_size) = match items.remove(item_key(meta.id, &key).as_slice())? {
        Some(v) => {
            let bytes = v.value();
            (
                Some(StoredItem::item(bytes)?),
                Some(StoredItem::header(bytes)?.1),
            )
        }
        None => (None, None),
    };
    drop(items);
    if old_size.is_some() {
        adjust_stats(txn, meta.id, old_size, None)?;
    }
    Ok(Outcome::Item { old: old_item })
}
