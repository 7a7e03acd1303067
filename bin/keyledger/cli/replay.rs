//! `keyledger replay --at T`: an account as it was at a past moment, from a running node or,
//! with `--data-dir`, from a stopped node's (or copied) data dir with no server at all; and
//! `keyledger admin rebuild`: rebuild a stopped node's derived data from its ledger (`admin
//! backup` and `admin restore` are in `backup.rs`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use keyledger_client::Client;
use keyledger_model::{AccountId, Timestamp};
use keyledger_wire::Replay;

use super::table::Table;
use super::{emit, write_json, Output};

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The moment, RFC 3339 (e.g. 2026-11-23T03:12:00Z).
    #[arg(long, value_name = "TIME")]
    at: String,
    /// Read this data dir instead of asking a server (the node must be stopped, or use a copy).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// With --data-dir: the account to replay.
    #[arg(long, value_name = "NAME", default_value = "default", requires = "data_dir")]
    account: String,
}

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Check a stopped node's whole ledger and rebuild its indexes and Merkle tree from the
    /// events alone (the in-memory state is rebuilt at every start anyway).
    Rebuild(RebuildArgs),
    /// Write a consistent copy of the live cluster's ledger to a file (the operator only): asked
    /// of any node, checked (chains, checkpoints, Merkle root, checksum) before it is named.
    Backup(super::backup::BackupArgs),
    /// Check a backup file and write it into a new data dir (no server), from which
    /// `keyledger serve` founds a new cluster holding the restored ledger; or only check it.
    Restore(super::backup::RestoreArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RebuildArgs {
    /// The node's data dir; the node must be stopped.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

pub(crate) async fn replay(
    connect: impl FnOnce() -> anyhow::Result<Client>,
    output: Output,
    args: ReplayArgs,
) -> anyhow::Result<()> {
    let replayed = match &args.data_dir {
        Some(dir) => {
            let at = Timestamp::parse_rfc3339(&args.at).map_err(|e| anyhow::anyhow!("--at: {e}"))?;
            let account =
                AccountId::new(&args.account).map_err(|_| anyhow::anyhow!("--account: not an account name"))?;
            let ledger = keyledger_ledger::open_ledger(dir).with_context(|| open_failed(dir))?;
            keyledger_api::replay_account(&ledger, &account, at)?
        }
        None => connect()?.replay(&args.at).await?,
    };
    emit(|out| match output {
        Output::Json => write_json(out, &replayed),
        Output::Table => write_replay(out, &replayed),
    })?;
    Ok(())
}

fn open_failed(dir: &std::path::Path) -> String {
    format!("cannot open the ledger in {} (a running node holds it locked: stop it or copy the dir)", dir.display())
}

fn write_replay(out: &mut dyn Write, replayed: &Replay) -> std::io::Result<()> {
    writeln!(out, "Account {} as of {} (through ledger seq {})", replayed.account, replayed.at, replayed.seq)?;
    if replayed.settings.is_none() {
        return writeln!(out, "The account did not exist yet.");
    }
    writeln!(out, "\nKEYS")?;
    let mut keys = Table::with_header(&["ID", "NAME", "OWNER", "STATE", "LOCKED", "EXPIRES AT"]);
    for key in &replayed.keys {
        keys.row([
            key.id.clone(),
            key.name.clone(),
            key.owner.id.clone(),
            key.state.clone(),
            key.locked.to_string(),
            key.expires_at.clone().unwrap_or_else(|| "never".into()),
        ]);
    }
    keys.write(out)?;
    writeln!(out, "\nUSERS")?;
    let mut users = Table::with_header(&["ID", "NAME", "ROLE", "STATE"]);
    for user in &replayed.users {
        users.row([user.id.clone(), user.name.clone(), user.role.clone(), user.state.clone()]);
    }
    users.write(out)?;
    if !replayed.service_accounts.is_empty() {
        writeln!(out, "\nSERVICE ACCOUNTS")?;
        let mut table = Table::with_header(&["ID", "NAME", "ROLE", "NAMESPACE", "STATE"]);
        for sa in &replayed.service_accounts {
            table.row([
                sa.id.clone(),
                sa.name.clone(),
                sa.role.clone().unwrap_or_default(),
                sa.namespace.clone().unwrap_or_default(),
                sa.state.clone(),
            ]);
        }
        table.write(out)?;
    }
    Ok(())
}

pub(crate) async fn admin(
    connect: impl FnOnce() -> anyhow::Result<Client>,
    output: Output,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let args = match command {
        AdminCommand::Rebuild(args) => args,
        AdminCommand::Backup(args) => return super::backup::backup(&connect()?, output, args).await,
        AdminCommand::Restore(args) => return super::backup::restore(output, args),
    };
    let started = std::time::Instant::now();
    let rebuilt = keyledger_ledger::rebuild(&args.data_dir).with_context(|| open_failed(&args.data_dir))?;
    let seconds = started.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "events": rebuilt.events,
        "head": {"seq": rebuilt.head.seq, "hash": rebuilt.head.hash.to_hex()},
        "merkle_root": rebuilt.merkle_root.to_hex(),
        "accounts": rebuilt.state.accounts().count(),
        "keys": rebuilt.state.key_count(),
        "seconds": seconds,
    });
    emit(|out| {
        match output {
        Output::Json => write_json(out, &summary),
        Output::Table => writeln!(
            out,
            "OK: {} events check out; indexes and Merkle tree rebuilt in {seconds:.2} s.\nhead: seq {} hash {}\nmerkle root: {}",
            rebuilt.events,
            rebuilt.head.seq,
            rebuilt.head.hash.to_hex(),
            rebuilt.merkle_root.to_hex()
        ),
    }
    })?;
    Ok(())
}
