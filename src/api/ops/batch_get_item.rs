//! BatchGetItem: up to 100 keys across tables, each table with its own projection and read
//! consistency. Items are returned until the answer would pass DynamoDB's 16 MB; the keys
//! left go back in `UnprocessedKeys`, as DynamoDB does.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::capacity::{self, Report, Tally};
use crate::api::ops::{Request, read_projection, required, table_name};
use crate::api::wire::{
    BatchGetItemInput, BatchGetItemOutput, KeysAndAttributes, WireItem, WireList,
};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;
use crate::model::expr::eval::project;
use crate::model::item::item_size;
use crate::{Error, Result};

/// DynamoDB's limit on the keys of one BatchGetItem.
pub const MAX_KEYS: usize = 100;
/// DynamoDB's limit on the size of one BatchGetItem answer.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Runs BatchGetItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<BatchGetItemOutput> {
    run_on(Engine::Raft(app), req).await
}

/// Runs BatchGetItem on the leaderless engine: one quorum read per key.
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<BatchGetItemOutput> {
    run_on(Engine::Leaderless(node), req).await
}

async fn run_on(engine: Engine<'_>, req: &mut Request) -> Result<BatchGetItemOutput> {
    let input: BatchGetItemInput = req.input().await?;
    let tables = required(input.request_items, "requestItems")?.0;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    if tables.is_empty() {
        return Err(Error::validation(
            "1 validation error detected: Value '{}' at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    let total: usize = tables
        .values()
        .map(|t| t.keys.as_ref().map_or(0, |k| k.0.len()))
        .sum();
    if total > MAX_KEYS {
        return Err(Error::validation(
            "Too many items requested for the BatchGetItem call",
        ));
    }
    // Check everything before reading anything.
    let mut plan = Vec::new();
    let mut metas = BTreeMap::new();
    let mut consistent = false;
    for (table, request) in &tables {
        let table = table_name(Some(table))?;
        let keys = &required(request.keys.as_ref(), "keys")?.0;
        if keys.is_empty() {
            return Err(Error::validation(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length greater than or equal to 1]",
            ));
        }
        let projection = read_projection(
            request.projection_expression.clone(),
            request.expression_attribute_names.clone(),
            request.attributes_to_get.clone().map(|a| a.0),
        )?;
        let meta = engine.table_meta(&table).await?;
        let mut seen = BTreeSet::new();
        for key in keys {
            let primary = meta.spec.key_schema.key_from_map(&key.0)?;
            if !seen.insert(primary.encode()) {
                return Err(Error::validation(
                    "Provided list of item keys contains duplicates",
                ));
            }
        }
        consistent |= request.consistent_read.unwrap_or(false);
        metas.insert(table.clone(), meta);
        plan.push((
            table,
            keys.iter().map(|k| k.0.clone()).collect::<Vec<_>>(),
            projection,
        ));
    }
    let reads: Vec<(String, crate::model::Item)> = plan
        .iter()
        .flat_map(|(t, keys, _)| keys.iter().map(|k| (t.clone(), k.clone())))
        .collect();
    let mut found = match engine {
        Engine::Raft(app) => {
            if consistent {
                app.node.read_index().await?;
            }
            app.node
                .read(move |store| store.get_items(&reads))
                .await?
                .into_iter()
        }
        Engine::Leaderless(node) => {
            let mut found = Vec::with_capacity(reads.len());
            for (table, key) in reads {
                let meta = metas
                    .get(&table)
                    .ok_or_else(|| Error::internal(format!("no description of {table}")))?;
                let key = meta.spec.key_schema.key_from_map(&key)?;
                let consistent = tables
                    .get(&table)
                    .and_then(|t| t.consistent_read)
                    .unwrap_or(false);
                found.push(service::get_item(node, meta, &key, consistent).await?.item);
            }
            found.into_iter()
        }
    };
    let found: Vec<Vec<Option<crate::model::Item>>> = plan
        .iter()
        .map(|(_, keys, _)| found.by_ref().take(keys.len()).collect())
        .collect();
    let mut out = BatchGetItemOutput::default();
    let mut tally = Tally::default();
    let mut size = 0;
    for ((table, keys, projection), items) in plan.into_iter().zip(found) {
        let mut answered = Vec::new();
        let mut left = Vec::new();
        let consistent = tables
            .get(&table)
            .and_then(|t| t.consistent_read)
            .unwrap_or(false);
        for (key, item) in keys.into_iter().zip(items) {
            if size >= MAX_ANSWER_BYTES {
                left.push(WireItem(key));
                continue;
            }
            // Each key is charged as its own GetItem, found or not.
            if report.wanted() {
                tally.add(&table, capacity::item_read_units(item.as_ref(), consistent));
            }
            if let Some(item) = item {
                let item = match &projection {
                    Some(paths) => project(&item, paths),
                    None => item,
                };
                size += item_size(&item);
                answered.push(WireItem(item));
            }
        }
        out.responses.0.insert(table.clone(), answered);
        if !left.is_empty() {
            let request = tables.get(&table).cloned().unwrap_or_default();
            out.unprocessed_keys.0.insert(
                table,
                KeysAndAttributes {
                    keys: Some(WireList(left)),
                    ..request
                },
            );
        }
    }
    out.consumed_capacity = report.tables(tally);
    Ok(out)
}
