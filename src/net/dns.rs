//! The sandbox's DNS server: allowlisted names get a fake loopback address,
//! every other name is refused. Nothing is ever asked upstream.
//!
//! Threat model: DNS is the classic exfiltration channel (`<secret>.evil.com`
//! reaches the attacker's name server through any recursive resolver). Here
//! no query leaves: names are answered from the allowlist alone, with
//! addresses from 127.77.0.0/16 that only mean something to guard's own
//! transparent listeners, which map them back to the name. Unknown names get
//! NXDOMAIN (programs fail at once instead of retrying), odd queries get
//! FORMERR/NOTIMP/REFUSED. The parser reads only the header and the single
//! question (no compression pointers there), bounded by the message length.
//! The address table is bounded too: once 127.77.0.0/16 is used up, new
//! names get SERVFAIL rather than memory.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// Fake addresses are handed out from 127.77.0.0/16.
pub const FAKE_PREFIX: [u8; 2] = [127, 77];
/// TTL of answers: the mapping is stable for the session.
const TTL: u32 = 300;

const TYPE_A: u16 = 1;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// One parsed question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Lowercased, dot-separated, no trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Byte range of the question section in the query (echoed back as is,
    /// so the client's 0x20 case randomization matches).
    end: usize,
}

/// Parse the question of a standard query. `Err(rcode)` when the message is
/// a query we answer with an error; `Ok(None)` for messages to ignore
/// (responses, or too short to carry an id).
pub fn parse_query(msg: &[u8]) -> Result<Option<Question>, Rcode> {
    if msg.len() < 12 {
        return Ok(None);
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        return Ok(None); // a response: never answer those (no loops)
    }
    let opcode = (flags >> 11) & 0xf;
    if opcode != 0 {
        return Err(Rcode::NotImp);
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    if qd != 1 {
        return Err(Rcode::FormErr);
    }
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0usize;
    loop {
        let len = usize::from(*msg.get(pos).ok_or(Rcode::FormErr)?);
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return Err(Rcode::FormErr); // compression pointers or reserved bits
        }
        let label = msg.get(pos..pos + len).ok_or(Rcode::FormErr)?;
        total += len + 1;
        if total > 255 {
            return Err(Rcode::FormErr);
        }
        if !label.iter().all(|b| b.is_ascii_graphic() && *b != b'.') {
            return Err(Rcode::Refused); // not a host name we could ever allow
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let tc = msg.get(pos..pos + 4).ok_or(Rcode::FormErr)?;
    Ok(Some(Question {
        name: labels.join("."),
        qtype: u16::from_be_bytes([tc[0], tc[1]]),
        qclass: u16::from_be_bytes([tc[2], tc[3]]),
        end: pos + 4,
    }))
}

/// Build the answer to `query`. `lookup` returns the fake address for an
/// allowed name (`None`: not allowed; `Some(Err(TableFull))`: table full).
/// Returns `None` when the message must be ignored.
pub fn answer(
    query: &[u8],
    lookup: impl FnOnce(&str) -> Option<Result<Ipv4Addr, TableFull>>,
) -> Option<(Vec<u8>, Outcome)> {
    let q = match parse_query(query) {
        Ok(Some(q)) => q,
        Ok(None) => return None,
        Err(rcode) => return Some((header_only(query, rcode), Outcome::Error(rcode))),
    };
    if q.qclass != CLASS_IN && q.qclass != TYPE_ANY {
        return Some((
            reply(query, &q, Rcode::Refused, None),
            Outcome::Refused(q.name),
        ));
    }
    let (rcode, addr, outcome) = match lookup(&q.name) {
        None => (Rcode::NxDomain, None, Outcome::Refused(q.name.clone())),
        Some(Err(TableFull)) => (Rcode::ServFail, None, Outcome::Error(Rcode::ServFail)),
        Some(Ok(a)) if q.qtype == TYPE_A || q.qtype == TYPE_ANY => (
            Rcode::NoError,
            Some(a),
            Outcome::Answered(q.name.clone(), a),
        ),
        // AAAA, HTTPS, MX ...: the name exists, with no such record.
        Some(Ok(a)) => (Rcode::NoError, None, Outcome::NoData(q.name.clone(), a)),
    };
    Some((reply(query, &q, rcode, addr), outcome))
}

/// What the server did, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered(String, Ipv4Addr),
    NoData(String, Ipv4Addr),
    Refused(String),
    Error(Rcode),
}

fn flags(query: &[u8], rcode: Rcode) -> [u8; 2] {
    let rd = query.get(2).map_or(0, |b| b & 0x01);
    // QR, opcode copied (0 or what was asked), AA, RD copied; RA; rcode.
    let opcode = query.get(2).map_or(0, |b| b & 0x78);
    [0x80 | opcode | 0x04 | rd, 0x80 | rcode as u8]
}

fn header_only(query: &[u8], rcode: Rcode) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[..2].copy_from_slice(&query[..2]);
    out[2..4].copy_from_slice(&flags(query, rcode));
    out
}

fn reply(query: &[u8], q: &Question, rcode: Rcode, addr: Option<Ipv4Addr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.end + 16);
    out.extend_from_slice(&query[..2]);
    out.extend_from_slice(&flags(query, rcode));
    out.extend_from_slice(&[0, 1, 0, u8::from(addr.is_some()), 0, 0, 0, 0]);
    out.extend_from_slice(&query[12..q.end]);
    if let Some(a) = addr {
        out.extend_from_slice(&[0xc0, 12]); // pointer to the question's name
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&a.octets());
    }
    out
}

/// The fake address range is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// Fake address per name, stable for the session, and the way back.
#[derive(Debug, Default)]
pub struct FakeAddrs {
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    by_name: HashMap<String, Ipv4Addr>,
    by_addr: HashMap<Ipv4Addr, String>,
    next: u16,
}

impl FakeAddrs {
    /// The address for `name`, allocating one on first use; `Err` once the
    /// /16 is used up.
    pub fn addr_for(&self, name: &str) -> Result<Ipv4Addr, TableFull> {
        let mut t = self.inner.lock().map_err(|_| TableFull)?;
        if let Some(a) = t.by_name.get(name) {
            return Ok(*a);
        }
        // .0.0 and .255.255 are skipped; 65534 names at most.
        if t.next >= 0xfffe {
            return Err(TableFull);
        }
        t.next += 1;
        let [hi, lo] = t.next.to_be_bytes();
        let a = Ipv4Addr::new(FAKE_PREFIX[0], FAKE_PREFIX[1], hi, lo);
        t.by_name.insert(name.to_string(), a);
        t.by_addr.insert(a, name.to_string());
        Ok(a)
    }

    /// The name an address was handed out for.
    pub fn name_of(&self, a: Ipv4Addr) -> Option<String> {
        self.inner.lock().ok()?.by_addr.get(&a).cloned()
    }
}

/// Build a query (tests and the benchmark).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.').filter(|l| !l.is_empty()) {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(name: &str) -> Option<Result<Ipv4Addr, TableFull>> {
        (name == "api.example.com").then_some(Ok(Ipv4Addr::new(127, 77, 0, 1)))
    }

    #[test]
    fn answers_allowed_names_with_a_fake_address() {
        let q = query(0x1234, "API.example.com", TYPE_A);
        let (r, out) = answer(&q, allowed).unwrap();
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(&r[6..8], &[0, 1]);
        assert_eq!(&r[r.len() - 4..], &[127, 77, 0, 1]);
        // The question is echoed byte for byte (case preserved).
        assert_eq!(&r[12..q.len()], &q[12..]);
        assert_eq!(
            out,
            Outcome::Answered("api.example.com".into(), Ipv4Addr::new(127, 77, 0, 1))
        );
    }

    #[test]
    fn aaaa_is_nodata_and_unknown_is_nxdomain() {
        let (r, _) = answer(&query(1, "api.example.com", 28), allowed).unwrap();
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(&r[6..8], &[0, 0]);
        let (r, out) = answer(&query(1, "secret.evil.com", TYPE_A), allowed).unwrap();
        assert_eq!(r[3] & 0x0f, Rcode::NxDomain as u8);
        assert_eq!(&r[6..8], &[0, 0]);
        assert_eq!(out, Outcome::Refused("secret.evil.com".into()));
    }

    #[test]
    fn odd_messages() {
        // A response is ignored.
        let mut resp = query(1, "a.com", TYPE_A);
        resp[2] |= 0x80;
        assert!(answer(&resp, allowed).is_none());
        assert!(answer(&[1, 2, 3], allowed).is_none());
        // An update (opcode 5) is not implemented.
        let mut upd = query(1, "a.com", TYPE_A);
        upd[2] = 5 << 3;
        let (r, _) = answer(&upd, allowed).unwrap();
        assert_eq!(r[3] & 0x0f, Rcode::NotImp as u8);
        // Compression pointer in the question.
        let mut ptr = query(1, "a.com", TYPE_A);
        ptr[12] = 0xc0;
        let (r, _) = answer(&ptr, allowed).unwrap();
        assert_eq!(r[3] & 0x0f, Rcode::FormErr as u8);
    }

    #[test]
    fn fake_addresses_are_stable_and_distinct() {
        let f = FakeAddrs::default();
        let a = f.addr_for("a.com").unwrap();
        let b = f.addr_for("b.com").unwrap();
        assert_ne!(a, b);
        assert_eq!(f.addr_for("a.com").unwrap(), a);
        assert_eq!(f.name_of(b).as_deref(), Some("b.com"));
        assert_eq!(a.octets()[..2], FAKE_PREFIX);
        assert_eq!(f.name_of(Ipv4Addr::new(127, 0, 0, 1)), None);
    }

    #[test]
    fn table_is_bounded() {
        let f = FakeAddrs::default();
        for i in 0..0xfffe {
            f.addr_for(&format!("n{i}.com")).unwrap();
        }
        assert!(f.addr_for("one-more.com").is_err());
        assert!(f.addr_for("n5.com").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = answer(&data, |_| Some(Ok(Ipv4Addr::new(127, 77, 0, 9))));
        }

        #[test]
        fn unknown_names_never_get_an_address(name in "[a-z0-9]{1,20}(\\.[a-z0-9]{1,10}){0,3}", qtype in 0u16..300) {
            let (r, _) = answer(&query(7, &name, qtype), |_| None).unwrap();
            proptest::prop_assert_eq!(&r[6..8], &[0, 0]);
            proptest::prop_assert!(r[3] & 0x0f != 0);
        }
    }
}
