//! `kvsim describe-table`: a table's schema, status and size.

use crate::Result;
use crate::cli::Common;
use crate::cli::client::Client;
use crate::cli::commands::table_info;
use crate::cli::render::print_description;

/// Options of `describe-table`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table to describe.
    #[arg(long)]
    pub table_name: String,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `describe-table`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let info = table_info(client, &args.table_name, false).await?;
    print_description(&info.description, args.common.output)
}
