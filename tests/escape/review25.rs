//! The twenty-fifth review: what the sandbox can take of a secret file the
//! host makes anew in the moment before guard covers it again, and the
//! file watches the sandbox can starve. Each test names the attack; each
//! failed before the fix that came with it.

use crate::common::{Mode, NOBODY, Outcome};
use crate::support::{Case, each_mode};
use std::path::Path;
use std::time::{Duration, Instant};

/// Until `path` exists (or 10 s): whether it does.
pub(crate) fn wait_for(path: &Path) -> bool {
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
fn take_then_replace(case: &mut Case, take: &str, read: &str) -> Outcome {
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
    assert!(
        taken,
        "the sandbox never took the host's file\n{}",
        out.all()
    );
    out
}

/// The session ended for the project's `.env`, saying `why`.
#[track_caller]
pub(crate) fn assert_ended_for_env(case: &Case, out: &Outcome, why: &str) {
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
        let out = take_then_replace(
            &mut case,
            "fd = os.open('.env.new', os.O_RDONLY)",
            "os.pread(fd, 4096, 0).decode().strip()",
        );
        assert_ended_for_env(&case, &out, "holds it open");
    });
}

#[test]
fn an_o_path_descriptor_opened_before_the_cover_ends_the_session() {
    each_mode(|mut case| {
        // O_PATH: not an open for reading, but /proc opens it again.
        let out = take_then_replace(
            &mut case,
            "fd = os.open('.env.new', os.O_PATH)",
            "open('/proc/self/fd/%d' % fd).read().strip()",
        );
        assert_ended_for_env(&case, &out, "holds it open");
    });
}

#[test]
fn a_hard_link_made_before_the_cover_ends_the_session() {
    each_mode(|mut case| {
        let out = take_then_replace(
            &mut case,
            "os.link('.env.new', '.x')",
            "open('.x').read().strip()",
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
# Within the host's wait for `.moved` (10 s).
moved = 'never saw it'
deadline = time.time() + 6
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
        if tried == "never saw it" {
            // Covered before the sandbox's first look (a loaded machine):
            // nothing to move, nothing read.
            out.expect_code(0);
            return;
        }
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
    let mut unshare = case.env.as_user("unshare");
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

/// Enters `.git/hooks` the moment it is a directory it can write (the one
/// the host makes anew, before guard covers it), then after the host's
/// change writes a pre-commit hook through its working directory.
const ENTER_NEW_HOOKS: &str = r#"import os, time
project = os.getcwd()
open('.started', 'w').write('1')
entered = 'no'
deadline = time.time() + 20
while time.time() < deadline and entered == 'no':
    try:
        fd = os.open('.git/hooks', os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.close(os.open('probe', os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
            os.fchdir(fd)
            entered = 'yes'
        except OSError:
            pass
        os.close(fd)
    except OSError:
        pass
print('entered=' + entered, flush=True)
open(os.path.join(project, '.entered'), 'w').write('1')
while not os.path.exists(os.path.join(project, '.host-done')):
    time.sleep(0.05)
time.sleep(1)
if entered == 'yes':
    with open('pre-commit', 'w') as f:
        f.write('#!/bin/sh\ntouch %s\n' % os.environ['MARKER'])
    os.chmod('pre-commit', 0o755)
    print('hook=written', flush=True)
print('alive=1', flush=True)
"#;

/// The host makes `.git/hooks` anew during the run (`rm -rf .git/hooks &&
/// mkdir .git/hooks`, as a hook manager may). A sandbox that entered the
/// new directory before guard covered it wrote a hook through its working
/// directory, and the check after the run took the directory for the
/// user's (ext4 gives it the old one's inode number): the user's next
/// commit ran it. Now a directory the host makes anew ends the session,
/// and the check after the run knows the directory by its birth too.
#[test]
fn a_protected_directory_the_host_makes_anew_ends_the_session() {
    use crate::support::{HostMarker, host_commit, host_git};
    each_mode(|case| {
        let p = case.project().to_path_buf();
        host_git(&p, &["init", "-q"]);
        case.env.own();
        let marker = HostMarker::new("review25-hooks");
        let hooks = p.join(".git/hooks");
        let mut cmd = case.guard(&["run", "--", "python3", "-c", ENTER_NEW_HOOKS]);
        cmd.env("MARKER", marker.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = cmd.spawn().expect("spawn guard");
        assert!(wait_for(&p.join(".started")), "the command never started");
        std::thread::sleep(Duration::from_millis(800));
        std::fs::remove_dir_all(&hooks).unwrap();
        std::fs::create_dir(&hooks).unwrap();
        if case.mode() == Mode::Unprivileged {
            std::os::unix::fs::chown(&hooks, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        wait_for(&p.join(".entered"));
        std::fs::write(p.join(".host-done"), "").unwrap();
        let out = Outcome::from(child.wait_with_output().expect("wait for guard"));
        case.assert_no_leak(&out);
        assert!(out.field("alive").is_none(), "{}", out.all());
        assert_ne!(out.code, 0, "{}", out.all());
        assert!(
            out.stderr.contains("guard: ended the session:")
                && out.stderr.contains("a directory made anew"),
            "{}",
            out.all()
        );
        let commit = host_commit(&p);
        assert!(commit.status.success(), "{commit:?}");
        marker.assert_absent("a hook the sandbox wrote in a .git/hooks the host made anew");
    });
}

/// `sh -c SCRIPT` as the mode's user (a program of the user's on the host).
fn as_user(case: &Case, script: &str) -> std::process::Command {
    let mut c = case.env.as_user("sh");
    c.args(["-c", script]);
    c
}

/// Links the host's new `.env` (an inotify watch tells when it appears)
/// to `stash` and removes it (`unlink`) or renames a decoy over it
/// (`decoy`), before guard covers it; after the host's change, shows
/// `stash`.
const LINK_THEN_HIDE_IT: &str = r#"import ctypes, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
how = sys.argv[1]
ino = libc.inotify_init1(0)
libc.inotify_add_watch(ino, b'.', 0x100 | 0x80)  # IN_CREATE | IN_MOVED_TO
open('.decoy', 'w').write('API_TOKEN=decoy\n')
open('.started', 'w').write('1')
done = 'no'
while done == 'no':
    buf = os.read(ino, 4096)
    i = 0
    while i < len(buf):
        wd, mask, cookie, n = struct.unpack_from('iIII', buf, i)
        name = buf[i + 16:i + 16 + n].rstrip(b'\0')
        i += 16 + n
        if name == b'.env':
            try:
                os.link('.env', 'stash')
                if how == 'unlink':
                    os.unlink('.env')
                else:
                    os.rename('.decoy', '.env')
                done = 'yes'
            except OSError as e:
                done = 'errno %d' % e.errno
            break
print('linked=' + done, flush=True)
while not os.path.exists('.host-done'):
    time.sleep(0.05)
time.sleep(1.5)
if done == 'yes':
    print('read=' + open('stash').read().strip())
"#;

/// The host writes `.env` anew as `rm .env && slow-cli > .env` does: the
/// file made empty, the token written a moment later. A sandbox that
/// links it elsewhere and removes it (or renames a decoy over it) before
/// guard covers it leaves no move to see, and the file has one name again
/// when guard looks: it read the token in `stash` for the rest of the run.
/// Now a new secret file removed or made anew again before its cover
/// ends the session. (A race: when guard covers first, the link fails and
/// nothing is taken.)
#[test]
fn a_new_secret_file_linked_then_removed_or_replaced_ends_the_session() {
    for how in ["unlink", "decoy"] {
        each_mode(|mut case| {
            let old = case.add_canary("old");
            let new = case.add_canary("new");
            case.write(".env", &format!("API_TOKEN={old}\n"));
            case.write("attack.py", LINK_THEN_HIDE_IT);
            let project = case.project().to_path_buf();
            let out = case
                .env
                .with_host_change(&format!("python3 attack.py {how}"), || {
                    // As the user's `rm .env && slow-cli > .env`.
                    let script =
                        format!("rm .env && {{ sleep 0.05; echo API_TOKEN={new}; }} > .env");
                    let status = as_user(&case, &script)
                        .current_dir(&project)
                        .status()
                        .expect("run the host's writer");
                    assert!(status.success());
                });
            case.assert_no_leak(&out);
            let linked = out.field("linked").unwrap_or_default();
            assert!(out.field("read").is_none(), "{how}: {}", out.all());
            if out.stderr.contains("guard: ended the session:") {
                // Linked in time: seen as removed (or replaced) before the
                // cover, as a cover that failed on a file still there
                // (under `stash`), or as a second name (the removal came
                // too late).
                assert!(
                    out.stderr.contains("moved away or removed")
                        || out.stderr.contains("(no such file or directory)")
                        || out.stderr.contains("a hard link to it"),
                    "{how}: {}",
                    out.all()
                );
            } else {
                // Guard covered it first: the kernel refuses a link to a
                // mount point's file from another mount (EXDEV).
                assert_eq!(linked, "errno 18", "{how}: {}", out.all());
                out.expect_code(0);
            }
        });
    }
}

/// A program of the host's that writes a secret file it made anew slowly
/// (`rm .env && slow-cli > .env`) holds it open after guard covered it:
/// no reason to end the session; it ends when nothing else holds it.
#[test]
fn a_slow_host_writer_of_a_new_secret_file_ends_nothing() {
    each_mode(|mut case| {
        let old = case.add_canary("old");
        let new = case.add_canary("new");
        case.write(".env", &format!("API_TOKEN={old}\n"));
        let project = case.project().to_path_buf();
        let out = case.env.with_host_change(
            "echo 1 > .started; i=0; until [ -e .host-done ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done; \
             sleep 1; echo size=$(wc -c < .env); echo alive=1",
            || {
                // As the user: guard may look at the user's own programs.
                let script = format!(
                    "rm .env && {{ printf API_TOKEN=; sleep 2.5; echo {new}; }} > .env"
                );
                let mut host = as_user(&case, &script);
                let status = host
                    .current_dir(&project)
                    .status()
                    .expect("run the host's writer");
                assert!(status.success());
            },
        );
        case.assert_no_leak(&out);
        out.expect_code(0);
        out.expect_fields(&[("size", "0"), ("alive", "1")]);
        case.env.expect_logged("covered", ".env");
    });
}
