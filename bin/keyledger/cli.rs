//! The client commands: flags, dispatch, and what is shared between them (the connection
//! flags, the output format, exit codes, how a new secret is handed over). Each command group
//! has its own module.

mod account;
mod apikey;
mod audit;
mod backup;
mod cluster;
mod confirm;
pub(crate) mod examples;
mod hints;
mod login;
mod namespace;
mod replay;
mod service_account;
mod settings;
mod table;
mod user;
mod verify;
mod webhook;

use std::convert::Infallible;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{Args, Subcommand, ValueEnum};
use hints::{hint_for, Hint, HintContext};
use keyledger_client::{Client, ClientError};
use serde::Serialize;

/// The largest page the server gives.
const MAX_PAGE: u32 = 1000;

/// `--limit` of the list commands that follow the server's pages.
#[derive(Debug, Args)]
pub(crate) struct PageArgs {
    /// Show at most this many in all (default: every one).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) limit: Option<u32>,
}

/// Fetches pages (`fetch`, split by `split` into items and the next cursor) until the server
/// has no more or `limit` items were gathered. Returns the items and, when cut by `limit`,
/// where a further listing would go on.
pub(crate) async fn gather<L, T, F, Fut>(
    limit: Option<u32>,
    mut fetch: F,
    split: impl Fn(L) -> (Vec<T>, Option<String>),
) -> anyhow::Result<(Vec<T>, Option<String>)>
where
    F: FnMut(keyledger_client::Page) -> Fut,
    Fut: std::future::Future<Output = Result<L, ClientError>>,
{
    let wanted = limit.map(|n| n as usize);
    let mut items: Vec<T> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_limit = wanted.map(|n| n.saturating_sub(items.len()).clamp(1, MAX_PAGE as usize) as u32);
        let (page, next) = split(fetch(keyledger_client::Page { limit: page_limit, cursor: cursor.clone() }).await?);
        items.extend(page);
        let Some(next) = next else {
            return Ok((items, None));
        };
        if let Some(n) = wanted.filter(|&n| items.len() >= n) {
            items.truncate(n);
            return Ok((items, Some(next)));
        }
        if cursor.as_deref() == Some(next.as_str()) {
            anyhow::bail!("the server answered the same page cursor twice; stopping the listing");
        }
        cursor = Some(next);
    }
}

/// Where client commands go when neither a flag, the environment nor a login says otherwise.
pub(crate) const DEFAULT_ADDRESS: &str = "http://127.0.0.1:7700";

/// Exit code for usage errors, an unreachable server and any other failure.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code when the server answered with an error.
pub(crate) const EXIT_API_ERROR: u8 = 2;
/// Exit code when `verify` found the key not valid.
pub(crate) const EXIT_INVALID: u8 = 3;

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// `verify` answered `valid: false`.
    Invalid,
    /// `health`: the node is not ready, or did not answer.
    NotReady,
}

impl Outcome {
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Invalid => EXIT_INVALID,
            Outcome::NotReady => EXIT_FAILURE,
        }
    }
}

/// The commands that talk to a server.
#[derive(Subcommand)]
pub(crate) enum ClientCommand {
    /// Create, list, inspect, update, enable, disable, lock, rotate and delete API keys.
    Apikey {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: apikey::ApikeyCommand,
    },
    /// Check whether an API key is valid (exit code 3 when it is not).
    ///
    /// The key comes from --key or, without it, from standard input (surrounding whitespace
    /// is ignored), which keeps it out of the shell history and the process list.
    /// Exit codes: 0 valid, 3 not valid, 2 error answer, 1 other failure.
    #[command(after_long_help = examples::VERIFY)]
    Verify {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        args: verify::VerifyArgs,
    },
    /// Create, list and change users: role, namespace permissions, state.
    User {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Create, list, inspect, disable, enable and delete service accounts.
    ServiceAccount {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: service_account::ServiceAccountCommand,
    },
    /// Create and list the account's namespaces.
    Namespace {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: namespace::NamespaceCommand,
    },
    /// Show or change the account's key policy.
    Settings {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: settings::SettingsCommand,
    },
    /// Create another account, with its owner and the owner's first API key.
    Account {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: account::AccountCommand,
    },
    /// Create, list, show and delete the account's webhooks, rotate their secrets, read their
    /// delivery logs (owners and admins).
    Webhook {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
    /// A key's whole life, oldest first: every event about it.
    History {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        args: audit::HistoryArgs,
    },
    /// The audit trail: events, exports, checkpoints and proofs, and checking them offline.
    Audit {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// An account as it was at a past moment: keys, users, service accounts, settings.
    Replay {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        args: replay::ReplayArgs,
    },
    /// Maintenance: back up a live cluster, restore a backup, rebuild a stopped node's data dir.
    Admin {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: replay::AdminCommand,
    },
    /// Inspect the cluster.
    Cluster {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Store an address and API key (checked against the server) for later commands.
    ///
    /// They go to $KEYLEDGER_CONFIG, or $XDG_CONFIG_HOME/keyledger/config.json, or
    /// ~/.config/keyledger/config.json, with mode 0600. --address/--api-key and
    /// KEYLEDGER_ADDRESS/KEYLEDGER_API_KEY take precedence over them.
    #[command(after_long_help = examples::LOGIN)]
    Login(login::LoginArgs),
    /// Forget what `login` stored.
    Logout,
    /// Whether the node at --address is ready (has a leader and has applied the committed
    /// log): exit code 0 if so, 1 if not or if it does not answer. For container health checks.
    Health {
        #[command(flatten)]
        conn: ConnArgs,
    },
}

impl ClientCommand {
    /// The connection flags of the command, for the hints of an error.
    fn conn(&self) -> Option<&ConnArgs> {
        match self {
            ClientCommand::Apikey { conn, .. }
            | ClientCommand::Verify { conn, .. }
            | ClientCommand::User { conn, .. }
            | ClientCommand::ServiceAccount { conn, .. }
            | ClientCommand::Namespace { conn, .. }
            | ClientCommand::Settings { conn, .. }
            | ClientCommand::Account { conn, .. }
            | ClientCommand::History { conn, .. }
            | ClientCommand::Audit { conn, .. }
            | ClientCommand::Replay { conn, .. }
            | ClientCommand::Admin { conn, .. }
            | ClientCommand::Cluster { conn, .. }
            | ClientCommand::Webhook { conn, .. }
            | ClientCommand::Health { conn } => Some(conn),
            ClientCommand::Login(_) | ClientCommand::Logout => None,
        }
    }
}

/// Where the server is, how to authenticate, how to print.
#[derive(Debug, Args)]
pub(crate) struct ConnArgs {
    /// URL of any node of the cluster; several (repeated, or separated by commas) are tried in
    /// order when one is down or has no leader [default: the stored login's, else
    /// http://127.0.0.1:7700].
    #[arg(long, global = true, env = "KEYLEDGER_ADDRESS", value_delimiter = ',', help_heading = "Connection")]
    address: Vec<String>,
    /// API key to authenticate with.
    ///
    /// Prefer the environment variable: command lines are visible to other users of the machine.
    #[arg(
        long,
        global = true,
        env = "KEYLEDGER_API_KEY",
        hide_env_values = true,
        value_name = "KEY",
        help_heading = "Connection"
    )]
    api_key: Option<Secret>,
    /// CA certificate (PEM) to trust for an `https://` address, beside the web's usual roots
    /// [default: the stored login's].
    #[arg(long, global = true, env = "KEYLEDGER_CACERT", value_name = "FILE", help_heading = "Connection")]
    cacert: Option<std::path::PathBuf>,
    /// Output format: aligned tables for people, or JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table, help_heading = "Connection")]
    output: Output,
    /// Reads answer from the node's state (`local`), or only once it reflects every write
    /// acknowledged before (`linearizable`: a read index through the leader).
    #[arg(long, global = true, value_enum, default_value_t = Consistency::Local, help_heading = "Connection")]
    consistency: Consistency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Consistency {
    Local,
    Linearizable,
}

impl ConnArgs {
    /// A client for the flag or environment values, falling back to the stored login.
    fn client(&self) -> anyhow::Result<Client> {
        let (addresses, api_key, cacert) = self.settings()?;
        let client = Client::with_addresses(&addresses, api_key, cacert.as_deref())?;
        Ok(match self.consistency {
            Consistency::Local => client,
            Consistency::Linearizable => client.linearizable(),
        })
    }
}

impl ConnArgs {
    /// The addresses, API key and CA file: from the flags or the environment, else the stored
    /// login, else the default address.
    fn settings(&self) -> anyhow::Result<(Vec<String>, Option<String>, Option<PathBuf>)> {
        let given = login::address_list(&self.address);
        let stored = if given.is_empty() || self.api_key.is_none() || self.cacert.is_none() {
            login::load()?
        } else {
            Default::default()
        };
        let mut addresses = if given.is_empty() { stored.addresses() } else { given };
        if addresses.is_empty() {
            addresses.push(DEFAULT_ADDRESS.to_string());
        }
        let api_key = self.api_key.as_ref().map(|k| k.expose().to_string()).or(stored.api_key);
        let cacert = self.cacert.clone().or(stored.cacert);
        Ok((addresses, api_key, cacert))
    }

    /// What an error's hint needs to know: where the command went, and whether it had a key.
    fn hint_context(&self) -> HintContext {
        match self.settings() {
            Ok((addresses, api_key, _)) => HintContext { addresses, has_key: api_key.is_some() },
            Err(_) => HintContext { addresses: Vec::new(), has_key: self.api_key.is_some() },
        }
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
}

/// A secret given on the command line or in the environment: its `Debug` form hides it, so
/// no log line or debug print can leak it.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Runs one client command; a failure carries a hint saying what to do next, when there is one.
pub(crate) async fn run(command: ClientCommand) -> anyhow::Result<Outcome> {
    let context = command.conn().map(ConnArgs::hint_context);
    run_command(command).await.map_err(|err| match context.as_ref().and_then(|c| hint_for(&err, c)) {
        Some(hint) => err.context(hint),
        None => err,
    })
}

async fn run_command(command: ClientCommand) -> anyhow::Result<Outcome> {
    match command {
        ClientCommand::Apikey { conn, command } => apikey::run(&conn.client()?, conn.output, command).await?,
        ClientCommand::Verify { conn, args } => return verify::run(&conn.client()?, conn.output, args).await,
        ClientCommand::User { conn, command } => user::run(&conn.client()?, conn.output, command).await?,
        ClientCommand::ServiceAccount { conn, command } => {
            service_account::run(&conn.client()?, conn.output, command).await?
        }
        ClientCommand::Namespace { conn, command } => namespace::run(&conn.client()?, conn.output, command).await?,
        ClientCommand::Settings { conn, command } => settings::run(&conn.client()?, conn.output, command).await?,
        ClientCommand::Account { conn, command } => account::run(&conn.client()?, conn.output, command).await?,
        ClientCommand::History { conn, args } => audit::history(&conn.client()?, conn.output, args).await?,
        // Checking files needs no server: the client is made only for the commands that call one.
        ClientCommand::Audit { conn, command } => audit::run(|| conn.client(), conn.output, command).await?,
        ClientCommand::Replay { conn, args } => replay::replay(|| conn.client(), conn.output, args).await?,
        ClientCommand::Admin { conn, command } => replay::admin(|| conn.client(), conn.output, command).await?,
        ClientCommand::Webhook { conn, command } => webhook::run(&conn.client()?, conn.output, command).await?,
        ClientCommand::Cluster { conn, command } => cluster::run(&conn.client()?, conn.output, command).await?,
        ClientCommand::Login(args) => login::login(args).await?,
        ClientCommand::Logout => login::logout()?,
        ClientCommand::Health { conn } => return Ok(health(&conn.client()?, conn.output).await?),
    }
    Ok(Outcome::Success)
}

/// `keyledger health`: `GET /readyz`; "ready" and exit 0, or why not and exit 1.
async fn health(client: &Client, output: Output) -> io::Result<Outcome> {
    let (outcome, answer) = match client.ready().await {
        Ok(health) => (Outcome::Success, health),
        Err(err) => {
            let reason = match &err {
                ClientError::Api { error, .. } => error.message.clone(),
                other => other.to_string(),
            };
            let answer = keyledger_wire::Health { status: "unavailable".into(), reason: Some(reason) };
            (Outcome::NotReady, answer)
        }
    };
    emit(|out| match output {
        Output::Json => write_json(out, &answer),
        Output::Table => match &answer.reason {
            Some(reason) if outcome != Outcome::Success => writeln!(out, "not ready ({}): {reason}", client.address()),
            _ => writeln!(out, "ready ({})", client.address()),
        },
    })?;
    Ok(outcome)
}

/// A `--file` for a new secret, created empty (mode 0600) *before* the server is asked, so a
/// path that cannot be written costs no key. `O_EXCL` never follows or replaces anything: an
/// existing file and a symbolic link (dangling or not) are refused. The file is removed again
/// unless the secret was stored in it.
pub(crate) struct SecretFile {
    path: PathBuf,
    /// `None` once the secret is stored (the file is kept).
    file: Option<std::fs::File>,
}

impl SecretFile {
    /// Creates `path` for a secret, or says why it cannot be.
    pub(crate) fn reserve(path: Option<&Path>) -> anyhow::Result<Option<SecretFile>> {
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = path else { return Ok(None) };
        if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink()) {
            anyhow::bail!("{} is a symbolic link; the secret goes only to a new file", path.display());
        }
        let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                anyhow::anyhow!("{} already exists; the secret goes only to a new file", path.display())
            } else {
                anyhow::anyhow!("cannot create {}: {e}; nothing was created", path.display())
            }
        })?;
        Ok(Some(SecretFile { path: path.to_path_buf(), file: Some(file) }))
    }

    /// Writes the secret the server just made; a failure names what was created (`created`,
    /// e.g. "the key key_1"), since its secret is now lost.
    pub(crate) fn store(mut self, secret: &str, created: &str) -> anyhow::Result<()> {
        let mut file = self.file.take().expect("a reserved file is stored once");
        let written = file.write_all(format!("{secret}\n").as_bytes()).and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&self.path);
            return Err(anyhow::Error::new(e).context(format!(
                "{created} was created, but its secret could not be written to {}",
                self.path.display()
            )));
        }
        Ok(())
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        // Nothing was stored (the server refused, or the command failed): leave no empty file.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `headline`, then the new secret shown this once, or where it was written (`file`).
fn write_secret_notice(out: &mut dyn Write, headline: &str, secret: &str, file: Option<&Path>) -> io::Result<()> {
    match file {
        None => {
            writeln!(out, "{headline} Its secret, shown this once:")?;
            writeln!(out)?;
            writeln!(out, "    {secret}")?;
            writeln!(out)?;
            writeln!(out, "Store it now: it cannot be shown again.")
        }
        Some(path) => writeln!(out, "{headline} Its secret was written to {} (mode 0600).", path.display()),
    }
}

/// The JSON answer to a delete, which has no body of its own.
fn deleted_json(id: &str, index: u64) -> serde_json::Value {
    serde_json::json!({"id": id, "deleted": true, "index": index})
}

/// Writes rendered output to stdout in one go.
fn emit(render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<()> {
    let mut buffer = Vec::new();
    render(&mut buffer)?;
    let mut stdout = io::stdout().lock();
    stdout.write_all(&buffer)?;
    stdout.flush()
}

/// Pretty JSON and a newline.
fn write_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// The message to print for a failed command, or `None` when the failure is only a
/// closed stdout pipe, which is not worth reporting.
pub(crate) fn report(err: &anyhow::Error) -> Option<String> {
    let broken_pipe = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return None;
    }
    match err.downcast_ref::<Hint>() {
        Some(hint) => {
            let causes: Vec<String> = err.chain().skip(1).map(|cause| cause.to_string()).collect();
            Some(format!("{}\nhint: {hint}", causes.join(": ")))
        }
        None => Some(format!("{err:#}")),
    }
}

/// The exit code for a failed command: 2 for an error answer from the server, else 1.
pub(crate) fn exit_code_for(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<ClientError>() {
        Some(ClientError::Api { .. }) => EXIT_API_ERROR,
        _ => EXIT_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyledger_wire::ErrorDetail;

    fn api_error() -> ClientError {
        ClientError::Api {
            status: 404,
            error: ErrorDetail { code: "not_found".into(), message: "key not found".into(), request_id: None },
        }
    }

    #[test]
    fn api_errors_exit_2_and_name_their_code() {
        let err = anyhow::Error::from(api_error());
        assert_eq!(exit_code_for(&err), EXIT_API_ERROR);
        assert_eq!(report(&err).unwrap(), "key not found (not_found)");
    }

    #[test]
    fn other_errors_exit_1() {
        let err = anyhow::Error::from(ClientError::Transport("connection refused".into()));
        assert_eq!(exit_code_for(&err), EXIT_FAILURE);
        assert_eq!(exit_code_for(&anyhow::anyhow!("no key given")), EXIT_FAILURE);
    }

    #[test]
    fn broken_pipe_is_not_reported() {
        let err = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(report(&err), None);
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let secret: Secret = "klk_topsecret".parse().unwrap();
        assert!(!format!("{secret:?}").contains("topsecret"));
        assert_eq!(secret.expose(), "klk_topsecret");
        assert_eq!(Outcome::Invalid.exit_code(), 3);
        assert_eq!(Outcome::Success.exit_code(), 0);
    }
}
