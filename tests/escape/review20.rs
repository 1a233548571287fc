//! The twentieth review: an attack review of the egress layer (the HTTP
//! proxy, SOCKS5, the transparent listeners and the supervisor's decision
//! code). Each test names the attack; the ones that say "Hole" failed before
//! the fix that came with them.

use crate::egress_layer::{profile, run_logged};
use crate::support::{Case, Expect, each_mode};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn events(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// PostgreSQL's SSLRequest.
const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A host loopback server that records the first bytes of every connection,
/// then answers with a canary and closes: a client that got through prints
/// the canary, which `case.run` catches.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start(case: &mut Case) -> Recorder {
        let greeting = case.add_canary("tlsfront");
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the recording server");
        let port = l.local_addr().expect("server address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let s = s.clone();
                let greeting = greeting.clone();
                std::thread::spawn(move || {
                    // Longer than any pause a test makes: a server that spoke on a
                    // timeout would look like one that speaks first.
                    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut b = vec![0; 4096];
                    let n = c.read(&mut b).unwrap_or(0);
                    let mut got = b[..n].to_vec();
                    // PostgreSQL's SSLRequest: answer `S`, then the TLS
                    // handshake follows.
                    if got == PG_SSL_REQUEST {
                        let _ = c.write_all(b"S");
                        let n = c.read(&mut b).unwrap_or(0);
                        got.extend_from_slice(&b[..n]);
                    }
                    s.lock().expect("recorder lock").push(got);
                    let _ = c.write_all(format!("{greeting}\n").as_bytes());
                });
            }
        });
        Recorder { port, seen }
    }

    /// What each connection that carried bytes sent first.
    fn with_bytes(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        let seen = self.seen.lock().expect("recorder lock");
        seen.iter()
            .filter(|b| !b.is_empty())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

/// Python: PostgreSQL's SSLRequest, a ClientHello naming `name`, and the three ways into a tunnel
/// (CONNECT, SOCKS5, the transparent listener) that return the socket.
const TLS_CLIENT: &str = r#"
import threading, time
SSLREQ = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
def hello(name, marker=b"r" * 32):
    def ext(ty, data):
        return struct.pack(">HH", ty, len(data)) + data
    sn = struct.pack(">BH", 0, len(name)) + name
    exts = ext(0, struct.pack(">H", len(sn)) + sn) + ext(0x2b, b"\x02\x03\x04")
    body = b"\x03\x03" + marker[:32].ljust(32, b"r") + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack(">H", len(exts)) + exts
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs
def via_connect(host, port):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port, host, port))
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            break
        head += c
    return s, head.split(b" ")[1].decode() if b" " in head else "none"
def via_socks(host, port):
    s = socket.create_connection(("127.0.0.1", 1080), timeout=10)
    s.sendall(b"\x05\x01\x00")
    s.recv(2)
    s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host + struct.pack(">H", port))
    r = s.recv(10)
    return s, str(r[1]) if len(r) > 1 else "none"
def via_transparent(host, port):
    return socket.create_connection((host.decode(), port), timeout=10), "open"
def answer(s):
    # An alert from guard shows as hex; anything else as text (a canary
    # the server sent would then be in the output).
    s.settimeout(10)
    try:
        r = s.recv(256)
    except OSError as e:
        return "errno-%d" % e.errno
    if not r:
        return "closed"
    return r[:7].hex() if r[0] == 0x15 else r.decode("latin-1").strip()
def got_reply(s):
    s.settimeout(10)
    try:
        return "reply" if s.recv(256) else "closed"
    except OSError as e:
        return "errno-%d" % e.errno
"#;

/// The TLS alert guard sends when it refuses a tunnel after the ClientHello.
const DENIED: &str = "15030300020231";

/// Hole: domain fronting on a TLS port other than 443. A rule can allow a
/// host on any port, and fronts serve TLS on many (CDNs answer HTTPS on
/// 8443, 2053, 2083…; hosted Postgres routes connections on 5432 by the
/// SNI). guard checked the ClientHello's server name only on port 443:
/// every other port was relayed raw, so a tunnel to the allowed host on
/// its TLS port carried a hello naming any other site behind the same
/// front, which the front then served (here the server recorded the hello
/// naming `evil.guard.test`, through CONNECT, SOCKS5 and the transparent
/// listener). Now the first bytes of every tunnel that are a TLS handshake
/// record must be a ClientHello naming the allowed host, whatever the port:
/// the hello naming another host is refused with a TLS alert
/// (sni-mismatch) before a byte of it goes out, while a hello naming the
/// allowed host and bytes that are not TLS still pass.
#[test]
fn a_tls_hello_naming_another_host_on_a_non_443_port_is_refused() {
    each_mode(|mut case| {
        let srv = Recorder::start(&mut case);
        let p = srv.port;
        let prof = profile(&case, p);
        let marker = crate::common::canary("front").to_ascii_lowercase();
        let marker = &marker[..marker.len().min(32)];
        case.write_python(&format!(
            r#"{TLS_CLIENT}
for way, dial in (("connect", via_connect), ("socks", via_socks), ("transparent", via_transparent)):
    s, st = dial(b"web.guard.test", {p})
    s.sendall(hello(b"evil.guard.test", b"{marker}"))
    out(way + "_evil", st + "/" + answer(s))
    s, st = dial(b"web.guard.test", {p})
    s.sendall(hello(b"web.guard.test"))
    out(way + "_allowed", st + "/" + got_reply(s))
    s, st = dial(b"web.guard.test", {p})
    s.sendall(b"PING not tls\r\n")
    out(way + "_raw", st + "/" + got_reply(s))
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().expect("utf-8 path")]);
        for (way, ok) in [("connect", "200"), ("socks", "0"), ("transparent", "open")] {
            out.fields(&[
                (&format!("{way}_evil"), &format!("{ok}/{DENIED}")),
                (&format!("{way}_allowed"), &format!("{ok}/reply")),
                (&format!("{way}_raw"), &format!("{ok}/reply")),
            ]);
        }
        let refusals: Vec<String> = events(&log)
            .into_iter()
            .filter(|e| {
                e["host"] == "web.guard.test"
                    && e["port"] == p
                    && e["decision"] == "refuse"
                    && e["why"] == "sni-mismatch"
            })
            .map(|e| e["via"].as_str().unwrap_or("").to_string())
            .collect();
        for via in ["connect", "socks5", "transparent"] {
            assert!(
                refusals.iter().any(|v| v == via),
                "no sni-mismatch refusal via {via}: {refusals:?}\n{log}"
            );
        }
        let got = srv.with_bytes();
        assert_eq!(got.len(), 6, "the allowed hellos and raw bytes: {got:?}");
        for b in &got {
            assert!(
                !b.contains("evil.guard.test") && !b.contains(marker),
                "the hello naming another host reached the server: {b:?}"
            );
        }
    });
}

/// Hole (the same one, one step later): PostgreSQL's SSLRequest before the
/// hello. A PostgreSQL client asks for TLS with an 8-byte request, the
/// server answers `S`, and only then comes the ClientHello, which hosted
/// PostgreSQL routes by its server name: a tunnel to the allowed database
/// host reached any other database behind the same front. The request goes
/// out (the server must answer it) and the hello after it is checked like
/// any other: naming another host, it is refused with a TLS alert
/// (sni-mismatch), through CONNECT and the transparent listener; naming the
/// allowed host, it reaches the server.
#[test]
fn a_hello_after_a_postgres_ssl_request_naming_another_host_is_refused() {
    each_mode(|mut case| {
        let srv = Recorder::start(&mut case);
        let p = srv.port;
        let prof = profile(&case, p);
        case.write_python(&format!(
            r#"{TLS_CLIENT}
for way, dial in (("connect", via_connect), ("transparent", via_transparent)):
    for name in (b"evil.guard.test", b"web.guard.test"):
        s, st = dial(b"web.guard.test", {p})
        s.sendall(SSLREQ)
        s.settimeout(10)
        ok = s.recv(1).decode("latin-1")
        s.sendall(hello(name))
        key = way + ("_evil" if name.startswith(b"evil") else "_allowed")
        out(key, st + "/" + ok + "/" + (answer(s) if key.endswith("evil") else got_reply(s)))
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().expect("utf-8 path")]);
        for (way, ok) in [("connect", "200"), ("transparent", "open")] {
            out.fields(&[
                (&format!("{way}_evil"), &format!("{ok}/S/{DENIED}")),
                (&format!("{way}_allowed"), &format!("{ok}/S/reply")),
            ]);
        }
        for via in ["connect", "transparent"] {
            assert!(
                events(&log).iter().any(|e| e["host"] == "web.guard.test"
                    && e["via"] == via
                    && e["decision"] == "refuse"
                    && e["why"] == "sni-mismatch"),
                "no sni-mismatch refusal via {via}\n{log}"
            );
        }
        let got = srv.with_bytes();
        assert_eq!(got.len(), 4, "every SSLRequest reaches the server: {got:?}");
        for b in &got {
            assert!(
                !b.contains("evil.guard.test"),
                "the hello naming another host reached the server: {b:?}"
            );
        }
        assert_eq!(
            got.iter().filter(|b| b.contains("web.guard.test")).count(),
            2,
            "the hellos naming the allowed host reach the server: {got:?}"
        );
    });
}

/// Timing around the check of a tunnel's first bytes on a port that may
/// carry anything: a client that waits before it sends anything (as for a
/// server's greeting) and then sends a hello naming another host is still
/// checked (the check has no deadline before the first byte), and a hello
/// begun with one byte and then paused past guard's 10-second head
/// deadline is refused then (slow-head), so the rest cannot follow once
/// the relay has opened; the same for a request line begun and paused
/// (408). Through CONNECT and the transparent listener, all six at once;
/// the server sees nothing naming the other host.
#[test]
fn a_hello_after_a_long_silence_or_a_pause_is_still_checked() {
    each_mode(|mut case| {
        let srv = Recorder::start(&mut case);
        let p = srv.port;
        let prof = profile(&case, p);
        case.write_python(&format!(
            r#"{TLS_CLIENT}
res = {{}}
def silent(way, dial):
    s, st = dial(b"web.guard.test", {p})
    time.sleep(12)
    s.sendall(hello(b"evil.guard.test"))
    res[way + "_silent"] = st + "/" + answer(s)
def paused(way, dial):
    s, st = dial(b"web.guard.test", {p})
    h = hello(b"evil.guard.test")
    s.sendall(h[:1])
    time.sleep(12)
    # guard has answered by now; read it before sending the rest.
    res[way + "_paused"] = st + "/" + answer(s)
    try:
        s.sendall(h[1:])
    except OSError:
        pass
def paused_http(way, dial):
    s, st = dial(b"web.guard.test", {p})
    r = b"GET /evil HTTP/1.1\r\nHost: evil.guard.test:{p}\r\n\r\n"
    s.sendall(r[:5])
    time.sleep(12)
    s.settimeout(10)
    try:
        d = s.recv(64)
    except OSError as e:
        d = b"errno-%d" % e.errno
    res[way + "_paused_http"] = st + "/" + (d.split(b" ")[1].decode() if d.startswith(b"HTTP/1.1 ") else d.decode("latin-1"))
    try:
        s.sendall(r[5:])
    except OSError:
        pass
threads = [threading.Thread(target=f, args=(w, d)) for f in (silent, paused, paused_http)
           for w, d in (("connect", via_connect), ("transparent", via_transparent))]
for t in threads:
    t.start()
for t in threads:
    t.join()
for k in sorted(res):
    out(k, res[k])
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().expect("utf-8 path")]);
        for (way, ok) in [("connect", "200"), ("transparent", "open")] {
            out.fields(&[
                (&format!("{way}_silent"), &format!("{ok}/{DENIED}")),
                (&format!("{way}_paused"), &format!("{ok}/{DENIED}")),
                (&format!("{way}_paused_http"), &format!("{ok}/408")),
            ]);
            for why in ["sni-mismatch", "slow-head"] {
                assert!(
                    events(&log).iter().any(|e| e["host"] == "web.guard.test"
                        && e["via"] == way
                        && e["decision"] == "refuse"
                        && e["why"] == why),
                    "no {why} refusal via {way}\n{log}"
                );
            }
        }
        for b in &srv.with_bytes() {
            assert!(
                !b.contains("evil"),
                "the hello or request naming another host reached the server: {b:?}"
            );
        }
    });
}

/// Hole: domain fronting with the Host header on an HTTP port other than
/// 80. Fronts serve plain HTTP on other ports too (CDNs on 8080, 8880,
/// 2052…), and guard checked Host headers only on port 80 (and in the
/// proxy's absolute-URI requests): a tunnel or a transparent connection to
/// the allowed host's HTTP port carried a request whose Host named any
/// other site behind the same front (here the server recorded `Host:
/// evil.guard.test`). Now a connection on any port whose first bytes are
/// an HTTP/1.x request line is served request by request as on port 80:
/// a Host naming another host is refused (403, host-mismatch) before a
/// byte goes out, through CONNECT, SOCKS5 and the transparent listener,
/// HTTP/2 with prior knowledge (whose host guard does not read) is refused
/// as on port 80 (400), and a request naming the allowed host still
/// reaches the server.
#[test]
fn an_http_request_naming_another_host_on_a_non_80_port_is_refused() {
    each_mode(|mut case| {
        let srv = Recorder::start(&mut case);
        let p = srv.port;
        let prof = profile(&case, p);
        case.write_python(&format!(
            r#"{TLS_CLIENT}
def status(s):
    s.settimeout(10)
    d = b""
    try:
        while b"\r\n" not in d:
            c = s.recv(256)
            if not c:
                break
            d += c
    except OSError as e:
        return "errno-%d" % e.errno
    # A guard answer shows its status; anything else as text (a canary
    # the server sent would then be in the output).
    if d.startswith(b"HTTP/1.1 "):
        return d.split(b" ")[1].decode()
    return d.decode("latin-1").strip() or "closed"
for way, dial in (("connect", via_connect), ("socks", via_socks), ("transparent", via_transparent)):
    s, st = dial(b"web.guard.test", {p})
    s.sendall(b"GET /evil HTTP/1.1\r\nHost: evil.guard.test:{p}\r\n\r\n")
    out(way + "_evil", st + "/" + status(s))
    s, st = dial(b"web.guard.test", {p})
    s.sendall(b"GET /ok HTTP/1.1\r\nHost: web.guard.test:{p}\r\nConnection: close\r\n\r\n")
    out(way + "_allowed", st + "/" + got_reply(s))
    s, st = dial(b"web.guard.test", {p})
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    out(way + "_h2c", st + "/" + status(s))
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().expect("utf-8 path")]);
        for (way, ok) in [("connect", "200"), ("socks", "0"), ("transparent", "open")] {
            out.fields(&[
                (&format!("{way}_evil"), &format!("{ok}/403")),
                (&format!("{way}_h2c"), &format!("{ok}/400")),
                (&format!("{way}_allowed"), &format!("{ok}/reply")),
            ]);
        }
        for via in ["http-in-tunnel", "transparent"] {
            assert!(
                events(&log).iter().any(|e| e["host"] == "web.guard.test"
                    && e["via"] == via
                    && e["decision"] == "refuse"
                    && e["why"] == "host-mismatch"),
                "no host-mismatch refusal via {via}\n{log}"
            );
        }
        let got = srv.with_bytes();
        for b in &got {
            assert!(
                !b.contains("evil") && !b.contains("PRI"),
                "the request naming another host reached the server: {b:?}"
            );
        }
        assert_eq!(
            got.iter().filter(|b| b.contains("GET /ok ")).count(),
            3,
            "the requests naming the allowed host reach the server: {got:?}"
        );
    });
}

/// A ClientHello cut into many TLS records (one handshake byte each), each
/// record in its own TCP segment with a pause between them, so that no
/// single read holds the name: guard reassembles the handshake before it
/// decides (never "no SNI yet, let it through"). The hello naming another
/// host is refused (sni-mismatch) and the server sees none of it; the same
/// cut hello naming the allowed host reaches the server whole. The
/// reassembly held (it is the parser port 443 always had); on this port,
/// which is not 443, there is a check at all since the first fix above.
#[test]
fn a_hello_cut_into_one_byte_records_and_segments_is_still_checked() {
    each_mode(|mut case| {
        let srv = Recorder::start(&mut case);
        let p = srv.port;
        let prof = profile(&case, p);
        case.write_python(&format!(
            r#"{TLS_CLIENT}
def cut(h):
    hs = h[5:]
    return [b"\x16\x03\x01\x00\x01" + hs[i:i + 1] for i in range(len(hs))]
for name in (b"evil.guard.test", b"web.guard.test"):
    s, st = via_connect(b"web.guard.test", {p})
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i, rec in enumerate(cut(hello(name))):
        s.sendall(rec)
        if i % 16 == 0:
            time.sleep(0.01)
    key = "evil" if name.startswith(b"evil") else "allowed"
    out(key, st + "/" + (answer(s) if key == "evil" else got_reply(s)))
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().expect("utf-8 path")]);
        out.fields(&[("evil", &format!("200/{DENIED}")), ("allowed", "200/reply")]);
        assert!(
            events(&log).iter().any(|e| e["host"] == "web.guard.test"
                && e["decision"] == "refuse"
                && e["why"] == "sni-mismatch"),
            "no sni-mismatch refusal\n{log}"
        );
        // The recorder keeps what its first read returned: the allowed
        // hello arrived with it (guard forwards the held records at once).
        let got = srv.with_bytes();
        assert_eq!(got.len(), 1, "only the allowed hello: {got:?}");
        assert!(got[0].starts_with("\u{16}\u{3}\u{1}"), "{got:?}");
    });
}

/// DNS name tricks against a wildcard rule (`*.guard.test`): labels guard's
/// name rules refuse but a resolver library reads otherwise — a backslash
/// (`x\` + `.guard.test`: glibc reads `x\.guard` as one label holding a
/// dot, so the name looked up would sit under `test`, not `guard.test`), a
/// dot or a NUL inside a label, `*` — get no address, over UDP and over
/// TCP, and guard makes no lookup for them; a 64-byte label is malformed.
/// Case and a 63-byte label are fine (the same and a valid name). This held.
#[test]
fn dns_names_other_parsers_read_differently_get_no_address() {
    each_mode(|case| {
        case.write_python(
            r#"
def q(labels, tcp=False):
    m = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    m += b"".join(bytes([len(l)]) + l for l in labels) + b"\0" + struct.pack(">HH", 1, 1)
    if tcp:
        s = socket.create_connection(("127.0.0.1", 53), timeout=5)
        s.sendall(struct.pack(">H", len(m)) + m)
        n = struct.unpack(">H", s.recv(2))[0]
        r = b""
        while len(r) < n:
            r += s.recv(n - len(r))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(m, ("127.0.0.1", 53))
        r = s.recv(512)
    an = struct.unpack(">H", r[6:8])[0]
    return "rcode=%d answers=%d" % (r[3] & 15, an) + ("/" + socket.inet_ntoa(r[-4:]).split(".")[0] if an else "")
G = [b"guard", b"test"]
for tcp in (False, True):
    t = "tcp_" if tcp else "udp_"
    out(t + "backslash", q([b"x\\"] + G, tcp))
    out(t + "dot", q([b"x.evil"] + G, tcp))
    out(t + "nul", q([b"x\0"] + G, tcp))
    out(t + "star", q([b"*"] + G, tcp))
    out(t + "long", q([b"a" * 64] + G, tcp))
    out(t + "case", q([b"WeB"] + [b"GUARD", b"Test"], tcp))
    out(t + "max", q([b"a" * 63] + G, tcp))
"#,
        );
        let (out, log) = run_logged(&case, &["--allow-host", "*.guard.test"]);
        for t in ["udp_", "tcp_"] {
            out.fields(&[
                (&format!("{t}backslash"), "rcode=3 answers=0"),
                (&format!("{t}dot"), "rcode=5 answers=0"),
                (&format!("{t}nul"), "rcode=5 answers=0"),
                (&format!("{t}star"), "rcode=3 answers=0"),
                (&format!("{t}long"), "rcode=1 answers=0"),
                (&format!("{t}case"), "rcode=0 answers=1/127"),
                (&format!("{t}max"), "rcode=0 answers=1/127"),
            ]);
        }
        assert!(
            !events(&log).iter().any(|e| e["event"] == "resolve"),
            "the supervisor looked a name up\n{log}"
        );
    });
}
