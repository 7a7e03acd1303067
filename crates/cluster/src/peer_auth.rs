//! Signed node-to-node requests: each one proves its sender holds the cluster secret without
//! ever showing the secret, and is bound to one receiver, one moment and one use.
//!
//! Both ends derive the *peer key* from the cluster secret: `SHA3-256("keyledger-peer-key/v1"
//! ‖ secret)`. A MAC is keyed SHA3-256 over length-prefixed fields, `SHA3-256(peer key ‖ label ‖
//! (len u32 LE ‖ field)…)` (SHA3 has no length extension, so the plain keyed hash is a MAC).
//!
//! A request carries one header:
//!
//! ```text
//! x-keyledger-peer: v1 from=<sender id> to=<receiver id> ts=<unix ms> nonce=<32 hex> body=<sha3-256 of body, 64 hex> mac=<64 hex>
//! ```
//!
//! its MAC over `"request"`, from, to (u64 LE), method, path, ts (u64 LE), nonce (16 bytes) and
//! the body's hash. The receiver refuses (`401`) unless the MAC is right (compared in constant
//! time), `to` is its own id, `ts` is within [`WINDOW`] of its clock, and the nonce was not
//! used within the window; all of that is checked before the body is read, and the body must
//! then hash to what was signed. `to` may be 0 ("whichever node answers here") only on
//! `/internal/status`, the read-only route a node uses to learn who listens at an address.
//!
//! The answer carries `x-keyledger-peer-answer: v1 from=<responder id> mac=<64 hex>`, its MAC
//! over `"answer"`, the request's nonce, the responder's id, the status code (u16 LE) and the
//! answer body's hash, so only a node of the cluster can answer a node, and only to the request
//! it was sent. What a listener at a wrong address captures is useless: bound to a receiver id
//! it is not, its nonce spent or its moment passed, and no secret in it.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha3::{Digest, Sha3_256};

use crate::secret::ClusterSecret;
use crate::NodeId;

/// The request's signature header.
pub const REQUEST_HEADER: &str = "x-keyledger-peer";
/// The answer's signature header.
pub const ANSWER_HEADER: &str = "x-keyledger-peer-answer";
/// How far a request's timestamp may be from the receiver's clock, either way. Nodes' clocks
/// must agree to within this.
pub const WINDOW: Duration = Duration::from_secs(30);
/// The receiver id meaning "whichever node listens here" (allowed only on `/internal/status`).
pub const ANY_NODE: NodeId = 0;
/// How many spent nonces a node remembers at most: at worst a window and a half of them
/// (nonces are kept for two windows after they arrive). When full, requests are refused
/// rather than replays let through.
const MAX_REMEMBERED_NONCES: usize = 1 << 20;

/// The key every MAC is made with, derived from the cluster secret. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct PeerKey {
    key: [u8; 32],
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKey(..)")
    }
}

/// The keys of a node: the one it signs with, and also those it accepts while the cluster
/// secret is being rotated (`secret.rs`: the next secret before this node signs with it, the
/// previous one after). A request or answer is genuine if any of them made its MAC.
#[derive(Clone, Debug)]
pub struct PeerKeys {
    signing: PeerKey,
    also_accepted: Vec<PeerKey>,
}

impl PeerKeys {
    pub fn new(signing: PeerKey, also_accepted: Vec<PeerKey>) -> PeerKeys {
        PeerKeys { signing, also_accepted }
    }

    pub fn signing(&self) -> &PeerKey {
        &self.signing
    }

    fn accepted(&self) -> impl Iterator<Item = &PeerKey> {
        std::iter::once(&self.signing).chain(&self.also_accepted)
    }

    pub fn request_is_genuine(&self, sig: &RequestSignature, method: &str, path: &str) -> bool {
        self.accepted().any(|key| key.request_is_genuine(sig, method, path))
    }

    pub fn answer_is_genuine(&self, sig: &AnswerSignature, nonce: &[u8; 16], status: u16, body: &[u8]) -> bool {
        self.accepted().any(|key| key.answer_is_genuine(sig, nonce, status, body))
    }
}

impl From<PeerKey> for PeerKeys {
    fn from(signing: PeerKey) -> PeerKeys {
        PeerKeys::new(signing, Vec::new())
    }
}

/// The fields of a request's signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSignature {
    pub from: NodeId,
    pub to: NodeId,
    pub timestamp_ms: u64,
    pub nonce: [u8; 16],
    pub body_hash: [u8; 32],
    pub mac: [u8; 32],
}

/// The fields of an answer's signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerSignature {
    pub from: NodeId,
    pub mac: [u8; 32],
}

/// The SHA3-256 of a body.
pub fn body_hash(body: &[u8]) -> [u8; 32] {
    Sha3_256::digest(body).into()
}

/// The wall clock in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl PeerKey {
    pub fn derive(secret: &ClusterSecret) -> PeerKey {
        let mut hasher = Sha3_256::new();
        hasher.update(b"keyledger-peer-key/v1");
        hasher.update(secret.bytes());
        PeerKey { key: hasher.finalize().into() }
    }

    fn mac(&self, label: &[u8], fields: &[&[u8]]) -> [u8; 32] {
        let mut hasher = Sha3_256::new();
        hasher.update(self.key);
        hasher.update(label);
        for field in fields {
            hasher.update((field.len() as u32).to_le_bytes());
            hasher.update(field);
        }
        hasher.finalize().into()
    }

    fn request_mac(&self, sig: &RequestSignature, method: &str, path: &str) -> [u8; 32] {
        self.mac(
            b"request",
            &[
                &sig.from.to_le_bytes(),
                &sig.to.to_le_bytes(),
                method.as_bytes(),
                path.as_bytes(),
                &sig.timestamp_ms.to_le_bytes(),
                &sig.nonce,
                &sig.body_hash,
            ],
        )
    }

    /// Signs a request from `from` to `to`.
    #[allow(clippy::too_many_arguments)]
    pub fn sign_request(
        &self,
        from: NodeId,
        to: NodeId,
        method: &str,
        path: &str,
        timestamp_ms: u64,
        nonce: [u8; 16],
        body: &[u8],
    ) -> RequestSignature {
        let mut sig = RequestSignature { from, to, timestamp_ms, nonce, body_hash: body_hash(body), mac: [0; 32] };
        sig.mac = self.request_mac(&sig, method, path);
        sig
    }

    /// Whether `sig`'s MAC is right for this method and path (constant time).
    pub fn request_is_genuine(&self, sig: &RequestSignature, method: &str, path: &str) -> bool {
        constant_time_eq(&self.request_mac(sig, method, path), &sig.mac)
    }

    fn answer_mac(&self, nonce: &[u8; 16], from: NodeId, status: u16, body: &[u8]) -> [u8; 32] {
        self.mac(b"answer", &[nonce, &from.to_le_bytes(), &status.to_le_bytes(), &body_hash(body)])
    }

    /// Signs the answer `from` gives, with `status` and `body`, to the request with `nonce`.
    pub fn sign_answer(&self, nonce: &[u8; 16], from: NodeId, status: u16, body: &[u8]) -> AnswerSignature {
        AnswerSignature { from, mac: self.answer_mac(nonce, from, status, body) }
    }

    /// Whether an answer was signed by node `sig.from` for the request with `nonce`.
    pub fn answer_is_genuine(&self, sig: &AnswerSignature, nonce: &[u8; 16], status: u16, body: &[u8]) -> bool {
        constant_time_eq(&self.answer_mac(nonce, sig.from, status, body), &sig.mac)
    }
}

impl RequestSignature {
    /// The header value.
    pub fn to_header(&self) -> String {
        let mut text = format!("v1 from={} to={} ts={} nonce=", self.from, self.to, self.timestamp_ms);
        push_hex(&mut text, &self.nonce);
        text.push_str(" body=");
        push_hex(&mut text, &self.body_hash);
        text.push_str(" mac=");
        push_hex(&mut text, &self.mac);
        text
    }

    /// Reads a header value; `None` for anything not in the exact form [`Self::to_header`] writes.
    pub fn parse(text: &str) -> Option<RequestSignature> {
        let mut parts = text.split(' ');
        if parts.next()? != "v1" {
            return None;
        }
        let from = field(parts.next()?, "from")?.parse().ok()?;
        let to = field(parts.next()?, "to")?.parse().ok()?;
        let timestamp_ms = field(parts.next()?, "ts")?.parse().ok()?;
        let nonce = keyledger_model::hex::decode(field(parts.next()?, "nonce")?)?;
        let body_hash = keyledger_model::hex::decode(field(parts.next()?, "body")?)?;
        let mac = keyledger_model::hex::decode(field(parts.next()?, "mac")?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(RequestSignature { from, to, timestamp_ms, nonce, body_hash, mac })
    }
}

impl AnswerSignature {
    pub fn to_header(&self) -> String {
        let mut text = format!("v1 from={} mac=", self.from);
        push_hex(&mut text, &self.mac);
        text
    }

    pub fn parse(text: &str) -> Option<AnswerSignature> {
        let mut parts = text.split(' ');
        if parts.next()? != "v1" {
            return None;
        }
        let from = field(parts.next()?, "from")?.parse().ok()?;
        let mac = keyledger_model::hex::decode(field(parts.next()?, "mac")?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(AnswerSignature { from, mac })
    }
}

fn field<'a>(part: &'a str, name: &str) -> Option<&'a str> {
    part.strip_prefix(name)?.strip_prefix('=')
}

fn push_hex(text: &mut String, bytes: &[u8]) {
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
}

/// Equal slices, looking at every byte whatever the first difference (the length is public).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Why a signed request was refused (said in the `401` and the log; never a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    Unsigned,
    WrongReceiver,
    Stale,
    BadMac,
    Replayed,
    BodyMismatch,
    TooBusy,
}

impl Rejection {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Rejection::Unsigned => "no node-to-node signature",
            Rejection::WrongReceiver => "the request is addressed to another node",
            Rejection::Stale => "the request's timestamp is outside the replay window (are the nodes' clocks set?)",
            Rejection::BadMac => "the signature is not made with this cluster's key",
            Rejection::Replayed => "the request's nonce was already used",
            Rejection::BodyMismatch => "the body is not the one that was signed",
            Rejection::TooBusy => "too many recent requests to remember their nonces",
        }
    }
}

/// The receiving side: checks signatures and remembers spent nonces.
pub(crate) struct Verifier {
    keys: PeerKeys,
    own_id: NodeId,
    spent: Mutex<SpentNonces>,
}

#[derive(Default)]
struct SpentNonces {
    set: HashSet<[u8; 16]>,
    /// In arrival order, so the oldest are forgotten first.
    order: VecDeque<(Instant, [u8; 16])>,
}

impl Verifier {
    pub(crate) fn new(keys: impl Into<PeerKeys>, own_id: NodeId) -> Verifier {
        Verifier { keys: keys.into(), own_id, spent: Mutex::default() }
    }

    /// The key this node signs its answers with.
    pub(crate) fn key(&self) -> &PeerKey {
        self.keys.signing()
    }

    pub(crate) fn own_id(&self) -> NodeId {
        self.own_id
    }

    /// Checks everything but the body: the header, receiver, time, MAC, then spends the nonce.
    pub(crate) fn check_head(
        &self,
        header: Option<&[u8]>,
        method: &str,
        path: &str,
        now_ms: u64,
    ) -> Result<RequestSignature, Rejection> {
        let sig = header
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(RequestSignature::parse)
            .ok_or(Rejection::Unsigned)?;
        let to_any_allowed = sig.to == ANY_NODE && path == crate::network::path::STATUS;
        if sig.to != self.own_id && !to_any_allowed {
            return Err(Rejection::WrongReceiver);
        }
        if now_ms.abs_diff(sig.timestamp_ms) > WINDOW.as_millis() as u64 {
            return Err(Rejection::Stale);
        }
        if !self.keys.request_is_genuine(&sig, method, path) {
            return Err(Rejection::BadMac);
        }
        self.spend(sig.nonce, Instant::now())?;
        Ok(sig)
    }

    /// Records a nonce as used; a nonce seen before (within two windows) is a replay. A nonce
    /// is kept for two windows after it arrives: its timestamp was at most one window ahead,
    /// and a replay is refused as stale one window after that.
    fn spend(&self, nonce: [u8; 16], now: Instant) -> Result<(), Rejection> {
        let mut spent = self.spent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(&(at, old)) = spent.order.front() {
            if now.duration_since(at) <= WINDOW * 2 {
                break;
            }
            spent.order.pop_front();
            spent.set.remove(&old);
        }
        if spent.set.contains(&nonce) {
            return Err(Rejection::Replayed);
        }
        if spent.set.len() >= MAX_REMEMBERED_NONCES {
            return Err(Rejection::TooBusy);
        }
        spent.set.insert(nonce);
        spent.order.push_back((now, nonce));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::path;

    fn key() -> PeerKey {
        PeerKey::derive(&ClusterSecret::generate())
    }

    #[test]
    fn a_signature_reads_back_and_checks_out_only_for_what_was_signed() {
        let key = key();
        let sig = key.sign_request(1, 2, "POST", path::VOTE, 1_000, [7; 16], b"body");
        let header = sig.to_header();
        assert_eq!(RequestSignature::parse(&header), Some(sig.clone()));
        assert!(key.request_is_genuine(&sig, "POST", path::VOTE));
        assert!(!key.request_is_genuine(&sig, "POST", path::PROPOSE));
        assert!(!key.request_is_genuine(&sig, "GET", path::VOTE));
        assert!(!PeerKey::derive(&ClusterSecret::generate()).request_is_genuine(&sig, "POST", path::VOTE));
        for tampered in [
            RequestSignature { from: 3, ..sig.clone() },
            RequestSignature { to: 3, ..sig.clone() },
            RequestSignature { timestamp_ms: 1_001, ..sig.clone() },
            RequestSignature { nonce: [8; 16], ..sig.clone() },
            RequestSignature { body_hash: body_hash(b"other"), ..sig.clone() },
        ] {
            assert!(!key.request_is_genuine(&tampered, "POST", path::VOTE), "{tampered:?}");
        }
        for bad in
            ["", "v2 from=1", &header.replace("v1 ", "v1  "), &format!("{header} x=1"), &header[..header.len() - 1]]
        {
            assert_eq!(RequestSignature::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_answer_is_bound_to_its_request_and_responder() {
        let key = key();
        let answer = key.sign_answer(&[1; 16], 2, 200, b"ok");
        assert_eq!(AnswerSignature::parse(&answer.to_header()), Some(answer.clone()));
        assert!(key.answer_is_genuine(&answer, &[1; 16], 200, b"ok"));
        assert!(!key.answer_is_genuine(&answer, &[2; 16], 200, b"ok"));
        assert!(!key.answer_is_genuine(&answer, &[1; 16], 500, b"ok"));
        assert!(!key.answer_is_genuine(&answer, &[1; 16], 200, b"no"));
        assert!(!key.answer_is_genuine(&AnswerSignature { from: 3, ..answer }, &[1; 16], 200, b"ok"));
    }

    #[test]
    fn during_a_rotation_both_secrets_are_accepted_and_only_the_current_one_signs() {
        let (old, new) = (key(), PeerKey::derive(&ClusterSecret::generate()));
        let verifier = Verifier::new(PeerKeys::new(new.clone(), vec![old.clone()]), 2);
        let now = now_ms();
        for (nonce, signer) in [(1u8, &old), (2, &new)] {
            let sig = signer.sign_request(1, 2, "POST", path::VOTE, now, [nonce; 16], b"");
            assert_eq!(
                verifier.check_head(Some(sig.to_header().as_bytes()), "POST", path::VOTE, now).map(|_| ()),
                Ok(())
            );
        }
        let stranger = PeerKey::derive(&ClusterSecret::generate());
        let sig = stranger.sign_request(1, 2, "POST", path::VOTE, now, [3; 16], b"");
        let refused = verifier.check_head(Some(sig.to_header().as_bytes()), "POST", path::VOTE, now);
        assert_eq!(refused.map(|_| ()), Err(Rejection::BadMac));
        let answer = verifier.key().sign_answer(&[1; 16], 2, 200, b"ok");
        assert!(new.answer_is_genuine(&answer, &[1; 16], 200, b"ok"), "answers are signed with the current key");
        assert!(!old.answer_is_genuine(&answer, &[1; 16], 200, b"ok"));
    }

    #[test]
    fn the_verifier_refuses_other_receivers_stale_times_bad_macs_and_replays() {
        let key = key();
        let verifier = Verifier::new(key.clone(), 2);
        let now = now_ms();
        let check = |sig: &RequestSignature, path: &str| {
            verifier.check_head(Some(sig.to_header().as_bytes()), "POST", path, now).map(|_| ())
        };
        let good = key.sign_request(1, 2, "POST", path::VOTE, now, [1; 16], b"");
        assert_eq!(check(&good, path::VOTE), Ok(()));
        assert_eq!(check(&good, path::VOTE), Err(Rejection::Replayed));
        let elsewhere = key.sign_request(1, 3, "POST", path::VOTE, now, [2; 16], b"");
        assert_eq!(check(&elsewhere, path::VOTE), Err(Rejection::WrongReceiver));
        let any = key.sign_request(1, ANY_NODE, "POST", path::VOTE, now, [3; 16], b"");
        assert_eq!(check(&any, path::VOTE), Err(Rejection::WrongReceiver));
        let any_status = key.sign_request(1, ANY_NODE, "POST", path::STATUS, now, [4; 16], b"");
        assert_eq!(check(&any_status, path::STATUS), Ok(()));
        let late = key.sign_request(1, 2, "POST", path::VOTE, now - 31_000, [5; 16], b"");
        assert_eq!(check(&late, path::VOTE), Err(Rejection::Stale));
        let early = key.sign_request(1, 2, "POST", path::VOTE, now + 31_000, [6; 16], b"");
        assert_eq!(check(&early, path::VOTE), Err(Rejection::Stale));
        let foreign =
            PeerKey::derive(&ClusterSecret::generate()).sign_request(1, 2, "POST", path::VOTE, now, [7; 16], b"");
        assert_eq!(check(&foreign, path::VOTE), Err(Rejection::BadMac));
        assert_eq!(verifier.check_head(None, "POST", path::VOTE, now).unwrap_err(), Rejection::Unsigned);
        // A refused request spends no nonce: the genuine one with it still passes.
        let genuine = key.sign_request(1, 2, "POST", path::VOTE, now, [7; 16], b"");
        assert_eq!(check(&genuine, path::VOTE), Ok(()));
    }

    #[test]
    fn spent_nonces_are_forgotten_after_two_windows() {
        let verifier = Verifier::new(key(), 1);
        let start = Instant::now();
        assert_eq!(verifier.spend([1; 16], start), Ok(()));
        assert_eq!(verifier.spend([1; 16], start + WINDOW), Err(Rejection::Replayed));
        assert_eq!(verifier.spend([2; 16], start + WINDOW * 2 + Duration::from_millis(1)), Ok(()));
        assert_eq!(verifier.spend([1; 16], start + WINDOW * 2 + Duration::from_millis(2)), Ok(()));
    }
}
