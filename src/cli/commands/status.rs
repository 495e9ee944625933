//! `kvsim status`: every node's Raft state (or, in `--mode dynamo`, its view of who is alive,
//! whom it suspects and the hints it holds) as one table (the default), or one node's;
//! `--watch` redraws it twice a second so an election can be watched as it happens.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::Output;
use crate::cli::client::{Client, parse_addr};
use crate::cli::commands::node_addrs;
use crate::cli::render::{print_json, table};
use crate::{Error, Result};

/// Where discovery starts when no `--target-addr` is given.
const DEFAULT_TARGET: &str = "localhost:8100";
/// How often `--watch` redraws.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Options of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show only this node (HOST:PORT). Without it, every node of the cluster is shown,
    /// discovered through $KVSIM_TARGET_ADDR or localhost:8100.
    #[arg(long, value_parser = crate::cli::client::parse_addr)]
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
    /// Say on stderr when the node asked is down and a neighbour answers instead.
    #[arg(short, long)]
    pub verbose: bool,
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

/// The commit index lag is measured against: the leader's, found among `statuses` or, when
/// only one node is shown, asked of the leader that node names. With no leader reachable, the
/// highest commit index shown (for one node alone: unknown).
async fn leader_commit(client: &Client, statuses: &[Value], single: bool) -> Option<u64> {
    if let Some(leader) = statuses.iter().find(|s| s["role"] == "leader") {
        return leader["commit_index"].as_u64();
    }
    if single {
        let node = statuses.first()?;
        // The leader this node names or, if it has lost track (a cut-off node campaigns), any
        // node of the cluster that leads.
        let candidates = node["leader_addr"]
            .as_str()
            .map(str::to_string)
            .into_iter()
            .chain(node_addrs(node).into_iter().map(|(_, addr)| addr));
        for addr in candidates {
            if let Ok(s) = client.status(&addr).await
                && s["role"] == "leader"
            {
                return s["commit_index"].as_u64();
            }
        }
        return None;
    }
    statuses
        .iter()
        .filter_map(|s| s["commit_index"].as_u64())
        .max()
}

/// The status table of a `--mode dynamo` cluster: each node's view of who is alive, the
/// hints it holds for unreachable owners, and its faults.
fn render_leaderless(statuses: &[Value]) -> String {
    let mut t = table(vec![
        "node",
        "address",
        "state",
        "sees alive",
        "suspects",
        "hints",
        "faults",
    ]);
    let list = |v: &Value| {
        v.as_array().filter(|a| !a.is_empty()).map_or_else(
            || "-".to_string(),
            |a| a.iter().map(text).collect::<Vec<_>>().join(" "),
        )
    };
    for s in statuses {
        let alive: Vec<String> = s["view"]
            .as_array()
            .map(|v| {
                let mut ids: Vec<u64> = v
                    .iter()
                    .filter(|g| g["alive"] == true)
                    .filter_map(|g| g["node"].as_u64())
                    .collect();
                ids.sort_unstable();
                ids.iter().map(u64::to_string).collect()
            })
            .unwrap_or_default();
        let hints = s["hints"]
            .as_object()
            .filter(|h| !h.is_empty())
            .map_or_else(
                || "-".to_string(),
                |h| {
                    h.iter()
                        .map(|(owner, n)| format!("{} for node {owner}", text(n)))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            );
        let state = if s["role"] == "down" {
            "unreachable"
        } else if s["running"] == true {
            "running"
        } else {
            "down"
        };
        t.add_row(vec![
            text(&s["node_id"]),
            text(&s["addr"]),
            state.to_string(),
            if alive.is_empty() {
                "-".into()
            } else {
                alive.join(" ")
            },
            list(&s["suspected"]),
            hints,
            list(&s["faults"]),
        ]);
    }
    let mut out = String::new();
    if let Some(s) = statuses.iter().find(|s| s["mode"] == "dynamo") {
        out.push_str(&format!(
            "leaderless (--mode dynamo): N={} R={} W={}, merger {}\n",
            text(&s["replicas"]),
            text(&s["read_quorum"]),
            text(&s["write_quorum"]),
            text(&s["merger"])
        ));
    }
    out.push_str(&t.to_string());
    for s in statuses {
        if let Some(e) = s
            .get("failure")
            .or_else(|| s.get("start_failure"))
            .or_else(|| s.get("error"))
        {
            out.push_str(&format!("\nnode {}: {}", text(&s["node_id"]), text(e)));
        }
    }
    out.push_str(&supervision_lines(statuses));
    out
}

/// What the supervisor did, from the first node that reports it (all share one record).
fn supervision_lines(statuses: &[Value]) -> String {
    let mut out = String::new();
    if let Some(nodes) = statuses
        .iter()
        .find_map(|s| s["supervision"]["nodes"].as_array())
    {
        for n in nodes {
            let id = text(&n["node_id"]);
            if let Some(why) = n["gave_up"].as_str() {
                out.push_str(&format!("\nnode {id}: the supervisor gave up: {why}"));
            } else if let Some(k) = n["restarts"].as_u64().filter(|k| *k > 0) {
                out.push_str(&format!(
                    "\nnode {id}: restarted {k} time{} by the supervisor, last after: {}",
                    if k == 1 { "" } else { "s" },
                    text(&n["last_failure"])
                ));
            }
        }
    }
    out
}

/// The status table, with fault and failure lines under it.
fn render(statuses: &[Value], leader_commit: Option<u64>) -> String {
    let mut t = table(vec![
        "node", "address", "role", "term", "leader", "commit", "applied", "lag", "faults",
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
            s["node_faults"]
                .as_array()
                .filter(|f| !f.is_empty())
                .map_or_else(
                    || "-".to_string(),
                    |f| f.iter().map(text).collect::<Vec<_>>().join(", "),
                ),
        ]);
    }
    let mut out = t.to_string();
    for s in statuses {
        if let Some(e) = s.get("error").or_else(|| s["health"].get("error")) {
            out.push_str(&format!("\nnode {}: {}", text(&s["node_id"]), text(e)));
        }
    }
    out.push_str(&supervision_lines(statuses));
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
    let start =
        parse_addr(&start).map_err(|e| Error::validation(format!("KVSIM_TARGET_ADDR {e}")))?;
    let client = Client::new(&start, args.verbose)?;
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
                outln!(
                    "\x1b[2J\x1b[Hkvsim status, every {} ms (Ctrl+C to stop)",
                    WATCH_EVERY.as_millis()
                );
            }
            if statuses.iter().any(|s| s["mode"] == "dynamo") {
                outln!("{}", render_leaderless(&statuses));
            } else {
                let commit = leader_commit(&client, &statuses, single).await;
                outln!("{}", render(&statuses, commit));
            }
        }
        if !args.watch {
            return Ok(());
        }
        if !tty {
            outln!();
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}
