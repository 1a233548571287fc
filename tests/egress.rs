//! Egress: bytes leave the sandbox only to allowlisted hosts, for every
//! program. Each test runs the real binary in every mode (as the invoking
//! user and, under root, as uid 65534) against servers on the host's
//! loopback (see egress_support). Every attack check asserts that it failed,
//! why (status code, curl exit code, errno, TLS alert, event log), and that
//! nothing the host servers serve came back.

mod common;
mod egress_support;

use common::{Env, Mode, Outcome, modes};
use egress_support::{
    SERVED, SERVER_IP, default_ports, fill, http_authority, http_port, https_authority, https_port,
    rules_for, servers,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DEFAULT_PROFILE: &str = include_str!("../profiles/default.toml");

/// The default profile plus test names: `web.guard.test` pinned to the test
/// servers with the private opt-in, `noopt.guard.test` pinned there without.
/// As root the rules are the bare names (ports 443 and 80, where the
/// servers listen); as a user rules naming the servers' ports follow (see
/// [`rules_for`]).
fn write_profile(env: &Env) -> PathBuf {
    let mut allow = String::new();
    for r in rules_for("web.guard.test") {
        allow.push_str(&format!("  {{ host = \"{r}\", private = true }},\n"));
    }
    for r in rules_for("noopt.guard.test") {
        allow.push_str(&format!("  \"{r}\",\n"));
    }
    let text = format!(
        "{DEFAULT_PROFILE}\n\
         [network]\n\
         allow = [\n\
         {allow}\
         ]\n\n\
         [network.hosts]\n\
         \"web.guard.test\" = \"{SERVER_IP}\"\n\
         \"noopt.guard.test\" = \"{SERVER_IP}\"\n"
    );
    let p = env.project.write("egress.toml", &text);
    env.own();
    p
}

struct Run {
    out: Outcome,
    /// The JSON event log (`--log`).
    log: String,
}

impl Run {
    fn events(&self) -> Vec<serde_json::Value> {
        self.log
            .lines()
            // guard writes one flat JSON object per event.
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect()
    }

    /// Events about `host` with `decision`.
    fn decisions(&self, host: &str, decision: &str) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter(|e| e["host"] == host && e["decision"] == decision)
            .collect()
    }

    /// The first line of the command's output that starts with `prefix`.
    fn line(&self, prefix: &str) -> String {
        self.out
            .stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line:\n{}", self.out.all()))
            .to_string()
    }

    fn assert_refused(&self, host: &str, why: &str) {
        let found = self.decisions(host, "refuse");
        assert!(
            found.iter().any(|e| e["why"] == why),
            "no refuse event for {host} with why={why}\nlog:\n{}\n{}",
            self.log,
            self.out.all()
        );
    }
}

/// `guard run -p <test profile> --log <file> [extra] -- sh -c SCRIPT`.
fn run(env: &Env, extra: &[&str], script: &str) -> Run {
    servers();
    let profile = write_profile(env);
    let log = env.home.join("events.jsonl");
    let _ = std::fs::remove_file(&log);
    let mut args: Vec<&str> = vec![
        "run",
        "-p",
        profile.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let out = env.run(&args);
    Run {
        out,
        log: std::fs::read_to_string(&log).unwrap_or_default(),
    }
}

/// A Python script written into the project and run with python3.
fn py_script(env: &Env, name: &str, code: &str) -> String {
    env.project.write(name, code);
    env.own();
    format!("python3 {name}")
}

#[test]
fn proxy_reaches_allowed_http_and_https_servers() {
    let (web, webs) = (
        http_authority("web.guard.test"),
        https_authority("web.guard.test"),
    );
    for mode in modes() {
        let env = Env::new(mode);
        let r = run(
            &env,
            &[],
            &format!(
                "curl -sS -m 10 http://{web}/hello -w '\\nhttp_code=%{{http_code}}\\n'; \
                 curl -sS -m 10 -k https://{webs}/hello.txt -w '\\nhttps_code=%{{http_code}}\\n'"
            ),
        );
        r.out.expect_code(0);
        assert_eq!(
            r.out.field("http_code").as_deref(),
            Some("200"),
            "{}",
            r.out.all()
        );
        assert_eq!(
            r.out.field("https_code").as_deref(),
            Some("200"),
            "{}",
            r.out.all()
        );
        assert!(
            r.out.stdout.contains(&format!("path=/hello host={web} ")),
            "{}",
            r.out.stdout
        );
        assert!(
            r.out.stdout.contains(&format!("{SERVED} over TLS")),
            "{}",
            r.out.stdout
        );
        let allowed = r.decisions("web.guard.test", "allow");
        assert!(
            allowed
                .iter()
                .any(|e| e["via"] == "http-proxy" && e["port"] == http_port()),
            "{}",
            r.log
        );
        assert!(
            allowed
                .iter()
                .any(|e| e["via"] == "connect" && e["port"] == https_port()),
            "{}",
            r.log
        );
        for e in &allowed {
            assert!(e["bytes_received"].as_u64().unwrap_or(0) > 0, "{e}");
            assert!(e["duration_ms"].is_number(), "{e}");
        }
    }
}

#[test]
fn request_bodies_pass_intact_through_the_proxy() {
    for mode in modes() {
        let env = Env::new(mode);
        // 300 KB: more than one read, and curl adds `Expect: 100-continue`.
        let r = run(
            &env,
            &[],
            &fill(
                "head -c 300000 /dev/urandom > blob; \
                 python3 -c 'import sys; d=open(\"blob\",\"rb\").read(); print(\"want=%d %d\" % (len(d), sum(d)))'; \
                 curl -sS -m 20 --data-binary @blob http://@WEB@/cl -w '\\ncl_code=%{http_code}\\n'; \
                 curl -sS -m 20 -H 'Transfer-Encoding: chunked' --data-binary @blob http://@WEB@/chunked \
                   -w '\\nchunked_code=%{http_code}\\n'; \
                 curl -sS -m 20 -H 'Expect: 100-continue' --expect100-timeout 15 --data-binary @blob \
                   http://@WEB@/expect -w '\\nexpect_code=%{http_code} time=%{time_total}\\n'",
            ),
        );
        r.out.expect_code(0);
        let want = r
            .out
            .field("want")
            .unwrap_or_else(|| panic!("{}", r.out.all()));
        let (len, sum) = want.split_once(' ').unwrap();
        let expect = format!("body_len={len} body_sum={sum}");
        assert_eq!(
            r.out.field("cl_code").as_deref(),
            Some("200"),
            "{}",
            r.out.all()
        );
        assert_eq!(
            r.out.field("chunked_code").as_deref(),
            Some("200"),
            "{}",
            r.out.all()
        );
        // The proxy answers the Expect itself: no wait for curl's timeout.
        let expect_line = r.out.field("expect_code").unwrap_or_default();
        assert!(expect_line.starts_with("200 time="), "{}", r.out.all());
        let secs: f64 = expect_line.split("time=").nth(1).unwrap().parse().unwrap();
        assert!(secs < 5.0, "Expect: 100-continue stalled ({secs}s)");
        for path in ["/cl", "/chunked", "/expect"] {
            let line = r
                .out
                .stdout
                .lines()
                .find(|l| l.contains(&format!("path={path} ")))
                .unwrap_or_else(|| panic!("no response for {path}:\n{}", r.out.all()));
            assert!(line.contains(&expect), "{path}: {line} (want {expect})");
        }
    }
}

#[test]
fn non_allowed_name_gets_403_saying_how_to_allow_it() {
    // evil.guard.test is named on the default ports whoever runs the tests:
    // no rule names it on any port, and guard never dials it.
    for mode in modes() {
        let env = Env::new(mode);
        let r = run(
            &env,
            &[],
            "curl -sS -m 10 http://evil.guard.test/x -w '\\nhttp_code=%{http_code}\\n'; \
             curl -sS -m 10 -k https://evil.guard.test/ -o /dev/null -w 'connect_code=%{http_connect}\\n'; \
             echo curl_exit=$?",
        );
        r.out.expect_code(0);
        assert_eq!(
            r.out.field("http_code").as_deref(),
            Some("403"),
            "{}",
            r.out.all()
        );
        for needle in [
            "evil.guard.test is not in the network allowlist",
            "--allow-host evil.guard.test",
            "allow = [\"evil.guard.test\"]",
        ] {
            assert!(
                r.out.stdout.contains(needle),
                "{needle} missing:\n{}",
                r.out.stdout
            );
        }
        assert_eq!(
            r.out.field("connect_code").as_deref(),
            Some("403"),
            "{}",
            r.out.all()
        );
        assert_eq!(
            r.out.field("curl_exit").as_deref(),
            Some("56"),
            "{}",
            r.out.all()
        );
        r.assert_refused("evil.guard.test", "not-allowed");
        assert!(
            r.out.stderr.contains("evil.guard.test:443 (not-allowed)"),
            "{}",
            r.out.stderr
        );
        r.out.assert_no_canary(SERVED);
    }
}

const SNI_SCRIPT: &str = r#"
import socket, ssl
def tunnel(sni):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"CONNECT web.guard.test:@HTTPS_PORT@ HTTP/1.1\r\nHost: web.guard.test:@HTTPS_PORT@\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        c = s.recv(1)
        if not c:
            break
        head += c
    status = head.split(b" ")[1].decode()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        t = ctx.wrap_socket(s, server_hostname=sni)
        t.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            c = t.recv(4096)
            if not c:
                break
            data += c
        print("%s: status=%s tls=ok body=%r" % (sni, status, data))
    except (ssl.SSLError, OSError) as e:
        print("%s: status=%s tls=error reason=%s" % (sni, status, getattr(e, "reason", e)))
tunnel("web.guard.test")
tunnel("evil.guard.test")
tunnel(None)
"#;

#[test]
fn connect_with_a_different_or_missing_sni_is_refused() {
    for mode in modes() {
        let env = Env::new(mode);
        let script = py_script(&env, "sni.py", &fill(SNI_SCRIPT));
        let r = run(&env, &[], &script);
        r.out.expect_code(0);
        let line = |p: &str| r.line(p);
        let good = line("web.guard.test:");
        assert!(good.contains("tls=ok") && good.contains(SERVED), "{good}");
        for bad in [line("evil.guard.test:"), line("None:")] {
            assert!(bad.contains("status=200"), "{bad}");
            assert!(
                bad.contains("tls=error reason=TLSV1_ALERT_ACCESS_DENIED"),
                "{bad}"
            );
            assert!(!bad.contains(SERVED), "{bad}");
        }
        r.assert_refused("web.guard.test", "sni-mismatch");
    }
}

/// Sends a hand-built ClientHello naming the allowed host, once with an
/// encrypted inner hello (ECH) and once without, through CONNECT and the
/// transparent path, and prints the first bytes that come back.
const ECH_SCRIPT: &str = r#"
import socket, struct
def ext(ty, data):
    return struct.pack(">HH", ty, len(data)) + data
def hello(ech):
    name = b"web.guard.test"
    sni = struct.pack(">HBH", len(name) + 3, 0, len(name)) + name
    exts = ext(0, sni) + ext(0x2b, b"\x02\x03\x04")
    if ech:
        # outer ECH: type, kdf, aead, config id, enc, payload (ciphertext)
        exts += ext(0xfe0d, b"\x00\x00\x01\x00\x01\x07" + struct.pack(">H", 32) + b"k" * 32
                    + struct.pack(">H", 64) + b"c" * 64)
    body = b"\x03\x03" + b"r" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack(">H", len(exts)) + exts
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs
def answer(s):
    s.settimeout(10)
    try:
        return s.recv(64)[:7].hex() or "closed"
    except OSError as e:
        return "error:%s" % e
def via_connect(ech):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"CONNECT web.guard.test:@HTTPS_PORT@ HTTP/1.1\r\nHost: web.guard.test:@HTTPS_PORT@\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    s.sendall(hello(ech))
    print("connect ech=%s status=%s answer=%s" % (ech, head.split(b" ")[1].decode(), answer(s)))
def transparent(ech):
    s = socket.create_connection(("web.guard.test", @HTTPS_PORT@), timeout=10)
    s.sendall(hello(ech))
    print("transparent ech=%s answer=%s" % (ech, answer(s)))
for ech in (True, False):
    via_connect(ech)
    transparent(ech)
"#;

/// Behind a CDN the outer hello can name the allowed site while the
/// encrypted inner hello (ECH) names another site at the same address:
/// such hellos are refused on both paths, and the same hello without ECH
/// passes the check (the server itself then answers).
#[test]
fn an_encrypted_client_hello_is_refused() {
    const ACCESS_DENIED: &str = "15030300020231";
    for mode in modes() {
        let env = Env::new(mode);
        let script = py_script(&env, "ech.py", &fill(ECH_SCRIPT));
        let r = run(&env, &[], &script);
        r.out.expect_code(0);
        let line = |p: &str| r.line(p);
        for path in ["connect", "transparent"] {
            let refused = line(&format!("{path} ech=True"));
            assert!(
                refused.ends_with(&format!("answer={ACCESS_DENIED}")),
                "{refused}"
            );
            let passed = line(&format!("{path} ech=False"));
            assert!(
                !passed.contains(ACCESS_DENIED) && !passed.contains("answer=closed"),
                "the hello without ECH should reach the server: {passed}"
            );
        }
        assert!(line("connect ech=True").contains("status=200"));
        let refusals: Vec<_> = r
            .decisions("web.guard.test", "refuse")
            .into_iter()
            .filter(|e| e["why"] == "encrypted-client-hello")
            .collect();
        assert_eq!(refusals.len(), 2, "one per path\n{}", r.log);
        assert!(
            refusals
                .iter()
                .all(|e| e["reason"].as_str().is_some_and(|w| w.contains("(ECH)"))),
            "{}",
            r.log
        );
        r.out.assert_no_canary(SERVED);
    }
}

#[test]
fn host_header_must_agree_with_the_target() {
    for mode in modes() {
        let env = Env::new(mode);
        let r = run(
            &env,
            &[],
            &fill(
                "curl -sS -m 10 http://@WEB@/x -H 'Host: evil.guard.test' -w '\\ncode1=%{http_code}\\n'; \
                 curl -sS -m 10 http://@WEB@/x -H 'Host: web.guard.test:8080' -w '\\ncode2=%{http_code}\\n'",
            ),
        );
        r.out.expect_code(0);
        assert_eq!(
            r.out.field("code1").as_deref(),
            Some("403"),
            "{}",
            r.out.all()
        );
        assert_eq!(
            r.out.field("code2").as_deref(),
            Some("403"),
            "{}",
            r.out.all()
        );
        assert!(
            r.out
                .stdout
                .contains("the Host header (evil.guard.test) does not match"),
            "{}",
            r.out.stdout
        );
        r.assert_refused("web.guard.test", "host-mismatch");
        r.out.assert_no_canary(SERVED);
    }
}

#[test]
fn ip_literals_are_refused_by_the_proxies() {
    let lo = servers().loopback.port();
    for mode in modes() {
        let env = Env::new(mode);
        // --noproxy '' makes curl use the proxy even for loopback addresses.
        let mut script = String::new();
        for u in [
            format!("http://127.0.0.1:{lo}/"),
            "http://169.254.169.254/latest/meta-data/".into(),
            "http://[::1]/".into(),
            format!("http://{SERVER_IP}/"),
        ] {
            script.push_str(&format!(
                "curl --noproxy '' -x http://127.0.0.1:3128 -sS -m 10 '{u}' -w '\\nurl={u} code=%{{http_code}}\\n'; "
            ));
        }
        script.push_str(
            "curl --noproxy '' -x http://127.0.0.1:3128 -sS -m 10 -k https://127.0.0.1/ -o /dev/null -w 'tls_v4=%{http_connect}\\n'; \
             curl --noproxy '' -x http://127.0.0.1:3128 -sS -m 10 -k 'https://[::1]/' -o /dev/null -w 'tls_v6=%{http_connect}\\n'; \
             curl -sS -m 10 --socks5 127.0.0.1:1080 http://169.254.169.254/ ; echo socks_exit=$?",
        );
        let r = run(&env, &[], &script);
        r.out.expect_code(0);
        for u in [
            format!("http://127.0.0.1:{lo}/"),
            "http://169.254.169.254/latest/meta-data/".into(),
            "http://[::1]/".into(),
            format!("http://{SERVER_IP}/"),
        ] {
            assert!(
                r.out.stdout.contains(&format!("url={u} code=403")),
                "{u} not refused:\n{}",
                r.out.all()
            );
        }
        assert!(
            r.out.stdout.contains("169.254.169.254 is an IP address"),
            "{}",
            r.out.stdout
        );
        assert_eq!(
            r.out.field("tls_v4").as_deref(),
            Some("403"),
            "{}",
            r.out.all()
        );
        assert_eq!(
            r.out.field("tls_v6").as_deref(),
            Some("403"),
            "{}",
            r.out.all()
        );
        // curl: 97 = proxy handshake failed; SOCKS reply 2 = not allowed by ruleset.
        assert_eq!(
            r.out.field("socks_exit").as_deref(),
            Some("97"),
            "{}",
            r.out.all()
        );
        assert!(r.out.stderr.contains("(2)"), "{}", r.out.stderr);
        for host in ["169.254.169.254", "127.0.0.1", "[::1]"] {
            r.assert_refused(host, "ip-literal");
        }
        r.out.assert_no_canary(SERVED);
    }
}

#[test]
fn a_name_pinned_to_a_private_address_needs_the_opt_in() {
    let noopt = http_authority("noopt.guard.test");
    for mode in modes() {
        let env = Env::new(mode);
        // The transparent request goes to port 80 also when the tests run
        // as a user (where the HTTP server is on another port): there guard
        // reads the request and answers a refusal with its 403 page (on
        // other ports it refuses without reading what the client sends, so
        // without an HTTP answer), and it refuses this one before it dials
        // (the pinned address is checked first), server or not.
        let r = run(
            &env,
            &[],
            &format!(
                "curl -sS -m 10 http://{noopt}/ -w '\\nproxy_code=%{{http_code}}\\n'; \
                 curl --noproxy '*' -sS -m 10 http://noopt.guard.test/ -w '\\ntransparent_code=%{{http_code}}\\n'"
            ),
        );
        r.out.expect_code(0);
        assert_eq!(
            r.out.field("proxy_code").as_deref(),
            Some("403"),
            "{}",
            r.out.all()
        );
        assert_eq!(
            r.out.field("transparent_code").as_deref(),
            Some("403"),
            "{}",
            r.out.all()
        );
        assert!(
            r.out
                .stdout
                .contains(&format!("resolves to {SERVER_IP}, a loopback address")),
            "{}",
            r.out.stdout
        );
        assert!(r.out.stdout.contains("private = true"), "{}", r.out.stdout);
        r.assert_refused("noopt.guard.test", "non-public-address");
        r.out.assert_no_canary(SERVED);
    }
}

#[test]
fn socks5_allows_names_and_refuses_others() {
    for mode in modes() {
        let env = Env::new(mode);
        let r = run(
            &env,
            &[],
            &fill(
                "curl -sS -m 10 --socks5-hostname 127.0.0.1:1080 http://@WEB@/s -w '\\ncode=%{http_code}\\n'; \
                 curl -sS -m 10 --socks5-hostname 127.0.0.1:1080 http://evil.guard.test/ ; echo evil_exit=$?",
            ),
        );
        r.out.expect_code(0);
        assert_eq!(
            r.out.field("code").as_deref(),
            Some("200"),
            "{}",
            r.out.all()
        );
        assert!(r.out.stdout.contains(SERVED), "{}", r.out.stdout);
        assert_eq!(
            r.out.field("evil_exit").as_deref(),
            Some("97"),
            "{}",
            r.out.all()
        );
        r.assert_refused("evil.guard.test", "not-allowed");
    }
}

#[test]
fn transparent_mode_for_programs_that_ignore_proxy_variables() {
    // As root the servers are on ports 80 and 443: the listeners of a bare
    // name rule. As a user, those of the rules naming the servers' ports.
    let (web, webs) = (
        http_authority("web.guard.test"),
        https_authority("web.guard.test"),
    );
    for mode in modes() {
        let env = Env::new(mode);
        let r = run(
            &env,
            &[],
            &format!(
                "getent hosts web.guard.test | sed 's/^/getent=/'; \
                 curl --noproxy '*' -sS -m 10 http://{web}/t -w '\\ncode=%{{http_code}}\\n'; \
                 env -u https_proxy -u HTTPS_PROXY -u ALL_PROXY -u all_proxy \
                   curl -sS -m 10 -k https://{webs}/hello.txt -w '\\ntls_code=%{{http_code}}\\n'; \
                 curl --noproxy '*' -sS -m 10 http://evil.guard.test/ ; echo evil_exit=$?"
            ),
        );
        r.out.expect_code(0);
        let ip = r.out.field("getent").unwrap_or_default();
        assert!(
            ip.starts_with("127.77."),
            "fake address expected: {}",
            r.out.all()
        );
        assert_eq!(
            r.out.field("code").as_deref(),
            Some("200"),
            "{}",
            r.out.all()
        );
        assert!(
            r.out.stdout.contains(&format!("path=/t host={web} ")),
            "{}",
            r.out.stdout
        );
        assert_eq!(
            r.out.field("tls_code").as_deref(),
            Some("200"),
            "{}",
            r.out.all()
        );
        // curl exit 6: could not resolve host — refused at DNS.
        assert_eq!(
            r.out.field("evil_exit").as_deref(),
            Some("6"),
            "{}",
            r.out.all()
        );
        let t = r.decisions("web.guard.test", "allow");
        assert!(
            t.iter()
                .any(|e| e["via"] == "transparent" && e["port"] == http_port()),
            "{}",
            r.log
        );
        assert!(
            t.iter()
                .any(|e| e["via"] == "transparent" && e["port"] == https_port()),
            "{}",
            r.log
        );
        assert!(
            !r.decisions("evil.guard.test", "refused (not allowlisted)")
                .is_empty(),
            "{}",
            r.log
        );
    }
}

const DNS_SCRIPT: &str = r#"
import random, socket, string, struct
def query(name, qtype=1, tcp=False):
    q = struct.pack(">HHHHHH", random.randint(0, 65535), 0x0100, 1, 0, 0, 0)
    for l in name.split("."):
        q += bytes([len(l)]) + l.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    if tcp:
        s = socket.create_connection(("127.0.0.1", 53), timeout=5)
        s.sendall(struct.pack(">H", len(q)) + q)
        n = struct.unpack(">H", s.recv(2))[0]
        r = b""
        while len(r) < n:
            r += s.recv(n - len(r))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(q, ("127.0.0.1", 53))
        r = s.recv(512)
    rcode = r[3] & 15
    ancount = struct.unpack(">H", r[6:8])[0]
    addr = ".".join(str(b) for b in r[-4:]) if ancount else "-"
    print("dns %s tcp=%s rcode=%d answers=%d addr=%s" % (name, tcp, rcode, ancount, addr))
for i in range(5):
    label = "".join(random.choice(string.ascii_lowercase) for _ in range(20))
    query(label + ".exfil.example", tcp=(i % 2 == 1))
    query(label + ".exfil.example", qtype=16)
query("web.guard.test")
query("WEB.guard.test", tcp=True)
"#;

#[test]
fn dns_answers_allowlisted_names_only_and_never_asks_upstream() {
    for mode in modes() {
        let env = Env::new(mode);
        let script = py_script(&env, "dns.py", DNS_SCRIPT);
        let r = run(
            &env,
            &[],
            &format!("{script}; getent hosts not-allowed.example; echo getent_exit=$?"),
        );
        r.out.expect_code(0);
        let lines: Vec<&str> = r
            .out
            .stdout
            .lines()
            .filter(|l| l.starts_with("dns "))
            .collect();
        assert_eq!(lines.len(), 12, "{}", r.out.all());
        let mut random_names = Vec::new();
        for l in &lines {
            let name = l.split_whitespace().nth(1).unwrap().to_ascii_lowercase();
            if name.ends_with(".exfil.example") {
                assert!(l.contains("rcode=3 answers=0"), "{l}");
                random_names.push(name);
            } else {
                assert!(l.contains("rcode=0 answers=1 addr=127.77."), "{l}");
            }
        }
        assert_eq!(
            r.out.field("getent_exit").as_deref(),
            Some("2"),
            "{}",
            r.out.all()
        );
        // Every random name was refused by guard's DNS, and the supervisor
        // resolved none of them (no "resolve" event at all: the allowed
        // name is pinned).
        for n in &random_names {
            let refused = r.decisions(n, "refused (not allowlisted)");
            assert!(!refused.is_empty(), "{n} not in the log:\n{}", r.log);
            assert!(refused.iter().all(|e| e["upstream"] == false));
        }
        let resolves: Vec<_> = r
            .events()
            .into_iter()
            .filter(|e| e["event"] == "resolve")
            .collect();
        assert!(
            resolves.is_empty(),
            "upstream lookups happened: {resolves:?}"
        );
    }
}

#[test]
fn udp_and_direct_tcp_to_outside_addresses_fail() {
    let lo = servers().loopback.port();
    for mode in modes() {
        let env = Env::new(mode);
        let code = format!(
            r#"
import socket
def udp(h, p, fam=socket.AF_INET):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", (h, p)); print("udp %s:%d sent" % (h, p))
    except OSError as e:
        print("udp %s:%d errno=%d" % (h, p, e.errno))
def tcp(h, p, fam=socket.AF_INET):
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(5)
    try:
        s.connect((h, p)); print("tcp %s:%d connected %r" % (h, p, s.recv(200)))
    except OSError as e:
        print("tcp %s:%d errno=%d" % (h, p, e.errno))
udp("8.8.8.8", 53); udp("1.1.1.1", 443); udp("2001:4860:4860::8888", 53, socket.AF_INET6)
tcp("1.1.1.1", 443); tcp("169.254.169.254", 80); tcp("{SERVER_IP}", 8080)
tcp("2606:4700::1111", 443, socket.AF_INET6); tcp("127.0.0.1", {lo})
"#
        );
        let script = py_script(&env, "net.py", &code);
        let r = run(&env, &[], &script);
        r.out.expect_code(0);
        for expect in [
            "udp 8.8.8.8:53 errno=101",
            "udp 1.1.1.1:443 errno=101",
            "udp 2001:4860:4860::8888:53 errno=101",
            "tcp 1.1.1.1:443 errno=101",
            "tcp 169.254.169.254:80 errno=101",
            &format!("tcp {SERVER_IP}:8080 errno=111"),
            "tcp 2606:4700::1111:443 errno=101",
            &format!("tcp 127.0.0.1:{lo} errno=111"),
        ] {
            assert!(
                r.out.stdout.contains(expect),
                "{expect} missing:\n{}",
                r.out.all()
            );
        }
        r.out.assert_no_canary(SERVED);
    }
}

#[test]
fn git_clone_over_http_through_the_proxy() {
    for mode in modes() {
        let env = Env::new(mode);
        let r = run(
            &env,
            &[],
            &fill("git clone -q http://@WEB@/git/repo.git cloned && cat cloned/README"),
        );
        r.out.expect_code(0);
        assert!(
            r.out.stdout.contains(&format!("{SERVED} via git")),
            "{}",
            r.out.all()
        );
        let posts = r
            .decisions("web.guard.test", "allow")
            .into_iter()
            .filter(|e| e["via"] == "http-proxy")
            .count();
        assert!(posts >= 2, "expected several proxied requests:\n{}", r.log);
    }
}

/// The registry the machine's npm uses (never written in the repo).
fn npm_registry() -> (String, String) {
    let out = std::process::Command::new("npm")
        .args(["config", "get", "registry"])
        .output()
        .expect("npm is required for this test (apt-get install npm)");
    assert!(out.status.success(), "npm config get registry failed");
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let host = rest.split(['/', ':']).next().unwrap_or("").to_string();
    assert!(!host.is_empty(), "no host in registry URL {url:?}");
    (url, host)
}

#[test]
fn npm_reaches_the_real_registry_only_when_allowed() {
    let (url, host) = npm_registry();
    // Allowed, npm retries as it does by default: a passing network error
    // on the way to the real registry is not what this test is about.
    // Refused, it does not (a refusal is not retried into minutes).
    let npm = |retries: u32| {
        format!(
            "npm view is-number version --registry={url} --fetch-retries={retries} --no-update-notifier --no-audit 2>&1; echo npm_exit=$?"
        )
    };
    for mode in modes() {
        let env = Env::new(mode);
        let r = run(&env, &["--allow-host", &host], &npm(2));
        r.out.expect_code(0);
        assert_eq!(
            r.out.field("npm_exit").as_deref(),
            Some("0"),
            "{}",
            r.out.all()
        );
        let version = r.out.stdout.lines().next().unwrap_or("");
        assert!(
            version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok()),
            "not a version: {version:?}\n{}",
            r.out.all()
        );
        assert!(!r.decisions(&host, "allow").is_empty(), "{}", r.log);

        let r = run(&env, &[], &npm(0));
        r.out.expect_code(0);
        let code = r.out.field("npm_exit").unwrap_or_default();
        assert_ne!(code, "0", "{}", r.out.all());
        assert_ne!(
            code,
            "127",
            "npm missing inside the sandbox:\n{}",
            r.out.all()
        );
        assert!(r.out.stdout.contains("403"), "{}", r.out.all());
        r.assert_refused(&host, "not-allowed");
    }
}

const KEEPALIVE_SCRIPT: &str = r#"
import socket
def read_response(f):
    status = f.readline().decode().strip()
    length = 0
    while True:
        h = f.readline().decode().strip()
        if not h:
            break
        k, v = h.split(":", 1)
        if k.lower() == "content-length":
            length = int(v)
    return status, f.read(length).decode()
def get(host, path):
    return ("GET http://%s%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, path, host)).encode()
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
f = s.makefile("rb")
for host, path in [("@WEB@", "/1"), ("@WEB@", "/2"), ("@WEB@", "/3"),
                   ("evil.guard.test", "/4"), ("@WEB@", "/5")]:
    s.sendall(get(host, path))
    st, body = read_response(f)
    print("seq %s %s | %s" % (path, st, body.splitlines()[0] if body else ""))
s.close()
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
f = s.makefile("rb")
s.sendall(get("@WEB@", "/p1") + get("evil.guard.test", "/p2") + get("@WEB@", "/p3"))
for path in ["/p1", "/p2", "/p3"]:
    st, body = read_response(f)
    print("pipe %s %s | %s" % (path, st, body.splitlines()[0] if body else ""))
s.close()
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(b"CONNECT web.guard.test:@HTTP_PORT@ HTTP/1.1\r\nHost: web.guard.test:@HTTP_PORT@\r\n\r\n")
f = s.makefile("rb")
print("tunnel", f.readline().decode().strip()); f.readline()
ok = 0
for i in range(100):
    s.sendall(("GET /t%d HTTP/1.1\r\nHost: @WEB@\r\n\r\n" % i).encode())
    st, body = read_response(f)
    ok += st.startswith("HTTP/1.1 200") and ("path=/t%d " % i) in body
print("tunnel_ok=%d" % ok)
s.sendall(b"GET /x HTTP/1.1\r\nHost: evil.guard.test\r\n\r\n")
st, body = read_response(f)
print("tunnel_evil", st)
"#;

#[test]
fn keep_alive_requests_are_each_checked() {
    for mode in modes() {
        let env = Env::new(mode);
        let script = py_script(&env, "ka.py", &fill(KEEPALIVE_SCRIPT));
        let r = run(&env, &[], &script);
        r.out.expect_code(0);
        let line = |p: &str| r.line(p);
        let conn = |l: &str| {
            l.split("conn=")
                .nth(1)
                .and_then(|c| c.split_whitespace().next())
                .map(str::to_string)
        };
        let first = line("seq /1 ");
        assert!(first.contains("HTTP/1.1 200"), "{first}");
        for p in ["seq /2 ", "seq /3 ", "seq /5 "] {
            let l = line(p);
            assert!(l.contains("HTTP/1.1 200"), "{l}");
            // One upstream connection served the whole client connection.
            assert_eq!(conn(&l), conn(&first), "{}", r.out.stdout);
        }
        let refused = line("seq /4 ");
        assert!(refused.contains("HTTP/1.1 403"), "{refused}");
        assert!(!refused.contains(SERVED), "{refused}");
        assert!(
            line("pipe /p1 ").contains("HTTP/1.1 200"),
            "{}",
            r.out.stdout
        );
        assert!(
            line("pipe /p2 ").contains("HTTP/1.1 403"),
            "{}",
            r.out.stdout
        );
        assert!(
            line("pipe /p3 ").contains("HTTP/1.1 200"),
            "{}",
            r.out.stdout
        );
        assert!(line("tunnel ").contains("200"), "{}", r.out.stdout);
        assert_eq!(
            r.out.field("tunnel_ok").as_deref(),
            Some("100"),
            "{}",
            r.out.all()
        );
        assert!(line("tunnel_evil").contains("403"), "{}", r.out.stdout);
        assert_eq!(
            r.decisions("evil.guard.test", "refuse").len(),
            2,
            "{}",
            r.log
        );
        assert!(r.decisions("evil.guard.test:80", "refuse").is_empty());
        assert!(
            r.decisions("web.guard.test", "refuse")
                .iter()
                .any(|e| e["why"] == "host-mismatch"),
            "{}",
            r.log
        );
    }
}

const SIZES_SCRIPT: &str = r#"
import http.client, socket, time
served = "@SERVED@\n".encode()
pat = lambda n: bytes((i * 7 + 3) % 251 for i in range(n))
# Around the proxy's first read (2 KiB), its largest head-and-body write
# (16 KiB) and its splice path beyond.
sizes = [0, 1, 1500, 2047, 2048, 2100, 4000, 16383, 16384, 16385, 18500, 70000, 300000]
c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=20)
ok = 0
for n in sizes:
    body = pat(n)
    c.request("POST", "http://@WEB@/cl", body=body, headers={"Host": "@WEB@"})
    text = c.getresponse().read().decode()
    if "body_len=%d body_sum=%d" % (n, sum(body)) in text:
        ok += 1
    else:
        print("bad upload", n, text)
    for kind in ("size", "chunked"):
        c.request("GET", "http://@WEB@/%s/%d" % (kind, n), headers={"Host": "@WEB@"})
        got = c.getresponse().read()
        if got == served + pat(n):
            ok += 1
        else:
            print("bad download", kind, n, len(got))
print("sizes_ok=%d/%d" % (ok, 3 * len(sizes)))
# An event stream: the first event arrives before the server sends the second.
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(b"GET http://@WEB@/events HTTP/1.1\r\nHost: @WEB@\r\n\r\n")
t0, data, first = time.time(), b"", None
while not data.endswith(b"0\r\n\r\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
    if first is None and b"tick-1" in data:
        first = time.time() - t0
print("events_first=%s" % ("%.2f" % first if first is not None else "none"))
print("events_total=%.2f" % (time.time() - t0))
print("events_both=%s" % (b"tick-1" in data and b"tick-2" in data))
"#;

/// Request and response bodies of every size class pass intact, one after
/// the other on one kept-alive connection: whether they go out with their
/// head, partly buffered, or spliced, with a length or chunked; and an
/// event stream is passed on event by event.
#[test]
fn bodies_of_every_size_pass_intact_on_one_connection() {
    for mode in modes() {
        let env = Env::new(mode);
        let script = py_script(
            &env,
            "sizes.py",
            &fill(&SIZES_SCRIPT.replace("@SERVED@", SERVED)),
        );
        let r = run(&env, &[], &script);
        r.out.expect_code(0);
        assert_eq!(
            r.out.field("sizes_ok").as_deref(),
            Some("39/39"),
            "{}",
            r.out.all()
        );
        assert_eq!(r.out.field("events_both").as_deref(), Some("True"));
        let secs = |k: &str| -> f64 {
            r.out
                .field(k)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k}:\n{}", r.out.all()))
        };
        // The server sends the second event a second after the first: the
        // first arrived well before the end. (Not timed from the request:
        // the connection's setup may take a while on a loaded machine.)
        let gap = secs("events_total") - secs("events_first");
        assert!(gap >= 0.5, "{gap:.2} s apart\n{}", r.out.all());
    }
}

const UPGRADE_SCRIPT: &str = r#"
import socket, sys
def run(mode):
    host = "evil.guard.test" if mode == "mismatch" else "@WEB@"
    if mode == "transparent":
        s = socket.create_connection(("web.guard.test", @HTTP_PORT@), timeout=10)
    else:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    f = s.makefile("rb")
    target = "http://@WEB@/upgrade"
    if mode == "transparent":
        target = "/upgrade"
    if mode == "tunnel":
        s.sendall(b"CONNECT web.guard.test:@HTTP_PORT@ HTTP/1.1\r\nHost: web.guard.test:@HTTP_PORT@\r\n\r\n")
        print("tunnel_connect=" + f.readline().decode().strip())
        while f.readline() not in (b"\r\n", b""): pass
        target = "/upgrade"
    # The first message rides in the same write as the upgrade request.
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
               % (target, host)).encode() + b"first\n")
    print("%s_status=%s" % (mode, f.readline().decode().strip()))
    while f.readline() not in (b"\r\n", b""): pass
    if mode == "mismatch":
        s.close()
        return
    print("%s_greet=%s" % (mode, f.readline().decode().strip()))
    print("%s_echo1=%s" % (mode, f.readline().decode().strip()))
    s.sendall(b"second\n")
    print("%s_echo2=%s" % (mode, f.readline().decode().strip()))
    # After the upgrade guard no longer reads requests: this line goes to
    # the same server as the rest, whatever it names.
    s.sendall(b"GET http://evil.guard.test/ HTTP/1.1\r\n")
    print("%s_echo3=%s" % (mode, f.readline().decode().strip()))
    # Half-close: the server sees the end, answers with its own.
    s.shutdown(socket.SHUT_WR)
    print("%s_eof=%r" % (mode, f.read()))
    s.close()
for mode in sys.argv[1:]:
    run(mode)
"#;

/// HTTP Upgrade (WebSocket and the like) on plain HTTP: the upgrade request
/// is checked like any other (Host included), and after `101` the
/// connection is relayed both ways, bytes that arrived early included, to
/// the approved server only, with end of stream passed on.
#[test]
fn http_upgrade_is_checked_then_relayed_both_ways() {
    for mode in modes() {
        let env = Env::new(mode);
        let script = py_script(&env, "upgrade.py", &fill(UPGRADE_SCRIPT));
        let web = http_authority("web.guard.test");
        let r = run(
            &env,
            &[],
            &format!("{script} proxy transparent tunnel mismatch"),
        );
        r.out.expect_code(0);
        let field = |k: &str| {
            r.out
                .field(k)
                .unwrap_or_else(|| panic!("no {k}= line:\n{}", r.out.all()))
        };
        assert!(
            field("tunnel_connect").starts_with("HTTP/1.1 200"),
            "{}",
            r.out.all()
        );
        for via in ["proxy", "transparent", "tunnel"] {
            assert_eq!(
                field(&format!("{via}_status")),
                "HTTP/1.1 101 Switching Protocols",
                "{}",
                r.out.all()
            );
            let greet = field(&format!("{via}_greet"));
            assert!(
                greet.starts_with(&format!("{SERVED} upgraded"))
                    && greet.ends_with(&format!("host={web}")),
                "{greet}"
            );
            assert_eq!(field(&format!("{via}_echo1")), "echo: first");
            assert_eq!(field(&format!("{via}_echo2")), "echo: second");
            assert_eq!(
                field(&format!("{via}_echo3")),
                "echo: GET http://evil.guard.test/ HTTP/1.1"
            );
            assert_eq!(field(&format!("{via}_eof")), "b''");
        }
        assert!(
            field("mismatch_status").starts_with("HTTP/1.1 403"),
            "{}",
            r.out.all()
        );
        r.assert_refused("web.guard.test", "host-mismatch");
        // Nothing after the upgrade was taken for a request.
        assert!(
            r.decisions("evil.guard.test", "refuse").is_empty(),
            "{}",
            r.log
        );
        for via in ["http-proxy", "transparent", "http-in-tunnel"] {
            assert!(
                r.events().iter().any(|e| e["via"] == via
                    && e["host"] == "web.guard.test"
                    && e["decision"] == "allow"
                    && e["bytes_sent"].as_u64().is_some_and(|n| n > 0)
                    && e["bytes_received"].as_u64().is_some_and(|n| n > 0)),
                "no allow event via {via}:\n{}",
                r.log
            );
        }
    }
}

const LOAD_SCRIPT: &str = r#"
import os, socket, sys, threading, time
def one(path, results, i, close=True):
    try:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=30)
        s.sendall(("GET http://@WEB@%s HTTP/1.1\r\nHost: @WEB@\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
        s.close()
        results[i] = b"SERVED-BY-HOST" in data
    except OSError as e:
        results[i] = False
mode = sys.argv[1]
if mode == "concurrent":
    n = 500
    results = [False] * n
    ts = [threading.Thread(target=one, args=("/slow", results, i)) for i in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("concurrent_ok=%d" % sum(results))
else:
    n = 10000
    results = [False] * n
    def worker(k):
        for i in range(k, n, 16):
            if i % 20 == 0:
                # A refused request, and a CONNECT that is dropped at once.
                s = socket.create_connection(("127.0.0.1", 3128), timeout=30)
                s.sendall(b"GET http://evil.guard.test/ HTTP/1.1\r\nHost: evil.guard.test\r\n\r\n")
                results[i] = b" 403 " in s.recv(4096)
                s.close()
            elif i % 20 == 1:
                s = socket.create_connection(("127.0.0.1", 3128), timeout=30)
                s.sendall(b"CONNECT web.guard.test:@HTTPS_PORT@ HTTP/1.1\r\n\r\n")
                results[i] = b" 200 " in s.recv(4096)
                s.close()
            else:
                one("/n", results, i)
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("sequential_ok=%d" % sum(results))
"#;

/// The supervisor's descriptors, except the protected-path watcher's
/// inotify instance (opened half a second into the session, whenever that
/// falls in this test).
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .map_or(true, |t| t != std::path::Path::new("anon_inode:inotify"))
        })
        .count()
}

fn wait_for(path: &std::path::Path, what: &str, child: &mut std::process::Child) {
    let start = Instant::now();
    while !path.exists() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("guard exited ({st}) before {what}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn load_500_concurrent_and_no_fd_leak_after_10000_connections() {
    for mode in modes() {
        let env = Env::new(mode);
        servers();
        let profile = write_profile(&env);
        env.project.write("load.py", &fill(LOAD_SCRIPT));
        env.own();
        let script = "python3 load.py concurrent; touch ready; while [ ! -e go ]; do sleep 0.02; done; \
                      python3 load.py sequential; touch done; while [ ! -e end ]; do sleep 0.02; done";
        let mut child = env
            .guard(&[
                "run",
                "-q",
                "-p",
                profile.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                script,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn guard");
        let pid = child.id(); // setpriv execs guard: same pid in both modes
        wait_for(
            &env.project.join("ready"),
            "the concurrent phase",
            &mut child,
        );
        // The concurrent phase's connections close asynchronously too: the
        // baseline is the count once it holds still for a moment.
        let start = Instant::now();
        let mut baseline = fd_count(pid);
        let mut still = 0;
        while still < 5 && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
            let now = fd_count(pid);
            still = if now == baseline { still + 1 } else { 0 };
            baseline = now;
        }
        std::fs::write(env.project.join("go"), "").unwrap();
        wait_for(&env.project.join("done"), "10,000 connections", &mut child);
        // Connections close asynchronously; give the proxy a moment.
        let start = Instant::now();
        let mut now = fd_count(pid);
        while now != baseline && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
            now = fd_count(pid);
        }
        std::fs::write(env.project.join("end"), "").unwrap();
        let out = Outcome::from(child.wait_with_output().expect("wait guard"));
        out.expect_code(0);
        assert_eq!(
            out.field("concurrent_ok").as_deref(),
            Some("500"),
            "{}",
            out.all()
        );
        assert_eq!(
            out.field("sequential_ok").as_deref(),
            Some("10000"),
            "{}",
            out.all()
        );
        assert_eq!(
            now, baseline,
            "supervisor fds: {baseline} before, {now} after 10,000 connections ({mode:?})"
        );
    }
}

#[test]
fn no_network_means_no_listeners_and_no_proxy_variables() {
    for mode in modes() {
        let env = Env::new(mode);
        let code = r#"
import socket
for p in (3128, 1080, 53, 80, 443):
    s = socket.socket(); s.settimeout(3)
    try:
        s.connect(("127.0.0.1", p)); print("port %d open" % p)
    except OSError as e:
        print("port %d errno=%d" % (p, e.errno))
"#;
        let script = py_script(&env, "ports.py", code);
        let out = env.run(&[
            "run",
            "--no-network",
            "--",
            "sh",
            "-c",
            &format!("{script}; env | grep -ci proxy; curl -sS -m 5 http://web.guard.test/; echo curl_exit=$?"),
        ]);
        out.expect_code(0);
        for p in [3128, 1080, 53, 80, 443] {
            assert!(
                out.stdout.contains(&format!("port {p} errno=111")),
                "{p}:\n{}",
                out.all()
            );
        }
        assert!(
            out.stdout.lines().any(|l| l == "0"),
            "proxy variables set:\n{}",
            out.all()
        );
        assert_eq!(
            out.field("curl_exit").as_deref(),
            Some("6"),
            "{}",
            out.all()
        );
    }
}

#[test]
fn explain_shows_the_network_policy() {
    let env = Env::new(Mode::Invoker);
    let profile = write_profile(&env);
    let out = env.run(&[
        "explain",
        "-p",
        profile.to_str().unwrap(),
        "--allow-host",
        "*.example.org:8443",
        "--",
        "true",
    ]);
    out.expect_code(0);
    for needle in [
        "allow web.guard.test",
        "private addresses allowed",
        "allow *.example.org",
        "ports 8443  [--allow-host]",
        &format!("pin   web.guard.test -> {SERVER_IP}"),
        "http proxy 127.0.0.1:3128",
        "transparent 0.0.0.0:8443",
        "file     /etc/resolv.conf (generated, read-only)",
        "HTTPS_PROXY",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} missing:\n{}",
            out.stdout
        );
    }
    let out = env.run(&["explain", "--no-network", "--", "true"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("network:  none (--no-network"),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_network_configuration_is_a_clear_error() {
    let env = Env::new(Mode::Invoker);
    let out = env.run(&["run", "--allow-host", "bad host", "--", "true"]);
    out.expect_code(125);
    assert!(
        out.stderr.contains("--allow-host bad host"),
        "{}",
        out.stderr
    );
    let p = env.project.write(
        "bad.toml",
        "version = 1\n[network]\nallow = [\"ok.example\", { host = \"*\" }]\n",
    );
    let out = env.run(&["run", "-p", p.to_str().unwrap(), "--", "true"]);
    out.expect_code(125);
    assert!(out.stderr.contains("bad.toml:3:"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn generated_resolver_files_are_read_only_and_no_listener_leaks_into_the_command() {
    for mode in modes() {
        let env = Env::new(mode);
        let code = r#"
import errno, os
for f in ("/etc/resolv.conf", "/etc/hosts"):
    try:
        open(f, "a").write("x")
        print("%s writable" % f)
    except OSError as e:
        print("%s errno=%d" % (f, e.errno))
def link(fd):
    try:
        return os.readlink("/proc/self/fd/" + fd)
    except OSError:
        return ""
fds = os.listdir("/proc/self/fd")
print("sockets=%d" % len([fd for fd in fds if link(fd).startswith("socket:")]))
"#;
        let script = py_script(&env, "ro.py", code);
        let r = run(
            &env,
            &[],
            &format!(
                "{script}; grep -c nameserver /etc/resolv.conf; grep nameserver /etc/resolv.conf"
            ),
        );
        r.out.expect_code(0);
        // EROFS for the read-only bind (EACCES when the user may not write it).
        for f in ["/etc/resolv.conf", "/etc/hosts"] {
            let ok = r.out.stdout.contains(&format!("{f} errno=30"))
                || r.out.stdout.contains(&format!("{f} errno=13"));
            assert!(ok, "{f}:\n{}", r.out.all());
        }
        assert_eq!(
            r.out.field("sockets").as_deref(),
            Some("0"),
            "{}",
            r.out.all()
        );
        assert!(
            r.out.stdout.contains("nameserver 127.0.0.1"),
            "{}",
            r.out.stdout
        );
        assert!(
            r.out.stdout.lines().any(|l| l == "1"),
            "exactly one nameserver:\n{}",
            r.out.stdout
        );
    }
}

const MALFORMED_SCRIPT: &str = r#"
import socket, time
def conn():
    s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
    return s
def read_all(s):
    data = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    except OSError as e:
        data += b" [error %d]" % e.errno
    return data
s = conn()
s.sendall(b"CONNECT web.guard.test:@HTTPS_PORT@ HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: web.guard.test\r\n\r\n")
if not @DEFAULT_PORTS@:
    # Off port 443 the request is served (and refused) as HTTP, and the
    # connection kept for the next one: end it (guard holds a connection
    # to openssl s_server meanwhile, which serves one at a time).
    s.shutdown(socket.SHUT_WR)
r = read_all(s)
print("not_tls=%s" % r[-7:].hex())
print("not_tls_status=%s" % r.split(b"\r\n\r\n", 1)[-1].split(b"\r\n")[0].decode(errors="replace"))
s = conn()
s.sendall(b"POST http://@WEB@/ HTTP/1.1\r\nHost: @WEB@\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
print("smuggle=%s" % read_all(s).split(b"\r\n")[0].decode())
s = conn()
s.sendall(b"GET http://@WEB@/ HTTP/1.1\r\nHost: @WEB@\r\nX: " + b"a" * 40000 + b"\r\n\r\n")
print("oversized=%s" % read_all(s).split(b"\r\n")[0].decode())
s = conn()
t = time.time()
s.sendall(b"GET http://web.gu")
r = read_all(s)
print("slow=%s after=%d" % (r.split(b"\r\n")[0].decode(), time.time() - t))
s = socket.create_connection(("127.0.0.1", 1080), timeout=20)
s.sendall(bytes([5, 1, 0]))
s.recv(2)
s.sendall(bytes([5, 2, 0, 3, 14]) + b"web.guard.test" + (@HTTP_PORT@).to_bytes(2, "big"))
print("socks_bind=%s" % s.recv(10)[:2].hex())
s = socket.create_connection(("127.0.0.1", 1080), timeout=20)
s.sendall(bytes([5, 1, 2]))
print("socks_auth=%s" % s.recv(2).hex())
"#;

#[test]
fn malformed_smuggling_oversized_and_slow_requests_are_refused() {
    let handles: Vec<_> = modes()
        .into_iter()
        .map(|mode| {
            std::thread::spawn(move || {
                let env = Env::new(mode);
                let code = fill(MALFORMED_SCRIPT).replace(
                    "@DEFAULT_PORTS@",
                    if default_ports() { "True" } else { "False" },
                );
                let script = py_script(&env, "bad.py", &code);
                let r = run(&env, &[], &script);
                r.out.expect_code(0);
                // Port 443 carries TLS only: what is not is refused before a
                // byte goes out. Only as root is the HTTPS server on 443; as
                // a user it is on another port, where guard takes a request
                // line in a tunnel to its HTTP checks (as on port 80), and
                // this request's Host (port 80) names another destination.
                let not_tls = if default_ports() {
                    // TLS alert: fatal (2), access_denied (49 = 0x31).
                    assert_eq!(
                        r.out.field("not_tls").as_deref(),
                        Some("15030300020231"),
                        "{}",
                        r.out.all()
                    );
                    "not-tls"
                } else {
                    assert_eq!(
                        r.out.field("not_tls_status").as_deref(),
                        Some("HTTP/1.1 403 Forbidden"),
                        "{}",
                        r.out.all()
                    );
                    "host-mismatch"
                };
                assert_eq!(
                    r.out.field("smuggle").as_deref(),
                    Some("HTTP/1.1 400 Bad Request"),
                    "{}",
                    r.out.all()
                );
                assert_eq!(
                    r.out.field("oversized").as_deref(),
                    Some("HTTP/1.1 400 Bad Request"),
                    "{}",
                    r.out.all()
                );
                let slow = r.out.field("slow").unwrap_or_default();
                assert!(
                    slow.starts_with("HTTP/1.1 408 Request Timeout after="),
                    "{}",
                    r.out.all()
                );
                let after: u64 = slow.rsplit('=').next().unwrap().parse().unwrap();
                assert!((9..=15).contains(&after), "slow head closed after {after}s");
                // SOCKS: 07 = command not supported; ff = no acceptable method.
                assert_eq!(
                    r.out.field("socks_bind").as_deref(),
                    Some("0507"),
                    "{}",
                    r.out.all()
                );
                assert_eq!(
                    r.out.field("socks_auth").as_deref(),
                    Some("05ff"),
                    "{}",
                    r.out.all()
                );
                r.assert_refused("web.guard.test", not_tls);
                r.out.assert_no_canary(SERVED);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// The event of a tunnel still open when the sandbox exits counts the bytes
/// it carried. The relay added a transfer to the count only once it ended
/// (64 chunks, or the end of the stream), so a server that answered and kept
/// the connection open was logged as having sent nothing (and
/// `proxy_reaches_allowed_http_and_https_servers` failed under load when
/// guard exited before the TLS server closed).
#[test]
fn a_tunnel_open_at_exit_logs_the_bytes_it_carried() {
    for mode in modes() {
        let env = Env::new(mode);
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the server");
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut c, _) = l.accept().expect("accept the tunnel");
            let mut b = [0u8; 5];
            c.read_exact(&mut b).expect("read the ping");
            c.write_all(b"PONG!\n").expect("answer");
            // Kept open past the client's end and guard's exit.
            std::thread::sleep(std::time::Duration::from_secs(3));
        });
        let profile = env.project.write(
            "tunnel.toml",
            &format!(
                "{DEFAULT_PROFILE}\n[network]\nallow = [ {{ host = \"held.guard.test:{port}\", private = true }} ]\n\n\
                 [network.hosts]\n\"held.guard.test\" = \"127.0.0.1\"\n"
            ),
        );
        let log = env.home.join("tunnel.jsonl");
        let script = py_script(
            &env,
            "held.py",
            &format!(
                "import socket\n\
                 s = socket.create_connection(('127.0.0.1', 3128))\n\
                 s.sendall(b'CONNECT held.guard.test:{port} HTTP/1.1\\r\\nHost: held.guard.test:{port}\\r\\n\\r\\n')\n\
                 head = b''\n\
                 while b'\\r\\n\\r\\n' not in head:\n\
                 \x20   head += s.recv(1)\n\
                 s.sendall(b'PING\\n')\n\
                 got = b''\n\
                 while not got.endswith(b'\\n'):\n\
                 \x20   got += s.recv(100)\n\
                 print('got=' + got.decode().strip(), flush=True)\n"
            ),
        );
        let out = env.run(&[
            "run",
            "-q",
            "-p",
            profile.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ]);
        out.expect_code(0);
        assert_eq!(out.field("got").as_deref(), Some("PONG!"), "{}", out.all());
        server.join().expect("server thread");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let ev = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["host"] == "held.guard.test" && e["decision"] == "allow")
            .unwrap_or_else(|| panic!("no allow event:\n{text}"));
        assert_eq!(ev["bytes_sent"], 5, "{ev}");
        assert_eq!(ev["bytes_received"], 6, "{ev}");
    }
}
