//! DynamoDB's expression language, front end: tokenizing, parsing to an AST with placeholders
//! resolved, and the validation of Query's `KeyConditionExpression`.
//!
//! - `lexer`: text to tokens, and DynamoDB's reserved words;
//! - `ast`: the tree ([`Condition`], [`Operand`], [`Path`], ...);
//! - `parser`: condition text to a [`Condition`] through an [`ExpressionContext`], which
//!   resolves `#name`/`:value` placeholders and records which were used, so that a request's
//!   unused ones can be rejected;
//! - `key_condition`: narrows a condition to the [`KeyCondition`] a Query scans with;
//! - [`eval`]: a condition evaluated against an item (conditions at apply time, filters);
//! - [`update`]: `UpdateExpression`, parsed with the same parser's path and operand rules and
//!   applied to an item;
//! - [`projection`]: `ProjectionExpression`, a list of paths ([`eval::project`] applies it);
//! - [`print`](mod@print): trees back to text with placeholders, the parsers' inverse.
//!
//! A hand-written recursive-descent parser rather than a parser library: DynamoDB's error
//! messages name the offending token and the rule broken ("Syntax error; token: ...",
//! "Invalid function name; function: ...", "Attribute name is a reserved keyword ..."), which
//! SDK users and test suites match on; a generated parser's errors would have to be translated
//! back into them, and its recursion would need the same depth bounds anyway.
//!
//! Everything is pure and deterministic: the same text and maps give the same tree or the same
//! error on every replica.

mod ast;
pub mod eval;
pub mod key_condition;
mod lexer;
pub mod parser;
pub mod print;
pub mod projection;
pub mod update;

pub use ast::{Comparator, Condition, Function, Operand, Path, PathElement};
pub use key_condition::{
    KeyCondition, MultiKeyCondition, SortKeyCondition, compare_values, parse_key_condition,
    parse_multi_key_condition,
};
pub use parser::{
    ExpressionContext, MAX_EXPRESSION_BYTES, MAX_IN_OPERANDS, MAX_NESTING, MAX_PATH_DEPTH,
    parse_condition,
};
pub use projection::parse_projection;
pub use update::{SetOperand, SetValue, Update, parse_update};

/// Parses `text` every way a request can ask for (condition, key condition, update, applied to
/// an item, projection, and PartiQL statement), ignoring the outcome: the fuzzing entry point (`fuzz/`), which must
/// never panic.
#[doc(hidden)]
pub fn fuzz_parse(text: &str) {
    use std::collections::BTreeMap;

    use crate::model::{AttributeValue, KeyAttribute, KeySchema, KeyType, Number};

    let names = BTreeMap::from([
        ("#a".to_string(), "a".to_string()),
        ("#k".to_string(), "k".to_string()),
    ]);
    let values = BTreeMap::from([
        (":s".to_string(), AttributeValue::S("x".into())),
        (":n".to_string(), AttributeValue::N(Number::from_i64(1))),
    ]);
    let schema = KeySchema {
        partition: KeyAttribute {
            name: "k".into(),
            key_type: KeyType::S,
        },
        sort: Some(KeyAttribute {
            name: "a".into(),
            key_type: KeyType::N,
        }),
    };
    if let Ok(mut ctx) = ExpressionContext::new(Some(&names), Some(&values)) {
        let _ = parse_condition("ConditionExpression", text, &mut ctx);
        let _ = ctx.check_all_used();
    }
    if let Ok(mut ctx) = ExpressionContext::new(Some(&names), Some(&values)) {
        let _ = parse_key_condition(text, &mut ctx, &schema);
    }
    if let Ok(mut ctx) = ExpressionContext::new(Some(&names), Some(&values)) {
        // An update that parses must also apply to an item without panicking.
        if let Ok(update) = parse_update(text, &mut ctx) {
            let item = crate::model::Item::from([
                ("a".to_string(), AttributeValue::N(Number::from_i64(1))),
                ("k".to_string(), AttributeValue::S("x".into())),
            ]);
            let _ = update.apply(&item);
        }
    }
    if let Ok(mut ctx) = ExpressionContext::new(Some(&names), None) {
        let _ = parse_projection(text, &mut ctx);
    }
    // The same text as a PartiQL statement, with and without a parameter to bind.
    let _ = crate::model::partiql::parse(text, &[]);
    let _ = crate::model::partiql::parse(text, &[AttributeValue::S("p".into())]);
}
