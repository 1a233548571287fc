//! Apply the mount plan: build a new root on a tmpfs and pivot into it.
//!
//! Threat model: the view is the first wall. Everything not mounted here
//! does not exist for the sandbox; every bind is nosuid (and nodev unless it
//! is a device node); read-only binds are read-only recursively, so a
//! submount cannot be written through. The host's root is detached at the
//! end, so no path leads back to it.

use super::sys;
use crate::error::{Error, Result};
use crate::plan::MountOp;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Flags of a mount that only stands in for something (empty file or
/// directory, generated or redacted file): nothing is written, run or
/// opened as a device through it.
const SEALED: u64 = sys::MOUNT_ATTR_RDONLY
    | sys::MOUNT_ATTR_NOSUID
    | sys::MOUNT_ATTR_NODEV
    | sys::MOUNT_ATTR_NOEXEC;

/// Where the host's root is reachable during setup, and where the new root
/// is assembled (both inside the setup tmpfs).
const OLD: &str = "/oldroot";
const NEW: &str = "/newroot";
const EMPTY_FILE: &str = "/empty-file";
const EMPTY_DIR: &str = "/empty-dir";
/// Generated files (resolv.conf, hosts) live here, in the setup tmpfs.
const GENERATED: &str = "/generated";
/// Redacted copies are written here, in the setup tmpfs: never on the
/// host's disk, gone with the sandbox.
const REDACTED: &str = "/redacted";
/// The one tmpfs behind every writable tmpfs of the plan (/tmp, /var/tmp,
/// /dev/shm, an empty home, /dev), each a directory of it. What a tmpfs
/// holds is memory no process is charged for: when the machine runs out,
/// the kernel's OOM killer kills the user's other programs, not the
/// sandbox. Five tmpfs of the kernel's default size could pin two and a
/// half times the RAM; this one is at most half of it, like a default /tmp.
const SCRATCH: &str = "/scratch";
const SCRATCH_OPTIONS: &str = "mode=0755,size=50%";

fn under(base: &str, p: &Path) -> PathBuf {
    let rel = p.strip_prefix("/").unwrap_or(p);
    Path::new(base).join(rel)
}

fn io<'a>(verb: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(verb, path, e)
}

fn nix_io<'a>(verb: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> Error + 'a {
    move |e| Error::io(verb, path, e.into())
}

/// Build the new root from `ops` and pivot into it. On return, `/` is the
/// sandbox's root and the host's root is unreachable. Returns the
/// reserve (see `RESERVE`), open.
pub fn build_root(ops: &[MountOp]) -> Result<OwnedFd> {
    let none: Option<&str> = None;
    // 1. Our mount namespace is a copy of the host's: stop propagation both
    //    ways before changing anything, or mounts would leak to the host.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(nix_io("make private", Path::new("/")))?;

    // 2. A scratch tmpfs on /tmp becomes the root for the duration of setup;
    //    the host's root moves under /oldroot, where bind sources stay
    //    reachable even for a project that lives under the host's /tmp.
    let base = Path::new("/tmp");
    mount(
        Some("tmpfs"),
        base,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(nix_io("mount setup tmpfs on", base))?;
    for d in [
        "newroot",
        "oldroot",
        "empty-dir",
        "generated",
        "redacted",
        "scratch",
    ] {
        std::fs::create_dir(base.join(d)).map_err(io("create", base))?;
    }
    let scratch = base.join("scratch");
    mount(
        Some("tmpfs"),
        &scratch,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(SCRATCH_OPTIONS),
    )
    .map_err(nix_io("mount scratch tmpfs on", &scratch))?;
    std::fs::write(base.join("empty-file"), b"").map_err(io("create", base))?;
    std::env::set_current_dir(base).map_err(io("enter", base))?;
    sys::pivot_root(Path::new("."), Path::new("oldroot")).map_err(io("pivot_root into", base))?;
    std::env::set_current_dir("/").map_err(io("enter", Path::new("/")))?;
    // The empty file/dir used for hiding must themselves be read-only.
    for p in [EMPTY_FILE, EMPTY_DIR] {
        std::fs::set_permissions(
            p,
            std::os::unix::fs::PermissionsExt::from_mode(
                0o444 | if p == EMPTY_DIR { 0o111 } else { 0 },
            ),
        )
        .map_err(io("chmod", Path::new(p)))?;
    }

    // 3. The sandbox's root: its own tmpfs, read-only once populated.
    mount(
        Some("tmpfs"),
        NEW,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(nix_io("mount root tmpfs on", Path::new(NEW)))?;

    let reserve = make_reserve()?;

    // 4. The plan, in order (parents before children).
    let mut ro_after = vec![PathBuf::from("/")];
    for (i, op) in ops.iter().enumerate() {
        apply(op, i).map_err(|e| with_op(e, op))?;
        if let MountOp::Tmpfs {
            dst,
            ro_after: true,
            ..
        } = op
        {
            ro_after.push(dst.clone());
        }
    }

    // 5. Detach the host's root, then swap the new root in. pivot_root(".",
    //    ".") stacks the setup tmpfs on top of the new root; unmounting "."
    //    removes it, leaving only the sandbox's tree.
    umount2(OLD, MntFlags::MNT_DETACH).map_err(nix_io("detach", Path::new(OLD)))?;
    std::env::set_current_dir(NEW).map_err(io("enter", Path::new(NEW)))?;
    sys::pivot_root(Path::new("."), Path::new("."))
        .map_err(io("pivot_root into", Path::new(NEW)))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(nix_io("detach", Path::new("/")))?;
    std::env::set_current_dir("/").map_err(io("enter", Path::new("/")))?;

    // 6. Freeze the skeleton: nothing can be created next to the granted
    //    paths (the root, /sys) once setup is done.
    for p in ro_after.iter().rev() {
        sys::mount_setattr(
            p,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            false,
        )
        .map_err(io("make read-only", p))?;
    }
    Ok(reserve)
}

/// Where the reserve lies: a small tmpfs holding the files the setup
/// process mounts from when the host replaces a file under the view (see
/// `keeper`): an empty file and directory, and redacted copies. A mount can only be bound from one attached to the same
/// namespace; this one is, under /proc, below what is mounted there, so
/// no path inside leads to it.
const RESERVE: &str = "/proc";
const RESERVE_OPTIONS: &str = "mode=0700,size=64m";

fn make_reserve() -> Result<OwnedFd> {
    let at = under(NEW, Path::new(RESERVE));
    mkdir_p(&at)?;
    mount(
        Some("tmpfs"),
        &at,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(RESERVE_OPTIONS),
    )
    .map_err(nix_io("mount reserve tmpfs on", &at))?;
    let fd = nix::fcntl::open(
        &at,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nix_io("open", &at))?;
    std::fs::write(reserve_path(&at, RESERVE_EMPTY_FILE), b"").map_err(io("create", &at))?;
    std::fs::create_dir(reserve_path(&at, RESERVE_EMPTY_DIR)).map_err(io("create", &at))?;
    for (name, mode) in [(RESERVE_EMPTY_FILE, 0o444), (RESERVE_EMPTY_DIR, 0o555)] {
        std::fs::set_permissions(
            reserve_path(&at, name),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .map_err(io("chmod", &at))?;
    }
    // Out of sight whatever the plan mounts at /proc.
    bind(Path::new(EMPTY_DIR), &at, SEALED)?;
    Ok(fd)
}

const RESERVE_EMPTY_FILE: &CStr = c"empty-file";
const RESERVE_EMPTY_DIR: &CStr = c"empty-dir";

fn reserve_path(at: &Path, name: &CStr) -> PathBuf {
    at.join(OsStr::from_bytes(name.to_bytes()))
}

/// How the setup process covers a file the host replaced under the view.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Cover {
    /// An empty file (or directory) over it.
    Hide,
    /// The file itself, read-only.
    ReadOnly,
    /// A redacted copy (`content`, permission bits `mode`), read-only.
    Redacted { content: String, mode: u32 },
}

/// Mount over `dst` (a path of the view, the setup process's root) as
/// `how` says. `reserve` is what [`build_root`] returned; a redacted copy
/// is written there as `name`.
pub fn cover(dst: &Path, how: &Cover, reserve: BorrowedFd<'_>, name: &CStr) -> std::io::Result<()> {
    // The entry there now, not what a link there leads to, nor one on the
    // way: the sandbox writes the directories above (the project), and a
    // directory swapped for a link would send the cover elsewhere while
    // the file stays as it is.
    let target = crate::host::open_no_links(dst, OFlag::O_PATH)?;
    let is_dir = nix::sys::stat::fstat(target.as_fd())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
    let read_only = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    let redacted_copy = |content: &str, mode: u32| -> std::io::Result<OwnedFd> {
        let copy = nix::fcntl::openat(
            reserve,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        let mut file = std::fs::File::from(copy);
        std::io::Write::write_all(&mut file, content.as_bytes())?;
        // The original's permission bits: it reads and runs as before.
        nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(mode & 0o777))?;
        drop(file);
        sys::open_tree_clone(reserve, name)
    };
    let (tree, attrs) = match how {
        Cover::ReadOnly => (sys::open_tree_clone(target.as_fd(), c"")?, read_only),
        // A copy that cannot be made (the reserve is full) hides the file:
        // a secret file must be covered one way or the other.
        Cover::Redacted { content, mode }
            if !is_dir && let Ok(tree) = redacted_copy(content, *mode) =>
        {
            (tree, read_only)
        }
        Cover::Hide | Cover::Redacted { .. } => {
            let name = if is_dir {
                RESERVE_EMPTY_DIR
            } else {
                RESERVE_EMPTY_FILE
            };
            (sys::open_tree_clone(reserve, name)?, SEALED)
        }
    };
    sys::mount_setattr_fd(tree.as_fd(), attrs)?;
    sys::move_mount(tree.as_fd(), target.as_fd())
}

fn with_op(e: Error, op: &MountOp) -> Error {
    Error::Sandbox {
        msg: format!(
            "failed to set up the sandbox's view ({}): {}",
            op.describe(),
            e.render()
        ),
        hint: None,
        code: 125,
    }
}

/// `target` (a path under the new root, about to be created or mounted
/// on) must stay inside the new root. Its deepest existing ancestor is
/// resolved: a link on the way that leads out (`~/.cache ->
/// /oldroot/home/u`, left by an earlier session in its persistent home or
/// the project, both host directories) would make setup create directories
/// and files on the host, or mount over host paths.
fn confine(target: &Path) -> Result<()> {
    let mut p = Some(target);
    while let Some(q) = p {
        if let Ok(real) = std::fs::canonicalize(q) {
            if real.starts_with(NEW) {
                return Ok(());
            }
            let shown = |x: &Path| match x.strip_prefix(OLD) {
                Ok(rest) => Path::new("/").join(rest).display().to_string() + " on the host",
                Err(_) => x.display().to_string(),
            };
            let inside = |x: &Path| Path::new("/").join(x.strip_prefix(NEW).unwrap_or(x));
            return Err(Error::Usage {
                msg: format!(
                    "{} leads out of the sandbox's root (to {}): a link on the way was left \
                     in a directory the sandbox could write (its persistent home or the project)",
                    inside(target).display(),
                    shown(&real)
                ),
                hint: Some(format!(
                    "remove the link {} after checking what put it there",
                    inside(q).display()
                )),
            });
        }
        p = q.parent();
    }
    Ok(())
}

fn mkdir_p(p: &Path) -> Result<()> {
    confine(p)?;
    std::fs::create_dir_all(p).map_err(|e| {
        // A link whose target does not exist in the setup's root (confine
        // could not resolve it) is where a mount point belongs.
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                let inside = Path::new("/").join(p.strip_prefix(NEW).unwrap_or(p));
                Error::Usage {
                    msg: format!(
                        "{} is a link where guard makes a mount point (left in a directory the \
                         sandbox could write: its persistent home or the project)",
                        inside.display()
                    ),
                    hint: Some(format!(
                        "remove the link {} after checking what put it there",
                        inside.display()
                    )),
                }
            }
            _ => io("create directory", p)(e),
        }
    })
}

/// Create an empty mount point for a file, unless something is there.
fn touch(p: &Path) -> Result<()> {
    confine(p)?;
    if std::fs::symlink_metadata(p).is_ok() {
        return Ok(());
    }
    if let Some(parent) = p.parent() {
        mkdir_p(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .map(drop)
        .map_err(io("create mount point", p))
}

/// [`bind`] of a host path the policy resolved to a file or directory (a
/// grant), only if that is what gets mounted.
///
/// Why: the source may lie in a directory another sandbox writes at this
/// very moment (a dotfiles repository opened as its project, which
/// `~/.gitconfig` or `~/.config/git` lead into). Swapping the granted entry
/// for a link (`gitconfig -> ../.ssh/id_ed25519`), or a directory on its
/// way (`dotfiles/ssh -> ../.kube` for a granted `dotfiles/ssh/config`),
/// between this session's scan and its mounts had mount(2), which follows
/// links, show the key in its place. The source is opened refusing a link
/// anywhere on its way (policy paths are canonical: one there now was put
/// there since), and what is mounted is the entry opened, never the path
/// resolved again.
fn bind_same(source: &Path, target: &Path, attrs: u64) -> Result<()> {
    use nix::sys::stat::{SFlag, fstat};
    let held = crate::host::open_no_links(source, OFlag::O_PATH)
        .map_err(|e| changed_into_link(source, e))?;
    let st = fstat(&held).map_err(nix_io("stat", source))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
        return Err(changed_into_link(
            source,
            std::io::Error::from_raw_os_error(libc::ELOOP),
        ));
    }
    confine(target)?;
    let to = nix::fcntl::open(
        target,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(nix_io("open", target))?;
    let tree = sys::open_tree_clone(held.as_fd(), c"").map_err(io("bind-mount", source))?;
    sys::mount_setattr_fd(tree.as_fd(), attrs).map_err(io("set flags on", target))?;
    sys::move_mount(tree.as_fd(), to.as_fd()).map_err(io("bind-mount", source))
}

/// A granted host path that is no longer what the policy found.
fn changed_into_link(source: &Path, e: std::io::Error) -> Error {
    let host = Path::new("/").join(source.strip_prefix(OLD).unwrap_or(source));
    if e.raw_os_error() == Some(libc::ELOOP) {
        return Error::Usage {
            msg: format!(
                "{} (or a directory on its way) became a link after guard resolved its \
                 policy (something changed it meanwhile: another sandbox writing that \
                 directory?)",
                host.display()
            ),
            hint: Some(format!(
                "check what replaced {} before running again",
                host.display()
            )),
        };
    }
    Error::io("open", &host, e)
}

/// Bind an existing path of the new root onto itself with `attrs` (a
/// read-only or pinned mount point); nothing to do if it does not exist.
fn rebind_in_place(dst: &Path, attrs: u64) -> Result<()> {
    let target = under(NEW, dst);
    if std::fs::symlink_metadata(&target).is_err() {
        return Ok(());
    }
    unless_gone(bind(&target, &target, attrs), &target)
}

/// A file another program removed on the host since the plan was made
/// (between the look above and the mount) has nothing left to cover.
fn unless_gone(r: Result<()>, target: &Path) -> Result<()> {
    match r {
        Err(_) if std::fs::symlink_metadata(target).is_err() => Ok(()),
        r => r,
    }
}

fn bind(src: &Path, dst: &Path, attrs: u64) -> Result<()> {
    confine(dst)?;
    let none: Option<&str> = None;
    mount(
        Some(src),
        dst,
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(nix_io("bind-mount", src))?;
    sys::mount_setattr(dst, attrs, true).map_err(io("set flags on", dst))
}

/// Apply one op; `index` (its position in the plan) names scratch files.
fn apply(op: &MountOp, index: usize) -> Result<()> {
    let none: Option<&str> = None;
    match op {
        MountOp::Tmpfs {
            dst,
            mode,
            ro_after: false,
        } => {
            let dir = Path::new(SCRATCH).join(index.to_string());
            std::fs::create_dir(&dir).map_err(io("create", &dir))?;
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(*mode))
                .map_err(io("chmod", &dir))?;
            let target = under(NEW, dst);
            mkdir_p(&target)?;
            bind(
                &dir,
                &target,
                sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            )
        }
        // Read-only once populated (/sys): a tmpfs of its own, nothing
        // is ever written to it.
        MountOp::Tmpfs { dst, mode, .. } => {
            let target = under(NEW, dst);
            mkdir_p(&target)?;
            let opts = format!("mode={mode:o}");
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(opts.as_str()),
            )
            .map_err(nix_io("mount tmpfs on", dst))
        }
        MountOp::Bind {
            src,
            dst,
            dir,
            writable,
            dev,
            optional,
        } => {
            let source = under(OLD, src);
            if *optional && std::fs::symlink_metadata(&source).is_err() {
                return Ok(());
            }
            let target = under(NEW, dst);
            if *dir {
                mkdir_p(&target)?;
            } else {
                touch(&target)?;
            }
            let mut attrs = sys::MOUNT_ATTR_NOSUID;
            if !*dev {
                attrs |= sys::MOUNT_ATTR_NODEV;
            } else {
                attrs |= sys::MOUNT_ATTR_NOEXEC;
            }
            if !*writable {
                attrs |= sys::MOUNT_ATTR_RDONLY;
            }
            if *dev {
                // The host's own device nodes, which no sandbox can write.
                return bind(&source, &target, attrs);
            }
            bind_same(&source, &target, attrs)
        }
        MountOp::ReadOnly { dst } => rebind_in_place(
            dst,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
        ),
        MountOp::Pin { dst } => {
            rebind_in_place(dst, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)
        }
        MountOp::HideFile { dst } => {
            let target = under(NEW, dst);
            if std::fs::symlink_metadata(&target).is_err() {
                return Ok(());
            }
            unless_gone(bind(Path::new(EMPTY_FILE), &target, SEALED), &target)
        }
        MountOp::HideDir { dst } => {
            let target = under(NEW, dst);
            let hidden =
                mkdir_p(&target).and_then(|()| bind(Path::new(EMPTY_DIR), &target, SEALED));
            unless_gone(hidden, &target)
        }
        MountOp::Redacted {
            dst, content, mode, ..
        } => {
            // The copy: written into the setup tmpfs with the original's
            // permission bits (so it reads and executes like the original),
            // then bound read-only: writes and chmod fail with EROFS, even
            // for uid 0 inside.
            let copy = Path::new(REDACTED).join(index.to_string());
            std::fs::write(&copy, content.as_bytes()).map_err(io("write redacted copy", &copy))?;
            std::fs::set_permissions(
                &copy,
                std::os::unix::fs::PermissionsExt::from_mode(mode & 0o777),
            )
            .map_err(io("chmod", &copy))?;
            let target = under(NEW, dst);
            let shown = touch(&target).and_then(|()| {
                bind(
                    &copy,
                    &target,
                    sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
                )
            });
            unless_gone(shown, &target)
        }
        MountOp::Proc { dst } => {
            let target = under(NEW, dst);
            mkdir_p(&target)?;
            mount(
                Some("proc"),
                &target,
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                none,
            )
            .map_err(|e| Error::Unsupported {
                what: "a private /proc".into(),
                cause: format!("mounting proc failed: {e}"),
                hint: Some(
                    "inside a container, /proc is often partly masked, which forbids a new proc mount; \
                     run the container with --security-opt systempaths=unconfined, or use guard on the host"
                        .into(),
                ),
            })
        }
        MountOp::Devpts { dst } => {
            let target = under(NEW, dst);
            mkdir_p(&target)?;
            mount(
                Some("devpts"),
                &target,
                Some("devpts"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some("newinstance,ptmxmode=0666,mode=0620"),
            )
            .map_err(nix_io("mount devpts on", dst))
        }
        MountOp::Overlay {
            lower,
            upper,
            work,
            dst,
        } => {
            let target = under(NEW, dst);
            mkdir_p(&target)?;
            let opts = format!(
                "lowerdir={},upperdir={},workdir={},userxattr",
                under(OLD, lower).display(),
                under(OLD, upper).display(),
                under(OLD, work).display()
            );
            mount(
                Some("overlay"),
                &target,
                Some("overlay"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(opts.as_str()),
            )
            .map_err(nix_io("mount a copy-on-write cache on", dst))
        }
        MountOp::File { dst, content } => {
            // Written into the setup tmpfs (never on the host), read-only.
            let name: String = dst
                .to_string_lossy()
                .chars()
                .map(|c| if c == '/' { '_' } else { c })
                .collect();
            let file = Path::new(GENERATED).join(name);
            std::fs::write(&file, content).map_err(io("write", &file))?;
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o444))
                .map_err(io("chmod", &file))?;
            let target = follow_inside(dst)?;
            touch(&target)?;
            bind(&file, &target, SEALED)
        }
        MountOp::Copy { src, dst } => copy_into_home(&under(OLD, src), &under(NEW, dst)),
        MountOp::Symlink { target, dst } => {
            let link = under(NEW, dst);
            if std::fs::symlink_metadata(&link).is_ok() {
                return Ok(());
            }
            if let Some(parent) = link.parent() {
                mkdir_p(parent)?;
            }
            std::os::unix::fs::symlink(target, &link).map_err(io("create symlink", dst))
        }
    }
}

/// [`MountOp::Copy`]. The home may be the persistent one, a host directory
/// an earlier session wrote, and another session of the same profile may
/// be changing it right now: the directories on the way are opened from the
/// new root down by descriptor, never through a link (a link swapped in
/// after a check would redirect the removal and the copy onto the host);
/// what lies at `target` is removed, never followed, and the copy is
/// created anew.
fn copy_into_home(source: &Path, target: &Path) -> Result<()> {
    use nix::fcntl::{OFlag, openat};
    use nix::unistd::{UnlinkatFlags, unlinkat};
    // Never through a link (see `bind_same`): the policy found a file here.
    let mut from = crate::host::open_no_links(source, OFlag::O_RDONLY)
        .map(std::fs::File::from)
        .map_err(|e| changed_into_link(source, e))?;
    let meta = from.metadata().map_err(io("stat", source))?;
    if meta.len() > crate::plan::mounts::COPY_MAX {
        touch(target)?;
        return bind_same(
            source,
            target,
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
        );
    }
    // Names the link when one leads out (the common case: a link left
    // behind); the descriptor walk below is what holds under a race.
    confine(target)?;
    let inside = target.strip_prefix(NEW).unwrap_or(target);
    let (Some(parent), Some(name)) = (inside.parent(), inside.file_name()) else {
        return Err(Error::io(
            "replace",
            target,
            std::io::Error::from_raw_os_error(libc::EINVAL),
        ));
    };
    let dir =
        crate::host::make_dirs_beneath(Path::new(NEW), parent).ok_or_else(|| Error::Usage {
            msg: format!(
                "cannot make /{}: a component is not a directory (a link left in a directory the \
                 sandbox could write, its persistent home?)",
                parent.display()
            ),
            hint: Some(format!(
                "look at /{} in the profile's persistent home and remove the link",
                parent.display()
            )),
        })?;
    match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        // An empty directory (a `mkdir` inside an earlier session) gives
        // way; one with content is the sandbox's data, left to the user.
        Err(nix::errno::Errno::EISDIR)
            if unlinkat(&dir, name, UnlinkatFlags::RemoveDir).is_ok() => {}
        Err(nix::errno::Errno::EISDIR) => {
            return Err(Error::Usage {
                msg: format!(
                    "/{} is a directory where guard puts its private copy of your file (an \
                     earlier session left it in a directory it could write, its persistent home?)",
                    inside.display()
                ),
                hint: Some(format!(
                    "remove the directory /{} from the profile's persistent home",
                    inside.display()
                )),
            });
        }
        Err(e) => return Err(Error::io("replace", target, e.into())),
    }
    let mode = nix::sys::stat::Mode::from_bits_truncate(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
    );
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut to = std::fs::File::from(
        openat(&dir, name, flags, mode).map_err(|e| Error::io("create", target, e.into()))?,
    );
    std::io::copy(&mut from, &mut to).map_err(io("copy into", target))?;
    Ok(())
}

/// Where `dst` leads inside the new root when its last component is a
/// symlink (e.g. /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf):
/// a mount on a symlink would follow it on the host's side of the setup.
/// Resolved lexically inside the new root, at most 8 links deep.
fn follow_inside(dst: &Path) -> Result<PathBuf> {
    let mut p = dst.to_path_buf();
    for _ in 0..8 {
        let inside = under(NEW, &p);
        match std::fs::symlink_metadata(&inside) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&inside).map_err(io("read symlink", dst))?;
                let joined = if link.is_absolute() {
                    link
                } else {
                    p.parent().unwrap_or(Path::new("/")).join(link)
                };
                p = crate::host::lexical(&joined);
            }
            _ => return Ok(inside),
        }
    }
    Err(Error::io(
        "follow",
        dst,
        std::io::Error::from_raw_os_error(libc::ELOOP),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_lexical_and_stays_under_root() {
        assert_eq!(
            crate::host::lexical(Path::new("/etc/../run/x")),
            PathBuf::from("/run/x")
        );
        assert_eq!(
            crate::host::lexical(Path::new("/../../x")),
            PathBuf::from("/x")
        );
        assert_eq!(
            crate::host::lexical(Path::new("/a/./b/")),
            PathBuf::from("/a/b")
        );
    }
}
