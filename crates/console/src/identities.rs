//! Users and service accounts: the tables, creating them (a user's enrollment code shown once),
//! enabling and disabling, a user's role and a fresh enrollment code. The API decides who may
//! do each; the forms are offered to owners and admins only because others would be refused.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use keyledger_wire as wire;
use maud::{html, Markup};
use serde::Deserialize;

use crate::session::ShownOnce;
use crate::upstream::Refusal;
use crate::{
    csrf_forms, encode, notices, page, short_time, ActionForm, Console, Posted, SignedIn, TokenForm, SHOWN_ONCE,
};

csrf_forms!(NewUserForm, RoleForm, NewServiceAccountForm, GrantForm, RevokeForm);

/// The permissions within a namespace, strongest first.
const LEVELS: [&str; 3] = ["admin", "write", "read"];

/// The roles of an account, strongest first.
const ROLES: [&str; 4] = ["owner", "admin", "developer", "read"];

pub(crate) async fn users(State(console): State<Console>, signed_in: SignedIn) -> Response {
    let list: wire::UserList = match console.upstream.get(&signed_in.caller(), "/v1/users?limit=1000").await {
        Ok(list) => list,
        Err(refusal) => return console.refused(&signed_in, "Users", refusal),
    };
    let notices = notices(&console, &signed_in);
    let admin = signed_in.session.may("account:admin");
    let csrf = &signed_in.session.csrf;
    let suggestions = namespace_names(&console, &signed_in).await;
    let body = html! {
        h1 { "Users" }
        (suggestions)
        (page::notice_box(notices.done.as_deref()))
        (page::error_box(notices.top(list.users.iter().map(|u| u.id.as_str()))))
        div.table-wrap {
            table id="users" {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Namespaces" }
                    th scope="col" { "State" } th scope="col" { "Created" }
                    @if admin { th scope="col" { "Actions" } }
                } }
                tbody {
                    @for user in &list.users {
                        tr data-user-id=(user.id) {
                            td { (user.name) br; small { code { (user.id) } } }
                            td { (user.role) }
                            td { (namespaces(user, admin.then_some(csrf.as_str()))) }
                            td { span class={ "state " (user.state) } { (user.state) } }
                            td.when { (short_time(&user.created_at)) }
                            @if admin { td.actions { (user_actions(user, csrf)) } }
                        }
                        @if let Some(message) = notices.about(&user.id) {
                            tr.row-error { td colspan="6" { p.error role="alert" { (user.name) ": " (message) } } }
                        }
                    }
                }
            }
        }
        @if admin {
            section aria-labelledby="new-user" {
                h2 id="new-user" { "Add a user" }
                p { "The new user gets an enrollment code, shown once, which makes their own first key." }
                form.inline-form method="post" action="/ui/users" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="user-name" { "Name" }
                    input id="user-name" name="name" type="text" required maxlength="100";
                    label for="user-role" { "Role" }
                    (role_select("user-role", "developer"))
                    button type="submit" { "Add user" }
                }
            }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "Users", "/ui/users", body), &[])
}

/// A user's namespace permissions, each with a button to take it away when `csrf` is given
/// (owners and admins).
fn namespaces(user: &wire::User, csrf: Option<&str>) -> Markup {
    html! {
        @if user.namespaces.is_empty() { "–" }
        @for (namespace, level) in &user.namespaces {
            span.grant {
                code { (namespace) ":" (level) }
                @if let Some(csrf) = csrf {
                    form.inline method="post" action={ "/ui/users/" (user.id) "/namespaces/revoke" } {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="namespace" value=(namespace);
                        button.small type="submit" aria-label={ "Take " (namespace) " away from " (user.name) } { "×" }
                    }
                }
            }
            " "
        }
    }
}

fn level_select(id: &str) -> Markup {
    html! {
        select id=(id) name="permission" {
            @for level in LEVELS { option value=(level) selected[level == "read"] { (level) } }
        }
    }
}

fn role_select(id: &str, current: &str) -> Markup {
    html! {
        select id=(id) name="role" {
            @for role in ROLES { option value=(role) selected[role == current] { (role) } }
        }
    }
}

fn user_actions(user: &wire::User, csrf: &str) -> Markup {
    let path = format!("/ui/users/{}", user.id);
    html! {
        @if user.state != "deleted" {
            form.inline method="post" action={ (path) "/state" } {
                input type="hidden" name="csrf" value=(csrf);
                @if user.state == "enabled" {
                    input type="hidden" name="action" value="disable";
                    button.small type="submit" aria-label={ "Disable " (user.name) } { "Disable" }
                } @else {
                    input type="hidden" name="action" value="enable";
                    button.small type="submit" aria-label={ "Enable " (user.name) } { "Enable" }
                }
            }
            form.inline method="post" action={ (path) "/role" } {
                input type="hidden" name="csrf" value=(csrf);
                label.visually-hidden for={ "role-" (user.id) } { "Role of " (user.name) }
                (role_select(&format!("role-{}", user.id), &user.role))
                button.small type="submit" { "Set role" }
            }
            form.inline method="post" action={ (path) "/enrollment" } {
                input type="hidden" name="csrf" value=(csrf);
                button.small type="submit" aria-label={ "New enrollment code for " (user.name) } { "New code" }
            }
            a.button.small.danger href={ (path) "/delete" } aria-label={ "Delete " (user.name) } { "Delete" }
            form.inline method="post" action={ (path) "/namespaces" } {
                input type="hidden" name="csrf" value=(csrf);
                label.visually-hidden for={ "ns-" (user.id) } { "Namespace to grant " (user.name) }
                input id={ "ns-" (user.id) } name="namespace" type="text" size="10" placeholder="namespace" list="namespace-names" required;
                label.visually-hidden for={ "level-" (user.id) } { "Permission" }
                (level_select(&format!("level-{}", user.id)))
                button.small type="submit" { "Grant" }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct GrantForm {
    csrf: String,
    namespace: String,
    permission: String,
}

/// Gives a user a permission in a namespace (replacing the one it had there).
pub(crate) async fn grant_namespace(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form }: Posted<GrantForm>,
) -> Response {
    let path = format!("/v1/users/{}/namespaces/{}", encode(&id), encode(form.namespace.trim()));
    let request = wire::NamespacePermissionRequest { permission: form.permission };
    match console.upstream.send::<_, wire::User>(&signed_in.caller(), Method::PUT, &path, Some(&request)).await {
        Ok(user) => console.done(&signed_in, "/ui/users", format!("{} now has {}.", user.name, form.namespace.trim())),
        Err(refusal) => console.refused_row(&signed_in, "/ui/users", &id, refusal),
    }
}

#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    csrf: String,
    namespace: String,
}

/// Takes a user's permission in a namespace away.
pub(crate) async fn revoke_namespace(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form }: Posted<RevokeForm>,
) -> Response {
    let path = format!("/v1/users/{}/namespaces/{}", encode(&id), encode(&form.namespace));
    match console.upstream.send::<(), wire::User>(&signed_in.caller(), Method::DELETE, &path, None).await {
        Ok(user) => console.done(&signed_in, "/ui/users", format!("{} no longer has {}.", user.name, form.namespace)),
        Err(refusal) => console.refused_row(&signed_in, "/ui/users", &id, refusal),
    }
}

/// The account's namespace names, offered as suggestions in namespace fields.
async fn namespace_names(console: &Console, signed_in: &SignedIn) -> Markup {
    let names = console.upstream.get::<wire::NamespaceList>(&signed_in.caller(), "/v1/namespaces?limit=1000").await;
    html! {
        datalist id="namespace-names" {
            @for namespace in names.map(|l| l.namespaces).unwrap_or_default() { option value=(namespace.name) {} }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct NewUserForm {
    csrf: String,
    name: String,
    role: String,
}

pub(crate) async fn create_user(
    State(console): State<Console>,
    Posted { signed_in, form }: Posted<NewUserForm>,
) -> Response {
    let request = wire::CreateUserRequest { name: form.name.trim().to_string(), role: form.role };
    let created: wire::CreatedUser =
        match console.upstream.send(&signed_in.caller(), Method::POST, "/v1/users", Some(&request)).await {
            Ok(created) => created,
            Err(refusal) => return console.refused_change(&signed_in, "/ui/users", refusal),
        };
    show_code(&console, &signed_in, &created.user.name, created.enrollment_code)
}

/// Shows a user's enrollment code once.
fn show_code(console: &Console, signed_in: &SignedIn, name: &str, code: String) -> Response {
    let shown = ShownOnce {
        title: format!("Enrollment code for {name}"),
        name: name.to_string(),
        link: "/ui/users".into(),
        secret: code,
    };
    console.sessions.show_once(&signed_in.id, shown);
    page::see_other(SHOWN_ONCE, &[])
}

pub(crate) async fn user_state(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form }: Posted<ActionForm>,
) -> Response {
    let Some(action) = enable_or_disable(&form.action) else {
        return console.refused_row(&signed_in, "/ui/users", &id, Refusal::bad_form("no such action"));
    };
    let path = format!("/v1/users/{}/{action}", encode(&id));
    match console.upstream.send::<(), wire::User>(&signed_in.caller(), Method::POST, &path, None).await {
        Ok(user) => console.done(&signed_in, "/ui/users", format!("The user {} is {action}d.", user.name)),
        Err(refusal) => console.refused_row(&signed_in, "/ui/users", &id, refusal),
    }
}

fn enable_or_disable(action: &str) -> Option<&'static str> {
    match action {
        "enable" => Some("enable"),
        "disable" => Some("disable"),
        _ => None,
    }
}

#[derive(Deserialize)]
pub(crate) struct RoleForm {
    csrf: String,
    role: String,
}

pub(crate) async fn user_role(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form }: Posted<RoleForm>,
) -> Response {
    let path = format!("/v1/users/{}", encode(&id));
    let change = wire::UpdateUserRequest { role: form.role };
    match console.upstream.send::<_, wire::User>(&signed_in.caller(), Method::PATCH, &path, Some(&change)).await {
        Ok(user) => console.done(&signed_in, "/ui/users", format!("{} is now {}.", user.name, user.role)),
        Err(refusal) => console.refused_row(&signed_in, "/ui/users", &id, refusal),
    }
}

pub(crate) async fn user_code(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form: _ }: Posted<TokenForm>,
) -> Response {
    let path = format!("/v1/users/{}/enrollment", encode(&id));
    let issued: wire::EnrollmentCode =
        match console.upstream.send::<(), _>(&signed_in.caller(), Method::POST, &path, None).await {
            Ok(issued) => issued,
            Err(refusal) => return console.refused_row(&signed_in, "/ui/users", &id, refusal),
        };
    show_code(&console, &signed_in, &id, issued.enrollment_code)
}

pub(crate) async fn service_accounts(State(console): State<Console>, signed_in: SignedIn) -> Response {
    let list: wire::ServiceAccountList =
        match console.upstream.get(&signed_in.caller(), "/v1/service-accounts?limit=1000").await {
            Ok(list) => list,
            Err(refusal) => return console.refused(&signed_in, "Service accounts", refusal),
        };
    let notices = notices(&console, &signed_in);
    let admin = signed_in.session.may("account:admin");
    let csrf = &signed_in.session.csrf;
    let suggestions = namespace_names(&console, &signed_in).await;
    let body = html! {
        h1 { "Service accounts" }
        (suggestions)
        (page::notice_box(notices.done.as_deref()))
        (page::error_box(notices.top(list.service_accounts.iter().map(|s| s.id.as_str()))))
        div.table-wrap {
            table id="service-accounts" {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Grant" } th scope="col" { "State" }
                    th scope="col" { "Created" }
                    @if admin { th scope="col" { "Actions" } }
                } }
                tbody {
                    @for account in &list.service_accounts {
                        tr data-service-account-id=(account.id) {
                            td { (account.name) br; small { code { (account.id) } } }
                            td { (grant(account)) }
                            td { span class={ "state " (account.state) } { (account.state) } }
                            td.when { (short_time(&account.created_at)) }
                            @if admin && account.state != "deleted" {
                                td.actions {
                                    a.button.small.danger href={ "/ui/service-accounts/" (account.id) "/delete" } { "Delete" }
                                    form.inline method="post" action={ "/ui/service-accounts/" (account.id) "/state" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        @if account.state == "enabled" {
                                            input type="hidden" name="action" value="disable";
                                            button.small type="submit" { "Disable" }
                                        } @else {
                                            input type="hidden" name="action" value="enable";
                                            button.small type="submit" { "Enable" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if admin {
            section aria-labelledby="new-sa" {
                h2 id="new-sa" { "Add a service account" }
                p { "Then create its keys from the keys page, with the service account as the owner." }
                form.inline-form method="post" action="/ui/service-accounts" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="sa-name" { "Name" }
                    input id="sa-name" name="name" type="text" required maxlength="100";
                    label for="sa-role" { "Role" }
                    (role_select("sa-role", "read"))
                    label for="sa-namespace" { "or, bound to the namespace" }
                    input id="sa-namespace" name="namespace" type="text" size="10" list="namespace-names";
                    label for="sa-permission" { "with" }
                    (level_select("sa-permission"))
                    button type="submit" { "Add service account" }
                }
            }
        }
    };
    let frame = page::signed_in(&signed_in.session, "Service accounts", "/ui/service-accounts", body);
    page::respond(StatusCode::OK, frame, &[])
}

fn grant(account: &wire::ServiceAccount) -> String {
    match (&account.role, &account.namespace, &account.permission) {
        (Some(role), _, _) => role.clone(),
        (None, Some(ns), Some(permission)) => format!("{ns}:{permission}"),
        _ => "–".into(),
    }
}

#[derive(Deserialize)]
pub(crate) struct NewServiceAccountForm {
    csrf: String,
    name: String,
    role: String,
    /// Set: bound to this namespace with `permission`, and `role` is not used.
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    permission: String,
}

pub(crate) async fn create_service_account(
    State(console): State<Console>,
    Posted { signed_in, form }: Posted<NewServiceAccountForm>,
) -> Response {
    let namespace = Some(form.namespace.trim().to_string()).filter(|n| !n.is_empty());
    let request = wire::CreateServiceAccountRequest {
        name: form.name.trim().to_string(),
        role: namespace.is_none().then_some(form.role),
        permission: namespace.is_some().then_some(form.permission),
        namespace,
    };
    let path = "/v1/service-accounts";
    match console
        .upstream
        .send::<_, wire::ServiceAccount>(&signed_in.caller(), Method::POST, path, Some(&request))
        .await
    {
        Ok(account) => console.done(&signed_in, "/ui/service-accounts", format!("Added {}.", account.name)),
        Err(refusal) => console.refused_change(&signed_in, "/ui/service-accounts", refusal),
    }
}

pub(crate) async fn service_account_state(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form }: Posted<ActionForm>,
) -> Response {
    let back = "/ui/service-accounts";
    let Some(action) = enable_or_disable(&form.action) else {
        return console.refused_row(&signed_in, back, &id, Refusal::bad_form("no such action"));
    };
    let path = format!("/v1/service-accounts/{}/{action}", encode(&id));
    match console.upstream.send::<(), wire::ServiceAccount>(&signed_in.caller(), Method::POST, &path, None).await {
        Ok(account) => console.done(&signed_in, back, format!("{} is {action}d.", account.name)),
        Err(refusal) => console.refused_row(&signed_in, back, &id, refusal),
    }
}

/// What can be deleted from these pages: users and service accounts.
#[derive(Clone, Copy)]
pub(crate) enum Deletable {
    User,
    ServiceAccount,
}

impl Deletable {
    fn noun(self) -> &'static str {
        match self {
            Deletable::User => "user",
            Deletable::ServiceAccount => "service account",
        }
    }

    /// The console's page of them, which is also the API's collection after `/v1`.
    fn page(self) -> &'static str {
        match self {
            Deletable::User => "/ui/users",
            Deletable::ServiceAccount => "/ui/service-accounts",
        }
    }

    fn api(self, id: &str) -> String {
        format!("/v1{}/{}", self.page().trim_start_matches("/ui"), encode(id))
    }
}

/// Asks before deleting a user or a service account.
pub(crate) async fn delete_form(signed_in: SignedIn, Path(id): Path<String>, what: Deletable) -> Response {
    let body = html! {
        h1 { "Delete this " (what.noun()) "?" }
        p.warning { "Its keys stop verifying at once, and a deleted " (what.noun()) " cannot be brought back. Its history stays in the ledger." }
        p { code { (id) } }
        form.stacked method="post" action={ (what.page()) "/" (id) "/delete" } {
            input type="hidden" name="csrf" value=(signed_in.session.csrf);
            div.buttons { button.danger type="submit" { "Delete the " (what.noun()) } a href=(what.page()) { "Cancel" } }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "Delete", what.page(), body), &[])
}

pub(crate) async fn delete(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form: _ }: Posted<TokenForm>,
    what: Deletable,
) -> Response {
    match console.upstream.send_empty(&signed_in.caller(), Method::DELETE, &what.api(&id)).await {
        Ok(()) => console.done(&signed_in, what.page(), format!("The {} is deleted.", what.noun())),
        Err(refusal) => console.refused_row(&signed_in, what.page(), &id, refusal),
    }
}
