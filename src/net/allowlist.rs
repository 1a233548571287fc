//! The network allowlist: which hosts and ports the sandbox may reach.
//!
//! Threat model: everything the sandbox names as a destination (a CONNECT
//! authority, an absolute URI, a SOCKS domain, a Host header, a TLS SNI) is
//! attacker-controlled text. A lenient parser is a bypass: `evil.com@allowed`,
//! `allowed.evil.com`, `2130706433` (an IPv4 address in disguise), a trailing
//! dot, mixed case, or a percent-escape must never match a rule it should not.
//! So names are normalized once (lowercase, one trailing dot dropped) and
//! validated strictly (LDH labels only), anything numeric-looking is either a
//! canonical IP literal or refused, and matching is exact or on a label
//! boundary (`*.example.com` matches `a.example.com`, never `example.com` nor
//! `badexample.com`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ports a rule without an explicit port allows.
pub const DEFAULT_PORTS: [u16; 2] = [443, 80];

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPattern {
    /// One name, normalized.
    Exact(String),
    /// `*.suffix`: any name with at least one more label (stored without `*.`).
    Suffix(String),
    /// One address.
    Ip(IpAddr),
    /// An address range.
    Cidr(IpAddr, u8),
}

impl HostPattern {
    pub fn is_ip(&self) -> bool {
        matches!(self, HostPattern::Ip(_) | HostPattern::Cidr(..))
    }

    fn matches_name(&self, name: &str) -> bool {
        match self {
            HostPattern::Exact(n) => n == name,
            HostPattern::Suffix(s) => {
                name.len() > s.len() + 1
                    && name.ends_with(s.as_str())
                    && name.as_bytes()[name.len() - s.len() - 1] == b'.'
            }
            _ => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        match *self {
            HostPattern::Ip(a) => a == ip,
            HostPattern::Cidr(net, bits) => in_cidr(ip, net, bits),
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(n) => f.write_str(n),
            HostPattern::Suffix(s) => write!(f, "*.{s}"),
            HostPattern::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            HostPattern::Ip(a) => write!(f, "{a}"),
            HostPattern::Cidr(IpAddr::V6(a), b) => write!(f, "[{a}/{b}]"),
            HostPattern::Cidr(a, b) => write!(f, "{a}/{b}"),
        }
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub host: HostPattern,
    /// `None`: the default ports (443 and 80).
    pub port: Option<u16>,
    /// Addresses that are not public (loopback, private, link-local, ...)
    /// are allowed for this rule. Off unless the profile says so.
    pub private: bool,
    /// Where the rule came from, for `explain` and events.
    pub origin: String,
}

impl Rule {
    pub fn ports(&self) -> Vec<u16> {
        match self.port {
            Some(p) => vec![p],
            None => DEFAULT_PORTS.to_vec(),
        }
    }

    fn port_ok(&self, port: u16) -> bool {
        self.ports().contains(&port)
    }

    fn matches(&self, target: &Target) -> bool {
        match target {
            Target::Name(n) => self.host.matches_name(n),
            Target::Ip(ip) => self.host.matches_ip(*ip),
        }
    }

    /// The rule as the user would write it.
    pub fn spec(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

/// A destination named by the sandbox, after validation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name(n) => f.write_str(n),
            Target::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Target::Ip(a) => write!(f, "{a}"),
        }
    }
}

/// Why the allowlist said no (before any address is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMatch {
    /// No rule names this host.
    Host,
    /// Rules name the host, but for other ports.
    Port(Vec<u16>),
}

/// The granted part of a match: which rule and whether it opts in to
/// non-public addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub rule: String,
    pub private: bool,
}

/// The resolved allowlist: rules plus static host pins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    pub rules: Vec<Rule>,
    /// `[network.hosts]`: names answered with a fixed address (like curl
    /// --resolve). The name still needs a rule.
    pub hosts: BTreeMap<String, IpAddr>,
}

impl Allowlist {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Does a rule allow `target` on `port`? Among matching rules, any one
    /// with `private = true` grants the opt-in.
    pub fn check(&self, target: &Target, port: u16) -> Result<Grant, NoMatch> {
        let mut other_ports = Vec::new();
        let mut grant: Option<Grant> = None;
        for r in self.rules.iter().filter(|r| r.matches(target)) {
            if r.port_ok(port) {
                match &mut grant {
                    Some(g) => g.private |= r.private,
                    None => {
                        grant = Some(Grant {
                            rule: r.spec(),
                            private: r.private,
                        })
                    }
                }
            } else {
                other_ports.extend(r.ports());
            }
        }
        match grant {
            Some(g) => Ok(g),
            None if other_ports.is_empty() => Err(NoMatch::Host),
            None => {
                other_ports.sort_unstable();
                other_ports.dedup();
                Err(NoMatch::Port(other_ports))
            }
        }
    }

    /// Does any rule name this host, on any port? (The DNS server answers
    /// those names.)
    pub fn names(&self, name: &str) -> bool {
        let t = Target::Name(name.to_string());
        self.rules.iter().any(|r| r.matches(&t))
    }

    pub fn pinned(&self, name: &str) -> Option<IpAddr> {
        self.hosts.get(name).copied()
    }

    /// Ports that transparent listeners serve: those of name rules (IP
    /// destinations cannot be reached without the proxy: the sandbox has no
    /// route but loopback).
    pub fn transparent_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .rules
            .iter()
            .filter(|r| !r.host.is_ip())
            .flat_map(|r| r.ports())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

/// Parse one rule as written in a profile or after `--allow-host`:
/// `name`, `*.suffix`, an IP, a CIDR range, each with an optional `:port`
/// (IPv6 in brackets when a port follows: `[::1]:443`).
pub fn parse_rule(s: &str) -> Result<(HostPattern, Option<u16>), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty host".into());
    }
    // A URL pasted whole would otherwise read as a host and a port "//...".
    if let Some((_, rest)) = s.split_once("://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        return Err(format!(
            "{s:?} is a URL: give only the host (and port), as in {host:?}"
        ));
    }
    let (host, port) = split_host_port(s)?;
    let port = match port {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    if let Some((addr, bits)) = host.split_once('/') {
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!("{s:?}: a host cannot hold a path, and only an IP address takes a /prefix length (10.0.0.0/8)")
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("invalid prefix length in {host:?} (0 to {max})"))?;
        return Ok((HostPattern::Cidr(ip, bits), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((HostPattern::Ip(ip), port));
    }
    if let Some(suffix) = host.strip_prefix("*.") {
        let suffix = normalize_name(suffix).map_err(|e| format!("{s:?}: {e}"))?;
        if !suffix.contains('.') {
            return Err(format!(
                "{s:?} is too broad: a wildcard needs at least two labels after `*.` (e.g. *.example.com)"
            ));
        }
        return Ok((HostPattern::Suffix(suffix), port));
    }
    if host.contains('*') {
        return Err(format!(
            "{s:?}: `*` is only allowed as a whole first label (`*.example.com`)"
        ));
    }
    let name = normalize_name(host).map_err(|e| format!("{s:?}: {e}"))?;
    Ok((HostPattern::Exact(name), port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    // Digits only: `parse` also takes `+443`, which the Host header sent
    // upstream would carry as written.
    Some(p)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid port {p:?} (1 to 65535)"))
}

/// `host:port`, `[v6]:port`, `[v6]`, bare `v6` (no port), `host`.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: missing `]`"))?;
        return match after {
            "" => Ok((inside, None)),
            a => match a.strip_prefix(':') {
                Some(p) => Ok((inside, Some(p))),
                None => Err(format!("{s:?}: unexpected text after `]`")),
            },
        };
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (h, p) = s.split_once(':').unwrap_or((s, ""));
            Ok((h, Some(p)))
        }
        // A bare IPv6 address (or range) without a port.
        _ => Ok((s, None)),
    }
}

/// Normalize and validate a DNS name: lowercase, at most one trailing dot
/// removed, labels of letters, digits, `-` and `_` (1 to 63 bytes, no `-`
/// at either end), 253 bytes at most, and a last label that is not numeric
/// (that would be an IPv4 address in an unusual spelling).
pub fn normalize_name(raw: &str) -> Result<String, String> {
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if name.is_empty() {
        return Err("empty host name".into());
    }
    if name.len() > 253 {
        return Err("host name longer than 253 bytes".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label in host name".into());
        }
        if label.len() > 63 {
            return Err("label longer than 63 bytes".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("host names may contain only letters, digits, `-`, `_` and `.`".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with `-`".into());
        }
    }
    let last = name.rsplit('.').next().unwrap_or("");
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        return Err("looks like an IPv4 address in a non-standard form".into());
    }
    Ok(name)
}

/// Parse a host as named by the sandbox (no port): a canonical IP literal
/// (IPv6 in brackets), or a valid name.
pub fn parse_target(host: &str) -> Result<Target, String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| "missing `]`".to_string())?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|a| Target::Ip(IpAddr::V6(a)))
            .map_err(|_| format!("{inner:?} is not an IPv6 address"));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Ok(Target::Ip(IpAddr::V4(v4)));
    }
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Ok(Target::Ip(IpAddr::V6(v6)));
    }
    normalize_name(host).map(Target::Name)
}

/// Parse an authority `host[:port]`; `default_port` applies when no port is
/// given (`None`: the port is required, as in CONNECT).
pub fn parse_authority(s: &str, default_port: Option<u16>) -> Result<(Target, u16), String> {
    if s.is_empty() {
        return Err("empty host".into());
    }
    if s.contains(['@', '/', '\\', '%', ' ', '?', '#']) {
        return Err(format!("{s:?} is not a plain host[:port]"));
    }
    let (host, port) = if s.starts_with('[') {
        match s.rfind("]:") {
            Some(i) => (&s[..=i], Some(&s[i + 2..])),
            None => (s, None),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(format!("{s:?}: IPv6 addresses need brackets")),
            None => (s, None),
        }
    };
    let port = match (port, default_port) {
        (Some(p), _) => parse_port(p)?,
        (None, Some(d)) => d,
        (None, None) => return Err(format!("{s:?} has no port")),
    };
    Ok((parse_target(host)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[(&str, bool)]) -> Allowlist {
        Allowlist {
            rules: rules
                .iter()
                .map(|(s, private)| {
                    let (host, port) = parse_rule(s).unwrap();
                    Rule {
                        host,
                        port,
                        private: *private,
                        origin: "t".into(),
                    }
                })
                .collect(),
            hosts: BTreeMap::new(),
        }
    }

    fn name(s: &str) -> Target {
        Target::Name(s.into())
    }

    #[test]
    fn parses_rules() {
        assert_eq!(
            parse_rule("API.Example.com.").unwrap(),
            (HostPattern::Exact("api.example.com".into()), None)
        );
        assert_eq!(
            parse_rule("*.example.com:8443").unwrap(),
            (HostPattern::Suffix("example.com".into()), Some(8443))
        );
        assert_eq!(
            parse_rule("[::1]:443").unwrap(),
            (HostPattern::Ip("::1".parse().unwrap()), Some(443))
        );
        assert_eq!(
            parse_rule("fd00::/8").unwrap(),
            (HostPattern::Cidr("fd00::".parse().unwrap(), 8), None)
        );
        assert_eq!(
            parse_rule("10.0.0.0/8").unwrap(),
            (HostPattern::Cidr("10.0.0.0".parse().unwrap(), 8), None)
        );
        for bad in [
            "",
            "*",
            "*.com",
            "a.*.com",
            "ex ample.com",
            "a..b",
            "host:0",
            "host:70000",
            "host:x",
            "-a.com",
            "2130706433",
            "0x7f.1",
            "[::1",
            "10.0.0.0/33",
            "a@b.com",
            "a/b",
        ] {
            assert!(parse_rule(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn wildcard_matches_on_label_boundary_only() {
        let l = list(&[("*.example.com", false)]);
        assert!(l.check(&name("a.example.com"), 443).is_ok());
        assert!(l.check(&name("a.b.example.com"), 80).is_ok());
        assert_eq!(l.check(&name("example.com"), 443), Err(NoMatch::Host));
        assert_eq!(l.check(&name("badexample.com"), 443), Err(NoMatch::Host));
        assert_eq!(
            l.check(&name("example.com.evil.net"), 443),
            Err(NoMatch::Host)
        );
    }

    #[test]
    fn ports_default_to_443_and_80() {
        let l = list(&[("a.com", false), ("b.com:22", false)]);
        assert!(l.check(&name("a.com"), 443).is_ok());
        assert!(l.check(&name("a.com"), 80).is_ok());
        assert_eq!(
            l.check(&name("a.com"), 22),
            Err(NoMatch::Port(vec![80, 443]))
        );
        assert!(l.check(&name("b.com"), 22).is_ok());
        assert_eq!(l.check(&name("b.com"), 443), Err(NoMatch::Port(vec![22])));
        assert_eq!(l.transparent_ports(), [22, 80, 443]);
    }

    #[test]
    fn ip_rules_match_ips_only() {
        let l = list(&[("10.1.0.0/16", true), ("203.0.113.7", false)]);
        let g = l
            .check(&Target::Ip("10.1.2.3".parse().unwrap()), 443)
            .unwrap();
        assert!(g.private);
        assert!(
            l.check(&Target::Ip("10.2.0.1".parse().unwrap()), 443)
                .is_err()
        );
        assert!(
            l.check(&Target::Ip("203.0.113.7".parse().unwrap()), 80)
                .is_ok()
        );
        assert!(l.check(&name("10.1.2.3.nip.io"), 443).is_err());
        assert!(l.transparent_ports().is_empty());
    }

    #[test]
    fn private_opt_in_is_per_rule() {
        let l = list(&[("a.com", false), ("a.com:8080", true)]);
        assert!(!l.check(&name("a.com"), 443).unwrap().private);
        assert!(l.check(&name("a.com"), 8080).unwrap().private);
    }

    #[test]
    fn authorities() {
        assert_eq!(
            parse_authority("Example.COM:443", None).unwrap(),
            (name("example.com"), 443)
        );
        assert_eq!(
            parse_authority("example.com", Some(80)).unwrap(),
            (name("example.com"), 80)
        );
        assert_eq!(
            parse_authority("[::1]:8080", None).unwrap(),
            (Target::Ip("::1".parse().unwrap()), 8080)
        );
        assert_eq!(
            parse_authority("127.0.0.1", Some(80)).unwrap(),
            (Target::Ip("127.0.0.1".parse().unwrap()), 80)
        );
        for bad in [
            "example.com",
            "a.com@b.com:443",
            "a.com:443/x",
            "::1:443",
            "a%2ecom:80",
            "127.1:80",
            "0x7f000001:80",
            "2130706433:80",
            "a.com:",
            ":80",
            "a.com:99999",
            "a.com:+443",
            "a.com:-1",
        ] {
            assert!(parse_authority(bad, None).is_err(), "{bad:?} accepted");
        }
    }

    proptest::proptest! {
        #[test]
        fn normalized_names_are_stable(s in "[a-zA-Z0-9._-]{1,80}") {
            if let Ok(n) = normalize_name(&s) {
                proptest::prop_assert_eq!(normalize_name(&n), Ok(n.clone()));
                proptest::prop_assert!(!n.ends_with('.'));
                proptest::prop_assert_eq!(n.to_ascii_lowercase(), n);
            }
        }

        #[test]
        fn authority_parser_never_panics(s in "\\PC{0,64}") {
            let _ = parse_authority(&s, Some(80));
            let _ = parse_rule(&s);
        }

        #[test]
        fn suffix_never_matches_without_a_dot_boundary(prefix in "[a-z]{1,10}") {
            let l = list(&[("*.example.com", false)]);
            let glued = format!("{prefix}example.com");
            proptest::prop_assert!(l.check(&name(&glued), 443).is_err());
            let dotted = format!("{prefix}.example.com");
            proptest::prop_assert!(l.check(&name(&dotted), 443).is_ok());
        }
    }
}
