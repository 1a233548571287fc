//! The sandbox's DNS server (`guard::net::dns`): queries come from any
//! program in the sandbox (the classic exfiltration channel). Invariants:
//! no panic; a reply is always a response (QR set: never answered again,
//! no loops) carrying the query's id; an address is only ever given for a
//! name the allowlist names, and it is the fake address handed out for it.
#![no_main]

use guard::net::allowlist::{Allowlist, Rule, normalize_name, parse_rule};
use guard::net::dns::{self, FakeAddrs, Outcome};
use libfuzzer_sys::fuzz_target;

fn allowlist() -> Allowlist {
    let rules = ["api.example.com", "*.github.com", "registry.npmjs.org:443", "10.0.0.0/8"]
        .iter()
        .map(|s| {
            let (host, port) = parse_rule(s).expect("rule");
            Rule {
                host,
                port,
                private: false,
                origin: "fuzz".into(),
            }
        })
        .collect();
    Allowlist {
        rules,
        hosts: Default::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let allow = allowlist();
    let fake = FakeAddrs::default();
    // Same lookup as the server (src/net/serve.rs).
    let lookup = |name: &str| {
        let name = normalize_name(name).ok()?;
        allow.names(&name).then(|| fake.addr_for(&name))
    };

    let parsed = dns::parse_query(data);
    if let Ok(Some(q)) = &parsed {
        assert!(q.name.len() <= 255, "name of {} bytes", q.name.len());
        assert!(!q.name.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(q.name.split('.').all(|l| l.len() <= 63) || q.name.is_empty());
        // A query rebuilt from the parsed question parses the same.
        if !q.name.is_empty() {
            let again = dns::query(0x4242, &q.name, q.qtype);
            let q2 = dns::parse_query(&again).expect("rebuilt").expect("a query");
            assert_eq!(q2.name, q.name);
            assert_eq!(q2.qtype, q.qtype);
        }
    }

    let Some((resp, outcome)) = dns::answer(data, lookup) else {
        assert!(matches!(parsed, Ok(None)));
        return;
    };
    assert!(resp.len() >= 12, "short reply");
    assert_eq!(&resp[..2], &data[..2], "id not echoed");
    assert_ne!(resp[2] & 0x80, 0, "reply is not marked as a response");
    // The server never answers its own replies.
    assert_eq!(dns::parse_query(&resp), Ok(None));
    let rcode = resp[3] & 0x0f;
    let ancount = u16::from_be_bytes([resp[6], resp[7]]);
    match &outcome {
        Outcome::Answered(name, addr) => {
            assert_eq!(rcode, 0);
            assert_eq!(ancount, 1);
            assert!(allow.names(name), "answered {name:?}, which no rule names");
            assert_eq!(fake.name_of(*addr).as_deref(), Some(name.as_str()));
            assert_eq!(&resp[resp.len() - 4..], &addr.octets());
            let Ok(Some(q)) = &parsed else {
                panic!("answered a query that does not parse")
            };
            assert_eq!(&q.name, name);
        }
        _ => assert_eq!(ancount, 0, "an address in a non-answer ({outcome:?})"),
    }
});
