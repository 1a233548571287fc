//! Files the host replaces under the sandbox's view while it runs.
//!
//! Hidden, redacted and protected files are mounts over their directory
//! entries; a program on the host that replaces one (an editor's save,
//! `sed -i`, the user's git writing `.git/config` anew) takes the entry,
//! and the mount with it, away: the sandbox would read the new file as it
//! is, and write it where it was protected. This watches the directories
//! of those files and has the setup process cover each new file at once
//! (see `sandbox::keeper`) as the old one was: hidden, redacted (the new
//! content, with the run's rules) or read-only. The moment between the
//! rename and the new mount remains. A secret file that cannot be kept
//! covered (the cover failed and the file is still there, or a directory
//! on the way to it became a link, where the host's next write would go
//! out of reach) ends the sandbox: that moment, never the rest of the run.

use super::tripwire::{F_SETSIG, Tripwires};
use crate::audit;
use crate::host;
use crate::policy::{Access, Grant, GrantKind, Policy};
use crate::profile::Isolation;
use crate::sandbox::{Cover, Keeper, Uncovered};
use crate::secrets::SharedRules;
use nix::sys::inotify::{AddWatchFlags as W, Inotify};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A file covered in the view.
struct Covered {
    path: PathBuf,
    /// The file it was at the start, then the one last covered.
    id: Id,
    how: How,
    /// A hidden or redacted file: its secrets were visible in the moment
    /// before the cover, or all along if covering failed.
    secret: bool,
}

/// Which file a path is (not following a link): device, inode and the
/// inode's birth time where the filesystem keeps one. A file removed and
/// another created in its place (`rm .env && cp .env.example .env`, or
/// the directory around it made anew) often gets the freed inode number.
type Id = (u64, u64, Option<std::time::SystemTime>);

fn id(path: &Path) -> Option<Id> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.created().ok()))
}

/// How a file was covered at the start.
#[derive(Clone, Copy, PartialEq)]
enum How {
    Hide,
    Redact,
    ReadOnly,
}

/// What was done with one replaced file.
pub struct Outcome {
    path: PathBuf,
    secret: bool,
    failed: Option<String>,
    /// The sandbox was ended for it (see [`end_for`]).
    ended: bool,
}

/// The files to keep covered, as they were before the run, and the
/// directories shown from the host (see [`from_host`]).
pub struct Covers {
    files: Vec<Covered>,
    dirs: Vec<Grant>,
    rules: SharedRules,
}

impl Covers {
    pub fn before_run(policy: &Policy) -> Covers {
        if policy.isolation != Isolation::Full {
            return Covers {
                files: Vec::new(),
                dirs: Vec::new(),
                rules: SharedRules::default(),
            };
        }
        // By path: a project with thousands of secret files has as many
        // grants, and this runs on every start.
        let secrets: HashMap<&Path, How> = policy
            .secrets
            .files
            .iter()
            .map(|f| {
                let how = if f.action == crate::secrets::Action::Redact {
                    How::Redact
                } else {
                    How::Hide
                };
                (f.path.as_path(), how)
            })
            .collect();
        let secret = |p: &Path| secrets.get(p).copied();
        let files = policy
            .grants
            .iter()
            .filter(|g| !matches!(g.kind, GrantKind::Symlink { .. }))
            .filter_map(|g| {
                let (how, secret) = match (g.access, secret(&g.path)) {
                    (Access::Hidden, _) => (How::Hide, true),
                    (Access::Redacted | Access::Protected, Some(how)) => (how, true),
                    (Access::Redacted, None) => (How::Hide, true),
                    (Access::Protected, None) => (How::ReadOnly, false),
                    (Access::ReadOnly | Access::ReadWrite, _) => return None,
                };
                Some(Covered {
                    id: id(&g.path)?,
                    path: g.path.clone(),
                    how,
                    secret,
                })
            })
            .collect();
        let dirs = policy
            .grants
            .iter()
            .filter(|g| g.kind == GrantKind::Dir)
            .cloned()
            .collect();
        Covers {
            files,
            dirs,
            rules: policy.secrets.rules.clone(),
        }
    }

    /// Watch on a thread of its own until [`Watch::stop`]; `keeper` (the
    /// sandbox's) covers what is replaced. The inotify instance is made
    /// here, before the command starts (see `protect::watch_instance`).
    pub fn watch_with(self, keeper: Option<Keeper>) -> crate::error::Result<Option<Watch>> {
        use crate::error::Error;
        let Some(keeper) = keeper else {
            return Ok(None);
        };
        if self.files.is_empty() {
            return Ok(None);
        }
        let inotify =
            super::protect::watch_instance("secret and protected files the host may replace")?;
        let (stop_rd, stop_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::sys("make a pipe", e))?;
        let Covers { files, dirs, rules } = self;
        let thread = std::thread::Builder::new()
            .name("guard-covers".into())
            .spawn(move || {
                let covers = files
                    .into_iter()
                    .filter(|c| from_host(&dirs, &c.path))
                    .collect();
                watch(&stop_rd, &inotify, covers, &dirs, keeper, &rules)
            })
            .map_err(|e| Error::sys("start a thread", e))?;
        Ok(Some(Watch {
            stop: stop_wr,
            thread,
        }))
    }
}

/// A path in a directory the sandbox sees as it is on the host (the
/// deepest of `dirs` above it is bound from there), where a program
/// outside can replace it; not one of the sandbox's private home, whose
/// files are copies.
fn from_host(dirs: &[Grant], path: &Path) -> bool {
    dirs.iter()
        .filter(|d| d.path != path && path.starts_with(&d.path))
        .max_by_key(|d| d.path.components().count())
        .is_some_and(|d| {
            matches!(
                d.access,
                Access::ReadWrite | Access::ReadOnly | Access::Protected
            )
        })
}

pub struct Watch {
    stop: OwnedFd,
    thread: std::thread::JoinHandle<Vec<Outcome>>,
}

impl Watch {
    /// Stop watching; what was replaced meanwhile.
    pub fn stop(self) -> Vec<Outcome> {
        let _ = nix::unistd::write(&self.stop, b"x");
        self.thread.join().unwrap_or_default()
    }
}

/// Say what happened: in the log always, on the terminal when a secret was
/// left readable.
pub fn report(outcomes: &[Outcome]) {
    for o in outcomes {
        let path = o.path.display();
        match &o.failed {
            None => {
                tracing::info!(target: audit::TARGET, kind = "fs", action = "covered", path = %path, secret = o.secret, detail = "replaced on the host during the run; covered again in the sandbox");
            }
            Some(why) if o.ended => {
                tracing::info!(target: audit::TARGET, kind = "fs", action = "ended", path = %path, secret = o.secret, detail = %why);
                let (kept, use_) = if o.secret {
                    ("hidden from", "read")
                } else {
                    ("read-only in", "change")
                };
                eprintln!(
                    "guard: ended the session: {} could no longer be kept {kept} the sandbox ({why}); guard stopped every process in it rather than let one {use_} it",
                    host::printable(&o.path)
                );
            }
            Some(why) => {
                tracing::info!(target: audit::TARGET, kind = "fs", action = "uncovered", path = %path, secret = o.secret, detail = %why);
                if o.secret {
                    eprintln!(
                        "guard: WARNING: {} was replaced by another program during the run and could not be hidden again ({why}); from then on the sandbox could read it as it is, secrets included (change them if it held any)",
                        host::printable(&o.path)
                    );
                } else {
                    eprintln!(
                        "guard: WARNING: {} was replaced by another program during the run and could not be made read-only again ({why}); the check after the run looked at it",
                        host::printable(&o.path)
                    );
                }
            }
        }
    }
}

/// The names to watch in each directory: the name of each file in its
/// directory, and of each directory above it the host can replace under
/// the view (`rm -rf config && mkdir config`: the kernel detaches the
/// mounts below the old one, the sandbox sees the new one through the
/// directory above, and the file in it as it is). Each directory's watch
/// is on the directory there now: [`arm`] again once one is replaced.
type Names = HashMap<nix::sys::inotify::WatchDescriptor, HashMap<OsString, Vec<usize>>>;

/// The directory each watch is on, by the path it had when watched.
type WatchedDirs = HashMap<nix::sys::inotify::WatchDescriptor, PathBuf>;

/// Watch the way to every cover. A secret file whose way cannot be
/// watched (the user's inotify watches all taken: the sandbox may hold
/// half of them, see `host::sandbox_user_limits`) is `Err`: the host
/// could replace it unseen.
fn arm(
    inotify: &Inotify,
    covers: &[Covered],
    dirs: &[Grant],
) -> Result<(Names, WatchedDirs), (usize, String)> {
    // IN_MOVED_FROM, IN_DELETE: a new file (or directory on the way)
    // moved away or removed before it was covered, see `watch`.
    let mask = W::IN_CREATE
        | W::IN_MOVED_TO
        | W::IN_MOVED_FROM
        | W::IN_DELETE
        | W::IN_ONLYDIR
        | W::IN_DONT_FOLLOW;
    let mut names = Names::new();
    let mut paths = WatchedDirs::new();
    for (i, c) in covers.iter().enumerate() {
        let mut entry: &Path = &c.path;
        while from_host(dirs, entry) {
            let (Some(dir), Some(name)) = (entry.parent(), entry.file_name()) else {
                break;
            };
            match inotify.add_watch(dir, mask) {
                Ok(wd) => {
                    paths.entry(wd).or_insert_with(|| dir.to_path_buf());
                    names
                        .entry(wd)
                        .or_default()
                        .entry(name.to_os_string())
                        .or_default()
                        .push(i);
                }
                // Not there (yet): the watch above sees it come.
                Err(nix::Error::ENOENT | nix::Error::ENOTDIR) => {}
                Err(e @ (nix::Error::ENOSPC | nix::Error::ENOMEM)) if c.secret => {
                    return Err((
                        i,
                        format!(
                            "guard could not watch {} for replacements ({}: the user's inotify watches are all taken, fs.inotify.max_user_watches)",
                            host::printable(dir),
                            crate::error::os_text(&e.into())
                        ),
                    ));
                }
                Err(_) => {}
            }
            entry = dir;
        }
    }
    Ok((names, paths))
}

/// Why a secret file may have been moved out of guard's reach.
const MOVED_AWAY: &str = "it (or a directory on the way to it) was moved away or removed in the moment after the host made it anew, before guard could cover it: the sandbox may read it under another name";

fn watch(
    stop: &OwnedFd,
    inotify: &Inotify,
    covers: Vec<Covered>,
    dirs: &[Grant],
    mut keeper: Keeper,
    rules: &SharedRules,
) -> Vec<Outcome> {
    let mut wires = Tripwires::new();
    let files: Vec<(PathBuf, bool)> = covers.iter().map(|c| (c.path.clone(), c.secret)).collect();
    let mut out = watch_until_end(stop, inotify, covers, dirs, &mut keeper, &mut wires, rules);
    if let Some(t) = wires.tripped.take()
        && let Some((path, secret)) = files.get(t.cover)
    {
        out.push(Outcome {
            path: path.clone(),
            secret: *secret,
            failed: Some(t.why),
            ended: true,
        });
    }
    if out.iter().any(|o| o.ended) {
        wires.hold_until_gone(&mut keeper);
    }
    for i in wires.finish() {
        if let Some((path, secret)) = files.get(i) {
            out.push(Outcome {
                path: path.clone(),
                secret: *secret,
                failed: Some(
                    "its permissions were changed during the run through a way to it the sandbox kept from the moment before guard covered it again (guard set them back)"
                        .into(),
                ),
                ended: false,
            });
        }
    }
    out
}

fn watch_until_end(
    stop: &OwnedFd,
    inotify: &Inotify,
    mut covers: Vec<Covered>,
    dirs: &[Grant],
    keeper: &mut Keeper,
    wires: &mut Tripwires,
    rules: &SharedRules,
) -> Vec<Outcome> {
    use super::protect::{WATCH_AFTER, stopped_within};
    let mut out = Vec::new();
    if stopped_within(stop, WATCH_AFTER) {
        missed(&covers, &mut out);
        return out;
    }
    let (mut names, mut paths) = match arm(inotify, &covers, dirs) {
        Ok(armed) => armed,
        Err((i, why)) => {
            end_for(&covers[i], why, keeper, &mut out);
            return out;
        }
    };
    // Covers with a new entry on their way (the file, or a directory above
    // it) since their last cover: the sandbox can move such an entry (it
    // is no mount point yet), and the file with it, out of reach of the
    // cover. A move of one ends the session (the events say which name
    // moved, not where to), as does its removal or a second new entry
    // before its cover (see `entries`). `settling`: fresh ones the last
    // look saw, while events from before it were still queued; no longer
    // fresh after those, unless they made them fresh again.
    let mut fresh: HashSet<usize> = HashSet::new();
    let mut settling: Vec<usize>;
    // The entries (directory, name) made anew since their cover's last
    // cover: one removed or made anew again before it ends the session.
    let mut entries: HashSet<(nix::sys::inotify::WatchDescriptor, OsString)> = HashSet::new();
    // Watched before the first look: a file replaced after it is an event,
    // one replaced before (while the command started) is found by it.
    let mut due: Vec<usize> = (0..covers.len()).collect();
    let mut copies: Vec<PathBuf> = Vec::new();
    loop {
        due.sort_unstable();
        due.dedup();
        match look(
            &due,
            &mut covers,
            &mut fresh,
            dirs,
            keeper,
            wires,
            rules,
            &mut out,
        ) {
            Some(looked) => settling = looked,
            None => return out,
        }
        // Nothing happened to them between their events and the look.
        if !events_pending(inotify) {
            for i in settling.drain(..) {
                fresh.remove(&i);
            }
        }
        entries.retain(|(wd, name)| {
            names
                .get(wd)
                .and_then(|at| at.get(name))
                .is_some_and(|files| files.iter().any(|i| fresh.contains(i)))
        });
        if !hide_copies(&copies, keeper, &mut out) {
            return out;
        }
        if !events_or_wires(inotify, stop, keeper, wires) {
            break;
        }
        due.clear();
        copies.clear();
        let mut replaced_dir = false;
        let mut marked: HashSet<usize> = HashSet::new();
        let mut moved: Option<usize> = None;
        // Fresh secret files (or directories on the way) moved away: the
        // cover, the old path of what moved, the move's cookie; and where
        // each move in a watched directory went, by cookie.
        let mut left: Vec<(usize, PathBuf, u32)> = Vec::new();
        let mut arrived: HashMap<u32, PathBuf> = HashMap::new();
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                if e.mask.contains(W::IN_Q_OVERFLOW) {
                    due.extend(0..covers.len());
                    replaced_dir = true;
                    // A move among the events lost cannot be ruled out.
                    moved = moved.or(fresh.iter().copied().find(|&i| covers[i].secret));
                    continue;
                }
                let (Some(at), Some(name)) = (names.get(&e.wd), &e.name) else {
                    continue;
                };
                let away = e.mask.contains(W::IN_MOVED_FROM);
                let gone = e.mask.contains(W::IN_DELETE);
                if e.mask.contains(W::IN_MOVED_TO)
                    && let Some(dir) = paths.get(&e.wd)
                {
                    arrived.insert(e.cookie, dir.join(name));
                }
                if let Some(files) = at.get(name) {
                    let entry = (e.wd, name.clone());
                    let fresh_secret = files
                        .iter()
                        .copied()
                        .find(|i| covers[*i].secret && fresh.contains(i));
                    // The entry made anew here, removed or made anew
                    // again before its cover: the sandbox may have linked
                    // the host's file elsewhere first (`link .env stash`,
                    // then `unlink .env` or a decoy renamed over it),
                    // which no move event tells.
                    if entries.contains(&entry) && !away && fresh_secret.is_some() {
                        moved = moved.or(fresh_secret);
                        continue;
                    }
                    if gone {
                        continue;
                    }
                    if away {
                        let old = paths.get(&e.wd).map(|d| d.join(name));
                        for &i in files {
                            if covers[i].secret && fresh.contains(&i) {
                                match &old {
                                    Some(old) => left.push((i, old.clone(), e.cookie)),
                                    None => moved = moved.or(Some(i)),
                                }
                            }
                        }
                        continue;
                    }
                    entries.insert(entry);
                    fresh.extend(files);
                    marked.extend(files);
                    due.extend(files);
                    replaced_dir |= e.mask.contains(W::IN_ISDIR);
                    continue;
                }
                if away || gone {
                    continue;
                }
                // An editor's copy of a secret file, next to it.
                let copied = editor_copy_of(name.as_bytes())
                    .into_iter()
                    .find_map(|base| {
                        let base = std::ffi::OsStr::from_bytes(base);
                        at.get(base)?
                            .iter()
                            .map(|&i| &covers[i])
                            .find(|c| c.secret && c.path.file_name() == Some(base))
                    });
                if let Some(dir) = copied.and_then(|c| c.path.parent()) {
                    copies.push(dir.join(name));
                }
            }
        }
        moved = moved.or(left
            .iter()
            .find(|(i, old, cookie)| carried_away(&covers[*i], old, arrived.get(cookie)))
            .map(|(i, _, _)| *i));
        if let Some(i) = moved {
            end_for(&covers[i], MOVED_AWAY.into(), keeper, &mut out);
            return out;
        }
        for i in settling.drain(..) {
            if !marked.contains(&i) {
                fresh.remove(&i);
            }
        }
        if replaced_dir {
            let (now, now_paths) = match arm(inotify, &covers, dirs) {
                Ok(armed) => armed,
                Err((i, why)) => {
                    end_for(&covers[i], why, keeper, &mut out);
                    return out;
                }
            };
            for wd in names.keys().filter(|wd| !now.contains_key(wd)) {
                let _ = inotify.rm_watch(*wd);
            }
            names = now;
            paths = now_paths;
        }
    }
    missed(&covers, &mut out);
    out
}

/// Wait for `inotify` to have events, tending `wires` meanwhile; `false`
/// once `stop` is readable, or the session ended for one of `wires`.
fn events_or_wires(
    inotify: &Inotify,
    stop: &OwnedFd,
    keeper: &mut Keeper,
    wires: &mut Tripwires,
) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    loop {
        let (signals, tick) = wires.wait();
        let mut fds = vec![
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(signals.map(|s| PollFd::new(s, PollFlags::POLLIN)));
        let timeout = tick.map_or(PollTimeout::NONE, |t| {
            PollTimeout::from(u16::try_from(t.as_millis()).unwrap_or(u16::MAX))
        });
        let ready = match poll(&mut fds, timeout) {
            Err(nix::Error::EINTR) => continue,
            Err(_) => return false,
            Ok(n) => n,
        };
        let seen = |i: usize| {
            fds.get(i)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty())
        };
        if seen(1) {
            return false;
        }
        let events = seen(0);
        if ready == 0 || seen(2) || events {
            drop(fds);
            if wires.tend(keeper) {
                return false;
            }
        }
        if events {
            return true;
        }
    }
}

/// Whether `inotify` has events to read now.
fn events_pending(inotify: &Inotify) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

/// The fresh secret file `c` (see `watch`), or a directory on the way to
/// it, left `old` before its cover: whether the file may now be under
/// another name the sandbox reads. Moved within the watched directories
/// (`to`): when the file is there, yes; when it is not while what moved
/// is, no (nothing was in it yet: `mv config/app config/kept` of a
/// directory the host made anew, before the file came). Moved on since,
/// or out of sight: yes.
fn carried_away(c: &Covered, old: &Path, to: Option<&PathBuf>) -> bool {
    let (Some(to), Ok(rest)) = (to, c.path.strip_prefix(old)) else {
        return true;
    };
    let now = if rest.as_os_str().is_empty() {
        to.clone()
    } else {
        to.join(rest)
    };
    std::fs::symlink_metadata(&now).is_ok() || std::fs::symlink_metadata(to).is_err()
}

/// The names of the files `name` may be an editor's copy of: while the
/// user edits a secret file on the host, the copy holds what the file
/// does (vim's and nano's swap `.X.swp`, or `X.swp` for a dot file, vim's
/// backup `X~`, emacs's `#X#` and `.#X`, nano's `X.save`, JetBrains'
/// `X___jb_tmp___` and `X___jb_old___`).
fn editor_copy_of(name: &[u8]) -> Vec<&[u8]> {
    let mut of = Vec::new();
    if let Some(x) = name.strip_prefix(b"#").and_then(|n| n.strip_suffix(b"#")) {
        of.push(x);
    }
    if let Some(x) = name.strip_prefix(b".#") {
        of.push(x);
    }
    for suffix in [&b"~"[..], b".save", b"___jb_tmp___", b"___jb_old___"] {
        if let Some(x) = name.strip_suffix(suffix) {
            of.push(x);
        }
    }
    // `.sw` and one letter: vim takes the next free one (`.swo`, …).
    if let Some(stem) = name
        .len()
        .checked_sub(4)
        .filter(|&n| name[n..n + 3] == *b".sw")
        .map(|n| &name[..n])
    {
        of.push(stem);
        if let Some(x) = stem.strip_prefix(b".") {
            of.push(x);
        }
    }
    of.retain(|x| !x.is_empty());
    of
}

/// Hide editors' copies of secret files (see [`editor_copy_of`]) made
/// during the run; `false` once the sandbox has ended.
fn hide_copies(copies: &[PathBuf], keeper: &mut Keeper, out: &mut Vec<Outcome>) -> bool {
    for path in copies {
        // Gone again, or a link (emacs's lock `.#X` holds no content).
        if !nix::sys::stat::lstat(path.as_path())
            .is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFLNK)
        {
            continue;
        }
        let held = host::open_no_links(path, nix::fcntl::OFlag::O_PATH);
        let failed = match keeper.cover(path, Cover::Hide) {
            Ok(()) => None,
            Err(Uncovered::Gone) => return false,
            // Removed again meanwhile (vim's swap file of a short edit):
            // nothing to read, nothing to say.
            Err(Uncovered::Failed(_)) if !still_there(&held) => continue,
            Err(Uncovered::Failed(why)) => Some(why),
        };
        let failed = match (failed, &held) {
            (None, Ok(held)) => reachable(held, true, keeper, None),
            (failed, _) => failed,
        };
        let ended = failed.is_some() && still_there(&held);
        out.push(Outcome {
            path: path.clone(),
            secret: true,
            failed,
            ended,
        });
        if ended {
            keeper.end();
            return false;
        }
    }
    true
}

/// The file a descriptor was opened on still has a name somewhere (not
/// removed since): a cover that failed on it left it readable. Without a
/// descriptor (the open failed: a link on the way, say), only a file
/// found missing is known to be gone.
fn still_there(held: &std::io::Result<OwnedFd>) -> bool {
    match held {
        Ok(fd) => nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_nlink > 0),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// A directory on the way to `c` (as [`arm`] walks it) that is no longer
/// a directory: a link the sandbox put in place of one (it writes the
/// project). What the host writes at the file's path next lands where the
/// link leads, a file no cover is on and no watch sees; and the path the
/// cover is asked for no longer names the file.
fn redirected(c: &Covered, dirs: &[Grant]) -> Option<PathBuf> {
    let mut entry: &Path = &c.path;
    while from_host(dirs, entry) {
        let dir = entry.parent()?;
        if nix::sys::stat::lstat(dir).is_ok_and(|st| st.st_mode & libc::S_IFMT != libc::S_IFDIR) {
            return Some(dir.to_path_buf());
        }
        entry = dir;
    }
    None
}

/// End the sandbox for the file `c`, which cannot be kept covered
/// (`why`): the moment before a cover is all a sandbox may read of a
/// replaced secret file (or write of a protected one), never the rest of
/// the run.
fn end_for(c: &Covered, why: String, keeper: &mut Keeper, out: &mut Vec<Outcome>) {
    keeper.end();
    out.push(Outcome {
        path: c.path.clone(),
        secret: c.secret,
        failed: Some(why),
        ended: true,
    });
}

/// How to cover the file at `path` now.
fn cover_for(path: &Path, how: How, rules: &SharedRules) -> Cover {
    use crate::secrets::redact::{Outcome, prepare};
    match (how, &rules.0) {
        (How::ReadOnly, _) => Cover::ReadOnly,
        (How::Redact, Some(rules)) => match prepare(path, rules) {
            Ok(Outcome::Redact(r)) => Cover::Redacted {
                content: r.content,
                mode: r.mode,
            },
            // No secret left: shown as it is, still read-only (it was
            // redacted: writes to it failed, and still do).
            Ok(Outcome::Clean) => Cover::ReadOnly,
            Ok(Outcome::Hide(_)) | Err(_) => Cover::Hide,
        },
        (How::Hide | How::Redact, _) => Cover::Hide,
    }
}

/// Cover again each of `due` that is another file than the one covered;
/// `None` once the sandbox has ended, else the fresh ones (see `watch`)
/// looked at.
#[allow(clippy::too_many_arguments)]
fn look(
    due: &[usize],
    covers: &mut [Covered],
    fresh: &mut HashSet<usize>,
    dirs: &[Grant],
    keeper: &mut Keeper,
    wires: &mut Tripwires,
    rules: &SharedRules,
    out: &mut Vec<Outcome>,
) -> Option<Vec<usize>> {
    let mut settle = Vec::new();
    for &i in due {
        if wires.tripped.is_some() {
            return None;
        }
        let c = &mut covers[i];
        if c.secret
            && let Some(link) = redirected(c, dirs)
        {
            let why = format!(
                "{} on the way to it was replaced by a link, which would take what the host writes there next out of guard's cover",
                host::printable(&link)
            );
            end_for(c, why, keeper, out);
            return None;
        }
        // Fresh until the events queued meanwhile are read: what happened
        // before this look (a move, or a decoy renamed over the file
        // after the sandbox linked it elsewhere) is queued already.
        if fresh.contains(&i) {
            settle.push(i);
        }
        let Some(now) = id(&c.path) else {
            continue; // gone, or moved: the events say which
        };
        if now == c.id {
            continue;
        }
        // The file found, held: if the cover fails (a directory on the
        // way renamed or swapped for a link in the meantime), whether it
        // is still somewhere the sandbox may read; once covered, whether
        // the sandbox took a way to it in the moment before.
        let held = host::open_no_links(&c.path, nix::fcntl::OFlag::O_PATH);
        // A file guard keeps a lease on, moved here (`mv .env.local
        // .env`): covering it reads it (a redaction), which would break
        // guard's own lease. The checks below take one anew.
        wires.forget(now.0, now.1);
        let failed = match keeper.cover(&c.path, cover_for(&c.path, c.how, rules)) {
            Ok(()) => {
                c.id = now;
                None
            }
            Err(Uncovered::Gone) => return None,
            Err(Uncovered::Failed(why)) => Some(why),
        };
        let still = match (&failed, &held) {
            (None, Ok(held)) => reachable(held, c.secret, keeper, Some((wires, i))),
            // Covered, but not to be checked (guard's descriptors all
            // taken, say): a way the sandbox took would go unseen.
            (None, Err(e)) if c.secret && e.kind() != std::io::ErrorKind::NotFound => {
                Some(format!(
                    "guard could not open it to check for a way the sandbox took to it in the moment before the cover ({})",
                    crate::error::os_text(e)
                ))
            }
            _ => None,
        };
        match failed {
            Some(why) if c.secret && still_there(&held) => {
                end_for(c, why, keeper, out);
                return None;
            }
            None if still.is_some() => {
                end_for(c, still.unwrap_or_default(), keeper, out);
                return None;
            }
            failed => out.push(Outcome {
                path: c.path.clone(),
                secret: c.secret,
                failed,
                ended: false,
            }),
        }
    }
    Some(settle)
}

/// How long a program other than the sandbox may keep a replaced file
/// open once it is covered again: the host's `cp` or editor writing it
/// (they close it at once). Past that, see [`reachable`].
const WRITERS_CLOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The file `held` was covered again: how the sandbox may still reach it,
/// from the moment before the cover (when the host had made it anew and
/// nothing covered it), for the rest of the run. A descriptor a process
/// of the sandbox opened then (the host's `cp` or `sed -i` writes the
/// secret after; `O_PATH` ones can be opened again through /proc), or a
/// hard link it made to it. For a protected file (`secret` false), what
/// it could write through: reading one is no harm (the sandbox's own git
/// reads `.git/config` all the time). Also any other open
/// of it (one the sandbox holds in flight in a socket is in no process's
/// table) that outlasts [`WRITERS_CLOSE_WITHIN`], when `keep` gives the
/// leases kept for the rest of the run, and the cover the file is under:
/// the lease that tells is kept there (see `tripwire`). Not for editors'
/// copies, which the editor holds open while the user edits.
fn reachable(
    held: &OwnedFd,
    secret: bool,
    keeper: &mut Keeper,
    keep: Option<(&mut Tripwires, usize)>,
) -> Option<String> {
    let st = nix::sys::stat::fstat(held).ok()?;
    // A directory made anew: a process that entered it (its working
    // directory) or opened it in that moment reaches what is put in it
    // later, below the cover, and a descriptor of it in flight is seen by
    // nothing. Rare on the host (`rm -rf .git/hooks && mkdir .git/hooks`).
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Some(
            "a directory made anew: a process of the sandbox that entered or opened it in the moment before guard covered it again would reach what is put in it later"
                .into(),
        );
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    if keeper.held_inside(st.st_dev, st.st_ino, !secret) {
        return Some(
            "a process in the sandbox opened it in the moment before guard covered it again, and holds it open"
                .into(),
        );
    }
    let mut lease = None;
    let mut keep = keep;
    if let Some((wires, _)) = &mut keep
        && !wires.holds(st.st_dev, st.st_ino)
    {
        match open_elsewhere(held, secret, keeper, wires) {
            Lease::Open => {
                return Some(format!(
                    "a program still held it open after guard covered it again, and none of the host's: it may be one the sandbox passed over a socket, which could {} it through that",
                    if secret { "read" } else { "write" }
                ));
            }
            Lease::Taken(file) => lease = Some(file),
            Lease::Unavailable => {}
        }
    }
    let st = nix::sys::stat::fstat(held).ok()?;
    if st.st_nlink > 1 {
        return Some(format!(
            "it has {} names: a hard link to it was made in the moment before guard covered it again",
            st.st_nlink
        ));
    }
    if let (Some((wires, cover)), Some(file)) = (keep, lease) {
        wires.keep(cover, file, lease_kind(secret));
    }
    None
}

/// The lease that tells of an open the sandbox could misuse: of any open
/// for a secret file (it could read it), of one for writing for a
/// protected one (reading it is no harm).
fn lease_kind(secret: bool) -> libc::c_int {
    if secret { libc::F_WRLCK } else { libc::F_RDLCK }
}

/// What [`open_elsewhere`] found.
enum Lease {
    /// Open elsewhere still.
    Open,
    /// Open nowhere else: the lease on it, held (see `tripwire`).
    Taken(std::fs::File),
    /// Leases cannot be taken (a file of another owner, a filesystem
    /// without them).
    Unavailable,
}

/// How long [`open_elsewhere`] waits for a program outside the sandbox
/// that still writes a file it made anew.
const HOST_WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether the file `held` is open anywhere else (for a protected file,
/// not `secret`: open for writing), read, written, mapped, or in flight in
/// a socket, still after [`WRITERS_CLOSE_WITHIN`]. The kernel grants a
/// write lease only on a file no other open file description is on, a
/// read lease only on one none is writing. When leases cannot be taken,
/// the descriptor scan of [`reachable`] stands alone. `wires` are tended
/// meanwhile (a program waiting on one of them waits for guard).
fn open_elsewhere(
    held: &OwnedFd,
    secret: bool,
    keeper: &mut Keeper,
    wires: &mut Tripwires,
) -> Lease {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{}", held.as_raw_fd()))
    else {
        return Lease::Unavailable;
    };
    let fd = file.as_raw_fd();
    // Should a program open the file in the moment the lease is held, the
    // kernel signals the holder: SIGURG, ignored unless handled (SIGIO,
    // the default, would end guard).
    // SAFETY: fcntl on a descriptor this function owns; F_SETSIG takes a
    // signal number.
    if unsafe { libc::fcntl(fd, F_SETSIG, libc::SIGURG) } != 0 {
        return Lease::Unavailable;
    }
    let start = std::time::Instant::now();
    let mut deadline = start + WRITERS_CLOSE_WITHIN;
    loop {
        // SAFETY: as above; F_SETLEASE takes a lease type.
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, lease_kind(secret)) } == 0 {
            return Lease::Taken(file);
        }
        if nix::errno::Errno::last() != nix::errno::Errno::EAGAIN {
            return Lease::Unavailable;
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            // A program of the host's still writing it (`slow-cli > .env`):
            // wait for it, up to HOST_WRITER_WAIT; then any open left
            // (one the sandbox holds in flight) counts as above.
            let writing = now < start + HOST_WRITER_WAIT
                && nix::sys::stat::fstat(held)
                    .is_ok_and(|st| keeper.held_outside(st.st_dev, st.st_ino));
            if !writing {
                return Lease::Open;
            }
            deadline = now + std::time::Duration::from_millis(250);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        if wires.tend(keeper) {
            return Lease::Unavailable; // the sandbox is ending
        }
    }
}

/// Files replaced that the watch did not cover (it could not watch their
/// directory, or the run was over before it started): the sandbox may have
/// read them as they are.
fn missed(covers: &[Covered], out: &mut Vec<Outcome>) {
    for c in covers {
        let Some(now) = id(&c.path) else {
            continue;
        };
        if now != c.id && !out.iter().any(|o| o.path == c.path && o.failed.is_some()) {
            out.push(Outcome {
                path: c.path.clone(),
                secret: c.secret,
                failed: Some("guard did not see it replaced in time".into()),
                ended: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::editor_copy_of;

    #[test]
    fn editors_copies_are_told_by_name() {
        let of = |n: &str| -> Vec<String> {
            editor_copy_of(n.as_bytes())
                .into_iter()
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect()
        };
        assert!(of(".settings.py.swp").contains(&"settings.py".into()));
        assert!(of(".env.swo").contains(&".env".into()));
        assert!(of("..env.swp").contains(&".env".into()));
        for (copy, of_name) in [
            (".env~", ".env"),
            ("#.env#", ".env"),
            (".#.env", ".env"),
            (".env.save", ".env"),
            ("app.yml___jb_tmp___", "app.yml"),
        ] {
            assert!(of(copy).contains(&of_name.into()), "{copy}");
        }
        for name in [
            ".env",
            ".env.local",
            ".env.example",
            "swp",
            ".swp",
            "~",
            "##",
        ] {
            assert!(!of(name).contains(&".env".into()), "{name}: {:?}", of(name));
        }
    }
}
