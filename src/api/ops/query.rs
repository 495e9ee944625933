//! Query: one partition, in sort-key order, with a key condition, pagination and `Select`.

use crate::api::AppState;
use crate::api::ops::{Request, count_only, limit, maybe_consistent, table_meta, table_name};
use crate::api::wire::{QueryInput, ReadPageOutput, item_from_wire};
use crate::model::expr::{ExpressionContext, parse_key_condition};
use crate::model::{KeySchema, PrimaryKey};
use crate::store::read::{Page, Range};
use crate::{Error, Result};

/// Validates an `ExclusiveStartKey` against the schema.
pub fn start_key(
    schema: &KeySchema,
    key: Option<&crate::api::wire::WireItem>,
) -> Result<Option<PrimaryKey>> {
    key.map(|k| {
        let item = item_from_wire(k)?;
        schema.key_from_map(&item).map_err(|_| {
            Error::validation("The provided starting key is invalid: The provided key element does not match the schema")
        })
    })
    .transpose()
}

/// Builds the response for a page.
pub fn page_output(schema: &KeySchema, page: Page, count_only: bool) -> ReadPageOutput {
    use crate::api::wire::item_to_wire;
    ReadPageOutput {
        count: page.items.len(),
        scanned_count: page.scanned,
        last_evaluated_key: page.last_key.map(|k| item_to_wire(&k.to_item(schema))),
        items: (!count_only).then(|| page.items.iter().map(item_to_wire).collect()),
    }
}

/// Runs Query.
pub async fn run(app: &AppState, req: &Request) -> Result<ReadPageOutput> {
    let input: QueryInput = req.input()?;
    let table = table_name(input.table_name.as_ref())?;
    let limit = limit(input.limit)?;
    let count_only = count_only(input.select.as_deref())?;
    let expression = input.key_condition_expression.as_deref().ok_or_else(|| {
        Error::validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
    })?;
    let values = input
        .expression_attribute_values
        .as_ref()
        .map(item_from_wire)
        .transpose()?;
    maybe_consistent(app, input.consistent_read).await?;
    let meta = table_meta(app, &table)?;
    let schema = &meta.spec.key_schema;
    let mut ctx =
        ExpressionContext::new(input.expression_attribute_names.as_ref(), values.as_ref())?;
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
    let page = app.node.store().read_range(
        &table,
        &Range {
            partition: Some(&condition.partition),
            sort: condition.sort.as_ref(),
            forward: input.scan_index_forward.unwrap_or(true),
            limit,
            start_after: start.as_ref(),
        },
    )?;
    Ok(page_output(schema, page, count_only))
}
