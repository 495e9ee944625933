//! Pure data and logic of DynamoDB's data model: values, numbers, items, keys, expressions.
//!
//! No I/O, no async, no clock. Everything here is deterministic so the state machine can run it
//! inside `apply` and every replica reaches the same answer.

pub mod expr;
pub mod index;
pub mod item;
pub mod key;
pub mod number;
pub mod partiql;
pub mod stream;
pub mod table;
pub mod value;

pub use item::Item;
pub use key::{KeyAttribute, KeySchema, KeyType, PrimaryKey};
pub use number::Number;
pub use value::AttributeValue;
