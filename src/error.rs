//! The one error type of kvsim.
//!
//! Every layer returns [`Error`]. Its variants are DynamoDB's error kinds plus the two that a
//! replicated database adds (`NotLeader`, `Unavailable`), so the HTTP status, the wire `__type`
//! and the CLI's one-line message and exit code all come from a single `match` ([`Error::kind`]).
//!
//! Inside the state machine the distinction that matters is [`Error::is_deterministic`]: a
//! deterministic error (bad input, a missing table) is a *result* of applying a command and is
//! the same on every replica; anything else (an I/O error) must stop the node instead, because
//! answering it as a result would let replicas diverge.

use serde::{Deserialize, Serialize};

/// kvsim's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error kvsim reports, named after DynamoDB's error kinds where one exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// The request is invalid (DynamoDB `ValidationException`).
    #[error("{0}")]
    Validation(String),
    /// The request body is not well-formed JSON of the expected shape (`SerializationException`).
    #[error("{0}")]
    Serialization(String),
    /// The `X-Amz-Target` names no operation kvsim knows (`UnknownOperationException`).
    #[error("{0}")]
    UnknownOperation(String),
    /// The table does not exist (`ResourceNotFoundException`).
    #[error("{0}")]
    ResourceNotFound(String),
    /// The table already exists (`ResourceInUseException`).
    #[error("{0}")]
    ResourceInUse(String),
    /// A condition on a write was false (`ConditionalCheckFailedException`); with the item as
    /// it was when `ReturnValuesOnConditionCheckFailure` asked for it.
    #[error("{message}")]
    ConditionalCheckFailed {
        /// DynamoDB's message.
        message: String,
        /// The item the condition was checked against, when asked for (and there was one).
        item: Option<Box<crate::model::Item>>,
    },
    /// A transaction wrote nothing because some of its actions failed
    /// (`TransactionCanceledException`): one reason per action, in order.
    #[error("{message}")]
    TransactionCanceled {
        /// DynamoDB's message, listing the reason codes.
        message: String,
        /// Each action's reason: `None` for those that would have succeeded.
        reasons: Vec<CancellationReason>,
    },
    /// A PartiQL `INSERT` met an item with the same key (`DuplicateItemException`).
    #[error("{0}")]
    DuplicateItem(String),
    /// A `ClientRequestToken` was reused within its 10 minutes for a different request
    /// (`IdempotentParameterMismatchException`).
    #[error("{0}")]
    IdempotentParameterMismatch(String),
    /// Provisioned throughput exceeded (`ProvisionedThroughputExceededException`; retryable).
    #[error("{0}")]
    ProvisionedThroughputExceeded(String),
    /// Request rate too high (`ThrottlingException`; retryable).
    #[error("{0}")]
    Throttling(String),
    /// A transaction conflicted with another (`TransactionConflictException`; retryable).
    #[error("{0}")]
    TransactionConflict(String),
    /// Account-level request limit (`RequestLimitExceeded`; retryable).
    #[error("{0}")]
    RequestLimitExceeded(String),
    /// Too many control-plane operations at once, e.g. a second index being built on one
    /// table (`LimitExceededException`).
    #[error("{0}")]
    LimitExceeded(String),
    /// A stream shard iterator is older than its 15 minutes (`ExpiredIteratorException`).
    #[error("{0}")]
    ExpiredIterator(String),
    /// A stream read reached before the oldest record kept (`TrimmedDataAccessException`).
    #[error("{0}")]
    TrimmedDataAccess(String),
    /// The caller may not do this (`AccessDeniedException`), e.g. fault injection is disabled.
    #[error("{0}")]
    AccessDenied(String),
    /// This node is not the leader; the client asked for a hint rather than forwarding.
    #[error("node {node_id} is not the leader; {}", leader_text(*leader_id, leader_addr.as_deref()))]
    NotLeader {
        /// The node that answered.
        node_id: u64,
        /// The leader this node knows of, if any.
        leader_id: Option<u64>,
        /// The leader's client address, if known.
        leader_addr: Option<String>,
    },
    /// A write that was definitely not applied (refused, or its log entry was replaced by
    /// another leader's); retrying it is always safe. On the wire it is `ServiceUnavailable`.
    #[error("{0}")]
    NotApplied(String),
    /// A retryable failure: no leader, no quorum, a timeout, a node shutting down. For a write,
    /// its outcome is unknown.
    #[error("{0}")]
    Unavailable(String),
    /// A fault inside kvsim (storage, a bug). Never caused by the request alone.
    #[error("{0}")]
    Internal(String),
}

/// Why one action of a cancelled transaction failed (or `None`), as DynamoDB reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationReason {
    /// `None`, `ConditionalCheckFailed`, `ValidationError`, ...
    pub code: String,
    /// What went wrong, for a failed action.
    pub message: Option<String>,
    /// The item, when the action asked for `ReturnValuesOnConditionCheckFailure: ALL_OLD`.
    pub item: Option<crate::model::Item>,
}

fn leader_text(id: Option<u64>, addr: Option<&str>) -> String {
    match (id, addr) {
        (Some(id), Some(addr)) => format!("the leader is node {id} at {addr}"),
        (Some(id), None) => format!("the leader is node {id}"),
        _ => "no leader is known yet".to_string(),
    }
}

/// How an error is presented on the wire: HTTP status and DynamoDB `__type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorKind {
    /// HTTP status code.
    pub status: u16,
    /// The fully qualified `__type`, as DynamoDB spells it.
    pub type_name: &'static str,
    /// Whether a client may retry the same request unchanged.
    pub retryable: bool,
}

impl Error {
    /// The wire presentation of this error. The one place that maps kinds to HTTP.
    pub fn kind(&self) -> ErrorKind {
        let (status, type_name, retryable) = match self {
            Error::Validation(_) => (400, "com.amazon.coral.validate#ValidationException", false),
            Error::Serialization(_) => (
                400,
                "com.amazon.coral.service#SerializationException",
                false,
            ),
            Error::UnknownOperation(_) => (
                400,
                "com.amazon.coral.service#UnknownOperationException",
                false,
            ),
            Error::ResourceNotFound(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                false,
            ),
            Error::ResourceInUse(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#ResourceInUseException",
                false,
            ),
            Error::ConditionalCheckFailed { .. } => (
                400,
                "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                false,
            ),
            Error::ProvisionedThroughputExceeded(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                true,
            ),
            Error::Throttling(_) => (
                400,
                "com.amazon.coral.availability#ThrottlingException",
                true,
            ),
            Error::TransactionCanceled { .. } => (
                400,
                "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                false,
            ),
            Error::DuplicateItem(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#DuplicateItemException",
                false,
            ),
            Error::IdempotentParameterMismatch(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                false,
            ),
            Error::TransactionConflict(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                true,
            ),
            Error::RequestLimitExceeded(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
                true,
            ),
            Error::LimitExceeded(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#LimitExceededException",
                false,
            ),
            Error::ExpiredIterator(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException",
                false,
            ),
            Error::TrimmedDataAccess(_) => (
                400,
                "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException",
                false,
            ),
            Error::AccessDenied(_) => (
                403,
                "com.amazonaws.dynamodb.v20120810#AccessDeniedException",
                false,
            ),
            // 421 Misdirected Request: only clients that asked for a hint ever see this.
            Error::NotLeader { .. } => (421, "kvsim#NotLeaderException", true),
            Error::NotApplied(_) | Error::Unavailable(_) => (
                503,
                "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
                true,
            ),
            Error::Internal(_) => (
                500,
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                true,
            ),
        };
        ErrorKind {
            status,
            type_name,
            retryable,
        }
    }

    /// Rebuilds an error from a wire answer (the CLI's view of a server error): the inverse of
    /// [`Error::kind`], keyed by the short name after `#`.
    pub fn from_wire(type_name: &str, message: String) -> Error {
        let short = type_name.rsplit('#').next().unwrap_or(type_name);
        match short {
            "ValidationException" => Error::Validation(message),
            "SerializationException" => Error::Serialization(message),
            "UnknownOperationException" => Error::UnknownOperation(message),
            "ResourceNotFoundException" => Error::ResourceNotFound(message),
            "ResourceInUseException" => Error::ResourceInUse(message),
            "ConditionalCheckFailedException" => Error::ConditionalCheckFailed {
                message,
                item: None,
            },
            "ServiceUnavailable" => Error::Unavailable(message),
            "ProvisionedThroughputExceededException" => {
                Error::ProvisionedThroughputExceeded(message)
            }
            "AccessDeniedException" => Error::AccessDenied(message),
            "ExpiredIteratorException" => Error::ExpiredIterator(message),
            "TrimmedDataAccessException" => Error::TrimmedDataAccess(message),
            "ThrottlingException" => Error::Throttling(message),
            "TransactionConflictException" => Error::TransactionConflict(message),
            "RequestLimitExceeded" => Error::RequestLimitExceeded(message),
            "LimitExceededException" => Error::LimitExceeded(message),
            "TransactionCanceledException" => Error::TransactionCanceled {
                message,
                reasons: Vec::new(),
            },
            "IdempotentParameterMismatchException" => Error::IdempotentParameterMismatch(message),
            "DuplicateItemException" => Error::DuplicateItem(message),
            // A server's internal error is one DynamoDB's clients retry, like any 5xx: to the
            // CLI it is the server being unavailable, not a failure of the CLI itself.
            "InternalServerError" => Error::Unavailable(format!("{short}: {message}")),
            _ => Error::Internal(format!("{short}: {message}")),
        }
    }

    /// The short name after `#` in the `__type` (e.g. `ValidationException`).
    pub fn short_name(&self) -> &'static str {
        let full = self.kind().type_name;
        full.rsplit('#').next().unwrap_or(full)
    }

    /// True if applying the same command on any replica yields the same error, so it is a
    /// result to report; false for faults (I/O) that must stop the node instead.
    pub fn is_deterministic(&self) -> bool {
        matches!(
            self,
            Error::Validation(_)
                | Error::Serialization(_)
                | Error::ResourceNotFound(_)
                | Error::ResourceInUse(_)
                | Error::ConditionalCheckFailed { .. }
                | Error::TransactionCanceled { .. }
                | Error::IdempotentParameterMismatch(_)
                | Error::DuplicateItem(_)
                | Error::LimitExceeded(_)
        )
    }

    /// Shorthand for a `ValidationException`.
    pub fn validation(msg: impl Into<String>) -> Error {
        Error::Validation(msg.into())
    }

    /// Shorthand for an internal fault.
    pub fn internal(msg: impl std::fmt::Display) -> Error {
        Error::Internal(msg.to_string())
    }
}

macro_rules! internal_from {
    ($($ty:ty),* $(,)?) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::Internal(format!("{}: {e}", stringify!($ty)))
            }
        })*
    };
}

internal_from!(
    std::io::Error,
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
    postcard::Error,
    raft::Error,
    protobuf::ProtobufError,
);
