//! The command's environment, built as data: only names the profile passes
//! through (or `--allow-env` names), plus the profile's fixed values, minus
//! every variable the secrets rules call secret (by name or by value) unless
//! `--allow-env` names it exactly, or the profile does and the name itself
//! says secret. Nothing is inherited by default.

use crate::error::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// Does `name` match a pass pattern (`NAME` or `PREFIX*`)?
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The built environment and what was left out (names only, never values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltEnv {
    pub env: Vec<(String, String)>,
    /// Caller variables not in the pass list.
    pub removed: Vec<String>,
    /// Caller variables in the pass list but secret: (name, rule id).
    pub secret: Vec<(String, String)>,
}

/// `is_secret(name, value)` says why a variable is a secret (a rule id), or
/// `None`. An exact name in `allow_env` overrides it; in `pass`, only when
/// the name itself says secret (a value alone found secret is never passed
/// by a profile); a wildcard (`LC_*`) never does. Agent sockets
/// (`SSH_AUTH_SOCK` …) pass only when the profile names them: a flag typed
/// in a hurry must not hand the agent the user's ssh-agent.
pub fn build_env(
    host_env: &[(String, String)],
    pass: &[String],
    set: &BTreeMap<String, String>,
    allow_env: &[String],
    home: &Path,
    is_secret: &dyn Fn(&str, &str) -> Result<Option<String>>,
) -> Result<BuiltEnv> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BuiltEnv::default();
    for (name, value) in host_env {
        let by_profile = pass.iter().any(|p| p == name);
        let by_cli = allow_env.iter().any(|a| a == name);
        let passed = by_profile || by_cli || pass.iter().any(|p| matches(p, name));
        if !passed {
            out.removed.push(name.clone());
            continue;
        }
        if let Some(rule) = is_secret(name, value)? {
            let agent_socket = rule == "env-agent-socket";
            // A profile names a variable for what its name says: a
            // credential one (`ANTHROPIC_API_KEY`) passes with its secret,
            // a configuration one (`EDITOR`, `GOPROXY`, a base URL) was not
            // named for a secret its value happens to carry
            // (`https://user:token@proxy`): that stays out.
            let by_value_only = rule.starts_with("env-value") && is_secret(name, "")?.is_none();
            let explicit = (by_profile && !by_value_only) || (by_cli && !agent_socket);
            if !explicit {
                out.secret.push((name.clone(), rule));
                continue;
            }
        }
        env.insert(name.clone(), value.clone());
    }
    // Fixed values come from the profile itself: explicit by definition.
    for (k, v) in set {
        env.insert(k.clone(), v.clone());
    }
    // The sandbox keeps the home path (tools compute paths from it), but the
    // directory inside is guard's private one.
    env.insert("HOME".into(), home.display().to_string());
    // Lets shims and tools know they already run inside guard.
    env.insert("GUARD_SANDBOX".into(), "1".into());
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
    out.removed.sort();
    out.secret.sort();
    out.env = env.into_iter().collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_secrets(_: &str, _: &str) -> Result<Option<String>> {
        Ok(None)
    }

    fn by_name(name: &str, _: &str) -> Result<Option<String>> {
        Ok(match name {
            "GITHUB_TOKEN" | "LC_TOKEN" => Some("env-token".into()),
            "SSH_AUTH_SOCK" => Some("env-agent-socket".into()),
            _ => None,
        })
    }

    fn host() -> Vec<(String, String)> {
        [
            ("PATH", "/bin"),
            ("LC_ALL", "C"),
            ("LC_TOKEN", "t"),
            ("GITHUB_TOKEN", "x"),
            ("FOO", "1"),
            ("SSH_AUTH_SOCK", "/s"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn only_passed_names_survive() {
        let b = build_env(
            &host(),
            &["PATH".into(), "LC_*".into()],
            &BTreeMap::new(),
            &["FOO".into()],
            Path::new("/home/u"),
            &no_secrets,
        )
        .unwrap();
        let names: Vec<_> = b.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["FOO", "GUARD_SANDBOX", "HOME", "LC_ALL", "LC_TOKEN", "PATH"]
        );
        assert_eq!(b.removed, ["GITHUB_TOKEN", "SSH_AUTH_SOCK"]);
    }

    #[test]
    fn secrets_are_removed_unless_named_exactly() {
        // Passed by a wildcard: the secret filter removes it.
        let b = build_env(
            &host(),
            &["*".into()],
            &BTreeMap::new(),
            &[],
            Path::new("/h"),
            &by_name,
        )
        .unwrap();
        let names: Vec<_> = b.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["FOO", "GUARD_SANDBOX", "HOME", "LC_ALL", "PATH"]);
        let secret: Vec<_> = b.secret.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(secret, ["GITHUB_TOKEN", "LC_TOKEN", "SSH_AUTH_SOCK"]);

        // Named by --allow-env: passes; the agent socket still does not.
        let b = build_env(
            &host(),
            &["*".into()],
            &BTreeMap::new(),
            &["GITHUB_TOKEN".into(), "SSH_AUTH_SOCK".into()],
            Path::new("/h"),
            &by_name,
        )
        .unwrap();
        assert!(b.env.iter().any(|(k, _)| k == "GITHUB_TOKEN"));
        assert!(!b.env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK"));

        // Named by the profile: both pass.
        let b = build_env(
            &host(),
            &["GITHUB_TOKEN".into(), "SSH_AUTH_SOCK".into()],
            &BTreeMap::new(),
            &[],
            Path::new("/h"),
            &by_name,
        )
        .unwrap();
        assert!(b.env.iter().any(|(k, _)| k == "GITHUB_TOKEN"));
        assert!(b.env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK"));
    }

    #[test]
    fn a_profile_passes_a_secret_value_only_under_a_secret_name() {
        let is_secret = |name: &str, value: &str| -> Result<Option<String>> {
            Ok(if name.ends_with("_KEY") {
                Some("env-key".into())
            } else if value.contains("flagged") {
                Some("env-value:uri-password".into())
            } else {
                None
            })
        };
        let host: Vec<(String, String)> = [
            ("API_KEY", "flagged value"),
            ("GOPROXY", "a flagged value"),
            ("EDITOR", "vi"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let pass = ["API_KEY".into(), "GOPROXY".into(), "EDITOR".into()];
        let b = build_env(
            &host,
            &pass,
            &BTreeMap::new(),
            &[],
            Path::new("/h"),
            &is_secret,
        )
        .unwrap();
        let names: Vec<_> = b.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["API_KEY", "EDITOR", "GUARD_SANDBOX", "HOME", "PATH"]
        );
        assert_eq!(
            b.secret,
            [("GOPROXY".into(), "env-value:uri-password".into())]
        );
        // The user's own flag for this run still passes it.
        let b = build_env(
            &host,
            &pass,
            &BTreeMap::new(),
            &["GOPROXY".into()],
            Path::new("/h"),
            &is_secret,
        )
        .unwrap();
        assert!(b.env.iter().any(|(k, _)| k == "GOPROXY"));
    }
}
