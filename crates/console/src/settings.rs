//! Namespaces and the account's settings: the key policy (the creation switch, lifetimes, what
//! a leak report does) and the limits. Everyone reads them; owners and admins get the forms, and
//! the API decides whether each change is theirs to make.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use keyledger_wire as wire;
use maud::{html, Markup};
use serde::Deserialize;

use crate::session::ShownOnce;
use crate::{csrf_forms, notices, page, short_time, Console, Posted, SignedIn, SHOWN_ONCE};

csrf_forms!(NamespaceForm, SettingsForm, AccountForm);

pub(crate) async fn namespaces(State(console): State<Console>, signed_in: SignedIn) -> Response {
    let list: wire::NamespaceList = match console.upstream.get(&signed_in.caller(), "/v1/namespaces?limit=1000").await {
        Ok(list) => list,
        Err(refusal) => return console.refused(&signed_in, "Namespaces", refusal),
    };
    let notices = notices(&console, &signed_in);
    let body = html! {
        h1 { "Namespaces" }
        (page::notice_box(notices.done.as_deref()))
        (page::error_box(notices.top(std::iter::empty())))
        p { "A namespace groups service accounts and the users allowed into it; a key can be narrowed to namespaces." }
        div.table-wrap {
            table id="namespaces" {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } } }
                tbody {
                    @for namespace in &list.namespaces {
                        tr { td { code { (namespace.name) } } td.when { (short_time(&namespace.created_at)) } }
                    }
                    @if list.namespaces.is_empty() { tr { td colspan="2" { "No namespaces yet." } } }
                }
            }
        }
        @if signed_in.session.may("account:admin") {
            section aria-labelledby="new-namespace" {
                h2 id="new-namespace" { "Add a namespace" }
                form.inline-form method="post" action="/ui/namespaces" {
                    input type="hidden" name="csrf" value=(signed_in.session.csrf);
                    label for="namespace-name" { "Name" }
                    input id="namespace-name" name="name" type="text" required maxlength="63" pattern="[a-z][a-z0-9_-]*"
                        title="a-z, 0-9, - and _, starting with a letter";
                    button type="submit" { "Add namespace" }
                }
            }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "Namespaces", "/ui/namespaces", body), &[])
}

#[derive(Deserialize)]
pub(crate) struct NamespaceForm {
    csrf: String,
    name: String,
}

pub(crate) async fn create_namespace(
    State(console): State<Console>,
    Posted { signed_in, form }: Posted<NamespaceForm>,
) -> Response {
    let request = wire::CreateNamespaceRequest { name: form.name.trim().to_string() };
    let back = "/ui/namespaces";
    match console
        .upstream
        .send::<_, wire::Namespace>(&signed_in.caller(), Method::POST, "/v1/namespaces", Some(&request))
        .await
    {
        Ok(namespace) => console.done(&signed_in, back, format!("Added the namespace {}.", namespace.name)),
        Err(refusal) => console.refused_change(&signed_in, back, refusal),
    }
}

pub(crate) async fn settings(State(console): State<Console>, signed_in: SignedIn) -> Response {
    let current: wire::Settings = match console.upstream.get(&signed_in.caller(), "/v1/settings").await {
        Ok(settings) => settings,
        Err(refusal) => return console.refused(&signed_in, "Settings", refusal),
    };
    let notices = notices(&console, &signed_in);
    let editable = signed_in.session.may("account:admin");
    let body = html! {
        h1 { "Settings" }
        (page::notice_box(notices.done.as_deref()))
        (page::error_box(notices.top(std::iter::empty())))
        form.stacked method="post" action="/ui/settings" {
            input type="hidden" name="csrf" value=(signed_in.session.csrf);
            fieldset disabled[!editable] {
                legend { "Key policy" }
                label { input type="checkbox" name="key_creation_enabled" value="on" checked[current.key_creation_enabled]; " New keys may be created" }
                label { input type="checkbox" name="allow_never_expiring" value="on" checked[current.allow_never_expiring]; " Keys may never expire" }
                (field("max_key_lifetime", "Longest key lifetime (such as 730d)", &current.max_key_lifetime))
                label for="action_when_leaked" { "When a key is reported leaked" }
                select id="action_when_leaked" name="action_when_leaked" {
                    @for action in ["disable", "delete", "none"] {
                        option value=(action) selected[current.action_when_leaked == action] { (action) }
                    }
                }
            }
            fieldset disabled[!editable] {
                legend { "Limits" }
                (field("max_keys_per_user", "Keys per user", &current.max_keys_per_user.to_string()))
                (field("max_keys_per_service_account", "Keys per service account", &current.max_keys_per_service_account.to_string()))
                (field("max_users", "Users", &current.max_users.to_string()))
                (field("max_service_accounts", "Service accounts", &current.max_service_accounts.to_string()))
                (field("max_namespaces", "Namespaces", &current.max_namespaces.to_string()))
            }
            @if let Some(max_accounts) = current.max_accounts {
                // Shown for account `default` only: the cluster operator's settings.
                fieldset disabled[!editable] {
                    legend { "The cluster (its operator only)" }
                    (field("max_accounts", "Accounts in the cluster", &max_accounts.to_string()))
                    (field("last_used_granularity", "Record a key's last use once per (such as 1h)", &current.last_used_granularity))
                }
            } @else {
                p { "Last use is recorded once per " strong { (current.last_used_granularity) } " (the cluster operator's setting)." }
            }
            @if editable { div.buttons { button type="submit" { "Save settings" } } }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "Settings", "/ui/settings", body), &[])
}

fn field(name: &str, label: &str, value: &str) -> Markup {
    html! {
        label for=(name) { (label) }
        input id=(name) name=(name) type="text" value=(value) required;
    }
}

/// The settings form as posted: unchecked boxes are absent.
#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    csrf: String,
    key_creation_enabled: Option<String>,
    allow_never_expiring: Option<String>,
    max_key_lifetime: String,
    action_when_leaked: String,
    max_keys_per_user: String,
    max_keys_per_service_account: String,
    max_users: String,
    max_service_accounts: String,
    max_namespaces: String,
    /// The operator's, on account `default` only.
    max_accounts: Option<String>,
    last_used_granularity: Option<String>,
}

pub(crate) async fn save_settings(
    State(console): State<Console>,
    Posted { signed_in, form }: Posted<SettingsForm>,
) -> Response {
    let back = "/ui/settings";
    let current: wire::Settings = match console.upstream.get(&signed_in.caller(), "/v1/settings").await {
        Ok(settings) => settings,
        Err(refusal) => return console.refused_change(&signed_in, back, refusal),
    };
    let change = match changes(&current, &form) {
        Ok(change) => change,
        Err(message) => return console.refused_change(&signed_in, back, crate::upstream::Refusal::bad_form(&message)),
    };
    if change == wire::UpdateSettingsRequest::default() {
        return console.done(&signed_in, back, "Nothing changed.");
    }
    match console
        .upstream
        .send::<_, wire::Settings>(&signed_in.caller(), Method::PATCH, "/v1/settings", Some(&change))
        .await
    {
        Ok(_) => console.done(&signed_in, back, "Settings saved."),
        Err(refusal) => console.refused_change(&signed_in, back, refusal),
    }
}

/// Only what the form changed, so a field this caller may not set is not sent back unchanged.
fn changes(current: &wire::Settings, form: &SettingsForm) -> Result<wire::UpdateSettingsRequest, String> {
    fn number(label: &str, text: &str) -> Result<u32, String> {
        text.trim().parse().map_err(|_| format!("{label} must be a whole number"))
    }
    fn changed<T: PartialEq>(now: T, new: T) -> Option<T> {
        (now != new).then_some(new)
    }
    Ok(wire::UpdateSettingsRequest {
        key_creation_enabled: changed(current.key_creation_enabled, form.key_creation_enabled.is_some()),
        allow_never_expiring: changed(current.allow_never_expiring, form.allow_never_expiring.is_some()),
        max_key_lifetime: changed(current.max_key_lifetime.clone(), form.max_key_lifetime.trim().to_string()),
        action_when_leaked: changed(current.action_when_leaked.clone(), form.action_when_leaked.clone()),
        max_keys_per_user: changed(current.max_keys_per_user, number("Keys per user", &form.max_keys_per_user)?),
        max_keys_per_service_account: changed(
            current.max_keys_per_service_account,
            number("Keys per service account", &form.max_keys_per_service_account)?,
        ),
        max_users: changed(current.max_users, number("Users", &form.max_users)?),
        max_service_accounts: changed(
            current.max_service_accounts,
            number("Service accounts", &form.max_service_accounts)?,
        ),
        max_namespaces: changed(current.max_namespaces, number("Namespaces", &form.max_namespaces)?),
        max_accounts: match (&form.max_accounts, current.max_accounts) {
            (Some(text), Some(now)) => changed(now, number("Accounts in the cluster", text)?),
            _ => None,
        },
        last_used_granularity: form
            .last_used_granularity
            .as_ref()
            .and_then(|text| changed(current.last_used_granularity.clone(), text.trim().to_string())),
    })
}

/// The cluster's accounts (the cluster operator: an owner of account `default`; the API refuses
/// anyone else) and a form to add one, whose owner's enrollment code is shown once.
pub(crate) async fn accounts(State(console): State<Console>, signed_in: SignedIn) -> Response {
    let list: wire::AccountList = match console.upstream.get(&signed_in.caller(), "/v1/accounts?limit=1000").await {
        Ok(list) => list,
        Err(refusal) => return console.refused(&signed_in, "Accounts", refusal),
    };
    let notices = notices(&console, &signed_in);
    let body = html! {
        h1 { "Accounts" }
        (page::notice_box(notices.done.as_deref()))
        (page::error_box(notices.top(std::iter::empty())))
        p { "Each account has its own users, keys and audit trail; nobody in one sees another's." }
        div.table-wrap {
            table id="accounts" {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } } }
                tbody {
                    @for account in &list.accounts {
                        tr { td { code { (account.name) } } td.when { (short_time(&account.created_at)) } }
                    }
                }
            }
        }
        section aria-labelledby="new-account" {
            h2 id="new-account" { "Add an account" }
            p { "Its owner gets an enrollment code, shown once, that makes their own first key: you never hold a credential of the new account." }
            form.inline-form method="post" action="/ui/accounts" {
                input type="hidden" name="csrf" value=(signed_in.session.csrf);
                label for="account-name" { "Name" }
                input id="account-name" name="name" type="text" required maxlength="63";
                label for="owner-name" { "Owner's name" }
                input id="owner-name" name="owner_name" type="text" required maxlength="100";
                button type="submit" { "Add account" }
            }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "Accounts", "/ui/accounts", body), &[])
}

#[derive(Deserialize)]
pub(crate) struct AccountForm {
    csrf: String,
    name: String,
    owner_name: String,
}

pub(crate) async fn create_account(
    State(console): State<Console>,
    Posted { signed_in, form }: Posted<AccountForm>,
) -> Response {
    let request = wire::CreateAccountRequest {
        name: form.name.trim().to_string(),
        owner_name: form.owner_name.trim().to_string(),
    };
    let created: wire::CreatedAccount =
        match console.upstream.send(&signed_in.caller(), Method::POST, "/v1/accounts", Some(&request)).await {
            Ok(created) => created,
            Err(refusal) => return console.refused_change(&signed_in, "/ui/accounts", refusal),
        };
    let shown = ShownOnce {
        title: format!("Enrollment code for the owner of {}", created.account),
        name: created.owner.name,
        link: "/ui/accounts".into(),
        secret: created.enrollment_code,
    };
    console.sessions.show_once(&signed_in.id, shown);
    page::see_other(SHOWN_ONCE, &[])
}
