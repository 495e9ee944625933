//! DescribeTable: the local node's view of the table.

use crate::Result;
use crate::api::AppState;
use crate::api::ops::{Request, maybe_consistent, table_name};
use crate::api::wire::{DescribeTableOutput, TableDescriptionWire, TableNameInput};

/// Runs DescribeTable.
pub async fn run(app: &AppState, req: &Request) -> Result<DescribeTableOutput> {
    let input: TableNameInput = req.input()?;
    let name = table_name(input.table_name.as_ref())?;
    maybe_consistent(app, input.consistent_read).await?;
    let desc = app.node.store().describe(&name)?;
    Ok(DescribeTableOutput {
        table: TableDescriptionWire::from_model(&desc),
    })
}
