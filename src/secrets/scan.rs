//! The scan: a parallel walk over the project (and granted home paths) that
//! finds secret files by path and secret values by content.
//!
//! Every file is considered: ignore files (`.gitignore`, `.ignore`) are not
//! honoured, hidden files are included, symlinks are never followed. Only
//! directories a profile lists in `skip`, paths already hidden, and guard's
//! own cache are not entered. A file's content result is cached by
//! (device, inode, size, mtime, ctime) and a directory's entries by its
//! (device, inode, mtime, ctime), so a warm scan is one `fstatat` per file
//! and one `open` + `fstat` per directory, on every core.

use super::cache::{Bits, Cache, Cached, DirKey, Entry, Key, Listing, NewListing, Update};
use super::content_rules::{ContentScan, Scratch};
use super::path_rules::{PathMatcher, When};
use super::walk::{self, Visitor, lstat_at};
use super::{Action, Flagged, Hit, MAX_FILE_SIZE, RuleError, Rules};
use crate::error::Result;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode};
use serde::Serialize;
use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A tree to scan, and the directory its relative paths start from (the
/// project root, or home for granted home paths).
#[derive(Debug, Clone)]
pub struct Root {
    pub path: PathBuf,
    pub anchor: PathBuf,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    /// Regular files seen.
    pub files: usize,
    /// Content taken from the cache.
    pub cached: usize,
    /// Files read and scanned.
    pub read: usize,
    pub binary: usize,
    /// Over the size limit: not scanned.
    pub large: usize,
    /// Unreadable entries (the sandbox cannot read them either).
    pub errors: usize,
    /// Directories entered, and those of them read from disk (the others'
    /// entries came from the cache).
    pub dirs: usize,
    pub listed: usize,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Sorted by path.
    pub flagged: Vec<Flagged>,
    pub stats: Stats,
    /// Git directories below a root (`vendor/lib/.git`), sorted: their
    /// hooks and config run later outside too, so the caller protects them
    /// like the project's own. Found by the walk at no extra cost.
    pub git_dirs: Vec<PathBuf>,
}

/// Files and directories whose ctime or mtime is this recent are not
/// cached: timestamps are coarse, a second change in the same tick would
/// look like none.
const RACY_NS: i128 = 2_000_000_000;

/// Filesystems known to set a directory's mtime and ctime on every change
/// of its entries, as POSIX requires: only their directories' listings are
/// remembered. (Network and FUSE filesystems may serve stale attributes;
/// overlayfs reports a lower layer's times for a directory not yet copied
/// up.) Magic numbers from statfs(2).
const TRUSTED_FS: &[u32] = &[
    0xEF53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0xF2F5_2010, // f2fs
    0x2FC1_2FC1, // zfs
    0xCA45_1A4E, // bcachefs
];

fn recent(now: i128, mtime_ns: i64, ctime_ns: i64) -> bool {
    i128::from(ctime_ns) > now - RACY_NS || i128::from(mtime_ns) > now - RACY_NS
}

/// Read-only inputs every worker shares.
struct Shared<'a> {
    rules: &'a Rules,
    cache: &'a Cache,
    exclude: &'a HashSet<PathBuf>,
    /// The paths in `exclude` that are not directories (hidden files, such
    /// as /etc/shadow): files of a root that holds none need no lookup.
    excluded_files: Vec<&'a Path>,
    now_ns: i128,
}

/// What one worker found.
#[derive(Default)]
struct Collected {
    flagged: Vec<Flagged>,
    git_dirs: Vec<PathBuf>,
    /// Cache records still valid, and fresh results to cache.
    update: Update,
    /// Files read because the cache had nothing for them.
    misses: usize,
    stats: Stats,
    error: Option<RuleError>,
}

impl Collected {
    fn new(cache: &Cache) -> Collected {
        Collected {
            update: Update {
                files: Bits::new(cache.len()),
                dirs: Bits::new(cache.dirs()),
                ..Update::default()
            },
            ..Collected::default()
        }
    }

    fn merge(&mut self, other: Collected) {
        self.flagged.extend(other.flagged);
        self.git_dirs.extend(other.git_dirs);
        let (u, o) = (&mut self.update, other.update);
        u.files.union(&o.files);
        u.dirs.union(&o.dirs);
        u.fresh.extend(o.fresh);
        u.listings.extend(o.listings);
        self.misses += other.misses;
        let (s, o) = (&mut self.stats, other.stats);
        s.files += o.files;
        s.cached += o.cached;
        s.read += o.read;
        s.binary += o.binary;
        s.large += o.large;
        s.errors += o.errors;
        s.dirs += o.dirs;
        s.listed += o.listed;
        if self.error.is_none() {
            self.error = other.error;
        }
    }
}

/// Files below which a cached tree is walked single-threaded.
const SMALL_TREE: usize = 2000;

/// Scan `roots`, skipping `exclude` (exact paths); use and refresh the cache
/// file `cache_file` when given.
pub fn scan(
    rules: &Rules,
    roots: &[Root],
    exclude: &[PathBuf],
    cache_file: Option<&Path>,
) -> Result<ScanReport> {
    let started = Instant::now();
    let fingerprint = cache_fingerprint(rules);
    let cache = cache_file
        .map(|p| Cache::load(p, &fingerprint))
        .unwrap_or_default();
    // Only exclusions inside a root matter; files among them need a lookup
    // per file, directories one per directory.
    let exclude: HashSet<PathBuf> = exclude
        .iter()
        .filter(|p| roots.iter().any(|r| p.starts_with(&r.path)))
        .cloned()
        .collect();
    let excluded_files = exclude
        .iter()
        .filter(|p| !p.is_dir())
        .map(PathBuf::as_path)
        .collect();
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let shared = Shared {
        rules,
        cache: &cache,
        exclude: &exclude,
        excluded_files,
        now_ns,
    };
    // A tree the last scan found small is walked on this thread alone:
    // starting workers costs more than they save there (this is on every
    // `guard run`'s start-up path). Unknown or large trees get every core.
    let threads = if cache_file.is_some() && cache.len() > 0 && cache.len() < SMALL_TREE {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(8)
    };
    let mut out = Collected::new(&cache);
    for root in roots {
        out.merge(scan_root(&shared, root, threads));
    }
    if let Some(e) = out.error.take() {
        return Err(e.into());
    }
    // Overlapping roots (a granted directory holding the project) see some
    // paths twice.
    out.flagged.sort_by(|a, b| a.path.cmp(&b.path));
    out.flagged.dedup_by(|a, b| a.path == b.path);
    out.git_dirs.sort();
    out.git_dirs.dedup();
    let u = &out.update;
    let changed = !u.fresh.is_empty() || !u.listings.is_empty();
    let stale = u.files.count() != cache.len() || u.dirs.count() != cache.dirs();
    if let Some(path) = cache_file
        && (out.misses > 0 || changed || stale)
        && let Err(e) = cache.save(path, &fingerprint, out.update)
    {
        // A cache that cannot be written costs the next run time, not
        // coverage.
        tracing::info!("cannot write the scan cache {}: {e}", path.display());
    }
    out.stats.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(ScanReport {
        flagged: out.flagged,
        stats: out.stats,
        git_dirs: out.git_dirs,
    })
}

/// Walk `root` for names only (every directory, nothing skipped), on up to
/// `threads` threads: a directory unchanged since the scan that cached its
/// entries in `cache_file` is not read again. For checks after the run:
/// the scan before it has just remembered almost every directory.
pub fn walk_listed<V: Visitor<'static>>(
    root: &Path,
    cache_file: &Path,
    threads: usize,
    make: impl Fn() -> V + Sync,
) -> Vec<V> {
    let cache = Cache::load_listings(cache_file);
    // A tree the scan before found small (or could not cache) is walked
    // on this thread: starting workers would cost more than they save.
    let threads = if cache.len() < SMALL_TREE { 1 } else { threads };
    walk::walk(root, threads, || Listed {
        cache: &cache,
        inner: make(),
        devices: Vec::new(),
    })
    .into_iter()
    .map(|l| l.inner)
    .collect()
}

/// A visitor given the cache's listings (as the scan's own workers use
/// them: only on filesystems that keep directory times as they must).
struct Listed<'c, V> {
    cache: &'c Cache,
    inner: V,
    devices: Vec<(u64, bool)>,
}

impl<'c, V: Visitor<'static>> Visitor<'c> for Listed<'c, V> {
    fn dir(&mut self, path: &Path) -> bool {
        self.inner.dir(path)
    }

    fn remembered(&mut self, fd: BorrowedFd<'_>, st: &FileStat) -> Option<Listing<'c>> {
        let trusted = match self.devices.iter().find(|(d, _)| *d == st.st_dev) {
            Some(&(_, ok)) => ok,
            None => {
                let ok = trusted_fs(fd);
                self.devices.push((st.st_dev, ok));
                ok
            }
        };
        if !trusted || self.cache.dirs() == 0 {
            return None;
        }
        self.cache
            .listing(&DirKey::from_stat(st))
            .map(|(_, listing)| listing)
    }

    fn file(
        &mut self,
        dirfd: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        hint: Option<u32>,
    ) -> Option<(u64, u64)> {
        self.inner.file(dirfd, name, path, hint)
    }

    fn link(&mut self, dirfd: BorrowedFd<'_>, name: &CStr, path: &Path) {
        self.inner.link(dirfd, name, path)
    }

    fn error(&mut self, dir: &Path) {
        self.inner.error(dir)
    }
}

fn trusted_fs(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statfs::fstatfs(fd)
        .is_ok_and(|s| TRUSTED_FS.contains(&(s.filesystem_type().0 as u32)))
}

/// Identifies what produced a cache: the rules, and the guard binary (its
/// heuristics are code; a rebuilt or upgraded guard rescans once).
pub(super) fn cache_fingerprint(rules: &Rules) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let mut h = Sha256::new();
    h.update(rules.content.fingerprint());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    if let Ok(m) = std::fs::metadata("/proc/self/exe") {
        for v in [
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime() as u64,
            m.mtime_nsec() as u64,
        ] {
            h.update(v.to_le_bytes());
        }
    }
    h.finalize().into()
}

fn scan_root(shared: &Shared<'_>, root: &Root, threads: usize) -> Collected {
    let mut first = Worker::new(shared, root);
    let Ok(meta) = std::fs::symlink_metadata(&root.path) else {
        return first.out;
    };
    if meta.is_file() {
        // A single granted file: no threads.
        if let Ok(name) = CString::new(root.path.as_os_str().as_bytes()) {
            first.file(nix::fcntl::AT_FDCWD, &name, &root.path, None);
        }
        return first.out;
    }
    if !meta.is_dir() || !first.enter(&root.path, true) {
        return first.out;
    }
    let mut out = first.out;
    for w in walk::walk(&root.path, threads, || Worker::new(shared, root)) {
        out.merge(w.out);
    }
    out
}

struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    anchor: &'s Path,
    out: Collected,
    buf: Vec<u8>,
    scratch: Vec<usize>,
    engine: Scratch,
    /// This thread's copy of the path rules (its own regex caches).
    paths: PathMatcher,
    /// Devices seen, and whether their filesystem is in `TRUSTED_FS`.
    devices: Vec<(u64, bool)>,
    /// Whether any excluded file lies in this worker's root (a lookup per
    /// file costs ~6 % of a warm scan).
    exclude_files: bool,
}

impl<'a> Visitor<'a> for Worker<'_, 'a> {
    fn dir(&mut self, path: &Path) -> bool {
        self.enter(path, false)
    }

    fn remembered(&mut self, fd: BorrowedFd<'_>, st: &FileStat) -> Option<Listing<'a>> {
        self.out.stats.dirs += 1;
        let usable = self.shared.cache.dirs() > 0 && self.trusted(fd, st.st_dev);
        let remembered = if usable {
            self.shared.cache.listing(&DirKey::from_stat(st))
        } else {
            None
        };
        match remembered {
            Some((index, listing)) => {
                self.out.update.dirs.set(index);
                Some(listing)
            }
            None => {
                self.out.stats.listed += 1;
                None
            }
        }
    }

    fn listed(&mut self, fd: BorrowedFd<'_>, listing: NewListing) {
        let k = listing.key;
        if !recent(self.shared.now_ns, k.mtime_ns, k.ctime_ns) && self.trusted(fd, k.dev) {
            self.out.update.listings.push(listing);
        }
    }

    fn file(
        &mut self,
        dirfd: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        hint: Option<u32>,
    ) -> Option<(u64, u64)> {
        if self.out.error.is_some() {
            return None;
        }
        if self.exclude_files && self.shared.exclude.contains(path) {
            return None;
        }
        self.out.stats.files += 1;
        self.check_file(dirfd, name, path, hint)
    }

    fn error(&mut self, dir: &Path) {
        self.out.stats.errors += 1;
        match nix::sys::stat::lstat(dir) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                self.hide_if_made_unreadable(dir, &st, 0o500);
            }
            Ok(_) => {}
            Err(_) => self.hide_if_unsearchable_parent(dir),
        }
    }

    fn quit(&self) -> bool {
        self.out.error.is_some()
    }
}

impl<'s, 'a> Worker<'s, 'a> {
    fn new(shared: &'s Shared<'a>, root: &'s Root) -> Self {
        Worker {
            shared,
            anchor: &root.anchor,
            out: Collected::new(shared.cache),
            buf: Vec::new(),
            scratch: Vec::new(),
            engine: Scratch::default(),
            paths: shared.rules.paths.clone(),
            devices: Vec::new(),
            exclude_files: shared
                .excluded_files
                .iter()
                .any(|p| p.starts_with(&root.path)),
        }
    }

    fn trusted(&mut self, fd: BorrowedFd<'_>, dev: u64) -> bool {
        if let Some(&(_, ok)) = self.devices.iter().find(|(d, _)| *d == dev) {
            return ok;
        }
        let ok = trusted_fs(fd);
        self.devices.push((dev, ok));
        ok
    }

    /// `path` relative to the anchor (by bytes: no component parsing).
    fn rel<'p>(&self, path: &'p Path) -> &'p Path {
        let (p, a) = (
            path.as_os_str().as_bytes(),
            self.anchor.as_os_str().as_bytes(),
        );
        match p.strip_prefix(a) {
            Some([b'/', rest @ ..]) => Path::new(std::ffi::OsStr::from_bytes(rest)),
            Some(rest) if a.ends_with(b"/") => Path::new(std::ffi::OsStr::from_bytes(rest)),
            _ => path,
        }
    }

    /// Whether to enter a directory: not when excluded, skipped, or hidden
    /// whole by a path rule (then it is flagged).
    fn enter(&mut self, path: &Path, is_root: bool) -> bool {
        let rules = self.shared.rules;
        if self.shared.exclude.contains(path) {
            return false;
        }
        // Deeper than a path the kernel takes in one call: an earlier
        // session can plant such a tree (a hard link at the bottom to a
        // file that will hold a secret), which the sandbox reaches one
        // `chdir` at a time. Not walked (opening each directory step by
        // step from the top costs the square of the depth), hidden: the
        // deepest directory above it that a mount can cover is (see
        // `policy::cover_long_paths`).
        if !is_root && path.as_os_str().len() > crate::policy::LONGEST_COVER {
            self.out.flagged.push(Flagged {
                path: path.to_path_buf(),
                dir: true,
                action: Action::Hide,
                reason: "deeper than guard can cover or scan (PATH_MAX)".into(),
                hits: vec![hit("too-deep")],
            });
            return false;
        }
        let rel = self.rel(path);
        if !is_root && rules.skip.is_match(rel, path) {
            return false;
        }
        if !is_root
            && path
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().ends_with(b".git"))
        {
            self.out.git_dirs.push(path.to_path_buf());
        }
        // A repository by another name (`git clone --bare x backup`,
        // `--separate-git-dir`): `objects` beside `HEAD` and `refs`, as git
        // recognizes one. Its HEAD may be a symbolic link (`HEAD ->
        // refs/heads/main`, which git still reads): one is enough, and is
        // not followed (only its presence counts).
        if !is_root
            && path.file_name().is_some_and(|n| n == "objects")
            && let Some(repo) = path.parent()
            && std::fs::symlink_metadata(repo.join("HEAD"))
                .is_ok_and(|m| m.is_file() || m.is_symlink())
            && std::fs::symlink_metadata(repo.join("refs")).is_ok_and(|m| m.is_dir())
        {
            self.out.git_dirs.push(repo.to_path_buf());
        }
        let Some(rule) = self.paths.matches(rel, &mut self.scratch) else {
            return true;
        };
        let r = rules.paths.rule(rule);
        if r.when != When::Always || rules.ignore.is_match(rel, path) {
            return true;
        }
        self.out.flagged.push(Flagged {
            path: path.to_path_buf(),
            dir: true,
            action: Action::Hide,
            reason: r.description.clone(),
            hits: vec![hit(&r.id)],
        });
        false
    }

    /// Returns the file's (dev, ino) if it was looked at.
    fn check_file(
        &mut self,
        dirfd: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        hint: Option<u32>,
    ) -> Option<(u64, u64)> {
        let rules = self.shared.rules;
        let rel = self.rel(path);
        if rules.ignore.is_match(rel, path) {
            return None;
        }
        let by_path = rules
            .paths
            .matches(rel, &mut self.scratch)
            .map(|i| rules.paths.rule(i));
        let by_path = match by_path {
            // A CA bundle is not a key file: scanned as an ordinary file.
            Some(r)
                if r.when == When::UnlessCertificates
                    && self.holds_only_certificates(dirfd, name) =>
            {
                None
            }
            other => other,
        };
        if let Some(r) = by_path
            && matches!(r.when, When::Always | When::UnlessCertificates)
        {
            self.out.flagged.push(Flagged {
                path: path.to_path_buf(),
                dir: false,
                action: Action::Hide,
                reason: r.description.clone(),
                hits: vec![hit(&r.id)],
            });
            return None;
        }
        let Ok(st) = lstat_at(dirfd, name) else {
            self.out.stats.errors += 1;
            self.hide_if_unsearchable_parent(path);
            return None;
        };
        let key = Key::from_stat(&st);
        let id = (st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some((key.dev, key.ino));
        if key.size > MAX_FILE_SIZE {
            self.out.stats.large += 1;
            return id;
        }
        if key.size == 0 {
            return id;
        }
        let cache = self.shared.cache;
        // The remembered record first: no search. A file changed in place
        // fails the key comparison and is looked up (then read) anew.
        let cached = hint
            .and_then(|h| Some((h, cache.get_at(h, &key)?)))
            .or_else(|| cache.get(&key));
        let content = match cached {
            Some((index, c)) => {
                self.out.stats.cached += 1;
                self.out.update.files.set(index);
                match c {
                    Cached::Clean => return id,
                    Cached::Binary => {
                        self.out.stats.binary += 1;
                        return id;
                    }
                    Cached::Secrets(s) => s,
                }
            }
            None => match self.read_and_scan(dirfd, name) {
                Some(Cached::Secrets(s)) => s,
                Some(Cached::Binary) => {
                    self.out.stats.binary += 1;
                    return id;
                }
                Some(Cached::Clean) => return id,
                None => {
                    self.hide_if_made_unreadable(path, &st, 0o400);
                    return id;
                }
            },
        };
        let content = if super::installed_package(path) {
            content.formats_only(&rules.content)
        } else {
            content
        };
        if content.findings.is_empty() {
            return id;
        }
        let (action, reason) = classify(rules, by_path.map(|r| r.description.as_str()), &content);
        let hits = content
            .findings
            .iter()
            .map(|f| Hit {
                rule: rules.content.rule_id(f.rule).to_string(),
                line: Some(f.line),
                fingerprint: Some(format!("{:08x}", f.fingerprint)),
            })
            .collect();
        self.out.flagged.push(Flagged {
            path: path.to_path_buf(),
            dir: false,
            action,
            reason,
            hits,
        });
        id
    }

    /// Hide what guard could not read because its owner, the user, took
    /// away the permission (`chmod 000 creds.txt`): not scanned, it could
    /// hold anything, and inside, where the sandbox runs as that owner,
    /// a `chmod` gives it back. What belongs to someone else stays as
    /// unreadable inside as it is to guard.
    fn hide_if_made_unreadable(&mut self, path: &Path, st: &FileStat, needed: u32) {
        if st.st_uid != nix::unistd::geteuid().as_raw()
            || st.st_mode & needed == needed
            // Every entry of an unsearchable directory fails alike.
            || self.out.flagged.iter().any(|f| f.path == path)
        {
            return;
        }
        self.out.flagged.push(Flagged {
            path: path.to_path_buf(),
            dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            action: Action::Hide,
            reason: "yours but unreadable, so unscanned (inside it could be made readable)".into(),
            hits: vec![hit("unreadable")],
        });
    }

    /// Hide the directory holding `path` if guard could list it but not
    /// search it (`chmod 600 vault`): its entries were named but none could
    /// be statted or read, so nothing in it was scanned, and inside a
    /// `chmod u+x` gives the search permission back.
    fn hide_if_unsearchable_parent(&mut self, path: &Path) {
        if let Some(dir) = path.parent()
            && let Ok(st) = nix::sys::stat::lstat(dir)
            && st.st_mode & libc::S_IFMT == libc::S_IFDIR
        {
            self.hide_if_made_unreadable(dir, &st, 0o500);
        }
    }

    /// Whether a file a key-file rule matched is a certificate bundle. Read
    /// like any file (no symlink, no fifo); anything unreadable is not.
    fn holds_only_certificates(&mut self, dirfd: BorrowedFd<'_>, name: &CStr) -> bool {
        let Ok(Some((file, _))) = open_regular(dirfd, name) else {
            return false;
        };
        self.buf.clear();
        if file
            .take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut self.buf)
            .is_err()
            || self.buf.len() as u64 > MAX_FILE_SIZE
        {
            return false;
        }
        super::path_rules::only_certificates(&self.buf)
    }

    /// Read a file (never through a symlink, never blocking on a fifo
    /// swapped in since the walk) and scan it; records a cache entry.
    fn read_and_scan(&mut self, dirfd: BorrowedFd<'_>, name: &CStr) -> Option<Cached> {
        let (file, st) = match open_regular(dirfd, name) {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(_) => {
                self.out.stats.errors += 1;
                return None;
            }
        };
        // The key comes from the descriptor that is read: a content and its
        // key always belong together.
        let key = Key::from_stat(&st);
        self.buf.clear();
        if file
            .take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut self.buf)
            .is_err()
        {
            self.out.stats.errors += 1;
            return None;
        }
        if self.buf.len() as u64 > MAX_FILE_SIZE {
            self.out.stats.large += 1;
            return None;
        }
        self.out.stats.read += 1;
        self.out.misses += 1;
        match judge(&self.shared.rules.content, &self.buf, &mut self.engine) {
            Ok(content) => Some(self.remember(key, content)),
            Err(e) => {
                self.out.error = Some(e);
                None
            }
        }
    }

    /// Cache what a file read as `key` holds (unless it changed so recently
    /// that another write in the same clock tick could go unnoticed).
    fn remember(&mut self, key: Key, content: Cached) -> Cached {
        if !recent(self.shared.now_ns, key.mtime_ns, key.ctime_ns) {
            self.out.update.fresh.push(Entry {
                key,
                content: content.clone(),
            });
        }
        content
    }
}

/// What a file's content (at most [`MAX_FILE_SIZE`]) holds for the rules
/// (also a blob's, in git history: it reads as the file would).
pub(super) fn judge(
    engine: &super::ContentEngine,
    buf: &[u8],
    scratch: &mut Scratch,
) -> std::result::Result<Cached, RuleError> {
    let binary = buf[..buf.len().min(8192)].contains(&0);
    let utf16 = if binary { utf16_text(buf) } else { None };
    if binary && utf16.is_none() && !searchable_binary(buf) {
        return Ok(Cached::Binary);
    }
    // Only an SQLite file runs strings together; text made to look
    // binary (a NUL in its first line) or stored as UTF-16 is read as
    // text by any program, so every rule runs on it. Either way the
    // file is hidden, not redacted.
    let scanned = match &utf16 {
        Some(text) => engine.scan_with(text, scratch)?,
        None if binary && buf.starts_with(SQLITE) => engine.scan_binary(buf, scratch)?,
        None => engine.scan_with(buf, scratch)?,
    };
    Ok(match scanned {
        s if binary => binary_secrets(s),
        s if s.findings.is_empty() => Cached::Clean,
        s => Cached::Secrets(s),
    })
}

/// A copy of a file's content as the scan judges the file in place, for
/// copies made outside the scan (an agent's persistent home, imported
/// from the real home): binary data not worth searching as it is (a git
/// pack, an image), text with secrets redacted, and nothing of a file the
/// scan would hide (mostly secrets, or binary data holding one).
pub enum Copy {
    AsIs,
    Redacted(Vec<u8>),
    LeftOut,
}

/// [`Copy`] of `buf`, at most [`MAX_FILE_SIZE`] bytes.
pub fn copy_of(rules: &Rules, buf: &[u8]) -> Result<Copy> {
    let scan = match judge(&rules.content, buf, &mut Scratch::default())? {
        Cached::Binary | Cached::Clean => return Ok(Copy::AsIs),
        Cached::Secrets(s) => s,
    };
    if classify(rules, None, &scan).0 == Action::Hide {
        return Ok(Copy::LeftOut);
    }
    let redacted = super::redact::redacted(buf, &scan.findings, &rules.content);
    // Only valid text is given redacted, as at a run's start.
    Ok(match String::from_utf8(redacted) {
        Ok(text) => Copy::Redacted(text.into_bytes()),
        Err(_) => Copy::LeftOut,
    })
}

/// A copy of an agent's settings file, which may hold the agent's login
/// beside secrets of other services (`~/.claude.json`: its API key, and
/// the tokens of the MCP servers it starts): every secret redacted except
/// the values assigned to a name `own` accepts. `None`: nothing of it may
/// be copied (binary data holding a secret, or not text once redacted).
pub fn settings_copy(
    rules: &Rules,
    buf: &[u8],
    own: &dyn Fn(&str) -> bool,
) -> Result<Option<Vec<u8>>> {
    let scan = match judge(&rules.content, buf, &mut Scratch::default())? {
        Cached::Binary | Cached::Clean => return Ok(Some(buf.to_vec())),
        // Binary data holding a secret (see `binary_secrets`).
        Cached::Secrets(s) if s.content_lines == 0 => return Ok(None),
        Cached::Secrets(s) => s,
    };
    let others: Vec<_> = scan
        .findings
        .into_iter()
        .filter(|f| !super::redact::assigned_name(buf, f.start as usize).is_some_and(own))
        .collect();
    if others.is_empty() {
        return Ok(Some(buf.to_vec()));
    }
    let redacted = super::redact::redacted(buf, &others, &rules.content);
    Ok(String::from_utf8(redacted).ok().map(String::into_bytes))
}

/// Binary data worth searching: an SQLite database (a token or a
/// connection string kept in a table is stored as plain bytes) or text
/// with a few NUL bytes (a file made to look binary). Not compiled code,
/// archives or images: their string tables run literals together into
/// token-like strings, and hiding an object file would break the build
/// inside.
fn searchable_binary(buf: &[u8]) -> bool {
    if buf.starts_with(SQLITE) {
        return true;
    }
    let text = buf
        .iter()
        .filter(|&&b| matches!(b, 0x20..=0x7e | b'\t' | b'\n' | b'\r'))
        .count();
    text * 10 >= buf.len() * 9
}

const SQLITE: &[u8] = b"SQLite format 3\0";

/// UTF-16 text (a byte-order mark, or little-endian ASCII without one: what
/// Windows tools write) as the ASCII it holds, other characters as `?`.
/// Any program decodes it; the rules need bytes.
fn utf16_text(buf: &[u8]) -> Option<Vec<u8>> {
    let (body, big_endian) = match buf {
        [0xff, 0xfe, rest @ ..] => (rest, false),
        [0xfe, 0xff, rest @ ..] => (rest, true),
        _ => {
            let head = &buf[..buf.len().min(512)];
            let ascii_le = head.len() >= 8
                && head.chunks(2).all(|c| {
                    c.len() == 2 && c[1] == 0 && matches!(c[0], 0x20..=0x7e | b'\t' | b'\n' | b'\r')
                });
            if !ascii_le {
                return None;
            }
            (buf, false)
        }
    };
    Some(
        body.chunks(2)
            .map(|c| {
                let unit = match c {
                    [a, b] if big_endian => u16::from_be_bytes([*a, *b]),
                    [a, b] => u16::from_le_bytes([*a, *b]),
                    _ => u16::from(b'?'),
                };
                u8::try_from(unit).ok().filter(u8::is_ascii).unwrap_or(b'?')
            })
            .collect(),
    )
}

/// A binary file with a secret is hidden, not redacted (`content_lines` 0
/// tells [`classify`]).
fn binary_secrets(mut scan: ContentScan) -> Cached {
    if scan.findings.is_empty() {
        return Cached::Binary;
    }
    scan.content_lines = 0;
    scan.secret_lines = scan.findings.len() as u32;
    Cached::Secrets(scan)
}

/// Open a file to read it: never through a symlink, never blocking on a
/// fifo swapped in since the walk, but waiting out another program's lease
/// (an unread file would be served as it is). `Ok(None)`: not a regular
/// file.
fn open_regular(
    dirfd: BorrowedFd<'_>,
    name: &CStr,
) -> nix::Result<Option<(std::fs::File, FileStat)>> {
    let flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let fd = match openat(dirfd, name, flags, Mode::empty()) {
        Err(nix::Error::EAGAIN) => crate::host::open_past_lease(dirfd, name)?,
        fd => fd?,
    };
    let file = std::fs::File::from(fd);
    let st = nix::sys::stat::fstat(file.as_fd())?;
    Ok((st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some((file, st)))
}

fn hit(rule: &str) -> Hit {
    Hit {
        rule: rule.to_string(),
        line: None,
        fingerprint: None,
    }
}

/// Hide a file that is a secret file (by a conditional path rule, a
/// whole-file rule, or mostly secret lines); redact one that mixes code and
/// secrets.
pub fn classify(rules: &Rules, path_rule: Option<&str>, scan: &ContentScan) -> (Action, String) {
    if let Some(why) = path_rule {
        return (Action::Hide, why.to_string());
    }
    if let Some(r) = scan
        .findings
        .iter()
        .map(|f| &rules.content.rules()[f.rule as usize])
        .find(|r| r.hide_file)
    {
        return (Action::Hide, r.description.clone());
    }
    if scan.content_lines == 0 {
        return (Action::Hide, "binary file holding a secret".into());
    }
    if scan.secret_lines.saturating_mul(2) >= scan.content_lines {
        return (Action::Hide, "mostly secrets".into());
    }
    (Action::Redact, "secret values among other content".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile;

    fn rules(toml: &str, home: &Path, project: &Path) -> Rules {
        let p = profile::parse(&format!("version = 1\n{toml}"), "t.toml").unwrap();
        Rules::new(&p.secrets, "t.toml", home, project).unwrap()
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn finds_by_path_and_content_skips_what_it_must() {
        let root = std::env::temp_dir().join(format!("guard-scan-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let outside = root.with_extension("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let tok = ["gh", "p_", &"Zq8vL2mN4pQ6".repeat(3)].concat();
        write(&root, ".env", "A=1\n");
        write(
            &root,
            "src/main.rs",
            &format!("fn main() {{\n    let x = 1;\n    let t = \"{tok}\";\n    run(x, t);\n}}\n"),
        );
        write(&root, "creds.txt", &format!("token={tok}\n"));
        write(
            &root,
            "vendor/big/lib.rs",
            &format!("const T: &str = \"{tok}\";\n"),
        );
        write(
            &root,
            "fixtures/sample.txt",
            &format!("x = \"{tok}\"\nline\nline\nline\n"),
        );
        write(&root, "excluded/a.txt", &format!("{tok}\n"));
        write(&root, ".aws/credentials", "x\n");
        write(&outside, "secret.env", &format!("T={tok}\n"));
        std::os::unix::fs::symlink(outside.join("secret.env"), root.join("link.env.txt")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("linkdir")).unwrap();
        nix::unistd::mkfifo(
            &root.join("pipe.txt"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();

        let r = rules(
            "[secrets]\nskip = [\"vendor\"]\nignore = [\"fixtures/**\"]\n",
            Path::new("/nonexistent-home"),
            &root,
        );
        let roots = [Root {
            path: root.clone(),
            anchor: root.clone(),
        }];
        let report = scan(&r, &roots, &[root.join("excluded")], None).unwrap();
        let got: Vec<(String, Action, String)> = report
            .flagged
            .iter()
            .map(|f| {
                (
                    f.path.strip_prefix(&root).unwrap().display().to_string(),
                    f.action,
                    f.hits
                        .iter()
                        .map(|h| h.rule.clone())
                        .collect::<Vec<_>>()
                        .join(","),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (".aws".to_string(), Action::Hide, "aws".to_string()),
                (".env".to_string(), Action::Hide, "dotenv".to_string()),
                (
                    "creds.txt".to_string(),
                    Action::Hide,
                    "github-token".to_string()
                ),
                (
                    "src/main.rs".to_string(),
                    Action::Redact,
                    "github-token".to_string()
                ),
            ]
        );
        let main = &report.flagged[3];
        assert_eq!(main.hits[0].line, Some(3));
        assert!(main.reason.contains("among other content"));
        // The fifo was not opened (the scan did not hang) and the symlinks
        // were not followed.
        assert_eq!(report.stats.errors, 0);
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    /// A `.pem` that is a CA bundle (every Python environment has one) is
    /// an ordinary file; one with a key, or anything else, is hidden.
    #[test]
    fn certificate_bundles_stay_visible() {
        let root = std::env::temp_dir().join(format!("guard-scan-pem-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        write(
            &root,
            "venv/certifi/cacert.pem",
            &format!("# Issuer: x\n{cert}{cert}"),
        );
        write(
            &root,
            "auth/public_key.pem",
            "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
        );
        write(
            &root,
            "deploy/server.pem",
            &format!("{cert}-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"),
        );
        write(&root, "notes.pem", "whatever is in here\n");
        let r = rules("", Path::new("/nonexistent-home"), &root);
        let roots = [Root {
            path: root.clone(),
            anchor: root.clone(),
        }];
        let report = scan(&r, &roots, &[], None).unwrap();
        let hidden: Vec<String> = report
            .flagged
            .iter()
            .filter(|f| f.action == Action::Hide)
            .map(|f| f.path.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        assert_eq!(hidden, ["deploy/server.pem", "notes.pem"]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn classification() {
        let r = rules("", Path::new("/h"), Path::new("/p"));
        let scan = |content_lines, secret_lines, rule: &str| ContentScan {
            findings: vec![super::super::Finding {
                rule: r.content.rules().iter().position(|x| x.id == rule).unwrap() as u16,
                line: 1,
                start: 0,
                end: 1,
                fingerprint: 0,
            }],
            content_lines,
            secret_lines,
        };
        assert_eq!(
            classify(&r, None, &scan(10, 1, "github-token")).0,
            Action::Redact
        );
        assert_eq!(
            classify(&r, None, &scan(2, 1, "github-token")).0,
            Action::Hide
        );
        assert_eq!(
            classify(&r, None, &scan(50, 1, "gcp-service-account")).0,
            Action::Hide
        );
        assert_eq!(
            classify(&r, Some("npm config"), &scan(50, 1, "npm-token")).0,
            Action::Hide
        );
    }
}
