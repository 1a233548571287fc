//! Path rules: files and directories that are secrets by what they are
//! (`.env`, `*.pem`, `~/.aws`), hidden whatever they contain.
//!
//! Globs match the path relative to the scan's anchor (the project root, or
//! home for granted home paths); `*` stays within one component and `**/`
//! matches any depth, so `**/.aws` catches `.aws` anywhere.

use super::RuleError;
use aho_corasick::AhoCorasick;
use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// When a matching path is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Always,
    /// Only if the content scan finds a secret in it (`.npmrc` with auth,
    /// `.env.example` with real values rather than placeholders).
    IfSecretContent,
}

#[derive(Debug, Clone)]
pub struct PathRule {
    pub id: String,
    pub description: String,
    pub globs: Vec<String>,
    pub except: Vec<String>,
    pub when: When,
}

type Table = &'static [(
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    When,
)];

/// Built-in path rules: (id, description, globs, except, when).
const BUILTIN: Table = &[
    (
        "dotenv",
        "dotenv file (environment secrets)",
        &["**/.env", "**/.env.*", "**/*.env"],
        &[
            "**/.env.example",
            "**/.env.sample",
            "**/.env.template",
            "**/.env.*.example",
            "**/.env.*.sample",
            "**/.env.*.template",
        ],
        When::Always,
    ),
    (
        "dotenv-template",
        "dotenv template that holds real values, not placeholders",
        &[
            "**/.env.example",
            "**/.env.sample",
            "**/.env.template",
            "**/.env.*.example",
            "**/.env.*.sample",
            "**/.env.*.template",
        ],
        &[],
        When::IfSecretContent,
    ),
    (
        "key-file",
        "private key or keystore file",
        &[
            "**/*.pem",
            "**/*.key",
            "**/*.p12",
            "**/*.pfx",
            "**/*.jks",
            "**/*.keystore",
            "**/*.ppk",
        ],
        &[],
        When::Always,
    ),
    (
        "ssh-private-key",
        "SSH private key",
        &["**/id_rsa*", "**/id_dsa*", "**/id_ecdsa*", "**/id_ed25519*"],
        &["**/*.pub"],
        When::Always,
    ),
    (
        "ssh-dir",
        "SSH keys and configuration",
        &["**/.ssh"],
        &[],
        When::Always,
    ),
    ("gnupg", "GnuPG keyring", &["**/.gnupg"], &[], When::Always),
    (
        "password-store",
        "pass password store",
        &["**/.password-store"],
        &[],
        When::Always,
    ),
    (
        "keyring",
        "desktop keyring (GNOME keyring, KWallet)",
        &[
            "**/.local/share/keyrings",
            "**/.gnome2/keyrings",
            "**/.local/share/kwalletd",
            "**/.kde/share/apps/kwallet",
            "**/.kde4/share/apps/kwallet",
        ],
        &[],
        When::Always,
    ),
    (
        "aws",
        "AWS credentials and config",
        &["**/.aws"],
        &[],
        When::Always,
    ),
    (
        "azure",
        "Azure CLI credentials",
        &["**/.azure"],
        &[],
        When::Always,
    ),
    (
        "gcloud",
        "Google Cloud SDK credentials",
        &["**/.config/gcloud"],
        &[],
        When::Always,
    ),
    (
        "kube",
        "Kubernetes credentials",
        &["**/.kube"],
        &[],
        When::Always,
    ),
    (
        "docker-config",
        "Docker registry credentials",
        &["**/.docker/config.json"],
        &[],
        When::Always,
    ),
    (
        "netrc",
        "netrc login credentials",
        &["**/.netrc", "**/_netrc"],
        &[],
        When::Always,
    ),
    (
        "npmrc",
        "npm/yarn config holding an auth token",
        &["**/.npmrc", "**/.yarnrc.yml", "**/.yarnrc"],
        &[],
        When::IfSecretContent,
    ),
    (
        "pypirc",
        "Python package index credentials",
        &["**/.pypirc"],
        &[],
        When::Always,
    ),
    (
        "cargo-credentials",
        "Cargo registry token",
        &["**/.cargo/credentials", "**/.cargo/credentials.toml"],
        &[],
        When::Always,
    ),
    (
        "git-credentials",
        "git credential store",
        &["**/.git-credentials", "**/.config/git/credentials"],
        &[],
        When::Always,
    ),
    (
        "gh",
        "GitHub CLI credentials",
        &["**/.config/gh", "**/.config/hub"],
        &[],
        When::Always,
    ),
    (
        "cloud-cli",
        "deployment CLI credentials (Railway, Fly, Vercel, Netlify, Heroku, Supabase, 1Password, DigitalOcean)",
        &[
            "**/.railway",
            "**/.config/railway",
            "**/.fly",
            "**/.vercel",
            "**/.netlify",
            "**/.heroku",
            "**/.supabase",
            "**/.config/op",
            "**/.config/doctl",
        ],
        &[],
        When::Always,
    ),
    (
        "terraform",
        "Terraform credentials and state (state holds secrets in plain text)",
        &[
            "**/.terraform.d/credentials*",
            "**/terraform.tfstate*",
            "**/*.tfstate",
            "**/*.tfstate.backup",
        ],
        &[],
        When::Always,
    ),
    (
        "vault-token",
        "HashiCorp Vault token",
        &["**/.vault-token"],
        &[],
        When::Always,
    ),
    (
        "credentials-json",
        "OAuth client secrets and service-account key files",
        &[
            "**/client_secret*.json",
            "**/application_default_credentials.json",
            "**/*service-account*.json",
            "**/*serviceaccount*.json",
        ],
        &[],
        When::Always,
    ),
    (
        "db-credentials",
        "database and storage client credentials",
        &[
            "**/.pgpass",
            "**/.my.cnf",
            "**/.s3cfg",
            "**/.boto",
            "**/.htpasswd",
        ],
        &[],
        When::Always,
    ),
    (
        "shell-history",
        "shell and REPL history (commands often carry secrets)",
        &[
            "**/.bash_history",
            "**/.zsh_history",
            "**/.zhistory",
            "**/.history",
            "**/.sh_history",
            "**/.local/share/fish/fish_history",
            "**/.python_history",
            "**/.node_repl_history",
            "**/.psql_history",
            "**/.mysql_history",
            "**/.sqlite_history",
            "**/.rediscli_history",
            "**/.irb_history",
            "**/.viminfo",
        ],
        &[],
        When::Always,
    ),
    (
        "browser-profile",
        "browser and mail profiles (cookies, saved passwords)",
        &[
            "**/.mozilla",
            "**/.thunderbird",
            "**/snap/firefox",
            "**/snap/chromium",
            "**/.config/google-chrome",
            "**/.config/chromium",
            "**/.config/BraveSoftware",
            "**/.config/microsoft-edge",
            "**/.config/vivaldi",
            "**/.config/opera",
        ],
        &[],
        When::Always,
    ),
];

pub fn builtin_ids() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|b| b.0)
}

pub fn builtin() -> Vec<PathRule> {
    BUILTIN
        .iter()
        .map(|(id, description, globs, except, when)| PathRule {
            id: id.to_string(),
            description: description.to_string(),
            globs: globs.iter().map(|g| g.to_string()).collect(),
            except: except.iter().map(|g| g.to_string()).collect(),
            when: *when,
        })
        .collect()
}

/// Compile one glob the way every path glob in guard is compiled.
pub fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// All path rules compiled into one glob set, behind a cheap prefilter.
/// Cloning gives a matcher with its own regex caches (one per thread).
#[derive(Clone)]
pub struct PathMatcher {
    rules: Vec<PathRule>,
    set: GlobSet,
    glob_rule: Vec<usize>,
    except: Vec<Option<GlobSet>>,
    /// A basename can only match if it holds one of these literals (each
    /// glob's longest literal run in its last component); `None` when some
    /// glob has no such literal, and every path goes to the glob set.
    prefilter: Option<AhoCorasick>,
}

/// The longest run of literal characters in the last component of `glob`
/// (outside `[...]`, `{...}` and escapes), if any.
fn basename_literal(glob: &str) -> Option<&str> {
    let last = glob.rsplit('/').next().unwrap_or(glob);
    if last.contains('\\') || last == "**" {
        return None;
    }
    let mut best: Option<&str> = None;
    let mut depth = 0i32;
    let mut run_start = None;
    for (i, c) in last.char_indices() {
        let special = matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | ',');
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            _ => {}
        }
        if special || depth > 0 {
            if let Some(st) = run_start.take() {
                let run = &last[st..i];
                if best.is_none_or(|b| run.len() > b.len()) {
                    best = Some(run);
                }
            }
        } else if run_start.is_none() {
            run_start = Some(i);
        }
    }
    if let Some(st) = run_start {
        let run = &last[st..];
        if best.is_none_or(|b| run.len() > b.len()) {
            best = Some(run);
        }
    }
    best.filter(|b| !b.is_empty())
}

impl PathMatcher {
    pub fn new(rules: Vec<PathRule>) -> Result<PathMatcher, RuleError> {
        let bad = |r: &PathRule, g: &str, e: globset::Error| {
            RuleError::new(format!("path rule {:?}: glob {g:?}: {e}", r.id))
        };
        let mut b = GlobSetBuilder::new();
        let mut glob_rule = Vec::new();
        let mut except = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for g in &r.globs {
                b.add(glob(g).map_err(|e| bad(r, g, e))?);
                glob_rule.push(i);
            }
            if r.except.is_empty() {
                except.push(None);
            } else {
                let mut eb = GlobSetBuilder::new();
                for g in &r.except {
                    eb.add(glob(g).map_err(|e| bad(r, g, e))?);
                }
                except.push(Some(eb.build().map_err(|e| RuleError::new(e.to_string()))?));
            }
        }
        let set = b.build().map_err(|e| RuleError::new(e.to_string()))?;
        let literals: Option<Vec<&str>> = rules
            .iter()
            .flat_map(|r| r.globs.iter())
            .map(|g| basename_literal(g))
            .collect();
        let prefilter = match literals {
            Some(lits) if !lits.is_empty() => Some(
                AhoCorasick::builder()
                    // An NFA builds in microseconds; the DFA the default
                    // would pick costs milliseconds on every start.
                    .kind(Some(aho_corasick::AhoCorasickKind::NoncontiguousNFA))
                    .build(&lits)
                    .map_err(|e| RuleError::new(format!("cannot build the path prefilter: {e}")))?,
            ),
            _ => None,
        };
        Ok(PathMatcher {
            rules,
            set,
            glob_rule,
            except,
            prefilter,
        })
    }

    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }

    pub fn rule(&self, i: usize) -> &PathRule {
        &self.rules[i]
    }

    /// The rule that claims `rel` (a path relative to its anchor): an
    /// `Always` rule before an `IfSecretContent` one. `scratch` is reused
    /// between calls to avoid allocating.
    pub fn matches(&self, rel: &Path, scratch: &mut Vec<usize>) -> Option<usize> {
        if let Some(pre) = &self.prefilter {
            let base = rel.as_os_str().as_bytes();
            let base = base.rsplit(|&b| b == b'/').next().unwrap_or(base);
            if !pre.is_match(base) {
                return None;
            }
        }
        let cand = Candidate::new(rel);
        if !self.set.is_match_candidate(&cand) {
            return None;
        }
        self.set.matches_candidate_into(&cand, scratch);
        let mut best: Option<usize> = None;
        for &g in scratch.iter() {
            let r = self.glob_rule[g];
            if self.except[r]
                .as_ref()
                .is_some_and(|e| e.is_match_candidate(&cand))
            {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => self.rules[b].when != When::Always && self.rules[r].when == When::Always,
            };
            if better {
                best = Some(r);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(m: &PathMatcher, p: &str) -> Option<String> {
        m.matches(Path::new(p), &mut Vec::new())
            .map(|i| m.rule(i).id.clone())
    }

    #[test]
    fn builtin_rules_match_what_they_say() {
        let m = PathMatcher::new(builtin()).unwrap();
        let cases = [
            (".env", Some("dotenv")),
            ("svc/.env.production", Some("dotenv")),
            ("deploy/prod.env", Some("dotenv")),
            (".env.example", Some("dotenv-template")),
            ("web/.env.local.sample", Some("dotenv-template")),
            ("deploy/tls/server.pem", Some("key-file")),
            ("x.key", Some("key-file")),
            (".ssh", Some("ssh-dir")),
            ("keys/id_ed25519", Some("ssh-private-key")),
            ("keys/id_ed25519.pub", None),
            ("src/id_map.rs", None),
            (".aws", Some("aws")),
            (".config/gcloud", Some("gcloud")),
            (".config", None),
            (".docker/config.json", Some("docker-config")),
            (".npmrc", Some("npmrc")),
            (".cargo/credentials.toml", Some("cargo-credentials")),
            (".cargo/config.toml", None),
            ("infra/terraform.tfstate.backup", Some("terraform")),
            (".terraform.d/credentials.tfrc.json", Some("terraform")),
            (".bash_history", Some("shell-history")),
            (".mozilla", Some("browser-profile")),
            (".local/share/keyrings", Some("keyring")),
            ("src/main.rs", None),
            ("environment.rs", None),
            ("src/env.rs", None),
        ];
        for (p, want) in cases {
            assert_eq!(id(&m, p).as_deref(), want, "{p}");
        }
    }

    #[test]
    fn basename_literals() {
        assert_eq!(basename_literal("**/.env.*"), Some(".env."));
        assert_eq!(basename_literal("**/*.pem"), Some(".pem"));
        assert_eq!(basename_literal("**/.config/gcloud"), Some("gcloud"));
        assert_eq!(
            basename_literal("**/client_secret*.json"),
            Some("client_secret")
        );
        assert_eq!(basename_literal("**/{a,bcd}x.txt"), Some("x.txt"));
        assert_eq!(basename_literal("notes"), Some("notes"));
        assert_eq!(basename_literal("secrets/**"), None);
        assert_eq!(basename_literal("**/*"), None);
    }

    #[test]
    fn bad_glob_is_an_error() {
        let r = PathRule {
            id: "x".into(),
            description: "x".into(),
            globs: vec!["a[".into()],
            except: vec![],
            when: When::Always,
        };
        assert!(PathMatcher::new(vec![r]).is_err());
    }
}
