//! `kvsim scan`: every item of a table in key order; follows pagination to the end unless
//! `--limit` stops it.

use crate::Result;
use crate::api::wire::ScanInput;
use crate::cli::Common;
use crate::cli::client::Client;
use crate::cli::commands::{Placeholders, read_all, table_info};
use crate::cli::render::print_items;

/// Options of `scan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table to scan.
    #[arg(long)]
    pub table_name: String,
    /// Scan this secondary index of the table instead (its items in index-key order).
    #[arg(long)]
    pub index_name: Option<String>,
    /// Return at most this many items.
    #[arg(long, value_parser = crate::cli::positive)]
    pub limit: Option<u64>,
    /// Read through the leader, linearizably, instead of from the node asked.
    #[arg(long)]
    pub consistent: bool,
    /// Keep only the items for which this condition holds (DynamoDB's FilterExpression).
    #[arg(long)]
    pub filter_expression: Option<String>,
    /// Return only these attributes (DynamoDB's ProjectionExpression).
    #[arg(long)]
    pub projection_expression: Option<String>,
    #[command(flatten)]
    pub placeholders: Placeholders,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `scan`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let info = table_info(client, &args.table_name, args.consistent).await?;
    let (names, values) = args.placeholders.maps()?;
    let items = read_all(
        client,
        "Scan",
        args.consistent,
        args.limit,
        |start, limit| ScanInput {
            table_name: Some(args.table_name.clone()),
            index_name: args.index_name.clone(),
            limit,
            exclusive_start_key: start,
            consistent_read: Some(args.consistent),
            filter_expression: args.filter_expression.clone(),
            projection_expression: args.projection_expression.clone(),
            expression_attribute_names: names.clone(),
            expression_attribute_values: values.clone(),
            ..Default::default()
        },
    )
    .await?;
    print_items(&items, &info.key_names(), args.common.output)
}
