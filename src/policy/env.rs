//! The command's environment, built as data: only names the profile passes
//! through (or `--allow-env` names), plus the profile's fixed values. Nothing
//! is inherited by default; the secrets layer refines this list.

use std::collections::BTreeMap;
use std::path::Path;

/// Does `name` match a pass pattern (`NAME` or `PREFIX*`)?
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Returns (environment for the command, names of caller variables left out).
pub fn build_env(
    host_env: &[(String, String)],
    pass: &[String],
    set: &BTreeMap<String, String>,
    allow_env: &[String],
    home: &Path,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut removed = Vec::new();
    for (name, value) in host_env {
        let passed = pass.iter().any(|p| matches(p, name)) || allow_env.iter().any(|a| a == name);
        if passed {
            env.insert(name.clone(), value.clone());
        } else {
            removed.push(name.clone());
        }
    }
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
    removed.sort();
    (env.into_iter().collect(), removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passed_names_survive() {
        let host = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("LC_ALL".to_string(), "C".to_string()),
            ("GITHUB_TOKEN".to_string(), "x".to_string()),
            ("FOO".to_string(), "1".to_string()),
        ];
        let (env, removed) = build_env(
            &host,
            &["PATH".into(), "LC_*".into()],
            &BTreeMap::new(),
            &["FOO".into()],
            Path::new("/home/u"),
        );
        let names: Vec<_> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["FOO", "GUARD_SANDBOX", "HOME", "LC_ALL", "PATH"]);
        assert_eq!(removed, ["GITHUB_TOKEN"]);
    }
}
