//! Orchestration: load → resolve → scan → plan → launch (or explain).

use crate::cli::{Cli, Command, RunArgs, ScanArgs};
use crate::error::{Error, Result};
use crate::host::{self, PathKind};
use crate::plan::{self, Plan};
use crate::policy::{self, Candidate, CliGrants, Policy};
use crate::profile;
use crate::secrets::{self, Action, Flagged};
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(args) => {
            let (_policy, plan) = prepare(&args)?;
            crate::sandbox::launch(&plan)
        }
        Command::Explain(args) => {
            let (policy, plan) = prepare(&args)?;
            print!("{}", explain(&policy, &plan));
            Ok(0)
        }
        Command::Check => crate::check::run(),
        Command::Scan(args) => scan(&args),
    }
}

/// Everything up to, not including, side effects: the policy and the plan.
pub fn prepare(args: &RunArgs) -> Result<(Policy, Plan)> {
    let loaded = profile::load(args.profile.as_deref().unwrap_or("default"))?;
    let user = host::current_user();
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .map_err(|e| Error::usage(format!("cannot use the current directory: {e}")))?;
    let project = host::find_project(args.project.as_deref(), &cwd)?;
    policy::check_project(&project, &user.home)?;

    let absolute = |ps: &[PathBuf]| ps.iter().map(|p| cwd.join(p)).collect::<Vec<_>>();
    let cli = CliGrants {
        ro: absolute(&args.ro),
        rw: absolute(&args.rw),
        hide: absolute(&args.hide),
        allow_env: args.allow_env.clone(),
        allow_degraded: args.allow_degraded,
    };
    let rules = secrets::Rules::new(
        &loaded.profile.secrets,
        &loaded.origin,
        &user.home,
        &project,
    )?;
    let mut candidates = expand_globs(policy::candidates(&loaded, &cli, &user, &project)?);
    let facts = gather_facts(&candidates);
    let grants = policy::resolve_grants(&candidates, &facts)?;

    // Secrets: scan what the grants make visible, then resolve again with
    // the secret files hidden or redacted (hide and redact beat any grant).
    let cache = secrets::cache_dir(&user.home);
    let mut found = scan_visible(&rules, &project, &user.home, &grants, &cache)?;
    let redactions = secrets::redact::prepare_all(&mut found.flagged, &rules)?;
    candidates.extend(found.flagged.iter().map(secret_candidate));
    // The scan cache must not be reachable: whoever can write it can mark a
    // secret file as clean for the next run.
    if grants.iter().any(|g| {
        matches!(
            g.access,
            policy::Access::ReadOnly | policy::Access::ReadWrite
        ) && cache.starts_with(&g.path)
    }) {
        candidates.push(Candidate {
            path: cache.clone(),
            access: policy::Access::Hidden,
            origin: "guard's scan cache".into(),
            required: false,
        });
    }
    let facts = gather_facts(&candidates);
    let grants = policy::resolve_grants(&candidates, &facts)?;

    let host_env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let env_cfg = &loaded.profile.env;
    let built = policy::build_env(
        &host_env,
        &env_cfg.pass,
        &env_cfg.set,
        &cli.allow_env,
        &user.home,
        &|name, value| rules.env_secret(name, value),
    )?;

    let policy = Policy {
        profile: loaded.name.clone(),
        profile_origin: loaded.origin.clone(),
        uid: user.uid,
        gid: user.gid,
        home: user.home.clone(),
        cwd: if cwd.starts_with(&project) {
            cwd.clone()
        } else {
            project.clone()
        },
        project,
        grants,
        env: built.env,
        env_removed: built.removed,
        command: args.command.clone(),
        allow_ptrace: loaded.profile.syscalls.ptrace,
        allow_degraded: args.allow_degraded,
        secrets: policy::SecretsFound {
            files: found.flagged,
            redactions,
            env: built.secret,
            stats: found.stats,
        },
    };
    let plan = plan::build(&policy, host::cap_last_cap());
    Ok((policy, plan))
}

/// Scan the project and every path the grants expose outside it that a
/// user would keep secrets in: home paths the profile grants, and paths
/// given on the command line. System paths (/usr, /etc) are not scanned;
/// their secret files are hidden by the profile.
fn scan_visible(
    rules: &secrets::Rules,
    project: &Path,
    home: &Path,
    grants: &[policy::Grant],
    cache_dir: &Path,
) -> Result<secrets::ScanReport> {
    use policy::{Access, GrantKind};
    let mut roots = vec![secrets::Root {
        path: project.to_path_buf(),
        anchor: project.to_path_buf(),
    }];
    let mut exclude = vec![cache_dir.to_path_buf()];
    for g in grants {
        if g.access == Access::Hidden {
            exclude.push(g.path.clone());
            continue;
        }
        let visible = matches!(g.access, Access::ReadOnly | Access::ReadWrite)
            && matches!(g.kind, GrantKind::Dir | GrantKind::File)
            && !g.path.starts_with(project);
        let wanted = g.path.starts_with(home) || g.origin.starts_with("--");
        if visible && wanted {
            let anchor = if g.path.starts_with(home) {
                home
            } else {
                &g.path
            };
            roots.push(secrets::Root {
                path: g.path.clone(),
                anchor: anchor.to_path_buf(),
            });
        }
    }
    // Best effort: a cache directory that cannot be made costs time only.
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache_dir);
    let cache_file = cache_dir.join(secrets::cache_file_name(project));
    secrets::scan(rules, &roots, &exclude, Some(&cache_file))
}

fn secret_candidate(f: &Flagged) -> Candidate {
    let mut ids: Vec<&str> = f.hits.iter().map(|h| h.rule.as_str()).collect();
    ids.dedup();
    Candidate {
        path: f.path.clone(),
        access: match f.action {
            Action::Hide => policy::Access::Hidden,
            Action::Redact => policy::Access::Redacted,
        },
        origin: format!("secret: {}", ids.join(", ")),
        required: false,
    }
}

/// `guard scan`: what the sandbox would not see, and why. Never a value.
fn scan(args: &ScanArgs) -> Result<i32> {
    let loaded = profile::load(args.profile.as_deref().unwrap_or("default"))?;
    let user = host::current_user();
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .map_err(|e| Error::usage(format!("cannot use the current directory: {e}")))?;
    let project = match &args.dir {
        Some(dir) => std::fs::canonicalize(cwd.join(dir))
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| {
                Error::usage_hint(
                    format!("cannot scan {}: not a directory", dir.display()),
                    "give a directory",
                )
            })?,
        None => host::find_project(None, &cwd)?,
    };
    let rules = secrets::Rules::new(
        &loaded.profile.secrets,
        &loaded.origin,
        &user.home,
        &project,
    )?;
    if args.rules {
        if args.json {
            println!("{}", secrets::report::rules_json(&rules));
        } else {
            print!("{}", secrets::report::rules(&rules));
        }
        return Ok(0);
    }
    let candidates = expand_globs(policy::candidates(
        &loaded,
        &CliGrants::default(),
        &user,
        &project,
    )?);
    let facts = gather_facts(&candidates);
    let grants = policy::resolve_grants(&candidates, &facts)?;
    let cache = secrets::cache_dir(&user.home);
    let found = scan_visible(&rules, &project, &user.home, &grants, &cache)?;
    if args.json {
        println!("{}", secrets::report::json(&project, &found));
    } else {
        print!("{}", secrets::report::text(&project, &user.home, &found));
    }
    Ok(0)
}

/// Profile paths may end in a glob (`/etc/ssh/ssh_host_*_key`); CLI paths
/// are taken literally.
fn expand_globs(candidates: Vec<Candidate>) -> Vec<Candidate> {
    let mut out = Vec::with_capacity(candidates.len());
    for c in candidates {
        if c.required {
            out.push(c);
            continue;
        }
        for path in host::expand_glob(&c.path) {
            out.push(Candidate { path, ..c.clone() });
        }
    }
    out
}

/// Host facts: what each candidate path is, and what symlinks resolve to.
fn gather_facts(candidates: &[Candidate]) -> BTreeMap<PathBuf, PathKind> {
    let mut facts = BTreeMap::new();
    for c in candidates {
        let kind = PathKind::of(&c.path);
        if let PathKind::Symlink {
            resolved: Some(r), ..
        } = &kind
        {
            facts.insert(r.clone(), PathKind::followed(r));
        }
        facts.insert(c.path.clone(), kind);
    }
    facts
}

/// `guard explain`: the resolved policy and the ordered plan.
pub fn explain(policy: &Policy, plan: &Plan) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "profile:  {} ({})",
        policy.profile, policy.profile_origin
    );
    let _ = writeln!(s, "project:  {} (read-write)", policy.project.display());
    let _ = writeln!(
        s,
        "home:     {} (private, empty but for granted paths)",
        policy.home.display()
    );
    let _ = writeln!(s, "cwd:      {}", policy.cwd.display());
    let _ = writeln!(s, "command:  {}", shell_words(&policy.command));
    let _ = writeln!(s, "network:  none (only loopback inside)");
    let _ = writeln!(s, "\npaths:");
    for g in &policy.grants {
        let kind = match &g.kind {
            policy::GrantKind::Symlink { target } => format!(" -> {}", target.display()),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {:<5} {}{}  [{}]",
            g.access.label(),
            g.path.display(),
            kind,
            g.origin
        );
    }
    let _ = writeln!(
        s,
        "\nnamespaces: user (uid {0}->{0}, gid {1}->{1}, setgroups deny), mount, pid, net, ipc, uts, cgroup",
        plan.uid, plan.gid
    );
    let _ = writeln!(
        s,
        "\nmount plan (in order, on a fresh tmpfs root; / and /sys read-only afterwards):"
    );
    for (i, op) in plan.mounts.iter().enumerate() {
        let _ = writeln!(s, "  {:>3}. {}", i + 1, op.describe());
    }
    let _ = writeln!(
        s,
        "\nlandlock (requires ABI {}; this kernel: {}; scopes: signals, abstract unix sockets):",
        plan.landlock_min_abi,
        host::landlock_abi()
    );
    for r in &plan.landlock {
        let _ = writeln!(s, "  {}", r.describe());
    }
    let _ = writeln!(
        s,
        "\ncapabilities: all dropped (bounding, ambient, inheritable; securebits locked); no_new_privs"
    );
    let _ = writeln!(
        s,
        "\nseccomp (applied last; everything not listed is allowed):"
    );
    for r in plan::seccomp::enosys_table()
        .iter()
        .chain(plan::seccomp::table(plan.allow_ptrace).iter())
    {
        let when = match r.when {
            plan::seccomp::Match::Always => String::new(),
            plan::seccomp::Match::IoctlRequest(req) => format!(" request={req:#x}"),
            plan::seccomp::Match::Arg0AnyBit(bits) => format!(" flags&{bits:#x}"),
            plan::seccomp::Match::Arg0NotIn(v) => format!(" arg0 not in {v:?}"),
            plan::seccomp::Match::SocketFamilyType(f, t) => format!(" family={f} type={t}"),
        };
        let errno = if r.errno == libc::ENOSYS {
            "ENOSYS"
        } else {
            "EPERM"
        };
        let _ = writeln!(
            s,
            "  {:<20} {:<7} {}  ({})",
            format!("{}{}", r.name, ""),
            errno,
            when.trim(),
            r.why
        );
    }
    let _ = writeln!(s, "  other ABIs (x32, int 0x80): refused");
    let found = &policy.secrets;
    let _ = writeln!(
        s,
        "\nsecrets ({} files scanned, {} from cache, {} ms):",
        found.stats.files, found.stats.cached, found.stats.elapsed_ms
    );
    if found.files.is_empty() {
        let _ = writeln!(s, "  none found");
    }
    for l in secrets::report::lines(&found.files, &policy.project, &policy.home) {
        let _ = writeln!(s, "  {l}");
    }
    let names: Vec<&str> = plan.env.iter().map(|(k, _)| k.as_str()).collect();
    let _ = writeln!(s, "\nenvironment: {}", names.join(" "));
    let _ = writeln!(
        s,
        "not passed:  {} variable(s){}{}",
        policy.env_removed.len(),
        if policy.env_removed.is_empty() {
            ""
        } else {
            ": "
        },
        policy.env_removed.join(" ")
    );
    if !found.env.is_empty() {
        let list: Vec<String> = found
            .env
            .iter()
            .map(|(k, why)| format!("{k} ({why})"))
            .collect();
        let _ = writeln!(s, "removed as secret: {}", list.join(" "));
    }
    s
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Used by `check`: the plan for `true` with the default profile.
pub fn default_plan(project: &Path) -> Result<Plan> {
    let args = RunArgs {
        profile: None,
        project: Some(project.to_path_buf()),
        ro: vec![],
        rw: vec![],
        hide: vec![],
        allow_env: vec![],
        allow_degraded: false,
        quiet: true,
        command: vec!["true".into()],
    };
    prepare(&args).map(|(_, plan)| plan)
}
