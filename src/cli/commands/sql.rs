//! `kvsim sql`: one PartiQL statement through ExecuteStatement. A `SELECT` prints its items
//! (following `NextToken` to the end, or until `--limit` items); a write prints what it did,
//! or the items its `RETURNING` clause asked for. The statement is parsed here first, so a
//! malformed one sends nothing and fails with the server's own message.

use crate::api::wire::{ExecuteStatementInput, ExecuteStatementOutput, WireList, WireValue};
use crate::cli::Common;
use crate::cli::client::Client;
use crate::cli::commands::{arg_text, table_info};
use crate::cli::plain::{item_from_plain, item_from_typed};
use crate::cli::render::print_items;
use crate::model::AttributeValue;
use crate::model::partiql::{self, Statement};
use crate::{Error, Result};

/// Options of `sql`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The statement, e.g. `SELECT * FROM "Music" WHERE Artist = ?` (`file://PATH` or `-`
    /// reads it from a file or standard input).
    pub statement: String,
    /// Values for the statement's `?`s, in order: a JSON array of plain values, like
    /// `["Queen", 1975]`.
    #[arg(long)]
    pub params: Option<String>,
    /// --params is DynamoDB-typed JSON (`[{"S": "Queen"}]`), for sets and binary.
    #[arg(long, requires = "params")]
    pub params_typed: bool,
    /// Read through the leader, linearizably, instead of from the node asked.
    #[arg(long)]
    pub consistent: bool,
    /// Return at most this many items (a SELECT).
    #[arg(long, value_parser = crate::cli::positive)]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub common: Common,
}

/// `--params` as values.
fn params(text: &str, typed: bool) -> Result<Vec<AttributeValue>> {
    // An array is read as the one attribute of an item, with the item readers' own checks.
    let wrapped = format!("{{\"p\": {text}}}");
    let item = if typed {
        let list = format!("{{\"p\": {{\"L\": {text}}}}}");
        item_from_typed(&list, "--params")?
    } else {
        item_from_plain(&wrapped, "--params")?
    };
    match item.into_values().next() {
        Some(AttributeValue::L(values)) => Ok(values),
        _ => Err(Error::validation(
            "--params must be a JSON array, like [\"Queen\", 1975]",
        )),
    }
}

/// Runs `sql`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let text = arg_text("the statement", &args.statement)?;
    let values = match &args.params {
        Some(p) => params(&arg_text("--params", p)?, args.params_typed)?,
        None => Vec::new(),
    };
    let statement = partiql::parse(&text, &values)?;
    let writes = statement.is_write();
    let info = table_info(client, statement.table(), args.consistent || writes).await?;
    let parameters =
        (!values.is_empty()).then(|| WireList(values.into_iter().map(WireValue).collect()));
    let mut items = Vec::new();
    let mut next_token = None;
    loop {
        let input = ExecuteStatementInput {
            statement: Some(text.clone()),
            parameters: parameters.clone(),
            consistent_read: (!writes).then_some(args.consistent),
            next_token: next_token.take(),
            ..ExecuteStatementInput::default()
        };
        let out: ExecuteStatementOutput = if writes {
            client.call_leader("ExecuteStatement", &input).await?
        } else {
            client
                .read("ExecuteStatement", &input, args.consistent)
                .await?
        };
        items.extend(out.items.into_iter().map(|i| i.0));
        if let Some(limit) = args.limit {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            if items.len() >= limit {
                items.truncate(limit);
                break;
            }
        }
        match out.next_token {
            Some(token) => next_token = Some(token),
            None => break,
        }
    }
    if writes && items.is_empty() && args.common.output == crate::cli::Output::Table {
        let done = match statement {
            Statement::Insert(_) => "Inserted 1 item into",
            Statement::Update(_) => "Updated 1 item of",
            Statement::Delete(_) => "Deleted 1 item from",
            _ => "Ran the statement on",
        };
        outln!("{done} {}.", statement.table());
        return Ok(());
    }
    // Key columns first, but only those the items have (a projection may leave them out).
    let keys: Vec<&str> = info
        .key_names()
        .into_iter()
        .filter(|k| items.is_empty() || items.iter().any(|i| i.contains_key(*k)))
        .collect();
    print_items(&items, &keys, args.common.output)
}
