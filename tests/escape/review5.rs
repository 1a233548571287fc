//! The fifth review: what guard does on the host, after the run, with files
//! the sandbox controlled. Each test names the attack; where guard had a
//! hole, the test failed before the fix that came with it.

use crate::common::TempDir;
use crate::support::{Expect, HostMarker, each_mode, host_git};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A git config (printf format, as the sandbox writes it) whose
/// `core.fsmonitor` creates `marker` on the host at the next `git status`.
fn fsmonitor_config(marker: &HostMarker) -> String {
    format!(
        "[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tfsmonitor = \"touch {}; false\"\\n",
        marker.path()
    )
}

/// `.git` files and `commondir`s that git reads and guard did not: a
/// `.git` link to a `gitdir:` file, a `.git` file past 4 KiB (trailing
/// newlines, which git strips), one with a NUL after the path (git stops
/// there), one naming a directory that is not UTF-8; a `commondir` that is
/// a link to a file, and one padded past 4 KiB. Each leads to a repository
/// the sandbox made, in a directory it may write outside the project
/// (`--rw`, which guard does not walk) or, for `commondir`, to a common
/// directory with no `HEAD` (nothing the walk marks). The user's next `git
/// status` there ran the sandbox's `core.fsmonitor` on the host. Checked
/// with the host's real git: every one of these is a repository to it
/// (`git status` ran the monitor) when guard is not there to move it aside.
#[test]
fn git_files_git_reads_are_followed_however_they_are_written() {
    each_mode(|case| {
        let p = case.project().to_path_buf();
        let shared = TempDir::new("r5-shared", case.mode());
        let s = shared.path.display().to_string();
        let m: Vec<HostMarker> = (0..6)
            .map(|i| HostMarker::new(&format!("gitfile{i}")))
            .collect();
        let script = format!(
            r#"set -e
S={s}
plant() {{ mkdir -p "$1/objects" "$1/refs"; echo 'ref: refs/heads/master' > "$1/HEAD"; printf "$2" > "$1/config"; }}
pad() {{ head -c 6000 /dev/zero | tr '\0' '\n'; }}
plant "$S/e0" '{c0}'
plant "$S/e1" '{c1}'
plant "$S/e2" '{c2}'
plant "$S/e3-$(printf '\377')" '{c3}'
mkdir a b c d
printf 'gitdir: %s/e0\n' "$S" > a/gitfile && ln -s gitfile a/.git
{{ printf 'gitdir: %s/e1' "$S"; pad; }} > b/.git
printf 'gitdir: %s/e2\0junk' "$S" > c/.git
printf 'gitdir: %s/e3-\377\n' "$S" > d/.git
mkdir -p w4/git w4/common/objects w4/common/refs w4/tree
echo 'ref: refs/heads/master' > w4/git/HEAD
printf '{c4}' > w4/common/config
printf '../common\n' > w4/cd && ln -s ../cd w4/git/commondir
printf 'gitdir: ../git\n' > w4/tree/.git
mkdir -p w5/git w5/common/objects w5/common/refs w5/tree
echo 'ref: refs/heads/master' > w5/git/HEAD
printf '{c5}' > w5/common/config
{{ printf '../common'; pad; }} > w5/git/commondir
printf 'gitdir: ../git\n' > w5/tree/.git
echo planted=1
"#,
            c0 = fsmonitor_config(&m[0]),
            c1 = fsmonitor_config(&m[1]),
            c2 = fsmonitor_config(&m[2]),
            c3 = fsmonitor_config(&m[3]),
            c4 = fsmonitor_config(&m[4]),
            c5 = fsmonitor_config(&m[5]),
        );
        let out = case.run(&["run", "--rw", &s, "--", "sh", "-c", &script]);
        assert!(
            out.stdout.contains("planted=1"),
            "setup failed inside:\n{}",
            out.all()
        );
        let whats = [
            "a .git link to a gitdir file",
            "a .git file padded past 4 KiB",
            "a .git file with a NUL after the path",
            "a .git file naming a directory that is not UTF-8",
            "a commondir that is a link to a file",
            "a commondir padded past 4 KiB",
        ];
        for (i, dir) in ["a", "b", "c", "d", "w4/tree", "w5/tree"]
            .iter()
            .enumerate()
        {
            let _ = host_git(&p.join(dir), &["status", "--short"]);
            m[i].assert_absent(whats[i]);
        }
        // Set aside by the check, said so (not a config git never read).
        let moved = out.stderr.matches("moved it to").count();
        assert!(moved >= 6, "{moved} moved aside:\n{}", out.stderr);
        let e3 = shared
            .path
            .join(std::ffi::OsStr::from_bytes(b"e3-\xff/config"));
        assert!(!e3.exists(), "{}", out.stderr);
    });
}

/// An inotify descriptor counting the opens of a directory and its entries.
struct Opens(std::os::fd::OwnedFd);

impl Opens {
    fn watch(dir: &Path) -> Opens {
        use std::os::fd::FromRawFd;
        // SAFETY: no pointer arguments.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fd was just returned by inotify_init1 and is owned here only.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: fd is a live inotify descriptor, c a NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                c.as_ptr(),
                libc::IN_OPEN,
            )
        };
        assert!(
            wd >= 0,
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        );
        Opens(fd)
    }

    /// Opens since the watch started (or the last count).
    fn count(&self) -> usize {
        use std::io::Read;
        let mut f = std::fs::File::from(self.0.try_clone().expect("dup inotify fd"));
        let mut n = 0;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(len) => {
                    let mut at = 0;
                    while at + 16 <= len {
                        let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap());
                        let name_len =
                            u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                        if mask & libc::IN_OPEN != 0 {
                            n += 1;
                        }
                        at += 16 + name_len;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read inotify: {e}"),
            }
        }
        n
    }
}

/// Repositories the sandbox makes whose `modules` (and `worktrees`) are
/// links out of everything it may write: guard followed each one and
/// listed what it led to, eight levels deep, once per repository. Fifty
/// repositories with `modules -> /` kept guard walking the host's whole
/// tree for minutes after the session (a thousand, for hours). Here the
/// links lead to a host directory no sandbox sees, watched with inotify:
/// guard must not open it at all.
#[test]
fn links_from_git_directories_out_of_the_writable_roots_are_not_walked() {
    each_mode(|case| {
        let elsewhere = TempDir::new("r5-elsewhere", case.mode());
        for d in ["a/b/c", "d/e", "f"] {
            std::fs::create_dir_all(elsewhere.join(d)).unwrap();
        }
        let opens = Opens::watch(&elsewhere.path);
        assert_eq!(opens.count(), 0);
        let script = format!(
            r#"set -e
for i in $(seq 1 50); do
  mkdir -p r$i/objects r$i/refs
  echo 'ref: refs/heads/master' > r$i/HEAD
  ln -s {e} r$i/modules
  ln -s {e} r$i/worktrees
done
echo planted=1
"#,
            e = elsewhere.path.display()
        );
        let out = case.sh(&script);
        assert!(
            out.stdout.contains("planted=1"),
            "setup failed inside:\n{}",
            out.all()
        );
        out.expect_code(0);
        let n = opens.count();
        assert_eq!(
            n, 0,
            "guard opened {n} times a host directory only links the sandbox planted lead to:\n{}",
            out.stderr
        );
        // The watch sees an open (no pass for a watch that sees nothing).
        let _ = std::fs::read_dir(&elsewhere.path).map(|rd| rd.count());
        assert!(opens.count() > 0, "inotify saw no open");
    });
}

/// A directory granted writable outside the project (`--rw ../lib`, a
/// second repository the agent may change) is one the user commits in as
/// much as in the project, yet none of the project's protections reached
/// it: the sandbox wrote a `pre-commit` hook and `core.fsmonitor` into its
/// `.git`, made a repository below it, or moved its `.git` aside and made
/// a fresh one, and the user's next `git status` or `git commit` there ran
/// them. Now its repositories' hooks and config are read-only inside, like
/// the project's, and the check after the run walks it; the user's own
/// hook there stays.
#[test]
fn repositories_in_a_writable_grant_outside_the_project_are_protected() {
    each_mode(|case| {
        let other = TempDir::new("r5-other", case.mode());
        let o = other.path.clone();
        let user = ["-c", "user.name=t", "-c", "user.email=t@t"];
        assert!(host_git(&o, &["init", "-q"]).status.success());
        let commit = |dir: &Path| {
            let mut args = user.to_vec();
            args.extend(["commit", "-q", "--allow-empty", "-m", "x"]);
            host_git(dir, &args)
        };
        assert!(commit(&o).status.success());
        std::fs::write(o.join(".git/hooks/post-commit"), "#!/bin/sh\ntrue\n").unwrap();
        let m: Vec<HostMarker> = (0..4)
            .map(|i| HostMarker::new(&format!("rwrepo{i}")))
            .collect();
        let hook = |i: usize| format!("#!/bin/sh\\ntouch {}\\n", m[i].path());
        let moved = TempDir::new("r5-other2", case.mode());
        let o2 = moved.path.clone();
        assert!(host_git(&o2, &["init", "-q"]).status.success());
        assert!(commit(&o2).status.success());
        other.own(case.mode());
        moved.own(case.mode());
        // The fresh repository's hook is made executable before it is moved
        // in: the live check may move the hooks directory aside as soon as
        // a hook is in it, before a `chmod` there.
        let script = format!(
            r#"cd {o}
printf '{h0}' > .git/hooks/pre-commit
echo hook=$?
chmod +x .git/hooks/pre-commit 2>/dev/null
git config core.fsmonitor 'touch {m1}; false' 2>/dev/null
echo config=$?
mkdir sub && cd sub && git init -q && git config core.fsmonitor 'touch {m2}; false' && echo nested=1
cd {o2} && mv .git .git-old && git init -q . && printf '{h3}' > hook.tmp && chmod +x hook.tmp && mv hook.tmp .git/hooks/pre-commit && echo fresh=1
echo ran=1
"#,
            o = o.display(),
            o2 = o2.display(),
            h0 = hook(0),
            m1 = m[1].path(),
            m2 = m[2].path(),
            h3 = hook(3),
        );
        let out = case.run(&[
            "run",
            "--rw",
            &o.display().to_string(),
            "--rw",
            &o2.display().to_string(),
            "--",
            "sh",
            "-c",
            &script,
        ]);
        out.ran();
        // Refused inside for the stated reason: read-only, like the
        // project's (the shell's exit status for a failed redirection is
        // 2; git's for a config it cannot write, 4).
        assert_eq!(out.field("hook").as_deref(), Some("2"), "{}", out.all());
        assert!(
            out.stderr.contains("Read-only file system"),
            "{}",
            out.all()
        );
        assert_eq!(out.field("config").as_deref(), Some("4"), "{}", out.all());
        // What no mount can stop was made, and is moved aside after.
        assert_eq!(out.field("nested").as_deref(), Some("1"), "{}", out.all());
        assert_eq!(out.field("fresh").as_deref(), Some("1"), "{}", out.all());
        let _ = commit(&o);
        let _ = host_git(&o.join("sub"), &["status", "--short"]);
        let _ = commit(&o2);
        m[0].assert_absent("a pre-commit hook in a writable grant's repository");
        m[1].assert_absent("core.fsmonitor in a writable grant's repository");
        m[2].assert_absent("a repository made in a writable grant");
        m[3].assert_absent("a fresh .git in place of a writable grant's");
        assert!(
            o.join(".git/hooks/post-commit").exists(),
            "the user's own hook was moved:\n{}",
            out.stderr
        );
    });
}

/// The sandbox prepares a file the user (or a tool on the host) later puts
/// a secret into, starting it with a NUL byte: the scan took a NUL in the
/// first 8 KiB for a binary file and never searched it, so the next session
/// read the token in the clear, where the same line in a plain text file is
/// hidden. Such files, and SQLite databases, are now searched for tokens
/// of a known format and hidden when they hold one. (Files past the scan's 2 MiB limit are still
/// not read, as the issue specifies: see README, limits.)
#[test]
fn secrets_added_to_files_the_sandbox_made_look_binary_are_found() {
    each_mode(|case| {
        let out = case.sh("printf '\\000binary header\\n' > notes.txt && echo ran=1");
        out.ran();
        let p = case.project().to_path_buf();
        let tok = crate::common::gh_canary("r5bin");
        for f in ["notes.txt", "plain.txt"] {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p.join(f))
                .unwrap();
            writeln!(file, "token = \"{tok}\"").unwrap();
        }
        case.env.own();
        // A database the app keeps a token in: stored as plain bytes.
        let made = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
                 c.execute('create table settings(k text, v text)'); \
                 c.execute('insert into settings values (?, ?)', ('github', sys.argv[2])); \
                 c.commit()",
            ])
            .arg(p.join("app.db"))
            .arg(&tok)
            .status()
            .expect("python3 is required");
        assert!(made.success());
        case.env.own();
        for f in ["plain.txt", "notes.txt", "app.db"] {
            let out = case.run(&[
                "run",
                "--",
                "sh",
                "-c",
                &format!("echo ran=1; tr -d '\\0' < {f} | tail -c 4000"),
            ]);
            out.ran();
            assert!(
                !out.stdout.contains(&tok),
                "the token appended to {f} was readable in the next session:\n{}",
                out.all()
            );
        }
        // Hidden for what it holds, and said so without the value.
        let scan = case.run(&["scan", "--json", p.to_str().unwrap()]);
        let flagged: serde_json::Value = serde_json::from_str(&scan.stdout).unwrap();
        for name in ["/notes.txt", "/app.db"] {
            let f = flagged["flagged"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["path"].as_str().is_some_and(|x| x.ends_with(name)))
                .unwrap_or_else(|| panic!("{name} not flagged: {}", scan.all()));
            assert_eq!(f["action"], "hide", "{f}");
            assert_eq!(f["reason"], "binary file holding a secret", "{f}");
            assert_eq!(f["hits"][0]["rule"], "github-token", "{f}");
        }
        scan.assert_no_canary(&tok);
    });
}

/// The persistent home is writable and outlives the session. The sandbox
/// makes a repository there (below a directory, so no `.git` is next to
/// the link) with a `core.fsmonitor`, and a link to it in the project:
/// on the host, `cd vendor && git status` runs the monitor. The project
/// walk did not follow links, so the check after the run never saw it.
#[test]
fn a_link_into_the_persistent_home_leads_host_git_to_nothing_planted() {
    each_mode(|case| {
        let marker = HostMarker::new("perhome");
        let persistent = case.env.persistent_home("claude");
        let script = format!(
            r#"git init -q "$HOME/work" && mkdir -p "$HOME/work/lib/deep" &&
git -C "$HOME/work" config core.fsmonitor 'touch {m}; false' && echo planted=1
ln -s {p}/work/lib/deep vendor && echo linked=1
echo ran=1
"#,
            m = marker.path(),
            p = persistent.display(),
        );
        let out = case.run(&["run", "-p", "claude", "--", "sh", "-c", &script]);
        out.ran();
        assert_eq!(out.field("planted").as_deref(), Some("1"), "{}", out.all());
        assert_eq!(out.field("linked").as_deref(), Some("1"), "{}", out.all());
        let vendor = case.project().join("vendor");
        assert!(
            vendor.join("..").exists(),
            "the link should lead to the persistent home on the host: {}",
            out.all()
        );
        let _ = host_git(&vendor, &["status", "--short"]);
        marker.assert_absent("core.fsmonitor of a repository in the persistent home");
        // The right reason: the planted key was named and moved aside.
        assert!(
            out.stderr.contains("core.fsmonitor"),
            "guard did not report the planted key: {}",
            out.all()
        );
        assert!(
            !persistent.join("work/.git/config").exists(),
            "the planted config is still in place"
        );
    });
}
