//! Scan: the whole table in key order, paginated, with a filter and a projection.

use crate::Result;
use crate::api::AppState;
use crate::api::ops::query::{Shape, context, start_key};
use crate::api::ops::{
    Request, limit, maybe_consistent, no_expression_maps, table_meta, table_name,
};
use crate::api::wire::{ReadPageOutput, ScanInput};
use crate::store::read::Range;

/// Runs Scan.
pub async fn run(app: &AppState, req: &mut Request) -> Result<ReadPageOutput> {
    let input: ScanInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let limit = limit(input.limit)?;
    let names = input.expression_attribute_names.as_ref();
    let values = input.expression_attribute_values.as_ref();
    let shape = if input.filter_expression.is_none() && input.projection_expression.is_none() {
        no_expression_maps(names, values)?;
        Shape::parse(
            &mut context(None, None)?,
            None,
            None,
            input.select.as_deref(),
        )?
    } else {
        let mut ctx = context(names, values)?;
        let shape = Shape::parse(
            &mut ctx,
            input.filter_expression.as_deref(),
            input.projection_expression.as_deref(),
            input.select.as_deref(),
        )?;
        ctx.check_all_used()?;
        shape
    };
    maybe_consistent(app, input.consistent_read).await?;
    let meta = table_meta(app, &table).await?;
    let schema = &meta.spec.key_schema;
    let start = start_key(schema, input.exclusive_start_key.as_ref())?;
    let page = app
        .node
        .read(move |store| {
            store.read_range(
                &table,
                &Range {
                    partition: None,
                    sort: None,
                    forward: true,
                    limit,
                    start_after: start.as_ref(),
                },
            )
        })
        .await?;
    Ok(shape.output(schema, page))
}
