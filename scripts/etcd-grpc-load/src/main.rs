//! `etcd-grpc-load`: the etcd target of `keyledger-load` (crates/loadgen), but through etcd's
//! native gRPC API (`etcd-client`, on tonic) instead of its v3 JSON gateway, so that
//! `scripts/bench-writes` also compares keyledger with etcd's strongest client path.
//!
//! It does what `keyledger-load --target etcd` does, so the figures compare: N clients until the
//! deadline, client i puts its own key `bench/{i}` (value `w{n}`, n counting its writes) through
//! endpoint i mod n, and only acknowledged puts are counted (etcd answers once a quorum wrote the
//! entry to its WAL). Each endpoint gets one gRPC connection that its clients share, as an etcd
//! client does (HTTP/2 carries their requests side by side). It prints one JSON line with the
//! fields `keyledger-load` prints, `target` being `etcd-grpc`.
//!
//! It lives outside the main workspace (its own `[workspace]`, its own Cargo.lock): `etcd-client`
//! compiles etcd's `.proto` files with `protoc` in its build script, and CI, which builds the
//! workspace, should need neither protoc nor tonic.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use etcd_client::{Client, ConnectOptions};

/// Puts from N clients to a 3-member etcd cluster for a while; prints one JSON line of results.
#[derive(Parser)]
struct Args {
    /// The members' client URLs, comma-separated; client i talks to member i mod n.
    #[arg(long, value_delimiter = ',')]
    address: Vec<String>,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
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
    // One client per member, with the same 10 s per-request timeout as keyledger-load's.
    let options = ConnectOptions::new().with_timeout(Duration::from_secs(10));
    let mut members = Vec::new();
    for address in &args.address {
        let client = Client::connect([address.trim_end_matches('/')], Some(options.clone()))
            .await
            .with_context(|| format!("connecting to {address}"))?;
        members.push(client.kv_client());
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.clients)
        .map(|i| {
            let mut kv = members[i % members.len()].clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut n = 0u64;
                let key = format!("bench/{i}");
                while Instant::now() < deadline {
                    n += 1;
                    let sent = Instant::now();
                    match kv.put(key.as_str(), format!("w{n}"), None).await {
                        Ok(_) => tally.latencies.push(sent.elapsed()),
                        Err(_) => tally.failures += 1,
                    }
                }
                tally
            })
        })
        .collect();
    let mut tallies = Vec::new();
    for worker in workers {
        tallies.push(worker.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = tallies.iter().flat_map(|t| t.latencies.iter().copied()).collect();
    latencies.sort();
    let failures: u64 = tallies.iter().map(|t| t.failures).sum();
    let at =
        |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q).round() as usize).map(|d| d.as_secs_f64() * 1000.0);
    let report = serde_json::json!({
        "target": "etcd-grpc",
        "nodes": args.address.len(),
        "clients": args.clients,
        "seconds": elapsed,
        "writes": latencies.len(),
        "failures": failures,
        "writes_per_second": latencies.len() as f64 / elapsed,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": latencies.last().map(|d| d.as_secs_f64() * 1000.0),
        "half_open": 0,
        "half_open_still_held": 0,
    });
    println!("{report}");
    Ok(())
}
