//! Every kind of ledger event survives export and import exactly: `from_export(to_export(e))`
//! is `e`, its hashes still verify, and no export (JSON or CSV) carries a key digest.

use std::collections::{BTreeMap, BTreeSet};

use keyledger_audit::{from_export, to_csv_row, to_export, ExportedEvent, CSV_HEADER, TYPE_NAMES};
use keyledger_model::{
    token, AccountId, Actor, Binding, Command, DenialRecord, KeyDigest, KeyId, LedgerEntry, Level, NewKey, Outcome,
    Owner, Proposal, Role, Scope, ServiceAccountId, SettingsPatch, Span, State, Timestamp, UseRecord, UserId,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const T0: Timestamp = Timestamp(1_750_000_000_000);
const HOUR: i64 = 3_600_000;

/// A state driven through `State::execute`, remembering every entry and every key digest.
struct Driver {
    state: State,
    ledger: Vec<LedgerEntry>,
    digests: Vec<KeyDigest>,
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
        self.requests += 1;
        let proposal = Proposal {
            time: self.now,
            request_id: format!("req-{}", self.requests),
            actor,
            account: AccountId::default_account(),
            command: command.clone(),
        };
        let (outcome, entries) = self.state.execute(&proposal);
        assert!(matches!(outcome, Outcome::Accepted { .. }), "{command:?} refused: {outcome:?}");
        self.ledger.extend(entries);
        self.now = Timestamp(self.now.0 + 1_234);
    }
}

/// A ledger with at least one event of every type, by users, a service account and the system.
fn every_kind_of_event() -> Driver {
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

    d.run(owner, Command::CreateNamespace { name: "payments".into() });
    let user = UserId::generate(d.now, &mut d.rng);
    d.run(owner, Command::CreateUser { id: user, name: "dev".into(), role: Role::Developer });
    d.run(owner, Command::SetUserRole { user, role: Role::Read });
    d.run(owner, Command::SetUserNamespace { user, namespace: "payments".into(), level: Some(Level::Write) });
    d.run(owner, Command::SetUserNamespace { user, namespace: "payments".into(), level: None });
    d.run(owner, Command::SetUserEnabled { user, enabled: false });
    d.run(owner, Command::SetUserEnabled { user, enabled: true });
    d.run(owner, Command::DeleteUser(user));

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
    let other_owner = UserId::generate(d.now, &mut d.rng);
    let other_key = d.new_key(None, None, 30 * 24 * HOUR);
    let account = AccountId::new("acme").unwrap();
    d.run(
        owner,
        Command::CreateAccount { account, owner: other_owner, owner_name: "acme-owner".into(), key: other_key },
    );
    d
}

#[test]
fn every_event_type_round_trips_exactly() {
    let d = every_kind_of_event();
    let types: BTreeSet<&str> = d.ledger.iter().map(|e| e.event.body.type_name()).collect();
    let all: BTreeSet<&str> = TYPE_NAMES.iter().copied().collect();
    assert_eq!(types, all, "the test ledger has every event type, and TYPE_NAMES lists them all");
    assert!(d.ledger.iter().any(|e| matches!(e.event.actor, Actor::ServiceAccount { .. })));

    for entry in &d.ledger {
        let event = &entry.event;
        let exported = to_export(event);
        assert_eq!(exported.kind, event.body.type_name());
        assert_eq!(exported.time, event.time.to_string());
        assert!(exported.data.is_object());
        // Through JSON text and back, as an offline verifier would read it.
        let text = serde_json::to_string(&exported).unwrap();
        let read: ExportedEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(read, exported);
        let back = from_export(&read).unwrap_or_else(|e| panic!("seq {}: {e}", event.seq));
        assert_eq!(&back, event, "seq {} ({})", event.seq, exported.kind);
        assert_eq!(back.content_bytes(), event.content_bytes());
        assert!(back.hashes_are_valid(), "seq {}", event.seq);
    }
}

#[test]
fn exports_carry_no_digest() {
    let d = every_kind_of_event();
    assert!(d.digests.len() >= 5);
    let mut json = String::new();
    let mut csv = String::from(CSV_HEADER);
    for entry in &d.ledger {
        let exported = to_export(&entry.event);
        json.push_str(&serde_json::to_string(&exported).unwrap());
        csv.push_str(&to_csv_row(&exported));
    }
    for digest in &d.digests {
        let hex: String = digest.0.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!json.contains(&hex), "a digest is in the JSON export");
        assert!(!csv.contains(&hex), "a digest is in the CSV export");
        // The commitment, which the chain covers, is there instead.
        let commitment: String = digest.commitment().iter().map(|b| format!("{b:02x}")).collect();
        assert!(json.contains(&commitment));
    }
    assert!(!json.contains("klk_"), "a secret is in the export");
}

#[test]
fn a_changed_field_no_longer_verifies() {
    let d = every_kind_of_event();
    let created = d.ledger.iter().find(|e| e.event.body.type_name() == "created").unwrap();
    let mut exported = to_export(&created.event);
    exported.data["name"] = "forged".into();
    let forged = from_export(&exported).unwrap();
    assert!(!forged.hashes_are_valid());
    exported.data["hint"] = 7.into();
    let err = from_export(&exported).unwrap_err();
    assert_eq!(err.field, "data.hint");
}

#[test]
fn csv_rows_have_every_column() {
    let d = every_kind_of_event();
    let first = to_export(&d.ledger[0].event);
    let row = to_csv_row(&first);
    assert!(row.starts_with(&format!("1,{},account_created,default,1,system,,,req-1,\"{{", first.time)), "{row}");
    assert!(row.ends_with(&first.account_hash));
    assert_eq!(CSV_HEADER.split(',').count(), 14);
}
