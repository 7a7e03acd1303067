//! The crash loop: SIGKILL a random node at a random moment while writes go on, restart it,
//! again and again. Every restart must recover with its chain intact, every acknowledged write
//! must be in the ledger, every node must end with the same ledger, and — the revocation
//! barrier — no node may ever verify a key as valid at or after its acknowledged disable.
//!
//! The default run (CI) does `DEFAULT_KILLS`; `scripts/crash-loop N` runs it with `N` kills
//! (`KEYLEDGER_CRASH_KILLS`), and `KEYLEDGER_CRASH_SEED` replays a run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keyledger_client::{Client, ExportFormat, ExportRequest};
use keyledger_wire as wire;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::util::{new_key, poll, Cluster};

const DEFAULT_KILLS: u64 = 6;
const NODES: u64 = 3;

/// A write the cluster acknowledged: `key` was renamed to `name`.
#[derive(Debug, Clone)]
struct Acknowledged {
    key: String,
    name: String,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_loop_of_crashes() {
    let kills = env_u64("KEYLEDGER_CRASH_KILLS").unwrap_or(DEFAULT_KILLS);
    let seed = env_u64("KEYLEDGER_CRASH_SEED").unwrap_or_else(|| rand_core::OsRng.next_u64());
    eprintln!("crash loop: {kills} kills, seed {seed} (KEYLEDGER_CRASH_SEED={seed} replays the nemesis)");
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut cluster = Cluster::start(NODES).await;
    let admin = cluster.client(1);
    let settings = wire::UpdateSettingsRequest { max_keys_per_user: Some(1000), ..Default::default() };
    admin.update_settings(&settings).await.unwrap();
    let mut keys = Vec::new();
    for i in 0..4 {
        keys.push(admin.create_key(&new_key(&format!("renamed-{i}"))).await.unwrap().value.key.id);
    }

    // The writer: renames through any node, keeping what was acknowledged.
    let clients: Vec<Client> = (1..=NODES).map(|id| cluster.client(id)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, keys) = (stop.clone(), keys.clone());
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut attempts = 0u64;
            while !stop.load(Ordering::Relaxed) {
                attempts += 1;
                let key = &keys[rng.next_u32() as usize % keys.len()];
                let client = &clients[rng.next_u32() as usize % clients.len()];
                let name = format!("w{attempts}");
                let change = wire::UpdateKeyRequest { name: Some(name.clone()), description: None };
                match tokio::time::timeout(Duration::from_secs(10), client.update_key(key, &change, None)).await {
                    Ok(Ok(_)) => acknowledged.push(Acknowledged { key: key.clone(), name }),
                    // Refused, unreachable, or unknown: not acknowledged, so nothing is owed.
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            (attempts, acknowledged)
        })
    };

    // The revoker: create a key, disable it, then ask a random node to verify it with the
    // disable's index — it must never answer valid.
    let revoker = {
        let stop = stop.clone();
        let clients: Vec<Client> = (1..=NODES).map(|id| cluster.client(id)).collect();
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0xd15a);
        tokio::spawn(async move {
            let (mut checked, mut violations) = (0u64, Vec::new());
            let pick = |rng: &mut ChaCha20Rng| clients[rng.next_u32() as usize % clients.len()].clone();
            while !stop.load(Ordering::Relaxed) {
                let timeout = Duration::from_secs(10);
                let created = match tokio::time::timeout(timeout, pick(&mut rng).create_key(&new_key("revoked"))).await
                {
                    Ok(Ok(created)) => created.value,
                    _ => continue,
                };
                let disabled = match tokio::time::timeout(timeout, pick(&mut rng).disable_key(&created.key.id)).await {
                    Ok(Ok(disabled)) => disabled,
                    _ => continue,
                };
                let request = crate::util::verify_req(&created.secret, Some(disabled.index));
                // A refusal (503: not applied in time, node down) is fine; `valid` never is.
                if let Ok(Ok(answer)) = tokio::time::timeout(timeout, pick(&mut rng).verify(&request)).await {
                    checked += 1;
                    if answer.valid {
                        violations.push(format!(
                            "{} verified valid at or after its disable (index {})",
                            created.key.id, disabled.index
                        ));
                    }
                }
                let _ = tokio::time::timeout(timeout, pick(&mut rng).delete_key(&created.key.id)).await;
            }
            (checked, violations)
        })
    };

    // The nemesis.
    for round in 0..kills {
        tokio::time::sleep(Duration::from_millis(100 + u64::from(rng.next_u32() % 400))).await;
        let victim = 1 + u64::from(rng.next_u32()) % NODES;
        cluster.kill(victim);
        tokio::time::sleep(Duration::from_millis(u64::from(rng.next_u32() % 300))).await;
        cluster.restart(victim).await;
        eprintln!("round {round}: killed and restarted node {victim}");
    }
    stop.store(true, Ordering::Relaxed);
    let (attempts, acknowledged) = writer.await.unwrap();
    eprintln!("{} of {attempts} writes acknowledged", acknowledged.len());
    assert!(!acknowledged.is_empty(), "some writes went through");
    let (checked, violations) = revoker.await.unwrap();
    eprintln!(
        "revocation barrier: {checked} verifications after acknowledged disables, {} violations",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(checked > 0, "the revocation barrier was exercised");

    // Every node converges on one ledger, and every acknowledged rename is in it.
    let head = poll("every node to reach the same ledger head", Duration::from_secs(30), async || {
        let mut heads = Vec::new();
        for id in 1..=NODES {
            heads.push(cluster.own_ledger_head(id).await?);
        }
        let first = heads[0].clone();
        if heads.iter().all(|h| *h == first) {
            Ok(first)
        } else {
            Err(format!("{heads:?}"))
        }
    })
    .await;
    let mut names = std::collections::HashSet::new();
    for key in &keys {
        for event in admin.key_history(key).await.unwrap().events {
            if event.kind == "updated" {
                names.insert((key.clone(), event.data["name"].as_str().unwrap().to_string()));
            }
        }
    }
    for write in &acknowledged {
        assert!(names.contains(&(write.key.clone(), write.name.clone())), "acknowledged write lost: {write:?}");
    }

    // Each node's own copy of the whole ledger verifies offline, identical up to the head.
    let mut exports = Vec::new();
    for id in 1..=NODES {
        let request = ExportRequest { scope: Some("cluster".into()), ..ExportRequest::new(ExportFormat::Jsonl) };
        let mut export = cluster.client(id).audit_export(&request).await.unwrap();
        let mut bytes = Vec::new();
        while let Some(chunk) = export.chunk().await.unwrap() {
            bytes.extend_from_slice(&chunk);
        }
        let options = keyledger_audit::verify::Options {
            expect: keyledger_audit::verify::Expect::Complete,
            trusted: None,
            whole_cluster: true,
        };
        let verified = keyledger_audit::verify::verify_export(&bytes[..], &options)
            .unwrap_or_else(|e| panic!("node {id}'s ledger does not verify: {e}"));
        assert!(verified.events >= head.seq);
        let prefix: Vec<String> =
            String::from_utf8(bytes).unwrap().lines().take(head.seq as usize).map(String::from).collect();
        exports.push(prefix);
    }
    assert!(exports.windows(2).all(|w| w[0] == w[1]), "every node holds the same bytes");
}
