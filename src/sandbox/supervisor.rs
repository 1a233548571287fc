//! The supervisor: guard's own process, in the host's namespaces. It starts
//! the setup process from /proc/self/exe (a fresh single-threaded process,
//! never a fork of this one), hands it the plan, prints what it reports,
//! serves the egress listeners pid 1 hands back (on their own thread, see
//! `net`), and exits with the command's status.

use super::channel::{self, Report};
use super::{INTERNAL_ARG, sys};
use crate::error::{Error, Result};
use crate::net::{self, NetPolicy};
use crate::plan::Plan;
use crate::profile::Isolation;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};

/// A setup process that is creating the sandbox's namespaces and waits for
/// its plan. Dropping it without [`Pending::run`] ends it.
pub struct Pending {
    child: Child,
    sock: UnixStream,
    /// Threads copying the sandbox's output to stdout/stderr files.
    relays: Vec<std::thread::JoinHandle<()>>,
    /// Pid 1 has been reaped: nothing of the sandbox is left (the setup
    /// process may still be exiting).
    finished: bool,
    /// The egress proxy, when the supervisor started it before the sandbox
    /// (the `landlock` level listens on the host's loopback itself).
    egress: Option<net::Egress>,
    /// Until [`Pending::keeper`] takes it.
    keeper: Option<UnixStream>,
    /// Where the setup process writes pid 1's status once it has reaped
    /// pid 1 (see [`Pending::run`]).
    reaped: std::io::PipeReader,
}

/// Start the setup process. It needs nothing from the plan until pid 1
/// builds the view, so it starts before the policy is resolved. At the
/// `landlock` level it creates no namespaces (see `init::host_setup`).
pub fn spawn(isolation: Isolation) -> Result<Pending> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| Error::sys("create the control socket", e))?;
    let child_fd = theirs.as_raw_fd();
    // The child's end must survive exec. Clearing close-on-exec here (rather
    // than in a pre_exec hook) lets std use posix_spawn (vfork), which is
    // markedly faster; guard has started no other thread that could spawn a
    // process and inherit it meanwhile. The setup process sets it again, so
    // the command never inherits the socket.
    sys::clear_cloexec(child_fd).map_err(|e| Error::sys("prepare the control socket", e))?;
    let (keeper, keeper_theirs) =
        UnixStream::pair().map_err(|e| Error::sys("create the control socket", e))?;
    let keeper_fd = keeper_theirs.as_raw_fd();
    sys::clear_cloexec(keeper_fd).map_err(|e| Error::sys("prepare the control socket", e))?;
    let (reaped, reaped_theirs) =
        std::io::pipe().map_err(|e| Error::sys("create the status pipe", e))?;
    let reaped_fd = reaped_theirs.as_raw_fd();
    sys::clear_cloexec(reaped_fd).map_err(|e| Error::sys("prepare the status pipe", e))?;
    let mut cmd = Command::new("/proc/self/exe");
    // stdout/stderr that are regular files (`>> agent.log`) reach the
    // sandbox only through a pipe guard copies from: given the file itself,
    // the command could truncate it, clear O_APPEND and overwrite what
    // earlier runs wrote. Terminals and pipes are passed as they are. Both
    // to one file (`> log 2>&1`): one pipe for both, so what the command
    // writes keeps its order.
    let mut relays = Vec::new();
    let shared = sys::is_regular_file(1) && sys::same_open_file(1, 2);
    for fd in [1, 2] {
        if !sys::is_regular_file(fd) || (shared && fd == 2) {
            continue;
        }
        let (reader, writer) =
            std::io::pipe().map_err(|e| Error::sys("create an output pipe", e))?;
        if shared {
            let second = writer
                .try_clone()
                .map_err(|e| Error::sys("create an output pipe", e))?;
            cmd.stderr(second);
        }
        if fd == 1 {
            cmd.stdout(writer);
        } else {
            cmd.stderr(writer);
        }
        relays.push(relay(reader, fd)?);
    }
    let child = cmd
        .arg(INTERNAL_ARG)
        .arg(child_fd.to_string())
        .arg(isolation.label())
        .arg(keeper_fd.to_string())
        .arg(reaped_fd.to_string())
        // The setup process needs no environment, and pid 1 is forked from
        // it: only guard's own pid goes there (pid 1 is not dumpable, so its
        // environ is unreadable inside, whereas its argv would be readable).
        .env_clear()
        .env(super::SUPERVISOR_PID_ENV, std::process::id().to_string())
        .spawn()
        .map_err(|e| Error::sys("start the sandbox setup process (/proc/self/exe)", e))?;
    drop((theirs, keeper_theirs, reaped_theirs));
    Ok(Pending {
        child,
        sock: ours,
        relays,
        finished: false,
        egress: None,
        keeper: Some(keeper),
        reaped,
    })
}

impl Pending {
    /// The way to have files the host replaces during the run covered
    /// again in the view (see `keeper`).
    pub fn keeper(&mut self) -> Option<super::Keeper> {
        self.keeper
            .take()
            .map(|sock| super::Keeper::new(sock, self.child.id()))
    }

    /// Serve egress from listeners the supervisor made itself.
    pub fn serve_egress(
        &mut self,
        net: &NetPolicy,
        listeners: Vec<(net::ListenerKind, std::os::fd::OwnedFd)>,
    ) -> Result<()> {
        if !listeners.is_empty() {
            self.egress = Some(net::start(net, listeners)?);
        }
        Ok(())
    }

    /// Run the plan; returns the exit status guard should exit with. `net`
    /// decides where the sandbox's connections may go.
    pub fn run(mut self, plan: &Plan, net: &NetPolicy) -> Result<i32> {
        // Relay `kill guard` to the sandbox; the terminal's own signals
        // (Ctrl-C) already reach the command's process group.
        sys::forward_signals_to(self.child.id() as libc::pid_t, super::init::FORWARDED)
            .map_err(|e| Error::sys("install signal handlers", e))?;
        if std::process::id() == 1 {
            // guard is a container's ENTRYPOINT: orphans of `docker exec`
            // sessions are re-parented to us and must be reaped.
            reap_orphans(self.child.id() as libc::pid_t);
        }

        // If the setup process failed early, the send fails; its report is
        // still waiting in the socket, so read reports regardless.
        let sent = channel::send(&mut self.sock, plan);
        // Unsent (or sent in part), the setup process would wait for the
        // plan as long as we wait for its report: end it. Its own report,
        // if it failed first, still explains more than the send error.
        if sent.is_err() {
            let _ = self.child.kill();
        }
        let mut failure: Option<Error> = None;
        let mut exited = None;
        let mut egress: Option<net::Egress> = self.egress.take();
        loop {
            match channel::recv_with_fds::<Report>(&mut self.sock) {
                Ok(Some((Report::Failed { msg, hint, code }, _))) => {
                    failure.get_or_insert(Error::Sandbox { msg, hint, code });
                }
                Ok(Some((Report::NoNamespaces { cause, hint }, _))) => {
                    failure.get_or_insert(Error::NoNamespaces { cause, hint });
                }
                Ok(Some((Report::Degraded { msg }, _))) => {
                    eprintln!("guard: warning: running with reduced isolation: {msg}");
                    tracing::info!(target: crate::audit::TARGET, kind = "degraded", detail = %msg);
                }
                Ok(Some((Report::Listeners { kinds }, fds))) => {
                    // Exactly the listeners the plan asked for, once: they
                    // arrive before the command starts, so it never finds
                    // them unserved.
                    let expected: Vec<_> = plan.listeners.iter().map(|l| l.kind).collect();
                    let started = if !expected.is_empty()
                        && kinds == expected
                        && kinds.len() == fds.len()
                        && egress.is_none()
                    {
                        net::start(net, kinds.into_iter().zip(fds).collect())
                    } else {
                        Err(Error::sys(
                            "receive the egress listeners",
                            std::io::Error::other("descriptors do not match the message"),
                        ))
                    };
                    match started {
                        Ok(e) => egress = Some(e),
                        Err(e) => {
                            // Fail closed: without the proxy the command must not run.
                            let _ = self.child.kill();
                            failure.get_or_insert(e);
                        }
                    }
                }
                Ok(Some((Report::Exited { code }, _))) => {
                    exited = Some(code);
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    failure.get_or_insert(Error::sys("read from the sandbox", e));
                    break;
                }
            }
        }
        // Wait until pid 1 is reaped even when it reported the status: its
        // death kills every process of the sandbox's pid namespace, and it
        // is reaped only once they are all gone, so nothing of the sandbox
        // outlives guard (and nothing races the host-side checks after the
        // run). The setup process says so on the status pipe; its own exit
        // (tearing down the namespaces it holds, ~0.5 ms) is not waited
        // for. End of file instead (it failed or was killed; at the
        // `landlock` level it closed the pipe): its exit status is the answer.
        let status = match read_status(&mut self.reaped) {
            Some(code) => code,
            None => wait_status(&mut self.child)?,
        };
        self.finished = true;
        // Every writer is gone with the sandbox: the relays see end of file.
        for r in self.relays.drain(..) {
            let _ = r.join();
        }
        let code = exited.unwrap_or(status);
        // If the command took over the terminal (job control) and died, take
        // it back so the user's shell is not left in the background.
        sys::take_terminal(0);
        if let Some(e) = &egress {
            // Open connections end with the sandbox; their events are logged.
            e.stop();
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if let Err(e) = sent {
            return Err(Error::sys("send the plan to the sandbox", e));
        }
        Ok(code)
    }
}

/// The status the setup process wrote once it reaped pid 1; `None` at end
/// of file.
fn read_status(pipe: &mut std::io::PipeReader) -> Option<i32> {
    use std::io::Read;
    let mut buf = [0u8; 4];
    // read_exact retries interrupted reads.
    pipe.read_exact(&mut buf)
        .ok()
        .map(|()| i32::from_ne_bytes(buf))
}

fn wait_status(child: &mut Child) -> Result<i32> {
    let status = loop {
        match child.wait() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::sys("wait for the sandbox", e)),
        }
    };
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => 125,
    })
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Closing our end makes a waiting pid 1 give up; do not leave a zombie.
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        if self.finished {
            // Reaped if it is done exiting; else it is left to whoever
            // reaps guard's children once guard has exited.
            let _ = self.child.try_wait();
            return;
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// As pid 1 of a container: reap every exited child except `ours` (whose
/// status `Pending::run` collects), in a background thread.
fn reap_orphans(ours: libc::pid_t) {
    std::thread::spawn(move || {
        loop {
            // Peek first (WNOWAIT) so our own child's status is left alone.
            match sys::peek_exited_child() {
                Some(pid) if pid != ours => sys::reap(pid),
                Some(_) | None => std::thread::sleep(std::time::Duration::from_millis(200)),
            }
        }
    });
}

/// Copy everything from `reader` to descriptor `fd` (guard's own stdout or
/// stderr, a regular file) until end of file.
fn relay(mut reader: std::io::PipeReader, fd: i32) -> Result<std::thread::JoinHandle<()>> {
    use std::os::fd::BorrowedFd;
    // SAFETY: fd 1 and 2 stay open for the life of guard; the borrow is
    // only used to duplicate them.
    let target = unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .map_err(|e| Error::sys("duplicate an output descriptor", e))?;
    let mut out = std::fs::File::from(target);
    // `read` and `write`, not `std::io::copy`: that splices, and a splice
    // into a file takes the file's offset before it waits for the pipe, so
    // whatever else was written to the file meanwhile (guard's own
    // messages on a shared stderr) was overwritten. A write that fails
    // (disk full) drops the data but keeps the pipe drained: the command
    // must not block on its output.
    Ok(std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut buf = vec![0u8; 64 * 1024];
        let mut failed = false;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if !failed {
                        failed = out.write_all(&buf[..n]).is_err();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }))
}
