//! Checks on values the schema accepts but guard cannot use: path forms,
//! variable names, the process limit. Each error names the file, line and
//! key; a value that would be silently skipped or misread is refused here.

use super::Profile;
use super::errors::{FORMAT_DOC, at, locate};
use crate::error::Result;

/// Highest process limit worth asking for: the kernel never hands out more
/// pids than this (PID_MAX_LIMIT).
pub const MAX_PROCESSES: u64 = 4 * 1024 * 1024;

pub fn check(p: &Profile, text: &str, origin: &str) -> Result<()> {
    let bad = |keys: &[&str], elem: Option<&str>, msg: String, hint: String| {
        let key = keys.join(".");
        at(
            text,
            origin,
            locate(text, keys, elem),
            format!("key `{key}`: {msg}"),
            hint,
        )
    };
    let fs = &p.filesystem;
    for (list, section, key) in [
        (&fs.read, "filesystem", "read"),
        (&fs.write, "filesystem", "write"),
        (&fs.hide, "filesystem", "hide"),
        (&fs.protect, "filesystem", "protect"),
        (&p.home.cache, "home", "cache"),
    ] {
        for raw in list {
            if let Err(why) = path_form(raw) {
                return Err(bad(
                    &[section, key],
                    Some(raw),
                    format!("{raw:?}: {why}"),
                    "start a path with / (absolute), ~/ (your home) or {project}/ (the project root)"
                        .into(),
                ));
            }
            if section == "filesystem" && matches!(key, "read" | "write") && exposes_all(raw) {
                return Err(bad(
                    &[section, key],
                    Some(raw),
                    format!("{raw:?} would expose every file of yours, secrets included"),
                    "grant the directories the command needs (\"~/.config/tool\"), not the whole home or machine".into(),
                ));
            }
        }
    }
    for (list, key) in [
        (&p.home.import, "import"),
        (&p.home.login, "login"),
        (&p.home.settings, "settings"),
        (&p.home.not_imported, "not_imported"),
    ] {
        for raw in list {
            let inside_home = raw.strip_prefix("~/").is_some_and(|r| !r.is_empty());
            if !inside_home || path_form(raw).is_err() {
                return Err(bad(
                    &["home", key],
                    Some(raw),
                    format!("{raw:?}: these paths are in your home, so they start with ~/"),
                    "write it as \"~/.tool\" (a file or directory in your home)".into(),
                ));
            }
        }
    }
    if let Some(raw) = p.home.own_keys.iter().find(|k| k.trim().is_empty()) {
        return Err(bad(
            &["home", "own_keys"],
            Some(raw),
            "an empty name".into(),
            "give the name the agent's key is stored under in its settings file, e.g. \"primaryApiKey\"".into(),
        ));
    }
    // "*" alone passes every variable (secret ones are still removed).
    for name in p.env.pass.iter().filter(|n| *n != "*") {
        let base = name.strip_suffix('*').unwrap_or(name);
        let why = var_name(base).err().or_else(|| {
            base.contains('*')
                .then_some("`*` may only end a name, as in \"MYAGENT_*\"")
        });
        if let Some(why) = why {
            return Err(bad(
                &["env", "pass"],
                Some(name),
                format!("{name:?}: {why}"),
                "give variable names (\"MYAGENT_API_KEY\"), or a prefix ending in `*` (\"MYAGENT_*\")"
                    .into(),
            ));
        }
    }
    for (name, value) in &p.env.set {
        let why = var_name(name).err().or_else(|| {
            value
                .contains('\0')
                .then_some("its value contains a NUL byte, which no variable can hold")
        });
        if let Some(why) = why {
            return Err(bad(
                &["env", "set"],
                Some(name),
                format!("{name:?}: {why}"),
                "write NAME = \"value\": a name of letters, digits and `_`, a value without NUL bytes".into(),
            ));
        }
    }
    if let Some(n) = p.limits.processes
        && !(1..=MAX_PROCESSES).contains(&n)
    {
        return Err(bad(
            &["limits", "processes"],
            None,
            format!("{n} is out of range (1 to {MAX_PROCESSES})"),
            format!(
                "the default is {}; raise it for builds that run many processes at once",
                super::DEFAULT_PROCESSES
            ),
        ));
    }
    for base in &p.extends {
        if base.trim().is_empty() {
            return Err(bad(
                &["extends"],
                Some(base),
                "an empty profile name".into(),
                format!(
                    "name a built-in or user profile (\"default\"), or a file; see {FORMAT_DOC}"
                ),
            ));
        }
    }
    Ok(())
}

/// `/abs`, `~`, `~/rel`, `{project}` or `{project}/rel`; anything else
/// would be skipped, or read relative to wherever guard was started.
pub fn path_form(raw: &str) -> Result<(), &'static str> {
    if raw.is_empty() {
        return Err("an empty path");
    }
    if raw.contains('\0') {
        return Err("contains a NUL byte");
    }
    if raw.starts_with('~') && raw != "~" && !raw.starts_with("~/") {
        return Err("`~user` is not supported: ~ is only your own home (~/...)");
    }
    if let Some(rest) = raw.strip_prefix("{project}") {
        if !rest.is_empty() && !rest.starts_with('/') {
            return Err("{project} must be followed by / (\"{project}/dir\")");
        }
    } else if raw.contains("{project}") {
        return Err("{project} may only start a path");
    }
    if raw.contains("{home}") || raw.contains("$HOME") || raw.contains("${") {
        return Err("placeholders other than {project} are not expanded (write ~/ for the home)");
    }
    if !(raw.starts_with('/') || raw.starts_with('~') || raw.starts_with("{project}")) {
        return Err("a relative path");
    }
    Ok(())
}

/// `/`, or the home itself: every file the user has.
fn exposes_all(raw: &str) -> bool {
    let trimmed = raw.trim_end_matches('/');
    trimmed.is_empty() || trimmed == "~"
}

/// An environment variable name a process can be given.
pub fn var_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("an empty variable name")
    } else if name.contains('=') {
        Err("a variable name cannot contain `=`")
    } else if name.contains('\0') {
        Err("a variable name cannot contain a NUL byte")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_forms() {
        for ok in ["/usr", "~", "~/.x", "{project}", "{project}/a", "/a/../b"] {
            assert_eq!(path_form(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "rel",
            "./rel",
            "~root/x",
            "{project}x",
            "/a/{project}",
            "{home}/x",
            "$HOME/x",
        ] {
            assert!(path_form(bad).is_err(), "{bad}");
        }
    }
}
