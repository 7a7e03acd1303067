//! `keyledger apikey ...`: the key lifecycle commands. How keys are shown is in `show`.

mod batch;
pub(crate) mod select;
mod show;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::bail;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use keyledger_client::{Client, ListKeys};
use keyledger_wire::{
    CreateKeyRequest, Key, KeyList, KeyScope, OwnerKind, OwnerRef, RotateKeyRequest, UpdateKeyRequest,
};

use super::confirm::{confirm, YesArgs};
use super::examples;
use super::{deleted_json, emit, write_json, Output, SecretFile};
use select::KeyArgs;
pub(crate) use show::identity_long;
use show::{write_created, write_key, write_key_detail, write_key_table, write_rotated, RotatedInFile, SecretInFile};

/// The server's largest page.
const MAX_PAGE: usize = 1000;

#[derive(Subcommand)]
pub(crate) enum ApikeyCommand {
    /// Create a key; its secret is printed this once and can never be shown again.
    #[command(after_long_help = examples::APIKEY_CREATE)]
    Create(CreateArgs),
    /// Create up to 1000 keys in one request, from a JSON file of `{"keys": [...]}`; each
    /// key's result is shown in order, and a malformed item creates nothing at all.
    CreateBatch(batch::CreateBatchArgs),
    /// List keys, following the server's pages to the end (or to --limit).
    #[command(after_long_help = examples::APIKEY_LIST)]
    List(ListArgs),
    /// Show one key.
    #[command(visible_alias = "show")]
    Get(KeyArgs),
    /// Rename a key or change its description.
    Update(UpdateArgs),
    /// Enable a disabled key.
    Enable(KeyArgs),
    /// Disable a key: it stops verifying until enabled again.
    Disable(KeyArgs),
    /// Lock a key: it cannot be updated, disabled or deleted until unlocked.
    Lock(KeyArgs),
    /// Unlock a locked key.
    Unlock(KeyArgs),
    /// Replace a key by a new one; its secret is printed this once.
    ///
    /// The new key has the old one's owner, name, description and scope; the old key keeps
    /// working for the grace period, then expires.
    #[command(after_long_help = examples::APIKEY_ROTATE)]
    Rotate(RotateArgs),
    /// Delete a key for good (asks first; --yes to skip the question).
    #[command(after_long_help = examples::APIKEY_DELETE)]
    Delete(DeleteArgs),
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
    /// Narrow the key below its owner's permissions: role:ROLE (e.g. role:developer), or
    /// namespace:NS:PERMISSION (e.g. namespace:payments:write), repeatable for namespaces.
    #[arg(long, value_name = "SCOPE")]
    scope: Vec<ScopePart>,
    /// Write the secret to this new file (mode 0600) instead of printing it.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

impl CreateArgs {
    fn request(&self) -> anyhow::Result<CreateKeyRequest> {
        let owner = match (&self.user_id, &self.service_account_id) {
            (Some(id), _) => Some(OwnerRef { kind: OwnerKind::User, id: id.clone() }),
            (None, Some(id)) => Some(OwnerRef { kind: OwnerKind::ServiceAccount, id: id.clone() }),
            (None, None) => None,
        };
        Ok(CreateKeyRequest {
            name: self.name.clone(),
            description: self.description.clone(),
            expires_in: self.duration.clone(),
            expires_at: self.expires_at.clone(),
            never_expires: self.never_expires.then_some(true),
            owner,
            scope: scope_of(&self.scope)?,
        })
    }
}

/// One `--scope` value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ScopePart {
    /// `role:developer`.
    Role(String),
    /// `namespace:payments:write`: the namespace and the permission in it.
    Namespace(String, String),
}

impl FromStr for ScopePart {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split(':').collect::<Vec<_>>()[..] {
            ["role", role] if !role.is_empty() => Ok(ScopePart::Role(role.to_string())),
            ["namespace", ns, level] if !ns.is_empty() && !level.is_empty() => {
                Ok(ScopePart::Namespace(ns.to_string(), level.to_string()))
            }
            _ => Err("expected role:ROLE (e.g. role:developer) or namespace:NS:PERMISSION \
                      (e.g. namespace:payments:write)"
                .to_string()),
        }
    }
}

/// The wire scope of the `--scope` flags: one role, or any number of namespaces.
fn scope_of(parts: &[ScopePart]) -> anyhow::Result<Option<KeyScope>> {
    if let [ScopePart::Role(role)] = parts {
        return Ok(Some(KeyScope::Role(role.clone())));
    }
    let mut namespaces = BTreeMap::new();
    for part in parts {
        match part {
            ScopePart::Role(_) => {
                bail!("--scope role:... stands alone: a key is narrowed to one role or to namespaces, not both")
            }
            ScopePart::Namespace(ns, level) => {
                if let Some(earlier) = namespaces.insert(ns.clone(), level.clone()) {
                    if earlier != *level {
                        bail!("--scope names the namespace {ns} twice, with {earlier} and with {level}");
                    }
                }
            }
        }
    }
    Ok((!namespaces.is_empty()).then_some(KeyScope::Namespaces(namespaces)))
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
    /// Only keys whose name contains this text, ignoring case.
    #[arg(long, value_name = "TEXT")]
    name_contains: Option<String>,
    /// Only keys that will expire within this span (`7d`, `12h`): enabled or disabled keys
    /// whose expiry is still ahead. With `--state enabled`, the keys about to stop working.
    #[arg(long, value_name = "SPAN")]
    expiring_within: Option<String>,
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
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    yes: YesArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["name", "description"])))]
pub(crate) struct UpdateArgs {
    /// The key's id.
    #[arg(long, required_unless_present = "key_name", conflicts_with = "key_name")]
    id: Option<String>,
    /// The key whose name is exactly this (not deleted), instead of --id (--name is the new name).
    #[arg(long, value_name = "NAME")]
    key_name: Option<String>,
    /// New name, 1 to 100 characters.
    #[arg(long)]
    name: Option<String>,
    /// New description (an empty one clears it).
    #[arg(long)]
    description: Option<String>,
    /// Change the key only if it is still at this revision (see `apikey get`); else the
    /// server refuses with revision_mismatch.
    #[arg(long, value_name = "REV")]
    if_match: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// How long the old key keeps working, e.g. 24h, 30m, or 0 to end it at once
    /// [default: 24h].
    #[arg(long, value_name = "DURATION")]
    grace: Option<String>,
    /// Lifetime of the new key from now, e.g. 30d [default: 90d, or never for a key that
    /// never expires].
    #[arg(long, conflicts_with = "expires_at")]
    duration: Option<String>,
    /// Expiry of the new key as an RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    expires_at: Option<String>,
    /// Write the new secret to this new file (mode 0600) instead of printing it.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

impl RotateArgs {
    fn request(&self) -> RotateKeyRequest {
        RotateKeyRequest {
            expires_in: self.duration.clone(),
            expires_at: self.expires_at.clone(),
            grace: self.grace.clone(),
        }
    }
}

pub(crate) async fn run(client: &Client, output: Output, command: ApikeyCommand) -> anyhow::Result<()> {
    match command {
        ApikeyCommand::Create(args) => {
            let request = args.request()?;
            let file = args.file.as_deref();
            // The file is made before anything is created on the server.
            let reserved = SecretFile::reserve(file)?;
            let created = client.create_key(&request).await?.value;
            if let Some(reserved) = reserved {
                reserved.store(&created.secret, &format!("the key {}", created.key.id))?;
            }
            emit(|out| match (output, file) {
                (Output::Json, None) => write_json(out, &created),
                (Output::Json, Some(path)) => write_json(out, &SecretInFile { key: &created.key, secret_file: path }),
                (Output::Table, _) => write_created(out, &created, file),
            })?;
        }
        ApikeyCommand::CreateBatch(args) => batch::run(client, output, args).await?,
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
            let key = client.get_key(&args.id(client).await?).await?.value;
            emit(|out| match output {
                Output::Json => write_json(out, &key),
                Output::Table => write_key_detail(out, &key),
            })?;
        }
        ApikeyCommand::Update(args) => {
            let request = UpdateKeyRequest { name: args.name.clone(), description: args.description.clone() };
            let (id, _) = select::resolve(client, args.id.as_deref(), args.key_name.as_deref()).await?;
            let key = client.update_key(&id, &request, args.if_match).await?.value;
            emit(|out| match output {
                Output::Json => write_json(out, &key),
                Output::Table => write_key_detail(out, &key),
            })?;
        }
        ApikeyCommand::Enable(args) => show_change(output, &client.enable_key(&args.id(client).await?).await?.value)?,
        ApikeyCommand::Disable(args) => show_change(output, &client.disable_key(&args.id(client).await?).await?.value)?,
        ApikeyCommand::Lock(args) => show_change(output, &client.lock_key(&args.id(client).await?).await?.value)?,
        ApikeyCommand::Unlock(args) => show_change(output, &client.unlock_key(&args.id(client).await?).await?.value)?,
        ApikeyCommand::Rotate(args) => {
            let file = args.file.as_deref();
            let reserved = SecretFile::reserve(file)?;
            let id = args.key.id(client).await?;
            let rotated = client.rotate_key(&id, &args.request()).await?.value;
            if let Some(reserved) = reserved {
                let what = format!("the key {}, which replaces {},", rotated.key.id, rotated.replaces);
                reserved.store(&rotated.secret, &what)?;
            }
            emit(|out| match (output, file) {
                (Output::Json, None) => write_json(out, &rotated),
                (Output::Json, Some(path)) => write_json(
                    out,
                    &RotatedInFile { key: &rotated.key, replaces: &rotated.replaces, secret_file: path },
                ),
                (Output::Table, _) => write_rotated(out, &rotated, file),
            })?;
        }
        ApikeyCommand::Delete(args) => {
            let (id, known_name) = args.key.resolve(client).await?;
            if !args.yes.yes {
                // The question names the key, so the user sees what the id stands for.
                let name = match known_name {
                    Some(name) => name,
                    None => client.get_key(&id).await?.value.name,
                };
                confirm(&format!("Delete API key {id} ({name:?})?"), &args.yes)?;
            }
            let written = client.delete_key(&id).await?;
            emit(|out| match output {
                Output::Json => write_json(out, &deleted_json(&id, written.index)),
                Output::Table => writeln!(out, "Deleted key {id}."),
            })?;
        }
    }
    Ok(())
}

/// Prints a key as the answer to a state change.
fn show_change(output: Output, key: &Key) -> std::io::Result<()> {
    emit(|out| write_key(out, output, key))
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
        name: args.name_contains.clone(),
        expiring_within: args.expiring_within.clone(),
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

    fn create(args: &[&str]) -> anyhow::Result<CreateKeyRequest> {
        match parse(args).unwrap() {
            ApikeyCommand::Create(create) => create.request(),
            _ => panic!("not a create"),
        }
    }

    #[test]
    fn create_flags_map_to_the_request() {
        let req = create(&["create", "--name", "n", "--duration", "30d", "--service-account-id", "sa_1"]).unwrap();
        assert_eq!(req.name, "n");
        assert_eq!(req.expires_in.as_deref(), Some("30d"));
        assert_eq!(req.expires_at, None);
        assert_eq!(req.never_expires, None);
        assert_eq!(req.owner, Some(OwnerRef { kind: OwnerKind::ServiceAccount, id: "sa_1".into() }));
        assert_eq!(req.scope, None);

        let req =
            create(&["create", "--name", "n", "--never-expires", "--user-id", "usr_1", "--description", "d"]).unwrap();
        assert_eq!(req.never_expires, Some(true));
        assert_eq!(req.description.as_deref(), Some("d"));
        assert_eq!(req.owner, Some(OwnerRef { kind: OwnerKind::User, id: "usr_1".into() }));

        let req = create(&["create", "--name", "n", "--expires-at", "2030-01-01T00:00:00Z"]).unwrap();
        assert_eq!(req.expires_at.as_deref(), Some("2030-01-01T00:00:00Z"));
        assert_eq!(req.owner, None);
    }

    #[test]
    fn scopes_map_to_the_wire_scope() {
        let req = create(&["create", "--name", "n", "--scope", "role:developer"]).unwrap();
        assert_eq!(req.scope, Some(KeyScope::Role("developer".into())));

        let args = ["create", "--name", "n", "--scope", "namespace:payments:write", "--scope", "namespace:ops:read"];
        let expected = [("ops".to_string(), "read".to_string()), ("payments".to_string(), "write".to_string())];
        assert_eq!(create(&args).unwrap().scope, Some(KeyScope::Namespaces(expected.into())));
        // The same namespace twice with the same permission is harmless.
        let args = ["create", "--name", "n", "--scope", "namespace:a:read", "--scope", "namespace:a:read"];
        assert_eq!(create(&args).unwrap().scope, Some(KeyScope::Namespaces([("a".into(), "read".into())].into())));

        for bad in [
            &["--scope", "role:read", "--scope", "namespace:a:read"][..],
            &["--scope", "role:read", "--scope", "role:admin"],
            &["--scope", "namespace:a:read", "--scope", "namespace:a:write"],
        ] {
            let args: Vec<&str> = ["create", "--name", "n"].iter().chain(bad).copied().collect();
            assert!(create(&args).is_err(), "{bad:?}");
        }
        for bad in ["developer", "role:", "namespace:payments", "namespace::write", "namespace:a:b:c", "ns:a:read"] {
            assert!(parse(&["create", "--name", "n", "--scope", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn update_and_rotate_flags() {
        let ApikeyCommand::Update(update) = parse(&["update", "--id", "k", "--name", "x", "--if-match", "7"]).unwrap()
        else {
            panic!("not an update")
        };
        assert_eq!((update.name.as_deref(), update.description, update.if_match), (Some("x"), None, Some(7)));
        assert!(parse(&["update", "--id", "k"]).is_err(), "an update changes something");
        assert!(parse(&["update", "--id", "k", "--description", "d", "--if-match", "soon"]).is_err());

        let ApikeyCommand::Rotate(rotate) =
            parse(&["rotate", "--id", "k", "--grace", "0", "--duration", "7d"]).unwrap()
        else {
            panic!("not a rotate")
        };
        let expected = RotateKeyRequest { expires_in: Some("7d".into()), expires_at: None, grace: Some("0".into()) };
        assert_eq!(rotate.request(), expected);
        let ApikeyCommand::Rotate(rotate) = parse(&["rotate", "--id", "k"]).unwrap() else { panic!("not a rotate") };
        assert_eq!(rotate.request(), RotateKeyRequest::default(), "the server's defaults apply");
        assert!(parse(&["rotate", "--id", "k", "--duration", "1d", "--expires-at", "x"]).is_err());
        assert!(parse(&["rotate"]).is_err());
    }

    #[test]
    fn conflicting_flags_are_refused() {
        assert!(parse(&["create", "--name", "n", "--duration", "1d", "--never-expires"]).is_err());
        assert!(parse(&["create", "--name", "n", "--duration", "1d", "--expires-at", "x"]).is_err());
        assert!(parse(&["create", "--name", "n", "--user-id", "u", "--service-account-id", "s"]).is_err());
        assert!(parse(&["create"]).is_err());
        assert!(parse(&["get"]).is_err());
        assert!(parse(&["lock"]).is_err());
        assert!(parse(&["unlock", "--id", "k"]).is_ok());
        assert!(parse(&["unlock", "--name", "ci"]).is_ok());
        assert!(parse(&["unlock", "--id", "k", "--name", "ci"]).is_err(), "--id and --name exclude each other");
        assert!(parse(&["delete", "--key-name", "ci", "-y"]).is_ok());
        assert!(parse(&["delete"]).is_err());
        assert!(parse(&["update", "--key-name", "ci", "--name", "new"]).is_ok());
        assert!(parse(&["update", "--key-name", "ci", "--id", "k", "--name", "new"]).is_err());
        assert!(parse(&["update", "--name", "new"]).is_err(), "an update names its key");
        assert!(parse(&["list", "--limit", "0"]).is_err());
        assert!(parse(&["list", "--identity-type", "robot"]).is_err());
        assert!(parse(&["list", "--identity-type", "service-account", "--state", "expired"]).is_ok());
        assert!(parse(&["list", "--identity-type", "user", "--namespace", "payments"]).is_ok());
    }
}
