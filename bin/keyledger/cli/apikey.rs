//! `keyledger apikey ...`: the key lifecycle commands and how keys are shown.

use std::io::{self, Write};

use anyhow::bail;
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use keyledger_client::{Client, ListKeys};
use keyledger_wire::{self as wire, CreateKeyRequest, CreatedKey, Key, KeyList, OwnerKind, OwnerRef};

use super::table::Table;
use super::{emit, write_json, Output};

/// The server's largest page.
const MAX_PAGE: usize = 1000;

#[derive(Subcommand)]
pub(crate) enum ApikeyCommand {
    /// Create a key; its secret is printed this once and can never be shown again.
    Create(CreateArgs),
    /// List keys, following the server's pages to the end (or to --limit).
    List(ListArgs),
    /// Show one key.
    Get(IdArgs),
    /// Enable a disabled key.
    Enable(IdArgs),
    /// Disable a key: it stops verifying until enabled again.
    Disable(IdArgs),
    /// Delete a key for good.
    Delete(IdArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Name of the key, 1 to 100 characters.
    #[arg(long)]
    name: String,
    /// Free text shown with the key.
    #[arg(long)]
    description: Option<String>,
    /// Lifetime from now, e.g. 30d, 4d12h, 90m, 2y.
    #[arg(long, conflicts_with_all = ["expires_at", "never_expires"])]
    duration: Option<String>,
    /// Expiry as an RFC 3339 time, e.g. 2030-01-31T00:00:00Z.
    #[arg(long, value_name = "TIME", conflicts_with = "never_expires")]
    expires_at: Option<String>,
    /// The key never expires (if the account's settings allow it).
    #[arg(long)]
    never_expires: bool,
    /// Create the key for this user (default: the caller).
    #[arg(long, value_name = "ID", conflicts_with = "service_account_id")]
    user_id: Option<String>,
    /// Create the key for this service account (default: the caller).
    #[arg(long, value_name = "ID")]
    service_account_id: Option<String>,
    /// Write the secret to this new file (mode 0600) instead of printing it.
    #[arg(long, value_name = "PATH")]
    file: Option<std::path::PathBuf>,
}

impl CreateArgs {
    // Request fields the CLI has no flag for keep their defaults.
    #[allow(clippy::needless_update)]
    fn request(&self) -> CreateKeyRequest {
        let owner = match (&self.user_id, &self.service_account_id) {
            (Some(id), _) => Some(OwnerRef { kind: OwnerKind::User, id: id.clone() }),
            (None, Some(id)) => Some(OwnerRef { kind: OwnerKind::ServiceAccount, id: id.clone() }),
            (None, None) => None,
        };
        CreateKeyRequest {
            name: self.name.clone(),
            description: self.description.clone(),
            expires_in: self.duration.clone(),
            expires_at: self.expires_at.clone(),
            never_expires: self.never_expires.then_some(true),
            owner,
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only keys in this state.
    #[arg(long, value_enum)]
    state: Option<KeyState>,
    /// Only keys owned by users, or by service accounts.
    #[arg(long, value_enum)]
    identity_type: Option<IdentityType>,
    /// Only keys owned by this identity (a user or service account id).
    #[arg(long, value_name = "ID")]
    identity_id: Option<String>,
    /// Only keys of this namespace.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Show at most this many keys in all (default: every matching key).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyState {
    Enabled,
    Disabled,
    Expired,
    Deleted,
}

impl KeyState {
    fn as_wire(self) -> &'static str {
        match self {
            KeyState::Enabled => "enabled",
            KeyState::Disabled => "disabled",
            KeyState::Expired => "expired",
            KeyState::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum IdentityType {
    User,
    #[value(alias = "service_account")]
    ServiceAccount,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The key's id.
    #[arg(long)]
    id: String,
}

pub(crate) async fn run(client: &Client, output: Output, command: ApikeyCommand) -> anyhow::Result<()> {
    match command {
        ApikeyCommand::Create(args) => {
            // Refuse an existing path before anything is created on the server.
            if let Some(path) = &args.file {
                if path.exists() {
                    anyhow::bail!("{} already exists; the secret goes only to a new file", path.display());
                }
            }
            let created = client.create_key(&args.request()).await?.value;
            match &args.file {
                None => emit(|out| match output {
                    Output::Json => write_json(out, &created),
                    Output::Table => write_created(out, &created, None),
                })?,
                Some(path) => {
                    super::write_secret_file(path, &created.secret).with_context(|| {
                        format!("the key {} was created, but its secret could not be written", created.key.id)
                    })?;
                    emit(|out| match output {
                        Output::Json => write_json(out, &SecretInFile { key: &created.key, secret_file: path }),
                        Output::Table => write_created(out, &created, Some(path)),
                    })?
                }
            }
        }
        ApikeyCommand::List(args) => {
            let list = list_all(client, &args).await?;
            emit(|out| match output {
                Output::Json => write_json(out, &list),
                Output::Table => write_key_table(out, &list.keys),
            })?;
            if output == Output::Table && list.next_cursor.is_some() {
                eprintln!("(more keys match: raise --limit to see them)");
            }
        }
        ApikeyCommand::Get(args) => {
            let key = client.get_key(&args.id).await?.value;
            emit(|out| match output {
                Output::Json => write_json(out, &key),
                Output::Table => write_key_detail(out, &key),
            })?;
        }
        ApikeyCommand::Enable(args) => {
            let key = client.enable_key(&args.id).await?.value;
            emit(|out| write_key(out, output, &key))?;
        }
        ApikeyCommand::Disable(args) => {
            let key = client.disable_key(&args.id).await?.value;
            emit(|out| write_key(out, output, &key))?;
        }
        ApikeyCommand::Delete(args) => {
            let written = client.delete_key(&args.id).await?;
            emit(|out| match output {
                Output::Json => {
                    write_json(out, &serde_json::json!({"id": args.id, "deleted": true, "index": written.index}))
                }
                Output::Table => writeln!(out, "Deleted key {}.", args.id),
            })?;
        }
    }
    Ok(())
}

/// Fetches pages until the server has no more or `--limit` keys were gathered. The answer's
/// `next_cursor` is where a further listing would go on (set only when cut by `--limit`).
async fn list_all(client: &Client, args: &ListArgs) -> anyhow::Result<KeyList> {
    let wanted = args.limit.map(|n| n as usize);
    let mut query = ListKeys {
        state: args.state.map(|s| s.as_wire().to_string()),
        owner_kind: args.identity_type.map(|kind| match kind {
            IdentityType::User => "user".to_string(),
            IdentityType::ServiceAccount => "service_account".to_string(),
        }),
        owner_id: args.identity_id.clone(),
        namespace: args.namespace.clone(),
        ..ListKeys::default()
    };
    let mut keys: Vec<Key> = Vec::new();
    loop {
        query.limit = wanted.map(|n| n.saturating_sub(keys.len()).clamp(1, MAX_PAGE) as u32);
        let page = client.list_keys(&query).await?;
        keys.extend(page.keys);
        let Some(next) = page.next_cursor else {
            return Ok(KeyList { keys, next_cursor: None });
        };
        if let Some(n) = wanted.filter(|&n| keys.len() >= n) {
            keys.truncate(n);
            return Ok(KeyList { keys, next_cursor: Some(next) });
        }
        if query.cursor.as_deref() == Some(next.as_str()) {
            bail!("the server answered the same page cursor twice; stopping the listing");
        }
        query.cursor = Some(next);
    }
}

/// A key as the answer to enable/disable: one table row, or JSON.
fn write_key(out: &mut dyn Write, output: Output, key: &Key) -> io::Result<()> {
    match output {
        Output::Json => write_json(out, key),
        Output::Table => write_key_table(out, std::slice::from_ref(key)),
    }
}

/// The secret, prominently, then the key's main fields.
/// `apikey create --file --output json`: the key, and where its secret went.
#[derive(serde::Serialize)]
struct SecretInFile<'a> {
    key: &'a Key,
    secret_file: &'a std::path::Path,
}

fn write_created(out: &mut dyn Write, created: &CreatedKey, file: Option<&std::path::Path>) -> io::Result<()> {
    match file {
        None => {
            writeln!(out, "API key created. Its secret, shown this once:")?;
            writeln!(out)?;
            writeln!(out, "    {}", created.secret)?;
            writeln!(out)?;
            writeln!(out, "Store it now: it cannot be shown again.")?;
        }
        Some(path) => writeln!(out, "API key created. Its secret was written to {} (mode 0600).", path.display())?,
    }
    writeln!(out)?;
    let key = &created.key;
    let mut table = Table::new();
    table.row(["ID", key.id.as_str()]);
    table.row(["NAME", key.name.as_str()]);
    table.row(["OWNER".to_string(), identity_long(&key.owner)]);
    table.row(["EXPIRES", key.expires_at.as_deref().unwrap_or("never")]);
    table.write(out)
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
fn write_key_detail(out: &mut dyn Write, key: &Key) -> io::Result<()> {
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
pub(super) fn identity_short(identity: &wire::Identity) -> String {
    match identity.kind {
        OwnerKind::User => format!("user:{}", identity.name),
        OwnerKind::ServiceAccount => format!("sa:{}", identity.name),
    }
}

/// `user alice (usr_1)`, `service account ci-bot (sa_2)`.
pub(super) fn identity_long(identity: &wire::Identity) -> String {
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
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(subcommand)]
        command: ApikeyCommand,
    }

    fn parse(args: &[&str]) -> Result<ApikeyCommand, clap::Error> {
        Harness::try_parse_from(std::iter::once("apikey").chain(args.iter().copied())).map(|h| h.command)
    }

    fn create(args: &[&str]) -> CreateKeyRequest {
        match parse(args).unwrap() {
            ApikeyCommand::Create(create) => create.request(),
            _ => panic!("not a create"),
        }
    }

    pub(crate) fn sample_key() -> Key {
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

    #[test]
    fn create_flags_map_to_the_request() {
        let req = create(&["create", "--name", "n", "--duration", "30d", "--service-account-id", "sa_1"]);
        assert_eq!(req.name, "n");
        assert_eq!(req.expires_in.as_deref(), Some("30d"));
        assert_eq!(req.expires_at, None);
        assert_eq!(req.never_expires, None);
        assert_eq!(req.owner, Some(OwnerRef { kind: OwnerKind::ServiceAccount, id: "sa_1".into() }));

        let req = create(&["create", "--name", "n", "--never-expires", "--user-id", "usr_1", "--description", "d"]);
        assert_eq!(req.never_expires, Some(true));
        assert_eq!(req.description.as_deref(), Some("d"));
        assert_eq!(req.owner, Some(OwnerRef { kind: OwnerKind::User, id: "usr_1".into() }));

        let req = create(&["create", "--name", "n", "--expires-at", "2030-01-01T00:00:00Z"]);
        assert_eq!(req.expires_at.as_deref(), Some("2030-01-01T00:00:00Z"));
        assert_eq!(req.owner, None);
    }

    #[test]
    fn conflicting_flags_are_refused() {
        assert!(parse(&["create", "--name", "n", "--duration", "1d", "--never-expires"]).is_err());
        assert!(parse(&["create", "--name", "n", "--duration", "1d", "--expires-at", "x"]).is_err());
        assert!(parse(&["create", "--name", "n", "--user-id", "u", "--service-account-id", "s"]).is_err());
        assert!(parse(&["create"]).is_err());
        assert!(parse(&["get"]).is_err());
        assert!(parse(&["list", "--limit", "0"]).is_err());
        assert!(parse(&["list", "--identity-type", "robot"]).is_err());
        assert!(parse(&["list", "--identity-type", "service-account", "--state", "expired"]).is_ok());
    }

    #[test]
    fn key_table() {
        let mut out = Vec::new();
        write_key_table(&mut out, &[sample_key()]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID      NAME    STATE    LOCKED  HINT   OWNER  EXPIRES  LAST USED"), "{text}");
        assert!(lines[1].contains("sa:ci"), "{text}");
        assert!(lines[1].contains("…a1b2"), "{text}");
        assert!(lines[1].contains("never"), "{text}");

        let mut out = Vec::new();
        write_key_table(&mut out, &[]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "No keys found.\n");
    }

    #[test]
    fn created_key_shows_secret_and_id() {
        let created = CreatedKey { key: sample_key(), secret: "klk_the_secret".into() };
        let mut out = Vec::new();
        write_created(&mut out, &created, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\n    klk_the_secret\n"), "{text}");
        assert!(text.contains("key_01"), "{text}");
    }

    #[test]
    fn detail_names_creator() {
        let mut out = Vec::new();
        write_key_detail(&mut out, &sample_key()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("by user usr_1 with key key_00"), "{text}");
        assert!(text.contains("service account ci (sa_1)"), "{text}");
        assert!(text.contains("REVISION     7"), "{text}");
    }
}
