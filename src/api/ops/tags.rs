//! TagResource, UntagResource and ListTagsOfResource on a table's ARN. Tags are replicated
//! table settings, kept with the table and gone with it.

use std::collections::BTreeMap;

use crate::api::AppState;
use crate::api::ops::{Request, required};
use crate::api::wire::{Empty, ListTagsOutput, Tag, TagsInput};
use crate::store::{Command, Outcome, TableChange};
use crate::{Error, Result};

/// DynamoDB's limit on the tags of one resource.
const MAX_TAGS: usize = 50;

/// The table an ARN names (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME`).
fn table_of(arn: Option<&String>) -> Result<String> {
    let arn = required(arn, "resourceArn")?;
    arn.strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":table/"))
        .map(|(_, name)| name.split('/').next().unwrap_or(name).to_string())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            Error::validation(format!(
                "Invalid TableArn: Invalid ResourceArn provided as input {arn}"
            ))
        })
}

async fn change(app: &AppState, name: String, change: TableChange) -> Result<()> {
    match app
        .node
        .propose(&Command::AlterTable { name, change })
        .await?
    {
        Outcome::Settings(_) => Ok(()),
        other => Err(Error::internal(format!(
            "a tag change applied as {other:?}"
        ))),
    }
}

/// Runs TagResource.
pub async fn tag(app: &AppState, req: &mut Request) -> Result<Empty> {
    let input: TagsInput = req.input().await?;
    let name = table_of(input.resource_arn.as_ref())?;
    let tags = required(input.tags, "tags")?.0;
    let mut add = BTreeMap::new();
    for tag in tags {
        let key = required(tag.key, "tags.member.key")?;
        let value = required(tag.value, "tags.member.value")?;
        if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
            return Err(Error::validation(
                "One or more parameter values were invalid: tag keys must have 1 to 128 characters and values at most 256",
            ));
        }
        add.insert(key, value);
    }
    let (_, settings) = app
        .node
        .read({
            let name = name.clone();
            move |store| store.settings(&name)
        })
        .await?;
    let total = settings
        .tags
        .keys()
        .chain(add.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if total > MAX_TAGS {
        return Err(Error::validation(format!(
            "The number of tags on a resource cannot exceed {MAX_TAGS}"
        )));
    }
    change(app, name, TableChange::Tag(add)).await?;
    Ok(Empty {})
}

/// Runs UntagResource.
pub async fn untag(app: &AppState, req: &mut Request) -> Result<Empty> {
    let input: TagsInput = req.input().await?;
    let name = table_of(input.resource_arn.as_ref())?;
    let keys = required(input.tag_keys, "tagKeys")?.0;
    app.node
        .read({
            let name = name.clone();
            move |store| store.settings(&name)
        })
        .await?;
    change(app, name, TableChange::Untag(keys)).await?;
    Ok(Empty {})
}

/// Runs ListTagsOfResource.
pub async fn list(app: &AppState, req: &mut Request) -> Result<ListTagsOutput> {
    let input: TagsInput = req.input().await?;
    let name = table_of(input.resource_arn.as_ref())?;
    let (_, settings) = app.node.read(move |store| store.settings(&name)).await?;
    Ok(ListTagsOutput {
        tags: settings
            .tags
            .into_iter()
            .map(|(k, v)| Tag {
                key: Some(k),
                value: Some(v),
            })
            .collect(),
    })
}
