//! The frame every page shares and the answers every page can give: the layout, the security
//! headers, errors shown as sentences, and redirects.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, SET_COOKIE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::session::Session;

/// No inline script or style, no other origin, no framing, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A rendered page with the console's headers: the CSP, no caching (a page may show a secret
/// once), no referrer, no sniffing, no framing.
pub(crate) fn respond(status: StatusCode, body: Markup, cookies: &[String]) -> Response {
    let mut response = (status, axum::response::Html(body.into_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    headers.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
    response
}

/// `303 See Other` to `to`, after a form post (so a reload does not post again).
pub(crate) fn see_other(to: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(to) {
        headers.insert(LOCATION, value);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
    response
}

/// The console's pages; the operators' ones only for owners and admins (the API would refuse
/// the others anyway, or show them only themselves).
fn nav(session: &Session, current: &str) -> Markup {
    let link = |href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(current == href).then_some("page")] { (label) } }
        }
    };
    html! {
        nav aria-label="Main" {
            ul {
                (link("/ui/keys", "API keys"))
                (link("/ui/users", "Users"))
                (link("/ui/service-accounts", "Service accounts"))
                (link("/ui/namespaces", "Namespaces"))
                (link("/ui/settings", "Settings"))
                @if session.may("account:admin") {
                    (link("/ui/audit", "Audit"))
                    (link("/ui/cluster", "Cluster"))
                }
                // The cluster operator's (the API refuses anyone else).
                @if session.account == "default" && session.may("account:admin") {
                    (link("/ui/accounts", "Accounts"))
                }
            }
        }
    }
}

/// The frame of a signed-in page.
pub(crate) fn signed_in(session: &Session, title: &str, current: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    a.brand href="/ui/keys" { "keyledger" }
                    (nav(session, current))
                    div.who {
                        span { (session.identity.name) " · " (session.account) }
                        form method="post" action="/ui/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (main) }
            }
        }
    }
}

/// The frame of a page before sign-in.
pub(crate) fn public(title: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header { span.brand { "keyledger" } }
                main id="main" { (main) }
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · keyledger" }
            link rel="stylesheet" href="/ui/static/console.css";
            script src="/ui/static/console.js" defer {}
        }
    }
}

/// An error sentence, announced to screen readers, next to what caused it.
pub(crate) fn error_box(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.error role="alert" { (message) }
        }
    }
}

/// A notice after a change ("The key is disabled.").
pub(crate) fn notice_box(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.notice role="status" { (message) }
        }
    }
}
