//! The sandbox core (issue 2), end to end: the real binary, real sandboxes,
//! as the invoking user and (when root) as an unprivileged uid.

mod common;

use common::{Env, Mode, canary, modes, pgrep, py};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn exit_codes_are_the_commands() {
    for mode in modes() {
        let env = Env::new(mode);
        env.run(&["run", "--", "true"]).expect_code(0);
        env.sh("exit 3").expect_code(3);
        env.sh("kill -9 $$").expect_code(137);
        let missing = env.run(&["run", "--", "no-such-command-xyz"]);
        missing.expect_code(127);
        assert!(
            missing.stderr.contains("command not found"),
            "{}",
            missing.stderr
        );
        env.project.write("notexec.sh", "#!/bin/sh\necho hi\n");
        env.own();
        let notexec = env.run(&["run", "--", "./notexec.sh"]);
        notexec.expect_code(126);
        assert!(
            notexec.stderr.contains("not executable"),
            "{}",
            notexec.stderr
        );
        // guard's own failure: a bad flag value.
        let bad = env.run(&["run", "--ro", "/no/such/path", "--", "true"]);
        bad.expect_code(125);
        assert!(
            bad.stderr.contains("/no/such/path") && bad.stderr.contains("hint:"),
            "{}",
            bad.stderr
        );
        assert!(!bad.stderr.contains("panicked"), "{}", bad.stderr);
    }
}

/// `guard run ... > log 2>&1`: the command's stdout and stderr and
/// guard's own messages all land in the file, in the order written. (Two
/// relays splicing into the one file took its offset before waiting for
/// data, and each overwrote what the other had written.)
#[test]
fn output_to_one_file_keeps_everything_in_order() {
    for mode in modes() {
        let env = Env::new(mode);
        // Outside the project (the home is not in the sandbox's view).
        let path = env.home.path.join("guard-output.log");
        let file = std::fs::File::create(&path).expect("create the log");
        let err = file.try_clone().expect("dup the log");
        let status = env
            .guard(&[
                "run",
                "--",
                "sh",
                "-c",
                "for i in 1 2 3 4 5 6 7 8; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; done; \
                 curl -s -o /dev/null https://refused.example.org/; exit 4",
            ])
            .stdout(file)
            .stderr(err)
            .status()
            .expect("spawn guard");
        assert_eq!(status.code(), Some(4));
        let log = std::fs::read_to_string(&path).expect("read the log");
        let lines: Vec<&str> = log
            .lines()
            .take_while(|l| !l.starts_with("guard"))
            .collect();
        let want: Vec<String> = (1..=8)
            .flat_map(|i| [format!("out{i}"), format!("err{i}")])
            .collect();
        assert_eq!(lines, want, "{mode:?}:\n{log}");
        // guard's summary after the command's output, not over it.
        assert!(
            log.contains("guard: session summary") && log.contains("refused.example.org:443"),
            "{mode:?}:\n{log}"
        );
    }
}

#[test]
fn project_writes_land_and_everything_else_is_private_or_refused() {
    for mode in modes() {
        let env = Env::new(mode);
        let home_file = env.home.write("keep.txt", "original");
        env.own();
        let marker = canary("tmp");
        let out = env.sh(&format!(
            "echo made > created.txt
             echo private > \"$HOME/new-in-home\" && echo home_write=ok
             echo x > \"$HOME/keep.txt\" 2>/dev/null; echo home_keep=$(cat \"$HOME/keep.txt\" 2>&1)
             echo x > /etc/guard-test 2>&1; echo x > /usr/guard-test 2>&1
             echo {marker} > /tmp/{marker} && echo tmp_write=ok
             touch /guard-root-test 2>&1; echo done"
        ));
        out.expect_code(0);
        assert_eq!(
            std::fs::read_to_string(env.project.join("created.txt")).unwrap(),
            "made\n"
        );
        // $HOME inside is private and empty: writes stay inside.
        assert_eq!(out.field("home_write").as_deref(), Some("ok"));
        assert!(
            out.stdout.contains("home_keep=cat:") || out.stdout.contains("home_keep=x"),
            "{}",
            out.stdout
        );
        assert!(
            !env.home.join("new-in-home").exists(),
            "home write reached the host"
        );
        assert_eq!(std::fs::read_to_string(&home_file).unwrap(), "original");
        // System directories are read-only mounts.
        assert!(
            out.stderr
                .contains("/etc/guard-test: Read-only file system"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains("/usr/guard-test: Read-only file system"),
            "{}",
            out.stderr
        );
        assert!(
            out.stdout
                .contains("/guard-root-test': Read-only file system"),
            "{}",
            out.all()
        );
        assert!(!std::path::Path::new("/etc/guard-test").exists());
        // /tmp is private.
        assert_eq!(out.field("tmp_write").as_deref(), Some("ok"));
        assert!(
            !std::path::Path::new(&format!("/tmp/{marker}")).exists(),
            "sandbox /tmp reached the host"
        );
    }
}

#[test]
fn host_tmp_and_home_are_invisible() {
    for mode in modes() {
        let env = Env::new(mode);
        let secret = canary("home");
        env.home.write("secret.txt", &secret);
        env.own();
        let host_tmp = format!("/tmp/guard-core-visible-{}", std::process::id());
        std::fs::write(&host_tmp, &secret).unwrap();
        let out = env.sh(&format!(
            "ls -A \"$HOME\"; cat \"$HOME/secret.txt\" 2>&1; cat {host_tmp} 2>&1; ls /tmp"
        ));
        let _ = std::fs::remove_file(&host_tmp);
        out.expect_code(0);
        assert!(
            out.stdout.contains("secret.txt: No such file or directory"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .contains(&format!("{host_tmp}: No such file or directory")),
            "{}",
            out.stdout
        );
        out.assert_no_canary(&secret);
    }
}

#[test]
fn proc_shows_only_the_sandbox_and_hides_the_supervisor_environment() {
    for mode in modes() {
        let env = Env::new(mode);
        let secret = canary("env");
        let out = common::Outcome::from(
            env.guard(&[
                "run",
                "--",
                "sh",
                "-c",
                "echo pids=$(ls -d /proc/[0-9]* | wc -l); cat /proc/1/environ 2>&1; echo; \
                 for p in /proc/[0-9]*; do cat $p/environ 2>/dev/null; done; env; echo host=$(ls /proc | grep -c ^$PPID_HOST$)",
            ])
            .env("GUARD_TEST_SECRET", &secret)
            .env("PPID_HOST", std::process::id().to_string())
            .output()
            .unwrap(),
        );
        out.expect_code(0);
        // pid 1 (guard's init), sh, and the few commands of the pipeline.
        let pids: usize = out.field("pids").unwrap().trim().parse().unwrap();
        assert!(
            pids <= 6,
            "too many processes visible: {pids}\n{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("/proc/1/environ: Permission denied"),
            "{}",
            out.stdout
        );
        out.assert_no_canary(&secret);
    }
}

#[test]
fn no_network_but_loopback() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let secret = canary("net");
    let greeting = secret.clone();
    std::thread::spawn(move || {
        for s in server.incoming().flatten() {
            use std::io::Write;
            let _ = (&s).write_all(greeting.as_bytes());
        }
    });
    for mode in modes() {
        let env = Env::new(mode);
        let out = env.sh(&format!(
            "{}; cat /proc/net/dev | tail -n +3 | cut -d: -f1",
            py(&format!(
                "import socket,errno\ns=socket.socket()\ntry:\n  s.connect((\"127.0.0.1\",{port})); print(\"connected\", s.recv(100))\nexcept OSError as e: print(\"errno=%d\" % e.errno)"
            ))
        ));
        out.expect_code(0);
        assert_eq!(
            out.field("errno").as_deref(),
            Some("111"),
            "expected ECONNREFUSED\n{}",
            out.all()
        );
        let ifaces: Vec<&str> = out.stdout.lines().skip(1).map(str::trim).collect();
        assert_eq!(ifaces, ["lo"], "{}", out.stdout);
        out.assert_no_canary(&secret);
    }
}

#[test]
fn dangerous_calls_fail_with_eperm() {
    let script = r#"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(*args)
    print("%s=%d" % (name, ctypes.get_errno() if r == -1 else 0))
call("io_uring_setup", 425, 8, ctypes.byref(ctypes.create_string_buffer(120)))
call("bpf", 321, 0, 0, 0)
call("unshare_user", 272, 0x10000000)
call("mount", 165, b"none", b"/tmp", b"tmpfs", 0, 0)
call("clone3", 435, 0, 0)
"#;
    for mode in modes() {
        let env = Env::new(mode);
        env.project.write("calls.py", script);
        env.own();
        let out = env.run(&["run", "--", "python3", "calls.py"]);
        out.expect_code(0);
        for name in ["io_uring_setup", "bpf", "unshare_user", "mount"] {
            assert_eq!(
                out.field(name).as_deref(),
                Some("1"),
                "{name} not EPERM\n{}",
                out.all()
            );
        }
        assert_eq!(
            out.field("clone3").as_deref(),
            Some("38"),
            "clone3 not ENOSYS\n{}",
            out.all()
        );
    }
}

#[test]
fn terminal_injection_is_blocked_under_a_pty() {
    let script = py(
        "import fcntl,termios,sys\ntry:\n  fcntl.ioctl(0, termios.TIOCSTI, b\"x\"); print(\"tiocsti=ok\")\nexcept OSError as e: print(\"tiocsti=%d\" % e.errno)",
    );
    for mode in modes() {
        let env = Env::new(mode);
        let out = env.pty(
            json!([{"expect": "tiocsti="}]),
            &["run", "--", "sh", "-c", &script],
        );
        out.expect_code(0);
        assert!(
            out.stdout.contains("tiocsti=1"),
            "TIOCSTI not EPERM:\n{}",
            out.stdout
        );
    }
}

/// In a terminal, scripts open their streams again by name (`> /dev/stderr`,
/// `tee /dev/stdout`): a reopen of the host's terminal through
/// /proc/self/fd, which Landlock refused (EACCES) when no rule covered it.
#[test]
fn the_terminal_can_be_opened_again_by_name() {
    for mode in modes() {
        let env = Env::new(mode);
        let out = env.pty(
            json!([{"expect": "done="}]),
            &[
                "run",
                "--",
                "sh",
                "-c",
                "echo via-stderr > /dev/stderr && echo via-tee | tee /dev/stderr >/dev/null && echo done=1",
            ],
        );
        out.expect_code(0);
        for want in ["via-stderr", "via-tee", "done=1"] {
            assert!(
                out.stdout.contains(want),
                "{mode:?}: {want}:\n{}",
                out.stdout
            );
        }
        assert!(!out.stdout.contains("Permission denied"), "{}", out.stdout);
    }
}

/// The command can leave the terminal writing concealed text (or black on
/// black, the cursor hidden): guard's warnings after the run were printed
/// that way, invisible. guard resets the rendition before it speaks.
#[test]
fn guards_warnings_after_the_run_are_visible() {
    for mode in modes() {
        let env = Env::new(mode);
        let out = env.pty(
            json!([{"expect": "moved it"}]),
            &[
                "run",
                "--",
                "sh",
                "-c",
                "touch .envrc; printf 'done\\033[8m\\033[30;40m\\033[?25l'",
            ],
        );
        out.expect_code(0);
        let t = &out.stdout;
        let hidden = t
            .rfind("\x1b[8m")
            .expect("the command's escape reached the terminal");
        let warning = t.find("moved it").expect("guard's warning");
        let reset = t[hidden..].find("\x1b[0m").map(|i| hidden + i);
        assert!(
            reset.is_some_and(|r| r < warning),
            "{mode:?}: no reset between the command's concealment and guard's warning:\n{t:?}"
        );
    }
}

#[test]
fn command_holds_no_capabilities_and_all_layers_are_active() {
    for mode in modes() {
        let env = Env::new(mode);
        let out = env
            .sh("grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; touch /dev/guard-x 2>&1");
        out.expect_code(1);
        for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            let line = out
                .stdout
                .lines()
                .find(|l| l.starts_with(field))
                .unwrap_or_else(|| panic!("{field}"));
            assert!(line.ends_with("0000000000000000"), "{line}");
        }
        assert!(out.stdout.contains("NoNewPrivs:\t1"), "{}", out.stdout);
        assert!(out.stdout.contains("Seccomp:\t2"), "{}", out.stdout);
        // /dev is a writable tmpfs as far as mounts go; only Landlock stops
        // this create, with EACCES (a mount would say "Read-only").
        assert!(
            out.stdout.contains("/dev/guard-x': Permission denied"),
            "Landlock not active?\n{}",
            out.all()
        );
    }
}

#[test]
fn ctrl_c_stops_the_command_and_guard_exits_130() {
    for mode in modes() {
        let env = Env::new(mode);
        let marker = format!("guard-ctrlc-{}-{:?}", std::process::id(), mode);
        let out = env.pty(
            json!([{"expect": "ready"}, {"sleep": 0.2}, {"send": "\u{3}"}]),
            &[
                "run",
                "--",
                "sh",
                "-c",
                &format!("echo ready; sleep 300; : {marker}"),
            ],
        );
        out.expect_code(130);
        assert!(pgrep(&marker).is_empty(), "a sandbox process survived");
    }
}

#[test]
fn interactive_bash_job_control_and_resize() {
    for mode in modes() {
        let env = Env::new(mode);
        let out = env.pty(
            json!([
                {"expect": "[$#] $"},
                {"send": "echo $((6*7))\r"}, {"expect": "42"},
                {"send": "sleep 100 &\r"}, {"expect": "\\[1\\]"},
                {"send": "jobs\r"}, {"expect": "Running"},
                {"send": "kill %1\r"},
                {"send": "sleep 200\r"}, {"sleep": 0.3}, {"send": "\u{3}"},
                {"send": "echo after-ctrl-c\r"}, {"expect": "after-ctrl-c\r\n"},
                {"resize": [33, 101]},
                {"send": "stty size\r"}, {"expect": "33 101"},
                {"send": "exit 5\r"}
            ]),
            &["run", "--", "bash", "--norc", "-i"],
        );
        out.expect_code(5);
    }
}

/// The terminal's modes as `stty -a` shows these three: `echo icanon opost`
/// or their `-` forms.
const SHOW_MODES: &str = "stty -a | tr -s ' ;\\r\\n' '\\n' | grep -x -e echo -e -echo -e icanon -e -icanon -e opost -e -opost | sort | tr '\\n' ' '; echo :modes";

/// A command that leaves the terminal raw and without echo (`stty raw
/// -echo`, a TUI that crashed, a hostile one) does not leave the user's
/// shell that way: guard puts back the modes it started with. Started in
/// the background, guard leaves the terminal to the foreground job: a mode
/// that job set meanwhile stays.
#[test]
fn the_terminal_modes_are_put_back_after_the_session() {
    for mode in modes() {
        let env = Env::new(mode);
        let out = env.pty_script(
            json!([{"expect": ":modes"}]),
            &format!("\"$@\" run -q -- sh -c 'stty raw -echo -opost'; {SHOW_MODES}"),
        );
        out.expect_code(0);
        assert!(
            out.stdout.contains("echo icanon opost :modes"),
            "the terminal was left changed:\n{}",
            out.stdout
        );
        let out = env.pty_script(
            json!([{"expect": ":modes"}]),
            &format!(
                "set -m; \"$@\" run -q -- sleep 1 & sleep 0.3; stty -echo; wait; {SHOW_MODES}"
            ),
        );
        out.expect_code(0);
        assert!(
            out.stdout.contains("-echo icanon opost :modes"),
            "a guard in the background changed the foreground job's terminal:\n{}",
            out.stdout
        );
    }
}

/// Hole: guard put in the background by the user (Ctrl-Z, then `bg`, to
/// go on working in the shell) took the terminal back from the shell when
/// its command ended, and put its start modes over the shell's: guard
/// exited with the terminal left to its own, now empty, process group,
/// and the interactive shell, reading a terminal it no longer had, got
/// EIO and exited (the user's shell gone). Now a guard in the background
/// leaves the terminal, its modes and its input to the foreground job.
#[test]
fn a_guard_put_in_the_background_leaves_the_terminal_to_the_shell() {
    for mode in modes() {
        let env = Env::new(mode);
        let out = env.pty_script(
            json!([
                {"expect": "\\$ $"},
                // Quotes split the markers: the typed line never matches.
                {"send": "\"$@\" run -q -- sh -c 'echo :start''ed; sleep 2; echo :end''ing'\r"},
                {"expect": ":started\r\n"},
                {"sleep": 0.3},
                {"send": "\u{1a}"},
                {"expect": "Stopped"},
                {"send": "bg\r"},
                // The shell waits at its prompt, reading the terminal, as
                // guard ends.
                {"expect": ":ending"},
                {"sleep": 1.5},
                {"send": "echo still-$((2+2))\r"},
                {"expect": "still-4", "timeout": 20},
                {"send": "exit\r"},
            ]),
            "PS1='$ ' exec bash --norc --noprofile -i -s \"$@\"",
        );
        out.expect_code(0);
    }
}

/// Hole: guard started in the background discarded, as it ended, the
/// terminal's unread input (meant to drop what the terminal answered the
/// command): that was what the user had typed to the foreground job
/// meanwhile. Now only a guard in the foreground discards it.
#[test]
fn a_guard_in_the_background_leaves_what_the_user_types_to_the_foreground_job() {
    for mode in modes() {
        let env = Env::new(mode);
        let out = env.pty_script(
            json!([{"expect": ":ready"}, {"send": "typed-ahead\r"}, {"expect": "got=typed-ahead"}]),
            "set -m; \"$@\" run -q -- sleep 1 & sleep 0.2; echo :ready; wait $!; read -r x; echo got=$x",
        );
        out.expect_code(0);
    }
}

#[test]
fn vim_and_top_work_in_a_terminal() {
    for mode in modes() {
        let env = Env::new(mode);
        let out = env.pty(
            // Typed once vim has drawn the new file's name (which it
            // does after taking the terminal), not after a fixed time.
            json!([{"expect": "\\[New"}, {"send": "ihello from vim\u{1b}:wq\r"}]),
            &["run", "--", "vim", "-u", "NONE", "-N", "note.txt"],
        );
        out.expect_code(0);
        assert_eq!(
            std::fs::read_to_string(env.project.join("note.txt")).unwrap(),
            "hello from vim\n"
        );
        let top = env.pty(
            json!([{"expect": "PID"}, {"send": "q"}]),
            &["run", "--", "top"],
        );
        top.expect_code(0);
    }
}

#[test]
fn killing_the_supervisor_kills_the_sandbox() {
    for mode in modes() {
        let env = Env::new(mode);
        let marker = format!("guard-orphan-{}-{:?}", std::process::id(), mode);
        let mut child = env
            .guard(&["run", "--", "sh", "-c", &format!("sleep 300; : {marker}")])
            .spawn()
            .unwrap();
        let start = Instant::now();
        while pgrep(&marker).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "sandbox never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // In Unprivileged mode `child` is setpriv, which exec'ed guard: same pid.
        nix_kill(child.id() as i32, libc::SIGKILL);
        let _ = child.wait();
        let start = Instant::now();
        while !pgrep(&marker).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "sandbox survived its supervisor: {:?}",
                pgrep(&marker)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn sigterm_to_guard_reaches_the_command() {
    for mode in modes() {
        let env = Env::new(mode);
        let mut child = env
            .guard(&[
                "run",
                "--",
                "sh",
                "-c",
                "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        std::io::Read::read_exact(&mut stdout, &mut buf).unwrap();
        assert_eq!(&buf, b"ready\n");
        nix_kill(child.id() as i32, libc::SIGTERM);
        let status = child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        assert_eq!(status.code(), Some(7), "{rest}");
        assert!(rest.contains("got-term"));
    }
}

#[test]
fn bad_profile_is_a_clear_error() {
    let env = Env::new(Mode::Invoker);
    let p = env.project.write(
        "bad.toml",
        "version = 1\n[filesystem]\nread = [\"/usr\"]\nwrite = 3\n",
    );
    let out = env.run(&["run", "-p", p.to_str().unwrap(), "--", "true"]);
    out.expect_code(125);
    assert!(out.stderr.contains("bad.toml:4:9"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));
    let out = env.run(&["run", "-p", "no-such-profile", "--", "true"]);
    out.expect_code(125);
    assert!(
        out.stderr.contains("built-in profiles: default"),
        "{}",
        out.stderr
    );
}

#[test]
fn explain_prints_the_plan_without_running() {
    let env = Env::new(Mode::Invoker);
    let out = env.run(&["explain", "--", "touch", "should-not-exist"]);
    out.expect_code(0);
    assert!(!env.project.join("should-not-exist").exists());
    for needle in [
        "mount plan",
        "bind rw",
        "landlock",
        "seccomp",
        "TIOCSTI",
        "environment:",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle} missing:\n{}",
            out.stdout
        );
    }
}

#[test]
fn check_reports_every_layer() {
    let env = Env::new(Mode::Invoker);
    let out = env.run(&["check"]);
    out.expect_code(0);
    for layer in [
        "user namespace",
        "mount namespace",
        "net namespace",
        "landlock",
        "seccomp",
        "full sandbox",
    ] {
        assert!(
            out.stdout.contains(&format!("ok       {layer}")),
            "{layer}:\n{}",
            out.stdout
        );
    }
}

fn nix_kill(pid: i32, sig: i32) {
    // SAFETY: sending a signal to a child process we spawned.
    unsafe { libc::kill(pid, sig) };
}

#[test]
fn bad_options_are_usage_errors_with_125() {
    for mode in modes() {
        let env = Env::new(mode);
        for args in [
            &["run", "--isolation", "weak", "--", "true"][..],
            &["run", "--no-such-option", "--", "true"][..],
        ] {
            let r = env.run(args);
            r.expect_code(125);
            assert!(r.stderr.contains("error:"), "{args:?}: {}", r.all());
        }
        env.run(&["--version"]).expect_code(0);
    }
}
