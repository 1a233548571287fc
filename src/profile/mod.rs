//! Profiles: reviewed TOML data that says what the sandbox may see and do.
//!
//! `deny_unknown_fields` everywhere: a typo in a security setting must be an
//! error, never a silently ignored line. `version` is the schema version.

mod builtin;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use builtin::{builtin_names, builtin_source};

/// The schema version this build understands.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub version: u32,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub filesystem: Filesystem,
    #[serde(default)]
    pub env: Env,
    #[serde(default)]
    pub syscalls: Syscalls,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most processes the sandbox may hold at once (RLIMIT_NPROC, counted in
    /// the sandbox's user namespace): a fork bomb stops there.
    #[serde(default = "default_processes")]
    pub processes: u64,
}

fn default_processes() -> u64 {
    4096
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            processes: default_processes(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    /// Visible read-only (and executable).
    #[serde(default)]
    pub read: Vec<String>,
    /// Visible read-write.
    #[serde(default)]
    pub write: Vec<String>,
    /// Present but empty: an empty file or directory replaces the original.
    #[serde(default)]
    pub hide: Vec<String>,
    /// Read-only even inside a writable tree, and neither renameable nor
    /// replaceable: files that would run later outside the sandbox
    /// (`.git/hooks`, `.git/config`, `.envrc` ...).
    #[serde(default)]
    pub protect: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Env {
    /// Names passed through from the caller (a trailing `*` matches a prefix).
    #[serde(default)]
    pub pass: Vec<String>,
    /// Variables set to a fixed value inside the sandbox.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Syscalls {
    /// Allow ptrace and process_vm_readv/writev between sandboxed processes.
    #[serde(default)]
    pub ptrace: bool,
}

/// A profile together with where it came from (for messages and `explain`).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub name: String,
    pub origin: String,
    pub profile: Profile,
}

/// Load a profile by built-in name or by path (anything containing `/` or
/// ending in `.toml` is a path).
pub fn load(name_or_path: &str) -> Result<Loaded> {
    if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
        let path = PathBuf::from(name_or_path);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Usage {
            msg: format!("failed to read profile {}: {e}", path.display()),
            hint: Some(format!(
                "built-in profiles: {}; or give the path of a TOML file",
                builtin_names().join(", ")
            )),
        })?;
        let profile = parse(&text, &path.display().to_string())?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name_or_path.to_string());
        return Ok(Loaded {
            name,
            origin: path.display().to_string(),
            profile,
        });
    }
    let Some(text) = builtin_source(name_or_path) else {
        return Err(Error::usage_hint(
            format!("no profile named {name_or_path:?}"),
            format!(
                "built-in profiles: {}; or pass a path to a TOML file with -p ./file.toml",
                builtin_names().join(", ")
            ),
        ));
    };
    let origin = format!("built-in:{name_or_path}");
    Ok(Loaded {
        name: name_or_path.to_string(),
        profile: parse(text, &origin)?,
        origin,
    })
}

/// Parse and validate one profile. `origin` names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Profile> {
    let profile: Profile = toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => {
                let (line, col) = line_col(text, span.start);
                format!("{origin}:{line}:{col}")
            }
            None => origin.to_string(),
        };
        Error::Profile {
            location,
            msg: e.message().trim().to_string(),
            hint: Some(
                "see profiles/default.toml for the format; unknown keys are errors on purpose"
                    .into(),
            ),
        }
    })?;
    if profile.version != SCHEMA_VERSION {
        let (line, col) = text
            .find("version")
            .map(|at| line_col(text, at))
            .unwrap_or((1, 1));
        return Err(Error::Profile {
            location: format!("{origin}:{line}:{col}"),
            msg: format!(
                "key `version`: schema version {} is not supported (expected {SCHEMA_VERSION})",
                profile.version
            ),
            hint: Some(format!("set `version = {SCHEMA_VERSION}`")),
        });
    }
    Ok(profile)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, col)
}

/// Expand `~` and `{project}` in a profile path. Returns `None` for a path
/// that is neither absolute nor one of those forms (the caller reports it).
pub fn expand_path(raw: &str, home: &Path, project: &Path) -> Option<PathBuf> {
    let expanded = if raw == "~" {
        home.to_path_buf()
    } else if let Some(rest) = raw.strip_prefix("~/") {
        home.join(rest)
    } else if let Some(rest) = raw.strip_prefix("{project}") {
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            project.to_path_buf()
        } else {
            project.join(rest)
        }
    } else {
        PathBuf::from(raw)
    };
    expanded.is_absolute().then_some(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        for name in builtin_names() {
            load(name).unwrap_or_else(|e| panic!("{name}: {}", e.render()));
        }
    }

    #[test]
    fn unknown_key_is_an_error_with_location() {
        let err = parse("version = 1\n[filesystem]\nreed = []\n", "p.toml").unwrap_err();
        let msg = err.render();
        assert!(msg.contains("p.toml:3:1"), "{msg}");
        assert!(msg.contains("reed"), "{msg}");
        assert_eq!(err.exit_code(), 125);
    }

    #[test]
    fn wrong_version_is_rejected() {
        let err = parse("version = 9\n", "p.toml").unwrap_err();
        assert!(err.render().contains("p.toml:1:1"), "{}", err.render());
    }

    #[test]
    fn wrong_type_is_rejected() {
        let err = parse("version = 1\n[syscalls]\nptrace = \"yes\"\n", "p.toml").unwrap_err();
        assert!(err.render().contains("p.toml:3:"), "{}", err.render());
    }

    #[test]
    fn expands_home_and_project() {
        let h = Path::new("/home/u");
        let p = Path::new("/src/p");
        assert_eq!(expand_path("~/.x", h, p), Some(PathBuf::from("/home/u/.x")));
        assert_eq!(
            expand_path("{project}/.git", h, p),
            Some(PathBuf::from("/src/p/.git"))
        );
        assert_eq!(
            expand_path("{project}", h, p),
            Some(PathBuf::from("/src/p"))
        );
        assert_eq!(expand_path("relative", h, p), None);
    }
}
