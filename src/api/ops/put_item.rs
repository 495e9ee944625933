//! PutItem: validates the item against the local table description, then proposes it with its
//! condition, which the state machine checks when the write applies.

use crate::Result;
use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::capacity::Report;
use crate::api::ops::{
    Request, item_member, item_write_condition, return_old, return_old_on_failure, table_name,
};
use crate::api::wire::{PutItemInput, WriteItemOutput};
use crate::dynamo::driver::DynamoHandle;
use crate::model::item::check_item_size;
use crate::store::{Conditional, ItemWrite};

/// Runs PutItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<WriteItemOutput> {
    run_on(Engine::Raft(app), req).await
}

/// Runs PutItem on the leaderless engine.
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<WriteItemOutput> {
    run_on(Engine::Leaderless(node), req).await
}

pub(crate) async fn run_on(engine: Engine<'_>, req: &mut Request) -> Result<WriteItemOutput> {
    let input: PutItemInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    crate::api::ops::item_collection_metrics(input.return_item_collection_metrics.as_deref())?;
    let want_old = return_old(input.return_values.as_deref())?;
    let old_on_failure =
        return_old_on_failure(input.return_values_on_condition_check_failure.as_deref())?;
    let item = item_member(input.item, "item")?;
    let condition = item_write_condition(
        input.condition_expression,
        input.expression_attribute_names,
        input.expression_attribute_values,
        input.expected,
        input.conditional_operator,
    )?;
    let meta = engine.table_meta(&table).await?;
    meta.spec.key_schema.key_of_item(&item)?;
    check_item_size(&item)?;
    let write = Conditional {
        write: ItemWrite::Put { table, item },
        condition,
        old_on_failure,
    };
    crate::api::ops::write_item(engine, req, &meta, write, want_old, report).await
}
