//! CreateTable's `GlobalSecondaryIndexes` and `LocalSecondaryIndexes`: validated as DynamoDB
//! validates them, with its messages, into the [`IndexSpec`]s the table is created with.

use std::collections::BTreeSet;

use crate::api::ops::create_table::{hash_then_range, key_schema_shape};
use crate::api::ops::{bad_name, name_constraints_broken};
use crate::api::wire::{KeySchemaElement, ProvisionedThroughput, SecondaryIndexWire};
use crate::model::index::{
    IndexKind, IndexSpec, IndexState, MAX_GLOBAL_INDEXES, MAX_KEY_ATTRIBUTES, MAX_LOCAL_INDEXES,
    MAX_PROJECTED_ATTRIBUTES, Projection,
};
use crate::model::table::Billing;
use crate::model::{KeyAttribute, KeySchema};
use crate::{Error, Result};

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::validation(format!(
        "One or more parameter values were invalid: {message}"
    ))
}

/// What a CreateTable's indexes are validated against.
pub struct TableKeys<'a> {
    /// The table's key.
    pub schema: &'a KeySchema,
    /// Its `AttributeDefinitions`.
    pub definitions: &'a [KeyAttribute],
    /// Its billing (a global index's throughput must agree with it).
    pub billing: &'a Billing,
}

/// Validates both index lists into specs, global ones first, ids from 1.
///
/// # Errors
/// DynamoDB's `ValidationException`s.
pub fn index_specs(
    table: &TableKeys<'_>,
    global: Option<&[SecondaryIndexWire]>,
    local: Option<&[SecondaryIndexWire]>,
) -> Result<Vec<IndexSpec>> {
    let mut specs = Vec::new();
    for (kind, list, member, max) in [
        (
            IndexKind::Global,
            global,
            "globalSecondaryIndexes",
            MAX_GLOBAL_INDEXES,
        ),
        (
            IndexKind::Local,
            local,
            "localSecondaryIndexes",
            MAX_LOCAL_INDEXES,
        ),
    ] {
        let Some(list) = list else { continue };
        if list.is_empty() {
            return Err(invalid(format!(
                "List of {} is empty",
                if kind == IndexKind::Global {
                    "GlobalSecondaryIndexes"
                } else {
                    "LocalSecondaryIndexes"
                }
            )));
        }
        if list.len() > max {
            return Err(invalid(if kind == IndexKind::Global {
                format!("GlobalSecondaryIndex count exceeds the per-table limit of {max}")
            } else {
                format!("Number of LocalSecondaryIndexes exceeds per-table limit of {max}")
            }));
        }
        for (i, wire) in list.iter().enumerate() {
            let id = u32::try_from(specs.len() + 1).map_err(|_| invalid("too many indexes"))?;
            let spec = index_spec(table, kind, wire, &format!("{member}.{}.member", i + 1), id)?;
            if specs.iter().any(|s: &IndexSpec| s.name == spec.name) {
                return Err(invalid(format!("Duplicate index name: {}", spec.name)));
            }
            specs.push(spec);
        }
    }
    let projected: usize = specs
        .iter()
        .map(|s| match &s.projection {
            Projection::Include(names) => names.len(),
            _ => 0,
        })
        .sum();
    if projected > MAX_PROJECTED_ATTRIBUTES {
        return Err(invalid(format!(
            "The number of projected attributes in all indexes exceeds the limit of {MAX_PROJECTED_ATTRIBUTES}, provided: {projected}"
        )));
    }
    Ok(specs)
}

fn index_name(name: Option<&String>, member: &str) -> Result<String> {
    let name = name.ok_or_else(|| {
        Error::validation(format!(
            "1 validation error detected: Value null at '{member}.indexName' failed to satisfy constraint: Member must not be null"
        ))
    })?;
    let broken = name_constraints_broken(name);
    if broken.is_empty() {
        Ok(name.clone())
    } else {
        Err(bad_name(name, &format!("{member}.indexName"), &broken))
    }
}

/// An index's key: HASH elements, then RANGE elements, every one defined.
fn index_key(
    table: &TableKeys<'_>,
    kind: IndexKind,
    name: &str,
    elements: Option<&[KeySchemaElement]>,
    member: &str,
) -> Result<(Vec<KeyAttribute>, Vec<KeyAttribute>)> {
    let elements = elements.ok_or_else(|| {
        Error::validation(format!(
            "1 validation error detected: Value null at '{member}.keySchema' failed to satisfy constraint: Member must not be null"
        ))
    })?;
    // A global index's key may have up to four HASH and four RANGE attributes (DynamoDB's
    // multi-attribute keys); a local index's has one of each, like a table's.
    let most = if kind == IndexKind::Global {
        2 * MAX_KEY_ATTRIBUTES
    } else {
        2
    };
    key_schema_shape(elements, &format!("{member}.keySchema"), most)?;
    let hashes = elements.iter().filter(|e| e.key_type == "HASH").count();
    if kind == IndexKind::Local || elements.len() == 2 && hashes == 1 {
        hash_then_range(elements)?;
    } else {
        if elements[hashes..].iter().any(|e| e.key_type == "HASH") {
            return Err(invalid(
                "All HASH key attributes must precede RANGE key attributes in the KeySchema",
            ));
        }
        if hashes > MAX_KEY_ATTRIBUTES {
            return Err(invalid(
                "The KeySchema exceeds the maximum allowed number of HASH key attributes",
            ));
        }
        if elements.len() - hashes > MAX_KEY_ATTRIBUTES {
            return Err(invalid(
                "The KeySchema exceeds the maximum allowed number of RANGE key attributes",
            ));
        }
        let mut names = BTreeSet::new();
        if !elements
            .iter()
            .all(|e| names.insert(e.attribute_name.as_str()))
        {
            return Err(invalid(
                "The KeySchema contains multiple key attributes with the same name",
            ));
        }
    }
    let undefined: Vec<&str> = elements
        .iter()
        .map(|e| e.attribute_name.as_str())
        .filter(|n| !table.definitions.iter().any(|d| d.name == *n))
        .collect();
    if !undefined.is_empty() {
        let defined: Vec<&str> = table.definitions.iter().map(|a| a.name.as_str()).collect();
        return Err(invalid(format!(
            "Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
            undefined.join(", "),
            defined.join(", ")
        )));
    }
    let attr = |e: &KeySchemaElement| {
        table
            .definitions
            .iter()
            .find(|d| d.name == e.attribute_name)
            .cloned()
            .ok_or_else(|| Error::internal("a defined attribute vanished"))
    };
    let partition = elements[..hashes]
        .iter()
        .map(attr)
        .collect::<Result<Vec<_>>>()?;
    let sort = elements[hashes..]
        .iter()
        .map(attr)
        .collect::<Result<Vec<_>>>()?;
    if kind == IndexKind::Local {
        if table.schema.sort.is_none() {
            return Err(invalid(
                "Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex",
            ));
        }
        if partition[0].name != table.schema.partition.name {
            return Err(invalid(format!(
                "Index KeySchema does not have the same leading hash key as table KeySchema for index: {name}. index hash key: {}, table hash key: {}",
                partition[0].name, table.schema.partition.name
            )));
        }
        if elements.len() != 2 {
            return Err(invalid(format!(
                "Index KeySchema does not have a range key for index: {name}"
            )));
        }
    }
    Ok((partition, sort))
}

fn projection(
    wire: Option<&crate::api::wire::ProjectionWire>,
    member: &str,
    keys: &BTreeSet<&str>,
) -> Result<Projection> {
    let wire = wire.ok_or_else(|| {
        Error::validation(format!(
            "1 validation error detected: Value null at '{member}.projection' failed to satisfy constraint: Member must not be null"
        ))
    })?;
    let non_key = wire.non_key_attributes.as_ref().map(|l| &l.0);
    let kind = wire.projection_type.as_deref().unwrap_or("");
    match (kind, non_key) {
        ("ALL" | "KEYS_ONLY", Some(_)) => Err(invalid(format!(
            "ProjectionType is {kind}, but NonKeyAttributes is specified"
        ))),
        ("ALL", None) => Ok(Projection::All),
        ("KEYS_ONLY", None) => Ok(Projection::KeysOnly),
        ("INCLUDE", None) => Err(invalid(
            "ProjectionType is INCLUDE, but NonKeyAttributes is not specified",
        )),
        ("INCLUDE", Some(names)) => {
            if names.is_empty() {
                return Err(Error::validation(format!(
                    "1 validation error detected: Value '[]' at '{member}.projection.nonKeyAttributes' failed to satisfy constraint: Member must have length greater than or equal to 1"
                )));
            }
            let mut seen = BTreeSet::new();
            for n in names {
                if !seen.insert(n.as_str()) {
                    return Err(invalid(format!(
                        "Duplicate element in NonKeyAttributes: {n}"
                    )));
                }
            }
            // Key attributes are always projected; naming them again is harmless in DynamoDB.
            Ok(Projection::Include(
                names
                    .iter()
                    .filter(|n| !keys.contains(n.as_str()))
                    .cloned()
                    .collect(),
            ))
        }
        ("", _) => Err(invalid("Unknown ProjectionType: null")),
        (other, _) => Err(Error::validation(format!(
            "1 validation error detected: Value '{other}' at '{member}.projection.projectionType' failed to satisfy constraint: Member must satisfy enum value set: [ALL, INCLUDE, KEYS_ONLY]"
        ))),
    }
}

fn throughput(
    table: &TableKeys<'_>,
    kind: IndexKind,
    name: &str,
    pt: Option<&ProvisionedThroughput>,
) -> Result<Option<(u64, u64)>> {
    match (kind, table.billing, pt) {
        (IndexKind::Local, _, _) => Ok(None),
        (IndexKind::Global, Billing::PayPerRequest, None) => Ok(None),
        (IndexKind::Global, Billing::PayPerRequest, Some(_)) => Err(invalid(format!(
            "ProvisionedThroughput should not be specified for index: {name} when BillingMode is PAY_PER_REQUEST"
        ))),
        (IndexKind::Global, Billing::Provisioned { .. }, None) => Err(invalid(format!(
            "ProvisionedThroughput is not specified for index: {name}"
        ))),
        (IndexKind::Global, Billing::Provisioned { .. }, Some(pt)) => {
            match crate::api::ops::create_table::billing(Some("PROVISIONED"), Some(pt))? {
                Billing::Provisioned { read, write } => Ok(Some((read, write))),
                Billing::PayPerRequest => Ok(None),
            }
        }
    }
}

/// The provisioned throughput UpdateTable gives an existing global index of `table`,
/// validated as for a new one: required on a provisioned table, refused on an on-demand one.
///
/// # Errors
/// DynamoDB's `ValidationException`s.
pub fn updated_throughput(
    table: &TableKeys<'_>,
    index: &str,
    pt: Option<&ProvisionedThroughput>,
) -> Result<Option<(u64, u64)>> {
    throughput(table, IndexKind::Global, index, pt)
}

/// One global index that UpdateTable creates, validated against the table.
///
/// # Errors
/// DynamoDB's `ValidationException`s.
pub fn created_index(table: &TableKeys<'_>, wire: &SecondaryIndexWire) -> Result<IndexSpec> {
    index_spec(
        table,
        IndexKind::Global,
        wire,
        "globalSecondaryIndexUpdates.1.member.create",
        0,
    )
}

fn index_spec(
    table: &TableKeys<'_>,
    kind: IndexKind,
    wire: &SecondaryIndexWire,
    member: &str,
    id: u32,
) -> Result<IndexSpec> {
    let name = index_name(wire.index_name.as_ref(), member)?;
    let elements = wire.key_schema.as_ref().map(|l| l.0.as_slice());
    let (partition, sort) = index_key(table, kind, &name, elements, member)?;
    let mut keys: BTreeSet<&str> = partition
        .iter()
        .chain(&sort)
        .map(|a| a.name.as_str())
        .collect();
    keys.extend(table.schema.attribute_names());
    let projection = projection(wire.projection.as_ref(), member, &keys)?;
    let throughput = throughput(table, kind, &name, wire.provisioned_throughput.as_ref())?;
    Ok(IndexSpec {
        name,
        kind,
        id,
        partition,
        sort,
        projection,
        throughput,
        state: IndexState::Active,
    })
}

/// Every attribute definition must be used by the table's key or an index's.
///
/// # Errors
/// DynamoDB's `ValidationException` naming the unused ones.
pub fn check_all_used(table: &TableKeys<'_>, indexes: &[IndexSpec]) -> Result<()> {
    let mut used: BTreeSet<&str> = table.schema.attribute_names().into_iter().collect();
    for i in indexes {
        used.extend(i.key_attributes().map(|a| a.name.as_str()));
    }
    if table
        .definitions
        .iter()
        .all(|d| used.contains(d.name.as_str()))
    {
        return Ok(());
    }
    if indexes.is_empty() {
        return Err(invalid(
            "Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions",
        ));
    }
    let defined: Vec<&str> = table.definitions.iter().map(|d| d.name.as_str()).collect();
    let used: Vec<&str> = used.into_iter().collect();
    Err(invalid(format!(
        "Some AttributeDefinitions are not used. AttributeDefinitions: [{}], keys used: [{}]",
        defined.join(", "),
        used.join(", ")
    )))
}
