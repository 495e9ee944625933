//! The leaderless engine's deterministic simulation in CI (`kvsim sim --mode dynamo`): seeds
//! with faults under both mergers, a fault-free batch that holds reads to R + W > N, replay,
//! and planted bugs that must be caught.

use kvsim::dynamo::node::DynamoBug;
use kvsim::sim::dynamo::{DynamoSimOptions, DynamoSimReport, run};

fn options(seed: u64, merger: &str, faults: bool, bug: Option<DynamoBug>) -> DynamoSimOptions {
    DynamoSimOptions {
        seed,
        ops: 150,
        faults,
        merger: merger.into(),
        planted_bug: bug,
    }
}

/// Seeds per batch: a debug build (what `make test` runs) takes a few; an optimized one,
/// `cargo test --release --test sim_dynamo`, four times as many.
fn seeds(debug: u64) -> u64 {
    if cfg!(debug_assertions) {
        debug
    } else {
        debug * 4
    }
}

/// Runs `count` seeds (shifted by `KVSIM_SIM_BASE` to explore new ones) and checks that the
/// batch exercised what the invariants are about.
fn batch(merger: &str, faults: bool, count: u64) -> DynamoSimReport {
    let shift: u64 = std::env::var("KVSIM_SIM_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut total = DynamoSimReport::default();
    for seed in 1 + shift..1 + shift + count {
        let r = run(&options(seed, merger, faults, None));
        let flags = if faults { "" } else { " --no-faults" };
        assert!(
            r.violations.is_empty(),
            "seed {seed} found violations (replay: kvsim sim --mode dynamo --merger {merger} \
             --seed {seed} --seeds 1{flags}):\n{}",
            r.violations.join("\n")
        );
        total.add(&r);
    }
    assert!(total.acknowledged > count as usize * 30, "{total:?}");
    assert!(total.conflicts > 0, "no conflicts: {total:?}");
    assert!(total.collections > 0, "no tombstones collected: {total:?}");
    if faults {
        assert!(total.crashes > 0, "no crashes: {total:?}");
        assert!(total.handoffs > 0, "no handoffs: {total:?}");
        assert!(total.repairs > 0, "no anti-entropy repairs: {total:?}");
    }
    total
}

#[test]
fn lww_seeds_with_faults_find_no_violation() {
    batch("lww", true, seeds(12));
}

#[test]
fn vector_seeds_with_faults_find_no_violation() {
    batch("vector", true, seeds(12));
}

#[test]
fn fault_free_reads_see_the_latest_write() {
    batch("lww", false, seeds(4));
    batch("vector", false, seeds(4));
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = run(&options(7, "vector", true, None));
    let b = run(&options(7, "vector", true, None));
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let c = run(&options(8, "vector", true, None));
    assert_ne!(
        format!("{a:?}"),
        format!("{c:?}"),
        "seeds 7 and 8 ran alike"
    );
}

/// Plants `bug` in the first `seeds` seeds and asserts at least `at_least` of them caught it.
fn assert_caught(bug: DynamoBug, seeds: u64, by: &str, at_least: usize) {
    let caught = (1..=seeds)
        .filter(|&seed| {
            run(&options(seed, "lww", true, Some(bug)))
                .violations
                .iter()
                .any(|v| v.contains(by))
        })
        .count();
    assert!(
        caught >= at_least,
        "{bug:?} was caught by '{by}' in {caught} of {seeds} seeds, not at least {at_least}"
    );
}

#[test]
fn acknowledging_before_the_flush_is_caught() {
    assert_caught(DynamoBug::SkipFlush, 2, "not yet on disk", 2);
}

#[test]
fn a_handoff_never_retried_is_caught() {
    assert_caught(DynamoBug::HandoffOnce, 5, "hint(s) after healing", 3);
}
