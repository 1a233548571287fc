//! Lock the sandbox's pid 1 (and so everything it starts): capabilities,
//! no_new_privs, stray descriptors, Landlock, seccomp — in that order.
//!
//! Threat model: inside the user namespace pid 1 holds every capability
//! over the sandbox's own namespaces; the command must hold none, even when
//! guard runs as root (uid 0 inside is the host's uid 0 for file access, so
//! exec must not regain capabilities: securebits). Landlock restricts file
//! access on top of the mount view, so a mistake in the view is not enough to
//! reach a file. Seccomp comes last so the setup itself is not filtered.

use super::channel::Report;
use super::sys;
use crate::error::{Error, Result};
use crate::plan::{LandlockAccess, LandlockRule, Plan};
use crate::profile::Isolation;
use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use std::os::fd::OwnedFd;

// securebits (linux/securebits.h): root gains no capabilities on exec or
// setuid, and nothing can undo that.
const SECBIT_NOROOT: u64 = 1 << 0;
const SECBIT_NOROOT_LOCKED: u64 = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: u64 = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: u64 = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: u64 = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: u64 = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: u64 = 1 << 7;

/// Drop every capability for good: bounding set, ambient set, securebits,
/// then the effective/permitted/inheritable sets.
pub fn drop_capabilities(cap_last_cap: u32) -> Result<()> {
    for cap in 0..=cap_last_cap {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
            Ok(_) => {}
            // A capability this kernel does not know: nothing to drop.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!("drop capability {cap} from the bounding set"),
                    e,
                ));
            }
        }
    }
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )
    .map_err(|e| Error::sys("clear ambient capabilities", e))?;
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    sys::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong)
        .map_err(|e| Error::sys("set securebits", e))?;
    sys::capset_zero().map_err(|e| Error::sys("clear capability sets", e))
}

/// Whether this process holds any capability (permitted or effective).
/// Unreadable status counts as holding some, so the drop is attempted.
pub fn holds_capabilities() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .filter(|l| {
            l.starts_with("CapPrm:") || l.starts_with("CapEff:") || l.starts_with("CapAmb:")
        })
        .any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_none_or(|v| u64::from_str_radix(v, 16) != Ok(0))
        })
}

pub fn limit_processes(max: u64) -> Result<()> {
    let lim = nix::sys::resource::Resource::RLIMIT_NPROC;
    nix::sys::resource::setrlimit(lim, max, max).map_err(|e| match e {
        // Above the hard limit this user may raise to.
        nix::errno::Errno::EPERM => Error::Sandbox {
            msg: format!("failed to limit processes to {max}: above this user's hard limit"),
            hint: Some(
                "lower `limits.processes` in the profile (`ulimit -Hu` shows the hard limit)"
                    .into(),
            ),
            code: 125,
        },
        e => Error::sys(format!("limit processes to {max}"), e),
    })
}

/// No core dumps for the command, soft and hard limit alike (without
/// capabilities it cannot raise them again). A crash hands the process's
/// memory to the host: a file the kernel writes with a plain
/// `core_pattern`, or, with a pipe (systemd-coredump, apport), to a helper
/// that runs as root in the host's namespaces and parses it. The kernel
/// starts a pipe helper whatever the limit, but passes it on, and those
/// helpers store nothing when it is 0.
pub fn no_core_dumps() -> Result<()> {
    let lim = nix::sys::resource::Resource::RLIMIT_CORE;
    nix::sys::resource::setrlimit(lim, 0, 0).map_err(|e| Error::sys("disable core dumps", e))
}

/// Half of the user's queued signals (`sigqueue`, POSIX timers) and POSIX
/// message queue bytes for the sandbox. The kernel charges both to the
/// user outside too, whatever namespace the sandbox is in: a sandbox that
/// queued all of them left the user's programs unable to queue a signal or
/// create a timer (EAGAIN) while it ran. Soft and hard alike: without
/// capabilities the sandbox cannot raise them again. An unlimited one is
/// left as it is (nothing to exhaust).
pub fn share_user_budgets() -> Result<()> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
    for (lim, what) in [
        (Resource::RLIMIT_SIGPENDING, "queued signals"),
        (Resource::RLIMIT_MSGQUEUE, "message queue bytes"),
    ] {
        let (soft, hard) =
            getrlimit(lim).map_err(|e| Error::sys(format!("read the limit of {what}"), e))?;
        let max = soft.min(hard);
        if max == RLIM_INFINITY {
            continue;
        }
        setrlimit(lim, max / 2, max / 2)
            .map_err(|e| Error::sys(format!("limit {what} to {}", max / 2), e))?;
    }
    Ok(())
}

pub fn no_new_privs() -> Result<()> {
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
        .map(drop)
        .map_err(|e| Error::sys("set no_new_privs", e))
}

fn access_flags(access: LandlockAccess, dir: bool, abi: ABI) -> landlock::BitFlags<AccessFs> {
    use AccessFs::*;
    let all = AccessFs::from_all(abi);
    let flags = match access {
        LandlockAccess::ListDir => ReadDir.into(),
        LandlockAccess::ReadExec => AccessFs::from_read(abi),
        LandlockAccess::ReadOnlyData => ReadFile | ReadDir,
        LandlockAccess::ReadWrite => all,
        LandlockAccess::Device => (ReadFile | ReadDir | WriteFile | Truncate | IoctlDev) & all,
    };
    if dir {
        flags
    } else {
        flags & AccessFs::from_file(abi)
    }
}

/// Apply Landlock. Returns a degradation notice when the kernel lacks what
/// the policy relies on and the caller allowed degraded runs.
pub fn landlock(plan: &Plan, kernel_abi: i32) -> Result<Option<Report>> {
    if kernel_abi < plan.landlock_min_abi {
        let cause = if kernel_abi == 0 {
            "this kernel has no Landlock (or it is not enabled at boot)".to_string()
        } else {
            format!(
                "this kernel offers Landlock ABI {kernel_abi}; guard needs {} (scoping of signals and abstract unix sockets, Linux 6.12+)",
                plan.landlock_min_abi
            )
        };
        // At the `landlock` level nothing else stands in for Landlock.
        if !plan.allow_degraded || plan.isolation == Isolation::Landlock {
            return Err(Error::Unsupported {
                what: "Landlock".into(),
                cause,
                hint: Some(
                    "upgrade to Linux 6.12 or later (with `lsm=...,landlock` on the kernel command line), \
                     or accept weaker isolation with --allow-degraded (namespaces still separate signals \
                     and abstract sockets)"
                        .into(),
                ),
            });
        }
        if kernel_abi == 0 {
            return Ok(Some(Report::Degraded {
                msg: format!(
                    "Landlock not applied: {cause}; the mount view and seccomp still apply"
                ),
            }));
        }
    }
    let abi = ABI::from(kernel_abi);
    let err = |e: landlock::RulesetError| {
        Error::sys("apply Landlock", std::io::Error::other(e.to_string()))
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?;
    let scoped = kernel_abi >= 6;
    if scoped {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(err)?;
    }
    let host = plan.isolation == Isolation::Landlock;
    if host {
        // Without a network namespace, Landlock's TCP rules are the network
        // boundary: connect only to the proxy's ports, bind nothing.
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(err)?;
    }
    let mut created = ruleset.create().map_err(err)?;
    for LandlockRule {
        path,
        access,
        dir,
        listed,
    } in &plan.landlock
    {
        let flags = access_flags(*access, *dir, abi);
        if host {
            // The host's tree may have changed since the plan: a path that
            // vanished needs no rule, and a path that became a symlink must
            // not lend its grant to wherever it now points.
            match open_no_follow(path, *listed) {
                Ok(Some(fd)) => {
                    created = created.add_rule(PathBeneath::new(fd, flags)).map_err(err)?;
                }
                Ok(None) => {}
                Err(e) => return Err(Error::io("open for Landlock", path, e)),
            }
            continue;
        }
        // A file the plan found may have been removed from the host since
        // (another program deleting a file in /etc): it needs no rule, as at
        // the `landlock` level. The sandbox failed to start for it.
        let fd = match nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => continue,
            Err(e) => {
                return Err(Error::sys(
                    format!("open {} for Landlock", path.display()),
                    std::io::Error::from(e),
                ));
            }
        };
        created = created.add_rule(PathBeneath::new(fd, flags)).map_err(err)?;
    }
    if !host {
        created = std_streams(created, abi)?;
    }
    for port in &plan.connect_ports {
        created = created
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(err)?;
    }
    let status = created.restrict_self().map_err(err)?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(Error::Unsupported {
            what: "Landlock".into(),
            cause: format!("the ruleset was only {:?}", status.ruleset),
            hint: Some("upgrade the kernel, or run with --allow-degraded".into()),
        });
    }
    if !scoped {
        return Ok(Some(Report::Degraded {
            msg: format!(
                "Landlock ABI {kernel_abi}: signals and abstract unix sockets are not scoped by Landlock \
                 (the pid and network namespaces still separate them)"
            ),
        }));
    }
    Ok(None)
}

/// Rules for what the command's standard streams are open on: the user's
/// terminal (read and write) and a file given as stdin (read). Scripts
/// open them again by name (`echo x > /dev/stderr`, `tee /dev/stdout`,
/// `cat /dev/stdin`: each a reopen through /proc/self/fd), and the
/// terminal is a node of the host's /dev/pts, which no path in the view
/// reaches. Nothing beyond the descriptors the command holds anyway.
fn std_streams(
    mut created: landlock::RulesetCreated,
    abi: ABI,
) -> Result<landlock::RulesetCreated> {
    use std::os::fd::BorrowedFd;
    for fd in 0..=2 {
        // SAFETY: fds 0-2 are open (Rust's runtime opens /dev/null on any
        // that was closed at start) and stay open for the life of this
        // process; the borrow ends with this iteration.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(st) = nix::sys::stat::fstat(borrowed) else {
            continue;
        };
        let access = match st.st_mode & libc::S_IFMT {
            // SAFETY: isatty only queries the descriptor.
            libc::S_IFCHR if unsafe { libc::isatty(fd) } == 1 => LandlockAccess::Device,
            libc::S_IFREG if fd == 0 => LandlockAccess::ReadOnlyData,
            _ => continue,
        };
        created = created
            .add_rule(PathBeneath::new(borrowed, access_flags(access, false, abi)))
            .map_err(|e| Error::sys("apply Landlock", std::io::Error::other(e.to_string())))?;
    }
    Ok(created)
}

/// The command's own Landlock domain at the `landlock` level, nested in the
/// setup process's: it handles no access (the setup's rules go on
/// applying) and only scopes signals and abstract unix sockets to itself.
/// In the setup process's own domain, scoping would let the command
/// SIGKILL or SIGSTOP the setup process (directly, or by SIGIO through
/// F_SETOWN): the subreaper that ends its leftovers, which would then
/// outlive the session and the restore of protected files. The ruleset is
/// created here; the child applies it between fork and exec.
pub fn command_domain(kernel_abi: i32) -> Result<landlock::RulesetCreated> {
    let abi = ABI::from(kernel_abi);
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .scope(Scope::from_all(abi))
        .and_then(|r| r.create())
        .map_err(|e| {
            Error::sys(
                "create the command's Landlock domain",
                std::io::Error::other(e.to_string()),
            )
        })
}

/// O_PATH descriptor of `path` itself; `None` if it is gone or a symlink.
/// The last `listed` components (see `LandlockRule::listed`) are opened
/// one at a time, each without following a link: `None` too if one of them
/// is no longer a directory on the way down.
fn open_no_follow(path: &std::path::Path, listed: usize) -> std::io::Result<Option<OwnedFd>> {
    use nix::fcntl::{OFlag, open, openat};
    use nix::sys::stat::{Mode, SFlag, fstat};
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let comps: Vec<_> = path.components().collect();
    let (policy, entries) = comps.split_at(comps.len().saturating_sub(listed));
    let gone = |e| {
        matches!(
            e,
            nix::Error::ENOENT | nix::Error::ENOTDIR | nix::Error::ELOOP
        )
    };
    let mut fd = match open(
        &policy.iter().collect::<std::path::PathBuf>(),
        flags,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) if gone(e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    for (i, c) in entries.iter().enumerate() {
        // On the way down, only a directory (not a link to one) will do.
        let how = if i + 1 < entries.len() {
            flags | OFlag::O_DIRECTORY
        } else {
            flags
        };
        fd = match openat(&fd, c.as_os_str(), how, Mode::empty()) {
            Ok(next) => next,
            Err(e) if gone(e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
    }
    let st = fstat(&fd)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
        return Ok(None);
    }
    Ok(Some(fd))
}

/// Load the seccomp filter. Last step before exec.
pub fn seccomp(program: &[crate::plan::seccomp::Insn]) -> Result<()> {
    let prog: Vec<seccompiler::sock_filter> = program.iter().map(|i| i.to_sock_filter()).collect();
    seccompiler::apply_filter(&prog).map_err(|e| {
        Error::sys(
            "load the seccomp filter",
            std::io::Error::other(e.to_string()),
        )
    })
}
