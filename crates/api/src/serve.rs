//! The server's accept loop: HTTP/1.1 on hyper, plain or over TLS, built so that slow or idle
//! clients cannot exhaust the node.
//!
//! - At most [`ServeOptions::max_connections`] connections are open at once. A connection
//!   accepted over the cap is closed at once: the kernel's backlog never fills with connections
//!   nobody will serve, and nothing queues in the process.
//! - A connection must deliver a request's whole head within
//!   [`ServeOptions::header_read_timeout`] (hyper's own timer). Hyper starts that timer whenever
//!   the connection waits for a request, so it is also the idle keep-alive timeout: a connection
//!   that sends nothing for that long is closed.
//! - A TLS handshake must finish within the same bound.
//! - Every request carries `ConnectInfo<SocketAddr>` (the client's address) in its extensions,
//!   as `axum::serve` would put it.
//!
//! On shutdown the loop stops accepting, idle connections are closed, and requests in flight are
//! finished (hyper's graceful shutdown), then `serve` returns; connections handed over by an HTTP
//! upgrade (the Raft stream) are no longer HTTP and are not waited for.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How the accept loop treats connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long a connection may take to send a request's head (and may stay idle between
    /// requests), and how long a TLS handshake may take.
    pub header_read_timeout: Duration,
    /// Serve HTTPS with this configuration; plain HTTP without it.
    pub tls: Option<Arc<ServerConfig>>,
}

impl ServeOptions {
    /// Well below the process's file-descriptor limit (20,000 on the test machines), leaving
    /// room for the data files and the connections to peers.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
    /// A client that cannot send a request's head in this long is not a client worth waiting for.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
}

/// After a failed `accept` (out of file descriptors, most likely) the loop pauses this long
/// instead of spinning on the same error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Refused connections are logged at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    // Shutdown is signalled to every connection by `stop`; each holds a `done` receiver, and the
    // loop waits until the last is dropped.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    let mut refused_since_log: u64 = 0;
    let mut last_refusal_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(tcp);
            refused_since_log += 1;
            if last_refusal_log.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
                tracing::warn!(
                    refused = refused_since_log,
                    max_connections = options.max_connections,
                    "too many open connections: closed new ones at once"
                );
                last_refusal_log = Some(Instant::now());
                refused_since_log = 0;
            }
            continue;
        };
        // Small answers must not wait for an ACK (Nagle's algorithm).
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let (stop, done) = (stop_rx.clone(), done_rx.clone());
        let acceptor = acceptor.clone();
        let header_read_timeout = options.header_read_timeout;
        tokio::spawn(async move {
            let _held = (permit, done);
            match acceptor {
                None => serve_connection(TokioIo::new(tcp), peer, app, header_read_timeout, stop).await,
                Some(acceptor) => match tokio::time::timeout(header_read_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => serve_connection(TokioIo::new(tls), peer, app, header_read_timeout, stop).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    drop((stop_rx, done_rx));
    let _ = stop_tx.send(());
    done_tx.closed().await;
    Ok(())
}

/// Serves HTTP/1.1 on one connection until the client closes it, it times out, or shutdown.
async fn serve_connection<IO>(
    io: TokioIo<IO>,
    peer: SocketAddr,
    app: Router,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<()>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.oneshot(request).await.unwrap_or_else(|never| match never {})) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).keep_alive(true);
    let connection = http.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = stop.changed() => {
            // Closes the connection if idle, else once the request in flight is answered.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Serves a router answering with the client address it was given; returns its address and
    /// the sender that shuts it down.
    async fn echo_server(options: ServeOptions) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let app =
            Router::new().route("/", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, options, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    fn options() -> ServeOptions {
        ServeOptions { max_connections: 4, header_read_timeout: Duration::from_secs(5), tls: None }
    }

    #[tokio::test]
    async fn every_request_carries_the_client_address() {
        let (addr, _stop) = echo_server(options()).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let local = tcp.local_addr().unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&local.to_string()), "{answer}");
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_returns() {
        let app = Router::new().route("/", get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, options(), async move {
            let _ = stopped.await;
        }));
        // A keep-alive connection, idle after one answer.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 12];
        idle.read_exact(&mut buf).await.unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), server).await.expect("serve returned").unwrap().unwrap();
    }
}
