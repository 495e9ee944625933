//! ListTables: names in order, paginated by `Limit` and `ExclusiveStartTableName`.

use crate::api::AppState;
use crate::api::ops::Request;
use crate::api::wire::{ListTablesInput, ListTablesOutput};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;
use crate::{Error, Result};

/// DynamoDB's default and maximum page size.
const MAX_LIMIT: i64 = 100;

/// Runs ListTables.
pub async fn run(app: &AppState, req: &mut Request) -> Result<ListTablesOutput> {
    let input: ListTablesInput = req.input().await?;
    let limit = page_size(input.limit)?;
    let (table_names, last) = app
        .node
        .read(move |store| store.list_tables(input.exclusive_start_table_name.as_deref(), limit))
        .await?;
    Ok(ListTablesOutput {
        table_names,
        last_evaluated_table_name: last,
    })
}

/// Runs ListTables on the leaderless engine: the catalog as R replicas have it.
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<ListTablesOutput> {
    let input: ListTablesInput = req.input().await?;
    let limit = page_size(input.limit)?;
    let names = service::list_tables(node).await?;
    let after = input.exclusive_start_table_name;
    let mut table_names: Vec<String> = names
        .into_iter()
        .filter(|n| after.as_ref().is_none_or(|a| n > a))
        .take(limit + 1)
        .collect();
    let last = if table_names.len() > limit {
        table_names.truncate(limit);
        table_names.last().cloned()
    } else {
        None
    };
    Ok(ListTablesOutput {
        table_names,
        last_evaluated_table_name: last,
    })
}

/// `Limit`, checked as DynamoDB does.
fn page_size(limit: Option<i64>) -> Result<usize> {
    let limit = limit.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        let bound = if limit < 1 {
            "greater than or equal to 1"
        } else {
            "less than or equal to 100"
        };
        return Err(Error::validation(format!(
            "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value {bound}"
        )));
    }
    Ok(usize::try_from(limit).unwrap_or(1))
}
