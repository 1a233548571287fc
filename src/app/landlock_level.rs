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
//!   `.git` while keeping `.git/config` read-only.
//!
//! What this level does not protect is listed by `Isolation::gaps` and
//! printed at the start of every such session.

use crate::error::{Error, Result};
use crate::host;
use crate::net::ListenerKind;
use crate::plan::landlock::DirEntry;
use crate::policy::{Access, GrantKind, HostDirs, Policy};
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};
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
    snapshot: Vec<Saved>,
    /// HTTP proxy and SOCKS5 listeners on the host's loopback.
    pub listeners: Vec<(ListenerKind, OwnedFd)>,
    pub ports: Vec<u16>,
}

impl Session {
    /// Create the session's directories and links, snapshot protected
    /// files, and bind the proxy's listeners (none without network).
    pub fn start(policy: &Policy, dirs: &HostDirs) -> Result<Session> {
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
            snapshot: snapshot(policy),
            listeners,
            ports,
        })
    }

    /// The command's environment with the proxy's real ports.
    pub fn env(&self, env: &[(String, String)]) -> Vec<(String, String)> {
        let Some(&http) = self.ports.first() else {
            return env.to_vec();
        };
        let from = format!("127.0.0.1:{}", crate::net::HTTP_PROXY_PORT);
        let to = format!("127.0.0.1:{http}");
        env.iter()
            .map(|(k, v)| match k.to_ascii_lowercase().as_str() {
                "http_proxy" | "https_proxy" | "all_proxy" => (k.clone(), v.replace(&from, &to)),
                _ => (k.clone(), v.clone()),
            })
            .collect()
    }

    /// After the run (every sandbox process gone): put protected files back
    /// and remove the session's directories. Returns what was restored.
    pub fn finish(self, project: &Path) -> Vec<PathBuf> {
        let restored = restore(&self.snapshot, project);
        let _ = std::fs::remove_dir_all(&self.dirs.session);
        restored
    }
}

/// Links in the private home to the real home paths the profile grants, so
/// `~/.gitconfig` (read-only) or `~/.cargo/registry` (a cache, read-only at
/// this level) are where programs look. Never replaces what the home holds,
/// and never follows a link inside it (a persistent home is the sandbox's
/// to write).
fn link_home(policy: &Policy, home: &Path) {
    let shown = policy
        .grants
        .iter()
        .filter(|g| matches!(g.access, Access::ReadOnly | Access::ReadWrite))
        .map(|g| g.path.clone())
        .chain(policy.caches.iter().map(|c| c.path.clone()));
    for path in shown {
        let Ok(rel) = path.strip_prefix(&policy.home) else {
            continue;
        };
        if rel.as_os_str().is_empty() || path.starts_with(home) {
            continue;
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let Some(dir) = make_dirs_beneath(home, parent) else {
            continue;
        };
        let _ = nix::unistd::symlinkat(&path, &dir, name);
    }
}

/// Open `root/rel` as a directory, creating missing components; never
/// following a symlink.
fn make_dirs_beneath(root: &Path, rel: &Path) -> Option<OwnedFd> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY;
    let mut dir = nix::fcntl::open(root, flags, Mode::empty()).ok()?;
    for c in rel.iter() {
        let _ = mkdirat(&dir, c, Mode::from_bits_truncate(0o755));
        dir = openat(&dir, c, flags, Mode::empty()).ok()?;
    }
    Some(dir)
}

/// A protected path as it was before the run.
struct Saved {
    path: PathBuf,
    /// `None`: a directory (its entries follow as their own `Saved`).
    content: Option<Vec<u8>>,
    mode: u32,
}

/// Largest protected file guard snapshots; a larger one is reported as
/// unprotected rather than read whole.
const SNAPSHOT_MAX: u64 = 4 << 20;

fn snapshot(policy: &Policy) -> Vec<Saved> {
    let mut out = Vec::new();
    for g in &policy.grants {
        if g.access == Access::Protected && matches!(g.kind, GrantKind::Dir | GrantKind::File) {
            save(&g.path, &mut out, 0);
        }
    }
    out
}

fn save(path: &Path, out: &mut Vec<Saved>, depth: usize) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_dir() && depth < 8 {
        out.push(Saved {
            path: path.to_path_buf(),
            content: None,
            mode,
        });
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            save(&e, out, depth + 1);
        }
    } else if meta.is_file()
        && meta.len() <= SNAPSHOT_MAX
        && let Ok(bytes) = std::fs::read(path)
    {
        out.push(Saved {
            path: path.to_path_buf(),
            content: Some(bytes),
            mode,
        });
    }
}

/// Compare each protected tree with its snapshot; where anything differs
/// (content, mode, an entry added, removed or replaced by a link), move the
/// current tree aside and write the snapshot back.
fn restore(saved: &[Saved], project: &Path) -> Vec<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
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
        if unchanged(&tree, &root.path) {
            continue;
        }
        let Ok(rel) = root.path.strip_prefix(project) else {
            continue;
        };
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        // The parent itself may have been replaced by a link: open it
        // without following links, from the project down.
        let Some(dir) = host::open_dir_beneath(project, parent) else {
            eprintln!(
                "guard: WARNING: protected path {} was changed and its directory replaced; inspect it",
                root.path.display()
            );
            continue;
        };
        let mut aside = name.to_owned();
        aside.push(format!(".guard-quarantine-{stamp}"));
        if nix::sys::stat::fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
            && nix::fcntl::renameat(&dir, name, &dir, aside.as_os_str()).is_err()
        {
            eprintln!(
                "guard: WARNING: protected path {} was changed and could not be moved aside; inspect it",
                root.path.display()
            );
            continue;
        }
        for s in &tree {
            let Ok(inner) = s.path.strip_prefix(&root.path) else {
                continue;
            };
            // (`join("")` would add a trailing slash.)
            let target = if inner.as_os_str().is_empty() {
                root.path.clone()
            } else {
                root.path.join(inner)
            };
            let _ = match &s.content {
                None => std::fs::create_dir(&target),
                Some(bytes) => std::fs::write(&target, bytes),
            };
            let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(s.mode));
        }
        eprintln!(
            "guard: the sandbox changed protected path {}; restored it (what it wrote is in {})",
            root.path.display(),
            root.path.with_file_name(&aside).display()
        );
        restored.push(root.path.clone());
    }
    restored
}

/// Whether the tree at `root` is exactly as snapshotted.
fn unchanged(tree: &[&Saved], root: &Path) -> bool {
    let mut now = Vec::new();
    save(root, &mut now, 0);
    now.len() == tree.len()
        && now
            .iter()
            .zip(tree)
            .all(|(a, b)| a.path == b.path && a.content == b.content && a.mode == b.mode)
}
