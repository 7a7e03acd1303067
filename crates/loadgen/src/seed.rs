//! `--target seed`: creates N keys through `POST /v1/keys/batch`, several batches in flight, and
//! writes their secrets to a file, one per line (mode 0600), for `scripts/bench-verify-http`.
//!
//! Keys per identity are capped (`max_keys_per_service_account`, at most 1000), so the keys go
//! to N/1000 service accounts, one full batch each; the per-service-account limit and the cap
//! on service accounts are raised first, as an operator provisioning that many would.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};
use keyledger_client::Client;
use keyledger_wire as wire;

/// What to seed.
pub(crate) struct Seed<'a> {
    pub(crate) client: Client,
    pub(crate) keys: usize,
    /// Batches sent at once; the node's batcher packs what is in flight into Raft entries.
    pub(crate) in_flight: usize,
    pub(crate) secrets_file: &'a Path,
}

/// Keys per service account and per batch: the most either allows.
const PER_OWNER: usize = wire::MAX_KEYS_PER_BATCH;
/// Service accounts created at once (each is one ordinary write).
const OWNERS_IN_FLIGHT: usize = 32;

/// Seeds the keys and answers one JSON line of results.
pub(crate) async fn run(seed: Seed<'_>) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(seed.keys > 0 && seed.in_flight > 0, "give --keys and --in-flight above 0");
    let owners = seed.keys.div_ceil(PER_OWNER);
    let settings = wire::UpdateSettingsRequest {
        max_keys_per_service_account: Some(PER_OWNER as u32),
        max_service_accounts: Some(u32::try_from(owners + 1000)?),
        ..Default::default()
    };
    seed.client.update_settings(&settings).await.context("raising the key and service-account limits")?;
    let started = Instant::now();
    let owner_ids: Vec<String> = stream::iter(0..owners)
        .map(|i| {
            let client = seed.client.clone();
            async move {
                let request = wire::CreateServiceAccountRequest {
                    name: format!("seed-{i}"),
                    role: Some("read".into()),
                    ..Default::default()
                };
                let created = client.create_service_account(&request).await.context("creating a service account")?;
                anyhow::Ok(created.value.id)
            }
        })
        .buffered(OWNERS_IN_FLIGHT)
        .try_collect()
        .await?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(seed.secrets_file)
        .with_context(|| format!("creating {}", seed.secrets_file.display()))?;
    let mut out = BufWriter::new(file);
    let keys_started = Instant::now();
    let mut batches = stream::iter(owner_ids.into_iter().enumerate())
        .map(|(i, owner)| {
            let client = seed.client.clone();
            let count = PER_OWNER.min(seed.keys - i * PER_OWNER);
            async move { client.create_keys(&batch(i, &owner, count)).await.context("creating a batch of keys") }
        })
        .buffer_unordered(seed.in_flight);
    let (mut created, mut failed) = (0usize, 0usize);
    while let Some(answer) = batches.next().await {
        for result in answer?.value.results {
            match result.secret {
                Some(secret) if result.status == 201 => {
                    writeln!(out, "{secret}")?;
                    created += 1;
                }
                _ => failed += 1,
            }
        }
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let seconds = keys_started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "target": "seed",
        "keys": created,
        "failures": failed,
        "service_accounts": owners,
        "service_accounts_seconds": (keys_started - started).as_secs_f64(),
        "seconds": seconds,
        "keys_per_second": created as f64 / seconds,
    }))
}

/// Batch `i`: `count` keys for service account `owner`, each living 30 days.
fn batch(i: usize, owner: &str, count: usize) -> wire::CreateKeysRequest {
    let owner = wire::OwnerRef { kind: wire::OwnerKind::ServiceAccount, id: owner.to_string() };
    let keys = (0..count)
        .map(|j| wire::CreateKeyRequest {
            name: format!("seed-{i}-{j}"),
            expires_in: Some("30d".into()),
            owner: Some(owner.clone()),
            ..Default::default()
        })
        .collect();
    wire::CreateKeysRequest { keys }
}
