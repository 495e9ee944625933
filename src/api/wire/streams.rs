//! The DynamoDB Streams API's shapes (`DynamoDBStreams_20120810`), as boto3's
//! `dynamodbstreams` client and the AWS CLI send and expect them.

use serde::{Deserialize, Serialize};

use crate::api::wire::{KeySchemaElement, WireItem};

/// ListStreams request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsInput {
    /// Only this table's streams.
    pub table_name: Option<String>,
    /// At most this many (1 to 100).
    pub limit: Option<i64>,
    /// Start after this stream.
    pub exclusive_start_stream_arn: Option<String>,
}

/// One stream in ListStreams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSummary {
    /// StreamArn.
    pub stream_arn: String,
    /// TableName.
    pub table_name: String,
    /// StreamLabel.
    pub stream_label: String,
}

/// ListStreams response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsOutput {
    /// The streams.
    pub streams: Vec<StreamSummary>,
    /// Where the next page starts, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_evaluated_stream_arn: Option<String>,
}

/// DescribeStream request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamInput {
    /// StreamArn.
    pub stream_arn: Option<String>,
    /// At most this many shards (1 to 100).
    pub limit: Option<i64>,
    /// Start after this shard.
    pub exclusive_start_shard_id: Option<String>,
}

/// A shard's sequence numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    /// The first.
    pub starting_sequence_number: String,
    /// The last, once the shard is closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

/// One shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    /// ShardId.
    pub shard_id: String,
    /// Its sequence numbers.
    pub sequence_number_range: SequenceNumberRange,
    /// The shard it follows, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
}

/// DescribeStream's StreamDescription.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescription {
    /// StreamArn.
    pub stream_arn: String,
    /// StreamLabel.
    pub stream_label: String,
    /// `ENABLED` or `DISABLED`.
    pub stream_status: String,
    /// StreamViewType.
    pub stream_view_type: String,
    /// When it was enabled, epoch seconds.
    pub creation_request_date_time: f64,
    /// TableName.
    pub table_name: String,
    /// The table's key schema.
    pub key_schema: Vec<KeySchemaElement>,
    /// Its shards.
    pub shards: Vec<Shard>,
    /// The last shard listed, when more follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_evaluated_shard_id: Option<String>,
}

/// DescribeStream response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamOutput {
    /// The stream.
    pub stream_description: StreamDescription,
}

/// GetShardIterator request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorInput {
    /// StreamArn.
    pub stream_arn: Option<String>,
    /// ShardId.
    pub shard_id: Option<String>,
    /// `TRIM_HORIZON`, `LATEST`, `AT_SEQUENCE_NUMBER` or `AFTER_SEQUENCE_NUMBER`.
    pub shard_iterator_type: Option<String>,
    /// For the last two types.
    pub sequence_number: Option<String>,
}

/// GetShardIterator response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorOutput {
    /// The iterator.
    pub shard_iterator: String,
}

/// GetRecords request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsInput {
    /// ShardIterator.
    pub shard_iterator: Option<String>,
    /// At most this many records (1 to 1000).
    pub limit: Option<i64>,
}

/// A record's `dynamodb` member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamRecordBody {
    /// When the write was made, epoch seconds.
    pub approximate_creation_date_time: f64,
    /// The item's key.
    pub keys: WireItem,
    /// The item after the write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_image: Option<WireItem>,
    /// The item before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_image: Option<WireItem>,
    /// SequenceNumber.
    pub sequence_number: String,
    /// SizeBytes.
    pub size_bytes: u64,
    /// StreamViewType.
    pub stream_view_type: String,
}

/// Who made a change, for time to live's deletes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// `Service`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `dynamodb.amazonaws.com`.
    #[serde(rename = "PrincipalId")]
    pub principal_id: String,
}

/// One record in GetRecords.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordWire {
    /// A unique id of the record.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: String,
    /// `1.1`.
    pub event_version: String,
    /// `aws:dynamodb`.
    pub event_source: String,
    /// The region.
    pub aws_region: String,
    /// The change.
    pub dynamodb: StreamRecordBody,
    /// Set for time to live's deletes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<UserIdentity>,
}

/// GetRecords response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsOutput {
    /// The records.
    pub records: Vec<RecordWire>,
    /// Where to read next; absent once a closed shard is read to its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_shard_iterator: Option<String>,
}
