//! The leader's webhook dispatcher: one worker per webhook delivers the account's matching
//! events after the webhook's replicated cursor, in ledger order, and the dispatcher records
//! the finished deliveries through Raft in batches (`record_webhook_deliveries`), which moves
//! the cursors.
//!
//! Only the leader runs workers, and only for the term it started them in: on any change of
//! leader or term they are aborted at once, and the next leader starts from the replicated
//! cursors. The one window: a leader that sends a delivery and dies before its record commits
//! makes the next leader send it again, with the same delivery id (receivers dedupe on it); no
//! delivery is skipped. A receiver that fails every time holds up only its own webhook.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use keyledger_model::webhook::{AttemptResult, Delivery, DeliveryReport, Webhook, WebhookEventType};
use keyledger_model::{AccountId, Command, LedgerEntry, WebhookId};
use rand_core::RngCore;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::guard::{check_url, was_refused, GuardedResolver};
use super::{payload, WebhookPolicy, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER};
use crate::activity::system_proposal;
use crate::node::ClusterNode;

/// How often the dispatcher looks at leadership, webhooks and finished deliveries.
const TICK: Duration = Duration::from_millis(200);
/// How long an idle worker waits before looking for new events.
const IDLE: Duration = Duration::from_millis(200);
/// Ledger positions a worker reads per look (of its account's events only).
const SCAN_WINDOW: u64 = 1000;
/// Delivery reports per proposal.
const REPORTS_PER_PROPOSAL: usize = 512;

/// Starts the dispatcher; it runs until the node is dropped or Raft stops.
pub(crate) fn spawn(node: &Arc<ClusterNode>) {
    let weak = Arc::downgrade(node);
    let policy = *node.webhook_policy();
    let client = match client(&policy) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; webhooks are not delivered by this node");
            return;
        }
    };
    tokio::spawn(async move {
        let mut dispatcher = Dispatcher { weak, policy, client, workers: HashMap::new(), term: None };
        let (tx, mut rx) = mpsc::unbounded_channel::<DeliveryReport>();
        let mut unrecorded: Vec<DeliveryReport> = Vec::new();
        let mut timer = tokio::time::interval(TICK);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            let Some(node) = dispatcher.weak.upgrade() else { break };
            let metrics = node.metrics();
            if metrics.running_state.is_err() {
                break;
            }
            let term = (metrics.current_leader == Some(node.id())).then_some(metrics.current_term);
            if term.is_none() {
                node.webhook_gauges().update_lag(0, &[]);
            }
            if term != dispatcher.term {
                // Reports of the old term are dropped: the next leader re-sends what they covered.
                dispatcher.stop_workers();
                unrecorded.clear();
                while rx.try_recv().is_ok() {}
                dispatcher.term = term;
            }
            let Some(term) = term else { continue };
            dispatcher.sync_workers(&node, term, &tx);
            while let Ok(report) = rx.try_recv() {
                unrecorded.push(report);
            }
            let (head, live) = {
                let state = node.ledger().state();
                (state.head().seq, state.webhooks().map(|w| w.id).collect::<Vec<_>>())
            };
            node.webhook_gauges().update_lag(head, &live);
            record(&node, &mut unrecorded).await;
        }
        dispatcher.stop_workers();
    });
}

struct Dispatcher {
    weak: Weak<ClusterNode>,
    policy: WebhookPolicy,
    client: reqwest::Client,
    workers: HashMap<WebhookId, JoinHandle<()>>,
    /// The term this node leads in and started the workers for.
    term: Option<u64>,
}

impl Dispatcher {
    fn stop_workers(&mut self) {
        for (_, worker) in self.workers.drain() {
            worker.abort();
        }
    }

    /// One worker per webhook in the state; a deleted webhook's worker is stopped.
    fn sync_workers(&mut self, node: &ClusterNode, term: u64, tx: &mpsc::UnboundedSender<DeliveryReport>) {
        let ids: Vec<WebhookId> = node.ledger().state().webhooks().map(|w| w.id).collect();
        self.workers.retain(|id, worker| {
            let keep = ids.contains(id) && !worker.is_finished();
            if !keep {
                worker.abort();
            }
            keep
        });
        for id in ids {
            if !self.workers.contains_key(&id) {
                let worker = Worker {
                    weak: self.weak.clone(),
                    id,
                    term,
                    policy: self.policy,
                    client: self.client.clone(),
                    tx: tx.clone(),
                };
                self.workers.insert(id, tokio::spawn(worker.run()));
            }
        }
    }
}

/// Proposes the finished deliveries; kept for the next tick if that fails.
async fn record(node: &ClusterNode, unrecorded: &mut Vec<DeliveryReport>) {
    while !unrecorded.is_empty() {
        let batch: Vec<DeliveryReport> = unrecorded.iter().take(REPORTS_PER_PROPOSAL).copied().collect();
        let count = batch.len();
        let command = Command::RecordWebhookDeliveries(batch);
        match node.propose(system_proposal(node, AccountId::default_account(), command, "webhook")).await {
            Ok(_) => {
                unrecorded.drain(..count);
            }
            Err(e) => {
                tracing::warn!(error = %e, "recording webhook deliveries failed; retrying");
                return;
            }
        }
    }
}

/// The client every delivery goes through: no redirects, a timeout per attempt, and DNS
/// answers checked before any connection.
fn client(policy: &WebhookPolicy) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.attempt_timeout)
        .connect_timeout(policy.attempt_timeout)
        .no_proxy()
        .user_agent("keyledger-webhooks/1")
        .dns_resolver(Arc::new(GuardedResolver { allow_private_networks: policy.allow_private_networks }))
        .build()
}

struct Worker {
    weak: Weak<ClusterNode>,
    id: WebhookId,
    term: u64,
    policy: WebhookPolicy,
    client: reqwest::Client,
    tx: mpsc::UnboundedSender<DeliveryReport>,
}

/// The webhook as it is now, if this node still leads in `term` and it still exists.
fn current(weak: &Weak<ClusterNode>, id: WebhookId, term: u64) -> Option<(Arc<ClusterNode>, Webhook)> {
    let node = weak.upgrade()?;
    let metrics = node.metrics();
    if metrics.current_leader != Some(node.id()) || metrics.current_term != term {
        return None;
    }
    let webhook = node.ledger().state().webhook(&id).cloned()?;
    Some((node, webhook))
}

impl Worker {
    async fn run(self) {
        // The highest position this worker handled; the replicated cursor may lag it until the
        // dispatcher's record commits.
        let mut handled = 0u64;
        loop {
            let Some((node, webhook)) = current(&self.weak, self.id, self.term) else { return };
            handled = handled.max(webhook.cursor);
            node.webhook_gauges().note_handled(self.id, handled);
            let from = handled + 1;
            let head = node.ledger().state().head().seq;
            if from > head {
                drop(node);
                tokio::time::sleep(IDLE).await;
                continue;
            }
            let to = head.min(from + SCAN_WINDOW - 1);
            let found = next_matching(&node, &webhook, from, to);
            drop(node);
            let (entry, event_type) = match found {
                Ok(Some(found)) => found,
                Ok(None) => {
                    handled = to;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(webhook = %self.id, error = %e, "cannot read the ledger for a webhook; retrying");
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
            };
            let Some(delivery) = self.deliver(&entry, event_type).await else { return };
            handled = entry.event.seq;
            if self.tx.send(DeliveryReport { webhook: self.id, delivery }).is_err() {
                return;
            }
        }
    }

    /// Attempts one delivery until it succeeds or the attempts run out; `None` if leadership
    /// was lost or the webhook deleted meanwhile (then nothing is recorded).
    async fn deliver(&self, entry: &LedgerEntry, event_type: WebhookEventType) -> Option<Delivery> {
        let delivery_id = Delivery::id(self.id, entry.event.seq);
        let body = {
            let (node, _) = current(&self.weak, self.id, self.term)?;
            let state = node.ledger().state();
            payload::body(&state, self.id, event_type, &entry.event)
        };
        let mut last = AttemptResult::Error;
        let mut attempts = 0;
        while attempts < self.policy.max_attempts.max(1) {
            if attempts > 0 {
                tokio::time::sleep(self.jittered_wait(attempts)).await;
            }
            let (node, webhook) = current(&self.weak, self.id, self.term)?;
            let secret = node.webhook_secret(self.id, &webhook.secret_nonce);
            let members = node.member_addresses();
            let gauges = node.webhook_gauges().clone();
            drop(node);
            attempts += 1;
            last = match check_url(&webhook.url, &self.policy, &members) {
                Ok(url) => self.attempt(url, &delivery_id, event_type, &secret, &body).await,
                Err(_) => AttemptResult::AddressRefused,
            };
            gauges.count_attempt();
            if last.delivered() {
                break;
            }
            tracing::debug!(webhook = %self.id, delivery = %delivery_id, attempts, result = %last.as_text(), "webhook attempt failed");
        }
        let (node, _) = current(&self.weak, self.id, self.term)?;
        node.webhook_gauges().count_delivery(last.delivered());
        Some(Delivery { position: entry.event.seq, event_type, attempts, last, at: node.now() })
    }

    async fn attempt(
        &self,
        url: reqwest::Url,
        delivery_id: &str,
        event_type: WebhookEventType,
        secret: &str,
        body: &[u8],
    ) -> AttemptResult {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_HEADER, delivery_id)
            .header(EVENT_HEADER, event_type.as_str())
            .header(SIGNATURE_HEADER, super::signature_header(secret, t, body))
            .body(body.to_vec())
            .send()
            .await;
        // The answer's body is never read: only its status counts.
        match sent {
            Ok(response) => AttemptResult::Status(response.status().as_u16()),
            Err(e) if was_refused(&e) => AttemptResult::AddressRefused,
            Err(e) if e.is_timeout() => AttemptResult::Timeout,
            Err(e) if e.is_connect() => AttemptResult::ConnectFailed,
            Err(_) => AttemptResult::Error,
        }
    }

    /// The wait before the next attempt after `failed` ones: the doubling wait, less up to half
    /// of it at random, so many webhooks failing together do not retry together.
    fn jittered_wait(&self, failed: u32) -> Duration {
        let wait = self.policy.retry_wait(failed);
        let half = wait / 2;
        let random = self.weak.upgrade().map_or(0, |node| node.with_rng(|rng| rng.next_u64()));
        let fraction = (random % 1000) as u32;
        half + half * fraction / 1000
    }
}

/// The first event in `from..=to` of the webhook's account that it wants, with its type.
fn next_matching(
    node: &ClusterNode,
    webhook: &Webhook,
    from: u64,
    to: u64,
) -> Result<Option<(LedgerEntry, WebhookEventType)>, keyledger_ledger::LedgerError> {
    for entry in node.ledger().account_entries(&webhook.account, from, to) {
        let entry = entry?;
        if let Some(t) = WebhookEventType::of(&entry.event.body).filter(|t| webhook.wants(*t)) {
            return Ok(Some((entry, t)));
        }
    }
    Ok(None)
}
