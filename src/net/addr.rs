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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    fn metadata_is_named() {
        let why = non_public("169.254.169.254".parse().unwrap()).unwrap();
        assert!(why.contains("metadata"), "{why}");
    }
}
