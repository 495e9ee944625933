//! Mergers: how a replica combines concurrent versions of an item, and what a read returns.
//!
//! Both mergers make receiving a version a *join* (commutative, associative, idempotent), so
//! replicas that received the same versions, in any order and any number of times, hold the
//! same state and answer reads alike; that is what lets read repair, hinted handoff and
//! anti-entropy converge without coordination.
//!
//! - [`LastWriterWins`] (`--merger lww`, the default; the dkv seed's `LastTsMerger`): of
//!   concurrent versions the most recent by hybrid stamp wins and takes the joined clock of
//!   all of them, so the losers are gone for good. A conflict is still detected and reported.
//! - [`UnionMerge`] (`--merger vector`, the gossip seed's rule): concurrent versions are all kept
//!   as siblings; a read merges them: attributes of every live sibling (a map of maps merged
//!   attribute by attribute), sets united, numbers the largest (a counter never goes back),
//!   anything else (strings, binaries, booleans, lists, or values of different types) from the
//!   most recent sibling that has the attribute. A concurrent delete and write merge as the
//!   write (the union keeps what anyone wrote); only when every sibling is a deletion is the item
//!   gone. The next write on the key has seen every sibling and replaces them all.

use std::collections::{BTreeMap, BTreeSet};

use crate::dynamo::version::{Received, Siblings, Version};
use crate::model::Item;
use crate::model::value::AttributeValue;

/// What a read of one key returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The item, or `None` if absent or deleted.
    pub item: Option<Item>,
    /// True if the item was merged from concurrent siblings at this read.
    pub merged: bool,
}

/// A rule for concurrent versions. See the module documentation.
pub trait Merger: Send + Sync {
    /// The name `--merger` takes and status shows.
    fn name(&self) -> &'static str;

    /// Receives `version` into `held`. Must be a join, so that replicas converge.
    fn receive(&self, held: &mut Siblings, version: Version) -> Received;

    /// What a read returns for `held`.
    fn resolve(&self, held: &Siblings) -> Resolved;
}

/// The merger `--merger` names, if it names one.
pub fn by_name(name: &str) -> Option<Box<dyn Merger>> {
    match name {
        "lww" => Some(Box::new(LastWriterWins)),
        "vector" => Some(Box::new(UnionMerge)),
        _ => None,
    }
}

/// Last writer wins, by hybrid stamp. See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct LastWriterWins;

impl Merger for LastWriterWins {
    fn name(&self) -> &'static str {
        "lww"
    }

    fn receive(&self, held: &mut Siblings, version: Version) -> Received {
        let received = held.receive(version);
        if held.versions().len() > 1 {
            let context = held.context();
            if let Some(winner) = newest(held) {
                let mut winner = winner.clone();
                winner.clock = context;
                held.collapse_to(winner);
            }
        }
        received
    }

    fn resolve(&self, held: &Siblings) -> Resolved {
        let item = newest(held).and_then(|v| v.item.clone());
        Resolved {
            item,
            merged: false,
        }
    }
}

/// The most recent version held, by [`Version::recency`].
fn newest(held: &Siblings) -> Option<&Version> {
    held.versions()
        .iter()
        .max_by(|a, b| a.recency().cmp(&b.recency()))
}

/// Siblings kept and merged at read. See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnionMerge;

impl Merger for UnionMerge {
    fn name(&self) -> &'static str {
        "vector"
    }

    fn receive(&self, held: &mut Siblings, version: Version) -> Received {
        held.receive(version)
    }

    fn resolve(&self, held: &Siblings) -> Resolved {
        let mut live: Vec<&Version> = held
            .versions()
            .iter()
            .filter(|v| !v.is_tombstone())
            .collect();
        live.sort_by(|a, b| a.recency().cmp(&b.recency()));
        let items: Vec<&Item> = live.iter().filter_map(|v| v.item.as_ref()).collect();
        let item = match items.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            many => Some(merge_maps(many)),
        };
        Resolved {
            item,
            merged: held.versions().len() > 1,
        }
    }
}

/// Merges maps given oldest first: every attribute any of them has, each merged by
/// [`merge_values`] over the maps that have it.
fn merge_maps(maps: &[&BTreeMap<String, AttributeValue>]) -> BTreeMap<String, AttributeValue> {
    let names: BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let values: Vec<&AttributeValue> = maps.iter().filter_map(|m| m.get(name)).collect();
            merge_values(&values).map(|v| (name.clone(), v))
        })
        .collect()
}

/// Merges values given oldest first (`None` only for an empty slice).
fn merge_values(values: &[&AttributeValue]) -> Option<AttributeValue> {
    use AttributeValue as V;
    let newest = (*values.last()?).clone();
    let first = values[0];
    let same_kind = values
        .iter()
        .all(|v| std::mem::discriminant(*v) == std::mem::discriminant(first));
    if !same_kind {
        return Some(newest);
    }
    Some(match first {
        V::M(_) => {
            let maps: Vec<_> = values
                .iter()
                .filter_map(|v| match v {
                    V::M(m) => Some(m),
                    _ => None,
                })
                .collect();
            V::M(merge_maps(&maps))
        }
        V::Ss(_) => V::Ss(union(values, |v| match v {
            V::Ss(s) => Some(s),
            _ => None,
        })),
        V::Ns(_) => V::Ns(union(values, |v| match v {
            V::Ns(s) => Some(s),
            _ => None,
        })),
        V::Bs(_) => V::Bs(union(values, |v| match v {
            V::Bs(s) => Some(s),
            _ => None,
        })),
        V::N(_) => values.iter().copied().max().cloned().unwrap_or(newest),
        _ => newest,
    })
}

fn union<T: Ord + Clone>(
    values: &[&AttributeValue],
    set: impl Fn(&AttributeValue) -> Option<&BTreeSet<T>>,
) -> BTreeSet<T> {
    values
        .iter()
        .filter_map(|v| set(v))
        .flat_map(|s| s.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::NodeId;
    use crate::dynamo::clock::VectorClock;
    use crate::dynamo::version::tests::version;
    use crate::model::number::Number;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    fn n(s: &str) -> AttributeValue {
        match Number::parse(s) {
            Ok(num) => AttributeValue::N(num),
            Err(e) => panic!("bad number {s}: {e}"),
        }
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn lww_keeps_the_newest_and_reports_the_conflict() {
        let mut held = Siblings::new();
        let lww = LastWriterWins;
        lww.receive(&mut held, version(&[(1, 1)], 10, Some("a")));
        let got = lww.receive(&mut held, version(&[(2, 1)], 12, Some("b")));
        assert_eq!(got, Received::Conflict);
        assert_eq!(held.versions().len(), 1);
        assert_eq!(held.versions()[0].stamp, 12);
        // The winner carries both clocks: the loser can never come back.
        assert_eq!(
            lww.receive(&mut held, version(&[(1, 1)], 10, Some("a"))),
            Received::Stale
        );
        assert_eq!(
            lww.resolve(&held).item,
            version(&[(2, 1)], 12, Some("b")).item
        );
    }

    #[test]
    fn union_merges_attribute_by_attribute() {
        let older = Version {
            clock: crate::dynamo::clock::tests::clock(&[(1, 1)]),
            stamp: 10,
            writer: 1,
            item: Some(Item::from([
                ("pk".into(), s("k")),
                ("name".into(), s("old")),
                ("count".into(), n("7")),
                ("tags".into(), AttributeValue::Ss(["a".to_string()].into())),
                ("only_old".into(), AttributeValue::Bool(true)),
                (
                    "m".into(),
                    AttributeValue::M(BTreeMap::from([("x".into(), n("1"))])),
                ),
            ])),
        };
        let newer = Version {
            clock: crate::dynamo::clock::tests::clock(&[(2, 1)]),
            stamp: 11,
            writer: 2,
            item: Some(Item::from([
                ("pk".into(), s("k")),
                ("name".into(), s("new")),
                ("count".into(), n("5")),
                ("tags".into(), AttributeValue::Ss(["b".to_string()].into())),
                (
                    "m".into(),
                    AttributeValue::M(BTreeMap::from([("y".into(), n("2"))])),
                ),
            ])),
        };
        let tombstone = version(&[(3, 1)], 12, None);
        let mut held = Siblings::new();
        let m = UnionMerge;
        m.receive(&mut held, older);
        m.receive(&mut held, newer);
        assert_eq!(m.receive(&mut held, tombstone), Received::Conflict);
        assert_eq!(held.versions().len(), 3);
        let got = m.resolve(&held);
        assert!(got.merged);
        let expected = Item::from([
            ("pk".into(), s("k")),
            ("name".into(), s("new")),
            ("count".into(), n("7")),
            (
                "tags".into(),
                AttributeValue::Ss(["a".to_string(), "b".to_string()].into()),
            ),
            ("only_old".into(), AttributeValue::Bool(true)),
            (
                "m".into(),
                AttributeValue::M(BTreeMap::from([("x".into(), n("1")), ("y".into(), n("2"))])),
            ),
        ]);
        assert_eq!(got.item, Some(expected));
    }

    #[test]
    fn concurrent_deletions_alone_delete() {
        let mut held = Siblings::new();
        let m = UnionMerge;
        m.receive(&mut held, version(&[(1, 1)], 10, None));
        m.receive(&mut held, version(&[(2, 1)], 11, None));
        let got = m.resolve(&held);
        assert_eq!(got.item, None);
        assert!(got.merged);
    }

    /// A random history of writes on one key by `nodes` coordinators over `replicas`, each write
    /// taking the state of a random replica as its context, delivered to random replicas as it
    /// goes. Returns every version written.
    fn history(merger: &dyn Merger, rng: &mut StdRng, replicas: &mut [Siblings]) -> Vec<Version> {
        let mut counters: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut last_stamp: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut written = Vec::new();
        for _ in 0..rng.gen_range(1..12) {
            let writer: NodeId = rng.gen_range(1..=4);
            let ctx = &replicas[rng.gen_range(0..replicas.len())];
            let counter = counters.entry(writer).or_insert(0);
            *counter += 1;
            let mut clock: VectorClock = ctx.context();
            clock.record(writer, *counter);
            // The hybrid stamp: a skewed wall clock, raised above the context and the writer's past.
            let wall = rng.gen_range(0..50);
            let last = last_stamp.entry(writer).or_insert(0);
            let stamp = wall.max(ctx.max_stamp() + 1).max(*last + 1);
            *last = stamp;
            let value = (rng.gen_range(0..4) > 0).then(|| format!("w{}", written.len()));
            let v = Version {
                clock,
                stamp,
                writer,
                item: value.map(|x| Item::from([("v".to_string(), s(&x))])),
            };
            for r in replicas.iter_mut() {
                if rng.gen_bool(0.4) {
                    merger.receive(r, v.clone());
                }
            }
            written.push(v);
        }
        written
    }

    fn converge(merger: &dyn Merger, seed: u64) -> std::result::Result<(), TestCaseError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut replicas = vec![Siblings::new(); 3];
        let written = history(merger, &mut rng, &mut replicas);
        // Anti-entropy: every replica receives everything, in its own order, some twice.
        for r in replicas.iter_mut() {
            let mut all = written.clone();
            all.shuffle(&mut rng);
            all.extend(written.iter().take(2).cloned());
            for v in all {
                merger.receive(r, v);
            }
        }
        for r in &replicas[1..] {
            prop_assert_eq!(r, &replicas[0], "seed {}", seed);
            prop_assert_eq!(
                merger.resolve(r),
                merger.resolve(&replicas[0]),
                "seed {}",
                seed
            );
        }
        // Nothing silently lost: every write no other write has seen is among the siblings
        // (vector) or has been weighed against the winner (lww: the winner is the most recent
        // of them).
        let maximal: Vec<&Version> = written
            .iter()
            .filter(|v| {
                !written
                    .iter()
                    .any(|w| w.clock != v.clock && w.clock.descends(&v.clock))
            })
            .collect();
        let held = &replicas[0];
        if merger.name() == "vector" {
            prop_assert_eq!(held.versions().len(), maximal.len(), "seed {}", seed);
        } else {
            let newest = maximal.iter().max_by(|a, b| a.recency().cmp(&b.recency()));
            prop_assert_eq!(
                held.versions().first().map(|v| &v.item),
                newest.map(|v| &v.item),
                "seed {}",
                seed
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn replicas_converge_under_lww(seed in any::<u64>()) {
            converge(&LastWriterWins, seed)?;
        }

        #[test]
        fn replicas_converge_under_union(seed in any::<u64>()) {
            converge(&UnionMerge, seed)?;
        }
    }
}
