//! The scan cache: what the content rules found in each file, keyed by
//! (device, inode, size, mtime, ctime), so an unchanged tree is not read
//! again; and each directory's entries, keyed by the directory's (device,
//! inode, mtime, ctime), so an unchanged directory is not listed again. One
//! binary file per project under `$XDG_CACHE_HOME/guard` (or
//! `~/.cache/guard`), written atomically.
//!
//! It never holds a secret: per file only rule indices, line numbers, byte
//! offsets and a 32-bit fingerprint; per directory the names of its
//! entries. A cache written with other rules (the engine's fingerprint
//! differs), truncated or malformed is ignored (or the part of it that is
//! malformed): the scan then reads and lists what it must, so a bad cache
//! costs time, never coverage. Files and directories changed in the last
//! seconds are not cached (timestamps are coarse: a second change in the
//! same tick would otherwise look like none).
//!
//! Layout, little-endian, mapped and used in place (a warm scan looks at
//! most of it once; parsing it into structures, or even copying it, cost
//! more than the lookups):
//!
//! ```text
//! header   magic, rules fingerprint, counts: files, dirs, entries, names
//!          bytes, extra bytes (u32 each)
//! files    FILE bytes each, in the order the directories' entries name
//!          them (a warm scan reads them in sequence, not at random): dev,
//!          ino, size, mtime, ctime (u64/i64), then what the content rules
//!          found (u32): 0 clean, 1 binary, 2 + n: the findings at byte n of
//!          `extra`
//! index    the file records' positions (u32), sorted by their (dev, ino)
//! dirs     DIR bytes each, sorted by (dev, ino): dev, ino, mtime, ctime,
//!          then the directory's entries: first index and count (u32)
//! entries  ENTRY bytes each: name (offset into `names`), then the target
//!          (u32): a subdirectory, a symlink, a file without a record, or
//!          the index of the file's record (a hint: the record's key is
//!          still compared)
//! names    NUL-terminated names
//! extra    findings: content lines, secret lines, count (u32), then per
//!          finding rule (u16), line, start, end, fingerprint (u32)
//! ```

use super::Finding;
use super::content_rules::ContentScan;
use sha2::{Digest, Sha256};
use std::ffi::CStr;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"GRDSCAN3";
const HEADER: usize = 8 + 32 + 5 * 4;
const FILE: usize = 44;
const DIR: usize = 40;
const ENTRY: usize = 8;
const TARGET_DIR: u32 = u32::MAX;
const TARGET_NONE: u32 = u32::MAX - 1;
const TARGET_LINK: u32 = u32::MAX - 2;
const FINDING: usize = 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

fn ns(s: i64, nsec: i64) -> i64 {
    s.saturating_mul(1_000_000_000).saturating_add(nsec)
}

impl Key {
    pub fn from_stat(st: &libc::stat) -> Key {
        Key {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// A directory's identity: its entries are as remembered while this is
/// unchanged (adding, removing or renaming an entry sets mtime and ctime;
/// ctime cannot be set back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirKey {
    pub dev: u64,
    pub ino: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl DirKey {
    pub fn from_stat(st: &libc::stat) -> DirKey {
        DirKey {
            dev: st.st_dev,
            ino: st.st_ino,
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Clean,
    Binary,
    Secrets(ContentScan),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Key,
    pub content: Cached,
}

/// What a remembered directory entry is. Other types (fifos, sockets,
/// devices) are not remembered: they hold nothing a walk looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Dir,
    /// A regular file, and the index of its record if it has one.
    File(Option<u32>),
    /// A symlink (never followed; the check after the run looks for `.git`
    /// links).
    Link,
}

/// What an entry read from disk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Link,
}

/// Name offset, kind, the file's (dev, ino).
type NewEntry = (u32, Kind, Option<(u64, u64)>);

/// One directory's entries as read from disk, to remember. Files are named
/// by (dev, ino), resolved to their records when the cache is written.
#[derive(Debug, Default)]
pub struct NewListing {
    pub key: DirKey,
    names: Vec<u8>,
    entries: Vec<NewEntry>,
}

impl NewListing {
    pub fn new(key: DirKey) -> NewListing {
        NewListing {
            key,
            ..NewListing::default()
        }
    }

    /// A subdirectory, a regular file or a symlink.
    pub fn push(&mut self, name: &CStr, kind: Kind) {
        self.push_with(name, kind, None);
    }

    fn push_with(&mut self, name: &CStr, kind: Kind, id: Option<(u64, u64)>) {
        self.entries.push((self.names.len() as u32, kind, id));
        self.names.extend_from_slice(name.to_bytes_with_nul());
    }

    /// Each entry's name and kind, and for a file the (dev, ino) to record
    /// once it has been looked at.
    pub fn entries_mut(&mut self) -> impl Iterator<Item = (&CStr, Kind, &mut Option<(u64, u64)>)> {
        let names = &self.names;
        self.entries.iter_mut().filter_map(move |(at, kind, id)| {
            let name = CStr::from_bytes_until_nul(names.get(*at as usize..)?).ok()?;
            Some((name, *kind, id))
        })
    }
}

/// A set of record indices.
#[derive(Debug, Clone, Default)]
pub struct Bits(Vec<u64>);

impl Bits {
    pub fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    pub fn set(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }

    pub fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| (i * 64 + b) as u32)
        })
    }
}

/// What a scan gathered to write the next cache.
#[derive(Debug, Default)]
pub struct Update {
    /// Records of the loaded cache still valid.
    pub files: Bits,
    pub dirs: Bits,
    /// Files read and directories listed this time.
    pub fresh: Vec<Entry>,
    pub listings: Vec<NewListing>,
}

/// The cache file's bytes.
enum Bytes {
    Owned(Vec<u8>),
    Mapped(super::mapped::Mapped),
}

impl Default for Bytes {
    fn default() -> Self {
        Bytes::Owned(Vec::new())
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.len())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

/// A loaded cache: the file's bytes and where each section starts.
#[derive(Debug, Default)]
pub struct Cache {
    bytes: Bytes,
    files: usize,
    dirs: usize,
    files_at: usize,
    index_at: usize,
    dirs_at: usize,
    entries_at: usize,
    names_at: usize,
    extra_at: usize,
    /// Whether the names section is usable: NUL-terminated, no `/` in it.
    names_ok: bool,
}

/// Guard's cache directory: `$XDG_CACHE_HOME/guard`, else `~/.cache/guard`.
pub fn cache_dir(home: &Path) -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from) {
        Some(x) if x.is_absolute() => x.join("guard"),
        _ => home.join(".cache").join("guard"),
    }
}

/// The cache file's name for one project.
pub fn file_name(project: &Path) -> String {
    format!("scan-{}.bin", path_hash(project))
}

/// The first 8 bytes of the SHA-256 of a path, in hex: what names a
/// project in every file and directory guard keeps for it (this cache,
/// the agent homes and cache layers, `guard prune`'s records).
pub fn path_hash(path: &Path) -> String {
    let h = Sha256::digest(path.as_os_str().as_encoded_bytes());
    h[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Index of the record whose (dev, ino) — its first 16 bytes — is `id`, in
/// a section of `n` records of `size` bytes sorted by it.
fn search(section: &[u8], n: usize, size: usize, id: (u64, u64)) -> Option<usize> {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let at = mid * size;
        let here = (u64_at(section, at), u64_at(section, at + 8));
        match here.cmp(&id) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(mid),
        }
    }
    None
}

impl Cache {
    /// Number of file records.
    pub fn len(&self) -> usize {
        self.files
    }

    pub fn dirs(&self) -> usize {
        self.dirs
    }

    fn section(&self, from: usize, to: usize) -> &[u8] {
        self.bytes.get(from..to).unwrap_or(&[])
    }

    fn file_key(&self, i: usize) -> Key {
        let at = self.files_at + i * FILE;
        let r = self.bytes.get(at..at + FILE).unwrap_or(&[]);
        Key {
            dev: u64_at(r, 0),
            ino: u64_at(r, 8),
            size: u64_at(r, 16),
            mtime_ns: u64_at(r, 24) as i64,
            ctime_ns: u64_at(r, 32) as i64,
        }
    }

    /// Record `i`'s content; `None` when malformed (then the file is read).
    fn content(&self, i: usize) -> Option<Cached> {
        let what = u32_at(self.section(self.files_at, self.index_at), i * FILE + 40);
        match what {
            0 => Some(Cached::Clean),
            1 => Some(Cached::Binary),
            n => {
                let extra = self.section(self.extra_at, self.bytes.len());
                let at = (n - 2) as usize;
                let count = u32_at(extra, at + 8) as usize;
                let body = extra.get(at + 12..at + 12 + count.checked_mul(FINDING)?)?;
                let findings = body
                    .chunks_exact(FINDING)
                    .map(|f| Finding {
                        rule: u16::from_le_bytes([f[0], f[1]]),
                        line: u32_at(f, 2),
                        start: u32_at(f, 6),
                        end: u32_at(f, 10),
                        fingerprint: u32_at(f, 14),
                    })
                    .collect();
                Some(Cached::Secrets(ContentScan {
                    findings,
                    content_lines: u32_at(extra, at),
                    secret_lines: u32_at(extra, at + 4),
                }))
            }
        }
    }

    /// The content of record `i` if that record is the file `key`.
    pub fn get_at(&self, i: u32, key: &Key) -> Option<Cached> {
        let i = i as usize;
        (i < self.files && self.file_key(i) == *key)
            .then(|| self.content(i))
            .flatten()
    }

    /// The record for `key` (its index and content), if the file is
    /// unchanged.
    pub fn get(&self, key: &Key) -> Option<(u32, Cached)> {
        let index = self.section(self.index_at, self.dirs_at);
        let files = self.section(self.files_at, self.index_at);
        let id = (key.dev, key.ino);
        let (mut lo, mut hi) = (0, self.files);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = u32_at(index, mid * 4) as usize * FILE;
            match (u64_at(files, at), u64_at(files, at + 8)).cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let i = u32_at(index, mid * 4);
                    return Some((i, self.get_at(i, key)?));
                }
            }
        }
        None
    }

    fn entry(&self, i: u32) -> Option<Entry> {
        let i = i as usize;
        (i < self.files).then_some(())?;
        Some(Entry {
            key: self.file_key(i),
            content: self.content(i)?,
        })
    }

    /// Whether the name at `offset` is one an entry can have (with
    /// `names_ok`: it cannot lead out of its directory).
    fn name_ok(&self, offset: u32) -> bool {
        let names = self.section(self.names_at, self.extra_at);
        !matches!(
            names.get(offset as usize..),
            None | Some([] | [0, ..] | [b'.', 0, ..] | [b'.', b'.', 0, ..])
        )
    }

    fn name(&self, offset: u32) -> Option<&CStr> {
        let names = self.section(self.names_at, self.extra_at);
        CStr::from_bytes_until_nul(names.get(offset as usize..)?).ok()
    }

    /// The remembered entries of the directory `key` (and the record's
    /// index), if it is unchanged since and the record is well-formed.
    pub fn listing(&self, key: &DirKey) -> Option<(u32, Listing<'_>)> {
        let b = self.section(self.dirs_at, self.entries_at);
        let i = search(b, self.dirs, DIR, (key.dev, key.ino))?;
        let at = i * DIR;
        let same =
            u64_at(b, at + 16) as i64 == key.mtime_ns && u64_at(b, at + 24) as i64 == key.ctime_ns;
        if !same {
            return None;
        }
        Some((i as u32, self.listing_at(i)?))
    }

    fn listing_at(&self, i: usize) -> Option<Listing<'_>> {
        if !self.names_ok {
            return None;
        }
        let b = self.section(self.dirs_at, self.entries_at);
        let (first, count) = (
            u32_at(b, i * DIR + 32) as usize,
            u32_at(b, i * DIR + 36) as usize,
        );
        let all = self.section(self.entries_at, self.names_at);
        let entries = all.get(first * ENTRY..(first + count) * ENTRY)?;
        // A bad name (out of bounds, or one that would lead out of the
        // directory) makes the whole listing unusable.
        if !entries
            .chunks_exact(ENTRY)
            .all(|e| self.name_ok(u32_at(e, 0)))
        {
            return None;
        }
        Some(Listing {
            cache: self,
            entries,
        })
    }

    /// Load the cache at `path`; empty when missing, foreign or malformed.
    pub fn load(path: &Path, rules: &[u8; 32]) -> Cache {
        let Ok(bytes) = read_own_file(path) else {
            return Cache::default();
        };
        Cache::from_bytes(bytes, Some(rules)).unwrap_or_default()
    }

    /// Load the cache at `path` for its directory listings only: names do
    /// not depend on the rules, so a cache written with other rules serves.
    pub fn load_listings(path: &Path) -> Cache {
        let Ok(bytes) = read_own_file(path) else {
            return Cache::default();
        };
        Cache::from_bytes(bytes, None).unwrap_or_default()
    }

    fn from_bytes(bytes: Bytes, rules: Option<&[u8; 32]>) -> Option<Cache> {
        if bytes.get(..8)? != MAGIC || rules.is_some_and(|r| bytes.get(8..40) != Some(r)) {
            return None;
        }
        let count = |i: usize| u32_at(&bytes, 40 + 4 * i) as usize;
        let (files, dirs, entries, names, extra) =
            (count(0), count(1), count(2), count(3), count(4));
        let files_at = HEADER;
        let index_at = files_at.checked_add(files.checked_mul(FILE)?)?;
        let dirs_at = index_at.checked_add(files.checked_mul(4)?)?;
        let entries_at = dirs_at.checked_add(dirs.checked_mul(DIR)?)?;
        let names_at = entries_at.checked_add(entries.checked_mul(ENTRY)?)?;
        let extra_at = names_at.checked_add(names)?;
        if extra_at.checked_add(extra)? != bytes.len() {
            return None;
        }
        // Records are not checked for order: an unsorted file only makes
        // lookups miss (a hit needs the whole key to match).
        let names = &bytes[names_at..extra_at];
        let names_ok = names.last().is_none_or(|&b| b == 0) && !names.contains(&b'/');
        Some(Cache {
            names_ok,
            bytes,
            files,
            dirs,
            files_at,
            index_at,
            dirs_at,
            entries_at,
            names_at,
            extra_at,
        })
    }

    /// Write the cache for the next scan: the records of this one `update`
    /// keeps, and what it adds. Atomically (temp file + rename), into a
    /// 0700 directory.
    pub fn save(&self, path: &Path, rules: &[u8; 32], update: Update) -> std::io::Result<()> {
        let out = self.serialize(rules, update)?;
        write_private(path, &out)
    }

    fn serialize(&self, rules: &[u8; 32], update: Update) -> std::io::Result<Vec<u8>> {
        let too_big = || std::io::Error::other("scan cache too large");
        let small = |n: usize| u32::try_from(n).map_err(|_| too_big());
        let mut files: Vec<Entry> = update.files.ones().filter_map(|i| self.entry(i)).collect();
        files.extend(update.fresh);
        files.sort_by_key(|e| (e.key.dev, e.key.ino));
        files.dedup_by_key(|e| (e.key.dev, e.key.ino));

        let mut dirs: Vec<NewListing> = update
            .dirs
            .ones()
            .filter_map(|i| self.relisting(i as usize))
            .collect();
        dirs.extend(update.listings);
        dirs.sort_by_key(|d| (d.key.dev, d.key.ino));
        dirs.dedup_by_key(|d| (d.key.dev, d.key.ino));

        // Records go in the order the listings name them; the others last.
        let find = |id: (u64, u64)| {
            files
                .binary_search_by_key(&id, |e| (e.key.dev, e.key.ino))
                .ok()
        };
        let mut position: Vec<Option<u32>> = vec![None; files.len()];
        let mut order: Vec<usize> = Vec::with_capacity(files.len());
        let placed = dirs
            .iter()
            .flat_map(|d| d.entries.iter().filter_map(|&(_, _, id)| find(id?)))
            .chain(0..files.len());
        for i in placed {
            if position[i].is_none() {
                position[i] = Some(small(order.len())?);
                order.push(i);
            }
        }
        let index: Vec<u8> = position
            .iter()
            .flat_map(|p| p.unwrap_or(0).to_le_bytes())
            .collect();
        let mut file_section = Vec::with_capacity(files.len() * FILE);
        let mut extra = Vec::new();
        for e in order.iter().map(|&i| &files[i]) {
            for v in [
                e.key.dev,
                e.key.ino,
                e.key.size,
                e.key.mtime_ns as u64,
                e.key.ctime_ns as u64,
            ] {
                file_section.extend_from_slice(&v.to_le_bytes());
            }
            let what = match &e.content {
                Cached::Clean => 0,
                Cached::Binary => 1,
                Cached::Secrets(s) => {
                    let at = small(extra.len() + 2)?;
                    for v in [s.content_lines, s.secret_lines, small(s.findings.len())?] {
                        extra.extend_from_slice(&v.to_le_bytes());
                    }
                    for f in &s.findings {
                        extra.extend_from_slice(&f.rule.to_le_bytes());
                        for v in [f.line, f.start, f.end, f.fingerprint] {
                            extra.extend_from_slice(&v.to_le_bytes());
                        }
                    }
                    at
                }
            };
            file_section.extend_from_slice(&what.to_le_bytes());
        }
        let record = |id: (u64, u64)| find(id).and_then(|i| position[i]).unwrap_or(TARGET_NONE);
        let (mut dir_section, mut entries, mut names) = (Vec::new(), Vec::new(), Vec::new());
        let mut n_entries = 0usize;
        for d in &dirs {
            for v in [
                d.key.dev,
                d.key.ino,
                d.key.mtime_ns as u64,
                d.key.ctime_ns as u64,
            ] {
                dir_section.extend_from_slice(&v.to_le_bytes());
            }
            dir_section.extend_from_slice(&small(n_entries)?.to_le_bytes());
            dir_section.extend_from_slice(&small(d.entries.len())?.to_le_bytes());
            let base = names.len();
            names.extend_from_slice(&d.names);
            for &(name, kind, id) in &d.entries {
                entries.extend_from_slice(&small(base + name as usize)?.to_le_bytes());
                let target = match (kind, id) {
                    (Kind::Dir, _) => TARGET_DIR,
                    (Kind::Link, _) => TARGET_LINK,
                    (Kind::File, Some(id)) => record(id),
                    (Kind::File, None) => TARGET_NONE,
                };
                entries.extend_from_slice(&target.to_le_bytes());
            }
            n_entries += d.entries.len();
        }
        let mut out = Vec::with_capacity(
            HEADER
                + file_section.len()
                + index.len()
                + dir_section.len()
                + entries.len()
                + names.len()
                + extra.len(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(rules);
        for n in [files.len(), dirs.len(), n_entries, names.len(), extra.len()] {
            out.extend_from_slice(&small(n)?.to_le_bytes());
        }
        for part in [file_section, index, dir_section, entries, names, extra] {
            out.extend_from_slice(&part);
        }
        Ok(out)
    }

    /// Directory record `i` as a listing to write again.
    fn relisting(&self, i: usize) -> Option<NewListing> {
        let b = self.section(self.dirs_at, self.entries_at);
        let key = DirKey {
            dev: u64_at(b, i * DIR),
            ino: u64_at(b, i * DIR + 8),
            mtime_ns: u64_at(b, i * DIR + 16) as i64,
            ctime_ns: u64_at(b, i * DIR + 24) as i64,
        };
        let mut out = NewListing::new(key);
        for (name, target) in self.listing_at(i)?.iter() {
            let (kind, id) = match target {
                Target::Dir => (Kind::Dir, None),
                Target::Link => (Kind::Link, None),
                Target::File(Some(r)) if (r as usize) < self.files => {
                    let k = self.file_key(r as usize);
                    (Kind::File, Some((k.dev, k.ino)))
                }
                Target::File(_) => (Kind::File, None),
            };
            out.push_with(name, kind, id);
        }
        Some(out)
    }
}

/// A directory's remembered entries (names checked when it was looked up).
#[derive(Clone, Copy)]
pub struct Listing<'c> {
    cache: &'c Cache,
    entries: &'c [u8],
}

impl<'c> Listing<'c> {
    pub fn iter(self) -> impl Iterator<Item = (&'c CStr, Target)> {
        self.entries.chunks_exact(ENTRY).filter_map(move |e| {
            let name = self.cache.name(u32_at(e, 0))?;
            let target = match u32_at(e, 4) {
                TARGET_DIR => Target::Dir,
                TARGET_LINK => Target::Link,
                TARGET_NONE => Target::File(None),
                i => Target::File(Some(i)),
            };
            Some((name, target))
        })
    }
}

/// Write one of guard's cache files: readable by the user only, in a
/// directory only the user can enter, written beside and renamed over so
/// a reader (or a mapping) never sees half a file.
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|_| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Map the cache only if it is a regular file we own and nobody else may
/// write: anything else is not our cache. Guard never writes a cache file
/// in place (it writes a new file and renames it over), so the mapped
/// content stays as it was.
fn read_own_file(path: &Path) -> std::io::Result<Bytes> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let m = f.metadata()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_file() || m.uid() != me || m.mode() & 0o022 != 0 {
        return Err(std::io::Error::other("not guard's cache file"));
    }
    let len = usize::try_from(m.len()).map_err(std::io::Error::other)?;
    if len == 0 {
        return Ok(Bytes::default());
    }
    super::mapped::Mapped::new(&f, len).map(Bytes::Mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64) -> Key {
        Key {
            dev: 1,
            ino,
            size: 10,
            mtime_ns: 5,
            ctime_ns: 6,
        }
    }

    fn dir_key(ino: u64) -> DirKey {
        DirKey {
            dev: 1,
            ino,
            mtime_ns: 7,
            ctime_ns: 8,
        }
    }

    fn listed(c: &Cache, k: &DirKey) -> Option<Vec<(String, Target)>> {
        let (_, l) = c.listing(k)?;
        Some(
            l.iter()
                .map(|(n, t)| (n.to_string_lossy().into_owned(), t))
                .collect(),
        )
    }

    #[test]
    fn round_trip_and_mismatches() {
        let dir = std::env::temp_dir().join(format!("guard-cache-test-{}", std::process::id()));
        let path = dir.join("x.bin");
        let scan = ContentScan {
            findings: vec![Finding {
                rule: 3,
                line: 7,
                start: 10,
                end: 20,
                fingerprint: 0xdeadbeef,
            }],
            content_lines: 9,
            secret_lines: 1,
        };
        let mut listing = NewListing::new(dir_key(100));
        for (name, kind) in [
            (c"sub", Kind::Dir),
            (c"a.txt", Kind::File),
            (c"big.log", Kind::File),
            (c"gone", Kind::File),
            (c".git", Kind::Link),
        ] {
            listing.push(name, kind);
        }
        let ids = [None, Some((1, 2)), None, Some((1, 77)), None];
        for ((_, _, slot), id) in listing.entries_mut().zip(ids) {
            *slot = id;
        }
        let update = Update {
            fresh: vec![
                Entry {
                    key: key(9),
                    content: Cached::Secrets(scan.clone()),
                },
                Entry {
                    key: key(2),
                    content: Cached::Clean,
                },
                Entry {
                    key: key(5),
                    content: Cached::Binary,
                },
            ],
            listings: vec![listing],
            ..Update::default()
        };
        let rules = [7u8; 32];
        Cache::default().save(&path, &rules, update).unwrap();
        let c = Cache::load(&path, &rules);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key(9)), Some((2, Cached::Secrets(scan.clone()))));
        assert_eq!(c.get(&key(2)), Some((0, Cached::Clean)));
        assert_eq!(c.get_at(0, &key(2)), Some(Cached::Clean));
        assert_eq!(c.get_at(1, &key(2)), None);
        assert_eq!(c.get_at(99, &key(2)), None);
        let mut changed = key(2);
        changed.mtime_ns += 1;
        assert_eq!(c.get(&changed), None);
        assert_eq!(c.get(&key(3)), None);
        assert_eq!(
            listed(&c, &dir_key(100)).unwrap(),
            [
                ("sub".into(), Target::Dir),
                ("a.txt".into(), Target::File(Some(0))),
                ("big.log".into(), Target::File(None)),
                ("gone".into(), Target::File(None)),
                (".git".into(), Target::Link),
            ]
        );
        let mut moved = dir_key(100);
        moved.ctime_ns += 1;
        assert!(c.listing(&moved).is_none());
        assert!(c.listing(&dir_key(101)).is_none());

        // Saved again keeping one file and the directory: the listing now
        // points at the file's new position.
        let mut files = Bits::new(c.len());
        files.set(2);
        let mut dirs = Bits::new(c.dirs());
        dirs.set(0);
        let update = Update {
            files,
            dirs,
            fresh: vec![Entry {
                key: Key { ino: 1, ..key(0) },
                content: Cached::Binary,
            }],
            listings: Vec::new(),
        };
        c.save(&path, &rules, update).unwrap();
        let c = Cache::load(&path, &rules);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(9)), Some((1, Cached::Secrets(scan))));
        assert_eq!(c.get(&key(2)), None);
        assert_eq!(listed(&c, &dir_key(100)).unwrap()[1].1, Target::File(None));

        // Other rules: ignored.
        assert_eq!(Cache::load(&path, &[8u8; 32]).len(), 0);
        // Truncated: ignored.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(Cache::load(&path, &rules).len(), 0);
        let mode = std::fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_that_leave_the_directory_spoil_the_listing() {
        let rules = [1u8; 32];
        for bad in [c"../etc", c"..", c".", c"a/b"] {
            let mut l = NewListing::new(dir_key(5));
            l.push(c"fine", Kind::File);
            l.push(bad, Kind::File);
            let update = Update {
                listings: vec![l],
                ..Update::default()
            };
            let bytes = Cache::default().serialize(&rules, update).unwrap();
            let c = Cache::from_bytes(Bytes::Owned(bytes), Some(&rules)).unwrap();
            assert!(c.listing(&dir_key(5)).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_counts_and_offsets_are_refused() {
        let rules = [1u8; 32];
        let update = Update {
            fresh: vec![Entry {
                key: key(4),
                content: Cached::Secrets(ContentScan {
                    findings: vec![Finding {
                        rule: 0,
                        line: 1,
                        start: 0,
                        end: 1,
                        fingerprint: 0,
                    }],
                    content_lines: 1,
                    secret_lines: 1,
                }),
            }],
            ..Update::default()
        };
        let bytes = Cache::default().serialize(&rules, update).unwrap();
        assert!(Cache::from_bytes(Bytes::Owned(bytes.clone()), Some(&rules)).is_some());
        // A count that does not add up to the length.
        let mut b = bytes.clone();
        b[40] = 2;
        assert!(Cache::from_bytes(Bytes::Owned(b), Some(&rules)).is_none());
        // A findings offset past the end: that record is a miss.
        let mut b = bytes.clone();
        b[HEADER + 40..HEADER + 44].copy_from_slice(&1000u32.to_le_bytes());
        let c = Cache::from_bytes(Bytes::Owned(b), Some(&rules)).unwrap();
        assert_eq!(c.get(&key(4)), None);
    }

    #[test]
    fn cache_dir_prefers_absolute_xdg() {
        // Only checks the fallback; the environment is not modified in tests.
        let d = cache_dir(Path::new("/h"));
        assert!(d.ends_with("guard"));
    }
}
