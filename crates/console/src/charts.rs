//! The pictures above the keys table: keys by state, keys expiring soon, and this node's
//! verifications per minute by result. Drawn as SVG with presentation attributes only (the
//! page's CSP allows no inline style), each with its numbers in text beside it.
//!
//! Verifications come from the node's own counters (`GET /metrics`, read in process): a task
//! samples them once a minute and keeps the last [`MINUTES`] differences; the minute under way
//! is the counters now minus the last sample.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyledger_wire as wire;
use maud::{html, Markup};

use crate::upstream::{Caller, Upstream};

/// Minutes of verification counts kept.
const MINUTES: usize = 30;
const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// Verifications counted by result group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) valid: u64,
    pub(crate) forbidden: u64,
    pub(crate) invalid: u64,
}

impl Counts {
    fn since(self, earlier: Counts) -> Counts {
        Counts {
            valid: self.valid.saturating_sub(earlier.valid),
            forbidden: self.forbidden.saturating_sub(earlier.forbidden),
            invalid: self.invalid.saturating_sub(earlier.invalid),
        }
    }

    fn total(self) -> u64 {
        self.valid + self.forbidden + self.invalid
    }
}

/// The counters' totals from the text `/metrics` serves.
pub(crate) fn parse_counts(metrics: &str) -> Counts {
    let mut counts = Counts::default();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("keyledger_verifications_total{result=\"") else { continue };
        let Some((result, value)) = rest.split_once("\"} ") else { continue };
        let value = value.trim().parse::<f64>().map_or(0, |v| v as u64);
        match result {
            "valid" => counts.valid += value,
            "forbidden" => counts.forbidden += value,
            _ => counts.invalid += value,
        }
    }
    counts
}

/// The last minutes of verifications and the sample they end at.
#[derive(Default)]
pub(crate) struct VerifyRates {
    inner: Mutex<Rates>,
}

#[derive(Default)]
struct Rates {
    minutes: VecDeque<Counts>,
    last: Option<Counts>,
}

impl VerifyRates {
    /// Starts sampling this node's counters once a minute (if there is a runtime to run on).
    pub(crate) fn start(upstream: Upstream) -> Arc<VerifyRates> {
        let rates = Arc::new(VerifyRates::default());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let sampled = Arc::downgrade(&rates);
            runtime.spawn(async move {
                let mut every = tokio::time::interval(SAMPLE_EVERY);
                loop {
                    every.tick().await;
                    let Some(rates) = sampled.upgrade() else { return };
                    if let Some(now) = read_counts(&upstream).await {
                        rates.record(now);
                    }
                }
            });
        }
        rates
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rates> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, now: Counts) {
        let mut rates = self.lock();
        if let Some(last) = rates.last {
            rates.minutes.push_back(now.since(last));
            if rates.minutes.len() > MINUTES {
                rates.minutes.pop_front();
            }
        }
        rates.last = Some(now);
    }

    /// The finished minutes, oldest first, and the one under way given the counters `now`.
    pub(crate) fn minutes(&self, now: Option<Counts>) -> (Vec<Counts>, Option<Counts>) {
        let rates = self.lock();
        let current = now.map(|now| now.since(rates.last.unwrap_or_default()));
        (rates.minutes.iter().copied().collect(), current)
    }
}

/// This node's verification counters now.
pub(crate) async fn read_counts(upstream: &Upstream) -> Option<Counts> {
    let anonymous = Caller { api_key: "", client: None };
    upstream.text(&anonymous, "/metrics").await.ok().map(|text| parse_counts(&text))
}

const GREEN: &str = "#1a7f37";
const AMBER: &str = "#b7791f";
const RED: &str = "#b42318";
const GREY: &str = "#9aa3b2";

/// The overview: keys by state, expiring soon, verifications per minute.
pub(crate) fn overview(summary: &wire::KeySummary, minutes: &[Counts], current: Option<Counts>) -> Markup {
    html! {
        section.overview aria-label="Overview" {
            (by_state(summary))
            (expiring(summary))
            (per_minute(minutes, current))
        }
    }
}

fn by_state(summary: &wire::KeySummary) -> Markup {
    let rows = [
        ("enabled", summary.enabled, GREEN),
        ("disabled", summary.disabled, AMBER),
        ("expired", summary.expired, GREY),
        ("deleted", summary.deleted, RED),
    ];
    let most = rows.iter().map(|(_, n, _)| *n).max().unwrap_or(0).max(1);
    html! {
        figure.chart id="keys-by-state" {
            figcaption { "Keys by state" }
            svg width="260" height="104" viewBox="0 0 260 104" role="img"
                aria-label={ "Keys by state: " @for (name, n, _) in rows { (name) " " (n) "; " } } {
                @for (i, (name, n, colour)) in rows.iter().enumerate() {
                    @let y = 4 + i as u64 * 25;
                    text x="0" y=(y + 14) font-size="12" fill="#5b6475" { (name) }
                    rect x="70" y=(y) width=(1 + n * 140 / most) height="18" rx="3" fill=(colour) {}
                    text x=(76 + n * 140 / most) y=(y + 14) font-size="12" fill="#1d2330" { (n) }
                }
            }
        }
    }
}

fn expiring(summary: &wire::KeySummary) -> Markup {
    html! {
        figure.chart id="expiring" {
            figcaption { "Enabled keys expiring" }
            div.big-numbers {
                p { strong { (summary.expiring_within_7d) } " within 7 days" }
                p { strong { (summary.expiring_within_30d) } " within 30 days" }
            }
        }
    }
}

fn per_minute(minutes: &[Counts], current: Option<Counts>) -> Markup {
    let bars: Vec<Counts> = minutes.iter().copied().chain(current).collect();
    let most = bars.iter().map(|c| c.total()).max().unwrap_or(0).max(1);
    let now = current.unwrap_or_default();
    const HEIGHT: u64 = 80;
    const WIDTH: u64 = 8;
    html! {
        figure.chart id="verifications" {
            figcaption { "Verifications per minute on this node" }
            svg width=((MINUTES as u64 + 1) * WIDTH) height=(HEIGHT) viewBox={ "0 0 " ((MINUTES as u64 + 1) * WIDTH) " " (HEIGHT) }
                role="img" aria-label={ "This minute so far: " (now.valid) " valid, " (now.forbidden) " forbidden, " (now.invalid) " invalid" } {
                @for (i, minute) in bars.iter().enumerate() {
                    @let x = (MINUTES + 1 - bars.len() + i) as u64 * WIDTH;
                    @let (v, f, n) = (minute.valid * HEIGHT / most, minute.forbidden * HEIGHT / most, minute.invalid * HEIGHT / most);
                    rect x=(x) y=(HEIGHT - v) width=(WIDTH - 2) height=(v) fill=(GREEN) {}
                    rect x=(x) y=(HEIGHT - v - f) width=(WIDTH - 2) height=(f) fill=(AMBER) {}
                    rect x=(x) y=(HEIGHT - v - f - n) width=(WIDTH - 2) height=(n) fill=(RED) {}
                }
            }
            p.legend {
                "This minute so far: "
                span.valid { (now.valid) " valid" } ", "
                span.forbidden { (now.forbidden) " forbidden" } ", "
                span.invalid { (now.invalid) " invalid" }
                @if minutes.is_empty() { " (earlier minutes appear as they pass)" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_are_read_by_result_group() {
        let text = "# TYPE keyledger_verifications_total counter\n\
                    keyledger_verifications_total{result=\"valid\"} 7\n\
                    keyledger_verifications_total{result=\"forbidden\"} 2\n\
                    keyledger_verifications_total{result=\"not_found\"} 3\n\
                    keyledger_verifications_total{result=\"disabled\"} 1\n\
                    keyledger_requests_total{route=\"/v1/verify\"} 99\n";
        assert_eq!(parse_counts(text), Counts { valid: 7, forbidden: 2, invalid: 4 });
    }

    #[test]
    fn minutes_are_differences_and_only_the_last_are_kept() {
        let rates = VerifyRates::default();
        for total in 0..(MINUTES as u64 + 5) {
            rates.record(Counts { valid: total * 10, forbidden: 0, invalid: total });
        }
        let (minutes, current) = rates.minutes(Some(Counts { valid: 1000, forbidden: 0, invalid: 40 }));
        assert_eq!(minutes.len(), MINUTES);
        assert!(minutes.iter().all(|m| *m == Counts { valid: 10, forbidden: 0, invalid: 1 }));
        assert_eq!(current, Some(Counts { valid: 1000 - 340, forbidden: 0, invalid: 40 - 34 }));
    }
}
