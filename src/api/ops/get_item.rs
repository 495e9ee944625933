//! GetItem: a local read, after a ReadIndex when `ConsistentRead` is set, projected when
//! `ProjectionExpression` asks.

use crate::Result;
use crate::api::AppState;
use crate::api::decode::off_runtime;
use crate::api::engine::Engine;
use crate::api::ops::capacity::{self, Report};
use crate::api::ops::{Request, item_member, maybe_consistent, read_projection, table_name};
use crate::api::wire::{CLOCK_HEADER, MERGED_HEADER, WireSibling};
use crate::api::wire::{GetItemInput, GetItemOutput, WireItem};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;
use crate::model::Item;
use crate::model::expr::eval::project;
use crate::store::tables::StoredItem;

/// Runs GetItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<GetItemOutput> {
    run_on(Engine::Raft(app), req).await
}

/// Runs GetItem on the leaderless engine: from R replicas (all N live ones with
/// `ConsistentRead`), answering the item's vector clock and, when the read merged concurrent
/// versions, how many in [`CLOCK_HEADER`] and [`MERGED_HEADER`].
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<GetItemOutput> {
    run_on(Engine::Leaderless(node), req).await
}

async fn run_on(engine: Engine<'_>, req: &mut Request) -> Result<GetItemOutput> {
    let input: GetItemInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    let key = item_member(input.key, "key")?;
    let projection = read_projection(
        input.projection_expression,
        input.expression_attribute_names,
        input.attributes_to_get.map(|a| a.0),
    )?;
    let consistent = input.consistent_read.unwrap_or(false);
    let name = table.clone();
    let mut siblings = None;
    let item = match engine {
        Engine::Raft(app) => raft_read(app, req, input.consistent_read, table, key).await?,
        Engine::Leaderless(node) => {
            let meta = service::table_for_items(node, &table).await?;
            let key = meta.spec.key_schema.key_from_map(&key)?;
            let read = service::get_item(node, &meta, &key, consistent).await?;
            req.headers.push((CLOCK_HEADER, read.clock));
            if read.merged {
                req.headers.push((MERGED_HEADER, read.versions.to_string()));
            }
            if req.siblings {
                siblings = Some(
                    read.siblings
                        .into_iter()
                        .map(|v| WireSibling {
                            clock: v.clock.to_string(),
                            writer: v.writer,
                            stamp: v.stamp,
                            item: v.item.map(WireItem),
                        })
                        .collect(),
                );
            }
            read.item
        }
    };
    let consumed_capacity = if report.wanted() {
        let consistent = input.consistent_read.unwrap_or(false);
        report.one(&name, capacity::item_read_units(item.as_ref(), consistent))
    } else {
        None
    };
    Ok(GetItemOutput {
        siblings,
        consumed_capacity,
        item: item.map(|item| match &projection {
            Some(paths) => WireItem(project(&item, paths)),
            None => WireItem(item),
        }),
    })
}

/// GetItem's read on a Raft node: local, after a ReadIndex when `ConsistentRead` is set.
async fn raft_read(
    app: &AppState,
    req: &mut Request,
    consistent_read: Option<bool>,
    table: String,
    key: Item,
) -> Result<Option<Item>> {
    maybe_consistent(app, consistent_read).await?;
    let consistent = consistent_read.unwrap_or(false);
    let cached = if consistent {
        None
    } else {
        app.node
            .read_point(|store| store.get_cached(&table, &key))?
    };
    Ok(match cached {
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
    })
}
