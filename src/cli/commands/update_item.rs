//! `kvsim update-item`: changes one item with an update expression (creating it if absent, as
//! DynamoDB does), optionally under a condition, and shows the item as `--return-values` asks.

use serde_json::json;

use crate::Result;
use crate::api::wire::{UpdateItemInput, WriteItemOutput};
use crate::cli::client::Client;
use crate::cli::commands::{Placeholders, describe_key, key_from_args, table_info, wire_item};
use crate::cli::plain::item_to_plain;
use crate::cli::render::{print_items, print_json};
use crate::cli::{Common, Output};

/// What `--return-values` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReturnValues {
    /// Nothing.
    None,
    /// The whole item before the update.
    AllOld,
    /// The updated attributes before the update.
    UpdatedOld,
    /// The whole item after the update.
    AllNew,
    /// The updated attributes after the update.
    UpdatedNew,
}

impl ReturnValues {
    fn wire(self) -> &'static str {
        match self {
            ReturnValues::None => "NONE",
            ReturnValues::AllOld => "ALL_OLD",
            ReturnValues::UpdatedOld => "UPDATED_OLD",
            ReturnValues::AllNew => "ALL_NEW",
            ReturnValues::UpdatedNew => "UPDATED_NEW",
        }
    }
}

/// Options of `update-item`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The table to write to.
    #[arg(long)]
    pub table_name: String,
    /// Partition key value, converted to the key's type (N keys take numbers, B keys base64).
    #[arg(long)]
    pub partition_key: String,
    /// Sort key value, for tables with a sort key; converted like --partition-key.
    #[arg(long)]
    pub sort_key: Option<String>,
    /// DynamoDB's UpdateExpression, e.g. 'SET Plays = Plays + :one REMOVE Draft'.
    #[arg(long)]
    pub update_expression: String,
    /// Update only if this condition holds for the item as it is when the update applies;
    /// a false condition exits 6 and changes nothing.
    #[arg(long)]
    pub condition_expression: Option<String>,
    /// What to show afterwards.
    #[arg(long, value_enum, default_value_t = ReturnValues::AllNew)]
    pub return_values: ReturnValues,
    #[command(flatten)]
    pub placeholders: Placeholders,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `update-item`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let (names, values) = args.placeholders.maps()?;
    let info = table_info(client, &args.table_name, true).await?;
    let key = key_from_args(&info, &args.partition_key, args.sort_key.as_deref())?;
    let out: WriteItemOutput = client
        .call_leader(
            "UpdateItem",
            &UpdateItemInput {
                table_name: Some(args.table_name.clone()),
                key: Some(wire_item(&key)),
                update_expression: Some(args.update_expression.clone()),
                condition_expression: args.condition_expression.clone(),
                expression_attribute_names: names,
                expression_attribute_values: values,
                return_values: Some(args.return_values.wire().into()),
                ..Default::default()
            },
        )
        .await?;
    let shown = out.attributes.map(|a| a.0);
    let key_names = info.key_names();
    match args.common.output {
        Output::Json => print_json(&json!({
            "table": args.table_name,
            "key": item_to_plain(&key, &key_names),
            "attributes": shown.as_ref().map(|a| item_to_plain(a, &key_names)),
        })),
        Output::Table => {
            outln!(
                "Updated {} in {}.",
                describe_key(&key, &info),
                args.table_name
            );
            match shown {
                Some(item) => print_items(&[item], &key_names, Output::Table),
                None => Ok(()),
            }
        }
    }
}
