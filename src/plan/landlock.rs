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
    pub path: PathBuf,
    pub access: LandlockAccess,
    pub dir: bool,
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
            Access::ReadWrite => ReadWrite,
            // Hidden paths are empty mounts, protected ones read-only mounts
            // inside a granted tree: neither needs a rule of its own.
            Access::Hidden | Access::Protected => continue,
        };
        out.push(rule(&g.path, access, dir));
    }
    out
}
