//! `keyledger service-account ...`: non-human identities, account-scoped (a role) or
//! namespace-scoped (a permission in one namespace).

use std::io::{self, Write};

use clap::{ArgGroup, Args, Subcommand};
use keyledger_client::Client;
use keyledger_wire::{CreateServiceAccountRequest, ServiceAccount, ServiceAccountList};

use super::confirm::{confirm, YesArgs};
use super::table::Table;
use super::user::{Permission, Role};
use super::{deleted_json, emit, gather, write_json, Output, PageArgs};

#[derive(Subcommand)]
pub(crate) enum ServiceAccountCommand {
    /// Create a service account with an account role, or with a permission in one namespace.
    Create(CreateArgs),
    /// List the service accounts you may see (following the server's pages to the end, or to
    /// --limit).
    List(PageArgs),
    /// Show one service account.
    Get(IdArgs),
    /// Disable a service account: its keys stop verifying until it is enabled again.
    Disable(IdArgs),
    /// Enable a disabled service account.
    Enable(IdArgs),
    /// Delete a service account for good (asks first; --yes to skip the question).
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["role", "namespace"])))]
pub(crate) struct CreateArgs {
    /// The service account's name, unique in the account.
    #[arg(long)]
    name: String,
    /// Account-scoped: this account role.
    #[arg(long, value_enum)]
    role: Option<Role>,
    /// Namespace-scoped: this namespace (with --permission).
    #[arg(long, value_name = "NS", requires = "permission")]
    namespace: Option<String>,
    /// Namespace-scoped: the permission in --namespace.
    #[arg(long, value_enum, requires = "namespace")]
    permission: Option<Permission>,
}

impl CreateArgs {
    fn request(&self) -> CreateServiceAccountRequest {
        CreateServiceAccountRequest {
            name: self.name.clone(),
            role: self.role.map(|role| role.as_wire().to_string()),
            namespace: self.namespace.clone(),
            permission: self.permission.map(|permission| permission.as_wire().to_string()),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The service account's id.
    #[arg(long)]
    id: String,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The service account's id.
    #[arg(long)]
    id: String,
    #[command(flatten)]
    yes: YesArgs,
}

pub(crate) async fn run(client: &Client, output: Output, command: ServiceAccountCommand) -> anyhow::Result<()> {
    let account = match command {
        ServiceAccountCommand::Create(args) => client.create_service_account(&args.request()).await?.value,
        ServiceAccountCommand::List(args) => {
            let fetch = |page| async move { client.list_service_accounts_page(&page).await };
            let split = |l: ServiceAccountList| (l.service_accounts, l.next_cursor);
            let (service_accounts, next_cursor) = gather(args.limit, fetch, split).await?;
            let list = ServiceAccountList { service_accounts, next_cursor };
            return Ok(emit(|out| match output {
                Output::Json => write_json(out, &list),
                Output::Table => write_table(out, &list.service_accounts),
            })?);
        }
        ServiceAccountCommand::Get(args) => client.get_service_account(&args.id).await?,
        ServiceAccountCommand::Disable(args) => client.disable_service_account(&args.id).await?.value,
        ServiceAccountCommand::Enable(args) => client.enable_service_account(&args.id).await?.value,
        ServiceAccountCommand::Delete(args) => {
            if !args.yes.yes {
                let name = client.get_service_account(&args.id).await?.name;
                confirm(&format!("Delete service account {} ({name:?})?", args.id), &args.yes)?;
            }
            let written = client.delete_service_account(&args.id).await?;
            return Ok(emit(|out| match output {
                Output::Json => write_json(out, &deleted_json(&args.id, written.index)),
                Output::Table => writeln!(out, "Deleted service account {}.", args.id),
            })?);
        }
    };
    Ok(emit(|out| match output {
        Output::Json => write_json(out, &account),
        Output::Table => write_table(out, std::slice::from_ref(&account)),
    })?)
}

/// Service accounts as an aligned table, one per line.
fn write_table(out: &mut dyn Write, accounts: &[ServiceAccount]) -> io::Result<()> {
    if accounts.is_empty() {
        return writeln!(out, "No service accounts found.");
    }
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let mut table = Table::with_header(&["ID", "NAME", "ROLE", "NAMESPACE", "PERMISSION", "STATE", "CREATED"]);
    for account in accounts {
        table.row([
            account.id.clone(),
            account.name.clone(),
            dash(&account.role),
            dash(&account.namespace),
            dash(&account.permission),
            account.state.clone(),
            account.created_at.clone(),
        ]);
    }
    table.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(subcommand)]
        command: ServiceAccountCommand,
    }

    fn create(args: &[&str]) -> Result<CreateServiceAccountRequest, clap::Error> {
        let all = ["service-account", "create", "--name", "ci"].into_iter().chain(args.iter().copied());
        match Harness::try_parse_from(all)?.command {
            ServiceAccountCommand::Create(create) => Ok(create.request()),
            _ => panic!("not a create"),
        }
    }

    #[test]
    fn either_a_role_or_a_namespace_permission() {
        let req = create(&["--role", "developer"]).unwrap();
        assert_eq!((req.name.as_str(), req.role.as_deref()), ("ci", Some("developer")));
        assert_eq!((req.namespace, req.permission), (None, None));

        let req = create(&["--namespace", "payments", "--permission", "write"]).unwrap();
        assert_eq!(req.role, None);
        assert_eq!((req.namespace.as_deref(), req.permission.as_deref()), (Some("payments"), Some("write")));

        for bad in [
            &[][..],
            &["--namespace", "payments"],
            &["--permission", "read"],
            &["--role", "read", "--namespace", "payments", "--permission", "read"],
            &["--role", "superuser"],
        ] {
            assert!(create(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn table_shows_dashes_for_what_does_not_apply() {
        let account = ServiceAccount {
            id: "sa_1".into(),
            name: "pay".into(),
            role: None,
            namespace: Some("payments".into()),
            permission: Some("write".into()),
            state: "enabled".into(),
            created_at: "2025-01-01T00:00:00Z".into(),
        };
        let mut out = Vec::new();
        write_table(&mut out, &[account]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ID    NAME  ROLE  NAMESPACE  PERMISSION  STATE    CREATED\n\
             sa_1  pay   -     payments   write       enabled  2025-01-01T00:00:00Z\n"
        );
    }
}
