//! Repositories the sandbox makes in the project, checked while it runs.
//!
//! The check after the run (`repos`) is what keeps anything planted in a
//! new repository from running outside. But the user's editor does not wait
//! for the session to end: VS Code's git extension (and its forks) opens a
//! repository the moment a `.git` appears anywhere in the workspace and
//! runs `git status` there, which runs the `core.fsmonitor` command of that
//! repository's config, on the host. So while the command runs, the
//! project's directories are watched (inotify), and a `.git` that appears,
//! or a change in a git directory found that way, is checked at once, as
//! after the run. That shrinks the window from the whole session to the
//! milliseconds between a write and the look after it. It does not close
//! it: inotify tells after the fact, and not at all about writes through a
//! shared mapping (the check after the run still sees those).

use super::protect::{self, Moved};
use super::repos::{self, Trusted};
use crate::secrets::walk::Visitor;
use nix::sys::inotify::{AddWatchFlags as W, Inotify, WatchDescriptor};
use std::collections::{BTreeMap, HashMap};
use std::ffi::CStr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Watching on its own thread; [`RepoWatch::stop`] ends it.
pub struct RepoWatch {
    stop: OwnedFd,
    thread: std::thread::JoinHandle<Vec<Moved>>,
}

impl RepoWatch {
    /// `scan_cache` holds the scan's listings (the first walk reads few
    /// directories from disk); `roots` are the directories the sandbox
    /// can write, as [`repos::check_roots`] gives them.
    pub fn start(
        project: &Path,
        scan_cache: PathBuf,
        roots: Vec<PathBuf>,
        trusted: Trusted,
    ) -> crate::error::Result<Option<RepoWatch>> {
        let inotify = protect::watch_instance("repositories the sandbox may make")?;
        let (stop_rd, stop_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| crate::error::Error::sys("make a pipe", e))?;
        let project = project.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("guard-repos".into())
            .spawn(move || watch(&stop_rd, inotify, &project, &scan_cache, &roots, &trusted))
            .map_err(|e| crate::error::Error::sys("start a thread", e))?;
        Ok(Some(RepoWatch {
            stop: stop_wr,
            thread,
        }))
    }

    /// Stop watching; what was moved aside meanwhile.
    pub fn stop(self) -> Vec<Moved> {
        let _ = nix::unistd::write(&self.stop, b"x");
        self.thread.join().unwrap_or_default()
    }
}

/// What a watched directory is.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// A directory of the project: a `.git` may appear in it.
    Tree,
    /// A git directory found during the run, or its hooks directory.
    Git,
}

/// Events that matter in a directory of the project: entries appearing.
const TREE: W = W::IN_CREATE
    .union(W::IN_MOVED_TO)
    .union(W::IN_ONLYDIR)
    .union(W::IN_DONT_FOLLOW);
/// In a git directory: any change to what is in it.
const GIT: W = TREE
    .union(W::IN_CLOSE_WRITE)
    .union(W::IN_MODIFY)
    .union(W::IN_ATTRIB)
    .union(W::IN_DELETE);

/// What a watch stands for: a directory of the project's tree (its path),
/// a git directory to check when anything changes in it, or both (a
/// directory of the tree that holds a `config` or `HEAD`).
#[derive(Default)]
struct Entry {
    tree: Option<PathBuf>,
    check: Option<PathBuf>,
}

struct Watched {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, Entry>,
    /// Watches left before this session would take more than its share
    /// of the user's (see `budget`).
    left: usize,
}

impl Watched {
    fn add(&mut self, dir: &Path, role: Role) {
        self.add_for(dir, dir, role);
    }

    /// Watch `dir`; a change there stands for one in `for_dir` (that of a
    /// git directory's `hooks` or `worktrees` for the git directory). A
    /// directory watched both ways stays both: events only add to the
    /// mask, so a `config` written in a directory of the tree does not stop
    /// what appears there from being seen.
    ///
    /// Whether `dir` was given a role it did not have.
    fn add_for(&mut self, dir: &Path, for_dir: &Path, role: Role) -> bool {
        if self.left == 0 {
            return false;
        }
        let mask = if role == Role::Git { GIT } else { TREE };
        let Ok(wd) = self
            .inotify
            .add_watch(dir, mask | W::from_bits_retain(libc::IN_MASK_ADD))
        else {
            return false;
        };
        let entry = self.dirs.entry(wd).or_default();
        if entry.tree.is_none() && entry.check.is_none() {
            self.left -= 1;
        }
        let slot = match role {
            Role::Tree => &mut entry.tree,
            Role::Git => &mut entry.check,
        };
        slot.replace(for_dir.to_path_buf()).is_none()
    }

    /// Watch `g` as a git directory, with its `hooks` and `worktrees`;
    /// whether `g` was not watched as one before.
    fn add_git(&mut self, g: &Path) -> bool {
        let new = self.add_for(g, g, Role::Git);
        self.add_for(&g.join("hooks"), g, Role::Git);
        // New worktrees' directories appear there.
        self.add_for(&g.join("worktrees"), g, Role::Git);
        new
    }

    /// Watch the directories of `root`'s tree; what in it may be git's.
    /// Each directory is watched before it is read: what appears in it
    /// after is an event, what came before is in its listing.
    fn add_tree(&mut self, root: &Path, scan_cache: &Path, trusted: &Trusted) -> Found {
        self.add(root, Role::Tree);
        let (inotify, left) = (&self.inotify, self.left);
        let trees = crate::secrets::walk_listed(root, scan_cache, 1, || Tree {
            inotify,
            trusted,
            left,
            watched: Vec::new(),
            found: Found::default(),
        });
        let mut found = Found::default();
        for t in trees {
            found.dot_git.extend(t.found.dot_git);
            found.git_dirs.extend(t.found.git_dirs);
            for (wd, dir) in t.watched {
                let entry = self.dirs.entry(wd).or_default();
                if entry.tree.is_none() && entry.check.is_none() {
                    self.left = self.left.saturating_sub(1);
                }
                entry.tree = Some(dir);
            }
        }
        found
    }
}

/// How many watches this session may add: an eighth of the user's limit
/// (the sandbox itself may take half, see `host::sandbox_user_limits`).
fn budget() -> usize {
    crate::host::user_limit("max_inotify_watches")
        .and_then(|max| usize::try_from(max / 8).ok())
        .unwrap_or(1024)
}

/// A package a package manager unpacked (`node_modules/*`): thousands of
/// directories per install, and editors do not watch there either.
fn unpacked(dir: &Path) -> bool {
    dir.parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "node_modules")
}

/// Names whose appearance may make a directory a git directory, or change
/// what one runs. `objects` and `refs` too: whichever comes last makes it
/// one (a `.git` file may name it before).
fn is_git_name(name: &[u8]) -> bool {
    matches!(
        name,
        b"HEAD"
            | b"commondir"
            | b"config"
            | b"config.worktree"
            | b"hooks"
            | b"gitdir"
            | b"objects"
            | b"refs"
    )
}

/// What may be git's in a tree: `.git` entries, and directories holding
/// a `HEAD` or `commondir` (perhaps git directories by another name).
#[derive(Default)]
struct Found {
    dot_git: Vec<PathBuf>,
    git_dirs: Vec<PathBuf>,
}

/// Walks a tree, watching its directories as it goes. Not entered: git
/// directories (a new one is watched once found), and [`unpacked`]
/// packages.
struct Tree<'a> {
    inotify: &'a Inotify,
    trusted: &'a Trusted,
    /// Watches this walk may still add.
    left: usize,
    watched: Vec<(WatchDescriptor, PathBuf)>,
    found: Found,
}

impl Visitor<'static> for Tree<'_> {
    fn dir(&mut self, path: &Path) -> bool {
        if path.file_name().is_some_and(|n| n == ".git") {
            self.found.dot_git.push(path.to_path_buf());
            return false;
        }
        if unpacked(path) {
            return false;
        }
        // Hidden directories: the sandbox cannot write there.
        if self.left > 0 && !self.trusted.is_hidden(path) {
            let mask = TREE | W::from_bits_retain(libc::IN_MASK_ADD);
            if let Ok(wd) = self.inotify.add_watch(path, mask) {
                self.watched.push((wd, path.to_path_buf()));
                self.left -= 1;
            }
        }
        true
    }

    fn file(
        &mut self,
        _dirfd: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        _hint: Option<u32>,
    ) -> Option<(u64, u64)> {
        if name.to_bytes() == b".git" {
            self.found.dot_git.push(path.to_path_buf());
        } else if matches!(name.to_bytes(), b"HEAD" | b"commondir")
            && let Some(dir) = path.parent()
        {
            self.found.git_dirs.push(dir.to_path_buf());
        }
        None
    }

    fn link(&mut self, _dirfd: BorrowedFd<'_>, name: &CStr, path: &Path) {
        if name.to_bytes() == b".git" {
            self.found.dot_git.push(path.to_path_buf());
        }
    }

    fn error(&mut self, _dir: &Path) {}
}

fn watch(
    stop: &OwnedFd,
    inotify: Inotify,
    project: &Path,
    scan_cache: &Path,
    roots: &[PathBuf],
    trusted: &Trusted,
) -> Vec<Moved> {
    // Short commands end before this; the check after the run covers them.
    if protect::stopped_within(stop, protect::WATCH_AFTER) {
        return Vec::new();
    }
    let mut w = Watched {
        inotify,
        dirs: HashMap::new(),
        left: budget(),
    };
    // What is there now was there at the start or came during the first
    // half second: checked now, then watched.
    let mut moved = Vec::new();
    let first = w.add_tree(project, scan_cache, trusted);
    let (mut dot_git, mut git_dirs) = (first.dot_git, first.git_dirs);
    let mut told = false;
    // `.git` files and links: what they name may change without an event
    // here (a `.git` file created empty and written after the look, a link
    // to a directory made later somewhere not watched, `node_modules/*`),
    // so each is read again every PENDING_EVERY, and what it names looked
    // at when that changed: another path, or another directory at the
    // same path (one made in place of the one checked).
    // (link, the git directory it named when checked, and its inode)
    let mut links: BTreeMap<PathBuf, Option<(PathBuf, u64)>> = BTreeMap::new();
    loop {
        for d in &dot_git {
            match nix::sys::stat::lstat(d.as_path()) {
                Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {
                    if links.len() < MAX_LINKS {
                        links.entry(d.clone()).or_default();
                    } else if !links.contains_key(d) {
                        unwatched(&mut told, project);
                    }
                }
                _ => {
                    links.remove(d);
                }
            }
        }
        let due: Vec<(PathBuf, (PathBuf, u64))> = links
            .iter()
            .filter_map(|(l, was)| {
                let dir = repos::git_dir_now(l)?;
                let now = (dir.clone(), std::fs::metadata(&dir).ok()?.ino());
                (was.as_ref() != Some(&now)).then(|| (l.clone(), now))
            })
            .collect();
        dot_git.extend(due.iter().map(|(l, _)| l.clone()));
        dot_git.sort();
        dot_git.dedup();
        // Watched before the look: a change after the watch is an event,
        // one before it is in what the look sees. A `.git` directory is
        // watched even before it is a repository (`git init` may not have
        // written HEAD yet).
        let dirs = dot_git.iter().filter(|d| {
            nix::sys::stat::lstat(d.as_path())
                .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        });
        for g in dirs.chain(&git_dirs) {
            w.add_git(g);
        }
        let looked = repos::check_live(&dot_git, &git_dirs, roots, trusted);
        moved.extend(looked.moved);
        for (l, now) in due {
            if looked.checked.contains(&now.0) {
                links.insert(l, Some(now));
            }
        }
        // What the look led to (a git directory a `.git` file names, one a
        // `commondir` names, a directory not one yet) is watched from now
        // on, and looked at again once it is: it may have changed between
        // the look and the watch.
        let mut late: Vec<PathBuf> = Vec::new();
        for g in looked.checked.iter().chain(&looked.not_yet) {
            if w.add_git(g) {
                late.push(g.clone());
            }
        }
        if w.left == 0 {
            unwatched(&mut told, project);
        }
        let again = if !late.is_empty() {
            Some(std::time::Duration::ZERO)
        } else {
            (!links.is_empty()).then_some(PENDING_EVERY)
        };
        match wait(&w.inotify, stop, again) {
            Wait::Stopped => return moved,
            Wait::Events | Wait::Again => {}
        }
        links.retain(|l, _| nix::sys::stat::lstat(l.as_path()).is_ok());
        dot_git.clear();
        git_dirs = late;
        let mut new_trees = Vec::new();
        while let Ok(events) = w.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                if e.mask.contains(W::IN_Q_OVERFLOW) {
                    new_trees.push(project.to_path_buf());
                    continue;
                }
                let Some(entry) = w.dirs.get(&e.wd) else {
                    continue;
                };
                if let Some(check) = &entry.check {
                    git_dirs.push(check.clone());
                }
                let Some(dir) = &entry.tree else {
                    continue;
                };
                let name = e.name.unwrap_or_default();
                if name == ".git" {
                    dot_git.push(dir.join(name));
                } else if is_git_name(name.as_encoded_bytes()) {
                    // A git directory by another name (bare, or one a
                    // `.git` file names) taking shape.
                    git_dirs.push(dir.clone());
                } else if e.mask.contains(W::IN_ISDIR) {
                    let new = dir.join(name);
                    if !unpacked(&new) {
                        new_trees.push(new);
                    }
                }
            }
        }
        new_trees.sort();
        new_trees.dedup();
        for t in new_trees {
            let found = w.add_tree(&t, scan_cache, trusted);
            dot_git.extend(found.dot_git);
            git_dirs.extend(found.git_dirs);
        }
        git_dirs.sort();
        git_dirs.dedup();
        // At most one look per LOOK_EVERY (a sandbox committing in a loop
        // must not keep this thread busy); events meanwhile queue up.
        if protect::stopped_within(stop, protect::LOOK_EVERY) {
            return moved;
        }
    }
}

/// How often `.git` files and links are looked at again (see `watch`).
const PENDING_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Most `.git` files and links looked at again; a sandbox making more
/// leaves the rest to the check after the run (told in the log).
const MAX_LINKS: usize = 1024;

fn unwatched(told: &mut bool, project: &Path) {
    if !std::mem::replace(told, true) {
        tracing::info!(target: crate::audit::TARGET, kind = "fs", action = "unwatched", path = %project.display(), detail = "too many directories or .git files to watch for new repositories during the run; they are checked after it");
    }
}

enum Wait {
    Stopped,
    Events,
    /// `again` passed without events.
    Again,
}

/// Wait for events on `inotify`, for `stop`, or for `again` to pass.
fn wait(inotify: &Inotify, stop: &OwnedFd, again: Option<std::time::Duration>) -> Wait {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let timeout = again.map_or(PollTimeout::NONE, |t| {
        PollTimeout::from(u16::try_from(t.as_millis()).unwrap_or(u16::MAX))
    });
    loop {
        let mut fds = [
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Err(nix::Error::EINTR) => continue,
            Err(_) => return Wait::Stopped,
            Ok(0) => return Wait::Again,
            Ok(_) if fds[1].revents().is_some_and(|r| !r.is_empty()) => return Wait::Stopped,
            Ok(_) => return Wait::Events,
        }
    }
}
