//! Entry points for the fuzz targets in `fuzz/` — not an API: the decoders that bytes from
//! outside the node reach in this crate. A snapshot arrives from a peer in chunks and is
//! checked end to end before anything is installed; a damaged one must be refused with an
//! error, never a panic or an allocation as large as a length it merely claims.

use keyledger_model::ChainHead;

use crate::snapshot;

/// Checks `bytes` as a received snapshot file, as a node does before installing one, both as
/// a fresh node (nothing stored) and as one whose ledger holds a first event.
pub fn check_snapshot(bytes: &[u8]) {
    for local in [ChainHead::EMPTY, ChainHead { seq: 1, ..ChainHead::EMPTY }] {
        if let Ok(reader) = snapshot::Reader::new(bytes) {
            let _ = snapshot::check_from(reader, local);
        }
    }
}
