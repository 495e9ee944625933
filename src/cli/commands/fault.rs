//! `kvsim fault ...`: the simulator's controls. Crash and restart nodes, cut and slow the
//! network between them, make DynamoDB operations fail at a rate, make global indexes lag,
//! and list what is in force.
//! Commands go to any live node (the target, or a neighbour if the target is down) and act on
//! the whole cluster; they affect node-to-node traffic only, so clients can still reach every
//! node and watch what a fault does to it.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::cli::client::Client;
use crate::cli::commands::node_addrs;
use crate::cli::render::{print_json, table};
use crate::cli::{Common, Output};
use crate::{Error, Result};

/// Options of `fault`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
    #[command(flatten)]
    pub common: Common,
}

/// One fault command.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Crash node N: its thread ends and only what it had written survives, as after kill -9;
    /// its port stops answering (in --mode dynamo it answers ServiceUnavailable).
    Crash {
        /// The node to crash.
        #[arg(long)]
        node: u64,
    },
    /// Restart a crashed or failed node from its data directory.
    Restart {
        /// The node to restart.
        #[arg(long)]
        node: u64,
    },
    /// Make node N's disk fail every write, as a dying disk does: the node stops with a
    /// storage fault at its next write, and the supervisor restarts it (on a working disk,
    /// unless --sticky).
    Disk {
        /// The node whose disk fails.
        #[arg(long)]
        node: u64,
        /// The disk fails again after every restart, until `fault heal`: the supervisor gives
        /// up after --max-restarts restarts.
        #[arg(long)]
        sticky: bool,
    },
    /// Cut node N off from the other nodes (clients can still reach it).
    Isolate {
        /// The node to isolate.
        #[arg(long)]
        node: u64,
    },
    /// Split the nodes into groups that cannot reach each other, e.g. `partition 1,2 3`.
    Partition {
        /// Two or more comma-separated groups naming every node once.
        #[arg(required = true, num_args = 2.., value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// Delay messages to and from node N.
    Delay {
        /// The node whose links are slowed.
        #[arg(long)]
        node: u64,
        /// Delay in milliseconds (0 removes it).
        #[arg(long)]
        ms: u64,
        /// Up to this many milliseconds more, at random.
        #[arg(long, default_value_t = 0)]
        jitter_ms: u64,
    },
    /// Lose a fraction of the messages to and from node N.
    Drop {
        /// The node whose links lose messages.
        #[arg(long)]
        node: u64,
        /// Fraction of messages lost, 0 to 1 (0 removes the fault).
        #[arg(long, allow_negative_numbers = true, value_parser = crate::cli::fraction)]
        rate: f64,
    },
    /// Make a DynamoDB operation fail with a DynamoDB error at a rate, to test client retries.
    Errors {
        /// Operation name such as PutItem, or * for every operation.
        #[arg(long, required_unless_present = "clear")]
        op: Option<String>,
        /// ProvisionedThroughputExceededException, ThrottlingException,
        /// TransactionConflictException, RequestLimitExceeded, InternalServerError or
        /// ServiceUnavailable.
        #[arg(long, required_unless_present = "clear")]
        error: Option<String>,
        /// Fraction of requests that fail, 0 to 1 (0 removes the rule). Each operation may have
        /// several rules, one per error.
        #[arg(
            long,
            required_unless_present = "clear",
            allow_negative_numbers = true,
            value_parser = crate::cli::fraction
        )]
        rate: Option<f64>,
        /// Remove every error injection rule instead.
        #[arg(long, conflicts_with_all = ["op", "error", "rate"])]
        clear: bool,
    },
    /// Make a table's global secondary indexes lag behind it, as DynamoDB's do: a Query or
    /// Scan on the index answers, on every node, from the index as it was this long ago.
    /// Local indexes never lag.
    GsiLag {
        /// The table.
        #[arg(long)]
        table: String,
        /// Only this global index (default: every global index of the table).
        #[arg(long)]
        index: Option<String>,
        /// The lag in milliseconds (0 removes it).
        #[arg(long)]
        ms: u64,
    },
    /// Remove every network fault (partitions, delays, losses), sticky disk failure and GSI
    /// lag.
    Heal,
    /// Show every fault in force.
    List,
}

fn groups(texts: &[String]) -> Result<Vec<Vec<u64>>> {
    texts
        .iter()
        .map(|g| {
            g.split(',')
                .map(|n| {
                    n.trim().parse::<u64>().map_err(|_| {
                        Error::validation(format!(
                            "partition groups are comma-separated node ids like 1,2; got '{g}'"
                        ))
                    })
                })
                .collect()
        })
        .collect()
}

fn request(action: &Action) -> Result<(String, Option<Value>)> {
    let post = |path: &str, body: Value| Ok((path.to_string(), Some(body)));
    match action {
        Action::Crash { node } => post(&format!("/admin/nodes/{node}/crash"), json!({})),
        Action::Restart { node } => post(&format!("/admin/nodes/{node}/restart"), json!({})),
        Action::Disk { node, sticky } => {
            let action = if *sticky {
                "fail-disk-sticky"
            } else {
                "fail-disk"
            };
            post(&format!("/admin/nodes/{node}/{action}"), json!({}))
        }
        Action::Isolate { node } => post("/admin/faults/isolate", json!({"node": node})),
        Action::Partition { groups: g } => {
            post("/admin/faults/partition", json!({"groups": groups(g)?}))
        }
        Action::Delay {
            node,
            ms,
            jitter_ms,
        } => post(
            "/admin/faults/delay",
            json!({"node": node, "ms": ms, "jitter_ms": jitter_ms}),
        ),
        Action::Drop { node, rate } => {
            post("/admin/faults/drop", json!({"node": node, "rate": rate}))
        }
        Action::Errors { clear: true, .. } => post("/admin/faults/clear-errors", json!({})),
        Action::Errors {
            op, error, rate, ..
        } => post(
            "/admin/faults/errors",
            json!({"op": op, "error": error, "rate": rate}),
        ),
        Action::GsiLag { table, index, ms } => post(
            "/admin/faults/gsi-lag",
            json!({"table": table, "index": index, "ms": ms}),
        ),
        Action::Heal => post("/admin/faults/heal", json!({})),
        Action::List => Ok(("/admin/faults".to_string(), None)),
    }
}

/// Runs `fault`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let (path, body) = request(&args.action)?;
    let (mut addr, status) = client.live_node().await?;
    // A node crashing itself cannot confirm it is down; send the command through another live
    // node if there is one.
    if let Action::Crash { node } = args.action
        && status["node_id"].as_u64() == Some(node)
    {
        for (id, other) in node_addrs(&status) {
            if id != node && client.status(&other).await.is_ok() {
                addr = other;
                break;
            }
        }
    }
    let answer = client.admin(&addr, &path, body.as_ref()).await?;
    match args.common.output {
        Output::Json => print_json(&answer),
        Output::Table => {
            if let Some(applied) = answer["applied"].as_str() {
                outln!("{applied}.");
            }
            let faults: Vec<&str> = answer["faults"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let node_action = matches!(
                args.action,
                Action::Crash { .. } | Action::Restart { .. } | Action::Disk { .. }
            );
            if faults.is_empty() {
                if !node_action {
                    outln!("No faults in force.");
                }
            } else {
                let mut t = table(vec!["fault in force"]);
                for f in faults {
                    t.add_row(vec![f]);
                }
                outln!("{t}");
            }
            Ok(())
        }
    }
}
