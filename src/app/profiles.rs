//! `guard profile list|show`, `guard trust`, `guard shim install`.

use super::project_layers;
use crate::error::{Error, Result};
use crate::host;
use crate::profile;
use std::path::{Path, PathBuf};

pub fn profile_list() -> String {
    let mut out = String::new();
    for name in profile::builtin_names() {
        let desc = profile::load(name)
            .ok()
            .and_then(|l| l.profile.description)
            .unwrap_or_default();
        out.push_str(&format!("{name:<14} built-in  {desc}\n"));
    }
    if let Some(dir) = profile::user_profile_dir() {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".toml")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        for n in names {
            out.push_str(&format!(
                "{n:<14} user      {}\n",
                dir.join(format!("{n}.toml")).display()
            ));
        }
    }
    out
}

/// The merged profile as TOML-like lines, each with the file it came from.
pub fn profile_show(loaded: &profile::Loaded) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "# profile {} (layers, lowest first):", loaded.name);
    for l in &loaded.layers {
        let _ = writeln!(s, "#   {}", l.origin);
    }
    let origin_of = |pick: &dyn Fn(&profile::Profile) -> bool| {
        loaded
            .layers
            .iter()
            .rev()
            .find(|l| pick(&l.profile))
            .map(|l| l.origin.as_str())
            .unwrap_or("-")
    };
    let p = &loaded.profile;
    let list = |s: &mut String,
                section: &str,
                key: &str,
                items: &[String],
                get: &dyn Fn(&profile::Profile) -> Vec<String>| {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(s, "\n[{section}] {key}");
        for item in items {
            let from = origin_of(&|pr| get(pr).contains(item));
            let _ = writeln!(s, "  {:<50} # {from}", format!("{item:?},"));
        }
    };
    if let Some(level) = p.isolation {
        let _ = writeln!(
            s,
            "\nisolation = {:?}  # {}",
            level.label(),
            origin_of(&|pr| pr.isolation.is_some())
        );
    }
    list(&mut s, "filesystem", "read", &p.filesystem.read, &|pr| {
        pr.filesystem.read.clone()
    });
    list(&mut s, "filesystem", "write", &p.filesystem.write, &|pr| {
        pr.filesystem.write.clone()
    });
    list(&mut s, "filesystem", "hide", &p.filesystem.hide, &|pr| {
        pr.filesystem.hide.clone()
    });
    list(
        &mut s,
        "filesystem",
        "protect",
        &p.filesystem.protect,
        &|pr| pr.filesystem.protect.clone(),
    );
    if let Some(persist) = p.home.persist {
        let _ = writeln!(
            s,
            "\n[home] persist = {persist}  # {}",
            origin_of(&|pr| pr.home.persist.is_some())
        );
    }
    list(&mut s, "home", "import", &p.home.import, &|pr| {
        pr.home.import.clone()
    });
    list(&mut s, "home", "login", &p.home.login, &|pr| {
        pr.home.login.clone()
    });
    list(&mut s, "home", "settings", &p.home.settings, &|pr| {
        pr.home.settings.clone()
    });
    list(&mut s, "home", "own_keys", &p.home.own_keys, &|pr| {
        pr.home.own_keys.clone()
    });
    list(
        &mut s,
        "home",
        "not_imported",
        &p.home.not_imported,
        &|pr| pr.home.not_imported.clone(),
    );
    list(&mut s, "home", "cache", &p.home.cache, &|pr| {
        pr.home.cache.clone()
    });
    list(&mut s, "env", "pass", &p.env.pass, &|pr| {
        pr.env.pass.clone()
    });
    if !p.env.set.is_empty() {
        let _ = writeln!(s, "\n[env.set]");
        for (k, v) in &p.env.set {
            let from = origin_of(&|pr| pr.env.set.get(k) == Some(v));
            let _ = writeln!(s, "  {:<50} # {from}", format!("{k} = {v:?}"));
        }
    }
    if !p.network.allow.is_empty() {
        let _ = writeln!(s, "\n[network] allow");
        for a in &p.network.allow {
            let from = origin_of(&|pr| pr.network.allow.contains(a));
            let private = if a.private { " (private = true)" } else { "" };
            let _ = writeln!(s, "  {:<50} # {from}", format!("{:?},{private}", a.raw));
        }
    }
    for r in &p.network.registries {
        let from = origin_of(&|pr| pr.network.registries.contains(r));
        let name = format!("{r:?}").to_ascii_lowercase();
        let _ = writeln!(
            s,
            "[network] registries += {name:?}  (as the tool is configured)  # {from}"
        );
    }
    for (name, addr) in &p.network.hosts {
        let from = origin_of(&|pr| pr.network.hosts.get(name) == Some(addr));
        let _ = writeln!(s, "[network.hosts] {name} = {}  # {from}", addr.0);
    }
    if let Some(d) = p.network.disabled {
        let _ = writeln!(
            s,
            "[network] disabled = {d}  # {}",
            origin_of(&|pr| pr.network.disabled.is_some())
        );
    }
    let _ = writeln!(
        s,
        "\n[syscalls] ptrace = {}  # {}",
        p.syscalls.ptrace.unwrap_or(false),
        origin_of(&|pr| pr.syscalls.ptrace.is_some())
    );
    let _ = writeln!(
        s,
        "[limits] processes = {}  # {}",
        p.limits.processes.unwrap_or(profile::DEFAULT_PROCESSES),
        origin_of(&|pr| pr.limits.processes.is_some())
    );
    s
}

/// `guard shim install`: one small script per agent that finds the real
/// command further down PATH and runs it under guard; inside a sandbox
/// (GUARD_SANDBOX set) it runs the command directly.
pub fn shim_install(agents: &[String], dir: Option<PathBuf>) -> Result<i32> {
    let dir = match dir {
        Some(d) => d,
        None => host::data_dir()
            .map(|d| d.join("shims"))
            .ok_or_else(|| Error::usage_hint("cannot locate a data directory", "pass --dir DIR"))?,
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    let guard_exe =
        std::env::current_exe().map_err(|e| Error::sys("locate the guard binary", e))?;
    for agent in agents {
        if agent.is_empty() || agent.contains(['/', '\'', '"', '\\', '$', '`']) {
            return Err(Error::usage(format!("not a command name: {agent:?}")));
        }
        let script = format!(
            r#"#!/bin/sh
# guard shim: runs `{agent}` inside guard's sandbox. Written by `guard shim install`.
shim_dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
rest=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$shim_dir" | paste -sd: -)
real=$(PATH=$rest command -v {agent}) || {{ echo "guard shim: {agent} not found in PATH" >&2; exit 127; }}
if [ -n "$GUARD_SANDBOX" ]; then exec "$real" "$@"; fi
exec '{guard}' run -- "$real" "$@"
"#,
            guard = guard_exe.display()
        );
        let path = dir.join(agent);
        std::fs::write(&path, script).map_err(|e| Error::io("write", &path, e))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| Error::io("chmod", &path, e))?;
        println!("wrote {}", path.display());
    }
    println!(
        "put it first in PATH (e.g. in ~/.profile): export PATH=\"{}:$PATH\"",
        dir.display()
    );
    Ok(0)
}

/// `guard trust [DIR]`: show what the project profile widens, pin its hash.
pub fn trust(dir: Option<&Path>) -> Result<i32> {
    let cwd = super::current_dir()?;
    let project = host::find_project(dir, &cwd)?;
    let file = project.join(profile::trust::PROJECT_FILE);
    if std::fs::symlink_metadata(&file).is_err() {
        return Err(Error::usage_hint(
            format!(
                "{} has no {}",
                project.display(),
                profile::trust::PROJECT_FILE
            ),
            "run guard trust in a project that has a .guard.toml",
        ));
    }
    // As `guard run` reads it: the file itself, never through a link.
    let text = profile::read_profile(&file, false)?;
    let user = host::current_user();
    let layers = project_layers(&file, &text)?;
    let base = profile::load("default")?.profile;
    let widens = profile::trust::widenings(&base, &layers, &user.home, &project);
    if widens.is_empty() {
        println!(
            "{} only narrows the sandbox; it applies without trust.",
            file.display()
        );
    } else {
        println!("{} widens the sandbox:", file.display());
        for w in &widens {
            println!("  {w}");
        }
    }
    let sum = profile::trust::project_digest(&text, &layers);
    let store = profile::trust::pin(&file, &sum)?;
    println!(
        "trusted: sha256 {} pinned in {} (any change to the file or what it extends asks again)",
        &sum[..16],
        store.display()
    );
    Ok(0)
}
