//! Methods for `/v1/keys`.

use keyledger_wire as wire;
use reqwest::header::{ETAG, IF_MATCH};
use reqwest::{Method, StatusCode};

use crate::{
    decode, expect, http, object_path, written, written_empty, Client, ClientError, ListKeys, Tagged, Written,
};

/// `/v1/keys/{id}{suffix}` with the id encoded (`404 not_found` for an id no path can hold).
pub(crate) fn key_path(id: &str, suffix: &str) -> Result<String, ClientError> {
    object_path("/v1/keys", "key", id, suffix)
}

impl Client {
    /// `POST /v1/keys`: creates a key; the answer holds its secret, shown this once.
    pub async fn create_key(&self, req: &wire::CreateKeyRequest) -> Result<Written<wire::CreatedKey>, ClientError> {
        let answer = self.send(Method::POST, "/v1/keys".into(), Some(req), &[]).await?;
        written(expect(answer, StatusCode::CREATED)?)
    }

    /// `POST /v1/keys/batch`: creates 1 to 1000 keys, each as [`Client::create_key`] would. The
    /// answer holds one result per key, in request order: each created key with its secret
    /// (shown this once), or the error that key alone met. A malformed item refuses the whole
    /// request (`400`) and creates nothing.
    pub async fn create_keys(&self, req: &wire::CreateKeysRequest) -> Result<Written<wire::CreatedKeys>, ClientError> {
        let answer = self.send(Method::POST, "/v1/keys/batch".into(), Some(req), &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/keys`: one page of keys; follow `next_cursor` for the next.
    pub async fn list_keys(&self, query: &ListKeys) -> Result<wire::KeyList, ClientError> {
        let pairs: Vec<(&str, String)> = [
            ("state", query.state.clone()),
            ("owner_kind", query.owner_kind.clone()),
            ("owner_id", query.owner_id.clone()),
            ("namespace", query.namespace.clone()),
            ("name", query.name.clone()),
            ("expiring_within", query.expiring_within.clone()),
            ("limit", query.limit.map(|n| n.to_string())),
            ("cursor", query.cursor.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect();
        let answer = self.send(Method::GET, "/v1/keys".into(), None::<&()>, &pairs).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/keys/summary`: the keys the caller may see, counted by state, and those
    /// expiring within 7 and 30 days.
    pub async fn key_summary(&self) -> Result<wire::KeySummary, ClientError> {
        let answer = self.send(Method::GET, "/v1/keys/summary".into(), None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/keys/{id}`: one key with its revision.
    pub async fn get_key(&self, id: &str) -> Result<Tagged<wire::Key>, ClientError> {
        let answer = self.send(Method::GET, key_path(id, "")?, None::<&()>, &[]).await?;
        let answer = expect(answer, StatusCode::OK)?;
        let revision = http::parse_etag(answer.headers.get(ETAG).map(|v| v.as_bytes()))?;
        Ok(Tagged { value: decode(&answer)?, revision })
    }

    /// `PATCH /v1/keys/{id}`: a new name and/or description. With `if_match`, the change is
    /// refused (`412 revision_mismatch`) unless the key is still at that revision.
    pub async fn update_key(
        &self,
        id: &str,
        req: &wire::UpdateKeyRequest,
        if_match: Option<u64>,
    ) -> Result<Written<wire::Key>, ClientError> {
        let headers: Vec<_> = if_match.map(|rev| (IF_MATCH, format!("\"{rev}\""))).into_iter().collect();
        let answer = self.send_with(Method::PATCH, key_path(id, "")?, Some(req), &[], &headers).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `POST /v1/keys/{id}/enable`.
    pub async fn enable_key(&self, id: &str) -> Result<Written<wire::Key>, ClientError> {
        self.key_action(id, "/enable").await
    }

    /// `POST /v1/keys/{id}/disable`.
    pub async fn disable_key(&self, id: &str) -> Result<Written<wire::Key>, ClientError> {
        self.key_action(id, "/disable").await
    }

    /// `POST /v1/keys/{id}/lock`: a locked key cannot be updated, disabled or deleted.
    pub async fn lock_key(&self, id: &str) -> Result<Written<wire::Key>, ClientError> {
        self.key_action(id, "/lock").await
    }

    /// `POST /v1/keys/{id}/unlock`.
    pub async fn unlock_key(&self, id: &str) -> Result<Written<wire::Key>, ClientError> {
        self.key_action(id, "/unlock").await
    }

    async fn key_action(&self, id: &str, action: &str) -> Result<Written<wire::Key>, ClientError> {
        let answer = self.send(Method::POST, key_path(id, action)?, None::<&()>, &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `POST /v1/keys/{id}/rotate`: a new key for the same identity, name and scope; the old
    /// one expires after the grace period. The answer holds the new secret, shown this once.
    pub async fn rotate_key(
        &self,
        id: &str,
        req: &wire::RotateKeyRequest,
    ) -> Result<Written<wire::RotatedKey>, ClientError> {
        let answer = self.send(Method::POST, key_path(id, "/rotate")?, Some(req), &[]).await?;
        written(expect(answer, StatusCode::CREATED)?)
    }

    /// `DELETE /v1/keys/{id}`.
    pub async fn delete_key(&self, id: &str) -> Result<Written<()>, ClientError> {
        written_empty(self.send(Method::DELETE, key_path(id, "")?, None::<&()>, &[]).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths() {
        assert_eq!(key_path("key_1", "").unwrap(), "/v1/keys/key_1");
        assert_eq!(key_path("a/b", "/enable").unwrap(), "/v1/keys/a%2Fb/enable");
        let err = key_path("..", "").unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(404), Some("not_found")));
        assert!(key_path("", "/disable").is_err());
    }
}
