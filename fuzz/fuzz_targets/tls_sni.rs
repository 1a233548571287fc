//! TLS ClientHello / SNI (`guard::net::sni`): the first bytes of every TLS
//! tunnel, from a hostile client, possibly spread over several records.
//! Invariants: no panic; a name returned is a normalized, valid host name
//! (what the allowlist compares against), never something else.
#![no_main]

use guard::net::allowlist::normalize_name;
use guard::net::sni;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(name)) = &sni::parse_client_hello(data) {
        assert_eq!(
            normalize_name(name).as_deref(),
            Ok(name.as_str()),
            "SNI not normalized"
        );
        assert!(!name.ends_with('.') && name.len() <= 253, "{name:?}");
        // The same hello rebuilt minimally carries the same name.
        let again = sni::parse_client_hello(&sni::client_hello(Some(name)));
        assert_eq!(again.as_ref(), Ok(&Some(name.clone())));
    }
});
