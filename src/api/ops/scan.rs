//! Scan: the whole table (or one of its indexes) in key order, paginated, with a filter and a
//! projection.

use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::capacity::{self, Report};
use crate::api::ops::legacy::{self, Expressions, Legacy};
use crate::api::ops::query::{Shape, context, read_index, start_key};
use crate::api::ops::{Request, limit, maybe_consistent, no_expression_maps, table_name};
use crate::api::wire::{ReadPageOutput, ScanInput};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;
use crate::store::read::Range;
use crate::{Error, Result};

/// Most segments of one parallel scan (DynamoDB's limit).
const MAX_SEGMENTS: i64 = 1_000_000;

/// Validates `Segment` and `TotalSegments` (both or neither) as DynamoDB does.
fn segment(segment: Option<i64>, total: Option<i64>) -> Result<Option<(u32, u32)>> {
    let (segment, total) = match (segment, total) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(Error::validation(
                "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::validation(
                "The Segment parameter is required but was not present in the request when parameter TotalSegments is present",
            ));
        }
        (Some(s), Some(t)) => (s, t),
    };
    if !(1..=MAX_SEGMENTS).contains(&total) {
        let bound = if total < 1 {
            "greater than or equal to 1"
        } else {
            "less than or equal to 1000000"
        };
        return Err(Error::validation(format!(
            "1 validation error detected: Value '{total}' at 'totalSegments' failed to satisfy constraint: Member must have value {bound}"
        )));
    }
    if segment < 0 {
        return Err(Error::validation(format!(
            "1 validation error detected: Value '{segment}' at 'segment' failed to satisfy constraint: Member must have value greater than or equal to 0"
        )));
    }
    if segment >= total {
        return Err(Error::validation(format!(
            "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {segment} is not less than TotalSegments: {total}"
        )));
    }
    // In range of u32: both are below MAX_SEGMENTS.
    Ok(Some((segment as u32, total as u32)))
}

/// Runs Scan.
pub async fn run(app: &AppState, req: &mut Request) -> Result<ReadPageOutput> {
    run_on(Engine::Raft(app), req).await
}

/// Runs Scan on the leaderless engine (tables only: no secondary indexes in that mode).
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<ReadPageOutput> {
    run_on(Engine::Leaderless(node), req).await
}

pub(crate) async fn run_on(engine: Engine<'_>, req: &mut Request) -> Result<ReadPageOutput> {
    let input: ScanInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    let limit = limit(input.limit, "Scan")?;
    let segment = segment(input.segment, input.total_segments)?;
    let e = legacy::resolve(
        Expressions {
            filter: input.filter_expression,
            projection: input.projection_expression,
            names: input.expression_attribute_names,
            values: input.expression_attribute_values,
            ..Expressions::default()
        },
        Legacy {
            filter: input.scan_filter.map(|f| ("ScanFilter", f)),
            conditional_operator: input.conditional_operator,
            attributes_to_get: input.attributes_to_get.map(|a| a.0),
            ..Legacy::default()
        },
    )?;
    let names = e.names.as_ref();
    let values = e.values.as_ref();
    let shape = if e.filter.is_none() && e.projection.is_none() {
        no_expression_maps(names, values)?;
        Shape::parse(
            "Scan",
            &mut context(None, None)?,
            None,
            None,
            input.select.as_deref(),
            input.index_name.is_some(),
        )?
    } else {
        let mut ctx = context(names, values)?;
        let shape = Shape::parse(
            "Scan",
            &mut ctx,
            e.filter.as_deref(),
            e.projection.as_deref(),
            input.select.as_deref(),
            input.index_name.is_some(),
        )?;
        ctx.check_all_used()?;
        shape
    };
    let meta = engine
        .table_meta_for(&table, input.index_name.as_deref())
        .await?;
    let index = read_index(
        &meta,
        input.index_name.as_deref(),
        input.consistent_read,
        input.select.as_deref(),
    )?;
    if let Engine::Raft(app) = engine {
        maybe_consistent(app, input.consistent_read).await?;
    }
    let start = start_key(&meta, index, input.exclusive_start_key.as_ref())?;
    let fetch_from_table = shape.fetches_from_table(index, &meta, input.select.as_deref());
    let name = table.clone();
    let index_name = input.index_name.clone();
    let page = match engine {
        Engine::Raft(app) => {
            app.node
                .read(move |store| {
                    store.read_range(
                        &table,
                        &Range {
                            index: index_name.as_deref(),
                            partition: None,
                            then: &[],
                            sort: None,
                            fetch_from_table,
                            forward: true,
                            limit,
                            start_after: start.as_ref(),
                            segment,
                        },
                    )
                })
                .await?
        }
        Engine::Leaderless(node) => {
            let range = Range {
                index: input.index_name.as_deref(),
                partition: None,
                then: &[],
                sort: None,
                fetch_from_table,
                forward: true,
                limit,
                start_after: start.as_ref(),
                segment,
            };
            service::read_page(node, &meta, &range, false).await?
        }
    };
    let units = capacity::read_units(page.bytes, input.consistent_read.unwrap_or(false));
    Ok(ReadPageOutput {
        consumed_capacity: match index {
            Some(i) => report.index_read(&name, &i.name, i.kind, units),
            None => report.one(&name, units),
        },
        ..shape.output(page)
    })
}
