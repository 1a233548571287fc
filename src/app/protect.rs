//! Files in the project that would run later outside the sandbox (git
//! hooks and config, .envrc, editor tasks): the host-side half of their
//! protection. The mount view makes existing ones read-only; what cannot be
//! mounted — a protected path that does not exist yet — is watched during
//! the run and moved aside as soon as the sandbox creates it.

use super::git_config;
use crate::host;
use crate::policy::{self, Candidate};
use std::collections::HashSet;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// A protected path inside `.git` that does not exist yet (no hooks dir
/// after `git init --template=`, no config.worktree) would be creatable by
/// the sandbox. Inside `.git` an empty placeholder is invisible to git and
/// harmless, so create one for a read-only mount to stand on: a directory
/// for `hooks`/`info`, an empty file otherwise. Every step is relative to a
/// directory opened without following symlinks: a `.git` that is a link
/// (planted by an earlier session) gets nothing.
pub fn ensure_git_placeholders(candidates: &[Candidate], project: &Path) {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let git = project.join(".git");
    for c in candidates {
        if c.access != policy::Access::Protected || !c.path.starts_with(&git) || c.path == git {
            continue;
        }
        let Ok(rel) = c.path.strip_prefix(project) else {
            continue;
        };
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let Some(dir) = host::open_dir_beneath(project, parent) else {
            continue;
        };
        // Only where an empty placeholder means "nothing" to git: an empty
        // `commondir` or `worktrees` file would break the repository (those
        // are moved aside after the run instead, if the sandbox made them).
        let is_dir = match name.to_str() {
            Some("hooks" | "info") => true,
            Some("config.worktree") => false,
            _ => continue,
        };
        let _ = if is_dir {
            mkdirat(&dir, name, Mode::from_bits_truncate(0o755)).map(drop)
        } else {
            openat(
                &dir,
                name,
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_WRONLY
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        };
    }
}

/// Protected paths in the project reached through a symlink the user
/// already has (`.vscode -> ~/dotfiles/vscode`) are taken out of the
/// candidates; the links themselves, with their targets, are returned to be
/// kept as they are (`restore_links` puts one back if the sandbox replaced
/// it). Protecting the path through the link cannot work: nothing can be
/// mounted on a link (the mount would land on its target, which may not
/// even be in the sandbox), and the check after the run would take the
/// user's link for one the sandbox planted and move it aside.
pub fn drop_through_links(
    candidates: &mut Vec<Candidate>,
    project: &Path,
) -> Vec<(PathBuf, PathBuf)> {
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut kept = Vec::with_capacity(candidates.len());
    for mut c in candidates.drain(..) {
        if c.access != policy::Access::Protected {
            kept.push(c);
            continue;
        }
        let Ok(rel) = c.path.strip_prefix(project).map(Path::to_path_buf) else {
            kept.push(c);
            continue;
        };
        let mut dir = project.to_path_buf();
        let mut through_link = false;
        for comp in rel.parent().into_iter().flat_map(Path::iter) {
            dir.push(comp);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&dir)
                        && !links.iter().any(|(l, _)| *l == dir)
                    {
                        links.push((dir.clone(), target));
                    }
                    through_link = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break, // missing from here down
            }
        }
        if !through_link {
            kept.push(c);
            continue;
        }
        // A link to elsewhere in the project (`.git -> .git-main`): protect
        // the path where it really is. One leading out of the project: the
        // sandbox cannot write there anyway (outside the grants).
        if let Ok(real_dir) = std::fs::canonicalize(&dir)
            && real_dir.starts_with(project)
            && let Ok(rest) = c.path.strip_prefix(&dir)
        {
            c.path = real_dir.join(rest);
            kept.push(c);
        }
    }
    *candidates = kept;
    links
}

/// The directory hooks of the git directory `dir` run in: its worktree's
/// top (a bare repository's own directory).
pub fn worktree_of(dir: &Path) -> PathBuf {
    match dir.file_name() {
        Some(n) if n == ".git" => dir.parent().unwrap_or(dir).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// The repository of a project whose `.git` is a file naming a git
/// directory outside it: a linked worktree (`git worktree add`, as agents
/// working in parallel use) or a submodule's checkout.
pub struct Linked {
    /// The directory `.git` names (`<repo>/.git/worktrees/<name>`).
    pub git_dir: PathBuf,
    /// Where objects, refs and config are (`<repo>/.git`; the git
    /// directory itself for a submodule).
    pub common: PathBuf,
}

pub fn linked_repository(project: &Path) -> Option<Linked> {
    let dot_git = project.join(".git");
    if !std::fs::symlink_metadata(&dot_git).ok()?.is_file() {
        return None;
    }
    let text = host::read_small(&dot_git, 4096)?;
    let target = std::str::from_utf8(&text)
        .ok()?
        .lines()
        .next()?
        .strip_prefix("gitdir:")?
        .trim();
    let git_dir = std::fs::canonicalize(project.join(target)).ok()?;
    // One inside the project is in view already (and checked after the run).
    if git_dir.starts_with(project) {
        return None;
    }
    let common = match host::read_small(&git_dir.join("commondir"), 4096) {
        Some(t) => {
            let rel = std::str::from_utf8(&t).ok()?.lines().next()?.to_string();
            std::fs::canonicalize(git_dir.join(rel)).ok()?
        }
        None => git_dir.clone(),
    };
    let is_dir = |p: PathBuf| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let valid = is_dir(common.join("objects"))
        && is_dir(common.join("refs"))
        && std::fs::symlink_metadata(git_dir.join("HEAD")).is_ok_and(|m| m.is_file())
        && !common.starts_with(project);
    valid.then_some(Linked { git_dir, common })
}

/// The linked repository writable (git commits there), with the project's
/// `.git` protections applied to it; its worktree's own config and
/// `commondir` read-only too. Its `worktrees` directory stays writable for
/// the linked worktree's own index and HEAD. The rest of the main worktree
/// (its files) is not granted.
pub fn linked_candidates(linked: &Linked, protect: &[String]) -> Vec<Candidate> {
    let origin = format!(
        "the repository of this linked worktree ({})",
        linked.common.display()
    );
    let mut out = vec![Candidate {
        path: linked.common.clone(),
        access: policy::Access::ReadWrite,
        origin: origin.clone(),
        required: false,
    }];
    let mut protected: Vec<PathBuf> = Vec::new();
    for suffix in protect
        .iter()
        .filter_map(|raw| raw.strip_prefix("{project}/.git/"))
    {
        protected.push(linked.common.join(suffix));
    }
    protected.push(linked.git_dir.join("config.worktree"));
    protected.push(linked.git_dir.join("commondir"));
    // The main checkout's HEAD and index (this worktree has its own in its
    // git directory): a HEAD the sandbox re-pointed, or content it staged
    // there, would go into the user's next commit in that checkout.
    if linked.git_dir != linked.common {
        for name in ["HEAD", "index"] {
            let p = linked.common.join(name);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                protected.push(p);
            }
        }
    }
    for p in protected {
        for path in host::expand_glob(&p) {
            out.push(Candidate {
                path,
                access: policy::Access::Protected,
                origin: origin.clone(),
                required: false,
            });
        }
    }
    out
}

/// The git directories of the linked worktrees of the repositories
/// `commons` whose checkout lies outside the project, read-only whole
/// (`own` is the project's, when it is a linked worktree itself). Their
/// HEAD, index and logs are the user's work in that checkout, which the
/// sandbox cannot see: its `git worktree prune` would delete them, a HEAD
/// it rewrote would have git there say "not a git repository", or put the
/// user's next commit on another branch. Those inside the project are the
/// sandbox's to work in (`git worktree add .claude/worktrees/x`).
pub fn outside_worktree_candidates(
    commons: &[PathBuf],
    project: &Path,
    own: Option<&Path>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for common in commons {
        let Ok(rd) = std::fs::read_dir(common.join("worktrees")) else {
            continue;
        };
        for dir in rd.flatten().map(|e| e.path()) {
            if !dir.is_dir()
                || own.is_some_and(|o| std::fs::canonicalize(&dir).is_ok_and(|d| d == o))
            {
                continue;
            }
            // Where git says the checkout is (`gitdir` names its `.git`
            // file); one that cannot be told is kept too.
            let checkout = super::repos::worktree_checkout(&dir);
            if checkout.is_some_and(|c| c.starts_with(project)) {
                continue;
            }
            out.push(Candidate {
                path: dir,
                access: policy::Access::Protected,
                origin: "the git directory of a worktree outside the project".into(),
                required: false,
            });
        }
    }
    out
}

/// Whether a directory on the way from `project` to `path` is a regular
/// file now.
pub fn below_a_file(path: &Path, project: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(project) else {
        return false;
    };
    let mut dir = project.to_path_buf();
    for comp in rel.parent().into_iter().flat_map(Path::iter) {
        dir.push(comp);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_file() => return true,
            Ok(m) if m.is_dir() => {}
            _ => return false,
        }
    }
    false
}

/// The project's `.git` protections (`{project}/.git/hooks` …), applied to
/// every git directory the scan found deeper in the project, and in the
/// directories granted writable outside it (`writable`: `--rw ../lib`,
/// where the user commits as much as in the project).
pub fn nested_git_candidates(
    git_dirs: &[PathBuf],
    protect: &[String],
    project: &Path,
    linked: Option<&Path>,
    writable: &[PathBuf],
) -> Vec<Candidate> {
    let top = project.join(".git");
    let suffixes: Vec<&str> = protect
        .iter()
        .filter_map(|raw| raw.strip_prefix("{project}/.git/"))
        .collect();
    let mut out = Vec::new();
    for dir in git_dirs {
        // A linked worktree's repository has its protections of its own;
        // the submodules' git directories in it get these.
        let inside = dir.starts_with(project)
            || linked.is_some_and(|l| dir.starts_with(l))
            || writable.iter().any(|w| dir.starts_with(w));
        if *dir == top || Some(dir.as_path()) == linked || !inside {
            continue;
        }
        for suffix in &suffixes {
            for path in host::expand_glob(&dir.join(suffix)) {
                out.push(Candidate {
                    path,
                    access: policy::Access::Protected,
                    origin: format!("nested repository {}", dir.display()),
                    required: false,
                });
            }
        }
    }
    out
}

/// The user's and the system's git config files, with what they include.
fn global_git_config(home: &Path) -> Vec<(PathBuf, Option<String>)> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| home.join(".config"));
    let mut files = vec![
        home.join(".gitconfig"),
        xdg.join("git/config"),
        PathBuf::from("/etc/gitconfig"),
    ];
    files.extend(std::env::var_os("GIT_CONFIG_GLOBAL").map(PathBuf::from));
    files.extend(std::env::var_os("GIT_CONFIG_SYSTEM").map(PathBuf::from));
    read_with_includes(files, home)
}

/// The relative `core.hooksPath` values of the user's and the system's
/// git config (`.githooks`, a common team setting): every repository runs
/// its hooks from that directory of its own worktree, one the sandbox
/// makes included.
pub fn relative_hooks_paths(home: &Path) -> Vec<String> {
    let mut out: Vec<String> = global_git_config(home)
        .iter()
        .filter_map(|(_, t)| t.as_deref())
        .flat_map(|text| git_config::values(text, "core", "hookspath"))
        .filter(|v| !v.is_empty() && !v.starts_with('/') && !v.starts_with('~'))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Hooks git runs from the project's tree instead of `.git/hooks`, and the
/// configs of hook managers whose hook is installed: protected like
/// `.git/hooks`, since the next `git commit` on the host runs them.
///
/// - `core.hooksPath` inside the project (husky sets `.husky/_`; its
///   scripts there run the user's `.husky/<hook>`, so a `_` directory's
///   parent is protected with it). Every value found in the repository's
///   and the user's config files counts, whichever wins.
/// - A hook in `.git/hooks` generated by pre-commit, lefthook or overcommit
///   runs what that tool's config in the worktree lists.
///
/// Hooks that run other project code (`npx lint-staged`, `make lint`) run
/// whatever the sandbox left there: that is project code, which the user
/// runs by committing.
pub fn hook_candidates(
    repositories: &[(PathBuf, PathBuf)],
    project: &Path,
    home: &Path,
) -> Vec<Candidate> {
    let global = global_git_config(home);
    let mut out = Vec::new();
    let mut push = |path: PathBuf, origin: String| {
        if path.starts_with(project) && path != project {
            out.push(Candidate {
                path,
                access: policy::Access::Protected,
                origin,
                required: false,
            });
        }
    };
    for (dir, worktree) in repositories {
        let own = read_with_includes(vec![dir.join("config"), dir.join("config.worktree")], home);
        // A file the repository's config includes (`include.path =
        // ../.gitconfig`, a way to share config through the repository) is
        // as much its config: core.fsmonitor set there runs just the same.
        for (file, _) in own.iter().chain(&global) {
            push(
                file.clone(),
                format!("a git config file {} reads", dir.display()),
            );
        }
        let mut hook_dirs = vec![dir.join("hooks")];
        for text in own.iter().chain(&global).filter_map(|(_, t)| t.as_deref()) {
            for value in git_config::values(text, "core", "hookspath") {
                let hooks = match value.strip_prefix("~/") {
                    Some(rest) => home.join(rest),
                    None => worktree.join(&value),
                };
                let hooks = host::lexical(&hooks);
                // Hooks at the top of the worktree, or of the project (the
                // repository around it names it): each hook's name.
                if hooks == *worktree || hooks == project {
                    for name in GIT_HOOKS {
                        push(hooks.join(name), "a git hook (core.hooksPath)".into());
                    }
                } else if hooks.file_name().is_some_and(|n| n == "_")
                    && let Some(parent) = hooks.parent()
                {
                    // husky: `_/pre-commit` runs `../pre-commit`.
                    push(
                        parent.to_path_buf(),
                        "the scripts of core.hooksPath (husky)".into(),
                    );
                }
                push(
                    hooks.clone(),
                    format!("core.hooksPath of {}", dir.display()),
                );
                hook_dirs.push(hooks);
            }
        }
        for hooks in &hook_dirs {
            for (path, origin) in manager_configs(hooks, worktree) {
                push(path, origin);
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// Config files a tool on the host runs code from when the user `cd`s into
/// the project, once the user has trusted the file by its path (mise's
/// `[hooks]` and `_.source`; mise does not ask again when the content
/// changes): protected where present. One the sandbox creates is inert
/// until the user trusts it, so no watch for absent ones. (direnv asks
/// again for a changed `.envrc`; that one is protected anyway, and so is
/// what it loads: [`envrc_sources`].)
pub fn trusted_tool_configs(project: &Path) -> Vec<Candidate> {
    const FILES: &[&str] = &[
        "mise.toml",
        ".mise.toml",
        "mise.local.toml",
        ".mise.local.toml",
        ".config/mise.toml",
        ".config/mise/config.toml",
        ".config/mise/config.local.toml",
        ".mise/config.toml",
        ".mise/config.local.toml",
    ];
    let mut out: Vec<Candidate> = FILES
        .iter()
        .map(|f| project.join(f))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .map(|path| Candidate {
            path,
            access: policy::Access::Protected,
            origin: "a tool config that runs code on cd once trusted (mise)".into(),
            required: false,
        })
        .collect();
    out.extend(envrc_sources(project));
    out.extend(compose_files(project));
    out
}

/// The Compose files a dev container configuration names
/// (`"dockerComposeFile"`): they say what the container mounts from the
/// host and whether it is privileged, so a service the sandbox added there
/// (`volumes: ["/:/host"]`) reaches the host when the user reopens the
/// project in its container. The configurations are protected themselves
/// (profile default).
fn compose_files(project: &Path) -> Vec<Candidate> {
    let mut configs = vec![
        project.join(".devcontainer.json"),
        project.join(".devcontainer/devcontainer.json"),
    ];
    configs.extend(host::expand_glob(
        &project.join(".devcontainer/*/devcontainer.json"),
    ));
    let mut out = Vec::new();
    for config in configs {
        // Followed, as the editor opens it.
        let Some(text) = host::read_small_followed(&config, 1 << 20) else {
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        let dir = config.parent().unwrap_or(project);
        for name in compose_file_names(&text) {
            let path = host::lexical(&dir.join(name));
            if path.starts_with(project) && path != project {
                out.push(Candidate {
                    path,
                    access: policy::Access::Protected,
                    origin: format!("a Compose file {} names", config.display()),
                    required: false,
                });
            }
        }
    }
    out
}

/// The strings of `"dockerComposeFile"`: one, or an array (JSON with
/// comments, so read by hand).
fn compose_file_names(text: &str) -> Vec<String> {
    let Some((_, rest)) = text.split_once("\"dockerComposeFile\"") else {
        return Vec::new();
    };
    let rest = rest.trim_start().trim_start_matches(':').trim_start();
    let value = match rest.strip_prefix('[') {
        Some(list) => list.split(']').next().unwrap_or(""),
        None => rest.split([',', '}', '\n']).next().unwrap_or(""),
    };
    value
        .split(',')
        .filter_map(|v| v.trim().strip_prefix('"')?.strip_suffix('"'))
        .filter(|v| !v.is_empty() && !v.contains("${"))
        .map(String::from)
        .collect()
}

/// Files an allowed `.envrc` loads (`source_env_if_exists .envrc.local`,
/// `dotenv`, `source scripts/env.sh`), and those they load in turn. direnv
/// asks again only for a changed `.envrc` itself: what it sources runs, and
/// what `dotenv` exports (`PROMPT_COMMAND`, `LD_PRELOAD`) lands in the
/// user's shell, at the next `cd` without a question. Absent ones too: the
/// usual `.envrc.local` is one nobody has written yet. (The allowed
/// `.envrc` files themselves need no protection beyond the top one's:
/// direnv asks again when one changes.)
fn envrc_sources(project: &Path) -> Vec<Candidate> {
    let mut files = vec![project.join(".envrc")];
    // Those in subdirectories the user allowed: direnv keeps each allowed
    // file's path in a file of its own.
    let allowed = host::data_dir()
        .and_then(|d| d.parent().map(|p| p.join("direnv/allow")))
        .and_then(|d| std::fs::read_dir(d).ok());
    for entry in allowed.into_iter().flatten().flatten().take(4096) {
        let Some(text) = host::read_small(&entry.path(), 4096) else {
            continue;
        };
        let path = PathBuf::from(String::from_utf8_lossy(&text).trim_end());
        // One above the project (`--project frontend` in a monorepo whose
        // `.envrc` sources `frontend/.envrc.local`) loads on a `cd` there.
        let above = path.parent().is_some_and(|d| project.starts_with(d));
        if (path.starts_with(project) || above) && !files.contains(&path) {
            files.push(path);
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < files.len() && i < 64 {
        let file = files[i].clone();
        i += 1;
        // Followed, as bash opens it.
        let Some(text) = host::read_small_followed(&file, 1 << 20) else {
            continue;
        };
        let dir = file.parent().unwrap_or(project).to_path_buf();
        for path in envrc_loads(&String::from_utf8_lossy(&text), &dir) {
            if path.starts_with(project) && path != project && !files.contains(&path) {
                out.push(Candidate {
                    path: path.clone(),
                    access: policy::Access::Protected,
                    origin: format!("a file {} loads (direnv)", file.display()),
                    required: false,
                });
                files.push(path);
            }
        }
    }
    out
}

/// What a script loads with direnv's `source_env*`, `dotenv*` and `use
/// flake|nix` or the shell's `source` and `.`, relative to `dir`. Words
/// are split the simple way: a name built from variables is not followed.
fn envrc_loads(text: &str, dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let commands = text
        .lines()
        .map(|l| l.split(" #").next().unwrap_or(""))
        .flat_map(|l| l.split(|c: char| ";&|()".contains(c)));
    for command in commands {
        let mut words = command
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
            .skip_while(|w| matches!(*w, "if" | "then" | "elif" | "else" | "do" | "!" | "{"));
        let (dotenv, source_env) = match words.next() {
            Some("dotenv" | "dotenv_if_exists") => (true, false),
            Some("source_env" | "source_env_if_exists") => (false, true),
            Some("source" | ".") => (false, false),
            // A Nix shell's shellHook runs at each load, re-evaluated when
            // the file changes (files it imports are not followed here).
            Some("use") => {
                match words.next() {
                    Some("flake") => out.push(dir.join("flake.nix")),
                    Some("nix") => out.extend([dir.join("shell.nix"), dir.join("default.nix")]),
                    _ => {}
                }
                continue;
            }
            _ => continue,
        };
        if dotenv {
            out.push(dir.join(".env"));
        }
        let Some(arg) = words.next() else {
            continue;
        };
        // direnv runs `.envrc` in its own directory.
        let arg = ["$PWD/", "${PWD}/"]
            .iter()
            .find_map(|p| arg.strip_prefix(p))
            .unwrap_or(arg);
        if arg.is_empty() || arg.starts_with(['-', '~']) || arg.contains(['$', '`', '*']) {
            continue;
        }
        let path = host::lexical(&dir.join(arg));
        let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir && dotenv {
            out.push(path.join(".env"));
        } else if is_dir && source_env {
            out.push(path.join(".envrc"));
        } else if !is_dir {
            out.push(path);
        }
    }
    out
}

/// The hooks git runs (githooks(5)).
const GIT_HOOKS: &[&str] = &[
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
];

/// The config files `files` and those they include (`include.path`,
/// `includeIf.*.path`, relative to the including file), as deep as git
/// follows them; with their text where they exist (one that does not yet
/// would be read once created).
fn read_with_includes(mut files: Vec<PathBuf>, home: &Path) -> Vec<(PathBuf, Option<String>)> {
    let mut out = Vec::new();
    let mut i = 0;
    // git stops at 10 levels; a file count bound does the same here.
    while i < files.len() && i < 64 {
        let file = files[i].clone();
        i += 1;
        let Some(text) = read_config(&file) else {
            out.push((file, None));
            continue;
        };
        for section in ["include", "includeif"] {
            for value in git_config::values(&text, section, "path") {
                let path = match value.strip_prefix("~/") {
                    Some(rest) => home.join(rest),
                    None => file.parent().unwrap_or(Path::new("/")).join(&value),
                };
                let path = host::lexical(&path);
                if !files.contains(&path) {
                    files.push(path);
                }
            }
        }
        out.push((file, Some(text)));
    }
    out
}

/// A config file's text, if it is a regular file of sane size.
fn read_config(path: &Path) -> Option<String> {
    let bytes = host::read_small(path, git_config::CONFIG_MAX as u64)?;
    String::from_utf8(bytes).ok()
}

/// Hook managers whose generated hook is in `hooks`: the config files in
/// `worktree` that hook runs (pre-commit's `--config=` as its hook names it).
fn manager_configs(hooks: &Path, worktree: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(hooks) else {
        return out;
    };
    for e in rd.flatten().take(256) {
        if e.file_name().as_encoded_bytes().ends_with(b".sample") {
            continue;
        }
        let Some(text) = host::read_small(&e.path(), 64 << 10) else {
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        if text.contains("pre-commit.com") || text.contains("hook-impl") {
            let config = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix("--config="))
                .map(|c| c.trim_matches(['"', '\'', ')']))
                .unwrap_or(".pre-commit-config.yaml");
            out.push((
                host::lexical(&worktree.join(config)),
                "pre-commit's config (its hook is installed)".into(),
            ));
        }
        if text.contains("lefthook") {
            for base in [
                "lefthook",
                ".lefthook",
                "lefthook-local",
                ".lefthook-local",
                ".config/lefthook",
                ".config/lefthook-local",
            ] {
                for ext in ["yml", "yaml", "toml", "json", "jsonc"] {
                    out.push((
                        worktree.join(format!("{base}.{ext}")),
                        "lefthook's config (its hook is installed)".into(),
                    ));
                }
            }
            for dir in [".lefthook", ".lefthook-local"] {
                out.push((
                    worktree.join(dir),
                    "lefthook's scripts (its hook is installed)".into(),
                ));
            }
        }
        if text.contains("overcommit") {
            out.push((
                worktree.join(".overcommit.yml"),
                "overcommit's config (its hook is installed)".into(),
            ));
        }
    }
    out
}

/// One protected path the sandbox created, moved aside.
#[derive(Debug, Clone)]
pub struct Moved {
    pub path: PathBuf,
    pub aside: Result<PathBuf, String>,
    /// What it is, when not simply a protected path (`a git config setting
    /// core.fsmonitor`).
    pub why: Option<String>,
}

impl Moved {
    /// Tell the user (after the run: during it the terminal is the command's).
    pub fn report(&self) {
        if let Some(why) = &self.why {
            return match &self.aside {
                Ok(aside) => eprintln!(
                    "guard: the sandbox left {} ({why}); moved it to {} (it would run outside the sandbox)",
                    host::printable(&self.path),
                    host::printable(aside)
                ),
                Err(e) => eprintln!(
                    "guard: WARNING: the sandbox left {} ({why}) and guard could not move it aside: {e}; inspect and delete it",
                    host::printable(&self.path)
                ),
            };
        }
        match &self.aside {
            Ok(aside) => eprintln!(
                "guard: the sandbox created {} (a protected path, or a link in its place); moved it to {} (it would run outside the sandbox)",
                host::printable(&self.path),
                host::printable(aside)
            ),
            Err(e) => eprintln!(
                "guard: WARNING: the sandbox created protected path {} and guard could not move it aside: {e}; inspect and delete it",
                host::printable(&self.path)
            ),
        }
    }
}

/// A protected path that did not exist before the run must not appear
/// because of it: whatever the sandbox created there is moved aside (to a
/// name nothing executes). If the sandbox put a symlink on the way
/// (`.git -> ~/.kube`), the link itself is moved aside; nothing outside the
/// project is ever touched (all renames are relative to directories opened
/// without following links).
pub fn quarantine_created(absent: &[PathBuf], project: &Path) -> Vec<Moved> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut moved: Vec<Moved> = Vec::new();
    // The project, opened once: this runs after every session, and most
    // absent paths share a first component (`.vscode/settings.json`,
    // `.vscode/tasks.json`) that is not there either.
    let Some(top) = host::open_dir_beneath(project, Path::new("")) else {
        return moved;
    };
    let mut absent_first: HashSet<&std::ffi::OsStr> = HashSet::new();
    for path in absent {
        let Ok(rel) = path.strip_prefix(project) else {
            continue;
        };
        // The first component, from the project down, that is not a real
        // directory: the created path itself, or a link planted above it.
        let comps: Vec<&std::ffi::OsStr> = rel.iter().collect();
        if comps.first().is_some_and(|c| absent_first.contains(c)) {
            continue;
        }
        let mut target = None;
        for i in 0..comps.len() {
            let below;
            let dir = if i == 0 {
                top.as_fd()
            } else {
                let parent: PathBuf = comps[..i].iter().collect();
                let Some(d) = host::open_dir_beneath(project, &parent) else {
                    break;
                };
                below = d;
                below.as_fd()
            };
            match nix::sys::stat::fstatat(dir, comps[i], nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
                // Absent: nothing was created here.
                Err(_) => {
                    if i == 0 {
                        absent_first.insert(comps[0]);
                    }
                    break;
                }
                Ok(st) => {
                    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    if i + 1 == comps.len() || !is_dir {
                        if let Ok(dir) = dir.try_clone_to_owned() {
                            target = Some((dir, i));
                        }
                        break;
                    }
                }
            }
        }
        let Some((dir, i)) = target else {
            continue;
        };
        let shown: PathBuf = project.join(comps[..=i].iter().collect::<PathBuf>());
        if moved.iter().any(|m| m.path == shown) {
            continue;
        }
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Never over what is there: the sandbox can make the name first.
        let result = move_aside(&dir, comps[i], &format!(".guard-quarantine-{secs}-{n}"));
        // Deleted by the sandbox since the look: nothing is left to move, and
        // a warning would be a false alarm (one per race, as many as it
        // likes). Whatever it makes there next is seen by the next look.
        if result == Err(nix::Error::ENOENT) {
            continue;
        }
        moved.push(Moved {
            aside: result
                .map(|aside| shown.with_file_name(aside))
                .map_err(|e| e.to_string()),
            path: shown,
            why: None,
        });
    }
    moved
}

/// After the run: each protected symlink must still be the same link. One
/// the sandbox removed, replaced or re-pointed is moved aside (if anything
/// is there) and the original link made again. Only inside the project,
/// through directories opened without following links.
pub fn restore_links(links: &[(PathBuf, PathBuf)], project: &Path) -> Vec<Moved> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut out = Vec::new();
    for (path, target) in links {
        let Ok(rel) = path.strip_prefix(project) else {
            continue;
        };
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let Some(dir) = host::open_dir_beneath(project, parent) else {
            continue;
        };
        if nix::fcntl::readlinkat(&dir, name).is_ok_and(|t| Path::new(&t) == target.as_path()) {
            continue;
        }
        let exists =
            nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok();
        let aside = if exists {
            move_aside(&dir, name, &format!(".guard-quarantine-{secs}"))
                .map(|a| Some(path.with_file_name(a)))
                .map_err(|e| e.to_string())
        } else {
            Ok(None)
        };
        let relinked = aside.clone().and_then(|_| {
            nix::unistd::symlinkat(target.as_path(), &dir, name).map_err(|e| e.to_string())
        });
        out.push(Moved {
            path: path.clone(),
            why: None,
            aside: match (aside, relinked) {
                (Ok(Some(a)), Ok(())) => Ok(a),
                // Removed: put back, nothing to keep aside.
                (Ok(None), Ok(())) => continue,
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
        });
    }
    out
}

/// Moves protected paths aside as soon as the sandbox creates them, while
/// it runs: inotify on every existing directory on the way to each absent
/// protected path (new ones are watched as they appear). What the sandbox
/// could do with such a file in the milliseconds before the move, it could
/// do anyway: it runs inside. What matters is that nothing outside (direnv,
/// an IDE opening the folder) finds it.
///
/// Paths inside `.git` are left to the check after the run: `git init`
/// inside creates `.git/hooks` and fills it, and moving the directory away
/// midway would break it (git runs a hook only when someone runs git in
/// that repository, which outside the sandbox happens after the session).
pub struct Watch {
    stop: std::os::fd::OwnedFd,
    thread: std::thread::JoinHandle<Vec<Moved>>,
}

impl Watch {
    pub fn start(absent: &[PathBuf], project: &Path) -> crate::error::Result<Option<Watch>> {
        let absent: Vec<PathBuf> = absent
            .iter()
            .filter(|p| !p.iter().any(|c| c == ".git"))
            .cloned()
            .collect();
        if absent.is_empty() {
            return Ok(None);
        }
        let inotify = watch_instance("protected paths the sandbox may create")?;
        let (stop_rd, stop_wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| crate::error::Error::sys("make a pipe", e))?;
        let project = project.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("guard-protect".into())
            .spawn(move || watch_loop(&stop_rd, &inotify, &absent, &project))
            .map_err(|e| crate::error::Error::sys("start a thread", e))?;
        Ok(Some(Watch {
            stop: stop_wr,
            thread,
        }))
    }

    /// Stop watching; what was moved aside meanwhile.
    pub fn stop(self) -> Vec<Moved> {
        let _ = nix::unistd::write(&self.stop, b"x");
        self.thread.join().unwrap_or_default()
    }
}

/// How long a command runs before guard starts watching. Closing an
/// inotify instance waits for an RCU grace period (~10 ms here), which
/// short commands (`guard run -- make test` in a hook) should not pay;
/// whatever they create meanwhile is found by the first look after it, or
/// by the check after the run.
pub(super) const WATCH_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// The inotify instance of one of the watches, made before the command
/// starts, whatever the watch adds to it later. Instances are counted per
/// user, across user namespaces: the sandbox may hold half of the user's
/// limit (see `host::sandbox_user_limits`), and with the user's own
/// programs holding the other half, one made after the command started
/// could fail, and the watch be off for the whole run. A watch guard
/// cannot have is a reason not to start (exit 125), never a silent gap.
/// Cheap: an instance with no watches yet is closed without the wait
/// [`WATCH_AFTER`] is for.
pub(super) fn watch_instance(what: &str) -> crate::error::Result<nix::sys::inotify::Inotify> {
    use nix::sys::inotify::{InitFlags, Inotify};
    Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(|e| {
        crate::error::Error::unsupported(
            format!("a file watch ({what})"),
            crate::error::os_text(&e.into()),
            "the user's programs hold every inotify instance the kernel allows them \
             (fs.inotify.max_user_instances; each editor window and file watcher holds some): \
             close some, or raise the limit with `sudo sysctl fs.inotify.max_user_instances=1024`",
        )
    })
}

/// Wait `time` unless `stop` becomes readable first (or polling it
/// fails): whether a watcher should stop. What it would have seen, the
/// check after the run sees.
pub(super) fn stopped_within(stop: &std::os::fd::OwnedFd, time: std::time::Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let started = std::time::Instant::now();
    while let Some(left) = time.checked_sub(started.elapsed()) {
        let mut fds = [PollFd::new(stop.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::Error::EINTR) => {}
            _ => return true,
        }
    }
    false
}

/// Wait for `inotify` to have events; `false` once `stop` is readable.
pub(super) fn events_until_stopped(
    inotify: &nix::sys::inotify::Inotify,
    stop: &std::os::fd::OwnedFd,
) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut fds = [
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(_) => return false,
            Ok(_) => return fds[1].revents().is_none_or(|r| r.is_empty()),
        }
    }
}

fn watch_loop(
    stop: &std::os::fd::OwnedFd,
    inotify: &nix::sys::inotify::Inotify,
    absent: &[PathBuf],
    project: &Path,
) -> Vec<Moved> {
    use nix::sys::inotify::AddWatchFlags as W;
    if stopped_within(stop, WATCH_AFTER) {
        return Vec::new();
    }
    let mask = W::IN_CREATE | W::IN_MOVED_TO | W::IN_ONLYDIR | W::IN_DONT_FOLLOW;
    // A directory that could not be watched for want of watches (the
    // sandbox may hold half of the user's): said after the run.
    let refused: std::cell::RefCell<Option<(PathBuf, nix::Error)>> = Default::default();
    let add = |dir: &Path| match inotify.add_watch(dir, mask) {
        Err(e @ (nix::Error::ENOSPC | nix::Error::ENOMEM)) => {
            refused.borrow_mut().get_or_insert((dir.to_path_buf(), e));
            false
        }
        r => r.is_ok(),
    };
    let arm = || {
        for path in absent {
            let Ok(rel) = path.strip_prefix(project) else {
                continue;
            };
            let mut dir = project.to_path_buf();
            add(&dir);
            for c in rel.parent().into_iter().flat_map(Path::iter) {
                dir.push(c);
                if !add(&dir) {
                    break; // not there (yet): its parent's watch sees it come
                }
            }
        }
    };
    arm();
    let mut moved: Vec<Moved> = quarantine_created(absent, project);
    while events_until_stopped(inotify, stop) {
        // Drain, then look: one look covers any number of events.
        while inotify.read_events().is_ok_and(|e| !e.is_empty()) {}
        arm();
        moved.extend(quarantine_created(absent, project));
        // At most one look per LOOK_EVERY: the sandbox creating and deleting
        // files in a loop otherwise kept this thread at a full CPU (as much
        // as the sandbox itself, measured). Events meanwhile queue up; the
        // next look covers them all.
        if stopped_within(stop, LOOK_EVERY) {
            break;
        }
    }
    if let Some((dir, e)) = refused.into_inner() {
        let why = format!(
            "guard could not watch {} during the run ({}: the user's inotify watches are all taken, fs.inotify.max_user_watches)",
            host::printable(&dir),
            crate::error::os_text(&e.into())
        );
        tracing::info!(target: crate::audit::TARGET, kind = "fs", action = "unwatched", path = %dir.display(), detail = %why);
        eprintln!(
            "guard: WARNING: {why}; a protected path the sandbox created there was moved aside only after the run"
        );
    }
    moved
}

/// See the end of `watch_loop`: a created protected path is gone within
/// this (plus the look itself), which is still before anything outside
/// could find it.
pub(super) const LOOK_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Give the owner (guard runs as the sandbox's user) full access to `dir`
/// if it lacks it. Landlock does not govern file modes: the sandbox can
/// make a directory above a protected file read-only, and a user without
/// CAP_DAC_OVERRIDE could then neither move what it planted aside nor put
/// the snapshot back.
pub fn make_writable(dir: &std::os::fd::OwnedFd) {
    if let Ok(st) = nix::sys::stat::fstat(dir)
        && st.st_mode & 0o700 != 0o700
    {
        let _ = nix::sys::stat::fchmod(
            dir,
            nix::sys::stat::Mode::from_bits_truncate((st.st_mode & 0o7777) | 0o700),
        );
    }
}

/// Rename `name` in `dir` to `name` + `suffix`, never over an entry that
/// is already there: the name is predictable, and the sandbox may have
/// made it beforehand (a directory there makes a plain rename fail, which
/// would leave what it planted in place). On a clash, an unpredictable
/// ending is added. Returns the name used.
pub fn move_aside(
    dir: &std::os::fd::OwnedFd,
    name: &std::ffi::OsStr,
    suffix: &str,
) -> nix::Result<std::ffi::OsString> {
    use nix::fcntl::{RenameFlags, renameat2};
    make_writable(dir);
    let mut aside = name.to_owned();
    aside.push(suffix);
    for attempt in 0..16 {
        let renamed = match renameat2(
            dir,
            name,
            dir,
            aside.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        ) {
            // A filesystem without the flag (NFS): no sandbox process is
            // left to race the check.
            Err(nix::Error::EINVAL) => {
                match nix::sys::stat::fstatat(
                    dir,
                    aside.as_os_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    Ok(_) => Err(nix::Error::EEXIST),
                    Err(_) => nix::fcntl::renameat(dir, name, dir, aside.as_os_str()),
                }
            }
            other => other,
        };
        match renamed {
            Ok(()) => return Ok(aside),
            Err(nix::Error::EEXIST) if attempt < 15 => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                aside = name.to_owned();
                aside.push(format!("{suffix}-{nanos:08x}{attempt}"));
            }
            Err(e) => return Err(e),
        }
    }
    Err(nix::Error::EEXIST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_files_a_dev_container_names() {
        assert_eq!(
            compose_file_names("{\n // c\n \"dockerComposeFile\": \"../compose.yml\",\n}"),
            ["../compose.yml"]
        );
        assert_eq!(
            compose_file_names(
                "{\"dockerComposeFile\" : [\"a.yml\",\n \"b.yml\" ], \"service\": \"x\"}"
            ),
            ["a.yml", "b.yml"]
        );
        assert!(compose_file_names("{\"image\": \"x\"}").is_empty());
    }

    #[test]
    fn what_an_envrc_loads() {
        let dir = Path::new("/p");
        let text = "export A=1\n\
            source_env_if_exists .envrc.local\n\
            [ -f x.sh ] && . ./x.sh  # comment\n\
            if true; then source \"${PWD}/y.sh\"; fi\n\
            dotenv\n\
            dotenv_if_exists .env.dev\n\
            source_env ~/shared\n\
            source \"$SOMEWHERE/z.sh\"\n\
            { source_env ../outside; }\n\
            echo source not-a-command\n\
            use flake\n";
        let got: Vec<String> = envrc_loads(text, dir)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "/p/.envrc.local",
                "/p/x.sh",
                "/p/y.sh",
                "/p/.env",
                "/p/.env",
                "/p/.env.dev",
                "/outside",
                "/p/flake.nix"
            ]
        );
    }
}
