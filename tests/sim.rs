//! The deterministic simulation in CI: a batch of seeds with faults, and tests of the simulation
//! itself: a seed must replay exactly, and deliberately planted bugs must be caught, among them
//! every bug the simulation ever found, planted back (so a change that stops the simulation
//! from finding it fails here). `kvsim sim --seeds N` runs as many seeds as you like.

use kvsim::raft::node::PlantedBug;
use kvsim::sim::{SimOptions, SimReport, run};

fn options(seed: u64, ops: usize, planted_bug: Option<PlantedBug>) -> SimOptions {
    SimOptions {
        seed,
        ops,
        faults: true,
        planted_bug,
        lease_reads: false,
    }
}

fn check(seed: u64, ops: usize, lease_reads: bool) -> SimReport {
    let report = run(&SimOptions {
        lease_reads,
        ..options(seed, ops, None)
    });
    let flag = if lease_reads { "" } else { " --no-lease-reads" };
    assert!(
        report.violations.is_empty(),
        "seed {seed} found violations (replay: kvsim sim --seed {seed} --seeds 1 --ops \
         {ops}{flag}):\n{}",
        report.violations.join("\n")
    );
    report
}

/// Runs `count` seeds from `first` (shifted by `KVSIM_SIM_BASE` to explore new ones), and
/// checks the batch did real work: acknowledged writes and consistent reads for the checker,
/// faults that changed something, crashes among them, and the cases a deposed leader must get
/// right: writes whose log index another leader's entry took (answered "not applied") and
/// consistent reads in flight while a new leader was elected (refused, or checked).
fn batch(first: u64, count: u64, lease_reads: bool) {
    let shift: u64 = std::env::var("KVSIM_SIM_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut total = SimReport::default();
    for seed in first + shift..first + shift + count {
        let r = check(seed, 150, lease_reads);
        total.lease_reads += r.lease_reads;
        total.acked_writes += r.acked_writes;
        total.consistent_reads += r.consistent_reads;
        total.faults += r.faults;
        total.crashes += r.crashes;
        total.unchecked += r.unchecked;
        total.stalls += r.stalls;
        total.overwritten_proposals += r.overwritten_proposals;
        total.reads_across_leader_change += r.reads_across_leader_change;
        total.reads_across_leader_change_answered += r.reads_across_leader_change_answered;
        total.cas_succeeded += r.cas_succeeded;
        total.cas_failed += r.cas_failed;
        total.transactions += r.transactions;
        total.partiql_transactions += r.partiql_transactions;
        total.index_reads += r.index_reads;
        total.index_changes += r.index_changes;
        total.index_batches += r.index_batches;
        total.expired += r.expired;
    }
    let per_seed = |n: usize| n as f64 / count as f64;
    assert!(
        per_seed(total.acked_writes) >= 20.0
            && per_seed(total.consistent_reads) >= 10.0
            && per_seed(total.faults) >= 2.0
            && total.crashes >= count as usize / 4,
        "the batch exercised too little: {total:?}"
    );
    // Seeds 1..300 overwrite 3.5 to 5 writes and send 6 to 7 reads across a leader change per
    // seed; a batch far below that no longer exercises those paths.
    assert!(
        per_seed(total.stalls) >= 1.0
            && total.overwritten_proposals >= count
            && per_seed(total.reads_across_leader_change) >= 2.0,
        "the batch overwrote too few writes or read too little across leader changes: \
         {total:?}"
    );
    // Conditional writes both succeed and fail (a failure is checked as an observation), and
    // transactions run (each checked all or nothing at every applied index).
    assert!(
        per_seed(total.cas_succeeded) >= 1.0
            && per_seed(total.cas_failed) >= 1.0
            && per_seed(total.transactions) >= 3.0
            && per_seed(total.partiql_transactions) >= 0.5,
        "the batch ran too few conditional writes or transactions: {total:?}"
    );
    // Global indexes are read, and one is added to the live table (backfilled in batches) and
    // removed again (in batches) in most seeds, under the same faults, while the invariants
    // check every index against the items at every applied index.
    assert!(
        per_seed(total.index_reads) >= 1.0
            && per_seed(total.index_changes) >= 1.0
            && per_seed(total.index_batches) >= 4.0,
        "the batch read or changed indexes too little: {total:?}"
    );
    // Time-to-live expiries delete items (and are checked like any write).
    assert!(
        per_seed(total.expired) >= 0.3,
        "the batch expired too few items: {total:?}"
    );
    assert_eq!(total.unchecked, 0, "every history was decided: {total:?}");
    // With leases on, most consistent reads skip the round (about 20 per seed in seeds 1..60).
    assert!(
        !lease_reads || per_seed(total.lease_reads as usize) >= 5.0,
        "too few consistent reads were answered from a lease: {total:?}"
    );
}

// Three batches of 100 seeds, so the two CI cores share them.
#[test]
fn seeds_1_to_100_find_no_violation() {
    batch(1, 100, false);
}

#[test]
fn seeds_101_to_200_find_no_violation() {
    batch(101, 100, false);
}

#[test]
fn seeds_201_to_300_find_no_violation() {
    batch(201, 100, false);
}

/// Leader leases (on by default in `kvsim server`) under the same faults: stalled leaders, cut-off
/// leaders, crashes and restarts, transfers. Every read answered from a lease is checked.
#[test]
fn seeds_1_to_100_with_leader_leases_find_no_violation() {
    batch(1, 100, true);
}

#[test]
fn the_same_seed_replays_the_same_run() {
    // Seed 9 stalls a leader and overwrites some of its writes, reads, adds and removes
    // indexes, and expires items, so those replay too.
    let a = run(&options(9, 100, None));
    let b = run(&options(9, 100, None));
    assert!(
        a.stalls > 0
            && a.overwritten_proposals > 0
            && a.index_reads > 0
            && a.index_batches > 0
            && a.expired > 0,
        "seed 9 no longer overwrites a stalled leader's writes, reads and changes indexes, or \
         expires items; pick a seed that does: {a:?}"
    );
    let key = |r: &SimReport| {
        (
            r.steps,
            r.completed,
            r.faults,
            r.stalls,
            r.overwritten_proposals,
            r.reads_across_leader_change,
            r.index_reads,
            r.index_batches,
            r.expired,
            r.fingerprint,
        )
    };
    assert_eq!(
        key(&a),
        key(&b),
        "same seed, same histories and final state"
    );
    let c = run(&options(10, 100, None));
    assert_ne!(a.fingerprint, c.fingerprint, "another seed, another run");
}

/// Plants `bug` in the first `limit` seeds and asserts that at least `at_least` of them were
/// caught by the check whose violations contain `by`.
fn assert_caught(bug: PlantedBug, limit: u64, by: &str, at_least: usize) {
    assert_caught_with(bug, false, limit, by, at_least);
}

/// [`assert_caught`], with leader leases on or off.
fn assert_caught_with(bug: PlantedBug, lease_reads: bool, limit: u64, by: &str, at_least: usize) {
    let caught: Vec<(u64, String)> = (1..=limit)
        .filter_map(|seed| {
            let r = run(&SimOptions {
                lease_reads,
                ..options(seed, 150, Some(bug))
            });
            r.violations.first().map(|v| (seed, v.clone()))
        })
        .collect();
    let by_that_check = caught.iter().filter(|(_, v)| v.contains(by)).count();
    assert!(
        by_that_check >= at_least,
        "{bug:?} must be caught by '{by}' in at least {at_least} of {limit} seeds; caught in \
         {caught:?}"
    );
}

/// A state machine that applies only part of a transaction leaves it half applied.
#[test]
fn partial_transactions_are_caught() {
    assert_caught(PlantedBug::PartialTransactions, 20, "half applied", 5);
}

/// A state machine that leaves old index entries behind breaks the index invariant.
#[test]
fn stale_index_entries_are_caught() {
    assert_caught(PlantedBug::StaleIndexEntries, 20, "extra", 5);
}

/// A state machine that forgets a deleted index before all its entries are gone leaves them
/// behind for good, which the index invariant catches.
#[test]
fn index_removal_that_stops_early_is_caught() {
    assert_caught(PlantedBug::IndexRemovalStopsEarly, 20, "no longer has", 5);
}

/// A state machine whose time-to-live expiry deletes items without checking they still hold
/// an expiring value deletes values written since the sweep looked.
#[test]
fn expiry_without_recheck_is_caught() {
    assert_caught(PlantedBug::ExpiryWithoutRecheck, 20, "not linearizable", 5);
}

/// A state machine whose transactions leave no stream records breaks the stream's chain of
/// images (or leaves an item without records), which the stream invariant catches.
#[test]
fn transactions_missing_from_the_stream_are_caught() {
    assert_caught(PlantedBug::StreamSkipsTransactions, 20, "stream", 5);
}

/// A state machine that ignores conditions lets two conditional creates both succeed.
#[test]
fn ignored_conditions_are_caught() {
    assert_caught(PlantedBug::ConditionsIgnored, 40, "not linearizable", 5);
}

/// Nodes that never fsync lose persisted state in crashes.
#[test]
fn a_missing_fsync_is_caught() {
    assert_caught(
        PlantedBug::SkipFsync,
        40,
        "lost persisted state in a crash",
        5,
    );
}

/// Nodes answering consistent reads from local state serve stale reads.
#[test]
fn consistent_reads_served_locally_are_caught() {
    assert_caught(PlantedBug::LocalConsistentReads, 40, "not linearizable", 5);
}

/// A leader that acknowledges a write once any entry is applied at its index reports writes
/// another leader overwrote as done; read back, they are missing.
#[test]
fn acknowledging_another_leaders_entry_is_caught() {
    assert_caught(PlantedBug::AckAnyEntryAtIndex, 40, "not linearizable", 5);
}

/// A leader that answers consistent reads without confirming it still leads serves stale reads
/// once deposed.
#[test]
fn reads_without_the_read_index_quorum_are_caught() {
    assert_caught(
        PlantedBug::ReadIndexWithoutQuorum,
        40,
        "not linearizable",
        5,
    );
}

/// The first bug the simulation found (the first 10,000-seed run, seeds 1091, 1238, 1540 and 43
/// more): a lost snapshot message was never reported to raft, so the leader waited for that
/// snapshot forever and the follower never caught up, even after healing. Fixed in the
/// transport and the simulation alike; planted back here so it stays caught.
#[test]
fn a_lost_snapshot_never_reported_is_caught() {
    assert_caught(PlantedBug::LostSnapshotNotReported, 40, "did not settle", 3);
}

/// A checkpoint counted durable before its background fsync finished lets the log be
/// compacted past what a crash keeps: the restarted node's state machine is older than the
/// start of its log, and it cannot recover.
#[test]
fn a_checkpoint_counted_before_its_fsync_is_caught() {
    assert_caught(PlantedBug::CheckpointBeforeItsFsync, 120, "panicked", 4);
}

/// A lease that outlives the followers' promise not to elect another leader lets a cut-off or
/// stalled leader answer consistent reads after its successor has written.
#[test]
fn a_lease_longer_than_the_followers_promise_is_caught() {
    assert_caught_with(PlantedBug::LeaseTooLong, true, 40, "not linearizable", 8);
}
