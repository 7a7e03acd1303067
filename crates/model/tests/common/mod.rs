//! Helpers shared by the model's integration tests: a bootstrapped world driven through
//! `State::execute`, key and proposal builders, and the ledger-chain checks.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use keyledger_model::{
    token, AccountId, Actor, Binding, ChainHash, Command, KeyId, LedgerEntry, NewKey, Outcome, Owner, Principal,
    Proposal, RejectCode, Rejection, Role, Scope, SecretToken, ServiceAccountId, SettingsPatch, Span, State, Timestamp,
    UserId,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// 2025-06-15T15:06:40Z: a plausible "now" for the tests.
pub(crate) const T0: Timestamp = Timestamp(1_750_000_000_000);

pub(crate) const HOUR: i64 = 3_600_000;
pub(crate) const DAY: i64 = 24 * HOUR;

pub(crate) fn at(ms: i64) -> Timestamp {
    Timestamp(T0.0 + ms)
}

/// A `NewKey` for a freshly generated secret, and the secret.
pub(crate) fn new_key(
    rng: &mut ChaCha20Rng,
    now: Timestamp,
    name: &str,
    expires_at: Option<Timestamp>,
) -> (NewKey, SecretToken) {
    let secret = token::generate(rng);
    let key = NewKey {
        id: KeyId::generate(now, rng),
        owner: None,
        name: name.to_string(),
        description: String::new(),
        scope: None,
        digest: secret.digest(),
        hint: secret.hint(),
        expires_at,
    };
    (key, secret)
}

/// A bootstrapped state plus everything a test needs to drive it: the owner's identity and
/// first key, the ledger written so far, a deterministic generator and a clock.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub(crate) state: State,
    pub(crate) ledger: Vec<LedgerEntry>,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) now: Timestamp,
    pub(crate) account: AccountId,
    pub(crate) owner: UserId,
    pub(crate) owner_key: KeyId,
    pub(crate) owner_secret: SecretToken,
    /// The proposal that bootstrapped the world, for replays.
    pub(crate) bootstrap: Proposal,
    /// Every proposal executed through `World::execute` (bootstrap first), with its answer.
    pub(crate) journal: Vec<(Proposal, Outcome)>,
    next_request: u64,
}

impl World {
    /// Bootstraps the `default` account at `T0`, with a 30-day owner key.
    pub(crate) fn bootstrap(seed: u64) -> World {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let owner = UserId::generate(T0, &mut rng);
        let (key, owner_secret) = new_key(&mut rng, T0, "bootstrap", Some(at(30 * DAY)));
        let owner_key = key.id;
        let mut world = World {
            state: State::new(),
            ledger: Vec::new(),
            rng,
            now: T0,
            account: AccountId::default_account(),
            owner,
            owner_key,
            owner_secret,
            bootstrap: Proposal {
                time: T0,
                request_id: "bootstrap".to_string(),
                actor: Actor::System,
                account: AccountId::default_account(),
                command: Command::Bootstrap { admin: owner, admin_name: "owner".to_string(), key },
            },
            journal: Vec::new(),
            next_request: 0,
        };
        let proposal = world.bootstrap.clone();
        let (outcome, entries) = world.execute(&proposal);
        assert!(matches!(outcome, Outcome::Accepted { events: 3, .. }), "bootstrap refused: {outcome:?}");
        assert_eq!(entries.len(), 3);
        world
    }

    /// The owner, calling with its bootstrap key.
    pub(crate) fn owner_actor(&self) -> Actor {
        Actor::User { id: self.owner, key: self.owner_key }
    }

    /// A proposal at the world's current time, in its account, with a fresh request id.
    pub(crate) fn proposal(&mut self, actor: Actor, command: Command) -> Proposal {
        self.next_request += 1;
        Proposal {
            time: self.now,
            request_id: format!("req-{}", self.next_request),
            actor,
            account: self.account.clone(),
            command,
        }
    }

    /// The owner's proposal for `command`.
    pub(crate) fn by_owner(&mut self, command: Command) -> Proposal {
        let actor = self.owner_actor();
        self.proposal(actor, command)
    }

    /// Executes `proposal`, appending its entries to the world's ledger. A rejection is
    /// checked to have returned no entries and left the state exactly as it was.
    pub(crate) fn execute(&mut self, proposal: &Proposal) -> (Outcome, Vec<LedgerEntry>) {
        let before = self.state.clone();
        let (outcome, entries) = self.state.execute(proposal);
        match &outcome {
            Outcome::Rejected(_) => {
                assert!(entries.is_empty(), "a rejection returned entries: {entries:?}");
                assert_eq!(self.state, before, "a rejection changed the state");
            }
            Outcome::Accepted { events, head, .. } => {
                assert_eq!(*events as usize, entries.len());
                assert_eq!(*head, self.state.head());
            }
            Outcome::Internal => panic!("execute answered Internal"),
            Outcome::Replayed { .. } => panic!("State::execute never replays: the idempotency table does"),
        }
        self.ledger.extend(entries.iter().cloned());
        self.journal.push((proposal.clone(), outcome.clone()));
        (outcome, entries)
    }

    /// Runs the owner's `command`; `Ok(events written)` or the rejection.
    pub(crate) fn owner_does(&mut self, command: Command) -> Result<usize, Rejection> {
        let proposal = self.by_owner(command);
        match self.execute(&proposal) {
            (Outcome::Accepted { events, .. }, _) => Ok(events as usize),
            (Outcome::Rejected(rejection), _) => Err(rejection),
            (Outcome::Internal | Outcome::Replayed { .. }, _) => unreachable!(),
        }
    }

    /// A key for the owner, proposed with `adjust` applied to the `NewKey`; the new key's id
    /// and secret, or the rejection.
    pub(crate) fn create_with(
        &mut self,
        name: &str,
        expires_at: Option<Timestamp>,
        adjust: impl FnOnce(&mut NewKey),
    ) -> Result<(KeyId, SecretToken), Rejection> {
        let now = self.now;
        let (mut key, secret) = new_key(&mut self.rng, now, name, expires_at);
        adjust(&mut key);
        let id = key.id;
        self.owner_does(Command::CreateKey(key)).map(|_| (id, secret))
    }

    /// A key for the owner expiring `lifetime` from now.
    pub(crate) fn create(&mut self, name: &str, lifetime: Span) -> Result<(KeyId, SecretToken), Rejection> {
        let expires = Timestamp(self.now.0 + lifetime.0);
        self.create_with(name, Some(expires), |_| {})
    }

    /// Moves the clock forward.
    pub(crate) fn advance(&mut self, ms: i64) {
        self.now = Timestamp(self.now.0 + ms);
    }
}

/// Checks the whole ledger: both hashes of every event match its content; the cluster chain
/// is `seq` 1, 2, 3… with each `prev_hash` the previous `hash`; every account's chain is
/// `account_seq` 1, 2, 3… linked the same way.
pub(crate) fn check_chains(ledger: &[LedgerEntry]) {
    let mut prev = ChainHash::GENESIS;
    let mut account_heads: BTreeMap<AccountId, (u64, ChainHash)> = BTreeMap::new();
    for (i, entry) in ledger.iter().enumerate() {
        let event = &entry.event;
        assert!(event.hashes_are_valid(), "event {} has wrong hashes", event.seq);
        assert_eq!(event.seq, i as u64 + 1, "cluster seq has a gap or repeat");
        assert_eq!(event.prev_hash, prev, "event {} is not linked to its predecessor", event.seq);
        prev = event.hash;
        let (account_seq, account_prev) = account_heads.get(&event.account).copied().unwrap_or((0, ChainHash::GENESIS));
        assert_eq!(event.account_seq, account_seq + 1, "account seq has a gap or repeat at seq {}", event.seq);
        assert_eq!(event.account_prev_hash, account_prev, "account chain broken at seq {}", event.seq);
        account_heads.insert(event.account.clone(), (event.account_seq, event.account_hash));
    }
}

// ---------------------------------------------------------------------------------------
// Acting as any identity, and building a cast of identities (shared by the authz, identity
// and key-event tests).
// ---------------------------------------------------------------------------------------

/// The rejection code of a result, panicking on acceptance.
pub(crate) fn rejected<T: std::fmt::Debug>(result: Result<T, Rejection>) -> RejectCode {
    match result {
        Ok(value) => panic!("expected a rejection, got {value:?}"),
        Err(rejection) => rejection.code,
    }
}

/// A parsed permission (`account:read`, `namespace:n:write`, …).
pub(crate) fn perm(text: &str) -> keyledger_model::Permission {
    text.parse().expect("a permission")
}

/// A new account made by `World::new_account`: its id, owner, and the owner's first key.
#[derive(Debug, Clone)]
pub(crate) struct OtherAccount {
    pub(crate) id: AccountId,
    pub(crate) owner: UserId,
    pub(crate) owner_key: KeyId,
    pub(crate) owner_secret: SecretToken,
}

impl World {
    /// The actor presenting key `key` (its owner, with the key), as found in the state.
    pub(crate) fn actor_of(&self, key: KeyId) -> Actor {
        let record = self.state.key(&key).expect("the calling key exists");
        match record.owner {
            Owner::User(id) => Actor::User { id, key },
            Owner::ServiceAccount(id) => Actor::ServiceAccount { id, key },
        }
    }

    /// Executes `proposal` (with the world's checks); `Ok(events written)` or the rejection.
    pub(crate) fn run(&mut self, proposal: &Proposal) -> Result<usize, Rejection> {
        match self.execute(proposal) {
            (Outcome::Accepted { events, .. }, _) => Ok(events as usize),
            (Outcome::Rejected(rejection), _) => Err(rejection),
            (Outcome::Internal | Outcome::Replayed { .. }, _) => unreachable!(),
        }
    }

    /// Runs `command` as the holder of key `key`, in that key's account.
    pub(crate) fn as_key(&mut self, key: KeyId, command: Command) -> Result<usize, Rejection> {
        let actor = self.actor_of(key);
        let account = self.state.key(&key).expect("the calling key exists").account.clone();
        let mut proposal = self.proposal(actor, command);
        proposal.account = account;
        self.run(&proposal)
    }

    /// Runs `command` as the cluster itself, in the world's account.
    pub(crate) fn as_system(&mut self, command: Command) -> Result<usize, Rejection> {
        let proposal = self.proposal(Actor::System, command);
        self.run(&proposal)
    }

    /// The principal behind key `key` now (panics if the key cannot authenticate).
    pub(crate) fn principal_of(&self, key: KeyId) -> Principal {
        self.state.principal(&key, self.now).expect("the key authenticates")
    }

    /// A `NewKey` for `owner` (`None`: the caller), expiring in 30 days, with `scope`.
    pub(crate) fn new_key_for(
        &mut self,
        owner: Option<Owner>,
        name: &str,
        scope: Option<Scope>,
    ) -> (NewKey, SecretToken) {
        let now = self.now;
        let (mut key, secret) = new_key(&mut self.rng, now, name, Some(Timestamp(now.0 + 30 * DAY)));
        key.owner = owner;
        key.scope = scope;
        (key, secret)
    }

    /// Key `by` creates a key for `owner` (`None`: itself) with `scope`, expiring in 30 days.
    pub(crate) fn key_by(
        &mut self,
        by: KeyId,
        owner: Option<Owner>,
        name: &str,
        scope: Option<Scope>,
    ) -> Result<(KeyId, SecretToken), Rejection> {
        let (key, secret) = self.new_key_for(owner, name, scope);
        let id = key.id;
        self.as_key(by, Command::CreateKey(key)).map(|_| (id, secret))
    }

    /// A key for `owner` with `scope` (panics on refusal): the owner creates it for a service
    /// account; a user, whose keys nobody else mints, enrolls with a code the owner issues.
    pub(crate) fn key_for(&mut self, owner: Owner, name: &str, scope: Option<Scope>) -> (KeyId, SecretToken) {
        let by = self.owner_key;
        let result = match owner {
            Owner::User(user) if owner != Owner::User(self.owner) => {
                let code = self.issue_code(by, user).unwrap_or_else(|r| panic!("code for {user} refused: {r}"));
                self.enroll(&code, name, scope)
            }
            _ => self.key_by(by, Some(owner), name, scope),
        };
        result.unwrap_or_else(|r| panic!("key for {owner:?} refused: {r}"))
    }

    /// Key `by` issues a fresh enrollment code for `user`; answers the code.
    pub(crate) fn issue_code(&mut self, by: KeyId, user: UserId) -> Result<SecretToken, Rejection> {
        let code = token::generate_enrollment_code(&mut self.rng);
        self.as_key(by, Command::IssueEnrollment { user, code: code.digest() }).map(|_| code)
    }

    /// Redeems `code` (as the cluster, in the code's user's account) for a key expiring in 30
    /// days with `scope`.
    pub(crate) fn enroll(
        &mut self,
        code: &SecretToken,
        name: &str,
        scope: Option<Scope>,
    ) -> Result<(KeyId, SecretToken), Rejection> {
        let (key, secret) = self.new_key_for(None, name, scope);
        let id = key.id;
        let account = self
            .state
            .enrollment(&code.digest())
            .and_then(|e| self.state.user(&e.user))
            .map_or_else(|| self.account.clone(), |u| u.account.clone());
        let mut proposal = self.proposal(Actor::System, Command::Enroll { code: code.digest(), key });
        proposal.account = account;
        self.run(&proposal).map(|_| (id, secret))
    }

    /// The owner creates namespace `name` (panics on refusal).
    pub(crate) fn new_namespace(&mut self, name: &str) {
        self.owner_does(Command::CreateNamespace { name: name.to_string() })
            .unwrap_or_else(|r| panic!("namespace {name} refused: {r}"));
    }

    /// The owner creates a user with `role` (panics on refusal).
    pub(crate) fn new_user(&mut self, name: &str, role: Role) -> UserId {
        let id = UserId::generate(self.now, &mut self.rng);
        self.owner_does(Command::CreateUser { id, name: name.to_string(), role })
            .unwrap_or_else(|r| panic!("user {name} refused: {r}"));
        id
    }

    /// The owner creates a service account with `binding` (panics on refusal).
    pub(crate) fn new_service_account(&mut self, name: &str, binding: Binding) -> ServiceAccountId {
        let id = ServiceAccountId::generate(self.now, &mut self.rng);
        self.owner_does(Command::CreateServiceAccount { id, name: name.to_string(), binding })
            .unwrap_or_else(|r| panic!("service account {name} refused: {r}"));
        id
    }

    /// The owner changes the account's settings (panics on refusal).
    pub(crate) fn set_settings(&mut self, patch: SettingsPatch) {
        self.owner_does(Command::UpdateSettings(patch)).unwrap_or_else(|r| panic!("settings refused: {r}"));
    }

    /// The owner creates account `name` with its own owner, who enrolls with the code for a
    /// 30-day first key.
    pub(crate) fn new_account(&mut self, name: &str) -> OtherAccount {
        let id = AccountId::new(name).expect("an account name");
        let owner = UserId::generate(self.now, &mut self.rng);
        let code = token::generate_enrollment_code(&mut self.rng);
        let command = Command::CreateAccountWithEnrollment {
            account: id.clone(),
            owner,
            owner_name: format!("{name}-owner"),
            code: code.digest(),
        };
        assert_eq!(self.owner_does(command), Ok(3), "account {name}");
        let (owner_key, owner_secret) =
            self.enroll(&code, "first", None).unwrap_or_else(|r| panic!("acme's owner enrolls: {r}"));
        OtherAccount { id, owner, owner_key, owner_secret }
    }
}

/// A binding of a namespace-scoped service account.
pub(crate) fn in_namespace(namespace: &str, level: keyledger_model::Level) -> Binding {
    Binding::Namespace { namespace: namespace.to_string(), level }
}
