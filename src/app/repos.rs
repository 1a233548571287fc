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

use super::git_config::{CONFIG_MAX, unsafe_config_key};
use super::protect::{Moved, move_aside};
use crate::host;
use crate::policy::{Access, GrantKind, Policy};
use crate::secrets::walk::Visitor;
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

/// What guard knows of the paths that were protected at the start: their
/// identity then. A protected path still holding the same file is what the
/// user had (a read-only mount cannot be replaced; it can only be carried
/// along when the directory above is renamed, which changes its path).
pub struct Trusted {
    ids: HashMap<PathBuf, (u64, u64)>,
    /// Protected symlinks (`.git/hooks -> ../.githooks`): put back after
    /// the run if the sandbox re-pointed them, so the path tells.
    links: HashSet<PathBuf>,
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
            links: policy
                .protected_links
                .iter()
                .map(|(link, _)| link.clone())
                .collect(),
            by_path: policy.isolation == crate::profile::Isolation::Landlock,
        }
    }

    fn holds(&self, path: &Path, st: &nix::sys::stat::FileStat) -> bool {
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK && self.links.contains(path) {
            return true;
        }
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
    /// Directories that could not be read.
    unreadable: Vec<PathBuf>,
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

    fn link(&mut self, _dirfd: BorrowedFd<'_>, name: &CStr, path: &Path) {
        self.entry(name, path);
    }

    fn error(&mut self, dir: &Path) {
        self.unreadable.push(dir.to_path_buf());
    }
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
pub fn check_after_run(
    project: &Path,
    scan_cache: &Path,
    writable: &[PathBuf],
    trusted: &Trusted,
) -> Vec<Moved> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let make = || Found {
        root_depth: project.components().count(),
        ..Found::default()
    };
    let mut found = Found::default();
    for f in crate::secrets::walk_listed(project, scan_cache, threads, make) {
        found.dot_git.extend(f.dot_git);
        found.marked.extend(f.marked);
        found.unreadable.extend(f.unreadable);
    }
    warn_unreadable(&found.unreadable);
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
        if !seen.insert(dir.clone()) {
            continue;
        }
        check_git_dir(&dir, root, trusted, &mut moved, &mut todo);
    }
    moved
}

/// A directory of the user's that guard cannot read may hide a repository
/// the sandbox made (it can `chmod 000` its own directories): say so
/// rather than pass it by. Those of other owners (a container's data
/// directory) the sandbox could not have written either.
fn warn_unreadable(dirs: &[PathBuf]) {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut dirs: Vec<&PathBuf> = dirs
        .iter()
        .filter(|d| nix::sys::stat::lstat(d.as_path()).is_ok_and(|st| st.st_uid == me))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        eprintln!(
            "guard: WARNING: {} cannot be read, so guard could not check it for git repositories the sandbox made; inspect it before running git there",
            host::printable(d)
        );
        tracing::info!(target: crate::audit::TARGET, kind = "fs", action = "unchecked", path = %d.display());
    }
}

/// The directory a `gitdir: <path>` file names.
fn gitfile_target(path: &Path) -> Option<PathBuf> {
    let text = host::read_small(path, 4096)?;
    let line = std::str::from_utf8(&text).ok()?.lines().next()?;
    let target = line.strip_prefix("gitdir:")?.trim();
    Some(path.parent()?.join(target))
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
            match host::read_small(&path, CONFIG_MAX as u64) {
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
    // A rebase in progress runs the `exec` lines of its todo list at the
    // user's `git rebase --continue` (a sandbox can start one, or add to
    // the user's).
    let todo_list = dir.join("rebase-merge/git-rebase-todo");
    if let Some(text) = host::read_small(&todo_list, CONFIG_MAX as u64)
        && let Some(line) = String::from_utf8_lossy(&text)
            .lines()
            .find(|l| matches!(l.split_whitespace().next(), Some("exec" | "x")))
    {
        let shown: String = line.chars().take(60).collect();
        let why = format!(
            "a rebase todo list that runs `{}`",
            host::printable(Path::new(&shown))
        );
        moved.push(set_aside(root, &todo_list, why));
    }
    // The other worktrees of a repository: their own config runs when the
    // user works there.
    if let Ok(rd) = std::fs::read_dir(dir.join("worktrees")) {
        todo.extend(
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    let commondir = dir.join("commondir");
    if let Ok(st) = nix::sys::stat::lstat(&commondir)
        && !trusted.holds(&commondir, &st)
        && let Some(text) = host::read_small(&commondir, 4096)
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
