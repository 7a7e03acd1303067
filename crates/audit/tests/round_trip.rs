//! Every kind of ledger event survives export and import exactly: `from_export(to_export(e))`
//! is `e`, its hashes still verify, and no export (JSON or CSV) carries a key digest.

mod common;

use std::collections::BTreeSet;

use common::every_kind_of_event;
use keyledger_audit::{from_export, to_csv_row, to_export, CSV_HEADER, TYPE_NAMES};
use keyledger_model::Actor;
use keyledger_wire::AuditEvent;

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
        let read: AuditEvent = serde_json::from_str(&text).unwrap();
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
