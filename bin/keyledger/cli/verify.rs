//! `keyledger verify`: asks a node whether a key is valid.

use std::io::{self, IsTerminal, Read, Write};

use anyhow::{bail, Context};
use clap::Args;
use keyledger_client::Client;
use keyledger_wire::{VerifyAsOfRequest, VerifyRequest, VerifyResponse};

use super::apikey::identity_long;
use super::table::Table;
use super::{emit, write_json, Outcome, Output, Secret};

/// More than any key; a bigger stdin is not a key.
const MAX_STDIN: u64 = 64 * 1024;

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The key to check (default: read from standard input).
    #[arg(long, value_name = "KEY")]
    key: Option<Secret>,
    /// Also check that the key grants this permission, e.g. namespace:payments:write.
    #[arg(long, value_name = "P")]
    permission: Option<String>,
    /// Answer only once the node has applied this ledger index (read your own writes).
    #[arg(long, value_name = "INDEX", conflicts_with = "at")]
    min_index: Option<u64>,
    /// Ask about a past moment (RFC 3339): would the key have verified then, and which event
    /// decided it? Owners and admins; needs --api-key.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// With --at: the key by its id instead of its secret.
    #[arg(long, value_name = "ID", requires = "at", conflicts_with = "key")]
    key_id: Option<String>,
    /// With --at: the key whose name is exactly NAME (not deleted), instead of its secret.
    #[arg(long, value_name = "NAME", requires = "at", conflicts_with_all = ["key", "key_id"])]
    key_name: Option<String>,
}

pub(crate) async fn run(client: &Client, output: Output, args: VerifyArgs) -> anyhow::Result<Outcome> {
    if let Some(at) = &args.at {
        return as_of(client, output, &args, at).await;
    }
    let key = match &args.key {
        Some(key) => key.expose().trim().to_string(),
        None => read_key_from_stdin()?,
    };
    let request = VerifyRequest { key, permission: args.permission.clone(), min_index: args.min_index };
    let answer = client.verify(&request).await?;
    emit(|out| match output {
        Output::Json => write_json(out, &answer),
        Output::Table => write_answer(out, &answer),
    })?;
    Ok(if answer.valid { Outcome::Success } else { Outcome::Invalid })
}

/// `verify --at`: the verdict at a past moment and the event that decided it.
async fn as_of(client: &Client, output: Output, args: &VerifyArgs, at: &str) -> anyhow::Result<Outcome> {
    let key_id = match (&args.key_id, &args.key_name) {
        (None, Some(name)) => Some(super::apikey::select::resolve(client, None, Some(name)).await?.0),
        (id, _) => id.clone(),
    };
    let key = match (&key_id, &args.key) {
        (Some(_), _) => None,
        (None, Some(key)) => Some(key.expose().trim().to_string()),
        (None, None) => Some(read_key_from_stdin()?),
    };
    let request = VerifyAsOfRequest { key, key_id, at: at.to_string(), permission: args.permission.clone() };
    let answer = client.verify_as_of(&request).await?;
    emit(|out| match output {
        Output::Json => write_json(out, &answer),
        Output::Table => {
            writeln!(out, "as of {}:", answer.at)?;
            write_answer(out, &answer.verdict)?;
            match &answer.decided_by {
                Some(event) => writeln!(
                    out,
                    "decided by event {} ({}) at {}, by {} {} with key {}",
                    event.seq,
                    event.kind,
                    event.time,
                    event.actor.kind,
                    event.actor.id.as_deref().unwrap_or("-"),
                    event.actor.key_id.as_deref().unwrap_or("-")
                ),
                None => writeln!(out, "no event: the key did not exist yet"),
            }
        }
    })?;
    Ok(if answer.verdict.valid { Outcome::Success } else { Outcome::Invalid })
}

fn read_key_from_stdin() -> anyhow::Result<String> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        eprintln!("Reading the key from standard input (end with Ctrl-D)...");
    }
    let mut text = String::new();
    stdin.lock().take(MAX_STDIN).read_to_string(&mut text).context("cannot read the key from standard input")?;
    let key = text.trim();
    if key.is_empty() {
        bail!("no key given: pass --key or write the key to standard input");
    }
    Ok(key.to_string())
}

/// What a code of a `valid: false` answer means.
fn reason(code: &str) -> &'static str {
    match code {
        "malformed" => "this is not a keyledger key",
        "not_found" => "no such key",
        "disabled" => "the key is disabled",
        "expired" => "the key has expired",
        "deleted" => "the key was deleted",
        "identity_disabled" => "the key's owner is disabled",
        "forbidden" => "the key does not grant this permission",
        _ => "the key is not valid",
    }
}

fn write_answer(out: &mut dyn Write, answer: &VerifyResponse) -> io::Result<()> {
    if answer.valid {
        writeln!(out, "valid")?;
    } else {
        let code = answer.code.as_deref().unwrap_or("unknown");
        writeln!(out, "invalid: {} ({code})", reason(code))?;
    }
    let mut table = Table::new();
    if let Some(key_id) = &answer.key_id {
        table.row(["KEY ID", key_id.as_str()]);
    }
    if let Some(identity) = &answer.identity {
        table.row(["IDENTITY".to_string(), identity_long(identity)]);
    }
    if let Some(account) = &answer.account {
        table.row(["ACCOUNT", account.as_str()]);
    }
    if let Some(permissions) = &answer.permissions {
        let shown = if permissions.is_empty() { "-".to_string() } else { permissions.join(", ") };
        table.row(["PERMISSIONS".to_string(), shown]);
    }
    // A valid answer always speaks of expiry; its JSON `null` ("never") arrives as `None`.
    if answer.valid {
        let expires_at = answer.expires_at.clone().flatten();
        table.row(["EXPIRES", expires_at.as_deref().unwrap_or("never")]);
    }
    table.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyledger_wire::{Identity, OwnerKind};

    fn render(answer: &VerifyResponse) -> String {
        let mut out = Vec::new();
        write_answer(&mut out, answer).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn valid_answer() {
        let answer = VerifyResponse {
            valid: true,
            key_id: Some("key_1".into()),
            identity: Some(Identity { kind: OwnerKind::User, id: "usr_1".into(), name: "admin".into() }),
            account: Some("default".into()),
            permissions: Some(vec!["a".into(), "b".into()]),
            expires_at: Some(None),
            ..VerifyResponse::default()
        };
        let text = render(&answer);
        assert!(text.starts_with("valid\n"), "{text}");
        assert!(text.contains("PERMISSIONS  a, b"), "{text}");
        assert!(text.contains("EXPIRES      never"), "{text}");
        assert!(text.contains("user admin (usr_1)"), "{text}");
    }

    #[test]
    fn invalid_answer() {
        let answer = VerifyResponse { valid: false, code: Some("disabled".into()), ..VerifyResponse::default() };
        assert_eq!(render(&answer), "invalid: the key is disabled (disabled)\n");
    }
}
