//! One file per DynamoDB operation. Each parses its input from the request body, validates it
//! against the local table description (failing fast without touching Raft), and then either
//! proposes a command (writes) or reads the local store (reads, after a ReadIndex when
//! `ConsistentRead` is set). The state machine repeats the write checks at apply time.

mod account;
mod backups;
mod batch_execute_statement;
mod batch_get_item;
mod batch_write_item;
pub mod capacity;
pub mod create_table;
mod delete_item;
mod delete_table;
mod describe_table;
pub mod execute_statement;
mod execute_transaction;
mod get_item;
mod index_schema;
mod legacy;
mod list_tables;
mod put_item;
pub mod query;
mod scan;
pub mod streams;
mod tags;
mod transact_get_items;
mod transact_write_items;
mod ttl;
mod update_item;
mod update_table;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::api::AppState;
use crate::api::budget::Charge;
use crate::api::decode::{decode, off_runtime};
use crate::api::dispatch::Op;
use crate::api::wire;
use crate::api::wire::{WireItem, WireNames};
use crate::model::Item;
use crate::model::expr::{Condition, ExpressionContext, Path, parse_condition, parse_projection};
use crate::model::table::TableMeta;
use crate::store::apply::table_not_found;
use crate::store::{Command, Conditional};
use crate::{Error, Result};

/// A request body, still undecoded, with its charge against the node's memory budget and
/// what the transport told us about the caller.
pub struct Request {
    body: Bytes,
    charge: Charge,
    /// The caller's region, from its SigV4 credential scope (default `us-east-1`).
    pub region: String,
    /// [`crate::api::wire::EXPECTED_VERSION_HEADER`], for a write.
    pub expected_version: Option<u64>,
    /// The item version to answer in [`crate::api::wire::VERSION_HEADER`], set by the
    /// operation.
    pub version: Option<u64>,
    /// More headers for the answer, set by the operation.
    pub headers: Vec<(&'static str, String)>,
    /// The request asked for every concurrent version ([`crate::api::wire::SIBLINGS_HEADER`]).
    pub siblings: bool,
}

impl Request {
    /// A request whose body has been read and charged.
    pub fn new(body: Bytes, charge: Charge, region: String) -> Request {
        Request {
            body,
            charge,
            region,
            expected_version: None,
            version: None,
            headers: Vec::new(),
            siblings: false,
        }
    }

    /// Decodes the body as an operation's input; a large body decodes off the async
    /// runtime. The raw body is dropped once
    /// decoded: its room in the budget then covers the input's plain strings, which are
    /// never longer than the body.
    ///
    /// # Errors
    /// As [`decode`]: `SerializationException` naming the mismatch, `ValidationException`,
    /// or `ThrottlingException` when the node's memory budget is spent.
    pub async fn input<T: DeserializeOwned + Send + 'static>(&mut self) -> Result<T> {
        let body = std::mem::take(&mut self.body);
        let mut charge = std::mem::take(&mut self.charge);
        let (result, charge) = off_runtime(body.len(), move || {
            let result = decode::<T>(&body, &mut charge);
            (result, charge)
        })
        .await?;
        self.charge = charge;
        result
    }
}

/// The command for one item write: conditional on the item's version when the request
/// names one.
pub fn write_command(req: &Request, write: Conditional) -> Command {
    match req.expected_version {
        Some(version) => Command::WriteIfVersion { write, version },
        None => Command::Write(write),
    }
}

/// Runs `op`; each operation's future is boxed (see `boxed`).
///
/// # Errors
/// Whatever the operation reports.
pub async fn run(app: &AppState, op: Op, req: &mut Request) -> Result<Vec<u8>> {
    match op {
        Op::CreateTable => boxed(create_table::run(app, req)).await,
        Op::DeleteTable => boxed(delete_table::run(app, req)).await,
        Op::DescribeTable => boxed(describe_table::run(app, req)).await,
        Op::ListTables => boxed(list_tables::run(app, req)).await,
        Op::PutItem => boxed(put_item::run(app, req)).await,
        Op::GetItem => boxed(get_item::run(app, req)).await,
        Op::DeleteItem => boxed(delete_item::run(app, req)).await,
        Op::UpdateItem => boxed(update_item::run(app, req)).await,
        Op::BatchWriteItem => boxed(batch_write_item::run(app, req)).await,
        Op::BatchGetItem => boxed(batch_get_item::run(app, req)).await,
        Op::TransactWriteItems => boxed(transact_write_items::run(app, req)).await,
        Op::TransactGetItems => boxed(transact_get_items::run(app, req)).await,
        Op::UpdateTable => boxed(update_table::run(app, req)).await,
        Op::TagResource => boxed(tags::tag(app, req)).await,
        Op::UntagResource => boxed(tags::untag(app, req)).await,
        Op::ListTagsOfResource => boxed(tags::list(app, req)).await,
        Op::DescribeContinuousBackups => boxed(backups::describe(app, req)).await,
        Op::UpdateContinuousBackups => boxed(backups::update(app, req)).await,
        Op::DescribeTimeToLive => boxed(ttl::describe(app, req)).await,
        Op::UpdateTimeToLive => boxed(ttl::update(app, req)).await,
        Op::DescribeEndpoints => boxed(account::endpoints(app, req)).await,
        Op::DescribeLimits => boxed(account::limits(req)).await,
        Op::Query => boxed(query::run(app, req)).await,
        Op::Scan => boxed(scan::run(app, req)).await,
        Op::ExecuteStatement => boxed(execute_statement::run(app, req)).await,
        Op::BatchExecuteStatement => boxed(batch_execute_statement::run(app, req)).await,
        Op::ExecuteTransaction => boxed(execute_transaction::run(app, req)).await,
        Op::ListStreams => boxed(streams::list(app, req)).await,
        Op::DescribeStream => boxed(streams::describe(app, req)).await,
        Op::GetShardIterator => boxed(streams::iterator(app, req)).await,
        Op::GetRecords => boxed(streams::records(app, req)).await,
    }
}

/// PutItem's and DeleteItem's write and answer: the old item if `want_old`, the capacity if
/// `report` asks.
///
/// # Errors
/// As [`crate::api::engine::Engine::write`].
pub async fn write_item(
    engine: crate::api::engine::Engine<'_>,
    req: &mut Request,
    meta: &TableMeta,
    write: Conditional,
    want_old: bool,
    report: capacity::Report,
) -> Result<crate::api::wire::WriteItemOutput> {
    let name = write.write.table().to_string();
    let written = engine.write(req, meta, write).await?;
    req.version = written.version;
    Ok(crate::api::wire::WriteItemOutput {
        attributes: written.old.filter(|_| want_old).map(WireItem),
        consumed_capacity: report.write(
            &name,
            capacity::write_units(written.size.into()),
            &written.indexes,
            1.0,
        ),
    })
}

/// Runs one operation on a leaderless node (serving `addr`); its JSON answer. Each
/// operation's future is boxed (see `boxed`).
///
/// # Errors
/// The operation's; a `ValidationException` for what this engine does not offer.
pub async fn run_leaderless(
    node: &crate::dynamo::driver::DynamoHandle,
    addr: &str,
    op: Op,
    req: &mut Request,
) -> Result<Vec<u8>> {
    match op {
        Op::DescribeEndpoints => boxed(account::endpoints_at(addr, req)).await,
        Op::DescribeLimits => boxed(account::limits(req)).await,
        Op::DescribeTimeToLive => boxed(ttl::describe_leaderless(node, req)).await,
        Op::UpdateTimeToLive => boxed(ttl::update_leaderless(node, req)).await,
        Op::UpdateTable => boxed(update_table::run_leaderless(node, req)).await,
        Op::TagResource => boxed(tags::tag_leaderless(node, req)).await,
        Op::UntagResource => boxed(tags::untag_leaderless(node, req)).await,
        Op::ListTagsOfResource => boxed(tags::list_leaderless(node, req)).await,
        Op::DescribeContinuousBackups => boxed(backups::describe_leaderless(node, req)).await,
        Op::UpdateContinuousBackups => boxed(backups::update_leaderless(node, req)).await,
        Op::ListStreams => boxed(streams::list_leaderless(node, req)).await,
        Op::DescribeStream => boxed(streams::describe_leaderless(node, req)).await,
        Op::GetShardIterator => boxed(streams::iterator_leaderless(node, req)).await,
        Op::GetRecords => boxed(streams::records_leaderless(node, req)).await,
        Op::CreateTable => boxed(create_table::run_leaderless(node, req)).await,
        Op::DeleteTable => boxed(delete_table::run_leaderless(node, req)).await,
        Op::DescribeTable => boxed(describe_table::run_leaderless(node, req)).await,
        Op::ListTables => boxed(list_tables::run_leaderless(node, req)).await,
        Op::PutItem => boxed(put_item::run_leaderless(node, req)).await,
        Op::GetItem => boxed(get_item::run_leaderless(node, req)).await,
        Op::DeleteItem => boxed(delete_item::run_leaderless(node, req)).await,
        Op::UpdateItem => boxed(update_item::run_leaderless(node, req)).await,
        Op::Query => boxed(query::run_leaderless(node, req)).await,
        Op::Scan => boxed(scan::run_leaderless(node, req)).await,
        Op::BatchGetItem => boxed(batch_get_item::run_leaderless(node, req)).await,
        Op::BatchWriteItem => boxed(batch_write_item::run_leaderless(node, req)).await,
        Op::ExecuteStatement => boxed(execute_statement::run_leaderless(node, req)).await,
        Op::BatchExecuteStatement => {
            boxed(batch_execute_statement::run_leaderless(node, req)).await
        }
        Op::TransactWriteItems | Op::TransactGetItems | Op::ExecuteTransaction => {
            Err(Error::validation(format!(
                "{op:?} needs a single serialization point, which --mode dynamo does not have: \
                 start the server with --mode raft for transactions"
            )))
        }
    }
}

/// An operation's answer as JSON, its future boxed: unboxed, the future of [`run`] would be as
/// large as the largest operation's (BatchExecuteStatement's, several KiB), and every request's
/// future, whatever its operation, would be that size and copied that many bytes each time a
/// layer of the server moves it.
fn boxed<T: serde::Serialize>(
    op: impl Future<Output = Result<T>>,
) -> impl Future<Output = Result<Vec<u8>>> {
    futures_util::FutureExt::map(Box::pin(op), |out| out.and_then(encode))
}

fn encode<T: serde::Serialize>(v: T) -> Result<Vec<u8>> {
    serde_json::to_vec(&v).map_err(Error::internal)
}

/// DynamoDB's message for a missing required member (`member` in lowerCamelCase).
pub fn null_member(member: &str) -> Error {
    Error::validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

/// A required member.
pub fn required<T>(v: Option<T>, member: &str) -> Result<T> {
    v.ok_or_else(|| null_member(member))
}

/// The constraint message DynamoDB gives for a table name, in its request-validation envelope.
fn bad_table_name(name: &str, constraints: &[&str]) -> Error {
    bad_name(name, "tableName", constraints)
}

/// DynamoDB's message for a table or index name (`member`, e.g. `tableName`) that breaks
/// `constraints`, all reported together.
pub fn bad_name(name: &str, member: &str, constraints: &[&str]) -> Error {
    let errors: Vec<String> = constraints
        .iter()
        .map(|c| format!("Value '{name}' at '{member}' failed to satisfy constraint: {c}"))
        .collect();
    let count = match errors.len() {
        1 => "1 validation error".to_string(),
        n => format!("{n} validation errors"),
    };
    Error::validation(format!("{count} detected: {}", errors.join("; ")))
}

const TABLE_NAME_PATTERN: &str = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+";

fn table_name_pattern_ok(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// DynamoDB's message for a control-plane request without `TableName`.
const TABLE_NAME_REQUIRED: &str =
    "The parameter 'TableName' is required but was not present in the request";

/// CreateTable's table name: required, 3 to 255 characters of `[a-zA-Z0-9_.-]`, with the
/// pattern and length errors reported together as DynamoDB does.
pub fn new_table_name(name: Option<&String>) -> Result<String> {
    let name = name.ok_or_else(|| Error::validation(TABLE_NAME_REQUIRED))?;
    let broken = name_constraints_broken(name);
    if broken.is_empty() {
        Ok(name.clone())
    } else {
        Err(bad_table_name(name, &broken))
    }
}

/// The constraints a new table or index name breaks: 3 to 255 characters of `[a-zA-Z0-9_.-]`.
pub fn name_constraints_broken(name: &str) -> Vec<&'static str> {
    let mut broken = Vec::new();
    if name.is_empty() || !table_name_pattern_ok(name) {
        broken.push(TABLE_NAME_PATTERN);
    }
    if name.len() < 3 {
        broken.push("Member must have length greater than or equal to 3");
    }
    if name.len() > 255 {
        broken.push("Member must have length less than or equal to 255");
    }
    broken
}

/// DescribeTable's and DeleteTable's table name, with those operations' own messages.
pub fn existing_table_name(name: Option<&String>) -> Result<String> {
    let name = name.ok_or_else(|| Error::validation(TABLE_NAME_REQUIRED))?;
    if name.len() < 3 || name.len() > 255 {
        return Err(Error::validation(
            "TableName must be at least 3 characters long and at most 255 characters long",
        ));
    }
    if !table_name_pattern_ok(name) {
        return Err(bad_table_name(name, &[TABLE_NAME_PATTERN]));
    }
    Ok(name.clone())
}

/// A required, well-formed table name (the item operations' rules: an empty name breaks the
/// minimum length of 1, a short one the minimum of 3).
pub fn table_name(name: Option<&String>) -> Result<String> {
    let name = required(name, "tableName")?;
    tracing::Span::current().record("table", name.as_str());
    let bad = |constraint: &str| bad_table_name(name, &[constraint]);
    if name.is_empty() {
        return Err(bad("Member must have length greater than or equal to 1"));
    }
    if name.len() < 3 {
        return Err(bad("Member must have length greater than or equal to 3"));
    }
    if name.len() > 255 {
        return Err(bad("Member must have length less than or equal to 255"));
    }
    if !table_name_pattern_ok(name) {
        return Err(bad(TABLE_NAME_PATTERN));
    }
    Ok(name.clone())
}

/// The table's metadata, or DynamoDB's not-found error.
pub async fn table_meta(app: &AppState, name: &str) -> Result<TableMeta> {
    let (generation, cached) = app.node.store().meta_cache().get(name);
    if let Some(meta) = cached {
        return Ok(meta);
    }
    let name = name.to_string();
    let meta = app
        .node
        .read(move |store| store.table(&name))
        .await?
        .ok_or_else(table_not_found)?;
    app.node.store().meta_cache().fill(generation, &meta);
    Ok(meta)
}

/// A required item member.
pub fn item_member(item: Option<WireItem>, member: &str) -> Result<Item> {
    required(item, member).map(|w| w.0)
}

/// Validates `Limit` (at least 1). DynamoDB words the error differently for Query (no value,
/// `Limit` capitalised) than for Scan and ListTables.
pub fn limit(limit: Option<i64>, op: &str) -> Result<Option<usize>> {
    match limit {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        Some(_) if op == "Query" => Err(Error::validation(
            "1 validation error detected: Value at 'Limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
        )),
        Some(n) => Err(Error::validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ))),
    }
}

/// Validates `ReturnItemCollectionMetrics` (kvsim has no local secondary indexes, so there
/// are never metrics to return).
pub fn item_collection_metrics(v: Option<&str>) -> Result<()> {
    match v {
        None | Some("NONE" | "SIZE") => Ok(()),
        Some(other) => Err(Error::validation(format!(
            "1 validation error detected: Value '{other}' at 'returnItemCollectionMetrics' failed to satisfy constraint: Member must satisfy enum value set: [SIZE, NONE]"
        ))),
    }
}

/// Validates `ReturnValues` for PutItem and DeleteItem; true for `ALL_OLD`.
pub fn return_old(v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some("UPDATED_OLD" | "ALL_NEW" | "UPDATED_NEW") => Err(Error::validation(
            "ReturnValues can only be ALL_OLD or NONE",
        )),
        Some(other) => Err(Error::validation(format!(
            "1 validation error detected: Value '{other}' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]"
        ))),
    }
}

/// Validates `ReturnValuesOnConditionCheckFailure`; true for `ALL_OLD`.
pub fn return_old_on_failure(v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(Error::validation(format!(
            "1 validation error detected: Value '{other}' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]"
        ))),
    }
}

/// The `ConditionExpression` of a write, parsed with the request's placeholder maps, which
/// must all be used; without one, the maps must be absent.
///
/// # Errors
/// DynamoDB's `ValidationException`s for the expression and the maps.
pub fn write_condition(
    text: Option<&str>,
    names: Option<&WireNames>,
    values: Option<&WireItem>,
) -> Result<Option<Condition>> {
    let Some(text) = text else {
        no_expression_maps(names, values)?;
        return Ok(None);
    };
    let mut ctx = ExpressionContext::new(names.map(|n| &n.0), values.map(|v| &v.0))?;
    let condition = parse_condition("ConditionExpression", text, &mut ctx)?;
    ctx.check_all_used()?;
    Ok(Some(condition))
}

/// The paths a point read returns: its `ProjectionExpression` (or legacy `AttributesToGet`)
/// parsed with its `ExpressionAttributeNames`, which must all be used; `None` for the whole
/// item. Shared by GetItem, BatchGetItem and TransactGetItems.
///
/// # Errors
/// DynamoDB's `ValidationException`s for the expression, the names, or mixing the forms.
pub fn read_projection(
    projection: Option<String>,
    names: Option<WireNames>,
    attributes_to_get: Option<Vec<String>>,
) -> Result<Option<Vec<Path>>> {
    let e = legacy::resolve(
        legacy::Expressions {
            projection,
            names,
            ..legacy::Expressions::default()
        },
        legacy::Legacy {
            attributes_to_get,
            ..legacy::Legacy::default()
        },
    )?;
    match e.projection.as_deref() {
        Some(text) => {
            let mut ctx = ExpressionContext::new(e.names.as_ref().map(|n| &n.0), None)?;
            let paths = parse_projection(text, &mut ctx)?;
            ctx.check_all_used()?;
            Ok(Some(paths))
        }
        None => {
            no_expression_maps(e.names.as_ref(), None)?;
            Ok(None)
        }
    }
}

/// The condition of a PutItem or DeleteItem: its `ConditionExpression`, or its legacy
/// `Expected` (with `ConditionalOperator`) rewritten into one.
///
/// # Errors
/// As [`write_condition`], and DynamoDB's messages for a malformed or mixed legacy form.
pub fn item_write_condition(
    condition: Option<String>,
    names: Option<WireNames>,
    values: Option<WireItem>,
    expected: Option<wire::WireMap<wire::ExpectedValue>>,
    conditional_operator: Option<String>,
) -> Result<Option<Condition>> {
    let e = legacy::resolve(
        legacy::Expressions {
            condition,
            names,
            values,
            ..legacy::Expressions::default()
        },
        legacy::Legacy {
            expected,
            conditional_operator,
            ..legacy::Legacy::default()
        },
    )?;
    write_condition(e.condition.as_deref(), e.names.as_ref(), e.values.as_ref())
}

/// `Select`: true when only a count is wanted. `SPECIFIC_ATTRIBUTES` goes with a
/// `ProjectionExpression` (`projected`), `ALL_ATTRIBUTES` and `COUNT` without one. `op` is
/// `Query` or `Scan`, which DynamoDB words some of these errors differently for.
pub fn count_only(select: Option<&str>, projected: bool, op: &str, indexed: bool) -> Result<bool> {
    match select {
        None => Ok(false),
        Some("ALL_ATTRIBUTES") if projected => Err(Error::validation(
            "Cannot specify the ProjectionExpression when choosing to get ALL_ATTRIBUTES",
        )),
        Some("ALL_ATTRIBUTES") => Ok(false),
        Some("SPECIFIC_ATTRIBUTES") if projected => Ok(false),
        Some("SPECIFIC_ATTRIBUTES") if op == "Query" => Err(Error::validation(
            "1 validation error detected: Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES",
        )),
        Some("SPECIFIC_ATTRIBUTES") => Err(Error::validation(
            "Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES",
        )),
        Some("COUNT") if projected && op == "Query" => Err(Error::validation(
            "Cannot specify the ProjectionExpression when choosing to get only the Count",
        )),
        Some("COUNT") if projected => Err(Error::validation(
            "Cannot specify the ProjectionExpression when choosing to get COUNT",
        )),
        Some("COUNT") => Ok(true),
        Some("ALL_PROJECTED_ATTRIBUTES") if projected => Err(Error::validation(
            "Cannot specify the ProjectionExpression when choosing to get ALL_PROJECTED_ATTRIBUTES",
        )),
        Some("ALL_PROJECTED_ATTRIBUTES") if indexed => Ok(false),
        Some("ALL_PROJECTED_ATTRIBUTES") => Err(Error::validation(
            "ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName",
        )),
        Some(other) => Err(Error::validation(format!(
            "1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]"
        ))),
    }
}

/// Rejects ExpressionAttributeNames/Values on requests that use no expression.
pub fn no_expression_maps(names: Option<&WireNames>, values: Option<&WireItem>) -> Result<()> {
    if names.is_some() {
        return Err(Error::validation(
            "ExpressionAttributeNames can only be specified when using expressions",
        ));
    }
    if values.is_some() {
        return Err(Error::validation(
            "ExpressionAttributeValues can only be specified when using expressions",
        ));
    }
    Ok(())
}

/// Waits for a ReadIndex when the request asked for a consistent read.
pub async fn maybe_consistent(app: &AppState, consistent: Option<bool>) -> Result<()> {
    if consistent.unwrap_or(false) {
        app.node.read_index().await?;
    }
    Ok(())
}

/// Decodes `body` as the input of every operation and converts what it holds to the model,
/// ignoring the outcome: the fuzzing entry point (`fuzz/`), which must never panic.
#[doc(hidden)]
pub fn decode_for_fuzzing(body: &[u8]) {
    use crate::api::wire::{
        CreateTableInput, DeleteItemInput, GetItemInput, ListTablesInput, PutItemInput, QueryInput,
        ScanInput, TableNameInput,
    };
    let budget = crate::api::budget::MemoryBudget::new(64 << 20);
    let mut charge = budget.charge();
    let _ = decode::<CreateTableInput>(body, &mut charge);
    let _ = decode::<TableNameInput>(body, &mut charge);
    let _ = decode::<ListTablesInput>(body, &mut charge);
    let _ = decode::<PutItemInput>(body, &mut charge);
    let _ = decode::<GetItemInput>(body, &mut charge);
    let _ = decode::<DeleteItemInput>(body, &mut charge);
    let _ = decode::<ScanInput>(body, &mut charge);
    if let Ok(i) = decode::<QueryInput>(body, &mut charge)
        && let Some(expr) = i.key_condition_expression.as_deref()
        && let Ok(mut ctx) = crate::model::expr::ExpressionContext::new(
            i.expression_attribute_names.as_ref().map(|n| &n.0),
            i.expression_attribute_values.as_ref().map(|v| &v.0),
        )
    {
        let schema = crate::model::KeySchema {
            partition: crate::model::KeyAttribute {
                name: "pk".into(),
                key_type: crate::model::KeyType::S,
            },
            sort: None,
        };
        let _ = crate::model::expr::parse_key_condition(expr, &mut ctx, &schema);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes never panic request decoding.
        #[test]
        fn any_bytes_decode_without_panicking(body in prop::collection::vec(any::<u8>(), 0..256)) {
            super::decode_for_fuzzing(&body);
        }

        /// Nearly-valid JSON with DynamoDB's member names never panics either.
        #[test]
        fn dynamodb_shaped_json_decodes_without_panicking(
            text in r#"\{("(TableName|Item|Key|KeyConditionExpression|ExpressionAttributeValues|ExpressionAttributeNames|S|N|B|SS|NS|L|M|NULL|BOOL|Limit|:v|#n)":("[ -~]{0,8}"|[0-9eE.+-]{1,8}|true|null|\{\}|\[\]|\{"S":"x"\}|\{"N":"[0-9e.-]{1,6}"\}),?){0,6}\}"#
        ) {
            super::decode_for_fuzzing(text.as_bytes());
        }
    }
}
