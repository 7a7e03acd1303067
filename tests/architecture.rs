//! Architecture invariants that `cargo metadata` can check (docs/ARCHITECTURE.md lists them):
//! dependencies between our crates point one way, down the layers; `model` does no IO and knows
//! nothing of async runtimes, storage, Raft or HTTP, even through another crate; HTTP frameworks
//! are used only where the map says.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Our crates by layer: a crate may depend only on crates of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("keyledger-model", 0),
    ("keyledger-wire", 0),
    ("keyledger-ledger", 1),
    ("keyledger-audit", 1),
    ("keyledger-client", 1),
    ("keyledger-cluster", 2),
    // the tower/axum middleware: a user of `client`, for other services
    ("keyledger-axum", 2),
    ("keyledger-api", 3),
    ("keyledger-console", 3),
    ("keyledger", 4),
    ("keyledger-chaos", 4),
    ("keyledger-loadgen", 4),
];

/// Crates `model` must not reach, directly or through anything it depends on.
const NOT_IN_MODEL: &[&str] =
    &["tokio", "sled", "openraft", "axum", "hyper", "reqwest", "tower", "mio", "keyledger-ledger", "tracing"];

struct Metadata {
    /// Package id → name.
    names: BTreeMap<String, String>,
    /// Package id → ids of its normal (not dev, not build) dependencies.
    normal: BTreeMap<String, Vec<String>>,
    /// Name of each of our packages → names of our packages it depends on (normal deps).
    ours: BTreeMap<String, BTreeSet<String>>,
}

fn metadata() -> Metadata {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ])
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let json: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let names: BTreeMap<String, String> = json["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_owned(), p["name"].as_str().unwrap().to_owned()))
        .collect();
    let mut normal = BTreeMap::new();
    for node in json["resolve"]["nodes"].as_array().expect("resolve nodes") {
        let deps = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| d["dep_kinds"].as_array().expect("dep_kinds").iter().any(|k| k["kind"].is_null()))
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        normal.insert(node["id"].as_str().unwrap().to_owned(), deps);
    }
    let members: BTreeSet<&str> =
        json["workspace_members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    let ours = members
        .iter()
        .map(|id| {
            let deps = normal[*id].iter().map(|d| names[d].clone()).filter(|n| n.starts_with("keyledger")).collect();
            (names[*id].clone(), deps)
        })
        .collect();
    Metadata { names, normal, ours }
}

/// Names of every package `name` reaches through normal dependencies.
fn reachable(meta: &Metadata, name: &str) -> BTreeSet<String> {
    let start = meta.names.iter().find(|(_, n)| n.as_str() == name).map(|(id, _)| id.clone()).expect("the package");
    let (mut seen, mut todo) = (BTreeSet::new(), vec![start]);
    while let Some(id) = todo.pop() {
        for dep in &meta.normal[&id] {
            if seen.insert(dep.clone()) {
                todo.push(dep.clone());
            }
        }
    }
    seen.iter().map(|id| meta.names[id].clone()).collect()
}

#[test]
fn dependencies_between_our_crates_point_down_the_layers() {
    let meta = metadata();
    let layer = |name: &str| LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l);
    for (name, deps) in &meta.ours {
        let own = layer(name).unwrap_or_else(|| panic!("{name} has no layer in LAYERS (and in docs/ARCHITECTURE.md)"));
        for dep in deps {
            let theirs = layer(dep).unwrap_or_else(|| panic!("{dep} has no layer"));
            assert!(theirs < own, "{name} (layer {own}) depends on {dep} (layer {theirs}): arrows point down only");
        }
    }
}

#[test]
fn model_reaches_no_runtime_storage_raft_or_http_crate() {
    let meta = metadata();
    let reached = reachable(&meta, "keyledger-model");
    let found: Vec<_> = NOT_IN_MODEL.iter().filter(|name| reached.contains(**name)).collect();
    assert!(found.is_empty(), "keyledger-model reaches {found:?}");
    let ours: Vec<_> = reached.iter().filter(|n| n.starts_with("keyledger")).collect();
    assert!(ours.is_empty(), "keyledger-model depends on crates of ours: {ours:?}");
}

#[test]
fn http_frameworks_stay_where_the_map_puts_them() {
    let meta = metadata();
    // The server side of HTTP: the API, the console, the peers' internal routes, and the bench's
    // bare ceiling.
    // and the middleware other services mount (`keyledger-axum`).
    let serve =
        ["keyledger-api", "keyledger-console", "keyledger-cluster", "keyledger-loadgen", "keyledger", "keyledger-axum"];
    // The client side: the typed client, calls to peers, and the tools that drive a cluster.
    let call = ["keyledger-client", "keyledger-cluster", "keyledger-chaos", "keyledger-loadgen", "keyledger"];
    for name in meta.ours.keys() {
        let direct: BTreeSet<String> = {
            let id = meta.names.iter().find(|(_, n)| *n == name).map(|(id, _)| id.clone()).unwrap();
            meta.normal[&id].iter().map(|d| meta.names[d].clone()).collect()
        };
        if direct.contains("axum") {
            assert!(serve.contains(&name.as_str()), "{name} depends on axum");
        }
        if direct.contains("reqwest") {
            assert!(call.contains(&name.as_str()), "{name} depends on reqwest");
        }
    }
}
