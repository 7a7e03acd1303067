//! Deciding what the cluster records on its own, with no caller to authorize: expiries, uses,
//! denials and leak reports.

use crate::account::LeakAction;
use crate::event::EventBody;
use crate::ids::KeyId;
use crate::key::KeyState;
use crate::owner::Actor;
use crate::proposal::{DenialRecord, Proposal, Rejection, UseRecord};
use crate::state::State;
use crate::time::Timestamp;
use crate::token::KeyDigest;
use crate::webhook::EXPIRY_WARNING_WINDOW;

use super::{Decision, Pending};

/// Free text in `denied` events is cut to this many characters.
const MAX_DENIAL_TEXT: usize = 200;
/// A leak report's source is cut to this many characters, its reporter's address to the other.
const MAX_LEAK_SOURCE: usize = 500;
const MAX_LEAK_REPORTER: usize = 100;

impl State {
    pub(super) fn decide_expire(&self, p: &Proposal, ids: &[KeyId]) -> Result<Decision, Rejection> {
        self.system(p)?;
        let mut seen = std::collections::BTreeSet::new();
        let events = ids
            .iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| self.keys.get(id))
            .filter(|k| {
                matches!(k.state, KeyState::Enabled | KeyState::Disabled) && k.state_at(p.time) == KeyState::Expired
            })
            .map(|k| self.pending(p, &k.account, EventBody::KeyExpired { key: k.id }))
            .collect();
        Ok(Decision { events, subject: None })
    }

    /// `expiring_soon` for each enabled key whose expiry lies within the warning window of the
    /// proposal's time and that was not warned of that expiry yet.
    pub(super) fn decide_warn_expiring(&self, p: &Proposal, ids: &[KeyId]) -> Result<Decision, Rejection> {
        self.system(p)?;
        let until = Timestamp(p.time.0.saturating_add(EXPIRY_WARNING_WINDOW.0));
        let mut seen = std::collections::BTreeSet::new();
        let events = ids
            .iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| self.keys.get(id))
            .filter(|k| k.state == KeyState::Enabled)
            .filter_map(|k| k.expires_at.map(|at| (k, at)))
            .filter(|(k, at)| *at > p.time && *at <= until && self.expiry_warned.get(&k.id) != Some(at))
            .map(|(k, at)| self.pending(p, &k.account, EventBody::KeyExpiringSoon { key: k.id, expires_at: at }))
            .collect();
        Ok(Decision { events, subject: None })
    }

    /// One `used` event per key whose recorded use is at least `last_used_granularity` older
    /// than the reported one: several nodes reporting a key in one period add one event.
    pub(super) fn decide_use(&self, p: &Proposal, uses: &[UseRecord]) -> Result<Decision, Rejection> {
        self.system(p)?;
        let mut seen = std::collections::BTreeSet::new();
        let events = uses
            .iter()
            .filter(|u| u.count > 0 && seen.insert(u.key))
            .filter_map(|u| self.keys.get(&u.key).map(|k| (k, u)))
            .filter(|(k, u)| self.use_is_due(k, u.last_used_at))
            .map(|(k, u)| {
                let body = EventBody::KeyUsed { key: k.id, last_used_at: u.last_used_at, count: u.count };
                self.pending(p, &k.account, body)
            })
            .collect();
        Ok(Decision { events, subject: None })
    }

    pub(super) fn decide_denials(&self, p: &Proposal, denials: &[DenialRecord]) -> Result<Decision, Rejection> {
        self.system(p)?;
        let cut = |text: &str| text.chars().filter(|c| !c.is_control()).take(MAX_DENIAL_TEXT).collect::<String>();
        let events = denials
            .iter()
            .filter(|d| d.count > 0 && self.accounts.contains_key(&d.account) && d.actor != Actor::System)
            .map(|d| Pending {
                account: d.account.clone(),
                actor: d.actor,
                body: EventBody::Denied {
                    operation: cut(&d.operation),
                    target: cut(&d.target),
                    reason: cut(&d.reason),
                    count: d.count,
                },
                digest: None,
            })
            .collect();
        Ok(Decision { events, subject: None })
    }

    /// A leak report. Nothing is written for a digest that names no key, or for a key already
    /// reported (one `leaked` event per key). Otherwise `leaked`, then what the account's
    /// `action_when_leaked` does: a leak stops the key even when it is locked (a lock guards
    /// against mistakes by people who hold the key, not against a secret that is out), and
    /// the event says so.
    pub(super) fn decide_leak(
        &self,
        p: &Proposal,
        digest: &KeyDigest,
        source: &str,
        reporter: &str,
    ) -> Result<Decision, Rejection> {
        self.system(p)?;
        let Some(key) = self.key_by_digest(digest).filter(|k| !self.leaked.contains(&k.id)) else {
            return Ok(Decision { events: Vec::new(), subject: None });
        };
        let action = self.leak_action(&key.account);
        let current = key.state_at(p.time);
        let change = match action {
            LeakAction::Disable if current == KeyState::Enabled => Some(EventBody::KeyDisabled { key: key.id }),
            LeakAction::Delete if current != KeyState::Deleted => Some(EventBody::KeyDeleted { key: key.id }),
            _ => None,
        };
        let cut = |text: &str, max: usize| text.chars().filter(|c| !c.is_control()).take(max).collect::<String>();
        let leaked = EventBody::Leaked {
            key: key.id,
            source: cut(source, MAX_LEAK_SOURCE),
            reporter: cut(reporter, MAX_LEAK_REPORTER),
            action,
            lock_overridden: key.locked && change.is_some(),
        };
        let mut events = vec![self.pending(p, &key.account, leaked)];
        events.extend(change.map(|body| self.pending(p, &key.account, body)));
        Ok(Decision { events, subject: None })
    }
}
