//! Hostile callers: a burst of bad keys from one address (429 with `Retry-After`, the real key
//! still working from elsewhere), caps on exports and change feeds per caller, exports nobody
//! reads, SIGTERM with change feeds open, the data dir's modes, and `--file` paths that cannot
//! be written.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use keyledger_wire as wire;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{mode_of, new_key, poll, succeeded, user_with_key, verify_req, Cluster, CONVERGE};

/// The `keyledger_rate_limited_requests_total` sample for `reason` on node 1.
async fn rate_limited_count(cluster: &Cluster, reason: &str) -> u64 {
    let text = cluster.http().get(format!("{}/metrics", cluster.node(1).url())).send().await.unwrap().text().await;
    let wanted = format!("keyledger_rate_limited_requests_total{{reason=\"{reason}\"}} ");
    let text = text.unwrap();
    let line = text.lines().find(|line| line.starts_with(&wanted)).unwrap_or_else(|| panic!("no {wanted} in:\n{text}"));
    line[wanted.len()..].trim().parse().unwrap()
}

/// A plain client whose connections come from `source` (any 127/8 address reaches loopback).
fn http_from(source: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder().local_address(IpAddr::V4(source)).timeout(Duration::from_secs(10)).build().unwrap()
}

#[tokio::test]
async fn a_burst_of_bad_keys_is_refused_429_for_that_address_and_the_real_key_still_works() {
    let cluster = Cluster::single().await;
    let keys_url = format!("{}/v1/keys", cluster.node(1).url());
    let attacker = http_from(Ipv4Addr::new(127, 0, 0, 2));
    let guess = |i: usize| format!("klk_{:0>40}", i);

    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..25 {
        let answer = attacker.get(&keys_url).bearer_auth(guess(i)).send().await.unwrap();
        statuses.push(answer.status().as_u16());
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = answer.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: wire::ErrorBody = answer.json().await.unwrap();
            assert_eq!(body.error.code, "rate_limited", "{}", body.error.message);
        }
    }
    assert_eq!(statuses[..20], [401; 20], "the first 20 failures are answered 401: {statuses:?}");
    assert_eq!(statuses[20..], [429; 5], "then 429: {statuses:?}");
    let retry_after = retry_after.expect("a 429 carries Retry-After");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after} is the rest of the minute");

    // The blocked address is refused even with the real key, before the key is looked at: a
    // guesser must not learn which guess was right.
    let real = attacker.get(&keys_url).bearer_auth(cluster.admin_key()).send().await.unwrap();
    assert_eq!(real.status(), StatusCode::TOO_MANY_REQUESTS);
    // The real key works from its own address, and so does verification from the blocked one.
    cluster.client(1).list_keys(&Default::default()).await.expect("the real key still works");
    let verify = attacker
        .post(format!("{}/v1/verify", cluster.node(1).url()))
        .json(&verify_req(cluster.admin_key(), None))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), StatusCode::OK, "POST /v1/verify is not limited");
    assert_eq!(rate_limited_count(&cluster, "auth_failures").await, 6, "5 guesses and the real key refused");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let cluster = Cluster::single().await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let answer = cluster
            .http()
            .get(format!("{}/v1/keys", cluster.node(1).url()))
            .header("authorization", format!("{scheme} {}", cluster.admin_key()))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "scheme {scheme:?}");
    }
}

/// Opens the change feed as `secret`; the answer (its body stays open).
async fn open_feed(cluster: &Cluster, secret: &str) -> reqwest::Response {
    cluster
        .http()
        .get(format!("{}/v1/audit/stream", cluster.node(1).url()))
        .bearer_auth(secret)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn change_feeds_are_capped_per_caller_and_sigterm_closes_them_at_once() {
    let mut cluster = Cluster::start_with(1, &["--feeds-per-caller", "3", "--feeds-per-node", "5"]).await;
    let admin = cluster.client(1);
    let (_, other) = user_with_key(&admin, "other-admin", "admin").await;

    let mut open = Vec::new();
    for _ in 0..3 {
        let feed = open_feed(&cluster, cluster.admin_key()).await;
        assert_eq!(feed.status(), StatusCode::OK);
        open.push(feed);
    }
    let refused = open_feed(&cluster, cluster.admin_key()).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: wire::ErrorBody = refused.json().await.unwrap();
    assert_eq!(body.error.code, "rate_limited");
    assert!(body.error.message.contains("change feeds"), "{}", body.error.message);

    // Another caller still gets its own, up to the node's cap.
    for _ in 0..2 {
        let feed = open_feed(&cluster, &other).await;
        assert_eq!(feed.status(), StatusCode::OK, "another caller gets a feed");
        open.push(feed);
    }
    assert_eq!(open_feed(&cluster, &other).await.status(), StatusCode::TOO_MANY_REQUESTS, "the node's cap");
    // Closing one frees its slot.
    drop(open.remove(0));
    let reopened = poll("a closed feed's slot to be free", CONVERGE, async || {
        let feed = open_feed(&cluster, cluster.admin_key()).await;
        if feed.status() == StatusCode::OK {
            Ok(feed)
        } else {
            Err(format!("status {}", feed.status()))
        }
    })
    .await;
    open.push(reopened);

    // SIGTERM with five feeds open: the node exits cleanly within 2 s (it used to wait 45 s).
    let started = Instant::now();
    let status = cluster.terminate(1, Duration::from_secs(2));
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    eprintln!("stopped {:?} after SIGTERM with {} feeds open", started.elapsed(), open.len());
}

/// Writes events of about 1 KiB each (key descriptions) until the ledger holds `events` more.
async fn fill_ledger(cluster: &Cluster, events: usize) {
    let admin = cluster.client(1);
    let key = admin.create_key(&new_key("filler")).await.unwrap().value.key.id;
    let mut tasks = tokio::task::JoinSet::new();
    const WRITERS: usize = 64;
    for writer in 0..WRITERS {
        let (client, key) = (admin.clone(), key.clone());
        tasks.spawn(async move {
            for i in 0..events / WRITERS {
                let description = format!("{writer}-{i}-{}", "x".repeat(990));
                let update = wire::UpdateKeyRequest { name: None, description: Some(description) };
                client.update_key(&key, &update, None).await.expect("update the filler key");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// Starts an export as `secret` on a raw connection, reads the head of the answer and then
/// nothing more; the status code.
async fn stalled_export(cluster: &Cluster, secret: &str) -> (u16, TcpStream) {
    let address = cluster.node(1).url().trim_start_matches("http://").to_owned();
    // A small receive buffer, so little of the export fits in flight.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let mut stream = socket.connect(address.parse().unwrap()).await.unwrap();
    let request = format!("GET /v1/audit/export HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {secret}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    let status = std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap();
    (status, stream)
}

#[tokio::test]
async fn exports_nobody_reads_are_capped_and_dropped_while_the_node_answers_everyone_else() {
    let mut cluster = Cluster::start_with(
        1,
        &[
            "--exports-per-caller",
            "8",
            "--exports-per-node",
            "9",
            "--export-stall-timeout",
            "2s",
            "--shutdown-grace",
            "1s",
        ],
    )
    .await;
    let admin = cluster.client(1);
    // A ledger far larger than what socket buffers and the export's queue hold, so a producer
    // whose client reads nothing is left waiting.
    let filling = Instant::now();
    fill_ledger(&cluster, 2_560).await;
    eprintln!("wrote 2,560 events in {:?}", filling.elapsed());
    let (_, other) = user_with_key(&admin, "other-admin", "admin").await;

    let mut stalled = Vec::new();
    for _ in 0..8 {
        let (status, stream) = stalled_export(&cluster, cluster.admin_key()).await;
        assert_eq!(status, 200);
        stalled.push(stream);
    }
    let (status, _) = stalled_export(&cluster, cluster.admin_key()).await;
    assert_eq!(status, 429, "a ninth export by the same caller");

    // Everyone else is served meanwhile: the history answers at once, another caller exports.
    let started = Instant::now();
    let query = keyledger_client::AuditQuery { limit: Some(50), ..Default::default() };
    let page = admin.audit_events(&query).await.expect("the history answers");
    assert!(!page.events.is_empty());
    assert!(started.elapsed() < Duration::from_secs(1), "the history took {:?}", started.elapsed());
    let export = cluster
        .http()
        .get(format!("{}/v1/audit/export", cluster.node(1).url()))
        .bearer_auth(&other)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK, "another caller still gets an export");
    let lines = export.text().await.expect("the whole export").lines().count();
    assert!(lines > 2_560, "a complete export: {lines} lines");

    // Exports whose client takes nothing for the stall timeout are dropped, which frees their
    // slots: the first caller may export again, with its stalled connections still open.
    poll("the stalled exports to be dropped", CONVERGE, async || {
        let (status, _) = stalled_export(&cluster, cluster.admin_key()).await;
        if status == 200 {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    })
    .await;

    // SIGTERM with connections whose clients read nothing: exports get their grace (1 s here),
    // then the node stops without waiting for those clients.
    let started = Instant::now();
    let status = cluster.terminate(1, Duration::from_secs(5));
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    eprintln!("stopped {:?} after SIGTERM with {} unread exports open", started.elapsed(), stalled.len());
}

/// Every folder under `dir` is 0700 and every file 0600 (or stricter).
fn assert_owner_only(dir: &Path) {
    let mut pending = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(path) = pending.pop() {
        // sled renames its own files while the node runs: one may be gone by now.
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            pending.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        } else {
            files += 1;
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
        }
    }
    assert!(files > 3, "the data dir holds the node's files");
}

#[tokio::test]
async fn the_data_dir_is_for_its_owner_only_and_older_modes_are_tightened() {
    // A low snapshot threshold, so snapshots and log purges write files too.
    let mut cluster = Cluster::start_with(1, &["--snapshot-logs", "5"]).await;
    let admin = cluster.client(1);
    let key = admin.create_key(&new_key("modes")).await.unwrap().value.key.id;
    for i in 0..20 {
        let update = wire::UpdateKeyRequest { name: None, description: Some(format!("update {i}")) };
        admin.update_key(&key, &update, None).await.unwrap();
    }
    let data_dir = cluster.node(1).data_dir().to_path_buf();
    assert_owner_only(&data_dir);

    // As an older version (or a careless copy) left it: everything readable by all.
    cluster.terminate(1, Duration::from_secs(10));
    let mut pending = vec![data_dir.clone()];
    while let Some(path) = pending.pop() {
        let loose = if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    assert_eq!(mode_of(&data_dir), 0o755);
    cluster.restart(1).await;
    assert_owner_only(&data_dir);
}

#[tokio::test]
async fn a_secret_file_that_cannot_be_written_is_refused_before_any_key_is_made() {
    let cluster = Cluster::single().await;
    let admin = cluster.client(1);
    let count = || async { admin.list_keys(&Default::default()).await.unwrap().keys.len() };
    let dir = cluster.dir().to_path_buf();
    let dangling = dir.join("dangling.key");
    std::os::unix::fs::symlink(dir.join("nowhere/else"), &dangling).unwrap();
    let existing = dir.join("existing.key");
    std::fs::write(&existing, "keep me\n").unwrap();
    let missing_dir = dir.join("no-such-dir/new.key");

    let rotated = admin.create_key(&new_key("to-rotate")).await.unwrap().value.key.id;
    let before = count().await;
    for (path, says) in
        [(&dangling, "symbolic link"), (&existing, "already exists"), (&missing_dir, "No such file or directory")]
    {
        let arg = path.to_str().unwrap();
        for command in [
            vec!["apikey", "create", "--name", "to-file", "--duration", "30d", "--file", arg],
            vec!["apikey", "rotate", "--id", &rotated, "--grace", "1h", "--file", arg],
        ] {
            let out = cluster.cli(&command);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command:?} must fail");
            assert!(stderr.contains(says), "{command:?}: {stderr}");
        }
    }
    assert_eq!(count().await, before, "no key was made");
    assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink(), "the link is left as it was");
    assert!(!dir.join("nowhere/else").exists(), "nothing was created through the link");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me\n");

    // A writable path gets the secret, owner-only; so does an export's `--out`.
    let good = dir.join("good.key");
    succeeded(
        &cluster.cli(&["apikey", "create", "--name", "to-file", "--duration", "30d", "--file", good.to_str().unwrap()]),
        "create to a new file",
    );
    assert_eq!(mode_of(&good), 0o600);
    assert!(std::fs::read_to_string(&good).unwrap().starts_with("klk_"));
    let export = dir.join("export.jsonl");
    succeeded(&cluster.cli(&["audit", "export", "--format", "jsonl", "--out", export.to_str().unwrap()]), "export");
    assert_eq!(mode_of(&export), 0o600);
}

#[tokio::test]
async fn guessing_enrollment_codes_counts_as_failed_authentication() {
    let cluster = Cluster::single().await;
    let enroll_url = format!("{}/v1/enroll", cluster.node(1).url());
    let guesser = http_from(Ipv4Addr::new(127, 0, 0, 3));
    let mut statuses = Vec::new();
    for i in 0..22 {
        // Well-formed requests with codes that were never issued (malformed ones count too).
        let body = serde_json::json!({"code": format!("kle_{i:0>49}"), "name": "guess", "expires_in": "1d"});
        statuses.push(guesser.post(&enroll_url).json(&body).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses[..20], [401; 20], "the first 20 refused codes are answered 401: {statuses:?}");
    assert_eq!(statuses[20..], [429; 2], "then the address is limited: {statuses:?}");
    // A real code from the limited address is refused as well, before it is looked at; it still
    // works from anywhere else.
    let admin = cluster.client(1);
    let created = admin
        .create_user(&wire::CreateUserRequest { name: "newcomer".into(), role: "developer".into() })
        .await
        .unwrap()
        .value;
    let body = serde_json::json!({"code": created.enrollment_code, "name": "mine", "expires_in": "1d"});
    assert_eq!(guesser.post(&enroll_url).json(&body).send().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    let own = cluster.http().post(&enroll_url).json(&body).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::CREATED, "the code works from another address");
    assert_eq!(rate_limited_count(&cluster, "auth_failures").await, 3);
}
