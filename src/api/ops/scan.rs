//! Scan: the whole table in key order, paginated.

use crate::Result;
use crate::api::AppState;
use crate::api::ops::query::{page_output, start_key};
use crate::api::ops::{
    Request, count_only, limit, maybe_consistent, no_expression_maps, table_meta, table_name,
};
use crate::api::wire::{ReadPageOutput, ScanInput};
use crate::store::read::Range;

/// Runs Scan.
pub async fn run(app: &AppState, req: &mut Request) -> Result<ReadPageOutput> {
    let input: ScanInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let limit = limit(input.limit)?;
    let count_only = count_only(input.select.as_deref())?;
    no_expression_maps(
        input.expression_attribute_names.as_ref(),
        input.expression_attribute_values.as_ref(),
    )?;
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
    Ok(page_output(schema, page, count_only))
}
