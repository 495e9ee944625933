//! The DynamoDB Streams API (`DynamoDBStreams_20120810`): ListStreams, DescribeStream,
//! GetShardIterator and GetRecords, answered by any node from its own applied state. Every
//! node holds the same records under the same sequence numbers (they are made at apply), so a
//! reader can move to another node and resume after the last sequence number it saw.
//!
//! A stream's shards are ranges of log entries (`--stream-shard-entries` each); DescribeStream
//! lists those that hold records, each with the one before as its parent, and a shard closes
//! once a later one has records or the stream is disabled. A shard iterator is a plain string
//! naming the stream, the shard, the next sequence number to read and when it was issued; it
//! expires after 15 minutes as DynamoDB's do. A sequence number beyond the node's last record is accepted (a node that
//! lags simply has nothing there yet) where DynamoDB, which has no lagging replicas to read,
//! would refuse it.
//!
//! In `--mode dynamo` the same operations read the leaderless engine's change records
//! ([`crate::dynamo::service`]): a stream has one shard per node, each holding the changes of
//! the keys that node is primary for, read from that node over the mesh. Records of one item
//! are all in one shard, in the order its primary saw them; sequence numbers name their
//! shard (see [`SEQ_NODES`]).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::api::AppState;
use crate::api::ops::{Request, required};
use crate::api::wire::streams::{
    DescribeStreamInput, DescribeStreamOutput, GetRecordsInput, GetRecordsOutput,
    GetShardIteratorInput, GetShardIteratorOutput, ListStreamsInput, ListStreamsOutput, RecordWire,
    SequenceNumberRange, Shard, StreamDescription, StreamRecordBody, StreamSummary, UserIdentity,
};
use crate::api::wire::{StreamSpecification, WireItem, key_schema_wire};
use crate::dynamo::driver::DynamoHandle;
use crate::dynamo::service::{self, SEQ_NODES};
use crate::model::stream::{StreamInfo, StreamRecord, StreamView, format_seq, parse_seq};
use crate::{Error, Result};

/// How long a shard iterator may be used: DynamoDB's 15 minutes.
pub const ITERATOR_LIFETIME_MS: u64 = 15 * 60 * 1000;
/// How far in the future an iterator's issue time may lie (clocks of the nodes of one
/// machine agree; more means the iterator was made up).
const ITERATOR_CLOCK_SLACK_MS: u64 = 60_000;
/// The most bytes of records one GetRecords answers with: DynamoDB's 1 MB.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The view a `StreamSpecification` asks for: `None` for a stream disabled (or not asked for).
///
/// # Errors
/// DynamoDB's `ValidationException` for a missing `StreamEnabled`, a missing view type on an
/// enabled stream, or an unknown view type.
pub fn requested_view(spec: &StreamSpecification) -> Result<Option<StreamView>> {
    let enabled = required(spec.stream_enabled, "streamSpecification.streamEnabled")?;
    let view = match spec.stream_view_type.as_deref() {
        None => None,
        Some(text) => Some(StreamView::parse(text).ok_or_else(|| {
            Error::validation(format!(
                "1 validation error detected: Value '{text}' at 'streamSpecification.streamViewType' failed to satisfy constraint: Member must satisfy enum value set: [NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY]"
            ))
        })?),
    };
    match (enabled, view) {
        (true, None) => Err(Error::validation(
            "One or more parameter values were invalid: StreamViewType is required when StreamEnabled is true",
        )),
        (true, view) => Ok(view),
        (false, _) => Ok(None),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn stream_not_found(arn: &str) -> Error {
    Error::ResourceNotFound(format!(
        "Requested resource not found: Stream: {arn} not found"
    ))
}

/// A `Limit` member within `1..=max`, or `default` when absent.
fn limit(value: Option<i64>, max: i64, default: usize) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(n) if n < 1 => Err(Error::validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ))),
        Some(n) if n > max => Err(Error::validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to {max}"
        ))),
        Some(n) => usize::try_from(n).map_err(Error::internal),
    }
}

async fn find(app: &AppState, arn: String) -> Result<StreamInfo> {
    let found = {
        let arn = arn.clone();
        app.node.read(move |store| store.stream(&arn)).await?
    };
    found.ok_or_else(|| stream_not_found(&arn))
}

/// Runs ListStreams.
pub async fn list(app: &AppState, req: &mut Request) -> Result<ListStreamsOutput> {
    let input: ListStreamsInput = req.input().await?;
    let limit = limit(input.limit, 100, 100)?;
    let all = app.node.read(|store| store.streams()).await?;
    Ok(list_page(&all, &input, limit))
}

/// Runs ListStreams in `--mode dynamo`.
pub async fn list_leaderless(node: &DynamoHandle, req: &mut Request) -> Result<ListStreamsOutput> {
    let input: ListStreamsInput = req.input().await?;
    let limit = limit(input.limit, 100, 100)?;
    let all = service::list_streams(node).await?;
    Ok(list_page(&all, &input, limit))
}

/// A page of ListStreams' answer from every stream, oldest first.
fn list_page(all: &[StreamInfo], input: &ListStreamsInput, limit: usize) -> ListStreamsOutput {
    let of_table: Vec<&StreamInfo> = all
        .iter()
        .filter(|s| input.table_name.as_ref().is_none_or(|t| *t == s.table))
        .collect();
    let start = input
        .exclusive_start_stream_arn
        .as_ref()
        .and_then(|arn| of_table.iter().position(|s| s.arn() == *arn))
        .map_or(0, |at| at + 1);
    let mut streams: Vec<StreamSummary> = of_table
        .iter()
        .skip(start)
        .take(limit + 1)
        .map(|s| StreamSummary {
            stream_arn: s.arn(),
            table_name: s.table.clone(),
            stream_label: s.label.clone(),
        })
        .collect();
    let more = streams.len() > limit;
    streams.truncate(limit);
    ListStreamsOutput {
        last_evaluated_stream_arn: more
            .then(|| streams.last().map(|s| s.stream_arn.clone()))
            .flatten(),
        streams,
    }
}

/// Runs DescribeStream.
pub async fn describe(app: &AppState, req: &mut Request) -> Result<DescribeStreamOutput> {
    let input: DescribeStreamInput = req.input().await?;
    let arn = required(input.stream_arn, "streamArn")?;
    let limit = limit(input.limit, 100, 100)?;
    let info = find(app, arn.clone()).await?;
    let after = match input.exclusive_start_shard_id.as_deref() {
        Some(id) => Some(info.parse_shard(id).ok_or_else(|| {
            Error::validation(format!(
                "ExclusiveStartShardId {id} is not a shard of {arn}"
            ))
        })?),
        None => None,
    };
    let (info, mut shards) = app
        .node
        .read(move |store| store.stream_shards(&arn, after, limit + 1))
        .await?
        .ok_or_else(|| stream_not_found(&info.arn()))?;
    let more = shards.len() > limit;
    shards.truncate(limit);
    let shards = shards
        .iter()
        .map(|s| Shard {
            shard_id: info.shard_id(s.k),
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: format_seq(s.start),
                ending_sequence_number: s
                    .closed
                    .then(|| format_seq(s.last.unwrap_or(s.start).max(s.start))),
            },
            parent_shard_id: s.parent.map(|p| info.shard_id(p)),
        })
        .collect();
    Ok(description(&info, shards, more))
}

/// DescribeStream's answer: `shards` of `info`, and `more` if there are more after them.
fn description(info: &StreamInfo, shards: Vec<Shard>, more: bool) -> DescribeStreamOutput {
    DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_arn: info.arn(),
            stream_label: info.label.clone(),
            stream_status: info.status().into(),
            stream_view_type: info.view.as_str().into(),
            creation_request_date_time: (info.created_ms / 1000) as f64,
            table_name: info.table.clone(),
            key_schema: key_schema_wire([&info.key_schema.partition], &info.key_schema.sort),
            last_evaluated_shard_id: more
                .then(|| shards.last().map(|s: &Shard| s.shard_id.clone()))
                .flatten(),
            shards,
        },
    }
}

/// The node whose shard of `info` `shard` names, if it names one of `members`.
fn shard_node(info: &StreamInfo, members: &[u64], shard: &str) -> Option<u64> {
    info.parse_shard(shard).filter(|k| members.contains(k))
}

/// Runs DescribeStream in `--mode dynamo`: one shard per node, none with a parent. A shard's
/// range starts at the first number its node could give a record; shards are open while the
/// stream is enabled (each node goes on recording), and give no ending number once it is
/// disabled (that would mean asking every node).
pub async fn describe_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<DescribeStreamOutput> {
    let input: DescribeStreamInput = req.input().await?;
    let arn = required(input.stream_arn, "streamArn")?;
    let limit = limit(input.limit, 100, 100)?;
    let info = service::find_stream(node, &arn).await?;
    let after = match input.exclusive_start_shard_id.as_deref() {
        Some(id) => Some(shard_node(&info, &node.members, id).ok_or_else(|| {
            Error::validation(format!(
                "ExclusiveStartShardId {id} is not a shard of {arn}"
            ))
        })?),
        None => None,
    };
    let mut members = node.members.to_vec();
    members.sort_unstable();
    let mut shards: Vec<Shard> = members
        .into_iter()
        .filter(|k| after.is_none_or(|a| *k > a))
        .take(limit + 1)
        .map(|k| Shard {
            shard_id: info.shard_id(k),
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: format_seq(SEQ_NODES + k),
                ending_sequence_number: None,
            },
            parent_shard_id: None,
        })
        .collect();
    let more = shards.len() > limit;
    shards.truncate(limit);
    Ok(description(&info, shards, more))
}

/// A shard iterator's content.
struct Iterator {
    arn: String,
    shard: String,
    next: u64,
    issued_ms: u64,
}

impl Iterator {
    /// GetShardIterator's answer: an iterator issued now.
    fn issued_now(arn: String, shard: String, next: u64) -> GetShardIteratorOutput {
        GetShardIteratorOutput {
            shard_iterator: Iterator {
                arn,
                shard,
                next,
                issued_ms: now_ms(),
            }
            .encode(),
        }
    }

    /// Checks that the iterator is neither expired nor from the future; the time now.
    fn check_age(&self) -> Result<u64> {
        let now = now_ms();
        if now.saturating_sub(self.issued_ms) > ITERATOR_LIFETIME_MS {
            return Err(Error::ExpiredIterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ITERATOR_LIFETIME_MS} milliseconds.",
                self.issued_ms, now
            )));
        }
        if self.issued_ms > now.saturating_add(ITERATOR_CLOCK_SLACK_MS) {
            return Err(Error::validation(format!(
                "Invalid ShardIterator: issued in the future ({} ms, now {now})",
                self.issued_ms
            )));
        }
        Ok(now)
    }

    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.arn, self.shard, self.next, self.issued_ms
        )
    }

    fn decode(text: &str) -> Result<Iterator> {
        let invalid = || Error::validation(format!("Invalid ShardIterator: {text}"));
        let mut parts = text.rsplitn(4, '|');
        let issued_ms = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let next = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)?;
        let shard = parts.next().ok_or_else(invalid)?.to_string();
        let arn = parts.next().ok_or_else(invalid)?.to_string();
        Ok(Iterator {
            arn,
            shard,
            next,
            issued_ms,
        })
    }
}

fn trimmed(info: &StreamInfo) -> Error {
    Error::TrimmedDataAccess(format!(
        "The operation attempted to read past the oldest stream record in a shard: records of {} before sequence number {} have been trimmed",
        info.arn(),
        format_seq(info.trimmed_to)
    ))
}

/// What GetShardIterator asks for.
struct IteratorRequest {
    arn: String,
    shard: String,
    kind: String,
    /// The sequence number to start at, for `AT_`/`AFTER_SEQUENCE_NUMBER` (one past the one
    /// named for `AFTER`); `None` for `TRIM_HORIZON` and `LATEST`.
    position: Option<u64>,
}

impl IteratorRequest {
    async fn read(req: &mut Request) -> Result<IteratorRequest> {
        let input: GetShardIteratorInput = req.input().await?;
        let arn = required(input.stream_arn, "streamArn")?;
        let shard = required(input.shard_id, "shardId")?;
        let kind = required(input.shard_iterator_type, "shardIteratorType")?;
        let at = |after: bool| -> Result<u64> {
            let text = input.sequence_number.as_deref().ok_or_else(|| {
                Error::validation(format!(
                    "Must specify a sequence number for iterator type {kind}"
                ))
            })?;
            let seq = parse_seq(text)
                .ok_or_else(|| Error::validation(format!("Invalid SequenceNumber: {text}")))?;
            seq.checked_add(u64::from(after))
                .ok_or_else(|| Error::validation(format!("Invalid SequenceNumber: {text}")))
        };
        let position = match kind.as_str() {
            "TRIM_HORIZON" | "LATEST" => None,
            "AT_SEQUENCE_NUMBER" => Some(at(false)?),
            "AFTER_SEQUENCE_NUMBER" => Some(at(true)?),
            other => {
                return Err(Error::validation(format!(
                    "1 validation error detected: Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_SEQUENCE_NUMBER, TRIM_HORIZON]"
                )));
            }
        };
        Ok(IteratorRequest {
            arn,
            shard,
            kind,
            position,
        })
    }
}

/// Runs GetShardIterator.
pub async fn iterator(app: &AppState, req: &mut Request) -> Result<GetShardIteratorOutput> {
    let IteratorRequest {
        arn,
        shard,
        kind,
        position,
    } = IteratorRequest::read(req).await?;
    // The shard's state and, for LATEST, nothing of its records.
    let page = {
        let (wanted, shard) = (arn.clone(), shard.clone());
        app.node
            .read(move |store| store.shard_page(&wanted, &shard, u64::MAX, 0, 0))
            .await?
            .ok_or_else(|| stream_not_found(&arn))?
    };
    let (info, found) = (&page.info, &page.shard);
    let end = info.shard_start(found.k.saturating_add(1));
    let next = match (kind.as_str(), position) {
        ("LATEST", _) => found.last.map_or(found.start, |l| (l + 1).max(found.start)),
        (_, Some(seq)) if seq < info.trimmed_to => return Err(trimmed(info)),
        (_, Some(seq)) if seq < found.start || seq >= end => {
            return Err(Error::validation(format!(
                "Invalid SequenceNumber {} for shard {shard}: it holds {} to {}",
                format_seq(seq),
                format_seq(found.start),
                format_seq(end - 1)
            )));
        }
        (_, Some(seq)) => seq,
        (_, None) => found.start,
    };
    Ok(Iterator::issued_now(arn, shard, next))
}

/// Runs GetRecords.
pub async fn records(app: &AppState, req: &mut Request) -> Result<GetRecordsOutput> {
    let input: GetRecordsInput = req.input().await?;
    let text = required(input.shard_iterator, "shardIterator")?;
    let limit = limit(input.limit, 1000, 1000)?;
    let it = Iterator::decode(&text)?;
    let now = it.check_age()?;
    let (arn, shard, from) = (it.arn.clone(), it.shard.clone(), it.next);
    let page = app
        .node
        .read(move |store| store.shard_page(&arn, &shard, from, limit, MAX_RECORD_BYTES))
        .await?
        .ok_or_else(|| stream_not_found(&it.arn))?;
    let info = &page.info;
    if it.next < info.trimmed_to {
        return Err(trimmed(info));
    }
    let records = page.records;
    let next = records.last().map_or(it.next, |(seq, _)| seq + 1);
    // A closed shard read to its end has no next iterator: the reader moves on to its child
    // (DescribeStream), or is done when the stream is disabled.
    let ended = page.shard.closed && page.shard.last.is_none_or(|l| next > l);
    Ok(records_output(
        info,
        records,
        it,
        (!ended).then_some(next),
        now,
    ))
}

/// GetRecords' answer: `records` of `info`, and an iterator like `it` reading on from `next`
/// (none once the shard is closed and read to its end).
fn records_output(
    info: &StreamInfo,
    records: Vec<(u64, StreamRecord)>,
    it: Iterator,
    next: Option<u64>,
    now: u64,
) -> GetRecordsOutput {
    let region = info.table_arn.split(':').nth(3).unwrap_or("us-east-1");
    GetRecordsOutput {
        records: records
            .into_iter()
            .map(|(seq, r)| record_wire(info, region, seq, r))
            .collect(),
        next_shard_iterator: next.map(|next| {
            Iterator {
                next,
                issued_ms: now,
                ..it
            }
            .encode()
        }),
    }
}

/// Runs GetShardIterator in `--mode dynamo`. `LATEST` asks the shard's node where its records
/// end; the other types need no round trip.
pub async fn iterator_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<GetShardIteratorOutput> {
    let IteratorRequest {
        arn,
        shard,
        kind,
        position,
    } = IteratorRequest::read(req).await?;
    let info = service::find_stream(node, &arn).await?;
    let k = shard_node(&info, &node.members, &shard).ok_or_else(|| stream_not_found(&arn))?;
    let next = match position {
        // AFTER asked for one past the number named: the shard's next is one record on.
        Some(seq) => {
            let after = kind == "AFTER_SEQUENCE_NUMBER";
            let named = seq.saturating_sub(u64::from(after));
            let invalid = || {
                Error::validation(format!(
                    "Invalid SequenceNumber {} for shard {shard}: its numbers end in {k} in base {SEQ_NODES}",
                    format_seq(named)
                ))
            };
            if named % SEQ_NODES != k || named < SEQ_NODES {
                return Err(invalid());
            }
            (named / SEQ_NODES + u64::from(after))
                .checked_mul(SEQ_NODES)
                .and_then(|n| n.checked_add(k))
                .ok_or_else(invalid)?
        }
        None if kind == "LATEST" => {
            let (_, page) = service::shard_page(node, &info, k, 0, 0, 0).await?;
            page.next
        }
        None => k,
    };
    Ok(Iterator::issued_now(arn, shard, next))
}

/// Runs GetRecords in `--mode dynamo`: a page of the shard's records, read from its node.
pub async fn records_leaderless(
    node: &DynamoHandle,
    req: &mut Request,
) -> Result<GetRecordsOutput> {
    let input: GetRecordsInput = req.input().await?;
    let text = required(input.shard_iterator, "shardIterator")?;
    let limit = limit(input.limit, 1000, 1000)?;
    let it = Iterator::decode(&text)?;
    let now = it.check_age()?;
    let info = service::find_stream(node, &it.arn).await?;
    let k = shard_node(&info, &node.members, &it.shard).ok_or_else(|| stream_not_found(&it.arn))?;
    let (records, page) =
        service::shard_page(node, &info, k, it.next, limit, MAX_RECORD_BYTES).await?;
    if it.next < page.first && it.next >= SEQ_NODES {
        return Err(Error::TrimmedDataAccess(format!(
            "The operation attempted to read past the oldest stream record in a shard: records of {} before sequence number {} have been trimmed",
            info.arn(),
            format_seq(page.first)
        )));
    }
    // A disabled stream's shard read to its end is closed: no next iterator.
    let ended = info.disabled_ms.is_some() && page.at_end;
    Ok(records_output(
        &info,
        records,
        it,
        (!ended).then_some(page.next),
        now,
    ))
}

fn record_wire(info: &StreamInfo, region: &str, seq: u64, r: StreamRecord) -> RecordWire {
    RecordWire {
        event_id: format!("{:016x}{:016x}", info.id, seq),
        event_name: r.event.as_str().into(),
        event_version: "1.1".into(),
        event_source: "aws:dynamodb".into(),
        aws_region: region.into(),
        dynamodb: StreamRecordBody {
            approximate_creation_date_time: (r.at_ms / 1000) as f64,
            keys: WireItem(r.keys),
            new_image: r.new.map(WireItem),
            old_image: r.old.map(WireItem),
            sequence_number: format_seq(seq),
            size_bytes: r.size,
            stream_view_type: info.view.as_str().into(),
        },
        user_identity: r.by_ttl.then(|| UserIdentity {
            kind: "Service".into(),
            principal_id: "dynamodb.amazonaws.com".into(),
        }),
    }
}
