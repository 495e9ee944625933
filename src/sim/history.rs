//! The history of client operations in a simulation, and a linearizability checker for it.
//!
//! Each key is an independent register (absent or a string), written by puts and deletes,
//! compare-and-set puts, and set additions, and read by consistent gets; a conditional put
//! refused because its condition was false is an observation of the register, like a read.
//! (A string set is held as its members joined by commas, in order.) The checker is Wing & Gong's search with Lowe's memoization, as in
//! Porcupine: repeatedly linearize some operation that was called before every pending
//! operation returned, backtracking on a read that does not match, and remember (set of
//! linearized operations, register value) pairs already explored.
//!
//! Times are positions in one global order of events (every call and every return gets the
//! next number), so "returned before it was called" is exact, never a tie.
//!
//! A write whose outcome the client never learnt (a timeout, a crash) may have happened or not:
//! it is optional, with an infinite return time, so it never holds others back and the search
//! may leave it out. Writes known to have failed are not in the history at all, so a read that
//! returns their value has nothing to explain it and fails the check.
//!
//! Optional writes are what makes the search exponential, so the ones no read could depend on
//! are dropped first (sound: such a write, had it happened, was overwritten before anyone read
//! the register): a put whose value no read returned, a delete with no read of "absent"
//! returning after it was called. What is left is searched within a budget of states; a key
//! whose search exceeds it is reported as unchecked, never as passed.

use std::collections::{BTreeMap, HashSet};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Write this value.
    Put(String),
    /// Remove the item.
    Delete,
    /// A linearizable read that saw this value (`None`: no item).
    Get(Option<String>),
    /// A conditional put: the register held `expected` (`None`: absent), and became `new`.
    Cas {
        /// The value the condition required.
        expected: Option<String>,
        /// The value written.
        new: String,
    },
    /// A conditional put refused: the register did not hold `expected`.
    CasFailed {
        /// The value the condition required.
        expected: Option<String>,
    },
    /// `ADD` of one member to the register's string set (created if absent).
    AddMember(String),
    /// A time-to-live expiry of the item: it removes the item if the register holds an
    /// expiring value ([`expiring`]) and leaves it otherwise; `deleted` is what the answer
    /// said (`None`: unknown), which must agree.
    Expire {
        /// Whether the item was deleted.
        deleted: Option<bool>,
    },
}

/// Values the simulation writes with an expiry in the past start with `e`.
pub fn expiring(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|v| v.starts_with('e'))
}

/// The register's value after `member` joins its set.
fn with_member(value: &Option<String>, member: &str) -> String {
    let mut members: Vec<&str> = value
        .as_deref()
        .map(|v| v.split(',').collect())
        .unwrap_or_default();
    if !members.contains(&member) {
        members.push(member);
    }
    members.sort_unstable();
    members.join(",")
}

/// The value `op` leaves when applied to `value`, or `None` when it cannot apply there.
fn step(op: &OpKind, value: &Option<String>) -> Option<Option<String>> {
    match op {
        OpKind::Put(v) => Some(Some(v.clone())),
        OpKind::Delete => Some(None),
        OpKind::Get(saw) => (saw == value).then(|| value.clone()),
        OpKind::Cas { expected, new } => (expected == value).then(|| Some(new.clone())),
        OpKind::CasFailed { expected } => (expected != value).then(|| value.clone()),
        OpKind::AddMember(m) => Some(Some(with_member(value, m))),
        OpKind::Expire { deleted } => match (expiring(value), deleted) {
            (true, Some(false)) | (false, Some(true)) => None,
            (true, _) => Some(None),
            (false, _) => Some(value.clone()),
        },
    }
}

/// One completed (or possibly completed) operation on a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Op {
    /// What it did.
    pub kind: OpKind,
    /// When the client called it (its position in the order of events).
    pub call: u64,
    /// When it returned successfully; `None` for a write with unknown outcome.
    pub ret: Option<u64>,
}

/// Operations per key.
pub type History = BTreeMap<String, Vec<Op>>;

/// Most search states explored for one key before giving up on it.
const MAX_STATES: usize = 500_000;

/// The result of checking one key that is not a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// A linearization exists.
    Linearizable,
    /// The search exceeded its budget: neither proven nor refuted.
    TooLarge,
}

type Bits = Vec<u64>;

fn has(bits: &Bits, i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn with(bits: &Bits, i: usize) -> Bits {
    let mut b = bits.clone();
    b[i / 64] |= 1 << (i % 64);
    b
}

/// The operations worth searching: every completed one, and the optional writes some read
/// could depend on (see the module docs).
fn relevant(ops: &[Op]) -> Vec<Op> {
    // Could a completed operation returning after `t` depend on the register being absent?
    // (A create-if-absent of unknown outcome counts too: it may be what a read saw.)
    let absence_observed_after = |t: u64| {
        ops.iter().any(|o| match &o.kind {
            OpKind::Get(None)
            | OpKind::CasFailed { .. }
            | OpKind::Expire {
                deleted: Some(false),
            } => o.ret.is_some_and(|r| r > t),
            OpKind::Cas { expected: None, .. } => o.ret.is_none_or(|r| r > t),
            _ => false,
        })
    };
    // Could some operation depend on the register holding `v`?
    let value_observed = |v: &str| {
        ops.iter().any(|o| match &o.kind {
            OpKind::Get(Some(seen)) => seen == v,
            OpKind::Cas {
                expected: Some(e), ..
            }
            | OpKind::CasFailed { expected: Some(e) } => e == v,
            OpKind::CasFailed { expected: None } => true,
            // An expiry that deleted saw an expiring value; one that did not, another value;
            // one of unknown outcome may have deleted an expiring value.
            OpKind::Expire { deleted: Some(d) } => expiring(&Some(v.to_string())) == *d,
            OpKind::Expire { deleted: None } => expiring(&Some(v.to_string())),
            _ => false,
        })
    };
    // Could some read have seen `member` in the set?
    let member_observed = |m: &str| {
        ops.iter().any(|o| match &o.kind {
            OpKind::Get(Some(seen)) => seen.split(',').any(|x| x == m),
            OpKind::Cas { .. } | OpKind::CasFailed { .. } => true,
            _ => false,
        })
    };
    // A refused compare-and-set saw *some* other value: any write that may have happened
    // before it returned could be what it saw.
    let refusal_after = |t: u64| {
        ops.iter()
            .any(|o| matches!(o.kind, OpKind::CasFailed { .. }) && o.ret.is_some_and(|r| r > t))
    };
    // In a set, a delete explains any later read missing earlier members.
    let holds_set = ops.iter().any(|o| matches!(o.kind, OpKind::AddMember(_)));
    ops.iter()
        .filter(|op| match (&op.kind, op.ret) {
            (_, Some(_)) | (OpKind::Get(_) | OpKind::CasFailed { .. }, None) => true,
            (_, None) if refusal_after(op.call) => true,
            (OpKind::Put(v) | OpKind::Cas { new: v, .. }, None) => value_observed(v),
            (OpKind::Delete | OpKind::Expire { .. }, None) => {
                holds_set || absence_observed_after(op.call)
            }
            (OpKind::AddMember(m), None) => member_observed(m),
        })
        .cloned()
        .collect()
}

/// Checks one key's operations.
///
/// # Errors
/// A description of the history when no linearization exists.
pub fn check_key(key: &str, all_ops: &[Op]) -> Result<Checked, String> {
    let ops = relevant(all_ops);
    let n = ops.len();
    let required: usize = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut seen: HashSet<(Bits, Option<String>)> = HashSet::new();
    // Explicit stack: (linearized set, count of required ones done, register value).
    let mut stack: Vec<(Bits, usize, Option<String>)> =
        vec![(vec![0; n.div_ceil(64).max(1)], 0, None)];
    while let Some((done, required_done, value)) = stack.pop() {
        if required_done == required {
            return Ok(Checked::Linearizable);
        }
        if seen.len() >= MAX_STATES {
            return Ok(Checked::TooLarge);
        }
        if !seen.insert((done.clone(), value.clone())) {
            continue;
        }
        let horizon = (0..n)
            .filter(|i| !has(&done, *i))
            .filter_map(|i| ops[i].ret)
            .min()
            .unwrap_or(u64::MAX);
        for (i, op) in ops.iter().enumerate() {
            // An operation called after some pending one returned must come after it.
            if has(&done, i) || op.call >= horizon {
                continue;
            }
            let Some(next) = step(&op.kind, &value) else {
                continue;
            };
            let req = required_done + usize::from(op.ret.is_some());
            stack.push((with(&done, i), req, next));
        }
    }
    let mut lines = vec![format!(
        "key {key} is not linearizable; its operations (call..return):"
    )];
    for op in all_ops {
        let ret = op.ret.map_or("?".to_string(), |r| r.to_string());
        lines.push(format!("  {}..{ret} {:?}", op.call, op.kind));
    }
    Err(lines.join("\n"))
}

/// Checks every key; returns the keys whose search was too large to decide.
///
/// # Errors
/// The first key's failure description.
pub fn check(history: &History) -> Result<Vec<String>, String> {
    let mut unchecked = Vec::new();
    for (k, ops) in history {
        if check_key(k, ops)? == Checked::TooLarge {
            unchecked.push(k.clone());
        }
    }
    Ok(unchecked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &str, call: u64, ret: u64) -> Op {
        Op {
            kind: OpKind::Put(v.into()),
            call,
            ret: Some(ret),
        }
    }
    fn get(v: Option<&str>, call: u64, ret: u64) -> Op {
        Op {
            kind: OpKind::Get(v.map(str::to_string)),
            call,
            ret: Some(ret),
        }
    }

    #[test]
    fn sequential_histories() {
        assert!(check_key("k", &[put("a", 0, 1), get(Some("a"), 2, 3)]).is_ok());
        assert!(
            check_key(
                "k",
                &[get(None, 0, 1), put("a", 2, 3), get(Some("a"), 4, 5)]
            )
            .is_ok()
        );
        // Stale read after the write completed.
        assert!(check_key("k", &[put("a", 0, 1), put("b", 2, 3), get(Some("a"), 4, 5)]).is_err());
        // A read of a value nobody wrote.
        assert!(check_key("k", &[get(Some("x"), 0, 1)]).is_err());
        let del = Op {
            kind: OpKind::Delete,
            call: 2,
            ret: Some(3),
        };
        assert!(check_key("k", &[put("a", 0, 1), del.clone(), get(None, 4, 5)]).is_ok());
        assert!(check_key("k", &[put("a", 0, 1), del, get(Some("a"), 4, 5)]).is_err());
    }

    #[test]
    fn concurrent_operations_may_order_either_way() {
        // Two overlapping writes; reads after both may see either, but consistently.
        let h = [put("a", 0, 10), put("b", 1, 11), get(Some("a"), 12, 13)];
        assert!(check_key("k", &h).is_ok());
        let h = [
            put("a", 0, 10),
            put("b", 1, 11),
            get(Some("a"), 12, 13),
            get(Some("b"), 14, 15),
            get(Some("a"), 16, 17),
        ];
        assert!(
            check_key("k", &h).is_err(),
            "a register cannot flip back without a write"
        );
        // A read overlapping a write may see the old or the new value.
        assert!(
            check_key(
                "k",
                &[put("a", 0, 1), put("b", 2, 10), get(Some("a"), 3, 4)]
            )
            .is_ok()
        );
        assert!(
            check_key(
                "k",
                &[put("a", 0, 1), put("b", 2, 10), get(Some("b"), 3, 4)]
            )
            .is_ok()
        );
        // But once a read saw the new value, a later read cannot see the old one.
        let h = [
            put("a", 0, 1),
            put("b", 2, 10),
            get(Some("b"), 3, 4),
            get(Some("a"), 5, 6),
        ];
        assert!(check_key("k", &h).is_err());
    }

    #[test]
    fn writes_with_unknown_outcome_may_or_may_not_have_happened() {
        let unknown = Op {
            kind: OpKind::Put("u".into()),
            call: 2,
            ret: None,
        };
        assert!(
            check_key(
                "k",
                &[put("a", 0, 1), unknown.clone(), get(Some("a"), 5, 6)]
            )
            .is_ok()
        );
        assert!(
            check_key(
                "k",
                &[put("a", 0, 1), unknown.clone(), get(Some("u"), 5, 6)]
            )
            .is_ok()
        );
        // It cannot take effect before it was called.
        assert!(check_key("k", &[get(Some("u"), 0, 1), unknown]).is_err());
    }

    #[test]
    fn a_write_that_returned_before_a_read_was_called_precedes_it() {
        // Times are event positions: the put returned at 10, the read was called at 11.
        assert!(check_key("k", &[put("a", 5, 10), get(None, 11, 12)]).is_err());
        assert!(check_key("k", &[put("a", 5, 10), get(None, 9, 12)]).is_ok());
    }

    fn op(kind: OpKind, call: u64, ret: Option<u64>) -> Op {
        Op { kind, call, ret }
    }

    #[test]
    fn compare_and_set_and_its_refusals_are_observations() {
        let cas = |e: Option<&str>, n: &str| OpKind::Cas {
            expected: e.map(str::to_string),
            new: n.into(),
        };
        let failed = |e: Option<&str>| OpKind::CasFailed {
            expected: e.map(str::to_string),
        };
        // Create-if-absent, then a CAS from the created value.
        let ok = [
            op(cas(None, "a"), 0, Some(1)),
            op(cas(Some("a"), "b"), 2, Some(3)),
            get(Some("b"), 4, 5),
        ];
        assert_eq!(check_key("k", &ok), Ok(Checked::Linearizable));
        // Two sequential create-if-absent cannot both succeed.
        let both = [
            op(cas(None, "a"), 0, Some(1)),
            op(cas(None, "b"), 2, Some(3)),
        ];
        assert!(check_key("k", &both).is_err());
        // A refusal is a read: refused while the register held what it expected is wrong.
        let wrong = [put("a", 0, 1), op(failed(Some("a")), 2, Some(3))];
        assert!(check_key("k", &wrong).is_err());
        let right = [put("a", 0, 1), op(failed(Some("z")), 2, Some(3))];
        assert_eq!(check_key("k", &right), Ok(Checked::Linearizable));
        // A create-if-absent of unknown outcome, seen by a read, needs an unknown delete.
        let recreated = [
            put("a", 0, 1),
            op(OpKind::Delete, 2, None),
            op(cas(None, "b"), 3, None),
            get(Some("b"), 5, 6),
        ];
        assert_eq!(check_key("k", &recreated), Ok(Checked::Linearizable));
        // A refusal can be explained by a write of unknown outcome nobody read.
        let unread = [
            put("a", 0, 1),
            op(OpKind::Put("u".into()), 2, None),
            op(failed(Some("a")), 3, Some(4)),
        ];
        assert_eq!(check_key("k", &unread), Ok(Checked::Linearizable));
    }

    #[test]
    fn set_additions_are_never_lost() {
        let add = |m: &str| OpKind::AddMember(m.into());
        let h = [
            op(add("m1"), 0, Some(1)),
            op(add("m2"), 2, Some(3)),
            get(Some("m1,m2"), 4, 5),
        ];
        assert_eq!(check_key("s", &h), Ok(Checked::Linearizable));
        let lost = [
            op(add("m1"), 0, Some(1)),
            op(add("m2"), 2, Some(3)),
            get(Some("m2"), 4, 5),
        ];
        assert!(
            check_key("s", &lost).is_err(),
            "an acknowledged add was lost"
        );
        // A delete of unknown outcome explains a later read without the earlier members.
        let deleted = [
            op(add("m1"), 0, Some(1)),
            op(OpKind::Delete, 2, None),
            op(add("m2"), 3, Some(4)),
            get(Some("m2"), 5, 6),
        ];
        assert_eq!(check_key("s", &deleted), Ok(Checked::Linearizable));
        // An add of unknown outcome may show up or not.
        let maybe = [
            op(add("m1"), 0, None),
            get(Some("m1"), 4, 5),
            get(Some("m1"), 6, 7),
        ];
        assert_eq!(check_key("s", &maybe), Ok(Checked::Linearizable));
    }

    #[test]
    fn many_unknown_writes_do_not_blow_up_the_search() {
        // 60 writes of unknown outcome nobody read, then a stale read: without pruning, the
        // search would try 2^60 subsets of them.
        let mut h: Vec<Op> = (0..60)
            .map(|i| Op {
                kind: OpKind::Put(format!("u{i}")),
                call: i,
                ret: None,
            })
            .collect();
        h.push(put("a", 100, 101));
        h.push(put("b", 102, 103));
        h.push(get(Some("a"), 104, 105));
        assert!(
            check_key("k", &h).is_err(),
            "the stale read is still caught"
        );
        h.pop();
        h.push(get(Some("b"), 104, 105));
        assert_eq!(check_key("k", &h), Ok(Checked::Linearizable));
        // Unknown deletes likewise, unless a read of "absent" could depend on them.
        let mut h: Vec<Op> = (0..60)
            .map(|i| Op {
                kind: OpKind::Delete,
                call: i,
                ret: None,
            })
            .collect();
        h.push(put("a", 100, 101));
        h.push(get(Some("a"), 102, 103));
        assert_eq!(check_key("k", &h), Ok(Checked::Linearizable));
        let late_delete = Op {
            kind: OpKind::Delete,
            call: 104,
            ret: None,
        };
        h.push(late_delete);
        h.push(get(None, 105, 106));
        assert_eq!(
            check_key("k", &h),
            Ok(Checked::Linearizable),
            "the unknown delete explains the absent read"
        );
    }
}
