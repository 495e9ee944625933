//! UpdateTable: a new billing mode or provisioned throughput, replicated as a table change
//! (kvsim does not throttle, so capacity is accepted and reported, as CreateTable's is), or a
//! global index added (then filled by the leader's backfill, see [`crate::cluster`]) or
//! removed, or its stream enabled or disabled (one of these per request). Deletion protection
//! is refused until kvsim has it. In `--mode dynamo` a new index is active at once (index
//! entries are computed from the items when read) and streams are refused.

use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::create_table::{billing, key_type};
use crate::api::ops::index_schema::{TableKeys, created_index, updated_throughput};
use crate::api::ops::streams::requested_view;
use crate::api::ops::{Request, table_meta, table_name};
use crate::api::wire::{GsiUpdateWire, TableDescriptionWire, UpdateTableInput, UpdateTableOutput};
use crate::dynamo::driver::DynamoHandle;
use crate::model::KeyAttribute;
use crate::model::table::TableDescription;
use crate::store::{Command, IndexChange, Outcome, TableChange};
use crate::{Error, Result};

/// Runs UpdateTable.
pub async fn run(app: &AppState, req: &mut Request) -> Result<UpdateTableOutput> {
    run_on(Engine::Raft(app), req).await
}

/// Runs UpdateTable in `--mode dynamo`.
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<UpdateTableOutput> {
    run_on(Engine::Leaderless(node), req).await
}

async fn run_on(engine: Engine<'_>, req: &mut Request) -> Result<UpdateTableOutput> {
    let input: UpdateTableInput = req.input().await?;
    let name = table_name(input.table_name.as_ref())?;
    if input.deletion_protection_enabled == Some(true) {
        return Err(Error::validation(
            "kvsim does not support DeletionProtectionEnabled yet",
        ));
    }
    if input.stream_specification.is_some()
        && (input.global_secondary_index_updates.is_some()
            || input.billing_mode.is_some()
            || input.provisioned_throughput.is_some())
    {
        return Err(Error::validation(
            "kvsim applies StreamSpecification on its own: send the other changes in another UpdateTable",
        ));
    }
    if let Some(updates) = &input.global_secondary_index_updates {
        if input.billing_mode.is_some() || input.provisioned_throughput.is_some() {
            return Err(Error::validation(
                "kvsim applies GlobalSecondaryIndexUpdates on their own: send the billing change in another UpdateTable",
            ));
        }
        let change = index_update(engine, &name, &input, &updates.0).await?;
        return output(engine.alter_indexes(name, change).await?);
    }
    if let Some(spec) = &input.stream_specification {
        let view = requested_view(spec)?;
        let app = match engine {
            Engine::Raft(app) => app,
            Engine::Leaderless(node) => {
                return output(crate::dynamo::service::alter_stream(node, &name, view).await?);
            }
        };
        table_meta(app, &name).await?;
        let shard_entries = app.node.tuning().stream_shard_entries;
        let change = TableChange::Stream(view.map(|v| (v, shard_entries)));
        return alter(app, name, change).await;
    }
    if input.billing_mode.is_none() && input.provisioned_throughput.is_none() {
        return Err(Error::validation(
            "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required",
        ));
    }
    engine.table_meta(&name).await?;
    let billing = billing(
        input.billing_mode.as_deref(),
        input.provisioned_throughput.as_ref(),
    )?;
    output(engine.alter_billing(name, billing).await?)
}

fn output(desc: TableDescription) -> Result<UpdateTableOutput> {
    Ok(UpdateTableOutput {
        table_description: TableDescriptionWire::from_model(&desc),
    })
}

/// Proposes one table change and answers with the table as it left it.
async fn alter(app: &AppState, name: String, change: TableChange) -> Result<UpdateTableOutput> {
    match app
        .node
        .propose(&Command::AlterTable { name, change })
        .await?
    {
        Outcome::Table(desc) => Ok(UpdateTableOutput {
            table_description: TableDescriptionWire::from_model(&desc),
        }),
        other => Err(Error::internal(format!("UpdateTable applied as {other:?}"))),
    }
}

/// The change UpdateTable's one `GlobalSecondaryIndexUpdates` element asks for.
async fn index_update(
    engine: Engine<'_>,
    name: &str,
    input: &UpdateTableInput,
    updates: &[GsiUpdateWire],
) -> Result<IndexChange> {
    let [update] = updates else {
        return Err(if updates.is_empty() {
            Error::validation(
                "One or more parameter values were invalid: List of GlobalSecondaryIndexUpdates is empty",
            )
        } else {
            Error::LimitExceeded(
                "Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table".into(),
            )
        });
    };
    let meta = engine.table_meta(name).await?;
    match (&update.create, &update.delete, &update.update) {
        (Some(create), None, None) => {
            let mut definitions = meta.spec.attribute_definitions.clone();
            for (i, d) in input
                .attribute_definitions
                .iter()
                .flat_map(|l| &l.0)
                .enumerate()
            {
                let key_type = key_type(
                    &d.attribute_type,
                    &format!("attributeDefinitions.{}.member.attributeType", i + 1),
                )?;
                match definitions.iter().find(|a| a.name == d.attribute_name) {
                    Some(a) if a.key_type != key_type => {
                        return Err(Error::validation(format!(
                            "One or more parameter values were invalid: Attribute {} is already defined with type {}, not {key_type}",
                            d.attribute_name, a.key_type
                        )));
                    }
                    Some(_) => {}
                    None => definitions.push(KeyAttribute {
                        name: d.attribute_name.clone(),
                        key_type,
                    }),
                }
            }
            let index = created_index(
                &TableKeys {
                    schema: &meta.spec.key_schema,
                    definitions: &definitions,
                    billing: &meta.spec.billing,
                },
                create,
            )?;
            let definitions = index.key_attributes().cloned().collect();
            Ok(IndexChange::Create { index, definitions })
        }
        (None, Some(delete), None) => {
            let index = delete.index_name.clone().ok_or_else(|| {
                Error::validation(
                    "1 validation error detected: Value null at 'globalSecondaryIndexUpdates.1.member.delete.indexName' failed to satisfy constraint: Member must not be null",
                )
            })?;
            Ok(IndexChange::Delete { index })
        }
        (None, None, Some(update)) => {
            let index = update.index_name.clone().ok_or_else(|| {
                Error::validation(
                    "1 validation error detected: Value null at 'globalSecondaryIndexUpdates.1.member.update.indexName' failed to satisfy constraint: Member must not be null",
                )
            })?;
            let table = TableKeys {
                schema: &meta.spec.key_schema,
                definitions: &meta.spec.attribute_definitions,
                billing: &meta.spec.billing,
            };
            let Some(units) =
                updated_throughput(&table, &index, update.provisioned_throughput.as_ref())?
            else {
                return Err(Error::validation(format!(
                    "One or more parameter values were invalid: ProvisionedThroughput is not specified for index: {index}"
                )));
            };
            Ok(IndexChange::Throughput { index, units })
        }
        _ => Err(Error::validation(
            "One or more parameter values were invalid: One of GlobalSecondaryIndexUpdate.Create, GlobalSecondaryIndexUpdate.Update or GlobalSecondaryIndexUpdate.Delete must be specified",
        )),
    }
}
