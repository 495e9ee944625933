//! `kvsim query-items`: the items of one partition, in sort-key order, optionally narrowed by a
//! sort-key condition; follows pagination to the end unless `--limit` stops it.

use std::collections::BTreeMap;

use clap::ArgGroup;

use crate::api::wire::{QueryInput, WireItem, WireMap};
use crate::cli::Common;
use crate::cli::client::Client;
use crate::cli::commands::{Placeholders, TableInfo, read_all, table_info};
use crate::cli::plain::key_value;
use crate::cli::render::print_items;
use crate::model::{AttributeValue, KeySchema, KeyType};
use crate::{Error, Result};

/// Options of `query-items`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
#[command(group(ArgGroup::new("sort_condition").multiple(false).args([
    "sort_key_prefix", "sort_key_between", "sort_key_eq", "sort_key_gt", "sort_key_ge", "sort_key_lt", "sort_key_le",
])))]
pub struct Args {
    /// The table to query.
    #[arg(long)]
    pub table_name: String,
    /// Query this secondary index of the table instead: --partition-key and the --sort-key-*
    /// conditions are then on the index's key.
    #[arg(long)]
    pub index_name: Option<String>,
    /// Partition key value, converted to the key's type (N keys take numbers, B keys base64).
    /// Negative numbers may follow the flag; write other values that start with '-' as
    /// --partition-key=-x.
    #[arg(long)]
    pub partition_key: String,
    /// Only sort keys starting with this (string or binary sort keys).
    #[arg(long, value_name = "PREFIX")]
    pub sort_key_prefix: Option<String>,
    /// Only sort keys from LOW to HIGH, inclusive. Sort-key values are converted to the sort
    /// key's type (N keys take numbers, B keys base64).
    #[arg(long, num_args = 2, value_names = ["LOW", "HIGH"])]
    pub sort_key_between: Option<Vec<String>>,
    /// Only the sort key equal to this.
    #[arg(long, value_name = "V")]
    pub sort_key_eq: Option<String>,
    /// Only sort keys greater than this.
    #[arg(long, value_name = "V")]
    pub sort_key_gt: Option<String>,
    /// Only sort keys greater than or equal to this.
    #[arg(long, value_name = "V")]
    pub sort_key_ge: Option<String>,
    /// Only sort keys less than this.
    #[arg(long, value_name = "V")]
    pub sort_key_lt: Option<String>,
    /// Only sort keys less than or equal to this.
    #[arg(long, value_name = "V")]
    pub sort_key_le: Option<String>,
    /// Return at most this many items.
    #[arg(long, value_parser = crate::cli::positive)]
    pub limit: Option<u64>,
    /// Highest sort key first.
    #[arg(long)]
    pub descending: bool,
    /// Read through the leader, linearizably, instead of from the node asked.
    #[arg(long)]
    pub consistent: bool,
    /// Keep only the items for which this condition holds (DynamoDB's FilterExpression;
    /// it cannot name key attributes).
    #[arg(long)]
    pub filter_expression: Option<String>,
    /// Return only these attributes (DynamoDB's ProjectionExpression, e.g. 'Album, Details.Genre').
    #[arg(long)]
    pub projection_expression: Option<String>,
    #[command(flatten)]
    pub placeholders: Placeholders,
    #[command(flatten)]
    pub common: Common,
}

/// A KeyConditionExpression with its attribute names and values.
type KeyCondition = (
    String,
    BTreeMap<String, String>,
    BTreeMap<String, AttributeValue>,
);

/// The key condition expression and its values for `args`.
fn condition(args: &Args, info: &TableInfo, schema: &KeySchema) -> Result<KeyCondition> {
    let mut names = BTreeMap::from([("#kvsimPk".to_string(), schema.partition.name.clone())]);
    let mut values = BTreeMap::from([(
        ":kvsimPk".to_string(),
        key_value(&args.partition_key, &schema.partition, "--partition-key")?,
    )]);
    let mut expr = "#kvsimPk = :kvsimPk".to_string();
    let sort_args: [(&str, &str, Option<&String>); 6] = [
        (
            "--sort-key-prefix",
            "begins_with",
            args.sort_key_prefix.as_ref(),
        ),
        ("--sort-key-eq", "=", args.sort_key_eq.as_ref()),
        ("--sort-key-gt", ">", args.sort_key_gt.as_ref()),
        ("--sort-key-ge", ">=", args.sort_key_ge.as_ref()),
        ("--sort-key-lt", "<", args.sort_key_lt.as_ref()),
        ("--sort-key-le", "<=", args.sort_key_le.as_ref()),
    ];
    let given = sort_args.iter().find(|(_, _, v)| v.is_some());
    if given.is_none() && args.sort_key_between.is_none() {
        return Ok((expr, names, values));
    }
    let table = match &args.index_name {
        Some(index) => format!("{}.{index}", info.description.table_name),
        None => info.description.table_name.clone(),
    };
    let Some(sort) = &schema.sort else {
        let what = match &args.index_name {
            Some(_) => "index",
            None => "table",
        };
        return Err(Error::validation(format!(
            "{what} {table} has no sort key, so it takes no --sort-key-* condition"
        )));
    };
    names.insert("#kvsimSk".into(), sort.name.clone());
    let mut value = |flag: &str, name: &str, text: &str| -> Result<()> {
        values.insert(name.into(), key_value(text, sort, flag)?);
        Ok(())
    };
    if let Some(between) = &args.sort_key_between {
        let [low, high] = between.as_slice() else {
            return Err(Error::validation(
                "--sort-key-between takes two values: LOW HIGH",
            ));
        };
        value("--sort-key-between", ":kvsimLo", low)?;
        value("--sort-key-between", ":kvsimHi", high)?;
        expr.push_str(" AND #kvsimSk BETWEEN :kvsimLo AND :kvsimHi");
    } else if let Some((flag, op, Some(text))) = given {
        if *op == "begins_with" && sort.key_type == KeyType::N {
            return Err(Error::validation(format!(
                "--sort-key-prefix needs a string or binary sort key; {table}'s sort key {} is a number (use --sort-key-between or --sort-key-ge/--sort-key-lt)",
                sort.name
            )));
        }
        value(flag, ":kvsimSk", text)?;
        if *op == "begins_with" {
            expr.push_str(" AND begins_with(#kvsimSk, :kvsimSk)");
        } else {
            expr.push_str(&format!(" AND #kvsimSk {op} :kvsimSk"));
        }
    }
    Ok((expr, names, values))
}

/// Runs `query-items`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let info = table_info(client, &args.table_name, args.consistent).await?;
    let schema = match &args.index_name {
        Some(index) => info.index_schema(index)?,
        None => info.schema.clone(),
    };
    let (expr, mut names, mut values) = condition(&args, &info, &schema)?;
    let (user_names, user_values) = args.placeholders.maps()?;
    names.extend(user_names.map(|n| n.0).unwrap_or_default());
    values.extend(user_values.map(|v| v.0).unwrap_or_default());
    let items = read_all(
        client,
        "Query",
        args.consistent,
        args.limit,
        |start, limit| QueryInput {
            table_name: Some(args.table_name.clone()),
            index_name: args.index_name.clone(),
            key_condition_expression: Some(expr.clone()),
            expression_attribute_names: Some(WireMap(names.clone())),
            expression_attribute_values: Some(WireItem(values.clone())),
            scan_index_forward: Some(!args.descending),
            limit,
            exclusive_start_key: start,
            consistent_read: Some(args.consistent),
            filter_expression: args.filter_expression.clone(),
            projection_expression: args.projection_expression.clone(),
            ..Default::default()
        },
    )
    .await?;
    print_items(&items, &info.key_names(), args.common.output)
}
