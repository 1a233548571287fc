//! Dangerous system calls: kernel attack surface, host administration and
//! other ABIs. Where the kernel alone would give another answer (success,
//! EFAULT, EBADF, EINVAL ...) the arguments are chosen so that EPERM can
//! only come from guard's filter; the comment on each line says what the
//! kernel would have said.

use crate::support::{Expect, each_mode, errno::*};

#[test]
fn io_uring_refused() {
    each_mode(|case| {
        case.python(
            r#"
params = ctypes.create_string_buffer(120)
out("setup", sc(425, 4, params)[1])                 # kernel: a new ring fd
out("enter", sc(426, 1000, 0, 0, 0, None, 0)[1])    # kernel: EBADF
out("register", sc(427, 1000, 0, None, 0)[1])       # kernel: EBADF
"#,
        )
        .fields(&[("setup", EPERM), ("enter", EPERM), ("register", EPERM)]);
    });
}

#[test]
fn bpf_refused() {
    each_mode(|case| {
        case.python(
            r#"
attr = ctypes.create_string_buffer(128)
struct.pack_into("=IIII", attr, 0, 2, 4, 4, 1)      # BPF_MAP_TYPE_ARRAY, 4-byte key/value, 1 entry
out("map_create", sc(321, 0, attr, 128)[1])         # kernel: a map fd, or EPERM when unprivileged bpf is off
out("unknown_cmd", sc(321, 999, None, 0)[1])        # kernel: EINVAL
"#,
        )
        .fields(&[("map_create", EPERM), ("unknown_cmd", EPERM)]);
    });
}

#[test]
fn perf_event_open_refused() {
    each_mode(|case| {
        case.python(
            r#"
attr = ctypes.create_string_buffer(128)
struct.pack_into("=II", attr, 0, 1, 128)            # PERF_TYPE_SOFTWARE, size
out("software", sc(298, attr, 0, -1, -1, 0)[1])     # kernel: an fd (paranoid <= 2)
out("null_attr", sc(298, None, 0, -1, -1, 0)[1])    # kernel: EFAULT
"#,
        )
        .fields(&[("software", EPERM), ("null_attr", EPERM)]);
    });
}

#[test]
fn userfaultfd_refused() {
    each_mode(|case| {
        case.python(
            r#"
out("user_only", sc(323, 1)[1])                     # UFFD_USER_MODE_ONLY; kernel: an fd
out("bad_flags", sc(323, 0xffff)[1])                # kernel: EINVAL
out("dev_node", err(os.stat, "/dev/userfaultfd"))
"#,
        )
        .fields(&[
            ("user_only", EPERM),
            ("bad_flags", EPERM),
            ("dev_node", ENOENT),
        ]);
    });
}

/// Kernel keyrings are not namespaced: the user's keys live there. The host
/// user (the sandbox's uid) holds a key whose payload is a canary; no
/// keyring call works, so the payload cannot be read.
#[test]
fn keyrings_refused() {
    each_mode(|mut case| {
        let payload = case.add_canary("key");
        let desc = format!("guard-escape-key-{}", std::process::id());
        let serial = host_key(case.sandbox_uid(), &desc, &payload);
        case.python(&format!(
            r#"
KEYCTL_GET_KEYRING_ID, KEYCTL_SEARCH, KEYCTL_READ = 0, 10, 11
SESSION, USER = -3, -4
out("get_id", sc(250, KEYCTL_GET_KEYRING_ID, SESSION, 0)[1])             # kernel: a keyring id
out("search", sc(250, KEYCTL_SEARCH, USER, b"user", b"{desc}", 0)[1])
buf = ctypes.create_string_buffer(256)
out("read", sc(250, KEYCTL_READ, {serial}, buf, 256)[1])                 # kernel: the payload
out("add_key", sc(248, b"user", b"guard-inside", b"x", 1, SESSION)[1])  # kernel: a serial
out("request_key", sc(249, b"user", b"{desc}", None, 0)[1])
print(open("/proc/keys").read())
"#
        ))
        .fields(&[
            ("get_id", EPERM),
            ("search", EPERM),
            ("read", EPERM),
            ("add_key", EPERM),
            ("request_key", EPERM),
        ]);
    });
}

/// Add a "user" key with `payload` to `uid`'s user keyring (expiring in a
/// minute); returns its serial. Runs in a forked child that switches to
/// `uid` with raw system calls only.
fn host_key(uid: u32, desc: &str, payload: &str) -> i64 {
    let ty = c"user";
    let d = std::ffi::CString::new(desc).expect("desc");
    let p = payload.as_bytes().to_vec();
    let mut pipe = [0i32; 2];
    // SAFETY: pipe fills two descriptors.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    // SAFETY: the child makes raw system calls only, then _exit; the
    // strings were allocated before fork.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let u = uid as libc::c_long;
            if libc::syscall(libc::SYS_setresgid, u, u, u) != 0
                || libc::syscall(libc::SYS_setresuid, u, u, u) != 0
            {
                libc::_exit(2);
            }
            let serial: i64 = libc::syscall(
                libc::SYS_add_key,
                ty.as_ptr(),
                d.as_ptr(),
                p.as_ptr(),
                p.len(),
                -4 as libc::c_long, // KEY_SPEC_USER_KEYRING
            );
            if serial < 0 {
                libc::_exit(3);
            }
            libc::syscall(
                libc::SYS_keyctl,
                15 as libc::c_long,
                serial,
                60 as libc::c_long,
            ); // KEYCTL_SET_TIMEOUT
            libc::write(pipe[1], (&serial as *const i64).cast(), 8);
            libc::_exit(0);
        }
        libc::close(pipe[1]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        assert_eq!(
            status, 0,
            "adding the host key as uid {uid} failed (status {status:#x})"
        );
        let mut serial = 0i64;
        assert_eq!(libc::read(pipe[0], (&mut serial as *mut i64).cast(), 8), 8);
        libc::close(pipe[0]);
        serial
    }
}

#[test]
fn kexec_refused() {
    each_mode(|case| {
        case.python(
            r#"
out("kexec_load", sc(246, 0, 0, None, 0)[1])
out("kexec_file_load", sc(320, -1, -1, 0, None, 0)[1])
"#,
        )
        .fields(&[("kexec_load", EPERM), ("kexec_file_load", EPERM)]);
    });
}

#[test]
fn kernel_modules_refused() {
    each_mode(|case| {
        case.python(
            r#"
out("init_module", sc(175, None, 0, b"")[1])
fd = os.open("/dev/null", os.O_RDONLY)
out("finit_module", sc(313, fd, b"", 0)[1])
out("delete_module", sc(176, b"guard_escape_nonexistent", 0)[1])
"#,
        )
        .fields(&[
            ("init_module", EPERM),
            ("finit_module", EPERM),
            ("delete_module", EPERM),
        ]);
    });
}

/// personality(2): disabling ASLR, READ_IMPLIES_EXEC or a 32-bit
/// personality are refused (the kernel alone would accept all three);
/// querying still works (control).
#[test]
fn personality_refused() {
    each_mode(|case| {
        case.python(
            r#"
out("query", sc(135, 0xffffffff)[0])
out("no_aslr", sc(135, 0x0040000)[1])               # ADDR_NO_RANDOMIZE
out("read_implies_exec", sc(135, 0x0400000)[1])
out("linux32", sc(135, 0x0008)[1])                  # PER_LINUX32
out("after", sc(135, 0xffffffff)[0])
"#,
        )
        .fields(&[
            ("query", "0"),
            ("no_aslr", EPERM),
            ("read_implies_exec", EPERM),
            ("linux32", EPERM),
            ("after", "0"),
        ]);
    });
}

/// The 32-bit ABI through `int $0x80` uses i386 numbers, which the x86_64
/// table does not describe (i386 310 is unshare, x86_64 310 is
/// process_vm_readv): the filter kills the process with SIGSYS (exit status
/// 128 + 31) before anything runs, harmless call or not.
#[cfg(target_arch = "x86_64")]
#[test]
fn int80_killed_with_sigsys() {
    each_mode(|case| {
        let out = case.c(
            r#"
int main(int argc, char **argv) {
    if (argc < 2) return 0;
    long nr = atol(argv[1]), arg = argc > 2 ? atol(argv[2]) : 0, r;
    out("calling", nr);
    __asm__ volatile ("int $0x80" : "=a"(r) : "a"(nr), "b"(arg) : "memory");
    out("returned", r);
    return 0;
}
"#,
            // i386 numbers: 20 getpid, 310 unshare(CLONE_NEWUSER), 39 mkdir
            "./attack 20; echo getpid=$?\n./attack 310 268435456; echo unshare=$?\n./attack 39 0; echo mkdir=$?",
        );
        out.fields(&[("getpid", "159"), ("unshare", "159"), ("mkdir", "159")]);
        assert!(
            out.field("returned").is_none(),
            "an int 0x80 call returned:\n{}",
            out.all()
        );
    });
}

/// x32 system call numbers (bit 30 set) are refused before the table; the
/// call is never executed (mkdir leaves no directory).
#[cfg(target_arch = "x86_64")]
#[test]
fn x32_numbers_refused() {
    each_mode(|case| {
        case.python(
            r#"
X32 = 0x40000000
out("getpid", sc(X32 | 39)[1])
out("mkdir", sc(X32 | 83, b"x32dir", 0o755)[1])
out("unshare", sc(X32 | 272, 0x10000000)[1])
out("ptrace", sc(X32 | 521, 16, 1, 0, 0)[1])        # x32's own ptrace number
out("created", int(os.path.exists("x32dir")))
"#,
        )
        .fields(&[
            ("getpid", EPERM),
            ("mkdir", EPERM),
            ("unshare", EPERM),
            ("ptrace", EPERM),
            ("created", "0"),
        ]);
    });
}

/// Host administration: reboot, swap, the kernel log, the clock,
/// accounting, quotas, vhangup, fanotify, port I/O, uselib, the LDT,
/// secret memory.
#[test]
fn host_administration_refused() {
    each_mode(|case| {
        case.python(
            r#"
out("reboot", sc(169, 0xfee1dead, 672274793, 0, None)[1])    # LINUX_REBOOT_CMD_CAD_OFF
out("swapon", sc(167, b"/tmp/swap", 0)[1])
out("swapoff", sc(168, b"/tmp/swap")[1])
buf = ctypes.create_string_buffer(64)
out("syslog_size", sc(103, 10, None, 0)[1])                  # SYSLOG_ACTION_SIZE_BUFFER; kernel: a size
out("syslog_read", sc(103, 3, buf, 64)[1])
out("settimeofday", sc(164, None, None)[1])                  # kernel: 0 (a no-op)
ts = struct.pack("=qq", 0, 0)
out("clock_settime", sc(227, 0, ts)[1])
out("acct", sc(163, None)[1])
out("quotactl", sc(179, 0x80000100, None, 0, None)[1])        # QCMD(Q_SYNC, USRQUOTA), all filesystems
out("vhangup", sc(153)[1])
out("fanotify_init", sc(300, 0, 0)[1])
out("iopl", sc(172, 3)[1])
out("ioperm", sc(173, 0x80, 1, 1)[1])
out("uselib", sc(134, b"/usr/lib/nonexistent.so")[1])
ldt = ctypes.create_string_buffer(16)
out("modify_ldt", sc(154, 0, ldt, 16)[1])                    # read: kernel 0 (an empty table)
out("memfd_secret", sc(447, 0)[1])                          # kernel: a descriptor, or ENOSYS when off
out("quotactl_fd", sc(443, 0, 0x80000100, 0, None)[1])       # Q_SYNC on stdin
"#,
        )
        .fields(&[
            ("reboot", EPERM),
            ("swapon", EPERM),
            ("swapoff", EPERM),
            ("syslog_size", EPERM),
            ("syslog_read", EPERM),
            ("settimeofday", EPERM),
            ("clock_settime", EPERM),
            ("acct", EPERM),
            ("quotactl", EPERM),
            ("vhangup", EPERM),
            ("fanotify_init", EPERM),
            ("iopl", EPERM),
            ("ioperm", EPERM),
            ("uselib", EPERM),
            ("modify_ldt", EPERM),
            ("memfd_secret", EPERM),
            ("quotactl_fd", EPERM),
        ]);
    });
}

/// Stacking a second, allow-everything seccomp filter (allowed: it can only
/// restrict) does not loosen guard's filter.
#[test]
fn extra_allow_all_filter_changes_nothing() {
    each_mode(|case| {
        case.python(
            r#"
allow = struct.pack("=HBBI", 0x06, 0, 0, 0x7fff0000)          # BPF_RET | SECCOMP_RET_ALLOW
insns = ctypes.create_string_buffer(allow)
class fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = fprog(1, ctypes.addressof(insns))
out("install", sc(317, 1, 0, ctypes.byref(prog))[1])         # seccomp(SECCOMP_SET_MODE_FILTER)
out("filters", open("/proc/self/status").read().split("Seccomp_filters:")[1].split()[0])
out("bpf", sc(321, 999, None, 0)[1])
out("unshare", sc(272, 0x10000000)[1])
out("ptrace", sc(101, 16, 1, 0, 0)[1])
"#,
        )
        .fields(&[
            ("install", "0"),
            ("filters", "2"),
            ("bpf", EPERM),
            ("unshare", EPERM),
            ("ptrace", EPERM),
        ]);
    });
}

/// Python: sockets whose protocol or type makes the kernel autoload a
/// module; prints `NAME=errno` (0 when a socket was made).
const MODULE_SOCKETS: &str = r#"
def sock(family, ty, proto):
    ctypes.set_errno(0)
    fd = _libc.socket(family, ty, proto)
    if fd >= 0:
        os.close(fd)
        return 0
    return ctypes.get_errno()
out("sctp_stream", sock(2, 1, 132))
out("sctp_seqpacket", sock(2, 5, 132))
out("sctp6", sock(10, 1, 132))
out("mptcp", sock(2, 1, 262))
out("mptcp6", sock(10, 1, 262))
out("dccp", sock(2, 6, 0))
out("dccp6", sock(10, 6 | 0o2000000, 33))         # SOCK_CLOEXEC does not hide the type
out("l2tp", sock(2, 2, 115))
out("udplite", sock(2, 2, 136))
out("rds_rdm", sock(2, 4, 0))
out("nl_netfilter", sock(16, 3, 12))
out("nl_xfrm", sock(16, 3, 6))
out("nl_crypto", sock(16, 3, 21))
out("nl_generic", sock(16, 3, 16))                # its family lookup autoloads modules
out("tcp", sock(2, 1, 0))
out("tcp6_proto", sock(10, 1 | 0o4000, 6))         # SOCK_NONBLOCK
out("udp", sock(2, 2, 17))
out("nl_route", sock(16, 3, 0))
out("nl_diag", sock(16, 3, 4))
"#;

/// Hole: the socket family filter let every protocol of the IP and
/// netlink families through: socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP),
/// SOCK_DCCP, IPPROTO_L2TP, MPTCP, or a netfilter/xfrm/crypto netlink
/// socket reached (and autoloaded, where the kernel ships them as modules)
/// protocol code with a history of local privilege escalations, which no
/// agent's tools use. Now refused (EPERM) at the full level; the landlock
/// level allowed only TCP already. TCP, UDP and netlink routing and
/// socket diagnostics still work.
#[test]
fn ip_and_netlink_protocols_that_autoload_modules_refused() {
    each_mode(|case| {
        case.write_python(MODULE_SOCKETS);
        let refused = [
            "sctp_stream",
            "sctp_seqpacket",
            "sctp6",
            "mptcp",
            "mptcp6",
            "dccp",
            "dccp6",
            "l2tp",
            "udplite",
            "rds_rdm",
            "nl_netfilter",
            "nl_xfrm",
            "nl_crypto",
            "nl_generic",
        ];
        let full = case.run_python_at("full");
        let mut expected: Vec<(&str, &str)> = refused.iter().map(|n| (*n, EPERM)).collect();
        expected.extend([
            ("tcp", "0"),
            ("tcp6_proto", "0"),
            ("udp", "0"),
            ("nl_route", "0"),
            ("nl_diag", "0"),
        ]);
        full.fields(&expected);
        let landlock = case.run_python_at("landlock");
        let mut expected: Vec<(&str, &str)> = refused.iter().map(|n| (*n, EPERM)).collect();
        expected.extend([("tcp", "0"), ("tcp6_proto", "0")]);
        landlock.fields(&expected);
    });
}
