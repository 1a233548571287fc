//! Egress: bytes leave the sandbox only to allowlisted hosts, for every
//! program (see DESIGN.md, "Egress").
//!
//! Threat model: the sandbox's network namespace has only `lo`, so nothing
//! inside can reach a socket outside on its own. The only way out is the
//! set of listeners pid 1 creates inside that namespace and hands to the
//! supervisor, which serves them from the host's namespace:
//!
//! ```text
//! 127.0.0.1:3128  HTTP proxy (CONNECT, absolute-URI)      ─┐
//! 127.0.0.1:1080  SOCKS5 (CONNECT)                          ├─ supervisor decides,
//! 0.0.0.0:443/80/…  transparent: 127.77.x.y ↔ name (DNS)  ─┘  resolves once, dials
//! 127.0.0.1:53    DNS (UDP+TCP): allowlisted names only, never upstream
//! ```
//!
//! Every connection is decided in the supervisor (`decide`): the name must
//! match a rule ([`allowlist`]); the supervisor resolves it itself, once,
//! refuses non-public addresses unless the rule opts in ([`addr`]), and
//! connects to the address it resolved (no second lookup, no rebinding).
//! TLS tunnels must carry a ClientHello whose SNI is the allowed name
//! ([`sni`]); plain HTTP requests are checked one by one, Host header and
//! target alike ([`http`]). Refusals are answered in a way the agent can read
//! (HTTP 403 with the fix, SOCKS/CONNECT codes, a TLS alert) and logged as
//! one event each.
//!
//! Pure parts: `allowlist`, `addr`, `http`, `socks5`, `sni`, `dns` and this
//! file. Side effects: `serve` (runtime), `proxy` (connections, tunnels),
//! `forward` (plain HTTP request by request), `relay`
//! (byte copying), `sys` (splice).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod addr;
pub mod allowlist;
mod decide;
pub mod dns;
mod event;
mod forward;
pub mod http;
mod proxy;
mod relay;
mod serve;
pub mod sni;
pub mod socks5;
mod sys;

pub use allowlist::Allowlist;
pub use serve::{Egress, start};

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4};

pub const HTTP_PROXY_PORT: u16 = 3128;
pub const SOCKS_PORT: u16 = 1080;
pub const DNS_PORT: u16 = 53;

/// The network part of the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPolicy {
    /// `false` with `--no-network`: no listeners at all, only loopback.
    pub enabled: bool,
    pub allow: Allowlist,
}

/// A listener pid 1 creates inside the sandbox's network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerKind {
    HttpProxy,
    Socks5,
    DnsUdp,
    DnsTcp,
    /// Accepts connections to fake addresses on this port.
    Transparent(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerSpec {
    pub kind: ListenerKind,
    pub addr: SocketAddrV4,
}

impl ListenerSpec {
    pub fn describe(&self) -> String {
        let what = match self.kind {
            ListenerKind::HttpProxy => "http proxy",
            ListenerKind::Socks5 => "socks5",
            ListenerKind::DnsUdp => "dns/udp",
            ListenerKind::DnsTcp => "dns/tcp",
            ListenerKind::Transparent(_) => "transparent",
        };
        format!("{what} {}", self.addr)
    }
}

/// The listeners for a policy, in creation order. Ports the proxies or DNS
/// use themselves cannot also be transparent ports (those destinations stay
/// reachable through the proxy).
pub fn listeners(policy: &NetPolicy) -> Vec<ListenerSpec> {
    if !policy.enabled {
        return Vec::new();
    }
    let lo = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let mut out = vec![
        ListenerSpec {
            kind: ListenerKind::DnsUdp,
            addr: lo(DNS_PORT),
        },
        ListenerSpec {
            kind: ListenerKind::DnsTcp,
            addr: lo(DNS_PORT),
        },
        ListenerSpec {
            kind: ListenerKind::HttpProxy,
            addr: lo(HTTP_PROXY_PORT),
        },
        ListenerSpec {
            kind: ListenerKind::Socks5,
            addr: lo(SOCKS_PORT),
        },
    ];
    for port in policy.allow.transparent_ports() {
        if [DNS_PORT, HTTP_PROXY_PORT, SOCKS_PORT].contains(&port) {
            continue;
        }
        out.push(ListenerSpec {
            kind: ListenerKind::Transparent(port),
            // Any address on lo: getsockname() on an accepted connection
            // says which fake address, i.e. which name, was dialed.
            addr: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
        });
    }
    out
}

/// Variables that point programs at the proxy. ALL_PROXY names the HTTP
/// proxy too (not SOCKS): every client that reads ALL_PROXY understands an
/// http:// proxy, while socks5h:// support varies; SOCKS5 stays available
/// on 127.0.0.1:1080 for programs configured to use it.
pub fn proxy_env(policy: &NetPolicy) -> Vec<(String, String)> {
    proxy_env_on(policy, HTTP_PROXY_PORT)
}

/// [`proxy_env`] for an HTTP proxy on loopback port `http_port` (the
/// `landlock` level's proxy listens on a port chosen at start).
pub fn proxy_env_on(policy: &NetPolicy, http_port: u16) -> Vec<(String, String)> {
    if !policy.enabled {
        return Vec::new();
    }
    let http = format!("http://127.0.0.1:{http_port}");
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    let mut env = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        env.push((name.to_string(), http.clone()));
        env.push((name.to_ascii_lowercase(), http.clone()));
    }
    env.push(("NO_PROXY".into(), no_proxy.clone()));
    env.push(("no_proxy".into(), no_proxy));
    // Node ≥ 22.21 / 24.5 honours the variables above only with this.
    env.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    env
}

/// /etc/resolv.conf inside: guard's DNS server only.
pub fn resolv_conf() -> String {
    "# Generated by guard: names resolve through guard's DNS server, which\n\
     # answers allowlisted names only and never queries upstream.\n\
     nameserver 127.0.0.1\n\
     options attempts:1 timeout:2\n"
        .to_string()
}

/// /etc/hosts inside: loopback names only.
pub fn hosts_file(hostname: &str) -> String {
    format!(
        "# Generated by guard.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         127.0.1.1\t{hostname}\n"
    )
}

/// The network section of `guard explain`.
pub fn describe(policy: &NetPolicy) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if !policy.enabled {
        s.push_str("network:  none (--no-network: only loopback inside, no proxy, no DNS)\n");
        return s;
    }
    if policy.allow.is_empty() {
        s.push_str(
            "network:  no host allowed (guard's proxy answers every request with 403 and the fix; \
             DNS answers no name)\n",
        );
    } else {
        s.push_str("network:  only these destinations, through guard's proxy:\n");
    }
    for r in &policy.allow.rules {
        let ports: Vec<String> = r.ports().iter().map(u16::to_string).collect();
        let _ = writeln!(
            s,
            "  allow {:<32} ports {}{}  [{}]",
            r.host.to_string(),
            ports.join(","),
            if r.private {
                ", private addresses allowed"
            } else {
                ""
            },
            r.origin
        );
    }
    for (name, ip) in &policy.allow.hosts {
        let _ = writeln!(s, "  pin   {name} -> {ip}");
    }
    let _ = writeln!(
        s,
        "  refused unless a rule says private = true: loopback, private, link-local \
         (169.254.169.254), CGNAT, multicast, unspecified"
    );
    let _ = writeln!(
        s,
        "  checks: TLS SNI = allowed name (port 443); Host header = target (port 80, every request)"
    );
    let specs: Vec<String> = listeners(policy)
        .iter()
        .map(ListenerSpec::describe)
        .collect();
    let _ = writeln!(s, "  listeners inside: {}", specs.join(", "));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use allowlist::{Rule, parse_rule};

    fn policy(rules: &[&str]) -> NetPolicy {
        NetPolicy {
            enabled: true,
            allow: Allowlist {
                rules: rules
                    .iter()
                    .map(|s| {
                        let (host, port) = parse_rule(s).unwrap();
                        Rule {
                            host,
                            port,
                            private: false,
                            origin: "t".into(),
                        }
                    })
                    .collect(),
                hosts: Default::default(),
            },
        }
    }

    #[test]
    fn listener_plan() {
        let l: Vec<String> = listeners(&policy(&[
            "a.com",
            "b.com:22",
            "c.com:3128",
            "10.0.0.0/8:5432",
        ]))
        .iter()
        .map(ListenerSpec::describe)
        .collect();
        assert_eq!(
            l,
            [
                "dns/udp 127.0.0.1:53",
                "dns/tcp 127.0.0.1:53",
                "http proxy 127.0.0.1:3128",
                "socks5 127.0.0.1:1080",
                "transparent 0.0.0.0:22",
                "transparent 0.0.0.0:80",
                "transparent 0.0.0.0:443",
            ]
        );
        let mut off = policy(&["a.com"]);
        off.enabled = false;
        assert!(listeners(&off).is_empty());
        assert!(proxy_env(&off).is_empty());
    }

    #[test]
    fn env_points_at_the_proxy() {
        let env = proxy_env(&policy(&[]));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTPS_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("http_proxy"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("ALL_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("no_proxy"), Some("localhost,127.0.0.1,::1"));
        assert_eq!(get("NODE_USE_ENV_PROXY"), Some("1"));
    }
}
