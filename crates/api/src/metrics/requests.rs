//! `keyledger_http_requests_total`: requests answered, by method, route template and status
//! class, counted in the middleware around every request (`request_frame` in `lib.rs`).
//!
//! A request's row is found by its route template (never the path as sent, which holds ids), in
//! a table sorted once. Each cell of row × status class is the crate's counter for its label
//! set, made at the cell's first use and kept, so counting is then an atomic load and an
//! atomic add: the crate's own `with_label_values` would hash the labels and take a read lock
//! on every request. A cell is made only when it first counts, as client libraries start a
//! labelled series, so the page does not show ~50 routes times five classes of zeros.

use std::sync::OnceLock;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use prometheus::{IntCounter, IntCounterVec, Opts};

use crate::ROUTES;

/// Status classes `1xx` to `5xx`.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The counters of requests by route and status class.
pub(super) struct RequestCounters {
    family: IntCounterVec,
    /// One row per entry of [`ROUTES`], then one for requests no route takes; a cell per
    /// status class.
    cells: Box<[[OnceLock<IntCounter>; STATUS_CLASSES.len()]]>,
    /// `(path, method, row)` sorted by path and method, for a binary search per request.
    route_table: Vec<(&'static str, &'static str, usize)>,
}

impl RequestCounters {
    pub(super) fn new() -> prometheus::Result<RequestCounters> {
        let family = IntCounterVec::new(
            Opts::new(
                "keyledger_http_requests_total",
                "HTTP requests answered, by method, route template (`unmatched` when no route took it) and status class.",
            ),
            &["method", "route", "status"],
        )?;
        let mut route_table: Vec<_> =
            ROUTES.iter().enumerate().map(|(row, (method, path))| (*path, *method, row)).collect();
        route_table.sort_unstable();
        Ok(RequestCounters { family, cells: (0..=ROUTES.len()).map(|_| Default::default()).collect(), route_table })
    }

    /// The family, to register.
    pub(super) fn family(&self) -> IntCounterVec {
        self.family.clone()
    }

    /// The row of the route that took the request. No template, or a method the route does
    /// not take: the last row, `unmatched`.
    pub(super) fn route_of(&self, method: &Method, matched: Option<&MatchedPath>) -> usize {
        let unmatched = ROUTES.len();
        let Some(path) = matched.map(MatchedPath::as_str) else {
            return unmatched;
        };
        let start = self.route_table.partition_point(|(p, _, _)| *p < path);
        self.route_table[start..]
            .iter()
            .take_while(|(p, _, _)| *p == path)
            .find(|(_, m, _)| method.as_str().eq_ignore_ascii_case(m))
            .map_or(unmatched, |(_, _, row)| *row)
    }

    pub(super) fn count(&self, route: usize, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES.len()) - 1;
        let cell = self.cells[route][class].get_or_init(|| {
            let (method, route) = ROUTES.get(route).copied().unwrap_or(("other", "unmatched"));
            self.family.with_label_values(&[method, route, STATUS_CLASSES[class]])
        });
        cell.inc();
    }
}
