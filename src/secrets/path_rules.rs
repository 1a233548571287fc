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
    /// Unless it holds nothing but certificates, which are public: a CA
    /// bundle (`certifi/cacert.pem` in every Python environment) hidden
    /// would leave programs unable to verify any TLS connection.
    UnlessCertificates,
}

/// PEM text with nothing private: every `-----BEGIN` block (at least one)
/// is a certificate, CRL or public key, and no NUL.
/// Text outside the blocks (comments) is allowed; the content rules still
/// look at it.
pub fn only_certificates(content: &[u8]) -> bool {
    const PUBLIC: &[&[u8]] = &[
        b"CERTIFICATE-----",
        b"TRUSTED CERTIFICATE-----",
        b"X509 CRL-----",
        b"PUBLIC KEY-----",
    ];
    const BEGIN: &[u8] = b"-----BEGIN ";
    if content.contains(&0) || !content.windows(BEGIN.len()).any(|w| w == BEGIN) {
        return false;
    }
    let mut rest = content;
    while let Some(at) = rest.windows(BEGIN.len()).position(|w| w == BEGIN) {
        rest = &rest[at + BEGIN.len()..];
        if !PUBLIC.iter().any(|p| rest.starts_with(p)) {
            return false;
        }
    }
    true
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

/// dotenv templates: hidden only when they hold real values.
const DOTENV_TEMPLATES: &[&str] = &[
    "**/.env.example",
    "**/.env.sample",
    "**/.env.template",
    "**/.env.*.example",
    "**/.env.*.sample",
    "**/.env.*.template",
    "**/.env-example",
    "**/.env-sample",
    "**/.env-template",
    "**/.env_example",
    "**/.env_sample",
    "**/.env_template",
];

/// Built-in path rules: (id, description, globs, except, when).
const BUILTIN: Table = &[
    (
        "dotenv",
        "dotenv file (environment secrets)",
        // `.env-prod`, `.env_staging`, and cookiecutter-django's
        // `.envs/.production/.django`.
        &[
            "**/.env",
            "**/.env.*",
            "**/*.env",
            "**/.env-*",
            "**/.env_*",
            "**/.envs",
        ],
        DOTENV_TEMPLATES,
        When::Always,
    ),
    (
        "dotenv-template",
        "dotenv template that holds real values, not placeholders",
        DOTENV_TEMPLATES,
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
            "**/*.p8",
            "**/*.pk8",
        ],
        &[],
        When::UnlessCertificates,
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
            // Kaggle's API key (`{"username": …, "key": …}`).
            "**/kaggle.json",
        ],
        &[],
        When::Always,
    ),
    (
        "db-credentials",
        "database and storage client credentials",
        &[
            "**/.pgpass",
            // libpq's name for it on Windows.
            "**/pgpass.conf",
            "**/.my.cnf",
            "**/.s3cfg",
            "**/.boto",
            "**/.htpasswd",
            // A Docker registry's `auth/htpasswd`, a per-site copy.
            "**/htpasswd",
            "**/.htpasswd.*",
            // Ceph's client keys (`/etc/ceph/ceph.client.admin.keyring`)
            // and PgBouncer's users with their passwords.
            "**/*.keyring",
            "**/pgbouncer/userlist.txt",
        ],
        &[],
        When::Always,
    ),
    (
        "password-database",
        "password manager database (KeePass, Password Safe)",
        // Binary, so the content scan never reads them; a weak master
        // password is all that stands between an agent and every entry.
        &["**/*.kdbx", "**/*.kdb", "**/*.psafe3"],
        &[],
        When::Always,
    ),
    (
        "ansible-vault-password",
        "Ansible Vault password file",
        &[
            "**/.vault_pass",
            "**/.vault_pass.txt",
            "**/.vault-pass",
            "**/.vault_password",
            "**/.vault-password",
            "**/vault_pass.txt",
            "**/vault_password",
            "**/vault_password.txt",
            "**/vault-password.txt",
        ],
        &[],
        When::Always,
    ),
    (
        "credential-config",
        "client config file holding credentials (Composer auth.json, rclone, Maven, NuGet, pip, Poetry, Gradle, WordPress)",
        // Hidden whole once any secret is found in them: they are where
        // credentials go, in forms the content rules only partly know
        // (rclone's obscured `pass`, Composer's `"github.com": "<token>"`,
        // WordPress salts), so redacting what was found leaves the rest.
        &[
            "**/auth.json",
            "**/rclone.conf",
            "**/.m2/settings.xml",
            "**/.m2/settings-security.xml",
            "**/nuget.config",
            "**/NuGet.config",
            "**/NuGet.Config",
            "**/pip.conf",
            "**/pip.ini",
            "**/pypoetry/auth.toml",
            "**/.gradle/gradle.properties",
            "**/wp-config.php",
        ],
        &[],
        When::IfSecretContent,
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

/// A glob of the shape every built-in rule has: an optional `**/`, then
/// literal components, with `*` only in the last one (`**/.env.*`,
/// `**/.config/gcloud`, `**/client_secret*.json`). Matched by hand:
/// compiling the built-in rules with globset cost ~0.6 ms of every start.
#[derive(Debug, Clone)]
struct Simple {
    /// Whether the glob starts with `**/`: `dir` may then sit at any depth.
    any_depth: bool,
    /// The literal path before the last component (may be empty), then
    /// the last component, `*`s included: one allocation per glob.
    text: Box<[u8]>,
    dir_len: usize,
    /// In the last component: the literal before the first `*` and after
    /// the last one (`None`: no `*`, the component is a literal).
    ends: Option<(usize, usize)>,
}

impl Simple {
    fn parse(glob: &str) -> Option<Simple> {
        let (any_depth, rest) = match glob.strip_prefix("**/") {
            Some(r) => (true, r),
            None => (false, glob),
        };
        // Anything globset gives a meaning beyond `*` goes to globset (so
        // do empty components and `**` elsewhere, which it may reject).
        let special = |c: char| matches!(c, '\\' | '?' | '[' | ']' | '{' | '}' | ',');
        if rest.is_empty() || rest.contains(special) || rest.contains("**") {
            return None;
        }
        let (dir, last) = match rest.rfind('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => ("", rest),
        };
        let bad_dir = dir.contains('*')
            || (!dir.is_empty() && dir.split('/').skip(1).any(str::is_empty))
            || (any_depth && dir.starts_with('/'));
        if last.is_empty() || bad_dir || (dir.is_empty() && rest.starts_with('/')) {
            return None;
        }
        let ends = match (last.find('*'), last.rfind('*')) {
            (Some(f), Some(l)) => Some((f, last.len() - l - 1)),
            _ => None,
        };
        let mut text = Vec::with_capacity(dir.len() + last.len());
        text.extend_from_slice(dir.as_bytes());
        text.extend_from_slice(last.as_bytes());
        Some(Simple {
            any_depth,
            text: text.into(),
            dir_len: dir.len(),
            ends,
        })
    }

    /// Whether the path `dir/base` (just `base` when `dir` is `None`)
    /// matches.
    fn is_match(&self, dir: Option<&[u8]>, base: &[u8]) -> bool {
        if !self.base_matches(base) {
            return false;
        }
        let want = &self.text[..self.dir_len];
        match dir {
            None => want.is_empty(),
            Some(_) if want.is_empty() => self.any_depth,
            Some(d) if d == want => true,
            Some(d) => {
                self.any_depth
                    && d.len() > want.len()
                    && d.ends_with(want)
                    && d[d.len() - want.len() - 1] == b'/'
            }
        }
    }

    fn base_matches(&self, name: &[u8]) -> bool {
        let pattern = &self.text[self.dir_len..];
        let Some((first_len, last_len)) = self.ends else {
            return name.len() == pattern.len() && ends_with(name, pattern);
        };
        let (first, last) = (&pattern[..first_len], &pattern[pattern.len() - last_len..]);
        if name.len() < first_len + last_len
            || !ends_with(name, last)
            || !ends_with(&name[..first_len], first)
        {
            return false;
        }
        // The pieces between the first `*` and the last, in order; the
        // leftmost placement of each is optimal for `*`.
        let mut mid = &name[first_len..name.len() - last_len];
        let inner = pattern
            .get(first_len + 1..pattern.len() - last_len - 1)
            .unwrap_or_default();
        for piece in inner.split(|&b| b == b'*').filter(|p| !p.is_empty()) {
            match mid.windows(piece.len()).position(|w| w == piece) {
                Some(i) => mid = &mid[i + piece.len()..],
                None => return false,
            }
        }
        true
    }

    /// The byte a matching name must end with, or else start with.
    fn key(&self) -> Key {
        let pattern = &self.text[self.dir_len..];
        let (first_len, last_len) = self.ends.unwrap_or((pattern.len(), pattern.len()));
        match (first_len > 0, last_len > 0) {
            (_, true) => Key::Last(pattern[pattern.len() - 1]),
            (true, false) => Key::First(pattern[0]),
            (false, false) => Key::Any,
        }
    }
}

enum Key {
    Last(u8),
    First(u8),
    Any,
}

/// Values grouped by a byte, in one array (256 vectors each cost an
/// allocation, and every rule's exceptions have a table).
#[derive(Clone)]
struct ByByte {
    /// Where each byte's values start in `items` (257 entries), or empty
    /// when there are none.
    start: Box<[u32]>,
    items: Box<[u32]>,
}

impl ByByte {
    fn new(pairs: &[(u8, u32)]) -> ByByte {
        if pairs.is_empty() {
            return ByByte {
                start: Box::default(),
                items: Box::default(),
            };
        }
        let mut start = vec![0u32; 257];
        for &(b, _) in pairs {
            start[b as usize + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut next = start.clone();
        let mut items = vec![0; pairs.len()];
        for &(b, v) in pairs {
            items[next[b as usize] as usize] = v;
            next[b as usize] += 1;
        }
        ByByte {
            start: start.into(),
            items: items.into(),
        }
    }

    fn get(&self, b: u8) -> &[u32] {
        match (self.start.get(b as usize), self.start.get(b as usize + 1)) {
            (Some(&from), Some(&to)) => &self.items[from as usize..to as usize],
            _ => &[],
        }
    }
}

/// A list of globs compiled for matching: simple ones (see [`Simple`]) by
/// hand, the rest with globset behind a literal prefilter. Cloning gives
/// globset its own regex caches (one per thread).
#[derive(Clone)]
pub struct Globs {
    simple: Vec<(usize, Simple)>,
    /// Positions in `simple` by the last byte of the names they can match
    /// (or the first byte, for globs ending in `*`; `any` for neither).
    by_last: ByByte,
    by_first: ByByte,
    any: Vec<u32>,
    /// The other globs, and each one's index in the list.
    set: Option<(GlobSet, Vec<usize>)>,
    /// A name can only match one of `set` if it holds one of these
    /// literals (each glob's longest literal run in its last component);
    /// `None` when some glob has no such literal.
    prefilter: Option<AhoCorasick>,
}

impl Globs {
    /// Compile `globs`; on error, the index of the glob that failed.
    pub fn new<'g>(
        globs: impl IntoIterator<Item = &'g str>,
    ) -> Result<Globs, (usize, globset::Error)> {
        let mut simple = Vec::new();
        let (mut last, mut first, mut any) = (Vec::new(), Vec::new(), Vec::new());
        let mut b = GlobSetBuilder::new();
        let mut complex: Vec<(usize, &str)> = Vec::new();
        for (i, pattern) in globs.into_iter().enumerate() {
            match Simple::parse(pattern) {
                Some(s) => {
                    let at = simple.len() as u32;
                    match s.key() {
                        Key::Last(c) => last.push((c, at)),
                        Key::First(c) => first.push((c, at)),
                        Key::Any => any.push(at),
                    }
                    simple.push((i, s));
                }
                None => {
                    b.add(glob(pattern).map_err(|e| (i, e))?);
                    complex.push((i, pattern));
                }
            }
        }
        let mut g = Globs {
            simple,
            by_last: ByByte::new(&last),
            by_first: ByByte::new(&first),
            any,
            set: None,
            prefilter: None,
        };
        if !complex.is_empty() {
            let set = b.build().map_err(|e| (complex[0].0, e))?;
            let literals: Option<Vec<&str>> =
                complex.iter().map(|(_, p)| basename_literal(p)).collect();
            g.prefilter = match literals {
                Some(lits) => AhoCorasick::builder()
                    // An NFA builds in microseconds; the DFA the default
                    // would pick costs milliseconds on every start.
                    .kind(Some(aho_corasick::AhoCorasickKind::NoncontiguousNFA))
                    .build(&lits)
                    .ok(),
                None => None,
            };
            g.set = Some((set, complex.into_iter().map(|(i, _)| i).collect()));
        }
        Ok(g)
    }

    pub fn is_empty(&self) -> bool {
        self.simple.is_empty() && self.set.is_none()
    }

    /// The simple globs that may match a path named `name`.
    fn candidates(&self, name: &[u8]) -> impl Iterator<Item = &(usize, Simple)> {
        let first = name.first().map_or(&[][..], |&b| self.by_first.get(b));
        let last = name.last().map_or(&[][..], |&b| self.by_last.get(b));
        last.iter()
            .chain(first)
            .chain(&self.any)
            .map(|&at| &self.simple[at as usize])
    }

    /// The indices of the globs matching `path`, into `out` (unordered).
    pub fn matches_into(&self, path: &Path, out: &mut Vec<usize>) {
        out.clear();
        let (dir, name) = split(path);
        for (i, s) in self.candidates(name) {
            if s.is_match(dir, name) {
                out.push(*i);
            }
        }
        if let Some((set, index)) = &self.set {
            if self.prefilter.as_ref().is_some_and(|p| !p.is_match(name)) {
                return;
            }
            let cand = Candidate::new(path);
            if set.is_match_candidate(&cand) {
                out.extend(set.matches_candidate(&cand).into_iter().map(|g| index[g]));
            }
        }
    }

    pub fn is_match(&self, path: &Path) -> bool {
        if self.is_empty() {
            return false;
        }
        let (dir, name) = split(path);
        if self.candidates(name).any(|(_, s)| s.is_match(dir, name)) {
            return true;
        }
        match &self.set {
            Some((set, _)) => {
                self.prefilter.as_ref().is_none_or(|p| p.is_match(name)) && set.is_match(path)
            }
            None => false,
        }
    }
}

/// `suffix` ends `s`, compared from the end: names that do not match
/// differ within a byte or two, and a call to `memcmp` per candidate glob
/// was most of the matching time.
fn ends_with(s: &[u8], suffix: &[u8]) -> bool {
    s.len() >= suffix.len() && s.iter().rev().zip(suffix.iter().rev()).all(|(a, b)| a == b)
}

/// A path's bytes split at the last `/`: (what comes before, if any; the
/// last component).
fn split(path: &Path) -> (Option<&[u8]>, &[u8]) {
    let bytes = path.as_os_str().as_bytes();
    match bytes.iter().rposition(|&b| b == b'/') {
        Some(i) => (Some(&bytes[..i]), &bytes[i + 1..]),
        None => (None, bytes),
    }
}

/// All path rules compiled together (see [`Globs`]).
#[derive(Clone)]
pub struct PathMatcher {
    rules: Vec<PathRule>,
    globs: Globs,
    glob_rule: Vec<usize>,
    except: Vec<Option<Globs>>,
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
        let glob_rule: Vec<usize> = rules
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.globs.iter().map(move |_| i))
            .collect();
        let all = rules
            .iter()
            .flat_map(|r| r.globs.iter().map(String::as_str));
        let globs = Globs::new(all).map_err(|(g, e)| {
            let r = &rules[glob_rule[g]];
            let at = g - glob_rule
                .iter()
                .position(|&x| x == glob_rule[g])
                .unwrap_or(0);
            bad(r, &r.globs[at], e)
        })?;
        let mut except = Vec::with_capacity(rules.len());
        for r in &rules {
            except.push(if r.except.is_empty() {
                None
            } else {
                Some(
                    Globs::new(r.except.iter().map(String::as_str))
                        .map_err(|(i, e)| bad(r, &r.except[i], e))?,
                )
            });
        }
        Ok(PathMatcher {
            rules,
            globs,
            glob_rule,
            except,
        })
    }

    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }

    pub fn rule(&self, i: usize) -> &PathRule {
        &self.rules[i]
    }

    /// The rule that claims `rel` (a path relative to its anchor): the first
    /// matching `Always` rule, else the first matching one. `scratch` is
    /// reused between calls to avoid allocating.
    pub fn matches(&self, rel: &Path, scratch: &mut Vec<usize>) -> Option<usize> {
        self.globs.matches_into(rel, scratch);
        let (mut always, mut first): (Option<usize>, Option<usize>) = (None, None);
        for &g in scratch.iter() {
            let r = self.glob_rule[g];
            if self.except[r].as_ref().is_some_and(|e| e.is_match(rel)) {
                continue;
            }
            if self.rules[r].when == When::Always && always.is_none_or(|a| r < a) {
                always = Some(r);
            }
            if first.is_none_or(|f| r < f) {
                first = Some(r);
            }
        }
        always.or(first)
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
            // Review 31.
            (".env-prod", Some("dotenv")),
            ("api/.env_staging", Some("dotenv")),
            ("app/.envs", Some("dotenv")),
            (".env-example", Some("dotenv-template")),
            ("notebooks/kaggle.json", Some("credentials-json")),
            ("etc/ceph/ceph.client.admin.keyring", Some("db-credentials")),
            ("etc/pgbouncer/userlist.txt", Some("db-credentials")),
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
            ("ops/pgpass.conf", Some("db-credentials")),
            ("registry/auth/htpasswd", Some("db-credentials")),
            ("nginx/.htpasswd.prod", Some("db-credentials")),
            ("environment.rs", None),
            ("src/env.rs", None),
        ];
        for (p, want) in cases {
            assert_eq!(id(&m, p).as_deref(), want, "{p}");
        }
    }

    #[test]
    fn certificate_bundles_are_not_key_files() {
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let bundle = format!("# Issuer: CN=Root\n{cert}\n# Issuer: CN=Other\n{cert}");
        assert!(only_certificates(bundle.as_bytes()));
        assert!(only_certificates(
            b"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"
        ));
        let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n";
        assert!(!only_certificates(format!("{cert}{key}").as_bytes()));
        assert!(!only_certificates(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----\n"
        ));
        // Anything but PEM blocks of public data stays a key file.
        assert!(!only_certificates(b"not a certificate at all\n"));
        assert!(!only_certificates(b""));
        assert!(!only_certificates(format!("{cert}\0").as_bytes()));
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

    /// What the matcher used to be: every glob through globset.
    struct Reference {
        rules: Vec<PathRule>,
        sets: Vec<(GlobSet, Option<GlobSet>)>,
    }

    impl Reference {
        fn new(rules: &[PathRule]) -> Reference {
            let set = |globs: &[String]| {
                let mut b = GlobSetBuilder::new();
                for g in globs {
                    b.add(glob(g).unwrap());
                }
                b.build().unwrap()
            };
            let sets = rules
                .iter()
                .map(|r| {
                    (
                        set(&r.globs),
                        (!r.except.is_empty()).then(|| set(&r.except)),
                    )
                })
                .collect();
            Reference {
                rules: rules.to_vec(),
                sets,
            }
        }

        fn matches(&self, path: &str) -> Option<usize> {
            let hits: Vec<usize> = (0..self.rules.len())
                .filter(|&i| {
                    let (globs, except) = &self.sets[i];
                    globs.is_match(path) && !except.as_ref().is_some_and(|e| e.is_match(path))
                })
                .collect();
            hits.iter()
                .copied()
                .find(|&i| self.rules[i].when == When::Always)
                .or(hits.first().copied())
        }
    }

    /// Paths around each glob: its instances at several depths with
    /// several fillings of `*`, and near misses (extra characters at
    /// either end, another parent, another case, the `.pub`/`.example`
    /// endings the exceptions are about).
    fn corpus(globs: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = [
            "src/main.rs",
            "README.md",
            "a",
            ".",
            "env",
            "x.env.y",
            ".envrc",
            "pkg/mod/file12.rs",
            "id_rs",
            "credentials",
            ".config",
            "config.json",
            "/abs/.env",
            "/.ssh",
            "deep/er/.aws/credentials",
            "snap/firefox/x",
        ]
        .map(String::from)
        .to_vec();
        for g in globs {
            let body = g.strip_prefix("**/").unwrap_or(g);
            for fill in ["", "x", "foo.bar", "-", "service-account"] {
                let inst = body.replace('*', fill);
                for pre in ["", "a/", "deep/er/", "/", "x", "a/x", ".config/"] {
                    for post in ["", "x", ".pub", ".example", "/child", ".json"] {
                        out.push(format!("{pre}{inst}{post}"));
                    }
                }
                let mut upper = inst.clone();
                if let Some(c) = upper.get_mut(..1) {
                    c.make_ascii_uppercase();
                }
                out.push(upper);
                if let Some((_, name)) = inst.rsplit_once('/') {
                    out.push(name.to_string());
                    out.push(format!("other/{name}"));
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn builtin_rules_need_no_globset_and_agree_with_it() {
        let rules = builtin();
        let globs: Vec<&str> = rules
            .iter()
            .flat_map(|r| r.globs.iter().chain(&r.except))
            .map(String::as_str)
            .collect();
        for g in &globs {
            assert!(Simple::parse(g).is_some(), "{g} is matched by globset");
        }
        let paths = corpus(&globs);
        assert!(paths.len() > 5000, "{}", paths.len());
        for g in &globs {
            let (simple, gs) = (
                Simple::parse(g).unwrap(),
                glob(g).unwrap().compile_matcher(),
            );
            for p in &paths {
                let (dir, name) = split(Path::new(p));
                assert_eq!(simple.is_match(dir, name), gs.is_match(p), "{g} on {p}");
            }
        }
        let m = PathMatcher::new(rules.clone()).unwrap();
        let reference = Reference::new(&rules);
        let mut scratch = Vec::new();
        let mut claimed = 0;
        for p in &paths {
            let got = m.matches(Path::new(p), &mut scratch);
            assert_eq!(got, reference.matches(p), "{p}");
            claimed += got.is_some() as usize;
        }
        assert!(claimed > paths.len() / 4, "{claimed} of {}", paths.len());
    }

    #[test]
    fn profile_globs_of_any_shape_agree_with_globset() {
        let rules = vec![
            PathRule {
                id: "a".into(),
                description: "a".into(),
                globs: vec![
                    "secrets/**".into(),
                    "**/*.[ch]sv".into(),
                    "conf/*/key".into(),
                ],
                except: vec!["**/public.?sv".into()],
                when: When::Always,
            },
            PathRule {
                id: "b".into(),
                description: "b".into(),
                globs: vec!["**/.env".into(), "notes".into(), "/abs/x*".into()],
                except: vec![],
                when: When::IfSecretContent,
            },
            PathRule {
                id: "c".into(),
                description: "c".into(),
                globs: vec!["**/{a,b}.env".into(), "**/.env".into()],
                except: vec!["**/b.env".into()],
                when: When::Always,
            },
        ];
        let m = PathMatcher::new(rules.clone()).unwrap();
        let reference = Reference::new(&rules);
        let paths = [
            "secrets/x",
            "secrets",
            "a/secrets/x",
            "data.csv",
            "d/data.hsv",
            "public.csv",
            "x/public.tsv",
            "conf/prod/key",
            "conf/key",
            "conf/a/b/key",
            ".env",
            "a/.env",
            "a.env",
            "b.env",
            "notes",
            "x/notes",
            "/abs/xy",
            "/abs/y",
            "abs/x",
        ];
        let mut scratch = Vec::new();
        for p in paths {
            assert_eq!(
                m.matches(Path::new(p), &mut scratch),
                reference.matches(p),
                "{p}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn simple_globs_agree_with_globset(
            glob_s in "(\\*\\*/)?(/?[a.]{1,2}/)?[a.*b]{1,5}",
            path in "/?([a.b]{1,3}/){0,3}[a.b]{0,6}",
        ) {
            if let Some(simple) = Simple::parse(&glob_s) {
                let gs = glob(&glob_s).unwrap().compile_matcher();
                let (dir, name) = split(Path::new(&path));
                proptest::prop_assert_eq!(simple.is_match(dir, name), gs.is_match(&path));
                let globs = Globs::new([glob_s.as_str()]).unwrap();
                proptest::prop_assert_eq!(globs.is_match(Path::new(&path)), gs.is_match(&path));
            }
        }
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
