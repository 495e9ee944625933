//! `kvsim get-item`: one item by key; a missing item exits with code 4.

use crate::Result;
use crate::api::wire::{GetItemInput, GetItemOutput};
use crate::cli::client::Client;
use crate::cli::commands::{describe_key, key_from_args, table_info, wire_item};
use crate::cli::plain::item_to_plain;
use crate::cli::render::{print_items, print_json};
use crate::cli::{Common, EXIT_NOT_FOUND, Output};

/// Options of `get-item`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The table to read.
    #[arg(long)]
    pub table_name: String,
    /// Partition key value, converted to the key's type (N keys take numbers, B keys base64).
    /// Negative numbers may follow the flag; write other values that start with '-' as
    /// --partition-key=-x.
    #[arg(long)]
    pub partition_key: String,
    /// Sort key value, for tables with a sort key; converted like --partition-key.
    #[arg(long)]
    pub sort_key: Option<String>,
    /// Read through the leader, linearizably, instead of from the node asked.
    #[arg(long)]
    pub consistent: bool,
    /// Also print the item's version: in --mode raft the Raft log index of its last write,
    /// which `kvsim edit` and the x-kvsim-expected-version request header compare against;
    /// in --mode dynamo its vector clock, and how many concurrent versions the read merged.
    #[arg(long)]
    pub show_version: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `get-item`; returns the exit code.
pub async fn run(client: &Client, args: Args) -> Result<i32> {
    let info = table_info(client, &args.table_name, args.consistent).await?;
    let key = key_from_args(&info, &args.partition_key, args.sort_key.as_deref())?;
    let request = GetItemInput {
        table_name: Some(args.table_name.clone()),
        key: Some(wire_item(&key)),
        consistent_read: Some(args.consistent),
        ..Default::default()
    };
    let (out, version): (GetItemOutput, _) = client
        .call_versioned("GetItem", &request, None, args.consistent)
        .await?;
    let Some(item) = out.item else {
        eprintln!(
            "not found: no item with {} in {}",
            describe_key(&key, &info),
            args.table_name
        );
        return Ok(EXIT_NOT_FOUND);
    };
    let item = item.0;
    let plain = item_to_plain(&item, &info.key_names());
    match (args.common.output, args.show_version) {
        (Output::Json, false) => print_json(&plain)?,
        (Output::Json, true) => {
            let mut doc = serde_json::json!({"item": plain, "version": version.index});
            if let Some(clock) = &version.clock {
                doc["clock"] = clock.as_str().into();
                doc["merged"] = version.merged.unwrap_or(0).into();
            }
            print_json(&doc)?
        }
        (Output::Table, show) => {
            print_items(&[item], &info.key_names(), Output::Table)?;
            if show {
                match (&version.clock, version.index) {
                    (Some(clock), _) => match version.merged {
                        Some(n) => println!("clock {clock} (merged from {n} concurrent versions)"),
                        None => println!("clock {clock}"),
                    },
                    (None, Some(index)) => println!("version {index}"),
                    (None, None) => println!("version unknown"),
                }
            }
        }
    }
    Ok(0)
}
