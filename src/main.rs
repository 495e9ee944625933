//! The `kvsim` binary: parse arguments, set up logging, run, and turn an error into one line on
//! stderr and an exit code.

use clap::Parser;

/// mimalloc instead of glibc's malloc: the request path allocates and frees many small buffers
/// (JSON values, redb pages, raft messages) across threads, and glibc's arenas spent about a fifth
/// of the server's CPU on them under load (`perf`, 32 writing clients).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process, before it allocates much. mimalloc asks the
/// kernel for huge pages on its arenas, and under PutItem at 32 connections the kernel zeroing
/// a fresh 2 MiB page at the first touch of a new arena page was 5% of the server's CPU samples
/// (`perf`: `clear_page_erms` under `do_huge_pmd_anonymous_page`), in bursts: the same latency
/// trap Redis and most databases warn about. With them off those samples vanish (0.1-0.2%). A
/// kernel without the setting is no error: the process just runs as it would have.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!("transparent huge pages stay on: {e}");
    }
}

fn main() {
    let args = match kvsim::cli::Args::try_parse() {
        Ok(args) => args,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        // `kvsim` or `kvsim fault` alone: the help is the useful answer, in full.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!("{}", e.render());
            std::process::exit(kvsim::cli::EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("{}", kvsim::cli::one_line_usage_error(&e));
            std::process::exit(kvsim::cli::EXIT_USAGE);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        kvsim::cli::LogFormat::Text => logs.init(),
        kvsim::cli::LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    no_transparent_huge_pages();
    let code = match kvsim::cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            kvsim::cli::exit_code(&e)
        }
    };
    std::process::exit(code);
}
