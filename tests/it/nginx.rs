//! nginx in front of a service, with `auth_request` to keyledger, configured with the `nginx`
//! block of `docs/integrate.md` (its addresses replaced by this test's), so the documented
//! configuration is the tested one. The service behind nginx is served here and records what it
//! receives.
//!
//! Needs Debian's nginx (`nginx-light` has `auth_request`). Without it the tests skip with a
//! printed reason, unless `KEYLEDGER_REQUIRE_NGINX=1` (set by `.ci/run`), which makes them fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use reqwest::StatusCode;

use crate::util::{namespace_sa, poll, service_account_with_key, Cluster, STARTUP};

/// The addresses in the documented block, and what the test puts in their place.
const DOC_KEYLEDGER: &str = "127.0.0.1:7700";
const DOC_APP: &str = "127.0.0.1:8000";
const DOC_LISTEN: &str = "127.0.0.1:8080";

/// The nginx binary, or `None` (after saying why) when the test should skip.
fn nginx_binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file());
    if found.is_none() {
        let why = "nginx is not installed (apt-get install nginx-light)";
        if std::env::var_os("KEYLEDGER_REQUIRE_NGINX").is_some_and(|v| v == "1") {
            panic!("{why}, and KEYLEDGER_REQUIRE_NGINX=1");
        }
        eprintln!("skipping the nginx test: {why}");
    }
    found
}

/// The first ```nginx block of docs/integrate.md.
fn documented_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/integrate.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let start = text.find("```nginx\n").expect("docs/integrate.md has an ```nginx block") + "```nginx\n".len();
    let end = start + text[start..].find("\n```").expect("the nginx block ends");
    text[start..end].to_string()
}

/// The service behind nginx: answers `200 app` to everything and keeps each request's headers.
struct App {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl App {
    async fn start() -> App {
        let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push(headers);
                "app"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        App { addr, seen }
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn last(&self) -> HeaderMap {
        self.seen.lock().unwrap().last().cloned().expect("the app was called")
    }
}

/// One nginx process (`master_process off`: a single process to kill), its files in a temp dir.
struct Nginx {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(binary: &Path, keyledger: &str, app: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let listen = crate::util::free_loopback_url().trim_start_matches("http://").to_string();
        let server =
            documented_config().replace(DOC_KEYLEDGER, keyledger).replace(DOC_APP, app).replace(DOC_LISTEN, &listen);
        assert!(server.contains(&listen) && server.contains(keyledger), "the documented block has the addresses");
        let d = dir.path().display();
        // Run as root (a CI container), nginx would switch its workers to `nobody`.
        let user = if rustix::process::geteuid().is_root() { "user root;" } else { "" };
        let conf = format!(
            "{user}\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{server}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { child, url: format!("http://{listen}"), dir };
        let url = nginx.url.clone();
        let exited = |nginx: &mut Nginx| nginx.child.try_wait().ok().flatten();
        poll("nginx to listen", STARTUP, async || {
            if let Some(status) = exited(&mut nginx) {
                panic!("nginx exited with {status}:\n{}", nginx.error_log());
            }
            tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.map(drop).map_err(|e| e.to_string())
        })
        .await;
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- nginx error log:\n{}", self.error_log());
        }
    }
}

#[tokio::test]
async fn nginx_lets_through_only_valid_keys_and_hands_the_app_the_identity() {
    let Some(binary) = nginx_binary() else { return };
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let app = App::start().await;
    let nginx = Nginx::start(&binary, &cluster.node(1).addr().to_string(), &app.addr.to_string()).await;
    let http = reqwest::Client::new();
    let get = |path: &str, key: Option<&str>, extra: &[(&str, &str)]| {
        let mut request = http.get(format!("{}{path}", nginx.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        request.send()
    };

    // No key, a bad key: 401 from nginx, and the app never called.
    let answer = get("/orders", None, &[("x-keyledger-identity-id", "usr_forged")]).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(answer.headers()["www-authenticate"], "Bearer", "keyledger's challenge passed on");
    let answer = get("/orders", Some("klk_not_a_key"), &[]).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.calls(), 0, "the app saw a request without a valid key");

    // A valid key: the app is called and sees who it is, not who the client claims to be.
    let spoof = [("x-keyledger-identity-id", "usr_forged"), ("x-keyledger-account", "other")];
    let answer = get("/orders?page=2", Some(cluster.admin_key()), &spoof).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{}", nginx.error_log());
    assert_eq!(answer.text().await.unwrap(), "app");
    let verified = admin.verify(&crate::util::verify_req(cluster.admin_key(), None)).await.unwrap();
    let identity = verified.identity.unwrap();
    let seen = app.last();
    assert_eq!(seen["x-keyledger-key-id"], verified.key_id.unwrap().as_str());
    assert_eq!(seen["x-keyledger-identity-kind"], "user");
    assert_eq!(seen["x-keyledger-identity-id"], identity.id.as_str(), "the client's forged id was replaced");
    assert_eq!(seen["x-keyledger-identity-name"], "admin");
    assert_eq!(seen["x-keyledger-account"], "default");
    assert_eq!(seen.get_all("x-keyledger-identity-id").iter().count(), 1, "{seen:?}");

    // The payments location needs namespace:payments:write: a reader is refused 403.
    admin.create_namespace("payments").await.unwrap();
    let (_, reader) = service_account_with_key(&admin, namespace_sa("payments-reader", "payments", "read")).await;
    let (writer_sa, writer) = service_account_with_key(&admin, namespace_sa("payments-app", "payments", "write")).await;
    let calls = app.calls();
    assert_eq!(get("/payments/refund", Some(&reader), &[]).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(app.calls(), calls, "the app saw a request without the permission");
    assert_eq!(get("/orders", Some(&reader), &[]).await.unwrap().status(), StatusCode::OK, "any key will do there");
    assert_eq!(get("/payments/refund", Some(&writer), &[]).await.unwrap().status(), StatusCode::OK);
    let seen = app.last();
    assert_eq!(seen["x-keyledger-identity-kind"], "service_account");
    assert_eq!(seen["x-keyledger-identity-id"], writer_sa.id.as_str());

    // Disabled through the API: refused from then on.
    let writer_key = admin.verify(&crate::util::verify_req(&writer, None)).await.unwrap().key_id.unwrap();
    admin.disable_key(&writer_key).await.unwrap();
    let calls = app.calls();
    for path in ["/payments/refund", "/orders"] {
        assert_eq!(get(path, Some(&writer), &[]).await.unwrap().status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(app.calls(), calls);

    // The subrequest locations are internal: a client cannot call them.
    let direct = get("/_keyledger/any-key", Some(cluster.admin_key()), &[]).await.unwrap();
    assert_eq!(direct.status(), StatusCode::NOT_FOUND);
}
