//! DynamoDB's JSON wire shapes (protocol `DynamoDB_20120810`, `application/x-amz-json-1.0`),
//! shared by the server and the CLI so the two cannot drift.
//!
//! Structural mismatches (a string where a list belongs) fail in serde and are reported as
//! `SerializationException`, as DynamoDB does; semantic checks on attribute values (a bad
//! number, an empty set) happen while decoding them ([`value`]) and are
//! `ValidationException`s. Required members are `Option`s so a missing one gets DynamoDB's
//! "Member must not be null" message, not a serde error. Every collection a client can make
//! large is one of [`value`]'s metered types, so the server charges what it decodes
//! ([`crate::api::decode`]).

pub mod streams;
pub mod value;

use serde::{Deserialize, Serialize};

pub use value::{Present, WireItem, WireList, WireMap, WireNames, WireValue};

use crate::model::index::{IndexKind, IndexState, Projection};
use crate::model::stream::StreamInfo;
use crate::model::table::{Billing, TableDescription};

/// The `X-Amz-Target` prefix of every DynamoDB operation.
pub const TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// The content type of requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Request header by which a client asks for a not-leader answer with a leader hint instead of
/// server-side forwarding (value `hint`). The kvsim CLI sets it.
pub const REDIRECT_HEADER: &str = "x-kvsim-redirect";
/// Request header marking a request a follower forwarded to the leader (value: its node id).
pub const FORWARDED_HEADER: &str = "x-kvsim-forwarded";
/// Response header of the leader's answer to a forwarded request: the leader's applied index
/// when it answered, which the forwarding follower applies before it relays the answer.
pub const APPLIED_HEADER: &str = "x-kvsim-applied-index";
/// Response header of GetItem, PutItem, UpdateItem and DeleteItem: the item's version, the
/// log index of its last write (of this write, for the writes).
pub const VERSION_HEADER: &str = "x-kvsim-version";
/// Request header of PutItem, UpdateItem and DeleteItem: write only if the item's version is
/// still this (0: only if the item does not exist); checked at apply like any condition, and
/// `ConditionalCheckFailedException` otherwise.
pub const EXPECTED_VERSION_HEADER: &str = "x-kvsim-expected-version";

/// In `--mode dynamo`, a read's answer header with the item's vector clock, as
/// `{node: counter, ...}`.
pub const CLOCK_HEADER: &str = "x-kvsim-clock";

/// In `--mode dynamo`, a read's answer header present when the replicas held concurrent
/// versions that the merger merged: how many there were.
pub const MERGED_HEADER: &str = "x-kvsim-merged";

/// In `--mode dynamo`, a GetItem request header (value `true`): answer every version the
/// replicas hold (siblings, when concurrent writes have not been superseded yet) in
/// `KvsimSiblings`, besides the item they resolve to.
pub const SIBLINGS_HEADER: &str = "x-kvsim-siblings";

/// One version of an item as `--mode dynamo` replicas hold it (see [`SIBLINGS_HEADER`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireSibling {
    /// The item; absent for a deletion (a tombstone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<WireItem>,
    /// Its vector clock, as `{node: counter, ...}`.
    pub clock: String,
    /// The node that coordinated the write.
    pub writer: u64,
    /// When it was written: milliseconds since the Unix epoch, from the writer's hybrid clock.
    pub stamp: u64,
}
/// One element of a KeySchema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySchemaElement {
    /// Attribute name.
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// One element of AttributeDefinitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    /// Attribute name.
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// Requested provisioned throughput.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisionedThroughput {
    /// Read capacity units.
    pub read_capacity_units: Option<i64>,
    /// Write capacity units.
    pub write_capacity_units: Option<i64>,
}

/// CreateTable request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTableInput {
    /// Table name.
    pub table_name: Option<String>,
    /// Key schema.
    pub key_schema: Option<WireList<KeySchemaElement>>,
    /// Attribute definitions.
    pub attribute_definitions: Option<WireList<AttributeDefinition>>,
    /// `PROVISIONED` (DynamoDB's default) or `PAY_PER_REQUEST`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_mode: Option<String>,
    /// Throughput, required for `PROVISIONED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,
    /// GlobalSecondaryIndexes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_secondary_indexes: Option<WireList<SecondaryIndexWire>>,
    /// LocalSecondaryIndexes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_secondary_indexes: Option<WireList<SecondaryIndexWire>>,
    /// The table's stream, if it is to have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_specification: Option<StreamSpecification>,
}

/// A secondary index as CreateTable asks for it (a local one has no throughput).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecondaryIndexWire {
    /// IndexName.
    pub index_name: Option<String>,
    /// KeySchema.
    pub key_schema: Option<WireList<KeySchemaElement>>,
    /// Projection.
    pub projection: Option<ProjectionWire>,
    /// ProvisionedThroughput (global indexes on provisioned tables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,
}

/// An index's Projection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionWire {
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_type: Option<String>,
    /// The attributes an `INCLUDE` projection keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_key_attributes: Option<WireList<String>>,
}

/// A secondary index as DescribeTable reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexDescriptionWire {
    /// IndexName.
    pub index_name: String,
    /// KeySchema.
    pub key_schema: Vec<KeySchemaElement>,
    /// Projection.
    pub projection: ProjectionDescription,
    /// `CREATING` or `ACTIVE` (global indexes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_status: Option<String>,
    /// True while a global index added by UpdateTable is filled from the table's items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfilling: Option<bool>,
    /// Throughput (global indexes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughputDescription>,
    /// Total bytes of the index's entries.
    pub index_size_bytes: u64,
    /// Entries in the index.
    pub item_count: u64,
    /// IndexArn.
    pub index_arn: String,
}

/// A Projection as DescribeTable reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionDescription {
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    /// What an `INCLUDE` projection keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_key_attributes: Option<Vec<String>>,
}

/// StreamSpecification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpecification {
    /// Whether the table has a stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_enabled: Option<bool>,
    /// What each stream record holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_view_type: Option<String>,
}

/// ProvisionedThroughput as DescribeTable reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisionedThroughputDescription {
    /// Always 0.
    pub number_of_decreases_today: u64,
    /// Read capacity units (0 for on-demand).
    pub read_capacity_units: u64,
    /// Write capacity units (0 for on-demand).
    pub write_capacity_units: u64,
}

/// BillingModeSummary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BillingModeSummary {
    /// `PROVISIONED` or `PAY_PER_REQUEST`.
    pub billing_mode: String,
    /// When the table became on-demand (its creation time), epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_update_to_pay_per_request_date_time: Option<f64>,
}

/// TableDescription, DynamoDB's full shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableDescriptionWire {
    /// Attribute definitions.
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// Table name.
    pub table_name: String,
    /// Key schema.
    pub key_schema: Vec<KeySchemaElement>,
    /// `ACTIVE` or `DELETING`.
    pub table_status: String,
    /// Creation time, epoch seconds.
    pub creation_date_time: f64,
    /// Throughput.
    pub provisioned_throughput: ProvisionedThroughputDescription,
    /// Total item bytes.
    pub table_size_bytes: u64,
    /// Item count.
    pub item_count: u64,
    /// ARN.
    pub table_arn: String,
    /// UUID.
    pub table_id: String,
    /// Billing mode.
    pub billing_mode_summary: BillingModeSummary,
    /// Always false.
    pub deletion_protection_enabled: bool,
    /// GlobalSecondaryIndexes, if the table has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_secondary_indexes: Option<Vec<IndexDescriptionWire>>,
    /// LocalSecondaryIndexes, if the table has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_secondary_indexes: Option<Vec<IndexDescriptionWire>>,
    /// The stream's settings, once the table has had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_specification: Option<StreamSpecification>,
    /// The latest stream's ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_stream_arn: Option<String>,
    /// The latest stream's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_stream_label: Option<String>,
}

/// A key schema in DynamoDB's form: `HASH` elements, then `RANGE` ones.
pub fn key_schema_wire<'a>(
    partition: impl IntoIterator<Item = &'a crate::model::KeyAttribute>,
    sort: impl IntoIterator<Item = &'a crate::model::KeyAttribute>,
) -> Vec<KeySchemaElement> {
    let element = |a: &crate::model::KeyAttribute, key_type: &str| KeySchemaElement {
        attribute_name: a.name.clone(),
        key_type: key_type.into(),
    };
    partition
        .into_iter()
        .map(|a| element(a, "HASH"))
        .chain(sort.into_iter().map(|a| element(a, "RANGE")))
        .collect()
}

impl TableDescriptionWire {
    /// The wire form of a table description.
    pub fn from_model(d: &TableDescription) -> TableDescriptionWire {
        let spec = &d.meta.spec;
        let created = spec.created_at_ms as f64 / 1000.0;
        let key_schema = key_schema_wire([&spec.key_schema.partition], &spec.key_schema.sort);
        let indexes = |kind: IndexKind| {
            let described: Vec<IndexDescriptionWire> = d
                .meta
                .indexes
                .iter()
                .zip(d.index_stats.iter().chain(std::iter::repeat(&(0, 0))))
                .filter(|(i, _)| i.kind == kind)
                .map(|(i, &(count, bytes))| IndexDescriptionWire {
                    index_name: i.name.clone(),
                    key_schema: key_schema_wire(&i.partition, &i.sort),
                    projection: ProjectionDescription {
                        projection_type: i.projection.type_name().into(),
                        non_key_attributes: match &i.projection {
                            Projection::Include(names) => Some(names.clone()),
                            _ => None,
                        },
                    },
                    index_status: (kind == IndexKind::Global).then(|| i.state.status_name().into()),
                    backfilling: matches!(i.state, IndexState::Backfilling { .. }).then_some(true),
                    provisioned_throughput: (kind == IndexKind::Global).then(|| {
                        let (read, write) = i.throughput.unwrap_or((0, 0));
                        ProvisionedThroughputDescription {
                            number_of_decreases_today: 0,
                            read_capacity_units: read,
                            write_capacity_units: write,
                        }
                    }),
                    index_size_bytes: bytes,
                    item_count: count,
                    index_arn: format!("{}/index/{}", spec.arn, i.name),
                })
                .collect();
            (!described.is_empty()).then_some(described)
        };
        let (mode, read, write, since) = match spec.billing {
            Billing::PayPerRequest => ("PAY_PER_REQUEST", 0, 0, Some(created)),
            Billing::Provisioned { read, write } => ("PROVISIONED", read, write, None),
        };
        TableDescriptionWire {
            attribute_definitions: spec
                .attribute_definitions
                .iter()
                .map(|a| AttributeDefinition {
                    attribute_name: a.name.clone(),
                    attribute_type: a.key_type.to_string(),
                })
                .collect(),
            table_name: spec.name.clone(),
            key_schema,
            table_status: d.status.as_str().into(),
            creation_date_time: created,
            provisioned_throughput: ProvisionedThroughputDescription {
                number_of_decreases_today: 0,
                read_capacity_units: read,
                write_capacity_units: write,
            },
            table_size_bytes: d.size_bytes,
            item_count: d.item_count,
            table_arn: spec.arn.clone(),
            table_id: spec.table_uuid.clone(),
            billing_mode_summary: BillingModeSummary {
                billing_mode: mode.into(),
                last_update_to_pay_per_request_date_time: since,
            },
            deletion_protection_enabled: false,
            global_secondary_indexes: indexes(IndexKind::Global),
            local_secondary_indexes: indexes(IndexKind::Local),
            stream_specification: d.stream.as_ref().map(|s| StreamSpecification {
                stream_enabled: Some(s.disabled_ms.is_none()),
                stream_view_type: s.disabled_ms.is_none().then(|| s.view.as_str().to_string()),
            }),
            latest_stream_arn: d.stream.as_ref().map(StreamInfo::arn),
            latest_stream_label: d.stream.as_ref().map(|s| s.label.clone()),
        }
    }
}

/// CreateTable response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTableOutput {
    /// The new table.
    pub table_description: TableDescriptionWire,
}

/// DeleteTable and DescribeTable request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableNameInput {
    /// Table name.
    pub table_name: Option<String>,
    /// DescribeTable only, a kvsim extension: answer from the leader after a ReadIndex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_read: Option<bool>,
}

/// DeleteTable response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteTableOutput {
    /// The table, status `DELETING`.
    pub table_description: TableDescriptionWire,
}

/// DescribeTable response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTableOutput {
    /// The table.
    pub table: TableDescriptionWire,
}

/// ListTables request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTablesInput {
    /// Start after this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_table_name: Option<String>,
    /// Page size, 1 to 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// ListTables response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTablesOutput {
    /// Names, ascending.
    pub table_names: Vec<String>,
    /// Present when more names follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_evaluated_table_name: Option<String>,
}

/// PutItem request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutItemInput {
    /// Table name.
    pub table_name: Option<String>,
    /// The item.
    pub item: Option<WireItem>,
    /// `NONE` or `ALL_OLD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values: Option<String>,
    /// ExpressionAttributeNames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_names: Option<WireNames>,
    /// ExpressionAttributeValues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_values: Option<WireItem>,
    /// ConditionExpression, checked on the item as it is when the write applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_expression: Option<String>,
    /// `NONE` or `ALL_OLD`: a failed condition answers with the item it was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<String>,
    /// Expected (legacy form of ConditionExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<WireMap<ExpectedValue>>,
    /// ConditionalOperator (legacy): `AND` (default) or `OR` between the legacy conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_operator: Option<String>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
    /// `NONE` or `SIZE` (kvsim has no local secondary indexes, so no metrics are returned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_item_collection_metrics: Option<String>,
}

/// PutItem and DeleteItem response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WriteItemOutput {
    /// The old item, with `ReturnValues: ALL_OLD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<WireItem>,
    /// The capacity units used, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<ConsumedCapacity>,
}

/// UpdateItem request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateItemInput {
    /// Table name.
    pub table_name: Option<String>,
    /// The key.
    pub key: Option<WireItem>,
    /// UpdateExpression (absent: the item is created with just its key, if missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_expression: Option<String>,
    /// ConditionExpression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_expression: Option<String>,
    /// ExpressionAttributeNames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_names: Option<WireNames>,
    /// ExpressionAttributeValues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_values: Option<WireItem>,
    /// `NONE`, `ALL_OLD`, `UPDATED_OLD`, `ALL_NEW` or `UPDATED_NEW`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values: Option<String>,
    /// `NONE` or `ALL_OLD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<String>,
    /// AttributeUpdates (legacy form of UpdateExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_updates: Option<WireMap<AttributeUpdate>>,
    /// Expected (legacy form of ConditionExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<WireMap<ExpectedValue>>,
    /// ConditionalOperator (legacy): `AND` (default) or `OR` between the legacy conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_operator: Option<String>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
    /// `NONE` or `SIZE` (kvsim has no local secondary indexes, so no metrics are returned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_item_collection_metrics: Option<String>,
}

/// One request of a BatchWriteItem: exactly one of its members is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WriteRequest {
    /// Put an item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put_request: Option<PutRequest>,
    /// Delete an item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_request: Option<DeleteRequest>,
}

/// The put of a [`WriteRequest`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRequest {
    /// The item.
    pub item: Option<WireItem>,
}

/// The delete of a [`WriteRequest`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteRequest {
    /// The key.
    pub key: Option<WireItem>,
}

/// BatchWriteItem request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchWriteItemInput {
    /// Table name to its write requests.
    pub request_items: Option<WireMap<WireList<WriteRequest>>>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
    /// `NONE` or `SIZE` (kvsim has no local secondary indexes, so no metrics are returned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_item_collection_metrics: Option<String>,
}

/// BatchWriteItem response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchWriteItemOutput {
    /// Requests not processed, to send again (always empty in Raft mode, which applies a batch
    /// whole; in leaderless mode, the writes that found too few replicas).
    pub unprocessed_items: WireMap<Vec<WriteRequest>>,
    /// The capacity units used per table, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<Vec<ConsumedCapacity>>,
}

/// The keys a BatchGetItem reads from one table, and how.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeysAndAttributes {
    /// The keys, 1 to 100.
    pub keys: Option<WireList<WireItem>>,
    /// ProjectionExpression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_expression: Option<String>,
    /// ExpressionAttributeNames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_names: Option<WireNames>,
    /// Linearizable read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_read: Option<bool>,
    /// AttributesToGet (legacy form of ProjectionExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes_to_get: Option<WireList<String>>,
}

/// BatchGetItem request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetItemInput {
    /// Table name to the keys to read.
    pub request_items: Option<WireMap<KeysAndAttributes>>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
}

/// BatchGetItem response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetItemOutput {
    /// Table name to the items found.
    pub responses: WireMap<Vec<WireItem>>,
    /// Keys not read because the answer reached 16 MB, to ask for again.
    pub unprocessed_keys: WireMap<KeysAndAttributes>,
    /// The capacity units used per table, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<Vec<ConsumedCapacity>>,
}

/// One action of a TransactWriteItems: exactly one member is set. `Put` reads `Item`; the
/// others read `Key`; `Update` reads `UpdateExpression`; `ConditionCheck` needs a condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactWriteItem {
    /// A condition on an item, writing nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_check: Option<TransactAction>,
    /// A put.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put: Option<TransactAction>,
    /// A delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<TransactAction>,
    /// An update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<TransactAction>,
}

/// The members of a transaction action (each action kind reads the ones it needs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactAction {
    /// Table name.
    pub table_name: Option<String>,
    /// The key (ConditionCheck, Delete, Update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<WireItem>,
    /// The item (Put).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<WireItem>,
    /// UpdateExpression (Update).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_expression: Option<String>,
    /// ConditionExpression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_expression: Option<String>,
    /// ExpressionAttributeNames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_names: Option<WireNames>,
    /// ExpressionAttributeValues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_values: Option<WireItem>,
    /// `NONE` or `ALL_OLD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<String>,
}

/// TransactWriteItems request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactWriteItemsInput {
    /// The actions, 1 to 100, on distinct items.
    pub transact_items: Option<WireList<TransactWriteItem>>,
    /// Makes the call idempotent for 10 minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
    /// `NONE` or `SIZE` (kvsim has no local secondary indexes, so no metrics are returned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_item_collection_metrics: Option<String>,
}

/// An empty answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Empty {}

/// TransactWriteItems response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactWriteItemsOutput {
    /// The capacity units used per table, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<Vec<ConsumedCapacity>>,
}

/// One read of a TransactGetItems.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactGetItem {
    /// The read.
    pub get: Option<TransactGet>,
}

/// The members of a transactional read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactGet {
    /// Table name.
    pub table_name: Option<String>,
    /// The key.
    pub key: Option<WireItem>,
    /// ProjectionExpression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_expression: Option<String>,
    /// ExpressionAttributeNames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_names: Option<WireNames>,
}

/// TransactGetItems request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactGetItemsInput {
    /// The reads, 1 to 100.
    pub transact_items: Option<WireList<TransactGetItem>>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
}

/// One answer of a TransactGetItems: the item, absent when there is none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ItemResponse {
    /// The item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<WireItem>,
}

/// TransactGetItems response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactGetItemsOutput {
    /// One answer per read, in order.
    pub responses: Vec<ItemResponse>,
    /// The capacity units used per table, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<Vec<ConsumedCapacity>>,
}

/// One entry of `CancellationReasons`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancellationReasonWire {
    /// `None`, `ConditionalCheckFailed`, `ValidationError`, ...
    pub code: String,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The item, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<WireItem>,
}

/// UpdateTable request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTableInput {
    /// Table name.
    pub table_name: Option<String>,
    /// `PROVISIONED` or `PAY_PER_REQUEST`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_mode: Option<String>,
    /// Capacity, for provisioned tables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,
    /// Enable or disable the table's stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_specification: Option<StreamSpecification>,
    /// Attribute definitions for the key of an index being created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_definitions: Option<WireList<AttributeDefinition>>,
    /// Global index changes: one `Create` or `Delete` (an `Update` of throughput is accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_secondary_index_updates: Option<WireList<GsiUpdateWire>>,
    /// Deletion protection: not supported yet, refused when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_protection_enabled: Option<bool>,
}

/// One of UpdateTable's `GlobalSecondaryIndexUpdates`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GsiUpdateWire {
    /// Add a global index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<SecondaryIndexWire>,
    /// Remove a global index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<IndexNameWire>,
    /// Change a global index's provisioned throughput.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<GsiThroughputWire>,
}

/// `GlobalSecondaryIndexUpdates[].Update`: an index's new provisioned throughput.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GsiThroughputWire {
    /// IndexName.
    pub index_name: Option<String>,
    /// The new throughput.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,
}

/// An index named by `IndexName`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexNameWire {
    /// IndexName.
    pub index_name: Option<String>,
}

/// UpdateTable response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTableOutput {
    /// The table as changed.
    pub table_description: TableDescriptionWire,
}

/// One tag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// 1 to 128 characters.
    pub key: Option<String>,
    /// 0 to 256 characters.
    pub value: Option<String>,
}

/// TagResource, UntagResource and ListTagsOfResource requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsInput {
    /// The table's ARN.
    pub resource_arn: Option<String>,
    /// TagResource: the tags to add.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<WireList<Tag>>,
    /// UntagResource: the keys to remove.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_keys: Option<WireList<String>>,
    /// ListTagsOfResource: where to continue (kvsim answers every tag in one page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// ListTagsOfResource response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsOutput {
    /// The tags, by key.
    pub tags: Vec<Tag>,
}

/// UpdateContinuousBackups' `PointInTimeRecoverySpecification`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PointInTimeRecoverySpecification {
    /// On or off.
    pub point_in_time_recovery_enabled: Option<bool>,
}

/// DescribeTimeToLive and UpdateTimeToLive requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLiveInput {
    /// Table name.
    pub table_name: Option<String>,
    /// UpdateTimeToLive: the new setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_live_specification: Option<TimeToLiveSpecification>,
}

/// `TimeToLiveSpecification`: UpdateTimeToLive's request member, echoed in its answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLiveSpecification {
    /// On or off.
    pub enabled: Option<bool>,
    /// The attribute holding each item's expiry, in epoch seconds.
    pub attribute_name: Option<String>,
}

/// UpdateTimeToLive response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTimeToLiveOutput {
    /// The setting as applied.
    pub time_to_live_specification: TimeToLiveSpecification,
}

/// DescribeTimeToLive response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTimeToLiveOutput {
    /// The table's time to live.
    pub time_to_live_description: TimeToLiveDescription,
}

/// `TimeToLiveDescription`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLiveDescription {
    /// `ENABLED` or `DISABLED` (kvsim changes it at once: no `ENABLING` or `DISABLING`).
    pub time_to_live_status: String,
    /// The attribute, while enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_name: Option<String>,
}

/// DescribeContinuousBackups and UpdateContinuousBackups requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContinuousBackupsInput {
    /// Table name.
    pub table_name: Option<String>,
    /// UpdateContinuousBackups: the new setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point_in_time_recovery_specification: Option<PointInTimeRecoverySpecification>,
}

/// `PointInTimeRecoveryDescription`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PointInTimeRecoveryDescription {
    /// `ENABLED` or `DISABLED`.
    pub point_in_time_recovery_status: String,
}

/// `ContinuousBackupsDescription`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContinuousBackupsDescription {
    /// Always `ENABLED`, as on DynamoDB.
    pub continuous_backups_status: String,
    /// Point-in-time recovery.
    pub point_in_time_recovery_description: PointInTimeRecoveryDescription,
}

/// DescribeContinuousBackups and UpdateContinuousBackups response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContinuousBackupsOutput {
    /// The description.
    pub continuous_backups_description: ContinuousBackupsDescription,
}

/// One endpoint of DescribeEndpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    /// Host and port.
    pub address: String,
    /// How long a client may cache it.
    pub cache_period_in_minutes: u64,
}

/// DescribeEndpoints response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeEndpointsOutput {
    /// The node answering.
    pub endpoints: Vec<Endpoint>,
}

/// DescribeLimits response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLimitsOutput {
    /// Account-wide read capacity limit.
    pub account_max_read_capacity_units: u64,
    /// Account-wide write capacity limit.
    pub account_max_write_capacity_units: u64,
    /// Per-table read capacity limit.
    pub table_max_read_capacity_units: u64,
    /// Per-table write capacity limit.
    pub table_max_write_capacity_units: u64,
}

/// One legacy condition: `{"ComparisonOperator": "EQ", "AttributeValueList": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LegacyCondition {
    /// `EQ`, `NE`, `LE`, `LT`, `GE`, `GT`, `NULL`, `NOT_NULL`, `CONTAINS`, `NOT_CONTAINS`,
    /// `BEGINS_WITH`, `IN` or `BETWEEN`.
    pub comparison_operator: Option<String>,
    /// Its operands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_value_list: Option<WireList<WireValue>>,
}

/// One entry of `Expected`: the old `Value`/`Exists` form or a [`LegacyCondition`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExpectedValue {
    /// The value the attribute must have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<WireValue>,
    /// Whether the attribute must exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The condition form's operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison_operator: Option<String>,
    /// The condition form's operands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribute_value_list: Option<WireList<WireValue>>,
}

/// One entry of `AttributeUpdates`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeUpdate {
    /// `PUT` (the default), `DELETE` or `ADD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<WireValue>,
}

/// Legacy conditions by attribute name (`KeyConditions`, `QueryFilter`, `ScanFilter`).
pub type LegacyConditions = WireMap<LegacyCondition>;

/// GetItem request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetItemInput {
    /// Table name.
    pub table_name: Option<String>,
    /// The key.
    pub key: Option<WireItem>,
    /// Linearizable read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_read: Option<bool>,
    /// ExpressionAttributeNames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_names: Option<WireNames>,
    /// ProjectionExpression: the attributes to return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_expression: Option<String>,
    /// AttributesToGet (legacy form of ProjectionExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes_to_get: Option<WireList<String>>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
}

/// GetItem response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetItemOutput {
    /// The item, absent when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<WireItem>,
    /// `--mode dynamo`, when the request asked ([`SIBLINGS_HEADER`]): every version held.
    #[serde(rename = "KvsimSiblings", skip_serializing_if = "Option::is_none")]
    pub siblings: Option<Vec<WireSibling>>,
    /// The capacity units used, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<ConsumedCapacity>,
}

/// DeleteItem request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteItemInput {
    /// Table name.
    pub table_name: Option<String>,
    /// The key.
    pub key: Option<WireItem>,
    /// `NONE` or `ALL_OLD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values: Option<String>,
    /// ExpressionAttributeNames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_names: Option<WireNames>,
    /// ExpressionAttributeValues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_values: Option<WireItem>,
    /// ConditionExpression, checked on the item as it is when the write applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_expression: Option<String>,
    /// `NONE` or `ALL_OLD`: a failed condition answers with the item it was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<String>,
    /// Expected (legacy form of ConditionExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<WireMap<ExpectedValue>>,
    /// ConditionalOperator (legacy): `AND` (default) or `OR` between the legacy conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_operator: Option<String>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
    /// `NONE` or `SIZE` (kvsim has no local secondary indexes, so no metrics are returned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_item_collection_metrics: Option<String>,
}

/// Query request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryInput {
    /// Table name.
    pub table_name: Option<String>,
    /// The secondary index to read instead of the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_name: Option<String>,
    /// The key condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_condition_expression: Option<String>,
    /// ExpressionAttributeNames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_names: Option<WireNames>,
    /// ExpressionAttributeValues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_values: Option<WireItem>,
    /// Ascending (default) or descending sort-key order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_index_forward: Option<bool>,
    /// Most items to evaluate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Resume after this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_key: Option<WireItem>,
    /// `ALL_ATTRIBUTES` or `COUNT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
    /// Linearizable read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_read: Option<bool>,
    /// ProjectionExpression: the attributes to return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_expression: Option<String>,
    /// FilterExpression: applied to each item read, after `Limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_expression: Option<String>,
    /// AttributesToGet (legacy form of ProjectionExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes_to_get: Option<WireList<String>>,
    /// KeyConditions (legacy form of KeyConditionExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_conditions: Option<LegacyConditions>,
    /// QueryFilter (legacy form of FilterExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_filter: Option<LegacyConditions>,
    /// ConditionalOperator (legacy): `AND` (default) or `OR` between the filter's conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_operator: Option<String>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
}

/// ExecuteStatement request: one PartiQL statement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecuteStatementInput {
    /// The PartiQL statement.
    pub statement: Option<String>,
    /// Values for its `?` placeholders, in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<WireList<WireValue>>,
    /// Linearizable read (a `SELECT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_read: Option<bool>,
    /// Where the previous page of a `SELECT` ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// Most items to evaluate (a `SELECT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// `NONE`, `TOTAL` or `INDEXES`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
    /// `ALL_OLD` or `NONE`: the item a failed condition saw, in the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<String>,
}

/// ExecuteStatement response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecuteStatementOutput {
    /// The items a `SELECT` found, or the image a `RETURNING` clause asked for.
    pub items: Vec<WireItem>,
    /// Present when a `SELECT` has more pages: pass it back to continue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// Where the page ended, as DynamoDB also reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_evaluated_key: Option<WireItem>,
    /// The capacity units used, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<ConsumedCapacity>,
}

/// One statement of an ExecuteTransaction.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterizedStatement {
    /// The PartiQL statement.
    pub statement: Option<String>,
    /// Values for its `?` placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<WireList<WireValue>>,
    /// `ALL_OLD` or `NONE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<String>,
}

/// ExecuteTransaction request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecuteTransactionInput {
    /// 1 to 100 statements, all reads or all writes.
    pub transact_statements: Option<WireList<ParameterizedStatement>>,
    /// Makes a retried transaction apply once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    /// `NONE`, `TOTAL` or `INDEXES`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
}

/// ExecuteTransaction response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecuteTransactionOutput {
    /// A read transaction's items, one per statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responses: Option<Vec<ItemResponse>>,
    /// The capacity units used, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<Vec<ConsumedCapacity>>,
}

/// One statement of a BatchExecuteStatement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchStatementRequest {
    /// The PartiQL statement.
    pub statement: Option<String>,
    /// Values for its `?` placeholders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<WireList<WireValue>>,
    /// Linearizable read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_read: Option<bool>,
    /// `ALL_OLD` or `NONE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<String>,
}

/// BatchExecuteStatement request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchExecuteStatementInput {
    /// 1 to 25 statements, all reads or all writes.
    pub statements: Option<WireList<BatchStatementRequest>>,
    /// `NONE`, `TOTAL` or `INDEXES`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
}

/// What one statement of a batch did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchStatementResponse {
    /// The table it named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// A read's item, if found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<WireItem>,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<BatchStatementError>,
}

/// A batch statement's failure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchStatementError {
    /// `ConditionalCheckFailed`, `DuplicateItem`, `ValidationError`, `ResourceNotFound`, ...
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The item a failed condition saw, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<WireItem>,
}

/// BatchExecuteStatement response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchExecuteStatementOutput {
    /// One per statement, in order.
    pub responses: Vec<BatchStatementResponse>,
    /// The capacity units used, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<Vec<ConsumedCapacity>>,
}

/// Scan request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScanInput {
    /// Table name.
    pub table_name: Option<String>,
    /// The secondary index to read instead of the table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_name: Option<String>,
    /// Most items to evaluate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Resume after this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_key: Option<WireItem>,
    /// `ALL_ATTRIBUTES` or `COUNT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
    /// Linearizable read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistent_read: Option<bool>,
    /// ExpressionAttributeNames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_names: Option<WireNames>,
    /// ExpressionAttributeValues.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression_attribute_values: Option<WireItem>,
    /// ProjectionExpression: the attributes to return.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_expression: Option<String>,
    /// FilterExpression: applied to each item read, after `Limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_expression: Option<String>,
    /// This worker's segment of a parallel scan, from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<i64>,
    /// The number of segments of a parallel scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_segments: Option<i64>,
    /// AttributesToGet (legacy form of ProjectionExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes_to_get: Option<WireList<String>>,
    /// ScanFilter (legacy form of FilterExpression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_filter: Option<LegacyConditions>,
    /// ConditionalOperator (legacy): `AND` (default) or `OR` between the filter's conditions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditional_operator: Option<String>,
    /// `NONE`, `TOTAL` or `INDEXES`: report the capacity units the request used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<String>,
}

/// Query and Scan response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReadPageOutput {
    /// Items (absent with `Select: COUNT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<WireItem>>,
    /// Items returned (or counted).
    pub count: usize,
    /// Items evaluated.
    pub scanned_count: usize,
    /// Present when more items may follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_evaluated_key: Option<WireItem>,
    /// The capacity units used, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed_capacity: Option<ConsumedCapacity>,
}

/// `ConsumedCapacity`: the units a request would cost on DynamoDB, when asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumedCapacity {
    /// The table.
    pub table_name: String,
    /// Units in all.
    pub capacity_units: f64,
    /// The table's share (with `INDEXES`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<Capacity>,
    /// Each global index's share (with `INDEXES`, when a read used one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_secondary_indexes: Option<std::collections::BTreeMap<String, Capacity>>,
    /// Each local index's share (with `INDEXES`, when a read used one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_secondary_indexes: Option<std::collections::BTreeMap<String, Capacity>>,
}

/// One resource's share of a [`ConsumedCapacity`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Capacity {
    /// Units.
    pub capacity_units: f64,
}

/// DynamoDB's error body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Fully qualified error type.
    #[serde(rename = "__type")]
    pub type_name: String,
    /// Human-readable message.
    #[serde(alias = "Message")]
    pub message: String,
    /// With `NotLeaderException`: the leader's id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u64>,
    /// With `NotLeaderException`: the leader's client address, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_addr: Option<String>,
    /// With `ConditionalCheckFailedException`: the item, when
    /// `ReturnValuesOnConditionCheckFailure` asked for it.
    #[serde(rename = "Item", skip_serializing_if = "Option::is_none")]
    pub item: Option<WireItem>,
    /// With `TransactionCanceledException`: each action's reason, in order.
    #[serde(
        rename = "CancellationReasons",
        skip_serializing_if = "Option::is_none"
    )]
    pub cancellation_reasons: Option<Vec<CancellationReasonWire>>,
}
