//! The seam between the DynamoDB operations and the replication engine behind them.
//!
//! An operation validates its input the same way whichever engine serves the node, then asks
//! the [`Engine`] for what only the engine can do: a table's description, an item write under
//! its condition. Raft proposes the write and the state machine decides it at apply; the
//! leaderless engine decides it at the coordinator on its quorum read
//! ([`crate::dynamo::service`]). Operations that only one engine offers match on it.

use crate::api::AppState;
use crate::api::ops::{Request, table_meta, write_command};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;
use crate::model::item::item_size;
use crate::model::table::{Billing, TableDescription, TableMeta, TableSettings};
use crate::model::{Item, PrimaryKey};
use crate::store::{
    Command, Conditional, IndexChange, IndexCharge, ItemWrite, Outcome, TableChange,
};
use crate::{Error, Result};

/// The engine an operation runs on.
#[derive(Clone, Copy)]
pub enum Engine<'a> {
    /// A Raft node (`--mode raft`).
    Raft(&'a AppState),
    /// A leaderless node (`--mode dynamo`).
    Leaderless(&'a DynamoHandle),
}

/// What an item write did.
#[derive(Debug)]
pub struct Written {
    /// The item's version (its Raft log index); none in leaderless mode, where versions are
    /// vector clocks.
    pub version: Option<u64>,
    /// The item before.
    pub old: Option<Item>,
    /// The item after.
    pub new: Option<Item>,
    /// The size the write is charged for.
    pub size: u32,
    /// What the write cost each index.
    pub indexes: Vec<IndexCharge>,
}

impl Engine<'_> {
    /// The description of table `name` (in `--mode dynamo`, from the node's table cache when
    /// it read the table within [`service::TABLE_CACHE_TTL`]).
    ///
    /// # Errors
    /// `ResourceNotFound`; the engine's errors.
    pub async fn table_meta(self, name: &str) -> Result<TableMeta> {
        match self {
            Engine::Raft(app) => table_meta(app, name).await,
            Engine::Leaderless(node) => service::table_for_items(node, name).await,
        }
    }

    /// Changes table `name`'s billing (UpdateTable); its description after.
    ///
    /// # Errors
    /// `ResourceNotFound`; the engine's errors.
    pub async fn alter_billing(self, name: String, billing: Billing) -> Result<TableDescription> {
        match self {
            Engine::Raft(app) => {
                let change = TableChange::Billing(billing);
                table_changed(
                    app.node
                        .propose(&Command::AlterTable { name, change })
                        .await?,
                )
            }
            Engine::Leaderless(node) => {
                service::alter_table(node, &name, move |meta| {
                    meta.spec.billing = billing;
                    Ok(())
                })
                .await
            }
        }
    }

    /// Adds, removes or re-provisions one global index of table `name` (UpdateTable); its
    /// description after.
    ///
    /// # Errors
    /// `ResourceNotFound`; the change's errors; the engine's errors.
    pub async fn alter_indexes(
        self,
        name: String,
        change: IndexChange,
    ) -> Result<TableDescription> {
        match self {
            Engine::Raft(app) => table_changed(
                app.node
                    .propose(&Command::AlterIndexes { name, change })
                    .await?,
            ),
            Engine::Leaderless(node) => {
                service::alter_table(node, &name, move |meta| {
                    crate::store::apply::change_indexes(meta, change, false).map(|_| ())
                })
                .await
            }
        }
    }

    /// The settings of table `name` (tags, point-in-time recovery, time to live).
    ///
    /// # Errors
    /// `ResourceNotFound`; the engine's errors.
    pub async fn settings(self, name: &str) -> Result<TableSettings> {
        match self {
            Engine::Raft(app) => {
                let name = name.to_string();
                Ok(app.node.read(move |store| store.settings(&name)).await?.1)
            }
            Engine::Leaderless(node) => service::settings(node, name).await,
        }
    }

    /// Changes one setting of table `name` (a tag, point-in-time recovery or time-to-live
    /// change); the settings after.
    ///
    /// # Errors
    /// `ResourceNotFound`; the change's `Validation` errors; the engine's errors.
    pub async fn alter(self, name: String, change: TableChange) -> Result<TableSettings> {
        match self {
            Engine::Raft(app) => match app
                .node
                .propose(&Command::AlterTable { name, change })
                .await?
            {
                Outcome::Settings(settings) => Ok(settings),
                other => Err(Error::internal(format!(
                    "a settings change applied as {other:?}"
                ))),
            },
            Engine::Leaderless(node) => service::alter_settings(node, &name, change).await,
        }
    }

    /// The description of table `name` for a read of its index `index` (if any): in
    /// `--mode dynamo` a cached description that lacks the index is read again, so an index
    /// added through another node is readable at once.
    ///
    /// # Errors
    /// As [`Engine::table_meta`].
    pub async fn table_meta_for(self, name: &str, index: Option<&str>) -> Result<TableMeta> {
        let meta = self.table_meta(name).await?;
        match (self, index) {
            (Engine::Leaderless(node), Some(index)) if meta.index(index).is_none() => {
                service::table(node, name, false).await
            }
            _ => Ok(meta),
        }
    }

    /// Writes one item under its condition, on `meta`'s table.
    ///
    /// # Errors
    /// `ConditionalCheckFailed`, validation errors of the write, the engine's errors.
    pub async fn write(
        self,
        req: &Request,
        meta: &TableMeta,
        write: Conditional,
    ) -> Result<Written> {
        match self {
            Engine::Raft(app) => match app.node.propose(&write_command(req, write)).await? {
                Outcome::Item {
                    version,
                    old,
                    new,
                    size,
                    indexes,
                } => Ok(Written {
                    version: Some(version),
                    old,
                    new,
                    size,
                    indexes,
                }),
                other => Err(Error::internal(format!(
                    "an item write applied as {other:?}"
                ))),
            },
            Engine::Leaderless(node) => {
                if req.expected_version.is_some() {
                    return Err(Error::validation(format!(
                        "{} needs --mode raft: items have no single version number in --mode dynamo (their versions are vector clocks)",
                        crate::api::wire::EXPECTED_VERSION_HEADER
                    )));
                }
                let key = key_of(meta, &write.write)?;
                let (old, new) = service::write(node, meta, &key, write).await?;
                let size = old
                    .iter()
                    .chain(new.iter())
                    .map(item_size)
                    .max()
                    .unwrap_or(0);
                let indexes =
                    crate::store::apply::index_charges(meta, &key, old.as_ref(), new.as_ref())
                        // Checked before the write; the write is durable now whatever this says.
                        .unwrap_or_default();
                Ok(Written {
                    version: None,
                    old,
                    new,
                    size: u32::try_from(size).unwrap_or(u32::MAX),
                    indexes,
                })
            }
        }
    }
}

/// The table a table change left.
fn table_changed(outcome: Outcome) -> Result<TableDescription> {
    match outcome {
        Outcome::Table(desc) => Ok(*desc),
        other => Err(Error::internal(format!("UpdateTable applied as {other:?}"))),
    }
}

/// The primary key an item write names.
fn key_of(meta: &TableMeta, write: &ItemWrite) -> Result<PrimaryKey> {
    let schema = &meta.spec.key_schema;
    match write {
        ItemWrite::Put { item, .. } => schema.key_of_item(item),
        ItemWrite::Delete { key, .. }
        | ItemWrite::Update { key, .. }
        | ItemWrite::Check { key, .. } => schema.key_from_map(key),
    }
}
