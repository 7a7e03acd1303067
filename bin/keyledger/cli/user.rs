//! `keyledger user ...`: people of the account, their role and their namespace permissions.
//! Also home of the role and permission flag values, which service accounts share.

use std::io::{self, Write};

use clap::{Args, Subcommand, ValueEnum};
use keyledger_client::Client;
use keyledger_wire::{CreateUserRequest, User, UserList};

use super::confirm::{confirm, YesArgs};
use super::table::Table;
use super::{deleted_json, emit, gather, write_json, Output, PageArgs};

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user with an account role; prints its one-time enrollment code (valid 24 h),
    /// which the user redeems with `keyledger login --enroll CODE`.
    Create(CreateArgs),
    /// Issue a fresh enrollment code for a user (the previous one stops working).
    Enrollment(IdArgs),
    /// List users: every user for an owner or admin, else only yourself (following the
    /// server's pages to the end, or to --limit).
    List(PageArgs),
    /// Show one user.
    Get(IdArgs),
    /// Change a user's account role.
    SetRole(SetRoleArgs),
    /// Disable a user: its keys stop verifying (identity_disabled) until it is enabled again.
    Disable(IdArgs),
    /// Enable a disabled user.
    Enable(IdArgs),
    /// Delete a user for good (asks first; --yes to skip the question).
    Delete(DeleteArgs),
    /// Give a user a permission in a namespace (replacing the one it had there).
    Grant(GrantArgs),
    /// Take a user's permission in a namespace away.
    Revoke(RevokeArgs),
}

/// An account role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Role {
    Owner,
    Admin,
    Developer,
    Read,
}

impl Role {
    pub(super) fn as_wire(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Read => "read",
        }
    }
}

/// A permission in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Permission {
    Admin,
    Write,
    Read,
}

impl Permission {
    pub(super) fn as_wire(self) -> &'static str {
        match self {
            Permission::Admin => "admin",
            Permission::Write => "write",
            Permission::Read => "read",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The user's name, unique in the account.
    #[arg(long)]
    name: String,
    /// The user's account role.
    #[arg(long, value_enum)]
    role: Role,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The user's id.
    #[arg(long)]
    id: String,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The user's id.
    #[arg(long)]
    id: String,
    #[command(flatten)]
    yes: YesArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SetRoleArgs {
    /// The user's id.
    #[arg(long)]
    id: String,
    /// The new account role.
    #[arg(long, value_enum)]
    role: Role,
}

#[derive(Debug, Args)]
pub(crate) struct GrantArgs {
    /// The user's id.
    #[arg(long)]
    id: String,
    /// The namespace.
    #[arg(long, value_name = "NS")]
    namespace: String,
    /// The permission in it.
    #[arg(long, value_enum)]
    permission: Permission,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The user's id.
    #[arg(long)]
    id: String,
    /// The namespace.
    #[arg(long, value_name = "NS")]
    namespace: String,
}

pub(crate) async fn run(client: &Client, output: Output, command: UserCommand) -> anyhow::Result<()> {
    let user = match command {
        UserCommand::Create(args) => {
            let request = CreateUserRequest { name: args.name, role: args.role.as_wire().to_string() };
            let created = client.create_user(&request).await?.value;
            return Ok(emit(|out| match output {
                Output::Json => write_json(out, &created),
                Output::Table => {
                    write_user_table(out, std::slice::from_ref(&created.user))?;
                    write_code(out, &created.enrollment_code, None)
                }
            })?);
        }
        UserCommand::Enrollment(args) => {
            let code = client.issue_enrollment(&args.id).await?.value;
            return Ok(emit(|out| match output {
                Output::Json => write_json(out, &code),
                Output::Table => write_code(out, &code.enrollment_code, Some(&code.expires_at)),
            })?);
        }
        UserCommand::List(args) => {
            let fetch = |page| async move { client.list_users_page(&page).await };
            let (users, next_cursor) = gather(args.limit, fetch, |l: UserList| (l.users, l.next_cursor)).await?;
            let list = UserList { users, next_cursor };
            return Ok(emit(|out| match output {
                Output::Json => write_json(out, &list),
                Output::Table => write_user_table(out, &list.users),
            })?);
        }
        UserCommand::Get(args) => client.get_user(&args.id).await?,
        UserCommand::SetRole(args) => client.set_user_role(&args.id, args.role.as_wire()).await?.value,
        UserCommand::Disable(args) => client.disable_user(&args.id).await?.value,
        UserCommand::Enable(args) => client.enable_user(&args.id).await?.value,
        UserCommand::Delete(args) => {
            if !args.yes.yes {
                let name = client.get_user(&args.id).await?.name;
                confirm(&format!("Delete user {} ({name:?})?", args.id), &args.yes)?;
            }
            let written = client.delete_user(&args.id).await?;
            return Ok(emit(|out| match output {
                Output::Json => write_json(out, &deleted_json(&args.id, written.index)),
                Output::Table => writeln!(out, "Deleted user {}.", args.id),
            })?);
        }
        UserCommand::Grant(args) => {
            client.set_user_namespace(&args.id, &args.namespace, args.permission.as_wire()).await?.value
        }
        UserCommand::Revoke(args) => client.remove_user_namespace(&args.id, &args.namespace).await?.value,
    };
    Ok(emit(|out| match output {
        Output::Json => write_json(out, &user),
        Output::Table => write_user_table(out, std::slice::from_ref(&user)),
    })?)
}

/// The code, shown this once, and how the user redeems it.
fn write_code(out: &mut dyn Write, code: &str, expires_at: Option<&str>) -> io::Result<()> {
    let until = expires_at.map_or_else(|| "for 24 hours".to_string(), |at| format!("until {at}"));
    writeln!(out, "Enrollment code (shown once, valid {until}): {code}")?;
    writeln!(out, "The user runs: keyledger login --enroll <code> --name <key name>")
}

/// Users as an aligned table, one per line.
fn write_user_table(out: &mut dyn Write, users: &[User]) -> io::Result<()> {
    if users.is_empty() {
        return writeln!(out, "No users found.");
    }
    let mut table = Table::with_header(&["ID", "NAME", "ROLE", "NAMESPACES", "STATE", "CREATED"]);
    for user in users {
        let namespaces: Vec<String> = user.namespaces.iter().map(|(ns, level)| format!("{ns}:{level}")).collect();
        table.row([
            user.id.clone(),
            user.name.clone(),
            user.role.clone(),
            if namespaces.is_empty() { "-".to_string() } else { namespaces.join(",") },
            user.state.clone(),
            user.created_at.clone(),
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
        command: UserCommand,
    }

    fn parse(args: &[&str]) -> Result<UserCommand, clap::Error> {
        Harness::try_parse_from(std::iter::once("user").chain(args.iter().copied())).map(|h| h.command)
    }

    #[test]
    fn flags() {
        let Ok(UserCommand::Grant(grant)) =
            parse(&["grant", "--id", "usr_1", "--namespace", "payments", "--permission", "write"])
        else {
            panic!("not a grant")
        };
        assert_eq!((grant.namespace.as_str(), grant.permission.as_wire()), ("payments", "write"));
        let Ok(UserCommand::SetRole(set)) = parse(&["set-role", "--id", "usr_1", "--role", "developer"]) else {
            panic!("not a set-role")
        };
        assert_eq!(set.role.as_wire(), "developer");
        assert!(parse(&["create", "--name", "a", "--role", "root"]).is_err());
        assert!(parse(&["grant", "--id", "usr_1", "--namespace", "p", "--permission", "owner"]).is_err());
        assert!(parse(&["revoke", "--id", "usr_1"]).is_err());
        assert!(parse(&["list"]).is_ok());
        assert!(
            matches!(parse(&["enrollment", "--id", "usr_1"]), Ok(UserCommand::Enrollment(args)) if args.id == "usr_1")
        );
    }

    #[test]
    fn user_table() {
        let user = User {
            id: "usr_1".into(),
            name: "alice".into(),
            role: "developer".into(),
            namespaces: [("payments".into(), "write".into()), ("ops".into(), "read".into())].into(),
            state: "enabled".into(),
            created_at: "2025-01-01T00:00:00Z".into(),
        };
        let bob = User { id: "usr_2".into(), name: "bob".into(), namespaces: Default::default(), ..user.clone() };
        let mut out = Vec::new();
        write_user_table(&mut out, &[user, bob]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ID     NAME   ROLE       NAMESPACES               STATE    CREATED\n\
             usr_1  alice  developer  ops:read,payments:write  enabled  2025-01-01T00:00:00Z\n\
             usr_2  bob    developer  -                        enabled  2025-01-01T00:00:00Z\n"
        );
        let mut out = Vec::new();
        write_user_table(&mut out, &[]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "No users found.\n");
    }
}
