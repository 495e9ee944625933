//! Opening a node's redb file on a storage backend that can be "crashed".
//!
//! Every node's database sits on a [`CrashableFile`]: redb's own file backend plus a switch.
//! Flipping the switch makes every later write, resize and fsync fail, so nothing more reaches
//! the file, not even redb's tidy-up on close (which would otherwise make the last non-durable
//! commits durable). What is left on disk is exactly what a `kill -9` at that instant leaves:
//! the simulator's `fault crash` is then an honest crash, not a clean shutdown, and a node
//! restarted from its directory recovers from the last durable commit.
//!
//! With `--in-memory` the backend is a [`MemoryDisk`] instead: redb's in-memory backend,
//! shared so that a node restarted in the same process finds what it had.
//!
//! The same switch can instead make the disk *fail*: writes and fsyncs return an I/O error
//! while the node runs on, as a dying disk does. The node's next write then stops it with a
//! storage fault, which is what the supervisor restarts (`kvsim fault disk`).

use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use prometheus_client::metrics::histogram::Histogram;

use redb::backends::{FileBackend, InMemoryBackend};
use redb::{BackendError, Database, StorageBackend};

use crate::raft::wal::{SLOT_FILES, Slot};
use crate::{Error, Result};

/// The switch that crashes a [`CrashableFile`], or makes its disk fail.
#[derive(Clone, Debug, Default)]
pub struct CrashSwitch(Arc<AtomicU8>);

const WORKING: u8 = 0;
const CRASHED: u8 = 1;
const FAILING: u8 = 2;

impl CrashSwitch {
    /// From now on, nothing more is written to the file.
    pub fn crash(&self) {
        self.0.store(CRASHED, Ordering::SeqCst);
    }

    /// From now on, every write and fsync fails with an I/O error (a simulated disk failure);
    /// a crash still takes precedence.
    pub fn fail(&self) {
        let _ = self
            .0
            .compare_exchange(WORKING, FAILING, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// One file of a node's in-memory "disk": redb's in-memory backend, shared by clones.
#[derive(Clone, Debug, Default)]
pub struct MemoryFile(Arc<InMemoryBackend>);

impl StorageBackend for MemoryFile {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
}

/// A node's in-memory "disk" (`--in-memory`): its database and its two log files in memory,
/// kept by the cluster across the node's restarts.
#[derive(Clone, Debug, Default)]
pub struct MemoryDisk {
    db: MemoryFile,
    log: [MemoryFile; 2],
}

impl MemoryDisk {
    /// A new, empty one.
    pub fn new() -> MemoryDisk {
        MemoryDisk::default()
    }
}

/// A node's storage, opened: its redb database (the state machine and raft's metadata), the two
/// slots of its Raft log file, and the switch that crashes or fails all three at once.
pub struct NodeStorage {
    /// The database.
    pub db: Database,
    /// The Raft log's slots ([`crate::raft::wal`]).
    pub log: [Slot; 2],
    /// Crashes or fails every file above.
    pub switch: CrashSwitch,
}

/// A redb backend (a file, or memory) with a [`CrashSwitch`].
#[derive(Debug)]
pub struct CrashableFile {
    inner: Box<dyn StorageBackend>,
    switch: CrashSwitch,
    /// Pass fsyncs on (`false` with `--durability none`: a durable commit then writes its
    /// pages and header like any other, but leaves them in the OS page cache).
    sync: bool,
    /// Where the durations of the fsyncs passed on are recorded (`/metrics`).
    timer: Option<Histogram>,
}

impl CrashableFile {
    fn check(&self) -> io::Result<()> {
        match self.switch.0.load(Ordering::SeqCst) {
            WORKING => Ok(()),
            CRASHED => Err(io::Error::other(
                "the node crashed (simulated); nothing more is written",
            )),
            _ => Err(io::Error::other(
                "simulated disk failure: the disk refuses writes (kvsim fault disk)",
            )),
        }
    }
}

impl StorageBackend for CrashableFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        if self.sync {
            let start = std::time::Instant::now();
            let done = self.inner.sync_data();
            if let Some(timer) = &self.timer {
                timer.observe(start.elapsed().as_secs_f64());
            }
            done
        } else {
            Ok(())
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        // Always release the file's locks, crashed or not, so the node can be restarted.
        self.inner.close()
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// Opens (creating if needed) the database at `path` and the Raft log files beside it, on
/// crashable backends sharing one switch; `sync` false makes their fsyncs no-ops
/// (`--durability none`).
///
/// # Errors
/// A file that cannot be opened, is locked by another process, or is not a redb database; the
/// message names the file.
pub fn open(path: &Path, sync: bool, timer: Option<Histogram>) -> Result<NodeStorage> {
    let switch = CrashSwitch::default();
    let db = open_db(path, sync, &switch, timer.clone())?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let slot = |name: &str| -> Result<Slot> {
        Ok(Box::new(open_file(
            &dir.join(name),
            sync,
            &switch,
            timer.clone(),
        )?))
    };
    let log = [slot(SLOT_FILES[0])?, slot(SLOT_FILES[1])?];
    Ok(NodeStorage { db, log, switch })
}

fn cannot_open(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::internal(format!(
        "cannot open {}: {e}; check that kvsim may read and write it (permissions, a read-only \
         or full disk), or use another --data-dir-root",
        path.display()
    ))
}

/// Opens (creating if needed) one of a node's files as a crashable backend.
fn open_file(
    path: &Path,
    sync: bool,
    switch: &CrashSwitch,
    timer: Option<Histogram>,
) -> Result<CrashableFile> {
    let cannot_open = |e: &dyn std::fmt::Display| cannot_open(path, e);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| cannot_open(&e))?;
    Ok(CrashableFile {
        inner: Box::new(FileBackend::new(file).map_err(|e| cannot_open(&e))?),
        switch: switch.clone(),
        sync,
        timer,
    })
}

fn open_db(
    path: &Path,
    sync: bool,
    switch: &CrashSwitch,
    timer: Option<Histogram>,
) -> Result<Database> {
    let backend = open_file(path, sync, switch, timer)?;
    // Verify every page's checksum on open: a damaged file is then refused with an error
    // naming it, where a plain open could trip over the damage later (redb may even panic).
    // It reads the whole file, which is cheap at simulator sizes.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Database::builder()
            .set_check_integrity_on_open(true)
            .create_with_backend(backend)
    }))
    .map_err(|_| {
        Error::internal(format!(
            "{} is damaged (redb could not read it); restore it from a backup, or start a fresh cluster with an empty --data-dir-root",
            path.display()
        ))
    })?;
    let db = opened.map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::internal(format!(
            "{} is already open in another kvsim process; stop it or use another --data-dir-root",
            path.display()
        )),
        redb::DatabaseError::Storage(redb::StorageError::Io(e)) => cannot_open(path, &e),
        other => Error::internal(format!(
            "{} is damaged or not a kvsim database ({other}); restore it from a backup, or \
             start a fresh cluster with an empty --data-dir-root",
            path.display()
        )),
    })?;
    Ok(db)
}

/// Opens (creating if needed) one redb database file on a crashable backend, with its switch:
/// a leaderless node's storage (`--mode dynamo`), which has no separate log.
///
/// # Errors
/// As [`open`].
pub fn open_database(path: &Path, sync: bool) -> Result<(Database, CrashSwitch)> {
    let switch = CrashSwitch::default();
    let db = open_db(path, sync, &switch, None)?;
    Ok((db, switch))
}

/// Opens (creating if empty) one redb database in memory, on `file` (kept by its owner across
/// restarts), with its switch.
///
/// # Errors
/// Only if redb refuses the memory's contents, which would be a bug.
pub fn open_memory_database(file: &MemoryFile) -> Result<(Database, CrashSwitch)> {
    let switch = CrashSwitch::default();
    let db = Database::builder()
        .create_with_backend(CrashableFile {
            inner: Box::new(file.clone()),
            switch: switch.clone(),
            sync: false,
            timer: None,
        })
        .map_err(|e| Error::internal(format!("cannot open an in-memory database: {e}")))?;
    Ok((db, switch))
}

/// Opens (creating if empty) a node's storage in memory, on `disk`.
///
/// # Errors
/// Only if redb refuses the memory's contents, which would be a bug.
pub fn open_memory(disk: &MemoryDisk) -> Result<NodeStorage> {
    let switch = CrashSwitch::default();
    let file = |f: &MemoryFile| CrashableFile {
        inner: Box::new(f.clone()),
        switch: switch.clone(),
        sync: false,
        timer: None,
    };
    let db = Database::builder()
        .create_with_backend(file(&disk.db))
        .map_err(|e| Error::internal(format!("cannot open an in-memory database: {e}")))?;
    let log: [Slot; 2] = [Box::new(file(&disk.log[0])), Box::new(file(&disk.log[1]))];
    Ok(NodeStorage { db, log, switch })
}
