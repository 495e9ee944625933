//! GetItem: a local read, after a ReadIndex when `ConsistentRead` is set, projected when
//! `ProjectionExpression` asks.

use crate::api::AppState;
use crate::api::ops::capacity::{self, Report};
use crate::api::ops::legacy::{self, Expressions, Legacy};
use crate::api::ops::query::context;
use crate::api::ops::{Request, item_member, maybe_consistent, table_name};
use crate::api::wire::{GetItemInput, GetItemOutput, WireItem};
use crate::model::expr::eval::project;
use crate::model::expr::parse_projection;
use crate::model::item::item_size;
use crate::{Error, Result};

/// Runs GetItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<GetItemOutput> {
    let input: GetItemInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    let key = item_member(input.key, "key")?;
    let e = legacy::resolve(
        Expressions {
            projection: input.projection_expression,
            names: input.expression_attribute_names,
            ..Expressions::default()
        },
        Legacy {
            attributes_to_get: input.attributes_to_get.map(|a| a.0),
            ..Legacy::default()
        },
    )?;
    let projection = match e.projection.as_deref() {
        Some(text) => {
            let mut ctx = context(e.names.as_ref(), None)?;
            let paths = parse_projection(text, &mut ctx)?;
            ctx.check_all_used()?;
            Some(paths)
        }
        None if e.names.is_some() => {
            return Err(Error::validation(
                "ExpressionAttributeNames can only be specified when using expressions",
            ));
        }
        None => None,
    };
    maybe_consistent(app, input.consistent_read).await?;
    let name = table.clone();
    let item = app
        .node
        .read(move |store| store.get_item(&table, &key))
        .await?;
    let consumed_capacity = report.one(
        &name,
        capacity::read_units(
            item.as_ref().map_or(0, |i| item_size(i) as u64),
            input.consistent_read.unwrap_or(false),
        ),
    );
    Ok(GetItemOutput {
        consumed_capacity,
        item: item.map(|item| match &projection {
            Some(paths) => WireItem(project(&item, paths)),
            None => WireItem(item),
        }),
    })
}
