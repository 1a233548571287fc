//! The eleventh review: an attack review of what landed after review10
//! (private copies of home files, the scratch tmpfs, /etc scanned and
//! unreadable files of the user's hidden, direnv protection, the pip
//! registry lookup). Each test names the attack; where guard had a hole,
//! the test failed before the fix that came with it.

use crate::common::Mode;
use crate::secrets_layer::{SHOW, gh_token};
use crate::support::{Case, Expect, each_mode, errno::EROFS};
use std::os::unix::fs::PermissionsExt;

fn as_root(case: &Case) -> bool {
    case.mode() == Mode::Invoker && crate::common::is_root()
}

/// Hole: a directory of the user's that can be listed but not searched
/// (`chmod 600 vault`, or 400) was walked: its entries were listed, but
/// none could be statted or opened, so nothing in it was scanned and,
/// since the directory itself opened fine, it was not hidden as
/// unreadable either. Inside, where the sandbox runs as the user,
/// `chmod u+x` gave the search permission back and the secrets in it (and
/// in the directories below it) were read. Now a directory of the user's
/// that guard cannot search is hidden like one it cannot list. (Run as
/// root, guard searches it and judges its content.)
#[test]
fn a_directory_the_user_made_unsearchable_cannot_be_searched_inside() {
    each_mode(|mut case| {
        let flat = gh_token(&mut case, "listable");
        let deep = gh_token(&mut case, "listabledeep");
        case.write("vault/notes.txt", &format!("{flat}\n"));
        case.write("vault/inner/keys.txt", &format!("{deep}\n"));
        case.env.own();
        let dir = case.project().join("vault");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
        case.write_python(&format!(
            r#"{SHOW}
out("chmod", err(os.chmod, "vault", 0o700))
show("flat", "vault/notes.txt")
show("deep", "vault/inner/keys.txt")
"#
        ));
        let out = case.run(&["run", "-q", "--", "/usr/bin/python3", "attack.py"]);
        out.ran();
        out.expect_code(0);
        if as_root(&case) {
            // Read by guard and hidden by content: the stand-ins are empty.
            out.fields(&[("chmod", "0"), ("flat", "empty"), ("deep", "empty")]);
        } else {
            // Hidden whole, read-only: the files are not there at all.
            out.fields(&[("chmod", EROFS), ("flat", "errno-2"), ("deep", "errno-2")]);
        }
        // The user's choice stands: guard did not open the directory up.
        if !as_root(&case) {
            let mode = std::fs::symlink_metadata(&dir)
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the host directory's mode changed");
        }
        // The landlock level cannot refuse chmod (Landlock does not govern
        // it), but the files stay out of the command's reach.
        let out = case.run_python_at("landlock");
        out.expect_code(0);
        out.fields(&[("flat", "errno-13"), ("deep", "errno-13")]);
    });
}

/// Hole: to allow pip's default index, guard runs the `python3` found in
/// PATH on the host, outside any sandbox, at start. It skipped one in the
/// project (a virtualenv's `bin`, on PATH while it is activated) only if
/// the link resolved into the project: the sandbox wrote a script into its
/// persistent home (a host directory) and pointed the virtualenv's
/// `python3` at it, and the next start of guard ran that script on the
/// host. Now a PATH directory inside the project is never looked in.
#[test]
fn a_virtualenv_python_linked_out_of_the_project_does_not_run_on_the_host() {
    each_mode(|case| {
        let marker = crate::support::HostMarker::new("pip-lookup");
        case.env.home.write(
            ".config/guard/profiles/pyhome.toml",
            "version = 1\nextends = [\"python\"]\n[home]\npersist = true\n",
        );
        case.env.own();
        let persistent = case.env.persistent_home("pyhome");
        let planted = case.run(&[
            "run",
            "-p",
            "pyhome",
            "--",
            "sh",
            "-c",
            &format!(
                "printf '#!/bin/sh\\ntouch {m}\\n' > ~/evil && chmod +x ~/evil && \
                 mkdir -p .venv/bin && ln -s {p}/evil .venv/bin/python3 && echo planted=1",
                m = marker.path(),
                p = persistent.display()
            ),
        ]);
        planted.expect_code(0);
        assert!(planted.stdout.contains("planted=1"), "{}", planted.all());
        assert!(persistent.join("evil").is_file(), "{}", planted.all());

        // The user activates the virtualenv and starts guard again.
        let path = format!(
            "{}:{}",
            case.project().join(".venv/bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = case.guard(&["run", "-p", "pyhome", "--", "true"]);
        cmd.env("PATH", path)
            .env_remove("PIP_INDEX_URL")
            .env_remove("PIP_CONFIG_FILE");
        let next = case.output(cmd);
        next.expect_code(0);
        marker.assert_absent("a script the sandbox left, run by guard's pip index lookup,");
    });
}
