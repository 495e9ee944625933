//! An in-memory redb storage backend that knows what was fsynced.
//!
//! Writes land in a pending list and become durable only at `sync_data`. A simulated crash
//! ([`SimDisk::crash`]) freezes the old backend (every later write fails, so redb's tidy-up on
//! close cannot persist anything) and [`SimDisk::recover`] hands out a new backend holding only
//! the durable bytes. A missing fsync anywhere in kvsim therefore shows up in the simulation
//! as a lost write.

use std::io;
use std::sync::{Arc, Mutex};

use redb::StorageBackend;

#[derive(Debug, Default)]
struct State {
    /// Contents as of the last `sync_data`.
    durable: Vec<u8>,
    /// Writes since then, in order: `(offset, bytes)`.
    pending: Vec<(u64, Vec<u8>)>,
    /// Length as seen by the running database.
    len: u64,
    /// The backend was crashed: refuse everything.
    crashed: bool,
}

/// A simulated disk; clones share the same bytes.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the disk is gone")
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("sim disk lock poisoned"))
    }

    /// Crashes the disk: unsynced writes are lost and this backend refuses all further I/O.
    pub fn crash(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.crashed = true;
            s.pending.clear();
        }
    }

    /// A fresh backend over what was durable at the crash (the old one stays dead).
    pub fn recover(&self) -> SimDisk {
        let durable = self
            .state
            .lock()
            .map(|s| s.durable.clone())
            .unwrap_or_default();
        SimDisk {
            state: Arc::new(Mutex::new(State {
                len: durable.len() as u64,
                durable,
                pending: Vec::new(),
                crashed: false,
            })),
        }
    }
}

impl StorageBackend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        let s = self.lock()?;
        if s.crashed {
            return Err(crashed());
        }
        Ok(s.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let s = self.lock()?;
        if s.crashed {
            return Err(crashed());
        }
        let end = offset + out.len() as u64;
        if end > s.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the sim disk",
            ));
        }
        out.fill(0);
        let copy = |dst: &mut [u8], src: &[u8], src_off: u64| {
            // Overlap of [src_off, src_off+src.len()) with [offset, end).
            let lo = src_off.max(offset);
            let hi = (src_off + src.len() as u64).min(end);
            if lo < hi {
                let d = (lo - offset) as usize..(hi - offset) as usize;
                let r = (lo - src_off) as usize..(hi - src_off) as usize;
                dst[d].copy_from_slice(&src[r]);
            }
        };
        copy(out, &s.durable, 0);
        for (off, bytes) in &s.pending {
            copy(out, bytes, *off);
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock()?;
        if s.crashed {
            return Err(crashed());
        }
        if len < s.len {
            // Shrinking discards bytes past the end, pending or durable alike (as a real
            // truncate would after the next sync; redb only shrinks trailing free space).
            let cut = usize::try_from(len).map_err(|_| io::Error::other("sim disk too large"))?;
            if s.durable.len() > cut {
                s.durable.truncate(cut);
            }
            s.pending.retain(|(off, _)| *off < len);
            for (off, bytes) in &mut s.pending {
                let keep = usize::try_from(len - *off).unwrap_or(usize::MAX);
                bytes.truncate(keep);
            }
        }
        s.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.lock()?;
        if s.crashed {
            return Err(crashed());
        }
        let len = usize::try_from(s.len).map_err(|_| io::Error::other("sim disk too large"))?;
        let pending = std::mem::take(&mut s.pending);
        s.durable.resize(len, 0);
        for (off, bytes) in pending {
            let off = usize::try_from(off).map_err(|_| io::Error::other("sim disk too large"))?;
            let end = (off + bytes.len()).min(len);
            if off < end {
                s.durable[off..end].copy_from_slice(&bytes[..end - off]);
            }
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.lock()?;
        if s.crashed {
            return Err(crashed());
        }
        if offset + data.len() as u64 > s.len {
            return Err(io::Error::other("write past the end of the sim disk"));
        }
        s.pending.push((offset, data.to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_writes_are_lost_at_a_crash() {
        let disk = SimDisk::new();
        disk.set_len(8).expect("len");
        disk.write(0, &[1, 2, 3, 4]).expect("write");
        disk.sync_data().expect("sync");
        disk.write(2, &[9, 9]).expect("write");
        let mut buf = [0u8; 4];
        disk.read(0, &mut buf).expect("read");
        assert_eq!(
            buf,
            [1, 2, 9, 9],
            "the running database sees its own writes"
        );
        disk.crash();
        assert!(
            disk.write(0, &[0]).is_err(),
            "a crashed disk refuses writes"
        );
        let after = disk.recover();
        after.read(0, &mut buf).expect("read");
        assert_eq!(buf, [1, 2, 3, 4], "only the synced bytes survive");
    }

    #[test]
    fn redb_recovers_only_durable_commits() {
        use redb::{Builder, Durability, ReadableDatabase, TableDefinition};
        const T: TableDefinition<u64, u64> = TableDefinition::new("t");
        let disk = SimDisk::new();
        let db = Builder::new()
            .create_with_backend(disk.clone())
            .expect("create");
        let durable = db.begin_write().expect("txn");
        durable
            .open_table(T)
            .expect("table")
            .insert(1, 10)
            .expect("insert");
        durable.commit().expect("commit");
        let mut lazy = db.begin_write().expect("txn");
        lazy.set_durability(Durability::None).expect("durability");
        lazy.open_table(T)
            .expect("table")
            .insert(2, 20)
            .expect("insert");
        lazy.commit().expect("commit");
        disk.crash();
        drop(db);
        let db = Builder::new()
            .create_with_backend(disk.recover())
            .expect("reopen");
        let read = db.begin_read().expect("read");
        let t = read.open_table(T).expect("table");
        assert_eq!(t.get(1).expect("get").map(|v| v.value()), Some(10));
        assert_eq!(
            t.get(2).expect("get").map(|v| v.value()),
            None,
            "the non-durable commit is gone"
        );
    }
}
