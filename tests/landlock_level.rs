//! The `landlock` isolation level (no namespaces, as inside Docker): forced
//! with `--isolation landlock` on a machine that has namespaces, and reached
//! by `--allow-degraded` on one that does not (simulated with a user
//! namespace whose `user.max_user_namespaces` is 0).
//!
//! Each attack checks three things: it failed, it failed for the reason the
//! level promises (Landlock's EACCES, seccomp's EPERM, the proxy's 403 —
//! not "no such file" or "tool missing"), and no canary reached the output.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// `guard run --isolation landlock [EXTRA] -- sh -c SCRIPT`.
fn run_ll(env: &Env, extra: &[&str], script: &str) -> Outcome {
    let mut args = vec!["run", "--isolation", "landlock"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    env.run(&args)
}

/// A one-response-per-connection HTTP server on the host's loopback that
/// answers with `marker`.
fn serve(marker: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind test server");
    let port = l.local_addr().expect("server address").port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = format!("{marker}\n");
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn secrets_and_paths_outside_the_grants_are_unreachable() {
    for mode in modes() {
        let env = Env::new(mode);
        let dotenv = canary("DOTENV");
        let mixed = canary("MIXED");
        let ssh = canary("SSHKEY");
        env.project
            .write(".env", &format!("STRIPE_SECRET_KEY={dotenv}\n"));
        env.project.write(
            "src/settings.py",
            &format!("DEBUG = True\npassword = \"{mixed}Qx7Lp2Vz9\"\n"),
        );
        env.project.write("src/main.py", "print('visible')\n");
        env.project.write("lib/util.py", "pass\n");
        env.home.write(".ssh/id_ed25519", &format!("{ssh}\n"));
        let outside = TempDir::new("outside", mode);
        env.own();
        let script = format!(
            "cat .env; echo env_rc=$?; \
             cat src/settings.py; echo mixed_rc=$?; \
             cat src/main.py; echo src_rc=$?; \
             echo new > lib/new.py; echo write_rc=$?; \
             echo new > src/new.py; echo split_rc=$?; \
             cat {home}/.ssh/id_ed25519; echo ssh_rc=$?; \
             echo planted > {out}/planted; echo out_rc=$?; \
             ls /root >/dev/null; echo root_rc=$?; \
             echo home_is=$HOME",
            home = env.home.path.display(),
            out = outside.path.display(),
        );
        let r = run_ll(&env, &[], &script);
        r.expect_code(0).assert_no_canary(&dotenv);
        r.assert_no_canary(&mixed).assert_no_canary(&ssh);
        // The project works: read, write in a directory without secrets.
        assert_eq!(r.field("src_rc").as_deref(), Some("0"), "{}", r.all());
        assert!(r.stdout.contains("print('visible')"), "{}", r.all());
        assert_eq!(r.field("write_rc").as_deref(), Some("0"), "{}", r.all());
        assert!(env.project.join("lib/new.py").exists());
        // The documented price of this level: no new file next to a secret.
        assert_ne!(r.field("split_rc").as_deref(), Some("0"), "{}", r.all());
        // Secrets and the rest of the machine: denied by Landlock.
        for (key, what) in [
            ("env_rc", ".env"),
            ("mixed_rc", "src/settings.py"),
            ("ssh_rc", "id_ed25519"),
            ("out_rc", "planted"),
        ] {
            assert_ne!(r.field(key).as_deref(), Some("0"), "{key}: {}", r.all());
            assert!(
                r.stderr
                    .lines()
                    .any(|l| l.contains(what) && l.contains("Permission denied")),
                "{what} must fail with EACCES:\n{}",
                r.all()
            );
        }
        assert_ne!(r.field("root_rc").as_deref(), Some("0"), "{}", r.all());
        assert!(!outside.join("planted").exists());
        // HOME is private to the session, not the real one.
        let home_is = r.field("home_is").unwrap_or_default();
        assert!(
            home_is.contains("/guard/sessions/") && !home_is.is_empty(),
            "{}",
            r.all()
        );
        // ... and removed after the run.
        assert!(!Path::new(&home_is).exists(), "{home_is} left behind");
    }
}

#[test]
fn network_reaches_only_the_proxy_and_allowed_hosts() {
    let port = serve("SERVED-LL-4c1e");
    for mode in modes() {
        let env = Env::new(mode);
        let profile = env.project.write(
            "net.toml",
            &format!(
                "version = 1\nextends = [\"default\"]\n\
                 [network]\nallow = [ {{ host = \"web.guard.test:{port}\", private = true }} ]\n\
                 [network.hosts]\n\"web.guard.test\" = \"127.0.0.1\"\n"
            ),
        );
        env.own();
        let probe = py(&format!(
            "import socket, errno\n\
             def attempt(name, f):\n\
             \x20   try:\n\
             \x20       f(); print(name + \"=ok\")\n\
             \x20   except OSError as e:\n\
             \x20       print(name + \"=\" + str(e.errno))\n\
             def tcp():\n\
             \x20   s = socket.socket(); s.settimeout(3); s.connect((\"127.0.0.1\", {port}))\n\
             def bind():\n\
             \x20   s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen()\n\
             attempt(\"direct_tcp\", tcp)\n\
             attempt(\"bind\", bind)\n\
             attempt(\"udp\", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))\n\
             attempt(\"icmp\", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))\n\
             attempt(\"unix\", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))\n\
             attempt(\"netlink\", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))\n\
             attempt(\"sctp\", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132))\n\
             attempt(\"socketpair\", lambda: socket.socketpair())\n"
        ));
        let script = format!(
            "curl -sS --max-time 10 http://web.guard.test:{port}/; echo allowed_rc=$?; \
             curl -sS --max-time 10 -o /dev/null -w 'refused_code=%{{http_code}}\\n' http://other.guard.test/; \
             {probe}"
        );
        let r = run_ll(&env, &["-p", profile.to_str().unwrap()], &script);
        r.expect_code(0);
        // The allowed name works through the proxy, so the server is up:
        // the failures below are the sandbox's, not a dead server's.
        assert!(r.stdout.contains("SERVED-LL-4c1e"), "{}", r.all());
        assert_eq!(r.field("allowed_rc").as_deref(), Some("0"), "{}", r.all());
        assert_eq!(
            r.field("refused_code").as_deref(),
            Some("403"),
            "{}",
            r.all()
        );
        // Landlock: connect and bind outside the proxy's ports are EACCES.
        assert_eq!(r.field("direct_tcp").as_deref(), Some("13"), "{}", r.all());
        assert_eq!(r.field("bind").as_deref(), Some("13"), "{}", r.all());
        // seccomp: no socket that Landlock's TCP rules do not cover.
        for k in ["udp", "icmp", "unix", "netlink", "sctp"] {
            assert_eq!(r.field(k).as_deref(), Some("1"), "{k}: {}", r.all());
        }
        assert_eq!(r.field("socketpair").as_deref(), Some("ok"), "{}", r.all());
    }
}

#[test]
fn processes_outside_stay_closed_and_leftovers_are_ended() {
    for mode in modes() {
        let env = Env::new(mode);
        let secret = canary("SUPERVISORENV");
        let marker = format!("31337.{}", std::process::id() % 1000 + 100);
        let script = format!(
            "setup=$(awk '{{print $4}}' /proc/$$/stat); \
             guard=$(awk '{{print $4}}' /proc/$setup/stat); \
             echo guard_comm=$(cat /proc/$guard/comm); \
             cat /proc/$guard/environ >/dev/null; echo environ_rc=$?; \
             kill -0 $guard; echo kill_rc=$?; \
             (setsid sleep {marker} &) ; sleep {marker} & \
             echo started"
        );
        let out = env
            .guard(&["run", "--isolation", "landlock", "--", "sh", "-c", &script])
            .env("GUARD_TEST_SUPERVISOR_SECRET", &secret)
            .output()
            .expect("spawn guard");
        let r = Outcome::from(out);
        r.expect_code(0).assert_no_canary(&secret);
        // The pid really was guard's: the denial is about the process, not
        // a wrong pid.
        assert_eq!(
            r.field("guard_comm").as_deref(),
            Some("guard"),
            "{}",
            r.all()
        );
        assert_ne!(r.field("environ_rc").as_deref(), Some("0"), "{}", r.all());
        assert!(r.stderr.contains("Permission denied"), "{}", r.all());
        assert_ne!(r.field("kill_rc").as_deref(), Some("0"), "{}", r.all());
        assert!(r.stdout.contains("started"), "{}", r.all());
        // Both background sleeps (one in its own session) ended with guard.
        let left = pgrep(&format!("sleep {marker}"));
        assert!(left.is_empty(), "left running: {left:?}\n{}", r.all());
    }
}

#[test]
fn protected_files_are_restored_and_git_still_works() {
    for mode in modes() {
        let env = Env::new(mode);
        common::git_repo_with_readme(&env.project.path);
        env.own();
        let config_before = std::fs::read_to_string(env.project.join(".git/config")).unwrap();
        let script = "echo more >> README && git add README && \
             git -c user.name=t -c user.email=t@t commit -qm inside && echo commit_rc=$?; \
             printf '[core]\\n\\thooksPath = /tmp/evil-hooks\\n' >> .git/config; echo config_rc=$?; \
             printf '#!/bin/sh\\necho pwned\\n' > .git/hooks/pre-commit; echo hook_rc=$?; \
             echo 'echo pwned' > .envrc; echo envrc_rc=$?";
        let r = run_ll(&env, &[], script);
        r.expect_code(0);
        assert_eq!(r.field("commit_rc").as_deref(), Some("0"), "{}", r.all());
        let log = Command::new("git")
            .args(["-c", "safe.directory=*", "log", "--format=%s"])
            .current_dir(&env.project.path)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("git log");
        let log = String::from_utf8_lossy(&log.stdout).to_string();
        assert!(log.contains("inside"), "commit made inside is kept: {log}");
        // This level cannot stop the writes (they succeed inside) ...
        assert_eq!(r.field("config_rc").as_deref(), Some("0"), "{}", r.all());
        // ... but nothing of them is left where it would run outside.
        let config_after = std::fs::read_to_string(env.project.join(".git/config")).unwrap();
        assert_eq!(config_before, config_after, "{}", r.all());
        assert!(!env.project.join(".git/hooks/pre-commit").exists());
        assert!(!env.project.join(".envrc").exists());
        assert!(r.stderr.contains("restored it"), "{}", r.all());
        // What was written is kept aside for the user to inspect.
        let aside: Vec<String> = std::fs::read_dir(env.project.join(".git"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(".guard-quarantine-"))
            .collect();
        assert!(aside.iter().any(|n| n.starts_with("config.")), "{aside:?}");
        assert!(aside.iter().any(|n| n.starts_with("hooks.")), "{aside:?}");
    }
}

#[test]
fn the_level_says_what_it_does_not_protect() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let log = env.home.join("session.jsonl");
        let r = env.run(&[
            "run",
            "--isolation",
            "landlock",
            "--log",
            log.to_str().unwrap(),
            "--",
            "true",
        ]);
        r.expect_code(0);
        assert!(
            r.stderr.contains("isolation level `landlock`"),
            "{}",
            r.all()
        );
        for gap in ["limited by port", "protected files", "/proc"] {
            assert!(r.stderr.contains(gap), "{gap}: {}", r.all());
        }
        let events = std::fs::read_to_string(&log).expect("read the audit log");
        assert!(
            events
                .lines()
                .any(|l| l.contains("\"event\":\"start\"")
                    && l.contains("\"isolation\":\"landlock\"")),
            "{events}"
        );
        let e = env.run(&["explain", "--isolation", "landlock", "--", "true"]);
        e.expect_code(0);
        assert!(e.stdout.contains("isolation: landlock"), "{}", e.all());
        assert!(e.stdout.contains("not protected:"), "{}", e.all());
        assert!(e.stdout.contains("namespaces: none"), "{}", e.all());
        // At full isolation, nothing of the kind is claimed.
        let f = env.run(&["explain", "--", "true"]);
        assert!(f.stdout.contains("isolation: full"), "{}", f.all());
        assert!(!f.stdout.contains("not protected:"), "{}", f.all());
    }
}

#[test]
fn a_project_profile_asking_for_the_weaker_level_needs_trust() {
    for mode in modes() {
        let env = Env::new(mode);
        env.project
            .write(".guard.toml", "version = 1\nisolation = \"landlock\"\n");
        env.own();
        let r = env.run(&["run", "--", "true"]);
        r.expect_code(125);
        assert!(r.stderr.contains("isolation = \"landlock\""), "{}", r.all());
        env.run(&["trust"]).expect_code(0);
        let r = env.run(&["run", "--", "true"]);
        r.expect_code(0);
        assert!(
            r.stderr.contains("isolation level `landlock`"),
            "{}",
            r.all()
        );
    }
}

/// `guard ARGS` in a user namespace where no further user namespace may be
/// created: what guard meets inside Docker's default seccomp profile.
fn without_namespaces(env: &Env, args: &[&str]) -> Outcome {
    // guard's environment (HOME, XDG_*) as every other test sets it.
    let inner = env.guard(args);
    let mut cmd = Command::new("setpriv");
    if env.mode == Mode::Unprivileged {
        cmd.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
        ]);
    }
    cmd.args([
        "--",
        "unshare",
        "-Ur",
        "sh",
        "-c",
        "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"",
        "sh",
    ])
    .arg(guard_bin())
    .args(args);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.current_dir(&env.project.path)
        .stdin(std::process::Stdio::null());
    Outcome::from(cmd.output().expect("spawn setpriv/unshare"))
}

#[test]
fn without_namespaces_guard_refuses_unless_degraded_runs_are_allowed() {
    for mode in modes() {
        let env = Env::new(mode);
        let secret = canary("NONS");
        env.project
            .write(".env", &format!("GITHUB_TOKEN=ghp_{secret}\n"));
        env.project.write("src/lib.rs", "// visible\n");
        env.own();
        // Refused, saying why and how to go on.
        let r = without_namespaces(&env, &["run", "--", "cat", ".env"]);
        r.expect_code(125).assert_no_canary(&secret);
        assert!(r.stderr.contains("namespaces"), "{}", r.all());
        assert!(r.stderr.contains("--allow-degraded"), "{}", r.all());
        // With --allow-degraded: the landlock level, which still hides the secret.
        let r = without_namespaces(
            &env,
            &[
                "run",
                "--allow-degraded",
                "--",
                "sh",
                "-c",
                "cat src/lib.rs; cat .env; echo env_rc=$?",
            ],
        );
        r.expect_code(0).assert_no_canary(&secret);
        assert!(r.stdout.contains("// visible"), "{}", r.all());
        assert_ne!(r.field("env_rc").as_deref(), Some("0"), "{}", r.all());
        assert!(r.stderr.contains(".env: Permission denied"), "{}", r.all());
        assert!(
            r.stderr
                .contains("falling back to the `landlock` isolation level"),
            "{}",
            r.all()
        );
        // guard check names the level it can build, and what it lacks.
        let c = without_namespaces(&env, &["check"]);
        c.expect_code(1);
        assert!(
            c.stdout.contains("isolation level: landlock only"),
            "{}",
            c.all()
        );
        assert!(c.stdout.contains("landlock sandbox"), "{}", c.all());
    }
}

#[test]
fn a_landlock_session_waits_for_no_one_and_overlaps_no_session() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        // A full session runs (its shared lock is taken before the command
        // starts: wait for the command's own output to be sure) until the
        // landlock session has tried (a minute at most: a fixed time could
        // end it first on a loaded machine).
        let mut full = env
            .guard(&[
                "run",
                "-q",
                "--",
                "sh",
                "-c",
                "echo up; i=0; while [ ! -e tried ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn guard");
        let mut first = [0u8; 3];
        full.stdout
            .as_mut()
            .expect("stdout")
            .read_exact(&mut first)
            .expect("the full session starts");
        assert_eq!(&first, b"up\n");
        let r = run_ll(&env, &[], "echo should-not-run");
        std::fs::write(env.project.join("tried"), "").expect("end the full session");
        r.expect_code(125);
        assert!(!r.stdout.contains("should-not-run"), "{}", r.all());
        assert!(
            r.stderr.contains("another guard session runs"),
            "{}",
            r.all()
        );
        assert!(full.wait().expect("wait").success());
        // Once it ended, the landlock session runs.
        run_ll(&env, &[], "true").expect_code(0);
    }
}

/// One persistent home used at both levels, in turn: the `landlock` level
/// leaves links to the host's paths in it, the full level empty mount
/// points, and neither may stop the other (the full level once failed
/// with "file exists" at every later start). A link the sandbox put there
/// itself still stops the full level, with a message naming it.
#[test]
fn a_persistent_home_serves_both_levels_in_turn() {
    for mode in modes() {
        let env = Env::new(mode);
        env.home
            .write(".config/git/config", "[user]\n\tname = host-name-7f3a\n");
        env.home
            .write(".gitconfig", "[alias]\n\thostalias = status\n");
        let profile = env.project.write(
            "persist.toml",
            "version = 1\nextends = [\"default\"]\n[home]\npersist = true\n",
        );
        env.own();
        let profile = profile.to_str().expect("utf-8 path");
        let show = "echo name=$(git config user.name); \
                    echo alias=$(git config alias.hostalias)";
        let expected = [("name", "host-name-7f3a"), ("alias", "status")];
        for level in ["landlock", "full", "landlock", "full"] {
            let r = env.run(&[
                "run",
                "--isolation",
                level,
                "-p",
                profile,
                "--",
                "sh",
                "-c",
                show,
            ]);
            r.expect_code(0).expect_fields(&expected);
        }
        // ~/.gitconfig is a private copy at the full level: a session that
        // made an empty directory of it does not stop the next one.
        let r = env.run(&[
            "run",
            "-p",
            profile,
            "--",
            "sh",
            "-c",
            "rm ~/.gitconfig && mkdir ~/.gitconfig; echo rc=$?",
        ]);
        r.expect_code(0).expect_fields(&[("rc", "0")]);
        let r = env.run(&["run", "-p", profile, "--", "sh", "-c", show]);
        r.expect_code(0).expect_fields(&expected);
        // A dangling link planted where the full level mounts ~/.config/git
        // (at the `landlock` level, where that path is the home's own).
        let planted = canary("PLANTED");
        let r = env.run(&[
            "run",
            "--isolation",
            "landlock",
            "-p",
            profile,
            "--",
            "sh",
            "-c",
            &format!("rm ~/.config/git && ln -s /nonexistent-{planted} ~/.config/git; echo rc=$?"),
        ]);
        r.expect_code(0).expect_fields(&[("rc", "0")]);
        let r = env.run(&["run", "-p", profile, "--", "true"]);
        r.expect_code(125);
        assert!(
            r.stderr
                .contains("is a link where guard makes a mount point")
                && r.stderr.contains("hint: remove the link"),
            "{}",
            r.all()
        );
    }
}
