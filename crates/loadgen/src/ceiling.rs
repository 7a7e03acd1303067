//! `keyledger-ceiling`: the HTTP ceiling for `POST /v1/verify` in `scripts/bench-verify-http`.
//!
//! A bare axum server that does what keyledger's verify must do and nothing else: read the same
//! JSON body, check the token's form and hash it as keyledger does (`keyledger_model::token`,
//! SHA3-256 of the text), look the digest up in a `HashMap` built from the secrets file, check
//! the expiry, and answer a body of the same shape as keyledger's valid answer. No ledger, no
//! middleware, no metrics, no use recording: what keyledger reaches over HTTP is measured as a
//! ratio to this. It uses keyledger's allocator and tokio's default worker threads (one per
//! core), as `keyledger serve` does by default, so the two differ only in what they do.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use clap::Parser;
use keyledger_model::token;
use keyledger_wire as wire;
use sha3::{Digest, Sha3_256};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serves `POST /v1/verify` for the secrets of a file, one per line.
#[derive(Parser)]
struct Args {
    /// Address to listen on, e.g. 127.0.0.1:7800.
    #[arg(long)]
    listen: SocketAddr,
    /// The secrets file `keyledger-load --target seed` wrote.
    #[arg(long)]
    secrets_file: PathBuf,
}

/// What keyledger's index entry gives a valid answer: the key, its owner and its expiry.
struct Entry {
    key_id: String,
    owner_id: String,
    owner_name: String,
    expires_at_ms: i64,
    expires_at: String,
}

struct Keys {
    by_digest: HashMap<[u8; 32], Entry>,
    /// What every seeded key may do (they all belong to `read` service accounts).
    permissions: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keys = Arc::new(load(&args)?);
    let app = Router::new().route("/v1/verify", post(verify)).with_state(keys);
    let listener = tokio::net::TcpListener::bind(args.listen).await.context("binding --listen")?;
    axum::serve(listener, app).await?;
    Ok(())
}

fn load(args: &Args) -> anyhow::Result<Keys> {
    let file =
        std::fs::File::open(&args.secrets_file).with_context(|| format!("opening {}", args.secrets_file.display()))?;
    let expires_at_ms = now_ms() + 30 * 24 * 3_600_000;
    let expires_at = keyledger_model::Timestamp(expires_at_ms).to_string();
    let mut by_digest = HashMap::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let entry = Entry {
            key_id: format!("key_{i:026}"),
            owner_id: format!("sa_{:026}", i / wire::MAX_KEYS_PER_BATCH),
            owner_name: format!("seed-{}", i / wire::MAX_KEYS_PER_BATCH),
            expires_at_ms,
            expires_at: expires_at.clone(),
        };
        by_digest.insert(Sha3_256::digest(line?.trim().as_bytes()).into(), entry);
    }
    Ok(Keys { by_digest, permissions: vec!["account:read".into()] })
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn verify(
    State(keys): State<Arc<Keys>>,
    axum::Json(req): axum::Json<wire::VerifyRequest>,
) -> axum::Json<wire::VerifyResponse> {
    let invalid = |code: &str| wire::VerifyResponse { valid: false, code: Some(code.into()), ..Default::default() };
    if token::parse(&req.key).is_err() {
        return axum::Json(invalid("malformed"));
    }
    let digest: [u8; 32] = Sha3_256::digest(req.key.as_bytes()).into();
    let answer = match keys.by_digest.get(&digest) {
        None => invalid("not_found"),
        Some(entry) if entry.expires_at_ms <= now_ms() => invalid("expired"),
        Some(entry) => wire::VerifyResponse {
            valid: true,
            code: None,
            key_id: Some(entry.key_id.clone()),
            identity: Some(wire::Identity {
                kind: wire::OwnerKind::ServiceAccount,
                id: entry.owner_id.clone(),
                name: entry.owner_name.clone(),
            }),
            account: Some("default".into()),
            permissions: Some(keys.permissions.clone()),
            expires_at: Some(Some(entry.expires_at.clone())),
        },
    };
    axum::Json(answer)
}
