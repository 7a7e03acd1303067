//! The chaos harness of keyledger: concurrent key traffic against three real `keyledger serve`
//! processes while a nemesis kills (SIGKILL) and restarts them and cuts them off from each
//! other, then checks of everything seen.
//!
//! [`run`] starts the cluster (each node in its own network namespace when it can: root on
//! Linux with `ip netns`; on loopback with kills only otherwise), drives [`workload`] and
//! [`nemesis`] side by side, records every request in a [`history::History`], heals and
//! restarts everything, and hands the record and the nodes' ledgers to [`checks`]: identical
//! ledgers that verify offline, no acknowledged write lost, per-key linearizability against
//! [`model::KeyModel`] with the Wing–Gong–Lowe search of [`lincheck`], and the revocation
//! barrier. The [`Report`] says what ran and every violation found.
//!
//! Design decision: the checker is exact and exhaustive per key, not sampled, so the workload
//! keeps each key's history short (it retires keys after a few dozen operations, or after a
//! few of unknown outcome). Linearizability is local — a history is linearizable iff each
//! object's is — so checking key by key loses nothing, and a search that runs out of budget
//! is reported as inconclusive, never as a pass.

pub mod checks;
pub mod cluster;
pub mod history;
pub mod lincheck;
pub mod model;
pub mod nemesis;
pub mod net;
pub mod workload;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use keyledger_wire as wire;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::checks::Findings;
use crate::cluster::Cluster;
use crate::history::History;
use crate::workload::Workload;

/// Nodes in the cluster.
pub const NODES: u64 = 3;

/// Where the nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Network namespaces when possible (partitions on), loopback otherwise (kills only).
    Auto,
    /// Loopback ports, kills only.
    Loopback,
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `keyledger` binary to run.
    pub binary: PathBuf,
    /// Seeds the nemesis's schedule and victims and the workers' choices.
    pub seed: u64,
    pub kills: u32,
    pub partitions: u32,
    /// Keep the traffic going at least this long, faults or not.
    pub min_duration: Duration,
    /// Concurrent clients.
    pub workers: usize,
    pub network: Network,
    /// The run's directory is made in here (default: the system's temp dir).
    pub parent_dir: Option<PathBuf>,
    /// Keep the run's directory (history, node logs) even when every check passed.
    pub keep: bool,
    /// Verify with local reads, which may be stale: a check of the harness itself, which
    /// must then report violations.
    pub local_reads: bool,
}

impl Config {
    pub fn new(binary: impl Into<PathBuf>, seed: u64) -> Config {
        Config {
            binary: binary.into(),
            seed,
            kills: 10,
            partitions: 5,
            min_duration: Duration::ZERO,
            workers: 6,
            network: Network::Auto,
            parent_dir: None,
            keep: false,
            local_reads: false,
        }
    }
}

/// What a run did and found.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub violations: Vec<String>,
    pub inconclusive: Vec<String>,
    /// Human-readable: what ran, counts, each check's result.
    pub summary: String,
    /// The run's directory (history, node logs), kept when the run did not pass or when asked.
    pub kept_dir: Option<PathBuf>,
}

impl Report {
    /// No violation, and every check concluded.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.inconclusive.is_empty()
    }
}

/// Runs the harness once. When the run cannot be carried out, the error names the run's
/// directory, kept for its node logs.
pub async fn run(config: &Config) -> anyhow::Result<Report> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("keyledger-chaos-");
    let dir = match &config.parent_dir {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .context("make the run's directory")?;
    match run_in(config, dir.path()).await {
        Ok(mut report) => {
            if config.keep || !report.passed() {
                let kept = dir.keep();
                let _ = writeln!(report.summary, "kept: {} (history.jsonl, nemesis.log, node logs)", kept.display());
                report.kept_dir = Some(kept);
            }
            Ok(report)
        }
        Err(e) => Err(e.context(format!("the run's directory is kept: {}", dir.keep().display()))),
    }
}

/// [`run`] in `dir`; every node is stopped and every namespace removed when it returns.
async fn run_in(config: &Config, dir: &Path) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut rng = ChaCha20Rng::seed_from_u64(config.seed);
    let mut findings = Findings::default();

    let (net, network_note) = match config.network {
        Network::Loopback => (None, "loopback ports; partitions off (asked for)".to_string()),
        // Where namespaces cannot be made (no root, a container without the capability), the
        // run goes on with kills only, and says so.
        Network::Auto => match net::available().and_then(|()| net::Net::create(NODES).map_err(|e| format!("{e:#}"))) {
            Ok(net) => {
                let note = format!("one network namespace per node ({}); partitions on", net.subnet());
                (Some(net), note)
            }
            Err(why) => (None, format!("loopback ports; partitions off: {why}")),
        },
    };
    let partitions = if net.is_some() { config.partitions } else { 0 };

    let mut cluster = Cluster::start(&config.binary, dir, NODES, net).await.context("start the cluster")?;

    // Keys are spread over a few service accounts, so that keys whose creation got no answer
    // (and which the harness cannot delete) never fill an identity's allowance. Service
    // accounts, because nobody mints keys for another user (users enroll themselves).
    let admin = cluster.client(1)?;
    let settings = wire::UpdateSettingsRequest { max_keys_per_service_account: Some(1000), ..Default::default() };
    admin.update_settings(&settings).await.context("raise the key limit")?;
    let mut owners = Vec::new();
    for i in 0..5 {
        let sa = wire::CreateServiceAccountRequest {
            name: format!("chaos-{i}"),
            role: Some("developer".into()),
            ..Default::default()
        };
        owners.push(admin.create_service_account(&sa).await.context("create a service account")?.value.id);
    }

    let history = Arc::new(History::new());
    let clients = cluster.ids().into_iter().map(|id| Ok((id, cluster.client(id)?))).collect::<anyhow::Result<_>>()?;
    let mut workload = Workload::new(history.clone(), clients, owners, config.seed);
    workload.local_reads = config.local_reads;
    let workload = Arc::new(workload);
    let workers: Vec<_> = (0..config.workers)
        .map(|w| {
            let seed = config.seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(w as u64 + 1));
            tokio::spawn(workload.clone().worker(w, seed))
        })
        .collect();

    let plan = nemesis::schedule(config.kills, partitions, &mut rng);
    let clock = history.clone();
    let nemesis = nemesis::run(&mut cluster, &plan, &mut rng, move || clock.now_us()).await;
    findings.violations.extend(nemesis.problems.iter().cloned());
    // Not synchronization: the traffic's own length, when asked for more than the faults take.
    if let Some(rest) = config.min_duration.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    workload.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.context("a worker panicked")?;
    }
    let traffic_secs = started.elapsed().as_secs_f64();

    // Heal, restart, and let everything settle before looking.
    if let Some(net) = cluster.net.as_mut() {
        net.heal_all()?;
    }
    cluster.start_stopped()?;
    for id in cluster.ids() {
        if let Err(e) = cluster.wait_ready(id).await {
            findings.violations.push(format!("after the run, node {id} did not become ready: {e:#}"));
        }
    }

    let records = history.records();
    let mut lines = String::new();
    for r in &records {
        lines.push_str(&serde_json::to_string(r)?);
        lines.push('\n');
    }
    std::fs::write(dir.join("history.jsonl"), lines).context("write the history")?;
    let timeline: String = nemesis.timeline.iter().map(|(at, what)| format!("{at} {what}\n")).collect();
    std::fs::write(dir.join("nemesis.log"), timeline).context("write the nemesis log")?;

    let settle = Instant::now();
    let export = checks::same_ledger(&cluster, &mut findings).await;
    let converged_in = settle.elapsed();
    let ledger = export.as_deref().map(|e| checks::acknowledged_writes(&records, e, &mut findings));
    let searched = Instant::now();
    let lin = checks::linearizable(&records, &mut findings);
    let search_secs = searched.elapsed().as_secs_f64();
    let seqs = export.as_deref().map(checks::seq_by_request).unwrap_or_default();
    let barrier = checks::revocation_barrier(&records, &seqs, &mut findings);
    let ordered = checks::index_order(&records, &mut findings);
    if !records.iter().any(|r| {
        r.op != model::KeyOp::Verify
            && r.min_index.is_none()
            && matches!(r.outcome, history::Outcome::Answered { answer: model::KeyRet::Done, .. })
    }) {
        findings.violations.push("no write was acknowledged during the whole run".into());
    }

    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "keyledger chaos: seed {} (--seed {} replays the nemesis and the workers' choices)",
        config.seed, config.seed
    );
    let _ = writeln!(summary, "network: {network_note}");
    if config.local_reads {
        let _ = writeln!(summary, "reads: LOCAL (may be stale; a check of the harness, violations expected)");
    }
    let _ = writeln!(
        summary,
        "faults: {} kills, {} partitions ({} of them hit the leader); traffic {:.0} s with {} workers",
        nemesis.kills, nemesis.partitions, nemesis.leader_victims, traffic_secs, config.workers
    );
    if let Some(slowest) = nemesis.elections_ms.iter().max() {
        let _ = writeln!(
            summary,
            "leader cut off {} times: each time the other two elected a new leader, within {slowest} ms at most",
            nemesis.elections_ms.len()
        );
    }
    let _ = writeln!(summary, "requests: {}", records.len());
    for (what, count) in checks::tally(&records) {
        let _ = writeln!(summary, "  {what:<36} {count}");
    }
    match &ledger {
        Some(l) => {
            let _ = writeln!(
                summary,
                "ledger: {} events, head {}, byte-identical on all {NODES} nodes ({:.1} s to agree once the traffic stopped), \
                 verifies offline: {}",
                l.events,
                l.head_hash,
                converged_in.as_secs_f64(),
                if findings.violations.iter().any(|v| v.contains("does not verify")) { "NO" } else { "yes" }
            );
            let _ = writeln!(
                summary,
                "acknowledged writes: {} found by request id, {} acknowledged no-ops; unknown outcomes: {} applied, {} not",
                l.acknowledged_found, l.acknowledged_no_ops, l.maybe_applied, l.maybe_not_applied
            );
        }
        None => {
            let _ = writeln!(summary, "ledger: the nodes did not converge (see violations)");
        }
    }
    let _ = writeln!(
        summary,
        "linearizability: {} keys, {} operations ({} of unknown outcome), longest key history {}; searched in {:.2} s",
        lin.keys, lin.operations, lin.maybe_operations, lin.longest_history, search_secs
    );
    let _ = writeln!(summary, "revocation barrier: {barrier} verifications with min_index answered");
    let _ = writeln!(summary, "log order: {ordered} acknowledged writes, indices in real-time order checked");
    let _ = writeln!(
        summary,
        "violations: {}; inconclusive checks: {}",
        findings.violations.len(),
        findings.inconclusive.len()
    );
    for v in &findings.violations {
        let _ = writeln!(summary, "VIOLATION: {v}");
    }
    for v in &findings.inconclusive {
        let _ = writeln!(summary, "INCONCLUSIVE: {v}");
    }

    Ok(Report {
        seed: config.seed,
        violations: findings.violations,
        inconclusive: findings.inconclusive,
        summary,
        kept_dir: None,
    })
}

/// A seed from the operating system, for runs not asked to replay one.
pub fn random_seed() -> u64 {
    rand_core::OsRng.next_u64()
}
