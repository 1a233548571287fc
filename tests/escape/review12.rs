//! The twelfth review: guard in unusual configurations (a project that
//! holds guard's own state, odd environments given to guard itself). Each
//! test names the attack; where guard had a hole, the test failed before
//! the fix that came with it.

use crate::support::{
    Case, Expect, HostMarker, PY_PRELUDE, each_mode,
    errno::{EBUSY, EROFS},
    host_direnv, host_git,
};
use std::os::unix::fs::PermissionsExt;

/// The attack on guard's own directories `dirs` (name, path): list each,
/// create the user profile that would widen the next session in the
/// first, and rename each away to put one of its own there.
fn plant_in_own_dirs(dirs: &[(&str, &str)], home_file: &str) -> String {
    let mut code = String::new();
    for (name, dir) in dirs {
        code.push_str(&format!(
            r#"
d = "{dir}"
out("{name}_entries", len(os.listdir(d)) if os.path.isdir(d) else "absent")
out("{name}_mkdir", err(os.makedirs, d + "/profiles"))
out("{name}_rename", err(os.rename, d, d + ".old"))
"#
        ));
    }
    // Were the user profile written, the next session of every project
    // would grant this file of the real home.
    code.push_str(&format!(
        r#"
try:
    os.makedirs("{0}/profiles", exist_ok=True)
    open("{0}/profiles/default.toml", "w").write('version = 1\n[filesystem]\nwrite = ["{home_file}"]\n')
    out("planted", 1)
except OSError as e:
    out("planted", e.errno)
"#,
        dirs[0].1
    ));
    code
}

/// The session after the attack, in an ordinary project: the home file a
/// planted profile would have granted is not there.
fn next_session_sees_no_home_file(case: &Case) {
    let next = case.sh(&format!(
        "cat {} 2>/dev/null && echo read=1 || echo read=0",
        case.home_secret.display()
    ));
    next.expect_code(0);
    next.fields(&[("read", "0")]);
}

/// Hole: guard hid only its scan cache from a project that held it. A
/// project holding guard's configuration (user profiles, trust pins), its
/// data (agents' persistent homes, cache layers) or its session logs —
/// XDG_CONFIG_HOME and friends pointing into a dotfiles checkout — let the
/// sandbox write there: a `profiles/default.toml` it planted granted the
/// real home to every later session of every project. Now each of guard's
/// directories a grant covers is created first and hidden (an empty
/// read-only directory that cannot be renamed).
#[test]
fn the_sandbox_cannot_write_guards_own_state_in_a_project_that_holds_it() {
    each_mode(|mut case| {
        let project = case.project().to_path_buf();
        for (var, sub) in [
            ("XDG_CONFIG_HOME", "dotfiles/config"),
            ("XDG_DATA_HOME", "dotfiles/share"),
            ("XDG_STATE_HOME", "dotfiles/state"),
            ("XDG_CACHE_HOME", "dotfiles/cache"),
        ] {
            case.set_env(var, &project.join(sub).display().to_string());
        }
        let home_file = case.home_secret.display().to_string();
        case.write_python(&plant_in_own_dirs(
            &[
                ("config", "dotfiles/config/guard"),
                ("data", "dotfiles/share/guard"),
                ("state", "dotfiles/state/guard"),
                ("cache", "dotfiles/cache/guard"),
            ],
            &home_file,
        ));
        let out = case.run(&["run", "-q", "--", "/usr/bin/python3", "attack.py"]);
        out.ran();
        out.expect_code(0);
        for name in ["config", "data", "state", "cache"] {
            out.fields(&[
                (&format!("{name}_entries") as &str, "0"),
                (&format!("{name}_mkdir"), EROFS),
                (&format!("{name}_rename"), EBUSY),
            ]);
        }
        out.fields(&[("planted", EROFS)]);
        assert!(
            !project
                .join("dotfiles/config/guard/profiles/default.toml")
                .exists(),
            "a user profile was planted"
        );
        // guard's own state is still there on the host, and still used.
        assert!(
            std::fs::read_dir(project.join("dotfiles/state/guard/sessions"))
                .expect("session logs")
                .count()
                > 0,
            "no session log"
        );
        next_session_sees_no_home_file(&case);
    });
}

/// The same with nothing configured: `~/.config` kept in git (a common way
/// to version dotfiles), guard started in `~/.config/nvim`. The project is
/// the repository, `~/.config`, which holds `~/.config/guard` (absent until
/// the user writes a profile): the sandbox created it with a user profile
/// that granted the real home to every later session.
#[test]
fn a_dotfiles_repository_in_dot_config_cannot_plant_a_user_profile() {
    each_mode(|case| {
        let config = case.home().join(".config");
        std::fs::create_dir_all(config.join("nvim")).expect("mkdir");
        let init = host_git(&config, &["init", "-q"]);
        assert!(init.status.success(), "git init");
        let home_file = case.home_secret.display().to_string();
        let own = config.join("guard").display().to_string();
        // The snippet lies in the project, as the agent would write it.
        let attack = config.join("attack.py");
        std::fs::write(
            &attack,
            format!(
                "{PY_PRELUDE}\n{}",
                plant_in_own_dirs(&[("config", &own)], &home_file)
            ),
        )
        .expect("write attack.py");
        case.env.own();
        let mut cmd = case.guard(&[
            "run",
            "-q",
            "--",
            "/usr/bin/python3",
            &attack.display().to_string(),
        ]);
        cmd.current_dir(config.join("nvim"));
        let out = case.output(cmd);
        out.ran();
        out.expect_code(0);
        out.fields(&[
            ("config_entries", "0"),
            ("config_mkdir", EROFS),
            ("config_rename", EBUSY),
            ("planted", EROFS),
        ]);
        assert!(
            !config.join("guard/profiles/default.toml").exists(),
            "a user profile was planted in ~/.config/guard"
        );
        next_session_sees_no_home_file(&case);
    });
}

/// A project inside one of guard's own directories (a repository of the
/// user's profiles at `~/.config/guard`, an agent's persistent home opened
/// as a project) or a grant there would be writable whole: refused, with
/// what, where and how to fix it.
#[test]
fn a_project_or_grant_inside_guards_own_state_is_refused() {
    each_mode(|case| {
        let own = case.home().join(".config/guard");
        std::fs::create_dir_all(own.join("profiles")).expect("mkdir");
        let homes = case.env.persistent_home("claude");
        std::fs::create_dir_all(&homes).expect("mkdir");
        case.env.own();
        let project = case.run(&["run", "--project", &own.display().to_string(), "--", "true"]);
        project.expect_code(125);
        assert!(
            project.stderr.contains(&format!(
                "project {} is in guard's own configuration (user profiles, trust pins) directory {}: \
                 the sandbox could widen every later session with a profile of its own",
                own.display(),
                own.display()
            )) && project.stderr.contains("set XDG_CONFIG_HOME to a directory outside the project"),
            "{}",
            project.all()
        );
        let grant = case.run(&["run", "--rw", &homes.display().to_string(), "--", "true"]);
        grant.expect_code(125);
        assert!(
            grant.stderr.contains(&format!(
                "--rw {} is in guard's own data (agents' persistent homes, cache layers) directory",
                homes.display()
            )),
            "{}",
            grant.all()
        );
        // Nothing ran: no session was started in either.
        for out in [&project, &grant] {
            assert!(!out.stderr.contains("session summary"), "{}", out.all());
        }
    });
}

/// Hole: a project that is a directory of a larger repository (`--project
/// frontend` in a monorepo) had only its own repositories' hooks
/// protected. The repository around it runs the hooks its config names
/// from its worktree, and husky set up for a package below the root puts
/// them in the package (`core.hooksPath = frontend/.husky/_`): the sandbox
/// rewrote `frontend/.husky/_/pre-commit`, and the user's next commit ran
/// it on the host. With `core.hooksPath = frontend` (the project itself)
/// each hook's name at the project's top was unprotected too. Now hooks an
/// enclosing repository names inside the project are protected like the
/// project's own.
#[test]
fn hooks_of_a_repository_around_the_project_stay_read_only() {
    each_mode(|case| {
        let root = case.project().to_path_buf();
        let frontend = root.join("frontend");
        let hook = "#!/bin/sh\nexit 0\n";
        case.write("frontend/.husky/_/pre-commit", hook);
        case.write("frontend/index.js", "console.log(1)\n");
        std::fs::set_permissions(
            frontend.join(".husky/_/pre-commit"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod hook");
        assert!(
            host_git(&root, &["init", "-q"]).status.success(),
            "git init"
        );
        for (hooks_path, tag) in [("frontend/.husky/_", "husky"), ("frontend", "top")] {
            assert!(
                host_git(&root, &["config", "core.hooksPath", hooks_path])
                    .status
                    .success()
            );
            let marker = HostMarker::new(tag);
            let payload = format!("#!/bin/sh\\ntouch {}\\n", marker.path());
            std::fs::write(
                frontend.join("attack.py"),
                format!(
                    r#"{PY_PRELUDE}
def plant(path):
    with open(path, "w") as f:
        f.write("{payload}")
    os.chmod(path, 0o755)
if "{tag}" == "husky":
    out("husky", err(plant, ".husky/_/pre-commit"))
    out("husky_rename", err(os.rename, ".husky", ".husky.old"))
else:
    out("top", err(plant, "pre-commit"))
"#
                ),
            )
            .expect("write attack.py");
            case.env.own();
            let mut cmd = case.guard(&[
                "run",
                "-q",
                "--project",
                &frontend.display().to_string(),
                "--",
                "/usr/bin/python3",
                "attack.py",
            ]);
            cmd.current_dir(&frontend);
            let out = case.output(cmd);
            out.ran();
            out.expect_code(0);
            if tag == "husky" {
                out.fields(&[("husky", EROFS), ("husky_rename", EBUSY)]);
            } else {
                // Absent until now: created, then moved aside.
                out.fields(&[("top", "0")]);
                assert!(
                    out.stderr.contains(&format!(
                        "the sandbox created {} (a protected path",
                        frontend.join("pre-commit").display()
                    )),
                    "{}",
                    out.all()
                );
            }
            // The user commits in the repository, outside guard.
            let commit = crate::support::host_commit(&root);
            assert!(
                commit.status.success(),
                "{}",
                String::from_utf8_lossy(&commit.stderr)
            );
            marker.assert_absent("a hook the sandbox planted in a repository around the project");
        }
    });
}

/// Hole: guard protected what an allowed `.envrc` loads only for `.envrc`
/// files in the project. With `--project frontend` in a monorepo, the
/// root's allowed `.envrc` (`source_env_if_exists frontend/.envrc.local`,
/// `source frontend/tools/env.sh`) loads files inside the project: the
/// sandbox wrote them, and the user's next `cd` into the repository (or
/// the package) ran its code on the host. Now an allowed `.envrc` above
/// the project counts too.
#[test]
fn files_an_allowed_envrc_above_the_project_loads_cannot_be_planted() {
    for level in ["full", "landlock"] {
        each_mode(|case| {
            let root = case.project().to_path_buf();
            let frontend = root.join("frontend");
            case.write(
                ".envrc",
                "source_env_if_exists frontend/.envrc.local\nsource frontend/tools/env.sh\n",
            );
            case.write("frontend/tools/env.sh", "export FROM_ENV_SH=1\n");
            let direnv = |args: &[&str]| host_direnv(&case, &root, args);
            let allow = direnv(&["allow", "."]);
            assert!(allow.status.success(), "direnv allow: {allow:?}");
            case.env.own();
            let local = HostMarker::new("above-envrc-local");
            let env_sh = HostMarker::new("above-env-sh");
            std::fs::write(
                frontend.join("attack.py"),
                format!(
                    r#"{PY_PRELUDE}
def write(name, text, mode="w"):
    def f():
        with open(name, mode) as fh:
            fh.write(text)
    return err(f)
out("local", write(".envrc.local", "touch {}\n"))
out("env_sh", write("tools/env.sh", "touch {}\n", "a"))
"#,
                    local.path(),
                    env_sh.path()
                ),
            )
            .expect("write attack.py");
            case.env.own();
            let mut cmd = case.guard(&[
                "run",
                "--isolation",
                level,
                "--project",
                &frontend.display().to_string(),
                "--",
                "/usr/bin/python3",
                "attack.py",
            ]);
            cmd.current_dir(&frontend);
            let out = case.output(cmd);
            out.ran();
            out.expect_code(0);
            if level == "full" {
                out.fields(&[("local", "0"), ("env_sh", EROFS)]);
            } else {
                // Writable during the run, put back after it.
                out.fields(&[("local", "0"), ("env_sh", "0")]);
                assert!(
                    out.stderr.contains(&format!(
                        "changed protected path {}",
                        frontend.join("tools/env.sh").display()
                    )),
                    "{}",
                    out.all()
                );
            }
            assert!(
                out.stderr.contains(&format!(
                    "{} (a protected path",
                    frontend.join(".envrc.local").display()
                )),
                "{}",
                out.all()
            );
            // The user's next `cd` into the repository, on the host.
            let load = direnv(&["exec", ".", "sh", "-c", "echo E=$FROM_ENV_SH"]);
            assert!(
                String::from_utf8_lossy(&load.stdout).contains("E=1"),
                "the .envrc did not load: {load:?}"
            );
            local.assert_absent("a .envrc.local above-the-project .envrc loads");
            env_sh.assert_absent("a script above-the-project .envrc sources");
        });
    }
}

/// HOME=/ (a container started as a user without a home): the sandbox's
/// private home was mounted over its whole view, and the run failed half
/// way with "failed to make read-only /sys" (after scanning all of /usr
/// and /opt as the user's home). Now it is refused up front, saying why
/// and what to set.
#[test]
fn home_at_the_root_is_refused_up_front() {
    each_mode(|mut case| {
        // guard's own files go to the test home, not to /.
        let own = case.home().join("xdg");
        for (var, sub) in [
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_STATE_HOME", "state"),
            ("XDG_CACHE_HOME", "cache"),
        ] {
            case.set_env(var, &own.join(sub).display().to_string());
        }
        let mut cmd = case.guard(&["run", "--", "sh", "-c", "echo ran=1"]);
        cmd.env("HOME", "/");
        let out = case.output(cmd);
        out.expect_code(125);
        assert!(
            out.stderr.contains(
                "guard: your home directory is / (HOME, or the password database when HOME is unset)"
            ) && out.stderr.contains("hint: set HOME to a directory of your own"),
            "{}",
            out.all()
        );
        assert!(!out.stdout.contains("ran=1"), "{}", out.all());
    });
}

/// Hole: a dotfiles repository set up the GNU stow way (`~/.bashrc ->
/// ~/dotfiles/bash/bashrc`, `~/.config -> ~/dotfiles/config`) opened as
/// the project: the sandbox appended to the real shell startup file
/// through the project, and created an autostart entry, a user service,
/// the `.zshrc` a dangling link named (all run on the host at the next
/// shell or login) and an entry in direnv's allow list (a `.envrc` it
/// planted would run at the next `cd` without a question). Now those of the home's startup files that lie in the
/// project are protected: read-only, and moved aside where created.
#[test]
fn home_startup_files_kept_in_the_project_stay_read_only() {
    each_mode(|case| {
        let home = case.home().to_path_buf();
        let project = case.project().to_path_buf();
        case.write("bash/bashrc", "# my bashrc\n");
        case.write("config/nvim/init.lua", "-- editor\n");
        case.write("config/README.md", "my dotfiles\n");
        case.write("tmux/tmux.conf", "set -g mouse on\n");
        case.write("local/share/fonts/.keep", "");
        assert!(host_git(&project, &["init", "-q"]).status.success());
        for (link, target) in [
            (".bashrc", "bash/bashrc"),
            (".config", "config"),
            (".zshrc", "zsh/zshrc"),
            (".local", "local"),
            // Any other dotfile linked into the project (review 33).
            (".tmux.conf", "tmux/tmux.conf"),
        ] {
            std::os::unix::fs::symlink(project.join(target), home.join(link)).expect("link");
        }
        case.env.own();
        let marker = HostMarker::new("rc");
        let m = marker.path();
        case.write_python(&format!(
            r#"
def write(name, text, mode="w"):
    def f():
        os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
        with open(name, mode) as fh:
            fh.write(text)
    return err(f)
out("bashrc", write("bash/bashrc", "touch {m}\n", "a"))
out("bashrc_rename", err(os.rename, "bash", "bash.old"))
out("zshrc", write("zsh/zshrc", "touch {m}\n"))
out("autostart", write("config/autostart/x.desktop", "[Desktop Entry]\nExec=touch {m}\n"))
out("unit", write("config/systemd/user/x.service", "[Service]\nExecStart=touch {m}\n"))
out("allow", write("local/share/direnv/allow/0123", "/somewhere/.envrc\n"))
out("editor", write("config/nvim/init.lua", "-- edited\n", "a"))
out("tmux", write("tmux/tmux.conf", "run-shell 'touch {m}'\n", "a"))
out("readme", write("config/README.md", "edited\n", "a"))
"#
        ));
        let out = case.run(&["run", "-q", "--", "/usr/bin/python3", "attack.py"]);
        out.ran();
        out.expect_code(0);
        out.fields(&[
            ("bashrc", EROFS),
            ("bashrc_rename", EBUSY),
            ("zshrc", "0"),
            ("autostart", "0"),
            ("unit", "0"),
            ("allow", "0"),
            // An editor's and a terminal multiplexer's startup files too
            // (review 33: a list named the shells' only).
            ("editor", EROFS),
            ("tmux", EROFS),
            // The rest of the dotfiles is the project's, writable.
            ("readme", "0"),
        ]);
        for created in [
            "zsh/zshrc",
            "config/autostart",
            "config/systemd/user",
            "local/share/direnv/allow",
        ] {
            assert!(
                out.stderr.contains(&format!(
                    "the sandbox created {} (a protected path",
                    project.join(created).display()
                )),
                "{created}:\n{}",
                out.all()
            );
        }
        let rc = std::fs::read_to_string(home.join(".bashrc")).expect("read ~/.bashrc");
        assert_eq!(rc, "# my bashrc\n", "the real ~/.bashrc changed");
        assert!(!home.join(".zshrc").exists(), "~/.zshrc was created");
        assert!(
            !home.join(".config/autostart").exists() && !home.join(".config/systemd/user").exists(),
            "an autostart entry or a user service was created"
        );
    });
}

/// Hole: run through sudo, guard knew only HOME (root's, as sudo sets it,
/// or the user's, kept): `sudo guard run` started in the user's own home
/// made that whole home the project, writable, with its shell startup
/// files, because it was not "the" home. Now the home of the user sudo
/// names (SUDO_UID) counts as well: a project holding it is refused, and
/// its startup files that lie in the project are protected. (Here the
/// user sudo names is root, whose home is /root: refused before anything
/// there is read.)
#[test]
fn a_project_holding_the_home_of_the_user_who_ran_sudo_is_refused() {
    each_mode(|mut case| {
        case.set_env("SUDO_UID", "0");
        case.set_env("SUDO_USER", "root");
        let out = case.run(&["run", "--project", "/root", "--", "sh", "-c", "echo ran=1"]);
        out.expect_code(125);
        assert!(
            out.stderr.contains(
                "guard: the project /root contains your home directory /root, which would expose every secret in it"
            ) && out.stderr.contains("hint: "),
            "{}",
            out.all()
        );
        assert!(!out.stdout.contains("ran=1"), "{}", out.all());
    });
}
