//! The `landlock` isolation level, for machines without user namespaces
//! (Docker's default seccomp profile forbids them). Landlock and seccomp
//! still apply, but on the host's own file tree, process table and network
//! stack, so what the mount view and the namespaces did must be stood in
//! for here, on the host side:
//!
//! - a per-session directory with a private $HOME (or the profile's
//!   persistent home) and $TMPDIR, with links to the home paths the
//!   profile grants, since nothing can be mounted at their real places;
//! - the egress proxy listening on the host's loopback, on ports Landlock
//!   lets the command connect to (and nothing else);
//! - protected files (git hooks and config, .envrc …) snapshotted before
//!   the run and restored after it: Landlock cannot keep git working in
//!   `.git` while keeping `.git/config` read-only. One such session per
//!   project at a time, or one would restore another's writes.
//!
//! What this level does not protect is listed by `Isolation::gaps` and
//! printed at the start of every such session.

use super::protect::{make_writable, move_aside};
use crate::error::{Error, Result};
use crate::host;
use crate::net::ListenerKind;
use crate::plan::landlock::DirEntry;
use crate::policy::{Access, GrantKind, HostDirs, Policy};
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::UnlinkatFlags;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where this session's directories go (created by [`Session::start`]).
pub fn host_dirs(home_source: Option<&Path>) -> Result<HostDirs> {
    let base = host::cache_dir().ok_or_else(|| {
        Error::usage_hint(
            "cannot locate a cache directory for the session's private home and /tmp",
            "set HOME or XDG_CACHE_HOME",
        )
    })?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let session = base
        .join("sessions")
        .join(format!("{}-{stamp}", std::process::id()));
    Ok(HostDirs {
        home: home_source.map_or_else(|| session.join("home"), Path::to_path_buf),
        tmp: session.join("tmp"),
        session,
    })
}

/// The entries of `dir`, symlinks left out (see `plan::landlock::host_rules`).
pub fn list_dir(dir: &Path) -> Vec<DirEntry> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            let ft = e.file_type().ok()?;
            (!ft.is_symlink()).then(|| DirEntry {
                path: e.path(),
                dir: ft.is_dir(),
            })
        })
        .collect()
}

/// The terminal the command inherits, if any (its own pty on the host).
pub fn tty() -> Option<PathBuf> {
    (0..3)
        .filter_map(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
        .find(|p| p.starts_with("/dev/pts/"))
}

/// A running `landlock`-level session's host-side state.
pub struct Session {
    dirs: HostDirs,
    /// Held from before the snapshot until after the restore.
    _project_lock: nix::fcntl::Flock<std::fs::File>,
    snapshot: Vec<Saved>,
    /// HTTP proxy and SOCKS5 listeners on the host's loopback.
    pub listeners: Vec<(ListenerKind, OwnedFd)>,
    pub ports: Vec<u16>,
}

impl Session {
    /// Create the session's directories and links, snapshot protected
    /// files, and bind the proxy's listeners (none without network).
    pub fn start(policy: &Policy, dirs: &HostDirs) -> Result<Session> {
        let project_lock = lock_project(&policy.project, true)?
            .ok_or_else(|| Error::usage("cannot lock the project"))?;
        if let Some(parent) = dirs.session.parent() {
            remove_stale_sessions(parent);
        }
        for d in [&dirs.session, &dirs.tmp, &dirs.home] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("create", d, e))?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("chmod", d, e))?;
        }
        link_home(policy, &dirs.home);
        let mut listeners = Vec::new();
        let mut ports = Vec::new();
        if policy.network.enabled {
            for kind in [ListenerKind::HttpProxy, ListenerKind::Socks5] {
                let l = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                    .map_err(|e| Error::sys("listen on the host's loopback for the proxy", e))?;
                let port = l
                    .local_addr()
                    .map_err(|e| Error::sys("read the proxy's port", e))?
                    .port();
                ports.push(port);
                listeners.push((kind, OwnedFd::from(l)));
            }
        }
        Ok(Session {
            dirs: dirs.clone(),
            _project_lock: project_lock,
            snapshot: snapshot(policy),
            listeners,
            ports,
        })
    }

    /// The command's environment with the proxy's real port.
    pub fn env(
        &self,
        env: &[(String, String)],
        net: &crate::net::NetPolicy,
    ) -> Vec<(String, String)> {
        let Some(&http) = self.ports.first() else {
            return env.to_vec();
        };
        let mut map: std::collections::BTreeMap<String, String> = env.iter().cloned().collect();
        map.extend(crate::net::proxy_env_on(net, http));
        map.into_iter().collect()
    }

    /// After the run (every sandbox process gone): put protected files back
    /// and remove the session's directories. Returns what was restored.
    pub fn finish(self, project: &Path) -> Vec<PathBuf> {
        let restored = restore(&self.snapshot, project);
        // Not remove_dir_all: it stops at directories the session made
        // read-only (Go's module cache) and leaves them behind.
        let _ = host::remove_tree(&self.dirs.session);
        restored
    }
}

/// Session directories of guard processes that are gone (killed before
/// they could remove theirs): named `PID-NANOS`.
fn remove_stale_sessions(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            // Never follows a link inside.
            let _ = host::remove_tree(&e.path());
        }
    }
}

/// One `landlock`-level session per project at a time (`exclusive`), and
/// none while a `full` one runs there (they hold it shared). Each restores
/// the protected files to its own snapshot: a session started while another
/// runs would snapshot what that one wrote (a hook config, a created
/// `.envrc` not yet moved aside), and put it back after that one cleaned
/// up. A shared lock that cannot be had is no error (`None`): a full
/// session cannot write protected files, so it may run beside one.
/// The file whose lock [`lock_project`] takes for `project`.
pub fn lock_path(project: &Path) -> Option<std::path::PathBuf> {
    // FNV-1a of the path: a fixed-length name, stable across guard builds.
    let hash = project
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    Some(
        host::cache_dir()?
            .join("locks")
            .join(format!("{hash:016x}.lock")),
    )
}

pub fn lock_project(
    project: &Path,
    exclusive: bool,
) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let path = lock_path(project)
        .ok_or_else(|| Error::usage_hint("cannot locate a cache directory", "set HOME"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    let how = if exclusive {
        FlockArg::LockExclusiveNonblock
    } else {
        FlockArg::LockSharedNonblock
    };
    match Flock::lock(file, how) {
        Ok(lock) if !exclusive => Ok(Some(lock)),
        Err(_) if !exclusive => Ok(None),
        Ok(mut lock) => {
            // Who holds it, for the message another session prints.
            let _ = lock.set_len(0);
            let _ = lock.rewind();
            let _ = write!(lock, "{}", std::process::id());
            Ok(Some(lock))
        }
        Err((mut file, nix::Error::EWOULDBLOCK)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Err(Error::usage_hint(
                format!(
                    "another guard session runs in {}{}; sessions at the `landlock` isolation level \
                     restore protected files from a snapshot and cannot overlap another session",
                    project.display(),
                    match holder.trim() {
                        "" => String::new(),
                        pid => format!(" (guard pid {pid})"),
                    }
                ),
                "wait for it to end, or run this one in another worktree",
            ))
        }
        Err((_, e)) => Err(Error::sys(format!("lock {}", path.display()), e)),
    }
}

/// Links in the private home to the real home paths the profile grants, so
/// `~/.cargo/bin` or `~/.cargo/registry` (a cache, read-only at this level)
/// are where programs look; a file granted read-only (`~/.gitconfig`) is
/// copied instead, as at the full level, so `git config --global` can
/// rename its new version over it. Never replaces what the home holds
/// (but an empty mount point a full-level run left), and never follows a
/// link inside it (a persistent home is the sandbox's to write).
fn link_home(policy: &Policy, home: &Path) {
    for (path, rel, copy) in home_paths(policy, home) {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let Some(dir) = host::make_dirs_beneath(home, parent) else {
            continue;
        };
        // A full-level run of the same persistent home left an empty mount
        // point here (its view mounts the host's path over it): it gives
        // way, anything with content stays.
        if empty_mount_point(&dir, name) {
            let _ = nix::unistd::unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir);
            let _ = nix::unistd::unlinkat(&dir, name, UnlinkatFlags::RemoveDir);
        }
        if !(copy && copy_beneath(&path, &dir, name)) {
            let _ = nix::unistd::symlinkat(&path, &dir, name);
        }
    }
}

/// The home paths the profile shows, as (host path, path relative to the
/// home, copied rather than linked), for those under the real home.
fn home_paths<'a>(
    policy: &'a Policy,
    home: &'a Path,
) -> impl Iterator<Item = (PathBuf, PathBuf, bool)> + 'a {
    policy
        .grants
        .iter()
        .filter(|g| matches!(g.access, Access::ReadOnly | Access::ReadWrite))
        .map(|g| {
            (
                g.path.clone(),
                g.kind == GrantKind::File && g.access == Access::ReadOnly,
            )
        })
        .chain(policy.caches.iter().map(|c| (c.path.clone(), false)))
        .filter_map(move |(path, copy)| {
            let rel = path.strip_prefix(&policy.home).ok()?.to_path_buf();
            (!rel.as_os_str().is_empty() && !path.starts_with(home)).then_some((path, rel, copy))
        })
}

/// An empty directory or empty regular file (never followed).
fn empty_mount_point(dir: &OwnedFd, name: &std::ffi::OsStr) -> bool {
    use nix::sys::stat::{SFlag, fstatat};
    let Ok(st) = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
        return false;
    };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    (kind == SFlag::S_IFREG && st.st_size == 0) || (kind == SFlag::S_IFDIR && st.st_nlink == 2)
}

/// Before a full-level run with a persistent home: the links a
/// `landlock`-level session made in it ([`link_home`]) stand where the
/// full level makes its mount points, and a mount point is never made on
/// a link (that fails closed). Each link that still leads exactly where
/// that session pointed it is removed; anything else stays.
pub fn unlink_home(policy: &Policy) {
    let Some(home) = policy.home_source.as_deref() else {
        return;
    };
    for (path, rel, _) in home_paths(policy, home) {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let Some(dir) = host::open_dir_beneath(home, parent) else {
            continue;
        };
        if nix::fcntl::readlinkat(&dir, name).is_ok_and(|to| Path::new(&to) == path) {
            let _ = nix::unistd::unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// A private copy of `src` as `name` in `dir`, unless something is there
/// (never followed: O_EXCL) or `src` is too large to copy at every start.
fn copy_beneath(src: &Path, dir: &OwnedFd, name: &std::ffi::OsStr) -> bool {
    // Why never through a link: `src` may lie in a directory another
    // sandbox writes (a dotfiles repository `~/.gitconfig` leads into),
    // and a link swapped in since the policy was resolved
    // (`gitconfig -> ../.ssh/id_ed25519`, or `dotfiles/ssh -> ../.kube`
    // on the way to `dotfiles/ssh/config`) had guard copy what it leads to
    // into the home. A link gets a link instead, which Landlock judges
    // where it leads.
    let opened =
        crate::host::open_no_links(src, nix::fcntl::OFlag::O_RDONLY).map(std::fs::File::from);
    let Ok(mut from) = opened else {
        return false;
    };
    let Ok(meta) = from.metadata() else {
        return false;
    };
    if !meta.is_file() || meta.len() > crate::plan::mounts::COPY_MAX {
        return false;
    }
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
    let mode = Mode::from_bits_truncate(meta.permissions().mode() & 0o777);
    let Ok(to) = openat(dir, name, flags, mode) else {
        // Something is there already (a persistent home's own file): it
        // stays, and no link can take its place either.
        return true;
    };
    let mut to = std::fs::File::from(to);
    std::io::copy(&mut from, &mut to).is_ok()
}

/// A protected path as it was before the run.
struct Saved {
    path: PathBuf,
    content: Content,
    mode: u32,
    /// Its directory could be opened from the project down without
    /// following a link (recorded for the roots of protected trees): if so,
    /// finding a link or a file there after the run means the sandbox put
    /// it there.
    beneath: bool,
}

#[derive(PartialEq)]
enum Content {
    /// A directory (its entries follow as their own `Saved`).
    Dir,
    File(Vec<u8>),
    /// A symlink, put back as one (never followed).
    Link(PathBuf),
    /// What guard does not copy (a file over [`SNAPSHOT_MAX`], a fifo, a
    /// directory nested too deep): compared by identity and change time,
    /// which any write, chmod or replacement moves. Every entry counts: a
    /// hook the snapshot left out (a link to a script, an oversized file)
    /// would still run.
    Other {
        ino: u64,
        ctime: (i64, i64),
    },
}

/// Largest protected file guard snapshots; a larger one is compared by
/// identity only, and not put back if its tree has to be restored.
const SNAPSHOT_MAX: u64 = 4 << 20;

fn snapshot(policy: &Policy) -> Vec<Saved> {
    let mut out = Vec::new();
    for g in &policy.grants {
        // A protected path inside another one is part of that one's tree.
        if g.access == Access::Protected
            && matches!(g.kind, GrantKind::Dir | GrantKind::File)
            && !out.iter().any(|s: &Saved| g.path.starts_with(&s.path))
        {
            let first = out.len();
            save(&g.path, &mut out, 0);
            if let Some(root) = out.get_mut(first) {
                root.beneath = parent_beneath(&policy.project, &g.path).is_some();
            }
        }
    }
    out
}

/// The directory holding `path`, opened from `project` down without
/// following a link.
fn parent_beneath(project: &Path, path: &Path) -> Option<OwnedFd> {
    host::open_dir_beneath(project, path.strip_prefix(project).ok()?.parent()?)
}

fn save(path: &Path, out: &mut Vec<Saved>, depth: usize) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    let mut push = |content| {
        out.push(Saved {
            path: path.to_path_buf(),
            content,
            mode,
            beneath: false,
        })
    };
    let other = Content::Other {
        ino: meta.ino(),
        ctime: (meta.ctime(), meta.ctime_nsec()),
    };
    if meta.is_dir() && depth < 8 {
        push(Content::Dir);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            save(&e, out, depth + 1);
        }
    } else if meta.is_symlink() {
        match std::fs::read_link(path) {
            Ok(target) => push(Content::Link(target)),
            Err(_) => push(other),
        }
    } else if meta.is_file() && meta.len() <= SNAPSHOT_MAX {
        match std::fs::read(path) {
            Ok(bytes) => push(Content::File(bytes)),
            Err(_) => push(other),
        }
    } else {
        push(other);
    }
}

/// Compare each protected tree with its snapshot; where anything differs
/// (content, mode, an entry added, removed or replaced by a link, or a
/// directory above it replaced), move the current tree aside and write the
/// snapshot back.
fn restore(saved: &[Saved], project: &Path) -> Vec<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let suffix = format!(".guard-quarantine-{stamp}");
    let roots: Vec<&Saved> = saved
        .iter()
        .filter(|s| {
            !saved
                .iter()
                .any(|o| o.path != s.path && s.path.starts_with(&o.path))
        })
        .collect();
    let mut restored = Vec::new();
    for root in roots {
        let tree: Vec<&Saved> = saved
            .iter()
            .filter(|s| s.path.starts_with(&root.path))
            .collect();
        let Ok(rel) = root.path.strip_prefix(project) else {
            continue;
        };
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        // The tree is compared through its path, which follows links: a
        // directory above it swapped for a link to a copy (the protected
        // file identical, its neighbours not) would compare equal.
        let dir = host::open_dir_beneath(project, parent);
        if (dir.is_some() || !root.beneath) && unchanged(&tree, &root.path) {
            continue;
        }
        let dir = match dir {
            Some(dir) => dir,
            // It was a real directory before the run: the sandbox replaced
            // or removed it. Put a directory back (what stood there is
            // moved aside) rather than leave what it pointed to in place.
            None if root.beneath => match reopen_dirs(project, parent, &suffix) {
                Some(dir) => dir,
                None => {
                    eprintln!(
                        "guard: WARNING: protected path {} was changed and its directory could not be put back; inspect it",
                        host::printable(&root.path)
                    );
                    continue;
                }
            },
            None => {
                eprintln!(
                    "guard: WARNING: protected path {} was changed and its directory replaced; inspect it",
                    host::printable(&root.path)
                );
                continue;
            }
        };
        let aside = match nix::sys::stat::fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(_) => None,
            Ok(_) => match move_aside(&dir, name, &suffix) {
                Ok(aside) => Some(aside),
                Err(_) => {
                    eprintln!(
                        "guard: WARNING: protected path {} was changed and could not be moved aside; inspect it",
                        host::printable(&root.path)
                    );
                    continue;
                }
            },
        };
        make_writable(&dir);
        let base = root.path.parent().unwrap_or(project);
        for lost in put_back(&dir, base, &tree) {
            eprintln!(
                "guard: note: {} was not snapshotted (too large, or not a file) and is not put back",
                host::printable(&lost)
            );
        }
        if let Some(aside) = aside {
            eprintln!(
                "guard: the sandbox changed protected path {}; restored it (what it wrote is in {})",
                host::printable(&root.path),
                host::printable(&root.path.with_file_name(&aside))
            );
        } else {
            eprintln!(
                "guard: the sandbox changed protected path {}; restored it",
                host::printable(&root.path)
            );
        }
        restored.push(root.path.clone());
    }
    restored
}

/// Open `rel` below `root` as [`host::open_dir_beneath`] does, putting
/// back the directories on the way: a missing one is created, anything
/// else in its place (a link, a file) is renamed with `suffix` first.
fn reopen_dirs(root: &Path, rel: &Path, suffix: &str) -> Option<OwnedFd> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let mut dir = nix::fcntl::open(root, flags, Mode::empty()).ok()?;
    let mut shown = root.to_path_buf();
    for c in rel.iter() {
        shown.push(c);
        if let Ok(next) = openat(&dir, c, flags, Mode::empty()) {
            dir = next;
            continue;
        }
        let st = nix::sys::stat::fstatat(&dir, c, AtFlags::AT_SYMLINK_NOFOLLOW);
        // A directory of ours the sandbox made unreadable (see
        // `make_writable`): give it back its owner's access.
        if let Ok(st) = st
            && st.st_mode & libc::S_IFMT == libc::S_IFDIR
            && host::chmod_dir_at(&dir, c, st.st_mode | 0o700).is_ok()
            && let Ok(next) = openat(&dir, c, flags, Mode::empty())
        {
            dir = next;
            continue;
        }
        make_writable(&dir);
        if st.is_ok() {
            let aside = move_aside(&dir, c, suffix).ok()?;
            eprintln!(
                "guard: the sandbox replaced directory {} (it holds protected paths); moved what it put there to {}",
                host::printable(&shown),
                host::printable(&shown.with_file_name(&aside))
            );
        }
        mkdirat(&dir, c, Mode::from_bits_truncate(0o755)).ok()?;
        dir = openat(&dir, c, flags, Mode::empty()).ok()?;
    }
    Some(dir)
}

/// Write the snapshot of a tree into `dir` (the directory at `base`),
/// through descriptors, never following a link and never writing into
/// anything that already exists. Returns the entries it could not put back.
fn put_back(dir: &OwnedFd, base: &Path, tree: &[&Saved]) -> Vec<PathBuf> {
    use std::io::Write;
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let open_beneath = |rel: &Path| -> Option<OwnedFd> {
        let mut d = dir.try_clone().ok()?;
        for c in rel.iter() {
            d = openat(&d, c, flags, Mode::empty()).ok()?;
        }
        Some(d)
    };
    let mut lost = Vec::new();
    let mut dirs = Vec::new();
    for s in tree {
        let Ok(rel) = s.path.strip_prefix(base) else {
            continue;
        };
        let (Some(up), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let Some(at) = open_beneath(up) else {
            continue;
        };
        let mode = Mode::from_bits_truncate(s.mode);
        match &s.content {
            // Modes of directories last: a read-only one must first be filled.
            Content::Dir => {
                let _ = mkdirat(&at, name, Mode::from_bits_truncate(0o700));
                dirs.push((rel, mode));
            }
            Content::File(bytes) => {
                let create = OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                if let Ok(fd) = openat(&at, name, create, Mode::from_bits_truncate(0o600)) {
                    let _ = nix::sys::stat::fchmod(&fd, mode);
                    let _ = std::fs::File::from(fd).write_all(bytes);
                }
            }
            Content::Link(target) => {
                let _ = nix::unistd::symlinkat(target, &at, name);
            }
            Content::Other { .. } => lost.push(s.path.clone()),
        }
    }
    for (rel, mode) in dirs.into_iter().rev() {
        if let Some(d) = open_beneath(rel) {
            let _ = nix::sys::stat::fchmod(&d, mode);
        }
    }
    lost
}

/// Whether the tree at `root` is exactly as snapshotted. Stops at the first
/// difference, and reads a file only where the snapshot holds one of the
/// same size: what the sandbox added is never read. (It could add any
/// number of files up to [`SNAPSHOT_MAX`], sparse ones costing no disk;
/// reading them all would exhaust guard's memory before the restore.)
fn unchanged(tree: &[&Saved], root: &Path) -> bool {
    let mut next = 0;
    same(tree, &mut next, root, 0) && next == tree.len()
}

/// Compare `path` with `tree[*next]` (and, for a directory, its entries
/// with those that follow, in the order `save` wrote them).
fn same(tree: &[&Saved], next: &mut usize, path: &Path, depth: usize) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(s) = tree.get(*next).filter(|s| s.path == path) else {
        return false;
    };
    *next += 1;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if meta.permissions().mode() & 0o7777 != s.mode {
        return false;
    }
    match &s.content {
        Content::Dir => {
            if !meta.is_dir() || depth >= 8 {
                return false;
            }
            // Count before collecting: as many entries as the snapshot's.
            let expected = tree[*next..]
                .iter()
                .filter(|t| t.path.parent() == Some(path))
                .count();
            let Ok(rd) = std::fs::read_dir(path) else {
                return false;
            };
            if rd.count() != expected {
                return false;
            }
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .take(expected + 1)
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            entries.len() == expected && entries.iter().all(|e| same(tree, next, e, depth + 1))
        }
        Content::File(bytes) => {
            meta.is_file()
                && meta.len() == bytes.len() as u64
                && std::fs::read(path).is_ok_and(|now| &now == bytes)
        }
        Content::Link(target) => {
            meta.is_symlink() && std::fs::read_link(path).is_ok_and(|now| &now == target)
        }
        Content::Other { ino, ctime } => {
            meta.ino() == *ino && (meta.ctime(), meta.ctime_nsec()) == *ctime
        }
    }
}
