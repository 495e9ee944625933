//! `kvsim ttl`: shows a table's time to live, or turns it on or off (UpdateTimeToLive).

use crate::api::wire::{
    DescribeTimeToLiveOutput, TimeToLiveInput, TimeToLiveSpecification, UpdateTimeToLiveOutput,
};
use crate::cli::client::Client;
use crate::cli::render::print_json;
use crate::cli::{Common, Output};
use crate::{Error, Result};

/// Options of `ttl`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The table.
    #[arg(long)]
    pub table_name: String,
    /// Turn time to live on: items whose ATTRIBUTE holds a number of epoch seconds in the
    /// past are deleted (by the leader, within about --ttl-interval-ms of the server).
    #[arg(long, value_name = "ATTRIBUTE", conflicts_with = "disable")]
    pub enable: Option<String>,
    /// Turn time to live off.
    #[arg(long)]
    pub disable: bool,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `ttl`.
pub async fn run(client: &Client, args: Args) -> Result<()> {
    let not_found = |e: Error| match e {
        Error::ResourceNotFound(_) => {
            Error::ResourceNotFound(format!("table {} does not exist", args.table_name))
        }
        other => other,
    };
    let describe = || async {
        client
            .call_leader::<_, DescribeTimeToLiveOutput>(
                "DescribeTimeToLive",
                &TimeToLiveInput {
                    table_name: Some(args.table_name.clone()),
                    time_to_live_specification: None,
                },
            )
            .await
            .map_err(not_found)
    };
    let spec = match (&args.enable, args.disable) {
        (Some(attribute), _) => Some((true, attribute.clone())),
        (None, true) => {
            // DynamoDB wants the attribute to turn off; the user should not need to know it.
            let current = describe().await?.time_to_live_description.attribute_name;
            let Some(attribute) = current else {
                return Err(Error::validation(format!(
                    "time to live is already off on {}",
                    args.table_name
                )));
            };
            Some((false, attribute))
        }
        (None, false) => None,
    };
    let Some((enabled, attribute)) = spec else {
        let out = describe().await?;
        return match args.common.output {
            Output::Json => print_json(&serde_json::to_value(&out).map_err(Error::internal)?),
            Output::Table => {
                let d = out.time_to_live_description;
                match d.attribute_name {
                    Some(a) => outln!(
                        "Time to live on {}: {} (attribute {a})",
                        args.table_name,
                        d.time_to_live_status
                    ),
                    None => outln!(
                        "Time to live on {}: {}",
                        args.table_name,
                        d.time_to_live_status
                    ),
                }
                Ok(())
            }
        };
    };
    let out: UpdateTimeToLiveOutput = client
        .call_leader(
            "UpdateTimeToLive",
            &TimeToLiveInput {
                table_name: Some(args.table_name.clone()),
                time_to_live_specification: Some(TimeToLiveSpecification {
                    enabled: Some(enabled),
                    attribute_name: Some(attribute.clone()),
                }),
            },
        )
        .await
        .map_err(not_found)?;
    match args.common.output {
        Output::Json => print_json(&serde_json::to_value(&out).map_err(Error::internal)?)?,
        Output::Table if enabled => outln!(
            "Time to live on {}: ENABLED (attribute {attribute}): items whose {attribute} holds epoch seconds in the past are deleted.",
            args.table_name
        ),
        Output::Table => outln!("Time to live on {}: DISABLED", args.table_name),
    }
    Ok(())
}
