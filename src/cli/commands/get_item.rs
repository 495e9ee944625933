//! `kvsim get-item`: one item by key; a missing item exits with code 4.

use crate::Result;
use crate::api::wire::{GetItemInput, GetItemOutput, WireSibling};
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
    /// Also print every version the replicas hold (--mode dynamo): writes made concurrently
    /// (say on both sides of a partition) and not yet superseded are siblings, each with its
    /// clock, writer and time; the item shown above them is what the merger makes of them.
    #[arg(long)]
    pub siblings: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `get-item`; returns the exit code.
pub async fn run(client: &Client, args: Args) -> Result<i32> {
    if args.siblings {
        client.want_siblings();
    }
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
    let key_names = info.key_names();
    let siblings = out.siblings.as_ref().map(|list| {
        list.iter()
            .map(|s| {
                serde_json::json!({
                    "item": s.item.as_ref().map(|i| item_to_plain(&i.0, &key_names)),
                    "clock": s.clock,
                    "writer": s.writer,
                    "stamp": s.stamp,
                })
            })
            .collect::<Vec<_>>()
    });
    if args.siblings && args.common.output == Output::Table {
        print_siblings(out.siblings.as_deref(), &key_names)?;
    }
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
        (Output::Json, false) if !args.siblings => print_json(&plain)?,
        (Output::Json, _) => {
            let mut doc = serde_json::json!({"item": plain, "version": version.index});
            if let Some(clock) = &version.clock {
                doc["clock"] = clock.as_str().into();
                doc["merged"] = version.merged.unwrap_or(0).into();
            }
            if args.siblings {
                doc["siblings"] = siblings.map_or(serde_json::Value::Null, Into::into);
            }
            print_json(&doc)?
        }
        (Output::Table, show) => {
            print_items(&[item], &info.key_names(), Output::Table)?;
            if show {
                match (&version.clock, version.index) {
                    (Some(clock), _) => match version.merged {
                        Some(n) => outln!("clock {clock} (merged from {n} concurrent versions)"),
                        None => outln!("clock {clock}"),
                    },
                    (None, Some(index)) => outln!("version {index}"),
                    (None, None) => outln!("version unknown"),
                }
            }
        }
    }
    Ok(0)
}

/// Prints each sibling (a table of one item, or a deletion) under a line naming its clock,
/// writer and time; or says that the server keeps one version per item.
fn print_siblings(siblings: Option<&[WireSibling]>, key_names: &[&str]) -> Result<()> {
    let Some(list) = siblings else {
        outln!("siblings: none kept (the server runs --mode raft: one version per item)");
        return Ok(());
    };
    let total = list.len();
    for (i, s) in list.iter().enumerate() {
        outln!(
            "sibling {} of {total}: clock {}, written through node {} at {}",
            i + 1,
            s.clock,
            s.writer,
            crate::cli::render::format_ms(s.stamp)
        );
        match &s.item {
            Some(item) => print_items(std::slice::from_ref(&item.0), key_names, Output::Table)?,
            None => outln!("(a deletion)"),
        }
    }
    if total > 0 {
        outln!();
    }
    Ok(())
}
