//! Request decoding: a body goes straight from bytes into its operation's typed input, under
//! DynamoDB's structural limits and the node's memory budget, enforced *while* decoding so that
//! nothing large is built before it is refused.
//!
//! - Attribute values decode directly into the model ([`crate::api::wire::WireValue`]); every
//!   value is charged to the request's [`Charge`] at roughly what it occupies in memory, nesting
//!   beyond [`MAX_NESTING`] levels is refused, and an item's DynamoDB size is counted as its
//!   values arrive, so an item over 400 KB is refused at its 400th KB, not after.
//! - Members decode into typed shapes; members an operation does not read are skipped without
//!   being built, so `{"X": [0, 0, …]}` costs nothing.
//! - What serde_json and the input's plain strings may briefly need beyond the charged values
//!   (its scratch buffer for escaped strings, strings later found too long) is at most twice
//!   the body, charged for the duration of decoding as workspace.
//!
//! The limits live in a thread-local meter installed for one [`decode`] call: serde's
//! `Deserialize` has no room for context, and decoding is synchronous, so the meter is exactly
//! as long-lived as the call. Outside `decode` (the CLI reading answers) nothing is charged.

use std::cell::RefCell;

use serde::de::DeserializeOwned;

use crate::api::budget::Charge;
use crate::model::item::MAX_ITEM_SIZE;
use crate::{Error, Result};

/// DynamoDB's limit on nested attribute values (a list or map inside another counts one).
pub const MAX_NESTING: usize = 32;
/// Bodies up to this size decode on the async runtime; larger ones on a blocking thread.
pub const INLINE_DECODE_BYTES: usize = 64 << 10;

/// The limits and charge of the decoding in progress on this thread.
#[derive(Default)]
struct Meter {
    charge: Option<Charge>,
    /// Containers entered in the current attribute value.
    depth: usize,
    /// DynamoDB size of the item being decoded, when inside one.
    item_size: Option<usize>,
    /// The first error the decoder met that is not a malformed-JSON error.
    error: Option<Error>,
}

thread_local! {
    static METER: RefCell<Meter> = RefCell::new(Meter::default());
}

/// Records `error` as the reason decoding stopped and returns a serde error to unwind with.
pub(crate) fn fail<E: serde::de::Error>(error: Error) -> E {
    let text = error.to_string();
    METER.with(|m| m.borrow_mut().error.get_or_insert(error).clone());
    E::custom(text)
}

/// Charges `bytes` of memory to the request being decoded.
pub(crate) fn charge<E: serde::de::Error>(bytes: usize) -> Result<(), E> {
    let refused = METER.with(|m| {
        let mut m = m.borrow_mut();
        match m.charge.as_mut() {
            Some(c) => c.add(bytes).err(),
            None => None,
        }
    });
    match refused {
        Some(e) => Err(fail(e)),
        None => Ok(()),
    }
}

/// Adds `bytes` to the DynamoDB size of the item being decoded, refusing it past 400 KB.
pub(crate) fn item_bytes<E: serde::de::Error>(bytes: usize) -> Result<(), E> {
    let over = METER.with(|m| {
        let mut m = m.borrow_mut();
        match m.item_size.as_mut() {
            Some(size) => {
                *size = size.saturating_add(bytes);
                *size > MAX_ITEM_SIZE
            }
            None => false,
        }
    });
    if over {
        return Err(fail(Error::validation(
            "Item size has exceeded the maximum allowed size",
        )));
    }
    Ok(())
}

/// Starts counting an item's size; the returned guard stops when dropped.
pub(crate) fn begin_item() -> ItemGuard {
    METER.with(|m| m.borrow_mut().item_size = Some(0));
    ItemGuard
}

/// Ends an item's size count when dropped.
pub(crate) struct ItemGuard;

impl Drop for ItemGuard {
    fn drop(&mut self) {
        METER.with(|m| m.borrow_mut().item_size = None);
    }
}

/// Enters a list or map; refuses nesting beyond [`MAX_NESTING`].
pub(crate) fn enter<E: serde::de::Error>() -> Result<DepthGuard, E> {
    let depth = METER.with(|m| {
        let mut m = m.borrow_mut();
        m.depth += 1;
        m.depth
    });
    let guard = DepthGuard;
    if depth > MAX_NESTING {
        return Err(fail(Error::validation(
            "Nesting Levels have exceeded supported limits",
        )));
    }
    Ok(guard)
}

/// Leaves a list or map when dropped.
pub(crate) struct DepthGuard;

impl Drop for DepthGuard {
    fn drop(&mut self) {
        METER.with(|m| {
            let mut m = m.borrow_mut();
            m.depth = m.depth.saturating_sub(1);
        });
    }
}

/// Decodes `bytes` (a JSON object; empty means `{}`) as `T`, charging `charge` for what it
/// builds. The charge keeps what the decoded value holds; the workspace is returned.
///
/// # Errors
/// `SerializationException` naming the path for malformed or mistyped JSON;
/// `ValidationException` for a value DynamoDB refuses (a bad number, nesting, item size);
/// `ThrottlingException` when the node's memory budget cannot cover the request.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], charge: &mut Charge) -> Result<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let workspace = bytes.len().saturating_mul(2);
    charge.add(workspace)?;
    METER.with(|m| {
        *m.borrow_mut() = Meter {
            charge: Some(std::mem::take(charge)),
            ..Meter::default()
        }
    });
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        (path, e.into_inner())
    });
    let result = result.and_then(|v| de.end().map(|()| v).map_err(|e| (".".to_string(), e)));
    let meter = METER.with(|m| std::mem::take(&mut *m.borrow_mut()));
    if let Some(c) = meter.charge {
        *charge = c;
    }
    charge.release(workspace);
    result.map_err(|(path, inner)| match meter.error {
        Some(error) => error,
        None if path == "." => {
            Error::Serialization(format!("Request body is not a valid JSON object: {inner}"))
        }
        None => Error::Serialization(
            coral_message(&inner.to_string()).unwrap_or_else(|| format!("{path}: {inner}")),
        ),
    })
}

/// DynamoDB's (its Java front end's) words for a JSON value of the wrong type, from serde's
/// `invalid type: <found>, expected <wanted>`; `None` for other errors, which keep serde's
/// message and the member's path.
fn coral_message(serde: &str) -> Option<String> {
    let rest = serde.strip_prefix("invalid type: ")?;
    let (found, rest) = rest.split_once(", expected ")?;
    let wanted = rest.split(" at line ").next().unwrap_or(rest);
    let token = if found.starts_with("integer") {
        "NUMBER_VALUE"
    } else if found.starts_with("floating point") {
        "DECIMAL_VALUE"
    } else if found.starts_with("string") {
        "STRING_VALUE"
    } else if found == "boolean `true`" {
        "TRUE_VALUE"
    } else if found == "boolean `false`" {
        "FALSE_VALUE"
    } else if found == "map" {
        return Some("Start of structure or map found where not expected".into());
    } else if found == "sequence" {
        return Some(if wanted == "a string" {
            "Unrecognized collection type class java.lang.String".into()
        } else {
            "Start of list found where not expected".into()
        });
    } else {
        return None;
    };
    let class = match wanted {
        "a string" => "String",
        "a boolean" => return Some("Unexpected token received from parser".into()),
        "i64" | "u64" | "i32" | "u32" | "usize" => "Long",
        _ => return None,
    };
    Some(format!("{token} cannot be converted to {class}"))
}

/// Runs `work` (decoding `len` bytes) inline when that is quick, else on a blocking thread:
/// decoding 16 MiB of JSON takes tens of milliseconds of CPU, which would stall every other
/// request on the same runtime worker.
///
/// # Errors
/// `Internal` if the blocking task panicked.
pub async fn off_runtime<T: Send + 'static>(
    len: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    if len <= INLINE_DECODE_BYTES {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("request decoding failed: {e}")))
}
