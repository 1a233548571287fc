//! Policy → ordered mount operations for the new root.
//!
//! Paths: `src` is a host path, `dst` a path inside the sandbox (the same
//! absolute path as on the host, so tools and error messages agree).
//!
//! Order: the fixed skeleton first (/dev, /proc, /sys), then every path rule
//! sorted by destination so a parent is mounted before anything inside it
//! (the /tmp tmpfs before a project under /tmp; the project before a file
//! hidden in it). On the same path: tmpfs, then bind, then hide.

use crate::policy::{Access, GrantKind, Policy};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountOp {
    /// A fresh tmpfs. `ro_after`: remounted read-only once setup is done.
    Tmpfs {
        #[serde(with = "super::os_path")]
        dst: PathBuf,
        mode: u32,
        ro_after: bool,
    },
    /// Bind a host path. Always nosuid; nodev unless `dev` (device nodes).
    /// `optional`: skipped when the source does not exist.
    Bind {
        #[serde(with = "super::os_path")]
        src: PathBuf,
        #[serde(with = "super::os_path")]
        dst: PathBuf,
        dir: bool,
        writable: bool,
        dev: bool,
        optional: bool,
    },
    /// Make an already-mounted path inside the sandbox read-only (skipped if
    /// it does not exist).
    ReadOnly {
        #[serde(with = "super::os_path")]
        dst: PathBuf,
    },
    /// Bind a path onto itself, keeping its access: a mount point cannot be
    /// renamed or removed (EBUSY), so the protected paths below it stay put.
    Pin {
        #[serde(with = "super::os_path")]
        dst: PathBuf,
    },
    /// Replace a file with an empty read-only file (skipped if missing).
    HideFile {
        #[serde(with = "super::os_path")]
        dst: PathBuf,
    },
    /// Replace a directory with an empty read-only directory.
    HideDir {
        #[serde(with = "super::os_path")]
        dst: PathBuf,
    },
    /// Replace a file with a read-only copy whose secret values are
    /// replaced by `guard-redacted:<rule>`. The copy is written into the
    /// setup tmpfs (never onto the host); `content` holds no secret.
    Redacted {
        #[serde(with = "super::os_path")]
        dst: PathBuf,
        content: String,
        mode: u32,
        rules: Vec<String>,
    },
    Proc {
        #[serde(with = "super::os_path")]
        dst: PathBuf,
    },
    /// A new devpts instance (its own ptmx), so programs can open ptys
    /// without seeing the host's.
    Devpts {
        #[serde(with = "super::os_path")]
        dst: PathBuf,
    },
    Symlink {
        #[serde(with = "super::os_path")]
        target: PathBuf,
        #[serde(with = "super::os_path")]
        dst: PathBuf,
    },
    /// An overlay: `lower` (host) read-only underneath, writes go to `upper`.
    Overlay {
        #[serde(with = "super::os_path")]
        lower: PathBuf,
        #[serde(with = "super::os_path")]
        upper: PathBuf,
        #[serde(with = "super::os_path")]
        work: PathBuf,
        #[serde(with = "super::os_path")]
        dst: PathBuf,
    },
    /// A private copy of a host file, written into the home (the private
    /// tmpfs or the profile's persistent home) at every start: programs
    /// that rewrite their config by write-then-rename (`git config
    /// --global`, ssh adding a known host) work, changes last for the
    /// session, and the host file never changes. A file over
    /// [`COPY_MAX`] is bound read-only instead.
    Copy {
        #[serde(with = "super::os_path")]
        src: PathBuf,
        #[serde(with = "super::os_path")]
        dst: PathBuf,
    },
    /// A file with this content, generated inside the sandbox's setup
    /// tmpfs (never on the host) and bound read-only over `dst` (or, when
    /// `dst` is a symlink, over what it points to inside the sandbox).
    File {
        #[serde(with = "super::os_path")]
        dst: PathBuf,
        content: String,
    },
}

impl MountOp {
    pub fn dst(&self) -> &Path {
        match self {
            MountOp::Tmpfs { dst, .. }
            | MountOp::Bind { dst, .. }
            | MountOp::ReadOnly { dst }
            | MountOp::Pin { dst }
            | MountOp::HideFile { dst }
            | MountOp::HideDir { dst }
            | MountOp::Redacted { dst, .. }
            | MountOp::Proc { dst }
            | MountOp::Devpts { dst }
            | MountOp::Symlink { dst, .. }
            | MountOp::Overlay { dst, .. }
            | MountOp::Copy { dst, .. }
            | MountOp::File { dst, .. } => dst,
        }
    }

    /// Tie-break on the same destination: containers before content.
    fn rank(&self) -> u8 {
        match self {
            MountOp::Tmpfs { .. } => 0,
            MountOp::Bind { .. } | MountOp::Symlink { .. } | MountOp::Proc { .. } => 1,
            MountOp::Copy { .. } => 1,
            MountOp::Devpts { .. } | MountOp::Pin { .. } | MountOp::Overlay { .. } => 1,
            MountOp::ReadOnly { .. }
            | MountOp::HideFile { .. }
            | MountOp::HideDir { .. }
            | MountOp::File { .. }
            | MountOp::Redacted { .. } => 2,
        }
    }

    /// One line for `guard explain`.
    pub fn describe(&self) -> String {
        match self {
            MountOp::Tmpfs {
                dst,
                mode,
                ro_after,
            } => format!(
                "tmpfs    {} (mode {:o}{})",
                dst.display(),
                mode,
                if *ro_after {
                    ", read-only after setup"
                } else {
                    ""
                }
            ),
            MountOp::Bind {
                src,
                dst,
                writable,
                dev,
                optional,
                ..
            } => {
                let mut s = format!(
                    "bind {}  {}",
                    if *writable { "rw" } else { "ro" },
                    dst.display()
                );
                if src != dst {
                    s.push_str(&format!(" <- {}", src.display()));
                }
                if *dev {
                    s.push_str(" (device)");
                }
                if *optional {
                    s.push_str(" (if present)");
                }
                s
            }
            MountOp::ReadOnly { dst } => format!("readonly {}", dst.display()),
            MountOp::Pin { dst } => format!("pin      {}", dst.display()),
            MountOp::Overlay { dst, upper, .. } => format!(
                "overlay  {} (copy-on-write, changes kept in {})",
                dst.display(),
                upper.display()
            ),
            MountOp::HideFile { dst } => format!("hide     {} (empty file)", dst.display()),
            MountOp::HideDir { dst } => format!("hide     {} (empty dir)", dst.display()),
            MountOp::Redacted { dst, rules, .. } => {
                format!(
                    "redact   {} (read-only copy; {})",
                    dst.display(),
                    rules.join(", ")
                )
            }
            MountOp::Proc { dst } => format!("proc     {}", dst.display()),
            MountOp::Devpts { dst } => format!("devpts   {}", dst.display()),
            MountOp::Symlink { target, dst } => {
                format!("symlink  {} -> {}", dst.display(), target.display())
            }
            MountOp::File { dst, .. } => {
                format!("file     {} (generated, read-only)", dst.display())
            }
            MountOp::Copy { dst, .. } => {
                format!("copy     {} (private, host file unchanged)", dst.display())
            }
        }
    }
}

/// The largest file [`MountOp::Copy`] copies (config files are small; a
/// program granted as a file is not worth copying at every start).
pub const COPY_MAX: u64 = 1 << 20;

/// Device nodes the sandbox gets; everything else in /dev does not exist.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Files in /proc that reveal or change host state; masked or read-only.
const PROC_MASKED: &[&str] = &[
    "/proc/sysrq-trigger", // writing a letter reboots/crashes the host as uid 0
    "/proc/kcore",         // physical memory image
    "/proc/timer_list",    // host-wide timer and task addresses
    "/proc/keys",          // descriptions of the user's kernel keys
    "/proc/key-users",     // key quotas of host users
];
const PROC_READONLY: &[&str] = &[
    "/proc/sys", // sysctls: uid 0 owns them when guard runs as root
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
];

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn tmpfs(dst: impl Into<PathBuf>, mode: u32, ro_after: bool) -> MountOp {
    MountOp::Tmpfs {
        dst: dst.into(),
        mode,
        ro_after,
    }
}

/// The fixed skeleton: /dev, /proc, /sys.
fn skeleton() -> Vec<MountOp> {
    let mut ops = vec![tmpfs("/dev", 0o755, false)];
    for dev in DEVICES {
        let path = p("/dev").join(dev);
        ops.push(MountOp::Bind {
            src: path.clone(),
            dst: path,
            dir: false,
            writable: true,
            dev: true,
            optional: false,
        });
    }
    ops.push(MountOp::Devpts { dst: p("/dev/pts") });
    for (link, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            target: p(target),
            dst: p(link),
        });
    }
    ops.push(tmpfs("/dev/shm", 0o1777, false));
    ops.push(MountOp::Proc { dst: p("/proc") });
    for path in PROC_READONLY {
        ops.push(MountOp::ReadOnly { dst: p(path) });
    }
    for path in PROC_MASKED {
        ops.push(MountOp::HideFile { dst: p(path) });
    }
    // /sys: only CPU topology, which glibc (get_nprocs), libuv, OpenBLAS and
    // jemalloc read to size thread pools. Devices, firmware, cgroups, network
    // interfaces and kernel tunables stay out of sight.
    ops.push(tmpfs("/sys", 0o755, true));
    ops.push(MountOp::Bind {
        src: p("/sys/devices/system/cpu"),
        dst: p("/sys/devices/system/cpu"),
        dir: true,
        writable: false,
        dev: false,
        optional: true,
    });
    ops
}

pub fn mount_ops(policy: &Policy) -> Vec<MountOp> {
    let mut rest = vec![
        // Private scratch space; the host's /tmp stays invisible.
        tmpfs("/tmp", 0o1777, false),
        tmpfs("/var/tmp", 0o1777, false),
        // Names resolve through guard's DNS server only; localhost stays local.
        MountOp::File {
            dst: p("/etc/resolv.conf"),
            content: crate::net::resolv_conf(),
        },
        MountOp::File {
            dst: p("/etc/hosts"),
            content: crate::net::hosts_file(super::HOSTNAME),
        },
    ];
    rest.push(match &policy.home_source {
        // The profile's persistent home (the agent's own state).
        Some(src) => MountOp::Bind {
            src: src.clone(),
            dst: policy.home.clone(),
            dir: true,
            writable: true,
            dev: false,
            optional: false,
        },
        // $HOME exists but is empty and private, except granted paths.
        None => tmpfs(&policy.home, 0o700, false),
    });
    for c in &policy.caches {
        rest.push(MountOp::Overlay {
            lower: c.path.clone(),
            upper: c.upper.clone(),
            work: c.work.clone(),
            dst: c.path.clone(),
        });
    }
    let writable: Vec<&Path> = policy
        .grants
        .iter()
        .filter(|g| g.access == Access::ReadWrite && g.kind == GrantKind::Dir)
        .map(|g| g.path.as_path())
        .collect();
    // Directories mounted below the home: a file inside one of them is
    // part of that mount, not of the home.
    let home_mounts: Vec<&Path> = policy
        .grants
        .iter()
        .filter(|g| g.kind == GrantKind::Dir)
        .map(|g| g.path.as_path())
        .chain(policy.caches.iter().map(|c| c.path.as_path()))
        .filter(|d| d.starts_with(&policy.home))
        .collect();
    let in_home = |f: &Path| {
        f.starts_with(&policy.home) && !home_mounts.iter().any(|d| f.starts_with(d) && f != *d)
    };
    let mut pinned = std::collections::BTreeSet::new();
    for g in &policy.grants {
        // Ancestors between the root of the writable tree (already a mount)
        // and the path. A protected path: `mv .git .git.old` must fail, or
        // the agent could build a fresh .git/hooks next to the protected
        // one. A hidden or redacted one: `mv config config.old` (or
        // `.git/objects/ab`) would carry the real file away from the path
        // the next session hides, and that session would read it there.
        let root = match g.access {
            Access::Protected => Some(policy.project.as_path()),
            Access::Hidden | Access::Redacted => writable
                .iter()
                .filter(|w| g.path.starts_with(w) && g.path != **w)
                .max_by_key(|w| w.components().count())
                .copied(),
            _ => None,
        };
        if let Some(root) = root {
            let mut dir = g.path.parent();
            while let Some(d) = dir {
                if !d.starts_with(root) || d == root {
                    break;
                }
                pinned.insert(d.to_path_buf());
                dir = d.parent();
            }
        }
        let op = match (&g.kind, g.access) {
            (GrantKind::Symlink { target }, _) => MountOp::Symlink {
                target: target.clone(),
                dst: g.path.clone(),
            },
            (GrantKind::Dir, Access::Hidden) => MountOp::HideDir {
                dst: g.path.clone(),
            },
            (GrantKind::File, Access::Hidden) => MountOp::HideFile {
                dst: g.path.clone(),
            },
            (kind, Access::Protected) => match secret_view(policy, &g.path, kind) {
                Some(op) => op,
                None => MountOp::ReadOnly {
                    dst: g.path.clone(),
                },
            },
            (GrantKind::Dir, Access::Redacted) => MountOp::HideDir {
                dst: g.path.clone(),
            },
            (GrantKind::File, Access::Redacted) => redacted_file(policy, &g.path),
            // A file shown read-only in the home (~/.gitconfig): a bind
            // would be a mount point, which `git config --global` cannot
            // rename its new version over (EBUSY). The home is the
            // sandbox's own, so a private copy protects the host file as
            // well.
            (GrantKind::File, Access::ReadOnly) if in_home(&g.path) => MountOp::Copy {
                src: g.path.clone(),
                dst: g.path.clone(),
            },
            (kind, access) => MountOp::Bind {
                src: g.path.clone(),
                dst: g.path.clone(),
                dir: *kind == GrantKind::Dir,
                writable: access == Access::ReadWrite,
                dev: false,
                optional: false,
            },
        };
        rest.push(op);
    }
    rest.extend(pinned.into_iter().map(|dst| MountOp::Pin { dst }));
    rest.sort_by(|a, b| {
        a.dst()
            .components()
            .cmp(b.dst().components())
            .then(a.rank().cmp(&b.rank()))
    });
    let mut ops = skeleton();
    ops.extend(rest);
    ops
}

/// A redacted file: its copy travels in the plan (or, for a git object
/// file, lies in guard's cache); without one, hide (fail closed).
fn redacted_file(policy: &Policy, path: &Path) -> MountOp {
    if let Some(r) = policy.secrets.redactions.iter().find(|r| r.path == path) {
        return MountOp::Redacted {
            dst: path.to_path_buf(),
            content: r.content.clone(),
            mode: r.mode,
            rules: r.rules.clone(),
        };
    }
    let history = &policy.secrets.history.substitutes;
    match history.iter().find(|s| s.path == path) {
        Some(s) => MountOp::Bind {
            src: s.copy.clone(),
            dst: path.to_path_buf(),
            dir: false,
            writable: false,
            dev: false,
            optional: false,
        },
        None => MountOp::HideFile {
            dst: path.to_path_buf(),
        },
    }
}

/// How a protected path the secrets scan flagged is shown (a token in
/// `.git/config`): hidden or redacted, read-only either way.
fn secret_view(policy: &Policy, path: &Path, kind: &GrantKind) -> Option<MountOp> {
    let f = policy.secrets.files.iter().find(|f| f.path == path)?;
    Some(match (kind, f.action) {
        (GrantKind::Dir, _) => MountOp::HideDir {
            dst: path.to_path_buf(),
        },
        (_, crate::secrets::Action::Hide) => MountOp::HideFile {
            dst: path.to_path_buf(),
        },
        (_, crate::secrets::Action::Redact) => redacted_file(policy, path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Grant;

    fn policy(grants: Vec<Grant>) -> Policy {
        crate::policy::test_policy(grants, crate::profile::Isolation::Full)
    }

    fn grant(path: &str, access: Access, kind: GrantKind) -> Grant {
        Grant {
            path: p(path),
            access,
            kind,
            origin: "t".into(),
        }
    }

    #[test]
    fn exact_order_for_a_project_in_home() {
        let pol = policy(vec![
            grant(
                "/bin",
                Access::ReadOnly,
                GrantKind::Symlink {
                    target: p("usr/bin"),
                },
            ),
            grant("/etc", Access::ReadOnly, GrantKind::Dir),
            grant("/etc/shadow", Access::Hidden, GrantKind::File),
            grant("/home/u/.gitconfig", Access::ReadOnly, GrantKind::File),
            grant("/home/u/src/app", Access::ReadWrite, GrantKind::Dir),
            grant("/home/u/src/app/.env", Access::Hidden, GrantKind::File),
            grant("/usr", Access::ReadOnly, GrantKind::Dir),
        ]);
        let ops = mount_ops(&pol);
        let tail: Vec<String> = ops[skeleton().len()..]
            .iter()
            .map(|o| o.describe())
            .collect();
        assert_eq!(
            tail,
            [
                "symlink  /bin -> usr/bin",
                "bind ro  /etc",
                "file     /etc/hosts (generated, read-only)",
                "file     /etc/resolv.conf (generated, read-only)",
                "hide     /etc/shadow (empty file)",
                "tmpfs    /home/u (mode 700)",
                "copy     /home/u/.gitconfig (private, host file unchanged)",
                "bind rw  /home/u/src/app",
                "hide     /home/u/src/app/.env (empty file)",
                "tmpfs    /tmp (mode 1777)",
                "bind ro  /usr",
                "tmpfs    /var/tmp (mode 1777)",
            ]
        );
    }

    #[test]
    fn home_files_are_private_copies_unless_a_mount_below_the_home_holds_them() {
        let mut pol = policy(vec![
            grant("/etc/motd", Access::ReadOnly, GrantKind::File),
            grant("/home/u/.cargo/bin", Access::ReadOnly, GrantKind::Dir),
            grant("/home/u/.cargo/bin/tool", Access::ReadOnly, GrantKind::File),
            grant("/home/u/.gitconfig", Access::ReadOnly, GrantKind::File),
            grant(
                "/home/u/.ssh/known_hosts",
                Access::ReadOnly,
                GrantKind::File,
            ),
            grant("/home/u/src/app", Access::ReadWrite, GrantKind::Dir),
            grant("/home/u/src/app/ro.txt", Access::ReadOnly, GrantKind::File),
        ]);
        // The persistent home is copied into the same way.
        pol.home_source = Some(p("/data/homes/agent"));
        let shown: Vec<String> = mount_ops(&pol)
            .iter()
            .filter(|o| matches!(o, MountOp::Bind { .. } | MountOp::Copy { .. }))
            .map(|o| o.describe())
            .filter(|d| d.contains("/home/u/") || d.contains("/etc/motd"))
            .collect();
        assert_eq!(
            shown,
            [
                "bind ro  /etc/motd",
                "bind ro  /home/u/.cargo/bin",
                "bind ro  /home/u/.cargo/bin/tool",
                "copy     /home/u/.gitconfig (private, host file unchanged)",
                "copy     /home/u/.ssh/known_hosts (private, host file unchanged)",
                "bind rw  /home/u/src/app",
                "bind ro  /home/u/src/app/ro.txt",
            ]
        );
    }

    #[test]
    fn redacted_files_are_bound_copies_after_the_project() {
        let mut pol = policy(vec![
            grant("/home/u/src/app", Access::ReadWrite, GrantKind::Dir),
            grant("/home/u/src/app/a.sh", Access::Redacted, GrantKind::File),
            grant("/home/u/src/app/b.sh", Access::Redacted, GrantKind::File),
        ]);
        pol.secrets.redactions.push(crate::secrets::Redaction {
            path: p("/home/u/src/app/a.sh"),
            content: "x=guard-redacted:github-token\n".into(),
            mode: 0o555,
            rules: vec!["github-token".into()],
        });
        let ops = mount_ops(&pol);
        let tail: Vec<String> = ops[skeleton().len()..]
            .iter()
            .map(|o| o.describe())
            .collect();
        assert_eq!(
            tail,
            [
                "file     /etc/hosts (generated, read-only)",
                "file     /etc/resolv.conf (generated, read-only)",
                "tmpfs    /home/u (mode 700)",
                "bind rw  /home/u/src/app",
                "redact   /home/u/src/app/a.sh (read-only copy; github-token)",
                // No copy for b.sh: hidden rather than shown as it is.
                "hide     /home/u/src/app/b.sh (empty file)",
                "tmpfs    /tmp (mode 1777)",
                "tmpfs    /var/tmp (mode 1777)",
            ]
        );
    }

    #[test]
    fn project_under_tmp_comes_after_the_private_tmp() {
        let mut pol = policy(vec![grant("/tmp/p", Access::ReadWrite, GrantKind::Dir)]);
        pol.project = p("/tmp/p");
        let ops = mount_ops(&pol);
        let pos = |d: &str| ops.iter().position(|o| o.dst() == Path::new(d)).unwrap();
        assert!(pos("/tmp") < pos("/tmp/p"));
    }

    #[test]
    fn protected_paths_pin_their_ancestors() {
        let pol = policy(vec![
            grant("/home/u/src/app", Access::ReadWrite, GrantKind::Dir),
            grant(
                "/home/u/src/app/.git/config",
                Access::Protected,
                GrantKind::File,
            ),
            grant(
                "/home/u/src/app/.git/hooks",
                Access::Protected,
                GrantKind::Dir,
            ),
        ]);
        let ops = mount_ops(&pol);
        let tail: Vec<String> = ops[skeleton().len()..]
            .iter()
            .map(|o| o.describe())
            .collect();
        assert_eq!(
            tail,
            [
                "file     /etc/hosts (generated, read-only)",
                "file     /etc/resolv.conf (generated, read-only)",
                "tmpfs    /home/u (mode 700)",
                "bind rw  /home/u/src/app",
                "pin      /home/u/src/app/.git",
                "readonly /home/u/src/app/.git/config",
                "readonly /home/u/src/app/.git/hooks",
                "tmpfs    /tmp (mode 1777)",
                "tmpfs    /var/tmp (mode 1777)",
            ]
        );
    }

    #[test]
    fn hidden_paths_in_a_writable_tree_pin_their_ancestors() {
        let pol = policy(vec![
            grant("/etc", Access::ReadOnly, GrantKind::Dir),
            grant("/etc/ssl/private", Access::Hidden, GrantKind::Dir),
            grant("/home/u/src/app", Access::ReadWrite, GrantKind::Dir),
            grant("/home/u/src/app/.env", Access::Hidden, GrantKind::File),
            grant("/home/u/src/app/a/b/key", Access::Hidden, GrantKind::File),
        ]);
        let pins: Vec<String> = mount_ops(&pol)
            .iter()
            .filter(|o| matches!(o, MountOp::Pin { .. }))
            .map(|o| o.dst().display().to_string())
            .collect();
        // Nothing above the writable tree, nothing in a read-only one.
        assert_eq!(pins, ["/home/u/src/app/a", "/home/u/src/app/a/b"]);
    }

    #[test]
    fn skeleton_order() {
        let d: Vec<String> = skeleton().iter().map(|o| o.describe()).collect();
        assert_eq!(d[0], "tmpfs    /dev (mode 755)");
        assert_eq!(d[1], "bind rw  /dev/null (device)");
        assert!(d.contains(&"devpts   /dev/pts".to_string()));
        let proc_at = d.iter().position(|l| l == "proc     /proc").unwrap();
        let ro_sys = d.iter().position(|l| l == "readonly /proc/sys").unwrap();
        assert!(proc_at < ro_sys);
        assert_eq!(
            d.last().unwrap(),
            "bind ro  /sys/devices/system/cpu (if present)"
        );
    }
}
