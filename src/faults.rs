//! Network faults between nodes: partitions, delays and message loss, as plain data.
//!
//! The simulator's `kvsim fault ...` commands edit one [`NetworkFaults`] shared by every node of
//! the cluster, and each node's transport (Raft's, or the leaderless engine's mesh) consults it
//! for every batch it sends
//! ([`NetworkFaults::link`]). Faults touch only node-to-node traffic: clients still reach every
//! node, which is what lets a user watch a cut-off node serve stale reads and refuse writes.
//! Randomness (jitter, loss) comes from the caller's RNG, so a seeded simulation replays.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use rand::Rng;
use serde::Serialize;

use crate::NodeId;
use crate::{Error, Result};

/// Delay added to messages to and from a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Delay {
    /// Base delay, milliseconds.
    pub ms: u64,
    /// Up to this many milliseconds more, at random.
    pub jitter_ms: u64,
}

/// Every network fault in force.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NetworkFaults {
    /// Groups of nodes that can only talk within their group; empty when the network is whole.
    pub partition: Vec<BTreeSet<NodeId>>,
    /// Delays by node.
    pub delays: BTreeMap<NodeId, Delay>,
    /// Probability of losing each message to or from a node.
    pub drops: BTreeMap<NodeId, f64>,
}

/// What happens to one batch on one link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFate {
    /// The link is cut by a partition.
    pub cut: bool,
    /// Base delay in milliseconds (the two endpoints' delays added).
    pub delay_ms: u64,
    /// Extra random delay, at most this many milliseconds.
    pub jitter_ms: u64,
    /// Probability of losing each message.
    pub drop_rate: f64,
}

impl LinkFate {
    /// A link with no fault at all: messages arrive at once, every one.
    pub fn clean(&self) -> bool {
        !self.cut && self.delay_ms == 0 && self.jitter_ms == 0 && self.drop_rate <= 0.0
    }

    /// Whether this link loses one message, drawn from `rng`.
    pub fn loses(&self, rng: &mut impl Rng) -> bool {
        self.drop_rate > 0.0 && rng.gen_bool(self.drop_rate.clamp(0.0, 1.0))
    }

    /// The extra random delay of one message, in milliseconds, drawn from `rng`.
    pub fn draw_jitter_ms(&self, rng: &mut impl Rng) -> u64 {
        if self.jitter_ms > 0 {
            rng.gen_range(0..=self.jitter_ms)
        } else {
            0
        }
    }
}

/// Faults shared by the nodes of one cluster.
pub type SharedFaults = Arc<RwLock<NetworkFaults>>;

impl NetworkFaults {
    /// True when no fault is in force.
    pub fn is_empty(&self) -> bool {
        self.partition.is_empty() && self.delays.is_empty() && self.drops.is_empty()
    }

    /// The fate of messages from `from` to `to`.
    pub fn link(&self, from: NodeId, to: NodeId) -> LinkFate {
        let cut = !self.partition.is_empty()
            && !self
                .partition
                .iter()
                .any(|group| group.contains(&from) && group.contains(&to));
        let delay = |n: NodeId| {
            self.delays.get(&n).copied().unwrap_or(Delay {
                ms: 0,
                jitter_ms: 0,
            })
        };
        let (a, b) = (delay(from), delay(to));
        let drop = |n: NodeId| self.drops.get(&n).copied().unwrap_or(0.0);
        // Independent losses at either end.
        let drop_rate = 1.0 - (1.0 - drop(from)) * (1.0 - drop(to));
        LinkFate {
            cut,
            delay_ms: a.ms.saturating_add(b.ms),
            jitter_ms: a.jitter_ms.saturating_add(b.jitter_ms),
            drop_rate,
        }
    }

    /// Splits the cluster into `groups`, which must name every node of `all` exactly once.
    ///
    /// # Errors
    /// `Validation` naming the problem.
    pub fn set_partition(&mut self, groups: Vec<BTreeSet<NodeId>>, all: &[NodeId]) -> Result<()> {
        let mut seen = BTreeSet::new();
        for n in groups.iter().flatten() {
            if !all.contains(n) {
                return Err(Error::validation(format!(
                    "there is no node {n} (nodes are {all:?})"
                )));
            }
            if !seen.insert(*n) {
                return Err(Error::validation(format!(
                    "node {n} is in more than one group"
                )));
            }
        }
        if let Some(missing) = all.iter().find(|n| !seen.contains(n)) {
            return Err(Error::validation(format!(
                "a partition must place every node in a group; node {missing} is in none"
            )));
        }
        if groups.iter().filter(|g| !g.is_empty()).count() < 2 {
            return Err(Error::validation("a partition needs at least two groups"));
        }
        self.partition = groups.into_iter().filter(|g| !g.is_empty()).collect();
        Ok(())
    }

    /// Cuts `node` off from every other node.
    ///
    /// # Errors
    /// `Validation` if there is no such node.
    pub fn isolate(&mut self, node: NodeId, all: &[NodeId]) -> Result<()> {
        let rest: BTreeSet<NodeId> = all.iter().copied().filter(|n| *n != node).collect();
        self.set_partition(vec![BTreeSet::from([node]), rest], all)
    }

    /// Removes every network fault.
    pub fn heal(&mut self) {
        *self = NetworkFaults::default();
    }

    /// The faults that touch `node`, briefly (`cut off from 1,3`, `delay 100ms`, `drop 10%`),
    /// for its row in `kvsim status`.
    pub fn describe_node(&self, node: NodeId) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(group) = self.partition.iter().find(|g| g.contains(&node)) {
            let others: Vec<String> = self
                .partition
                .iter()
                .filter(|g| *g != group)
                .flatten()
                .map(u64::to_string)
                .collect();
            out.push(format!("cut off from {}", others.join(",")));
        }
        if let Some(d) = self.delays.get(&node) {
            if d.jitter_ms > 0 {
                out.push(format!("delay {}ms (+0..{}ms)", d.ms, d.jitter_ms));
            } else {
                out.push(format!("delay {}ms", d.ms));
            }
        }
        if let Some(r) = self.drops.get(&node) {
            out.push(format!("drop {}%", (r * 100.0 * 10.0).round() / 10.0));
        }
        out
    }

    /// One line per fault, for status and `fault list`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.partition.is_empty() {
            let groups: Vec<String> = self
                .partition
                .iter()
                .map(|g| g.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
                .collect();
            out.push(format!("partition {}", groups.join(" | ")));
        }
        for (n, d) in &self.delays {
            if d.jitter_ms > 0 {
                out.push(format!("delay node {n} {}ms (+0..{}ms)", d.ms, d.jitter_ms));
            } else {
                out.push(format!("delay node {n} {}ms", d.ms));
            }
        }
        for (n, r) in &self.drops {
            out.push(format!(
                "drop node {n} {}%",
                (r * 100.0 * 10.0).round() / 10.0
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [NodeId; 3] = [1, 2, 3];

    #[test]
    fn partitions_cut_links_between_groups_only() {
        let mut f = NetworkFaults::default();
        f.set_partition(vec![BTreeSet::from([1, 2]), BTreeSet::from([3])], &ALL)
            .expect("valid");
        assert!(!f.link(1, 2).cut);
        assert!(f.link(1, 3).cut);
        assert!(f.link(3, 2).cut);
        f.isolate(2, &ALL).expect("valid");
        assert!(f.link(2, 1).cut && f.link(3, 2).cut && !f.link(1, 3).cut);
        assert_eq!(f.describe(), vec!["partition 2 | 1,3"]);
        assert_eq!(f.describe_node(2), vec!["cut off from 1,3"]);
        assert_eq!(f.describe_node(1), vec!["cut off from 2"]);
        f.heal();
        assert!(f.is_empty() && !f.link(2, 1).cut);
    }

    #[test]
    fn bad_partitions_are_refused_and_change_nothing() {
        let mut f = NetworkFaults::default();
        for groups in [
            vec![BTreeSet::from([1, 2])],
            vec![BTreeSet::from([1]), BTreeSet::from([1, 2, 3])],
            vec![BTreeSet::from([1]), BTreeSet::from([2, 3, 4])],
        ] {
            assert!(f.set_partition(groups, &ALL).is_err());
        }
        assert!(f.is_empty());
    }

    #[test]
    fn delays_and_losses_add_up_over_both_ends() {
        let mut f = NetworkFaults::default();
        f.delays.insert(
            2,
            Delay {
                ms: 100,
                jitter_ms: 10,
            },
        );
        f.drops.insert(2, 0.5);
        f.drops.insert(3, 0.5);
        let l = f.link(2, 3);
        assert_eq!((l.delay_ms, l.jitter_ms), (100, 10));
        assert!((l.drop_rate - 0.75).abs() < 1e-9);
        assert_eq!(f.link(1, 3).delay_ms, 0);
    }
}
