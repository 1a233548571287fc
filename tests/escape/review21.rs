//! Review 21: the kernel and process surface as the sandboxed command sees
//! it — core dumps, the user's terminal as a kernel object that outlives
//! the session, socket families reached through socketpair(2), and pid 1's
//! descriptors through /proc.

use crate::support::{Expect, each_mode, errno::*};

/// Hole (defense in depth): guard left RLIMIT_CORE as the caller had it,
/// and the hard limit is mostly unlimited, so the command raised the soft
/// limit (`ulimit -c unlimited`) and a crash handed its memory to the
/// host: with a plain `core_pattern` the kernel wrote a core file (here,
/// `core` in the project); with a pipe (systemd-coredump, apport) a helper
/// running as root in the host's namespaces receives and parses it. Now
/// the command starts with soft and hard limit 0 and cannot raise either;
/// a crashing process dumps nothing.
#[test]
fn core_dumps_are_off_and_cannot_be_turned_on() {
    each_mode(|case| {
        case.write_python(
            r#"
import resource, signal
soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
out("soft", soft)
out("hard", hard)
def raise_to(soft, hard):                                    # prlimit64(0, RLIMIT_CORE, new, NULL)
    new = struct.pack("=QQ", soft, hard)
    return sc(302, 0, 4, ctypes.c_char_p(new), None)[1]
out("raise_hard", raise_to(1 << 20, 1 << 20))
out("raise_inf", raise_to((1 << 64) - 1, (1 << 64) - 1))
pattern = open("/proc/sys/kernel/core_pattern").read().strip()
out("pattern_is_pipe", int(pattern.startswith("|")))
def crash(where):
    pid = os.fork()
    if pid == 0:
        os.chdir(where)
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    return "sig%d,dumped%d" % (os.WTERMSIG(st) if os.WIFSIGNALED(st) else 0, int(os.WCOREDUMP(st)))
out("crash_project", crash(os.getcwd()))
out("crash_tmp", crash("/tmp"))
cores = [d + "/" + n for d in (os.getcwd(), "/tmp") for n in os.listdir(d) if n.startswith("core")]
out("core_files", ",".join(cores) or "none")
"#,
        );
        // `ulimit` as a shell user would try it, then the same through
        // setrlimit(2) and a crash.
        let out = case.sh("echo shell_hard=$(ulimit -Hc); \
             (ulimit -c unlimited) 2>/dev/null && echo shell_raise=ok || echo shell_raise=refused; \
             python3 attack.py");
        out.ran().fields(&[
            ("shell_hard", "0"),
            ("shell_raise", "refused"),
            ("soft", "0"),
            ("hard", "0"),
            ("raise_hard", EPERM),
            ("raise_inf", EPERM),
            ("core_files", "none"),
        ]);
        // With a pipe pattern the kernel starts the helper whatever the
        // limit (it passes the limit on); with a file pattern it writes
        // nothing and says so in the wait status.
        let dumped = if out.get("pattern_is_pipe") == "1" {
            out.get("crash_project")
                .split(',')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_default()
        } else {
            "dumped0".to_string()
        };
        out.fields(&[
            ("crash_project", &format!("sig11,{dumped}")),
            ("crash_tmp", &format!("sig11,{dumped}")),
        ]);
    });
}

