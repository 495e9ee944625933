//! The Raft log's write-ahead file: log entries and hard state as checksummed records, appended
//! to one of two slot files and fsynced once per Ready.
//!
//! Why not redb: a redb commit rewrites the B-tree path of every table it touches plus its
//! allocator state, about twenty 4 KB pages scattered over the file, and the Ready loop did one
//! per pass. Appending a pass's entries here is one sequential write of a few hundred bytes and
//! one `fdatasync`, as etcd's WAL does; the state machine's redb then commits without an fsync
//! and is made durable only now and then (see [`crate::raft::node`]'s checkpoints), because any
//! entry it loses in a crash is still here to be applied again.
//!
//! # Format
//!
//! A slot is a sequence of records: `len: u32 LE | crc: u32 LE | kind: u8 | body`, where `len`
//! counts `kind` and `body`, and `crc` is CRC-32 over the slot's generation (`u64` LE) followed
//! by `kind` and `body`. Seeding the checksum with the generation means a record left behind by
//! an older life of the file can never pass as a current one.
//!
//! - the first record is a *header*: generation, the log's truncation point `(index, term)` and
//!   how many records the rotation that wrote it put after it;
//! - an *entry* record holds one protobuf `Entry`; an entry at index `i` replaces every entry at
//!   or after `i` (a new leader overwriting an uncommitted suffix);
//! - a *hard state* record holds a protobuf `HardState`; the last one wins.
//!
//! Reading stops at the first record that is short, zero-length or fails its checksum: that is a
//! write torn by a crash, never acknowledged, and it is cut off when the log is opened.
//!
//! # Rotation
//!
//! The active slot only grows. Compaction rotates: the retained tail of the log is written to
//! the *other* slot under the next generation (over what it held: an older generation's records
//! fail the new one's checksums, so reading stops where the new records end), fsynced, and only
//! then becomes active. A slot whose header promises more records than it holds is a rotation
//! cut short by a crash and is ignored, so opening picks the newest *complete* slot and the
//! previous one stays intact until the next rotation overwrites it.

use std::io;

use protobuf::Message;
use raft::eraftpb::{Entry, HardState};
use redb::StorageBackend;

use crate::{Error, Result};

/// One slot's storage: a file, memory, or a simulated disk.
pub type Slot = Box<dyn StorageBackend>;

/// The slots' file names (in a node's directory), also used in messages.
pub const SLOT_FILES: [&str; 2] = ["raft-log.0", "raft-log.1"];

const KIND_HEADER: u8 = 1;
const KIND_ENTRY: u8 = 2;
const KIND_HARD_STATE: u8 = 3;
/// Bytes before a record's kind: length and checksum.
pub(crate) const HEAD: usize = 8;
const HEADER_BODY: usize = 32;
/// The active slot grows by at least this much at a time, written as zeros, so most flushes
/// overwrite blocks the file already has: their `fdatasync` then writes data only, with no
/// metadata (no size change, no block allocation) and so no filesystem journal commit, which on
/// ext4 would also wait for every other file's ordered data, such as a redb checkpoint's pages.
const GROW: u64 = 1 << 20;
/// A record larger than this is damage, not data (entries are bounded by the request limits).
pub(crate) const MAX_RECORD: u32 = 64 << 20;

/// What reading the active slot found, in order.
pub enum Record {
    /// An entry, and the offset of its record (for [`Wal::read_entry`]).
    Entry(Entry, u64),
    /// A hard state.
    HardState(HardState),
}

/// The write-ahead file. See the module docs.
pub struct Wal {
    slots: [Slot; 2],
    active: usize,
    generation: u64,
    /// The log's truncation point as of the active slot's header.
    truncated: (u64, u64),
    /// Bytes of the active slot written so far; the next record goes here.
    end: u64,
    /// The active slot's length: `end` plus room already allocated for what comes next.
    capacity: u64,
    /// Encoded records not yet written.
    pending: Vec<u8>,
}

/// A record's checksum: CRC-32 over the slot's generation and the record's kind and body.
pub(crate) fn checksum(generation: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&generation.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends a record of `kind` whose body `fill` writes straight into `out`, then its head
/// (length and checksum). A record `fill` fails on, or one over 4 GiB, is taken back out.
fn encode_with(
    out: &mut Vec<u8>,
    generation: u64,
    kind: u8,
    fill: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; HEAD]);
    out.push(kind);
    let len = fill(out).and_then(|()| {
        u32::try_from(out.len() - start - HEAD)
            .map_err(|_| Error::internal("raft log file: a record over 4 GiB"))
    });
    let len = match len {
        Ok(len) => len,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = checksum(generation, &out[start + HEAD..]);
    out[start + 4..start + HEAD].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Appends a record of `kind` whose body is `parts`, one after the other. The items' log
/// ([`crate::store::items`]) writes its records in this format too.
///
/// # Errors
/// Only a record over 4 GiB, which is not appended.
pub(crate) fn encode(out: &mut Vec<u8>, generation: u64, kind: u8, parts: &[&[u8]]) -> Result<()> {
    encode_with(out, generation, kind, |out| {
        for part in parts {
            out.extend_from_slice(part);
        }
        Ok(())
    })
}

/// Appends the record of `msg` to `out`, encoded in place (no buffer of its own).
fn encode_message(out: &mut Vec<u8>, generation: u64, kind: u8, msg: &impl Message) -> Result<()> {
    encode_with(out, generation, kind, |out| {
        msg.write_to_vec(out).map_err(Error::from)
    })
}

fn header_body(generation: u64, truncated: (u64, u64), records: u64) -> [u8; HEADER_BODY] {
    let mut b = [0u8; HEADER_BODY];
    for (i, v) in [generation, truncated.0, truncated.1, records]
        .into_iter()
        .enumerate()
    {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_le_bytes(a)
}

fn io_err(what: &str, e: io::Error) -> Error {
    Error::internal(format!("raft log file: {what}: {e}"))
}

/// The length and checksum of the record at `offset` of `slot` (whose length is `len`), if a
/// plausible head is there: a size that is neither zero nor beyond the limit.
fn read_head(slot: &dyn StorageBackend, len: u64, offset: u64) -> Result<Option<(u32, u32)>> {
    if offset + HEAD as u64 > len {
        return Ok(None);
    }
    let mut head = [0u8; HEAD];
    slot.read(offset, &mut head)
        .map_err(|e| io_err("read", e))?;
    let size = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    Ok((size != 0 && size <= MAX_RECORD).then_some((size, crc)))
}

/// Reads the record at `offset` of `slot` (whose length is `len`), if a whole one is there whose
/// checksum matches `generation`, or (for a header) the generation the record itself names.
fn read_record_as(
    slot: &dyn StorageBackend,
    len: u64,
    offset: u64,
    generation: Option<u64>,
) -> Result<Option<(u8, Vec<u8>)>> {
    let Some((size, crc)) = read_head(slot, len, offset)? else {
        return Ok(None);
    };
    if offset + HEAD as u64 + u64::from(size) > len {
        return Ok(None);
    }
    let mut payload = vec![0u8; size as usize];
    slot.read(offset + HEAD as u64, &mut payload)
        .map_err(|e| io_err("read", e))?;
    let generation = match generation {
        Some(g) => g,
        None if payload[0] == KIND_HEADER && payload.len() == 1 + HEADER_BODY => {
            u64_at(&payload[1..], 0)
        }
        None => return Ok(None),
    };
    if checksum(generation, &payload) != crc {
        return Ok(None);
    }
    let kind = payload[0];
    payload.remove(0);
    Ok(Some((kind, payload)))
}

/// Where the record after a bad one at `offset` would start, if a whole, valid record is there:
/// damage in the middle of the log rather than a torn tail (the last write, cut short by a
/// crash, with only zeros after it).
fn valid_record_after(
    slot: &dyn StorageBackend,
    len: u64,
    offset: u64,
    generation: u64,
) -> Result<Option<u64>> {
    let Some((size, _)) = read_head(slot, len, offset)? else {
        return Ok(None);
    };
    let next = offset + HEAD as u64 + u64::from(size);
    Ok(read_record_as(slot, len, next, Some(generation))?.map(|_| next))
}

/// What a slot's header says.
struct Header {
    generation: u64,
    truncated: (u64, u64),
    /// Records the rotation that wrote the header put after it.
    promised: u64,
    /// Where the first of them starts.
    start: u64,
}

/// A slot's header, if it has a valid one.
fn read_header(slot: &dyn StorageBackend) -> Result<Option<Header>> {
    let len = slot.len().map_err(|e| io_err("size", e))?;
    let Some((KIND_HEADER, body)) = read_record_as(slot, len, 0, None)? else {
        return Ok(None);
    };
    let start = (HEAD + 1 + HEADER_BODY) as u64;
    Ok(Some(Header {
        generation: u64_at(&body, 0),
        truncated: (u64_at(&body, 1), u64_at(&body, 2)),
        promised: u64_at(&body, 3),
        start,
    }))
}

impl Wal {
    /// Opens the log over its two slots, calling `each` with every record of the newest complete
    /// slot in order, and cutting off a torn tail. Returns the log and its truncation point;
    /// `None` for the point when neither slot holds a log yet (a new node, which must call
    /// [`Wal::rotate`] before appending).
    ///
    /// # Errors
    /// I/O errors, or a record that passes its checksum but does not decode (damage).
    pub fn open(
        slots: [Slot; 2],
        mut each: impl FnMut(Record) -> Result<()>,
    ) -> Result<(Wal, Option<(u64, u64)>)> {
        let mut best: Option<(usize, u64, (u64, u64), u64)> = None;
        for (i, slot) in slots.iter().enumerate() {
            let Some(Header {
                generation,
                truncated,
                promised,
                start,
            }) = read_header(slot.as_ref())?
            else {
                continue;
            };
            if best.is_some_and(|(_, g, _, _)| g >= generation) {
                continue;
            }
            // Complete only if the rotation's records are all there.
            let len = slot.len().map_err(|e| io_err("size", e))?;
            let mut offset = start;
            let mut complete = true;
            for _ in 0..promised {
                match read_record_as(slot.as_ref(), len, offset, Some(generation))? {
                    Some((_, body)) => offset += (HEAD + 1 + body.len()) as u64,
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                best = Some((i, generation, truncated, start));
            }
        }
        let Some((active, generation, truncated, start)) = best else {
            // The first rotation then writes slot 0.
            let wal = Wal {
                slots,
                active: 1,
                generation: 0,
                truncated: (0, 0),
                end: 0,
                capacity: 0,
                pending: Vec::new(),
            };
            return Ok((wal, None));
        };
        let slot = slots[active].as_ref();
        let len = slot.len().map_err(|e| io_err("size", e))?;
        let mut offset = start;
        while let Some((kind, body)) = read_record_as(slot, len, offset, Some(generation))? {
            match kind {
                KIND_ENTRY => each(Record::Entry(Entry::parse_from_bytes(&body)?, offset))?,
                KIND_HARD_STATE => each(Record::HardState(HardState::parse_from_bytes(&body)?))?,
                other => {
                    return Err(Error::internal(format!(
                        "raft log file: unknown record kind {other} at offset {offset}"
                    )));
                }
            }
            offset += (HEAD + 1 + body.len()) as u64;
        }
        if let Some(next) = valid_record_after(slot, len, offset, generation)? {
            return Err(Error::internal(format!(
                "{} is damaged: the record at offset {offset} fails its checksum but the one at \
                 {next} after it is whole, so this is not a write torn by a crash; restore the \
                 node's directory from a backup, or start a fresh cluster with an empty \
                 --data-dir-root",
                SLOT_FILES[active]
            )));
        }
        if offset < len {
            // A torn write (never acknowledged) or room grown ahead. Cut it off so that what is
            // appended next cannot sit in front of the remains of a torn record.
            slot.set_len(offset)
                .map_err(|e| io_err("truncate torn tail", e))?;
            slot.sync_data().map_err(|e| io_err("fsync", e))?;
        }
        let wal = Wal {
            slots,
            active,
            generation,
            truncated,
            end: offset,
            capacity: offset,
            pending: Vec::new(),
        };
        Ok((wal, Some(truncated)))
    }

    /// The truncation point in the active slot's header.
    pub fn truncated(&self) -> (u64, u64) {
        self.truncated
    }

    /// Queues `entry`; returns the offset its record will have.
    pub fn append(&mut self, entry: &Entry) -> Result<u64> {
        let offset = self.end + self.pending.len() as u64;
        encode_message(&mut self.pending, self.generation, KIND_ENTRY, entry)?;
        Ok(offset)
    }

    /// Queues a hard state.
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<()> {
        encode_message(&mut self.pending, self.generation, KIND_HARD_STATE, hs)
    }

    /// True if records are queued.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes the queued records in one write, and fsyncs if `sync`.
    ///
    /// # Errors
    /// I/O errors: the node must stop, as what was queued may or may not be on disk.
    pub fn flush(&mut self, sync: bool) -> Result<()> {
        if !self.pending.is_empty() {
            let slot = &self.slots[self.active];
            let needed = self.end + self.pending.len() as u64;
            if needed > self.capacity {
                let grown = needed.max(self.capacity + GROW);
                slot.set_len(grown).map_err(|e| io_err("grow", e))?;
                let zeros = vec![0u8; (grown - self.capacity) as usize];
                slot.write(self.capacity, &zeros)
                    .map_err(|e| io_err("grow", e))?;
                self.capacity = grown;
            }
            slot.write(self.end, &self.pending)
                .map_err(|e| io_err("write", e))?;
            self.end += self.pending.len() as u64;
            self.pending.clear();
        }
        if sync {
            self.slots[self.active]
                .sync_data()
                .map_err(|e| io_err("fsync", e))?;
        }
        Ok(())
    }

    /// Starts the next generation in the other slot with `hard_state` and `entries` (the log
    /// after `truncated`), fsynced before it becomes the active one. Returns each entry's new
    /// offset. Anything queued must have been flushed first.
    ///
    /// # Errors
    /// I/O errors; the previous slot is then still the valid log on disk.
    pub fn rotate<'a>(
        &mut self,
        truncated: (u64, u64),
        hard_state: &HardState,
        entries: impl ExactSizeIterator<Item = &'a Entry>,
    ) -> Result<Vec<u64>> {
        if !self.pending.is_empty() {
            return Err(Error::internal(
                "raft log file: rotation with records not yet written",
            ));
        }
        let generation = self.generation + 1;
        let promised = entries.len() as u64 + 1;
        // Sized up front: a rotation carries thousands of entries, and growing the buffer as it
        // went was most of its cost (reallocations and page faults, under `perf`).
        let entries: Vec<&Entry> = entries.collect();
        let size: usize = entries
            .iter()
            // The head, the kind, and the entry's small fields (term, index, type) besides its
            // data and context.
            .map(|e| HEAD + 1 + 24 + e.data.len() + e.context.len())
            .sum();
        let mut buf = Vec::with_capacity(size + 2 * (HEAD + 1) + HEADER_BODY + 64);
        encode(
            &mut buf,
            generation,
            KIND_HEADER,
            &[&header_body(generation, truncated, promised)],
        )?;
        encode_message(&mut buf, generation, KIND_HARD_STATE, hard_state)?;
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            offsets.push(buf.len() as u64);
            encode_message(&mut buf, generation, KIND_ENTRY, e)?;
        }
        let next = 1 - self.active;
        let slot = &self.slots[next];
        // Written over what the slot held, not after truncating it: its blocks are reused (see
        // GROW), and what follows the new records is an older generation's, whose checksums
        // fail under this one, so reading stops where the new records end.
        let len = slot.len().map_err(|e| io_err("size", e))?;
        if len < buf.len() as u64 {
            slot.set_len(buf.len() as u64)
                .map_err(|e| io_err("grow", e))?;
        }
        slot.write(0, &buf).map_err(|e| io_err("write", e))?;
        slot.sync_data().map_err(|e| io_err("fsync", e))?;
        self.active = next;
        self.generation = generation;
        self.truncated = truncated;
        self.end = buf.len() as u64;
        self.capacity = len.max(self.end);
        Ok(offsets)
    }

    /// Reads back the entry whose record is at `offset` of the active slot.
    ///
    /// # Errors
    /// If no valid entry record is there (a bug or damage).
    pub fn read_entry(&self, offset: u64) -> Result<Entry> {
        let slot = self.slots[self.active].as_ref();
        match read_record_as(slot, self.end, offset, Some(self.generation))? {
            Some((KIND_ENTRY, body)) => Ok(Entry::parse_from_bytes(&body)?),
            _ => Err(Error::internal(format!(
                "raft log file: no entry record at offset {offset}"
            ))),
        }
    }

    /// Bytes in the active slot.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// True if the active slot holds nothing yet.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::disk::SimDisk;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    fn slots(disks: &[SimDisk; 2]) -> [Slot; 2] {
        [Box::new(disks[0].clone()), Box::new(disks[1].clone())]
    }

    fn recover(disks: &[SimDisk; 2]) -> [SimDisk; 2] {
        for d in disks {
            d.crash();
        }
        [disks[0].recover(), disks[1].recover()]
    }

    /// What `open` reports: the truncation point, the entries as (index, term) pairs and the
    /// last hard state's term.
    type Read = (Option<(u64, u64)>, Vec<(u64, u64)>, Option<u64>);

    fn read(disks: &[SimDisk; 2]) -> Read {
        let mut entries: Vec<(u64, u64)> = Vec::new();
        let mut hs = None;
        let (_, truncated) = Wal::open(slots(disks), |r| {
            match r {
                Record::Entry(e, _) => {
                    entries.retain(|(i, _)| *i < e.index);
                    entries.push((e.index, e.term));
                }
                Record::HardState(h) => hs = Some(h.term),
            }
            Ok(())
        })
        .expect("open");
        (truncated, entries, hs)
    }

    fn fresh(disks: &[SimDisk; 2]) -> Wal {
        let (mut wal, t) = Wal::open(slots(disks), |_| Ok(())).expect("open");
        assert_eq!(t, None);
        wal.rotate((0, 0), &HardState::default(), [].iter())
            .expect("first rotation");
        wal
    }

    #[test]
    fn synced_records_survive_a_crash_and_unsynced_ones_do_not() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let mut wal = fresh(&disks);
        wal.append(&entry(1, 1, b"a")).expect("append");
        wal.append(&entry(2, 1, b"b")).expect("append");
        let hs = HardState {
            term: 1,
            ..Default::default()
        };
        wal.set_hard_state(&hs).expect("hs");
        wal.flush(true).expect("flush");
        wal.append(&entry(3, 1, b"c")).expect("append");
        wal.flush(false).expect("flush without sync");
        let disks = recover(&disks);
        assert_eq!(read(&disks), (Some((0, 0)), vec![(1, 1), (2, 1)], Some(1)));
    }

    #[test]
    fn an_entry_replaces_the_suffix_from_its_index_and_entries_read_back_by_offset() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let mut wal = fresh(&disks);
        for i in 1..=3 {
            wal.append(&entry(i, 1, b"x")).expect("append");
        }
        let at = wal.append(&entry(2, 2, b"new")).expect("append");
        wal.flush(true).expect("flush");
        assert_eq!(wal.read_entry(at).expect("read").data.as_ref(), b"new");
        assert_eq!(read(&disks).1, vec![(1, 1), (2, 2)]);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_continue_after_the_last_whole_record() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let mut wal = fresh(&disks);
        wal.append(&entry(1, 1, b"a")).expect("append");
        wal.flush(true).expect("flush");
        // Half a record, as a crash in the middle of a write leaves it.
        let mut torn = Vec::new();
        encode(
            &mut torn,
            1,
            KIND_ENTRY,
            &[&entry(2, 1, b"bbbb").write_to_bytes().expect("enc")],
        )
        .expect("encode");
        torn.truncate(torn.len() - 3);
        disks[0].write(wal.len(), &torn).expect("write");
        disks[0].sync_data().expect("sync");
        drop(wal);
        let (mut wal, _) = Wal::open(slots(&disks), |_| Ok(())).expect("open");
        wal.append(&entry(2, 1, b"b")).expect("append");
        wal.flush(true).expect("flush");
        assert_eq!(read(&disks).1, vec![(1, 1), (2, 1)]);
    }

    #[test]
    fn damage_in_the_middle_of_the_log_is_refused_not_cut_off() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let mut wal = fresh(&disks);
        let second = {
            wal.append(&entry(1, 1, b"aaaa")).expect("append");
            wal.append(&entry(2, 1, b"bbbb")).expect("append")
        };
        wal.append(&entry(3, 1, b"cccc")).expect("append");
        wal.flush(true).expect("flush");
        // Flip a byte inside entry 2's body; entry 3 after it is intact.
        let at = second + HEAD as u64 + 3;
        let mut byte = [0u8; 1];
        disks[0].read(at, &mut byte).expect("read");
        disks[0].write(at, &[byte[0] ^ 0xff]).expect("write");
        disks[0].sync_data().expect("sync");
        let err = Wal::open(slots(&disks), |_| Ok(()))
            .err()
            .expect("damage is refused");
        assert!(err.to_string().contains("raft-log.0 is damaged"), "{err}");
    }

    #[test]
    fn a_slot_reused_by_a_rotation_reads_only_its_new_generation() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let mut wal = fresh(&disks);
        // Slot 0 fills with a long first generation and grows ahead (zeros after `end`).
        for i in 1..=200 {
            wal.append(&entry(i, 1, &[7; 100])).expect("append");
        }
        wal.flush(true).expect("flush");
        assert!(disks[0].len().expect("len") > wal.len(), "grown ahead");
        let tail: Vec<Entry> = (199..=200).map(|i| entry(i, 1, &[7; 100])).collect();
        wal.rotate((198, 1), &HardState::default(), tail.iter())
            .expect("rotate to slot 1");
        // Back to slot 0 with a short tail, over the old generation's records.
        wal.append(&entry(201, 2, b"y")).expect("append");
        wal.flush(true).expect("flush");
        let tail = [entry(201, 2, b"y")];
        wal.rotate((200, 1), &HardState::default(), tail.iter())
            .expect("rotate back to slot 0");
        assert!(
            disks[0].len().expect("len") > wal.len(),
            "slot 0 kept its blocks"
        );
        wal.append(&entry(202, 2, b"z")).expect("append");
        wal.flush(true).expect("flush");
        // Unsynced records after a crash, over the old generation's bytes, are cut off too.
        wal.append(&entry(203, 2, b"lost")).expect("append");
        wal.flush(false).expect("flush without sync");
        let disks = recover(&disks);
        let (truncated, entries, _) = read(&disks);
        assert_eq!(truncated, Some((200, 1)));
        assert_eq!(entries, vec![(201, 2), (202, 2)]);
    }

    #[test]
    fn a_rotation_cut_short_leaves_the_previous_slot_in_charge() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let mut wal = fresh(&disks);
        for i in 1..=5 {
            wal.append(&entry(i, 1, b"x")).expect("append");
        }
        wal.flush(true).expect("flush");
        let kept: Vec<Entry> = (4..=5).map(|i| entry(i, 1, b"x")).collect();
        let offsets = wal
            .rotate((3, 1), &HardState::default(), kept.iter())
            .expect("rotate");
        assert_eq!(wal.read_entry(offsets[1]).expect("read").index, 5);
        assert_eq!(read(&disks).0, Some((3, 1)));
        assert_eq!(read(&disks).1, vec![(4, 1), (5, 1)]);

        // Now damage the newest slot's promised records, as a crash mid-rotation would.
        let newest = &disks[1];
        let len = newest.len().expect("len");
        newest.set_len(len - 5).expect("truncate");
        newest.sync_data().expect("sync");
        let (truncated, entries, _) = read(&disks);
        assert_eq!(truncated, Some((0, 0)), "the older, complete slot is used");
        assert_eq!(entries, (1..=5).map(|i| (i, 1)).collect::<Vec<_>>());
    }

    #[test]
    fn records_of_an_older_generation_are_not_read_as_current() {
        let disks = [SimDisk::new(), SimDisk::new()];
        let mut wal = fresh(&disks);
        // A record encoded for another generation, sitting where the next one would go.
        let mut stale = Vec::new();
        encode(
            &mut stale,
            7,
            KIND_ENTRY,
            &[&entry(1, 1, b"old").write_to_bytes().expect("enc")],
        )
        .expect("encode");
        disks[0]
            .set_len(wal.len() + stale.len() as u64)
            .expect("grow");
        disks[0].write(wal.len(), &stale).expect("write");
        disks[0].sync_data().expect("sync");
        wal.flush(true).expect("flush");
        assert_eq!(read(&disks).1, Vec::<(u64, u64)>::new());
    }
}
