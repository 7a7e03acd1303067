//! `keyledger settings ...`: the account's key policy.

use std::io::{self, Write};

use clap::{ArgAction, ArgGroup, Args, Subcommand};
use keyledger_client::Client;
use keyledger_wire::{Settings, UpdateSettingsRequest};

use super::table::Table;
use super::{emit, write_json, Output};

#[derive(Subcommand)]
pub(crate) enum SettingsCommand {
    /// Show the account's key policy.
    Get,
    /// Change the given fields of the account's key policy; the others keep their value.
    Set(SetArgs),
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("changes")
        .required(true)
        .multiple(true)
        .args([
            "key_creation_enabled",
            "max_key_lifetime",
            "allow_never_expiring",
            "max_keys_per_user",
            "max_keys_per_service_account",
            "max_users",
            "max_service_accounts",
            "max_namespaces",
            "max_accounts",
            "action_when_leaked",
            "last_used_granularity",
        ])
))]
pub(crate) struct SetArgs {
    /// Whether new keys may be created at all.
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, value_parser = clap::value_parser!(bool))]
    key_creation_enabled: Option<bool>,
    /// The longest lifetime a new key may have, e.g. 730d (between 1 day and 10 years).
    #[arg(long, value_name = "DURATION")]
    max_key_lifetime: Option<String>,
    /// Whether keys that never expire may be created.
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, value_parser = clap::value_parser!(bool))]
    allow_never_expiring: Option<bool>,
    /// How many keys one user may own at once.
    #[arg(long, value_name = "N")]
    max_keys_per_user: Option<u32>,
    /// How many keys one service account may own at once.
    #[arg(long, value_name = "N")]
    max_keys_per_service_account: Option<u32>,
    /// How many users (not deleted) the account may hold.
    #[arg(long, value_name = "N")]
    max_users: Option<u32>,
    /// How many service accounts (not deleted) the account may hold.
    #[arg(long, value_name = "N")]
    max_service_accounts: Option<u32>,
    /// How many namespaces the account may hold.
    #[arg(long, value_name = "N")]
    max_namespaces: Option<u32>,
    /// How many accounts the cluster may hold (account `default`, by the cluster operator).
    #[arg(long, value_name = "N")]
    max_accounts: Option<u32>,
    /// What a leak report (`POST /v1/keys/leaked`) does to the key.
    #[arg(long, value_name = "ACTION", value_parser = ["disable", "delete", "none"])]
    action_when_leaked: Option<String>,
    /// How often a key's use is recorded at most, e.g. 1h (between 1m and 7d; account
    /// `default`, by the cluster operator; applies to every account).
    #[arg(long, value_name = "DURATION")]
    last_used_granularity: Option<String>,
}

impl SetArgs {
    fn request(&self) -> UpdateSettingsRequest {
        UpdateSettingsRequest {
            key_creation_enabled: self.key_creation_enabled,
            max_key_lifetime: self.max_key_lifetime.clone(),
            allow_never_expiring: self.allow_never_expiring,
            max_keys_per_user: self.max_keys_per_user,
            max_keys_per_service_account: self.max_keys_per_service_account,
            max_users: self.max_users,
            max_service_accounts: self.max_service_accounts,
            max_namespaces: self.max_namespaces,
            max_accounts: self.max_accounts,
            action_when_leaked: self.action_when_leaked.clone(),
            last_used_granularity: self.last_used_granularity.clone(),
        }
    }
}

pub(crate) async fn run(client: &Client, output: Output, command: SettingsCommand) -> anyhow::Result<()> {
    let settings = match command {
        SettingsCommand::Get => client.get_settings().await?,
        SettingsCommand::Set(args) => client.update_settings(&args.request()).await?.value,
    };
    emit(|out| match output {
        Output::Json => write_json(out, &settings),
        Output::Table => write_settings(out, &settings),
    })?;
    Ok(())
}

/// One row per field, named as the `settings set` flag that changes it.
fn write_settings(out: &mut dyn Write, settings: &Settings) -> io::Result<()> {
    let mut table = Table::new();
    table.row(["key-creation-enabled".to_string(), settings.key_creation_enabled.to_string()]);
    table.row(["max-key-lifetime".to_string(), settings.max_key_lifetime.clone()]);
    table.row(["allow-never-expiring".to_string(), settings.allow_never_expiring.to_string()]);
    table.row(["max-keys-per-user".to_string(), settings.max_keys_per_user.to_string()]);
    table.row(["max-keys-per-service-account".to_string(), settings.max_keys_per_service_account.to_string()]);
    table.row(["max-users".to_string(), settings.max_users.to_string()]);
    table.row(["max-service-accounts".to_string(), settings.max_service_accounts.to_string()]);
    table.row(["max-namespaces".to_string(), settings.max_namespaces.to_string()]);
    if let Some(max_accounts) = settings.max_accounts {
        table.row(["max-accounts".to_string(), max_accounts.to_string()]);
    }
    table.row(["action-when-leaked".to_string(), settings.action_when_leaked.clone()]);
    table.row(["last-used-granularity".to_string(), settings.last_used_granularity.clone()]);
    table.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(subcommand)]
        command: SettingsCommand,
    }

    fn set(args: &[&str]) -> Result<UpdateSettingsRequest, clap::Error> {
        let all = ["settings", "set"].into_iter().chain(args.iter().copied());
        match Harness::try_parse_from(all)?.command {
            SettingsCommand::Set(set) => Ok(set.request()),
            SettingsCommand::Get => panic!("not a set"),
        }
    }

    #[test]
    fn only_the_given_fields_are_sent() {
        let req = set(&["--key-creation-enabled", "false", "--max-keys-per-user", "3"]).unwrap();
        let expected = UpdateSettingsRequest {
            key_creation_enabled: Some(false),
            max_keys_per_user: Some(3),
            ..Default::default()
        };
        assert_eq!(req, expected);
        let req = set(&["--allow-never-expiring", "true", "--max-key-lifetime", "30d"]).unwrap();
        assert_eq!(req.allow_never_expiring, Some(true));
        assert_eq!(req.max_key_lifetime.as_deref(), Some("30d"));
        assert_eq!(set(&["--max-keys-per-service-account", "9"]).unwrap().max_keys_per_service_account, Some(9));
        let caps =
            set(&["--max-users", "5", "--max-service-accounts", "6", "--max-namespaces", "7", "--max-accounts", "8"])
                .unwrap();
        let expected = UpdateSettingsRequest {
            max_users: Some(5),
            max_service_accounts: Some(6),
            max_namespaces: Some(7),
            max_accounts: Some(8),
            ..Default::default()
        };
        assert_eq!(caps, expected);
        assert_eq!(set(&["--action-when-leaked", "none"]).unwrap().action_when_leaked.as_deref(), Some("none"));
        assert!(set(&["--action-when-leaked", "ignore"]).is_err());

        assert!(set(&[]).is_err(), "a set changes something");
        assert!(set(&["--key-creation-enabled"]).is_err(), "true or false must be said");
        assert!(set(&["--allow-never-expiring", "maybe"]).is_err());
        assert!(set(&["--max-keys-per-user", "-1"]).is_err());
    }

    #[test]
    fn settings_table() {
        let settings = Settings {
            key_creation_enabled: true,
            max_key_lifetime: "730d".into(),
            allow_never_expiring: false,
            max_keys_per_user: 10,
            max_keys_per_service_account: 20,
            max_users: 1000,
            max_service_accounts: 1000,
            max_namespaces: 100,
            max_accounts: Some(1000),
            action_when_leaked: "disable".into(),
            last_used_granularity: "1h".into(),
        };
        let mut out = Vec::new();
        write_settings(&mut out, &settings).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "key-creation-enabled          true\n\
             max-key-lifetime              730d\n\
             allow-never-expiring          false\n\
             max-keys-per-user             10\n\
             max-keys-per-service-account  20\n\
             max-users                     1000\n\
             max-service-accounts          1000\n\
             max-namespaces                100\n\
             max-accounts                  1000\n\
             action-when-leaked            disable\n\
             last-used-granularity         1h\n"
        );
    }
}
