//! The fourteenth review: what landed with worktrees inside the project
//! and the live watch for new repositories. Each test names the attack;
//! where guard had a hole, the test failed before the fix that came with
//! it.

use crate::support::{each_mode, host_git};

/// Hole: `.git/worktrees` stopped being read-only whole (so agents can
/// `git worktree add` inside the project), which left the git directories
/// of the user's OTHER worktrees, checked out outside the project, to the
/// sandbox: their HEAD, index and logs. It cannot see those checkouts, so
/// its `git worktree prune` deletes what it can there; a HEAD it rewrites
/// has git in that checkout say "not a git repository" (or put the user's
/// next commit on another branch), and the staged work in the index is
/// lost. Now the git directory of a worktree whose checkout lies outside
/// the project is read-only whole; those inside stay the sandbox's.
#[test]
fn the_users_worktrees_outside_the_project_keep_their_git_directories() {
    each_mode(|case| {
        let p = case.project().to_path_buf();
        let elsewhere = case.home().join("wt-other");
        host_git(&p, &["init", "-q", "-b", "main"]);
        crate::support::host_commit(&p);
        let add = host_git(
            &p,
            &[
                "worktree",
                "add",
                "-q",
                &elsewhere.display().to_string(),
                "-b",
                "other",
            ],
        );
        assert!(add.status.success(), "{add:?}");
        host_git(&p, &["worktree", "add", "-q", "inside", "-b", "inside"]);
        std::fs::write(elsewhere.join("staged.txt"), "work in progress\n").unwrap();
        host_git(&elsewhere, &["add", "staged.txt"]);
        case.env.own();
        let out = case.sh(
            "git worktree prune 2>/tmp/prune; echo \"prune=$(grep -o -m1 'Read-only file system' /tmp/prune || echo other)\"; \
             { echo 'ref: refs/heads/main' > .git/worktrees/wt-other/HEAD; } 2>/tmp/err && echo head=written || \
               echo \"head=$(grep -o -m1 'Read-only file system' /tmp/err || echo other)\"; \
             rm -f .git/worktrees/wt-other/index 2>/tmp/err && echo index=removed || \
               echo \"index=$(grep -o -m1 'Read-only file system' /tmp/err || echo other)\"; \
             cd inside && git -c user.name=a -c user.email=a@a commit -q --allow-empty -m x && echo inside=ok",
        );
        out.expect_code(0);
        out.expect_fields(&[
            ("prune", "Read-only file system"),
            ("head", "Read-only file system"),
            ("index", "Read-only file system"),
            ("inside", "ok"),
        ]);
        let status = host_git(&elsewhere, &["status", "--porcelain", "--branch"]);
        assert!(status.status.success(), "{status:?}\n{}", out.all());
        assert_eq!(
            String::from_utf8_lossy(&status.stdout),
            "## other\nA  staged.txt\n",
            "{}",
            out.all()
        );
    });
}

/// Hole: the live watch (an editor runs `git status`, and so a new
/// repository's `core.fsmonitor`, the moment a `.git` appears) looked at a
/// `.git` entry once, when it appeared, and at a directory only when a
/// name like `HEAD` or `config` appeared in it. A sandbox kept a config
/// that runs a command in place, unseen until the session ended:
/// - `refs`, made last, turned a directory a `.git` file named into a git
///   directory after the look (`objects` and `refs` did not count);
/// - a `.git` link to a directory in `node_modules/<pkg>` (not watched)
///   that was made there after the look;
/// - a `.git` file created empty, and written after the look;
/// - a directory put in place of the one a `.git` link named, after that
///   was checked (renamed away: its watch went with it);
/// - a worktree's git directory made by hand in `.git/worktrees` (not
///   watched), `HEAD` last, whose `commondir` names a config it wrote.
///
/// Now `.git` files and links are read again every 100 ms and what they
/// name looked at when it changed, directories that were not git
/// directories yet are watched, and so is each git directory's
/// `worktrees`.
#[test]
fn repositories_the_live_watch_missed_are_checked_at_once() {
    each_mode(|case| {
        host_git(case.project(), &["init", "-q"]);
        case.env.own();
        let config = "printf '[core]\\n\\tfsmonitor = touch /tmp/ran\\n'";
        let git_dir = |d: &str| {
            format!(
                "mkdir -p {d}/objects {d}/refs && echo 'ref: refs/heads/main' > {d}/HEAD && {config} > {d}/config"
            )
        };
        let script = [
            // `gone NAME FILE`: NAME=gone once FILE has vanished (within
            // 30 s: a loaded machine).
            "gone() { i=0; while [ -e \"$2\" ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done; \
             [ -e \"$2\" ] && echo $1=present || echo $1=gone; }".to_string(),
            "sleep 0.8".into(),
            format!(
                "mkdir -p a/gd/objects && {config} > a/gd/config && echo 'ref: refs/heads/main' > a/gd/HEAD && \
                 echo 'gitdir: gd' > a/.git && sleep 0.3 && mkdir a/gd/refs && gone refs_last a/gd/config"
            ),
            format!(
                "{} && mkdir b && ln -s ../node_modules/pkg/gd b/.git && sleep 0.3 && \
                 mv node_modules/pkg/prep node_modules/pkg/gd && gone link_later node_modules/pkg/gd/config",
                git_dir("node_modules/pkg/prep")
            ),
            format!(
                "{} && mkdir c && : > c/.git && sleep 0.3 && echo 'gitdir: ../node_modules/pkg2/gd' > c/.git && \
                 gone written_later node_modules/pkg2/gd/config",
                git_dir("node_modules/pkg2/gd")
            ),
            format!(
                "mkdir -p node_modules/pkg3/gd/objects node_modules/pkg3/gd/refs d && \
                 echo 'ref: refs/heads/main' > node_modules/pkg3/gd/HEAD && \
                 ln -s ../node_modules/pkg3/gd d/.git && sleep 0.3 && {} && \
                 mv node_modules/pkg3/gd node_modules/pkg3/old && mv node_modules/pkg3/prep node_modules/pkg3/gd && \
                 gone replaced node_modules/pkg3/gd/config",
                git_dir("node_modules/pkg3/prep")
            ),
            format!(
                "mkdir -p common/objects common/refs .git/worktrees/made && {config} > common/config && \
                 echo ../../../common > .git/worktrees/made/commondir && sleep 0.3 && \
                 echo 'ref: refs/heads/main' > .git/worktrees/made/HEAD && gone worktree common/config"
            ),
            // Not a hole before: a directory of the tree watched as a git
            // directory to be (it holds a `config`) is still watched as
            // part of the tree.
            "mkdir tree && sleep 0.1 && echo x > tree/config && sleep 0.3 && git init -q tree/x && \
             git -C tree/x config core.fsmonitor 'touch /tmp/ran' && gone tree_with_config tree/x/.git/config"
                .into(),
        ]
        .join("; ");
        let out = case.sh(&script);
        out.expect_code(0);
        out.expect_fields(&[
            ("refs_last", "gone"),
            ("link_later", "gone"),
            ("written_later", "gone"),
            ("replaced", "gone"),
            ("worktree", "gone"),
            ("tree_with_config", "gone"),
        ]);
        for path in [
            "a/gd/config",
            "node_modules/pkg/gd/config",
            "node_modules/pkg2/gd/config",
            "node_modules/pkg3/gd/config",
            "common/config",
            "tree/x/.git/config",
        ] {
            let said = format!(
                "{} (a git config setting core.fsmonitor)",
                case.project().join(path).display()
            );
            assert!(out.stderr.contains(&said), "{said}\n{}", out.all());
        }
    });
}

/// Hole: queued signals are counted per user, in and out of user
/// namespaces alike. A sandbox that blocked a real-time signal and
/// `sigqueue`d it to itself until EAGAIN held the user's whole budget
/// (`ulimit -i`): the user's programs outside could not queue a signal or
/// create a POSIX timer while it ran. Now the sandbox gets half (soft and
/// hard limit), at both isolation levels.
#[test]
fn the_sandbox_cannot_take_all_of_the_users_queued_signals() {
    let queue = "import ctypes, os, signal, sys, time\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])\n\
        n = 0\n\
        most = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 40\n\
        while n < most and libc.sigqueue(os.getpid(), signal.SIGRTMIN, ctypes.c_void_p(0)) == 0:\n\
        \x20   n += 1\n\
        print('queued=%d errno=%d' % (n, ctypes.get_errno()), flush=True)\n\
        end = time.time() + float(sys.argv[1])\n\
        while time.time() < end and not os.path.exists('release'):\n\
        \x20   time.sleep(0.02)\n";
    let (limit, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_SIGPENDING).unwrap();
    assert!(limit > 2 && limit < 1 << 30, "RLIMIT_SIGPENDING {limit}");
    each_mode(|case| {
        case.write("queue.py", queue);
        for level in ["full", "landlock"] {
            // The sandbox holds what it queued until told to let go (a
            // minute at most); meanwhile a program of the same user outside
            // queues one signal. Waiting for its report rather than a fixed
            // time: on a loaded machine the sandbox may take seconds to start.
            let release = case.project().join("release");
            let mut cmd = case.guard(&[
                "run",
                "-q",
                "--isolation",
                level,
                "--",
                "/usr/bin/python3",
                "queue.py",
                "60",
            ]);
            let mut child = cmd
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut queued = String::new();
            std::io::BufRead::read_line(&mut stdout, &mut queued).unwrap();
            // As the sandbox's user (setpriv only when root: a user runs
            // as itself already, and may not clear its groups).
            let mut outside = if crate::common::is_root() {
                let mut c = std::process::Command::new("setpriv");
                c.arg(format!("--reuid={}", case.sandbox_uid()));
                c.arg(format!("--regid={}", case.sandbox_uid()));
                c.args(["--clear-groups", "--", "/usr/bin/python3"]);
                c
            } else {
                std::process::Command::new("/usr/bin/python3")
            };
            // One signal only: the machine's other programs of this user
            // (timeout(1) creates a timer) need the rest.
            let outside = outside
                .arg(case.project().join("queue.py"))
                .args(["0", "1"])
                .output()
                .unwrap();
            std::fs::write(&release, "").unwrap();
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
            let mut out = crate::common::Outcome::from(child.wait_with_output().unwrap());
            out.stdout = queued + &rest + &out.stdout;
            std::fs::remove_file(&release).unwrap();
            case.assert_no_leak(&out);
            out.expect_code(0);
            let outside = String::from_utf8_lossy(&outside.stdout).into_owned();
            let field = |text: &str, key: &str| -> Option<u64> {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key}=")))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse().ok())
            };
            let inside = field(&out.stdout, "queued");
            assert!(
                inside.is_some_and(|n| n > 0 && n <= limit / 2),
                "{level}: the sandbox queued {inside:?} of {limit}\n{}",
                out.all()
            );
            assert!(out.stdout.contains(" errno=11"), "{level}: {}", out.all());
            // Outside, the user could still queue one.
            assert_eq!(
                field(&outside, "queued"),
                Some(1),
                "{level}: the user could not queue a signal outside while the sandbox held its share\n{outside}\n{}",
                out.all()
            );
        }
    });
}

/// Was an open hole, reported only: a hidden or redacted file is a mount
/// over the file's directory entry. A program on the host that replaces
/// the file during the run (an editor's save, `sed -i`: a new file renamed
/// over it) removes that entry, the kernel detaches the mount with it, and
/// the sandbox read the new file as it is, secrets included. guard now
/// covers the new file at once (see `sandbox::keeper`); the sandbox reads
/// it after the replacement and finds it empty, and the summary says what
/// happened. (tests/secrets.rs waits for the cover instead of a fixed time.)
#[test]
fn a_secret_file_replaced_on_the_host_during_the_run_is_covered_again() {
    each_mode(|mut case| {
        let token = case.add_canary("replaced");
        let env = case.write(".env", &format!("API_TOKEN={token}\n"));
        case.write(".env.local", &format!("API_TOKEN={token}\n"));
        // Replaced once the sandbox runs (it says so; a fixed wait could
        // fall before the start on a loaded machine: one replaced before
        // guard watches is found by its first look). The sandbox then waits
        // for the cover (30 s at most), not a fixed time.
        let mut child = case
            .guard(&[
                "run",
                "--",
                "sh",
                "-c",
                "echo started=1; i=0; while [ ! -e go ] && [ $i -lt 3000 ]; do sleep 0.02; i=$((i+1)); done; \
                 i=0; while [ -s .env ] && [ $i -lt 1500 ]; do sleep 0.02; i=$((i+1)); done; \
                 echo env=$(wc -c < .env); cat .env; echo done=1",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut started = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut started).unwrap();
        let new = env.with_file_name(".env.new");
        std::fs::write(&new, format!("API_TOKEN={token}\nMORE=1\n")).unwrap();
        std::fs::rename(&new, &env).unwrap();
        std::fs::write(case.project().join("go"), "").unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        let mut out = crate::common::Outcome::from(child.wait_with_output().unwrap());
        out.stdout = started + &rest + &out.stdout;
        case.assert_no_leak(&out);
        out.expect_code(0);
        out.expect_fields(&[("started", "1"), ("env", "0"), ("done", "1")]);
        crate::support::expect_one_covered_again(&out);
    });
}
