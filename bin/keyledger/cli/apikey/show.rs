//! How keys are shown to people: tables, a key field by field, and the answers that carry a
//! new secret (create, rotate).

use std::io::{self, Write};
use std::path::Path;

use keyledger_wire::{self as wire, CreatedKey, Key, OwnerKind, RotatedKey};

use crate::cli::table::Table;
use crate::cli::{write_json, write_secret_notice, Output};

/// `apikey create --file --output json`: the key, and where its secret went.
#[derive(serde::Serialize)]
pub(super) struct SecretInFile<'a> {
    pub(super) key: &'a Key,
    pub(super) secret_file: &'a Path,
}

/// `apikey rotate --file --output json`: the new key, the key it replaces, where its secret went.
#[derive(serde::Serialize)]
pub(super) struct RotatedInFile<'a> {
    pub(super) key: &'a Key,
    pub(super) replaces: &'a str,
    pub(super) secret_file: &'a Path,
}

/// The secret (or where it went), then the new key's main fields.
pub(super) fn write_created(out: &mut dyn Write, created: &CreatedKey, file: Option<&Path>) -> io::Result<()> {
    write_secret_notice(out, "API key created.", &created.secret, file)?;
    writeln!(out)?;
    write_summary(out, &created.key, None)
}

/// Like [`write_created`], naming the key the new one replaces.
pub(super) fn write_rotated(out: &mut dyn Write, rotated: &RotatedKey, file: Option<&Path>) -> io::Result<()> {
    let headline = format!("API key {} rotated: the new key is {}.", rotated.replaces, rotated.key.id);
    write_secret_notice(out, &headline, &rotated.secret, file)?;
    writeln!(out)?;
    write_summary(out, &rotated.key, Some(&rotated.replaces))
}

fn write_summary(out: &mut dyn Write, key: &Key, replaces: Option<&str>) -> io::Result<()> {
    let mut table = Table::new();
    table.row(["ID", key.id.as_str()]);
    table.row(["NAME", key.name.as_str()]);
    if let Some(old) = replaces {
        table.row(["REPLACES", old]);
    }
    table.row(["OWNER".to_string(), identity_long(&key.owner)]);
    if let Some(scope) = &key.scope {
        table.row(["SCOPE".to_string(), scope.to_string()]);
    }
    table.row(["EXPIRES", key.expires_at.as_deref().unwrap_or("never")]);
    table.write(out)
}

/// A key as the answer to a change: one table row, or JSON.
pub(super) fn write_key(out: &mut dyn Write, output: Output, key: &Key) -> io::Result<()> {
    match output {
        Output::Json => write_json(out, key),
        Output::Table => write_key_table(out, std::slice::from_ref(key)),
    }
}

/// Keys as an aligned table, one per line.
pub(super) fn write_key_table(out: &mut dyn Write, keys: &[Key]) -> io::Result<()> {
    if keys.is_empty() {
        return writeln!(out, "No keys found.");
    }
    let mut table = Table::with_header(&["ID", "NAME", "STATE", "LOCKED", "HINT", "OWNER", "EXPIRES", "LAST USED"]);
    for key in keys {
        table.row([
            key.id.clone(),
            key.name.clone(),
            key.state.clone(),
            yes_no(key.locked).to_string(),
            hint(&key.hint),
            identity_short(&key.owner),
            key.expires_at.clone().unwrap_or_else(|| "never".into()),
            key.last_used_at.clone().unwrap_or_else(|| "never".into()),
        ]);
    }
    table.write(out)
}

/// One key, field by field.
pub(super) fn write_key_detail(out: &mut dyn Write, key: &Key) -> io::Result<()> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut table = Table::new();
    table.row(["ID".to_string(), key.id.clone()]);
    table.row(["NAME".to_string(), key.name.clone()]);
    table.row(["DESCRIPTION".to_string(), key.description.clone()]);
    table.row(["STATE".to_string(), key.state.clone()]);
    table.row(["LOCKED".to_string(), yes_no(key.locked).to_string()]);
    table.row(["HINT".to_string(), hint(&key.hint)]);
    table.row(["OWNER".to_string(), identity_long(&key.owner)]);
    table.row(["ACCOUNT".to_string(), key.account.clone()]);
    table.row(["NAMESPACE".to_string(), dash(&key.namespace)]);
    table.row(["SCOPE".to_string(), key.scope.as_ref().map_or_else(|| "-".into(), ToString::to_string)]);
    table.row(["CREATED".to_string(), format!("{} by {}", key.created_at, actor(&key.created_by))]);
    table.row(["EXPIRES".to_string(), key.expires_at.clone().unwrap_or_else(|| "never".into())]);
    table.row(["LAST USED".to_string(), key.last_used_at.clone().unwrap_or_else(|| "never".into())]);
    table.row(["REVISION".to_string(), key.revision.to_string()]);
    table.write(out)
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

fn hint(hint: &str) -> String {
    format!("…{hint}")
}

/// `user:alice`, `sa:ci-bot`: compact, for table columns.
fn identity_short(identity: &wire::Identity) -> String {
    match identity.kind {
        OwnerKind::User => format!("user:{}", identity.name),
        OwnerKind::ServiceAccount => format!("sa:{}", identity.name),
    }
}

/// `user alice (usr_1)`, `service account ci-bot (sa_2)`.
pub(crate) fn identity_long(identity: &wire::Identity) -> String {
    let kind = match identity.kind {
        OwnerKind::User => "user",
        OwnerKind::ServiceAccount => "service account",
    };
    format!("{kind} {} ({})", identity.name, identity.id)
}

/// `user usr_1 with key key_2`, `system`.
fn actor(actor: &wire::Actor) -> String {
    let mut text = actor.kind.replace('_', " ");
    if let Some(id) = &actor.id {
        text.push(' ');
        text.push_str(id);
    }
    if let Some(key_id) = &actor.key_id {
        text.push_str(" with key ");
        text.push_str(key_id);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_key() -> Key {
        Key {
            id: "key_01".into(),
            name: "deploy".into(),
            description: "CI deploys".into(),
            owner: wire::Identity { kind: OwnerKind::ServiceAccount, id: "sa_1".into(), name: "ci".into() },
            account: "default".into(),
            namespace: None,
            scope: None,
            state: "enabled".into(),
            locked: false,
            hint: "a1b2".into(),
            created_at: "2025-01-01T00:00:00Z".into(),
            created_by: wire::Actor { kind: "user".into(), id: Some("usr_1".into()), key_id: Some("key_00".into()) },
            expires_at: None,
            last_used_at: Some("2025-02-01T00:00:00Z".into()),
            revision: 7,
        }
    }

    fn render(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn key_table() {
        let text = render(|out| write_key_table(out, &[sample_key()]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID      NAME    STATE    LOCKED  HINT   OWNER  EXPIRES  LAST USED"), "{text}");
        assert!(lines[1].contains("sa:ci"), "{text}");
        assert!(lines[1].contains("…a1b2"), "{text}");
        assert!(lines[1].contains("never"), "{text}");

        assert_eq!(render(|out| write_key_table(out, &[])), "No keys found.\n");
    }

    #[test]
    fn created_key_shows_secret_and_id() {
        let created = CreatedKey { key: sample_key(), secret: "klk_the_secret".into() };
        let text = render(|out| write_created(out, &created, None));
        assert!(text.starts_with("API key created. Its secret, shown this once:\n"), "{text}");
        assert!(text.contains("\n    klk_the_secret\n"), "{text}");
        assert!(text.contains("key_01"), "{text}");

        let text = render(|out| write_created(out, &created, Some(Path::new("/tmp/ci.key"))));
        assert!(!text.contains("klk_the_secret"), "{text}");
        assert!(text.contains("written to /tmp/ci.key (mode 0600)"), "{text}");
    }

    #[test]
    fn rotated_key_shows_secret_and_what_it_replaces() {
        let mut key = sample_key();
        key.id = "key_02".into();
        key.scope = Some(wire::KeyScope::Role("read".into()));
        let rotated = RotatedKey { key, secret: "klk_new_secret".into(), replaces: "key_01".into() };
        let text = render(|out| write_rotated(out, &rotated, None));
        assert!(
            text.starts_with("API key key_01 rotated: the new key is key_02. Its secret, shown this once:\n"),
            "{text}"
        );
        assert!(text.contains("\n    klk_new_secret\n"), "{text}");
        assert!(text.contains("REPLACES  key_01"), "{text}");
        assert!(text.contains("SCOPE     role:read"), "{text}");
    }

    #[test]
    fn detail_names_creator() {
        let text = render(|out| write_key_detail(out, &sample_key()));
        assert!(text.contains("by user usr_1 with key key_00"), "{text}");
        assert!(text.contains("service account ci (sa_1)"), "{text}");
        assert!(text.contains("REVISION     7"), "{text}");
    }
}
