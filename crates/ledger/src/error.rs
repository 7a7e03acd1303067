//! The one error type of the storage crate: what reading or writing a data dir can fail with.

use keyledger_model::merkle::ProofError;

use crate::codec::CodecError;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the stored ledger is damaged at seq {seq}: {why}")]
    Damaged { seq: u64, why: String },
    #[error("{0}")]
    OutOfRange(String),
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the snapshot is damaged: {0}")]
    Snapshot(String),
    #[error("backup file: {0}")]
    Backup(String),
    #[error("raft log: {0}")]
    RaftLog(std::io::Error),
    /// The data dir's format stamp is not one this release reads (`data_format.rs`).
    #[error("{0}")]
    Format(String),
}

impl From<ProofError<LedgerError>> for LedgerError {
    fn from(e: ProofError<LedgerError>) -> LedgerError {
        match e {
            ProofError::OutOfRange(why) => LedgerError::OutOfRange(why),
            ProofError::Source(e) => e,
        }
    }
}
