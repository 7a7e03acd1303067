//! The two hash chains' vocabulary: a chain hash and the head of a chain.
//!
//! Kept below `event` and `checkpoint`, which both name chain hashes, so neither has to import
//! the other for it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A SHA3-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev_hash` of the first event of a chain.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    pub fn to_hex(&self) -> String {
        String::from_utf8(self.hex_digits().to_vec()).expect("hex digits are ASCII")
    }

    /// The 64 lower-case hex digits, on the stack.
    pub fn hex_digits(&self) -> [u8; 64] {
        crate::hex::digits32(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<ChainHash> {
        crate::hex::decode(text).map(ChainHash)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex_digits()).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", &self.to_hex()[..12])
    }
}

/// The end of a chain: the last event's seq and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: ChainHash,
}

impl ChainHead {
    pub const EMPTY: ChainHead = ChainHead { seq: 0, hash: ChainHash::GENESIS };
}

impl Default for ChainHead {
    fn default() -> ChainHead {
        ChainHead::EMPTY
    }
}
