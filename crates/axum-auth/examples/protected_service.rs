//! A service whose routes need keyledger API keys.
//!
//! ```text
//! KEYLEDGER_ADDRESSES=http://127.0.0.1:7700 KEYLEDGER_ADMIN_KEY=klk_... \
//!     cargo run -p keyledger-axum --example protected_service
//! curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/whoami
//! curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/payments
//! curl -X POST -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/revoke/key_...
//! ```
//!
//! - `GET /whoami`: any valid key; answers the identity.
//! - `GET /payments`: a key granting `namespace:payments:read`.
//! - `POST /revoke/{key_id}`: disables a key through keyledger as `KEYLEDGER_ADMIN_KEY` and
//!   raises the revocation barrier to the write's index, so this service refuses the key from
//!   the next request on, cached or not.
//!
//! Environment: `KEYLEDGER_ADDRESSES` (comma-separated node addresses), `KEYLEDGER_ADMIN_KEY`
//! (for `/revoke`; optional), `LISTEN` (default `127.0.0.1:8080`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use keyledger_axum::{Authenticated, Config, KeyledgerAuth};
use keyledger_client::Client;

#[derive(Clone)]
struct App {
    auth: KeyledgerAuth,
    /// A client with an admin key, for revocations; `None` without `KEYLEDGER_ADMIN_KEY`.
    admin: Option<Client>,
}

async fn whoami(who: Authenticated) -> String {
    format!("{} {} ({}) of account {}\n", who.identity.kind.as_str(), who.identity.name, who.identity.id, who.account)
}

async fn payments(who: Authenticated) -> String {
    format!("payments for {}\n", who.identity.name)
}

async fn revoke(State(app): State<App>, Path(key_id): Path<String>) -> (StatusCode, String) {
    let Some(admin) = &app.admin else {
        return (StatusCode::NOT_IMPLEMENTED, "set KEYLEDGER_ADMIN_KEY to revoke keys\n".into());
    };
    match admin.disable_key(&key_id).await {
        Ok(written) => {
            // Every verdict older than the disable is now ignored here.
            app.auth.barrier(written.index);
            (StatusCode::OK, format!("{key_id} disabled at ledger index {}\n", written.index))
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("keyledger refused: {e}\n")),
    }
}

/// The routes: each group behind its own layer.
fn app(state: App) -> Result<Router, keyledger_axum::SetupError> {
    let any_key =
        Router::new().route("/whoami", get(whoami)).route("/revoke/{key_id}", post(revoke)).layer(state.auth.layer());
    let payments_readers =
        Router::new().route("/payments", get(payments)).layer(state.auth.require("namespace:payments:read")?);
    Ok(any_key.merge(payments_readers).with_state(state))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addresses = std::env::var("KEYLEDGER_ADDRESSES").unwrap_or_else(|_| "http://127.0.0.1:7700".into());
    let auth = KeyledgerAuth::new(Config::new(addresses.split(',').map(str::trim)))?;
    let admin = match std::env::var("KEYLEDGER_ADMIN_KEY") {
        Ok(key) => Some(Client::new(addresses.split(',').next().unwrap_or_default().trim(), Some(key))?),
        Err(_) => None,
    };
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{listen}");
    axum::serve(listener, app(App { auth, admin })?).await?;
    Ok(())
}
