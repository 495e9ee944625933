//! PartiQL for DynamoDB, front end: statement text to a [`Statement`] whose conditions and
//! updates are the expression language's own trees ([`crate::model::expr`]), so that
//! `ExecuteStatement` and its batch and transaction forms evaluate and apply them with the same
//! code as `ConditionExpression` and `UpdateExpression`, and no second evaluator exists.
//!
//! - `lexer`: text to tokens (strings in single quotes, names in double quotes, `<<` `>>`
//!   sets, `?` parameters, `--` comments);
//! - [`ast`]: the four statements;
//! - [`parser`]: tokens to a statement, parameters bound, nesting bounded, every error naming
//!   the token it stopped at in DynamoDB's envelope ("Statement wasn't well formed, can't be
//!   processed: ...");
//! - [`print`](mod@print): statements back to text, the parser's inverse (property-tested);
//! - [`compile`]: a statement against its table's key schema: the item a write names, the
//!   condition it carries, what a `SELECT` can use as a key condition.
//!
//! Pure and deterministic, like the rest of [`crate::model`].

pub mod ast;
pub mod compile;
mod lexer;
pub mod parser;
pub mod print;

pub use ast::{Delete, Insert, Returning, Select, Statement, UpdateStatement};
pub use compile::{DUPLICATE, NO_FULL_KEY, Write, WriteKind, compile_write};
pub use parser::{MAX_STATEMENT_CHARS, PARAMETER_COUNT, malformed, parse};
