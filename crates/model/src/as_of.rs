//! A past verdict's cause: which event decided whether a key was good at a past moment.
//!
//! The API's `verify/as-of` rebuilds the state as of that moment from the ledger and asks
//! [`crate::State::verify_digest`]; reading the ledger is its job, naming the deciding event
//! is this module's, a pure function of the events it read.

use crate::event::{EventBody, LedgerEntry};
use crate::owner::Owner;
use crate::verify::{Invalid, Verdict};

/// Does this event disable or delete `owner`? The rebuild notes the last such event of the
/// key's owner on its way through the ledger.
pub fn disables(body: &EventBody, owner: &Owner) -> bool {
    match (body, owner) {
        (EventBody::UserDisabled { user } | EventBody::UserDeleted { user }, Owner::User(id)) => user == id,
        (
            EventBody::ServiceAccountDisabled { service_account }
            | EventBody::ServiceAccountDeleted { service_account },
            Owner::ServiceAccount(id),
        ) => service_account == id,
        _ => false,
    }
}

/// The event that decided `verdict`, given as of the ledger's event `last_seq`: for a key
/// whose identity was disabled, `identity_change` (the owner's last disabling or deletion up
/// to then); otherwise the key's last event up to then in `key_history` (oldest first) that
/// changed it — `used` and `denied` record, they decide nothing.
pub fn deciding_event(
    verdict: &Verdict<'_>,
    identity_change: Option<LedgerEntry>,
    key_history: impl IntoIterator<Item = LedgerEntry>,
    last_seq: u64,
) -> Option<LedgerEntry> {
    match verdict {
        Verdict::Invalid(Invalid::IdentityDisabled) => identity_change,
        _ => key_history
            .into_iter()
            .take_while(|e| e.event.seq <= last_seq)
            .filter(|e| !matches!(e.event.body, EventBody::KeyUsed { .. } | EventBody::Denied { .. }))
            .last(),
    }
}
