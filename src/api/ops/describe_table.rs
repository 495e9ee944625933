//! DescribeTable: the local node's view of the table.

use crate::Result;
use crate::api::AppState;
use crate::api::ops::{Request, existing_table_name, maybe_consistent};
use crate::api::wire::{DescribeTableOutput, TableDescriptionWire, TableNameInput};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;

/// Runs DescribeTable.
pub async fn run(app: &AppState, req: &mut Request) -> Result<DescribeTableOutput> {
    let input: TableNameInput = req.input().await?;
    let name = existing_table_name(input.table_name.as_ref())?;
    maybe_consistent(app, input.consistent_read).await?;
    let desc = app.node.read(move |store| store.describe(&name)).await?;
    Ok(DescribeTableOutput {
        table: TableDescriptionWire::from_model(&desc),
    })
}

/// Runs DescribeTable on the leaderless engine: the table as R replicas of the catalog have it
/// (all N with `ConsistentRead`).
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<DescribeTableOutput> {
    let input: TableNameInput = req.input().await?;
    let name = existing_table_name(input.table_name.as_ref())?;
    let desc = service::describe_table(node, &name, input.consistent_read.unwrap_or(false)).await?;
    Ok(DescribeTableOutput {
        table: TableDescriptionWire::from_model(&desc),
    })
}
