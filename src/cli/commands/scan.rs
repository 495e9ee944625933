//! `kvsim scan`: every item of a table in key order; follows pagination to the end unless
//! `--limit` stops it.

use crate::Result;
use crate::api::wire::{ReadPageOutput, ScanInput, item_from_wire};
use crate::cli::Common;
use crate::cli::client::Client;
use crate::cli::commands::table_info;
use crate::cli::render::print_items;
use crate::model::Item;

/// Options of `scan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table to scan.
    #[arg(long)]
    pub table_name: String,
    /// Return at most this many items.
    #[arg(long, value_parser = crate::cli::positive)]
    pub limit: Option<u64>,
    /// Read through the leader, linearizably, instead of from the node asked.
    #[arg(long)]
    pub consistent: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `scan`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let info = table_info(client, &args.table_name, args.consistent).await?;
    let mut items: Vec<Item> = Vec::new();
    let mut start = None;
    loop {
        let remaining = args.limit.map(|l| l.saturating_sub(items.len() as u64));
        if remaining == Some(0) {
            break;
        }
        let request = ScanInput {
            table_name: Some(args.table_name.clone()),
            limit: remaining.map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
            exclusive_start_key: start.take(),
            consistent_read: Some(args.consistent),
            ..Default::default()
        };
        let page: ReadPageOutput = client.read("Scan", &request, args.consistent).await?;
        for item in page.items.unwrap_or_default() {
            items.push(item_from_wire(&item)?);
        }
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    print_items(&items, &info.key_names(), args.common.output)
}
