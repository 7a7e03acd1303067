//! What happens between writes: key use and refused operations, gathered in memory on every
//! node and written as batched `used` and `denied` events; and, on the leader, the `expired`
//! events of keys whose expiry has passed.
//!
//! Verification never writes to the Raft log on the request path: it bumps a counter here.
//! A flusher proposes whatever was gathered every [`FLUSH_EVERY`]. Refusals are capped per actor
//! per batch, so a flood of forbidden requests costs at most a few events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyledger_model::{AccountId, Actor, Command, DenialRecord, KeyId, Proposal, Timestamp, UseRecord};

use crate::node::ClusterNode;

/// How often gathered use and refusals are written (the spec asks for at least every 5 s).
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How often the leader looks for keys that have expired.
const EXPIRY_SWEEP_EVERY: Duration = Duration::from_secs(1);
/// At most this many keys expire per proposal; the rest go in the next sweep.
const EXPIRY_BATCH: usize = 500;
/// Distinct refusals kept per actor per batch; more are folded into one summary record.
const DENIALS_PER_ACTOR: usize = 20;
/// Keys whose use is kept per batch, so memory stays bounded if writes are failing.
const MAX_PENDING_USES: usize = 100_000;

#[derive(Clone, PartialEq, Eq, Hash)]
struct DenialKey {
    actor: Actor,
    account: AccountId,
    operation: String,
    target: String,
    reason: String,
}

impl DenialKey {
    fn into_record(self, count: u32) -> DenialRecord {
        let DenialKey { actor, account, operation, target, reason } = self;
        DenialRecord { actor, account, operation, target, reason, count }
    }

    fn from_record(record: DenialRecord) -> (DenialKey, u32) {
        let DenialRecord { actor, account, operation, target, reason, count } = record;
        (DenialKey { actor, account, operation, target, reason }, count)
    }
}

type Uses = HashMap<KeyId, (Timestamp, u64)>;

/// Adds `count` uses of `key`, the last at `at`.
fn merge_use(uses: &mut Uses, key: KeyId, at: Timestamp, count: u64) {
    let entry = uses.entry(key).or_insert((at, 0));
    entry.0 = entry.0.max(at);
    entry.1 += count;
}

/// Use and refusals gathered since the last flush.
#[derive(Default)]
pub(crate) struct Activity {
    uses: Mutex<Uses>,
    denials: Mutex<HashMap<DenialKey, u32>>,
}

impl Activity {
    pub(crate) fn record_use(&self, key: KeyId, at: Timestamp) {
        let mut uses = self.uses.lock().unwrap_or_else(|p| p.into_inner());
        if uses.len() >= MAX_PENDING_USES && !uses.contains_key(&key) {
            return;
        }
        merge_use(&mut uses, key, at, 1);
    }

    pub(crate) fn record_denial(&self, actor: Actor, account: AccountId, operation: &str, target: &str, reason: &str) {
        let mut denials = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = DenialKey {
            actor,
            account,
            operation: operation.to_string(),
            target: target.to_string(),
            reason: reason.to_string(),
        };
        if !denials.contains_key(&key) && denials.keys().filter(|k| k.actor == actor).count() >= DENIALS_PER_ACTOR {
            key.operation = "*".into();
            key.target = "*".into();
            key.reason = "further refused operations in this period".into();
        }
        *denials.entry(key).or_insert(0) += 1;
    }

    fn take(&self) -> (Vec<UseRecord>, Vec<DenialRecord>) {
        let uses = std::mem::take(&mut *self.uses.lock().unwrap_or_else(|p| p.into_inner()));
        let denials = std::mem::take(&mut *self.denials.lock().unwrap_or_else(|p| p.into_inner()));
        let mut uses: Vec<UseRecord> =
            uses.into_iter().map(|(key, (last_used_at, count))| UseRecord { key, last_used_at, count }).collect();
        // Sorted, so the batch (and the events it becomes) does not depend on hash order.
        uses.sort_by_key(|u| u.key);
        let mut denials: Vec<DenialRecord> = denials.into_iter().map(|(k, count)| k.into_record(count)).collect();
        denials.sort_by(|a, b| (&a.account, &a.operation, &a.target).cmp(&(&b.account, &b.operation, &b.target)));
        (uses, denials)
    }

    /// Puts back what could not be written, to be tried with the next batch.
    fn restore(&self, uses: Vec<UseRecord>, denials: Vec<DenialRecord>) {
        let mut map = self.uses.lock().unwrap_or_else(|p| p.into_inner());
        for u in uses {
            merge_use(&mut map, u.key, u.last_used_at, u.count);
        }
        drop(map);
        let mut map = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        for d in denials {
            let (key, count) = DenialKey::from_record(d);
            *map.entry(key).or_insert(0) += count;
        }
    }
}

/// A proposal by the cluster itself, stamped by this node: `kind` names it in the request id.
pub(crate) fn system_proposal(node: &ClusterNode, account: AccountId, command: Command, kind: &str) -> Proposal {
    let now = node.now();
    Proposal {
        time: now,
        request_id: format!("{kind}-{}-{}", node.id(), now.0),
        actor: Actor::System,
        account,
        command,
    }
}

/// Writes what was gathered; on failure keeps it for the next round.
pub(crate) async fn flush(node: &ClusterNode) {
    let (uses, denials) = node.activity().take();
    if !uses.is_empty() {
        let proposal = system_proposal(node, AccountId::default_account(), Command::RecordUse(uses.clone()), "use");
        if let Err(e) = node.propose(proposal).await {
            tracing::debug!(error = %e, "writing key use failed; keeping it for the next batch");
            node.activity().restore(uses, Vec::new());
        }
    }
    if !denials.is_empty() {
        let proposal =
            system_proposal(node, AccountId::default_account(), Command::RecordDenials(denials.clone()), "denied");
        if let Err(e) = node.propose(proposal).await {
            tracing::debug!(error = %e, "writing refusals failed; keeping them for the next batch");
            node.activity().restore(Vec::new(), denials);
        }
    }
}

/// On the leader: proposes `expired` for keys whose expiry has passed.
async fn sweep_expiries(node: &ClusterNode) {
    if node.metrics().current_leader != Some(node.id()) {
        return;
    }
    let now = node.now();
    let due = node.ledger().state().due_expiries(now, EXPIRY_BATCH);
    if due.is_empty() {
        return;
    }
    let count = due.len();
    match node.propose(system_proposal(node, AccountId::default_account(), Command::ExpireKeys(due), "expire")).await {
        Ok(_) => tracing::debug!(count, "recorded expired keys"),
        Err(e) => tracing::warn!(error = %e, "recording expired keys failed; retrying next sweep"),
    }
}

/// Starts the flusher and the expiry sweep; they run until the process ends.
pub(crate) fn spawn(node: &Arc<ClusterNode>) {
    let flusher = Arc::downgrade(node);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(node) = flusher.upgrade() else { return };
            flush(&node).await;
        }
    });
    let sweeper = Arc::downgrade(node);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(node) = sweeper.upgrade() else { return };
            sweep_expiries(&node).await;
        }
    });
}
