//! The scan cache: what the content rules found in each file, keyed by
//! (device, inode, size, mtime, ctime), so an unchanged tree is not read
//! again. One binary file per project under `$XDG_CACHE_HOME/guard` (or
//! `~/.cache/guard`), written atomically.
//!
//! It never holds a secret: per file only rule indices, line numbers, byte
//! offsets and a 32-bit fingerprint. A cache written with other rules (the
//! engine's fingerprint differs), truncated or malformed is ignored: the
//! scan then reads every file, so a bad cache costs time, never coverage.
//! Files changed in the last seconds are not cached (timestamps are coarse:
//! a second write in the same tick would otherwise look unchanged).

use super::Finding;
use super::content_rules::ContentScan;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"GRDSCAN1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Key {
    pub fn from_stat(st: &libc::stat) -> Key {
        Key {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: st
                .st_mtime
                .saturating_mul(1_000_000_000)
                .saturating_add(st.st_mtime_nsec),
            ctime_ns: st
                .st_ctime
                .saturating_mul(1_000_000_000)
                .saturating_add(st.st_ctime_nsec),
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

/// Entries sorted by (dev, ino), and those keys on their own: lookups
/// binary-search a compact array that stays in the CPU cache.
#[derive(Debug, Default)]
pub struct Cache {
    ids: Vec<(u64, u64)>,
    entries: Vec<Entry>,
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
    let h = Sha256::digest(project.as_os_str().as_encoded_bytes());
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("scan-{hex}.bin")
}

impl Cache {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry for `key` (and its index), if the file is unchanged.
    pub fn get(&self, key: &Key) -> Option<(u32, &Cached)> {
        let i = self.ids.binary_search(&(key.dev, key.ino)).ok()?;
        let e = &self.entries[i];
        (e.key == *key).then_some((i as u32, &e.content))
    }

    /// Copies of the entries at `indices`.
    pub fn entries_at(&self, indices: &[u32]) -> Vec<Entry> {
        indices
            .iter()
            .filter_map(|&i| self.entries.get(i as usize).cloned())
            .collect()
    }

    /// Load the cache at `path`; empty when missing, foreign or malformed.
    pub fn load(path: &Path, rules: &[u8; 32]) -> Cache {
        let Ok(bytes) = read_own_file(path) else {
            return Cache::default();
        };
        parse(&bytes, rules).unwrap_or_default()
    }

    /// Write `entries` atomically (temp file + rename) into a 0700 directory.
    pub fn save(path: &Path, rules: &[u8; 32], mut entries: Vec<Entry>) -> std::io::Result<()> {
        entries.sort_by_key(|e| (e.key.dev, e.key.ino));
        entries.dedup_by_key(|e| (e.key.dev, e.key.ino));
        let mut out = Vec::with_capacity(48 + entries.len() * 41);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(rules);
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for e in &entries {
            for v in [
                e.key.dev,
                e.key.ino,
                e.key.size,
                e.key.mtime_ns as u64,
                e.key.ctime_ns as u64,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            match &e.content {
                Cached::Clean => out.push(0),
                Cached::Binary => out.push(1),
                Cached::Secrets(s) => {
                    out.push(2);
                    for v in [s.content_lines, s.secret_lines, s.findings.len() as u32] {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                    for f in &s.findings {
                        out.extend_from_slice(&f.rule.to_le_bytes());
                        for v in [f.line, f.start, f.end, f.fingerprint] {
                            out.extend_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tmp = dir.join(format!(".scan-{}.tmp", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&out)?;
        drop(f);
        std::fs::rename(&tmp, path)
    }
}

/// Read the cache only if it is a regular file we own and nobody else may
/// write: anything else is not our cache.
fn read_own_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let m = f.metadata()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_file() || m.uid() != me || m.mode() & 0o022 != 0 {
        return Err(std::io::Error::other("not guard's cache file"));
    }
    let mut bytes = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

struct Reader<'a> {
    b: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.b.split_first_chunk::<N>()?;
        self.b = rest;
        Some(*head)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take::<2>().map(u16::from_le_bytes)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
}

fn parse(bytes: &[u8], rules: &[u8; 32]) -> Option<Cache> {
    let mut r = Reader { b: bytes };
    if &r.take::<8>()? != MAGIC || &r.take::<32>()? != rules {
        return None;
    }
    let n = r.u64()? as usize;
    // Each entry is at least 41 bytes: a count beyond that is corrupt.
    if n > r.b.len() / 41 {
        return None;
    }
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let key = Key {
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime_ns: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
        };
        let content = match r.u8()? {
            0 => Cached::Clean,
            1 => Cached::Binary,
            2 => {
                let (content_lines, secret_lines, nf) = (r.u32()?, r.u32()?, r.u32()? as usize);
                if nf > r.b.len() / 18 {
                    return None;
                }
                let mut findings = Vec::with_capacity(nf);
                for _ in 0..nf {
                    findings.push(Finding {
                        rule: r.u16()?,
                        line: r.u32()?,
                        start: r.u32()?,
                        end: r.u32()?,
                        fingerprint: r.u32()?,
                    });
                }
                Cached::Secrets(ContentScan {
                    findings,
                    content_lines,
                    secret_lines,
                })
            }
            _ => return None,
        };
        entries.push(Entry { key, content });
    }
    // Lookups binary-search: refuse an unsorted file rather than miss.
    if !entries
        .windows(2)
        .all(|w| (w[0].key.dev, w[0].key.ino) < (w[1].key.dev, w[1].key.ino))
    {
        return None;
    }
    if !r.b.is_empty() {
        return None;
    }
    let ids = entries.iter().map(|e| (e.key.dev, e.key.ino)).collect();
    Some(Cache { ids, entries })
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
        let entries = vec![
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
        ];
        let rules = [7u8; 32];
        Cache::save(&path, &rules, entries).unwrap();
        let c = Cache::load(&path, &rules);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key(9)), Some((2, &Cached::Secrets(scan))));
        assert_eq!(c.get(&key(2)), Some((0, &Cached::Clean)));
        assert_eq!(c.entries_at(&[1]).len(), 1);
        let mut changed = key(2);
        changed.mtime_ns += 1;
        assert_eq!(c.get(&changed), None);
        assert_eq!(c.get(&key(3)), None);
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
    fn cache_dir_prefers_absolute_xdg() {
        // Only checks the fallback; the environment is not modified in tests.
        let d = cache_dir(Path::new("/h"));
        assert!(d.ends_with("guard"));
    }
}
