//! The sixteenth review: files the host replaces under the view during the
//! run are covered again by the setup process, and the check after the run
//! keeps what the user had in a protected git config their git rewrote.
//! Each test names the attack; each failed before the fix that came with it.

use crate::common::{NOBODY, Outcome};
use crate::support::{Case, HostMarker, each_mode, expect_one_covered_again, host_git};
use std::path::Path;

/// The sandbox waits for the host's change (see `Env::with_host_change`),
/// then up to 10 s for `file` (a shell word) to read empty, and shows it.
fn read_after_host_change(case: &Case, file: &str, host: impl FnOnce()) -> Outcome {
    let out = case.env.with_host_change(
        &format!(
            "echo 1 > .started; i=0; until [ -e .host-done ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done; \
             f={file}; i=0; while [ -s \"$f\" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
             echo size=$(wc -c < \"$f\"); cat \"$f\""
        ),
        host,
    );
    case.assert_no_leak(&out);
    out
}

/// Covered by guard (an event in the log, the summary), not gone by chance.
fn assert_covered_again(case: &Case, out: &Outcome, file: impl AsRef<Path>) {
    out.expect_code(0);
    out.expect_fields(&[("size", "0")]);
    expect_one_covered_again(out);
    case.env.expect_logged("covered", file);
}

/// Hole: guard told a replaced file from the one it covered by device and
/// inode number. A file removed on the host and another created in its
/// place (`rm .env && cp .env.example .env`, a tool that deletes and
/// writes) mostly gets the freed inode number back: the kernel had
/// detached the cover with the old entry, guard took the new file for the
/// old one, and the sandbox read the new secrets, with no warning at all.
/// Now the inode's birth time is part of what tells files apart.
#[test]
fn a_secret_file_removed_and_created_anew_on_the_host_is_covered_again() {
    each_mode(|mut case| {
        let (old, new) = (case.add_canary("old"), case.add_canary("new"));
        case.write(".env", &format!("API_TOKEN={old}\n"));
        let out = read_after_host_change(&case, ".env", || {
            std::fs::remove_file(case.project().join(".env")).unwrap();
            case.env
                .write_on_host(".env", &format!("API_TOKEN={new}\n"));
        });
        assert_covered_again(&case, &out, ".env");
        assert_eq!(
            std::fs::read_to_string(case.project().join(".env")).unwrap(),
            format!("API_TOKEN={new}\n")
        );
    });
}

/// Hole: only the directory of each covered file was watched. When the
/// host makes that directory anew (`rm -rf config && mkdir config`, a tool
/// regenerating its directory), the kernel detaches the mounts on the old
/// one, the sandbox sees the new directory through the one above, and the
/// secret file written in it as it is: nothing watched it, and guard said
/// nothing. Now every directory on the way that the host can replace is
/// watched too, and watched again once replaced.
#[test]
fn a_secret_file_whose_directory_the_host_makes_anew_is_covered_again() {
    each_mode(|mut case| {
        let (old, new) = (case.add_canary("old"), case.add_canary("new"));
        case.write("config/app/.env", &format!("API_TOKEN={old}\n"));
        let out = read_after_host_change(&case, "config/app/.env", || {
            let dir = case.project().join("config/app");
            std::fs::remove_dir_all(&dir).unwrap();
            std::fs::create_dir(&dir).unwrap();
            if case.mode() == crate::common::Mode::Unprivileged {
                std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
            }
            case.env
                .write_on_host("config/app/.env", &format!("API_TOKEN={new}\n"));
        });
        assert_covered_again(&case, &out, "config/app/.env");
    });
}

/// Hole: the check after the run passed over the lines of a protected git
/// config the user already had, whatever else the new file said. A sandbox
/// that holds the new file open (it opened `.git/config.lock` while the
/// user's git wrote it; the cover that comes after the rename cannot take
/// a descriptor back) kept the user's `core.hooksPath = .husky/_` and added
/// `core.worktree = ../sub`, an inert key: git then runs hooks from
/// `sub/.husky/_`, which the sandbox wrote, at the user's next commit. Now
/// the user's lines are theirs only while `core.worktree` and `core.bare`
/// (where a relative path in them leads) are as the user had them. (Since
/// review 25, the descriptor held past the cover also ends the session.)
#[test]
fn the_users_hooks_path_cannot_be_moved_onto_the_sandboxs_hooks() {
    each_mode(|case| {
        let p = case.project().to_path_buf();
        host_git(&p, &["init", "-q"]);
        host_git(&p, &["config", "core.hooksPath", ".husky/_"]);
        let marker = HostMarker::new("review16-hook");
        case.write(
            "attack.py",
            &format!(
                r##"import os, time
def wait(p, t=20):
    end = time.time() + t
    while not os.path.exists(p) and time.time() < end:
        time.sleep(0.005)
    return os.path.exists(p)
print("ran=1")
open(".started", "w").write("1")
if not wait(".git/config.lock"):
    print("lock=never")
    raise SystemExit
fd = os.open(".git/config.lock", os.O_RDWR)
# Before the user's git renames it: once it is `.git/config` and covered,
# a descriptor the sandbox holds on it ends the session (review 25).
time.sleep(0.2)
text = os.pread(fd, 1 << 16, 0).replace(b"[core]\n", b"[core]\n\tworktree = ../sub\n", 1)
os.ftruncate(fd, 0)
os.pwrite(fd, text, 0)
print("held=%d" % text.count(b"worktree = ../sub"), flush=True)
os.makedirs("sub/.husky/_", exist_ok=True)
with open("sub/.husky/_/pre-commit", "w") as f:
    f.write("#!/bin/sh\ntouch {marker}\n")
os.chmod("sub/.husky/_/pre-commit", 0o755)
open(".opened", "w").write("1")
wait(".host-done")
time.sleep(3)
print("alive=1", flush=True)
"##,
                marker = marker.path()
            ),
        );
        let config = p.join(".git/config");
        let out = case.env.with_host_change("python3 attack.py", || {
            // As the user's `git config user.name someone` writes it.
            let text = std::fs::read_to_string(&config).unwrap();
            case.env.write_on_host(
                ".git/config.lock",
                &format!("{text}[user]\n\tname = someone\n"),
            );
            let opened = p.join(".opened");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !opened.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::fs::rename(p.join(".git/config.lock"), &config).unwrap();
        });
        case.assert_no_leak(&out);
        // The sandbox wrote the new config before the rename (what is left
        // of the moment before the cover), and held it open past the
        // cover, which ends the session (review 25).
        out.expect_fields(&[("ran", "1"), ("held", "1")]);
        assert!(out.field("alive").is_none(), "{}", out.all());
        assert!(
            out.stderr.contains("guard: ended the session:")
                && out.stderr.contains("holds it open"),
            "{}",
            out.all()
        );
        let said = format!("{} (a git config setting core.hookspath)", config.display());
        assert!(out.stderr.contains(&said), "{}", out.all());
        assert!(!Path::new(&config).exists(), "{}", out.all());
        let commit = crate::support::host_commit(&p);
        assert!(commit.status.success(), "{commit:?}");
        marker.assert_absent("a hook the sandbox wrote in sub/.husky/_");
    });
}

/// Hole: the supervisor's request to cover a file again carried its path
/// as serde writes a path by default, which fails on one that is not
/// UTF-8 (a name an earlier session chose); the failure read as "the
/// sandbox has ended": a hidden `.env.\xff` the host replaced stayed
/// readable, with no warning. Now the path travels as the plan's do, any
/// bytes.
#[test]
fn a_secret_file_whose_name_is_not_utf8_is_covered_again() {
    use std::os::unix::ffi::OsStrExt;
    each_mode(|mut case| {
        let (old, new) = (case.add_canary("old"), case.add_canary("new"));
        let name = std::ffi::OsStr::from_bytes(b".env.\xff");
        case.env.write_on_host(name, &format!("API_TOKEN={old}\n"));
        let out = read_after_host_change(&case, "$(echo .env.*)", || {
            case.env
                .write_on_host("new.tmp", &format!("API_TOKEN={new}\n"));
            std::fs::rename(case.project().join("new.tmp"), case.project().join(name)).unwrap();
        });
        assert_covered_again(&case, &out, name);
    });
}

/// Hole: the directories on the way to a hidden file are mount points in
/// the view, which the sandbox cannot rename; but one the host makes anew
/// (`rm -rf config/app && mkdir config/app`) is a plain directory there.
/// A sandbox that then swapped it for a link (`mv config/app config/kept
/// && ln -s ../decoy config/app`, both in the project it writes) made the
/// host's next write of the secret file land in `decoy/`: a new file that
/// no cover was on and no watch saw (the watch does not follow links),
/// read as it was, with no warning. Now guard, seeing a directory on the
/// way to a secret file turned into a link, ends the session (the host's
/// next write of the file would go where no cover can follow), says why,
/// and logs it. Covering again also resolves the path without following
/// any link on the way, and ends the session when a secret file it could
/// not cover is still there.
#[test]
fn a_secret_files_directory_swapped_for_a_link_ends_the_session() {
    each_mode(|mut case| {
        let (old, new) = (case.add_canary("old"), case.add_canary("new"));
        case.write("config/app/.env", &format!("API_TOKEN={old}\n"));
        case.write("decoy/README", "not a secret\n");
        let app = case.project().join("config/app");
        let mut linked = false;
        let out = case.env.with_host_change(
            "echo 1 > .started; \
             i=0; until [ -e config/app/.fresh ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done; \
             mv config/app config/kept && ln -s ../decoy config/app; \
             i=0; until [ -e .host-done ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done; \
             sleep 0.5; echo read=$(cat decoy/.env)",
            || {
                std::fs::remove_dir_all(&app).unwrap();
                std::fs::create_dir(&app).unwrap();
                if case.mode() == crate::common::Mode::Unprivileged {
                    std::os::unix::fs::chown(&app, Some(NOBODY), Some(NOBODY)).unwrap();
                }
                case.env.write_on_host("config/app/.fresh", "");
                // Until the sandbox has made the link (or 10 s).
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while !std::fs::symlink_metadata(&app).is_ok_and(|m| m.is_symlink())
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                linked = std::fs::symlink_metadata(&app).is_ok_and(|m| m.is_symlink());
                // The user saves the file later, when guard has long seen
                // the link.
                std::thread::sleep(std::time::Duration::from_secs(1));
                case.env
                    .write_on_host("config/app/.env", &format!("API_TOKEN={new}\n"));
            },
        );
        case.assert_no_leak(&out);
        // The link was made; the host's write went where it led.
        assert!(linked, "the sandbox never made the link\n{}", out.all());
        let landed = std::fs::read_to_string(case.project().join("decoy/.env"))
            .unwrap_or_else(|e| panic!("decoy/.env: {e}\n{}", out.all()));
        assert!(landed.contains(&new), "{landed}");
        // The session ended for it, before the sandbox read it.
        assert!(out.field("read").is_none(), "{}", out.all());
        assert_ne!(out.code, 0, "{}", out.all());
        assert!(
            out.stderr.contains("guard: ended the session:")
                && out.stderr.contains(&format!(
                    "{} on the way to it was replaced by a link",
                    app.display()
                )),
            "{}",
            out.all()
        );
        case.env.expect_logged("ended", "config/app/.env");
    });
}
