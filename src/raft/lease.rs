//! Leader leases: consistent reads answered without a ReadIndex round while the leader knows no
//! other leader can exist.
//!
//! # Why a lease holds
//! With check-quorum on, a follower that heard from its leader less than an election timeout
//! ago (counted in its own ticks) ignores every vote and pre-vote request (raft-rs's `in_lease`
//! check). A ReadIndex round the leader sent at time `T` and a majority acknowledged therefore
//! proves that, until each of those followers has ticked an election timeout past receiving it,
//! no candidate can win a majority: that majority would need one of them. A node ticks at most
//! once per tick interval (the driver skips ticks it missed rather than bursting them), so that
//! is at least `(election_ticks - 1) * tick` after `T`. The leader takes 9/10 of that as its
//! lease, measured from `T` on its own clock, and answers a consistent read at its commit index
//! while the lease runs.
//!
//! # The assumptions, and what guards each
//! - **Every node has the same election timeout** (`election_ticks`): the lease is reckoned
//!   from the leader's, the promise kept by each follower's. One `Tuning` sets it for all.
//! - **Clocks advance at the same rate** on the leader and its followers, to within the 10%
//!   margin. In one process they read the same monotonic clock. A leader that stalls (a pause,
//!   a slow disk) is safe: it reads the clock when it answers, not a tick count.
//! - **A follower keeps its promise across a crash.** raft-rs forgets when it last heard from
//!   a leader, so a restarted node (one with a persisted term) neither votes nor campaigns for
//!   one election timeout after it starts ([`Lease::holds_votes`]). Not when the whole cluster
//!   starts ([`LeaseOptions::fresh_start`]): with every node in one process, no lease can
//!   outlive the process that granted it. A holding node still campaigns on a `MsgTimeoutNow`:
//!   only a leader transferring leadership sends one, and that leader has forfeited its lease
//!   (older copies carry an older term, which raft drops).
//! - **No forced election.** A leadership transfer makes its target campaign with votes that
//!   ignore leases, so a leader that begins one (or is asked to) holds no lease for the rest of
//!   its term ([`Lease::forfeit`]).
//!
//! Without leases (`kvsim server --no-lease-reads`) every consistent read takes a ReadIndex
//! round, which assumes nothing about clocks.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::raft::{LogIndex, Term};

/// A monotonic clock in microseconds: real time in the server, simulated time in the
/// deterministic simulation. The lease is the only thing in a node that reads time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// A clock reading `now` (microseconds, never going backwards).
    pub fn new(now: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    /// Microseconds now.
    pub fn now(&self) -> u64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// How a node keeps leases: its clock and the length of one tick on it.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// The clock leases are measured on.
    pub clock: Clock,
    /// Microseconds per Raft tick.
    pub tick_us: u64,
    /// No other node can hold a lease this one granted: this is the node's first start in
    /// the process that runs every node of the cluster. Otherwise a node that starts with a
    /// persisted term is a restart and holds its votes.
    pub fresh_start: bool,
}

/// One node's lease state (see the module docs).
#[derive(Debug)]
pub struct Lease {
    opts: Option<LeaseOptions>,
    /// How long a lease runs from the round that grants it, in microseconds.
    length_us: u64,
    /// The term the lease is for, and the time it runs out.
    held: Option<(Term, u64)>,
    /// A term in which this node began or was asked for a leadership transfer.
    forfeited: Option<Term>,
    /// Until when a restarted node neither votes nor campaigns.
    votes_held_until: Option<u64>,
}

impl Lease {
    /// The lease state of a node that just started, `restarted` if it has a persisted term.
    /// `None` options turn leases off.
    pub fn new(opts: Option<LeaseOptions>, election_ticks: usize, restarted: bool) -> Lease {
        let tick_us = opts.as_ref().map_or(0, |o| o.tick_us);
        let election_us = tick_us.saturating_mul(election_ticks as u64);
        let length_us = tick_us.saturating_mul(election_ticks.saturating_sub(1) as u64) / 10 * 9;
        let votes_held_until = opts
            .as_ref()
            .filter(|_| restarted)
            .map(|o| o.clock.now().saturating_add(election_us));
        Lease {
            opts,
            length_us,
            held: None,
            forfeited: None,
            votes_held_until,
        }
    }

    /// Whether leases are on.
    pub fn enabled(&self) -> bool {
        self.opts.is_some()
    }

    /// The time now, if leases are on.
    pub fn now(&self) -> Option<u64> {
        self.opts.as_ref().map(|o| o.clock.now())
    }

    /// How long a lease runs, in microseconds.
    pub fn length_us(&self) -> u64 {
        self.length_us
    }

    /// A ReadIndex round sent at `sent_us` in `term` was confirmed by a majority: the lease
    /// runs until `sent_us` plus its length (or longer, if a later round already said so).
    pub fn confirmed(&mut self, term: Term, sent_us: u64) {
        if self.opts.is_none() || self.forfeited == Some(term) {
            return;
        }
        let until = sent_us.saturating_add(self.length_us);
        self.held = match self.held {
            Some((t, u)) if t == term => Some((term, u.max(until))),
            _ => Some((term, until)),
        };
    }

    /// A leadership transfer began (or was asked for) in `term`: no lease for the rest of it.
    pub fn forfeit(&mut self, term: Term) {
        self.forfeited = Some(term);
        if self.held.is_some_and(|(t, _)| t == term) {
            self.held = None;
        }
    }

    /// When the lease in `term` runs out, if one runs now.
    pub fn until(&self, term: Term) -> Option<u64> {
        self.remaining(term)?;
        self.held.map(|(_, until)| until)
    }

    /// Microseconds left of the lease in `term`, if one runs now.
    pub fn remaining(&self, term: Term) -> Option<u64> {
        let (t, until) = self.held?;
        let now = self.now()?;
        (t == term && self.forfeited != Some(term) && now < until).then(|| until - now)
    }

    /// Whether a renewal round is due: leases are on and less than half of one is left.
    pub fn wants_renewal(&self, term: Term) -> bool {
        self.enabled()
            && self
                .remaining(term)
                .is_none_or(|left| left < self.length_us / 2)
    }

    /// Whether this node, restarted moments ago, must still neither vote nor campaign.
    pub fn holds_votes(&mut self) -> bool {
        let Some(until) = self.votes_held_until else {
            return false;
        };
        if self.now().is_some_and(|now| now < until) {
            return true;
        }
        self.votes_held_until = None;
        false
    }
}

/// The leader's lease as the rest of its process may use it: the node's client handlers answer
/// a consistent read on their own, without waking the node's thread, while the lease runs and
/// the node has applied the commit index it last published.
///
/// The node sets it as it publishes its status, before it answers the writes of that pass, so
/// the commit index covers every write acknowledged before a read that finds it; and it clears
/// it the moment it forfeits the lease or stops leading.
#[derive(Debug, Default)]
pub struct SharedLease {
    /// When the lease runs out, and the commit index a read must have applied.
    grant: Mutex<Option<(u64, LogIndex)>>,
    /// A read used the lease since the node last looked (so renewing it is worthwhile).
    used: AtomicBool,
    /// Reads answered from it.
    reads: AtomicU64,
}

impl SharedLease {
    /// Grants reads until `until_us` at commit index `commit`, or none.
    pub fn set(&self, grant: Option<(u64, LogIndex)>) {
        if let Ok(mut g) = self.grant.lock() {
            *g = grant;
        }
    }

    /// Whether a consistent read may be answered now (`now_us`) from local state that has
    /// applied `applied`; counts it if so.
    pub fn try_read(&self, now_us: u64, applied: LogIndex) -> bool {
        let grant = self.grant.lock().ok().and_then(|g| *g);
        let ok = grant.is_some_and(|(until, commit)| now_us < until && applied >= commit);
        if ok {
            self.used.store(true, Ordering::Relaxed);
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Whether a read used the lease since the last [`SharedLease::take_used`].
    pub fn used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether a read used the lease since the last call.
    pub fn take_used(&self) -> bool {
        self.used.swap(false, Ordering::Relaxed)
    }

    /// Reads answered from it.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(restarted: bool) -> (Lease, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(1_000));
        let c = t.clone();
        let opts = LeaseOptions {
            clock: Clock::new(move || c.load(Ordering::SeqCst)),
            tick_us: 100,
            fresh_start: false,
        };
        (Lease::new(Some(opts), 10, restarted), t)
    }

    #[test]
    fn a_lease_runs_nine_tenths_of_nine_ticks_from_the_round_that_granted_it() {
        let (mut l, t) = lease(false);
        assert_eq!(l.length_us(), 810);
        assert_eq!(l.remaining(3), None, "no round, no lease");
        l.confirmed(3, 900);
        assert_eq!(
            l.remaining(3),
            Some(710),
            "measured from when the round was sent"
        );
        assert_eq!(l.remaining(4), None, "another term's lease is no lease");
        t.store(1_709, Ordering::SeqCst);
        assert_eq!(l.remaining(3), Some(1));
        assert!(l.wants_renewal(3));
        t.store(1_710, Ordering::SeqCst);
        assert_eq!(l.remaining(3), None, "expired");
        l.confirmed(3, 1_700);
        l.confirmed(3, 1_000);
        assert_eq!(
            l.remaining(3),
            Some(800),
            "an older round never shortens it"
        );
        assert!(!l.wants_renewal(3));
    }

    #[test]
    fn a_transfer_forfeits_the_lease_for_the_rest_of_the_term() {
        let (mut l, _) = lease(false);
        l.confirmed(3, 1_000);
        l.forfeit(3);
        assert_eq!(l.remaining(3), None);
        l.confirmed(3, 1_000);
        assert_eq!(l.remaining(3), None, "not even from a later round");
        l.confirmed(4, 1_000);
        assert_eq!(l.remaining(4), Some(810), "a new term starts afresh");
    }

    #[test]
    fn a_restarted_node_holds_its_votes_for_an_election_timeout() {
        let (mut fresh, _) = lease(false);
        assert!(!fresh.holds_votes());
        let (mut l, t) = lease(true);
        assert!(l.holds_votes());
        t.store(1_999, Ordering::SeqCst);
        assert!(l.holds_votes());
        t.store(2_000, Ordering::SeqCst);
        assert!(!l.holds_votes());
        t.store(0, Ordering::SeqCst);
        assert!(!l.holds_votes(), "once over, over for good");
    }

    #[test]
    fn without_options_there_is_no_lease_and_no_hold() {
        let mut l = Lease::new(None, 10, true);
        l.confirmed(1, 0);
        assert_eq!(l.remaining(1), None);
        assert!(!l.holds_votes());
        assert!(!l.wants_renewal(1));
    }

    #[test]
    fn a_shared_lease_answers_only_while_it_runs_and_once_the_commit_is_applied() {
        let shared = SharedLease::default();
        assert!(!shared.try_read(0, 10), "no grant");
        shared.set(Some((1_000, 7)));
        assert!(
            !shared.try_read(500, 6),
            "the commit index is not applied yet"
        );
        assert!(shared.try_read(500, 7));
        assert!(!shared.try_read(1_000, 7), "expired");
        assert_eq!(shared.reads(), 1);
        assert!(shared.take_used());
        assert!(!shared.take_used());
        shared.set(None);
        assert!(!shared.try_read(0, 7), "cleared");
    }
}
