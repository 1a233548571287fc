//! Other processes: the command may not trace, read, signal or borrow
//! descriptors from pid 1, its own siblings, or anything on the host.

use crate::support::{Expect, each_mode, errno::*};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

/// PTRACE_ATTACH / PTRACE_SEIZE of pid 1 (guard's init, which holds the
/// control socket) is refused by seccomp.
#[test]
fn ptrace_pid1() {
    each_mode(|case| {
        case.python(
            r#"
out("attach", sc(101, 16, 1, 0, 0)[1])       # PTRACE_ATTACH
out("seize", sc(101, 0x4206, 1, 0, 0)[1])    # PTRACE_SEIZE
"#,
        )
        .fields(&[("attach", EPERM), ("seize", EPERM)]);
    });
}

/// Tracing a sibling the command itself started (same uid, dumpable: the
/// kernel alone would allow it) is refused by seccomp, and so is
/// PTRACE_TRACEME.
#[test]
fn ptrace_sibling() {
    each_mode(|case| {
        case.python(
            r#"
import subprocess
child = subprocess.Popen(["sleep", "5"])
out("attach", sc(101, 16, child.pid, 0, 0)[1])
out("seize", sc(101, 0x4206, child.pid, 0, 0)[1])
child.kill()
pid = os.fork()
if pid == 0:
    os._exit(sc(101, 0, 0, 0, 0)[1])          # PTRACE_TRACEME
out("traceme", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"#,
        )
        .fields(&[("attach", EPERM), ("seize", EPERM), ("traceme", EPERM)]);
    });
}

/// process_vm_readv/writev of a forked child (which the kernel alone would
/// allow) and of pid 1.
#[test]
fn process_vm_readv_writev() {
    each_mode(|case| {
        case.python(
            r#"
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
secret = ctypes.create_string_buffer(b"child-memory!")
pid = os.fork()
if pid == 0:
    import time
    time.sleep(5)
    os._exit(0)
dst = ctypes.create_string_buffer(13)
local = iovec(ctypes.addressof(dst), 13)
remote = iovec(ctypes.addressof(secret), 13)
out("readv_child", sc(310, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)[1])
out("writev_child", sc(311, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)[1])
out("readv_pid1", sc(310, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)[1])
os.kill(pid, 9)
"#,
        )
        .fields(&[
            ("readv_child", EPERM),
            ("writev_child", EPERM),
            ("readv_pid1", EPERM),
        ]);
    });
}

/// kill() of host processes by pid — the test runner, a host process started
/// for the test, and the supervisor (whose pid /proc/1/cmdline shows) — finds
/// no such process, and the host process survives.
#[test]
fn kill_host_pids() {
    each_mode(|case| {
        // Outlives any run, however slow: its survival is what is asserted.
        let mut host = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("start a host process");
        let (runner, hostpid) = (std::process::id(), host.id());
        assert!(
            runner > 64 && hostpid > 64,
            "host pids too small to tell apart: {runner} {hostpid}"
        );
        let out = case.python(&format!(
            r#"
argv = open("/proc/1/cmdline", "rb").read().split(b"\0")
sup = int(argv[argv.index(b"__sandbox") + 1])
for name, pid in (("runner", {runner}), ("host", {hostpid}), ("supervisor", sup)):
    out(name + "_probe", err(os.kill, pid, 0))
    out(name + "_kill", err(os.kill, pid, 9))
out("group", err(os.killpg, {hostpid}, 9))
"#
        ));
        let alive = host.try_wait().expect("poll host process").is_none();
        let _ = host.kill();
        let _ = host.wait();
        out.fields(&[
            ("runner_probe", ESRCH),
            ("runner_kill", ESRCH),
            ("host_probe", ESRCH),
            ("host_kill", ESRCH),
            ("supervisor_probe", ESRCH),
            ("supervisor_kill", ESRCH),
            ("group", ESRCH),
        ]);
        assert!(alive, "the host process was killed from inside the sandbox");
    });
}

/// Signals to the command's process group, which it shares with guard and
/// with whatever the user's shell put in the same job (here: a host process
/// of the same uid started next to guard), and kill(-1): the host process
/// survives (Landlock scopes signals to the sandbox) and guard reports the
/// command's own status. kill(-1) finds nobody: it spares pid 1 and the
/// caller, and sees nothing outside the pid namespace.
#[test]
fn signal_process_group() {
    each_mode(|case| {
        case.write_python(
            r#"
import signal
for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
out("kill_group", err(os.kill, 0, signal.SIGTERM))
out("killpg_self", err(os.killpg, 0, signal.SIGUSR1))
out("kill_all", err(os.kill, -1, signal.SIGHUP))
sys.exit(3)
"#,
        );
        let inner = case.guard(&["run", "--", "python3", "attack.py"]);
        let same_uid = match case.mode() {
            crate::common::Mode::Invoker => String::new(),
            crate::common::Mode::Unprivileged => format!(
                "setpriv --reuid={0} --regid={0} --clear-groups ",
                crate::common::NOBODY
            ),
        };
        // A new session whose process group holds a host sleeper and guard.
        let mut cmd = std::process::Command::new("setsid");
        cmd.args([
            "sh",
            "-c",
            &format!(
                "{same_uid}sleep 60 </dev/null >/dev/null 2>&1 & echo host_sleeper=$!; exec \"$@\""
            ),
            "sh",
        ])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(case.project())
        .stdin(std::process::Stdio::null());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        let out = case.output(cmd);
        let sleeper: i32 = out.get("host_sleeper").parse().expect("sleeper pid");
        // SAFETY: probing and then ending the sleeper this test started.
        let alive = unsafe { libc::kill(sleeper, 0) } == 0
            && !std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        unsafe { libc::kill(sleeper, libc::SIGKILL) };
        out.ran()
            .fields(&[
                ("kill_group", "0"),
                ("killpg_self", "0"),
                ("kill_all", ESRCH),
            ])
            .expect_code(3);
        assert!(
            alive,
            "a host process in guard's process group was killed from inside"
        );
    });
}

/// pidfd_open of a host pid fails (ESRCH); of the command's own child it
/// works (control: the call itself is not what fails).
#[test]
fn pidfd_open_host_pid() {
    each_mode(|case| {
        let mut host = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("start a host process");
        let hostpid = host.id();
        let out = case.python(&format!(
            r#"
import subprocess
out("host", sc(434, {hostpid}, 0)[1])
out("runner", sc(434, {runner}, 0)[1])
child = subprocess.Popen(["sleep", "5"])
r, e = sc(434, child.pid, 0)
out("own_child", "fd" if r >= 0 else e)
child.kill()
"#,
            runner = std::process::id()
        ));
        let _ = host.kill();
        let _ = host.wait();
        out.fields(&[("host", ESRCH), ("runner", ESRCH), ("own_child", "fd")]);
    });
}

/// pidfd_getfd (stealing a descriptor from another process) is refused even
/// for the command's own child.
#[test]
fn pidfd_getfd_refused() {
    each_mode(|case| {
        case.python(
            r#"
import subprocess
child = subprocess.Popen(["sleep", "5"])
pidfd, e = sc(434, child.pid, 0)
out("pidfd", "fd" if pidfd >= 0 else e)
out("getfd", sc(438, pidfd, 0, 0)[1])
child.kill()
"#,
        )
        .fields(&[("pidfd", "fd"), ("getfd", EPERM)]);
    });
}

/// Descriptors the caller leaked into guard (here: the host secret file and
/// the host home directory, without close-on-exec) are closed before the
/// command starts.
#[test]
fn inherited_descriptors_closed() {
    each_mode(|case| {
        let secret = std::fs::File::open(&case.home_secret).expect("open host secret");
        let home = std::fs::File::open(case.home()).expect("open host home");
        let (a, b) = (secret.as_raw_fd(), home.as_raw_fd());
        let leak = move |cmd: &mut std::process::Command| {
            // SAFETY: dup2 is async-signal-safe; the new descriptors lose
            // close-on-exec, which is the point.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(a, 77) < 0 || libc::dup2(b, 78) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        };
        // Control: without guard the descriptors do reach the program.
        let mut control = std::process::Command::new("readlink");
        control.args(["/proc/self/fd/77", "/proc/self/fd/78"]);
        leak(&mut control);
        let c = control.output().expect("run control");
        assert!(
            String::from_utf8_lossy(&c.stdout).contains("secret.txt"),
            "control: fd 77 was not inherited: {c:?}"
        );

        case.write(
            "attack.py",
            &format!(
                "{}\n{}",
                crate::support::PY_PRELUDE,
                r#"
out("fd7", err(os.fstat, 77))
out("fd8", err(os.fstat, 78))
out("read7", err(os.read, 77, 100))
out("list8", err(os.listdir, 78))
out("proc7", err(os.stat, "/proc/self/fd/77"))
"#
            ),
        );
        let mut cmd = case.guard(&["run", "--", "python3", "attack.py"]);
        leak(&mut cmd);
        let out = case.output(cmd);
        out.ran().fields(&[
            ("fd7", EBADF),
            ("fd8", EBADF),
            ("read7", EBADF),
            ("list8", EBADF),
            ("proc7", ENOENT),
        ]);
    });
}

/// The command holds only stdin, stdout and stderr. In particular it must
/// not hold guard's control socket: the supervisor (outside the sandbox)
/// trusts every frame on it, so a copy inside lets the command print forged
/// "guard:" errors and hints on the user's terminal and choose guard's exit
/// status. The snippet forges such a frame on every socket it holds.
#[test]
fn control_socket_not_inherited() {
    each_mode(|case| {
        let forged = format!("FORGED-{}", std::process::id());
        let out = case.python(&format!(
            r#"
import json, stat
fds, socks = [], []
for fd in range(64):
    try:
        st = os.fstat(fd)
    except OSError:
        continue
    fds.append(fd)
    if stat.S_ISSOCK(st.st_mode):
        socks.append(fd)
out("open_fds", ",".join(map(str, fds)))
out("sockets", ",".join(map(str, socks)) or "none")
body = json.dumps({{"Failed": {{"msg": "{forged}", "hint": "run guard with --rw ~", "code": 0}}}}).encode()
for fd in socks:
    out("forged_on_%d" % fd, err(os.write, fd, struct.pack("<I", len(body)) + body))
sys.exit(7)
"#
        ));
        assert!(
            !out.stderr.contains(&forged),
            "the command made the supervisor print a forged message (exit {}):\n{}",
            out.code,
            out.stderr
        );
        out.fields(&[("open_fds", "0,1,2"), ("sockets", "none")])
            .expect_code(7);
    });
}

/// SysV shared memory and POSIX shm the host created (holding a canary) do
/// not exist inside: the IPC namespace and /dev/shm are the sandbox's own.
#[test]
fn ipc_and_shm_isolated() {
    each_mode(|mut case| {
        let canary = case.add_canary("shm");
        let key = 0x6775_0000 + (std::process::id() as i32 & 0xffff);
        let id = sysv_segment(key, &canary);
        let posix = std::path::PathBuf::from(format!("/dev/shm/guard-escape-{canary}"));
        std::fs::write(&posix, &canary).expect("write /dev/shm canary");
        case.remove_on_drop(posix.clone());
        let out = case.python(&format!(
            r#"
out("shmget", sc(29, {key}, 0, 0)[1])       # shmget(key, 0, 0)
print(open("/proc/sysvipc/shm").read())
out("posix", err(os.stat, "{posix}"))
out("devshm", ",".join(sorted(os.listdir("/dev/shm"))) or "empty")
"#,
            posix = posix.display()
        ));
        // SAFETY: removing the segment this test created.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        out.fields(&[("shmget", ENOENT), ("posix", ENOENT), ("devshm", "empty")]);
    });
}

/// A SysV shared memory segment holding `content`; returns its id.
fn sysv_segment(key: i32, content: &str) -> i32 {
    // SAFETY: plain System V calls; the attached region is 4096 bytes and we
    // copy fewer bytes than that into it before detaching.
    unsafe {
        let id = libc::shmget(key, 4096, libc::IPC_CREAT | 0o666);
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        let p = libc::shmat(id, std::ptr::null(), 0);
        assert!(
            p as isize != -1,
            "shmat: {}",
            std::io::Error::last_os_error()
        );
        let bytes = content.as_bytes();
        assert!(bytes.len() < 4096);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p as *mut u8, bytes.len());
        libc::shmdt(p);
        id
    }
}
