//! `audit verify` against tampering: clean exports always verify, and every one of 1,500
//! random mutations — a changed field, a deleted, swapped or inserted line, a line cut short, a
//! forged checkpoint, history rewritten with every hash recomputed — is caught and named by line.
//!
//! What an export alone cannot show, and these mutations therefore leave out: the events after
//! the last checkpoint removed whole (a shorter but intact file); a consistency proof from a
//! checkpoint the auditor kept shows that. And an account's export, which holds only some of the
//! tree's leaves, cannot recompute checkpoint roots: history rewritten with every hash recomputed
//! is tried on the operator's full export, where the roots are recomputed.

mod common;

use common::{every_kind_of_event, signers};
use keyledger_audit::proofs::TrustedKeys;
use keyledger_audit::verify::{verify_export, verify_jsonl, Expect, Options};
use keyledger_audit::{from_export, to_export};
use keyledger_model::{CheckpointSigner, Event, EventBody, LedgerEntry, TreeHash};
use keyledger_wire::AuditEvent;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn lines_of(entries: &[&LedgerEntry]) -> Vec<String> {
    entries.iter().map(|e| serde_json::to_string(&to_export(&e.event)).unwrap()).collect()
}

fn file(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn verify(text: &str, expect: Expect) -> Result<keyledger_audit::verify::Verified, keyledger_audit::verify::Failure> {
    verify_jsonl(text.as_bytes(), expect)
}

/// The keys the auditor fetched from `GET /v1/audit/public-key`.
fn trusted() -> TrustedKeys {
    let keys: Vec<String> = signers().iter().map(|s| s.public_key().to_hex()).collect();
    TrustedKeys::parse(&keys.join(",")).unwrap()
}

/// As the auditor runs it: with the trusted keys, and for the operator's export, `--cluster`.
fn audit(text: &str, export: &Export) -> Result<keyledger_audit::verify::Verified, keyledger_audit::verify::Failure> {
    let options = Options { expect: Expect::Complete, trusted: Some(trusted()), whole_cluster: export.whole_cluster };
    verify_export(text.as_bytes(), &options)
}

struct Export {
    lines: Vec<String>,
    whole_cluster: bool,
}

/// The full (operator) export, and each account's own export (its events and the cluster
/// chain's signers and checkpoints).
fn exports() -> Vec<Export> {
    let d = every_kind_of_event();
    let all: Vec<&LedgerEntry> = d.ledger.iter().collect();
    let mut exports = vec![Export { lines: lines_of(&all), whole_cluster: true }];
    for account in ["default", "acme"] {
        let mine: Vec<&LedgerEntry> =
            d.ledger.iter().filter(|e| e.event.account.as_str() == account || e.event.account.is_cluster()).collect();
        exports.push(Export { lines: lines_of(&mine), whole_cluster: false });
    }
    exports
}

#[test]
fn clean_exports_verify() {
    // Roots are recomputed while the file holds every event from seq 1: in the full export
    // always, in `default`'s until `acme`'s first event, in `acme`'s never.
    for (export, roots) in exports().iter().zip([4, 3, 0]) {
        let lines = &export.lines;
        let verified = audit(&file(lines), export).expect("a clean export verifies");
        assert_eq!(verified.events as usize, lines.len());
        assert_eq!(verified.checkpoints, 4, "every checkpoint's signature is checked");
        assert_eq!(verified.roots_checked, roots, "roots recomputed");
        verify(&file(lines), Expect::Complete).expect("and without keys, signatures are checked alone");
        // A suffix (an export cut by time) verifies as partial, anchored at its first event,
        // and is refused as complete.
        let suffix = &lines[lines.len() / 2..];
        verify(&file(suffix), Expect::Partial).expect("a suffix verifies as partial");
        assert!(verify(&file(suffix), Expect::Complete).is_err());
    }
}

/// Changes one field of the line's event, keeping the file in canonical JSON so only the
/// chain and hash checks can catch it.
fn edit_field(line: &str, rng: &mut ChaCha20Rng) -> String {
    let mut event: AuditEvent = serde_json::from_str(line).unwrap();
    let flip_hex = |hex: &mut String, at: usize| {
        let mut chars: Vec<char> = hex.chars().collect();
        let i = at % chars.len();
        chars[i] = if chars[i] == '0' { '1' } else { '0' };
        *hex = chars.into_iter().collect();
    };
    let at = rng.next_u32() as usize;
    match rng.next_u32() % 10 {
        0 => event.seq += 1,
        1 => event.account_seq = event.account_seq.wrapping_sub(1),
        2 => event.time = event.time.replacen(".", ".9", 1).replacen(".9", ".", 1).replace("Z", "") + "9Z",
        3 => event.request_id.push('x'),
        4 => event.kind = if event.kind == "created" { "deleted".into() } else { "created".into() },
        5 => flip_hex(&mut event.prev_hash, at),
        6 => flip_hex(&mut event.hash, at),
        7 => flip_hex(&mut event.account_hash, at),
        8 => event.actor.key_id = Some("key_0000000000000000000000".into()),
        _ => {
            // A leaf of `data`: a string gets a character more, a number one more, a bool flips.
            let object = event.data.as_object_mut().unwrap();
            let names: Vec<String> = object.keys().cloned().collect();
            if names.is_empty() {
                event.request_id.push('y');
            } else {
                match object.get_mut(&names[at % names.len()]).unwrap() {
                    serde_json::Value::String(s) => s.push('z'),
                    serde_json::Value::Number(n) => *n = (n.as_u64().unwrap_or(0) + 1).into(),
                    serde_json::Value::Bool(b) => *b = !*b,
                    other => *other = serde_json::Value::String("forged".into()),
                }
            }
        }
    }
    serde_json::to_string(&event).unwrap()
}

/// Lines that may be deleted and must be missed: not the file's last line, and in an account's
/// export not the newest event of a chain either (removing an account's newest events is a
/// truncation only an inclusion proof or the full export shows).
fn deletable(lines: &[String], whole_cluster: bool) -> Vec<usize> {
    let account = |line: &String| serde_json::from_str::<AuditEvent>(line).unwrap().account;
    (0..lines.len() - 1)
        .filter(|&i| whole_cluster || lines[i + 1..].iter().any(|later| account(later) == account(&lines[i])))
        .collect()
}

/// One random mutation of `lines`, or `None` if it would be no change (or an undetectable tail cut).
fn mutate(lines: &[String], whole_cluster: bool, rng: &mut ChaCha20Rng) -> Option<String> {
    let n = lines.len();
    let pick = |rng: &mut ChaCha20Rng| (rng.next_u32() as usize) % n;
    let mut out = lines.to_vec();
    match rng.next_u32() % 5 {
        0 => {
            let i = pick(rng);
            out[i] = edit_field(&lines[i], rng);
        }
        1 => {
            let candidates = deletable(lines, whole_cluster);
            out.remove(candidates[pick(rng) % candidates.len()]);
        }
        2 => {
            let (i, j) = (pick(rng), pick(rng));
            out.swap(i, j);
        }
        3 => {
            let (from, to) = (pick(rng), pick(rng));
            let copy =
                if rng.next_u32().is_multiple_of(2) { lines[from].clone() } else { edit_field(&lines[from], rng) };
            out.insert(to, copy);
        }
        _ => {
            let text = file(lines);
            let last_start = text[..text.len() - 1].rfind('\n').map_or(0, |i| i + 1);
            let cut = last_start + 1 + (rng.next_u32() as usize) % (text.len() - 2 - last_start);
            return Some(text[..cut].to_string());
        }
    }
    (out != lines).then(|| file(&out))
}

/// The events of an export's lines.
fn events_of(lines: &[String]) -> Vec<Event> {
    lines.iter().map(|l| from_export(&serde_json::from_str::<AuditEvent>(l).unwrap()).unwrap()).collect()
}

/// What a forger with write access to the file does after changing events: recompute every
/// hash after them, on both chains, so every line is again self-consistent and linked.
fn rechain(events: &mut [Event], from: usize) {
    for i in from..events.len() {
        let (before, rest) = events.split_at_mut(i);
        let event = &mut rest[0];
        if let Some(prev) = before.iter().rev().find(|e| e.seq + 1 == event.seq) {
            event.prev_hash = prev.hash;
        }
        if let Some(prev) = before.iter().rev().find(|e| e.account == event.account) {
            event.account_prev_hash = prev.account_hash;
        }
        (event.hash, event.account_hash) = event.compute_hashes();
    }
}

fn lines_of_events(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| serde_json::to_string(&to_export(e)).unwrap()).collect()
}

/// The smarter forgeries: they leave every line canonical and every chain linked.
fn forge(export: &Export, rng: &mut ChaCha20Rng) -> Option<String> {
    let mut events = events_of(&export.lines);
    let checkpoints: Vec<usize> =
        (0..events.len()).filter(|&i| matches!(events[i].body, EventBody::Checkpoint(_))).collect();
    let forger = CheckpointSigner::from_seed(9, [9; 32]);
    match rng.next_u32() % 3 {
        // A checkpoint over a root the forger likes, signed with the forger's own key.
        0 => {
            let i = checkpoints[rng.next_u32() as usize % checkpoints.len()];
            let EventBody::Checkpoint(original) = events[i].body else { unreachable!() };
            let mut root = original.root;
            root.0[rng.next_u32() as usize % 32] ^= 1;
            let forged =
                CheckpointSigner::from_seed(original.signer, [9; 32]).sign(original.tree_size, root, original.head);
            events[i].body = EventBody::Checkpoint(forged);
            rechain(&mut events, i);
        }
        // History rewritten before a checkpoint, every hash recomputed (the operator's export).
        1 if export.whole_cluster => {
            let last_checkpoint = *checkpoints.last().unwrap();
            let i = rng.next_u32() as usize % last_checkpoint;
            let before = events[i].clone();
            match &mut events[i].body {
                EventBody::Checkpoint(c) => c.tree_size += 1,
                _ => events[i].request_id.push_str("-rewritten"),
            }
            if events[i] == before {
                return None;
            }
            rechain(&mut events, i);
        }
        // A trusted signer's key used to sign a false root (a compromised node): the roots
        // recomputed from the events give it away (the operator's export).
        2 if export.whole_cluster => {
            let i = checkpoints[rng.next_u32() as usize % checkpoints.len()];
            let EventBody::Checkpoint(original) = events[i].body else { unreachable!() };
            let signer = signers().into_iter().find(|s| s.public_key() == original.public_key).unwrap();
            let false_root = TreeHash([rng.next_u32() as u8; 32]);
            events[i].body = EventBody::Checkpoint(signer.sign(original.tree_size, false_root, original.head));
            rechain(&mut events, i);
        }
        // An unregistered but trusted-looking claim: the forger's checkpoint with its own node.
        _ => {
            let i = checkpoints[rng.next_u32() as usize % checkpoints.len()];
            let EventBody::Checkpoint(original) = events[i].body else { unreachable!() };
            events[i].body = EventBody::Checkpoint(forger.sign(original.tree_size, original.root, original.head));
            rechain(&mut events, i);
        }
    }
    Some(file(&lines_of_events(&events)))
}

#[test]
fn every_mutation_is_detected() {
    let exports = exports();
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let mut tried = 0;
    let mut forged = 0;
    while tried < 1500 {
        let export = &exports[tried % exports.len()];
        let forgery = rng.next_u32() % 4 == 0;
        let tampered =
            if forgery { forge(export, &mut rng) } else { mutate(&export.lines, export.whole_cluster, &mut rng) };
        let Some(tampered) = tampered else { continue };
        tried += 1;
        forged += u32::from(forgery);
        match audit(&tampered, export) {
            Err(failure) => assert!(failure.line >= 1 || failure.reason.contains("no events"), "{failure}"),
            Ok(verified) => panic!("mutation {tried} went unnoticed ({} events):\n{tampered}", verified.events),
        }
    }
    assert!(forged >= 100, "forgeries were tried ({forged})");
}

/// Without `--public-key`, a checkpoint is checked against the key it names; the operator's
/// export still recomputes every root, so a forged root fails anyway.
#[test]
fn without_trusted_keys_roots_still_give_a_forgery_away() {
    let export = &exports()[0];
    let mut events = events_of(&export.lines);
    let i = events.iter().position(|e| matches!(e.body, EventBody::Checkpoint(_))).unwrap();
    let EventBody::Checkpoint(original) = events[i].body else { unreachable!() };
    let forger = CheckpointSigner::from_seed(original.signer, [7; 32]);
    events[i].body = EventBody::Checkpoint(forger.sign(original.tree_size, TreeHash([1; 32]), original.head));
    rechain(&mut events, i);
    let options = Options { expect: Expect::Complete, trusted: None, whole_cluster: true };
    let failure = verify_export(file(&lines_of_events(&events)).as_bytes(), &options).unwrap_err();
    assert_eq!(failure.line, i as u64 + 1, "{failure}");

    // And a key nobody trusts is named as such.
    let untrusted = TrustedKeys::parse(&CheckpointSigner::from_seed(1, [5; 32]).public_key().to_hex()).unwrap();
    let options = Options { expect: Expect::Complete, trusted: Some(untrusted), whole_cluster: true };
    let failure = verify_export(file(&export.lines).as_bytes(), &options).unwrap_err();
    assert!(failure.reason.contains("not among the trusted public keys"), "{failure}");
}
