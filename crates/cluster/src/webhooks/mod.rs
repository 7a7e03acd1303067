//! Webhooks: the signing secrets, the signature on each request, the guard on where requests
//! may go, and the leader's dispatcher (`dispatch.rs`). Design: `keyledger_model::webhook`
//! and `docs/webhooks.md`.
//!
//! A webhook's secret is never stored: it is HMAC-SHA3-256 keyed with a root derived from the
//! cluster secret under its own label, over the webhook's id and the random `secret_nonce`
//! its ledger events carry. Every member holds the cluster secret, so whichever node leads can
//! sign, and any node can show the secret once when it is made. A new cluster secret (or a
//! restore into another cluster) therefore changes every webhook's secret; `rotate-secret`
//! issues a new one by proposing a new nonce.

mod dispatch;
mod guard;
mod payload;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use keyledger_model::WebhookId;
use sha2::Sha256;
use sha3::{Digest as _, Sha3_256};

use crate::secret::ClusterSecret;

pub(crate) use dispatch::spawn;
pub use guard::ip_allowed;

/// The request headers of a delivery.
pub const DELIVERY_HEADER: &str = "X-Keyledger-Delivery";
pub const EVENT_HEADER: &str = "X-Keyledger-Event";
pub const SIGNATURE_HEADER: &str = "X-Keyledger-Signature";

/// Where webhooks may send and how hard the dispatcher tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// Plain `http://` URLs (`serve --webhook-allow-http`).
    pub allow_http: bool,
    /// Loopback, private (RFC 1918, unique-local) and shared (100.64/10) addresses
    /// (`serve --webhook-allow-private-networks`). Link-local (169.254/16, where cloud
    /// metadata lives), unspecified, multicast and broadcast addresses are refused regardless.
    pub allow_private_networks: bool,
    /// Attempts per delivery before it is recorded as failed and the webhook moves on.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles for each further one, up to `max_retry_wait`,
    /// and is jittered down by up to half.
    pub first_retry_wait: Duration,
    pub max_retry_wait: Duration,
    /// One attempt's whole time, connection to the answer's head.
    pub attempt_timeout: Duration,
}

impl Default for WebhookPolicy {
    fn default() -> WebhookPolicy {
        WebhookPolicy {
            allow_http: false,
            allow_private_networks: false,
            max_attempts: 8,
            first_retry_wait: Duration::from_secs(1),
            max_retry_wait: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

impl WebhookPolicy {
    /// The wait before attempt `attempt + 1` (after `attempt` failed ones), before jitter.
    pub fn retry_wait(&self, attempt: u32) -> Duration {
        let doubled = self.first_retry_wait.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20));
        doubled.min(self.max_retry_wait)
    }
}

/// The dispatcher's counters, shown by `GET /metrics`.
#[derive(Debug, Default)]
pub struct WebhookGauges {
    delivered: AtomicU64,
    failed: AtomicU64,
    attempts: AtomicU64,
    /// Ledger positions between the furthest-behind webhook and the head (on the leader).
    lag: AtomicU64,
    /// Each worker's last handled position, for the lag.
    handled: Mutex<HashMap<WebhookId, u64>>,
}

impl WebhookGauges {
    /// Deliveries finished here: (delivered, given up on).
    pub fn deliveries(&self) -> (u64, u64) {
        (self.delivered.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }

    /// Attempts made here, including retries.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Ledger positions the furthest-behind webhook has still to look at (0 off the leader).
    pub fn lag(&self) -> u64 {
        self.lag.load(Ordering::Relaxed)
    }

    fn count_attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    fn count_delivery(&self, delivered: bool) {
        let counter = if delivered { &self.delivered } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn note_handled(&self, id: WebhookId, position: u64) {
        self.handled.lock().unwrap_or_else(|p| p.into_inner()).insert(id, position);
    }

    /// Recomputes the lag against `head` for the webhooks in `live` (none: not leading).
    fn update_lag(&self, head: u64, live: &[WebhookId]) {
        let mut handled = self.handled.lock().unwrap_or_else(|p| p.into_inner());
        handled.retain(|id, _| live.contains(id));
        let behind = live.iter().map(|id| head.saturating_sub(handled.get(id).copied().unwrap_or(0))).max();
        self.lag.store(behind.unwrap_or(0), Ordering::Relaxed);
    }
}

/// The secret of webhook `id` with nonce `nonce`, as shown to its owner: `whsec_` and 64 hex digits.
pub(crate) fn derive_secret(cluster: &ClusterSecret, id: WebhookId, nonce: &[u8; 16]) -> String {
    let mut root = Sha3_256::new();
    root.update(b"keyledger-webhook-root/v1");
    root.update(cluster.bytes());
    let root: [u8; 32] = root.finalize().into();
    let mut mac = <Hmac<Sha3_256> as Mac>::new_from_slice(&root).expect("HMAC takes a key of any length");
    mac.update(&id.to_bytes());
    mac.update(nonce);
    let secret: [u8; 32] = mac.finalize().into_bytes().into();
    format!("whsec_{}", keyledger_model::hex::encode(&secret))
}

/// `X-Keyledger-Signature` for `body` sent at unix second `t`: `t=<t>,v1=<hex>` where the hex
/// is HMAC-SHA256 keyed with the secret's text over `"<t>.<body>"`.
pub fn signature_header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

/// The hex HMAC-SHA256 of `"<t>.<body>"` keyed with `secret` (what `v1=` carries).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag: [u8; 32] = mac.finalize().into_bytes().into();
    keyledger_model::hex::encode(&tag)
}

impl crate::ClusterNode {
    /// The signing secret of webhook `id` with nonce `nonce` (shown once, when made).
    pub fn webhook_secret(&self, id: WebhookId, nonce: &[u8; 16]) -> String {
        derive_secret(self.cluster_secret(), id, nonce)
    }

    /// Whether a webhook may be created with `url`: its form, its scheme, that it is not one of
    /// the cluster's own addresses, and that every address its host resolves to now is allowed.
    pub async fn check_webhook_url(&self, url: &str) -> Result<(), String> {
        let members = self.member_addresses();
        let url = guard::check_url(url, self.webhook_policy(), &members)?;
        guard::check_resolved(&url, self.webhook_policy()).await
    }

    /// Every member's advertised `host:port`, which no webhook may target.
    fn member_addresses(&self) -> Vec<String> {
        self.metrics().membership_config.membership().nodes().map(|(_, n)| n.addr.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_depend_on_cluster_id_and_nonce() {
        let (a, b) = (ClusterSecret::generate(), ClusterSecret::generate());
        let id = WebhookId::from_bytes([7; 16]);
        let other = WebhookId::from_bytes([8; 16]);
        let first = derive_secret(&a, id, &[1; 16]);
        assert_eq!(first, derive_secret(&a, id, &[1; 16]));
        assert!(first.starts_with("whsec_") && first.len() == 6 + 64);
        assert_ne!(first, derive_secret(&b, id, &[1; 16]));
        assert_ne!(first, derive_secret(&a, other, &[1; 16]));
        assert_ne!(first, derive_secret(&a, id, &[2; 16]));
    }

    #[test]
    fn signature_matches_the_rfc_4231_construction() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let tag: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(
            keyledger_model::hex::encode(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let header = signature_header("whsec_x", 1_700_000_000, b"{}");
        assert_eq!(header, format!("t=1700000000,v1={}", sign("whsec_x", 1_700_000_000, b"{}")));
        assert_ne!(sign("whsec_x", 1_700_000_000, b"{}"), sign("whsec_y", 1_700_000_000, b"{}"));
        assert_ne!(sign("whsec_x", 1_700_000_000, b"{}"), sign("whsec_x", 1_700_000_001, b"{}"));
    }

    #[test]
    fn retry_waits_double_up_to_the_cap() {
        let policy = WebhookPolicy::default();
        assert_eq!(policy.retry_wait(1), Duration::from_secs(1));
        assert_eq!(policy.retry_wait(2), Duration::from_secs(2));
        assert_eq!(policy.retry_wait(4), Duration::from_secs(8));
        assert_eq!(policy.retry_wait(30), Duration::from_secs(300));
    }
}
