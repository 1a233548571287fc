//! Resource abuse and persistence of processes: whatever the command
//! starts dies with the sandbox (pid namespace teardown, parent-death
//! signals), a bounded fork bomb leaves the host responsive, and what the
//! kernel counts per user (tmpfs memory, inotify) leaves the user outside
//! their share.
//!
//! The process limit (`[limits] processes`) does not apply when guard runs
//! as root, and guard sets no memory limit on processes: the bomb here is
//! bounded (a fixed count; every child also exits by alarm(60)) so the
//! suite cannot harm the machine it runs on.

use crate::common::{Outcome, pgrep};
use crate::support::{Case, Expect, each_mode, each_mode_alone};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A marker unique to this run, put in the command lines of the processes
/// a test starts, so the host can find them (like `pgrep -f`).
fn marker(tag: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("guard-escape-{tag}-{}-{n}", std::process::id())
}

/// Guard started in the background; its stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(case: &Case, script: &str) -> Running {
        let mut child = case
            .guard(&["run", "--", "sh", "-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn guard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait for a `key=value` line; its value.
    fn wait_for(&mut self, key: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(v) = line.strip_prefix(&format!("{key}=")) {
                        return v.to_string();
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no {key}= line within {timeout:?}; output so far:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Wait for guard to exit (killing it after `timeout`); its Outcome.
    fn finish(mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for guard") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "guard did not exit within {timeout:?}:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        use std::os::unix::process::ExitStatusExt;
        Outcome {
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: self.seen.join("\n") + "\n",
            stderr,
        }
    }
}

/// A test that failed midway still ends its sandbox: a fork bomb left
/// behind holds its uid's processes, which other tests' sandboxes need.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll until no host process carries `marker` (up to `timeout`); the pids
/// still alive at the end.
fn survivors(marker: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = pgrep(marker);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const BOMB: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* bomb MARKER N: fork N children that sleep (each exits by itself after 60 s),
 * report, linger until the host has looked (it writes `looked`; 40 s at most:
 * a fixed time could end before a loaded host has counted), then exit
 * without waiting. */
int main(int argc, char **argv) {
    int n = atoi(argv[2]), made = 0, err = 0;
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) { alarm(60); pause(); _exit(0); }
        if (p < 0) { err = errno; break; }
        made++;
    }
    printf("fork_errno=%d\nforked=%d\n", err, made);
    fflush(stdout);
    for (int i = 0; i < 400 && access("looked", F_OK) != 0; i++)
        usleep(100000);
    return 0;
}
"#;

/// `[limits] processes` of the default profile.
const PROFILE_PROCESS_LIMIT: usize = 4096;

/// A bounded fork bomb (10,000 sleeping processes): while it runs the host
/// still starts processes quickly; when the command exits, every one of
/// them is gone (the pid namespace dies with its init).
#[test]
fn fork_bomb_contained() {
    const N: usize = 10_000;
    each_mode_alone(|case| {
        let m = marker("bomb");
        case.write("bomb.c", BOMB);
        let mut run = Running::start(
            &case,
            &format!("cc -O0 -o bomb bomb.c && echo ran=1 && exec ./bomb {m} {N}"),
        );
        assert_eq!(run.wait_for("ran", Duration::from_secs(60)), "1");
        let forked: usize = run
            .wait_for("forked", Duration::from_secs(120))
            .parse()
            .expect("count");
        // The host, mid-bomb: it can still start a process, promptly.
        let t = Instant::now();
        let ok = std::process::Command::new("true")
            .status()
            .is_ok_and(|s| s.success());
        let latency = t.elapsed();
        let alive = pgrep(&m).len();
        std::fs::write(case.project().join("looked"), "").expect("tell the bomb");
        let out = run.finish(Duration::from_secs(120));
        case.assert_no_leak(&out);
        eprintln!(
            "forked {forked} of {N} ({}); {alive} marked processes on the host; host `true` took {latency:?}",
            out.field("fork_errno").unwrap_or_default()
        );
        assert!(forked >= 100, "the bomb did not run:\n{}", out.all());
        if case.sandbox_uid() != 0 {
            // The profile's process limit (RLIMIT_NPROC, counted in the
            // sandbox's user namespace) stops the bomb with EAGAIN.
            assert_eq!(
                out.get("fork_errno"),
                "11",
                "no process limit stopped the bomb"
            );
            assert!(
                forked < PROFILE_PROCESS_LIMIT,
                "{forked} processes despite the limit"
            );
        } else {
            // The kernel exempts the host's uid 0 from RLIMIT_NPROC: as
            // root, guard has no process limit (reported; the bomb here is
            // bounded, a real one would exhaust kernel.pid_max).
            eprintln!("note: guard as root: no process limit (forked {forked})");
        }
        assert!(
            alive >= forked,
            "the host saw {alive} of {forked} processes"
        );
        assert!(
            ok && latency < Duration::from_secs(2),
            "the host was not responsive: {latency:?}"
        );
        out.expect_code(0);
        let left = survivors(&m, Duration::from_secs(0));
        assert!(
            left.is_empty(),
            "{} bomb processes outlived guard: {:?}",
            left.len(),
            &left[..left.len().min(10)]
        );
    });
}

/// A daemon (setsid, SIGHUP/SIGTERM ignored, left running when the command
/// exits) must be gone when guard returns: a process that outlives guard
/// can still write the project after the user's shell has resumed (and
/// after any post-run check). Whether it is still there is a race, so the
/// run is repeated; one survivor fails the test. (Both daemons end by
/// themselves: sleep 60, and a CPU limit of 20 s on the busy one.)
/// `--no-network`: with egress on, stopping the proxy gracefully happens to
/// delay guard's exit long enough to hide the race.
#[test]
fn daemon_dies_with_sandbox() {
    const RUNS: usize = 20;
    each_mode(|case| {
        let mut survived = Vec::new();
        for _ in 0..RUNS {
            let m = marker("daemon");
            let script = format!(
                r#"
setsid sh -c 'trap "" HUP TERM INT; sleep 60; : {m}' </dev/null >/dev/null 2>&1 &
setsid sh -c 'trap "" HUP TERM INT; ulimit -t 20; while :; do :; done; : {m}' </dev/null >/dev/null 2>&1 &
sleep 0.05
for p in /proc/[0-9]*; do grep -qs '{m}' $p/cmdline && echo daemon=running; done
echo ran=1
"#
            );
            let out = case.run(&["run", "--no-network", "--", "sh", "-c", &script]);
            // Checked at once: guard has returned, so nothing may be left.
            let left = pgrep(&m);
            out.ran().fields(&[("daemon", "running")]);
            if !left.is_empty() {
                let states: Vec<String> = left.iter().map(|p| process_state(p)).collect();
                survived.push(format!("{left:?} in state {states:?}"));
            }
            assert!(
                survivors(&m, Duration::from_secs(10)).is_empty(),
                "the daemon never died"
            );
        }
        assert!(
            survived.is_empty(),
            "the daemon outlived guard in {} of {RUNS} runs: {survived:?}",
            survived.len()
        );
    });
}

/// The state letter of a host process (R running, S sleeping, Z zombie ...).
fn process_state(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("?").to_string())
        })
        .unwrap_or_else(|| "gone".into())
}

/// Killing the supervisor with SIGKILL (no chance to clean up) takes the
/// whole sandbox with it: parent-death signals reach the setup process and
/// pid 1, and pid 1's death ends the namespace.
#[test]
fn sandbox_dies_with_supervisor() {
    each_mode(|case| {
        let m = marker("orphan");
        let mut run = Running::start(
            &case,
            &format!(
                "sh -c 'sleep 60; : {m}' & sh -c 'trap \"\" HUP TERM; sleep 60; : {m}' & echo ran=1; wait"
            ),
        );
        assert_eq!(run.wait_for("ran", Duration::from_secs(30)), "1");
        let guard_pid = run.child.id();
        let before = pgrep(&m)
            .iter()
            .filter(|p| **p != guard_pid.to_string())
            .count();
        // The supervisor: guard itself (setpriv execs it, keeping the pid).
        // SAFETY: the pid is our own child, not yet reaped.
        unsafe { libc::kill(guard_pid as libc::pid_t, libc::SIGKILL) };
        let out = run.finish(Duration::from_secs(30));
        case.assert_no_leak(&out);
        assert_eq!(out.code, 128 + libc::SIGKILL, "{}", out.all());
        assert!(
            before >= 2,
            "the sandboxed processes were not running ({before})"
        );
        let left = survivors(&m, Duration::from_secs(5));
        assert!(
            left.is_empty(),
            "sandbox processes outlived the supervisor: {left:?}"
        );
    });
}

/// Memory a tmpfs holds is charged to no process: filled, it makes the
/// kernel's OOM killer kill the user's other programs, not the sandbox.
/// /tmp, /var/tmp, /dev/shm, the empty home and /dev were five tmpfs of
/// the kernel's default size (half the RAM each), so a sandbox could pin two
/// and a half times the machine's memory. They are now directories of one
/// tmpfs of at most half the RAM: filling one leaves nothing for the others.
#[test]
fn writable_tmpfs_share_one_budget_of_at_most_half_the_ram() {
    let mem_total_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .expect("read /proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal in /proc/meminfo");
    each_mode(|case| {
        let out = case.python(
            r#"
home = os.environ["HOME"]
places = ["/tmp", "/var/tmp", "/dev/shm", home, "/dev"]
out("devices", len({os.stat(p).st_dev for p in places}))
out("sizes", len({os.statvfs(p).f_blocks * os.statvfs(p).f_frsize for p in places}))
v = os.statvfs("/tmp")
out("kib", v.f_blocks * v.f_frsize // 1024)
# Written in one place, the space is gone in the others.
before = os.statvfs("/dev/shm").f_bfree
with open("/tmp/filler", "wb") as f:
    f.write(b"x" * (8 << 20))
out("shared", int(os.statvfs("/dev/shm").f_bfree < before))
"#,
        );
        out.ran();
        out.expect_code(0);
        out.fields(&[("devices", "1"), ("sizes", "1"), ("shared", "1")]);
        let kib: u64 = out
            .field("kib")
            .and_then(|k| k.parse().ok())
            .expect("the size of /tmp");
        assert!(
            kib <= mem_total_kib / 2 + 4,
            "the sandbox's tmpfs may hold {kib} KiB, more than half of {mem_total_kib} KiB of RAM"
        );
    });
}

/// An inotify instance or watch made inside counts against the user
/// outside too (the kernel charges a user namespace's owner for it): a
/// sandbox that took all of them (128 instances by default) left the
/// user's editor, file manager and desktop unable to watch files for as
/// long as it ran. The sandbox's namespace now gets half of each limit.
#[test]
fn inotify_instances_leave_the_user_outside_their_share() {
    let limit = |name: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/sys/user/{name}"))
            .unwrap_or_else(|e| panic!("read /proc/sys/user/{name}: {e}"))
            .trim()
            .parse()
            .expect("a number")
    };
    let (instances_max, watches_max) =
        (limit("max_inotify_instances"), limit("max_inotify_watches"));
    each_mode(|case| {
        case.write_python(
            r#"
import time
fds = []
while len(fds) < 1_000_000:
    fd = _libc.inotify_init1(0)
    if fd < 0:
        out("errno", errno.errorcode.get(ctypes.get_errno(), "?"))
        break
    fds.append(fd)
out("instances", len(fds))
out("watches_limit", open("/proc/sys/user/max_inotify_watches").read().strip())
out("raise", err(lambda: open("/proc/sys/user/max_inotify_instances", "w").write("100000")))
out("held", 1)
while not os.path.exists("release"):
    time.sleep(0.02)
"#,
        );
        let mut running = Running::start(&case, "exec python3 attack.py");
        assert_eq!(running.wait_for("held", Duration::from_secs(30)), "1");
        // While the sandbox holds all it may, the user outside (same uid)
        // can still make one.
        let probe = "import ctypes; print(ctypes.CDLL(None).inotify_init1(0))";
        let mut host = match case.mode() {
            crate::common::Mode::Invoker => std::process::Command::new("/usr/bin/python3"),
            crate::common::Mode::Unprivileged => {
                let mut c = std::process::Command::new("setpriv");
                let id = crate::common::NOBODY.to_string();
                c.args([
                    &format!("--reuid={id}"),
                    &format!("--regid={id}"),
                    "--clear-groups",
                ])
                .arg("/usr/bin/python3");
                c
            }
        };
        let host = host
            .args(["-c", probe])
            .output()
            .expect("run python3 on the host");
        std::fs::write(case.project().join("release"), "").expect("release the sandbox");
        let out = running.finish(Duration::from_secs(30));
        out.expect_code(0);
        case.assert_no_leak(&out);
        let fd: i64 = String::from_utf8_lossy(&host.stdout)
            .trim()
            .parse()
            .unwrap_or(-1);
        assert!(
            fd >= 0,
            "the user outside could not make an inotify instance while the sandbox ran: {}\n{}",
            String::from_utf8_lossy(&host.stderr),
            out.all()
        );
        // Stopped by the limit (EMFILE), at no more than half of it, and
        // the command cannot raise it.
        out.fields(&[("errno", "EMFILE"), ("raise", &libc::EROFS.to_string())]);
        let made: u64 = out.get("instances").parse().expect("a count");
        assert!(
            made <= instances_max / 2,
            "{made} of {instances_max}\n{}",
            out.all()
        );
        assert_eq!(
            out.get("watches_limit"),
            (watches_max / 2).to_string(),
            "{}",
            out.all()
        );
    });
}
