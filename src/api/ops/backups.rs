//! DescribeContinuousBackups and UpdateContinuousBackups: point-in-time recovery is a
//! replicated table setting (on either engine), accepted and reported. kvsim takes no backups
//! yet.

use crate::Result;
use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::{Request, required, table_name};
use crate::api::wire::{
    ContinuousBackupsDescription, ContinuousBackupsInput, ContinuousBackupsOutput,
    PointInTimeRecoveryDescription,
};
use crate::dynamo::driver::DynamoHandle;
use crate::model::table::TableSettings;
use crate::store::TableChange;

fn output(settings: &TableSettings) -> ContinuousBackupsOutput {
    let status = if settings.point_in_time_recovery {
        "ENABLED"
    } else {
        "DISABLED"
    };
    ContinuousBackupsOutput {
        continuous_backups_description: ContinuousBackupsDescription {
            continuous_backups_status: "ENABLED".into(),
            point_in_time_recovery_description: PointInTimeRecoveryDescription {
                point_in_time_recovery_status: status.into(),
            },
        },
    }
}

/// Runs DescribeContinuousBackups.
pub async fn describe(app: &AppState, req: &mut Request) -> Result<ContinuousBackupsOutput> {
    describe_on(Engine::Raft(app), req).await
}

/// Runs DescribeContinuousBackups in `--mode dynamo`.
pub async fn describe_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<ContinuousBackupsOutput> {
    describe_on(Engine::Leaderless(node), req).await
}

async fn describe_on(engine: Engine<'_>, req: &mut Request) -> Result<ContinuousBackupsOutput> {
    let input: ContinuousBackupsInput = req.input().await?;
    let name = table_name(input.table_name.as_ref())?;
    Ok(output(&engine.settings(&name).await?))
}

/// Runs UpdateContinuousBackups.
pub async fn update(app: &AppState, req: &mut Request) -> Result<ContinuousBackupsOutput> {
    update_on(Engine::Raft(app), req).await
}

/// Runs UpdateContinuousBackups in `--mode dynamo`.
pub async fn update_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<ContinuousBackupsOutput> {
    update_on(Engine::Leaderless(node), req).await
}

async fn update_on(engine: Engine<'_>, req: &mut Request) -> Result<ContinuousBackupsOutput> {
    let input: ContinuousBackupsInput = req.input().await?;
    let name = table_name(input.table_name.as_ref())?;
    let spec = required(
        input.point_in_time_recovery_specification,
        "pointInTimeRecoverySpecification",
    )?;
    let on = required(
        spec.point_in_time_recovery_enabled,
        "pointInTimeRecoverySpecification.pointInTimeRecoveryEnabled",
    )?;
    let settings = engine
        .alter(name, TableChange::PointInTimeRecovery(on))
        .await?;
    Ok(output(&settings))
}
