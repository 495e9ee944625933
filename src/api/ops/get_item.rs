//! GetItem: a local read, after a ReadIndex when `ConsistentRead` is set, projected when
//! `ProjectionExpression` asks.

use crate::Result;
use crate::api::AppState;
use crate::api::decode::off_runtime;
use crate::api::ops::capacity::{self, Report};
use crate::api::ops::{Request, item_member, maybe_consistent, read_projection, table_name};
use crate::api::wire::{GetItemInput, GetItemOutput, WireItem};
use crate::model::expr::eval::project;
use crate::store::tables::StoredItem;

/// Runs GetItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<GetItemOutput> {
    let input: GetItemInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    let key = item_member(input.key, "key")?;
    let projection = read_projection(
        input.projection_expression,
        input.expression_attribute_names,
        input.attributes_to_get.map(|a| a.0),
    )?;
    maybe_consistent(app, input.consistent_read).await?;
    let name = table.clone();
    let consistent = input.consistent_read.unwrap_or(false);
    let cached = if consistent {
        None
    } else {
        app.node
            .read_point(|store| store.get_cached(&table, &key))?
    };
    let item = match cached {
        Some(found) => found.map(|(item, version)| {
            req.version = Some(version);
            (*item).clone()
        }),
        None => match app
            .node
            .read_point(|store| store.get_stored(&table, &key))?
        {
            // Decoding an item of hundreds of kilobytes is long enough to go off the runtime.
            Some(row) => {
                req.version = Some(StoredItem::header(&row)?.0);
                Some(off_runtime(row.len(), move || StoredItem::item(&row)).await??)
            }
            None => None,
        },
    };
    let consumed_capacity = if report.wanted() {
        let consistent = input.consistent_read.unwrap_or(false);
        report.one(&name, capacity::item_read_units(item.as_ref(), consistent))
    } else {
        None
    };
    Ok(GetItemOutput {
        consumed_capacity,
        item: item.map(|item| match &projection {
            Some(paths) => WireItem(project(&item, paths)),
            None => WireItem(item),
        }),
    })
}
