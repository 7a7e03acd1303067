//! Methods for webhooks (`/v1/webhooks`).

use keyledger_wire as wire;
use reqwest::{Method, StatusCode};

use crate::{decode, expect, object_path, written, written_empty, Client, ClientError, Page, Written};

fn webhook_path(id: &str, suffix: &str) -> Result<String, ClientError> {
    object_path("/v1/webhooks", "webhook", id, suffix)
}

fn page_query(page: &Page) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    pairs.extend(page.limit.map(|n| ("limit", n.to_string())));
    pairs.extend(page.cursor.clone().map(|c| ("cursor", c)));
    pairs
}

impl Client {
    /// `POST /v1/webhooks`: the webhook and its signing secret (shown this once).
    pub async fn create_webhook(
        &self,
        req: &wire::CreateWebhookRequest,
    ) -> Result<Written<wire::CreatedWebhook>, ClientError> {
        let answer = self.send(Method::POST, "/v1/webhooks".into(), Some(req), &[]).await?;
        written(expect(answer, StatusCode::CREATED)?)
    }

    /// `GET /v1/webhooks`: one page; follow `next_cursor` for the next.
    pub async fn list_webhooks_page(&self, page: &Page) -> Result<wire::WebhookList, ClientError> {
        let answer = self.send(Method::GET, "/v1/webhooks".into(), None::<&()>, &page_query(page)).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/webhooks/{id}`.
    pub async fn get_webhook(&self, id: &str) -> Result<wire::Webhook, ClientError> {
        let answer = self.send(Method::GET, webhook_path(id, "")?, None::<&()>, &[]).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }

    /// `DELETE /v1/webhooks/{id}`.
    pub async fn delete_webhook(&self, id: &str) -> Result<Written<()>, ClientError> {
        written_empty(self.send(Method::DELETE, webhook_path(id, "")?, None::<&()>, &[]).await?)
    }

    /// `POST /v1/webhooks/{id}/rotate-secret`: the webhook and its new secret (shown this once).
    pub async fn rotate_webhook_secret(&self, id: &str) -> Result<Written<wire::CreatedWebhook>, ClientError> {
        let answer = self.send(Method::POST, webhook_path(id, "/rotate-secret")?, None::<&()>, &[]).await?;
        written(expect(answer, StatusCode::OK)?)
    }

    /// `GET /v1/webhooks/{id}/deliveries`: one page, newest first.
    pub async fn list_webhook_deliveries_page(
        &self,
        id: &str,
        page: &Page,
    ) -> Result<wire::WebhookDeliveryList, ClientError> {
        let answer = self.send(Method::GET, webhook_path(id, "/deliveries")?, None::<&()>, &page_query(page)).await?;
        decode(&expect(answer, StatusCode::OK)?)
    }
}
