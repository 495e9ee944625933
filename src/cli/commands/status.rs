//! `kvsim status`: every node's Raft state as one table (the default), or one node's;
//! `--watch` redraws it twice a second so an election can be watched as it happens.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Result;
use crate::cli::Output;
use crate::cli::client::Client;
use crate::cli::commands::node_addrs;
use crate::cli::render::{print_json, table};

/// Where discovery starts when no `--target-addr` is given.
const DEFAULT_TARGET: &str = "localhost:8100";
/// How often `--watch` redraws.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Options of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show only this node (HOST:PORT). Without it, every node of the cluster is shown,
    /// discovered through $KVSIM_TARGET_ADDR or localhost:8100.
    #[arg(long)]
    pub target_addr: Option<String>,
    /// Show every node even when --target-addr is given (it is then where discovery starts).
    #[arg(long)]
    pub all: bool,
    /// Redraw every half second until interrupted.
    #[arg(long)]
    pub watch: bool,
    /// Output format: `json` prints the server's status document (an array for all nodes).
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The status of every node known to the first live node found from `client`'s target.
async fn all_statuses(client: &Client) -> Result<Vec<Value>> {
    let (_, first) = client.live_node().await?;
    let nodes = node_addrs(&first);
    let mut out = Vec::new();
    for (id, addr) in nodes {
        if Some(id) == first["node_id"].as_u64() {
            out.push(first.clone());
            continue;
        }
        match client.status(&addr).await {
            Ok(s) => out.push(s),
            Err(e) => out
                .push(json!({"node_id": id, "addr": addr, "role": "down", "error": e.to_string()})),
        }
    }
    Ok(out)
}

/// The status table, with fault and failure lines under it.
fn render(statuses: &[Value]) -> String {
    let leader_commit = statuses
        .iter()
        .find(|s| s["role"] == "leader")
        .or_else(|| statuses.iter().max_by_key(|s| s["commit_index"].as_u64()))
        .and_then(|s| s["commit_index"].as_u64());
    let mut t = table(vec![
        "node", "address", "role", "term", "leader", "commit", "applied", "lag",
    ]);
    for s in statuses {
        let lag = match (leader_commit, s["applied_index"].as_u64()) {
            (Some(c), Some(a)) => c.saturating_sub(a).to_string(),
            _ => "-".into(),
        };
        t.add_row(vec![
            text(&s["node_id"]),
            text(&s["addr"]),
            text(&s["role"]),
            text(&s["term"]),
            text(&s["leader_id"]),
            text(&s["commit_index"]),
            text(&s["applied_index"]),
            lag,
        ]);
    }
    let mut out = t.to_string();
    for s in statuses {
        if let Some(e) = s.get("error").or_else(|| s["health"].get("error")) {
            out.push_str(&format!("\nnode {}: {}", text(&s["node_id"]), text(e)));
        }
    }
    let faults: Vec<String> = statuses
        .iter()
        .find_map(|s| s["faults"].as_array())
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    if !faults.is_empty() {
        out.push_str(&format!("\nfaults: {}", faults.join("; ")));
    }
    out
}

/// Runs `status`.
pub async fn run(args: Args) -> Result<()> {
    let start = args
        .target_addr
        .clone()
        .or_else(|| {
            std::env::var("KVSIM_TARGET_ADDR")
                .ok()
                .filter(|a| !a.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_TARGET.to_string());
    let client = Client::new(&start, false)?;
    let single = args.target_addr.is_some() && !args.all;
    let tty = std::io::stdout().is_terminal();
    loop {
        let statuses = if single {
            vec![client.status(&start).await?]
        } else {
            all_statuses(&client).await?
        };
        if args.output == Output::Json {
            print_json(&if single {
                statuses[0].clone()
            } else {
                Value::Array(statuses)
            })?;
        } else {
            if args.watch && tty {
                // Clear the screen and home the cursor, so the table redraws in place.
                print!("\x1b[2J\x1b[H");
                println!(
                    "kvsim status, every {} ms (Ctrl+C to stop)",
                    WATCH_EVERY.as_millis()
                );
            }
            println!("{}", render(&statuses));
        }
        if !args.watch {
            return Ok(());
        }
        if !tty {
            println!();
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}
