//! The parameters DynamoDB had before expressions, which older SDK code still sends:
//! `KeyConditions`, `QueryFilter`, `ScanFilter`, `Expected` (with `ConditionalOperator`),
//! `AttributesToGet` and `AttributeUpdates`. Each is rewritten into the expression it means,
//! with generated `#legacyN`/`:legacyN` placeholders, so one parser and one evaluator serve
//! both forms and they cannot drift. Mixing a legacy parameter with its expression form, or
//! with the placeholder maps, is refused as DynamoDB refuses it.

use std::collections::BTreeMap;

use crate::api::wire::{
    AttributeUpdate, ExpectedValue, LegacyConditions, WireItem, WireMap, WireNames,
};
use crate::model::{AttributeValue, Item};
use crate::{Error, Result};

/// Builds expression text, collecting the placeholders it invents.
#[derive(Default)]
pub struct Builder {
    names: BTreeMap<String, String>,
    values: Item,
}

impl Builder {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#legacy{}", self.names.len());
        self.names
            .insert(placeholder.clone(), attribute.to_string());
        placeholder
    }

    fn value(&mut self, v: AttributeValue) -> String {
        let placeholder = format!(":legacy{}", self.values.len());
        self.values.insert(placeholder.clone(), v);
        placeholder
    }

    /// The placeholder maps the expressions built so far need.
    pub fn maps(self) -> (Option<WireNames>, Option<WireItem>) {
        (
            (!self.names.is_empty()).then_some(WireMap(self.names)),
            (!self.values.is_empty()).then_some(WireItem(self.values)),
        )
    }

    /// One legacy condition as expression text.
    fn condition(
        &mut self,
        attribute: &str,
        operator: &str,
        values: Vec<AttributeValue>,
    ) -> Result<String> {
        let arity = match operator {
            "NULL" | "NOT_NULL" => Some(0),
            "BETWEEN" => Some(2),
            "IN" => None,
            "EQ" | "NE" | "LE" | "LT" | "GE" | "GT" | "CONTAINS" | "NOT_CONTAINS"
            | "BEGINS_WITH" => Some(1),
            other => {
                return Err(Error::validation(format!(
                    "1 validation error detected: Value '{other}' at 'comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set: [IN, NULL, BETWEEN, LT, NOT_CONTAINS, EQ, GT, NOT_NULL, NE, LE, BEGINS_WITH, GE, CONTAINS]"
                )));
            }
        };
        if arity.map_or(values.is_empty(), |n| values.len() != n) {
            return Err(Error::validation(format!(
                "One or more parameter values were invalid: Invalid number of argument(s) for the {operator} ComparisonOperator"
            )));
        }
        let name = self.name(attribute);
        let mut placeholders: Vec<String> = values.into_iter().map(|v| self.value(v)).collect();
        let one = placeholders.first().cloned().unwrap_or_default();
        Ok(match operator {
            "EQ" => format!("{name} = {one}"),
            "NE" => format!("{name} <> {one}"),
            "LE" => format!("{name} <= {one}"),
            "LT" => format!("{name} < {one}"),
            "GE" => format!("{name} >= {one}"),
            "GT" => format!("{name} > {one}"),
            "NULL" => format!("attribute_not_exists({name})"),
            "NOT_NULL" => format!("attribute_exists({name})"),
            "CONTAINS" => format!("contains({name}, {one})"),
            "NOT_CONTAINS" => format!("NOT contains({name}, {one})"),
            "BEGINS_WITH" => format!("begins_with({name}, {one})"),
            "BETWEEN" => {
                let high = placeholders.pop().unwrap_or_default();
                format!("{name} BETWEEN {one} AND {high}")
            }
            _ => format!("{name} IN ({})", placeholders.join(", ")),
        })
    }

    /// `KeyConditions`, `QueryFilter` or `ScanFilter` as one expression.
    ///
    /// # Errors
    /// DynamoDB's `ValidationException`s for an unknown operator or a wrong operand count.
    pub fn conditions(
        &mut self,
        conditions: LegacyConditions,
        operator: Option<&str>,
    ) -> Result<String> {
        let join = join_operator(operator)?;
        let parts = conditions
            .0
            .into_iter()
            .map(|(attribute, c)| {
                let op = c.comparison_operator.ok_or_else(|| {
                    Error::validation(
                        "1 validation error detected: Value null at 'comparisonOperator' failed to satisfy constraint: Member must not be null",
                    )
                })?;
                let values = c.attribute_value_list.map(|l| l.0.into_iter().map(|v| v.0).collect()).unwrap_or_default();
                self.condition(&attribute, &op, values).map(|t| format!("({t})"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(parts.join(join))
    }

    /// `Expected` as one condition expression.
    ///
    /// # Errors
    /// DynamoDB's `ValidationException`s for inconsistent `Value`/`Exists` or operators.
    pub fn expected(
        &mut self,
        expected: WireMap<ExpectedValue>,
        operator: Option<&str>,
    ) -> Result<String> {
        let join = join_operator(operator)?;
        let mut parts = Vec::new();
        for (attribute, e) in expected.0 {
            let part = match (e.comparison_operator, e.value, e.exists) {
                (Some(op), None, None) => {
                    let values = e
                        .attribute_value_list
                        .map(|l| l.0.into_iter().map(|v| v.0).collect())
                        .unwrap_or_default();
                    self.condition(&attribute, &op, values)?
                }
                (Some(_), _, _) => {
                    return Err(Error::validation(
                        "One or more parameter values were invalid: Value and Exists are incompatible with AttributeValueList and ComparisonOperator",
                    ));
                }
                (None, Some(v), None | Some(true)) => {
                    self.condition(&attribute, "EQ", vec![v.0])?
                }
                (None, None, Some(false)) => self.condition(&attribute, "NULL", Vec::new())?,
                (None, Some(_), Some(false)) => {
                    return Err(Error::validation(format!(
                        "One or more parameter values were invalid: Value cannot be used when Exists is false for Attribute: {attribute}"
                    )));
                }
                (None, None, _) => {
                    return Err(Error::validation(format!(
                        "One or more parameter values were invalid: Value must be provided when Exists is true for Attribute: {attribute}"
                    )));
                }
            };
            parts.push(format!("({part})"));
        }
        Ok(parts.join(join))
    }

    /// `AttributesToGet` as a projection expression.
    pub fn attributes_to_get(&mut self, names: Vec<String>) -> String {
        names
            .iter()
            .map(|n| self.name(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `AttributeUpdates` as an update expression.
    ///
    /// # Errors
    /// DynamoDB's `ValidationException`s for an unknown action or a missing value.
    pub fn attribute_updates(&mut self, updates: WireMap<AttributeUpdate>) -> Result<String> {
        let (mut set, mut remove, mut add, mut delete) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (attribute, u) in updates.0 {
            let name = self.name(&attribute);
            match (u.action.as_deref().unwrap_or("PUT"), u.value) {
                ("PUT", Some(v)) => set.push(format!("{name} = {}", self.value(v.0))),
                ("DELETE", None) => remove.push(name),
                ("DELETE", Some(v)) => delete.push(format!("{name} {}", self.value(v.0))),
                ("ADD", Some(v)) => add.push(format!("{name} {}", self.value(v.0))),
                ("PUT" | "ADD", None) => {
                    return Err(Error::validation(
                        "One or more parameter values were invalid: Only DELETE action is allowed when no attribute value is specified",
                    ));
                }
                (other, _) => {
                    return Err(Error::validation(format!(
                        "1 validation error detected: Value '{other}' at 'attributeUpdates.{attribute}.member.action' failed to satisfy constraint: Member must satisfy enum value set: [ADD, PUT, DELETE]"
                    )));
                }
            }
        }
        let mut text = Vec::new();
        for (keyword, parts) in [
            ("SET", set),
            ("REMOVE", remove),
            ("ADD", add),
            ("DELETE", delete),
        ] {
            if !parts.is_empty() {
                text.push(format!("{keyword} {}", parts.join(", ")));
            }
        }
        Ok(text.join(" "))
    }
}

fn join_operator(operator: Option<&str>) -> Result<&'static str> {
    match operator {
        None | Some("AND") => Ok(" AND "),
        Some("OR") => Ok(" OR "),
        Some(other) => Err(Error::validation(format!(
            "1 validation error detected: Value '{other}' at 'conditionalOperator' failed to satisfy constraint: Member must satisfy enum value set: [OR, AND]"
        ))),
    }
}

/// Refuses a request that mixes legacy and expression parameters, as DynamoDB does.
///
/// # Errors
/// `ValidationException` naming both kinds.
pub fn refuse_mixing(legacy: &[(&str, bool)], expressions: &[(&str, bool)]) -> Result<()> {
    let legacy: Vec<&str> = legacy.iter().filter(|(_, p)| *p).map(|(n, _)| *n).collect();
    let expressions: Vec<&str> = expressions
        .iter()
        .filter(|(_, p)| *p)
        .map(|(n, _)| *n)
        .collect();
    if !legacy.is_empty() && !expressions.is_empty() {
        return Err(Error::validation(format!(
            "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {{{}}} Expression parameters: {{{}}}",
            legacy.join(", "),
            expressions.join(", ")
        )));
    }
    Ok(())
}

/// A request's expression members.
#[derive(Default)]
pub struct Expressions {
    /// `KeyConditionExpression`.
    pub key_condition: Option<String>,
    /// `ConditionExpression`.
    pub condition: Option<String>,
    /// `UpdateExpression`.
    pub update: Option<String>,
    /// `FilterExpression`.
    pub filter: Option<String>,
    /// `ProjectionExpression`.
    pub projection: Option<String>,
    /// `ExpressionAttributeNames`.
    pub names: Option<WireNames>,
    /// `ExpressionAttributeValues`.
    pub values: Option<WireItem>,
}

/// A request's legacy members.
#[derive(Default)]
pub struct Legacy {
    /// `KeyConditions`.
    pub key_conditions: Option<LegacyConditions>,
    /// `Expected`.
    pub expected: Option<WireMap<ExpectedValue>>,
    /// `QueryFilter` or `ScanFilter`, under its name.
    pub filter: Option<(&'static str, LegacyConditions)>,
    /// `ConditionalOperator`.
    pub conditional_operator: Option<String>,
    /// `AttributesToGet`.
    pub attributes_to_get: Option<Vec<String>>,
    /// `AttributeUpdates`.
    pub attribute_updates: Option<WireMap<AttributeUpdate>>,
}

/// The expressions a request means: its own, or its legacy members rewritten.
///
/// # Errors
/// DynamoDB's `ValidationException` for a request mixing the two forms, or for a malformed
/// legacy member.
pub fn resolve(e: Expressions, l: Legacy) -> Result<Expressions> {
    let legacy = [
        ("KeyConditions", l.key_conditions.is_some()),
        ("Expected", l.expected.is_some()),
        (
            l.filter.as_ref().map_or("QueryFilter", |(n, _)| *n),
            l.filter.is_some(),
        ),
        ("ConditionalOperator", l.conditional_operator.is_some()),
        ("AttributesToGet", l.attributes_to_get.is_some()),
        ("AttributeUpdates", l.attribute_updates.is_some()),
    ];
    if !legacy.iter().any(|(_, present)| *present) {
        return Ok(e);
    }
    refuse_mixing(
        &legacy,
        &[
            ("KeyConditionExpression", e.key_condition.is_some()),
            ("ConditionExpression", e.condition.is_some()),
            ("UpdateExpression", e.update.is_some()),
            ("FilterExpression", e.filter.is_some()),
            ("ProjectionExpression", e.projection.is_some()),
        ],
    )?;
    if e.names.is_some() {
        return Err(Error::validation(
            "ExpressionAttributeNames can only be specified when using expressions",
        ));
    }
    if e.values.is_some() {
        return Err(Error::validation(
            "ExpressionAttributeValues can only be specified when using expressions",
        ));
    }
    let op = l.conditional_operator.as_deref();
    let mut b = Builder::default();
    let key_condition = l
        .key_conditions
        .map(|c| b.conditions(c, None))
        .transpose()?;
    let condition = l.expected.map(|x| b.expected(x, op)).transpose()?;
    let filter = l.filter.map(|(_, c)| b.conditions(c, op)).transpose()?;
    if l.attributes_to_get.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::validation(
            "1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    let projection = l.attributes_to_get.map(|names| b.attributes_to_get(names));
    let update = l
        .attribute_updates
        .map(|u| b.attribute_updates(u))
        .transpose()?
        .filter(|text| !text.is_empty());
    let (names, values) = b.maps();
    Ok(Expressions {
        key_condition,
        condition,
        update,
        filter,
        projection,
        names,
        values,
    })
}
