//! The sequential specification of one key, as `domain.md` and `api.md` state it, for the
//! linearizability check.
//!
//! One checked object is one key id. A rotation touches two keys — the old one expires, a new
//! one is created — but every operation on the new key starts after the rotation returned (only
//! then is its id known), so checking the two keys apart loses nothing: the rotation is an
//! operation on the old key, and a `create` spanning the same interval on the new one.
//!
//! Rotations in the harness use no grace period (`grace: "0"`): the old key is expired at once.

use crate::lincheck::Model;

/// The operations the harness applies to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyOp {
    Create,
    Enable,
    Disable,
    /// With a grace period of 0.
    Rotate,
    Delete,
    /// A linearizable verification of the key's secret, no permission asked.
    Verify,
}

/// What an operation answered, as far as the model predicts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRet {
    /// A write was acknowledged (including one that found nothing to change).
    Done,
    /// A write was refused with this error code (`conflict`, `not_found`, ...).
    Refused(String),
    /// `valid: true`.
    Valid,
    /// `valid: false` with this code.
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Absent,
    Enabled,
    Disabled,
    Deleted,
}

/// A key's state as far as these operations can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyState {
    pub status: Status,
    /// Rotated away (with no grace): expired from that moment on.
    pub rotated: bool,
}

/// The model of one key.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyModel;

fn done(next: KeyState) -> Vec<(KeyRet, KeyState)> {
    vec![(KeyRet::Done, next)]
}

fn refused(code: &str, state: KeyState) -> Vec<(KeyRet, KeyState)> {
    vec![(KeyRet::Refused(code.into()), state)]
}

impl Model for KeyModel {
    type State = KeyState;
    type Op = KeyOp;
    type Ret = KeyRet;

    fn init(&self) -> KeyState {
        KeyState { status: Status::Absent, rotated: false }
    }

    fn step(&self, s: &KeyState, op: &KeyOp) -> Vec<(KeyRet, KeyState)> {
        let s = *s;
        let with = |status| KeyState { status, ..s };
        match (s.status, op) {
            (Status::Absent, KeyOp::Create) => done(with(Status::Enabled)),
            // A key is created once; a second create of the same id cannot happen.
            (_, KeyOp::Create) => vec![],
            (Status::Absent, KeyOp::Verify) => vec![(KeyRet::Invalid("not_found".into()), s)],
            (Status::Absent, _) => refused("not_found", s),

            // Enable and disable: a no-op when already there; refused for a deleted or an
            // expired (rotated) key.
            (Status::Deleted, KeyOp::Enable | KeyOp::Disable) => refused("conflict", s),
            (_, KeyOp::Enable | KeyOp::Disable) if s.rotated => refused("conflict", s),
            (_, KeyOp::Enable) => done(with(Status::Enabled)),
            (_, KeyOp::Disable) => done(with(Status::Disabled)),

            // Delete: allowed from every state (a no-op once deleted); final.
            (_, KeyOp::Delete) => done(with(Status::Deleted)),

            // Rotate: refused once deleted or already rotated; a disabled key may be rotated.
            (Status::Deleted, KeyOp::Rotate) => refused("conflict", s),
            (_, KeyOp::Rotate) if s.rotated => refused("conflict", s),
            (_, KeyOp::Rotate) => done(KeyState { rotated: true, ..s }),

            (Status::Deleted, KeyOp::Verify) => vec![(KeyRet::Invalid("deleted".into()), s)],
            (Status::Enabled, KeyOp::Verify) if s.rotated => vec![(KeyRet::Invalid("expired".into()), s)],
            (Status::Enabled, KeyOp::Verify) => vec![(KeyRet::Valid, s)],
            // A disabled key that was rotated away says `disabled` until the cluster's expiry
            // sweep records it as `expired`; either code is right, neither is valid.
            (Status::Disabled, KeyOp::Verify) if s.rotated => {
                vec![(KeyRet::Invalid("disabled".into()), s), (KeyRet::Invalid("expired".into()), s)]
            }
            (Status::Disabled, KeyOp::Verify) => vec![(KeyRet::Invalid("disabled".into()), s)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lincheck::{brute_force, check, Operation, Verdict};
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    type Op = Operation<KeyOp, KeyRet>;

    fn at(op: KeyOp, call: u64, ret: u64, got: KeyRet) -> Op {
        Operation { op, call, ret: Some((ret, got)) }
    }

    fn maybe(op: KeyOp, call: u64) -> Op {
        Operation { op, call, ret: None }
    }

    fn invalid(code: &str) -> KeyRet {
        KeyRet::Invalid(code.into())
    }

    fn linearizable(history: &[Op]) -> bool {
        let verdict = check(&KeyModel, history, 1_000_000);
        assert_eq!(matches!(verdict, Verdict::Linearizable { .. }), brute_force(&KeyModel, history), "{history:?}");
        match verdict {
            Verdict::Linearizable { .. } => true,
            Verdict::NotLinearizable { .. } => false,
            Verdict::GaveUp { .. } => panic!("gave up"),
        }
    }

    fn created() -> Op {
        at(KeyOp::Create, 0, 1, KeyRet::Done)
    }

    #[test]
    fn the_lifecycle_in_order() {
        use KeyOp::*;
        assert!(linearizable(&[
            created(),
            at(Verify, 2, 3, KeyRet::Valid),
            at(Disable, 4, 5, KeyRet::Done),
            at(Verify, 6, 7, invalid("disabled")),
            at(Disable, 8, 9, KeyRet::Done),
            at(Enable, 10, 11, KeyRet::Done),
            at(Verify, 12, 13, KeyRet::Valid),
            at(Rotate, 14, 15, KeyRet::Done),
            at(Verify, 16, 17, invalid("expired")),
            at(Enable, 18, 19, KeyRet::Refused("conflict".into())),
            at(Rotate, 20, 21, KeyRet::Refused("conflict".into())),
            at(Delete, 22, 23, KeyRet::Done),
            at(Verify, 24, 25, invalid("deleted")),
            at(Delete, 26, 27, KeyRet::Done),
            at(Disable, 28, 29, KeyRet::Refused("conflict".into())),
        ]));
    }

    #[test]
    fn valid_after_a_completed_disable_is_caught() {
        use KeyOp::*;
        assert!(!linearizable(&[created(), at(Disable, 2, 3, KeyRet::Done), at(Verify, 4, 5, KeyRet::Valid)]));
        // Overlapping the disable, either answer is fine.
        assert!(linearizable(&[created(), at(Disable, 2, 6, KeyRet::Done), at(Verify, 4, 5, KeyRet::Valid)]));
        assert!(linearizable(&[created(), at(Disable, 2, 6, KeyRet::Done), at(Verify, 4, 5, invalid("disabled"))]));
    }

    #[test]
    fn a_stale_read_is_caught() {
        use KeyOp::*;
        // A verification saw the disable; a later one must not see the key enabled again.
        assert!(!linearizable(&[
            created(),
            at(Disable, 2, 10, KeyRet::Done),
            at(Verify, 3, 4, invalid("disabled")),
            at(Verify, 5, 6, KeyRet::Valid),
        ]));
    }

    #[test]
    fn concurrent_writes_fit_in_one_order() {
        use KeyOp::*;
        // Disable and enable overlap; the reads after both agree on "enable last".
        assert!(linearizable(&[
            created(),
            at(Disable, 2, 6, KeyRet::Done),
            at(Enable, 3, 7, KeyRet::Done),
            at(Verify, 8, 9, KeyRet::Valid),
        ]));
        // Rotate and enable overlap: the enable was refused, so it came after the rotation.
        assert!(linearizable(&[
            created(),
            at(Disable, 2, 3, KeyRet::Done),
            at(Rotate, 4, 8, KeyRet::Done),
            at(Enable, 5, 9, KeyRet::Refused("conflict".into())),
            at(Verify, 10, 11, invalid("disabled")),
        ]));
        // A rotation refused as "already rotated" needs a rotation before it.
        assert!(!linearizable(&[created(), at(Rotate, 2, 3, KeyRet::Refused("conflict".into()))]));
        // Refusals the specification never gives are caught.
        assert!(!linearizable(&[created(), at(Disable, 2, 3, KeyRet::Refused("not_found".into()))]));
    }

    #[test]
    fn maybe_writes() {
        use KeyOp::*;
        // A disable with an unknown outcome may have happened ...
        assert!(linearizable(&[created(), maybe(Disable, 2), at(Verify, 4, 5, invalid("disabled"))]));
        // ... or not ...
        assert!(linearizable(&[created(), maybe(Disable, 2), at(Verify, 4, 5, KeyRet::Valid)]));
        // ... but not before it was sent.
        assert!(!linearizable(&[created(), at(Verify, 2, 3, invalid("disabled")), maybe(Disable, 4)]));
        // A maybe-delete that took effect is final.
        assert!(!linearizable(&[
            created(),
            maybe(Delete, 2),
            at(Verify, 4, 5, invalid("deleted")),
            at(Verify, 6, 7, KeyRet::Valid),
        ]));
    }

    /// Random histories of one key against brute force: the search must agree on every one.
    #[test]
    fn agrees_with_brute_force_on_random_key_histories() {
        use KeyOp::*;
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let ops = [Enable, Disable, Rotate, Delete, Verify, Verify];
        let answers = [
            KeyRet::Done,
            KeyRet::Done,
            KeyRet::Refused("conflict".into()),
            KeyRet::Valid,
            invalid("disabled"),
            invalid("expired"),
            invalid("deleted"),
        ];
        let (mut yes, mut no) = (0, 0);
        for _ in 0..20_000 {
            let n = 1 + rng.next_u32() as usize % 6;
            let mut history = vec![created()];
            for _ in 0..n {
                let op = ops[rng.next_u32() as usize % ops.len()];
                let call = 2 + u64::from(rng.next_u32() % 16);
                let ret = call + u64::from(rng.next_u32() % 8);
                if op != Verify && rng.next_u32() % 5 == 0 {
                    history.push(maybe(op, call));
                } else {
                    history.push(at(op, call, ret, answers[rng.next_u32() as usize % answers.len()].clone()));
                }
            }
            if linearizable(&history) {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(yes > 500 && no > 500, "both kinds were generated: {yes} / {no}");
    }
}
