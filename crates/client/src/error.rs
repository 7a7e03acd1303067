//! [`ClientError`] and the turning of a non-success answer into one.

use keyledger_wire::{ErrorBody, ErrorDetail};

/// The code given to an error answer whose body is not keyledger's JSON error shape
/// (a proxy's HTML page, an empty body), or to a success status other than the one expected.
pub const UNEXPECTED_RESPONSE: &str = "unexpected_response";

/// At most this many characters of a foreign body are quoted in a synthesized message.
const SNIPPET_CHARS: usize = 120;

/// Everything a call can fail with.
///
/// The `Display` form is meant for people: an [`ClientError::Api`] reads
/// `key not found (not_found)`, the server's sentence followed by its code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status. `error` is its JSON error body, or, when the
    /// body was not that shape, one synthesized with the code [`UNEXPECTED_RESPONSE`].
    #[error("{} ({})", .error.message, .error.code)]
    Api {
        /// The HTTP status, e.g. `404`.
        status: u16,
        /// The error as the server described it.
        error: ErrorDetail,
    },
    /// No answer was had: an invalid address, connection refused, a timeout, a broken connection.
    #[error("cannot reach the server: {0}")]
    Transport(String),
    /// A success answer whose body or headers do not parse as expected.
    #[error("cannot understand the server's answer: {0}")]
    Decode(String),
    /// TLS could not be set up: a CA file that cannot be used, a server whose certificate is
    /// not trusted, a server that does not speak TLS. Nothing was sent.
    #[error("{0}")]
    Tls(String),
}

impl ClientError {
    /// The error code of an [`ClientError::Api`] error, e.g. `not_found`; `None` otherwise.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }

    /// The HTTP status of an [`ClientError::Api`] error; `None` otherwise.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's request id of an [`ClientError::Api`] error, when it sent one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => error.request_id.as_deref(),
            _ => None,
        }
    }

    /// Builds the error for a non-success answer from its status, body and request id header.
    pub(crate) fn from_answer(status: u16, body: &[u8], request_id: Option<String>) -> ClientError {
        if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
            let mut error = parsed.error;
            if error.request_id.is_none() {
                error.request_id = request_id;
            }
            return ClientError::Api { status, error };
        }
        let message = match snippet(body) {
            Some(text) => format!("the server answered HTTP {status} with an unexpected body: {text}"),
            None => format!("the server answered HTTP {status} with no error body"),
        };
        unexpected(status, message, request_id)
    }

    /// Builds the error for a transport failure, keeping the whole chain of causes
    /// (reqwest's own message rarely says *why*: refused, reset, timed out).
    pub(crate) fn transport(err: &reqwest::Error) -> ClientError {
        if let Some(tls) = tls_failure(err) {
            return ClientError::Tls(tls);
        }
        let mut message = if err.is_timeout() { format!("request timed out: {err}") } else { err.to_string() };
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        ClientError::Transport(message)
    }
}

/// The sentence for a failed TLS handshake, when that is what `err` comes from.
fn tls_failure(err: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = cause {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls_sentence(tls));
        }
        // `io::Error` hides the error it wraps from `source()` (and hyper-rustls wraps the
        // handshake's `io::Error` in another): step into it explicitly.
        cause = match error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// One sentence for a rustls error, saying what to do about it.
fn tls_sentence(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(why) => format!(
            "the server's TLS certificate is not trusted ({why:?}): give the CA that signed it with --cacert \
             or KEYLEDGER_CACERT"
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the server did not answer with TLS: if it serves plain HTTP, use an http:// address".to_string()
        }
        other => format!("the TLS handshake with the server failed: {other}"),
    }
}

/// An [`ClientError::Api`] with the code [`UNEXPECTED_RESPONSE`].
pub(crate) fn unexpected(status: u16, message: String, request_id: Option<String>) -> ClientError {
    ClientError::Api { status, error: ErrorDetail { code: UNEXPECTED_RESPONSE.to_string(), message, request_id } }
}

/// The start of a body as one line of text, for quoting in a message; `None` when blank.
pub(crate) fn snippet(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return None;
    }
    let mut out: String = flat.chars().take(SNIPPET_CHARS).collect();
    if flat.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_body_is_kept() {
        let body = br#"{"error":{"code":"not_found","message":"key not found","request_id":"r1"}}"#;
        let err = ClientError::from_answer(404, body, Some("other".into()));
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.code(), Some("not_found"));
        assert_eq!(err.request_id(), Some("r1"));
        assert_eq!(err.to_string(), "key not found (not_found)");
    }

    #[test]
    fn missing_request_id_taken_from_header() {
        let body = br#"{"error":{"code":"unauthenticated","message":"no key"}}"#;
        let err = ClientError::from_answer(401, body, Some("hdr".into()));
        assert_eq!(err.request_id(), Some("hdr"));
    }

    #[test]
    fn html_body_becomes_unexpected_response() {
        let body = b"<html>\n  <body>502 Bad Gateway</body>\n</html>";
        let err = ClientError::from_answer(502, body, None);
        assert_eq!(err.status(), Some(502));
        assert_eq!(err.code(), Some(UNEXPECTED_RESPONSE));
        let text = err.to_string();
        assert!(text.contains("HTTP 502"), "{text}");
        assert!(text.contains("<html> <body>502 Bad Gateway</body> </html>"), "{text}");
    }

    #[test]
    fn empty_body_and_wrong_json_do_not_panic() {
        let err = ClientError::from_answer(500, b"", None);
        assert_eq!(err.code(), Some(UNEXPECTED_RESPONSE));
        assert!(err.to_string().contains("no error body"));

        let err = ClientError::from_answer(400, br#"{"error":"bad"}"#, None);
        assert_eq!(err.code(), Some(UNEXPECTED_RESPONSE));

        let err = ClientError::from_answer(500, &[0xff, 0xfe, 0x00], None);
        assert_eq!(err.code(), Some(UNEXPECTED_RESPONSE));
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(10_000);
        let quoted = snippet(body.as_bytes()).unwrap();
        assert_eq!(quoted.chars().count(), SNIPPET_CHARS + 1);
        assert!(quoted.ends_with('…'));
    }

    #[test]
    fn non_api_errors_have_no_code_or_status() {
        let err = ClientError::Transport("connection refused".into());
        assert_eq!(err.code(), None);
        assert_eq!(err.status(), None);
        assert_eq!(err.to_string(), "cannot reach the server: connection refused");
        assert_eq!(ClientError::Decode("x".into()).status(), None);
    }
}
