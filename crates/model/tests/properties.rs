//! Property tests: random command sequences, applied with `State::execute`, never break an
//! invariant of the key lifecycle, agree with a small reference model of the rules, rebuild to
//! the same state from the ledger, and produce byte-identical ledgers on every replay.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{check_chains, new_key, World, DAY, HOUR};
use keyledger_model::{
    Actor, Command, EventBody, Invalid, KeyId, KeyState, LedgerEntry, Outcome, Owner, Proposal, RejectCode,
    SecretToken, Span, State, Timestamp, Verdict,
};
use proptest::prelude::*;

const LIMIT: usize = 10;

/// One random step of a session.
#[derive(Debug, Clone)]
struct Move {
    /// How far the clock moves before this step.
    advance_ms: i64,
    /// Which key the owner calls with.
    caller: CallerPick,
    step: Step,
}

#[derive(Debug, Clone)]
enum CallerPick {
    /// One of the owner's keys that are enabled right now, by index (the usual case).
    Live(usize),
    /// Any key, as a [`Target`]: possibly disabled, expired, deleted or never created.
    Any(Target),
}

/// Which key a step is about.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// A key in the state other than the bootstrap key (so the owner rarely locks itself
    /// out), by index; an unknown id if there is none.
    Existing(usize),
    /// Any key ever proposed, by index, including refused creations and the bootstrap key.
    Proposed(usize),
    /// An id nobody ever proposed.
    Unknown,
}

#[derive(Debug, Clone)]
enum Step {
    Create {
        name: String,
        name_ok: bool,
        /// Expiry relative to the proposal's time; `None` = never expires.
        expires_in: Option<i64>,
    },
    /// A create that reuses the id or the secret of a key in the state (by index).
    Reuse {
        of: usize,
        digest: bool,
    },
    Enable(Target),
    Disable(Target),
    Delete(Target),
}

fn name_strategy() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        30 => "[a-z][a-z0-9 _-]{0,30}".prop_map(|n| (n, true)),
        1 => Just((String::new(), false)),
        1 => Just(("  ".to_string(), false)),
        1 => Just(("n".repeat(101), false)),
        1 => Just(("n".repeat(100), true)),
        1 => Just(("bad\u{7}name".to_string(), false)),
    ]
}

fn expiry_strategy() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        3 => (1..=6 * HOUR).prop_map(Some),
        12 => (6 * HOUR..=60 * DAY).prop_map(Some),
        1 => (Span::years(2).0 - HOUR..=Span::years(2).0 + HOUR).prop_map(Some),
        1 => (-DAY..=0i64).prop_map(Some),
        1 => Just(None),
        1 => prop_oneof![Just(0), Just(1), Just(Span::years(2).0), Just(Span::years(2).0 + 1)].prop_map(Some),
    ]
}

fn target_strategy() -> impl Strategy<Value = Target> {
    prop_oneof![
        12 => any::<usize>().prop_map(Target::Existing),
        2 => any::<usize>().prop_map(Target::Proposed),
        1 => Just(Target::Unknown),
    ]
}

fn move_strategy() -> impl Strategy<Value = Move> {
    let advance = prop_oneof![3 => Just(0i64), 3 => 1..=HOUR, 1 => HOUR..=2 * DAY];
    let caller = prop_oneof![
        8 => any::<usize>().prop_map(CallerPick::Live),
        1 => target_strategy().prop_map(CallerPick::Any),
    ];
    let step = prop_oneof![
        8 => (name_strategy(), expiry_strategy())
            .prop_map(|((name, name_ok), expires_in)| Step::Create { name, name_ok, expires_in }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(of, digest)| Step::Reuse { of, digest }),
        2 => target_strategy().prop_map(Step::Enable),
        3 => target_strategy().prop_map(Step::Disable),
        2 => target_strategy().prop_map(Step::Delete),
    ];
    (advance, caller, step).prop_map(|(advance_ms, caller, step)| Move { advance_ms, caller, step })
}

/// What the reference model expects of one proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Accepted { events: u32 },
    Rejected(RejectCode),
}

/// The session so far: the world, every key ever proposed (with its secret) and every
/// proposal made, in order.
struct Session {
    world: World,
    proposed: Vec<(KeyId, SecretToken)>,
    proposals: Vec<Proposal>,
    outcomes: Vec<Outcome>,
    /// Seq of the last event about each key: what its revision must be.
    last_event: BTreeMap<KeyId, u64>,
    deleted: BTreeSet<KeyId>,
}

impl Session {
    fn new(seed: u64) -> Session {
        let world = World::bootstrap(seed);
        let proposed = vec![(world.owner_key, world.owner_secret.clone())];
        let last_event = BTreeMap::from([(world.owner_key, 3)]);
        Session { world, proposed, proposals: Vec::new(), outcomes: Vec::new(), last_event, deleted: BTreeSet::new() }
    }

    fn target(&mut self, target: Target) -> KeyId {
        match target {
            Target::Existing(i) => {
                let others: Vec<KeyId> =
                    self.world.state.keys_after(None).map(|k| k.id).filter(|id| *id != self.world.owner_key).collect();
                match others.get(i % others.len().max(1)) {
                    Some(id) => *id,
                    None => KeyId::generate(self.world.now, &mut self.world.rng),
                }
            }
            Target::Proposed(i) => self.proposed[i % self.proposed.len()].0,
            Target::Unknown => KeyId::generate(self.world.now, &mut self.world.rng),
        }
    }

    fn live_caller(&self, i: usize) -> KeyId {
        let now = self.world.now;
        let live: Vec<KeyId> =
            self.world.state.keys_after(None).filter(|k| k.state_at(now) == KeyState::Enabled).map(|k| k.id).collect();
        if live.is_empty() {
            self.world.owner_key
        } else {
            live[i % live.len()]
        }
    }

    fn live_keys(&self, now: Timestamp) -> usize {
        let owner = Owner::User(self.world.owner);
        self.world
            .state
            .keys_after(None)
            .filter(|k| k.owner == owner && !matches!(k.state_at(now), KeyState::Expired | KeyState::Deleted))
            .count()
    }

    /// Turns a random move into a proposal, and says what the rules expect of it.
    fn propose(&mut self, m: &Move) -> (Proposal, Expected) {
        self.world.advance(m.advance_ms);
        let now = self.world.now;
        let caller = match m.caller {
            CallerPick::Live(i) => self.live_caller(i),
            CallerPick::Any(target) => self.target(target),
        };
        let state = &self.world.state;
        let caller_ok = state.key(&caller).is_some_and(|k| k.state_at(now) == KeyState::Enabled);
        let (command, expected) = match &m.step {
            Step::Create { name, name_ok, expires_in } => {
                let expires_at = expires_in.map(|ms| Timestamp(now.0 + ms));
                let (key, secret) = new_key(&mut self.world.rng, now, name, expires_at);
                self.proposed.push((key.id, secret));
                let expiry_ok = expires_in.is_some_and(|ms| ms > 0 && ms <= Span::years(2).0);
                let expected = if !name_ok || !expiry_ok {
                    Expected::Rejected(RejectCode::InvalidArgument)
                } else if self.live_keys(now) >= LIMIT {
                    Expected::Rejected(RejectCode::LimitExceeded)
                } else {
                    Expected::Accepted { events: 1 }
                };
                (Command::CreateKey(key), expected)
            }
            Step::Reuse { of, digest } => {
                let existing: Vec<(KeyId, keyledger_model::KeyDigest)> =
                    self.world.state.keys_after(None).map(|k| (k.id, k.digest)).collect();
                let (id, old_digest) = existing[of % existing.len()];
                let (mut key, _) = new_key(&mut self.world.rng, now, "reuse", Some(Timestamp(now.0 + DAY)));
                if *digest {
                    key.digest = old_digest;
                } else {
                    key.id = id;
                }
                (Command::CreateKey(key), Expected::Rejected(RejectCode::Conflict))
            }
            Step::Enable(target) | Step::Disable(target) | Step::Delete(target) => {
                let id = self.target(*target);
                let (command, to) = match m.step {
                    Step::Enable(_) => (Command::EnableKey(id), KeyState::Enabled),
                    Step::Disable(_) => (Command::DisableKey(id), KeyState::Disabled),
                    _ => (Command::DeleteKey(id), KeyState::Deleted),
                };
                let expected = match self.world.state.key(&id).map(|k| k.state_at(now)) {
                    None => Expected::Rejected(RejectCode::NotFound),
                    Some(current) if current == to => Expected::Accepted { events: 0 },
                    Some(KeyState::Deleted) => Expected::Rejected(RejectCode::Conflict),
                    Some(KeyState::Expired) if to != KeyState::Deleted => Expected::Rejected(RejectCode::Conflict),
                    Some(_) => Expected::Accepted { events: 1 },
                };
                (command, expected)
            }
        };
        let expected = if caller_ok { expected } else { Expected::Rejected(RejectCode::Unauthenticated) };
        let actor = Actor::User { id: self.world.owner, key: caller };
        (self.world.proposal(actor, command), expected)
    }

    /// Executes one proposal and checks every invariant around it.
    fn step(&mut self, proposal: &Proposal, expected: Expected) -> Result<(), TestCaseError> {
        let before = self.world.state.clone();
        let (outcome, entries) = self.world.state.execute(proposal);
        let after = &self.world.state;
        let now = proposal.time;

        // The answer is the one the rules give.
        let got = match &outcome {
            Outcome::Accepted { events, .. } => Expected::Accepted { events: *events },
            Outcome::Rejected(r) => Expected::Rejected(r.code),
            Outcome::Internal | Outcome::Replayed { .. } => {
                return Err(TestCaseError::fail("execute answered Internal or Replayed"))
            }
        };
        prop_assert_eq!(got, expected, "{:?}", proposal.command);

        // A rejection returns nothing and changes nothing; an acceptance reports what it wrote.
        match &outcome {
            Outcome::Rejected(_) => {
                prop_assert!(entries.is_empty());
                prop_assert_eq!(after, &before);
            }
            Outcome::Accepted { events, head, .. } => {
                prop_assert_eq!(*events as usize, entries.len());
                prop_assert_eq!(*head, after.head());
                if entries.is_empty() {
                    prop_assert_eq!(after, &before, "a no-op changed the state");
                }
            }
            Outcome::Internal | Outcome::Replayed { .. } => unreachable!(),
        }

        // The new events continue the chain and respect the lifecycle.
        let mut prev = before.head();
        for entry in &entries {
            let event = &entry.event;
            prop_assert_eq!(event.seq, prev.seq + 1);
            prop_assert_eq!(event.prev_hash, prev.hash);
            prev = keyledger_model::ChainHead { seq: event.seq, hash: event.hash };
            prop_assert!(event.hashes_are_valid());
            prop_assert_eq!(event.time, now);
            prop_assert_eq!(event.actor, proposal.actor);
            prop_assert_eq!(&event.request_id, &proposal.request_id);
            let Some(key) = event.body.key() else {
                return Err(TestCaseError::fail("a key command wrote a non-key event"));
            };
            prop_assert!(!self.deleted.contains(&key), "an event for deleted key {:?}: {:?}", key, event.body);
            if let Some(old) = before.key(&key) {
                prop_assert!(
                    old.state_at(now) != KeyState::Expired || matches!(event.body, EventBody::KeyDeleted { .. }),
                    "an expired key changed state: {:?}",
                    event.body
                );
            }
            if matches!(event.body, EventBody::KeyDeleted { .. }) {
                self.deleted.insert(key);
            }
            self.last_event.insert(key, event.seq);
        }

        // Per key: no way out of deleted, revisions move forward and equal the last event's seq.
        for record in after.keys_after(None) {
            let previous = before.key(&record.id);
            if let Some(previous) = previous {
                prop_assert!(record.revision >= previous.revision, "revision went back: {:?}", record.id);
                if previous.state == KeyState::Deleted {
                    prop_assert_eq!(record.state, KeyState::Deleted);
                }
            }
            prop_assert_eq!(Some(&record.revision), self.last_event.get(&record.id));
            prop_assert_eq!(record.state == KeyState::Deleted, self.deleted.contains(&record.id));
        }

        // The limit holds, now and at any later time.
        prop_assert!(self.live_keys(now) <= LIMIT, "{} live keys", self.live_keys(now));

        // Verification agrees with the key records now, and around the expiry of each key this
        // step wrote about.
        for (id, secret) in &self.proposed {
            let record = after.key(id);
            let mut times = vec![now];
            // A record's expiry boundaries change only when the record does.
            let touched = entries.iter().any(|e| e.event.body.key() == Some(*id));
            if let Some(expires) = record.and_then(|r| r.expires_at).filter(|at| touched && *at > now) {
                times.extend([Timestamp(expires.0 - 1), expires]);
                let record = record.unwrap();
                prop_assert_eq!(record.state_at(Timestamp(expires.0 - 1)), record.state);
                let at_expiry = match record.state {
                    KeyState::Enabled | KeyState::Disabled => KeyState::Expired,
                    other => other,
                };
                prop_assert_eq!(record.state_at(expires), at_expiry);
            }
            for t in times {
                let verdict = after.verify(secret.expose(), t, None);
                prop_assert!(
                    verdict_matches(record, t, &verdict),
                    "key {:?} ({:?}) at {:?} verified as {:?}",
                    id,
                    record.map(|r| r.state),
                    t,
                    verdict
                );
            }
        }

        self.world.ledger.extend(entries);
        self.proposals.push(proposal.clone());
        self.outcomes.push(outcome);
        Ok(())
    }
}

/// Does `verdict` agree with `record` (the key a secret belongs to, if it exists) at `t`?
fn verdict_matches(record: Option<&keyledger_model::KeyRecord>, t: Timestamp, verdict: &Verdict<'_>) -> bool {
    let Some(record) = record else { return matches!(verdict, Verdict::Invalid(Invalid::NotFound)) };
    match (record.state_at(t), verdict) {
        (KeyState::Enabled, Verdict::Valid(v)) => v.key == record.id,
        (KeyState::Disabled, Verdict::Invalid(Invalid::Disabled))
        | (KeyState::Deleted, Verdict::Invalid(Invalid::Deleted))
        | (KeyState::Expired, Verdict::Invalid(Invalid::Expired)) => true,
        // A disabled key past its expiry may answer either.
        (KeyState::Expired, Verdict::Invalid(Invalid::Disabled)) => record.state == KeyState::Disabled,
        _ => false,
    }
}

fn encode(entries: &[LedgerEntry]) -> Vec<u8> {
    bincode::serde::encode_to_vec(entries, bincode::config::standard()).expect("entries encode")
}

/// Plays `moves` from a fresh bootstrap, checking every step; `after_step` sees the session
/// after each one.
fn play(
    seed: u64,
    moves: &[Move],
    mut after_step: impl FnMut(&Session) -> Result<(), TestCaseError>,
) -> Result<Session, TestCaseError> {
    let mut session = Session::new(seed);
    for m in moves {
        let (proposal, expected) = session.propose(m);
        session.step(&proposal, expected)?;
        after_step(&session)?;
    }
    Ok(session)
}

fn moves_strategy() -> impl Strategy<Value = Vec<Move>> {
    prop::collection::vec(move_strategy(), 1..=60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Limits, lifecycle, revisions, verification and the reference model's answers, checked
    /// around every step (see `Session::step`); the whole chain at the end.
    #[test]
    fn random_sessions_keep_every_invariant(seed in any::<u64>(), moves in moves_strategy()) {
        let session = play(seed, &moves, |_| Ok(()))?;
        let world = &session.world;
        check_chains(&world.ledger);
        prop_assert_eq!(world.state.head().seq, world.ledger.len() as u64);
        prop_assert_eq!(world.state.head().hash, world.ledger.last().unwrap().event.hash);
        prop_assert_eq!(State::rebuild(&world.ledger), world.state.clone());
    }
}

fn save(state: &State) -> Vec<u8> {
    bincode::serde::encode_to_vec(state.to_saved(), bincode::config::standard()).expect("a state encodes")
}

fn load(bytes: &[u8]) -> State {
    let (saved, _): (keyledger_model::saved::SavedState, usize) =
        bincode::serde::decode_from_slice(bytes, bincode::config::standard()).expect("a saved state decodes");
    State::from_saved(saved)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `evolve` over the ledger written so far rebuilds exactly the live state, after every step.
    #[test]
    fn rebuilding_from_the_ledger_gives_the_live_state(seed in any::<u64>(), moves in moves_strategy()) {
        play(seed, &moves, |session| {
            let world = &session.world;
            prop_assert_eq!(&State::rebuild(&world.ledger), &world.state);
            Ok(())
        })?;
    }

    /// A state saved (as bytes) and loaded again is the live state, after every step; and
    /// going on from the loaded one with the rest of the ledger ends at the same state.
    #[test]
    fn a_saved_state_loads_as_the_live_state(seed in any::<u64>(), moves in moves_strategy()) {
        let session = play(seed, &moves, |session| {
            let world = &session.world;
            prop_assert_eq!(&load(&save(&world.state)), &world.state);
            Ok(())
        })?;
        let world = &session.world;
        let half = world.ledger.len() / 2;
        let mut state = load(&save(&State::rebuild(&world.ledger[..half])));
        for entry in &world.ledger[half..] {
            state.evolve(entry);
        }
        prop_assert_eq!(&state, &world.state);
    }

    /// The same proposals executed on two fresh states give the same answers, byte-identical
    /// ledgers and equal states.
    #[test]
    fn the_same_proposals_give_byte_identical_ledgers(seed in any::<u64>(), moves in moves_strategy()) {
        let session = play(seed, &moves, |_| Ok(()))?;
        let original = encode(&session.world.ledger);
        let mut replays = Vec::new();
        for _ in 0..2 {
            let mut state = State::new();
            let (_, mut ledger) = state.execute(&session.world.bootstrap);
            for (proposal, outcome) in session.proposals.iter().zip(&session.outcomes) {
                let (again, entries) = state.execute(proposal);
                prop_assert_eq!(&again, outcome);
                ledger.extend(entries);
            }
            prop_assert_eq!(&encode(&ledger), &original);
            prop_assert_eq!(&state, &session.world.state);
            replays.push(ledger);
        }
        prop_assert_eq!(&replays[0], &replays[1]);
    }
}
