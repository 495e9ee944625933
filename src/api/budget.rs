//! What requests may hold in memory: one budget per node, charged by every request for its
//! body as the bytes arrive and then for what decoding builds from it ([`crate::api::decode`]).
//!
//! Without it, a node's 2,048 connections (`max_connections`) each sending a
//! [`MAX_REQUEST_BYTES`] body could make it hold 32 GiB, and a small body can decode into many times its size.
//! A request that would overrun the budget is refused with DynamoDB's retryable
//! `ThrottlingException` and changes nothing.
//!
//! The first [`FREE_BYTES`] of every request are not charged, so small requests (a GetItem, a
//! PutItem of a modest item) never wait on large ones: at most `max_connections × FREE_BYTES`
//! (32 MiB) per node lies outside the budget. Request memory is therefore bounded by
//! [`BUDGET_BYTES`] plus that.

use std::sync::Arc;

use axum::body::{Body, HttpBody as _};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// Largest request body accepted (DynamoDB's own limit).
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// Memory the requests in flight may hold, across every connection of every node of the
/// process (the three nodes of `kvsim server` share one budget, as they share one process).
pub const BUDGET_BYTES: usize = 256 << 20;
/// Most bytes of a refused body read (and dropped) so that its client gets the answer; a
/// client that sends more has its connection closed.
pub const DRAIN_BYTES: usize = 4 * MAX_REQUEST_BYTES;
/// What each request may hold without charging the budget.
pub const FREE_BYTES: usize = 16 << 10;

/// A budget for request memory, counted in KiB; clones share it.
#[derive(Clone, Debug)]
pub struct MemoryBudget(Arc<Semaphore>);

impl MemoryBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> MemoryBudget {
        MemoryBudget(Arc::new(Semaphore::new(bytes.div_ceil(1024))))
    }

    /// Bytes not held by any request now.
    pub fn available_bytes(&self) -> usize {
        self.0.available_permits().saturating_mul(1024)
    }

    /// An empty charge against this budget.
    pub fn charge(&self) -> Charge {
        Charge {
            budget: Some(self.0.clone()),
            ..Charge::default()
        }
    }

    /// Reads a whole request body of at most [`MAX_REQUEST_BYTES`], charging the budget for
    /// its bytes as they arrive (not for what `Content-Length` announces, so a client
    /// trickling a body that claims to be large holds only what it has actually sent).
    ///
    /// The buffer is sized from `Content-Length` once, so it never grows by copying; the
    /// part not yet written is address space, not memory.
    ///
    /// # Errors
    /// `TooLarge` for a body over the limit; `Invalid` with `Throttling` when the budget is
    /// spent, or `Validation` for a broken stream.
    pub async fn read_body(&self, body: Body) -> Result<(Bytes, Charge), BodyError> {
        let announced = body.size_hint().exact().map(usize::try_from);
        if matches!(announced, Some(Err(_))) || matches!(announced, Some(Ok(n)) if n > DRAIN_BYTES)
        {
            return Err(BodyError::TooLarge);
        }
        let capacity = match announced {
            Some(Ok(n)) if n <= MAX_REQUEST_BYTES => n,
            _ => 0,
        };
        let mut stream = body.into_data_stream();
        let mut buf = BytesMut::with_capacity(capacity);
        let mut charge = self.charge();
        let (mut len, mut refused) = (0, None);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                BodyError::Invalid(Error::validation(format!(
                    "the request body could not be read: {e}"
                )))
            })?;
            len += chunk.len();
            if refused.is_none() && len > MAX_REQUEST_BYTES {
                refused = Some(BodyError::TooLarge);
                (buf, charge) = (BytesMut::new(), Charge::default());
            }
            if refused.is_some() {
                // Read the rest without keeping it, so that the client gets the answer rather
                // than a connection closed under its upload; but not without end.
                if len > DRAIN_BYTES {
                    break;
                }
                continue;
            }
            if let Err(e) = charge.add(chunk.len()) {
                refused = Some(BodyError::Invalid(e));
                (buf, charge) = (BytesMut::new(), Charge::default());
                continue;
            }
            buf.extend_from_slice(&chunk);
        }
        match refused {
            Some(e) => Err(e),
            None => Ok((buf.freeze(), charge)),
        }
    }
}

/// Why a request body was refused.
#[derive(Debug)]
pub enum BodyError {
    /// Over [`MAX_REQUEST_BYTES`] (HTTP 413).
    TooLarge,
    /// Unreadable, or the budget is spent.
    Invalid(Error),
}

/// The memory one request holds in its node's budget, returned to the budget when dropped.
/// A default `Charge` belongs to no budget and never refuses (decoding outside a server).
#[derive(Debug, Default)]
pub struct Charge {
    budget: Option<Arc<Semaphore>>,
    /// Bytes the request holds, including the free allowance.
    used: usize,
    /// Permits (KiB) covering `used` beyond [`FREE_BYTES`].
    held: Option<OwnedSemaphorePermit>,
}

impl Charge {
    /// Bytes this request is charged for, including its free allowance.
    pub fn used(&self) -> usize {
        self.used
    }

    fn held_kib(&self) -> usize {
        self.held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    fn needed_kib(&self) -> usize {
        self.used.saturating_sub(FREE_BYTES).div_ceil(1024)
    }

    /// Charges `bytes` more.
    ///
    /// # Errors
    /// `Throttling` when the budget cannot cover them; the charge is left as it was.
    pub fn add(&mut self, bytes: usize) -> Result<()> {
        let used = self.used.saturating_add(bytes);
        let Some(budget) = &self.budget else {
            self.used = used;
            return Ok(());
        };
        let need = used.saturating_sub(FREE_BYTES).div_ceil(1024);
        let held = self.held_kib();
        if need > held {
            let more = u32::try_from(need - held)
                .ok()
                .and_then(|n| budget.clone().try_acquire_many_owned(n).ok())
                .ok_or_else(|| {
                    Error::Throttling(format!(
                        "this node is short of memory for the requests in flight (its budget is \
                         {} MiB); retry shortly",
                        BUDGET_BYTES >> 20
                    ))
                })?;
            match self.held.as_mut() {
                Some(h) => h.merge(more),
                None => self.held = Some(more),
            }
        }
        self.used = used;
        Ok(())
    }

    /// Returns `bytes` to the budget (memory the request has freed).
    pub fn release(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
        let surplus = self.held_kib().saturating_sub(self.needed_kib());
        if surplus > 0 {
            // Dropping the split-off permits returns them.
            drop(self.held.as_mut().and_then(|h| h.split(surplus)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_refuses_what_does_not_fit_and_frees_room_when_done() {
        let budget = MemoryBudget::new(1 << 20);
        let body = |n: usize| Body::from(vec![b'x'; n]);
        let (bytes, first) = budget.read_body(body(600 << 10)).await.expect("fits");
        assert_eq!(bytes.len(), 600 << 10);
        let refused = budget.read_body(body(600 << 10)).await.expect_err("over");
        assert!(
            matches!(refused, BodyError::Invalid(Error::Throttling(_))),
            "{refused:?}"
        );
        let (_, small) = budget
            .read_body(body(100))
            .await
            .expect("a small body fits");
        assert_eq!(
            budget.available_bytes(),
            (1 << 20) - ((600 << 10) - FREE_BYTES),
            "a small body is free; a large one pays beyond the allowance"
        );
        drop(first);
        drop(small);
        assert_eq!(budget.available_bytes(), 1 << 20, "all room is back");
        assert!(
            budget.read_body(body(1 << 20)).await.is_ok(),
            "room is back"
        );
        let too_big = budget
            .read_body(body(MAX_REQUEST_BYTES + 1))
            .await
            .expect_err("over the limit");
        assert!(matches!(too_big, BodyError::TooLarge));
    }

    #[test]
    fn release_returns_exactly_what_is_no_longer_needed() {
        let budget = MemoryBudget::new(1 << 20);
        let mut charge = budget.charge();
        charge.add(FREE_BYTES).expect("free");
        assert_eq!(budget.available_bytes(), 1 << 20);
        charge.add(100 << 10).expect("fits");
        assert_eq!(budget.available_bytes(), (1 << 20) - (100 << 10));
        charge.release(60 << 10);
        assert_eq!(budget.available_bytes(), (1 << 20) - (40 << 10));
        assert!(charge.add(2 << 20).is_err(), "over the budget");
        assert_eq!(
            charge.used(),
            FREE_BYTES + (40 << 10),
            "a refusal changes nothing"
        );
        drop(charge);
        assert_eq!(budget.available_bytes(), 1 << 20);
    }
}
