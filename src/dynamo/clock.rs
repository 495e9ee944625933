//! Vector clocks: which versions of an item descend from which, and which are concurrent.
//!
//! A clock maps a node to the last counter of that node's writes the version has seen. Every
//! write a node coordinates takes a fresh counter from that node's own durable sequence (not
//! "my entry plus one", which two writes on the same stale context would share), so each
//! write event has a clock no other event has, and equal clocks mean the same version.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dynamo::NodeId;

/// How two versions relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    /// The same history.
    Equal,
    /// The first happened before the second (the second has seen it).
    Before,
    /// The first has seen the second.
    After,
    /// Neither has seen the other: a conflict.
    Concurrent,
}

impl Causality {
    /// The relation seen from the other side.
    pub fn reverse(self) -> Self {
        match self {
            Causality::Before => Causality::After,
            Causality::After => Causality::Before,
            other => other,
        }
    }
}

/// A vector clock. Absent entries are zero; zeros are never stored, so equal clocks compare
/// equal as values too.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VectorClock(BTreeMap<NodeId, u64>);

impl VectorClock {
    /// The empty clock: before every write.
    pub fn new() -> Self {
        VectorClock::default()
    }

    /// `node`'s entry.
    pub fn get(&self, node: NodeId) -> u64 {
        self.0.get(&node).copied().unwrap_or(0)
    }

    /// The entries, in node order.
    pub fn entries(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.0.iter().map(|(&n, &c)| (n, c))
    }

    /// Records a write by `node` with that node's next counter, `counter`, which must exceed
    /// every counter `node` handed out before (the caller's durable sequence guarantees it).
    pub fn record(&mut self, node: NodeId, counter: u64) {
        let entry = self.0.entry(node).or_insert(0);
        *entry = (*entry).max(counter);
    }

    /// The least clock that has seen both: the pointwise maximum.
    pub fn join(&self, other: &VectorClock) -> VectorClock {
        let mut out = self.clone();
        for (node, c) in other.entries() {
            out.record(node, c);
        }
        out
    }

    /// True if this clock has seen everything `other` has (equal counts).
    pub fn descends(&self, other: &VectorClock) -> bool {
        other.entries().all(|(node, c)| self.get(node) >= c)
    }

    /// How this clock relates to `other`.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        match (self.descends(other), other.descends(self)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (false, false) => Causality::Concurrent,
        }
    }
}

impl fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `{1:3, 2:1}`: node and counter, in node order.
impl fmt::Display for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (node, c)) in self.entries().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{node}:{c}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn clock(entries: &[(NodeId, u64)]) -> VectorClock {
        let mut c = VectorClock::new();
        for &(n, v) in entries {
            c.record(n, v);
        }
        c
    }

    fn arb_clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::btree_map(1u64..5, 1u64..6, 0..4).prop_map(VectorClock)
    }

    #[test]
    fn relations() {
        let a = clock(&[(1, 1)]);
        let b = clock(&[(1, 1), (2, 1)]);
        let c = clock(&[(1, 1), (3, 2)]);
        assert_eq!(a.compare(&a), Causality::Equal);
        assert_eq!(a.compare(&b), Causality::Before);
        assert_eq!(b.compare(&a), Causality::After);
        assert_eq!(b.compare(&c), Causality::Concurrent);
        assert_eq!(b.join(&c), clock(&[(1, 1), (2, 1), (3, 2)]));
        assert_eq!(VectorClock::new().compare(&a), Causality::Before);
        assert_eq!(b.to_string(), "{1:1, 2:1}");
    }

    proptest! {
        #[test]
        fn compare_is_antisymmetric(a in arb_clock(), b in arb_clock()) {
            prop_assert_eq!(a.compare(&b), b.compare(&a).reverse());
            prop_assert_eq!(a.compare(&b) == Causality::Equal, a == b);
        }

        #[test]
        fn join_is_the_least_upper_bound(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
            let j = a.join(&b);
            prop_assert!(j.descends(&a) && j.descends(&b));
            prop_assert_eq!(&j, &b.join(&a));
            prop_assert_eq!(a.join(&b).join(&c), a.join(&b.join(&c)));
            prop_assert_eq!(a.join(&a), a.clone());
            // Least: any clock that has seen both has seen the join.
            if c.descends(&a) && c.descends(&b) {
                prop_assert!(c.descends(&j));
            }
        }

        #[test]
        fn a_new_write_descends_its_context(a in arb_clock(), node in 1u64..5, bump in 1u64..3) {
            let mut next = a.clone();
            next.record(node, a.get(node) + bump);
            prop_assert_eq!(next.compare(&a), Causality::After);
        }
    }
}
