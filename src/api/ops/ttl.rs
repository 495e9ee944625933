//! DescribeTimeToLive and UpdateTimeToLive: time to live is a replicated table setting; the
//! leader deletes expired items through the log (see `cluster`'s expiry loop and the
//! `Expire` command), so every replica removes the same items at the same log index. In
//! `--mode dynamo` the setting lives in the table's catalog entry and one node sweeps
//! (see [`crate::dynamo::service::expire`]).

use crate::api::AppState;
use crate::api::ops::{Request, required, table_name};
use crate::api::wire::{
    DescribeTimeToLiveOutput, TimeToLiveDescription, TimeToLiveInput, TimeToLiveSpecification,
    UpdateTimeToLiveOutput,
};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;
use crate::store::{Command, Outcome, TableChange};
use crate::{Error, Result};

/// Runs DescribeTimeToLive.
pub async fn describe(app: &AppState, req: &mut Request) -> Result<DescribeTimeToLiveOutput> {
    let input: TimeToLiveInput = req.input().await?;
    let name = table_name(input.table_name.as_ref())?;
    let (_, settings) = app.node.read(move |store| store.settings(&name)).await?;
    Ok(described(settings.ttl))
}

/// Runs DescribeTimeToLive in `--mode dynamo`.
pub async fn describe_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<DescribeTimeToLiveOutput> {
    let input: TimeToLiveInput = req.input().await?;
    let name = table_name(input.table_name.as_ref())?;
    Ok(described(service::time_to_live(node, &name).await?))
}

fn described(attribute: Option<String>) -> DescribeTimeToLiveOutput {
    DescribeTimeToLiveOutput {
        time_to_live_description: TimeToLiveDescription {
            time_to_live_status: if attribute.is_some() {
                "ENABLED"
            } else {
                "DISABLED"
            }
            .into(),
            attribute_name: attribute,
        },
    }
}

/// The table, attribute and switch an UpdateTimeToLive asks for, checked before the table is
/// looked up, as DynamoDB checks them.
fn parse_update(input: TimeToLiveInput) -> Result<(String, String, bool)> {
    let spec = required(input.time_to_live_specification, "timeToLiveSpecification")?;
    let attribute = required(spec.attribute_name, "timeToLiveSpecification.attributeName")?;
    let enabled = required(spec.enabled, "timeToLiveSpecification.enabled")?;
    if attribute.is_empty() || attribute.len() > 255 {
        return Err(Error::validation(format!(
            "1 validation error detected: Value '{attribute}' at 'timeToLiveSpecification.attributeName' failed to satisfy constraint: Member must have length {}",
            if attribute.is_empty() {
                "greater than or equal to 1"
            } else {
                "less than or equal to 255"
            }
        )));
    }
    let name = table_name(input.table_name.as_ref())?;
    Ok((name, attribute, enabled))
}

fn updated(attribute: String, enabled: bool) -> UpdateTimeToLiveOutput {
    UpdateTimeToLiveOutput {
        time_to_live_specification: TimeToLiveSpecification {
            enabled: Some(enabled),
            attribute_name: Some(attribute),
        },
    }
}

/// Runs UpdateTimeToLive in `--mode dynamo`.
pub async fn update_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<UpdateTimeToLiveOutput> {
    let (name, attribute, enabled) = parse_update(req.input().await?)?;
    service::update_time_to_live(node, &name, attribute.clone(), enabled).await?;
    Ok(updated(attribute, enabled))
}

/// Runs UpdateTimeToLive.
pub async fn update(app: &AppState, req: &mut Request) -> Result<UpdateTimeToLiveOutput> {
    let (name, attribute, enabled) = parse_update(req.input().await?)?;
    let command = Command::AlterTable {
        name,
        change: TableChange::TimeToLive {
            attribute: attribute.clone(),
            enabled,
        },
    };
    match app.node.propose(&command).await? {
        Outcome::Settings(_) => Ok(updated(attribute, enabled)),
        other => Err(Error::internal(format!(
            "UpdateTimeToLive applied as {other:?}"
        ))),
    }
}
