//! Plain JSON items, as the seed's CLI writes them (`{"Artist":"Journey","Year":1981}`), and
//! key values given as text on the command line.
//!
//! Plain JSON maps strings to S, numbers to N (exactly: serde_json keeps the digits as
//! written), booleans to BOOL, null to NULL, arrays to L and objects to M. Going back, sets
//! become arrays, binary becomes a base64 string. DynamoDB-typed JSON (`{"S": "..."}`) is read
//! with `--item-data-typed` instead, for sets and binary.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number as JsonNumber, Value};

use crate::api::budget::Charge;
use crate::api::decode::decode;
use crate::api::wire::WireItem;
use crate::model::{AttributeValue, Item, KeyAttribute, KeyType, Number};
use crate::{Error, Result};

/// Parses a plain JSON document into an item.
///
/// # Errors
/// `Validation` naming `flag` when the text is not a JSON object or holds an invalid number.
pub fn item_from_plain(text: &str, flag: &str) -> Result<Item> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::validation(format!("{flag} is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(Error::validation(format!(
            "{flag} must be a JSON object of attributes, like {{\"Artist\":\"Journey\",\"Year\":1981}}"
        )));
    };
    map.into_iter()
        .map(|(k, v)| {
            let v = from_plain(v)
                .map_err(|e| Error::validation(format!("{flag}: attribute {k}: {e}")))?;
            Ok((k, v))
        })
        .collect()
}

/// Parses DynamoDB-typed JSON (`{"Artist": {"S": "Journey"}}`) into an item.
///
/// # Errors
/// `Validation` naming `flag` when the text is not typed JSON.
pub fn item_from_typed(text: &str, flag: &str) -> Result<Item> {
    match decode::<WireItem>(text.as_bytes(), &mut Charge::default()) {
        Ok(item) => Ok(item.0),
        Err(Error::Serialization(e)) => Err(Error::validation(format!(
            "{flag} is not DynamoDB-typed JSON (like {{\"Artist\":{{\"S\":\"Journey\"}}}}): {e}"
        ))),
        Err(e) => Err(Error::validation(format!("{flag}: {e}"))),
    }
}

fn from_plain(v: Value) -> Result<AttributeValue> {
    Ok(match v {
        Value::String(s) => AttributeValue::S(s),
        Value::Number(n) => AttributeValue::N(Number::parse(&n.to_string())?),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Null => AttributeValue::Null,
        Value::Array(a) => AttributeValue::L(a.into_iter().map(from_plain).collect::<Result<_>>()?),
        Value::Object(m) => AttributeValue::M(
            m.into_iter()
                .map(|(k, v)| Ok((k, from_plain(v)?)))
                .collect::<Result<_>>()?,
        ),
    })
}

fn json_number(n: &Number) -> Value {
    // With serde_json's arbitrary precision a canonical number parses back digit for digit.
    n.to_string()
        .parse::<JsonNumber>()
        .map_or_else(|_| Value::String(n.to_string()), Value::Number)
}

/// A value as plain JSON.
pub fn to_plain(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => json_number(n),
        AttributeValue::B(b) => Value::String(BASE64.encode(b)),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null => Value::Null,
        AttributeValue::L(l) => Value::Array(l.iter().map(to_plain).collect()),
        AttributeValue::M(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), to_plain(v))).collect())
        }
        AttributeValue::Ss(s) => Value::Array(s.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(s) => Value::Array(s.iter().map(json_number).collect()),
        AttributeValue::Bs(s) => {
            Value::Array(s.iter().map(|b| Value::String(BASE64.encode(b))).collect())
        }
    }
}

/// An item as a plain JSON object, key attributes first.
pub fn item_to_plain(item: &Item, key_names: &[&str]) -> Value {
    let mut map = Map::new();
    for k in key_names {
        if let Some(v) = item.get(*k) {
            map.insert((*k).to_string(), to_plain(v));
        }
    }
    for (k, v) in item {
        if !key_names.contains(&k.as_str()) {
            map.insert(k.clone(), to_plain(v));
        }
    }
    Value::Object(map)
}

/// A key value given as text on the command line, converted to the key's declared type.
///
/// # Errors
/// `Validation` naming `flag`, the attribute and its type when the text does not fit.
pub fn key_value(text: &str, attr: &KeyAttribute, flag: &str) -> Result<AttributeValue> {
    match attr.key_type {
        KeyType::S => Ok(AttributeValue::S(text.to_string())),
        KeyType::N => Number::parse(text).map(AttributeValue::N).map_err(|e| {
            let why = e.to_string();
            if why.starts_with("The parameter cannot be converted") {
                Error::validation(format!(
                    "{flag} {text:?}: key {} is a number (N), so the value must be a number like 42 or 1.5",
                    attr.name
                ))
            } else {
                // A number DynamoDB cannot hold: too many digits, or out of range.
                Error::validation(format!("{flag} {text:?}: key {}: {why}", attr.name))
            }
        }),
        KeyType::B => BASE64.decode(text).map(AttributeValue::B).map_err(|_| {
            Error::validation(format!(
                "{flag} {text:?}: key {} is binary (B), so the value must be base64, like AQID",
                attr.name
            ))
        }),
    }
}

/// A value as it reads in a one-line message: strings quoted, others as plain JSON.
pub fn display_value(v: &AttributeValue) -> String {
    to_plain(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_maps_to_types_and_back_exactly() {
        let text = r#"{"Artist":"Journey","Year":1981,"Big":123456789012345678901234567890.5,"Ok":true,"None":null,"L":[1,"a"],"M":{"x":0.10}}"#;
        let item = item_from_plain(text, "--item-data").expect("parses");
        assert_eq!(item["Artist"], AttributeValue::S("Journey".into()));
        assert_eq!(
            item["Year"],
            AttributeValue::N(Number::parse("1981").expect("n"))
        );
        assert_eq!(item["Ok"], AttributeValue::Bool(true));
        assert_eq!(item["None"], AttributeValue::Null);
        let back = item_to_plain(&item, &["Year"]);
        assert_eq!(
            back.to_string(),
            r#"{"Year":1981,"Artist":"Journey","Big":123456789012345678901234567890.5,"L":[1,"a"],"M":{"x":0.1},"None":null,"Ok":true}"#
        );
    }

    #[test]
    fn bad_input_names_the_flag() {
        let e = item_from_plain(r#"{"a" 1}"#, "--item-data").expect_err("invalid");
        assert_eq!(
            e.to_string(),
            "--item-data is not valid JSON: expected `:` at line 1 column 6"
        );
        let e = item_from_plain("[1]", "--item-data").expect_err("not an object");
        assert!(
            e.to_string()
                .starts_with("--item-data must be a JSON object"),
            "{e}"
        );
        let e = item_from_plain(r#"{"n": 1e999}"#, "--item-data").expect_err("overflow");
        assert!(
            e.to_string().contains("attribute n: Number overflow"),
            "{e}"
        );
    }

    #[test]
    fn key_values_follow_the_declared_type() {
        let n = KeyAttribute {
            name: "Year".into(),
            key_type: KeyType::N,
        };
        assert_eq!(
            key_value("1981.0", &n, "--partition-key").expect("n"),
            AttributeValue::N(Number::parse("1981").expect("n"))
        );
        let e = key_value("abc", &n, "--partition-key").expect_err("not a number");
        assert!(e.to_string().contains("key Year is a number (N)"), "{e}");
        let e = key_value(&"9".repeat(39), &n, "--partition-key").expect_err("39 digits");
        assert!(
            e.to_string().contains("more than 38 significant digits"),
            "{e}"
        );
    }
}
