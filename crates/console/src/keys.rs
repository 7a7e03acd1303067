//! The keys pages: the table with its filters, create (the secret shown once), a key's page
//! with its timeline and past verdicts, and the row actions. Every read and change is the API's
//! (`GET /v1/keys`, `POST /v1/keys/{id}/disable`, ...), made as the signed-in key.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use keyledger_wire as wire;
use maud::{html, Markup};
use serde::Deserialize;

use crate::session::ShownOnce;
use crate::upstream::Refusal;
use crate::{
    charts, csrf_forms, encode, notices, page, query_string, short_time, ActionForm, Console, Posted, SignedIn,
    TokenForm,
};

csrf_forms!(CreateForm, AsOfForm, EditForm, RotateForm);

/// Keys per page of the table.
const PAGE_SIZE: usize = 50;

/// The roles a key may be narrowed to, strongest first.
const ROLES: [&str; 4] = ["owner", "admin", "developer", "read"];

#[derive(Deserialize, Default)]
pub(crate) struct ListFilters {
    #[serde(default)]
    state: String,
    #[serde(default)]
    owner_kind: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    cursor: String,
}

impl ListFilters {
    /// The filters (empty ones left out) and `cursor` if any, as a query string.
    fn query(&self, cursor: &str) -> String {
        query_string(&[
            ("state", &self.state),
            ("owner_kind", &self.owner_kind),
            ("namespace", &self.namespace),
            ("name", &self.name),
            ("cursor", cursor),
        ])
    }
}

pub(crate) async fn list(
    State(console): State<Console>,
    signed_in: SignedIn,
    Query(filters): Query<ListFilters>,
) -> Response {
    let path = format!("/v1/keys?limit={PAGE_SIZE}&{}", filters.query(&filters.cursor));
    let page_of_keys: wire::KeyList = match console.upstream.get(&signed_in.caller(), &path).await {
        Ok(keys) => keys,
        Err(refusal) => return console.refused(&signed_in, "API keys", refusal),
    };
    // The pictures are extras: a refusal there leaves them out, not the page.
    let summary = console.upstream.get::<wire::KeySummary>(&signed_in.caller(), "/v1/keys/summary").await.ok();
    let (minutes, current) = console.rates.minutes(charts::read_counts(&console.upstream).await);
    let notices = notices(&console, &signed_in);
    let csrf = &signed_in.session.csrf;
    let next = page_of_keys.next_cursor.as_deref().map(|cursor| format!("/ui/keys?{}", filters.query(cursor)));
    let body = html! {
        div.title-row {
            h1 { "API keys" }
            a.button href="/ui/keys/new" { "Create API key" }
        }
        (page::notice_box(notices.done.as_deref()))
        (page::error_box(notices.top(page_of_keys.keys.iter().map(|k| k.id.as_str()))))
        @if let Some(summary) = &summary { (charts::overview(summary, &minutes, current)) }
        form.filters method="get" action="/ui/keys" role="search" {
            label { "Name" input type="search" name="name" value=(filters.name) placeholder="contains…"; }
            label { "State" (select("state", &filters.state, &[("", "any"), ("enabled", "enabled"), ("disabled", "disabled"), ("expired", "expired"), ("deleted", "deleted")])) }
            label { "Owner" (select("owner_kind", &filters.owner_kind, &[("", "any"), ("user", "users"), ("service_account", "service accounts")])) }
            label { "Namespace" input type="text" name="namespace" value=(filters.namespace); }
            button type="submit" { "Filter" }
        }
        div.table-wrap {
            table id="keys" {
                caption.visually-hidden { "API keys you may see" }
                thead {
                    tr {
                        th scope="col" { "Name" } th scope="col" { "Hint" } th scope="col" { "Owner" }
                        th scope="col" { "State" } th scope="col" { "Locked" } th scope="col" { "Created" }
                        th scope="col" { "Created by" } th scope="col" { "Expires" } th scope="col" { "Last used" }
                        th scope="col" { "Actions" }
                    }
                }
                tbody {
                    @for key in &page_of_keys.keys {
                        tr data-key-id=(key.id) {
                            td { a href={ "/ui/keys/" (key.id) } { (key.name) } }
                            td { code { "…" (key.hint) } }
                            td { (key.owner.name) " " small { "(" (owner_kind(&key.owner.kind)) ")" } }
                            td { span class={ "state " (key.state) } { (key.state) } }
                            td { @if key.locked { "locked" } @else { "–" } }
                            td.when { (short_time(&key.created_at)) }
                            td.by { (actor(&key.created_by)) }
                            td.when { (key.expires_at.as_deref().map(short_time).unwrap_or_else(|| "never".into())) }
                            td.when { (key.last_used_at.as_deref().map(short_time).unwrap_or_else(|| "–".into())) }
                            td.actions { (row_actions(key, csrf)) }
                        }
                        @if let Some(message) = notices.about(&key.id) {
                            tr.row-error { td colspan="10" { p.error role="alert" { (key.name) ": " (message) } } }
                        }
                    }
                    @if page_of_keys.keys.is_empty() {
                        tr { td colspan="10" { "No keys match." } }
                    }
                }
            }
        }
        @if let Some(next) = next {
            p { a rel="next" href=(next) { "Next page →" } }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "API keys", "/ui/keys", body), &[])
}

/// The actions a key's row offers, given its state (the API still decides whether they may).
fn row_actions(key: &wire::Key, csrf: &str) -> Markup {
    let live = key.state != "deleted";
    html! {
        @if live {
            @if key.state == "enabled" { (state_button(key, csrf, "disable", "Disable")) }
            @if key.state == "disabled" { (state_button(key, csrf, "enable", "Enable")) }
            @if key.locked { (state_button(key, csrf, "unlock", "Unlock")) } @else { (state_button(key, csrf, "lock", "Lock")) }
            @if key.state == "enabled" { a.button.small href={ "/ui/keys/" (key.id) "/rotate" } { "Rotate" } }
            a.button.small.danger href={ "/ui/keys/" (key.id) "/delete" } { "Delete" }
        }
    }
}

fn state_button(key: &wire::Key, csrf: &str, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/ui/keys/" (key.id) "/state" } {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="action" value=(action);
            button.small type="submit" aria-label={ (label) " " (key.name) } { (label) }
        }
    }
}

pub(crate) async fn change_state(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form }: Posted<ActionForm>,
) -> Response {
    let (action, done) = match form.action.as_str() {
        "enable" => ("enable", "enabled"),
        "disable" => ("disable", "disabled"),
        "lock" => ("lock", "locked"),
        "unlock" => ("unlock", "unlocked"),
        _ => return console.refused_row(&signed_in, "/ui/keys", &id, Refusal::bad_form("no such action")),
    };
    let path = format!("/v1/keys/{}/{action}", encode(&id));
    let answer: Result<wire::Key, Refusal> =
        console.upstream.send(&signed_in.caller(), Method::POST, &path, None::<&()>).await;
    match answer {
        Ok(key) => console.done(&signed_in, "/ui/keys", format!("The key “{}” is {done}.", key.name)),
        Err(refusal) => console.refused_row(&signed_in, "/ui/keys", &id, refusal),
    }
}

/// What the create form was given, to show it again beside an error.
#[derive(Deserialize, Default)]
pub(crate) struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// `duration`, `date` or `never`.
    #[serde(default)]
    expiry: String,
    #[serde(default)]
    expires_in: String,
    #[serde(default)]
    expires_on: String,
    /// Empty for the caller, else a service account's id.
    #[serde(default)]
    owner: String,
    /// Empty for no narrowing, else a role.
    #[serde(default)]
    scope_role: String,
    /// Empty, or namespaces and permissions: `payments:write, staging:read`.
    #[serde(default)]
    scope_namespaces: String,
}

impl CreateForm {
    /// The narrowing asked for: a role, namespaces, or none (not both).
    fn scope(&self) -> Result<Option<wire::KeyScope>, String> {
        match (self.scope_role.trim(), self.scope_namespaces.trim()) {
            ("", "") => Ok(None),
            (role, "") => Ok(Some(wire::KeyScope::Role(role.to_string()))),
            ("", namespaces) => namespaces.parse().map(Some),
            _ => Err("Narrow the key to a role or to namespaces, not both.".into()),
        }
    }
}

pub(crate) async fn new(State(console): State<Console>, signed_in: SignedIn) -> Response {
    let form = CreateForm { expiry: "duration".into(), expires_in: "90d".into(), ..Default::default() };
    create_page(&console, &signed_in, &form, StatusCode::OK, None).await
}

async fn create_page(
    console: &Console,
    signed_in: &SignedIn,
    form: &CreateForm,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    // The service accounts the caller may see are the owners it may pick (the API still
    // decides whether it may manage them).
    let accounts: Vec<wire::ServiceAccount> = console
        .upstream
        .get::<wire::ServiceAccountList>(&signed_in.caller(), "/v1/service-accounts?limit=1000")
        .await
        .map(|list| list.service_accounts.into_iter().filter(|s| s.state == "enabled").collect())
        .unwrap_or_default();
    let expiry = |value: &str| form.expiry == value;
    let body = html! {
        h1 { "Create API key" }
        (page::error_box(error))
        form.stacked method="post" action="/ui/keys" {
            input type="hidden" name="csrf" value=(signed_in.session.csrf);
            label for="name" { "Name" }
            input id="name" name="name" type="text" required maxlength="100" value=(form.name) autofocus;
            label for="description" { "Description" }
            textarea id="description" name="description" rows="2" maxlength="1000" { (form.description) }
            fieldset {
                legend { "Expires" }
                label { input type="radio" name="expiry" value="duration" checked[expiry("duration")]; " after " }
                input type="text" name="expires_in" value=(form.expires_in) aria-label="Lifetime, such as 30d or 12h" size="6";
                label { input type="radio" name="expiry" value="date" checked[expiry("date")]; " on " }
                input type="date" name="expires_on" value=(form.expires_on) aria-label="Expiry date (UTC)";
                label { input type="radio" name="expiry" value="never" checked[expiry("never")]; " never (where the account allows it)" }
            }
            label for="owner" { "Owner" }
            select id="owner" name="owner" {
                option value="" selected[form.owner.is_empty()] { "Me (" (signed_in.session.identity.name) ")" }
                @for account in &accounts {
                    option value=(account.id) selected[form.owner == account.id] { "Service account " (account.name) }
                }
            }
            label for="scope_role" { "Narrow to a role" }
            select id="scope_role" name="scope_role" {
                option value="" selected[form.scope_role.is_empty()] { "No narrowing: the owner's permissions" }
                @for role in ROLES {
                    option value=(role) selected[form.scope_role == role] { "at most " (role) }
                }
            }
            label for="scope_namespaces" { "Or narrow to namespaces" }
            input id="scope_namespaces" name="scope_namespaces" type="text" value=(form.scope_namespaces)
                placeholder="payments:write, staging:read" aria-describedby="scope-help";
            small id="scope-help" { "Each namespace with read, write or admin; the key can then do only that." }
            div.buttons {
                button type="submit" { "Create" }
                a href="/ui/keys" { "Cancel" }
            }
        }
    };
    let frame = page::signed_in(&signed_in.session, "Create API key", "/ui/keys", body);
    page::respond(status, frame, &[])
}

pub(crate) async fn create(State(console): State<Console>, Posted { signed_in, form }: Posted<CreateForm>) -> Response {
    let mut request = wire::CreateKeyRequest {
        name: form.name.trim().to_string(),
        description: Some(form.description.trim().to_string()).filter(|d| !d.is_empty()),
        ..Default::default()
    };
    match form.expiry.as_str() {
        "never" => request.never_expires = Some(true),
        "date" if !form.expires_on.is_empty() => request.expires_at = Some(format!("{}T00:00:00Z", form.expires_on)),
        "date" => {
            return create_page(&console, &signed_in, &form, StatusCode::BAD_REQUEST, Some("Pick the expiry date."))
                .await
        }
        _ => request.expires_in = Some(form.expires_in.trim().to_string()).filter(|d| !d.is_empty()),
    }
    if !form.owner.is_empty() {
        request.owner = Some(wire::OwnerRef { kind: wire::OwnerKind::ServiceAccount, id: form.owner.clone() });
    }
    match form.scope() {
        Ok(scope) => request.scope = scope,
        Err(message) => return create_page(&console, &signed_in, &form, StatusCode::BAD_REQUEST, Some(&message)).await,
    }
    let created: wire::CreatedKey =
        match console.upstream.send(&signed_in.caller(), Method::POST, "/v1/keys", Some(&request)).await {
            Ok(created) => created,
            Err(refusal) if refusal.is_unauthenticated() => return console.refused(&signed_in, "", refusal),
            Err(refusal) => {
                return create_page(&console, &signed_in, &form, refusal.status, Some(&refusal.message)).await
            }
        };
    let shown = ShownOnce::key(created);
    console.sessions.show_once(&signed_in.id, shown);
    page::see_other(crate::SHOWN_ONCE, &[])
}

#[derive(Deserialize)]
pub(crate) struct AsOfForm {
    csrf: String,
    at: String,
}

pub(crate) async fn show(State(console): State<Console>, signed_in: SignedIn, Path(id): Path<String>) -> Response {
    key_page(&console, &signed_in, &id, None).await
}

/// A key's verdict at a past moment, on its page.
pub(crate) async fn as_of(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form }: Posted<AsOfForm>,
) -> Response {
    // `datetime-local` has no zone; the form says the time is UTC.
    let at = if form.at.len() == 16 { format!("{}:00Z", form.at) } else { form.at.clone() };
    let request = wire::VerifyAsOfRequest { key: None, key_id: Some(id.clone()), at, permission: None };
    let answer = console.upstream.send(&signed_in.caller(), Method::POST, "/v1/verify/as-of", Some(&request)).await;
    if let Err(refusal) = &answer {
        if refusal.is_unauthenticated() {
            return console.refused(&signed_in, "", refusal.clone());
        }
    }
    key_page(&console, &signed_in, &id, Some(answer)).await
}

async fn key_page(
    console: &Console,
    signed_in: &SignedIn,
    id: &str,
    as_of: Option<Result<wire::VerifyAsOfResponse, Refusal>>,
) -> Response {
    let caller = signed_in.caller();
    let key = match key_or_page(console, signed_in, id, "API key").await {
        Ok(key) => key,
        Err(page) => return *page,
    };
    let history: Result<wire::KeyHistory, Refusal> =
        console.upstream.get(&caller, &format!("/v1/keys/{}/history", encode(id))).await;
    let notices = notices(console, signed_in);
    let csrf = &signed_in.session.csrf;
    let body = html! {
        div.title-row {
            h1 { (key.name) }
            div.actions { (row_actions(&key, csrf)) }
        }
        (page::notice_box(notices.done.as_deref()))
        (page::error_box(notices.top(std::iter::empty())))
        dl.details {
            dt { "Id" } dd { code { (key.id) } }
            dt { "Hint" } dd { code { "…" (key.hint) } }
            dt { "Owner" } dd { (key.owner.name) " (" (owner_kind(&key.owner.kind)) ")" }
            dt { "State" } dd { span class={ "state " (key.state) } { (key.state) } @if key.locked { " · locked" } }
            dt { "Scope" } dd { (key.scope.as_ref().map(|s| s.to_string()).unwrap_or_else(|| "the owner's permissions".into())) }
            dt { "Created" } dd { (short_time(&key.created_at)) " by " (actor(&key.created_by)) }
            dt { "Expires" } dd { (key.expires_at.as_deref().map(short_time).unwrap_or_else(|| "never".into())) }
            dt { "Last used" } dd { (key.last_used_at.as_deref().map(short_time).unwrap_or_else(|| "–".into())) }
        }
        @if key.state != "deleted" && !key.locked {
            details {
                summary { "Edit name and description" }
                form.stacked method="post" action={ "/ui/keys/" (key.id) "/edit" } {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="revision" value=(key.revision);
                    label for="edit-name" { "Name" }
                    input id="edit-name" name="name" type="text" required maxlength="100" value=(key.name);
                    label for="edit-description" { "Description" }
                    textarea id="edit-description" name="description" rows="2" maxlength="1000" { (key.description) }
                    button type="submit" { "Save" }
                }
            }
        }
        // Past verdicts are for owners and admins (the API says so too).
        @if signed_in.session.may("account:admin") {
        section aria-labelledby="as-of-title" {
            h2 id="as-of-title" { "Was it valid at…" }
            form.inline-form method="post" action={ "/ui/keys/" (key.id) "/as-of" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="at" { "Time (UTC)" }
                input id="at" name="at" type="datetime-local" required step="60";
                button type="submit" { "Ask the ledger" }
            }
            @match &as_of {
                Some(Ok(answer)) => { (verdict(answer)) }
                Some(Err(refusal)) => { (page::error_box(Some(&refusal.message))) }
                None => {}
            }
        }
        }
        section aria-labelledby="history-title" {
            h2 id="history-title" { "History" }
            @match &history {
                Ok(history) => {
                    ol.timeline {
                        @for event in history.events.iter().rev() {
                            li {
                                time datetime=(event.time) { (short_time(&event.time)) }
                                span class={ "event " (event.kind) } { (event.kind.replace('_', " ")) }
                                span.by { "by " (actor(&event.actor)) }
                            }
                        }
                    }
                }
                Err(refusal) => { (page::error_box(Some(&refusal.message))) }
            }
        }
    };
    let frame = page::signed_in(&signed_in.session, &key.name, "/ui/keys", body);
    page::respond(StatusCode::OK, frame, &[])
}

fn verdict(answer: &wire::VerifyAsOfResponse) -> Markup {
    let decided = answer.decided_by.as_ref();
    html! {
        p.verdict role="status" {
            "At " (short_time(&answer.at)) ": "
            @if answer.verdict.valid { strong.valid { "valid" } } @else {
                strong.invalid { "not valid" } " (" (answer.verdict.code.as_deref().unwrap_or("unknown")) ")"
            }
            @if let Some(event) = decided {
                ", decided by the " (event.kind.replace('_', " ")) " event of " (short_time(&event.time))
                " by " (actor(&event.actor)) " (ledger #" (event.seq) ")."
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct EditForm {
    csrf: String,
    revision: u64,
    name: String,
    description: String,
}

pub(crate) async fn edit(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form }: Posted<EditForm>,
) -> Response {
    let back = format!("/ui/keys/{}", encode(&id));
    let change =
        wire::UpdateKeyRequest { name: Some(form.name.trim().to_string()), description: Some(form.description) };
    let path = format!("/v1/keys/{}", encode(&id));
    let answer: Result<wire::Key, Refusal> =
        console.upstream.send_if_match(&signed_in.caller(), Method::PATCH, &path, &change, form.revision).await;
    match answer {
        Ok(_) => console.done(&signed_in, &back, "Saved."),
        Err(refusal) => console.refused_change(&signed_in, &back, refusal),
    }
}

pub(crate) async fn rotate_form(
    State(console): State<Console>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let key = match key_or_page(&console, &signed_in, &id, "Rotate").await {
        Ok(key) => key,
        Err(page) => return *page,
    };
    let body = html! {
        h1 { "Rotate “" (key.name) "”" }
        p { "A new key takes this one's place, with its owner, name, description and scope. The old key keeps working for the grace period, then stops." }
        form.stacked method="post" action={ "/ui/keys/" (key.id) "/rotate" } {
            input type="hidden" name="csrf" value=(signed_in.session.csrf);
            label for="grace" { "Grace period for the old key" }
            input id="grace" name="grace" type="text" value="24h" aria-describedby="grace-help";
            small id="grace-help" { "Such as 24h or 7d; 0 ends the old key at once." }
            label for="expires_in" { "New key's lifetime (empty: the default)" }
            input id="expires_in" name="expires_in" type="text" placeholder="90d";
            div.buttons { button type="submit" { "Rotate" } a href="/ui/keys" { "Cancel" } }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "Rotate", "/ui/keys", body), &[])
}

#[derive(Deserialize)]
pub(crate) struct RotateForm {
    csrf: String,
    #[serde(default)]
    grace: String,
    #[serde(default)]
    expires_in: String,
}

pub(crate) async fn rotate(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form }: Posted<RotateForm>,
) -> Response {
    let request = wire::RotateKeyRequest {
        grace: Some(form.grace.trim().to_string()).filter(|g| !g.is_empty()),
        expires_in: Some(form.expires_in.trim().to_string()).filter(|e| !e.is_empty()),
        expires_at: None,
    };
    let path = format!("/v1/keys/{}/rotate", encode(&id));
    let rotated: wire::RotatedKey =
        match console.upstream.send(&signed_in.caller(), Method::POST, &path, Some(&request)).await {
            Ok(rotated) => rotated,
            Err(refusal) => return console.refused_change(&signed_in, &format!("/ui/keys/{}", encode(&id)), refusal),
        };
    let shown = ShownOnce::key(wire::CreatedKey { key: rotated.key, secret: rotated.secret });
    console.sessions.show_once(&signed_in.id, shown);
    page::see_other(crate::SHOWN_ONCE, &[])
}

pub(crate) async fn delete_form(
    State(console): State<Console>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let key = match key_or_page(&console, &signed_in, &id, "Delete").await {
        Ok(key) => key,
        Err(page) => return *page,
    };
    let body = html! {
        h1 { "Delete “" (key.name) "”?" }
        p.warning { "The key stops verifying at once, and a deleted key cannot be brought back. Its history stays in the ledger." }
        form.stacked method="post" action={ "/ui/keys/" (key.id) "/delete" } {
            input type="hidden" name="csrf" value=(signed_in.session.csrf);
            div.buttons { button.danger type="submit" { "Delete the key" } a href="/ui/keys" { "Cancel" } }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "Delete", "/ui/keys", body), &[])
}

pub(crate) async fn delete(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { signed_in, form: _ }: Posted<TokenForm>,
) -> Response {
    let path = format!("/v1/keys/{}", encode(&id));
    match console.upstream.send_empty(&signed_in.caller(), Method::DELETE, &path).await {
        Ok(()) => console.done(&signed_in, "/ui/keys", "The key is deleted."),
        Err(refusal) => console.refused_row(&signed_in, "/ui/keys", &id, refusal),
    }
}

/// Key `id` as the signed-in key may see it, or the page saying why not (boxed: a `Response`
/// is large).
async fn key_or_page(
    console: &Console,
    signed_in: &SignedIn,
    id: &str,
    title: &str,
) -> Result<wire::Key, Box<Response>> {
    let path = format!("/v1/keys/{}", encode(id));
    console
        .upstream
        .get(&signed_in.caller(), &path)
        .await
        .map_err(|refusal| Box::new(console.refused(signed_in, title, refusal)))
}

fn select(name: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        select name=(name) {
            @for (value, label) in options {
                option value=(value) selected[current == *value] { (label) }
            }
        }
    }
}

fn owner_kind(kind: &wire::OwnerKind) -> &'static str {
    match kind {
        wire::OwnerKind::User => "user",
        wire::OwnerKind::ServiceAccount => "service account",
    }
}

fn actor(actor: &wire::Actor) -> String {
    match &actor.id {
        Some(id) => id.clone(),
        None => actor.kind.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_the_apis_query() {
        let filters = ListFilters { state: "enabled".into(), name: "ci key".into(), ..Default::default() };
        assert_eq!(filters.query(""), "state=enabled&name=ci%20key");
        assert_eq!(filters.query("key_1"), "state=enabled&name=ci%20key&cursor=key_1");
    }

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(encode("../admin?x=1"), "..%2Fadmin%3Fx%3D1");
    }

    #[test]
    fn times_are_shortened_only_when_they_are_utc() {
        assert_eq!(short_time("2026-12-04T10:21:12.345Z"), "2026-12-04 10:21 UTC");
        assert_eq!(short_time("soon"), "soon");
    }
}
