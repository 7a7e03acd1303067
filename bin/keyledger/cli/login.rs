//! `keyledger login`: remember an address and an API key for later commands, in the user's
//! config dir with mode 0600; `keyledger logout` forgets them. Flags and environment variables
//! still take precedence over what is stored. `keyledger login --enroll CODE` first redeems a
//! one-time enrollment code for the user's own new key, and stores that.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use keyledger_client::Client;
use serde::{Deserialize, Serialize};

/// What `login` stores.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// The first address, as logins before several addresses stored it (and older binaries read).
    pub(crate) address: Option<String>,
    /// Every address given at login, tried in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) addresses: Vec<String>,
    pub(crate) api_key: Option<String>,
    /// The CA file given at login, used for its `https://` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cacert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// URL of any node of the cluster; several (repeated, or separated by commas) are all
    /// stored and tried in order.
    #[arg(long, env = "KEYLEDGER_ADDRESS", value_delimiter = ',', default_value = super::DEFAULT_ADDRESS)]
    address: Vec<String>,
    /// The API key to store (without it, read from standard input).
    #[arg(long, env = "KEYLEDGER_API_KEY", hide_env_values = true, value_name = "KEY")]
    api_key: Option<super::Secret>,
    /// Redeem this enrollment code (`kle_...`, from `user create` or `user enrollment`) for a
    /// new key of your own, and store that key.
    #[arg(long, value_name = "CODE")]
    enroll: Option<super::Secret>,
    /// With --enroll: the new key's name.
    #[arg(long, default_value = "cli login", requires = "enroll")]
    name: String,
    /// With --enroll: the new key's lifetime, e.g. 30d [default: the server's, 90 days].
    #[arg(long, value_name = "DURATION", requires = "enroll")]
    duration: Option<String>,
    /// CA certificate (PEM) to trust for an `https://` address; stored with the login.
    #[arg(long, env = "KEYLEDGER_CACERT", value_name = "FILE")]
    cacert: Option<PathBuf>,
}

/// `$KEYLEDGER_CONFIG`, else `$XDG_CONFIG_HOME/keyledger/config.json`, else
/// `~/.config/keyledger/config.json`.
pub(crate) fn config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KEYLEDGER_CONFIG") {
        return Some(PathBuf::from(path));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("keyledger").join("config.json"))
}

/// The stored login, if any. A file that cannot be read is an error, not silently ignored.
pub(crate) fn load() -> anyhow::Result<Stored> {
    let Some(path) = config_path() else { return Ok(Stored::default()) };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("cannot read {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

impl Stored {
    /// The stored addresses, in order (none when nothing was stored).
    pub(crate) fn addresses(&self) -> Vec<String> {
        if self.addresses.is_empty() {
            self.address.iter().cloned().collect()
        } else {
            self.addresses.clone()
        }
    }
}

/// The addresses of `--address` flags or `KEYLEDGER_ADDRESS`, each trimmed; empty ones dropped.
pub(crate) fn address_list(given: &[String]) -> Vec<String> {
    given.iter().map(|a| a.trim()).filter(|a| !a.is_empty()).map(str::to_string).collect()
}

pub(crate) async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let addresses = address_list(&args.address);
    if addresses.is_empty() {
        bail!("--address is empty: give the URL of at least one node");
    }
    let key = match (&args.enroll, args.api_key) {
        (Some(code), _) => {
            let request = keyledger_wire::EnrollRequest {
                code: code.expose().trim().to_string(),
                name: args.name.clone(),
                expires_in: args.duration.clone(),
                ..Default::default()
            };
            let created = Client::with_addresses(&addresses, None, None)?.enroll(&request).await?.value;
            eprintln!("Enrolled: key {} ({}) created for you.", created.key.id, created.key.name);
            created.secret
        }
        (None, Some(key)) => key.expose().to_string(),
        (None, None) => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("cannot read the API key from standard input")?;
            text.trim().to_string()
        }
    };
    if key.is_empty() {
        bail!("no API key given (use --api-key, KEYLEDGER_API_KEY or standard input)");
    }
    // Only a key the server accepts is worth storing.
    Client::with_addresses(&addresses, Some(key.clone()), args.cacert.as_deref())?.cluster_status().await?;
    let path = config_path().context("cannot find a config dir: set HOME or KEYLEDGER_CONFIG")?;
    // Stored absolute: later commands may run from another directory.
    let cacert = args.cacert.map(|file| std::path::absolute(&file).unwrap_or(file));
    let stored =
        Stored { address: addresses.first().cloned(), addresses: addresses.clone(), api_key: Some(key), cacert };
    write_private(&path, &serde_json::to_vec_pretty(&stored)?)?;
    eprintln!("Logged in to {}; the key is stored in {} (mode 0600).", addresses.join(", "), path.display());
    Ok(())
}

pub(crate) fn logout() -> anyhow::Result<()> {
    let Some(path) = config_path() else { return Ok(()) };
    match std::fs::remove_file(&path) {
        Ok(()) => eprintln!("Removed {}.", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => eprintln!("Not logged in."),
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    Ok(())
}

/// Replaces `path` with `bytes`, readable only by the user (directory 0700, file 0600).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
