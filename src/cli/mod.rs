//! The `kvsim` command line: `server` runs the cluster; the other subcommands are clients of a
//! node's HTTP API and never touch server internals.

mod bench;
mod server;
mod status;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{DEFAULT_BASE_PORT, DEFAULT_DATA_ROOT};
use crate::{Error, Result};

/// kvsim: a DynamoDB-style database simulator on a local three-node Raft cluster.
#[derive(Debug, Parser)]
#[command(name = "kvsim", version, about, long_about = None)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local three-node cluster (nodes on --base-port, +1, +2).
    Server(ServerArgs),
    /// Show a node's Raft status.
    Status(StatusArgs),
    /// Measure PutItem/GetItem throughput and latency against a running server.
    Bench(BenchArgs),
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
}

/// Output format of client commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A human-readable table.
    Table,
    /// Plain JSON, stable for scripts.
    Json,
}

/// Options of `kvsim status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Node to ask, HOST:PORT.
    #[arg(long, default_value = "localhost:8100")]
    pub target_addr: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Options of `kvsim bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Any node of the cluster, HOST:PORT.
    #[arg(long, default_value = "localhost:8100")]
    pub target_addr: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds per phase (puts, eventual gets, consistent gets).
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Bytes in each item's value attribute.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Runs the parsed command.
///
/// # Errors
/// Anything the command reports; `main` prints it as one line.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Server(a) => server::run(a),
        Command::Status(a) => status::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

/// The process exit code for an error: 1 for a rejected request, 2 for an unreachable or
/// unavailable cluster, 3 for an internal fault.
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Unavailable(_) | Error::NotLeader { .. } => 2,
        Error::Internal(_) => 3,
        _ => 1,
    }
}
