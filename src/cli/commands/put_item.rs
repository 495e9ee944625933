//! `kvsim put-item`: writes an item given as plain JSON (or DynamoDB-typed JSON).

use std::io::Read;

use serde_json::json;

use crate::api::wire::{PutItemInput, WriteItemOutput};
use crate::cli::client::Client;
use crate::cli::commands::{check_item_key, describe_key, table_info, wire_item};
use crate::cli::plain::{item_from_plain, item_from_typed, item_to_plain};
use crate::cli::render::print_json;
use crate::cli::{Common, Output};
use crate::model::Item;
use crate::{Error, Result};

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
    #[command(flatten)]
    pub common: Common,
}

/// The JSON `--item-data` names: the text itself, a `file://PATH`, or `-` for stdin.
fn item_text(arg: &str) -> Result<String> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::validation(format!("--item-data -: cannot read stdin: {e}")))?;
        return Ok(text);
    }
    match arg.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Error::validation(format!("--item-data: cannot read {path}: {e}"))),
        None => Ok(arg.to_string()),
    }
}

/// Runs `put-item`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    // Parse before any request: broken JSON sends nothing.
    let text = item_text(&args.item_data)?;
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
