//! `[network] registries = ["npm"]`: allow the package registry the user's
//! own tools are configured to use. guard never names a registry host
//! itself (mirrors, corporate registries and the public default all come
//! from the tool), and never takes one from the project: a repository's
//! `.npmrc` (or a virtualenv's `pip.conf`) could otherwise open egress to
//! any host without `guard trust`.

use crate::net::allowlist::{Rule, parse_rule};
use crate::profile::network::Registry;
use std::path::{Path, PathBuf};

/// The registries of `registries` as each tool is configured for this
/// user, read once per start: the allow rules, and the environment the
/// sandbox's npm and pip need to use them. The user's npmrc and pip.conf
/// are not in the view (they may hold tokens); without that environment
/// npm and pip inside would use their built-in defaults, which the
/// allowlist may not hold (a mirror in the user's `~/.npmrc`). A tool that
/// is not installed contributes no rule (it cannot fetch).
pub struct Configured {
    pub rules: Vec<Rule>,
    /// Never a URL with credentials in it.
    pub env: Vec<(String, String)>,
}

pub fn configured(registries: &[Registry], home: &Path, project: &Path) -> Configured {
    let clean = |u: &String| {
        u.split_once("://")
            .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
            .is_some_and(|authority| !authority.contains('@'))
    };
    let mut out = Configured {
        rules: Vec::new(),
        env: Vec::new(),
    };
    for r in registries {
        match r {
            Registry::Npm => {
                let (scoped, default) = npm_registries(home, project);
                for url in scoped.iter().chain(&default) {
                    out.rules.extend(rule_for(url, "npm's configured registry"));
                }
                if let Some(url) = default.filter(clean) {
                    out.env.push(("npm_config_registry".to_string(), url));
                }
            }
            Registry::Pip => {
                let (index, extra) = pip_configured(home, project);
                for url in pip_indexes(index.clone(), extra.clone(), home, project) {
                    out.rules.extend(rule_for(&url, "pip's configured index"));
                }
                if let Some(url) = index.filter(clean) {
                    out.env.push(("PIP_INDEX_URL".to_string(), url));
                }
                let extra: Vec<String> = extra.into_iter().filter(clean).collect();
                if !extra.is_empty() {
                    out.env
                        .push(("PIP_EXTRA_INDEX_URL".to_string(), extra.join(" ")));
                }
            }
        }
    }
    out
}

/// `https://host[:port]/path` → an allow rule for that host and port.
fn rule_for(url: &str, origin: &str) -> Option<Rule> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    // Credentials in the URL (user:pass@host) are not part of the host.
    let authority = authority.rsplit('@').next()?;
    let spec = match (
        scheme.to_ascii_lowercase().as_str(),
        authority.contains(':'),
    ) {
        (_, true) => authority.to_string(),
        ("https", false) => format!("{authority}:443"),
        ("http", false) => format!("{authority}:80"),
        _ => return None,
    };
    let (host, port) = parse_rule(&spec).ok()?;
    Some(Rule {
        host,
        port,
        // A registry on a private address needs a profile rule saying so.
        private: false,
        origin: origin.into(),
    })
}

/// npm's scoped registries and its registry: the environment, the user's
/// and the global npmrc (never the project's), else npm's own default.
fn npm_registries(home: &Path, project: &Path) -> (Vec<String>, Option<String>) {
    let mut urls = Vec::new();
    let mut default = None;
    for (k, v) in std::env::vars() {
        let k = k.to_ascii_lowercase();
        if k == "npm_config_registry" {
            default = Some(v);
        } else if k.starts_with("npm_config_@") && k.ends_with(":registry") {
            urls.push(v);
        }
    }
    let user = std::env::var_os("NPM_CONFIG_USERCONFIG")
        .or_else(|| std::env::var_os("npm_config_userconfig"))
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".npmrc"));
    let npm = which("npm", project);
    // The global npmrc is {prefix}/etc/npmrc; the prefix defaults to the
    // directory above node's bin/.
    let global = std::env::var_os("NPM_CONFIG_GLOBALCONFIG")
        .map(PathBuf::from)
        .or_else(|| {
            let prefix = std::env::var_os("NPM_CONFIG_PREFIX")
                .map(PathBuf::from)
                .or_else(|| Some(in_path("node", project)?.parent()?.parent()?.to_path_buf()))?;
            Some(prefix.join("etc/npmrc"))
        });
    let files = [Some(user), global];
    let files = files
        .into_iter()
        .flatten()
        .filter(|f| outside_project(f, project));
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if k == "registry" {
                default.get_or_insert_with(|| v.to_string());
            } else if k.starts_with('@') && k.ends_with(":registry") {
                urls.push(v.to_string());
            }
        }
    }
    let default = default.or_else(|| npm.and_then(|npm| npm_default(&npm, home)));
    (urls, default)
}

/// npm's built-in default registry, as npm itself reports it (run once per
/// npm installation and cached: starting node costs ~0.2 s).
fn npm_default(npm: &Path, home: &Path) -> Option<String> {
    let meta = std::fs::metadata(npm).ok()?;
    let stamp = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let key = format!("{}\t{stamp}", npm.display());
    let cache = crate::secrets::cache_dir(home).join("npm-default-registry");
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Some((k, url)) = text.trim_end().rsplit_once('\n')
        && k == key
    {
        return Some(url.to_string());
    }
    // Outside the project (its .npmrc must not count) and without the
    // user's or global config (only npm's own default is wanted here;
    // missing files are fine, /dev/null for both is refused by npm).
    let out = std::process::Command::new(npm)
        .args(["config", "get", "registry"])
        .current_dir("/")
        .env("NPM_CONFIG_USERCONFIG", "/nonexistent/guard/user-npmrc")
        .env("NPM_CONFIG_GLOBALCONFIG", "/nonexistent/guard/global-npmrc")
        .env_remove("npm_config_registry")
        .env_remove("NPM_CONFIG_REGISTRY")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let url = String::from_utf8(out.stdout).ok()?.trim().to_string();
    if !out.status.success() || !url.contains("://") {
        return None;
    }
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&cache, format!("{key}\n{url}\n"));
    Some(url)
}

/// pip's indexes: the configured ones (see `pip_configured`), else pip's
/// own default index and the host its files are served from.
fn pip_indexes(
    index: Option<String>,
    mut urls: Vec<String>,
    home: &Path,
    project: &Path,
) -> Vec<String> {
    let default = || which("python3", project).map_or_else(Vec::new, |p| pip_default(&p, home));
    match index {
        Some(d) => {
            // pip's own index named in a config (`index-url =
            // https://pypi.org/simple/`): its files come from pip's file
            // host as well.
            let builtin = default();
            if builtin.first().is_some_and(|b| same_host(b, &d)) {
                urls.extend(builtin.into_iter().skip(1));
            }
            urls.push(d);
        }
        None => urls.extend(default()),
    }
    urls
}

/// Whether two URLs name the same host (and port).
fn same_host(a: &str, b: &str) -> bool {
    let host = |u: &str| {
        let (_, rest) = u.trim().split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        Some(authority.rsplit('@').next()?.to_ascii_lowercase())
    };
    host(a).is_some_and(|h| Some(h) == host(b))
}

/// pip's configured index (PIP_INDEX_URL, else the last pip.conf's) and
/// extra indexes: PIP_EXTRA_INDEX_URL and the `index-url` and
/// `extra-index-url` of the user's and the global pip.conf (never a
/// virtualenv's: it lies in the project).
fn pip_configured(home: &Path, project: &Path) -> (Option<String>, Vec<String>) {
    let mut urls = Vec::new();
    if let Ok(v) = std::env::var("PIP_EXTRA_INDEX_URL") {
        urls.extend(v.split_whitespace().map(str::to_string));
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".config"));
    // pip's own order, lowest first: global, user; PIP_CONFIG_FILE on top.
    let mut files = vec![
        PathBuf::from("/etc/xdg/pip/pip.conf"),
        PathBuf::from("/etc/pip.conf"),
        home.join(".pip/pip.conf"),
        xdg.join("pip/pip.conf"),
    ];
    files.extend(std::env::var_os("PIP_CONFIG_FILE").map(PathBuf::from));
    let mut configured = None;
    for file in files.into_iter().filter(|f| outside_project(f, project)) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let (index, extra) = pip_conf_urls(&text);
        configured = index.or(configured);
        urls.extend(extra);
    }
    (std::env::var("PIP_INDEX_URL").ok().or(configured), urls)
}

/// `index-url` and the `extra-index-url` list of one pip.conf (INI: a value
/// may continue on indented lines; [global], [install] and [download] all
/// count; pip accepts `index_url` too).
fn pip_conf_urls(text: &str) -> (Option<String>, Vec<String>) {
    let (mut index, mut extra) = (None, Vec::new());
    let mut key = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with(['#', ';', '[']) {
            key.clear();
            continue;
        }
        let value = if line.starts_with([' ', '\t']) {
            t
        } else if let Some((k, v)) = t.split_once(['=', ':']) {
            key = k.trim().replace('_', "-");
            v.trim()
        } else {
            continue;
        };
        match key.as_str() {
            "index-url" if !value.is_empty() => index = Some(value.to_string()),
            "extra-index-url" => extra.extend(value.split_whitespace().map(str::to_string)),
            _ => {}
        }
    }
    (index, extra)
}

/// pip's built-in index and file host, as the pip of `python` reports them
/// (asked once per interpreter and cached: importing pip costs ~0.2 s).
fn pip_default(python: &Path, home: &Path) -> Vec<String> {
    let stamp = std::fs::metadata(python)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let key = format!("{}\t{stamp}", python.display());
    let cache = crate::secrets::cache_dir(home).join("pip-default-index");
    // An interpreter without pip (Debian's, until python3-pip) is
    // remembered too, for a day: asking costs ~25 ms of every start, and
    // pip may be installed later without the interpreter changing.
    let fresh = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < std::time::Duration::from_secs(24 * 3600))
    };
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Some((k, urls)) = text.split_once('\n')
        && k == key
        && (!urls.trim().is_empty() || fresh(&cache))
    {
        return urls.lines().map(str::to_string).collect();
    }
    let remember = |text: &str| {
        if let Some(dir) = cache.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&cache, format!("{key}\n{text}"));
    };
    // Isolated (-I): neither the project (the working directory) nor
    // PYTHON* variables choose what runs.
    let out = std::process::Command::new(python)
        .args([
            "-I",
            "-c",
            "from pip._internal.models.index import PyPI\n\
             print(PyPI.simple_url)\nprint('https://' + PyPI.file_storage_domain + '/')",
        ])
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let urls: Vec<String> = text.lines().map(str::to_string).collect();
    if !out.status.success() || urls.len() != 2 || !urls.iter().all(|u| u.contains("://")) {
        remember("");
        return Vec::new();
    }
    remember(&text);
    urls
}

/// Whether a config file named by the environment (`PIP_CONFIG_FILE`,
/// `NPM_CONFIG_USERCONFIG`, a prefix's `etc/npmrc`) lies outside the
/// project, as the kernel resolves it. One in the project (a CI setting
/// such as `PIP_CONFIG_FILE=$PWD/pip.conf`, exported by direnv) is the
/// repository's, and writable inside the sandbox: its index would open
/// egress to any host without `guard trust`, and a session could name the
/// host the next one may send to.
fn outside_project(file: &Path, project: &Path) -> bool {
    let project = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
    let file = if file.is_absolute() {
        file.to_path_buf()
    } else {
        // Relative: read from guard's working directory, in the project.
        return false;
    };
    // A file that is not there yet: where its directory is.
    let real = std::fs::canonicalize(&file).or_else(|_| {
        let parent = file.parent().unwrap_or(&file);
        std::fs::canonicalize(parent).map(|p| p.join(file.file_name().unwrap_or_default()))
    });
    match real {
        Ok(r) => !r.starts_with(&project),
        // Nowhere to be read from: nothing is taken from it.
        Err(_) => true,
    }
}

/// `name` in PATH, as found there, never in the project. The project is
/// writable inside the sandbox and comes from the repository: an `npm`
/// there (`node_modules/.bin` added by direnv, or a relative entry such as
/// `.` or an empty one, which resolve in guard's working directory) would
/// run on the host, unsandboxed, and choose the registry (or, as `node`,
/// the npmrc) guard allows. Both sides canonical: a link in PATH may lead
/// into the project. A directory of the project is never looked in, even
/// when the program there is a link out of it: the sandbox chose where it
/// leads (a script it wrote into its persistent home, a host directory).
fn in_path(name: &str, project: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let project = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .filter(|d| std::fs::canonicalize(d).is_ok_and(|c| !c.starts_with(&project)))
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .find(|p| std::fs::canonicalize(p).is_ok_and(|c| !c.starts_with(&project)))
}

/// `name` in PATH, symlinks resolved.
fn which(name: &str, project: &Path) -> Option<PathBuf> {
    in_path(name, project).and_then(|p| std::fs::canonicalize(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_conf_index_and_extra_indexes() {
        let conf = "[global]\n# index-url = https://ignored.example/\nindex_url = https://mirror.example/simple\n\
                    timeout = 60\n[install]\nextra-index-url =\n    https://a.example/simple\n    https://b.example:8443/simple\n";
        let (index, extra) = pip_conf_urls(conf);
        assert_eq!(index.as_deref(), Some("https://mirror.example/simple"));
        assert_eq!(
            extra,
            ["https://a.example/simple", "https://b.example:8443/simple"]
        );
        assert_eq!(
            pip_conf_urls("[global]\ncert = /etc/ssl/x.crt\n"),
            (None, vec![])
        );
    }

    #[test]
    fn urls_become_host_port_rules() {
        let spec = |u: &str| rule_for(u, "t").map(|r| r.spec());
        assert_eq!(spec("https://r.example/").as_deref(), Some("r.example:443"));
        assert_eq!(spec("http://r.example").as_deref(), Some("r.example:80"));
        assert_eq!(
            spec("https://token@r.example:8443/npm/").as_deref(),
            Some("r.example:8443")
        );
        assert_eq!(spec("file:///x"), None);
        assert_eq!(spec("nonsense"), None);
    }
}
