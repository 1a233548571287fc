//! SOCKS5 handshake (`guard::net::socks5`): greeting, then the CONNECT
//! request, from a hostile client. Invariants: no panic; byte counts stay
//! inside the buffer; a domain is printable ASCII and is checked with the
//! same parser as every other destination.
#![no_main]

use guard::net::allowlist::{normalize_name, parse_target};
use guard::net::socks5::{self, Dest, SocksError};
use libfuzzer_sys::fuzz_target;

fn request(buf: &[u8]) {
    match socks5::parse_request(buf) {
        Ok((r, used)) => {
            assert!(used <= buf.len(), "used {used} of {}", buf.len());
            if let Dest::Domain(d) = &r.dest {
                assert!(!d.is_empty() && d.len() <= 255);
                assert!(d.bytes().all(|b| b.is_ascii_graphic()), "{d:?}");
                let _ = parse_target(d);
                let _ = normalize_name(d);
            }
            // Every strict prefix is incomplete, never a different request.
            for cut in [0, used / 2, used.saturating_sub(1)] {
                if cut < used {
                    assert_eq!(socks5::parse_request(&buf[..cut]), Err(SocksError::Incomplete));
                }
            }
        }
        Err(_) => {}
    }
    let _ = socks5::reply(socks5::Reply::NotAllowed);
}

fuzz_target!(|data: &[u8]| {
    match socks5::parse_greeting(data) {
        Ok((methods, used)) => {
            assert_eq!(used, methods.len() + 2);
            assert!(used <= data.len());
            request(&data[used..]);
        }
        Err(_) => request(data),
    }
});
