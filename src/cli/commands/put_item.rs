//! `kvsim put-item`: writes an item given as plain JSON (or DynamoDB-typed JSON).

use serde_json::json;

use crate::Result;
use crate::api::wire::{PutItemInput, WriteItemOutput};
use crate::cli::client::Client;
use crate::cli::commands::{
    Placeholders, arg_text, check_item_key, describe_key, table_info, wire_item,
};
use crate::cli::plain::{item_from_plain, item_from_typed, item_to_plain};
use crate::cli::render::print_json;
use crate::cli::{Common, Output};
use crate::model::Item;

/// Options of `put-item`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table to write to.
    #[arg(long)]
    pub table_name: String,
    /// The item as a JSON object: strings, numbers, booleans, null, arrays and objects become
    /// S, N, BOOL, NULL, L and M, e.g. '{"Artist":"Journey","Year":1981}'. `file://PATH`
    /// reads it from a file and `-` from standard input (for items too big for a command line).
    #[arg(long)]
    pub item_data: String,
    /// Read --item-data as DynamoDB-typed JSON instead ('{"Artist":{"S":"Journey"}}'), for
    /// sets (SS, NS, BS) and binary (B).
    #[arg(long)]
    pub item_data_typed: bool,
    /// Write only if this condition holds for the item as it is when the write applies
    /// (e.g. 'attribute_not_exists(Artist)'); a false condition exits 6 and writes nothing.
    #[arg(long)]
    pub condition_expression: Option<String>,
    #[command(flatten)]
    pub placeholders: Placeholders,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `put-item`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    // Parse before any request: broken JSON sends nothing.
    let text = arg_text("--item-data", &args.item_data)?;
    let (names, values) = args.placeholders.maps()?;
    let item = if args.item_data_typed {
        item_from_typed(&text, "--item-data")?
    } else {
        item_from_plain(&text, "--item-data")?
    };
    let info = table_info(client, &args.table_name, true).await?;
    check_item_key(&item, &info)?;
    let out: WriteItemOutput = client
        .call_leader(
            "PutItem",
            &PutItemInput {
                table_name: Some(args.table_name.clone()),
                item: Some(wire_item(&item)),
                return_values: Some("ALL_OLD".into()),
                condition_expression: args.condition_expression.clone(),
                expression_attribute_names: names,
                expression_attribute_values: values,
                ..Default::default()
            },
        )
        .await?;
    let replaced = out.attributes.is_some();
    let key_names = info.key_names();
    match args.common.output {
        Output::Json => {
            let key: Item = key_names
                .iter()
                .filter_map(|k| item.get(*k).map(|v| ((*k).to_string(), v.clone())))
                .collect();
            print_json(
                &json!({"table": args.table_name, "key": item_to_plain(&key, &key_names), "replaced": replaced}),
            )
        }
        Output::Table => {
            let what = if replaced { "replaced" } else { "new item" };
            outln!(
                "Put {} into {} ({what}).",
                describe_key(&item, &info),
                args.table_name
            );
            Ok(())
        }
    }
}
