//! Statements to the writes and reads they run as, against a table's key schema: which
//! conjuncts of a `WHERE` name the item's key, what condition the write carries, and what a
//! `SELECT` can use as a key condition. Pure, so the API ([`crate::api::ops`]) and the
//! deterministic simulation compile statements the same way.

use super::ast::{Returning, Statement};
use crate::model::expr::{Comparator, Condition, Function, Operand, Path, PathElement, Update};
use crate::model::{AttributeValue, Item, KeySchema};
use crate::{Error, Result};

/// DynamoDB's message when an `INSERT` meets an existing item.
pub const DUPLICATE: &str = "Duplicate primary key exists in table";

/// DynamoDB's message when an `UPDATE` or `DELETE` does not name one item.
pub const NO_FULL_KEY: &str =
    "Where clause does not contain a mandatory equality on all key attributes";

/// What a write statement does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// `INSERT`: a put on the condition that the key is free.
    Insert,
    /// `UPDATE`: an update of an existing item.
    Update,
    /// `DELETE`: a delete of an existing item.
    Delete,
    /// `EXISTS(SELECT ...)` in a transaction: a condition check.
    Check,
}

/// A write statement compiled: the item or key it touches, the update, and the condition it
/// is applied on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// What it does.
    pub kind: WriteKind,
    /// The table.
    pub table: String,
    /// The item's key (all but `INSERT`).
    pub key: Option<Item>,
    /// The item (`INSERT`).
    pub item: Option<Item>,
    /// The changes (`UPDATE`).
    pub update: Option<Update>,
    /// The condition: the key free (`INSERT`), or the item existing and the rest of the
    /// `WHERE` holding.
    pub condition: Condition,
    /// The `RETURNING` clause.
    pub returning: Option<Returning>,
}

/// Compiles a write statement (or a transaction's `EXISTS`) against its table's key schema.
///
/// # Errors
/// `ValidationException` when an `UPDATE`, `DELETE` or `EXISTS` does not name an item by its
/// full key, or a `DELETE` asks for an image other than `ALL OLD`.
pub fn compile_write(schema: &KeySchema, statement: Statement) -> Result<Write> {
    let (kind, table, where_clause, item, update, returning) = match statement {
        Statement::Insert(i) => {
            let free =
                Condition::Function(Function::AttributeNotExists(top(&schema.partition.name)));
            return Ok(Write {
                kind: WriteKind::Insert,
                table: i.table,
                key: None,
                item: Some(i.item),
                update: None,
                condition: free,
                returning: None,
            });
        }
        Statement::Update(u) => (
            WriteKind::Update,
            u.table,
            u.condition,
            None,
            Some(u.update),
            u.returning,
        ),
        Statement::Delete(d) => {
            if let Some(r) = d.returning.filter(|r| *r != Returning::AllOld) {
                return Err(Error::validation(format!(
                    "DELETE supports only RETURNING ALL OLD *, not RETURNING {} *",
                    r.words()
                )));
            }
            (
                WriteKind::Delete,
                d.table,
                d.condition,
                None,
                None,
                d.returning,
            )
        }
        Statement::Exists(s) => {
            let condition = s.condition.ok_or_else(|| Error::validation(NO_FULL_KEY))?;
            (WriteKind::Check, s.table, condition, None, None, None)
        }
        Statement::Select(_) => {
            return Err(Error::internal("a SELECT compiled as a write"));
        }
    };
    let (key, mut rest) = split_key(schema, where_clause)?;
    rest.insert(
        0,
        Condition::Function(Function::AttributeExists(top(&schema.partition.name))),
    );
    let condition = and_all(rest).ok_or_else(|| Error::internal("an empty condition"))?;
    Ok(Write {
        kind,
        table,
        key: Some(key),
        item,
        update,
        condition,
        returning,
    })
}

/// The item's full key from a `WHERE`'s top-level equalities, and its other conjuncts.
///
/// # Errors
/// `ValidationException` ([`NO_FULL_KEY`]) when a key attribute has no equality.
pub fn split_key(schema: &KeySchema, condition: Condition) -> Result<(Item, Vec<Condition>)> {
    let mut parts = Vec::new();
    conjuncts(condition, &mut parts);
    let mut key = Item::new();
    for name in std::iter::once(&schema.partition.name).chain(schema.sort.iter().map(|k| &k.name)) {
        let i = parts
            .iter()
            .position(|c| equality(c, name).is_some())
            .ok_or_else(|| Error::validation(NO_FULL_KEY))?;
        let value =
            equality(&parts.remove(i), name).ok_or_else(|| Error::validation(NO_FULL_KEY))?;
        key.insert(name.clone(), value);
    }
    Ok((key, parts))
}

/// The conjuncts of `c`'s top-level `AND`s, in order.
pub fn conjuncts(c: Condition, out: &mut Vec<Condition>) {
    match c {
        Condition::And(a, b) => {
            conjuncts(*a, out);
            conjuncts(*b, out);
        }
        other => out.push(other),
    }
}

/// `parts` joined by `AND` (leaning left, as the parsers build a chain), or `None` if there
/// are none.
pub fn and_all(parts: Vec<Condition>) -> Option<Condition> {
    parts
        .into_iter()
        .reduce(|acc, c| Condition::And(Box::new(acc), Box::new(c)))
}

/// The path of top-level attribute `name`.
pub fn top(name: &str) -> Path {
    Path {
        elements: vec![PathElement::Attribute(name.to_string())],
    }
}

/// The value `c` says top-level attribute `name` equals, if that is what it says.
pub fn equality(c: &Condition, name: &str) -> Option<AttributeValue> {
    let Condition::Compare {
        op: Comparator::Eq,
        left,
        right,
    } = c
    else {
        return None;
    };
    match (left, right) {
        (Operand::Path(p), Operand::Value(v)) | (Operand::Value(v), Operand::Path(p))
            if p.as_top_level() == Some(name) =>
        {
            Some(v.clone())
        }
        _ => None,
    }
}

/// Whether `c` is a key condition on sort key `name`: a comparison with a value, `BETWEEN`
/// two values, or `begins_with` a value.
pub fn sort_key_condition(c: &Condition, name: &str) -> bool {
    let on = |o: &Operand| matches!(o, Operand::Path(p) if p.as_top_level() == Some(name));
    let value = |o: &Operand| matches!(o, Operand::Value(_));
    match c {
        Condition::Compare { op, left, right } => {
            *op != Comparator::Ne && ((on(left) && value(right)) || (value(left) && on(right)))
        }
        Condition::Between { operand, low, high } => on(operand) && value(low) && value(high),
        Condition::Function(Function::BeginsWith(p, o)) => {
            p.as_top_level() == Some(name) && value(o)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::partiql::parse;
    use crate::model::{KeyAttribute, KeyType, Number};

    fn schema() -> KeySchema {
        KeySchema {
            partition: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            sort: Some(KeyAttribute {
                name: "sk".into(),
                key_type: KeyType::N,
            }),
        }
    }

    fn compile(text: &str) -> Result<Write> {
        compile_write(&schema(), parse(text, &[])?)
    }

    #[test]
    fn updates_name_their_item_and_carry_the_rest_as_their_condition() {
        let w =
            compile("UPDATE T SET a = 1 WHERE 2 = sk AND pk = 'k' AND a < 5").expect("compiles");
        assert_eq!(w.kind, WriteKind::Update);
        assert_eq!(
            w.key,
            Some(Item::from([
                ("pk".to_string(), AttributeValue::S("k".into())),
                ("sk".to_string(), AttributeValue::N(Number::from_i64(2))),
            ]))
        );
        let mut parts = Vec::new();
        conjuncts(w.condition, &mut parts);
        assert_eq!(parts.len(), 2, "exists(pk) and a < 5: {parts:?}");
        assert_eq!(
            parts[0],
            Condition::Function(Function::AttributeExists(top("pk")))
        );
    }

    #[test]
    fn writes_without_the_full_key_are_refused() {
        for text in [
            "DELETE FROM T WHERE pk = 'k'",
            "UPDATE T SET a = 1 WHERE pk = 'k' OR sk = 1",
            "DELETE FROM T WHERE pk > 'k' AND sk = 1",
        ] {
            let e = compile(text).expect_err(text);
            assert_eq!(e.to_string(), NO_FULL_KEY, "{text}");
        }
        let e = compile("DELETE FROM T WHERE pk = 'k' AND sk = 1 RETURNING ALL NEW *")
            .expect_err("ALL NEW on a delete");
        assert!(e.to_string().contains("ALL OLD"), "{e}");
    }

    #[test]
    fn inserts_require_the_key_to_be_free() {
        let w = compile("INSERT INTO T VALUE {'pk': 'k', 'sk': 1}").expect("compiles");
        assert_eq!(
            w.condition,
            Condition::Function(Function::AttributeNotExists(top("pk")))
        );
        assert!(w.item.is_some() && w.key.is_none());
    }
}
