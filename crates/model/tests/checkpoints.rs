//! Signers and checkpoints in the model: who may register a key and write a checkpoint, which
//! checkpoints the state accepts (the ledger crate also checks root and head against its stored
//! tree), and that both survive a rebuild from the ledger.

mod common;

use common::World;
use keyledger_model::checkpoint::MAX_CHECKPOINT_LAG;
use keyledger_model::{
    AccountId, Actor, ChainHash, CheckpointSigner, Command, Outcome, PublicKey, RejectCode, State, TreeHash,
};

fn on_cluster(world: &mut World, actor: Actor, command: Command) -> Outcome {
    let mut proposal = world.proposal(actor, command);
    proposal.account = AccountId::cluster();
    world.execute(&proposal).0
}

fn refusal(outcome: Outcome) -> RejectCode {
    match outcome {
        Outcome::Rejected(r) => r.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn accepted(outcome: Outcome) {
    assert!(matches!(outcome, Outcome::Accepted { events: 1, .. }), "{outcome:?}");
}

#[test]
fn only_the_cluster_registers_signers_on_its_own_chain() {
    let mut world = World::bootstrap(1);
    let signer = CheckpointSigner::from_seed(1, [1; 32]);
    let register = Command::RegisterSigner { node: 1, public_key: signer.public_key() };
    let owner = world.owner_actor();
    assert_eq!(refusal(on_cluster(&mut world, owner, register.clone())), RejectCode::PermissionDenied);
    let on_account = world.proposal(Actor::System, register.clone());
    assert_eq!(refusal(world.execute(&on_account).0), RejectCode::InvalidArgument);
    // 0x0202…02 decodes to no point on the curve.
    assert!(!PublicKey([2; 32]).is_valid());
    let not_a_point = Command::RegisterSigner { node: 1, public_key: PublicKey([2; 32]) };
    assert_eq!(refusal(on_cluster(&mut world, Actor::System, not_a_point)), RejectCode::InvalidArgument);
    accepted(on_cluster(&mut world, Actor::System, register.clone()));
    assert_eq!(refusal(on_cluster(&mut world, Actor::System, register)), RejectCode::Conflict);
    assert_eq!(world.state.signers().collect::<Vec<_>>(), [(&signer.public_key(), 1)]);
    let event = &world.ledger.last().unwrap().event;
    assert_eq!((event.account.clone(), event.account_seq), (AccountId::cluster(), 1), "the cluster chain starts");
}

#[test]
fn the_state_accepts_only_sound_newer_checkpoints_by_registered_signers() {
    let mut world = World::bootstrap(2);
    let signer = CheckpointSigner::from_seed(1, [1; 32]);
    let register = Command::RegisterSigner { node: 1, public_key: signer.public_key() };
    accepted(on_cluster(&mut world, Actor::System, register));
    let size = world.state.head().seq;
    let (root, head) = (TreeHash([3; 32]), world.state.head().hash);
    let checkpoint = |c| Command::Checkpoint(c);

    let as_node_2 = CheckpointSigner::from_seed(2, [1; 32]);
    let cases = [
        (as_node_2.sign(size, root, head), RejectCode::InvalidArgument, "a registered key claimed by another node"),
        (CheckpointSigner::from_seed(1, [2; 32]).sign(size, root, head), RejectCode::InvalidArgument, "unregistered"),
        (signer.sign(0, root, head), RejectCode::InvalidArgument, "an empty tree"),
        (signer.sign(size + 1, root, head), RejectCode::InvalidArgument, "beyond the ledger"),
    ];
    for (forged, code, what) in cases {
        assert_eq!(refusal(on_cluster(&mut world, Actor::System, checkpoint(forged))), code, "{what}");
    }
    let mut bad_signature = signer.sign(size, root, head);
    bad_signature.signature.0[5] ^= 1;
    assert_eq!(refusal(on_cluster(&mut world, Actor::System, checkpoint(bad_signature))), RejectCode::InvalidArgument);
    let owner = world.owner_actor();
    let by_owner = on_cluster(&mut world, owner, checkpoint(signer.sign(size, root, head)));
    assert_eq!(refusal(by_owner), RejectCode::PermissionDenied);

    accepted(on_cluster(&mut world, Actor::System, checkpoint(signer.sign(size, root, head))));
    let mark = world.state.last_checkpoint().unwrap();
    assert_eq!((mark.tree_size, mark.seq), (size, size + 1));
    let again = on_cluster(&mut world, Actor::System, checkpoint(signer.sign(size, root, head)));
    assert_eq!(refusal(again), RejectCode::Conflict, "not newer");
    let older = on_cluster(&mut world, Actor::System, checkpoint(signer.sign(size - 1, root, head)));
    assert_eq!(refusal(older), RejectCode::Conflict, "older");

    // Both survive a rebuild from the ledger.
    assert_eq!(State::rebuild(&world.ledger), world.state);
}

/// A checkpoint may lag the ledger by at most `MAX_CHECKPOINT_LAG` events, which bounds how
/// far back an offline verifier looks.
#[test]
fn a_checkpoint_too_far_behind_the_ledger_is_refused() {
    let mut world = World::bootstrap(3);
    let signer = CheckpointSigner::from_seed(1, [1; 32]);
    accepted(on_cluster(
        &mut world,
        Actor::System,
        Command::RegisterSigner { node: 1, public_key: signer.public_key() },
    ));
    let early = world.state.head().seq;
    let head = world.state.head().hash;
    let (key, _) = world.create("renamed", keyledger_model::Span::days(30)).unwrap();
    while world.state.head().seq <= early + MAX_CHECKPOINT_LAG {
        let name = Some(format!("n{}", world.state.head().seq));
        let proposal = world.by_owner(Command::UpdateKey { key, name, description: None, if_revision: None });
        // Straight to the state: the world's journal would keep every clone.
        let (outcome, _) = world.state.execute(&proposal);
        assert!(matches!(outcome, Outcome::Accepted { .. }));
    }
    let stale = signer.sign(early, TreeHash([1; 32]), head);
    assert_eq!(refusal(on_cluster(&mut world, Actor::System, Command::Checkpoint(stale))), RejectCode::InvalidArgument);
    let recent = world.state.head().seq - MAX_CHECKPOINT_LAG;
    let fresh = signer.sign(recent, TreeHash([1; 32]), ChainHash([2; 32]));
    accepted(on_cluster(&mut world, Actor::System, Command::Checkpoint(fresh)));
}
