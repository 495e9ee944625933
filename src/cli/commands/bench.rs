//! `kvsim bench`: a DynamoDB-protocol load generator.
//!
//! Without `--workload` it runs kvsim's standard three phases against a kvsim cluster: PutItem
//! at the leader (no forwarding hop), eventually consistent GetItem spread over every node,
//! consistent GetItem at the leader, with the fsync rate read from every node's status (to
//! show writes sharing fsyncs). With `--workload` it drives whatever endpoints
//! `--target-addr` names (a kvsim node, a follower to measure forwarding, or a peer such as
//! dynalite) with one workload, for `--duration-secs` or `--requests`.
//!
//! Latencies go into an HDR histogram (3 significant digits, 1 µs to 60 s), so the
//! percentiles cost the same however long the run. Numbers are only comparable within one run
//! on one machine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use comfy_table::Table;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng as SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::wire::CONTENT_TYPE;
use crate::cli::Output;
use crate::cli::client::{fetch_status as fetch, unreachable};
use crate::cli::commands::node_addrs;
use crate::{Error, Result};

const TABLE: &str = "kvsim-bench";
/// Slowest latency the histogram records; slower ones are clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Options of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to send requests, HOST:PORT; repeat it to spread clients over several endpoints.
    /// Without --workload: any node of a kvsim cluster (the leader is found from its status).
    /// Default: $KVSIM_TARGET_ADDR, else localhost:8100.
    #[arg(
        long,
        env = "KVSIM_TARGET_ADDR",
        default_value = "localhost:8100",
        num_args = 1
    )]
    pub target_addr: Vec<String>,
    /// Concurrent clients.
    #[arg(long, visible_alias = "concurrency", default_value_t = 32)]
    pub clients: usize,
    /// Seconds per phase (or for the whole --workload run).
    #[arg(long, visible_alias = "duration", default_value_t = 10)]
    pub duration_secs: u64,
    /// Stop after this many requests in all instead of after --duration-secs (--workload only).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Bytes in each item's value attribute.
    #[arg(long, visible_alias = "value-size", default_value_t = 100)]
    pub value_bytes: usize,
    /// One workload against the --target-addr endpoints as given: put, get, mixed:READ_PERCENT,
    /// query, update (an atomic counter) or transact (two puts in one transaction).
    #[arg(long)]
    pub workload: Option<Workload>,
    /// Distinct keys the workload's requests pick from, uniformly.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Reads ask for ConsistentRead (--workload only).
    #[arg(long)]
    pub consistent: bool,
    /// Write this many keys (0..N) before measuring, so reads find items (--workload only).
    #[arg(long, default_value_t = 0)]
    pub preload: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// What `--workload` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// PutItem.
    Put,
    /// GetItem.
    Get,
    /// GetItem this percentage of the time, PutItem otherwise.
    Mixed(u8),
    /// Query on the partition key.
    Query,
    /// UpdateItem incrementing a counter.
    Update,
    /// TransactWriteItems with two puts.
    Transact,
}

impl std::str::FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Workload, String> {
        match s {
            "put" => Ok(Workload::Put),
            "get" => Ok(Workload::Get),
            "query" => Ok(Workload::Query),
            "update" => Ok(Workload::Update),
            "transact" => Ok(Workload::Transact),
            other => match other.strip_prefix("mixed:").map(str::parse::<u8>) {
                Some(Ok(p)) if p <= 100 => Ok(Workload::Mixed(p)),
                Some(_) => Err(format!(
                    "mixed:READ_PERCENT needs a percentage from 0 to 100, got {other:?}"
                )),
                None => Err(format!(
                    "unknown workload {other:?}: use put, get, mixed:READ_PERCENT, query, update or transact"
                )),
            },
        }
    }
}

impl Workload {
    fn label(self) -> String {
        match self {
            Workload::Put => "put".into(),
            Workload::Get => "get".into(),
            Workload::Mixed(p) => format!("mixed:{p}"),
            Workload::Query => "query".into(),
            Workload::Update => "update".into(),
            Workload::Transact => "transact".into(),
        }
    }
}

/// The figures of one benchmark phase.
#[derive(Debug, Serialize)]
pub struct PhaseReport {
    /// `PutItem`, `GetItem`, `GetItem (consistent)`, or the workload's name.
    pub op: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests that succeeded.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Failed requests by error type (DynamoDB's `__type` after `#`, or `transport`).
    pub errors_by_type: BTreeMap<String, u64>,
    /// GetItems that found no item.
    pub misses: u64,
    /// Wall time of the phase, seconds.
    pub seconds: f64,
    /// Successful requests per second.
    pub per_second: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile latency, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// 99.9th percentile latency, milliseconds.
    pub p999_ms: f64,
    /// Worst latency, milliseconds.
    pub max_ms: f64,
    /// fsyncs per second, summed over all nodes (kvsim only; 0 elsewhere).
    pub fsyncs_per_second: f64,
    /// Leader fsyncs per second (kvsim only).
    pub leader_fsyncs_per_second: f64,
}

/// What one client measured.
struct Tally {
    latencies: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    misses: u64,
    made: u64,
}

impl Tally {
    fn new() -> Result<Tally> {
        Ok(Tally {
            latencies: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(Error::internal)?,
            errors: BTreeMap::new(),
            misses: 0,
            made: 0,
        })
    }

    fn record(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(MAX_LATENCY_US);
        self.latencies
            .saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.latencies.add(&other.latencies);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.misses += other.misses;
        self.made += other.made;
    }

    fn report(&self, op: String, clients: usize, seconds: f64) -> PhaseReport {
        let ms = |q: f64| self.latencies.value_at_quantile(q) as f64 / 1000.0;
        let requests = self.latencies.len();
        PhaseReport {
            op,
            clients,
            requests,
            errors: self.errors.values().sum(),
            errors_by_type: self.errors.clone(),
            misses: self.misses,
            seconds,
            per_second: requests as f64 / seconds.max(1e-9),
            p50_ms: if requests == 0 { 0.0 } else { ms(0.50) },
            p90_ms: if requests == 0 { 0.0 } else { ms(0.90) },
            p99_ms: if requests == 0 { 0.0 } else { ms(0.99) },
            p999_ms: if requests == 0 { 0.0 } else { ms(0.999) },
            max_ms: if requests == 0 {
                0.0
            } else {
                self.latencies.max() as f64 / 1000.0
            },
            fsyncs_per_second: 0.0,
            leader_fsyncs_per_second: 0.0,
        }
    }
}

/// Sends one request; `Ok((status, body))` whatever the status, `Err` if the endpoint could
/// not be reached.
async fn request(
    http: &reqwest::Client,
    addr: &str,
    op: &str,
    body: &Value,
) -> Result<(u16, Value)> {
    let url = endpoint(addr)?;
    let (status, bytes) = send(http, &url, addr, op, body).await?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

/// The DynamoDB endpoint at `addr`, parsed once per client rather than once per request.
fn endpoint(addr: &str) -> Result<reqwest::Url> {
    reqwest::Url::parse(&format!("http://{addr}/"))
        .map_err(|e| Error::validation(format!("--target-addr {addr} is not HOST:PORT: {e}")))
}

/// [`request`]'s wire half: the answer's status and raw body, parsed by the caller only when it
/// needs to (the load loop does not, for a success), so the load generator stays cheap.
async fn send(
    http: &reqwest::Client,
    url: &reqwest::Url,
    addr: &str,
    op: &str,
    body: &Value,
) -> Result<(u16, bytes::Bytes)> {
    let resp = http
        .post(url.clone())
        .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
        .header("content-type", CONTENT_TYPE)
        .body(serde_json::to_vec(body).map_err(Error::internal)?)
        .send()
        .await
        .map_err(|e| unreachable(addr, &e))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| unreachable(addr, &e))?;
    Ok((status, bytes))
}

/// One client's own keep-alive connection for the load loop: plain hyper, one request at a
/// time, no pool, so the load generator costs little more than wrk per request and is not what
/// a benchmark measures. Reconnects after a failure.
struct Connection {
    addr: String,
    sender: Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>>,
}

impl Connection {
    fn new(addr: &str) -> Connection {
        Connection {
            addr: addr.to_string(),
            sender: None,
        }
    }

    async fn connect(
        &self,
    ) -> std::io::Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>>
    {
        let stream = tokio::net::TcpStream::connect(&self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Sends one request and reads its whole answer: status and body.
    async fn send(&mut self, op: &str, body: &Value) -> std::io::Result<(u16, bytes::Bytes)> {
        use http_body_util::BodyExt;
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        let request = hyper::Request::post("/")
            .header(hyper::header::HOST, &self.addr)
            .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(http_body_util::Full::new(bytes::Bytes::from(
                serde_json::to_vec(body).map_err(std::io::Error::other)?,
            )))
            .map_err(std::io::Error::other)?;
        sender.ready().await.map_err(std::io::Error::other)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        self.sender = Some(sender);
        Ok((status, bytes))
    }
}

/// Whether a GetItem answer holds an item, without parsing it: a found item's answer is the
/// only one with an `Item` member.
fn found_item(answer: &[u8]) -> bool {
    answer.windows(6).any(|w| w == b"\"Item\"")
}

/// The short name of a failed answer's error type.
fn error_type(body: &Value) -> String {
    body["__type"]
        .as_str()
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| "unknown".into())
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

/// One request of a workload: the operation and its body.
fn workload_request(
    w: Workload,
    rng: &mut SmallRng,
    keys: u64,
    value: &str,
    consistent: bool,
) -> (&'static str, Value) {
    let key = |rng: &mut SmallRng| format!("k{}", rng.gen_range(0..keys.max(1)));
    let get = |rng: &mut SmallRng| {
        (
            "GetItem",
            json!({"TableName": TABLE, "Key": {"k": {"S": key(rng)}}, "ConsistentRead": consistent}),
        )
    };
    let put = |rng: &mut SmallRng| {
        (
            "PutItem",
            json!({"TableName": TABLE, "Item": {"k": {"S": key(rng)}, "v": {"S": value}}}),
        )
    };
    match w {
        Workload::Put => put(rng),
        Workload::Get => get(rng),
        Workload::Mixed(p) => {
            if rng.gen_range(0..100) < p {
                get(rng)
            } else {
                put(rng)
            }
        }
        Workload::Query => (
            "Query",
            json!({"TableName": TABLE, "KeyConditionExpression": "k = :k",
                   "ExpressionAttributeValues": {":k": {"S": key(rng)}}, "ConsistentRead": consistent}),
        ),
        Workload::Update => (
            "UpdateItem",
            json!({"TableName": TABLE, "Key": {"k": {"S": key(rng)}},
                   "UpdateExpression": "SET n = if_not_exists(n, :zero) + :one",
                   "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}}}),
        ),
        Workload::Transact => {
            let a = rng.gen_range(0..keys.max(2));
            let b = (a + 1 + rng.gen_range(0..keys.max(2) - 1)) % keys.max(2);
            let item = |k: u64| json!({"Put": {"TableName": TABLE, "Item": {"k": {"S": format!("k{k}")}, "v": {"S": value}}}});
            (
                "TransactWriteItems",
                json!({"TransactItems": [item(a), item(b)]}),
            )
        }
    }
}

/// A phase: which request each client sends where, and when to stop.
struct Phase {
    label: String,
    addrs: Vec<String>,
    kind: PhaseKind,
    /// Stop after this many requests in all (else after the duration).
    budget: Option<u64>,
}

enum PhaseKind {
    /// The standard put phase: unique keys `c{client}-{i}`.
    UniquePuts,
    /// The standard get phases: keys the put phase wrote.
    ReadBack { written: u64, consistent: bool },
    /// A `--workload`.
    Workload(Workload),
}

fn progress(label: &str, seconds: u64) -> ProgressBar {
    let bar = ProgressBar::new(seconds);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} s") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    bar
}

async fn run_phase(
    http: &reqwest::Client,
    args: &Args,
    phase: Phase,
    nodes: &[(u64, String)],
    leader: Option<u64>,
) -> Result<(PhaseReport, u64)> {
    // Returns the report and the fewest requests any one client made (for the put phase: keys
    // `c{client}-{0..that}` exist for every client).
    if phase.addrs.is_empty() {
        return Err(Error::Unavailable(
            "the cluster's status names no nodes to send requests to".into(),
        ));
    }
    let before = fsyncs(http, nodes).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let value: Arc<str> = "x".repeat(args.value_bytes).into();
    let start = Instant::now();
    let clients = args.clients as u64;
    let kind = Arc::new(phase.kind);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let mut conn = Connection::new(&phase.addrs[c % phase.addrs.len()]);
        let (stop, sent, value, kind) = (stop.clone(), sent.clone(), value.clone(), kind.clone());
        let (keys, consistent, budget) = (args.keys, args.consistent, phase.budget);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new()?;
            let mut rng = SmallRng::seed_from_u64(c as u64);
            let mut i: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Some(budget) = budget
                    && sent.fetch_add(1, Ordering::Relaxed) >= budget
                {
                    break;
                }
                let (op, body) = match kind.as_ref() {
                    PhaseKind::UniquePuts => (
                        "PutItem",
                        json!({"TableName": TABLE, "Item": {"k": {"S": format!("c{c}-{i}")}, "v": {"S": &*value}}}),
                    ),
                    PhaseKind::ReadBack { written, consistent } => {
                        // Every writer wrote at least `written` keys: pick a writer and one of
                        // its keys.
                        let r = i.wrapping_mul(7919).wrapping_add(c as u64 * 104_729);
                        let key = format!("c{}-{}", r % clients, (r / clients) % (*written).max(1));
                        (
                            "GetItem",
                            json!({"TableName": TABLE, "Key": {"k": {"S": key}}, "ConsistentRead": consistent}),
                        )
                    }
                    PhaseKind::Workload(w) => workload_request(*w, &mut rng, keys, &value, consistent),
                };
                let t = Instant::now();
                match conn.send(op, &body).await {
                    Ok((200, answer)) => {
                        tally.record(t.elapsed());
                        if op == "GetItem" && !found_item(&answer) {
                            tally.misses += 1;
                        }
                    }
                    Ok((_, answer)) => {
                        let answer = serde_json::from_slice(&answer).unwrap_or(Value::Null);
                        *tally.errors.entry(error_type(&answer)).or_default() += 1;
                    }
                    Err(_) => *tally.errors.entry("transport".into()).or_default() += 1,
                }
                i += 1;
            }
            tally.made = i;
            Ok::<_, Error>(tally)
        }));
    }
    let bar = progress(&phase.label, args.duration_secs);
    let deadline = start + Duration::from_secs(args.duration_secs);
    while Instant::now() < deadline && !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        bar.set_position(start.elapsed().as_secs().min(args.duration_secs));
    }
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::new()?;
    let mut fewest = u64::MAX;
    for t in tasks {
        let tally = t.await.map_err(Error::internal)??;
        fewest = fewest.min(tally.made);
        total.merge(tally);
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
    let mut report = total.report(phase.label, args.clients, seconds);
    report.fsyncs_per_second = delta(None) as f64 / seconds;
    report.leader_fsyncs_per_second = leader.map_or(0, |l| delta(Some(l))) as f64 / seconds;
    Ok((report, fewest))
}

fn check(args: &Args) -> Result<()> {
    if args.clients == 0 || args.duration_secs == 0 {
        return Err(Error::validation(
            "--clients and --duration-secs must be at least 1",
        ));
    }
    if args.workload.is_none() && (args.requests.is_some() || args.preload > 0 || args.consistent) {
        return Err(Error::validation(
            "--requests, --preload and --consistent go with --workload",
        ));
    }
    if args.requests == Some(0) || args.keys == 0 {
        return Err(Error::validation(
            "--requests and --keys must be at least 1",
        ));
    }
    if args.workload == Some(Workload::Transact) && args.keys < 2 {
        return Err(Error::validation(
            "--workload transact needs --keys of at least 2",
        ));
    }
    Ok(())
}

/// Creates the bench table through `addr` (already there is fine).
async fn create_table(http: &reqwest::Client, addr: &str) -> Result<()> {
    let create = json!({"TableName": TABLE, "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"});
    let (s, body) = request(http, addr, "CreateTable", &create).await?;
    if s != 200
        && body["__type"]
            .as_str()
            .is_none_or(|t| !t.ends_with("ResourceInUseException"))
    {
        return Err(Error::Unavailable(format!(
            "cannot create the bench table: {body}"
        )));
    }
    Ok(())
}

/// Runs `kvsim bench`.
///
/// # Errors
/// Invalid options, an unreachable endpoint, or a cluster without a leader.
pub fn run(args: Args) -> Result<()> {
    check(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::internal)?;
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(args.clients)
            .tcp_nodelay(true)
            .build()
            .map_err(Error::internal)?;
        let reports = match args.workload {
            Some(w) => run_workload(&http, &args, w).await?,
            None => run_standard(&http, &args).await?,
        };
        print(&reports, args.output)
    })
}

/// `--workload`: the endpoints as given; kvsim's fsync counters when they are kvsim nodes.
async fn run_workload(
    http: &reqwest::Client,
    args: &Args,
    w: Workload,
) -> Result<Vec<PhaseReport>> {
    let first = args
        .target_addr
        .first()
        .ok_or_else(|| Error::validation("--target-addr is required"))?;
    // A kvsim node answers /status; a peer does not, and then there are no fsync figures.
    let (nodes, leader) = match fetch(http, first).await {
        Ok(status) => (node_addrs(&status), status["leader_id"].as_u64()),
        Err(_) => (Vec::new(), None),
    };
    create_table(http, first).await?;
    if args.preload > 0 {
        let chunks = args.preload.div_ceil(25);
        for chunk in 0..chunks {
            let requests: Vec<Value> = (chunk * 25..((chunk + 1) * 25).min(args.preload))
                .map(|k| json!({"PutRequest": {"Item": {"k": {"S": format!("k{k}")}, "v": {"S": "x".repeat(args.value_bytes)}}}}))
                .collect();
            let (s, body) = request(
                http,
                first,
                "BatchWriteItem",
                &json!({"RequestItems": {TABLE: requests}}),
            )
            .await?;
            if s != 200 {
                return Err(Error::Unavailable(format!("preloading failed: {body}")));
            }
        }
    }
    let phase = Phase {
        label: w.label(),
        addrs: args.target_addr.clone(),
        kind: PhaseKind::Workload(w),
        budget: args.requests,
    };
    Ok(vec![run_phase(http, args, phase, &nodes, leader).await?.0])
}

/// The standard three phases against a kvsim cluster.
async fn run_standard(http: &reqwest::Client, args: &Args) -> Result<Vec<PhaseReport>> {
    let first = args
        .target_addr
        .first()
        .ok_or_else(|| Error::validation("--target-addr is required"))?;
    let status = fetch(http, first).await?;
    // A leaderless cluster (--mode dynamo) takes writes at any node: the one given.
    let leader_addr = if status["mode"] == "dynamo" {
        first.clone()
    } else {
        status["leader_addr"]
            .as_str()
            .ok_or_else(|| {
                Error::Unavailable("the cluster has no leader yet; retry shortly".into())
            })?
            .to_string()
    };
    let leader = status["leader_id"].as_u64();
    let nodes = node_addrs(&status);
    create_table(http, &leader_addr).await?;
    let mut reports = Vec::new();
    let put = Phase {
        label: "PutItem".into(),
        addrs: vec![leader_addr.clone()],
        kind: PhaseKind::UniquePuts,
        budget: None,
    };
    let (report, written) = run_phase(http, args, put, &nodes, leader).await?;
    reports.push(report);
    let get = Phase {
        label: "GetItem".into(),
        addrs: nodes.iter().map(|(_, a)| a.clone()).collect(),
        kind: PhaseKind::ReadBack {
            written,
            consistent: false,
        },
        budget: None,
    };
    reports.push(run_phase(http, args, get, &nodes, leader).await?.0);
    let cget = Phase {
        label: "GetItem (consistent)".into(),
        addrs: vec![leader_addr.clone()],
        kind: PhaseKind::ReadBack {
            written,
            consistent: true,
        },
        budget: None,
    };
    reports.push(run_phase(http, args, cget, &nodes, leader).await?.0);
    Ok(reports)
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
                "p90 ms",
                "p99 ms",
                "p99.9 ms",
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
                    format!("{:.2}", r.p90_ms),
                    format!("{:.2}", r.p99_ms),
                    format!("{:.2}", r.p999_ms),
                    format!("{:.2}", r.max_ms),
                    format!("{:.0}", r.fsyncs_per_second),
                    format!("{:.0}", r.leader_fsyncs_per_second),
                ]);
            }
            outln!("{t}");
            for r in reports.iter().filter(|r| !r.errors_by_type.is_empty()) {
                let kinds: Vec<String> = r
                    .errors_by_type
                    .iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect();
                outln!("{} errors: {}", r.op, kinds.join(", "));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_and_bad_ones_say_why() {
        assert_eq!("put".parse(), Ok(Workload::Put));
        assert_eq!("mixed:90".parse(), Ok(Workload::Mixed(90)));
        assert_eq!("mixed:0".parse(), Ok(Workload::Mixed(0)));
        let too_much = "mixed:101".parse::<Workload>().err().unwrap_or_default();
        assert!(too_much.contains("0 to 100"), "{too_much}");
        let unknown = "scan".parse::<Workload>().err().unwrap_or_default();
        assert!(
            unknown.contains("put, get, mixed:READ_PERCENT"),
            "{unknown}"
        );
    }

    #[test]
    fn a_get_answer_counts_as_found_only_with_an_item() {
        assert!(found_item(br#"{"Item":{"k":{"S":"k1"}}}"#));
        assert!(found_item(br#"{"ConsumedCapacity":{},"Item":{}}"#));
        assert!(!found_item(b"{}"));
        assert!(!found_item(br#"{"ConsumedCapacity":{"TableName":"t"}}"#));
    }

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut a = Tally::new().unwrap_or_else(|e| panic!("{e}"));
        // 1 ms .. 100 ms, one each: p50 is 50 ms, p99 99 ms, max 100 ms.
        for ms in 1..=100u64 {
            a.record(Duration::from_millis(ms));
        }
        let mut b = Tally::new().unwrap_or_else(|e| panic!("{e}"));
        b.errors.insert("ThrottlingException".into(), 2);
        b.made = 7;
        a.merge(b);
        let r = a.report("put".into(), 4, 2.0);
        assert_eq!(r.requests, 100);
        assert_eq!(r.errors, 2);
        assert!((r.per_second - 50.0).abs() < 1e-9);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
        assert!(close(r.p50_ms, 50.0), "{}", r.p50_ms);
        assert!(close(r.p90_ms, 90.0), "{}", r.p90_ms);
        assert!(close(r.p99_ms, 99.0), "{}", r.p99_ms);
        assert!(close(r.max_ms, 100.0), "{}", r.max_ms);
        // Nothing recorded: zeros, not a division by zero.
        let empty = Tally::new().unwrap_or_else(|e| panic!("{e}"));
        let r = empty.report("get".into(), 1, 1.0);
        assert_eq!((r.requests, r.p99_ms, r.max_ms), (0, 0.0, 0.0));
    }

    #[test]
    fn transactions_name_two_different_items() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..200 {
            let (op, body) = workload_request(Workload::Transact, &mut rng, 2, "v", false);
            assert_eq!(op, "TransactWriteItems");
            let items = body["TransactItems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(items.len(), 2);
            assert_ne!(items[0]["Put"]["Item"]["k"], items[1]["Put"]["Item"]["k"]);
        }
    }
}
