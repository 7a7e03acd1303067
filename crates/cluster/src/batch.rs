//! Proposal batching: on the leader, writes that arrive while earlier ones are still in flight
//! share one Raft log entry (on a follower, writes passed on to the leader together share one
//! request: `forward.rs`, with the same queue and limits).
//!
//! Every Raft entry costs the same fixed work whatever it carries — a hand-off to openraft's
//! core, a log append, a replication message per follower, a hand-off to the apply task and
//! back — and on a small machine those hand-offs, not the writes, were the limit. So the leader
//! keeps at most [`IN_FLIGHT`] entries in flight; while they are, new proposals wait in a queue,
//! and the next entry takes all of them (up to [`MAX_BATCH`]). One client alone never waits:
//! with nothing in flight its proposal goes straight out as an entry of one.
//!
//! Applying an entry applies its proposals in order, exactly as if each had its own entry
//! (tested in `crates/ledger/tests/ledger.rs`), so batching never changes the ledger's bytes —
//! only the log index the writes of one entry share.

use std::sync::Arc;
use std::time::Duration;

use keyledger_ledger::{Proposals, TypeConfig};
use keyledger_model::Proposal;
use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::node::{Committed, Refusal};

/// Entries in flight at once. More than one keeps the pipeline full (one entry replicating
/// while the next gathers); few enough that writes queue up and batch under load.
pub(crate) const IN_FLIGHT: usize = 2;
/// Proposals in one entry at most (bounds an AppendEntries message and one apply).
const MAX_BATCH: usize = 512;

/// One proposal waiting for an entry, and where its answer goes.
struct Waiting {
    proposal: Proposal,
    answer: oneshot::Sender<Result<Committed, Refusal>>,
}

/// The leader's queue of proposals. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Batcher {
    queue: mpsc::UnboundedSender<Waiting>,
}

impl Batcher {
    /// Starts the task that turns the queue into Raft entries; it ends when every `Batcher`
    /// clone is dropped.
    pub(crate) fn start(raft: Raft<TypeConfig>, deadline: Duration) -> Batcher {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(gather(raft, waiting, deadline));
        Batcher { queue }
    }

    /// Proposes `proposal` in the next entry and waits for its answer.
    pub(crate) async fn propose(&self, proposal: Proposal) -> Result<Committed, Refusal> {
        let (answer, answered) = oneshot::channel();
        if self.queue.send(Waiting { proposal, answer }).is_err() {
            return Err(Refusal::Unavailable("this node is shutting down".into()));
        }
        // A dropped sender means the write's task ended without an answer (shutdown, or a
        // panic): it may or may not have been proposed.
        answered.await.unwrap_or_else(|_| Err(Refusal::OutcomeUnknown("the write's task ended".into())))
    }
}

/// Waits for a free slot, then sends everything queued as one entry.
async fn gather(raft: Raft<TypeConfig>, mut waiting: mpsc::UnboundedReceiver<Waiting>, deadline: Duration) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let batch = with_the_waiting(first, &mut waiting);
        let raft = raft.clone();
        tokio::spawn(async move {
            write_entry(&raft, batch, deadline).await;
            drop(slot);
        });
    }
}

/// `first` and whatever else is queued (up to [`MAX_BATCH`] in all), without waiting.
pub(crate) fn with_the_waiting<T>(first: T, waiting: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match waiting.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    batch
}

/// Writes one entry and answers each of its proposals.
async fn write_entry(raft: &Raft<TypeConfig>, batch: Vec<Waiting>, deadline: Duration) {
    let (proposals, answers): (Vec<Proposal>, Vec<_>) = batch.into_iter().map(|w| (w.proposal, w.answer)).unzip();
    let count = proposals.len();
    let result = match tokio::time::timeout(deadline, raft.client_write(Proposals(proposals))).await {
        Ok(Ok(response)) if response.data.len() == count => {
            let index = response.log_id.index;
            for (answer, outcome) in answers.into_iter().zip(response.data) {
                let _ = answer.send(Ok(Committed::new(index, outcome)));
            }
            return;
        }
        Ok(Ok(response)) => Err(Refusal::OutcomeUnknown(format!(
            "applying the entry answered {} outcomes for {count} proposals",
            response.data.len()
        ))),
        // Refused before it was appended, or its entry was truncated away: not written.
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            Err(Refusal::NotLeader(f.leader_id.zip(f.leader_node.map(|n| n.addr))))
        }
        Ok(Err(e)) => Err(Refusal::OutcomeUnknown(format!("the write failed: {e}"))),
        Err(_) => Err(Refusal::OutcomeUnknown("the write was not confirmed by a quorum in time".into())),
    };
    for answer in answers {
        let _ = answer.send(result.clone());
    }
}
