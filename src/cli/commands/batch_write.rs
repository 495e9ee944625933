//! `kvsim batch-write --file F`: a BatchWriteItem in DynamoDB's JSON, as the AWS CLI takes it
//! (`{"Table": [{"PutRequest": {"Item": ...}}, ...]}`, or a whole request with
//! `RequestItems`). The batch is applied whole.

use serde_json::{Value, json};

use crate::api::wire::BatchWriteItemOutput;
use crate::cli::client::Client;
use crate::cli::commands::arg_text;
use crate::cli::render::print_json;
use crate::cli::{Common, Output};
use crate::{Error, Result};

/// Options of `batch-write`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The requests as DynamoDB JSON: a path, `file://PATH`, or `-` for standard input.
    #[arg(long)]
    pub file: String,
    #[command(flatten)]
    pub common: Common,
}

/// Reads a request file: `key`'s value if the file holds a whole request, else the file.
///
/// # Errors
/// `Validation` when it cannot be read or is not JSON.
pub fn request_file(file: &str, key: &str) -> Result<Value> {
    let arg = if file == "-" || file.starts_with("file://") {
        file.to_string()
    } else {
        format!("file://{file}")
    };
    let text = arg_text("--file", &arg)?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::validation(format!("--file is not valid JSON: {e}")))?;
    Ok(match value.get(key) {
        Some(inner) => inner.clone(),
        None => value,
    })
}

/// Runs `batch-write`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let items = request_file(&args.file, "RequestItems")?;
    let Some(tables) = items.as_object() else {
        return Err(Error::validation(
            "--file must hold a JSON object of table names to write requests",
        ));
    };
    let count: usize = tables
        .values()
        .map(|r| r.as_array().map_or(0, Vec::len))
        .sum();
    let table_count = tables.len();
    let out: BatchWriteItemOutput = client
        .call_leader("BatchWriteItem", &json!({"RequestItems": items}))
        .await?;
    let unprocessed: usize = out.unprocessed_items.0.values().map(Vec::len).sum();
    match args.common.output {
        Output::Json => {
            print_json(&json!({"written": count - unprocessed, "unprocessed": unprocessed}))
        }
        Output::Table => {
            outln!(
                "Wrote {} request{} to {table_count} table{}.",
                count - unprocessed,
                if count - unprocessed == 1 { "" } else { "s" },
                if table_count == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}
