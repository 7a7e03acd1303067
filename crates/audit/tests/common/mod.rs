//! A ledger with every kind of event, shared by the audit tests.

#![allow(dead_code)]

use std::collections::BTreeMap;

use keyledger_model::merkle::{self, MemoryTree};
use keyledger_model::webhook::{AttemptResult, Delivery, DeliveryReport, NewWebhook, WebhookEventType};
use keyledger_model::{
    token, AccountId, Actor, Binding, CheckpointSigner, Command, DenialRecord, KeyDigest, KeyId, LeakAction,
    LedgerEntry, Level, LimitsPatch, NewKey, Outcome, Owner, Proposal, Role, Scope, ServiceAccountId, SettingsPatch,
    Span, State, Timestamp, UseRecord, UserId, WebhookId,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub(crate) const T0: Timestamp = Timestamp(1_750_000_000_000);
pub(crate) const HOUR: i64 = 3_600_000;

/// A state driven through `State::execute`, remembering every entry and every key digest.
pub(crate) struct Driver {
    pub(crate) state: State,
    pub(crate) ledger: Vec<LedgerEntry>,
    pub(crate) digests: Vec<KeyDigest>,
    rng: ChaCha20Rng,
    now: Timestamp,
    requests: u64,
}

impl Driver {
    fn new_key(&mut self, owner: Option<Owner>, scope: Option<Scope>, lifetime: i64) -> NewKey {
        let secret = token::generate(&mut self.rng);
        self.digests.push(secret.digest());
        NewKey {
            id: KeyId::generate(self.now, &mut self.rng),
            owner,
            name: format!("key, \"{}\"", self.requests),
            description: "with \"quotes\", commas, ünïcode".into(),
            scope,
            digest: secret.digest(),
            hint: secret.hint(),
            expires_at: Some(Timestamp(self.now.0 + lifetime)),
        }
    }

    fn run(&mut self, actor: Actor, command: Command) {
        self.run_on(AccountId::default_account(), actor, command);
    }

    fn run_on(&mut self, account: AccountId, actor: Actor, command: Command) {
        self.requests += 1;
        let proposal = Proposal {
            time: self.now,
            request_id: format!("req-{}", self.requests),
            actor,
            account,
            command: command.clone(),
        };
        let (outcome, entries) = self.state.execute(&proposal);
        assert!(matches!(outcome, Outcome::Accepted { .. }), "{command:?} refused: {outcome:?}");
        self.ledger.extend(entries);
        self.now = Timestamp(self.now.0 + 1_234);
    }
}

/// The two nodes that sign checkpoints in the test ledger (the second after a "failover").
pub(crate) fn signers() -> [CheckpointSigner; 2] {
    [CheckpointSigner::from_seed(1, [1; 32]), CheckpointSigner::from_seed(2, [2; 32])]
}

impl Driver {
    pub(crate) fn register(&mut self, signer: &CheckpointSigner) {
        let command = Command::RegisterSigner { node: signer.node(), public_key: signer.public_key() };
        self.run_on(AccountId::cluster(), Actor::System, command);
    }

    /// A checkpoint of everything so far, with the root a node's stored tree would give.
    pub(crate) fn checkpoint(&mut self, signer: &CheckpointSigner) {
        let mut tree = MemoryTree::new();
        for entry in &self.ledger {
            tree.push(merkle::leaf_hash(&entry.event.hash.0));
        }
        let size = self.ledger.len() as u64;
        let root = merkle::root(&tree, size).unwrap();
        let head = self.ledger.last().unwrap().event.hash;
        self.run_on(AccountId::cluster(), Actor::System, Command::Checkpoint(signer.sign(size, root, head)));
    }
}

/// A ledger with at least one event of every type, by users, a service account and the system.
pub(crate) fn every_kind_of_event() -> Driver {
    let mut d = Driver {
        state: State::new(),
        ledger: Vec::new(),
        digests: Vec::new(),
        rng: ChaCha20Rng::seed_from_u64(4),
        now: T0,
        requests: 0,
    };
    let admin = UserId::generate(T0, &mut d.rng);
    let first = d.new_key(None, None, 30 * 24 * HOUR);
    let owner = Actor::User { id: admin, key: first.id };
    d.run(Actor::System, Command::Bootstrap { admin, admin_name: "owner".into(), key: first });
    let [node_1, node_2] = signers();
    d.register(&node_1);
    d.checkpoint(&node_1);

    d.run(owner, Command::CreateNamespace { name: "payments".into() });
    let user = UserId::generate(d.now, &mut d.rng);
    d.run(owner, Command::CreateUser { id: user, name: "dev".into(), role: Role::Developer });
    d.run(owner, Command::SetUserRole { user, role: Role::Read });
    d.run(owner, Command::SetUserNamespace { user, namespace: "payments".into(), level: Some(Level::Write) });
    d.run(owner, Command::SetUserNamespace { user, namespace: "payments".into(), level: None });
    d.run(owner, Command::SetUserEnabled { user, enabled: false });
    d.run(owner, Command::SetUserEnabled { user, enabled: true });
    d.run(owner, Command::DeleteUser(user));

    d.checkpoint(&node_1);

    let sa = ServiceAccountId::generate(d.now, &mut d.rng);
    d.run(
        owner,
        Command::CreateServiceAccount { id: sa, name: "ci".into(), binding: Binding::Account(Role::Developer) },
    );
    let ns_sa = ServiceAccountId::generate(d.now, &mut d.rng);
    let binding = Binding::Namespace { namespace: "payments".into(), level: Level::Read };
    d.run(owner, Command::CreateServiceAccount { id: ns_sa, name: "reader".into(), binding });

    let sa_key = d.new_key(Some(Owner::ServiceAccount(sa)), Some(Scope::Role(Role::Read)), 30 * 24 * HOUR);
    let sa_actor = Actor::ServiceAccount { id: sa, key: sa_key.id };
    d.run(owner, Command::CreateKey(sa_key));
    let scoped = d.new_key(None, Some(Scope::Namespaces(BTreeMap::from([("payments".into(), Level::Write)]))), HOUR);
    let key = scoped.id;
    d.run(owner, Command::CreateKey(scoped));
    d.run(owner, Command::DisableKey(key));
    d.run(owner, Command::EnableKey(key));
    d.run(owner, Command::UpdateKey { key, name: Some("renamed".into()), description: None, if_revision: None });
    d.run(owner, Command::LockKey(key));
    d.run(owner, Command::UnlockKey(key));
    let use_record = UseRecord { key, last_used_at: d.now, count: 42 };
    d.run(Actor::System, Command::RecordUse(vec![use_record]));
    let new = d.new_key(None, None, 30 * 24 * HOUR);
    let replacement = new.id;
    d.run(owner, Command::RotateKey { key, new, grace: Span(HOUR / 2) });
    d.run(owner, Command::DeleteKey(replacement));
    // Node 2 takes over as leader: it registers its own key, then signs.
    d.register(&node_2);
    d.checkpoint(&node_2);
    d.now = Timestamp(d.now.0 + 2 * HOUR);
    d.run(Actor::System, Command::ExpireKeys(vec![key]));

    let denial = DenialRecord {
        actor: sa_actor,
        account: AccountId::default_account(),
        operation: "key.delete".into(),
        target: "key_x".into(),
        reason: "permission_denied".into(),
        count: 3,
    };
    d.run(Actor::System, Command::RecordDenials(vec![denial]));
    d.run(owner, Command::SetServiceAccountEnabled { service_account: sa, enabled: false });
    d.run(owner, Command::SetServiceAccountEnabled { service_account: sa, enabled: true });
    d.run(owner, Command::DeleteServiceAccount(ns_sa));
    let patch =
        SettingsPatch { max_key_lifetime: Some(Span::days(90)), max_keys_per_user: Some(3), ..Default::default() };
    d.run(owner, Command::UpdateSettings(patch));

    // A user enrolls with its second code (the first was voided), and its key is reported leaked.
    let newcomer = UserId::generate(d.now, &mut d.rng);
    let voided = token::generate_enrollment_code(&mut d.rng);
    let code = token::generate_enrollment_code(&mut d.rng);
    d.digests.extend([voided.digest(), code.digest()]);
    let (name, role) = ("newcomer".to_string(), Role::Developer);
    d.run(owner, Command::CreateEnrolledUser { id: newcomer, name, role, code: voided.digest() });
    d.run(owner, Command::IssueEnrollment { user: newcomer, code: code.digest() });
    let own = d.new_key(None, None, 30 * 24 * HOUR);
    let own_digest = own.digest;
    d.run(Actor::System, Command::Enroll { code: code.digest(), key: own });
    let leak_action = Some(LeakAction::Delete);
    d.run(
        owner,
        Command::ChangeSettings {
            patch: SettingsPatch::default(),
            limits: LimitsPatch::default(),
            action_when_leaked: leak_action,
        },
    );
    let source = "https://scanner.example/finding/1, \"quoted\"".to_string();
    d.run(Actor::System, Command::ReportLeak { digest: own_digest, source, reporter: "192.0.2.7".into() });
    let limits = LimitsPatch { max_users: Some(50), max_accounts: Some(20), ..Default::default() };
    d.run(owner, Command::ChangeSettings { patch: SettingsPatch::default(), limits, action_when_leaked: None });
    let granularity = Some(keyledger_model::Span(15 * 60_000));
    let configure = Command::Configure {
        patch: SettingsPatch::default(),
        limits: LimitsPatch::default(),
        action_when_leaked: None,
        last_used_granularity: granularity,
    };
    d.run(owner, configure);
    // A webhook, its secret rotated, a delivery given up on (recorded), the webhook deleted.
    let webhook = WebhookId::generate(d.now, &mut d.rng);
    let new = NewWebhook {
        id: webhook,
        url: "https://hooks.example/k?a=1".into(),
        event_types: vec![WebhookEventType::KeyCreated, WebhookEventType::KeyLeaked],
        description: "ops, \"quoted\"".into(),
        secret_nonce: [3; 16],
    };
    d.run(owner, Command::CreateWebhook(new));
    d.run(owner, Command::RotateWebhookSecret { webhook, secret_nonce: [4; 16] });
    let position = d.state.head().seq;
    let delivery = Delivery {
        position,
        event_type: WebhookEventType::KeyLeaked,
        attempts: 8,
        last: AttemptResult::Timeout,
        at: d.now,
    };
    d.run(Actor::System, Command::RecordWebhookDeliveries(vec![DeliveryReport { webhook, delivery }]));
    d.run(owner, Command::DeleteWebhook(webhook));
    // A key expiring within the warning window is warned of.
    let soon = d.new_key(None, None, 2 * 24 * HOUR);
    let soon_id = soon.id;
    d.run(owner, Command::CreateKey(soon));
    d.run(Actor::System, Command::WarnExpiringKeys(vec![soon_id]));
    let other_owner = UserId::generate(d.now, &mut d.rng);
    let code = token::generate_enrollment_code(&mut d.rng).digest();
    let account = AccountId::new("acme").unwrap();
    d.run(
        owner,
        Command::CreateAccountWithEnrollment { account, owner: other_owner, owner_name: "acme-owner".into(), code },
    );
    // acme's owner redeems its code for its own first key.
    let other_key = d.new_key(None, None, 30 * 24 * HOUR);
    let other_key_id = other_key.id;
    d.run_on(AccountId::new("acme").unwrap(), Actor::System, Command::Enroll { code, key: other_key });
    let acme_owner = Actor::User { id: other_owner, key: other_key_id };
    d.run_on(AccountId::new("acme").unwrap(), acme_owner, Command::CreateNamespace { name: "ops".into() });
    d.checkpoint(&node_2);
    d.run(owner, Command::CreateNamespace { name: "after-the-last-checkpoint".into() });
    d
}
