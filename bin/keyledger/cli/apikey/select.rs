//! Naming the key a command acts on: by `--id`, or by `--name` (the one live key with exactly
//! that name).

use anyhow::bail;
use clap::Args;
use keyledger_client::{Client, ClientError, ListKeys};
use keyledger_wire::{ErrorDetail, Key};

/// The largest page the server gives.
const MAX_PAGE: u32 = 1000;

/// `--id ID` or `--name NAME`: exactly one of them.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// The key's id.
    #[arg(long, required_unless_present = "name", conflicts_with = "name")]
    id: Option<String>,
    /// The key whose name is exactly NAME (not deleted); refused when several are.
    #[arg(long, value_name = "NAME", visible_alias = "key-name")]
    name: Option<String>,
}

impl KeyArgs {
    /// The key's id, looking it up by name when given one.
    pub(crate) async fn id(&self, client: &Client) -> anyhow::Result<String> {
        Ok(self.resolve(client).await?.0)
    }

    /// The key's id, and its name when it is already known (looked up by name).
    pub(crate) async fn resolve(&self, client: &Client) -> anyhow::Result<(String, Option<String>)> {
        resolve(client, self.id.as_deref(), self.name.as_deref()).await
    }
}

/// The id of the key named by `id`, or else by exactly `name`, with the name if looked up.
pub(crate) async fn resolve(
    client: &Client,
    id: Option<&str>,
    name: Option<&str>,
) -> anyhow::Result<(String, Option<String>)> {
    match (id, name) {
        (Some(id), _) => Ok((id.to_string(), None)),
        (None, Some(name)) => {
            let key = by_name(client, name).await?;
            Ok((key.id, Some(key.name)))
        }
        (None, None) => bail!("name the key with --id ID or --name NAME"),
    }
}

/// The one non-deleted key named exactly `name`. `GET /v1/keys?name=` matches any key whose
/// name *contains* the text, ignoring case, so every page is read and filtered here.
async fn by_name(client: &Client, name: &str) -> anyhow::Result<Key> {
    let mut query = ListKeys { name: Some(name.to_string()), limit: Some(MAX_PAGE), ..ListKeys::default() };
    let mut matches = Vec::new();
    loop {
        let page = client.list_keys(&query).await?;
        matches.extend(page.keys.into_iter().filter(|key| key.name == name && key.state != "deleted"));
        match page.next_cursor {
            Some(next) if query.cursor.as_deref() != Some(next.as_str()) => query.cursor = Some(next),
            Some(_) => bail!("the server answered the same page cursor twice; stopping the search"),
            None => break,
        }
    }
    pick(name, matches)
}

/// The one key of `matches`, or the error for none (as the server's `404 not_found`) or several.
fn pick(name: &str, mut matches: Vec<Key>) -> anyhow::Result<Key> {
    match matches.len() {
        0 => Err(ClientError::Api {
            status: 404,
            error: ErrorDetail {
                code: "not_found".into(),
                message: format!("no key you may see is named {name:?} (names must match exactly; see `apikey list --name-contains`)"),
                request_id: None,
            },
        }
        .into()),
        1 => Ok(matches.remove(0)),
        n => {
            let ids: Vec<&str> = matches.iter().map(|key| key.id.as_str()).collect();
            bail!("{n} keys are named {name:?}: {}; pass the one you mean with --id", ids.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> Key {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": "ci", "description": "", "account": "acc_1",
            "owner": {"kind": "user", "id": "usr_1", "name": "admin"},
            "state": "enabled", "locked": false, "hint": "abcd", "created_at": "2026-01-01T00:00:00Z",
            "created_by": {"kind": "user", "id": "usr_1", "key_id": null}, "revision": 1
        }))
        .unwrap()
    }

    #[test]
    fn exactly_one_match_is_picked() {
        assert_eq!(pick("ci", vec![key("key_1")]).unwrap().id, "key_1");
    }

    #[test]
    fn none_is_not_found_and_several_list_their_ids() {
        let err = pick("ci", Vec::new()).unwrap_err();
        assert_eq!(err.downcast_ref::<ClientError>().and_then(ClientError::code), Some("not_found"));
        let err = pick("ci", vec![key("key_1"), key("key_2")]).unwrap_err().to_string();
        assert!(err.contains("key_1, key_2") && err.contains("--id"), "{err}");
    }
}
