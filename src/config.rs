//! Where nodes live and how fast they run: node ids, ports, data directories, and the Raft
//! timing and compaction tunables, each a named value with its unit.

use std::path::PathBuf;
use std::time::Duration;

use crate::raft::NodeId;
use crate::{Error, Result};

/// Nodes in a local cluster.
pub const NODE_COUNT: u64 = 3;
/// First client port; node `i` (0-based) listens on `DEFAULT_BASE_PORT + i`.
pub const DEFAULT_BASE_PORT: u16 = 8100;
/// Default root of the node data directories.
pub const DEFAULT_DATA_ROOT: &str = "data";

/// Raft timing and log compaction.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Interval between Raft ticks.
    pub tick: Duration,
    /// Ticks before a follower without a leader campaigns (randomised up to twice this).
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// How long a write may wait to commit before failing with a retryable error.
    pub proposal_timeout: Duration,
    /// How long a consistent read may wait for the leader to confirm itself.
    pub read_timeout: Duration,
    /// Compact the Raft log every this many applied entries.
    pub compact_every: u64,
    /// Applied entries kept after compaction for followers slightly behind.
    pub log_retain: u64,
    /// Most client and peer connections one node holds open; a connection beyond them is
    /// answered `ServiceUnavailable` and closed at once.
    pub max_connections: usize,
    /// A connection that does not send a complete request head within this long (a slow or
    /// half-open client, or an idle keep-alive connection) is closed.
    pub header_timeout: Duration,
    /// Send raft messages between the nodes of this process over loopback HTTP, as nodes in
    /// separate processes would, instead of handing them straight to each other's inbox.
    pub raft_over_http: bool,
    /// Leader leases for consistent reads (see [`crate::raft::lease`]).
    pub lease_reads: bool,
    /// How often the leader looks for items whose time to live has passed and deletes them
    /// (and for stream records past their retention).
    pub ttl_interval: Duration,
    /// How long stream records are kept (DynamoDB's 24 hours).
    pub stream_retention: Duration,
    /// Log entries per shard of a stream enabled from now on.
    pub stream_shard_entries: u64,
    /// Items each node's read cache holds for eventually consistent GetItems (0: no cache).
    pub cache_items: usize,
    /// How long a cached item may be served.
    pub cache_ttl: Duration,
}

/// Longest `--ttl-interval-ms` accepted (a day).
pub const MAX_TTL_INTERVAL: Duration = Duration::from_secs(86_400);

/// Most items `--cache-items` may ask each node to cache.
pub const MAX_CACHE_ITEMS: usize = 10_000_000;

/// Longest `--stream-retention-secs` accepted (a year).
pub const MAX_STREAM_RETENTION: Duration = Duration::from_secs(366 * 86_400);

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            proposal_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(3),
            compact_every: 10_000,
            log_retain: 1_000,
            max_connections: 2048,
            header_timeout: Duration::from_secs(5),
            raft_over_http: false,
            lease_reads: true,
            ttl_interval: Duration::from_secs(1),
            stream_retention: Duration::from_secs(24 * 3600),
            stream_shard_entries: 100_000,
            cache_items: 0,
            cache_ttl: Duration::from_secs(10),
        }
    }
}

/// Most entries `--compact-every` and `--log-retain` may name: far beyond any useful value,
/// and small enough that index arithmetic on them can never overflow.
pub const MAX_LOG_ENTRIES: u64 = 1_000_000_000;
/// Longest Raft tick accepted (a minute: elections would take ten).
pub const MAX_TICK: Duration = Duration::from_secs(60);

impl Tuning {
    /// Checks every setting is in its range, naming the server flag that sets it.
    ///
    /// # Errors
    /// `Validation` naming the flag, its range and the value given.
    pub fn validate(&self) -> Result<()> {
        let tick_ms = self.tick.as_millis();
        if self.tick.is_zero() || self.tick > MAX_TICK {
            return Err(Error::validation(format!(
                "--tick-ms must be between 1 and {}, got {tick_ms}",
                MAX_TICK.as_millis()
            )));
        }
        if self.max_connections == 0 || self.header_timeout.is_zero() {
            return Err(Error::validation(
                "a node must accept at least one connection, for more than no time",
            ));
        }
        if self.ttl_interval.is_zero() || self.ttl_interval > MAX_TTL_INTERVAL {
            return Err(Error::validation(format!(
                "--ttl-interval-ms must be between 1 and {}, got {}",
                MAX_TTL_INTERVAL.as_millis(),
                self.ttl_interval.as_millis()
            )));
        }
        if self.stream_retention.is_zero() || self.stream_retention > MAX_STREAM_RETENTION {
            return Err(Error::validation(format!(
                "--stream-retention-secs must be between 1 and {}, got {}",
                MAX_STREAM_RETENTION.as_secs(),
                self.stream_retention.as_secs()
            )));
        }
        if self.cache_items > MAX_CACHE_ITEMS || (self.cache_items > 0 && self.cache_ttl.is_zero())
        {
            return Err(Error::validation(format!(
                "--cache-items must be at most {MAX_CACHE_ITEMS} (got {}), with a --cache-ttl-ms above 0",
                self.cache_items
            )));
        }
        if !(1..=MAX_LOG_ENTRIES).contains(&self.stream_shard_entries) {
            return Err(Error::validation(format!(
                "--stream-shard-entries must be between 1 and {MAX_LOG_ENTRIES}, got {}",
                self.stream_shard_entries
            )));
        }
        for (flag, value, least) in [
            ("--compact-every", self.compact_every, 1),
            ("--log-retain", self.log_retain, 0),
        ] {
            if !(least..=MAX_LOG_ENTRIES).contains(&value) {
                return Err(Error::validation(format!(
                    "{flag} must be between {least} and {MAX_LOG_ENTRIES}, got {value}"
                )));
            }
        }
        Ok(())
    }

    /// `d` in ticks, at least one.
    pub fn ticks(&self, d: Duration) -> u64 {
        let tick = self.tick.as_micros().max(1);
        u64::try_from(d.as_micros().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// Where each node keeps its data, and how durably.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Storage {
    /// A redb file per node; a write is acknowledged only once a majority has fsynced it.
    #[default]
    Fsync,
    /// A redb file per node, never fsynced (`--durability none`): writes reach the OS page
    /// cache only. A killed kvsim process loses nothing (the OS still writes the pages out); a
    /// power loss or kernel crash can lose acknowledged writes, on every node at once.
    NoFsync,
    /// In memory (`--in-memory`): no data files at all, and nothing survives the process. A
    /// node crashed with `kvsim fault crash` keeps its memory and comes back with everything
    /// it had, like a paused process rather than a power loss.
    Memory,
}

impl Storage {
    /// Whether commits fsync.
    pub fn fsyncs(self) -> bool {
        self == Storage::Fsync
    }
}

/// A local cluster's layout.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Directory holding `node0`, `node1`, `node2`.
    pub data_root: PathBuf,
    /// Interface the nodes listen on.
    pub host: String,
    /// Port of node 1; the others follow. 0 picks free ports (tests).
    pub base_port: u16,
    /// Raft timing.
    pub tuning: Tuning,
    /// How failed nodes are restarted.
    pub supervision: Supervision,
    /// Where and how durably the nodes keep their data.
    pub storage: Storage,
}

/// How the supervisor restarts a node that failed (a panic or a storage fault; never one
/// crashed on purpose): after a backoff that doubles with each recent restart, and at most
/// `max_restarts` times within `period`, as an OTP supervisor's restart intensity. Beyond
/// that the node stays failed, and its status says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Supervision {
    /// Restart failed nodes at all (`--no-auto-restart` turns it off).
    pub auto_restart: bool,
    /// Most restarts of one node within `period` (`--max-restarts`).
    pub max_restarts: u32,
    /// The window restarts are counted in (`--restart-period-secs`).
    pub period: Duration,
    /// Wait before the first restart; each further recent restart doubles it, up to
    /// [`MAX_RESTART_BACKOFF`].
    pub backoff: Duration,
}

/// Longest wait before a restart.
pub const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(10);

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            auto_restart: true,
            max_restarts: 3,
            period: Duration::from_secs(60),
            backoff: Duration::from_millis(200),
        }
    }
}

impl Supervision {
    /// The wait before a restart, when `recent` restarts happened within the period.
    pub fn backoff_after(&self, recent: usize) -> Duration {
        let factor = 1u32 << recent.min(16);
        self.backoff
            .checked_mul(factor)
            .unwrap_or(MAX_RESTART_BACKOFF)
            .min(MAX_RESTART_BACKOFF)
    }
}

impl ClusterConfig {
    /// The ids of every node, ascending.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> {
        1..=NODE_COUNT
    }

    /// Data directory of node `id` (`node0` holds node 1, as in the seed's layout).
    pub fn node_dir(&self, id: NodeId) -> PathBuf {
        self.data_root.join(format!("node{}", id - 1))
    }

    /// Address node `id` should bind (port 0 when the base port is 0).
    pub fn bind_addr(&self, id: NodeId) -> String {
        let port = if self.base_port == 0 {
            0
        } else {
            u64::from(self.base_port) + id - 1
        };
        format!("{}:{port}", self.host)
    }
}
