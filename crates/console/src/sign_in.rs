//! Signing in with an API key or an enrollment code, and signing out.
//!
//! Before there is a session, the sign-in forms are bound to a cookie of their own (a token in
//! the cookie and in the form, compared), so another site cannot sign a browser in as someone
//! else. A key is first tried on an authenticated API call, so wrong keys count against the
//! browser's address exactly as they do on the API.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{Extensions, HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Form;
use keyledger_wire as wire;
use maud::html;
use serde::Deserialize;

use crate::session::{self, Session, ShownOnce, SESSION_COOKIE, SIGN_IN_COOKIE};
use crate::upstream::{Caller, Refusal};
use crate::{page, Console, Posted, TokenForm};

/// How long a sign-in form stays usable.
const FORM_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    ended: Option<String>,
}

pub(crate) async fn form(State(console): State<Console>, query: Query<SignInQuery>) -> Response {
    let ended = query.ended.is_some().then_some(
        "Your session ended: its API key no longer works (disabled, deleted or expired), or it was idle too long.",
    );
    sign_in_page(&console, StatusCode::OK, ended)
}

/// The sign-in page with a fresh form token (and its cookie), and `error` beside the forms.
fn sign_in_page(console: &Console, status: StatusCode, error: Option<&str>) -> Response {
    let token = session::random_token();
    let cookie = session::set_cookie(SIGN_IN_COOKIE, &token, console.secure_cookies, Some(FORM_LIFETIME));
    let body = page::public(
        "Sign in",
        html! {
            h1 { "Sign in" }
            (page::error_box(error))
            section aria-labelledby="with-key" {
                h2 id="with-key" { "With an API key" }
                form method="post" action="/ui/sign-in" autocomplete="off" {
                    input type="hidden" name="csrf" value=(token);
                    label for="api_key" { "API key" }
                    input id="api_key" name="api_key" type="password" required autofocus
                        spellcheck="false" placeholder="klk_…";
                    button type="submit" { "Sign in" }
                }
            }
            section aria-labelledby="with-code" {
                h2 id="with-code" { "With an enrollment code" }
                p { "The code makes your own first API key, shown once. Keep it: it is how you sign in next time." }
                form method="post" action="/ui/enroll" autocomplete="off" {
                    input type="hidden" name="csrf" value=(token);
                    label for="code" { "Enrollment code" }
                    input id="code" name="code" type="password" required spellcheck="false" placeholder="kle_…";
                    label for="key_name" { "Name for your key" }
                    input id="key_name" name="key_name" type="text" required value="console";
                    button type="submit" { "Enroll" }
                }
            }
        },
    );
    page::respond(status, body, &[cookie])
}

/// The browser's address, as the accept loop recorded it.
fn client_of(extensions: &Extensions) -> Option<SocketAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)
}

/// The form's token matches the sign-in cookie.
fn form_token_ok(headers: &HeaderMap, token: &str) -> bool {
    session::cookie(headers, SIGN_IN_COOKIE).is_some_and(|cookie| session::same_token(cookie, token))
}

#[derive(Deserialize)]
pub(crate) struct KeyForm {
    csrf: String,
    api_key: String,
}

pub(crate) async fn with_key(
    State(console): State<Console>,
    extensions: Extensions,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    if !form_token_ok(&headers, &form.csrf) {
        return crate::forbidden_form();
    }
    let caller = Caller { api_key: form.api_key.trim(), client: client_of(&extensions) };
    match start(&console, &caller).await {
        Ok((_, cookie)) => page::see_other("/ui/keys", &[cookie, clear_form_cookie(&console)]),
        Err(message) => sign_in_page(&console, StatusCode::UNAUTHORIZED, Some(&message)),
    }
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    csrf: String,
    code: String,
    key_name: String,
}

pub(crate) async fn with_code(
    State(console): State<Console>,
    extensions: Extensions,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if !form_token_ok(&headers, &form.csrf) {
        return crate::forbidden_form();
    }
    let client = client_of(&extensions);
    let request = wire::EnrollRequest {
        code: form.code.trim().to_string(),
        name: form.key_name.trim().to_string(),
        description: Some("made at sign-in to the web console".into()),
        ..Default::default()
    };
    let anonymous = Caller { api_key: "", client };
    let created: wire::CreatedKey =
        match console.upstream.send(&anonymous, Method::POST, "/v1/enroll", Some(&request)).await {
            Ok(created) => created,
            Err(refusal) => return sign_in_page(&console, refusal.status, Some(&refusal.message)),
        };
    let caller = Caller { api_key: &created.secret, client };
    match start(&console, &caller).await {
        Ok((id, cookie)) => {
            let shown = ShownOnce::key(created.clone());
            console.sessions.show_once(&id, shown);
            page::see_other(crate::SHOWN_ONCE, &[cookie, clear_form_cookie(&console)])
        }
        Err(message) => sign_in_page(&console, StatusCode::UNAUTHORIZED, Some(&message)),
    }
}

/// Checks the key with the API and starts a session for it; gives the session's id and cookie,
/// or the sentence to show.
async fn start(console: &Console, caller: &Caller<'_>) -> Result<(String, String), String> {
    if caller.api_key.is_empty() {
        return Err("Paste an API key.".into());
    }
    // An authenticated call first: a wrong key is a failed authentication the API counts (and
    // limits) per address, as any other.
    let probe: Result<wire::KeyList, Refusal> = console.upstream.get(caller, "/v1/keys?limit=1").await;
    if let Err(refusal) = probe {
        return Err(match refusal.status {
            StatusCode::UNAUTHORIZED => "That API key is not valid: unknown, disabled, deleted or expired.".into(),
            _ => refusal.message,
        });
    }
    let check = wire::VerifyRequest { key: caller.api_key.to_string(), permission: None, min_index: None };
    let verdict: wire::VerifyResponse = console
        .upstream
        .send(caller, Method::POST, "/v1/verify", Some(&check))
        .await
        .map_err(|refusal| refusal.message)?;
    let (Some(identity), Some(account), true) = (verdict.identity, verdict.account, verdict.valid) else {
        return Err("That API key is not valid: unknown, disabled, deleted or expired.".into());
    };
    let session = Session::new(caller.api_key.to_string(), identity, account, verdict.permissions.unwrap_or_default());
    let id = console
        .sessions
        .start(session)
        .map_err(|_| "This node has too many open sessions; try again in a few minutes.".to_string())?;
    let cookie = session::set_cookie(SESSION_COOKIE, &id, console.secure_cookies, None);
    Ok((id, cookie))
}

fn clear_form_cookie(console: &Console) -> String {
    session::set_cookie(SIGN_IN_COOKIE, "", console.secure_cookies, Some(Duration::ZERO))
}

pub(crate) async fn sign_out(
    State(console): State<Console>,
    Posted { signed_in, form: _ }: Posted<TokenForm>,
) -> Response {
    console.sessions.end(&signed_in.id);
    let clear = session::set_cookie(SESSION_COOKIE, "", console.secure_cookies, Some(Duration::ZERO));
    page::see_other("/ui/sign-in", &[clear])
}
