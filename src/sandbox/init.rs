//! The sandbox side of the process tree (see DESIGN.md, "Process model"):
//!
//! ```text
//! guard __sandbox (re-executed; fresh single thread)   `setup`
//!   unshare user+mount+pid+net+ipc+uts+cgroup, write uid/gid maps
//!   └── pid 1 of the sandbox                           `pid1`
//!        mounts, pivot_root, lo up, lock, then fork+exec the command, reap
//!        └── COMMAND
//! ```
//!
//! Both processes die with their parent (PDEATHSIG), so killing the
//! supervisor kills the whole sandbox: pid 1's death takes every process of
//! its pid namespace with it.

use super::channel::{self, Report};
use super::{listeners, lock, mounts, sys};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::profile::Isolation;
use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Signals relayed down the tree when a process (not the terminal) sent them.
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The descriptors the supervisor passes to the setup process.
pub struct Fds {
    /// The control socket.
    pub control: i32,
    /// The socket the supervisor asks for covers on (see `keeper`).
    pub keeper: i32,
    /// The write end of the status pipe: pid 1's status once it is reaped.
    pub reaped: i32,
}

/// Entry of the re-executed setup process; `parent` is the supervisor's pid.
pub fn setup_main(fds: Fds, parent: i32, isolation: Isolation) -> ! {
    // The descriptors had to survive our own exec; nothing we exec may
    // inherit them: the command could otherwise forge reports (or hand the
    // supervisor sockets of its own), claim the sandbox has ended, and
    // hold the supervisor's end open.
    if [fds.control, fds.keeper, fds.reaped]
        .into_iter()
        .any(|fd| sys::set_cloexec(fd).is_err())
    {
        sys::exit_now(125);
    }
    // SAFETY: the supervisor passed these descriptors to us for our
    // exclusive use.
    let (mut sock, keeper, reaped) = unsafe {
        (
            Some(UnixStream::from_raw_fd(fds.control)),
            UnixStream::from_raw_fd(fds.keeper),
            std::fs::File::from_raw_fd(fds.reaped),
        )
    };
    let result = match isolation {
        Isolation::Full => setup(&mut sock, keeper, reaped, parent),
        Isolation::Landlock => {
            // No mounts to keep; this process is the one the command's
            // end is waited for by (end of file on the pipe).
            drop((keeper, reaped));
            host_setup(&mut sock, parent)
        }
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => report_failure(&mut sock, &e),
    };
    sys::exit_now(code)
}

/// The control socket, held until this process has nothing more to report
/// (then dropped, so the supervisor sees end-of-stream once all holders are done).
type Sock = Option<UnixStream>;

fn report_failure(sock: &mut Sock, e: &Error) -> i32 {
    if let (Error::NoNamespaces { cause, hint }, Some(s)) = (e, sock.as_mut()) {
        let report = Report::NoNamespaces {
            cause: cause.clone(),
            hint: hint.clone(),
        };
        let _ = channel::send(s, &report);
        return 125;
    }
    let (msg, hint, code) = match e {
        Error::Sandbox { msg, hint, code } => (msg.clone(), hint.clone(), *code),
        other => (
            other.to_string(),
            other.hint().map(str::to_string),
            other.exit_code(),
        ),
    };
    // If even this fails, the supervisor still sees our exit status.
    if let Some(s) = sock {
        let _ = channel::send(s, &Report::Failed { msg, hint, code });
    }
    code
}

/// First steps of the setup process at every level: die with the
/// supervisor (checking the parent afterwards closes the race where it died
/// before the prctl), and block the forwarded signals and SIGCHLD before
/// forking so none is lost (they are waited for with sigwaitinfo). `None`:
/// the supervisor is already gone.
fn tie_to_supervisor(parent: i32) -> Result<Option<Vec<libc::c_int>>> {
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .map_err(|e| Error::sys("set parent-death signal", e))?;
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        return Ok(None);
    }
    let mut waited: Vec<libc::c_int> = FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    sys::block_signals(&waited).map_err(|e| Error::sys("block signals", e))?;
    Ok(Some(waited))
}

fn setup(
    sock: &mut Sock,
    keeper: UnixStream,
    mut reaped: std::fs::File,
    parent: i32,
) -> Result<i32> {
    let Some(waited) = tie_to_supervisor(parent)? else {
        return Ok(125);
    };
    // The namespaces need nothing from the plan: create them while the
    // supervisor is still building it (it runs in parallel on another core).

    // Our ids before unshare: afterwards they read as the overflow id until
    // the maps are written.
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    unshare_namespaces()?;
    write_id_maps(uid, gid)?;
    // pid 1 hands the reserve of the view it builds to this process.
    let (reserve_rx, reserve_tx) =
        UnixStream::pair().map_err(|e| Error::sys("create a socket pair", e))?;

    // SAFETY: this process is single-threaded (re-executed, no threads
    // started), so the child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork the sandbox's pid 1", e))? {
        nix::unistd::ForkResult::Child => {
            drop((keeper, reserve_rx, reaped));
            let code = match pid1(sock, reserve_tx) {
                Ok(code) => code,
                Err(e) => report_failure(sock, &e),
            };
            sys::exit_now(code)
        }
        nix::unistd::ForkResult::Parent { child } => {
            // pid 1 reports from now on; our copy must not keep the socket open.
            drop(sock.take());
            drop(reserve_tx);
            // Nothing more to print: the copies of the supervisor's stdout
            // and stderr go, so that guard's copies from them (when they
            // are files) end when the sandbox does, not when we do.
            sys::detach_output();
            let mut keeper = super::keeper::Serving::new(keeper, reserve_rx);
            Ok(relay_until_exit(
                child.as_raw(),
                &waited,
                &mut keeper,
                &mut reaped,
            ))
        }
    }
}

fn unshare_namespaces() -> Result<()> {
    use nix::sched::CloneFlags as F;
    let flags = F::CLONE_NEWUSER
        | F::CLONE_NEWNS
        | F::CLONE_NEWPID
        | F::CLONE_NEWNET
        | F::CLONE_NEWIPC
        | F::CLONE_NEWUTS
        | F::CLONE_NEWCGROUP;
    nix::sched::unshare(flags).map_err(|e| {
        let apparmor =
            std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                .is_ok_and(|s| s.trim() == "1");
        let hint = if apparmor {
            "this system restricts unprivileged user namespaces with AppArmor \
             (kernel.apparmor_restrict_unprivileged_userns=1); run ./install.sh, which offers to \
             install an AppArmor profile for guard only"
        } else if e == nix::Error::ENOSPC {
            "user namespaces are limited by user.max_user_namespaces; raise it with \
             `sudo sysctl user.max_user_namespaces=10000`"
        } else {
            "unprivileged user namespaces are disabled or blocked here (inside Docker, the default \
             seccomp profile forbids them); on the host enable them with \
             `sudo sysctl kernel.unprivileged_userns_clone=1`, or see `guard check`"
        };
        Error::NoNamespaces {
            cause: format!("unshare failed: {e}"),
            hint: format!(
                "{hint}; or run with --allow-degraded to fall back to the weaker `landlock` isolation level"
            ),
        }
    })
}

/// Map the user's uid/gid to themselves, so files keep their owners.
/// setgroups must be denied before an unprivileged process may write gid_map.
fn write_id_maps(uid: u32, gid: u32) -> Result<()> {
    let w = |file: &str, data: String| {
        let path = PathBuf::from("/proc/self").join(file);
        std::fs::write(&path, data).map_err(|e| Error::io("write", path, e))
    };
    w("setgroups", "deny".into())?;
    w("uid_map", format!("{uid} {uid} 1\n"))?;
    w("gid_map", format!("{gid} {gid} 1\n"))
}

/// Wait for pid 1, relaying signals that processes sent us, and serve
/// `keeper` meanwhile; exit with pid 1's status, written to `reaped` first
/// once pid 1 is reaped. (One thread: after
/// unsharing the pid namespace this process cannot start another.)
fn relay_until_exit(
    pid1: libc::pid_t,
    waited: &[libc::c_int],
    keeper: &mut super::keeper::Serving,
    reaped: &mut std::fs::File,
) -> i32 {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use std::os::fd::AsFd;
    let mut mask = SigSet::empty();
    for s in waited {
        if let Ok(s) = Signal::try_from(*s) {
            mask.add(s);
        }
    }
    let Ok(signals) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) else {
        return 125;
    };
    loop {
        let (signal_ready, keeper_ready) = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            fds.extend(
                keeper
                    .waiting_on()
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(_) => return 125,
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if keeper_ready && keeper.ready() {
            // SAFETY: pid1 is our child; killing it ends its pid namespace.
            unsafe { libc::kill(pid1, libc::SIGKILL) };
        }
        if !signal_ready {
            continue;
        }
        let Ok(Some(info)) = signals.read_signal() else {
            continue;
        };
        let (sig, from_kernel) = (
            info.ssi_signo as libc::c_int,
            info.ssi_code == libc::SI_KERNEL,
        );
        if sig == libc::SIGCHLD {
            match reap(pid1) {
                Ok(Some(code)) => {
                    // Pid 1 is reaped, so every process of its namespace
                    // is gone: the supervisor need not wait for our exit.
                    let _ = reaped.write_all(&code.to_ne_bytes());
                    return code;
                }
                Ok(None) => {}
                Err(_) => return 125,
            }
        } else if !from_kernel {
            // SAFETY: pid1 is our child; sending it a signal is harmless.
            unsafe { libc::kill(pid1, sig) };
        }
    }
}

/// Reap children without blocking; the exit code once `main` has exited.
fn reap(main: libc::pid_t) -> Result<Option<i32>> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == main => result = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid.as_raw() == main => {
                result = Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => return Ok(result),
            Ok(_) => {}
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(Error::sys("wait for children", e)),
        }
    }
}

/// The plan, once the supervisor has built it. `None`: it gave up before
/// sending one (and says why itself).
fn receive_plan(sock: &mut Sock) -> Result<Option<Plan>> {
    let Some(stream) = sock.as_mut() else {
        return Ok(None);
    };
    channel::recv(stream).map_err(|e| Error::sys("read the sandbox plan", e))
}

/// Pid 1 of the sandbox: build the view, lock, start the command, reap.
fn pid1(sock: &mut Sock, mut reserve_tx: UnixStream) -> Result<i32> {
    // 1. Die with the setup process (and so with the supervisor).
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .map_err(|e| Error::sys("set parent-death signal", e))?;
    let Some(plan) = receive_plan(sock)? else {
        return Ok(125);
    };
    let plan = &plan;
    // 2. Should memory run out, the kernel must pick the sandbox, never
    //    guard: a command that spread its memory over many processes
    //    smaller than the supervisor would otherwise make the supervisor
    //    the largest, and guard killed skips the check after the run until
    //    its next start (the user's `git status` may come first). As at the
    //    `landlock` level (see `host_setup`); inherited by the command,
    //    which cannot lower it again (/proc is read-only to it). Before
    //    the next step: a process that is not dumpable cannot write its
    //    own /proc files. (The host's /proc is still mounted here; /proc/self
    //    is this process there.)
    std::fs::write("/proc/self/oom_score_adj", "1000")
        .map_err(|e| Error::io("write", "/proc/self/oom_score_adj", e))?;
    //    Not dumpable: the command cannot read our memory or /proc/1/environ.
    sys::prctl(libc::PR_SET_DUMPABLE, 0).map_err(|e| Error::sys("make pid 1 non-dumpable", e))?;

    // 3. Limits of the user namespace, while we hold CAP_SYS_RESOURCE in
    //    it (the host's /proc is still mounted: these files act on the
    //    writer's own namespace). Best effort: a read-only /proc/sys (guard
    //    inside a container) keeps the user's own limits, which still hold.
    for (name, value) in &plan.user_limits {
        let _ = std::fs::write(format!("/proc/sys/user/{name}"), value.to_string());
    }
    //    The view. Needs the capabilities we still hold in the new userns.
    let reserve = mounts::build_root(&plan.mounts)?;
    // Best effort: without it, a file the host replaces stays uncovered
    // (and guard says so after the run).
    let _ = channel::send_with_fds(&mut reserve_tx, &(), &[reserve.as_raw_fd()]);
    drop((reserve, reserve_tx));
    nix::unistd::sethostname(&plan.hostname).map_err(|e| Error::sys("set the hostname", e))?;
    // 4. Network: only loopback exists in the new netns; bring it up so
    //    programs can talk to themselves (and, later, to guard's proxy).
    sys::loopback_up().map_err(|e| Error::sys("bring up the loopback interface", e))?;
    //    Egress: the listeners live in this namespace and are served by the
    //    supervisor from the host's. Before the lock: ports below 1024 need
    //    CAP_NET_BIND_SERVICE, which only this process ever holds here.
    hand_over_listeners(sock, plan)?;

    // 5. Lock. Capabilities first (dropping the bounding set needs
    //    CAP_SETPCAP), then no_new_privs (Landlock and seccomp require it),
    //    stray descriptors, Landlock, and seccomp last so that none of the
    //    setup above is filtered.
    // The process limit is counted per user namespace, so it bounds the
    // sandbox without touching the user's other processes. (The kernel
    // exempts the host's uid 0 from it: as root, it does not apply.)
    lock::limit_processes(plan.max_processes)?;
    lock::share_user_budgets()?;
    lock::no_core_dumps()?;
    lock::drop_capabilities(plan.cap_last_cap)?;
    lock::no_new_privs()?;
    close_stray_fds(sock.as_ref().map_or(-1, |s| s.as_raw_fd()))?;
    if let (Some(notice), Some(s)) = (
        lock::landlock(plan, crate::host::landlock_abi())?,
        sock.as_mut(),
    ) {
        channel::send(s, &notice).map_err(|e| Error::sys("report to the supervisor", e))?;
    }
    lock::seccomp(&plan.seccomp)?;

    // 6. The command.
    for sig in FORWARDED {
        // pid 1 only receives signals it has a handler for.
        sys::install_noop_handler(*sig).map_err(|e| Error::sys("install signal handlers", e))?;
    }
    let child = spawn_command(plan, false)?;

    let mut waited: Vec<libc::c_int> = FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    loop {
        let (sig, from_kernel) =
            sys::wait_signal(&waited).map_err(|e| Error::sys("wait for signals", e))?;
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(child)? {
                // Our exit tears down every process left in the namespace;
                // guard need not wait for the kernel to finish that.
                if let Some(s) = sock.as_mut() {
                    let _ = channel::send(s, &Report::Exited { code });
                }
                return Ok(code);
            }
        } else if !from_kernel {
            // Relayed by the supervisor (e.g. `kill -TERM guard`). Copies the
            // terminal sent (Ctrl-C) already reached the command's group.
            // SAFETY: child is our child process.
            unsafe { libc::kill(child, sig) };
        }
    }
}

/// The `landlock` isolation level: no namespaces, so this process locks
/// itself and starts the command in the host's process table and network
/// stack. It is the command's subreaper: orphans of the command re-parent
/// to it rather than to the host's init, so it can end every process the
/// command left behind when the command exits. (If guard itself is killed
/// with SIGKILL, those survive; they stay inside Landlock and seccomp.)
fn host_setup(sock: &mut Sock, parent: i32) -> Result<i32> {
    let Some(waited) = tie_to_supervisor(parent)? else {
        return Ok(125);
    };
    let Some(plan) = receive_plan(sock)? else {
        return Ok(125);
    };
    let plan = &plan;
    sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1)
        .map_err(|e| Error::sys("become the command's subreaper", e))?;
    // Should memory run out, the kernel must pick the sandbox, never guard:
    // guard killed means protected files are not restored and this process
    // (killed with it) no longer ends the command's leftovers. A command
    // that spread its memory over many processes smaller than guard would
    // otherwise make guard the largest. Inherited by the command, which
    // cannot lower it again (/proc is read-only to it). Before the next
    // step: a process that is not dumpable cannot write its own /proc files.
    std::fs::write("/proc/self/oom_score_adj", "1000")
        .map_err(|e| Error::io("write", "/proc/self/oom_score_adj", e))?;
    sys::prctl(libc::PR_SET_DUMPABLE, 0)
        .map_err(|e| Error::sys("make the setup process non-dumpable", e))?;
    // Lock, in the same order as pid 1 does (see there). The process limit
    // counts all the user's processes here (no user namespace), and does
    // not apply to root.
    lock::limit_processes(plan.max_processes)?;
    lock::share_user_budgets()?;
    lock::no_core_dumps()?;
    // Without a user namespace an ordinary user holds no capability, and
    // may not touch the bounding set (that needs CAP_SETPCAP); no_new_privs
    // keeps exec from granting any. Root holds them all and drops them.
    if lock::holds_capabilities() {
        lock::drop_capabilities(plan.cap_last_cap)?;
    }
    lock::no_new_privs()?;
    close_stray_fds(sock.as_ref().map_or(-1, |s| s.as_raw_fd()))?;
    lock::landlock(plan, crate::host::landlock_abi())?;
    lock::seccomp(&plan.seccomp)?;

    // Killing this process (PDEATHSIG when guard dies) must take the
    // command with it: there is no pid namespace to do that.
    let child = spawn_command(plan, true)?;
    loop {
        let (sig, from_kernel) =
            sys::wait_signal(&waited).map_err(|e| Error::sys("wait for signals", e))?;
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(child)? {
                end_descendants();
                if let Some(s) = sock.as_mut() {
                    let _ = channel::send(s, &Report::Exited { code });
                }
                return Ok(code);
            }
        } else if !from_kernel {
            // SAFETY: child is our child process.
            unsafe { libc::kill(child, sig) };
        }
    }
}

/// SIGKILL every process below this one, until none is left: killing a
/// process re-parents its children to us (we are the subreaper), so each
/// round finds the next generation. Bounded, in case of a fork race.
fn end_descendants() {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for _ in 0..1000 {
        let children = children_of(me);
        if children.is_empty() {
            return;
        }
        for pid in children {
            // SAFETY: pid is our child (its parent is us): signalling it
            // cannot reach any other process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = reap(-1);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Processes whose parent is `parent` (from /proc: the host's process
/// table, which this level shares).
fn children_of(parent: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // "pid (comm) state ppid ...": comm may hold spaces and
                    // parentheses; the last ')' ends it.
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<libc::pid_t>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Create the egress listeners and send them to the supervisor; our copies
/// are closed on return, so the command never inherits one.
fn hand_over_listeners(sock: &mut Sock, plan: &Plan) -> Result<()> {
    if plan.listeners.is_empty() {
        return Ok(()); // --no-network: nothing but loopback
    }
    let fds = listeners::create(&plan.listeners)?;
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let kinds = plan.listeners.iter().map(|l| l.kind).collect();
    let Some(s) = sock.as_mut() else {
        return Err(Error::sys(
            "hand the egress listeners to the supervisor",
            std::io::Error::other("no control socket"),
        ));
    };
    channel::send_with_fds(s, &Report::Listeners { kinds }, &raw)
        .map_err(|e| Error::sys("hand the egress listeners to the supervisor", e))
}

fn close_stray_fds(keep: i32) -> Result<()> {
    if keep < 3 {
        return sys::close_range(3, u32::MAX)
            .map_err(|e| Error::sys("close inherited descriptors", e));
    }
    let keep = keep as u32;
    sys::close_range(3, keep - 1).map_err(|e| Error::sys("close inherited descriptors", e))?;
    sys::close_range(keep + 1, u32::MAX).map_err(|e| Error::sys("close inherited descriptors", e))
}

/// Find `name` the way execvp does, in the sandbox's PATH.
fn resolve_command(name: &str, path_var: &str) -> std::result::Result<PathBuf, (i32, String)> {
    use std::os::unix::fs::PermissionsExt;
    let candidate_ok = |p: &Path| match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(m) if m.is_dir() => Err((126, "is a directory")),
        Ok(_) => Err((126, "permission denied (not executable)")),
        Err(_) => Err((127, "no such file")),
    };
    if name.contains('/') {
        return candidate_ok(Path::new(name))
            .map(|_| PathBuf::from(name))
            .map_err(|(code, why)| (code, format!("cannot execute {name}: {why}")));
    }
    let mut denied = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        match candidate_ok(&p) {
            Ok(()) => return Ok(p),
            Err((126, why)) => {
                denied = denied.or(Some(format!("cannot execute {}: {why}", p.display())))
            }
            Err(_) => {}
        }
    }
    Err(match denied {
        Some(msg) => (126, msg),
        None => (
            127,
            format!("command not found in the sandbox: {name} (PATH={path_var})"),
        ),
    })
}

fn cstring(s: impl AsRef<OsStr>) -> Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| Error::usage(format!("argument contains a NUL byte: {:?}", s.as_ref())))
}

/// Fork and exec the command. An exec failure is reported over the control
/// socket with status 126/127; the returned pid is then already exiting.
/// `host`: the `landlock` level, where nothing but this process ends the
/// command: it dies with this process and gets a Landlock domain of its
/// own (see `lock::command_domain`).
fn spawn_command(plan: &Plan, host: bool) -> Result<libc::pid_t> {
    let Some(name) = plan.argv.first() else {
        return Err(Error::usage("no command given"));
    };
    let path_var = plan
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/bin:/bin");
    let cwd = if plan.cwd.is_dir() {
        plan.cwd.clone()
    } else {
        PathBuf::from("/")
    };
    // Relative command paths (./script) resolve against the command's cwd.
    std::env::set_current_dir(&cwd).map_err(|e| Error::io("enter", &cwd, e))?;
    let program = match resolve_command(name, path_var) {
        Ok(p) => p,
        Err((code, msg)) => {
            return Err(Error::Exec { msg, code });
        }
    };
    let program = cstring(&program)?;
    let argv = plan.argv.iter().map(cstring).collect::<Result<Vec<_>>>()?;
    let envp = plan
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}")))
        .collect::<Result<Vec<_>>>()?;

    let domain = if host {
        Some(lock::command_domain(crate::host::landlock_abi())?)
    } else {
        None
    };
    // A close-on-exec pipe: EOF means exec succeeded, 4 bytes are its errno.
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("create a pipe", e))?;
    // SAFETY: pid 1 is single-threaded; the child only calls exec-related
    // functions and exits.
    let forked = unsafe { nix::unistd::fork() }.map_err(|e| match e {
        nix::errno::Errno::EAGAIN => Error::Sandbox {
            msg: "failed to start the command: the process limit is reached".into(),
            hint: Some(
                "raise `limits.processes` in the profile (processes of your user outside the sandbox may count too)"
                    .into(),
            ),
            code: 125,
        },
        e => Error::sys("fork the command", e),
    })?;
    match forked {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            if host {
                let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            }
            // Without its own domain the command could end this process
            // and outlive it: never exec it without.
            let scoped = domain.map_or(Ok(()), |d| d.restrict_self().map(drop));
            sys::reset_signals();
            let err = match scoped {
                Ok(()) => nix::unistd::execve(&program, &argv, &envp)
                    .err()
                    .map_or(0, |e| e as i32),
                Err(_) => libc::EPERM,
            };
            let mut wr = std::fs::File::from(wr);
            let _ = wr.write_all(&err.to_le_bytes());
            sys::exit_now(127)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            drop(domain);
            let mut buf = [0u8; 4];
            let mut rd = std::fs::File::from(rd);
            if rd.read_exact(&mut buf).is_ok() {
                let errno = i32::from_le_bytes(buf);
                let (code, why) = match errno {
                    libc::ENOENT => (
                        127,
                        "no such file (or its interpreter is missing)".to_string(),
                    ),
                    _ => (
                        126,
                        crate::error::os_text(&std::io::Error::from_raw_os_error(errno)),
                    ),
                };
                return Err(Error::Exec {
                    msg: format!("cannot execute {name}: {why}"),
                    code,
                });
            }
            Ok(child.as_raw())
        }
    }
}
