//! Replaying stored events into the in-memory state, each one checked: its hashes against its
//! content, its key or code digest against its commitment, and its place on both chains. A
//! node's start, offline tools and a snapshot install all check events this way.

use keyledger_model::{LedgerEntry, State};

use crate::event_blocks;
use crate::LedgerError;

/// Events decoded and content-checked per step of the start-up rebuild.
const REBUILD_CHUNK: usize = 4096;

/// The state built from every stored event after `state`'s head (all of them for a new state),
/// each checked: decoding and recomputing hashes (the
/// bulk of the work) run on a second thread while this one reads the next chunk of blocks from
/// sled, and the chain links, `evolve` and `each` follow in order.
pub(crate) fn rebuild_state(
    tree: &sled::Tree,
    mut state: State,
    mut each: impl FnMut(&LedgerEntry),
) -> Result<State, LedgerError> {
    let from = state.head().seq + 1;
    let blocks_per_chunk = REBUILD_CHUNK / event_blocks::BLOCK_EVENTS as usize;
    std::thread::scope(|scope| {
        let mut checking: Option<std::thread::ScopedJoinHandle<'_, Result<Vec<LedgerEntry>, LedgerError>>> = None;
        let mut absorb = |state: &mut State, checked: Result<Vec<LedgerEntry>, LedgerError>| {
            // The first block may begin before `from` (a saved state ends anywhere).
            for entry in checked?.into_iter().filter(|e| e.event.seq >= from) {
                check_position(state, &entry)?;
                state.evolve(&entry);
                each(&entry);
            }
            Ok::<(), LedgerError>(())
        };
        let mut chunk = Vec::with_capacity(blocks_per_chunk);
        let mut blocks = event_blocks::blocks(tree, from, u64::MAX);
        loop {
            let block = blocks.next().transpose()?;
            let done = block.is_none();
            chunk.extend(block);
            if chunk.len() < blocks_per_chunk && !done {
                continue;
            }
            let raw = std::mem::replace(&mut chunk, Vec::with_capacity(blocks_per_chunk));
            let next = scope.spawn(move || decode_checked(&raw));
            if let Some(previous) = checking.replace(next) {
                absorb(&mut state, previous.join().expect("checking events does not panic"))?;
            }
            if done {
                let last = checking.take().expect("just spawned");
                absorb(&mut state, last.join().expect("checking events does not panic"))?;
                return Ok(state);
            }
        }
    })
}

/// The entries of stored blocks, decoded, each one's content matching its hashes and its key
/// digest.
fn decode_checked(blocks: &[(u64, sled::IVec)]) -> Result<Vec<LedgerEntry>, LedgerError> {
    let mut entries = Vec::with_capacity(blocks.len() * event_blocks::BLOCK_EVENTS as usize);
    for (number, bytes) in blocks {
        for record in event_blocks::records(*number, bytes) {
            let (seq, record) = record?;
            let entry = event_blocks::decode_at(seq, record)?;
            check_content(&entry)?;
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// Refuses an entry that does not continue the chain the state has reached.
pub(crate) fn check_link(state: &State, entry: &LedgerEntry) -> Result<(), LedgerError> {
    check_position(state, entry)?;
    check_content(entry)
}

/// Does `entry` come next on both chains?
fn check_position(state: &State, entry: &LedgerEntry) -> Result<(), LedgerError> {
    let head = state.head();
    let event = &entry.event;
    let damaged = |why: &str| LedgerError::Damaged { seq: event.seq, why: why.to_string() };
    if event.seq != head.seq + 1 {
        return Err(damaged("sequence gap"));
    }
    if event.prev_hash != head.hash || event.account_prev_hash != state.account_head(&event.account).hash {
        return Err(damaged("chain link broken"));
    }
    Ok(())
}

/// Do `entry`'s hashes match its content, and its key or code digest its commitment?
pub(crate) fn check_content(entry: &LedgerEntry) -> Result<(), LedgerError> {
    let event = &entry.event;
    let damaged = |why: &str| LedgerError::Damaged { seq: event.seq, why: why.to_string() };
    if !event.hashes_are_valid() {
        return Err(damaged("hash does not match content"));
    }
    let commitment = entry.digest.map(|d| d.commitment());
    match &event.body {
        keyledger_model::EventBody::KeyCreated { digest_commitment, .. } if commitment != Some(*digest_commitment) => {
            return Err(damaged("key digest does not match its commitment"));
        }
        keyledger_model::EventBody::EnrollmentIssued { code_commitment, .. }
            if commitment != Some(*code_commitment) =>
        {
            return Err(damaged("enrollment code digest does not match its commitment"));
        }
        _ => {}
    }
    Ok(())
}
