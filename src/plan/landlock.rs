//! Policy → Landlock rules, applied on top of the mount view.
//!
//! The mount view decides what exists; Landlock decides what may be touched,
//! and holds even if a mount were undone. Read-only grants get read and
//! execute; read-write grants get everything; device nodes get read, write
//! and ioctl; the root directory may only be listed; all else gets nothing.

use crate::policy::{Access, GrantKind, Policy};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LandlockAccess {
    /// List the directory (and those below it); no file content.
    ListDir,
    /// Read files, list directories, execute.
    ReadExec,
    /// Read files and list directories (no execute): /proc, /sys.
    ReadOnlyData,
    /// Everything: create, write, remove, rename, execute.
    ReadWrite,
    /// Read, write, truncate and ioctl on device nodes.
    Device,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockRule {
    #[serde(with = "super::os_path")]
    pub path: PathBuf,
    pub access: LandlockAccess,
    pub dir: bool,
    /// How many of the last components of `path` are directory entries
    /// the plan found by listing (at the `landlock` level), none of them a
    /// link then: they are opened one at a time without following links,
    /// so a link put there since (by a process writing in that tree, such
    /// as a sandbox running at the same time) cannot carry the rule
    /// elsewhere. The components before them are policy paths.
    #[serde(default)]
    pub listed: usize,
}

impl LandlockRule {
    pub fn describe(&self) -> String {
        let a = match self.access {
            LandlockAccess::ListDir => "list",
            LandlockAccess::ReadExec => "read+exec",
            LandlockAccess::ReadOnlyData => "read",
            LandlockAccess::ReadWrite => "read+write+exec",
            LandlockAccess::Device => "device read+write+ioctl",
        };
        format!("{:<24} {}", a, self.path.display())
    }
}

fn rule(path: impl Into<PathBuf>, access: LandlockAccess, dir: bool) -> LandlockRule {
    LandlockRule {
        path: path.into(),
        access,
        dir,
        listed: 0,
    }
}

pub fn rules(policy: &Policy) -> Vec<LandlockRule> {
    use LandlockAccess::*;
    // Listing / only shows the skeleton guard built; contents stay governed
    // by the rules below. Without it `ls /` and `find /` fail confusingly.
    let mut out = vec![rule("/", ListDir, true)];
    for dev in super::mounts::DEVICES {
        out.push(rule(PathBuf::from("/dev").join(dev), Device, false));
    }
    out.push(rule("/dev/pts", Device, true));
    out.push(rule("/dev/shm", ReadWrite, true));
    // /proc: read-only. Writes there (sysctls, sysrq) are host-wide knobs.
    out.push(rule("/proc", ReadOnlyData, true));
    out.push(rule("/sys", ReadOnlyData, true));
    out.push(rule("/tmp", ReadWrite, true));
    out.push(rule("/var/tmp", ReadWrite, true));
    out.push(rule(&policy.home, ReadWrite, true));
    for c in &policy.caches {
        out.push(rule(&c.path, ReadWrite, true));
    }
    for g in &policy.grants {
        let dir = match g.kind {
            GrantKind::Dir => true,
            GrantKind::File => false,
            // The symlink's target carries its own grant.
            GrantKind::Symlink { .. } => continue,
        };
        let access = match g.access {
            Access::ReadOnly => ReadExec,
            // The copy is read-only by its mount; it may lie outside every
            // other rule (a granted file outside home and project).
            Access::Redacted => ReadExec,
            Access::ReadWrite => ReadWrite,
            // Hidden paths are empty mounts, protected ones read-only mounts
            // inside a granted tree: neither needs a rule of its own.
            Access::Hidden | Access::Protected => continue,
        };
        out.push(rule(&g.path, access, dir));
    }
    out
}

/// One entry of a directory, as the `landlock` level's rule builder sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub path: PathBuf,
    pub dir: bool,
}

/// Rules for the `landlock` isolation level, where Landlock alone stands
/// between the command and the host's file tree (no mount view).
///
/// Landlock can only allow, and an allowed directory covers everything
/// beneath it. So a grant with something narrower inside it (a hidden or
/// redacted secret, a read-only path in a writable tree) is split: the
/// directories on the way down may only be listed, and every sibling
/// beside the way gets the grant's access. The price, reported to the
/// user: nothing new can be created in those directories. Symlinks get no
/// rule (following one lands on a path with rules of its own).
///
/// Protected paths are not cut out: git must create and rename files in
/// `.git`, which Landlock cannot allow without also allowing `.git/config`;
/// guard restores them after the run instead.
///
/// `list` reads a directory (host facts, passed in to keep this pure).
pub fn host_rules(
    policy: &Policy,
    dirs: &crate::policy::HostDirs,
    tty: Option<&std::path::Path>,
    list: &dyn Fn(&std::path::Path) -> Vec<DirEntry>,
) -> Vec<LandlockRule> {
    use LandlockAccess::*;
    let mut allow: Vec<LandlockRule> = Vec::new();
    // Cuts: paths whose access differs from the grant around them. `None`
    // means no access at all.
    let mut cuts: Vec<(PathBuf, Option<LandlockRule>)> = Vec::new();
    for g in &policy.grants {
        let dir = match g.kind {
            GrantKind::Dir => true,
            GrantKind::File => false,
            GrantKind::Symlink { .. } => continue,
        };
        match g.access {
            Access::ReadOnly => allow.push(rule(&g.path, ReadExec, dir)),
            Access::ReadWrite => allow.push(rule(&g.path, ReadWrite, dir)),
            // No redacted copy can stand in without a mount: hide it.
            Access::Hidden | Access::Redacted => cuts.push((g.path.clone(), None)),
            // A protected file that holds a secret (a token in
            // `.git/config`) is cut out like any other secret.
            Access::Protected if policy.secrets.files.iter().any(|f| f.path == g.path) => {
                cuts.push((g.path.clone(), None))
            }
            Access::Protected => {}
        }
    }
    // Caches are shown as they are, read-only: with no overlay, a writable
    // cache would let the command plant code a later build outside runs.
    for c in &policy.caches {
        allow.push(rule(&c.path, ReadExec, true));
    }
    // A narrower grant inside a wider one is a cut of the wider one.
    for inner in &allow {
        let inside_wider = allow.iter().any(|outer| {
            outer.dir
                && inner.path != outer.path
                && inner.path.starts_with(&outer.path)
                && outer.access == ReadWrite
                && inner.access != ReadWrite
        });
        if inside_wider {
            cuts.push((inner.path.clone(), Some(inner.clone())));
        }
    }
    let mut out = Vec::new();
    for a in &allow {
        if cuts.iter().any(|(p, _)| p == &a.path) {
            continue; // emitted by the grant it is cut from (or nowhere)
        }
        split(a, 0, &cuts, list, &mut out);
    }
    out.push(rule(&dirs.home, ReadWrite, true));
    out.push(rule(&dirs.tmp, ReadWrite, true));
    for dev in super::mounts::DEVICES {
        out.push(rule(PathBuf::from("/dev").join(dev), Device, false));
    }
    // New pseudo-terminals come from /dev/ptmx; the host's /dev/pts holds
    // the user's other terminals, of which only our own is granted.
    out.push(rule("/dev/ptmx", Device, false));
    if let Some(t) = tty {
        out.push(rule(t, Device, false));
    }
    // /proc is the host's: read-only (process memory and environment of
    // processes outside the sandbox stay closed by Landlock's ptrace scope).
    out.push(rule("/proc", ReadOnlyData, true));
    out.push(rule("/sys/devices/system/cpu", ReadOnlyData, true));
    out
}

/// Emit `a` (found `listed` levels down by listing), split around the
/// cuts strictly beneath it.
fn split(
    a: &LandlockRule,
    listed: usize,
    cuts: &[(PathBuf, Option<LandlockRule>)],
    list: &dyn Fn(&std::path::Path) -> Vec<DirEntry>,
    out: &mut Vec<LandlockRule>,
) {
    let beneath = |p: &std::path::Path| cuts.iter().any(|(c, _)| c != p && c.starts_with(p));
    if !a.dir || !beneath(&a.path) {
        out.push(LandlockRule {
            listed,
            ..a.clone()
        });
        return;
    }
    out.push(LandlockRule {
        listed,
        ..rule(&a.path, LandlockAccess::ListDir, true)
    });
    for e in list(&a.path) {
        match cuts.iter().find(|(c, _)| c == &e.path) {
            // A grant of its own: a policy path.
            Some((_, Some(keep))) => split(keep, 0, cuts, list, out),
            Some((_, None)) => {}
            None => split(&rule(&e.path, a.access, e.dir), listed + 1, cuts, list, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Grant, HostDirs};
    use std::path::Path;

    fn grant(path: &str, access: Access, kind: GrantKind) -> Grant {
        Grant {
            path: path.into(),
            access,
            kind,
            origin: "t".into(),
        }
    }

    fn policy(grants: Vec<Grant>) -> Policy {
        let mut p = crate::policy::test_policy(grants, crate::profile::Isolation::Landlock);
        p.home = "/home/u".into();
        p.project = "/p".into();
        p.cwd = "/p".into();
        p
    }

    /// A fake tree: /p holds .env, README, src/ (with a secret and a
    /// module) and a symlink; /p/docs holds one file.
    fn list(dir: &Path) -> Vec<DirEntry> {
        let e = |p: &str, dir: bool| DirEntry {
            path: p.into(),
            dir,
        };
        match dir.to_str() {
            Some("/p") => vec![
                e("/p/.env", false),
                e("/p/README", false),
                e("/p/src", true),
                e("/p/docs", true),
            ],
            Some("/p/src") => vec![e("/p/src/settings.py", false), e("/p/src/main.py", false)],
            _ => vec![],
        }
    }

    #[test]
    fn grants_are_split_around_secrets_and_narrower_grants() {
        let pol = policy(vec![
            grant("/p", Access::ReadWrite, GrantKind::Dir),
            grant("/p/.env", Access::Hidden, GrantKind::File),
            grant("/p/src/settings.py", Access::Redacted, GrantKind::File),
            grant("/p/docs", Access::ReadOnly, GrantKind::Dir),
            grant("/p/.git/config", Access::Protected, GrantKind::File),
            grant("/usr", Access::ReadOnly, GrantKind::Dir),
            grant(
                "/bin",
                Access::ReadOnly,
                GrantKind::Symlink {
                    target: "usr/bin".into(),
                },
            ),
        ]);
        let dirs = HostDirs {
            session: "/s".into(),
            home: "/s/home".into(),
            tmp: "/s/tmp".into(),
        };
        let rules = host_rules(&pol, &dirs, None, &list);
        let got: Vec<String> = rules.iter().map(|r| r.describe()).collect();
        let has = |access: LandlockAccess, path: &str| {
            rules
                .iter()
                .any(|r| r.access == access && r.path == Path::new(path))
        };
        use LandlockAccess::*;
        assert!(has(ListDir, "/p"), "{got:#?}");
        assert!(has(ReadWrite, "/p/README"), "{got:#?}");
        assert!(has(ListDir, "/p/src"), "{got:#?}");
        assert!(has(ReadWrite, "/p/src/main.py"), "{got:#?}");
        assert!(has(ReadExec, "/p/docs"), "{got:#?}");
        assert!(has(ReadExec, "/usr"), "{got:#?}");
        assert!(has(ReadWrite, "/s/home") && has(ReadWrite, "/s/tmp"));
        // Nothing grants the secrets, the whole project, or the symlink.
        for never in ["/p/.env", "/p/src/settings.py", "/bin"] {
            assert!(
                !rules.iter().any(|r| r.path == Path::new(never)),
                "{never}: {got:#?}"
            );
        }
        assert!(!has(ReadWrite, "/p") && !has(ReadWrite, "/p/src") && !has(ReadWrite, "/p/docs"));
        // Entries found by listing are marked, to be opened without
        // following links; grants are policy paths.
        let listed = |path: &str| {
            rules
                .iter()
                .find(|r| r.path == Path::new(path))
                .map(|r| r.listed)
        };
        assert_eq!(listed("/p"), Some(0));
        assert_eq!(listed("/p/README"), Some(1));
        assert_eq!(listed("/p/src"), Some(1));
        assert_eq!(listed("/p/src/main.py"), Some(2));
        assert_eq!(listed("/p/docs"), Some(0));
        assert_eq!(listed("/usr"), Some(0));
        // The host's /tmp, /dev/shm and /dev/pts are not granted.
        for never in ["/tmp", "/dev/shm", "/dev/pts"] {
            assert!(!rules.iter().any(|r| r.path == Path::new(never)), "{never}");
        }
    }
}
