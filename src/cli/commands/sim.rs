//! `kvsim sim`: runs the deterministic simulation over many seeds (see [`crate::sim`]) and
//! reports violations with the command that replays each.

use indicatif::{ProgressBar, ProgressStyle};

use crate::sim::{SimOptions, run as run_sim};
use crate::{Error, Result};

/// Options of `sim`.
#[derive(Debug, clap::Args)]
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
}

/// Runs `sim`; returns the exit code (1 if any seed found a violation).
pub fn run(args: Args) -> Result<i32> {
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds, {msg} [{elapsed_precise}, eta {eta}]",
        )
        .map_err(Error::internal)?,
    );
    let (mut ops, mut faults, mut unchecked, mut failed) = (0usize, 0usize, 0usize, Vec::new());
    let replay_flags = if args.no_faults { " --no-faults" } else { "" };
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let report = run_sim(&SimOptions {
            seed,
            ops: args.ops,
            faults: !args.no_faults,
            planted_bug: None,
        });
        ops += report.completed;
        faults += report.faults;
        unchecked += report.unchecked;
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
            "{ops} ops, {faults} faults, {} violations",
            failed.len()
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Keys whose history was too large to check are neither passed nor failed: say so.
    let unchecked = if unchecked > 0 {
        format!(" ({unchecked} key histories too large to check)")
    } else {
        String::new()
    };
    outln!(
        "{} seeds, {ops} operations, {faults} faults, {} violations{unchecked}",
        args.seeds,
        failed.len()
    );
    Ok(if failed.is_empty() { 0 } else { 1 })
}
