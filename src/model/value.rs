//! `AttributeValue`: DynamoDB's ten value types, with sets kept sorted so equal values are
//! equal byte for byte on every replica.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::Number;

/// One DynamoDB attribute value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AttributeValue {
    /// String (UTF-8).
    S(String),
    /// Number, exact to 38 significant digits.
    N(Number),
    /// Binary.
    B(Vec<u8>),
    /// Boolean.
    Bool(bool),
    /// Null (always true on the wire).
    Null,
    /// List.
    L(Vec<AttributeValue>),
    /// Map.
    M(BTreeMap<String, AttributeValue>),
    /// String set (non-empty, no duplicates).
    Ss(BTreeSet<String>),
    /// Number set (non-empty, no numerically equal members).
    Ns(BTreeSet<Number>),
    /// Binary set (non-empty, no duplicates).
    Bs(BTreeSet<Vec<u8>>),
}
