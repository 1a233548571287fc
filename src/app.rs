//! Orchestration: load → resolve → plan → launch (or explain).

use crate::cli::{Cli, Command, RunArgs};
use crate::error::{Error, Result};
use crate::host::{self, PathKind};
use crate::plan::{self, Plan};
use crate::policy::{self, Candidate, CliGrants, Policy};
use crate::profile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(args) => {
            // Start the sandbox's setup process first: it execs and creates
            // the namespaces on another core while we resolve the policy.
            let pending = crate::sandbox::spawn()?;
            let (policy, plan) = prepare(&args)?;
            let result = pending.run(&plan);
            quarantine_created(&policy.absent_protected);
            result
        }
        Command::Explain(args) => {
            let (policy, plan) = prepare(&args)?;
            print!("{}", explain(&policy, &plan));
            Ok(0)
        }
        Command::Check => crate::check::run(),
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
    let candidates = expand_globs(policy::candidates(&loaded, &cli, &user, &project)?);
    ensure_git_placeholders(&candidates, &project);
    let facts = gather_facts(&candidates);
    let (grants, absent_protected) = policy::resolve(&candidates, &facts)?;

    let host_env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let env_cfg = &loaded.profile.env;
    let (env, env_removed) = policy::build_env(
        &host_env,
        &env_cfg.pass,
        &env_cfg.set,
        &cli.allow_env,
        &user.home,
    );

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
        absent_protected,
        env,
        env_removed,
        command: args.command.clone(),
        allow_ptrace: loaded.profile.syscalls.ptrace,
        max_processes: loaded.profile.limits.processes,
        allow_degraded: args.allow_degraded,
    };
    let plan = plan::build(&policy, host::cap_last_cap())?;
    Ok((policy, plan))
}

/// A protected path inside `.git` that does not exist yet (no hooks dir
/// after `git init --template=`, no config.worktree) would be creatable by
/// the sandbox. Inside `.git` an empty placeholder is invisible to git and
/// harmless, so create one for a read-only mount to stand on: a directory
/// for `hooks`/`info`, an empty file otherwise.
fn ensure_git_placeholders(candidates: &[Candidate], project: &Path) {
    let git = project.join(".git");
    for c in candidates {
        if c.access != policy::Access::Protected || !c.path.starts_with(&git) || c.path == git {
            continue;
        }
        let parent_exists = c.path.parent().is_some_and(Path::is_dir);
        if !parent_exists || std::fs::symlink_metadata(&c.path).is_ok() {
            continue;
        }
        let is_dir = matches!(
            c.path.file_name().and_then(|n| n.to_str()),
            Some("hooks" | "info")
        );
        let _ = if is_dir {
            std::fs::create_dir(&c.path)
        } else {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&c.path)
                .map(drop)
        };
    }
}

/// A protected path that did not exist before the run must not appear
/// because of it: whatever the sandbox created there is moved aside (to a
/// name nothing executes) and reported.
fn quarantine_created(absent: &[PathBuf]) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for path in absent {
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".guard-quarantine-{stamp}"));
        match std::fs::rename(path, &aside) {
            Ok(()) => eprintln!(
                "guard: the sandbox created protected path {}; moved it to {} (it would run outside the sandbox)",
                path.display(),
                Path::new(&aside).display()
            ),
            Err(e) => eprintln!(
                "guard: WARNING: the sandbox created protected path {} and guard could not move it aside: {e}; inspect and delete it",
                path.display()
            ),
        }
    }
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
