//! The decision for one destination: allowlist, then one resolution, then
//! the address check, then the connection to exactly that address.
//!
//! Threat model: the name is checked, then resolved once by the supervisor
//! (never by the sandbox), and the connection goes to an address from that
//! single answer that passed the address check: a DNS answer that changes
//! between a check and a connect (rebinding) cannot move the connection.
//! Pinned names (`[network.hosts]`) skip DNS but not the address check.
//! Every refusal carries what the agent needs to understand it, and the
//! exact flag or profile line that would allow it — never more (no
//! addresses of other hosts, no internal state).

use super::addr::{local_network, non_public};
use super::allowlist::{Allowlist, Grant, NoMatch, Target};
use super::socks5::Reply;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection or request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// No rule names the host.
    NotAllowed,
    /// Rules name the host for other ports.
    Port(Vec<u16>),
    /// An IP address with no IP rule.
    IpLiteral,
    /// The name resolved only to non-public addresses and the rule does not opt in.
    NonPublic {
        addr: IpAddr,
        class: &'static str,
    },
    Resolve(String),
    Connect(String),
    ConnectTimeout,
    /// Malformed request or destination.
    BadRequest(String),
    /// The Host header names another host than the target.
    HostMismatch(String),
    /// The TLS ClientHello names another host, or none.
    Sni(Option<String>),
    /// A TLS port carried something that is not TLS.
    NotTls,
    /// The ClientHello is encrypted (ECH): the server it reaches is hidden.
    EncryptedHello,
    /// A transparent connection to an address guard's DNS never handed out.
    UnknownAddress(IpAddr),
    /// The client took too long to send its request.
    SlowHead,
}

/// A refusal: destination plus reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub host: String,
    pub port: u16,
    pub why: Why,
}

impl Refusal {
    pub fn new(host: impl ToString, port: u16, why: Why) -> Refusal {
        Refusal {
            host: host.to_string(),
            port,
            why,
        }
    }

    /// One line for events and the 403 body.
    pub fn reason(&self) -> String {
        let h = &self.host;
        match &self.why {
            Why::NotAllowed => format!("{h} is not in the network allowlist"),
            Why::Port(ports) => {
                let p: Vec<String> = ports.iter().map(u16::to_string).collect();
                format!(
                    "{h} is allowed on port {} only, not {}",
                    p.join(", "),
                    self.port
                )
            }
            Why::IpLiteral => format!(
                "{h} is an IP address; only host names are allowed unless a rule names the address"
            ),
            Why::NonPublic { addr, class } => {
                format!(
                    "{h} resolves to {addr}, a {class} address, and the rule does not allow private addresses"
                )
            }
            Why::Resolve(e) => format!("{h} could not be resolved: {e}"),
            Why::Connect(e) => format!("connecting to {h} failed: {e}"),
            Why::ConnectTimeout => format!("connecting to {h} timed out"),
            Why::BadRequest(e) => format!("bad request: {e}"),
            Why::HostMismatch(header) => {
                format!("the Host header ({header}) does not match the request target ({h})")
            }
            Why::Sni(Some(sni)) => {
                format!("the TLS server name ({sni}) is not the allowed host ({h})")
            }
            Why::Sni(None) => format!(
                "the TLS ClientHello names no server (SNI), so it cannot be checked against {h}"
            ),
            Why::NotTls => format!("port {} of {h} only carries TLS through guard", self.port),
            Why::EncryptedHello => format!(
                "the TLS ClientHello is encrypted (ECH), so the site it reaches behind {h} cannot \
                 be checked; turn ECH off in the client (Chromium: \
                 --disable-features=EncryptedClientHello)"
            ),
            Why::UnknownAddress(a) => {
                format!("{a} is not an address guard's DNS handed out (connect by host name)")
            }
            Why::SlowHead => "the request head did not arrive in time".to_string(),
        }
    }

    /// Is this a policy decision (403) rather than a failure (4xx/5xx)?
    fn is_policy(&self) -> bool {
        matches!(
            self.why,
            Why::NotAllowed
                | Why::Port(_)
                | Why::IpLiteral
                | Why::NonPublic { .. }
                | Why::HostMismatch(_)
                | Why::Sni(_)
                | Why::NotTls
                | Why::EncryptedHello
                | Why::UnknownAddress(_)
        )
    }

    /// How the user would allow it, if they can.
    pub fn fix(&self) -> Option<String> {
        let spec = |default_ok: bool| {
            if default_ok && (self.port == 443 || self.port == 80) {
                self.host.clone()
            } else {
                format!("{}:{}", self.host, self.port)
            }
        };
        match &self.why {
            Why::NotAllowed | Why::IpLiteral => {
                let s = spec(true);
                Some(format!(
                    "To allow it, run guard with:    --allow-host {s}\n\
                     or add to the profile:          [network] allow = [\"{s}\"]"
                ))
            }
            Why::Port(_) => {
                let s = spec(false);
                Some(format!(
                    "To allow it, run guard with:    --allow-host {s}\n\
                     or add to the profile:          [network] allow = [\"{s}\"]"
                ))
            }
            Why::NonPublic { .. } => {
                let s = spec(true);
                Some(format!(
                    "To allow it (only if {} is meant to reach a private network), add to the profile:\n  \
                     [network] allow = [{{ host = \"{s}\", private = true }}]",
                    self.host
                ))
            }
            _ => None,
        }
    }

    /// Status line for an HTTP refusal.
    pub fn status(&self) -> (u16, &'static str) {
        match &self.why {
            _ if self.is_policy() => (403, "Forbidden"),
            Why::BadRequest(_) => (400, "Bad Request"),
            Why::SlowHead => (408, "Request Timeout"),
            Why::ConnectTimeout => (504, "Gateway Timeout"),
            _ => (502, "Bad Gateway"),
        }
    }

    pub fn socks_reply(&self) -> Reply {
        match &self.why {
            _ if self.is_policy() => Reply::NotAllowed,
            Why::Resolve(_) => Reply::HostUnreachable,
            Why::ConnectTimeout => Reply::TtlExpired,
            Why::Connect(e) if e.contains("refused") => Reply::ConnectionRefused,
            Why::Connect(e) if e.contains("unreachable") => Reply::NetworkUnreachable,
            _ => Reply::GeneralFailure,
        }
    }

    /// A complete HTTP response explaining the refusal.
    pub fn http_response(&self, keep_alive: bool) -> Vec<u8> {
        let (code, text) = self.status();
        let mut body = format!(
            "guard refused the connection to {}:{}\nReason: {}.\n",
            self.host,
            self.port,
            self.reason()
        );
        if let Some(fix) = self.fix() {
            body.push_str(&fix);
            body.push('\n');
        }
        format!(
            "HTTP/1.1 {code} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
             X-Guard-Refused: {}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            self.why_tag(),
            if keep_alive { "keep-alive" } else { "close" }
        )
        .into_bytes()
    }

    /// A short machine-readable tag for events and headers.
    pub fn why_tag(&self) -> &'static str {
        match self.why {
            Why::NotAllowed => "not-allowed",
            Why::Port(_) => "port-not-allowed",
            Why::IpLiteral => "ip-literal",
            Why::NonPublic { .. } => "non-public-address",
            Why::Resolve(_) => "resolve-failed",
            Why::Connect(_) => "connect-failed",
            Why::ConnectTimeout => "connect-timeout",
            Why::BadRequest(_) => "bad-request",
            Why::HostMismatch(_) => "host-mismatch",
            Why::Sni(_) => "sni-mismatch",
            Why::NotTls => "not-tls",
            Why::EncryptedHello => "encrypted-client-hello",
            Why::UnknownAddress(_) => "unknown-address",
            Why::SlowHead => "slow-head",
        }
    }
}

/// Step 1: does the allowlist allow this destination?
pub fn check(allow: &Allowlist, target: &Target, port: u16) -> Result<Grant, Refusal> {
    allow.check(target, port).map_err(|m| {
        let why = match (m, target) {
            (NoMatch::Host, Target::Ip(_)) => Why::IpLiteral,
            (NoMatch::Host, Target::Name(_)) => Why::NotAllowed,
            (NoMatch::Port(p), _) => Why::Port(p),
        };
        Refusal::new(target, port, why)
    })
}

/// Step 2: the addresses to dial, from one resolution (or the pin), with
/// non-public addresses removed unless the grant opts in.
pub async fn resolve(
    allow: &Allowlist,
    target: &Target,
    port: u16,
    grant: &Grant,
) -> Result<Vec<SocketAddr>, Refusal> {
    let candidates: Vec<IpAddr> = match target {
        Target::Ip(ip) => vec![*ip],
        Target::Name(name) => match allow.pinned(name) {
            Some(ip) => vec![ip],
            None => {
                let found = tokio::net::lookup_host((name.as_str(), port))
                    .await
                    .map_err(|e| Refusal::new(target, port, Why::Resolve(e.to_string())))?;
                let mut ips: Vec<IpAddr> = Vec::new();
                for a in found {
                    if !ips.contains(&a.ip()) {
                        ips.push(a.ip());
                    }
                }
                tracing::info!(
                    target: crate::audit::TARGET,
                    kind = "net",
                    event = "resolve",
                    host = %name,
                    port,
                    addrs = ?ips,
                    "resolved {name}"
                );
                ips
            }
        },
    };
    let mut first_refused = None;
    let mut ok = Vec::new();
    for ip in candidates {
        if grant.private {
            ok.push(SocketAddr::new(ip, port));
            continue;
        }
        match non_public(ip).or_else(|| local_network(ip)) {
            Some(class) => {
                first_refused.get_or_insert(Why::NonPublic { addr: ip, class });
            }
            None => ok.push(SocketAddr::new(ip, port)),
        }
    }
    if ok.is_empty() {
        let why = first_refused.unwrap_or_else(|| Why::Resolve("no address".into()));
        return Err(Refusal::new(target, port, why));
    }
    Ok(ok)
}

/// Step 3: connect to the first address that answers.
pub async fn connect(
    target: &Target,
    port: u16,
    addrs: &[SocketAddr],
) -> Result<(TcpStream, SocketAddr), Refusal> {
    let mut last: Option<Why> = None;
    for a in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(a)).await {
            Ok(Ok(s)) => return Ok((s, *a)),
            Ok(Err(e)) => last = Some(Why::Connect(describe_io(&e))),
            Err(_) => last = Some(Why::ConnectTimeout),
        }
    }
    Err(Refusal::new(
        target,
        port,
        last.unwrap_or_else(|| Why::Connect("no address".into())),
    ))
}

fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => "unreachable".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::allowlist::{Rule, parse_rule};

    fn allow(rules: &[(&str, bool)], pins: &[(&str, &str)]) -> Allowlist {
        Allowlist {
            rules: rules
                .iter()
                .map(|(s, p)| {
                    let (host, port) = parse_rule(s).unwrap();
                    Rule {
                        host,
                        port,
                        private: *p,
                        origin: "t".into(),
                    }
                })
                .collect(),
            hosts: pins
                .iter()
                .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
                .collect(),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn refusal_text_names_host_reason_and_fix() {
        let r = Refusal::new("evil.example", 443, Why::NotAllowed);
        let resp = String::from_utf8(r.http_response(false)).unwrap();
        assert!(resp.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{resp}");
        assert!(resp.contains("evil.example is not in the network allowlist"));
        assert!(resp.contains("--allow-host evil.example\n"));
        assert!(resp.contains("allow = [\"evil.example\"]"));
        let r = Refusal::new("a.example", 8443, Why::Port(vec![80, 443]));
        assert!(r.fix().unwrap().contains("--allow-host a.example:8443"));
        assert_eq!(r.socks_reply(), Reply::NotAllowed);
    }

    #[test]
    fn ip_literals_need_ip_rules() {
        let a = allow(&[("a.example", false)], &[]);
        let t = Target::Ip("169.254.169.254".parse().unwrap());
        assert_eq!(check(&a, &t, 80).unwrap_err().why, Why::IpLiteral);
    }

    #[test]
    fn pinned_private_needs_opt_in() {
        let a = allow(&[("api.internal", false)], &[("api.internal", "10.1.2.3")]);
        let t = Target::Name("api.internal".into());
        let g = check(&a, &t, 443).unwrap();
        let e = rt().block_on(resolve(&a, &t, 443, &g)).unwrap_err();
        assert!(matches!(e.why, Why::NonPublic { .. }), "{e:?}");
        assert!(e.fix().unwrap().contains("private = true"));

        let a = allow(&[("api.internal", true)], &[("api.internal", "10.1.2.3")]);
        let g = check(&a, &t, 443).unwrap();
        let addrs = rt().block_on(resolve(&a, &t, 443, &g)).unwrap();
        assert_eq!(addrs, ["10.1.2.3:443".parse().unwrap()]);
    }
}
