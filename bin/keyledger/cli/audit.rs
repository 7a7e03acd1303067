//! `keyledger history` (one key's life) and `keyledger audit ...`: the account's events and
//! exports, signed checkpoints and Merkle proofs (owners and admins), and the offline checks
//! of exports and proofs (`verify`, `verify-proof`), which need no server.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use keyledger_client::{AuditQuery, Client, ExportFormat, ExportRequest};
use keyledger_wire::{AuditEvent, EventList};

use super::table::Table;
use super::{emit, write_json, Output};

mod proofs;
pub(crate) use proofs::{CheckpointsArgs, ProveArgs, PublicKeyArgs, VerifyProofArgs};

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    #[command(flatten)]
    key: super::apikey::select::KeyArgs,
}

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// List the account's events, oldest first, one page at a time.
    Events(EventsArgs),
    /// Write every event of the account (or those between --from and --to) to a file or stdout.
    #[command(after_long_help = super::examples::AUDIT_EXPORT)]
    Export(ExportArgs),
    /// Check a JSONL export offline, with no server: canonical form, gap-free chains, hashes,
    /// and every signed checkpoint in it.
    ///
    /// Names the first bad line and exits non-zero on any failure.
    Verify(VerifyFileArgs),
    /// Print the public keys checkpoints are signed with (keep them: they are what
    /// `verify --public-key` and `verify-proof` trust).
    PublicKey(PublicKeyArgs),
    /// List the signed checkpoints, oldest first.
    Checkpoints(CheckpointsArgs),
    /// Fetch a proof to check offline: `--seq S` (an event is in a checkpoint's tree) or
    /// `--from C1` (a later checkpoint's tree only appended to C1's).
    Prove(ProveArgs),
    /// Check a proof from `prove` offline, against trusted public keys.
    VerifyProof(VerifyProofArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyFileArgs {
    /// The JSONL export (`-` for standard input).
    file: PathBuf,
    /// The export was cut by time (--from): chains may start after their first event.
    #[arg(long)]
    partial: bool,
    /// Trust checkpoints signed by these keys only: a file saved from `audit public-key`, or
    /// hex keys separated by commas. Without it, signatures are checked but not whom they are by.
    #[arg(long, value_name = "FILE|KEYS")]
    public_key: Option<String>,
    /// The file is the operator's full export (`--scope cluster`): require the whole cluster chain.
    #[arg(long)]
    cluster: bool,
}

/// `audit verify`: needs no server.
pub(crate) fn verify_file(output: Output, args: &VerifyFileArgs) -> anyhow::Result<()> {
    use keyledger_audit::verify::{verify_export, Expect, Options};
    let trusted = args.public_key.as_deref().map(proofs::trusted_keys).transpose()?;
    let options = Options {
        expect: if args.partial { Expect::Partial } else { Expect::Complete },
        trusted,
        whole_cluster: args.cluster,
    };
    let verified = if args.file.as_os_str() == "-" {
        verify_export(io::stdin().lock(), &options)
    } else {
        let file = std::fs::File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
        verify_export(io::BufReader::new(file), &options)
    }
    .with_context(|| format!("{} does not verify", args.file.display()))?;
    let authenticated = options.trusted.is_some();
    emit(|out| match output {
        Output::Json => write_json(
            out,
            &serde_json::json!({
                "events": verified.events,
                "accounts": verified.accounts.iter().map(|(name, chain)| serde_json::json!({
                    "account": name,
                    "first_account_seq": chain.first_account_seq,
                    "anchor": chain.anchor.to_hex(),
                    "head": {"account_seq": chain.head.seq, "hash": chain.head.hash.to_hex()},
                })).collect::<Vec<_>>(),
                "cluster_head": verified.cluster_head.map(|h| serde_json::json!({"seq": h.seq, "hash": h.hash.to_hex()})),
                "checkpoints": verified.checkpoints,
                "checkpoints_by_trusted_keys": authenticated,
                "roots_checked": verified.roots_checked,
                "last_checkpoint": verified.last_checkpoint.map(|(seq, size)| serde_json::json!({"seq": seq, "tree_size": size})),
            }),
        ),
        Output::Table => {
            writeln!(out, "OK: {} events verify.", verified.events)?;
            for (name, chain) in &verified.accounts {
                writeln!(
                    out,
                    "account {name}: account_seq {}..{}, head {}",
                    chain.first_account_seq,
                    chain.head.seq,
                    chain.head.hash.to_hex()
                )?;
            }
            if let Some(head) = verified.cluster_head {
                writeln!(out, "cluster chain: seq ..{}, head {}", head.seq, head.hash.to_hex())?;
            }
            let whose = if authenticated {
                "signed by trusted keys"
            } else {
                "with valid signatures (pass --public-key to check whose)"
            };
            writeln!(
                out,
                "checkpoints: {} {whose}; {} roots recomputed from the events",
                verified.checkpoints, verified.roots_checked
            )?;
            if let Some((seq, size)) = verified.last_checkpoint {
                writeln!(out, "last checkpoint: seq {seq}, covering events 1..={size} (keep it for the next audit)")?;
            }
            Ok(())
        }
    })?;
    Ok(())
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Only events after this sequence number (the `next` of the previous page).
    #[arg(long, value_name = "SEQ")]
    after: Option<u64>,
    /// Only events of this type, e.g. created, rotated, user_created.
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// Only events about this key.
    #[arg(long, value_name = "KEY_ID")]
    key_id: Option<String>,
    /// Only events about the key whose name is exactly NAME (not deleted).
    #[arg(long, value_name = "NAME", conflicts_with = "key_id")]
    key_name: Option<String>,
    /// Only events caused by this user or service account id (or `system`).
    #[arg(long, value_name = "ID")]
    actor: Option<String>,
    /// Only events at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only events before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// The most events to show (server default 1000, at most 10000).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// account (the default) or cluster (every account's events; the cluster operator only).
    #[arg(long, value_name = "SCOPE")]
    scope: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Jsonl,
    Csv,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// jsonl (one event per line) or csv.
    #[arg(long, value_enum)]
    format: Format,
    /// Only events at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Only events before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Write to this new file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// account (the account's events and the cluster's checkpoints) or cluster (every
    /// account's events; the cluster operator only).
    #[arg(long, value_name = "SCOPE")]
    scope: Option<String>,
}

pub(crate) async fn history(client: &Client, output: Output, args: HistoryArgs) -> anyhow::Result<()> {
    let list = client.key_history(&args.key.id(client).await?).await?;
    emit(|out| match output {
        Output::Json => write_json(out, &serde_json::json!({ "events": list.events })),
        Output::Table => write_events(out, &list.events),
    })?;
    Ok(())
}

pub(crate) async fn run(
    connect: impl FnOnce() -> anyhow::Result<Client>,
    output: Output,
    command: AuditCommand,
) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(args) => verify_file(output, &args)?,
        AuditCommand::VerifyProof(args) => proofs::verify_proof(output, &args)?,
        AuditCommand::Events(args) => {
            let client = connect()?;
            let key_id = match (args.key_id, &args.key_name) {
                (None, Some(name)) => Some(super::apikey::select::resolve(&client, None, Some(name)).await?.0),
                (id, _) => id,
            };
            let query = AuditQuery {
                after: args.after,
                limit: args.limit,
                key_id,
                actor: args.actor,
                kind: args.kind,
                from: args.from,
                to: args.to,
                scope: args.scope,
            };
            let list: EventList = client.audit_events(&query).await?;
            emit(|out| match output {
                Output::Json => write_json(out, &list),
                Output::Table => {
                    write_events(out, &list.events)?;
                    match list.next {
                        Some(next) => writeln!(out, "\nMore events: --after {next}"),
                        None => Ok(()),
                    }
                }
            })?;
        }
        AuditCommand::Export(args) => export(&connect()?, args).await?,
        AuditCommand::PublicKey(args) => proofs::public_key(&connect()?, output, &args).await?,
        AuditCommand::Checkpoints(args) => proofs::checkpoints(&connect()?, output, &args).await?,
        AuditCommand::Prove(args) => proofs::prove(&connect()?, &args).await?,
    }
    Ok(())
}

/// Streams the export to `--out` (a new file, removed again if the export fails) or stdout,
/// with a running count of events on standard error when that is a terminal.
async fn export(client: &Client, args: ExportArgs) -> anyhow::Result<()> {
    let format = match args.format {
        Format::Jsonl => ExportFormat::Jsonl,
        Format::Csv => ExportFormat::Csv,
    };
    let request = ExportRequest { format, from: args.from, to: args.to, scope: args.scope };
    let mut export = client.audit_export(&request).await?;
    let progress = Progress::on_terminal();
    let mut sink: Box<dyn Write> = match &args.out {
        None => Box::new(io::stdout().lock()),
        Some(path) => Box::new(
            // Owner-only: an account's whole trail is not for everyone on the machine.
            std::os::unix::fs::OpenOptionsExt::mode(std::fs::OpenOptions::new().write(true).create_new(true), 0o600)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
    };
    let written: anyhow::Result<()> = async {
        while let Some(chunk) = export.chunk().await? {
            sink.write_all(&chunk)?;
            progress.add(&chunk);
        }
        sink.flush()?;
        Ok(())
    }
    .await;
    drop(sink);
    progress.finish();
    match (&args.out, written) {
        (Some(path), Ok(())) => std::fs::File::open(path)?.sync_all()?,
        (Some(path), Err(err)) => {
            let _ = std::fs::remove_file(path);
            return Err(err.context(format!("the export to {} failed and was removed", path.display())));
        }
        (None, written) => written?,
    }
    Ok(())
}

/// Lines and bytes received so far, drawn on standard error; nothing when it is not a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    bytes: std::cell::Cell<u64>,
}

impl Progress {
    fn on_terminal() -> Progress {
        let bytes = std::cell::Cell::new(0);
        if !io::stderr().is_terminal() {
            return Progress { bar: None, bytes };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        let style = indicatif::ProgressStyle::with_template("{spinner} {pos} lines, {msg} ({per_sec}, {elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress { bar: Some(bar), bytes }
    }

    fn add(&self, chunk: &[u8]) {
        if let Some(bar) = &self.bar {
            self.bytes.set(self.bytes.get() + chunk.len() as u64);
            bar.inc(chunk.iter().filter(|&&b| b == b'\n').count() as u64);
            bar.set_message(indicatif::HumanBytes(self.bytes.get()).to_string());
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// SEQ, TIME, TYPE, ACTOR, REQUEST ID, DETAILS: one event per line.
fn write_events(out: &mut dyn Write, events: &[AuditEvent]) -> io::Result<()> {
    let mut table = Table::with_header(&["SEQ", "TIME", "TYPE", "ACTOR", "REQUEST ID", "DETAILS"]);
    for event in events {
        table.row([
            event.seq.to_string(),
            event.time.clone(),
            event.kind.clone(),
            event.actor.id.clone().unwrap_or_else(|| event.actor.kind.clone()),
            event.request_id.clone(),
            details(&event.data),
        ]);
    }
    table.write(out)
}

/// `name=value` for each field of `data`, strings bare, everything else as JSON.
fn details(data: &serde_json::Value) -> String {
    let Some(fields) = data.as_object() else { return data.to_string() };
    fields
        .iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(text) => format!("{name}={text}"),
            other => format!("{name}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_name_value_pairs() {
        let data = serde_json::json!({"key_id": "key_1", "count": 3, "scope": null});
        assert_eq!(details(&data), "count=3 key_id=key_1 scope=null");
    }
}
