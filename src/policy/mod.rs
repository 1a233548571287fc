//! The resolved policy: pure data built from the profile, the command line
//! and host facts. Nothing here touches the system; `host` gathered the facts.
//!
//! Threat model: the policy decides what exists inside the sandbox. A bug
//! here widens every layer at once, so resolution is strict: CLI paths must
//! exist, `hide` beats every grant on the same path, and a project that
//! contains the home directory (or is `/`) is refused.

mod env;
mod network;

use crate::error::{Error, Result};
use crate::host::{PathKind, User};
use crate::profile::{self, Loaded};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use env::{BuiltEnv, build_env};
pub use network::{network, network_enabled};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Access {
    ReadOnly,
    ReadWrite,
    /// Present but empty: an empty read-only file or directory.
    Hidden,
    /// Read-only inside a writable tree; the path and its ancestors up to
    /// the project root cannot be renamed or removed (they are mount points).
    Protected,
    /// A read-only copy with each secret value replaced (files only; the
    /// copy is in [`SecretsFound::redactions`]).
    Redacted,
}

impl Access {
    pub fn label(self) -> &'static str {
        match self {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
            Access::Hidden => "hide",
            Access::Protected => "protect",
            Access::Redacted => "redact",
        }
    }
}

/// One path rule before host facts are known.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub path: PathBuf,
    pub access: Access,
    /// Where the rule came from: "profile default", "--rw", "project" ...
    pub origin: String,
    /// A required path (from the command line) must exist.
    pub required: bool,
}

/// One resolved path rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub path: PathBuf,
    pub access: Access,
    pub kind: GrantKind,
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantKind {
    Dir,
    File,
    /// Recreate the symlink itself inside the sandbox (its target is granted
    /// separately, or lies inside another grant).
    Symlink {
        target: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub profile: String,
    pub profile_origin: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub project: PathBuf,
    /// Working directory inside the sandbox.
    pub cwd: PathBuf,
    /// Sorted by path; at most one grant per path.
    pub grants: Vec<Grant>,
    /// Protected paths that do not exist yet. Nothing on the host can stand
    /// in for them without creating them, so guard checks after the run
    /// whether the sandbox created one, and moves it aside.
    pub absent_protected: Vec<PathBuf>,
    /// Protected paths given as globs in the project
    /// (`{project}/*.code-workspace`): a match the sandbox creates is
    /// moved aside after the run.
    pub protected_globs: Vec<PathBuf>,
    /// Protected paths that are symlinks (`.git/hooks -> ../.githooks`), with
    /// their targets. The target is protected; the link itself sits in a
    /// writable directory and cannot be mounted over, so guard checks it
    /// after the run and puts it back if the sandbox re-pointed it.
    pub protected_links: Vec<(PathBuf, PathBuf)>,
    /// The repository a linked worktree's `.git` file names (granted
    /// read-write with protections; checked after the run).
    pub linked_repository: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// Names of caller variables not passed in (for the audit; never values).
    pub env_removed: Vec<String>,
    pub command: Vec<String>,
    pub allow_ptrace: bool,
    pub allow_degraded: bool,
    pub max_processes: u64,
    /// A persistent home directory bound at `home` (else an empty tmpfs).
    pub home_source: Option<PathBuf>,
    /// Copy-on-write caches.
    pub caches: Vec<Cache>,
    pub network: crate::net::NetPolicy,
    /// What the secrets scan took out of the sandbox's view.
    pub secrets: SecretsFound,
    pub isolation: crate::profile::Isolation,
    /// At the `landlock` level: the host directories that stand in for the
    /// private home and /tmp the mount view would have built.
    pub host_dirs: Option<HostDirs>,
}

/// Without a mount namespace there is no private $HOME or /tmp to build:
/// the `landlock` level points HOME and TMPDIR at these instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDirs {
    /// Per-session directory, removed after the run.
    pub session: PathBuf,
    /// $HOME inside: the persistent home, or `session/home`.
    pub home: PathBuf,
    /// $TMPDIR inside: `session/tmp`.
    pub tmp: PathBuf,
}

/// Secrets the sandbox does not see: files hidden or redacted (with the
/// redacted copies), and caller variables removed as secret. Names, paths
/// and rule ids only; never a secret value.
#[derive(Debug, Clone, Default)]
pub struct SecretsFound {
    pub files: Vec<crate::secrets::Flagged>,
    pub redactions: Vec<crate::secrets::Redaction>,
    /// (variable name, rule id)
    pub env: Vec<(String, String)>,
    pub stats: crate::secrets::Stats,
    /// Object files of repositories whose history holds secrets, shown as
    /// sanitized copies (full isolation only).
    pub history: crate::secrets::history::History,
    pub rules: crate::secrets::SharedRules,
}

/// A host directory shown writable inside through an overlay whose upper
/// layer is guard's own: the host copy never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cache {
    pub path: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// Inputs from the command line, already parsed.
#[derive(Debug, Clone, Default)]
pub struct CliGrants {
    pub ro: Vec<PathBuf>,
    pub rw: Vec<PathBuf>,
    pub hide: Vec<PathBuf>,
    pub allow_env: Vec<String>,
    pub allow_degraded: bool,
}

/// Step 1 (pure): every path rule, in priority order (later wins), with
/// `~`/`{project}` expanded. Globs are expanded by the caller (host facts).
pub fn candidates(
    profile: &Loaded,
    cli: &CliGrants,
    user: &User,
    project: &Path,
) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    let fs = &profile.profile.filesystem;
    for (list, access) in [
        (&fs.read, Access::ReadOnly),
        (&fs.write, Access::ReadWrite),
        (&fs.hide, Access::Hidden),
        (&fs.protect, Access::Protected),
    ] {
        for raw in list {
            let path =
                profile::expand_path(raw, &user.home, project).ok_or_else(|| Error::Profile {
                    location: profile.origin.clone(),
                    msg: format!("path {raw:?} is not absolute"),
                    hint: Some("start paths with /, ~/ or {project}/".into()),
                })?;
            out.push(Candidate {
                path,
                access,
                origin: format!("profile {}", profile.name),
                required: false,
            });
        }
    }
    out.push(Candidate {
        path: project.to_path_buf(),
        access: Access::ReadWrite,
        origin: "project".into(),
        required: true,
    });
    for (list, access, flag) in [
        (&cli.ro, Access::ReadOnly, "--ro"),
        (&cli.rw, Access::ReadWrite, "--rw"),
        (&cli.hide, Access::Hidden, "--hide"),
    ] {
        for p in list {
            if !p.is_absolute() {
                return Err(Error::usage_hint(
                    format!("{flag} {}: path must be absolute", p.display()),
                    format!("use {flag} \"$PWD/{}\"", p.display()),
                ));
            }
            check_cli_path(flag, p, &user.home, project)?;
            out.push(Candidate {
                path: p.clone(),
                access,
                origin: flag.into(),
                required: true,
            });
        }
    }
    Ok(out)
}

/// Command-line grants that cannot be what the user meant: the whole
/// machine or home made visible (every secret, and at `--rw` every shell
/// startup file), the host's own /proc, /sys or /dev in place of the
/// sandbox's, or the project itself hidden.
fn check_cli_path(flag: &str, p: &Path, home: &Path, project: &Path) -> Result<()> {
    let shown = p.display();
    let refuse =
        |why: String, hint: &str| Err(Error::usage_hint(format!("{flag} {shown}: {why}"), hint));
    if flag == "--hide" {
        if project.starts_with(p) {
            return refuse(
                format!("this would hide the project {}", project.display()),
                "hide files or directories inside the project, or run guard in another project",
            );
        }
        return Ok(());
    }
    if p == Path::new("/") {
        return refuse(
            "this would expose the whole machine, every secret on it included".into(),
            "grant only the directories the command needs",
        );
    }
    if home.starts_with(p) {
        let what = if p == home {
            "your home directory".to_string()
        } else {
            format!("your home directory {}", home.display())
        };
        return refuse(
            format!("this would expose {what} with every secret in it"),
            "grant the directories the command needs, e.g. --ro ~/.config/tool",
        );
    }
    for special in ["/proc", "/sys", "/dev"] {
        if p == Path::new(special) || (special == "/proc" && p.starts_with(special)) {
            return refuse(
                format!("the sandbox has its own {special}; the host's cannot be granted"),
                "grant files on a real filesystem",
            );
        }
    }
    Ok(())
}

/// Step 2 (pure): turn candidates plus the host facts about each path into
/// the final, sorted grant list.
pub fn resolve_grants(
    candidates: &[Candidate],
    facts: &BTreeMap<PathBuf, PathKind>,
) -> Result<Vec<Grant>> {
    resolve(candidates, facts).map(|(grants, _)| grants)
}

/// A grant that exists because the secrets scan flagged the path (its
/// origin names the rule: `secret: dotenv`, `secret in git history`).
fn is_secret(g: &Grant) -> bool {
    matches!(g.access, Access::Hidden | Access::Redacted) && g.origin.starts_with("secret")
}

/// Like [`resolve_grants`], also returning the protected paths that do not
/// exist.
/// The longest path a cover can be mounted on: the kernel takes at most
/// PATH_MAX bytes (4096, the NUL included) in one call, and the setup
/// process mounts under a prefix of its own (`/newroot`).
pub const LONGEST_COVER: usize = 4096 - 64;

/// A file to hide, redact or protect at a path longer than
/// [`LONGEST_COVER`] cannot be covered, nor even looked at by its path: an
/// earlier session can make a tree that deep (with a hard link at the
/// bottom to a file that will hold a secret), and the sandbox reaches it
/// one `chdir` at a time. Each such candidate becomes the deepest
/// directory above it that can be covered, hidden.
pub fn cover_long_paths(candidates: &mut [Candidate]) {
    for c in candidates {
        if !matches!(
            c.access,
            Access::Hidden | Access::Redacted | Access::Protected
        ) || c.path.as_os_str().len() <= LONGEST_COVER
        {
            continue;
        }
        if let Some(dir) = c
            .path
            .ancestors()
            .find(|d| d.as_os_str().len() <= LONGEST_COVER)
        {
            c.origin = format!("{} (below it, at a path too long to cover)", c.origin);
            c.path = dir.to_path_buf();
            c.access = Access::Hidden;
        }
    }
}

pub fn resolve(
    candidates: &[Candidate],
    facts: &BTreeMap<PathBuf, PathKind>,
) -> Result<(Vec<Grant>, Vec<PathBuf>)> {
    let mut absent = Vec::new();
    let kind_of = |p: &Path| facts.get(p).cloned().unwrap_or(PathKind::Missing);
    // Directories the sandbox may write (the project, write grants): a link
    // in one may have been planted by an earlier session, so a grant never
    // follows one out of them (`--ro {project}/docs` with `docs -> ~/.aws`).
    let writable: Vec<&Path> = candidates
        .iter()
        .filter(|c| c.access == Access::ReadWrite && kind_of(&c.path) == PathKind::Dir)
        .map(|c| c.path.as_path())
        .collect();
    let leads_out = |link: &Path, resolved: &Path| {
        let link = crate::host::lexical(link);
        writable.iter().any(|w| link.starts_with(w) && link != *w)
            && !writable.iter().any(|w| resolved.starts_with(w))
    };
    // path -> (access, kind, origin); later candidates override earlier ones,
    // except that Hidden is never overridden, and Redacted only by Hidden.
    // A protected path the secrets scan flags stays Protected (its
    // ancestors are pinned, so it cannot be replaced through a renamed
    // parent); the plan shows it hidden or redacted (`secret_view`).
    let mut by_path: BTreeMap<PathBuf, Grant> = BTreeMap::new();
    let mut put = |g: Grant| match by_path.get(&g.path) {
        Some(old) if old.access == Access::Protected && is_secret(&g) => {}
        Some(old) if is_secret(old) && g.access == Access::Protected => {
            by_path.insert(g.path.clone(), g);
        }
        Some(old) if old.access == Access::Hidden => {}
        Some(old) if old.access == Access::Protected && g.access != Access::Hidden => {}
        Some(old) if old.access == Access::Redacted && g.access != Access::Hidden => {}
        _ => {
            by_path.insert(g.path.clone(), g);
        }
    };
    for c in candidates {
        match kind_of(&c.path) {
            PathKind::Missing if c.access == Access::Protected => absent.push(c.path.clone()),
            PathKind::Missing => {
                if c.required {
                    return Err(Error::usage_hint(
                        format!(
                            "{} {}: no such file or directory",
                            c.origin,
                            c.path.display()
                        ),
                        "give a path that exists on this machine",
                    ));
                }
            }
            // Only regular files are redacted; a directory flagged so
            // (never by the scan) is hidden instead: fail closed.
            PathKind::Dir if c.access == Access::Redacted => put(Grant {
                path: c.path.clone(),
                access: Access::Hidden,
                kind: GrantKind::Dir,
                origin: c.origin.clone(),
            }),
            PathKind::Dir | PathKind::File
                if matches!(c.access, Access::Hidden | Access::Protected) =>
            {
                put(Grant {
                    path: c.path.clone(),
                    access: c.access,
                    kind: if kind_of(&c.path) == PathKind::Dir {
                        GrantKind::Dir
                    } else {
                        GrantKind::File
                    },
                    origin: c.origin.clone(),
                })
            }
            PathKind::Dir => put(Grant {
                path: c.path.clone(),
                access: c.access,
                kind: GrantKind::Dir,
                origin: c.origin.clone(),
            }),
            PathKind::File => put(Grant {
                path: c.path.clone(),
                access: c.access,
                kind: GrantKind::File,
                origin: c.origin.clone(),
            }),
            PathKind::Symlink { target, resolved } => {
                let Some(resolved) = resolved else {
                    if c.required {
                        return Err(Error::usage_hint(
                            format!("{} {}: dangling symlink", c.origin, c.path.display()),
                            "point it at a path that exists",
                        ));
                    }
                    continue;
                };
                if matches!(c.access, Access::ReadOnly | Access::ReadWrite)
                    && leads_out(&c.path, &resolved)
                {
                    if c.required {
                        return Err(Error::usage_hint(
                            format!(
                                "{} {}: a link out of the writable directory it lies in (to {}); \
                                 the sandbox may have put it there, so guard does not follow it",
                                c.origin,
                                c.path.display(),
                                resolved.display()
                            ),
                            format!(
                                "if {} is meant to be granted, name it itself",
                                resolved.display()
                            ),
                        ));
                    }
                    continue;
                }
                let kind = match kind_of(&resolved) {
                    PathKind::Dir => GrantKind::Dir,
                    _ => GrantKind::File,
                };
                // Hiding a symlink hides what it points to: that is where
                // the content is.
                let access = if c.access == Access::Redacted {
                    Access::Hidden
                } else {
                    c.access
                };
                if !matches!(access, Access::Hidden | Access::Protected) {
                    put(Grant {
                        path: c.path.clone(),
                        access,
                        kind: GrantKind::Symlink { target },
                        origin: c.origin.clone(),
                    });
                }
                put(Grant {
                    path: resolved,
                    access,
                    kind,
                    origin: format!("{} (symlink {})", c.origin, c.path.display()),
                });
            }
        }
    }
    let grants: Vec<Grant> = by_path.into_values().collect();
    // A symlink inside another directory grant is already visible there;
    // recreating it would write into that (possibly read-only) mount.
    let covered = |p: &Path| {
        grants.iter().any(|g| {
            g.kind == GrantKind::Dir
                && g.access != Access::Hidden
                && p.starts_with(&g.path)
                && p != g.path
        })
    };
    // A grant whose nearest enclosing directory grant has the same access
    // adds nothing but a mount (e.g. /usr/bin under /usr).
    let redundant = |g: &Grant| {
        if matches!(
            g.access,
            Access::Hidden | Access::Protected | Access::Redacted
        ) || matches!(g.kind, GrantKind::Symlink { .. })
        {
            return false;
        }
        grants
            .iter()
            .filter(|p| p.kind == GrantKind::Dir && g.path.starts_with(&p.path) && g.path != p.path)
            .max_by_key(|p| p.path.components().count())
            .is_some_and(|p| p.access == g.access)
    };
    let grants = grants
        .iter()
        .filter(|g| !(matches!(g.kind, GrantKind::Symlink { .. }) && covered(&g.path)))
        .filter(|g| !redundant(g))
        .cloned()
        .collect();
    Ok((grants, absent))
}

/// Refuse project locations that would expose what the sandbox exists to hide.
pub fn check_project(project: &Path, home: &Path) -> Result<()> {
    if project == Path::new("/") {
        return Err(Error::usage_hint(
            "the project would be / (the whole machine)",
            "run guard inside a project directory, or pass --project DIR",
        ));
    }
    // HOME=/ (a container run as a user without a home): the sandbox's
    // private home would cover its whole view, and every path on the
    // machine would count as the user's.
    if home == Path::new("/") {
        return Err(Error::usage_hint(
            "your home directory is / (HOME, or the password database when HOME is unset): \
             guard puts a private home in its place in the sandbox, and / cannot be one",
            "set HOME to a directory of your own, e.g. `HOME=/tmp/home-$(id -u) guard run ...`",
        ));
    }
    if home.starts_with(project) {
        return Err(Error::usage_hint(
            format!(
                "the project {} contains your home directory {}, which would expose every secret in it",
                project.display(),
                home.display()
            ),
            "run guard inside a project directory below your home, or pass --project DIR",
        ));
    }
    for special in ["/proc", "/sys", "/dev"] {
        if project.starts_with(special) {
            return Err(Error::usage_hint(
                format!("the project {} is inside {special}", project.display()),
                "pass --project with a directory on a real filesystem",
            ));
        }
    }
    Ok(())
}

/// A policy with these grants and nothing else, for the plan's unit tests.
#[cfg(test)]
pub fn test_policy(grants: Vec<Grant>, isolation: crate::profile::Isolation) -> Policy {
    Policy {
        profile: "t".into(),
        profile_origin: "t".into(),
        uid: 1000,
        gid: 1000,
        home: "/home/u".into(),
        project: "/home/u/src/app".into(),
        cwd: "/home/u/src/app".into(),
        grants,
        absent_protected: vec![],
        protected_globs: vec![],
        protected_links: vec![],
        linked_repository: None,
        env: vec![],
        env_removed: vec![],
        command: vec!["true".into()],
        allow_ptrace: false,
        allow_degraded: false,
        max_processes: 100,
        home_source: None,
        caches: vec![],
        network: Default::default(),
        secrets: Default::default(),
        isolation,
        host_dirs: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(p: &str, a: Access, req: bool) -> Candidate {
        Candidate {
            path: p.into(),
            access: a,
            origin: "t".into(),
            required: req,
        }
    }

    #[test]
    fn later_grant_wins_but_hide_is_final() {
        let facts: BTreeMap<PathBuf, PathKind> =
            [("/a".into(), PathKind::Dir), ("/b".into(), PathKind::File)].into();
        let g = resolve_grants(
            &[
                cand("/a", Access::ReadOnly, false),
                cand("/a", Access::ReadWrite, false),
                cand("/b", Access::Hidden, false),
                cand("/b", Access::ReadWrite, true),
            ],
            &facts,
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].access, Access::ReadWrite);
        assert_eq!(g[1].access, Access::Hidden);
    }

    #[test]
    fn missing_optional_skipped_required_errors() {
        let facts = BTreeMap::new();
        assert!(
            resolve_grants(&[cand("/x", Access::ReadOnly, false)], &facts)
                .unwrap()
                .is_empty()
        );
        let e = resolve_grants(&[cand("/x", Access::ReadOnly, true)], &facts).unwrap_err();
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn covered_symlink_is_not_recreated() {
        let facts: BTreeMap<PathBuf, PathKind> = [
            ("/usr".into(), PathKind::Dir),
            ("/usr/bin".into(), PathKind::Dir),
            (
                "/bin".into(),
                PathKind::Symlink {
                    target: "usr/bin".into(),
                    resolved: Some("/usr/bin".into()),
                },
            ),
        ]
        .into();
        let g = resolve_grants(
            &[
                cand("/usr", Access::ReadOnly, false),
                cand("/bin", Access::ReadOnly, false),
            ],
            &facts,
        )
        .unwrap();
        let paths: Vec<_> = g.iter().map(|g| g.path.display().to_string()).collect();
        assert_eq!(paths, ["/bin", "/usr"]);
        assert!(matches!(g[0].kind, GrantKind::Symlink { .. }));
    }

    #[test]
    fn a_link_in_a_writable_tree_never_carries_a_grant_out_of_it() {
        let link = |to: &str| PathKind::Symlink {
            target: to.into(),
            resolved: Some(to.into()),
        };
        let facts: BTreeMap<PathBuf, PathKind> = [
            ("/p".into(), PathKind::Dir),
            ("/p/docs".into(), link("/h/.aws")),
            ("/p/inner".into(), link("/p/src")),
            ("/h/.aws".into(), PathKind::Dir),
            ("/p/src".into(), PathKind::Dir),
            ("/etc/x".into(), link("/usr/x")),
            ("/usr/x".into(), PathKind::File),
        ]
        .into();
        let project = cand("/p", Access::ReadWrite, true);
        // Optional (a profile's): dropped. A link within the project, or
        // one outside every writable tree, is followed as before.
        let g = resolve_grants(
            &[
                project.clone(),
                cand("/p/docs", Access::ReadOnly, false),
                cand("/p/inner", Access::ReadOnly, false),
                cand("/etc/x", Access::ReadOnly, false),
            ],
            &facts,
        )
        .unwrap();
        let paths: Vec<_> = g.iter().map(|g| g.path.display().to_string()).collect();
        assert_eq!(paths, ["/etc/x", "/p", "/p/src", "/usr/x"]);
        // Required (the command line's): refused.
        let e = resolve_grants(&[project, cand("/p/docs", Access::ReadWrite, true)], &facts)
            .unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e.render().contains("/h/.aws"), "{}", e.render());
    }

    #[test]
    fn project_containing_home_is_refused() {
        assert!(check_project(Path::new("/home"), Path::new("/home/u")).is_err());
        assert!(check_project(Path::new("/home/u"), Path::new("/home/u")).is_err());
        assert!(check_project(Path::new("/"), Path::new("/home/u")).is_err());
        assert!(check_project(Path::new("/home/u/p"), Path::new("/home/u")).is_ok());
    }
}
