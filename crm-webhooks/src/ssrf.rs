//! The SSRF guard: webhook URLs must not reach the server's own network.
//!
//! Checked at every attempt, on the addresses the request actually
//! connects to: the HTTP client resolves names through [`GuardedResolver`],
//! which drops every forbidden address (so a name that resolves to a public
//! address when the endpoint is saved and to 127.0.0.1 later — DNS
//! rebinding — is refused at the attempt), and URLs with an IP literal are
//! checked before the request ([`check_url`]). URL parsing follows the
//! WHATWG rules, so numeric host forms (`2130706433`, `0x7f.1`, `0177.0.0.1`)
//! become the IPv4 address they mean before the check. Redirects are never
//! followed and no proxy is used.
//!
//! Refused: loopback, private (RFC 1918), shared address space (CGNAT,
//! 100.64.0.0/10), link-local (169.254.0.0/16: cloud metadata), unspecified,
//! broadcast, multicast, reserved, benchmarking and documentation ranges,
//! IPv6 unique-local, link-local, site-local, multicast, documentation,
//! discard and IETF protocol ranges, and the IPv4-mapped, IPv4-compatible,
//! NAT64 and 6to4 forms of forbidden IPv4 addresses. An explicit allow-list
//! ([`AddressPolicy::allow`]) opens chosen networks, for development and tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crm_core::{Error, Result};

/// A network: an address and a prefix length (`127.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `addr/prefix` or a bare address (a /32 or /128).
    /// [`Error::Validation`] on `network` when malformed.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::validation("network", format!("`{text}` is not an address or a CIDR network"));
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().map_err(|_| bad())?, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (text.trim().parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(u128::from(u32::from(n)), u128::from(u32::from(a)), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), self.prefix, 128),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix.min(bits));
    (a >> shift) == (b >> shift)
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Which addresses webhooks may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<Network>,
}

impl AddressPolicy {
    /// The default: every forbidden range refused.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Opens `network` even when it is in a forbidden range (development,
    /// tests, a receiver on the private network on purpose).
    pub fn allow(mut self, network: Network) -> Self {
        self.allowed.push(network);
        self
    }

    /// Opens each network of a comma-separated list (`127.0.0.0/8,::1`).
    pub fn allow_list(mut self, list: &str) -> Result<Self> {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            self.allowed.push(Network::parse(item)?);
        }
        Ok(self)
    }

    /// The networks opened by the allow-list.
    pub fn allowed(&self) -> &[Network] {
        &self.allowed
    }

    /// `None` when `ip` may be reached; else why not.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allowed.iter().any(|n| n.contains(ip)) {
            return None;
        }
        forbidden(ip)
    }
}

/// Why `ip` is never a webhook destination by default, or `None`.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let n = u32::from(ip);
    let within = |net: [u8; 4], prefix: u32| {
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        n & mask == u32::from(Ipv4Addr::from(net)) & mask
    };
    let table: &[([u8; 4], u32, &'static str)] = &[
        ([0, 0, 0, 0], 8, "an unspecified (\"this network\") address"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([100, 64, 0, 0], 10, "a shared (CGNAT) address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([169, 254, 0, 0], 16, "a link-local address (cloud metadata)"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 0, 0, 0], 24, "an IETF protocol address"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 88, 99, 0], 24, "a 6to4 relay address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([240, 0, 0, 0], 4, "a reserved or broadcast address"),
    ];
    table.iter().find(|(net, prefix, _)| within(*net, *prefix)).map(|(_, _, why)| *why)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: usize| Ipv4Addr::new((s[hi] >> 8) as u8, s[hi] as u8, (s[hi + 1] >> 8) as u8, s[hi + 1] as u8);
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated): the IPv4 rules.
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return forbidden_v4(embedded(6)).or(if s[5] == 0 { Some("an IPv4-compatible address") } else { None });
    }
    // NAT64 64:ff9b::/96 and 6to4 2002::/16 carry an IPv4 address too.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(6));
    }
    if s[0] == 0x2002 {
        return forbidden_v4(embedded(1));
    }
    let first = s[0];
    if first & 0xfe00 == 0xfc00 {
        return Some("a unique-local address");
    }
    if first & 0xffc0 == 0xfe80 {
        return Some("a link-local address");
    }
    if first & 0xffc0 == 0xfec0 {
        return Some("a site-local address");
    }
    if first & 0xff00 == 0xff00 {
        return Some("a multicast address");
    }
    if first == 0x2001 && s[1] == 0x0db8 {
        return Some("a documentation address");
    }
    if first == 0x2001 && s[1] < 0x0200 {
        return Some("an IETF protocol address (Teredo, ORCHID, …)");
    }
    if s[..4] == [0x0100, 0, 0, 0] {
        return Some("a discard address");
    }
    None
}

/// Parses an endpoint URL (WHATWG rules: numeric IPv4 forms normalised) and
/// refuses non-http(s) schemes, credentials in the URL, and IP-literal hosts
/// the policy refuses. Names are checked when they resolve, at each attempt.
pub fn check_url(url: &str, policy: &AddressPolicy) -> Result<url::Url> {
    let parsed = url::Url::parse(url).map_err(|e| Error::validation("url", format!("is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::validation("url", "must use http or https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::validation("url", "must not carry credentials (use a custom header)"));
    }
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(Error::validation("url", "has no host")),
    };
    if let Some(ip) = ip
        && let Some(why) = policy.refusal(ip)
    {
        return Err(Error::validation("url", format!("points to {why} ({ip}), which webhooks may not reach")));
    }
    Ok(parsed)
}

/// A DNS resolver for the webhook client that only hands out addresses the
/// policy allows: the request can only connect to those.
///
/// Names are looked up with the system resolver, or with the one given to
/// [`GuardedResolver::with_lookup`] (a custom DNS client, or a test that
/// rebinds a name between attempts); the policy applies either way.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    lookup: Option<Arc<dyn reqwest::dns::Resolve>>,
}

impl std::fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("policy", &self.policy)
            .field("lookup", &if self.lookup.is_some() { "custom" } else { "system" })
            .finish()
    }
}

impl GuardedResolver {
    /// A resolver enforcing `policy` over the system resolver.
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        Self { policy, lookup: None }
    }

    /// A resolver enforcing `policy` over the addresses `lookup` answers.
    pub fn with_lookup(policy: Arc<AddressPolicy>, lookup: Arc<dyn reqwest::dns::Resolve>) -> Self {
        Self { policy, lookup: Some(lookup) }
    }

    /// Resolves `host` and keeps the allowed addresses; an error naming the
    /// reason when none is left.
    pub async fn resolve_allowed(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        let all: Vec<SocketAddr> = match &self.lookup {
            None => tokio::net::lookup_host((host, 0)).await?.collect(),
            Some(lookup) => {
                let name: reqwest::dns::Name = host.parse().map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host} is not a host name"))
                })?;
                lookup.resolve(name).await.map_err(std::io::Error::other)?.collect()
            }
        };
        let mut why = None;
        let kept: Vec<SocketAddr> = all
            .into_iter()
            .filter(|a| match self.policy.refusal(a.ip()) {
                None => true,
                Some(w) => {
                    why = Some(w);
                    false
                }
            })
            .collect();
        if kept.is_empty() {
            let reason = why.unwrap_or("no address");
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{host} resolves to {reason}, which webhooks may not reach"),
            ));
        }
        Ok(kept)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let me = self.clone();
        Box::pin(async move {
            let addrs = me.resolve_allowed(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let n = Network::parse("127.0.0.0/8").expect("cidr");
        assert!(n.contains("127.1.2.3".parse().expect("ip")));
        assert!(n.contains("::ffff:127.0.0.1".parse().expect("ip")), "mapped counts as IPv4");
        assert!(!n.contains("128.0.0.1".parse().expect("ip")));
        assert!(Network::parse("::1").expect("bare").contains("::1".parse().expect("ip")));
        assert!(Network::parse("0.0.0.0/0").expect("all").contains("8.8.8.8".parse().expect("ip")));
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "1.2.3.4/x"] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
    }
}
