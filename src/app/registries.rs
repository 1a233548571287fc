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
            Registry::Cargo => {
                for url in cargo_registries(home, project) {
                    out.rules
                        .extend(rule_for(&url, "cargo's configured registry"));
                }
            }
            Registry::Go => {
                let Some((proxy, sumdb)) = go_configured(home, project) else {
                    continue;
                };
                for url in go_proxies(&proxy) {
                    out.rules
                        .extend(rule_for(&url, "go's configured module proxy"));
                }
                if let Some(url) = go_sumdb(&sumdb) {
                    out.rules.extend(rule_for(&url, "go's checksum database"));
                }
                // Set in the user's go env file, which is not in the view.
                for (name, value) in [("GOPROXY", proxy), ("GOSUMDB", sumdb)] {
                    let urls_clean = value
                        .split([',', '|', ' '])
                        .filter(|u| u.contains("://"))
                        .all(|u| clean(&u.to_string()));
                    if urls_clean {
                        out.env.push((name.to_string(), value));
                    }
                }
            }
        }
    }
    out
}

/// `https://host[:port]/path` → an allow rule for that host and port
/// (cargo's `sparse+` and `registry+` prefixes are not part of the scheme).
fn rule_for(url: &str, origin: &str) -> Option<Rule> {
    let url = url.trim();
    let url = url
        .strip_prefix("sparse+")
        .or_else(|| url.strip_prefix("registry+"))
        .unwrap_or(url);
    let (scheme, rest) = url.split_once("://")?;
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

/// npm's built-in default registry, as npm itself reports it (asked once
/// per npm installation: starting node costs ~0.2 s).
fn npm_default(npm: &Path, home: &Path) -> Option<String> {
    let url = remembered(home, "npm-default-registry", npm, "", || {
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
        (out.status.success() && url.contains("://")).then_some(url)
    });
    url.filter(|u| !u.is_empty())
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
/// (asked once per interpreter: importing pip costs ~0.2 s).
fn pip_default(python: &Path, home: &Path) -> Vec<String> {
    let urls = remembered(home, "pip-default-index", python, "", || {
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
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let urls: Vec<&str> = text.lines().collect();
        (out.status.success() && urls.len() == 2 && urls.iter().all(|u| u.contains("://")))
            .then(|| urls.join("\n"))
    });
    urls.map_or_else(Vec::new, |u| u.lines().map(str::to_string).collect())
}

/// What `ask` learns of a tool, remembered in guard's cache for as long as
/// the tool's file (`program`, as found in PATH) and `context` (the
/// settings that may change the answer) stay the same: asking costs a
/// process start, on every start of guard otherwise. A failed answer
/// (`None`: the tool is broken, an interpreter has no pip) is remembered
/// for an hour only, so a later install counts without the tool changing.
fn remembered(
    home: &Path,
    name: &str,
    program: &Path,
    context: &str,
    ask: impl FnOnce() -> Option<String>,
) -> Option<String> {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    };
    let key = format!("{}\t{}\t{context}", program.display(), stamp(program)).replace('\n', " ");
    let cache = crate::secrets::cache_dir(home).join(name);
    let recent = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < std::time::Duration::from_secs(3600))
    };
    if let Ok(text) = std::fs::read_to_string(&cache)
        && let Some((k, answer)) = text.split_once('\n')
        && k == key
    {
        let answer = answer.trim_end();
        if !answer.is_empty() {
            return Some(answer.to_string());
        }
        if recent(&cache) {
            return None;
        }
    }
    let answer = ask();
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(
        &cache,
        format!("{key}\n{}\n", answer.as_deref().unwrap_or("")),
    );
    answer
}

/// cargo's registries: the indexes of `[registries.*]` and of replacement
/// `[source.*]`s in the user's cargo config (`$CARGO_HOME/config.toml`;
/// never a project's `.cargo/config.toml`), `CARGO_REGISTRIES_*_INDEX`,
/// and, unless crates.io is replaced, cargo's own default as cargo itself
/// asks for it. Each sparse index's download host comes from the index's
/// `config.json` in the host's cargo cache, which only the host's cargo
/// writes (the sandbox's view of that cache is copy-on-write); an index
/// never used on the host yet brings its index host alone.
fn cargo_registries(home: &Path, project: &Path) -> Vec<String> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".cargo"));
    let mut urls = Vec::new();
    let mut replaced = false;
    for (k, v) in std::env::vars() {
        if k.starts_with("CARGO_REGISTRIES_") && k.ends_with("_INDEX") {
            urls.push(v);
        }
        replaced |= k == "CARGO_SOURCE_CRATES_IO_REPLACE_WITH";
    }
    for file in [cargo_home.join("config.toml"), cargo_home.join("config")] {
        if !outside_project(&file, project) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(config) = text.parse::<toml::Table>() else {
            continue;
        };
        let tables = |name: &str| {
            config
                .get(name)
                .and_then(|t| t.as_table())
                .map(|t| t.iter().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        for (_, r) in tables("registries") {
            urls.extend(r.get("index").and_then(|i| i.as_str()).map(str::to_string));
        }
        for (name, src) in tables("source") {
            urls.extend(
                src.get("registry")
                    .and_then(|i| i.as_str())
                    .map(str::to_string),
            );
            replaced |= name == "crates-io" && src.get("replace-with").is_some();
        }
    }
    if !replaced && let Some(cargo) = in_path("cargo", project) {
        urls.extend(cargo_default(&cargo, home));
    }
    let downloads: Vec<String> = urls
        .iter()
        .filter_map(|u| u.trim().strip_prefix("sparse+"))
        .flat_map(|index| cargo_downloads(&cargo_home, index, project))
        .collect();
    urls.extend(downloads);
    urls
}

/// The download URL (`dl`) of a sparse index, from the `config.json` the
/// host's cargo keeps of it in `registry/index/<host>-<hash>/`.
fn cargo_downloads(cargo_home: &Path, index: &str, project: &Path) -> Vec<String> {
    let Some(host) = index
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', ':', '?', '#']).next())
        .filter(|h| !h.is_empty())
    else {
        return Vec::new();
    };
    let dir = cargo_home.join("registry/index");
    if !outside_project(&dir, project) {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((h, hash)) = name.to_str().and_then(|n| n.rsplit_once('-')) else {
            continue;
        };
        if !h.eq_ignore_ascii_case(host) || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path().join("config.json")) else {
            continue;
        };
        let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        urls.extend(
            config
                .get("dl")
                .and_then(|d| d.as_str())
                .map(str::to_string),
        );
    }
    urls
}

/// cargo's built-in registry, as cargo itself reaches for it: a throwaway
/// package with one dependency is locked with an empty cargo home and
/// guard's listener as cargo's HTTP proxy, which takes the first request
/// (the index host, before any byte leaves the machine) and refuses it.
/// Asked once per cargo (and protocol setting): ~30 ms.
fn cargo_default(cargo: &Path, home: &Path) -> Option<String> {
    let protocol = std::env::var("CARGO_REGISTRIES_CRATES_IO_PROTOCOL").unwrap_or_default();
    let url = remembered(home, "cargo-default-registry", cargo, &protocol, || {
        let dir =
            crate::secrets::cache_dir(home).join(format!("cargo-probe-{}", std::process::id()));
        let url = cargo_probe(cargo, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        url
    });
    url.filter(|u| !u.is_empty())
}

fn cargo_probe(cargo: &Path, dir: &Path) -> Option<String> {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    std::fs::create_dir_all(dir.join("src")).ok()?;
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"guard-registry-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nitoa = \"1\"\n",
    )
    .ok()?;
    std::fs::write(dir.join("src/lib.rs"), "").ok()?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
    listener.set_nonblocking(true).ok()?;
    let proxy = format!("http://{}", listener.local_addr().ok()?);
    let mut child = std::process::Command::new(cargo)
        .arg("generate-lockfile")
        .current_dir(dir)
        .env("CARGO_HOME", dir.join("home"))
        .env("CARGO_HTTP_PROXY", &proxy)
        .env("CARGO_NET_RETRY", "0")
        .env("CARGO_NET_OFFLINE", "false")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    // rustup's first start of a toolchain can take a while.
    let deadline = Instant::now() + Duration::from_secs(10);
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => break None,
        }
    };
    let head = conn.and_then(|mut c| {
        c.set_nonblocking(false).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut buf = vec![0u8; 4096];
        let mut n = 0;
        while n < buf.len() && !buf[..n].contains(&b'\n') {
            match c.read(&mut buf[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        let _ = c.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    });
    let _ = child.kill();
    let _ = child.wait();
    let line = head?;
    let mut words = line.lines().next()?.split_whitespace();
    match (words.next()?, words.next()?) {
        ("CONNECT", authority) => Some(format!("https://{authority}/")),
        (_, url) if url.starts_with("http://") => Some(url.to_string()),
        _ => None,
    }
}

/// go's `GOPROXY` and `GOSUMDB` as `go env` reports them (the environment,
/// the user's go env file, go's defaults), asked once per go and setting.
fn go_configured(home: &Path, project: &Path) -> Option<(String, String)> {
    let go = in_path("go", project)?;
    // The go env file: `$GOENV`, else `$XDG_CONFIG_HOME/go/env`. One in
    // the project is the repository's, not the user's: not read.
    let env_file = std::env::var_os("GOENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(".config"))
                .join("go/env")
        });
    let env_file =
        (env_file.as_os_str() != "off" && outside_project(&env_file, project)).then_some(env_file);
    let file_stamp = env_file
        .as_ref()
        .and_then(|f| std::fs::metadata(f).ok())
        .and_then(|m| m.modified().ok())
        .map(|t| format!("{t:?}"))
        .unwrap_or_default();
    let setting = |n: &str| std::env::var(n).unwrap_or_default();
    let context = format!(
        "{} {} {} {file_stamp}",
        setting("GOPROXY"),
        setting("GOSUMDB"),
        env_file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
    );
    let answer = remembered(home, "go-module-proxy", &go, &context, || {
        let mut cmd = std::process::Command::new(&go);
        cmd.args(["env", "GOPROXY", "GOSUMDB"])
            .current_dir("/")
            // No toolchain switch (a download) to answer.
            .env("GOTOOLCHAIN", "local")
            .env("GOENV", env_file.as_deref().unwrap_or(Path::new("off")))
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let out = cmd.output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && text.lines().count() == 2).then(|| text.trim_end().to_string())
    })?;
    let (proxy, sumdb) = answer.split_once('\n')?;
    Some((proxy.to_string(), sumdb.to_string()))
}

/// The URLs of `GOPROXY`: a `,`/`|` list; `direct` and `off` name none.
fn go_proxies(proxy: &str) -> Vec<String> {
    proxy
        .split([',', '|'])
        .map(str::trim)
        .filter(|u| u.contains("://"))
        .map(str::to_string)
        .collect()
}

/// The URL of `GOSUMDB` (`name[+key] [url]`; the URL defaults to
/// `https://name`; `off` names none).
fn go_sumdb(sumdb: &str) -> Option<String> {
    let mut words = sumdb.split_whitespace();
    let name = words.next().filter(|n| *n != "off")?;
    Some(match words.next() {
        Some(url) => url.to_string(),
        None => format!("https://{}", name.split('+').next().unwrap_or(name)),
    })
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
    fn go_settings_name_their_hosts() {
        assert_eq!(
            go_proxies("https://proxy.example,direct|https://b.example/go|off"),
            ["https://proxy.example", "https://b.example/go"]
        );
        assert!(go_proxies("direct").is_empty());
        assert_eq!(
            go_sumdb("sum.example").as_deref(),
            Some("https://sum.example")
        );
        assert_eq!(
            go_sumdb("sum.example+ce6e7565+AY5qEHUk https://mirror.example/sumdb").as_deref(),
            Some("https://mirror.example/sumdb")
        );
        assert_eq!(go_sumdb("off"), None);
        assert_eq!(go_sumdb(""), None);
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
        assert_eq!(
            spec("sparse+https://index.example/").as_deref(),
            Some("index.example:443")
        );
        assert_eq!(
            spec("registry+https://git.example/index").as_deref(),
            Some("git.example:443")
        );
        assert_eq!(spec("file:///x"), None);
        assert_eq!(spec("nonsense"), None);
    }
}
