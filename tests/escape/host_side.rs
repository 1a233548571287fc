//! guard's own host-side file operations. Before and after a run, guard
//! (outside the sandbox, with the user's full rights) touches paths inside
//! the project: it creates placeholders for protected paths inside `.git`
//! and moves protected paths the sandbox created aside. The sandbox can
//! write the project, so it can plant a symlink at an ancestor of those
//! paths; guard must not follow it out of the project.
//!
//! These cases touch the project-protection layer (in main already): they
//! are here because following such a link is an escape from the project.

use crate::support::{Expect, each_mode};
use std::path::{Path, PathBuf};

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The sandbox replaces the absent `.git` and `.vscode` with symlinks to
/// directories of the real home (which it cannot even see). After the run,
/// guard's quarantine of "created protected paths" must not rename the
/// user's ~/.kube/config or editor settings through those links.
#[test]
fn quarantine_does_not_follow_planted_symlinks() {
    each_mode(|mut case| {
        let kube = case.home().join(".kube");
        let code = case.home().join(".config/Code/User");
        let token = format!("token: {}\n", case.add_canary("kube"));
        let kube_config = case.env.home.write(".kube/config", &token);
        let settings = case
            .env
            .home
            .write(".config/Code/User/settings.json", "{}\n");
        case.env.own();
        let before = (listing(&kube), listing(&code));
        let out = case.sh(&format!(
            "ln -s {} .git && ln -s {} .vscode && echo ran=1",
            kube.display(),
            code.display()
        ));
        out.ran();
        let after = (listing(&kube), listing(&code));
        assert_eq!(
            after, before,
            "guard changed the host home through a symlink the sandbox planted\n--- guard said\n{}",
            out.stderr
        );
        assert!(kube_config.exists() && settings.exists());
    });
}

/// A previous run left `.git` as a symlink to a host directory. Before the
/// next run, guard's placeholders for protected `.git` paths (hooks, info,
/// config, config.worktree) must not be created there; and the command must
/// not read that directory's files through the link.
#[test]
fn placeholders_do_not_follow_planted_symlink() {
    each_mode(|mut case| {
        let kube = case.home().join(".kube");
        let canary = case.add_canary("kube");
        let kube_config: PathBuf = case
            .env
            .home
            .write(".kube/config", &format!("token: {canary}\n"));
        case.write("README.md", "x\n");
        std::os::unix::fs::symlink(&kube, case.project().join(".git")).expect("plant .git symlink");
        let before = listing(&kube);
        // guard may run the command or refuse to; either way the host
        // directory must be untouched and its secret unread.
        let out = case.sh("cat .git/config; ls -la .git/; echo ran=1");
        assert_eq!(
            listing(&kube),
            before,
            "guard created entries in a host directory through the project's .git symlink\n--- guard said\n{}",
            out.stderr
        );
        assert_eq!(
            std::fs::read_to_string(&kube_config).unwrap(),
            format!("token: {canary}\n")
        );
    });
}
