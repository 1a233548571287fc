//! Orchestration: load → resolve → scan → plan → launch (or explain).

mod agent_home;
mod explain;
mod git_config;
mod landlock_level;
mod profiles;
mod protect;
mod prune;
mod registries;
mod replaced;
mod repo_watch;
mod repos;
mod tripwire;
mod unchecked;

use explain::{explain, explain_json};
use profiles::{profile_list, profile_show, shim_install, trust};
use protect::ensure_git_placeholders;

use crate::audit;
use crate::cli::{Cli, Command, ProfileCommand, RunArgs, ScanArgs};
use crate::error::{Error, Result};
use crate::host::{self, PathKind};
use crate::plan::{self, Plan};
use crate::policy::{self, Candidate, CliGrants, Policy};
use crate::profile::{self, Isolation};
use crate::secrets::{self, Action, Flagged};
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub fn run(cli: Cli, session: &audit::Session) -> Result<i32> {
    match cli.command {
        Command::Run(args) => run_sandbox(&args, session),
        Command::Explain(args) if args.suggest => {
            print!("{}", audit::suggest()?);
            Ok(0)
        }
        Command::Explain(args) => {
            let (policy, plan) = prepare(&args.run)?;
            if args.json {
                println!("{}", explain_json(&policy, &plan));
            } else {
                print!("{}", explain(&policy, &plan));
            }
            Ok(0)
        }
        Command::Log(args) => audit::show_log(&args),
        Command::Check => crate::check::run(),
        Command::Profile(ProfileCommand::List) => {
            print!("{}", profile_list());
            Ok(0)
        }
        Command::Profile(ProfileCommand::Show { name }) => {
            print!("{}", profile_show(&profile::load(&name)?));
            Ok(0)
        }
        Command::Trust { dir } => trust(dir.as_deref()),
        Command::Shim(crate::cli::ShimCommand::Install { agents, dir }) => {
            shim_install(&agents, dir)
        }
        Command::Scan(args) => scan(&args),
        Command::Prune { project, dry_run } => prune::run(project.as_deref(), dry_run),
    }
}

/// `guard run`: start the setup process, resolve, run, report.
fn run_sandbox(args: &RunArgs, session: &audit::Session) -> Result<i32> {
    if args.command.is_empty() {
        return Err(Error::usage_hint(
            "no command given",
            "guard run [OPTIONS] -- COMMAND [ARGS...]",
        ));
    }
    if args.command[0].is_empty() {
        return Err(Error::usage_hint(
            "the command name is empty (`guard run -- \"\"`)",
            "guard run [OPTIONS] -- COMMAND [ARGS...]",
        ));
    }
    // Put back when this function returns, however it ends.
    let terminal = crate::sandbox::TerminalModes::save();
    let stream_modes = crate::sandbox::StreamModes::save();
    // Start the sandbox's setup process first: it execs and creates the
    // namespaces on another core while we resolve the policy.
    let mut pending = match args.isolation {
        Some(Isolation::Landlock) => None,
        _ => Some(crate::sandbox::spawn(Isolation::Full)?),
    };
    let keeper = pending.as_mut().and_then(crate::sandbox::Pending::keeper);
    // Old session logs go on a thread of their own: resolving the policy
    // is what the setup process waits for.
    std::thread::spawn(audit::prune_sessions);
    let (mut policy, mut plan) = prepare(args)?;
    let watch = protect::Watch::start(&policy.absent_protected, &policy.project)?;
    // What the check after the run needs, taken once: watched with it
    // during the run, and recorded in case guard is killed.
    let mut after = unchecked::AfterRun::of(&policy, repos::Trusted::before_run(&policy));
    let mut repo_watch = after.watch()?;
    let mut covers = replaced::Covers::before_run(&policy).watch_with(keeper)?;
    let mut record = unchecked::record(&after);
    let mut result = match pending {
        Some(pending) if policy.isolation == Isolation::Full => {
            record_policy(&policy, args.quiet);
            // Keeps a `landlock`-level session from starting here meanwhile.
            let _shared = landlock_level::lock_project(&policy.project, false);
            landlock_level::unlink_home(&policy);
            Some(pending.run(&plan, &policy.network))
        }
        // The profile asked for the `landlock` level: this setup process
        // (with namespaces) ends unused.
        _ => None,
    };
    if matches!(result, Some(Err(Error::NoNamespaces { .. }))) && policy.allow_degraded {
        // Nothing ran: the setup process failed at its first step.
        if let Some(Err(e)) = &result {
            eprintln!(
                "guard: warning: {e}; --allow-degraded: falling back to the `landlock` isolation level"
            );
        }
        (policy, plan) = prepare_at(args, Some(Isolation::Landlock))?;
        after = unchecked::AfterRun::of(&policy, repos::Trusted::before_run(&policy));
        // No mounts to keep covered at this level.
        if let Some(c) = covers.take() {
            c.stop();
        }
        // Nothing ran yet: what the first watch knew is of no use.
        if let Some(w) = repo_watch {
            w.stop();
        }
        repo_watch = after.watch()?;
        if let Some(r) = record {
            r.done();
        }
        record = unchecked::record(&after);
        // The policy's events are in the log already; add the change of level.
        tracing::info!(target: audit::TARGET, kind = "degraded", detail = "no namespaces: isolation level landlock", unprotected = %policy.isolation.gaps().join("; "));
        warn_gaps(&policy, args.quiet);
        result = Some(run_at_landlock_level(&policy, plan.clone()));
    }
    let result = match result {
        Some(r) => r,
        None => {
            record_policy(&policy, args.quiet);
            run_at_landlock_level(&policy, plan.clone())
        }
    }
    .map_err(|e| not_found_hint(e, &policy));
    // The command may have made the user's terminal writable to all.
    drop(stream_modes);
    // What guard says next must be seen: the command may have left the
    // terminal writing concealed or black on black, or the cursor hidden
    // (to make guard's warnings invisible).
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        use std::io::Write;
        let _ = std::io::stderr().write_all(b"\x1b[0m\x1b[?25h");
    }
    // Protected paths created during the run were moved aside as they
    // appeared; once more now that nothing of the sandbox is left.
    let mut moved = watch.map(protect::Watch::stop).unwrap_or_default();
    moved.extend(
        repo_watch
            .map(repo_watch::RepoWatch::stop)
            .unwrap_or_default(),
    );
    // Then protected links put back, and repositories the sandbox made (or
    // re-pointed a `.git` to), which have no protected paths of their own.
    moved.extend(after.check());
    if let Some(r) = record {
        r.done();
    }
    for m in &moved {
        m.report();
        tracing::info!(target: audit::TARGET, kind = "fs", action = "quarantined", path = %m.path.display());
    }
    replaced::report(&covers.map(replaced::Watch::stop).unwrap_or_default());
    let code = match &result {
        Ok(c) => *c,
        Err(e) => e.exit_code(),
    };
    tracing::info!(target: audit::TARGET, kind = "session", event = "end", exit = code);
    session.flush();
    // The summary prints on the terminal as the user had it.
    drop(terminal);
    if !args.quiet {
        let color = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none();
        eprint!(
            "{}",
            audit::summary(&session.events(), session.path.as_deref(), color)
        );
    }
    // Last, so the terminal had the whole wind-down to answer what the
    // command printed last.
    crate::sandbox::discard_terminal_input();
    result
}

/// "command not found" when the command exists on this machine: say why
/// the sandbox does not see it and how to grant it.
fn not_found_hint(e: Error, policy: &Policy) -> Error {
    let Error::Sandbox {
        msg,
        hint: None,
        code: 127,
    } = e
    else {
        return e;
    };
    let Some(name) = policy.command.first().filter(|n| !n.contains('/')) else {
        return Error::Sandbox {
            msg,
            hint: None,
            code: 127,
        };
    };
    let visible = |p: &Path| {
        policy.grants.iter().any(|g| {
            matches!(
                g.access,
                policy::Access::ReadOnly | policy::Access::ReadWrite
            ) && p.starts_with(&g.path)
        })
    };
    let host_path = std::env::var("PATH").unwrap_or_default();
    let found = host_path
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    let hint = if !visible(Path::new("/usr")) {
        Some(format!(
            "profile {} makes no system directory visible (not even /usr): start it with extends = [\"default\"]",
            policy.profile
        ))
    } else {
        found.filter(|p| !visible(p)).and_then(|p| {
            let dir = p.parent()?.display().to_string();
            Some(format!(
                "{} exists on this machine, outside what the sandbox sees: grant it with --ro {dir} (or in a profile: [filesystem] read = [\"{dir}\"])",
                p.display()
            ))
        })
    };
    Error::Sandbox {
        msg,
        hint,
        code: 127,
    }
}

/// Directories granted writable outside the project (`--rw ../lib`): the
/// user works in them as in the project, so their repositories get the
/// project's protections and the check after the run walks them. Only at
/// the `full` level: at `landlock` protected paths outside the project are
/// not restored after the run, so protecting them there would only make
/// the check trust what the sandbox wrote.
fn walked_outside(grants: &[policy::Grant], project: &Path, isolation: Isolation) -> Vec<PathBuf> {
    if isolation != Isolation::Full {
        return Vec::new();
    }
    grants
        .iter()
        .filter(|g| g.access == policy::Access::ReadWrite && g.kind == policy::GrantKind::Dir)
        .filter(|g| !g.path.starts_with(project))
        .map(|g| g.path.clone())
        .collect()
}

/// Host directories the sandbox can write besides the project (a `.git`
/// file or a link in the project can name a directory there). All of
/// guard's data directory counts: besides this session's persistent home
/// and cache layers (an overlay's upper directory, its host path in the
/// sandbox's mountinfo), it holds what earlier sessions of other profiles
/// and projects wrote, which a `.git` file written now can name as well.
fn writable_outside(policy: &Policy) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = policy
        .grants
        .iter()
        .filter(|g| g.access == policy::Access::ReadWrite)
        .map(|g| g.path.clone())
        .collect();
    out.extend(policy.home_source.clone());
    out.extend(policy.caches.iter().map(|c| c.upper.clone()));
    out.extend(crate::host::data_dir());
    if let Some(dirs) = &policy.host_dirs {
        out.push(dirs.session.clone());
    }
    out
}

/// The `landlock` level: host-side stand-ins for what namespaces did, then
/// the run, then protected files put back.
fn run_at_landlock_level(policy: &Policy, mut plan: Plan) -> Result<i32> {
    let Some(dirs) = &policy.host_dirs else {
        return Err(Error::usage(
            "the landlock isolation level needs its host directories",
        ));
    };
    let mut session = landlock_level::Session::start(policy, dirs)?;
    plan.connect_ports = session.ports.clone();
    plan.env = session.env(&plan.env, &policy.network);
    let listeners = std::mem::take(&mut session.listeners);
    let result = crate::sandbox::spawn(Isolation::Landlock).and_then(|mut pending| {
        pending.serve_egress(&policy.network, listeners)?;
        pending.run(&plan, &policy.network)
    });
    for path in session.finish(&policy.project) {
        tracing::info!(target: audit::TARGET, kind = "fs", action = "restored", path = %path.display());
    }
    result
}

/// The session start line of a degraded isolation level: what it does not
/// protect.
fn warn_gaps(policy: &Policy, quiet: bool) {
    let gaps = policy.isolation.gaps();
    if gaps.is_empty() || quiet {
        return;
    }
    eprintln!(
        "guard: isolation level `{}` (no namespaces): Landlock, seccomp, the egress proxy and the secrets scan apply; not protected at this level:",
        policy.isolation.label()
    );
    for g in gaps {
        eprintln!("guard:   - {g}");
    }
}

/// Audit events for what the policy decided before the run; at a degraded
/// isolation level, also a warning saying what it does not protect.
fn record_policy(policy: &Policy, quiet: bool) {
    let gaps = policy.isolation.gaps();
    tracing::info!(
        target: audit::TARGET,
        kind = "session",
        event = "start",
        command = %policy.command.join(" "),
        profile = %policy.profile,
        project = %policy.project.display(),
        isolation = policy.isolation.label(),
        unprotected = %gaps.join("; "),
    );
    warn_gaps(policy, quiet);
    // Files the secrets scan took out of view (path and rule ids; never
    // a value).
    for f in &policy.secrets.files {
        let mut rules: Vec<&str> = f.hits.iter().map(|h| h.rule.as_str()).collect();
        rules.dedup();
        let action = match f.action {
            crate::secrets::Action::Hide => "hidden",
            crate::secrets::Action::Redact => "redacted",
        };
        tracing::info!(target: audit::TARGET, kind = "fs", action, path = %f.path.display(), rule = %rules.join(","), reason = %f.reason);
    }
    for s in &policy.secrets.history.sanitized {
        tracing::info!(target: audit::TARGET, kind = "fs", action = "sanitized", path = %s.objects.display(), objects = s.blobs, rule = %s.rules.join(","), reason = "secrets in git history");
    }
    for (path, why) in &policy.secrets.history.unchecked {
        tracing::warn!(target: audit::TARGET, kind = "fs", action = "unchecked", path = %path.display(), reason = %why);
        if quiet {
            continue;
        }
        // Object files that could not be checked are hidden (their `why`
        // says so); what is left unchecked otherwise is readable.
        let readable = if why.ends_with("hidden inside") {
            ""
        } else {
            "; anything committed there is readable inside"
        };
        eprintln!(
            "guard: WARNING: git history in {} was not checked for secrets ({why}){readable}",
            host::printable(path)
        );
    }
    // Paths hidden on the command line.
    for g in policy
        .grants
        .iter()
        .filter(|g| g.access == policy::Access::Hidden && g.origin == "--hide")
    {
        tracing::info!(target: audit::TARGET, kind = "fs", action = "hidden", path = %g.path.display(), rule = "--hide");
    }
    for (name, rule) in &policy.secrets.env {
        tracing::info!(target: audit::TARGET, kind = "env", action = "removed", name = %name, reason = "secret", rule = %rule);
    }
    let secret: Vec<&str> = policy.secrets.env.iter().map(|(n, _)| n.as_str()).collect();
    for name in policy
        .env_removed
        .iter()
        .filter(|n| !secret.contains(&n.as_str()))
    {
        tracing::info!(target: audit::TARGET, kind = "env", action = "removed", name = %name, reason = "not passed by the profile");
    }
}

/// Everything up to, not including, side effects: the policy and the plan.
pub fn prepare(args: &RunArgs) -> Result<(Policy, Plan)> {
    prepare_at(args, None)
}

/// [`prepare`], with the isolation level forced (the fallback when
/// namespaces turn out to be unavailable).
fn prepare_at(args: &RunArgs, forced: Option<Isolation>) -> Result<(Policy, Plan)> {
    // As root, /etc's ~1,200 entries are statted for root-only files
    // (~2 ms): on a thread of its own, beside loading the profile and the
    // secrets scan. Only root reads every private file in /etc: a user
    // reads one only through a group it is in (rare there).
    let private_system = nix::unistd::geteuid()
        .is_root()
        .then(|| std::thread::spawn(private_system_files));
    let user = host::current_user();
    let cwd = current_dir()?;
    let project = host::find_project(args.project.as_deref(), &cwd)?;
    policy::check_project(&project, &user.home)?;
    prune::record_project(&project);
    // Before the scan: what a killed session planted must not be taken for
    // the user's own.
    unchecked::recover(&project);
    let sudo_home = sudo_home().filter(|h| *h != user.home);
    if let Some(home) = &sudo_home {
        policy::check_project(&project, home)?;
    }
    check_listable(&project, "project")?;
    let mut loaded = profile::load(&select_profile(args))?;
    apply_project_profile(&mut loaded, &user.home, &project)?;
    let caches = prepare_caches(&loaded, &user.home, &project, args.quiet)?;

    let absolute = |ps: &[PathBuf]| {
        ps.iter()
            .map(|p| resolve_dot_dot(&cwd.join(p)))
            .collect::<Vec<_>>()
    };
    for name in &args.allow_env {
        if let Err(why) = profile::var_name(name) {
            return Err(Error::usage_hint(
                format!("--allow-env {name:?}: {why}"),
                "give the name of a variable, e.g. --allow-env MYAGENT_API_KEY",
            ));
        }
    }
    let cli = CliGrants {
        ro: absolute(&args.ro),
        rw: absolute(&args.rw),
        hide: absolute(&args.hide),
        allow_env: args.allow_env.clone(),
        allow_degraded: args.allow_degraded,
    };
    let rules = std::sync::Arc::new(secrets::Rules::new(
        &loaded.profile.secrets,
        &loaded.origin,
        &user.home,
        &project,
    )?);
    let home_source = agent_home::prepare(&loaded, &user.home, &project, &rules, args.quiet)?;
    // New matches of protected globs are the sandbox's (moved aside after
    // the run), except in git directories: what `git worktree add` or a
    // new submodule makes there is checked as a repository (`repos`).
    let unexpanded = policy::candidates(&loaded, &cli, &user, &project)?;
    let protected_globs: Vec<PathBuf> = unexpanded
        .iter()
        .filter(|c| c.access == policy::Access::Protected && !c.required)
        .filter(|c| c.path.starts_with(&project) && c.path.to_string_lossy().contains(['*', '?']))
        .filter(|c| !c.path.iter().any(|part| part == ".git"))
        .map(|c| c.path.clone())
        .collect();
    let mut candidates = expand_globs(unexpanded);
    let isolation = forced
        .or(args.isolation)
        .or(loaded.profile.isolation)
        .unwrap_or(Isolation::Full);
    // A linked worktree's repository lives outside the project: git inside
    // needs it, with the protections of the project's own `.git`. Only a
    // mount can keep its config and hooks read-only inside a writable
    // directory, so at the `landlock` level it stays out of reach.
    let linked = match isolation {
        Isolation::Full => protect::linked_repository(&project),
        Isolation::Landlock => None,
    };
    if let Some(l) = &linked {
        candidates.extend(protect::linked_candidates(
            l,
            &loaded.profile.filesystem.protect,
        ));
    }
    // Re-pointed, it would have the next session grant another repository
    // of the user's.
    let dot_git = project.join(".git");
    if std::fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_file()) {
        candidates.push(Candidate {
            path: dot_git,
            access: policy::Access::Protected,
            origin: "the .git file naming this worktree's repository".into(),
            required: false,
        });
    }
    ensure_git_placeholders(&candidates, &project);
    let mut facts = gather_facts(&candidates);
    let grants = policy::resolve_grants(&candidates, &facts)?;
    // Secrets: scan what the grants make visible, then resolve again with
    // the secret files hidden or redacted (hide and redact beat any grant).
    let cache = secrets::cache_dir(&user.home);
    let tool_homes = tool_homes(&user.home, &project);
    let mut found = scan_visible(
        &rules,
        &project,
        &user.home,
        &Shown {
            grants: &grants,
            caches: &caches,
            home_links: &home_link_targets(&candidates, &facts, &user.home),
            tool_homes: &tool_homes,
        },
        &cache,
        linked.as_ref(),
    )?;
    let redactions = secrets::redact::prepare_all(&mut found.flagged, &rules)?;
    candidates.extend(found.flagged.iter().map(secret_candidate));
    candidates.extend(tool_homes.iter().flat_map(|t| {
        t.logins.iter().map(|f| Candidate {
            path: t.path.join(f),
            access: policy::Access::Hidden,
            origin: format!("the toolchain's login in {} ({})", t.name, t.path.display()),
            required: false,
        })
    }));
    // Secrets in git history: sanitized copies of the object files that
    // hold them. Only a mount can stand a copy in for the original.
    let history = match isolation {
        Isolation::Full => secrets::history::protect(
            &rules,
            &secrets::rules_fingerprint(&rules),
            &found.git_dirs,
            &project,
            &cache,
        ),
        Isolation::Landlock => Default::default(),
    };
    candidates.extend(history_candidates(&history));
    // Other names of a flagged file (hard links) show the same content:
    // hide them too.
    candidates.extend(hard_links_of(
        &found.flagged,
        &project,
        &cache.join(secrets::cache_file_name(&project)),
    ));
    if let Some(walk) = private_system {
        let found = walk.join().map_err(|_| {
            Error::usage("the walk of /etc for files only root may read stopped short")
        })?;
        candidates.extend(found.into_iter().filter(|c| shown(&grants, &c.path)));
    }
    let agent_sockets = passed_agent_sockets(&loaded.profile.env.pass);
    candidates.extend(
        host_listeners(&grants, &project)
            .into_iter()
            .filter(|c| !agent_sockets.iter().any(|a| a.path == c.path)),
    );
    candidates.extend(agent_sockets);
    // Python's bytecode of a flagged source holds its string constants
    // verbatim (`strings __pycache__/settings.*.pyc`).
    candidates.extend(bytecode_of(&found.flagged));
    // Repositories nested in the project (vendored, or cloned by an earlier
    // session) have hooks and config of their own that run outside later.
    candidates.extend(protect::nested_git_candidates(
        &found.git_dirs,
        &loaded.profile.filesystem.protect,
        &project,
        linked.as_ref().map(|l| l.common.as_path()),
        &walked_outside(&grants, &project, isolation),
    ));
    // The user's worktrees outside the project (their git directories are
    // in the repository here) are theirs whole.
    let mut commons: Vec<PathBuf> = std::iter::once(project.join(".git"))
        .chain(linked.as_ref().map(|l| l.common.clone()))
        .chain(found.git_dirs.iter().cloned())
        .collect();
    commons.sort();
    commons.dedup();
    candidates.extend(protect::outside_worktree_candidates(
        &commons,
        &project,
        linked.as_ref().map(|l| l.git_dir.as_path()),
    ));
    // Hooks git runs from the worktree (husky's core.hooksPath) and the
    // configs of installed hook managers (pre-commit, lefthook).
    // (git dir, the worktree its hooks run in)
    let mut repositories: Vec<(PathBuf, PathBuf)> = found
        .git_dirs
        .iter()
        .map(|d| (d.clone(), protect::worktree_of(d)))
        .collect();
    let top = project.join(".git");
    if std::fs::symlink_metadata(&top).is_ok_and(|m| m.is_dir()) {
        repositories.push((top, project.clone()));
    }
    if let Some(l) = &linked {
        repositories.retain(|(d, _)| *d != l.common);
        repositories.push((l.common.clone(), project.clone()));
    }
    repositories.extend(enclosing_repositories(&project));
    candidates.extend(protect::hook_candidates(
        &repositories,
        &project,
        &user.home,
    ));
    candidates.extend(protect::trusted_tool_configs(&project));
    candidates.extend(home_startup_in_project(&user.home, &project));
    if let Some(home) = &sudo_home {
        candidates.extend(home_startup_in_project(home, &project));
    }
    candidates.extend(own_state_hidden(&grants, &cache)?);
    let user_links = protect::drop_through_links(&mut candidates, &project);
    policy::cover_long_paths(&mut candidates);
    gather_more_facts(&candidates, &mut facts);
    let (grants, mut absent_protected) = policy::resolve(&candidates, &facts)?;
    // Below a file that is there now (a linked worktree's `.git` file) no
    // protected path can appear without that file being replaced, which the
    // check after the run catches (`repos`); moving the user's `.git` file
    // aside would break their worktree.
    absent_protected.retain(|p| !protect::below_a_file(p, &project));
    let mut protected_links: Vec<(PathBuf, PathBuf)> = candidates
        .iter()
        .filter(|c| c.access == policy::Access::Protected)
        .filter_map(|c| match facts.get(&c.path) {
            Some(PathKind::Symlink { target, .. }) => Some((c.path.clone(), target.clone())),
            _ => None,
        })
        .collect();
    protected_links.extend(user_links);

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

    let registries = policy::network_enabled(&loaded, args.no_network)
        .then(|| registries::configured(&loaded.profile.network.registries, &user.home, &project));
    let (registry_rules, registry_env) =
        registries.map_or_else(Default::default, |r| (r.rules, r.env));
    let network = policy::network(&loaded, &args.allow_host, args.no_network, registry_rules)?;
    let mut env = with_proxy_env(built.env, &network);
    for (k, v) in registry_env {
        if !env.iter().any(|(e, _)| e.eq_ignore_ascii_case(&k)) {
            env.push((k, v));
        }
    }
    let host_dirs = match isolation {
        Isolation::Full => None,
        Isolation::Landlock => {
            let dirs = landlock_level::host_dirs(home_source.as_deref())?;
            env.retain(|(k, _)| k != "HOME" && k != "TMPDIR");
            env.push(("HOME".into(), dirs.home.display().to_string()));
            env.push(("TMPDIR".into(), dirs.tmp.display().to_string()));
            env.sort();
            Some(dirs)
        }
    };

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
        protected_globs,
        protected_links,
        linked_repository: linked.map(|l| l.common),
        env,
        env_removed: built.removed,
        command: args.command.clone(),
        allow_ptrace: loaded.profile.syscalls.ptrace.unwrap_or(false),
        max_processes: loaded
            .profile
            .limits
            .processes
            .unwrap_or(profile::DEFAULT_PROCESSES),
        home_source,
        caches,
        network,
        allow_degraded: args.allow_degraded,
        secrets: policy::SecretsFound {
            files: found.flagged,
            redactions,
            env: built.secret,
            stats: found.stats,
            history,
            rules: secrets::SharedRules(Some(rules.clone())),
        },
        isolation,
        host_dirs,
    };
    let tty = landlock_level::tty();
    let mut plan = plan::build(
        &policy,
        host::cap_last_cap(),
        tty.as_deref(),
        &landlock_level::list_dir,
    )?;
    if isolation == Isolation::Full {
        plan.user_limits = host::sandbox_user_limits();
    }
    Ok((policy, plan))
}

/// Under sudo, the home of the user who ran it. HOME is root's there (or
/// that user's, kept): either way a project holding the other one (`sudo
/// guard run` started in `~`) would expose it whole.
fn sudo_home() -> Option<PathBuf> {
    let uid: u32 = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    let home = std::fs::canonicalize(user.dir).ok()?;
    // A system account's home may be `/`: no one's files to protect there.
    (home != Path::new("/")).then_some(home)
}

/// Files and directories of the home whose content runs on the host at
/// the next login, shell, `git`, `ssh` or `cd` (direnv).
const HOME_STARTUP: &[&str] = &[
    ".profile",
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".zshenv",
    ".zprofile",
    ".zshrc",
    ".zlogin",
    ".zlogout",
    ".xprofile",
    ".xsessionrc",
    ".gitconfig",
    ".ssh/config",
    ".ssh/rc",
    ".ssh/authorized_keys",
    ".direnvrc",
    ".bash_aliases", // sourced by Debian's and Ubuntu's .bashrc
    ".bashrc.d",     // sourced by Fedora's
    ".local/bin",    // in PATH
    "bin",
    ".tmux.conf",
    ".vimrc",
    ".vim",
    ".emacs",
    ".emacs.d",
];

/// The same below $XDG_CONFIG_HOME.
const CONFIG_STARTUP: &[&str] = &[
    "fish/config.fish",
    "fish/conf.d",
    "fish/functions",
    "git/config",
    "autostart",
    "systemd/user",
    "environment.d",
    "direnv/direnvrc",
    "direnv/lib",
    "nvim",
    "tmux",
    "emacs",
];

/// The same below $XDG_DATA_HOME: direnv's list of the `.envrc` files the
/// user allowed (an entry the sandbox wrote would allow one it planted).
const DATA_STARTUP: &[&str] = &["direnv/allow"];

/// Those that lie in the project: through a link (`~/.bashrc ->
/// ~/dotfiles/bashrc`, as GNU stow sets dotfiles up; a dangling one the
/// sandbox would create) or because the project holds them (`~/.config`
/// kept in git). The project is writable, so without this the sandbox
/// wrote the user's shell startup file. Protected like `.envrc`.
fn home_startup_in_project(home: &Path, project: &Path) -> Vec<Candidate> {
    let xdg = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(default))
    };
    let (config, data) = (
        xdg("XDG_CONFIG_HOME", ".config"),
        xdg("XDG_DATA_HOME", ".local/share"),
    );
    let (home_at, config_at, data_at) = (
        host::canonical_prefix(home),
        host::canonical_prefix(&config),
        host::canonical_prefix(&data),
    );
    let paths = HOME_STARTUP
        .iter()
        .map(|rel| (home, &home_at, rel))
        .chain(CONFIG_STARTUP.iter().map(|rel| (&*config, &config_at, rel)))
        .chain(DATA_STARTUP.iter().map(|rel| (&*data, &data_at, rel)));
    let mut out: Vec<Candidate> = Vec::new();
    let mut push = |at: PathBuf, from: PathBuf| {
        if at.starts_with(project) && at != project && !out.iter().any(|c| c.path == at) {
            out.push(Candidate {
                origin: format!("{}, which runs on the host", from.display()),
                path: at,
                access: policy::Access::Protected,
                required: false,
            });
        }
    };
    for (base, base_at, rel) in paths {
        push(leads_to(base_at, rel), base.join(rel));
    }
    // Any other dotfile of the home, or entry of $XDG_CONFIG_HOME, that is
    // a link into the project (a dotfiles repository set up with stow:
    // `.inputrc`, `.claude`, `.config/starship.toml`): host programs read
    // or run most of them, and no list names them all. Links only: a
    // directory entry costs nothing more than the listing.
    for (dir, dir_at, dotfiles_only) in [(home, &home_at, true), (&*config, &config_at, false)] {
        let Ok(rd) = std::fs::read_dir(dir_at) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            // The XDG directories are containers, looked into by the lists.
            let container = matches!(name.as_encoded_bytes(), b".config" | b".local" | b".cache");
            if (dotfiles_only && (!name.as_encoded_bytes().starts_with(b".") || container))
                || !e.file_type().is_ok_and(|t| t.is_symlink())
            {
                continue;
            }
            push(where_it_leads(&e.path()), dir.join(&name));
        }
    }
    out
}

/// Where `base/rel` leads (`base` canonical): down with `lstat`, the slow
/// way ([`where_it_leads`]) only from a link on; most entries end at a
/// component that is not there (each `canonicalize` costs a `readlink` per
/// component, and this runs at every start).
fn leads_to(base: &Path, rel: &str) -> PathBuf {
    let mut at = base.to_path_buf();
    let mut comps = Path::new(rel).iter();
    while let Some(c) = comps.next() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let led = where_it_leads(&at);
                let rest: PathBuf = comps.collect();
                return if rest.as_os_str().is_empty() {
                    led
                } else {
                    where_it_leads(&led.join(rest))
                };
            }
            Ok(_) => {}
            Err(_) => {
                at.extend(comps);
                return at;
            }
        }
    }
    at
}

/// Where `path` leads, following links, also a final one that dangles (it
/// names where a file would be created).
fn where_it_leads(path: &Path) -> PathBuf {
    let mut at = path.to_path_buf();
    for _ in 0..16 {
        match std::fs::read_link(&at) {
            Ok(target) => {
                at = match at.parent() {
                    Some(dir) => host::canonical_prefix(dir).join(target),
                    None => target,
                };
                at = host::lexical(&at);
            }
            Err(_) => break,
        }
    }
    host::canonical_prefix(&at)
}

/// Repositories around the project (`--project frontend` in a monorepo):
/// the user commits there, outside guard, and git runs the hooks their
/// config names from the worktree, which may lie in the project
/// (`core.hooksPath = frontend/.husky/_`, as husky sets it up for a package
/// below the repository's root). (git dir, worktree)
fn enclosing_repositories(project: &Path) -> Vec<(PathBuf, PathBuf)> {
    project
        .ancestors()
        .skip(1)
        .filter_map(|dir| {
            let dot_git = dir.join(".git");
            if std::fs::symlink_metadata(&dot_git).ok()?.is_dir() {
                Some((dot_git, dir.to_path_buf()))
            } else {
                protect::linked_repository(dir).map(|l| (l.common, dir.to_path_buf()))
            }
        })
        .collect()
}

/// guard's own directories, with what the sandbox could do with them.
fn own_state(cache: &Path) -> Vec<OwnDir> {
    const CACHE: (&str, &str, &str) = (
        "cache",
        "XDG_CACHE_HOME",
        "mark a secret file as clean for the next session",
    );
    let dirs = [
        (Some(cache.to_path_buf()), CACHE),
        (host::cache_dir(), CACHE),
        (
            host::config_dir(),
            (
                "configuration (user profiles, trust pins)",
                "XDG_CONFIG_HOME",
                "widen every later session with a profile of its own",
            ),
        ),
        (
            host::data_dir(),
            (
                "data (agents' persistent homes, cache layers)",
                "XDG_DATA_HOME",
                "plant what an agent's session in another project starts with",
            ),
        ),
        (
            host::state_dir(),
            (
                "session log",
                "XDG_STATE_HOME",
                "rewrite the record of what it did",
            ),
        ),
    ];
    let mut out: Vec<OwnDir> = Vec::new();
    for (dir, (what, var, why)) in dirs {
        // Compared with grants, which are canonical: HOME may be spelled
        // through a link, and the directory may not exist yet.
        let Some(dir) = dir.map(|d| host::canonical_prefix(&d)) else {
            continue;
        };
        if !out.iter().any(|o| o.dir == dir) {
            out.push(OwnDir {
                dir,
                what,
                var,
                why,
            });
        }
    }
    out
}

struct OwnDir {
    dir: PathBuf,
    what: &'static str,
    /// The variable that moves it.
    var: &'static str,
    /// What the sandbox could do with it.
    why: &'static str,
}

/// guard's own state must stay out of the sandbox's reach: whoever can
/// write it decides what later sessions may do (user profiles and trust
/// pins), what they see (the scan cache), what an agent's next session in
/// another project starts with (persistent homes) and what the log says.
/// A project that contains one (`~/.config` kept in git, XDG_CONFIG_HOME in
/// a dotfiles checkout) sees it hidden, created first so that the sandbox
/// cannot create it; a grant inside one is refused.
fn own_state_hidden(grants: &[policy::Grant], cache: &Path) -> Result<Vec<Candidate>> {
    let visible = |g: &&policy::Grant| {
        matches!(
            g.access,
            policy::Access::ReadOnly | policy::Access::ReadWrite
        )
    };
    let mut out = Vec::new();
    for OwnDir {
        dir,
        what,
        var,
        why,
    } in own_state(cache)
    {
        if let Some(g) = grants
            .iter()
            .filter(visible)
            .find(|g| g.path.starts_with(&dir))
        {
            return Err(Error::usage_hint(
                format!(
                    "{} {} is in guard's own {what} directory {}: the sandbox could {why}",
                    g.origin,
                    g.path.display(),
                    dir.display()
                ),
                format!(
                    "run guard in a project outside {} (edit guard's own files without guard), \
                     or set {var} to a directory outside the project",
                    dir.display()
                ),
            ));
        }
        if grants
            .iter()
            .filter(visible)
            .any(|g| dir.starts_with(&g.path))
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io("create", &dir, e))?;
            out.push(Candidate {
                path: dir,
                access: policy::Access::Hidden,
                origin: format!("guard's own {what}"),
                required: false,
            });
        }
    }
    Ok(out)
}

/// guard reads the directory (its `.guard.toml`, the secrets scan) as the
/// user: one the user cannot list would fail later, with a less clear error.
fn check_listable(dir: &Path, what: &str) -> Result<()> {
    use nix::unistd::{AccessFlags, access};
    access(dir, AccessFlags::R_OK | AccessFlags::X_OK).map_err(|e| {
        Error::usage_hint(
            format!(
                "cannot use the {what} {}: {} (guard runs as uid {})",
                dir.display(),
                crate::error::os_text(&std::io::Error::from(e)),
                nix::unistd::getuid()
            ),
            "run guard as a user who can read the directory, or in another directory",
        )
    })
}

/// The current directory, canonical, or why it cannot be used.
pub fn current_dir() -> Result<PathBuf> {
    std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::usage_hint(
                "the current directory no longer exists (it was removed after the shell entered it)",
                "cd to an existing directory (`cd \"$PWD\"` if it was re-created)",
            ),
            _ => Error::usage_hint(
                format!(
                    "cannot use the current directory: {}",
                    crate::error::os_text(&e)
                ),
                "cd to a directory you can read",
            ),
        })
}

/// `a/b/../c` as the kernel resolves it: `..` steps out of where `a/b`
/// really is (through links), so the prefix up to the last `..` is
/// resolved on disk. What follows is kept as given: a final link is still
/// seen as a link by the policy.
fn resolve_dot_dot(path: &Path) -> PathBuf {
    use std::path::Component;
    let comps: Vec<Component> = path.components().collect();
    let Some(last) = comps.iter().rposition(|c| *c == Component::ParentDir) else {
        return path.to_path_buf();
    };
    let prefix: PathBuf = comps[..=last].iter().collect();
    let rest: PathBuf = comps[last + 1..].iter().collect();
    let base = std::fs::canonicalize(&prefix).unwrap_or_else(|_| host::lexical(&prefix));
    if rest.as_os_str().is_empty() {
        base
    } else {
        base.join(rest)
    }
}

/// `-p NAME|PATH`, else the profile named like the command (`guard run --
/// claude` uses `claude`), else `default`.
pub fn select_profile(args: &RunArgs) -> String {
    if let Some(p) = &args.profile {
        return p.clone();
    }
    let name = args
        .command
        .first()
        .and_then(|c| Path::new(c).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("default");
    if profile::profile_exists(name) {
        name.to_string()
    } else {
        "default".to_string()
    }
}

/// Layer the project's `.guard.toml` over the profile. One that only
/// narrows applies directly; one that widens must be trusted (pinned by
/// hash with `guard trust`).
fn apply_project_profile(loaded: &mut profile::Loaded, home: &Path, project: &Path) -> Result<()> {
    let file = project.join(profile::trust::PROJECT_FILE);
    if std::fs::symlink_metadata(&file).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(());
    }
    let text = profile::read_profile(&file, false)?;
    let layers = project_layers(&file, &text)?;
    let widens = profile::trust::widenings(&loaded.profile, &layers, home, project);
    let sum = profile::trust::project_digest(&text, &layers);
    let trusted = !widens.is_empty() && profile::trust::is_trusted(&file, &sum)?;
    let decision = match (widens.is_empty(), trusted) {
        (true, _) => "applied (only narrows)",
        (false, true) => "applied (widens; trusted by hash)",
        (false, false) => "refused (widens; not trusted)",
    };
    tracing::info!(
        target: audit::TARGET,
        kind = "trust",
        file = %file.display(),
        decision,
        widens = %widens.join("; "),
        sha256 = %sum,
    );
    if !widens.is_empty() && !trusted {
        return Err(Error::Usage {
            msg: format!(
                "the project profile {} widens the sandbox and is not trusted:\n    {}",
                file.display(),
                widens.join("\n    ")
            ),
            hint: Some(format!(
                "review it, then run `guard trust {}` (pinned by hash: any later change asks again)",
                project.display()
            )),
        });
    }
    for l in layers {
        loaded.profile.merge(&l.profile);
        loaded.layers.push(l);
    }
    loaded.origin = format!("{} + {}", loaded.origin, file.display());
    Ok(())
}

/// The layers a project file contributes: what it extends, then itself.
pub fn project_layers(file: &Path, text: &str) -> Result<Vec<profile::Layer>> {
    let origin = file.display().to_string();
    let own = profile::parse(text, &origin)?;
    let mut layers = profile::extends_of(&own, text, file)?;
    layers.push(profile::Layer {
        origin,
        profile: own,
    });
    Ok(layers)
}

fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A directory name for `project`: readable, and unique (a path's bytes
/// could exceed a name's 255).
fn project_key(project: &Path) -> String {
    let hex = secrets::project_hash(project);
    let name = project
        .file_name()
        .map(|n| safe_name(&n.to_string_lossy()))
        .unwrap_or_default();
    let name: String = name.chars().take(64).collect();
    format!("{name}-{hex}")
}

/// Copy-on-write caches: each existing cache directory gets an upper layer
/// in guard's data dir; the host's copy is only ever the lower layer. The
/// layers are the project's own: a session can rewrite any package source
/// in its cache (`~/.cargo/registry/src`, a wheel in pip's), and a layer
/// shared by every project of the profile would carry that into the
/// builds of projects the session never saw.
fn prepare_caches(
    loaded: &profile::Loaded,
    home: &Path,
    project: &Path,
    quiet: bool,
) -> Result<Vec<policy::Cache>> {
    let mut out = Vec::new();
    if loaded.profile.home.cache.is_empty() {
        return Ok(out);
    }
    let base = host::data_dir()
        .ok_or_else(|| {
            Error::usage_hint(
                "cannot locate a data directory for caches",
                "set HOME or XDG_DATA_HOME",
            )
        })?
        .join("caches")
        .join(safe_name(&loaded.name))
        .join(project_key(project));
    for raw in &loaded.profile.home.cache {
        let Some(path) = profile::expand_path(raw, home, project) else {
            continue;
        };
        if !path.is_dir() {
            continue;
        }
        // A cache that is a link, or lies below one (`~/.npm -> .npm-data`,
        // `~/.cargo -> /data/cargo`): the overlay would show where the
        // link leads, which the secrets scan (never following links) would
        // not have looked at, and a target out of the home cannot even be
        // mounted. The tool starts with an empty cache instead.
        // (Links above the home, `/home -> /usr/home`, are the machine's.)
        let real = std::fs::canonicalize(&path).unwrap_or_default();
        let expected = match path.strip_prefix(home) {
            Ok(rel) => std::fs::canonicalize(home)
                .unwrap_or_else(|_| home.to_path_buf())
                .join(rel),
            Err(_) => path.clone(),
        };
        if real != expected {
            if !quiet {
                eprintln!(
                    "guard: WARNING: {} leads to {} through a symlink: not shown as a \
                     copy-on-write cache (the tool inside starts with an empty cache); \
                     grant {} itself with --ro to share it read-only",
                    path.display(),
                    real.display(),
                    real.display()
                );
            }
            continue;
        }
        let layer = base.join(safe_name(&path.display().to_string()));
        let (upper, work) = (layer.join("upper"), layer.join("work"));
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("create", d, e))?;
        }
        out.push(policy::Cache { path, upper, work });
    }
    Ok(out)
}

/// The proxy variables override whatever the caller's environment passed.
fn with_proxy_env(
    env: Vec<(String, String)>,
    net: &crate::net::NetPolicy,
) -> Vec<(String, String)> {
    let mut map: BTreeMap<String, String> = env.into_iter().collect();
    for (k, v) in crate::net::proxy_env(net) {
        map.insert(k, v);
    }
    map.into_iter().collect()
}

/// What a run shows of the host beside the project.
struct Shown<'a> {
    grants: &'a [policy::Grant],
    /// Copy-on-write caches: the host's directory is their lower layer,
    /// read in full by the sandbox like a read-only grant.
    caches: &'a [policy::Cache],
    /// Where home paths the profile grants lead when they are symlinks, or
    /// lie below one, out of the home (`~/.nvm -> /data/nvm`): the grant is
    /// on that target, and what it shows is the home's all the same.
    home_links: &'a [PathBuf],
    /// Toolchain homes the caller's environment names ([`tool_homes`]).
    tool_homes: &'a [ToolHome],
}

/// A toolchain's home named by a variable (`CARGO_HOME=/usr/local/cargo`,
/// as in the official Rust image), and what of it holds packages.
struct ToolHome {
    name: &'static str,
    path: PathBuf,
    packages: Vec<PathBuf>,
    logins: &'static [&'static str],
}

/// Variables that name a toolchain's home, and what below it holds
/// installed packages and toolchains (a `*` is one level of entries).
/// Their config and credential files (`credentials.toml`, a node's
/// `etc/npmrc`, a virtualenv's `pip.conf`) lie beside those.
type ToolHomeVar = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// Variables that name a toolchain's home; what below it holds installed
/// packages and toolchains (a `*` is one level of entries), not scanned;
/// and its login files, hidden whole (the path rules know them only below
/// `.cargo`). Config files (a node's `etc/npmrc`, a virtualenv's
/// `pip.conf`, cargo's `config.toml`) lie beside the packages.
const TOOL_HOME_VARS: &[ToolHomeVar] = &[
    (
        "CARGO_HOME",
        &["registry", "git"],
        &["credentials", "credentials.toml"],
    ),
    (
        "RUSTUP_HOME",
        &["toolchains", "downloads", "tmp", "update-hashes"],
        &[],
    ),
    (
        "NVM_DIR",
        &[
            ".git",
            ".cache",
            "versions/node/*/lib",
            "versions/node/*/include",
            "versions/node/*/share",
        ],
        &[],
    ),
    (
        "VOLTA_HOME",
        &["tools/image", "tools/inventory", "cache"],
        &[],
    ),
    (
        "PYENV_ROOT",
        &[
            ".git",
            "cache",
            "sources",
            "plugins",
            "versions/*/lib",
            "versions/*/include",
            "versions/*/share",
        ],
        &[],
    ),
    ("GOPATH", &["pkg", "src"], &[]),
    ("VIRTUAL_ENV", &["lib", "lib64", "include", "share"], &[]),
];

/// The toolchain homes the caller's environment names (the toolchain
/// profiles pass these variables, so the tools inside use them): absolute
/// directories outside the home and the project (those are scanned
/// already). A system directory a profile shows (/usr, /opt) is not
/// scanned, and a cargo login there (`/usr/local/cargo/credentials.toml`,
/// where the official Rust image keeps CARGO_HOME) was shown as it is.
fn tool_homes(home: &Path, project: &Path) -> Vec<ToolHome> {
    TOOL_HOME_VARS
        .iter()
        .filter_map(|&(name, packages, logins)| {
            let path = std::fs::canonicalize(std::env::var_os(name)?).ok()?;
            if !path.is_dir() || path.starts_with(home) || path.starts_with(project) {
                return None;
            }
            // Not a system directory itself (`VIRTUAL_ENV=/usr`): packaged
            // software by the hundred thousand files, and no toolchain's.
            if path.components().count() < 3 || Path::new("/usr/local").starts_with(&path) {
                return None;
            }
            let packages = packages
                .iter()
                .flat_map(|rel| one_level(&path, rel))
                .collect();
            Some(ToolHome {
                name,
                path,
                packages,
                logins,
            })
        })
        .collect()
}

/// `base/rel`, a `*` component standing for each entry there.
fn one_level(base: &Path, rel: &str) -> Vec<PathBuf> {
    let mut out = vec![base.to_path_buf()];
    for part in rel.split('/') {
        out = out
            .into_iter()
            .flat_map(|dir| {
                if part == "*" {
                    std::fs::read_dir(&dir)
                        .map(|rd| rd.flatten().map(|e| e.path()).collect())
                        .unwrap_or_default()
                } else {
                    vec![dir.join(part)]
                }
            })
            .collect();
    }
    out
}

/// Where the home paths among `candidates` that are symlinks (or lie below
/// one) lead, when that is out of the home.
fn home_link_targets(
    candidates: &[Candidate],
    facts: &BTreeMap<PathBuf, PathKind>,
    home: &Path,
) -> Vec<PathBuf> {
    candidates
        .iter()
        .filter(|c| c.path.starts_with(home))
        .filter_map(|c| match facts.get(&c.path) {
            Some(PathKind::Symlink {
                resolved: Some(r), ..
            }) if !r.starts_with(home) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Scan the project and every path the grants expose outside it that a
/// user would keep secrets in: home paths the profile grants (wherever a
/// symlink in the home leads them), its copy-on-write caches, and paths
/// given on the command line. System paths (/usr, /etc) are not scanned;
/// their secret files are hidden by the profile.
fn scan_visible(
    rules: &secrets::Rules,
    project: &Path,
    home: &Path,
    shown: &Shown,
    cache_dir: &Path,
    linked: Option<&protect::Linked>,
) -> Result<secrets::ScanReport> {
    use policy::{Access, GrantKind};
    let grants = shown.grants;
    let mut roots = vec![secrets::Root {
        path: project.to_path_buf(),
        anchor: project.to_path_buf(),
    }];
    roots.extend(linked.map(linked_root));
    let mut exclude = vec![cache_dir.to_path_buf()];
    for g in grants {
        if g.access == Access::Hidden {
            exclude.push(g.path.clone());
            continue;
        }
        let visible = matches!(g.access, Access::ReadOnly | Access::ReadWrite)
            && matches!(g.kind, GrantKind::Dir | GrantKind::File)
            && !g.path.starts_with(project);
        let wanted = g.path.starts_with(home)
            || g.origin.starts_with("--")
            || shown.home_links.iter().any(|t| g.path.starts_with(t));
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
    for c in shown.caches {
        roots.push(secrets::Root {
            path: c.path.clone(),
            anchor: if c.path.starts_with(home) {
                home.to_path_buf()
            } else {
                c.path.clone()
            },
        });
    }
    // The machine's own configuration, shown read-only by every profile,
    // is where an administrator leaves tokens for every user's tools
    // (`/etc/environment`, `/etc/pip.conf` with an index password, a
    // unit's `Environment=`, a global `npmrc`). Small, so cheap to scan;
    // /usr and /opt hold packaged software by the hundred thousand files.
    for dir in SYSTEM_CONFIG_ROOTS.iter().map(Path::new) {
        if self::shown(grants, dir) && !dir.starts_with(project) && !dir.starts_with(home) {
            roots.push(secrets::Root {
                path: dir.to_path_buf(),
                anchor: dir.to_path_buf(),
            });
        }
    }
    for t in shown.tool_homes {
        if self::shown(grants, &t.path) {
            roots.push(secrets::Root {
                path: t.path.clone(),
                anchor: t.path.clone(),
            });
            exclude.extend(t.packages.iter().cloned());
        }
    }
    // Best effort: a cache directory that cannot be made costs time only.
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache_dir);
    let cache_file = cache_dir.join(secrets::cache_file_name(project));
    let mut found = secrets::scan(rules, &roots, &exclude, Some(&cache_file))?;
    // A linked worktree's history is its repository's.
    found.git_dirs.extend(linked.map(|l| l.common.clone()));
    Ok(found)
}

/// A linked worktree's repository, scanned like the project: relative paths
/// from the directory holding its `.git` (so `**/.git/objects` skips its
/// objects as it does the project's).
fn linked_root(linked: &protect::Linked) -> secrets::Root {
    let c = &linked.common;
    secrets::Root {
        anchor: match c.file_name() {
            Some(n) if n == ".git" => c.parent().unwrap_or(c).to_path_buf(),
            _ => c.clone(),
        },
        path: c.clone(),
    }
}

/// Every other path in the project that is a hard link to a flagged file.
/// Only files with more than one link are looked for, so the extra walk
/// happens only when a flagged file has another name (common in pnpm's
/// node_modules and cargo's target, which link their files); it is the
/// scan's own walk, on every CPU, with directories unchanged since the scan
/// taken from its cache. Symlinks are never followed.
fn hard_links_of(flagged: &[Flagged], project: &Path, scan_cache: &Path) -> Vec<Candidate> {
    use std::os::unix::fs::MetadataExt;
    let mut wanted: Vec<(u64, u64, PathBuf)> = Vec::new();
    for f in flagged.iter().filter(|f| !f.dir) {
        if let Ok(m) = std::fs::symlink_metadata(&f.path)
            && m.is_file()
            && m.nlink() > 1
        {
            wanted.push((m.dev(), m.ino(), f.path.clone()));
        }
    }
    if wanted.is_empty() {
        return Vec::new();
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    secrets::walk_listed(project, scan_cache, threads, || OtherNames {
        wanted: &wanted,
        found: Vec::new(),
    })
    .into_iter()
    .flat_map(|v| v.found)
    .collect()
}

/// Finds the other names of `wanted` files during a walk.
struct OtherNames<'w> {
    wanted: &'w [(u64, u64, PathBuf)],
    found: Vec<Candidate>,
}

impl secrets::walk::Visitor<'static> for OtherNames<'_> {
    fn dir(&mut self, _: &Path) -> bool {
        true
    }

    fn file(
        &mut self,
        dirfd: std::os::fd::BorrowedFd<'_>,
        name: &std::ffi::CStr,
        path: &Path,
        _hint: Option<u32>,
    ) -> Option<(u64, u64)> {
        let st = secrets::walk::lstat_at(dirfd, name).ok()?;
        if st.st_nlink > 1
            && let Some((_, _, of)) = self
                .wanted
                .iter()
                .find(|(d, i, p)| *d == st.st_dev && *i == st.st_ino && p != path)
        {
            self.found.push(Candidate {
                path: path.to_path_buf(),
                access: policy::Access::Hidden,
                origin: format!("secret (hard link to {})", of.display()),
                required: false,
            });
        }
        None
    }

    fn error(&mut self, _: &Path) {}
}

/// Unix sockets that programs outside the sandbox listen on, where the
/// sandbox could reach them by path (the project, a granted directory): a
/// network namespace keeps it off the host's loopback but not off a socket
/// file (a dev database's, a Docker daemon's, an editor's). Hidden: a
/// connect finds an empty read-only file. Taken from the listeners the
/// host's /proc/net/unix lists by absolute path, bound before the run.
fn host_listeners(grants: &[policy::Grant], project: &Path) -> Vec<Candidate> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;
    /// `__SO_ACCEPTCON`: the socket listens.
    const LISTENING: u32 = 0x10000;
    let Ok(table) = std::fs::read("/proc/net/unix") else {
        return Vec::new();
    };
    let visible = |path: &Path| path.starts_with(project) || shown(grants, path);
    let mut out: Vec<Candidate> = Vec::new();
    for line in table.split(|&b| b == b'\n').skip(1) {
        // Num RefCount Protocol Flags Type St Inode Path: the path is what
        // follows the seventh field, spaces and all.
        let mut rest = line;
        let mut fields = Vec::new();
        for _ in 0..7 {
            let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
            rest = &rest[start..];
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        let listening = std::str::from_utf8(fields[3])
            .ok()
            .and_then(|f| u32::from_str_radix(f, 16).ok())
            .is_some_and(|f| f & LISTENING != 0);
        let path = rest.strip_prefix(b" ").unwrap_or(rest);
        if !listening || !path.starts_with(b"/") {
            continue; // abstract (`@…`), unnamed, or relative to its binder
        }
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(path));
        if visible(&path)
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket())
            && !out.iter().any(|c| c.path == path)
        {
            out.push(Candidate {
                path,
                access: policy::Access::Hidden,
                origin: "a socket a program outside the sandbox listens on".into(),
                required: false,
            });
        }
    }
    out
}

/// The sockets of agents the profile passes by name (`SSH_AUTH_SOCK`,
/// `DBUS_SESSION_BUS_ADDRESS`, which pass only so): the variable alone
/// would name a socket the sandbox cannot reach, as it cannot reach any
/// other listener of the host's. Shown read-write (a connect needs write
/// permission) where the variable says, if a socket is there (not a link:
/// the variable names the path the sandbox sees). A bus address by an
/// abstract name stays unreachable (another network namespace).
fn passed_agent_sockets(pass: &[String]) -> Vec<Candidate> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    for (var, what) in [
        ("SSH_AUTH_SOCK", "the ssh-agent socket"),
        ("DBUS_SESSION_BUS_ADDRESS", "the D-Bus session bus socket"),
    ] {
        if !pass.iter().any(|p| p == var) {
            continue;
        }
        let Some(value) = std::env::var_os(var) else {
            continue;
        };
        let paths = if var == "SSH_AUTH_SOCK" {
            vec![PathBuf::from(value)]
        } else {
            value.to_str().map(dbus_socket_paths).unwrap_or_default()
        };
        for path in paths {
            let socket = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket());
            if path.is_absolute() && socket && !out.iter().any(|c: &Candidate| c.path == path) {
                out.push(Candidate {
                    path,
                    access: policy::Access::ReadWrite,
                    origin: format!("{what}: the profile passes {var}"),
                    required: false,
                });
            }
        }
    }
    out
}

/// The socket paths of a D-Bus address (`unix:path=/run/user/1000/bus`,
/// several separated by `;`). Escaped values (`%2f`) are left out.
fn dbus_socket_paths(address: &str) -> Vec<PathBuf> {
    address
        .split(';')
        .filter_map(|a| a.strip_prefix("unix:"))
        .filter_map(|keys| keys.split(',').find_map(|kv| kv.strip_prefix("path=")))
        .filter(|p| !p.contains('%'))
        .map(PathBuf::from)
        .collect()
}

/// Whether a read-only or read-write grant shows `path` inside.
fn shown(grants: &[policy::Grant], path: &Path) -> bool {
    grants.iter().any(|g| {
        path.starts_with(&g.path)
            && matches!(
                g.access,
                policy::Access::ReadOnly | policy::Access::ReadWrite
            )
    })
}

/// System directories scanned for secrets like the project.
const SYSTEM_CONFIG_ROOTS: &[&str] = &["/etc", "/usr/local/etc"];

/// System directories walked for files that not everyone may read.
/// /etc (and /usr/local/etc, its twin for software installed by hand) is
/// where a machine keeps its secrets (database and cluster passwords, TLS
/// and Wi-Fi keys) and is small; /usr and /opt hold packaged software by
/// the hundred thousand files, readable by everyone.
const PRIVATE_SYSTEM_ROOTS: &[&str] = &["/etc", "/usr/local/etc"];

/// Files and directories in a system directory the profile shows that
/// other users may not read. When guard runs as root the sandbox's uid 0
/// owns them and needs no capability to read them; the profile's list
/// (`/etc/shadow` …) cannot name every secret a machine keeps there, so
/// whatever a stranger could not read is hidden. A directory a stranger cannot enter is hidden whole.
/// Walked whether or not the profile shows them (the caller keeps what it
/// shows), so that the walk can start before the profile is loaded.
fn private_system_files() -> Vec<Candidate> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = PRIVATE_SYSTEM_ROOTS.iter().map(PathBuf::from).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            // Not followed: a link is judged where it leads, if that is here.
            // (Looked up in the open directory, not by its whole path.)
            let Ok(m) = e.metadata() else {
                continue;
            };
            let mode = m.permissions().mode();
            let private = if m.is_dir() {
                mode & 0o001 == 0
            } else if m.is_file() {
                mode & 0o004 == 0
            } else {
                false
            };
            if private {
                out.push(Candidate {
                    path: e.path(),
                    access: policy::Access::Hidden,
                    origin: "system file other users may not read".into(),
                    required: false,
                });
            } else if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// The cached bytecode of every flagged Python file
/// (`__pycache__/NAME.*.pyc`, and a legacy `NAME.pyc` beside it): hidden,
/// so Python compiles the redacted source instead (it cannot write the
/// cache back over the hidden file, and carries on without it).
fn bytecode_of(flagged: &[Flagged]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for f in flagged.iter().filter(|f| !f.dir) {
        let (Some(dir), Some(stem)) = (f.path.parent(), f.path.file_stem()) else {
            continue;
        };
        if f.path.extension().is_none_or(|e| e != "py") {
            continue;
        }
        let stem = stem.to_string_lossy();
        let mut found: Vec<PathBuf> = ["pyc", "pyo"]
            .iter()
            .map(|ext| dir.join(format!("{stem}.{ext}")))
            .collect();
        if let Ok(entries) = std::fs::read_dir(dir.join("__pycache__")) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(&format!("{stem}.")) && name.ends_with(".pyc") {
                    found.push(e.path());
                }
            }
        }
        for path in found {
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                out.push(Candidate {
                    path,
                    access: policy::Access::Hidden,
                    origin: format!("secret (bytecode of {})", f.path.display()),
                    required: false,
                });
            }
        }
    }
    out
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

/// The object files shown sanitized, and the pack directories frozen so
/// that a repack inside cannot copy sanitized objects into a new pack of
/// the host's repository (git does not re-hash what it copies).
fn history_candidates(h: &secrets::history::History) -> Vec<Candidate> {
    let subs = h.substitutes.iter().map(|s| Candidate {
        path: s.path.clone(),
        access: policy::Access::Redacted,
        origin: "secret in git history".into(),
        required: false,
    });
    let hidden = h.hidden.iter().map(|p| Candidate {
        path: p.clone(),
        access: policy::Access::Hidden,
        origin: "secret in git history (no sanitized copy)".into(),
        required: false,
    });
    let frozen = h.frozen.iter().map(|p| Candidate {
        path: p.clone(),
        access: policy::Access::Protected,
        origin: "git history with secrets".into(),
        required: false,
    });
    subs.chain(hidden).chain(frozen).collect()
}

/// `guard scan`: what the sandbox would not see, and why. Never a value.
fn scan(args: &ScanArgs) -> Result<i32> {
    let loaded = profile::load(args.profile.as_deref().unwrap_or("default"))?;
    let user = host::current_user();
    let cwd = current_dir()?;
    let project = match &args.dir {
        Some(dir) => {
            let canon = std::fs::canonicalize(cwd.join(dir)).map_err(|e| {
                Error::usage_hint(
                    format!(
                        "cannot scan {}: {}",
                        dir.display(),
                        crate::error::os_text(&e)
                    ),
                    "give an existing directory",
                )
            })?;
            if !canon.is_dir() {
                return Err(Error::usage_hint(
                    format!("cannot scan {}: not a directory", dir.display()),
                    "give the directory that holds it",
                ));
            }
            // A walk of the whole machine, or of a kernel's pseudo files,
            // would run for hours (or block on a file that never ends).
            if canon == Path::new("/")
                || ["/proc", "/sys", "/dev"]
                    .iter()
                    .any(|p| canon.starts_with(p))
            {
                return Err(Error::usage_hint(
                    format!(
                        "cannot scan {}: not a project (the whole machine, or kernel pseudo files)",
                        canon.display()
                    ),
                    "give a project directory",
                ));
            }
            canon
        }
        None => host::find_project(None, &cwd)?,
    };
    check_listable(&project, "directory")?;
    prune::record_project(&project);
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
    let linked = protect::linked_repository(&project);
    let found = scan_visible(
        &rules,
        &project,
        &user.home,
        &Shown {
            grants: &grants,
            caches: &[],
            home_links: &home_link_targets(&candidates, &facts, &user.home),
            tool_homes: &tool_homes(&user.home, &project),
        },
        &cache,
        linked.as_ref(),
    )?;
    let history = secrets::history::protect(
        &rules,
        &secrets::rules_fingerprint(&rules),
        &found.git_dirs,
        &project,
        &cache,
    );
    if args.json {
        println!("{}", secrets::report::json(&project, &found, &history));
    } else {
        print!(
            "{}",
            secrets::report::text(&project, &user.home, &found, &history)
        );
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
    gather_more_facts(candidates, &mut facts);
    facts
}

/// [`gather_facts`] into `facts`, for the paths it does not hold yet (the
/// second resolution of a run's policy adds the secret files and the
/// protections to the grants the first one resolved; each existing path
/// costs a `realpath`).
fn gather_more_facts(candidates: &[Candidate], facts: &mut BTreeMap<PathBuf, PathKind>) {
    for c in candidates {
        if facts.contains_key(&c.path) {
            continue;
        }
        let kind = PathKind::of(&c.path);
        if let PathKind::Symlink {
            resolved: Some(r), ..
        } = &kind
        {
            facts.insert(r.clone(), PathKind::followed(r));
        }
        facts.insert(c.path.clone(), kind);
    }
}

/// Used by `check`: run `true` with the default profile in `project`, at
/// the given isolation level, in a real sandbox.
pub fn run_default(project: &Path, isolation: Isolation) -> Result<i32> {
    let args = RunArgs {
        profile: None,
        project: Some(project.to_path_buf()),
        ro: vec![],
        rw: vec![],
        hide: vec![],
        allow_env: vec![],
        allow_host: vec![],
        no_network: false,
        allow_degraded: false,
        isolation: Some(isolation),
        quiet: true,
        log: None,
        command: vec!["true".into()],
    };
    match isolation {
        Isolation::Full => {
            let pending = crate::sandbox::spawn(Isolation::Full)?;
            let (policy, plan) = prepare(&args)?;
            pending.run(&plan, &policy.network)
        }
        Isolation::Landlock => {
            let (policy, plan) = prepare(&args)?;
            run_at_landlock_level(&policy, plan)
        }
    }
}
