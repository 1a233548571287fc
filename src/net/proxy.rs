//! Connection handlers: the HTTP proxy (CONNECT and absolute-URI requests),
//! SOCKS5, and transparent connections to fake addresses.
//!
//! Threat model: every byte that reaches a socket outside was sent by the
//! sandbox, which is hostile. A destination is decided before any byte goes
//! out; for plain HTTP every request on a kept-alive connection is decided
//! on its own (a second or pipelined request cannot ride on the first one's
//! approval), and its Host header must name the same host as its target;
//! for TLS the ClientHello must name the allowed host before the tunnel
//! carries anything else. Once a tunnel is approved, bytes are relayed
//! without further inspection: the TLS session is end to end. Heads are
//! bounded and must arrive within [`HEAD_TIMEOUT`].

use super::allowlist::{Allowlist, Target, parse_authority, parse_target};
use super::decide::{self, Refusal, Why};
use super::dns::FakeAddrs;
use super::event::{Blocked, Event};
use super::http::{self, Body, HttpError};
use super::relay::{Conn, Head, relay, write_all};
use super::{sni, socks5};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;

/// Time allowed for a request head, a SOCKS handshake or a ClientHello.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a kept-alive client connection may sit idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Time allowed for an upstream to start its response (model APIs think long).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);
/// Most trailer lines after a chunked body.
const MAX_TRAILERS: usize = 64;

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
    fn unfake(&self, t: Target) -> Target {
        if let Target::Ip(IpAddr::V4(a)) = t
            && let Some(name) = self.fake.name_of(a)
        {
            return Target::Name(name);
        }
        t
    }
}

/// An upstream connection for plain HTTP, reused while requests name the
/// same destination.
struct Upstream {
    target: Target,
    port: u16,
    rule: String,
    /// From the one resolution for this destination (reconnects reuse it).
    addrs: Vec<SocketAddr>,
    addr: SocketAddr,
    conn: Option<Conn>,
}

/// A connection whose destination is fixed (transparent port 80, or a
/// tunnel to port 80): every request's Host must name it.
struct Fixed {
    target: Target,
    port: u16,
}

async fn refuse_http(sh: &Shared, c: &Conn, ev: &Event, r: &Refusal, keep_alive: bool) {
    let _ = write_all(&c.stream, &r.http_response(keep_alive)).await;
    ev.refused(&sh.blocked, r, 0, 0);
}

/// The HTTP proxy port.
pub async fn http_proxy(sh: &Shared, s: TcpStream) {
    serve_http(sh, Conn::new(s), None, None, "http-proxy").await;
}

/// Serve HTTP requests on `c` until it closes. `fixed`: origin mode (the
/// destination is known); otherwise proxy mode (absolute URIs and CONNECT).
async fn serve_http(
    sh: &Shared,
    mut c: Conn,
    fixed: Option<Fixed>,
    mut up: Option<Upstream>,
    via: &'static str,
) {
    let mut first = true;
    loop {
        // Between requests the connection may idle; a started head must complete.
        if !first && c.buffered().is_empty() {
            tokio::select! {
                r = tokio::time::timeout(IDLE_TIMEOUT, c.fill(http::MAX_HEAD)) => match r {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                },
                _ = sh.stopped() => return,
            }
        }
        first = false;
        let req = match c
            .read_head(http::MAX_HEAD, HEAD_TIMEOUT, http::parse_request)
            .await
        {
            Ok(Head::Done(r)) => r,
            Ok(Head::Bad(e)) => {
                let (host, port) = fixed
                    .as_ref()
                    .map_or(("-".to_string(), 0), |f| (f.target.to_string(), f.port));
                let ev = Event::new(via, &host, port);
                refuse_http(
                    sh,
                    &c,
                    &ev,
                    &Refusal::new(host, port, Why::BadRequest(e.to_string())),
                    false,
                )
                .await;
                return;
            }
            Ok(Head::TimedOut) => {
                let ev = Event::new(via, "-", 0);
                refuse_http(sh, &c, &ev, &Refusal::new("-", 0, Why::SlowHead), false).await;
                return;
            }
            _ => return,
        };
        if req.is_connect() && fixed.is_none() {
            return connect_tunnel(sh, c, req).await;
        }
        let ev_host = fixed
            .as_ref()
            .map_or_else(|| "-".to_string(), |f| f.target.to_string());
        let (target, port, path) = match route(&req, fixed.as_ref()) {
            Ok((t, p, path)) => (sh.unfake(t), p, path),
            Err(r) => {
                let keep = req.keep_alive() && req.body() == Ok(Body::None);
                refuse_http(sh, &c, &Event::new(via, ev_host, 0), &r, keep).await;
                if keep {
                    continue;
                }
                return;
            }
        };
        let ev = Event::new(via, &target, port);
        let body = match req.body() {
            Ok(b) => b,
            Err(e) => {
                let r = Refusal::new(&target, port, Why::BadRequest(e.to_string()));
                refuse_http(sh, &c, &ev, &r, false).await;
                return;
            }
        };
        let keep = req.keep_alive() && body == Body::None;
        // The decision for this request. In origin mode the destination was
        // decided with the connection; `route` checked that this request
        // names it.
        let grant = match decide::check(&sh.allow, &target, port) {
            Ok(g) => g,
            Err(r) => {
                refuse_http(sh, &c, &ev, &r, keep).await;
                if keep {
                    continue;
                }
                return;
            }
        };
        // The upstream: reuse it for the same destination, else resolve once and connect.
        let same = up
            .as_ref()
            .is_some_and(|u| u.target == target && u.port == port);
        if !same || up.as_ref().is_some_and(|u| u.conn.is_none()) {
            let addrs = match (&up, same) {
                (Some(u), true) => u.addrs.clone(),
                _ => match decide::resolve(&sh.allow, &target, port, &grant).await {
                    Ok(a) => a,
                    Err(r) => {
                        refuse_http(sh, &c, &ev, &r, keep).await;
                        if keep {
                            up = None;
                            continue;
                        }
                        return;
                    }
                },
            };
            match decide::connect(&target, port, &addrs).await {
                Ok((s, addr)) => {
                    up = Some(Upstream {
                        target: target.clone(),
                        port,
                        rule: grant.rule.clone(),
                        addrs,
                        addr,
                        conn: Some(Conn::new(s)),
                    })
                }
                Err(r) => {
                    refuse_http(sh, &c, &ev, &r, keep).await;
                    if keep {
                        up = None;
                        continue;
                    }
                    return;
                }
            }
        }
        let Some(u) = up.as_mut() else { return };
        let mut n = Counts::default();
        let result = tokio::select! {
            r = exchange(sh, &mut c, u, &req, &path, body, &mut n) => r,
            _ = sh.stopped() => Exchange::Finished,
        };
        match result {
            Exchange::Done { keep_upstream } => {
                ev.allowed(&u.rule, u.addr, n.sent, n.received);
                if !keep_upstream {
                    u.conn = None;
                }
                if !req.keep_alive() {
                    return;
                }
            }
            Exchange::Finished => {
                ev.allowed(&u.rule, u.addr, n.sent, n.received);
                return;
            }
            Exchange::UpstreamFailed(why) => {
                let r = Refusal::new(&target, port, why);
                refuse_http(sh, &c, &ev, &r, false).await;
                return;
            }
            Exchange::ClientGone => return,
        }
    }
}

/// The destination and origin-form path of a request, with the Host header
/// checked against the target (and, in origin mode, against the fixed
/// destination).
fn route(req: &http::RequestHead, fixed: Option<&Fixed>) -> Result<(Target, u16, String), Refusal> {
    let fixed_name = fixed.map_or_else(|| "-".to_string(), |f| f.target.to_string());
    let fixed_port = fixed.map_or(0, |f| f.port);
    let bad = |msg: String| Refusal::new(&fixed_name, fixed_port, Why::BadRequest(msg));
    if req.is_connect() {
        return Err(bad(
            "CONNECT inside a tunnel or on a transparent connection".into(),
        ));
    }
    if req.header_count("host") > 1 {
        return Err(bad("more than one Host header".into()));
    }
    let host_hdr = match req.header("host") {
        Some(h) => Some(
            parse_authority(h, Some(80)).map_err(|e| bad(format!("invalid Host header: {e}")))?,
        ),
        None if req.minor == 1 => return Err(bad("HTTP/1.1 request without a Host header".into())),
        None => None,
    };
    let (target, port, path) = if req.target.starts_with('/') {
        let Some(f) = fixed else {
            return Err(bad(
                "this is guard's HTTP proxy: send absolute URIs (http://host/path) or CONNECT"
                    .into(),
            ));
        };
        let (t, p) = host_hdr.clone().unwrap_or((f.target.clone(), f.port));
        (t, p, req.target.clone())
    } else {
        let (authority, path) =
            http::split_absolute(&req.target).map_err(|e| bad(e.to_string()))?;
        let (t, p) = parse_authority(authority, Some(80))
            .map_err(|e| bad(format!("invalid URI host: {e}")))?;
        (t, p, path)
    };
    if let Some((ht, hp)) = &host_hdr
        && (*ht != target || *hp != port)
    {
        let shown = req.header("host").unwrap_or("");
        return Err(Refusal::new(
            &target,
            port,
            Why::HostMismatch(shown.to_string()),
        ));
    }
    if let Some(f) = fixed
        && (f.target != target || f.port != port)
    {
        return Err(Refusal::new(
            &f.target,
            f.port,
            Why::HostMismatch(format!("{target}:{port}")),
        ));
    }
    Ok((target, port, path))
}

/// Bytes of one exchange, kept current so they are known however it ends.
#[derive(Default)]
struct Counts {
    sent: u64,
    received: u64,
}

enum Exchange {
    /// The response is complete; the client connection may carry more.
    Done {
        keep_upstream: bool,
    },
    /// The connection is over (close-delimited body, upgraded and relayed,
    /// broken, or guard is exiting).
    Finished,
    /// The upstream failed before a response started.
    UpstreamFailed(Why),
    ClientGone,
}

/// Forward one request and its response.
async fn exchange(
    sh: &Shared,
    c: &mut Conn,
    u: &mut Upstream,
    req: &http::RequestHead,
    path: &str,
    body: Body,
    n: &mut Counts,
) -> Exchange {
    let Some(uc) = u.conn.as_mut() else {
        return Exchange::UpstreamFailed(Why::Connect("no connection".into()));
    };
    let head = req.serialize(path);
    if req.expects_continue() && body != Body::None {
        // The client waits for this before sending its body; the upstream
        // never sees the Expect header (see `serialize`).
        if write_all(&c.stream, b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
        {
            return Exchange::ClientGone;
        }
    }
    let mut head = head;
    let mut body = body;
    // A small body that already arrived goes out with the head, in one write.
    if let Body::Length(len) = body
        && (c.buffered().len() as u64) >= len
    {
        head.extend_from_slice(&c.buffered()[..len as usize]);
        c.consume(len as usize);
        body = Body::None;
    }
    if let Err(e) = write_all(&uc.stream, &head).await {
        return Exchange::UpstreamFailed(Why::Connect(e.to_string()));
    }
    n.sent += head.len() as u64;
    let copied = match body {
        Body::Length(len) => c.copy_exact(&uc.stream, len).await.map(|_| len),
        Body::Chunked => copy_chunked(c, &uc.stream).await,
        _ => Ok(0),
    };
    match copied {
        Ok(len) => n.sent += len,
        Err(_) => return Exchange::ClientGone,
    }
    let resp = loop {
        let raw_head = uc
            .read_head(http::MAX_HEAD, RESPONSE_TIMEOUT, |b| {
                http::parse_response(b).map(|o| o.map(|(h, used)| ((h, b[..used].to_vec()), used)))
            })
            .await;
        let (resp, raw) = match raw_head {
            Ok(Head::Done(x)) => x,
            Ok(Head::Bad(e)) => {
                return Exchange::UpstreamFailed(Why::Connect(format!("invalid response: {e}")));
            }
            Ok(Head::TimedOut) => return Exchange::UpstreamFailed(Why::ConnectTimeout),
            _ => {
                return Exchange::UpstreamFailed(Why::Connect(
                    "the server closed the connection".into(),
                ));
            }
        };
        if resp.status >= 200 {
            break (resp, raw);
        }
        if write_all(&c.stream, &raw).await.is_err() {
            return Exchange::ClientGone;
        }
        n.received += raw.len() as u64;
        if resp.status == 101 {
            // Upgraded (WebSocket): the rest is the upgraded protocol, end to end.
            let (s, r) = relay(c, uc, sh.stopped()).await;
            n.sent += s;
            n.received += r;
            return Exchange::Finished;
        }
    };
    let (resp, mut raw) = resp;
    let Ok(mut framing) = resp.body(req.method.eq_ignore_ascii_case("HEAD")) else {
        return Exchange::Finished;
    };
    // A small body that already arrived goes out with the head, in one write.
    if let Body::Length(len) = framing
        && (uc.buffered().len() as u64) >= len
    {
        raw.extend_from_slice(&uc.buffered()[..len as usize]);
        uc.consume(len as usize);
        framing = Body::None;
    }
    if write_all(&c.stream, &raw).await.is_err() {
        return Exchange::ClientGone;
    }
    n.received += raw.len() as u64;
    let result = match framing {
        Body::None => Ok(0),
        Body::Length(len) => uc.copy_exact(&c.stream, len).await.map(|_| len),
        Body::Chunked => copy_chunked(uc, &c.stream).await,
        Body::UntilClose => {
            let _ = uc
                .rd
                .forward_all(&uc.stream, &c.stream, &mut n.received)
                .await;
            return Exchange::Finished;
        }
    };
    match result {
        Ok(len) => {
            n.received += len;
            Exchange::Done {
                keep_upstream: resp.keep_alive(),
            }
        }
        // A broken body: neither side can be trusted to be in sync.
        Err(_) => Exchange::Finished,
    }
}

/// Copy a chunked body, validating its framing; returns payload bytes.
async fn copy_chunked(src: &mut Conn, dst: &TcpStream) -> std::io::Result<u64> {
    let bad = |e: HttpError| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
    let truncated =
        || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated chunked body");
    let mut total = 0u64;
    loop {
        let mut line = src
            .read_line(http::MAX_CHUNK_LINE)
            .await?
            .ok_or_else(truncated)?;
        let size = http::parse_chunk_size(&line).map_err(bad)?;
        line.extend_from_slice(b"\r\n");
        write_all(dst, &line).await?;
        if size == 0 {
            for _ in 0..=MAX_TRAILERS {
                let mut t = src.read_line(http::MAX_HEAD).await?.ok_or_else(truncated)?;
                let end = t.is_empty();
                t.extend_from_slice(b"\r\n");
                write_all(dst, &t).await?;
                if end {
                    return Ok(total);
                }
            }
            return Err(bad(HttpError::Malformed("too many trailers")));
        }
        src.copy_exact(dst, size).await?;
        total += size;
        match src.read_line(2).await? {
            Some(l) if l.is_empty() => write_all(dst, b"\r\n").await?,
            _ => return Err(bad(HttpError::Malformed("chunk not followed by CRLF"))),
        }
    }
}

/// `CONNECT host:port` on the HTTP proxy port.
async fn connect_tunnel(sh: &Shared, c: Conn, req: http::RequestHead) {
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
        let agrees = parse_authority(h, Some(port)).is_ok_and(|(t, p)| t == target && p == port);
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
        }
        80 => {
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
            return Box::pin(serve_http(
                sh,
                c,
                Some(fixed),
                Some(upstream),
                "http-in-tunnel",
            ))
            .await;
        }
        _ => {}
    }
    let (sent, received) = relay(&mut c, &mut u, sh.stopped()).await;
    ev.allowed(&rule, addr, sent, received);
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
        Ok(Head::Done(name)) => match target {
            Target::Name(n) if name.as_deref() == Some(n.as_str()) => Ok(()),
            Target::Name(_) => refuse(Why::Sni(name)),
            // An IP rule is about the address; there is no name to compare.
            Target::Ip(_) => Ok(()),
        },
        Ok(Head::Bad(sni::SniError::NotTls)) => refuse(Why::NotTls),
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
        Ok((mut u, addr, rule)) => {
            let (sent, received) = relay(&mut c, &mut u, sh.stopped()).await;
            ev.allowed(&rule, addr, sent, received);
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
