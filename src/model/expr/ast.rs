//! The syntax tree of DynamoDB expressions, with every placeholder already resolved: `#n` to
//! the attribute name it stands for and `:v` to its value. Evaluation never sees a placeholder,
//! so a tree means the same thing wherever it is carried or stored.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::AttributeValue;

/// A document path: `a.b[2].#c`, names already resolved through `ExpressionAttributeNames`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Path {
    /// The steps from the item's top level; never empty, and the first is an attribute.
    pub elements: Vec<PathElement>,
}

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PathElement {
    /// A map key (or, first, a top-level attribute name).
    Attribute(String),
    /// A list index, `[N]`.
    Index(u32),
}

impl Path {
    /// The top-level attribute name if the path is just that one name (key attributes are).
    pub fn as_top_level(&self) -> Option<&str> {
        match self.elements.as_slice() {
            [PathElement::Attribute(name)] => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Path {
    /// DynamoDB's own spelling, as in its error messages: `a.b[2]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, element) in self.elements.iter().enumerate() {
            match element {
                PathElement::Attribute(name) if i == 0 => f.write_str(name)?,
                PathElement::Attribute(name) => write!(f, ".{name}")?,
                PathElement::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A value-producing term of a condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operand {
    /// The value at a document path in the item (may be absent).
    Path(Path),
    /// A constant from `ExpressionAttributeValues`.
    Value(AttributeValue),
    /// `size(path)`: the length of the value at the path.
    Size(Path),
}

/// A binary comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
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
}

impl Comparator {
    /// The operator with its operands swapped: `a < b` is `b > a`.
    pub fn flipped(self) -> Comparator {
        match self {
            Comparator::Lt => Comparator::Gt,
            Comparator::Le => Comparator::Ge,
            Comparator::Gt => Comparator::Lt,
            Comparator::Ge => Comparator::Le,
            same => same,
        }
    }

    /// The operator as written in expressions.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "<>",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
        }
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A condition function (the boolean ones; `size` is an [`Operand`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Function {
    /// `attribute_exists(path)`
    AttributeExists(Path),
    /// `attribute_not_exists(path)`
    AttributeNotExists(Path),
    /// `attribute_type(path, :t)`; the type name is validated at parse time and is one of
    /// `AttributeValue::type_name`'s results (`S`, `N`, `B`, `BOOL`, `NULL`, `L`, `M`, `SS`,
    /// `NS`, `BS`).
    AttributeType(Path, String),
    /// `begins_with(path, operand)`
    BeginsWith(Path, Operand),
    /// `contains(path, operand)`
    Contains(Path, Operand),
}

impl Function {
    /// The function's name as written in expressions.
    pub fn name(&self) -> &'static str {
        match self {
            Function::AttributeExists(_) => "attribute_exists",
            Function::AttributeNotExists(_) => "attribute_not_exists",
            Function::AttributeType(..) => "attribute_type",
            Function::BeginsWith(..) => "begins_with",
            Function::Contains(..) => "contains",
        }
    }
}

/// A boolean condition: `ConditionExpression`, `FilterExpression` and (restricted)
/// `KeyConditionExpression`. Parentheses leave no trace; the tree's shape is the grouping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// `left op right`
    Compare {
        /// The operator.
        op: Comparator,
        /// Left-hand operand.
        left: Operand,
        /// Right-hand operand.
        right: Operand,
    },
    /// `operand BETWEEN low AND high` (inclusive).
    Between {
        /// The tested operand.
        operand: Operand,
        /// Lower bound.
        low: Operand,
        /// Upper bound.
        high: Operand,
    },
    /// `operand IN (list...)`, 1 to 100 candidates.
    In {
        /// The tested operand.
        operand: Operand,
        /// The candidates.
        list: Vec<Operand>,
    },
    /// A boolean function.
    Function(Function),
    /// `a AND b`
    And(Box<Condition>, Box<Condition>),
    /// `a OR b`
    Or(Box<Condition>, Box<Condition>),
    /// `NOT a`
    Not(Box<Condition>),
}
