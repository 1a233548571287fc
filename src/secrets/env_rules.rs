//! Environment rules: which variables of the caller hold secrets, by name
//! (`*_TOKEN`, `AWS_*`) or by value (anything a content rule matches), and
//! which point at agent sockets (`SSH_AUTH_SOCK`).

use super::RuleError;
use super::content_rules::ContentEngine;
use crate::host::glob_match;

#[derive(Debug, Clone, Copy)]
pub struct EnvRule {
    pub id: &'static str,
    pub description: &'static str,
    /// Globs on the upper-cased name (`*` matches any run).
    pub patterns: &'static [&'static str],
}

pub const BUILTIN: &[EnvRule] = &[
    EnvRule {
        id: "env-token",
        description: "name says it holds a token",
        patterns: &[
            "*_TOKEN",
            "*_TOKEN_*",
            "TOKEN",
            "*_PAT",
            "*_AUTH",
            "*_AUTH_*",
            "*_COOKIE",
            "*_SESSION_KEY",
        ],
    },
    EnvRule {
        id: "env-secret",
        description: "name says it holds a secret or password",
        patterns: &[
            "*SECRET*",
            "*PASSWORD*",
            "*PASSWD*",
            "*PASSPHRASE*",
            "*_PWD",
            "*_PASS",
        ],
    },
    EnvRule {
        id: "env-key",
        description: "name says it holds a key",
        patterns: &[
            "*_KEY",
            "*_KEY_*",
            "*APIKEY*",
            "*API_KEY*",
            "*PRIVATE_KEY*",
            "*_KEYS",
        ],
    },
    EnvRule {
        id: "env-credentials",
        description: "name says it holds or points at credentials",
        patterns: &[
            "*_CREDENTIALS",
            "*_CREDENTIALS_*",
            "*_CREDS",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "*_CREDENTIAL",
        ],
    },
    EnvRule {
        id: "env-cloud",
        description: "cloud or deployment provider configuration",
        patterns: &[
            "AWS_*",
            "RAILWAY_*",
            "AZURE_CLIENT_*",
            "ARM_CLIENT_*",
            "VAULT_*",
            "CLOUDFLARE_API_*",
            "DIGITALOCEAN_*",
            "HEROKU_API_*",
        ],
    },
    EnvRule {
        id: "env-connection-uri",
        description: "database or service connection string",
        patterns: &[
            "DATABASE_URL",
            "*_DATABASE_URL",
            "*_DB_URL",
            "*_DSN",
            "*_CONNECTION_STRING",
            "*WEBHOOK*",
        ],
    },
];

/// Agent sockets: they grant what a credential grants (ssh-agent signs,
/// the secret service hands out passwords). Never passed unless a profile
/// names them.
pub const AGENT_SOCKETS: &[&str] = &[
    "SSH_AUTH_SOCK",
    "DBUS_SESSION_BUS_ADDRESS",
    "GPG_AGENT_INFO",
    "SSH_AGENT_PID",
];

pub fn builtin_ids() -> impl Iterator<Item = &'static str> {
    BUILTIN
        .iter()
        .map(|r| r.id)
        .chain(["env-value", "env-agent-socket"])
}

/// Why `name=value` is a secret, or `None`. `disabled` lists rule ids the
/// profile turned off.
pub fn secret_reason(
    name: &str,
    value: &str,
    engine: &ContentEngine,
    disabled: &[String],
    scratch: &mut super::content_rules::Scratch,
) -> Result<Option<String>, RuleError> {
    let on = |id: &str| !disabled.iter().any(|d| d == id);
    let upper = name.to_ascii_uppercase();
    if on("env-agent-socket") && AGENT_SOCKETS.contains(&upper.as_str()) {
        return Ok(Some("env-agent-socket".into()));
    }
    for rule in BUILTIN {
        if on(rule.id) && rule.patterns.iter().any(|p| glob_match(p, &upper)) {
            return Ok(Some(rule.id.into()));
        }
    }
    if !on("env-value") {
        return Ok(None);
    }
    // By value: every content rule, on the value as the assignment it is.
    let line = format!("{name}={value}");
    let scan = engine.scan_with(line.as_bytes(), scratch)?;
    if let Some(f) = scan.findings.first() {
        return Ok(Some(format!("env-value:{}", engine.rule_id(f.rule))));
    }
    // Connection strings: any password in a URI, placeholder-looking or not
    // (an environment is configuration, not documentation).
    if uri_userinfo_password(value).is_some_and(|pw| !pw.is_empty()) {
        return Ok(Some("env-value:uri-password".into()));
    }
    Ok(None)
}

/// The password of `scheme://user:password@host...`, if any.
fn uri_userinfo_password(v: &str) -> Option<&str> {
    let (_, rest) = v.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, pw) = userinfo.split_once(':')?;
    Some(pw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::content_rules;

    fn reason(name: &str, value: &str) -> Option<String> {
        let e = ContentEngine::new(content_rules::builtin()).unwrap();
        secret_reason(name, value, &e, &[], &mut Default::default()).unwrap()
    }

    #[test]
    fn by_name() {
        for n in [
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "RAILWAY_TOKEN",
            "RAILWAY_PROJECT_ID",
            "OPENAI_API_KEY",
            "DB_PASSWORD",
            "DATABASE_URL",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "SSH_AUTH_SOCK",
            "DBUS_SESSION_BUS_ADDRESS",
            "SENTRY_DSN",
            "NPM_CONFIG__AUTH",
        ] {
            assert!(reason(n, "x").is_some(), "{n}");
        }
        for n in [
            "PATH",
            "HOME",
            "LANG",
            "TERM",
            "EDITOR",
            "PWD",
            "KEYBOARD",
            "TOKENIZERS_PARALLELISM",
        ] {
            assert_eq!(reason(n, "/usr/bin"), None, "{n}");
        }
    }

    #[test]
    fn by_value() {
        let gh = ["gh", "p_", &"Ab1Cd2Ef3Gh4".repeat(3)].concat();
        assert_eq!(
            reason("MY_VAR", &gh).as_deref(),
            Some("env-value:github-token")
        );
        let uri = ["postgres://u:", "pass", "@host/db"].concat();
        assert_eq!(
            reason("DB", &uri).as_deref(),
            Some("env-value:uri-password")
        );
        assert_eq!(reason("DB", "postgres://host/db"), None);
        assert_eq!(reason("EDITOR", "vim"), None);
    }

    #[test]
    fn disabled_rules_are_skipped() {
        let e = ContentEngine::new(content_rules::builtin()).unwrap();
        assert!(
            secret_reason(
                "AWS_REGION",
                "eu",
                &e,
                &["env-cloud".into()],
                &mut Default::default()
            )
            .unwrap()
            .is_none()
        );
    }
}
