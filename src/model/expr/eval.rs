//! Evaluating a [`Condition`] against an item: `ConditionExpression` at apply time (on the
//! state at that log index, so every replica reaches the same answer) and `FilterExpression`
//! on read results.
//!
//! DynamoDB's rules, which make evaluation total (it never fails, only answers false):
//! - a path that leads nowhere (a missing attribute, a map key absent, a list index past the
//!   end, a step into a value that is not a map or list) has no value;
//! - a comparison with a missing operand is false, except `<>`, which is true;
//! - `=` and `<>` compare any two values (deeply: sets as sets, maps by key, numbers
//!   numerically); `<`, `<=`, `>`, `>=` and `BETWEEN` order only strings (by UTF-8 bytes),
//!   numbers and binaries of the same type, and are false for anything else;
//! - `size` is defined for strings (UTF-16 code units, as DynamoDB counts them), binaries,
//!   sets, lists and maps; of anything else it has no value.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::ast::{Comparator, Condition, Function, Operand, Path, PathElement};
use super::key_condition::compare_values;
use crate::model::{AttributeValue, Item, Number};

/// The value at `path` in `item`, if there is one.
pub fn resolve<'a>(item: &'a Item, path: &Path) -> Option<&'a AttributeValue> {
    let mut elements = path.elements.iter();
    let mut value = match elements.next()? {
        PathElement::Attribute(name) => item.get(name)?,
        PathElement::Index(_) => return None,
    };
    for element in elements {
        value = match (element, value) {
            (PathElement::Attribute(name), AttributeValue::M(map)) => map.get(name)?,
            (PathElement::Index(i), AttributeValue::L(list)) => list.get(*i as usize)?,
            _ => return None,
        };
    }
    Some(value)
}

/// The parts of `item` that `paths` lead to, nested as in the item: `a.b` gives
/// `{a: {b: …}}`, and list elements keep their order but close up (`l[3]` alone gives `l` with
/// one element), as DynamoDB projects. Paths that lead nowhere contribute nothing.
pub fn project<'p>(item: &Item, paths: impl IntoIterator<Item = &'p Path>) -> Item {
    /// What has been picked so far under one value.
    enum Picked {
        Whole(AttributeValue),
        Map(std::collections::BTreeMap<String, Picked>),
        List(std::collections::BTreeMap<u32, Picked>),
    }
    fn pick(into: &mut Picked, value: &AttributeValue, rest: &[PathElement]) {
        let Some((step, rest)) = rest.split_first() else {
            *into = Picked::Whole(value.clone());
            return;
        };
        match (step, value) {
            (PathElement::Attribute(name), AttributeValue::M(map)) => {
                if let Some(next) = map.get(name) {
                    if !matches!(into, Picked::Map(_)) {
                        *into = Picked::Map(Default::default());
                    }
                    if let Picked::Map(m) = into {
                        let slot = m
                            .entry(name.clone())
                            .or_insert_with(|| Picked::Map(Default::default()));
                        pick(slot, next, rest);
                    }
                }
            }
            (PathElement::Index(i), AttributeValue::L(list)) => {
                if let Some(next) = list.get(*i as usize) {
                    if !matches!(into, Picked::List(_)) {
                        *into = Picked::List(Default::default());
                    }
                    if let Picked::List(l) = into {
                        let slot = l
                            .entry(*i)
                            .or_insert_with(|| Picked::Map(Default::default()));
                        pick(slot, next, rest);
                    }
                }
            }
            _ => {}
        }
    }
    fn build(picked: Picked) -> AttributeValue {
        match picked {
            Picked::Whole(v) => v,
            Picked::Map(m) => {
                AttributeValue::M(m.into_iter().map(|(k, p)| (k, build(p))).collect())
            }
            Picked::List(l) => AttributeValue::L(l.into_values().map(build).collect()),
        }
    }
    let mut top: std::collections::BTreeMap<String, Picked> = Default::default();
    for path in paths {
        // Only paths that lead somewhere leave a trace (no empty maps on the way).
        if resolve(item, path).is_none() {
            continue;
        }
        let Some((PathElement::Attribute(name), rest)) = path.elements.split_first() else {
            continue;
        };
        if let Some(value) = item.get(name) {
            let slot = top
                .entry(name.clone())
                .or_insert_with(|| Picked::Map(Default::default()));
            pick(slot, value, rest);
        }
    }
    top.into_iter().map(|(k, p)| (k, build(p))).collect()
}

/// Whether `item` satisfies `condition`. An absent item is an empty one.
pub fn evaluate(condition: &Condition, item: &Item) -> bool {
    match condition {
        Condition::Compare { op, left, right } => {
            match (operand(left, item), operand(right, item)) {
                (Some(a), Some(b)) => compare(*op, &a, &b),
                _ => *op == Comparator::Ne,
            }
        }
        Condition::Between {
            operand: x,
            low,
            high,
        } => match (operand(x, item), operand(low, item), operand(high, item)) {
            (Some(v), Some(lo), Some(hi)) => {
                compare(Comparator::Ge, &v, &lo) && compare(Comparator::Le, &v, &hi)
            }
            _ => false,
        },
        Condition::In { operand: x, list } => operand(x, item).is_some_and(|v| {
            list.iter()
                .any(|c| operand(c, item).is_some_and(|c| *c == *v))
        }),
        Condition::Function(f) => function(f, item),
        Condition::And(a, b) => evaluate(a, item) && evaluate(b, item),
        Condition::Or(a, b) => evaluate(a, item) || evaluate(b, item),
        Condition::Not(a) => !evaluate(a, item),
    }
}

/// The value of an operand, borrowed from the item or the expression where it can be.
fn operand<'a>(op: &'a Operand, item: &'a Item) -> Option<Cow<'a, AttributeValue>> {
    match op {
        Operand::Path(path) => resolve(item, path).map(Cow::Borrowed),
        Operand::Value(v) => Some(Cow::Borrowed(v)),
        Operand::Size(path) => size(resolve(item, path)?).map(Cow::Owned),
    }
}

/// `size(v)`, as a number value.
fn size(v: &AttributeValue) -> Option<AttributeValue> {
    let n = match v {
        AttributeValue::S(s) => s.encode_utf16().count(),
        AttributeValue::B(b) => b.len(),
        AttributeValue::Ss(s) => s.len(),
        AttributeValue::Ns(s) => s.len(),
        AttributeValue::Bs(s) => s.len(),
        AttributeValue::L(l) => l.len(),
        AttributeValue::M(m) => m.len(),
        AttributeValue::N(_) | AttributeValue::Bool(_) | AttributeValue::Null => return None,
    };
    Some(AttributeValue::N(Number::from_i64(
        i64::try_from(n).unwrap_or(i64::MAX),
    )))
}

fn compare(op: Comparator, a: &AttributeValue, b: &AttributeValue) -> bool {
    use Ordering::{Equal, Greater, Less};
    match op {
        // Canonical numbers and sorted sets make structural equality DynamoDB's equality.
        Comparator::Eq => a == b,
        Comparator::Ne => a != b,
        Comparator::Lt => compare_values(a, b) == Some(Less),
        Comparator::Le => matches!(compare_values(a, b), Some(Less | Equal)),
        Comparator::Gt => compare_values(a, b) == Some(Greater),
        Comparator::Ge => matches!(compare_values(a, b), Some(Greater | Equal)),
    }
}

fn function(f: &Function, item: &Item) -> bool {
    match f {
        Function::AttributeExists(path) => resolve(item, path).is_some(),
        Function::AttributeNotExists(path) => resolve(item, path).is_none(),
        Function::AttributeType(path, type_name) => {
            resolve(item, path).is_some_and(|v| v.type_name() == type_name)
        }
        Function::BeginsWith(path, prefix) => {
            match (resolve(item, path), operand(prefix, item).as_deref()) {
                (Some(AttributeValue::S(s)), Some(AttributeValue::S(p))) => {
                    s.starts_with(p.as_str())
                }
                (Some(AttributeValue::B(b)), Some(AttributeValue::B(p))) => b.starts_with(p),
                _ => false,
            }
        }
        Function::Contains(path, needle) => {
            match (resolve(item, path), operand(needle, item).as_deref()) {
                (Some(AttributeValue::S(s)), Some(AttributeValue::S(n))) => s.contains(n.as_str()),
                (Some(AttributeValue::B(b)), Some(AttributeValue::B(n))) => {
                    n.is_empty() || b.windows(n.len()).any(|w| w == n.as_slice())
                }
                (Some(AttributeValue::Ss(set)), Some(AttributeValue::S(n))) => set.contains(n),
                (Some(AttributeValue::Ns(set)), Some(AttributeValue::N(n))) => set.contains(n),
                (Some(AttributeValue::Bs(set)), Some(AttributeValue::B(n))) => set.contains(n),
                (Some(AttributeValue::L(list)), Some(n)) => list.contains(n),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::expr::{ExpressionContext, parse_condition};

    fn n(s: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(s).expect("number"))
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn item() -> Item {
        BTreeMap::from([
            ("nm".to_string(), s("Ada")),
            ("ag".to_string(), n("36")),
            (
                "tg".to_string(),
                AttributeValue::string_set(vec!["x".into(), "y".into()]).expect("set"),
            ),
            (
                "dc".to_string(),
                AttributeValue::M(BTreeMap::from([(
                    "ls".to_string(),
                    AttributeValue::L(vec![n("1"), s("two"), AttributeValue::Null]),
                )])),
            ),
            ("emoji".to_string(), s("😀a")),
        ])
    }

    fn check(text: &str) -> bool {
        let values = BTreeMap::from([
            (":ada".to_string(), s("Ada")),
            (":a".to_string(), s("A")),
            (":n30".to_string(), n("30")),
            (":n36".to_string(), n("36.0")),
            (":n40".to_string(), n("40")),
            (":two".to_string(), s("two")),
            (":x".to_string(), s("x")),
            (":three".to_string(), n("3")),
            (":S".to_string(), s("S")),
            (":SS".to_string(), s("SS")),
        ]);
        let mut ctx = ExpressionContext::new(None, Some(&values)).expect("context");
        let condition = parse_condition("ConditionExpression", text, &mut ctx).expect("parses");
        evaluate(&condition, &item())
    }

    #[test]
    fn projection_keeps_nesting_and_closes_up_lists() {
        let path = |names: &[&str], index: Option<u32>| Path {
            elements: names
                .iter()
                .map(|n| PathElement::Attribute((*n).to_string()))
                .chain(index.map(PathElement::Index))
                .collect(),
        };
        let it = item();
        let got = project(
            &it,
            [
                &path(&["nm"], None),
                &path(&["dc", "ls"], Some(2)),
                &path(&["dc", "ls"], Some(0)),
                &path(&["nothing"], None),
                &path(&["dc", "absent"], None),
            ],
        );
        assert_eq!(
            got,
            BTreeMap::from([
                ("nm".to_string(), s("Ada")),
                (
                    "dc".to_string(),
                    AttributeValue::M(BTreeMap::from([(
                        "ls".to_string(),
                        AttributeValue::L(vec![n("1"), AttributeValue::Null]),
                    )])),
                ),
            ])
        );
    }

    #[test]
    fn dynamodb_semantics() {
        for (text, want) in [
            ("nm = :ada", true),
            ("ag = :n36", true),
            ("ag < :n40 AND ag > :n30", true),
            ("ag BETWEEN :n30 AND :n40", true),
            ("nm IN (:a, :ada)", true),
            ("ms = :ada", false),
            ("ms <> :ada", true),
            ("ms < :n40", false),
            ("nm < :n40", false),
            ("nm <> :n36", true),
            ("nm > :a", true),
            ("attribute_exists(dc.ls[2])", true),
            ("attribute_exists(dc.ls[3])", false),
            ("attribute_not_exists(nm.fst)", true),
            ("attribute_type(tg, :SS)", true),
            ("attribute_type(nm, :SS)", false),
            ("begins_with(nm, :a)", true),
            ("contains(tg, :x)", true),
            ("contains(dc.ls, :two)", true),
            ("contains(nm, :x)", false),
            ("size(dc.ls) = :three", true),
            ("size(emoji) = :three", true),
            ("size(ag) = :three", false),
            ("size(ag) <> :three", true),
            ("NOT (nm = :ada) OR ag = :n36", true),
            ("nm = :ada AND NOT ag = :n36", false),
            ("dc.ls[1] = :two", true),
            ("dc.ls[1].x = :two", false),
        ] {
            assert_eq!(check(text), want, "{text}");
        }
    }
}
