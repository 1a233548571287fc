//! Project protection: nothing written inside may run later outside. The
//! git directory cannot be moved or replaced, its config cannot gain
//! include.path / hooksPath / fsmonitor / sshCommand, git cannot be pointed
//! at another config, `.guard.toml` cannot be edited, and one created where
//! none existed is moved aside and never applied.

use crate::support::{Case, Expect, HostMarker, each_mode, errno::*, host_commit, host_git};
use std::path::Path;

fn git_repo(case: &Case) {
    let o = host_git(case.project(), &["init", "-q"]);
    assert!(o.status.success());
    let o = host_commit(case.project());
    assert!(o.status.success());
    case.env.own();
}

/// Every file under `.git` except objects/logs/config.worktree (path,
/// bytes).
fn git_meta(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    fn walk(base: &Path, d: &Path, v: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(d).expect("read .git").flatten() {
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            // config.worktree: guard itself leaves an empty one behind
            // (the placeholder it protects); not the sandbox's doing.
            if rel.starts_with("objects") || rel.starts_with("logs") || rel == "config.worktree" {
                continue;
            }
            if path.is_dir() {
                walk(base, &path, v);
            } else {
                v.push((rel, std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    walk(&p.join(".git"), &p.join(".git"), &mut v);
    v.sort();
    v
}

/// `mv .git .git.old; mkdir .git` stops at the first step (EBUSY: a mount
/// point), and `.git` cannot be replaced by a `gitdir:` file (rename over
/// it: EISDIR; rmdir: EBUSY). The host's .git is intact.
#[test]
fn git_dir_cannot_be_moved_or_replaced_by_a_gitdir_file() {
    each_mode(|case| {
        git_repo(&case);
        let before = git_meta(case.project());
        case.python(
            r#"
out("mv_git", err(os.rename, ".git", ".git.old"))
out("mkdir_git", err(os.mkdir, ".git"))
open("gitfile", "w").write("gitdir: /tmp/evil-gitdir\n")
out("rename_file_over_git", err(os.rename, "gitfile", ".git"))
out("rmdir_git", err(os.rmdir, ".git"))
out("create_git_file", err(os.open, ".git", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
os.mkdir("evil")
out("rename_dir_over_git", err(os.rename, "evil", ".git"))
out("exchange", sc(316, -100, b"gitfile", -100, b".git", 2)[1])  # renameat2 RENAME_EXCHANGE
"#,
        )
        .fields(&[
            ("mv_git", EBUSY),
            ("mkdir_git", "17"),            // EEXIST: the original is still there
            ("rename_file_over_git", "21"), // EISDIR
            ("rmdir_git", EBUSY),
            ("create_git_file", "21"),
            ("rename_dir_over_git", EBUSY),
            ("exchange", EBUSY),
        ]);
        let p = case.project();
        assert!(p.join(".git").is_dir(), ".git replaced on the host");
        assert!(!p.join(".git.old").exists());
        let after = git_meta(p);
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let changed: Vec<&String> = after
            .iter()
            .filter(|a| !before.contains(a))
            .map(|(n, _)| n)
            .collect();
        assert!(
            changed.is_empty() && names(&before) == names(&after),
            "the host's .git metadata changed: {changed:?}\nbefore: {:?}\nafter: {:?}",
            names(&before),
            names(&after)
        );
    });
}

/// git config writes that would run code outside later (include.path,
/// core.hooksPath, core.fsmonitor, core.sshCommand) all fail: .git/config
/// is read-only (EROFS, also for a rename over it: EBUSY). The host's
/// config has none of them.
#[test]
fn git_config_code_execution_keys_cannot_be_written() {
    each_mode(|case| {
        git_repo(&case);
        let before = std::fs::read(case.project().join(".git/config")).unwrap();
        case.python(
            r#"
import subprocess
for i, (k, v) in enumerate([("include.path", "/tmp/evil.inc"), ("core.hooksPath", "/tmp"),
        ("core.fsmonitor", "sh -c 'touch /tmp/pwned'"), ("core.sshCommand", "sh -c 'touch /tmp/pwned'")]):
    r = subprocess.run(["git", "config", k, v], capture_output=True, text=True)
    out("git_config%d" % i, "%d:%s" % (r.returncode, "ebusy" if "Device or resource busy" in r.stderr else r.stderr.strip()[:80]))
out("append", err(os.open, ".git/config", os.O_WRONLY | os.O_APPEND))
open(".git-config-new", "w").write("[core]\n\tfsmonitor = evil\n")
out("rename_over", err(os.rename, ".git-config-new", ".git/config"))
out("unlink", err(os.unlink, ".git/config"))
out("lock", err(os.open, ".git/config.lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
open(".git/config.lock", "w").write("[core]\n\tfsmonitor = evil\n")
out("rename_lock", err(os.rename, ".git/config.lock", ".git/config"))
os.unlink(".git/config.lock")
"#,
        )
        .fields(&[
            ("git_config0", "4:ebusy"),
            ("git_config1", "4:ebusy"),
            ("git_config2", "4:ebusy"),
            ("git_config3", "4:ebusy"),
            ("append", EROFS),
            ("rename_over", EXDEV),
            ("unlink", EBUSY),
            ("rename_lock", EBUSY),
        ]);
        let p = case.project();
        assert_eq!(std::fs::read(p.join(".git/config")).unwrap(), before);
        for k in [
            "include.path",
            "core.hooksPath",
            "core.fsmonitor",
            "core.sshCommand",
        ] {
            let o = host_git(p, &["config", "--get", k]);
            assert!(
                o.stdout.is_empty(),
                "{k} is set on the host: {}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
    });
}

/// `.git/commondir` redirects git to another directory's config: created
/// inside, it points the host's git at a config the sandbox wrote, so the
/// next `git status` on the host runs core.fsmonitor. It must fail inside
/// or be gone (moved aside) after the run.
#[test]
fn git_commondir_cannot_redirect_the_config() {
    each_mode(|case| {
        git_repo(&case);
        case.python(
            r#"
import shutil
os.makedirs("evil")
shutil.copytree(".git/objects", "evil/objects")
shutil.copytree(".git/refs", "evil/refs")
shutil.copy(".git/HEAD", "evil/HEAD")
open("evil/config", "w").write("[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfsmonitor = \"echo PWNED-BY-COMMONDIR >&2; false\"\n")
def plant():
    with open(".git/commondir", "w") as f:
        f.write("../evil\n")
out("commondir", err(plant))
"#,
        );
        let p = case.project();
        let o = host_git(p, &["config", "--get", "core.fsmonitor"]);
        let status = host_git(p, &["status", "--short"]);
        assert!(
            !p.join(".git/commondir").exists() && o.stdout.is_empty(),
            "ESCAPE: .git/commondir planted inside survives; host git now reads core.fsmonitor={:?}; `git status` stderr: {}",
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&status.stderr).trim()
        );
    });
}

/// An existing `.guard.toml` cannot be edited (EROFS), replaced (EBUSY) or
/// removed inside; the host copy is unchanged.
#[test]
fn guard_toml_cannot_be_edited_inside() {
    each_mode(|case| {
        let text = "version = 1\n";
        case.write(".guard.toml", text);
        case.python(
            r#"
out("append", err(os.open, ".guard.toml", os.O_WRONLY | os.O_APPEND))
out("truncate", err(os.truncate, ".guard.toml", 0))
open("new.toml", "w").write("version = 1\n[network]\nallow = [\"evil.example\"]\n")
out("rename_over", err(os.rename, "new.toml", ".guard.toml"))
out("rename_away", err(os.rename, ".guard.toml", "old.toml"))
out("unlink", err(os.unlink, ".guard.toml"))
out("chmod", err(os.chmod, ".guard.toml", 0o666))
"#,
        )
        .fields(&[
            ("append", EROFS),
            ("truncate", EROFS),
            ("rename_over", EBUSY),
            ("rename_away", EBUSY),
            ("unlink", EBUSY),
            ("chmod", EROFS),
        ]);
        assert_eq!(
            std::fs::read_to_string(case.project().join(".guard.toml")).unwrap(),
            text
        );
    });
}

/// A `.guard.toml` created inside a project that had none (widening the
/// network) is moved aside after the run, and the next run does not apply
/// it (no trust was given): the name it allows is still refused.
#[test]
fn guard_toml_created_inside_is_moved_aside_and_not_applied() {
    each_mode(|case| {
        case.write_python(
            r#"
open(".guard.toml", "w").write('version = 1\n[network]\nallow = ["evil.guard.test"]\n[network.hosts]\n"evil.guard.test" = "203.0.113.7"\n')
out("created", 1)
"#,
        );
        let first = case.run_python();
        first.fields(&[("created", "1")]);
        let p = case.project();
        assert!(
            !p.join(".guard.toml").exists(),
            ".guard.toml survived the run"
        );
        assert!(first.stderr.contains("moved it to"), "{}", first.stderr);
        let aside: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".guard.toml.") && n != ".guard.toml")
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        case.write_python(
            r#"
out("toml", err(os.stat, ".guard.toml"))
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(b"CONNECT evil.guard.test:443 HTTP/1.1\r\nHost: evil.guard.test:443\r\n\r\n")
out("connect", s.recv(100).split(b" ")[1].decode())
"#,
        );
        let second = case.run_python();
        second.fields(&[("toml", ENOENT), ("connect", "403")]);
        let explain = case.run(&["explain", "--", "true"]);
        assert!(
            !explain.stdout.contains("evil.guard.test"),
            "the quarantined profile was applied:\n{}",
            explain.stdout
        );
    });
}

/// Names under `dir` (recursively) that guard moved aside.
fn quarantined(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if rel.contains(".guard-quarantine-") {
                out.push(rel);
            } else if e.file_type().is_ok_and(|t| t.is_dir()) && !p.ends_with(".git/objects") {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Repositories made inside during the run have no protected paths of
/// their own; each of these would run a command on the host later:
/// - `emb`: `git init` + core.fsmonitor, added to the project's index as an
///   embedded repository (so even `git status` at the top runs it);
/// - `hooked`: a pre-commit hook in a new repository;
/// - `w`: a `.git` file naming a git directory whose `commondir` leads to
///   a config with core.fsmonitor;
/// - `bare.git`: a bare repository with a reference-transaction hook.
///
/// After the run the configs and hooks are moved aside and the host's git
/// runs none of them; a repository cloned inside (inert config, sample
/// hooks) is left as it is. At both isolation levels. (Hooks are made
/// executable before they are moved in: the live check may move a hooks
/// directory aside as soon as a hook is in it, before a `chmod` there.)
#[test]
fn repositories_made_inside_run_nothing_outside_later() {
    for isolation in ["full", "landlock"] {
        each_mode(|case| {
            git_repo(&case);
            let fsmon = HostMarker::new("fsmonitor");
            let hook = HostMarker::new("hook");
            let common = HostMarker::new("commondir");
            let bare = HostMarker::new("bare");
            let hidden = HostMarker::new("hidden");
            let script = format!(
                r#"set -e
g() {{ git -c user.name=a -c user.email=a@a "$@"; }}
git init -q emb
git -C emb config core.fsmonitor 'touch {fsmon}; false'
g -C emb commit -q --allow-empty -m x
g add emb 2>/dev/null
git init -q hooked
printf '#!/bin/sh\ntouch {hook}\n' > hook.tmp && chmod +x hook.tmp
mv hook.tmp hooked/.git/hooks/pre-commit
mkdir -p evil/objects evil/refs/heads store/g w
printf '[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tfsmonitor = "touch {common}; false"\n' > evil/config
echo 'ref: refs/heads/main' > store/g/HEAD
echo ../../evil > store/g/commondir
echo "gitdir: $PWD/store/g" > w/.git
git init -q --bare bare.git
printf '#!/bin/sh\ntouch {bare}\n' > hook.tmp && chmod +x hook.tmp
mv hook.tmp bare.git/hooks/reference-transaction
git init -q bare.git/objects/hide
git -C bare.git/objects/hide config core.fsmonitor 'touch {hidden}; false'
git clone -q emb cloned
echo planted=1
"#,
                fsmon = fsmon.path(),
                hook = hook.path(),
                common = common.path(),
                bare = bare.path(),
                hidden = hidden.path(),
            );
            let out = case.run(&["run", "--isolation", isolation, "--", "sh", "-c", &script]);
            assert!(
                out.stdout.contains("planted=1"),
                "the sandbox could not set the repositories up (not the check under test):\n{}",
                out.stderr
            );
            let p = case.project();
            // The host's git, as a user would run it afterwards.
            let _ = host_git(&p.join("emb"), &["status", "--short"]);
            let _ = host_git(p, &["status", "--short"]);
            let _ = host_commit(&p.join("hooked"));
            let _ = host_git(&p.join("w"), &["status", "--short"]);
            let _ = host_git(
                &p.join("bare.git"),
                &["fetch", "-q", "../emb", "+HEAD:refs/heads/x"],
            );
            let _ = host_git(&p.join("bare.git/objects/hide"), &["status", "--short"]);
            fsmon.assert_absent("core.fsmonitor of a repository made inside");
            hidden.assert_absent("core.fsmonitor of a repository in a bare one's objects");
            hook.assert_absent("a pre-commit hook of a repository made inside");
            common.assert_absent("core.fsmonitor reached through a .git file and commondir");
            bare.assert_absent("a hook of a bare repository made inside");
            let moved = quarantined(p);
            for expected in [
                "emb/.git/config",
                "bare.git/objects/hide/.git/config",
                "hooked/.git/hooks",
                "evil/config",
                "bare.git/hooks",
            ] {
                assert!(
                    moved
                        .iter()
                        .any(|m| m.starts_with(&format!("{expected}.guard-quarantine-"))),
                    "{expected} not moved aside: {moved:?}\n{}",
                    out.stderr
                );
                assert!(
                    out.stderr.contains(&format!("{expected} (")),
                    "{}",
                    out.stderr
                );
            }
            assert!(
                !moved.iter().any(|m| m.starts_with("cloned")),
                "an inert clone was touched: {moved:?}"
            );
            let url = host_git(&p.join("cloned"), &["config", "--get", "remote.origin.url"]);
            assert!(url.status.success(), "the clone lost its config");
        });
    }
}

/// What the user had before the run is theirs: a nested repository with
/// its own core.fsmonitor and hooks, protected during the run, is left as
/// it is after it, even when the sandbox tried to change it (at the
/// `landlock` level it can, and guard puts the files back).
#[test]
fn the_users_own_repository_hooks_and_config_are_left_alone() {
    for isolation in ["full", "landlock"] {
        each_mode(|case| {
            git_repo(&case);
            let lib = case.project().join("lib");
            std::fs::create_dir(&lib).unwrap();
            assert!(host_git(&lib, &["init", "-q"]).status.success());
            assert!(
                host_git(&lib, &["config", "core.fsmonitor", "false"])
                    .status
                    .success()
            );
            let hook = lib.join(".git/hooks/pre-commit");
            std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            case.env.own();
            let config = std::fs::read(lib.join(".git/config")).unwrap();
            let out = case.run(&[
                "run",
                "--isolation",
                isolation,
                "--",
                "sh",
                "-c",
                "git -C lib config core.fsmonitor 'touch /tmp/x' 2>/dev/null; echo '#!/bin/sh' > lib/.git/hooks/pre-commit 2>/dev/null; git -C lib status >/dev/null 2>&1; echo ran=1",
            ]);
            out.ran();
            assert_eq!(std::fs::read(lib.join(".git/config")).unwrap(), config);
            assert_eq!(
                std::fs::read_to_string(&hook).unwrap(),
                "#!/bin/sh\nexit 0\n"
            );
            let moved = quarantined(&lib);
            assert!(
                !out.stderr.contains("git config setting") && !out.stderr.contains("git hook"),
                "the user's own repository was taken for one the sandbox made: {moved:?}\n{}",
                out.stderr
            );
        });
    }
}

/// Hooks that live in the worktree: husky points core.hooksPath at
/// `.husky/_`, whose scripts run the user's `.husky/<hook>`; pre-commit's
/// hook in `.git/hooks` runs what `.pre-commit-config.yaml` lists. Inside,
/// all of them are read-only (`landlock` level: put back after the run),
/// and the host's next `git commit` runs nothing the sandbox wrote.
#[test]
fn hooks_in_the_worktree_cannot_be_changed() {
    for isolation in ["full", "landlock"] {
        each_mode(|case| {
            git_repo(&case);
            let p = case.project();
            let marker = HostMarker::new("husky");
            // husky 9's layout, as `husky` writes it.
            std::fs::create_dir_all(p.join(".husky/_")).unwrap();
            std::fs::write(
                p.join(".husky/_/h"),
                "#!/usr/bin/env sh\nn=$(basename \"$0\")\ns=$(dirname \"$(dirname \"$0\")\")/$n\n[ ! -f \"$s\" ] && exit 0\nsh -e \"$s\" \"$@\"\n",
            )
            .unwrap();
            std::fs::write(
                p.join(".husky/_/pre-commit"),
                "#!/usr/bin/env sh\n. \"$(dirname \"$0\")/h\"\n",
            )
            .unwrap();
            std::fs::write(p.join(".husky/pre-commit"), "true\n").unwrap();
            for f in [".husky/_/h", ".husky/_/pre-commit"] {
                std::fs::set_permissions(
                    p.join(f),
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .unwrap();
            }
            assert!(
                host_git(p, &["config", "core.hooksPath", ".husky/_"])
                    .status
                    .success()
            );
            // pre-commit's generated hook (the tool itself need not be here).
            std::fs::write(
                p.join(".git/hooks/pre-push"),
                "#!/usr/bin/env bash\n# File generated by pre-commit: https://pre-commit.com\nARGS=(hook-impl --config=.pre-commit-config.yaml --hook-type=pre-push)\n",
            )
            .unwrap();
            std::fs::write(p.join(".pre-commit-config.yaml"), "repos: []\n").unwrap();
            case.env.own();
            let before: Vec<Vec<u8>> =
                [".husky/pre-commit", ".husky/_/h", ".pre-commit-config.yaml"]
                    .iter()
                    .map(|f| std::fs::read(p.join(f)).unwrap())
                    .collect();
            let script = format!(
                r#"
t() {{ if "$@" 2>/tmp/err; then echo ok; else grep -o -m1 -E 'Read-only file system|Device or resource busy' /tmp/err || echo other; fi; }}
echo "user=$(t sh -c 'echo "touch {m}" >> .husky/pre-commit')"
echo "shim=$(t sh -c 'echo "touch {m}" >> .husky/_/h')"
echo "new=$(t sh -c 'echo "touch {m}" > .husky/_/post-commit')"
echo "swap=$(t sh -c 'mv .husky .husky-old && mkdir -p .husky/_')"
echo "precommit=$(t sh -c 'printf "repos:\n- repo: local\n  hooks:\n  - id: x\n    name: x\n    entry: touch {m}\n    language: system\n" > .pre-commit-config.yaml')"
echo ran=1
"#,
                m = marker.path()
            );
            let out = case.run(&["run", "--isolation", isolation, "--", "sh", "-c", &script]);
            out.ran();
            if isolation == "full" {
                out.fields(&[
                    ("user", "Read-only file system"),
                    ("shim", "Read-only file system"),
                    ("new", "Read-only file system"),
                    ("swap", "Device or resource busy"),
                    ("precommit", "Read-only file system"),
                ]);
            }
            let after: Vec<Vec<u8>> =
                [".husky/pre-commit", ".husky/_/h", ".pre-commit-config.yaml"]
                    .iter()
                    .map(|f| std::fs::read(p.join(f)).unwrap())
                    .collect();
            assert_eq!(
                after, before,
                "a hook script or hook config changed on the host"
            );
            let commit = host_commit(p);
            assert!(
                commit.status.success(),
                "{}",
                String::from_utf8_lossy(&commit.stderr)
            );
            marker.assert_absent("a husky hook written inside");
        });
    }
}

/// A repository made inside a directory the sandbox then makes unreadable
/// to its owner (`chmod 000`, or `0311`: git can still open files there by
/// name): guard cannot pass it by. Running as root it reads the directory
/// anyway; as its owner it makes it readable again, says so, and checks
/// it. Either way the config is moved aside.
#[test]
fn a_repository_in_an_unreadable_directory_is_not_passed_by() {
    each_mode(|case| {
        git_repo(&case);
        let out = case.sh(
            "git init -q locked/r && git -C locked/r config core.fsmonitor 'touch /tmp/x; false' && chmod 000 locked && \
             git init -q src && git -C src config core.fsmonitor 'touch /tmp/x; false' && chmod 0311 src && echo ran=1",
        );
        out.ran();
        let p = case.project();
        for dir in ["locked", "src"] {
            std::fs::set_permissions(
                p.join(dir),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        for (dir, repo) in [("locked", "r/.git"), ("src", ".git")] {
            assert!(
                quarantined(&p.join(dir))
                    .iter()
                    .any(|m| m.starts_with(&format!("{repo}/config.guard-quarantine-"))),
                "{dir}: {}",
                out.stderr
            );
        }
        if case.sandbox_uid() != 0 {
            assert!(out.stderr.contains("made it readable"), "{}", out.stderr);
        }
    });
}

/// A repository config that includes a file of the worktree (`include.path
/// = ../.gitconfig`, a way to share config through the repository): that
/// file is config too. An existing one cannot be changed inside; one that
/// does not exist yet is moved aside when the sandbox creates it. Either
/// way the host's git runs no core.fsmonitor the sandbox set.
#[test]
fn config_a_repository_includes_from_the_worktree_is_protected() {
    each_mode(|case| {
        git_repo(&case);
        let p = case.project();
        let marker = HostMarker::new("include");
        std::fs::write(p.join(".gitconfig-shared"), "[user]\n\tname = team\n").unwrap();
        for inc in ["../.gitconfig-shared", "../.gitconfig-missing"] {
            assert!(
                host_git(p, &["config", "--add", "include.path", inc])
                    .status
                    .success()
            );
        }
        case.env.own();
        let out = case.sh(&format!(
            "{{ printf '[core]\\n\\tfsmonitor = \"touch {m}; false\"\\n' >> .gitconfig-shared; }} 2>/tmp/err && echo shared=written || echo \"shared=$(grep -o -m1 'Read-only file system' /tmp/err || echo other)\"; \
             printf '[core]\\n\\tfsmonitor = \"touch {m}; false\"\\n' > .gitconfig-missing && echo missing=created; echo ran=1",
            m = marker.path()
        ));
        out.ran();
        out.fields(&[("shared", "Read-only file system"), ("missing", "created")]);
        let _ = host_git(p, &["status", "--short"]);
        marker.assert_absent("core.fsmonitor in a config file the repository includes");
        assert_eq!(
            std::fs::read_to_string(p.join(".gitconfig-shared")).unwrap(),
            "[user]\n\tname = team\n"
        );
        assert!(!p.join(".gitconfig-missing").exists(), "{}", out.stderr);
    });
}

/// `core.hooksPath = .`: hooks are files at the top of the worktree, where
/// the sandbox writes freely. Each hook's name there is protected: one the
/// sandbox creates is moved aside, and the host's next commit runs nothing.
#[test]
fn hooks_at_the_top_of_the_worktree_cannot_be_planted() {
    each_mode(|case| {
        git_repo(&case);
        let p = case.project();
        let marker = HostMarker::new("tophook");
        assert!(
            host_git(p, &["config", "core.hooksPath", "."])
                .status
                .success()
        );
        case.env.own();
        let out = case.sh(&format!(
            "printf '#!/bin/sh\\ntouch {m}\\n' > pre-commit && chmod +x pre-commit && echo planted=1; echo ran=1",
            m = marker.path()
        ));
        out.ran();
        out.fields(&[("planted", "1")]);
        let commit = host_commit(p);
        assert!(commit.status.success());
        marker.assert_absent("a pre-commit hook planted at the top of the worktree");
        assert!(out.stderr.contains("moved it to"), "{}", out.stderr);
    });
}

/// A rebase left in progress inside, with `exec` lines still to run: the
/// user's `git rebase --continue` on the host would run them. The todo
/// list is moved aside after the run.
#[test]
fn a_rebase_left_in_progress_cannot_run_commands_outside_later() {
    each_mode(|case| {
        git_repo(&case);
        let p = case.project();
        assert!(host_commit(p).status.success());
        case.env.own();
        let marker = HostMarker::new("rebase");
        let out = case.sh(&format!(
            "GIT_SEQUENCE_EDITOR=\"sed -i '1i break'\" git -c user.name=a -c user.email=a@a rebase -q -i --exec 'touch {m}' HEAD~1 >/dev/null 2>&1; \
             grep -c '^exec' .git/rebase-merge/git-rebase-todo | sed 's/^/pending=/'; echo ran=1",
            m = marker.path()
        ));
        out.ran();
        out.fields(&[("pending", "1")]);
        let _ = host_git(
            p,
            &[
                "-c",
                "user.name=u",
                "-c",
                "user.email=u@u",
                "rebase",
                "--continue",
            ],
        );
        marker.assert_absent("an exec line of a rebase left in progress");
        assert!(
            out.stderr
                .contains("a rebase todo list that runs `exec touch"),
            "{}",
            out.stderr
        );
    });
}

/// What git reads, guard must read the same way (each of these ran a
/// planted core.fsmonitor on the host before):
/// - `commondir` naming `../evil ` (git keeps the trailing space);
/// - a directory git takes for a repository with `objects` and `refs` as
///   executable files (git checks access, not type);
/// - a repository inside `.git/objects`, reached through a link;
/// - a `.git` file naming a directory with a trailing space;
/// - a `.git` link to a `gitdir:` file;
/// - `core.worktree` pointing outside the project (`git reset --hard`
///   there would write host files).
#[test]
fn git_directories_are_read_as_git_reads_them() {
    each_mode(|case| {
        git_repo(&case);
        let p = case.project();
        let m: Vec<HostMarker> = (0..5)
            .map(|i| HostMarker::new(&format!("gitread{i}")))
            .collect();
        let cfg = |i: usize| {
            format!(
                "[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tfsmonitor = \"touch {}; false\"\\n",
                m[i].path()
            )
        };
        let script = format!(
            r#"set -e
mkdir -p a/.git/refs a/.git/objects "a/evil /objects" "a/evil /refs"
echo 'ref: refs/heads/master' > a/.git/HEAD
printf '../evil \n' > a/.git/commondir
printf '{c0}' > "a/evil /config"
mkdir b && cd b && echo 'ref: refs/heads/master' > HEAD && touch objects refs && chmod +x objects refs
printf '{c1}' > config && cd ..
mkdir -p .git/objects/zz/objects .git/objects/zz/refs
echo 'ref: refs/heads/master' > .git/objects/zz/HEAD
printf '{c2}' > .git/objects/zz/config
ln -s .git/objects/zz c
git init -q hold
E="hold/.git/objects/e "
mkdir -p "$E/objects" "$E/refs" d
echo 'ref: refs/heads/master' > "$E/HEAD"
printf '{c3}' > "$E/config"
printf 'gitdir: ../hold/.git/objects/e \n' > d/.git
mkdir -p e f/objects f/refs
echo 'ref: refs/heads/master' > f/HEAD
printf '{c4}' > f/config
echo 'gitdir: ../f' > gf
ln -s ../gf e/.git
mkdir -p w && git init -q w/repo && git -C w/repo config core.worktree {outside}
echo planted=1
"#,
            c0 = cfg(0),
            c1 = cfg(1),
            c2 = cfg(2),
            c3 = cfg(3),
            c4 = cfg(4),
            outside = case.home().display(),
        );
        let out = case.sh(&script);
        assert!(
            out.stdout.contains("planted=1"),
            "setup failed inside:\n{}",
            out.stderr
        );
        for dir in ["a", "b", "c", "d", "e"] {
            let _ = host_git(&p.join(dir), &["status", "--short"]);
        }
        for (i, what) in [
            "a commondir with a trailing space",
            "objects and refs as files",
            "a repository in .git/objects behind a link",
            "a .git file naming a directory with a trailing space",
            "a .git link to a gitdir file",
        ]
        .iter()
        .enumerate()
        {
            m[i].assert_absent(what);
        }
        assert!(
            out.stderr.contains("core.worktree outside the project"),
            "{}",
            out.stderr
        );
        assert!(!p.join("w/repo/.git/config").exists());
    });
}

/// The check after the run acts only on git directories the sandbox could
/// have written: a `.git` link it plants to a hidden directory (`.kube`,
/// which it never saw) does not make guard move the user's file there.
#[test]
fn a_git_link_to_a_hidden_directory_moves_nothing_there() {
    each_mode(|case| {
        git_repo(&case);
        let p = case.project();
        case.write(".kube/config", "apiVersion: v1\nkind: Config\nusers: []\n");
        std::fs::write(p.join(".kube/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::create_dir_all(p.join(".kube/objects")).unwrap();
        std::fs::create_dir_all(p.join(".kube/refs")).unwrap();
        case.env.own();
        let out = case.sh("mkdir x && ln -s ../.kube x/.git && echo ran=1");
        out.ran();
        assert!(p.join(".kube/config").exists(), "{}", out.stderr);
        assert!(!out.stderr.contains("moved it to"), "{}", out.stderr);
    });
}
