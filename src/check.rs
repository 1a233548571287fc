//! `guard check`: which layers this machine can build, with a fix for each
//! one that is missing, and a real end-to-end sandbox run.

use crate::error::Result;
use crate::host;
use crate::plan::LANDLOCK_REQUIRED_ABI;
use crate::sandbox::probe;
use nix::sched::CloneFlags as F;

pub fn run() -> Result<i32> {
    let mut ok = true;
    let mut line = |name: &str, res: std::result::Result<String, (String, String)>| match res {
        Ok(detail) => println!("  ok       {name:<22} {detail}"),
        Err((why, hint)) => {
            ok = false;
            println!("  MISSING  {name:<22} {why}\n           hint: {hint}");
        }
    };
    println!("guard check (kernel {})", kernel_release());

    let restrictions = probe::userns_restrictions();
    let userns = probe::user_namespace();
    line(
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
        line(
            &format!("{} namespace", name.to_lowercase()),
            probe::namespace(flag, name)
                .map(|_| "works".into())
                .map_err(|e| (e, "needs user namespaces first; see above".into())),
        );
    }
    let abi = host::landlock_abi();
    line(
        "landlock",
        if abi >= LANDLOCK_REQUIRED_ABI {
            Ok(format!("ABI {abi} (required {LANDLOCK_REQUIRED_ABI})"))
        } else {
            Err((
                if abi == 0 { "not available".into() } else { format!("ABI {abi}, guard requires {LANDLOCK_REQUIRED_ABI}") },
                "Linux 6.12+ with landlock in the lsm= boot parameter; or run with --allow-degraded".into(),
            ))
        },
    );
    line(
        "seccomp",
        probe::seccomp()
            .map(|_| "filter loads (x86_64/aarch64 ABI checks included)".into())
            .map_err(|e| (e, "a kernel built with CONFIG_SECCOMP_FILTER".into())),
    );
    for (file, hint) in &restrictions {
        println!("  note     {file} restricts user namespaces\n           hint: {hint}");
    }

    // End to end: the real sandbox with the default profile, running `true`
    // in an empty project.
    let e2e = (|| -> Result<i32> {
        let dir = std::env::temp_dir().join(format!("guard-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| crate::Error::io("create", &dir, e))?;
        let result = crate::sandbox::spawn(crate::profile::Isolation::Full).and_then(|pending| {
            crate::app::default_plan(&dir).and_then(|(pol, p)| pending.run(&p, &pol.network))
        });
        let _ = std::fs::remove_dir(&dir);
        result
    })();
    line(
        "full sandbox",
        match e2e {
            Ok(0) => Ok("`true` ran inside a complete sandbox".into()),
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
    println!(
        "\nisolation level: {}",
        if ok {
            "full (namespaces + Landlock + seccomp)"
        } else {
            "incomplete: guard run will refuse to start"
        }
    );
    Ok(if ok { 0 } else { 1 })
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}
