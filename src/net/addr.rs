//! Which resolved addresses the proxy may dial.
//!
//! Threat model: an allowed name can resolve to anything — by mistake, by a
//! hostile DNS record, or by rebinding between two lookups. The supervisor
//! runs in the host's network namespace, so dialing loopback reaches the
//! user's local services, private and link-local ranges reach the LAN and the
//! cloud metadata service (169.254.169.254, fd00:ec2::254), CGNAT space
//! reaches provider-internal hosts (100.100.100.200), and Azure's platform
//! endpoint hides at a public-looking 168.63.129.16. Those are refused
//! unless the matching rule opts in with `private = true`. IPv6 forms that
//! embed an IPv4 address (mapped, compatible, translated, NAT64, 6to4) are
//! judged by the address they embed, so `::ffff:127.0.0.1` is loopback, not
//! "public"; local-use NAT64, whose layout only the network knows, is
//! refused.
//! Documentation and benchmarking ranges are not refused: some networks
//! route them (fake-IP resolvers use 198.18.0.0/15).
//!
//! The class of an address is not the whole story: this machine's own
//! addresses reach its services bound to all interfaces (`0.0.0.0:5432`)
//! whatever range they are in, and the subnets its interfaces sit on are
//! its LAN. A host with a public or documentation-range address on its
//! interface (a VPS, a campus network, a global IPv6 address from SLAAC)
//! would otherwise let a name that resolves there (a wildcard rule over a
//! domain whose DNS the attacker controls, a pin) reach them. So
//! `local_network` refuses those too, also in the IPv6 forms that embed
//! them (NAT64 `64:ff9b::c000:202`, 6to4 `2002:c000:202::`, whose
//! translator dials the IPv4 address), read from the interfaces at most
//! once a second (addresses change with DHCP and VPNs).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `None` for a public address; otherwise the class that makes it non-public.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => v4_class(a),
        IpAddr::V6(a) => v6_class(a),
    }
}

fn v4_class(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    Some(match o {
        [0, ..] => "unspecified (0.0.0.0/8)",
        [127, ..] => "loopback",
        [10, ..] => "private (10.0.0.0/8)",
        [172, b, ..] if (16..32).contains(&b) => "private (172.16.0.0/12)",
        [192, 168, ..] => "private (192.168.0.0/16)",
        [169, 254, ..] => "link-local (169.254.0.0/16, cloud metadata)",
        [100, b, ..] if (64..128).contains(&b) => "shared address space (CGNAT, 100.64.0.0/10)",
        [192, 0, 0, _] => "IETF protocol assignments (192.0.0.0/24)",
        // Public-looking, but answered by the Azure host itself (VM agent
        // configuration, extension settings, certificates).
        [168, 63, 129, 16] => "Azure platform endpoint (168.63.129.16, wireserver)",
        [a, ..] if (224..240).contains(&a) => "multicast",
        [255, 255, 255, 255] => "broadcast",
        [a, ..] if a >= 240 => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_class(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    if a.is_unspecified() {
        return Some("unspecified (::)");
    }
    if a.is_loopback() {
        return Some("loopback (::1)");
    }
    if let Some(v4) = a.to_ipv4_mapped() {
        return Some(v4_class(v4).unwrap_or("IPv4-mapped IPv6 address"));
    }
    // ::a.b.c.d (deprecated IPv4-compatible form).
    if s[..6] == [0; 6] {
        return Some("IPv4-compatible IPv6 address");
    }
    // ::ffff:0:a.b.c.d (IPv4-translated): a SIIT translator reaches the
    // IPv4 address; no DNS answer has a reason to hold one.
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return Some("IPv4-translated IPv6 address (::ffff:0:0/96)");
    }
    let last32 = v4(s[6], s[7]);
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they embed.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_class(last32);
    }
    // Local-use NAT64 (64:ff9b:1::/48, RFC 8215): where the IPv4 address
    // sits depends on the prefix length the network chose, so which one it
    // reaches (10.x, 169.254.169.254?) cannot be told from the address.
    if s[..3] == [0x64, 0xff9b, 1] {
        return Some("local-use NAT64 (64:ff9b:1::/48), IPv4 destination unknown");
    }
    if s[0] == 0x2002 {
        return v4_class(v4(s[1], s[2]));
    }
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => "private (unique local, fc00::/7)",
        x if x & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        x if x & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        x if x & 0xff00 == 0xff00 => "multicast",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        _ => return None,
    })
}

/// `Some` when `ip` is one of this machine's own addresses or on one of
/// the subnets its interfaces are attached to.
///
/// An IPv6 address that embeds an IPv4 one (NAT64, 6to4) is judged by that
/// one too: a NAT64 gateway or 6to4 relay on the way dials it, so
/// `64:ff9b::c000:202` is this machine when it is 192.0.2.2.
pub fn local_network(ip: IpAddr) -> Option<&'static str> {
    let nets = interface_networks();
    let embedded = match ip {
        IpAddr::V6(a) => embedded_v4(a).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    let forms = || std::iter::once(ip).chain(embedded);
    if forms().any(|ip| nets.iter().any(|n| n.addr == ip)) {
        return Some("local (this machine's own)");
    }
    forms()
        .any(|ip| nets.iter().any(|n| n.contains(ip)))
        .then_some("local-network (on a subnet of this machine's interfaces)")
}

/// The IPv4 address an IPv6 one reaches through a translator or relay:
/// mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`).
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    if let Some(v4) = a.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(v4(s[6], s[7]));
    }
    (s[0] == 0x2002).then(|| v4(s[1], s[2]))
}

/// An interface address with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u32,
}

impl Net {
    /// Shorter prefixes than these are not a LAN but a misconfiguration
    /// (or a tunnel claiming the world): they would refuse everything, so
    /// only the address itself counts then.
    const MIN_V4: u32 = 8;
    const MIN_V6: u32 = 16;

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) if self.prefix >= Self::MIN_V4 => {
                let mask = u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) if self.prefix >= Self::MIN_V6 => {
                let mask = u128::MAX.checked_shl(128 - self.prefix).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

const INTERFACES_FRESH: Duration = Duration::from_secs(1);

/// The interfaces' addresses, re-read when older than a second. A failure
/// to read them counts as no interfaces: the class checks still hold.
fn interface_networks() -> Vec<Net> {
    static CACHE: Mutex<Option<(Instant, Vec<Net>)>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((at, nets)) = cache.as_ref()
        && at.elapsed() < INTERFACES_FRESH
    {
        return nets.clone();
    }
    let nets = read_interfaces();
    *cache = Some((Instant::now(), nets.clone()));
    nets
}

fn read_interfaces() -> Vec<Net> {
    let Ok(ifaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut nets = Vec::new();
    for i in ifaces {
        let Some(a) = i.address else { continue };
        let (addr, prefix) = if let Some(v4) = a.as_sockaddr_in() {
            let mask = i.netmask.as_ref().and_then(|m| m.as_sockaddr_in());
            (
                IpAddr::V4(v4.ip()),
                mask.map_or(32, |m| u32::from(m.ip()).count_ones()),
            )
        } else if let Some(v6) = a.as_sockaddr_in6() {
            let mask = i.netmask.as_ref().and_then(|m| m.as_sockaddr_in6());
            (
                IpAddr::V6(v6.ip()),
                mask.map_or(128, |m| u128::from(m.ip()).count_ones()),
            )
        } else {
            continue;
        };
        nets.push(Net { addr, prefix });
    }
    nets
}

/// The IPv4 address in two IPv6 segments.
fn v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn np(s: &str) -> bool {
        non_public(s.parse().unwrap()).is_some()
    }

    #[test]
    fn refused_classes() {
        for a in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.100.100.200",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.170",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "100::1",
            "168.63.129.16",
            "::ffff:0:808:808",
            "64:ff9b:1:7f00:0:100::",
            "64:ff9b:1:a9fe:a9:fe00::",
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1:0:0:0:a00:1",
        ] {
            assert!(np(a), "{a} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "100.63.255.255",
            "203.0.113.80",
            "198.18.0.1",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "168.63.129.17",
        ] {
            assert!(!np(a), "{a} should be public");
        }
    }

    #[test]
    fn subnets_hold_their_addresses() {
        let n = |a: &str, prefix| Net {
            addr: a.parse().unwrap(),
            prefix,
        };
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        assert!(n("192.0.2.2", 24).contains(ip("192.0.2.1")));
        assert!(!n("192.0.2.2", 24).contains(ip("192.0.3.1")));
        assert!(n("203.0.113.5", 32).contains(ip("203.0.113.5")));
        assert!(!n("203.0.113.5", 32).contains(ip("203.0.113.6")));
        assert!(n("2001:db8:1:2::5", 64).contains(ip("2001:db8:1:2:ffff::1")));
        assert!(!n("2001:db8:1:2::5", 64).contains(ip("2001:db8:1:3::1")));
        // A tunnel claiming the world is not a LAN.
        assert!(!n("10.8.0.1", 1).contains(ip("8.8.8.8")));
        assert!(!n("2001:db8::1", 0).contains(ip("2606:4700::1111")));
        // Families never mix.
        assert!(!n("192.0.2.2", 24).contains(ip("::ffff:192.0.2.1")));
    }

    #[test]
    fn embedded_ipv4_addresses_are_found() {
        let v6 = |a: &str| a.parse::<Ipv6Addr>().unwrap();
        let v4 = |a: &str| Some(a.parse::<Ipv4Addr>().unwrap());
        assert_eq!(embedded_v4(v6("::ffff:192.0.2.2")), v4("192.0.2.2"));
        assert_eq!(embedded_v4(v6("64:ff9b::c000:202")), v4("192.0.2.2"));
        assert_eq!(embedded_v4(v6("2002:c000:202::1")), v4("192.0.2.2"));
        assert_eq!(embedded_v4(v6("2001:db8::c000:202")), None);
        assert_eq!(embedded_v4(v6("64:ff9b:1::c000:202")), None);
    }

    #[test]
    fn this_machines_own_addresses_are_local() {
        let nets = read_interfaces();
        assert!(
            nets.iter().any(|n| n.addr == ip_lo()),
            "getifaddrs found no loopback: {nets:?}"
        );
        for n in &nets {
            assert!(local_network(n.addr).is_some(), "{n:?}");
        }
        assert_eq!(local_network("8.8.8.8".parse().unwrap()), None);
    }

    fn ip_lo() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    #[test]
    fn metadata_is_named() {
        let why = non_public("169.254.169.254".parse().unwrap()).unwrap();
        assert!(why.contains("metadata"), "{why}");
    }
}
