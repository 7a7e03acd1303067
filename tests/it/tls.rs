//! TLS and the accept loop: HTTPS for the CLI, the client and peer traffic; plain HTTP refused
//! off loopback; half-open connections, the connection cap and the header-read timeout.
//!
//! Certificates are made here with rcgen: one CA, and one certificate for 127.0.0.1 signed by
//! it that every node serves.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keyledger_client::{Client, ClientError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{keyledger_bin, new_key, poll, succeeded, verify_req, Cluster, STARTUP};

/// The files of a test CA and of the node certificate it signed.
struct TestPki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    /// The node's certificate followed by the CA's: the chain a node serves.
    cert: PathBuf,
    key: PathBuf,
    /// A CA nobody's certificate chains to.
    other_ca: PathBuf,
}

impl TestPki {
    fn new() -> TestPki {
        let dir = tempfile::Builder::new().prefix("keyledger-tls-").tempdir().unwrap();
        let (ca_pem, issuer) = make_ca("keyledger test CA");
        let (other_ca_pem, _) = make_ca("some other CA");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "keyledger node");
        let node_key = KeyPair::generate().unwrap();
        let node_cert = params.signed_by(&node_key, &issuer).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        TestPki {
            ca: write("ca.pem", &ca_pem),
            cert: write("node.pem", &format!("{}{ca_pem}", node_cert.pem())),
            key: write("node.key", &node_key.serialize_pem()),
            other_ca: write("other-ca.pem", &other_ca_pem),
            _dir: dir,
        }
    }

    /// `serve` flags for HTTPS with this node certificate.
    fn serve_args(&self) -> Vec<String> {
        vec!["--tls-cert".into(), self.cert.display().to_string(), "--tls-key".into(), self.key.display().to_string()]
    }
}

fn make_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, Issuer::new(params, key))
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Sends `bytes` on a fresh connection to `addr` and reads until the server closes it (or
/// `within` passes); everything the server sent.
async fn exchange_raw(addr: std::net::SocketAddr, bytes: &[u8], within: Duration) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, tcp.read_to_end(&mut answer)).await;
    answer
}

#[tokio::test]
async fn a_tls_node_serves_the_cli_and_the_client_that_trust_its_ca_and_nothing_to_others() {
    let pki = TestPki::new();
    let cluster = Cluster::start_tls(1, &pki.ca, &strs(&pki.serve_args())).await;
    assert!(cluster.node(1).url().starts_with("https://"));

    // The CLI over https, trusting the CA with --cacert (added by `Cluster::cli`).
    let out = succeeded(
        &cluster.cli(&["apikey", "create", "--name", "over-tls", "--duration", "30d", "--output", "json"]),
        "apikey create over https",
    );
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let secret = created["secret"].as_str().unwrap().to_string();
    succeeded(&cluster.cli(&["verify", "--key", &secret]), "verify over https");

    // The client with the CA.
    let client = cluster.client(1);
    let written = client.create_key(&new_key("client-over-tls")).await.unwrap();
    let verdict = client.verify(&verify_req(&written.value.secret, Some(written.index))).await.unwrap();
    assert!(verdict.valid, "{verdict:?}");

    // Without the CA: refused, in one sentence saying what to do.
    let untrusting = Client::new(cluster.node(1).url(), Some(cluster.admin_key().to_string())).unwrap();
    match untrusting.cluster_status().await {
        Err(ClientError::Tls(message)) => {
            assert!(message.contains("not trusted") && message.contains("--cacert"), "{message}")
        }
        other => panic!("a client without the CA got {other:?}"),
    }
    // The CLI without --cacert says to give it.
    let cli = std::process::Command::new(crate::util::keyledger_bin())
        .args(["cluster", "status", "--address", &cluster.node(1).url(), "--api-key", cluster.admin_key()])
        .env_remove("KEYLEDGER_CACERT")
        .env("KEYLEDGER_CONFIG", "/nonexistent/keyledger-tests/config.json")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(1), "{cli:?}");
    assert!(String::from_utf8_lossy(&cli.stderr).contains("--cacert"), "{cli:?}");
    let wrong_ca = Client::with_cacert(cluster.node(1).url(), None, Some(&pki.other_ca)).unwrap();
    assert!(matches!(wrong_ca.cluster_status().await, Err(ClientError::Tls(_))));
    let out = Command::new(keyledger_bin())
        .args(["verify", "--key", &secret, "--address", &cluster.node(1).url()])
        .env_remove("KEYLEDGER_CACERT")
        .env("KEYLEDGER_CONFIG", "/nonexistent/keyledger-tests/config.json")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: the server's TLS certificate is not trusted"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");

    // A CA file that is not one.
    let error = Client::with_cacert(cluster.node(1).url(), None, Some(&pki.key)).unwrap_err();
    assert!(error.to_string().starts_with("cannot use the CA certificate file"), "{error}");

    // Plain HTTP to the TLS port: no HTTP answer, nothing of the API.
    let request =
        format!("GET /v1/cluster HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", cluster.admin_key());
    let answer = exchange_raw(cluster.node(1).addr(), request.as_bytes(), Duration::from_secs(5)).await;
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP got an HTTP answer: {:?}", String::from_utf8_lossy(&answer));
    assert!(!answer.windows(7).any(|w| w == b"members"), "plain HTTP got API data");
}

#[tokio::test]
async fn a_tls_cluster_replicates_over_https_and_refuses_plain_http_peer_calls() {
    let pki = TestPki::new();
    let mut args = pki.serve_args();
    args.extend(["--peer-cacert".to_string(), pki.ca.display().to_string()]);
    let cluster = Cluster::start_tls(3, &pki.ca, &strs(&args)).await;

    let status = cluster.client(1).cluster_status().await.unwrap();
    assert_eq!(status.members.len(), 3);
    for member in &status.members {
        assert!(member.address.starts_with("https://"), "peers are reached over https: {status:?}");
    }

    // A write on a follower goes to the leader and replicates to every node, all over TLS.
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let written = cluster.client(follower).create_key(&new_key("replicated-over-tls")).await.unwrap();
    for id in 1..=3 {
        let verdict = cluster.client(id).verify(&verify_req(&written.value.secret, Some(written.index))).await.unwrap();
        assert!(verdict.valid, "node {id}: {verdict:?}");
    }

    // A peer call in plain HTTP, even with the cluster secret, gets no answer at all.
    let secret = std::fs::read_to_string(cluster.cluster_secret_file()).unwrap();
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    for path in ["/internal/raft/vote", "/internal/status"] {
        let url = format!("http://{}{path}", cluster.node(leader).addr());
        let sent =
            plain.post(&url).header("authorization", format!("Bearer {}", secret.trim())).body(vec![0u8; 8]).send();
        match sent.await {
            Ok(answer) => panic!("plain HTTP to {path} was answered {}", answer.status()),
            Err(e) => assert!(!e.is_status(), "{e}"),
        }
    }
    // The cluster is unharmed.
    let written = cluster.client(leader).create_key(&new_key("after-plain-calls")).await.unwrap();
    assert!(written.index > 0);
}

#[tokio::test]
async fn plain_http_on_an_address_other_than_loopback_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(keyledger_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to serve plain HTTP on 0.0.0.0:0, which is not a loopback address")
            && stderr.contains("--insecure-plain-http"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists(), "nothing is created before the refusal");
}

/// Opens `n` connections to `addr`; those at even positions send nothing, the others half a
/// request line and a header, as a slowloris client does.
async fn half_open(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for batch in 0..n.div_ceil(500) {
        let opening = (batch * 500..((batch + 1) * 500).min(n)).map(|i| async move {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            if i % 2 == 1 {
                tcp.write_all(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\n").await.expect("send a partial request");
            }
            tcp
        });
        held.extend(join_on_tasks(opening).await);
    }
    held
}

/// Runs the futures on tasks, at once, and collects their outputs in order.
async fn join_on_tasks<T: Send + 'static>(
    futures: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

/// Whether the server still holds `tcp` open: a read neither ends nor fails within a moment.
async fn still_open(tcp: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut byte)).await.is_err()
}

#[tokio::test]
async fn verify_answers_promptly_while_5000_half_open_connections_are_held() {
    // A long header-read timeout, so the connections stay held for the whole test.
    let cluster = Cluster::start_with(1, &["--header-read-timeout", "120s"]).await;
    let client = cluster.client(1);
    let written = client.create_key(&new_key("verified-under-load")).await.unwrap();

    let mut held = half_open(cluster.node(1).addr(), 5000).await;
    let mut latencies = Vec::new();
    for _ in 0..50 {
        // A new client each time: a new connection, which must get through as well.
        let fresh = Client::new(cluster.node(1).url(), None).unwrap();
        let started = Instant::now();
        let verdict = fresh.verify(&verify_req(&written.value.secret, None)).await.unwrap();
        latencies.push(started.elapsed());
        assert!(verdict.valid);
    }
    latencies.sort();
    let worst = *latencies.last().unwrap();
    eprintln!(
        "verify with 5000 half-open connections held: p50 {:?}, p99 {:?}, max {worst:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100]
    );
    assert!(worst < Duration::from_secs(1), "a verify took {worst:?}");
    // The connections were held all along, not closed to make room.
    for tcp in held.iter_mut().step_by(250) {
        assert!(still_open(tcp).await, "a half-open connection was closed early");
    }
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_served_again_once_others_close() {
    const CAP: usize = 20;
    let cluster =
        Cluster::start_with(1, &["--max-connections", &CAP.to_string(), "--header-read-timeout", "120s"]).await;
    let addr = cluster.node(1).addr();
    let request = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n";

    // Each connection asks once and stays open (keep-alive) until one is not served. The test
    // harness may hold a pooled connection of its own, so the count served may be a little less
    // than the cap, never more.
    let mut held = Vec::new();
    let refused = loop {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut answer = [0u8; 12];
        match tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut answer)).await {
            Ok(Ok(_)) if answer.starts_with(b"HTTP/1.1 200") => held.push(tcp),
            Ok(_) => break tcp,
            Err(_) => panic!("connection {} neither answered nor closed", held.len() + 1),
        }
        assert!(held.len() <= CAP, "more than {CAP} connections were served at once");
    };
    assert!(held.len() >= CAP - 2, "only {} connections were served before one was refused", held.len());
    drop(refused);

    // Once they close, new connections are served again.
    drop(held);
    let client = Client::new(cluster.node(1).url(), None).unwrap();
    poll("a verify once the held connections closed", STARTUP, async || {
        client.verify(&verify_req("klk_not_a_key", None)).await.map_err(|e| e.to_string())
    })
    .await;
}

#[tokio::test]
async fn a_client_that_sends_a_partial_header_is_cut_off_after_the_header_read_timeout() {
    let cluster = Cluster::start_with(1, &["--header-read-timeout", "1s"]).await;
    let started = Instant::now();
    let answer =
        exchange_raw(cluster.node(1).addr(), b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Slow: ", Duration::from_secs(10))
            .await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "cut off after only {waited:?}");
    assert!(waited < Duration::from_secs(5), "not cut off after {waited:?}");
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "a partial request was answered");
    // The node serves whole requests as before.
    assert!(cluster.client(1).cluster_status().await.is_ok());
}
