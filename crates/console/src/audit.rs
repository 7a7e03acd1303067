//! The audit page: the account's ledger events with filters, a page at a time, and the export
//! as a download (streamed from the API as it is written, never held whole).

use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use keyledger_wire as wire;
use maud::html;
use serde::Deserialize;

use crate::{page, query_string, short_time, Console, SignedIn};

/// Events per page.
const PAGE_SIZE: usize = 50;

#[derive(Deserialize, Default)]
pub(crate) struct EventFilters {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    key_id: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    after: String,
}

impl EventFilters {
    fn query(&self, after: &str) -> String {
        query_string(&[("type", &self.kind), ("key_id", &self.key_id), ("actor", &self.actor), ("after", after)])
    }
}

pub(crate) async fn events(
    State(console): State<Console>,
    signed_in: SignedIn,
    Query(filters): Query<EventFilters>,
) -> Response {
    let path = format!("/v1/audit/events?limit={PAGE_SIZE}&{}", filters.query(&filters.after));
    let list: wire::EventList = match console.upstream.get(&signed_in.caller(), &path).await {
        Ok(list) => list,
        Err(refusal) => return console.refused(&signed_in, "Audit", refusal),
    };
    let next = list.next.map(|after| format!("/ui/audit?{}", filters.query(&after.to_string())));
    // `404` until the first checkpoint is signed; any other refusal leaves the line out.
    let latest = console.upstream.get::<wire::AuditEvent>(&signed_in.caller(), "/v1/audit/checkpoints/latest").await;
    let body = html! {
        div.title-row {
            h1 { "Audit" }
            div.actions {
                a.button.small href="/ui/audit/export?format=jsonl" download { "Export (JSON lines)" }
                a.button.small href="/ui/audit/export?format=csv" download { "Export (CSV)" }
            }
        }
        p { "Every change to the account, in ledger order. An export verifies offline: " code { "keyledger audit verify" } "." }
        p id="latest-checkpoint" {
            @match &latest {
                Ok(checkpoint) => {
                    "Latest signed checkpoint: the first " (checkpoint.data["tree_size"]) " events, signed "
                    (short_time(&checkpoint.time)) " (" (age(&checkpoint.time)) ") by node " (checkpoint.data["signer_node_id"]) "."
                }
                Err(refusal) if refusal.status == StatusCode::NOT_FOUND => { "No checkpoint is signed yet." }
                Err(_) => {}
            }
        }
        form.filters method="get" action="/ui/audit" role="search" {
            label { "Type" input type="text" name="type" value=(filters.kind) placeholder="created, disabled…"; }
            label { "Key id" input type="text" name="key_id" value=(filters.key_id); }
            label { "Actor" input type="text" name="actor" value=(filters.actor) placeholder="usr_…, sa_…, system"; }
            button type="submit" { "Filter" }
        }
        div.table-wrap {
            table id="events" {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Type" }
                    th scope="col" { "Actor" } th scope="col" { "About" }
                } }
                tbody {
                    @for event in &list.events {
                        tr {
                            td { (event.seq) }
                            td.when { (short_time(&event.time)) }
                            td { span class={ "event " (event.kind) } { (event.kind.replace('_', " ")) } }
                            td.by { (event.actor.id.as_deref().unwrap_or(&event.actor.kind)) }
                            td { (about(&event.data)) }
                        }
                    }
                    @if list.events.is_empty() { tr { td colspan="5" { "No events match." } } }
                }
            }
        }
        @if let Some(next) = next { p { a rel="next" href=(next) { "Next page →" } } }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "Audit", "/ui/audit", body), &[])
}

/// How long ago an RFC 3339 time was, in words.
fn age(rfc3339: &str) -> String {
    let Ok(then) = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339) else {
        return "at an unreadable time".into();
    };
    let seconds = (time::OffsetDateTime::now_utc() - then).whole_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..7200 => format!("{} min ago", seconds / 60),
        _ => format!("{} h ago", seconds / 3600),
    }
}

/// The ids an event is about, from its data.
fn about(data: &serde_json::Value) -> String {
    ["key_id", "user_id", "service_account_id", "new_key_id"]
        .iter()
        .filter_map(|field| data.get(field).and_then(|v| v.as_str()).map(|id| id.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Deserialize)]
pub(crate) struct ExportQuery {
    format: String,
}

/// The account's export as a file, streamed from the API as it is written.
pub(crate) async fn export(
    State(console): State<Console>,
    signed_in: SignedIn,
    Query(query): Query<ExportQuery>,
) -> Response {
    let (format, content_type, file) = match query.format.as_str() {
        "csv" => ("csv", "text/csv; charset=utf-8", "keyledger-audit.csv"),
        _ => ("jsonl", "application/x-ndjson", "keyledger-audit.jsonl"),
    };
    let path = format!("/v1/audit/export?format={format}");
    match console.upstream.stream(&signed_in.caller(), &path).await {
        Ok(mut answer) => {
            let headers = answer.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
                headers.insert(CONTENT_DISPOSITION, value);
            }
            answer
        }
        Err(refusal) => console.refused(&signed_in, "Audit export", refusal),
    }
}
