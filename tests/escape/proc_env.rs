//! Environment and /proc: the supervisor's secrets must not be readable
//! through the command's environment or through any /proc file, and /proc
//! must show only the sandbox's own processes.

use crate::support::{Expect, basename, each_mode, errno::*};

/// The supervisor holds a secret-looking variable; the command's own
/// environment (`os.environ` and /proc/self/environ) does not carry it.
#[test]
fn supervisor_env_not_in_command_environment() {
    each_mode(|case| {
        let out = case.python(&format!(
            r#"
out("var", os.environ.get("{var}", "absent"))
raw = open("/proc/self/environ", "rb").read()
out("environ_read", int(len(raw) > 0 and b"PATH=" in raw))
print(raw.replace(b"\0", b"\n").decode(errors="replace"))
for k, v in sorted(os.environ.items()):
    print("env", k, v)
"#,
            var = crate::support::ENV_CANARY_VAR
        ));
        out.fields(&[("var", "absent"), ("environ_read", "1")]);
        let sh = case.sh("env; echo ran=1");
        sh.ran();
        assert!(
            !sh.stdout.contains(crate::support::ENV_CANARY_VAR),
            "variable passed in:\n{}",
            sh.stdout
        );
    });
}

/// pid 1 of the sandbox descends from the supervisor; its environ is not
/// readable (not dumpable, no CAP_SYS_PTRACE) and was emptied anyway.
#[test]
fn pid1_environ_unreadable() {
    each_mode(|case| {
        case.python(
            r#"
out("pid1_environ", err(lambda: open("/proc/1/environ", "rb").read()))
out("pid1_status_readable", int(b"Name:" in open("/proc/1/status", "rb").read()))
"#,
        )
        .fields(&[("pid1_environ", EACCES), ("pid1_status_readable", "1")]);
    });
}

/// Every process visible in /proc: its environ is either unreadable or free
/// of the canary (the content is printed so the leak check scans it).
#[test]
fn every_proc_environ_is_clean() {
    each_mode(|case| {
        let out = case.python(
            r#"
import subprocess
child = subprocess.Popen(["sleep", "5"])
readable = 0
for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
    for name in ("environ", "task/%d/environ" % pid):
        try:
            data = open("/proc/%d/%s" % (pid, name), "rb").read()
            readable += 1
            print("pid", pid, name, data.replace(b"\0", b" ").decode(errors="replace"))
        except OSError as e:
            print("pid", pid, name, "errno", e.errno)
child.kill()
out("readable", int(readable >= 2))
"#,
        );
        out.fields(&[("readable", "1")]);
    });
}

/// /proc/1/cmdline is readable, shows guard's internal entry point, and
/// carries no secret.
#[test]
fn pid1_cmdline_carries_no_secret() {
    each_mode(|case| {
        let out = case.python(
            r#"
cmd = open("/proc/1/cmdline", "rb").read().split(b"\0")
print("cmdline", cmd)
out("internal_entry", int(b"__sandbox" in cmd))
for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
    print("pid", pid, open("/proc/%d/cmdline" % pid, "rb").read().replace(b"\0", b" "))
"#,
        );
        out.fields(&[("internal_entry", "1")]);
    });
}

/// /proc lists only the sandbox's processes: not the test runner, not a host
/// process started for the test, not the supervisor.
#[test]
fn proc_shows_only_sandbox_pids() {
    each_mode(|case| {
        let mut host = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("start a host process");
        let runner = std::process::id();
        let hostpid = host.id();
        // Sandbox pids start at 1; a tiny host pid could collide by number.
        assert!(
            runner > 64 && hostpid > 64,
            "host pids too small to tell apart: {runner} {hostpid}"
        );
        let out = case.python(&format!(
            r#"
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out("pids", ",".join(map(str, pids)))
out("count_small", int(len(pids) <= 4))
out("runner", err(os.stat, "/proc/{runner}"))
out("host", err(os.stat, "/proc/{hostpid}"))
# guard's own (host) pid must not show up in pid 1's command line.
nums = [int(a) for a in open("/proc/1/cmdline", "rb").read().split(b"\0") if a.isdigit()]
out("host_pid_in_cmdline", int(any(n > 64 for n in nums)))
for pid in pids:
    print("cmd", pid, open("/proc/%d/cmdline" % pid, "rb").read())
"#
        ));
        let _ = host.kill();
        let _ = host.wait();
        out.fields(&[
            ("count_small", "1"),
            ("runner", ENOENT),
            ("host", ENOENT),
            ("host_pid_in_cmdline", "0"),
        ]);
        assert!(
            !out.stdout.contains("setpriv") && !out.stdout.contains("/target/"),
            "host processes visible:\n{}",
            out.stdout
        );
    });
}

/// /proc/1/mem (pid 1 is not dumpable) cannot be opened for reading or
/// writing; the command's own memory stays readable (control).
#[test]
fn proc_1_mem_unreadable() {
    each_mode(|case| {
        case.python(
            r#"
out("mem_ro", err(os.open, "/proc/1/mem", os.O_RDONLY))
out("mem_rw", err(os.open, "/proc/1/mem", os.O_RDWR))
out("maps", err(lambda: open("/proc/1/maps").read()))
buf = ctypes.create_string_buffer(b"selfcheck")
fd = os.open("/proc/self/mem", os.O_RDONLY)
out("self_mem", int(os.pread(fd, 9, ctypes.addressof(buf)) == b"selfcheck"))
"#,
        )
        .fields(&[
            ("mem_ro", EACCES),
            ("mem_rw", EACCES),
            ("maps", EACCES),
            ("self_mem", "1"),
        ]);
    });
}

/// /proc/self/root is the sandbox's root; /proc/1/root cannot be followed;
/// neither leads to host files.
#[test]
fn proc_root_links_lead_nowhere() {
    each_mode(|case| {
        let home_secret = case.home_secret.display().to_string();
        let tmp_secret = case.host_tmp_secret.display().to_string();
        case.python(&format!(
            r#"
out("self_root", os.readlink("/proc/self/root"))
out("same_listing", int(sorted(os.listdir("/proc/self/root")) == sorted(os.listdir("/"))))
out("pid1_root", err(os.readlink, "/proc/1/root"))
out("pid1_root_list", err(os.listdir, "/proc/1/root/"))
out("via_self_home", err(os.stat, "/proc/self/root{home_secret}"))
out("via_self_tmp", err(os.stat, "/proc/self/root{tmp_secret}"))
out("via_self_dotdot", err(os.stat, "/proc/self/root/../../../..{tmp_secret}"))
out("via_pid1_tmp", err(os.stat, "/proc/1/root{tmp_secret}"))
out("via_thread_self", err(os.stat, "/proc/thread-self/root{home_secret}"))
"#
        ))
        .fields(&[
            ("self_root", "/"),
            ("same_listing", "1"),
            ("pid1_root", EACCES),
            ("pid1_root_list", EACCES),
            ("via_self_home", ENOENT),
            ("via_self_tmp", ENOENT),
            ("via_self_dotdot", ENOENT),
            ("via_pid1_tmp", EACCES),
            ("via_thread_self", ENOENT),
        ]);
    });
}

/// /proc/PID/cwd: the command's is the project, whose parent inside is the
/// private /tmp (the host's siblings are not there); pid 1's is closed.
#[test]
fn proc_cwd_leads_nowhere() {
    each_mode(|case| {
        let name = basename(&case.host_tmp_secret);
        let project = case.project().display().to_string();
        case.python(&format!(
            r#"
import subprocess
child = subprocess.Popen(["sleep", "5"])
out("self_cwd", os.readlink("/proc/self/cwd"))
out("sibling", err(os.stat, "/proc/self/cwd/../{name}"))
out("child_sibling", err(os.stat, "/proc/%d/cwd/../../tmp/{name}" % child.pid))
out("pid1_cwd", err(os.readlink, "/proc/1/cwd"))
out("pid1_cwd_list", err(os.listdir, "/proc/1/cwd/"))
child.kill()
"#
        ))
        .fields(&[
            ("self_cwd", &project),
            ("sibling", ENOENT),
            ("child_sibling", ENOENT),
            ("pid1_cwd", EACCES),
            ("pid1_cwd_list", EACCES),
        ]);
    });
}
