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
        .last()
}

/// Every DNS query and every refused request was one line in the session
/// log on the host's disk, and the sandbox decides how many there are: a
/// loop of datagrams to guard's DNS server wrote ~6 MB/s without end (a
/// refused request on a kept-alive proxy connection costs little more).
/// Past 10,000 of each kind, events are counted instead of written, and the
/// log ends with the exact number not written. The floods are answered all
/// the same (a refusal is still a refusal).
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
"#
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        out.fields(&[("nxdomain", &DNS.to_string()), ("refused", &REFUSED.to_string())]);
        let ev = events(&log);
        let dns = ev.iter().filter(|e| e["via"] == "dns").count() as u64;
        let refusals = ev
            .iter()
            .filter(|e| e["via"] == "http-proxy" && e["decision"] == "refuse")
            .count() as u64;
        assert_eq!(dns, 10_000, "DNS events written");
        assert_eq!(refusals, 10_000, "refusal events written");
        assert_eq!(not_logged(&ev, "dns"), Some(DNS - 10_000));
        assert_eq!(not_logged(&ev, "refusal"), Some(REFUSED - 10_000));
        assert!(log.len() < 12 << 20, "log of {} bytes", log.len());
        assert_eq!(ok.finish(), 0);
    });
}
