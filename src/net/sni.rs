//! TLS ClientHello parsing: the server name (SNI) a client asks for.
//!
//! Threat model: without this check a tunnel opened to an allowed name can
//! carry TLS for any other site on the same address (domain fronting on a
//! CDN), or any other protocol at all. The first bytes of every TLS tunnel
//! must be a well-formed ClientHello whose single host_name equals the
//! allowed name. The parser never trusts a length field: every read is
//! bounds-checked, the message is capped at [`MAX_HELLO`], and anything
//! unexpected (another record type, SSLv2, duplicate extensions, several
//! names, a name that is not a valid host name) is an error, never a guess.

use super::allowlist::normalize_name;

/// Largest ClientHello accepted (post-quantum key shares make them ~2 KiB;
/// records carry at most 16 KiB each).
pub const MAX_HELLO: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SniError {
    /// Not enough bytes yet.
    Incomplete,
    /// Not a TLS ClientHello.
    NotTls,
    Malformed(&'static str),
    /// The hello is encrypted (ECH, or its draft ESNI): the name in the
    /// clear is only the front server's, the one that counts is inside.
    Encrypted,
}

/// Parse the ClientHello at the start of `buf` (possibly spread over several
/// handshake records). Returns the SNI host name (normalized), `None` if the
/// hello carries none.
pub fn parse_client_hello(buf: &[u8]) -> Result<Option<String>, SniError> {
    let handshake = reassemble(buf)?;
    parse_hello_body(&handshake)
}

/// Collect handshake bytes from consecutive records until the first
/// handshake message is complete.
fn reassemble(buf: &[u8]) -> Result<Vec<u8>, SniError> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(hdr) = buf.get(pos..pos + 5) else {
            if pos == 0 && !buf.is_empty() && buf[0] != 0x16 {
                return Err(SniError::NotTls);
            }
            return Err(SniError::Incomplete);
        };
        if hdr[0] != 0x16 {
            return Err(if pos == 0 {
                SniError::NotTls
            } else {
                SniError::Malformed("unexpected record type")
            });
        }
        if hdr[1] != 3 {
            return Err(SniError::NotTls);
        }
        let len = usize::from(u16::from_be_bytes([hdr[3], hdr[4]]));
        if len == 0 || len > 16384 + 256 {
            return Err(SniError::Malformed("invalid record length"));
        }
        let body = buf
            .get(pos + 5..pos + 5 + len)
            .ok_or(SniError::Incomplete)?;
        out.extend_from_slice(body);
        pos += 5 + len;
        if out.len() >= 4 {
            if out[0] != 1 {
                return Err(SniError::Malformed(
                    "first handshake message is not a ClientHello",
                ));
            }
            let need =
                4 + (usize::from(out[1]) << 16 | usize::from(out[2]) << 8 | usize::from(out[3]));
            if need > MAX_HELLO {
                return Err(SniError::Malformed("ClientHello too large"));
            }
            if out.len() >= need {
                out.truncate(need);
                return Ok(out);
            }
        }
        if pos > MAX_HELLO + 5 * 8 {
            return Err(SniError::Malformed("ClientHello too large"));
        }
    }
}

/// A bounds-checked reader.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SniError> {
        if self.b.len() < n {
            return Err(SniError::Malformed("truncated ClientHello"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<usize, SniError> {
        Ok(usize::from(self.take(1)?[0]))
    }
    fn u16(&mut self) -> Result<usize, SniError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Result<&'a [u8], SniError> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Result<&'a [u8], SniError> {
        let n = self.u16()?;
        self.take(n)
    }
}

const EXT_SERVER_NAME: usize = 0;
/// encrypted_client_hello (RFC 9849), the code points of its drafts (-06/07
/// 0xff02, -08 to -12 0xfe08..0xfe0c) and the draft encrypted_server_name.
/// Behind a CDN that serves many sites at one address, the outer hello can
/// name an allowed site while the encrypted inner one names any other site
/// of that CDN, which the front server then connects to: the allowlist
/// would be bypassed. Browsers send a decoy (GREASE) ECH extension that
/// cannot be told from a real one; they are refused too. A front server
/// that still speaks a draft would do the same with its code point.
fn is_encrypted(ty: usize) -> bool {
    matches!(ty, 0xfe08..=0xfe0d | 0xff02 | 0xffce)
}

fn parse_hello_body(msg: &[u8]) -> Result<Option<String>, SniError> {
    let mut r = Reader { b: &msg[4..] };
    let version = r.take(2)?;
    if version[0] != 3 {
        return Err(SniError::Malformed("unsupported ClientHello version"));
    }
    r.take(32)?; // random
    let session = r.vec8()?;
    if session.len() > 32 {
        return Err(SniError::Malformed("session id too long"));
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(SniError::Malformed("invalid cipher suites"));
    }
    if r.vec8()?.is_empty() {
        return Err(SniError::Malformed("no compression methods"));
    }
    if r.b.is_empty() {
        return Ok(None); // no extensions at all
    }
    let mut exts = Reader { b: r.vec16()? };
    if !r.b.is_empty() {
        return Err(SniError::Malformed("trailing bytes after extensions"));
    }
    let mut seen: Vec<usize> = Vec::new();
    let mut sni = None;
    while !exts.b.is_empty() {
        let ty = exts.u16()?;
        let data = exts.vec16()?;
        if seen.contains(&ty) {
            return Err(SniError::Malformed("duplicate extension"));
        }
        seen.push(ty);
        if is_encrypted(ty) {
            return Err(SniError::Encrypted);
        }
        if ty == EXT_SERVER_NAME {
            sni = Some(parse_server_name(data)?);
        }
    }
    Ok(sni)
}

fn parse_server_name(data: &[u8]) -> Result<String, SniError> {
    let mut r = Reader { b: data };
    let mut list = Reader { b: r.vec16()? };
    if !r.b.is_empty() {
        return Err(SniError::Malformed("trailing bytes in server_name"));
    }
    // Exactly one entry, of type host_name (the only type defined), as
    // OpenSSL and BoringSSL require: a parser that skips other types (Go)
    // and one that takes the first entry whatever its type would read two
    // names from [other-type "evil", host_name "allowed"].
    if list.u8()? != 0 {
        return Err(SniError::Malformed("SNI entry that is not a host name"));
    }
    let value = list.vec16()?;
    if !list.b.is_empty() {
        return Err(SniError::Malformed("several names in SNI"));
    }
    let s = std::str::from_utf8(value).map_err(|_| SniError::Malformed("SNI is not ASCII"))?;
    normalize_name(s).map_err(|_| SniError::Malformed("SNI is not a valid host name"))
}

/// A fatal TLS alert (access_denied), sent when a tunnel is refused after
/// the ClientHello, so the client reports a TLS error instead of a reset.
pub const ALERT_ACCESS_DENIED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49];

/// Build a minimal ClientHello (tests and benchmarks).
pub fn client_hello(sni: Option<&str>) -> Vec<u8> {
    client_hello_with(sni, &[])
}

/// A minimal ClientHello carrying `extra` extensions (type, data) after
/// the server name.
pub fn client_hello_with(sni: Option<&str>, extra: &[(u16, &[u8])]) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(name) = sni {
        let n = name.as_bytes();
        let mut sn = Vec::new();
        sn.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
        sn.push(0);
        sn.extend_from_slice(&(n.len() as u16).to_be_bytes());
        sn.extend_from_slice(n);
        exts.extend_from_slice(&0u16.to_be_bytes());
        exts.extend_from_slice(&(sn.len() as u16).to_be_bytes());
        exts.extend_from_slice(&sn);
    }
    for (ty, data) in extra {
        exts.extend_from_slice(&ty.to_be_bytes());
        exts.extend_from_slice(&(data.len() as u16).to_be_bytes());
        exts.extend_from_slice(data);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_name() {
        let h = client_hello(Some("API.Example.com"));
        assert_eq!(parse_client_hello(&h), Ok(Some("api.example.com".into())));
        assert_eq!(parse_client_hello(&client_hello(None)), Ok(None));
    }

    #[test]
    fn incomplete_until_the_last_byte() {
        let h = client_hello(Some("a.example.com"));
        for cut in 0..h.len() {
            assert_eq!(
                parse_client_hello(&h[..cut]),
                Err(SniError::Incomplete),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn spread_over_two_records() {
        let h = client_hello(Some("a.example.com"));
        let hs = &h[5..];
        let (a, b) = hs.split_at(20);
        let mut two = vec![0x16, 3, 1];
        two.extend_from_slice(&(a.len() as u16).to_be_bytes());
        two.extend_from_slice(a);
        two.extend_from_slice(&[0x16, 3, 1]);
        two.extend_from_slice(&(b.len() as u16).to_be_bytes());
        two.extend_from_slice(b);
        assert_eq!(parse_client_hello(&two), Ok(Some("a.example.com".into())));
    }

    #[test]
    fn refuses_non_tls_and_bad_names() {
        assert_eq!(
            parse_client_hello(b"GET / HTTP/1.1\r\n"),
            Err(SniError::NotTls)
        );
        assert_eq!(parse_client_hello(b"SSH-2.0-x"), Err(SniError::NotTls));
        assert!(parse_client_hello(&client_hello(Some("a b.com"))).is_err());
        assert!(parse_client_hello(&client_hello(Some("127.0.0.1"))).is_err());
        // The same extension twice: the second one could name another host.
        let h = client_hello(Some("a.com"));
        let ext = h[h.len() - 14..].to_vec();
        let mut exts = ext.clone();
        exts.extend_from_slice(&client_hello(Some("b.com"))[h.len() - 14..]);
        let mut body = h[9..h.len() - 16].to_vec();
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        assert_eq!(
            parse_client_hello(&rec),
            Err(SniError::Malformed("duplicate extension"))
        );
    }

    #[test]
    fn one_host_name_entry_only() {
        // server_name data: list length, then (type, length, name) entries.
        let entry = |ty: u8, n: &[u8]| {
            let mut e = vec![ty];
            e.extend_from_slice(&(n.len() as u16).to_be_bytes());
            e.extend_from_slice(n);
            e
        };
        let list = |entries: &[Vec<u8>]| {
            let all: Vec<u8> = entries.concat();
            let mut d = (all.len() as u16).to_be_bytes().to_vec();
            d.extend_from_slice(&all);
            d
        };
        let ok = list(&[entry(0, b"a.example.com")]);
        assert_eq!(parse_server_name(&ok), Ok("a.example.com".into()));
        for bad in [
            list(&[entry(1, b"evil.example"), entry(0, b"a.example.com")]),
            list(&[entry(0, b"a.example.com"), entry(1, b"evil.example")]),
            list(&[entry(0, b"a.example.com"), entry(0, b"b.example.com")]),
            list(&[entry(1, b"a.example.com")]),
            list(&[]),
        ] {
            assert!(parse_server_name(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_encrypted_hellos() {
        // An ECH outer hello: the allowed name in the clear, the real one
        // encrypted inside (a real payload is HPKE ciphertext; any bytes do).
        for ty in [0xfe0d, 0xffce, 0xfe0a, 0xfe08, 0xff02] {
            let h = client_hello_with(Some("allowed.example.com"), &[(ty, &[0, 0, 1, 0, 1, 7])]);
            assert_eq!(parse_client_hello(&h), Err(SniError::Encrypted), "{ty:x}");
        }
        // Other extensions do not matter.
        let h = client_hello_with(Some("allowed.example.com"), &[(0x002b, &[2, 3, 4])]);
        assert_eq!(
            parse_client_hello(&h),
            Ok(Some("allowed.example.com".into()))
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = parse_client_hello(&data);
        }

        #[test]
        fn never_panics_on_mutated_hellos(idx in 0usize..60, byte in proptest::num::u8::ANY) {
            let mut h = client_hello(Some("mutate.example.com"));
            let i = idx % h.len();
            h[i] = byte;
            let _ = parse_client_hello(&h);
        }

        #[test]
        fn any_valid_name_round_trips(name in "[a-z]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z][a-z0-9]{0,10}){1,3}") {
            let h = client_hello(Some(&name));
            proptest::prop_assert_eq!(parse_client_hello(&h), Ok(Some(name)));
        }
    }
}
