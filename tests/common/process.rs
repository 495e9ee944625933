//! The real `kvsim server` binary as a child process: started on free ports with its output in
//! a log file, talked to over HTTP, and killed when the [`Server`] is dropped, so a failing
//! assertion never leaves a cluster running behind the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kvsim");

/// The server binary to start: [`BIN`], or `KVSIM_SERVER_BIN` to run these tests against
/// another build (for example the previous release, to show a test fails there).
pub fn server_bin() -> String {
    std::env::var("KVSIM_SERVER_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// A base port with the next two also free (checked by binding them).
pub fn free_base_port() -> u16 {
    for _ in 0..200 {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = probe.local_addr().expect("addr").port();
        drop(probe);
        if base > 65000 {
            continue;
        }
        if (0..3).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no three consecutive free ports");
}

/// A running `kvsim server`; killed (`SIGKILL`) and reaped when dropped.
pub struct Server {
    child: Child,
    /// Node 1's port; nodes 2 and 3 listen on the next two.
    pub base: u16,
    /// Where the server's stdout and stderr go.
    pub log: PathBuf,
}

impl Server {
    /// Starts the server on `base` with data under `data`, logging to `data/server.log`.
    pub fn start(data: &Path, base: u16, extra: &[&str]) -> Server {
        Server::start_logged(data, base, &data.join("server.log"), extra)
    }

    /// Starts the server logging to `log`; returns once it printed its ready line (or exited).
    pub fn start_logged(data: &Path, base: u16, log: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(data, base, log, extra, &[])
    }

    /// [`Server::start_logged`] with extra environment variables (`RUST_LOG`, ...).
    pub fn start_with_env(
        data: &Path,
        base: u16,
        log: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent).expect("log dir");
        }
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(server_bin())
            .args([
                "server",
                "--tick-ms",
                "50",
                "--base-port",
                &base.to_string(),
            ])
            .args(extra)
            .arg("--data-dir-root")
            .arg(data)
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start kvsim server");
        let server = Server {
            child,
            base,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let text = server.log_text();
            if text.contains("press Ctrl+C") || text.contains("error:") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A line of `/proc/<pid>/status` (such as `VmRSS` or `VmHWM`, the peak), in bytes.
    pub fn proc_status_bytes(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One DynamoDB call to `127.0.0.1:port`; `None` if the node did not answer.
pub async fn call(
    http: &reqwest::Client,
    port: u16,
    op: &str,
    body: Value,
) -> Option<(u16, Value)> {
    call_raw(http, port, op, body.to_string().into_bytes()).await
}

/// As [`call`], with the body as bytes.
pub async fn call_raw(
    http: &reqwest::Client,
    port: u16,
    op: &str,
    body: Vec<u8>,
) -> Option<(u16, Value)> {
    let resp = http
        .post(format!("http://127.0.0.1:{port}/"))
        .header("X-Amz-Target", format!("DynamoDB_20120810.{op}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .timeout(Duration::from_secs(60))
        .body(body)
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    let value = serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
    Some((status, value))
}

/// Creates an on-demand table `name` keyed by the string attribute `key`, through `port`.
pub async fn create_table(http: &reqwest::Client, port: u16, name: &str, key: &str) {
    let created = call(
        http,
        port,
        "CreateTable",
        serde_json::json!({"TableName": name, "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
               "BillingMode": "PAY_PER_REQUEST"}),
    )
    .await;
    assert_eq!(
        created.as_ref().map(|c| c.0),
        Some(200),
        "CreateTable {name}: {created:?}"
    );
}

/// A node's `GET /status`.
pub async fn status(http: &reqwest::Client, port: u16) -> Option<Value> {
    let resp = http
        .get(format!("http://127.0.0.1:{port}/status"))
        .send()
        .await
        .ok()?;
    serde_json::from_slice(&resp.bytes().await.ok()?).ok()
}

/// Waits until a leader exists and every node applied the leader's commit index.
pub async fn wait_converged(http: &reqwest::Client, base: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = Vec::new();
        for i in 0..3 {
            all.push(status(http, base + i).await);
        }
        let ok = all.iter().all(Option::is_some) && {
            let s: Vec<&Value> = all.iter().flatten().collect();
            let leader = s.iter().find(|v| v["role"] == "leader");
            leader.is_some_and(|l| {
                s.iter().all(|v| {
                    v["applied_index"] == l["commit_index"] && v["leader_id"] == l["node_id"]
                })
            })
        };
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster did not converge: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every node's state fingerprint, once all have applied the same index.
pub async fn agreed_digest(http: &reqwest::Client, base: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut views = Vec::new();
        for i in 0..3 {
            let resp = http
                .get(format!("http://127.0.0.1:{}/admin/digest", base + i))
                .send()
                .await;
            let body = match resp {
                Ok(r) => r
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok()),
                Err(_) => None,
            };
            views.push(body.map(|b| (b["applied_index"].clone(), b["digest"].clone())));
        }
        if let [Some(a), Some(b), Some(c)] = views.as_slice()
            && a == b
            && b == c
        {
            return a.1.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the nodes never agreed: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
