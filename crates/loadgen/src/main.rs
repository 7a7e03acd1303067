//! `keyledger-load`: N concurrent clients doing durable writes for a fixed time, against
//! keyledger (a key rename per write, through every node in turn) or etcd (a `put` through its
//! v3 JSON gateway), so `scripts/bench-writes` can report both as a ratio on the same machine.
//! Every write counted was acknowledged: keyledger answers after a quorum flushed it, etcd after
//! a quorum wrote it to its WAL. `--target verify` measures verifications instead (one key,
//! N clients), and `--half-open N` holds N slowloris connections to the first node meanwhile
//! (`scripts/bench-tls`). `--target seed` creates `--keys` keys through the batch endpoint and
//! writes their secrets to a file (`seed.rs`, for `scripts/bench-verify-http`).

mod seed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use keyledger_client::Client;
use keyledger_wire as wire;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Keyledger,
    Etcd,
    /// keyledger: how long from sending a disable until every node refuses the key.
    Visibility,
    /// keyledger: verifications of one valid key (each counted as a "write" in the report).
    Verify,
    /// keyledger: create `--keys` keys in batches, their secrets written to `--secrets-file`.
    Seed,
}

/// Durable writes from N clients for a while; prints one JSON line of results.
#[derive(Parser)]
struct Args {
    #[arg(long, value_enum)]
    target: Target,
    /// The nodes' base URLs, comma-separated; client i talks to node i mod n.
    #[arg(long, value_delimiter = ',')]
    address: Vec<String>,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// keyledger: an owner's API key.
    #[arg(long, env = "KEYLEDGER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// keyledger: the CA to trust for `https://` addresses.
    #[arg(long, env = "KEYLEDGER_CACERT")]
    cacert: Option<PathBuf>,
    /// Hold this many connections to the first node open during the run, sending nothing or
    /// half a request (as a slowloris client does); they are opened before the clock starts.
    #[arg(long, default_value_t = 0)]
    half_open: usize,
    /// seed: how many keys to create.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// seed: batches of keys in flight at once.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// seed: the new file (mode 0600) the secrets are written to, one per line.
    #[arg(long)]
    secrets_file: Option<PathBuf>,
}

/// One client's results: latencies of acknowledged writes, and failures.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failures: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(!args.address.is_empty() && args.clients > 0, "give --address and --clients");
    let held = half_open(&args.address[0], args.half_open).await?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tallies = match args.target {
        Target::Keyledger => keyledger(&args, deadline).await?,
        Target::Etcd => etcd(&args, deadline).await?,
        Target::Visibility => vec![visibility(&args, deadline).await?],
        Target::Verify => verify(&args, deadline).await?,
        // Not a timed run: it prints its own report.
        Target::Seed => return seed_keys(&args).await,
    };
    // How many of the held connections the server still keeps open (none closed by the run).
    let still_held = still_open(held).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = tallies.iter().flat_map(|t| t.latencies.iter().copied()).collect();
    latencies.sort();
    let failures: u64 = tallies.iter().map(|t| t.failures).sum();
    let at =
        |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).map(|d| d.as_secs_f64() * 1000.0);
    let report = serde_json::json!({
        "target": format!("{:?}", args.target).to_lowercase(),
        "nodes": args.address.len(),
        "clients": args.clients,
        "seconds": elapsed,
        "writes": latencies.len(),
        "failures": failures,
        "writes_per_second": latencies.len() as f64 / elapsed,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": latencies.last().map(|d| d.as_secs_f64() * 1000.0),
        "half_open": args.half_open,
        "half_open_still_held": still_held,
    });
    println!("{report}");
    Ok(())
}

/// Creates `--keys` keys through the first address and prints how fast.
async fn seed_keys(args: &Args) -> anyhow::Result<()> {
    let api_key = args.api_key.clone().context("seeding needs --api-key or KEYLEDGER_API_KEY")?;
    let secrets_file = args.secrets_file.as_deref().context("seeding needs --secrets-file")?;
    let client = clients(args, &api_key)?.swap_remove(0);
    let seed = seed::Seed { client, keys: args.keys, in_flight: args.in_flight, secrets_file };
    println!("{}", seed::run(seed).await?);
    Ok(())
}

/// One client per address, trusting `--cacert`.
fn clients(args: &Args, api_key: &str) -> anyhow::Result<Vec<Client>> {
    let cacert = args.cacert.as_deref();
    Ok(args
        .address
        .iter()
        .map(|a| Client::with_cacert(a.clone(), Some(api_key.to_string()), cacert))
        .collect::<Result<_, _>>()?)
}

/// Opens `n` connections to the node at `address` (`http(s)://host:port`); every other one
/// sends half a request line and a header and nothing more. Plain TCP even for an https node:
/// a connection that never finishes its handshake holds the server just the same.
async fn half_open(address: &str, n: usize) -> anyhow::Result<Vec<tokio::net::TcpStream>> {
    use tokio::io::AsyncWriteExt;
    let authority = address.split("://").last().unwrap_or(address).trim_end_matches('/');
    let mut held = Vec::with_capacity(n);
    while held.len() < n {
        let batch: Vec<_> = (held.len()..n.min(held.len() + 500))
            .map(|i| {
                let authority = authority.to_string();
                tokio::spawn(async move {
                    let mut tcp = tokio::net::TcpStream::connect(&authority).await?;
                    if i % 2 == 1 {
                        tcp.write_all(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\n").await?;
                    }
                    anyhow::Ok(tcp)
                })
            })
            .collect();
        for task in batch {
            held.push(task.await?.context("opening a half-open connection")?);
        }
    }
    Ok(held)
}

/// How many of `held` the server has not closed: a read that would block means still open.
async fn still_open(held: Vec<tokio::net::TcpStream>) -> usize {
    let mut open = 0;
    let mut byte = [0u8; 1];
    for tcp in held {
        match tcp.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => open += 1,
            _ => {}
        }
    }
    open
}

/// Each client verifies the same valid key until the deadline.
async fn verify(args: &Args, deadline: Instant) -> anyhow::Result<Vec<Tally>> {
    let api_key = args.api_key.clone().context("keyledger needs --api-key or KEYLEDGER_API_KEY")?;
    let nodes = clients(args, &api_key)?;
    let request =
        wire::CreateKeyRequest { name: "verified".into(), expires_in: Some("1d".into()), ..Default::default() };
    let created = nodes[0].create_key(&request).await.context("creating the key to verify")?;
    let check =
        Arc::new(wire::VerifyRequest { key: created.value.secret, permission: None, min_index: Some(created.index) });
    let workers = (0..args.clients).map(|i| (nodes[i % nodes.len()].clone(), check.clone()));
    until(deadline, workers, |(client, check), _| async move {
        matches!(client.verify(&check).await, Ok(answer) if answer.valid)
    })
    .await
}

/// Each client renames its own key until the deadline (one key per client, so no write waits
/// on another's revision).
async fn keyledger(args: &Args, deadline: Instant) -> anyhow::Result<Vec<Tally>> {
    let api_key = args.api_key.clone().context("keyledger needs --api-key or KEYLEDGER_API_KEY")?;
    let nodes = clients(args, &api_key)?;
    let settings = wire::UpdateSettingsRequest { max_keys_per_user: Some(1000), ..Default::default() };
    nodes[0].update_settings(&settings).await.context("raising the per-user key limit")?;
    let mut keys = Vec::new();
    for i in 0..args.clients {
        let request =
            wire::CreateKeyRequest { name: format!("load-{i}"), expires_in: Some("30d".into()), ..Default::default() };
        keys.push(nodes[0].create_key(&request).await.context("creating a key to rename")?.value.key.id);
    }
    let workers = keys.into_iter().enumerate().map(|(i, key)| (nodes[i % nodes.len()].clone(), key));
    until(deadline, workers, |(client, key), n| async move {
        let change = wire::UpdateKeyRequest { name: Some(format!("w{n}")), description: None };
        client.update_key(&key, &change, None).await.is_ok()
    })
    .await
}

/// Rounds until the deadline: create a key, wait until every node verifies it, disable it
/// through the first node, then poll every node until it refuses the key. A round's figure is
/// the time from sending the disable until the last node refused.
async fn visibility(args: &Args, deadline: Instant) -> anyhow::Result<Tally> {
    let api_key = args.api_key.clone().context("keyledger needs --api-key or KEYLEDGER_API_KEY")?;
    let nodes = clients(args, &api_key)?;
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let request =
            wire::CreateKeyRequest { name: "visibility".into(), expires_in: Some("1d".into()), ..Default::default() };
        let created = nodes[0].create_key(&request).await?;
        let key = created.value.key.id.clone();
        let check =
            |index| wire::VerifyRequest { key: created.value.secret.clone(), permission: None, min_index: index };
        for node in &nodes {
            anyhow::ensure!(node.verify(&check(Some(created.index))).await?.valid, "a new key verifies everywhere");
        }
        let sent = Instant::now();
        let polls: Vec<_> = nodes
            .iter()
            .map(|node| {
                let (node, request) = (node.clone(), check(None));
                tokio::spawn(async move {
                    loop {
                        match node.verify(&request).await {
                            Ok(answer) if !answer.valid => return Some(sent.elapsed()),
                            Ok(_) => {}
                            Err(_) => return None,
                        }
                        if sent.elapsed() > Duration::from_secs(5) {
                            return None;
                        }
                    }
                })
            })
            .collect();
        nodes[0].disable_key(&key).await?;
        let mut seen = Vec::new();
        for poll in polls {
            seen.push(poll.await?);
        }
        match seen.iter().copied().collect::<Option<Vec<_>>>() {
            Some(times) => tally.latencies.push(times.into_iter().max().unwrap_or_default()),
            None => tally.failures += 1,
        }
        nodes[0].delete_key(&key).await?;
    }
    Ok(tally)
}

/// Each client puts its own key through etcd's v3 JSON gateway until the deadline.
async fn etcd(args: &Args, deadline: Instant) -> anyhow::Result<Vec<Tally>> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let workers = (0..args.clients).map(|i| {
        let url = format!("{}/v3/kv/put", args.address[i % args.address.len()].trim_end_matches('/'));
        (http.clone(), url, base64(format!("bench/{i}").as_bytes()))
    });
    until(deadline, workers, |(http, url, key), n| async move {
        let body = serde_json::json!({"key": key, "value": base64(format!("w{n}").as_bytes())});
        match http.post(&url).json(&body).send().await {
            Ok(answer) if answer.status().is_success() => answer.bytes().await.is_ok(),
            _ => false,
        }
    })
    .await
}

/// One task per worker until `deadline`: each sends `request` (given a clone of its worker and
/// the request's number, from 1) over and over, timing the ones that succeed, counting the rest.
async fn until<W, F, Fut>(deadline: Instant, workers: impl Iterator<Item = W>, request: F) -> anyhow::Result<Vec<Tally>>
where
    W: Clone + Send + 'static,
    F: Fn(W, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let tasks: Vec<_> = workers
        .map(|worker| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let sent = Instant::now();
                    if request(worker.clone(), n).await {
                        tally.latencies.push(sent.elapsed());
                    } else {
                        tally.failures += 1;
                    }
                }
                tally
            })
        })
        .collect();
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await?);
    }
    Ok(tallies)
}

/// Standard base64 with padding, as etcd's gateway reads bytes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(super::base64(plain.as_bytes()), encoded);
        }
    }
}
