//! The recursive-descent parser for DynamoDB's condition grammar, and the
//! [`ExpressionContext`] through which it resolves `#name` and `:value` placeholders.
//!
//! Precedence, loosest first: `OR`, `AND`, `NOT`, then a primary (a parenthesized condition, a
//! function, or a comparison / `BETWEEN` / `IN` on operands). Comparisons do not chain, so the
//! relative precedence DynamoDB documents among `=`, `IN` and `BETWEEN` never needs a decision.
//!
//! Hostile input is bounded: the text is at most [`MAX_EXPRESSION_BYTES`], parenthesis, `NOT`
//! and function nesting at most [`MAX_NESTING`] levels deep, so recursion depth is bounded too.
//! `Parser`'s building blocks (`path`, `operand`, `condition`) are `pub(super)` so the
//! projection and update parsers can reuse them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use super::ast::{Comparator, Condition, Function, Operand, Path, PathElement};
use super::lexer::{Token, TokenKind, is_reserved_word, tokenize};
use crate::model::AttributeValue;
use crate::{Error, Result};

/// DynamoDB's limit on the length of one expression, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// How deeply parentheses, `NOT` and function calls may nest.
pub const MAX_NESTING: usize = 64;
/// DynamoDB's limit on document path nesting (elements in one path).
pub const MAX_PATH_DEPTH: usize = 32;
/// DynamoDB's limit on the candidates of one `IN`.
pub const MAX_IN_OPERANDS: usize = 100;

/// The `ExpressionAttributeNames` and `ExpressionAttributeValues` of one request, and which of
/// them its expressions used. One context is shared by all the expressions of a request, then
/// [`ExpressionContext::check_all_used`] rejects placeholders that none of them referenced.
#[derive(Debug)]
pub struct ExpressionContext<'a> {
    names: Option<&'a BTreeMap<String, String>>,
    values: Option<&'a BTreeMap<String, AttributeValue>>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

impl<'a> ExpressionContext<'a> {
    /// A context over a request's placeholder maps; `None` when the request has no such map.
    /// A map that is present but empty is an error, as in DynamoDB.
    pub fn new(
        names: Option<&'a BTreeMap<String, String>>,
        values: Option<&'a BTreeMap<String, AttributeValue>>,
    ) -> Result<Self> {
        if names.is_some_and(BTreeMap::is_empty) {
            return Err(Error::validation(
                "ExpressionAttributeNames must not be empty",
            ));
        }
        if values.is_some_and(BTreeMap::is_empty) {
            return Err(Error::validation(
                "ExpressionAttributeValues must not be empty",
            ));
        }
        // A key that no expression could name is refused before any expression is parsed.
        let well_formed = |key: &str, sigil: char| {
            key.strip_prefix(sigil).is_some_and(|rest| {
                !rest.is_empty() && rest.chars().all(super::lexer::is_name_char)
            })
        };
        for (what, keys, sigil) in [
            (
                "ExpressionAttributeNames",
                names.map(|m| m.keys().collect::<Vec<_>>()),
                '#',
            ),
            (
                "ExpressionAttributeValues",
                values.map(|m| m.keys().collect()),
                ':',
            ),
        ] {
            if let Some(bad) = keys.into_iter().flatten().find(|k| !well_formed(k, sigil)) {
                return Err(Error::validation(format!(
                    "{what} contains invalid key: Syntax error; key: \"{bad}\""
                )));
            }
        }
        Ok(ExpressionContext {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
        })
    }

    /// The attribute name `placeholder` (`#n`) stands for, recording the use.
    pub(super) fn name(&mut self, placeholder: &str) -> Option<String> {
        let name = self.names?.get(placeholder)?.clone();
        self.used_names.insert(placeholder.to_string());
        Some(name)
    }

    /// The value `placeholder` (`:v`) stands for, recording the use.
    pub(super) fn value(&mut self, placeholder: &str) -> Option<AttributeValue> {
        let value = self.values?.get(placeholder)?.clone();
        self.used_values.insert(placeholder.to_string());
        Some(value)
    }

    /// Fails if a name or value was provided that no expression parsed so far used. Call it
    /// once, after every expression of the request has been parsed.
    pub fn check_all_used(&self) -> Result<()> {
        fn unused<V>(map: Option<&BTreeMap<String, V>>, used: &BTreeSet<String>) -> Vec<String> {
            map.into_iter()
                .flat_map(BTreeMap::keys)
                .filter(|key| !used.contains(*key))
                .cloned()
                .collect()
        }
        for (what, unused) in [
            (
                "ExpressionAttributeNames",
                unused(self.names, &self.used_names),
            ),
            (
                "ExpressionAttributeValues",
                unused(self.values, &self.used_values),
            ),
        ] {
            if !unused.is_empty() {
                return Err(Error::validation(format!(
                    "Value provided in {what} unused in expressions: keys: {{{}}}",
                    unused.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Parses a condition expression (`ConditionExpression`, `FilterExpression`,
/// `KeyConditionExpression`). `kind` names the request parameter in error messages.
pub fn parse_condition(kind: &str, text: &str, ctx: &mut ExpressionContext) -> Result<Condition> {
    let mut parser = Parser::new(kind, text, ctx)?;
    let condition = parser.condition()?;
    parser.expect_end()?;
    Ok(condition)
}

/// The names of the boolean condition functions (function names are case-sensitive).
pub(super) const CONDITION_FUNCTIONS: &[&str] = &[
    "attribute_exists",
    "attribute_not_exists",
    "attribute_type",
    "begins_with",
    "contains",
];

/// The type names `attribute_type` accepts.
const TYPE_NAMES: &[&str] = &["S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"];

/// A parser over one expression's tokens. `tokens` ends with `Eof` and `pos` never passes
/// it, so the parser stays on `Eof` at the end however many tokens a rule asks for.
pub(super) struct Parser<'t, 'c, 'a> {
    kind: &'t str,
    text: &'t str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    ctx: &'c mut ExpressionContext<'a>,
}

impl<'t, 'c, 'a> Parser<'t, 'c, 'a> {
    /// Checks the expression's size and tokenizes it.
    pub(super) fn new(
        kind: &'t str,
        text: &'t str,
        ctx: &'c mut ExpressionContext<'a>,
    ) -> Result<Self> {
        let mut parser = Parser {
            kind,
            text,
            tokens: Vec::new(),
            pos: 0,
            depth: 0,
            ctx,
        };
        // Refuse oversized input before spending any work on it.
        if text.len() > MAX_EXPRESSION_BYTES {
            return Err(parser.error(format!(
                "Expression size has exceeded the maximum allowed size; expression size: {}",
                text.len()
            )));
        }
        parser.tokens = tokenize(text);
        if parser.peek().kind == TokenKind::Eof {
            return Err(parser.error("The expression can not be empty;"));
        }
        Ok(parser)
    }

    // ---- grammar -------------------------------------------------------------------------

    /// `condition ::= conjunction (OR conjunction)*`
    pub(super) fn condition(&mut self) -> Result<Condition> {
        let mut left = self.conjunction()?;
        while self.eat_keyword("OR") {
            let right = self.conjunction()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `conjunction ::= negation (AND negation)*`
    fn conjunction(&mut self) -> Result<Condition> {
        let mut left = self.negation()?;
        while self.eat_keyword("AND") {
            let right = self.negation()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `negation ::= NOT negation | primary`
    fn negation(&mut self) -> Result<Condition> {
        if self.eat_keyword("NOT") {
            let inner = self.nested(Self::negation)?;
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.primary()
    }

    /// `primary ::= ( condition ) | function | operand comparison`
    fn primary(&mut self) -> Result<Condition> {
        if self.eat(TokenKind::LParen) {
            let start = self.pos;
            let inner = self.nested(Self::condition)?;
            // `((x))`: the inner group is all the outer one holds, which DynamoDB refuses.
            if self.peek().kind == TokenKind::RParen
                && self.tokens.get(start).map(|t| t.kind) == Some(TokenKind::LParen)
                && self.closing(start) == self.pos.checked_sub(1)
            {
                return Err(self.error("The expression has redundant parentheses;"));
            }
            self.expect(TokenKind::RParen)?;
            return Ok(inner);
        }
        let condition = if self.at_call() && self.token_text(self.peek()) != "size" {
            self.function()?
        } else {
            let operand = self.operand()?;
            self.comparison(operand)?
        };
        self.check_distinct(&condition)?;
        Ok(condition)
    }

    /// The index of the `)` that closes the `(` at `open`.
    fn closing(&self, open: usize) -> Option<usize> {
        let mut depth = 0usize;
        for (i, token) in self.tokens.iter().enumerate().skip(open) {
            match token.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// DynamoDB refuses a comparison or function whose first operand, a document path, appears
    /// again among its other operands (`a = a`, `contains(a, a)`).
    fn check_distinct(&self, condition: &Condition) -> Result<()> {
        // Key conditions keep their own, narrower messages.
        if self.kind == "KeyConditionExpression" {
            return Ok(());
        }
        let (name, first, rest): (String, &Operand, Vec<&Operand>) = match condition {
            Condition::Compare { op, left, right } => (op.to_string(), left, vec![right]),
            Condition::Between { operand, low, high } => {
                ("BETWEEN".into(), operand, vec![low, high])
            }
            Condition::In { operand, list } => ("IN".into(), operand, list.iter().collect()),
            Condition::Function(
                f @ (Function::BeginsWith(path, o) | Function::Contains(path, o)),
            ) => {
                return match o {
                    Operand::Path(other) if other == path => Err(self.error(format!(
                        "The first operand must be distinct from the remaining operands for this \
                         operator or function; operator: {}, first operand: {}",
                        f.name(),
                        super::update::PathList(path)
                    ))),
                    _ => Ok(()),
                };
            }
            _ => return Ok(()),
        };
        match first {
            Operand::Path(path) if rest.contains(&first) => Err(self.error(format!(
                "The first operand must be distinct from the remaining operands for this \
                 operator or function; operator: {name}, first operand: {}",
                super::update::PathList(path)
            ))),
            _ => Ok(()),
        }
    }

    /// What follows the first operand of a comparison, `BETWEEN` or `IN`.
    fn comparison(&mut self, operand: Operand) -> Result<Condition> {
        if let Some(op) = comparator(self.peek().kind) {
            self.bump();
            let right = self.operand()?;
            return Ok(Condition::Compare {
                op,
                left: operand,
                right,
            });
        }
        if self.eat_keyword("BETWEEN") {
            let low = self.operand()?;
            self.expect_keyword("AND")?;
            let high = self.operand()?;
            return Ok(Condition::Between { operand, low, high });
        }
        if self.eat_keyword("IN") {
            self.expect(TokenKind::LParen)?;
            let mut list = vec![self.operand()?];
            while self.eat(TokenKind::Comma) {
                list.push(self.operand()?);
            }
            self.expect(TokenKind::RParen)?;
            if list.len() > MAX_IN_OPERANDS {
                return Err(self.error(format!(
                    "The IN operator is provided with too many operands; number of operands: {}",
                    list.len()
                )));
            }
            return Ok(Condition::In { operand, list });
        }
        Err(self.syntax_error())
    }

    /// A boolean function call; the current token is its name, followed by `(`.
    fn function(&mut self) -> Result<Condition> {
        let name = self.call_name(CONDITION_FUNCTIONS)?;
        let args = self.call_args()?;
        let function = match name {
            "attribute_exists" => {
                let [path] = self.arity(name, args)?;
                Function::AttributeExists(self.require_path(name, path)?)
            }
            "attribute_not_exists" => {
                let [path] = self.arity(name, args)?;
                Function::AttributeNotExists(self.require_path(name, path)?)
            }
            "attribute_type" => {
                let [path, type_name] = self.arity(name, args)?;
                Function::AttributeType(self.require_path(name, path)?, self.type_name(type_name)?)
            }
            "begins_with" => {
                let [path, prefix] = self.arity(name, args)?;
                Function::BeginsWith(self.require_path(name, path)?, prefix)
            }
            // `call_name` admitted only CONDITION_FUNCTIONS, so this is `contains`.
            _ => {
                let [path, member] = self.arity(name, args)?;
                Function::Contains(self.require_path(name, path)?, member)
            }
        };
        Ok(Condition::Function(function))
    }

    /// `operand ::= path | :value | size(path)`
    pub(super) fn operand(&mut self) -> Result<Operand> {
        match self.peek().kind {
            TokenKind::ValuePlaceholder => {
                let token = self.bump();
                let placeholder = self.token_text(&token);
                match self.ctx.value(placeholder) {
                    Some(value) => Ok(Operand::Value(value)),
                    None => Err(self.error(format!(
                        "An expression attribute value used in expression is not defined; \
                         attribute value: {placeholder}"
                    ))),
                }
            }
            TokenKind::Ident if self.at_call() => {
                let name = self.token_text(self.peek());
                if CONDITION_FUNCTIONS.contains(&name) {
                    return Err(self.error(format!(
                        "The function is not allowed to be used this way in an expression; \
                         function: {name}"
                    )));
                }
                let name = self.call_name(&["size"])?;
                let args = self.call_args()?;
                let [path] = self.arity(name, args)?;
                Ok(Operand::Size(self.require_path(name, path)?))
            }
            TokenKind::Ident | TokenKind::NamePlaceholder => Ok(Operand::Path(self.path()?)),
            _ => Err(self.syntax_error()),
        }
    }

    /// `path ::= name ( . name | [ integer ] )*`
    pub(super) fn path(&mut self) -> Result<Path> {
        let mut elements = vec![self.path_name()?];
        loop {
            if self.eat(TokenKind::Dot) {
                elements.push(self.path_name()?);
            } else if self.eat(TokenKind::LBracket) {
                // Digits that overflow an index are as wrong as any other misplaced token.
                let index = (self.peek().kind == TokenKind::Integer)
                    .then(|| self.token_text(self.peek()).parse().ok())
                    .flatten()
                    .ok_or_else(|| self.syntax_error())?;
                self.bump();
                self.expect(TokenKind::RBracket)?;
                elements.push(PathElement::Index(index));
            } else {
                return Ok(Path { elements });
            }
            if elements.len() > MAX_PATH_DEPTH {
                return Err(self.error(format!(
                    "The document path has too many nesting levels; nesting levels: {}",
                    elements.len()
                )));
            }
        }
    }

    /// One attribute name in a path: a non-reserved identifier or a `#name` placeholder.
    fn path_name(&mut self) -> Result<PathElement> {
        let token = self.peek().clone();
        let text = self.token_text(&token);
        let name = match token.kind {
            TokenKind::Ident if is_reserved_word(text) => {
                return Err(self.error(format!(
                    "Attribute name is a reserved keyword; reserved keyword: {text}"
                )));
            }
            TokenKind::Ident => text.to_string(),
            TokenKind::NamePlaceholder => match self.ctx.name(text) {
                Some(name) => name,
                None => {
                    return Err(self.error(format!(
                        "An expression attribute name used in the document path is not \
                         defined; attribute name: {text}"
                    )));
                }
            },
            _ => return Err(self.syntax_error()),
        };
        self.bump();
        Ok(PathElement::Attribute(name))
    }

    /// The value of a `:value` placeholder, recorded as used.
    pub(super) fn ctx_value(&mut self, placeholder: &str) -> Option<AttributeValue> {
        self.ctx.value(placeholder)
    }

    // ---- function-call helpers -------------------------------------------------------------

    /// Whether the current token starts a function call: a name followed by `(`.
    pub(super) fn at_call(&self) -> bool {
        self.peek().kind == TokenKind::Ident
            && self.tokens.get(self.pos + 1).map(|t| t.kind) == Some(TokenKind::LParen)
    }

    /// Consumes a function name, which must be one of `allowed` (case-sensitively).
    pub(super) fn call_name(&mut self, allowed: &[&'static str]) -> Result<&'static str> {
        let token = self.bump();
        let text = self.token_text(&token);
        match allowed.iter().find(|name| **name == text) {
            Some(name) => Ok(name),
            None => Err(self.error(format!("Invalid function name; function: {text}"))),
        }
    }

    /// `( operand (, operand)* )`, one nesting level deeper.
    pub(super) fn call_args(&mut self) -> Result<Vec<Operand>> {
        self.expect(TokenKind::LParen)?;
        let args = self.nested(|p| {
            let mut args = vec![p.operand()?];
            while p.eat(TokenKind::Comma) {
                args.push(p.operand()?);
            }
            Ok(args)
        })?;
        self.expect(TokenKind::RParen)?;
        Ok(args)
    }

    /// The arguments of `function` as an array, if there are exactly `N`.
    pub(super) fn arity<const N: usize>(
        &self,
        function: &str,
        args: Vec<Operand>,
    ) -> Result<[Operand; N]> {
        args.try_into().map_err(|args: Vec<Operand>| {
            self.error(format!(
                "Incorrect number of operands for operator or function; \
                 operator or function: {function}, number of operands: {}",
                args.len()
            ))
        })
    }

    /// The path an argument of `function` must be.
    pub(super) fn require_path(&self, function: &str, operand: Operand) -> Result<Path> {
        match operand {
            Operand::Path(path) => Ok(path),
            _ => Err(self.error(format!(
                "Operator or function requires a document path; operator or function: {function}"
            ))),
        }
    }

    /// The second argument of `attribute_type`: a value that names a DynamoDB type.
    fn type_name(&self, operand: Operand) -> Result<String> {
        match operand {
            Operand::Value(AttributeValue::S(name)) if TYPE_NAMES.contains(&name.as_str()) => {
                Ok(name)
            }
            Operand::Value(AttributeValue::S(name)) => Err(self.error(format!(
                "Invalid attribute type name found; type: {name}, \
                 valid types: {{ B,NULL,SS,BOOL,L,BS,N,NS,S,M }}"
            ))),
            Operand::Value(value) => Err(self.error(format!(
                "Incorrect operand type for operator or function; \
                 operator or function: attribute_type, operand type: {}",
                value.type_name()
            ))),
            _ => Err(self.error(
                "Operator or function requires an expression attribute value; \
                 operator or function: attribute_type",
            )),
        }
    }

    // ---- token helpers ---------------------------------------------------------------------

    pub(super) fn peek(&self) -> &Token {
        // `pos` never passes the final `Eof`; the fallback only keeps this panic-free.
        static EOF: Token = Token {
            kind: TokenKind::Eof,
            span: 0..0,
        };
        self.tokens.get(self.pos).unwrap_or(&EOF)
    }

    pub(super) fn token_text(&self, token: &Token) -> &'t str {
        self.text.get(token.span.clone()).unwrap_or("")
    }

    /// Consumes and returns the current token (staying on `Eof`).
    pub(super) fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::Eof {
            self.pos += 1;
        }
        token
    }

    pub(super) fn eat(&mut self, kind: TokenKind) -> bool {
        let found = self.peek().kind == kind;
        if found {
            self.bump();
        }
        found
    }

    pub(super) fn expect(&mut self, kind: TokenKind) -> Result<Token> {
        if self.peek().kind == kind {
            Ok(self.bump())
        } else {
            Err(self.syntax_error())
        }
    }

    /// Consumes the keyword `keyword` (case-insensitive) if it is next.
    pub(super) fn eat_keyword(&mut self, keyword: &str) -> bool {
        let token = self.peek();
        let found =
            token.kind == TokenKind::Ident && self.token_text(token).eq_ignore_ascii_case(keyword);
        if found {
            self.bump();
        }
        found
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<()> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.syntax_error())
        }
    }

    /// Fails unless every token has been consumed.
    pub(super) fn expect_end(&self) -> Result<()> {
        match self.peek().kind {
            TokenKind::Eof => Ok(()),
            _ => Err(self.syntax_error()),
        }
    }

    /// Runs `parse` one nesting level deeper, failing past [`MAX_NESTING`]; this is what keeps
    /// recursion bounded whatever the input.
    pub(super) fn nested<T>(&mut self, parse: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_NESTING {
            return Err(self.error(format!(
                "The expression has too many nested levels; maximum: {MAX_NESTING}"
            )));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    // ---- errors ----------------------------------------------------------------------------

    /// A `ValidationException` about this expression.
    pub(super) fn error(&self, detail: impl Display) -> Error {
        Error::validation(format!("Invalid {}: {detail}", self.kind))
    }

    /// DynamoDB's syntax error at the current token; `near` is the text from the previous
    /// token through the next one.
    pub(super) fn syntax_error(&self) -> Error {
        let token = self.peek();
        let start = match self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(previous) => previous.span.start,
            None => token.span.start,
        };
        if token.kind == TokenKind::Eof {
            let near = self.text.get(start..).unwrap_or("").trim_end();
            return self.error(format!("Syntax error; token: <EOF>, near: \"{near}\""));
        }
        let end = match self.tokens.get(self.pos + 1) {
            Some(next) if next.kind != TokenKind::Eof => next.span.end,
            _ => token.span.end,
        };
        self.error(format!(
            "Syntax error; token: \"{}\", near: \"{}\"",
            self.token_text(token),
            self.text.get(start..end).unwrap_or("")
        ))
    }
}

fn comparator(kind: TokenKind) -> Option<Comparator> {
    Some(match kind {
        TokenKind::Eq => Comparator::Eq,
        TokenKind::Ne => Comparator::Ne,
        TokenKind::Lt => Comparator::Lt,
        TokenKind::Le => Comparator::Le,
        TokenKind::Gt => Comparator::Gt,
        TokenKind::Ge => Comparator::Ge,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::Number;

    const KIND: &str = "ConditionExpression";

    fn names() -> BTreeMap<String, String> {
        [("#n", "name"), ("#dot", "a.b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn values() -> BTreeMap<String, AttributeValue> {
        [
            (":x", s("x")),
            (":y", n("1")),
            (":z", s("z")),
            (":t", s("SS")),
            (":bad", s("XX")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_string())
    }

    fn n(text: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(text).unwrap())
    }

    /// `"a.b[1]"` as a path (test shorthand; names are taken literally).
    fn path(text: &str) -> Path {
        let mut elements = Vec::new();
        for part in text.split('.') {
            let mut pieces = part.split('[');
            elements.push(PathElement::Attribute(pieces.next().unwrap().to_string()));
            for index in pieces {
                elements.push(PathElement::Index(
                    index.trim_end_matches(']').parse().unwrap(),
                ));
            }
        }
        Path { elements }
    }

    fn p(text: &str) -> Operand {
        Operand::Path(path(text))
    }

    fn val(value: AttributeValue) -> Operand {
        Operand::Value(value)
    }

    fn cmp(left: Operand, op: Comparator, right: Operand) -> Condition {
        Condition::Compare { op, left, right }
    }

    fn and(a: Condition, b: Condition) -> Condition {
        Condition::And(Box::new(a), Box::new(b))
    }

    fn or(a: Condition, b: Condition) -> Condition {
        Condition::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Condition) -> Condition {
        Condition::Not(Box::new(a))
    }

    fn parse(text: &str) -> Result<Condition> {
        let (names, values) = (names(), values());
        let mut ctx = ExpressionContext::new(Some(&names), Some(&values))?;
        parse_condition(KIND, text, &mut ctx)
    }

    #[test]
    fn valid_conditions() {
        use Comparator::*;
        let a_x = || cmp(p("a"), Eq, val(s("x")));
        let b_y = || cmp(p("b"), Eq, val(n("1")));
        let c_z = || cmp(p("c"), Eq, val(s("z")));
        let cases = vec![
            ("a = :x", a_x()),
            ("a=:x", a_x()),
            ("a <> :x", cmp(p("a"), Ne, val(s("x")))),
            ("a < :x", cmp(p("a"), Lt, val(s("x")))),
            ("a <= :x", cmp(p("a"), Le, val(s("x")))),
            ("a > :x", cmp(p("a"), Gt, val(s("x")))),
            ("a >= :x", cmp(p("a"), Ge, val(s("x")))),
            (":x = a", cmp(val(s("x")), Eq, p("a"))),
            ("a = b", cmp(p("a"), Eq, p("b"))),
            // AND binds tighter than OR.
            ("a = :x OR b = :y AND c = :z", or(a_x(), and(b_y(), c_z()))),
            ("a = :x AND b = :y OR c = :z", or(and(a_x(), b_y()), c_z())),
            (
                "(a = :x OR b = :y) AND c = :z",
                and(or(a_x(), b_y()), c_z()),
            ),
            // NOT binds tighter than AND.
            ("NOT a = :x AND b = :y", and(not(a_x()), b_y())),
            ("NOT (a = :x AND b = :y)", not(and(a_x(), b_y()))),
            ("not not a = :x", not(not(a_x()))),
            ("(a = :x)", a_x()),
            ("((a = :x) AND b = :y)", and(a_x(), b_y())),
            // Left-associative chains.
            (
                "a = :x AND b = :y AND c = :z",
                and(and(a_x(), b_y()), c_z()),
            ),
            ("a = :x or b = :y Or c = :z", or(or(a_x(), b_y()), c_z())),
            // BETWEEN's AND is its own; the next AND is a conjunction.
            (
                "a BETWEEN :x AND :z AND b = :y",
                and(
                    Condition::Between {
                        operand: p("a"),
                        low: val(s("x")),
                        high: val(s("z")),
                    },
                    b_y(),
                ),
            ),
            (
                "size(a) between :y and :y",
                Condition::Between {
                    operand: Operand::Size(path("a")),
                    low: val(n("1")),
                    high: val(n("1")),
                },
            ),
            (
                "a IN (:x, :y, b.c)",
                Condition::In {
                    operand: p("a"),
                    list: vec![val(s("x")), val(n("1")), p("b.c")],
                },
            ),
            (
                "a in (:x) OR b = :y",
                or(
                    Condition::In {
                        operand: p("a"),
                        list: vec![val(s("x"))],
                    },
                    b_y(),
                ),
            ),
            (
                "attribute_exists(a.b[1])",
                Condition::Function(Function::AttributeExists(path("a.b[1]"))),
            ),
            // A placeholder's name is taken whole, dots and all.
            (
                "attribute_not_exists(#dot)",
                Condition::Function(Function::AttributeNotExists(Path {
                    elements: vec![PathElement::Attribute("a.b".into())],
                })),
            ),
            (
                "attribute_type(a, :t)",
                Condition::Function(Function::AttributeType(path("a"), "SS".into())),
            ),
            (
                "begins_with(a, :x)",
                Condition::Function(Function::BeginsWith(path("a"), val(s("x")))),
            ),
            (
                "contains(a, b)",
                Condition::Function(Function::Contains(path("a"), p("b"))),
            ),
            (
                "NOT contains(a, :x)",
                not(Condition::Function(Function::Contains(
                    path("a"),
                    val(s("x")),
                ))),
            ),
            (
                "size(a) > :y",
                cmp(Operand::Size(path("a")), Gt, val(n("1"))),
            ),
            (
                "a.b[1][2].#n = :x",
                cmp(p("a.b[1][2].name"), Eq, val(s("x"))),
            ),
            ("a [ 3 ] . b = :x", cmp(p("a[3].b"), Eq, val(s("x")))),
            ("_a1 = :x", cmp(p("_a1"), Eq, val(s("x")))),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn invalid_conditions() {
        let too_many_in = format!("a IN ({})", vec![":x"; 101].join(", "));
        let max_in = format!("a IN ({})", vec![":x"; 100].join(", "));
        assert!(parse(&max_in).is_ok());
        let cases: Vec<(&str, &str)> = vec![
            ("", "The expression can not be empty;"),
            ("((a = :x))", "The expression has redundant parentheses;"),
            (
                "b = :y AND ((a = :x))",
                "The expression has redundant parentheses;",
            ),
            (
                "contains(a, a)",
                "The first operand must be distinct from the remaining operands for this operator or function; operator: contains, first operand: [a]",
            ),
            (
                "a.b = a.b",
                "The first operand must be distinct from the remaining operands for this operator or function; operator: =, first operand: [a, b]",
            ),
            (
                "a IN (:x, a)",
                "The first operand must be distinct from the remaining operands for this operator or function; operator: IN, first operand: [a]",
            ),
            (" \n\t", "The expression can not be empty;"),
            ("a = ", r#"Syntax error; token: <EOF>, near: "=""#),
            ("a = :x AND", r#"Syntax error; token: <EOF>, near: "AND""#),
            ("(a = :x", r#"Syntax error; token: <EOF>, near: ":x""#),
            ("a.", r#"Syntax error; token: <EOF>, near: ".""#),
            ("size(a)", r#"Syntax error; token: <EOF>, near: ")""#),
            ("a = :x b", r#"Syntax error; token: "b", near: ":x b""#),
            ("a == :x", r#"Syntax error; token: "=", near: "== :x""#),
            ("a = :x)", r#"Syntax error; token: ")", near: ":x)""#),
            (
                "a BETWEEN :x OR :z",
                r#"Syntax error; token: "OR", near: ":x OR :z""#,
            ),
            ("a IN ()", r#"Syntax error; token: ")", near: "()""#),
            ("a IN :x", r#"Syntax error; token: ":x", near: "IN :x""#),
            ("a $ :x", r#"Syntax error; token: "$", near: "a $ :x""#),
            ("a != :x", r#"Syntax error; token: "!", near: "a !=""#),
            ("a = :", r#"Syntax error; token: ":", near: "= :""#),
            ("# = :x", r##"Syntax error; token: "#", near: "# =""##),
            ("a[-1] = :x", r#"Syntax error; token: "-", near: "[-1""#),
            ("a[x] = :x", r#"Syntax error; token: "x", near: "[x]""#),
            (
                "a[99999999999] = :x",
                r#"Syntax error; token: "99999999999", near: "[99999999999]""#,
            ),
            ("5 = :x", r#"Syntax error; token: "5", near: "5 =""#),
            (
                "a = :x + :y",
                r#"Syntax error; token: "+", near: ":x + :y""#,
            ),
            (
                "a = :x AND AND",
                "Attribute name is a reserved keyword; reserved keyword: AND",
            ),
            (
                "name = :x",
                "Attribute name is a reserved keyword; reserved keyword: name",
            ),
            (
                "a.Size = :x",
                "Attribute name is a reserved keyword; reserved keyword: Size",
            ),
            (
                "a = Comment",
                "Attribute name is a reserved keyword; reserved keyword: Comment",
            ),
            (
                "#nope = :x",
                "An expression attribute name used in the document path is not defined; \
                 attribute name: #nope",
            ),
            (
                "a = :nope",
                "An expression attribute value used in expression is not defined; \
                 attribute value: :nope",
            ),
            ("foo(a)", "Invalid function name; function: foo"),
            (
                "Attribute_Exists(a)",
                "Invalid function name; function: Attribute_Exists",
            ),
            ("SIZE(a) > :y", "Invalid function name; function: SIZE"),
            (
                "attribute_exists(a, b)",
                "Incorrect number of operands for operator or function; \
                 operator or function: attribute_exists, number of operands: 2",
            ),
            (
                "begins_with(a)",
                "Incorrect number of operands for operator or function; \
                 operator or function: begins_with, number of operands: 1",
            ),
            (
                "attribute_exists(:x)",
                "Operator or function requires a document path; \
                 operator or function: attribute_exists",
            ),
            (
                "begins_with(:x, a)",
                "Operator or function requires a document path; operator or function: begins_with",
            ),
            (
                "size(:x) > :y",
                "Operator or function requires a document path; operator or function: size",
            ),
            (
                "size(size(a)) > :y",
                "Operator or function requires a document path; operator or function: size",
            ),
            (
                "a = attribute_exists(b)",
                "The function is not allowed to be used this way in an expression; \
                 function: attribute_exists",
            ),
            (
                "attribute_type(a, :bad)",
                "Invalid attribute type name found; type: XX, \
                 valid types: { B,NULL,SS,BOOL,L,BS,N,NS,S,M }",
            ),
            (
                "attribute_type(a, :y)",
                "Incorrect operand type for operator or function; \
                 operator or function: attribute_type, operand type: N",
            ),
            (
                "attribute_type(a, b)",
                "Operator or function requires an expression attribute value; \
                 operator or function: attribute_type",
            ),
            (
                &too_many_in,
                "The IN operator is provided with too many operands; number of operands: 101",
            ),
        ];
        for (text, message) in cases {
            let expected = Error::Validation(format!("Invalid {KIND}: {message}"));
            assert_eq!(parse(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn nesting_and_size_caps() {
        let nested = |levels: usize, open: &str, close: &str| {
            format!("{}a = :x{}", open.repeat(levels), close.repeat(levels))
        };
        let too_deep = format!(
            "Invalid {KIND}: The expression has too many nested levels; maximum: {MAX_NESTING}"
        );
        // Each group holds more than another group, or its parentheses would be redundant.
        assert!(parse(&nested(MAX_NESTING, "b = :y AND (", ")")).is_ok());
        assert!(parse(&nested(MAX_NESTING, "NOT ", "")).is_ok());
        for text in [
            nested(MAX_NESTING + 1, "(", ")"),
            nested(MAX_NESTING + 1, "NOT ", ""),
            nested(1000, "(", ")"), // all within the 4 KB limit
            nested(600, "NOT (", ")"),
            format!("{}a{} > :y", "size(".repeat(600), ")".repeat(600)),
        ] {
            assert_eq!(parse(&text), Err(Error::Validation(too_deep.clone())));
        }

        let deep_path = |elements: usize| format!("a{} = :x", ".b".repeat(elements - 1));
        assert!(parse(&deep_path(MAX_PATH_DEPTH)).is_ok());
        assert_eq!(
            parse(&deep_path(MAX_PATH_DEPTH + 1)),
            Err(Error::Validation(format!(
                "Invalid {KIND}: The document path has too many nesting levels; \
                 nesting levels: 33"
            )))
        );

        let long = |len: usize| format!("a = :x{}", " ".repeat(len - 6));
        assert!(parse(&long(MAX_EXPRESSION_BYTES)).is_ok());
        assert_eq!(
            parse(&long(MAX_EXPRESSION_BYTES + 1)),
            Err(Error::Validation(format!(
                "Invalid {KIND}: Expression size has exceeded the maximum allowed size; \
                 expression size: 4097"
            )))
        );
    }

    #[test]
    fn placeholder_maps() {
        let empty_names = BTreeMap::new();
        let empty_values = BTreeMap::new();
        let (names, values) = (names(), values());
        assert_eq!(
            ExpressionContext::new(Some(&empty_names), Some(&values)).err(),
            Some(Error::validation(
                "ExpressionAttributeNames must not be empty"
            ))
        );
        assert_eq!(
            ExpressionContext::new(None, Some(&empty_values)).err(),
            Some(Error::validation(
                "ExpressionAttributeValues must not be empty"
            ))
        );

        // Keys no expression could name are refused up front.
        let bad_names = BTreeMap::from([("name".to_string(), "a".to_string())]);
        assert_eq!(
            ExpressionContext::new(Some(&bad_names), None).err(),
            Some(Error::validation(
                "ExpressionAttributeNames contains invalid key: Syntax error; key: \"name\""
            ))
        );
        let bad_values = BTreeMap::from([(":".to_string(), AttributeValue::Null)]);
        assert_eq!(
            ExpressionContext::new(None, Some(&bad_values)).err(),
            Some(Error::validation(
                "ExpressionAttributeValues contains invalid key: Syntax error; key: \":\""
            ))
        );

        // Without maps, expressions without placeholders are fine and nothing is unused.
        let mut ctx = ExpressionContext::new(None, None).unwrap();
        assert!(parse_condition(KIND, "attribute_exists(a)", &mut ctx).is_ok());
        assert!(ctx.check_all_used().is_ok());
        assert!(parse_condition(KIND, "#n = :x", &mut ctx).is_err());

        // Uses accumulate over all the expressions of a request.
        let mut ctx = ExpressionContext::new(Some(&names), Some(&values)).unwrap();
        parse_condition(KIND, "#n = :x", &mut ctx).unwrap();
        assert_eq!(
            ctx.check_all_used(),
            Err(Error::validation(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {#dot}"
            ))
        );
        parse_condition("FilterExpression", "attribute_exists(#dot)", &mut ctx).unwrap();
        assert_eq!(
            ctx.check_all_used(),
            Err(Error::validation(
                "Value provided in ExpressionAttributeValues unused in expressions: \
                 keys: {:bad, :t, :y, :z}"
            ))
        );
        parse_condition(KIND, "a IN (:bad, :t, :y, :z, :x)", &mut ctx).unwrap();
        assert_eq!(ctx.check_all_used(), Ok(()));

        let mut ctx = ExpressionContext::new(Some(&names), None).unwrap();
        parse_condition(KIND, "attribute_exists(a)", &mut ctx).unwrap();
        assert_eq!(
            ctx.check_all_used(),
            Err(Error::validation(
                "Value provided in ExpressionAttributeNames unused in expressions: \
                 keys: {#dot, #n}"
            ))
        );
    }

    /// Fragments of the expression alphabet, so random input is often nearly valid.
    const FRAGMENTS: &[&str] = &[
        "a",
        "b.c",
        "#n",
        "#dot",
        "#x",
        ":x",
        ":y",
        ":t",
        ":nope",
        "(",
        ")",
        "[",
        "]",
        "0",
        "7",
        "4294967296",
        ",",
        ".",
        "=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "+",
        "-",
        " AND ",
        " OR ",
        " NOT ",
        " BETWEEN ",
        " IN ",
        "size",
        "attribute_exists",
        "attribute_type",
        "begins_with",
        "contains",
        "SET ",
        "REMOVE ",
        "ADD ",
        "DELETE ",
        "if_not_exists",
        "list_append",
        "name",
        "#",
        ":",
        "é",
        " ",
        "\t",
        "!",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn fragments_never_panic(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..48)) {
            let _ = parse(&parts.concat());
            // Every parser a request can reach, and an update's application to an item.
            crate::model::expr::fuzz_parse(&parts.concat());
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[ -~é\\t]{0,80}") {
            let _ = parse(&text);
        }
    }
}
