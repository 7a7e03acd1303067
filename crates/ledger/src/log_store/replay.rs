//! Opening the Raft log: its state rebuilt by reading every record of its segments in order,
//! entries by their id alone (decoding every payload was most of a restart's time).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::Arc;

use openraft::{LogId, Vote};

use super::record_kind::{COMMITTED, ENTRY, PURGED, TRUNCATED, VOTE};
use super::{decode, Index, Location};
use crate::codec;
use crate::wal;
use crate::NodeId;

/// The log's state rebuilt from its segments.
pub(super) struct Replay {
    pub(super) index: Index,
    pub(super) vote: Option<Vote<NodeId>>,
    pub(super) committed: Option<LogId<NodeId>>,
    pub(super) segment_last: BTreeMap<u64, u64>,
    pub(super) tail: Option<Tail>,
}

impl Replay {
    pub(super) fn run(dir: &Path) -> io::Result<Replay> {
        let mut index = Index {
            first: 0,
            locations: VecDeque::new(),
            purged: None,
            segments: BTreeMap::new(),
            cache: VecDeque::new(),
            cache_bytes: 0,
        };
        let (mut vote, mut committed) = (None, None);
        let mut segment_last = BTreeMap::new();
        let mut tail = None;
        for seq in wal::list_segments(dir)? {
            let file = Arc::new(wal::open_segment(dir, seq)?);
            let mut last = 0;
            let end = wal::read_records::<io::Error>(&file, |offset, kind, payload| {
                match kind {
                    ENTRY => {
                        // Only the id: decoding every payload was most of a restart's time.
                        let EntryHead { log_id } =
                            codec::decode_head(payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        if !index.locations.is_empty() && log_id.index > index.end() {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("raft log segment {seq}: entry {} leaves a hole", log_id.index),
                            ));
                        }
                        let len = payload.len() as u32;
                        index.push(Location { log_id, segment: seq, offset, len }, None, 0);
                        last = last.max(log_id.index);
                    }
                    VOTE => vote = Some(decode(payload)?),
                    COMMITTED => committed = decode(payload)?,
                    PURGED => index.purge(decode(payload)?),
                    TRUNCATED => index.truncate(decode(payload)?),
                    other => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("raft log segment {seq}: unknown record kind {other}"),
                        ))
                    }
                }
                Ok(())
            })?;
            tail = Some(Tail { seq, end, size: file.metadata()?.len() });
            index.segments.insert(seq, file);
            segment_last.insert(seq, last);
        }
        if index.locations.is_empty() {
            index.first = index.purged.map_or(0, |p| p.index + 1);
        }
        Ok(Replay { index, vote, committed, segment_last, tail })
    }
}

/// The first field of a stored `Entry`, read without its payload.
#[derive(serde::Deserialize)]
struct EntryHead {
    log_id: LogId<NodeId>,
}

/// The newest segment: where its intact records end, and its size.
pub(super) struct Tail {
    pub(super) seq: u64,
    pub(super) end: u64,
    pub(super) size: u64,
}
