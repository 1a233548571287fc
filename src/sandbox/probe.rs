//! Probes for `guard check`: can this kernel build each layer? Each probe
//! runs in a forked child so nothing it changes affects guard itself.

use super::sys;

/// Run `f` in a forked child; Ok if it returned Ok, else the error text.
/// Only call while single-threaded (guard check is).
fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    // SAFETY: guard check runs single-threaded; the child only makes system
    // calls and exits.
    match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
        nix::unistd::ForkResult::Child => {
            drop(rd);
            let msg = match f() {
                Ok(()) => String::new(),
                Err(e) => e,
            };
            let _ = nix::unistd::write(&wr, msg.as_bytes());
            sys::exit_now(0)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(wr);
            let mut out = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(rd), &mut out);
            let _ = nix::sys::wait::waitpid(child, None);
            if out.is_empty() { Ok(()) } else { Err(out) }
        }
    }
}

pub fn user_namespace() -> Result<(), String> {
    in_child(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
            .map_err(|e| format!("unshare(CLONE_NEWUSER): {e}"))
    })
}

/// A namespace of `flag` created inside a new user namespace.
pub fn namespace(flag: nix::sched::CloneFlags, name: &str) -> Result<(), String> {
    let name = name.to_string();
    in_child(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER | flag)
            .map_err(|e| format!("unshare(CLONE_NEWUSER|CLONE_NEW{name}): {e}"))
    })
}

pub fn seccomp() -> Result<(), String> {
    in_child(|| {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| e.to_string())?;
        let prog = crate::plan::seccomp::compile(false, crate::profile::Isolation::Full)?;
        seccompiler::apply_filter(&prog).map_err(|e| e.to_string())
    })
}

/// Kernel switches that restrict unprivileged user namespaces.
pub fn userns_restrictions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (file, bad, hint) in [
        (
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1",
            "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+): run ./install.sh, which \
             installs an AppArmor profile for guard only",
        ),
        (
            "/proc/sys/kernel/unprivileged_userns_clone",
            "0",
            "unprivileged user namespaces are disabled: sudo sysctl kernel.unprivileged_userns_clone=1",
        ),
        (
            "/proc/sys/user/max_user_namespaces",
            "0",
            "user namespaces are disabled: sudo sysctl user.max_user_namespaces=10000",
        ),
    ] {
        if std::fs::read_to_string(file).is_ok_and(|v| v.trim() == bad) {
            out.push((file.to_string(), hint.to_string()));
        }
    }
    out
}
