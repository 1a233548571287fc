//! The twenty-seventh review: file leases. Another program's lease on a
//! secret file must not make guard serve it unread, and a way to a file
//! the host made anew that the sandbox kept past guard's check (a
//! descriptor in flight, received later) must not reach its content. Each
//! test names the attack; each failed before the fix that came with it.

use crate::review25::{assert_ended_for_env, wait_for};
use crate::support::{Case, each_mode};
use std::time::{Duration, Instant};

/// A file under another program's lease answered the scan's `O_NONBLOCK`
/// open with EAGAIN, and the scan went on as if it held nothing: the file
/// was served as it is, and the sandbox's own (blocking) open read the
/// password once the holder let go. Now the scan waits out the lease as
/// the sandbox's open would, and the file is redacted.
#[test]
fn a_file_under_another_programs_lease_is_still_scanned() {
    each_mode(|mut case| {
        // Token-shaped: a rule of its own flags it whatever its letters.
        let password = case.add_gh_canary("leased");
        case.write(
            "config.yaml",
            &format!("name: app\nport: 8080\ndb:\n  host: localhost\n  password: {password}\n"),
        );
        case.write("holder.py", crate::common::LEASE_HOLDER);
        let project = case.project().to_path_buf();
        let holder = case
            .env
            .as_user("/usr/bin/python3")
            .args(["holder.py", "config.yaml"])
            .current_dir(&project)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the lease holder");
        let leased = wait_for(&project.join(".leased"));
        let out = case.sh("cat config.yaml");

        std::fs::write(project.join(".host-done"), "").unwrap();
        let held = holder.wait_with_output().expect("wait for the holder");
        assert!(
            leased,
            "the holder never took its lease: {}",
            String::from_utf8_lossy(&held.stderr)
        );
        case.assert_no_leak(&out);
        out.expect_code(0);
        assert!(
            out.stdout.contains("port: 8080") && out.stdout.contains("password: guard-redacted:"),
            "{}",
            out.all()
        );
        // The lease was there when guard read it: the holder let go.
        assert!(project.join(".let-go").exists(), "{}", out.all());
    });
}

/// The sandbox (Python) waits for the host's `.env.new`, opens it with
/// `O_PATH` and sends that descriptor over a unix socket (in flight, it is
/// in no process's table, and `O_PATH` opens do not count for leases: guard's
/// check after the cover sees nothing), then marks `.taken`. After the
/// host's change and past guard's check it takes the descriptor back and
/// opens the file anew through /proc (`how`: `wait`, a plain open;
/// `nonblock`, `O_NONBLOCK` opens tried for 3 s; `write`, an open for
/// writing that adds an fsmonitor to a git config), printing `read=` what
/// it gives (or `wrote=1`). The host writes the token into `.env.new` in
/// place and renames it over `.env`, as `sed -i` does (the file to take
/// is argument 2: `.env.new` by default).
const KEEP_IN_FLIGHT: &str = r#"import os, socket, sys, time
how = sys.argv[1]
new = sys.argv[2] if len(sys.argv) > 2 else '.env.new'
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
open('.started', 'w').write('1')
while not os.path.exists(new):
    time.sleep(0.002)
fd = os.open(new, os.O_PATH)
socket.send_fds(a, [b'x'], [fd])
os.close(fd)
open('.taken', 'w').write('1')
while not os.path.exists('.host-done'):
    time.sleep(0.05)
time.sleep(2.5)
_, fds, _, _ = socket.recv_fds(b, 1, 1)
print('received=%d' % len(fds), flush=True)
path = '/proc/self/fd/%d' % fds[0]
if how == 'wait':
    print('read=' + open(path).read().strip(), flush=True)
elif how == 'chmod':
    os.chmod(path, 0o644)
    print('chmod=1', flush=True)
elif how == 'write':
    with open(path, 'a') as f:
        f.write('[core]\n\tfsmonitor = "touch $MARKER"\n')
    print('wrote=1', flush=True)
else:
    deadline = time.time() + 3
    while time.time() < deadline:
        try:
            f = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            print('read=' + os.read(f, 4096).decode().strip(), flush=True)
            break
        except BlockingIOError:
            time.sleep(0.001)
    print('tried=1', flush=True)
"#;

/// Runs [`KEEP_IN_FLIGHT`] with `how`; the host makes `.env` anew
/// (`.env.new` written once the sandbox took it, mode 0600, renamed over
/// `.env`), then does `after` (given the new token).
fn keep_in_flight(case: &mut Case, how: &str, after: impl FnOnce(&str)) -> crate::common::Outcome {
    use std::os::unix::fs::PermissionsExt;
    let old = case.add_canary("old");
    let new = case.add_canary("new");
    case.write(".env", &format!("API_TOKEN={old}\n"));
    case.write("attack.py", KEEP_IN_FLIGHT);
    let project = case.project().to_path_buf();
    let fresh = project.join(".env.new");
    let mut taken = false;
    let out = case
        .env
        .with_host_change(&format!("python3 attack.py {how}"), || {
            case.env.write_on_host(".env.new", "");
            taken = wait_for(&project.join(".taken"));
            std::fs::write(&fresh, format!("API_TOKEN={new}\n")).unwrap();
            std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::fs::rename(&fresh, project.join(".env")).unwrap();
            after(&new);
        });
    case.assert_no_leak(&out);
    assert!(
        taken,
        "the sandbox never took the host's file\n{}",
        out.all()
    );
    out
}

/// Review 26's open hole: an `O_PATH` descriptor of the host's new `.env`
/// taken in the moment before guard covered it again and kept in flight
/// in a socket past guard's check was received later and opened anew
/// through /proc: the sandbox read the host's new token (3/3). Now guard
/// keeps a lease on the file for the rest of the run: the open waits, and
/// guard, seeing a process of the sandbox wait, ends the session before
/// it returns.
#[test]
fn an_o_path_descriptor_kept_in_flight_past_the_check_ends_the_session() {
    each_mode(|mut case| {
        let out = keep_in_flight(&mut case, "wait", |_| {});
        assert!(out.field("read").is_none(), "{}", out.all());
        // The descriptor came back: the attack got as far as the open.
        assert_eq!(out.field("received").as_deref(), Some("1"), "{}", out.all());
        assert_ended_for_env(&case, &out, "through a way it had kept");
    });
}

/// The same, opened without waiting (`O_NONBLOCK`): the open fails at
/// once, and nobody waits for guard to tell who it was. Letting the lease
/// go would give the next try the file: the session ends.
#[test]
fn an_o_path_descriptor_kept_in_flight_and_opened_without_waiting_ends_the_session() {
    each_mode(|mut case| {
        let out = keep_in_flight(&mut case, "nonblock", |_| {});
        assert!(out.field("read").is_none(), "{}", out.all());
        assert_eq!(out.field("received").as_deref(), Some("1"), "{}", out.all());
        assert!(
            out.field("tried").is_none(),
            "ran on for 3 s: {}",
            out.all()
        );
        assert_ended_for_env(&case, &out, "without waiting");
    });
}

/// The same for a protected file: the host's git writes `.git/config`
/// anew (`config.lock` renamed over it); a descriptor of the new file kept
/// in flight past guard's check and opened for writing later added an
/// fsmonitor to it, which the host's next `git status` ran (review 26).
/// Guard keeps a read lease on it: an open for writing waits, and ends
/// the session.
#[test]
fn a_protected_files_descriptor_kept_in_flight_cannot_write_it() {
    use crate::support::host_git;
    each_mode(|case| {
        let p = case.project().to_path_buf();
        host_git(&p, &["init", "-q"]);
        case.write("attack.py", KEEP_IN_FLIGHT);
        let before = std::fs::read_to_string(p.join(".git/config")).unwrap();
        let mut taken = false;
        let out = case
            .env
            .with_host_change("python3 attack.py write .git/config.lock", || {
                // As git does: the new config written, then renamed.
                case.env
                    .write_on_host(".git/config.lock", &format!("{before}[user]\n\tname = u\n"));
                taken = wait_for(&p.join(".taken"));
                std::fs::rename(p.join(".git/config.lock"), p.join(".git/config")).unwrap();
            });
        case.assert_no_leak(&out);
        assert!(
            taken,
            "the sandbox never took the host's file\n{}",
            out.all()
        );
        assert_eq!(out.field("received").as_deref(), Some("1"), "{}", out.all());
        assert!(out.field("wrote").is_none(), "{}", out.all());
        assert_ne!(out.code, 0, "{}", out.all());
        assert!(
            out.stderr.contains(&format!(
                "guard: ended the session: {} could no longer be kept read-only in",
                p.join(".git/config").display()
            )) && out.stderr.contains("through a way it had kept"),
            "{}",
            out.all()
        );
        let config = std::fs::read_to_string(p.join(".git/config")).unwrap();
        assert!(!config.contains("fsmonitor"), "{config}");
    });
}

/// A program of the host's that reads the new `.env` after guard covered
/// it (the user's server loading it again) is let through at once, and
/// the lease is taken again after: a way the sandbox kept still ends the
/// session when it is tried later.
#[test]
fn a_host_program_reading_the_new_file_is_let_through_and_the_lease_taken_again() {
    each_mode(|mut case| {
        let env = case.project().join(".env");
        // The user's own reader, made before (the case is the attack's then).
        let mut readers: Vec<_> = (0..3)
            .map(|_| {
                let mut cat = case.env.as_user("cat");
                cat.arg(&env);
                cat
            })
            .collect();
        let mut reads = Vec::new();
        let out = keep_in_flight(&mut case, "wait", |new| {
            // Past guard's check (1 s at most when nothing holds it).
            std::thread::sleep(Duration::from_millis(1500));
            for cat in &mut readers {
                let started = Instant::now();
                let read = cat.output().expect("run the host's reader");
                let took = started.elapsed();
                reads.push((
                    took,
                    read.status.success(),
                    String::from_utf8_lossy(&read.stdout).contains(new),
                ));
            }
        });
        for (took, ok, saw_new) in &reads {
            assert!(ok, "{}", out.all());
            assert!(saw_new, "the host read something else");
            // Not held up until the kernel breaks the lease (45 s).
            assert!(*took < Duration::from_secs(5), "{took:?}");
        }
        assert!(out.field("read").is_none(), "{}", out.all());
        assert_ended_for_env(&case, &out, "through a way it had kept");
    });
}

/// Makes (`plant`) or walks down (`read`) 17 directories of 250-byte
/// names below the project: a path longer than PATH_MAX, which the kernel
/// takes in no single call but a process reaches one `chdir` at a time.
/// `plant FILE`: hard-links `FILE` (a project file) at the bottom as
/// `x.py`, or with no `FILE` writes a token there as `secret.txt`. `read`:
/// prints the bottom's `secret.txt` and `x.py`, or `failed_at=` the level
/// and errno where the way down ended.
const DEEP: &str = r#"import os, sys
top = os.getcwd()
what = sys.argv[1]
for level in range(17):
    name = 'e' * 250
    if what == 'plant':
        os.makedirs(name, exist_ok=True)
    try:
        os.chdir(name)
    except OSError as e:
        print('failed_at=%d errno=%d' % (level, e.errno))
        sys.exit(0)
if what == 'plant':
    if len(sys.argv) > 2:
        os.link(os.path.join(top, sys.argv[2]), 'x.py')
    else:
        open('secret.txt', 'w').write(os.environ['TOKEN_LINE'])
    print('planted=1')
else:
    for f in ['secret.txt', 'x.py']:
        if os.path.exists(f):
            print('read=' + open(f).read().replace('\n', ' '))
"#;

/// The scan opened each directory by its full path: below PATH_MAX
/// (ENAMETOOLONG) it counted one "unreadable" and went on, so a token in a
/// file down there was served as it is; and a file to hide at such a path
/// could not be covered. Now the walk goes down one directory at a time,
/// and what cannot be covered hides the deepest directory above it that
/// can.
#[test]
fn a_secret_below_a_path_longer_than_path_max_is_hidden() {
    each_mode(|mut case| {
        let token = case.add_gh_canary("deep");
        case.write("deep.py", DEEP);
        let planted = case
            .env
            .as_user("/usr/bin/python3")
            .args(["deep.py", "plant"])
            .env("TOKEN_LINE", format!("token = \"{token}\"\n"))
            .current_dir(case.project())
            .output()
            .expect("plant the deep tree");
        assert!(
            String::from_utf8_lossy(&planted.stdout).contains("planted=1"),
            "{planted:?}"
        );
        let out = case.run(&["run", "--", "python3", "deep.py", "read"]);
        out.expect_code(0);
        assert!(out.field("read").is_none(), "{}", out.all());
        // The way down ends at the cover, well below the project.
        let failed = out.field("failed_at").unwrap_or_default();
        assert!(failed.ends_with("errno=2"), "{}", out.all());
        let level: u32 = failed.split(' ').next().unwrap_or("").parse().unwrap_or(0);
        assert!(level >= 10, "{}", out.all());
    });
}

/// Across two sessions: the first (hostile) plants a hard link to an
/// ordinary project file at the bottom of a tree deeper than PATH_MAX;
/// the user then puts a token into that file. The second session showed
/// the file redacted and the link, which the hard-link search never found
/// down there, as it is.
#[test]
fn a_hard_link_below_a_path_longer_than_path_max_is_hidden() {
    each_mode(|mut case| {
        case.write("app_config.py", "import os\nDEBUG = True\n");
        case.write("deep.py", DEEP);
        let planted = case.run(&["run", "--", "python3", "deep.py", "plant", "app_config.py"]);
        assert_eq!(
            planted.field("planted").as_deref(),
            Some("1"),
            "{}",
            planted.all()
        );
        let token = case.add_gh_canary("linked");
        let config = case.project().join("app_config.py");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!("API_TOKEN = \"{token}\"\n"));
        std::fs::write(&config, text).unwrap();
        let out = case.run(&[
            "run",
            "--",
            "sh",
            "-c",
            "cat app_config.py; python3 deep.py read",
        ]);
        out.expect_code(0);
        assert!(
            out.stdout.contains("API_TOKEN = \"guard-redacted:"),
            "{}",
            out.all()
        );
        assert!(out.field("read").is_none(), "{}", out.all());
        assert!(
            out.field("failed_at")
                .is_some_and(|f| f.ends_with("errno=2")),
            "{}",
            out.all()
        );
    });
}

/// A kept way to the new `.env` changes it without opening it: `chmod`
/// through /proc made the host's 0600 file readable to every user of the
/// machine, after the run too. guard sets the permissions back at the end
/// of the run and says so.
#[test]
fn permissions_changed_through_a_kept_way_are_set_back() {
    use std::os::unix::fs::PermissionsExt;
    each_mode(|mut case| {
        let out = keep_in_flight(&mut case, "chmod", |_| {});
        // The chmod went through (nothing to stop it inside).
        assert_eq!(out.field("chmod").as_deref(), Some("1"), "{}", out.all());
        let env = case.project().join(".env");
        let mode = std::fs::metadata(&env).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", out.all());
        assert!(
            out.stderr.contains("its permissions were changed"),
            "{}",
            out.all()
        );
    });
}
