//! Persistent agent homes: what they take from the real home.
//!
//! An agent profile keeps a private home across runs (`[home] persist`),
//! one per project (`homes/PROFILE@PROJECT`): what a session leaves there
//! (transcripts of everything it read, hooks, MCP servers, commands the
//! agent runs at start) never reaches the agent's sessions in other
//! projects. Only the login is the agent's, one for all (see
//! [`share_logins`]).
//!
//! A home starts as a copy of the agent's own state in the real home
//! (`[home] import`), made once, when the home is created, and
//! - without what sessions run outside guard left there (`not_imported`:
//!   transcripts, prompt history, shell snapshots — whatever an earlier,
//!   unsandboxed agent read, a `.env` included, is in them);
//! - with the secret rules applied to every other file as the scan applies
//!   them in place: one they flag is redacted, or left out when mostly
//!   secret; binary data the scan does not search is copied as it is (a
//!   plugin's git pack, an image), a database holding a secret is left
//!   out, and so are files over the scan's size limit (nothing vouches for
//!   them);
//! - except the agent's login (`[home] login`), copied as it is: the agent
//!   cannot work without it. A login file is copied again whenever it
//!   changes in the real home and is newer there, so logging in outside
//!   guard (after the home was made, or again when a token expired)
//!   reaches the next run; a login the sandbox refreshed or removed itself
//!   stays as it left it while the real home's copy does not change.
//!   Only a login file found where its directory is: one a link below
//!   that directory leads to gets the rules of the rest (a dotfiles
//!   repository holding it may be some sandbox's project);
//! - and the agent's settings files that hold its key beside other
//!   services' secrets (`[home] settings`: `~/.claude.json` and the tokens
//!   of its MCP servers) follow the host's copy like login files, with
//!   every secret redacted but the agent's own (`own_keys`, `[env] pass`).
//!
//! Every file is judged at the path it was read from as well as where the
//! user sees it (a link to `~/.kube/config` is a kubeconfig), and guard's
//! own directories are never imported.
//!
//! The home is the sandbox's to write, and earlier sessions may have left
//! anything in it: every write here goes through directory descriptors
//! opened without following links, into a new file renamed over the old,
//! so nothing found there can lead a copy elsewhere.

use crate::error::{Error, Result};
use crate::host;
use crate::profile;
use crate::secrets::path_rules::When;
use crate::secrets::{Copy, MAX_FILE_SIZE, Rules};
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Largest login file copied (they are a few KiB).
const MAX_LOGIN_FILE: u64 = 8 << 20;

/// The profile's persistent home, made and refreshed; `None` for a
/// profile without one.
pub fn prepare(
    loaded: &profile::Loaded,
    real_home: &Path,
    project: &Path,
    rules: &Rules,
    quiet: bool,
) -> Result<Option<PathBuf>> {
    if loaded.profile.home.persist != Some(true) {
        return Ok(None);
    }
    let base = host::data_dir().ok_or_else(|| {
        Error::usage_hint(
            "cannot locate a data directory for the persistent home",
            "set HOME or XDG_DATA_HOME",
        )
    })?;
    let name = super::safe_name(&loaded.name);
    let homes = base.join("homes");
    let dir = homes.join(format!("{name}@{}", super::project_key(project)));
    let paths = Paths::new(&loaded.profile, real_home);
    let mut problems = Vec::new();
    if !dir.is_dir() {
        problems = first_import(&paths, rules, &dir)?;
    }
    // The host versions this home has seen (each home its own: a login
    // changed on the host reaches every project's, at its next start).
    let record = base.join("logins").join(format!(
        "{}.json",
        dir.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    problems.extend(refresh_logins(&paths, rules, &dir, &record));
    problems.extend(share_logins(&paths, &homes, &name, &dir));
    for problem in problems {
        if !quiet {
            eprintln!("guard: WARNING: {problem}");
        }
    }
    Ok(Some(dir))
}

/// The profile's `[home]` paths in the real home.
struct Paths<'h> {
    real_home: &'h Path,
    import: Vec<PathBuf>,
    /// Login and settings files: copied again when they change.
    login: Vec<PathBuf>,
    settings: Vec<PathBuf>,
    /// Names whose values in settings files are the agent's own: the
    /// profile's `own_keys` and the variables it passes (a trailing `*`
    /// matches a prefix).
    own: Vec<String>,
    not_imported: Vec<PathBuf>,
    real_canonical: Option<PathBuf>,
    /// guard's own directories: an import of `~/.local/share` or `~/.cache`
    /// would copy every profile's persistent home (what other sessions left
    /// there), and the new home into itself until the path grew too long.
    guards: Vec<PathBuf>,
}

impl<'h> Paths<'h> {
    fn new(profile: &profile::Profile, real_home: &'h Path) -> Paths<'h> {
        let home = &profile.home;
        let expand = |list: &[String]| -> Vec<PathBuf> {
            list.iter()
                .filter_map(|raw| profile::expand_path(raw, real_home, real_home))
                .filter(|p| p.starts_with(real_home) && p != real_home)
                .collect()
        };
        Paths {
            real_home,
            import: expand(&home.import),
            login: expand(&home.login)
                .into_iter()
                .chain(expand(&home.settings))
                .collect(),
            settings: expand(&home.settings),
            own: home
                .own_keys
                .iter()
                .chain(profile.env.pass.iter().filter(|n| *n != "*"))
                .cloned()
                .collect(),
            not_imported: expand(&home.not_imported),
            real_canonical: std::fs::canonicalize(real_home).ok(),
            guards: [
                host::data_dir(),
                host::state_dir(),
                host::cache_dir(),
                host::config_dir(),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }

    /// Where the login file at `src` is when no link below the login's own
    /// directory leads elsewhere: links above it are the user's (a whole
    /// agent directory kept in a dotfiles repository), but what is below may
    /// be a directory some sandbox can write (that repository, opened as a
    /// project), and a link planted there would have guard, on the host,
    /// copy any file of the user into the home untouched
    /// (`login.json -> ~/.ssh/id_ed25519`).
    fn login_in_place(&self, src: &Path) -> Option<PathBuf> {
        let login = self.login.iter().find(|l| src.starts_with(l))?;
        let dir = login.parent()?;
        Some(
            std::fs::canonicalize(dir)
                .ok()?
                .join(src.strip_prefix(dir).ok()?),
        )
    }

    /// `path` (a path with no links, as the kernel gives it) as the real
    /// home names it, when the home is reached through a link itself.
    fn seen_as(&self, path: &Path) -> PathBuf {
        match (&self.real_canonical, path) {
            (Some(c), p) if p.starts_with(c) && c != self.real_home => {
                self.real_home.join(p.strip_prefix(c).unwrap_or(p))
            }
            _ => path.to_path_buf(),
        }
    }

    fn is_guards(&self, path: &Path) -> bool {
        self.guards.iter().any(|g| path.starts_with(g))
    }

    fn is_login(&self, path: &Path) -> bool {
        self.login.iter().any(|l| path.starts_with(l))
    }

    fn is_settings(&self, path: &Path) -> bool {
        self.settings.iter().any(|l| path.starts_with(l))
    }

    fn is_own(&self, name: &str) -> bool {
        self.own.iter().any(|o| match o.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == o,
        })
    }

    fn is_left_out(&self, path: &Path) -> bool {
        self.is_guards(path)
            || self.not_imported.iter().any(|n| path.starts_with(n)) && !self.is_login(path)
    }

    fn rel<'p>(&self, path: &'p Path) -> &'p Path {
        path.strip_prefix(self.real_home).unwrap_or(path)
    }
}

/// Make the home in a directory of its own, then move it in place: an
/// interrupted import leaves no half home behind. A file that cannot be
/// placed is left out with a warning (returned): made again at every
/// start, one odd file would stop every run of the agent.
fn first_import(paths: &Paths<'_>, rules: &Rules, dir: &Path) -> Result<Vec<String>> {
    // Not a name a profile's homes have (`NAME@PROJECT`, `NAME`): never
    // taken for one by [`share_logins`].
    let tmp = dir.with_file_name(format!(".importing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| Error::io("chmod", &tmp, e))?;
    let mut scratch = Vec::new();
    let mut problems = Vec::new();
    for src in paths.import.iter().chain(&paths.login) {
        let imported = import_tree(paths, rules, src, &tmp, true, &mut scratch, &mut problems);
        if let Err(e) = imported {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another guard starting the same profile made it first.
        if !dir.is_dir() {
            return Err(Error::io("create", dir, e));
        }
    }
    Ok(problems)
}

/// Copy `src` (a file or directory of the real home) into the new home.
/// A `top` path (one the profile names) that is a link to a directory is
/// that directory (`~/.claude -> dotfiles/claude`, as stow leaves it):
/// copied as a link, it left nowhere for the login files below it.
fn import_tree(
    paths: &Paths<'_>,
    rules: &Rules,
    src: &Path,
    home: &Path,
    top: bool,
    scratch: &mut Vec<usize>,
    problems: &mut Vec<String>,
) -> Result<()> {
    if paths.is_left_out(src) {
        return Ok(());
    }
    let Ok(meta) = std::fs::symlink_metadata(src) else {
        return Ok(());
    };
    let rel = paths.rel(src);
    let mut failed = |e: std::io::Error| {
        problems.push(format!(
            "{} was not imported into the persistent home: {}",
            host::printable(src),
            crate::error::os_text(&e)
        ));
    };
    let followed = if top {
        std::fs::metadata(src).ok()
    } else {
        None
    };
    if meta.is_dir() || followed.is_some_and(|m| m.is_dir()) {
        if host::make_dirs_beneath(home, rel).is_none() {
            failed(std::io::Error::other(
                "a directory on the way is a link or not a directory",
            ));
            return Ok(());
        }
        let Ok(entries) = std::fs::read_dir(src) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            import_tree(paths, rules, &entry.path(), home, false, scratch, problems)?;
        }
        return Ok(());
    }
    // A link to a file (dotfiles kept in a repository) is imported as that
    // file; any other link as the link it is.
    let target = std::fs::metadata(src).ok().filter(|m| m.is_file());
    if meta.file_type().is_symlink() && target.is_none() {
        let Ok(to) = std::fs::read_link(src) else {
            return Ok(());
        };
        if let Err(e) = place(home, rel, Content::Link(&to)) {
            failed(e);
        }
        return Ok(());
    }
    let Some(target) = target else {
        return Ok(()); // a fifo, socket or device
    };
    let mode = target.mode() & 0o777;
    if let Some(buf) = content(paths, rules, src, scratch)?
        && let Err(e) = place(home, rel, Content::File(&buf, mode, mtime(&target)))
    {
        failed(e);
    }
    Ok(())
}

/// What of the file at `src` goes into the home: a login file as it is,
/// a settings file with the secrets of other services redacted, anything
/// else as [`scanned`] decides.
fn content(
    paths: &Paths<'_>,
    rules: &Rules,
    src: &Path,
    scratch: &mut Vec<usize>,
) -> Result<Option<Vec<u8>>> {
    let max = if paths.is_login(src) {
        MAX_LOGIN_FILE
    } else {
        MAX_FILE_SIZE
    };
    let Some((buf, read)) = host::read_small_followed_where(src, max) else {
        return Ok(None); // unreadable, too large, or not a regular file
    };
    if paths.login_in_place(src).is_some_and(|at| at == read) {
        if paths.is_settings(src) {
            return crate::secrets::settings_copy(rules, &buf, &|name| paths.is_own(name));
        }
        return Ok(Some(buf));
    }
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Ok(None);
    }
    scanned(paths, rules, src, &paths.seen_as(&read), buf, scratch)
}

/// What of the file at `src`, read at `read` (its own path, or where the
/// links on the way led), may go into the home: the text, the text
/// redacted, or nothing. The same rules as the scan of the home at the
/// start of a run, on the path below the home and on the path read
/// (`cluster.yaml -> ~/.kube/config` is a kubeconfig).
fn scanned(
    paths: &Paths<'_>,
    rules: &Rules,
    src: &Path,
    read: &Path,
    buf: Vec<u8>,
    scratch: &mut Vec<usize>,
) -> Result<Option<Vec<u8>>> {
    let rel = paths.rel(src);
    let target = (read != src).then_some(read);
    if target.is_some_and(|t| paths.is_left_out(t)) {
        return Ok(None);
    }
    let target_rel = target.map(|t| {
        t.strip_prefix(paths.real_home)
            .or_else(|_| t.strip_prefix("/"))
            .unwrap_or(t)
    });
    // A scope exempts a file where the user sees it, and where it is.
    let exempt =
        |r: &Path, abs: &Path| rules.ignore.is_match(r, abs) || rules.skip.is_match(r, abs);
    if exempt(rel, src) && target.is_none_or(|t| exempt(target_rel.unwrap_or(t), t)) {
        return Ok(Some(buf));
    }
    let in_hidden_dir = |r: &Path, scratch: &mut Vec<usize>| {
        r.ancestors().skip(1).any(|dir| {
            !dir.as_os_str().is_empty()
                && rules
                    .paths
                    .matches(dir, scratch)
                    .is_some_and(|i| rules.paths.rule(i).when == When::Always)
        })
    };
    if in_hidden_dir(rel, scratch) || target_rel.is_some_and(|t| in_hidden_dir(t, scratch)) {
        return Ok(None);
    }
    let copy = crate::secrets::copy_of(rules, &buf)?;
    for r in std::iter::once(rel).chain(target_rel) {
        let Some(rule) = rules.paths.matches(r, scratch).map(|i| rules.paths.rule(i)) else {
            continue;
        };
        let left_out = match rule.when {
            When::Always => true,
            When::UnlessCertificates => !crate::secrets::path_rules::only_certificates(&buf),
            // Only with a secret in it, which the content rules decide below.
            When::IfSecretContent => !matches!(copy, Copy::AsIs),
        };
        if left_out {
            return Ok(None);
        }
    }
    Ok(match copy {
        Copy::AsIs => Some(buf),
        Copy::Redacted(text) => Some(text),
        Copy::LeftOut => None,
    })
}

enum Content<'a> {
    /// Bytes, permission bits, and the modification time of the file they
    /// came from (seconds, nanoseconds), kept on the copy: which of two
    /// copies of a login is the later one is told by it.
    File(&'a [u8], u32, (i64, i64)),
    Link(&'a Path),
}

/// A file's modification time, as [`Content::File`] keeps it.
fn mtime(meta: &std::fs::Metadata) -> (i64, i64) {
    (meta.mtime(), meta.mtime_nsec())
}

/// Put `content` at `rel` below `home`: made under a new name in the
/// directory (opened link by link, never following one), then renamed
/// over whatever is there.
fn place(home: &Path, rel: &Path, content: Content<'_>) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(std::io::Error::other("not a path below the home"));
    };
    let dir = host::make_dirs_beneath(home, parent).ok_or_else(|| {
        std::io::Error::other("a directory on the way is missing, a link, or not a directory")
    })?;
    // Not named after the file: a name near the 255-byte limit (legal in
    // the real home) made the new one too long, and the import failed, so
    // every run of the profile did.
    let tmp = OsString::from(format!(".guard-{}", std::process::id()));
    let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    match content {
        Content::File(buf, mode, (secs, nanos)) => {
            let fd = openat(
                &dir,
                tmp.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            )?;
            let mut file = std::fs::File::from(fd);
            let stamp = nix::sys::time::TimeSpec::new(secs, nanos);
            let written = file.write_all(buf).and_then(|()| {
                nix::sys::stat::futimens(&file, &stamp, &stamp).map_err(std::io::Error::from)
            });
            if let Err(e) = written {
                let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
                return Err(e);
            }
        }
        Content::Link(to) => symlinkat(to, &dir, tmp.as_os_str())?,
    }
    renameat(&dir, tmp.as_os_str(), &dir, name).map_err(|e| {
        let _ = unlinkat(&dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        std::io::Error::from(e)
    })
}

/// What identifies one version of a file in the real home.
type Version = [i64; 4];

fn version(meta: &std::fs::Metadata) -> Version {
    [
        meta.dev() as i64,
        meta.ino() as i64,
        meta.size() as i64,
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
    ]
}

/// Copy each login file whose real-home version changed since the last
/// run saw it, and is newer there than in the persistent home (or missing
/// there, and never copied in this version). `record` keeps the versions
/// seen, outside the home. Returns what could not be copied.
fn refresh_logins(paths: &Paths<'_>, rules: &Rules, home: &Path, record: &Path) -> Vec<String> {
    let seen_before: BTreeMap<String, Version> = std::fs::read(record)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut seen = BTreeMap::new();
    let mut problems = Vec::new();
    let mut scratch = Vec::new();
    let logins = paths.login.iter().flat_map(|l| files_below(l));
    for src in logins.filter(|f| !paths.is_guards(f)) {
        let Ok(meta) = std::fs::metadata(&src) else {
            continue;
        };
        let rel = paths.rel(&src);
        let key = String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned();
        let now = version(&meta);
        let before = seen_before.get(&key);
        let copy = match copy_mtime(home, rel) {
            None => before != Some(&now),
            Some(copied) => before.is_some_and(|b| *b != now) && now[3] > copied,
        };
        seen.insert(key, now);
        if !copy {
            continue;
        }
        let mode = meta.mode() & 0o777;
        let found = match content(paths, rules, &src, &mut scratch) {
            Ok(Some(buf)) => Ok(buf),
            Ok(None) if std::fs::canonicalize(&src).ok() == paths.login_in_place(&src) => {
                Err(std::io::Error::other("unreadable, or larger than 8 MiB"))
            }
            Ok(None) => Err(std::io::Error::other(
                "it is reached through a link, and the secret rules keep what that leads to out of the sandbox",
            )),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        let result =
            found.and_then(|buf| place(home, rel, Content::File(&buf, mode, mtime(&meta))));
        if let Err(e) = result {
            problems.push(format!(
                "the login file {} changed outside guard but could not be copied into the persistent home {}: {}; the agent inside keeps its earlier login",
                host::printable(&src),
                host::printable(home),
                crate::error::os_text(&e)
            ));
        }
    }
    if seen != seen_before {
        let saved = serde_json::to_vec(&seen)
            .map_err(std::io::Error::other)
            .and_then(|bytes| save(record, &bytes));
        if let Err(e) = saved {
            problems.push(format!(
                "cannot record the login files seen in {}: {}",
                host::printable(record),
                crate::error::os_text(&e)
            ));
        }
    }
    problems
}

/// Login files the agent rewrote in the profile's other homes (its other
/// projects', or the one home all projects shared before guard kept one
/// per project), copied into this one when newer there than here.
///
/// Why: the login is one for all projects, and the agent refreshes it
/// inside (OAuth refresh tokens rotate: once one home used it, the copy in
/// every other stops working, and a login inside one project would have
/// to be repeated in each). Only `[home] login` files travel, never
/// settings (MCP servers, hooks) nor anything else: what a session wrote
/// stays in its project. The other homes are written by running
/// sandboxes: read through descriptors that never follow a link, regular
/// files only, at most `MAX_LOGIN_FILE` bytes.
fn share_logins(paths: &Paths<'_>, homes: &Path, name: &str, home: &Path) -> Vec<String> {
    let prefix = format!("{name}@");
    let others: Vec<PathBuf> = std::fs::read_dir(homes)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n == name || n.starts_with(&prefix)
                })
                .map(|e| e.path())
                .filter(|p| p != home)
                .collect()
        })
        .unwrap_or_default();
    let latest = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
        + 60_000_000_000;
    let mut problems = Vec::new();
    let logins = paths.login.iter().filter(|l| !paths.is_settings(l));
    for login in logins {
        let mut files = Vec::new();
        for other in &others {
            files_in_home(other, paths.rel(login), 0, &mut files);
        }
        files.sort();
        files.dedup();
        for rel in files {
            // A time to come is no time an agent wrote its login: one set
            // so would win over every later login, the user's included.
            let newest = others
                .iter()
                .filter_map(|o| copy_mtime(o, &rel).map(|t| (t, o)))
                .filter(|(t, _)| *t <= latest)
                .max_by_key(|(t, _)| *t);
            let Some((when, from)) = newest else {
                continue;
            };
            if copy_mtime(home, &rel).is_some_and(|here| here >= when) {
                continue;
            }
            let Some((buf, mode, stamp)) = read_in_home(from, &rel) else {
                continue;
            };
            if read_in_home(home, &rel).is_some_and(|(here, ..)| here == buf) {
                continue;
            }
            if let Err(e) = place(home, &rel, Content::File(&buf, mode, stamp)) {
                problems.push(format!(
                    "the login {} the agent refreshed in {} could not be copied into {}: {}; \
                     the agent inside may ask to log in again",
                    rel.display(),
                    host::printable(from),
                    host::printable(home),
                    crate::error::os_text(&e)
                ));
            }
        }
    }
    problems
}

/// The regular files at `rel` in `home` (itself, or below it when it is
/// a directory), never following a link.
fn files_in_home(home: &Path, rel: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return;
    };
    let Some(dir) = host::open_dir_beneath(home, parent) else {
        return;
    };
    let Ok(st) = fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
        return;
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => out.push(rel.to_path_buf()),
        libc::S_IFDIR if depth < 8 => {
            let Some(below) = host::open_dir_beneath(home, rel) else {
                return;
            };
            let Ok(mut entries) = nix::dir::Dir::from_fd(below) else {
                return;
            };
            let names: Vec<OsString> = entries
                .iter()
                .flatten()
                .map(|e| OsString::from(std::ffi::OsStr::from_bytes(e.file_name().to_bytes())))
                .filter(|n| n != "." && n != "..")
                .collect();
            for n in names {
                files_in_home(home, &rel.join(n), depth + 1, out);
            }
        }
        _ => {}
    }
}

/// Content, permission bits and modification time of the regular file
/// `rel` in `home`, if it
/// is one of at most `MAX_LOGIN_FILE` bytes (never through a link).
fn read_in_home(home: &Path, rel: &Path) -> Option<(Vec<u8>, u32, (i64, i64))> {
    use std::io::Read;
    let dir = host::open_dir_beneath(home, rel.parent()?)?;
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = openat(&dir, rel.file_name()?, flags, Mode::empty()).ok()?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_LOGIN_FILE {
        return None;
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_LOGIN_FILE + 1).read_to_end(&mut buf).ok()?;
    if buf.len() as u64 > MAX_LOGIN_FILE {
        return None;
    }
    Some((buf, meta.mode() & 0o777, mtime(&meta)))
}

/// `path` if it is a file (through a link), else the files below it.
fn files_below(path: &Path) -> Vec<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .flat_map(|e| files_below(&e.path()))
                    .collect()
            })
            .unwrap_or_default(),
        Ok(_) if std::fs::metadata(path).is_ok_and(|m| m.is_file()) => vec![path.to_path_buf()],
        _ => Vec::new(),
    }
}

/// Modification time (ns) of `rel` in the home, as the sandbox left it:
/// `None` when it is not there.
fn copy_mtime(home: &Path, rel: &Path) -> Option<i64> {
    let dir = host::open_dir_beneath(home, rel.parent()?)?;
    let st = fstatat(&dir, rel.file_name()?, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
    Some(st.st_mtime * 1_000_000_000 + st.st_mtime_nsec)
}

/// Write `bytes` to `path` whole or not at all.
fn save(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
