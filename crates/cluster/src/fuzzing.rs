//! Entry points for the fuzz targets in `fuzz/` — not an API. Every decoder that a peer's
//! bytes reach: the internal routes' bodies and answers (`rpc.rs`, `network.rs`) and the frames
//! of the Raft stream (`raft_stream.rs`). Each must refuse anything malformed with an error,
//! never panic and never allocate what the input merely claims.

use keyledger_ledger::{codec, NodeId, TypeConfig};
use keyledger_model::Proposal;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};

use crate::node::{Committed, MembershipChange, MembershipRefusal, Refusal};
use crate::rpc::{JoinRequest, NodeStatus};

/// Decodes `bytes` as the body of each internal request, and as each answer a peer can send.
pub fn decode_peer_message(bytes: &[u8]) {
    let _ = codec::decode::<VoteRequest<NodeId>>(bytes);
    let _ = codec::decode::<InstallSnapshotRequest<TypeConfig>>(bytes);
    let _ = codec::decode::<Vec<Proposal>>(bytes);
    let _ = codec::decode::<JoinRequest>(bytes);
    let _ = codec::decode::<MembershipChange>(bytes);
    let _ = codec::decode::<Result<VoteResponse<NodeId>, RaftError<NodeId>>>(bytes);
    let _ = codec::decode::<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>>(bytes);
    let _ = codec::decode::<Vec<Result<Committed, Refusal>>>(bytes);
    let _ = codec::decode::<Result<(), MembershipRefusal>>(bytes);
    let _ = codec::decode::<NodeStatus>(bytes);
}

/// Reads `bytes` as a Raft stream from each side: frames of AppendEntries requests (what a
/// follower reads) and of answers (what a leader reads), until the first error or the end.
pub fn decode_stream(bytes: &[u8]) {
    futures::executor::block_on(async {
        let mut buf = Vec::new();
        let mut input = bytes;
        while crate::raft_stream::read_frame::<_, AppendEntriesRequest<TypeConfig>>(&mut input, &mut buf).await.is_ok()
        {
        }
        let mut input = bytes;
        type Answer = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;
        while crate::raft_stream::read_frame::<_, Answer>(&mut input, &mut buf).await.is_ok() {}
    });
}
