//! `kvsim transact-write --file F`: a TransactWriteItems in DynamoDB's JSON, as the AWS CLI
//! takes it (a list of `{"Put"|"Update"|"Delete"|"ConditionCheck": ...}`, or a whole request
//! with `TransactItems`). All or nothing: a cancelled transaction prints each action's reason
//! and exits 6.

use serde_json::json;

use crate::api::wire::Empty;
use crate::cli::client::Client;
use crate::cli::commands::batch_write::request_file;
use crate::cli::render::print_json;
use crate::cli::{Common, Output};
use crate::{Error, Result};

/// Options of `transact-write`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The actions as DynamoDB JSON: a path, `file://PATH`, or `-` for standard input.
    #[arg(long)]
    pub file: String,
    /// Make the call idempotent for 10 minutes (DynamoDB's ClientRequestToken).
    #[arg(long)]
    pub client_request_token: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `transact-write`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let items = request_file(&args.file, "TransactItems")?;
    let Some(actions) = items.as_array() else {
        return Err(Error::validation(
            "--file must hold a JSON list of transaction actions",
        ));
    };
    let count = actions.len();
    let mut request = json!({"TransactItems": items});
    if let Some(token) = &args.client_request_token {
        request["ClientRequestToken"] = json!(token);
    }
    let _: Empty = client.call_leader("TransactWriteItems", &request).await?;
    match args.common.output {
        Output::Json => print_json(&json!({"committed": true, "actions": count})),
        Output::Table => {
            outln!(
                "Committed a transaction of {count} action{}.",
                if count == 1 { "" } else { "s" }
            );
            Ok(())
        }
    }
}
