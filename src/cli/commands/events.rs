//! `kvsim events`: the cluster's recent events from every node's ring, merged by time;
//! `--follow` keeps printing new ones.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use crate::cli::client::Client;
use crate::cli::commands::node_addrs;
use crate::cli::render::print_json;
use crate::cli::{Common, Output};
use crate::events::EventRecord;
use crate::{Error, Result};

/// How often `--follow` polls.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Options of `events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep printing new events as they happen (Ctrl+C to stop).
    #[arg(long)]
    pub follow: bool,
    /// Show only the last N events first.
    #[arg(long, value_parser = crate::cli::positive)]
    pub last: Option<u64>,
    #[command(flatten)]
    pub common: Common,
}

/// New events from every reachable node, after each node's cursor, merged by time.
async fn poll(
    client: &Client,
    nodes: &[(u64, String)],
    cursors: &mut BTreeMap<u64, u64>,
) -> Vec<EventRecord> {
    let mut out = Vec::new();
    for (id, addr) in nodes {
        let since = cursors.get(id).copied().unwrap_or(0);
        let Ok(doc) = client
            .admin(addr, &format!("/events?since={since}"), None)
            .await
        else {
            continue; // a crashed node's events come back with it
        };
        let events: Vec<EventRecord> =
            serde_json::from_value(doc["events"].clone()).unwrap_or_default();
        if let Some(last) = events.last() {
            cursors.insert(*id, last.seq);
        }
        out.extend(events);
    }
    out.sort_by_key(|e| (e.time_ms, e.node_id, e.seq));
    out
}

fn line(e: &EventRecord) -> String {
    let time = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(e.time_ms));
    format!("{time}  node {}  {:<18}  {}", e.node_id, e.kind, e.detail)
}

fn print(events: &[EventRecord], output: Output, stream: bool) -> Result<()> {
    match (output, stream) {
        (Output::Json, false) => {
            print_json(&serde_json::to_value(events).map_err(Error::internal)?)
        }
        (Output::Json, true) => {
            for e in events {
                outln!("{}", serde_json::to_string(e).map_err(Error::internal)?);
            }
            Ok(())
        }
        (Output::Table, _) => {
            for e in events {
                outln!("{}", line(e));
            }
            Ok(())
        }
    }
}

/// Runs `events`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let (_, status) = client.live_node().await?;
    let nodes = node_addrs(&status);
    let mut cursors = BTreeMap::new();
    let mut events = poll(client, &nodes, &mut cursors).await;
    if let Some(last) = args.last {
        let keep = usize::try_from(last).unwrap_or(usize::MAX);
        events.drain(..events.len().saturating_sub(keep));
    }
    print(&events, args.common.output, args.follow)?;
    if !args.follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let new = poll(client, &nodes, &mut cursors).await;
        print(&new, args.common.output, true)?;
    }
}
