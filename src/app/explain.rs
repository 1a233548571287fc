//! `guard explain`: the resolved policy and the ordered plan, as text or
//! JSON, without running anything.

use crate::host;
use crate::plan::{self, Plan};
use crate::policy::{self, Policy};
use crate::profile::Isolation;
use crate::secrets;
use std::path::Path;

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
    let _ = writeln!(s, "isolation: {}", policy.isolation.label());
    for g in policy.isolation.gaps() {
        let _ = writeln!(s, "  not protected: {g}");
    }
    if let Some(dirs) = &policy.host_dirs {
        let _ = writeln!(
            s,
            "  HOME={} TMPDIR={} (created for the session)",
            dirs.home.display(),
            dirs.tmp.display()
        );
    }
    match &policy.home_source {
        _ if policy.host_dirs.is_some() => {}
        Some(src) => {
            let _ = writeln!(
                s,
                "home:     {} (persistent, kept in {})",
                policy.home.display(),
                src.display()
            );
        }
        None => {
            let _ = writeln!(
                s,
                "home:     {} (private, empty but for granted paths)",
                policy.home.display()
            );
        }
    }
    let _ = writeln!(s, "cwd:      {}", policy.cwd.display());
    let _ = writeln!(s, "command:  {}", shell_words(&policy.command));
    if policy.isolation == Isolation::Landlock {
        let _ = writeln!(
            s,
            "network:  through guard's proxy on the host's loopback (ports chosen at start; the only TCP ports Landlock lets the command connect to; no DNS, UDP or unix sockets)"
        );
    } else {
        s.push_str(&crate::net::describe(&policy.network));
    }
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
    if policy.isolation == Isolation::Full {
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
    } else {
        let _ = writeln!(
            s,
            "\nnamespaces: none (the host's file tree, processes and network; Landlock alone decides)"
        );
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
        .chain(plan::seccomp::table(plan.allow_ptrace, plan.isolation).iter())
    {
        let when = match r.when {
            plan::seccomp::Match::Always => String::new(),
            plan::seccomp::Match::IoctlRequest(req) => format!(" request={req:#x}"),
            plan::seccomp::Match::IoctlType(ty) => {
                format!(
                    " request={:#x}..={:#x}",
                    u32::from(ty) << 8,
                    (u32::from(ty) << 8) | 0xff
                )
            }
            plan::seccomp::Match::Arg0AnyBit(bits) => format!(" flags&{bits:#x}"),
            plan::seccomp::Match::ArgAnyBit(i, bits) => format!(" arg{i}&{bits:#o}"),
            plan::seccomp::Match::Arg0NotIn(v) => format!(" arg0 not in {v:?}"),
            plan::seccomp::Match::SocketFamilyType(f, t) => format!(" family={f} type={t}"),
            plan::seccomp::Match::SocketProtocolNotIn(f, ps) => {
                format!(" family={f} protocol not in {ps:?}")
            }
            plan::seccomp::Match::NrAtLeast => format!(" number>={}", r.nr),
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
    if found.files.is_empty() && found.history.sanitized.is_empty() {
        let _ = writeln!(s, "  none found");
    }
    for l in secrets::report::lines(&found.files, &policy.project, &policy.home)
        .into_iter()
        .chain(secrets::report::history_lines(
            &found.history,
            &policy.project,
            &policy.home,
        ))
    {
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
    // Paths and names in the plan may have been chosen by a sandbox (a file
    // an earlier session created): no escape sequence reaches the terminal.
    s.split('\n')
        .map(|l| host::printable(std::path::Path::new(l)))
        .collect::<Vec<_>>()
        .join("\n")
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

pub fn explain_json(policy: &Policy, plan: &Plan) -> String {
    let grants: Vec<serde_json::Value> = policy
        .grants
        .iter()
        .map(
            // Lossy: `json!` panics on a path that is not UTF-8 (a file name
            // in the project, which anyone may have chosen).
            |g| serde_json::json!({"path": g.path.to_string_lossy(), "access": g.access.label(), "origin": g.origin}),
        )
        .collect();
    let v = serde_json::json!({
        "profile": policy.profile,
        "profile_origin": policy.profile_origin,
        "project": policy.project.to_string_lossy(),
        "home": policy.home.to_string_lossy(),
        "persistent_home": policy.home_source.as_deref().map(Path::to_string_lossy),
        "cwd": policy.cwd.to_string_lossy(),
        "isolation": policy.isolation.label(),
        "not_protected": policy.isolation.gaps(),
        "command": policy.command,
        "grants": grants,
        "mounts": plan.mounts.iter().map(|m| m.describe()).collect::<Vec<_>>(),
        "landlock": {"required_abi": plan.landlock_min_abi, "rules": plan.landlock.iter().map(|r| r.describe()).collect::<Vec<_>>()},
        "seccomp": plan::seccomp::table(plan.allow_ptrace, plan.isolation).iter().map(|r| serde_json::json!({"syscall": r.name, "errno": r.errno, "why": r.why})).collect::<Vec<_>>(),
        "env": plan.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "env_removed": policy.env_removed,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
