//! UpdateItem: parses the update (and condition) against the request's placeholder maps,
//! refuses changes to key attributes, and proposes it; the state machine applies it to the
//! item as it is at that log index, creating the item when it is absent, as DynamoDB does.

use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::capacity::{self, Report};
use crate::api::ops::legacy::{self, Expressions, Legacy};
use crate::api::ops::{
    Request, item_member, no_expression_maps, return_old_on_failure, table_name,
};
use crate::api::wire::{UpdateItemInput, WireItem, WriteItemOutput};
use crate::dynamo::driver::DynamoHandle;
use crate::model::expr::eval::project;
use crate::model::expr::{
    ExpressionContext, Path, PathElement, Update, parse_condition, parse_update,
};
use crate::store::{Conditional, ItemWrite};
use crate::{Error, Result};

/// What `ReturnValues` asks UpdateItem for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Returned {
    None,
    AllOld,
    UpdatedOld,
    AllNew,
    UpdatedNew,
}

fn returned(v: Option<&str>) -> Result<Returned> {
    Ok(match v {
        None | Some("NONE") => Returned::None,
        Some("ALL_OLD") => Returned::AllOld,
        Some("UPDATED_OLD") => Returned::UpdatedOld,
        Some("ALL_NEW") => Returned::AllNew,
        Some("UPDATED_NEW") => Returned::UpdatedNew,
        Some(other) => {
            return Err(Error::validation(format!(
                "1 validation error detected: Value '{other}' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]"
            )));
        }
    })
}

/// Runs UpdateItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<WriteItemOutput> {
    run_on(Engine::Raft(app), req).await
}

/// Runs UpdateItem on the leaderless engine.
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<WriteItemOutput> {
    run_on(Engine::Leaderless(node), req).await
}

pub(crate) async fn run_on(engine: Engine<'_>, req: &mut Request) -> Result<WriteItemOutput> {
    let input: UpdateItemInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    crate::api::ops::item_collection_metrics(input.return_item_collection_metrics.as_deref())?;
    let returned = returned(input.return_values.as_deref())?;
    let old_on_failure =
        return_old_on_failure(input.return_values_on_condition_check_failure.as_deref())?;
    let key = item_member(input.key, "key")?;
    let e = legacy::resolve(
        Expressions {
            update: input.update_expression,
            condition: input.condition_expression,
            names: input.expression_attribute_names,
            values: input.expression_attribute_values,
            ..Expressions::default()
        },
        Legacy {
            expected: input.expected,
            conditional_operator: input.conditional_operator,
            attribute_updates: input.attribute_updates,
            ..Legacy::default()
        },
    )?;
    let names = e.names.as_ref();
    let values = e.values.as_ref();
    let (update, condition) = if e.update.is_none() && e.condition.is_none() {
        no_expression_maps(names, values)?;
        (Update::default(), None)
    } else {
        let mut ctx = ExpressionContext::new(names.map(|n| &n.0), values.map(|v| &v.0))?;
        let update = e
            .update
            .as_deref()
            .map(|text| parse_update(text, &mut ctx))
            .transpose()?
            .unwrap_or_default();
        let condition = e
            .condition
            .as_deref()
            .map(|text| parse_condition("ConditionExpression", text, &mut ctx))
            .transpose()?;
        ctx.check_all_used()?;
        (update, condition)
    };
    let meta = engine.table_meta(&table).await?;
    let schema = &meta.spec.key_schema;
    schema.key_from_map(&key)?;
    for path in update.targets() {
        if let Some(PathElement::Attribute(name)) = path.elements.first()
            && schema.attribute_names().contains(&name.as_str())
        {
            return Err(Error::validation(format!(
                "One or more parameter values were invalid: Cannot update attribute {name}. This attribute is part of the key"
            )));
        }
    }
    // What UPDATED_OLD / UPDATED_NEW show: the paths the update wrote.
    let targets: Vec<Path> = update.targets().cloned().collect();
    let name = table.clone();
    let written = engine
        .write(
            req,
            &meta,
            Conditional {
                write: ItemWrite::Update { table, key, update },
                condition,
                old_on_failure,
            },
        )
        .await?;
    req.version = written.version;
    let (old, new, size, indexes) = (written.old, written.new, written.size, written.indexes);
    let attributes = match returned {
        Returned::None => None,
        Returned::AllOld => old,
        Returned::AllNew => new,
        Returned::UpdatedOld => old.map(|item| project(&item, &targets)),
        Returned::UpdatedNew => new.map(|item| project(&item, &targets)),
    };
    Ok(WriteItemOutput {
        attributes: attributes.filter(|a| !a.is_empty()).map(WireItem),
        consumed_capacity: report.write(&name, capacity::write_units(size.into()), &indexes, 1.0),
    })
}
