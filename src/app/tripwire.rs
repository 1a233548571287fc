//! Leases guard keeps on the files the host made anew under a cover, for
//! the rest of the run.
//!
//! Once guard has covered again a file the host replaced (see `replaced`),
//! the sandbox may still hold a way to the new file taken in the moment
//! before the cover, kept where guard's check could not see it: an
//! `O_PATH` descriptor (or one opened with access mode 3) in flight in a
//! unix socket, received after the check. Such opens count for no lease
//! and sit in no process's table, but they give nothing until the file is
//! opened anew through them (/proc/self/fd). guard keeps a lease on the
//! file (a write lease on a secret file, a read lease on a protected one),
//! so the kernel makes any such open wait and tells guard (SIGURG, read
//! from a signalfd of the watch's thread). /proc/locks names who waits: a
//! process of the sandbox ends the session before its open returns; a
//! program of the host's (the user's server reading `.env` again) is let
//! through, and the lease taken again once nothing holds the file open.
//!
//! Threat model: the sandbox may hold any number of such ways and try
//! them at any time, and may open without waiting (`O_NONBLOCK`: the open
//! fails, the lease is broken all the same, and nobody waits). An open
//! guard cannot attribute ends the session: letting the lease go would
//! give the next try the file (the host's own `tar` and `file` open so
//! too: they fail on the file, and the session ends). Permission bits
//! changed through a kept way (`chmod /proc/self/fd/N` opens nothing) are
//! set back at the end of the run.
//!
//! Left open (review 28): while a program of the host holds the file open
//! the lease is let go, and a sandbox that kept a way in flight can tell
//! that moment (an inotify watch on /proc/self/fd/N, the file's atime)
//! and open and read it then, out of guard's sight. Closing that needs a
//! decision per open (fanotify permission events: root only) or never
//! letting the host's programs read the file during the run.

use crate::sandbox::Keeper;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

/// How often a file whose lease a program of the host's took is looked at
/// again (to take the lease back, or to find a sandbox's descriptor on it).
pub const TICK: Duration = Duration::from_millis(10);

/// How long guard waits for the program that broke a lease to show as
/// waiting in /proc/locks (it is queued right after the signal is sent).
const WAITER_SHOWS_WITHIN: Duration = Duration::from_millis(100);

/// How many files are kept under a lease at most (each holds a
/// descriptor, and guard's soft limit is the usual 1024, which the egress
/// relay shares); past that the oldest goes (a way kept to that version
/// would reach it again). A program of the host's that rewrites a secret
/// file every minute fills this in eight hours.
const MAX_WIRES: usize = 512;

/// fcntl(2)'s F_SETOWN_EX, F_OWNER_TID and F_SETSIG (asm-generic/fcntl.h), and its
/// `struct f_owner_ex`, which the libc crate lacks for this target.
const F_SETOWN_EX: libc::c_int = 15;
pub const F_SETSIG: libc::c_int = 10;
const F_OWNER_TID: libc::c_int = 0;
#[repr(C)]
struct FOwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

struct Wire {
    /// The cover (of `replaced::watch`) this file was made anew under.
    cover: usize,
    /// Opened for reading; the lease is on it.
    file: std::fs::File,
    dev: u64,
    ino: u64,
    /// The device as /proc/locks prints it (the superblock's, which on
    /// btrfs is not `st_dev`), read off guard's own lease line.
    locks_dev: Option<(u64, u64)>,
    /// F_WRLCK for a secret file (any open breaks it), F_RDLCK for a
    /// protected one (opens for writing do).
    kind: libc::c_int,
    /// Whether the lease is held now.
    armed: bool,
    /// Its permission bits when covered: a way kept to it changes them
    /// without an open (`chmod /proc/self/fd/N`), see [`Tripwires::finish`].
    mode: u32,
}

/// The leases kept by the watch's thread (made on it, and used only there).
pub struct Tripwires {
    wires: Vec<Wire>,
    /// SIGURG, blocked on this thread and read here; `None` if it could
    /// not be made (then [`Tripwires::wait`] looks every [`TICK`]).
    signals: Option<SignalFd>,
    /// Why [`Tripwires::tend`] ended the session.
    pub tripped: Option<Tripped>,
    /// A lease was taken since the last [`Tripwires::tend`]: a break in
    /// the moment before its signal was sent to this thread went to the
    /// whole process (where SIGURG is ignored), so look at once.
    recheck: bool,
}

/// Why the session must end for a file under a lease.
pub struct Tripped {
    pub cover: usize,
    pub why: String,
}

impl Tripwires {
    /// On the thread that will hold and tend the leases.
    pub fn new() -> Tripwires {
        let mut urg = SigSet::empty();
        urg.add(Signal::SIGURG);
        let signals = urg.thread_block().ok().and_then(|()| {
            SignalFd::with_flags(&urg, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok()
        });
        Tripwires {
            wires: Vec::new(),
            signals,
            tripped: None,
            recheck: false,
        }
    }

    /// What to wait on besides the watch's own descriptors, and for how
    /// long at most (`None`: until it is readable).
    pub fn wait(&self) -> (Option<BorrowedFd<'_>>, Option<Duration>) {
        let tick = self.wires.iter().any(|w| !w.armed)
            || (self.signals.is_none() && !self.wires.is_empty());
        let wait = if self.recheck {
            Some(Duration::ZERO)
        } else {
            tick.then_some(TICK)
        };
        (self.signals.as_ref().map(|s| s.as_fd()), wait)
    }

    /// Whether guard keeps a lease on the file `(dev, ino)` already (an
    /// open of it by guard would break its own lease).
    pub fn holds(&self, dev: u64, ino: u64) -> bool {
        self.wires.iter().any(|w| w.dev == dev && w.ino == ino)
    }

    /// Stop keeping the lease on the file `(dev, ino)` (guard is about to
    /// read it itself, to cover it at another path, which would break it).
    pub fn forget(&mut self, dev: u64, ino: u64) {
        self.wires.retain(|w| w.dev != dev || w.ino != ino);
    }

    /// Keep the lease `kind` that `file` holds (see
    /// `replaced::open_elsewhere`) on the file made anew under `cover`.
    pub fn keep(&mut self, cover: usize, file: std::fs::File, kind: libc::c_int) {
        let Ok(st) = nix::sys::stat::fstat(&file) else {
            return;
        };
        if self.wires.len() >= MAX_WIRES {
            self.wires.remove(0);
        }
        let wire = Wire {
            cover,
            file,
            dev: st.st_dev,
            ino: st.st_ino,
            locks_dev: own_lease_device(st.st_ino),
            kind,
            armed: true,
            mode: st.st_mode & 0o7777,
        };
        signal_this_thread(&wire.file);
        self.recheck = true;
        self.wires.push(wire);
    }

    /// Look at every lease: a broken one (someone opens the file) is let go
    /// to a program of the host's, and ends the session otherwise (`true`;
    /// why in [`Tripwires::tripped`]); one let go is taken again once
    /// nothing holds the file open.
    pub fn tend(&mut self, keeper: &mut Keeper) -> bool {
        if self.tripped.is_some() {
            return true;
        }
        if let Some(s) = &self.signals {
            while let Ok(Some(_)) = s.read_signal() {}
        }
        self.recheck = false;
        for w in &mut self.wires {
            let why = if !w.armed {
                let why = take_again(w, keeper);
                self.recheck |= w.armed;
                why
            } else if breaking(w) {
                let_go(w, keeper)
            } else {
                None
            };
            if let Some(why) = why {
                keeper.end();
                self.tripped = Some(Tripped {
                    cover: w.cover,
                    why,
                });
                return true;
            }
        }
        false
    }

    /// At the end of the run: the files that gained permission bits since
    /// they were covered (a kept way to one makes it readable to others
    /// without opening it), each without them again. Their paths are the caller's
    /// (by cover).
    pub fn finish(&self) -> Vec<usize> {
        let mut changed = Vec::new();
        for w in &self.wires {
            let Ok(st) = nix::sys::stat::fstat(&w.file) else {
                continue;
            };
            // Only bits added: the user may have narrowed them meanwhile.
            let now = st.st_mode & 0o7777;
            if now & !w.mode != 0 {
                let _ = nix::sys::stat::fchmod(
                    &w.file,
                    nix::sys::stat::Mode::from_bits_truncate(now & w.mode),
                );
                changed.push(w.cover);
            }
        }
        changed
    }

    /// After the session was ended: keep every lease until no process of
    /// the sandbox is left (one waiting to open a file would get it once
    /// the lease goes), up to a few seconds.
    pub fn hold_until_gone(&self, keeper: &mut Keeper) {
        if self.wires.is_empty() {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        keeper.end();
        while keeper.any_inside() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Have the kernel's lease signals for `file` sent to this thread, whose
/// signalfd reads them (a lease taken sends them to the whole process,
/// where SIGURG is ignored).
fn signal_this_thread(file: &std::fs::File) {
    let owner = FOwnerEx {
        kind: F_OWNER_TID,
        pid: nix::unistd::gettid().as_raw(),
    };
    // SAFETY: fcntl on a descriptor `file` owns; F_SETOWN_EX reads a
    // `struct f_owner_ex`, which `owner` is, alive for the call.
    unsafe { libc::fcntl(file.as_raw_fd(), F_SETOWN_EX, &owner as *const FOwnerEx) };
}

/// The lease of `w` is being broken: someone opens the file.
fn breaking(w: &Wire) -> bool {
    // SAFETY: fcntl on a descriptor `w` owns; F_GETLEASE takes no argument.
    let now = unsafe { libc::fcntl(w.file.as_raw_fd(), libc::F_GETLEASE) };
    // While broken, the lease reads as what it is being broken to.
    now != w.kind
}

/// Someone opens the file of `w`: `None` (the lease let go) if it is a
/// program of the host's, else why the session ends.
fn let_go(w: &mut Wire, keeper: &Keeper) -> Option<String> {
    let deadline = std::time::Instant::now() + WAITER_SHOWS_WITHIN;
    let host = loop {
        let dev = w.locks_dev.unwrap_or((major(w.dev), minor(w.dev)));
        let waiting = waiters(dev, w.ino);
        if waiting.iter().any(|pid| keeper.is_inside(*pid)) {
            return Some(
                "a process of the sandbox opened it through a way it had kept from the moment before guard covered it again, where guard's check could not see it (a descriptor sent over a socket)"
                    .into(),
            );
        }
        if !waiting.is_empty() {
            break true;
        }
        if std::time::Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !host {
        return Some(
            "something opened it without waiting for guard's lease (O_NONBLOCK), which guard cannot tell from a process of the sandbox trying a way it had kept from the moment before guard covered it again"
                .into(),
        );
    }
    // SAFETY: fcntl on a descriptor `w` owns; F_SETLEASE takes a lease type.
    unsafe { libc::fcntl(w.file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    w.armed = false;
    None
}

/// The lease of `w` was let go to a program of the host's: take it again
/// if nothing holds the file open now; else why the session ends if a
/// process of the sandbox holds it, or it has a second name.
fn take_again(w: &mut Wire, keeper: &Keeper) -> Option<String> {
    let fd = w.file.as_raw_fd();
    // The signal is set again each time: letting a lease go resets it
    // (to SIGIO, which would end guard).
    // SAFETY: fcntl on a descriptor `w` owns; F_SETSIG takes a signal
    // number, F_SETLEASE a lease type.
    if unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGURG) } == 0
        && unsafe { libc::fcntl(fd, libc::F_SETLEASE, w.kind) } == 0
    {
        w.armed = true;
        signal_this_thread(&w.file);
        return None;
    }
    if keeper.held_inside(w.dev, w.ino, w.kind == libc::F_RDLCK) {
        return Some(
            "a process in the sandbox opened it while a program of the host's had it open, through a way it had kept from the moment before guard covered it again"
                .into(),
        );
    }
    let links = nix::sys::stat::fstat(&w.file).map_or(1, |st| st.st_nlink);
    (links > 1).then(|| {
        format!("it has {links} names: a hard link to it was made after guard covered it again, through a way the sandbox had kept from the moment before")
    })
}

/// The processes (pids in guard's namespace) waiting for a lease on the
/// file `(dev, ino)` to go: /proc/locks lists each lease as
/// `ID: LEASE STATE TYPE PID MAJ:MIN:INO START END`, and each waiter for
/// it after it as `ID: -> LEASE BREAKER TYPE PID ...`, with the same ID.
fn waiters(dev: (u64, u64), ino: u64) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    let on_file = |at: &str| parse_file(at) == Some((dev.0, dev.1, ino));
    let mut ids: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [id, "->", "LEASE", _, _, pid, ..] if ids.contains(id) => {
                out.extend(pid.parse::<u32>().ok());
            }
            [id, "LEASE", _, _, _, at, ..] if on_file(at) => ids.push(id),
            _ => {}
        }
    }
    out
}

fn major(dev: u64) -> u64 {
    u64::from(libc::major(dev))
}

fn minor(dev: u64) -> u64 {
    u64::from(libc::minor(dev))
}

/// `MAJ:MIN:INO` of a /proc/locks line (major and minor in hex).
fn parse_file(at: &str) -> Option<(u64, u64, u64)> {
    let mut parts = at.split(':');
    let (Some(maj), Some(min), Some(ino), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some((
        u64::from_str_radix(maj, 16).ok()?,
        u64::from_str_radix(min, 16).ok()?,
        ino.parse().ok()?,
    ))
}

/// The device /proc/locks names for guard's own lease on inode `ino`.
fn own_lease_device(ino: u64) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let me = std::process::id().to_string();
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [_, "LEASE", _, _, pid, at, ..] if *pid == me => {
                parse_file(at).and_then(|(maj, min, i)| (i == ino).then_some((maj, min)))
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real lease, a real waiter: /proc/locks names the waiting process.
    #[test]
    fn waiters_are_read_from_proc_locks() {
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("guard-lease-{}", std::process::id()));
        std::fs::write(&path, "x").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: fcntl on an open descriptor of this test. The break
        // signal: SIGURG, ignored (SIGIO would end the test).
        let taken = unsafe {
            libc::fcntl(file.as_raw_fd(), F_SETSIG, libc::SIGURG);
            libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK)
        };
        assert_eq!(taken, 0, "{}", std::io::Error::last_os_error());
        let m = std::fs::metadata(&path).unwrap();
        let dev = own_lease_device(m.ino()).unwrap();
        assert_eq!(dev, (major(m.dev()), minor(m.dev())));
        assert!(waiters(dev, m.ino()).is_empty());
        let mut opener = std::process::Command::new("cat")
            .arg(&path)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while seen.is_empty() && std::time::Instant::now() < deadline {
            seen = waiters(dev, m.ino());
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: as above.
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
        opener.wait().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(seen, vec![opener.id()]);
    }
}
