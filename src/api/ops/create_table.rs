//! CreateTable: validates the schema and billing, picks the table's identity on this node
//! (the leader), and proposes it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::api::AppState;
use crate::api::ops::index_schema::{TableKeys, check_all_used, index_specs};
use crate::api::ops::streams::requested_view;
use crate::api::ops::{Request, new_table_name, required};
use crate::api::wire::{
    CreateTableInput, CreateTableOutput, KeySchemaElement, ProvisionedThroughput,
    TableDescriptionWire,
};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service;
use crate::model::table::{Billing, TableSpec};
use crate::model::{KeyAttribute, KeySchema, KeyType};
use crate::store::{Command, Outcome};
use crate::{Error, Result};

/// An attribute type from its DynamoDB name, with DynamoDB's message naming `member`.
///
/// # Errors
/// `ValidationException` for anything but S, N or B.
pub fn key_type(t: &str, member: &str) -> Result<KeyType> {
    match t {
        "S" => Ok(KeyType::S),
        "N" => Ok(KeyType::N),
        "B" => Ok(KeyType::B),
        other => Err(Error::validation(format!(
            "1 validation error detected: Value '{other}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
        ))),
    }
}

/// The billing a CreateTable or UpdateTable asks for (no `BillingMode` means `PROVISIONED`).
///
/// # Errors
/// DynamoDB's `ValidationException`s for a bad mode or throughput.
pub fn billing(mode: Option<&str>, pt: Option<&ProvisionedThroughput>) -> Result<Billing> {
    match mode {
        Some("PAY_PER_REQUEST") => {
            if pt.is_some() {
                return Err(Error::validation(
                    "One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
                ));
            }
            Ok(Billing::PayPerRequest)
        }
        None | Some("PROVISIONED") => {
            let (Some(read), Some(write)) = (
                pt.and_then(|p| p.read_capacity_units),
                pt.and_then(|p| p.write_capacity_units),
            ) else {
                return Err(Error::validation(
                    "One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
                ));
            };
            for (v, member) in [(read, "readCapacityUnits"), (write, "writeCapacityUnits")] {
                if v < 1 {
                    return Err(Error::validation(format!(
                        "1 validation error detected: Value '{v}' at 'provisionedThroughput.{member}' failed to satisfy constraint: Member must have value greater than or equal to 1"
                    )));
                }
            }
            Ok(Billing::Provisioned {
                read: read.unsigned_abs(),
                write: write.unsigned_abs(),
            })
        }
        Some(other) => Err(Error::validation(format!(
            "1 validation error detected: Value '{other}' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
        ))),
    }
}

/// A key of one HASH element and at most one RANGE element after it, with another name: the
/// checks DynamoDB makes of a table's key and of a local (or single-attribute) index's key.
///
/// # Errors
/// DynamoDB's `ValidationException`s.
pub fn hash_then_range(elements: &[KeySchemaElement]) -> Result<()> {
    if let Some(second) = elements.get(1) {
        if second.key_type != "RANGE" {
            return Err(Error::validation(
                "Invalid KeySchema: The second KeySchemaElement is not a RANGE key type",
            ));
        }
        if second.attribute_name == elements[0].attribute_name {
            return Err(Error::validation(
                "Both the Hash Key and the Range Key element in the KeySchema have the same name",
            ));
        }
    }
    Ok(())
}

/// The checks every key schema (a table's at `path` `keySchema`, or an index's) passes before
/// its attributes are looked at: 1 to `most` elements, each `HASH` or `RANGE` with a name, the
/// first `HASH`.
///
/// # Errors
/// DynamoDB's `ValidationException`s, naming `path`.
pub fn key_schema_shape(elements: &[KeySchemaElement], path: &str, most: usize) -> Result<()> {
    if elements.is_empty() || elements.len() > most {
        let bound = if elements.is_empty() {
            "greater than or equal to 1".to_string()
        } else {
            format!("less than or equal to {most}")
        };
        return Err(Error::validation(format!(
            "1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must have length {bound}"
        )));
    }
    for (i, e) in elements.iter().enumerate() {
        if e.key_type != "HASH" && e.key_type != "RANGE" {
            return Err(Error::validation(format!(
                "1 validation error detected: Value '{}' at '{path}.{}.member.keyType' failed to satisfy constraint: Member must satisfy enum value set: [HASH, RANGE]",
                e.key_type,
                i + 1
            )));
        }
        if e.attribute_name.is_empty() {
            return Err(Error::validation(
                "One or more parameter values were invalid: An AttributeName in KeySchema must not be empty",
            ));
        }
    }
    if elements[0].key_type != "HASH" {
        return Err(Error::validation(
            "Invalid KeySchema: The first KeySchemaElement is not a HASH key type",
        ));
    }
    Ok(())
}

/// Validates a CreateTable request into a key schema and attribute definitions.
fn schema(input: &CreateTableInput) -> Result<(KeySchema, Vec<KeyAttribute>)> {
    let elements = &required(input.key_schema.as_ref(), "keySchema")?.0;
    let definitions = &required(input.attribute_definitions.as_ref(), "attributeDefinitions")?.0;
    key_schema_shape(elements, "keySchema", 2)?;
    hash_then_range(elements)?;
    let mut attrs = Vec::new();
    for (i, d) in definitions.iter().enumerate() {
        if attrs
            .iter()
            .any(|a: &KeyAttribute| a.name == d.attribute_name)
        {
            return Err(Error::validation(
                "Cannot have two attributes with the same name",
            ));
        }
        attrs.push(KeyAttribute {
            name: d.attribute_name.clone(),
            key_type: key_type(
                &d.attribute_type,
                &format!("attributeDefinitions.{}.member.attributeType", i + 1),
            )?,
        });
    }
    let find = |name: &str| attrs.iter().find(|a| a.name == name).cloned();
    let missing: Vec<&str> = elements
        .iter()
        .map(|e| e.attribute_name.as_str())
        .filter(|n| find(n).is_none())
        .collect();
    if !missing.is_empty() {
        let defined: Vec<&str> = attrs.iter().map(|a| a.name.as_str()).collect();
        return Err(Error::validation(format!(
            "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [{}], AttributeDefinitions: [{}]",
            missing.join(", "),
            defined.join(", ")
        )));
    }
    let partition = find(&elements[0].attribute_name)
        .ok_or_else(|| Error::internal("partition key vanished"))?;
    let sort = elements.get(1).and_then(|e| find(&e.attribute_name));
    Ok((KeySchema { partition, sort }, attrs))
}

/// Runs CreateTable.
pub async fn run(app: &AppState, req: &mut Request) -> Result<CreateTableOutput> {
    let input: CreateTableInput = req.input().await?;
    let NewTable {
        spec,
        indexes,
        stream,
    } = parse(&input, &req.region)?;
    let checked = spec.name.clone();
    if app
        .node
        .read(move |store| store.table(&checked))
        .await?
        .is_some()
    {
        return Err(Error::ResourceInUse(format!(
            "Table already exists: {}",
            spec.name
        )));
    }
    let command = if let Some(view) = stream {
        Command::CreateTableWithStream {
            spec,
            indexes,
            view,
            shard_entries: app.node.tuning().stream_shard_entries,
        }
    } else if indexes.is_empty() {
        Command::CreateTable(spec)
    } else {
        Command::CreateIndexedTable { spec, indexes }
    };
    match app.node.propose(&command).await? {
        Outcome::Table(desc) => Ok(CreateTableOutput {
            table_description: TableDescriptionWire::from_model(&desc),
        }),
        other => Err(Error::internal(format!("CreateTable applied as {other:?}"))),
    }
}

/// Runs CreateTable on the leaderless engine.
pub async fn run_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<CreateTableOutput> {
    let input: CreateTableInput = req.input().await?;
    let table = parse(&input, &req.region)?;
    let desc = service::create_table(node, table.spec, table.indexes, table.stream).await?;
    Ok(CreateTableOutput {
        table_description: TableDescriptionWire::from_model(&desc),
    })
}

/// What a valid CreateTable asks for.
struct NewTable {
    spec: TableSpec,
    indexes: Vec<crate::model::index::IndexSpec>,
    stream: Option<crate::model::stream::StreamView>,
}

/// Checks a CreateTable input as DynamoDB does, and picks the table's identity.
fn parse(input: &CreateTableInput, region: &str) -> Result<NewTable> {
    let name = new_table_name(input.table_name.as_ref())?;
    let (key_schema, attribute_definitions) = schema(input)?;
    let billing = billing(
        input.billing_mode.as_deref(),
        input.provisioned_throughput.as_ref(),
    )?;
    let keys = TableKeys {
        schema: &key_schema,
        definitions: &attribute_definitions,
        billing: &billing,
    };
    let indexes = index_specs(
        &keys,
        input
            .global_secondary_indexes
            .as_ref()
            .map(|l| l.0.as_slice()),
        input
            .local_secondary_indexes
            .as_ref()
            .map(|l| l.0.as_slice()),
    )?;
    check_all_used(&keys, &indexes)?;
    let stream = match &input.stream_specification {
        Some(spec) => requested_view(spec)?,
        None => None,
    };
    let created_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Ok(NewTable {
        spec: TableSpec {
            arn: format!("arn:aws:dynamodb:{region}:000000000000:table/{name}"),
            name,
            key_schema,
            attribute_definitions,
            billing,
            table_uuid: uuid::Uuid::new_v4().to_string(),
            created_at_ms,
        },
        indexes,
        stream,
    })
}
