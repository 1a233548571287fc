//! Shared pieces of the escape suite: a [`Case`] (one sandbox run with
//! canaries planted outside it) and the prologues of the Python and C
//! snippets that perform the attacks.
//!
//! Every attack checks three things:
//! 1. it failed: the snippet prints `key=value` lines (an errno, a verdict)
//!    and the test compares them with [`Expect::fields`];
//! 2. it failed for the stated reason: the errno is named exactly, and every
//!    snippet first prints `ran=1`, so a missing interpreter or a compile
//!    error can never pass for "blocked";
//! 3. nothing leaked: [`Case`] plants canaries outside the sandbox (the
//!    supervisor's environment, a file in the host home, a file in the host
//!    /tmp, and whatever a test adds, e.g. a server greeting) and every run
//!    through a `Case` asserts that none of them appears in stdout or stderr.

use crate::common::{self, Env, Mode, Outcome};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the supervisor environment variable holding a canary. It looks
/// like a secret on purpose.
pub const ENV_CANARY_VAR: &str = "GUARD_ESCAPE_API_TOKEN";

/// Taken shared by every test, alone by a test that changes what every
/// other sandbox meets:
/// - the fork bomb holds as many processes of its uid as the profile allows
///   (4096), and a `landlock`-level sandbox of that uid, which counts all of
///   the user's processes against the same limit (no user namespace), could
///   not start meanwhile ("the process limit is reached");
/// - a file or directory planted in /etc is found by every sandbox's scan,
///   and removed between another sandbox's scan and its setup it stopped
///   that sandbox ("failed to set up the sandbox's view").
static ALONE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Run `f` once per harness mode (as the invoking user and, as root, as uid
/// 65534). The mode is printed first so a failure names it.
pub fn each_mode(f: impl Fn(Case)) {
    let _shared = ALONE.read().unwrap_or_else(|e| e.into_inner());
    modes_of(f);
}

/// [`each_mode`] with no other test of the suite running meanwhile (see
/// [`ALONE`]).
pub fn each_mode_alone(f: impl Fn(Case)) {
    let _alone = ALONE.write().unwrap_or_else(|e| e.into_inner());
    modes_of(f);
}

fn modes_of(f: impl Fn(Case)) {
    for mode in common::modes() {
        eprintln!("=== mode {mode:?}");
        f(Case::new(mode));
    }
}

/// One sandbox run in one mode, with canaries planted outside the sandbox.
pub struct Case {
    pub env: Env,
    /// `~/secret.txt` in the host home given to guard (holds a canary).
    pub home_secret: PathBuf,
    /// A file in the host's /tmp, outside project and home (holds a canary).
    pub host_tmp_secret: PathBuf,
    canaries: Vec<String>,
    extra_env: Vec<(String, String)>,
    cleanup: Vec<PathBuf>,
}

impl Case {
    pub fn new(mode: Mode) -> Case {
        let env = Env::new(mode);
        let env_canary = common::canary("env");
        let home_canary = common::canary("home");
        let tmp_canary = common::canary("tmp");
        let home_secret = env
            .home
            .write("secret.txt", &format!("token={home_canary}\n"));
        let host_tmp_secret = PathBuf::from(format!(
            "/tmp/guard-escape-secret-{}-{}.txt",
            std::process::id(),
            tmp_canary
        ));
        std::fs::write(&host_tmp_secret, format!("token={tmp_canary}\n"))
            .expect("plant host /tmp canary");
        // World-readable: if the sandbox could see it, it could read it.
        std::fs::set_permissions(&host_tmp_secret, std::fs::Permissions::from_mode(0o644))
            .expect("chmod host /tmp canary");
        env.own();
        Case {
            env,
            extra_env: vec![(ENV_CANARY_VAR.into(), env_canary.clone())],
            canaries: vec![env_canary, home_canary, tmp_canary],
            home_secret,
            host_tmp_secret: host_tmp_secret.clone(),
            cleanup: vec![host_tmp_secret],
        }
    }

    pub fn mode(&self) -> Mode {
        self.env.mode
    }

    pub fn project(&self) -> &Path {
        &self.env.project.path
    }

    pub fn home(&self) -> &Path {
        &self.env.home.path
    }

    /// A new canary that must not leak either (e.g. a server's greeting).
    pub fn add_canary(&mut self, tag: &str) -> String {
        let c = common::canary(tag);
        self.canaries.push(c.clone());
        c
    }

    /// A canary in the shape of a GitHub token (which the content rules
    /// flag); the token and the canary inside it must not leak.
    pub fn add_gh_canary(&mut self, tag: &str) -> String {
        let c = self.add_canary(tag);
        let token = common::gh_token(&c);
        self.canaries.push(token.clone());
        token
    }

    /// Put `NAME=value` in the supervisor's environment for every run.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.extra_env.push((name.into(), value.into()));
    }

    /// Remove `path` (a host fixture outside project and home) on drop.
    pub fn remove_on_drop(&mut self, path: PathBuf) {
        self.cleanup.push(path);
    }

    /// Write a project file on the host (owned by the mode's uid).
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.env.project.write(rel, content);
        self.env.own();
        p
    }

    /// `guard ARGS...` with the canary environment, not yet run.
    pub fn guard(&self, args: &[&str]) -> Command {
        let mut cmd = self.env.guard(args);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run `guard ARGS...`; asserts that no canary leaked.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Outcome {
        self.output(self.guard(args))
    }

    /// Run a prepared guard command (from [`Case::guard`]); asserts that no
    /// canary leaked.
    #[track_caller]
    pub fn output(&self, mut cmd: Command) -> Outcome {
        let out = Outcome::from(cmd.output().expect("spawn guard"));
        self.assert_no_leak(&out);
        out
    }

    /// `guard run -- sh -c SCRIPT`; asserts that no canary leaked.
    #[track_caller]
    pub fn sh(&self, script: &str) -> Outcome {
        self.run(&["run", "--", "sh", "-c", script])
    }

    /// Run a Python snippet (after [`PY_PRELUDE`]) in the sandbox; asserts
    /// that it ran and that no canary leaked.
    #[track_caller]
    pub fn python(&self, code: &str) -> Outcome {
        self.write_python(code);
        self.run_python()
    }

    /// Write the snippet only (for tests that prepare more fixtures after it).
    pub fn write_python(&self, code: &str) {
        self.write("attack.py", &format!("{PY_PRELUDE}\n{code}\n"));
    }

    /// Run the snippet written by [`Case::write_python`].
    #[track_caller]
    pub fn run_python(&self) -> Outcome {
        let out = self.run(&["run", "--", "python3", "attack.py"]);
        out.ran();
        out
    }

    /// `attack.py` at an isolation level (`full`, `landlock`), quietly;
    /// asserts that it ran and that no canary leaked.
    #[track_caller]
    pub fn run_python_at(&self, level: &str) -> Outcome {
        let out = self.output(self.guard_python_at(level));
        out.ran();
        out
    }

    /// The command [`Case::run_python_at`] runs, to run some other way
    /// (on a terminal).
    pub fn guard_python_at(&self, level: &str) -> Command {
        self.guard(&[
            "run",
            "-q",
            "--isolation",
            level,
            "--",
            "/usr/bin/python3",
            "attack.py",
        ])
    }

    /// The uid the command runs as (guard maps the caller's uid to itself).
    pub fn sandbox_uid(&self) -> u32 {
        match self.mode() {
            // SAFETY: geteuid has no preconditions.
            Mode::Invoker => unsafe { libc::geteuid() },
            Mode::Unprivileged => common::NOBODY,
        }
    }

    /// The errno for opening a root-owned, owner-writable file (0644) for
    /// writing on a read-only mount: the kernel checks permissions before
    /// the mount, so uid 0 (which owns it) gets EROFS and anyone else EACCES.
    pub fn root_file_write_errno(&self) -> &'static str {
        if self.sandbox_uid() == 0 {
            errno::EROFS
        } else {
            errno::EACCES
        }
    }

    /// Compile a C snippet (after [`C_PRELUDE`]) with `cc` inside the
    /// sandbox and run it; `then` is shell run after it (e.g. to print its
    /// status). Asserts that it compiled and ran and that no canary leaked.
    #[track_caller]
    pub fn c(&self, src: &str, then: &str) -> Outcome {
        self.write("attack.c", &format!("{C_PRELUDE}\n{src}\n"));
        let out = self.sh(&format!(
            "cc -O0 -Wall -Wno-unused-function -o ./attack attack.c || {{ echo compile-failed; exit 99; }}\n./attack\n{then}"
        ));
        assert!(
            !out.stdout.contains("compile-failed"),
            "the C snippet did not compile:\n{}",
            out.all()
        );
        out.ran();
        out
    }

    /// Every canary must be absent from what the sandbox printed.
    #[track_caller]
    pub fn assert_no_leak(&self, out: &Outcome) {
        for c in &self.canaries {
            out.assert_no_canary(c);
        }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        for p in &self.cleanup {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The last component of `p`.
pub fn basename(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Assertions on the `key=value` lines a snippet printed.
pub trait Expect {
    /// The snippet started (it printed `ran=1`).
    fn ran(&self) -> &Self;
    /// Each `key` was printed with exactly `value`.
    fn fields(&self, expected: &[(&str, &str)]) -> &Self;
    /// The value printed for `key` (panics with the output if absent).
    fn get(&self, key: &str) -> String;
}

impl Expect for Outcome {
    #[track_caller]
    fn ran(&self) -> &Self {
        assert_eq!(
            self.field("ran").as_deref(),
            Some("1"),
            "the snippet did not run (interpreter or compiler missing?)\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    fn fields(&self, expected: &[(&str, &str)]) -> &Self {
        for (k, v) in expected {
            assert_eq!(
                self.field(k).as_deref(),
                Some(*v),
                "field {k}: expected {v:?}\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout,
                self.stderr
            );
        }
        self
    }

    #[track_caller]
    fn get(&self, key: &str) -> String {
        self.field(key).unwrap_or_else(|| {
            panic!(
                "no {key}= line\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// `git ARGS` on the host in `dir` (no user or system config).
pub fn host_git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(["-c", "safe.directory=*"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git is required")
}

/// The summary says one file was replaced on the host during the run and
/// covered again, and warns of nothing left uncovered.
pub fn expect_one_covered_again(out: &Outcome) {
    assert!(
        out.stderr
            .contains("1 replaced on the host during the run and covered again"),
        "{}",
        out.all()
    );
    assert!(!out.stderr.contains("WARNING"), "{}", out.all());
}

/// An empty commit on the host in `dir`, as a user would make one after
/// the session (runs the repository's hooks).
pub fn host_commit(dir: &Path) -> std::process::Output {
    host_git(
        dir,
        &[
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@u",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "y",
        ],
    )
}

/// A path in the host's /tmp that only a program run on the host can
/// create (the sandbox has a /tmp of its own), removed when dropped.
pub struct HostMarker(PathBuf);

impl HostMarker {
    pub fn new(tag: &str) -> HostMarker {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = PathBuf::from(format!(
            "/tmp/guard-ran-on-host-{}-{n}-{tag}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        HostMarker(p)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 marker path")
    }

    #[track_caller]
    pub fn assert_absent(&self, what: &str) {
        assert!(
            !self.0.exists(),
            "ESCAPE: {what} ran on the host after the session (created {})",
            self.0.display()
        );
    }
}

impl Drop for HostMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A directory in the host's /etc (needs root), removed when dropped.
pub struct EtcFixture(pub PathBuf);

impl Drop for EtcFixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// errno values the suite names (x86_64 Linux).
pub mod errno {
    pub const EPERM: &str = "1";
    pub const ENOENT: &str = "2";
    pub const ESRCH: &str = "3";
    pub const EBADF: &str = "9";
    pub const EAGAIN: &str = "11";
    pub const EACCES: &str = "13";
    pub const EBUSY: &str = "16";
    pub const EXDEV: &str = "18";
    pub const EINVAL: &str = "22";
    pub const EROFS: &str = "30";
    pub const ENOSYS: &str = "38";
    pub const ENETUNREACH: &str = "101";
    pub const ECONNREFUSED: &str = "111";
}

/// Python prologue: `sc(nr, *args)` makes a raw system call and returns
/// `(ret, errno)`; `err(f, *a)` is the errno of an os-level call (0 when it
/// succeeded); `out(k, v)` prints `k=v`. Prints `ran=1` first.
pub const PY_PRELUDE: &str = r#"
import ctypes, errno, os, socket, struct, sys
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def _arg(a):
    if a is None:
        return ctypes.c_void_p(None)
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    if isinstance(a, int):
        return ctypes.c_ulong(a) if a >= 1 << 63 else ctypes.c_long(a)
    return a
def sc(nr, *args):
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(nr), *[_arg(a) for a in args])
    return r, (ctypes.get_errno() if r == -1 else 0)
def err(f, *a, **kw):
    try:
        f(*a, **kw)
        return 0
    except OSError as e:
        return e.errno
def out(key, value):
    print(f"{key}={value}", flush=True)
def await_gone(*paths):
    # Until the watcher has moved them aside: 30 s at most (a fixed wait
    # fails on a loaded machine).
    import time
    end = time.time() + 30
    while time.time() < end and any(os.path.lexists(p) for p in paths):
        time.sleep(0.02)
out("ran", 1)
"#;

/// C prologue: `out(k, v)` prints `k=v`; `ERRNO(call)` is the errno of a
/// call that returns -1 on failure (0 when it succeeded). Prints `ran=1`
/// before main.
pub const C_PRELUDE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
static void out(const char *k, long v) { printf("%s=%ld\n", k, v); fflush(stdout); }
#define ERRNO(call) ((call) == -1 ? errno : 0)
__attribute__((constructor)) static void ran(void) { out("ran", 1); }
"#;

/// Python: `show(label, path)` prints `label=empty`, `label=redacted` (a
/// guard-redacted marker and no canary), `label=leaked` (the canary, as is
/// or once decoded the way a program would: base64 runs, UTF-16, JSON
/// `\u` escapes) or `label=other-N`; never content.
pub const SHOW_DECODING: &str = r#"
import base64, re
def show(label, path):
    try:
        data = open(path, "rb").read()
    except OSError as e:
        out(label, "errno-%d" % e.errno)
        return
    views = [data, re.sub(rb"\\u([0-9a-fA-F]{4})", lambda m: bytes([int(m.group(1), 16) & 0x7f]), data)]
    for enc in ("utf-16", "utf-16-le"):
        try:
            views.append(data.decode(enc).encode("utf-8", "replace"))
        except (UnicodeDecodeError, ValueError):
            pass
    for run in re.findall(rb"[A-Za-z0-9+/]{16,}={0,2}", data):
        try:
            views.append(base64.b64decode(run + b"=" * (-len(run) % 4)))
        except ValueError:
            pass
    if not data:
        out(label, "empty")
    elif any(b"CANARY" in v for v in views):
        out(label, "leaked")
    elif b"guard-redacted:" in data:
        out(label, "redacted")
    else:
        out(label, "other-%d" % len(data))
"#;

/// Standard base64 with padding (the tests must not depend on a crate for it).
pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i > c.len() {
                '='
            } else {
                char::from(A[((n >> (18 - 6 * i)) & 63) as usize])
            });
        }
    }
    out
}

/// `direnv ARGS` on the host in `dir`, as the user of `case` runs it: their
/// home, none of the direnv state of the shell running the tests.
pub fn host_direnv(case: &Case, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("direnv")
        .args(args)
        .current_dir(dir)
        .env("HOME", case.home())
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DIRENV_DIR")
        .env_remove("DIRENV_FILE")
        .env_remove("DIRENV_DIFF")
        .env_remove("DIRENV_WATCHES")
        .output()
        .expect("direnv is needed on the host for this test (.ci/run installs it)")
}

/// Random-looking filler to build realistic values around a canary.
pub const FILL: &str = "Zq8vL2mN4pQ6rS8tU0vW1xY3";

/// `guard scan --json` of the project: the action and rule ids of the
/// flagged file `rel` (panics if it is not flagged).
#[track_caller]
pub fn flagged(case: &Case, rel: &str) -> (String, Vec<String>) {
    let dir = case.project().to_path_buf();
    let out = case.run(&["scan", "--json", &dir.to_string_lossy()]);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("scan --json: {e}\n{}", out.all()));
    let want = dir.join(rel);
    let f = v["flagged"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["path"].as_str().map(Path::new) == Some(want.as_path()))
        .unwrap_or_else(|| panic!("{rel} not flagged:\n{}", out.stdout));
    let rules = f["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["rule"].as_str().map(String::from))
        .collect();
    (f["action"].as_str().unwrap_or("").to_string(), rules)
}

/// `rel` is flagged with `action`, and every hit is of `rule` (the file
/// was redacted for the reason the test is about, not by chance).
#[track_caller]
pub fn expect_flagged(case: &Case, rel: &str, action: &str, rule: &str) {
    let (got, rules) = flagged(case, rel);
    assert_eq!(got, action, "{rel}: {rules:?}");
    assert!(
        !rules.is_empty() && rules.iter().all(|r| r == rule),
        "{rel}: {rules:?}"
    );
}

/// `guard scan --json` of the project flags none of `rels`.
#[track_caller]
pub fn expect_not_flagged(case: &Case, rels: &[&str]) {
    let dir = case.project().to_path_buf();
    let out = case.run(&["scan", "--json", &dir.to_string_lossy()]);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("scan --json: {e}\n{}", out.all()));
    let paths: Vec<&str> = v["flagged"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["path"].as_str())
        .collect();
    for rel in rels {
        let want = dir.join(rel);
        assert!(
            !paths.iter().any(|p| Path::new(p) == want),
            "{rel} flagged:\n{}",
            out.stdout
        );
    }
}

/// In the sandbox, each (label, path, verdict) is seen as `verdict` (see
/// [`SHOW_DECODING`]) and each (label, path, line) of `kept` is still there
/// as is: a redacted file stays readable around the secret.
#[track_caller]
pub fn expect_seen(case: &Case, files: &[(&str, &str, &str)], kept: &[(&str, &str, &str)]) {
    let mut code = format!(
        "{SHOW_DECODING}\ndef keep(label, path, line):\n    out(label, 'kept' if line.encode() in open(path, 'rb').read() else 'lost')\n"
    );
    for (label, path, _) in files {
        code.push_str(&format!("show({label:?}, {path:?})\n"));
    }
    for (label, path, line) in kept {
        code.push_str(&format!("keep({label:?}, {path:?}, {line:?})\n"));
    }
    let mut expected: Vec<(&str, &str)> = files.iter().map(|(l, _, v)| (*l, *v)).collect();
    expected.extend(kept.iter().map(|(l, _, _)| (*l, "kept")));
    case.python(&code).fields(&expected);
}
