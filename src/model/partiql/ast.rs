//! The statements PartiQL for DynamoDB has, with parameters already bound: conditions and
//! updates are the expression language's own trees ([`Condition`], [`Update`]), so they are
//! evaluated and applied by the same code as `ConditionExpression` and `UpdateExpression`.

use crate::model::Item;
use crate::model::expr::{Condition, Path, Update};

/// One PartiQL statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// `SELECT ... FROM ...`
    Select(Select),
    /// `INSERT INTO ... VALUE {...}`
    Insert(Insert),
    /// `UPDATE ... SET/REMOVE ... WHERE ...`
    Update(UpdateStatement),
    /// `DELETE FROM ... WHERE ...`
    Delete(Delete),
    /// `EXISTS(SELECT * FROM ... WHERE <full key> ...)`: a transaction's condition check.
    Exists(Select),
}

impl Statement {
    /// The table the statement names.
    pub fn table(&self) -> &str {
        match self {
            Statement::Select(s) => &s.table,
            Statement::Insert(s) => &s.table,
            Statement::Update(s) => &s.table,
            Statement::Delete(s) => &s.table,
            Statement::Exists(s) => &s.table,
        }
    }

    /// Whether the statement writes (an `EXISTS` is part of a write transaction).
    pub fn is_write(&self) -> bool {
        !matches!(self, Statement::Select(_))
    }
}

/// `SELECT projection FROM "table"[."index"] [WHERE condition] [ORDER BY ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Select {
    /// The paths to return; empty for `*`.
    pub projection: Vec<Path>,
    /// The table.
    pub table: String,
    /// The index, for `FROM "table"."index"`.
    pub index: Option<String>,
    /// The `WHERE` condition.
    pub condition: Option<Condition>,
    /// `ORDER BY` keys, each descending or not.
    pub order_by: Vec<(Path, bool)>,
}

/// `INSERT INTO "table" VALUE {...}`: fails if an item with the key exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insert {
    /// The table.
    pub table: String,
    /// The item.
    pub item: Item,
}

/// Which item image an `UPDATE` or `DELETE` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returning {
    /// `RETURNING ALL OLD *`
    AllOld,
    /// `RETURNING MODIFIED OLD *`
    ModifiedOld,
    /// `RETURNING ALL NEW *`
    AllNew,
    /// `RETURNING MODIFIED NEW *`
    ModifiedNew,
}

impl Returning {
    /// The clause's words after `RETURNING`.
    pub fn words(self) -> &'static str {
        match self {
            Returning::AllOld => "ALL OLD",
            Returning::ModifiedOld => "MODIFIED OLD",
            Returning::AllNew => "ALL NEW",
            Returning::ModifiedNew => "MODIFIED NEW",
        }
    }

    /// DynamoDB's `ReturnValues` for the clause.
    pub fn return_values(self) -> &'static str {
        match self {
            Returning::AllOld => "ALL_OLD",
            Returning::ModifiedOld => "UPDATED_OLD",
            Returning::AllNew => "ALL_NEW",
            Returning::ModifiedNew => "UPDATED_NEW",
        }
    }
}

/// `UPDATE "table" SET ... REMOVE ... WHERE condition [RETURNING ...]`. `SET a = set_add(a,
/// <<...>>)` and `set_delete` are the update's `ADD` and `DELETE` actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateStatement {
    /// The table.
    pub table: String,
    /// The changes.
    pub update: Update,
    /// The `WHERE` condition: the item's full key, and possibly more.
    pub condition: Condition,
    /// The `RETURNING` clause.
    pub returning: Option<Returning>,
}

/// `DELETE FROM "table" WHERE condition [RETURNING ALL OLD *]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// The table.
    pub table: String,
    /// The `WHERE` condition: the item's full key, and possibly more.
    pub condition: Condition,
    /// The `RETURNING` clause.
    pub returning: Option<Returning>,
}
