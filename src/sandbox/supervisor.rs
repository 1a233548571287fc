//! The supervisor: guard's own process, in the host's namespaces. It starts
//! the setup process from /proc/self/exe (a fresh single-threaded process,
//! never a fork of this one), hands it the plan, prints what it reports, and
//! exits with the command's status.

use super::channel::{self, Report};
use super::{INTERNAL_ARG, sys};
use crate::error::{Error, Result};
use crate::plan::Plan;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

/// Run the plan; returns the exit status guard should exit with.
pub fn launch(plan: &Plan) -> Result<i32> {
    let (mut ours, theirs) =
        UnixStream::pair().map_err(|e| Error::sys("create the control socket", e))?;
    let child_fd = theirs.as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(INTERNAL_ARG)
        .arg(child_fd.to_string())
        .arg(std::process::id().to_string())
        // The setup process needs no environment, and pid 1 is forked from
        // it: anything here would be readable in /proc/1/environ inside.
        .env_clear();
    // SAFETY: the closure only calls fcntl(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || sys::clear_cloexec(child_fd));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::sys("start the sandbox setup process (/proc/self/exe)", e))?;
    drop(theirs);

    // Relay `kill guard` to the sandbox; the terminal's own signals (Ctrl-C)
    // already reach the command's process group, so those are not relayed.
    sys::forward_signals_to(child.id() as libc::pid_t, super::init::FORWARDED)
        .map_err(|e| Error::sys("install signal handlers", e))?;

    let sent = channel::send(&mut ours, plan);
    let mut failure: Option<Error> = None;
    if sent.is_ok() {
        // Reports until end-of-stream: the sandbox closes the socket once
        // the command has been exec'ed (or setup failed).
        loop {
            match channel::recv::<Report>(&mut ours) {
                Ok(Some(Report::Failed { msg, hint, code })) => {
                    failure = Some(Error::Sandbox { msg, hint, code });
                }
                Ok(Some(Report::Degraded { msg })) => {
                    eprintln!("guard: warning: running with reduced isolation: {msg}");
                }
                Ok(None) => break,
                Err(e) => {
                    failure.get_or_insert(Error::sys("read from the sandbox", e));
                    break;
                }
            }
        }
    }
    drop(ours);

    let status = loop {
        match child.wait() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::sys("wait for the sandbox", e)),
        }
    };
    // If the command took over the terminal (job control) and died, take it
    // back so the user's shell is not left in the background.
    sys::take_terminal(0);

    if let Some(e) = failure {
        return Err(e);
    }
    if let Err(e) = sent {
        return Err(Error::sys("send the plan to the sandbox", e));
    }
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => 125,
    })
}
