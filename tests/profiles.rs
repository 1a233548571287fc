//! Profiles: project .guard.toml trust, automatic selection, persistent
//! agent homes, copy-on-write caches.

mod common;

use common::{Env, modes};

#[test]
fn widening_project_profile_needs_trust_and_is_asked_again_after_an_edit() {
    for mode in modes() {
        let env = Env::new(mode);
        let outside = env.home.write("outside/data.txt", "outside-data\n");
        let toml = format!(
            "version = 1\n[filesystem]\nread = [\"{}\"]\n",
            outside.parent().unwrap().display()
        );
        env.project.write(".guard.toml", &toml);
        env.own();
        let cat = format!("cat {}", outside.display());

        let refused = env.sh(&cat);
        refused.expect_code(125);
        assert!(
            refused.stderr.contains("widens the sandbox")
                && refused.stderr.contains("outside the project"),
            "{}",
            refused.stderr
        );
        assert!(refused.stderr.contains("guard trust"), "{}", refused.stderr);

        let trusted = env.run(&["trust"]);
        trusted.expect_code(0);
        assert!(
            trusted.stdout.contains("filesystem.read"),
            "{}",
            trusted.stdout
        );
        env.sh(&cat).expect_code(0);
        assert!(env.sh(&cat).stdout.contains("outside-data"));

        // Any change asks again.
        std::fs::write(env.project.join(".guard.toml"), format!("{toml}# edited\n")).unwrap();
        env.own();
        env.sh(&cat).expect_code(125);
    }
}

#[test]
fn narrowing_project_profile_applies_without_trust() {
    for mode in modes() {
        let env = Env::new(mode);
        env.project.write("notes.txt", "private-notes\n");
        env.project.write(
            ".guard.toml",
            "version = 1\n[filesystem]\nhide = [\"{project}/notes.txt\"]\n",
        );
        env.own();
        let out = env.sh("cat notes.txt; echo x > notes.txt 2>&1; echo done");
        out.expect_code(0);
        assert!(!out.stdout.contains("private-notes"), "{}", out.stdout);
        assert!(out.all().contains("Read-only file system"), "{}", out.all());
        assert_eq!(
            std::fs::read_to_string(env.project.join("notes.txt")).unwrap(),
            "private-notes\n"
        );
    }
}

#[test]
fn persistent_home_keeps_agent_state_and_imports_only_named_paths() {
    for mode in modes() {
        let env = Env::new(mode);
        env.home.write(".agentrc", "token-from-real-home\n");
        env.home.write("unrelated-secret.txt", "real-home-secret\n");
        env.home.write(
            ".config/guard/profiles/myagent.toml",
            "version = 1\nextends = [\"default\"]\n[home]\npersist = true\nimport = [\"~/.agentrc\"]\n",
        );
        env.own();
        let first = env.run(&[
            "run",
            "-p",
            "myagent",
            "--",
            "sh",
            "-c",
            "ls -A ~; cat ~/.agentrc; echo refreshed > ~/.agentrc; echo s > ~/.state",
        ]);
        first.expect_code(0);
        assert!(
            first.stdout.contains("token-from-real-home"),
            "{}",
            first.stdout
        );
        assert!(
            !first.stdout.contains("unrelated-secret"),
            "{}",
            first.stdout
        );
        let second = env.run(&[
            "run",
            "-p",
            "myagent",
            "--",
            "sh",
            "-c",
            "cat ~/.agentrc ~/.state",
        ]);
        second.expect_code(0);
        assert_eq!(second.stdout, "refreshed\ns\n");
        // The real home is untouched.
        assert_eq!(
            std::fs::read_to_string(env.home.join(".agentrc")).unwrap(),
            "token-from-real-home\n"
        );
    }
}

/// A host cache `~/.cache/tool` holding one package source, and a user
/// profile `name` whose `[home]` table is `home`.
fn cache_fixture(env: &Env, name: &str, home: &str) {
    env.home
        .write(".cache/tool/pkg/src.rs", "fn original() {}\n");
    env.home.write(
        &format!(".config/guard/profiles/{name}.toml"),
        &format!("version = 1\nextends = [\"default\"]\n[home]\n{home}\n"),
    );
}

#[test]
fn caches_are_copy_on_write() {
    for mode in modes() {
        let env = Env::new(mode);
        cache_fixture(&env, "cachey", "cache = [\"~/.cache/tool\"]");
        env.own();
        let out = env.run(&[
            "run", "-p", "cachey", "--", "sh", "-c",
            "cat ~/.cache/tool/pkg/src.rs; echo 'fn planted() {}' > ~/.cache/tool/pkg/src.rs; mkdir -p ~/.cache/tool/new && echo n > ~/.cache/tool/new/f && echo wrote=ok",
        ]);
        out.expect_code(0);
        assert!(out.stdout.contains("fn original"), "{}", out.stdout);
        assert_eq!(out.field("wrote").as_deref(), Some("ok"));
        // The host cache is never modified.
        assert_eq!(
            std::fs::read_to_string(env.home.join(".cache/tool/pkg/src.rs")).unwrap(),
            "fn original() {}\n"
        );
        assert!(!env.home.join(".cache/tool/new").exists());
        // The sandbox sees its own changes next time.
        let again = env.run(&[
            "run",
            "-p",
            "cachey",
            "--",
            "cat",
            &format!("{}/.cache/tool/pkg/src.rs", env.home.path.display()),
        ]);
        again.expect_code(0);
        assert!(again.stdout.contains("planted"), "{}", again.stdout);
    }
}

#[test]
fn profile_is_chosen_by_command_name() {
    let env = Env::new(common::Mode::Invoker);
    env.home.write(
        ".config/guard/profiles/mytool.toml",
        "version = 1\nextends = [\"default\"]\n[env.set]\nPICKED = \"mytool\"\n",
    );
    env.project
        .write("mytool", "#!/bin/sh\necho picked=$PICKED\n");
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(env.project.join("mytool"))
            .unwrap()
            .permissions(),
        0o755,
    );
    std::fs::set_permissions(
        env.project.join("mytool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = env.run(&["run", "--", "./mytool"]);
    out.expect_code(0);
    assert_eq!(
        out.field("picked").as_deref(),
        Some("mytool"),
        "{}",
        out.all()
    );
    let shown = env.run(&["profile", "show", "mytool"]);
    shown.expect_code(0);
    assert!(
        shown.stdout.contains("PICKED = \"mytool\"") && shown.stdout.contains("mytool.toml"),
        "{}",
        shown.stdout
    );
}

#[test]
fn trust_decisions_are_audited() {
    let env = Env::new(common::Mode::Invoker);
    env.project.write(
        ".guard.toml",
        "version = 1\n[env]\npass = [\"SOME_NAME\"]\n",
    );
    let log = env.home.join("trust.jsonl");
    let refused = env.run(&["run", "--log", log.to_str().unwrap(), "--", "true"]);
    refused.expect_code(125);
    let text = std::fs::read_to_string(&log).unwrap();
    let ev: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let trust: Vec<&serde_json::Value> = ev.iter().filter(|e| e["kind"] == "trust").collect();
    assert_eq!(trust.len(), 1, "{text}");
    assert_eq!(trust[0]["decision"], "refused (widens; not trusted)");
    assert!(trust[0]["widens"].as_str().unwrap().contains("SOME_NAME"));
}

#[test]
fn node_profile_allows_the_registry_npm_is_configured_with_and_no_other() {
    let registry = common::npm_registry_host();
    for mode in modes() {
        let env = Env::new(mode);
        // A repository's .npmrc must not open egress without trust.
        env.project
            .write(".npmrc", "registry=https://exfil.example.test/\n");
        env.own();
        let e = env.run(&["explain", "-p", "node", "--", "true"]);
        e.expect_code(0);
        assert!(
            e.stdout
                .lines()
                .any(|l| l.contains(&format!("allow {registry} "))
                    && l.contains("npm's configured registry")),
            "{}",
            e.stdout
        );
        assert!(!e.stdout.contains("exfil.example.test"), "{}", e.stdout);
        // The user's own npmrc (a mirror) replaces the default.
        env.home
            .write(".npmrc", "registry=https://mirror.example.test/npm/\n");
        env.own();
        let e = env.run(&["explain", "-p", "node", "--", "true"]);
        assert!(
            e.stdout.contains("allow mirror.example.test"),
            "{}",
            e.stdout
        );
        assert!(
            !e.stdout.contains(&format!("allow {registry} ")),
            "{}",
            e.stdout
        );
        // Without the node profile: no registry.
        let d = env.run(&["explain", "--", "true"]);
        assert!(
            !d.stdout.contains("npm's configured registry"),
            "{}",
            d.stdout
        );
    }
}

#[test]
fn npm_reaches_its_registry_under_the_node_profile() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let ok = env.run(&[
            "run",
            "-q",
            "-p",
            "node",
            "--",
            "npm",
            "view",
            "is-number",
            "version",
            "--cache",
            "/tmp/npm-cache",
        ]);
        ok.expect_code(0);
        assert!(
            ok.stdout.trim().split('.').count() == 3,
            "a version number: {}",
            ok.all()
        );
    }
}

/// HOME reached through a link (`/home -> var/home` on Fedora Silverblue):
/// a persistent home and a copy-on-write cache both start, keep state, and
/// leave the host's cache as it was. Both once failed at their mount
/// (exit 125): guard's own directories were named by the linked path,
/// which does not lead anywhere inside the sandbox's setup.
#[test]
fn a_home_reached_through_a_link_works_with_persistent_homes_and_caches() {
    for mode in modes() {
        let env = Env::new(mode);
        cache_fixture(&env, "both", "persist = true\ncache = [\"~/.cache/tool\"]");
        env.own();
        let link = env.home.path.with_extension("link");
        std::os::unix::fs::symlink(&env.home.path, &link).expect("link to the home");
        let run = |script: &str| {
            let out = env
                .guard(&["run", "-p", "both", "--", "sh", "-c", script])
                .env("HOME", &link)
                .output()
                .expect("spawn guard");
            common::Outcome::from(out)
        };
        run("echo state > ~/kept; echo planted > ~/.cache/tool/pkg/src.rs; echo rc=$?")
            .expect_code(0)
            .expect_fields(&[("rc", "0")]);
        run("echo kept=$(cat ~/kept); echo cache=$(cat ~/.cache/tool/pkg/src.rs)")
            .expect_code(0)
            .expect_fields(&[("kept", "state"), ("cache", "planted")]);
        assert_eq!(
            std::fs::read_to_string(env.home.join(".cache/tool/pkg/src.rs")).unwrap(),
            "fn original() {}\n",
            "the host's cache is never written"
        );
        assert!(
            !env.home.join("kept").exists(),
            "the real home is not the sandbox's"
        );
        let _ = std::fs::remove_file(&link);
    }
}

/// A session that rewrites a package source in its copy-on-write cache
/// (any session can: the layer is writable) changes the builds of its own
/// project only: another project of the same profile sees the host's copy.
#[test]
fn a_cache_layer_belongs_to_one_project() {
    for mode in modes() {
        let env = Env::new(mode);
        cache_fixture(&env, "cachey", "cache = [\"~/.cache/tool\"]");
        let other = common::TempDir::new("proj-b", mode);
        env.own();
        other.own(mode);
        let planted = common::canary("PLANTED");
        env.run(&[
            "run",
            "-p",
            "cachey",
            "--",
            "sh",
            "-c",
            &format!(
                "echo 'fn payload() {{}} // {planted}' > ~/.cache/tool/pkg/src.rs; echo rc=$?"
            ),
        ])
        .expect_code(0)
        .expect_fields(&[("rc", "0")]);
        let show = [
            "run",
            "-p",
            "cachey",
            "--",
            "cat",
            "~/.cache/tool/pkg/src.rs",
        ];
        let show = show.map(|a| a.replace('~', &env.home.path.display().to_string()));
        let show: Vec<&str> = show.iter().map(String::as_str).collect();
        // Its own project keeps what it wrote ...
        let same = env.run(&show);
        same.expect_code(0);
        assert!(same.stdout.contains(&planted), "{}", same.all());
        // ... another project gets the host's cache as it is.
        let out = env
            .guard(&show)
            .current_dir(&other.path)
            .output()
            .expect("spawn guard");
        let elsewhere = common::Outcome::from(out);
        elsewhere.expect_code(0).assert_no_canary(&planted);
        assert!(
            elsewhere.stdout.contains("fn original"),
            "{}",
            elsewhere.all()
        );
    }
}

/// A project on a drive or share that is not mounted now is not gone: its
/// path is missing, but below an empty directory (the mount point), and
/// `guard prune` keeps its state and says why. Once the mount point is
/// removed (the project is gone for good), prune removes it.
#[test]
fn prune_keeps_the_state_of_a_project_on_a_drive_not_mounted() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let mnt = common::TempDir::new("mnt", mode);
        // As root, a real drive (a tmpfs) mounted there; as a user, who
        // cannot mount, what an unmounted one leaves alike: the project
        // missing below an empty directory.
        let mounted = common::is_root();
        if mounted {
            let st = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "mode=0777", "guard-test"])
                .arg(&mnt.path)
                .status()
                .expect("run mount");
            assert!(st.success(), "mount a tmpfs as root: {st}");
        }
        // Unmounted however the test ends (a no-op once it did).
        struct Umount(std::path::PathBuf, bool);
        impl Drop for Umount {
            fn drop(&mut self) {
                if self.1 {
                    let _ = std::process::Command::new("umount")
                        .arg("-l")
                        .arg(&self.0)
                        .stderr(std::process::Stdio::null())
                        .status();
                }
            }
        }
        let _umount = Umount(mnt.path.clone(), mounted);
        let proj = mnt.path.join("proj");
        std::fs::create_dir(&proj).unwrap();
        mnt.own(mode);
        let scan = common::Outcome::from(
            env.guard(&["scan", proj.to_str().unwrap()])
                .output()
                .expect("spawn guard scan"),
        );
        scan.expect_code(0);
        if mounted {
            let st = std::process::Command::new("umount")
                .arg(&mnt.path)
                .status()
                .expect("run umount");
            assert!(st.success(), "umount: {st}");
        } else {
            std::fs::remove_dir_all(&proj).unwrap();
        }
        let records = env.home.join(".local/state/guard/projects");
        let count = || std::fs::read_dir(&records).map(|d| d.count()).unwrap_or(0);
        let before = count();
        assert!(before > 0, "guard scan recorded no project");
        let out = env.run(&["prune"]);
        out.expect_code(0);
        assert!(
            out.stdout.contains(&format!(
                "kept {}: it is missing, and {} is an empty directory",
                proj.display(),
                mnt.path.display()
            )),
            "{}",
            out.all()
        );
        assert!(!out.stdout.contains("(gone)"), "{}", out.all());
        assert_eq!(count(), before, "{}", out.all());
        // Gone for good: the mount point removed too.
        std::fs::remove_dir(&mnt.path).unwrap();
        let out = env.run(&["prune"]);
        out.expect_code(0);
        assert!(
            out.stdout
                .contains(&format!("removed {} (gone)", proj.display())),
            "{}",
            out.all()
        );
        assert_eq!(count(), before - 1, "{}", out.all());
    }
}

/// `guard prune` removes what guard kept for a project that is gone (its
/// persistent home, its copy-on-write cache layer, its scan cache, its
/// lock file) and
/// nothing of a project that still exists; `--dry-run` only lists. What a
/// session left in its home cannot make prune reach further: a link to a
/// file and one to a directory of the real home are removed as links (their
/// targets stay), and directories the session made read-only or closed go
/// too. A project with a session running keeps its state.
#[test]
fn prune_removes_the_state_of_gone_projects_only() {
    for mode in modes() {
        let env = Env::new(mode);
        cache_fixture(&env, "both", "persist = true\ncache = [\"~/.cache/tool\"]");
        let precious = env.home.write("precious/keep.txt", "keep me\n");
        let gone = common::TempDir::new("proj-gone", mode);
        env.own();
        gone.own(mode);
        let plant = format!(
            "mkdir -p ~/ro/sub ~/closed && echo x > ~/ro/sub/f && chmod 555 ~/ro/sub ~/ro && chmod 0 ~/closed; \
             ln -s {p} ~/file-link; ln -s {d} ~/dir-link; \
             mkdir -p ~/.cache/tool/new && echo n > ~/.cache/tool/new/f && chmod 555 ~/.cache/tool/new; echo rc=$?",
            p = precious.display(),
            d = precious.parent().unwrap().display()
        );
        for project in [&env.project.path, &gone.path] {
            let p = project.to_str().unwrap();
            env.run(&[
                "run",
                "--project",
                p,
                "-p",
                "both",
                "--",
                "sh",
                "-c",
                &plant,
            ])
            .expect_code(0)
            .expect_fields(&[("rc", "0")]);
        }
        let kept_home = env.persistent_home("both");
        let gone_home = common::persistent_home(&env.home.path, "both", &gone.path);
        let layers = env.home.join(".local/share/guard/caches/both");
        let layer_of = |home: &std::path::Path| {
            let key = home.file_name().unwrap().to_str().unwrap();
            layers.join(key.split_once('@').unwrap().1)
        };
        let (kept_layer, gone_layer) = (layer_of(&kept_home), layer_of(&gone_home));
        let gone_scan = {
            let hash = gone_layer.to_str().unwrap().rsplit_once('-').unwrap().1;
            env.home.join(&format!(".cache/guard/scan-{hash}.bin"))
        };
        for p in [&kept_home, &gone_home, &kept_layer, &gone_layer, &gone_scan] {
            assert!(p.exists(), "{} was not made", p.display());
        }
        // An import a killed guard left half done.
        let dead = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id();
            c.wait().unwrap();
            pid
        };
        let half = env
            .home
            .join(&format!(".local/share/guard/homes/.importing-{dead}"));
        std::fs::create_dir_all(half.join("d")).unwrap();
        env.home.own(mode);
        let gone_path = gone.path.clone();
        drop(gone);
        assert!(!gone_path.exists());
        // One lock file per project its sessions took.
        let locks = env.home.join(".cache/guard/locks");
        let lock_files = || std::fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0);
        assert_eq!(lock_files(), 2);

        let dry = env.run(&["prune", "--dry-run"]);
        dry.expect_code(0);
        assert!(
            dry.stdout
                .contains(&format!("would remove {} (gone)", gone_path.display())),
            "{}",
            dry.all()
        );
        assert!(
            !dry.stdout.contains(&*env.project.path.to_string_lossy()),
            "{}",
            dry.all()
        );
        assert!(gone_home.exists() && gone_layer.exists() && gone_scan.exists() && half.exists());
        assert_eq!(lock_files(), 2);
        assert!(
            dry.stdout.contains("would remove an interrupted import"),
            "{}",
            dry.all()
        );

        let out = env.run(&["prune"]);
        out.expect_code(0);
        assert!(
            out.stdout
                .contains(&format!("removed {} (gone)", gone_path.display())),
            "{}",
            out.all()
        );
        for p in [&gone_home, &gone_layer, &gone_scan, &half] {
            assert!(!p.exists(), "{} was kept: {}", p.display(), out.all());
        }
        assert_eq!(lock_files(), 1, "the gone project's lock file was kept");
        for p in [&kept_home, &kept_layer] {
            assert!(
                p.join(".").exists(),
                "{} was removed: {}",
                p.display(),
                out.all()
            );
        }
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me\n");
        // Nothing left to do: a second prune removes nothing.
        let again = env.run(&["prune"]);
        again.expect_code(0);
        assert!(again.stdout.contains("0 project(s)"), "{}", again.all());

        // The existing project by name, while a session runs there: kept.
        let mut running = common::KillOnDrop(
            env.guard(&[
                "run",
                "-p",
                "both",
                "--",
                "sh",
                "-c",
                "touch .started; sleep 30",
            ])
            .spawn()
            .expect("spawn the running session"),
        );
        let started = env.project.join(".started");
        let t0 = std::time::Instant::now();
        while !started.exists() {
            assert!(t0.elapsed().as_secs() < 30, "the session did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let project = env.project.path.to_str().unwrap();
        let busy = env.run(&["prune", "--project", project]);
        busy.expect_code(1);
        assert!(
            busy.stderr.contains("has a session running"),
            "{}",
            busy.all()
        );
        assert!(kept_home.exists() && kept_layer.exists());
        let _ = running.0.kill();
        let _ = running.0.wait();
        drop(running);
        let named = env.run(&["prune", "--project", project]);
        named.expect_code(0);
        assert!(
            named.stdout.contains(&format!("removed {project}:")),
            "{}",
            named.all()
        );
        assert!(
            !kept_home.exists() && !kept_layer.exists(),
            "{}",
            named.all()
        );
        assert!(env.project.path.exists(), "prune never touches a project");
    }
}
