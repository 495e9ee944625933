//! The cluster's recent history, one bounded ring per node, in either engine: elections, leader
//! changes, crashes and restarts, faults, snapshots, compactions (Raft); suspicions, hints,
//! handoffs, conflicts, repairs (leaderless). `kvsim events` merges the rings by time.
//!
//! The synchronous core reports what happened as [`NodeEvent`]s without a time; the real-time
//! shell stamps them as it records them, keeping the core clock-free.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Events kept per node; older ones are dropped.
pub const RING_CAPACITY: usize = 1000;

/// Something that happened on a node, before it is stamped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEvent {
    /// A short stable name, e.g. `leader_elected`.
    pub kind: &'static str,
    /// A human-readable sentence.
    pub detail: String,
}

impl NodeEvent {
    /// A new event.
    pub fn new(kind: &'static str, detail: impl Into<String>) -> NodeEvent {
        NodeEvent {
            kind,
            detail: detail.into(),
        }
    }
}

/// A recorded event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Position in this node's log, increasing from 1.
    pub seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The node the event belongs to.
    pub node_id: NodeId,
    /// Short stable name.
    pub kind: String,
    /// Human-readable sentence.
    pub detail: String,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    events: VecDeque<EventRecord>,
}

/// One node's event ring; cheap to clone, shared by everything that records for the node.
#[derive(Clone, Debug)]
pub struct EventLog {
    node_id: NodeId,
    ring: Arc<Mutex<Ring>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl EventLog {
    /// An empty log for `node_id`.
    pub fn new(node_id: NodeId) -> EventLog {
        EventLog {
            node_id,
            ring: Arc::default(),
        }
    }

    /// Records `event` now.
    pub fn record(&self, event: NodeEvent) {
        tracing::info!(node = self.node_id, kind = event.kind, "{}", event.detail);
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        ring.next_seq += 1;
        let record = EventRecord {
            seq: ring.next_seq,
            time_ms: now_ms(),
            node_id: self.node_id,
            kind: event.kind.to_string(),
            detail: event.detail,
        };
        if ring.events.len() == RING_CAPACITY {
            ring.events.pop_front();
        }
        ring.events.push_back(record);
    }

    /// Events with a sequence number above `after`, oldest first.
    pub fn since(&self, after: u64) -> Vec<EventRecord> {
        self.ring
            .lock()
            .map(|r| r.events.iter().filter(|e| e.seq > after).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_events_in_order() {
        let log = EventLog::new(2);
        for i in 0..RING_CAPACITY + 5 {
            log.record(NodeEvent::new("test", format!("event {i}")));
        }
        let all = log.since(0);
        assert_eq!(all.len(), RING_CAPACITY);
        assert_eq!(all[0].seq, 6);
        assert_eq!(all.last().map(|e| e.detail.as_str()), Some("event 1004"));
        assert_eq!(log.since(1004).len(), 1);
        assert!(all.iter().all(|e| e.node_id == 2));
    }
}
