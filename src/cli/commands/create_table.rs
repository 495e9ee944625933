//! `kvsim create-table`: a table with a partition key and an optional sort key, on-demand.

use crate::Result;
use crate::api::wire::{
    AttributeDefinition, CreateTableInput, CreateTableOutput, KeySchemaElement, WireList,
};
use crate::cli::client::Client;
use crate::cli::render::print_description;
use crate::cli::{Common, KeyTypeArg};

/// Options of `create-table`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the new table (3-255 characters: letters, digits, '_', '-', '.').
    #[arg(long)]
    pub table_name: String,
    /// Name of the partition (hash) key attribute.
    #[arg(long)]
    pub partition_key_name: String,
    /// Type of the partition key.
    #[arg(long, value_enum, ignore_case = true, default_value_t = KeyTypeArg::S)]
    pub partition_key_type: KeyTypeArg,
    /// Name of the sort (range) key attribute, if the table has one.
    #[arg(long)]
    pub sort_key_name: Option<String>,
    /// Type of the sort key [default: S].
    #[arg(long, value_enum, ignore_case = true, requires = "sort_key_name")]
    pub sort_key_type: Option<KeyTypeArg>,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `create-table`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let mut key_schema = vec![KeySchemaElement {
        attribute_name: args.partition_key_name.clone(),
        key_type: "HASH".into(),
    }];
    let mut defs = vec![AttributeDefinition {
        attribute_name: args.partition_key_name,
        attribute_type: args.partition_key_type.as_str().into(),
    }];
    if let Some(sort) = args.sort_key_name {
        key_schema.push(KeySchemaElement {
            attribute_name: sort.clone(),
            key_type: "RANGE".into(),
        });
        defs.push(AttributeDefinition {
            attribute_name: sort,
            attribute_type: args.sort_key_type.unwrap_or(KeyTypeArg::S).as_str().into(),
        });
    }
    let input = CreateTableInput {
        table_name: Some(args.table_name),
        key_schema: Some(WireList(key_schema)),
        attribute_definitions: Some(WireList(defs)),
        billing_mode: Some("PAY_PER_REQUEST".into()),
        ..Default::default()
    };
    let out: CreateTableOutput = client.call_leader("CreateTable", &input).await?;
    print_description(&out.table_description, args.common.output)
}
