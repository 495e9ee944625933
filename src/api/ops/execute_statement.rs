//! ExecuteStatement: one PartiQL statement, run as the operation DynamoDB runs it as.
//!
//! The statement is parsed ([`crate::model::partiql`]) into the expression language's own
//! trees, which are printed back as expressions with placeholders and handed to the operation
//! itself, so validation, conditions checked where the write applies, consumed capacity and
//! errors are those of the operations, with no second copy:
//!
//! - `SELECT` becomes a **Query** when its `WHERE` has an equality on every partition key
//!   attribute of the table (or index) in its top-level `AND`s, with the sort key's own
//!   condition as the key condition and the rest as the filter; any other `SELECT` becomes a
//!   **Scan** with the whole `WHERE` as its filter, reading the whole table, as in DynamoDB;
//! - `INSERT` is a PutItem on the condition that no item has the key
//!   (`DuplicateItemException` otherwise);
//! - `UPDATE` and `DELETE` are an UpdateItem or DeleteItem of the item whose full key the
//!   `WHERE` names by equalities, on the condition that it exists and that the rest of the
//!   `WHERE` holds (`ConditionalCheckFailedException` otherwise).

use bytes::Bytes;
use serde::Serialize;

use crate::api::AppState;
use crate::api::budget::Charge;
use crate::api::engine::Engine;
use crate::api::ops::{Request, delete_item, put_item, query, required, scan};
use crate::api::wire::{
    DeleteItemInput, ExecuteStatementInput, ExecuteStatementOutput, PutItemInput, QueryInput,
    ReadPageOutput, ScanInput, TransactAction, UpdateItemInput, WireItem, WireList, WireMap,
    WireValue,
};
use crate::dynamo::driver::DynamoHandle;
use crate::model::expr::print::Printed;
use crate::model::expr::{Comparator, Condition, Operand};
use crate::model::partiql::compile::{and_all, conjuncts, equality, sort_key_condition, top};
use crate::model::partiql::{self, DUPLICATE, Select, Statement, Write, WriteKind, compile_write};
use crate::model::table::TableMeta;
use crate::model::{AttributeValue, KeyAttribute, KeyType};
use crate::{Error, Result};

/// Runs ExecuteStatement.
pub async fn run(app: &AppState, req: &mut Request) -> Result<ExecuteStatementOutput> {
    let input: ExecuteStatementInput = req.input().await?;
    execute(Engine::Raft(app), req, &input).await
}

/// Runs ExecuteStatement in `--mode dynamo`.
pub async fn run_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<ExecuteStatementOutput> {
    let input: ExecuteStatementInput = req.input().await?;
    execute(Engine::Leaderless(node), req, &input).await
}

/// Runs one statement (of ExecuteStatement, or of a batch).
pub(super) async fn execute(
    engine: Engine<'_>,
    req: &Request,
    input: &ExecuteStatementInput,
) -> Result<ExecuteStatementOutput> {
    let text = required(input.statement.as_ref(), "statement")?;
    let params = params(input.parameters.as_ref());
    let statement = partiql::parse(text, &params)?;
    tracing::Span::current().record("table", statement.table());
    let meta = engine.table_meta(statement.table()).await?;
    if statement.is_write() && (input.next_token.is_some() || input.limit.is_some()) {
        return Err(Error::validation(
            "NextToken and Limit apply to SELECT statements only",
        ));
    }
    match statement {
        Statement::Select(s) => select(engine, req, &meta, s, input).await,
        other => write(engine, req, &meta, other, input).await,
    }
}

/// A statement's `Parameters` as values (none when absent).
pub(super) fn params(list: Option<&WireList<WireValue>>) -> Vec<AttributeValue> {
    list.map(|l| l.0.iter().map(|v| v.0.clone()).collect())
        .unwrap_or_default()
}

/// A request for another operation, in this request's region.
pub(super) fn inner<T: Serialize>(req: &Request, input: &T) -> Result<Request> {
    let body = serde_json::to_vec(input).map_err(Error::internal)?;
    // The body is built from this request's own, which is charged already.
    Ok(Request::new(
        Bytes::from(body),
        Charge::default(),
        req.region.clone(),
    ))
}

/// `Some(names)` and `Some(values)` for the maps a printed expression needs, `None` if empty.
pub(super) fn maps(p: Printed) -> (Option<WireMap<String>>, Option<WireItem>) {
    let names = (!p.names.is_empty()).then_some(WireMap(p.names));
    let values = (!p.values.is_empty()).then(|| WireItem(p.values.into_iter().collect()));
    (names, values)
}

/// What a `NextToken` carries: where the page ended, and a fingerprint of the statement and
/// parameters it belongs to, so a token is not taken for another statement's.
#[derive(serde::Serialize, serde::Deserialize)]
struct Token {
    /// The statement's fingerprint.
    s: u32,
    /// The last key read.
    k: WireItem,
}

/// The fingerprint of a request's statement and parameters.
fn fingerprint(input: &ExecuteStatementInput) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(input.statement.as_deref().unwrap_or("").as_bytes());
    if let Ok(params) = serde_json::to_vec(&input.parameters) {
        hasher.update(&params);
    }
    hasher.finalize()
}

/// The `NextToken` for a page of `input` that ended at `key`.
fn next_token(input: &ExecuteStatementInput, key: &WireItem) -> Result<String> {
    use base64::Engine;
    let token = Token {
        s: fingerprint(input),
        k: key.clone(),
    };
    let json = serde_json::to_vec(&token).map_err(Error::internal)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(json))
}

/// Where `input`'s `NextToken` says to go on from.
fn start_key(input: &ExecuteStatementInput) -> Result<Option<WireItem>> {
    use base64::Engine;
    let Some(token) = &input.next_token else {
        return Ok(None);
    };
    let invalid = || Error::validation("Invalid NextToken");
    let json = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let token: Token = serde_json::from_slice(&json).map_err(|_| invalid())?;
    if token.s != fingerprint(input) {
        return Err(Error::validation(
            "Invalid NextToken: it continues another statement (or other parameters)",
        ));
    }
    Ok(Some(token.k))
}

async fn select(
    engine: Engine<'_>,
    req: &Request,
    meta: &TableMeta,
    s: Select,
    input: &ExecuteStatementInput,
) -> Result<ExecuteStatementOutput> {
    // The key attributes of what is read: the table's, or the index's.
    let (partition_keys, sort_keys): (Vec<KeyAttribute>, Vec<KeyAttribute>) = match &s.index {
        None => (
            vec![meta.spec.key_schema.partition.clone()],
            meta.spec.key_schema.sort.iter().cloned().collect(),
        ),
        Some(index) => {
            let spec = meta.index(index).ok_or_else(|| {
                Error::validation(format!(
                    "The table does not have the specified index: {index}"
                ))
            })?;
            (spec.partition.clone(), spec.sort.clone())
        }
    };
    let partition: Vec<String> = partition_keys.iter().map(|k| k.name.clone()).collect();
    let sort: Vec<String> = sort_keys.iter().map(|k| k.name.clone()).collect();
    let mut parts = Vec::new();
    if let Some(c) = s.condition.clone() {
        conjuncts(c, &mut parts);
    }
    // A Query needs an equality on every partition key attribute.
    let mut key_parts = Vec::new();
    let is_query = partition.iter().all(|name| {
        match parts.iter().position(|c| equality(c, name).is_some()) {
            Some(i) => {
                // Written `key = value`, the order a key condition takes.
                let value = equality(&parts.remove(i), name);
                key_parts.extend(value.map(|v| Condition::Compare {
                    op: Comparator::Eq,
                    left: Operand::Path(top(name)),
                    right: Operand::Value(v),
                }));
                true
            }
            None => false,
        }
    });
    let mut p = Printed::default();
    let exclusive_start_key = start_key(input)?;
    let page: ReadPageOutput = if is_query {
        // One condition on the sort key joins the key condition (a Query takes one), if it
        // is one a key condition can be: its values of the key's type.
        if let Some(sk) = sort_keys.first()
            && let Some(i) = parts
                .iter()
                .position(|c| sort_key_condition(c, &sk.name) && of_key_type(c, sk.key_type))
        {
            key_parts.push(match parts.remove(i) {
                // `value < key` as `key > value`.
                Condition::Compare {
                    op,
                    left: left @ Operand::Value(_),
                    right,
                } => Condition::Compare {
                    op: op.flipped(),
                    left: right,
                    right: left,
                },
                other => other,
            });
        }
        let descending = match s.order_by.as_slice() {
            [] => false,
            keys => {
                let sort_name = sort.first();
                let mut descending = None;
                for (key, desc) in keys {
                    let name = key.as_top_level();
                    let ok = name.is_some_and(|n| partition.iter().any(|p| p == n))
                        || name.is_some_and(|n| Some(&n.to_string()) == sort_name);
                    if !ok {
                        return Err(Error::validation(format!(
                            "ORDER BY accepts only the key attributes of the table or index read; {key} is not one"
                        )));
                    }
                    if name.is_some_and(|n| Some(&n.to_string()) == sort_name) {
                        descending = Some(*desc);
                    }
                }
                descending.unwrap_or(false)
            }
        };
        // A Query's filter may not name key attributes; conditions on them beyond the key
        // condition (`sk > 1 AND sk < 9`, `sk <> 3`, ...) are applied here, to whole items,
        // before the projection.
        let (local, filtered): (Vec<Condition>, Vec<Condition>) =
            parts.into_iter().partition(|c| {
                partition
                    .iter()
                    .chain(&sort)
                    .any(|name| query::mentions(c, name))
            });
        let local = and_all(local);
        let projection =
            (local.is_none() && !s.projection.is_empty()).then(|| p.add_projection(&s.projection));
        let key_condition = and_all(key_parts).map(|c| p.add_condition(&c));
        let filter = and_all(filtered).map(|c| p.add_condition(&c));
        let (names, values) = maps(p);
        let q = QueryInput {
            table_name: Some(s.table.clone()),
            index_name: s.index.clone(),
            key_condition_expression: key_condition,
            filter_expression: filter,
            projection_expression: projection,
            expression_attribute_names: names,
            expression_attribute_values: values,
            scan_index_forward: Some(!descending),
            limit: input.limit,
            exclusive_start_key,
            consistent_read: input.consistent_read,
            return_consumed_capacity: input.return_consumed_capacity.clone(),
            ..QueryInput::default()
        };
        let mut page = query::run_on(engine, &mut inner(req, &q)?).await?;
        if let Some(local) = &local {
            let items = page.items.take().unwrap_or_default();
            page.items = Some(
                items
                    .into_iter()
                    .filter(|i| crate::model::expr::eval::evaluate(local, &i.0))
                    .map(|i| match s.projection.as_slice() {
                        [] => i,
                        paths => WireItem(crate::model::expr::eval::project(&i.0, paths)),
                    })
                    .collect(),
            );
        }
        page
    } else {
        if !s.order_by.is_empty() {
            return Err(Error::validation(
                "ORDER BY needs a WHERE clause with an equality on the partition key (it orders a Query's results; a Scan has no order)",
            ));
        }
        let projection = (!s.projection.is_empty()).then(|| p.add_projection(&s.projection));
        let filter = s.condition.as_ref().map(|c| p.add_condition(c));
        let (names, values) = maps(p);
        let scan = ScanInput {
            table_name: Some(s.table.clone()),
            index_name: s.index.clone(),
            filter_expression: filter,
            projection_expression: projection,
            expression_attribute_names: names,
            expression_attribute_values: values,
            limit: input.limit,
            exclusive_start_key,
            consistent_read: input.consistent_read,
            return_consumed_capacity: input.return_consumed_capacity.clone(),
            ..ScanInput::default()
        };
        scan::run_on(engine, &mut inner(req, &scan)?).await?
    };
    Ok(ExecuteStatementOutput {
        items: page.items.unwrap_or_default(),
        next_token: page
            .last_evaluated_key
            .as_ref()
            .map(|k| next_token(input, k))
            .transpose()?,
        last_evaluated_key: page.last_evaluated_key,
        consumed_capacity: page.consumed_capacity,
    })
}

/// Whether every value `c` compares a key with is of the key's type (and, for `begins_with`,
/// a type that has prefixes), as a key condition requires.
fn of_key_type(c: &Condition, key_type: KeyType) -> bool {
    let fits = |o: &Operand| match o {
        Operand::Value(v) => matches!(
            (v, key_type),
            (AttributeValue::S(_), KeyType::S)
                | (AttributeValue::N(_), KeyType::N)
                | (AttributeValue::B(_), KeyType::B)
        ),
        _ => true,
    };
    match c {
        Condition::Compare { left, right, .. } => fits(left) && fits(right),
        Condition::Between { low, high, .. } => fits(low) && fits(high),
        Condition::Function(crate::model::expr::Function::BeginsWith(_, o)) => {
            key_type != KeyType::N && fits(o)
        }
        _ => false,
    }
}

/// A compiled write as the members of a PutItem, UpdateItem, DeleteItem or ConditionCheck,
/// its expressions printed with the placeholders they share.
pub(super) fn action(w: &Write) -> TransactAction {
    let mut p = Printed::default();
    let update = w.update.as_ref().map(|u| p.add_update(u));
    let condition = p.add_condition(&w.condition);
    let (names, values) = maps(p);
    TransactAction {
        table_name: Some(w.table.clone()),
        key: w.key.clone().map(WireItem),
        item: w.item.clone().map(WireItem),
        update_expression: update,
        condition_expression: Some(condition),
        expression_attribute_names: names,
        expression_attribute_values: values,
        return_values_on_condition_check_failure: None,
    }
}

/// Runs one write statement as its own operation.
async fn write(
    engine: Engine<'_>,
    req: &Request,
    meta: &TableMeta,
    statement: Statement,
    input: &ExecuteStatementInput,
) -> Result<ExecuteStatementOutput> {
    let w = compile_write(&meta.spec.key_schema, statement)?;
    let a = action(&w);
    let on_failure = input.return_values_on_condition_check_failure.clone();
    let capacity = input.return_consumed_capacity.clone();
    let return_values = w.returning.map(|r| r.return_values().to_string());
    let out = match w.kind {
        WriteKind::Insert => {
            let put = PutItemInput {
                table_name: a.table_name,
                item: a.item,
                condition_expression: a.condition_expression,
                expression_attribute_names: a.expression_attribute_names,
                expression_attribute_values: a.expression_attribute_values,
                return_consumed_capacity: capacity,
                ..PutItemInput::default()
            };
            match put_item::run_on(engine, &mut inner(req, &put)?).await {
                Err(Error::ConditionalCheckFailed { .. }) => {
                    return Err(Error::DuplicateItem(DUPLICATE.into()));
                }
                other => other?,
            }
        }
        WriteKind::Update => {
            let update = UpdateItemInput {
                table_name: a.table_name,
                key: a.key,
                update_expression: a.update_expression,
                condition_expression: a.condition_expression,
                expression_attribute_names: a.expression_attribute_names,
                expression_attribute_values: a.expression_attribute_values,
                return_values,
                return_values_on_condition_check_failure: on_failure,
                return_consumed_capacity: capacity,
                ..UpdateItemInput::default()
            };
            crate::api::ops::update_item::run_on(engine, &mut inner(req, &update)?).await?
        }
        WriteKind::Delete => {
            let delete = DeleteItemInput {
                table_name: a.table_name,
                key: a.key,
                condition_expression: a.condition_expression,
                expression_attribute_names: a.expression_attribute_names,
                expression_attribute_values: a.expression_attribute_values,
                return_values,
                return_values_on_condition_check_failure: on_failure,
                return_consumed_capacity: capacity,
                ..DeleteItemInput::default()
            };
            delete_item::run_on(engine, &mut inner(req, &delete)?).await?
        }
        WriteKind::Check => {
            return Err(Error::validation(
                "EXISTS is a condition of a transaction: use it in ExecuteTransaction",
            ));
        }
    };
    Ok(ExecuteStatementOutput {
        items: w
            .returning
            .and(out.attributes)
            .into_iter()
            .filter(|item| !item.0.is_empty())
            .collect(),
        consumed_capacity: out.consumed_capacity,
        ..ExecuteStatementOutput::default()
    })
}

/// Whether `statement` writes, by its first word (a statement that does not parse fails
/// wherever it runs): the dispatcher sends writes, like consistent reads, to the leader.
pub fn writes(statement: &str) -> bool {
    let first = statement
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    !first.eq_ignore_ascii_case("SELECT")
}
