//! Plain HTTP, request by request: the HTTP proxy's absolute-URI requests,
//! and HTTP on port 80 (transparent, or inside a CONNECT/SOCKS tunnel).
//!
//! Threat model: a kept-alive connection carries many requests, and each
//! one is a new destination claim. Every request is parsed, routed and
//! decided on its own; its Host header must name its target (and, on a
//! connection whose destination is fixed, that destination); its body is
//! framed strictly (see `http`) and forwarded by count, so one request can
//! never smuggle the head of the next past the checks. Pipelined requests
//! are answered in order, one at a time. The upstream connection is reused
//! only for the same destination, with the addresses of its one resolution.

use super::allowlist::{Target, parse_authority};
use super::decide::{self, Refusal, Why};
use super::event::Event;
use super::http::{self, Body, HttpError};
use super::proxy::{HEAD_TIMEOUT, Shared, connect_tunnel};
use super::relay::{Conn, Head, relay, write_all};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// Time a kept-alive client connection may sit idle between requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Time allowed for an upstream to start its response (model APIs think long).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest body read into the head's buffer to go out in the same write
/// (a transient buffer: nothing stays allocated per connection).
const SMALL_BODY: u64 = 16 * 1024;
/// Most trailer lines after a chunked body.
const MAX_TRAILERS: usize = 64;

/// An upstream connection for plain HTTP, reused while requests name the
/// same destination.
pub struct Upstream {
    pub target: Target,
    pub port: u16,
    pub rule: String,
    /// From the one resolution for this destination (reconnects reuse it).
    pub addrs: Vec<SocketAddr>,
    pub addr: SocketAddr,
    pub conn: Option<Conn>,
}

/// A connection whose destination is fixed (transparent port 80, or a
/// tunnel to port 80): every request's Host must name it.
pub struct Fixed {
    pub target: Target,
    pub port: u16,
}

pub async fn refuse_http(sh: &Shared, c: &Conn, ev: &Event, r: &Refusal, keep_alive: bool) {
    let _ = write_all(&c.stream, &r.http_response(keep_alive)).await;
    ev.refused(&sh.blocked, r, 0, 0);
}

/// The HTTP proxy port.
pub async fn http_proxy(sh: &Shared, s: TcpStream) {
    serve_http(sh, Conn::new(s), None, None, "http-proxy").await;
}

/// Serve HTTP requests on `c` until it closes. `fixed`: origin mode (the
/// destination is known); otherwise proxy mode (absolute URIs and CONNECT).
pub async fn serve_http(
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
                ev.allowed(&sh.blocked, &u.rule, u.addr, n.sent, n.received);
                if !keep_upstream {
                    u.conn = None;
                }
                if !req.keep_alive() {
                    return;
                }
            }
            Exchange::Finished => {
                ev.allowed(&sh.blocked, &u.rule, u.addr, n.sent, n.received);
                return;
            }
            Exchange::UpstreamFailed(why) => {
                let r = Refusal::new(&target, port, why);
                refuse_http(sh, &c, &ev, &r, false).await;
                return;
            }
            Exchange::BadBody(e) => {
                u.conn = None;
                let r = Refusal::new(&target, port, Why::BadRequest(e));
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
    /// The request body's framing is invalid (the client's fault).
    BadBody(String),
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
    let mut head = req.serialize(path);
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
    let body = with_head(c, &mut head, body);
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
        // The upstream has the part before the fault: it gets no more.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Exchange::BadBody(e.to_string());
        }
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
    let Ok(framing) = resp.body(req.method.eq_ignore_ascii_case("HEAD")) else {
        return Exchange::Finished;
    };
    let framing = with_head(uc, &mut raw, framing);
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

/// A body of up to [`SMALL_BODY`] bytes that has arrived (buffered, or
/// waiting in the socket) goes out with its head in one write: one segment
/// and one wake-up for the peer instead of two or three, and no splice for
/// a few kilobytes. Returns the framing of what is left to copy.
fn with_head(from: &mut Conn, head: &mut Vec<u8>, body: Body) -> Body {
    let Body::Length(len) = body else {
        return body;
    };
    let take = from
        .buffered()
        .len()
        .min(usize::try_from(len).unwrap_or(usize::MAX));
    head.extend_from_slice(&from.buffered()[..take]);
    from.consume(take);
    let mut left = len - take as u64;
    if left > 0 && left <= SMALL_BODY {
        // Read straight behind the head, never past the body (the buffer
        // is exactly `left` long). Nothing there yet, or an error: the
        // copy that follows waits, or meets the error again.
        let start = head.len();
        head.resize(start + left as usize, 0);
        let got = from.stream.try_read(&mut head[start..]).unwrap_or(0);
        head.truncate(start + got);
        left -= got as u64;
    }
    match left {
        0 => Body::None,
        left => Body::Length(left),
    }
}

/// Copy a chunked body, validating its framing; returns payload bytes.
/// Validated bytes that arrived together go out together: a stream of
/// small chunks (server-sent events) costs one write per batch instead of
/// three per chunk. A batch holds only bytes that were already buffered
/// (so at most one buffer's worth), and nothing is held back while waiting
/// for more input.
async fn copy_chunked(src: &mut Conn, dst: &TcpStream) -> std::io::Result<u64> {
    let bad = |e: HttpError| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
    let truncated =
        || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated chunked body");
    let mut out = Vec::new();
    let mut total = 0u64;
    loop {
        let line = next_line(src, dst, &mut out, http::MAX_CHUNK_LINE)
            .await?
            .ok_or_else(truncated)?;
        let size = http::parse_chunk_size(&line).map_err(bad)?;
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
        if size == 0 {
            for _ in 0..=MAX_TRAILERS {
                let t = next_line(src, dst, &mut out, http::MAX_HEAD)
                    .await?
                    .ok_or_else(truncated)?;
                if !t.is_empty() {
                    http::check_field_line(&t).map_err(bad)?;
                }
                out.extend_from_slice(&t);
                out.extend_from_slice(b"\r\n");
                if t.is_empty() {
                    write_all(dst, &out).await?;
                    return Ok(total);
                }
            }
            return Err(bad(HttpError::Malformed("too many trailers")));
        }
        if size <= src.buffered().len() as u64 && out.len() as u64 + size <= SMALL_BODY {
            out.extend_from_slice(&src.buffered()[..size as usize]);
            src.consume(size as usize);
        } else {
            flush(dst, &mut out).await?;
            src.copy_exact(dst, size).await?;
        }
        total += size;
        match next_line(src, dst, &mut out, 2).await? {
            Some(l) if l.is_empty() => out.extend_from_slice(b"\r\n"),
            _ => return Err(bad(HttpError::Malformed("chunk not followed by CRLF"))),
        }
        if out.len() as u64 >= SMALL_BODY {
            flush(dst, &mut out).await?;
        }
    }
}

/// The next line of `src`. If it has not fully arrived, what `out` holds
/// goes out first: the peer may be waiting for it before it sends more.
async fn next_line(
    src: &mut Conn,
    dst: &TcpStream,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    if !src.buffered().windows(2).any(|w| w == b"\r\n") {
        flush(dst, out).await?;
    }
    src.read_line(max).await
}

async fn flush(dst: &TcpStream, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        write_all(dst, out).await?;
        out.clear();
    }
    Ok(())
}
