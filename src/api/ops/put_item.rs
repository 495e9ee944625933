//! PutItem: validates the item against the local table description, then proposes it.

use crate::api::AppState;
use crate::api::ops::{
    Request, item_member, no_expression_maps, return_old, table_meta, table_name,
};
use crate::api::wire::{PutItemInput, WireItem, WriteItemOutput};
use crate::model::item::check_item_size;
use crate::store::{Command, Outcome};
use crate::{Error, Result};

/// Runs PutItem.
pub async fn run(app: &AppState, req: &mut Request) -> Result<WriteItemOutput> {
    let input: PutItemInput = req.input().await?;
    let table = table_name(input.table_name.as_ref())?;
    let want_old = return_old(input.return_values.as_deref())?;
    let item = item_member(input.item, "item")?;
    no_expression_maps(
        input.expression_attribute_names.as_ref(),
        input.expression_attribute_values.as_ref(),
    )?;
    let meta = table_meta(app, &table).await?;
    meta.spec.key_schema.key_of_item(&item)?;
    check_item_size(&item)?;
    match app.node.propose(&Command::PutItem { table, item }).await? {
        Outcome::Item { old } => Ok(WriteItemOutput {
            attributes: old.filter(|_| want_old).map(WireItem),
        }),
        other => Err(Error::internal(format!("PutItem applied as {other:?}"))),
    }
}
