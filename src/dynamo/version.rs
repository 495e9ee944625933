//! Versions of one item and the set of them a replica holds.
//!
//! A replica keeps, for each key, the versions no other version it holds has seen: an
//! antichain under the vector-clock order. Receiving a version (from a coordinator, a hint,
//! read repair or anti-entropy) adds it unless something held has already seen it, and drops
//! what it has seen. That is a join: the order versions arrive in does not matter, receiving one
//! twice changes nothing, and two replicas that received the same versions hold the same set.
//! What a read then returns is the [`crate::dynamo::merge::Merger`]'s business.

use serde::{Deserialize, Serialize};

use crate::dynamo::NodeId;
use crate::dynamo::clock::{Causality, VectorClock};
use crate::model::Item;

/// One version of an item, or of its deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// What this version has seen, its own write included.
    pub clock: VectorClock,
    /// Milliseconds, from a hybrid clock: the coordinator's wall clock, raised above the stamp
    /// of every version the write has seen and of every write it coordinated before. So a
    /// version's stamp exceeds those of all versions it descends from, whatever the machines'
    /// clocks say, and last-writer-wins never lets an older write beat one that saw it.
    pub stamp: u64,
    /// The node that coordinated the write.
    pub writer: NodeId,
    /// The item, or `None` for a tombstone.
    pub item: Option<Item>,
}

impl Version {
    /// True for a deletion.
    pub fn is_tombstone(&self) -> bool {
        self.item.is_none()
    }

    /// The total order last-writer-wins uses: stamp, then writer, then clock (never needed when
    /// stamps are unique per writer, but it keeps the order total whatever happens).
    pub fn recency(&self) -> (u64, NodeId, &VectorClock) {
        (self.stamp, self.writer, &self.clock)
    }
}

/// What receiving a version did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A version held has seen it (or is it): nothing changed.
    Stale,
    /// It replaced every version held (it had seen them all), or the replica held none.
    Newer,
    /// It is concurrent with some version held: a conflict, kept or merged.
    Conflict,
}

/// The versions a replica holds for one key: none of them has seen another.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Siblings(Vec<Version>);

impl Siblings {
    /// No versions: the key was never written here.
    pub fn new() -> Self {
        Siblings::default()
    }

    /// One version.
    pub fn of(version: Version) -> Self {
        Siblings(vec![version])
    }

    /// The versions, in clock order (a canonical order, so equal sets compare equal).
    pub fn versions(&self) -> &[Version] {
        &self.0
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The join of every clock held: the context a new write on this key descends from.
    pub fn context(&self) -> VectorClock {
        self.0
            .iter()
            .fold(VectorClock::new(), |acc, v| acc.join(&v.clock))
    }

    /// The largest stamp held (0 if none).
    pub fn max_stamp(&self) -> u64 {
        self.0.iter().map(|v| v.stamp).max().unwrap_or(0)
    }

    /// Receives `version`: keeps it unless something held has seen it, and drops what it has
    /// seen.
    pub fn receive(&mut self, version: Version) -> Received {
        let mut conflict = false;
        for held in &self.0 {
            match version.clock.compare(&held.clock) {
                Causality::Equal | Causality::Before => return Received::Stale,
                Causality::Concurrent => conflict = true,
                Causality::After => {}
            }
        }
        self.0
            .retain(|held| version.clock.compare(&held.clock) != Causality::After);
        let at = self.0.partition_point(|held| held.clock < version.clock);
        self.0.insert(at, version);
        if conflict {
            Received::Conflict
        } else {
            Received::Newer
        }
    }

    /// Replaces everything held with `version`, which must have seen all of it (the
    /// last-writer-wins merger's collapse of a conflict).
    pub(crate) fn collapse_to(&mut self, version: Version) {
        self.0 = vec![version];
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dynamo::clock::tests::clock;
    use crate::model::value::AttributeValue;

    pub(crate) fn version(entries: &[(NodeId, u64)], stamp: u64, value: Option<&str>) -> Version {
        Version {
            clock: clock(entries),
            stamp,
            writer: entries.last().map_or(0, |e| e.0),
            item: value.map(|v| Item::from([("v".to_string(), AttributeValue::S(v.into()))])),
        }
    }

    #[test]
    fn newer_replaces_stale_is_ignored_concurrent_is_kept() {
        let mut s = Siblings::new();
        assert_eq!(
            s.receive(version(&[(1, 1)], 10, Some("a"))),
            Received::Newer
        );
        assert_eq!(
            s.receive(version(&[(1, 1), (2, 2)], 11, Some("b"))),
            Received::Newer
        );
        assert_eq!(s.versions().len(), 1);
        assert_eq!(
            s.receive(version(&[(1, 1)], 10, Some("a"))),
            Received::Stale
        );
        assert_eq!(
            s.receive(version(&[(1, 1), (3, 3)], 12, Some("c"))),
            Received::Conflict
        );
        assert_eq!(s.versions().len(), 2);
        assert_eq!(s.context(), clock(&[(1, 1), (2, 2), (3, 3)]));
        // A write that saw both replaces both.
        assert_eq!(
            s.receive(version(&[(1, 1), (2, 2), (3, 4)], 13, None)),
            Received::Newer
        );
        assert_eq!(s.versions().len(), 1);
        assert!(s.versions()[0].is_tombstone());
    }
}
