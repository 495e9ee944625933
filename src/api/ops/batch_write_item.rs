//! BatchWriteItem: up to 25 puts and deletes across tables, validated as DynamoDB validates
//! them (every table exists, every item or key fits its schema, no item named twice), then
//! proposed as one Raft entry, so the whole batch costs one commit. kvsim applies a batch
//! whole, so `UnprocessedItems` is always empty in Raft mode; in leaderless mode each write
//! goes on its own and one that found too few replicas is returned there.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::capacity::{self, Report, Tally};
use crate::api::ops::{Request, required, table_name};
use crate::api::wire::{
    BatchWriteItemInput, BatchWriteItemOutput, DeleteRequest, PutRequest, WireItem, WriteRequest,
};
use crate::dynamo::driver::DynamoHandle;
use crate::model::item::check_item_size;
use crate::model::table::TableMeta;
use crate::store::{Command, Conditional, ItemWrite, Outcome};
use crate::{Error, Result};

/// DynamoDB's limit on the requests of one BatchWriteItem.
pub const MAX_WRITES: usize = 25;

/// Runs BatchWriteItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<BatchWriteItemOutput> {
    run_on(Engine::Raft(app), req).await
}

/// Runs BatchWriteItem on the leaderless engine: each write on its own, as DynamoDB's batches
/// are not atomic either; a write that found too few replicas comes back in
/// `UnprocessedItems`, for the client to send again.
pub async fn run_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<BatchWriteItemOutput> {
    run_on(Engine::Leaderless(node), req).await
}

async fn run_on(engine: Engine<'_>, req: &mut Request) -> Result<BatchWriteItemOutput> {
    let input: BatchWriteItemInput = req.input().await?;
    let tables = required(input.request_items, "requestItems")?.0;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    crate::api::ops::item_collection_metrics(input.return_item_collection_metrics.as_deref())?;
    if tables.is_empty() {
        return Err(Error::validation(
            "1 validation error detected: Value '{}' at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    if tables
        .values()
        .any(|w| w.0.is_empty() || w.0.len() > MAX_WRITES)
    {
        return Err(Error::validation(format!(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to {MAX_WRITES}, Member must have length greater than or equal to 1]"
        )));
    }
    if tables.values().map(|w| w.0.len()).sum::<usize>() > MAX_WRITES {
        return Err(Error::validation(
            "Too many items requested for the BatchWriteItem call",
        ));
    }
    let mut writes = Vec::new();
    let mut metas = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (table, requests) in tables {
        let table = table_name(Some(&table))?;
        let meta = engine.table_meta(&table).await?;
        let meta = metas.entry(table.clone()).or_insert(meta);
        let schema = &meta.spec.key_schema;
        for request in requests.0 {
            let write = match (request.put_request, request.delete_request) {
                (Some(put), None) => {
                    let item = required(put.item, "item")?.0;
                    // Unlike PutItem, BatchWriteItem words a key of the wrong type as a
                    // mismatch with the schema.
                    let mistyped = std::iter::once(&schema.partition)
                        .chain(&schema.sort)
                        .any(|a| item.get(&a.name).is_some_and(|v| !a.key_type.matches(v)));
                    if mistyped {
                        return Err(Error::validation(
                            "The provided key element does not match the schema",
                        ));
                    }
                    let key = schema.key_of_item(&item)?;
                    check_item_size(&item)?;
                    seen_once(&mut seen, &table, key.encode())?;
                    ItemWrite::Put {
                        table: table.clone(),
                        item,
                    }
                }
                (None, Some(delete)) => {
                    let key = required(delete.key, "key")?.0;
                    let primary = schema.key_from_map(&key)?;
                    seen_once(&mut seen, &table, primary.encode())?;
                    ItemWrite::Delete {
                        table: table.clone(),
                        key,
                    }
                }
                _ => {
                    return Err(Error::validation(
                        "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                    ));
                }
            };
            writes.push(write);
        }
    }
    let app = match engine {
        Engine::Raft(app) => app,
        Engine::Leaderless(_) => return write_each(engine, req, &metas, writes, report).await,
    };
    let names: Vec<String> = writes.iter().map(|w| w.table().to_string()).collect();
    match app.node.propose(&Command::Batch(writes)).await? {
        Outcome::Batch { sizes, indexes, .. } => {
            let mut tally = Tally::default();
            for ((table, size), charges) in names.iter().zip(sizes).zip(&indexes) {
                tally.add(table, capacity::write_units(size.into()));
                tally.add_indexes(table, charges, 1.0);
            }
            Ok(BatchWriteItemOutput {
                consumed_capacity: report.tables(tally),
                ..BatchWriteItemOutput::default()
            })
        }
        other => Err(Error::internal(format!(
            "BatchWriteItem applied as {other:?}"
        ))),
    }
}

/// Writes a batch item by item (leaderless mode).
async fn write_each(
    engine: Engine<'_>,
    req: &Request,
    metas: &BTreeMap<String, TableMeta>,
    writes: Vec<ItemWrite>,
    report: Report,
) -> Result<BatchWriteItemOutput> {
    let mut tally = Tally::default();
    let mut out = BatchWriteItemOutput::default();
    for write in writes {
        let table = write.table().to_string();
        let meta = metas
            .get(&table)
            .ok_or_else(|| Error::internal(format!("no description of {table}")))?;
        let request = match &write {
            ItemWrite::Put { item, .. } => WriteRequest {
                put_request: Some(PutRequest {
                    item: Some(WireItem(item.clone())),
                }),
                delete_request: None,
            },
            ItemWrite::Delete { key, .. }
            | ItemWrite::Update { key, .. }
            | ItemWrite::Check { key, .. } => WriteRequest {
                put_request: None,
                delete_request: Some(DeleteRequest {
                    key: Some(WireItem(key.clone())),
                }),
            },
        };
        let conditional = Conditional {
            write,
            condition: None,
            old_on_failure: false,
        };
        match engine.write(req, meta, conditional).await {
            Ok(written) => {
                tally.add(&table, capacity::write_units(written.size.into()));
                tally.add_indexes(&table, &written.indexes, 1.0);
            }
            Err(Error::Unavailable(_) | Error::NotApplied(_)) => {
                out.unprocessed_items
                    .0
                    .entry(table)
                    .or_default()
                    .push(request);
            }
            Err(e) => return Err(e),
        }
    }
    out.consumed_capacity = report.tables(tally);
    Ok(out)
}

/// Refuses a batch that names one item twice.
fn seen_once(seen: &mut BTreeSet<(String, Vec<u8>)>, table: &str, key: Vec<u8>) -> Result<()> {
    if seen.insert((table.to_string(), key)) {
        Ok(())
    } else {
        Err(Error::validation(
            "Provided list of item keys contains duplicates",
        ))
    }
}
