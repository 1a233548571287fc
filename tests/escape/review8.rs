//! Review 8: profiles and trust, the environment, persistent homes and
//! caches (see each test's comment for the hole it once was).

use crate::support::each_mode;

/// A trusted `.guard.toml` that `extends` a file inside the project: the
/// pin once covered only `.guard.toml`'s own text, so the sandbox (the
/// project is writable, the extended file unprotected) rewrote the extended
/// file to grant the real home, and the next run applied it as trusted.
/// Now the pin covers what the extended files say: the next run refuses.
#[test]
fn a_trusted_project_profile_is_asked_again_when_a_file_it_extends_changes() {
    each_mode(|mut case| {
        // An ordinary file in the real home (not a secret the scan hides).
        let canary = case.add_canary("notes");
        let notes = case.env.home.write("notes.txt", &format!("{canary}\n"));
        case.env.own();
        case.write(
            ".guard.toml",
            "version = 1\nextends = [\"./ci/guard.toml\"]\n[env]\npass = [\"SOME_NAME\"]\n",
        );
        case.write("ci/guard.toml", "version = 1\n");
        let trusted = case.run(&["trust"]);
        trusted.expect_code(0);
        case.sh("true").expect_code(0);

        // Inside the sandbox: widen through the extended file.
        let home = case.home().display().to_string();
        let planted = case.sh(&format!(
            "printf 'version = 1\\n[filesystem]\\nread = [\"{home}\"]\\n' > ci/guard.toml && echo planted=1"
        ));
        planted.expect_code(0);
        assert!(planted.stdout.contains("planted=1"), "{}", planted.all());

        let next = case.sh(&format!("cat {}", notes.display()));
        next.expect_code(125);
        assert!(
            next.stderr.contains("widens the sandbox") && next.stderr.contains("is not trusted"),
            "{}",
            next.all()
        );
        assert!(
            next.stderr
                .contains(&format!("filesystem.read += {home:?}")),
            "{}",
            next.all()
        );
    });
}

/// A link the sandbox leaves in its persistent home, followed on the host
/// when the next run builds its view: the mount points under the home
/// (a cache, a file grant) were created through it with the host's root
/// still reachable at /oldroot, so `~/.cache -> /oldroot$HOME/landing`
/// made the next run create `~/landing/tool` in the real home (any
/// directory or empty file the user, or root, may create). Now a mount
/// point that leads out of the new root stops the run.
#[test]
fn a_link_in_the_persistent_home_cannot_make_setup_create_host_files() {
    each_mode(|case| {
        let home = case.home().to_path_buf();
        case.env.home.write("landing/keep", "");
        case.env.home.write(
            ".config/guard/profiles/linky.toml",
            "version = 1\nextends = [\"default\"]\n[home]\npersist = true\ncache = [\"~/.cache/tool\"]\n",
        );
        case.env.own();
        // First run: the host has no ~/.cache/tool yet (no cache mount);
        // the sandbox plants the link in its persistent home.
        let planted = case.run(&[
            "run",
            "-p",
            "linky",
            "--",
            "sh",
            "-c",
            &format!(
                "ln -s /oldroot{}/landing ~/.cache && echo planted=1",
                home.display()
            ),
        ]);
        planted.expect_code(0);
        assert!(planted.stdout.contains("planted=1"), "{}", planted.all());

        // Later the host tool creates its cache; the next run mounts it.
        case.env.home.write(".cache/tool/pkg", "");
        case.env.own();
        let next = case.run(&["run", "-p", "linky", "--", "true"]);
        assert!(
            !home.join("landing/tool").exists(),
            "setup created a directory in the real home through the link:\n{}",
            next.all()
        );
        next.expect_code(125);
        assert!(
            next.stderr.contains("leads out of the sandbox's root"),
            "{}",
            next.all()
        );
    });
}

/// An untrusted `.guard.toml` granting paths that only look inside the
/// project: the trust check compared them lexically, so `{project}/link/..`
/// (with `link -> ~/private/x`, a link the repository ships) and
/// `{project}/link/sub` (a link as a middle component) counted as inside
/// and applied without `guard trust`, while the kernel resolved them to
/// the real home: the command read and wrote `~/private`. Now both are
/// widenings and the run is refused.
#[test]
fn an_untrusted_project_profile_cannot_grant_through_a_middle_link_or_dotdot() {
    each_mode(|mut case| {
        let canary = case.add_canary("private");
        case.env
            .home
            .write("private/notes.txt", &format!("{canary}\n"));
        case.env.home.write("private/x/keep", "");
        case.env.home.write("private/sub/keep", "");
        let private = case.home().join("private");
        std::os::unix::fs::symlink(private.join("x"), case.project().join("up")).unwrap();
        std::os::unix::fs::symlink(&private, case.project().join("link")).unwrap();
        case.write(
            ".guard.toml",
            "version = 1\n[filesystem]\nread = [\"{project}/up/..\"]\nwrite = [\"{project}/link/sub\"]\n",
        );
        case.env.own();
        let out = case.sh(&format!(
            "cat {}/notes.txt; echo planted > link/sub/planted; echo done=1",
            private.display()
        ));
        out.expect_code(125);
        assert!(
            out.stderr.contains("widens the sandbox")
                && out
                    .stderr
                    .contains("filesystem.read += \"{project}/up/..\" (outside the project)")
                && out
                    .stderr
                    .contains("filesystem.write += \"{project}/link/sub\" (outside the project)"),
            "{}",
            out.all()
        );
        assert!(
            !private.join("sub/planted").exists(),
            "~/private/sub written"
        );
    });
}
