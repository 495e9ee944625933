//! Clients waiting on the Raft log: pending proposals (writes) and pending ReadIndex requests.
//!
//! A proposal is filed under the log index and term raft appended it at, and its id travels in
//! the entry's context. When index `i` is applied, the proposal filed at `i` learns its fate by
//! comparing the applied entry's term and id with its own: the same entry means success; any
//! other entry means a new leader overwrote ours, so it was definitely not applied. Nothing is
//! ever matched by arrival order.
//!
//! Deadlines are counted in ticks, so this module never reads the clock.
//!
//! Overwrites are counted ([`Proposals::overwritten`]) so the simulation can show that it
//! produces them: a check that is never exercised proves nothing.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

use crate::raft::node::PlantedBug;
use crate::raft::{LogIndex, Term};
use crate::{Error, Result};

/// Where a waiting client gets its answer.
pub type Responder<T> = oneshot::Sender<Result<T>>;

struct Pending<T> {
    id: u64,
    term: Term,
    deadline: u64,
    responder: Responder<T>,
}

/// Proposals awaiting apply, by log index.
pub struct Proposals<T> {
    next_id: u64,
    pending: BTreeMap<LogIndex, Pending<T>>,
    overwritten: u64,
    /// The planted bug [`PlantedBug::AckAnyEntryAtIndex`]: off except in the simulation's
    /// tests of itself.
    ack_any_entry: bool,
}

impl<T> Default for Proposals<T> {
    fn default() -> Self {
        Proposals {
            next_id: 1,
            pending: BTreeMap::new(),
            overwritten: 0,
            ack_any_entry: false,
        }
    }
}

/// The error for a proposal whose entry was replaced by another leader's.
fn not_applied() -> Error {
    Error::NotApplied(
        "leadership changed before the write committed; it was not applied, retry it".into(),
    )
}

impl<T> Proposals<T> {
    /// No proposals yet, with `planted_bug` in effect if it is one that lives here.
    pub fn with_planted_bug(planted_bug: Option<PlantedBug>) -> Self {
        Proposals {
            ack_any_entry: planted_bug == Some(PlantedBug::AckAnyEntryAtIndex),
            ..Proposals::default()
        }
    }

    /// How many proposals learnt that another entry took their index (answered "not applied").
    pub fn overwritten(&self) -> u64 {
        self.overwritten
    }

    /// A fresh id to carry in the next proposal's entry context.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Number of proposals waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Files a proposal appended at `index` in `term`, due by tick `deadline`.
    pub fn insert(
        &mut self,
        id: u64,
        index: LogIndex,
        term: Term,
        deadline: u64,
        responder: Responder<T>,
    ) {
        // Our own log now holds a different entry at `index`, so whatever was filed there
        // before (from an earlier term of ours) was overwritten.
        if let Some(old) = self.pending.insert(
            index,
            Pending {
                id,
                term,
                deadline,
                responder,
            },
        ) {
            self.overwritten += 1;
            let _ = old.responder.send(Err(not_applied()));
        }
    }

    /// Resolves the proposal at `index` now that the entry with `term` and `context` is applied.
    /// Returns its responder if the applied entry is that proposal's own.
    pub fn applied(&mut self, index: LogIndex, term: Term, context: &[u8]) -> Option<Responder<T>> {
        // Anything below `index` still waiting missed its apply (defensive: apply is in order).
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() >= index {
                break;
            }
            let _ = entry.remove().responder.send(Err(not_applied()));
        }
        let p = self.pending.remove(&index)?;
        if (p.term == term && context == p.id.to_be_bytes()) || self.ack_any_entry {
            Some(p.responder)
        } else {
            self.overwritten += 1;
            let _ = p.responder.send(Err(not_applied()));
            None
        }
    }

    /// Fails every proposal whose deadline is at or before `now` (in ticks).
    pub fn expire(&mut self, now: u64, timeout_text: &str) {
        let expired: Vec<LogIndex> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(i, _)| *i)
            .collect();
        for index in expired {
            if let Some(p) = self.pending.remove(&index) {
                let _ = p.responder.send(Err(Error::Unavailable(format!(
                    "write was not committed within {timeout_text} (is a majority of nodes reachable?); \
                     its outcome is unknown, retry it"
                ))));
            }
        }
    }

    /// Brings every deadline forward to `by` (in ticks) at the latest.
    pub fn shorten_deadlines(&mut self, by: u64) {
        for p in self.pending.values_mut() {
            p.deadline = p.deadline.min(by);
        }
    }

    /// A snapshot replaced the log up to `index`: proposals filed there can no longer learn
    /// whether their entry made it, so they fail with an unknown outcome.
    pub fn snapshot_installed(&mut self, index: LogIndex) {
        let kept = self.pending.split_off(&(index + 1));
        for (_, p) in std::mem::replace(&mut self.pending, kept) {
            let _ = p.responder.send(Err(Error::Unavailable(
                "this node installed a snapshot before the write's fate was known; \
                 its outcome is unknown, retry it"
                    .into(),
            )));
        }
    }

    /// Fails everything (the node is stopping).
    pub fn fail_all(&mut self, why: &str) {
        for (_, p) in std::mem::take(&mut self.pending) {
            let _ = p.responder.send(Err(Error::Unavailable(why.to_string())));
        }
    }
}

/// Where a consistent reader is told it may read locally.
pub type ReadResponder = oneshot::Sender<Result<()>>;

/// Consistent reads: waiting to be issued, issued to raft, and confirmed at a read index.
#[derive(Default)]
pub struct Reads {
    next_ctx: u64,
    waiting: Vec<(u64, ReadResponder)>,
    issued: BTreeMap<u64, Vec<(u64, ReadResponder)>>,
    /// The term and time each issued round was sent in (for the leader's lease), and the tick
    /// it is given up by if raft never confirms it.
    sent: BTreeMap<u64, ((Term, u64), u64)>,
    confirmed: Vec<(LogIndex, Vec<(u64, ReadResponder)>)>,
}

impl Reads {
    /// Queues a read due by tick `deadline`; it joins the next batch.
    pub fn push(&mut self, deadline: u64, responder: ReadResponder) {
        self.waiting.push((deadline, responder));
    }

    /// Takes the waiting reads as one batch and returns the context to pass to `read_index`;
    /// with `renew`, a round even if no read waits (to renew the leader's lease), unless one is
    /// already out. `sent` is the term and time the round goes out in, for the lease; a round
    /// that raft has not confirmed by tick `deadline` is forgotten (raft drops rounds silently).
    pub fn issue(&mut self, renew: bool, sent: (Term, u64), deadline: u64) -> Option<Vec<u8>> {
        if self.waiting.is_empty() && !(renew && self.issued.is_empty()) {
            return None;
        }
        self.next_ctx += 1;
        self.issued
            .insert(self.next_ctx, std::mem::take(&mut self.waiting));
        self.sent.insert(self.next_ctx, (sent, deadline));
        Some(self.next_ctx.to_be_bytes().to_vec())
    }

    /// Raft confirmed the round with `context` at `index`; returns the term and time it was
    /// sent in (see [`Reads::issue`]).
    pub fn confirmed(&mut self, context: &[u8], index: LogIndex) -> Option<(Term, u64)> {
        let ctx = u64::from_be_bytes(<[u8; 8]>::try_from(context).ok()?);
        let batch = self.issued.remove(&ctx)?;
        if !batch.is_empty() {
            self.confirmed.push((index, batch));
        }
        self.sent.remove(&ctx).map(|(sent, _)| sent)
    }

    /// Queues a read already confirmed at `index` (by the leader's lease), due by `deadline`.
    pub fn push_confirmed(&mut self, index: LogIndex, deadline: u64, responder: ReadResponder) {
        match self.confirmed.last_mut() {
            Some((i, batch)) if *i == index => batch.push((deadline, responder)),
            _ => self.confirmed.push((index, vec![(deadline, responder)])),
        }
    }

    /// Releases every confirmed batch whose read index is applied.
    pub fn release(&mut self, applied: LogIndex) {
        let (ready, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.confirmed = still;
        for (_, batch) in ready {
            for (_, r) in batch {
                let _ = r.send(Ok(()));
            }
        }
    }

    /// Fails reads past their deadline: raft drops ReadIndex requests silently when it has no
    /// leader, so a deadline is the only way such a read ends.
    pub fn expire(&mut self, now: u64) {
        let fail = |batch: &mut Vec<(u64, ReadResponder)>| {
            let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(batch)
                .into_iter()
                .partition(|(d, _)| *d <= now);
            *batch = keep;
            for (_, r) in gone {
                let _ = r.send(Err(Error::Unavailable(
                    "consistent read timed out: the leader could not confirm it still leads \
                     (is a majority of nodes reachable?); retry it"
                        .into(),
                )));
            }
        };
        fail(&mut self.waiting);
        for batch in self.issued.values_mut() {
            fail(batch);
        }
        // A round raft dropped (it never answers one it cannot serve) is forgotten once its
        // reads have failed, or past its own deadline if it had none (a lease renewal).
        let sent = &self.sent;
        self.issued.retain(|ctx, b| {
            !b.is_empty() || sent.get(ctx).is_some_and(|(_, deadline)| *deadline > now)
        });
        let issued = &self.issued;
        self.sent.retain(|ctx, _| issued.contains_key(ctx));
        for (_, batch) in self.confirmed.iter_mut() {
            fail(batch);
        }
        self.confirmed.retain(|(_, b)| !b.is_empty());
    }

    /// Number of reads not yet answered.
    pub fn len(&self) -> usize {
        self.waiting.len()
            + self.issued.values().map(Vec::len).sum::<usize>()
            + self.confirmed.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// True when no read is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fails everything (the node is stopping).
    pub fn fail_all(&mut self, why: &str) {
        let all = std::mem::take(&mut self.waiting)
            .into_iter()
            .chain(std::mem::take(&mut self.issued).into_values().flatten())
            .chain(
                std::mem::take(&mut self.confirmed)
                    .into_iter()
                    .flat_map(|(_, b)| b),
            );
        for (_, r) in all {
            let _ = r.send(Err(Error::Unavailable(why.to_string())));
        }
        self.sent.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_resolves_by_id_and_term_not_order() {
        let mut p: Proposals<u32> = Proposals::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let id1 = p.next_id();
        let id2 = p.next_id();
        p.insert(id1, 5, 2, 100, tx1);
        p.insert(id2, 6, 2, 100, tx2);
        // Index 5 was overwritten by another leader's entry (term 3): ours was not applied.
        assert!(p.applied(5, 3, &99u64.to_be_bytes()).is_none());
        assert!(matches!(rx1.try_recv(), Ok(Err(Error::NotApplied(_)))));
        assert_eq!(p.overwritten(), 1);
        // Index 6 is ours.
        let r = p
            .applied(6, 2, &id2.to_be_bytes())
            .expect("own entry resolves");
        let _ = r.send(Ok(7));
        assert_eq!(rx2.try_recv().ok().and_then(|r| r.ok()), Some(7));
        assert!(p.is_empty());
        assert_eq!(p.overwritten(), 1, "our own entry is no overwrite");
    }

    #[test]
    fn the_planted_bug_acknowledges_another_leaders_entry() {
        let mut p: Proposals<u32> =
            Proposals::with_planted_bug(Some(PlantedBug::AckAnyEntryAtIndex));
        let (tx, _rx) = oneshot::channel();
        let id = p.next_id();
        p.insert(id, 5, 2, 100, tx);
        assert!(
            p.applied(5, 3, &99u64.to_be_bytes()).is_some(),
            "the bug acks it"
        );
        assert_eq!(p.overwritten(), 0);
    }

    #[test]
    fn expired_proposals_fail_with_unknown_outcome() {
        let mut p: Proposals<u32> = Proposals::default();
        let (tx, mut rx) = oneshot::channel();
        let id = p.next_id();
        p.insert(id, 1, 1, 10, tx);
        p.expire(9, "1s");
        assert!(rx.try_recv().is_err(), "not yet due");
        p.expire(10, "1s");
        match rx.try_recv() {
            Ok(Err(Error::Unavailable(m))) => assert!(m.contains("unknown"), "{m}"),
            other => panic!("expected a timeout error, got {other:?}"),
        }
    }

    #[test]
    fn a_deposed_leader_answers_exactly_within_the_grace_or_unknown_after_it() {
        let mut p: Proposals<u32> = Proposals::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (id1, id2) = (p.next_id(), p.next_id());
        p.insert(id1, 5, 2, 100, tx1);
        p.insert(id2, 6, 2, 100, tx2);
        // Leadership lost at tick 10, with a grace of 10 ticks.
        p.shorten_deadlines(20);
        // Index 5 turns out to have committed (our entry): answered exactly.
        let r = p.applied(5, 2, &id1.to_be_bytes()).expect("own entry");
        let _ = r.send(Ok(1));
        assert_eq!(rx1.try_recv().ok().and_then(|r| r.ok()), Some(1));
        p.expire(19, "grace");
        assert!(rx2.try_recv().is_err(), "still within the grace");
        p.expire(20, "grace");
        assert!(matches!(rx2.try_recv(), Ok(Err(Error::Unavailable(_)))));
    }

    #[test]
    fn reads_release_once_applied_reaches_read_index() {
        let mut r = Reads::default();
        let (tx, mut rx) = oneshot::channel();
        r.push(100, tx);
        let ctx = r.issue(false, (2, 50), 100).expect("one batch");
        assert!(r.issue(false, (2, 60), 100).is_none());
        assert!(
            r.issue(true, (2, 60), 100).is_none(),
            "a round is already out"
        );
        assert_eq!(
            r.confirmed(&ctx, 8),
            Some((2, 50)),
            "when and in which term it was sent"
        );
        r.release(7);
        assert!(rx.try_recv().is_err());
        r.release(8);
        assert!(matches!(rx.try_recv(), Ok(Ok(()))));
        assert!(r.is_empty());
    }

    #[test]
    fn a_renewal_round_carries_no_reads_and_is_forgotten_past_its_deadline() {
        let mut r = Reads::default();
        let ctx = r.issue(true, (3, 70), 10).expect("a renewal");
        assert!(r.is_empty(), "no reader waits on a renewal");
        assert_eq!(r.confirmed(&ctx, 4), Some((3, 70)));
        let lost = r.issue(true, (3, 80), 10).expect("another");
        r.expire(9);
        assert!(
            r.issue(true, (3, 90), 20).is_none(),
            "still out before its deadline"
        );
        r.expire(10);
        assert_eq!(r.confirmed(&lost, 5), None, "given up");
        assert!(r.issue(true, (3, 90), 20).is_some());
    }

    #[test]
    fn reads_a_lease_confirmed_wait_only_for_the_apply() {
        let mut r = Reads::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        r.push_confirmed(6, 100, tx1);
        r.push_confirmed(6, 100, tx2);
        assert_eq!(r.len(), 2);
        r.release(5);
        assert!(rx1.try_recv().is_err());
        r.release(6);
        assert!(matches!(rx1.try_recv(), Ok(Ok(()))));
        assert!(matches!(rx2.try_recv(), Ok(Ok(()))));
        let (tx3, mut rx3) = oneshot::channel();
        r.push_confirmed(9, 100, tx3);
        r.expire(100);
        assert!(matches!(rx3.try_recv(), Ok(Err(Error::Unavailable(_)))));
    }
}
