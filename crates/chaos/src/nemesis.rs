//! The nemesis: one fault at a time, in a seeded random order — SIGKILL a node and restart it,
//! or cut a node off from its peers and heal it — with healthy stretches in between. Half the
//! time the victim is the current leader, the node whose loss hurts most.
//!
//! After each fault the nemesis waits until every node is ready again, so at most one node is
//! ever faulty and the cluster always has a quorum to recover with; a node that does not come
//! back is itself a finding.

use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use crate::cluster::{Cluster, POLL_EVERY};

/// How long the nodes left may take to elect a leader when the leader is cut off.
const ELECTION: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Kill,
    Partition,
}

/// What the nemesis did and what went wrong doing it.
#[derive(Debug, Default)]
pub struct NemesisReport {
    pub kills: u32,
    pub partitions: u32,
    pub leader_victims: u32,
    /// For each cut-off leader: milliseconds until the others agreed on a new one.
    pub elections_ms: Vec<u64>,
    /// `(microseconds since the start, what happened)`.
    pub timeline: Vec<(u64, String)>,
    /// A node that did not come back, a cut that could not be made: findings.
    pub problems: Vec<String>,
}

/// `kills` kills and `partitions` partitions in a random order.
pub fn schedule(kills: u32, partitions: u32, rng: &mut ChaCha20Rng) -> Vec<Fault> {
    let mut plan: Vec<Fault> = std::iter::repeat_n(Fault::Kill, kills as usize)
        .chain(std::iter::repeat_n(Fault::Partition, partitions as usize))
        .collect();
    // Fisher–Yates.
    for i in (1..plan.len()).rev() {
        let j = rng.next_u32() as usize % (i + 1);
        plan.swap(i, j);
    }
    plan
}

fn millis(rng: &mut ChaCha20Rng, from: u64, to: u64) -> Duration {
    Duration::from_millis(from + u64::from(rng.next_u32()) % (to - from + 1))
}

/// Runs `plan` against `cluster`; `now_us` stamps the timeline.
pub async fn run(
    cluster: &mut Cluster,
    plan: &[Fault],
    rng: &mut ChaCha20Rng,
    now_us: impl Fn() -> u64,
) -> NemesisReport {
    let mut report = NemesisReport::default();
    let ids = cluster.ids();
    for (round, fault) in plan.iter().enumerate() {
        // A healthy stretch first: traffic flows with every node up.
        tokio::time::sleep(millis(rng, 300, 1000)).await;
        let leader = cluster.leader_seen_by(ids[rng.next_u32() as usize % ids.len()]).await;
        let victim = match leader {
            Some(leader) if rng.next_u32() % 2 == 0 => {
                report.leader_victims += 1;
                leader
            }
            _ => ids[rng.next_u32() as usize % ids.len()],
        };
        let role = if Some(victim) == leader { "leader" } else { "follower" };
        match fault {
            Fault::Kill => {
                cluster.kill(victim);
                report.timeline.push((now_us(), format!("round {round}: killed node {victim} ({role})")));
                tokio::time::sleep(millis(rng, 0, 1000)).await;
                if let Err(e) = cluster.restart(victim) {
                    report.problems.push(format!("round {round}: cannot restart node {victim}: {e:#}"));
                }
                report.timeline.push((now_us(), format!("round {round}: restarted node {victim}")));
                report.kills += 1;
            }
            Fault::Partition => {
                let Some(net) = cluster.net.as_mut() else {
                    report.problems.push(format!("round {round}: a partition was planned with no network namespaces"));
                    continue;
                };
                if let Err(e) = net.cut(victim) {
                    report.problems.push(format!("round {round}: cannot cut node {victim} off: {e:#}"));
                    continue;
                }
                report.timeline.push((now_us(), format!("round {round}: cut node {victim} ({role}) off")));
                let hold = millis(rng, 1000, 4000);
                let cut_at = Instant::now();
                if Some(victim) == leader {
                    // Proof that the cut took: the others elect a leader among themselves.
                    let others: Vec<u64> = ids.iter().copied().filter(|id| *id != victim).collect();
                    match new_leader(cluster, &others, victim).await {
                        Some(new) => {
                            report.elections_ms.push(cut_at.elapsed().as_millis() as u64);
                            report.timeline.push((
                                now_us(),
                                format!("round {round}: node {new} leads the others after {:?}", cut_at.elapsed()),
                            ));
                        }
                        None => report.problems.push(format!(
                            "round {round}: with leader {victim} cut off, the others elected no leader in {ELECTION:?}"
                        )),
                    }
                }
                tokio::time::sleep(hold.saturating_sub(cut_at.elapsed())).await;
                let Some(net) = cluster.net.as_mut() else { continue };
                if let Err(e) = net.heal(victim) {
                    report.problems.push(format!("round {round}: cannot heal node {victim}: {e:#}"));
                }
                report.timeline.push((now_us(), format!("round {round}: healed node {victim}")));
                report.partitions += 1;
            }
        }
        for id in ids.clone() {
            if let Err(e) = cluster.wait_ready(id).await {
                report
                    .problems
                    .push(format!("round {round}: node {id} did not recover: {e:#}\n{}", cluster.log_tail(id, 40)));
                // Give it another chance to start, so the run (and the checks) can go on.
                let _ = cluster.start_stopped();
            }
        }
        report.timeline.push((now_us(), format!("round {round}: every node ready")));
    }
    report
}

/// Polls `others` until one of them is seen by all of them as leader, not `old`.
async fn new_leader(cluster: &Cluster, others: &[u64], old: u64) -> Option<u64> {
    let deadline = Instant::now() + ELECTION;
    while Instant::now() < deadline {
        let mut seen = Vec::new();
        for id in others {
            seen.push(cluster.leader_seen_by(*id).await);
        }
        if let Some(Some(leader)) = seen.first().copied() {
            if leader != old && seen.iter().all(|l| *l == Some(leader)) {
                return Some(leader);
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn the_schedule_has_every_fault_and_replays_from_its_seed() {
        let plan = |seed| schedule(7, 3, &mut ChaCha20Rng::seed_from_u64(seed));
        let one = plan(1);
        assert_eq!(one.iter().filter(|f| **f == Fault::Kill).count(), 7);
        assert_eq!(one.iter().filter(|f| **f == Fault::Partition).count(), 3);
        assert_eq!(one, plan(1));
        assert!((2..20).any(|seed| plan(seed) != one), "the order depends on the seed");
    }
}
