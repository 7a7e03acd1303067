//! Deciding webhook changes (an account's owners and admins, like its settings) and the
//! delivery records the leader's dispatcher reports.

use std::collections::BTreeMap;

use crate::authz;
use crate::event::EventBody;
use crate::ids::WebhookId;
use crate::proposal::{Proposal, RejectCode, Rejection, Subject};
use crate::state::State;
use crate::webhook::{
    check_url_form, Delivery, DeliveryReport, NewWebhook, MAX_DESCRIPTION_LEN, MAX_WEBHOOKS_PER_ACCOUNT,
};

use super::{refused, reject, Decision, SubjectRef};

/// Deliveries per `webhook_deliveries` event: the ledger keeps them forever, so batched.
const MAX_DELIVERIES_PER_EVENT: usize = 256;

impl State {
    pub(super) fn decide_create_webhook(&self, p: &Proposal, new: &NewWebhook) -> Result<Decision, Rejection> {
        let caller = self.caller(p)?;
        authz::authorize_account_change(&caller).map_err(|r| refused(r, "webhook"))?;
        check_url_form(&new.url).map_err(|why| reject(RejectCode::InvalidArgument, why))?;
        if new.description.chars().count() > MAX_DESCRIPTION_LEN || new.description.chars().any(char::is_control) {
            return Err(reject(
                RejectCode::InvalidArgument,
                format!("`description` must be at most {MAX_DESCRIPTION_LEN} characters, without control characters"),
            ));
        }
        let mut event_types = new.event_types.clone();
        event_types.sort();
        event_types.dedup();
        if event_types.is_empty() {
            return Err(reject(RejectCode::InvalidArgument, "`event_types` must name at least one event type"));
        }
        if self.webhooks.contains_key(&new.id) {
            return Err(reject(RejectCode::Conflict, "a webhook with this id exists"));
        }
        if self.webhooks.values().filter(|w| w.account == caller.account).count() >= MAX_WEBHOOKS_PER_ACCOUNT {
            return Err(reject(
                RejectCode::LimitExceeded,
                format!("the cap of {MAX_WEBHOOKS_PER_ACCOUNT} webhooks per account is reached"),
            ));
        }
        let body = EventBody::WebhookCreated {
            webhook: new.id,
            url: new.url.clone(),
            event_types,
            description: new.description.clone(),
            secret_nonce: new.secret_nonce,
        };
        Ok(Decision::one(self.pending(p, &caller.account, body), SubjectRef::Webhook(new.id)))
    }

    pub(super) fn decide_delete_webhook(&self, p: &Proposal, id: WebhookId) -> Result<Decision, Rejection> {
        let account = self.webhook_admin(p, id)?;
        let body = EventBody::WebhookDeleted { webhook: id };
        let before = Subject::Webhook(self.webhooks[&id].clone());
        Ok(Decision::one(self.pending(p, &account, body), SubjectRef::Removed(Box::new(before))))
    }

    pub(super) fn decide_rotate_webhook_secret(
        &self,
        p: &Proposal,
        id: WebhookId,
        secret_nonce: [u8; 16],
    ) -> Result<Decision, Rejection> {
        let account = self.webhook_admin(p, id)?;
        if self.webhooks.get(&id).is_some_and(|w| w.secret_nonce == secret_nonce) {
            return Err(reject(RejectCode::Conflict, "the new secret nonce is the current one"));
        }
        let body = EventBody::WebhookSecretRotated { webhook: id, secret_nonce };
        Ok(Decision::one(self.pending(p, &account, body), SubjectRef::Webhook(id)))
    }

    /// Deliveries of webhooks that still exist, each after the webhook's cursor and in rising
    /// order: a delivery already recorded (reported again by a leader that re-sent it) is
    /// dropped, so each event's delivery is recorded once. One event per webhook and batch.
    pub(super) fn decide_record_deliveries(
        &self,
        p: &Proposal,
        reports: &[DeliveryReport],
    ) -> Result<Decision, Rejection> {
        self.system(p)?;
        let mut by_webhook: BTreeMap<WebhookId, (u64, Vec<Delivery>)> = BTreeMap::new();
        for report in reports {
            let Some(webhook) = self.webhooks.get(&report.webhook) else { continue };
            let (cursor, kept) = by_webhook.entry(webhook.id).or_insert((webhook.cursor, Vec::new()));
            let d = report.delivery;
            if d.position > *cursor && d.position <= self.head.seq && d.attempts > 0 {
                *cursor = d.position;
                kept.push(d);
            }
        }
        let mut events = Vec::new();
        for (id, (_, deliveries)) in by_webhook {
            let account = &self.webhooks[&id].account;
            for chunk in deliveries.chunks(MAX_DELIVERIES_PER_EVENT) {
                let body = EventBody::WebhookDeliveries { webhook: id, deliveries: chunk.to_vec() };
                events.push(self.pending(p, account, body));
            }
        }
        Ok(Decision { events, subject: None })
    }

    /// The account of webhook `id`, if the caller may change it; the webhooks of other
    /// accounts are answered as missing.
    fn webhook_admin(&self, p: &Proposal, id: WebhookId) -> Result<crate::ids::AccountId, Rejection> {
        let caller = self.caller(p)?;
        let webhook = self
            .webhooks
            .get(&id)
            .filter(|w| w.account == caller.account)
            .ok_or_else(|| reject(RejectCode::NotFound, "no such webhook"))?;
        authz::authorize_account_change(&caller).map_err(|r| refused(r, "webhook"))?;
        Ok(webhook.account.clone())
    }
}
