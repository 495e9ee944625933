//! DescribeContinuousBackups and UpdateContinuousBackups: point-in-time recovery is a
//! replicated table setting, accepted and reported. kvsim takes no backups yet.

use crate::api::AppState;
use crate::api::ops::{Request, required, table_name};
use crate::api::wire::{
    ContinuousBackupsDescription, ContinuousBackupsInput, ContinuousBackupsOutput,
    PointInTimeRecoveryDescription,
};
use crate::model::table::TableSettings;
use crate::store::{Command, Outcome, TableChange};
use crate::{Error, Result};

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
    let input: ContinuousBackupsInput = req.input().await?;
    let name = table_name(input.table_name.as_ref())?;
    let (_, settings) = app.node.read(move |store| store.settings(&name)).await?;
    Ok(output(&settings))
}

/// Runs UpdateContinuousBackups.
pub async fn update(app: &AppState, req: &mut Request) -> Result<ContinuousBackupsOutput> {
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
    let command = Command::AlterTable {
        name,
        change: TableChange::PointInTimeRecovery(on),
    };
    match app.node.propose(&command).await? {
        Outcome::Settings(settings) => Ok(output(&settings)),
        other => Err(Error::internal(format!(
            "UpdateContinuousBackups applied as {other:?}"
        ))),
    }
}
