//! Connection handlers: CONNECT tunnels, SOCKS5, and transparent
//! connections to fake addresses (plain HTTP requests are in `forward`).
//!
//! Threat model: every byte that reaches a socket outside was sent by the
//! sandbox, which is hostile. A destination is decided before any byte goes
//! out; for plain HTTP every request on a kept-alive connection is decided
//! on its own (a second or pipelined request cannot ride on the first one's
//! approval), and its Host header must name the same host as its target;
//! for TLS the ClientHello must name the allowed host before the tunnel
//! carries anything else. Both hold on every port, not only 443 and 80:
//! what a client opens with decides which checks apply (fronts serve TLS
//! and HTTP on many ports). Once a tunnel is approved, bytes are relayed
//! without further inspection: the TLS session is end to end. Heads are
//! bounded and must arrive within [`HEAD_TIMEOUT`].

use super::allowlist::{Allowlist, Target, parse_authority, parse_target};
use super::decide::{self, Refusal, Why};
use super::dns::FakeAddrs;
use super::event::{Blocked, Event};
use super::forward::{Fixed, Upstream, refuse_http, serve_http};
use super::http;
use super::relay::{Conn, Gate, Head, Stall, relay, relay_gated, write_all};
use super::{sni, socks5};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// Time allowed for a request head, a SOCKS handshake or a ClientHello.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by all handlers.
pub struct Shared {
    pub allow: Allowlist,
    pub fake: FakeAddrs,
    pub blocked: Blocked,
    /// Set when guard is exiting: relays and idle connections end, so every
    /// open connection still logs its event.
    pub stop: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// Completes once guard is exiting.
    pub async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// A fake address names what guard's DNS answered it for: a program
    /// that resolved the name itself and then asks a proxy for the address
    /// still means the name.
    pub fn unfake(&self, t: Target) -> Target {
        if let Target::Ip(IpAddr::V4(a)) = t
            && let Some(name) = self.fake.name_of(a)
        {
            return Target::Name(name);
        }
        t
    }
}

/// `CONNECT host:port` on the HTTP proxy port.
pub async fn connect_tunnel(sh: &Shared, c: Conn, req: http::RequestHead) {
    let (target, port) = match parse_authority(&req.target, None) {
        Ok((t, p)) => (sh.unfake(t), p),
        Err(e) => {
            let r = Refusal::new(
                &req.target,
                0,
                Why::BadRequest(format!("invalid CONNECT target: {e}")),
            );
            refuse_http(sh, &c, &Event::new("connect", &req.target, 0), &r, false).await;
            return;
        }
    };
    let ev = Event::new("connect", &target, port);
    if let Some(h) = req.header("host") {
        // Or the proxy itself: `tunnel-agent` (npm's `request`,
        // `prebuild-install`) names the proxy there. Nothing of the header
        // goes upstream; the target is what is checked.
        let proxy = parse_authority(h, None).is_ok_and(|(t, p)| {
            p == super::HTTP_PROXY_PORT
                && match &t {
                    Target::Ip(ip) => ip.is_loopback(),
                    Target::Name(n) => n == "localhost",
                }
        });
        let agrees =
            proxy || parse_authority(h, Some(port)).is_ok_and(|(t, p)| t == target && p == port);
        if !agrees || req.header_count("host") > 1 {
            let r = Refusal::new(&target, port, Why::HostMismatch(h.to_string()));
            refuse_http(sh, &c, &ev, &r, false).await;
            return;
        }
    }
    let up = match open(sh, &target, port).await {
        Ok(x) => x,
        Err(r) => {
            refuse_http(sh, &c, &ev, &r, false).await;
            return;
        }
    };
    if write_all(&c.stream, b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    tunnel(sh, c, target, port, up, ev).await;
}

/// Decide, resolve once, connect.
async fn open(
    sh: &Shared,
    target: &Target,
    port: u16,
) -> Result<(Conn, SocketAddr, String), Refusal> {
    let grant = decide::check(&sh.allow, target, port)?;
    let addrs = decide::resolve(&sh.allow, target, port, &grant).await?;
    let (s, addr) = decide::connect(target, port, &addrs).await?;
    Ok((Conn::new(s), addr, grant.rule))
}

/// An approved tunnel: check what it carries by port, then relay.
async fn tunnel(
    sh: &Shared,
    mut c: Conn,
    target: Target,
    port: u16,
    up: (Conn, SocketAddr, String),
    ev: Event,
) {
    let (mut u, addr, rule) = up;
    match port {
        443 => {
            if let Err(r) = check_tls(&mut c, &target, port).await {
                if let Some(r) = r {
                    let _ = write_all(&c.stream, &sni::ALERT_ACCESS_DENIED).await;
                    ev.refused(&sh.blocked, &r, 0, 0);
                }
                return;
            }
            let (sent, received) = relay(&mut c, &mut u, sh.stopped()).await;
            ev.allowed(&sh.blocked, &rule, addr, sent, received);
        }
        80 => serve_http_on(sh, c, u, target, port, rule, addr, "http-in-tunnel").await,
        _ => relay_checked(sh, c, u, target, port, ev, rule, addr, "http-in-tunnel").await,
    }
}

/// Relay an approved connection on a port other than 80 and 443. Whatever
/// the port, what a client opens with is checked if it is TLS or HTTP:
/// fronts serve both on many ports (CDNs answer HTTPS on 8443, 2053 … and
/// HTTP on 8080, 8880 …; hosted databases route by SNI on their own port),
/// and a hello or a Host header naming another site behind the same front
/// would reach that site. A TLS hello must name the allowed host; HTTP is
/// served request by request as on port 80 (`via`: the event's label for
/// it). Anything else is relayed as it is (SSH, database protocols).
#[allow(clippy::too_many_arguments)]
async fn relay_checked(
    sh: &Shared,
    mut c: Conn,
    mut u: Conn,
    target: Target,
    port: u16,
    ev: Event,
    rule: String,
    addr: SocketAddr,
    via: &'static str,
) {
    let gate = |b: &[u8], stall: Option<Stall>| first_bytes_gate(&target, port, b, stall);
    let (sent, received, stopped) = relay_gated(
        &mut c,
        &mut u,
        sh.stopped(),
        http::MAX_HEAD.max(sni::MAX_HELLO + 64),
        HEAD_TIMEOUT,
        gate,
    )
    .await;
    match stopped {
        Some(Stop::Refused(r)) => {
            // An answer in the client's protocol: HTTP for a request line
            // that did not complete, else a TLS alert.
            let answer = match request_line(c.buffered()) {
                Line::Maybe | Line::Http => r.http_response(false),
                Line::No => sni::ALERT_ACCESS_DENIED.to_vec(),
            };
            let _ = write_all(&c.stream, &answer).await;
            ev.refused(&sh.blocked, &r, sent, received);
        }
        Some(Stop::Http) => serve_http_on(sh, c, u, target, port, rule, addr, via).await,
        None => ev.allowed(&sh.blocked, &rule, addr, sent, received),
    }
}

/// Serve a connection request by request (the HTTP checks), on the
/// upstream connection `u` already open to `target`.
#[allow(clippy::too_many_arguments)]
async fn serve_http_on(
    sh: &Shared,
    c: Conn,
    u: Conn,
    target: Target,
    port: u16,
    rule: String,
    addr: SocketAddr,
    via: &'static str,
) {
    let fixed = Fixed {
        target: target.clone(),
        port,
    };
    let upstream = Upstream {
        target,
        port,
        rule,
        addrs: vec![addr],
        addr,
        conn: Some(u),
    };
    // Boxed: serve_http may itself lead here (CONNECT on the proxy port).
    Box::pin(serve_http(sh, c, Some(fixed), Some(upstream), via)).await;
}

/// Why [`first_bytes_gate`] stopped the relay.
enum Stop {
    Refused(Refusal),
    /// The client speaks HTTP: serve it request by request.
    Http,
}

/// PostgreSQL's SSLRequest (length 8, code 80877103): the server answers
/// one byte, and on `S` the client's TLS handshake follows.
const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The verdict on the first bytes of a tunnel on a port that may carry
/// anything: a TLS handshake record (0x16, then major version 3) is held
/// to the rules of port 443, also after PostgreSQL's SSLRequest (hosted
/// PostgreSQL routes by the SNI that follows); an HTTP request line hands
/// the connection to the HTTP checks (which refuse all but HTTP/1.x, as
/// on port 80); anything else opens the
/// relay. (Protocols that start TLS after an exchange of commands,
/// STARTTLS, are not followed.)
fn first_bytes_gate(target: &Target, port: u16, b: &[u8], stall: Option<Stall>) -> Gate<Stop> {
    let refuse = |why| Gate::Refuse(Stop::Refused(Refusal::new(target, port, why)));
    let n = b.len().min(PG_SSL_REQUEST.len());
    if b[..n] == PG_SSL_REQUEST[..n] {
        return match (n == PG_SSL_REQUEST.len(), stall) {
            (true, _) => Gate::Pass(n),
            (false, None) => Gate::More,
            // Part of it, then a pause: opening now would let a hello
            // through unchecked once the pause is over.
            (false, Some(Stall::TimedOut)) => refuse(Why::SlowHead),
            (false, Some(_)) => Gate::Open,
        };
    }
    match request_line(b) {
        Line::Http => return Gate::Refuse(Stop::Http),
        // Still possibly a request line: wait, and never open on a stall
        // (a pause or a long line would let the request through unchecked).
        Line::Maybe => {
            return match stall {
                None => Gate::More,
                Some(Stall::Closed) => Gate::Open,
                Some(Stall::TimedOut) => refuse(Why::SlowHead),
                Some(Stall::Full) => refuse(Why::BadRequest("request line too long".into())),
            };
        }
        Line::No => {}
    }
    if b.first().is_some_and(|x| *x != 0x16) || b.get(1).is_some_and(|x| *x != 3) {
        return Gate::Open;
    }
    // From here on it is TLS to us: every error refuses (a record with
    // another version later is not "not TLS", and must not open the relay).
    match sni::parse_client_hello(b) {
        Ok(name) => match hello_names(target, name) {
            Ok(()) => Gate::Open,
            Err(why) => refuse(why),
        },
        Err(sni::SniError::Incomplete) => match stall {
            None => Gate::More,
            Some(Stall::TimedOut) => refuse(Why::SlowHead),
            Some(_) => refuse(Why::BadRequest("ClientHello too large or truncated".into())),
        },
        Err(sni::SniError::Encrypted) => refuse(Why::EncryptedHello),
        Err(e) => refuse(Why::BadRequest(format!("invalid TLS ClientHello: {e:?}"))),
    }
}

enum Line {
    /// An HTTP request line (ended by CRLF or not).
    Http,
    /// A prefix of one.
    Maybe,
    No,
}

/// Do the bytes begin an HTTP request line (`METHOD SP target SP
/// HTTP/x`)? Decided as early as the bytes allow, so that other
/// protocols are not held back: a byte that cannot be there means "no".
fn request_line(b: &[u8]) -> Line {
    // Any version: HTTP/2 with prior knowledge (`PRI * HTTP/2.0`) names
    // its host where guard does not read it, and is refused as on port 80.
    const VERSION: &[u8] = b"HTTP/";
    let line = match b.windows(2).position(|w| w == b"\r\n") {
        Some(i) => &b[..i],
        None => b,
    };
    let complete = line.len() < b.len();
    let method_end = line.iter().position(|&x| x == b' ').unwrap_or(line.len());
    let method = &line[..method_end];
    if !method.iter().all(|&x| http::is_tchar(x)) || (method.is_empty() && method_end < line.len())
    {
        return Line::No;
    }
    if method_end == line.len() {
        return if complete { Line::No } else { Line::Maybe };
    }
    let rest = &line[method_end + 1..];
    let target_end = rest.iter().position(|&x| x == b' ').unwrap_or(rest.len());
    if !rest[..target_end].iter().all(u8::is_ascii_graphic) {
        return Line::No;
    }
    if target_end == rest.len() {
        return if complete { Line::No } else { Line::Maybe };
    }
    let version = &rest[target_end + 1..];
    let n = version.len().min(VERSION.len());
    if version[..n] != VERSION[..n] {
        return Line::No;
    }
    if version.len() >= VERSION.len() {
        return Line::Http;
    }
    if complete { Line::No } else { Line::Maybe }
}

/// Does a ClientHello's server name fit the destination?
fn hello_names(target: &Target, name: Option<String>) -> Result<(), Why> {
    match target {
        Target::Name(n) if name.as_deref() == Some(n.as_str()) => Ok(()),
        Target::Name(_) => Err(Why::Sni(name)),
        // An IP rule is about the address; there is no name to compare.
        Target::Ip(_) => Ok(()),
    }
}

/// Wait for the ClientHello (left in the buffer, to be forwarded) and check
/// its server name. `Err(None)`: the client went away.
async fn check_tls(c: &mut Conn, target: &Target, port: u16) -> Result<(), Option<Refusal>> {
    let read = c
        .read_head(
            sni::MAX_HELLO + 64,
            HEAD_TIMEOUT,
            |b| match sni::parse_client_hello(b) {
                Ok(name) => Ok(Some((name, 0))),
                Err(sni::SniError::Incomplete) => Ok(None),
                Err(e) => Err(e),
            },
        )
        .await;
    let refuse = |why| Err(Some(Refusal::new(target, port, why)));
    match read {
        Ok(Head::Done(name)) => match hello_names(target, name) {
            Ok(()) => Ok(()),
            Err(why) => refuse(why),
        },
        Ok(Head::Bad(sni::SniError::NotTls)) => refuse(Why::NotTls),
        Ok(Head::Bad(sni::SniError::Encrypted)) => refuse(Why::EncryptedHello),
        Ok(Head::Bad(e)) => refuse(Why::BadRequest(format!("invalid TLS ClientHello: {e:?}"))),
        Ok(Head::TimedOut) => refuse(Why::SlowHead),
        Ok(Head::Truncated) => refuse(Why::BadRequest("ClientHello too large or truncated".into())),
        _ => Err(None),
    }
}

fn incomplete<T>(e: socks5::SocksError) -> Result<Option<T>, socks5::SocksError> {
    match e {
        socks5::SocksError::Incomplete => Ok(None),
        e => Err(e),
    }
}

/// The SOCKS5 port.
pub async fn socks(sh: &Shared, s: TcpStream) {
    let mut c = Conn::new(s);
    let methods = match c
        .read_head(512, HEAD_TIMEOUT, |b| {
            socks5::parse_greeting(b).map(Some).or_else(incomplete)
        })
        .await
    {
        Ok(Head::Done(m)) => m,
        _ => return,
    };
    if !methods.contains(&socks5::NO_AUTH) {
        let _ = write_all(&c.stream, &[socks5::VERSION, socks5::NO_ACCEPTABLE]).await;
        return;
    }
    if write_all(&c.stream, &[socks5::VERSION, socks5::NO_AUTH])
        .await
        .is_err()
    {
        return;
    }
    let req = match c
        .read_head(512, HEAD_TIMEOUT, |b| {
            socks5::parse_request(b).map(Some).or_else(incomplete)
        })
        .await
    {
        Ok(Head::Done(r)) => r,
        Ok(Head::Bad(socks5::SocksError::Malformed("address type"))) => {
            let _ = write_all(
                &c.stream,
                &socks5::reply(socks5::Reply::AddressTypeNotSupported),
            )
            .await;
            return;
        }
        Ok(Head::Bad(socks5::SocksError::Malformed(_))) => {
            let _ = write_all(&c.stream, &socks5::reply(socks5::Reply::GeneralFailure)).await;
            return;
        }
        _ => return,
    };
    let target = match &req.dest {
        socks5::Dest::Domain(d) => parse_target(d),
        socks5::Dest::V4(a) => Ok(sh.unfake(Target::Ip(IpAddr::V4(*a)))),
        socks5::Dest::V6(a) => Ok(Target::Ip(IpAddr::V6(*a))),
    };
    let host = match &req.dest {
        socks5::Dest::Domain(d) => d.clone(),
        _ => target
            .as_ref()
            .map_or_else(|_| "-".into(), |t| t.to_string()),
    };
    let ev = Event::new("socks5", &host, req.port);
    let fail = |r: Refusal| {
        let reply = socks5::reply(r.socks_reply());
        (r, reply)
    };
    let outcome = if req.cmd != socks5::CMD_CONNECT {
        Err((
            Refusal::new(
                &host,
                req.port,
                Why::BadRequest("only CONNECT is supported".into()),
            ),
            socks5::reply(socks5::Reply::CommandNotSupported),
        ))
    } else {
        match target {
            Err(e) => Err(fail(Refusal::new(&host, req.port, Why::BadRequest(e)))),
            Ok(t) => open(sh, &t, req.port).await.map(|up| (t, up)).map_err(fail),
        }
    };
    match outcome {
        Err((r, reply)) => {
            let _ = write_all(&c.stream, &reply).await;
            ev.refused(&sh.blocked, &r, 0, 0);
        }
        Ok((t, up)) => {
            if write_all(&c.stream, &socks5::reply(socks5::Reply::Succeeded))
                .await
                .is_ok()
            {
                tunnel(sh, c, t, req.port, up, ev).await;
            }
        }
    }
}

/// A connection to a fake address on a transparent port.
pub async fn transparent(sh: &Shared, s: TcpStream, port: u16) {
    let local = s.local_addr().ok();
    let mut c = Conn::new(s);
    let name = match local.map(|a| a.ip()) {
        Some(IpAddr::V4(v4)) => sh.fake.name_of(v4),
        _ => None,
    };
    let Some(name) = name else {
        let ip = local.map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let ev = Event::new("transparent", ip, port);
        refuse_transparent(
            sh,
            &c,
            &ev,
            port,
            Refusal::new(ip, port, Why::UnknownAddress(ip)),
        )
        .await;
        return;
    };
    let target = Target::Name(name);
    let ev = Event::new("transparent", &target, port);
    if let Err(r) = decide::check(&sh.allow, &target, port) {
        refuse_transparent(sh, &c, &ev, port, r).await;
        return;
    }
    match port {
        // The destination is checked before anything is dialed.
        443 => {
            if let Err(r) = check_tls(&mut c, &target, port).await {
                if let Some(r) = r {
                    let _ = write_all(&c.stream, &sni::ALERT_ACCESS_DENIED).await;
                    ev.refused(&sh.blocked, &r, 0, 0);
                }
                return;
            }
        }
        80 => {
            let fixed = Fixed { target, port };
            return serve_http(sh, c, Some(fixed), None, "transparent").await;
        }
        _ => {}
    }
    match open(sh, &target, port).await {
        // Port 443's hello was checked above; on any other port a hello
        // is checked when it comes (after the dial: the server may speak
        // first).
        Ok((u, addr, rule)) if port != 443 => {
            relay_checked(sh, c, u, target, port, ev, rule, addr, "transparent").await;
        }
        Ok((mut u, addr, rule)) => {
            let (sent, received) = relay(&mut c, &mut u, sh.stopped()).await;
            ev.allowed(&sh.blocked, &rule, addr, sent, received);
        }
        Err(r) => {
            if port == 443 {
                let _ = write_all(&c.stream, &sni::ALERT_ACCESS_DENIED).await;
            }
            ev.refused(&sh.blocked, &r, 0, 0);
        }
    }
}

async fn refuse_transparent(sh: &Shared, c: &Conn, ev: &Event, port: u16, r: Refusal) {
    if port == 80 {
        let _ = write_all(&c.stream, &r.http_response(false)).await;
    }
    ev.refused(&sh.blocked, &r, 0, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(l: Line) -> &'static str {
        match l {
            Line::Http => "http",
            Line::Maybe => "maybe",
            Line::No => "no",
        }
    }

    #[test]
    fn request_lines_are_told_as_early_as_the_bytes_allow() {
        for (b, want) in [
            (&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], "http"),
            (b"GET / HTTP/1.", "http"),
            (b"", "maybe"),
            (b"G", "maybe"),
            (b"GET /x", "maybe"),
            (b"GET /x HT", "maybe"),
            (b"SSH-2.0-OpenSSH_9.6 Ubuntu\r\n", "no"),
            (b"PING\r\n", "no"),
            (b"EHLO host\r\n", "no"),
            (b"set k 0 0 5\r\n", "no"),
            (b"GET / FTP/1.0", "no"),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "http"),
            (b" GET / HTTP/1.1", "no"),
            (b"\x16\x03\x01", "no"),
            (b"GET /\x00", "no"),
        ] {
            assert_eq!(is(request_line(b)), want, "{b:?}");
        }
    }

    #[test]
    fn the_gate_holds_tls_and_http_to_the_target() {
        let t = Target::Name("a.example.com".into());
        let verdict = |b: &[u8], stall| match first_bytes_gate(&t, 8443, b, stall) {
            Gate::More => "more".to_string(),
            Gate::Open => "open".to_string(),
            Gate::Pass(n) => format!("pass {n}"),
            Gate::Refuse(Stop::Http) => "http".to_string(),
            Gate::Refuse(Stop::Refused(r)) => r.why_tag().to_string(),
        };
        let ok = sni::client_hello(Some("a.example.com"));
        let evil = sni::client_hello(Some("evil.example.com"));
        assert_eq!(verdict(&ok, None), "open");
        assert_eq!(verdict(&evil, None), "sni-mismatch");
        assert_eq!(verdict(&evil[..3], None), "more");
        assert_eq!(verdict(&evil[..3], Some(Stall::TimedOut)), "slow-head");
        assert_eq!(verdict(&PG_SSL_REQUEST, None), "pass 8");
        assert_eq!(verdict(&PG_SSL_REQUEST[..3], None), "more");
        assert_eq!(
            verdict(&PG_SSL_REQUEST[..3], Some(Stall::TimedOut)),
            "slow-head"
        );
        assert_eq!(verdict(b"GET / HTTP/1.1\r\n", None), "http");
        assert_eq!(verdict(b"GET /", Some(Stall::TimedOut)), "slow-head");
        assert_eq!(verdict(b"SSH-2.0-x\r\n", None), "open");
        assert_eq!(verdict(b"\x00\x00\x00\x10\x00\x03", None), "open");
    }
}
