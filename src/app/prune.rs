//! `guard prune`: remove what guard keeps for each project (the agents'
//! persistent homes, the copy-on-write cache layers, their login records,
//! the secret scanner's cache) once the project is gone,
//! or for one named project.
//!
//! All of it is named by a key derived from the project's path (a hash:
//! the path cannot be read back from it), so each run records the path
//! under `$XDG_STATE_HOME/guard/projects/<hash>` (beside the session
//! logs: state of guard's own, never shown to a sandbox). State made before guard
//! kept these records is listed as of an unknown project and kept.

use crate::error::{Error, Result};
use crate::host;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Remember which project `project_key`'s hash names (once; the file is
/// only rewritten when it says something else).
pub fn record_project(project: &Path) {
    let Some(dir) = host::state_dir().map(|d| d.join("projects")) else {
        return;
    };
    let file = dir.join(crate::secrets::project_hash(project));
    let want = project.as_os_str().as_encoded_bytes();
    if host::read_small(&file, 64 << 10).is_some_and(|got| got == want) {
        return;
    }
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    // Written aside, then renamed: a reader never sees half a path.
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    if std::fs::write(&tmp, want).is_ok() && std::fs::rename(&tmp, &file).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// What guard keeps for one project hash.
#[derive(Default)]
struct State {
    /// Directories and files named by the hash.
    paths: Vec<PathBuf>,
}

pub fn run(project: Option<&Path>, dry_run: bool) -> Result<i32> {
    let data = host::data_dir().ok_or_else(|| {
        Error::usage_hint(
            "cannot locate guard's data directory",
            "set HOME or XDG_DATA_HOME",
        )
    })?;
    let cache = host::cache_dir();
    let records = host::state_dir()
        .ok_or_else(|| {
            Error::usage_hint(
                "cannot locate guard's state directory",
                "set HOME or XDG_STATE_HOME",
            )
        })?
        .join("projects");
    let named = match project {
        Some(p) => {
            let p = std::fs::canonicalize(p).map_err(|e| {
                Error::usage_hint(
                    format!("--project {}: {}", p.display(), crate::error::os_text(&e)),
                    "name an existing project directory (a gone one is pruned without --project)",
                )
            })?;
            Some(p)
        }
        None => None,
    };
    let states = collect(&data, cache.as_deref(), &records);
    let mut freed_total = 0;
    let mut pruned = 0;
    let mut unknown: Vec<&PathBuf> = Vec::new();
    let mut errors = 0;
    for (hash, state) in &states {
        let recorded = host::read_small(&records.join(hash), 64 << 10).map(|b| {
            PathBuf::from(std::ffi::OsString::from(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&b),
            ))
        });
        let Some(path) = recorded else {
            // Only what is big enough to matter: the scanner also caches
            // /etc and other directories no run records.
            if named.is_none() {
                unknown.extend(state.paths.iter().filter(|p| p.starts_with(&data)));
            }
            continue;
        };
        let chosen = match &named {
            Some(n) => *n == path,
            None => match gone(&path) {
                Gone::Yes => true,
                Gone::No => false,
                Gone::Unmounted(at) => {
                    println!(
                        "kept {}: it is missing, and {} is an empty directory, as the mount point \
                         of a drive or share that is not mounted is (mount it; if the project is \
                         gone for good, remove that directory and run guard prune again)",
                        host::printable(&path),
                        host::printable(&at)
                    );
                    false
                }
            },
        };
        if !chosen {
            continue;
        }
        // No session may be using what is removed: full-level sessions
        // hold the project's lock shared, landlock-level ones exclusive.
        let lock = super::landlock_level::lock_project(&path, true);
        if !matches!(lock, Ok(Some(_))) {
            eprintln!(
                "guard: {} has a session running: its state is kept (run guard prune again once it ended)",
                host::printable(&path)
            );
            errors += 1;
            continue;
        }
        let mut paths = state.paths.clone();
        paths.push(records.join(hash));
        let mut freed = 0;
        for p in &paths {
            if dry_run {
                freed += host::tree_size(p);
                continue;
            }
            let (n, err) = host::remove_tree(p);
            freed += n;
            if let Some(e) = err {
                eprintln!(
                    "guard: could not remove all of {}: {}",
                    host::printable(p),
                    crate::error::os_text(&e)
                );
                errors += 1;
            }
        }
        // Last, while it is still held: a session starting after this
        // makes a new lock file, and finds nothing of what was removed.
        if !dry_run && let Some(lock_file) = super::landlock_level::lock_path(&path) {
            let _ = std::fs::remove_file(lock_file);
        }
        drop(lock);
        freed_total += freed;
        pruned += 1;
        let gone = if named.is_some() { "" } else { " (gone)" };
        println!(
            "{} {}{gone}: {}",
            if dry_run { "would remove" } else { "removed" },
            host::printable(&path),
            human(freed)
        );
        for p in &state.paths {
            println!("  {}", host::printable(p));
        }
    }
    // Imports a killed guard left half done (`homes/.importing-PID`).
    for (name, path) in entries(&data.join("homes")) {
        let Some(pid) = name.strip_prefix(".importing-") else {
            continue;
        };
        if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
            continue;
        }
        let freed = if dry_run {
            host::tree_size(&path)
        } else {
            let (n, err) = host::remove_tree(&path);
            if let Some(e) = err {
                eprintln!(
                    "guard: could not remove all of {}: {}",
                    host::printable(&path),
                    crate::error::os_text(&e)
                );
                errors += 1;
            }
            n
        };
        freed_total += freed;
        println!(
            "{} an interrupted import: {}",
            if dry_run { "would remove" } else { "removed" },
            host::printable(&path)
        );
    }
    if !unknown.is_empty() {
        println!(
            "kept {} item(s) of projects guard has no record of (made before guard recorded \
             project paths; one run in the project records it):",
            unknown.len()
        );
        for p in &unknown {
            println!("  {}", host::printable(p));
        }
    }
    let verb = if dry_run { "would free" } else { "freed" };
    println!("{pruned} project(s), {verb} {}", human(freed_total));
    Ok(if errors == 0 { 0 } else { 1 })
}

/// Whether a recorded project is gone.
enum Gone {
    Yes,
    /// There, or it cannot be told (an unreadable directory on the way).
    No,
    /// Missing below an empty directory (named): most likely the mount
    /// point of a drive or share not mounted now, which brings the project
    /// back when it is.
    Unmounted(PathBuf),
}

/// Gone: not there at all, below a directory that is there and holds
/// something (a project you removed leaves its siblings, or at least the
/// home around it; an unmounted drive leaves an empty mount point, or none
/// below a directory that holds other mount points, which this cannot
/// tell).
fn gone(path: &Path) -> Gone {
    let missing = |p: &Path| {
        matches!(
            std::fs::symlink_metadata(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        )
    };
    if !missing(path) {
        return Gone::No;
    }
    let mut at = path;
    while let Some(parent) = at.parent() {
        if !missing(parent) {
            return match std::fs::read_dir(parent).map(|mut rd| rd.next().is_none()) {
                Ok(false) => Gone::Yes,
                Ok(true) => Gone::Unmounted(parent.to_path_buf()),
                Err(_) => Gone::No,
            };
        }
        at = parent;
    }
    Gone::No
}

/// Everything guard keeps per project, by project hash.
fn collect(data: &Path, cache: Option<&Path>, records: &Path) -> BTreeMap<String, State> {
    let mut states: BTreeMap<String, State> = BTreeMap::new();
    let mut add = |hash: Option<&str>, path: PathBuf| {
        if let Some(h) = hash.filter(|h| is_hash(h)) {
            states.entry(h.to_string()).or_default().paths.push(path);
        }
    };
    // homes/PROFILE@NAME-HASH and logins/PROFILE@NAME-HASH.json
    for (dir, suffix) in [("homes", ""), ("logins", ".json")] {
        for (name, path) in entries(&data.join(dir)) {
            let key = name
                .strip_suffix(suffix)
                .and_then(|n| n.rsplit_once('@'))
                .map(|(_, key)| key);
            add(key.and_then(hash_of_key), path);
        }
    }
    // caches/PROFILE/NAME-HASH
    for (_, profile) in entries(&data.join("caches")) {
        for (name, path) in entries(&profile) {
            add(hash_of_key(&name), path);
        }
    }
    // The scanner's cache: scan-HASH.bin; the project lock is named by
    // another hash of the path, found from the recorded path.
    if let Some(cache) = cache {
        for (name, path) in entries(cache) {
            add(
                name.strip_prefix("scan-")
                    .and_then(|n| n.strip_suffix(".bin")),
                path,
            );
        }
    }
    for (name, _) in entries(records) {
        if is_hash(&name) {
            states.entry(name).or_default();
        }
    }
    states
}

fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect()
}

/// `NAME-HASH` → `HASH`.
fn hash_of_key(key: &str) -> Option<&str> {
    key.rsplit_once('-').map(|(_, h)| h)
}

fn is_hash(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn human(bytes: u64) -> String {
    const MIB: f64 = (1 << 20) as f64;
    format!("{:.1} MiB", bytes as f64 / MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_hash() {
        assert_eq!(
            hash_of_key("my-app-0123456789abcdef"),
            Some("0123456789abcdef")
        );
        assert!(is_hash("0123456789abcdef"));
        assert!(!is_hash("0123456789abcde"));
        assert!(!is_hash("0123456789abcdeg"));
    }
}
