//! HTTP/1.x heads (`guard::net::http`): the proxy parses request heads from
//! the sandbox (hostile) and response heads from upstream servers, routes
//! on the target and the Host header, and re-serializes the head it sends
//! upstream. Invariants: no panic; a head that parses is re-serialized into
//! a head that parses to the same method, target, headers and framing
//! (what the proxy checked is what the server gets).
#![no_main]

use guard::net::allowlist::parse_authority;
use guard::net::http::{self, MAX_HEAD};
use libfuzzer_sys::fuzz_target;

fn hop_by_hop(n: &str, v: &str) -> bool {
    n.eq_ignore_ascii_case("proxy-connection")
        || n.eq_ignore_ascii_case("proxy-authorization")
        || (n.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((h, used))) = http::parse_request(data) {
        assert!(used <= data.len() && used <= MAX_HEAD, "head length {used}");
        // The head alone parses the same (nothing after it was read).
        assert_eq!(
            http::parse_request(&data[..used]),
            Ok(Some((h.clone(), used)))
        );
        let body = h.body();
        let _ = (h.keep_alive(), h.expects_continue(), h.header_count("host"));
        if let Some(host) = h.header("host") {
            let _ = parse_authority(host, Some(80));
        }
        // Routing as the proxy does it.
        let path = if h.is_connect() {
            let _ = parse_authority(&h.target, None);
            h.target.clone()
        } else {
            match http::split_absolute(&h.target) {
                Ok((authority, path)) => {
                    let _ = parse_authority(authority, Some(80));
                    assert!(path.starts_with('/'), "origin-form path {path:?}");
                    path
                }
                Err(_) => h.target.clone(),
            }
        };
        let out = h.serialize(&path);
        // Obs-text bytes become U+FFFD (3 bytes) and every field gains a
        // space: the copy may outgrow MAX_HEAD; that is refused, not misread.
        match http::parse_request(&out) {
            Ok(Some((h2, n2))) => {
                assert_eq!(n2, out.len());
                assert_eq!(h2.method, h.method);
                assert_eq!(h2.target, path);
                assert_eq!(h2.minor, h.minor);
                let kept: Vec<_> = h
                    .headers
                    .iter()
                    .filter(|(n, v)| !hop_by_hop(n, v))
                    .cloned()
                    .collect();
                assert_eq!(h2.headers, kept);
                assert_eq!(h2.body(), body, "framing changed by re-serialization");
            }
            Err(http::HttpError::TooLarge) => assert!(out.len() >= MAX_HEAD),
            other => panic!("re-serialized head does not parse: {other:?}\n{out:?}"),
        }
    }

    if let Ok(Some((r, used))) = http::parse_response(data) {
        assert!(used <= data.len() && used <= MAX_HEAD);
        assert!((0..=999).contains(&r.status));
        let _ = (r.body(false), r.body(true), r.keep_alive(), r.header("x"));
    }

    // A chunk-size line: the first line of the input.
    let line = data.split(|&b| b == b'\n').next().unwrap_or(data);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Ok(n) = http::parse_chunk_size(line) {
        assert!(n < 1 << 60);
    }
});
