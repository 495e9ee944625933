//! Key schemas, primary keys, and the order-preserving bytes that key items in storage.
//!
//! Invariants:
//! - a [`PrimaryKey`] built by [`KeySchema::key_of_item`] or [`KeySchema::key_from_map`] has
//!   exactly the schema's attributes, of the declared types (S, N or B), non-empty and within
//!   DynamoDB's key size limits;
//! - [`PrimaryKey::encode`] orders byte-wise as DynamoDB orders keys (partition, then sort; S
//!   by UTF-8 bytes, B by bytes, N numerically), and each part is self-delimiting, so the
//!   concatenation decodes unambiguously and a partition's keys form one contiguous range.
//!
//! S and B parts are escaped: byte `0x00` becomes `0x00 0xFF` and the part ends with
//! `0x00 0x00`. The terminator sorts below every escaped byte, so a string sorts before its
//! extensions ("a" < "a\0" < "ab"), and no part is a prefix of another.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::{AttributeValue, Item, Number};
use crate::{Error, Result};

/// DynamoDB's limit on a partition key value, in bytes.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB's limit on a sort key value, in bytes.
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// Escape byte of S/B parts.
const ESCAPE: u8 = 0x00;
/// Follows [`ESCAPE`] to stand for a literal `0x00`.
const ESCAPED_ZERO: u8 = 0xFF;
/// Follows [`ESCAPE`] to end the part.
const END: u8 = 0x00;
/// Written for value types no key can have, so encoding stays total; it never decodes.
const NOT_A_KEY_TYPE: u8 = 0xFF;

/// The type of a key attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyType {
    /// String.
    S,
    /// Number.
    N,
    /// Binary.
    B,
}

impl KeyType {
    /// Whether `v` is of this type.
    pub fn matches(self, v: &AttributeValue) -> bool {
        matches!(
            (self, v),
            (KeyType::S, AttributeValue::S(_))
                | (KeyType::N, AttributeValue::N(_))
                | (KeyType::B, AttributeValue::B(_))
        )
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::S => "S",
            KeyType::N => "N",
            KeyType::B => "B",
        })
    }
}

/// Parses DynamoDB's `AttributeType` spelling: exactly `S`, `N` or `B`.
impl FromStr for KeyType {
    type Err = Error;

    fn from_str(s: &str) -> Result<KeyType> {
        match s {
            "S" => Ok(KeyType::S),
            "N" => Ok(KeyType::N),
            "B" => Ok(KeyType::B),
            _ => Err(Error::Validation(format!(
                "Value '{s}' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
            ))),
        }
    }
}

/// A key attribute: its name and type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute type.
    pub key_type: KeyType,
}

/// A table's primary key: a partition (hash) key and an optional sort (range) key, with
/// distinct names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySchema {
    /// The partition (HASH) key.
    pub partition: KeyAttribute,
    /// The sort (RANGE) key, if the table has one.
    pub sort: Option<KeyAttribute>,
}

/// The key values of one item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrimaryKey {
    /// The partition key value.
    pub partition: AttributeValue,
    /// The sort key value; present exactly when the schema has a sort key.
    pub sort: Option<AttributeValue>,
}

impl KeySchema {
    /// The key of an item being written (PutItem), with DynamoDB's messages for a missing,
    /// mistyped, empty or oversized key attribute.
    pub fn key_of_item(&self, item: &Item) -> Result<PrimaryKey> {
        let value = |attr: &KeyAttribute| -> Result<AttributeValue> {
            let v = item.get(&attr.name).ok_or_else(|| {
                Error::Validation(format!(
                    "One or more parameter values were invalid: Missing the key {} in the item",
                    attr.name
                ))
            })?;
            self.check_key_value(attr, v)?;
            Ok(v.clone())
        };
        Ok(PrimaryKey {
            partition: value(&self.partition)?,
            sort: self.sort.as_ref().map(value).transpose()?,
        })
    }

    /// The key named by a request's `Key` (or `ExclusiveStartKey`): exactly the schema's
    /// attributes, of the declared types.
    pub fn key_from_map(&self, key: &Item) -> Result<PrimaryKey> {
        let mismatch = || Error::validation("The provided key element does not match the schema");
        let expected = 1 + usize::from(self.sort.is_some());
        if key.len() != expected {
            return Err(mismatch());
        }
        let value = |attr: &KeyAttribute| -> Result<AttributeValue> {
            let v = key
                .get(&attr.name)
                .filter(|v| attr.key_type.matches(v))
                .ok_or_else(mismatch)?;
            self.check_key_value(attr, v)?;
            Ok(v.clone())
        };
        Ok(PrimaryKey {
            partition: value(&self.partition)?,
            sort: self.sort.as_ref().map(value).transpose()?,
        })
    }

    /// The key attribute names, partition first.
    pub fn attribute_names(&self) -> Vec<&str> {
        std::iter::once(&self.partition)
            .chain(&self.sort)
            .map(|a| a.name.as_str())
            .collect()
    }

    /// Checks that `v` may be the value of key attribute `attr` of this schema: right type,
    /// not empty, and within the partition or sort key size limit.
    pub fn check_key_value(&self, attr: &KeyAttribute, v: &AttributeValue) -> Result<()> {
        let name = &attr.name;
        let size = match (attr.key_type, v) {
            (KeyType::S, AttributeValue::S(s)) if s.is_empty() => {
                return Err(Error::Validation(format!(
                    "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: {name}"
                )));
            }
            (KeyType::B, AttributeValue::B(b)) if b.is_empty() => {
                return Err(Error::Validation(format!(
                    "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty binary value. Key: {name}"
                )));
            }
            (KeyType::S, AttributeValue::S(s)) => s.len(),
            (KeyType::B, AttributeValue::B(b)) => b.len(),
            (KeyType::N, AttributeValue::N(n)) => n.dynamo_size(),
            (expected, actual) => {
                return Err(Error::Validation(format!(
                    "One or more parameter values were invalid: Type mismatch for key {name} expected: {expected} actual: {}",
                    actual.type_name()
                )));
            }
        };
        // Schema names are distinct, so the name tells which limit applies.
        if *name == self.partition.name {
            if size > MAX_PARTITION_KEY_BYTES {
                // (sic) DynamoDB has no space before the number.
                return Err(Error::validation(
                    "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes",
                ));
            }
        } else if size > MAX_SORT_KEY_BYTES {
            return Err(Error::validation(
                "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes",
            ));
        }
        Ok(())
    }
}

impl PrimaryKey {
    /// The storage key: the partition part then the sort part, each by [`encode_key_value`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_value(&self.partition, &mut out);
        if let Some(sort) = &self.sort {
            encode_key_value(sort, &mut out);
        }
        out
    }

    /// The exact inverse of [`PrimaryKey::encode`] for keys of `schema`. Bytes that are not
    /// such an encoding (corrupt, trailing, or of other types) are `Error::Internal`.
    pub fn decode(schema: &KeySchema, bytes: &[u8]) -> Result<PrimaryKey> {
        let mut input = bytes;
        let partition = decode_key_value(schema.partition.key_type, &mut input)?;
        let sort = schema
            .sort
            .as_ref()
            .map(|attr| decode_key_value(attr.key_type, &mut input))
            .transpose()?;
        if !input.is_empty() {
            return Err(Error::internal("trailing bytes after a primary key"));
        }
        Ok(PrimaryKey { partition, sort })
    }

    /// The key as an attribute map (as in `LastEvaluatedKey`).
    pub fn to_item(&self, schema: &KeySchema) -> Item {
        let mut item = Item::from([(schema.partition.name.clone(), self.partition.clone())]);
        if let (Some(attr), Some(v)) = (&schema.sort, &self.sort) {
            item.insert(attr.name.clone(), v.clone());
        }
        item
    }
}

/// Appends the order-preserving, self-delimiting encoding of a key value: S and B escaped
/// and terminated (see the module doc), N by [`Number::encode_ordered`]. The schema fixes
/// each part's type, so no type tag is written. Other types cannot be key values; they are
/// written as a single byte that never decodes, rather than panicking.
pub fn encode_key_value(v: &AttributeValue, out: &mut Vec<u8>) {
    match v {
        AttributeValue::S(s) => encode_escaped(s.as_bytes(), out),
        AttributeValue::B(b) => encode_escaped(b, out),
        AttributeValue::N(n) => n.encode_ordered(out),
        _ => out.push(NOT_A_KEY_TYPE),
    }
}

/// Appends the bytes that begin the encoding of every S (or B) value that begins with `v`,
/// and of no other: `v` escaped, without the terminator. For `begins_with` range scans.
/// Other types have no prefixes: for them this writes their full [`encode_key_value`]
/// encoding, so a scan on it matches that value alone.
pub fn encode_key_prefix(v: &AttributeValue, out: &mut Vec<u8>) {
    match v {
        AttributeValue::S(s) => escape(s.as_bytes(), out),
        AttributeValue::B(b) => escape(b, out),
        _ => encode_key_value(v, out),
    }
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if b == 0 {
            out.extend_from_slice(&[ESCAPE, ESCAPED_ZERO]);
        } else {
            out.push(b);
        }
    }
}

fn encode_escaped(bytes: &[u8], out: &mut Vec<u8>) {
    escape(bytes, out);
    out.extend_from_slice(&[ESCAPE, END]);
}

/// Reads one key value of type `key_type` from the front of `input`, advancing past it.
fn decode_key_value(key_type: KeyType, input: &mut &[u8]) -> Result<AttributeValue> {
    match key_type {
        KeyType::N => Number::decode_ordered(input).map(AttributeValue::N),
        KeyType::B => decode_escaped(input).map(AttributeValue::B),
        KeyType::S => {
            let bytes = decode_escaped(input)?;
            String::from_utf8(bytes)
                .map(AttributeValue::S)
                .map_err(|_| Error::internal("stored string key is not UTF-8"))
        }
    }
}

fn decode_escaped(input: &mut &[u8]) -> Result<Vec<u8>> {
    let corrupt = || Error::internal("corrupt string or binary key encoding");
    let mut out = Vec::new();
    let mut rest = *input;
    loop {
        let (&b, tail) = rest.split_first().ok_or_else(corrupt)?;
        rest = tail;
        if b != ESCAPE {
            out.push(b);
            continue;
        }
        let (&next, tail) = rest.split_first().ok_or_else(corrupt)?;
        rest = tail;
        match next {
            ESCAPED_ZERO => out.push(0),
            END => break,
            _ => return Err(corrupt()),
        }
    }
    *input = rest;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    fn attr(name: &str, key_type: KeyType) -> KeyAttribute {
        KeyAttribute {
            name: name.to_string(),
            key_type,
        }
    }

    fn hash_only(key_type: KeyType) -> KeySchema {
        KeySchema {
            partition: attr("pk", key_type),
            sort: None,
        }
    }

    fn with_sort(partition: KeyType, sort: KeyType) -> KeySchema {
        KeySchema {
            partition: attr("pk", partition),
            sort: Some(attr("sk", sort)),
        }
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_string())
    }

    fn num(v: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(v).unwrap())
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn message(r: Result<PrimaryKey>) -> String {
        match r {
            Err(Error::Validation(msg)) => msg,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn enc(v: &AttributeValue) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_value(v, &mut out);
        out
    }

    fn prefix(v: &AttributeValue) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_prefix(v, &mut out);
        out
    }

    /// DynamoDB's order of two key values of one type.
    fn dynamo_cmp(a: &AttributeValue, b: &AttributeValue) -> Ordering {
        match (a, b) {
            (AttributeValue::S(x), AttributeValue::S(y)) => x.as_bytes().cmp(y.as_bytes()),
            (AttributeValue::B(x), AttributeValue::B(y)) => x.cmp(y),
            (AttributeValue::N(x), AttributeValue::N(y)) => x.cmp(y),
            _ => unreachable!("mixed types"),
        }
    }

    #[test]
    fn key_type_text() {
        for t in [KeyType::S, KeyType::N, KeyType::B] {
            assert_eq!(t.to_string().parse::<KeyType>().unwrap(), t);
        }
        for bad in ["s", "SS", "", "BOOL", " S"] {
            match bad.parse::<KeyType>() {
                Err(Error::Validation(msg)) => assert!(msg.contains(&format!("'{bad}'")), "{msg}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn key_of_item_extracts_and_validates() {
        let schema = with_sort(KeyType::S, KeyType::N);
        let it = item(&[("pk", s("a")), ("sk", num("1.50")), ("other", s("x"))]);
        let key = schema.key_of_item(&it).unwrap();
        assert_eq!(key.partition, s("a"));
        assert_eq!(key.sort, Some(num("1.5")));
        assert_eq!(
            key.to_item(&schema),
            item(&[("pk", s("a")), ("sk", num("1.5"))])
        );
        assert_eq!(schema.attribute_names(), ["pk", "sk"]);
        assert_eq!(hash_only(KeyType::B).attribute_names(), ["pk"]);

        assert_eq!(
            message(schema.key_of_item(&item(&[("pk", s("a"))]))),
            "One or more parameter values were invalid: Missing the key sk in the item"
        );
        assert_eq!(
            message(schema.key_of_item(&item(&[("pk", num("1")), ("sk", num("1"))]))),
            "One or more parameter values were invalid: Type mismatch for key pk expected: S actual: N"
        );
        assert_eq!(
            message(schema.key_of_item(&item(&[("pk", s("a")), ("sk", AttributeValue::Null)]))),
            "One or more parameter values were invalid: Type mismatch for key sk expected: N actual: NULL"
        );
        assert_eq!(
            message(schema.key_of_item(&item(&[("pk", s("")), ("sk", num("1"))]))),
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk"
        );
        let binary = hash_only(KeyType::B);
        assert_eq!(
            message(binary.key_of_item(&item(&[("pk", AttributeValue::B(vec![]))]))),
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty binary value. Key: pk"
        );
    }

    #[test]
    fn key_size_limits() {
        let schema = with_sort(KeyType::S, KeyType::B);
        let key = |p: usize, s_len: usize| {
            item(&[
                ("pk", s(&"p".repeat(p))),
                ("sk", AttributeValue::B(vec![7; s_len])),
            ])
        };
        assert!(
            schema
                .key_of_item(&key(MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES))
                .is_ok()
        );
        assert_eq!(
            message(schema.key_of_item(&key(MAX_PARTITION_KEY_BYTES + 1, 1))),
            "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of2048 bytes"
        );
        assert_eq!(
            message(schema.key_from_map(&key(1, MAX_SORT_KEY_BYTES + 1))),
            "One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of 1024 bytes"
        );
        // UTF-8 bytes count, not characters.
        let wide = item(&[
            ("pk", s(&"é".repeat(1025))),
            ("sk", AttributeValue::B(vec![1])),
        ]);
        assert!(schema.key_of_item(&wide).is_err());
    }

    #[test]
    fn key_from_map_requires_exactly_the_schema() {
        let schema = with_sort(KeyType::S, KeyType::N);
        let ok = item(&[("pk", s("a")), ("sk", num("2"))]);
        assert_eq!(
            schema.key_from_map(&ok).unwrap(),
            schema.key_of_item(&ok).unwrap()
        );
        let mismatch = "The provided key element does not match the schema";
        for bad in [
            item(&[("pk", s("a"))]),
            item(&[("pk", s("a")), ("sk", num("2")), ("x", s("y"))]),
            item(&[("pk", s("a")), ("other", num("2"))]),
            item(&[("pk", num("1")), ("sk", num("2"))]),
            item(&[("pk", s("a")), ("sk", s("2"))]),
            Item::new(),
        ] {
            assert_eq!(message(schema.key_from_map(&bad)), mismatch, "{bad:?}");
        }
        assert_eq!(
            message(schema.key_from_map(&item(&[("pk", s("")), ("sk", num("2"))]))),
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: pk"
        );
    }

    #[test]
    fn string_escaping_orders_and_delimits() {
        let ascending = [
            "",
            "\0",
            "\0\0",
            "\0a",
            "a",
            "a\0",
            "a\0\0",
            "a\u{1}",
            "ab",
            "b",
            "\u{ff}",
            "\u{10ffff}",
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(enc(&s(a)).cmp(&enc(&s(b))), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(enc(&s("a\0")), [b'a', 0x00, 0xFF, 0x00, 0x00]);
    }

    #[test]
    fn decode_rejects_bad_bytes() {
        let schema = with_sort(KeyType::S, KeyType::N);
        let good = PrimaryKey {
            partition: s("a"),
            sort: Some(num("1")),
        }
        .encode();
        let mut trailing = good.clone();
        trailing.push(0);
        let bad: [&[u8]; 6] = [
            &[],
            &good[..good.len() - 1],
            &trailing,
            &[b'a', 0x00, 0x01, 0x00, 0x00], // bad escape
            &[0xC3, 0x28, 0x00, 0x00, 0x02], // not UTF-8
            &[b'a', 0x00, 0x00, b'x', 0, 0], // an S where an N belongs
        ];
        for bytes in bad {
            assert!(
                matches!(PrimaryKey::decode(&schema, bytes), Err(Error::Internal(_))),
                "{bytes:?}"
            );
        }
        let mut not_a_key = Vec::new();
        encode_key_value(&AttributeValue::Null, &mut not_a_key);
        assert!(PrimaryKey::decode(&hash_only(KeyType::N), &not_a_key).is_err());
        assert!(PrimaryKey::decode(&hash_only(KeyType::S), &not_a_key).is_err());
    }

    #[test]
    fn prefixes_of_non_string_types_match_only_the_value() {
        let one = num("1");
        assert_eq!(prefix(&one), enc(&one));
    }

    fn string_value() -> impl Strategy<Value = AttributeValue> {
        // Small alphabets make shared prefixes, zeros and high bytes common.
        "[\0\u{1}ab\u{7f}\u{ff}\u{10ffff}]{0,6}".prop_map(AttributeValue::S)
    }

    fn binary_value() -> impl Strategy<Value = AttributeValue> {
        prop::collection::vec(
            prop_oneof![Just(0u8), Just(1), Just(0xFE), Just(0xFF), any::<u8>()],
            0..6,
        )
        .prop_map(AttributeValue::B)
    }

    fn number_value() -> impl Strategy<Value = AttributeValue> {
        ("-?[0-9]{1,5}", -3i32..=3).prop_map(|(m, e)| num(&format!("{m}e{e}")))
    }

    /// Two values of one key type.
    fn same_type_pair() -> impl Strategy<Value = (AttributeValue, AttributeValue)> {
        prop_oneof![
            (string_value(), string_value()),
            (binary_value(), binary_value()),
            (number_value(), number_value()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn value_bytes_order_like_dynamodb((a, b) in same_type_pair()) {
            prop_assert_eq!(enc(&a).cmp(&enc(&b)), dynamo_cmp(&a, &b));
        }

        #[test]
        fn composite_keys_order_and_roundtrip(
            (p1, p2) in (string_value(), string_value()),
            (s1, s2) in (number_value(), number_value()),
        ) {
            let schema = with_sort(KeyType::S, KeyType::N);
            let k1 = PrimaryKey { partition: p1.clone(), sort: Some(s1.clone()) };
            let k2 = PrimaryKey { partition: p2.clone(), sort: Some(s2.clone()) };
            let want = dynamo_cmp(&p1, &p2).then_with(|| dynamo_cmp(&s1, &s2));
            prop_assert_eq!(k1.encode().cmp(&k2.encode()), want);
            prop_assert_eq!(PrimaryKey::decode(&schema, &k1.encode()).unwrap(), k1);
        }

        #[test]
        fn binary_sort_keys_roundtrip(p in number_value(), sk in binary_value()) {
            let schema = with_sort(KeyType::N, KeyType::B);
            let key = PrimaryKey { partition: p, sort: Some(sk) };
            prop_assert_eq!(PrimaryKey::decode(&schema, &key.encode()).unwrap(), key);
        }

        #[test]
        fn prefix_matches_exactly_begins_with((v, w) in prop_oneof![
            (string_value(), string_value()),
            (binary_value(), binary_value()),
        ]) {
            let begins_with = match (&w, &v) {
                (AttributeValue::S(w), AttributeValue::S(v)) => w.as_bytes().starts_with(v.as_bytes()),
                (AttributeValue::B(w), AttributeValue::B(v)) => w.starts_with(v),
                _ => unreachable!(),
            };
            prop_assert_eq!(enc(&w).starts_with(&prefix(&v)), begins_with);
            // The extension of `v` by `w` always begins with `v`.
            let extended = match (&v, &w) {
                (AttributeValue::S(v), AttributeValue::S(w)) => s(&format!("{v}{w}")),
                (AttributeValue::B(v), AttributeValue::B(w)) => AttributeValue::B([v.as_slice(), w].concat()),
                _ => unreachable!(),
            };
            prop_assert!(enc(&extended).starts_with(&prefix(&v)));
        }
    }
}
