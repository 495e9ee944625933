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

use crate::api::wire::{CONTENT_TYPE, ErrorBody, REDIRECT_HEADER, TARGET_PREFIX};
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
}

/// The one-line error for a node that cannot be reached.
pub fn unreachable(addr: &str, e: &reqwest::Error) -> Error {
    let why = if e.is_connect() {
        "connection refused".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    Error::Unavailable(format!(
        "cannot reach {addr}: {why} (is 'kvsim server' running?)"
    ))
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
        })
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
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
        self.send(op, input, self.target.clone()).await
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
        self.send(op, input, known.unwrap_or_else(|| self.target.clone()))
            .await
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

    async fn send<I: Serialize, O: DeserializeOwned>(
        &self,
        op: &str,
        input: &I,
        start: String,
    ) -> Result<O> {
        let body = serde_json::to_vec(input).map_err(Error::internal)?;
        let mut addr = start;
        let mut hops = 0;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let resp = self
                .http
                .post(format!("http://{addr}/"))
                .header("x-amz-target", format!("{TARGET_PREFIX}{op}"))
                .header("content-type", CONTENT_TYPE)
                .header(REDIRECT_HEADER, "hint")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| unreachable(&addr, &e))?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(|e| unreachable(&addr, &e))?;
            if status == 200 {
                return serde_json::from_slice(&bytes).map_err(|e| {
                    Error::internal(format!("{addr} answered {op} with an unexpected body: {e}"))
                });
            }
            let err: ErrorBody = serde_json::from_slice(&bytes).map_err(|_| {
                Error::internal(format!(
                    "{addr} answered HTTP {status} without a DynamoDB error body: {}",
                    String::from_utf8_lossy(&bytes)
                ))
            })?;
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
            Err(_) => Err(Error::internal(format!(
                "{addr}{path} answered HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
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
    let bytes = resp.bytes().await.map_err(|e| unreachable(addr, &e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::internal(format!("{addr} answered a status that is not JSON: {e}")))
}
