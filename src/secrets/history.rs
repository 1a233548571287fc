//! Secrets in git history: a token committed once stays in the object
//! database after the file is fixed, and even one still in the worktree is
//! one `git show HEAD:file` away from a redaction. So every object of every
//! repository in the project is scanned like a file, and where one holds a
//! secret the sandbox sees a sanitized copy of the object file (a pack, or
//! a loose object) in which that blob reads as the worktree copy would: the
//! values replaced by `guard-redacted:<rule>`, or empty for a hidden file.
//! `git diff` of a redacted file then shows no change, and `git log -p`
//! works and shows no secret.
//!
//! Threat model: the agent reads the object files directly (zlib, any
//! offset), so the copy holds no byte of a flagged blob. Objects stored as
//! deltas on a flagged blob are written whole in the copy. Git does not
//! re-hash objects it copies into a new pack, so a `git gc` inside would
//! store sanitized content under the real names in the host's repository:
//! the pack directory of a sanitized repository is read-only inside. The
//! host's object files are only read, never through a symlink or from a
//! fifo, and within bounds: an earlier session could plant those in
//! `.git`, and a cloned repository may be built to exhaust its reader.
//!
//! Cost: each pack is read once (its result is cached by the pack's
//! identity; packs never change), each loose object once (by name: an
//! object's name is its content); sanitized copies are kept in guard's
//! cache directory and reused while the set of flagged objects stays the
//! same. Path rules need each blob's paths: after new objects (a commit),
//! the trees below the new ones are read again, old ones included (one
//! snapshot's worth), since a new tree can name an old one anywhere.

use super::cache::Cached;
use super::git_pack::{self as pack, Oid};
use super::path_rules::{When, only_certificates};
use super::redact;
use super::scan::{classify, judge};
use super::{Action, MAX_FILE_SIZE, Rules};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A sanitized copy of an object file, mounted read-only over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Substitute {
    /// The object file (pack, index or loose object) in the repository.
    pub path: PathBuf,
    /// The copy in guard's cache directory.
    pub copy: PathBuf,
}

/// One repository's history findings, for reports: never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanitized {
    /// The repository's objects directory.
    #[serde(with = "crate::plan::os_path")]
    pub objects: PathBuf,
    /// Blobs shown sanitized.
    pub blobs: usize,
    pub rules: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct History {
    pub substitutes: Vec<Substitute>,
    /// Object files that hold a secret but could not be sanitized (the
    /// copy could not be written): hidden instead, git fails on them.
    pub hidden: Vec<PathBuf>,
    /// `objects/pack` directories made read-only inside.
    pub frozen: Vec<PathBuf>,
    pub sanitized: Vec<Sanitized>,
    /// Object files that could not be checked, and why.
    pub unchecked: Vec<(PathBuf, String)>,
}

/// Packs larger than this are not read (reported as unchecked).
const MAX_PACK: u64 = 4 << 30;

/// A flagged blob: hidden (empty) or redacted, and the rules that said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    oid: String,
    hide: bool,
    rules: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Source {
    key: [u64; 4],
    marks: Vec<Mark>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The error may not repeat (the file could not be opened: another
    /// program's lease, a permission put back later): not remembered, so
    /// that the next run reads the pack again instead of serving it.
    #[serde(skip)]
    retry: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LooseDir {
    key: [u64; 4],
    /// The object files' names (38 hex digits each) run together: one
    /// string to load, where a repository can hold thousands.
    names: String,
    /// The marks each object gave, for those that gave any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    marks: BTreeMap<String, Vec<Mark>>,
}

/// Length of a loose object's file name (the name minus its directory).
const LOOSE_NAME: usize = 38;

impl LooseDir {
    fn names(&self) -> impl Iterator<Item = &str> {
        (0..self.names.len() / LOOSE_NAME)
            .filter_map(|i| self.names.get(i * LOOSE_NAME..(i + 1) * LOOSE_NAME))
    }

    fn has(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }

    /// Drop `name` from the listing, and make the directory read again
    /// next run (a key no directory has), where it is new again.
    fn forget(&mut self, name: &str) {
        let kept: String = self.names().filter(|&n| n != name).collect();
        self.names = kept;
        self.marks.remove(name);
        self.key = [0; 4];
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    fingerprint: String,
    packs: BTreeMap<String, Source>,
    loose: BTreeMap<String, LooseDir>,
    /// Why the path rules could not be fully applied to the trees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn key(m: &std::fs::Metadata) -> [u64; 4] {
    [
        m.ino(),
        m.size(),
        (m.mtime() as u64) << 30 | m.mtime_nsec() as u64,
        (m.ctime() as u64) << 30 | m.ctime_nsec() as u64,
    ]
}

/// Every objects directory of the repositories found (submodules keep
/// theirs in `.git/modules/<name>/objects`), and those they borrow from
/// in the project (`objects/info/alternates`, as `git clone --shared`
/// writes): git inside reads those too. Nothing is followed through a
/// symlink: the sandbox can write `.git`, and a link planted there by an
/// earlier session must not make guard read (and show a sanitized copy
/// of) another repository of the host.
fn objects_dirs(git_dirs: &[PathBuf], project: &Path) -> Vec<PathBuf> {
    let real_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let mut out = Vec::new();
    let mut todo: Vec<(PathBuf, usize)> = git_dirs.iter().map(|d| (d.clone(), 0)).collect();
    while let Some((dir, depth)) = todo.pop() {
        // `.git` directories, and bare repositories (`fixtures/x.git`).
        let objects = dir.join("objects");
        if real_dir(&objects) {
            out.push(objects);
        }
        let modules = dir.join("modules");
        if depth < 4
            && real_dir(&modules)
            && let Ok(rd) = std::fs::read_dir(modules)
        {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    todo.push((e.path(), depth + 1));
                }
            }
        }
    }
    let mut i = 0;
    while i < out.len() && out.len() < 64 {
        let list = read_file(&out[i].join("info/alternates"), 1 << 16).unwrap_or_default();
        for line in list.split(|&b| b == b'\n') {
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let path =
                out[i].join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(line));
            if let Ok(real) = std::fs::canonicalize(path)
                && real.starts_with(project)
                && real_dir(&real)
                && !out.contains(&real)
            {
                out.push(real);
            }
        }
        i += 1;
    }
    out.sort();
    out.dedup();
    out
}

pub fn protect(
    rules: &Rules,
    fingerprint: &str,
    git_dirs: &[PathBuf],
    project: &Path,
    cache: &Path,
) -> History {
    let mut h = History::default();
    for objects in objects_dirs(git_dirs, project) {
        protect_repo(rules, fingerprint, &objects, cache, &mut h);
    }
    h
}

fn cache_name(objects: &Path) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(objects.as_os_str().as_encoded_bytes());
    d[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Loose object files larger than this hold more than [`pack::MAX_OBJECT`]
/// (zlib adds far less): not read.
const MAX_LOOSE: u64 = pack::MAX_OBJECT + (pack::MAX_OBJECT >> 8) + 4096;

/// An object file opened to read: never through a symlink, never blocking
/// on a fifo, but waiting out another program's lease (a Samba oplock): an
/// `O_NONBLOCK` open answers EAGAIN under one, while the sandbox's own
/// open waits for the holder to let go and reads the file. Not waiting
/// would leave it unchecked and served.
fn open_object_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => crate::host::open_path_past_lease(path)
            .map(std::fs::File::from)
            .map_err(std::io::Error::from),
        f => f,
    }
}

/// A small file's bytes: never through a symlink, never blocking on a
/// fifo, only a regular file of at most `max` bytes. An earlier session
/// can plant anything in `.git/objects`, which guard reads on the host.
fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = open_object_file(path).map_err(|e| e.to_string())?;
    let m = f.metadata().map_err(|e| e.to_string())?;
    if !m.is_file() {
        return Err("not a regular file".into());
    }
    if m.len() > max {
        return Err("file too large".into());
    }
    let mut out = Vec::with_capacity(m.len() as usize);
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > max {
        return Err("file too large".into());
    }
    Ok(out)
}

fn protect_repo(rules: &Rules, fingerprint: &str, objects: &Path, cache: &Path, h: &mut History) {
    let dir = cache.join("git");
    let cache_file = dir.join(format!("{}.json", cache_name(objects)));
    let old: CacheFile = std::fs::read(&cache_file)
        .ok()
        .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
        .filter(|c| c.fingerprint == fingerprint)
        .unwrap_or_default();
    let mut old = old;
    let mut new = CacheFile {
        fingerprint: fingerprint.to_string(),
        ..Default::default()
    };

    // Packs: those not remembered are read below.
    let pack_dir = objects.join("pack");
    let mut packs: Vec<(String, PathBuf)> = Vec::new();
    if std::fs::symlink_metadata(&pack_dir).is_ok_and(|m| m.is_dir()) {
        match list_dir(&pack_dir) {
            Ok(entries) => {
                for e in entries {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if let Some(stem) = name.strip_suffix(".pack")
                        && e.file_type().is_ok_and(|t| t.is_file())
                    {
                        packs.push((stem.to_string(), e.path()));
                    }
                }
            }
            Err(e) => hide_unlisted(h, &pack_dir, &e),
        }
    }
    packs.sort();
    let mut stale: Vec<usize> = Vec::new();
    for (k, (stem, path)) in packs.iter().enumerate() {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let k_meta = key(&meta);
        let src = match old.packs.get(stem) {
            Some(s) if s.key == k_meta => s.clone(),
            _ if meta.len() > MAX_PACK => Source {
                key: k_meta,
                marks: Vec::new(),
                error: Some("pack larger than 4 GiB".to_string()),
                retry: false,
            },
            _ => {
                if meta.len() > 64 << 20 {
                    eprintln!(
                        "guard: reading the git history in {} for secrets ({} MiB, once; remembered afterwards)",
                        crate::host::printable(path),
                        meta.len() >> 20
                    );
                }
                stale.push(k);
                Source {
                    key: k_meta,
                    ..Default::default()
                }
            }
        };
        new.packs.insert(stem.clone(), src);
    }

    // Loose objects.
    let mut fresh: Vec<(String, String, PathBuf)> = Vec::new();
    let mut loose_changed = false;
    let listed = list_dir(objects);
    if let Err(e) = &listed {
        hide_unlisted(h, objects, e);
    }
    if let Ok(entries) = listed {
        let mut subdirs: Vec<(String, PathBuf)> = entries
            .into_iter()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let hexdir = n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit());
                (hexdir && e.file_type().is_ok_and(|t| t.is_dir())).then(|| (n, e.path()))
            })
            .collect();
        subdirs.sort();
        for (sub, path) in subdirs {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let k = key(&meta);
            // An unchanged directory holds the same objects (a loose
            // object's file is never rewritten: its name is its content).
            let before = old.loose.remove(&sub);
            let listing = match before {
                Some(b) if b.key == k => b,
                before => {
                    loose_changed = true;
                    let mut listing = LooseDir {
                        key: k,
                        ..Default::default()
                    };
                    // Unlisted, its objects cannot be checked, yet git
                    // inside opens them by name (a directory set to 0300
                    // by an earlier session is unreadable to guard only,
                    // and the sandbox can set it back): hidden, and not
                    // remembered, so that the next run lists it again.
                    let entries = match list_dir(&path) {
                        Ok(entries) => entries,
                        Err(e) => {
                            hide_unlisted(h, &path, &e);
                            continue;
                        }
                    };
                    for e in entries {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.len() != LOOSE_NAME
                            || !name.bytes().all(|b| b.is_ascii_hexdigit())
                            || !e.file_type().is_ok_and(|t| t.is_file())
                        {
                            continue;
                        }
                        listing.names.push_str(&name);
                        match before.as_ref() {
                            Some(b) if b.has(&name) => {
                                if let Some(m) = b.marks.get(&name) {
                                    listing.marks.insert(name, m.clone());
                                }
                            }
                            _ => fresh.push((sub.clone(), name, e.path())),
                        }
                    }
                    listing
                }
            };
            new.loose.insert(sub, listing);
        }
    }
    // Directories that are gone.
    loose_changed |= !old.loose.is_empty();
    new.error = if stale.is_empty() && fresh.is_empty() {
        old.error.clone()
    } else {
        analyze(rules, objects, &packs, &stale, &fresh, &mut new, h).or(old.error.clone())
    };
    if let Some(e) = &new.error {
        h.unchecked.push((objects.to_path_buf(), e.clone()));
    }
    // A pack that could not be checked may hold anything: hidden inside,
    // with its index (git then fails on the objects in it), rather than
    // served unread.
    for (stem, path) in &packs {
        if let Some(e) = new.packs.get(stem).and_then(|s| s.error.as_ref()) {
            h.unchecked
                .push((path.clone(), format!("{e}; hidden inside")));
            h.hidden.push(path.clone());
            let idx = pack_dir.join(format!("{stem}.idx"));
            if std::fs::symlink_metadata(&idx).is_ok_and(|m| m.is_file()) {
                h.hidden.push(idx);
            }
            if !h.frozen.contains(&pack_dir) {
                h.frozen.push(pack_dir.clone());
            }
        }
    }

    // Everything flagged in this repository, wherever it was found.
    let mut flagged: HashMap<Oid, (bool, Vec<String>)> = HashMap::new();
    let all_marks = new
        .packs
        .values()
        .flat_map(|s| s.marks.iter())
        .chain(new.loose.values().flat_map(|l| l.marks.values().flatten()));
    for m in all_marks {
        let Some(oid) = pack::parse_hex(&m.oid) else {
            continue;
        };
        let e = flagged.entry(oid).or_insert((false, Vec::new()));
        e.0 |= m.hide;
        e.1.extend(m.rules.iter().cloned());
    }
    if new.packs.len() != old.packs.len()
        || loose_changed
        || !fresh.is_empty()
        || new
            .packs
            .iter()
            .any(|(k, v)| old.packs.get(k).map(|o| o.key) != Some(v.key))
    {
        // Errors that may not repeat are not remembered (see `retry`).
        let retried: Vec<(String, Source)> = new
            .packs
            .iter()
            .filter(|(_, s)| s.retry)
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        for (k, _) in &retried {
            new.packs.remove(k);
        }
        save(&cache_file, &new);
        new.packs.extend(retried);
    }
    if flagged.is_empty() {
        return;
    }

    let before = h.substitutes.len() + h.hidden.len();
    let subs_before = h.substitutes.len();
    let mut shown = 0usize;
    for (stem, path) in &packs {
        if new.packs.get(stem).is_some_and(|s| s.error.is_some()) {
            continue;
        }
        match sanitize_pack(rules, &pack_dir, stem, path, &flagged, &dir) {
            Ok(Some((subs, n))) => {
                shown += n;
                h.substitutes.extend(subs);
            }
            Ok(None) => {}
            Err(e) => {
                h.unchecked
                    .push((path.clone(), format!("{e}; hidden inside")));
                h.hidden.push(path.clone());
                h.hidden.push(pack_dir.join(format!("{stem}.idx")));
            }
        }
    }
    let sanitized_packs: Vec<Substitute> = h.substitutes[subs_before..]
        .iter()
        .filter(|s| s.path.extension().is_some_and(|e| e == "idx"))
        .cloned()
        .collect();
    if !sanitized_packs.is_empty()
        && let Err(e) = sanitize_midx(&pack_dir, &sanitized_packs, &dir, &mut h.substitutes)
    {
        // Offsets into a sanitized pack would be wrong: without the index,
        // git reads the packs directly.
        let midx = pack_dir.join("multi-pack-index");
        h.unchecked
            .push((midx.clone(), format!("{e}; hidden inside")));
        h.hidden.push(midx);
    }
    let mut flagged_loose: Vec<(Oid, bool)> = flagged
        .iter()
        .filter(|(oid, _)| {
            let hx = pack::hex(oid);
            new.loose.get(&hx[..2]).is_some_and(|l| l.has(&hx[2..]))
        })
        .map(|(oid, (hide, _))| (*oid, *hide))
        .collect();
    flagged_loose.sort();
    for (oid, hide) in &flagged_loose {
        let hx = pack::hex(oid);
        let path = objects.join(&hx[..2]).join(&hx[2..]);
        match sanitize_loose(rules, &path, oid, *hide, &dir) {
            Ok(copy) => {
                shown += 1;
                h.substitutes.push(Substitute { path, copy });
            }
            Err(e) => {
                h.unchecked
                    .push((path.clone(), format!("{e}; hidden inside")));
                h.hidden.push(path);
            }
        }
    }
    if h.substitutes.len() + h.hidden.len() > before {
        if !h.frozen.contains(&pack_dir) {
            h.frozen.push(pack_dir);
        }
        let mut ids: Vec<String> = flagged.values().flat_map(|v| v.1.iter().cloned()).collect();
        ids.sort();
        ids.dedup();
        h.sanitized.push(Sanitized {
            objects: objects.to_path_buf(),
            blobs: shown,
            rules: ids,
        });
    }
}

/// Every entry of a directory of the object database, or why it could not
/// be listed: an error on any entry counts, never an empty listing.
fn list_dir(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    std::fs::read_dir(dir)?.collect()
}

/// A directory of the object database that could not be listed: what is in
/// it was not checked, so it is hidden inside (git there fails on its
/// objects rather than serving them unread).
fn hide_unlisted(h: &mut History, dir: &Path, e: &std::io::Error) {
    h.unchecked.push((
        dir.to_path_buf(),
        format!("cannot list it: {e}; hidden inside"),
    ));
    h.hidden.push(dir.to_path_buf());
}

/// Best effort: without a cache the next run reads the history again.
fn save(file: &Path, c: &CacheFile) {
    if let Ok(json) = serde_json::to_vec(c) {
        let _ = write_private(file, &json);
    }
}

/// Where an object was read: a pack (by its place in the repository's
/// list) or a loose object (by its place in the list of those read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Src {
    Pack(usize),
    Loose(usize),
}

/// Scans objects one at a time; trees are remembered (only which trees
/// were read, and which of them are subdirectories of others) so that
/// blob paths can be named afterwards for the path rules.
struct Batch<'r> {
    rules: &'r Rules,
    /// Trees read, and where each was first found.
    trees: HashMap<Oid, Src>,
    /// Trees that a tree read names as a subdirectory.
    subtrees: HashSet<Oid>,
    /// Root trees of the commits read.
    roots: Vec<(Oid, Src)>,
    scratch: Vec<usize>,
}

/// A tree entry's type bits, from its octal mode (git reads `040000` as a
/// directory, as it does `40000`).
fn mode_type(mode: &[u8]) -> u32 {
    mode.iter()
        .try_fold(0u32, |m, &c| {
            (b'0'..=b'7')
                .contains(&c)
                .then(|| m.checked_mul(8)?.checked_add(u32::from(c - b'0')))
                .flatten()
        })
        .unwrap_or(0)
        & 0o170000
}
const DIR_MODE: u32 = 0o040000;
const GITLINK_MODE: u32 = 0o160000;

/// Longer paths are refused (git cannot check them out either).
const MAX_PATH: usize = 4096;

impl<'r> Batch<'r> {
    fn new(rules: &'r Rules) -> Self {
        Batch {
            rules,
            trees: HashMap::new(),
            subtrees: HashSet::new(),
            roots: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// The mark the object's content earns, if any.
    fn object(&mut self, src: Src, oid: Oid, kind: u8, content: &[u8]) -> Option<Mark> {
        match kind {
            pack::BLOB => verdict(self.rules, content, true).map(|(hide, rules)| Mark {
                oid: pack::hex(&oid),
                hide,
                rules,
            }),
            // A token pasted into a commit or tag message: redacted, never
            // emptied (git must still parse the object).
            pack::COMMIT | pack::TAG => {
                if kind == pack::COMMIT
                    && let Some(root) = content
                        .strip_prefix(b"tree ")
                        .and_then(|r| r.get(..40))
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(pack::parse_hex)
                {
                    self.roots.push((root, src));
                }
                verdict(self.rules, content, false).map(|(_, rules)| Mark {
                    oid: pack::hex(&oid),
                    hide: false,
                    rules,
                })
            }
            pack::TREE => {
                for (mode, _, child) in pack::tree_entries(content) {
                    if mode_type(mode) == DIR_MODE {
                        self.subtrees.insert(child);
                    }
                }
                self.trees.entry(oid).or_insert(src);
                None
            }
            _ => None,
        }
    }

    /// The path rule claiming `path` whatever its content: `Always`, or
    /// with `keys` also `UnlessCertificates` (the caller then reads the
    /// blob). A directory is claimed only by an `Always` rule, which hides
    /// everything below it (`.aws`).
    fn rule_at(&mut self, path: &[u8], keys: bool) -> Option<usize> {
        if path.is_empty() {
            return None;
        }
        let rel = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path));
        let paths = &self.rules.paths;
        paths.matches(rel, &mut self.scratch).filter(|&i| {
            let when = paths.rule(i).when;
            when == When::Always || (keys && when == When::UnlessCertificates)
        })
    }

    /// Path-rule marks for the blobs below the trees read, each under every
    /// path it has: a tree may sit at several paths, and the tree naming it
    /// may be stored in another pack, so `read` gives any tree of the
    /// repository. Trees that no tree read names are taken as roots. Each
    /// mark comes with the place of the tree the walk started from, and an
    /// error when the walk was cut short.
    fn finish_trees(
        &mut self,
        mut read: impl FnMut(&Oid, u8) -> Option<pack::Object>,
    ) -> (Vec<(Src, Mark)>, Option<String>) {
        let mut todo: Vec<(Oid, Vec<u8>, Option<usize>, Src)> = std::mem::take(&mut self.roots)
            .into_iter()
            .chain(
                self.trees
                    .iter()
                    .filter(|(t, _)| !self.subtrees.contains(*t))
                    .map(|(t, s)| (*t, *s)),
            )
            .map(|(t, s)| (t, Vec::new(), None, s))
            .collect();
        // Visits are (tree, path) pairs. Hostile trees can name one subtree
        // twice per level (2^depth paths): the entries looked at are
        // bounded by those of the distinct trees (a real repository looks
        // at each tree about once), and so are the paths waiting.
        let cut = |why: &str| {
            Some(format!(
                "{why} in its trees; path rules applied to part of its history"
            ))
        };
        let hash = std::collections::hash_map::RandomState::new();
        let mut seen: HashSet<(Oid, u64)> = HashSet::new();
        let mut distinct: HashSet<Oid> = HashSet::new();
        let mut marked: HashSet<(Oid, Src)> = HashSet::new();
        let (mut work, mut unique, mut queued) = (0usize, 0usize, 0usize);
        let mut out = Vec::new();
        while let Some((oid, path, under, src)) = todo.pop() {
            queued -= path.len();
            if !seen.insert((oid, std::hash::BuildHasher::hash_one(&hash, &path))) {
                continue;
            }
            let Some(tree) = read(&oid, pack::TREE) else {
                continue;
            };
            let first = usize::from(distinct.insert(oid));
            work += 1;
            unique += first;
            // Below a directory a path rule hides (`.aws`), everything is.
            let under = under.or_else(|| self.rule_at(&path, false));
            for (mode, name, child) in pack::tree_entries(&tree.1) {
                work += 1;
                unique += first;
                if work > 8 * unique + (1 << 18) {
                    return (out, cut("more paths than a repository has"));
                }
                let mut p = path.clone();
                if !p.is_empty() {
                    p.push(b'/');
                }
                p.extend_from_slice(name);
                if p.len() > MAX_PATH {
                    return (out, cut("a path longer than 4096 bytes"));
                }
                match mode_type(mode) {
                    DIR_MODE => {
                        queued += p.len();
                        if queued > 1 << 28 {
                            return (out, cut("more paths than a repository has"));
                        }
                        todo.push((child, p, under, src));
                    }
                    GITLINK_MODE => {}
                    _ => {
                        // A key file is hidden unless it holds only
                        // certificates, as in the worktree: `git show
                        // HEAD:deploy/tls.key` gives what the file did.
                        // One that cannot be read is hidden.
                        if let Some(i) = under.or_else(|| self.rule_at(&p, true))
                            && (self.rules.paths.rule(i).when == When::Always
                                || !read(&child, pack::BLOB)
                                    .is_some_and(|o| only_certificates(&o.1)))
                            && marked.insert((child, src))
                        {
                            out.push((
                                src,
                                Mark {
                                    oid: pack::hex(&child),
                                    hide: true,
                                    rules: vec![self.rules.paths.rule(i).id.clone()],
                                },
                            ));
                        }
                    }
                }
            }
        }
        (out, None)
    }
}

/// What the worktree scan would do with a file of this content. A blob
/// is judged as the scan judges a file, binary data included (text with a
/// NUL, UTF-16, an SQLite database): `git show` gives it as the worktree
/// copy would. A commit or tag is only searched as text: its copy is
/// redacted, never emptied, and redaction works on text.
fn verdict(rules: &Rules, content: &[u8], blob: bool) -> Option<(bool, Vec<String>)> {
    if content.is_empty() || content.len() as u64 > MAX_FILE_SIZE {
        return None;
    }
    let scan = if blob {
        match judge(&rules.content, content, &mut Default::default()).ok()? {
            Cached::Secrets(scan) => scan,
            Cached::Clean | Cached::Binary => return None,
        }
    } else if content[..content.len().min(8192)].contains(&0) {
        return None;
    } else {
        rules.content.scan(content).ok()?
    };
    if scan.findings.is_empty() {
        return None;
    }
    let (action, _) = classify(rules, None, &scan);
    Some((
        action == Action::Hide,
        rules.content.rule_ids(&scan.findings),
    ))
}

/// The content a flagged object shows inside: for a blob, what the
/// worktree copy of such a file shows (empty when hidden; values replaced
/// when redacted); a commit or tag is always redacted.
fn replacement(rules: &Rules, kind: u8, content: &[u8], hide: bool) -> Vec<u8> {
    let blob = kind == pack::BLOB;
    if hide && blob {
        return Vec::new();
    }
    match rules.content.scan(content) {
        Ok(scan) if !scan.findings.is_empty() => {
            redact::redacted(content, &scan.findings, &rules.content)
        }
        // Nothing found in it now (it was flagged by path): fail closed.
        _ if blob => Vec::new(),
        _ => content.to_vec(),
    }
}

/// Read what is new in a repository: every object of the packs `stale`
/// (places in `packs`) and the loose objects `fresh`, into `new`'s marks.
/// Path rules need the trees of the whole repository (a tree's parent may
/// be in another pack), so every readable pack is opened. Returns why the
/// path rules could not be applied to every tree, if so.
fn analyze(
    rules: &Rules,
    objects: &Path,
    packs: &[(String, PathBuf)],
    stale: &[usize],
    fresh: &[(String, String, PathBuf)],
    new: &mut CacheFile,
    h: &mut History,
) -> Option<String> {
    let pack_dir = objects.join("pack");
    // Errors are (why, whether it may not repeat): a file that could not
    // be opened or mapped is tried again next run; what its content says
    // (a damaged or hostile pack) holds as long as the pack is the same.
    let opened: Vec<Result<(Mapped, pack::Index), (String, bool)>> = packs
        .iter()
        .map(|(stem, path)| {
            if new.packs.get(stem).is_none_or(|s| s.error.is_some()) {
                return Err((String::new(), false));
            }
            let idx = Mapped::open(&pack_dir.join(format!("{stem}.idx")))
                .map_err(|e| (format!("read index: {e}"), true))?;
            let index = pack::Index::parse(idx.bytes()).map_err(|e| (e, false))?;
            Ok((Mapped::open(path).map_err(|e| (e, true))?, index))
        })
        .collect();
    let mut readers: Vec<Option<pack::Reader<'_>>> = Vec::with_capacity(packs.len());
    for (k, o) in opened.iter().enumerate() {
        let r = o.as_ref().map_err(Clone::clone).and_then(|(data, index)| {
            pack::Reader::new(data.bytes(), index).map_err(|e| (e, false))
        });
        if let Err((e, retry)) = &r
            && stale.contains(&k)
            && let Some(s) = new.packs.get_mut(&packs[k].0)
        {
            s.error = Some(e.clone());
            s.retry = *retry;
        }
        readers.push(r.ok());
    }

    let mut batch = Batch::new(rules);
    for &k in stale {
        let Some(reader) = readers[k].as_mut() else {
            continue;
        };
        let index = reader.index;
        let mut order: Vec<usize> = (0..index.oids.len()).collect();
        order.sort_by_key(|&i| index.offsets[i]);
        let mut marks = Vec::new();
        for i in order {
            // Objects that cannot be read (too large, damaged) are skipped:
            // git cannot show them either.
            if let Ok(obj) = reader.read(index.offsets[i]) {
                marks.extend(batch.object(Src::Pack(k), index.oids[i], obj.0, &obj.1));
            }
        }
        if let Some(s) = new.packs.get_mut(&packs[k].0) {
            s.marks = marks;
            if reader.exhausted() {
                s.error = Some(pack::EXHAUSTED.into());
            }
        }
    }
    let mut loose: Vec<Vec<Mark>> = vec![Vec::new(); fresh.len()];
    for (j, (sub, name, path)) in fresh.iter().enumerate() {
        let Some(oid) = pack::parse_hex(&format!("{sub}{name}")) else {
            continue;
        };
        match read_file(path, MAX_LOOSE).and_then(|b| pack::read_loose(&b, pack::MAX_OBJECT)) {
            Ok((kind, content)) => {
                loose[j].extend(batch.object(Src::Loose(j), oid, kind, &content))
            }
            // Not checked: hidden inside, and left out of the listing
            // remembered (whose key no longer matches), so that the next
            // run reads it again: remembered as listed, it would be taken
            // as read and clean for good.
            Err(e) => {
                h.unchecked
                    .push((path.clone(), format!("{e}; hidden inside")));
                h.hidden.push(path.clone());
                if let Some(l) = new.loose.get_mut(sub) {
                    l.forget(name);
                }
            }
        }
    }

    let (path_marks, error) = batch.finish_trees(|oid, kind| {
        for r in readers.iter_mut().flatten() {
            if let Some(i) = r.index.find(oid)
                && let Ok(o) = r.read(r.index.offsets[i])
                && o.0 == kind
            {
                return Some(o);
            }
        }
        let hx = pack::hex(oid);
        read_file(&objects.join(&hx[..2]).join(&hx[2..]), MAX_LOOSE)
            .and_then(|b| pack::read_loose(&b, pack::MAX_OBJECT))
            .ok()
            .filter(|(k, _)| *k == kind)
            .map(std::rc::Rc::new)
    });
    // A mark is kept with the object the walk to it started from: it holds
    // as long as that object is there.
    for (src, m) in path_marks {
        match src {
            Src::Pack(k) => {
                if let Some(s) = new.packs.get_mut(&packs[k].0) {
                    s.marks.push(m);
                }
            }
            Src::Loose(j) => loose[j].push(m),
        }
    }
    for ((sub, name, _), marks) in fresh.iter().zip(loose) {
        if let Some(l) = new.loose.get_mut(sub)
            && !marks.is_empty()
        {
            l.marks.insert(name.clone(), marks);
        }
    }
    error
}

/// Content-addressed name for a sanitized copy: the source's identity and
/// what is replaced in it.
fn copy_name(stem: &str, source: &std::fs::Metadata, replaced: &[(Oid, bool)]) -> String {
    use sha2::{Digest, Sha256};
    let mut d = Sha256::new();
    for v in key(source) {
        d.update(v.to_le_bytes());
    }
    d.update(source.dev().to_le_bytes());
    for (oid, hide) in replaced {
        d.update(oid);
        d.update([u8::from(*hide)]);
    }
    let h: String = d.finalize()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{stem}-{h}")
}

type Flags = HashMap<Oid, (bool, Vec<String>)>;

fn sanitize_pack(
    rules: &Rules,
    pack_dir: &Path,
    stem: &str,
    pack_path: &Path,
    flagged: &Flags,
    dir: &Path,
) -> Result<Option<(Vec<Substitute>, usize)>, String> {
    let idx_path = pack_dir.join(format!("{stem}.idx"));
    let idx_bytes = Mapped::open(&idx_path).map_err(|e| format!("read index: {e}"))?;
    // The flagged names in this pack, in index order, found in place: the
    // whole index is parsed only when a copy has to be built.
    let mut replaced: Vec<(usize, bool, Oid)> = Vec::new();
    for (oid, (hide, _)) in flagged {
        if let Some(i) = pack::Index::position(idx_bytes.bytes(), oid) {
            replaced.push((i, *hide, *oid));
        }
    }
    if replaced.is_empty() {
        return Ok(None);
    }
    replaced.sort();
    let meta = std::fs::symlink_metadata(pack_path).map_err(|e| e.to_string())?;
    let ids: Vec<(Oid, bool)> = replaced.iter().map(|&(_, h, oid)| (oid, h)).collect();
    let name = copy_name(stem, &meta, &ids);
    let copy_pack = dir.join(format!("{name}.pack"));
    let copy_idx = dir.join(format!("{name}.idx"));
    let subs = vec![
        Substitute {
            path: pack_path.to_path_buf(),
            copy: copy_pack.clone(),
        },
        Substitute {
            path: idx_path,
            copy: copy_idx.clone(),
        },
    ];
    if copy_pack.is_file() && copy_idx.is_file() {
        return Ok(Some((subs, replaced.len())));
    }
    let index = pack::Index::parse(idx_bytes.bytes())?;
    let data = Mapped::open(pack_path)?;
    let mut reader = pack::Reader::new(data.bytes(), &index)?;
    let mut content = HashMap::new();
    for &(i, hide, _) in &replaced {
        let obj = reader.read(index.offsets[i])?;
        content.insert(i, replacement(rules, obj.0, &obj.1, hide));
    }
    let (new_pack, new_index) = pack::rewrite(&mut reader, &content)?;
    write_private(&copy_pack, &new_pack)?;
    write_private(&copy_idx, &new_index.write())?;
    Ok(Some((subs, replaced.len())))
}

/// A multi-pack index records offsets into the packs, which move in the
/// sanitized copies: it gets a copy of its own with theirs.
fn sanitize_midx(
    pack_dir: &Path,
    packs: &[Substitute],
    dir: &Path,
    subs: &mut Vec<Substitute>,
) -> Result<(), String> {
    let midx = pack_dir.join("multi-pack-index");
    let Ok(meta) = std::fs::symlink_metadata(&midx) else {
        return Ok(());
    };
    let mut tag = String::new();
    for p in packs {
        tag.push_str(&p.copy.to_string_lossy());
    }
    let copy = dir.join(format!(
        "{}.midx",
        copy_name(&cache_name(Path::new(&tag)), &meta, &[])
    ));
    if !copy.is_file() {
        let mut bytes =
            read_file(&midx, 1 << 30).map_err(|e| format!("read multi-pack-index: {e}"))?;
        for p in packs {
            let index = std::fs::read(&p.copy)
                .map_err(|e| e.to_string())
                .and_then(|b| pack::Index::parse(&b))?;
            let name = p.path.file_name().unwrap_or_default().to_string_lossy();
            bytes = fix_midx(&bytes, &name, &index)?;
        }
        write_private(&copy, &bytes)?;
    }
    subs.push(Substitute { path: midx, copy });
    Ok(())
}

fn sanitize_loose(
    rules: &Rules,
    path: &Path,
    oid: &Oid,
    hide: bool,
    dir: &Path,
) -> Result<PathBuf, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    let name = copy_name("loose", &meta, &[(*oid, hide)]);
    let copy = dir.join(name);
    if copy.is_file() {
        return Ok(copy);
    }
    let bytes = read_file(path, MAX_LOOSE)?;
    let (kind, content) = pack::read_loose(&bytes, pack::MAX_OBJECT)?;
    write_private(
        &copy,
        &pack::write_loose(kind, &replacement(rules, kind, &content, hide)),
    )?;
    Ok(copy)
}

/// A sanitized copy (or the history cache) in guard's cache directory.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    super::cache::write_private(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Rewrite a multi-pack index's offsets for objects of one pack.
fn fix_midx(b: &[u8], idx_name: &str, index: &pack::Index) -> Result<Vec<u8>, String> {
    let be32 = |at: usize| -> Result<u32, String> {
        b.get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| "multi-pack-index truncated".to_string())
    };
    let be64 = |at: usize| -> Result<u64, String> {
        b.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| "multi-pack-index truncated".to_string())
    };
    if b.get(..4) != Some(b"MIDX") || b.get(4) != Some(&1) || b.get(5) != Some(&1) {
        return Err("unsupported multi-pack-index".into());
    }
    let chunks = usize::from(*b.get(6).ok_or("multi-pack-index truncated")?);
    let mut table = HashMap::new();
    for c in 0..=chunks {
        let at = 12 + 12 * c;
        let id = b.get(at..at + 4).ok_or("multi-pack-index truncated")?;
        table.insert(
            id.to_vec(),
            usize::try_from(be64(at + 4)?).unwrap_or(usize::MAX),
        );
    }
    let chunk = |id: &[u8]| {
        table
            .get(id)
            .copied()
            .ok_or("multi-pack-index chunk missing")
    };
    let (pnam, oidl, ooff) = (chunk(b"PNAM")?, chunk(b"OIDL")?, chunk(b"OOFF")?);
    let packs = be32(8)? as usize;
    let mut names = b
        .get(pnam..)
        .ok_or("multi-pack-index truncated")?
        .split(|&c| c == 0);
    let mut id = None;
    for p in 0..packs {
        let n = names.next().ok_or("multi-pack-index truncated")?;
        let n = std::str::from_utf8(n).unwrap_or("");
        if n == idx_name
            || n.strip_suffix(".pack")
                .map(|s| format!("{s}.idx"))
                .as_deref()
                == Some(idx_name)
        {
            id = Some(p as u32);
        }
    }
    let Some(id) = id else {
        return Ok(b.to_vec());
    };
    let count = ooff
        .checked_sub(oidl)
        .ok_or("multi-pack-index chunks out of order")?
        / 20;
    let mut out = b.to_vec();
    for i in 0..count {
        let at = ooff + 8 * i;
        if be32(at)? != id {
            continue;
        }
        let oid: Oid = b
            .get(oidl + 20 * i..oidl + 20 * i + 20)
            .and_then(|s| s.try_into().ok())
            .ok_or("multi-pack-index truncated")?;
        let j = index
            .find(&oid)
            .ok_or("multi-pack-index names an object not in its pack")?;
        let off = index.offsets[j];
        if off >= 0x8000_0000 || be32(at + 4)? & 0x8000_0000 != 0 {
            return Err("multi-pack-index with large offsets".into());
        }
        out[at + 4..at + 8].copy_from_slice(&(off as u32).to_be_bytes());
    }
    Ok(out)
}

/// A pack or index file mapped read-only (packs can be gigabytes); never
/// through a symlink, never a fifo.
struct Mapped(super::mapped::Mapped);

impl Mapped {
    fn open(path: &Path) -> Result<Mapped, String> {
        let f = open_object_file(path).map_err(|e| format!("open: {e}"))?;
        let m = f.metadata().map_err(|e| e.to_string())?;
        if !m.is_file() || m.len() < 32 {
            return Err("not a pack or index file".into());
        }
        let len = usize::try_from(m.len()).map_err(|e| e.to_string())?;
        super::mapped::Mapped::new(&f, len)
            .map(Mapped)
            .map_err(|e| e.to_string())
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}
