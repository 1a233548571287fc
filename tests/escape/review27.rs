//! The twenty-seventh review: file leases. Another program's lease on a
//! secret file must not make guard serve it unread, and a way to a file
//! the host made anew that the sandbox kept past guard's check (a
//! descriptor in flight, received later) must not reach its content. Each
//! test names the attack; each failed before the fix that came with it.

use crate::support::each_mode;
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

/// Holds a write lease on `config.yaml` as a file server's oplock does
/// (Samba's kernel oplocks are leases), marks `.leased`, and lets go when
/// the kernel says another program opens the file.
const LEASE_HOLDER: &str = r#"import fcntl, os, signal, time
F_SETLEASE = 1024
fd = os.open('config.yaml', os.O_RDONLY)
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

/// A file under another program's lease answered the scan's `O_NONBLOCK`
/// open with EAGAIN, and the scan went on as if it held nothing: the file
/// was served as it is, and the sandbox's own (blocking) open read the
/// password once the holder let go. Now the scan waits out the lease as
/// the sandbox's open would, and the file is redacted.
#[test]
fn a_file_under_another_programs_lease_is_still_scanned() {
    each_mode(|mut case| {
        let password = case.add_canary("leased");
        case.write(
            "config.yaml",
            &format!("name: app\nport: 8080\ndb:\n  host: localhost\n  password: {password}\n"),
        );
        case.write("holder.py", LEASE_HOLDER);
        let project = case.project().to_path_buf();
        let holder = case
            .env
            .as_user("/usr/bin/python3")
            .arg("holder.py")
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
