//! The scan: a parallel walk over the project (and granted home paths) that
//! finds secret files by path and secret values by content.
//!
//! Every file is considered: ignore files (`.gitignore`, `.ignore`) are not
//! honoured, hidden files are included, symlinks are never followed. Only
//! directories a profile lists in `skip`, paths already hidden, and guard's
//! own cache are not entered. A file's content result is cached by
//! (device, inode, size, mtime, ctime), so a warm scan is a walk plus one
//! `lstat` per file.

use super::cache::{Cache, Cached, Entry, Key};
use super::content_rules::ContentScan;
use super::path_rules::When;
use super::{Action, Flagged, Hit, MAX_FILE_SIZE, RuleError, Rules};
use crate::error::Result;
use ignore::{DirEntry, ParallelVisitor, ParallelVisitorBuilder, WalkBuilder, WalkState};
use serde::Serialize;
use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Sorted by path.
    pub flagged: Vec<Flagged>,
    pub stats: Stats,
}

/// Files whose ctime is this recent are not cached (coarse timestamps).
const RACY_NS: i128 = 2_000_000_000;

struct Shared<'a> {
    rules: &'a Rules,
    cache: &'a Cache,
    exclude: &'a HashSet<PathBuf>,
    now_ns: i128,
    out: Mutex<Collected>,
}

#[derive(Default)]
struct Collected {
    flagged: Vec<Flagged>,
    entries: Vec<Entry>,
    stats: Stats,
    misses: usize,
    error: Option<RuleError>,
}

impl Collected {
    fn merge(&mut self, other: Collected) {
        self.flagged.extend(other.flagged);
        self.entries.extend(other.entries);
        let (s, o) = (&mut self.stats, other.stats);
        s.files += o.files;
        s.cached += o.cached;
        s.read += o.read;
        s.binary += o.binary;
        s.large += o.large;
        s.errors += o.errors;
        self.misses += other.misses;
        if self.error.is_none() {
            self.error = other.error;
        }
    }
}

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
    let exclude: HashSet<PathBuf> = exclude.iter().cloned().collect();
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let shared = Shared {
        rules,
        cache: &cache,
        exclude: &exclude,
        now_ns,
        out: Mutex::new(Collected::default()),
    };
    for root in roots {
        walk(&shared, root);
    }
    let mut out = shared.out.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = out.error.take() {
        return Err(e.into());
    }
    // Overlapping roots (a granted directory holding the project) see some
    // paths twice.
    out.flagged.sort_by(|a, b| a.path.cmp(&b.path));
    out.flagged.dedup_by(|a, b| a.path == b.path);
    if let Some(path) = cache_file
        && (out.misses > 0 || out.entries.len() != cache.len())
        && let Err(e) = Cache::save(path, &fingerprint, out.entries)
    {
        // A cache that cannot be written costs the next run time, not safety.
        tracing::info!("cannot write the scan cache {}: {e}", path.display());
    }
    out.stats.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(ScanReport {
        flagged: out.flagged,
        stats: out.stats,
    })
}

/// Identifies what produced a cache: the rules, and the guard binary (its
/// heuristics are code; a rebuilt or upgraded guard rescans once).
fn cache_fingerprint(rules: &Rules) -> [u8; 32] {
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

fn walk(shared: &Shared<'_>, root: &Root) {
    let Ok(meta) = std::fs::symlink_metadata(&root.path) else {
        return;
    };
    let mut worker = Worker::new(shared, &root.anchor);
    if !meta.is_dir() {
        // A single granted file: no walker, no threads.
        if meta.is_file() {
            worker.file(&root.path, None);
        }
        return;
    }
    if let Some(state) = worker.dir(&root.path, true)
        && state == WalkState::Skip
    {
        return;
    }
    drop(worker);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let mut builder = WalkBuilder::new(&root.path);
    builder
        // Ignore files must not hide anything from the scan: git-ignored
        // files are exactly where secrets live.
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .threads(threads);
    let mut visitors = Visitors {
        shared,
        anchor: &root.anchor,
        root: &root.path,
    };
    builder.build_parallel().visit(&mut visitors);
}

struct Visitors<'s, 'a> {
    shared: &'s Shared<'a>,
    anchor: &'s Path,
    root: &'s Path,
}

impl<'s> ParallelVisitorBuilder<'s> for Visitors<'s, '_> {
    fn build(&mut self) -> Box<dyn ParallelVisitor + 's> {
        let mut w = Worker::new(self.shared, self.anchor);
        w.root = Some(self.root.to_path_buf());
        Box::new(w)
    }
}

struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    anchor: &'s Path,
    root: Option<PathBuf>,
    local: Collected,
    buf: Vec<u8>,
    scratch: Vec<usize>,
}

impl Drop for Worker<'_, '_> {
    fn drop(&mut self) {
        let local = std::mem::take(&mut self.local);
        let mut out = self.shared.out.lock().unwrap_or_else(|p| p.into_inner());
        out.merge(local);
    }
}

impl ParallelVisitor for Worker<'_, '_> {
    fn visit(&mut self, entry: std::result::Result<DirEntry, ignore::Error>) -> WalkState {
        if self.local.error.is_some() {
            return WalkState::Quit;
        }
        let entry = match entry {
            Ok(e) => e,
            Err(_) => {
                self.local.stats.errors += 1;
                return WalkState::Continue;
            }
        };
        let Some(ft) = entry.file_type() else {
            return WalkState::Continue;
        };
        let path = entry.path();
        if ft.is_dir() {
            // The root itself was checked before the walk.
            if self.root.as_deref() == Some(path) {
                return WalkState::Continue;
            }
            return self.dir(path, false).unwrap_or(WalkState::Continue);
        }
        if ft.is_file() {
            self.file(path, Some(&entry));
        }
        // Symlinks are not followed; fifos, sockets and devices hold no text.
        WalkState::Continue
    }
}

impl<'s, 'a> Worker<'s, 'a> {
    fn new(shared: &'s Shared<'a>, anchor: &'s Path) -> Self {
        Worker {
            shared,
            anchor,
            root: None,
            local: Collected::default(),
            buf: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn rel<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(self.anchor).unwrap_or(path)
    }

    /// A directory: `Skip` when it is excluded, skipped or hidden whole.
    fn dir(&mut self, path: &Path, is_root: bool) -> Option<WalkState> {
        let rules = self.shared.rules;
        if self.shared.exclude.contains(path) {
            return Some(WalkState::Skip);
        }
        let rel = self.rel(path);
        if !is_root && rules.skip.is_match(rel, path) {
            return Some(WalkState::Skip);
        }
        let rule = rules.paths.matches(rel, &mut self.scratch)?;
        let r = rules.paths.rule(rule);
        if r.when != When::Always || rules.ignore.is_match(rel, path) {
            return None;
        }
        self.local.flagged.push(Flagged {
            path: path.to_path_buf(),
            dir: true,
            action: Action::Hide,
            reason: r.description.clone(),
            hits: vec![hit(&r.id)],
        });
        Some(WalkState::Skip)
    }

    fn file(&mut self, path: &Path, entry: Option<&DirEntry>) {
        let rules = self.shared.rules;
        if self.shared.exclude.contains(path) {
            return;
        }
        self.local.stats.files += 1;
        let rel = self.rel(path);
        if rules.ignore.is_match(rel, path) {
            return;
        }
        let by_path = rules
            .paths
            .matches(rel, &mut self.scratch)
            .map(|i| rules.paths.rule(i));
        if let Some(r) = by_path
            && r.when == When::Always
        {
            self.local.flagged.push(Flagged {
                path: path.to_path_buf(),
                dir: false,
                action: Action::Hide,
                reason: r.description.clone(),
                hits: vec![hit(&r.id)],
            });
            return;
        }
        let meta = match entry.map_or_else(
            || std::fs::symlink_metadata(path).map_err(|e| e.to_string()),
            |e| e.metadata().map_err(|e| e.to_string()),
        ) {
            Ok(m) => m,
            Err(_) => {
                self.local.stats.errors += 1;
                return;
            }
        };
        if meta.len() > MAX_FILE_SIZE {
            self.local.stats.large += 1;
            return;
        }
        if meta.len() == 0 {
            return;
        }
        let key = Key::of(&meta);
        let content = match self.shared.cache.get(&key) {
            Some(c) => {
                self.local.stats.cached += 1;
                self.local.entries.push(Entry {
                    key,
                    content: c.clone(),
                });
                c.clone()
            }
            None => match self.read_and_scan(path) {
                Some(c) => c,
                None => return,
            },
        };
        let scan = match content {
            Cached::Secrets(s) => s,
            Cached::Binary => {
                self.local.stats.binary += 1;
                return;
            }
            Cached::Clean => return,
        };
        let (action, reason) = classify(rules, by_path.map(|r| r.description.as_str()), &scan);
        let hits = scan
            .findings
            .iter()
            .map(|f| Hit {
                rule: rules.content.rule_id(f.rule).to_string(),
                line: Some(f.line),
                fingerprint: Some(format!("{:08x}", f.fingerprint)),
            })
            .collect();
        self.local.flagged.push(Flagged {
            path: path.to_path_buf(),
            dir: false,
            action,
            reason,
            hits,
        });
    }

    /// Read a file (never following a symlink, never blocking on a fifo
    /// swapped in since the walk) and scan it; records a cache entry.
    fn read_and_scan(&mut self, path: &Path) -> Option<Cached> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path);
        let Ok(file) = file else {
            self.local.stats.errors += 1;
            return None;
        };
        let Ok(meta) = file.metadata() else {
            self.local.stats.errors += 1;
            return None;
        };
        if !meta.is_file() {
            return None;
        }
        // The key comes from the descriptor we read: the content and its key
        // always belong together.
        let key = Key::of(&meta);
        self.buf.clear();
        if file
            .take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut self.buf)
            .is_err()
        {
            self.local.stats.errors += 1;
            return None;
        }
        if self.buf.len() as u64 > MAX_FILE_SIZE {
            self.local.stats.large += 1;
            return None;
        }
        self.local.stats.read += 1;
        let head = &self.buf[..self.buf.len().min(8192)];
        let content = if head.contains(&0) {
            Cached::Binary
        } else {
            match self.shared.rules.content.scan(&self.buf) {
                Ok(s) if s.findings.is_empty() => Cached::Clean,
                Ok(s) => Cached::Secrets(s),
                Err(e) => {
                    self.local.error = Some(e);
                    return None;
                }
            }
        };
        self.local.misses += 1;
        let recent = i128::from(key.ctime_ns) > self.shared.now_ns - RACY_NS
            || i128::from(key.mtime_ns) > self.shared.now_ns - RACY_NS;
        if !recent {
            self.local.entries.push(Entry {
                key,
                content: content.clone(),
            });
        }
        Some(content)
    }
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
    if scan.secret_lines.saturating_mul(2) >= scan.content_lines {
        return (Action::Hide, "mostly secrets".into());
    }
    (Action::Redact, "secret values among other content".into())
}
