//! Signed checkpoints: a node's signature over the ledger's size, head hash and Merkle root.
//!
//! Design decision: every node has its own Ed25519 key, made on its first start and never
//! copied anywhere; only its public half is written to the ledger (`signer_registered`). The
//! leader signs a checkpoint *before proposing it*, so the event — signature included — is
//! fixed in the log and every node stores the same bytes. Applying it re-checks everything:
//! the key is a registered signer's, the signature is valid, and (in the ledger crate, which
//! holds the Merkle tree) the root and head are those of the ledger at `tree_size`.
//! No private key ever crosses the network or enters the ledger.

use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::chain::ChainHash;
use crate::merkle::TreeHash;

/// A checkpoint may cover the ledger as it was at most this many events before its own place
/// in it (the leader signs what it has applied; more may be in flight). It bounds how far back
/// an offline verifier must look.
pub const MAX_CHECKPOINT_LAG: u64 = 65_536;

/// Domain separation: these bytes are signed for nothing else.
const MESSAGE_DOMAIN: &[u8] = b"keyledger-checkpoint-v1\0";

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<PublicKey> {
        crate::hex::decode(text).map(PublicKey)
    }

    /// True when the bytes are a valid Ed25519 point (a key that could verify anything).
    pub fn is_valid(&self) -> bool {
        VerifyingKey::from_bytes(&self.0).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..12])
    }
}

/// An Ed25519 signature. Serialized as two 32-byte halves (serde has no 64-byte arrays).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<Signature> {
        crate::hex::decode(text).map(Signature)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", &self.to_hex()[..12])
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut halves = [[0u8; 32]; 2];
        halves[0].copy_from_slice(&self.0[..32]);
        halves[1].copy_from_slice(&self.0[32..]);
        halves.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Signature, D::Error> {
        let halves = <[[u8; 32]; 2]>::deserialize(deserializer)?;
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&halves[0]);
        bytes[32..].copy_from_slice(&halves[1]);
        Ok(Signature(bytes))
    }
}

/// A signed statement: "the ledger's first `tree_size` events have Merkle root `root`, and
/// the last of them has chain hash `head`", signed by node `signer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub tree_size: u64,
    pub root: TreeHash,
    pub head: ChainHash,
    pub signer: u64,
    pub public_key: PublicKey,
    pub signature: Signature,
}

impl Checkpoint {
    /// The exact bytes a checkpoint's signature covers.
    pub fn message(tree_size: u64, root: &TreeHash, head: &ChainHash) -> Vec<u8> {
        let mut message = Vec::with_capacity(MESSAGE_DOMAIN.len() + 8 + 64);
        message.extend_from_slice(MESSAGE_DOMAIN);
        message.extend_from_slice(&tree_size.to_be_bytes());
        message.extend_from_slice(&root.0);
        message.extend_from_slice(&head.0);
        message
    }

    /// Does `signature` sign this checkpoint's statement under `public_key`?
    pub fn signature_is_valid(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.public_key.0) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify_strict(&Checkpoint::message(self.tree_size, &self.root, &self.head), &signature).is_ok()
    }
}

/// A node's signing key. Made from 32 random bytes the node keeps in its data dir.
pub struct CheckpointSigner {
    node: u64,
    key: SigningKey,
}

impl CheckpointSigner {
    pub fn from_seed(node: u64, seed: [u8; 32]) -> CheckpointSigner {
        CheckpointSigner { node, key: SigningKey::from_bytes(&seed) }
    }

    pub fn node(&self) -> u64 {
        self.node
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs the statement about the ledger's first `tree_size` events.
    pub fn sign(&self, tree_size: u64, root: TreeHash, head: ChainHash) -> Checkpoint {
        let signature = self.key.sign(&Checkpoint::message(tree_size, &root, &head));
        Checkpoint {
            tree_size,
            root,
            head,
            signer: self.node,
            public_key: self.public_key(),
            signature: Signature(signature.to_bytes()),
        }
    }
}

impl fmt::Debug for CheckpointSigner {
    // Never the private key, not even in a debug print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointSigner {{ node: {}, public_key: {} }}", self.node, self.public_key())
    }
}

/// Where the ledger's checkpoints stand: the newest one's size and its own place and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMark {
    pub tree_size: u64,
    /// Seq of the `checkpoint` event itself.
    pub seq: u64,
    pub time: crate::time::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CheckpointSigner {
        CheckpointSigner::from_seed(3, [7; 32])
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_breaks_it() {
        let checkpoint = signer().sign(42, TreeHash([1; 32]), ChainHash([2; 32]));
        assert!(checkpoint.signature_is_valid());
        assert_eq!(checkpoint.signer, 3);
        let changes: [fn(&mut Checkpoint); 5] = [
            |c| c.tree_size += 1,
            |c| c.root.0[0] ^= 1,
            |c| c.head.0[31] ^= 0x80,
            |c| c.signature.0[10] ^= 4,
            |c| c.public_key = CheckpointSigner::from_seed(3, [8; 32]).public_key(),
        ];
        for change in changes {
            let mut forged = checkpoint;
            change(&mut forged);
            assert!(!forged.signature_is_valid(), "{forged:?}");
        }
    }

    #[test]
    fn keys_and_signatures_round_trip_through_hex_and_bincode() {
        let checkpoint = signer().sign(1, TreeHash([9; 32]), ChainHash([4; 32]));
        assert_eq!(PublicKey::from_hex(&checkpoint.public_key.to_hex()), Some(checkpoint.public_key));
        assert_eq!(Signature::from_hex(&checkpoint.signature.to_hex()), Some(checkpoint.signature));
        let bytes = bincode::serde::encode_to_vec(checkpoint, bincode::config::standard()).unwrap();
        let (back, _): (Checkpoint, _) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, checkpoint);
        assert!(!format!("{:?}", signer()).contains(&"07".repeat(32)), "the seed must never be printed");
        assert!(checkpoint.public_key.is_valid());
    }
}
