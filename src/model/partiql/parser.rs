//! PartiQL text to a [`Statement`], parameters bound as they are met. Recursive descent over
//! `lexer` tokens, with nesting bounded by the expression parser's limits, so
//! no input can exhaust the stack; every error names the token it stopped at.
//!
//! ```text
//! statement  := select | insert | update | delete | EXISTS '(' select ')'  [';']
//! select     := SELECT ('*' | path {',' path}) FROM name ['.' name] [WHERE cond]
//!               [ORDER BY path [ASC|DESC] {',' path [ASC|DESC]}]
//! insert     := INSERT INTO name VALUE map
//! update     := UPDATE name (SET assign {',' assign} | REMOVE path {',' path})+ WHERE cond
//!               [returning]
//! delete     := DELETE FROM name WHERE cond [returning]
//! returning  := RETURNING (ALL | MODIFIED) (OLD | NEW) '*'
//! assign     := path '=' (set_add | set_delete) '(' path ',' value ')'
//!             | path '=' operand [('+' | '-') operand]
//! cond       := and {OR and};  and := not {AND not};  not := NOT not | predicate
//! predicate  := '(' cond ')' | function '(' ... ')'
//!             | operand (cmp operand | [NOT] BETWEEN operand AND operand
//!                        | [NOT] IN ('[' values ']' | '(' values ')') | IS [NOT] MISSING)
//! operand    := value | size '(' path ')' | path    (in SET also list_append, if_not_exists)
//! value      := 'string' | [-]number | TRUE | FALSE | NULL | '?' | '[' values ']'
//!             | '{' 'key' ':' value {',' ...} '}' | '<<' values '>>'
//! path       := name {'.' name | '[' integer ']'};  name := identifier | "quoted"
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::ast::{Delete, Insert, Returning, Select, Statement, UpdateStatement};
use super::lexer::{Token, TokenKind, tokenize};
use crate::model::expr::{
    Comparator, Condition, Function, MAX_IN_OPERANDS, MAX_NESTING, MAX_PATH_DEPTH, Operand, Path,
    PathElement, SetOperand, SetValue, Update,
};
use crate::model::{AttributeValue, Number};
use crate::{Error, Result};

/// The longest statement DynamoDB accepts, in characters.
pub const MAX_STATEMENT_CHARS: usize = 8192;

/// Most `AND`, `OR` and `NOT` operators in one statement (DynamoDB allows 300 operators in an
/// expression).
pub const MAX_OPERATORS: usize = 300;

/// DynamoDB's envelope for every syntax error.
pub fn malformed(detail: impl std::fmt::Display) -> Error {
    Error::validation(format!(
        "Statement wasn't well formed, can't be processed: {detail}"
    ))
}

/// DynamoDB's message when `Parameters` and the statement's `?`s differ in number.
pub const PARAMETER_COUNT: &str = "Number of parameters in request and statement don't match.";

/// Parses `statement`, binding its `?` parameters, in order, to `params`.
///
/// # Errors
/// `ValidationException`: a syntax error naming the token it met, a statement that is not one
/// of `SELECT`, `INSERT`, `UPDATE`, `DELETE`, an invalid literal, or a parameter count that
/// does not match.
pub fn parse(statement: &str, params: &[AttributeValue]) -> Result<Statement> {
    if statement.chars().count() > MAX_STATEMENT_CHARS {
        return Err(Error::validation(format!(
            "1 validation error detected: Value at 'statement' failed to satisfy constraint: \
             Member must have length less than or equal to {MAX_STATEMENT_CHARS}"
        )));
    }
    let mut p = Parser {
        text: statement,
        tokens: tokenize(statement),
        pos: 0,
        params,
        used: 0,
        depth: 0,
        operators: 0,
    };
    let parsed = p.statement()?;
    p.eat(TokenKind::Semicolon);
    if p.kind() != TokenKind::Eof {
        return Err(p.unexpected());
    }
    if p.used != params.len() {
        return Err(Error::validation(PARAMETER_COUNT));
    }
    Ok(parsed)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    params: &'a [AttributeValue],
    used: usize,
    depth: usize,
    /// `AND`, `OR` and `NOT` operators so far.
    operators: usize,
}

impl Parser<'_> {
    fn token(&self) -> &Token {
        // `tokenize` always ends with Eof, and `advance` never passes it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn kind(&self) -> TokenKind {
        self.token().kind
    }

    fn kind_at(&self, ahead: usize) -> TokenKind {
        self.tokens
            .get(self.pos + ahead)
            .map_or(TokenKind::Eof, |t| t.kind)
    }

    fn text(&self) -> &str {
        self.token().text(self.text)
    }

    fn advance(&mut self) {
        if self.kind() != TokenKind::Eof {
            self.pos += 1;
        }
    }

    fn eat(&mut self, kind: TokenKind) -> bool {
        let here = self.kind() == kind;
        if here {
            self.advance();
        }
        here
    }

    fn is_keyword(&self, word: &str) -> bool {
        self.kind() == TokenKind::Ident && self.text().eq_ignore_ascii_case(word)
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        let here = self.is_keyword(word);
        if here {
            self.advance();
        }
        here
    }

    fn unexpected(&self) -> Error {
        match self.kind() {
            TokenKind::Eof => malformed("Unexpected end of statement"),
            TokenKind::Unknown if self.text().starts_with(['\'', '"']) => malformed(format!(
                "Unterminated quote starting at {}",
                self.token().span.start
            )),
            _ => malformed(format!(
                "Unexpected token: {} at position {}",
                self.text(),
                self.token().span.start
            )),
        }
    }

    fn expect(&mut self, kind: TokenKind) -> Result<()> {
        if self.eat(kind) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<()> {
        if self.eat_keyword(word) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// Runs `f` one nesting level deeper, refusing past [`MAX_NESTING`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_NESTING {
            return Err(malformed(format!(
                "Statement nests more than {MAX_NESTING} levels deep"
            )));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn statement(&mut self) -> Result<Statement> {
        if self.eat_keyword("SELECT") {
            self.select().map(Statement::Select)
        } else if self.eat_keyword("INSERT") {
            self.insert().map(Statement::Insert)
        } else if self.eat_keyword("UPDATE") {
            self.update().map(Statement::Update)
        } else if self.eat_keyword("DELETE") {
            self.delete().map(Statement::Delete)
        } else if self.eat_keyword("EXISTS") {
            self.expect(TokenKind::LParen)?;
            self.expect_keyword("SELECT")?;
            let select = self.select()?;
            self.expect(TokenKind::RParen)?;
            Ok(Statement::Exists(select))
        } else if self.kind() == TokenKind::Eof {
            Err(malformed("Unexpected end of statement"))
        } else {
            Err(malformed("Expected data manipulation"))
        }
    }

    fn select(&mut self) -> Result<Select> {
        let mut projection = Vec::new();
        if !self.eat(TokenKind::Star) {
            loop {
                projection.push(self.path()?);
                if !self.eat(TokenKind::Comma) {
                    break;
                }
            }
        }
        self.expect_keyword("FROM")?;
        let table = self.name()?;
        let index = if self.eat(TokenKind::Dot) {
            Some(self.name()?)
        } else {
            None
        };
        let condition = if self.eat_keyword("WHERE") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.eat_keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                let path = self.path()?;
                let descending = if self.eat_keyword("DESC") {
                    true
                } else {
                    self.eat_keyword("ASC");
                    false
                };
                order_by.push((path, descending));
                if !self.eat(TokenKind::Comma) {
                    break;
                }
            }
        }
        Ok(Select {
            projection,
            table,
            index,
            condition,
            order_by,
        })
    }

    fn insert(&mut self) -> Result<Insert> {
        self.expect_keyword("INTO")?;
        let table = self.name()?;
        self.expect_keyword("VALUE")?;
        let at = self.token().span.start;
        match self.value()? {
            AttributeValue::M(item) => Ok(Insert { table, item }),
            _ => Err(malformed(format!(
                "INSERT takes one item, a map literal {{...}}, at position {at}"
            ))),
        }
    }

    fn update(&mut self) -> Result<UpdateStatement> {
        let table = self.name()?;
        let mut update = Update::default();
        let mut clauses = 0;
        loop {
            if self.eat_keyword("SET") {
                loop {
                    self.assignment(&mut update)?;
                    if !self.eat(TokenKind::Comma) {
                        break;
                    }
                }
            } else if self.eat_keyword("REMOVE") {
                loop {
                    update.remove.push(self.path()?);
                    if !self.eat(TokenKind::Comma) {
                        break;
                    }
                }
            } else {
                break;
            }
            clauses += 1;
        }
        if clauses == 0 {
            return Err(self.unexpected());
        }
        self.expect_keyword("WHERE")?;
        let condition = self.condition()?;
        let returning = self.returning()?;
        Ok(UpdateStatement {
            table,
            update,
            condition,
            returning,
        })
    }

    fn delete(&mut self) -> Result<Delete> {
        self.expect_keyword("FROM")?;
        let table = self.name()?;
        self.expect_keyword("WHERE")?;
        let condition = self.condition()?;
        let returning = self.returning()?;
        Ok(Delete {
            table,
            condition,
            returning,
        })
    }

    fn returning(&mut self) -> Result<Option<Returning>> {
        if !self.eat_keyword("RETURNING") {
            return Ok(None);
        }
        let all = if self.eat_keyword("ALL") {
            true
        } else if self.eat_keyword("MODIFIED") {
            false
        } else {
            return Err(self.unexpected());
        };
        let old = if self.eat_keyword("OLD") {
            true
        } else if self.eat_keyword("NEW") {
            false
        } else {
            return Err(self.unexpected());
        };
        self.expect(TokenKind::Star)?;
        Ok(Some(match (all, old) {
            (true, true) => Returning::AllOld,
            (false, true) => Returning::ModifiedOld,
            (true, false) => Returning::AllNew,
            (false, false) => Returning::ModifiedNew,
        }))
    }

    /// `path = ...`, added to `update`: `set_add` and `set_delete` become its `ADD` and
    /// `DELETE` actions, anything else a `SET`.
    fn assignment(&mut self, update: &mut Update) -> Result<()> {
        let path = self.path()?;
        self.expect(TokenKind::Eq)?;
        for (function, add) in [("set_add", true), ("set_delete", false)] {
            if self.is_keyword(function) && self.kind_at(1) == TokenKind::LParen {
                self.advance();
                self.advance();
                let at = self.token().span.start;
                let target = self.path()?;
                if target != path {
                    return Err(malformed(format!(
                        "{function} must name the path it assigns ({path}), not {target}, at position {at}"
                    )));
                }
                self.expect(TokenKind::Comma)?;
                let value = self.value()?;
                self.expect(TokenKind::RParen)?;
                if add {
                    update.add.push((path, value));
                } else {
                    update.delete.push((path, value));
                }
                return Ok(());
            }
        }
        let first = self.set_operand()?;
        let value = if self.eat(TokenKind::Plus) {
            SetValue::Plus(first, self.set_operand()?)
        } else if self.eat(TokenKind::Minus) {
            SetValue::Minus(first, self.set_operand()?)
        } else {
            SetValue::Operand(first)
        };
        update.set.push((path, value));
        Ok(())
    }

    fn set_operand(&mut self) -> Result<SetOperand> {
        self.nested(|p| {
            if p.kind_at(1) == TokenKind::LParen && p.is_keyword("list_append") {
                p.advance();
                p.advance();
                let a = p.set_operand()?;
                p.expect(TokenKind::Comma)?;
                let b = p.set_operand()?;
                p.expect(TokenKind::RParen)?;
                return Ok(SetOperand::ListAppend(Box::new(a), Box::new(b)));
            }
            if p.kind_at(1) == TokenKind::LParen && p.is_keyword("if_not_exists") {
                p.advance();
                p.advance();
                let path = p.path()?;
                p.expect(TokenKind::Comma)?;
                let fallback = p.set_operand()?;
                p.expect(TokenKind::RParen)?;
                return Ok(SetOperand::IfNotExists(path, Box::new(fallback)));
            }
            if p.starts_value() {
                return p.value().map(SetOperand::Value);
            }
            p.path().map(SetOperand::Path)
        })
    }

    /// Counts one `AND`, `OR` or `NOT`, refusing past [`MAX_OPERATORS`]: chains are built
    /// in loops, and this is what bounds their length (and so every later walk of the tree).
    fn operator(&mut self) -> Result<()> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(malformed(format!(
                "A statement may have at most {MAX_OPERATORS} AND, OR and NOT operators"
            )));
        }
        Ok(())
    }

    fn condition(&mut self) -> Result<Condition> {
        self.nested(|p| {
            let mut left = p.and()?;
            while p.eat_keyword("OR") {
                p.operator()?;
                let right = p.and()?;
                left = Condition::Or(Box::new(left), Box::new(right));
            }
            Ok(left)
        })
    }

    fn and(&mut self) -> Result<Condition> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            self.operator()?;
            let right = self.not()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition> {
        if self.eat_keyword("NOT") {
            self.operator()?;
            return self.nested(|p| p.not().map(|c| Condition::Not(Box::new(c))));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Condition> {
        if self.eat(TokenKind::LParen) {
            let c = self.condition()?;
            self.expect(TokenKind::RParen)?;
            return Ok(c);
        }
        if self.kind_at(1) == TokenKind::LParen
            && let Some(f) = self.function()?
        {
            return Ok(Condition::Function(f));
        }
        let operand = self.operand()?;
        let comparator = match self.kind() {
            TokenKind::Eq => Some(Comparator::Eq),
            TokenKind::Ne => Some(Comparator::Ne),
            TokenKind::Lt => Some(Comparator::Lt),
            TokenKind::Le => Some(Comparator::Le),
            TokenKind::Gt => Some(Comparator::Gt),
            TokenKind::Ge => Some(Comparator::Ge),
            _ => None,
        };
        if let Some(op) = comparator {
            self.advance();
            let right = self.operand()?;
            return Ok(Condition::Compare {
                op,
                left: operand,
                right,
            });
        }
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            self.expect_keyword("MISSING")?;
            let Operand::Path(path) = operand else {
                return Err(malformed("IS MISSING applies to a path"));
            };
            return Ok(Condition::Function(if negated {
                Function::AttributeExists(path)
            } else {
                Function::AttributeNotExists(path)
            }));
        }
        let negated = self.eat_keyword("NOT");
        let c = if self.eat_keyword("BETWEEN") {
            let low = self.operand()?;
            self.expect_keyword("AND")?;
            let high = self.operand()?;
            Condition::Between { operand, low, high }
        } else if self.eat_keyword("IN") {
            let close = if self.eat(TokenKind::LBracket) {
                TokenKind::RBracket
            } else {
                self.expect(TokenKind::LParen)?;
                TokenKind::RParen
            };
            let mut list = Vec::new();
            loop {
                list.push(self.operand()?);
                if !self.eat(TokenKind::Comma) {
                    break;
                }
            }
            self.expect(close)?;
            if list.len() > MAX_IN_OPERANDS {
                return Err(malformed(format!(
                    "IN takes at most {MAX_IN_OPERANDS} values, got {}",
                    list.len()
                )));
            }
            Condition::In { operand, list }
        } else {
            return Err(self.unexpected());
        };
        Ok(if negated {
            Condition::Not(Box::new(c))
        } else {
            c
        })
    }

    /// A boolean function call at the current token, if it names one.
    fn function(&mut self) -> Result<Option<Function>> {
        let name = self.text().to_ascii_lowercase();
        if self.kind() != TokenKind::Ident
            || !matches!(
                name.as_str(),
                "begins_with"
                    | "contains"
                    | "attribute_type"
                    | "attribute_exists"
                    | "attribute_not_exists"
            )
        {
            return Ok(None);
        }
        self.advance();
        self.advance();
        let path = self.path()?;
        let f = match name.as_str() {
            "attribute_exists" => Function::AttributeExists(path),
            "attribute_not_exists" => Function::AttributeNotExists(path),
            _ => {
                self.expect(TokenKind::Comma)?;
                let at = self.token().span.start;
                let arg = self.operand()?;
                match name.as_str() {
                    "begins_with" => Function::BeginsWith(path, arg),
                    "contains" => Function::Contains(path, arg),
                    _ => match arg {
                        Operand::Value(AttributeValue::S(t))
                            if TYPE_NAMES.contains(&t.as_str()) =>
                        {
                            Function::AttributeType(path, t)
                        }
                        _ => {
                            return Err(malformed(format!(
                                "attribute_type takes a type name ({}) at position {at}",
                                TYPE_NAMES.join(", ")
                            )));
                        }
                    },
                }
            }
        };
        self.expect(TokenKind::RParen)?;
        Ok(Some(f))
    }

    fn operand(&mut self) -> Result<Operand> {
        if self.starts_value() {
            return self.value().map(Operand::Value);
        }
        if self.kind_at(1) == TokenKind::LParen && self.is_keyword("size") {
            self.advance();
            self.advance();
            let path = self.path()?;
            self.expect(TokenKind::RParen)?;
            return Ok(Operand::Size(path));
        }
        self.path().map(Operand::Path)
    }

    fn starts_value(&self) -> bool {
        match self.kind() {
            TokenKind::String
            | TokenKind::Number
            | TokenKind::Minus
            | TokenKind::Param
            | TokenKind::LBracket
            | TokenKind::LBrace
            | TokenKind::LSet => true,
            TokenKind::Ident => ["TRUE", "FALSE", "NULL"]
                .iter()
                .any(|w| self.text().eq_ignore_ascii_case(w)),
            _ => false,
        }
    }

    fn name(&mut self) -> Result<String> {
        let name = match self.kind() {
            TokenKind::Ident => self.text().to_string(),
            TokenKind::QuotedIdent => self.token().unquoted(self.text),
            _ => return Err(self.unexpected()),
        };
        if name.is_empty() {
            return Err(malformed(format!(
                "Empty name at position {}",
                self.token().span.start
            )));
        }
        self.advance();
        Ok(name)
    }

    fn path(&mut self) -> Result<Path> {
        let mut elements = vec![PathElement::Attribute(self.name()?)];
        loop {
            if self.eat(TokenKind::Dot) {
                elements.push(PathElement::Attribute(self.name()?));
            } else if self.eat(TokenKind::LBracket) {
                let index = match self.kind() {
                    TokenKind::Number => self.text().parse::<u32>().ok(),
                    _ => None,
                };
                let Some(index) = index else {
                    return Err(self.unexpected());
                };
                self.advance();
                self.expect(TokenKind::RBracket)?;
                elements.push(PathElement::Index(index));
            } else {
                break;
            }
            if elements.len() > MAX_PATH_DEPTH {
                return Err(malformed(format!(
                    "A path has more than {MAX_PATH_DEPTH} steps"
                )));
            }
        }
        Ok(Path { elements })
    }

    fn value(&mut self) -> Result<AttributeValue> {
        self.nested(|p| {
            let at = p.token().span.start;
            let value = match p.kind() {
                TokenKind::String => AttributeValue::S(p.token().unquoted(p.text)),
                TokenKind::Number => AttributeValue::N(number(p.text(), at)?),
                TokenKind::Minus if p.kind_at(1) == TokenKind::Number => {
                    p.advance();
                    AttributeValue::N(number(&format!("-{}", p.text()), at)?)
                }
                TokenKind::Param => {
                    let value = p
                        .params
                        .get(p.used)
                        .cloned()
                        .ok_or_else(|| Error::validation(PARAMETER_COUNT))?;
                    p.used += 1;
                    value
                }
                TokenKind::Ident if p.text().eq_ignore_ascii_case("TRUE") => {
                    AttributeValue::Bool(true)
                }
                TokenKind::Ident if p.text().eq_ignore_ascii_case("FALSE") => {
                    AttributeValue::Bool(false)
                }
                TokenKind::Ident if p.text().eq_ignore_ascii_case("NULL") => AttributeValue::Null,
                TokenKind::LBracket => {
                    p.advance();
                    let list = p.values(TokenKind::RBracket)?;
                    return Ok(AttributeValue::L(list));
                }
                TokenKind::LSet => {
                    p.advance();
                    let members = p.values(TokenKind::RSet)?;
                    return set(members, at);
                }
                TokenKind::LBrace => {
                    p.advance();
                    return p.map().map(AttributeValue::M);
                }
                _ => return Err(p.unexpected()),
            };
            p.advance();
            Ok(value)
        })
    }

    /// Comma-separated values up to and including `close`; none at all is allowed.
    fn values(&mut self, close: TokenKind) -> Result<Vec<AttributeValue>> {
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(self.value()?);
            if !self.eat(TokenKind::Comma) {
                break;
            }
        }
        self.expect(close)?;
        Ok(out)
    }

    /// `'key': value, ...}` after the opening brace.
    fn map(&mut self) -> Result<BTreeMap<String, AttributeValue>> {
        let mut out = BTreeMap::new();
        if self.eat(TokenKind::RBrace) {
            return Ok(out);
        }
        loop {
            let at = self.token().span.start;
            let key = match self.kind() {
                TokenKind::String | TokenKind::QuotedIdent => self.token().unquoted(self.text),
                _ => return Err(self.unexpected()),
            };
            self.advance();
            self.expect(TokenKind::Colon)?;
            let value = self.value()?;
            if out.insert(key.clone(), value).is_some() {
                return Err(malformed(format!(
                    "Duplicate key '{key}' in a map at position {at}"
                )));
            }
            if !self.eat(TokenKind::Comma) {
                break;
            }
        }
        self.expect(TokenKind::RBrace)?;
        Ok(out)
    }
}

/// The type names `attribute_type` accepts.
const TYPE_NAMES: [&str; 10] = ["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"];

fn number(text: &str, at: usize) -> Result<Number> {
    Number::parse(text)
        .map_err(|e| malformed(format!("Invalid number {text} at position {at}: {e}")))
}

/// A set literal's members as a string, number or binary set.
fn set(members: Vec<AttributeValue>, at: usize) -> Result<AttributeValue> {
    let bad = |why: &str| malformed(format!("{why} in the set at position {at}"));
    let count = members.len();
    let (mut ss, mut ns, mut bs) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for member in members {
        match member {
            AttributeValue::S(s) => ss.insert(s),
            AttributeValue::N(n) => ns.insert(n),
            AttributeValue::B(b) => bs.insert(b),
            _ => return Err(bad("Only strings, numbers and binaries can be members")),
        };
    }
    let value = match (ss.is_empty(), ns.is_empty(), bs.is_empty()) {
        (true, true, true) => return Err(bad("An empty set is not a value")),
        (false, true, true) => AttributeValue::Ss(ss),
        (true, false, true) => AttributeValue::Ns(ns),
        (true, true, false) => AttributeValue::Bs(bs),
        _ => return Err(bad("Mixed types")),
    };
    // Members equal as values (`1` and `1.0`) collapsed into one.
    let distinct = match &value {
        AttributeValue::Ss(s) => s.len(),
        AttributeValue::Ns(s) => s.len(),
        AttributeValue::Bs(s) => s.len(),
        _ => count,
    };
    if distinct != count {
        return Err(bad("Duplicate members"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: i64) -> AttributeValue {
        AttributeValue::N(Number::from_i64(v))
    }

    fn path(names: &[&str]) -> Path {
        Path {
            elements: names
                .iter()
                .map(|n| PathElement::Attribute((*n).into()))
                .collect(),
        }
    }

    fn eq(p: &str, v: AttributeValue) -> Condition {
        Condition::Compare {
            op: Comparator::Eq,
            left: Operand::Path(path(&[p])),
            right: Operand::Value(v),
        }
    }

    #[test]
    fn select_with_key_condition_projection_and_order() {
        let parsed = parse(
            r#"select "Title", info.rating[0] from "Movies"."ByYear" where year = ? and begins_with(title, 'The') order by title desc;"#,
            &[n(1999)],
        )
        .expect("parses");
        let Statement::Select(sel) = parsed else {
            panic!("not a select: {parsed:?}");
        };
        assert_eq!(sel.table, "Movies");
        assert_eq!(sel.index.as_deref(), Some("ByYear"));
        assert_eq!(
            sel.projection,
            vec![
                path(&["Title"]),
                Path {
                    elements: vec![
                        PathElement::Attribute("info".into()),
                        PathElement::Attribute("rating".into()),
                        PathElement::Index(0)
                    ]
                }
            ]
        );
        assert_eq!(
            sel.condition,
            Some(Condition::And(
                Box::new(eq("year", n(1999))),
                Box::new(Condition::Function(Function::BeginsWith(
                    path(&["title"]),
                    Operand::Value(s("The"))
                )))
            ))
        );
        assert_eq!(sel.order_by, vec![(path(&["title"]), true)]);
    }

    #[test]
    fn literals_of_every_kind() {
        let parsed = parse(
            "INSERT INTO T VALUE {'k': 'a''b', 'n': -1.5e2, 'b': true, 'z': null, \
             'l': [1, 'x', []], 'm': {\"q\": {}}, 'ss': <<'x', 'y'>>, 'ns': <<1, 2>>, 'p': ?}",
            &[AttributeValue::B(vec![1, 2])],
        )
        .expect("parses");
        let Statement::Insert(insert) = parsed else {
            panic!("not an insert");
        };
        assert_eq!(insert.item["k"], s("a'b"));
        assert_eq!(
            insert.item["n"],
            AttributeValue::N(Number::parse("-150").expect("number"))
        );
        assert_eq!(insert.item["b"], AttributeValue::Bool(true));
        assert_eq!(insert.item["z"], AttributeValue::Null);
        assert_eq!(
            insert.item["l"],
            AttributeValue::L(vec![n(1), s("x"), AttributeValue::L(vec![])])
        );
        assert_eq!(
            insert.item["ss"],
            AttributeValue::Ss(["x".to_string(), "y".to_string()].into())
        );
        assert_eq!(insert.item["p"], AttributeValue::B(vec![1, 2]));
    }

    #[test]
    fn update_and_delete() {
        let parsed = parse(
            "UPDATE \"T\" SET a = a + 1, b = list_append(b, [2]) SET tags = set_add(tags, <<'x'>>) \
             REMOVE old.x WHERE pk = 'k' AND sk = 2 RETURNING MODIFIED NEW *",
            &[],
        )
        .expect("parses");
        let Statement::Update(u) = parsed else {
            panic!("not an update");
        };
        assert_eq!(u.update.set.len(), 2);
        assert_eq!(
            u.update.add,
            vec![(
                path(&["tags"]),
                AttributeValue::Ss(["x".to_string()].into())
            )]
        );
        assert_eq!(u.update.remove, vec![path(&["old", "x"])]);
        assert_eq!(u.returning, Some(Returning::ModifiedNew));
        let parsed =
            parse("DELETE FROM T WHERE pk = 'k' AND x IS NOT MISSING", &[]).expect("parses");
        assert!(matches!(parsed, Statement::Delete(_)));
    }

    #[test]
    fn errors_name_what_was_wrong() {
        let msg = |text: &str, params: &[AttributeValue]| {
            parse(text, params).expect_err(text).to_string()
        };
        assert!(msg("CREATE TABLE x", &[]).contains("Expected data manipulation"));
        assert!(msg("SELECT * FROM", &[]).contains("Unexpected end of statement"));
        assert!(
            msg("SELECT * FROM T WHERE a = = 1", &[])
                .contains("Unexpected token: = at position 26")
        );
        assert!(msg("SELECT * FROM T WHERE a = 'open", &[]).contains("Unterminated quote"));
        assert_eq!(msg("SELECT * FROM T WHERE a = ?", &[]), PARAMETER_COUNT);
        assert_eq!(msg("SELECT * FROM T", &[n(1)]), PARAMETER_COUNT);
        assert!(msg("INSERT INTO T VALUE {'s': <<1, 'x'>>}", &[]).contains("Mixed types"));
        assert!(msg("INSERT INTO T VALUE {'s': <<1, 1.0>>}", &[]).contains("Duplicate members"));
        assert!(msg("UPDATE T SET a = 1", &[]).contains("Unexpected end of statement"));
        let deep = format!(
            "SELECT * FROM T WHERE {}a = 1{}",
            "(".repeat(200),
            ")".repeat(200)
        );
        assert!(msg(&deep, &[]).contains("nests more than"));
        let long = format!("SELECT * FROM T WHERE a = 0{}", " AND a = 1".repeat(301));
        assert!(msg(&long, &[]).contains("at most 300"));
        let fine = format!("SELECT * FROM T WHERE a = 0{}", " AND a = 1".repeat(300));
        assert!(parse(&fine, &[]).is_ok());
    }
}
