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

use super::git_config::{CONFIG_MAX, unsafe_config_key, unsafe_config_key_beyond};
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
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Trusted {
    ids: HashMap<PathBuf, (u64, u64)>,
    /// Protected symlinks (`.git/hooks -> ../.githooks`): put back after
    /// the run if the sandbox re-pointed them, so the path tells.
    links: HashSet<PathBuf>,
    /// At the `landlock` level protected paths are put back from a snapshot
    /// after the run (new files): there the path alone tells.
    by_path: bool,
    /// Hidden paths: the sandbox never saw them, so nothing there is its.
    hidden: Vec<PathBuf>,
    /// Protected git configs as they were: the user's git may replace one
    /// during the run (`git config`, `git push -u`), and what the user had
    /// in it stays theirs in the new file.
    #[serde(default)]
    configs: HashMap<PathBuf, Vec<u8>>,
    /// The birth time of each of `ids` where the filesystem keeps one: a
    /// file or directory removed and made anew often gets the freed inode
    /// number (`rm -rf .git/hooks && mkdir .git/hooks` on ext4, every
    /// time), and one the host made anew during the run is not what the
    /// user had (the sandbox could reach it before guard covered it).
    #[serde(default)]
    births: HashMap<PathBuf, std::time::SystemTime>,
    /// When the session began (a little before): a link in a git directory
    /// changed since then is the sandbox's (see `links_git_writes_through`).
    #[serde(default)]
    since: Option<std::time::SystemTime>,
    /// The relative `core.hooksPath` values of the user's global config
    /// (see `protect::relative_hooks_paths`), as they were at the start.
    #[serde(default)]
    relative_hooks: Vec<String>,
    /// The project's protected files that tools on the host load from the
    /// directory they start in (`.envrc`, `.vscode/tasks.json`,
    /// `.claude/settings.json`, `.aider.conf.yml` …), relative to the
    /// project, and `.env` (aider and gemini load it): the same names
    /// below the top, made or changed during the run, are moved aside
    /// after it (see `startup_files_made`).
    #[serde(default)]
    startup: Vec<PathBuf>,
}

/// The project's protected paths, relative to it, outside its git and
/// Mercurial directories (those are checked as repositories), and `.env`.
fn startup_names(policy: &Policy) -> Vec<PathBuf> {
    let protected = policy
        .grants
        .iter()
        .filter(|g| g.access == Access::Protected)
        .map(|g| &g.path)
        .chain(&policy.absent_protected);
    let mut out: Vec<PathBuf> = protected
        .filter_map(|p| p.strip_prefix(&policy.project).ok())
        .filter(|r| !r.as_os_str().is_empty())
        .filter(|r| !r.iter().any(|c| c == ".git" || c == ".hg"))
        .map(Path::to_path_buf)
        .collect();
    out.push(PathBuf::from(".env"));
    out.sort();
    out.dedup();
    out
}

/// When the file at `path` (not following a link) was made, where the
/// filesystem keeps that.
fn birth(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::symlink_metadata(path).ok()?.created().ok()
}

impl Trusted {
    /// Taken before the run starts.
    pub fn before_run(policy: &Policy) -> Trusted {
        let ids: HashMap<PathBuf, (u64, u64)> = policy
            .grants
            .iter()
            .filter(|g| g.access == Access::Protected)
            .filter(|g| matches!(g.kind, GrantKind::Dir | GrantKind::File))
            .filter_map(|g| {
                let st = nix::sys::stat::lstat(&g.path).ok()?;
                Some((g.path.clone(), (st.st_dev, st.st_ino)))
            })
            .collect();
        let births = ids
            .keys()
            .filter_map(|p| Some((p.clone(), birth(p)?)))
            .collect();
        Trusted {
            ids,
            births,
            // A link's ctime is set when it is made (or linked, or renamed)
            // and cannot be set back; the coarse clock it is read from may
            // lag the one read here.
            since: std::time::SystemTime::now().checked_sub(std::time::Duration::from_secs(1)),
            links: policy
                .protected_links
                .iter()
                .map(|(link, _)| link.clone())
                .collect(),
            by_path: policy.isolation == crate::profile::Isolation::Landlock,
            relative_hooks: super::protect::relative_hooks_paths(&policy.home),
            startup: startup_names(policy),
            hidden: policy
                .grants
                .iter()
                .filter(|g| g.access == Access::Hidden)
                .map(|g| g.path.clone())
                .collect(),
            configs: policy
                .grants
                .iter()
                .filter(|g| g.access == Access::Protected && g.kind == GrantKind::File)
                .filter(|g| {
                    g.path
                        .file_name()
                        .is_some_and(|n| n == "config" || n == "config.worktree")
                })
                .filter_map(|g| {
                    let text = host::read_small(&g.path, CONFIG_MAX as u64)?;
                    Some((g.path.clone(), text))
                })
                .collect(),
        }
    }

    pub fn is_hidden(&self, path: &Path) -> bool {
        self.hidden.iter().any(|h| path.starts_with(h))
    }

    /// Whether `path` (status `st`) is as the user had it: protected at
    /// the start and still the same file, or inside a protected directory
    /// that still is (`.git/worktrees/<name>/config.worktree` below a
    /// protected `.git/worktrees`).
    fn holds(&self, path: &Path, st: &nix::sys::stat::FileStat) -> bool {
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK && self.links.contains(path) {
            return true;
        }
        path.ancestors().any(|p| {
            let Some(id) = self.ids.get(p) else {
                return false;
            };
            if self.by_path {
                return true;
            }
            let now = if p == path {
                Some((st.st_dev, st.st_ino))
            } else {
                nix::sys::stat::lstat(p).ok().map(|s| (s.st_dev, s.st_ino))
            };
            now == Some(*id) && self.births.get(p).is_none_or(|b| birth(p) == Some(*b))
        })
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
    /// Every symbolic link: git follows one out of the tree (`cd vendor`).
    links: Vec<PathBuf>,
    /// The last names of `Trusted::startup`, and the paths found with one.
    startup_names: std::sync::Arc<HashSet<std::ffi::OsString>>,
    startup: Vec<PathBuf>,
}

impl Visitor<'static> for Found {
    fn dir(&mut self, path: &Path) -> bool {
        if path
            .file_name()
            .is_some_and(|n| self.startup_names.contains(n))
        {
            self.startup.push(path.to_path_buf());
        }
        match path.file_name().and_then(|n| n.to_str()) {
            Some(".git") => {
                self.dot_git.push(path.to_path_buf());
                true
            }
            // A `.git` object store is mostly 256 directories of loose
            // objects, files only; one holding a directory (ext4, xfs and
            // tmpfs count subdirectories in the link count) may hide a
            // repository a link elsewhere leads into, and is walked.
            Some(name)
                if name.len() == 2
                    && name.bytes().all(|b| b.is_ascii_hexdigit())
                    && path.parent().is_some_and(|p| p.ends_with(".git/objects")) =>
            {
                !nix::sys::stat::lstat(path).is_ok_and(|st| st.st_nlink == 2)
            }
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
        self.links.push(path.to_path_buf());
    }

    fn error(&mut self, dir: &Path) {
        self.unreadable.push(dir.to_path_buf());
    }
}

impl Found {
    fn watching(startup: &std::sync::Arc<HashSet<std::ffi::OsString>>) -> Found {
        Found {
            startup_names: startup.clone(),
            ..Found::default()
        }
    }

    fn entry(&mut self, name: &CStr, path: &Path) {
        if path
            .file_name()
            .is_some_and(|n| self.startup_names.contains(n))
        {
            self.startup.push(path.to_path_buf());
        }
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

/// What a directory to check is to git.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A git directory (`.git`, a bare repository, a worktree's or a
    /// submodule's): `HEAD`, and objects and refs here or in its commondir.
    GitDir,
    /// A directory some `commondir` names: objects, refs, config and hooks
    /// of the git directories that name it.
    Common,
}

/// Whether `dir` is what git would take for `kind`, as git checks: by
/// access, following links (`objects` may be a link, or even a file).
fn is_git(dir: &Path, kind: Kind) -> bool {
    let exists = |name: &str| std::fs::metadata(dir.join(name)).is_ok();
    match kind {
        Kind::GitDir => {
            exists("HEAD") && (exists("commondir") || (exists("objects") && exists("refs")))
        }
        Kind::Common => exists("objects") && exists("refs"),
    }
}

/// Largest `.git` file git reads (`4 * PATH_MAX`; a larger one is an
/// error to it). A `commondir` git reads whole, however large: guard reads
/// one up to [`CONFIG_MAX`] and sets a larger one aside.
const GIT_FILE_MAX: u64 = 4 * 4096;

/// A path file as git reads it (a `.git` file's `gitdir: `, a
/// `commondir`): through a link, the whole content, trailing CRs and LFs
/// removed, then cut at the first NUL (git uses it as a C string), bytes
/// as they are (a path need not be UTF-8), relative to `base`.
fn git_path_file(file: &Path, prefix: &[u8], base: &Path, max: u64) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = crate::host::read_small_followed(file, max)?;
    let mut text = bytes.as_slice();
    while let [rest @ .., b'\r' | b'\n'] = text {
        text = rest;
    }
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    let path = text.strip_prefix(prefix)?;
    (!path.is_empty()).then(|| base.join(std::ffi::OsStr::from_bytes(path)))
}

/// Find every git directory in the project (and in `walked`, writable
/// directories the user works in too) and every one a `.git` file or link,
/// or a `commondir`, leads to where the sandbox could write; move aside
/// what would run outside. `writable` are the host directories the sandbox
/// could write besides the project; `linked` the repository of a linked
/// worktree (checked whatever leads there).
pub fn check_after_run(
    project: &Path,
    scan_cache: &Path,
    walked: &[PathBuf],
    writable: &[PathBuf],
    linked: Option<&Path>,
    trusted: &Trusted,
) -> Vec<Moved> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let names: std::sync::Arc<HashSet<std::ffi::OsString>> = std::sync::Arc::new(
        trusted
            .startup
            .iter()
            .filter_map(|r| r.file_name())
            .map(|n| n.to_os_string())
            .collect(),
    );
    let mut found = Found::default();
    let walk = |root: &Path, found: &mut Found| {
        for f in crate::secrets::walk_listed(root, scan_cache, threads, || Found::watching(&names))
        {
            found.dot_git.extend(f.dot_git);
            found.marked.extend(f.marked);
            found.unreadable.extend(f.unreadable);
            found.links.extend(f.links);
            found.startup.extend(f.startup);
        }
    };
    walk(project, &mut found);
    for w in walked {
        walk(w, &mut found);
    }
    // A link in the project to a directory the sandbox could write
    // elsewhere (the persistent home): on the host, `cd` through it puts git
    // in a repository there, or below one. That whole writable directory
    // is walked too, once.
    let writable: Vec<PathBuf> = writable
        .iter()
        .filter_map(|w| std::fs::canonicalize(w).ok())
        .collect();
    let mut done: Vec<PathBuf> = std::iter::once(project)
        .chain(walked.iter().map(PathBuf::as_path))
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .collect();
    let writable_dirs: Vec<PathBuf> = writable
        .iter()
        .filter(|w| w.is_dir() && !done.iter().any(|d| w.starts_with(d)))
        .cloned()
        .collect();
    // Resolving every link costs time in trees full of them (pnpm's
    // node_modules): only when there is somewhere else they could lead.
    let links = if writable_dirs.is_empty() {
        Vec::new()
    } else {
        std::mem::take(&mut found.links)
    };
    for link in links {
        let Ok(target) = std::fs::canonicalize(&link) else {
            continue;
        };
        if done.iter().any(|d| target.starts_with(d)) {
            continue;
        }
        if let Some(w) = writable_dirs.iter().find(|w| target.starts_with(w)) {
            done.push(w.clone());
            walk(w, &mut found);
        }
    }
    // Directories the sandbox made unreadable to guard (git may still open
    // files there by name): made readable and walked; the user's own are
    // theirs to have so, and named. One the sandbox never saw (the scan
    // hid it because the user had made it unreadable) is left as it was.
    let mut unreadable = std::mem::take(&mut found.unreadable);
    for _ in 0..16 {
        unreadable.retain(|d| !trusted.is_hidden(d));
        let opened: Vec<PathBuf> = unreadable.drain(..).filter_map(|d| open_up(&d)).collect();
        if opened.is_empty() {
            break;
        }
        for d in opened {
            walk(&d, &mut found);
        }
        unreadable = std::mem::take(&mut found.unreadable);
    }
    warn_unreadable(&unreadable);
    let roots = check_roots(project, &writable);
    let mut todo: Vec<(PathBuf, Kind)> = Vec::new();
    todo.extend(linked.map(|l| (l.to_path_buf(), Kind::Common)));
    todo.extend(
        found
            .dot_git
            .iter()
            .filter_map(|p| git_dir_of(p))
            .map(|d| (d, Kind::GitDir)),
    );
    todo.extend(found.marked.into_iter().map(|d| (d, Kind::GitDir)));
    let mut moved = startup_files_made(&found.startup, project, trusted);
    if let Some(common) = linked {
        moved.extend(main_checkout_state(common, &roots, trusted));
    }
    moved.extend(worktree_hooks(&found.dot_git, &roots, trusted));
    moved.extend(check_queue(todo, &roots, trusted).moved);
    moved
}

/// Files below the project's top that tools on the host load from the
/// directory they start in (`api/.envrc` for direnv, `api/.gemini/
/// settings.json` with its MCP servers, `api/.aider.conf.yml`), made or
/// changed during the run: the project's own are protected from the start,
/// these are moved aside after it. A `.env` (at any depth: aider and
/// gemini load it) only when it sets what steers an agent or a runtime on
/// the host (`AIDER_LOAD`, a model API's base URL, `NODE_OPTIONS` …):
/// an application's settings stay. Not in installed packages.
fn startup_files_made(found: &[PathBuf], project: &Path, trusted: &Trusted) -> Vec<Moved> {
    let mut moved = Vec::new();
    let Some(since) = trusted.since else {
        return moved;
    };
    for path in found {
        let Some(rel) = trusted.startup.iter().find(|r| path.ends_with(r)) else {
            continue;
        };
        let dotenv = rel.as_os_str() == ".env";
        if (!dotenv && *path == project.join(rel))
            || !path.starts_with(project)
            || crate::secrets::installed_package(path)
            || path.iter().any(|c| c == ".git")
        {
            continue;
        }
        let Ok(st) = nix::sys::stat::lstat(path) else {
            continue;
        };
        let changed = std::time::UNIX_EPOCH
            + std::time::Duration::new(
                u64::try_from(st.st_ctime).unwrap_or(0),
                u32::try_from(st.st_ctime_nsec).unwrap_or(0),
            );
        if changed < since || trusted.holds(path, &st) || trusted.is_hidden(path) {
            continue;
        }
        let why = if dotenv {
            // Loaders follow a link and read any size: what guard cannot
            // read whole as a file is set aside unread.
            let text = (st.st_mode & libc::S_IFMT == libc::S_IFREG)
                .then(|| host::read_small(path, CONFIG_MAX as u64))
                .flatten();
            match text {
                None => "a .env guard cannot read whole (an agent on the host would load it)"
                    .to_string(),
                Some(text) => match steering_variable(&String::from_utf8_lossy(&text)) {
                    Some(name) => {
                        format!("a .env setting {name} (an agent on the host would load it)")
                    }
                    None => continue,
                },
            }
        } else {
            format!(
                "{} below the project's top (a tool started there would load it)",
                rel.display()
            )
        };
        moved.push(set_aside(project, path, why));
    }
    moved
}

/// The first name in a dotenv file that steers an agent CLI or a runtime
/// that loads the file on the host: aider's options (`AIDER_LOAD` runs
/// commands), gemini's (`GEMINI_SYSTEM_MD`, `CODE_ASSIST_ENDPOINT`), model
/// APIs' base URLs (the user's key would go there: litellm's `*_API_BASE`,
/// the SDKs' `*_BASE_URL`), and what makes a runtime run code
/// (`NODE_OPTIONS`, `LD_PRELOAD` …). Every word of the text counts, in
/// whatever syntax: loaders accept more than one (`export\tNAME`,
/// `'NAME'=`, `NAME: value`, lines ended by a lone CR).
fn steering_variable(text: &str) -> Option<String> {
    const PREFIXES: &[&str] = &[
        "AIDER_",
        "GEMINI_",
        "CODE_ASSIST_",
        "GOOGLE_GEMINI_",
        "GOOGLE_VERTEX_",
        "LITELLM_",
        "LD_",
        "GIT_",
        "PERL5",
    ];
    const NAMES: &[&str] = &[
        "OPENAI_API_BASE",
        "NODE_OPTIONS",
        "BASH_ENV",
        "PATH",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "RUBYOPT",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
        "NODE_TLS_REJECT_UNAUTHORIZED",
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
    ];
    // A base URL of a model provider's API (an application's own
    // `API_BASE_URL` stays).
    const PROVIDERS: &[&str] = &[
        "OPENAI",
        "ANTHROPIC",
        "CLAUDE",
        "AZURE",
        "OPENROUTER",
        "DEEPSEEK",
        "XAI",
        "OLLAMA",
        "MISTRAL",
        "GROQ",
        "COHERE",
        "TOGETHER",
        "FIREWORKS",
        "HUGGINGFACE",
        "HF",
        "PERPLEXITY",
        "CEREBRAS",
        "BEDROCK",
        "VERTEX",
        "GOOGLE",
        "GEMINI",
        "LLM",
        "CODEX",
        "COPILOT",
    ];
    let provider_url = |name: &str| {
        name.ends_with("_API_BASE")
            || (name.ends_with("_BASE_URL") || name.ends_with("_ENDPOINT"))
                && PROVIDERS.iter().any(|p| {
                    name.strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('_'))
                })
    };
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .find(|w| {
            NAMES.contains(w)
                || PREFIXES
                    .iter()
                    .any(|p| w.starts_with(p) && w.len() > p.len())
                || provider_url(w)
        })
        .map(str::to_string)
}

/// The main checkout's state in the repository `common` of a project that
/// is a linked worktree, made or changed during the run: the linked
/// worktree's own merge, rebase and cherry-pick state lives in its own git
/// directory, so these are the sandbox's doing, and the user's next commit
/// in the main checkout would use them (a `MERGE_HEAD` makes it a merge
/// with a commit of the sandbox's choosing; a rebase in progress runs its
/// todo list at `git rebase --continue`). Its HEAD and index are read-only.
fn main_checkout_state(common: &Path, roots: &[PathBuf], trusted: &Trusted) -> Vec<Moved> {
    const STATE: &[&str] = &[
        "MERGE_HEAD",
        "MERGE_MSG",
        "MERGE_MODE",
        "MERGE_RR",
        "CHERRY_PICK_HEAD",
        "REVERT_HEAD",
        "AUTO_MERGE",
        "rebase-merge",
        "rebase-apply",
        "sequencer",
        "shallow",
        "objects/info/alternates",
    ];
    let mut moved = Vec::new();
    let (Ok(common), Some(since)) = (std::fs::canonicalize(common), trusted.since) else {
        return moved;
    };
    let Some(root) = roots.iter().find(|r| common.starts_with(r)) else {
        return moved;
    };
    for name in STATE {
        let path = common.join(name);
        let Ok(st) = nix::sys::stat::lstat(&path) else {
            continue;
        };
        let changed = std::time::UNIX_EPOCH
            + std::time::Duration::new(
                u64::try_from(st.st_ctime).unwrap_or(0),
                u32::try_from(st.st_ctime_nsec).unwrap_or(0),
            );
        if changed >= since {
            let why = format!("the main checkout's {name}, changed from its linked worktree");
            moved.push(set_aside(root, &path, why));
        }
    }
    moved
}

/// Hooks in the worktrees of the `.git` entries `dot_git` that git runs
/// because the user's global config names a relative `core.hooksPath`
/// (`.githooks`): one the sandbox left in a repository it made would run
/// at the user's next commit there. Those of repositories the user had
/// are protected from the start (`protect::hook_candidates`).
fn worktree_hooks(dot_git: &[PathBuf], roots: &[PathBuf], trusted: &Trusted) -> Vec<Moved> {
    let mut moved = Vec::new();
    if trusted.relative_hooks.is_empty() {
        return moved;
    }
    for worktree in dot_git.iter().filter_map(|g| g.parent()) {
        let Ok(worktree) = std::fs::canonicalize(worktree) else {
            continue;
        };
        let Some(root) = roots.iter().find(|r| worktree.starts_with(r)) else {
            continue;
        };
        for value in &trusted.relative_hooks {
            let hooks = host::lexical(&worktree.join(value));
            if !hooks.starts_with(root) || hooks == worktree || trusted.is_hidden(&hooks) {
                continue;
            }
            let Ok(st) = nix::sys::stat::lstat(&hooks) else {
                continue;
            };
            if trusted.holds(&hooks, &st) {
                continue;
            }
            let hook = if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                Some(value.clone())
            } else {
                std::fs::read_dir(&hooks).ok().and_then(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name())
                        .find(|n| !n.as_encoded_bytes().ends_with(b".sample"))
                        .map(|n| host::printable(Path::new(&n)).to_string())
                })
            };
            if let Some(hook) = hook {
                let why = format!("git hook {hook} (your core.hooksPath = {value})");
                moved.push(set_aside(root, &hooks, why));
            }
        }
    }
    moved
}

/// The directories the check covers: the project and the host directories
/// the sandbox could write besides it, canonical.
pub fn check_roots(project: &Path, writable: &[PathBuf]) -> Vec<PathBuf> {
    std::iter::once(project.to_path_buf())
        .chain(
            writable
                .iter()
                .filter_map(|w| std::fs::canonicalize(w).ok()),
        )
        .collect()
}

/// What a look during the run found.
pub struct Looked {
    pub moved: Vec<Moved>,
    /// Every git directory checked (to watch from now on).
    pub checked: Vec<PathBuf>,
    /// Directories looked at that were not git directories yet (a `.git`
    /// file names one whose `refs` comes last, a worktree's directory
    /// before its `HEAD`): watched too, a change there is looked at again.
    pub not_yet: Vec<PathBuf>,
}

/// Check, while the sandbox runs, the git directories that `.git` entries
/// (`dot_git`) stand for and the git directories `dirs` (where something
/// changed), as after the run.
pub fn check_live(
    dot_git: &[PathBuf],
    dirs: &[PathBuf],
    roots: &[PathBuf],
    trusted: &Trusted,
) -> Looked {
    let todo = dot_git
        .iter()
        .filter_map(|p| git_dir_of(p))
        .chain(dirs.iter().cloned())
        .map(|d| (d, Kind::GitDir))
        .collect();
    let hooks = worktree_hooks(dot_git, roots, trusted);
    let mut looked = check_queue(todo, roots, trusted);
    looked.moved.splice(0..0, hooks);
    looked
}

/// The git directory a `.git` entry stands for now, canonical.
pub fn git_dir_now(dot_git: &Path) -> Option<PathBuf> {
    git_dir_of(dot_git).and_then(|d| std::fs::canonicalize(d).ok())
}

/// Where a worktree's git directory `dir` says its checkout is: the
/// directory of the `.git` file its `gitdir` names (read as git reads it),
/// through links, or as written where it is not there.
pub fn worktree_checkout(dir: &Path) -> Option<PathBuf> {
    let at = git_path_file(&dir.join("gitdir"), b"", dir, GIT_FILE_MAX)?;
    let parent = at.parent()?;
    Some(std::fs::canonicalize(parent).unwrap_or_else(|_| host::lexical(parent)))
}

/// The git directory a `.git` entry stands for: the directory itself, or
/// the one a `gitdir: ` file names (through a link too), relative to the
/// directory holding `.git`.
fn git_dir_of(dot_git: &Path) -> Option<PathBuf> {
    let base = dot_git.parent()?;
    match std::fs::metadata(dot_git) {
        Ok(m) if m.is_dir() => Some(dot_git.to_path_buf()),
        Ok(_) => git_path_file(dot_git, b"gitdir: ", base, GIT_FILE_MAX),
        Err(_) => None,
    }
}

/// Check each git directory queued, and those their `commondir`,
/// `worktrees` and `modules` lead to.
fn check_queue(mut todo: Vec<(PathBuf, Kind)>, roots: &[PathBuf], trusted: &Trusted) -> Looked {
    let mut moved = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut not_yet: HashSet<PathBuf> = HashSet::new();
    let mut listed = Listed::default();
    while let Some((dir, kind)) = todo.pop() {
        let Ok(dir) = std::fs::canonicalize(&dir) else {
            continue;
        };
        // Only where the sandbox could have written (a repository of the
        // user's elsewhere is theirs), only what git would take for one,
        // and nothing it never saw.
        let Some(root) = roots.iter().find(|r| dir.starts_with(r)) else {
            continue;
        };
        if trusted.is_hidden(&dir) || seen.contains(&dir) {
            continue;
        }
        if !is_git(&dir, kind) {
            if dir.is_dir() {
                not_yet.insert(dir);
            }
            continue;
        }
        not_yet.remove(&dir);
        seen.insert(dir.clone());
        check_git_dir(
            &dir,
            root,
            roots,
            trusted,
            &mut moved,
            &mut todo,
            &mut listed,
        );
    }
    Looked {
        moved,
        checked: seen.into_iter().collect(),
        not_yet: not_yet.into_iter().collect(),
    }
}

/// Make a directory of the user's that the owner cannot list or enter
/// readable again (`chmod u+rx`), telling the user; `None` if it is not
/// theirs or cannot be changed.
fn open_up(dir: &Path) -> Option<PathBuf> {
    let me = nix::unistd::geteuid().as_raw();
    let st = nix::sys::stat::lstat(dir).ok()?;
    let owner_rx = libc::S_IRUSR | libc::S_IXUSR;
    if st.st_uid != me
        || st.st_mode & libc::S_IFMT != libc::S_IFDIR
        || st.st_mode & owner_rx == owner_rx
    {
        return None;
    }
    // Through no link on the way: one swapped in since the look above
    // would have the mode given to what it leads to.
    let parent = host::open_no_links(
        dir.parent()?,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY,
    )
    .ok()?;
    host::chmod_dir_at(&parent, dir.file_name()?, st.st_mode | owner_rx).ok()?;
    eprintln!(
        "guard: {} could not be read (mode {:o}); made it readable to check it for git repositories the sandbox made",
        host::printable(dir),
        st.st_mode & 0o7777
    );
    Some(dir.to_path_buf())
}

/// A directory of the user's that guard cannot read may hide a repository
/// the sandbox made: say so rather than pass it by. Those of other owners
/// (a container's data directory) the sandbox could not have written
/// either.
fn warn_unreadable(dirs: &[PathBuf]) {
    let me = nix::unistd::geteuid().as_raw();
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

/// The `worktrees` and `modules` directories read so far, for all git
/// directories (those of submodules with the least depth they were read
/// at).
#[derive(Default)]
struct Listed {
    worktrees: HashSet<PathBuf>,
    modules: HashMap<PathBuf, usize>,
}

/// Check one git directory (canonical, inside `root`): its config files,
/// hooks and `commondir` (whose target is queued on `todo`: git reads the
/// config and hooks there too).
fn check_git_dir(
    dir: &Path,
    root: &Path,
    roots: &[PathBuf],
    trusted: &Trusted,
    moved: &mut Vec<Moved>,
    todo: &mut Vec<(PathBuf, Kind)>,
    listed: &mut Listed,
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
                Some(text) => trusted
                    .configs
                    .get(&path)
                    .map_or_else(
                        || unsafe_config_key(&text),
                        |known| unsafe_config_key_beyond(&text, known),
                    )
                    .map(|k| format!("a git config setting {k}"))
                    .or_else(|| worktree_outside(&text, dir, roots)),
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
    // A linked worktree's `gitdir` names its checkout's `.git` file, and
    // `git worktree repair` in the repository writes one there pointing
    // back here: named outside what the sandbox could write (`~/.git`), it
    // would put every directory below under this git directory.
    let gitdir = dir.join("gitdir");
    if let Ok(st) = nix::sys::stat::lstat(&gitdir)
        && !trusted.holds(&gitdir, &st)
        && worktree_checkout(dir).is_none_or(|at| !roots.iter().any(|r| at.starts_with(r)))
    {
        moved.push(set_aside(
            root,
            &gitdir,
            "a worktree gitdir naming a directory outside the project".into(),
        ));
    }
    // git writes its state files (`SQUASH_MSG`, `COMMIT_EDITMSG`,
    // `FETCH_HEAD`, the reflogs it appends to) through whatever link
    // stands at their names: one planted there would have the user's
    // next `git merge --squash` write `~/.bashrc`.
    if let Some(since) = trusted.since {
        for (link, target) in links_git_writes_through(dir, since) {
            // A protected link of the user's, put back after the run
            // (`.git/hooks -> ../.githooks`, see `restore_links`).
            if trusted.links.contains(&link) {
                continue;
            }
            let why = format!(
                "a link in a git directory to {} (git would write through it)",
                host::printable(&target)
            );
            moved.push(set_aside(root, &link, why));
        }
    }
    // A rebase in progress runs the `exec` lines of its todo list at the
    // user's `git rebase --continue` (a sandbox can start one, or add to
    // the user's).
    // One guard cannot read whole (over 1 MiB, not a regular file) is set
    // aside unread: git would read it whole.
    let todo_list = dir.join("rebase-merge/git-rebase-todo");
    if nix::sys::stat::lstat(&todo_list).is_ok() {
        let why = match host::read_small(&todo_list, CONFIG_MAX as u64) {
            None => Some("a rebase todo list guard cannot read".to_string()),
            Some(text) => String::from_utf8_lossy(&text)
                .split(['\n', '\r'])
                .find(|l| matches!(l.split_whitespace().next(), Some("exec" | "x")))
                .map(|line| {
                    let shown: String = line.chars().take(60).collect();
                    format!(
                        "a rebase todo list that runs `{}`",
                        host::printable(Path::new(&shown))
                    )
                }),
        };
        if let Some(why) = why {
            moved.push(set_aside(root, &todo_list, why));
        }
    }
    // The other worktrees of a repository (their own config runs when the
    // user works there) and its submodules' git directories, at any depth
    // (`modules/libs/foo`, `modules/a/modules/b`). Only where the sandbox
    // could write (nothing a link leads to elsewhere is its doing), and each
    // directory read once whatever leads there: a thousand repositories
    // with `modules -> /` would each have guard walk the host.
    let inside = |p: PathBuf| {
        std::fs::canonicalize(p)
            .ok()
            .filter(|c| roots.iter().any(|r| c.starts_with(r)))
    };
    if let Some(w) = inside(dir.join("worktrees"))
        && listed.worktrees.insert(w.clone())
        && let Ok(rd) = std::fs::read_dir(w)
    {
        todo.extend(
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| (e.path(), Kind::GitDir)),
        );
    }
    // Below a canonical `modules` only directories are entered (never a
    // link): every path here is canonical too. One read before only deeper
    // is read again (what lay past the depth limit then is in reach now).
    let mut modules: Vec<(PathBuf, usize)> = inside(dir.join("modules"))
        .map(|m| (m, 0))
        .into_iter()
        .collect();
    while let Some((m, depth)) = modules.pop() {
        if listed.modules.get(&m).is_some_and(|&d| d <= depth) {
            continue;
        }
        listed.modules.insert(m.clone(), depth);
        for e in std::fs::read_dir(&m)
            .into_iter()
            .flatten()
            .flatten()
            .take(10_000)
        {
            if depth < 8 && e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push((e.path(), Kind::GitDir));
                modules.push((e.path(), depth + 1));
            }
        }
    }
    // A repository with objects of its own has no business naming another
    // one's (a worktree's git directory has none); created there, it would
    // point the user's git at a config the sandbox wrote. Any other is
    // followed, the user's too: the directory it names may have changed.
    let commondir = dir.join("commondir");
    if let Ok(st) = nix::sys::stat::lstat(&commondir)
        && !trusted.holds(&commondir, &st)
        && std::fs::symlink_metadata(dir.join("objects")).is_ok()
    {
        moved.push(set_aside(
            root,
            &commondir,
            "a commondir in a repository with objects of its own".into(),
        ));
        return;
    }
    match git_path_file(&commondir, b"", dir, CONFIG_MAX as u64) {
        Some(c) => todo.push((c, Kind::Common)),
        // One git would read that guard cannot (too large, not a file): it
        // may name any directory.
        None if std::fs::metadata(&commondir).is_ok()
            && nix::sys::stat::lstat(&commondir)
                .is_ok_and(|st| !trusted.holds(&commondir, &st)) =>
        {
            moved.push(set_aside(
                root,
                &commondir,
                "a commondir guard cannot read".into(),
            ));
        }
        None => {}
    }
}

/// `core.worktree` naming a directory outside those the sandbox could
/// write (`roots`): git would check out, reset and clean files there (`git
/// reset --hard` in the repository overwrites what the index lists).
fn worktree_outside(text: &[u8], dir: &Path, roots: &[PathBuf]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    super::git_config::values(text, "core", "worktree")
        .into_iter()
        .find(|v| {
            let at = host::lexical(&dir.join(v));
            !roots.iter().any(|r| at.starts_with(r))
        })
        .map(|_| "a git config setting core.worktree outside the project".to_string())
}

/// Matches of the protected globs in the project (`*.code-workspace`,
/// `.devcontainer/*/devcontainer.json`) that were not protected at the
/// start: what the sandbox made there is moved aside, as a protected path
/// it created would be (the glob was expanded to what existed).
pub fn quarantine_new_matches(globs: &[PathBuf], project: &Path, trusted: &Trusted) -> Vec<Moved> {
    let mut moved: Vec<Moved> = Vec::new();
    for glob in globs {
        for path in host::expand_glob(glob) {
            let Ok(st) = nix::sys::stat::lstat(&path) else {
                continue;
            };
            if !path.starts_with(project)
                || trusted.holds(&path, &st)
                || moved.iter().any(|m| m.path == path)
            {
                continue;
            }
            moved.push(set_aside(
                project,
                &path,
                "a protected path made during the run".to_string(),
            ));
        }
    }
    moved
}

/// Symbolic links in git directory `dir` made (or moved there) since
/// `since`, with their targets. git itself makes none there. Not below
/// `objects` (git writes objects to a temporary name and renames it, which
/// replaces a link rather than following it), nor in the git directories
/// of worktrees and submodules, which are checked on their own; at most
/// 20,000 entries (a repository's refs and logs are far fewer).
fn links_git_writes_through(dir: &Path, since: std::time::SystemTime) -> Vec<(PathBuf, PathBuf)> {
    const SKIP: &[&str] = &["objects", "modules", "worktrees", "lfs"];
    let mut found = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((d, depth)) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            seen += 1;
            if seen > 20_000 {
                return found;
            }
            let path = e.path();
            let Ok(st) = nix::sys::stat::lstat(&path) else {
                continue;
            };
            match st.st_mode & libc::S_IFMT {
                libc::S_IFLNK => {
                    let changed = std::time::UNIX_EPOCH
                        + std::time::Duration::new(
                            u64::try_from(st.st_ctime).unwrap_or(0),
                            u32::try_from(st.st_ctime_nsec).unwrap_or(0),
                        );
                    if changed >= since {
                        let target = std::fs::read_link(&path).unwrap_or_default();
                        found.push((path, target));
                    }
                }
                libc::S_IFDIR
                    if depth < 16
                        && !(depth == 0
                            && SKIP
                                .iter()
                                .any(|s| e.file_name() == std::ffi::OsStr::new(s))) =>
                {
                    todo.push((path, depth + 1));
                }
                _ => {}
            }
        }
    }
    found
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
