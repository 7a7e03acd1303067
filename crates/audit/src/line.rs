//! An event's JSONL line, read and written straight from and to the text, for the verifier,
//! which reads and rewrites every line of a file.
//!
//! [`write`] writes the bytes of `serde_json::to_writer(&to_export(event))` without building
//! the `AuditEvent` and its dozen owned strings first; `to_export` stays the definition of
//! the form, and the tests (here, and every clean export in `tests/`) hold the two to the same
//! bytes. [`read`] takes the fields of a line laid out exactly as the export
//! writes it, borrowing them from the text; it need not be strict, because the verifier
//! accepts what it read only if the event rewrites to the very same line.
//!
//! A new event type needs nothing here: `data` goes through `to_data` and `from_data`.

use std::fmt::{self, Display, Write as _};

use keyledger_model::{Actor, Event};
use serde_json::Value;

use crate::{data, ExportedRef};

/// The fields of `text` if it is laid out as the export writes a line: the fields in order,
/// no white space, no escapes in any string but inside `data` (which is read into `data`,
/// as serde would); `None` at the first difference.
pub(crate) fn read<'a>(text: &'a str, data: &'a mut Value) -> Option<ExportedRef<'a>> {
    // Everything after `data` has a fixed length: four hashes of 64 digits.
    const TAIL: &str = r#","prev_hash":"","hash":"","account_prev_hash":"","account_hash":""}"#;
    let (head, tail) = text.split_at_checked(text.len().checked_sub(TAIL.len() + 4 * 64)?)?;
    let mut head = Cursor(head);
    let seq = head.number(r#"{"seq":"#)?;
    let time = head.string(r#","time":"#)?;
    let kind = head.string(r#","type":"#)?;
    let account = head.string(r#","account":"#)?;
    let account_seq = head.number(r#","account_seq":"#)?;
    let actor_kind = head.string(r#","actor":{"kind":"#)?;
    let actor_id = head.optional_string(r#","id":"#)?;
    let actor_key_id = head.optional_string(r#","key_id":"#)?;
    let request_id = head.string(r#"},"request_id":"#)?;
    *data = serde_json::from_str(head.0.strip_prefix(r#","data":"#)?).ok()?;
    let mut tail = Cursor(tail);
    let prev_hash = tail.string(r#","prev_hash":"#)?;
    let hash = tail.string(r#","hash":"#)?;
    let account_prev_hash = tail.string(r#","account_prev_hash":"#)?;
    let account_hash = tail.string(r#","account_hash":"#)?;
    (tail.0 == "}").then_some(ExportedRef {
        seq,
        time,
        kind,
        account,
        account_seq,
        actor_kind,
        actor_id,
        actor_key_id,
        request_id,
        data,
        prev_hash,
        hash,
        account_prev_hash,
        account_hash,
    })
}

/// The rest of a line, read field by field: each behind the literal text that must precede it.
struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    fn after(&mut self, literal: &str) -> Option<()> {
        self.0 = self.0.strip_prefix(literal)?;
        Some(())
    }

    fn number(&mut self, literal: &str) -> Option<u64> {
        self.after(literal)?;
        let digits = self.0.bytes().take_while(u8::is_ascii_digit).count();
        let (number, rest) = self.0.split_at(digits);
        self.0 = rest;
        number.parse().ok()
    }

    /// A string without escapes (any other takes the long way, through serde).
    fn string(&mut self, literal: &str) -> Option<&'a str> {
        self.after(literal)?;
        let (text, rest) = self.0.strip_prefix('"')?.split_once('"')?;
        self.0 = rest;
        (!text.contains('\\')).then_some(text)
    }

    fn optional_string(&mut self, literal: &str) -> Option<Option<&'a str>> {
        match self.0.strip_prefix(literal)?.strip_prefix("null") {
            Some(rest) => {
                self.0 = rest;
                Some(None)
            }
            None => self.string(literal).map(Some),
        }
    }
}

/// Appends `event`'s line as the export writes it: the bytes of
/// `serde_json::to_writer(&to_export(event))` (the same fields, in the same order, spelled the
/// same way), written straight from the event.
pub(crate) fn write(event: &Event, out: &mut Vec<u8>) -> serde_json::Result<()> {
    out.extend_from_slice(br#"{"seq":"#);
    serde_json::to_writer(&mut *out, &event.seq)?;
    out.extend_from_slice(br#","time":"#);
    quoted(out, event.time);
    out.extend_from_slice(br#","type":"#);
    quoted(out, event.body.type_name());
    out.extend_from_slice(br#","account":"#);
    serde_json::to_writer(&mut *out, event.account.as_str())?;
    out.extend_from_slice(br#","account_seq":"#);
    serde_json::to_writer(&mut *out, &event.account_seq)?;
    match event.actor {
        Actor::System => out.extend_from_slice(br#","actor":{"kind":"system","id":null,"key_id":null}"#),
        Actor::User { id, key } => {
            out.extend_from_slice(br#","actor":{"kind":"user","id":"#);
            quoted(out, id);
            out.extend_from_slice(br#","key_id":"#);
            quoted(out, key);
            out.push(b'}');
        }
        Actor::ServiceAccount { id, key } => {
            out.extend_from_slice(br#","actor":{"kind":"service_account","id":"#);
            quoted(out, id);
            out.extend_from_slice(br#","key_id":"#);
            quoted(out, key);
            out.push(b'}');
        }
    }
    out.extend_from_slice(br#","request_id":"#);
    serde_json::to_writer(&mut *out, &event.request_id)?;
    out.extend_from_slice(br#","data":"#);
    serde_json::to_writer(&mut *out, &data::to_data(&event.body))?;
    let hashes = [
        (&br#","prev_hash":"#[..], event.prev_hash),
        (br#","hash":"#, event.hash),
        (br#","account_prev_hash":"#, event.account_prev_hash),
        (br#","account_hash":"#, event.account_hash),
    ];
    for (name, hash) in hashes {
        out.extend_from_slice(name);
        out.push(b'"');
        out.extend_from_slice(&hash.hex_digits());
        out.push(b'"');
    }
    out.push(b'}');
    Ok(())
}

/// `value`'s `Display` text as a JSON string, for text that never needs escaping: digits,
/// ids, times, type names (serde_json escapes only quotes, backslashes and control characters).
fn quoted(out: &mut Vec<u8>, value: impl Display) {
    /// Appends text to the line (`io::Write` for a `Vec` would do, but this is lighter).
    struct Append<'a>(&'a mut Vec<u8>);
    impl fmt::Write for Append<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0.extend_from_slice(text.as_bytes());
            Ok(())
        }
    }
    out.push(b'"');
    let start = out.len();
    write!(Append(out), "{value}").expect("appending to a Vec cannot fail");
    debug_assert!(out[start..].iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\'));
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use keyledger_model::{AccountId, ChainHash, EventBody, KeyId, ServiceAccountId, Timestamp, UserId};

    use super::*;
    use crate::to_export;

    fn event(actor: Actor, body: EventBody) -> Event {
        Event {
            seq: 7,
            time: Timestamp(1_750_000_000_123),
            account: AccountId::new("acme-2").unwrap(),
            actor,
            request_id: "req \"quoted\", ünïcode\n".into(),
            body,
            account_seq: 3,
            prev_hash: ChainHash([1; 32]),
            hash: ChainHash([0xab; 32]),
            account_prev_hash: ChainHash::GENESIS,
            account_hash: ChainHash([0xfe; 32]),
        }
    }

    #[test]
    fn writes_the_bytes_of_to_export() {
        let key = KeyId::from_bytes([9; 16]);
        let actors = [
            Actor::System,
            Actor::User { id: UserId::from_bytes([0; 16]), key },
            Actor::ServiceAccount { id: ServiceAccountId::from_bytes([0xff; 16]), key },
        ];
        let bodies = [
            EventBody::KeyDisabled { key },
            EventBody::KeyUsed { key, last_used_at: Timestamp(i64::MAX), count: u64::MAX },
            EventBody::NamespaceCreated { name: "pay\u{1}ments".into() },
        ];
        for actor in actors {
            for body in &bodies {
                let event = event(actor, body.clone());
                let expected = serde_json::to_vec(&to_export(&event)).unwrap();
                let mut written = Vec::new();
                write(&event, &mut written).unwrap();
                let written = String::from_utf8(written).unwrap();
                assert_eq!(written, String::from_utf8(expected).unwrap());
                // `read` takes it back, except a line with an escaped string, which is left to serde.
                let mut data = Value::Null;
                match read(&written, &mut data) {
                    Some(fields) => assert_eq!(fields.to_event().unwrap(), event),
                    None => assert!(written.contains('\\'), "{written}"),
                }
            }
        }
    }
}
