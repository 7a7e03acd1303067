//! The gauges of [`NodeGauges`] as metric families, built anew at each scrape.
//!
//! The values are read from the node when `/metrics` is asked (`keyledger_cluster::gauges`),
//! so they live in a registry of their own made for the scrape: a family that does not apply
//! (replication and quorum age off the leader) is then simply not registered.

use prometheus::core::{AtomicU64, GenericGauge, GenericGaugeVec};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, Opts, Registry};

use keyledger_cluster::{NodeGauges, RaftRole, EXPIRY_WINDOWS};

type U64Gauge = GenericGauge<AtomicU64>;
type U64GaugeVec = GenericGaugeVec<AtomicU64>;

/// The families of `gauges`, sorted by name.
pub(super) fn families(gauges: &NodeGauges) -> prometheus::Result<Vec<MetricFamily>> {
    let out = Families(Registry::new());
    let flag = u64::from;
    out.gauge("keyledger_node_id", "This node's id in the cluster.", gauges.node_id)?;
    out.gauge(
        "keyledger_member",
        "1 while this node is a member of the cluster (0 before joining, after removal).",
        flag(gauges.member),
    )?;
    out.gauge("keyledger_ready", "1 when /readyz would answer 200.", flag(gauges.ready))?;
    out.gauge("keyledger_raft_is_leader", "1 on the leader, 0 elsewhere.", flag(gauges.role == RaftRole::Leader))?;
    out.labelled(
        "keyledger_raft_state",
        "1 for this node's Raft role, 0 for the others.",
        "state",
        RaftRole::ALL.map(|role| (role.label().to_owned(), flag(gauges.role == role))),
    )?;
    out.gauge(
        "keyledger_raft_leader_id",
        "The leader this node knows of; 0 when it knows none.",
        gauges.leader.unwrap_or(0),
    )?;
    out.gauge("keyledger_raft_term", "The current Raft term.", gauges.term)?;
    out.gauge("keyledger_raft_last_log_index", "The last Raft log index appended here.", gauges.last_log_index)?;
    out.gauge(
        "keyledger_raft_applied_index",
        "The last Raft log index applied to the ledger here.",
        gauges.applied_index,
    )?;
    out.gauge(
        "keyledger_raft_snapshot_index",
        "The last Raft log index in this node's snapshot; 0 when none.",
        gauges.snapshot_index,
    )?;
    out.gauge(
        "keyledger_raft_purged_index",
        "The last Raft log index purged here (it is in the snapshot); 0 when none.",
        gauges.purged_index,
    )?;
    out.gauge(
        "keyledger_raft_log_bytes",
        "Encoded bytes of the Raft log entries kept here (a restart reads them all).",
        gauges.log_bytes,
    )?;
    out.gauge("keyledger_raft_voters", "Voters in the membership this node knows.", gauges.voters)?;
    out.gauge("keyledger_raft_learners", "Learners in the membership this node knows.", gauges.learners)?;
    if let Some(ms) = gauges.quorum_ack_ms {
        let age = Gauge::new(
            "keyledger_raft_quorum_ack_age_seconds",
            "On the leader: time since a quorum last acknowledged it (writes stop above 1 s).",
        )?;
        age.set(ms as f64 / 1e3);
        out.0.register(Box::new(age))?;
    }
    if !gauges.replication.is_empty() {
        out.labelled(
            "keyledger_raft_replication_matched_index",
            "On the leader: the highest log index known to be replicated to each other member.",
            "peer",
            gauges.replication.iter().map(|(peer, matched)| (peer.to_string(), *matched)),
        )?;
        out.labelled(
            "keyledger_raft_replication_lag",
            "On the leader: log entries each other member still lacks (last log index minus matched index).",
            "peer",
            gauges.replication.iter().map(|(peer, matched)| (peer.to_string(), gauges.lag(*matched))),
        )?;
    }
    out.gauge("keyledger_ledger_head_seq", "The seq of the last event in this node's ledger.", gauges.ledger_head_seq)?;
    out.gauge("keyledger_keys", "Keys in the verification index, deleted ones included.", gauges.keys)?;
    out.gauge(
        "keyledger_disk_free_bytes",
        "Free bytes on the data dir's filesystem; below keyledger_disk_reserve_bytes writes are refused (503).",
        gauges.disk_free_bytes,
    )?;
    out.gauge(
        "keyledger_disk_reserve_bytes",
        "The free space the data dir's filesystem keeps (--min-free-disk-mib).",
        gauges.disk_reserve_bytes,
    )?;
    out.labelled(
        "keyledger_keys_expiring",
        "Keys of every account, enabled or disabled, that will expire within the window (`GET /v1/keys?expiring_within=`).",
        "within",
        EXPIRY_WINDOWS.iter().zip(gauges.keys_expiring).map(|((label, _), count)| ((*label).to_owned(), count)),
    )?;
    out.labelled(
        "keyledger_webhook_deliveries",
        "Webhook deliveries this node finished while leading, since it started: delivered (2xx) or failed (given up).",
        "outcome",
        [("delivered".to_owned(), gauges.webhook_delivered), ("failed".to_owned(), gauges.webhook_failed)],
    )?;
    out.gauge(
        "keyledger_webhook_attempts",
        "Webhook delivery attempts this node made while leading, retries included, since it started.",
        gauges.webhook_attempts,
    )?;
    out.gauge(
        "keyledger_webhook_lag_positions",
        "On the leader: ledger positions the furthest-behind webhook has still to look at.",
        gauges.webhook_lag,
    )?;
    Ok(out.0.gather())
}

/// A registry for one scrape's gauges.
struct Families(Registry);

impl Families {
    /// A family with one unlabelled sample.
    fn gauge(&self, name: &str, help: &str, value: u64) -> prometheus::Result<()> {
        let gauge = U64Gauge::new(name, help)?;
        gauge.set(value);
        self.0.register(Box::new(gauge))
    }

    /// A family with one label: a sample per `(label value, value)`.
    fn labelled(
        &self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (String, u64)>,
    ) -> prometheus::Result<()> {
        let family = U64GaugeVec::new(Opts::new(name, help), &[label])?;
        for (value_of_label, value) in values {
            family.get_metric_with_label_values(&[&value_of_label])?.set(value);
        }
        self.0.register(Box::new(family))
    }
}
