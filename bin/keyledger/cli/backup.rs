//! `keyledger admin backup`: a live node's ledger to a file, checked before it gets its name;
//! `keyledger admin restore`: such a file, checked, into a new data dir (or only checked, with
//! `--verify-only`). The format is `keyledger_ledger::backup`'s; the checks of its events are
//! `keyledger_audit`'s (chains, checkpoints, Merkle root) and the ledger's (each event alone).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use keyledger_audit::verify::EventCheck;
use keyledger_client::Client;
use keyledger_ledger::backup::{BackupHeader, BackupReader};
use keyledger_ledger::restore::{check_empty_dir, restore_into};
use keyledger_model::LedgerEntry;

use super::{emit, write_json, Output};

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The file to write; it must not exist. It is written as FILE.partial and renamed only
    /// once it checks out.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup file (`keyledger admin backup`).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The new data dir: it must not exist or be empty. Start `keyledger serve --data-dir` on
    /// it to found a new cluster holding the restored ledger.
    #[arg(long, value_name = "DIR", required_unless_present = "verify_only")]
    data_dir: Option<PathBuf>,
    /// The id the node started on the data dir will have (`keyledger serve --node-id`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    node_id: u64,
    /// Only check the file (chains, checkpoints, Merkle root, checksum); write nothing.
    #[arg(long, conflicts_with = "data_dir")]
    verify_only: bool,
}

/// What a checked file holds.
struct Checked {
    header: BackupHeader,
    checkpoints: u64,
    bytes: u64,
}

/// The per-event checks of `keyledger_audit`, and at the end the header's head and root.
struct Checks {
    events: EventCheck,
}

impl Checks {
    fn new() -> Checks {
        Checks { events: EventCheck::new(None) }
    }

    fn push(&mut self, entry: &LedgerEntry) -> Result<(), String> {
        self.events.push(entry.event.clone()).map_err(|failure| format!("event {}: {}", failure.line, failure.reason))
    }

    /// The checkpoints checked, once every event was pushed and the header agrees with them.
    fn finish(self, header: &BackupHeader) -> anyhow::Result<u64> {
        if header.events > 0 && self.events.merkle_root() != Some(header.merkle_root) {
            bail!("the Merkle root of the events is not the one the header names");
        }
        if header.events == 0 {
            return Ok(0);
        }
        let verified = self.events.finish().map_err(|f| anyhow::anyhow!("event {}: {}", f.line, f.reason))?;
        if verified.cluster_head != Some(header.head) {
            bail!("the events do not end at the head the header names");
        }
        Ok(verified.checkpoints)
    }
}

fn open_backup(path: &Path) -> anyhow::Result<BackupReader<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    BackupReader::open(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("{} is refused", path.display()))
}

/// Reads the whole file and checks everything in it.
fn verify_file(path: &Path) -> anyhow::Result<Checked> {
    let mut reader = open_backup(path)?;
    let header = reader.header().clone();
    let mut checks = Checks::new();
    let refused = || format!("{} is refused", path.display());
    while let Some(entry) = reader.next_entry().with_context(refused)? {
        checks.push(&entry).map_err(anyhow::Error::msg).with_context(refused)?;
    }
    let checkpoints = checks.finish(&header).with_context(refused)?;
    Ok(Checked { header, checkpoints, bytes: reader.bytes_read() })
}

fn summary(checked: &Checked, path: &Path, verb: &str) -> serde_json::Value {
    let header = &checked.header;
    serde_json::json!({
        verb: path.display().to_string(),
        "events": header.events,
        "head": {"seq": header.head.seq, "hash": header.head.hash.to_hex()},
        "merkle_root": header.merkle_root.to_hex(),
        "checkpoints_verified": checked.checkpoints,
        "created_at": header.created_at.to_string(),
        "source_node": header.source_node,
        "bytes": checked.bytes,
    })
}

fn print(output: Output, value: &serde_json::Value, first_line: String) -> anyhow::Result<()> {
    emit(|out| match output {
        Output::Json => write_json(out, value),
        Output::Table => writeln!(
            out,
            "{first_line}\nevents: {} (seq 1..={})\nhead hash: {}\nmerkle root: {}\ncheckpoints verified: {}\n\
             taken at: {} from node {}\nsize: {} bytes",
            value["events"],
            value["head"]["seq"],
            value["head"]["hash"].as_str().unwrap_or(""),
            value["merkle_root"].as_str().unwrap_or(""),
            value["checkpoints_verified"],
            value["created_at"].as_str().unwrap_or(""),
            value["source_node"],
            value["bytes"],
        ),
    })?;
    Ok(())
}

/// `admin backup`: fetch, write to FILE.partial, check, then give it its name.
pub(crate) async fn backup(client: &Client, output: Output, args: BackupArgs) -> anyhow::Result<()> {
    let out = &args.out;
    if out.symlink_metadata().is_ok() {
        bail!("{} exists: a backup never replaces a file", out.display());
    }
    let mut partial_name = out.as_os_str().to_owned();
    partial_name.push(".partial");
    let partial = PathBuf::from(partial_name);
    // Only its owner reads it: no secret is in it, but who holds which key and when it was used is.
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {} (left by an earlier backup? remove it)", partial.display()))?;
    let written = fetch_into(client, file).await;
    let checked = written.and_then(|()| verify_file(&partial));
    let named = checked.and_then(|checked| {
        // A hard link never replaces an existing name, unlike a rename.
        std::fs::hard_link(&partial, out)
            .with_context(|| format!("cannot name the backup {} (does it exist now?)", out.display()))?;
        Ok(checked)
    });
    let removed = std::fs::remove_file(&partial);
    let checked = named?;
    removed.with_context(|| format!("cannot remove {}", partial.display()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    let value = summary(&checked, out, "written");
    print(output, &value, format!("OK: backup written to {} and verified.", out.display()))
}

async fn fetch_into(client: &Client, file: File) -> anyhow::Result<()> {
    let mut stream = client.backup().await?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    while let Some(chunk) = stream.chunk().await.context("the backup was cut off")? {
        writer.write_all(&chunk).context("cannot write the backup")?;
    }
    let file = writer.into_inner().map_err(|e| e.into_error()).context("cannot write the backup")?;
    file.sync_all().context("cannot sync the backup")?;
    Ok(())
}

/// `admin restore`: check the file, then write it into the new data dir (checking again).
pub(crate) fn restore(output: Output, args: RestoreArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.data_dir {
        check_empty_dir(dir)?;
    }
    let checked = verify_file(&args.file)?;
    let Some(dir) = &args.data_dir else {
        let value = summary(&checked, &args.file, "verified");
        return print(output, &value, format!("OK: {} checks out.", args.file.display()));
    };
    let reader = open_backup(&args.file)?;
    let mut checks = Checks::new();
    // Checked again as it is written (a failure removes what was written); the restore itself
    // compares the header's head and Merkle root with the events'.
    restore_into(dir, args.node_id, reader, |entry| checks.push(entry))
        .with_context(|| format!("cannot restore into {}", dir.display()))?;
    let value = summary(&checked, dir, "restored_into");
    print(
        output,
        &value,
        format!(
            "OK: restored into {}. Start it with `keyledger serve --data-dir {} --node-id {}`: it founds a new \
             cluster (new secret, new signing key); other nodes then join it with --join.",
            dir.display(),
            dir.display(),
            args.node_id
        ),
    )
}
