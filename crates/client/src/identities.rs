//! Methods for users, service accounts, namespaces, settings and accounts.

use keyledger_wire as wire;
use reqwest::{Method, StatusCode};

use crate::{decode, expect, object_path, written, written_empty, Client, ClientError, Page, Written};

/// Most pages a listing follows before it concludes the server is going round in circles.
const MAX_PAGES: usize = 100_000;

/// The query of one page.
fn page_query(page: &Page) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    pairs.extend(page.limit.map(|n| ("limit", n.to_string())));
    pairs.extend(page.cursor.clone().map(|c| ("cursor", c)));
    pairs
}

/// Fetches every page through `fetch`, gathering the items `split` takes out of each.
async fn every_page<L, T, F, Fut>(
    mut fetch: F,
    split: impl Fn(L) -> (Vec<T>, Option<String>),
) -> Result<Vec<T>, ClientError>
where
    F: FnMut(Page) -> Fut,
    Fut: std::future::Future<Output = Result<L, ClientError>>,
{
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let (page, next) = split(fetch(Page { limit: None, cursor: cursor.clone() }).await?);
        items.extend(page);
        match next {
            None => return Ok(items),
            // A server repeating a cursor would never end the listing.
            Some(next) if cursor.as_deref() == Some(next.as_str()) => break,
            Some(next) => cursor = Some(next),
        }
    }
    Err(ClientError::Decode("the listing does not end: a page cursor repeated, or too many pages".into()))
}

fn user_path(id: &str, suffix: &str) -> Result<String, ClientError> {
    object_path("/v1/users", "user", id, suffix)
}

fn service_account_path(id: &str, suffix: &str) -> Result<String, ClientError> {
    object_path("/v1/service-accounts", "service account", id, suffix)
}

/// `/v1/users/{id}/namespaces/{namespace}`, both encoded.
fn user_namespace_path(id: &str, namespace: &str) -> Result<String, ClientError> {
    let namespace = object_path("/namespaces", "namespace", namespace, "")?;
    user_path(id, &namespace)
}

impl Client {
    /// `POST /v1/users`: the user and its one-time enrollment code.
    pub async fn create_user(&self, req: &wire::CreateUserRequest) -> Result<Written<wire::CreatedUser>, ClientError> {
        let answer = self.send(Method::POST, "/v1/users".into(), Some(req), &[]).await?;
        written(expect(answer, StatusCode::CREATED)?)
    }

    /// `POST /v1/users/{id}/enrollment`: a fresh enrollment code, voiding the previous one.
    pub async fn issue_enrollment(&self, id: &str) -> Result<Written<wire::EnrollmentCode>, ClientError> {
        let answer = self.send(Method::POST, user_path(id, "/enrollment")?, None::<&()>, &[]).await?;
        written(expect(answer, StatusCode::CREATED)?)
    }

    /// `POST /v1/enroll`: redeems an enrollment code for the user's own key. Needs no API key
    /// (the client's is sent anyway when it has one; the server ignores it).
    pub async fn enroll(&self, req: &wire::EnrollRequest) -> Result<Written<wire::CreatedKey>, ClientError> {
        let answer = self.send(Method::POST, "/v1/enroll".into(), Some(req), &[]).await?;
        written(expect(answer, StatusCode::CREATED)?)
    }

    /// `GET /v1/users`, every page: every user of the account for an owner or admin, else only
    /// the caller.
    pub async fn list_users(&self) -> Result<wire::UserList, ClientError> {
        let users = every_page(
            |page| async move { self.list_users_page(&page).await },
            |l: wire::UserList| (l.users, l.next_cursor),
        )
        .await?;
        Ok(wire::UserList { users, next_cursor: None })
    }

    /// `GET /v1/users`: one page; follow `next_cursor` for the next.
    pub async fn list_users_page(&self, page: &Page) -> Result<wire::UserList, ClientError> {
        let answer = self.send(Method::GET, "/v1/users".into(), None::<&()>, &page_query(page)).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/users/{id}`.
    pub async fn get_user(&self, id: &str) -> Result<wire::User, ClientError> {
        let answer = self.send(Method::GET, user_path(id, "")?, None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `PATCH /v1/users/{id}` `{"role"}`.
    pub async fn set_user_role(&self, id: &str, role: &str) -> Result<Written<wire::User>, ClientError> {
        let req = wire::UpdateUserRequest { role: role.to_string() };
        let answer = self.send(Method::PATCH, user_path(id, "")?, Some(&req), &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `POST /v1/users/{id}/disable`: the user's keys stop verifying (`identity_disabled`).
    pub async fn disable_user(&self, id: &str) -> Result<Written<wire::User>, ClientError> {
        let answer = self.send(Method::POST, user_path(id, "/disable")?, None::<&()>, &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `POST /v1/users/{id}/enable`.
    pub async fn enable_user(&self, id: &str) -> Result<Written<wire::User>, ClientError> {
        let answer = self.send(Method::POST, user_path(id, "/enable")?, None::<&()>, &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `DELETE /v1/users/{id}`.
    pub async fn delete_user(&self, id: &str) -> Result<Written<()>, ClientError> {
        written_empty(self.send(Method::DELETE, user_path(id, "")?, None::<&()>, &[]).await?)
    }

    /// `PUT /v1/users/{id}/namespaces/{namespace}` `{"permission"}` (`admin`, `write`, `read`).
    pub async fn set_user_namespace(
        &self,
        id: &str,
        namespace: &str,
        permission: &str,
    ) -> Result<Written<wire::User>, ClientError> {
        let req = wire::NamespacePermissionRequest { permission: permission.to_string() };
        let answer = self.send(Method::PUT, user_namespace_path(id, namespace)?, Some(&req), &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `DELETE /v1/users/{id}/namespaces/{namespace}`: answers the user as it is after.
    pub async fn remove_user_namespace(&self, id: &str, namespace: &str) -> Result<Written<wire::User>, ClientError> {
        let answer = self.send(Method::DELETE, user_namespace_path(id, namespace)?, None::<&()>, &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `POST /v1/service-accounts`.
    pub async fn create_service_account(
        &self,
        req: &wire::CreateServiceAccountRequest,
    ) -> Result<Written<wire::ServiceAccount>, ClientError> {
        let answer = self.send(Method::POST, "/v1/service-accounts".into(), Some(req), &[]).await?;
        written(expect(answer, StatusCode::CREATED)?)
    }

    /// `GET /v1/service-accounts`, every page: those the caller may see.
    pub async fn list_service_accounts(&self) -> Result<wire::ServiceAccountList, ClientError> {
        let service_accounts = every_page(
            |page| async move { self.list_service_accounts_page(&page).await },
            |l: wire::ServiceAccountList| (l.service_accounts, l.next_cursor),
        )
        .await?;
        Ok(wire::ServiceAccountList { service_accounts, next_cursor: None })
    }

    /// `GET /v1/service-accounts`: one page; follow `next_cursor` for the next.
    pub async fn list_service_accounts_page(&self, page: &Page) -> Result<wire::ServiceAccountList, ClientError> {
        let answer = self.send(Method::GET, "/v1/service-accounts".into(), None::<&()>, &page_query(page)).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/service-accounts/{id}`.
    pub async fn get_service_account(&self, id: &str) -> Result<wire::ServiceAccount, ClientError> {
        let answer = self.send(Method::GET, service_account_path(id, "")?, None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `POST /v1/service-accounts/{id}/disable`.
    pub async fn disable_service_account(&self, id: &str) -> Result<Written<wire::ServiceAccount>, ClientError> {
        let answer = self.send(Method::POST, service_account_path(id, "/disable")?, None::<&()>, &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `POST /v1/service-accounts/{id}/enable`.
    pub async fn enable_service_account(&self, id: &str) -> Result<Written<wire::ServiceAccount>, ClientError> {
        let answer = self.send(Method::POST, service_account_path(id, "/enable")?, None::<&()>, &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `DELETE /v1/service-accounts/{id}`.
    pub async fn delete_service_account(&self, id: &str) -> Result<Written<()>, ClientError> {
        written_empty(self.send(Method::DELETE, service_account_path(id, "")?, None::<&()>, &[]).await?)
    }

    /// `POST /v1/namespaces`.
    pub async fn create_namespace(&self, name: &str) -> Result<Written<wire::Namespace>, ClientError> {
        let req = wire::CreateNamespaceRequest { name: name.to_string() };
        let answer = self.send(Method::POST, "/v1/namespaces".into(), Some(&req), &[]).await?;
        written(expect(answer, StatusCode::CREATED)?)
    }

    /// `GET /v1/namespaces`, every page: the namespaces of the caller's account.
    pub async fn list_namespaces(&self) -> Result<wire::NamespaceList, ClientError> {
        let namespaces = every_page(
            |page| async move { self.list_namespaces_page(&page).await },
            |l: wire::NamespaceList| (l.namespaces, l.next_cursor),
        )
        .await?;
        Ok(wire::NamespaceList { namespaces, next_cursor: None })
    }

    /// `GET /v1/namespaces`: one page; follow `next_cursor` for the next.
    pub async fn list_namespaces_page(&self, page: &Page) -> Result<wire::NamespaceList, ClientError> {
        let answer = self.send(Method::GET, "/v1/namespaces".into(), None::<&()>, &page_query(page)).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/accounts`, every page (the cluster operator only).
    pub async fn list_accounts(&self) -> Result<wire::AccountList, ClientError> {
        let accounts = every_page(
            |page| async move { self.list_accounts_page(&page).await },
            |l: wire::AccountList| (l.accounts, l.next_cursor),
        )
        .await?;
        Ok(wire::AccountList { accounts, next_cursor: None })
    }

    /// `GET /v1/accounts`: one page; follow `next_cursor` for the next.
    pub async fn list_accounts_page(&self, page: &Page) -> Result<wire::AccountList, ClientError> {
        let answer = self.send(Method::GET, "/v1/accounts".into(), None::<&()>, &page_query(page)).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/settings`: the caller's account's key policy.
    pub async fn get_settings(&self) -> Result<wire::Settings, ClientError> {
        let answer = self.send(Method::GET, "/v1/settings".into(), None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `PATCH /v1/settings`: changes the fields that are set.
    pub async fn update_settings(
        &self,
        req: &wire::UpdateSettingsRequest,
    ) -> Result<Written<wire::Settings>, ClientError> {
        let answer = self.send(Method::PATCH, "/v1/settings".into(), Some(req), &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `POST /v1/accounts`: another account and its owner, with the owner's one-time
    /// enrollment code (in this answer only); the owner redeems it with [`Client::enroll`].
    pub async fn create_account(
        &self,
        req: &wire::CreateAccountRequest,
    ) -> Result<Written<wire::CreatedAccount>, ClientError> {
        let answer = self.send(Method::POST, "/v1/accounts".into(), Some(req), &[]).await?;
        written(expect(answer, StatusCode::CREATED)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(user_path("usr_1", "/disable").unwrap(), "/v1/users/usr_1/disable");
        assert_eq!(service_account_path("sa_1", "").unwrap(), "/v1/service-accounts/sa_1");
        assert_eq!(user_namespace_path("usr_1", "pay ments").unwrap(), "/v1/users/usr_1/namespaces/pay%20ments");
        for (id, ns) in [("..", "payments"), ("usr_1", ".."), ("usr_1", "")] {
            let err = user_namespace_path(id, ns).unwrap_err();
            assert_eq!(err.code(), Some("not_found"), "{id} {ns}");
        }
    }
}
