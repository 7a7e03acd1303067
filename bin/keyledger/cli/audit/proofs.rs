//! `keyledger audit public-key|checkpoints|prove|verify-proof`: the signed checkpoints and the
//! Merkle proofs an auditor keeps and checks offline.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use keyledger_audit::proofs::{verify_consistency, verify_inclusion, TrustedKeys};
use keyledger_client::Client;
use keyledger_wire::{AuditEvent, ConsistencyProof, InclusionProof};

use super::super::table::Table;
use super::super::{emit, write_json, Output};

#[derive(Debug, Args)]
pub(crate) struct PublicKeyArgs {
    /// Also write the document to this new file (what `--public-key` reads later).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CheckpointsArgs {
    /// Only checkpoints after this sequence number.
    #[arg(long, value_name = "SEQ")]
    after: Option<u64>,
    /// The most checkpoints to show (server default 100, at most 1000).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct ProveArgs {
    /// Prove that the event at this sequence number is in a checkpoint's tree.
    #[arg(long, value_name = "SEQ", conflicts_with = "from", required_unless_present = "from")]
    seq: Option<u64>,
    /// With --seq: the checkpoint (its seq) to prove against; the latest by default.
    #[arg(long, value_name = "SEQ", requires = "seq")]
    checkpoint: Option<u64>,
    /// Prove that a later checkpoint's tree extends the tree of the checkpoint at this seq.
    #[arg(long, value_name = "SEQ")]
    from: Option<u64>,
    /// With --from: the later checkpoint (its seq); the latest by default.
    #[arg(long, value_name = "SEQ", requires = "from")]
    to: Option<u64>,
    /// Write the proof to this new file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyProofArgs {
    /// The proof from `keyledger audit prove` (`-` for standard input).
    file: PathBuf,
    /// The keys to trust: a file saved from `audit public-key`, or hex keys separated by commas.
    #[arg(long, value_name = "FILE|KEYS")]
    public_key: String,
}

pub(crate) async fn public_key(client: &Client, output: Output, args: &PublicKeyArgs) -> anyhow::Result<()> {
    let keys = client.audit_public_keys().await?;
    if let Some(path) = &args.out {
        let mut text = serde_json::to_string_pretty(&keys)?;
        text.push('\n');
        write_new_file(path, text.as_bytes())?;
    }
    emit(|out| match output {
        Output::Json => write_json(out, &keys),
        Output::Table => {
            let mut table = Table::with_header(&["NODE", "PUBLIC KEY (ED25519)"]);
            for key in &keys.keys {
                table.row([key.node_id.to_string(), key.public_key.clone()]);
            }
            table.write(out)
        }
    })?;
    Ok(())
}

pub(crate) async fn checkpoints(client: &Client, output: Output, args: &CheckpointsArgs) -> anyhow::Result<()> {
    let list = client.audit_checkpoints(args.after, args.limit).await?;
    emit(|out| match output {
        Output::Json => write_json(out, &list),
        Output::Table => {
            let mut table = Table::with_header(&["SEQ", "TIME", "TREE SIZE", "ROOT", "SIGNER"]);
            for event in &list.checkpoints {
                table.row([
                    event.seq.to_string(),
                    event.time.clone(),
                    field(event, "tree_size"),
                    field(event, "root"),
                    field(event, "signer_node_id"),
                ]);
            }
            table.write(out)?;
            match list.next {
                Some(next) => writeln!(out, "\nMore checkpoints: --after {next}"),
                None => Ok(()),
            }
        }
    })?;
    Ok(())
}

fn field(event: &AuditEvent, name: &str) -> String {
    match &event.data[name] {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Writes the proof exactly as the server sent it: it is checked as it is, later, offline.
pub(crate) async fn prove(client: &Client, args: &ProveArgs) -> anyhow::Result<()> {
    let body = match (args.seq, args.from) {
        (Some(seq), _) => client.inclusion_proof(seq, args.checkpoint).await?,
        (None, Some(from)) => client.consistency_proof(from, args.to).await?,
        (None, None) => anyhow::bail!("give --seq or --from"),
    };
    match &args.out {
        Some(path) => write_new_file(path, &body)?,
        None => emit(|out| {
            out.write_all(&body)?;
            writeln!(out)
        })?,
    }
    Ok(())
}

pub(crate) fn verify_proof(output: Output, args: &VerifyProofArgs) -> anyhow::Result<()> {
    let trusted = trusted_keys(&args.public_key)?;
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin().lock())?
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let document: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", args.file.display()))?;
    let not_valid = || format!("{} is not a valid proof", args.file.display());
    let summary = if document.get("event").is_some() {
        let proof: InclusionProof = serde_json::from_value(document).context("not an inclusion proof")?;
        let included = verify_inclusion(&proof, &trusted).with_context(not_valid)?;
        serde_json::json!({
            "valid": true,
            "kind": "inclusion",
            "seq": included.seq,
            "checkpoint_seq": included.checkpoint_seq,
            "tree_size": included.tree_size,
            "signer_node_id": included.signer,
        })
    } else {
        let proof: ConsistencyProof = serde_json::from_value(document).context("not a consistency proof")?;
        let consistent = verify_consistency(&proof, &trusted).with_context(not_valid)?;
        serde_json::json!({
            "valid": true,
            "kind": "consistency",
            "from_tree_size": consistent.from_size,
            "to_tree_size": consistent.to_size,
        })
    };
    emit(|out| {
        match output {
        Output::Json => write_json(out, &summary),
        Output::Table if summary["kind"] == "inclusion" => writeln!(
            out,
            "OK: event {} is in the tree of {} events that checkpoint {} signed (node {}).",
            summary["seq"], summary["tree_size"], summary["checkpoint_seq"], summary["signer_node_id"]
        ),
        Output::Table => writeln!(
            out,
            "OK: the tree of {} events only appended to the tree of {} events; both checkpoints are signed by trusted keys.",
            summary["to_tree_size"], summary["from_tree_size"]
        ),
    }
    })?;
    Ok(())
}

/// `--public-key`: a file (the `audit public-key` document, or hex keys), else the keys themselves.
pub(crate) fn trusted_keys(given: &str) -> anyhow::Result<TrustedKeys> {
    let path = Path::new(given);
    let text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    } else {
        given.to_string()
    };
    TrustedKeys::parse(&text).map_err(|why| anyhow::anyhow!("--public-key: {why}"))
}

fn write_new_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
