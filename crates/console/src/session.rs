//! Server-side sessions: the browser holds only a random id in an `HttpOnly`, `SameSite=Strict`
//! cookie; the API key it signed in with stays in this node's memory and is never sent back.
//!
//! A session ends when the browser signs out, after [`IDLE`] without a request, after
//! [`LIFETIME`] in all, and at once when the API stops accepting its key (disabled, deleted or
//! expired): every page asks the API as that key, and a `401` drops the session.
//! Sessions live on the node that made them; behind a load balancer, keep a browser on one node.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::COOKIE;
use axum::http::HeaderMap;
use keyledger_wire as wire;
use rand_core::{OsRng, RngCore};

/// Name of the cookie that carries the session id.
pub(crate) const SESSION_COOKIE: &str = "keyledger_session";
/// Name of the cookie that binds the sign-in form's token before there is a session.
pub(crate) const SIGN_IN_COOKIE: &str = "keyledger_sign_in";

/// A session unused this long ends.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);
/// No session outlives this, however busy.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions one node keeps at once: each signed-in browser holds one, and a flood of sign-ins
/// must not grow memory without bound. Past it, expired ones are dropped, then sign-in waits.
const MAX_SESSIONS: usize = 10_000;

/// Who a session acts as, learned from the API at sign-in.
#[derive(Clone)]
pub(crate) struct Session {
    /// The API key the browser signed in with; sent only to the API, in process.
    pub(crate) api_key: String,
    /// The token every form of this session carries (compared in constant time).
    pub(crate) csrf: String,
    pub(crate) identity: wire::Identity,
    pub(crate) account: String,
    pub(crate) permissions: Vec<String>,
    created: Instant,
    last_seen: Instant,
    /// A secret to show on the next page only (a created or rotated key's), then forgotten.
    pub(crate) shown_once: Option<ShownOnce>,
    /// What the last change did or why it failed, shown on the next page.
    pub(crate) notice: Option<Notice>,
}

/// A sentence for the next page: what a change did, or why it was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    Done(String),
    /// The API's sentence, and the id of the row whose action it refused, if one.
    Refused(String, Option<String>),
}

/// A secret shown on exactly one page view: a key's, or an enrollment code.
#[derive(Clone)]
pub(crate) struct ShownOnce {
    /// "Your new API key", "Enrollment code for ada".
    pub(crate) title: String,
    /// What it belongs to, and the page of that object.
    pub(crate) name: String,
    pub(crate) link: String,
    pub(crate) secret: String,
}

impl ShownOnce {
    /// A new key's secret.
    pub(crate) fn key(created: keyledger_wire::CreatedKey) -> ShownOnce {
        ShownOnce {
            title: "Your new API key".into(),
            link: format!("/ui/keys/{}", created.key.id),
            name: created.key.name,
            secret: created.secret,
        }
    }
}

impl fmt::Debug for Session {
    /// Never the key or the token: a session may be logged by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("identity", &self.identity.id).field("account", &self.account).finish()
    }
}

impl Session {
    pub(crate) fn new(api_key: String, identity: wire::Identity, account: String, permissions: Vec<String>) -> Self {
        let now = Instant::now();
        Session {
            api_key,
            csrf: random_token(),
            identity,
            account,
            permissions,
            created: now,
            last_seen: now,
            shown_once: None,
            notice: None,
        }
    }

    pub(crate) fn may(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) > IDLE || now.duration_since(self.created) > LIFETIME
    }
}

/// The sessions of this node.
#[derive(Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

#[derive(Debug)]
pub(crate) struct Full;

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `session` under a new random id and returns the id.
    pub(crate) fn start(&self, session: Session) -> Result<String, Full> {
        let mut sessions = self.lock();
        if sessions.len() >= MAX_SESSIONS {
            let now = Instant::now();
            sessions.retain(|_, s| !s.expired(now));
            if sessions.len() >= MAX_SESSIONS {
                return Err(Full);
            }
        }
        let id = random_token();
        sessions.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session of this cookie, marked as used now; an expired one is dropped.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let mut sessions = self.lock();
        let now = Instant::now();
        let session = sessions.get_mut(id)?;
        if session.expired(now) {
            sessions.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Takes the secret waiting to be shown, so a reload does not show it again.
    pub(crate) fn take_shown_once(&self, id: &str) -> Option<ShownOnce> {
        self.lock().get_mut(id).and_then(|s| s.shown_once.take())
    }

    pub(crate) fn show_once(&self, id: &str, shown: ShownOnce) {
        if let Some(session) = self.lock().get_mut(id) {
            session.shown_once = Some(shown);
        }
    }

    pub(crate) fn notify(&self, id: &str, notice: Notice) {
        if let Some(session) = self.lock().get_mut(id) {
            session.notice = Some(notice);
        }
    }

    pub(crate) fn take_notice(&self, id: &str) -> Option<Notice> {
        self.lock().get_mut(id).and_then(|s| s.notice.take())
    }

    pub(crate) fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// 32 random bytes from the OS, as 64 hex digits.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in time that does not depend on where they differ.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request, if any.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value for the console's path: `HttpOnly`, `SameSite=Strict`, and `Secure`
/// when the node serves TLS. An empty value with `Max-Age=0` deletes the cookie.
pub(crate) fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<Duration>) -> String {
    let mut cookie = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone() -> Session {
        let identity = wire::Identity { kind: wire::OwnerKind::User, id: "usr_1".into(), name: "ada".into() };
        Session::new("klk_secret".into(), identity, "default".into(), vec!["key:read".into()])
    }

    #[test]
    fn a_session_is_found_by_its_id_only() {
        let sessions = Sessions::default();
        let id = sessions.start(someone()).unwrap();
        assert_eq!(id.len(), 64);
        assert!(sessions.get(&id).is_some());
        assert!(sessions.get(&random_token()).is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn an_idle_session_ends() {
        let sessions = Sessions::default();
        let mut session = someone();
        session.last_seen = Instant::now() - IDLE - Duration::from_secs(1);
        let id = sessions.start(session).unwrap();
        assert!(sessions.get(&id).is_none());
        assert_eq!(sessions.len(), 0, "dropped, not only hidden");
    }

    #[test]
    fn a_secret_is_shown_once() {
        let sessions = Sessions::default();
        let id = sessions.start(someone()).unwrap();
        let shown =
            ShownOnce { title: "t".into(), name: "ci".into(), link: "/ui/keys/key_1".into(), secret: "klk_x".into() };
        sessions.show_once(&id, shown);
        assert_eq!(sessions.take_shown_once(&id).map(|s| s.secret), Some("klk_x".to_string()));
        assert!(sessions.take_shown_once(&id).is_none());
    }

    #[test]
    fn the_debug_form_holds_no_secret() {
        let text = format!("{:?}", someone());
        assert!(!text.contains("klk_secret"), "{text}");
        assert!(!text.contains(&someone().csrf));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abcd", "abcd"));
        assert!(!same_token("abcd", "abce"));
        assert!(!same_token("abcd", "abc"));
    }

    #[test]
    fn cookies_are_read_by_name_and_written_strict() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; keyledger_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "xyz", true, None);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.ends_with("Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "xyz", false, None).contains("Secure"));
    }
}
