//! Project profiles (`.guard.toml`) can only tighten, unless trusted.
//!
//! Threat model: the repository is attacker-controlled content (a cloned
//! project, or a file the agent wrote in an earlier session). A project
//! profile that widens anything — paths outside the project, environment
//! names, ptrace, process limits, persistent homes, caches — applies only
//! after the user ran `guard trust`, which shows exactly what it widens and
//! pins the file's SHA-256; any later change asks again. Inside the sandbox
//! the file is protected (read-only, and a new one is moved aside).

use super::{Layer, Profile};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const PROJECT_FILE: &str = ".guard.toml";

/// What a project profile adds on top of the base profile that widens
/// access. Empty: it only narrows, and applies without trust.
pub fn widenings(
    base: &Profile,
    project_layers: &[Layer],
    home: &Path,
    project: &Path,
) -> Vec<String> {
    let mut merged = base.clone();
    for l in project_layers {
        merged.merge(&l.profile);
    }
    let mut out = Vec::new();
    let real_project = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
    let inside_project = |raw: &str| {
        let Some(p) = super::expand_path(raw, home, project) else {
            return false;
        };
        // The kernel resolves a link before the `..` after it:
        // `{project}/link/..` with `link -> ~/private/x` is `~/private`.
        if p.components().any(|c| c == std::path::Component::ParentDir) {
            return false;
        }
        normalize(&p).starts_with(project) && no_link_out(&p, project, &real_project)
    };
    for (list, base_list, key) in [
        (
            &merged.filesystem.read,
            &base.filesystem.read,
            "filesystem.read",
        ),
        (
            &merged.filesystem.write,
            &base.filesystem.write,
            "filesystem.write",
        ),
    ] {
        for p in list.iter().filter(|p| !base_list.contains(p)) {
            // The project is read-write already: granting inside it adds nothing.
            if !inside_project(p) {
                out.push(format!("{key} += {p:?} (outside the project)"));
            }
        }
    }
    for n in merged
        .env
        .pass
        .iter()
        .filter(|n| !base.env.pass.contains(n))
    {
        out.push(format!("env.pass += {n:?}"));
    }
    for (k, v) in &merged.env.set {
        if base.env.set.get(k) != Some(v) {
            out.push(format!("env.set {k} = {v:?}"));
        }
    }
    if merged.isolation == Some(super::Isolation::Landlock)
        && base.isolation != Some(super::Isolation::Landlock)
    {
        out.push("isolation = \"landlock\" (weaker than full isolation)".into());
    }
    if merged.syscalls.ptrace == Some(true) && base.syscalls.ptrace != Some(true) {
        out.push("syscalls.ptrace = true".into());
    }
    let procs = |p: &Profile| p.limits.processes.unwrap_or(super::DEFAULT_PROCESSES);
    if procs(&merged) > procs(base) {
        out.push(format!("limits.processes = {}", procs(&merged)));
    }
    for a in merged
        .network
        .allow
        .iter()
        .filter(|a| !base.network.allow.contains(a))
    {
        let private = if a.private {
            " (private addresses allowed)"
        } else {
            ""
        };
        out.push(format!("network.allow += {:?}{private}", a.raw));
    }
    for (name, addr) in &merged.network.hosts {
        if base.network.hosts.get(name) != Some(addr) {
            out.push(format!("network.hosts {name} = {}", addr.0));
        }
    }
    for r in merged
        .network
        .registries
        .iter()
        .filter(|r| !base.network.registries.contains(r))
    {
        out.push(format!("network.registries += {r:?}"));
    }
    if merged.network.disabled == Some(false) && base.network.disabled == Some(true) {
        out.push("network.disabled = false".into());
    }
    // Fewer secrets found is wider: rules turned off, paths not scanned or
    // whose findings are ignored.
    for (list, base_list, key) in [
        (
            &merged.secrets.disable,
            &base.secrets.disable,
            "secrets.disable",
        ),
        (
            &merged.secrets.ignore,
            &base.secrets.ignore,
            "secrets.ignore",
        ),
        (&merged.secrets.skip, &base.secrets.skip, "secrets.skip"),
    ] {
        for item in list
            .iter()
            .filter(|i| !base_list.iter().any(|b| b.get_ref() == i.get_ref()))
        {
            out.push(format!("{key} += {:?}", item.get_ref()));
        }
    }
    if merged.home.persist == Some(true) && base.home.persist != Some(true) {
        out.push("home.persist = true".into());
    }
    for (key, now, before) in [
        ("import", &merged.home.import, &base.home.import),
        ("login", &merged.home.login, &base.home.login),
        ("settings", &merged.home.settings, &base.home.settings),
        ("own_keys", &merged.home.own_keys, &base.home.own_keys),
    ] {
        for i in now.iter().filter(|i| !before.contains(i)) {
            out.push(format!("home.{key} += {i:?}"));
        }
    }
    for c in merged
        .home
        .cache
        .iter()
        .filter(|c| !base.home.cache.contains(c))
    {
        out.push(format!("home.cache += {c:?}"));
    }
    out
}

/// Does every match of `path` lie in `project` as the kernel resolves it?
/// A directory on the way may be a link the repository ships
/// (`{project}/link/sub` with `link -> ~/private`). The last component is
/// left out: a link there is never followed out of the writable project
/// (`policy::resolve`). Checked on every run, so a link made later is seen.
fn no_link_out(path: &Path, project: &Path, real_project: &Path) -> bool {
    crate::host::expand_glob(path).iter().all(|m| {
        // Only directories in the project: the project's own path is the
        // user's choice.
        let mut dir = m.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(project)) {
            if let Ok(real) = std::fs::canonicalize(d) {
                return real.starts_with(real_project);
            }
            dir = d.parent();
        }
        true
    })
}

/// Lexically resolve `.` and `..` (no filesystem access).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Store {
    #[serde(default)]
    trusted: Vec<Pin>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pin {
    path: PathBuf,
    sha256: String,
}

fn store_path() -> Result<PathBuf> {
    crate::host::config_dir()
        .map(|d| d.join("trust.toml"))
        .ok_or_else(|| {
            Error::usage_hint(
                "cannot locate the trust store",
                "set HOME or XDG_CONFIG_HOME",
            )
        })
}

pub fn digest(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn load_store() -> Result<Store> {
    let path = store_path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| Error::Profile {
            location: path.display().to_string(),
            msg: e.message().to_string(),
            hint: Some("delete the file and run `guard trust` again".into()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Store::default()),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// What `guard trust` pins for a project file: the hash of its text and,
/// when it extends other files (`extends = ["./ci/guard.toml"]`, writable
/// by the sandbox if it lies in the project), of what each of them says, so
/// that changing an extended file asks again just like editing the file.
/// Built-in layers are part of guard itself and left out; a file that
/// extends nothing keeps the plain hash of its text.
pub fn project_digest(text: &str, layers: &[Layer]) -> String {
    let own = layers.len().saturating_sub(1);
    let mut all = text.to_string();
    for l in layers[..own]
        .iter()
        .filter(|l| !l.origin.starts_with("built-in:"))
    {
        // A layer that cannot be written out is still pinned by its origin
        // and by a marker: trust then never matches a later, readable form.
        let body = toml::to_string(&l.profile).unwrap_or_else(|e| format!("<unserializable: {e}>"));
        all.push_str(&format!("\n\0extends {}\0{body}", l.origin));
    }
    digest(&all)
}

/// Is this exact content of `file` (and of what it extends) trusted?
/// `sum`: [`project_digest`].
pub fn is_trusted(file: &Path, sum: &str) -> Result<bool> {
    Ok(load_store()?
        .trusted
        .iter()
        .any(|p| p.path == file && p.sha256 == sum))
}

/// Pin `file` with `sum` ([`project_digest`]), replacing an older pin.
pub fn pin(file: &Path, sum: &str) -> Result<PathBuf> {
    let path = store_path()?;
    let mut store = load_store()?;
    store.trusted.retain(|p| p.path != file);
    store.trusted.push(Pin {
        path: file.to_path_buf(),
        sha256: sum.to_string(),
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    let body = toml::to_string(&store)
        .map_err(|e| Error::usage(format!("cannot write the trust store: {e}")))?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, body).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("write", &path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(text: &str) -> Vec<Layer> {
        vec![Layer {
            origin: "project".into(),
            profile: super::super::parse(text, "p").unwrap(),
        }]
    }

    #[test]
    fn narrowing_is_not_widening() {
        let base = super::super::load("default").unwrap().profile;
        let w = widenings(
            &base,
            &layer(
                "version = 1\n[filesystem]\nhide = [\"{project}/secrets\"]\nwrite = [\"{project}/out\"]\n",
            ),
            Path::new("/home/u"),
            Path::new("/home/u/p"),
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn widening_is_listed() {
        let base = super::super::load("default").unwrap().profile;
        let w = widenings(
            &base,
            &layer(
                "version = 1\n[filesystem]\nread = [\"~/.ssh\", \"{project}/../other\"]\n[env]\npass = [\"AWS_SECRET\"]\n[syscalls]\nptrace = true\n",
            ),
            Path::new("/home/u"),
            Path::new("/home/u/p"),
        );
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(w[0].contains("~/.ssh"));
        assert!(w[1].contains("../other"));
    }
}
