//! The consistent-hash ring of the leaderless mode: which nodes hold a partition key.
//!
//! Every node owns `vnodes` points on a 64-bit ring (the hash of `"<node>#<i>"`); a key's
//! *preference list* is the first N distinct nodes met walking clockwise from the key's own
//! hash, as in the Dynamo paper and the dkv seed. Walking further gives the nodes that stand in
//! for unreachable ones (sloppy quorum), in the order everyone agrees on.
//!
//! The ring is plain data, deterministic for a given hash function and membership: every node
//! that knows the same members computes the same lists. Adding or removing one node moves only
//! the keys whose arcs it gains or loses (about 1/n of them), never keys between other nodes.

use std::collections::BTreeSet;

use md5::{Digest, Md5};

use crate::dynamo::NodeId;

/// Virtual nodes per member by default: enough that five nodes each own 20% ± a few percent.
pub const DEFAULT_VNODES: u32 = 128;

/// A hash from bytes to a point on the ring. Pluggable; MD5 by default as in the dkv seed.
pub trait RingHash: Send + Sync {
    /// The point of `bytes` on the ring.
    fn point(&self, bytes: &[u8]) -> u64;
    /// The name shown in status (`md5`, ...).
    fn name(&self) -> &'static str;
}

/// MD5, its first eight bytes read big-endian: uniform, stable across platforms and versions,
/// and what the dkv seed's ring uses. Not a security boundary here.
#[derive(Clone, Copy, Debug, Default)]
pub struct Md5Hash;

impl RingHash for Md5Hash {
    fn point(&self, bytes: &[u8]) -> u64 {
        let digest = Md5::digest(bytes);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    fn name(&self) -> &'static str {
        "md5"
    }
}

/// The ring: members and their sorted points.
pub struct Ring {
    hash: Box<dyn RingHash>,
    vnodes: u32,
    /// `(point, node)`, sorted; ties (never seen with MD5, but possible in principle) are
    /// broken by node id so that every node orders them alike.
    points: Vec<(u64, NodeId)>,
    members: BTreeSet<NodeId>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("hash", &self.hash.name())
            .field("vnodes", &self.vnodes)
            .field("members", &self.members)
            .finish()
    }
}

impl Ring {
    /// An empty ring with MD5 and [`DEFAULT_VNODES`] points per member.
    pub fn new() -> Self {
        Self::with_hash(Box::new(Md5Hash), DEFAULT_VNODES)
    }

    /// An empty ring with the given hash and points per member (at least one).
    pub fn with_hash(hash: Box<dyn RingHash>, vnodes: u32) -> Self {
        Ring {
            hash,
            vnodes: vnodes.max(1),
            points: Vec::new(),
            members: BTreeSet::new(),
        }
    }

    /// A ring of `members`, MD5 and the default points per member.
    pub fn of(members: impl IntoIterator<Item = NodeId>) -> Self {
        let mut ring = Ring::new();
        for m in members {
            ring.add(m);
        }
        ring
    }

    /// Adds a member (no-op if present).
    pub fn add(&mut self, node: NodeId) {
        if !self.members.insert(node) {
            return;
        }
        for i in 0..self.vnodes {
            let point = self.hash.point(format!("{node}#{i}").as_bytes());
            self.points.push((point, node));
        }
        self.points.sort_unstable();
    }

    /// The point of `key` on the ring.
    pub fn point_of(&self, key: &[u8]) -> u64 {
        self.hash.point(key)
    }

    /// Every member, in the order the ring offers them for `key`: the first N are its
    /// preference list, the rest stand in (sloppy quorum) in this order.
    pub fn walk(&self, key: &[u8]) -> Vec<NodeId> {
        let point = self.hash.point(key);
        // The first point at or after the key's, wrapping around.
        let start = self.points.partition_point(|&(p, _)| p < point);
        let mut seen = Vec::with_capacity(self.members.len());
        let n = self.points.len();
        for i in 0..n {
            let (_, node) = self.points[(start + i) % n];
            if !seen.contains(&node) {
                seen.push(node);
                if seen.len() == self.members.len() {
                    break;
                }
            }
        }
        seen
    }

    /// The first `n` distinct members for `key` (fewer if the ring has fewer members).
    pub fn preference_list(&self, key: &[u8], n: usize) -> Vec<NodeId> {
        let mut walk = self.walk(key);
        walk.truncate(n);
        walk
    }

    /// Each member's share of the ring, as a fraction of the key space whose walks start at
    /// one of its points (what status shows as the ring's balance).
    pub fn shares(&self) -> Vec<(NodeId, f64)> {
        let mut owned: std::collections::BTreeMap<NodeId, u128> =
            self.members.iter().map(|&m| (m, 0)).collect();
        let n = self.points.len();
        for i in 0..n {
            // The arc (previous point, this point] belongs to this point's node.
            let (point, node) = self.points[i];
            let prev = if i == 0 {
                self.points[n - 1].0
            } else {
                self.points[i - 1].0
            };
            let arc = point.wrapping_sub(prev);
            // One member alone owns the whole ring, which wrapping_sub reports as 0.
            let arc = if n == 1 { u64::MAX } else { arc };
            *owned.entry(node).or_default() += u128::from(arc);
        }
        let total = owned.values().sum::<u128>().max(1) as f64;
        owned
            .into_iter()
            .map(|(m, arc)| (m, arc as f64 / total))
            .collect()
    }
}

impl Default for Ring {
    fn default() -> Self {
        Ring::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn md5_points_are_the_digest_prefix() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(Md5Hash.point(b""), 0xd41d8cd98f00b204);
    }

    #[test]
    fn an_empty_ring_has_no_owners() {
        let ring = Ring::new();
        assert!(ring.walk(b"k").is_empty());
        assert!(ring.preference_list(b"k", 3).is_empty());
    }

    #[test]
    fn five_nodes_share_the_ring_evenly() {
        let ring = Ring::of(1..=5);
        let shares = ring.shares();
        assert_eq!(shares.len(), 5);
        let sum: f64 = shares.iter().map(|(_, s)| s).sum();
        assert!((sum - 1.0).abs() < 1e-9, "shares sum to {sum}");
        for (node, share) in shares {
            assert!(
                (0.13..0.27).contains(&share),
                "node {node} owns {share:.3} of the ring"
            );
        }
    }

    #[test]
    fn keys_spread_over_every_node() {
        let ring = Ring::of(1..=5);
        let mut first = std::collections::BTreeMap::<NodeId, u32>::new();
        for i in 0..5000 {
            *first
                .entry(ring.preference_list(format!("user#{i}").as_bytes(), 1)[0])
                .or_default() += 1;
        }
        assert_eq!(first.len(), 5);
        for (node, n) in first {
            assert!(
                (600..1400).contains(&n),
                "node {node} coordinates {n} of 5000"
            );
        }
    }

    proptest! {
        #[test]
        fn preference_lists_are_distinct_and_prefix_the_walk(
            members in proptest::collection::btree_set(1u64..20, 1..9),
            key in proptest::collection::vec(any::<u8>(), 0..24),
            n in 1usize..6,
        ) {
            let ring = Ring::of(members.iter().copied());
            let walk = ring.walk(&key);
            prop_assert_eq!(walk.len(), members.len());
            let distinct: BTreeSet<_> = walk.iter().copied().collect();
            prop_assert_eq!(&distinct, &members);
            let list = ring.preference_list(&key, n);
            prop_assert_eq!(list.len(), n.min(members.len()));
            prop_assert_eq!(&list[..], &walk[..list.len()]);
        }

        #[test]
        fn adding_a_node_moves_only_keys_to_it(
            members in proptest::collection::btree_set(1u64..20, 2..8),
            newcomer in 20u64..30,
            keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..16), 1..50),
        ) {
            let before = Ring::of(members.iter().copied());
            let mut after = Ring::of(members.iter().copied());
            after.add(newcomer);
            for key in &keys {
                let was = before.walk(key);
                let now = after.walk(key);
                // The new walk is the old one with the newcomer inserted somewhere.
                let without: Vec<_> = now.iter().copied().filter(|&n| n != newcomer).collect();
                prop_assert_eq!(&without, &was);
            }
        }

        #[test]
        fn membership_order_does_not_matter(
            members in proptest::collection::vec(1u64..40, 1..9),
            key in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let forward = Ring::of(members.iter().copied());
            let backward = Ring::of(members.iter().rev().copied());
            prop_assert_eq!(forward.walk(&key), backward.walk(&key));
        }
    }
}
