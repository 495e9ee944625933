//! Expression trees back to text: the inverse of the parsers, with every attribute name
//! written as a `#nN` placeholder and every value as a `:vN` placeholder, so the text parses
//! whatever the names are (reserved words, dots, spaces) and needs no value syntax. Each
//! operator is parenthesised, so the text means the tree whatever DynamoDB's precedence.
//!
//! The parsers' property tests print arbitrary trees and parse them back to the same tree; the
//! CLI and the console use it to show a stored or rewritten expression to a user.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::AttributeValue;
use crate::model::expr::{
    Condition, Function, Operand, Path, PathElement, SetOperand, SetValue, Update,
};

/// Expression text and the placeholder maps it needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Printed {
    /// The expression.
    pub text: String,
    /// `ExpressionAttributeNames`.
    pub names: BTreeMap<String, String>,
    /// `ExpressionAttributeValues`.
    pub values: BTreeMap<String, AttributeValue>,
}

/// A condition (`ConditionExpression`, `FilterExpression`) as text.
pub fn condition(c: &Condition) -> Printed {
    let mut p = Printed::default();
    p.text = p.condition(c);
    p
}

/// An `UpdateExpression` as text: its clauses in the order `SET`, `REMOVE`, `ADD`, `DELETE`.
pub fn update(u: &Update) -> Printed {
    let mut p = Printed::default();
    p.text = p.add_update(u);
    p
}

/// A `ProjectionExpression` as text.
pub fn projection(paths: &[Path]) -> Printed {
    let mut p = Printed::default();
    p.text = p.add_projection(paths);
    p
}

impl Printed {
    /// Prints an `UpdateExpression` into these placeholder maps.
    pub fn add_update(&mut self, u: &Update) -> String {
        let p = self;
        let mut clauses = Vec::new();
        if !u.set.is_empty() {
            let actions: Vec<String> = u
                .set
                .iter()
                .map(|(path, value)| {
                    let path = p.path(path);
                    let value = p.set_value(value);
                    format!("{path} = {value}")
                })
                .collect();
            clauses.push(format!("SET {}", actions.join(", ")));
        }
        if !u.remove.is_empty() {
            let paths: Vec<String> = u.remove.iter().map(|path| p.path(path)).collect();
            clauses.push(format!("REMOVE {}", paths.join(", ")));
        }
        for (keyword, actions) in [("ADD", &u.add), ("DELETE", &u.delete)] {
            if !actions.is_empty() {
                let actions: Vec<String> = actions
                    .iter()
                    .map(|(path, value)| {
                        let path = p.path(path);
                        let value = p.value(value);
                        format!("{path} {value}")
                    })
                    .collect();
                clauses.push(format!("{keyword} {}", actions.join(", ")));
            }
        }
        clauses.join(" ")
    }

    /// Prints `c` into these placeholder maps (several expressions of one request share
    /// them: its key condition, filter and projection).
    pub fn add_condition(&mut self, c: &Condition) -> String {
        self.condition(c)
    }

    /// Prints a projection into these placeholder maps.
    pub fn add_projection(&mut self, paths: &[Path]) -> String {
        let paths: Vec<String> = paths.iter().map(|path| self.path(path)).collect();
        paths.join(", ")
    }

    /// The placeholder for attribute `name`, one per distinct name.
    fn name(&mut self, name: &str) -> String {
        if let Some((placeholder, _)) = self.names.iter().find(|(_, n)| *n == name) {
            return placeholder.clone();
        }
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_string());
        placeholder
    }

    /// A new placeholder for `value`.
    fn value(&mut self, value: &AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value.clone());
        placeholder
    }

    fn path(&mut self, path: &Path) -> String {
        let mut text = String::new();
        for (i, element) in path.elements.iter().enumerate() {
            match element {
                PathElement::Attribute(name) => {
                    if i > 0 {
                        text.push('.');
                    }
                    let placeholder = self.name(name);
                    text.push_str(&placeholder);
                }
                PathElement::Index(index) => {
                    let _ = write!(text, "[{index}]");
                }
            }
        }
        text
    }

    fn operand(&mut self, o: &Operand) -> String {
        match o {
            Operand::Path(path) => self.path(path),
            Operand::Value(value) => self.value(value),
            Operand::Size(path) => format!("size({})", self.path(path)),
        }
    }

    fn condition(&mut self, c: &Condition) -> String {
        match c {
            Condition::Compare { op, left, right } => {
                let left = self.operand(left);
                let right = self.operand(right);
                format!("{left} {op} {right}")
            }
            Condition::Between { operand, low, high } => {
                let operand = self.operand(operand);
                let low = self.operand(low);
                let high = self.operand(high);
                format!("{operand} BETWEEN {low} AND {high}")
            }
            Condition::In { operand, list } => {
                let operand = self.operand(operand);
                let list: Vec<String> = list.iter().map(|o| self.operand(o)).collect();
                format!("{operand} IN ({})", list.join(", "))
            }
            Condition::Function(f) => {
                let args = match f {
                    Function::AttributeExists(path) | Function::AttributeNotExists(path) => {
                        self.path(path)
                    }
                    Function::AttributeType(path, type_name) => {
                        let path = self.path(path);
                        let type_name = self.value(&AttributeValue::S(type_name.clone()));
                        format!("{path}, {type_name}")
                    }
                    Function::BeginsWith(path, operand) | Function::Contains(path, operand) => {
                        let path = self.path(path);
                        let operand = self.operand(operand);
                        format!("{path}, {operand}")
                    }
                };
                format!("{}({args})", f.name())
            }
            // A chain `a AND b AND c` (the parsers build it leaning left) is printed flat, so
            // a long chain does not count as deep nesting when parsed again.
            Condition::And(a, b) => {
                let a = match a.as_ref() {
                    Condition::And(..) => self.condition(a),
                    other => self.wrapped(other),
                };
                let b = self.wrapped(b);
                format!("{a} AND {b}")
            }
            Condition::Or(a, b) => {
                let a = match a.as_ref() {
                    Condition::Or(..) => self.condition(a),
                    other => self.wrapped(other),
                };
                let b = self.wrapped(b);
                format!("{a} OR {b}")
            }
            Condition::Not(a) => format!("NOT ({})", self.condition(a)),
        }
    }

    /// A condition as an operand of `AND` or `OR`: parenthesised unless it is a comparison,
    /// `IN` or a function, which bind tighter than either.
    fn wrapped(&mut self, c: &Condition) -> String {
        let text = self.condition(c);
        match c {
            Condition::Compare { .. } | Condition::In { .. } | Condition::Function(_) => text,
            _ => format!("({text})"),
        }
    }

    fn set_value(&mut self, v: &SetValue) -> String {
        match v {
            SetValue::Operand(o) => self.set_operand(o),
            SetValue::Plus(a, b) => {
                let a = self.set_operand(a);
                let b = self.set_operand(b);
                format!("{a} + {b}")
            }
            SetValue::Minus(a, b) => {
                let a = self.set_operand(a);
                let b = self.set_operand(b);
                format!("{a} - {b}")
            }
        }
    }

    fn set_operand(&mut self, o: &SetOperand) -> String {
        match o {
            SetOperand::Path(path) => self.path(path),
            SetOperand::Value(value) => self.value(value),
            SetOperand::IfNotExists(path, fallback) => {
                let path = self.path(path);
                let fallback = self.set_operand(fallback);
                format!("if_not_exists({path}, {fallback})")
            }
            SetOperand::ListAppend(a, b) => {
                let a = self.set_operand(a);
                let b = self.set_operand(b);
                format!("list_append({a}, {b})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::model::Number;
    use crate::model::expr::{
        Comparator, ExpressionContext, parse_condition, parse_projection, parse_update,
    };

    /// Attribute names, including reserved words and characters a bare name cannot have.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,6}",
            Just("size".to_string()),
            Just("AND".to_string()),
            Just("a.b".to_string()),
            Just("with space".to_string()),
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
                0..4,
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
            ".{0,8}".prop_map(AttributeValue::S),
            any::<i64>().prop_map(|n| AttributeValue::N(Number::from_i64(n))),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(AttributeValue::B),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null),
            prop::collection::btree_set("[a-z]{0,4}", 1..4).prop_map(AttributeValue::Ss),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(AttributeValue::L),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..3).prop_map(AttributeValue::M),
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

    fn comparator() -> impl Strategy<Value = Comparator> {
        prop::sample::select(vec![
            Comparator::Eq,
            Comparator::Ne,
            Comparator::Lt,
            Comparator::Le,
            Comparator::Gt,
            Comparator::Ge,
        ])
    }

    fn function() -> impl Strategy<Value = Function> {
        prop_oneof![
            path().prop_map(Function::AttributeExists),
            path().prop_map(Function::AttributeNotExists),
            (
                path(),
                prop::sample::select(vec![
                    "S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"
                ])
            )
                .prop_map(|(p, t)| Function::AttributeType(p, t.to_string())),
            (path(), operand()).prop_map(|(p, o)| Function::BeginsWith(p, o)),
            (path(), operand()).prop_map(|(p, o)| Function::Contains(p, o)),
        ]
    }

    /// DynamoDB refuses a first operand, a path, repeated among the others (`a = a`): such a
    /// leaf's first operand becomes `size(path)`, which is distinct.
    fn distinct(c: Condition) -> Condition {
        let fix = |first: Operand, rest: &[&Operand]| match first {
            Operand::Path(p) if rest.contains(&&Operand::Path(p.clone())) => Operand::Size(p),
            other => other,
        };
        match c {
            Condition::Compare { op, left, right } => Condition::Compare {
                op,
                left: fix(left, &[&right]),
                right,
            },
            Condition::Between { operand, low, high } => Condition::Between {
                operand: fix(operand, &[&low, &high]),
                low,
                high,
            },
            Condition::In { operand, list } => Condition::In {
                operand: fix(operand, &list.iter().collect::<Vec<_>>()),
                list,
            },
            Condition::Function(Function::BeginsWith(p, o)) if o == Operand::Path(p.clone()) => {
                Condition::Function(Function::BeginsWith(p.clone(), Operand::Size(p)))
            }
            Condition::Function(Function::Contains(p, o)) if o == Operand::Path(p.clone()) => {
                Condition::Function(Function::Contains(p.clone(), Operand::Size(p)))
            }
            other => other,
        }
    }

    fn condition_tree() -> impl Strategy<Value = Condition> {
        let leaf =
            prop_oneof![
                (comparator(), operand(), operand())
                    .prop_map(|(op, left, right)| Condition::Compare { op, left, right }),
                (operand(), operand(), operand())
                    .prop_map(|(operand, low, high)| Condition::Between { operand, low, high }),
                (operand(), prop::collection::vec(operand(), 1..5))
                    .prop_map(|(operand, list)| Condition::In { operand, list }),
                function().prop_map(Condition::Function),
            ]
            .prop_map(distinct);
        // Depth 5 stays well inside DynamoDB's nesting limit, parentheses included.
        leaf.prop_recursive(5, 24, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Condition::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Condition::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| Condition::Not(Box::new(a))),
            ]
        })
    }

    fn number() -> impl Strategy<Value = AttributeValue> {
        any::<i32>().prop_map(|n| AttributeValue::N(Number::from_i64(n.into())))
    }

    fn list() -> impl Strategy<Value = AttributeValue> {
        prop::collection::vec(value(), 0..3).prop_map(AttributeValue::L)
    }

    fn set() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            prop::collection::btree_set("[a-z]{0,4}", 1..4).prop_map(AttributeValue::Ss),
            prop::collection::btree_set(any::<i32>(), 1..4).prop_map(|s| AttributeValue::Ns(
                s.into_iter()
                    .map(|n| Number::from_i64(n.into()))
                    .collect::<BTreeSet<_>>()
            )),
        ]
    }

    /// A `SET` operand: arithmetic takes numbers, `list_append` lists, as the parser demands.
    fn set_operand(kind: u8) -> BoxedStrategy<SetOperand> {
        let constant = match kind {
            0 => number().boxed(),
            1 => list().boxed(),
            _ => value().boxed(),
        };
        let leaf = prop_oneof![
            path().prop_map(SetOperand::Path),
            constant.prop_map(SetOperand::Value)
        ];
        leaf.prop_recursive(2, 6, 2, move |inner| {
            prop_oneof![
                (path(), inner.clone()).prop_map(|(p, o)| SetOperand::IfNotExists(p, Box::new(o))),
                (inner.clone(), inner).prop_map(move |(a, b)| {
                    // list_append's constants must be lists; anything else is a path here.
                    let fix = |o: SetOperand| match o {
                        SetOperand::Value(v) if !matches!(v, AttributeValue::L(_)) => {
                            SetOperand::Value(AttributeValue::L(vec![v]))
                        }
                        other => other,
                    };
                    SetOperand::ListAppend(Box::new(fix(a)), Box::new(fix(b)))
                }),
            ]
        })
        .boxed()
    }

    fn set_value() -> impl Strategy<Value = SetValue> {
        let arithmetic_operand = || {
            // A constant in arithmetic must be a number, even inside if_not_exists.
            prop_oneof![
                path().prop_map(SetOperand::Path),
                number().prop_map(SetOperand::Value),
                (path(), number())
                    .prop_map(|(p, n)| SetOperand::IfNotExists(p, Box::new(SetOperand::Value(n)))),
            ]
        };
        prop_oneof![
            set_operand(2).prop_map(SetValue::Operand),
            set_operand(1).prop_map(SetValue::Operand),
            (arithmetic_operand(), arithmetic_operand()).prop_map(|(a, b)| SetValue::Plus(a, b)),
            (arithmetic_operand(), arithmetic_operand()).prop_map(|(a, b)| SetValue::Minus(a, b)),
        ]
    }

    /// An update whose targets are distinct top-level attributes `t0`, `t1`, ... with nested
    /// tails, so no two overlap (the parser refuses overlaps).
    fn update_tree() -> impl Strategy<Value = Update> {
        let tail = || {
            prop::collection::vec(
                prop_oneof![
                    name().prop_map(PathElement::Attribute),
                    (0u32..20).prop_map(PathElement::Index)
                ],
                0..3,
            )
        };
        (
            prop::collection::vec((tail(), set_value()), 0..3),
            prop::collection::vec(tail(), 0..3),
            prop::collection::vec(prop_oneof![number(), set()], 0..3),
            prop::collection::vec(set(), 0..3),
        )
            .prop_filter("an update needs an action", |(s, r, a, d)| {
                !(s.is_empty() && r.is_empty() && a.is_empty() && d.is_empty())
            })
            .prop_map(|(set, remove, add, delete)| {
                let mut next = 0;
                let mut target = |tail: Vec<PathElement>| {
                    let mut elements = vec![PathElement::Attribute(format!("t{next}"))];
                    next += 1;
                    elements.extend(tail);
                    Path { elements }
                };
                let set = set.into_iter().map(|(t, v)| (target(t), v)).collect();
                let remove = remove.into_iter().map(&mut target).collect();
                let add = add.into_iter().map(|v| (target(Vec::new()), v)).collect();
                let delete = delete
                    .into_iter()
                    .map(|v| (target(Vec::new()), v))
                    .collect();
                Update {
                    set,
                    remove,
                    add,
                    delete,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn printed_conditions_parse_back_to_the_same_tree(tree in condition_tree()) {
            let printed = condition(&tree);
            let mut ctx = ExpressionContext::new(
                Some(&printed.names).filter(|m| !m.is_empty()),
                Some(&printed.values).filter(|m| !m.is_empty()),
            ).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let parsed = parse_condition("ConditionExpression", &printed.text, &mut ctx)
                .map_err(|e| TestCaseError::fail(format!("{e} in {}", printed.text)))?;
            prop_assert!(ctx.check_all_used().is_ok(), "{}", printed.text);
            prop_assert_eq!(parsed, tree, "{}", printed.text);
        }

        #[test]
        fn printed_updates_parse_back_to_the_same_tree(tree in update_tree()) {
            let printed = update(&tree);
            let mut ctx = ExpressionContext::new(
                Some(&printed.names).filter(|m| !m.is_empty()),
                Some(&printed.values).filter(|m| !m.is_empty()),
            ).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let parsed = parse_update(&printed.text, &mut ctx)
                .map_err(|e| TestCaseError::fail(format!("{e} in {}", printed.text)))?;
            prop_assert!(ctx.check_all_used().is_ok(), "{}", printed.text);
            prop_assert_eq!(parsed, tree, "{}", printed.text);
        }

        #[test]
        fn printed_projections_parse_back_to_the_same_paths(
            paths in prop::collection::vec(path(), 1..6)
        ) {
            let printed = projection(&paths);
            let mut ctx = ExpressionContext::new(Some(&printed.names), None)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            match parse_projection(&printed.text, &mut ctx) {
                Ok(parsed) => prop_assert_eq!(parsed, paths, "{}", printed.text),
                // Two paths where one contains the other are refused, as DynamoDB refuses them.
                Err(e) => prop_assert!(e.to_string().contains("overlap") || e.to_string().contains("conflict"), "{e} in {}", printed.text),
            }
        }
    }
}
