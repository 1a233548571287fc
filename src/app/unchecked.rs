//! Sessions whose check after the run never ran.
//!
//! After every run guard moves aside what the sandbox planted: protected
//! paths it created, links it re-pointed, repositories it made. If guard
//! itself is killed (SIGKILL, the OOM killer, a power cut), the sandbox
//! dies with it and that check never happens; worse, the next session would
//! take what was planted for the user's own (a repository found at the
//! start is protected, and so trusted, like one the user made). So before
//! the command starts each session records what its check needs, under
//! guard's state directory (which no sandbox can reach), holding a lock on
//! the record while it lives; the record goes once the check has run. A
//! later session in the same project that finds a record nobody holds runs
//! that check first, as the dead session would have.

use super::protect::{self, Moved};
use super::repo_watch::RepoWatch;
use super::repos::{self, Trusted};
use crate::host;
use crate::policy::Policy;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What the check after the run needs, as it was when the session began.
#[derive(Serialize, Deserialize)]
pub struct AfterRun {
    project: PathBuf,
    scan_cache: PathBuf,
    absent_protected: Vec<PathBuf>,
    #[serde(default)]
    protected_globs: Vec<PathBuf>,
    protected_links: Vec<(PathBuf, PathBuf)>,
    walked: Vec<PathBuf>,
    writable: Vec<PathBuf>,
    linked: Option<PathBuf>,
    trusted: Trusted,
}

impl AfterRun {
    pub fn of(policy: &Policy, trusted: Trusted) -> AfterRun {
        AfterRun {
            project: policy.project.clone(),
            scan_cache: crate::secrets::cache_dir(&policy.home)
                .join(crate::secrets::cache_file_name(&policy.project)),
            absent_protected: policy.absent_protected.clone(),
            protected_globs: policy.protected_globs.clone(),
            protected_links: policy.protected_links.clone(),
            walked: super::walked_outside(&policy.grants, &policy.project, policy.isolation),
            writable: super::writable_outside(policy),
            linked: policy.linked_repository.clone(),
            trusted,
        }
    }

    /// The same check while the sandbox runs, on repositories it makes
    /// (see `repo_watch`).
    pub fn watch(&self) -> crate::error::Result<Option<RepoWatch>> {
        RepoWatch::start(
            &self.project,
            self.scan_cache.clone(),
            repos::check_roots(&self.project, &self.writable),
            self.trusted.clone(),
        )
    }

    /// The check: protected paths the sandbox created, links it re-pointed,
    /// repositories it made. Nothing of the sandbox may be left running.
    pub fn check(&self) -> Vec<Moved> {
        let mut moved = protect::quarantine_created(&self.absent_protected, &self.project);
        moved.extend(repos::quarantine_new_matches(
            &self.protected_globs,
            &self.project,
            &self.trusted,
        ));
        moved.extend(protect::restore_links(&self.protected_links, &self.project));
        moved.extend(repos::check_after_run(
            &self.project,
            &self.scan_cache,
            &self.walked,
            &self.writable,
            self.linked.as_deref(),
            &self.trusted,
        ));
        moved
    }
}

/// A session's record, locked while the session lives.
pub struct Record {
    path: PathBuf,
    _lock: Flock<std::fs::File>,
}

impl Record {
    /// The check has run: nothing is left to do for this session.
    pub fn done(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where records of `project`'s sessions are, and the prefix of their names.
fn place(project: &Path) -> Option<(PathBuf, String)> {
    let dir = host::state_dir()?.join("unchecked");
    Some((
        dir,
        format!("{}.", crate::secrets::cache_file_name(project)),
    ))
}

/// Record `after` for this session. `None` if it cannot be (no state
/// directory, a path that is not UTF-8): the session runs as before, with
/// its check after the run.
pub fn record(after: &AfterRun) -> Option<Record> {
    let (dir, prefix) = place(&after.project)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let json = serde_json::to_vec(after).ok()?;
    let path = dir.join(format!("{prefix}{}.json", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .ok()?;
    let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()?;
    // Not synced to disk: that would cost every start milliseconds. A
    // killed guard's record is in the page cache; after a power cut within
    // the kernel's writeback delay (seconds) it may be lost.
    if lock.write_all(&json).is_err() {
        let _ = std::fs::remove_file(&path);
        return None;
    }
    Some(Record { path, _lock: lock })
}

/// Run the checks of `project`'s sessions that ended without theirs, and
/// tell the user. A record another session holds is its own; one that
/// cannot be read is removed (there is nothing to check with it).
pub fn recover(project: &Path) {
    let Some((dir, prefix)) = place(project) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            continue; // a session that still runs
        };
        let after: Option<AfterRun> = serde_json::from_reader(std::io::BufReader::new(&*lock))
            .ok()
            .filter(|a: &AfterRun| a.project == project);
        if let Some(after) = after {
            let when = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .map(crate::audit::timestamp)
                .unwrap_or_default();
            eprintln!(
                "guard: the session started {when} in this project ended without guard's check after the run (guard was killed); checking now"
            );
            for m in after.check() {
                m.report();
                tracing::info!(target: crate::audit::TARGET, kind = "fs", action = "quarantined", path = %m.path.display(), detail = "check of an earlier session that was killed");
            }
        }
        let _ = std::fs::remove_file(&path);
    }
}
