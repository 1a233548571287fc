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
    p.is_file().then_some(p)
}

/// Is there a built-in or user profile called `name`?
pub fn exists(name: &str) -> bool {
    builtin_source(name).is_some() || user_profile(name).is_some()
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Usage {
        msg: format!("failed to read profile {}: {e}", path.display()),
        hint: Some(format!(
            "built-in profiles: {}; or give the path of a TOML file",
            builtin_names().join(", ")
        )),
    })
}

/// Append the layers of `name` (its extends first) to `out`. `stack` holds
/// the names being resolved, to refuse cycles.
pub fn collect(name: &str, stack: &mut Vec<String>, out: &mut Vec<Layer>) -> Result<()> {
    if stack.iter().any(|s| s == name) {
        stack.push(name.to_string());
        return Err(Error::Profile {
            location: name.to_string(),
            msg: format!("`extends` forms a cycle: {}", stack.join(" -> ")),
            hint: Some("remove one of the `extends` entries".into()),
        });
    }
    stack.push(name.to_string());
    let mut files: Vec<(String, String)> = Vec::new();
    if is_path(name) {
        let path = PathBuf::from(name);
        files.push((read(&path)?, path.display().to_string()));
    } else {
        if let Some(text) = builtin_source(name) {
            files.push((text.to_string(), format!("built-in:{name}")));
        }
        if let Some(path) = user_profile(name) {
            files.push((read(&path)?, path.display().to_string()));
        }
        if files.is_empty() {
            return Err(Error::usage_hint(
                format!("no profile named {name:?}"),
                format!(
                    "built-in profiles: {}; user profiles go in {}; or pass a path with -p ./file.toml",
                    builtin_names().join(", "),
                    user_profile_dir()
                        .map(|d| d.display().to_string())
                        .unwrap_or_else(|| "$XDG_CONFIG_HOME/guard/profiles".into())
                ),
            ));
        }
    }
    for (text, origin) in files {
        // A profile reached twice (`claude` extends `default` and `node`,
        // which extends `default` too) is merged once, where first reached.
        if out.iter().any(|l| l.origin == origin) {
            continue;
        }
        let profile = parse(&text, &origin)?;
        for base in &profile.extends {
            collect(base, stack, out)?;
        }
        out.push(Layer { origin, profile });
    }
    stack.pop();
    Ok(())
}
