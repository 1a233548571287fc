//! Keeping the view when the host replaces a file under it.
//!
//! A hidden, redacted or protected file is a mount over the file's
//! directory entry. A program on the host that replaces the file (an
//! editor's save, `sed -i`, the user's git writing `.git/config` anew: a
//! new file renamed over the old) removes that entry, and the kernel
//! detaches the mounts on it in every other mount namespace: from then on
//! the sandbox would read the new file as it is, and write it where it was
//! protected. The supervisor sees the replacement (`app::replaced`) and
//! asks the setup process to mount over the new file as over the old. The
//! setup process can: it holds every capability of the sandbox's user
//! namespace, in the sandbox's mount namespace, and lives outside the
//! sandbox's pid namespace, where nothing inside can signal or trace it.
//! What remains is the moment between the rename and the new mount.
//!
//! Threat model: requests come only from the supervisor, over a socket
//! pair made before the setup process started (close-on-exec there, never
//! in the sandbox); pid 1 hands over the reserve before the command runs.

use super::channel;
use super::mounts::{self, Cover};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// A request from the supervisor.
#[derive(serde::Serialize, serde::Deserialize)]
enum Request {
    /// Cover `path` (a path of the view) as `how` says.
    Cover {
        /// Any bytes: a file name need not be UTF-8.
        #[serde(with = "crate::plan::os_path")]
        path: PathBuf,
        how: Cover,
    },
    /// End the sandbox now: a secret file can no longer be kept covered.
    End,
}

/// Why a path was not covered.
pub enum Uncovered {
    /// The sandbox has ended: nothing is left to read it.
    Gone,
    /// Why the mount failed.
    Failed(String),
}

/// The supervisor's end.
pub struct Keeper {
    sock: UnixStream,
    /// The setup process (the parent of the sandbox's pid 1).
    setup: u32,
}

impl Keeper {
    pub(super) fn new(sock: UnixStream, setup: u32) -> Keeper {
        Keeper { sock, setup }
    }

    /// Have `path` covered in the view again.
    pub fn cover(&mut self, path: &Path, how: Cover) -> Result<(), Uncovered> {
        let req = Request::Cover {
            path: path.to_path_buf(),
            how,
        };
        channel::send(&mut self.sock, &req).map_err(|_| Uncovered::Gone)?;
        match channel::recv::<Result<(), String>>(&mut self.sock) {
            Ok(Some(answer)) => answer.map_err(Uncovered::Failed),
            Ok(None) | Err(_) => Err(Uncovered::Gone),
        }
    }

    /// End the sandbox (every process in it): the setup process kills its
    /// pid 1. Returns once the request is sent; the run then ends as when
    /// the command is killed.
    pub fn end(&mut self) {
        let _ = channel::send(&mut self.sock, &Request::End);
    }

    /// Whether a process in the sandbox holds the file `(dev, ino)` by a
    /// descriptor of any kind (`O_PATH` ones included, which the sandbox
    /// can open again through /proc/self/fd), in any of its threads'
    /// tables; with `writers_only`, one it can write through (open for
    /// writing, or `O_PATH`). Read from the host's /proc, where the
    /// supervisor may: it owns the sandbox's user namespace. A process
    /// whose descriptors cannot be read counts as holding it. Its pid 1 is
    /// guard's and holds nothing of the sandbox's. A descriptor in flight
    /// (sent over a socket, not received yet) is in no table: see
    /// `app::replaced::reachable`, which checks for open ones otherwise.
    pub fn held_inside(&self, dev: u64, ino: u64, writers_only: bool) -> bool {
        self.held(dev, ino, writers_only, true)
    }

    /// Whether a program outside the sandbox (guard aside) holds the file
    /// `(dev, ino)` open: the host's own writer of a file it made anew
    /// (`slow-cli > .env`). Processes the user cannot inspect are not
    /// counted.
    pub fn held_outside(&self, dev: u64, ino: u64) -> bool {
        self.held(dev, ino, false, false)
    }

    /// The sandbox's pid namespace, as /proc/PID/ns/pid links name it;
    /// `None` once the setup process is gone.
    fn namespace(&self) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/{}/ns/pid_for_children", self.setup)).ok()
    }

    /// Whether the process `pid` (of guard's pid namespace) is in the
    /// sandbox. Gone, or the sandbox gone: no.
    pub fn is_inside(&self, pid: u32) -> bool {
        let ns = self.namespace();
        ns.is_some() && std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok() == ns
    }

    /// Whether any process is left in the sandbox (its pid 1 included).
    pub fn any_inside(&self) -> bool {
        let Some(ns) = self.namespace() else {
            return false;
        };
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return true;
        };
        procs.flatten().any(|p| {
            p.file_name()
                .as_encoded_bytes()
                .iter()
                .all(u8::is_ascii_digit)
                && std::fs::read_link(p.path().join("ns/pid")).ok().as_ref() == Some(&ns)
        })
    }

    fn held(&self, dev: u64, ino: u64, writers_only: bool, inside: bool) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(ns) = self.namespace() else {
            return inside; // the sandbox is gone, or cannot be told: held
        };
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return inside;
        };
        let guard = std::process::id().to_string();
        for pid in procs.flatten() {
            let pid = pid.file_name();
            if !pid.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
                continue;
            }
            let dir = Path::new("/proc").join(&pid);
            let in_sandbox = std::fs::read_link(dir.join("ns/pid")).ok().as_ref() == Some(&ns);
            if in_sandbox != inside
                || (inside && pid1_of_its_namespace(&dir))
                || (!inside && pid.as_encoded_bytes() == guard.as_bytes())
            {
                continue;
            }
            let Ok(tasks) = std::fs::read_dir(dir.join("task")) else {
                continue; // exited meanwhile
            };
            for task in tasks.flatten() {
                let fds = match std::fs::read_dir(task.path().join("fd")) {
                    Ok(fds) => fds,
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(_) if !inside => continue,
                    Err(_) => return true,
                };
                for fd in fds.flatten() {
                    // Follows the descriptor's link to the file it is on.
                    if std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
                        && (!writers_only
                            || can_write_through(&task.path().join("fdinfo").join(fd.file_name())))
                    {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// The descriptor whose /proc `fdinfo` file is `info` was opened for
/// writing, or with `O_PATH` (which opens again for writing through /proc);
/// `true` when that cannot be read.
fn can_write_through(info: &Path) -> bool {
    let flags = std::fs::read_to_string(info).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
    });
    flags.is_none_or(|f| f & libc::O_ACCMODE != libc::O_RDONLY || f & libc::O_PATH != 0)
}

/// The process at `/proc/PID` is pid 1 of its own pid namespace.
fn pid1_of_its_namespace(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|ids| ids.split_whitespace().last())
            == Some("1")
    })
}

/// The setup process's side: first the reserve from pid 1 once the view
/// is built, then requests until the supervisor or the sandbox is gone.
/// Served from the setup process's one loop (see `init`).
pub(super) struct Serving {
    sock: Option<UnixStream>,
    from_pid1: Option<UnixStream>,
    reserve: Option<OwnedFd>,
    /// Redacted copies made so far (each gets a name of its own).
    copies: usize,
}

impl Serving {
    pub(super) fn new(sock: UnixStream, from_pid1: UnixStream) -> Serving {
        Serving {
            sock: Some(sock),
            from_pid1: Some(from_pid1),
            reserve: None,
            copies: 0,
        }
    }

    /// What to wait on: pid 1's hand-over first (requests wait in the
    /// socket until then), then the supervisor's requests.
    pub(super) fn waiting_on(&self) -> Option<BorrowedFd<'_>> {
        self.from_pid1
            .as_ref()
            .or(self.sock.as_ref())
            .map(|s| s.as_fd())
    }

    /// [`Serving::waiting_on`] is readable. `true`: the supervisor asked
    /// for the sandbox to end.
    #[must_use]
    pub(super) fn ready(&mut self) -> bool {
        if let Some(mut p) = self.from_pid1.take() {
            // End of stream instead: pid 1 failed before the view was built.
            if let Ok(Some(((), mut fds))) = channel::recv_with_fds::<()>(&mut p)
                && fds.len() == 1
            {
                self.reserve = fds.pop();
            }
            return false;
        }
        let Some(sock) = self.sock.as_mut() else {
            return false;
        };
        let Ok(Some(req)) = channel::recv::<Request>(sock) else {
            self.sock = None;
            return false;
        };
        let (path, how) = match req {
            Request::Cover { path, how } => (path, how),
            Request::End => {
                self.sock = None;
                return true;
            }
        };
        self.copies += 1;
        let name = std::ffi::CString::new(format!("copy-{}", self.copies)).unwrap_or_default();
        let answer = match &self.reserve {
            Some(r) => {
                mounts::cover(&path, &how, r.as_fd(), &name).map_err(|e| crate::error::os_text(&e))
            }
            None => Err("the sandbox's view was never built".into()),
        };
        if channel::send(sock, &answer).is_err() {
            self.sock = None;
        }
        false
    }
}
