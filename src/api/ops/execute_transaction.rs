//! ExecuteTransaction: 1 to 100 PartiQL statements, all reads or all writes, all or nothing.
//!
//! Writes (`INSERT`, `UPDATE`, `DELETE`, and `EXISTS(SELECT ...)` as a condition check) are
//! compiled like ExecuteStatement's and run as one TransactWriteItems: one Raft entry, every
//! condition checked on the state at its log index before anything is written, the
//! `ClientRequestToken` remembered in the replicated state. A cancelled transaction answers
//! `TransactionCanceledException` with a reason per statement, an `INSERT` that met an
//! existing item giving `DuplicateItem`. Reads (`SELECT`s of one item each, by its full key)
//! run as one TransactGetItems.

use crate::api::AppState;
use crate::api::ops::execute_statement::{action, inner, maps, params};
use crate::api::ops::{Request, required, table_meta, transact_get_items, transact_write_items};
use crate::api::wire::{
    ExecuteTransactionInput, ExecuteTransactionOutput, TransactGet, TransactGetItem,
    TransactGetItemsInput, TransactWriteItem, TransactWriteItemsInput, WireList,
};
use crate::model::expr::print::Printed;
use crate::model::partiql::compile::split_key;
use crate::model::partiql::{self, DUPLICATE, NO_FULL_KEY, Statement, WriteKind, compile_write};
use crate::{Error, Result};

/// Most statements in one transaction (DynamoDB's limit).
const MAX_STATEMENTS: usize = 100;

/// Runs ExecuteTransaction.
pub async fn run(app: &AppState, req: &mut Request) -> Result<ExecuteTransactionOutput> {
    let input: ExecuteTransactionInput = req.input().await?;
    let statements = required(input.transact_statements, "transactStatements")?.0;
    if statements.is_empty() {
        return Err(Error::validation(
            "1 validation error detected: Value '[]' at 'transactStatements' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    if statements.len() > MAX_STATEMENTS {
        return Err(Error::validation(format!(
            "1 validation error detected: Value at 'transactStatements' failed to satisfy constraint: Member must have length less than or equal to {MAX_STATEMENTS}"
        )));
    }
    let mut parsed = Vec::with_capacity(statements.len());
    for s in &statements {
        let text = required(s.statement.as_ref(), "statement")?;
        parsed.push(partiql::parse(text, &params(s.parameters.as_ref()))?);
    }
    let reads = parsed
        .iter()
        .filter(|s| matches!(s, Statement::Select(_)))
        .count();
    if reads == parsed.len() {
        return read(app, req, parsed, input.return_consumed_capacity).await;
    }
    if reads > 0 {
        return Err(Error::validation(
            "A transaction's statements must be all reads (SELECT) or all writes",
        ));
    }
    let mut items = Vec::with_capacity(parsed.len());
    let mut inserts = Vec::with_capacity(parsed.len());
    for (statement, request) in parsed.into_iter().zip(&statements) {
        let meta = table_meta(app, statement.table()).await?;
        let w = compile_write(&meta.spec.key_schema, statement)?;
        if w.returning.is_some() {
            return Err(Error::validation(
                "RETURNING is not supported in a transaction",
            ));
        }
        let mut compiled = action(&w);
        compiled.return_values_on_condition_check_failure =
            request.return_values_on_condition_check_failure.clone();
        inserts.push(w.kind == WriteKind::Insert);
        let action = Some(compiled);
        items.push(match w.kind {
            WriteKind::Insert => TransactWriteItem {
                put: action,
                ..TransactWriteItem::default()
            },
            WriteKind::Update => TransactWriteItem {
                update: action,
                ..TransactWriteItem::default()
            },
            WriteKind::Delete => TransactWriteItem {
                delete: action,
                ..TransactWriteItem::default()
            },
            WriteKind::Check => TransactWriteItem {
                condition_check: action,
                ..TransactWriteItem::default()
            },
        });
    }
    let transaction = TransactWriteItemsInput {
        transact_items: Some(WireList(items)),
        client_request_token: input.client_request_token,
        return_consumed_capacity: input.return_consumed_capacity,
        ..TransactWriteItemsInput::default()
    };
    match transact_write_items::run(app, &mut inner(req, &transaction)?).await {
        Ok(out) => Ok(ExecuteTransactionOutput {
            responses: None,
            consumed_capacity: out.consumed_capacity,
        }),
        Err(Error::TransactionCanceled { mut reasons, .. }) => {
            // An INSERT's failed "key is free" condition is a duplicate item.
            for (reason, insert) in reasons.iter_mut().zip(&inserts) {
                if *insert && reason.code == "ConditionalCheckFailed" {
                    reason.code = "DuplicateItem".into();
                    reason.message = Some(DUPLICATE.into());
                    reason.item = None;
                }
            }
            let codes: Vec<&str> = reasons.iter().map(|r| r.code.as_str()).collect();
            Err(Error::TransactionCanceled {
                message: format!(
                    "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                    codes.join(", ")
                ),
                reasons,
            })
        }
        Err(e) => Err(e),
    }
}

/// A read transaction: each `SELECT` names one item by its full key.
async fn read(
    app: &AppState,
    req: &Request,
    statements: Vec<Statement>,
    capacity: Option<String>,
) -> Result<ExecuteTransactionOutput> {
    let mut gets = Vec::with_capacity(statements.len());
    for statement in statements {
        let Statement::Select(s) = statement else {
            return Err(Error::internal("a write in a read transaction"));
        };
        if s.index.is_some() {
            return Err(Error::validation(
                "A read transaction reads items of tables, not indexes",
            ));
        }
        let meta = table_meta(app, &s.table).await?;
        let condition = s.condition.ok_or_else(|| Error::validation(NO_FULL_KEY))?;
        let (key, rest) = split_key(&meta.spec.key_schema, condition)?;
        if !rest.is_empty() {
            return Err(Error::validation(
                "A read transaction's SELECT may name only the item's key in its WHERE clause",
            ));
        }
        let mut p = Printed::default();
        let projection = (!s.projection.is_empty()).then(|| p.add_projection(&s.projection));
        let (names, _) = maps(p);
        gets.push(TransactGetItem {
            get: Some(TransactGet {
                table_name: Some(s.table),
                key: Some(crate::api::wire::WireItem(key)),
                projection_expression: projection,
                expression_attribute_names: names,
            }),
        });
    }
    let transaction = TransactGetItemsInput {
        transact_items: Some(WireList(gets)),
        return_consumed_capacity: capacity,
    };
    let out = transact_get_items::run(app, &mut inner(req, &transaction)?).await?;
    Ok(ExecuteTransactionOutput {
        responses: Some(out.responses),
        consumed_capacity: out.consumed_capacity,
    })
}
