//! SOCKS5 (RFC 1928) greeting and CONNECT request parsing, and replies.
//!
//! Threat model: SOCKS lets a client name its destination as a domain or a
//! raw address; both are checked like every other destination (a raw
//! address only passes an IP rule). Only CONNECT exists here: BIND and UDP
//! ASSOCIATE would open inbound or datagram paths and are refused with
//! "command not supported". Domains must be printable ASCII host names; the
//! parser is bounded by the protocol's own length bytes and never reads past
//! them.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const VERSION: u8 = 5;
pub const NO_AUTH: u8 = 0;
pub const NO_ACCEPTABLE: u8 = 0xff;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocksError {
    Incomplete,
    /// Not SOCKS5 (SOCKS4 clients send 4).
    Version(u8),
    Malformed(&'static str),
}

/// Reply codes (RFC 1928 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    NetworkUnreachable = 3,
    HostUnreachable = 4,
    ConnectionRefused = 5,
    TtlExpired = 6,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Domain(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cmd: u8,
    pub dest: Dest,
    pub port: u16,
}

pub const CMD_CONNECT: u8 = 1;

/// Parse the method-selection greeting; returns the offered methods and the
/// bytes used.
pub fn parse_greeting(buf: &[u8]) -> Result<(Vec<u8>, usize), SocksError> {
    let (&ver, rest) = buf.split_first().ok_or(SocksError::Incomplete)?;
    if ver != VERSION {
        return Err(SocksError::Version(ver));
    }
    let (&n, rest) = rest.split_first().ok_or(SocksError::Incomplete)?;
    let n = usize::from(n);
    if n == 0 {
        return Err(SocksError::Malformed("no authentication methods offered"));
    }
    let methods = rest.get(..n).ok_or(SocksError::Incomplete)?;
    Ok((methods.to_vec(), 2 + n))
}

/// Parse a request; returns it and the bytes used. Unknown address types
/// are `Malformed("address type")` (reply 8).
pub fn parse_request(buf: &[u8]) -> Result<(Request, usize), SocksError> {
    let hdr = buf.get(..4).ok_or(SocksError::Incomplete)?;
    if hdr[0] != VERSION {
        return Err(SocksError::Version(hdr[0]));
    }
    if hdr[2] != 0 {
        return Err(SocksError::Malformed("reserved byte is not zero"));
    }
    let cmd = hdr[1];
    let (dest, used) = match hdr[3] {
        1 => {
            let a = buf.get(4..8).ok_or(SocksError::Incomplete)?;
            (Dest::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), 8)
        }
        3 => {
            let n = usize::from(*buf.get(4).ok_or(SocksError::Incomplete)?);
            if n == 0 {
                return Err(SocksError::Malformed("empty domain"));
            }
            let d = buf.get(5..5 + n).ok_or(SocksError::Incomplete)?;
            if !d.iter().all(|b| b.is_ascii_graphic()) {
                return Err(SocksError::Malformed("domain is not printable ASCII"));
            }
            (Dest::Domain(String::from_utf8_lossy(d).into_owned()), 5 + n)
        }
        4 => {
            let a = buf.get(4..20).ok_or(SocksError::Incomplete)?;
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            (Dest::V6(Ipv6Addr::from(o)), 20)
        }
        _ => return Err(SocksError::Malformed("address type")),
    };
    let p = buf.get(used..used + 2).ok_or(SocksError::Incomplete)?;
    Ok((
        Request {
            cmd,
            dest,
            port: u16::from_be_bytes([p[0], p[1]]),
        },
        used + 2,
    ))
}

/// A reply with an unspecified bound address (0.0.0.0:0).
pub fn reply(code: Reply) -> [u8; 10] {
    [VERSION, code as u8, 0, 1, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting() {
        assert_eq!(parse_greeting(&[5, 2, 0, 2]), Ok((vec![0, 2], 4)));
        assert_eq!(parse_greeting(&[5, 2, 0]), Err(SocksError::Incomplete));
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(SocksError::Version(4)));
        assert!(parse_greeting(&[5, 0]).is_err());
    }

    #[test]
    fn requests() {
        let mut d = vec![5, 1, 0, 3, 9];
        d.extend_from_slice(b"a.example");
        d.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            parse_request(&d),
            Ok((
                Request {
                    cmd: 1,
                    dest: Dest::Domain("a.example".into()),
                    port: 443
                },
                d.len()
            ))
        );
        for cut in 0..d.len() {
            assert_eq!(parse_request(&d[..cut]), Err(SocksError::Incomplete));
        }
        let v4 = [5, 1, 0, 1, 169, 254, 169, 254, 0, 80];
        assert_eq!(
            parse_request(&v4).unwrap().0.dest,
            Dest::V4(Ipv4Addr::new(169, 254, 169, 254))
        );
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[1, 187]);
        assert_eq!(
            parse_request(&v6).unwrap().0.dest,
            Dest::V6(Ipv6Addr::LOCALHOST)
        );
        assert!(parse_request(&[5, 1, 0, 9, 0, 0]).is_err());
        assert!(parse_request(&[5, 1, 1, 1, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(parse_request(&[5, 1, 0, 3, 0, 0, 0]).is_err());
        assert!(parse_request(&[5, 1, 0, 3, 2, b'a', 0, 0, 0]).is_err());
    }

    #[test]
    fn replies() {
        assert_eq!(reply(Reply::NotAllowed), [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_greeting(&data);
            let _ = parse_request(&data);
        }

        #[test]
        fn domains_round_trip(name in "[a-z0-9.-]{1,200}", port in 1u16..) {
            let mut d = vec![5, 1, 0, 3, name.len() as u8];
            d.extend_from_slice(name.as_bytes());
            d.extend_from_slice(&port.to_be_bytes());
            let (r, used) = parse_request(&d).unwrap();
            proptest::prop_assert_eq!(used, d.len());
            proptest::prop_assert_eq!(r.dest, Dest::Domain(name));
            proptest::prop_assert_eq!(r.port, port);
        }
    }
}
