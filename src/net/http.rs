//! HTTP/1.x request and response heads: just enough to route, check and
//! frame messages. Bodies are never parsed, only counted.
//!
//! Threat model: the head comes from a hostile client. Anything two parsers
//! could read differently is refused rather than guessed: bare LF or CR,
//! obsolete line folding, whitespace before a colon, NUL or control bytes,
//! both Content-Length and Transfer-Encoding, conflicting Content-Lengths,
//! transfer codings other than `chunked` (and any in HTTP/1.0), a chunk
//! size followed by anything but an extension, a trailer line that would
//! not pass as a header line, a URI with userinfo. The head is
//! bounded ([`MAX_HEAD`]) and the proxy re-serializes it, so the upstream
//! sees exactly the fields that were checked.

use std::fmt;

/// Largest request or response head accepted.
pub const MAX_HEAD: usize = 32 * 1024;
/// Longest chunk-size line (with extensions) accepted.
pub const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The head exceeds [`MAX_HEAD`].
    TooLarge,
    /// Not HTTP/1.x, or malformed in a way that matters.
    Malformed(&'static str),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::TooLarge => write!(f, "request head larger than {MAX_HEAD} bytes"),
            HttpError::Malformed(why) => write!(f, "malformed HTTP: {why}"),
        }
    }
}

type Parsed<T> = Result<Option<(T, usize)>, HttpError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// Minor version: 0 or 1.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub minor: u8,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
    Chunked,
    /// Until the server closes the connection (responses only).
    UntilClose,
}

/// Length of the head including the blank line, if complete.
fn head_end(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    let limit = buf.len().min(MAX_HEAD);
    match memchr_crlfcrlf(&buf[..limit]) {
        Some(i) => Ok(Some(i + 4)),
        None if buf.len() >= MAX_HEAD => Err(HttpError::TooLarge),
        // A line ended by a bare LF would never complete the head: say so now.
        None if buf[..limit]
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && (i == 0 || buf[i - 1] != b'\r')) =>
        {
            Err(HttpError::Malformed("line not terminated by CRLF"))
        }
        None => Ok(None),
    }
}

fn memchr_crlfcrlf(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n")
}

pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Split the head into lines (the blank line excluded); refuse bare CR/LF.
fn lines(head: &[u8]) -> Result<Vec<&[u8]>, HttpError> {
    // `head` ends with CRLF CRLF: drop the last CRLF, so every line below
    // ends with "\r" and the split leaves one empty tail element.
    let body = &head[..head.len() - 2];
    let mut out = Vec::new();
    let mut parts = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = parts.next() {
        if parts.peek().is_none() {
            break;
        }
        let line = line
            .strip_suffix(b"\r")
            .ok_or(HttpError::Malformed("line not terminated by CRLF"))?;
        if line.contains(&b'\r') {
            return Err(HttpError::Malformed("bare CR"));
        }
        out.push(line);
    }
    Ok(out)
}

fn parse_headers(lines: &[&[u8]]) -> Result<Vec<(String, String)>, HttpError> {
    let mut headers = Vec::with_capacity(lines.len());
    for line in lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err(HttpError::Malformed("obsolete line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HttpError::Malformed("header line without a colon"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(HttpError::Malformed("invalid header name"));
        }
        let value = trim_ows(&line[colon + 1..]);
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(HttpError::Malformed("control character in a header value"));
        }
        // Names are ASCII (tchar); values may carry obs-text, kept as is.
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(headers)
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

fn parse_version(v: &[u8]) -> Result<u8, HttpError> {
    match v {
        b"HTTP/1.1" => Ok(1),
        b"HTTP/1.0" => Ok(0),
        _ => Err(HttpError::Malformed("not HTTP/1.0 or HTTP/1.1")),
    }
}

/// Check one field line (a chunked body's trailer) as a header line is
/// checked: `name: value`, no bare CR or LF, no control characters. A
/// recipient may end lines at a bare LF (RFC 9112 §2.2): to it, `X: a` LF
/// LF would end the trailers, and what follows would be the next request,
/// its Host never checked.
pub fn check_field_line(line: &[u8]) -> Result<(), HttpError> {
    if line.contains(&b'\r') || line.contains(&b'\n') {
        return Err(HttpError::Malformed("bare CR or LF in a trailer"));
    }
    parse_headers(&[line]).map(|_| ())
}

/// Parse a request head from the start of `buf`. `Ok(None)`: incomplete.
pub fn parse_request(buf: &[u8]) -> Parsed<RequestHead> {
    let Some(end) = head_end(buf)? else {
        // Fail early on garbage: a request line starts with a method token.
        if let Some(&b) = buf.first()
            && !is_tchar(b)
        {
            return Err(HttpError::Malformed("not an HTTP request"));
        }
        return Ok(None);
    };
    let lines = lines(&buf[..end])?;
    let (first, rest) = lines
        .split_first()
        .ok_or(HttpError::Malformed("empty request"))?;
    let mut parts = first.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed(
            "request line is not METHOD TARGET VERSION",
        ));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::Malformed("invalid method"));
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(HttpError::Malformed("invalid request target"));
    }
    let head = RequestHead {
        method: String::from_utf8_lossy(method).into_owned(),
        target: String::from_utf8_lossy(target).into_owned(),
        minor: parse_version(version)?,
        headers: parse_headers(rest)?,
    };
    Ok(Some((head, end)))
}

/// Parse a response head from the start of `buf`. `Ok(None)`: incomplete.
pub fn parse_response(buf: &[u8]) -> Parsed<ResponseHead> {
    let Some(end) = head_end(buf)? else {
        if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
            return Err(HttpError::Malformed("not an HTTP response"));
        }
        return Ok(None);
    };
    let lines = lines(&buf[..end])?;
    let (first, rest) = lines
        .split_first()
        .ok_or(HttpError::Malformed("empty response"))?;
    if first.len() < 12 || first[8] != b' ' {
        return Err(HttpError::Malformed("invalid status line"));
    }
    let minor = parse_version(&first[..8])?;
    let code = &first[9..12];
    if !code.iter().all(u8::is_ascii_digit) || first.get(12).is_some_and(|b| *b != b' ') {
        return Err(HttpError::Malformed("invalid status code"));
    }
    let status = code
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let head = ResponseHead {
        minor,
        status,
        headers: parse_headers(rest)?,
    };
    Ok(Some((head, end)))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    header(headers, name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Framing shared by requests and responses (RFC 9112 §6.3).
fn framing(headers: &[(String, String)]) -> Result<Option<Body>, HttpError> {
    let te: Vec<&str> = header(headers, "transfer-encoding").collect();
    let cl: Vec<&str> = header(headers, "content-length").collect();
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err(HttpError::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if te.len() == 1 && te[0].trim().eq_ignore_ascii_case("chunked") {
            return Ok(Some(Body::Chunked));
        }
        return Err(HttpError::Malformed("transfer coding other than chunked"));
    }
    let mut len: Option<u64> = None;
    for v in cl.iter().flat_map(|v| v.split(',')) {
        let v = v.trim();
        if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::Malformed("invalid Content-Length"));
        }
        let n: u64 = v
            .parse()
            .map_err(|_| HttpError::Malformed("invalid Content-Length"))?;
        if len.is_some_and(|l| l != n) {
            return Err(HttpError::Malformed("conflicting Content-Length values"));
        }
        len = Some(n);
    }
    Ok(len.map(Body::Length))
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name).next()
    }

    pub fn header_count(&self, name: &str) -> usize {
        header(&self.headers, name).count()
    }

    pub fn is_connect(&self) -> bool {
        self.method.eq_ignore_ascii_case("CONNECT")
    }

    pub fn body(&self) -> Result<Body, HttpError> {
        // HTTP/1.0 has no transfer codings: a recipient may take the body
        // as empty and the chunks for the next request (RFC 9112 §6.1).
        if self.minor == 0 && self.header("transfer-encoding").is_some() {
            return Err(HttpError::Malformed(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        Ok(match framing(&self.headers)? {
            Some(Body::Length(0)) | None => Body::None,
            Some(b) => b,
        })
    }

    /// Does the client want the connection kept open after this exchange?
    pub fn keep_alive(&self) -> bool {
        if has_token(&self.headers, "connection", "close") {
            return false;
        }
        self.minor == 1 || has_token(&self.headers, "connection", "keep-alive")
    }

    pub fn expects_continue(&self) -> bool {
        has_token(&self.headers, "expect", "100-continue")
    }

    /// The head as sent upstream: origin-form `path`, hop-by-hop proxy
    /// fields and `Expect: 100-continue` (answered by the proxy) removed.
    pub fn serialize(&self, path: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(if self.minor == 1 {
            b" HTTP/1.1\r\n"
        } else {
            b" HTTP/1.0\r\n"
        });
        for (n, v) in &self.headers {
            let drop = n.eq_ignore_ascii_case("proxy-connection")
                || n.eq_ignore_ascii_case("proxy-authorization")
                || (n.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue"));
            if drop {
                continue;
            }
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name).next()
    }

    /// Body framing, given whether the request was HEAD.
    pub fn body(&self, head_request: bool) -> Result<Body, HttpError> {
        if head_request
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            return Ok(Body::None);
        }
        Ok(match framing(&self.headers)? {
            Some(Body::Length(0)) => Body::None,
            Some(b) => b,
            None => Body::UntilClose,
        })
    }

    pub fn keep_alive(&self) -> bool {
        if has_token(&self.headers, "connection", "close") {
            return false;
        }
        self.minor == 1 || has_token(&self.headers, "connection", "keep-alive")
    }
}

/// An absolute-form target split into (authority, origin-form path).
/// Only `http://` is accepted: `https://` through a plain proxy would make
/// the proxy originate TLS, which it does not (clients use CONNECT).
pub fn split_absolute(target: &str) -> Result<(&str, String), &'static str> {
    let (scheme, rest) = target
        .split_once("://")
        .ok_or("the request target is not an absolute URI (http://host/path)")?;
    if scheme.eq_ignore_ascii_case("https") {
        return Err("https:// URIs must be tunneled with CONNECT");
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err("only http:// URIs can be proxied");
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("URIs with user information are refused");
    }
    let tail = tail.split('#').next().unwrap_or("");
    let path = match tail.as_bytes().first() {
        None => "/".to_string(),
        Some(b'?') => format!("/{tail}"),
        Some(_) => tail.to_string(),
    };
    Ok((authority, path))
}

/// Parse a chunk-size line (without CRLF): hex size, optional extensions.
pub fn parse_chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let hex_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let hex = &line[..hex_end];
    if hex.is_empty() || hex.len() > 15 {
        return Err(HttpError::Malformed("invalid chunk size"));
    }
    let rest = &line[hex_end..];
    // Whitespace only before a `;` (RFC 9112 §7.1.1): `0 /x HTTP/1.1`
    // would be a last chunk here and a request line to an upstream that
    // does not expect this body to be chunked.
    let ext = trim_ows(rest);
    if !(ext.is_empty() || ext[0] == b';') {
        return Err(HttpError::Malformed("invalid chunk size"));
    }
    if rest.iter().any(|&b| b < 0x20 && b != b'\t') {
        return Err(HttpError::Malformed("control character in chunk extension"));
    }
    let mut n: u64 = 0;
    for &b in hex {
        let d = (b as char).to_digit(16).unwrap_or(0);
        n = n * 16 + u64::from(d);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> RequestHead {
        parse_request(s.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn parses_a_proxy_request() {
        let raw = "GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\nProxy-Connection: keep-alive\r\nX:  v \r\n\r\nBODY";
        let (h, n) = parse_request(raw.as_bytes()).unwrap().unwrap();
        assert_eq!(n, raw.len() - 4);
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "http://example.com/a?b");
        assert_eq!(h.header("host"), Some("example.com"));
        assert_eq!(h.header("x"), Some("v"));
        assert!(h.keep_alive());
        let out = String::from_utf8(h.serialize("/a?b")).unwrap();
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: example.com\r\nX: v\r\n\r\n"
        );
    }

    #[test]
    fn incomplete_and_oversized() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse_request(big.as_bytes()), Err(HttpError::TooLarge));
        assert!(parse_request(b"\x16\x03\x01\x02\x00").is_err());
    }

    #[test]
    fn ambiguous_heads_are_refused() {
        for bad in [
            "GET / HTTP/1.1\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
        ] {
            assert!(parse_request(bad.as_bytes()).is_err(), "{bad:?} accepted");
        }
        let both =
            req("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(both.body().is_err());
        let two = req("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        assert!(two.body().is_err());
        let gzip = req("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert!(gzip.body().is_err());
        let old = req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(old.body().is_err());
        let same = req("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n");
        assert_eq!(same.body(), Ok(Body::Length(3)));
    }

    #[test]
    fn response_framing() {
        let r = |s: &str| parse_response(s.as_bytes()).unwrap().unwrap().0;
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").body(false),
            Ok(Body::Length(5))
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").body(true),
            Ok(Body::None)
        );
        assert_eq!(
            r("HTTP/1.1 204 No Content\r\n\r\n").body(false),
            Ok(Body::None)
        );
        assert_eq!(
            r("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").body(false),
            Ok(Body::Chunked)
        );
        assert_eq!(
            r("HTTP/1.0 200 OK\r\n\r\n").body(false),
            Ok(Body::UntilClose)
        );
        assert!(!r("HTTP/1.0 200 OK\r\n\r\n").keep_alive());
        assert!(!r("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").keep_alive());
        assert_eq!(r("HTTP/1.1 404\r\n\r\n").status, 404);
        assert!(parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n").is_err());
        assert!(parse_response(b"SSH-2.0-OpenSSH").is_err());
    }

    #[test]
    fn absolute_uris() {
        assert_eq!(
            split_absolute("http://a.com").unwrap(),
            ("a.com", "/".to_string())
        );
        assert_eq!(
            split_absolute("HTTP://a.com:8080/x/y").unwrap(),
            ("a.com:8080", "/x/y".to_string())
        );
        assert_eq!(
            split_absolute("http://a.com?q=1").unwrap(),
            ("a.com", "/?q=1".to_string())
        );
        assert_eq!(
            split_absolute("http://a.com/p#frag").unwrap(),
            ("a.com", "/p".to_string())
        );
        assert!(split_absolute("http://a.com@b.com/").is_err());
        assert!(split_absolute("https://a.com/").is_err());
        assert!(split_absolute("ftp://a.com/").is_err());
        assert!(split_absolute("/relative").is_err());
    }

    #[test]
    fn trailer_lines() {
        assert_eq!(check_field_line(b"X-Checksum: abc"), Ok(()));
        for bad in [
            &b"X: a\n\nGET / HTTP/1.1"[..],
            b"X: a\rb",
            b"X: a\x00",
            b"no colon",
            b" folded: x",
            b"Bad Name: x",
        ] {
            assert!(check_field_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Ok(26));
        assert_eq!(parse_chunk_size(b"0;ext=1"), Ok(0));
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"x").is_err());
        assert!(parse_chunk_size(b"ffffffffffffffff").is_err());
        assert_eq!(parse_chunk_size(b"a ; ext"), Ok(10));
        assert_eq!(parse_chunk_size(b"a\t"), Ok(10));
        assert!(parse_chunk_size(b"0 /x HTTP/1.1").is_err());
        assert!(parse_chunk_size(b"0 x").is_err());
    }

    proptest::proptest! {
        #[test]
        fn request_parser_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_request(&data);
            let _ = parse_response(&data);
            let _ = parse_chunk_size(&data);
        }

        #[test]
        fn well_formed_requests_round_trip(
            method in "[A-Z]{1,8}",
            path in "/[a-zA-Z0-9/._~-]{0,40}",
            headers in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,30}"), 0..8),
        ) {
            let mut raw = format!("{method} {path} HTTP/1.1\r\n");
            for (n, v) in &headers {
                raw.push_str(&format!("{n}: {v}\r\n"));
            }
            raw.push_str("\r\n");
            let (h, used) = parse_request(raw.as_bytes()).unwrap().unwrap();
            proptest::prop_assert_eq!(used, raw.len());
            proptest::prop_assert_eq!(&h.method, &method);
            proptest::prop_assert_eq!(&h.target, &path);
            proptest::prop_assert_eq!(h.headers.len(), headers.len());
            // Re-serializing and parsing again gives the same head.
            let again = h.serialize(&path);
            let (h2, _) = parse_request(&again).unwrap().unwrap();
            let kept: Vec<_> = h.headers.iter().filter(|(n, v)| {
                !(n.eq_ignore_ascii_case("proxy-connection") || n.eq_ignore_ascii_case("proxy-authorization")
                  || (n.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue")))
            }).cloned().collect();
            proptest::prop_assert_eq!(h2.headers, kept);
        }

        #[test]
        fn split_at_any_point_is_incomplete_not_wrong(cut in 0usize..60) {
            let raw = b"GET http://a.com/ HTTP/1.1\r\nHost: a.com\r\nAccept: */*\r\n\r\n";
            let cut = cut.min(raw.len() - 1);
            proptest::prop_assert_eq!(parse_request(&raw[..cut]), Ok(None));
        }
    }
}
