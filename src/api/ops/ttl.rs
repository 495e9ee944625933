//! DescribeTimeToLive and UpdateTimeToLive: time to live is a replicated table setting. In
//! Raft mode the leader deletes expired items through the log (see `cluster`'s expiry loop and
//! the `Expire` command), so every replica removes the same items at the same log index; in
//! `--mode dynamo` the setting lives in the table's catalog entry and one node sweeps (see
//! [`crate::dynamo::service::expire`]).

use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::{Request, required, table_name};
use crate::api::wire::{
    DescribeTimeToLiveOutput, TimeToLiveDescription, TimeToLiveInput, TimeToLiveSpecification,
    UpdateTimeToLiveOutput,
};
use crate::dynamo::driver::DynamoHandle;
use crate::store::TableChange;
use crate::{Error, Result};

/// Runs DescribeTimeToLive.
pub async fn describe(app: &AppState, req: &mut Request) -> Result<DescribeTimeToLiveOutput> {
    describe_on(Engine::Raft(app), req).await
}

/// Runs DescribeTimeToLive in `--mode dynamo`.
pub async fn describe_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<DescribeTimeToLiveOutput> {
    describe_on(Engine::Leaderless(node), req).await
}

async fn describe_on(engine: Engine<'_>, req: &mut Request) -> Result<DescribeTimeToLiveOutput> {
    let input: TimeToLiveInput = req.input().await?;
    let name = table_name(input.table_name.as_ref())?;
    let attribute = engine.settings(&name).await?.ttl;
    Ok(DescribeTimeToLiveOutput {
        time_to_live_description: TimeToLiveDescription {
            time_to_live_status: if attribute.is_some() {
                "ENABLED"
            } else {
                "DISABLED"
            }
            .into(),
            attribute_name: attribute,
        },
    })
}

/// Runs UpdateTimeToLive.
pub async fn update(app: &AppState, req: &mut Request) -> Result<UpdateTimeToLiveOutput> {
    update_on(Engine::Raft(app), req).await
}

/// Runs UpdateTimeToLive in `--mode dynamo`.
pub async fn update_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<UpdateTimeToLiveOutput> {
    update_on(Engine::Leaderless(node), req).await
}

/// The specification is checked before the table is looked up, as DynamoDB checks it.
async fn update_on(engine: Engine<'_>, req: &mut Request) -> Result<UpdateTimeToLiveOutput> {
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
    let change = TableChange::TimeToLive {
        attribute: attribute.clone(),
        enabled,
    };
    engine.alter(name, change).await?;
    Ok(UpdateTimeToLiveOutput {
        time_to_live_specification: TimeToLiveSpecification {
            enabled: Some(enabled),
            attribute_name: Some(attribute),
        },
    })
}
