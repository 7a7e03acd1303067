//! `packaging/`: the release tarball `scripts/release-tarball` builds (from the binary under
//! test) and the systemd unit.

use std::path::Path;
use std::process::Command;

use crate::util::keyledger_bin;

/// The repository root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_release_tarball_holds_the_binary_completions_man_pages_and_unit_with_checksums() {
    let out_dir = tempfile::Builder::new().prefix("keyledger-release-").tempdir().unwrap();
    let output = Command::new(root().join("scripts/release-tarball"))
        .args(["--binary", keyledger_bin(), "--target", "test-target", "--out"])
        .arg(out_dir.path())
        .output()
        .expect("run scripts/release-tarball");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "release-tarball failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("keyledger-{version}-test-target");
    let tarball = out_dir.path().join(format!("{name}.tar.gz"));
    assert_eq!(stdout.lines().last(), Some(tarball.to_str().unwrap()), "the last line names the tarball");

    let listing = Command::new("tar").arg("-tzf").arg(&tarball).output().unwrap();
    assert!(listing.status.success());
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let mut expected = vec![
        "keyledger",
        "completions/keyledger.bash",
        "completions/_keyledger",
        "completions/keyledger.fish",
        "man/man1/keyledger.1",
        "man/man1/keyledger-serve.1",
        "man/man1/keyledger-apikey.1",
        "man/man1/keyledger-apikey-create.1",
        "man/man1/keyledger-apikey-delete.1",
        "systemd/keyledger.service",
        "README.md",
        "INSTALL.md",
        "SHA256SUMS",
    ];
    if root().join("packaging/keyledger.toml").exists() {
        expected.push("keyledger.toml");
    }
    for file in expected {
        assert!(listing.lines().any(|line| line == format!("{name}/{file}")), "{file} missing from:\n{listing}");
    }

    let extracted = tempfile::Builder::new().prefix("keyledger-release-x-").tempdir().unwrap();
    let untar = Command::new("tar").arg("-xzf").arg(&tarball).arg("-C").arg(extracted.path()).status().unwrap();
    assert!(untar.success());
    let dir = extracted.path().join(&name);
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let page = read("man/man1/keyledger-apikey-create.1");
    assert!(page.starts_with(".ie") || page.contains(".TH"), "not roff: {page:.200}");
    assert!(page.contains("\\-\\-name"), "the page lacks the flags: {page:.400}");
    assert!(read("man/man1/keyledger.1").contains("keyledger"));
    assert!(read("completions/keyledger.bash").contains("apikey"));
    assert!(read("completions/_keyledger").starts_with("#compdef keyledger"));
    assert!(read("completions/keyledger.fish").contains("complete -c keyledger"));
    let sums = Command::new("sha256sum").args(["--check", "--quiet", "SHA256SUMS"]).current_dir(&dir).output().unwrap();
    assert!(sums.status.success(), "SHA256SUMS does not check: {sums:?}");
    assert!(read("SHA256SUMS").lines().any(|line| line.ends_with("  keyledger")), "the binary is summed");
}

#[test]
fn the_release_script_refuses_what_it_cannot_package() {
    let out_dir = tempfile::Builder::new().prefix("keyledger-release-").tempdir().unwrap();
    let missing = out_dir.path().join("no-such-binary");
    let output = Command::new(root().join("scripts/release-tarball"))
        .arg("--binary")
        .arg(&missing)
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not an executable"), "{output:?}");
    let bogus = Command::new(root().join("scripts/release-tarball")).arg("--frobnicate").output().unwrap();
    assert!(!bogus.status.success());
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(root().join("packaging/keyledger.service")).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "User=keyledger",
        "Group=keyledger",
        "StateDirectory=keyledger",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "MemoryDenyWriteExecute=yes",
        "Restart=on-failure",
        "ExecStart=/usr/bin/keyledger serve --config /etc/keyledger/keyledger.toml",
        "KillSignal=SIGTERM",
    ] {
        assert!(has(line), "the unit lacks `{line}`");
    }
    assert!(unit.lines().any(|l| l.starts_with("LimitNOFILE=")), "the unit lacks LimitNOFILE");
    // Stopping must wait out the server's shutdown grace (5 s by default).
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(stop > 5, "TimeoutStopSec={stop} is not above the 5 s shutdown grace");

    // systemd's own check, where the machine has systemd (CI's Debian does). It insists that
    // ExecStart's binary exists, so the copy checked runs the binary under test.
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_ok_and(|o| o.status.success()) {
        let dir = tempfile::Builder::new().prefix("keyledger-unit-").tempdir().unwrap();
        let copy = dir.path().join("keyledger.service");
        std::fs::write(&copy, unit.replace("/usr/bin/keyledger", keyledger_bin())).unwrap();
        let verify = Command::new("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
        assert!(
            verify.status.success() && verify.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

#[test]
fn the_containerfile_runs_unprivileged_with_a_volume_and_a_curl_free_health_check() {
    // No container engine runs here, so the image itself is not built in the tests; this
    // checks what packaging/README.md promises of it.
    let file = std::fs::read_to_string(root().join("packaging/Containerfile")).unwrap();
    let lines: Vec<&str> = file.lines().map(str::trim).collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("FROM ")).count(), 2, "a builder and a runtime stage");
    assert!(lines.iter().any(|l| l.starts_with("FROM ") && l.contains("debian") && l.contains("slim")));
    for needed in ["USER keyledger", "VOLUME /var/lib/keyledger", "EXPOSE 7700", "STOPSIGNAL SIGTERM"] {
        assert!(lines.contains(&needed), "the Containerfile lacks `{needed}`");
    }
    let health = file.split("HEALTHCHECK").nth(1).expect("a HEALTHCHECK");
    assert!(health.contains("\"/usr/bin/keyledger\", \"health\""), "the health check runs `keyledger health`");
    // What each `install` line adds: never curl.
    let mut installs = file.split("install").skip(1).map(|rest| rest.lines().next().unwrap_or_default());
    assert!(installs.all(|packages| !packages.contains("curl")), "the image needs no curl");
    // The health check's command line is one the binary accepts.
    let parsed = Command::new(keyledger_bin()).args(["health", "--help"]).output().unwrap();
    assert!(parsed.status.success());
}
