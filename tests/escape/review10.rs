//! The tenth review: an attack review of the egress layer (the proxies, the
//! DNS server, the transparent listeners). Each test names the attack; where
//! guard had a hole, the test failed before the fix that came with it.

use crate::egress_layer::{Loopback, PROXY, profile, run_logged};
use crate::support::{Expect, each_mode};

fn events(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The exact count in the last "not logged" event for `what`, if any.
fn not_logged(log: &[serde_json::Value], what: &str) -> Option<u64> {
    log.iter()
        .filter(|e| e["event"] == "not-logged" && e["what"] == what)
        .filter_map(|e| e["count"].as_u64())
        .next_back()
}

/// Every DNS query and every refused request was one line in the session
/// log on the host's disk, and the sandbox decides how many there are: a
/// loop of datagrams to guard's DNS server wrote ~6 MB/s without end (a
/// refused request on a kept-alive proxy connection costs little more).
/// Past 10,000 of each kind, events are counted instead of written, and the
/// log ends with the exact number not written. The floods are answered all
/// the same (a refusal is still a refusal), and a destination refused for
/// the first time after a flood is still written (a flood to a decoy cannot
/// hide the attempt that matters).
#[test]
fn a_flood_of_dns_queries_and_refusals_cannot_fill_the_host_disk() {
    const DNS: u64 = 12_000;
    const REFUSED: u64 = 11_000;
    each_mode(|mut case| {
        let ok = Loopback::start(&mut case);
        let prof = profile(&case, ok.port);
        case.write_python(&format!(
            r#"{PROXY}
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
answered = 0
for b in range(0, {DNS}, 100):
    for i in range(b, b + 100):
        q = struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0)
        q += b"\x0bflood%06d\x05guard\x04test\x00\x00\x01\x00\x01" % i
        s.sendto(q, ("127.0.0.1", 53))
    for i in range(100):
        r = s.recv(512)
        answered += (r[3] & 15) == 3
out("nxdomain", answered)
c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
req = b"GET http://flood.guard.test/ HTTP/1.1\r\nHost: flood.guard.test\r\n\r\n"
refused = 0
buf = b""
for b in range(0, {REFUSED}, 100):
    c.sendall(req * 100)
    want = refused + 100
    while refused < want:
        buf += c.recv(65536)
        n = buf.count(b"HTTP/1.1 403 ")
        refused += n
        buf = buf[buf.rfind(b"HTTP/1.1 403 ") + 1:] if n else buf
out("refused", refused)
out("fresh", proxy(b"GET http://fresh.guard.test/ HTTP/1.1\r\nHost: fresh.guard.test\r\n\r\n"))
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        out.fields(&[
            ("nxdomain", &DNS.to_string()),
            ("refused", &REFUSED.to_string()),
        ]);
        let ev = events(&log);
        let dns = ev.iter().filter(|e| e["via"] == "dns").count() as u64;
        let refusals = ev
            .iter()
            .filter(|e| e["via"] == "http-proxy" && e["decision"] == "refuse")
            .count() as u64;
        assert_eq!(dns, 10_000, "DNS events written");
        // 10,000, plus the first refusal of each destination (the flood's,
        // and one refused for the first time after it).
        assert_eq!(refusals, 10_002, "refusal events written");
        out.fields(&[("fresh", "403")]);
        assert!(
            ev.iter()
                .any(|e| e["host"] == "fresh.guard.test" && e["why"] == "not-allowed"),
            "the refusal after the flood is not in the log"
        );
        assert_eq!(not_logged(&ev, "dns"), Some(DNS - 10_000));
        assert_eq!(not_logged(&ev, "refusal"), Some(REFUSED + 1 - 10_002));
        // The summary counts what the log does not hold.
        let unlogged = format!(
            "{} more refused connection(s) were counted, not logged",
            REFUSED + 1 - 10_002
        );
        assert!(out.stderr.contains(&unlogged), "{}", out.stderr);
        assert!(log.len() < 12 << 20, "log of {} bytes", log.len());
        assert_eq!(ok.finish(), 0);
    });
}

/// A keep-alive HTTP server on the host's loopback answering every request
/// with `RESPONSE`.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn keep_alive_server() -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut b = vec![0; 65536];
                while let Ok(n) = c.read(&mut b) {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&b[..n]);
                    let mut out = Vec::new();
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        out.extend_from_slice(RESPONSE);
                    }
                    if c.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// The same for allowed requests: a kept-alive connection to an allowed
/// host turns every round trip into a line of the log. Past 10,000 they are
/// counted, and the log ends with the count and the bytes of those not
/// written, per destination.
#[test]
fn a_flood_of_allowed_requests_cannot_fill_the_host_disk() {
    const ALLOWED: u64 = 10_050;
    let port = keep_alive_server();
    each_mode(|case| {
        let prof = profile(&case, port);
        case.write_python(&format!(
            r#"
c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
req = b"GET http://web.guard.test:{port}/ HTTP/1.1\r\nHost: web.guard.test:{port}\r\n\r\n"
done = 0
buf = b""
for b in range(0, {ALLOWED}, 50):
    c.sendall(req * 50)
    want = done + 50
    while done < want:
        buf += c.recv(65536)
        n = buf.count(b"HTTP/1.1 200 OK")
        done += n
        buf = buf[buf.rfind(b"HTTP/1.1 200 OK") + 1:] if n else buf
out("answered", done)
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        out.fields(&[("answered", &ALLOWED.to_string())]);
        let ev = events(&log);
        let allowed = ev.iter().filter(|e| e["decision"] == "allow").count() as u64;
        assert_eq!(allowed, 10_000, "allowed events written");
        let unlogged = |with_dest: bool| {
            ev.iter()
                .rfind(|e| {
                    e["event"] == "not-logged"
                        && e["what"] == "allowed"
                        && e["destination"].is_string() == with_dest
                })
                .cloned()
                .unwrap_or_else(|| panic!("no not-logged event (destination: {with_dest})"))
        };
        assert_eq!(unlogged(false)["count"], ALLOWED - 10_000);
        let d = unlogged(true);
        assert_eq!(d["destination"], format!("web.guard.test:{port}"));
        assert_eq!(d["count"], ALLOWED - 10_000);
        assert_eq!(
            d["bytes_received"],
            (ALLOWED - 10_000) * RESPONSE.len() as u64
        );
    });
}

/// A host loopback server that records every byte it receives and, once
/// the client has been quiet for a second, answers `RESPONSE` and closes.
fn recording_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let s = s.clone();
            std::thread::spawn(move || {
                let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(1)));
                let mut b = vec![0; 65536];
                while let Ok(n) = c.read(&mut b) {
                    if n == 0 {
                        return;
                    }
                    s.lock().unwrap().extend_from_slice(&b[..n]);
                }
                let _ = c.write_all(RESPONSE);
            });
        }
    });
    (port, seen)
}

/// Request smuggling through a chunked body's trailers: guard ends a
/// trailer line at CRLF only, and forwarded `X: a` LF LF `GET /
/// HTTP/1.1` CRLF `Host: evil.guard.test` CRLF CRLF as two trailer lines.
/// An upstream that ends lines at a bare LF, as RFC 9112 §2.2 allows, reads
/// the trailers as over at LF LF and the rest as a second request whose
/// Host was never checked (to a shared front server: another site).
/// Trailer lines are now checked like header lines: the request is refused
/// (400, bad-request) and nothing from the bad line on goes upstream.
#[test]
fn a_chunked_trailer_cannot_smuggle_a_request_past_the_host_check() {
    let (port, seen) = recording_server();
    each_mode(|case| {
        let prof = profile(&case, port);
        case.write_python(&format!(
            r#"{PROXY}
body = b"5\r\nhello\r\n0\r\nX: a\n\nGET /smuggled HTTP/1.1\r\nHost: evil.guard.test\r\n\r\n"
out("smuggle", proxy(b"POST http://web.guard.test:{port}/ HTTP/1.1\r\nHost: web.guard.test:{port}\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
out("control", proxy(b"POST http://web.guard.test:{port}/ HTTP/1.1\r\nHost: web.guard.test:{port}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"))
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        out.fields(&[("smuggle", "400"), ("control", "200")]);
        assert!(
            events(&log).iter().any(|e| e["why"] == "bad-request"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("bare CR or LF in a trailer"))),
            "{log}"
        );
    });
    let seen = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(
        seen.contains("X-Sum: 1"),
        "the control request never arrived"
    );
    assert!(
        !seen.contains("evil.guard.test"),
        "smuggled upstream:\n{seen}"
    );
}

/// A TLS server on `addr` (a host loopback address and port) that records
/// the first bytes of every connection.
struct Recorder {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    port: u16,
}

impl Recorder {
    fn start(addr: &str) -> Recorder {
        use std::io::Read;
        let l = std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let port = l.local_addr().map_or(0, |a| a.port());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                    let mut b = vec![0; 4096];
                    let n = c.read(&mut b).unwrap_or(0);
                    s.lock().unwrap().push(b[..n].to_vec());
                });
            }
        });
        Recorder { seen, port }
    }

    /// Connections that carried bytes.
    fn with_bytes(&self) -> Vec<Vec<u8>> {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|b| !b.is_empty()).cloned().collect()
    }
}

/// A ClientHello two TLS stacks could read differently: a server_name list
/// whose first entry has another name type and names a host that is not
/// allowed, before a host_name entry naming the allowed one (guard skipped
/// entries of other types, as Go does; a front server that takes the first
/// entry whatever its type routes to the other host), and an encrypted
/// hello under a draft code point of ECH (0xfe0a, 0xff02), which a front
/// server still speaking that draft decrypts and follows. Both are refused
/// before a byte goes out, through CONNECT and the transparent listener;
/// the plain hello naming the allowed host still reaches the server.
#[test]
fn a_client_hello_servers_could_read_differently_is_refused() {
    // One address per test process: two runs of the suite at once (port
    // 443 is fixed) do not collide.
    let addr = format!("127.31.{}.1", 10 + std::process::id() % 240);
    // As root the server is on port 443 and the rule is the bare name (ports
    // 443 and 80), as a site's would be. A user cannot bind port 443: then
    // the server is on a port the kernel picks, and the rule names it.
    let root = crate::common::is_root();
    let server = Recorder::start(&format!("{addr}:{}", if root { 443 } else { 0 }));
    let port = server.port;
    let rule = if root {
        "web.guard.test".to_string()
    } else {
        format!("web.guard.test:{port}")
    };
    let sent = std::cell::Cell::new(0);
    each_mode(|case| {
        let prof = case.write(
            "review10-tls.toml",
            &format!(
                "{}\n[network]\nallow = [ {{ host = \"{rule}\", private = true }} ]\n\n[network.hosts]\n\"web.guard.test\" = \"{addr}\"\n",
                include_str!("../../profiles/default.toml")
            ),
        );
        case.write_python(
            &r#"
def ext(ty, data):
    return struct.pack(">HH", ty, len(data)) + data
def hello(entries, extra=b""):
    sn = b"".join(struct.pack(">BH", t, len(n)) + n for t, n in entries)
    exts = ext(0, struct.pack(">H", len(sn)) + sn) + ext(0x2b, b"\x02\x03\x04") + extra
    body = b"\x03\x03" + b"r" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack(">H", len(exts)) + exts
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs
ALLOWED = (0, b"web.guard.test")
ECH = b"\x00\x00\x01\x00\x01\x07" + struct.pack(">H", 32) + b"k" * 32 + struct.pack(">H", 64) + b"c" * 64
HELLOS = {
    "plain": hello([ALLOWED]),
    "type1_first": hello([(1, b"evil.guard.test"), ALLOWED]),
    "ech_draft10": hello([ALLOWED], ext(0xfe0a, ECH)),
    "ech_draft07": hello([ALLOWED], ext(0xff02, ECH)),
}
def answer(s):
    s.settimeout(10)
    try:
        return s.recv(64)[:7].hex() or "closed"
    except OSError as e:
        return "errno-%d" % e.errno
for k, h in HELLOS.items():
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"CONNECT web.guard.test:@PORT@ HTTP/1.1\r\nHost: web.guard.test:@PORT@\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    s.sendall(h)
    out("connect_" + k, head.split(b" ")[1].decode() + "/" + answer(s))
    s = socket.create_connection(("web.guard.test", @PORT@), timeout=10)
    s.sendall(h)
    out("transparent_" + k, answer(s))
"#
            .replace("@PORT@", &port.to_string()),
        );
        let (out, log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        const DENIED: &str = "15030300020231";
        for (k, why) in [
            ("type1_first", "bad-request"),
            ("ech_draft10", "encrypted-client-hello"),
            ("ech_draft07", "encrypted-client-hello"),
        ] {
            out.fields(&[
                (&format!("connect_{k}"), &format!("200/{DENIED}")),
                (&format!("transparent_{k}"), DENIED),
            ]);
            let refusals = events(&log)
                .into_iter()
                .filter(|e| e["host"] == "web.guard.test" && e["why"] == why)
                .count();
            assert!(refusals >= 2, "{k}: no {why} refusals\n{log}");
        }
        // The server only records, then closes: no alert from guard.
        assert_ne!(out.get("connect_plain"), format!("200/{DENIED}"));
        assert_ne!(out.get("transparent_plain"), DENIED);
        sent.set(sent.get() + 2);
    });
    let got = server.with_bytes();
    assert_eq!(
        got.len(),
        sent.get(),
        "only the plain hellos reach the server"
    );
    for b in &got {
        let s = String::from_utf8_lossy(b);
        assert!(!s.contains("evil.guard.test"), "{s}");
    }
}

/// An allowed name (no private opt-in) whose address a hostile DNS record
/// or a careless pin sets to a special address the classifier took for
/// public: Azure's platform endpoint 168.63.129.16 (VM agent configuration
/// and certificates), an IPv4-translated IPv6 address (`::ffff:0:a.b.c.d`,
/// which a SIIT translator sends to 127.0.0.1 here) and local-use NAT64
/// (`64:ff9b:1::/48`, here 169.254.169.254 in the /48 layout and 10.0.0.1
/// in the /96 one). Each is refused as a non-public address before any
/// connection is tried, through CONNECT and SOCKS5.
#[test]
fn special_addresses_behind_an_allowed_name_are_refused() {
    const PINS: [(&str, &str, &str); 4] = [
        ("azure", "168.63.129.16", "Azure platform endpoint"),
        ("siit", "::ffff:0:7f00:1", "IPv4-translated"),
        ("nat64a", "64:ff9b:1:a9fe:a9:fe00::", "local-use NAT64"),
        ("nat64b", "64:ff9b:1::a00:1", "local-use NAT64"),
    ];
    each_mode(|case| {
        let mut allow = Vec::new();
        let mut hosts = String::new();
        for (n, ip, _) in PINS {
            allow.push(format!("\"{n}.guard.test:9\""));
            hosts.push_str(&format!("\"{n}.guard.test\" = \"{ip}\"\n"));
        }
        let prof = case.write(
            "review10-addr.toml",
            &format!(
                "{}\n[network]\nallow = [ {} ]\n\n[network.hosts]\n{hosts}",
                include_str!("../../profiles/default.toml"),
                allow.join(", ")
            ),
        );
        let mut py = String::from(PROXY);
        for (n, _, _) in PINS {
            py.push_str(&format!(
                "out(\"connect_{n}\", proxy(b\"CONNECT {n}.guard.test:9 HTTP/1.1\\r\\n\\r\\n\"))\n\
                 out(\"socks_{n}\", socks(b\"{n}.guard.test\", 9))\n"
            ));
        }
        case.write_python(&py);
        let (out, log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        let ev = events(&log);
        for (n, ip, class) in PINS {
            out.fields(&[
                (&format!("connect_{n}"), "403"),
                (&format!("socks_{n}"), "2"),
            ]);
            let host = format!("{n}.guard.test");
            let refusals: Vec<_> = ev
                .iter()
                .filter(|e| e["host"] == host.as_str() && e["decision"] == "refuse")
                .collect();
            assert_eq!(refusals.len(), 2, "{host}\n{log}");
            for e in refusals {
                assert_eq!(e["why"], "non-public-address", "{e}");
                let reason = e["reason"].as_str().unwrap_or("");
                assert!(reason.contains(ip) && reason.contains(class), "{reason}");
            }
            assert!(
                !ev.iter()
                    .any(|e| e["host"] == host.as_str() && e["decision"] == "allow"),
                "{log}"
            );
        }
    });
}
