//! The twenty-fifth review: what the sandbox can take of a secret file the
//! host makes anew in the moment before guard covers it again, and the
//! file watches the sandbox can starve. Each test names the attack; each
//! failed before the fix that came with it.

use crate::common::{Mode, NOBODY, Outcome};
use crate::support::{Case, each_mode};
use std::path::Path;
use std::time::{Duration, Instant};

/// Until `path` exists (or 10 s): whether it does.
fn wait_for(path: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    path.exists()
}

/// The sandbox (Python) waits for the host's `.env.new`, does `take` with
/// it before it is a secret file (it becomes `.env` later), marks
/// `.taken`, and after the host's change (and past guard's check of the
/// new `.env`) prints `read=` what `read` gives. The host writes the
/// token into `.env.new` once taken, in place, and renames it over
/// `.env`, as `sed -i` does.
fn take_then_replace(case: &mut Case, take: &str, read: &str) -> (Outcome, bool) {
    let old = case.add_canary("old");
    let new = case.add_canary("new");
    case.write(".env", &format!("API_TOKEN={old}\n"));
    let script = format!(
        "python3 - <<'EOF'\n\
import os, time\n\
open('.started', 'w').write('1')\n\
while not os.path.exists('.env.new'): time.sleep(0.002)\n\
{take}\n\
open('.taken', 'w').write('1')\n\
while not os.path.exists('.host-done'): time.sleep(0.05)\n\
time.sleep(2.5)\n\
print('read=' + {read})\n\
EOF"
    );
    let project = case.project().to_path_buf();
    let mut taken = false;
    let out = case.env.with_host_change(&script, || {
        case.env.write_on_host(".env.new", "");
        taken = wait_for(&project.join(".taken"));
        // In place: the descriptor or link the sandbox took sees it.
        std::fs::write(project.join(".env.new"), format!("API_TOKEN={new}\n")).unwrap();
        std::fs::rename(project.join(".env.new"), project.join(".env")).unwrap();
    });
    case.assert_no_leak(&out);
    (out, taken)
}

/// The session ended for the project's `.env`, saying `why`.
#[track_caller]
fn assert_ended_for_env(case: &Case, out: &Outcome, why: &str) {
    assert!(out.field("read").is_none(), "{}", out.all());
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains(&format!(
            "guard: ended the session: {} could no longer be kept hidden",
            case.project().join(".env").display()
        )) && out.stderr.contains(why),
        "{}",
        out.all()
    );
    case.env.expect_logged("ended", ".env");
}

#[test]
fn a_descriptor_opened_before_the_cover_ends_the_session() {
    each_mode(|mut case| {
        let (out, taken) = take_then_replace(
            &mut case,
            "fd = os.open('.env.new', os.O_RDONLY)",
            "os.pread(fd, 4096, 0).decode().strip()",
        );
        assert!(
            taken,
            "the sandbox never opened the host's file\n{}",
            out.all()
        );
        assert_ended_for_env(&case, &out, "holds it open");
    });
}

#[test]
fn an_o_path_descriptor_opened_before_the_cover_ends_the_session() {
    each_mode(|mut case| {
        // O_PATH: not an open for reading, but /proc opens it again.
        let (out, taken) = take_then_replace(
            &mut case,
            "fd = os.open('.env.new', os.O_PATH)",
            "open('/proc/self/fd/%d' % fd).read().strip()",
        );
        assert!(
            taken,
            "the sandbox never opened the host's file\n{}",
            out.all()
        );
        assert_ended_for_env(&case, &out, "holds it open");
    });
}

#[test]
fn a_hard_link_made_before_the_cover_ends_the_session() {
    each_mode(|mut case| {
        let (out, taken) = take_then_replace(
            &mut case,
            "os.link('.env.new', '.x')",
            "open('.x').read().strip()",
        );
        assert!(
            taken,
            "the sandbox never linked the host's file\n{}",
            out.all()
        );
        assert_ended_for_env(&case, &out, "a hard link to it");
        // The link is there: the attack step happened.
        assert!(case.project().join(".x").exists(), "{}", out.all());
    });
}

/// Moves `config/app` to `config/x` the moment the host has made it anew
/// with a `.env` in it; after the host's change, prints `read=` the file.
const MOVE_DIR_WHEN_FILLED: &str = r#"python3 - <<'EOF'
import os, time
open('.started', 'w').write('1')
# The hidden `.env` reads empty; the host's new one does not, until
# guard covers it. (The new directory often has the old one's inode.)
moved = 'never saw it'
deadline = time.time() + 20
while time.time() < deadline:
    try:
        if os.path.getsize('config/app/.env') > 0:
            try:
                os.rename('config/app', 'config/x')
                moved = 1
            except OSError as e:
                moved = 'errno %d' % e.errno
            break
    except FileNotFoundError:
        pass
print('moved=%s' % moved, flush=True)
open('.moved', 'w').write('1')
while not os.path.exists('.host-done'):
    time.sleep(0.05)
time.sleep(0.5)
if moved == 1:
    print('read=' + open('config/x/.env').read().strip())
EOF"#;

/// Adds watches on distinct files of /usr/lib, `argv[1]` of them or until
/// the limit refuses one (then prints the errno), and holds them.
const ADD_WATCHES: &str = r#"import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
want = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 30
n = 0
for root, dirs, files in os.walk('/usr/lib'):
    for f in files:
        if n >= want:
            break
        if libc.inotify_add_watch(fd, os.path.join(root, f).encode(), 0x100) >= 0:
            n += 1
        elif ctypes.get_errno() == 28:
            break
    if n >= want or ctypes.get_errno() == 28:
        break
print('watches=%d errno=%d' % (n, ctypes.get_errno()), flush=True)
open('.started', 'w').write('1')
time.sleep(float(os.environ.get('HOLD', '120')))
print('alive=1', flush=True)
"#;

/// Holds `argv[1]` inotify instances (the user's own programs).
const HOLD_INSTANCES: &str = r#"import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fds = [libc.inotify_init1(0) for _ in range(int(sys.argv[1]))]
assert all(fd >= 0 for fd in fds), fds
time.sleep(120)
"#;

/// Takes every inotify instance it may, then after the host's change
/// waits up to 10 s for `.env` to read empty, and shows it.
const TAKE_INSTANCES_THEN_READ: &str = r#"python3 - <<'EOF'
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
held = []
while True:
    fd = libc.inotify_init1(0)
    if fd < 0:
        break
    held.append(fd)
print('exhausted=%d' % ctypes.get_errno(), flush=True)
open('.started', 'w').write('1')
while not os.path.exists('.host-done'):
    time.sleep(0.05)
for _ in range(200):
    if os.path.getsize('.env') == 0:
        break
    time.sleep(0.05)
print('size=%d' % os.path.getsize('.env'))
print(open('.env').read())
EOF"#;

/// The sandbox renames the directory the host made anew, with the new
/// secret file in it, the moment the file appears: before guard covers
/// it (the session ends) or after (the cover moves with it). Either way
/// the file reads empty or not at all.
#[test]
fn a_new_secret_files_directory_moved_away_stays_covered_or_ends_the_session() {
    each_mode(|mut case| {
        let new = case.add_canary("new");
        let old = case.add_canary("old");
        case.write("config/app/.env", &format!("API_TOKEN={old}\n"));
        let project = case.project().to_path_buf();
        let app = project.join("config/app");
        let script = MOVE_DIR_WHEN_FILLED;
        let mut moved = false;
        let out = case.env.with_host_change(script, || {
            std::fs::remove_dir_all(&app).unwrap();
            std::fs::create_dir(&app).unwrap();
            if case.mode() == Mode::Unprivileged {
                std::os::unix::fs::chown(&app, Some(NOBODY), Some(NOBODY)).unwrap();
            }
            std::fs::write(app.join(".env"), format!("API_TOKEN={new}\n")).unwrap();
            if case.mode() == Mode::Unprivileged {
                std::os::unix::fs::chown(app.join(".env"), Some(NOBODY), Some(NOBODY)).unwrap();
            }
            moved = wait_for(&project.join(".moved"));
        });
        case.assert_no_leak(&out);
        assert!(moved, "the sandbox never got to try\n{}", out.all());
        // Seen before guard covered it (the polling is faster than guard's
        // look): moved then, or refused once the cover was on (EBUSY; or
        // ENOENT, as the kernel answered sometimes then).
        let tried = out.field("moved").unwrap_or_default();
        if tried != "1" {
            assert!(
                ["errno 16", "errno 2"].contains(&tried.as_str()),
                "{}",
                out.all()
            );
            return;
        }
        match out.field("read") {
            // Covered before the move: the cover went with it.
            Some(read) => assert_eq!(read, "", "{}", out.all()),
            None => {
                assert!(
                    out.stderr.contains("guard: ended the session:")
                        && out.stderr.contains("was moved away"),
                    "{}",
                    out.all()
                );
                case.env.expect_logged("ended", "config/app/.env");
            }
        }
    });
}

/// `guard run -- sh -c SANDBOX` in a user namespace of the test's own
/// whose inotify instances are limited to `limit`, `held` of them held
/// meanwhile by another program (the user's own). The limit is the user's
/// here; other tests' instances count against the real one only.
fn with_inotify_limit(case: &Case, limit: u32, held: u32, sandbox: &str) -> std::process::Command {
    with_limit(
        case,
        "max_inotify_instances",
        limit,
        HOLD_INSTANCES,
        held,
        sandbox,
    )
}

/// [`with_inotify_limit`] for the user namespace's limit `name`, with
/// `holder` (Python, given `held`) for the user's own programs.
fn with_limit(
    case: &Case,
    name: &str,
    limit: u32,
    holder: &str,
    held: u32,
    sandbox: &str,
) -> std::process::Command {
    let wrapper = format!(
        "echo {limit} > /proc/sys/user/{name} || exit 99; \
         python3 -c \"$HOLDER\" {held} & h=$!; \
         sleep 0.5; \"$GUARD\" run -- sh -c \"$SANDBOX\"; rc=$?; kill $h; exit $rc"
    );
    // The environment `case.guard` gives guard (HOME, the canary
    // variable, …), for the wrapper.
    let base = case.guard(&[]);
    let mut unshare = match case.mode() {
        Mode::Invoker => std::process::Command::new("unshare"),
        Mode::Unprivileged => {
            let mut c = std::process::Command::new("setpriv");
            c.args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "--",
                "unshare",
            ]);
            c
        }
    };
    unshare
        .args(["-U", "-r", "sh", "-c", &wrapper])
        .env_clear()
        .envs(base.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOLDER", holder)
        .env("SANDBOX", sandbox)
        .env("GUARD", crate::common::guard_bin())
        .current_dir(case.project())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    unshare
}

/// Inotify instances are counted per user across user namespaces: the
/// user's programs hold half of the limit, the sandbox takes all it may
/// in its first moments (before guard's watches started, they found none
/// left and were off for the run), then the host saves the secret file
/// the way editors do. guard's watches are made before the command
/// starts: the new file is covered.
#[test]
fn inotify_instances_taken_by_the_sandbox_leave_the_watches_on() {
    each_mode(|mut case| {
        let new = case.add_canary("new");
        let old = case.add_canary("old");
        case.write(".env", &format!("API_TOKEN={old}\n"));
        let child = with_inotify_limit(&case, 16, 8, TAKE_INSTANCES_THEN_READ)
            .spawn()
            .expect("spawn unshare");
        let started = case.project().join(".started");
        assert!(wait_for(&started), "the command never started");
        std::thread::sleep(Duration::from_millis(800));
        case.env
            .replace_on_host(".env", &format!("API_TOKEN={new}\n"));
        std::fs::write(case.project().join(".host-done"), "").unwrap();
        let out = Outcome::from(child.wait_with_output().expect("wait for unshare"));
        case.assert_no_leak(&out);
        // The sandbox did take every instance it could (EMFILE).
        out.expect_fields(&[("exhausted", "24")]);
        out.expect_code(0);
        out.expect_fields(&[("size", "0")]);
        case.env.expect_logged("covered", ".env");
    });
}

/// The user's own programs hold every inotify instance the limit allows:
/// guard cannot watch for replaced secret files, so it does not start
/// (exit 125), and says how to raise the limit. Nothing ran.
#[test]
fn no_inotify_instance_left_refuses_to_start() {
    each_mode(|mut case| {
        let old = case.add_canary("old");
        case.write(".env", &format!("API_TOKEN={old}\n"));
        let out = Outcome::from(
            with_inotify_limit(&case, 4, 4, "echo ran=1")
                .output()
                .expect("run unshare"),
        );
        case.assert_no_leak(&out);
        out.expect_code(125);
        assert!(out.field("ran").is_none(), "{}", out.all());
        assert!(
            out.stderr.contains("a file watch (")
                && out.stderr.contains("fs.inotify.max_user_instances")
                && !out.stderr.contains("os error")
                && !out.stderr.contains("panicked"),
            "{}",
            out.all()
        );
    });
}

/// Inotify watches are counted per user too: the user's programs hold half
/// of them, the sandbox takes the rest in its first moments; guard's watch
/// on the secret file's directory is refused. The host could then replace
/// the file unseen: the session ends, and says why.
#[test]
fn inotify_watches_taken_by_the_sandbox_end_the_session() {
    each_mode(|mut case| {
        let old = case.add_canary("old");
        case.write(".env", &format!("API_TOKEN={old}\n"));
        let sandbox = format!("HOLD=5 python3 -c \"$(cat <<'EOF'\n{ADD_WATCHES}EOF\n)\"");
        let out = Outcome::from(
            with_limit(&case, "max_inotify_watches", 64, ADD_WATCHES, 32, &sandbox)
                .output()
                .expect("run unshare"),
        );
        case.assert_no_leak(&out);
        // The sandbox took every watch left (ENOSPC), and was ended.
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("watches=") && l.ends_with("errno=28")),
            "{}",
            out.all()
        );
        assert!(out.field("alive").is_none(), "{}", out.all());
        assert_ne!(out.code, 0, "{}", out.all());
        assert!(
            out.stderr.contains("guard: ended the session:")
                && out
                    .stderr
                    .contains("the user's inotify watches are all taken"),
            "{}",
            out.all()
        );
        // For the first secret file watched (as root, one of /etc's).
        let log = case.env.run(&["log", "--json"]);
        assert!(log.stdout.contains("\"action\":\"ended\""), "{}", log.all());
    });
}
