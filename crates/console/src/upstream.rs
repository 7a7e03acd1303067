//! The console asks the node's own HTTP API, in process, as the signed-in key: every rule of
//! who may see and do what is the API's (and so the model's), and the console cannot drift from
//! it. A call carries the browser's address, so the API's per-address limits count the browser.

use std::net::SocketAddr;

use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, IF_MATCH};
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use keyledger_wire as wire;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower::ServiceExt;

/// Largest answer the console reads from the API (a page of 1,000 keys is well under it).
const ANSWER_LIMIT: usize = 16 << 20;

/// The API router of this node.
#[derive(Clone)]
pub(crate) struct Upstream {
    api: Router,
}

/// Who a call is made for: the key it carries (none: empty) and the browser's address.
pub(crate) struct Caller<'a> {
    pub(crate) api_key: &'a str,
    pub(crate) client: Option<SocketAddr>,
}

/// What the API said instead of a success: its status and its sentence.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Refusal {
    /// The API no longer accepts the session's key.
    pub(crate) fn is_unauthenticated(&self) -> bool {
        self.status == StatusCode::UNAUTHORIZED
    }

    /// A form the console itself cannot send on.
    pub(crate) fn bad_form(message: &str) -> Refusal {
        Refusal { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    fn internal(what: impl std::fmt::Display) -> Refusal {
        tracing::warn!(error = %what, "the console could not read the API's answer");
        Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "the console could not read the API's answer; try again".into(),
        }
    }
}

impl Upstream {
    pub(crate) fn new(api: Router) -> Upstream {
        Upstream { api }
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, caller: &Caller<'_>, path: &str) -> Result<T, Refusal> {
        json(self.answer(caller, Method::GET, path, None::<&()>, None).await?).await
    }

    pub(crate) async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Refusal> {
        json(self.answer(caller, method, path, body, None).await?).await
    }

    /// A change guarded by the object's revision (`If-Match`).
    pub(crate) async fn send_if_match<B: Serialize, T: DeserializeOwned>(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: &B,
        revision: u64,
    ) -> Result<T, Refusal> {
        json(self.answer(caller, method, path, Some(body), Some(revision)).await?).await
    }

    /// A change whose answer has no body (`204`).
    pub(crate) async fn send_empty(&self, caller: &Caller<'_>, method: Method, path: &str) -> Result<(), Refusal> {
        success(self.answer(caller, method, path, None::<&()>, None).await?).await.map(|_| ())
    }

    /// A read whose answer is passed on as it arrives (an export), or the API's refusal.
    pub(crate) async fn stream(&self, caller: &Caller<'_>, path: &str) -> Result<Response, Refusal> {
        let answer = self.answer(caller, Method::GET, path, None::<&()>, None).await?;
        if answer.status().is_success() {
            return Ok(answer);
        }
        Err(refused(answer).await)
    }

    /// A read whose answer is text (`/metrics`).
    pub(crate) async fn text(&self, caller: &Caller<'_>, path: &str) -> Result<String, Refusal> {
        let bytes = success(self.answer(caller, Method::GET, path, None::<&()>, None).await?).await?;
        String::from_utf8(bytes.to_vec()).map_err(Refusal::internal)
    }

    /// Sends one request to the API as `caller` and gives its answer, whatever the status.
    async fn answer<B: Serialize>(
        &self,
        caller: &Caller<'_>,
        method: Method,
        path: &str,
        body: Option<&B>,
        revision: Option<u64>,
    ) -> Result<Response, Refusal> {
        let mut request = Request::builder().method(method).uri(path);
        if !caller.api_key.is_empty() {
            request = request.header(AUTHORIZATION, format!("Bearer {}", caller.api_key));
        }
        if let Some(revision) = revision {
            request = request.header(IF_MATCH, format!("\"{revision}\""));
        }
        let body = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(body).map_err(Refusal::internal)?)
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).map_err(Refusal::internal)?;
        if let Some(client) = caller.client {
            request.extensions_mut().insert(ConnectInfo(client));
        }
        self.api.clone().oneshot(request).await.map_err(Refusal::internal)
    }
}

/// A successful answer's JSON body, decoded; or the refusal an error answer carries.
async fn json<T: DeserializeOwned>(answer: Response) -> Result<T, Refusal> {
    let bytes = success(answer).await?;
    serde_json::from_slice(&bytes).map_err(Refusal::internal)
}

/// The body of a successful answer, or the refusal an error answer carries.
async fn success(answer: Response) -> Result<axum::body::Bytes, Refusal> {
    if !answer.status().is_success() {
        return Err(refused(answer).await);
    }
    to_bytes(answer.into_body(), ANSWER_LIMIT).await.map_err(Refusal::internal)
}

/// The refusal an error answer carries (the API's error shape).
async fn refused(answer: Response) -> Refusal {
    let status = answer.status();
    let bytes = match to_bytes(answer.into_body(), ANSWER_LIMIT).await {
        Ok(bytes) => bytes,
        Err(e) => return Refusal::internal(e),
    };
    match serde_json::from_slice::<wire::ErrorBody>(&bytes) {
        Ok(body) => Refusal { status, message: body.error.message },
        Err(e) => Refusal::internal(format!("a {status} answer without the error shape: {e}")),
    }
}
