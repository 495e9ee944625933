//! DescribeTable: the local node's view of the table.

use crate::Result;
use crate::api::AppState;
use crate::api::ops::{Request, table_name};
use crate::api::wire::{DescribeTableOutput, TableDescriptionWire, TableNameInput};

/// Runs DescribeTable.
pub fn run(app: &AppState, req: &Request) -> Result<DescribeTableOutput> {
    let input: TableNameInput = req.input()?;
    let name = table_name(input.table_name.as_ref())?;
    let desc = app.node.store().describe(&name)?;
    Ok(DescribeTableOutput {
        table: TableDescriptionWire::from_model(&desc),
    })
}
