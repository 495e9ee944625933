//! Query: one partition, in sort-key order, with a key condition, a filter, a projection,
//! pagination and `Select`.

use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::capacity::{self, Report};
use crate::api::ops::legacy::{self, Expressions, Legacy};
use crate::api::ops::{Request, count_only, limit, maybe_consistent, table_name};
use crate::api::wire::{QueryInput, ReadPageOutput, WireItem, WireNames};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;
use crate::model::expr::eval::{evaluate, project};
use crate::model::expr::{
    Condition, ExpressionContext, KeyCondition, MultiKeyCondition, Path, parse_condition,
    parse_key_condition, parse_multi_key_condition, parse_projection,
};
use crate::model::index::{IndexKind, IndexSpec, IndexState, Projection};
use crate::model::table::TableMeta;
use crate::model::{Item, KeySchema};
use crate::store::read::{Page, Range, no_such_index};
use crate::{Error, Result};

/// Validates an `ExclusiveStartKey`: the table's key, exactly, or for a read of `index`, the
/// table's key and the index's.
pub fn start_key(
    meta: &TableMeta,
    index: Option<&IndexSpec>,
    key: Option<&WireItem>,
) -> Result<Option<Item>> {
    let invalid = || {
        Error::validation(
            "The provided starting key is invalid: The provided key element does not match the schema",
        )
    };
    let Some(key) = key else { return Ok(None) };
    let schema = &meta.spec.key_schema;
    match index {
        None => {
            schema.key_from_map(&key.0).map_err(|_| invalid())?;
        }
        Some(index) => {
            schema.key_of_item(&key.0).map_err(|_| invalid())?;
            let wanted = schema.attribute_names().len()
                + index
                    .key_attributes()
                    .filter(|a| !schema.attribute_names().contains(&a.name.as_str()))
                    .count();
            if index.key_values(&key.0).ok().flatten().is_none() || key.0.len() != wanted {
                return Err(invalid());
            }
        }
    }
    Ok(Some(key.0.clone()))
}

/// The index an `IndexName` names, checked for the read: a global index answers only
/// eventually consistent reads, and `Select: ALL_ATTRIBUTES` only if it projects everything.
///
/// # Errors
/// DynamoDB's `ValidationException`s.
pub fn read_index<'a>(
    meta: &'a TableMeta,
    name: Option<&str>,
    consistent: Option<bool>,
    select: Option<&str>,
) -> Result<Option<&'a IndexSpec>> {
    let Some(name) = name else {
        return Ok(None);
    };
    let index = meta.index(name).ok_or_else(|| no_such_index(name))?;
    match index.state {
        IndexState::Active => {}
        IndexState::Backfilling { .. } => {
            return Err(Error::validation(format!(
                "Cannot read from backfilling global secondary index: {name}"
            )));
        }
        IndexState::Deleting => return Err(no_such_index(name)),
    }
    if index.kind == IndexKind::Global {
        if consistent == Some(true) {
            return Err(Error::validation(
                "Consistent reads are not supported on global secondary indexes",
            ));
        }
        if select == Some("ALL_ATTRIBUTES") && index.projection != Projection::All {
            return Err(Error::validation(format!(
                "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {name} because its projection type is not ALL"
            )));
        }
    }
    Ok(Some(index))
}

/// What a Query or Scan does to the items it read: filter, project, or just count them.
pub struct Shape {
    /// `FilterExpression`.
    pub filter: Option<Condition>,
    /// `ProjectionExpression`.
    pub projection: Option<Vec<Path>>,
    /// `Select: COUNT`.
    pub count_only: bool,
}

impl Shape {
    /// Parses a read's `FilterExpression` and `ProjectionExpression` (and `Select`) in `ctx`.
    ///
    /// # Errors
    /// DynamoDB's `ValidationException`s.
    pub fn parse(
        op: &str,
        ctx: &mut ExpressionContext,
        filter: Option<&str>,
        projection: Option<&str>,
        select: Option<&str>,
        indexed: bool,
    ) -> Result<Shape> {
        Ok(Shape {
            filter: filter
                .map(|text| parse_condition("FilterExpression", text, ctx))
                .transpose()?,
            projection: projection
                .map(|text| parse_projection(text, ctx))
                .transpose()?,
            count_only: count_only(select, projection.is_some(), op, indexed)?,
        })
    }

    /// Whether a read of `index` must answer with the table's items rather than what the index
    /// projects: a local index that lacks attributes the read asks for (`Select:
    /// ALL_ATTRIBUTES`, a projection naming one, or any filter).
    pub fn fetches_from_table(
        &self,
        index: Option<&IndexSpec>,
        meta: &TableMeta,
        select: Option<&str>,
    ) -> bool {
        let Some(index) = index.filter(|i| i.kind == IndexKind::Local) else {
            return false;
        };
        if index.projection == Projection::All {
            return false;
        }
        let schema = &meta.spec.key_schema;
        let unprojected = |p: &Path| match p.elements.first() {
            Some(crate::model::expr::PathElement::Attribute(name)) => !index.projects(name, schema),
            _ => false,
        };
        select == Some("ALL_ATTRIBUTES")
            || self.filter.is_some()
            || self
                .projection
                .as_ref()
                .is_some_and(|paths| paths.iter().any(unprojected))
    }

    /// The response for a page read: the filter applies after `Limit` (as in DynamoDB,
    /// `ScannedCount` counts what was read, `Count` what matched).
    pub fn output(&self, page: Page) -> ReadPageOutput {
        let mut items = page.items;
        if let Some(filter) = &self.filter {
            items.retain(|item| evaluate(filter, item));
        }
        ReadPageOutput {
            consumed_capacity: None,
            count: items.len(),
            scanned_count: page.scanned,
            last_evaluated_key: page.last_key.map(WireItem),
            items: (!self.count_only).then(|| {
                items
                    .into_iter()
                    .map(|item| match &self.projection {
                        Some(paths) => WireItem(project(&item, paths)),
                        None => WireItem(item),
                    })
                    .collect()
            }),
        }
    }
}

/// The expression context of a read request.
pub fn context<'a>(
    names: Option<&'a WireNames>,
    values: Option<&'a WireItem>,
) -> Result<ExpressionContext<'a>> {
    ExpressionContext::new(names.map(|n| &n.0), values.map(|v| &v.0))
}

/// Runs Query.
pub async fn run(app: &AppState, req: &mut Request) -> Result<ReadPageOutput> {
    run_on(Engine::Raft(app), req).await
}

/// Runs Query on the leaderless engine (tables only: no secondary indexes in that mode).
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<ReadPageOutput> {
    run_on(Engine::Leaderless(node), req).await
}

pub(crate) async fn run_on(engine: Engine<'_>, req: &mut Request) -> Result<ReadPageOutput> {
    let input: QueryInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    let limit = limit(input.limit, "Query")?;
    let e = legacy::resolve(
        Expressions {
            key_condition: input.key_condition_expression,
            filter: input.filter_expression,
            projection: input.projection_expression,
            names: input.expression_attribute_names,
            values: input.expression_attribute_values,
            ..Expressions::default()
        },
        Legacy {
            key_conditions: input.key_conditions,
            filter: input.query_filter.map(|f| ("QueryFilter", f)),
            conditional_operator: input.conditional_operator,
            attributes_to_get: input.attributes_to_get.map(|a| a.0),
            ..Legacy::default()
        },
    )?;
    let expression = e.key_condition.as_deref().ok_or_else(|| {
        Error::validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
    })?;
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
    // The key a Query's condition is on: the table's, or the index's (possibly of several
    // attributes per part).
    let mut ctx = context(e.names.as_ref(), e.values.as_ref())?;
    let (key_names, condition): (Vec<String>, MultiKeyCondition) =
        match index.map(|i| (i, i.key_schema())) {
            Some((i, None)) => (
                i.key_attributes().map(|a| a.name.clone()).collect(),
                parse_multi_key_condition(expression, &mut ctx, &i.partition, &i.sort)?,
            ),
            Some((_, Some(schema))) => (
                names_of(&schema),
                single(parse_key_condition(expression, &mut ctx, &schema)?),
            ),
            None => (
                names_of(&meta.spec.key_schema),
                single(parse_key_condition(
                    expression,
                    &mut ctx,
                    &meta.spec.key_schema,
                )?),
            ),
        };
    let shape = Shape::parse(
        "Query",
        &mut ctx,
        e.filter.as_deref(),
        e.projection.as_deref(),
        input.select.as_deref(),
        index.is_some(),
    )?;
    ctx.check_all_used()?;
    if let Some(filter) = &shape.filter {
        for name in &key_names {
            if mentions(filter, name) {
                return Err(Error::validation(format!(
                    "Filter Expression can only contain non-primary key attributes: Primary key attribute: {name}"
                )));
            }
        }
    }
    let start = start_key(&meta, index, input.exclusive_start_key.as_ref())?;
    if let Some(start) = &start {
        // Every value the condition fixes must be the start key's too, and the start key's
        // next one must satisfy the sort condition.
        let outside = key_names
            .iter()
            .zip(&condition.fixed)
            .any(|(name, v)| start.get(name) != Some(v));
        if outside {
            return Err(Error::validation(
                "The provided starting key is outside query boundaries based on provided conditions",
            ));
        }
        if let (Some(range), Some(sort)) = (
            &condition.sort,
            key_names
                .get(condition.fixed.len())
                .and_then(|name| start.get(name)),
        ) && !range.matches(sort)
        {
            return Err(Error::validation(
                "The provided starting key does not match the range key predicate",
            ));
        }
    }
    let fetch_from_table = shape.fetches_from_table(index, &meta, input.select.as_deref());
    let forward = input.scan_index_forward.unwrap_or(true);
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
                            partition: condition.fixed.first(),
                            then: condition.fixed.get(1..).unwrap_or_default(),
                            sort: condition.sort.as_ref(),
                            fetch_from_table,
                            forward,
                            limit,
                            start_after: start.as_ref(),
                            segment: None,
                        },
                    )
                })
                .await?
        }
        Engine::Leaderless(node) => {
            let range = Range {
                index: input.index_name.as_deref(),
                partition: condition.fixed.first(),
                then: condition.fixed.get(1..).unwrap_or_default(),
                sort: condition.sort.as_ref(),
                fetch_from_table,
                forward,
                limit,
                start_after: start.as_ref(),
                segment: None,
            };
            service::read_page(node, &meta, &range, input.consistent_read.unwrap_or(false)).await?
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

/// The attribute names of a key, partition first.
fn names_of(schema: &KeySchema) -> Vec<String> {
    schema
        .attribute_names()
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// A one-attribute key condition in the general form.
fn single(c: KeyCondition) -> MultiKeyCondition {
    MultiKeyCondition {
        fixed: vec![c.partition],
        sort: c.sort,
    }
}

/// Whether `condition` reads the top-level attribute `name` anywhere.
/// Whether `condition` names top-level attribute `name` anywhere.
pub(crate) fn mentions(condition: &Condition, name: &str) -> bool {
    use crate::model::expr::{Function, Operand};
    let path = |p: &Path| {
        p.elements.first()
            == Some(&crate::model::expr::PathElement::Attribute(
                name.to_string(),
            ))
    };
    let operand = |o: &Operand| match o {
        Operand::Path(p) | Operand::Size(p) => path(p),
        Operand::Value(_) => false,
    };
    match condition {
        Condition::Compare { left, right, .. } => operand(left) || operand(right),
        Condition::Between {
            operand: x,
            low,
            high,
        } => operand(x) || operand(low) || operand(high),
        Condition::In { operand: x, list } => operand(x) || list.iter().any(operand),
        Condition::Function(f) => match f {
            Function::AttributeExists(p)
            | Function::AttributeNotExists(p)
            | Function::AttributeType(p, _) => path(p),
            Function::BeginsWith(p, o) | Function::Contains(p, o) => path(p) || operand(o),
        },
        Condition::And(a, b) | Condition::Or(a, b) => mentions(a, name) || mentions(b, name),
        Condition::Not(a) => mentions(a, name),
    }
}
