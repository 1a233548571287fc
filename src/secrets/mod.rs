//! Secrets: find them in files and in the environment, so that the sandbox
//! never sees them. Files that are secrets (by path, or mostly secret
//! content) are hidden; files that mix code and a secret are redacted (the
//! sandbox reads a copy with each value replaced by `guard-redacted:<rule>`);
//! secret environment variables are not passed.
//!
//! Threat model: the agent reads every file it can reach and uses any
//! credential it finds, within seconds. So the scan covers every file of the
//! project, git-ignored ones included (that is where `.env` lives), and the
//! home paths a profile grants; it never follows symlinks (a link out of the
//! project leads to a path the sandbox cannot see unless granted, and
//! granted paths are scanned themselves). Rules err towards hiding for
//! well-known formats and towards leaving code alone for guesses (a
//! secret-sounding name with a high-entropy value). Git's object files are
//! compressed, so committed secrets are found by [`history`], which reads
//! every object and has sanitized copies of the object files mounted. Not covered: binary files
//! and text files over 2 MiB (not scanned), secrets split across lines or
//! encoded, and files created while the
//! sandbox runs (the agent wrote those itself). The scan cache holds no
//! secret value (rule ids, positions, a 32-bit fingerprint; and the names of
//! each directory's entries) and lives in a directory the sandbox cannot
//! see, so the agent cannot mark a secret file as clean, or hide a file from
//! the next scan.

mod cache;
pub mod content_rules;
mod entropy;
pub mod env_rules;
mod git_pack;
pub mod history;
mod mapped;
pub mod path_rules;
pub mod redact;
pub mod report;
mod scan;
pub(crate) mod walk;

use crate::error::{Error, Result};
use crate::profile;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use cache::{cache_dir, file_name as cache_file_name, path_hash as project_hash};
pub use content_rules::{ContentEngine, ContentRule};
pub use path_rules::{PathMatcher, PathRule};
pub use scan::{Copy, Root, ScanReport, Stats, copy_of, scan, settings_copy, walk_listed};

/// The identity of the rules in force, for caches of scan results.
pub fn rules_fingerprint(rules: &Rules) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(scan::cache_fingerprint(rules));
    for r in rules.paths.rules() {
        h.update(r.id.as_bytes());
        h.update([r.when as u8]);
        for g in r
            .globs
            .iter()
            .chain(["\0".to_string()].iter())
            .chain(r.except.iter())
        {
            h.update(g.as_bytes());
            h.update([0]);
        }
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Text files larger than this are not scanned.
pub const MAX_FILE_SIZE: u64 = 2 << 20;

/// A file of an installed package (`node_modules`, Python's
/// `site-packages`): only well-known token formats and keys count there.
/// The generic rule's guesses in minified and generated code are mostly
/// wrong, and each file it covers breaks the package, and cannot be
/// removed while the sandbox runs (`npm uninstall`, `pip uninstall`: EBUSY).
/// The user's own secrets are not kept there.
pub fn installed_package(path: &std::path::Path) -> bool {
    path.components().any(|c| {
        matches!(
            c.as_os_str().as_encoded_bytes(),
            b"node_modules" | b"site-packages" | b"dist-packages"
        )
    })
}

/// One secret value inside a file. Offsets are bytes; `line` is 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Index of the content rule in its engine.
    pub rule: u16,
    pub line: u32,
    pub start: u32,
    pub end: u32,
    pub fingerprint: u32,
}

/// A rule that cannot be used (bad glob, regex that fails to compile).
#[derive(Debug, Clone)]
pub struct RuleError(pub String);

impl RuleError {
    pub fn new(msg: impl Into<String>) -> Self {
        RuleError(msg.into())
    }
}

impl From<RuleError> for Error {
    fn from(e: RuleError) -> Self {
        Error::Unsupported {
            what: "the secrets scan".into(),
            cause: e.0,
            hint: Some("fix or disable the rule in the profile's [secrets] section".into()),
        }
    }
}

/// What happens to a file inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Replaced by an empty read-only file or directory.
    Hide,
    /// Replaced by a read-only copy with each secret value replaced.
    Redact,
}

/// One rule hit, for reports. Never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// First 8 hex digits of the value's SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// A file or directory the sandbox must not see as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flagged {
    /// Any bytes: the name may not be UTF-8 (see `plan::os_path`).
    #[serde(with = "crate::plan::os_path")]
    pub path: PathBuf,
    pub dir: bool,
    pub action: Action,
    /// Why, in words (the deciding rule's description).
    pub reason: String,
    pub hits: Vec<Hit>,
}

/// A redacted copy, ready to be mounted read-only over `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    #[serde(with = "crate::plan::os_path")]
    pub path: PathBuf,
    pub content: String,
    /// Permission bits of the original (no setuid/setgid/sticky); the
    /// mount is read-only whatever they say.
    pub mode: u32,
    pub rules: Vec<String>,
}

/// Globs that select paths: relative ones match the path below the scan's
/// anchor (project or home), absolute ones (`/…`, `~/…`, `{project}/…`)
/// match the whole path.
pub struct Scope {
    rel: path_rules::Globs,
    abs: path_rules::Globs,
}

impl Scope {
    fn new(
        globs: &[String],
        home: &Path,
        project: &Path,
    ) -> std::result::Result<Scope, (usize, globset::Error)> {
        let (mut rel, mut abs) = (Vec::new(), Vec::new());
        for (i, g) in globs.iter().enumerate() {
            match expand_glob(g, home, project) {
                Some(a) => abs.push((i, a)),
                None => rel.push((i, g.clone())),
            };
        }
        let build = |list: &[(usize, String)]| {
            path_rules::Globs::new(list.iter().map(|(_, g)| g.as_str()))
                .map_err(|(at, e)| (list[at].0, e))
        };
        Ok(Scope {
            rel: build(&rel)?,
            abs: build(&abs)?,
        })
    }

    pub fn is_match(&self, rel: &Path, abs: &Path) -> bool {
        self.rel.is_match(rel) || self.abs.is_match(abs)
    }
}

fn expand_glob(g: &str, home: &Path, project: &Path) -> Option<String> {
    if g.starts_with('/') {
        Some(g.to_string())
    } else if g == "~" || g.starts_with("~/") || g.starts_with("{project}") {
        profile::expand_path(g, home, project).map(|p| p.display().to_string())
    } else {
        None
    }
}

/// The rules of a run, kept for what reads files after the start (a
/// redacted file the host replaces during the run is redacted again).
#[derive(Clone, Default)]
pub struct SharedRules(pub Option<std::sync::Arc<Rules>>);

impl std::fmt::Debug for SharedRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedRules")
    }
}

/// Every rule in force for one run: built-ins plus the profile's additions,
/// minus what it disables.
pub struct Rules {
    pub paths: PathMatcher,
    pub content: ContentEngine,
    pub disabled: Vec<String>,
    pub ignore: Scope,
    pub skip: Scope,
    /// Working memory reused across environment checks (one per variable
    /// on every start: fresh memory each time cost ~20 µs a variable).
    env_scratch: std::sync::Mutex<content_rules::Scratch>,
}

impl Rules {
    pub fn new(cfg: &profile::Secrets, origin: &str, home: &Path, project: &Path) -> Result<Rules> {
        let fail = |msg: String| {
            Error::Profile {
            location: origin.to_string(),
            msg,
            hint: Some(
                "merge rules with `|`, or `disable` built-in rules you do not need; [secrets] is described in docs/profiles.md"
                    .into(),
            ),
        }
        };
        // Each file checks its own ids; layers merged together can still
        // define one twice, and `disable` would then turn both off.
        let ids = cfg
            .path_rules
            .iter()
            .map(|r| &r.id)
            .chain(cfg.content_rules.iter().map(|r| &r.id));
        let mut seen: Vec<&str> = Vec::new();
        for id in ids {
            if seen.contains(&id.get_ref().as_str()) {
                return Err(Error::Profile {
                    location: origin.to_string(),
                    msg: format!(
                        "rule id {:?} is defined by more than one of the profile's layers",
                        id.get_ref()
                    ),
                    hint: Some(
                        "rename one of them; `guard profile show NAME` lists the layers".into(),
                    ),
                });
            }
            seen.push(id.get_ref());
        }
        let disabled: Vec<String> = cfg.disable.iter().map(|d| d.get_ref().clone()).collect();
        let off = |id: &str| disabled.iter().any(|d| d == id);

        let mut paths: Vec<PathRule> = path_rules::builtin()
            .into_iter()
            .filter(|r| !off(&r.id))
            .collect();
        for r in &cfg.path_rules {
            if off(r.id.get_ref()) {
                continue;
            }
            paths.push(PathRule {
                id: r.id.get_ref().clone(),
                description: r.description.clone(),
                globs: r.globs.iter().map(|g| g.get_ref().clone()).collect(),
                except: r.except.iter().map(|g| g.get_ref().clone()).collect(),
                when: path_rules::When::Always,
            });
        }
        let paths = PathMatcher::new(paths).map_err(|e| fail(e.0))?;

        let mut content: Vec<ContentRule> = content_rules::builtin()
            .into_iter()
            .filter(|r| !off(&r.id))
            .collect();
        // Profile rules go before the generic assignment rule, so their id
        // names a finding both match.
        let generic = content
            .iter()
            .position(|r| r.kind == content_rules::Kind::Assignment);
        let at = generic.unwrap_or(content.len());
        for (n, r) in cfg
            .content_rules
            .iter()
            .filter(|r| !off(r.id.get_ref()))
            .enumerate()
        {
            content.insert(
                at + n,
                ContentRule {
                    id: r.id.get_ref().clone(),
                    description: r.description.clone(),
                    pattern: r.regex.get_ref().clone(),
                    keywords: r.keywords.clone(),
                    kind: content_rules::Kind::Token,
                    hide_file: r.hide_file,
                },
            );
        }
        let content = ContentEngine::new(content).map_err(|e| fail(e.0))?;

        let strings = |v: &[profile::Spanned<String>]| {
            v.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>()
        };
        let ignore = Scope::new(&strings(&cfg.ignore), home, project)
            .map_err(|(i, e)| fail(format!("key `secrets.ignore[{i}]`: {e}")))?;
        let skip = Scope::new(&strings(&cfg.skip), home, project)
            .map_err(|(i, e)| fail(format!("key `secrets.skip[{i}]`: {e}")))?;
        Ok(Rules {
            paths,
            content,
            disabled,
            ignore,
            skip,
            env_scratch: std::sync::Mutex::new(content_rules::Scratch::default()),
        })
    }

    /// Why a caller's variable must not reach the command, if it must not.
    pub fn env_secret(&self, name: &str, value: &str) -> Result<Option<String>> {
        let mut guard = self.env_scratch.lock().unwrap_or_else(|p| p.into_inner());
        Ok(env_rules::secret_reason(
            name,
            value,
            &self.content,
            &self.disabled,
            &mut guard,
        )?)
    }
}

/// A setting in `[secrets]` that cannot be used, with its position.
#[derive(Debug)]
pub struct BadSetting {
    pub key: String,
    pub span: Range<usize>,
    pub msg: String,
    pub hint: String,
}

/// Check `[secrets]` when the profile is parsed: globs and regexes compile,
/// ids are unique, disabled ids exist. A typo must not silently turn a rule
/// off or leave a secret visible.
pub fn validate(cfg: &profile::Secrets) -> std::result::Result<(), BadSetting> {
    let bad = |key: String, s: &profile::Spanned<String>, msg: String, hint: &str| BadSetting {
        key,
        span: s.span(),
        msg,
        hint: hint.into(),
    };
    let glob_hint = "globs use `*`, `?`, `[...]`, `{a,b}` and `**/`";
    // An empty glob matches nothing: the rule or exemption would be dead.
    let glob = |g: &str| {
        if g.trim().is_empty() {
            Err("an empty glob".to_string())
        } else {
            path_rules::glob(g)
                .map(drop)
                .map_err(|e| format!("invalid glob: {e}"))
        }
    };
    for (list, name) in [(&cfg.skip, "skip"), (&cfg.ignore, "ignore")] {
        for (i, g) in list.iter().enumerate() {
            glob(g.get_ref()).map_err(|e| bad(format!("secrets.{name}[{i}]"), g, e, glob_hint))?;
        }
    }
    let mut ids: Vec<String> = Vec::new();
    let builtin = || {
        path_rules::builtin_ids()
            .chain(content_rules::builtin_ids())
            .chain(env_rules::builtin_ids())
    };
    let mut check_id = |key: String, id: &profile::Spanned<String>| {
        let s = id.get_ref().as_str();
        let ok_chars = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_chars {
            return Err(bad(
                key,
                id,
                format!("rule id {s:?} must be letters, digits, - and _"),
                "e.g. id = \"acme-api-key\"",
            ));
        }
        if builtin().any(|b| b == s) || ids.iter().any(|i| i == s) {
            return Err(bad(
                key,
                id,
                format!("rule id {s:?} is already taken"),
                "pick a new id; use `disable` to turn a built-in rule off",
            ));
        }
        ids.push(s.to_string());
        Ok(())
    };
    for (i, r) in cfg.path_rules.iter().enumerate() {
        check_id(format!("secrets.path_rules[{i}].id"), &r.id)?;
        if r.globs.is_empty() {
            return Err(bad(
                format!("secrets.path_rules[{i}].globs"),
                &r.id,
                "a path rule needs at least one glob".into(),
                glob_hint,
            ));
        }
        for (j, g) in r.globs.iter().enumerate() {
            glob(g.get_ref()).map_err(|e| {
                bad(
                    format!("secrets.path_rules[{i}].globs[{j}]"),
                    g,
                    e,
                    glob_hint,
                )
            })?;
        }
        for (j, g) in r.except.iter().enumerate() {
            glob(g.get_ref()).map_err(|e| {
                bad(
                    format!("secrets.path_rules[{i}].except[{j}]"),
                    g,
                    e,
                    glob_hint,
                )
            })?;
        }
    }
    for (i, r) in cfg.content_rules.iter().enumerate() {
        check_id(format!("secrets.content_rules[{i}].id"), &r.id)?;
        let key = format!("secrets.content_rules[{i}].regex");
        let re = content_rules::compile(r.regex.get_ref()).map_err(|e| {
            let msg = e.to_string().lines().last().unwrap_or("").trim().to_string();
            bad(
                key.clone(),
                &r.regex,
                format!("invalid regex: {msg}"),
                "regex syntax of the Rust regex crate; use a TOML literal string ('...') to avoid escaping backslashes",
            )
        })?;
        // It would flag every file (and hide or redact all of them).
        if re.is_match(b"") {
            return Err(bad(
                key,
                &r.regex,
                format!("the regex {:?} matches an empty string", r.regex.get_ref()),
                "make it match the secret itself, e.g. 'acme_[a-z0-9]{32}'",
            ));
        }
        // A misspelt `secret` group would redact the whole match silently.
        if let Some(other) = re
            .capture_names()
            .flatten()
            .find(|n| !matches!(*n, "secret" | "name"))
        {
            return Err(bad(
                key,
                &r.regex,
                format!("unknown group name `{other}`"),
                "the group holding the value to redact is named `secret`: (?P<secret>...); use (?:...) for other groups",
            ));
        }
        if let Some(k) = r.keywords.iter().position(|k| k.trim().is_empty()) {
            return Err(bad(
                format!("secrets.content_rules[{i}].keywords[{k}]"),
                &r.id,
                "an empty keyword (it would be on every line)".into(),
                "give words the matching lines contain, e.g. keywords = [\"acme_\"], or no keywords",
            ));
        }
    }
    if cfg.content_rules.len() > 64 {
        let first = &cfg.content_rules[64].id;
        return Err(bad(
            "secrets.content_rules".into(),
            first,
            "at most 64 content rules".into(),
            "merge rules with `|`",
        ));
    }
    for (i, d) in cfg.disable.iter().enumerate() {
        let s = d.get_ref().as_str();
        if !builtin().any(|b| b == s) && !ids.iter().any(|i| i == s) {
            return Err(bad(
                format!("secrets.disable[{i}]"),
                d,
                format!("no rule with id {s:?}"),
                "`guard scan --rules` lists every rule id",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<profile::Profile> {
        profile::parse(&format!("version = 1\n{toml}"), "p.toml")
    }

    #[test]
    fn bad_regex_names_file_line_and_key() {
        let e = parse("[secrets]\n[[secrets.content_rules]]\nid = \"acme\"\ndescription = \"x\"\nregex = \"acme_[0-9\"\n").unwrap_err();
        let msg = e.render();
        assert!(msg.contains("p.toml:6:"), "{msg}");
        assert!(msg.contains("secrets.content_rules[0].regex"), "{msg}");
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn unknown_disabled_id_and_unknown_key_are_errors() {
        let e = parse("[secrets]\ndisable = [\"dotenv\", \"no-such-rule\"]\n").unwrap_err();
        assert!(e.render().contains("secrets.disable[1]"), "{}", e.render());
        assert!(parse("[secrets]\ndisable = [\"dotenv\", \"jwt\", \"env-cloud\"]\n").is_ok());
        let e = parse("[secrets]\nignor = []\n").unwrap_err();
        assert!(e.render().contains("ignor"), "{}", e.render());
    }

    #[test]
    fn duplicate_and_builtin_ids_are_errors() {
        let rule = |id: &str| {
            format!(
                "[[secrets.path_rules]]\nid = \"{id}\"\ndescription = \"d\"\nglobs = [\"**/x\"]\n"
            )
        };
        assert!(parse(&rule("dotenv")).is_err());
        assert!(parse(&format!("{}{}", rule("a"), rule("a"))).is_err());
        assert!(parse(&rule("a")).is_ok());
        let e =
            parse("[[secrets.path_rules]]\nid = \"a\"\ndescription = \"d\"\nglobs = [\"a[\"]\n")
                .unwrap_err();
        assert!(
            e.render().contains("secrets.path_rules[0].globs[0]"),
            "{}",
            e.render()
        );
    }

    #[test]
    fn profile_rules_are_compiled_in_and_disable_works() {
        let p = parse(
            "[secrets]\ndisable = [\"jwt\"]\nignore = [\"fixtures/**\"]\n\
             [[secrets.content_rules]]\nid = \"acme\"\ndescription = \"d\"\nregex = 'acme_[0-9]{6}'\nkeywords = [\"acme_\"]\n",
        )
        .unwrap();
        let r = Rules::new(&p.secrets, "p.toml", Path::new("/h"), Path::new("/p")).unwrap();
        let ids: Vec<&str> = r.content.rules().iter().map(|r| r.id.as_str()).collect();
        assert!(!ids.contains(&"jwt"));
        let acme = ids.iter().position(|i| *i == "acme").unwrap();
        assert_eq!(ids[acme + 1], "secret-assignment");
        assert!(r.ignore.is_match(
            Path::new("fixtures/a/b.txt"),
            Path::new("/p/fixtures/a/b.txt")
        ));
        assert!(
            !r.ignore
                .is_match(Path::new("src/a.rs"), Path::new("/p/src/a.rs"))
        );
    }

    #[test]
    fn absolute_scope_globs() {
        let s = Scope::new(
            &["{project}/vendor/**".into(), "~/.config/x".into()],
            Path::new("/h"),
            Path::new("/p"),
        )
        .unwrap();
        assert!(s.is_match(Path::new("vendor/a"), Path::new("/p/vendor/a")));
        assert!(s.is_match(Path::new("x"), Path::new("/h/.config/x")));
        assert!(!s.is_match(Path::new("src/vendor/a"), Path::new("/p/src/vendor/a")));
    }
}
