//! The cluster page: the members as this node sees them (`GET /v1/cluster`), as a table and as
//! a diagram of nodes around their leader, each with its lag and whether its ledger head agrees.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyledger_wire as wire;
use maud::{html, Markup};

use crate::{page, Console, SignedIn};

pub(crate) async fn page(State(console): State<Console>, signed_in: SignedIn) -> Response {
    let status: wire::ClusterStatus = match console.upstream.get(&signed_in.caller(), "/v1/cluster").await {
        Ok(status) => status,
        Err(refusal) => return console.refused(&signed_in, "Cluster", refusal),
    };
    let disagreeing = status.members.iter().filter(|m| m.ledger_agrees == Some(false)).count();
    let body = html! {
        h1 { "Cluster" }
        p {
            "Seen from node " (status.node_id) ", term " (status.term) ". "
            @match status.leader {
                Some(leader) => { "The leader is node " (leader) "." }
                None => { strong { "There is no leader" } ": writes wait until one is elected; verification goes on." }
            }
        }
        @if disagreeing > 0 {
            p.error role="alert" { (disagreeing) " member(s) hold a ledger that differs from this node's: see the node logs." }
        }
        (diagram(&status))
        div.table-wrap {
            table id="members" {
                caption.visually-hidden { "Members of the cluster" }
                thead { tr {
                    th scope="col" { "Node" } th scope="col" { "Address" } th scope="col" { "Role" }
                    th scope="col" { "Applied" } th scope="col" { "Lag" } th scope="col" { "Ledger head" }
                    th scope="col" { "Agrees" }
                } }
                tbody {
                    @for member in &status.members {
                        tr {
                            td { (member.node_id) @if status.leader == Some(member.node_id) { " (leader)" } }
                            td { code { (member.address) } }
                            td { (member.role) }
                            td { (optional(member.applied_index)) }
                            td { (optional(member.lag)) }
                            td { @if let Some(head) = &member.ledger_head { "#" (head.seq) " " code { (head.hash.get(..12).unwrap_or(&head.hash)) "…" } } @else { "no answer" } }
                            td { (agrees(member.ledger_agrees)) }
                        }
                    }
                }
            }
        }
    };
    page::respond(StatusCode::OK, page::signed_in(&signed_in.session, "Cluster", "/ui/cluster", body), &[])
}

fn optional(value: Option<u64>) -> String {
    value.map_or_else(|| "–".into(), |v| v.to_string())
}

fn agrees(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "cannot tell",
    }
}

/// The members on a circle, the leader's links to each drawn with the member's lag. Drawn with
/// SVG presentation attributes only, which the page's CSP allows (no inline style).
fn diagram(status: &wire::ClusterStatus) -> Markup {
    const SIZE: f64 = 360.0;
    const RADIUS: f64 = 120.0;
    let n = status.members.len().max(1) as f64;
    let place = |i: usize| {
        let angle = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / n;
        (SIZE / 2.0 + RADIUS * angle.cos(), SIZE / 2.0 + RADIUS * angle.sin())
    };
    let leader = status.members.iter().position(|m| Some(m.node_id) == status.leader);
    html! {
        figure.cluster-diagram {
            svg width=(SIZE) height=(SIZE) viewBox={ "0 0 " (SIZE) " " (SIZE) } role="img"
                aria-label="The cluster's members around their leader, with each member's lag" {
                @if let Some(l) = leader {
                    @for (i, member) in status.members.iter().enumerate() {
                        @if i != l {
                            @let ((x1, y1), (x2, y2)) = (place(l), place(i));
                            line x1=(x1) y1=(y1) x2=(x2) y2=(y2) stroke="#9aa3b2" stroke-width="2" {}
                            text x=((x1 + x2) / 2.0) y=((y1 + y2) / 2.0 - 6.0) text-anchor="middle" font-size="12" fill="#5b6475" {
                                "lag " (optional(member.lag))
                            }
                        }
                    }
                }
                @for (i, member) in status.members.iter().enumerate() {
                    @let (x, y) = place(i);
                    @let fill = match member.ledger_agrees { Some(false) => "#fde4e1", _ if member.applied_index.is_none() => "#eef0f4", _ => "#dcf5e3" };
                    @let stroke = if Some(i) == leader { "#2457c5" } else { "#5b6475" };
                    circle cx=(x) cy=(y) r="34" fill=(fill) stroke=(stroke) stroke-width=(if Some(i) == leader { "4" } else { "2" }) {}
                    text x=(x) y=(y - 2.0) text-anchor="middle" font-size="15" font-weight="600" fill="#1d2330" { "node " (member.node_id) }
                    text x=(x) y=(y + 15.0) text-anchor="middle" font-size="11" fill="#5b6475" {
                        @if Some(i) == leader { "leader" } @else { (member.role) }
                    }
                }
            }
            figcaption { "Green: applied and agreeing; grey: did not answer; red: a different ledger. The leader is outlined in blue." }
        }
    }
}
