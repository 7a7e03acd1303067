//! Network namespaces for partitions: each node in its own namespace, joined to a bridge in
//! the root namespace by a veth pair, so the harness (in the root namespace) reaches every
//! node while the nodes' links to one another can be cut.
//!
//! A cut of node X is a `blackhole` route to each peer inside X's namespace and one to X
//! inside each peer's: both directions drop, so X neither hears its peers nor answers them, and
//! the harness still talks to X. Only iproute2 is needed (no iptables). Everything is named
//! after the harness's pid (`klc<pid>…`), so runs side by side do not collide, and a run finds
//! and removes what an earlier run that died left behind.

use std::process::Command;

use anyhow::{bail, Context};

/// Whether namespaces can be made here: root on Linux with a working `ip netns`.
pub fn available() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("not Linux".into());
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
    if uid.as_deref() != Some("0") {
        return Err("not root".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("`ip netns list` failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Err(format!("cannot run `ip`: {e}")),
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("run ip")?;
    if !out.status.success() {
        bail!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn ip_output(args: &[&str]) -> String {
    Command::new("ip").args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// The namespaces, veths and bridge of one run. Dropping it removes them all.
#[derive(Debug)]
pub struct Net {
    prefix: String,
    /// The third octet of the run's `10.77.x.0/24`.
    octet: u8,
    nodes: u64,
    cut: Vec<u64>,
}

impl Net {
    /// Removes what earlier runs whose process is gone left behind.
    pub fn remove_stale() {
        let alive = |pid: &str| std::path::Path::new(&format!("/proc/{pid}")).exists();
        for line in ip_output(&["netns", "list"]).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if let Some(pid) = name.strip_prefix("klc").and_then(|rest| rest.split('n').next()) {
                if !alive(pid) {
                    // The nodes of a harness that died outlive it: stop them first.
                    for node in ip_output(&["netns", "pids", name]).split_whitespace() {
                        let _ = Command::new("kill").args(["-KILL", node]).status();
                    }
                    let _ = ip(&["netns", "delete", name]);
                }
            }
        }
        for line in ip_output(&["-o", "link", "show"]).lines() {
            let name = line.split(':').nth(1).map(str::trim).unwrap_or("");
            let name = name.split('@').next().unwrap_or("");
            if let Some(pid) = name.strip_prefix("klc").and_then(|rest| rest.strip_suffix("br")) {
                if !alive(pid) {
                    let _ = ip(&["link", "delete", name]);
                }
            }
        }
    }

    /// Makes `nodes` namespaces on one bridge; the harness gets `10.77.x.1`.
    pub fn create(nodes: u64) -> anyhow::Result<Net> {
        Net::remove_stale();
        let pid = std::process::id();
        let prefix = format!("klc{pid}");
        let used = ip_output(&["-o", "addr", "show"]);
        let octet = (0..200u32)
            .map(|i| ((pid + i) % 200 + 20) as u8)
            .find(|o| !used.contains(&format!("10.77.{o}.")))
            .context("no free 10.77.x.0/24 subnet")?;
        let mut net = Net { prefix, octet, nodes: 0, cut: Vec::new() };
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.77.{octet}.1/24"), "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for id in 1..=nodes {
            let ns = net.namespace(id);
            let veth = format!("{}v{id}", net.prefix);
            ip(&["netns", "add", &ns])?;
            net.nodes = id;
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", net.node_ip(id)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// The run's subnet, e.g. `10.77.42.0/24`.
    pub fn subnet(&self) -> String {
        format!("10.77.{}.0/24", self.octet)
    }

    pub fn namespace(&self, id: u64) -> String {
        format!("{}n{id}", self.prefix)
    }

    pub fn node_ip(&self, id: u64) -> String {
        format!("10.77.{}.{}", self.octet, 10 + id)
    }

    /// Cuts node `id` off from every other node (not from the harness).
    pub fn cut(&mut self, id: u64) -> anyhow::Result<()> {
        self.routes("add", id)?;
        self.cut.push(id);
        Ok(())
    }

    /// Undoes [`Net::cut`].
    pub fn heal(&mut self, id: u64) -> anyhow::Result<()> {
        self.routes("delete", id)?;
        self.cut.retain(|c| *c != id);
        Ok(())
    }

    /// Heals every cut node.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        for id in self.cut.clone() {
            self.heal(id)?;
        }
        Ok(())
    }

    fn routes(&self, verb: &str, id: u64) -> anyhow::Result<()> {
        for peer in (1..=self.nodes).filter(|p| *p != id) {
            let to_peer = format!("{}/32", self.node_ip(peer));
            ip(&["-n", &self.namespace(id), "route", verb, "blackhole", &to_peer])?;
            let to_node = format!("{}/32", self.node_ip(id));
            ip(&["-n", &self.namespace(peer), "route", verb, "blackhole", &to_node])?;
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and so the pair.
        for id in 1..=self.nodes {
            let _ = ip(&["netns", "delete", &self.namespace(id)]);
        }
        let _ = ip(&["link", "delete", &self.bridge()]);
    }
}
