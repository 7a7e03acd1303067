//! `audit verify` against tampering: clean exports always verify, and every one of 1,200
//! random mutations — a changed field, a deleted, swapped or inserted line, a line cut short —
//! is caught and named by line.
//!
//! What an export alone cannot show, and these mutations therefore leave out: the *last* events
//! of a chain removed whole (a shorter but intact file). Signed checkpoints close that gap.

mod common;

use common::every_kind_of_event;
use keyledger_audit::verify::{verify_jsonl, Expect};
use keyledger_audit::{to_export, ExportedEvent};
use keyledger_model::LedgerEntry;
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

/// The full (operator) export and each account's own export.
fn exports() -> Vec<Vec<String>> {
    let d = every_kind_of_event();
    let all: Vec<&LedgerEntry> = d.ledger.iter().collect();
    let mut exports = vec![lines_of(&all)];
    for account in ["default", "acme"] {
        let mine: Vec<&LedgerEntry> = d.ledger.iter().filter(|e| e.event.account.as_str() == account).collect();
        exports.push(lines_of(&mine));
    }
    exports
}

#[test]
fn clean_exports_verify() {
    for lines in exports() {
        let verified = verify(&file(&lines), Expect::Complete).expect("a clean export verifies");
        assert_eq!(verified.events as usize, lines.len());
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
    let mut event: ExportedEvent = serde_json::from_str(line).unwrap();
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

/// One random mutation of `lines`, or `None` if it would be no change (or an undetectable tail cut).
fn mutate(lines: &[String], rng: &mut ChaCha20Rng) -> Option<String> {
    let n = lines.len();
    let pick = |rng: &mut ChaCha20Rng| (rng.next_u32() as usize) % n;
    let mut out = lines.to_vec();
    match rng.next_u32() % 5 {
        0 => {
            let i = pick(rng);
            out[i] = edit_field(&lines[i], rng);
        }
        1 => {
            // Delete any line but the last: removing whole events from the end is a truncation
            // only a checkpoint can reveal.
            out.remove(pick(rng) % (n - 1));
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

#[test]
fn every_mutation_is_detected() {
    let exports = exports();
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let mut tried = 0;
    while tried < 1200 {
        let lines = &exports[tried % exports.len()];
        let Some(tampered) = mutate(lines, &mut rng) else { continue };
        tried += 1;
        match verify(&tampered, Expect::Complete) {
            Err(failure) => assert!(failure.line >= 1 || failure.reason.contains("no events"), "{failure}"),
            Ok(verified) => panic!("mutation {tried} went unnoticed ({} events):\n{tampered}", verified.events),
        }
    }
}
