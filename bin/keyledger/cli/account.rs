//! `keyledger account create`: another account, its owner, and the owner's first API key,
//! whose secret is shown this once (or written to a new file).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use keyledger_client::Client;
use keyledger_wire::{AccountList, AccountSummary, CreateAccountRequest, CreatedAccount, Key, User};

use super::apikey::identity_long;
use super::table::Table;
use super::{emit, gather, write_json, write_secret_notice, Output, PageArgs, SecretFile};

#[derive(Subcommand)]
pub(crate) enum AccountCommand {
    /// Create an account, its owner and the owner's first key; the secret is printed this once.
    ///
    /// Only the cluster operator (an owner of account `default`) may create accounts. The new
    /// account shares nothing with yours.
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
    /// Lifetime of the owner's first key, e.g. 30d [default: 90d].
    #[arg(long)]
    duration: Option<String>,
    /// Write the owner's key secret to this new file (mode 0600) instead of printing it.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

impl CreateArgs {
    fn request(&self) -> CreateAccountRequest {
        CreateAccountRequest {
            name: self.name.clone(),
            owner_name: self.owner_name.clone(),
            expires_in: self.duration.clone(),
        }
    }
}

/// `account create --file --output json`: the answer without the secret, and where it went.
#[derive(serde::Serialize)]
struct AccountInFile<'a> {
    account: &'a str,
    owner: &'a User,
    key: &'a Key,
    secret_file: &'a Path,
}

pub(crate) async fn run(client: &Client, output: Output, command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Create(args) => {
            let file = args.file.as_deref();
            let reserved = SecretFile::reserve(file)?;
            let created = client.create_account(&args.request()).await?.value;
            if let Some(reserved) = reserved {
                let what = format!("the account {} with its owner's key {}", created.account, created.key.id);
                reserved.store(&created.secret, &what)?;
            }
            emit(|out| match (output, file) {
                (Output::Json, None) => write_json(out, &created),
                (Output::Json, Some(path)) => write_json(
                    out,
                    &AccountInFile {
                        account: &created.account,
                        owner: &created.owner,
                        key: &created.key,
                        secret_file: path,
                    },
                ),
                (Output::Table, _) => write_created(out, &created, file),
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

fn write_created(out: &mut dyn Write, created: &CreatedAccount, file: Option<&Path>) -> io::Result<()> {
    let headline = format!(
        "Account {} created, with owner {} and its first API key {}.",
        created.account, created.owner.name, created.key.id
    );
    write_secret_notice(out, &headline, &created.secret, file)?;
    writeln!(out)?;
    let mut table = Table::new();
    table.row(["ACCOUNT", created.account.as_str()]);
    table.row(["OWNER".to_string(), identity_long(&created.key.owner)]);
    table.row(["KEY ID", created.key.id.as_str()]);
    table.row(["EXPIRES", created.key.expires_at.as_deref().unwrap_or("never")]);
    table.write(out)
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
        let args = ["account", "create", "--name", "acme", "--owner-name", "root", "--duration", "30d"];
        let AccountCommand::Create(create) = Harness::try_parse_from(args).unwrap().command else {
            panic!("not a create");
        };
        let expected =
            CreateAccountRequest { name: "acme".into(), owner_name: "root".into(), expires_in: Some("30d".into()) };
        assert_eq!(create.request(), expected);
        assert!(Harness::try_parse_from(["account", "create", "--name", "acme"]).is_err());
    }
}
