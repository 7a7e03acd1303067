//! `keyledger account create`: another account and its owner, with the owner's one-time
//! enrollment code (shown this once), which the owner redeems with `keyledger login --enroll`.

use std::io::{self, Write};

use clap::{Args, Subcommand};
use keyledger_client::Client;
use keyledger_wire::{AccountList, AccountSummary, CreateAccountRequest, CreatedAccount};

use super::table::Table;
use super::{emit, gather, write_json, Output, PageArgs};

#[derive(Subcommand)]
pub(crate) enum AccountCommand {
    /// Create an account and its owner; the owner's enrollment code is printed this once.
    ///
    /// Only the cluster operator (an owner of account `default`) may create accounts. No key
    /// is created: the new owner redeems the code with `keyledger login --enroll CODE` for its
    /// own first key, so the operator never holds a credential of the new account.
    Create(CreateArgs),
    /// List the cluster's accounts (the cluster operator only), following the server's pages
    /// to the end, or to --limit.
    List(PageArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The account's name: 1 to 63 characters of a-z, 0-9 and -, starting with a letter.
    #[arg(long)]
    name: String,
    /// The name of the account's first user, its owner.
    #[arg(long, value_name = "NAME")]
    owner_name: String,
}

impl CreateArgs {
    fn request(&self) -> CreateAccountRequest {
        CreateAccountRequest { name: self.name.clone(), owner_name: self.owner_name.clone() }
    }
}

pub(crate) async fn run(client: &Client, output: Output, command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Create(args) => {
            let created = client.create_account(&args.request()).await?.value;
            emit(|out| match output {
                Output::Json => write_json(out, &created),
                Output::Table => write_created(out, &created),
            })?;
        }
        AccountCommand::List(args) => {
            let fetch = |page| async move { client.list_accounts_page(&page).await };
            let (accounts, next_cursor) =
                gather(args.limit, fetch, |l: AccountList| (l.accounts, l.next_cursor)).await?;
            let list = AccountList { accounts, next_cursor };
            emit(|out| match output {
                Output::Json => write_json(out, &list),
                Output::Table => write_accounts(out, &list.accounts),
            })?;
        }
    }
    Ok(())
}

fn write_accounts(out: &mut dyn Write, accounts: &[AccountSummary]) -> io::Result<()> {
    let mut table = Table::new();
    table.row(["NAME", "CREATED"]);
    for account in accounts {
        table.row([account.name.as_str(), account.created_at.as_str()]);
    }
    table.write(out)
}

fn write_created(out: &mut dyn Write, created: &CreatedAccount) -> io::Result<()> {
    writeln!(out, "Account {} created, with owner {}.", created.account, created.owner.name)?;
    writeln!(out)?;
    let mut table = Table::new();
    table.row(["ACCOUNT", created.account.as_str()]);
    table.row(["OWNER", created.owner.id.as_str()]);
    table.row(["CODE EXPIRES", created.expires_at.as_str()]);
    table.write(out)?;
    writeln!(out)?;
    writeln!(out, "Enrollment code (shown once, valid until {}): {}", created.expires_at, created.enrollment_code)?;
    writeln!(out, "The owner runs: keyledger login --enroll <code> --name <key name>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(subcommand)]
        command: AccountCommand,
    }

    #[test]
    fn flags_map_to_the_request() {
        let args = ["account", "create", "--name", "acme", "--owner-name", "root"];
        let AccountCommand::Create(create) = Harness::try_parse_from(args).unwrap().command else {
            panic!("not a create");
        };
        let expected = CreateAccountRequest { name: "acme".into(), owner_name: "root".into() };
        assert_eq!(create.request(), expected);
        assert!(Harness::try_parse_from(["account", "create", "--name", "acme"]).is_err());
        // No key is made, so there is no secret to write and no lifetime to give.
        for flag in [["--file", "secret.txt"], ["--duration", "30d"]] {
            let with = ["account", "create", "--name", "acme", "--owner-name", "root", flag[0], flag[1]];
            assert!(Harness::try_parse_from(with).is_err(), "{flag:?}");
        }
    }
}
