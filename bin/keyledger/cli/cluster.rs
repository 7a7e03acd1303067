//! `keyledger cluster ...`: what the cluster looks like from one node, and changing its members.

use std::io::{self, Write};

use clap::Subcommand;
use keyledger_client::Client;
use keyledger_wire::{AddMemberRequest, ClusterStatus};

use super::confirm::{confirm, YesArgs};
use super::examples;
use super::table::Table;
use super::{emit, write_json, Output};

/// How many hex digits of a ledger head's hash to show in a table.
const HASH_PREFIX: usize = 12;

#[derive(Subcommand)]
pub(crate) enum ClusterCommand {
    /// Members, leader, term, applied index and lag of each node.
    #[command(after_long_help = examples::CLUSTER_STATUS)]
    Status,
    /// Add a running node (started with `--standby` and the cluster's `--cluster-secret-file`):
    /// it must answer at `--node-address` as that node of this cluster (else nothing changes), is
    /// added as a learner, and becomes a voter once caught up (else it stays a learner).
    #[command(after_long_help = examples::CLUSTER_ADD)]
    Add {
        /// The new node's `--node-id`.
        #[arg(long)]
        node_id: u64,
        /// The `host:port` (or `https://host:port`) the other nodes reach it at. (Not
        /// `--address`: that is the member this command talks to.)
        #[arg(long, value_name = "ADDRESS")]
        node_address: String,
    },
    /// Remove a node, live or dead, from the cluster (asks first; --yes to skip the question).
    Remove {
        /// The node to remove.
        #[arg(long)]
        node_id: u64,
        #[command(flatten)]
        yes: YesArgs,
    },
}

pub(crate) async fn run(client: &Client, output: Output, command: ClusterCommand) -> anyhow::Result<()> {
    let status = match command {
        ClusterCommand::Status => client.cluster_status().await?,
        ClusterCommand::Add { node_id, node_address } => {
            client.add_cluster_member(&AddMemberRequest { node_id, address: node_address }).await?
        }
        ClusterCommand::Remove { node_id, yes } => {
            confirm(&format!("Remove node {node_id} from the cluster?"), &yes)?;
            client.remove_cluster_member(node_id).await?
        }
    };
    emit(|out| match output {
        Output::Json => write_json(out, &status),
        Output::Table => write_status(out, &status),
    })?;
    Ok(())
}

fn write_status(out: &mut dyn Write, status: &ClusterStatus) -> io::Result<()> {
    let mut summary = Table::new();
    summary.row(["NODE".to_string(), format!("{} (answering)", status.node_id)]);
    summary.row(["LEADER".to_string(), status.leader.map_or_else(|| "none".into(), |id| id.to_string())]);
    summary.row(["TERM".to_string(), status.term.to_string()]);
    summary.write(out)?;
    writeln!(out)?;

    let unknown = || "-".to_string();
    let mut members =
        Table::with_header(&["NODE", "ADDRESS", "ROLE", "LEADER", "APPLIED", "LAG", "LEDGER HEAD", "RELEASE"]);
    for member in &status.members {
        let head = member.ledger_head.as_ref().map_or_else(unknown, |head| {
            let short: String = head.hash.chars().take(HASH_PREFIX).collect();
            let verdict = match member.ledger_agrees {
                Some(true) => "",
                Some(false) => " DIVERGED",
                None => " ?",
            };
            format!("{} {short}{verdict}", head.seq)
        });
        members.row([
            member.node_id.to_string(),
            member.address.clone(),
            member.role.clone(),
            if status.leader == Some(member.node_id) { "*".into() } else { String::new() },
            member.applied_index.map_or_else(unknown, |i| i.to_string()),
            member.lag.map_or_else(unknown, |l| l.to_string()),
            head,
            member.release.clone().unwrap_or_else(unknown),
        ]);
    }
    members.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyledger_wire::{LedgerHead, Member};

    #[test]
    fn status_table() {
        let status = ClusterStatus {
            node_id: 2,
            leader: Some(1),
            term: 3,
            members: vec![
                Member {
                    node_id: 1,
                    address: "127.0.0.1:7700".into(),
                    role: "voter".into(),
                    applied_index: Some(120),
                    lag: Some(0),
                    ledger_head: Some(LedgerHead { seq: 41, hash: "abcdef0123456789abcdef".into() }),
                    ledger_agrees: Some(true),
                    release: Some("0.2.0".into()),
                },
                Member {
                    node_id: 2,
                    address: "127.0.0.1:7702".into(),
                    role: "learner".into(),
                    applied_index: None,
                    lag: None,
                    ledger_head: None,
                    ledger_agrees: None,
                    release: None,
                },
            ],
        };
        let mut out = Vec::new();
        write_status(&mut out, &status).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("NODE    2 (answering)\nLEADER  1\nTERM    3\n\n"), "{text}");
        assert!(
            text.contains("1     127.0.0.1:7700  voter    *       120      0    41 abcdef012345  0.2.0\n"),
            "{text}"
        );
        assert!(text.contains("2     127.0.0.1:7702  learner          -        -    -                -\n"), "{text}");
    }
}
