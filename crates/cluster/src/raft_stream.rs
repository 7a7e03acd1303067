//! AppendEntries over one long-lived connection per follower, instead of one HTTP request each.
//!
//! Why: a one-client write waits for one AppendEntries round trip, and as an HTTP request that
//! round trip took ~0.4 ms more than the follower's own work (docs/benchmarks.md). openraft
//! replicates to a follower strictly one request at a time, so the exchange needs no HTTP: the
//! leader opens `GET /internal/raft/stream`, signed for that follower (`peer_auth.rs`), with
//! `Upgrade: keyledger-raft/1`; the follower answers `101` signed over the request's nonce, so
//! each end knows the other holds the cluster key; from then on the connection carries frames,
//! one answer per request.
//! When the peer serves https the connection is TLS first, and the stream runs inside it.
//!
//! A frame is `[payload length: u32 LE][payload]`, the payload `codec`'s versioned bincode: an
//! `AppendEntriesRequest` from the leader, a `Result<AppendEntriesResponse, RaftError>` back.
//! Anything unexpected (a bad frame, a timeout, a closed socket) drops the connection; the next
//! call opens a new one. Votes and snapshot chunks stay plain requests (`rpc.rs`): a vote goes
//! to a fresh client each election, and a snapshot's chunks pause elections while they last.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, HOST, UPGRADE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use keyledger_ledger::{codec, NodeId, TypeConfig};
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use crate::network::{path, CallError, RpcClient};
use crate::node::ClusterNode;
use crate::peer_auth::{ANSWER_HEADER, REQUEST_HEADER};
use crate::protocol::{self, PROTOCOL_HEADER};

/// The protocol named in `Upgrade`; a new frame format gets a new name.
const PROTOCOL: &str = "keyledger-raft/1";

/// The largest frame either side accepts: a batch of entries is bounded by openraft's
/// `max_payload_entries`, far below this; the same limit as an internal request body.
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// A follower closes a connection that has carried nothing for this long. A live leader
/// sends a heartbeat every 100 ms; a silent connection is one whose leader vanished behind a
/// partition without closing it.
const IDLE: Duration = Duration::from_secs(30);

/// How long the HTTP exchange that opens a stream may take at most (each call has its own,
/// shorter deadline; this only bounds the task that drives the exchange).
const UPGRADE_DEADLINE: Duration = Duration::from_secs(10);

/// What one AppendEntries call answers: the follower's verdict, or its Raft error.
type AppendAnswer = Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>;

/// The connection under a stream: a TCP socket, or TLS over one when the peer serves https.
trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> PeerIo for T {}

/// The leader's end of one stream to one follower.
pub(crate) struct StreamClient {
    io: BufReader<Box<dyn PeerIo>>,
    /// The frame being written or read, reused between calls.
    buf: Vec<u8>,
}

impl StreamClient {
    /// Connects to the peer at `base` (`http://host:port`, or `https://host:port` with `tls`,
    /// the configuration trusting the cluster's CA) and upgrades the connection. Both ends
    /// prove they hold the cluster key: the upgrade request is signed for node `target`, and
    /// its `101` must carry that node's signature over the request's nonce.
    pub(crate) async fn open(
        rpc: &RpcClient,
        target: NodeId,
        base: &str,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<StreamClient, CallError> {
        let (authority, tls) = match (base.strip_prefix("http://"), base.strip_prefix("https://"), tls) {
            (Some(authority), _, _) => (authority, None),
            (_, Some(authority), Some(tls)) => (authority, Some(tls)),
            (_, Some(_), None) => {
                return Err(CallError::Failed(format!(
                    "{base}: an https peer needs this node to trust the cluster's CA (--peer-cacert)"
                )))
            }
            _ => return Err(CallError::Failed(format!("{base}: the raft stream needs an http(s):// address"))),
        };
        let tcp = TcpStream::connect(authority).await.map_err(|_| CallError::Unreachable(base.to_string()))?;
        // Frames larger than one segment must not wait for an ACK (Nagle's algorithm).
        tcp.set_nodelay(true).map_err(|e| CallError::Failed(e.to_string()))?;
        match tls {
            None => upgrade(rpc, target, base, authority, tcp).await,
            Some(tls) => {
                let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| CallError::Failed(format!("{base}: not a TLS server name ({e})")))?;
                let connecting = TlsConnector::from(tls.clone()).connect(name, tcp);
                let stream = tokio::time::timeout(UPGRADE_DEADLINE, connecting)
                    .await
                    .map_err(|_| CallError::Failed(format!("{base}: the TLS handshake timed out")))?
                    .map_err(|e| CallError::Failed(format!("{base}: TLS handshake failed: {e}")))?;
                upgrade(rpc, target, base, authority, stream).await
            }
        }
    }

    /// Sends one AppendEntries and waits for its answer.
    pub(crate) async fn append(
        &mut self,
        request: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendAnswer, CallError> {
        let failed = |e: io::Error| CallError::Failed(format!("raft stream: {e}"));
        write_frame(self.io.get_mut(), request, &mut self.buf).await.map_err(failed)?;
        read_frame(&mut self.io, &mut self.buf).await.map_err(failed)
    }
}

/// The HTTP exchange that turns a fresh connection into a stream: `GET` with `Upgrade`, `101`.
async fn upgrade<IO>(
    rpc: &RpcClient,
    target: NodeId,
    base: &str,
    authority: &str,
    io: IO,
) -> Result<StreamClient, CallError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    let failed = |e: hyper::Error| CallError::Failed(format!("{base}: {e}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(failed)?;
    // Drives the HTTP exchange until the upgrade hands the socket over; one that never
    // finishes (a peer that stops answering midway) is dropped rather than left waiting.
    tokio::spawn(tokio::time::timeout(UPGRADE_DEADLINE, connection.with_upgrades()));
    let signed = rpc.sign(target, "GET", path::STREAM, b"");
    let request = axum::http::Request::get(path::STREAM)
        .header(HOST, authority)
        .header(REQUEST_HEADER, signed.header)
        .header(PROTOCOL_HEADER, protocol::header_value())
        .header(CONNECTION, "upgrade")
        .header(UPGRADE, PROTOCOL)
        .body(Body::empty())
        .map_err(|e| CallError::Failed(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(failed)?;
    rpc.check_protocol(base, response.headers().get(PROTOCOL_HEADER))?;
    match response.status() {
        StatusCode::SWITCHING_PROTOCOLS => {}
        StatusCode::UNAUTHORIZED => return Err(rpc.refused(base)),
        status => return Err(CallError::Failed(format!("{base} answered {status} to the raft stream"))),
    }
    let status = response.status().as_u16();
    rpc.check_answer(base, target, &signed.nonce, status, response.headers().get(ANSWER_HEADER), b"")?;
    let upgraded = hyper::upgrade::on(response).await.map_err(failed)?;
    let parts = upgraded
        .downcast::<TokioIo<IO>>()
        .map_err(|_| CallError::Failed("the upgraded connection is not the one we opened".into()))?;
    // The follower sends nothing before it is asked, so nothing can be buffered yet.
    if !parts.read_buf.is_empty() {
        return Err(CallError::Failed(format!("{base} sent bytes before any request")));
    }
    let io: Box<dyn PeerIo> = Box::new(parts.io.into_inner());
    Ok(StreamClient { io: BufReader::new(io), buf: Vec::new() })
}

/// `GET /internal/raft/stream` (behind the signature check, like every internal route): upgrades
/// the connection and serves AppendEntries on it until the leader closes it.
pub(crate) async fn accept(State(node): State<Arc<ClusterNode>>, mut request: Request) -> Response {
    if request.headers().get(UPGRADE).map(HeaderValue::as_bytes) != Some(PROTOCOL.as_bytes()) {
        let message = format!("this route serves only `Upgrade: {PROTOCOL}`");
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => serve(node, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "raft stream upgrade failed"),
        }
    });
    (StatusCode::SWITCHING_PROTOCOLS, [(CONNECTION, "upgrade"), (UPGRADE, PROTOCOL)]).into_response()
}

/// Answers one leader's AppendEntries, in order, until it hangs up, goes silent or misbehaves.
async fn serve<IO: AsyncRead + AsyncWrite + Unpin>(node: Arc<ClusterNode>, io: IO) {
    let mut io = BufReader::new(io);
    let mut buf = Vec::new();
    loop {
        let request: AppendEntriesRequest<TypeConfig> =
            match tokio::time::timeout(IDLE, read_frame(&mut io, &mut buf)).await {
                Ok(Ok(request)) => request,
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "raft stream closed on a bad frame");
                    return;
                }
                Err(_) => {
                    tracing::debug!("raft stream idle for {IDLE:?}: closed");
                    return;
                }
            };
        let answer: AppendAnswer = node.raft().append_entries(request).await;
        if let Err(e) = write_frame(io.get_mut(), &answer, &mut buf).await {
            tracing::debug!(error = %e, "raft stream: cannot answer");
            return;
        }
    }
}

/// Writes `value` as one frame with one `write_all`, so a frame is never split by a flush.
async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(io: &mut W, value: &T, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.extend_from_slice(&[0; 4]);
    codec::encode_into(value, buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let length = buf.len() - 4;
    if length > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a {length}-byte frame is over the limit")));
    }
    buf[..4].copy_from_slice(&(length as u32).to_le_bytes());
    io.write_all(buf).await
}

/// Reads one frame and decodes it.
pub(crate) async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    io: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<T> {
    let length = io.read_u32_le().await? as usize;
    if length > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a {length}-byte frame is over the limit")));
    }
    // Grown as bytes arrive, not sized by the length the peer claims.
    buf.clear();
    if (&mut *io).take(length as u64).read_to_end(buf).await? < length {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    codec::decode(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_reads_back_as_written() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut buf = Vec::new();
        write_frame(&mut a, &(7u64, "seven".to_string()), &mut buf).await.unwrap();
        let back: (u64, String) = read_frame(&mut b, &mut Vec::new()).await.unwrap();
        assert_eq!(back, (7, "seven".to_string()));
    }

    #[tokio::test]
    async fn a_frame_claiming_more_than_the_limit_is_refused_before_it_is_read() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&((MAX_FRAME as u32) + 1).to_le_bytes()).await.unwrap();
        let error = read_frame::<_, u64>(&mut b, &mut Vec::new()).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_truncated_frame_is_an_unexpected_end() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&10u32.to_le_bytes()).await.unwrap();
        a.write_all(&[1, 2, 3]).await.unwrap();
        drop(a);
        let error = read_frame::<_, u64>(&mut b, &mut Vec::new()).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_frame_that_does_not_decode_is_invalid_data() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut frame = 3u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&[99, 0, 0]); // an unknown codec version
        a.write_all(&frame).await.unwrap();
        let error = read_frame::<_, u64>(&mut b, &mut Vec::new()).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
