//! `kvsim list-tables`: every table name, following pagination.

use serde_json::Value;

use crate::Result;
use crate::api::wire::{ListTablesInput, ListTablesOutput};
use crate::cli::client::Client;
use crate::cli::render::{print_json, table};
use crate::cli::{Common, Output};

/// Options of `list-tables`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
}

/// Runs `list-tables`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let mut names = Vec::new();
    let mut start = None;
    loop {
        let page: ListTablesOutput = client
            .call(
                "ListTables",
                &ListTablesInput {
                    exclusive_start_table_name: start.take(),
                    limit: None,
                },
            )
            .await?;
        names.extend(page.table_names);
        match page.last_evaluated_table_name {
            Some(last) => start = Some(last),
            None => break,
        }
    }
    match args.common.output {
        Output::Json => print_json(&Value::Array(
            names.into_iter().map(Value::String).collect(),
        )),
        Output::Table => {
            let mut t = table(vec!["TableName"]);
            for n in &names {
                t.add_row(vec![n.clone()]);
            }
            outln!("{t}");
            outln!(
                "{} table{}",
                names.len(),
                if names.len() == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}
