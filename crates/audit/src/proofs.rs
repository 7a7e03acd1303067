//! Checkpoints and Merkle proofs, checked offline with nothing but the proof file and the
//! cluster's public keys.
//!
//! An inclusion proof names an event, a checkpoint and the audit path between them; a
//! consistency proof names two checkpoints and the path that shows the later tree only
//! appended to the earlier one. Both carry whole exported events, so every hash is recomputed
//! from content here, and every checkpoint's signature is checked against keys the auditor
//! trusts (`GET /v1/audit/public-key`, fetched once and kept). The proofs and the key document
//! are the API's own types (`keyledger_wire::{InclusionProof, ConsistencyProof, SigningKeys}`).

use std::collections::BTreeSet;
use std::fmt;

use keyledger_model::merkle::{self, TreeHash};
use keyledger_model::{Checkpoint, Event, EventBody, PublicKey};
use keyledger_wire::{AuditEvent, ConsistencyProof, InclusionProof, SigningKeys};

use crate::from_export;

/// The public keys an auditor accepts checkpoints from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(BTreeSet<PublicKey>);

impl TrustedKeys {
    /// Reads the document `GET /v1/audit/public-key` answers, or public keys in hex separated
    /// by white space or commas.
    pub fn parse(text: &str) -> Result<TrustedKeys, String> {
        let text = text.trim();
        let hexes: Vec<String> = if text.starts_with('{') {
            let document: SigningKeys =
                serde_json::from_str(text).map_err(|e| format!("not a public-key document: {e}"))?;
            if document.algorithm != "ed25519" {
                return Err(format!("unknown algorithm {:?}", document.algorithm));
            }
            document.keys.into_iter().map(|k| k.public_key).collect()
        } else {
            text.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(String::from).collect()
        };
        let mut keys = BTreeSet::new();
        for hex in hexes {
            let key = PublicKey::from_hex(&hex).ok_or_else(|| format!("{hex:?} is not 64 lower-case hex digits"))?;
            if !key.is_valid() {
                return Err(format!("{hex} is not an Ed25519 public key"));
            }
            keys.insert(key);
        }
        if keys.is_empty() {
            return Err("no public key given".into());
        }
        Ok(TrustedKeys(keys))
    }

    pub fn contains(&self, key: &PublicKey) -> bool {
        self.0.contains(key)
    }
}

/// Why a proof or checkpoint does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofFailure(pub String);

impl fmt::Display for ProofFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProofFailure {}

fn fail<T>(why: impl Into<String>) -> Result<T, ProofFailure> {
    Err(ProofFailure(why.into()))
}

/// The checkpoint an event states, if its signature holds and (given keys) its signer is trusted.
pub fn check_checkpoint(event: &Event, trusted: Option<&TrustedKeys>) -> Result<Checkpoint, String> {
    let EventBody::Checkpoint(checkpoint) = &event.body else {
        return Err(format!("seq {} is a `{}` event, not a checkpoint", event.seq, event.body.type_name()));
    };
    if checkpoint.tree_size >= event.seq {
        return Err(format!("checkpoint at seq {} claims a tree of {} events", event.seq, checkpoint.tree_size));
    }
    if !checkpoint.signature_is_valid() {
        return Err(format!("checkpoint at seq {}: the signature does not verify", event.seq));
    }
    if let Some(trusted) = trusted {
        if !trusted.contains(&checkpoint.public_key) {
            return Err(format!(
                "checkpoint at seq {}: signed by key {} (node {}), which is not among the trusted public keys",
                event.seq, checkpoint.public_key, checkpoint.signer
            ));
        }
    }
    Ok(*checkpoint)
}

/// An exported event whose hashes match its content.
fn sound_event(exported: &AuditEvent, what: &str) -> Result<Event, ProofFailure> {
    let event = from_export(exported).map_err(|e| ProofFailure(format!("{what}: {e}")))?;
    if !event.hashes_are_valid() {
        return fail(format!("{what}: the hashes do not match the event's content"));
    }
    Ok(event)
}

fn parse_path(proof: &[String]) -> Result<Vec<TreeHash>, ProofFailure> {
    proof
        .iter()
        .map(|h| TreeHash::from_hex(h).ok_or_else(|| ProofFailure(format!("proof hash {h:?} is not 64 hex digits"))))
        .collect()
}

/// What a verified inclusion proof shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    pub seq: u64,
    pub checkpoint_seq: u64,
    pub tree_size: u64,
    pub signer: u64,
}

pub fn verify_inclusion(proof: &InclusionProof, trusted: &TrustedKeys) -> Result<Included, ProofFailure> {
    let event = sound_event(&proof.event, "event")?;
    let checkpoint_event = sound_event(&proof.checkpoint, "checkpoint")?;
    let checkpoint = check_checkpoint(&checkpoint_event, Some(trusted)).map_err(ProofFailure)?;
    if event.seq == 0 || event.seq > checkpoint.tree_size {
        return fail(format!("event {} is not covered by a checkpoint of {} events", event.seq, checkpoint.tree_size));
    }
    let leaf = merkle::leaf_hash(&event.hash.0);
    let path = parse_path(&proof.proof)?;
    if !merkle::verify_inclusion(&leaf, event.seq - 1, checkpoint.tree_size, &path, &checkpoint.root) {
        return fail(format!(
            "event {} is not in the tree of checkpoint {}: the audit path does not lead to its root",
            event.seq, checkpoint_event.seq
        ));
    }
    Ok(Included {
        seq: event.seq,
        checkpoint_seq: checkpoint_event.seq,
        tree_size: checkpoint.tree_size,
        signer: checkpoint.signer,
    })
}

/// What a verified consistency proof shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consistent {
    pub from_size: u64,
    pub to_size: u64,
}

pub fn verify_consistency(proof: &ConsistencyProof, trusted: &TrustedKeys) -> Result<Consistent, ProofFailure> {
    let from = check_checkpoint(&sound_event(&proof.from, "from")?, Some(trusted)).map_err(ProofFailure)?;
    let to = check_checkpoint(&sound_event(&proof.to, "to")?, Some(trusted)).map_err(ProofFailure)?;
    if from.tree_size > to.tree_size {
        return fail(format!("`from` covers {} events, more than `to` ({})", from.tree_size, to.tree_size));
    }
    let path = parse_path(&proof.proof)?;
    if !merkle::verify_consistency(from.tree_size, to.tree_size, &from.root, &to.root, &path) {
        return fail(format!(
            "the tree of {} events does not extend the tree of {}: history was rewritten, or the proof is wrong",
            to.tree_size, from.tree_size
        ));
    }
    Ok(Consistent { from_size: from.tree_size, to_size: to.tree_size })
}
