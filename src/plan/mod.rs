//! The sandbox plan: pure data built from a [`Policy`]. The launcher applies
//! it step by step; `guard explain` prints it; unit tests assert it exactly.

pub mod landlock;
pub mod mounts;
pub(crate) mod os_path;
pub mod seccomp;

use crate::policy::Policy;
use crate::profile::Isolation;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use self::landlock::{LandlockAccess, LandlockRule};
pub use mounts::MountOp;

/// Everything the sandbox's setup process needs; sent to it as JSON over the
/// control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub uid: u32,
    pub gid: u32,
    pub hostname: String,
    pub mounts: Vec<MountOp>,
    pub landlock: Vec<LandlockRule>,
    /// Landlock ABI the policy requires (scoping of signals and abstract
    /// sockets needs 6); below it the run is refused unless degraded runs
    /// are allowed.
    pub landlock_min_abi: i32,
    pub allow_ptrace: bool,
    /// The compiled seccomp program (see `seccomp::table`).
    pub seccomp: Vec<seccomp::Insn>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    #[serde(with = "os_path")]
    pub cwd: PathBuf,
    pub cap_last_cap: u32,
    pub allow_degraded: bool,
    pub max_processes: u64,
    /// Per-user kernel limits for the sandbox's user namespace
    /// (`/proc/sys/user/NAME`, value), set by pid 1; see
    /// `host::sandbox_user_limits`. Empty at the `landlock` level (no
    /// namespace of its own to set them on).
    pub user_limits: Vec<(String, u64)>,
    /// Listeners pid 1 creates inside the network namespace and hands to
    /// the supervisor (empty with --no-network, and at the `landlock` level,
    /// where the supervisor listens on the host's loopback itself).
    pub listeners: Vec<crate::net::ListenerSpec>,
    pub isolation: Isolation,
    /// At the `landlock` level: the only TCP ports the command may connect
    /// to (the supervisor's proxy). Set when the supervisor has bound them.
    pub connect_ports: Vec<u16>,
}

/// The sandbox's host name (also in its generated /etc/hosts).
pub const HOSTNAME: &str = "guard";

/// Landlock ABI whose features the policy relies on: 6 adds scoping of
/// abstract unix sockets and signals.
pub const LANDLOCK_REQUIRED_ABI: i32 = 6;

/// `list` reads a directory on the host (only the `landlock` level needs
/// it, see `landlock::host_rules`); `tty` is the command's terminal there.
pub fn build(
    policy: &Policy,
    cap_last_cap: u32,
    tty: Option<&std::path::Path>,
    list: &dyn Fn(&std::path::Path) -> Vec<landlock::DirEntry>,
) -> crate::Result<Plan> {
    let seccomp = seccomp::compile(policy.allow_ptrace, policy.isolation).map_err(|e| {
        crate::Error::Unsupported {
            what: "seccomp".into(),
            cause: e,
            hint: Some("guard supports x86_64, aarch64 and riscv64".into()),
        }
    })?;
    Ok(Plan {
        uid: policy.uid,
        gid: policy.gid,
        hostname: HOSTNAME.into(),
        mounts: match policy.isolation {
            Isolation::Full => mounts::mount_ops(policy),
            Isolation::Landlock => Vec::new(),
        },
        landlock: match (&policy.host_dirs, policy.isolation) {
            (Some(dirs), Isolation::Landlock) => {
                self::landlock::host_rules(policy, dirs, tty, list)
            }
            _ => self::landlock::rules(policy),
        },
        landlock_min_abi: LANDLOCK_REQUIRED_ABI,
        allow_ptrace: policy.allow_ptrace,
        seccomp: seccomp.iter().map(seccomp::Insn::from).collect(),
        argv: policy.command.clone(),
        env: policy.env.clone(),
        cwd: policy.cwd.clone(),
        cap_last_cap,
        allow_degraded: policy.allow_degraded,
        max_processes: policy.max_processes,
        user_limits: Vec::new(),
        listeners: match policy.isolation {
            Isolation::Full => crate::net::listeners(&policy.network),
            Isolation::Landlock => Vec::new(),
        },
        isolation: policy.isolation,
        connect_ports: Vec::new(),
    })
}
