//! `kvsim delete-item`: deletes one item by key (deleting a missing item is not an error).

use serde_json::json;

use crate::Result;
use crate::api::wire::{DeleteItemInput, WriteItemOutput};
use crate::cli::client::Client;
use crate::cli::commands::{Placeholders, describe_key, key_from_args, table_info, wire_item};
use crate::cli::plain::item_to_plain;
use crate::cli::render::print_json;
use crate::cli::{Common, Output};

/// Options of `delete-item`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The table to delete from.
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
    /// Delete only if this condition holds for the item as it is when the delete applies;
    /// a false condition exits 6 and deletes nothing.
    #[arg(long)]
    pub condition_expression: Option<String>,
    #[command(flatten)]
    pub placeholders: Placeholders,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `delete-item`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let info = table_info(client, &args.table_name, true).await?;
    let key = key_from_args(&info, &args.partition_key, args.sort_key.as_deref())?;
    let (names, values) = args.placeholders.maps()?;
    let out: WriteItemOutput = client
        .call_leader(
            "DeleteItem",
            &DeleteItemInput {
                table_name: Some(args.table_name.clone()),
                key: Some(wire_item(&key)),
                return_values: Some("ALL_OLD".into()),
                condition_expression: args.condition_expression.clone(),
                expression_attribute_names: names,
                expression_attribute_values: values,
                ..Default::default()
            },
        )
        .await?;
    let deleted = out.attributes.is_some();
    match args.common.output {
        Output::Json => print_json(
            &json!({"table": args.table_name, "key": item_to_plain(&key, &info.key_names()), "deleted": deleted}),
        ),
        Output::Table => {
            if deleted {
                outln!(
                    "Deleted {} from {}.",
                    describe_key(&key, &info),
                    args.table_name
                );
            } else {
                outln!(
                    "No item with {} in {}; nothing deleted.",
                    describe_key(&key, &info),
                    args.table_name
                );
            }
            Ok(())
        }
    }
}
