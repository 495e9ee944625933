//! DynamoDB Streams in the state machine: enabling and disabling a table's stream, the record
//! every effective item write leaves in it at apply, trimming after the retention period, and
//! the reads the Streams API makes.
//!
//! Records are rows of redb, written in the same transaction as the write that made them, so
//! they survive crashes, snapshots and log compaction like the items do, and every replica
//! holds the same records under the same sequence numbers (see [`crate::model::stream`]).

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::model::Item;
use crate::model::stream::{RECORDS_PER_ENTRY, StreamEvent, StreamInfo, StreamRecord, StreamView};
use crate::model::table::TableMeta;
use crate::store::tables::{STREAM_RECORDS, STREAMS, TABLE_STREAMS};
use crate::{Error, Result};

/// The most records one trim entry removes, so trimming never stalls a node.
pub const TRIM_BATCH: usize = 1000;

fn encode(info: &StreamInfo) -> Result<Vec<u8>> {
    Ok(postcard::to_stdvec(info)?)
}

fn decode(bytes: &[u8]) -> Result<StreamInfo> {
    postcard::from_bytes(bytes).map_err(|e| Error::internal(format!("corrupt stream row: {e}")))
}

fn decode_record(bytes: &[u8]) -> Result<StreamRecord> {
    postcard::from_bytes(bytes).map_err(|e| Error::internal(format!("corrupt stream record: {e}")))
}

fn load(txn: &WriteTransaction, id: u64) -> Result<Option<StreamInfo>> {
    match txn.open_table(STREAMS)?.get(id)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// The stream writes to table `table_id` must record into, with its view, if one is enabled.
///
/// # Errors
/// Storage errors.
pub fn active(txn: &WriteTransaction, table_id: u64) -> Result<Option<(u64, StreamView)>> {
    Ok(txn.open_table(TABLE_STREAMS)?.get(table_id)?.and_then(|v| {
        let (id, code) = v.value();
        StreamView::from_code(code).map(|view| (id, view))
    }))
}

/// Enables a new stream on `meta`'s table at log entry `index` (its id) and time `at_ms`.
///
/// # Errors
/// DynamoDB's `ValidationException` when the table already has an enabled stream.
pub fn enable(
    txn: &WriteTransaction,
    meta: &TableMeta,
    index: u64,
    at_ms: u64,
    view: StreamView,
    shard_entries: u64,
) -> Result<()> {
    let mut created_ms = at_ms;
    if let Some((previous, code)) = txn
        .open_table(TABLE_STREAMS)?
        .get(meta.id)?
        .map(|v| v.value())
    {
        if code != 0 {
            return Err(Error::validation(format!(
                "Table already has an enabled stream: TableName: {}",
                meta.spec.name
            )));
        }
        // Labels name streams within a table: a second stream in the same millisecond (a
        // log without times) still gets its own.
        if let Some(old) = load(txn, previous)?
            && old.created_ms >= created_ms
        {
            created_ms = old.created_ms + 1;
        }
    }
    let info = StreamInfo::new(meta, index, view, created_ms, shard_entries.max(1));
    txn.open_table(STREAMS)?
        .insert(index, encode(&info)?.as_slice())?;
    txn.open_table(TABLE_STREAMS)?
        .insert(meta.id, (index, view.code()))?;
    Ok(())
}

/// Disables the enabled stream of `meta`'s table at time `at_ms`; its records stay readable
/// until trimmed.
///
/// # Errors
/// `ValidationException` when the table has no enabled stream.
pub fn disable(txn: &WriteTransaction, meta: &TableMeta, at_ms: u64) -> Result<()> {
    if !close(txn, meta.id, at_ms)? {
        return Err(Error::validation(format!(
            "Table does not have an enabled stream to disable: TableName: {}",
            meta.spec.name
        )));
    }
    Ok(())
}

/// Closes the enabled stream of table `table_id`, if any; true if there was one.
fn close(txn: &WriteTransaction, table_id: u64, at_ms: u64) -> Result<bool> {
    let Some((id, _)) = active(txn, table_id)? else {
        return Ok(false);
    };
    if let Some(mut info) = load(txn, id)? {
        info.disabled_ms = Some(at_ms);
        txn.open_table(STREAMS)?
            .insert(id, encode(&info)?.as_slice())?;
    }
    txn.open_table(TABLE_STREAMS)?.insert(table_id, (id, 0))?;
    Ok(true)
}

/// A table is deleted: its stream is disabled and no longer its table's (DynamoDB keeps a
/// deleted table's stream readable for the retention period).
///
/// # Errors
/// Storage errors.
pub fn table_deleted(txn: &WriteTransaction, table_id: u64, at_ms: u64) -> Result<()> {
    close(txn, table_id, at_ms)?;
    txn.open_table(TABLE_STREAMS)?.remove(table_id)?;
    Ok(())
}

/// Records a write of the item keyed `keys` from `old` to `new` in stream `(id, view)` at log
/// entry `index`: nothing if the write changed nothing, as DynamoDB records nothing then.
///
/// # Errors
/// Storage errors, or an entry making more than [`RECORDS_PER_ENTRY`] records (a bug).
#[allow(clippy::too_many_arguments)]
pub fn record(
    txn: &WriteTransaction,
    (id, view): (u64, StreamView),
    index: u64,
    at_ms: u64,
    keys: Item,
    old: Option<&Item>,
    new: Option<&Item>,
    by_ttl: bool,
) -> Result<()> {
    let Some(rec) = StreamRecord::of_write(view, at_ms, keys, old, new, by_ttl) else {
        return Ok(());
    };
    let mut records = txn.open_table(STREAM_RECORDS)?;
    let first = index.saturating_mul(RECORDS_PER_ENTRY);
    let seq = match records
        .range((id, first)..(id, first + RECORDS_PER_ENTRY))?
        .next_back()
    {
        Some(row) => row?.0.value().1 + 1,
        None => first,
    };
    if seq >= first + RECORDS_PER_ENTRY {
        return Err(Error::internal(format!(
            "log entry {index} made more than {RECORDS_PER_ENTRY} stream records"
        )));
    }
    records.insert((id, seq), postcard::to_stdvec(&rec)?.as_slice())?;
    Ok(())
}

/// Removes up to [`TRIM_BATCH`] records written before `before_ms`, oldest first in each
/// stream, and forgets disabled streams left empty that were disabled before it. Returns
/// true if the batch ran out before everything due was trimmed.
///
/// # Errors
/// Storage errors.
pub fn trim(txn: &WriteTransaction, before_ms: u64) -> Result<bool> {
    let streams: Vec<StreamInfo> = {
        let table = txn.open_table(STREAMS)?;
        table
            .iter()?
            .map(|row| decode(row?.1.value()))
            .collect::<Result<_>>()?
    };
    let mut budget = TRIM_BATCH;
    let mut records = txn.open_table(STREAM_RECORDS)?;
    let mut rows = txn.open_table(STREAMS)?;
    for mut info in streams {
        let mut gone = Vec::new();
        let mut next = None;
        for row in records.range((info.id, 0)..=(info.id, u64::MAX))? {
            let (k, v) = row?;
            let seq = k.value().1;
            if gone.len() == budget || decode_record(v.value())?.at_ms >= before_ms {
                next = Some(seq);
                break;
            }
            gone.push(seq);
        }
        budget -= gone.len();
        for seq in &gone {
            records.remove((info.id, *seq))?;
        }
        if let Some(last) = gone.last() {
            info.trimmed_to = last + 1;
            rows.insert(info.id, encode(&info)?.as_slice())?;
        }
        if next.is_none() && info.disabled_ms.is_some_and(|at| at < before_ms) {
            rows.remove(info.id)?;
        }
        if budget == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every stream this node knows, oldest first.
///
/// # Errors
/// Storage errors.
pub fn list(txn: &ReadTransaction) -> Result<Vec<StreamInfo>> {
    let table = match txn.open_table(STREAMS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    table.iter()?.map(|row| decode(row?.1.value())).collect()
}

/// The stream named `arn`, if this node knows it.
fn named(txn: &ReadTransaction, arn: &str) -> Result<Option<StreamInfo>> {
    Ok(list(txn)?.into_iter().find(|s| s.arn() == arn))
}

/// The latest stream of table `table_id` (enabled or not), if it ever had one.
///
/// # Errors
/// Storage errors.
pub fn latest(txn: &ReadTransaction, table_id: u64) -> Result<Option<StreamInfo>> {
    match (txn.open_table(TABLE_STREAMS), txn.open_table(STREAMS)) {
        (Ok(of_table), Ok(streams)) => latest_of(&of_table, &streams, table_id),
        (Err(redb::TableError::TableDoesNotExist(_)), _)
        | (_, Err(redb::TableError::TableDoesNotExist(_))) => Ok(None),
        (Err(e), _) | (_, Err(e)) => Err(e.into()),
    }
}

/// [`latest`] inside a write transaction.
///
/// # Errors
/// Storage errors.
pub fn latest_in(txn: &WriteTransaction, table_id: u64) -> Result<Option<StreamInfo>> {
    latest_of(
        &txn.open_table(TABLE_STREAMS)?,
        &txn.open_table(STREAMS)?,
        table_id,
    )
}

fn latest_of(
    of_table: &impl ReadableTable<u64, (u64, u8)>,
    streams: &impl ReadableTable<u64, &'static [u8]>,
    table_id: u64,
) -> Result<Option<StreamInfo>> {
    let Some(id) = of_table.get(table_id)?.map(|v| v.value().0) else {
        return Ok(None);
    };
    match streams.get(id)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// The records of stream `id` from sequence number `from` up to (not including) `to`: at most
/// `limit`, and no more once they hold `max_bytes` (at least one is returned if any is there).
///
/// # Errors
/// Storage errors.
pub fn records(
    txn: &ReadTransaction,
    id: u64,
    (from, to): (u64, u64),
    limit: usize,
    max_bytes: u64,
) -> Result<Vec<(u64, StreamRecord)>> {
    let table = match txn.open_table(STREAM_RECORDS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let mut bytes = 0;
    if from >= to {
        return Ok(out);
    }
    for row in table.range((id, from)..(id, to))?.take(limit) {
        let (k, v) = row?;
        if !out.is_empty() && bytes + v.value().len() as u64 > max_bytes {
            break;
        }
        bytes += v.value().len() as u64;
        out.push((k.value().1, decode_record(v.value())?));
    }
    Ok(out)
}

/// One shard of a stream, as DescribeStream and the shard iterators see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Its number (see [`StreamInfo::shard_id`]).
    pub k: u64,
    /// The first sequence number it can hold (after trimming).
    pub start: u64,
    /// The sequence number of its last record, if it has one.
    pub last: Option<u64>,
    /// No record will be added to it: a later shard has records, or the stream is disabled.
    pub closed: bool,
    /// The shard before it that has records, if any is kept.
    pub parent: Option<u64>,
}

/// The first record of stream `id` at or after `seq` and before `to`.
fn first_in(
    table: &impl ReadableTable<(u64, u64), &'static [u8]>,
    id: u64,
    seq: u64,
    to: u64,
) -> Result<Option<u64>> {
    if seq >= to {
        return Ok(None);
    }
    Ok(table
        .range((id, seq)..(id, to))?
        .next()
        .transpose()?
        .map(|(k, _)| k.value().1))
}

/// The last record of stream `id` before `seq`.
fn last_before(
    table: &impl ReadableTable<(u64, u64), &'static [u8]>,
    id: u64,
    seq: u64,
) -> Result<Option<u64>> {
    Ok(table
        .range((id, 0)..(id, seq))?
        .next_back()
        .transpose()?
        .map(|(k, _)| k.value().1))
}

/// The shard of a stream with no record kept: where its records will start.
fn empty_shard(info: &StreamInfo) -> Shard {
    Shard {
        k: info.shard_of(info.first_seq()),
        start: info.first_seq(),
        last: None,
        closed: info.disabled_ms.is_some(),
        parent: None,
    }
}

/// Up to `limit` shards of `info`'s stream after shard `after` (from the first if `None`):
/// the ranges of log entries that hold records, each with the one before as its parent.
///
/// # Errors
/// Storage errors.
pub fn shards(
    txn: &ReadTransaction,
    info: &StreamInfo,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<Shard>> {
    let table = match txn.open_table(STREAM_RECORDS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Ok(if after.is_none() {
                vec![empty_shard(info)]
            } else {
                Vec::new()
            });
        }
        Err(e) => return Err(e.into()),
    };
    let first = info.first_seq();
    let mut out = Vec::new();
    let mut k = after.map_or(info.shard_of(first), |a| a.saturating_add(1));
    while out.len() < limit {
        let from = info.shard_start(k).max(first);
        let Some(seq) = first_in(&table, info.id, from, u64::MAX)? else {
            break;
        };
        k = info.shard_of(seq);
        let start = info.shard_start(k).max(first);
        let end = info.shard_start(k.saturating_add(1));
        out.push(Shard {
            k,
            start,
            last: last_before(&table, info.id, end)?,
            closed: info.disabled_ms.is_some()
                || first_in(&table, info.id, end, u64::MAX)?.is_some(),
            parent: last_before(&table, info.id, start)?
                .filter(|p| *p >= first)
                .map(|p| info.shard_of(p)),
        });
        k = k.saturating_add(1);
    }
    if out.is_empty() && after.is_none() {
        out.push(empty_shard(info));
    }
    Ok(out)
}

/// Shard `k` of `info`'s stream, if it has it.
///
/// # Errors
/// Storage errors.
pub fn shard(txn: &ReadTransaction, info: &StreamInfo, k: u64) -> Result<Option<Shard>> {
    let found = shards(txn, info, k.checked_sub(1), 1)?
        .into_iter()
        .find(|s| s.k == k);
    if found.is_some() {
        return Ok(found);
    }
    let empty = shards(txn, info, None, 1)?;
    Ok(empty.into_iter().find(|s| s.k == k && s.last.is_none()))
}

/// What GetRecords reads from one shard.
pub struct ShardPage {
    /// The stream.
    pub info: StreamInfo,
    /// The shard.
    pub shard: Shard,
    /// Its records from the position asked.
    pub records: Vec<(u64, StreamRecord)>,
}

/// Whether some stream holds a record written before `before_ms`, or a disabled stream
/// disabled before it: work for [`trim`].
///
/// # Errors
/// Storage errors.
pub fn trim_due(txn: &ReadTransaction, before_ms: u64) -> Result<bool> {
    let streams = list(txn)?;
    if streams.is_empty() {
        return Ok(false);
    }
    let records = txn.open_table(STREAM_RECORDS);
    for info in streams {
        let oldest = match &records {
            Ok(t) => t
                .range((info.id, 0)..=(info.id, u64::MAX))?
                .next()
                .transpose()?
                .map(|(_, v)| decode_record(v.value()))
                .transpose()?,
            Err(_) => None,
        };
        match oldest {
            Some(r) if r.at_ms < before_ms => return Ok(true),
            None if info.disabled_ms.is_some_and(|at| at < before_ms) => return Ok(true),
            _ => {}
        }
    }
    Ok(false)
}

impl crate::store::Store {
    /// Checks table `table`'s latest stream against its items, for the simulation: read in
    /// order, each key's records must chain (an INSERT of an absent item, then MODIFYs and a
    /// REMOVE whose old image is the previous record's new image, none that changes nothing),
    /// and end at the item the table holds, at its version or before. A missing, duplicated or
    /// spurious record breaks the chain. Returns the problems found (none for a stream
    /// trimmed meanwhile, whose start is gone).
    ///
    /// # Errors
    /// Storage errors.
    pub fn check_stream(&self, table: &str) -> Result<Vec<String>> {
        let txn = self.db().begin_read()?;
        let Some(meta) = self.table(table)? else {
            return Ok(Vec::new());
        };
        let Some(info) = latest(&txn, meta.id)? else {
            return Ok(Vec::new());
        };
        if info.trimmed_to > 0
            || info.disabled_ms.is_some()
            || !info.view.keeps_old()
            || !info.view.keeps_new()
        {
            return Ok(Vec::new());
        }
        let records = records(&txn, info.id, (0, u64::MAX), usize::MAX, u64::MAX)?;
        let mut problems = Vec::new();
        // The shards list every record once, in order, each child after its parent, and only
        // the last is open.
        let listed = shards(&txn, &info, None, usize::MAX)?;
        let mut covered = 0;
        for (i, shard) in listed.iter().enumerate() {
            let end = info.shard_start(shard.k.saturating_add(1));
            let held = records
                .iter()
                .filter(|(seq, _)| *seq >= shard.start && *seq < end)
                .count();
            covered += held;
            let parent = i.checked_sub(1).map(|p| listed[p].k);
            let open = i + 1 == listed.len();
            if shard.parent != parent || shard.closed == open || (held == 0) != shard.last.is_none()
            {
                problems.push(format!(
                    "stream shard {shard:?} (number {i} of {}) is inconsistent",
                    listed.len()
                ));
            }
        }
        if covered != records.len() {
            problems.push(format!(
                "the stream's shards hold {covered} of its {} records",
                records.len()
            ));
        }
        let mut last: std::collections::BTreeMap<Vec<u8>, (Option<Item>, u64)> =
            std::collections::BTreeMap::new();
        for (seq, r) in records {
            let key = postcard::to_stdvec(&r.keys)?;
            let before = last.get(&key).and_then(|(image, _)| image.clone());
            let fits = match r.event {
                StreamEvent::Insert => before.is_none() && r.old.is_none() && r.new.is_some(),
                StreamEvent::Modify => {
                    before.is_some() && r.old == before && r.new.is_some() && r.old != r.new
                }
                StreamEvent::Remove => before.is_some() && r.old == before && r.new.is_none(),
            };
            if !fits {
                problems.push(format!(
                    "stream record {seq} ({} of {:?}) does not follow the key's previous record (new image {before:?})",
                    r.event.as_str(),
                    r.keys
                ));
            }
            last.insert(key, (r.new, crate::model::stream::seq_version(seq)));
        }
        let schema = &meta.spec.key_schema;
        let mut live = std::collections::BTreeMap::new();
        for (item, version) in self.versions(table)? {
            let keys = schema.key_of_item(&item)?.to_item(schema);
            live.insert(postcard::to_stdvec(&keys)?, (item, version));
        }
        for (key, (image, version)) in &last {
            let held = live.get(key);
            let agrees = match (image, held) {
                // A write that changes nothing rewrites the item (a new version) without a
                // record, so the item's version may be later than its last record's.
                (Some(i), Some((item, v))) => i == item && version <= v,
                (None, None) => true,
                _ => false,
            };
            if !agrees {
                problems.push(format!(
                    "the stream ends at {image:?} (version {version}) but the table holds {held:?}"
                ));
            }
        }
        for (key, held) in &live {
            if !last.contains_key(key) {
                problems.push(format!("item {held:?} has no stream record"));
            }
        }
        problems.truncate(5);
        Ok(problems)
    }

    /// Every stream this node knows, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    pub fn streams(&self) -> Result<Vec<StreamInfo>> {
        list(&self.db().begin_read()?)
    }

    /// The stream named `arn`, if this node knows it.
    ///
    /// # Errors
    /// Storage errors.
    pub fn stream(&self, arn: &str) -> Result<Option<StreamInfo>> {
        named(&self.db().begin_read()?, arn)
    }

    /// Shards of the stream named `arn` after shard `after` (at most `limit`), read in one
    /// transaction; `None` if this node does not know the stream.
    ///
    /// # Errors
    /// Storage errors.
    pub fn stream_shards(
        &self,
        arn: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Option<(StreamInfo, Vec<Shard>)>> {
        let txn = self.db().begin_read()?;
        let Some(info) = named(&txn, arn)? else {
            return Ok(None);
        };
        let shards = shards(&txn, &info, after, limit)?;
        Ok(Some((info, shards)))
    }

    /// The stream named `arn`, its shard named `shard`, and that shard's records from `from`
    /// on, all read in one transaction (so a trim cannot fall between the check of where the
    /// stream begins and the read). `Ok(None)`: no such stream; a missing shard is
    /// `ResourceNotFoundException`.
    ///
    /// # Errors
    /// Storage errors, or the missing shard.
    pub fn shard_page(
        &self,
        arn: &str,
        shard_id: &str,
        from: u64,
        limit: usize,
        max_bytes: u64,
    ) -> Result<Option<ShardPage>> {
        let txn = self.db().begin_read()?;
        let Some(info) = named(&txn, arn)? else {
            return Ok(None);
        };
        let found = match info.parse_shard(shard_id) {
            Some(k) => shard(&txn, &info, k)?,
            None => None,
        };
        let shard = found.ok_or_else(|| {
            Error::ResourceNotFound(format!(
                "Requested resource not found: Shard: {shard_id} in Stream: {arn} not found"
            ))
        })?;
        let end = info.shard_start(shard.k.saturating_add(1));
        let records = records(&txn, info.id, (from, end), limit, max_bytes)?;
        Ok(Some(ShardPage {
            info,
            shard,
            records,
        }))
    }

    /// Whether stream records are due for trimming before `before_ms` (see [`trim`]).
    ///
    /// # Errors
    /// Storage errors.
    pub fn stream_trim_due(&self, before_ms: u64) -> Result<bool> {
        trim_due(&self.db().begin_read()?, before_ms)
    }
}
