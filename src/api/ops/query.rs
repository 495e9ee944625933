//! Query: one partition, in sort-key order, with a key condition, pagination and `Select`.

use crate::api::AppState;
use crate::api::ops::{Request, count_only, limit, maybe_consistent, table_meta, table_name};
use crate::api::wire::{QueryInput, ReadPageOutput, WireItem};
use crate::model::expr::{ExpressionContext, parse_key_condition};
use crate::model::{KeySchema, PrimaryKey};
use crate::store::read::{Page, Range};
use crate::{Error, Result};

/// Validates an `ExclusiveStartKey` against the schema.
pub fn start_key(schema: &KeySchema, key: Option<&WireItem>) -> Result<Option<PrimaryKey>> {
    key.map(|k| {
        schema.key_from_map(&k.0).map_err(|_| {
            Error::validation("The provided starting key is invalid: The provided key element does not match the schema")
        })
    })
    .transpose()
}

/// Builds the response for a page.
pub fn page_output(schema: &KeySchema, page: Page, count_only: bool) -> ReadPageOutput {
    ReadPageOutput {
        count: page.items.len(),
        scanned_count: page.scanned,
        last_evaluated_key: page.last_key.map(|k| WireItem(k.to_item(schema))),
        items: (!count_only).then(|| page.items.into_iter().map(WireItem).collect()),
    }
}

/// Runs Query.
pub async fn run(app: &AppState, req: &mut Request) -> Result<ReadPageOutput> {
    let input: QueryInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let limit = limit(input.limit)?;
    let count_only = count_only(input.select.as_deref())?;
    let expression = input.key_condition_expression.as_deref().ok_or_else(|| {
        Error::validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
    })?;
    maybe_consistent(app, input.consistent_read).await?;
    let meta = table_meta(app, &table).await?;
    let schema = &meta.spec.key_schema;
    let mut ctx = ExpressionContext::new(
        input.expression_attribute_names.as_ref().map(|n| &n.0),
        input.expression_attribute_values.as_ref().map(|v| &v.0),
    )?;
    let condition = parse_key_condition(expression, &mut ctx, schema)?;
    ctx.check_all_used()?;
    let start = start_key(schema, input.exclusive_start_key.as_ref())?;
    if start
        .as_ref()
        .is_some_and(|s| s.partition != condition.partition)
    {
        return Err(Error::validation(
            "The provided starting key does not match the range key predicate",
        ));
    }
    let forward = input.scan_index_forward.unwrap_or(true);
    let page = app
        .node
        .read(move |store| {
            store.read_range(
                &table,
                &Range {
                    partition: Some(&condition.partition),
                    sort: condition.sort.as_ref(),
                    forward,
                    limit,
                    start_after: start.as_ref(),
                },
            )
        })
        .await?;
    Ok(page_output(schema, page, count_only))
}
