//! What happens between writes: key use and refused operations, gathered in memory on every
//! node and written as batched `used` and `denied` events; and, on the leader, the `expired`
//! events of keys whose expiry has passed.
//!
//! Verification never writes to the Raft log on the request path, and takes no lock to note a
//! use: it writes the key's own index slot (`Verified::note_use`). Every [`FLUSH_EVERY`] the
//! flusher scans the index in short read-locked ranges for keys whose use is due — once per
//! `last_used_granularity` (`keyledger_model::usage`) — and proposes them in small
//! `RecordUse` batches, at most [`MAX_USES_PER_FLUSH`] a round: a million keys first seen in
//! one minute become a steady trickle of events, not one apply that stalls verification.
//! Refusals are capped per actor per batch, so a flood of forbidden requests costs at most a
//! few events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyledger_model::{AccountId, Actor, Command, DenialRecord, Proposal, UseRecord};

use crate::node::ClusterNode;

/// How often gathered use and refusals are written (the spec asks for at least every 5 s).
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How often the leader looks for keys that have expired.
const EXPIRY_SWEEP_EVERY: Duration = Duration::from_secs(1);
/// At most this many keys expire per proposal; the rest go in the next sweep.
const EXPIRY_BATCH: usize = 500;
/// Distinct refusals kept per actor per batch; more are folded into one summary record.
const DENIALS_PER_ACTOR: usize = 20;
/// Index positions scanned per read lock of the state: about a millisecond, so applying a
/// write never waits long behind the scan (and verifications never wait behind that write).
const SCAN_CHUNK: usize = 16_384;
/// Keys per `RecordUse` proposal: applying one holds the state's write lock, so it stays short.
const USES_PER_PROPOSAL: usize = 256;
/// Keys whose use is written per flush at most; the others stay noted in the index and are
/// found by the next scans (10,000 events a second at most).
const MAX_USES_PER_FLUSH: usize = 20_000;

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

/// Refusals gathered since the last flush, and where the scan for due uses goes on.
#[derive(Default)]
pub(crate) struct Activity {
    denials: Mutex<HashMap<DenialKey, u32>>,
    /// The index position the next scan starts at, so a capped round does not starve the keys
    /// at the end of the table.
    scan_from: AtomicUsize,
}

impl Activity {
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

    fn take_denials(&self) -> Vec<DenialRecord> {
        let denials = std::mem::take(&mut *self.denials.lock().unwrap_or_else(|p| p.into_inner()));
        let mut denials: Vec<DenialRecord> = denials.into_iter().map(|(k, count)| k.into_record(count)).collect();
        // Sorted, so the batch (and the events it becomes) does not depend on hash order.
        denials.sort_by(|a, b| (&a.account, &a.operation, &a.target).cmp(&(&b.account, &b.operation, &b.target)));
        denials
    }

    /// Puts back refusals that could not be written, to be tried with the next batch.
    fn restore_denials(&self, denials: Vec<DenialRecord>) {
        let mut map = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        for d in denials {
            let (key, count) = DenialKey::from_record(d);
            *map.entry(key).or_insert(0) += count;
        }
    }
}

/// The uses due on this node, from one pass over the index that starts where the last one
/// stopped and ends after [`MAX_USES_PER_FLUSH`] of them (or where it started).
fn collect_due_uses(node: &ClusterNode) -> Vec<UseRecord> {
    let activity = node.activity();
    let mut uses = Vec::new();
    let mut scanned = 0;
    let mut position = activity.scan_from.load(Ordering::Relaxed);
    loop {
        // The table may have grown (or be another size) since the last range: positions are
        // only a place to resume, and a key missed or seen twice is found or dropped later.
        let state = node.ledger().state();
        let size = state.usage_positions();
        if scanned >= size || uses.len() >= MAX_USES_PER_FLUSH {
            break;
        }
        if position >= size {
            position = 0;
        }
        let end = (position + SCAN_CHUNK).min(size);
        state.due_uses(position..end, &mut uses);
        scanned += end - position;
        position = end;
    }
    activity.scan_from.store(position, Ordering::Relaxed);
    uses.sort_by_key(|u| u.key);
    uses
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
    // A use not written stays due in the index, so a failed batch is simply found again.
    for batch in collect_due_uses(node).chunks(USES_PER_PROPOSAL) {
        let proposal = system_proposal(node, AccountId::default_account(), Command::RecordUse(batch.to_vec()), "use");
        if let Err(e) = node.propose(proposal).await {
            tracing::debug!(error = %e, "writing key use failed; it stays due for the next round");
            break;
        }
    }
    let denials = node.activity().take_denials();
    if !denials.is_empty() {
        let proposal =
            system_proposal(node, AccountId::default_account(), Command::RecordDenials(denials.clone()), "denied");
        if let Err(e) = node.propose(proposal).await {
            tracing::debug!(error = %e, "writing refusals failed; keeping them for the next batch");
            node.activity().restore_denials(denials);
        }
    }
}

/// On the leader: proposes `expired` for keys whose expiry has passed.
async fn sweep_expiries(node: &ClusterNode) {
    if node.metrics().current_leader != Some(node.id()) {
        return;
    }
    let now = node.now();
    warn_expiring(node, now).await;
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

/// On the leader: proposes `expiring_soon` for enabled keys that entered the warning window
/// (each key once per expiry; the time is fixed here, before proposing).
async fn warn_expiring(node: &ClusterNode, now: keyledger_model::Timestamp) {
    let window = keyledger_model::webhook::EXPIRY_WARNING_WINDOW;
    let due = node.ledger().state().due_expiry_warnings(now, window, EXPIRY_BATCH);
    if due.is_empty() {
        return;
    }
    let count = due.len();
    let mut proposal = system_proposal(node, AccountId::default_account(), Command::WarnExpiringKeys(due), "warn");
    proposal.time = now;
    match node.propose(proposal).await {
        Ok(_) => tracing::debug!(count, "warned of keys expiring soon"),
        Err(e) => tracing::warn!(error = %e, "warning of keys expiring soon failed; retrying next sweep"),
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
