//! `kvsim delete-table`: deletes a table and all its items.

use crate::api::wire::{DeleteTableOutput, TableNameInput};
use crate::cli::client::Client;
use crate::cli::render::print_description;
use crate::cli::{Common, Output};
use crate::{Error, Result};

/// Options of `delete-table`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table to delete.
    #[arg(long)]
    pub table_name: String,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `delete-table`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let out: DeleteTableOutput = client
        .call_leader(
            "DeleteTable",
            &TableNameInput {
                table_name: Some(args.table_name.clone()),
                consistent_read: None,
            },
        )
        .await
        .map_err(|e| match e {
            Error::ResourceNotFound(_) => {
                Error::ResourceNotFound(format!("table {} does not exist", args.table_name))
            }
            other => other,
        })?;
    match args.common.output {
        Output::Json => print_description(&out.table_description, Output::Json),
        Output::Table => {
            let d = &out.table_description;
            let n = d.item_count;
            outln!(
                "Deleted table {} ({n} item{}).",
                d.table_name,
                if n == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}
