//! `ProjectionExpression`: a comma-separated list of document paths naming what a read
//! returns, parsed with the condition parser's path rule; overlapping or conflicting paths are
//! refused as DynamoDB refuses them. [`super::eval::project`] applies it.

use super::ast::Path;
use super::lexer::TokenKind;
use super::parser::{ExpressionContext, Parser};
use super::update::check_overlaps;
use crate::Result;

/// Parses `text` as a `ProjectionExpression`.
///
/// # Errors
/// `ValidationException` with DynamoDB's message for a syntax error, an undefined name
/// placeholder, a reserved word, or overlapping paths.
pub fn parse_projection(text: &str, ctx: &mut ExpressionContext) -> Result<Vec<Path>> {
    let mut p = Parser::new("ProjectionExpression", text, ctx)?;
    let mut paths = vec![p.path()?];
    while p.eat(TokenKind::Comma) {
        paths.push(p.path()?);
    }
    p.expect_end()?;
    check_overlaps(&p, &paths.iter().collect::<Vec<_>>())?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Error;

    fn parse(text: &str) -> Result<Vec<String>> {
        let names = BTreeMap::from([("#n".to_string(), "nm".to_string())]);
        let mut ctx = ExpressionContext::new(Some(&names), None)?;
        let paths = parse_projection(text, &mut ctx)?;
        ctx.check_all_used()?;
        Ok(paths.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn paths_and_errors() {
        assert_eq!(
            parse("a, #n.b[2], c.d").expect("parses"),
            ["a", "nm.b[2]", "c.d"]
        );
        for (text, want) in [
            ("a, a.b", "Two document paths overlap with each other"),
            ("a.b, a[0]", "Two document paths conflict with each other"),
            ("a,", "Syntax error; token: <EOF>"),
            ("a b", "Syntax error; token: \"b\""),
            ("#n, nm", "Two document paths overlap"),
            (
                "size",
                "Attribute name is a reserved keyword; reserved keyword: size",
            ),
        ] {
            match parse(text) {
                Err(Error::Validation(m)) => assert!(
                    m.starts_with("Invalid ProjectionExpression: ") && m.contains(want),
                    "{text}: {m}"
                ),
                other => panic!("{text}: expected a ValidationException, got {other:?}"),
            }
        }
    }
}
