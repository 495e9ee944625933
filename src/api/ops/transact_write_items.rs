//! TransactWriteItems: up to 100 puts, updates, deletes and condition checks on distinct
//! items across tables, proposed as one Raft entry. The state machine checks every action's
//! condition on the state at that log index before writing any, so the transaction is all or
//! nothing on every replica; a failure answers `TransactionCanceledException` with one reason
//! per action. Entries apply one at a time, so two transactions never interleave and kvsim
//! never needs DynamoDB's `TransactionConflictException`.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::api::AppState;
use crate::api::ops::capacity::{self, Report, Tally};
use crate::api::ops::{
    Request, item_member, return_old_on_failure, table_meta, table_name, write_condition,
};
use crate::api::wire::{TransactAction, TransactWriteItemsInput, TransactWriteItemsOutput};
use crate::model::PrimaryKey;
use crate::model::expr::{ExpressionContext, PathElement, parse_condition, parse_update};
use crate::model::item::check_item_size;
use crate::store::{Command, Conditional, ItemWrite, Outcome, Transaction};
use crate::{Error, Result};

/// DynamoDB's limit on the actions of one transaction.
pub const MAX_ACTIONS: usize = 100;
/// DynamoDB's limit on a `ClientRequestToken`.
const MAX_TOKEN_CHARS: usize = 36;

/// Runs TransactWriteItems.
pub async fn run(app: &AppState, req: &mut Request) -> Result<TransactWriteItemsOutput> {
    let input: TransactWriteItemsInput = req.input().await?;
    let items = crate::api::ops::required(input.transact_items, "transactItems")?.0;
    let report = Report::parse(input.return_consumed_capacity.as_deref())?;
    crate::api::ops::item_collection_metrics(input.return_item_collection_metrics.as_deref())?;
    if items.is_empty() || items.len() > MAX_ACTIONS {
        return Err(Error::validation(if items.is_empty() {
            "1 validation error detected: Value '[]' at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1".to_string()
        } else {
            "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to 100".to_string()
        }));
    }
    if let Some(token) = &input.client_request_token
        && (token.is_empty() || token.chars().count() > MAX_TOKEN_CHARS)
    {
        return Err(Error::validation(format!(
            "1 validation error detected: Value '{token}' at 'clientRequestToken' failed to satisfy constraint: Member must have length less than or equal to {MAX_TOKEN_CHARS}"
        )));
    }
    let mut actions = Vec::new();
    let mut seen = BTreeSet::new();
    for item in items {
        let (kind, action) = match (item.condition_check, item.put, item.delete, item.update) {
            (Some(a), None, None, None) => ("ConditionCheck", a),
            (None, Some(a), None, None) => ("Put", a),
            (None, None, Some(a), None) => ("Delete", a),
            (None, None, None, Some(a)) => ("Update", a),
            _ => {
                return Err(Error::validation(
                    "TransactItems can only contain one of Check, Put, Update or Delete",
                ));
            }
        };
        let (conditional, key) = action_of(app, kind, action).await?;
        if !seen.insert((conditional.write.table().to_string(), key.encode())) {
            return Err(Error::validation(
                "Transaction request cannot include multiple operations on one item",
            ));
        }
        actions.push(conditional);
    }
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let names: Vec<String> = actions
        .iter()
        .map(|a| a.write.table().to_string())
        .collect();
    let command = Command::Transact(Transaction {
        actions,
        token: input.client_request_token,
        at_ms,
    });
    match app.node.propose(&command).await? {
        Outcome::Batch {
            sizes,
            indexes,
            replayed,
            ..
        } => {
            // Each action costs twice a write, in its table and in each index it changes; a
            // replay costs the consistent reads of its items.
            let mut tally = Tally::default();
            for ((table, size), charges) in names.iter().zip(sizes).zip(&indexes) {
                let units = if replayed {
                    capacity::read_units(size.into(), true)
                } else {
                    2.0 * capacity::write_units(size.into())
                };
                tally.add(table, units);
                tally.add_indexes(table, charges, 2.0);
            }
            Ok(TransactWriteItemsOutput {
                consumed_capacity: report.tables(tally),
            })
        }
        other => Err(Error::internal(format!(
            "TransactWriteItems applied as {other:?}"
        ))),
    }
}

/// One action, validated and with its expressions parsed, and the key of its item.
async fn action_of(
    app: &AppState,
    kind: &str,
    a: TransactAction,
) -> Result<(Conditional, PrimaryKey)> {
    let table = table_name(a.table_name.as_ref())?;
    let old_on_failure =
        return_old_on_failure(a.return_values_on_condition_check_failure.as_deref())?;
    let names = a.expression_attribute_names.as_ref();
    let values = a.expression_attribute_values.as_ref();
    let meta = table_meta(app, &table).await?;
    let schema = &meta.spec.key_schema;
    let (write, condition) = match kind {
        "Put" => {
            let item = item_member(a.item, "item")?;
            check_item_size(&item)?;
            let condition = write_condition(a.condition_expression.as_deref(), names, values)?;
            (ItemWrite::Put { table, item }, condition)
        }
        "Delete" => {
            let key = item_member(a.key, "key")?;
            let condition = write_condition(a.condition_expression.as_deref(), names, values)?;
            (ItemWrite::Delete { table, key }, condition)
        }
        "ConditionCheck" => {
            let key = item_member(a.key, "key")?;
            let text = a.condition_expression.as_deref().ok_or_else(|| {
                Error::validation(
                    "1 validation error detected: Value null at 'transactItems.1.member.conditionCheck.conditionExpression' failed to satisfy constraint: Member must not be null",
                )
            })?;
            let condition = write_condition(Some(text), names, values)?;
            (ItemWrite::Check { table, key }, condition)
        }
        _ => {
            let key = item_member(a.key, "key")?;
            let text = a.update_expression.as_deref().ok_or_else(|| {
                Error::validation(
                    "1 validation error detected: Value null at 'transactItems.1.member.update.updateExpression' failed to satisfy constraint: Member must not be null",
                )
            })?;
            let mut ctx = ExpressionContext::new(names.map(|n| &n.0), values.map(|v| &v.0))?;
            let update = parse_update(text, &mut ctx)?;
            let condition = a
                .condition_expression
                .as_deref()
                .map(|text| parse_condition("ConditionExpression", text, &mut ctx))
                .transpose()?;
            ctx.check_all_used()?;
            for path in update.targets() {
                if let Some(PathElement::Attribute(name)) = path.elements.first()
                    && schema.attribute_names().contains(&name.as_str())
                {
                    return Err(Error::validation(format!(
                        "One or more parameter values were invalid: Cannot update attribute {name}. This attribute is part of the key"
                    )));
                }
            }
            (ItemWrite::Update { table, key, update }, condition)
        }
    };
    let key = match &write {
        ItemWrite::Put { item, .. } => schema.key_of_item(item)?,
        ItemWrite::Delete { key, .. }
        | ItemWrite::Update { key, .. }
        | ItemWrite::Check { key, .. } => schema.key_from_map(key)?,
    };
    Ok((
        Conditional {
            write,
            condition,
            old_on_failure,
        },
        key,
    ))
}
