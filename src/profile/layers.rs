//! Finding profile files and their `extends` chains.
//!
//! Lookup order for a name: the built-in profile of that name, then the
//! user's `$XDG_CONFIG_HOME/guard/profiles/NAME.toml` layered on top. Each
//! file's `extends` are merged underneath it, depth first.

use super::{Layer, builtin_names, builtin_source, parse};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

pub fn is_path(name: &str) -> bool {
    name.contains('/') || name.ends_with(".toml")
}

/// $XDG_CONFIG_HOME/guard/profiles (or ~/.config/guard/profiles).
pub fn user_profile_dir() -> Option<PathBuf> {
    crate::host::config_dir().map(|d| d.join("profiles"))
}

fn user_profile(name: &str) -> Option<PathBuf> {
    let p = user_profile_dir()?.join(format!("{name}.toml"));
    // Anything there is meant as the profile: a directory or a FIFO of
    // that name is reported when read, not passed over.
    std::fs::symlink_metadata(&p).is_ok().then_some(p)
}

/// Is there a built-in or user profile called `name`?
pub fn exists(name: &str) -> bool {
    builtin_source(name).is_some() || user_profile(name).is_some()
}

/// Deepest `extends` chain followed (a cycle through links or differently
/// spelled paths ends here rather than in a stack overflow).
const MAX_DEPTH: usize = 32;

/// Profiles are small: anything larger is not the file meant.
const MAX_PROFILE_BYTES: u64 = 1024 * 1024;

/// The text of a profile file: a regular file (never waiting on a FIFO),
/// at most [`MAX_PROFILE_BYTES`], UTF-8. `follow`: whether a final symlink
/// is followed (a project's `.guard.toml` must be the file itself).
pub fn read_profile(path: &Path, follow: bool) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |cause: String, hint: String| Error::Usage {
        msg: format!("cannot read the profile {}: {cause}", path.display()),
        hint: Some(hint),
    };
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail(
                "no such file".into(),
                format!(
                    "built-in profiles: {}; or give the path of an existing TOML file",
                    builtin_names().join(", ")
                ),
            ),
            std::io::ErrorKind::PermissionDenied => fail(
                format!("permission denied (guard runs as uid {})", nix::unistd::getuid()),
                "make the file (and its directories) readable by this user".into(),
            ),
            _ if e.raw_os_error() == Some(libc::ELOOP) => fail(
                "it is a symbolic link".into(),
                "replace the link with the file itself (a link could point anywhere, and would not be protected inside the sandbox)".into(),
            ),
            _ => fail(crate::error::os_text(&e), "give the path of a TOML file".into()),
        })?;
    let meta = f.metadata().map_err(|e| {
        fail(
            crate::error::os_text(&e),
            "give the path of a TOML file".into(),
        )
    })?;
    if meta.is_dir() {
        return Err(fail(
            "it is a directory".into(),
            "give the path of a TOML file inside it".into(),
        ));
    }
    if !meta.is_file() {
        return Err(fail(
            "not a regular file (a FIFO, socket or device)".into(),
            "give the path of a TOML file".into(),
        ));
    }
    if meta.len() > MAX_PROFILE_BYTES {
        return Err(fail(
            format!(
                "it is {} bytes; a profile may be at most {MAX_PROFILE_BYTES}",
                meta.len()
            ),
            "is this the right file? profiles are short TOML files".into(),
        ));
    }
    let mut bytes = Vec::new();
    (&mut f)
        .take(MAX_PROFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            fail(
                crate::error::os_text(&e),
                "give the path of a TOML file".into(),
            )
        })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // Only the valid prefix can be counted in characters.
        let text = String::from_utf8_lossy(valid);
        super::errors::at(
            &text,
            &path.display().to_string(),
            text.len(),
            "the file is not UTF-8 text (an invalid byte here)".into(),
            "save the profile as UTF-8",
        )
    })
}

/// Where an `extends` entry was written: errors about the profile it names
/// point there, and a relative path is read from that file's directory.
struct Referrer<'a> {
    text: &'a str,
    origin: &'a str,
    dir: Option<&'a Path>,
}

impl Referrer<'_> {
    fn error(&self, base: &str, msg: String, hint: String) -> Error {
        super::errors::at(
            self.text,
            self.origin,
            super::errors::locate(self.text, &["extends"], Some(base)),
            format!("key `extends`: {msg}"),
            hint,
        )
    }
}

/// Append the layers of `name` (its extends first) to `out`. `stack` holds
/// the names being resolved, to refuse cycles.
pub fn collect(name: &str, stack: &mut Vec<String>, out: &mut Vec<Layer>) -> Result<()> {
    collect_from(name, None, stack, out)
}

/// The layers `profile` (parsed from `text`, read from `origin`) extends,
/// in order: for a project's `.guard.toml`, which is layered on its own.
pub fn extends_of(profile: &super::Profile, text: &str, origin: &Path) -> Result<Vec<Layer>> {
    let origin_text = origin.display().to_string();
    let from = Referrer {
        text,
        origin: &origin_text,
        dir: origin.parent(),
    };
    let mut layers = Vec::new();
    for base in &profile.extends {
        // Each base on its own, as `load` would resolve it.
        let mut own = Vec::new();
        collect_from(base, Some(&from), &mut vec![origin_text.clone()], &mut own)?;
        layers.extend(own);
    }
    Ok(layers)
}

fn collect_from(
    name: &str,
    from: Option<&Referrer>,
    stack: &mut Vec<String>,
    out: &mut Vec<Layer>,
) -> Result<()> {
    let raw = name;
    // A relative `extends` path is the including file's neighbour, wherever
    // guard was started; absolute and normalized, the same file always has
    // the same name, so a cycle is seen as one.
    let name = match (from.and_then(|f| f.dir), is_path(name)) {
        (Some(dir), true) if Path::new(name).is_relative() => {
            crate::host::lexical(&dir.join(name)).display().to_string()
        }
        _ => name.to_string(),
    };
    let name = name.as_str();
    if stack.iter().any(|s| s == name) || stack.len() > MAX_DEPTH {
        stack.push(name.to_string());
        let msg = format!("forms a cycle: {}", stack.join(" -> "));
        let hint = "remove one of the `extends` entries".to_string();
        return Err(match from {
            Some(f) => f.error(raw, msg, hint),
            None => Error::Profile {
                location: name.to_string(),
                msg: format!("`extends` {msg}"),
                hint: Some(hint),
            },
        });
    }
    stack.push(name.to_string());
    let mut files: Vec<(String, String)> = Vec::new();
    if is_path(name) {
        let path = PathBuf::from(name);
        let text = read_profile(&path, true).map_err(|e| match (from, &e) {
            (Some(f), Error::Usage { msg, hint }) => {
                f.error(raw, msg.clone(), hint.clone().unwrap_or_default())
            }
            _ => e,
        })?;
        files.push((text, path.display().to_string()));
    } else {
        if let Some(text) = builtin_source(name) {
            files.push((text.to_string(), format!("built-in:{name}")));
        }
        if let Some(path) = user_profile(name) {
            files.push((read_profile(&path, true)?, path.display().to_string()));
        }
        if files.is_empty() {
            let msg = format!("no profile named {name:?}");
            let hint = format!(
                "built-in profiles: {}; user profiles go in {}; or pass a path with -p ./file.toml",
                builtin_names().join(", "),
                user_profile_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_else(|| "$XDG_CONFIG_HOME/guard/profiles".into())
            );
            return Err(match from {
                Some(f) => f.error(raw, msg, hint),
                None => Error::usage_hint(msg, hint),
            });
        }
    }
    for (text, origin) in files {
        // A profile reached twice (`claude` extends `default` and `node`,
        // which extends `default` too) is merged once, where first reached.
        if out.iter().any(|l| l.origin == origin) {
            continue;
        }
        let profile = parse(&text, &origin)?;
        let referrer = Referrer {
            text: &text,
            origin: &origin,
            dir: Path::new(&origin)
                .parent()
                .filter(|_| !origin.starts_with("built-in:")),
        };
        for base in &profile.extends {
            collect_from(base, Some(&referrer), stack, out)?;
        }
        out.push(Layer { origin, profile });
    }
    stack.pop();
    Ok(())
}
