//! `kvsim watch`: follows a table's change feed (its DynamoDB stream) live and prints each
//! change with its diff: the seed's `Watch`, built on the Streams API.
//!
//! It reads from the node asked and, when that node stops answering, from the next node the
//! cluster's status lists, resuming at the sequence number after the last change it printed:
//! every node holds the same records under the same numbers, so nothing is skipped and
//! nothing printed twice. A node that lags simply has nothing new yet.
//!
//! A stream of `--mode dynamo` has parallel shards (one per node, none with a parent): they are
//! read in turn, each from where it was left, so an item's changes print in order and
//! different items' interleave. A shard whose node is down is skipped until it answers again.

use std::time::Duration;

use serde_json::json;

use crate::api::wire::streams::{
    DescribeStreamInput, DescribeStreamOutput, GetRecordsInput, GetRecordsOutput,
    GetShardIteratorInput, GetShardIteratorOutput, RecordWire, Shard,
};
use crate::cli::client::Client;
use crate::cli::commands::stream::enable_hint;
use crate::cli::commands::{TableInfo, describe_key, key_from_args, node_addrs, table_info};
use crate::cli::patch::{json_patch, merge_patch};
use crate::cli::plain::item_to_plain;
use crate::cli::render::write_stdout;
use crate::cli::{Common, Output};
use crate::model::Item;
use crate::model::stream::{format_seq, parse_seq, seq_version};
use crate::{Error, Result};

const STREAMS: &str = "DynamoDBStreams_20120810";
/// How long to wait before asking again when a read found nothing new.
const POLL: Duration = Duration::from_millis(200);

/// Where to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    /// Only changes made from now on.
    Latest,
    /// Every change the stream still holds (24 hours by default).
    TrimHorizon,
}

/// How to print each change (table output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The change and the item as it left it (or as it was, for a removal).
    Events,
    /// The change and its RFC 6902 JSON Patch.
    JsonPatch,
    /// The change and its RFC 7386 Merge Patch.
    MergePatch,
}

/// Options of `watch`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The table to watch; it needs an enabled stream (`kvsim stream --enable ...`).
    #[arg(long)]
    pub table_name: String,
    /// Only changes to items with this partition key.
    #[arg(long)]
    pub partition_key: Option<String>,
    /// Only changes to the item with this sort key (with --partition-key).
    #[arg(long, requires = "partition_key")]
    pub sort_key: Option<String>,
    /// Start with the changes made from now on, or with every change the stream holds.
    #[arg(long, value_enum, default_value_t = From::Latest)]
    pub from: From,
    /// What to print for each change; `--output json` prints everything, one JSON object per
    /// line.
    #[arg(long, value_enum, default_value_t = Format::Events)]
    pub format: Format,
    /// Stop after this many changes (default: follow until Ctrl+C).
    #[arg(long, value_parser = crate::cli::positive)]
    pub count: Option<u64>,
    #[command(flatten)]
    pub common: Common,
}

/// Where the next read starts.
#[derive(Clone, Copy, Debug)]
enum Resume {
    /// At the stream's start or end, as `--from` says (nothing read yet).
    From(From),
    /// At this sequence number.
    At(u64),
}

/// The sequence number a kvsim shard iterator reads next (its third `|`-separated field from
/// the end; see `api::ops::streams`).
fn iterator_position(it: &str) -> Option<u64> {
    it.rsplit('|').nth(1)?.parse().ok()
}

/// Runs `watch`; returns the exit code. Ctrl+C ends it with 0.
pub async fn run(client: &Client, args: Args) -> Result<i32> {
    tokio::select! {
        result = follow(client, &args) => result,
        _ = tokio::signal::ctrl_c() => Ok(0),
    }
}

async fn follow(client: &Client, args: &Args) -> Result<i32> {
    let info = table_info(client, &args.table_name, false).await?;
    let d = &info.description;
    let spec = d.stream_specification.as_ref();
    let (true, Some(arn)) = (
        spec.is_some_and(|s| s.stream_enabled == Some(true)),
        d.latest_stream_arn.clone(),
    ) else {
        return Err(Error::validation(format!(
            "table {} has no enabled stream to watch; enable one with: {}",
            args.table_name,
            enable_hint(&args.table_name)
        )));
    };
    let view = spec
        .and_then(|s| s.stream_view_type.clone())
        .unwrap_or_default();
    if view != "NEW_AND_OLD_IMAGES"
        && (args.format != Format::Events || args.common.output == Output::Json)
    {
        eprintln!(
            "note: the stream of {} keeps {view}; diffs need both images (disable the stream, then: {})",
            args.table_name,
            enable_hint(&args.table_name)
        );
    }
    let filter = match &args.partition_key {
        Some(pk) => Some(key_from_filter(&info, pk, args.sort_key.as_deref())?),
        None => None,
    };
    let mut nodes: Vec<String> = match client.status(client.target()).await {
        Ok(status) => node_addrs(&status).into_iter().map(|(_, a)| a).collect(),
        Err(_) => Vec::new(),
    };
    // Start where asked, then go round the others.
    nodes.retain(|a| a != client.target());
    nodes.insert(0, client.target().to_string());
    let (shards, _) = all_shards(client, client.target(), &arn).await?;
    if shards.len() > 1 && shards.iter().all(|s| s.parent_shard_id.is_none()) {
        let watch = Watch {
            client,
            args,
            info: &info,
            filter: filter.as_ref(),
        };
        return watch.parallel(&arn, shards, &nodes).await;
    }
    let mut at = 0;
    let mut resume = Resume::From(args.from);
    let mut iterator: Option<String> = None;
    let mut printed = 0;
    let mut unknown = 0;
    loop {
        let node = nodes[at % nodes.len()].clone();
        let it = match iterator.take() {
            Some(it) => it,
            None => match shard_iterator(client, &node, &arn, resume).await {
                Ok(None) => {
                    eprintln!(
                        "the stream of {} was disabled; nothing more to watch",
                        args.table_name
                    );
                    return Ok(0);
                }
                Ok(Some(it)) => {
                    if let (Resume::From(_), Some(pos)) = (resume, iterator_position(&it)) {
                        resume = Resume::At(pos);
                    }
                    it
                }
                Err(Error::TrimmedDataAccess(m)) => {
                    eprintln!("warning: {m}; continuing from the oldest record kept");
                    resume = Resume::From(From::TrimHorizon);
                    continue;
                }
                // A node far behind may not know the stream yet: try the others, and give up
                // only when none does.
                Err(Error::ResourceNotFound(m)) => {
                    unknown += 1;
                    if unknown >= nodes.len() {
                        return Err(Error::ResourceNotFound(m));
                    }
                    at += 1;
                    continue;
                }
                Err(e) => {
                    at = next_node(client, &nodes, at, &e).await?;
                    continue;
                }
            },
        };
        unknown = 0;
        let page: GetRecordsOutput = match client
            .call_at(
                &node,
                &format!("{STREAMS}.GetRecords"),
                &GetRecordsInput {
                    shard_iterator: Some(it.clone()),
                    limit: None,
                },
            )
            .await
        {
            Ok(page) => page,
            Err(Error::ExpiredIterator(_)) => continue,
            Err(Error::TrimmedDataAccess(m)) => {
                eprintln!("warning: {m}; continuing from the oldest record kept");
                resume = Resume::From(From::TrimHorizon);
                continue;
            }
            Err(e) => {
                at = next_node(client, &nodes, at, &e).await?;
                continue;
            }
        };
        let empty = page.records.is_empty();
        for record in page.records {
            let seq = parse_seq(&record.dynamodb.sequence_number).ok_or_else(|| {
                Error::internal(format!(
                    "a record with sequence number {:?}",
                    record.dynamodb.sequence_number
                ))
            })?;
            resume = Resume::At(seq + 1);
            if filter.as_ref().is_some_and(|f| {
                f.iter()
                    .any(|(k, v)| record.dynamodb.keys.0.get(k) != Some(v))
            }) {
                continue;
            }
            print_change(&info, args, Some(seq_version(seq)), &record)?;
            printed += 1;
            if args.count.is_some_and(|n| printed >= n) {
                return Ok(0);
            }
        }
        // No next iterator: the shard is closed and read to its end. The next round finds
        // where to go on (its child, or the end of a disabled stream).
        iterator = page.next_shard_iterator;
        if empty {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// What following parallel shards needs.
struct Watch<'a> {
    client: &'a Client,
    args: &'a Args,
    info: &'a TableInfo,
    filter: Option<&'a Item>,
}

/// One parallel shard being followed.
struct Cursor {
    shard: String,
    iterator: Option<String>,
    /// The last sequence number printed from it, to resume after.
    after: Option<String>,
    /// Closed and read to its end.
    done: bool,
    /// Said that it could not be read (said once until it can again).
    warned: bool,
}

impl Watch<'_> {
    /// Follows parallel shards (see the module documentation) until `--count` changes were
    /// printed or every shard is closed and read.
    async fn parallel(&self, arn: &str, shards: Vec<Shard>, nodes: &[String]) -> Result<i32> {
        let mut cursors: Vec<Cursor> = shards
            .into_iter()
            .map(|s| Cursor {
                shard: s.shard_id,
                iterator: None,
                after: None,
                done: false,
                warned: false,
            })
            .collect();
        let (mut at, mut printed) = (0, 0);
        loop {
            let node = nodes[at % nodes.len()].clone();
            let (mut read, mut failed, mut open) = (false, None, 0);
            for cursor in cursors.iter_mut().filter(|c| !c.done) {
                open += 1;
                match self.read_shard(&node, arn, cursor, &mut printed).await {
                    Ok(any) => {
                        read |= any;
                        cursor.warned = false;
                    }
                    Err(Error::Unavailable(m)) => {
                        if !cursor.warned {
                            eprintln!("{} not readable now ({m}); will retry", cursor.shard);
                            cursor.warned = true;
                        }
                        failed = Some(Error::Unavailable(m));
                    }
                    Err(e) => return Err(e),
                }
                if self.args.count.is_some_and(|n| printed >= n) {
                    return Ok(0);
                }
            }
            if open == 0 {
                eprintln!(
                    "the stream of {} was disabled; nothing more to watch",
                    self.args.table_name
                );
                return Ok(0);
            }
            // Every open shard failed: perhaps the node asked is the one down.
            if let (Some(e), false) = (failed, read) {
                at = next_node(self.client, nodes, at, &e).await?;
            }
            if !read {
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Reads one page of `cursor`'s shard at `node` and prints its changes; true if it had
    /// any records.
    async fn read_shard(
        &self,
        node: &str,
        arn: &str,
        cursor: &mut Cursor,
        printed: &mut u64,
    ) -> Result<bool> {
        let it = match cursor.iterator.take() {
            Some(it) => it,
            None => {
                let (kind, seq) = match (&cursor.after, self.args.from) {
                    (Some(seq), _) => ("AFTER_SEQUENCE_NUMBER", Some(seq.clone())),
                    (None, From::Latest) => ("LATEST", None),
                    (None, From::TrimHorizon) => ("TRIM_HORIZON", None),
                };
                let out: GetShardIteratorOutput = self
                    .client
                    .call_at(
                        node,
                        &format!("{STREAMS}.GetShardIterator"),
                        &GetShardIteratorInput {
                            stream_arn: Some(arn.to_string()),
                            shard_id: Some(cursor.shard.clone()),
                            shard_iterator_type: Some(kind.into()),
                            sequence_number: seq,
                        },
                    )
                    .await?;
                out.shard_iterator
            }
        };
        let page: GetRecordsOutput = match self
            .client
            .call_at(
                node,
                &format!("{STREAMS}.GetRecords"),
                &GetRecordsInput {
                    shard_iterator: Some(it),
                    limit: None,
                },
            )
            .await
        {
            Ok(page) => page,
            Err(Error::ExpiredIterator(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let any = !page.records.is_empty();
        for record in page.records {
            cursor.after = Some(record.dynamodb.sequence_number.clone());
            if self.filter.is_some_and(|f| {
                f.iter()
                    .any(|(k, v)| record.dynamodb.keys.0.get(k) != Some(v))
            }) {
                continue;
            }
            // Versions are vector clocks here, not positions in a log.
            print_change(self.info, self.args, None, &record)?;
            *printed += 1;
            if self.args.count.is_some_and(|n| *printed >= n) {
                break;
            }
        }
        cursor.done = page.next_shard_iterator.is_none();
        cursor.iterator = page.next_shard_iterator;
        Ok(any)
    }
}

/// The key attributes a change must have to be printed.
fn key_from_filter(info: &TableInfo, pk: &str, sk: Option<&str>) -> Result<Item> {
    if sk.is_none() && info.schema.sort.is_some() {
        // Only the partition: every item in it.
        let key = crate::cli::plain::key_value(pk, &info.schema.partition, "--partition-key")?;
        return Ok(Item::from([(info.schema.partition.name.clone(), key)]));
    }
    key_from_args(info, pk, sk)
}

/// Every shard of the stream, as `node` lists them (following DescribeStream's pages).
async fn all_shards(client: &Client, node: &str, arn: &str) -> Result<(Vec<Shard>, bool)> {
    let mut shards = Vec::new();
    let mut after = None;
    loop {
        let described: DescribeStreamOutput = client
            .call_at(
                node,
                &format!("{STREAMS}.DescribeStream"),
                &DescribeStreamInput {
                    stream_arn: Some(arn.to_string()),
                    exclusive_start_shard_id: after.take(),
                    ..Default::default()
                },
            )
            .await?;
        let d = described.stream_description;
        shards.extend(d.shards);
        match d.last_evaluated_shard_id {
            Some(last) => after = Some(last),
            None => return Ok((shards, d.stream_status == "DISABLED")),
        }
    }
}

fn range_of(shard: &Shard) -> (u64, Option<u64>) {
    let r = &shard.sequence_number_range;
    (
        parse_seq(&r.starting_sequence_number).unwrap_or(0),
        r.ending_sequence_number.as_deref().and_then(parse_seq),
    )
}

/// An iterator at `node` for where `resume` says: in the shard that holds that position, or
/// the next one when that shard has nothing more. `None` once a disabled stream has nothing
/// more anywhere.
async fn shard_iterator(
    client: &Client,
    node: &str,
    arn: &str,
    resume: Resume,
) -> Result<Option<String>> {
    let (shards, disabled) = all_shards(client, node, arn).await?;
    let (shard, kind, seq) = match resume {
        Resume::From(From::Latest) => (shards.last(), "LATEST", None),
        Resume::From(From::TrimHorizon) => (shards.first(), "TRIM_HORIZON", None),
        Resume::At(seq) => {
            let at = shards
                .iter()
                .rposition(|s| range_of(s).0 <= seq)
                .unwrap_or(0);
            match shards.get(at).map(range_of) {
                // That shard is closed and read to its end: go on to the next.
                Some((_, Some(end))) if seq > end => match shards.get(at + 1) {
                    Some(next) => (Some(next), "TRIM_HORIZON", None),
                    None if disabled => return Ok(None),
                    // Its successor is not listed by this node yet.
                    None => (shards.get(at), "LATEST", None),
                },
                Some((start, _)) if seq < start => (shards.get(at), "TRIM_HORIZON", None),
                _ => (shards.get(at), "AT_SEQUENCE_NUMBER", Some(format_seq(seq))),
            }
        }
    };
    let shard = shard
        .map(|s| s.shard_id.clone())
        .ok_or_else(|| Error::internal(format!("stream {arn} has no shard")))?;
    let out: GetShardIteratorOutput = client
        .call_at(
            node,
            &format!("{STREAMS}.GetShardIterator"),
            &GetShardIteratorInput {
                stream_arn: Some(arn.to_string()),
                shard_id: Some(shard),
                shard_iterator_type: Some(kind.into()),
                sequence_number: seq,
            },
        )
        .await?;
    Ok(Some(out.shard_iterator))
}

/// After `e` at node `at`: the node to read from next, or the error when it is not one that
/// another node could answer better.
async fn next_node(client: &Client, nodes: &[String], at: usize, e: &Error) -> Result<usize> {
    if !matches!(e, Error::Unavailable(_) | Error::Internal(_)) {
        return Err(e.clone());
    }
    let next = at + 1;
    let round = next.is_multiple_of(nodes.len());
    if client.verbose() || round {
        eprintln!(
            "{} did not answer ({e}); following from {}",
            nodes[at % nodes.len()],
            nodes[next % nodes.len()]
        );
    }
    // Every node down: do not spin.
    if round {
        tokio::time::sleep(POLL).await;
    }
    Ok(next)
}

/// Prints one change; `version` is the item's version after it, where the stream's sequence
/// numbers carry it (Raft mode).
fn print_change(
    info: &TableInfo,
    args: &Args,
    version: Option<u64>,
    record: &RecordWire,
) -> Result<()> {
    let names = info.key_names();
    let body = &record.dynamodb;
    let old = body.old_image.as_ref().map(|i| item_to_plain(&i.0, &names));
    let new = body.new_image.as_ref().map(|i| item_to_plain(&i.0, &names));
    let event = record.event_name.as_str();
    // An insert has no old item and a removal no new one; a missing image otherwise means the
    // stream does not keep it, and there is no diff to show.
    let complete = (old.is_some() || event == "INSERT") && (new.is_some() || event == "REMOVE");
    let empty = json!({});
    let (jp, mp) = if complete {
        let (a, b) = (
            old.as_ref().unwrap_or(&empty),
            new.as_ref().unwrap_or(&empty),
        );
        (Some(json_patch(a, b)), merge_patch(a, b))
    } else {
        (None, None)
    };
    let time = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH
            + Duration::from_secs_f64(body.approximate_creation_date_time.max(0.0)),
    )
    .to_string();
    let by_ttl = record.user_identity.is_some();
    if args.common.output == Output::Json {
        let line = json!({
            "event": event,
            "table": info.description.table_name,
            "keys": item_to_plain(&body.keys.0, &names),
            "version": version,
            "sequence_number": body.sequence_number,
            "time": time,
            "by_ttl": by_ttl,
            "old": old,
            "new": new,
            "json_patch": jp,
            "merge_patch": mp,
        });
        return write_stdout(format_args!("{line}\n"));
    }
    let key = describe_key(&body.keys.0, info);
    let who = if by_ttl { " (time to live)" } else { "" };
    let version = version.map(|v| format!(" version {v}")).unwrap_or_default();
    write_stdout(format_args!("{time} {event:<6} {key}{version}{who}\n"))?;
    let shown = match args.format {
        Format::Events => new.or(old),
        Format::JsonPatch => jp,
        Format::MergePatch => mp.or_else(|| {
            complete.then(|| {
                json!("(no merge patch: the item holds a null, which a merge patch cannot set)")
            })
        }),
    };
    if let Some(v) = shown {
        write_stdout(format_args!("  {v}\n"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iterators_position_is_its_next_sequence_number() {
        let it = "arn:aws:dynamodb:us-east-1:0:table/T/stream/2026-11-30T22:52:10.065|shardId-1|6001|179";
        assert_eq!(iterator_position(it), Some(6001));
        assert_eq!(iterator_position("garbage"), None);
    }
}
