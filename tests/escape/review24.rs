//! Review 24: `guard prune` and the removal of guard's per-project state,
//! the refusal of this machine's own addresses and subnets, and the
//! terminal's modes put back after a session. Each test that found a hole
//! names it.

use crate::support::{Case, each_mode};
use std::path::PathBuf;

/// Removes what a test's sandbox made too deep for the harness's own
/// clean-up (`remove_dir_all` recurses, on a test thread's 2 MiB stack),
/// with coreutils' `rm`, which walks any depth: dropped before the
/// [`Case`], also when the test fails and guard left the tree.
struct RmDeep(Vec<PathBuf>);

impl Drop for RmDeep {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::process::Command::new("rm").arg("-rf").arg(p).status();
        }
    }
}

/// A profile with a persistent home (`~/.local/share/guard/homes/…`),
/// which the sandbox writes and `guard prune` removes later.
fn persistent_profile(case: &Case) {
    case.env.home.write(
        ".config/guard/profiles/keeper.toml",
        "version = 1\nextends = [\"default\"]\n[home]\npersist = true\n",
    );
    case.env.own();
}

/// How deep the sandbox's tree goes: well past what a recursion per level
/// took on guard's 8 MiB main stack.
const DEPTH: usize = 15_000;

/// Python that makes a chain of `DEPTH` directories below `base` (one
/// `mkdir` + `chdir` at a time: the whole path is far over PATH_MAX) and
/// leaves the deepest read-only and the one above it closed (mode 000), as
/// Go's module cache and overlayfs's work directory are.
fn deep_tree(base: &str) -> String {
    format!(
        "import os\nos.chdir({base})\nfor i in range({DEPTH}):\n    os.mkdir('d')\n    os.chdir('d')\n\
         open('f', 'w').write('x')\nos.chdir('..')\nos.chmod('d', 0o555)\nos.chdir('..')\nos.chmod('d', 0)\n\
         print('made=%d' % {DEPTH})\n"
    )
}

/// Hole: a session can make a directory tree tens of thousands of levels
/// deep in its persistent home (it may write there). `guard prune` (and
/// `--dry-run`) walked it with a recursion per level and overflowed its
/// stack: guard crashed (SIGSEGV after "has overflowed its stack") and
/// the project's state stayed. Now the walk is a loop: the home is sized,
/// then removed, closed and read-only directories included.
#[test]
fn a_tree_deeper_than_the_stack_in_the_agent_home_is_pruned() {
    each_mode(|case| {
        persistent_profile(&case);
        let _rm = RmDeep(vec![case.home().join(".local/share/guard/homes")]);
        let out = case.run(&[
            "run",
            "-q",
            "-p",
            "keeper",
            "--",
            "python3",
            "-c",
            &deep_tree("os.path.expanduser('~')"),
        ]);
        out.expect_code(0)
            .expect_fields(&[("made", &DEPTH.to_string())]);
        let home = case.env.persistent_home("keeper");
        assert!(home.join("d/d").is_dir(), "no tree in {}", home.display());
        let project = case.project().to_str().unwrap();
        let dry = case.run(&["prune", "--dry-run", "--project", project]);
        dry.expect_code(0);
        assert!(
            dry.stdout.contains(&format!("would remove {project}")),
            "{}",
            dry.all()
        );
        assert!(home.join("d").is_dir(), "a dry run removed it");
        let out = case.run(&["prune", "--project", project]);
        out.expect_code(0);
        assert!(
            out.stdout.contains(&format!("removed {project}")),
            "{}",
            out.all()
        );
        assert!(!out.stderr.contains("overflow"), "{}", out.all());
        assert!(
            std::fs::symlink_metadata(&home).is_err(),
            "{} was kept: {}",
            home.display(),
            out.all()
        );
    });
}

/// Hole: the same tree in a `landlock`-level session's private TMPDIR
/// (guard's per-session directory, removed when the session ends) made
/// guard overflow its stack at the end of the session: guard died of
/// SIGSEGV instead of exiting with the command's status, and the session
/// directory stayed. Now it is removed and the status is the command's.
#[test]
fn a_tree_deeper_than_the_stack_in_a_landlock_session_is_removed_at_its_end() {
    each_mode(|case| {
        let _rm = RmDeep(vec![case.home().join(".cache/guard/sessions")]);
        let out = case.run(&[
            "run",
            "-q",
            "--isolation",
            "landlock",
            "--",
            "/usr/bin/python3",
            "-c",
            &format!(
                "{}print('tmp=' + os.environ['TMPDIR'])\n",
                deep_tree("os.environ['TMPDIR']")
            ),
        ]);
        out.expect_code(0)
            .expect_fields(&[("made", &DEPTH.to_string())]);
        assert!(!out.stderr.contains("overflow"), "{}", out.all());
        let tmp = out.field("tmp").expect("the session's TMPDIR");
        assert!(
            std::fs::symlink_metadata(&tmp).is_err(),
            "{tmp} was kept: {}",
            out.all()
        );
    });
}
