//! DeleteTable: proposes the deletion; answers the description with status `DELETING`.

use crate::api::AppState;
use crate::api::ops::{Request, existing_table_name};
use crate::api::wire::{DeleteTableOutput, TableDescriptionWire, TableNameInput};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;
use crate::store::{Command, Outcome};
use crate::{Error, Result};

/// Runs DeleteTable.
pub async fn run(app: &AppState, req: &mut Request) -> Result<DeleteTableOutput> {
    let input: TableNameInput = req.input().await?;
    let name = existing_table_name(input.table_name.as_ref())?;
    // Fail fast with DescribeTable's wording; apply checks again.
    let checked = name.clone();
    app.node.read(move |store| store.describe(&checked)).await?;
    match app.node.propose(&Command::DeleteTable { name }).await? {
        Outcome::Table(desc) => Ok(DeleteTableOutput {
            table_description: TableDescriptionWire::from_model(&desc),
        }),
        other => Err(Error::internal(format!("DeleteTable applied as {other:?}"))),
    }
}

/// Runs DeleteTable on the leaderless engine.
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<DeleteTableOutput> {
    let input: TableNameInput = req.input().await?;
    let name = existing_table_name(input.table_name.as_ref())?;
    let desc = service::delete_table(node, &name).await?;
    Ok(DeleteTableOutput {
        table_description: TableDescriptionWire::from_model(&desc),
    })
}
