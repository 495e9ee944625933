//! DescribeTimeToLive and UpdateTimeToLive: time to live is a replicated table setting; the
//! leader deletes expired items through the log (see `cluster`'s expiry loop and the
//! `Expire` command), so every replica removes the same items at the same log index.

use crate::api::AppState;
use crate::api::ops::{Request, required, table_name};
use crate::api::wire::{
    DescribeTimeToLiveOutput, TimeToLiveDescription, TimeToLiveInput, TimeToLiveSpecification,
    UpdateTimeToLiveOutput,
};
use crate::store::{Command, Outcome, TableChange};
use crate::{Error, Result};

/// Runs DescribeTimeToLive.
pub async fn describe(app: &AppState, req: &mut Request) -> Result<DescribeTimeToLiveOutput> {
    let input: TimeToLiveInput = req.input().await?;
    let name = table_name(input.table_name.as_ref())?;
    let (_, settings) = app.node.read(move |store| store.settings(&name)).await?;
    Ok(DescribeTimeToLiveOutput {
        time_to_live_description: TimeToLiveDescription {
            time_to_live_status: if settings.ttl.is_some() {
                "ENABLED"
            } else {
                "DISABLED"
            }
            .into(),
            attribute_name: settings.ttl,
        },
    })
}

/// Runs UpdateTimeToLive. The specification is checked before the table is looked up, as
/// DynamoDB checks it.
pub async fn update(app: &AppState, req: &mut Request) -> Result<UpdateTimeToLiveOutput> {
    let input: TimeToLiveInput = req.input().await?;
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
    let command = Command::AlterTable {
        name,
        change: TableChange::TimeToLive {
            attribute: attribute.clone(),
            enabled,
        },
    };
    match app.node.propose(&command).await? {
        Outcome::Settings(_) => Ok(UpdateTimeToLiveOutput {
            time_to_live_specification: TimeToLiveSpecification {
                enabled: Some(enabled),
                attribute_name: Some(attribute),
            },
        }),
        other => Err(Error::internal(format!(
            "UpdateTimeToLive applied as {other:?}"
        ))),
    }
}
