//! `guard check`: which layers this machine can build, with a fix for each
//! one that is missing, and a real end-to-end sandbox run.

use crate::error::Result;
use crate::host;
use crate::plan::LANDLOCK_REQUIRED_ABI;
use crate::profile::Isolation;
use crate::sandbox::probe;
use nix::sched::CloneFlags as F;

pub fn run() -> Result<i32> {
    let line = |name: &str, res: std::result::Result<String, (String, String)>| match res {
        Ok(detail) => {
            println!("  ok       {name:<22} {detail}");
            true
        }
        Err((why, hint)) => {
            println!("  MISSING  {name:<22} {why}\n           hint: {hint}");
            false
        }
    };
    println!("guard check (kernel {})", kernel_release());

    let restrictions = probe::userns_restrictions();
    let userns = probe::user_namespace();
    let mut namespaces = line(
        "user namespace",
        userns.clone().map(|_| "unprivileged user namespaces work".into()).map_err(|e| {
            let hint = restrictions.first().map(|(_, h)| h.clone()).unwrap_or_else(|| {
                "enable unprivileged user namespaces (inside Docker: the default seccomp profile forbids them)".into()
            });
            (e, hint)
        }),
    );
    for (flag, name) in [
        (F::CLONE_NEWNS, "MOUNT"),
        (F::CLONE_NEWPID, "PID"),
        (F::CLONE_NEWNET, "NET"),
        (F::CLONE_NEWIPC, "IPC"),
        (F::CLONE_NEWUTS, "UTS"),
        (F::CLONE_NEWCGROUP, "CGROUP"),
    ] {
        namespaces &= line(
            &format!("{} namespace", name.to_lowercase()),
            probe::namespace(flag, name)
                .map(|_| "works".into())
                .map_err(|e| (e, "needs user namespaces first; see above".into())),
        );
    }
    let abi = host::landlock_abi();
    let landlock = line(
        "landlock",
        if abi >= LANDLOCK_REQUIRED_ABI {
            Ok(format!(
                "ABI {abi} (required {LANDLOCK_REQUIRED_ABI}; TCP rules and scoping included)"
            ))
        } else {
            Err((
                if abi == 0 { "not available".into() } else { format!("ABI {abi}, guard requires {LANDLOCK_REQUIRED_ABI}") },
                "Linux 6.12+ with landlock in the lsm= boot parameter; or run with --allow-degraded".into(),
            ))
        },
    );
    let seccomp = line(
        "seccomp",
        probe::seccomp()
            .map(|_| "filter loads (x86_64/aarch64 ABI checks included)".into())
            .map_err(|e| (e, "a kernel built with CONFIG_SECCOMP_FILTER".into())),
    );
    for (file, hint) in &restrictions {
        println!("  note     {file} restricts user namespaces\n           hint: {hint}");
    }

    // End to end: the real sandbox with the default profile, running `true`
    // in an empty project, at the best level the layers above allow.
    let level = if namespaces {
        Isolation::Full
    } else {
        Isolation::Landlock
    };
    let e2e = (|| -> Result<i32> {
        let dir = std::env::temp_dir().join(format!("guard-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io("create", &dir, e))?;
        let result = crate::app::run_default(&dir, level);
        let _ = std::fs::remove_dir(&dir);
        result
    })();
    let e2e = line(
        &format!("{} sandbox", level.label()),
        match e2e {
            Ok(0) => Ok("`true` ran inside a complete sandbox at this level".into()),
            Ok(code) => Err((
                format!("`true` exited with {code}"),
                "run `guard -v run -- true` to see why".into(),
            )),
            Err(e) => Err((
                e.to_string(),
                e.hint().unwrap_or("see the message above").to_string(),
            )),
        },
    );
    let full = namespaces && landlock && seccomp && e2e;
    if full {
        println!("\nisolation level: full (namespaces + Landlock + seccomp)");
    } else if landlock && seccomp && e2e {
        println!(
            "\nisolation level: landlock only (no namespaces). `guard run` refuses to start unless \
             given --allow-degraded or --isolation landlock (or a profile with isolation = \"landlock\").\n\
             At this level guard does not protect:"
        );
        for gap in Isolation::Landlock.gaps() {
            println!("  - {gap}");
        }
    } else {
        println!("\nisolation level: incomplete: guard run will refuse to start");
    }
    Ok(if full { 0 } else { 1 })
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}
