//! Where a webhook may send: an account admin chooses the URL, so without it a webhook could
//! make the leader call its own cluster, a cloud metadata service or anything else on the
//! node's private network (SSRF). URLs are checked when a webhook is made and again at every
//! attempt, after DNS resolution: the dispatcher's client resolves through [`GuardedResolver`],
//! so the address connected to is the address checked.

use std::error::Error;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use super::WebhookPolicy;

/// How long a create waits for the URL's host to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the dispatcher may connect to `ip`.
pub fn ip_allowed(ip: IpAddr, allow_private_networks: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() || v4.is_link_local() || v4.is_multicast() || v4.is_broadcast() {
                return false;
            }
            allow_private_networks || !(v4.is_loopback() || v4.is_private() || is_shared_v4(v4) || v4.octets()[0] == 0)
        }
        IpAddr::V6(v6) => {
            let segment = v6.segments()[0];
            let link_local = segment & 0xffc0 == 0xfe80;
            if v6.is_unspecified() || v6.is_multicast() || link_local {
                return false;
            }
            let unique_local = segment & 0xfe00 == 0xfc00;
            allow_private_networks || !(v6.is_loopback() || unique_local || v6 == Ipv6Addr::LOCALHOST)
        }
    }
}

/// 100.64.0.0/10, carrier-grade NAT: private in all but name.
fn is_shared_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 100 && (64..128).contains(&b)
}

/// Checks a URL without resolving it: its form, scheme, a literal address, and that it names
/// no member of the cluster. Answers the parsed URL.
pub(super) fn check_url(url: &str, policy: &WebhookPolicy, members: &[String]) -> Result<Url, String> {
    keyledger_model::webhook::check_url_form(url)?;
    let parsed = Url::parse(url).map_err(|e| format!("`url` is not a valid URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err("`url` must use https (this cluster does not allow plain http webhooks)".into()),
        _ => return Err("`url` must use https".into()),
    }
    let host = parsed.host_str().ok_or("`url` must name a host")?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if !ip_allowed(ip, policy.allow_private_networks) {
            return Err(format!("`url` names the address {ip}, which webhooks may not send to"));
        }
    }
    let target = format!("{host}:{port}");
    let is_member = members.iter().any(|m| m.eq_ignore_ascii_case(&target))
        || (host.eq_ignore_ascii_case("localhost")
            && members.iter().any(|m| m.ends_with(&format!(":{port}")) && m.starts_with("127.")));
    if is_member || parsed.path().starts_with("/internal") {
        return Err("`url` names this cluster's own internal routes".into());
    }
    Ok(parsed)
}

/// Resolves the URL's host now and checks every address it gives.
pub(super) async fn check_resolved(url: &Url, policy: &WebhookPolicy) -> Result<(), String> {
    let Some(host) = url.host_str() else { return Err("`url` must name a host".into()) };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port))).await {
        Ok(Ok(addrs)) => addrs.collect::<Vec<SocketAddr>>(),
        Ok(Err(_)) | Err(_) => return Err(format!("`url`'s host {bare:?} does not resolve")),
    };
    match addrs.iter().find(|a| !ip_allowed(a.ip(), policy.allow_private_networks)) {
        Some(refused) => Err(format!("`url`'s host resolves to {}, which webhooks may not send to", refused.ip())),
        None if addrs.is_empty() => Err(format!("`url`'s host {bare:?} does not resolve")),
        None => Ok(()),
    }
}

/// The dispatcher's DNS: answers a host's addresses only if every one is allowed.
pub(super) struct GuardedResolver {
    pub(super) allow_private_networks: bool,
}

/// The error a refused address gives, found again in the request's error chain.
#[derive(Debug)]
pub(super) struct AddressRefused;

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the host resolves to an address webhooks may not send to")
    }
}

impl Error for AddressRefused {}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private_networks;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|a| !ip_allowed(a.ip(), allow)) {
                return Err(Box::new(AddressRefused) as Box<dyn Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// True when `error`'s chain holds an [`AddressRefused`].
pub(super) fn was_refused(error: &(dyn Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<AddressRefused>() {
            return true;
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(ip: &str, private: bool) -> bool {
        ip_allowed(ip.parse().unwrap(), private)
    }

    #[test]
    fn addresses() {
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(allowed(public, false));
        }
        for private in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4", "100.64.0.1", "::1", "fd00::1"] {
            assert!(!allowed(private, false), "{private}");
            assert!(allowed(private, true), "{private}");
        }
        for never in ["169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "fe80::1", "ff02::1"] {
            assert!(!allowed(never, false), "{never}");
            assert!(!allowed(never, true), "{never}");
        }
        assert!(!allowed("::ffff:127.0.0.1", false));
        assert!(!allowed("::ffff:169.254.169.254", true));
    }

    #[test]
    fn urls() {
        let strict = WebhookPolicy::default();
        let open = WebhookPolicy { allow_http: true, allow_private_networks: true, ..strict };
        assert!(check_url("https://example.com/hook", &strict, &[]).is_ok());
        assert!(check_url("http://example.com/hook", &strict, &[]).is_err());
        assert!(check_url("ftp://example.com/hook", &open, &[]).is_err());
        assert!(check_url("https://127.0.0.1/hook", &strict, &[]).is_err());
        assert!(check_url("https://[::1]/hook", &strict, &[]).is_err());
        assert!(check_url("http://127.0.0.1:9000/hook", &open, &[]).is_ok());
        assert!(check_url("https://169.254.169.254/latest", &open, &[]).is_err());
        let members = ["127.0.0.1:7001".to_string()];
        assert!(check_url("http://127.0.0.1:7001/v1/keys", &open, &members).is_err());
        assert!(check_url("http://localhost:7001/x", &open, &members).is_err());
        assert!(check_url("http://127.0.0.1:9000/internal/raft", &open, &members).is_err());
    }
}
