//! The tower [`Layer`] and [`Service`] that authenticate each request, and the axum extractor
//! [`Authenticated`] that hands the handler the verified identity.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Request};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::{KeyledgerAuth, Refusal, VerifiedKey};

/// Mounts [`AuthService`] on a service; made by [`KeyledgerAuth::layer`] or
/// [`KeyledgerAuth::require`].
#[derive(Clone)]
pub struct AuthLayer {
    auth: KeyledgerAuth,
    permission: Option<Arc<str>>,
}

impl AuthLayer {
    pub(crate) fn new(auth: KeyledgerAuth, permission: Option<Arc<str>>) -> AuthLayer {
        AuthLayer { auth, permission }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, auth: self.auth.clone(), permission: self.permission.clone() }
    }
}

/// Lets a request through to the inner service only with a valid key (granting the layer's
/// permission), the identity put in its extensions; answers every other request itself.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: KeyledgerAuth,
    permission: Option<Arc<str>>,
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The service that was polled ready is the one to call; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let permission = self.permission.clone();
        Box::pin(async move {
            let Some(key) = bearer_key(request.headers()) else {
                let missing = Refusal::Unauthenticated("send an API key as `Authorization: Bearer <key>`".into());
                return Ok(missing.into_response());
            };
            match auth.verify(key, permission.as_ref()).await {
                Ok(verified) => {
                    request.extensions_mut().insert(Authenticated(verified));
                    inner.call(request).await
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// The key of `Authorization: Bearer <key>`; the scheme in any case (RFC 9110 §11.1).
fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    let text = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = text.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The verified key of the request, for handlers behind an [`AuthLayer`]. A handler that
/// asks for it without the layer mounted answers `500`: a wiring mistake, never a pass.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<VerifiedKey>);

impl Deref for Authenticated {
    type Target = VerifiedKey;

    fn deref(&self) -> &VerifiedKey {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Authenticated, Response> {
        parts.extensions.get::<Authenticated>().cloned().ok_or_else(|| {
            tracing::error!("`Authenticated` extracted on a route without keyledger's AuthLayer");
            Refusal::Misconfigured("no AuthLayer".into()).into_response()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_not_keys() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            bearer_key(&headers).map(str::to_string)
        };
        assert_eq!(with("Bearer klk_x").as_deref(), Some("klk_x"));
        assert_eq!(with("bEARer   klk_x ").as_deref(), Some("klk_x"));
        assert_eq!(with("Basic klk_x"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(bearer_key(&HeaderMap::new()), None);
    }
}
