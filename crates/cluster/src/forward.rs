//! Forwarded writes: a follower passes the proposals it receives to the leader, batched one
//! hop before the leader's own batching (`batch.rs`), so writes a follower receives together
//! cost the leader one request, not one each. [`send_forwards`] is where they are sent; the
//! leader answers them in `rpc.rs` (`propose`).

use std::sync::Arc;

use keyledger_ledger::NodeId;
use keyledger_model::Proposal;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::batch::{with_the_waiting, IN_FLIGHT};
use crate::network::{path, CallError, RpcClient};
use crate::node::{Committed, Refusal};

/// One proposal a follower is passing to the leader, and where its answer goes.
struct Forwarding {
    /// The leader's id and base URL.
    leader: (NodeId, String),
    proposal: Proposal,
    deadline: Instant,
    answer: oneshot::Sender<Result<Committed, Refusal>>,
}

/// A follower's queue of proposals for the leader: the same batching one hop earlier, so
/// writes a follower receives together cost the leader one request, not one each.
#[derive(Clone)]
pub(crate) struct Forwarder {
    queue: mpsc::UnboundedSender<Forwarding>,
}

impl Forwarder {
    pub(crate) fn start(rpc: RpcClient) -> Forwarder {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(gather_forwards(rpc, waiting));
        Forwarder { queue }
    }

    /// Sends `proposal` to the leader (its id and base URL) with the next batch.
    pub(crate) async fn forward(
        &self,
        leader: (NodeId, String),
        proposal: Proposal,
        deadline: Instant,
    ) -> Result<Committed, Refusal> {
        let (answer, answered) = oneshot::channel();
        if self.queue.send(Forwarding { leader, proposal, deadline, answer }).is_err() {
            return Err(Refusal::Unavailable("this node is shutting down".into()));
        }
        answered.await.unwrap_or_else(|_| Err(Refusal::OutcomeUnknown("the write's task ended".into())))
    }
}

async fn gather_forwards(rpc: RpcClient, mut waiting: mpsc::UnboundedReceiver<Forwarding>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let batch = with_the_waiting(first, &mut waiting);
        // Proposals queued across a change of leader go to the leader each was meant for.
        let mut by_leader: Vec<((NodeId, String), Vec<Forwarding>)> = Vec::new();
        for forwarding in batch {
            match by_leader.iter_mut().find(|(leader, _)| *leader == forwarding.leader) {
                Some((_, group)) => group.push(forwarding),
                None => by_leader.push((forwarding.leader.clone(), vec![forwarding])),
            }
        }
        let rpc = rpc.clone();
        tokio::spawn(async move {
            for ((id, base), group) in by_leader {
                send_forwards(&rpc, id, &base, group).await;
            }
            drop(slot);
        });
    }
}

/// Sends one batch to the leader and answers each proposal.
async fn send_forwards(rpc: &RpcClient, leader: NodeId, base: &str, group: Vec<Forwarding>) {
    let deadline = group.iter().map(|f| f.deadline).min().unwrap_or_else(Instant::now);
    let (proposals, answers): (Vec<Proposal>, Vec<_>) = group.into_iter().map(|f| (f.proposal, f.answer)).unzip();
    let count = proposals.len();
    let budget = deadline.saturating_duration_since(Instant::now());
    let failed = match rpc
        .call::<_, Vec<Result<Committed, Refusal>>>(leader, base, path::PROPOSE, &proposals, budget)
        .await
    {
        Ok(results) if results.len() == count => {
            for (answer, result) in answers.into_iter().zip(results) {
                let _ = answer.send(result);
            }
            return;
        }
        Ok(results) => {
            Refusal::OutcomeUnknown(format!("the leader answered {} results for {count} writes", results.len()))
        }
        Err(CallError::Unreachable(_)) => Refusal::Unavailable("the leader cannot be reached".into()),
        Err(CallError::Refused(_)) => Refusal::Unavailable("the leader refused this node's signature".into()),
        // Refused before anything was read: nothing was written.
        Err(CallError::Incompatible(why)) => Refusal::Unavailable(why),
        // Something answered that is not the leader: whether the leader got the writes is unknown.
        Err(CallError::NotANode(why)) => {
            Refusal::OutcomeUnknown(format!("the leader did not confirm the write: {why}"))
        }
        Err(CallError::Failed(why)) => Refusal::OutcomeUnknown(format!("the leader did not confirm the write: {why}")),
    };
    for answer in answers {
        let _ = answer.send(Err(failed.clone()));
    }
}
