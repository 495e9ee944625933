//! The tokenizer shared by every DynamoDB expression kind (key condition, condition, filter, and
//! later projection and update), plus DynamoDB's reserved-word list.
//!
//! The lexer never fails: a character no expression uses becomes an [`TokenKind::Unknown`] token,
//! so the parser reports it as a syntax error with the neighbouring tokens as context, exactly
//! like any other misplaced token. Keywords (`AND`, `BETWEEN`, `SET`, ...) are lexed as plain
//! identifiers because they are case-insensitive and context-dependent; the parser decides.

use std::iter::Peekable;
use std::ops::Range;
use std::str::CharIndices;

/// What a token is. The text is recovered from the expression through [`Token::span`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A plain name: attribute, keyword or function (`[A-Za-z_][A-Za-z0-9_]*`).
    Ident,
    /// `#name`: an expression attribute name placeholder.
    NamePlaceholder,
    /// `:name`: an expression attribute value placeholder.
    ValuePlaceholder,
    /// Decimal digits: a list index.
    Integer,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// `.`
    Dot,
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `+` (update expressions only).
    Plus,
    /// `-` (update expressions only).
    Minus,
    /// A character no expression uses, or a lone `#` or `:`.
    Unknown,
    /// The end of the expression; always the last token.
    Eof,
}

/// One token: its kind and its byte range in the expression text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// Byte range in the expression (always on `char` boundaries).
    pub span: Range<usize>,
}

pub(super) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `text` into tokens, skipping whitespace. The result always ends with one
/// [`TokenKind::Eof`] token.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    // Consumes characters while `pred` holds and returns the byte offset where the run ends.
    let run_end = |chars: &mut Peekable<CharIndices>, pred: fn(char) -> bool| {
        while chars.next_if(|&(_, c)| pred(c)).is_some() {}
        chars.peek().map_or(text.len(), |&(i, _)| i)
    };
    while let Some((start, c)) = chars.next() {
        let (kind, end) = match c {
            c if c.is_whitespace() => continue,
            c if c.is_ascii_alphabetic() || c == '_' => {
                (TokenKind::Ident, run_end(&mut chars, is_name_char))
            }
            c if c.is_ascii_digit() => (
                TokenKind::Integer,
                run_end(&mut chars, |c| c.is_ascii_digit()),
            ),
            '#' if chars.peek().is_some_and(|&(_, c)| is_name_char(c)) => (
                TokenKind::NamePlaceholder,
                run_end(&mut chars, is_name_char),
            ),
            ':' if chars.peek().is_some_and(|&(_, c)| is_name_char(c)) => (
                TokenKind::ValuePlaceholder,
                run_end(&mut chars, is_name_char),
            ),
            '<' if chars.next_if(|&(_, c)| c == '>').is_some() => (TokenKind::Ne, start + 2),
            '<' if chars.next_if(|&(_, c)| c == '=').is_some() => (TokenKind::Le, start + 2),
            '>' if chars.next_if(|&(_, c)| c == '=').is_some() => (TokenKind::Ge, start + 2),
            _ => {
                let kind = match c {
                    '(' => TokenKind::LParen,
                    ')' => TokenKind::RParen,
                    '[' => TokenKind::LBracket,
                    ']' => TokenKind::RBracket,
                    ',' => TokenKind::Comma,
                    '.' => TokenKind::Dot,
                    '=' => TokenKind::Eq,
                    '<' => TokenKind::Lt,
                    '>' => TokenKind::Gt,
                    '+' => TokenKind::Plus,
                    '-' => TokenKind::Minus,
                    _ => TokenKind::Unknown,
                };
                (kind, start + c.len_utf8())
            }
        };
        tokens.push(Token {
            kind,
            span: start..end,
        });
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: text.len()..text.len(),
    });
    tokens
}

/// Whether `word` is one of DynamoDB's reserved words (case-insensitive), which a plain name
/// in an expression may not be: such attributes must be reached through a `#name` placeholder.
pub fn is_reserved_word(word: &str) -> bool {
    RESERVED_WORDS
        .binary_search(&word.to_ascii_uppercase().as_str())
        .is_ok()
}

/// DynamoDB's documented reserved words, upper case and sorted for binary search.
// Kept compact (not one word per line) so the list stays reviewable against the docs.
#[rustfmt::skip]
const RESERVED_WORDS: &[&str] = &[
    "ABORT", "ABSOLUTE", "ACTION", "ADD", "AFTER", "AGENT", "AGGREGATE", "ALL", "ALLOCATE", "ALTER",
    "ANALYZE", "AND", "ANY", "ARCHIVE", "ARE", "ARRAY", "AS", "ASC", "ASCII", "ASENSITIVE",
    "ASSERTION", "ASYMMETRIC", "AT", "ATOMIC", "ATTACH", "ATTRIBUTE", "AUTH", "AUTHORIZATION",
    "AUTHORIZE", "AUTO", "AVG", "BACK", "BACKUP", "BASE", "BATCH", "BEFORE", "BEGIN", "BETWEEN",
    "BIGINT", "BINARY", "BIT", "BLOB", "BLOCK", "BOOLEAN", "BOTH", "BREADTH", "BUCKET", "BULK",
    "BY", "BYTE", "CALL", "CALLED", "CALLING", "CAPACITY", "CASCADE", "CASCADED", "CASE", "CAST",
    "CATALOG", "CHAR", "CHARACTER", "CHECK", "CLASS", "CLOB", "CLOSE", "CLUSTER", "CLUSTERED",
    "CLUSTERING", "CLUSTERS", "COALESCE", "COLLATE", "COLLATION", "COLLECTION", "COLUMN", "COLUMNS",
    "COMBINE", "COMMENT", "COMMIT", "COMPACT", "COMPILE", "COMPRESS", "CONDITION", "CONFLICT",
    "CONNECT", "CONNECTION", "CONSISTENCY", "CONSISTENT", "CONSTRAINT", "CONSTRAINTS",
    "CONSTRUCTOR", "CONSUMED", "CONTINUE", "CONVERT", "COPY", "CORRESPONDING", "COUNT", "COUNTER",
    "CREATE", "CROSS", "CUBE", "CURRENT", "CURSOR", "CYCLE", "DATA", "DATABASE", "DATE", "DATETIME",
    "DAY", "DEALLOCATE", "DEC", "DECIMAL", "DECLARE", "DEFAULT", "DEFERRABLE", "DEFERRED", "DEFINE",
    "DEFINED", "DEFINITION", "DELETE", "DELIMITED", "DEPTH", "DEREF", "DESC", "DESCRIBE",
    "DESCRIPTOR", "DETACH", "DETERMINISTIC", "DIAGNOSTICS", "DIRECTORIES", "DISABLE", "DISCONNECT",
    "DISTINCT", "DISTRIBUTE", "DO", "DOMAIN", "DOUBLE", "DROP", "DUMP", "DURATION", "DYNAMIC",
    "EACH", "ELEMENT", "ELSE", "ELSEIF", "EMPTY", "ENABLE", "END", "EQUAL", "EQUALS", "ERROR",
    "ESCAPE", "ESCAPED", "EVAL", "EVALUATE", "EXCEEDED", "EXCEPT", "EXCEPTION", "EXCEPTIONS",
    "EXCLUSIVE", "EXEC", "EXECUTE", "EXISTS", "EXIT", "EXPLAIN", "EXPLODE", "EXPORT", "EXPRESSION",
    "EXTENDED", "EXTERNAL", "EXTRACT", "FAIL", "FALSE", "FAMILY", "FETCH", "FIELDS", "FILE",
    "FILTER", "FILTERING", "FINAL", "FINISH", "FIRST", "FIXED", "FLATTERN", "FLOAT", "FOR", "FORCE",
    "FOREIGN", "FORMAT", "FORWARD", "FOUND", "FREE", "FROM", "FULL", "FUNCTION", "FUNCTIONS",
    "GENERAL", "GENERATE", "GET", "GLOB", "GLOBAL", "GO", "GOTO", "GRANT", "GREATER", "GROUP",
    "GROUPING", "HANDLER", "HASH", "HAVE", "HAVING", "HEAP", "HIDDEN", "HOLD", "HOUR", "IDENTIFIED",
    "IDENTITY", "IF", "IGNORE", "IMMEDIATE", "IMPORT", "IN", "INCLUDING", "INCLUSIVE", "INCREMENT",
    "INCREMENTAL", "INDEX", "INDEXED", "INDEXES", "INDICATOR", "INFINITE", "INITIALLY", "INLINE",
    "INNER", "INNTER", "INOUT", "INPUT", "INSENSITIVE", "INSERT", "INSTEAD", "INT", "INTEGER",
    "INTERSECT", "INTERVAL", "INTO", "INVALIDATE", "IS", "ISOLATION", "ITEM", "ITEMS", "ITERATE",
    "JOIN", "KEY", "KEYS", "LAG", "LANGUAGE", "LARGE", "LAST", "LATERAL", "LEAD", "LEADING",
    "LEAVE", "LEFT", "LENGTH", "LESS", "LEVEL", "LIKE", "LIMIT", "LIMITED", "LINES", "LIST", "LOAD",
    "LOCAL", "LOCALTIME", "LOCALTIMESTAMP", "LOCATION", "LOCATOR", "LOCK", "LOCKS", "LOG", "LOGED",
    "LONG", "LOOP", "LOWER", "MAP", "MATCH", "MATERIALIZED", "MAX", "MAXLEN", "MEMBER", "MERGE",
    "METHOD", "METRICS", "MIN", "MINUS", "MINUTE", "MISSING", "MOD", "MODE", "MODIFIES", "MODIFY",
    "MODULE", "MONTH", "MULTI", "MULTISET", "NAME", "NAMES", "NATIONAL", "NATURAL", "NCHAR",
    "NCLOB", "NEW", "NEXT", "NO", "NONE", "NOT", "NULL", "NULLIF", "NUMBER", "NUMERIC", "OBJECT",
    "OF", "OFFLINE", "OFFSET", "OLD", "ON", "ONLINE", "ONLY", "OPAQUE", "OPEN", "OPERATOR",
    "OPTION", "OR", "ORDER", "ORDINALITY", "OTHER", "OTHERS", "OUT", "OUTER", "OUTPUT", "OVER",
    "OVERLAPS", "OVERRIDE", "OWNER", "PAD", "PARALLEL", "PARAMETER", "PARAMETERS", "PARTIAL",
    "PARTITION", "PARTITIONED", "PARTITIONS", "PATH", "PERCENT", "PERCENTILE", "PERMISSION",
    "PERMISSIONS", "PIPE", "PIPELINED", "PLAN", "POOL", "POSITION", "PRECISION", "PREPARE",
    "PRESERVE", "PRIMARY", "PRIOR", "PRIVATE", "PRIVILEGES", "PROCEDURE", "PROCESSED", "PROJECT",
    "PROJECTION", "PROPERTY", "PROVISIONING", "PUBLIC", "PUT", "QUERY", "QUIT", "QUORUM", "RAISE",
    "RANDOM", "RANGE", "RANK", "RAW", "READ", "READS", "REAL", "REBUILD", "RECORD", "RECURSIVE",
    "REDUCE", "REF", "REFERENCE", "REFERENCES", "REFERENCING", "REGEXP", "REGION", "REINDEX",
    "RELATIVE", "RELEASE", "REMAINDER", "RENAME", "REPEAT", "REPLACE", "REQUEST", "RESET",
    "RESIGNAL", "RESOURCE", "RESPONSE", "RESTORE", "RESTRICT", "RESULT", "RETURN", "RETURNING",
    "RETURNS", "REVERSE", "REVOKE", "RIGHT", "ROLE", "ROLES", "ROLLBACK", "ROLLUP", "ROUTINE",
    "ROW", "ROWS", "RULE", "RULES", "SAMPLE", "SATISFIES", "SAVE", "SAVEPOINT", "SCAN", "SCHEMA",
    "SCOPE", "SCROLL", "SEARCH", "SECOND", "SECTION", "SEGMENT", "SEGMENTS", "SELECT", "SELF",
    "SEMI", "SENSITIVE", "SEPARATE", "SEQUENCE", "SERIALIZABLE", "SESSION", "SET", "SETS", "SHARD",
    "SHARE", "SHARED", "SHORT", "SHOW", "SIGNAL", "SIMILAR", "SIZE", "SKEWED", "SMALLINT",
    "SNAPSHOT", "SOME", "SOURCE", "SPACE", "SPACES", "SPARSE", "SPECIFIC", "SPECIFICTYPE", "SPLIT",
    "SQL", "SQLCODE", "SQLERROR", "SQLEXCEPTION", "SQLSTATE", "SQLWARNING", "START", "STATE",
    "STATIC", "STATUS", "STORAGE", "STORE", "STORED", "STREAM", "STRING", "STRUCT", "STYLE", "SUB",
    "SUBMULTISET", "SUBPARTITION", "SUBSTRING", "SUBTYPE", "SUM", "SUPER", "SYMMETRIC", "SYNONYM",
    "SYSTEM", "TABLE", "TABLESAMPLE", "TEMP", "TEMPORARY", "TERMINATED", "TEXT", "THAN", "THEN",
    "THROUGHPUT", "TIME", "TIMESTAMP", "TIMEZONE", "TINYINT", "TO", "TOKEN", "TOTAL", "TOUCH",
    "TRAILING", "TRANSACTION", "TRANSFORM", "TRANSLATE", "TRANSLATION", "TREAT", "TRIGGER", "TRIM",
    "TRUE", "TRUNCATE", "TTL", "TUPLE", "TYPE", "UNDER", "UNDO", "UNION", "UNIQUE", "UNIT",
    "UNKNOWN", "UNLOGGED", "UNNEST", "UNPROCESSED", "UNSIGNED", "UNTIL", "UPDATE", "UPPER", "URL",
    "USAGE", "USE", "USER", "USERS", "USING", "UUID", "VACUUM", "VALUE", "VALUED", "VALUES",
    "VARCHAR", "VARIABLE", "VARIANCE", "VARINT", "VARYING", "VIEW", "VIEWS", "VIRTUAL", "VOID",
    "WAIT", "WHEN", "WHENEVER", "WHERE", "WHILE", "WINDOW", "WITH", "WITHIN", "WITHOUT", "WORK",
    "WRAPPED", "WRITE", "YEAR", "ZONE",
];

#[cfg(test)]
mod tests {
    use super::*;
    use TokenKind::*;

    fn kinds_and_texts(text: &str) -> Vec<(TokenKind, &str)> {
        tokenize(text)
            .into_iter()
            .map(|t| (t.kind, &text[t.span]))
            .collect()
    }

    #[test]
    fn tokenizes_every_kind() {
        let cases: &[(&str, &[(TokenKind, &str)])] = &[
            ("", &[(Eof, "")]),
            (
                "a_1 #n :v 12",
                &[
                    (Ident, "a_1"),
                    (NamePlaceholder, "#n"),
                    (ValuePlaceholder, ":v"),
                    (Integer, "12"),
                    (Eof, ""),
                ],
            ),
            (
                "()[],.=<><<=>>=+-",
                &[
                    (LParen, "("),
                    (RParen, ")"),
                    (LBracket, "["),
                    (RBracket, "]"),
                    (Comma, ","),
                    (Dot, "."),
                    (Eq, "="),
                    (Ne, "<>"),
                    (Lt, "<"),
                    (Le, "<="),
                    (Gt, ">"),
                    (Ge, ">="),
                    (Plus, "+"),
                    (Minus, "-"),
                    (Eof, ""),
                ],
            ),
            (
                "a.b[3]",
                &[
                    (Ident, "a"),
                    (Dot, "."),
                    (Ident, "b"),
                    (LBracket, "["),
                    (Integer, "3"),
                    (RBracket, "]"),
                    (Eof, ""),
                ],
            ),
            // A lone sigil, `!` and non-ASCII characters are single unknown tokens.
            (
                "# : ! é",
                &[
                    (Unknown, "#"),
                    (Unknown, ":"),
                    (Unknown, "!"),
                    (Unknown, "é"),
                    (Eof, ""),
                ],
            ),
            // Digits right after letters belong to the name; `1a` is a number then a name.
            ("1a", &[(Integer, "1"), (Ident, "a"), (Eof, "")]),
        ];
        for (text, expected) in cases {
            assert_eq!(&kinds_and_texts(text), expected, "{text:?}");
        }
    }

    #[test]
    fn reserved_words() {
        assert!(RESERVED_WORDS.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert_eq!(RESERVED_WORDS.len(), 573);
        for word in [
            "and", "Between", "NAME", "size", "Status", "comment", "zone",
        ] {
            assert!(is_reserved_word(word), "{word}");
        }
        for word in ["", "foo", "names1", "attribute_exists", "pk"] {
            assert!(!is_reserved_word(word), "{word}");
        }
    }
}
