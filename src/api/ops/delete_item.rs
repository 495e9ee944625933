//! DeleteItem: validates the key, then proposes the deletion.

use crate::api::AppState;
use crate::api::ops::{
    Request, item_member, no_expression_maps, return_old, table_meta, table_name,
};
use crate::api::wire::{DeleteItemInput, WireItem, WriteItemOutput};
use crate::store::{Command, Outcome};
use crate::{Error, Result};

/// Runs DeleteItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<WriteItemOutput> {
    let input: DeleteItemInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let want_old = return_old(input.return_values.as_deref())?;
    let key = item_member(input.key, "key")?;
    no_expression_maps(
        input.expression_attribute_names.as_ref(),
        input.expression_attribute_values.as_ref(),
    )?;
    let meta = table_meta(app, &table).await?;
    meta.spec.key_schema.key_from_map(&key)?;
    match app
        .node
        .propose(&Command::DeleteItem { table, key })
        .await?
    {
        Outcome::Item { old } => Ok(WriteItemOutput {
            attributes: old.filter(|_| want_old).map(WireItem),
        }),
        other => Err(Error::internal(format!("DeleteItem applied as {other:?}"))),
    }
}
