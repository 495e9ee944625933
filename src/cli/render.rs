//! Output of client commands: ASCII tables for people, plain JSON for scripts. Tables use a
//! fixed ASCII style and no colour, so output is the same on a terminal, in a pipe and in the
//! golden tests.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Write};
use std::time::{Duration, UNIX_EPOCH};

use comfy_table::{Cell, Table};
use serde_json::Value;

use crate::api::wire::TableDescriptionWire;
use crate::cli::Output;
use crate::cli::plain::{item_to_plain, to_plain};
use crate::model::{AttributeValue, Item};
use crate::{Error, Result};

/// A new table in the house style.
pub fn table(header: Vec<&str>) -> Table {
    let mut t = Table::new();
    t.load_style(comfy_table::presets::ASCII_FULL_CONDENSED);
    t.force_no_tty();
    t.set_header(header);
    t
}

/// Writes command output to stdout (see the `outln!` macro). A reader that went away (a closed
/// pipe) ends the process with exit code 0: the output was not wanted any more.
///
/// # Errors
/// Any other write error, such as a full disk.
pub fn write_stdout(args: std::fmt::Arguments) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::internal(format!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// Prints a JSON value, pretty, on stdout.
///
/// # Errors
/// If stdout cannot be written.
pub fn print_json(v: &Value) -> Result<()> {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).map_err(Error::internal)?
    );
    Ok(())
}

fn cell_text(v: &AttributeValue) -> String {
    let text = match v {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.to_string(),
        AttributeValue::B(_) => to_plain(v).as_str().unwrap_or_default().to_string(),
        other => to_plain(other).to_string(),
    };
    printable(&text)
}

/// Control characters escaped (`\n`, `\u{0}`), so a value cannot break a table's rows or
/// send raw bytes to the terminal. JSON output keeps values exact.
fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Prints items: a list of plain JSON documents, or a table with the key attributes first and
/// the other attributes in name order.
///
/// # Errors
/// As [`print_json`].
pub fn print_items(items: &[Item], key_names: &[&str], output: Output) -> Result<()> {
    match output {
        Output::Json => print_json(&Value::Array(
            items.iter().map(|i| item_to_plain(i, key_names)).collect(),
        )),
        Output::Table => {
            let others: BTreeSet<&str> = items
                .iter()
                .flat_map(|i| i.keys().map(String::as_str))
                .filter(|k| !key_names.contains(k))
                .collect();
            let columns: Vec<&str> = key_names.iter().copied().chain(others).collect();
            let mut t = table(columns.clone());
            for item in items {
                t.add_row(
                    columns
                        .iter()
                        .map(|c| Cell::new(item.get(*c).map(cell_text).unwrap_or_default())),
                );
            }
            outln!("{t}");
            let n = items.len();
            outln!("{n} item{}", if n == 1 { "" } else { "s" });
            Ok(())
        }
    }
}

/// A table's creation time as RFC 3339 (UTC, milliseconds).
pub fn created(d: &TableDescriptionWire) -> String {
    format_ms((d.creation_date_time * 1000.0).round().max(0.0) as u64)
}

/// Milliseconds since the Unix epoch as RFC 3339 (UTC, milliseconds).
pub fn format_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Prints a table description: DynamoDB's JSON shape, or a two-column table.
///
/// # Errors
/// As [`print_json`].
pub fn print_description(d: &TableDescriptionWire, output: Output) -> Result<()> {
    match output {
        Output::Json => print_json(&serde_json::to_value(d).map_err(Error::internal)?),
        Output::Table => {
            let typed = |name: &str| {
                let ty = d
                    .attribute_definitions
                    .iter()
                    .find(|a| a.attribute_name == name)
                    .map_or("?", |a| a.attribute_type.as_str());
                format!("{name} ({ty})")
            };
            let key = |kind: &str| {
                d.key_schema
                    .iter()
                    .find(|k| k.key_type == kind)
                    .map(|k| typed(&k.attribute_name))
            };
            let mut t = table(vec!["Table", &d.table_name]);
            let rows = [
                ("Status", d.table_status.clone()),
                ("Partition key", key("HASH").unwrap_or_default()),
                ("Sort key", key("RANGE").unwrap_or_else(|| "-".into())),
                ("Items", d.item_count.to_string()),
                ("Size (bytes)", d.table_size_bytes.to_string()),
                ("Billing", d.billing_mode_summary.billing_mode.clone()),
                ("Created", created(d)),
                ("ARN", d.table_arn.clone()),
                ("Table id", d.table_id.clone()),
            ];
            for (k, v) in rows {
                t.add_row(vec![k.to_string(), v]);
            }
            outln!("{t}");
            let indexes: Vec<_> = [
                ("global", &d.global_secondary_indexes),
                ("local", &d.local_secondary_indexes),
            ]
            .into_iter()
            .flat_map(|(kind, list)| list.iter().flatten().map(move |i| (kind, i)))
            .collect();
            if !indexes.is_empty() {
                let mut t = table(vec![
                    "Index",
                    "Kind",
                    "Key",
                    "Projection",
                    "Items",
                    "Size (bytes)",
                ]);
                for (kind, i) in indexes {
                    let key: Vec<String> = i
                        .key_schema
                        .iter()
                        .map(|k| format!("{} {}", k.key_type, typed(&k.attribute_name)))
                        .collect();
                    let projection = match &i.projection.non_key_attributes {
                        Some(attrs) => {
                            format!("{} {}", i.projection.projection_type, attrs.join(", "))
                        }
                        None => i.projection.projection_type.clone(),
                    };
                    t.add_row(vec![
                        i.index_name.clone(),
                        kind.to_string(),
                        key.join(", "),
                        projection,
                        i.item_count.to_string(),
                        i.index_size_bytes.to_string(),
                    ]);
                }
                outln!("{t}");
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_escape_control_characters() {
        let v = AttributeValue::S("a\u{0}b\tc\nd é".into());
        assert_eq!(cell_text(&v), "a\\u{0}b\\tc\\nd é");
        assert_eq!(cell_text(&AttributeValue::S("plain".into())), "plain");
    }
}
