//! Host facts, gathered once before any plan is built: who the user is,
//! where home and the project are, what each configured path is on this
//! machine, and what the kernel supports. The pure layers (`policy`, `plan`)
//! only read these facts; they never probe the filesystem themselves.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a path is on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathKind {
    Dir,
    File,
    /// A symlink: its literal target and the canonical path it resolves to
    /// (`None` when dangling). A path reached through a link on the way
    /// (`{project}/up/docs` with `up -> ~`) is one too, whose target is the
    /// canonical path: what it names lies where the link leads, and a grant
    /// on it must be judged there.
    Symlink {
        target: PathBuf,
        resolved: Option<PathBuf>,
    },
    Missing,
}

impl PathKind {
    pub fn of(path: &Path) -> PathKind {
        match std::fs::symlink_metadata(path) {
            Err(_) => PathKind::Missing,
            Ok(m) if m.file_type().is_symlink() => PathKind::Symlink {
                target: std::fs::read_link(path).unwrap_or_default(),
                resolved: std::fs::canonicalize(path).ok(),
            },
            Ok(m) => match std::fs::canonicalize(path) {
                Ok(real) if real != lexical(path) => PathKind::Symlink {
                    target: real.clone(),
                    resolved: Some(real),
                },
                _ if m.is_dir() => PathKind::Dir,
                _ => PathKind::File,
            },
        }
    }

    /// Kind of what a path finally refers to, following symlinks.
    pub fn followed(path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Err(_) => PathKind::Missing,
            Ok(m) if m.is_dir() => PathKind::Dir,
            Ok(_) => PathKind::File,
        }
    }
}

/// `path` with `.` and `..` removed lexically (never above `/`): where it
/// leads when no link is on the way.
pub fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Identity and locations of the invoking user.
#[derive(Debug, Clone)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    /// Canonical home directory.
    pub home: PathBuf,
}

pub fn current_user() -> User {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    // The password database only when the environment lacks the answer:
    // NSS lookups (sssd, LDAP) can cost milliseconds on every start.
    let pw = std::cell::OnceCell::new();
    let lookup = || {
        pw.get_or_init(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
        })
        .clone()
    };
    let name = std::env::var("USER")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| lookup().map(|p| p.name))
        .unwrap_or_else(|| uid.to_string());
    // A relative HOME would make every home path relative to wherever
    // guard was started: ignored, like an empty one.
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .or_else(|| lookup().map(|p| p.dir))
        .unwrap_or_else(|| PathBuf::from("/"));
    // Canonical so that prefix comparisons with the project hold.
    let home = std::fs::canonicalize(&home).unwrap_or(home);
    User {
        uid,
        gid,
        name,
        home,
    }
}

/// The project: `--project DIR`, else the git root above cwd, else cwd.
/// Walking up for `.git` instead of running `git` keeps start-up fast.
pub fn find_project(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        let canon = std::fs::canonicalize(dir).map_err(|e| Error::Usage {
            msg: format!("project directory {} cannot be used: {e}", dir.display()),
            hint: Some("pass an existing directory to --project".into()),
        })?;
        if !canon.is_dir() {
            return Err(Error::usage_hint(
                format!("project {} is not a directory", canon.display()),
                "pass a directory to --project",
            ));
        }
        return Ok(canon);
    }
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        if d.join(".git").exists() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Ok(cwd.to_path_buf())
}

/// Expand glob characters (`*`, `?`) in any component against the
/// directory listings. Paths without glob characters are returned as they are.
pub fn expand_glob(path: &Path) -> Vec<PathBuf> {
    if !path.to_string_lossy().contains(['*', '?']) {
        return vec![path.to_path_buf()];
    }
    let mut current = vec![PathBuf::from("/")];
    for comp in path.components().skip(1) {
        let name = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &current {
            if !name.contains(['*', '?']) {
                next.push(base.join(&*name));
                continue;
            }
            let Ok(entries) = std::fs::read_dir(base) else {
                continue;
            };
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| glob_match(&name, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect();
            found.sort();
            next.extend(found);
        }
        current = next;
    }
    current
}

/// Minimal glob: `*` any run of characters, `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The Landlock ABI version of the running kernel (0 when unavailable).
pub fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: landlock_create_ruleset with a NULL attr, size 0 and the VERSION
    // flag only returns the ABI number (or -1/errno); it touches no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 { 0 } else { v as i32 }
}

/// Highest capability number this kernel knows (for dropping the bounding set).
pub fn cap_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Per-user kernel limits that a user namespace shares with its owner:
/// the kernel charges each inotify instance and watch made inside to the
/// user outside too, so a sandbox holding all of them would leave the
/// user's editor, file manager and desktop unable to watch files (128
/// instances by default). The sandbox's namespace gets half of each, the
/// rule its memory has too. Read here, in the user's namespace: a new one
/// starts without limits of its own.
pub fn sandbox_user_limits() -> Vec<(String, u64)> {
    ["max_inotify_instances", "max_inotify_watches"]
        .iter()
        .filter_map(|name| Some((name.to_string(), (user_limit(name)? / 2).max(1))))
        .collect()
}

/// A per-user limit of the current user namespace (`/proc/sys/user/NAME`).
pub fn user_limit(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/user/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `path` with its longest existing prefix canonical.
pub fn canonical_prefix(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(c) = std::fs::canonicalize(at) {
            return rest.iter().rev().fold(c, |p, n| p.join(n));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return lexical(path),
        }
    }
}

/// Canonical (the prefix that exists), as the home is: guard's directories
/// are mount sources and targets, and a HOME reached through a link
/// (`/home -> var/home` on Fedora Silverblue) would otherwise name them by
/// a path that does not lead there inside the sandbox's setup.
fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|h| h.is_absolute())
                .map(|h| h.join(fallback))
        })
        .map(|p| canonical_prefix(&p.join("guard")))
}

/// $XDG_CONFIG_HOME/guard: user profiles and the trust store.
pub fn config_dir() -> Option<PathBuf> {
    xdg("XDG_CONFIG_HOME", ".config")
}

/// $XDG_DATA_HOME/guard: persistent agent homes and cache layers.
pub fn data_dir() -> Option<PathBuf> {
    xdg("XDG_DATA_HOME", ".local/share")
}

/// $XDG_STATE_HOME/guard: session logs.
pub fn state_dir() -> Option<PathBuf> {
    xdg("XDG_STATE_HOME", ".local/state")
}

/// $XDG_CACHE_HOME/guard: the secret scanner's cache.
pub fn cache_dir() -> Option<PathBuf> {
    xdg("XDG_CACHE_HOME", ".cache")
}

/// Disk space used by the tree at `path` (a file or a directory), never
/// following a link.
pub fn tree_size(path: &Path) -> u64 {
    walk_tree(path, false).0
}

/// Remove the tree at `path` without following a link anywhere in it, as
/// `rm -rf` would, and also where `rm -rf` stops: directories a session
/// made read-only (Go's module cache is `0555`) or left without any access
/// (overlayfs's work directory) are given their owner's access first.
/// Returns the space freed and the first error, if some entries stayed.
pub fn remove_tree(path: &Path) -> (u64, Option<std::io::Error>) {
    walk_tree(path, true)
}

/// Give directory `name` of `dir` `mode`, never following a link: the
/// directory is opened as itself (`O_PATH | O_NOFOLLOW | O_DIRECTORY`: a
/// link or anything else put in its place since it was looked at fails
/// with ELOOP or ENOTDIR) and the mode set on what was opened, through its
/// `/proc/self/fd` entry (an `O_PATH` descriptor takes no `fchmod`, and
/// one opened for reading needs the read access a closed directory lacks).
/// `fchmodat` with AT_SYMLINK_NOFOLLOW is no answer: where the kernel
/// lacks fchmodat2 it fails, and a fallback without the flag follows a
/// link swapped in meanwhile.
pub fn chmod_dir_at(
    dir: &impl std::os::fd::AsFd,
    name: &std::ffi::OsStr,
    mode: u32,
) -> nix::Result<()> {
    use nix::fcntl::OFlag;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;
    let fd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // The magic link leads to the open directory itself, whatever its
    // path now is.
    std::fs::set_permissions(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        std::fs::Permissions::from_mode(mode & 0o7777),
    )
    .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// The walk of [`tree_size`] and [`remove_tree`]: a loop, not a recursion
/// (a sandbox can make a tree tens of thousands of directories deep in
/// its home, which a recursion would follow until guard's stack overflows),
/// holding one directory open at a time (as many as the tree is deep would
/// run out of descriptors). Each directory is entered by `openat` with
/// O_NOFOLLOW from the one above and must be what `fstatat` saw there; the
/// way back up is its `..`, which must be the directory it was entered
/// from (device and inode), else the walk stops: something moved the
/// directory meanwhile, and `..` now leads elsewhere.
fn walk_tree(path: &Path, remove: bool) -> (u64, Option<std::io::Error>) {
    use nix::fcntl::{AtFlags, OFlag, openat};
    use nix::sys::stat::{Mode, SFlag, fstat, fstatat};
    use nix::unistd::{UnlinkatFlags, unlinkat};
    use std::ffi::OsString;
    use std::os::fd::OwnedFd;
    /// A directory being emptied, as seen from the one it was entered from.
    struct Level {
        /// Its name in the directory above.
        name: OsString,
        /// The directory above: what `..` must be on the way back.
        above: (u64, u64),
        /// The entries of the directory above still to visit.
        left: Vec<OsString>,
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return (0, None);
    };
    let dir_flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut cur: OwnedFd = match nix::fcntl::open(
        parent,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return (0, Some(e.into())),
    };
    let mut freed = 0;
    let mut first_error: Option<std::io::Error> = None;
    let mut note = |e: nix::Error| {
        first_error.get_or_insert_with(|| std::io::Error::from(e));
    };
    let id = |st: &libc::stat| (st.st_dev, st.st_ino);
    let mut levels: Vec<Level> = Vec::new();
    // Entries of `cur` still to visit.
    let mut todo: Vec<OsString> = vec![name.to_os_string()];
    loop {
        let Some(n) = todo.pop() else {
            // `cur` is empty (or kept what could not go): back up.
            let Some(level) = levels.pop() else {
                break;
            };
            let up = match openat(&cur, "..", dir_flags, Mode::empty()) {
                Ok(up) => up,
                Err(e) => {
                    note(e);
                    break;
                }
            };
            if fstat(&up).map(|st| id(&st)).ok() != Some(level.above) {
                first_error.get_or_insert_with(|| {
                    std::io::Error::other(
                        "a directory was moved while guard walked the tree; run the command again",
                    )
                });
                break;
            }
            if remove
                && let Err(e) = unlinkat(&up, level.name.as_os_str(), UnlinkatFlags::RemoveDir)
            {
                note(e);
            }
            cur = up;
            todo = level.left;
            continue;
        };
        let st = match fstatat(&cur, n.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::Error::ENOENT) => continue,
            Err(e) => {
                note(e);
                continue;
            }
        };
        freed += u64::try_from(st.st_blocks).unwrap_or(0) * 512;
        let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if !is_dir {
            if remove && let Err(e) = unlinkat(&cur, n.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                note(e);
            }
            continue;
        }
        // A directory: its owner may always read and write it.
        if remove
            && st.st_mode & 0o700 != 0o700
            && let Err(e) = chmod_dir_at(&cur, &n, st.st_mode | 0o700)
        {
            note(e);
        }
        let sub = match openat(&cur, n.as_os_str(), dir_flags, Mode::empty()) {
            Ok(sub) => sub,
            Err(e) => {
                note(e);
                continue;
            }
        };
        // What was looked at, not something put in its place since.
        if fstat(&sub).map(|s| id(&s)).ok() != Some(id(&st)) {
            note(nix::Error::EBUSY);
            continue;
        }
        let names = match nix::dir::Dir::openat(&sub, ".", dir_flags, Mode::empty()) {
            Ok(mut d) => d
                .iter()
                .flatten()
                .map(|e| e.file_name().to_bytes().to_vec())
                .filter(|n| n != b"." && n != b"..")
                .map(std::os::unix::ffi::OsStringExt::from_vec)
                .collect(),
            Err(e) => {
                note(e);
                continue;
            }
        };
        let above = match fstat(&cur) {
            Ok(st) => id(&st),
            Err(e) => {
                note(e);
                continue;
            }
        };
        levels.push(Level {
            name: n,
            above,
            left: std::mem::replace(&mut todo, names),
        });
        cur = sub;
    }
    (freed, first_error)
}

/// Open `path`, a canonical path guard resolved earlier (a grant, a file
/// the scan judged), refusing a link on any component of the way, not only
/// the last (openat2 with RESOLVE_NO_SYMLINKS; a link as the last
/// component is returned as itself with O_PATH | O_NOFOLLOW, as open(2)
/// does). A link there now was put there since: by another sandbox
/// writing a directory on the way (a dotfiles repository opened as its
/// project), which swapped a directory for a link to another holding a
/// file of the same name (`dotfiles/ssh -> ../.kube` makes a granted
/// `dotfiles/ssh/config` the kube config). Fails with ELOOP then.
pub fn open_no_links(
    path: &Path,
    flags: nix::fcntl::OFlag,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(nix::fcntl::AT_FDCWD, path, how).map_err(std::io::Error::from)
}

/// Open directory `rel` below `root` without following a symlink on the
/// way: each component is opened with O_NOFOLLOW | O_DIRECTORY relative to
/// the previous one. `None` when a component is missing, not a directory,
/// or a symlink. guard's own changes to the project (placeholders,
/// quarantine) go through these descriptors, so a link the sandbox planted
/// cannot redirect them into the home directory.
pub fn open_dir_beneath(root: &Path, rel: &Path) -> Option<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let mut dir = nix::fcntl::open(root, flags, Mode::empty()).ok()?;
    for comp in rel.components() {
        match comp {
            std::path::Component::Normal(name) => {
                dir = openat(&dir, name, flags, Mode::empty()).ok()?;
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(dir)
}

/// [`open_dir_beneath`], creating missing directories (mode 755) on the
/// way; still never following a symlink, so a link swapped in at any
/// moment cannot redirect what is created below.
pub fn make_dirs_beneath(root: &Path, rel: &Path) -> Option<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let mut dir = nix::fcntl::open(root, flags, Mode::empty()).ok()?;
    for comp in rel.components() {
        match comp {
            std::path::Component::Normal(name) => {
                let _ = mkdirat(&dir, name, Mode::from_bits_truncate(0o755));
                dir = openat(&dir, name, flags, Mode::empty()).ok()?;
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(dir)
}

/// A regular file's content, if it is one and no larger than `max`.
pub fn read_small(path: &Path, max: u64) -> Option<Vec<u8>> {
    read_regular(path, max, libc::O_NOFOLLOW)
}

/// [`read_small`] through a link, as git and most tools open files.
pub fn read_small_followed(path: &Path, max: u64) -> Option<Vec<u8>> {
    read_regular(path, max, 0)
}

/// [`read_small_followed`], with the path the file was read at, found
/// from the descriptor read: a link swapped in meanwhile cannot show one
/// file and give another.
pub fn read_small_followed_where(path: &Path, max: u64) -> Option<(Vec<u8>, PathBuf)> {
    use std::os::fd::AsRawFd;
    let f = open_regular(path, 0)?;
    let at = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).ok()?;
    Some((read_capped(f, max)?, at))
}

fn read_regular(path: &Path, max: u64, flags: i32) -> Option<Vec<u8>> {
    read_capped(open_regular(path, flags)?, max)
}

/// Open the regular file `name` in `dirfd` for reading once an `O_NONBLOCK`
/// open of it answered EAGAIN: another program holds a lease on it (a
/// fifo or device never answers so; a Samba share's oplocks, another guard
/// session's check of a file the host made anew). The sandbox's own open
/// would wait for the holder to let go and then read the file, so guard,
/// which decides what the sandbox may read, must read it too: waits as
/// long as the kernel lets a holder take (`lease-break-time`, 45 s by
/// default). A file no longer regular (swapped since): EAGAIN still.
pub fn open_past_lease(
    dirfd: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
) -> nix::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, openat};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let at = openat(
        dirfd,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    if nix::sys::stat::fstat(&at)?.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(nix::Error::EAGAIN);
    }
    // The same file, through its descriptor: no path is resolved again.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", at.as_raw_fd()))
        .map(std::os::fd::OwnedFd::from)
        .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// [`open_past_lease`] for a path: its directory is opened as an
/// `O_NONBLOCK` open of the path would resolve it, and the last component
/// is never followed (a link there gives ELOOP), as with `O_NOFOLLOW`.
pub fn open_path_past_lease(path: &Path) -> nix::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, open};
    use std::os::fd::AsFd;
    use std::os::unix::ffi::OsStrExt;
    let name = path.file_name().ok_or(nix::Error::EINVAL)?;
    let name = std::ffi::CString::new(name.as_bytes()).map_err(|_| nix::Error::EINVAL)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    open_past_lease(dir.as_fd(), &name)
}

/// Never a fifo or device: opened `O_NONBLOCK`, kept only if regular.
fn open_regular(path: &Path, flags: i32) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    f.metadata().ok()?.is_file().then_some(f)
}

fn read_capped(f: std::fs::File, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out).ok()?;
    (out.len() as u64 <= max).then_some(out)
}

/// Read a regular file without following a final symlink (a project's
/// `.guard.toml` must be the file itself, not a link to some other file).
pub fn read_no_follow(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text)
}

/// `path` for a terminal: control characters (a file name can hold escape
/// sequences that rewrite what the user sees) shown as `\xNN`.
pub fn printable(path: &Path) -> String {
    let s = path.to_string_lossy();
    if !s.chars().any(char::is_control) {
        return s.into_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_tree_empties_closed_directories_and_never_follows_links() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("guard-rmtree-{}", std::process::id()));
        let outside = d.join("outside");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("sub/keep"), "keep").unwrap();
        let tree = d.join("tree");
        std::fs::create_dir_all(tree.join("ro/deep")).unwrap();
        std::fs::write(tree.join("ro/deep/f"), "x").unwrap();
        std::fs::create_dir_all(tree.join("closed")).unwrap();
        std::fs::write(tree.join("closed/g"), "y").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("dir-link")).unwrap();
        std::os::unix::fs::symlink(outside.join("sub/keep"), tree.join("file-link")).unwrap();
        for (p, mode) in [("ro/deep", 0o555), ("ro", 0o555), ("closed", 0)] {
            std::fs::set_permissions(tree.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        assert!(tree_size(&tree) > 0);
        let (freed, err) = remove_tree(&tree);
        assert!(err.is_none(), "{err:?}");
        assert!(freed > 0);
        assert!(!tree.exists());
        assert_eq!(
            std::fs::read_to_string(outside.join("sub/keep")).unwrap(),
            "keep"
        );
        // A link given as the tree is removed, not what it leads to.
        std::os::unix::fs::symlink(&outside, d.join("top-link")).unwrap();
        assert!(remove_tree(&d.join("top-link")).1.is_none());
        assert!(outside.join("sub/keep").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A chain of directories far deeper than a recursion per level could
    /// walk on a test thread's 2 MiB stack, made by `mkdirat` + `openat`
    /// (its path is far over PATH_MAX), the deepest closed.
    #[test]
    fn remove_tree_walks_any_depth() {
        use nix::fcntl::{OFlag, openat};
        use nix::sys::stat::{Mode, mkdirat};
        let d = std::env::temp_dir().join(format!("guard-deep-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let mut fd = nix::fcntl::open(&d, flags, Mode::empty()).unwrap();
        for _ in 0..20_000 {
            mkdirat(&fd, "d", Mode::from_bits_truncate(0o755)).unwrap();
            fd = openat(&fd, "d", flags, Mode::empty()).unwrap();
        }
        mkdirat(&fd, "closed", Mode::empty()).unwrap();
        drop(fd);
        assert!(tree_size(&d.join("d")) > 20_000 * 512);
        let (freed, err) = remove_tree(&d.join("d"));
        assert!(err.is_none(), "{err:?}");
        assert!(freed > 20_000 * 512);
        assert!(std::fs::symlink_metadata(d.join("d")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// `chmod_dir_at` sets the mode of a directory, even a closed one, and
    /// never of what a link leads to.
    #[test]
    fn chmod_dir_at_never_follows_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("guard-chmodat-{}", std::process::id()));
        std::fs::create_dir_all(d.join("target")).unwrap();
        std::fs::create_dir_all(d.join("closed")).unwrap();
        std::fs::set_permissions(d.join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(d.join("target"), std::fs::Permissions::from_mode(0o751)).unwrap();
        std::os::unix::fs::symlink("target", d.join("link")).unwrap();
        let dir = std::fs::File::open(&d).unwrap();
        let mode = |p: &str| {
            std::fs::symlink_metadata(d.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        chmod_dir_at(&dir, std::ffi::OsStr::new("closed"), 0o40700).unwrap();
        assert_eq!(mode("closed"), 0o700);
        // A link is no directory to O_DIRECTORY | O_NOFOLLOW.
        assert_eq!(
            chmod_dir_at(&dir, std::ffi::OsStr::new("link"), 0o777),
            Err(nix::Error::ENOTDIR)
        );
        assert_eq!(mode("target"), 0o751);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn glob_in_middle_component() {
        let d = std::env::temp_dir().join(format!("guard-glob-{}", std::process::id()));
        std::fs::create_dir_all(d.join("mods/a/hooks")).unwrap();
        std::fs::create_dir_all(d.join("mods/b")).unwrap();
        let found = expand_glob(&d.join("mods/*/hooks"));
        // Non-glob tails are kept even when missing (the caller stats them).
        assert_eq!(found, [d.join("mods/a/hooks"), d.join("mods/b/hooks")]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_path_through_a_link_is_judged_where_it_leads() {
        let d = std::env::temp_dir().join(format!("guard-kind-{}", std::process::id()));
        let d = std::fs::canonicalize({
            std::fs::create_dir_all(d.join("real/docs")).unwrap();
            &d
        })
        .unwrap();
        std::os::unix::fs::symlink("real", d.join("up")).unwrap();
        assert_eq!(PathKind::of(&d.join("real/docs")), PathKind::Dir);
        // `..` without a link on the way is no link.
        assert_eq!(PathKind::of(&d.join("real/../real/docs")), PathKind::Dir);
        let real = d.join("real/docs");
        assert_eq!(
            PathKind::of(&d.join("up/docs")),
            PathKind::Symlink {
                target: real.clone(),
                resolved: Some(real)
            }
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn glob() {
        assert!(glob_match("ssh_host_*_key", "ssh_host_rsa_key"));
        assert!(!glob_match("ssh_host_*_key", "ssh_host_rsa_key.pub"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", "b"));
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable(Path::new("/a/b")), "/a/b");
        assert_eq!(printable(Path::new("/a/\x1b[2Jx")), "/a/\\x1b[2Jx");
    }
}
