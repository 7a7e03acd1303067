//! The version of what nodes say to each other. Every internal request and every answer names
//! the peer protocol its sender speaks and the release it runs:
//!
//! ```text
//! x-keyledger-protocol: 1 keyledger/0.1.0
//! ```
//!
//! A node serves a peer's request only when the peer speaks its protocol, and believes an
//! answer only from a peer that does; otherwise it answers (or fails the call with) `409
//! protocol_mismatch` and says which node speaks what. So a cluster of mixed releases either
//! interoperates (the same protocol: a patch release, or one that changed nothing between
//! nodes) or the node that does not match refuses, clearly, before it decodes anything it might
//! misread. A request without the header comes from a release before it existed, which spoke 1.

use std::sync::LazyLock;

use axum::http::HeaderValue;

/// Bumped whenever what one node sends another changes meaning: the internal routes' bodies,
/// the raft stream's frames, or the proposals and events inside them (a new `Command` or
/// `EventBody` variant included: a follower that cannot decode an entry cannot apply it).
pub const PEER_PROTOCOL: u32 = 1;

/// The header naming the sender's protocol and release.
pub const PROTOCOL_HEADER: &str = "x-keyledger-protocol";

/// This node's release.
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// This node's header value, made once.
pub fn header_value() -> HeaderValue {
    static VALUE: LazyLock<HeaderValue> = LazyLock::new(|| {
        HeaderValue::from_str(&format!("{PEER_PROTOCOL} keyledger/{RELEASE}")).expect("the protocol header is ASCII")
    });
    VALUE.clone()
}

/// What a peer says it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpeaks {
    pub protocol: u32,
    /// Its release, when it said (releases before the header existed did not).
    pub release: Option<String>,
}

impl PeerSpeaks {
    /// Reads the header; none means a release before it existed (protocol 1). A header that
    /// does not parse names no protocol this node speaks.
    pub fn from_header(value: Option<&HeaderValue>) -> PeerSpeaks {
        let Some(value) = value else {
            return PeerSpeaks { protocol: 1, release: None };
        };
        let text = value.to_str().unwrap_or("");
        let mut words = text.split_ascii_whitespace();
        let protocol = words.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let release = words.next().and_then(|r| r.strip_prefix("keyledger/")).map(|r| r.chars().take(32).collect());
        PeerSpeaks { protocol, release }
    }

    /// `Ok` when this node can talk with the peer; otherwise the sentence an operator needs.
    pub fn check(&self, peer: &str) -> Result<(), String> {
        if self.protocol == PEER_PROTOCOL {
            return Ok(());
        }
        let release =
            self.release.as_deref().map_or_else(|| "an unknown release".to_owned(), |r| format!("keyledger {r}"));
        Err(format!(
            "{peer} speaks peer protocol {} ({release}) and this node (keyledger {RELEASE}) speaks protocol \
             {PEER_PROTOCOL}: nodes of different protocols cannot form one cluster; upgrade (or roll back) every \
             node to one release, as docs/operations.md \"Rolling upgrade\" says",
            self.protocol
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_protocol_and_the_release() {
        let ours = PeerSpeaks::from_header(Some(&header_value()));
        assert_eq!(ours, PeerSpeaks { protocol: PEER_PROTOCOL, release: Some(RELEASE.to_owned()) });
        assert_eq!(ours.check("node 2"), Ok(()));
    }

    #[test]
    fn a_missing_header_is_the_first_protocol() {
        assert_eq!(PeerSpeaks::from_header(None), PeerSpeaks { protocol: 1, release: None });
    }

    #[test]
    fn another_protocol_is_refused_with_both_releases_named() {
        let newer = PeerSpeaks::from_header(Some(&HeaderValue::from_static("2 keyledger/0.2.0")));
        let message = newer.check("node 3").unwrap_err();
        assert!(message.contains("node 3 speaks peer protocol 2 (keyledger 0.2.0)"), "{message}");
        assert!(message.contains(&format!("keyledger {RELEASE}")), "{message}");
        for garbage in ["", "two", "-1 x", "99999999999999999999"] {
            let peer = PeerSpeaks::from_header(Some(&HeaderValue::from_static(garbage)));
            assert!(peer.check("p").is_err(), "{garbage:?}");
        }
    }
}
