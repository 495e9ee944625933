//! Attribute values and items in DynamoDB JSON (`{"S": "text"}`, `{"N": "1"}`, `{"L": […]}`),
//! decoded straight into the model and encoded straight from it.
//!
//! Decoding validates as it goes, with DynamoDB's messages (a bad number, an empty set, two
//! types in one value are `ValidationException`s; a string where a list belongs is a
//! `SerializationException`), and reports what it builds to [`crate::api::decode`], which
//! charges it to the request's memory budget and enforces nesting and item-size limits before
//! anything large exists.

use std::collections::BTreeMap;
use std::fmt;
use std::mem::size_of;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;
use crate::api::decode::{begin_item, charge, enter, fail, item_bytes};
use crate::model::{AttributeValue, Item, Number};

/// What one decoded value occupies besides its own heap data (the enum, plus its slot in a
/// list or the node of a map).
const VALUE_BYTES: usize = size_of::<AttributeValue>() + 16;
/// What one map entry or set member occupies besides its bytes (the string header and the
/// tree's share of a node).
const ENTRY_BYTES: usize = size_of::<String>() + 32;

/// An attribute value in DynamoDB JSON: exactly one of `S N B BOOL NULL L M SS NS BS`.
#[derive(Clone, Debug, PartialEq)]
pub struct WireValue(pub AttributeValue);

/// An item, a key, or `ExpressionAttributeValues` in DynamoDB JSON: attribute names to values.
/// Decoding refuses an empty attribute name and more than 400 KB of DynamoDB size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WireItem(pub Item);

/// A map keyed by name (`ExpressionAttributeNames`, a batch's `RequestItems`), each entry
/// charged as decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct WireMap<T>(pub BTreeMap<String, T>);

impl<T> Default for WireMap<T> {
    fn default() -> Self {
        WireMap(BTreeMap::new())
    }
}

/// `ExpressionAttributeNames`: placeholders to attribute names.
pub type WireNames = WireMap<String>;

/// A list of small structures (a key schema, attribute definitions), charged as decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WireList<T>(pub Vec<T>);

/// A member kvsim only needs to know is present: decoded without being built.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Present;

impl From<Item> for WireItem {
    fn from(item: Item) -> WireItem {
        WireItem(item)
    }
}

#[derive(Clone, Copy)]
enum Tag {
    S,
    N,
    B,
    Bool,
    Null,
    L,
    M,
    Ss,
    Ns,
    Bs,
}

/// A key of an attribute value's object: a type tag, or `None` for a key DynamoDB ignores.
struct TagKey(Option<Tag>);

impl<'de> Deserialize<'de> for TagKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TagKey, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TagKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a DynamoDB type name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TagKey, E> {
                Ok(TagKey(match v {
                    "S" => Some(Tag::S),
                    "N" => Some(Tag::N),
                    "B" => Some(Tag::B),
                    "BOOL" => Some(Tag::Bool),
                    "NULL" => Some(Tag::Null),
                    "L" => Some(Tag::L),
                    "M" => Some(Tag::M),
                    "SS" => Some(Tag::Ss),
                    "NS" => Some(Tag::Ns),
                    "BS" => Some(Tag::Bs),
                    _ => None,
                }))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A number's text, parsed without keeping the text.
struct NumberText(Number);

impl<'de> Deserialize<'de> for NumberText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NumberText, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumberText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumberText, E> {
                let n = Number::parse(v).map_err(fail)?;
                charge(n.dynamo_size())?;
                item_bytes(n.dynamo_size())?;
                Ok(NumberText(n))
            }
        }
        d.deserialize_str(V)
    }
}

/// Base64 text, decoded without keeping the text.
struct BinaryText(Vec<u8>);

impl<'de> Deserialize<'de> for BinaryText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BinaryText, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = BinaryText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BinaryText, E> {
                // Decoded bytes are at most three quarters of the text: charge before decoding.
                charge(v.len() / 4 * 3)?;
                let bytes = BASE64.decode(v).map_err(|e| {
                    fail(Error::Serialization(format!(
                        "Base64 encoded binary value is invalid: {e}"
                    )))
                })?;
                item_bytes(bytes.len())?;
                Ok(BinaryText(bytes))
            }
        }
        d.deserialize_str(V)
    }
}

/// A string, charged and counted toward the item.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        let s = String::deserialize(d)?;
        charge(s.len())?;
        item_bytes(s.len())?;
        Ok(Text(s))
    }
}

/// Decodes a JSON array element by element with `each`, charging each element's slot.
fn collect_seq<'de, A, T, U>(mut seq: A, each: impl Fn(T) -> U) -> Result<Vec<U>, A::Error>
where
    A: SeqAccess<'de>,
    T: Deserialize<'de>,
{
    let mut out = Vec::new();
    while let Some(v) = seq.next_element::<T>()? {
        charge(size_of::<U>() + 8)?;
        out.push(each(v));
    }
    Ok(out)
}

/// The elements of an `L`.
struct ListSeed;

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Vec<AttributeValue>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Vec<AttributeValue>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of attribute values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        // Each element costs one byte on top of its own size.
        while let Some(WireValue(v)) = seq.next_element()? {
            item_bytes(1)?;
            out.push(v);
        }
        Ok(out)
    }
}

/// The entries of an `M`.
struct MapSeed;

impl<'de> DeserializeSeed<'de> for MapSeed {
    type Value = BTreeMap<String, AttributeValue>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MapSeed {
    type Value = BTreeMap<String, AttributeValue>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of attribute values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            // The name's bytes plus one byte for the entry.
            charge(name.len() + ENTRY_BYTES)?;
            item_bytes(name.len() + 1)?;
            let WireValue(v) = map.next_value()?;
            out.insert(name, v);
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for WireValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireValue, D::Error> {
        d.deserialize_map(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = WireValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a DynamoDB attribute value such as {\"S\": \"text\"} or {\"N\": \"1\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireValue, A::Error> {
        charge(VALUE_BYTES)?;
        let mut found = None;
        while let Some(TagKey(tag)) = map.next_key()? {
            let Some(tag) = tag else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if found.is_some() {
                return Err(fail(Error::validation(
                    "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                )));
            }
            found = Some(match tag {
                Tag::S => AttributeValue::S(map.next_value::<Text>()?.0),
                Tag::N => AttributeValue::N(map.next_value::<NumberText>()?.0),
                Tag::B => AttributeValue::B(map.next_value::<BinaryText>()?.0),
                Tag::Bool => {
                    item_bytes(1)?;
                    AttributeValue::Bool(map.next_value()?)
                }
                Tag::Null => {
                    item_bytes(1)?;
                    // DynamoDB used to refuse `{"NULL": false}`; since mid-2026 it stores it
                    // as NULL, read back as `{"NULL": true}`, and so does kvsim.
                    let _: bool = map.next_value()?;
                    AttributeValue::Null
                }
                Tag::L => {
                    let _level = enter()?;
                    item_bytes(3)?;
                    AttributeValue::L(map.next_value_seed(ListSeed)?)
                }
                Tag::M => {
                    let _level = enter()?;
                    item_bytes(3)?;
                    AttributeValue::M(map.next_value_seed(MapSeed)?)
                }
                Tag::Ss => {
                    let members = map.next_value::<SeqOf<Text>>()?.0;
                    let members = members.into_iter().map(|t| t.0).collect();
                    AttributeValue::string_set(members).map_err(fail)?
                }
                Tag::Ns => {
                    let members = map.next_value::<SeqOf<NumberText>>()?.0;
                    let members = members.into_iter().map(|n| n.0).collect();
                    AttributeValue::number_set(members).map_err(fail)?
                }
                Tag::Bs => {
                    let members = map.next_value::<SeqOf<BinaryText>>()?.0;
                    let members = members.into_iter().map(|b| b.0).collect();
                    AttributeValue::binary_set(members).map_err(fail)?
                }
            });
        }
        found.map(WireValue).ok_or_else(|| {
            fail(Error::validation(
                "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes",
            ))
        })
    }
}

/// The members of a set, each charged as it arrives.
struct SeqOf<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SeqOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SeqOf<T>, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = SeqOf<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SeqOf<T>, A::Error> {
                collect_seq(seq, |v: T| v).map(SeqOf)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for WireItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireItem, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of attribute names to DynamoDB attribute values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireItem, A::Error> {
                let _counting = begin_item();
                let mut item = Item::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name.is_empty() {
                        return Err(fail(Error::validation(
                            "One or more parameter values were invalid: An attribute name may not be empty",
                        )));
                    }
                    charge(name.len() + ENTRY_BYTES)?;
                    item_bytes(name.len())?;
                    let WireValue(v) = map.next_value()?;
                    item.insert(name, v);
                }
                Ok(WireItem(item))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for WireMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireMap<T>, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = WireMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireMap<T>, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(k) = map.next_key::<String>()? {
                    charge(k.len() + ENTRY_BYTES + size_of::<T>())?;
                    let v = map.next_value::<T>()?;
                    out.insert(k, v);
                }
                Ok(WireMap(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for WireList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireList<T>, D::Error> {
        SeqOf::<T>::deserialize(d).map(|s| WireList(s.0))
    }
}

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Present, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present)
    }
}

impl Serialize for Present {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

/// A model value, borrowed for encoding.
struct Encode<'a>(&'a AttributeValue);

impl Serialize for Encode<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self.0 {
            AttributeValue::S(v) => m.serialize_entry("S", v)?,
            AttributeValue::N(n) => m.serialize_entry("N", &n.to_string())?,
            AttributeValue::B(b) => m.serialize_entry("B", &BASE64.encode(b))?,
            AttributeValue::Bool(b) => m.serialize_entry("BOOL", b)?,
            AttributeValue::Null => m.serialize_entry("NULL", &true)?,
            AttributeValue::L(l) => m.serialize_entry("L", &EncodeList(l))?,
            AttributeValue::M(map) => m.serialize_entry("M", &EncodeMap(map))?,
            AttributeValue::Ss(set) => m.serialize_entry("SS", set)?,
            AttributeValue::Ns(set) => {
                m.serialize_entry("NS", &set.iter().map(Number::to_string).collect::<Vec<_>>())?;
            }
            AttributeValue::Bs(set) => m.serialize_entry(
                "BS",
                &set.iter().map(|b| BASE64.encode(b)).collect::<Vec<_>>(),
            )?,
        }
        m.end()
    }
}

struct EncodeList<'a>(&'a [AttributeValue]);

impl Serialize for EncodeList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&Encode(v))?;
        }
        seq.end()
    }
}

struct EncodeMap<'a>(&'a BTreeMap<String, AttributeValue>);

impl Serialize for EncodeMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, &Encode(v))?;
        }
        m.end()
    }
}

impl Serialize for WireValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Encode(&self.0).serialize(s)
    }
}

impl Serialize for WireItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EncodeMap(&self.0).serialize(s)
    }
}

impl<T: Serialize> Serialize for WireMap<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: Serialize> Serialize for WireList<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::budget::{Charge, MemoryBudget};
    use crate::api::decode::decode;

    fn item(json: &str) -> crate::Result<Item> {
        decode::<WireItem>(json.as_bytes(), &mut Charge::default()).map(|w| w.0)
    }

    #[test]
    fn every_type_round_trips() {
        let json = r#"{"b":{"B":"AAE="},"bool":{"BOOL":false},"bs":{"BS":["AQ==","Ag=="]},"l":{"L":[{"N":"1"},{"NULL":true}]},"m":{"M":{"k":{"S":"v"}}},"n":{"N":"-1.5E3"},"ns":{"NS":["2","1"]},"s":{"S":"x"},"ss":{"SS":["b","a"]}}"#;
        let decoded = item(json).expect("valid");
        assert_eq!(
            decoded["n"],
            AttributeValue::N(Number::parse("-1500").expect("n"))
        );
        let encoded = serde_json::to_string(&WireItem(decoded.clone())).expect("encodes");
        assert_eq!(item(&encoded).expect("re-decodes"), decoded);
        assert!(encoded.contains(r#""NS":["1","2"]"#), "{encoded}");
    }

    #[test]
    fn null_false_is_stored_as_null() {
        let got = item(r#"{"a":{"NULL":false},"b":{"NULL":true}}"#).ok();
        let want = Item::from([
            ("a".to_string(), AttributeValue::Null),
            ("b".to_string(), AttributeValue::Null),
        ]);
        assert_eq!(got, Some(want));
    }

    #[test]
    fn dynamodb_errors_come_with_their_kinds() {
        let cases = [
            (r#"{"a":{}}"#, "Supplied AttributeValue is empty"),
            (r#"{"a":{"S":"x","N":"1"}}"#, "more than one datatypes"),
            (
                r#"{"a":{"N":"x1"}}"#,
                "cannot be converted to a numeric value: x1",
            ),
            (r#"{"a":{"SS":[]}}"#, "may not be empty"),
            (r#"{"":{"S":"x"}}"#, "An attribute name may not be empty"),
        ];
        for (json, want) in cases {
            match item(json) {
                Err(Error::Validation(m)) => assert!(m.contains(want), "{json}: {m}"),
                other => panic!("{json}: expected a ValidationException, got {other:?}"),
            }
        }
        assert!(matches!(
            item(r#"{"a":{"S":5}}"#),
            Err(Error::Serialization(_))
        ));
        assert!(matches!(
            item(r#"{"a":{"B":"!!"}}"#),
            Err(Error::Serialization(_))
        ));
    }

    #[test]
    fn nesting_is_refused_at_dynamodb_s_limit() {
        let nest = |levels: usize| {
            let mut v = r#"{"S":"x"}"#.to_string();
            for _ in 0..levels {
                v = format!(r#"{{"L":[{v}]}}"#);
            }
            format!(r#"{{"a":{v}}}"#)
        };
        assert!(item(&nest(32)).is_ok());
        match item(&nest(33)) {
            Err(Error::Validation(m)) => assert!(m.contains("Nesting Levels"), "{m}"),
            other => panic!("expected the nesting error, got {other:?}"),
        }
    }

    #[test]
    fn an_oversized_item_is_refused_while_it_is_being_read() {
        // 500,000 list elements of two DynamoDB bytes each: over 400 KB long before the end.
        let elements = vec![r#"{"NULL":true}"#; 500_000].join(",");
        let json = format!(r#"{{"a":{{"L":[{elements}]}}}}"#);
        let budget = MemoryBudget::new(64 << 20);
        let mut charge = budget.charge();
        match decode::<WireItem>(json.as_bytes(), &mut charge) {
            Err(Error::Validation(m)) => assert!(m.contains("Item size"), "{m}"),
            other => panic!("expected the item size error, got {other:?}"),
        }
        assert!(
            charge.used() < 20 << 20,
            "refused at about 200,000 elements: charged {} bytes",
            charge.used()
        );
    }

    #[test]
    fn decoding_is_charged_and_refused_when_the_budget_is_spent() {
        let elements = vec![r#"{"N":"1"}"#; 20_000].join(",");
        let json = format!(r#"{{"a":{{"L":[{elements}]}}}}"#);
        let roomy = MemoryBudget::new(64 << 20);
        let mut charge = roomy.charge();
        let decoded = decode::<WireItem>(json.as_bytes(), &mut charge).expect("fits");
        assert_eq!(decoded.0.len(), 1);
        assert!(
            charge.used() >= 20_000 * size_of::<AttributeValue>(),
            "every element charged: {}",
            charge.used()
        );
        let tight = MemoryBudget::new(1 << 20);
        let mut charge = tight.charge();
        assert!(matches!(
            decode::<WireItem>(json.as_bytes(), &mut charge),
            Err(Error::Throttling(_))
        ));
    }
}
