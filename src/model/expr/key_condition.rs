//! Query's `KeyConditionExpression`: parsed with the general condition parser, then checked
//! against the shape DynamoDB allows (one equality on the partition key, optionally `AND` one
//! range condition on the sort key) and the key schema's types, and turned into a
//! [`KeyCondition`] the storage layer can scan with.

use std::cmp::Ordering;
use std::fmt::Write;

use super::ast::{Comparator, Condition, Function, Operand, Path};
use super::parser::{ExpressionContext, parse_condition};
use crate::model::{AttributeValue, KeyAttribute, KeySchema, KeyType};
use crate::{Error, Result};

const KIND: &str = "KeyConditionExpression";

/// A condition on the sort key. Values are already checked to have the sort key's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKeyCondition {
    /// `sk = v`
    Eq(AttributeValue),
    /// `sk < v`
    Lt(AttributeValue),
    /// `sk <= v`
    Le(AttributeValue),
    /// `sk > v`
    Gt(AttributeValue),
    /// `sk >= v`
    Ge(AttributeValue),
    /// `sk BETWEEN low AND high`, inclusive; `low <= high` is checked.
    Between(AttributeValue, AttributeValue),
    /// `begins_with(sk, prefix)`; S and B keys only.
    BeginsWith(AttributeValue),
}

/// A validated key condition: the partition to read and, optionally, which sort keys in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCondition {
    /// The partition key value (of the schema's partition key type).
    pub partition: AttributeValue,
    /// The sort key range, if any.
    pub sort: Option<SortKeyCondition>,
}

/// DynamoDB's ordering of two values for the comparison operators: only between values of the
/// same scalar type, S by UTF-8 bytes, B by bytes, N numerically. `None` when not comparable.
pub fn compare_values(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::S(a), AttributeValue::S(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (AttributeValue::N(a), AttributeValue::N(b)) => Some(a.cmp(b)),
        (AttributeValue::B(a), AttributeValue::B(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

impl SortKeyCondition {
    /// Whether sort key value `v` satisfies the condition. A value of another type never does.
    pub fn matches(&self, v: &AttributeValue) -> bool {
        use Ordering::{Equal, Greater, Less};
        let cmp = |bound| compare_values(v, bound);
        match self {
            SortKeyCondition::Eq(b) => cmp(b) == Some(Equal),
            SortKeyCondition::Lt(b) => cmp(b) == Some(Less),
            SortKeyCondition::Le(b) => matches!(cmp(b), Some(Less | Equal)),
            SortKeyCondition::Gt(b) => cmp(b) == Some(Greater),
            SortKeyCondition::Ge(b) => matches!(cmp(b), Some(Greater | Equal)),
            SortKeyCondition::Between(low, high) => {
                matches!(cmp(low), Some(Greater | Equal)) && matches!(cmp(high), Some(Less | Equal))
            }
            SortKeyCondition::BeginsWith(prefix) => match (v, prefix) {
                (AttributeValue::S(s), AttributeValue::S(p)) => s.starts_with(p.as_str()),
                (AttributeValue::B(b), AttributeValue::B(p)) => b.starts_with(p),
                _ => false,
            },
        }
    }
}

/// Parses and validates a Query's `KeyConditionExpression` against the table's (or index's)
/// key schema.
pub fn parse_key_condition(
    text: &str,
    ctx: &mut ExpressionContext,
    schema: &KeySchema,
) -> Result<KeyCondition> {
    let condition = parse_condition(KIND, text, ctx)?;
    reject_operators(&condition)?;
    let mut conjuncts = Vec::new();
    flatten_and(condition, &mut conjuncts);
    if conjuncts.len() > 2 {
        return Err(one_per_key());
    }
    let terms = conjuncts
        .into_iter()
        .map(term)
        .collect::<Result<Vec<_>>>()?;

    let pk = &schema.partition;
    let is_sort_key = |name: &str| schema.sort.as_ref().is_some_and(|sk| sk.name == name);
    let missed_pk = || {
        Error::validation(format!(
            "Query condition missed key schema element: {}",
            pk.name
        ))
    };
    let has_pk = terms.iter().any(|(name, _)| *name == pk.name);
    if terms
        .iter()
        .any(|(name, _)| *name != pk.name && !is_sort_key(name))
    {
        return Err(if has_pk { not_supported() } else { missed_pk() });
    }
    if let [(a, _), (b, _)] = terms.as_slice()
        && a == b
    {
        return Err(one_per_key());
    }

    let (mut partition, mut sort) = (None, None);
    for (name, condition) in terms {
        if name == pk.name {
            partition = Some(condition);
        } else {
            sort = Some(condition);
        }
    }
    let partition = match partition {
        Some(SortKeyCondition::Eq(value)) => value,
        Some(_) => return Err(not_supported()),
        None => return Err(missed_pk()),
    };
    check_type(&partition, pk.key_type)?;
    // Empty or oversized partition key values are refused as on every other key.
    schema.check_key_value(pk, &partition)?;
    if let (Some(condition), Some(sk)) = (&sort, &schema.sort) {
        check_sort_condition(condition, sk.key_type)?;
    }
    Ok(KeyCondition { partition, sort })
}

/// A validated key condition on a global index whose key has several attributes per part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiKeyCondition {
    /// The values fixed by equality, in key order: every partition key attribute, then the
    /// leading sort key attributes compared with `=`.
    pub fixed: Vec<AttributeValue>,
    /// The condition on the next sort key attribute, if any.
    pub sort: Option<SortKeyCondition>,
}

/// Parses a `KeyConditionExpression` on an index with multi-attribute keys, by DynamoDB's
/// rules: `=` on every partition key attribute, and sort key attributes used from the first
/// without gaps, all with `=` except the last used, which may have any sort key condition.
pub fn parse_multi_key_condition(
    text: &str,
    ctx: &mut ExpressionContext,
    partition: &[KeyAttribute],
    sort: &[KeyAttribute],
) -> Result<MultiKeyCondition> {
    let condition = parse_condition(KIND, text, ctx)?;
    reject_operators(&condition)?;
    let mut conjuncts = Vec::new();
    flatten_and(condition, &mut conjuncts);
    let mut terms: Vec<(String, SortKeyCondition)> = conjuncts
        .into_iter()
        .map(term)
        .collect::<Result<Vec<_>>>()?;
    let mut fixed = Vec::new();
    /// The one condition on `name`, taken out of `terms`.
    fn take(
        name: &str,
        terms: &mut Vec<(String, SortKeyCondition)>,
    ) -> Result<Option<SortKeyCondition>> {
        let found: Vec<usize> = terms
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| n == name)
            .map(|(i, _)| i)
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [i] => Ok(Some(terms.remove(*i).1)),
            _ => Err(one_per_key()),
        }
    }
    for attr in partition {
        match take(&attr.name, &mut terms)? {
            Some(SortKeyCondition::Eq(value)) => {
                check_type(&value, attr.key_type)?;
                fixed.push(value);
            }
            Some(_) => return Err(not_supported()),
            None => {
                return Err(Error::validation(format!(
                    "Query condition missed key schema element: {}",
                    attr.name
                )));
            }
        }
    }
    let mut range = None;
    for attr in sort {
        let Some(condition) = take(&attr.name, &mut terms)? else {
            break;
        };
        if range.is_some() {
            // A condition after a range condition: only the last attribute used may have one.
            return Err(not_supported());
        }
        check_sort_condition(&condition, attr.key_type)?;
        match condition {
            SortKeyCondition::Eq(value) => fixed.push(value),
            other => range = Some(other),
        }
    }
    if !terms.is_empty() {
        // An attribute that is not part of the key, or a sort key attribute after a gap.
        return Err(not_supported());
    }
    // The last equality on a sort key attribute is its condition, so that a Query's bounds
    // and the rows it matches are computed the same way for one attribute or several.
    let sort = match range {
        Some(r) => Some(r),
        None if fixed.len() > partition.len() => fixed.pop().map(SortKeyCondition::Eq),
        None => None,
    };
    Ok(MultiKeyCondition { fixed, sort })
}

/// Rejects the operators and functions a key condition may not use, anywhere in the tree.
fn reject_operators(condition: &Condition) -> Result<()> {
    let invalid = |op: &str| {
        Error::validation(format!(
            "Invalid operator used in KeyConditionExpression: {op}"
        ))
    };
    let check_operand = |operand: &Operand| match operand {
        Operand::Size(_) => Err(invalid("size")),
        _ => Ok(()),
    };
    match condition {
        Condition::Or(..) => Err(invalid("OR")),
        Condition::Not(_) => Err(invalid("NOT")),
        Condition::In { .. } => Err(invalid("IN")),
        Condition::Compare {
            op: Comparator::Ne, ..
        } => Err(invalid("<>")),
        Condition::Compare { left, right, .. } => {
            check_operand(left)?;
            check_operand(right)
        }
        Condition::Between { operand, low, high } => {
            [operand, low, high].into_iter().try_for_each(check_operand)
        }
        Condition::Function(Function::BeginsWith(_, operand)) => check_operand(operand),
        Condition::Function(function) => Err(invalid(function.name())),
        Condition::And(left, right) => {
            reject_operators(left)?;
            reject_operators(right)
        }
    }
}

/// Collects the operands of nested `AND`s, left to right.
fn flatten_and(condition: Condition, out: &mut Vec<Condition>) {
    match condition {
        Condition::And(left, right) => {
            flatten_and(*left, out);
            flatten_and(*right, out);
        }
        other => out.push(other),
    }
}

/// One conjunct as (key attribute name, condition on it), normalizing `:v < k` to `k > :v`.
fn term(condition: Condition) -> Result<(String, SortKeyCondition)> {
    let (path, condition) = match condition {
        Condition::Compare { op, left, right } => {
            let (op, path, value) = match (left, right) {
                (Operand::Path(path), Operand::Value(value)) => (op, path, value),
                (Operand::Value(value), Operand::Path(path)) => (op.flipped(), path, value),
                _ => return Err(not_supported()),
            };
            let condition = match op {
                Comparator::Eq => SortKeyCondition::Eq(value),
                Comparator::Lt => SortKeyCondition::Lt(value),
                Comparator::Le => SortKeyCondition::Le(value),
                Comparator::Gt => SortKeyCondition::Gt(value),
                Comparator::Ge => SortKeyCondition::Ge(value),
                // `reject_operators` has already refused `<>`.
                Comparator::Ne => return Err(not_supported()),
            };
            (path, condition)
        }
        Condition::Between {
            operand: Operand::Path(path),
            low: Operand::Value(low),
            high: Operand::Value(high),
        } => (path, SortKeyCondition::Between(low, high)),
        Condition::Function(Function::BeginsWith(path, Operand::Value(prefix))) => {
            (path, SortKeyCondition::BeginsWith(prefix))
        }
        _ => return Err(not_supported()),
    };
    Ok((key_name(&path)?.to_string(), condition))
}

/// The attribute a key condition names: a top-level attribute, never a nested path.
fn key_name(path: &Path) -> Result<&str> {
    path.as_top_level().ok_or_else(not_supported)
}

/// Checks a sort key condition's values against the sort key's type.
fn check_sort_condition(condition: &SortKeyCondition, key_type: KeyType) -> Result<()> {
    match condition {
        SortKeyCondition::BeginsWith(prefix) => {
            // begins_with is a string/binary operation: refuse it on numbers by name.
            let operand_type = match (key_type, prefix) {
                (KeyType::N, _) => Some("N"),
                (_, AttributeValue::S(_) | AttributeValue::B(_)) => None,
                (_, other) => Some(other.type_name()),
            };
            if let Some(operand_type) = operand_type {
                return Err(Error::validation(format!(
                    "Invalid KeyConditionExpression: Incorrect operand type for operator or \
                     function; operator or function: begins_with, operand type: {operand_type}"
                )));
            }
            check_type(prefix, key_type)
        }
        SortKeyCondition::Between(low, high) => {
            check_type(low, key_type)?;
            check_type(high, key_type)?;
            if compare_values(low, high) == Some(Ordering::Greater) {
                return Err(Error::validation(format!(
                    "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound \
                     to be greater than or equal to lower bound; lower bound: {}, upper bound: {}",
                    describe(low),
                    describe(high)
                )));
            }
            Ok(())
        }
        SortKeyCondition::Eq(value)
        | SortKeyCondition::Lt(value)
        | SortKeyCondition::Le(value)
        | SortKeyCondition::Gt(value)
        | SortKeyCondition::Ge(value) => check_type(value, key_type),
    }
}

fn check_type(value: &AttributeValue, key_type: KeyType) -> Result<()> {
    match (value, key_type) {
        (AttributeValue::S(_), KeyType::S)
        | (AttributeValue::N(_), KeyType::N)
        | (AttributeValue::B(_), KeyType::B) => Ok(()),
        _ => Err(Error::validation(
            "One or more parameter values were invalid: Condition parameter type does not match \
             schema type",
        )),
    }
}

/// A key value as DynamoDB prints it in messages, e.g. `AttributeValue: {S:b}`. Binary is
/// shown as hex, since the message is for a human.
fn describe(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) => format!("AttributeValue: {{S:{s}}}"),
        AttributeValue::N(n) => format!("AttributeValue: {{N:{n}}}"),
        AttributeValue::B(bytes) => {
            let mut hex = String::with_capacity(bytes.len() * 2);
            for byte in bytes {
                let _ = write!(hex, "{byte:02x}");
            }
            format!("AttributeValue: {{B:0x{hex}}}")
        }
        other => format!("AttributeValue: {{{}}}", other.type_name()),
    }
}

fn not_supported() -> Error {
    Error::validation("Query key condition not supported")
}

fn one_per_key() -> Error {
    Error::validation("KeyConditionExpressions must only contain one condition per key")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::model::{KeyAttribute, Number};

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_string())
    }

    fn n(text: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(text).unwrap())
    }

    fn b(bytes: &[u8]) -> AttributeValue {
        AttributeValue::B(bytes.to_vec())
    }

    fn schema(sort: Option<KeyType>) -> KeySchema {
        KeySchema {
            partition: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            sort: sort.map(|key_type| KeyAttribute {
                name: "sk".into(),
                key_type,
            }),
        }
    }

    fn parse(text: &str, sort: Option<KeyType>) -> Result<KeyCondition> {
        let names = BTreeMap::from([("#pk".to_string(), "pk".to_string())]);
        let values = BTreeMap::from(
            [
                (":p", s("p")),
                (":s", s("s")),
                (":n1", n("1")),
                (":n2", n("2")),
                (":b", b(&[1])),
                (":bool", AttributeValue::Bool(true)),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        let mut ctx = ExpressionContext::new(Some(&names), Some(&values))?;
        parse_key_condition(text, &mut ctx, &schema(sort))
    }

    #[test]
    fn valid_key_conditions() {
        let key = |sort| KeyCondition {
            partition: s("p"),
            sort,
        };
        let n_sk = Some(KeyType::N);
        let cases = vec![
            ("pk = :p", None, key(None)),
            ("pk = :p", n_sk, key(None)),
            (":p = #pk", n_sk, key(None)),
            (
                "pk = :p AND sk = :n1",
                n_sk,
                key(Some(SortKeyCondition::Eq(n("1")))),
            ),
            (
                "sk < :n1 AND pk = :p",
                n_sk,
                key(Some(SortKeyCondition::Lt(n("1")))),
            ),
            (
                "pk = :p and sk <= :n1",
                n_sk,
                key(Some(SortKeyCondition::Le(n("1")))),
            ),
            (
                "pk = :p AND sk > :n1",
                n_sk,
                key(Some(SortKeyCondition::Gt(n("1")))),
            ),
            (
                "pk = :p AND sk >= :n1",
                n_sk,
                key(Some(SortKeyCondition::Ge(n("1")))),
            ),
            // The value may come first; the operator is mirrored.
            (
                ":n1 < sk AND pk = :p",
                n_sk,
                key(Some(SortKeyCondition::Gt(n("1")))),
            ),
            (
                ":n1 >= sk AND pk = :p",
                n_sk,
                key(Some(SortKeyCondition::Le(n("1")))),
            ),
            (
                "(pk = :p) AND (sk BETWEEN :n1 AND :n2)",
                n_sk,
                key(Some(SortKeyCondition::Between(n("1"), n("2")))),
            ),
            (
                "pk = :p and sk between :n1 and :n1",
                n_sk,
                key(Some(SortKeyCondition::Between(n("1"), n("1")))),
            ),
            (
                "pk = :p AND begins_with(sk, :s)",
                Some(KeyType::S),
                key(Some(SortKeyCondition::BeginsWith(s("s")))),
            ),
            (
                "begins_with(sk, :b) AND #pk = :p",
                Some(KeyType::B),
                key(Some(SortKeyCondition::BeginsWith(b(&[1])))),
            ),
        ];
        for (text, sort, expected) in cases {
            assert_eq!(parse(text, sort), Ok(expected), "{text}");
        }
    }

    #[test]
    fn invalid_key_conditions() {
        let missed = "Query condition missed key schema element: pk";
        let unsupported = "Query key condition not supported";
        let one_per_key = "KeyConditionExpressions must only contain one condition per key";
        let mismatch = "One or more parameter values were invalid: Condition parameter type does \
                        not match schema type";
        let invalid_op =
            |op: &str| format!("Invalid operator used in KeyConditionExpression: {op}");
        let begins_with = |t: &str| {
            format!(
                "Invalid KeyConditionExpression: Incorrect operand type for operator or \
                 function; operator or function: begins_with, operand type: {t}"
            )
        };
        let n_sk = Some(KeyType::N);
        let s_sk = Some(KeyType::S);
        let cases: Vec<(&str, Option<KeyType>, String)> = vec![
            ("sk = :n1", n_sk, missed.into()),
            ("attr = :s", n_sk, missed.into()),
            ("sk = :n1 AND attr = :s", n_sk, missed.into()),
            ("pk = :p AND attr = :s", n_sk, unsupported.into()),
            // A sort key condition on a table without a sort key.
            ("pk = :p AND sk = :n1", None, unsupported.into()),
            ("pk = :p OR sk = :n1", n_sk, invalid_op("OR")),
            ("NOT pk = :p", n_sk, invalid_op("NOT")),
            ("pk = :p AND NOT sk = :n1", n_sk, invalid_op("NOT")),
            ("pk IN (:p)", n_sk, invalid_op("IN")),
            ("pk <> :p", n_sk, invalid_op("<>")),
            (
                "pk = :p AND attribute_exists(sk)",
                n_sk,
                invalid_op("attribute_exists"),
            ),
            (
                "pk = :p AND attribute_not_exists(sk)",
                n_sk,
                invalid_op("attribute_not_exists"),
            ),
            (
                "pk = :p AND contains(sk, :n1)",
                n_sk,
                invalid_op("contains"),
            ),
            ("pk = :p AND size(sk) > :n1", n_sk, invalid_op("size")),
            (
                "pk = :p AND sk BETWEEN size(sk) AND :n1",
                n_sk,
                invalid_op("size"),
            ),
            (
                "pk = :p AND sk = :n1 AND sk = :n2",
                n_sk,
                one_per_key.into(),
            ),
            (
                "pk = :p AND sk > :n1 AND attr = :n2",
                n_sk,
                one_per_key.into(),
            ),
            ("pk = :p AND pk = :p", n_sk, one_per_key.into()),
            ("sk > :n1 AND sk < :n2", n_sk, one_per_key.into()),
            ("pk < :p", n_sk, unsupported.into()),
            ("pk BETWEEN :p AND :p", n_sk, unsupported.into()),
            ("begins_with(pk, :p)", n_sk, unsupported.into()),
            ("pk.x = :p", n_sk, unsupported.into()),
            ("pk[0] = :p", n_sk, unsupported.into()),
            ("pk = #pk", n_sk, unsupported.into()),
            (":p = :p", n_sk, unsupported.into()),
            (
                "pk = :p AND sk BETWEEN sk AND :n2",
                n_sk,
                unsupported.into(),
            ),
            ("pk = :p AND begins_with(sk, sk)", s_sk, unsupported.into()),
            ("pk = :n1", n_sk, mismatch.into()),
            ("pk = :p AND sk = :s", n_sk, mismatch.into()),
            ("pk = :p AND sk BETWEEN :n1 AND :s", n_sk, mismatch.into()),
            ("pk = :p AND sk > :b", s_sk, mismatch.into()),
            ("pk = :p AND begins_with(sk, :b)", s_sk, mismatch.into()),
            ("pk = :p AND begins_with(sk, :n1)", n_sk, begins_with("N")),
            ("pk = :p AND begins_with(sk, :s)", n_sk, begins_with("N")),
            (
                "pk = :p AND begins_with(sk, :bool)",
                s_sk,
                begins_with("BOOL"),
            ),
            (
                "pk = :p AND sk BETWEEN :n2 AND :n1",
                n_sk,
                "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to \
                 be greater than or equal to lower bound; lower bound: AttributeValue: {N:2}, \
                 upper bound: AttributeValue: {N:1}"
                    .into(),
            ),
            (
                "pk = ",
                n_sk,
                r#"Invalid KeyConditionExpression: Syntax error; token: <EOF>, near: "=""#.into(),
            ),
            (
                "pk = :nope",
                n_sk,
                "Invalid KeyConditionExpression: An expression attribute value used in \
                 expression is not defined; attribute value: :nope"
                    .into(),
            ),
        ];
        for (text, sort, message) in cases {
            assert_eq!(parse(text, sort), Err(Error::Validation(message)), "{text}");
        }
    }

    #[test]
    fn between_bounds_are_described() {
        let cases = [
            (s("b"), s("a"), "{S:b}", "{S:a}"),
            (b(&[2, 255]), b(&[1]), "{B:0x02ff}", "{B:0x01}"),
        ];
        for (low, high, low_text, high_text) in cases {
            let error = check_sort_condition(
                &SortKeyCondition::Between(low.clone(), high),
                match low {
                    AttributeValue::S(_) => KeyType::S,
                    _ => KeyType::B,
                },
            )
            .unwrap_err();
            let message = error.to_string();
            assert!(
                message.ends_with(&format!(
                    "lower bound: AttributeValue: {low_text}, upper bound: AttributeValue: \
                     {high_text}"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn sort_key_matching() {
        use SortKeyCondition as C;
        let cases = vec![
            // Numbers compare numerically, not as text.
            (C::Lt(n("10")), n("2"), true),
            (C::Gt(n("2")), n("10"), true),
            (C::Eq(n("2")), n("2"), true),
            (C::Eq(n("2")), n("3"), false),
            (C::Le(n("2")), n("2"), true),
            (C::Le(n("2")), n("3"), false),
            (C::Ge(n("2")), n("2"), true),
            (C::Ge(n("2")), n("1"), false),
            (C::Lt(n("-1")), n("-2.5"), true),
            (C::Between(n("1"), n("10")), n("1"), true),
            (C::Between(n("1"), n("10")), n("2"), true),
            (C::Between(n("1"), n("10")), n("10"), true),
            (C::Between(n("1"), n("10")), n("11"), false),
            (C::Between(n("1"), n("10")), n("0"), false),
            // Strings compare by UTF-8 bytes: "z" (0x7a) < "é" (0xc3 0xa9).
            (C::Lt(s("é")), s("z"), true),
            (C::Gt(s("z")), s("é"), true),
            (C::Lt(s("b")), s("a"), true),
            (C::Lt(s("a")), s("ab"), false),
            (C::Gt(s("a")), s("ab"), true),
            (C::Between(s("a"), s("c")), s("b"), true),
            (C::Between(s("a"), s("c")), s("cc"), false),
            // Binary compares by unsigned bytes.
            (C::Gt(b(&[0x7f])), b(&[0x80]), true),
            (C::Lt(b(&[0x01])), b(&[0x00, 0xff]), true),
            (C::Eq(b(&[1, 2])), b(&[1, 2]), true),
            (C::BeginsWith(s("ab")), s("abc"), true),
            (C::BeginsWith(s("ab")), s("ab"), true),
            (C::BeginsWith(s("ab")), s("b"), false),
            (C::BeginsWith(s("é")), s("éa"), true),
            (C::BeginsWith(b(&[1])), b(&[1, 2]), true),
            (C::BeginsWith(b(&[2])), b(&[1, 2]), false),
            // Values of another type never match.
            (C::Eq(s("2")), n("2"), false),
            (C::Lt(s("z")), b(b"a"), false),
            (C::Ge(n("1")), s("2"), false),
            (C::Between(n("1"), n("3")), s("2"), false),
            (C::BeginsWith(s("a")), b(b"a"), false),
            (C::BeginsWith(n("1")), n("12"), false),
        ];
        for (condition, value, expected) in cases {
            assert_eq!(
                condition.matches(&value),
                expected,
                "{condition:?} {value:?}"
            );
        }
    }

    const FRAGMENTS: &[&str] = &[
        "pk",
        "sk",
        "#pk",
        ":p",
        ":n1",
        ":n2",
        ":s",
        ":b",
        ":bool",
        "attr",
        "(",
        ")",
        "=",
        "<",
        "<=",
        ">",
        ">=",
        "<>",
        " AND ",
        " OR ",
        " NOT ",
        " BETWEEN ",
        " IN ",
        "begins_with",
        "size",
        "contains",
        ",",
        ".",
        "[0]",
        " ",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn key_conditions_never_panic(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24)) {
            for sort in [None, Some(KeyType::S), Some(KeyType::N), Some(KeyType::B)] {
                let _ = parse(&parts.concat(), sort);
            }
        }
    }
}
