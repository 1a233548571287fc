//! The terminal: guard keeps the caller's terminal (no setsid), so the
//! command shares it with the user's shell. TIOCSTI (push bytes into the
//! terminal's input, i.e. type commands into the shell that runs after
//! guard) and TIOCLINUX must be refused, also when the request number has
//! high bits set (the kernel reads only the low 32 bits).
//!
//! Each test runs guard on a fresh pty that is the controlling terminal of
//! guard's session, in raw mode so an injected byte would be readable at
//! once; after guard exits, the test checks that the pty's input queue is
//! empty.

use crate::common::Outcome;
use crate::support::{Case, Expect, each_mode, errno::*};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) struct Pty {
    pub(crate) master: OwnedFd,
    pub(crate) slave: OwnedFd,
}

pub(crate) fn check(r: libc::c_int, what: &str) -> libc::c_int {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
    r
}

pub(crate) fn open_pty() -> Pty {
    // SAFETY: standard pty allocation; every pointer passed is valid for
    // the call, and the descriptors are owned by the returned value.
    unsafe {
        let m = check(
            libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY),
            "posix_openpt",
        );
        let master = OwnedFd::from_raw_fd(m);
        check(libc::grantpt(m), "grantpt");
        check(libc::unlockpt(m), "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        check(
            libc::ptsname_r(m, name.as_mut_ptr(), name.len()),
            "ptsname_r",
        );
        let s = check(
            libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY),
            "open pty slave",
        );
        let slave = OwnedFd::from_raw_fd(s);
        let mut t: libc::termios = std::mem::zeroed();
        check(libc::tcgetattr(s, &mut t), "tcgetattr");
        libc::cfmakeraw(&mut t);
        check(libc::tcsetattr(s, libc::TCSANOW, &t), "tcsetattr");
        let flags = libc::fcntl(m, libc::F_GETFL);
        check(
            libc::fcntl(m, libc::F_SETFL, flags | libc::O_NONBLOCK),
            "nonblocking master",
        );
        Pty { master, slave }
    }
}

pub(crate) fn drain(master: &OwnedFd, into: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a local buffer of the given size.
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        into.extend_from_slice(&buf[..n as usize]);
    }
}

/// Run `cmd` with a fresh pty as its stdin/stdout/stderr and controlling
/// terminal; with `answer` (query, reply), reply once to the query as a
/// terminal does. Returns the transcript, the exit code and the number of
/// bytes left in the pty's input queue afterwards.
pub(crate) fn on_pty(mut cmd: Command, answer: Option<(&[u8], &[u8])>) -> (String, i32, i32) {
    let pty = open_pty();
    let dup = |fd: &OwnedFd| fd.try_clone().expect("dup pty slave");
    cmd.stdin(dup(&pty.slave))
        .stdout(dup(&pty.slave))
        .stderr(dup(&pty.slave));
    // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the slave.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn on a pty");
    drop(cmd);
    let mut transcript = Vec::new();
    let mut answer = answer;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        drain(&pty.master, &mut transcript);
        if let Some((query, reply)) = answer
            && transcript.windows(query.len()).any(|w| w == query)
        {
            // SAFETY: writing a buffer of the given length.
            let n =
                unsafe { libc::write(pty.master.as_raw_fd(), reply.as_ptr().cast(), reply.len()) };
            assert_eq!(n, reply.len() as isize, "answer the query");
            answer = None;
        }
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "no exit under the pty:\n{}",
                String::from_utf8_lossy(&transcript)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    drain(&pty.master, &mut transcript);
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    check(
        unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::FIONREAD, &mut pending) },
        "FIONREAD",
    );
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    (
        String::from_utf8_lossy(&transcript).into_owned(),
        code,
        pending,
    )
}

/// Run the Python snippet under guard on a pty that is guard's controlling
/// terminal. Returns the transcript as an Outcome (stdout and stderr
/// merged) and the number of bytes left in the pty's input queue.
fn under_pty(case: &Case, code: &str) -> (Outcome, i32) {
    case.write_python(code);
    let (stdout, code, pending) = on_pty(case.guard(&["run", "--", "python3", "attack.py"]), None);
    let out = Outcome {
        code,
        stdout,
        stderr: String::new(),
    };
    case.assert_no_leak(&out);
    out.ran();
    (out, pending)
}

/// Python: establish that fd 0 is the controlling terminal (so the kernel
/// alone would accept TIOCSTI: legacy_tiocsti is checked by the test) and
/// that ordinary tty ioctls work; define `pending()`, the errno of a
/// non-blocking read of stdin (EAGAIN when nothing was injected).
const TTY_PRELUDE: &str = r#"
import fcntl, termios
tty = os.open("/dev/tty", os.O_RDWR)
out("ctty", int(err(os.tcgetpgrp, 0) == 0))     # ENOTTY unless fd 0 is our controlling tty
out("winsize", err(fcntl.ioctl, 0, termios.TIOCGWINSZ, b"\0" * 8))
def pending():
    os.set_blocking(0, False)
    try:
        return "read:%r" % os.read(0, 64)
    except OSError as e:
        return e.errno
"#;

/// Would the kernel itself accept TIOCSTI from a process on its own
/// controlling terminal? (dev.tty.legacy_tiocsti, Linux 6.2+.) Printed so a
/// reader knows whether seccomp was the only thing in the way.
fn legacy_tiocsti() -> String {
    std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "1 (no sysctl: always allowed)".into())
}

#[test]
fn tiocsti_refused_nothing_injected() {
    let legacy = legacy_tiocsti();
    eprintln!("dev.tty.legacy_tiocsti = {legacy}");
    if legacy.starts_with('1') {
        // Control: without guard the same call does inject, and the harness
        // sees it.
        let mut c = Command::new("/usr/bin/python3");
        c.args([
            "-c",
            "import fcntl, termios; fcntl.ioctl(0, termios.TIOCSTI, b'Q')",
        ]);
        let (transcript, code, queued) = on_pty(c, None);
        assert_eq!(
            (code, queued),
            (0, 1),
            "control: TIOCSTI outside guard did not inject: {transcript}"
        );
    }
    each_mode(|case| {
        let (out, queued) = under_pty(
            &case,
            &format!(
                r#"{TTY_PRELUDE}
out("stdin", err(fcntl.ioctl, 0, termios.TIOCSTI, b"Q"))
out("devtty", err(fcntl.ioctl, tty, termios.TIOCSTI, b"Q"))
for c in b"id\n":
    err(fcntl.ioctl, 0, termios.TIOCSTI, bytes([c]))
out("pending", pending())
"#
            ),
        );
        out.fields(&[
            ("ctty", "1"),
            ("winsize", "0"),
            ("stdin", EPERM),
            ("devtty", EPERM),
            ("pending", EAGAIN),
        ]);
        assert_eq!(
            queued, 0,
            "bytes were injected into the terminal's input:\n{}",
            out.stdout
        );
    });
}

/// The same request with bits above 32 set: ioctl(2) takes the request as
/// an unsigned int, so 0x1_0000_5412 is TIOCSTI to the kernel; the filter
/// must compare the low 32 bits too.
#[test]
fn tiocsti_high_bits_refused() {
    each_mode(|case| {
        let (out, queued) = under_pty(
            &case,
            &format!(
                r#"{TTY_PRELUDE}
buf = ctypes.c_char_p(b"Q")
out("high32", sc(16, 0, 0x1_0000_5412, buf)[1])
out("high_all", sc(16, 0, 0xffff_ffff_0000_5412, buf)[1])
out("pending", pending())
"#
            ),
        );
        out.fields(&[
            ("ctty", "1"),
            ("high32", EPERM),
            ("high_all", EPERM),
            ("pending", EAGAIN),
        ]);
        assert_eq!(
            queued, 0,
            "bytes were injected into the terminal's input:\n{}",
            out.stdout
        );
    });
}

/// TIOCLINUX (paste the console selection as input, among others). On a
/// pty the kernel would answer ENOTTY/EINVAL; EPERM is the filter's.
#[test]
fn tioclinux_refused() {
    each_mode(|case| {
        let (out, queued) = under_pty(
            &case,
            &format!(
                r#"{TTY_PRELUDE}
TIOCLINUX = 0x541C
out("paste", err(fcntl.ioctl, 0, TIOCLINUX, bytes([3])))       # TIOCL_PASTESEL
out("getshift", err(fcntl.ioctl, 0, TIOCLINUX, bytes([6])))    # TIOCL_GETSHIFTSTATE
out("high", sc(16, 0, 0x1_0000_541C, ctypes.c_char_p(bytes([3])))[1])
out("pending", pending())
"#
            ),
        );
        out.fields(&[
            ("ctty", "1"),
            ("paste", EPERM),
            ("getshift", EPERM),
            ("high", EPERM),
            ("pending", EAGAIN),
        ]);
        assert_eq!(
            queued, 0,
            "bytes were injected into the terminal's input:\n{}",
            out.stdout
        );
    });
}
