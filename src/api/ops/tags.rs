//! TagResource, UntagResource and ListTagsOfResource on a table's ARN. Tags are replicated
//! table settings, kept with the table and gone with it.

use std::collections::BTreeMap;

use crate::api::AppState;
use crate::api::engine::Engine;
use crate::api::ops::{Request, required};
use crate::api::wire::{Empty, ListTagsOutput, Tag, TagsInput};
use crate::dynamo::driver::DynamoHandle;
use crate::store::TableChange;
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

/// Runs TagResource.
pub async fn tag(app: &AppState, req: &mut Request) -> Result<Empty> {
    tag_on(Engine::Raft(app), req).await
}

/// Runs TagResource in `--mode dynamo`.
pub async fn tag_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<Empty> {
    tag_on(Engine::Leaderless(node), req).await
}

async fn tag_on(engine: Engine<'_>, req: &mut Request) -> Result<Empty> {
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
    let settings = engine.settings(&name).await?;
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
    engine.alter(name, TableChange::Tag(add)).await?;
    Ok(Empty {})
}

/// Runs UntagResource.
pub async fn untag(app: &AppState, req: &mut Request) -> Result<Empty> {
    untag_on(Engine::Raft(app), req).await
}

/// Runs UntagResource in `--mode dynamo`.
pub async fn untag_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<Empty> {
    untag_on(Engine::Leaderless(node), req).await
}

async fn untag_on(engine: Engine<'_>, req: &mut Request) -> Result<Empty> {
    let input: TagsInput = req.input().await?;
    let name = table_of(input.resource_arn.as_ref())?;
    let keys = required(input.tag_keys, "tagKeys")?.0;
    engine.alter(name, TableChange::Untag(keys)).await?;
    Ok(Empty {})
}

/// Runs ListTagsOfResource.
pub async fn list(app: &AppState, req: &mut Request) -> Result<ListTagsOutput> {
    list_on(Engine::Raft(app), req).await
}

/// Runs ListTagsOfResource in `--mode dynamo`.
pub async fn list_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<ListTagsOutput> {
    list_on(Engine::Leaderless(node), req).await
}

async fn list_on(engine: Engine<'_>, req: &mut Request) -> Result<ListTagsOutput> {
    let input: TagsInput = req.input().await?;
    let name = table_of(input.resource_arn.as_ref())?;
    let settings = engine.settings(&name).await?;
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
