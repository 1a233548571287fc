//! Review 30: a broad escape sweep, as an independent suite would run one.
//! Each test names the attack; each failed before the fix that came with
//! it.

use crate::support::{Expect, each_mode, host_commit, host_git};

/// Hole: git writes its state files (`COMMIT_EDITMSG`, `SQUASH_MSG`,
/// `FETCH_HEAD`, the reflogs it appends to) with a plain `open`, which
/// follows a link standing at the name. Links planted there inside had the
/// user's next `git commit` on the host write a file outside the project
/// (`~/.bashrc`, with a commit message of the sandbox's choosing: code run
/// at the next shell). They are moved aside after the run.
#[test]
fn links_planted_in_a_git_directory_are_moved_aside() {
    each_mode(|case| {
        let p = case.project();
        assert!(host_git(p, &["init", "-q"]).status.success());
        assert!(host_commit(p).status.success());
        case.env.own();
        let target = std::env::temp_dir().join(format!(
            "guard-review30-rc-{}-{}",
            std::process::id(),
            case.mode() as u8
        ));
        std::fs::write(&target, "original\n").expect("write the target");
        let out = case.sh(&format!(
            "set -e; t={t}
ln -sf \"$t\" .git/COMMIT_EDITMSG
ln -sf \"$t\" .git/logs/HEAD
ln -sf \"$t\" .git/SQUASH_MSG
ln -sf \"$t\" .git/FETCH_HEAD
echo planted=$(find .git -type l | wc -l); echo ran=1",
            t = target.display()
        ));
        out.ran();
        out.fields(&[("planted", "4")]);
        // The user's git, after the session.
        assert!(host_commit(p).status.success());
        let after = std::fs::read_to_string(&target).expect("read the target");
        let _ = std::fs::remove_file(&target);
        assert_eq!(
            after, "original\n",
            "ESCAPE: the host's git wrote through a link planted in .git"
        );
        for name in ["COMMIT_EDITMSG", "logs/HEAD", "SQUASH_MSG", "FETCH_HEAD"] {
            let at = p.join(".git").join(name);
            assert!(
                !std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()),
                "{} is still a link",
                at.display()
            );
        }
        assert!(
            out.stderr.matches("a link in a git directory to").count() == 4,
            "{}",
            out.all()
        );
    });
}

/// Hole: protected paths given as globs (`*.code-workspace`,
/// `.devcontainer/*/devcontainer.json`, whose `initializeCommand` runs on
/// the host) were protected where they matched at the start only: a new
/// match the sandbox created stayed, and the next session even mounted it
/// read-only as the user's own. New matches are moved aside after the
/// run; the user's stay.
#[test]
fn new_matches_of_protected_globs_are_moved_aside() {
    each_mode(|case| {
        case.write("app.code-workspace", "{\"folders\":[{\"path\":\".\"}]}\n");
        case.write(
            ".devcontainer/main/devcontainer.json",
            "{\"image\":\"debian\"}\n",
        );
        case.env.own();
        let out = case.sh("mkdir -p .devcontainer/alt
echo '{\"initializeCommand\":\"touch /tmp/pwned\"}' > .devcontainer/alt/devcontainer.json
echo '{\"folders\":[{\"path\":\".\"}],\"settings\":{}}' > evil.code-workspace
echo made=$(ls .devcontainer/alt/devcontainer.json evil.code-workspace | wc -l); echo ran=1");
        out.ran();
        out.fields(&[("made", "2")]);
        let p = case.project();
        for planted in ["evil.code-workspace", ".devcontainer/alt/devcontainer.json"] {
            assert!(
                !p.join(planted).exists(),
                "ESCAPE: {planted}, made inside, is still there"
            );
        }
        for users in ["app.code-workspace", ".devcontainer/main/devcontainer.json"] {
            assert!(p.join(users).is_file(), "the user's {users} was moved");
        }
        assert_eq!(
            out.stderr
                .matches("a protected path made during the run")
                .count(),
            2,
            "{}",
            out.all()
        );
    });
}
