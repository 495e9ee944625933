//! `kvsim sim`: runs the deterministic simulation over many seeds (see [`crate::sim`]) and
//! reports violations with the command that replays each.
//!
//! A key history too large for the linearizability checker is neither passed nor failed, so
//! a run with any is not a pass: it exits 1 unless `--allow-unchecked` says that is fine.

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::EXIT_FAILED;
use crate::sim::{SimOptions, SimReport, run as run_sim};
use crate::{Error, Result};

/// Options of `sim`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit codes:
  0  every seed passed and every key history was checked
  1  some seed found a violation, or some key history was too large to check
     (unless --allow-unchecked)
  2  invalid command line")]
pub struct Args {
    /// How many seeds to run (from --seed upward).
    #[arg(long, default_value_t = 100, value_parser = crate::cli::positive)]
    pub seeds: u64,
    /// The first seed (alone, with --seeds 1, to replay a failure).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Client operations per seed.
    #[arg(long, default_value_t = 150)]
    pub ops: usize,
    /// Run without faults (a baseline).
    #[arg(long)]
    pub no_faults: bool,
    /// Exit 0 even if some key histories were too large to check (they are still counted).
    #[arg(long)]
    pub allow_unchecked: bool,
}

/// Runs `sim`; returns the exit code: 1 if any seed found a violation, or if any key history
/// went unchecked without `--allow-unchecked`.
pub fn run(args: Args) -> Result<i32> {
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds, {msg} [{elapsed_precise}, eta {eta}]",
        )
        .map_err(Error::internal)?,
    );
    let mut total = SimReport::default();
    let mut failed = Vec::new();
    let mut unchecked_seeds = Vec::new();
    let replay_flags = if args.no_faults { " --no-faults" } else { "" };
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let report = run_sim(&SimOptions {
            seed,
            ops: args.ops,
            faults: !args.no_faults,
            planted_bug: None,
        });
        total.completed += report.completed;
        total.faults += report.faults;
        total.stalls += report.stalls;
        total.overwritten_proposals += report.overwritten_proposals;
        total.reads_across_leader_change += report.reads_across_leader_change;
        total.cas_succeeded += report.cas_succeeded;
        total.cas_failed += report.cas_failed;
        total.transactions += report.transactions;
        total.partiql_transactions += report.partiql_transactions;
        total.index_reads += report.index_reads;
        total.index_batches += report.index_batches;
        total.expired += report.expired;
        total.unchecked += report.unchecked;
        if report.unchecked > 0 {
            unchecked_seeds.push(seed);
        }
        if !report.violations.is_empty() {
            bar.suspend(|| {
                eprintln!("seed {seed}: {} violation(s)", report.violations.len());
                for v in &report.violations {
                    eprintln!("  {}", v.replace('\n', "\n  "));
                }
                eprintln!(
                    "  replay: kvsim sim --seed {seed} --seeds 1 --ops {}{replay_flags}",
                    args.ops
                );
            });
            failed.push(seed);
        }
        bar.set_message(format!(
            "{} ops, {} faults, {} violations",
            total.completed,
            total.faults,
            failed.len()
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    outln!(
        "{} seeds, {} operations, {} faults, {} violations, {} key histories unchecked",
        args.seeds,
        total.completed,
        total.faults,
        failed.len(),
        total.unchecked,
    );
    outln!(
        "exercised: {} leader stalls, {} writes refused because another leader took their log index, \
         {} consistent reads across a leader change, {} conditional writes ({} refused by their \
         condition), {} transactions ({} in PartiQL), {} global index queries, {} index backfill and removal \
         batches, {} items expired by time to live",
        total.stalls,
        total.overwritten_proposals,
        total.reads_across_leader_change,
        total.cas_succeeded + total.cas_failed,
        total.cas_failed,
        total.transactions,
        total.partiql_transactions,
        total.index_reads,
        total.index_batches,
        total.expired,
    );
    // Keys whose history was too large to check are neither passed nor failed: say so.
    if total.unchecked > 0 {
        let seeds: Vec<String> = unchecked_seeds.iter().map(u64::to_string).collect();
        eprintln!(
            "{} key histories were too large to check, in seeds {}; {}",
            total.unchecked,
            seeds.join(", "),
            if args.allow_unchecked {
                "accepted (--allow-unchecked)"
            } else {
                "not a pass (--allow-unchecked accepts them)"
            }
        );
    }
    Ok(exit_code(
        failed.len(),
        total.unchecked,
        args.allow_unchecked,
    ))
}

/// 0 only if no seed failed and every key history was checked (or `allow_unchecked`).
fn exit_code(failed_seeds: usize, unchecked: usize, allow_unchecked: bool) -> i32 {
    if failed_seeds == 0 && (unchecked == 0 || allow_unchecked) {
        0
    } else {
        EXIT_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchecked_histories_fail_the_run_unless_accepted() {
        assert_eq!(exit_code(0, 0, false), 0);
        assert_eq!(exit_code(0, 2, false), EXIT_FAILED);
        assert_eq!(exit_code(0, 2, true), 0);
        assert_eq!(exit_code(1, 0, true), EXIT_FAILED, "violations always fail");
    }
}
