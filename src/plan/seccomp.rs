//! The seccomp table: which system calls the sandbox may not make, and why.
//!
//! Threat model: a process inside tries to undo the mount view (mount,
//! pivot_root, setns, new namespaces), reach kernel attack surface that
//! unprivileged code rarely needs (io_uring, bpf, perf, userfaultfd,
//! keyrings, modules, kexec), inspect or steer other processes (ptrace,
//! process_vm_*), inject keystrokes into the user's terminal (TIOCSTI,
//! TIOCLINUX: guard keeps the caller's terminal, no setsid) or change it
//! beyond the session (TIOCSETD, TIOCEXCL, TCXONC, a Linux console's
//! keymaps and modes). Calls made
//! through another ABI (x32, or int 0x80 on x86_64) would bypass a table
//! keyed by x86_64 numbers; the filter refuses them before the table.
//!
//! The table is data; [`compile`] turns it into BPF with seccompiler.

use crate::profile::Isolation;
use serde::{Deserialize, Serialize};

/// One BPF instruction, in a form that crosses the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insn(pub u16, pub u8, pub u8, pub u32);

impl From<&seccompiler::sock_filter> for Insn {
    fn from(f: &seccompiler::sock_filter) -> Self {
        Insn(f.code, f.jt, f.jf, f.k)
    }
}

impl Insn {
    pub fn to_sock_filter(self) -> seccompiler::sock_filter {
        seccompiler::sock_filter {
            code: self.0,
            jt: self.1,
            jf: self.2,
            k: self.3,
        }
    }
}
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Match {
    /// Every call.
    Always,
    /// ioctl whose request (low 32 bits, as the kernel reads it) equals this.
    IoctlRequest(u64),
    /// ioctl whose request (low 32 bits) is one of the 256 old-style
    /// numbers of this type byte (`0x4B00..=0x4BFF` for `b'K'`).
    IoctlType(u8),
    /// Argument 0 has any of these bits set (namespace flags).
    Arg0AnyBit(u64),
    /// Argument `.0` (32-bit) has any of the bits `.1` set (mode bits).
    ArgAnyBit(u8, u64),
    /// Argument 0 (32-bit) is none of these values.
    Arg0NotIn(&'static [u64]),
    /// socket(family, type) with this family and this type (low 4 bits).
    SocketFamilyType(u64, u64),
    /// socket(family, _, protocol) with this family and a protocol not listed.
    SocketProtocolNotIn(u64, &'static [u64]),
    /// Every call numbered `nr` or above (see [`enosys_table`]).
    NrAtLeast,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyscallRule {
    pub name: &'static str,
    pub nr: i64,
    pub when: Match,
    pub errno: i32,
    pub why: &'static str,
}

const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;
const TIOCSETD: u64 = 0x5423;
const TIOCEXCL: u64 = 0x540C;
const TCXONC: u64 = 0x540A;

/// Namespace flags for clone/unshare. CLONE_NEWTIME (0x80) overlaps the exit
/// signal byte of clone(2), so it is checked for unshare only.
const NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;
const CLONE_NEWTIME: u64 = 0x80;

/// personality(2) values allowed: PER_LINUX and the query value.
const PERSONALITY_OK: &[u64] = &[0, 0xffff_ffff];

/// Socket families with a use inside the sandbox. Everything else (packet,
/// raw link layers, bluetooth, vsock, alg, xdp ...) is kernel surface only.
const SOCKET_FAMILIES_OK: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_NETLINK as u64, // getaddrinfo/getifaddrs ask the (sandbox-only) netns
];

/// IP protocols with a use inside the sandbox: the default for the type
/// (0), ICMP and ICMPv6 (unprivileged ping sockets), TCP, UDP.
const IP_PROTOCOLS_OK: &[u64] = &[
    0,
    libc::IPPROTO_ICMP as u64,
    libc::IPPROTO_TCP as u64,
    libc::IPPROTO_UDP as u64,
    libc::IPPROTO_ICMPV6 as u64,
];
const SOCK_RDM: u64 = 4;
const SOCK_DCCP: u64 = 6;

/// Netlink protocols with a use inside the sandbox: NETLINK_ROUTE (0),
/// NETLINK_SOCK_DIAG (4), NETLINK_KOBJECT_UEVENT (15). Not generic netlink
/// (16): asking it for a family by name autoloads that family's module
/// (tipc, l2tp, openvswitch, gtp ...), no capability asked.
const NETLINK_PROTOCOLS_OK: &[u64] = &[0, 4, 15];

/// At the `landlock` level the host's network stack is shared: Landlock's
/// TCP rules are the only network boundary, so only TCP sockets may exist.
const HOST_SOCKET_FAMILIES_OK: &[u64] = &[libc::AF_INET as u64, libc::AF_INET6 as u64];

/// flags of send*(2) that connect as they send (TCP Fast Open), bypassing
/// the connect(2) hook Landlock checks.
const MSG_FASTOPEN: u64 = 0x2000_0000;

pub fn table(allow_ptrace: bool, isolation: Isolation) -> Vec<SyscallRule> {
    use Match::*;
    let host = isolation == Isolation::Landlock;
    let eperm = libc::EPERM;
    let mut t = Vec::new();
    let mut add = |name, nr, when, why| {
        t.push(SyscallRule {
            name,
            nr,
            when,
            errno: eperm,
            why,
        })
    };

    add(
        "ioctl",
        libc::SYS_ioctl,
        IoctlRequest(TIOCSTI),
        "TIOCSTI pushes keystrokes into the user's terminal",
    );
    add(
        "ioctl",
        libc::SYS_ioctl,
        IoctlRequest(TIOCLINUX),
        "TIOCLINUX can paste the console selection as input",
    );
    // The user's terminal outlives the session: what these change on it
    // stays after guard exits, in the user's shell.
    add(
        "ioctl",
        libc::SYS_ioctl,
        IoctlRequest(TIOCSETD),
        "TIOCSETD swaps the terminal's line discipline (n_null leaves the user's shell a terminal that reads nothing) and autoloads line discipline modules, kernel surface",
    );
    add(
        "ioctl",
        libc::SYS_ioctl,
        IoctlRequest(TIOCEXCL),
        "TIOCEXCL makes the user's terminal refuse every later open (less, sudo and ssh prompts fail with EBUSY)",
    );
    // On a Linux console (guard started on a VT), the command's terminal
    // answers the console's own ioctls, most of them to any process whose
    // controlling terminal it is, no capability asked. Keymaps and function key
    // strings are global to every VT and outlive the session: bind Enter
    // to a string and whoever presses it next, on any console, types the
    // command it holds. Keyboard mode (K_OFF), display mode, fonts (which
    // could show one text for another) and VT switching stay as set too.
    // Nothing a sandboxed program needs: refused whole, reads included.
    // KD* (keyboard, display, fonts) and VT_* (virtual terminals).
    for ty in [b'K', b'V'] {
        add(
            "ioctl",
            libc::SYS_ioctl,
            IoctlType(ty),
            "Linux console ioctls: keymaps and function key strings are global and outlive the session (a key bound to a string types it into the next shell), as do keyboard and display modes and fonts",
        );
    }
    add(
        "ioctl",
        libc::SYS_ioctl,
        IoctlRequest(TCXONC),
        "TCXONC (tcflow TCOOFF) stops the user's terminal's output: guard's summary and the shell's prompt after it never appear",
    );

    for (name, nr) in [
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
    ] {
        add(
            name,
            nr,
            Always,
            "io_uring bypasses seccomp for the operations it performs and is a frequent source of kernel bugs",
        );
    }
    add(
        "bpf",
        libc::SYS_bpf,
        Always,
        "eBPF programs are kernel attack surface",
    );
    add(
        "perf_event_open",
        libc::SYS_perf_event_open,
        Always,
        "perf events leak kernel addresses and are attack surface",
    );
    add(
        "userfaultfd",
        libc::SYS_userfaultfd,
        Always,
        "userfaultfd makes kernel race exploits reliable",
    );
    for (name, nr) in [
        ("keyctl", libc::SYS_keyctl),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
    ] {
        add(
            name,
            nr,
            Always,
            "kernel keyrings are not namespaced: the user's keys live there",
        );
    }
    for (name, nr) in [
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
    ] {
        add(name, nr, Always, "replacing the running kernel");
    }
    for (name, nr) in [
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
    ] {
        add(name, nr, Always, "loading kernel code");
    }
    for (name, nr) in [
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
        ("move_mount", libc::SYS_move_mount),
        ("open_tree", libc::SYS_open_tree),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("open_tree_attr", 467),
    ] {
        add(
            name,
            nr,
            Always,
            "changing mounts could uncover what the sandbox's view hides",
        );
    }
    add(
        "pivot_root",
        libc::SYS_pivot_root,
        Always,
        "changing the root could uncover the host's filesystem",
    );
    add(
        "chroot",
        libc::SYS_chroot,
        Always,
        "no use inside; a classic step in escapes",
    );
    add(
        "setns",
        libc::SYS_setns,
        Always,
        "joining another namespace leaves the sandbox",
    );
    add(
        "unshare",
        libc::SYS_unshare,
        Arg0AnyBit(NS_FLAGS | CLONE_NEWTIME),
        "new namespaces would regain capabilities over a fresh view",
    );
    add(
        "clone",
        libc::SYS_clone,
        Arg0AnyBit(NS_FLAGS),
        "new namespaces would regain capabilities over a fresh view",
    );
    if !allow_ptrace {
        for (name, nr) in [
            ("ptrace", libc::SYS_ptrace),
            ("process_vm_readv", libc::SYS_process_vm_readv),
            ("process_vm_writev", libc::SYS_process_vm_writev),
        ] {
            add(
                name,
                nr,
                Always,
                "reading or steering another process's memory (the profile may allow it for debuggers)",
            );
        }
        add(
            "pidfd_getfd",
            libc::SYS_pidfd_getfd,
            Always,
            "stealing another process's file descriptors",
        );
    }
    // A setuid or setgid file left in the project would run with the
    // sandbox user's (or, when guard runs as root, root's) identity for
    // anyone on the host, after the sandbox is gone. The mode is a register
    // argument of every call that sets it; openat2 (mode in memory) gets
    // ENOSYS (see `enosys_table`).
    const SETID: u64 = 0o6000;
    #[cfg(target_arch = "x86_64")]
    for (name, nr, arg) in [
        ("chmod", libc::SYS_chmod, 1u8),
        ("creat", libc::SYS_creat, 1),
        ("open", libc::SYS_open, 2),
        ("mknod", libc::SYS_mknod, 1),
    ] {
        add(
            name,
            nr,
            ArgAnyBit(arg, SETID),
            "setuid/setgid files would outlive the sandbox",
        );
    }
    for (name, nr, arg) in [
        ("fchmod", libc::SYS_fchmod, 1u8),
        ("fchmodat", libc::SYS_fchmodat, 2),
        ("fchmodat2", 452, 2),
        ("openat", libc::SYS_openat, 3),
        ("mknodat", libc::SYS_mknodat, 2),
    ] {
        add(
            name,
            nr,
            ArgAnyBit(arg, SETID),
            "setuid/setgid files would outlive the sandbox",
        );
    }
    add(
        "personality",
        libc::SYS_personality,
        Arg0NotIn(PERSONALITY_OK),
        "non-default personalities disable ASLR or change syscall semantics",
    );
    if host {
        add(
            "socket",
            libc::SYS_socket,
            Arg0NotIn(HOST_SOCKET_FAMILIES_OK),
            "without namespaces, unix sockets reach the host's daemons (docker.sock, D-Bus, ssh-agent), which Landlock does not cover; netlink reads the host's network state",
        );
    } else {
        add(
            "socket",
            libc::SYS_socket,
            Arg0NotIn(SOCKET_FAMILIES_OK),
            "packet, raw and exotic socket families are kernel surface with no use here",
        );
    }
    // socketpair(2) creates its two sockets as socket(2) does, in the
    // family asked for, before asking the family for a pair: the family
    // filter above would be bypassed (AF_TIPC even makes a working pair).
    // Only unix sockets come in pairs that have a use.
    add(
        "socketpair",
        libc::SYS_socketpair,
        Arg0NotIn(&[libc::AF_UNIX as u64]),
        "every other family's sockets are made before the pair is refused: the socket(2) family filter's kernel surface",
    );
    // Within a family, the protocol (and for IP the socket type) picks
    // the kernel code that serves the socket, and an unknown pair makes
    // the kernel autoload the module for it: SCTP, DCCP, L2TP, MPTCP, RDS
    // over IP; nf_tables, xfrm, crypto configuration over netlink. Each
    // has had its local privilege escalations; none is what an agent's
    // tools use. IP keeps TCP, UDP and ping sockets; netlink keeps routing
    // (getaddrinfo, getifaddrs), socket diagnostics (ss) and kernel events
    // (udev monitors, harmless in a network namespace of its own).
    if !host {
        for family in [libc::AF_INET as u64, libc::AF_INET6 as u64] {
            add(
                "socket",
                libc::SYS_socket,
                SocketProtocolNotIn(family, IP_PROTOCOLS_OK),
                "IP protocols other than TCP, UDP and ping (SCTP, DCCP, L2TP, MPTCP ...) autoload kernel modules with histories of local exploits",
            );
            for ty in [SOCK_RDM, libc::SOCK_SEQPACKET as u64, SOCK_DCCP] {
                add(
                    "socket",
                    libc::SYS_socket,
                    SocketFamilyType(family, ty),
                    "IP socket types other than stream, datagram and raw (SCTP's seqpacket, DCCP) autoload kernel modules",
                );
            }
        }
        add(
            "socket",
            libc::SYS_socket,
            SocketProtocolNotIn(libc::AF_NETLINK as u64, NETLINK_PROTOCOLS_OK),
            "netlink protocols other than routing, socket diagnostics and kernel events (netfilter, xfrm, crypto; generic netlink, whose family lookup autoloads modules) are kernel surface with no use here",
        );
    }
    // Netlink sockets are SOCK_RAW too (getifaddrs needs them): raw is
    // refused for IP families only.
    for family in [libc::AF_INET as u64, libc::AF_INET6 as u64] {
        add(
            "socket",
            libc::SYS_socket,
            SocketFamilyType(family, libc::SOCK_RAW as u64),
            "raw IP sockets craft arbitrary packets",
        );
        add(
            "socket",
            libc::SYS_socket,
            SocketFamilyType(family, 10 /* SOCK_PACKET */),
            "packet sockets see raw frames",
        );
    }
    if host {
        for family in HOST_SOCKET_FAMILIES_OK {
            // Every type but SOCK_STREAM (1): UDP and ICMP would leave the
            // host directly, where Landlock's TCP rules do not look.
            for ty in (0..16).filter(|t| *t != libc::SOCK_STREAM as u64) {
                add(
                    "socket",
                    libc::SYS_socket,
                    SocketFamilyType(*family, ty),
                    "only TCP is bounded by Landlock at this level",
                );
            }
            add(
                "socket",
                libc::SYS_socket,
                SocketProtocolNotIn(*family, &[0, libc::IPPROTO_TCP as u64]),
                "SCTP and MPTCP stream sockets are not plain TCP",
            );
        }
        for (name, nr, arg) in [
            ("sendto", libc::SYS_sendto, 3),
            ("sendmsg", libc::SYS_sendmsg, 2),
            ("sendmmsg", libc::SYS_sendmmsg, 3),
        ] {
            add(
                name,
                nr,
                ArgAnyBit(arg, MSG_FASTOPEN),
                "TCP Fast Open connects without connect(2), which Landlock checks",
            );
        }
        // socketpair(2)'s unix sockets stay (pipes between processes), but
        // only stream and seqpacket ones: a datagram socket, connected or
        // not, may sendto(2) any other unix socket by its path, so host
        // daemons listening on datagram sockets (/dev/log, journald) would
        // be reachable. The kernel makes SOCK_RAW a datagram socket too, so
        // every other type is refused rather than SOCK_DGRAM alone.
        for ty in
            (0..16).filter(|t| ![libc::SOCK_STREAM, libc::SOCK_SEQPACKET].contains(&(*t as i32)))
        {
            add(
                "socketpair",
                libc::SYS_socketpair,
                SocketFamilyType(libc::AF_UNIX as u64, ty),
                "a unix datagram socket can send to any unix socket on the host by its path",
            );
        }
        // A TCP socket that listens without bind(2) gets an ephemeral port
        // on every address: Landlock's bind rule is never asked, and any
        // host could connect in. Nothing else can listen (bind is denied).
        add(
            "listen",
            libc::SYS_listen,
            Always,
            "listen(2) on an unbound socket binds a port on every address without the bind(2) Landlock checks",
        );
        // Same-user processes are not protected from each other's limits,
        // and Landlock does not scope this: a command could set guard's
        // descriptor or CPU limit so it cannot restore protected files, or
        // the setup process's so it cannot end the command's leftovers.
        // Only its own (pid 0, as libc's setrlimit passes) stay; others'
        // can still be read in /proc/PID/limits.
        add(
            "prlimit64",
            libc::SYS_prlimit64,
            Arg0NotIn(&[0]),
            "setting another process's limits could stop guard from restoring protected files or ending leftovers",
        );
        for (name, nr) in [
            ("shmget", libc::SYS_shmget),
            ("shmat", libc::SYS_shmat),
            ("shmctl", libc::SYS_shmctl),
            ("msgget", libc::SYS_msgget),
            ("msgsnd", libc::SYS_msgsnd),
            ("msgrcv", libc::SYS_msgrcv),
            ("msgctl", libc::SYS_msgctl),
            ("semget", libc::SYS_semget),
            ("semop", libc::SYS_semop),
            ("semtimedop", libc::SYS_semtimedop),
            ("semctl", libc::SYS_semctl),
            ("mq_open", libc::SYS_mq_open),
        ] {
            add(
                name,
                nr,
                Always,
                "without an IPC namespace, System V and POSIX message queues are shared with the host's processes",
            );
        }
    }
    add(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        Always,
        "opens files by handle, bypassing the path-based view",
    );
    add(
        "name_to_handle_at",
        libc::SYS_name_to_handle_at,
        Always,
        "paired with open_by_handle_at",
    );
    for (name, nr) in [
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("reboot", libc::SYS_reboot),
        ("syslog", libc::SYS_syslog),
        ("acct", libc::SYS_acct),
        ("quotactl", libc::SYS_quotactl),
        ("vhangup", libc::SYS_vhangup),
        ("settimeofday", libc::SYS_settimeofday),
        ("clock_settime", libc::SYS_clock_settime),
        ("fanotify_init", libc::SYS_fanotify_init),
        ("quotactl_fd", libc::SYS_quotactl_fd),
    ] {
        add(
            name,
            nr,
            Always,
            "host administration with no use inside the sandbox",
        );
    }
    #[cfg(target_arch = "x86_64")]
    for (name, nr) in [
        ("iopl", libc::SYS_iopl),
        ("ioperm", libc::SYS_ioperm),
        ("uselib", libc::SYS_uselib),
        ("modify_ldt", libc::SYS_modify_ldt),
    ] {
        add(name, nr, Always, "legacy hardware and loader interfaces");
    }
    add(
        "memfd_secret",
        libc::SYS_memfd_secret,
        Always,
        "memory unmapped from the kernel's own map: no use to a sandboxed tool, and the mapping code is kernel surface",
    );
    t
}

/// The highest system call number this table was reviewed against
/// (file_setattr, Linux 6.17; numbers from 424 on are the same on every
/// architecture). Raise it only after reviewing the calls it lets in.
pub const LAST_REVIEWED_NR: i64 = 469;

/// System calls answered with ENOSYS instead of EPERM: libc falls back to an
/// older call whose arguments the filter can inspect, and a program meeting
/// a call newer than the table sees the kernel it was built to fall back on.
pub fn enosys_table() -> Vec<SyscallRule> {
    vec![
        SyscallRule {
            name: "(newer calls)",
            nr: LAST_REVIEWED_NR + 1,
            when: Match::NrAtLeast,
            errno: libc::ENOSYS,
            why: "the table refuses what was reviewed and allows the rest: a call a newer kernel adds (one more way to mount, to join or list namespaces) would be allowed unseen; deny by default until reviewed",
        },
        SyscallRule {
            name: "clone3",
            nr: libc::SYS_clone3,
            when: Match::Always,
            errno: libc::ENOSYS,
            why: "its flags live in memory the filter cannot read; glibc falls back to clone(2), which is checked",
        },
        SyscallRule {
            name: "openat2",
            nr: 437,
            when: Match::Always,
            errno: libc::ENOSYS,
            why: "its mode lives in memory the filter cannot read (setuid bits); callers fall back to openat(2), which is checked",
        },
    ]
}

/// Compile the table into a BPF program for this architecture. The program
/// starts with an ABI guard (see module docs), then the ENOSYS answers
/// (see [`enosys_table`]), then seccompiler's filter (which repeats the architecture check).
pub fn compile(
    allow_ptrace: bool,
    isolation: Isolation,
) -> Result<Vec<seccompiler::sock_filter>, String> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
        SeccompFilter, SeccompRule,
    };
    let arch: seccompiler::TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("unsupported architecture: {e:?}"))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let err = |e: seccompiler::BackendError| e.to_string();
    for r in table(allow_ptrace, isolation) {
        let conds: Vec<Cond> = match r.when {
            Match::Always => vec![],
            Match::IoctlRequest(req) => vec![Cond::new(1, Len::Dword, Op::Eq, req).map_err(err)?],
            Match::IoctlType(ty) => vec![
                Cond::new(1, Len::Dword, Op::MaskedEq(0xFFFF_FF00), u64::from(ty) << 8)
                    .map_err(err)?,
            ],
            Match::ArgAnyBit(idx, bits) => {
                for bit in (0..32).map(|b| 1u64 << b).filter(|b| bits & b != 0) {
                    let c = Cond::new(idx, Len::Dword, Op::MaskedEq(bit), bit).map_err(err)?;
                    rules
                        .entry(r.nr)
                        .or_default()
                        .push(SeccompRule::new(vec![c]).map_err(err)?);
                }
                continue;
            }
            Match::Arg0AnyBit(bits) => {
                // One rule per bit: rules are OR-ed, conditions AND-ed. All
                // namespace flags live in the low 32 bits, which a Dword
                // compare reads (half the instructions of a Qword one).
                for bit in (0..32).map(|b| 1u64 << b).filter(|b| bits & b != 0) {
                    let c = Cond::new(0, Len::Dword, Op::MaskedEq(bit), bit).map_err(err)?;
                    rules
                        .entry(r.nr)
                        .or_default()
                        .push(SeccompRule::new(vec![c]).map_err(err)?);
                }
                continue;
            }
            Match::Arg0NotIn(values) => values
                .iter()
                .map(|v| Cond::new(0, Len::Dword, Op::Ne, *v).map_err(err))
                .collect::<Result<_, _>>()?,
            Match::SocketProtocolNotIn(family, protocols) => {
                let mut c = vec![Cond::new(0, Len::Dword, Op::Eq, family).map_err(err)?];
                for p in protocols {
                    c.push(Cond::new(2, Len::Dword, Op::Ne, *p).map_err(err)?);
                }
                c
            }
            Match::SocketFamilyType(family, ty) => vec![
                Cond::new(0, Len::Dword, Op::Eq, family).map_err(err)?,
                Cond::new(1, Len::Dword, Op::MaskedEq(0xf), ty).map_err(err)?,
            ],
            // A range of numbers is the ABI guard's (see `abi_guard`).
            Match::NrAtLeast => {
                return Err(format!(
                    "{}: a range of calls belongs in enosys_table",
                    r.name
                ));
            }
        };
        let entry = rules.entry(r.nr).or_default();
        // An unconditional rule must be the only one for that call.
        if conds.is_empty() {
            entry.clear();
            rules.insert(r.nr, vec![]);
        } else {
            entry.push(SeccompRule::new(conds).map_err(err)?);
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(err)?;
    let body: seccompiler::BpfProgram = filter.try_into().map_err(err)?;
    let mut prog = abi_guard(arch);
    prog.extend(body);
    Ok(prog)
}

/// Refuse other ABIs before the table: the arch word must be ours (kills on
/// mismatch, like seccompiler), x32 numbers (bit 30) get EPERM, and the
/// calls of [`enosys_table`] (clone3, openat2, every call newer than the
/// table) get ENOSYS.
fn abi_guard(arch: seccompiler::TargetArch) -> Vec<seccompiler::sock_filter> {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x05 | 0x10;
    const JGE_K: u16 = 0x05 | 0x30;
    const RET_K: u16 = 0x06;
    const NR_OFF: u32 = 0;
    const ARCH_OFF: u32 = 4;
    let stmt = |code, k| sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code, k, jt, jf| sock_filter { code, jt, jf, k };
    let audit_arch: u32 = match arch {
        seccompiler::TargetArch::x86_64 => 0xC000_003E,
        seccompiler::TargetArch::aarch64 => 0xC000_00B7,
        seccompiler::TargetArch::riscv64 => 0xC000_00F3,
    };
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
    let mut prog = vec![
        stmt(LD_W_ABS, ARCH_OFF),
        jump(JEQ_K, audit_arch, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR_OFF),
        // x32 system calls carry bit 30 (__X32_SYSCALL_BIT).
        jump(JGE_K, 0x4000_0000, 0, 1),
        stmt(RET_K, errno(libc::EPERM)),
    ];
    for r in enosys_table() {
        let op = match r.when {
            Match::NrAtLeast => JGE_K,
            _ => JEQ_K,
        };
        prog.push(jump(op, r.nr as u32, 0, 1));
        prog.push(stmt(RET_K, errno(r.errno)));
    }
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_names_every_required_call() {
        let prog = compile(false, Isolation::Full).unwrap();
        assert!(prog.len() > 50);
        let names: Vec<&str> = table(false, Isolation::Full)
            .iter()
            .map(|r| r.name)
            .collect();
        for required in [
            "ioctl",
            "io_uring_setup",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "keyctl",
            "add_key",
            "request_key",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "mount",
            "fsopen",
            "move_mount",
            "pivot_root",
            "setns",
            "unshare",
            "clone",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "personality",
            "socket",
        ] {
            assert!(names.contains(&required), "{required} missing");
        }
        assert!(
            table(false, Isolation::Full)
                .iter()
                .all(|r| !r.why.is_empty())
        );
    }

    /// What the kernel would answer for a call: the filter run on its
    /// seccomp_data (number, arch, no instruction pointer, arguments).
    /// Only the instructions the filter is made of are known; any other
    /// fails the test.
    fn verdict(prog: &[seccompiler::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend(nr.to_le_bytes());
        data.extend(arch.to_le_bytes());
        data.extend(0u64.to_le_bytes());
        for a in args {
            data.extend(a.to_le_bytes());
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = &prog[pc];
            pc += 1;
            let jump = |cond: bool| if cond { i.jt as usize } else { i.jf as usize };
            match i.code {
                0x20 => {
                    let k = i.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                0x54 => acc &= i.k,
                0x05 => pc += i.k as usize,
                0x15 => pc += jump(acc == i.k),
                0x25 => pc += jump(acc > i.k),
                0x35 => pc += jump(acc >= i.k),
                0x45 => pc += jump(acc & i.k != 0),
                0x06 => return i.k,
                code => panic!("instruction {code:#x} unknown to this test"),
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn calls_newer_than_the_table_get_enosys_and_the_rest_is_as_listed() {
        let prog = compile(false, Isolation::Full).unwrap();
        let x86_64 = 0xC000_003E;
        let run = |nr: i64, args: [u64; 6]| verdict(&prog, x86_64, nr as u32, args);
        let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
        let allow = libc::SECCOMP_RET_ALLOW;
        // Newer than the table, up to the x32 bit: ENOSYS.
        for nr in [LAST_REVIEWED_NR + 1, 470, 471, 500, 1000, 0x3fff_ffff] {
            assert_eq!(run(nr, [0; 6]), errno(libc::ENOSYS), "{nr}");
        }
        // The last reviewed call and older ones the table does not list.
        for nr in [LAST_REVIEWED_NR, libc::SYS_read, libc::SYS_openat, 462] {
            assert_eq!(run(nr, [0; 6]), allow, "{nr}");
        }
        assert_eq!(run(libc::SYS_clone3, [0; 6]), errno(libc::ENOSYS));
        assert_eq!(run(0x4000_0000, [0; 6]), errno(libc::EPERM));
        assert_eq!(run(libc::SYS_bpf, [0; 6]), errno(libc::EPERM));
        assert_eq!(
            run(libc::SYS_ioctl, [0, TIOCSTI, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(run(libc::SYS_ioctl, [0, 0x5401, 0, 0, 0, 0]), allow); // TCGETS
        // Console ioctls by their type byte; newer ones of the same byte
        // carry direction and size bits and are not the console's.
        for req in [0x4B00, 0x4B49, 0x4BFF, 0x5606, 0x1_0000_4B47] {
            assert_eq!(
                run(libc::SYS_ioctl, [0, req, 0, 0, 0, 0]),
                errno(libc::EPERM),
                "{req:#x}"
            );
        }
        assert_eq!(run(libc::SYS_ioctl, [0, 0x8004_4B00, 0, 0, 0, 0]), allow);
        let vsock = 40;
        assert_eq!(
            run(libc::SYS_socketpair, [vsock, 1, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(run(libc::SYS_socketpair, [1, 1, 0, 0, 0, 0]), allow);
        // Another architecture's calls: the process is killed.
        assert_eq!(
            verdict(&prog, 0x4000_0003, 3, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn namespace_flags_fit_in_the_low_word() {
        assert_eq!((NS_FLAGS | CLONE_NEWTIME) >> 32, 0);
    }

    #[test]
    fn the_landlock_level_alone_refuses_listen_other_pids_limits_and_unix_datagram_pairs() {
        let names = |i| -> Vec<&str> { table(false, i).iter().map(|r| r.name).collect() };
        for name in ["listen", "prlimit64"] {
            assert!(names(Isolation::Landlock).contains(&name), "{name}");
            assert!(!names(Isolation::Full).contains(&name), "{name}");
        }
        // socketpair's family is checked at both levels, its unix types at
        // the `landlock` level only.
        let pair_rules = |i| {
            table(false, i)
                .iter()
                .filter(|r| r.name == "socketpair")
                .count()
        };
        assert_eq!(pair_rules(Isolation::Full), 1);
        assert!(pair_rules(Isolation::Landlock) > 1);
        assert!(compile(false, Isolation::Landlock).is_ok());
    }

    #[test]
    fn ptrace_can_be_allowed() {
        assert!(
            !table(true, Isolation::Full)
                .iter()
                .any(|r| r.name == "ptrace")
        );
    }
}
