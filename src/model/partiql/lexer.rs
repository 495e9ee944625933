//! PartiQL text to tokens. Like the expression lexer it never fails: a character PartiQL does
//! not use, or a string or quoted name left open, becomes an [`TokenKind::Unknown`] token that
//! the parser reports with its text. Keywords are plain identifiers; the parser decides.

use std::ops::Range;

/// What a token is; its text is recovered from the statement through [`Token::span`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare name or keyword: `[A-Za-z_][A-Za-z0-9_]*`.
    Ident,
    /// A double-quoted name, `"a ""b"""`; its text is [`Token::unquoted`].
    QuotedIdent,
    /// A single-quoted string, `'it''s'`; its text is [`Token::unquoted`].
    String,
    /// A number without sign: `12`, `1.5`, `.5`, `2e-3`.
    Number,
    /// `?`, a parameter.
    Param,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `<<`
    LSet,
    /// `>>`
    RSet,
    /// `,`
    Comma,
    /// `.`
    Dot,
    /// `:`
    Colon,
    /// `;`
    Semicolon,
    /// `*`
    Star,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `=`
    Eq,
    /// `<>` or `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// Anything else, or an unterminated string or quoted name.
    Unknown,
    /// The end; always the last token.
    Eof,
}

/// One token and its byte range in the statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Where it is (on `char` boundaries).
    pub span: Range<usize>,
}

impl Token {
    /// The token's text as written.
    pub fn text<'a>(&self, statement: &'a str) -> &'a str {
        statement.get(self.span.clone()).unwrap_or("")
    }

    /// A string's or quoted name's content, quotes removed and doubled quotes undone.
    pub fn unquoted(&self, statement: &str) -> String {
        let text = self.text(statement);
        let quote = match self.kind {
            TokenKind::String => '\'',
            TokenKind::QuotedIdent => '"',
            _ => return text.to_string(),
        };
        let inner = text
            .strip_prefix(quote)
            .and_then(|t| t.strip_suffix(quote))
            .unwrap_or(text);
        let doubled = format!("{quote}{quote}");
        inner.replace(&doubled, &quote.to_string())
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `statement` into tokens, skipping whitespace and `--` comments to the end of line.
pub fn tokenize(statement: &str) -> Vec<Token> {
    let bytes = statement.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
    while i < bytes.len() {
        let Some(c) = statement.get(i..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '-' && at(i + 1) == b'-' {
            while i < bytes.len() && at(i) != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let kind = if is_name_start(c) {
            i += 1;
            while i < bytes.len() && is_name_char(char::from(at(i))) {
                i += 1;
            }
            TokenKind::Ident
        } else if c.is_ascii_digit() || (c == '.' && at(i + 1).is_ascii_digit()) {
            i = number_end(bytes, i);
            TokenKind::Number
        } else if c == '\'' || c == '"' {
            match quoted_end(bytes, i, c as u8) {
                Some(end) => {
                    i = end;
                    if c == '\'' {
                        TokenKind::String
                    } else {
                        TokenKind::QuotedIdent
                    }
                }
                None => {
                    i = bytes.len();
                    TokenKind::Unknown
                }
            }
        } else {
            let two = (c, char::from(at(i + 1)));
            let (kind, len) = match two {
                ('<', '<') => (TokenKind::LSet, 2),
                ('>', '>') => (TokenKind::RSet, 2),
                ('<', '>') | ('!', '=') => (TokenKind::Ne, 2),
                ('<', '=') => (TokenKind::Le, 2),
                ('>', '=') => (TokenKind::Ge, 2),
                ('(', _) => (TokenKind::LParen, 1),
                (')', _) => (TokenKind::RParen, 1),
                ('[', _) => (TokenKind::LBracket, 1),
                (']', _) => (TokenKind::RBracket, 1),
                ('{', _) => (TokenKind::LBrace, 1),
                ('}', _) => (TokenKind::RBrace, 1),
                (',', _) => (TokenKind::Comma, 1),
                ('.', _) => (TokenKind::Dot, 1),
                (':', _) => (TokenKind::Colon, 1),
                (';', _) => (TokenKind::Semicolon, 1),
                ('*', _) => (TokenKind::Star, 1),
                ('+', _) => (TokenKind::Plus, 1),
                ('-', _) => (TokenKind::Minus, 1),
                ('=', _) => (TokenKind::Eq, 1),
                ('<', _) => (TokenKind::Lt, 1),
                ('>', _) => (TokenKind::Gt, 1),
                ('?', _) => (TokenKind::Param, 1),
                _ => (TokenKind::Unknown, c.len_utf8()),
            };
            i += len;
            kind
        };
        tokens.push(Token {
            kind,
            span: start..i,
        });
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: statement.len()..statement.len(),
    });
    tokens
}

/// Where a number starting at `i` ends: digits, an optional fraction, an optional exponent.
fn number_end(bytes: &[u8], mut i: usize) -> usize {
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    i = digits(i);
    if bytes.get(i) == Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(u8::is_ascii_digit) {
            i = digits(j);
        }
    }
    i
}

/// Where a string or quoted name opened at `i` by `quote` ends (after its closing quote; a
/// doubled quote inside is one quote character), or `None` if it is never closed.
fn quoted_end(bytes: &[u8], i: usize, quote: u8) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match bytes.get(j) {
            None => return None,
            Some(&b) if b == quote => {
                if bytes.get(j + 1) == Some(&quote) {
                    j += 2;
                } else {
                    return Some(j + 1);
                }
            }
            Some(_) => j += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<TokenKind> {
        tokenize(s).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokens_of_a_statement() {
        use TokenKind::*;
        assert_eq!(
            kinds(r#"SELECT "a b".c[2] FROM "T" WHERE x <> 'it''s' AND y >= -1.5e3 -- note"#),
            vec![
                Ident,
                QuotedIdent,
                Dot,
                Ident,
                LBracket,
                Number,
                RBracket,
                Ident,
                QuotedIdent,
                Ident,
                Ident,
                Ne,
                String,
                Ident,
                Ident,
                Ge,
                Minus,
                Number,
                Eof
            ]
        );
        assert_eq!(
            kinds("<<1,2>> {'k': ?} != ;"),
            vec![
                LSet, Number, Comma, Number, RSet, LBrace, String, Colon, Param, RBrace, Ne,
                Semicolon, Eof
            ]
        );
    }

    #[test]
    fn quotes_are_undone_and_unterminated_ones_are_unknown() {
        let s = r#"'it''s' "say ""hi""""#;
        let t = tokenize(s);
        assert_eq!(t[0].unquoted(s), "it's");
        assert_eq!(t[1].unquoted(s), r#"say "hi""#);
        assert_eq!(kinds("'open"), vec![TokenKind::Unknown, TokenKind::Eof]);
        assert_eq!(kinds("é"), vec![TokenKind::Unknown, TokenKind::Eof]);
    }
}
