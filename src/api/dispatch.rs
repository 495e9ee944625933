//! `POST /`: DynamoDB's JSON protocol. Reads `X-Amz-Target`, decides where the request must
//! run, runs the operation, and turns any [`Error`] into DynamoDB's error shape.
//!
//! Placement: writes and `ConsistentRead` reads need the leader. On a follower, a client that
//! sent [`REDIRECT_HEADER`]`: hint` (the kvsim CLI) gets `NotLeaderException` carrying the
//! leader's address; any other client (AWS SDKs) has the request forwarded to the leader and
//! the leader's answer relayed unchanged. A forwarded request is never forwarded again, so a
//! leadership change mid-flight yields a retryable 503 instead of a loop.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use crate::api::AppState;
use crate::api::budget::{BodyError, MAX_REQUEST_BYTES};
use crate::api::decode::{decode, off_runtime};
use crate::api::ops::{self, Request};
use crate::api::wire::{
    APPLIED_HEADER, CONTENT_TYPE, EXPECTED_VERSION_HEADER, ErrorBody, FORWARDED_HEADER,
    REDIRECT_HEADER, TARGET_PREFIX, VERSION_HEADER,
};
use crate::{Error, Result};

/// The `X-Amz-Target` prefix of the DynamoDB Streams API.
pub const STREAMS_TARGET_PREFIX: &str = "DynamoDBStreams_20120810.";

/// How long a client may take to send a request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The operations kvsim serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// CreateTable.
    CreateTable,
    /// DeleteTable.
    DeleteTable,
    /// DescribeTable.
    DescribeTable,
    /// ListTables.
    ListTables,
    /// PutItem.
    PutItem,
    /// GetItem.
    GetItem,
    /// DeleteItem.
    DeleteItem,
    /// UpdateItem.
    UpdateItem,
    /// BatchWriteItem.
    BatchWriteItem,
    /// BatchGetItem.
    BatchGetItem,
    /// TransactWriteItems.
    TransactWriteItems,
    /// TransactGetItems.
    TransactGetItems,
    /// UpdateTable.
    UpdateTable,
    /// TagResource.
    TagResource,
    /// UntagResource.
    UntagResource,
    /// ListTagsOfResource.
    ListTagsOfResource,
    /// DescribeContinuousBackups.
    DescribeContinuousBackups,
    /// UpdateContinuousBackups.
    UpdateContinuousBackups,
    /// DescribeTimeToLive.
    DescribeTimeToLive,
    /// UpdateTimeToLive.
    UpdateTimeToLive,
    /// DescribeEndpoints.
    DescribeEndpoints,
    /// DescribeLimits.
    DescribeLimits,
    /// Query.
    Query,
    /// Scan.
    Scan,
    /// ExecuteStatement (PartiQL).
    ExecuteStatement,
    /// BatchExecuteStatement (PartiQL).
    BatchExecuteStatement,
    /// ExecuteTransaction (PartiQL).
    ExecuteTransaction,
    /// Streams: ListStreams.
    ListStreams,
    /// Streams: DescribeStream.
    DescribeStream,
    /// Streams: GetShardIterator.
    GetShardIterator,
    /// Streams: GetRecords.
    GetRecords,
}

/// Every operation with its name: the DynamoDB API's, then from [`STREAMS_OPS`] on the
/// Streams API's.
const OPS: [(&str, Op); 31] = [
    ("CreateTable", Op::CreateTable),
    ("DeleteTable", Op::DeleteTable),
    ("DescribeTable", Op::DescribeTable),
    ("ListTables", Op::ListTables),
    ("PutItem", Op::PutItem),
    ("GetItem", Op::GetItem),
    ("DeleteItem", Op::DeleteItem),
    ("UpdateItem", Op::UpdateItem),
    ("BatchWriteItem", Op::BatchWriteItem),
    ("BatchGetItem", Op::BatchGetItem),
    ("TransactWriteItems", Op::TransactWriteItems),
    ("TransactGetItems", Op::TransactGetItems),
    ("UpdateTable", Op::UpdateTable),
    ("TagResource", Op::TagResource),
    ("UntagResource", Op::UntagResource),
    ("ListTagsOfResource", Op::ListTagsOfResource),
    ("DescribeContinuousBackups", Op::DescribeContinuousBackups),
    ("UpdateContinuousBackups", Op::UpdateContinuousBackups),
    ("DescribeTimeToLive", Op::DescribeTimeToLive),
    ("UpdateTimeToLive", Op::UpdateTimeToLive),
    ("DescribeEndpoints", Op::DescribeEndpoints),
    ("DescribeLimits", Op::DescribeLimits),
    ("Query", Op::Query),
    ("Scan", Op::Scan),
    ("ExecuteStatement", Op::ExecuteStatement),
    ("BatchExecuteStatement", Op::BatchExecuteStatement),
    ("ExecuteTransaction", Op::ExecuteTransaction),
    ("ListStreams", Op::ListStreams),
    ("DescribeStream", Op::DescribeStream),
    ("GetShardIterator", Op::GetShardIterator),
    ("GetRecords", Op::GetRecords),
];

/// Where the Streams API's operations start in [`OPS`].
const STREAMS_OPS: usize = 27;

impl Op {
    /// Parses an operation name.
    pub fn parse(name: &str) -> Option<Op> {
        Self::find(&OPS[..STREAMS_OPS], name)
    }

    /// Parses an operation name of the Streams API.
    pub fn parse_streams(name: &str) -> Option<Op> {
        Self::find(&OPS[STREAMS_OPS..], name)
    }

    fn find(ops: &[(&str, Op)], name: &str) -> Option<Op> {
        ops.iter().find(|(n, _)| *n == name).map(|(_, op)| *op)
    }

    /// The operation's name, as its API spells it.
    pub fn name(self) -> &'static str {
        OPS.iter()
            .find(|(_, op)| *op == self)
            .map_or("unknown", |(name, _)| name)
    }

    /// True for operations that change state and so must run on the leader.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Op::CreateTable
                | Op::DeleteTable
                | Op::PutItem
                | Op::DeleteItem
                | Op::UpdateItem
                | Op::BatchWriteItem
                | Op::TransactWriteItems
                | Op::UpdateTable
                | Op::TagResource
                | Op::UntagResource
                | Op::UpdateContinuousBackups
                | Op::UpdateTimeToLive
                // Transactional reads are serializable: the leader answers them.
                | Op::TransactGetItems
                | Op::ExecuteTransaction
        )
    }

    /// True for reads that honour `ConsistentRead`. DescribeTable is a kvsim extension: with
    /// `ConsistentRead` it answers from the leader, so a client sees a table it just created
    /// (the kvsim CLI relies on this; SDKs never send it).
    pub fn is_item_read(self) -> bool {
        matches!(
            self,
            Op::GetItem
                | Op::Query
                | Op::Scan
                | Op::DescribeTable
                | Op::BatchGetItem
                | Op::ExecuteStatement
                | Op::BatchExecuteStatement
        )
    }
}

/// Adds DynamoDB's `x-amz-crc32` header: the CRC32 of the answer's bytes as sent (after any
/// compression), which some SDKs check. Answers are small and already whole, so reading them
/// back costs a copy at most.
pub async fn add_crc32<B>(resp: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let (mut parts, body) = resp.into_parts();
    let bytes = match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return error_response(&Error::internal(format!(
                "the answer could not be read back: {e}"
            )));
        }
    };
    if let Ok(v) = HeaderValue::from_str(&crc32fast::hash(&bytes).to_string()) {
        parts.headers.insert("x-amz-crc32", v);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// An error in DynamoDB's shape, with the retry hint headers kvsim adds.
pub fn error_response(e: &Error) -> Response {
    let kind = e.kind();
    let (leader_id, leader_addr) = match e {
        Error::NotLeader {
            leader_id,
            leader_addr,
            ..
        } => (*leader_id, leader_addr.clone()),
        _ => (None, None),
    };
    let body = ErrorBody {
        type_name: kind.type_name.to_string(),
        message: e.to_string(),
        leader_id,
        leader_addr,
        item: match e {
            Error::ConditionalCheckFailed {
                item: Some(item), ..
            } => Some(crate::api::wire::WireItem((**item).clone())),
            _ => None,
        },
        cancellation_reasons: match e {
            Error::TransactionCanceled { reasons, .. } => Some(
                reasons
                    .iter()
                    .map(|r| crate::api::wire::CancellationReasonWire {
                        code: r.code.clone(),
                        message: r.message.clone(),
                        item: r.item.clone().map(crate::api::wire::WireItem),
                    })
                    .collect(),
            ),
            _ => None,
        },
    };
    let status = StatusCode::from_u16(kind.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = json_response(status, serde_json::to_vec(&body).unwrap_or_default());
    resp.extensions_mut()
        .insert(ErrorType(kind.type_name.to_string()));
    resp
}

/// The `__type` of an error answer, kept on the response for the request metrics.
#[derive(Clone, Debug)]
pub(crate) struct ErrorType(pub(crate) String);

pub(crate) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    resp
}

/// A request id in DynamoDB's shape, set once per request by [`dynamodb`] (52 characters from `A`-`Z` and `0`-`9`), unique within
/// the process and unpredictable across processes: a counter mixed with a key drawn once.
/// Cheap enough for every response (a random UUID cost a `getrandom` system call each).
pub(crate) fn request_id() -> [u8; 52] {
    static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    const DIGITS: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let key = *KEY.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut out = [0u8; 52];
    for (i, chunk) in out.chunks_mut(13).enumerate() {
        // splitmix64 of (key, counter, chunk): a bijection of the counter for each chunk.
        let mut z = key
            .wrapping_add(n.wrapping_mul(4).wrapping_add(i as u64))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        for c in chunk {
            *c = DIGITS[(z % 36) as usize];
            z /= 36;
        }
    }
    out
}

pub(crate) fn target(headers: &HeaderMap) -> Result<(&str, Op)> {
    let raw = headers
        .get("x-amz-target")
        .ok_or_else(|| Error::UnknownOperation("Missing X-Amz-Target header".into()))?
        .to_str()
        .map_err(|_| Error::UnknownOperation("X-Amz-Target is not valid text".into()))?;
    let op = raw
        .strip_prefix(TARGET_PREFIX)
        .and_then(Op::parse)
        .or_else(|| {
            raw.strip_prefix(STREAMS_TARGET_PREFIX)
                .and_then(Op::parse_streams)
        })
        .ok_or_else(|| {
            Error::UnknownOperation(format!("Operation {raw} is not supported by kvsim"))
        })?;
    Ok((raw, op))
}

/// The request's [`EXPECTED_VERSION_HEADER`], if any.
pub(crate) fn expected_version(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(value) = headers.get(EXPECTED_VERSION_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            Error::validation(format!(
                "{EXPECTED_VERSION_HEADER} must be an item version (a whole number; 0 for an item that must not exist), got {value:?}"
            ))
        })
}

/// The headers a forwarded request carries to the leader besides its body: the caller's
/// `Authorization` (its region shapes the answer) and the version a write expects.
const FORWARDED_REQUEST_HEADERS: [&str; 2] = ["authorization", EXPECTED_VERSION_HEADER];

/// The region in a SigV4 `Authorization` header's credential scope, if any.
pub(crate) fn region(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|cred| cred.split('/').nth(2))
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or("us-east-1")
        .to_string()
}

/// Whether a read's body may ask to run at the leader, known without decoding it: a GetItem,
/// Query, Scan, DescribeTable or BatchGetItem asks only with a `ConsistentRead` member, whose
/// name is then in the body as is, unless spelt with an escape (so a body holding a backslash
/// is decoded too). PartiQL statements are always decoded (a statement may write). Most reads
/// are eventual: this spares them a second decode of their body.
fn may_ask_consistent(op: Op, body: &[u8]) -> bool {
    matches!(op, Op::ExecuteStatement | Op::BatchExecuteStatement)
        || body.contains(&b'\\')
        || body.windows(14).any(|w| w == b"ConsistentRead")
}

/// The members that decide whether a read must run on the leader; nothing else is built.
#[derive(Deserialize)]
struct ConsistentPeek {
    #[serde(rename = "ConsistentRead")]
    consistent_read: Option<bool>,
    /// BatchGetItem: each table's `ConsistentRead`.
    #[serde(rename = "RequestItems")]
    request_items: Option<crate::api::wire::WireMap<TablePeek>>,
    /// ExecuteStatement: a statement that writes runs at the leader.
    #[serde(rename = "Statement")]
    statement: Option<String>,
    /// BatchExecuteStatement: each statement's text and `ConsistentRead`.
    #[serde(rename = "Statements")]
    statements: Option<Vec<StatementPeek>>,
}

#[derive(Deserialize)]
struct StatementPeek {
    #[serde(rename = "Statement")]
    statement: Option<String>,
    #[serde(rename = "ConsistentRead")]
    consistent_read: Option<bool>,
}

#[derive(Deserialize)]
struct TablePeek {
    #[serde(rename = "ConsistentRead")]
    consistent_read: Option<bool>,
}

impl ConsistentPeek {
    fn consistent(&self) -> bool {
        self.consistent_read.unwrap_or(false)
            || self
                .request_items
                .as_ref()
                .is_some_and(|t| t.0.values().any(|p| p.consistent_read.unwrap_or(false)))
            || self
                .statement
                .as_deref()
                .is_some_and(ops::execute_statement::writes)
            || self.statements.as_ref().is_some_and(|all| {
                all.iter().any(|s| {
                    s.consistent_read.unwrap_or(false)
                        || s.statement
                            .as_deref()
                            .is_some_and(ops::execute_statement::writes)
                })
            })
    }
}

/// `POST /`.
///
/// Each request runs in a `request` tracing span carrying its id (the `x-amzn-RequestId` of its
/// answer), operation, node, whether a follower forwarded it, and its table once known; its
/// end is logged at debug level with the outcome and duration, and counted for `/metrics`.
pub async fn dynamodb(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    use tracing::Instrument;
    let start = std::time::Instant::now();
    let op = target(&headers).ok().map(|(_, op)| op);
    let id = request_id();
    let id_text = std::str::from_utf8(&id).unwrap_or_default();
    let span = tracing::debug_span!(
        "request",
        id = id_text,
        op = op.map_or("unknown", Op::name),
        node = app.node.id,
        forwarded = headers.contains_key(FORWARDED_HEADER),
        table = tracing::field::Empty,
    );
    let metrics = app.metrics.clone();
    // Boxed, like the operations and the forwarding below: the server's layers move this
    // future several times per request, and a small one is cheaper to move.
    let mut resp = Box::pin(answer(app, headers, body))
        .instrument(span.clone())
        .await;
    let error = resp.extensions().get::<ErrorType>().map(|e| e.0.as_str());
    let error = match error {
        None if !resp.status().is_success() => Some("UnknownError"),
        e => e,
    };
    let took = start.elapsed();
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            outcome = error.map_or("ok", |e| e.rsplit('#').next().unwrap_or(e)),
            micros = took.as_micros() as u64,
            "request done"
        );
    });
    metrics.request(op, error, took);
    if let Ok(value) = HeaderValue::from_bytes(&id) {
        resp.headers_mut().insert("x-amzn-requestid", value);
    }
    resp
}

/// Reads a request's body within its size limit and [`BODY_TIMEOUT`], charged to `memory`;
/// or the error answer.
pub(crate) async fn read_body(
    memory: &crate::api::budget::MemoryBudget,
    body: Body,
) -> std::result::Result<(Bytes, crate::api::budget::Charge), Response> {
    use futures_util::FutureExt;
    let mut reading = std::pin::pin!(memory.read_body(body));
    // A small body has usually arrived with the headers: read it without arming a timer (one
    // poll, with a waker that does nothing; the timeout's first poll registers the real one).
    let read = match reading.as_mut().now_or_never() {
        Some(read) => Ok(read),
        None => tokio::time::timeout(BODY_TIMEOUT, reading).await,
    };
    match read {
        Ok(Ok(read)) => Ok(read),
        Ok(Err(BodyError::TooLarge)) => {
            let mut resp = error_response(&Error::validation(format!(
                "Request body exceeds the {MAX_REQUEST_BYTES} byte limit"
            )));
            *resp.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            Err(resp)
        }
        Ok(Err(BodyError::Invalid(e))) => Err(error_response(&e)),
        Err(_) => {
            let e = Error::validation(format!(
                "the request body did not arrive within {}s",
                BODY_TIMEOUT.as_secs()
            ));
            let mut resp = error_response(&e);
            *resp.status_mut() = StatusCode::REQUEST_TIMEOUT;
            Err(resp)
        }
    }
}

/// Adds the headers an operation asked for to its answer.
pub(crate) fn add_headers(resp: &mut Response, request: &Request) {
    for (name, value) in &request.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(*name, value);
        }
    }
}

/// [`dynamodb`] without the request metrics.
async fn answer(app: AppState, headers: HeaderMap, body: Body) -> Response {
    // The charge is held until the answer is built: the request's memory lives that long.
    let (body, charge) = match read_body(&app.memory, body).await {
        Ok(read) => read,
        Err(resp) => return resp,
    };
    let (target_text, op) = match target(&headers) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    if let Some(why) = app.node.failure() {
        return error_response(&Error::Unavailable(format!(
            "node {} has stopped after a fault ({why}); send requests to another node",
            app.node.id
        )));
    }
    let wants_hint = headers
        .get(REDIRECT_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"hint"));
    let forwarded = headers.contains_key(FORWARDED_HEADER);
    let (needs_leader, charge) = if !op.is_item_read() {
        (op.is_write(), charge)
    } else if !may_ask_consistent(op, &body) {
        (false, charge)
    } else {
        // Only the one member is built; the rest of the body is skipped.
        let peek_body = body.clone();
        let mut charge = charge;
        let peeked = off_runtime(peek_body.len(), move || {
            let peek = decode::<ConsistentPeek>(&peek_body, &mut charge);
            (peek, charge)
        })
        .await;
        match peeked {
            Ok((peek, charge)) => (peek.is_ok_and(|p| p.consistent()), charge),
            Err(e) => return error_response(&e),
        }
    };

    if needs_leader && !app.node.is_leader() {
        if wants_hint {
            return error_response(&app.node.not_leader());
        }
        if forwarded {
            return error_response(&Error::Unavailable(format!(
                "node {} received a forwarded request but is not the leader (leadership just changed); retry",
                app.node.id
            )));
        }
        return match app.node.leader() {
            Some((id, addr)) => {
                Box::pin(forward(&app, id, &addr, target_text, op, &headers, body)).await
            }
            None => error_response(&Error::Unavailable(
                "no leader is elected yet (an election is in progress or a majority of nodes is down); retry shortly"
                    .into(),
            )),
        };
    }

    // Injected faults fire where the operation executes, before it does anything.
    if let Some(e) = app
        .cluster
        .upgrade()
        .and_then(|c| crate::api::inject::roll(c.error_rules(), op))
    {
        return error_response(&e);
    }
    if !needs_leader {
        // A read here sees the writes this node relayed answers to.
        app.node.after_relayed(CATCH_UP_WAIT).await;
    }
    let mut request = Request::new(body, charge, region(&headers));
    request.expected_version = match expected_version(&headers) {
        Ok(Some(_)) if !matches!(op, Op::PutItem | Op::UpdateItem | Op::DeleteItem) => {
            return error_response(&Error::validation(format!(
                "{EXPECTED_VERSION_HEADER} applies to PutItem, UpdateItem and DeleteItem only, not {op:?}"
            )));
        }
        Ok(v) => v,
        Err(e) => return error_response(&e),
    };
    match ops::run(&app, op, &mut request).await {
        Ok(encoded) => {
            let mut resp = json_response(StatusCode::OK, encoded);
            if let Some(version) = request.version {
                resp.headers_mut()
                    .insert(VERSION_HEADER, HeaderValue::from(version));
            }
            if forwarded && op.is_write() {
                resp.headers_mut()
                    .insert(APPLIED_HEADER, HeaderValue::from(app.node.applied_index()));
            }
            add_headers(&mut resp, &request);
            resp
        }
        // Leadership moved between the check above and the proposal.
        Err(Error::NotLeader { .. }) if !wants_hint => {
            error_response(&Error::Unavailable(format!(
                "node {} lost leadership while handling the request; retry",
                app.node.id
            )))
        }
        Err(e) => {
            if matches!(e, Error::Internal(_)) {
                tracing::error!(node = app.node.id, ?op, "internal error: {e}");
            }
            error_response(&e)
        }
    }
}

/// The simulated network between this node and the leader, for a forwarded request: a
/// partition or a lost message refuses it (nothing was sent), a delay holds it. Forwarding is
/// node-to-node traffic, so a follower cut off from the leader refuses writes, as a user
/// watching a partition expects. Returns the delay to add to the reply's way back.
async fn through_network(app: &AppState, leader: u64) -> Result<Duration> {
    let Some(fate) = app
        .cluster
        .upgrade()
        .and_then(|c| c.faults().read().ok().map(|f| f.link(app.node.id, leader)))
    else {
        return Ok(Duration::ZERO);
    };
    let id = app.node.id;
    if fate.cut {
        return Err(Error::Unavailable(format!(
            "node {id} cannot reach the leader (node {leader}): a simulated partition cuts them \
             apart; the request was not sent, retry"
        )));
    }
    // The RNG is not Send: keep it out of the await below.
    let (lost, jitter) = {
        let mut rng = rand::thread_rng();
        (fate.loses(&mut rng), fate.draw_jitter_ms(&mut rng))
    };
    if lost {
        return Err(Error::Unavailable(format!(
            "the simulated lossy link from node {id} to the leader (node {leader}) lost the \
             forwarded request; it was not applied, retry"
        )));
    }
    let delay = Duration::from_millis(fate.delay_ms.saturating_add(jitter));
    pause(delay).await;
    Ok(Duration::from_millis(fate.delay_ms))
}

/// Sleeps for a simulated link delay; no delay costs nothing. (`tokio::time::sleep` with a
/// zero duration still waits for the timer's next millisecond tick: two of those per forwarded
/// request were most of what forwarding cost.)
async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Calls the DynamoDB handler of a leader in this process with a forwarded request, as its
/// routes would (the same span, metrics and answer), without the HTTP layers around it: those
/// (CORS, gzip, the checksum) run once, at the node the client called. Its answer is relayed
/// as it is.
async fn forward_in_process(
    leader: AppState,
    from: u64,
    target: &str,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<Response> {
    use axum::http::header::{CONTENT_TYPE as CONTENT_TYPE_NAME, HeaderName};
    let mut forwarded = HeaderMap::with_capacity(3 + FORWARDED_REQUEST_HEADERS.len());
    let target = HeaderValue::from_str(target)
        .map_err(|e| Error::validation(format!("X-Amz-Target cannot be forwarded: {e}")))?;
    forwarded.insert(HeaderName::from_static("x-amz-target"), target);
    forwarded.insert(CONTENT_TYPE_NAME, HeaderValue::from_static(CONTENT_TYPE));
    forwarded.insert(
        HeaderName::from_static(FORWARDED_HEADER),
        HeaderValue::from(from),
    );
    for (name, value) in headers {
        if FORWARDED_REQUEST_HEADERS.contains(&name.as_str()) {
            forwarded.append(name.clone(), value.clone());
        }
    }
    Ok(dynamodb(State(leader), forwarded, axum::body::Body::from(body)).await)
}

/// How long a local read waits for this node to apply the writes it relayed answers to
/// ([`NodeHandle::after_relayed`](crate::cluster::NodeHandle::after_relayed)), before it
/// reads anyway (the node may be cut off from the leader since).
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// Notes what the leader had applied when it answered a forwarded request (its
/// [`APPLIED_HEADER`], the value's bytes), so that this node's next reads wait to apply it and
/// the client reads its own write here.
fn note_relayed(app: &AppState, applied: Option<&[u8]>) {
    let index = applied
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(index) = index {
        app.node.relayed(index);
    }
}

/// The leader's answer as the follower relays it, with the item version it gave.
fn relayed(status: StatusCode, body: Vec<u8>, version: Option<HeaderValue>) -> Response {
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "__type")]
        type_name: String,
    }
    let error = (!status.is_success())
        .then(|| serde_json::from_slice::<TypeOnly>(&body).ok())
        .flatten();
    let mut resp = json_response(status, body);
    if let Some(error) = error {
        resp.extensions_mut().insert(ErrorType(error.type_name));
    }
    if let Some(version) = version {
        resp.headers_mut().insert(VERSION_HEADER, version);
    }
    resp
}

/// Relays a request to the leader and its answer back, unchanged. The caller's
/// `Authorization` header goes along: the region in its credential scope shapes the answer
/// (table ARNs), which must not depend on the node the client happened to ask.
async fn forward(
    app: &AppState,
    leader: u64,
    addr: &str,
    target: &str,
    op: Op,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Response {
    app.metrics.forwarded(op);
    let way_back = match through_network(app, leader).await {
        Ok(d) => d,
        Err(e) => return error_response(&e),
    };
    let timeout = Duration::from_secs(30);
    // A leader in this process is called directly: its handler, without a second loopback
    // HTTP exchange (which cost about 250 µs of CPU per request) or its routes and layers
    // (about 7 µs of CPU). The simulated network's faults apply all the same (`through_network`
    // above, `pause` below).
    if let Some(leader_app) = app.cluster.upgrade().and_then(|c| c.app_of(leader)) {
        let answer = tokio::time::timeout(
            timeout,
            forward_in_process(leader_app, app.node.id, target, headers, body),
        )
        .await;
        return match answer {
            Ok(Ok(mut resp)) => {
                pause(way_back).await;
                let applied = resp.headers_mut().remove(APPLIED_HEADER);
                note_relayed(app, applied.as_ref().map(HeaderValue::as_bytes));
                resp
            }
            Ok(Err(e)) => error_response(&e),
            Err(_) => error_response(&Error::Unavailable(format!(
                "the leader (node {leader}) did not answer within {timeout:?}; the request's outcome is unknown, retry"
            ))),
        };
    }
    let mut request = app
        .client
        .post(format!("http://{addr}/"))
        .header("x-amz-target", target)
        .header("content-type", CONTENT_TYPE)
        .header(FORWARDED_HEADER, app.node.id.to_string());
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.clone());
        }
    }
    let result = request.timeout(timeout).body(body).send().await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            let outcome = if e.is_connect() {
                "the request was not sent"
            } else {
                "the request's outcome is unknown"
            };
            return error_response(&Error::Unavailable(format!(
                "could not reach the leader (node {leader} at {addr}): {e}; {outcome}, retry"
            )));
        }
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let version = resp
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    pause(way_back).await;
    note_relayed(
        app,
        resp.headers().get(APPLIED_HEADER).map(|v| v.as_bytes()),
    );
    match resp.bytes().await {
        Ok(bytes) => relayed(status, bytes.to_vec(), version),
        Err(e) => error_response(&Error::Unavailable(format!(
            "the leader (node {leader}) did not finish answering: {e}; the request's outcome is unknown, retry"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::{ConsistentPeek, Op, may_ask_consistent, request_id};

    /// The size of what `f` returns (a future), without calling it.
    fn output_size<A, B, C, F>(_: impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// [`output_size`] for a function of four arguments.
    fn output_size4<A, B, C, D, F>(_: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_is_read_at_once_when_it_is_there_and_timed_out_when_it_never_comes() {
        use axum::body::Body;
        let memory = crate::api::budget::MemoryBudget::new(1 << 20);
        let started = tokio::time::Instant::now();
        let Ok((read, _)) = super::read_body(&memory, Body::from("{}")).await else {
            panic!("a complete body was refused");
        };
        assert_eq!(&read[..], b"{}");
        assert_eq!(started.elapsed(), std::time::Duration::ZERO);

        // A body that never arrives: the paused clock jumps to the timeout (and, were there
        // none, to the outer one, failing the test instead of hanging it).
        let never =
            futures_util::stream::pending::<std::result::Result<bytes::Bytes, std::io::Error>>();
        let reading = super::read_body(&memory, Body::from_stream(never));
        let Ok(Err(resp)) = tokio::time::timeout(super::BODY_TIMEOUT * 2, reading).await else {
            panic!("a body that never came was read, or waited for without end");
        };
        assert_eq!(resp.status(), axum::http::StatusCode::REQUEST_TIMEOUT);
        assert_eq!(started.elapsed(), super::BODY_TIMEOUT);
    }

    #[test]
    fn every_operation_is_named_as_its_api_spells_it() {
        for (i, (name, op)) in super::OPS.iter().enumerate() {
            assert_eq!(op.name(), *name);
            // The name metrics and logs show is the one the enum's Debug spells, too.
            assert_eq!(format!("{op:?}"), *name);
            let (dynamo, streams) = (Op::parse(name), Op::parse_streams(name));
            if i < super::STREAMS_OPS {
                assert_eq!((dynamo, streams), (Some(*op), None), "{name}");
            } else {
                assert_eq!((dynamo, streams), (None, Some(*op)), "{name}");
            }
        }
        assert_eq!(Op::parse("ListStreams"), None);
        assert_eq!(Op::parse("putitem"), None);
        let distinct: std::collections::HashSet<_> =
            super::OPS.iter().map(|(_, op)| format!("{op:?}")).collect();
        assert_eq!(
            distinct.len(),
            super::OPS.len(),
            "an operation is listed twice"
        );
    }

    #[test]
    fn a_request_future_stays_small_whatever_its_operation() {
        // The operations' futures are boxed, so the handler's does not grow to the largest of
        // them (a BatchExecuteStatement's is several KiB) for every request: the server's layers
        // copy it each time they move it. Unboxed, each of these exceeds 5 KiB.
        let handler = output_size(super::dynamodb);
        let run = output_size(crate::api::ops::run);
        // The leaderless engine's operations, the same way.
        let leaderless = output_size4(crate::api::ops::run_leaderless);
        eprintln!(
            "handler future {handler} bytes, operation future {run} bytes, leaderless {leaderless}"
        );
        assert!(handler <= 1024, "the handler's future is {handler} bytes");
        assert!(run <= 256, "the operations' future is {run} bytes");
        assert!(
            leaderless <= 256,
            "the leaderless operations' future is {leaderless} bytes"
        );
    }

    #[test]
    fn a_read_that_may_be_consistent_is_never_taken_for_an_eventual_one() {
        let eventual = br#"{"TableName":"t","Key":{"pk":{"S":"a"}}}"#;
        assert!(!may_ask_consistent(Op::GetItem, eventual));
        for body in [
            br#"{"TableName":"t","Key":{"pk":{"S":"a"}},"ConsistentRead":true}"#.as_slice(),
            // The member's name spelt with an escape still decodes as ConsistentRead.
            br#"{"TableName":"t","Key":{"pk":{"S":"a"}},"Consistent\u0052ead":true}"#,
            br#"{"RequestItems":{"t":{"Keys":[],"ConsistentRead":true}}}"#,
        ] {
            assert!(may_ask_consistent(Op::GetItem, body));
            let peek: ConsistentPeek = serde_json::from_slice(body).expect("decodes");
            assert!(peek.consistent(), "{}", String::from_utf8_lossy(body));
        }
        let statement = br#"{"Statement":"INSERT INTO t VALUE {'pk':'a'}"}"#;
        assert!(may_ask_consistent(Op::ExecuteStatement, statement));
    }

    #[test]
    fn request_ids_have_dynamodbs_shape_and_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = request_id();
            assert!(
                id.iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
                "{}",
                String::from_utf8_lossy(&id)
            );
            assert!(seen.insert(id), "a request id repeated");
        }
    }
}
