//! Secondary indexes: what each one is (global or local, its key, its projection), whether an
//! item belongs in it, what of the item it keeps, and the storage key of the item's entry.
//!
//! An index entry's key is `table id ++ index id ++ index key values ++ the item's primary
//! key`, each value in the order-preserving encoding of [`encode_key_value`]: one index
//! partition is one contiguous range in index sort-key order, and items with equal index keys
//! follow each other in primary-key order, so a Query on an index is one ordered range scan
//! and `LastEvaluatedKey` (index key plus primary key) names exactly one entry.

use serde::{Deserialize, Serialize};

use crate::model::key::encode_key_value;
use crate::model::{AttributeValue, Item, KeyAttribute, KeySchema, KeyType, PrimaryKey};
use crate::{Error, Result};

/// Most global secondary indexes on one table.
pub const MAX_GLOBAL_INDEXES: usize = 20;
/// Most local secondary indexes on one table.
pub const MAX_LOCAL_INDEXES: usize = 5;
/// Most `NonKeyAttributes` over all of a table's indexes.
pub const MAX_PROJECTED_ATTRIBUTES: usize = 100;
/// Most attributes in a global index's partition key, and in its sort key.
pub const MAX_KEY_ATTRIBUTES: usize = 4;

/// Global (any key, eventually consistent in DynamoDB) or local (the table's partition key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexKind {
    /// A global secondary index.
    Global,
    /// A local secondary index.
    Local,
}

/// Which attributes an index keeps besides the keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Projection {
    /// Every attribute.
    All,
    /// The table's and the index's key attributes only.
    KeysOnly,
    /// The keys plus these attributes.
    Include(Vec<String>),
}

impl Projection {
    /// DynamoDB's `ProjectionType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Projection::All => "ALL",
            Projection::KeysOnly => "KEYS_ONLY",
            Projection::Include(_) => "INCLUDE",
        }
    }
}

/// One secondary index of a table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSpec {
    /// `IndexName`, unique among the table's indexes.
    pub name: String,
    /// Global or local.
    pub kind: IndexKind,
    /// Storage id, unique among the table's indexes (a deleted index's id is free again only
    /// once its last entry is gone).
    pub id: u32,
    /// The partition key attributes (one, or up to four for a global index).
    pub partition: Vec<KeyAttribute>,
    /// The sort key attributes (none or one, or up to four for a global index).
    pub sort: Vec<KeyAttribute>,
    /// What the index keeps of each item.
    pub projection: Projection,
    /// A global index's provisioned throughput `(read, write)` on a provisioned table.
    pub throughput: Option<(u64, u64)>,
    /// Where the index stands: active, being filled, or being removed.
    pub state: IndexState,
}

/// Where an index stands in its life. (Rows written before indexes could be deleted hold an
/// `Option` of the `Backfilling` fields here, which postcard encodes byte for byte as
/// `Active` or `Backfilling`; a test in `store::tables` holds it to that.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexState {
    /// Answering reads; every write keeps it up to date (`ACTIVE`).
    #[default]
    Active,
    /// A global index added to a live table, being filled from its items in bounded batches:
    /// writes keep it up to date, reads are refused until it is done (`CREATING`).
    Backfilling {
        /// The table row (its storage key) the last batch ended at; `None` before the first.
        after: Option<Vec<u8>>,
    },
    /// A global index removed by UpdateTable: neither read nor maintained any more; its
    /// entries go in bounded batches, then the index itself (`DELETING`).
    Deleting,
}

impl IndexState {
    /// DynamoDB's `IndexStatus`.
    pub fn status_name(&self) -> &'static str {
        match self {
            IndexState::Active => "ACTIVE",
            IndexState::Backfilling { .. } => "CREATING",
            IndexState::Deleting => "DELETING",
        }
    }
}

impl IndexSpec {
    /// Every key attribute of the index, partition first.
    pub fn key_attributes(&self) -> impl Iterator<Item = &KeyAttribute> {
        self.partition.iter().chain(&self.sort)
    }

    /// The index key as a [`KeySchema`], when it has one attribute per part (what Query's key
    /// condition parser understands today).
    pub fn key_schema(&self) -> Option<KeySchema> {
        match (self.partition.as_slice(), self.sort.as_slice()) {
            ([partition], []) => Some(KeySchema {
                partition: partition.clone(),
                sort: None,
            }),
            ([partition], [sort]) => Some(KeySchema {
                partition: partition.clone(),
                sort: Some(sort.clone()),
            }),
            _ => None,
        }
    }

    /// The index key values of `item` in key order, or `None` if the item lacks one of them
    /// (a sparse index leaves it out).
    ///
    /// # Errors
    /// DynamoDB's `ValidationException` for a key value of the wrong type or an empty one.
    /// Every key attribute the item has is checked, even when another is missing, as DynamoDB
    /// checks them.
    pub fn key_values<'a>(&self, item: &'a Item) -> Result<Option<Vec<&'a AttributeValue>>> {
        let mut values = Vec::with_capacity(self.partition.len() + self.sort.len());
        let mut complete = true;
        for attr in self.key_attributes() {
            match item.get(&attr.name) {
                Some(v) => {
                    self.check_value(attr, v)?;
                    values.push(v);
                }
                None => complete = false,
            }
        }
        Ok(complete.then_some(values))
    }

    fn check_value(&self, attr: &KeyAttribute, v: &AttributeValue) -> Result<()> {
        let empty = match (attr.key_type, v) {
            (KeyType::S, AttributeValue::S(s)) => s.is_empty(),
            (KeyType::B, AttributeValue::B(b)) => b.is_empty(),
            (KeyType::N, AttributeValue::N(_)) => false,
            (expected, actual) => {
                return Err(Error::Validation(format!(
                    "One or more parameter values were invalid: Type mismatch for Index Key {} Expected: {expected} Actual: {} IndexName: {}",
                    attr.name,
                    actual.type_name(),
                    self.name
                )));
            }
        };
        if empty {
            return Err(Error::Validation(format!(
                "One or more parameter values are not valid. A value specified for a secondary index key is not supported. The AttributeValue for a key attribute cannot contain an empty {} value. IndexName: {}, IndexKey: {}",
                if attr.key_type == KeyType::S {
                    "string"
                } else {
                    "binary"
                },
                self.name,
                attr.name
            )));
        }
        Ok(())
    }

    /// The storage key of `item`'s entry in this index of table `table_id`, or `None` if the
    /// item is not in the index. `key` is the item's primary key.
    ///
    /// # Errors
    /// As [`IndexSpec::key_values`].
    pub fn entry_key(
        &self,
        table_id: u64,
        item: &Item,
        key: &PrimaryKey,
    ) -> Result<Option<Vec<u8>>> {
        let Some(values) = self.key_values(item)? else {
            return Ok(None);
        };
        let mut out = self.prefix(table_id);
        for v in values {
            encode_key_value(v, &mut out);
        }
        out.extend_from_slice(&key.encode());
        Ok(Some(out))
    }

    /// The bytes every entry key of this index starts with.
    pub fn prefix(&self, table_id: u64) -> Vec<u8> {
        let mut out = table_id.to_be_bytes().to_vec();
        out.extend_from_slice(&self.id.to_be_bytes());
        out
    }

    /// What the index keeps of `item`: its projection plus every key attribute of the table
    /// (`table`) and of the index.
    pub fn project(&self, item: &Item, table: &KeySchema) -> Item {
        let keep_key = |name: &str| {
            table.partition.name == name
                || table.sort.as_ref().is_some_and(|s| s.name == name)
                || self.key_attributes().any(|a| a.name == name)
        };
        match &self.projection {
            Projection::All => item.clone(),
            Projection::KeysOnly => item
                .iter()
                .filter(|(name, _)| keep_key(name))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
            Projection::Include(extra) => item
                .iter()
                .filter(|(name, _)| keep_key(name) || extra.iter().any(|e| e == *name))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
        }
    }

    /// Whether the index keeps the top-level attribute `name` of its items.
    pub fn projects(&self, name: &str, table: &KeySchema) -> bool {
        match &self.projection {
            Projection::All => true,
            Projection::KeysOnly | Projection::Include(_) => {
                table.partition.name == name
                    || table.sort.as_ref().is_some_and(|s| s.name == name)
                    || self.key_attributes().any(|a| a.name == name)
                    || matches!(&self.projection, Projection::Include(extra) if extra.iter().any(|e| e == name))
            }
        }
    }

    /// The `LastEvaluatedKey` of an entry: the table's key and the index's key attributes of
    /// the projected item.
    pub fn last_key(&self, projected: &Item, table: &KeySchema) -> Item {
        projected
            .iter()
            .filter(|(name, _)| {
                table.partition.name == **name
                    || table.sort.as_ref().is_some_and(|s| s.name == **name)
                    || self.key_attributes().any(|a| a.name == **name)
            })
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Number;

    fn attr(name: &str, key_type: KeyType) -> KeyAttribute {
        KeyAttribute {
            name: name.into(),
            key_type,
        }
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.parse::<Number>().expect("number"))
    }

    fn gsi(projection: Projection) -> (IndexSpec, KeySchema) {
        (
            IndexSpec {
                name: "byStatus".into(),
                kind: IndexKind::Global,
                id: 1,
                partition: vec![attr("status", KeyType::S)],
                sort: vec![attr("at", KeyType::N)],
                projection,
                throughput: None,
                state: IndexState::Active,
            },
            KeySchema {
                partition: attr("pk", KeyType::S),
                sort: None,
            },
        )
    }

    #[test]
    fn items_without_every_index_key_attribute_are_not_indexed() {
        let (index, _) = gsi(Projection::All);
        let key = PrimaryKey {
            partition: s("a"),
            sort: None,
        };
        let only_status = Item::from([("pk".into(), s("a")), ("status".into(), s("open"))]);
        assert_eq!(index.entry_key(7, &only_status, &key).expect("ok"), None);
        let both = Item::from([
            ("pk".into(), s("a")),
            ("status".into(), s("open")),
            ("at".into(), n("5")),
        ]);
        let entry = index
            .entry_key(7, &both, &key)
            .expect("ok")
            .expect("indexed");
        assert!(entry.starts_with(&index.prefix(7)));
        assert!(entry.ends_with(&key.encode()));
    }

    #[test]
    fn a_mistyped_or_empty_index_key_is_refused_with_dynamodb_s_message() {
        let (index, _) = gsi(Projection::All);
        let wrong = Item::from([("status".into(), n("1")), ("at".into(), n("5"))]);
        let e = index.key_values(&wrong).expect_err("type mismatch");
        assert!(
            e.to_string().contains(
                "Type mismatch for Index Key status Expected: S Actual: N IndexName: byStatus"
            ),
            "{e}"
        );
        let empty = Item::from([("status".into(), s("")), ("at".into(), n("5"))]);
        let e = index.key_values(&empty).expect_err("empty");
        assert!(e.to_string().contains("IndexKey: status"), "{e}");
    }

    #[test]
    fn entries_sort_by_index_key_then_primary_key() {
        let (index, _) = gsi(Projection::All);
        let entry = |status: &str, at: &str, pk: &str| {
            let item = Item::from([
                ("pk".into(), s(pk)),
                ("status".into(), s(status)),
                ("at".into(), n(at)),
            ]);
            let key = PrimaryKey {
                partition: s(pk),
                sort: None,
            };
            index
                .entry_key(1, &item, &key)
                .expect("ok")
                .expect("indexed")
        };
        assert!(entry("a", "2", "z") < entry("a", "10", "a"));
        assert!(entry("a", "10", "a") < entry("a", "10", "b"));
        assert!(entry("a", "99", "z") < entry("b", "1", "a"));
    }

    #[test]
    fn projections_keep_the_keys_and_what_they_name() {
        let item = Item::from([
            ("pk".into(), s("a")),
            ("status".into(), s("open")),
            ("at".into(), n("5")),
            ("title".into(), s("t")),
            ("body".into(), s("b")),
        ]);
        let (all, table) = gsi(Projection::All);
        assert_eq!(all.project(&item, &table), item);
        let (keys, _) = gsi(Projection::KeysOnly);
        let kept: Vec<_> = keys.project(&item, &table).into_keys().collect();
        assert_eq!(kept, ["at", "pk", "status"]);
        assert!(!keys.projects("title", &table));
        let (include, _) = gsi(Projection::Include(vec!["title".into()]));
        let kept: Vec<_> = include.project(&item, &table).into_keys().collect();
        assert_eq!(kept, ["at", "pk", "status", "title"]);
        assert!(include.projects("title", &table) && !include.projects("body", &table));
        assert_eq!(
            include
                .last_key(&include.project(&item, &table), &table)
                .len(),
            3
        );
    }
}
