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
//! A checkpoint's fsync of the database can run off the node's thread ([`BackgroundSync`]):
//! redb's durable commit writes its pages and header and returns, and the fsync that makes
//! them durable runs on a thread of its own while the node goes on with commits that do not
//! fsync. What keeps that crash-safe is that **the file does not change while that fsync
//! runs**: every write, resize or fsync of it (redb's or a reader's write-back of buffered
//! pages) waits until the fsync has finished. The wait is required, not a precaution: right
//! after a durable commit returns, redb frees the pages the previous durable commit still uses
//! (`process_data_freed_pages_after_commit`), and the commits without fsync that follow may
//! reuse them and, when redb's write buffer is full, write them out. Were that to reach the
//! file before the new commit is on disk, a crash could find the new header without its pages
//! and the previous commit damaged. With the wait, a crash during the fsync finds what any
//! crash during a durable commit finds: the new commit, or the one before it, intact. Commits
//! without fsync normally write nothing to the file (redb buffers their pages), so the wait
//! rarely costs anything; when it does, it is the stall an inline fsync would have been. The
//! node counts the checkpoint durable (and compacts its log up to it) only once the fsync has
//! finished.
//!
//! The same switch can instead make the disk *fail*: writes and fsyncs return an I/O error
//! while the node runs on, as a dying disk does. The node's next write then stops it with a
//! storage fault, which is what the supervisor restarts (`kvsim fault disk`).

use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use prometheus_client::metrics::histogram::Histogram;

use redb::backends::{FileBackend, InMemoryBackend};
use redb::{BackendError, Database, StorageBackend};

use crate::raft::wal::{SLOT_FILES, Slot};
use crate::store::items::ITEM_FILES;
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

/// Hands a database's next fsync to a thread of its own, and tells how it went (see the module
/// docs). Clones share the state.
#[derive(Clone, Debug, Default)]
pub struct BackgroundSync(Arc<(Mutex<Background>, Condvar)>);

#[derive(Debug, Default)]
struct Background {
    /// No thread: the fsync waits in `pending` until [`BackgroundSync::run_pending`] (or the
    /// next write to the file) runs it, so a deterministic simulation decides when it lands.
    manual: bool,
    pending: Option<Arc<dyn StorageBackend>>,
    /// The next fsync runs in the background.
    armed: bool,
    /// A background fsync is running.
    running: bool,
    /// Background fsyncs finished without error.
    finished: u64,
    /// The first background fsync that failed, and why: the file is in doubt from then on.
    failed: Option<String>,
}

impl BackgroundSync {
    fn lock(&self) -> MutexGuard<'_, Background> {
        // A poisoned lock only means a panic elsewhere while it was held; the state is a few
        // plain fields, still meaningful.
        self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A background sync without a thread, for the deterministic simulation: an armed fsync
    /// runs only when [`BackgroundSync::run_pending`] is called, or before the file's next
    /// write, resize or fsync.
    pub fn manual() -> BackgroundSync {
        let bg = BackgroundSync::default();
        bg.lock().manual = true;
        bg
    }

    /// Runs the fsync a manual background sync holds, if any.
    ///
    /// # Errors
    /// The fsync's failure (it is also kept, as a thread's would be).
    pub fn run_pending(&self) -> io::Result<()> {
        let pending = self.lock().pending.take();
        if let Some(inner) = pending {
            let done = inner.sync_data();
            self.finish(&done);
            done?;
        }
        Ok(())
    }

    /// Records how a background fsync ended and wakes whoever waits for it.
    fn finish(&self, done: &io::Result<()>) {
        let mut state = self.lock();
        state.running = false;
        match done {
            Ok(()) => state.finished += 1,
            Err(e) => {
                state
                    .failed
                    .get_or_insert(format!("fsync of the database failed: {e}"));
            }
        }
        self.0.1.notify_all();
    }

    /// The next fsync of the file runs in the background: the call returns at once.
    pub fn arm(&self) {
        self.lock().armed = true;
    }

    /// Undoes [`BackgroundSync::arm`] if no fsync took it (a commit that failed first).
    pub fn disarm(&self) {
        self.lock().armed = false;
    }

    /// Whether a background fsync is running.
    pub fn running(&self) -> bool {
        self.lock().running
    }

    /// How many background fsyncs have finished; an error if one failed.
    ///
    /// # Errors
    /// The failure of a background fsync (the node must stop: its checkpoint is in doubt).
    pub fn finished(&self) -> io::Result<u64> {
        let state = self.lock();
        match &state.failed {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(state.finished),
        }
    }

    /// Waits until no background fsync runs (runs a manual one), so that the last checkpoint
    /// is durable.
    ///
    /// # Errors
    /// The failure of a background fsync.
    pub fn settle(&self) -> io::Result<()> {
        self.wait().map(drop)
    }

    /// Waits while a background fsync runs (runs a manual one); then whether the file is still
    /// sound.
    fn wait(&self) -> io::Result<MutexGuard<'_, Background>> {
        // A manual sync's fsync has no thread to finish it: run it here. Its error, if any, is
        // kept and reported below.
        let _ = self.run_pending();
        let mut state = self.lock();
        while state.running {
            state = self.0.1.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        match &state.failed {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(state),
        }
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

/// A node's in-memory "disk" (`--in-memory`): its database and its logs' slot files in memory,
/// kept by the cluster across the node's restarts.
#[derive(Clone, Debug, Default)]
pub struct MemoryDisk {
    db: MemoryFile,
    log: [MemoryFile; 2],
    items: [MemoryFile; 2],
}

impl MemoryDisk {
    /// A new, empty one.
    pub fn new() -> MemoryDisk {
        MemoryDisk::default()
    }
}

/// A node's storage, opened: its redb database (the state machine and raft's metadata), the two
/// slots of its Raft log file and the two of its items' log, and the switch that crashes or
/// fails them all at once.
pub struct NodeStorage {
    /// The database.
    pub db: Database,
    /// The Raft log's slots ([`crate::raft::wal`]).
    pub log: [Slot; 2],
    /// The items' log's slots ([`crate::store::items`]).
    pub items: [Slot; 2],
    /// Crashes or fails every file above.
    pub switch: CrashSwitch,
    /// Runs the database's checkpoint fsyncs off the node's thread; `None` where there is no
    /// fsync to run (in memory, `--durability none`).
    pub background: Option<BackgroundSync>,
}

/// A redb backend (a file, or memory) with a [`CrashSwitch`].
#[derive(Debug)]
pub struct CrashableFile {
    inner: Arc<dyn StorageBackend>,
    switch: CrashSwitch,
    /// Pass fsyncs on (`false` with `--durability none`: a durable commit then writes its
    /// pages and header like any other, but leaves them in the OS page cache).
    sync: bool,
    /// Where the durations of the fsyncs passed on are recorded (`/metrics`).
    timer: Option<Histogram>,
    /// Runs an armed fsync in the background (the database file of a node on disk).
    background: Option<BackgroundSync>,
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

impl CrashableFile {
    /// `inner` with its fsyncs passed on and an armed one run by `background` (the
    /// simulation's disks, with a [`BackgroundSync::manual`]).
    pub fn with_background(
        inner: Arc<dyn StorageBackend>,
        background: BackgroundSync,
    ) -> CrashableFile {
        CrashableFile {
            inner,
            switch: CrashSwitch::default(),
            sync: true,
            timer: None,
            background: Some(background),
        }
    }

    /// Waits for a background fsync to finish, if one runs (see the module docs).
    fn settle(&self) -> io::Result<()> {
        match &self.background {
            Some(bg) => bg.wait().map(drop),
            None => Ok(()),
        }
    }

    /// fsyncs, timing it.
    fn fsync(inner: &dyn StorageBackend, timer: Option<&Histogram>) -> io::Result<()> {
        let start = std::time::Instant::now();
        let done = inner.sync_data();
        if let Some(timer) = timer {
            timer.observe(start.elapsed().as_secs_f64());
        }
        done
    }

    /// Starts the armed fsync on a thread of its own. `false` if none was armed.
    fn fsync_in_background(&self) -> io::Result<bool> {
        let Some(bg) = &self.background else {
            return Ok(false);
        };
        let mut state = bg.wait()?;
        if !std::mem::take(&mut state.armed) {
            return Ok(false);
        }
        state.running = true;
        if state.manual {
            state.pending = Some(self.inner.clone());
            return Ok(true);
        }
        drop(state);
        let (inner, timer, shared) = (self.inner.clone(), self.timer.clone(), bg.clone());
        let spawned = std::thread::Builder::new()
            .name("redb-fsync".into())
            .spawn(move || {
                let done = CrashableFile::fsync(inner.as_ref(), timer.as_ref());
                shared.finish(&done);
            });
        if let Err(e) = spawned {
            // No thread: fsync here, as without a background sync.
            tracing::warn!("cannot start a thread for a checkpoint's fsync ({e}); fsyncing inline");
            let done = CrashableFile::fsync(self.inner.as_ref(), self.timer.as_ref());
            bg.finish(&done);
            done?;
        }
        Ok(true)
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
        self.settle()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        if !self.sync || self.fsync_in_background()? {
            return Ok(());
        }
        self.settle()?;
        CrashableFile::fsync(self.inner.as_ref(), self.timer.as_ref())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.settle()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        // A background fsync finishes before the file is let go (its outcome no longer
        // matters here: the node has stopped). Always release the file's locks, crashed or
        // not, so the node can be restarted.
        let _ = self.settle();
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
    let background = sync.then(BackgroundSync::default);
    let db = open_db(path, sync, &switch, timer.clone(), background.clone())?;
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
    let items = [slot(ITEM_FILES[0])?, slot(ITEM_FILES[1])?];
    if sync {
        // A file just created is durable only once its directory entry is: fsynced data in a
        // file a power loss unlinks is lost all the same.
        sync_dir(dir)?;
    }
    Ok(NodeStorage {
        db,
        log,
        items,
        switch,
        background,
    })
}

/// fsyncs directory `dir`, making the files created in it durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| cannot_open(dir, &e))
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
        inner: Arc::new(FileBackend::new(file).map_err(|e| cannot_open(&e))?),
        switch: switch.clone(),
        sync,
        timer,
        background: None,
    })
}

fn open_db(
    path: &Path,
    sync: bool,
    switch: &CrashSwitch,
    timer: Option<Histogram>,
    background: Option<BackgroundSync>,
) -> Result<Database> {
    let mut backend = open_file(path, sync, switch, timer)?;
    backend.background = background;
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
    let db = open_db(path, sync, &switch, None, None)?;
    if sync {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
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
            inner: Arc::new(file.clone()),
            switch: switch.clone(),
            sync: false,
            timer: None,
            background: None,
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
        inner: Arc::new(f.clone()),
        switch: switch.clone(),
        sync: false,
        timer: None,
        background: None,
    };
    let db = Database::builder()
        .create_with_backend(file(&disk.db))
        .map_err(|e| Error::internal(format!("cannot open an in-memory database: {e}")))?;
    let log: [Slot; 2] = [Box::new(file(&disk.log[0])), Box::new(file(&disk.log[1]))];
    let items: [Slot; 2] = [
        Box::new(file(&disk.items[0])),
        Box::new(file(&disk.items[1])),
    ];
    Ok(NodeStorage {
        db,
        log,
        items,
        switch,
        background: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::TableDefinition;
    use std::time::{Duration, Instant};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn put(db: &Database, k: u64, durable: bool) {
        let mut txn = db.begin_write().expect("begin");
        if !durable {
            txn.set_durability(redb::Durability::None)
                .expect("durability");
        }
        txn.open_table(T)
            .expect("table")
            .insert(k, k)
            .expect("insert");
        txn.commit().expect("commit");
    }

    /// An armed fsync runs on its own thread and is counted when it finishes; the commit after
    /// it waits for it, and what both committed is in the file when it is opened again.
    #[test]
    fn an_armed_fsync_runs_in_the_background_and_the_next_durable_commit_waits_for_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("node.redb");
        {
            let storage = open(&path, true, None).expect("open");
            let bg = storage
                .background
                .clone()
                .expect("a disk with fsync has one");
            bg.arm();
            put(&storage.db, 1, true);
            bg.disarm();
            put(&storage.db, 2, false);
            let deadline = Instant::now() + Duration::from_secs(10);
            while bg.finished().expect("fsync") < 1 {
                assert!(
                    Instant::now() < deadline,
                    "the background fsync never finished"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(!bg.running());
            put(&storage.db, 3, true);
            assert_eq!(
                bg.finished().expect("fsync"),
                1,
                "only the armed fsync ran apart"
            );
        }
        let storage = open(&path, true, None).expect("reopen");
        let txn = redb::ReadableDatabase::begin_read(&storage.db).expect("read");
        let table = txn.open_table(T).expect("table");
        for k in 1..=3 {
            assert!(table.get(k).expect("get").is_some(), "{k} lost");
        }
    }

    /// A manual background sync (the simulation's) holds the fsync until asked, or until the
    /// file's next write needs it done.
    #[test]
    fn a_manual_background_sync_runs_when_asked_or_before_the_next_write() {
        let bg = BackgroundSync::manual();
        let db = Database::builder()
            .create_with_backend(CrashableFile::with_background(
                Arc::new(InMemoryBackend::new()),
                bg.clone(),
            ))
            .expect("db");
        bg.arm();
        put(&db, 1, true);
        bg.disarm();
        assert!(bg.running(), "the fsync waits");
        assert_eq!(bg.finished().expect("ok"), 0);
        bg.run_pending().expect("run");
        assert_eq!(bg.finished().expect("ok"), 1);
        bg.arm();
        put(&db, 2, true);
        bg.disarm();
        assert!(bg.running());
        // The next durable commit writes pages: the pending fsync runs first.
        put(&db, 3, true);
        assert!(!bg.running());
        assert_eq!(bg.finished().expect("ok"), 2);
    }
}
