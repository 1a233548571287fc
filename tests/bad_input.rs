//! Bad input gets one clear paragraph: what is wrong, where (`file:line:col`
//! for profiles), how to fix it, and exit status 125 — never a panic, a
//! backtrace or a bare OS error. The command's own failures keep the
//! shell's 126/127.

mod common;

use common::{Env, Mode, Outcome, modes};
use std::os::unix::fs::PermissionsExt;

/// The shape every bad-input answer has.
#[track_caller]
fn assert_clear(out: &Outcome, code: i32, needles: &[&str], what: &str) {
    assert_eq!(
        out.code, code,
        "{what}: exit code\n--- stderr\n{}",
        out.stderr
    );
    for bad in ["panicked", "RUST_BACKTRACE", "(os error"] {
        assert!(
            !out.stderr.contains(bad),
            "{what}: {bad:?} in\n{}",
            out.stderr
        );
    }
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "{what}: {n:?} missing from\n{}",
            out.stderr
        );
    }
}

/// Profile text, the `line:column` the error must name, and fragments
/// of the message.
const PROFILES: &[(&str, &str, &[&str])] = &[
    // Syntax.
    (
        "version = 1\n[filesystem]\nread = [\n",
        "3:9",
        &["TOML syntax", "unclosed array"],
    ),
    ("version = 1\nfoo bar\n", "2:5", &["TOML syntax"]),
    (
        "version = 1\nversion = 1\n",
        "2:1",
        &["duplicate key `version`"],
    ),
    (
        "version = 1\n[network]\n[network]\n",
        "3:2",
        &["duplicate key `network`"],
    ),
    // Unknown keys, at every level.
    (
        "version = 1\nfoo = 1\n",
        "2:1",
        &["unknown key `foo`", "top level"],
    ),
    (
        "version = 1\n[network]\nalow = []\n",
        "3:1",
        &["unknown key `alow` in [network]", "`allow`"],
    ),
    (
        "version = 1\n[secrets]\nskp = []\n",
        "3:1",
        &["unknown key `skp` in [secrets]"],
    ),
    ("version = 1\n[env]\npas = []\n", "3:1", &["in [env]"]),
    (
        "version = 1\n[syscalls]\nptrce = true\n",
        "3:1",
        &["in [syscalls]"],
    ),
    (
        "version = 1\n[limits]\nprocs = 1\n",
        "3:1",
        &["in [limits]"],
    ),
    (
        "version = 1\n[home]\npersists = true\n",
        "3:1",
        &["in [home]"],
    ),
    (
        "version = 1\n[bogus]\nx = 1\n",
        "2:2",
        &["unknown key `bogus`"],
    ),
    (
        "version = 1\n[[secrets.path_rules]]\nid = \"x\"\ndescription = \"d\"\nglobs = [\"*.x\"]\nglob = []\n",
        "6:1",
        &["unknown key `glob` in [secrets.path_rules]"],
    ),
    (
        "version = 1\n[network]\nallow = [{ host = \"a.example\", privat = true }]\n",
        "3:",
        &["privat"],
    ),
    // Wrong types, in TOML's words.
    (
        "version = 1\n[filesystem]\nread = \"/usr\"\n",
        "3:8",
        &["key `filesystem.read`", "expected a list"],
    ),
    (
        "version = 1\nfilesystem = \"x\"\n",
        "2:14",
        &["key `filesystem`", "expected a table"],
    ),
    (
        "version = 1\n[syscalls]\nptrace = 1\n",
        "3:10",
        &["key `syscalls.ptrace`", "true or false"],
    ),
    (
        "version = 1\n[limits]\nprocesses = -5\n",
        "3:13",
        &["key `limits.processes`", "whole number"],
    ),
    (
        "version = 1\n[limits]\nprocesses = 1.5\n",
        "3:13",
        &["key `limits.processes`"],
    ),
    (
        "version = \"1\"\n",
        "1:11",
        &["key `version`", "whole number"],
    ),
    (
        "version = 1\n[env.set]\nFOO = 1\n",
        "3:7",
        &["key `env.set.FOO`", "expected a string"],
    ),
    (
        "version = 1\n[secrets.content_rules]\nid = \"x\"\n",
        "2:",
        &["key `secrets.content_rules`", "expected a list"],
    ),
    (
        "version = 1\n[[secrets.content_rules]]\nid = \"x\"\ndescription = \"d\"\n",
        "2:1",
        &["missing key `regex`"],
    ),
    // Version.
    (
        "[filesystem]\nread = []\n",
        "1:1",
        &["missing key `version`", "version = 1"],
    ),
    ("version = 2\n", "1:1", &["schema version 2"]),
    // Values the schema accepts but guard cannot use.
    (
        "version = 1\n[limits]\nprocesses = 0\n",
        "3:1",
        &["limits.processes", "out of range"],
    ),
    (
        "version = 1\n[limits]\nprocesses = 18446744073709551615\n",
        "3:1",
        &["out of range"],
    ),
    (
        "version = 1\n[filesystem]\nread = [\"/usr\", \"relative/x\"]\n",
        "3:17",
        &[
            "key `filesystem.read`",
            "relative path",
            "hint: start a path with /",
        ],
    ),
    (
        "version = 1\n[filesystem]\nread = [\"~root/x\"]\n",
        "3:9",
        &["~user"],
    ),
    (
        "version = 1\n[filesystem]\nhide = [\"{project}x\"]\n",
        "3:9",
        &["{project} must be followed by /"],
    ),
    (
        "version = 1\n[filesystem]\nprotect = [\"{home}/.x\"]\n",
        "3:12",
        &["placeholders"],
    ),
    (
        "version = 1\n[filesystem]\nread = [\"\"]\n",
        "3:9",
        &["empty path"],
    ),
    (
        "version = 1\n[filesystem]\nwrite = [\"/\"]\n",
        "3:10",
        &["every file of yours"],
    ),
    (
        "version = 1\n[filesystem]\nread = [\"~\"]\n",
        "3:9",
        &["every file of yours"],
    ),
    (
        "version = 1\n[home]\nimport = [\"/etc\"]\n",
        "3:11",
        &["key `home.import`", "~/"],
    ),
    (
        "version = 1\n[home]\nlogin = [\"~/.a\", \"/etc/passwd\"]\n",
        "3:18",
        &["key `home.login`", "~/"],
    ),
    (
        "version = 1\n[home]\nsettings = [\"/etc/x.json\"]\n",
        "3:13",
        &["key `home.settings`", "~/"],
    ),
    (
        "version = 1\n[home]\nown_keys = [\"apiKey\", \"\"]\n",
        "3:23",
        &["key `home.own_keys`", "empty name"],
    ),
    (
        "version = 1\n[home]\nnot_imported = [\"~\"]\n",
        "3:17",
        &["key `home.not_imported`", "~/"],
    ),
    (
        "version = 1\n[home]\ncache = [\"rel\"]\n",
        "3:10",
        &["home.cache"],
    ),
    (
        "version = 1\n[env]\npass = [\"A=B\"]\n",
        "3:9",
        &["key `env.pass`", "`=`"],
    ),
    (
        "version = 1\n[env]\npass = [\"A*B\"]\n",
        "3:9",
        &["`*` may only end"],
    ),
    (
        "version = 1\n[env.set]\n\"\" = \"x\"\n",
        "3:1",
        &["key `env.set`", "empty variable name"],
    ),
    (
        "version = 1\n[env.set]\nA = \"x\\u0000y\"\n",
        "3:1",
        &["NUL byte"],
    ),
    (
        "version = 1\nextends = [\"\"]\n",
        "2:12",
        &["empty profile name"],
    ),
    (
        "version = 1\nextends = [\"default\",\n  \"no-such-profile\"]\n",
        "3:3",
        &[
            "key `extends`",
            "no profile named \"no-such-profile\"",
            "built-in profiles",
        ],
    ),
    (
        "version = 1\nextends = [\"./missing.toml\"]\n",
        "2:12",
        &["key `extends`", "missing.toml: no such file"],
    ),
    (
        "version = 1\nextends = [\"./bad.toml\"]\n",
        "2:12",
        &["forms a cycle"],
    ),
    // Network.
    (
        "version = 1\n[network]\nallow = [\"*.\"]\n",
        "3:10",
        &["empty host name"],
    ),
    (
        "version = 1\n[network]\nallow = [\"*\"]\n",
        "3:10",
        &["whole first label"],
    ),
    (
        "version = 1\n[network]\nallow = [\"*.com\"]\n",
        "3:10",
        &["too broad"],
    ),
    (
        "version = 1\n[network]\nallow = [\"a..b.example\"]\n",
        "3:10",
        &["empty label"],
    ),
    (
        "version = 1\n[network]\nallow = [\"a.example:0\"]\n",
        "3:10",
        &["key `network.allow`", "invalid port \"0\""],
    ),
    (
        "version = 1\n[network]\nallow = [\"a.example:65536\"]\n",
        "3:10",
        &["1 to 65535"],
    ),
    (
        "version = 1\n[network]\nallow = [\"a.example:https\"]\n",
        "3:10",
        &["invalid port"],
    ),
    (
        "version = 1\n[network]\nallow = [\"https://a.example/x\"]\n",
        "3:10",
        &["is a URL", "\"a.example\""],
    ),
    (
        "version = 1\n[network]\nallow = [\"a.example/x\"]\n",
        "3:10",
        &["cannot hold a path"],
    ),
    (
        "version = 1\n[network]\nallow = [\"10.0.0.0/33\"]\n",
        "3:10",
        &["prefix length"],
    ),
    (
        "version = 1\n[network]\nallow = [\"[::1\"]\n",
        "3:10",
        &["missing `]`"],
    ),
    (
        "version = 1\n[network]\nallow = [\"a.example\"]\n[network.hosts]\n\"a.example\" = \"1.2.3.4:80\"\n",
        "5:15",
        &["not an IP address", "hint: give an IP address"],
    ),
    (
        "version = 1\n[network]\nallow = [\"a.example\"]\n[network.hosts]\n\"b.example\" = \"10.0.0.1\"\n",
        "5:1",
        &["no `allow` entry"],
    ),
    // Secret rules.
    (
        "version = 1\n[[secrets.content_rules]]\nid = \"x\"\ndescription = \"d\"\nregex = \"a(b\"\n",
        "5:9",
        &["secrets.content_rules[0].regex", "invalid regex"],
    ),
    (
        "version = 1\n[[secrets.content_rules]]\nid = \"x\"\ndescription = \"d\"\nregex = \"a*\"\n",
        "5:9",
        &["matches an empty string"],
    ),
    (
        "version = 1\n[[secrets.content_rules]]\nid = \"x\"\ndescription = \"d\"\nregex = \"k=(?P<secrt>[a-z]+)\"\n",
        "5:9",
        &["unknown group name `secrt`"],
    ),
    (
        "version = 1\n[[secrets.content_rules]]\nid = \"x\"\ndescription = \"d\"\nregex = \"abc\"\nkeywords = [\"\"]\n",
        "3:6",
        &["empty keyword"],
    ),
    (
        "version = 1\n[[secrets.path_rules]]\nid = \"x\"\ndescription = \"d\"\nglobs = [\"\"]\n",
        "5:10",
        &["empty glob"],
    ),
    (
        "version = 1\n[secrets]\nskip = [\"a[b\"]\n",
        "3:9",
        &["secrets.skip[0]", "invalid glob"],
    ),
    (
        "version = 1\n[secrets]\ndisable = [\"no-such-rule\"]\n",
        "3:12",
        &["no rule with id"],
    ),
    (
        "version = 1\n[[secrets.content_rules]]\nid = \"jwt\"\ndescription = \"d\"\nregex = \"abc\"\n",
        "3:6",
        &["already taken"],
    ),
];

#[test]
fn bad_profiles_name_file_line_key_and_fix() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        for (text, at, needles) in PROFILES {
            let p = env.project.write("bad.toml", text);
            env.project.own(mode);
            let out = env.run(&["run", "-p", p.to_str().unwrap(), "--", "true"]);
            let mut all = vec!["invalid profile", "hint:"];
            let loc = format!("bad.toml:{at}");
            all.push(&loc);
            all.extend_from_slice(needles);
            assert_clear(&out, 125, &all, &format!("{mode:?} {text:?}"));
        }
    }
}

#[test]
fn too_many_secret_rules_is_a_clear_error() {
    let env = Env::new(Mode::Invoker);
    let mut text = String::from("version = 1\n");
    for i in 0..70 {
        text.push_str(&format!(
            "[[secrets.content_rules]]\nid = \"r{i}\"\ndescription = \"d\"\nregex = \"abc{i}x\"\n"
        ));
    }
    let p = env.project.write("many.toml", &text);
    let out = env.run(&["run", "-p", p.to_str().unwrap(), "--", "true"]);
    assert_clear(&out, 125, &["many.toml:", "at most 64"], "70 rules");
    // The same id in two layers.
    env.project.write(
        "base.toml",
        "version = 1\n[[secrets.content_rules]]\nid = \"x\"\ndescription = \"d\"\nregex = \"abc\"\n",
    );
    let p = env.project.write(
        "top.toml",
        "version = 1\nextends = [\"default\", \"./base.toml\"]\n[[secrets.content_rules]]\nid = \"x\"\ndescription = \"d\"\nregex = \"abd\"\n",
    );
    let out = env.run(&["run", "-p", p.to_str().unwrap(), "--", "true"]);
    assert_clear(
        &out,
        125,
        &["rule id \"x\" is defined by more than one", "hint:"],
        "id twice",
    );
}

#[test]
fn profile_files_that_cannot_be_read_are_named_with_the_reason() {
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.join("dir.toml");
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = env.project.join("fifo.toml");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(st.success());
        let mut huge = b"version = 1\n".to_vec();
        huge.resize(2 << 20, b'#');
        std::fs::write(env.project.join("huge.toml"), huge).unwrap();
        std::fs::write(
            env.project.join("latin1.toml"),
            b"version = 1\ndescription = \"caf\xe9\"\n",
        )
        .unwrap();
        env.own();
        let cases: &[(&str, &[&str])] = &[
            ("dir.toml", &["it is a directory"]),
            // A FIFO must not leave guard waiting for a writer.
            ("fifo.toml", &["not a regular file"]),
            ("huge.toml", &["at most 1048576"]),
            ("latin1.toml", &["latin1.toml:2:19", "not UTF-8"]),
            ("missing.toml", &["no such file", "built-in profiles"]),
        ];
        for (name, needles) in cases {
            let p = env.project.join(name);
            let out = env.run(&["run", "-p", p.to_str().unwrap(), "--", "true"]);
            let mut all = vec![*name, "hint:"];
            all.extend_from_slice(needles);
            assert_clear(&out, 125, &all, &format!("{mode:?} {name}"));
        }
        let out = env.run(&["run", "-p", "no-such-profile", "--", "true"]);
        assert_clear(
            &out,
            125,
            &[
                "no profile named \"no-such-profile\"",
                "built-in profiles: default",
            ],
            "unknown name",
        );
        if mode == Mode::Unprivileged {
            // Too few processes for the command (root is exempt).
            let p = env.project.write(
                "few.toml",
                "version = 1\nextends = [\"default\"]\n[limits]\nprocesses = 1\n",
            );
            env.project.own(mode);
            let out = env.run(&["run", "-p", p.to_str().unwrap(), "--", "true"]);
            assert_clear(
                &out,
                125,
                &["process limit is reached", "limits.processes"],
                "processes = 1",
            );
            // Written by root, readable by root only.
            let p = env.project.write("secret.toml", "version = 1\n");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            let out = env.run(&["run", "-p", p.to_str().unwrap(), "--", "true"]);
            assert_clear(
                &out,
                125,
                &["secret.toml", "permission denied", "uid 65534", "hint:"],
                "unreadable",
            );
        }
    }
}

#[test]
fn project_and_user_profiles_errors_name_their_file() {
    for mode in modes() {
        let env = Env::new(mode);
        env.project
            .write(".guard.toml", "version = 1\n[filesystem]\nreed = []\n");
        env.home.write(
            ".config/guard/profiles/mine.toml",
            "version = 1\nextends = [\"default\"]\n[network]\nallow = [\"*\"]\n",
        );
        env.own();
        let out = env.run(&["run", "--", "true"]);
        assert_clear(
            &out,
            125,
            &[".guard.toml:3:1", "unknown key `reed` in [filesystem]"],
            "project profile",
        );
        std::fs::remove_file(env.project.join(".guard.toml")).unwrap();
        let out = env.run(&["run", "-p", "mine", "--", "true"]);
        assert_clear(
            &out,
            125,
            &["profiles/mine.toml:4:10", "whole first label"],
            "user profile",
        );
        // The project's file must be the file itself.
        std::os::unix::fs::symlink(
            env.home.join(".config/guard/profiles/mine.toml"),
            env.project.join(".guard.toml"),
        )
        .unwrap();
        let out = env.run(&["run", "--", "true"]);
        assert_clear(
            &out,
            125,
            &[".guard.toml", "symbolic link", "hint:"],
            "linked project profile",
        );
    }
}

#[test]
fn bad_command_line_values_are_usage_errors() {
    for mode in modes() {
        let env = Env::new(mode);
        std::fs::create_dir_all(env.project.join("dir")).unwrap();
        let fifo = env.project.join("log.fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(st.success());
        env.own();
        let home = env.home.path.display().to_string();
        let project = env.project.path.display().to_string();
        let parent = format!("{project}/..");
        let dir = format!("{project}/dir");
        let fifo = fifo.display().to_string();
        let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
            (vec!["--ro", "/"], vec!["--ro /", "whole machine"]),
            (vec!["--rw", "/"], vec!["--rw /", "whole machine"]),
            (vec!["--ro", &home], vec!["your home directory"]),
            (vec!["--rw", &home], vec!["your home directory"]),
            (vec!["--rw", "/proc"], vec!["its own /proc"]),
            (vec!["--ro", "/proc/1"], vec!["its own /proc"]),
            (vec!["--hide", &project], vec!["would hide the project"]),
            (vec!["--hide", &parent], vec!["would hide the project"]),
            (vec!["--hide", "/"], vec!["would hide the project"]),
            (
                vec!["--ro", "/no/such/path"],
                vec!["no such file or directory"],
            ),
            (vec!["--allow-env", "A=B"], vec!["--allow-env", "`=`"]),
            (vec!["--allow-env="], vec!["empty variable name"]),
            (vec!["--allow-host", "https://a.example"], vec!["is a URL"]),
            (vec!["--allow-host", "a.example:0"], vec!["invalid port"]),
            (vec!["--allow-host", ""], vec!["empty host"]),
            (vec!["--log", &dir], vec!["--log", "is a directory"]),
            // A FIFO nobody reads: an error, not a hang.
            (vec!["--log", &fifo], vec!["FIFO that no process reads"]),
            (vec!["-p", ""], vec!["no profile named \"\""]),
        ];
        for (flags, needles) in &cases {
            let mut args = vec!["run"];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["--", "true"]);
            let out = env.run(&args);
            let mut all = needles.clone();
            all.push("hint:");
            assert_clear(&out, 125, &all, &format!("{mode:?} {flags:?}"));
        }
        // A flag without its value: clap's error, with guard's status.
        for flag in [
            "-p",
            "--ro",
            "--rw",
            "--hide",
            "--allow-env",
            "--allow-host",
            "--log",
        ] {
            let out = env.run(&["run", flag]);
            assert_clear(&out, 125, &["a value is required"], flag);
        }
        for (args, needles) in [
            (&["run", "--", ""][..], &["command name is empty"][..]),
            (&["run"][..], &["no command given"][..]),
            (&["log", "--kind", "bogus"][..], &["--kind", "net, fs"][..]),
            (&["scan", "/"][..], &["not a project"][..]),
            (&["scan", "/no/such/dir"][..], &["no such file"][..]),
            (
                &["run", "--isolation", "weak", "--", "true"][..],
                &["invalid value"][..],
            ),
        ] {
            let out = env.run(args);
            assert_clear(&out, 125, needles, &format!("{args:?}"));
        }
    }
}

#[test]
fn dot_dot_in_a_grant_is_resolved() {
    let env = Env::new(Mode::Invoker);
    let other = common::TempDir::new("other", Mode::Invoker);
    let name = other.path.file_name().unwrap().to_str().unwrap();
    let via = format!("{}/../{name}", env.project.path.display());
    let out = env.run(&["explain", "--ro", &via, "--", "true"]);
    out.expect_code(0);
    let line = format!("ro    {}  [--ro]", other.path.display());
    assert!(out.stdout.contains(&line), "{line}:\n{}", out.stdout);
}

#[test]
fn the_command_itself_fails_with_126_or_127() {
    for mode in modes() {
        let env = Env::new(mode);
        env.project.write("notexec", "#!/bin/sh\n");
        std::fs::create_dir_all(env.project.join("adir")).unwrap();
        env.own();
        for (cmd, code, needle) in [
            ("no-such-command-xyz", 127, "not found"),
            ("./notexec", 126, "not executable"),
            ("./adir", 126, "is a directory"),
            ("/no/such/file", 127, "no such file"),
        ] {
            let out = env.run(&["run", "--", cmd]);
            assert_clear(&out, code, &[needle], cmd);
        }
        // At the `landlock` level, a program outside what the sandbox may
        // run (a shim under a home directory, say): the kernel's refusal
        // in words, without its number.
        let outside = std::env::temp_dir().join(format!(
            "guard-outside-exe-{}-{mode:?}.sh",
            std::process::id()
        ));
        std::fs::write(&outside, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = env.run(&[
            "run",
            "--isolation",
            "landlock",
            "--",
            outside.to_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(&outside);
        assert_clear(
            &out,
            126,
            &["cannot execute", "permission denied"],
            "landlock",
        );
        // A profile that sees no system directories: say so.
        let p = env.project.write("bare.toml", "version = 1\n");
        env.project.own(mode);
        let out = env.run(&["run", "-p", p.to_str().unwrap(), "--", "true"]);
        assert_clear(&out, 127, &["not found", "extends = [\"default\"]"], "bare");
    }
}

#[test]
fn a_broken_environment_is_explained() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        // A relative HOME is ignored, never used from wherever guard runs.
        let out = Outcome::from(
            env.guard(&["run", "--", "true"])
                .env("HOME", "relhome")
                .output()
                .expect("spawn guard"),
        );
        assert!(
            !env.project.join("relhome").exists(),
            "{mode:?}: created a relative home:\n{}",
            out.all()
        );
        // Started in the home: it is not a project.
        let out = Outcome::from(
            env.guard(&["run", "--", "true"])
                .current_dir(&env.home.path)
                .output()
                .expect("spawn guard"),
        );
        assert_clear(&out, 125, &["your home directory", "hint:"], "in home");
        let out = Outcome::from(
            env.guard(&["run", "--", "true"])
                .current_dir("/")
                .output()
                .expect("spawn guard"),
        );
        assert_clear(&out, 125, &["the whole machine", "hint:"], "in /");
        // The current directory was removed under the shell.
        let gone = env.project.join("gone");
        let inner = env.guard(&[]);
        let script = format!(
            "mkdir {g} && cd {g} && rmdir {g} && exec \"$@\" run -- true",
            g = gone.display()
        );
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg("sh")
            .arg(inner.get_program())
            .args(inner.get_args());
        cmd.current_dir(&env.project.path)
            .env("HOME", &env.home.path)
            .stdin(std::process::Stdio::null());
        env.project.own(mode);
        let out = Outcome::from(cmd.output().expect("spawn sh"));
        assert_clear(
            &out,
            125,
            &["current directory no longer exists", "hint:"],
            &format!("{mode:?} deleted cwd"),
        );
    }
}

/// `guard prune --project` with a directory that does not exist.
#[test]
fn prune_of_a_missing_project_is_a_clear_error() {
    for mode in modes() {
        let env = Env::new(mode);
        env.own();
        let missing = env.project.join("no-such-project");
        let out = env.run(&["prune", "--project", missing.to_str().unwrap()]);
        assert_clear(
            &out,
            125,
            &["no-such-project", "no such file or directory", "hint:"],
            "prune --project",
        );
    }
}
