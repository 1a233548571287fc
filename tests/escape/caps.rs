//! Capabilities: the command holds none — even when guard runs as root —
//! cannot get any back, and setuid or file-capability programs give none.

use crate::common::Mode;
use crate::support::{Case, Expect, each_mode, errno::*};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Every capability set is empty, no_new_privs is set and seccomp filters —
/// for the command, for a program it execs, and for pid 1.
#[test]
fn capability_sets_empty() {
    each_mode(|case| {
        let out = case.python(
            r#"
import subprocess
def status(text, who):
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
            out(who + "_" + k, v.strip())
status(open("/proc/self/status").read(), "self")
status(subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True).stdout, "exec")
status(open("/proc/1/status").read(), "pid1")
"#,
        );
        for who in ["self", "exec", "pid1"] {
            let zero = "0000000000000000";
            out.fields(&[
                (&format!("{who}_CapInh"), zero),
                (&format!("{who}_CapPrm"), zero),
                (&format!("{who}_CapEff"), zero),
                (&format!("{who}_CapBnd"), zero),
                (&format!("{who}_CapAmb"), zero),
                (&format!("{who}_NoNewPrivs"), "1"),
                (&format!("{who}_Seccomp"), "2"),
            ]);
        }
    });
}

/// Nothing gives capabilities back: securebits are locked (root gains none
/// at exec), no_new_privs cannot be cleared, ambient and permitted sets
/// cannot be raised, and privileged calls fail.
#[test]
fn capabilities_cannot_be_regained() {
    each_mode(|case| {
        case.python(
            r#"
PR_CAPBSET_READ, PR_GET_SECUREBITS, PR_SET_SECUREBITS = 23, 27, 28
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 38, 47, 2
CAP_SYS_ADMIN = 21
out("securebits", sc(157, PR_GET_SECUREBITS, 0, 0, 0, 0)[0])
out("clear_securebits", sc(157, PR_SET_SECUREBITS, 0, 0, 0, 0)[1])
out("clear_nnp", sc(157, PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0)[1])
out("ambient_raise", sc(157, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0)[1])
out("bounding_has_admin", sc(157, PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0)[0])
hdr = struct.pack("=Ii", 0x20080522, 0)
data = struct.pack("=6I", 1 << CAP_SYS_ADMIN, 1 << CAP_SYS_ADMIN, 0, 0, 0, 0)
out("capset_raise", sc(126, hdr, data)[1])
out("sethostname", sc(170, b"pwned", 5)[1])
out("setuid_other", err(os.setuid, 4242))
out("setgroups", err(os.setgroups, [0]))
out("uid_map", err(os.open, "/proc/self/uid_map", os.O_WRONLY))
"#,
        )
        .fields(&[
            // NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE and the lock bits
            // of all three plus KEEP_CAPS_LOCKED.
            ("securebits", "239"),
            ("clear_securebits", EPERM),
            ("clear_nnp", EINVAL),
            ("ambient_raise", EPERM),
            ("bounding_has_admin", "0"),
            ("capset_raise", EPERM),
            ("sethostname", EPERM),
            // Only the caller's uid exists in the user namespace.
            ("setuid_other", EINVAL),
            ("setgroups", EPERM),
            ("uid_map", EACCES),
        ]);
    });
}

/// A setuid-root program and a program with file capabilities (built on the
/// host by root in the project) give nothing inside: every mount is nosuid
/// and no_new_privs is set. On the host, the same files do elevate (control),
/// so the fixture is real.
#[test]
fn setuid_and_file_caps_give_nothing() {
    assert!(
        crate::common::is_root(),
        "this test builds a setuid-root binary and must run as root (as CI does)"
    );
    each_mode(|case| {
        let suid = case.project().join("suid-probe");
        let fcap = case.project().join("fcap-probe");
        build_probe(&case, &suid);
        build_probe(&case, &fcap);
        std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755))
            .expect("chmod u+s");
        set_file_caps(&fcap);

        // Control on the host, as uid 65534: the probes do elevate there.
        let host = |p: &Path| {
            let o = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(p)
                .output()
                .expect("run probe on the host");
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let h = host(&suid);
        assert!(
            h.contains("euid=0\n"),
            "control: the setuid bit does not work on the host here:\n{h}"
        );
        let h = host(&fcap);
        assert!(
            !h.contains("capeff=0000000000000000"),
            "control: file caps do not work on the host here:\n{h}"
        );

        let uid = case.sandbox_uid().to_string();
        let out = case.sh(
            r#"
./suid-probe | sed 's/^/suid_/'
./fcap-probe | sed 's/^/fcap_/'
awk '$0 !~ /nosuid/ { bad = bad $5 " " } END { print "without_nosuid=" (bad == "" ? "none" : bad) }' /proc/self/mountinfo
"#,
        );
        out.fields(&[
            ("suid_ran", "1"),
            ("suid_euid", &uid),
            ("suid_ruid", &uid),
            ("suid_capeff", "0000000000000000"),
            ("fcap_ran", "1"),
            ("fcap_euid", &uid),
            ("fcap_capeff", "0000000000000000"),
            ("without_nosuid", "none"),
        ]);
        if case.mode() == Mode::Unprivileged {
            // uid 0 is not even mapped in this user namespace.
            assert_ne!(uid, "0");
        }
    });
}

const PROBE: &str = r#"
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    printf("ran=1\neuid=%d\nruid=%d\n", (int)geteuid(), (int)getuid());
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "CapEff:\t", 8)) printf("capeff=%s", line + 8);
    return 0;
}
"#;

/// Compile the probe on the host, owned by root.
fn build_probe(case: &Case, dst: &Path) {
    let src = case.project().join("probe.c");
    std::fs::write(&src, PROBE).expect("write probe source");
    let st = Command::new("cc")
        .arg("-o")
        .arg(dst)
        .arg(&src)
        .status()
        .expect("run cc on the host");
    assert!(st.success(), "cc failed on the host");
    std::os::unix::fs::chown(dst, Some(0), Some(0)).expect("chown probe to root");
}

/// Give `path` every capability as permitted+effective file capabilities
/// (security.capability, VFS_CAP_REVISION_2).
fn set_file_caps(path: &Path) {
    let mut v = Vec::new();
    v.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes()); // revision 2, effective
    v.extend_from_slice(&u32::MAX.to_le_bytes()); // permitted, caps 0-31
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable
    v.extend_from_slice(&0x1ffu32.to_le_bytes()); // permitted, caps 32-40
    v.extend_from_slice(&0u32.to_le_bytes());
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            c"security.capability".as_ptr(),
            v.as_ptr().cast(),
            v.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr security.capability: {}",
        std::io::Error::last_os_error()
    );
}

/// The command must not leave a setuid or setgid program behind: the
/// project's mount is nosuid inside, but on the host it is not, so such a
/// file runs with its owner's identity for whoever executes it later —
/// with guard run as root, a root shell for every local user. Tried with
/// chmod, fchmod, fchmodat, creat with the bits in the mode, and
/// install(1); the verdict is the host's view of the files after the run.
/// File capabilities are refused (no CAP_SETFCAP).
#[test]
fn setuid_files_not_left_behind() {
    each_mode(|case| {
        let out = case.python(
            r#"
import shutil, subprocess
def plant(name):
    shutil.copy("/bin/sh", name)
    return name
out("chmod", err(os.chmod, plant("s_chmod"), 0o4755))
fd = os.open(plant("s_fchmod"), os.O_RDONLY)
out("fchmod", err(os.fchmod, fd, 0o6755))
out("fchmodat", sc(268, -100, plant("s_fchmodat").encode(), 0o2755)[1])
def creat():
    fd = os.open("s_creat", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o4755)
    os.write(fd, open("/bin/sh", "rb").read())    # the kernel clears the bit on write
    os.close(fd)
out("creat", err(creat))
out("install", subprocess.run(["install", "-m", "4755", "/bin/sh", "s_install"]).returncode)
caps = struct.pack("<5I", 0x02000001, 0xffffffff, 0, 0x1ff, 0)   # every capability, effective
out("file_caps", err(os.setxattr, plant("s_fcaps"), "security.capability", caps))
"#,
        );
        // File capabilities need CAP_SETFCAP, which the command lacks; the
        // setuid/setgid modes are refused by the seccomp filter.
        out.fields(&[
            ("file_caps", EPERM),
            ("chmod", EPERM),
            ("fchmod", EPERM),
            ("fchmodat", EPERM),
            ("creat", EPERM),
        ]);
        let mut planted = Vec::new();
        for name in ["s_chmod", "s_fchmod", "s_fchmodat", "s_creat", "s_install"] {
            let p = case.project().join(name);
            // Refused before the file existed (creat, install): nothing left.
            let Ok(meta) = std::fs::metadata(&p) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if mode & 0o6000 != 0 {
                planted.push(format!(
                    "{name} {:o} owner {}",
                    mode & 0o7777,
                    std::os::unix::fs::MetadataExt::uid(&meta)
                ));
            }
        }
        assert!(
            planted.is_empty(),
            "setuid/setgid programs left in the project (run as uid {}): {planted:?}\n{}",
            case.sandbox_uid(),
            out.stdout
        );
    });
}
