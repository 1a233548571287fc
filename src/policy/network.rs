//! The network part of the policy: the profile's `[network]` table plus
//! `--allow-host` flags, or nothing at all with `--no-network`.

use crate::error::{Error, Result};
use crate::net::NetPolicy;
use crate::net::allowlist::{Rule, parse_rule};
use crate::profile::Loaded;

/// Whether the sandbox gets any egress at all.
pub fn network_enabled(profile: &Loaded, no_network: bool) -> bool {
    !no_network && profile.profile.network.disabled != Some(true)
}

/// `registries`: rules for the package registries the profile names, as the
/// tools are configured (looked up by the caller: host facts).
pub fn network(
    profile: &Loaded,
    allow_host: &[String],
    no_network: bool,
    registries: Vec<Rule>,
) -> Result<NetPolicy> {
    // Checked even when the network is off: a typo is an error either way.
    let mut cli = Vec::new();
    for raw in allow_host {
        cli.push(parse_rule(raw).map_err(|e| {
            Error::usage_hint(
                format!("--allow-host {raw}: {e}"),
                "give HOST or HOST:PORT, e.g. --allow-host api.example.com or --allow-host '*.example.com:8443'",
            )
        })?);
    }
    if !network_enabled(profile, no_network) {
        return Ok(NetPolicy::default());
    }
    let mut allow = profile
        .profile
        .network
        .allowlist(&format!("profile {}", profile.name));
    allow.rules.extend(registries);
    for (host, port) in cli {
        allow.rules.push(Rule {
            host,
            port,
            // Private addresses need a profile rule that says so: a flag
            // typed in a hurry must not open the LAN or the metadata service.
            private: false,
            origin: "--allow-host".into(),
        });
    }
    Ok(NetPolicy {
        enabled: true,
        allow,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(text: &str) -> Loaded {
        Loaded {
            name: "p".into(),
            origin: "p.toml".into(),
            profile: crate::profile::parse(text, "p.toml").unwrap(),
            layers: vec![],
        }
    }

    #[test]
    fn profile_and_flags_combine() {
        let l = loaded("version = 1\n[network]\nallow = [\"a.com\"]\n");
        let n = network(&l, &["b.com:8443".into()], false, vec![]).unwrap();
        assert!(n.enabled);
        let specs: Vec<String> = n
            .allow
            .rules
            .iter()
            .map(|r| format!("{} [{}]", r.spec(), r.origin))
            .collect();
        assert_eq!(specs, ["a.com [profile p]", "b.com:8443 [--allow-host]"]);
    }

    #[test]
    fn no_network_removes_everything() {
        let l = loaded("version = 1\n[network]\nallow = [\"a.com\"]\n");
        let n = network(&l, &[], true, vec![]).unwrap();
        assert!(!n.enabled);
        assert!(n.allow.is_empty());
    }

    #[test]
    fn bad_flag_is_a_usage_error() {
        let l = loaded("version = 1\n");
        let e = network(&l, &["a b".into()], false, vec![]).unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e.render().contains("--allow-host a b"), "{}", e.render());
    }
}
