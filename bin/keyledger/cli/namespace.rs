//! `keyledger namespace ...`: the account's namespaces.

use std::io::{self, Write};

use clap::{Args, Subcommand};
use keyledger_client::Client;
use keyledger_wire::{Namespace, NamespaceList};

use super::table::Table;
use super::{emit, gather, write_json, Output, PageArgs};

#[derive(Subcommand)]
pub(crate) enum NamespaceCommand {
    /// Create a namespace.
    Create(CreateArgs),
    /// List the account's namespaces (following the server's pages to the end, or to --limit).
    List(PageArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The namespace's name, unique in the account.
    #[arg(long)]
    name: String,
}

pub(crate) async fn run(client: &Client, output: Output, command: NamespaceCommand) -> anyhow::Result<()> {
    match command {
        NamespaceCommand::Create(args) => {
            let namespace = client.create_namespace(&args.name).await?.value;
            emit(|out| match output {
                Output::Json => write_json(out, &namespace),
                Output::Table => write_table(out, std::slice::from_ref(&namespace)),
            })?;
        }
        NamespaceCommand::List(args) => {
            let fetch = |page| async move { client.list_namespaces_page(&page).await };
            let split = |l: NamespaceList| (l.namespaces, l.next_cursor);
            let (namespaces, next_cursor) = gather(args.limit, fetch, split).await?;
            let list = NamespaceList { namespaces, next_cursor };
            emit(|out| match output {
                Output::Json => write_json(out, &list),
                Output::Table => write_table(out, &list.namespaces),
            })?;
        }
    }
    Ok(())
}

fn write_table(out: &mut dyn Write, namespaces: &[Namespace]) -> io::Result<()> {
    if namespaces.is_empty() {
        return writeln!(out, "No namespaces found.");
    }
    let mut table = Table::with_header(&["NAME", "CREATED"]);
    for namespace in namespaces {
        table.row([namespace.name.as_str(), namespace.created_at.as_str()]);
    }
    table.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_table() {
        let payments = Namespace { name: "payments".into(), created_at: "2025-01-01T00:00:00Z".into() };
        let mut out = Vec::new();
        write_table(&mut out, &[payments]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "NAME      CREATED\npayments  2025-01-01T00:00:00Z\n");
        let mut out = Vec::new();
        write_table(&mut out, &[]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "No namespaces found.\n");
    }
}
