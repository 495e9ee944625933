//! `UpdateExpression`: its grammar (on the condition parser's lexer, paths and placeholders),
//! the checks DynamoDB makes before touching any item, and applying it to an item.
//!
//! ```text
//! update  ::= clause+                       each of SET, REMOVE, ADD, DELETE at most once
//! SET     ::= path = value (, path = value)*
//! value   ::= operand | operand + operand | operand - operand     (optionally parenthesized)
//! operand ::= path | :v | if_not_exists(path, operand) | list_append(operand, operand)
//! REMOVE  ::= path (, path)*
//! ADD     ::= path :v (, path :v)*           :v a number or a set
//! DELETE  ::= path :v (, path :v)*           :v a set
//! ```
//!
//! Every value on the right of `SET` is computed from the item as it was before the update
//! (so `SET a = b, b = a` swaps), then the actions are applied. Paths that overlap (one a
//! prefix of another) or conflict (a map key and a list index at the same step) are refused at
//! parse time, so no two actions touch the same place and their order does not matter.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ast::{Path, PathElement};
use super::eval::resolve;
use super::lexer::TokenKind;
use super::parser::{ExpressionContext, Parser};
use crate::model::{AttributeValue, Item};
use crate::{Error, Result};

const KIND: &str = "UpdateExpression";

/// A parsed `UpdateExpression`, placeholders resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// `SET path = value`.
    pub set: Vec<(Path, SetValue)>,
    /// `REMOVE path`.
    pub remove: Vec<Path>,
    /// `ADD path value`: a number to add or set members to add.
    pub add: Vec<(Path, AttributeValue)>,
    /// `DELETE path value`: set members to remove.
    pub delete: Vec<(Path, AttributeValue)>,
}

/// The right-hand side of a `SET` action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetValue {
    /// `operand`
    Operand(SetOperand),
    /// `a + b` (numbers).
    Plus(SetOperand, SetOperand),
    /// `a - b` (numbers).
    Minus(SetOperand, SetOperand),
}

/// An operand of a `SET` value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetOperand {
    /// The value at a path in the item.
    Path(Path),
    /// A constant.
    Value(AttributeValue),
    /// `if_not_exists(path, operand)`
    IfNotExists(Path, Box<SetOperand>),
    /// `list_append(a, b)`
    ListAppend(Box<SetOperand>, Box<SetOperand>),
}

/// DynamoDB's rendering of a path in its overlap messages: `[a, b, [0]]`.
pub(super) struct PathList<'a>(pub(super) &'a Path);

impl fmt::Display for PathList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .elements
            .iter()
            .map(|e| match e {
                PathElement::Attribute(name) => name.clone(),
                PathElement::Index(i) => format!("[{i}]"),
            })
            .collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

/// Parses `text` as an `UpdateExpression`, resolving placeholders through `ctx`.
///
/// # Errors
/// `ValidationException` with DynamoDB's message for a syntax error, a clause used twice, an
/// unknown function or placeholder, overlapping or conflicting paths, or an operand of the
/// wrong type.
pub fn parse_update(text: &str, ctx: &mut ExpressionContext) -> Result<Update> {
    let mut p = Parser::new(KIND, text, ctx)?;
    let mut update = Update::default();
    let mut seen: Vec<&str> = Vec::new();
    while p.peek().kind != TokenKind::Eof {
        let clause = ["SET", "REMOVE", "ADD", "DELETE"]
            .into_iter()
            .find(|k| {
                p.peek().kind == TokenKind::Ident && p.token_text(p.peek()).eq_ignore_ascii_case(k)
            })
            .ok_or_else(|| p.syntax_error())?;
        p.bump();
        if seen.contains(&clause) {
            return Err(p.error(format!(
                "The \"{clause}\" section can only be used once in an update expression;"
            )));
        }
        seen.push(clause);
        loop {
            let path = p.path()?;
            match clause {
                "SET" => {
                    p.expect(TokenKind::Eq)?;
                    let value = set_value(&mut p)?;
                    update.set.push((path, value));
                }
                "REMOVE" => update.remove.push(path),
                _ => {
                    let value = placeholder_value(&mut p)?;
                    check_add_delete(&p, clause, &value)?;
                    if clause == "ADD" {
                        update.add.push((path, value));
                    } else {
                        update.delete.push((path, value));
                    }
                }
            }
            if !p.eat(TokenKind::Comma) {
                break;
            }
        }
    }
    check_paths(&p, &update)?;
    Ok(update)
}

/// `:v` and its value (ADD and DELETE take nothing else).
fn placeholder_value(p: &mut Parser) -> Result<AttributeValue> {
    if p.peek().kind != TokenKind::ValuePlaceholder {
        return Err(p.syntax_error());
    }
    let token = p.bump();
    let placeholder = p.token_text(&token);
    p.ctx_value(placeholder).ok_or_else(|| {
        p.error(format!(
            "An expression attribute value used in expression is not defined; attribute value: {placeholder}"
        ))
    })
}

/// DynamoDB's type name in operator errors.
fn long_type_name(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::S(_) => "STRING",
        AttributeValue::N(_) => "NUMBER",
        AttributeValue::B(_) => "BINARY",
        AttributeValue::Null => "NULL",
        AttributeValue::Bool(_) => "BOOLEAN",
        AttributeValue::L(_) => "LIST",
        AttributeValue::M(_) => "MAP",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
    }
}

fn check_add_delete(p: &Parser, clause: &str, value: &AttributeValue) -> Result<()> {
    let is_set = matches!(
        value,
        AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)
    );
    let number_ok = clause == "ADD" && matches!(value, AttributeValue::N(_));
    if is_set || number_ok {
        return Ok(());
    }
    Err(p.error(format!(
        "Incorrect operand type for operator or function; operator: {clause}, operand type: {}",
        long_type_name(value)
    )))
}

/// `value ::= operand [(+|-) operand]`, or the same in parentheses.
fn set_value(p: &mut Parser) -> Result<SetValue> {
    if p.peek().kind == TokenKind::LParen {
        p.bump();
        let value = p.nested(set_value)?;
        p.expect(TokenKind::RParen)?;
        return Ok(value);
    }
    let left = set_operand(p)?;
    let op = match p.peek().kind {
        TokenKind::Plus => "+",
        TokenKind::Minus => "-",
        _ => return Ok(SetValue::Operand(left)),
    };
    p.bump();
    let right = set_operand(p)?;
    for operand in [&left, &right] {
        if let SetOperand::Value(v) = operand
            && !matches!(v, AttributeValue::N(_))
        {
            return Err(p.error(format!(
                "Incorrect operand type for operator or function; operator or function: {op}, operand type: {}",
                v.type_name()
            )));
        }
    }
    Ok(if op == "+" {
        SetValue::Plus(left, right)
    } else {
        SetValue::Minus(left, right)
    })
}

/// `operand ::= path | :v | if_not_exists(path, operand) | list_append(operand, operand)`,
/// or the same in parentheses.
fn set_operand(p: &mut Parser) -> Result<SetOperand> {
    match p.peek().kind {
        TokenKind::LParen => {
            p.bump();
            let operand = p.nested(set_operand)?;
            p.expect(TokenKind::RParen)?;
            Ok(operand)
        }
        TokenKind::ValuePlaceholder => placeholder_value(p).map(SetOperand::Value),
        TokenKind::Ident if p.at_call() => {
            let text = p.token_text(p.peek());
            if text == "size" || super::parser::CONDITION_FUNCTIONS.contains(&text) {
                return Err(p.error(format!(
                    "The function is not allowed in an update expression; function: {text}"
                )));
            }
            let name = p.call_name(&["if_not_exists", "list_append"])?;
            p.expect(TokenKind::LParen)?;
            let args = p.nested(|p| {
                let mut args = vec![set_operand(p)?];
                while p.eat(TokenKind::Comma) {
                    args.push(set_operand(p)?);
                }
                Ok(args)
            })?;
            p.expect(TokenKind::RParen)?;
            let [first, second]: [SetOperand; 2] = args.try_into().map_err(|args: Vec<_>| {
                p.error(format!(
                    "Incorrect number of operands for operator or function; \
                     operator or function: {name}, number of operands: {}",
                    args.len()
                ))
            })?;
            if name == "if_not_exists" {
                let SetOperand::Path(path) = first else {
                    return Err(p.error(
                        "Operator or function requires a document path; operator or function: if_not_exists",
                    ));
                };
                return Ok(SetOperand::IfNotExists(path, Box::new(second)));
            }
            for operand in [&first, &second] {
                if let SetOperand::Value(v) = operand
                    && !matches!(v, AttributeValue::L(_))
                {
                    return Err(p.error(format!(
                        "Incorrect operand type for operator or function; operator or function: list_append, operand type: {}",
                        v.type_name()
                    )));
                }
            }
            Ok(SetOperand::ListAppend(Box::new(first), Box::new(second)))
        }
        TokenKind::Ident | TokenKind::NamePlaceholder => p.path().map(SetOperand::Path),
        _ => Err(p.syntax_error()),
    }
}

/// Refuses two actions on overlapping or conflicting paths.
fn check_paths(p: &Parser, update: &Update) -> Result<()> {
    let paths: Vec<&Path> = update.targets().collect();
    check_overlaps(p, &paths)
}

/// Refuses two paths of which one is a prefix of the other (they overlap), or which take a
/// map key and a list index at the same step (they conflict), with DynamoDB's messages.
pub(super) fn check_overlaps(p: &Parser, paths: &[&Path]) -> Result<()> {
    for (i, later) in paths.iter().enumerate() {
        for earlier in &paths[..i] {
            let mut same_prefix = true;
            for (a, b) in earlier.elements.iter().zip(&later.elements) {
                match (a, b) {
                    (PathElement::Attribute(x), PathElement::Attribute(y)) if x == y => {}
                    (PathElement::Index(x), PathElement::Index(y)) if x == y => {}
                    (PathElement::Attribute(_), PathElement::Index(_))
                    | (PathElement::Index(_), PathElement::Attribute(_)) => {
                        return Err(p.error(format!(
                            "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                            PathList(earlier),
                            PathList(later)
                        )));
                    }
                    _ => {
                        same_prefix = false;
                        break;
                    }
                }
            }
            if same_prefix {
                return Err(p.error(format!(
                    "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: {}, path two: {}",
                    PathList(earlier),
                    PathList(later)
                )));
            }
        }
    }
    Ok(())
}

impl Update {
    /// Every top-level attribute the update writes (for the key-attribute check).
    pub fn targets(&self) -> impl Iterator<Item = &Path> {
        self.set
            .iter()
            .map(|(path, _)| path)
            .chain(self.remove.iter())
            .chain(self.add.iter().map(|(path, _)| path))
            .chain(self.delete.iter().map(|(path, _)| path))
    }

    /// Applies the update to `item` (empty when the item does not exist yet).
    ///
    /// # Errors
    /// DynamoDB's `ValidationException` for an operand of the wrong type, a path that
    /// cannot be written, or a number result out of range; the item is then unchanged.
    pub fn apply(&self, item: &Item) -> Result<Item> {
        // Every SET value from the item as it was.
        let values: Vec<AttributeValue> = self
            .set
            .iter()
            .map(|(_, v)| set_value_of(v, item))
            .collect::<Result<_>>()?;
        let mut next = item.clone();
        for ((path, _), value) in self.set.iter().zip(values) {
            write(&mut next, path, value)?;
        }
        // List elements removed highest index first, so earlier indexes still mean the same.
        let mut removals: Vec<&Path> = self.remove.iter().collect();
        removals.sort_by(|a, b| b.elements.cmp(&a.elements));
        for path in removals {
            remove(&mut next, path);
        }
        for (path, value) in &self.add {
            let current = resolve(item, path);
            let updated = match (current, value) {
                (None, v) => v.clone(),
                (Some(AttributeValue::N(a)), AttributeValue::N(b)) => AttributeValue::N(a.add(b)?),
                (Some(AttributeValue::Ss(a)), AttributeValue::Ss(b)) => {
                    AttributeValue::Ss(a.union(b).cloned().collect())
                }
                (Some(AttributeValue::Ns(a)), AttributeValue::Ns(b)) => {
                    AttributeValue::Ns(a.union(b).cloned().collect())
                }
                (Some(AttributeValue::Bs(a)), AttributeValue::Bs(b)) => {
                    AttributeValue::Bs(a.union(b).cloned().collect())
                }
                _ => return Err(wrong_type()),
            };
            write(&mut next, path, updated)?;
        }
        for (path, value) in &self.delete {
            let remaining = match (resolve(item, path), value) {
                (None, _) => continue,
                (Some(AttributeValue::Ss(a)), AttributeValue::Ss(b)) => {
                    let left: std::collections::BTreeSet<_> = a.difference(b).cloned().collect();
                    (!left.is_empty()).then_some(AttributeValue::Ss(left))
                }
                (Some(AttributeValue::Ns(a)), AttributeValue::Ns(b)) => {
                    let left: std::collections::BTreeSet<_> = a.difference(b).cloned().collect();
                    (!left.is_empty()).then_some(AttributeValue::Ns(left))
                }
                (Some(AttributeValue::Bs(a)), AttributeValue::Bs(b)) => {
                    let left: std::collections::BTreeSet<_> = a.difference(b).cloned().collect();
                    (!left.is_empty()).then_some(AttributeValue::Bs(left))
                }
                _ => return Err(wrong_type()),
            };
            // A set emptied by DELETE disappears, as an empty set cannot exist.
            match remaining {
                Some(v) => write(&mut next, path, v)?,
                None => remove(&mut next, path),
            }
        }
        Ok(next)
    }
}

fn wrong_type() -> Error {
    Error::validation("An operand in the update expression has an incorrect data type")
}

fn missing() -> Error {
    Error::validation(
        "The provided expression refers to an attribute that does not exist in the item",
    )
}

fn set_value_of(value: &SetValue, item: &Item) -> Result<AttributeValue> {
    let number = |o: &SetOperand| match operand_of(o, item)? {
        AttributeValue::N(n) => Ok(n),
        _ => Err(wrong_type()),
    };
    match value {
        SetValue::Operand(o) => operand_of(o, item),
        SetValue::Plus(a, b) => Ok(AttributeValue::N(number(a)?.add(&number(b)?)?)),
        SetValue::Minus(a, b) => Ok(AttributeValue::N(number(a)?.sub(&number(b)?)?)),
    }
}

fn operand_of(operand: &SetOperand, item: &Item) -> Result<AttributeValue> {
    match operand {
        SetOperand::Path(path) => resolve(item, path).cloned().ok_or_else(missing),
        SetOperand::Value(v) => Ok(v.clone()),
        SetOperand::IfNotExists(path, default) => match resolve(item, path) {
            Some(v) => Ok(v.clone()),
            None => operand_of(default, item),
        },
        SetOperand::ListAppend(a, b) => match (operand_of(a, item)?, operand_of(b, item)?) {
            (AttributeValue::L(mut a), AttributeValue::L(b)) => {
                a.extend(b);
                Ok(AttributeValue::L(a))
            }
            _ => Err(wrong_type()),
        },
    }
}

fn invalid_path() -> Error {
    Error::validation("The document path provided in the update expression is invalid for update")
}

/// Writes `value` at `path`: a map key is created or replaced; a list index past the end
/// appends. The parent of a nested path must exist and be a map or list.
fn write(item: &mut Item, path: &Path, value: AttributeValue) -> Result<()> {
    let Some((last, parents)) = path.elements.split_last() else {
        return Err(invalid_path());
    };
    let (first, rest) = match (parents.split_first(), last) {
        (None, PathElement::Attribute(name)) => {
            item.insert(name.clone(), value);
            return Ok(());
        }
        (Some((PathElement::Attribute(first), rest)), _) => (first, rest),
        _ => return Err(invalid_path()),
    };
    let mut target = item.get_mut(first).ok_or_else(invalid_path)?;
    for element in rest {
        target = match (element, target) {
            (PathElement::Attribute(name), AttributeValue::M(map)) => {
                map.get_mut(name).ok_or_else(invalid_path)?
            }
            (PathElement::Index(i), AttributeValue::L(list)) => {
                list.get_mut(*i as usize).ok_or_else(invalid_path)?
            }
            _ => return Err(invalid_path()),
        };
    }
    match (last, target) {
        (PathElement::Attribute(name), AttributeValue::M(map)) => {
            map.insert(name.clone(), value);
        }
        (PathElement::Index(i), AttributeValue::L(list)) => match list.get_mut(*i as usize) {
            Some(slot) => *slot = value,
            None => list.push(value),
        },
        _ => return Err(invalid_path()),
    }
    Ok(())
}

/// Removes what `path` leads to, if anything.
fn remove(item: &mut Item, path: &Path) {
    let Some((last, parents)) = path.elements.split_last() else {
        return;
    };
    let Some((PathElement::Attribute(first), rest)) = parents.split_first() else {
        if let PathElement::Attribute(name) = last {
            item.remove(name);
        }
        return;
    };
    let Some(mut target) = item.get_mut(first) else {
        return;
    };
    for element in rest {
        let next = match (element, target) {
            (PathElement::Attribute(name), AttributeValue::M(map)) => map.get_mut(name),
            (PathElement::Index(i), AttributeValue::L(list)) => list.get_mut(*i as usize),
            _ => None,
        };
        match next {
            Some(t) => target = t,
            None => return,
        }
    }
    match (last, target) {
        (PathElement::Attribute(name), AttributeValue::M(map)) => {
            map.remove(name);
        }
        (PathElement::Index(i), AttributeValue::L(list)) if (*i as usize) < list.len() => {
            list.remove(*i as usize);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::Number;

    fn n(s: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(s).expect("number"))
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn values() -> BTreeMap<String, AttributeValue> {
        BTreeMap::from([
            (":one".to_string(), n("1")),
            (":ten".to_string(), n("10")),
            (":s".to_string(), s("x")),
            (":l".to_string(), AttributeValue::L(vec![n("9")])),
            (
                ":set".to_string(),
                AttributeValue::string_set(vec!["b".into(), "c".into()]).expect("set"),
            ),
            (
                ":all".to_string(),
                AttributeValue::string_set(vec!["a".into(), "b".into(), "c".into()]).expect("set"),
            ),
        ])
    }

    fn parse(text: &str) -> Result<Update> {
        let values = values();
        let names = BTreeMap::from([("#n".to_string(), "nm".to_string())]);
        let mut ctx = ExpressionContext::new(Some(&names), Some(&values))?;
        parse_update(text, &mut ctx)
    }

    fn item() -> Item {
        BTreeMap::from([
            ("nm".to_string(), s("Ada")),
            ("ct".to_string(), n("5")),
            (
                "ls".to_string(),
                AttributeValue::L(vec![n("1"), n("2"), n("3")]),
            ),
            (
                "tg".to_string(),
                AttributeValue::string_set(vec!["a".into(), "b".into()]).expect("set"),
            ),
            ("mp".to_string(), AttributeValue::M(BTreeMap::new())),
        ])
    }

    fn run(text: &str) -> Result<Item> {
        parse(text)?.apply(&item())
    }

    #[test]
    fn actions_apply_as_dynamodb_does() {
        let got = run("SET ct = ct + :ten, #n = :s, mp.k = :one, ls[1] = :ten, ls[9] = :s REMOVE ls[0] ADD tg :set, fr :one DELETE nt :set").expect("applies");
        assert_eq!(got["ct"], n("15"));
        assert_eq!(got["nm"], s("x"));
        assert_eq!(
            got["mp"],
            AttributeValue::M(BTreeMap::from([("k".to_string(), n("1"))]))
        );
        assert_eq!(got["ls"], AttributeValue::L(vec![n("10"), n("3"), s("x")]));
        assert_eq!(
            got["tg"],
            AttributeValue::string_set(vec!["a".into(), "b".into(), "c".into()]).expect("set")
        );
        assert_eq!(got["fr"], n("1"));
        // Values come from the item as it was: a swap works.
        let swapped = run("SET nm = ct, ct = nm").expect("applies");
        assert_eq!(
            (swapped["nm"].clone(), swapped["ct"].clone()),
            (n("5"), s("Ada"))
        );
        let appended = run("SET ls = list_append(ls, :l), ot = if_not_exists(ot, :ten) - :one")
            .expect("applies");
        assert_eq!(
            appended["ls"],
            AttributeValue::L(vec![n("1"), n("2"), n("3"), n("9")])
        );
        assert_eq!(appended["ot"], n("9"));
        // A set emptied by DELETE disappears.
        let emptied = run("DELETE tg :all").expect("applies");
        assert!(!emptied.contains_key("tg"));
        // REMOVE of what is not there changes nt.
        assert_eq!(run("REMOVE ms, ls[7], mp.nn").expect("applies"), item());
        // Keywords are case-insensitive; parentheses are allowed around values.
        assert_eq!(run("set ct = (ct - :one)").expect("applies")["ct"], n("4"));
    }

    #[test]
    fn dynamodb_errors() {
        let cases = [
            (
                "SET a = :one SET b = :one",
                "The \"SET\" section can only be used once in an update expression;",
            ),
            (
                "SET a = :one REMOVE a",
                "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]",
            ),
            (
                "SET a.b = :one REMOVE a",
                "Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a]",
            ),
            (
                "SET a.b = :one, a[0] = :one",
                "Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a, [0]]",
            ),
            (
                "ADD a :s",
                "Incorrect operand type for operator or function; operator: ADD, operand type: STRING",
            ),
            (
                "DELETE a :one",
                "Incorrect operand type for operator or function; operator: DELETE, operand type: NUMBER",
            ),
            (
                "SET a = :s + :one",
                "Incorrect operand type for operator or function; operator or function: +, operand type: S",
            ),
            (
                "SET a = list_append(:one, a)",
                "Incorrect operand type for operator or function; operator or function: list_append, operand type: N",
            ),
            (
                "SET a = if_not_exists(:one, a)",
                "Operator or function requires a document path; operator or function: if_not_exists",
            ),
            (
                "SET a = size(b)",
                "The function is not allowed in an update expression; function: size",
            ),
            (
                "SET a = contains(b, :one)",
                "The function is not allowed in an update expression; function: contains",
            ),
            (
                "SET a = :nope",
                "An expression attribute value used in expression is not defined; attribute value: :nope",
            ),
            ("SET a :one", "Syntax error; token: \":one\""),
            ("PUT a = :one", "Syntax error; token: \"PUT\""),
            ("SET a = :one,", "Syntax error; token: <EOF>"),
        ];
        for (text, want) in cases {
            match parse(text) {
                Err(Error::Validation(m)) => assert!(
                    m.starts_with("Invalid UpdateExpression: ") && m.contains(want),
                    "{text}: {m}"
                ),
                other => panic!("{text}: expected a ValidationException, got {other:?}"),
            }
        }
        for (text, want) in [
            (
                "SET ct = nm + :one",
                "An operand in the update expression has an incorrect data type",
            ),
            (
                "SET x = ms",
                "The provided expression refers to an attribute that does not exist in the item",
            ),
            (
                "SET np.k = :one",
                "The document path provided in the update expression is invalid for update",
            ),
            (
                "ADD nm :one",
                "An operand in the update expression has an incorrect data type",
            ),
            (
                "DELETE ct :set",
                "An operand in the update expression has an incorrect data type",
            ),
        ] {
            match run(text) {
                Err(Error::Validation(m)) => assert_eq!(m, want, "{text}"),
                other => panic!("{text}: expected a ValidationException, got {other:?}"),
            }
        }
    }
}
