//! The `kvsim` command line: `server` runs the cluster; every other subcommand is a client of a
//! node's HTTP API (DynamoDB JSON plus `/status`) and never touches server internals.
//!
//! - [`client`]: requests with leader hints followed;
//! - [`plain`]: plain JSON items and typed key values from the command line;
//! - [`render`]: tables and JSON output;
//! - [`commands`]: one file per subcommand.

/// `println!` for command output: a closed pipe (`kvsim scan ... | head`) ends the process
/// quietly, as Unix tools do, and any other write error (a full disk) becomes an [`Error`]
/// instead of a panic. Only for functions returning [`Result`].
macro_rules! outln {
    () => {
        $crate::cli::render::write_stdout(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cli::render::write_stdout(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

pub mod client;
pub mod commands;
pub mod patch;
pub mod plain;
pub mod render;
mod server;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::cli::client::Client;
use crate::cli::commands::{
    batch_write, bench, create_table, delete_item, delete_table, describe_table, edit, events,
    fault, get_item, list_tables, put_item, query_items, scan, shell, sim, sql, status, stream,
    transact_write, transfer_leader, ttl, update_item, watch,
};
use crate::config::{DEFAULT_BASE_PORT, DEFAULT_DATA_ROOT};
use crate::{Error, Result};

/// Exit code: the request failed (invalid input, or the server rejected it).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: the command line itself is wrong (clap's usage errors).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: retrying later may work (unreachable, no leader, or a retryable error).
pub const EXIT_UNAVAILABLE: i32 = 3;
/// Exit code: `get-item` found no item with that key.
pub const EXIT_NOT_FOUND: i32 = 4;
/// Exit code: the CLI itself failed (it could not read an answer, or start at all).
pub const EXIT_INTERNAL: i32 = 5;
/// Exit code: a condition was false (a conditional write, or a cancelled transaction).
pub const EXIT_CONDITION: i32 = 6;
/// Exit code: `edit` gave up after `--max-retries` conflicts.
pub const EXIT_RETRIES_EXHAUSTED: i32 = 7;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the request failed: invalid input, or the server rejected it (e.g. no such table)
  2  invalid command line
  3  retrying later may work: the cluster could not be reached, has no leader, or
     answered an error DynamoDB's clients retry (throttling, a transaction conflict, an
     internal server error), injected faults included
  4  get-item: no item with that key
  5  the CLI itself failed (e.g. an answer it could not read)
  6  a condition was false: --condition-expression, or a cancelled transaction; nothing
     was written
  7  edit: the item kept changing; --max-retries conflicts were retried, nothing written";

/// kvsim: a DynamoDB-style database simulator on a local three-node Raft cluster (or a
/// leaderless one, `server --mode dynamo`).
#[derive(Debug, Parser)]
#[command(name = "kvsim", version, about, after_help = EXIT_CODES)]
pub struct Args {
    /// Log lines as text or as JSON objects, one a line (for log collectors). Logs go to
    /// stderr; `RUST_LOG` sets what is logged (`warn` by default; `kvsim=debug` adds every
    /// request with its id, operation, table, outcome and duration).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

impl Args {
    /// Whether `kvsim shell` may run this command (not a server, not another shell).
    pub fn runs_in_shell(&self) -> bool {
        !matches!(self.command, Command::Server(_) | Command::Shell(_))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, with the request's span fields.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local three-node cluster (nodes on --base-port, +1, +2), or with --mode dynamo
    /// a leaderless one of --nodes nodes.
    Server(ServerArgs),
    /// Create a table with a partition key and an optional sort key.
    #[command(after_help = EXIT_CODES)]
    CreateTable(create_table::Args),
    /// Delete a table and all its items.
    #[command(after_help = EXIT_CODES)]
    DeleteTable(delete_table::Args),
    /// List every table.
    #[command(after_help = EXIT_CODES)]
    ListTables(list_tables::Args),
    /// Show a table's schema, status and size.
    #[command(after_help = EXIT_CODES)]
    DescribeTable(describe_table::Args),
    /// Show a table's time to live, or turn it on (--enable ATTRIBUTE) or off (--disable).
    #[command(after_help = EXIT_CODES)]
    Ttl(ttl::Args),
    /// Show a table's DynamoDB stream, or enable (--enable VIEW) or disable (--disable) it.
    #[command(after_help = EXIT_CODES)]
    Stream(stream::Args),
    /// Follow a table's changes live (its stream), with each diff as JSON Patch or Merge Patch.
    #[command(after_help = EXIT_CODES)]
    Watch(watch::Args),
    /// Change an item under optimistic concurrency: read it and its version, change it, write
    /// it back only if the version is unchanged, retrying conflicts with backoff.
    #[command(after_help = EXIT_CODES)]
    Edit(edit::Args),
    /// Write an item (plain JSON, or DynamoDB-typed JSON with --item-data-typed).
    #[command(after_help = EXIT_CODES)]
    PutItem(put_item::Args),
    /// Read one item by key (exit code 4 if there is none).
    #[command(after_help = EXIT_CODES)]
    GetItem(get_item::Args),
    /// Delete one item by key.
    #[command(after_help = EXIT_CODES)]
    DeleteItem(delete_item::Args),
    /// Change one item with an update expression (SET, REMOVE, ADD, DELETE), optionally
    /// under a condition; creates it if absent.
    #[command(after_help = EXIT_CODES)]
    UpdateItem(update_item::Args),
    /// Write up to 25 puts and deletes from a file of DynamoDB JSON, as one batch.
    #[command(after_help = EXIT_CODES)]
    BatchWrite(batch_write::Args),
    /// Apply up to 100 actions from a file of DynamoDB JSON, all or nothing.
    #[command(after_help = EXIT_CODES)]
    TransactWrite(transact_write::Args),
    /// Read one partition in sort-key order, optionally narrowed by a sort-key condition.
    #[command(after_help = EXIT_CODES)]
    QueryItems(query_items::Args),
    /// Read every item of a table.
    #[command(after_help = EXIT_CODES)]
    Scan(scan::Args),
    /// Run one PartiQL statement: SELECT, INSERT, UPDATE or DELETE.
    #[command(after_help = EXIT_CODES)]
    Sql(sql::Args),
    /// Show every node's Raft status, or in --mode dynamo its view of who is alive and the
    /// hints it holds (or one node's with --target-addr); --watch redraws it.
    #[command(after_help = EXIT_CODES)]
    Status(status::Args),
    /// Inject faults: crash, restart, isolate, partition, delay, drop, errors, heal, list.
    #[command(after_help = EXIT_CODES)]
    Fault(fault::Args),
    /// Ask the leader to hand leadership to another node.
    #[command(after_help = EXIT_CODES)]
    TransferLeader(transfer_leader::Args),
    /// Show the cluster's recent events (elections, crashes, faults, snapshots), merged by time.
    #[command(after_help = EXIT_CODES)]
    Events(events::Args),
    /// Measure PutItem/GetItem throughput and latency against a running server.
    Bench(bench::Args),
    /// Run the deterministic simulation over many seeds, checking every invariant.
    Sim(sim::Args),
    /// An interactive console: client commands without the `kvsim` prefix, history, tab
    /// completion, `use TABLE`.
    Shell(shell::Args),
    /// Print a shell completion script: `source <(kvsim completions bash)`, or save it where
    /// your shell loads completions from.
    Completions(CompletionsArgs),
}

/// Arguments of `kvsim completions`.
#[derive(Debug, clap::Args)]
struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Options every client command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Node to send the request to, HOST:PORT. Writes and consistent reads follow the leader
    /// hint from there to the leader.
    #[arg(
        long,
        env = "KVSIM_TARGET_ADDR",
        default_value = "localhost:8100",
        global = true,
        value_parser = client::parse_addr
    )]
    pub target_addr: String,
    /// Output format: a table for people, or plain JSON for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// Print leader redirects and retries on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// Options of `kvsim server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Directory holding node0, node1, node2 (created if missing).
    #[arg(long, env = "DATA_DIR", default_value = DEFAULT_DATA_ROOT)]
    pub data_dir_root: PathBuf,
    /// Port of node 1; nodes 2 and 3 use the next two ports.
    #[arg(long, default_value_t = DEFAULT_BASE_PORT)]
    pub base_port: u16,
    /// Interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Raft tick interval in milliseconds (elections take 10-20 ticks, heartbeats every 2).
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,
    /// Compact the Raft log every this many applied entries.
    #[arg(long, default_value_t = 10_000)]
    pub compact_every: u64,
    /// Entries kept in the log after compaction.
    #[arg(long, default_value_t = 1_000)]
    pub log_retain: u64,
    /// Refuse every fault injection command (crash, partition, delay, errors, ...).
    #[arg(long)]
    pub no_faults: bool,
    /// Accept simulator control requests (/admin/...) from other hosts, not only loopback.
    #[arg(long)]
    pub admin_remote: bool,
    /// Leave a failed node failed (a panic or storage fault) instead of restarting it; for
    /// demos that want to watch a dead node. Nodes crashed on purpose are never restarted.
    #[arg(long)]
    pub no_auto_restart: bool,
    /// Most automatic restarts of one node within --restart-period-secs; past that it stays
    /// failed and its status says why.
    #[arg(long, default_value_t = 3)]
    pub max_restarts: u32,
    /// The window, in seconds, that --max-restarts counts restarts in.
    #[arg(long, default_value_t = 60)]
    pub restart_period_secs: u64,
    /// Keep every node's data in memory: no data files, nothing survives the server (for test
    /// suites that want speed). A node crashed with `kvsim fault crash` keeps its memory.
    #[arg(long, conflicts_with = "durability")]
    pub in_memory: bool,
    /// When a write is durable: `fsync` (acknowledged once a majority has fsynced it) or `none`
    /// (written to the OS page cache only: survives a killed process, not a power loss).
    #[arg(long, value_enum, default_value_t = Durability::Fsync)]
    pub durability: Durability,
    /// Send raft messages between the nodes over loopback HTTP (each node's
    /// `/internal/raft/stream`), as nodes in separate processes would. By default nodes of one
    /// process hand messages straight to each other: same faults, less CPU per write.
    #[arg(long)]
    pub raft_over_http: bool,
    /// Turn leader leases off: every batch of consistent reads (ConsistentRead) then takes a
    /// ReadIndex round to a majority, assuming nothing about clocks. With leases (the default)
    /// the leader answers them without a round while a recent round guarantees no other
    /// leader can exist (for 9/10 of nine ticks after it), assuming the nodes' clocks run at
    /// the same rate (true in one process), and a node restarted by a fault or the supervisor
    /// waits one election timeout before it votes.
    #[arg(long)]
    pub no_lease_reads: bool,
    /// How often, in milliseconds, the leader looks for items whose time to live has passed
    /// (UpdateTimeToLive) and deletes them through the log. DynamoDB takes up to a few days;
    /// a simulator deletes them within about this long (a large table takes a few rounds).
    #[arg(long, default_value_t = 1000)]
    pub ttl_interval_ms: u64,
    /// How long, in seconds, DynamoDB Streams records are kept before they are trimmed
    /// (DynamoDB keeps them 24 hours). Reading before the oldest kept record is
    /// `TrimmedDataAccessException`.
    #[arg(long, default_value_t = 86_400)]
    pub stream_retention_secs: u64,
    /// Log entries each shard of a DynamoDB stream covers: a stream gets a new shard (its
    /// child) once the log has moved this far (DynamoDB rolls shards every few hours).
    /// Applies to streams enabled from then on.
    #[arg(long, default_value_t = 100_000)]
    pub stream_shard_entries: u64,
    /// Items each node keeps decoded in its read cache for eventually consistent GetItems
    /// (0: no cache). A write applied on the node evicts its item first, so the cache never
    /// answers older than the node's own state. Hits and misses are in `status`.
    #[arg(long, default_value_t = 0)]
    pub cache_items: usize,
    /// Longest a cached item is served, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub cache_ttl_ms: u64,
    /// The replication engine: `raft` (a leader orders every write; a minority refuses
    /// writes and never diverges) or `dynamo` (leaderless: any node coordinates, quorums of
    /// replicas on a hash ring, vector clocks, hinted handoff; a minority keeps accepting
    /// writes, diverges, and converges after healing).
    #[arg(long, value_enum, default_value_t = Mode::Raft)]
    pub mode: Mode,
    /// `--mode dynamo`: how many nodes (3 to 9), on consecutive ports from --base-port.
    #[arg(long, default_value_t = 5)]
    pub nodes: u64,
    /// `--mode dynamo`: replicas of each item (N).
    #[arg(long, default_value_t = 3)]
    pub replicas: usize,
    /// `--mode dynamo`: replicas a read waits for (R); R + W > N makes a read see the latest
    /// acknowledged write while no node fails.
    #[arg(long, default_value_t = 2)]
    pub read_quorum: usize,
    /// `--mode dynamo`: replicas that must have fsynced a write before it is acknowledged (W).
    #[arg(long, default_value_t = 2)]
    pub write_quorum: usize,
    /// `--mode dynamo`: what concurrent versions of an item become: `lww` (the latest
    /// timestamp wins) or `vector` (kept as siblings, merged at read: maps and sets united).
    #[arg(long, default_value = "lww")]
    pub merger: String,
    /// `--mode dynamo`: seconds a deletion's tombstone is kept before it may be collected;
    /// a replica away for longer than this can bring a deleted item back.
    #[arg(long, default_value_t = 86_400)]
    pub tombstone_gc_secs: u64,
}

/// `kvsim server --mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Raft: one leader, majority quorums (the default).
    Raft,
    /// Leaderless, after Amazon's Dynamo paper.
    Dynamo,
}

/// `kvsim server --durability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Fsync before acknowledging (the default).
    Fsync,
    /// Never fsync.
    None,
}

/// Output format of client commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A human-readable table.
    Table,
    /// Plain JSON, stable for scripts.
    Json,
}

/// A key attribute type on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    /// String.
    #[value(name = "S")]
    S,
    /// Number.
    #[value(name = "N")]
    N,
    /// Binary (values given as base64).
    #[value(name = "B")]
    B,
}

impl KeyTypeArg {
    /// DynamoDB's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyTypeArg::S => "S",
            KeyTypeArg::N => "N",
            KeyTypeArg::B => "B",
        }
    }
}

/// Runs the parsed command and returns the process exit code.
///
/// # Errors
/// Anything the command reports; `main` prints it as one line.
pub fn run(args: Args) -> Result<i32> {
    let command = match args.command {
        Command::Server(a) => return server::run(a).map(|()| 0),
        Command::Bench(a) => return bench::run(a).map(|()| 0),
        Command::Sim(a) => return sim::run(a),
        Command::Shell(a) => return shell::run(a),
        Command::Completions(a) => {
            use clap::CommandFactory;
            let mut command = Args::command();
            // Into memory first: the generator panics on a failed write (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut command, "kvsim", &mut script);
            use std::io::Write;
            return match std::io::stdout().lock().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::internal(format!("cannot write the script: {e}")))
                }
                _ => Ok(0),
            };
        }
        other => other,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let client = |c: &Common| Client::new(&c.target_addr, c.verbose);
        match command {
            Command::CreateTable(a) => create_table::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::DeleteTable(a) => delete_table::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::ListTables(a) => list_tables::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::DescribeTable(a) => describe_table::run(&client(&a.common)?, a)
                .await
                .map(|()| 0),
            Command::Ttl(a) => ttl::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::Stream(a) => stream::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::Watch(a) => watch::run(&client(&a.common)?, a).await,
            Command::Edit(a) => edit::run(&client(&a.common)?, a).await,
            Command::PutItem(a) => put_item::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::GetItem(a) => get_item::run(&client(&a.common)?, a).await,
            Command::DeleteItem(a) => delete_item::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::UpdateItem(a) => update_item::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::BatchWrite(a) => batch_write::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::TransactWrite(a) => transact_write::run(&client(&a.common)?, a)
                .await
                .map(|()| 0),
            Command::QueryItems(a) => query_items::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::Scan(a) => scan::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::Sql(a) => sql::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::Status(a) => status::run(a).await.map(|()| 0),
            Command::Fault(a) => fault::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::TransferLeader(a) => transfer_leader::run(&client(&a.common)?, a)
                .await
                .map(|()| 0),
            Command::Events(a) => events::run(&client(&a.common)?, a).await.map(|()| 0),
            Command::Server(_)
            | Command::Bench(_)
            | Command::Sim(_)
            | Command::Completions(_)
            | Command::Shell(_) => Ok(0),
        }
    })
}

/// A clap usage error as one line: the message and any "possible values", without the usage
/// block (which `--help` shows).
pub fn one_line_usage_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    format!("{} (see --help)", parts.join(" "))
}

/// Parses a count of at least 1.
///
/// # Errors
/// A message saying what was expected.
pub fn positive(s: &str) -> std::result::Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, got '{s}'")),
    }
}

/// Parses a fraction from 0 to 1 (a rate).
///
/// # Errors
/// A message saying what was expected.
pub fn fraction(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "expected a fraction from 0 to 1, like 0.1 for 10%, got '{s}'"
        )),
    }
}

/// The process exit code for an error (see `kvsim --help`).
pub fn exit_code(e: &Error) -> i32 {
    match e {
        // Server errors reach the CLI as their own kinds; an `Internal` one is the CLI's own.
        Error::Internal(_) => EXIT_INTERNAL,
        Error::ConditionalCheckFailed { .. } | Error::TransactionCanceled { .. } => EXIT_CONDITION,
        // Everything DynamoDB calls retryable: unavailable, throttled, conflicting, a
        // server's internal error.
        e if e.kind().retryable => EXIT_UNAVAILABLE,
        _ => EXIT_FAILED,
    }
}
