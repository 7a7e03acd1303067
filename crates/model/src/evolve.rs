//! Evolving: applying one sealed event to the state.
//!
//! The other half of the decide/evolve split (`decide/` validates and seals). Never fails and
//! reads nothing but the event, so replaying the ledger on any node yields an equal state.

use std::collections::BTreeMap;

use crate::account::{Account, Namespace};
use crate::chain::ChainHead;
use crate::checkpoint::CheckpointMark;
use crate::event::{EventBody, LedgerEntry};
use crate::identity::{Enrollment, IdentityState, ServiceAccount, User};
use crate::ids::{KeyId, ServiceAccountId, UserId};
use crate::key::{IndexEntry, KeyRecord, KeyState};
use crate::state::State;
use crate::webhook::{Webhook, RECENT_DELIVERIES};

impl State {
    /// Applies one event. Never fails: events were validated before they were sealed.
    pub fn evolve(&mut self, entry: &LedgerEntry) {
        let event = &entry.event;
        self.head = ChainHead { seq: event.seq, hash: event.hash };
        self.account_heads
            .insert(event.account.clone(), ChainHead { seq: event.account_seq, hash: event.account_hash });
        self.last_time = Some(self.last_time.map_or(event.time, |last| last.max(event.time)));
        let (seq, time, account) = (event.seq, event.time, &event.account);
        match &event.body {
            EventBody::AccountCreated { settings } => {
                let account = Account { id: account.clone(), created_at: time, settings: settings.clone() };
                self.accounts.insert(account.id.clone(), account);
            }
            EventBody::UserCreated { user, name, role } => {
                self.users.insert(
                    *user,
                    User {
                        id: *user,
                        account: account.clone(),
                        name: name.clone(),
                        role: *role,
                        namespaces: BTreeMap::new(),
                        state: IdentityState::Enabled,
                        created_at: time,
                    },
                );
            }
            EventBody::KeyCreated { key, owner, name, description, scope, hint, expires_at, .. } => {
                let Some(digest) = entry.digest else {
                    // Unreachable for validated events; without a digest the key cannot
                    // authenticate, so it is simply not indexed.
                    debug_assert!(false, "KeyCreated without digest");
                    return;
                };
                let record = KeyRecord {
                    id: *key,
                    account: account.clone(),
                    owner: *owner,
                    name: name.clone(),
                    description: description.clone(),
                    scope: scope.clone(),
                    hint: hint.clone(),
                    digest,
                    created_at: time,
                    created_by: event.actor,
                    expires_at: *expires_at,
                    state: KeyState::Enabled,
                    locked: false,
                    revision: seq,
                    last_used_at: None,
                    use_count: 0,
                    replaces: None,
                    replaced_by: None,
                };
                self.index.insert(
                    digest,
                    IndexEntry {
                        key: *key,
                        owner: *owner,
                        state: KeyState::Enabled,
                        expires_at: *expires_at,
                        scoped: scope.is_some(),
                    },
                );
                if let Some(at) = expires_at {
                    self.expiry_queue.insert((*at, *key));
                }
                self.keys_by_owner.entry(*owner).or_default().insert(*key);
                self.keys.insert(*key, Box::new(record));
            }
            EventBody::KeyEnabled { key } => self.set_key_state(*key, KeyState::Enabled, seq),
            EventBody::KeyDisabled { key } => self.set_key_state(*key, KeyState::Disabled, seq),
            EventBody::KeyDeleted { key } => self.set_key_state(*key, KeyState::Deleted, seq),
            EventBody::KeyExpired { key } => self.set_key_state(*key, KeyState::Expired, seq),
            EventBody::KeyUpdated { key, name, description } => {
                if let Some(record) = self.keys.get_mut(key) {
                    record.name = name.clone();
                    record.description = description.clone();
                    record.revision = seq;
                }
            }
            EventBody::KeyLocked { key } | EventBody::KeyUnlocked { key } => {
                if let Some(record) = self.keys.get_mut(key) {
                    record.locked = matches!(event.body, EventBody::KeyLocked { .. });
                    record.revision = seq;
                }
            }
            EventBody::KeyRotated { key, replacement, expires_at } => {
                if let Some(old) = self.keys.get_mut(key) {
                    if let Some(previous) = old.expires_at {
                        self.expiry_queue.remove(&(previous, *key));
                    }
                    old.expires_at = Some(*expires_at);
                    old.replaced_by = Some(*replacement);
                    old.revision = seq;
                    let digest = old.digest;
                    self.index.set_expiry(&digest, Some(*expires_at));
                    // Only a key that can still expire waits for its `expired` event.
                    if matches!(old.state, KeyState::Enabled | KeyState::Disabled) {
                        self.expiry_queue.insert((*expires_at, *key));
                    }
                }
                if let Some(new) = self.keys.get_mut(replacement) {
                    new.replaces = Some(*key);
                }
            }
            EventBody::KeyUsed { key, last_used_at, count } => {
                if let Some(record) = self.keys.get_mut(key) {
                    self.index.set_recorded(&record.digest, *last_used_at);
                    record.last_used_at = record.last_used_at.max(Some(*last_used_at));
                    record.use_count = record.use_count.saturating_add(*count);
                }
            }
            EventBody::Denied { .. } => {}
            EventBody::UserDeleted { user } => {
                self.void_enrollment(*user);
                self.set_user_state(*user, IdentityState::Deleted)
            }
            EventBody::UserDisabled { user } => self.set_user_state(*user, IdentityState::Disabled),
            EventBody::UserEnabled { user } => self.set_user_state(*user, IdentityState::Enabled),
            EventBody::UserRoleChanged { user, role } => {
                // A code was issued for the old role, by someone ranked for that role.
                self.void_enrollment(*user);
                if let Some(u) = self.users.get_mut(user) {
                    u.role = *role;
                }
            }
            EventBody::UserNamespaceChanged { user, namespace, level } => {
                if let Some(u) = self.users.get_mut(user) {
                    match level {
                        Some(level) => u.namespaces.insert(namespace.clone(), *level),
                        None => u.namespaces.remove(namespace),
                    };
                }
            }
            EventBody::ServiceAccountCreated { service_account, name, binding } => {
                self.service_accounts.insert(
                    *service_account,
                    ServiceAccount {
                        id: *service_account,
                        account: account.clone(),
                        name: name.clone(),
                        binding: binding.clone(),
                        state: IdentityState::Enabled,
                        created_at: time,
                    },
                );
            }
            EventBody::ServiceAccountDeleted { service_account } => {
                self.set_service_account_state(*service_account, IdentityState::Deleted)
            }
            EventBody::ServiceAccountDisabled { service_account } => {
                self.set_service_account_state(*service_account, IdentityState::Disabled)
            }
            EventBody::ServiceAccountEnabled { service_account } => {
                self.set_service_account_state(*service_account, IdentityState::Enabled)
            }
            EventBody::NamespaceCreated { name } => {
                let namespace = Namespace { account: account.clone(), name: name.clone(), created_at: time };
                self.namespaces.insert((account.clone(), name.clone()), namespace);
            }
            EventBody::SettingsChanged { settings } => {
                if let Some(a) = self.accounts.get_mut(account) {
                    a.settings = settings.clone();
                }
            }
            EventBody::UsageGranularityChanged { granularity } => {
                self.usage_granularity = Some(*granularity);
            }
            EventBody::LimitsChanged { limits } => {
                self.limits.insert(account.clone(), limits.clone());
            }
            EventBody::SignerRegistered { node, public_key } => {
                self.signers.insert(*public_key, *node);
            }
            EventBody::Checkpoint(checkpoint) => {
                self.last_checkpoint = Some(CheckpointMark { tree_size: checkpoint.tree_size, seq, time });
            }
            EventBody::EnrollmentIssued { user, expires_at, .. } => {
                self.void_enrollment(*user);
                let Some(code) = entry.digest else {
                    // Unreachable for validated events; without a digest no code can match.
                    debug_assert!(false, "EnrollmentIssued without digest");
                    return;
                };
                self.enrollments.insert(code, Enrollment { user: *user, expires_at: *expires_at });
                self.enrollment_of_user.insert(*user, code);
            }
            // Both are in the key's history, so they move its revision like any change.
            EventBody::Enrolled { user, key } => {
                self.void_enrollment(*user);
                self.touch_key(*key, seq);
            }
            EventBody::Leaked { key, .. } => {
                self.leaked.insert(*key);
                self.touch_key(*key, seq);
            }
            EventBody::LeakActionChanged { action } => {
                self.leak_actions.insert(account.clone(), *action);
            }
            EventBody::KeyExpiringSoon { key, expires_at } => {
                self.expiry_warned.insert(*key, *expires_at);
            }
            EventBody::WebhookCreated { webhook, url, event_types, description, secret_nonce } => {
                let created = Webhook {
                    id: *webhook,
                    account: account.clone(),
                    url: url.clone(),
                    event_types: event_types.clone(),
                    description: description.clone(),
                    secret_nonce: *secret_nonce,
                    created_at: time,
                    secret_rotated_at: None,
                    cursor: seq,
                };
                self.webhooks.insert(*webhook, created);
            }
            EventBody::WebhookDeleted { webhook } => {
                self.webhooks.remove(webhook);
                self.webhook_deliveries.remove(webhook);
            }
            EventBody::WebhookSecretRotated { webhook, secret_nonce } => {
                if let Some(w) = self.webhooks.get_mut(webhook) {
                    w.secret_nonce = *secret_nonce;
                    w.secret_rotated_at = Some(time);
                }
            }
            EventBody::WebhookDeliveries { webhook, deliveries } => {
                if let Some(w) = self.webhooks.get_mut(webhook) {
                    w.cursor = deliveries.iter().map(|d| d.position).fold(w.cursor, u64::max);
                    let recent = self.webhook_deliveries.entry(*webhook).or_default();
                    recent.extend(deliveries.iter().copied());
                    let excess = recent.len().saturating_sub(RECENT_DELIVERIES);
                    recent.drain(..excess);
                }
            }
        }
    }

    fn touch_key(&mut self, key: KeyId, seq: u64) {
        if let Some(record) = self.keys.get_mut(&key) {
            record.revision = seq;
        }
    }

    fn void_enrollment(&mut self, user: UserId) {
        if let Some(code) = self.enrollment_of_user.remove(&user) {
            self.enrollments.remove(&code);
        }
    }

    fn set_key_state(&mut self, key: KeyId, state: KeyState, seq: u64) {
        if let Some(record) = self.keys.get_mut(&key) {
            record.state = state;
            record.revision = seq;
            self.index.set_state(&record.digest, state);
            if matches!(state, KeyState::Expired | KeyState::Deleted) {
                self.expiry_warned.remove(&key);
                if let Some(at) = record.expires_at {
                    self.expiry_queue.remove(&(at, key));
                }
            }
        }
    }

    fn set_user_state(&mut self, user: UserId, state: IdentityState) {
        if let Some(u) = self.users.get_mut(&user) {
            u.state = state;
        }
    }

    fn set_service_account_state(&mut self, id: ServiceAccountId, state: IdentityState) {
        if let Some(s) = self.service_accounts.get_mut(&id) {
            s.state = state;
        }
    }
}
