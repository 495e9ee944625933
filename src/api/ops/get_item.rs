//! GetItem: a local read, after a ReadIndex when `ConsistentRead` is set.

use crate::api::AppState;
use crate::api::ops::{Request, item_member, maybe_consistent, table_name};
use crate::api::wire::{GetItemInput, GetItemOutput, WireItem};
use crate::{Error, Result};

/// Runs GetItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<GetItemOutput> {
    let input: GetItemInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let key = item_member(input.key, "key")?;
    if input.expression_attribute_names.is_some() {
        return Err(Error::validation(
            "ExpressionAttributeNames can only be specified when using expressions",
        ));
    }
    maybe_consistent(app, input.consistent_read).await?;
    let item = app
        .node
        .read(move |store| store.get_item(&table, &key))
        .await?;
    Ok(GetItemOutput {
        item: item.map(WireItem),
    })
}
