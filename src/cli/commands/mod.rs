//! One file per client subcommand: its arguments, its requests, its rendering.

pub mod batch_write;
pub mod bench;
pub mod create_table;
pub mod delete_item;
pub mod delete_table;
pub mod describe_table;
pub mod edit;
pub mod events;
pub mod fault;
pub mod get_item;
pub mod list_tables;
pub mod put_item;
pub mod query_items;
pub mod scan;
pub mod shell;
pub mod sim;
pub mod sql;
pub mod status;
pub mod stream;
pub mod transact_write;
pub mod transfer_leader;
pub mod ttl;
pub mod update_item;
pub mod watch;

use serde::Serialize;

use crate::api::wire::{
    DescribeTableOutput, KeySchemaElement, ReadPageOutput, TableDescriptionWire, TableNameInput,
    WireItem, WireMap, WireNames,
};
use crate::cli::client::Client;
use crate::cli::plain::{display_value, key_value};
use crate::model::{AttributeValue, Item, KeyAttribute, KeySchema, KeyType};
use crate::{Error, Result};

/// A table's description and its key schema, fetched from the server.
pub struct TableInfo {
    /// DescribeTable's answer.
    pub description: TableDescriptionWire,
    /// The key schema as the model sees it.
    pub schema: KeySchema,
}

impl TableInfo {
    /// Key attribute names, partition first.
    pub fn key_names(&self) -> Vec<&str> {
        self.schema.attribute_names()
    }
}

/// Describes `table` and reads its key schema. With `consistent` the leader answers, so a
/// table created a moment ago through any node is seen; otherwise the node asked answers from
/// its own (possibly stale) state.
///
/// # Errors
/// The server's error (`ResourceNotFound` for a missing table).
pub async fn table_info(client: &Client, table: &str, consistent: bool) -> Result<TableInfo> {
    let request = TableNameInput {
        table_name: Some(table.to_string()),
        consistent_read: consistent.then_some(true),
    };
    let out: DescribeTableOutput = client
        .read("DescribeTable", &request, consistent)
        .await
        .map_err(|e| match e {
            Error::ResourceNotFound(_) => {
                Error::ResourceNotFound(format!("table {table} does not exist"))
            }
            other => other,
        })?;
    let d = out.table;
    let schema = schema_of(&d, &d.key_schema, &format!("table {table}"))?;
    Ok(TableInfo {
        schema,
        description: d,
    })
}

/// The key schema `elements` describe, typed by the table's attribute definitions (one
/// attribute per part: what the CLI's key flags handle).
fn schema_of(
    d: &TableDescriptionWire,
    elements: &[KeySchemaElement],
    what: &str,
) -> Result<KeySchema> {
    let attr = |kind: &str| -> Result<Option<KeyAttribute>> {
        let Some(k) = elements.iter().find(|k| k.key_type == kind) else {
            return Ok(None);
        };
        let ty = d
            .attribute_definitions
            .iter()
            .find(|a| a.attribute_name == k.attribute_name)
            .ok_or_else(|| {
                Error::internal(format!("{what}: key {} has no type", k.attribute_name))
            })?;
        Ok(Some(KeyAttribute {
            name: k.attribute_name.clone(),
            key_type: ty.attribute_type.parse()?,
        }))
    };
    let partition =
        attr("HASH")?.ok_or_else(|| Error::internal(format!("{what} has no partition key")))?;
    let sort = attr("RANGE")?;
    Ok(KeySchema { partition, sort })
}

impl TableInfo {
    /// The key schema of the table's index `name`.
    ///
    /// # Errors
    /// `Validation` if the table has no such index.
    pub fn index_schema(&self, name: &str) -> Result<KeySchema> {
        let d = &self.description;
        let index = d
            .global_secondary_indexes
            .iter()
            .chain(&d.local_secondary_indexes)
            .flatten()
            .find(|i| i.index_name == name)
            .ok_or_else(|| {
                Error::validation(format!("table {} has no index {name}", d.table_name))
            })?;
        schema_of(d, &index.key_schema, &format!("index {name}"))
    }
}

/// Builds the key of `table` from `--partition-key` and `--sort-key` texts.
///
/// # Errors
/// `Validation` when a key part is missing, superfluous, or does not fit its type.
pub fn key_from_args(info: &TableInfo, partition: &str, sort: Option<&str>) -> Result<Item> {
    let table = &info.description.table_name;
    let mut key = Item::new();
    key.insert(
        info.schema.partition.name.clone(),
        key_value(partition, &info.schema.partition, "--partition-key")?,
    );
    match (&info.schema.sort, sort) {
        (Some(attr), Some(text)) => {
            key.insert(attr.name.clone(), key_value(text, attr, "--sort-key")?);
        }
        (Some(attr), None) => {
            return Err(Error::validation(format!(
                "table {table} has sort key {}; give it with --sort-key",
                attr.name
            )));
        }
        (None, Some(_)) => {
            return Err(Error::validation(format!(
                "table {table} has no sort key; drop --sort-key"
            )));
        }
        (None, None) => {}
    }
    Ok(key)
}

/// `Artist="Journey", SongTitle="Let It Be"`: a key for one-line messages.
pub fn describe_key(key: &Item, info: &TableInfo) -> String {
    info.key_names()
        .iter()
        .filter_map(|n| key.get(*n).map(|v| format!("{n}={}", display_value(v))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks an item carries the table's key attributes with the right types, with a message
/// that says what the table expects.
///
/// # Errors
/// `Validation` naming the table, the key and what the item has instead.
pub fn check_item_key(item: &Item, info: &TableInfo) -> Result<()> {
    let table = &info.description.table_name;
    let keys = std::iter::once((&info.schema.partition, "partition"))
        .chain(info.schema.sort.iter().map(|s| (s, "sort")));
    for (attr, role) in keys {
        let Some(v) = item.get(&attr.name) else {
            return Err(Error::validation(format!(
                "table {table} has {role} key {}; the item has no {}",
                attr.name, attr.name
            )));
        };
        let fits = matches!(
            (attr.key_type, v),
            (KeyType::S, AttributeValue::S(_))
                | (KeyType::N, AttributeValue::N(_))
                | (KeyType::B, AttributeValue::B(_))
        );
        if !fits {
            // {"S": "x"} in plain JSON is a map: the user most likely meant typed JSON.
            let hint = match v {
                AttributeValue::M(m)
                    if m.len() == 1
                        && m.keys().all(|k| {
                            ["S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS", "BS"]
                                .contains(&k.as_str())
                        }) =>
                {
                    " (for DynamoDB-typed JSON add --item-data-typed)"
                }
                _ => "",
            };
            return Err(Error::validation(format!(
                "table {table} has {role} key {} of type {}; the item's {} is {} ({}){hint}",
                attr.name,
                attr.key_type,
                attr.name,
                v.type_name(),
                display_value(v)
            )));
        }
    }
    Ok(())
}

/// The wire form of an item.
pub fn wire_item(item: &Item) -> WireItem {
    WireItem(item.clone())
}

/// Follows a Query or Scan to its last page, or until `limit` items: `request` builds each
/// page's input from the start key and how many items are still wanted.
///
/// # Errors
/// The server's error for any page.
pub async fn read_all<I: Serialize>(
    client: &Client,
    op: &str,
    consistent: bool,
    limit: Option<u64>,
    mut request: impl FnMut(Option<WireItem>, Option<i64>) -> I,
) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let remaining = limit.map(|l| l.saturating_sub(items.len() as u64));
        if remaining == Some(0) {
            return Ok(items);
        }
        let input = request(
            start.take(),
            remaining.map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
        );
        let page: ReadPageOutput = client.read(op, &input, consistent).await?;
        items.extend(page.items.unwrap_or_default().into_iter().map(|i| i.0));
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return Ok(items),
        }
    }
}

/// The `(node_id, addr)` pairs a status document lists.
pub fn node_addrs(status: &serde_json::Value) -> Vec<(u64, String)> {
    status["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| Some((n["node_id"].as_u64()?, n["addr"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The text an argument names: the text itself, `file://PATH` for a file's contents, or `-`
/// for standard input.
///
/// # Errors
/// `Validation` naming `flag` when the file or stdin cannot be read.
pub fn arg_text(flag: &str, arg: &str) -> Result<String> {
    use std::io::Read;
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::validation(format!("{flag} -: cannot read stdin: {e}")))?;
        return Ok(text);
    }
    match arg.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Error::validation(format!("{flag}: cannot read {path}: {e}"))),
        None => Ok(arg.to_string()),
    }
}

/// `--names` and `--values`: the placeholders of a command's expressions.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Placeholders {
    /// Expression attribute names as a JSON object, e.g. '{"#s":"status"}', for attribute
    /// names that are reserved words or hold special characters.
    #[arg(long)]
    pub names: Option<String>,
    /// Expression attribute values as plain JSON, like --item-data: '{":v":1,":s":"x"}'
    /// (`file://PATH` and `-` work too).
    #[arg(long)]
    pub values: Option<String>,
    /// Read --values as DynamoDB-typed JSON ('{":v":{"N":"1"}}'), for sets and binary.
    #[arg(long)]
    pub values_typed: bool,
}

impl Placeholders {
    /// The parsed maps, ready for a request.
    ///
    /// # Errors
    /// `Validation` naming the flag when its JSON is not what it should be.
    pub fn maps(&self) -> Result<(Option<WireNames>, Option<WireItem>)> {
        let names = self
            .names
            .as_deref()
            .map(|text| {
                serde_json::from_str::<std::collections::BTreeMap<String, String>>(text)
                    .map(WireMap)
                    .map_err(|e| {
                        Error::validation(format!(
                            "--names must be a JSON object of strings, like {{\"#s\":\"status\"}}: {e}"
                        ))
                    })
            })
            .transpose()?;
        let values = self
            .values
            .as_deref()
            .map(|arg| {
                let text = arg_text("--values", arg)?;
                if self.values_typed {
                    crate::cli::plain::item_from_typed(&text, "--values")
                } else {
                    crate::cli::plain::item_from_plain(&text, "--values")
                }
                .map(WireItem)
            })
            .transpose()?;
        Ok((names, values))
    }
}
