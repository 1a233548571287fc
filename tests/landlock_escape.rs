//! Escape attempts against the `landlock` isolation level (no namespaces:
//! the command shares the host's file tree, process table and network
//! stack, and guard's host side stands in for what namespaces did).
//!
//! The gaps the level admits (`Isolation::gaps`) are not attacked here;
//! these tests go after the promises it does make: secrets stay unreadable,
//! the network is reached only through the proxy, processes outside stay
//! out of reach, nothing the command leaves behind runs later, and nothing
//! of it survives the session.
//!
//! Each attack checks that it failed, that it failed for the reason the
//! level gives (the exact errno: Landlock's EACCES/EXDEV, seccomp's EPERM),
//! and that no canary reached the output (see tests/escape/support.rs).

mod common;

#[allow(dead_code)]
#[path = "escape/support.rs"]
mod support;

use common::{Outcome, TempDir, pgrep};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{Case, Expect, each_mode, errno};

/// Python run before each snippet (after the suite's prelude): the pids of
/// the processes above the command. The command is `exec python3`, so its
/// parent is guard's setup process, whose parent is guard.
const PIDS: &str = r#"
def ppid_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])
SETUP = os.getppid()
GUARD = ppid_of(SETUP)
with open("/proc/%d/comm" % GUARD) as f:
    out("guard_comm", f.read().strip())
with open("/proc/%d/cmdline" % SETUP, "rb") as f:
    out("setup_is_sandbox", int(b"__sandbox" in f.read()))
def show(path):
    # On success the content reaches stdout, where the canary check sees it.
    with open(path, "rb") as f:
        sys.stdout.write(f.read(4096).decode(errors="replace") + "\n")
"#;

/// `guard run --isolation landlock -- sh -c 'exec python3 SCRIPT'` with
/// `code` (after the preludes) written to SCRIPT in the project; not yet
/// run.
fn ll_python_cmd(case: &Case, script: &str, code: &str) -> Command {
    case.write(
        script,
        &format!("{}\n{PIDS}\n{code}\n", support::PY_PRELUDE),
    );
    let exec = format!("exec python3 {script}");
    case.guard(&["run", "--isolation", "landlock", "--", "sh", "-c", &exec])
}

/// Run what [`ll_python_cmd`] prepared; asserts that it ran, that the pids
/// it found are guard's and its setup process's (so a denial is about those
/// processes, not a wrong pid), and that no canary leaked.
#[track_caller]
fn ll_run(case: &Case, cmd: Command) -> Outcome {
    let out = case.output(cmd);
    out.ran();
    out.fields(&[("guard_comm", "guard"), ("setup_is_sandbox", "1")]);
    out
}

#[track_caller]
fn ll_python(case: &Case, script: &str, code: &str) -> Outcome {
    ll_run(case, ll_python_cmd(case, script, code))
}

/// A name unique to one test run (process markers, file names).
fn marker(tag: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{tag}{}x{n}", std::process::id())
}

/// A git repository with one commit in the case's project.
fn git_init(case: &Case) {
    common::git_repo_with_readme(case.project());
    case.env.own();
}

/// Host processes whose command line holds `marker`, after giving
/// leftovers the time they waited for before acting.
fn leftovers_after(marker: &str, wait: Duration) -> Vec<String> {
    std::thread::sleep(wait);
    pgrep(marker)
}

#[test]
fn secrets_stay_unreadable_through_links_renames_proc_and_inherited_descriptors() {
    each_mode(|mut case| {
        let dotenv = case.add_canary("DOTENV");
        let mixed = case.add_canary("MIXED");
        let ssh = case.add_canary("SSHKEY");
        let inherited = case.add_canary("INHERITED");
        case.write(".env", &format!("STRIPE_SECRET_KEY={dotenv}\n"));
        case.write(
            "src/settings.py",
            &format!("DEBUG = True\npassword = \"{mixed}Qx7Lp2Vz9\"\n"),
        );
        case.write("src/main.py", "print('visible')\n");
        case.write("lib/util.py", "pass\n");
        case.env.home.write(".ssh/id_ed25519", &format!("{ssh}\n"));
        // A link into the real home that was there before the run: the
        // plan grants nothing through it.
        std::os::unix::fs::symlink(case.home().join(".ssh"), case.project().join("homelink"))
            .expect("plant the home link");
        case.env.own();
        // A descriptor guard inherits from its caller, open on a file the
        // sandbox may not read.
        let outside = TempDir::new("ll-fd", case.mode());
        let fd_file = outside.write("inherited.txt", &format!("{inherited}\n"));
        outside.own(case.mode());
        let code = r#"
out("link_env", err(os.link, ".env", "lib/env"))
out("rename_env", err(os.rename, ".env", "lib/env"))
out("link_redacted", err(os.link, "src/settings.py", "lib/settings.py"))
out("link_redacted_beside", err(os.link, "src/settings.py", "src/copy.py"))
out("rename_dir", err(os.rename, "src", "lib/src"))
os.symlink("../.env", "lib/envlink")
out("via_new_symlink", err(show, "lib/envlink"))
out("via_old_symlink", err(show, "homelink/id_ed25519"))
out("via_proc_self_cwd", err(show, "/proc/self/cwd/.env"))
out("via_guard_cwd", err(show, "/proc/%d/cwd/.env" % GUARD))
out("via_guard_root", err(show, "/proc/%d/root@SSH@" % GUARD))
out("guard_mem", err(show, "/proc/%d/mem" % GUARD))
out("guard_environ", err(show, "/proc/%d/environ" % GUARD))
out("setup_environ", err(show, "/proc/%d/environ" % SETUP))
out("guard_fd_link", err(os.readlink, "/proc/%d/fd/0" % GUARD))
out("inherited_fd", err(os.read, 7, 100))
out("inherited_via_proc", err(show, "/proc/self/fd/7"))
pidfd, e = sc(434, GUARD, 0)
out("pidfd_open", e)
out("pidfd_getfd", sc(438, pidfd, 0, 0)[1])
out("ptrace_attach", sc(101, 16, GUARD, 0, 0)[1])
buf = ctypes.create_string_buffer(64)
iov = struct.pack("QQ", ctypes.addressof(buf), 64)
out("process_vm_readv", sc(310, GUARD, iov, 1, iov, 1, 0)[1])
# Hidden system files: as root, without capabilities, file modes still let
# uid 0 read its own /etc/shadow; Landlock alone stands in the way.
out("etc_shadow", err(show, "/etc/shadow"))
out("main_py", err(show, "src/main.py"))
"#
        .replace(
            "@SSH@",
            &case.home().join(".ssh/id_ed25519").display().to_string(),
        );
        let mut cmd = ll_python_cmd(&case, "attack.py", &code);
        let file = std::fs::File::open(&fd_file).expect("open the inherited file");
        {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let raw = file.as_raw_fd();
            // SAFETY: dup2 and fcntl are async-signal-safe; the child only
            // duplicates a descriptor the parent holds open (and makes it
            // survive exec).
            unsafe {
                cmd.pre_exec(move || {
                    let r = if raw == 7 {
                        libc::fcntl(7, libc::F_SETFD, 0)
                    } else {
                        libc::dup2(raw, 7)
                    };
                    if r == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        assert!(
            Path::new("/etc/shadow").exists(),
            "this host has no /etc/shadow"
        );
        let r = ll_run(&case, cmd);
        drop(file);
        r.expect_code(0);
        r.fields(&[
            // Landlock: moving or linking a file out of a directory that
            // may only be listed is a "refer" across rule boundaries.
            ("link_env", errno::EXDEV),
            ("rename_env", errno::EACCES),
            ("link_redacted", errno::EXDEV),
            ("link_redacted_beside", errno::EACCES),
            ("rename_dir", errno::EACCES),
            // Links resolve to the secret's own path, which has no rule.
            ("via_new_symlink", errno::EACCES),
            ("via_old_symlink", errno::EACCES),
            ("via_proc_self_cwd", errno::EACCES),
            // Landlock's ptrace scope: processes outside the domain.
            ("via_guard_cwd", errno::EACCES),
            ("via_guard_root", errno::EACCES),
            ("guard_mem", errno::EACCES),
            ("guard_environ", errno::EACCES),
            ("guard_fd_link", errno::EACCES),
            // The setup process is not dumpable.
            ("setup_environ", errno::EACCES),
            // guard closed what it inherited before starting the command.
            ("inherited_fd", errno::EBADF),
            ("inherited_via_proc", errno::ENOENT),
            // seccomp.
            ("pidfd_open", "0"),
            ("pidfd_getfd", errno::EPERM),
            ("ptrace_attach", errno::EPERM),
            ("process_vm_readv", errno::EPERM),
            ("etc_shadow", errno::EACCES),
            // The project itself works.
            ("main_py", "0"),
        ]);
        assert!(r.stdout.contains("print('visible')"), "{}", r.all());
        for name in ["lib/env", "lib/settings.py", "src/copy.py", "lib/src"] {
            assert!(
                std::fs::symlink_metadata(case.project().join(name)).is_err(),
                "{name} exists:\n{}",
                r.all()
            );
        }
    });
}

/// The attack on the session's end: a process left behind that waits for
/// guard to restore the protected files, then writes a git hook config.
const PLANT_LATER: &str = r#"
def plant_later(delay, tag):
    # A process in its own session that ignores the usual signals, waits
    # past the end of the run, then plants a git config and a file.
    script = ("trap '' TERM HUP INT; sleep %s; "
              "printf '[core]\\n\\tfsmonitor = touch /tmp/pwned-%s\\n' >> .git/config; "
              "echo planted > late-%s") % (delay, tag, tag)
    import subprocess
    subprocess.Popen(["sh", "-c", script], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
"#;

/// After the run: nothing left running, nothing planted.
#[track_caller]
fn assert_nothing_survived(case: &Case, tag: &str, config_before: &str, r: &Outcome) {
    let left = leftovers_after(tag, Duration::from_secs(4));
    assert!(left.is_empty(), "left running: {left:?}\n{}", r.all());
    let config = std::fs::read_to_string(case.project().join(".git/config")).unwrap_or_default();
    assert_eq!(config, config_before, "{}", r.all());
    assert!(
        !case.project().join(format!("late-{tag}")).exists(),
        "a process planted a file after the run:\n{}",
        r.all()
    );
    assert!(!Path::new(&format!("/tmp/pwned-{tag}")).exists());
}

#[test]
fn the_setup_process_and_guard_are_out_of_the_commands_reach() {
    each_mode(|case| {
        git_init(&case);
        let config_before =
            std::fs::read_to_string(case.project().join(".git/config")).expect("read config");
        let tag = marker("llsetup");
        let code = format!(
            "{PLANT_LATER}\nTAG = \"{tag}\"\n{}",
            r#"
import fcntl, resource, signal, time
plant_later(3, TAG)
# The setup process is the subreaper that ends leftovers: killing or
# stopping it would let them outlive the session.
out("kill_setup", err(os.kill, SETUP, signal.SIGKILL))
out("stop_setup", err(os.kill, SETUP, signal.SIGSTOP))
out("kill_guard", err(os.kill, GUARD, signal.SIGKILL))
# Limits of other processes of the same user: a descriptor limit of 3
# leaves guard unable to restore protected files, and the setup process
# unable to list the leftovers it must end.
out("prlimit_guard", err(resource.prlimit, GUARD, resource.RLIMIT_NOFILE, (3, 3)))
out("prlimit_setup", err(resource.prlimit, SETUP, resource.RLIMIT_NOFILE, (3, 3)))
out("prlimit_guard_cpu", err(resource.prlimit, GUARD, resource.RLIMIT_CPU, (0, 0)))
out("prlimit_read", err(resource.prlimit, GUARD, resource.RLIMIT_NOFILE))
out("prlimit_own", err(resource.setrlimit, resource.RLIMIT_CORE, (0, 0)))
# SIGKILL by way of SIGIO: F_SETOWN names the process the kernel signals
# when the socket becomes readable.
for name, pid in (("sigio_setup", SETUP), ("sigio_guard", GUARD)):
    a, b = socket.socketpair()
    fcntl.fcntl(a, fcntl.F_SETOWN, pid)
    fcntl.fcntl(a, 10, signal.SIGKILL)  # F_SETSIG
    fcntl.fcntl(a, fcntl.F_SETFL, fcntl.fcntl(a, fcntl.F_GETFL) | os.O_ASYNC)
    b.send(b"x")
    time.sleep(0.2)
    out(name, "sent")
# guard and the setup process must outlive memory exhaustion: the sandbox
# is the OOM killer's first choice, and cannot change that.
with open("/proc/self/oom_score_adj") as f:
    out("oom_score_adj", f.read().strip())
out("oom_lower", err(os.open, "/proc/self/oom_score_adj", os.O_WRONLY))
out("oom_guard", err(os.open, "/proc/%d/oom_score_adj" % GUARD, os.O_WRONLY))
# Something to restore, so the restore is seen to work.
with open(".git/config", "a") as f:
    f.write("[core]\n\thooksPath = /tmp/evil-hooks\n")
out("done", 1)
"#
        );
        let r = ll_python(&case, "attack.py", &code);
        // Both processes lived through it: the run ended normally.
        r.expect_code(0);
        r.fields(&[
            ("kill_setup", errno::EPERM),
            ("stop_setup", errno::EPERM),
            ("kill_guard", errno::EPERM),
            ("prlimit_guard", errno::EPERM),
            ("prlimit_setup", errno::EPERM),
            ("prlimit_guard_cpu", errno::EPERM),
            // Reading them is refused too (/proc/PID/limits shows them);
            // one's own stay settable.
            ("prlimit_read", errno::EPERM),
            ("prlimit_own", "0"),
            ("oom_score_adj", "1000"),
            ("oom_lower", errno::EACCES),
            ("oom_guard", errno::EACCES),
            ("sigio_setup", "sent"),
            ("sigio_guard", "sent"),
            ("done", "1"),
        ]);
        assert!(r.stderr.contains("restored it"), "{}", r.all());
        assert_nothing_survived(&case, &tag, &config_before, &r);
    });
}

#[test]
fn leftovers_end_with_the_session_however_they_hide() {
    each_mode(|case| {
        git_init(&case);
        let config_before =
            std::fs::read_to_string(case.project().join(".git/config")).expect("read config");
        let tag = marker("llhop");
        // The script's name carries the marker into every fork's command line.
        let script = format!("hop-{tag}.py");
        let code = format!(
            "{PLANT_LATER}\nTAG = \"{tag}\"\n{}",
            r#"
import signal, time
plant_later(3, TAG)
def chain():
    # A pid that never stays: fork, and let the parent exit, for 3 s.
    start = time.time()
    while time.time() - start < 3:
        try:
            if os.fork():
                os._exit(0)
        except OSError:
            time.sleep(0.01)
    with open(".git/config", "a") as f:
        f.write("[alias]\n\tst = !touch /tmp/pwned-" + TAG + "\n")
    os._exit(0)
for _ in range(8):
    if os.fork() == 0:
        chain()
# Deaf to everything but SIGKILL, in a session of its own, its parent gone.
if os.fork() == 0:
    os.setsid()
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR1):
        signal.signal(s, signal.SIG_IGN)
    if os.fork() == 0:
        time.sleep(3)
        open("late-" + TAG, "w").write("planted")
    os._exit(0)
# No parent-death signal at all (the command's is not inherited, and
# this one clears its own anyway).
if os.fork() == 0:
    libc = ctypes.CDLL(None)
    libc.prctl(1, 0)  # PR_SET_PDEATHSIG 0
    time.sleep(3)
    open("late-" + TAG, "w").write("planted")
    os._exit(0)
time.sleep(0.3)
out("done", 1)
"#
        );
        let r = ll_python(&case, &script, &code);
        r.expect_code(0).fields(&[("done", "1")]);
        assert_nothing_survived(&case, &tag, &config_before, &r);
    });
}

#[test]
fn the_network_has_no_way_around_the_proxy() {
    each_mode(|mut case| {
        // A host service the sandbox may not reach; its greeting is a canary.
        let greeting = case.add_canary("GREETING");
        let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind test server");
        let port = server.local_addr().expect("server address").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        {
            let accepted = accepted.clone();
            let greeting = greeting.clone();
            std::thread::spawn(move || {
                for mut s in server.incoming().flatten() {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = writeln!(s, "{greeting}");
                }
            });
        }
        // A host daemon's unix datagram socket, writable by everyone.
        let sockdir = TempDir::new("ll-dgram", case.mode());
        std::fs::set_permissions(&sockdir.path, std::fs::Permissions::from_mode(0o777))
            .expect("chmod socket dir");
        let dgram_path = sockdir.join("daemon.sock");
        let daemon =
            std::os::unix::net::UnixDatagram::bind(&dgram_path).expect("bind the datagram socket");
        std::fs::set_permissions(&dgram_path, std::fs::Permissions::from_mode(0o777))
            .expect("chmod the datagram socket");
        daemon.set_nonblocking(true).expect("nonblocking");
        let code = r#"
PORT = @PORT@
def listen(family):
    s = socket.socket(family)
    s.listen()
    # Were it listening, anyone could connect in: print where.
    out("listening_on", s.getsockname())
# listen() on an unbound socket binds an ephemeral port on every address
# without asking bind(2), which Landlock checks.
out("listen", err(listen, socket.AF_INET))
out("listen6", err(listen, socket.AF_INET6))
out("bind", err(socket.socket().bind, ("127.0.0.1", 0)))
out("connect", err(socket.socket().connect, ("127.0.0.1", PORT)))
def fastopen():
    s = socket.socket()
    s.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, ("127.0.0.1", PORT))
    out("fastopen_got", s.recv(200).decode(errors="replace"))
out("fastopen", err(fastopen))
def fastopen_msg():
    s = socket.socket()
    s.sendmsg([b"x"], [], socket.MSG_FASTOPEN, ("127.0.0.1", PORT))
    out("fastopen_msg_got", s.recv(200).decode(errors="replace"))
out("fastopen_msg", err(fastopen_msg))
out("udp", err(socket.socket, socket.AF_INET, socket.SOCK_DGRAM))
out("unix", err(socket.socket, socket.AF_UNIX, socket.SOCK_STREAM))
out("unix_dgram", err(socket.socket, socket.AF_UNIX, socket.SOCK_DGRAM))
out("mptcp", err(socket.socket, socket.AF_INET, socket.SOCK_STREAM, 262))
# A pair of unix sockets is no way out, but a datagram one may send to any
# unix socket on the host by path (a daemon's, like /dev/log).
def unix_dgram_pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.sendto(b"@CANARY@", "@DGRAM@")
out("socketpair_dgram", err(unix_dgram_pair))
# The kernel turns a unix SOCK_RAW socket into a datagram one.
def unix_raw_pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_RAW)
    a.sendto(b"@CANARY@", "@DGRAM@")
out("socketpair_raw", err(unix_raw_pair))
out("socketpair_stream", err(socket.socketpair, socket.AF_UNIX, socket.SOCK_STREAM))
out("socketpair_seqpacket", err(socket.socketpair, socket.AF_UNIX, socket.SOCK_SEQPACKET))
out("io_uring_setup", sc(425, 8, ctypes.create_string_buffer(120))[1])
# Shared with the host's processes without an IPC namespace.
out("shmget", sc(29, 0, 4096, 0o1600)[1])
out("msgget", sc(68, 0, 0o1600)[1])
out("semget", sc(64, 0, 1, 0o1600)[1])
out("mq_open", sc(240, b"guard-escape", 0o102, 0o600, None)[1])
"#
        .replace("@PORT@", &port.to_string())
        .replace("@CANARY@", &greeting)
        .replace("@DGRAM@", &dgram_path.display().to_string());
        let r = ll_python(&case, "attack.py", &code);
        r.expect_code(0);
        r.fields(&[
            ("listen", errno::EPERM),
            ("listen6", errno::EPERM),
            ("bind", errno::EACCES),
            ("connect", errno::EACCES),
            ("fastopen", errno::EPERM),
            ("fastopen_msg", errno::EPERM),
            ("udp", errno::EPERM),
            ("unix", errno::EPERM),
            ("unix_dgram", errno::EPERM),
            ("mptcp", errno::EPERM),
            ("socketpair_dgram", errno::EPERM),
            ("socketpair_raw", errno::EPERM),
            ("socketpair_stream", "0"),
            ("socketpair_seqpacket", "0"),
            ("io_uring_setup", errno::EPERM),
            ("shmget", errno::EPERM),
            ("msgget", errno::EPERM),
            ("semget", errno::EPERM),
            ("mq_open", errno::EPERM),
        ]);
        assert!(r.field("listening_on").is_none(), "{}", r.all());
        // The server is up (the test's own connection gets the greeting),
        // and the sandbox never reached it.
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("reach the server");
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        assert!(got.contains(&greeting));
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        let mut buf = [0u8; 256];
        assert!(
            daemon.recv(&mut buf).is_err(),
            "the daemon got a datagram from the sandbox"
        );
    });
}

/// A pseudo-terminal on the host (another of the user's terminals): the
/// master and the slave's path.
fn host_pty() -> (std::fs::File, String) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls on a descriptor this function owns.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut buf = [0 as libc::c_char; 64];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0);
        let name = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        (std::fs::File::from_raw_fd(m), name)
    }
}

#[test]
fn other_terminals_stay_closed() {
    each_mode(|mut case| {
        let typed = case.add_canary("TYPED");
        let (mut master, slave) = host_pty();
        // Open to everyone, so only the sandbox can stand in the way.
        std::fs::set_permissions(&slave, std::fs::Permissions::from_mode(0o666))
            .expect("chmod the slave");
        // What the user types there.
        master
            .write_all(format!("{typed}\n").as_bytes())
            .expect("type into the host terminal");
        let code = r#"
def read_tty(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    sys.stdout.write(os.read(fd, 200).decode(errors="replace"))
out("other_pts", err(read_tty, "@PTS@"))
out("pts_dir", err(os.listdir, "/dev/pts"))
# A new terminal of its own stays possible (and harmless).
out("ptmx", err(lambda: os.close(os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY))))
"#
        .replace("@PTS@", &slave);
        let r = ll_python(&case, "attack.py", &code);
        r.expect_code(0).fields(&[
            ("other_pts", errno::EACCES),
            ("pts_dir", errno::EACCES),
            ("ptmx", "0"),
        ]);
        drop(master);
    });
}

#[test]
fn protected_files_are_restored_whatever_replaced_them() {
    each_mode(|case| {
        git_init(&case);
        // An IDE's run configurations, both protected paths present; no
        // secret in the project root, so the command may rename in it.
        case.write(".idea/workspace.xml", "<project version=\"4\"/>\n");
        case.write(".idea/runConfigurations/app.xml", "<component/>\n");
        case.write(".vscode/settings.json", "{}\n");
        case.write(".vscode/tasks.json", "{\"version\": \"2.0.0\"}\n");
        case.write(".vscode/launch.json", "{}\n");
        let p = case.project();
        let before = |rel: &str| std::fs::read(p.join(rel)).expect("read fixture");
        let config = before(".git/config");
        let workspace = before(".idea/workspace.xml");
        let tasks = before(".vscode/tasks.json");
        let config_mode = std::fs::metadata(p.join(".git/config"))
            .expect("stat config")
            .permissions()
            .mode();
        let tag = marker("llprot");
        let script = format!(
            "set -e
printf '#!/bin/sh\\ntouch /tmp/pwned-{tag}\\n' > lib-evil.sh; chmod +x lib-evil.sh
# a hook that is a link to a script elsewhere in the project
ln -s ../../lib-evil.sh .git/hooks/pre-commit
# a hook too large to be snapshotted
{{ printf '#!/bin/sh\\ntouch /tmp/pwned-{tag}\\nexit 0\\n'; head -c 5000000 /dev/zero | tr '\\0' '#'; }} > .git/hooks/post-commit
chmod +x .git/hooks/post-commit
mkfifo .git/hooks/post-checkout
# the directory of protected files swapped for a link to a copy with one changed
mkdir evil-idea; cp -r .idea/runConfigurations evil-idea/
echo '<project><component name=\"RunManager\" evil=\"{tag}\"/></project>' > evil-idea/workspace.xml
mv .idea idea-moved; ln -s evil-idea .idea
# ... for a plain file in place of the directory
mv .vscode vscode-moved; echo '{tag}' > .vscode
# and the config made executable by all
chmod 777 .git/config
echo done=1"
        );
        let r = case.run(&["run", "--isolation", "landlock", "--", "sh", "-c", &script]);
        r.expect_code(0);
        assert_eq!(r.field("done").as_deref(), Some("1"), "{}", r.all());
        let gone = |rel: &str| std::fs::symlink_metadata(p.join(rel)).is_err();
        for hook in ["pre-commit", "post-commit", "post-checkout"] {
            assert!(
                gone(&format!(".git/hooks/{hook}")),
                "{hook} kept:\n{}",
                r.all()
            );
        }
        for dir in [".idea", ".vscode"] {
            let meta = std::fs::symlink_metadata(p.join(dir)).expect("restored");
            assert!(
                meta.is_dir(),
                "{dir} is not a directory again:\n{}",
                r.all()
            );
        }
        assert_eq!(before(".idea/workspace.xml"), workspace, "{}", r.all());
        assert_eq!(before(".vscode/tasks.json"), tasks, "{}", r.all());
        assert_eq!(before(".git/config"), config, "{}", r.all());
        let mode = std::fs::metadata(p.join(".git/config"))
            .expect("stat config")
            .permissions()
            .mode();
        assert_eq!(mode, config_mode, "{}", r.all());
        assert!(!r.stderr.contains("WARNING"), "{}", r.all());
        assert!(r.stderr.contains("restored it"), "{}", r.all());
        // Nothing of it ran on the host side.
        assert!(!Path::new(&format!("/tmp/pwned-{tag}")).exists());
    });
}

#[test]
fn links_in_the_session_directories_do_not_redirect_guard() {
    each_mode(|case| {
        // A directory of the user's outside every grant, writable by them.
        let outside = TempDir::new("ll-outside", case.mode());
        outside.write("victim.txt", "keep me\n");
        outside.own(case.mode());
        // A persistent home with a link guard makes in it (~/.config/git).
        case.env
            .home
            .write(".config/git/config", "[user]\n\tname = t\n");
        let profile = case.write(
            "persist.toml",
            "version = 1\nextends = [\"default\"]\n[home]\npersist = true\n",
        );
        case.env.own();
        let o = outside.path.display().to_string();
        let script = format!(
            "echo linked=$(readlink \"$HOME/.config/git\"); \
             ln -s {o} \"$TMPDIR/outside\"; ln -s {o}/victim.txt \"$TMPDIR/victim\"; \
             ln -s {o} \"$HOME/outside\"; \
             echo x > \"$TMPDIR/outside/new\"; echo write_rc=$?; \
             echo x >> {o}/victim.txt; echo direct_rc=$?; \
             rm -rf \"$HOME/.config\"; ln -s {o} \"$HOME/.config\"; echo home=$HOME; echo tmp=$TMPDIR"
        );
        let args = [
            "run",
            "--isolation",
            "landlock",
            "-p",
            profile.to_str().expect("utf-8 path"),
            "--",
            "sh",
            "-c",
        ];
        let mut a = args.to_vec();
        a.push(&script);
        let r = case.run(&a);
        r.expect_code(0);
        // guard linked the granted ~/.config/git into the persistent home.
        assert_eq!(
            r.field("linked"),
            Some(case.home().join(".config/git").display().to_string()),
            "{}",
            r.all()
        );
        assert_ne!(r.field("write_rc").as_deref(), Some("0"), "{}", r.all());
        assert_ne!(r.field("direct_rc").as_deref(), Some("0"), "{}", r.all());
        assert!(r.stderr.contains("Permission denied"), "{}", r.all());
        let tmp = r.field("tmp").expect("tmp printed");
        assert!(!Path::new(&tmp).exists(), "{tmp} left behind");
        // The second run links ~/.config/git into the persistent home again:
        // not through the link the first run left there.
        let r2 = case.run(&[
            "run",
            "--isolation",
            "landlock",
            "-p",
            profile.to_str().expect("utf-8 path"),
            "--",
            "true",
        ]);
        r2.expect_code(0);
        let entries: Vec<String> = std::fs::read_dir(&outside.path)
            .expect("list outside")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries, vec!["victim.txt".to_string()], "{}", r.all());
        assert_eq!(
            std::fs::read_to_string(outside.join("victim.txt")).expect("victim"),
            "keep me\n"
        );
    });
}

#[test]
fn quarantine_names_made_in_advance_do_not_stop_the_restore() {
    each_mode(|case| {
        git_init(&case);
        let p = case.project();
        let config = std::fs::read(p.join(".git/config")).expect("read config");
        // The names guard moves things aside to end in the time in seconds:
        // a non-empty directory at each of the next minute's names makes a
        // plain rename fail (for a file and for a directory alike).
        let script = "now=$(date +%s); for i in $(seq -2 60); do t=$((now+i)); \
             mkdir -p .git/config.guard-quarantine-$t/x .git/hooks.guard-quarantine-$t/x .envrc.guard-quarantine-$t/x; done; \
             printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' >> .git/config; \
             printf '#!/bin/sh\\ntouch /tmp/pwned\\n' > .git/hooks/pre-commit; \
             echo 'touch /tmp/pwned' > .envrc; echo done=1";
        // The absent protected paths are moved aside at both levels.
        for level in [&["--isolation", "landlock"][..], &[][..]] {
            let mut args = vec!["run"];
            args.extend_from_slice(level);
            args.extend_from_slice(&["--", "sh", "-c", script]);
            let r = case.run(&args);
            r.expect_code(0);
            assert_eq!(r.field("done").as_deref(), Some("1"), "{}", r.all());
            assert!(!r.stderr.contains("WARNING"), "{level:?}:\n{}", r.all());
            assert!(
                std::fs::symlink_metadata(p.join(".envrc")).is_err(),
                "{level:?}: .envrc kept:\n{}",
                r.all()
            );
            assert!(
                !p.join(".git/hooks/pre-commit").exists(),
                "{level:?}: hook kept:\n{}",
                r.all()
            );
            assert_eq!(
                std::fs::read(p.join(".git/config")).expect("read config"),
                config,
                "{level:?}:\n{}",
                r.all()
            );
        }
    });
}

#[test]
fn a_second_session_cannot_take_the_firsts_writes_for_the_original() {
    each_mode(|case| {
        git_init(&case);
        let p = case.project();
        let config = std::fs::read(p.join(".git/config")).expect("read config");
        let tag = marker("llconc");
        // The first session writes a hook config and stays until the second
        // has tried (a minute at most: a fixed time could end it first on a
        // loaded machine); a second session in the same project would
        // snapshot the config as written and, ending last, put it back
        // after the first restored it.
        let first = format!(
            "printf '[core]\\n\\tfsmonitor = touch /tmp/pwned-{tag}\\n' >> .git/config; \
             touch started-{tag}; i=0; while [ ! -e tried-{tag} ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done"
        );
        let mut a = case.guard(&["run", "--isolation", "landlock", "--", "sh", "-c", &first]);
        a.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut a = a.spawn().expect("spawn the first session");
        let started = p.join(format!("started-{tag}"));
        for _ in 0..600 {
            if started.exists() || a.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !started.exists() {
            let _ = a.kill();
            let first = Outcome::from(a.wait_with_output().expect("wait for the first session"));
            panic!("the first session did not start:\n{}", first.all());
        }
        // (Ending after the first, as it would if it could start.)
        let second = case.run(&["run", "--isolation", "landlock", "--", "sleep", "5"]);
        std::fs::write(p.join(format!("tried-{tag}")), "").expect("end the first session");
        let first = Outcome::from(a.wait_with_output().expect("wait for the first session"));
        case.assert_no_leak(&first);
        first.expect_code(0);
        assert_eq!(
            std::fs::read(p.join(".git/config")).expect("read config"),
            config,
            "{}{}",
            first.all(),
            second.all()
        );
        second.expect_code(125);
        assert!(
            second.stderr.contains("another guard session"),
            "{}",
            second.all()
        );
        // Once the first has ended, the project is free again.
        case.run(&["run", "--isolation", "landlock", "--", "true"])
            .expect_code(0);
    });
}

#[test]
fn a_directory_swapped_for_a_link_between_plan_and_lock_grants_nothing_there() {
    each_mode(|mut case| {
        let token = case.add_canary("SWAPPED");
        // The user's real home elsewhere, readable by the sandbox's uid:
        // only Landlock stands in the way.
        let elsewhere = TempDir::new("ll-swap-home", case.mode());
        elsewhere.write("user/.config/token", &format!("{token}\n"));
        elsewhere.own(case.mode());
        // A secret in the project splits the grant down to lib/user: its
        // entries (.config) get rules of their own, found by listing.
        // Assembled here so guard's own tree holds no secret-shaped literal.
        case.write(
            "lib/user/.env",
            &format!(
                "STRIPE_SECRET_KEY={}_live_51Habcdefghijklmnopqrstuvwx\n",
                "sk"
            ),
        );
        case.write("lib/user/.config/known", "x\n");
        let p = case.project().to_path_buf();
        std::os::unix::fs::symlink(&elsewhere.path, p.join("lib_link")).expect("plant the link");
        case.env.own();
        let e = case.run(&["explain", "--isolation", "landlock", "--", "true"]);
        e.expect_code(0);
        assert!(
            e.stdout
                .contains(&format!("{}/lib/user/.config", p.display())),
            "no rule of its own for lib/user/.config:\n{}",
            e.all()
        );
        // A process writing in the project (another sandbox, at the same
        // time) swaps lib and the link to the home, over and over: a rule
        // for lib/user/.config opened through the link would grant the
        // real home's .config.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let stop = stop.clone();
            let (a, b) = (p.join("lib"), p.join("lib_link"));
            std::thread::spawn(move || {
                use std::os::unix::ffi::OsStrExt;
                let a = std::ffi::CString::new(a.as_os_str().as_bytes()).expect("path");
                let b = std::ffi::CString::new(b.as_os_str().as_bytes()).expect("path");
                let mut swaps = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // SAFETY: two valid C strings; renameat2 only names them.
                    let r = unsafe {
                        libc::renameat2(
                            libc::AT_FDCWD,
                            a.as_ptr(),
                            libc::AT_FDCWD,
                            b.as_ptr(),
                            libc::RENAME_EXCHANGE,
                        )
                    };
                    if r == 0 {
                        swaps += 1;
                    }
                }
                swaps
            })
        };
        // Stops the swapper however this test ends.
        struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Stop {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let stopper = Stop(stop.clone());
        let target = elsewhere.join("user/.config/token");
        let target = target.to_str().expect("utf-8 path");
        let mut denied = 0;
        // Unfixed, about half the runs read the token: twenty runs leave
        // no chance to miss it.
        for _ in 0..20 {
            let r = case.run(&["run", "--isolation", "landlock", "--", "cat", target]);
            if r.stderr.contains("Permission denied") {
                denied += 1;
            } else {
                eprintln!("{}", r.all());
            }
        }
        drop(stopper);
        let swaps = swapper.join().expect("the swapper");
        assert!(swaps > 100, "only {swaps} swaps: the race did not run");
        assert_eq!(denied, 20, "some runs failed otherwise");
    });
}

/// Run a prepared guard command and return its outcome and its peak
/// resident memory in KiB (wait4's, which counts the guard process).
// The child is reaped by wait4, for the resource usage std's wait drops.
#[allow(clippy::zombie_processes)]
fn output_and_peak_memory(cmd: &mut Command) -> (Outcome, i64) {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn guard");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let mut stdout = Vec::new();
    let _ = out.read_to_end(&mut stdout);
    let stderr = reader.join().expect("stderr reader");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which std has not reaped.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let outcome = Outcome {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    (outcome, usage.ru_maxrss)
}

#[test]
fn the_restore_does_not_read_what_the_sandbox_added() {
    each_mode(|case| {
        git_init(&case);
        let tag = marker("llbig");
        // Files at the snapshot's size limit, sparse (no disk), in the
        // hooks directory next to a planted hook: read whole for the
        // comparison after the run, they take guard's memory (1 GB here;
        // any amount in truth), and guard killed for it restores nothing.
        let script = format!(
            "for i in $(seq 1 250); do truncate -s 4194304 .git/hooks/big$i || exit 9; done; \
             printf '#!/bin/sh\\ntouch /tmp/pwned-{tag}\\n' > .git/hooks/pre-commit; \
             chmod +x .git/hooks/pre-commit; echo done=1"
        );
        let mut cmd = case.guard(&["run", "--isolation", "landlock", "--", "sh", "-c", &script]);
        let (r, peak_kib) = output_and_peak_memory(&mut cmd);
        case.assert_no_leak(&r);
        r.expect_code(0);
        assert_eq!(r.field("done").as_deref(), Some("1"), "{}", r.all());
        let hooks = case.project().join(".git/hooks");
        assert!(!hooks.join("pre-commit").exists(), "{}", r.all());
        assert!(!hooks.join("big1").exists(), "{}", r.all());
        assert!(r.stderr.contains("restored it"), "{}", r.all());
        assert!(
            peak_kib < 300 * 1024,
            "guard peaked at {} MiB:\n{}",
            peak_kib / 1024,
            r.all()
        );
    });
}

#[test]
fn read_only_directories_do_not_stop_the_restore() {
    each_mode(|case| {
        git_init(&case);
        case.write(".idea/workspace.xml", "<project version=\"4\"/>\n");
        let p = case.project();
        let config = std::fs::read(p.join(".git/config")).expect("read config");
        let workspace = std::fs::read(p.join(".idea/workspace.xml")).expect("read workspace");
        // Landlock does not govern modes: the sandbox can take write access
        // to the directories above what it planted away from their owner,
        // guard's own user (root keeps it: that mode tests guard as root).
        let script = "printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' >> .git/config; \
             printf '#!/bin/sh\\ntouch /tmp/pwned\\n' > .git/hooks/pre-commit; \
             echo 'touch /tmp/pwned' > .envrc; \
             echo '<evil/>' > .idea/workspace.xml; \
             chmod 555 .git/hooks .git . && chmod 000 .idea && echo done=1";
        let r = case.run(&["run", "--isolation", "landlock", "--", "sh", "-c", script]);
        r.expect_code(0);
        assert_eq!(r.field("done").as_deref(), Some("1"), "{}", r.all());
        assert!(!r.stderr.contains("WARNING"), "{}", r.all());
        assert_eq!(
            std::fs::read(p.join(".git/config")).expect("read config"),
            config,
            "{}",
            r.all()
        );
        assert!(!p.join(".git/hooks/pre-commit").exists(), "{}", r.all());
        assert!(
            std::fs::symlink_metadata(p.join(".envrc")).is_err(),
            "{}",
            r.all()
        );
        assert_eq!(
            std::fs::read(p.join(".idea/workspace.xml")).expect("read workspace"),
            workspace,
            "{}",
            r.all()
        );
    });
}
