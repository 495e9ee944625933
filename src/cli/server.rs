//! `kvsim server`: runs the three-node Raft cluster, or with `--mode dynamo` a leaderless one,
//! until Ctrl+C or SIGTERM, then stops every node cleanly.

use std::time::Duration;

use crate::cli::Durability;
use crate::cli::{Mode, ServerArgs};
use crate::cluster::leaderless::{LeaderlessCluster, LeaderlessConfig};
use crate::cluster::{AdminPolicy, Cluster};
use crate::config::{ClusterConfig, NODE_COUNT, Storage, Supervision, Tuning};
use crate::{Error, Result};

/// Runs the server.
///
/// # Errors
/// Invalid options, a port in use, an unusable data directory.
pub fn run(args: ServerArgs) -> Result<()> {
    if args.mode == Mode::Dynamo {
        return run_leaderless(args);
    }
    if u64::from(args.base_port) + NODE_COUNT - 1 > u64::from(u16::MAX) {
        return Err(Error::validation(format!(
            "--base-port {} leaves no room for {NODE_COUNT} nodes (ports up to 65535)",
            args.base_port
        )));
    }
    let policy = AdminPolicy {
        faults: !args.no_faults,
        remote: args.admin_remote,
    };
    let config = ClusterConfig {
        data_root: args.data_dir_root,
        host: args.host,
        base_port: args.base_port,
        tuning: Tuning {
            tick: Duration::from_millis(args.tick_ms),
            compact_every: args.compact_every,
            log_retain: args.log_retain,
            raft_over_http: args.raft_over_http,
            lease_reads: !args.no_lease_reads,
            ttl_interval: Duration::from_millis(args.ttl_interval_ms),
            stream_retention: Duration::from_secs(args.stream_retention_secs),
            stream_shard_entries: args.stream_shard_entries,
            cache_items: args.cache_items,
            cache_ttl: Duration::from_millis(args.cache_ttl_ms),
            ..Tuning::default()
        },
        supervision: Supervision {
            auto_restart: !args.no_auto_restart,
            max_restarts: args.max_restarts,
            period: Duration::from_secs(args.restart_period_secs),
            ..Supervision::default()
        },
        storage: storage_of(args.in_memory, args.durability),
    };
    config.tuning.validate()?;
    if args.restart_period_secs == 0 {
        return Err(Error::validation(
            "--restart-period-secs must be at least 1",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let cluster = Cluster::start_with_policy(config.clone(), policy).await?;
        let failures = cluster.start_failures();
        for (id, addr) in cluster.addrs() {
            if let Some(why) = failures.get(id) {
                eprintln!("kvsim: node {id} did not start: {why}");
                continue;
            }
            listening(*id, addr, config.storage, &config.node_dir(*id));
        }
        until_signal(cluster.shutdown()).await;
        Ok(())
    })
}

/// Runs `--mode dynamo`.
fn run_leaderless(args: ServerArgs) -> Result<()> {
    let config = LeaderlessConfig {
        data_root: args.data_dir_root,
        host: args.host,
        base_port: args.base_port,
        nodes: args.nodes,
        replicas: args.replicas,
        read_quorum: args.read_quorum,
        write_quorum: args.write_quorum,
        merger: args.merger,
        tombstone_gc: Duration::from_secs(args.tombstone_gc_secs),
        storage: storage_of(args.in_memory, args.durability),
        tuning: Tuning::default(),
        policy: AdminPolicy {
            faults: !args.no_faults,
            remote: args.admin_remote,
        },
        suspect_after: crate::cluster::leaderless::SUSPECT_AFTER,
        supervision: Supervision {
            auto_restart: !args.no_auto_restart,
            max_restarts: args.max_restarts,
            period: Duration::from_secs(args.restart_period_secs.max(1)),
            ..Supervision::default()
        },
    };
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let cluster = LeaderlessCluster::start(config.clone()).await?;
        say(format_args!(
            "kvsim: --mode dynamo, {} nodes, N={} R={} W={}, merger {}",
            config.nodes, config.replicas, config.read_quorum, config.write_quorum, config.merger
        ));
        for (id, addr) in cluster.addrs() {
            listening(*id, addr, config.storage, &config.node_dir(*id));
        }
        until_signal(cluster.shutdown()).await;
        Ok(())
    })
}

/// Where `--in-memory` and `--durability` put the nodes' data.
fn storage_of(in_memory: bool, durability: Durability) -> Storage {
    match (in_memory, durability) {
        (true, _) => Storage::Memory,
        (false, Durability::Fsync) => Storage::Fsync,
        (false, Durability::None) => Storage::NoFsync,
    }
}

/// Runs until Ctrl+C or SIGTERM, then `shutdown` (which stops every node), saying so.
async fn until_signal(shutdown: impl std::future::Future<Output = ()>) {
    say(format_args!("kvsim: press Ctrl+C to stop"));
    wait_for_signal().await;
    say(format_args!("kvsim: shutting down"));
    shutdown.await;
    say(format_args!("kvsim: stopped"));
}

/// The line saying where node `id` listens and where its data is.
fn listening(id: u64, addr: &str, storage: Storage, dir: &std::path::Path) {
    match storage {
        Storage::Memory => say(format_args!(
            "kvsim: node {id} listening on {addr} (data in memory: gone when the server stops)"
        )),
        Storage::NoFsync => say(format_args!(
            "kvsim: node {id} listening on {addr} (data in {}, never fsynced)",
            dir.display()
        )),
        Storage::Fsync => say(format_args!(
            "kvsim: node {id} listening on {addr} (data in {})",
            dir.display()
        )),
    }
}

/// A progress line on stdout. The server keeps running if nobody reads its output any more.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
