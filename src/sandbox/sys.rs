//! Thin wrappers over system calls that nix does not cover (or covers in a
//! way that does not fit). All `unsafe` of the sandbox lives here.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_RECURSIVE: libc::c_uint = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2): add mount flags to `path` (and, if `recursive`, to every
/// mount below it). Unlike a remount it cannot accidentally clear flags the
/// kernel locked on mounts inherited from the host.
pub fn mount_setattr(path: &Path, set: u64, recursive: bool) -> io::Result<()> {
    let c = cstr(path)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `c` is a valid NUL-terminated path and `attr` a valid
    // mount_attr whose exact size is passed; the kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// mount_setattr(2) on the mount open as `fd` (one [`open_tree`] made).
pub fn mount_setattr_fd(fd: BorrowedFd<'_>, set: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    // SAFETY: the path is the empty NUL-terminated string (AT_EMPTY_PATH:
    // the mount of `fd` itself) and `attr` a valid mount_attr whose exact
    // size is passed; the kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

const OPEN_TREE_CLONE: libc::c_uint = 1;

/// open_tree(2) with OPEN_TREE_CLONE: a new, detached bind mount of `name`
/// in the directory `dirfd` (of `dirfd` itself when `name` is empty), with
/// the mounts below it.
pub fn open_tree_clone(dirfd: BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    let empty = if name.is_empty() {
        libc::AT_EMPTY_PATH as libc::c_uint
    } else {
        0
    };
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_SYMLINK_NOFOLLOW as libc::c_uint
        | AT_RECURSIVE
        | empty;
    // SAFETY: `name` is a valid NUL-terminated string and `dirfd` an open
    // descriptor; on success the kernel returns a new descriptor we own.
    let ret = check(unsafe {
        libc::syscall(libc::SYS_open_tree, dirfd.as_raw_fd(), name.as_ptr(), flags)
    })?;
    Ok(own_fd(ret as RawFd))
}

const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// move_mount(2): attach the detached mount `from` onto what `to` is open
/// on (an O_PATH descriptor: no path is resolved again).
pub fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: both paths are the empty NUL-terminated string (the
    // descriptors themselves), both descriptors are open.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret).map(drop)
}

pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let a = cstr(new_root)?;
    let b = cstr(put_old)?;
    // SAFETY: both arguments are valid NUL-terminated paths.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, a.as_ptr(), b.as_ptr()) }).map(drop)
}

pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the prctl options used by guard take integer arguments only.
    let ret = unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    check(ret as libc::c_long).map(|r| r as libc::c_int)
}

/// Clear the effective, permitted and inheritable capability sets.
pub fn capset_zero() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and the two-element data array have the layout capset(2)
    // expects for _LINUX_CAPABILITY_VERSION_3.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) })
        .map(drop)
}

/// close_range(2) on `first..=last`.
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: closing descriptors by number; the caller keeps the ones it uses
    // out of the range.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) }).map(drop)
}

/// Bring up the loopback interface of the current network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket(2) call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq; fd is an open socket.
    let ret = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr as *const libc::ifreq) };
    let err = io::Error::last_os_error();
    // SAFETY: fd was opened above and is not used afterwards.
    unsafe { libc::close(fd) };
    if ret < 0 { Err(err) } else { Ok(()) }
}

/// Block `signals` in this thread, returning the previous mask.
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t values are initialized by sigemptyset before use and
    // passed by valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(old)
    }
}

/// Unblock everything and restore default dispositions (for the command,
/// after fork and before exec).
pub fn reset_signals() {
    // SAFETY: plain signal-mask and disposition resets with valid pointers;
    // called in the single-threaded child between fork and exec.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

extern "C" fn noop_handler(_: libc::c_int) {}

/// Install a handler that does nothing. Needed for pid 1 of a namespace:
/// the kernel drops signals to it whose disposition is SIG_DFL, even when
/// blocked, so sigwaitinfo would never see them.
pub fn install_noop_handler(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: sigaction with a valid, async-signal-safe handler that does
    // nothing; the struct is zero-initialized and then filled.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop_handler as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Wait for one of `signals` (which must be blocked). Returns the signal
/// number and whether it came from the kernel (e.g. the terminal's Ctrl-C)
/// rather than from a process's kill(2).
pub fn wait_signal(signals: &[libc::c_int]) -> io::Result<(libc::c_int, bool)> {
    // SAFETY: set is initialized before use; info is written by the kernel.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        let mut info: libc::siginfo_t = std::mem::zeroed();
        loop {
            let sig = libc::sigwaitinfo(&set, &mut info);
            if sig >= 0 {
                return Ok((sig, info.si_code == libc::SI_KERNEL));
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err);
            }
        }
    }
}

/// Set the foreground process group of the terminal on `fd` back to
/// guard's, ignoring SIGTTOU while doing so (we are in the background
/// after the command took the terminal). Only if guard started in the
/// foreground (see [`TerminalModes::save`]), and only from a process group
/// that is gone (the command's, which took the terminal and died with the
/// sandbox): a live one is the user's shell or another job, which have
/// the terminal since the user put guard in the background (Ctrl-Z, `bg`).
/// Taken from the shell, the terminal would be left to guard's group as
/// guard exits, and an interactive shell reading it then gets EIO and
/// exits.
pub fn take_terminal(fd: libc::c_int) {
    if !FOREGROUND_AT_START.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    // SAFETY: isatty/getpgrp/tcgetpgrp/kill(-pgrp, 0)/tcsetpgrp on a
    // caller-owned fd (kill with signal 0 sends nothing); SIGTTOU's
    // disposition is restored right after.
    unsafe {
        if libc::isatty(fd) != 1 {
            return;
        }
        let ours = libc::getpgrp();
        let now = libc::tcgetpgrp(fd);
        if now == ours || now <= 0 {
            return;
        }
        if libc::kill(-now, 0) == 0
            || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
        {
            return;
        }
        let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(fd, ours);
        libc::signal(libc::SIGTTOU, old);
    }
}

/// Whether guard's process group is the foreground one of the terminal
/// on `fd`: what waits in its input queue and the modes it has are then
/// guard's (its command's), not another job's.
fn in_foreground(fd: libc::c_int) -> bool {
    // SAFETY: tcgetpgrp/getpgrp on a caller-owned fd.
    unsafe { libc::tcgetpgrp(fd) == libc::getpgrp() }
}

/// The settings (termios) of guard's controlling terminal when it started,
/// put back when it is dropped. A command can leave the terminal raw,
/// without echo or with output processing off (`stty raw -echo`, a TUI
/// that crashed, a hostile one): bash keeps the modes a job leaves when it
/// exits normally, so the user's shell would carry them on after the
/// session (no echo of what they type, a prompt that never shows).
pub struct TerminalModes {
    tty: std::fs::File,
    saved: libc::termios,
}

/// Whether guard started in the foreground of its terminal: only then are
/// the terminal and its modes guard's to take back at the end (started in
/// the background, the foreground job, an editor say, owns them).
static FOREGROUND_AT_START: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

impl TerminalModes {
    /// `None` without a controlling terminal.
    pub fn save() -> Option<TerminalModes> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/tty")
            .ok()?;
        // SAFETY: termios is plain data; tcgetattr fills it for an fd this
        // process holds, and it is used only if that succeeded.
        let saved = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            (libc::tcgetattr(tty.as_raw_fd(), &mut t) == 0).then_some(t)?
        };
        // SAFETY: tcgetpgrp/getpgrp on an fd this process holds.
        let foreground = unsafe { libc::tcgetpgrp(tty.as_raw_fd()) == libc::getpgrp() };
        FOREGROUND_AT_START.store(foreground, std::sync::atomic::Ordering::SeqCst);
        Some(TerminalModes { tty, saved })
    }
}

impl Drop for TerminalModes {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // The command may have taken this terminal through /dev/tty while
        // stdin was no terminal.
        take_terminal(self.tty.as_raw_fd());
        // Started in the background, or put there by the user (Ctrl-Z,
        // `bg`) and not back: the foreground job has the terminal and its
        // modes (readline's, an editor's).
        if !FOREGROUND_AT_START.load(std::sync::atomic::Ordering::SeqCst)
            || !in_foreground(self.tty.as_raw_fd())
        {
            return;
        }
        // SAFETY: tcsetattr with settings tcgetattr gave for the same open
        // terminal; SIGTTOU (guard may be in the background) is ignored
        // meanwhile and its disposition restored right after.
        unsafe {
            let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetattr(self.tty.as_raw_fd(), libc::TCSANOW, &self.saved);
            libc::signal(libc::SIGTTOU, old);
        }
    }
}

/// The permission bits of what guard's standard streams are open on (the
/// user's terminal, a file given as stdin), put back when dropped. The
/// command holds the same open files, and `fchmod` on one is no path
/// access Landlock could refuse: a terminal left world-writable would let
/// any local user type into the user's shell after the session.
pub struct StreamModes {
    saved: Vec<(i32, u64, u64, libc::mode_t)>,
}

impl StreamModes {
    pub fn save() -> StreamModes {
        let saved = (0..3)
            .filter_map(|fd| {
                // SAFETY: fds 0-2 are open for the whole run (the supervisor
                // relays or inherits them); fstat only reads their status.
                let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                let st = nix::sys::stat::fstat(fd).ok()?;
                Some((fd.as_raw_fd(), st.st_dev, st.st_ino, st.st_mode & 0o7777))
            })
            .collect();
        StreamModes { saved }
    }
}

impl Drop for StreamModes {
    fn drop(&mut self) {
        for &(fd, dev, ino, mode) in &self.saved {
            // SAFETY: as in `save`: guard's own fds 0-2, still open.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let Ok(st) = nix::sys::stat::fstat(fd) else {
                continue;
            };
            if st.st_dev == dev && st.st_ino == ino && st.st_mode & 0o7777 != mode {
                let _ = nix::sys::stat::fchmod(fd, nix::sys::stat::Mode::from_bits_truncate(mode));
            }
        }
    }
}

/// Drop whatever waits unread in the input queue of the terminals the
/// command could write to (fds 0-2, the controlling terminal). A terminal
/// answers some escape sequences (title and status reports, device
/// attributes) by typing the answer into that queue: printed by the
/// command and left unread, the answer would be read by the user's shell
/// after guard exits, as if typed. Only where guard's process group is in
/// the foreground: in the background (started there, or put there by the
/// user), what waits is what the user typed to the foreground job.
pub fn discard_terminal_input() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open("/dev/tty")
        .ok();
    let fds = [0, 1, 2]
        .into_iter()
        .chain(tty.as_ref().map(|t| t.as_raw_fd()));
    for fd in fds {
        // SAFETY: isatty/tcflush on descriptors this process holds (an
        // invalid one only returns an error).
        unsafe {
            if libc::isatty(fd) == 1 && in_foreground(fd) {
                libc::tcflush(fd, libc::TCIFLUSH);
            }
        }
    }
}

/// Signal forwarding for the supervisor: the pid to forward to.
static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward_handler(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: `info` is provided by the kernel for SA_SIGINFO handlers; kill
    // is async-signal-safe.
    unsafe {
        // Terminal-generated signals already reached the whole process group.
        if !info.is_null() && (*info).si_code == libc::SI_KERNEL {
            return;
        }
        let pid = FORWARD_TO.load(std::sync::atomic::Ordering::SeqCst);
        if pid > 0 {
            libc::kill(pid, sig);
        }
    }
}

/// Forward `signals` sent to this process by other processes to `pid`;
/// ignore copies the terminal sent to the whole group.
pub fn forward_signals_to(pid: libc::pid_t, signals: &[libc::c_int]) -> io::Result<()> {
    FORWARD_TO.store(pid, std::sync::atomic::Ordering::SeqCst);
    for sig in signals {
        // SAFETY: installing an SA_SIGINFO handler that only calls kill(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward_handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(*sig, &sa, std::ptr::null_mut()) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Set FD_CLOEXEC so `fd` does not survive exec.
pub fn set_cloexec(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number; it touches no memory.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    check(ret as libc::c_long).map(drop)
}

/// Clear FD_CLOEXEC so `fd` survives exec (used between fork and exec).
pub fn clear_cloexec(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor number; async-signal-safe.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    check(ret as libc::c_long).map(drop)
}

/// Point stdout and stderr at /dev/null (best effort: left as they are if
/// it cannot be opened).
pub fn detach_output() {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    for fd in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 between descriptor numbers; `null` stays open until
        // both are done, and no Rust object owns 1 or 2 here.
        unsafe { libc::dup2(null.as_raw_fd(), fd) };
    }
}

/// Exit without running destructors or atexit handlers (forked children).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}

/// The pid of an exited child, without reaping it (waitid WNOWAIT).
pub fn peek_exited_child() -> Option<libc::pid_t> {
    // SAFETY: waitid writes a siginfo_t we own; WNOHANG never blocks.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_ALL,
            0,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        if r == 0 && info.si_pid() != 0 {
            Some(info.si_pid())
        } else {
            None
        }
    }
}

/// Reap one exited child.
pub fn reap(pid: libc::pid_t) {
    // SAFETY: waitpid on a pid that peek_exited_child reported as exited.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
}

/// Take ownership of a descriptor received over SCM_RIGHTS.
pub fn own_fd(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: the kernel just installed `fd` in this process for us (a
    // system call's new descriptor, or recvmsg with SCM_RIGHTS); nothing
    // else refers to it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Are descriptors `a` and `b` of this process one open file description
/// (`> log 2>&1`)? They then share one file offset.
pub fn same_open_file(a: libc::c_int, b: libc::c_int) -> bool {
    const KCMP_FILE: libc::c_long = 0;
    let pid = libc::c_long::from(std::process::id() as libc::pid_t);
    // SAFETY: kcmp only compares kernel objects of the given process (our
    // own) and writes nothing into our memory.
    unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid,
            pid,
            KCMP_FILE,
            libc::c_long::from(a),
            libc::c_long::from(b),
        ) == 0
    }
}

/// Is descriptor `fd` open on a regular file?
pub fn is_regular_file(fd: libc::c_int) -> bool {
    // SAFETY: fstat writes into a stat struct we own; an invalid fd just
    // returns an error.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
    }
}
