//! The traffic: workers that create, disable, enable, rotate, delete and verify keys through
//! random nodes, all at once and on the same few keys, recording every request.
//!
//! A small pool of live keys is shared by all workers, so operations on one key overlap —
//! that is what makes the linearizability check bite. A key leaves the pool (with a final
//! delete) after a number of operations, or after a few operations of unknown outcome, which
//! keeps every key's history short enough to check exhaustively. After each acknowledged
//! disable, delete or rotation, the worker asks a random node to verify the key with that
//! write's index as `min_index`: the revocation barrier.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyledger_client::{Client, ClientError};
use keyledger_wire as wire;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::history::{read_error, write_error, History, Outcome, Record};
use crate::model::{KeyOp, KeyRet};

/// A request with no answer after this long counts as "maybe".
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Live keys the workers share.
const LIVE_KEYS: usize = 8;
/// Operations on one key before it is retired.
const OPS_PER_KEY: u32 = 30;
/// Operations on a key after it was rotated away.
const AFTER_ROTATION: u32 = 5;
/// Operations of unknown outcome on one key before it is retired: each one multiplies the
/// orders the checker may have to try.
const MAYBES_PER_KEY: u32 = 4;

#[derive(Debug)]
struct KeyInfo {
    id: String,
    secret: String,
    issued: u32,
    maybes: u32,
}

#[derive(Debug, Default)]
struct Pool {
    keys: Vec<KeyInfo>,
    live: Vec<usize>,
}

/// What the workers share.
pub struct Workload {
    pub history: Arc<History>,
    /// `(node id, client)` for every node.
    pub clients: Vec<(u64, Client)>,
    /// The service accounts keys are created for (spread so none reaches its key limit).
    pub owners: Vec<String>,
    pub stop: Arc<AtomicBool>,
    /// Verify with local reads instead of linearizable ones: a deliberately weaker client,
    /// to show the checker catches the stale answers that follow.
    pub local_reads: bool,
    pool: Mutex<Pool>,
    requests: AtomicU64,
    run: String,
}

enum Plan {
    Create,
    On(usize, KeyOp),
}

impl Workload {
    pub fn new(history: Arc<History>, clients: Vec<(u64, Client)>, owners: Vec<String>, seed: u64) -> Workload {
        Workload {
            history,
            clients,
            owners,
            stop: Arc::new(AtomicBool::new(false)),
            local_reads: false,
            pool: Mutex::new(Pool::default()),
            requests: AtomicU64::new(0),
            run: format!("chaos-{seed:x}"),
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key ids, by checked-object number.
    pub fn key_ids(&self) -> Vec<String> {
        self.pool().keys.iter().map(|k| k.id.clone()).collect()
    }

    fn plan(&self, rng: &mut ChaCha20Rng) -> Plan {
        let mut pool = self.pool();
        if pool.live.len() < LIVE_KEYS {
            return Plan::Create;
        }
        let slot = rng.next_u32() as usize % pool.live.len();
        let key = pool.live[slot];
        let info = &mut pool.keys[key];
        info.issued += 1;
        if info.issued >= OPS_PER_KEY || info.maybes >= MAYBES_PER_KEY {
            pool.live.swap_remove(slot);
            return Plan::On(key, KeyOp::Delete);
        }
        let op = match rng.next_u32() % 100 {
            0..=39 => KeyOp::Verify,
            40..=57 => KeyOp::Disable,
            58..=77 => KeyOp::Enable,
            78..=91 => KeyOp::Rotate,
            _ => KeyOp::Delete,
        };
        Plan::On(key, op)
    }

    fn add_key(&self, id: String, secret: String) -> usize {
        let mut pool = self.pool();
        pool.keys.push(KeyInfo { id, secret, issued: 0, maybes: 0 });
        let key = pool.keys.len() - 1;
        pool.live.push(key);
        key
    }

    fn request_id(&self) -> String {
        format!("{}-{}", self.run, self.requests.fetch_add(1, Ordering::Relaxed))
    }

    /// One worker: runs until `stop`.
    pub async fn worker(self: Arc<Self>, worker: usize, seed: u64) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        while !self.stop.load(Ordering::Relaxed) {
            let (node, client) = self.clients[rng.next_u32() as usize % self.clients.len()].clone();
            let request_id = self.request_id();
            let client = client.with_request_id(request_id.clone());
            match self.plan(&mut rng) {
                Plan::Create => self.create(worker, node, &client, request_id, &mut rng).await,
                Plan::On(key, op) => self.on_key(worker, node, &client, request_id, key, op, &mut rng).await,
            }
        }
    }

    async fn create(&self, worker: usize, node: u64, client: &Client, request_id: String, rng: &mut ChaCha20Rng) {
        let owner = self.owners[rng.next_u32() as usize % self.owners.len()].clone();
        let req = wire::CreateKeyRequest {
            name: "chaos".into(),
            expires_in: Some("30d".into()),
            owner: Some(wire::OwnerRef { kind: wire::OwnerKind::ServiceAccount, id: owner }),
            ..Default::default()
        };
        let called_us = self.history.now_us();
        let result = tokio::time::timeout(OP_TIMEOUT, client.create_key(&req)).await;
        let returned_us = self.history.now_us();
        let (key, key_id, outcome) = match result {
            Ok(Ok(created)) => {
                let id = created.value.key.id.clone();
                let key = self.add_key(id.clone(), created.value.secret);
                (Some(key), id, Outcome::Answered { answer: KeyRet::Done, index: Some(created.index) })
            }
            Ok(Err(e)) => (None, String::new(), write_error(&e)),
            Err(_) => (None, String::new(), Outcome::Maybe { why: "no answer in time".into() }),
        };
        self.history.push(Record {
            worker,
            key,
            key_id,
            node,
            op: KeyOp::Create,
            min_index: None,
            rotated_from: None,
            request_id,
            called_us,
            returned_us,
            outcome,
        });
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_key(
        &self,
        worker: usize,
        node: u64,
        client: &Client,
        request_id: String,
        key: usize,
        op: KeyOp,
        rng: &mut ChaCha20Rng,
    ) {
        let (key_id, secret) = {
            let pool = self.pool();
            (pool.keys[key].id.clone(), pool.keys[key].secret.clone())
        };
        let record = |outcome, called_us, returned_us| Record {
            worker,
            key: Some(key),
            key_id: key_id.clone(),
            node,
            op,
            min_index: None,
            rotated_from: None,
            request_id: request_id.clone(),
            called_us,
            returned_us,
            outcome,
        };
        let called_us = self.history.now_us();
        let outcome = match op {
            KeyOp::Verify => {
                let req = wire::VerifyRequest { key: secret.clone(), permission: None, min_index: None };
                let client = if self.local_reads { client.clone() } else { client.linearizable() };
                match tokio::time::timeout(OP_TIMEOUT, client.verify(&req)).await {
                    Ok(Ok(answer)) => Outcome::Answered { answer: verdict(&answer), index: None },
                    Ok(Err(e)) => read_error(&e),
                    Err(_) => Outcome::Failed { why: "no answer in time".into() },
                }
            }
            KeyOp::Rotate => {
                let req = wire::RotateKeyRequest {
                    grace: Some("0".into()),
                    expires_in: Some("30d".into()),
                    ..Default::default()
                };
                match tokio::time::timeout(OP_TIMEOUT, client.rotate_key(&key_id, &req)).await {
                    Ok(Ok(rotated)) => {
                        let returned_us = self.history.now_us();
                        let new = self.add_key(rotated.value.key.id.clone(), rotated.value.secret);
                        // The old key gets a few more operations (all refused or invalid
                        // now), then makes room.
                        let mut pool = self.pool();
                        let old = &mut pool.keys[key];
                        old.issued = old.issued.max(OPS_PER_KEY.saturating_sub(AFTER_ROTATION));
                        drop(pool);
                        let done = Outcome::Answered { answer: KeyRet::Done, index: Some(rotated.index) };
                        // The new key's life starts with this rotation: a create over the same
                        // interval (see `model`).
                        self.history.push(Record {
                            key: Some(new),
                            key_id: rotated.value.key.id.clone(),
                            op: KeyOp::Create,
                            rotated_from: Some(key),
                            ..record(done.clone(), called_us, returned_us)
                        });
                        done
                    }
                    Ok(Err(e)) => write_error(&e),
                    Err(_) => Outcome::Maybe { why: "no answer in time".into() },
                }
            }
            KeyOp::Enable | KeyOp::Disable | KeyOp::Delete => {
                let result = match op {
                    KeyOp::Enable => timed(client.enable_key(&key_id)).await.map(|w| w.index),
                    KeyOp::Disable => timed(client.disable_key(&key_id)).await.map(|w| w.index),
                    _ => timed(client.delete_key(&key_id)).await.map(|w| w.index),
                };
                match result {
                    Ok(index) => Outcome::Answered { answer: KeyRet::Done, index: Some(index) },
                    Err(Some(e)) => write_error(&e),
                    Err(None) => Outcome::Maybe { why: "no answer in time".into() },
                }
            }
            KeyOp::Create => unreachable!("creates are planned apart"),
        };
        let returned_us = self.history.now_us();
        if matches!(outcome, Outcome::Maybe { .. }) {
            self.pool().keys[key].maybes += 1;
        }
        let barrier = match (&outcome, op) {
            (
                Outcome::Answered { answer: KeyRet::Done, index: Some(index) },
                KeyOp::Disable | KeyOp::Delete | KeyOp::Rotate,
            ) => Some(*index),
            _ => None,
        };
        if let (Outcome::Answered { answer: KeyRet::Done, .. }, KeyOp::Delete) = (&outcome, op) {
            self.pool().live.retain(|k| *k != key);
        }
        self.history.push(record(outcome, called_us, returned_us));
        if let Some(index) = barrier {
            self.barrier_verify(worker, key, &key_id, &secret, index, rng).await;
        }
    }

    /// Verifies `secret` on a random node with `min_index`, recorded for the barrier check.
    async fn barrier_verify(
        &self,
        worker: usize,
        key: usize,
        key_id: &str,
        secret: &str,
        index: u64,
        rng: &mut ChaCha20Rng,
    ) {
        let (node, client) = self.clients[rng.next_u32() as usize % self.clients.len()].clone();
        let request_id = self.request_id();
        let client = client.with_request_id(request_id.clone());
        let req = wire::VerifyRequest { key: secret.to_string(), permission: None, min_index: Some(index) };
        let called_us = self.history.now_us();
        let outcome = match tokio::time::timeout(OP_TIMEOUT, client.verify(&req)).await {
            Ok(Ok(answer)) => Outcome::Answered { answer: verdict(&answer), index: None },
            Ok(Err(e)) => read_error(&e),
            Err(_) => Outcome::Failed { why: "no answer in time".into() },
        };
        let returned_us = self.history.now_us();
        self.history.push(Record {
            worker,
            key: Some(key),
            key_id: key_id.to_string(),
            node,
            op: KeyOp::Verify,
            min_index: Some(index),
            rotated_from: None,
            request_id,
            called_us,
            returned_us,
            outcome,
        });
    }
}

/// The result of a write, or `Err(None)` when it did not answer in time.
async fn timed<T>(
    request: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, Option<ClientError>> {
    match tokio::time::timeout(OP_TIMEOUT, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

fn verdict(answer: &wire::VerifyResponse) -> KeyRet {
    if answer.valid {
        KeyRet::Valid
    } else {
        KeyRet::Invalid(answer.code.clone().unwrap_or_default())
    }
}
