//! A parallel directory walk that never follows a symlink and stats files
//! relative to their directory's descriptor.
//!
//! Why not a general-purpose walker: those stat each entry by its full
//! path, and on a warm scan (every file's content cached) that path lookup
//! is most of the cost. Here every directory is opened with
//! `O_DIRECTORY | O_NOFOLLOW`, entries come from `getdents` with their type,
//! and files are `fstatat`/`openat`-ed by name relative to the directory fd,
//! also with `O_NOFOLLOW`: a directory swapped for a symlink mid-walk is
//! refused, never followed. No ignore files are read: everything is walked.
//!
//! A directory unchanged since an earlier walk (the visitor remembers its
//! entries, see `cache::DirKey`) is not read again: its remembered entries
//! are visited instead, each file still looked at by the visitor (a write
//! to a file does not change its directory).

use super::cache::{DirKey, Kind, Listing, NewListing, Target};
use nix::dir::{Dir, Type};
use nix::fcntl::{OFlag, open};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

pub trait Visitor<'c>: Send {
    /// A directory below the root; `false` to not enter it.
    fn dir(&mut self, path: &Path) -> bool;
    /// The entries remembered for the directory open as `fd` (`st` is its
    /// status), if they still hold.
    fn remembered(&mut self, _fd: BorrowedFd<'_>, _st: &FileStat) -> Option<Listing<'c>> {
        None
    }
    /// A directory read whole from disk, open as `fd`: entries to remember.
    fn listed(&mut self, _fd: BorrowedFd<'_>, _listing: NewListing) {}
    /// A regular file, `name` inside the open directory `dirfd`; `hint`
    /// is its cache record as remembered. Returns the file's (dev, ino) if
    /// it looked at the file.
    fn file(
        &mut self,
        dirfd: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        hint: Option<u32>,
    ) -> Option<(u64, u64)>;
    /// A symlink (never followed).
    fn link(&mut self, _dirfd: BorrowedFd<'_>, _name: &CStr, _path: &Path) {}
    /// An entry of the directory `dir` (or `dir` itself) could not be read.
    fn error(&mut self, dir: &Path);
    /// Stop the whole walk (a rule failed).
    fn quit(&self) -> bool {
        false
    }
}

/// `fstatat` without following a symlink.
pub fn lstat_at(dirfd: BorrowedFd<'_>, name: &CStr) -> nix::Result<FileStat> {
    fstatat(dirfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
}

struct Queue {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    dirs: Vec<PathBuf>,
    /// Workers holding a directory; the walk ends when none does and the
    /// queue is empty.
    busy: usize,
    /// Workers waiting for a directory (wake-ups are system calls: only
    /// made for someone).
    waiting: usize,
    quit: bool,
}

impl Queue {
    fn next(&self) -> Option<PathBuf> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if s.quit {
                return None;
            }
            if let Some(d) = s.dirs.pop() {
                s.busy += 1;
                return Some(d);
            }
            if s.busy == 0 {
                if s.waiting > 0 {
                    self.wake.notify_all();
                }
                return None;
            }
            s.waiting += 1;
            s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            s.waiting -= 1;
        }
    }

    fn done(&self, found: &mut Vec<PathBuf>, quit: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.dirs.append(found);
        s.busy -= 1;
        s.quit |= quit;
        if s.waiting > 0 {
            self.wake.notify_all();
        }
    }
}

/// Walk the directory `root` (not itself checked with `Visitor::dir`) on
/// `threads` threads, one visitor each; returns the visitors.
pub fn walk<'c, V: Visitor<'c>>(
    root: &Path,
    threads: usize,
    make: impl Fn() -> V + Sync,
) -> Vec<V> {
    let queue = Queue {
        state: Mutex::new(State {
            dirs: vec![root.to_path_buf()],
            busy: 0,
            waiting: 0,
            quit: false,
        }),
        wake: Condvar::new(),
    };
    let work = |queue: &Queue, make: &(dyn Fn() -> V + Sync)| {
        let mut v = make();
        let mut found = Vec::new();
        while let Some(dir) = queue.next() {
            read_dir(&dir, &mut v, &mut found);
            let quit = v.quit();
            queue.done(&mut found, quit);
        }
        v
    };
    if threads <= 1 {
        // Small trees: no thread to start and join.
        return vec![work(&queue, &make)];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let queue = &queue;
                let make = &make;
                scope.spawn(move || work(queue, make))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

/// A directory's path with room for one entry's name after it (`PathBuf`
/// push and pop parse components: a measurable cost per file).
struct EntryPath {
    buf: Vec<u8>,
    dir_len: usize,
}

impl EntryPath {
    fn new(dir: &Path) -> EntryPath {
        let mut buf = dir.as_os_str().as_bytes().to_vec();
        if !buf.ends_with(b"/") {
            buf.push(b'/');
        }
        EntryPath {
            dir_len: buf.len(),
            buf,
        }
    }

    fn join(&mut self, name: &CStr) -> &Path {
        self.buf.truncate(self.dir_len);
        self.buf.extend_from_slice(name.to_bytes());
        Path::new(OsStr::from_bytes(&self.buf))
    }
}

fn read_dir<'c, V: Visitor<'c>>(dir: &Path, v: &mut V, subdirs: &mut Vec<PathBuf>) {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let Ok(fd) = open(dir, flags, Mode::empty()) else {
        v.error(dir);
        return;
    };
    // The key is taken before the entries are read: an entry added or
    // removed meanwhile moves the directory's times past this key, so a
    // listing that missed it is never used again (and one changed within
    // the timestamps' granularity is too recent to be remembered at all).
    let Ok(st) = fstat(fd.as_fd()) else {
        v.error(dir);
        return;
    };
    let mut path = EntryPath::new(dir);
    if let Some(listing) = v.remembered(fd.as_fd(), &st) {
        for (name, target) in listing.iter() {
            let p = path.join(name);
            match target {
                Target::Dir if v.dir(p) => subdirs.push(p.to_path_buf()),
                Target::Dir => {}
                Target::File(hint) => {
                    v.file(fd.as_fd(), name, p, hint);
                }
                Target::Link => v.link(fd.as_fd(), name, p),
            }
        }
        return;
    }
    let Ok(mut entries) = Dir::from_fd(fd) else {
        v.error(dir);
        return;
    };
    let mut listing = NewListing::new(DirKey::from_stat(&st));
    let mut complete = true;
    let mut unknown: Vec<CString> = Vec::new();
    for entry in entries.iter() {
        let Ok(entry) = entry else {
            v.error(dir);
            complete = false;
            continue;
        };
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        match entry.file_type() {
            Some(Type::Directory) => listing.push(name, Kind::Dir),
            Some(Type::File) => listing.push(name, Kind::File),
            Some(Type::Symlink) => listing.push(name, Kind::Link),
            // DT_UNKNOWN (some filesystems): ask the inode, below.
            None => unknown.push(name.to_owned()),
            // Fifos, sockets, devices hold nothing to look at.
            Some(_) => {}
        }
    }
    let at = entries.as_fd();
    for name in unknown {
        match lstat_at(at, &name) {
            Ok(st) => match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
                SFlag::S_IFDIR => listing.push(&name, Kind::Dir),
                SFlag::S_IFREG => listing.push(&name, Kind::File),
                SFlag::S_IFLNK => listing.push(&name, Kind::Link),
                _ => {}
            },
            Err(_) => {
                v.error(dir);
                complete = false;
            }
        }
    }
    for (name, kind, id) in listing.entries_mut() {
        let p = path.join(name);
        match kind {
            Kind::File => *id = v.file(at, name, p, None),
            Kind::Dir if v.dir(p) => subdirs.push(p.to_path_buf()),
            Kind::Dir => {}
            Kind::Link => v.link(at, name, p),
        }
    }
    if complete {
        v.listed(at, listing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Names {
        files: Vec<PathBuf>,
        dirs: Vec<PathBuf>,
    }

    impl Visitor<'static> for Names {
        fn dir(&mut self, path: &Path) -> bool {
            self.dirs.push(path.to_path_buf());
            !path.ends_with("skipped")
        }
        fn remembered(&mut self, _: BorrowedFd<'_>, _: &FileStat) -> Option<Listing<'static>> {
            None
        }
        fn listed(&mut self, _: BorrowedFd<'_>, _: NewListing) {}
        fn file(
            &mut self,
            dirfd: BorrowedFd<'_>,
            name: &CStr,
            path: &Path,
            hint: Option<u32>,
        ) -> Option<(u64, u64)> {
            assert!(lstat_at(dirfd, name).is_ok());
            assert_eq!(hint, None);
            self.files.push(path.to_path_buf());
            None
        }
        fn error(&mut self, _: &Path) {}
    }

    #[test]
    fn walks_everything_once_without_following_symlinks() {
        let root = std::env::temp_dir().join(format!("guard-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["a/b/c", ".hidden", "skipped"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "x",
            "a/y",
            "a/b/c/z",
            ".hidden/w",
            "skipped/v",
            ".gitignore",
        ] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        std::fs::write(root.join(".gitignore"), "a\n*\n").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link-dir")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("link-file")).unwrap();
        let visitors = walk(&root, 3, Names::default);
        let mut files: Vec<String> = visitors
            .iter()
            .flat_map(|v| v.files.iter())
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        files.sort();
        assert_eq!(files, [".gitignore", ".hidden/w", "a/b/c/z", "a/y", "x"]);
        let dirs: usize = visitors.iter().map(|v| v.dirs.len()).sum();
        assert_eq!(dirs, 5);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
