//! The web console at `/ui/`: pages rendered on the server (maud, compiled into the binary),
//! a stylesheet and one small script, no build step.
//!
//! Every page asks the node's own HTTP API, in process, as the signed-in key
//! (`upstream.rs`), so a role sees and can do in the console exactly what it can through the
//! API. The browser holds only a session id (`session.rs`); every form carries the session's
//! CSRF token; every page carries a strict Content-Security-Policy (`page.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde::de::DeserializeOwned;

mod audit;
mod charts;
mod cluster;
mod identities;
mod keys;
mod page;
mod session;
mod settings;
mod sign_in;
mod upstream;

use identities::Deletable;
use session::{Notice, Session, Sessions, SESSION_COOKIE};
use upstream::{Caller, Refusal, Upstream};

/// How the console is served.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleOptions {
    /// The node serves TLS: cookies are marked `Secure`.
    pub secure_cookies: bool,
}

#[derive(Clone)]
pub(crate) struct Console {
    upstream: Upstream,
    sessions: Arc<Sessions>,
    secure_cookies: bool,
    rates: Arc<charts::VerifyRates>,
}

/// The console's routes, calling `api` (this node's API router) for everything they show or do.
pub fn router(api: Router, options: ConsoleOptions) -> Router {
    let upstream = Upstream::new(api);
    let console = Console {
        rates: charts::VerifyRates::start(upstream.clone()),
        upstream,
        sessions: Arc::new(Sessions::default()),
        secure_cookies: options.secure_cookies,
    };
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/static/console.css", get(stylesheet))
        .route("/ui/static/console.js", get(script))
        .route("/ui/sign-in", get(sign_in::form).post(sign_in::with_key))
        .route("/ui/enroll", post(sign_in::with_code))
        .route("/ui/sign-out", post(sign_in::sign_out))
        .route("/ui/keys", get(keys::list).post(keys::create))
        .route("/ui/keys/new", get(keys::new))
        .route(SHOWN_ONCE, get(shown_once))
        .route("/ui/keys/{id}", get(keys::show))
        .route("/ui/keys/{id}/edit", post(keys::edit))
        .route("/ui/keys/{id}/state", post(keys::change_state))
        .route("/ui/keys/{id}/rotate", get(keys::rotate_form).post(keys::rotate))
        .route("/ui/keys/{id}/delete", get(keys::delete_form).post(keys::delete))
        .route("/ui/keys/{id}/as-of", post(keys::as_of))
        .route("/ui/users", get(identities::users).post(identities::create_user))
        .route("/ui/users/{id}/state", post(identities::user_state))
        .route("/ui/users/{id}/role", post(identities::user_role))
        .route("/ui/users/{id}/enrollment", post(identities::user_code))
        .route("/ui/users/{id}/namespaces", post(identities::grant_namespace))
        .route(
            "/ui/users/{id}/delete",
            get(|s, p| identities::delete_form(s, p, Deletable::User))
                .post(|c, p, f| identities::delete(c, p, f, Deletable::User)),
        )
        .route(
            "/ui/service-accounts/{id}/delete",
            get(|s, p| identities::delete_form(s, p, Deletable::ServiceAccount))
                .post(|c, p, f| identities::delete(c, p, f, Deletable::ServiceAccount)),
        )
        .route("/ui/users/{id}/namespaces/revoke", post(identities::revoke_namespace))
        .route("/ui/service-accounts", get(identities::service_accounts).post(identities::create_service_account))
        .route("/ui/service-accounts/{id}/state", post(identities::service_account_state))
        .route("/ui/namespaces", get(settings::namespaces).post(settings::create_namespace))
        .route("/ui/settings", get(settings::settings).post(settings::save_settings))
        .route("/ui/accounts", get(settings::accounts).post(settings::create_account))
        .route("/ui/cluster", get(cluster::page))
        .route("/ui/audit", get(audit::events))
        .route("/ui/audit/export", get(audit::export))
        .with_state(console)
}

/// Where a new secret (a key's, or an enrollment code) is shown, once.
pub(crate) const SHOWN_ONCE: &str = "/ui/shown-once";

/// The one view of a new secret: taken from the session as it is shown, so a reload finds
/// nothing, and never in a URL.
async fn shown_once(State(console): State<Console>, signed_in: SignedIn) -> Response {
    let shown = console.sessions.take_shown_once(&signed_in.id);
    let title = shown.as_ref().map_or("Nothing to show", |s| s.title.as_str()).to_string();
    let body = html! {
        @match shown {
            Some(shown) => {
                h1 { (shown.title) }
                div.secret-box role="dialog" aria-labelledby="secret-title" {
                    h2 id="secret-title" { "“" (shown.name) "”" }
                    p.warning role="alert" {
                        "Copy it now. It is shown this once and cannot be shown again: keyledger keeps only its hash."
                    }
                    label for="secret" { "Secret" }
                    div.copy-row {
                        input id="secret" type="text" readonly value=(shown.secret) spellcheck="false";
                        button type="button" data-copy="secret" { "Copy" }
                    }
                    p { a href=(shown.link) { "Go to “" (shown.name) "”" } }
                }
            }
            None => {
                h1 { "Nothing to show" }
                p { "A secret is shown once, right after it is made, and this one was already shown. If it was lost, rotate the key (or issue a new enrollment code)." }
                p { a href="/ui/keys" { "Back to the keys" } }
            }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, &title, "", body), &[])
}

async fn home(signed_in: Option<SignedIn>) -> Response {
    match signed_in {
        Some(_) => page::see_other("/ui/keys", &[]),
        None => page::see_other("/ui/sign-in", &[]),
    }
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("../assets/console.css"))
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../assets/console.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}

/// A request from a browser with a live session.
pub(crate) struct SignedIn {
    id: String,
    session: Session,
    client: Option<SocketAddr>,
}

impl SignedIn {
    pub(crate) fn caller(&self) -> Caller<'_> {
        Caller { api_key: &self.session.api_key, client: self.client }
    }
}

/// A form of one button: its token and nothing else (delete, sign out, a new code).
#[derive(serde::Deserialize)]
pub(crate) struct TokenForm {
    csrf: String,
}

/// A form of one button among several: its token and which action (`enable`, `disable`, ...).
#[derive(serde::Deserialize)]
pub(crate) struct ActionForm {
    csrf: String,
    pub(crate) action: String,
}

csrf_forms!(TokenForm, ActionForm);

/// A form that carries the session's CSRF token.
pub(crate) trait CsrfForm {
    fn csrf(&self) -> &str;
}

/// Implements [`CsrfForm`] for forms with a `csrf: String` field.
macro_rules! csrf_forms {
    ($($form:ty),+ $(,)?) => {$(
        impl crate::CsrfForm for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    )+};
}
pub(crate) use csrf_forms;

/// A form posted by a live session with that session's token: the only way a handler reads a
/// signed-in form. A post without the token is refused with `403` and changes nothing.
pub(crate) struct Posted<T> {
    pub(crate) signed_in: SignedIn,
    pub(crate) form: T,
}

impl<T: DeserializeOwned + CsrfForm + Send> FromRequest<Console> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let signed_in = <SignedIn as FromRequestParts<Console>>::from_request_parts(&mut parts, console).await?;
        let request = Request::from_parts(parts, body);
        let Form(form) = Form::<T>::from_request(request, console).await.map_err(|_| forbidden_form())?;
        if !session::same_token(form.csrf(), &signed_in.session.csrf) {
            return Err(forbidden_form());
        }
        Ok(Posted { signed_in, form })
    }
}

/// A form post without the right token (or not a form at all): refused, nothing changed.
pub(crate) fn forbidden_form() -> Response {
    let body = page::public(
        "Refused",
        html! {
            h1 { "This form could not be accepted" }
            p.error role="alert" {
                "It did not carry this session's token, so nothing was changed. Reload the page and try again."
            }
        },
    );
    page::respond(StatusCode::FORBIDDEN, body, &[])
}

impl FromRequestParts<Console> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        let id = session::cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned);
        let found = id.and_then(|id| console.sessions.get(&id).map(|session| (id, session)));
        let Some((id, session)) = found else {
            return Err(page::see_other("/ui/sign-in", &[]));
        };
        let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
        Ok(SignedIn { id, session, client })
    }
}

impl axum::extract::OptionalFromRequestParts<Console> for SignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Option<Self>, Self::Rejection> {
        Ok(<SignedIn as FromRequestParts<Console>>::from_request_parts(parts, console).await.ok())
    }
}

impl Console {
    /// The answer to an API refusal on a page: a key the API no longer accepts ends the
    /// session at once; anything else is shown as the API's sentence.
    pub(crate) fn refused(&self, signed_in: &SignedIn, title: &str, refusal: Refusal) -> Response {
        if refusal.is_unauthenticated() {
            return self.ended(&signed_in.id);
        }
        let body = page::signed_in(
            &signed_in.session,
            title,
            "",
            html! {
                h1 { (title) }
                (page::error_box(Some(&refusal.message)))
                p { a href="/ui/keys" { "Back to the keys" } }
            },
        );
        page::respond(refusal.status, body, &[])
    }

    /// After a refused change: back to `to`, with the API's sentence shown there.
    pub(crate) fn refused_change(&self, signed_in: &SignedIn, to: &str, refusal: Refusal) -> Response {
        self.refused_in(signed_in, to, None, refusal)
    }

    /// After a row's action was refused: back to `to`, the sentence shown beside row `id`.
    pub(crate) fn refused_row(&self, signed_in: &SignedIn, to: &str, id: &str, refusal: Refusal) -> Response {
        self.refused_in(signed_in, to, Some(id.to_string()), refusal)
    }

    fn refused_in(&self, signed_in: &SignedIn, to: &str, row: Option<String>, refusal: Refusal) -> Response {
        if refusal.is_unauthenticated() {
            return self.ended(&signed_in.id);
        }
        self.sessions.notify(&signed_in.id, Notice::Refused(refusal.message, row));
        page::see_other(to, &[])
    }

    /// After a change: back to `to`, with `done` shown there.
    pub(crate) fn done(&self, signed_in: &SignedIn, to: &str, done: impl Into<String>) -> Response {
        self.sessions.notify(&signed_in.id, Notice::Done(done.into()));
        page::see_other(to, &[])
    }

    /// The session's key stopped working: the session ends now.
    fn ended(&self, id: &str) -> Response {
        self.sessions.end(id);
        let clear = session::set_cookie(SESSION_COOKIE, "", self.secure_cookies, Some(std::time::Duration::ZERO));
        page::see_other("/ui/sign-in?ended=1", &[clear])
    }
}

/// The notice waiting for a page: what the last change did, or why it was refused.
pub(crate) struct Notices {
    pub(crate) done: Option<String>,
    refused: Option<(String, Option<String>)>,
}

impl Notices {
    /// The refusal to show at the top of a page whose rows are `rows`: one about no row, or
    /// about a row this page does not show.
    pub(crate) fn top<'a>(&self, mut rows: impl Iterator<Item = &'a str>) -> Option<&str> {
        match &self.refused {
            Some((message, None)) => Some(message),
            Some((message, Some(row))) if !rows.any(|shown| shown == row) => Some(message),
            _ => None,
        }
    }

    /// The refusal to show beside row `id`.
    pub(crate) fn about(&self, id: &str) -> Option<&str> {
        match &self.refused {
            Some((message, Some(row))) if row == id => Some(message),
            _ => None,
        }
    }
}

/// The notice waiting for this page, taken so that it shows once.
pub(crate) fn notices(console: &Console, signed_in: &SignedIn) -> Notices {
    match console.sessions.take_notice(&signed_in.id) {
        Some(Notice::Done(text)) => Notices { done: Some(text), refused: None },
        Some(Notice::Refused(text, row)) => Notices { done: None, refused: Some((text, row)) },
        None => Notices { done: None, refused: None },
    }
}

/// `2026-12-04T10:21:12.345Z` as `2026-12-04 10:21 UTC`.
fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(date), Some(time)) if rfc3339.ends_with('Z') => format!("{date} {time} UTC"),
        _ => rfc3339.to_string(),
    }
}

/// `name=value` pairs joined with `&`, values trimmed and encoded, empty ones left out.
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let present = pairs.iter().map(|(name, value)| (name, value.trim())).filter(|(_, value)| !value.is_empty());
    present.map(|(name, value)| format!("{name}={}", encode(value))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes everything but unreserved characters, for a path segment or query value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
