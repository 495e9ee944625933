//! `kvsim transfer-leader`: asks the current leader to hand leadership to another node.

use serde_json::json;

use crate::Result;
use crate::cli::Common;
use crate::cli::Output;
use crate::cli::client::Client;
use crate::cli::render::print_json;

/// Options of `transfer-leader`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node that should lead.
    #[arg(long)]
    pub to: u64,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `transfer-leader`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let (addr, _) = client.live_node().await?;
    let answer = client
        .admin(
            &addr,
            "/admin/transfer-leader",
            Some(&json!({"to": args.to})),
        )
        .await?;
    match args.common.output {
        Output::Json => print_json(&answer),
        Output::Table => {
            outln!("{}.", answer["applied"].as_str().unwrap_or("requested"));
            outln!("Watch it happen with: kvsim status --watch");
            Ok(())
        }
    }
}
