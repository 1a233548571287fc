//! Undoing the view: every way to change mounts, the root, or namespaces —
//! which would uncover what the view hides or regain capabilities over a
//! fresh view — is refused.

use crate::support::{Expect, each_mode, errno::*};

/// mount(2): a new tmpfs, a bind of /, a read-write remount of / and /usr,
/// a new proc.
#[test]
fn mount_refused() {
    each_mode(|case| {
        case.python(
            r#"
os.mkdir("/tmp/m")
MS_REMOUNT, MS_BIND, MS_REC = 0x20, 0x1000, 0x4000
out("tmpfs", sc(165, b"none", b"/tmp/m", b"tmpfs", 0, None)[1])
out("bind_root", sc(165, b"/", b"/tmp/m", None, MS_BIND | MS_REC, None)[1])
out("remount_root_rw", sc(165, None, b"/", None, MS_REMOUNT | MS_BIND, None)[1])
out("remount_usr_rw", sc(165, None, b"/usr", None, MS_REMOUNT | MS_BIND, None)[1])
out("proc", sc(165, b"proc", b"/tmp/m", b"proc", 0, None)[1])
"#,
        )
        .fields(&[
            ("tmpfs", EPERM),
            ("bind_root", EPERM),
            ("remount_root_rw", EPERM),
            ("remount_usr_rw", EPERM),
            ("proc", EPERM),
        ]);
    });
}

/// umount2(2) of /proc, of a hiding mount (/etc/shadow), of the project and
/// of / — each would uncover something.
#[test]
fn umount_refused() {
    each_mode(|case| {
        case.python(
            r#"
MNT_DETACH = 2
out("proc", sc(166, b"/proc", MNT_DETACH)[1])
out("shadow", sc(166, b"/etc/shadow", MNT_DETACH)[1])
out("project", sc(166, os.getcwd().encode(), MNT_DETACH)[1])
out("root", sc(166, b"/", MNT_DETACH)[1])
out("shadow_still_empty", len(open("/etc/shadow", "rb").read()))
"#,
        )
        .fields(&[
            ("proc", EPERM),
            ("shadow", EPERM),
            ("project", EPERM),
            ("root", EPERM),
            ("shadow_still_empty", "0"),
        ]);
    });
}

#[test]
fn pivot_root_refused() {
    each_mode(|case| {
        case.python(
            r#"
os.makedirs("/tmp/new/old")
out("dot", sc(155, b".", b".")[1])
out("tmp", sc(155, b"/tmp/new", b"/tmp/new/old")[1])
"#,
        )
        .fields(&[("dot", EPERM), ("tmp", EPERM)]);
    });
}

#[test]
fn chroot_refused() {
    each_mode(|case| {
        case.python(
            r#"
out("tmp", sc(161, b"/tmp")[1])
out("root", sc(161, b"/")[1])
"#,
        )
        .fields(&[("tmp", EPERM), ("root", EPERM)]);
    });
}

/// setns: pid 1's namespaces cannot even be opened; joining any namespace
/// (the command's own, via a pidfd of its child) is refused.
#[test]
fn setns_refused() {
    each_mode(|case| {
        case.python(
            r#"
import subprocess
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
out("open_pid1_mnt", err(os.open, "/proc/1/ns/mnt", os.O_RDONLY))
out("open_pid1_user", err(os.open, "/proc/1/ns/user", os.O_RDONLY))
mnt = os.open("/proc/self/ns/mnt", os.O_RDONLY)
user = os.open("/proc/self/ns/user", os.O_RDONLY)
out("mnt", sc(308, mnt, CLONE_NEWNS)[1])
out("user", sc(308, user, 0)[1])
child = subprocess.Popen(["sleep", "5"])
pidfd = sc(434, child.pid, 0)[0]
out("pidfd", sc(308, pidfd, CLONE_NEWNS | CLONE_NEWUSER)[1])
child.kill()
"#,
        )
        .fields(&[
            ("open_pid1_mnt", EACCES),
            ("open_pid1_user", EACCES),
            ("mnt", EPERM),
            ("user", EPERM),
            ("pidfd", EPERM),
        ]);
    });
}

/// Namespace ioctls cannot hand out the host's namespaces: the parents of
/// the sandbox's user and pid namespaces lie outside its scope.
#[test]
fn namespace_ioctls_stay_inside() {
    each_mode(|case| {
        case.python(
            r#"
import fcntl
NS_GET_USERNS, NS_GET_PARENT = 0xb701, 0xb702
user = os.open("/proc/self/ns/user", os.O_RDONLY)
pid = os.open("/proc/self/ns/pid", os.O_RDONLY)
out("user_parent", err(fcntl.ioctl, user, NS_GET_PARENT))
out("pid_parent", err(fcntl.ioctl, pid, NS_GET_PARENT))
owner = fcntl.ioctl(os.open("/proc/self/ns/net", os.O_RDONLY), NS_GET_USERNS)
out("net_owner_is_ours", int(os.fstat(owner).st_ino == os.stat("/proc/self/ns/user").st_ino))
out("owner_parent", err(fcntl.ioctl, owner, NS_GET_PARENT))
"#,
        )
        .fields(&[
            ("user_parent", EPERM),
            ("pid_parent", EPERM),
            ("net_owner_is_ours", "1"),
            ("owner_parent", EPERM),
        ]);
    });
}

/// unshare(2) with any namespace flag (alone or combined) is refused;
/// unshare of non-namespace state still works (control).
#[test]
fn unshare_namespaces_refused() {
    each_mode(|case| {
        case.python(
            r#"
flags = {
    "user_mnt": 0x10000000 | 0x00020000,
    "user": 0x10000000,
    "mnt": 0x00020000,
    "pid": 0x20000000,
    "net": 0x40000000,
    "ipc": 0x08000000,
    "uts": 0x04000000,
    "cgroup": 0x02000000,
    "time": 0x00000080,
}
for name, f in flags.items():
    out(name, sc(272, f)[1])
out("files", sc(272, 0x00000400)[1])    # CLONE_FILES: not a namespace
"#,
        )
        .fields(&[
            ("user_mnt", EPERM),
            ("user", EPERM),
            ("mnt", EPERM),
            ("pid", EPERM),
            ("net", EPERM),
            ("ipc", EPERM),
            ("uts", EPERM),
            ("cgroup", EPERM),
            ("time", EPERM),
            ("files", "0"),
        ]);
    });
}

/// clone(2) with namespace flags — also with junk in the upper 32 bits,
/// which the kernel ignores — is refused; a plain clone works (control).
#[test]
fn clone_with_namespace_flags_refused() {
    each_mode(|case| {
        case.c(
            r#"
static long try_clone(unsigned long flags) {
    long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    if (r > 0) { waitpid(r, 0, 0); return 0; }
    return errno;
}
int main(void) {
    out("user", try_clone(CLONE_NEWUSER));
    out("user_mnt", try_clone(CLONE_NEWUSER | CLONE_NEWNS));
    out("mnt", try_clone(CLONE_NEWNS));
    out("pid", try_clone(CLONE_NEWPID));
    out("net", try_clone(CLONE_NEWNET));
    out("ipc", try_clone(CLONE_NEWIPC));
    out("uts", try_clone(CLONE_NEWUTS));
    out("cgroup", try_clone(CLONE_NEWCGROUP));
    out("user_high_bits", try_clone(CLONE_NEWUSER | (1UL << 40)));
    out("plain", try_clone(0));
    return 0;
}
"#,
            "",
        )
        .fields(&[
            ("user", EPERM),
            ("user_mnt", EPERM),
            ("mnt", EPERM),
            ("pid", EPERM),
            ("net", EPERM),
            ("ipc", EPERM),
            ("uts", EPERM),
            ("cgroup", EPERM),
            ("user_high_bits", EPERM),
            ("plain", "0"),
        ]);
    });
}

/// clone3 keeps its flags in memory the filter cannot read, so it answers
/// ENOSYS (libc falls back to clone, which is checked) — for any flags.
#[test]
fn clone3_enosys() {
    each_mode(|case| {
        case.c(
            r#"
struct args { unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup; };
static long try_clone3(unsigned long long flags) {
    struct args a;
    memset(&a, 0, sizeof a);
    a.flags = flags;
    a.exit_signal = SIGCHLD;
    long r = syscall(435, &a, sizeof a);
    if (r == 0) _exit(0);
    if (r > 0) { waitpid(r, 0, 0); return 0; }
    return errno;
}
int main(void) {
    out("user", try_clone3(CLONE_NEWUSER));
    out("user_mnt", try_clone3(CLONE_NEWUSER | CLONE_NEWNS));
    out("time", try_clone3(0x80));
    out("plain", try_clone3(0));
    pid_t p = fork();
    if (p == 0) _exit(0);
    out("fork_works", p > 0);
    return 0;
}
"#,
            "",
        )
        .fields(&[
            ("user", ENOSYS),
            ("user_mnt", ENOSYS),
            ("time", ENOSYS),
            ("plain", ENOSYS),
            ("fork_works", "1"),
        ]);
    });
}

/// The new mount API: fsopen, fsconfig, fsmount, fspick, open_tree,
/// move_mount, mount_setattr (clearing read-only on /usr), open_tree_attr.
#[test]
fn new_mount_api_refused() {
    each_mode(|case| {
        case.python(
            r#"
AT_FDCWD, AT_RECURSIVE, OPEN_TREE_CLONE = -100, 0x8000, 1
out("fsopen", sc(430, b"tmpfs", 0)[1])
out("fsconfig", sc(431, 3, 6, None, None, 0)[1])        # FSCONFIG_CMD_CREATE
out("fsmount", sc(432, 3, 0, 0)[1])
out("fspick", sc(433, AT_FDCWD, b"/usr", 0)[1])
out("open_tree", sc(428, AT_FDCWD, b"/", OPEN_TREE_CLONE)[1])
out("move_mount", sc(429, AT_FDCWD, b"/tmp", AT_FDCWD, b"/usr", 0)[1])
attr = struct.pack("=QQQQ", 0, 1, 0, 0)                   # attr_clr = MOUNT_ATTR_RDONLY
out("mount_setattr", sc(442, AT_FDCWD, b"/usr", AT_RECURSIVE, attr, len(attr))[1])
out("open_tree_attr", sc(467, AT_FDCWD, b"/", OPEN_TREE_CLONE, attr, len(attr))[1])
out("usr_still_ro", err(os.open, "/usr/guard-escape", os.O_WRONLY | os.O_CREAT, 0o644))
"#,
        )
        .fields(&[
            ("fsopen", EPERM),
            ("fsconfig", EPERM),
            ("fsmount", EPERM),
            ("fspick", EPERM),
            ("open_tree", EPERM),
            ("move_mount", EPERM),
            ("mount_setattr", EPERM),
            ("open_tree_attr", EPERM),
            ("usr_still_ro", EROFS),
        ]);
    });
}

/// A nested user namespace (where the command would be root with every
/// capability over a fresh view) cannot be created, with util-linux's
/// unshare(1) or directly; capabilities stay empty afterwards.
#[test]
fn nested_user_namespace_refused() {
    each_mode(|case| {
        let out = case.sh(r#"
command -v unshare >/dev/null && echo ran=1
unshare --user --map-root-user --mount sh -c 'echo inside=1; id -u'
echo status=$?
grep CapEff /proc/self/status
"#);
        out.ran().fields(&[("status", "1")]);
        assert!(
            out.field("inside").is_none(),
            "a nested user namespace was created:\n{}",
            out.all()
        );
        assert!(
            out.stderr.contains("Operation not permitted"),
            "{}",
            out.all()
        );
        assert!(
            out.stdout.contains("CapEff:\t0000000000000000"),
            "{}",
            out.all()
        );
    });
}

/// The project is a mount point: it cannot be moved away or removed (which
/// would let the command put something else at its path).
#[test]
fn project_mount_cannot_be_moved() {
    each_mode(|case| {
        case.python(
            r#"
here = os.getcwd()
out("rename", err(os.rename, here, here + ".moved"))
out("rmdir", err(os.rmdir, here))
"#,
        )
        .fields(&[("rename", EBUSY), ("rmdir", EBUSY)]);
        assert!(case.project().join("attack.py").exists());
    });
}
