//! Reading git config files the sandbox could have written (or that say
//! where git runs hooks from), without running git: guard reads them on the
//! host, and git itself would run what some of them name.

/// Config keys git only stores or compares, never runs or hands to a
/// program: what `git init`, `git clone`, `git submodule` and `git
/// worktree` write, and a few common settings. Any other key, and any
/// line this reader does not understand, makes a config unsafe. An
/// allowlist on purpose: the keys that run programs (core.fsmonitor,
/// core.hooksPath, core.sshCommand, core.pager, alias.*, filter.*,
/// diff.external, credential.helper, include.path, …) are many and git
/// adds more.
const INERT_KEYS: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "repositoryformatversion",
            "filemode",
            "bare",
            "logallrefupdates",
            "ignorecase",
            "precomposeunicode",
            "symlinks",
            "worktree",
            "autocrlf",
            "eol",
            "safecrlf",
            "checkstat",
            "trustctime",
            "quotepath",
            "abbrev",
            "compression",
            "loosecompression",
            "sparsecheckout",
            "sparsecheckoutcone",
            "splitindex",
            "untrackedcache",
            "sharedrepository",
        ],
    ),
    (
        "remote",
        &[
            "url",
            "pushurl",
            "fetch",
            "push",
            "tagopt",
            "prune",
            "prunetags",
            "mirror",
            "promisor",
            "partialclonefilter",
            "skipdefaultupdate",
            "skipfetchall",
        ],
    ),
    (
        "branch",
        &["remote", "pushremote", "merge", "rebase", "description"],
    ),
    // Not `update`: `update = !command` runs the command.
    (
        "submodule",
        &[
            "url",
            "active",
            "branch",
            "fetchrecursesubmodules",
            "ignore",
        ],
    ),
    ("user", &["name", "email", "signingkey"]),
    // Signing runs the user's gpg (gpg.program stays unsafe).
    ("commit", &["gpgsign"]),
    ("tag", &["gpgsign"]),
    ("rerere", &["enabled", "autoupdate"]),
    ("merge", &["ff"]),
    ("color", &["ui"]),
    ("diff", &["renames", "algorithm"]),
    ("init", &["defaultbranch"]),
    (
        "extensions",
        &[
            "objectformat",
            "worktreeconfig",
            "partialclone",
            "preciousobjects",
            "refstorage",
            "noop",
        ],
    ),
    ("lfs", &["repositoryformatversion"]),
    ("gc", &["auto", "autodetach"]),
    ("pull", &["rebase", "ff"]),
    ("fetch", &["prune"]),
    ("push", &["default", "autosetupremote"]),
    ("index", &["version", "sparse", "skiphash"]),
];

/// Largest config guard reads; a larger one is unsafe unread.
pub const CONFIG_MAX: usize = 1 << 20;

/// The first key of a git config that is not inert (`core.fsmonitor`), or
/// a description of the first line this reader cannot classify. `None`:
/// every key is inert.
///
/// Every line is read as a line of its own, including what git would take
/// as the continuation of a value after a trailing backslash: such a line
/// is either classified like any other (a key git does not see is checked
/// in vain, never missed) or not understood, which is unsafe.
pub fn unsafe_config_key(text: &[u8]) -> Option<String> {
    not_inert(text).into_iter().next().map(|l| l.why)
}

/// As [`unsafe_config_key`], passing over the lines that `known` (the
/// config as the user had it) holds too, under the same section header:
/// the user's own `core.hooksPath` is theirs, also in a new copy of the
/// file their git wrote (`git config`, `git push -u` replace it whole).
pub fn unsafe_config_key_beyond(text: &[u8], known: &[u8]) -> Option<String> {
    // A line means what it meant only read from the same place: a relative
    // `core.hooksPath` runs hooks from the worktree's top (`core.worktree`
    // moves it into what the sandbox writes), or from the git directory in
    // a bare repository.
    // And under the header git reads it under: a value continued past a
    // trailing backslash takes the next line in, header and all, so what
    // follows is under the section before.
    // (`\\` is an escaped backslash.)
    let continued = text.split(|&b| b == b'\n').any(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        l.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
    });
    if continued || where_paths_lead(text) != where_paths_lead(known) {
        return unsafe_config_key(text);
    }
    let known: Vec<NotInert> = not_inert(known);
    not_inert(text)
        .into_iter()
        .find(|l| {
            l.header.is_none()
                || !known
                    .iter()
                    .any(|k| k.header == l.header && k.line == l.line)
        })
        .map(|l| l.why)
}

/// The lines setting `core.worktree` and `core.bare`, in order.
fn where_paths_lead(text: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(text);
    let mut section = String::new();
    let mut out = Vec::new();
    for raw in text.split('\n') {
        let mut line = raw.trim_matches([' ', '\t', '\r']);
        if line.starts_with('[') {
            let Some((name, rest)) = section_header(line) else {
                section.clear();
                continue;
            };
            section = name;
            line = rest.trim_matches([' ', '\t', '\r']);
        }
        let key = line
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if section == "core" && matches!(key.as_str(), "worktree" | "bare") {
            out.push(line.to_string());
        }
    }
    out
}

/// A line of a config that is not inert: the section header it is under
/// (`None` for the whole file: too large, not UTF-8), the line, and what
/// to tell.
struct NotInert {
    header: Option<String>,
    line: String,
    why: String,
}

fn not_inert(text: &[u8]) -> Vec<NotInert> {
    let whole = |why: &str| {
        vec![NotInert {
            header: None,
            line: String::new(),
            why: why.into(),
        }]
    };
    if text.len() > CONFIG_MAX {
        return whole("a config over 1 MiB");
    }
    let Ok(text) = std::str::from_utf8(text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text)) else {
        return whole("a config that is not UTF-8");
    };
    let mut found = Vec::new();
    let mut section = String::new();
    let mut header = "";
    for (i, raw) in text.split('\n').enumerate() {
        let mut line = raw.trim_matches([' ', '\t', '\r']);
        let mut note = |why: String, line: &str, header: &str| {
            found.push(NotInert {
                header: Some(header.to_string()),
                line: line.to_string(),
                why,
            })
        };
        if line.starts_with('[') {
            let Some((name, rest)) = section_header(line) else {
                note(
                    format!("line {} (a section header guard cannot read)", i + 1),
                    line,
                    "",
                );
                // What follows is under a section this reader does not know.
                section.clear();
                header = line;
                continue;
            };
            section = name;
            header = line[..line.len() - rest.len()].trim_end();
            // `[core] fsmonitor = x` is a key on the header's line.
            line = rest.trim_matches([' ', '\t', '\r']);
        }
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let key_len = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(line.len());
        let (key, after) = line.split_at(key_len);
        let after = after.trim_start_matches([' ', '\t']);
        let well_formed = key.starts_with(|c: char| c.is_ascii_alphabetic())
            && (after.is_empty() || after.starts_with(['=', '#', ';']));
        if !well_formed || section.is_empty() {
            note(
                format!("line {} (a line guard cannot read)", i + 1),
                line,
                header,
            );
            continue;
        }
        let key = key.to_ascii_lowercase();
        let inert = INERT_KEYS
            .iter()
            .any(|(s, keys)| *s == section && keys.contains(&key.as_str()));
        if !inert {
            note(format!("{section}.{key}"), line, header);
        }
    }
    found
}

/// `[name]`, `[name "subsection"]` or `[name.subsection]`: the section's
/// name (lowercase) and what follows the `]`.
pub fn section_header(line: &str) -> Option<(String, &str)> {
    let inner = line.strip_prefix('[')?;
    let name_len = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_len);
    let name = name.split('.').next().unwrap_or_default();
    if name.is_empty() {
        return None;
    }
    let rest = if let Some(quoted) = rest.strip_prefix([' ', '\t']) {
        // A quoted subsection: `\"` and `\\` escape, no newline inside.
        let mut chars = quoted.trim_start_matches([' ', '\t']).char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return None;
        }
        let mut end = None;
        while let Some((j, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = Some(j);
                    break;
                }
                _ => {}
            }
        }
        let start = quoted.len() - quoted.trim_start_matches([' ', '\t']).len();
        &quoted[start + end? + 1..]
    } else {
        rest
    };
    let rest = rest.strip_prefix(']')?;
    Some((name.to_ascii_lowercase(), rest))
}

/// Every value `section.key` is given in a config (`core`, `hookspath`:
/// lowercase), in order. Subsections are not told apart, includes are not
/// followed.
pub fn values(text: &str, section: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for raw in text.split('\n') {
        let mut line = raw.trim_matches([' ', '\t', '\r']);
        if line.starts_with('[') {
            let Some((name, rest)) = section_header(line) else {
                continue;
            };
            current = name;
            line = rest.trim_matches([' ', '\t', '\r']);
        }
        if current != section {
            continue;
        }
        let key_len = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(line.len());
        let (name, after) = line.split_at(key_len);
        if !name.eq_ignore_ascii_case(key) {
            continue;
        }
        let after = after.trim_start_matches([' ', '\t']);
        if let Some(value) = after.strip_prefix('=') {
            out.push(unquote(value));
        }
    }
    out
}

/// A value as git reads it: quotes removed, `\\`, `\"`, `\n`, `\t`
/// unescaped, a `#` or `;` outside quotes starting a comment, whitespace
/// around trimmed.
fn unquote(value: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = value.trim_start_matches([' ', '\t']).chars();
    // Whitespace is kept only once something follows it.
    let mut pending = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => {
                out.push_str(&pending);
                pending.clear();
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('b') => {
                        out.pop();
                    }
                    Some(other) => out.push(other),
                    None => {}
                }
            }
            '#' | ';' if !quoted => break,
            ' ' | '\t' | '\r' if !quoted => pending.push(c),
            _ => {
                out.push_str(&pending);
                pending.clear();
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_git_reads_them() {
        let text = "[core]\n\thooksPath = .husky/_\n[Core \"x\"]\n  HOOKSPATH=\"a b\" # c\n[user]\n\thookspath = no\n[core] hookspath = x\\\"y ; z\n";
        assert_eq!(
            values(text, "core", "hookspath"),
            [".husky/_", "a b", "x\"y"]
        );
        assert!(values("[core]\n\tbare = true\n", "core", "hookspath").is_empty());
    }

    #[test]
    fn what_git_init_and_clone_write_is_inert() {
        let init = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n";
        assert_eq!(unsafe_config_key(init.as_bytes()), None);
        let clone = format!(
            "{init}[remote \"origin\"]\n\turl = https://example.invalid/x.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[branch \"main\"]\n\tremote = origin\n\tmerge = refs/heads/main\n"
        );
        assert_eq!(unsafe_config_key(clone.as_bytes()), None);
        let module = "[core]\n\tworktree = ../../../sub\n[Remote \"o\\\"x\"] # c\n\tURL=/tmp/x\n; comment\n# comment\n\n";
        assert_eq!(unsafe_config_key(module.as_bytes()), None);
        assert_eq!(unsafe_config_key(b"\xEF\xBB\xBF[core]\r\n\tbare\r\n"), None);
    }

    #[test]
    fn keys_that_run_programs_are_unsafe() {
        for (text, key) in [
            ("[core]\n\tfsmonitor = ./x\n", "core.fsmonitor"),
            ("[core]\n\thooksPath = .h\n", "core.hookspath"),
            ("[core] fsmonitor = ./x\n", "core.fsmonitor"),
            ("[core]sshCommand=x\n", "core.sshcommand"),
            ("[alias]\n\tst = !sh\n", "alias.st"),
            ("[include]\n\tpath = ../x\n", "include.path"),
            ("[includeIf \"gitdir:/\"]\n\tpath = x\n", "includeif.path"),
            ("[submodule \"s\"]\n\tupdate = !sh\n", "submodule.update"),
            ("[remote \"o\"]\n\tuploadpack = x\n", "remote.uploadpack"),
            ("[core.x]\n\tpager = less\n", "core.pager"),
            (
                "[core]\n\tbare = false # \\\n\tfsmonitor = x\n",
                "core.fsmonitor",
            ),
        ] {
            assert_eq!(
                unsafe_config_key(text.as_bytes()).as_deref(),
                Some(key),
                "{text}"
            );
        }
    }

    #[test]
    fn what_is_not_understood_is_unsafe() {
        for text in [
            "fsmonitor = x\n",
            "[core\n\tbare = true\n",
            "[core \"x]\n",
            "[core]\n\t= x\n",
            "[core]\n\t\"fsmonitor\" = x\n",
            "[core]\n\tbare = \\\n  ./x\n",
            "[]\n",
        ] {
            let why = unsafe_config_key(text.as_bytes());
            assert!(
                why.as_deref().is_some_and(|w| w.starts_with("line")),
                "{text}: {why:?}"
            );
        }
        assert!(unsafe_config_key(b"[core]\n\tbare = \xff\n").is_some());
    }

    #[test]
    fn what_the_user_had_stays_theirs_in_a_new_copy() {
        let known = b"[core]\n\thooksPath = .husky/_\n[alias]\n\tco = !git checkout\n";
        // `git config user.name x` on the host: a line added, the rest kept.
        let rewritten =
            b"[core]\n\thooksPath = .husky/_\n[alias]\n\tco = !git checkout\n[user]\n\tname = x\n";
        assert_eq!(unsafe_config_key_beyond(rewritten, known), None);
        // A value ending in an escaped backslash continues nothing.
        let escaped = b"[core]\n\thooksPath = .husky/_\n[user]\n\tname = a\\\\\r\n";
        assert_eq!(unsafe_config_key_beyond(escaped, known), None);
        assert_eq!(
            unsafe_config_key(rewritten).as_deref(),
            Some("core.hookspath")
        );
        // Anything beyond it is the sandbox's: a new key, a changed value,
        // a known line under another header, a file guard cannot read.
        for (planted, why) in [
            (
                &b"[core]\n\thooksPath = .husky/_\n\tfsmonitor = x\n"[..],
                "core.fsmonitor",
            ),
            (b"[core]\n\thooksPath = /tmp\n", "core.hookspath"),
            (
                b"[core]\n[alias]\n\thooksPath = .husky/_\n",
                "alias.hookspath",
            ),
            (b"[core \"x\"]\n\thooksPath = .husky/_\n", "core.hookspath"),
            // The user's relative hooksPath read from elsewhere: hooks the
            // sandbox wrote in `sub/.husky/_`, or in the git directory.
            (
                b"[core]\n\thooksPath = .husky/_\n\tworktree = ../sub\n",
                "core.hookspath",
            ),
            (
                b"[core]\n\tbare\n\thooksPath = .husky/_\n",
                "core.hookspath",
            ),
            // `[core]` read by git as part of the url: the line after it is
            // not under the header this reader sees.
            (
                b"[remote \"x\"]\n\turl = y \\\n[core]\n\thooksPath = .husky/_\n",
                "core.hookspath",
            ),
            (
                b"[core]\n\thooksPath = .husky/_\n\xff\n",
                "a config that is not UTF-8",
            ),
        ] {
            assert_eq!(
                unsafe_config_key_beyond(planted, known).as_deref(),
                Some(why),
                "{}",
                String::from_utf8_lossy(planted)
            );
        }
    }
}
