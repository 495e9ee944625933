//! `kvsim status`: one node's status, as a table or as the server's JSON.

use std::time::Duration;

use comfy_table::Table;

use crate::cli::{Output, StatusArgs};
use crate::{Error, Result};

/// Fetches `GET /status` from `addr`.
///
/// # Errors
/// `Unavailable` if the node cannot be reached.
pub async fn fetch(client: &reqwest::Client, addr: &str) -> Result<serde_json::Value> {
    let resp = client
        .get(format!("http://{addr}/status"))
        .send()
        .await
        .map_err(|e| unreachable(addr, &e))?;
    let bytes = resp.bytes().await.map_err(|e| unreachable(addr, &e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::internal(format!("{addr} answered a status that is not JSON: {e}")))
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

/// Runs `kvsim status`.
///
/// # Errors
/// An unreachable node.
pub fn run(args: StatusArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::internal)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(Error::internal)?;
    let status = runtime.block_on(fetch(&client, &args.target_addr))?;
    match args.output {
        Output::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&status).map_err(Error::internal)?
            );
        }
        Output::Table => {
            let mut table = Table::new();
            table.set_header(vec!["field", "value"]);
            if let Some(obj) = status.as_object() {
                for (k, v) in obj {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Null => "-".into(),
                        other => other.to_string(),
                    };
                    table.add_row(vec![k.clone(), text]);
                }
            }
            println!("{table}");
        }
    }
    Ok(())
}
