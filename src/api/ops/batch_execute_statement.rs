//! BatchExecuteStatement: 1 to 25 PartiQL statements, all reads or all writes, each run as
//! ExecuteStatement runs it and answered on its own: a statement that fails puts its error in
//! its place in `Responses` (`ConditionalCheckFailed`, `DuplicateItem`, `ValidationError`,
//! `ResourceNotFound`, ...) and the others go on. A read names one item by its full key.

use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::execute_statement::{execute, params};
use crate::api::ops::{Request, required};
use crate::api::wire::{
    BatchExecuteStatementInput, BatchExecuteStatementOutput, BatchStatementError,
    BatchStatementRequest, BatchStatementResponse, Capacity, ConsumedCapacity,
    ExecuteStatementInput,
};
use crate::dynamo::driver::DynamoHandle;
use crate::model::partiql::compile::split_key;
use crate::model::partiql::{self, NO_FULL_KEY, Statement};
use crate::{Error, Result};

/// Most statements in one batch (DynamoDB's limit).
const MAX_STATEMENTS: usize = 25;

/// Runs BatchExecuteStatement.
pub async fn run(app: &AppState, req: &mut Request) -> Result<BatchExecuteStatementOutput> {
    run_on(Engine::Raft(app), req).await
}

/// Runs BatchExecuteStatement in `--mode dynamo`.
pub async fn run_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<BatchExecuteStatementOutput> {
    run_on(Engine::Leaderless(node), req).await
}

async fn run_on(engine: Engine<'_>, req: &mut Request) -> Result<BatchExecuteStatementOutput> {
    let input: BatchExecuteStatementInput = req.input().await?;
    let statements = required(input.statements, "statements")?.0;
    if statements.is_empty() {
        return Err(Error::validation(
            "1 validation error detected: Value '[]' at 'statements' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    if statements.len() > MAX_STATEMENTS {
        return Err(Error::validation(format!(
            "1 validation error detected: Value at 'statements' failed to satisfy constraint: Member must have length less than or equal to {MAX_STATEMENTS}"
        )));
    }
    // Parsed once up front to check the batch's shape; a statement that does not parse
    // answers its own error below.
    let parsed: Vec<Option<Statement>> = statements
        .iter()
        .map(|s| {
            let params = params(s.parameters.as_ref());
            s.statement
                .as_deref()
                .and_then(|text| partiql::parse(text, &params).ok())
        })
        .collect();
    let reads = parsed
        .iter()
        .flatten()
        .filter(|s| matches!(s, Statement::Select(_)))
        .count();
    let writes = parsed.iter().flatten().count() - reads;
    if reads > 0 && writes > 0 {
        return Err(Error::validation(
            "A batch's statements must be all reads (SELECT) or all writes",
        ));
    }
    let mut responses = Vec::with_capacity(statements.len());
    let mut capacity: Vec<ConsumedCapacity> = Vec::new();
    for (request, statement) in statements.iter().zip(parsed) {
        let table_name = statement.as_ref().map(|s| s.table().to_string());
        let outcome = one(
            engine,
            req,
            request,
            statement,
            &input.return_consumed_capacity,
        )
        .await;
        responses.push(match outcome {
            Ok((item, used)) => {
                if let Some(used) = used {
                    add(&mut capacity, used);
                }
                BatchStatementResponse {
                    table_name,
                    item,
                    error: None,
                }
            }
            // The node itself failed (no leader, shutting down): a batch of reads is simply
            // retried whole; in a batch of writes the statements before this one may have
            // applied, so the failure stays in this statement's place.
            Err(e) if !statement_error(&e) && writes == 0 => return Err(e),
            Err(e) => BatchStatementResponse {
                table_name,
                item: None,
                error: Some(BatchStatementError {
                    code: code(&e),
                    item: match &e {
                        Error::ConditionalCheckFailed { item, .. } => item
                            .as_ref()
                            .map(|i| crate::api::wire::WireItem((**i).clone())),
                        _ => None,
                    },
                    message: e.to_string(),
                }),
            },
        });
    }
    Ok(BatchExecuteStatementOutput {
        responses,
        consumed_capacity: input.return_consumed_capacity.as_ref().map(|_| capacity),
    })
}

/// Runs one statement: a read's item, and the capacity used.
async fn one(
    engine: Engine<'_>,
    req: &Request,
    request: &BatchStatementRequest,
    statement: Option<Statement>,
    capacity: &Option<String>,
) -> Result<(Option<crate::api::wire::WireItem>, Option<ConsumedCapacity>)> {
    // A read names one item by its full key, as GetItem does.
    if let Some(Statement::Select(s)) = statement {
        if s.index.is_some() {
            return Err(Error::validation(
                "A batch reads items of tables by their key, not indexes",
            ));
        }
        let meta = engine.table_meta(&s.table).await?;
        let condition = s.condition.ok_or_else(|| Error::validation(NO_FULL_KEY))?;
        split_key(&meta.spec.key_schema, condition)?;
    }
    let input = ExecuteStatementInput {
        statement: request.statement.clone(),
        parameters: request.parameters.clone(),
        consistent_read: request.consistent_read,
        return_consumed_capacity: capacity.clone(),
        return_values_on_condition_check_failure: request
            .return_values_on_condition_check_failure
            .clone(),
        ..ExecuteStatementInput::default()
    };
    let out = execute(engine, req, &input).await?;
    Ok((out.items.into_iter().next(), out.consumed_capacity))
}

/// Adds one statement's capacity to its table's total, the table's and each index's share
/// too (with `INDEXES`).
fn add(totals: &mut Vec<ConsumedCapacity>, used: ConsumedCapacity) {
    fn add_shares(
        total: &mut Option<std::collections::BTreeMap<String, Capacity>>,
        used: Option<std::collections::BTreeMap<String, Capacity>>,
    ) {
        for (index, c) in used.into_iter().flatten() {
            total
                .get_or_insert_with(Default::default)
                .entry(index)
                .or_insert(Capacity {
                    capacity_units: 0.0,
                })
                .capacity_units += c.capacity_units;
        }
    }
    let Some(total) = totals.iter_mut().find(|t| t.table_name == used.table_name) else {
        totals.push(used);
        return;
    };
    total.capacity_units += used.capacity_units;
    if let Some(table) = used.table {
        total
            .table
            .get_or_insert(Capacity {
                capacity_units: 0.0,
            })
            .capacity_units += table.capacity_units;
    }
    add_shares(
        &mut total.global_secondary_indexes,
        used.global_secondary_indexes,
    );
    add_shares(
        &mut total.local_secondary_indexes,
        used.local_secondary_indexes,
    );
}

/// Whether an error belongs to the statement (answered in its place) rather than to the node.
fn statement_error(e: &Error) -> bool {
    e.is_deterministic()
        || matches!(
            e,
            Error::ProvisionedThroughputExceeded(_)
                | Error::Throttling(_)
                | Error::TransactionConflict(_)
                | Error::RequestLimitExceeded(_)
                | Error::AccessDenied(_)
        )
}

/// DynamoDB's `BatchStatementError` code for an error.
fn code(e: &Error) -> String {
    if !statement_error(e) {
        return "InternalServerError".into();
    }
    match e.short_name() {
        "ValidationException" => "ValidationError".into(),
        "ThrottlingException" => "ThrottlingError".into(),
        other => other.trim_end_matches("Exception").to_string(),
    }
}
