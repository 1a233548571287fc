//! Profiles: reviewed TOML data that says what the sandbox may see and do.
//!
//! `deny_unknown_fields` everywhere: a typo in a security setting must be an
//! error, never a silently ignored line. `version` is the schema version.

mod builtin;
mod errors;
mod layers;
pub mod network;
pub mod trust;
mod validate;

use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use toml::Spanned;

pub use builtin::{builtin_names, builtin_source};
pub use layers::{exists as profile_exists, extends_of, read_profile, user_profile_dir};
pub use network::Network;
pub use validate::var_name;

/// How the sandbox is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Namespaces (own mount view, pid, network) + Landlock + seccomp.
    Full,
    /// No namespaces (Docker's default seccomp profile forbids them):
    /// Landlock on the host's file tree, Landlock TCP rules that only reach
    /// guard's proxy, seccomp. Weaker; see `Isolation::gaps`.
    Landlock,
}

impl Isolation {
    pub fn label(self) -> &'static str {
        match self {
            Isolation::Full => "full",
            Isolation::Landlock => "landlock",
        }
    }

    /// What this level does not protect, one line each (printed at the
    /// start of every degraded session and by `guard check`).
    pub fn gaps(self) -> &'static [&'static str] {
        match self {
            Isolation::Full => &[],
            Isolation::Landlock => &[
                "secret files inside the project are unreadable, but their names are visible and no new file can be created in the directories that hold them",
                "files that only need redacting are hidden instead",
                "secrets committed to git history are readable (git show, git log -p): sanitizing object files needs a mount",
                "protected files (.git/hooks, .git/config, .envrc, ...) are writable during the run; guard restores them afterwards and keeps what was written aside",
                "TCP connections are limited by port, not by address: a host listening on the proxy's port could be reached directly",
                "no private /tmp, /dev/shm, process table or network stack: other processes' command lines and the machine's connections and sockets (/proc/net) are visible in /proc; TMPDIR points to a private directory",
                "toolchain caches are read-only (no copy-on-write); fetching new dependencies fails",
                "the process limit counts all of the user's processes, not only the sandbox's (and does not apply to root)",
                "file modes, ownership, timestamps and extended attributes are outside Landlock: the command can change the mode of any file your user owns (as root, of any file), though never read or write one outside its grants",
                "if guard itself is killed (SIGKILL, out of memory), protected files are not restored and background processes of the command survive (still inside Landlock and seccomp)",
            ],
        }
    }
}

/// The schema version this build understands.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Profiles whose settings this one builds on (merged first, in order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extends: Vec<String>,
    /// The isolation level this profile asks for (unset: full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    #[serde(default)]
    pub filesystem: Filesystem,
    #[serde(default)]
    pub home: Home,
    #[serde(default)]
    pub env: Env,
    #[serde(default)]
    pub syscalls: Syscalls,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub secrets: Secrets,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most processes the sandbox may hold at once (RLIMIT_NPROC, counted in
    /// the sandbox's user namespace): a fork bomb stops there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
}

/// Default for [`Limits::processes`].
pub const DEFAULT_PROCESSES: u64 = 4096;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    /// Visible read-only (and executable).
    #[serde(default)]
    pub read: Vec<String>,
    /// Visible read-write.
    #[serde(default)]
    pub write: Vec<String>,
    /// Present but empty: an empty file or directory replaces the original.
    #[serde(default)]
    pub hide: Vec<String>,
    /// Read-only even inside a writable tree, and neither renameable nor
    /// replaceable: files that would run later outside the sandbox
    /// (`.git/hooks`, `.git/config`, `.envrc` ...).
    #[serde(default)]
    pub protect: Vec<String>,
}

/// The sandbox's home directory.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Home {
    /// Keep a private home for this profile across runs, one per project
    /// (under $XDG_DATA_HOME/guard/homes/PROFILE@PROJECT), instead of an
    /// empty one: agents stay logged in without seeing the real home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<bool>,
    /// Copied from the real home into a persistent home when it is created
    /// (the agent's settings), with the secret rules applied: a file they
    /// flag is redacted, or left out when mostly secret.
    #[serde(default)]
    pub import: Vec<String>,
    /// The agent's own login: copied as it is (the agent needs it), and
    /// again whenever it changes in the real home (a login outside guard
    /// reaches the next run).
    #[serde(default)]
    pub login: Vec<String>,
    /// The agent's settings files that may hold its login beside secrets of
    /// other services (`~/.claude.json`: an API key, and the tokens of MCP
    /// servers): copied again whenever they change, like `login`, but with
    /// every secret redacted except the values of the names in `own_keys`
    /// and `[env] pass` (the agent's own).
    #[serde(default)]
    pub settings: Vec<String>,
    /// Names whose values in `settings` files are the agent's own login
    /// (`primaryApiKey`), besides the names `[env] pass` lists.
    #[serde(default)]
    pub own_keys: Vec<String>,
    /// Below `import` but never copied: what sessions run outside guard
    /// left there (transcripts, prompt history, shell snapshots).
    #[serde(default)]
    pub not_imported: Vec<String>,
    /// Caches shown copy-on-write: writable inside, the host's copy never
    /// changes (an overlay whose upper layer lives in guard's own data dir).
    #[serde(default)]
    pub cache: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Env {
    /// Names passed through from the caller (a trailing `*` matches a prefix).
    #[serde(default)]
    pub pass: Vec<String>,
    /// Variables set to a fixed value inside the sandbox.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Syscalls {
    /// Allow ptrace and process_vm_readv/writev between sandboxed processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptrace: Option<bool>,
}

fn push_new<T: Clone + PartialEq>(into: &mut Vec<T>, from: &[T]) {
    for item in from {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

impl Profile {
    /// Layer `top` over `self`: lists accumulate, maps and scalars set in
    /// `top` win.
    pub fn merge(&mut self, top: &Profile) {
        if top.description.is_some() {
            self.description = top.description.clone();
        }
        if top.isolation.is_some() {
            self.isolation = top.isolation;
        }
        let (fs, t) = (&mut self.filesystem, &top.filesystem);
        push_new(&mut fs.read, &t.read);
        push_new(&mut fs.write, &t.write);
        push_new(&mut fs.hide, &t.hide);
        push_new(&mut fs.protect, &t.protect);
        if top.home.persist.is_some() {
            self.home.persist = top.home.persist;
        }
        push_new(&mut self.home.import, &top.home.import);
        push_new(&mut self.home.login, &top.home.login);
        push_new(&mut self.home.settings, &top.home.settings);
        push_new(&mut self.home.own_keys, &top.home.own_keys);
        push_new(&mut self.home.not_imported, &top.home.not_imported);
        push_new(&mut self.home.cache, &top.home.cache);
        push_new(&mut self.env.pass, &top.env.pass);
        for (k, v) in &top.env.set {
            self.env.set.insert(k.clone(), v.clone());
        }
        if top.syscalls.ptrace.is_some() {
            self.syscalls.ptrace = top.syscalls.ptrace;
        }
        if top.limits.processes.is_some() {
            self.limits.processes = top.limits.processes;
        }
        for entry in &top.network.allow {
            if !self.network.allow.contains(entry) {
                self.network.allow.push(entry.clone());
            }
        }
        push_new(&mut self.network.registries, &top.network.registries);
        for (name, addr) in &top.network.hosts {
            self.network.hosts.insert(name.clone(), *addr);
        }
        if top.network.disabled.is_some() {
            self.network.disabled = top.network.disabled;
        }
        let (sec, t) = (&mut self.secrets, &top.secrets);
        for (into, from) in [
            (&mut sec.skip, &t.skip),
            (&mut sec.ignore, &t.ignore),
            (&mut sec.disable, &t.disable),
        ] {
            for item in from {
                if !into.iter().any(|i| i.get_ref() == item.get_ref()) {
                    into.push(item.clone());
                }
            }
        }
        sec.path_rules.extend(t.path_rules.iter().cloned());
        sec.content_rules.extend(t.content_rules.iter().cloned());
    }
}

/// One file that contributed to a resolved profile.
#[derive(Debug, Clone)]
pub struct Layer {
    /// "built-in:default", a file path, or "project:/path/.guard.toml".
    pub origin: String,
    pub profile: Profile,
}

/// `[secrets]`: what the secrets scan looks for and where. Strings that can
/// be malformed (globs, regexes, rule ids) keep their position in the file so
/// an error names the line.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Directories the scan does not enter: globs relative to the project (or
    /// home), or absolute with `{project}`/`~`. Only for bulky directories
    /// that cannot hold readable secrets (`.git/objects`).
    #[serde(default)]
    pub skip: Vec<Spanned<String>>,
    /// Paths whose findings are ignored (false positives); same glob forms.
    #[serde(default)]
    pub ignore: Vec<Spanned<String>>,
    /// Rule ids (path, content or env rules) to turn off.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
    /// Extra path rules: matching files or directories are hidden.
    #[serde(default)]
    pub path_rules: Vec<PathRuleSpec>,
    /// Extra content rules: matches are redacted (or the file hidden).
    #[serde(default)]
    pub content_rules: Vec<ContentRuleSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PathRuleSpec {
    pub id: Spanned<String>,
    pub description: String,
    /// Globs relative to the project or home (`**/name` matches at any depth).
    pub globs: Vec<Spanned<String>>,
    /// Globs that exempt a path the rule would otherwise match.
    #[serde(default)]
    pub except: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContentRuleSpec {
    pub id: Spanned<String>,
    pub description: String,
    /// A regex (byte-oriented; a group named `secret` marks the value to
    /// redact, else the whole match is).
    pub regex: Spanned<String>,
    /// Literal words (ASCII case-insensitive) one of which must be on the
    /// line for the regex to run; without them the regex runs on every file.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// A match means the whole file is a secret: hide it instead of redacting.
    #[serde(default)]
    pub hide_file: bool,
}

/// A resolved profile: the merge of its layers, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub name: String,
    pub origin: String,
    pub profile: Profile,
    pub layers: Vec<Layer>,
}

/// Load a profile by name (built-in, then the user's file of that name
/// layered on top) or by path (anything containing `/` or ending in
/// `.toml`), with everything it extends merged underneath.
pub fn load(name_or_path: &str) -> Result<Loaded> {
    let mut layers = Vec::new();
    layers::collect(name_or_path, &mut Vec::new(), &mut layers)?;
    let mut profile = Profile {
        version: SCHEMA_VERSION,
        ..Profile::default()
    };
    for l in &layers {
        profile.merge(&l.profile);
    }
    let name = if layers::is_path(name_or_path) {
        Path::new(name_or_path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name_or_path.to_string())
    } else {
        name_or_path.to_string()
    };
    let origin = layers
        .last()
        .map(|l| l.origin.clone())
        .unwrap_or_else(|| name.clone());
    Ok(Loaded {
        name,
        origin,
        profile,
        layers,
    })
}

/// Parse and validate one profile. `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Profile> {
    let profile: Profile = toml::from_str(text).map_err(|e| errors::from_toml(&e, text, origin))?;
    if profile.version != SCHEMA_VERSION {
        return Err(errors::at(
            text,
            origin,
            errors::locate(text, &["version"], None),
            format!(
                "key `version`: schema version {} is not supported (this guard reads version {SCHEMA_VERSION})",
                profile.version
            ),
            format!(
                "set `version = {SCHEMA_VERSION}`; a profile written for a newer guard needs that guard"
            ),
        ));
    }
    if let Err((key, msg)) = profile.network.validate() {
        return Err(errors::at(
            text,
            origin,
            errors::locate(text, &["network", "hosts"], Some(&key)),
            msg,
            "add the name to [network] allow (with private = true for a private address)",
        ));
    }
    validate::check(&profile, text, origin)?;
    crate::secrets::validate(&profile.secrets).map_err(|bad| {
        errors::at(
            text,
            origin,
            bad.span.start,
            format!("key `{}`: {}", bad.key, bad.msg),
            bad.hint,
        )
    })?;
    Ok(profile)
}

/// Expand `~` and `{project}` in a profile path. Returns `None` for a path
/// that is neither absolute nor one of those forms (the caller reports it).
pub fn expand_path(raw: &str, home: &Path, project: &Path) -> Option<PathBuf> {
    let expanded = if raw == "~" {
        home.to_path_buf()
    } else if let Some(rest) = raw.strip_prefix("~/") {
        home.join(rest)
    } else if let Some(rest) = raw.strip_prefix("{project}") {
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            project.to_path_buf()
        } else {
            project.join(rest)
        }
    } else {
        PathBuf::from(raw)
    };
    expanded.is_absolute().then_some(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        for name in builtin_names() {
            load(name).unwrap_or_else(|e| panic!("{name}: {}", e.render()));
        }
    }

    #[test]
    fn unknown_key_is_an_error_with_location() {
        let err = parse("version = 1\n[filesystem]\nreed = []\n", "p.toml").unwrap_err();
        let msg = err.render();
        assert!(msg.contains("p.toml:3:1"), "{msg}");
        assert!(msg.contains("reed"), "{msg}");
        assert_eq!(err.exit_code(), 125);
    }

    #[test]
    fn wrong_version_is_rejected() {
        let err = parse("version = 9\n", "p.toml").unwrap_err();
        assert!(err.render().contains("p.toml:1:1"), "{}", err.render());
    }

    #[test]
    fn wrong_type_is_rejected() {
        let err = parse("version = 1\n[syscalls]\nptrace = \"yes\"\n", "p.toml").unwrap_err();
        assert!(err.render().contains("p.toml:3:"), "{}", err.render());
    }

    #[test]
    fn network_section() {
        let p = parse(
            "version = 1\n[network]\nallow = [\"a.example.com\", \"*.cdn.example.com:8443\", { host = \"api.internal\", private = true }]\n[network.hosts]\n\"api.internal\" = \"10.1.2.3\"\n",
            "p.toml",
        )
        .unwrap();
        let allow = p.network.allowlist("profile p");
        assert_eq!(allow.rules.len(), 3);
        assert!(allow.rules[2].private);
        assert_eq!(
            allow.pinned("api.internal"),
            Some("10.1.2.3".parse().unwrap())
        );
    }

    #[test]
    fn network_errors_have_locations() {
        for (text, at, needle) in [
            (
                "version = 1\n[network]\nallow = [\"ok.com\", \"bad host\"]\n",
                "p.toml:3:",
                "letters, digits",
            ),
            (
                "version = 1\n[network]\nallow = [{ host = \"a.com\", privat = true }]\n",
                "p.toml:3:",
                "privat",
            ),
            (
                "version = 1\n[network]\nallow = [\"*.com\"]\n",
                "p.toml:3:",
                "too broad",
            ),
            ("version = 1\n[network]\nalow = []\n", "p.toml:3:", "alow"),
            (
                "version = 1\n[network]\nallow = [\"a.com\"]\n[network.hosts]\n\"a.com\" = \"not-an-ip\"\n",
                "p.toml:5:",
                "not an IP",
            ),
            (
                "version = 1\n[network]\nallow = [\"a.com\"]\n[network.hosts]\n\"b.com\" = \"10.0.0.1\"\n",
                "p.toml:5:1",
                "no `allow` entry",
            ),
        ] {
            let e = parse(text, "p.toml").unwrap_err();
            let msg = e.render();
            assert!(msg.contains(at), "{text}: {msg}");
            assert!(msg.contains(needle), "{text}: {msg}");
            assert_eq!(e.exit_code(), 125);
        }
    }

    #[test]
    fn expands_home_and_project() {
        let h = Path::new("/home/u");
        let p = Path::new("/src/p");
        assert_eq!(expand_path("~/.x", h, p), Some(PathBuf::from("/home/u/.x")));
        assert_eq!(
            expand_path("{project}/.git", h, p),
            Some(PathBuf::from("/src/p/.git"))
        );
        assert_eq!(
            expand_path("{project}", h, p),
            Some(PathBuf::from("/src/p"))
        );
        assert_eq!(expand_path("relative", h, p), None);
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    proptest! {
        /// Whatever the text, parsing returns a profile or an error with a
        /// location; it never panics.
        #[test]
        fn parse_never_panics(text in "[ -~\n\\[\\]=\"{}]{0,300}") {
            if let Err(e) = super::parse(&text, "p.toml") {
                prop_assert!(e.render().contains("p.toml"));
                prop_assert_eq!(e.exit_code(), 125);
            }
        }

        /// Well-formed profiles with arbitrary path lists round-trip.
        #[test]
        fn read_lists_parse(paths in proptest::collection::vec("/[a-z]{1,8}(/[a-z]{1,8}){0,3}", 0..6)) {
            let list: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
            let text = format!("version = 1\n[filesystem]\nread = [{}]\n", list.join(", "));
            let p = super::parse(&text, "p.toml").unwrap();
            prop_assert_eq!(p.filesystem.read, paths);
        }
    }
}
