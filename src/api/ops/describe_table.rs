//! DescribeTable: the local node's view of the table.

use crate::Result;
use crate::api::AppState;
use crate::api::ops::{Request, existing_table_name, maybe_consistent};
use crate::api::wire::{DescribeTableOutput, TableDescriptionWire, TableNameInput};

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
