//! Git repositories the sandbox made or re-pointed, checked after the run.
//!
//! The mount view keeps the hooks and config of every repository that
//! existed at the start read-only (`protect`). A repository the sandbox
//! creates during the run has none of that: `git init vendor/x` and a
//! `core.fsmonitor` or `pre-commit` hook in it would run on the host the
//! next time anyone runs git there — or runs `git status` in the project
//! above, which looks into an embedded repository's working tree, or just
//! `cd`s there with a git-aware prompt. Nothing can stop those paths from
//! being created (no mount can stand on a path that does not exist yet,
//! and Landlock has no rule by name), so after the run guard walks the
//! project for git directories, follows `.git` files and links and
//! `commondir` to the directories git would use, and checks every one the
//! sandbox could have written: a config that sets anything beyond a short
//! list of inert keys, and a hooks directory holding anything but git's
//! `*.sample` files, are moved aside. What the user had before the run is
//! left alone (protected paths the run could not change).

use super::protect::{Moved, move_aside};
use crate::host;
use crate::policy::{Access, GrantKind, Policy};
use crate::secrets::walk::{Visitor, walk};
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

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
    ("user", &["name", "email"]),
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
    ("index", &["version"]),
];

/// Largest config guard reads; a larger one is unsafe unread.
const CONFIG_MAX: usize = 1 << 20;

/// The first key of a git config that is not inert (`core.fsmonitor`), or
/// a description of the first line this reader cannot classify. `None`:
/// every key is inert.
///
/// Every line is read as a line of its own, including what git would take
/// as the continuation of a value after a trailing backslash: such a line
/// is either classified like any other (a key git does not see is checked
/// in vain, never missed) or not understood, which is unsafe.
pub fn unsafe_config_key(text: &[u8]) -> Option<String> {
    if text.len() > CONFIG_MAX {
        return Some("a config over 1 MiB".into());
    }
    let Ok(text) = std::str::from_utf8(text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text)) else {
        return Some("a config that is not UTF-8".into());
    };
    let mut section = String::new();
    for (i, raw) in text.split('\n').enumerate() {
        let mut line = raw.trim_matches([' ', '\t', '\r']);
        if line.starts_with('[') {
            let Some((name, rest)) = section_header(line) else {
                return Some(format!(
                    "line {} (a section header guard cannot read)",
                    i + 1
                ));
            };
            section = name;
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
            return Some(format!("line {} (a line guard cannot read)", i + 1));
        }
        let key = key.to_ascii_lowercase();
        let inert = INERT_KEYS
            .iter()
            .any(|(s, keys)| *s == section && keys.contains(&key.as_str()));
        if !inert {
            return Some(format!("{section}.{key}"));
        }
    }
    None
}

/// `[name]`, `[name "subsection"]` or `[name.subsection]`: the section's
/// name (lowercase) and what follows the `]`.
fn section_header(line: &str) -> Option<(String, &str)> {
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

/// What guard knows of the paths that were protected at the start: their
/// identity then. A protected path still holding the same file is what the
/// user had (a read-only mount cannot be replaced; it can only be carried
/// along when the directory above is renamed, which changes its path).
pub struct Trusted {
    ids: HashMap<PathBuf, (u64, u64)>,
    /// At the `landlock` level protected paths are put back from a snapshot
    /// after the run (new files): there the path alone tells.
    by_path: bool,
}

impl Trusted {
    /// Taken before the run starts.
    pub fn before_run(policy: &Policy) -> Trusted {
        let ids = policy
            .grants
            .iter()
            .filter(|g| g.access == Access::Protected)
            .filter(|g| matches!(g.kind, GrantKind::Dir | GrantKind::File))
            .filter_map(|g| {
                let st = nix::sys::stat::lstat(&g.path).ok()?;
                Some((g.path.clone(), (st.st_dev, st.st_ino)))
            })
            .collect();
        Trusted {
            ids,
            by_path: policy.isolation == crate::profile::Isolation::Landlock,
        }
    }

    fn holds(&self, path: &Path, st: &nix::sys::stat::FileStat) -> bool {
        self.ids
            .get(path)
            .is_some_and(|id| self.by_path || *id == (st.st_dev, st.st_ino))
    }
}

/// What the walk found that may make a directory a git directory.
#[derive(Default)]
struct Found {
    /// `.git` entries: directories, files (`gitdir: …`) and links.
    dot_git: Vec<PathBuf>,
    /// Directories holding a `HEAD` (bare repositories, submodules' and
    /// worktrees' git directories) or a `commondir`.
    marked: Vec<PathBuf>,
    /// Components of the walked root's path (above it, a `.git` means
    /// nothing).
    root_depth: usize,
}

impl Visitor<'static> for Found {
    fn dir(&mut self, path: &Path) -> bool {
        match path.file_name().and_then(|n| n.to_str()) {
            Some(".git") => {
                self.dot_git.push(path.to_path_buf());
                true
            }
            // The object stores of `.git` directories hold nothing git runs,
            // and are most of their entries. Nothing inside a `.git` can be
            // reached by a user or another repository's index (git refuses
            // `.git` in a path); a bare repository's store can, and is walked.
            Some("objects") => !path
                .components()
                .skip(self.root_depth)
                .any(|c| c.as_os_str() == ".git"),
            _ => true,
        }
    }

    fn file(
        &mut self,
        _dirfd: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        _hint: Option<u32>,
    ) -> Option<(u64, u64)> {
        self.entry(name, path);
        None
    }

    fn other(&mut self, _dirfd: BorrowedFd<'_>, name: &CStr, path: &Path) {
        self.entry(name, path);
    }

    fn error(&mut self) {}
}

impl Found {
    fn entry(&mut self, name: &CStr, path: &Path) {
        match name.to_bytes() {
            b".git" => self.dot_git.push(path.to_path_buf()),
            b"HEAD" | b"commondir" => {
                if let Some(parent) = path.parent() {
                    self.marked.push(parent.to_path_buf());
                }
            }
            _ => {}
        }
    }
}

/// Find every git directory in the project and every one a `.git` file or
/// link, or a `commondir`, leads to where the sandbox could write; move
/// aside what would run outside. `writable` are the host directories the
/// sandbox could write besides the project.
pub fn check_after_run(project: &Path, writable: &[PathBuf], trusted: &Trusted) -> Vec<Moved> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let make = || Found {
        root_depth: project.components().count(),
        ..Found::default()
    };
    let mut found = Found::default();
    for f in walk(project, threads, make) {
        found.dot_git.extend(f.dot_git);
        found.marked.extend(f.marked);
    }
    let mut roots: Vec<PathBuf> = vec![project.to_path_buf()];
    roots.extend(
        writable
            .iter()
            .filter_map(|w| std::fs::canonicalize(w).ok()),
    );
    let mut todo: Vec<PathBuf> = Vec::new();
    let mut moved = Vec::new();
    for path in found.dot_git {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => todo.push(path),
            // `gitdir: <path>` (relative to the file's directory) or a link:
            // git uses the directory it leads to.
            Ok(m) => {
                let target = if m.is_symlink() {
                    Some(path.clone())
                } else {
                    gitfile_target(&path)
                };
                if let Some(dir) = target.and_then(|t| std::fs::canonicalize(t).ok()) {
                    todo.push(dir);
                }
            }
            Err(_) => {}
        }
    }
    for dir in found.marked {
        let is_dir =
            |name: &str| std::fs::symlink_metadata(dir.join(name)).is_ok_and(|m| m.is_dir());
        let has_head = std::fs::symlink_metadata(dir.join("HEAD")).is_ok();
        let has_commondir = std::fs::symlink_metadata(dir.join("commondir")).is_ok();
        if has_head && (has_commondir || (is_dir("objects") && is_dir("refs"))) {
            todo.push(dir);
        }
    }
    let mut seen: HashSet<PathBuf> = HashSet::new();
    while let Some(dir) = todo.pop() {
        let Ok(dir) = std::fs::canonicalize(&dir) else {
            continue;
        };
        // Only where the sandbox could have written: a repository of the
        // user's elsewhere (a worktree's main repository) is theirs.
        let Some(root) = roots.iter().find(|r| dir.starts_with(r)) else {
            continue;
        };
        if !seen.insert(dir.clone()) || seen.len() > 10_000 {
            continue;
        }
        check_git_dir(&dir, root, trusted, &mut moved, &mut todo);
    }
    moved
}

/// The directory a `gitdir: <path>` file names.
fn gitfile_target(path: &Path) -> Option<PathBuf> {
    let text = read_small(path, 4096)?;
    let line = std::str::from_utf8(&text).ok()?.lines().next()?;
    let target = line.strip_prefix("gitdir:")?.trim();
    Some(path.parent()?.join(target))
}

/// A regular file's content, if it is one and no larger than `max`.
fn read_small(path: &Path, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out).ok()?;
    (out.len() as u64 <= max).then_some(out)
}

/// Check one git directory (canonical, inside `root`): its config files,
/// hooks and `commondir` (whose target is queued on `todo`: git reads the
/// config and hooks there too).
fn check_git_dir(
    dir: &Path,
    root: &Path,
    trusted: &Trusted,
    moved: &mut Vec<Moved>,
    todo: &mut Vec<PathBuf>,
) {
    for name in ["config", "config.worktree"] {
        let path = dir.join(name);
        let Ok(st) = nix::sys::stat::lstat(&path) else {
            continue;
        };
        if trusted.holds(&path, &st) {
            continue;
        }
        let why = if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            Some("a git config that is not a regular file".to_string())
        } else {
            match read_small(&path, CONFIG_MAX as u64) {
                Some(text) => unsafe_config_key(&text).map(|k| format!("a git config setting {k}")),
                None => Some("a git config guard cannot read".to_string()),
            }
        };
        if let Some(why) = why {
            moved.push(set_aside(root, &path, why));
        }
    }
    let hooks = dir.join("hooks");
    if let Ok(st) = nix::sys::stat::lstat(&hooks)
        && !trusted.holds(&hooks, &st)
    {
        let why = if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            Some("a git hooks path that is not a directory".to_string())
        } else {
            std::fs::read_dir(&hooks).ok().and_then(|rd| {
                rd.flatten()
                    .map(|e| e.file_name())
                    .find(|n| !n.as_encoded_bytes().ends_with(b".sample"))
                    .map(|n| format!("git hook {}", host::printable(Path::new(&n))))
            })
        };
        if let Some(why) = why {
            moved.push(set_aside(root, &hooks, why));
        }
    }
    let commondir = dir.join("commondir");
    if let Ok(st) = nix::sys::stat::lstat(&commondir)
        && !trusted.holds(&commondir, &st)
        && let Some(text) = read_small(&commondir, 4096)
        && let Ok(text) = std::str::from_utf8(&text)
        && let Some(line) = text.lines().next()
    {
        todo.push(dir.join(line.trim_end()));
    }
}

/// Move `path` (inside `root`, no link on the way) aside.
fn set_aside(root: &Path, path: &Path, why: String) -> Moved {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let result = match (
        path.strip_prefix(root).ok().and_then(Path::parent),
        path.file_name(),
    ) {
        (Some(parent), Some(name)) => match host::open_dir_beneath(root, parent) {
            Some(dir) => move_aside(&dir, name, &format!(".guard-quarantine-{stamp}"))
                .map(|aside| path.with_file_name(aside))
                .map_err(|e| e.to_string()),
            None => Err("a link or a missing directory on the way".to_string()),
        },
        _ => Err("not inside a writable directory".to_string()),
    };
    Moved {
        path: path.to_path_buf(),
        aside: result,
        why: Some(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
