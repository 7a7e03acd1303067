//! Deciding what goes on the cluster's own chain: checkpoint-signing keys and checkpoints.

use crate::checkpoint::{Checkpoint, PublicKey, MAX_CHECKPOINT_LAG};
use crate::event::EventBody;
use crate::proposal::{Proposal, RejectCode, Rejection};
use crate::state::State;

use super::{reject, Decision};

impl State {
    pub(super) fn cluster_chain(&self, p: &Proposal) -> Result<(), Rejection> {
        self.system(p)?;
        if !p.account.is_cluster() {
            return Err(reject(RejectCode::InvalidArgument, "signers and checkpoints belong on the cluster chain"));
        }
        Ok(())
    }

    pub(super) fn decide_register_signer(
        &self,
        p: &Proposal,
        node: u64,
        public_key: PublicKey,
    ) -> Result<Decision, Rejection> {
        self.cluster_chain(p)?;
        if !public_key.is_valid() {
            return Err(reject(RejectCode::InvalidArgument, "not an Ed25519 public key"));
        }
        if self.signers.contains_key(&public_key) {
            return Err(reject(RejectCode::Conflict, "this signing key is already registered"));
        }
        let body = EventBody::SignerRegistered { node, public_key };
        Ok(Decision { events: vec![self.pending(p, &p.account, body)], subject: None })
    }

    /// Everything about a checkpoint that the state can judge. Its root and head are compared
    /// with the stored ledger by the ledger crate, which holds the Merkle tree, before this runs.
    pub(super) fn decide_checkpoint(&self, p: &Proposal, checkpoint: &Checkpoint) -> Result<Decision, Rejection> {
        self.cluster_chain(p)?;
        let invalid = |why: String| Err(reject(RejectCode::InvalidArgument, why));
        if self.signers.get(&checkpoint.public_key) != Some(&checkpoint.signer) {
            return invalid(format!("the key is not a registered signing key of node {}", checkpoint.signer));
        }
        let size = self.head.seq;
        if checkpoint.tree_size == 0 || checkpoint.tree_size > size {
            return invalid(format!("a checkpoint must cover 1 to {size} events, not {}", checkpoint.tree_size));
        }
        if size - checkpoint.tree_size > MAX_CHECKPOINT_LAG {
            return invalid(format!("the checkpoint covers a ledger more than {MAX_CHECKPOINT_LAG} events old"));
        }
        if let Some(last) = self.last_checkpoint {
            if checkpoint.tree_size <= last.tree_size {
                return Err(reject(RejectCode::Conflict, "not newer than the last checkpoint"));
            }
        }
        if !checkpoint.signature_is_valid() {
            return invalid("the signature does not verify".into());
        }
        let body = EventBody::Checkpoint(*checkpoint);
        Ok(Decision { events: vec![self.pending(p, &p.account, body)], subject: None })
    }
}
