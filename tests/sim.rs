//! The deterministic simulation in CI: a batch of seeds with faults, plus every seed that once
//! found a bug, kept as a regression test; and tests of the simulation itself: deliberately
//! planted bugs must be caught, and a seed must replay exactly. `kvsim sim --seeds N` runs as
//! many seeds as you like.

use kvsim::raft::node::PlantedBug;
use kvsim::sim::{SimOptions, SimReport, run};

/// A snapshot message lost by the network was never reported to raft, so the leader waited for
/// it forever and the follower never caught up, even after healing. Found by the first
/// 10,000-seed run (seeds 1000..11000), fixed in the transport and the simulation alike. (The
/// fault generator has changed since, so these seeds now replay other runs; they stay as more
/// coverage.)
const LOST_SNAPSHOT_NEVER_REPORTED: &[u64] = &[
    1091, 1238, 1540, 1665, 1814, 1980, 2191, 2436, 2579, 2602, 3705, 3841, 4243, 4694, 4710, 4752,
    5080, 5287, 5450, 5455, 5477, 6090, 6306, 6694, 6861, 6923, 7107, 7383, 7693, 7728, 7756, 7854,
    8118, 8587, 9018, 9180, 9232, 9370, 9463, 10181, 10244, 10359, 10405, 10553, 10726, 10764,
];

/// Seeds that found bugs.
const REGRESSIONS: &[&[u64]] = &[LOST_SNAPSHOT_NEVER_REPORTED];

fn options(seed: u64, ops: usize, planted_bug: Option<PlantedBug>) -> SimOptions {
    SimOptions {
        seed,
        ops,
        faults: true,
        planted_bug,
    }
}

fn check(seed: u64, ops: usize) -> SimReport {
    let report = run(&options(seed, ops, None));
    assert!(
        report.violations.is_empty(),
        "seed {seed} found violations (replay: kvsim sim --seed {seed} --seeds 1 --ops {ops}):\n{}",
        report.violations.join("\n")
    );
    report
}

/// Runs `count` seeds from `first` (shifted by `KVSIM_SIM_BASE` to explore new ones), and
/// checks the batch did real work: acknowledged writes and consistent reads for the checker,
/// and faults that changed something, crashes among them.
fn batch(first: u64, count: u64) {
    let shift: u64 = std::env::var("KVSIM_SIM_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut total = SimReport::default();
    for seed in first + shift..first + shift + count {
        let r = check(seed, 150);
        total.acked_writes += r.acked_writes;
        total.consistent_reads += r.consistent_reads;
        total.faults += r.faults;
        total.crashes += r.crashes;
        total.unchecked += r.unchecked;
    }
    let per_seed = |n: usize| n as f64 / count as f64;
    assert!(
        per_seed(total.acked_writes) >= 20.0
            && per_seed(total.consistent_reads) >= 10.0
            && per_seed(total.faults) >= 2.0
            && total.crashes >= count as usize / 4,
        "the batch exercised too little: {total:?}"
    );
    assert_eq!(total.unchecked, 0, "every history was decided: {total:?}");
}

// Three batches of 100 seeds, so the two CI cores share them.
#[test]
fn seeds_1_to_100_find_no_violation() {
    batch(1, 100);
}

#[test]
fn seeds_101_to_200_find_no_violation() {
    batch(101, 100);
}

#[test]
fn seeds_201_to_300_find_no_violation() {
    batch(201, 100);
}

#[test]
fn regression_seeds_stay_fixed() {
    for seed in REGRESSIONS.iter().copied().flatten() {
        check(*seed, 150);
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = run(&options(42, 100, None));
    let b = run(&options(42, 100, None));
    assert_eq!(
        (a.steps, a.completed, a.faults, a.fingerprint),
        (b.steps, b.completed, b.faults, b.fingerprint),
        "same seed, same histories and final state"
    );
    let c = run(&options(43, 100, None));
    assert_ne!(a.fingerprint, c.fingerprint, "another seed, another run");
}

/// Plants `bug` in the first `limit` seeds and asserts that at least `at_least` of them were
/// caught by the check whose violations contain `by`.
fn assert_caught(bug: PlantedBug, limit: u64, by: &str, at_least: usize) {
    let caught: Vec<(u64, String)> = (1..=limit)
        .filter_map(|seed| {
            let r = run(&options(seed, 150, Some(bug)));
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
