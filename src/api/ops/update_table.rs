//! UpdateTable: a new billing mode or provisioned throughput, replicated as a table change.
//! (kvsim does not throttle, so capacity is accepted and reported, as CreateTable's is.)
//! Streams, index updates and deletion protection are refused until kvsim has them.

use crate::api::AppState;
use crate::api::ops::create_table::billing;
use crate::api::ops::{Request, table_meta, table_name};
use crate::api::wire::{TableDescriptionWire, UpdateTableInput, UpdateTableOutput};
use crate::store::{Command, Outcome, TableChange};
use crate::{Error, Result};

/// Runs UpdateTable.
pub async fn run(app: &AppState, req: &mut Request) -> Result<UpdateTableOutput> {
    let input: UpdateTableInput = req.input().await?;
    let name = table_name(input.table_name.as_ref())?;
    if input.global_secondary_index_updates.is_some() {
        return Err(Error::validation(
            "kvsim does not support GlobalSecondaryIndexUpdates yet",
        ));
    }
    if input
        .stream_specification
        .as_ref()
        .is_some_and(|s| s.stream_enabled == Some(true))
    {
        return Err(Error::validation(
            "kvsim does not support DynamoDB Streams yet",
        ));
    }
    if input.deletion_protection_enabled == Some(true) {
        return Err(Error::validation(
            "kvsim does not support DeletionProtectionEnabled yet",
        ));
    }
    if input.billing_mode.is_none() && input.provisioned_throughput.is_none() {
        return Err(Error::validation(
            "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required",
        ));
    }
    table_meta(app, &name).await?;
    let billing = billing(
        input.billing_mode.as_deref(),
        input.provisioned_throughput.as_ref(),
    )?;
    let command = Command::AlterTable {
        name,
        change: TableChange::Billing(billing),
    };
    match app.node.propose(&command).await? {
        Outcome::Table(desc) => Ok(UpdateTableOutput {
            table_description: TableDescriptionWire::from_model(&desc),
        }),
        other => Err(Error::internal(format!("UpdateTable applied as {other:?}"))),
    }
}
