//! Statements back to PartiQL text: names double-quoted, values as literals (binary values,
//! which have no literal, as `?` parameters returned beside the text), every operator
//! parenthesised. The parser's inverse: the property tests print arbitrary statements and parse
//! them back to the same tree.

use super::ast::{Returning, Statement};
use crate::model::AttributeValue;
use crate::model::expr::{Condition, Function, Operand, Path, PathElement, SetOperand, SetValue};

/// A statement as text, with the parameters its `?`s stand for, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Printed {
    /// The statement.
    pub text: String,
    /// Its parameters.
    pub params: Vec<AttributeValue>,
}

/// Prints `statement`.
pub fn statement(statement: &Statement) -> Printed {
    let mut p = Printed::default();
    let text = match statement {
        Statement::Exists(s) => {
            let select = p.select(s);
            format!("EXISTS({select})")
        }
        Statement::Select(s) => p.select(s),
        Statement::Insert(i) => {
            let item = AttributeValue::M(i.item.clone().into_iter().collect());
            format!("INSERT INTO {} VALUE {}", name(&i.table), p.value(&item))
        }
        Statement::Update(u) => {
            let mut text = format!("UPDATE {}", name(&u.table));
            for (target, value) in &u.update.set {
                let value = p.set_value(value);
                text.push_str(&format!(" SET {} = {value}", path(target)));
            }
            for (function, actions) in
                [("set_add", &u.update.add), ("set_delete", &u.update.delete)]
            {
                for (target, value) in actions {
                    let target = path(target);
                    let value = p.value(value);
                    text.push_str(&format!(" SET {target} = {function}({target}, {value})"));
                }
            }
            if !u.update.remove.is_empty() {
                text.push_str(&format!(
                    " REMOVE {}",
                    join(u.update.remove.iter().map(path))
                ));
            }
            text.push_str(&format!(" WHERE {}", p.condition(&u.condition)));
            text.push_str(&returning(u.returning));
            text
        }
        Statement::Delete(d) => {
            let condition = p.condition(&d.condition);
            format!(
                "DELETE FROM {} WHERE {condition}{}",
                name(&d.table),
                returning(d.returning)
            )
        }
    };
    p.text = text;
    p
}

fn returning(r: Option<Returning>) -> String {
    r.map(|r| format!(" RETURNING {} *", r.words()))
        .unwrap_or_default()
}

fn join(parts: impl Iterator<Item = String>) -> String {
    parts.collect::<Vec<_>>().join(", ")
}

/// A name, double-quoted.
fn name(n: &str) -> String {
    format!("\"{}\"", n.replace('"', "\"\""))
}

/// A string literal.
fn string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn path(p: &Path) -> String {
    let mut out = String::new();
    for (i, element) in p.elements.iter().enumerate() {
        match element {
            PathElement::Attribute(a) if i == 0 => out.push_str(&name(a)),
            PathElement::Attribute(a) => {
                out.push('.');
                out.push_str(&name(a));
            }
            PathElement::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

impl Printed {
    fn select(&mut self, s: &super::ast::Select) -> String {
        let p = self;
        let projection = if s.projection.is_empty() {
            "*".to_string()
        } else {
            join(s.projection.iter().map(path))
        };
        let mut text = format!("SELECT {projection} FROM {}", name(&s.table));
        if let Some(index) = &s.index {
            text.push_str(&format!(".{}", name(index)));
        }
        if let Some(c) = &s.condition {
            text.push_str(&format!(" WHERE {}", p.condition(c)));
        }
        if !s.order_by.is_empty() {
            let keys = s
                .order_by
                .iter()
                .map(|(key, desc)| format!("{} {}", path(key), if *desc { "DESC" } else { "ASC" }));
            text.push_str(&format!(" ORDER BY {}", join(keys)));
        }
        text
    }

    fn value(&mut self, v: &AttributeValue) -> String {
        match v {
            AttributeValue::S(s) => string(s),
            AttributeValue::N(n) => n.to_string(),
            AttributeValue::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            AttributeValue::Null => "NULL".to_string(),
            AttributeValue::B(_) => {
                self.params.push(v.clone());
                "?".to_string()
            }
            AttributeValue::L(items) => {
                let items: Vec<String> = items.iter().map(|i| self.value(i)).collect();
                format!("[{}]", items.join(", "))
            }
            AttributeValue::M(map) => {
                let entries: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{}: {}", string(k), self.value(v)))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
            AttributeValue::Ss(set) => format!("<<{}>>", join(set.iter().map(|s| string(s)))),
            AttributeValue::Ns(set) => format!("<<{}>>", join(set.iter().map(ToString::to_string))),
            AttributeValue::Bs(set) => {
                let members: Vec<String> = set
                    .iter()
                    .map(|b| {
                        self.params.push(AttributeValue::B(b.clone()));
                        "?".to_string()
                    })
                    .collect();
                format!("<<{}>>", members.join(", "))
            }
        }
    }

    fn operand(&mut self, o: &Operand) -> String {
        match o {
            Operand::Path(p) => path(p),
            Operand::Value(v) => self.value(v),
            Operand::Size(p) => format!("size({})", path(p)),
        }
    }

    fn set_operand(&mut self, o: &SetOperand) -> String {
        match o {
            SetOperand::Path(p) => path(p),
            SetOperand::Value(v) => self.value(v),
            SetOperand::IfNotExists(p, fallback) => {
                let fallback = self.set_operand(fallback);
                format!("if_not_exists({}, {fallback})", path(p))
            }
            SetOperand::ListAppend(a, b) => {
                let a = self.set_operand(a);
                let b = self.set_operand(b);
                format!("list_append({a}, {b})")
            }
        }
    }

    fn set_value(&mut self, v: &SetValue) -> String {
        match v {
            SetValue::Operand(o) => self.set_operand(o),
            SetValue::Plus(a, b) => {
                let a = self.set_operand(a);
                format!("{a} + {}", self.set_operand(b))
            }
            SetValue::Minus(a, b) => {
                let a = self.set_operand(a);
                format!("{a} - {}", self.set_operand(b))
            }
        }
    }

    fn condition(&mut self, c: &Condition) -> String {
        match c {
            Condition::Compare { op, left, right } => {
                let left = self.operand(left);
                format!("({left} {} {})", op.symbol(), self.operand(right))
            }
            Condition::Between { operand, low, high } => {
                let operand = self.operand(operand);
                let low = self.operand(low);
                format!("({operand} BETWEEN {low} AND {})", self.operand(high))
            }
            Condition::In { operand, list } => {
                let operand = self.operand(operand);
                let list: Vec<String> = list.iter().map(|o| self.operand(o)).collect();
                format!("({operand} IN [{}])", list.join(", "))
            }
            Condition::Function(f) => match f {
                Function::AttributeExists(p) => format!("({} IS NOT MISSING)", path(p)),
                Function::AttributeNotExists(p) => format!("({} IS MISSING)", path(p)),
                Function::AttributeType(p, t) => {
                    format!("attribute_type({}, {})", path(p), string(t))
                }
                Function::BeginsWith(p, o) => {
                    format!("begins_with({}, {})", path(p), self.operand(o))
                }
                Function::Contains(p, o) => format!("contains({}, {})", path(p), self.operand(o)),
            },
            Condition::And(a, b) => {
                let a = self.condition(a);
                format!("({a} AND {})", self.condition(b))
            }
            Condition::Or(a, b) => {
                let a = self.condition(a);
                format!("({a} OR {})", self.condition(b))
            }
            Condition::Not(a) => format!("(NOT {})", self.condition(a)),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::ast::{Delete, Insert, Select, UpdateStatement};
    use super::super::parse;
    use super::*;
    use crate::model::Number;
    use crate::model::expr::{Comparator, Update};

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,6}",
            Just("SELECT".to_string()),
            Just("a.b".to_string()),
            Just("say \"hi\"".to_string()),
            Just("it's".to_string()),
            Just("é".to_string()),
        ]
    }

    fn path() -> impl Strategy<Value = Path> {
        (
            name(),
            prop::collection::vec(
                prop_oneof![
                    name().prop_map(PathElement::Attribute),
                    (0u32..20).prop_map(PathElement::Index)
                ],
                0..3,
            ),
        )
            .prop_map(|(first, rest)| {
                let mut elements = vec![PathElement::Attribute(first)];
                elements.extend(rest);
                Path { elements }
            })
    }

    fn value() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            ".{0,6}".prop_map(AttributeValue::S),
            any::<i64>().prop_map(|n| AttributeValue::N(Number::from_i64(n))),
            prop::collection::vec(any::<u8>(), 0..4).prop_map(AttributeValue::B),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null),
            prop::collection::btree_set("[a-z']{0,4}", 1..4).prop_map(AttributeValue::Ss),
            prop::collection::btree_set(any::<i32>(), 1..4).prop_map(|s| AttributeValue::Ns(
                s.into_iter().map(|n| Number::from_i64(n.into())).collect()
            )),
            prop::collection::btree_set(prop::collection::vec(any::<u8>(), 0..3), 1..3)
                .prop_map(AttributeValue::Bs),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(AttributeValue::L),
                prop::collection::btree_map(".{0,3}", inner, 0..3).prop_map(AttributeValue::M),
            ]
        })
    }

    fn operand() -> impl Strategy<Value = Operand> {
        prop_oneof![
            path().prop_map(Operand::Path),
            value().prop_map(Operand::Value),
            path().prop_map(Operand::Size),
        ]
    }

    fn condition() -> impl Strategy<Value = Condition> {
        let comparator = prop::sample::select(vec![
            Comparator::Eq,
            Comparator::Ne,
            Comparator::Lt,
            Comparator::Le,
            Comparator::Gt,
            Comparator::Ge,
        ]);
        let leaf =
            prop_oneof![
                (comparator, operand(), operand())
                    .prop_map(|(op, left, right)| Condition::Compare { op, left, right }),
                (operand(), operand(), operand())
                    .prop_map(|(operand, low, high)| Condition::Between { operand, low, high }),
                (operand(), prop::collection::vec(operand(), 1..4))
                    .prop_map(|(operand, list)| Condition::In { operand, list }),
                path().prop_map(|p| Condition::Function(Function::AttributeExists(p))),
                path().prop_map(|p| Condition::Function(Function::AttributeNotExists(p))),
                (path(), prop::sample::select(vec!["S", "N", "M", "NULL"]))
                    .prop_map(|(p, t)| Condition::Function(Function::AttributeType(p, t.into()))),
                (path(), operand())
                    .prop_map(|(p, o)| Condition::Function(Function::BeginsWith(p, o))),
                (path(), operand())
                    .prop_map(|(p, o)| Condition::Function(Function::Contains(p, o))),
            ];
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Condition::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Condition::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| Condition::Not(Box::new(a))),
            ]
        })
    }

    fn set_operand() -> impl Strategy<Value = SetOperand> {
        let leaf = prop_oneof![
            path().prop_map(SetOperand::Path),
            value().prop_map(SetOperand::Value),
        ];
        leaf.prop_recursive(2, 4, 2, |inner| {
            prop_oneof![
                (path(), inner.clone()).prop_map(|(p, o)| SetOperand::IfNotExists(p, Box::new(o))),
                (inner.clone(), inner)
                    .prop_map(|(a, b)| SetOperand::ListAppend(Box::new(a), Box::new(b))),
            ]
        })
    }

    fn set_value() -> impl Strategy<Value = SetValue> {
        prop_oneof![
            set_operand().prop_map(SetValue::Operand),
            (set_operand(), set_operand()).prop_map(|(a, b)| SetValue::Plus(a, b)),
            (set_operand(), set_operand()).prop_map(|(a, b)| SetValue::Minus(a, b)),
        ]
    }

    fn a_set() -> impl Strategy<Value = AttributeValue> {
        prop::collection::btree_set("[a-z]{0,3}", 1..3).prop_map(AttributeValue::Ss)
    }

    fn returning() -> impl Strategy<Value = Option<Returning>> {
        prop::option::of(prop::sample::select(vec![
            Returning::AllOld,
            Returning::ModifiedOld,
            Returning::AllNew,
            Returning::ModifiedNew,
        ]))
    }

    fn select() -> impl Strategy<Value = Select> {
        (
            prop::collection::vec(path(), 0..3),
            name(),
            prop::option::of(name()),
            prop::option::of(condition()),
            prop::collection::vec((path(), any::<bool>()), 0..2),
        )
            .prop_map(|(projection, table, index, condition, order_by)| Select {
                projection,
                table,
                index,
                condition,
                order_by,
            })
    }

    fn statement() -> impl Strategy<Value = Statement> {
        prop_oneof![
            select().prop_map(Statement::Select),
            select().prop_map(Statement::Exists),
            (name(), prop::collection::btree_map(".{0,4}", value(), 0..4))
                .prop_map(|(table, item)| Statement::Insert(Insert { table, item })),
            (
                name(),
                prop::collection::vec((path(), set_value()), 0..3),
                prop::collection::vec(path(), 0..2),
                prop::collection::vec((path(), a_set()), 0..2),
                prop::collection::vec((path(), a_set()), 0..2),
                condition(),
                returning(),
            )
                .prop_filter(
                    "an UPDATE changes something",
                    |(_, set, remove, add, delete, _, _)| {
                        !(set.is_empty()
                            && remove.is_empty()
                            && add.is_empty()
                            && delete.is_empty())
                    }
                )
                .prop_map(|(table, set, remove, add, delete, condition, returning)| {
                    Statement::Update(UpdateStatement {
                        table,
                        update: Update {
                            set,
                            remove,
                            add,
                            delete,
                        },
                        condition,
                        returning,
                    })
                }),
            (name(), condition(), returning()).prop_map(|(table, condition, returning)| {
                Statement::Delete(Delete {
                    table,
                    condition,
                    returning,
                })
            }),
        ]
    }

    proptest! {
        #[test]
        fn printed_statements_parse_back_to_the_same_tree(s in statement()) {
            let printed = super::statement(&s);
            let parsed = parse(&printed.text, &printed.params);
            prop_assert_eq!(parsed.as_ref().ok(), Some(&s), "{}: {:?}", printed.text, parsed);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = parse(&text, &[]);
        }

        #[test]
        fn statement_like_text_never_panics(
            words in prop::collection::vec(prop::sample::select(vec![
                "SELECT", "*", "FROM", "\"T\"", "WHERE", "a", "=", "'x'", "AND", "OR", "NOT",
                "(", ")", "[", "]", "{", "}", "<<", ">>", ",", ".", ":", "?", "1", "-", "+",
                "IN", "BETWEEN", "IS", "MISSING", "SET", "REMOVE", "UPDATE", "DELETE", "INSERT",
                "INTO", "VALUE", "size", "begins_with", "RETURNING", "ALL", "OLD", "EXISTS",
            ]), 0..30),
        ) {
            let _ = parse(&words.join(" "), &[AttributeValue::S("p".into())]);
        }
    }
}
