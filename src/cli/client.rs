//! The CLI's HTTP client: DynamoDB JSON requests with leader hints followed.
//!
//! Every request carries `x-kvsim-redirect: hint`, so a follower answers a write or consistent
//! read with `NotLeaderException` naming the leader instead of forwarding it. The client then
//! retries at the leader's address (at most [`MAX_HOPS`] times), and while no leader is known it
//! backs off and asks again for up to [`NO_LEADER_PATIENCE`]. Error bodies become [`Error`]s.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::wire::{
    CLOCK_HEADER, CONTENT_TYPE, EXPECTED_VERSION_HEADER, ErrorBody, MERGED_HEADER, REDIRECT_HEADER,
    SIBLINGS_HEADER, TARGET_PREFIX, VERSION_HEADER,
};
use crate::{Error, Result};

/// Most leader redirects followed for one request.
pub const MAX_HOPS: usize = 3;
/// How long to keep asking while the cluster has no leader (an election takes about a second).
pub const NO_LEADER_PATIENCE: Duration = Duration::from_secs(10);
/// Timeout of one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client bound to one starting node.
pub struct Client {
    http: reqwest::Client,
    target: String,
    verbose: bool,
    /// The leader learnt from the last redirect, so later leader-bound requests go straight
    /// there instead of being redirected again.
    leader: Mutex<Option<String>>,
    /// Ask reads for every concurrent version ([`SIBLINGS_HEADER`]; `--mode dynamo`).
    siblings: std::sync::atomic::AtomicBool,
}

/// Why a request to a node failed, in a few words: the innermost cause, with the common ones
/// (refused, unresolvable host, timeout) spelled out.
fn failure_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut innermost = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return "connection refused".into();
        }
        innermost = s.to_string();
        source = s.source();
    }
    let lower = innermost.to_lowercase();
    if lower.contains("dns") || lower.contains("lookup") || lower.contains("not known") {
        "cannot resolve the host name".into()
    } else if e.is_connect() {
        format!("cannot connect ({innermost})")
    } else {
        innermost
    }
}

/// The one-line error for a node that cannot be reached.
pub fn unreachable(addr: &str, e: &reqwest::Error) -> Error {
    Error::Unavailable(format!(
        "cannot reach {addr}: {} (is 'kvsim server' running?)",
        failure_reason(e)
    ))
}

/// The error for an answer that is not kvsim's: something else listens at `addr`.
fn not_kvsim(addr: &str, status: u16, body: &[u8]) -> Error {
    let body = String::from_utf8_lossy(body);
    let mut excerpt: String = body.chars().take(80).collect();
    if body.chars().count() > 80 {
        excerpt.push_str("...");
    }
    Error::Unavailable(format!(
        "{addr} answered HTTP {status} with something that is not a kvsim response ({excerpt:?}); \
         is --target-addr a kvsim node?"
    ))
}

/// Checks a `--target-addr` value: `HOST:PORT` (an `http://` prefix is accepted and dropped).
///
/// # Errors
/// A message saying what is wrong and what was expected.
pub fn parse_addr(text: &str) -> std::result::Result<String, String> {
    let expected = "expected HOST:PORT, like localhost:8100 or 127.0.0.1:8101";
    let addr = text.strip_prefix("http://").unwrap_or(text);
    let addr = addr.strip_suffix('/').unwrap_or(addr);
    if text.starts_with("https://") {
        return Err(format!(
            "'{text}': kvsim nodes speak plain HTTP; {expected}"
        ));
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("'{text}' has no port; {expected}"));
    };
    if host.is_empty() || addr.contains(['/', ' ', '?', '#', '@']) {
        return Err(format!("'{text}' is not an address; {expected}"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(addr.to_string()),
        _ => Err(format!(
            "'{text}': port must be a number from 1 to 65535; {expected}"
        )),
    }
}

/// What the server said of an item's version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemVersion {
    /// In `--mode raft`: the Raft log index of the item's last write.
    pub index: Option<u64>,
    /// In `--mode dynamo`: the item's vector clock.
    pub clock: Option<String>,
    /// In `--mode dynamo`: how many concurrent versions the read merged, when it merged any.
    pub merged: Option<u32>,
}

impl Client {
    /// A client that starts every request at `target` (HOST:PORT).
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new(target: &str, verbose: bool) -> Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(Error::internal)?;
        Ok(Client {
            http,
            target: target.to_string(),
            verbose,
            leader: Mutex::new(None),
            siblings: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The underlying HTTP client.
    /// Makes this client's reads ask for every concurrent version of an item
    /// ([`SIBLINGS_HEADER`]), which a `--mode dynamo` server answers in `KvsimSiblings`.
    pub fn want_siblings(&self) {
        self.siblings
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether `-v` asked for redirects and retries on stderr.
    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// The node requests start at.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Sends DynamoDB operation `op` with `input` to the target node, following leader hints
    /// if the operation needs the leader.
    ///
    /// # Errors
    /// The server's error, or `Unavailable` if no node answers or no leader appears in time.
    pub async fn call<I: Serialize, O: DeserializeOwned>(&self, op: &str, input: &I) -> Result<O> {
        Ok(self.send(op, input, self.target.clone(), None).await?.0)
    }

    /// Like [`Client::call`] at node `addr` (which may be another than the target), with no
    /// leader hints followed: for reads any node answers.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_at<I: Serialize, O: DeserializeOwned>(
        &self,
        addr: &str,
        op: &str,
        input: &I,
    ) -> Result<O> {
        Ok(self.send(op, input, addr.to_string(), None).await?.0)
    }

    /// An item operation with versions: sends `expected` as the version the write requires
    /// (see [`EXPECTED_VERSION_HEADER`]) and returns the answer with the item version the
    /// server gave ([`VERSION_HEADER`]). Goes to the leader when `leader` is set.
    ///
    /// # Errors
    /// As [`Client::call`]; `ConditionalCheckFailed` when the version has moved on.
    pub async fn call_versioned<I: Serialize, O: DeserializeOwned>(
        &self,
        op: &str,
        input: &I,
        expected: Option<u64>,
        leader: bool,
    ) -> Result<(O, ItemVersion)> {
        let known = if leader {
            self.leader.lock().ok().and_then(|l| l.clone())
        } else {
            None
        };
        self.send(
            op,
            input,
            known.unwrap_or_else(|| self.target.clone()),
            expected,
        )
        .await
    }

    /// Like [`Client::call`] for an operation that needs the leader (a write or a consistent
    /// read): goes straight to the leader if an earlier redirect named it.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_leader<I: Serialize, O: DeserializeOwned>(
        &self,
        op: &str,
        input: &I,
    ) -> Result<O> {
        let known = self.leader.lock().ok().and_then(|l| l.clone());
        Ok(self
            .send(
                op,
                input,
                known.unwrap_or_else(|| self.target.clone()),
                None,
            )
            .await?
            .0)
    }

    /// A read: consistent ones need the leader, eventual ones are served by the target node.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn read<I: Serialize, O: DeserializeOwned>(
        &self,
        op: &str,
        input: &I,
        consistent: bool,
    ) -> Result<O> {
        if consistent {
            self.call_leader(op, input).await
        } else {
            self.call(op, input).await
        }
    }

    /// Sends `op` (a DynamoDB operation, or a whole target such as
    /// `DynamoDBStreams_20120810.GetRecords`) starting at `start`; the answer and its item
    /// version header, if any.
    async fn send<I: Serialize, O: DeserializeOwned>(
        &self,
        op: &str,
        input: &I,
        start: String,
        expected: Option<u64>,
    ) -> Result<(O, ItemVersion)> {
        let target = if op.contains('.') {
            op.to_string()
        } else {
            format!("{TARGET_PREFIX}{op}")
        };
        let body = serde_json::to_vec(input).map_err(Error::internal)?;
        let mut addr = start;
        let mut hops = 0;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut request = self
                .http
                .post(format!("http://{addr}/"))
                .header("x-amz-target", &target)
                .header("content-type", CONTENT_TYPE)
                .header(REDIRECT_HEADER, "hint");
            if let Some(version) = expected {
                request = request.header(EXPECTED_VERSION_HEADER, version);
            }
            if self.siblings.load(std::sync::atomic::Ordering::Relaxed) {
                request = request.header(SIBLINGS_HEADER, "true");
            }
            let sent = request.body(body.clone()).send().await;
            let resp = match sent {
                Ok(resp) => resp,
                // A leader named by a hint (or remembered from one) that refuses connections has
                // just crashed: nothing was sent, so wait for the election and ask again where
                // we started. The starting node itself being down is the user's to know.
                Err(e) if e.is_connect() && addr != self.target => {
                    if let Ok(mut known) = self.leader.lock() {
                        *known = None;
                    }
                    if started.elapsed() >= NO_LEADER_PATIENCE {
                        return Err(unreachable(&addr, &e));
                    }
                    if self.verbose {
                        eprintln!(
                            "leader at {addr} is unreachable; asking {} again in {}ms",
                            self.target,
                            backoff.as_millis()
                        );
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    addr = self.target.clone();
                    continue;
                }
                Err(e) => return Err(unreachable(&addr, &e)),
            };
            let status = resp.status().as_u16();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let version = ItemVersion {
                index: header(VERSION_HEADER).and_then(|v| v.parse().ok()),
                clock: header(CLOCK_HEADER),
                merged: header(MERGED_HEADER).and_then(|v| v.parse().ok()),
            };
            let bytes = resp.bytes().await.map_err(|e| unreachable(&addr, &e))?;
            if status == 200 {
                let answer = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::internal(format!("{addr} answered {op} with an unexpected body: {e}"))
                })?;
                return Ok((answer, version));
            }
            let err: ErrorBody =
                serde_json::from_slice(&bytes).map_err(|_| not_kvsim(&addr, status, &bytes))?;
            if !err.type_name.ends_with("#NotLeaderException") {
                return Err(Error::from_wire(&err.type_name, err.message));
            }
            match (err.leader_id, err.leader_addr) {
                (Some(id), Some(leader)) if hops < MAX_HOPS => {
                    hops += 1;
                    if self.verbose {
                        eprintln!("redirected to leader {id} at {leader}");
                    }
                    if let Ok(mut known) = self.leader.lock() {
                        *known = Some(leader.clone());
                    }
                    addr = leader;
                }
                (Some(_), Some(_)) => {
                    return Err(Error::Unavailable(format!(
                        "gave up after {MAX_HOPS} leader redirects (leadership is changing); retry"
                    )));
                }
                _ => {
                    // The node asked knows no leader (a follower cut off or slowed by a fault
                    // loses track of it): the others may know.
                    if hops < MAX_HOPS
                        && let Some(leader) = self.leader_from_peers(&addr).await
                    {
                        hops += 1;
                        if self.verbose {
                            eprintln!("no leader known at {addr}; node at {leader} leads");
                        }
                        addr = leader;
                        continue;
                    }
                    if started.elapsed() >= NO_LEADER_PATIENCE {
                        return Err(Error::Unavailable(format!(
                            "no leader was elected within {}s (is a majority of nodes running?)",
                            NO_LEADER_PATIENCE.as_secs()
                        )));
                    }
                    if self.verbose {
                        eprintln!(
                            "no leader known at {addr}; retrying in {}ms",
                            backoff.as_millis()
                        );
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    // Ask where we started: a redirect target may itself have gone away.
                    addr = self.target.clone();
                }
            }
        }
    }

    /// `GET /status` of `addr`.
    ///
    /// # Errors
    /// `Unavailable` if the node cannot be reached.
    pub async fn status(&self, addr: &str) -> Result<serde_json::Value> {
        fetch_status(&self.http, addr).await
    }

    /// The address of a node other than `asked` that says it leads, from the nodes `asked`
    /// lists in its status.
    async fn leader_from_peers(&self, asked: &str) -> Option<String> {
        let status = self.status(asked).await.ok()?;
        for (_, other) in crate::cli::commands::node_addrs(&status) {
            if other == asked {
                continue;
            }
            if let Ok(s) = self.status(&other).await
                && s["role"].as_str() == Some("leader")
            {
                return Some(other);
            }
        }
        None
    }
}

impl Client {
    /// Sends a simulator control request (`/admin/...`) to `addr`: a POST with `body`, or a GET
    /// without one.
    ///
    /// # Errors
    /// The server's error, or `Unavailable` if the node cannot be reached.
    pub async fn admin(
        &self,
        addr: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let url = format!("http://{addr}{path}");
        let req = match body {
            Some(b) => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(b.to_string()),
            None => self.http.get(url),
        };
        let resp = req.send().await.map_err(|e| unreachable(addr, &e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| unreachable(addr, &e))?;
        if status == 200 {
            return serde_json::from_slice(&bytes)
                .map_err(|e| Error::internal(format!("{addr}{path}: {e}")));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(err) => Err(Error::from_wire(&err.type_name, err.message)),
            Err(_) => Err(not_kvsim(addr, status, &bytes)),
        }
    }

    /// The first node that answers, starting with the target and then its neighbours on the
    /// same host (a local cluster's nodes sit on consecutive ports), so control commands work
    /// even when the target node is the one that is down.
    ///
    /// # Errors
    /// `Unavailable` naming the target if no candidate answers.
    pub async fn live_node(&self) -> Result<(String, serde_json::Value)> {
        let first_err = match self.status(&self.target).await {
            Ok(s) => return Ok((self.target.clone(), s)),
            Err(e) => e,
        };
        if let Some((host, port)) = self.target.rsplit_once(':')
            && let Ok(port) = port.parse::<i32>()
        {
            for delta in [1, 2, -1, -2] {
                let Ok(p) = u16::try_from(port + delta) else {
                    continue;
                };
                let addr = format!("{host}:{p}");
                if let Ok(s) = self.status(&addr).await {
                    if self.verbose {
                        eprintln!(
                            "{} is down; using node {} at {addr}",
                            self.target, s["node_id"]
                        );
                    }
                    return Ok((addr, s));
                }
            }
        }
        Err(first_err)
    }
}

/// `GET /status` of `addr` with any HTTP client.
///
/// # Errors
/// `Unavailable` if the node cannot be reached.
pub async fn fetch_status(http: &reqwest::Client, addr: &str) -> Result<serde_json::Value> {
    let resp = http
        .get(format!("http://{addr}/status"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| unreachable(addr, &e))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| unreachable(addr, &e))?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) if status == 200 && v.get("node_id").is_some() => Ok(v),
        _ => Err(not_kvsim(addr, status, &bytes)),
    }
}
