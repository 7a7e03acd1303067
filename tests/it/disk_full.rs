//! A full disk: a node whose data dir sits on a small filesystem (a 96 MiB tmpfs) refuses
//! writes with `503` once the free space falls below its reserve, goes on verifying and
//! reading, takes writes again when space returns, and loses nothing acknowledged across a
//! SIGKILL (docs/operations.md, "Disk full").
//!
//! Mounting needs root (CI runs as root); without it the test fails and says so.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use keyledger_client::ListKeys;

use crate::util::{new_key, poll, verify_req, Cluster, CONVERGE};

const RESERVE_MIB: u64 = 40;

/// A tmpfs mounted over a directory, lazily unmounted when dropped (even while a killed
/// node's files are still being closed).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount_over(dir: &Path, size_mib: u64) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0700"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs for a data dir and needs root for it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Copies a directory tree (a stopped node's data dir), keeping modes.
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(format!("{}/.", from.display())).arg(to).status().unwrap();
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

/// Writes zeros until the filesystem of `dir` has about `leave_mib` MiB free.
fn fill(dir: &Path, leave_mib: u64) -> PathBuf {
    let stat = rustix::fs::statvfs(dir).unwrap();
    let free = stat.f_bavail * stat.f_frsize;
    let size = free.saturating_sub(leave_mib << 20);
    let path = dir.join("filler");
    let mut file = fs::File::create(&path).unwrap();
    let block = vec![0u8; 1 << 20];
    let mut written = 0;
    while written < size {
        let n = block.len().min((size - written) as usize);
        file.write_all(&block[..n]).unwrap();
        written += n as u64;
    }
    file.sync_all().unwrap();
    path
}

#[tokio::test]
async fn a_node_below_its_disk_reserve_refuses_writes_verifies_and_recovers() {
    let reserve = RESERVE_MIB.to_string();
    let mut cluster = Cluster::start_with(1, &["--min-free-disk-mib", &reserve]).await;
    let before = cluster.client(1).create_key(&new_key("before")).await.unwrap().value.secret;

    // Moved onto a 96 MiB filesystem of its own.
    cluster.terminate(1, CONVERGE);
    let data_dir = cluster.node(1).data_dir().to_owned();
    let saved = cluster.dir().join("data-dir-copy");
    fs::create_dir(&saved).unwrap();
    copy_tree(&data_dir, &saved);
    let _tmpfs = Tmpfs::mount_over(&data_dir, 96);
    copy_tree(&saved, &data_dir);
    cluster.restart(1).await;
    let client = cluster.client(1);
    let on_small_disk = client.create_key(&new_key("on-small-disk")).await.unwrap().value.secret;

    // Filled to below the reserve: writes are refused with a sentence that says why.
    let filler = fill(&data_dir, RESERVE_MIB / 2);
    // (The free space is looked at every 200 ms, so a probe or two may still be accepted.)
    poll("writes to be refused", CONVERGE, async || match client.create_key(&new_key("probe")).await {
        Err(_) => Ok(()),
        Ok(created) => Err(format!("still accepted: {}", created.value.key.id)),
    })
    .await;
    let refusal = client.create_key(&new_key("refused")).await.expect_err("a write below the reserve");
    match &refusal {
        keyledger_client::ClientError::Api { status, error } => {
            assert_eq!((*status, error.code.as_str()), (503, "unavailable"), "{refusal:?}");
            assert!(error.message.contains("below its reserve of 40 MiB"), "{refusal:?}");
        }
        other => panic!("not an API refusal: {other:?}"),
    }
    assert!(cluster.node(1).log().contains("writes are refused until space is freed"));

    // Verification, reads and readiness go on.
    for secret in [&before, &on_small_disk] {
        assert!(client.verify(&verify_req(secret, None)).await.unwrap().valid);
    }
    let names: Vec<String> =
        client.list_keys(&ListKeys::default()).await.unwrap().keys.into_iter().map(|k| k.name).collect();
    assert!(names.contains(&"on-small-disk".to_owned()) && !names.contains(&"refused".to_owned()), "{names:?}");
    let ready = cluster.http().get(format!("{}/readyz", cluster.node(1).url())).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = cluster.http().get(format!("{}/metrics", cluster.node(1).url())).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let gauge = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).map(|v| v.parse::<f64>().unwrap()).unwrap()
    };
    assert!(gauge("keyledger_disk_free_bytes") < gauge("keyledger_disk_reserve_bytes"), "{text}");

    // Space returns: writes resume, and nothing acknowledged is lost across a SIGKILL.
    fs::remove_file(filler).unwrap();
    let after = poll("writes to resume", CONVERGE, async || {
        client.create_key(&new_key("after")).await.map_err(|e| e.to_string())
    })
    .await;
    assert!(cluster.node(1).log().contains("writes resume"));
    cluster.kill(1);
    cluster.restart(1).await;
    let client = cluster.client(1);
    for secret in [&before, &on_small_disk, &after.value.secret] {
        assert!(client.verify(&verify_req(secret, None)).await.unwrap().valid);
    }
    let names: Vec<String> =
        client.list_keys(&ListKeys::default()).await.unwrap().keys.into_iter().map(|k| k.name).collect();
    assert!(!names.contains(&"refused".to_owned()), "a refused write left nothing: {names:?}");
    cluster.kill(1);
}
