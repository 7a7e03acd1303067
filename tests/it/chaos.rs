//! The short run of the chaos harness (`crates/chaos`; `scripts/chaos` runs the long one): a
//! few kills and, where network namespaces can be made (root on Linux), a few partitions,
//! under concurrent traffic, then every check of the harness — identical ledgers, no
//! acknowledged write lost, linearizable key histories, the revocation barrier.
//!
//! `KEYLEDGER_CHAOS_SEED` replays a run's schedule.

use std::time::Duration;

use keyledger_chaos::{random_seed, run, Config};

use crate::util::keyledger_bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_finds_no_violation() {
    let seed = std::env::var("KEYLEDGER_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(random_seed);
    eprintln!("chaos: seed {seed} (KEYLEDGER_CHAOS_SEED={seed} replays it)");
    let config = Config {
        kills: 10,
        partitions: 5,
        workers: 4,
        min_duration: Duration::from_secs(45),
        ..Config::new(keyledger_bin(), seed)
    };
    let report =
        run(&config).await.unwrap_or_else(|e| panic!("the chaos run could not be carried out (seed {seed}): {e:#}"));
    eprintln!("{}", report.summary);
    assert!(report.passed(), "{}", report.summary);
}
