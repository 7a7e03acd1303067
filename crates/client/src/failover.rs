//! Which address a request goes to next, when a client knows several nodes.
//!
//! The rule is about what the failed attempt may have done, never about guessing the server's
//! mood: an attempt that certainly did not reach a node (the connection was refused or timed
//! out, the name did not resolve) or that a node answered `503 unavailable` (not ready, no
//! leader, removed: "nothing was written") is tried on the next address. An attempt that may
//! have been processed (the connection broke after the request was sent, the answer timed
//! out, `503 outcome_unknown`) is tried elsewhere only when repeating it is harmless: a read,
//! a verification, or a write carrying an `Idempotency-Key`.

use reqwest::header::HeaderName;
use reqwest::{Method, StatusCode};

/// The request header that makes a retried write answer once and write once.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// How one attempt on one address ended, as far as failover cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// An answer to act on (success or error): the node handled the request.
    Answered,
    /// `503 unavailable`: the node says nothing was proposed, so nothing was written.
    Unavailable,
    /// Another `503` (`outcome_unknown`, or a proxy's page): the request may have been applied.
    UnsureUnavailable,
    /// No byte reached a server: connection refused or timed out, DNS failure, TLS refused.
    NotSent,
    /// The request may have reached the node and been applied: the connection broke after
    /// sending, or the answer did not come in time.
    MaybeProcessed,
}

/// Whether the request is tried on the next address after `attempt`.
pub(crate) fn moves_on(attempt: Attempt, idempotent: bool) -> bool {
    match attempt {
        Attempt::Answered => false,
        Attempt::NotSent | Attempt::Unavailable => true,
        Attempt::MaybeProcessed | Attempt::UnsureUnavailable => idempotent,
    }
}

/// Whether sending the request twice does no more than sending it once.
pub(crate) fn is_idempotent(method: &Method, path: &str, headers: &[(HeaderName, String)]) -> bool {
    // A verification proposes nothing: at most it notes a use, which is counted per period.
    let read = *method == Method::GET || *method == Method::HEAD || path.starts_with("/v1/verify");
    read || headers.iter().any(|(name, _)| name.as_str().eq_ignore_ascii_case(IDEMPOTENCY_KEY))
}

/// Classifies an answer by its status and, for a `503`, its error code.
pub(crate) fn classify_answer(status: StatusCode, code: Option<&str>) -> Attempt {
    if status != StatusCode::SERVICE_UNAVAILABLE {
        return Attempt::Answered;
    }
    match code {
        Some("unavailable") => Attempt::Unavailable,
        _ => Attempt::UnsureUnavailable,
    }
}

/// Classifies a failure to send a request or to receive its answer's head.
pub(crate) fn classify_send_error(err: &reqwest::Error) -> Attempt {
    // reqwest reports refused and timed-out connections, DNS failures and failed TLS
    // handshakes as connect errors: in each, the request itself was never written.
    if err.is_connect() {
        Attempt::NotSent
    } else {
        Attempt::MaybeProcessed
    }
}

/// The order to try `count` addresses in: the preferred one (the last that worked) first,
/// then the others in the order given.
pub(crate) fn attempt_order(preferred: usize, count: usize) -> impl Iterator<Item = usize> {
    let preferred = preferred.min(count.saturating_sub(1));
    std::iter::once(preferred).chain((0..count).filter(move |&i| i != preferred)).take(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_never_reached_a_node_or_wrote_nothing_moves_on_always() {
        for idempotent in [false, true] {
            assert!(moves_on(Attempt::NotSent, idempotent));
            assert!(moves_on(Attempt::Unavailable, idempotent));
            assert!(!moves_on(Attempt::Answered, idempotent), "an answer is the answer");
        }
    }

    #[test]
    fn what_may_have_been_applied_moves_on_only_when_idempotent() {
        assert!(!moves_on(Attempt::MaybeProcessed, false));
        assert!(!moves_on(Attempt::UnsureUnavailable, false));
        assert!(moves_on(Attempt::MaybeProcessed, true));
        assert!(moves_on(Attempt::UnsureUnavailable, true));
    }

    #[test]
    fn reads_verifications_and_keyed_writes_are_idempotent() {
        assert!(is_idempotent(&Method::GET, "/v1/keys", &[]));
        assert!(is_idempotent(&Method::POST, "/v1/verify", &[]));
        assert!(is_idempotent(&Method::POST, "/v1/verify/as-of", &[]));
        assert!(!is_idempotent(&Method::POST, "/v1/keys", &[]));
        assert!(!is_idempotent(&Method::DELETE, "/v1/keys/key_1", &[]));
        assert!(!is_idempotent(&Method::POST, "/v1/keys/key_1/disable", &[]));
        let keyed = [(HeaderName::from_static(IDEMPOTENCY_KEY), "k-1".to_string())];
        assert!(is_idempotent(&Method::POST, "/v1/keys", &keyed));
        assert!(is_idempotent(&Method::DELETE, "/v1/keys/key_1", &keyed));
    }

    #[test]
    fn only_503_unavailable_says_nothing_was_written() {
        assert_eq!(classify_answer(StatusCode::OK, None), Attempt::Answered);
        assert_eq!(classify_answer(StatusCode::NOT_FOUND, Some("not_found")), Attempt::Answered);
        assert_eq!(classify_answer(StatusCode::INTERNAL_SERVER_ERROR, Some("internal")), Attempt::Answered);
        assert_eq!(classify_answer(StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")), Attempt::Unavailable);
        let unsure = classify_answer(StatusCode::SERVICE_UNAVAILABLE, Some("outcome_unknown"));
        assert_eq!(unsure, Attempt::UnsureUnavailable);
        assert_eq!(classify_answer(StatusCode::SERVICE_UNAVAILABLE, None), Attempt::UnsureUnavailable);
    }

    #[test]
    fn the_preferred_address_goes_first_then_the_given_order() {
        let order = |preferred, count| attempt_order(preferred, count).collect::<Vec<_>>();
        assert_eq!(order(0, 3), [0, 1, 2]);
        assert_eq!(order(2, 3), [2, 0, 1]);
        assert_eq!(order(1, 1), [0], "a stale preference past the end falls back to the last");
        assert_eq!(order(0, 1), [0]);
        assert!(order(0, 0).is_empty());
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_sent_and_a_dropped_one_maybe_processed() {
        use tokio::io::AsyncReadExt;
        let http = reqwest::Client::new();

        // A port that was free a moment ago: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let err = http.post(format!("http://{closed}/v1/keys")).send().await.unwrap_err();
        assert_eq!(classify_send_error(&err), Attempt::NotSent, "{err:?}");

        // A listener that reads the request and closes without answering.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await;
        });
        let err = http.post(format!("http://{addr}/v1/keys")).body("{}").send().await.unwrap_err();
        assert_eq!(classify_send_error(&err), Attempt::MaybeProcessed, "{err:?}");
        server.await.unwrap();
    }

    /// A one-trick HTTP server: answers every request with `answer` (or, when `None`, reads
    /// the request and closes the connection unanswered); counts the requests it got.
    async fn stub_server(answer: Option<&'static str>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buffer).await;
                counted.fetch_add(1, Ordering::SeqCst);
                if let Some(answer) = answer {
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
            }
        });
        (url, requests)
    }

    const OK_CLUSTER: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\
        content-length: 2\r\n\r\n{}";
    const NO_LEADER: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
        connection: close\r\ncontent-length: 60\r\n\r\n{\"error\":{\"code\":\"unavailable\",\"message\":\"no leader known\"}}";

    fn dead_url() -> String {
        format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap())
    }

    #[tokio::test]
    async fn a_client_moves_past_dead_and_unavailable_nodes_and_then_prefers_the_one_that_answered() {
        use std::sync::atomic::Ordering;
        let (unavailable, _) = stub_server(Some(NO_LEADER)).await;
        let (working, served) = stub_server(Some(OK_CLUSTER)).await;
        let client = crate::Client::with_addresses(&[dead_url(), unavailable, working.clone()], None, None).unwrap();
        // A write without an Idempotency-Key still moves on: nothing was written anywhere.
        let err = client.remove_cluster_member(9).await.unwrap_err();
        assert_eq!(served.load(Ordering::SeqCst), 1, "the third address had the request");
        assert!(matches!(err, crate::ClientError::Decode(_)), "the stub's `{{}}` is no cluster status: {err:?}");
        assert_eq!(client.address(), working, "the node that answered is tried first from now on");
    }

    #[tokio::test]
    async fn a_write_that_may_have_been_applied_is_not_sent_elsewhere_but_a_read_is() {
        use std::sync::atomic::Ordering;
        let (dropping, dropped) = stub_server(None).await;
        let (working, served) = stub_server(Some(OK_CLUSTER)).await;
        let client = crate::Client::with_addresses(&[dropping, working], None, None).unwrap();
        let err = client.remove_cluster_member(9).await.unwrap_err();
        assert!(matches!(err, crate::ClientError::Transport(_)), "{err:?}");
        assert_eq!((dropped.load(Ordering::SeqCst), served.load(Ordering::SeqCst)), (1, 0));
        // A read is harmless to repeat: it goes on to the next node.
        let err = client.cluster_status().await.unwrap_err();
        assert!(matches!(err, crate::ClientError::Decode(_)), "{err:?}");
        assert_eq!((dropped.load(Ordering::SeqCst), served.load(Ordering::SeqCst)), (2, 1));
    }

    #[tokio::test]
    async fn when_every_address_fails_the_error_names_each_and_why() {
        let (unavailable, _) = stub_server(Some(NO_LEADER)).await;
        let dead = dead_url();
        let client = crate::Client::with_addresses(&[dead.clone(), unavailable.clone()], None, None).unwrap();
        let err = client.cluster_status().await.unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(503), Some("unavailable")));
        let text = err.to_string();
        assert!(text.contains(&format!("{dead}: ")) && text.contains("onnect"), "{text}");
        assert!(text.contains(&format!("{unavailable}: no leader known")), "{text}");

        let client = crate::Client::with_addresses(&[dead.clone(), dead_url()], None, None).unwrap();
        let err = client.cluster_status().await.unwrap_err();
        assert!(
            matches!(err, crate::ClientError::Transport(ref why) if why.matches("http://").count() >= 2),
            "{err:?}"
        );
        // One address: its own error, as before there were several.
        let err = crate::Client::new(dead, None).unwrap().cluster_status().await.unwrap_err();
        assert!(!err.to_string().contains("no address answered"), "{err}");
    }
}
