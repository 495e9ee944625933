//! Items and DynamoDB's size accounting, plus the validated set constructors.
//!
//! Sizes follow DynamoDB's published rules, so the 400 KB item limit and the table size that
//! DescribeTable reports agree with what a client computes. Sets only come into being through
//! [`AttributeValue::string_set`], [`AttributeValue::number_set`] and
//! [`AttributeValue::binary_set`], which enforce DynamoDB's rules (non-empty, no empty members,
//! no duplicates), so every stored set is one DynamoDB would have accepted.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;

use crate::model::{AttributeValue, Number};
use crate::{Error, Result};

/// An item: attribute names to values, kept sorted so replicas hold identical bytes.
pub type Item = BTreeMap<String, AttributeValue>;

/// DynamoDB's maximum item size (names plus values), in bytes.
pub const MAX_ITEM_SIZE: usize = 400 * 1024;

/// An item's size as DynamoDB counts it: each attribute's UTF-8 name length plus value size.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, v)| name.len() + v.dynamo_size())
        .sum()
}

/// Rejects an item larger than [`MAX_ITEM_SIZE`].
pub fn check_item_size(item: &Item) -> Result<()> {
    if item_size(item) > MAX_ITEM_SIZE {
        return Err(Error::validation(
            "Item size has exceeded the maximum allowed size",
        ));
    }
    Ok(())
}

impl AttributeValue {
    /// The value's size as DynamoDB counts it (without any attribute name). Recursion depth is
    /// that of the value, which request parsing bounds (DynamoDB allows 32 levels).
    pub fn dynamo_size(&self) -> usize {
        // A list or map costs 3 bytes, plus 1 byte per element on top of the element itself.
        const CONTAINER_OVERHEAD: usize = 3;
        match self {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.dynamo_size(),
            AttributeValue::B(b) => b.len(),
            AttributeValue::Bool(_) | AttributeValue::Null => 1,
            AttributeValue::L(list) => {
                CONTAINER_OVERHEAD + list.iter().map(|v| v.dynamo_size() + 1).sum::<usize>()
            }
            AttributeValue::M(map) => {
                CONTAINER_OVERHEAD
                    + map
                        .iter()
                        .map(|(k, v)| k.len() + v.dynamo_size() + 1)
                        .sum::<usize>()
            }
            AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
            AttributeValue::Ns(set) => set.iter().map(Number::dynamo_size).sum(),
            AttributeValue::Bs(set) => set.iter().map(Vec::len).sum(),
        }
    }

    /// DynamoDB's name for the value's type: `S`, `N`, `B`, `BOOL`, `NULL`, `L`, `M`, `SS`,
    /// `NS` or `BS`.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::B(_) => "B",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null => "NULL",
            AttributeValue::L(_) => "L",
            AttributeValue::M(_) => "M",
            AttributeValue::Ss(_) => "SS",
            AttributeValue::Ns(_) => "NS",
            AttributeValue::Bs(_) => "BS",
        }
    }

    /// A string set from the request's members, with DynamoDB's checks and messages.
    pub fn string_set(members: Vec<String>) -> Result<AttributeValue> {
        if members.is_empty() {
            return Err(Error::validation(
                "One or more parameter values were invalid: An string set  may not be empty",
            ));
        }
        if members.iter().any(String::is_empty) {
            return Err(Error::validation(
                "One or more parameter values were invalid: An string set may not have a empty string as a member",
            ));
        }
        let set: BTreeSet<String> = members.iter().cloned().collect();
        if set.len() != members.len() {
            return Err(Error::Validation(format!(
                "One or more parameter values were invalid: Input collection [{}] contains duplicates.",
                members.join(", ")
            )));
        }
        Ok(AttributeValue::Ss(set))
    }

    /// A number set; numerically equal members (`1`, `1.0`) are duplicates.
    pub fn number_set(members: Vec<Number>) -> Result<AttributeValue> {
        if members.is_empty() {
            return Err(Error::validation(
                "One or more parameter values were invalid: An number set  may not be empty",
            ));
        }
        let count = members.len();
        let set: BTreeSet<Number> = members.into_iter().collect();
        if set.len() != count {
            // DynamoDB really words this one differently from the string and binary cases.
            return Err(Error::validation("Input collection contains duplicates"));
        }
        Ok(AttributeValue::Ns(set))
    }

    /// A binary set, with DynamoDB's checks and messages (members echoed in base64, as sent).
    pub fn binary_set(members: Vec<Vec<u8>>) -> Result<AttributeValue> {
        if members.is_empty() {
            return Err(Error::validation(
                "One or more parameter values were invalid: Binary sets should not be empty",
            ));
        }
        if members.iter().any(Vec::is_empty) {
            return Err(Error::validation(
                "One or more parameter values were invalid: Binary sets may not contain null or empty values",
            ));
        }
        let set: BTreeSet<Vec<u8>> = members.iter().cloned().collect();
        if set.len() != members.len() {
            let shown: Vec<String> = members
                .iter()
                .map(|m| base64::engine::general_purpose::STANDARD.encode(m))
                .collect();
            // (sic) DynamoDB has no space before "of type BS".
            return Err(Error::Validation(format!(
                "One or more parameter values were invalid: Input collection [{}]of type BS contains duplicates.",
                shown.join(", ")
            )));
        }
        Ok(AttributeValue::Bs(set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> AttributeValue {
        AttributeValue::N(Number::parse(s).unwrap())
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_string())
    }

    fn validation(r: Result<AttributeValue>) -> String {
        match r {
            Err(Error::Validation(msg)) => msg,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn scalar_sizes() {
        assert_eq!(s("").dynamo_size(), 0);
        assert_eq!(s("héllo").dynamo_size(), 6);
        assert_eq!(num("123").dynamo_size(), 3);
        assert_eq!(AttributeValue::B(vec![1, 2, 3]).dynamo_size(), 3);
        assert_eq!(AttributeValue::Bool(false).dynamo_size(), 1);
        assert_eq!(AttributeValue::Null.dynamo_size(), 1);
    }

    #[test]
    fn container_and_set_sizes() {
        assert_eq!(AttributeValue::L(vec![]).dynamo_size(), 3);
        assert_eq!(AttributeValue::M(Item::new()).dynamo_size(), 3);
        // 3 + (2 + 1) + (1 + 1)
        assert_eq!(
            AttributeValue::L(vec![s("ab"), AttributeValue::Null]).dynamo_size(),
            8
        );
        // 3 + ("k" 1 + "abc" 3 + 1) + ("nn" 2 + N 12 → 2 + 1)
        let m = Item::from([("k".to_string(), s("abc")), ("nn".to_string(), num("12"))]);
        assert_eq!(AttributeValue::M(m).dynamo_size(), 13);
        let ss = AttributeValue::string_set(vec!["a".into(), "bcd".into()]).unwrap();
        assert_eq!(ss.dynamo_size(), 4);
        let ns = AttributeValue::number_set(vec![Number::from_i64(1), Number::from_i64(123)]);
        assert_eq!(ns.unwrap().dynamo_size(), 5);
        let bs = AttributeValue::binary_set(vec![vec![1], vec![2, 3]]).unwrap();
        assert_eq!(bs.dynamo_size(), 3);
    }

    #[test]
    fn item_sizes() {
        let item = Item::from([
            ("id".to_string(), s("user#1")),
            ("age".to_string(), num("42")),
            ("tags".to_string(), AttributeValue::L(vec![s("x")])),
        ]);
        // (2 + 6) + (3 + 2) + (4 + 3 + 1 + 1)
        assert_eq!(item_size(&item), 22);
        assert_eq!(item_size(&Item::new()), 0);
    }

    #[test]
    fn item_size_limit_boundary() {
        let name = "data";
        let mut item = Item::from([(name.to_string(), s(&"x".repeat(MAX_ITEM_SIZE - name.len())))]);
        assert_eq!(item_size(&item), MAX_ITEM_SIZE);
        assert!(check_item_size(&item).is_ok());
        item.insert(
            name.to_string(),
            s(&"x".repeat(MAX_ITEM_SIZE - name.len() + 1)),
        );
        assert_eq!(
            check_item_size(&item),
            Err(Error::validation(
                "Item size has exceeded the maximum allowed size"
            ))
        );
    }

    #[test]
    fn type_names() {
        let values = [
            (s("a"), "S"),
            (num("1"), "N"),
            (AttributeValue::B(vec![1]), "B"),
            (AttributeValue::Bool(true), "BOOL"),
            (AttributeValue::Null, "NULL"),
            (AttributeValue::L(vec![]), "L"),
            (AttributeValue::M(Item::new()), "M"),
            (AttributeValue::string_set(vec!["a".into()]).unwrap(), "SS"),
            (
                AttributeValue::number_set(vec![Number::zero()]).unwrap(),
                "NS",
            ),
            (AttributeValue::binary_set(vec![vec![0]]).unwrap(), "BS"),
        ];
        for (v, name) in values {
            assert_eq!(v.type_name(), name);
        }
    }

    #[test]
    fn string_set_rules() {
        assert_eq!(
            AttributeValue::string_set(vec!["b".into(), "a".into()]).unwrap(),
            AttributeValue::Ss(BTreeSet::from(["a".to_string(), "b".to_string()]))
        );
        assert_eq!(
            validation(AttributeValue::string_set(vec![])),
            "One or more parameter values were invalid: An string set  may not be empty"
        );
        assert_eq!(
            validation(AttributeValue::string_set(vec!["a".into(), "".into()])),
            "One or more parameter values were invalid: An string set may not have a empty string as a member"
        );
        assert_eq!(
            validation(AttributeValue::string_set(vec!["a".into(), "a".into()])),
            "One or more parameter values were invalid: Input collection [a, a] contains duplicates."
        );
    }

    #[test]
    fn number_set_rules() {
        let parse = |s: &str| Number::parse(s).unwrap();
        assert!(AttributeValue::number_set(vec![parse("1"), parse("1.5")]).is_ok());
        assert_eq!(
            validation(AttributeValue::number_set(vec![])),
            "One or more parameter values were invalid: An number set  may not be empty"
        );
        assert_eq!(
            validation(AttributeValue::number_set(vec![parse("1"), parse("1.0")])),
            "Input collection contains duplicates"
        );
    }

    #[test]
    fn binary_set_rules() {
        assert!(AttributeValue::binary_set(vec![vec![0], vec![0, 0]]).is_ok());
        assert_eq!(
            validation(AttributeValue::binary_set(vec![])),
            "One or more parameter values were invalid: Binary sets should not be empty"
        );
        assert_eq!(
            validation(AttributeValue::binary_set(vec![vec![1], vec![]])),
            "One or more parameter values were invalid: Binary sets may not contain null or empty values"
        );
        assert_eq!(
            validation(AttributeValue::binary_set(vec![
                b"AA".to_vec(),
                b"AA".to_vec()
            ])),
            "One or more parameter values were invalid: Input collection [QUE=, QUE=]of type BS contains duplicates."
        );
    }
}
