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

use crate::audit;
use crate::host;
use crate::policy::{Access, Grant, GrantKind, Policy};
use crate::profile::Isolation;
use crate::sandbox::{Cover, Keeper, Uncovered};
use crate::secrets::SharedRules;
use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify};
use std::collections::HashMap;
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
    /// sandbox's) covers what is replaced.
    pub fn watch_with(self, keeper: Option<Keeper>) -> Option<Watch> {
        let keeper = keeper?;
        if self.files.is_empty() {
            return None;
        }
        let (stop_rd, stop_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        let Covers { files, dirs, rules } = self;
        let thread = std::thread::Builder::new()
            .name("guard-covers".into())
            .spawn(move || {
                let covers = files
                    .into_iter()
                    .filter(|c| from_host(&dirs, &c.path))
                    .collect();
                watch(&stop_rd, covers, &dirs, keeper, &rules)
            })
            .ok()?;
        Some(Watch {
            stop: stop_wr,
            thread,
        })
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
                eprintln!(
                    "guard: ended the session: {} could no longer be kept hidden from the sandbox ({why}); guard stopped every process in it rather than let one read it",
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

fn arm(inotify: &Inotify, covers: &[Covered], dirs: &[Grant]) -> Names {
    let mask = W::IN_CREATE | W::IN_MOVED_TO | W::IN_ONLYDIR | W::IN_DONT_FOLLOW;
    let mut names = Names::new();
    for (i, c) in covers.iter().enumerate() {
        let mut entry: &Path = &c.path;
        while from_host(dirs, entry) {
            let (Some(dir), Some(name)) = (entry.parent(), entry.file_name()) else {
                break;
            };
            if let Ok(wd) = inotify.add_watch(dir, mask) {
                names
                    .entry(wd)
                    .or_default()
                    .entry(name.to_os_string())
                    .or_default()
                    .push(i);
            }
            entry = dir;
        }
    }
    names
}

fn watch(
    stop: &OwnedFd,
    mut covers: Vec<Covered>,
    dirs: &[Grant],
    mut keeper: Keeper,
    rules: &SharedRules,
) -> Vec<Outcome> {
    use super::protect::{WATCH_AFTER, events_until_stopped, stopped_within};
    let mut out = Vec::new();
    if stopped_within(stop, WATCH_AFTER) {
        missed(&covers, &mut out);
        return out;
    }
    let Ok(inotify) = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK) else {
        missed(&covers, &mut out);
        return out;
    };
    let mut names = arm(&inotify, &covers, dirs);
    // Watched before the first look: a file replaced after it is an event,
    // one replaced before (while the command started) is found by it.
    let all: Vec<usize> = (0..covers.len()).collect();
    let mut ended = !look(&all, &mut covers, dirs, &mut keeper, rules, &mut out);
    while !ended && events_until_stopped(&inotify, stop) {
        let mut due = Vec::new();
        let mut copies: Vec<PathBuf> = Vec::new();
        let mut replaced_dir = false;
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                if e.mask.contains(W::IN_Q_OVERFLOW) {
                    due.extend(0..covers.len());
                    replaced_dir = true;
                    continue;
                }
                let (Some(at), Some(name)) = (names.get(&e.wd), &e.name) else {
                    continue;
                };
                if let Some(files) = at.get(name) {
                    due.extend(files);
                    replaced_dir |= e.mask.contains(W::IN_ISDIR);
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
        if replaced_dir {
            let now = arm(&inotify, &covers, dirs);
            for wd in names.keys().filter(|wd| !now.contains_key(wd)) {
                let _ = inotify.rm_watch(*wd);
            }
            names = now;
        }
        due.sort_unstable();
        due.dedup();
        ended = !look(&due, &mut covers, dirs, &mut keeper, rules, &mut out)
            || !hide_copies(&copies, &mut keeper, &mut out);
    }
    if !ended {
        missed(&covers, &mut out);
    }
    out
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
        let held = host::open_no_links(path, nix::fcntl::OFlag::O_PATH).ok();
        let failed = match keeper.cover(path, Cover::Hide) {
            Ok(()) => None,
            Err(Uncovered::Gone) => return false,
            Err(Uncovered::Failed(why)) => Some(why),
        };
        let ended = failed.is_some() && still_there(held.as_ref());
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
/// removed since): a cover that failed on it left it readable.
fn still_there(held: Option<&OwnedFd>) -> bool {
    held.is_none_or(|fd| nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_nlink > 0))
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

/// End the sandbox for the secret file `c`, which cannot be kept covered
/// (`why`): the moment before a cover is all a sandbox may read of a
/// replaced file, never the rest of the run.
fn end_for(c: &Covered, why: String, keeper: &mut Keeper, out: &mut Vec<Outcome>) {
    keeper.end();
    out.push(Outcome {
        path: c.path.clone(),
        secret: true,
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
/// `false` once the sandbox has ended.
fn look(
    due: &[usize],
    covers: &mut [Covered],
    dirs: &[Grant],
    keeper: &mut Keeper,
    rules: &SharedRules,
    out: &mut Vec<Outcome>,
) -> bool {
    for &i in due {
        let c = &mut covers[i];
        if c.secret
            && let Some(link) = redirected(c, dirs)
        {
            let why = format!(
                "{} on the way to it was replaced by a link, which would take what the host writes there next out of guard's cover",
                host::printable(&link)
            );
            end_for(c, why, keeper, out);
            return false;
        }
        let Some(now) = id(&c.path) else {
            continue; // gone: nothing to read there
        };
        if now == c.id {
            continue;
        }
        // The file found, held: if the cover fails (a directory on the
        // way renamed or swapped for a link in the meantime), whether it
        // is still somewhere the sandbox may read.
        let held = host::open_no_links(&c.path, nix::fcntl::OFlag::O_PATH).ok();
        let failed = match keeper.cover(&c.path, cover_for(&c.path, c.how, rules)) {
            Ok(()) => {
                c.id = now;
                None
            }
            Err(Uncovered::Gone) => return false,
            Err(Uncovered::Failed(why)) => Some(why),
        };
        match failed {
            Some(why) if c.secret && still_there(held.as_ref()) => {
                end_for(c, why, keeper, out);
                return false;
            }
            failed => out.push(Outcome {
                path: c.path.clone(),
                secret: c.secret,
                failed,
                ended: false,
            }),
        }
    }
    true
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
