//! TransactGetItems: up to 100 reads across tables, answered by the leader after a ReadIndex
//! from one redb read transaction, so they see one serializable state: no write lands
//! between two of them.

use crate::api::AppState;
use crate::api::ops::capacity::{self, Report, Tally};
use crate::api::ops::{Request, item_member, read_projection, required, table_meta, table_name};
use crate::api::wire::{ItemResponse, TransactGetItemsInput, TransactGetItemsOutput, WireItem};
use crate::model::expr::eval::project;
use crate::{Error, Result};

/// Runs TransactGetItems.
pub async fn run(app: &AppState, req: &mut Request) -> Result<TransactGetItemsOutput> {
    let input: TransactGetItemsInput = req.input().await?;
    let items = required(input.transact_items, "transactItems")?.0;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    if items.is_empty() || items.len() > 100 {
        return Err(Error::validation(
            "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to 100, Member must have length greater than or equal to 1",
        ));
    }
    let mut reads = Vec::new();
    let mut projections = Vec::new();
    for item in items {
        let get = required(item.get, "get")?;
        let table = table_name(get.table_name.as_ref())?;
        let key = item_member(get.key, "key")?;
        let meta = table_meta(app, &table).await?;
        meta.spec.key_schema.key_from_map(&key)?;
        let projection = read_projection(
            get.projection_expression,
            get.expression_attribute_names,
            None,
        )?;
        reads.push((table, key));
        projections.push(projection);
    }
    app.node.read_index().await?;
    let tables: Vec<String> = reads.iter().map(|(t, _)| t.clone()).collect();
    let found = app.node.read(move |store| store.get_items(&reads)).await?;
    // A transactional read costs twice a consistent one.
    let mut tally = Tally::default();
    if report.wanted() {
        for (table, item) in tables.iter().zip(&found) {
            tally.add(table, 2.0 * capacity::item_read_units(item.as_ref(), true));
        }
    }
    Ok(TransactGetItemsOutput {
        consumed_capacity: report.tables(tally),
        responses: found
            .into_iter()
            .zip(projections)
            .map(|(item, projection)| ItemResponse {
                item: item.map(|item| match &projection {
                    Some(paths) => WireItem(project(&item, paths)),
                    None => WireItem(item),
                }),
            })
            .collect(),
    })
}
