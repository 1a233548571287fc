//! Shared harness for integration tests: spawn the real `guard` binary and
//! run real commands in real sandboxes.
//!
//! Every test runs in each [`Mode`]: as the invoking user, and — when the
//! tests run as root (CI) — also as an unprivileged uid via `setpriv`,
//! because that is how users run guard. The binary is copied somewhere that
//! uid can execute.
#![allow(dead_code)]

pub mod git;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const NOBODY: u32 = 65534;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// guard runs as whoever runs the tests (root in CI).
    Invoker,
    /// guard runs as uid/gid 65534 with no supplementary groups.
    Unprivileged,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The modes every test must pass in.
pub fn modes() -> Vec<Mode> {
    if is_root() {
        vec![Mode::Invoker, Mode::Unprivileged]
    } else {
        vec![Mode::Invoker]
    }
}

/// The guard binary, copied to a world-executable location when root (the
/// target dir may sit under /root, which uid 65534 cannot traverse).
/// `program` as `mode`'s user (through setpriv as uid 65534).
pub fn as_mode_user(mode: Mode, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match mode {
        Mode::Invoker => Command::new(program),
        Mode::Unprivileged => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "--",
            ])
            .arg(program);
            c
        }
    }
}

pub fn guard_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_guard"));
        if !is_root() {
            return built;
        }
        // One copy per build, shared by every test process (a copy per
        // process would leave ~80 MiB behind each time); copies of older
        // builds are removed once nobody can still be starting them.
        let meta = std::fs::metadata(&built).expect("stat guard binary");
        let key = format!(
            "{:x}-{:x}-{:x}",
            meta.ino(),
            meta.len(),
            meta.mtime_nsec() ^ (meta.mtime() << 30)
        );
        let dir = PathBuf::from(format!("/tmp/guard-test-bin-{key}"));
        if let Ok(rd) = std::fs::read_dir("/tmp") {
            for e in rd.flatten() {
                let old = e.path();
                let stale = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
                if stale
                    && old != dir
                    && e.file_name()
                        .to_string_lossy()
                        .starts_with("guard-test-bin-")
                {
                    let _ = std::fs::remove_dir_all(&old);
                }
            }
        }
        if dir.join("guard").exists() {
            return dir.join("guard");
        }
        std::fs::create_dir_all(&dir).expect("create bin dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod bin dir");
        let dst = dir.join("guard");
        let tmp = dir.join(format!(".guard.{}.tmp", std::process::id()));
        // Copied by a child process: a descriptor of ours open for writing
        // would be inherited by processes other test threads fork meanwhile,
        // and exec of the binary would fail with ETXTBSY while they hold it.
        let st = Command::new("cp")
            .arg(&built)
            .arg(&tmp)
            .status()
            .expect("run cp");
        assert!(st.success(), "copy guard binary");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .expect("chmod guard");
        std::fs::rename(&tmp, &dst).expect("install guard binary");
        dst
    })
    .clone()
}

/// A directory removed on drop, owned by the uid of `mode`.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str, mode: Mode) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = PathBuf::from(format!("/tmp/guard-t-{}-{}-{tag}", std::process::id(), n));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        let t = TempDir { path };
        t.own(mode);
        t
    }

    /// Give everything below to the uid of `mode` (after writing fixtures).
    pub fn own(&self, mode: Mode) {
        if mode == Mode::Unprivileged {
            let st = Command::new("chown")
                .args(["-R", &format!("{NOBODY}:{NOBODY}")])
                .arg(&self.path)
                .status()
                .expect("run chown");
            assert!(st.success(), "chown failed");
        }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, content).expect("write fixture");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A project and a home for one test in one mode.
pub struct Env {
    pub mode: Mode,
    pub project: TempDir,
    pub home: TempDir,
}

impl Env {
    pub fn new(mode: Mode) -> Env {
        let project = TempDir::new("proj", mode);
        let home = TempDir::new("home", mode);
        Env {
            mode,
            project,
            home,
        }
    }

    /// `guard ARGS...` with cwd = project, HOME = the test home.
    pub fn guard(&self, args: &[&str]) -> Command {
        let mut cmd = self.as_user(guard_bin());
        cmd.args(args)
            .current_dir(&self.project.path)
            .env("HOME", &self.home.path)
            .env(
                "USER",
                if self.mode == Mode::Unprivileged {
                    "nobody"
                } else {
                    "root"
                },
            )
            // guard's config, data and state live under the test home.
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CACHE_HOME")
            .stdin(Stdio::null());
        cmd
    }

    /// `program` as the mode's user (through setpriv as uid 65534).
    pub fn as_user(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        as_mode_user(self.mode, program)
    }

    /// `guard run -- sh -c SCRIPT`.
    pub fn sh(&self, script: &str) -> Outcome {
        self.run(&["run", "--", "sh", "-c", script])
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        Outcome::from(self.guard(args).output().expect("spawn guard"))
    }

    /// Where `profile`'s persistent home for this project lives:
    /// `$XDG_DATA_HOME/guard/homes/PROFILE@NAME-HASH`, NAME the project
    /// directory's name, HASH the first 8 bytes of the SHA-256 of its path.
    pub fn persistent_home(&self, profile: &str) -> PathBuf {
        persistent_home(&self.home.path, profile, &self.project.path)
    }

    /// Fix ownership after the test wrote fixtures.
    pub fn own(&self) {
        self.project.own(self.mode);
        self.home.own(self.mode);
    }

    /// Run `script` in guard in the background; once it has written
    /// `.started`, wait past the start of guard's watches, run `host` (a
    /// program on the host changing files during the run), then write
    /// `.host-done` for the script to go on.
    pub fn with_host_change(&self, script: &str, host: impl FnOnce()) -> Outcome {
        use std::process::Stdio;
        let child = self
            .guard(&["run", "--", "sh", "-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn guard");
        let started = self.project.join(".started");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !started.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(started.exists(), "the command never started");
        std::thread::sleep(std::time::Duration::from_millis(800));
        host();
        std::fs::write(self.project.join(".host-done"), "").unwrap();
        Outcome::from(child.wait_with_output().expect("wait for guard"))
    }

    /// Panics unless the last session logged `action` for the project's
    /// file `rel` (`guard log --json`).
    #[track_caller]
    pub fn expect_logged(&self, action: &str, rel: impl AsRef<Path>) {
        let log = self.run(&["log", "--json"]);
        let path = self.project.path.join(rel).display().to_string();
        assert!(
            log.stdout.lines().any(|l| {
                l.contains(&format!("\"action\":\"{action}\""))
                    && l.contains(&format!("\"path\":\"{path}\""))
            }),
            "no {action} event for {path}: {}",
            log.all()
        );
    }

    /// Write the project's `rel` as a program of the user's on the host
    /// does (owned as the user).
    pub fn write_on_host(&self, rel: impl AsRef<Path>, content: &str) {
        let path = self.project.path.join(rel);
        if self.mode != Mode::Unprivileged || path.exists() {
            // In place: the same file, as `>` writes it.
            std::fs::write(&path, content).unwrap();
            return;
        }
        // A new file appears owned as the user's: made under another name
        // and renamed, or a sandbox waiting for it could find it root's
        // for a moment (and fail to open it for writing).
        let tmp = path.with_file_name(format!(
            ".{}.host-tmp",
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&tmp, content).unwrap();
        std::os::unix::fs::chown(&tmp, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    /// As an editor saves: a new file renamed over the old, owned as the
    /// user's.
    pub fn replace_on_host(&self, rel: &str, content: &str) {
        let tmp = format!("{rel}.tmp");
        self.write_on_host(&tmp, content);
        std::fs::rename(self.project.join(&tmp), self.project.join(rel)).unwrap();
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Outcome {
    fn from(o: Output) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Outcome {
            code: o
                .status
                .code()
                .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Outcome {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics with the full output when the exit code differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The canary must appear nowhere in what the sandbox printed.
    pub fn assert_no_canary(&self, canary: &str) -> &Self {
        assert!(
            !self.all().contains(canary),
            "canary {canary:?} leaked:\n{}",
            self.all()
        );
        self
    }

    /// A line `key=value` printed by the script.
    pub fn field(&self, key: &str) -> Option<String> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
    }

    /// Each `key` was printed with exactly `value`.
    #[track_caller]
    pub fn expect_fields(&self, expected: &[(&str, &str)]) -> &Self {
        for (k, v) in expected {
            assert_eq!(self.field(k).as_deref(), Some(*v), "{k}: {}", self.all());
        }
        self
    }
}

/// A fresh random-looking canary value (unique per call).
pub fn canary(tag: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("CANARY{tag}{}x{t:08x}{n}", std::process::id())
}

/// A GitHub-token-shaped canary: prefix + 36 alphanumerics.
pub fn gh_canary(tag: &str) -> String {
    gh_token(&canary(tag))
}

/// A GitHub-token shape around `c` (kept whole in it while it is no longer
/// than 36 characters).
pub fn gh_token(c: &str) -> String {
    let body: String = c
        .chars()
        .chain("Zq8vL2mN4pQ6rS8tU0vW1xY3".chars().cycle())
        .take(36)
        .collect();
    ["gh", "p_", &body].concat()
}

/// A UUID that is unique per call (a canary in UUID shape).
pub fn uuid_canary() -> String {
    let c = canary("u");
    let mut digits: String = c.bytes().rev().map(|b| format!("{:x}", b % 16)).collect();
    while digits.len() < 32 {
        digits = format!("{digits}{digits}");
    }
    format!(
        "{}-{}-4{}-a{}-{}",
        &digits[0..8],
        &digits[8..12],
        &digits[12..15],
        &digits[15..18],
        &digits[18..30]
    )
}

/// A private key in PEM armour around `body` (a canary).
pub fn pem(body: &str) -> String {
    format!(
        "{}\n{body}\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7x\n{}\n",
        ["-----BEGIN ", "PRIVATE KEY-----"].concat(),
        ["-----END ", "PRIVATE KEY-----"].concat()
    )
}

/// A deploy script holding a token, in UUID shape, where `{uuid}` is.
pub const DOMAINS_SH: &str = "#!/bin/sh
# Point the production domains at the new deployment.
set -eu
RAILWAY_TOKEN={uuid}
export RAILWAY_TOKEN
for domain in app.example.org api.example.org; do
  echo \"updating $domain\"
done
echo all-domains-updated
";

/// Is `path` (on the host) unchanged / absent? Helper for write tests.
pub fn read_host(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Python one-liners run inside the sandbox print `errno=N` so tests can
/// tell "blocked" (EPERM/EACCES) from "tool missing".
pub fn py(code: &str) -> String {
    format!("python3 -c '{}'", code.replace('\'', r"'\''"))
}

impl Env {
    /// Run `guard ARGS...` inside a pseudo-terminal driven by `steps` (see
    /// tests/support/pty_session.py). The outcome's stdout is the transcript.
    pub fn pty(&self, steps: serde_json::Value, args: &[&str]) -> Outcome {
        self.pty_driver(steps, &[], args)
    }

    /// The pty driver running `before` (a command prefix), then the guard
    /// command with `args`.
    fn pty_driver(&self, steps: serde_json::Value, before: &[&str], args: &[&str]) -> Outcome {
        let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pty_session.py");
        let inner = self.guard(args);
        let mut cmd = Command::new("python3");
        cmd.arg(driver)
            .arg(steps.to_string())
            .arg("--")
            .args(before);
        cmd.arg(inner.get_program());
        cmd.args(inner.get_args());
        cmd.current_dir(&self.project.path)
            .env("HOME", &self.home.path)
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        if self.mode == Mode::Unprivileged {
            cmd.env("PTY_SESSION_OWNER", "65534");
        }
        Outcome::from(cmd.output().expect("spawn pty driver"))
    }
}

impl Env {
    /// Run `sh -c SCRIPT` inside a pseudo-terminal driven by `steps`, with
    /// the guard command (as [`Env::guard`] starts it, without arguments)
    /// in `"$@"`: what the script does after guard exits shows what guard
    /// left on the terminal.
    pub fn pty_script(&self, steps: serde_json::Value, script: &str) -> Outcome {
        self.pty_driver(steps, &["sh", "-c", script, "sh"], &[])
    }
}

/// Processes on the host whose command line contains `marker`.
pub fn pgrep(marker: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The host of the registry npm is configured with, as npm reports it:
/// derived at run time, never written in this repository.
pub fn npm_registry_host() -> String {
    let out = Command::new("npm")
        .args(["config", "get", "registry"])
        .current_dir("/")
        .output()
        .expect("npm must be installed for this test (.ci/install-test-deps.sh)");
    assert!(out.status.success(), "npm config get registry: {out:?}");
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    url.split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':']).next())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| panic!("no host in {url:?}"))
        .to_string()
}

/// `git ARGS` in `dir` on the host (whoever owns it), which must succeed:
/// [`git::git`], without the user's or the system's configuration, so that
/// what a test sets up does not depend on the machine it runs on.
pub fn host_git(dir: &Path, args: &[&str]) {
    git::git(dir, args);
}

/// A repository in `dir` whose one commit holds `dir/README` (written first).
pub fn git_repo_with_readme(dir: &Path) {
    std::fs::write(dir.join("README"), "hello\n").expect("write README");
    host_git(dir, &["init", "-q"]);
    host_git(dir, &["add", "README"]);
    host_git(dir, &["commit", "-qm", "init"]);
}

/// A helper process of a test's (a server, an agent), killed when the test
/// ends, also by a failed assertion.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// [`Env::persistent_home`] for any project.
pub fn persistent_home(home: &Path, profile: &str, project: &Path) -> PathBuf {
    use sha2::Digest;
    let project = std::fs::canonicalize(project).expect("canonical project path");
    let digest = sha2::Sha256::digest(project.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let name = project
        .file_name()
        .expect("a project directory has a name")
        .to_string_lossy();
    home.join(".local/share/guard/homes")
        .join(format!("{profile}@{name}-{hex}"))
}

/// Holds a write lease on the file given, as a file server's oplock does
/// (Samba's kernel oplocks are leases), marks `.leased` and lets go (and
/// marks `.let-go`) when the kernel says another program opens it.
pub const LEASE_HOLDER: &str = r#"import fcntl, os, signal, sys, time
F_SETLEASE = 1024
fd = os.open(sys.argv[1], os.O_RDONLY)
def let_go(*_):
    fcntl.fcntl(fd, F_SETLEASE, fcntl.F_UNLCK)
    open('.let-go', 'w').write('1')
signal.signal(signal.SIGIO, let_go)
fcntl.fcntl(fd, F_SETLEASE, fcntl.F_WRLCK)
open('.leased', 'w').write('1')
deadline = time.time() + 60
while time.time() < deadline and not os.path.exists('.host-done'):
    time.sleep(0.05)
"#;
