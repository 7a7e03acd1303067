//! Defences against hostile callers: the per-address limit on failed authentications, the caps
//! on long-running reads (exports and change feeds) per caller and per node, and the signal
//! that closes those reads when the node shuts down.
//!
//! Design decisions:
//! - Failed authentications are limited per client *address*, never per key or account: a
//!   flood of bad keys must not lock the real key's holder out. Once an address has failed
//!   more than the limit within its minute, every request from it to an authenticated route is
//!   answered `429` until that minute ends — a valid key too, before any key is looked at.
//!   Answering a valid key from a blocked address would tell a guesser which guess was right,
//!   so the limit would not limit guessing at all.
//! - IPv6 addresses are counted per /64, the block one host is usually given.
//! - The address table is bounded ([`MAX_TRACKED_CLIENTS`]): ended windows are swept out when
//!   it is full, and then an address that is not blocked makes room; if every tracked address
//!   is blocked, a new one goes uncounted rather than growing the table.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use keyledger_model::Owner;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::metrics::{Metrics, RateLimited};

/// The window failed authentications are counted in.
pub(crate) const AUTH_WINDOW: Duration = Duration::from_secs(60);
/// The most client addresses the limiter remembers at once (a few MiB at most).
const MAX_TRACKED_CLIENTS: usize = 65_536;
/// A full table is swept of ended windows at most this often, so a spray of new addresses
/// costs a sweep per interval, not per request.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How many entries a full table looks at for one that is not blocked, to make room.
const EVICTION_SCAN: usize = 64;

/// The limits a node's API enforces on its callers; `serve` sets them from its flags.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Failed authentications one client address may make per minute before it is refused
    /// `429 rate_limited` until the minute ends; 0 turns the limit off.
    pub auth_failures_per_minute: u32,
    /// Audit exports one identity may have running at once.
    pub exports_per_caller: u32,
    /// Audit exports the node runs at once, for all callers.
    pub exports_per_node: u32,
    /// Change feeds one identity may have open at once.
    pub feeds_per_caller: u32,
    /// Change feeds the node keeps open at once, for all callers.
    pub feeds_per_node: u32,
    /// An export whose client takes nothing for this long is dropped (cut short with an error).
    pub export_stall_timeout: Duration,
    /// After shutdown begins, exports in flight may run this much longer; then they are cut
    /// short with an error. Change feeds close at once.
    pub export_shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            auth_failures_per_minute: 20,
            exports_per_caller: 2,
            exports_per_node: 32,
            feeds_per_caller: 4,
            feeds_per_node: 64,
            export_stall_timeout: Duration::from_secs(30),
            export_shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Tells long-running reads that the node is shutting down. Cloned into the router; `serve`
/// calls [`Closing::close`] on SIGTERM, before it waits for connections to finish.
#[derive(Debug, Clone)]
pub struct Closing(Arc<watch::Sender<bool>>);

impl Default for Closing {
    fn default() -> Closing {
        Closing(Arc::new(watch::channel(false).0))
    }
}

impl Closing {
    pub fn new() -> Closing {
        Closing::default()
    }

    /// Begins the shutdown: change feeds end, exports get their grace.
    pub fn close(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once [`Closing::close`] has been called.
    pub async fn closed(&self) {
        let mut receiver = self.0.subscribe();
        // The sender lives as long as `self`, so this only ends by seeing `true`.
        let _ = receiver.wait_for(|closed| *closed).await;
    }
}

/// The address failures are counted under: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64.
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Window {
    fn ended(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.started) >= AUTH_WINDOW
    }
}

struct Windows {
    by_client: HashMap<IpAddr, Window>,
    last_sweep: Instant,
}

/// Failed authentications per client address, in fixed one-minute windows.
pub(crate) struct AuthLimiter {
    per_minute: u32,
    windows: Mutex<Windows>,
}

impl AuthLimiter {
    pub(crate) fn new(per_minute: u32) -> AuthLimiter {
        let windows = Windows { by_client: HashMap::new(), last_sweep: Instant::now() };
        AuthLimiter { per_minute, windows: Mutex::new(windows) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        // A panic while holding this lock leaves only counts behind, which stay usable.
        self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Some(time until the window ends)` when `address` has used up its failures.
    pub(crate) fn blocked(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let windows = self.lock();
        let window = windows.by_client.get(&client_key(address))?;
        if window.ended(now) || window.failures < self.per_minute {
            return None;
        }
        Some(AUTH_WINDOW.saturating_sub(now.saturating_duration_since(window.started)))
    }

    /// Counts one failed authentication from `address`.
    pub(crate) fn record_failure(&self, address: IpAddr, now: Instant) {
        let key = client_key(address);
        let mut windows = self.lock();
        if let Some(window) = windows.by_client.get_mut(&key) {
            if window.ended(now) {
                *window = Window { started: now, failures: 1 };
            } else {
                window.failures = window.failures.saturating_add(1);
            }
            return;
        }
        if windows.by_client.len() >= MAX_TRACKED_CLIENTS && !self.make_room(&mut windows, now) {
            return;
        }
        windows.by_client.insert(key, Window { started: now, failures: 1 });
    }

    /// Frees a slot in a full table: sweeps ended windows (at most every [`SWEEP_EVERY`]),
    /// else drops one address that is not blocked. False when every one looked at is blocked.
    fn make_room(&self, windows: &mut Windows, now: Instant) -> bool {
        if now.saturating_duration_since(windows.last_sweep) >= SWEEP_EVERY {
            windows.last_sweep = now;
            windows.by_client.retain(|_, window| !window.ended(now));
            if windows.by_client.len() < MAX_TRACKED_CLIENTS {
                return true;
            }
        }
        let per_minute = self.per_minute;
        let unblocked = windows
            .by_client
            .iter()
            .take(EVICTION_SCAN)
            .find(|(_, window)| window.ended(now) || window.failures < per_minute)
            .map(|(key, _)| *key);
        match unblocked {
            Some(key) => windows.by_client.remove(&key).is_some(),
            None => false,
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().by_client.len()
    }
}

/// One request's view of the failed-authentication limit: refused at once when its address is
/// blocked, and able to count one failure. Every credential check goes through this, a bearer key
/// (`extract.rs`) as much as an enrollment code (`enroll.rs`). Without an address (a router
/// driven in process) or with the limit off, nothing is counted.
pub(crate) struct AuthGate<'a> {
    limited: Option<(&'a AuthLimiter, IpAddr)>,
    started: Instant,
}

impl<'a> AuthGate<'a> {
    /// Refuses (`429`, counted in metrics) a request whose address is over its failures.
    pub(crate) fn open(
        limiter: Option<&'a AuthLimiter>,
        client: Option<IpAddr>,
        metrics: &crate::metrics::Metrics,
    ) -> Result<AuthGate<'a>, ApiError> {
        let gate = AuthGate { limited: limiter.zip(client), started: Instant::now() };
        if let Some(retry_after) = gate.limited.and_then(|(limiter, client)| limiter.blocked(client, gate.started)) {
            metrics.count_rate_limited(crate::metrics::RateLimited::AuthFailures);
            return Err(auth_blocked(retry_after));
        }
        Ok(gate)
    }

    /// Counts one failed authentication of this request's address.
    pub(crate) fn failed(&self) {
        if let Some((limiter, client)) = self.limited {
            limiter.record_failure(client, self.started);
        }
    }
}

/// The `429` for a blocked address: `Retry-After` is the rest of its window, rounded up.
pub(crate) fn auth_blocked(retry_after: Duration) -> ApiError {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    ApiError::rate_limited(
        "too many failed authentications from this address; try again when the minute is over",
        Some(seconds.max(1)),
    )
}

/// What a [`ReadSlots`] counts, for its messages and its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LongRead {
    Export,
    Feed,
}

impl LongRead {
    fn plural(self) -> &'static str {
        match self {
            LongRead::Export => "audit exports",
            LongRead::Feed => "change feeds",
        }
    }
}

#[derive(Default)]
struct Held {
    by_caller: HashMap<Owner, u32>,
    total: u32,
}

/// Caps on one kind of long-running read: at most `per_caller` at once per identity and
/// `per_node` in all. A read holds a [`Slot`] for as long as it runs.
pub(crate) struct ReadSlots {
    kind: LongRead,
    per_caller: u32,
    per_node: u32,
    held: Mutex<Held>,
}

impl ReadSlots {
    pub(crate) fn new(kind: LongRead, per_caller: u32, per_node: u32) -> Arc<ReadSlots> {
        Arc::new(ReadSlots { kind, per_caller, per_node, held: Mutex::new(Held::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for `caller`, or `429 rate_limited` saying which cap is reached.
    pub(crate) fn acquire(self: &Arc<Self>, caller: Owner, metrics: &Metrics) -> Result<Slot, ApiError> {
        let mut held = self.lock();
        let mine = held.by_caller.get(&caller).copied().unwrap_or(0);
        let refusal = if mine >= self.per_caller {
            Some(format!(
                "you already have {mine} {} open, the most one caller may; finish or close one first",
                self.kind.plural()
            ))
        } else if held.total >= self.per_node {
            Some(format!(
                "this node is serving its maximum of {} {}; try again shortly",
                self.per_node,
                self.kind.plural()
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            metrics.count_rate_limited(match self.kind {
                LongRead::Export => RateLimited::Exports,
                LongRead::Feed => RateLimited::Feeds,
            });
            return Err(ApiError::rate_limited(message, None));
        }
        *held.by_caller.entry(caller).or_insert(0) += 1;
        held.total += 1;
        Ok(Slot { slots: self.clone(), caller })
    }
}

/// One running long read; dropping it frees the slot.
pub(crate) struct Slot {
    slots: Arc<ReadSlots>,
    caller: Owner,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_caller.get_mut(&self.caller) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.by_caller.remove(&self.caller);
            }
        }
    }
}

impl ApiError {
    /// `429 rate_limited`, with `Retry-After` in seconds when the wait is known.
    pub(crate) fn rate_limited(message: impl Into<String>, retry_after: Option<u64>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).with_retry_after(retry_after)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use keyledger_model::UserId;

    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn an_address_is_blocked_after_its_failures_until_the_window_ends() {
        let limiter = AuthLimiter::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.blocked(v4(1), start), None);
            limiter.record_failure(v4(1), start);
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(limiter.blocked(v4(1), later), Some(Duration::from_secs(40)));
        assert_eq!(limiter.blocked(v4(2), later), None, "another address is not blocked");
        assert_eq!(limiter.blocked(v4(1), start + AUTH_WINDOW), None, "a new minute starts afresh");
        limiter.record_failure(v4(1), start + AUTH_WINDOW);
        assert_eq!(limiter.blocked(v4(1), start + AUTH_WINDOW), None, "one failure in the new window");
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let limiter = AuthLimiter::new(2);
        let now = Instant::now();
        limiter.record_failure("2001:db8:1:2::1".parse().unwrap(), now);
        limiter.record_failure("2001:db8:1:2:ffff::9".parse().unwrap(), now);
        assert!(limiter.blocked("2001:db8:1:2::77".parse().unwrap(), now).is_some());
        assert!(limiter.blocked("2001:db8:1:3::1".parse().unwrap(), now).is_none());
        limiter.record_failure("::ffff:10.0.0.5".parse().unwrap(), now);
        limiter.record_failure(v4(5), now);
        assert!(limiter.blocked(v4(5), now).is_some());
    }

    #[test]
    fn the_table_stays_bounded_under_a_spray_of_addresses_and_keeps_blocked_ones() {
        let limiter = AuthLimiter::new(2);
        let now = Instant::now();
        let blocked = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        limiter.record_failure(blocked, now);
        limiter.record_failure(blocked, now);
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 5_000) {
            limiter.record_failure(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), now);
        }
        assert!(limiter.tracked() <= MAX_TRACKED_CLIENTS, "tracked {}", limiter.tracked());
        assert!(limiter.blocked(blocked, now).is_some(), "making room never frees a blocked address");
        // Once the windows have ended, a sweep makes room for new addresses.
        let later = now + AUTH_WINDOW;
        limiter.record_failure(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), later);
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let error = auth_blocked(Duration::from_millis(1500));
        assert_eq!(error.retry_after(), Some(2));
        assert_eq!(auth_blocked(Duration::ZERO).retry_after(), Some(1));
    }

    #[test]
    fn read_slots_cap_each_caller_and_the_node_and_free_on_drop() {
        let metrics = Metrics::new();
        let slots = ReadSlots::new(LongRead::Export, 2, 3);
        let (alice, bob, carol) = (
            Owner::User(UserId::from_bytes([1; 16])),
            Owner::User(UserId::from_bytes([2; 16])),
            Owner::User(UserId::from_bytes([3; 16])),
        );
        let first = slots.acquire(alice, &metrics).unwrap();
        let _second = slots.acquire(alice, &metrics).unwrap();
        let refused = slots.acquire(alice, &metrics).err().unwrap();
        assert_eq!(refused.code(), "rate_limited");
        let _bobs = slots.acquire(bob, &metrics).unwrap();
        assert!(slots.acquire(carol, &metrics).is_err(), "the node's cap");
        drop(first);
        assert!(slots.acquire(carol, &metrics).is_ok(), "a dropped slot is free again");
    }
}
