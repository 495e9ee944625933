//! `kvsim bench`: PutItem and GetItem throughput and latency against a running cluster, with
//! the fsync rate read from every node's status (to show writes sharing fsyncs).
//!
//! Writes go straight to the leader (no forwarding hop); eventually consistent reads are spread
//! over every node, consistent reads go to the leader. Numbers are only comparable within one
//! run on one machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use comfy_table::Table;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::wire::CONTENT_TYPE;
use crate::cli::Output;
use crate::cli::client::{fetch_status as fetch, unreachable};
use crate::cli::commands::node_addrs;
use crate::{Error, Result};

const TABLE: &str = "kvsim-bench";

/// Options of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
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

/// The figures of one benchmark phase.
#[derive(Debug, Serialize)]
pub struct PhaseReport {
    /// `PutItem`, `GetItem` or `GetItem (consistent)`.
    pub op: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests that succeeded.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// GetItems that found no item (should be 0: reads pick keys the put phase wrote).
    pub misses: u64,
    /// Wall time of the phase, seconds.
    pub seconds: f64,
    /// Successful requests per second.
    pub per_second: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Worst latency, milliseconds.
    pub max_ms: f64,
    /// fsyncs per second, summed over all nodes.
    pub fsyncs_per_second: f64,
    /// Leader fsyncs per second.
    pub leader_fsyncs_per_second: f64,
}

async fn request(
    http: &reqwest::Client,
    addr: &str,
    op: &str,
    body: &Value,
) -> Result<(u16, Value)> {
    let resp = http
        .post(format!("http://{addr}/"))
        .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
        .header("content-type", CONTENT_TYPE)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| unreachable(addr, &e))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| unreachable(addr, &e))?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

/// fsync counters per node id.
async fn fsyncs(http: &reqwest::Client, nodes: &[(u64, String)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for (id, addr) in nodes {
        if let Ok(s) = fetch(http, addr).await {
            out.push((*id, s["stats"]["fsyncs"].as_u64().unwrap_or(0)));
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

struct Phase<'a> {
    op: &'a str,
    label: String,
    addrs: Vec<String>,
    consistent: bool,
}

async fn run_phase(
    http: &reqwest::Client,
    args: &Args,
    phase: Phase<'_>,
    nodes: &[(u64, String)],
    leader: u64,
    keys_written: u64,
) -> Result<(PhaseReport, u64)> {
    // Returns the report and the fewest requests any one client made (for the put phase: keys
    // `c{client}-{0..that}` exist for every client).
    let before = fsyncs(http, nodes).await;
    let stop = Arc::new(AtomicBool::new(false));
    let value = "x".repeat(args.value_bytes);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let clients = args.clients as u64;
    for c in 0..args.clients {
        let http = http.clone();
        let addr = phase.addrs[c % phase.addrs.len()].clone();
        let stop = stop.clone();
        let op = phase.op.to_string();
        let value = value.clone();
        let consistent = phase.consistent;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut misses = 0u64;
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = if op == "PutItem" {
                    json!({"TableName": TABLE, "Item": {"k": {"S": format!("c{c}-{i}")}, "v": {"S": value}}})
                } else {
                    // Read back keys the put phase wrote: every writer wrote at least
                    // `keys_written` keys, so pick a writer and one of its keys.
                    let r = i.wrapping_mul(7919).wrapping_add(c as u64 * 104_729);
                    let key = format!("c{}-{}", r % clients, (r / clients) % keys_written.max(1));
                    json!({"TableName": TABLE, "Key": {"k": {"S": key}}, "ConsistentRead": consistent})
                };
                let t = Instant::now();
                match request(&http, &addr, &op, &body).await {
                    Ok((200, body)) => {
                        lat.push(t.elapsed());
                        if op == "GetItem" && body.get("Item").is_none() {
                            misses += 1;
                        }
                    }
                    _ => errors += 1,
                }
                i += 1;
            }
            (lat, errors, misses, i)
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut written = u64::MAX;
    let mut misses = 0;
    for t in tasks {
        let (l, e, m, n) = t.await.map_err(Error::internal)?;
        lat.extend(l);
        errors += e;
        misses += m;
        written = written.min(n);
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = fsyncs(http, nodes).await;
    let delta = |id: Option<u64>| -> u64 {
        after
            .iter()
            .filter(|(n, _)| id.is_none_or(|id| *n == id))
            .map(|(n, a)| {
                a.saturating_sub(before.iter().find(|(b, _)| b == n).map_or(0, |(_, b)| *b))
            })
            .sum()
    };
    lat.sort_unstable();
    let requests = lat.len() as u64;
    Ok((
        PhaseReport {
            op: phase.label,
            clients: args.clients,
            requests,
            errors,
            misses,
            seconds,
            per_second: requests as f64 / seconds,
            p50_ms: percentile(&lat, 0.50),
            p99_ms: percentile(&lat, 0.99),
            max_ms: lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            fsyncs_per_second: delta(None) as f64 / seconds,
            leader_fsyncs_per_second: delta(Some(leader)) as f64 / seconds,
        },
        written,
    ))
}

/// Runs `kvsim bench`.
///
/// # Errors
/// An unreachable cluster or one without a leader.
pub fn run(args: Args) -> Result<()> {
    if args.clients == 0 || args.duration_secs == 0 {
        return Err(Error::validation(
            "--clients and --duration-secs must be at least 1",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::internal)?;
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(args.clients)
            .build()
            .map_err(Error::internal)?;
        let status = fetch(&http, &args.target_addr).await?;
        let leader_addr = status["leader_addr"]
            .as_str()
            .ok_or_else(|| Error::Unavailable("the cluster has no leader yet; retry shortly".into()))?
            .to_string();
        let leader = status["leader_id"].as_u64().unwrap_or(0);
        let nodes = node_addrs(&status);
        let create = json!({"TableName": TABLE, "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"});
        let (s, body) = request(&http, &leader_addr, "CreateTable", &create).await?;
        if s != 200 && body["__type"].as_str().is_none_or(|t| !t.ends_with("ResourceInUseException")) {
            return Err(Error::Unavailable(format!("cannot create the bench table: {body}")));
        }
        let mut reports = Vec::new();
        let put = Phase {
            op: "PutItem",
            label: "PutItem".into(),
            addrs: vec![leader_addr.clone()],
            consistent: false,
        };
        let (report, keys) = run_phase(&http, &args, put, &nodes, leader, 0).await?;
        reports.push(report);
        let get = Phase {
            op: "GetItem",
            label: "GetItem".into(),
            addrs: nodes.iter().map(|(_, a)| a.clone()).collect(),
            consistent: false,
        };
        reports.push(run_phase(&http, &args, get, &nodes, leader, keys).await?.0);
        let cget = Phase {
            op: "GetItem",
            label: "GetItem (consistent)".into(),
            addrs: vec![leader_addr.clone()],
            consistent: true,
        };
        reports.push(run_phase(&http, &args, cget, &nodes, leader, keys).await?.0);
        print(&reports, args.output)
    })
}

fn print(reports: &[PhaseReport], output: Output) -> Result<()> {
    match output {
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(reports).map_err(Error::internal)?
        ),
        Output::Table => {
            let mut t = Table::new();
            t.set_header(vec![
                "op",
                "clients",
                "requests",
                "errors",
                "misses",
                "req/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "fsyncs/s (all)",
                "fsyncs/s (leader)",
            ]);
            for r in reports {
                t.add_row(vec![
                    r.op.clone(),
                    r.clients.to_string(),
                    r.requests.to_string(),
                    r.errors.to_string(),
                    r.misses.to_string(),
                    format!("{:.0}", r.per_second),
                    format!("{:.2}", r.p50_ms),
                    format!("{:.2}", r.p99_ms),
                    format!("{:.2}", r.max_ms),
                    format!("{:.0}", r.fsyncs_per_second),
                    format!("{:.0}", r.leader_fsyncs_per_second),
                ]);
            }
            outln!("{t}");
        }
    }
    Ok(())
}
