//! Review 24: `guard prune` and the removal of guard's per-project state,
//! the refusal of this machine's own addresses and subnets, and the
//! terminal's modes put back after a session. Each test that found a hole
//! names it.

use crate::support::{Case, Expect, each_mode};
use std::path::PathBuf;

/// Removes what a test's sandbox made too deep for the harness's own
/// clean-up (`remove_dir_all` recurses, on a test thread's 2 MiB stack),
/// with coreutils' `rm`, which walks any depth: dropped before the
/// [`Case`], also when the test fails and guard left the tree.
struct RmDeep(Vec<PathBuf>);

impl Drop for RmDeep {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::process::Command::new("rm").arg("-rf").arg(p).status();
        }
    }
}

/// A profile with a persistent home (`~/.local/share/guard/homes/…`),
/// which the sandbox writes and `guard prune` removes later.
fn persistent_profile(case: &Case) {
    case.env.home.write(
        ".config/guard/profiles/keeper.toml",
        "version = 1\nextends = [\"default\"]\n[home]\npersist = true\n",
    );
    case.env.own();
}

/// How deep the sandbox's tree goes: well past what a recursion per level
/// took on guard's 8 MiB main stack.
const DEPTH: usize = 15_000;

/// Python that makes a chain of `DEPTH` directories below `base` (one
/// `mkdir` + `chdir` at a time: the whole path is far over PATH_MAX) and
/// leaves the deepest read-only and the one above it closed (mode 000), as
/// Go's module cache and overlayfs's work directory are.
fn deep_tree(base: &str) -> String {
    format!(
        "import os\nos.chdir({base})\nfor i in range({DEPTH}):\n    os.mkdir('d')\n    os.chdir('d')\n\
         open('f', 'w').write('x')\nos.chdir('..')\nos.chmod('d', 0o555)\nos.chdir('..')\nos.chmod('d', 0)\n\
         print('made=%d' % {DEPTH})\n"
    )
}

/// Hole: a session can make a directory tree tens of thousands of levels
/// deep in its persistent home (it may write there). `guard prune` (and
/// `--dry-run`) walked it with a recursion per level and overflowed its
/// stack: guard crashed (SIGSEGV after "has overflowed its stack") and
/// the project's state stayed. Now the walk is a loop: the home is sized,
/// then removed, closed and read-only directories included.
#[test]
fn a_tree_deeper_than_the_stack_in_the_agent_home_is_pruned() {
    each_mode(|case| {
        persistent_profile(&case);
        let _rm = RmDeep(vec![case.home().join(".local/share/guard/homes")]);
        let out = case.run(&[
            "run",
            "-q",
            "-p",
            "keeper",
            "--",
            "python3",
            "-c",
            &deep_tree("os.path.expanduser('~')"),
        ]);
        out.expect_code(0)
            .expect_fields(&[("made", &DEPTH.to_string())]);
        let home = case.env.persistent_home("keeper");
        assert!(home.join("d/d").is_dir(), "no tree in {}", home.display());
        let project = case.project().to_str().unwrap();
        let dry = case.run(&["prune", "--dry-run", "--project", project]);
        dry.expect_code(0);
        assert!(
            dry.stdout.contains(&format!("would remove {project}")),
            "{}",
            dry.all()
        );
        assert!(home.join("d").is_dir(), "a dry run removed it");
        let out = case.run(&["prune", "--project", project]);
        out.expect_code(0);
        assert!(
            out.stdout.contains(&format!("removed {project}")),
            "{}",
            out.all()
        );
        assert!(!out.stderr.contains("overflow"), "{}", out.all());
        assert!(
            std::fs::symlink_metadata(&home).is_err(),
            "{} was kept: {}",
            home.display(),
            out.all()
        );
    });
}

/// Hole: the same tree in a `landlock`-level session's private TMPDIR
/// (guard's per-session directory, removed when the session ends) made
/// guard overflow its stack at the end of the session: guard died of
/// SIGSEGV instead of exiting with the command's status, and the session
/// directory stayed. Now it is removed and the status is the command's.
#[test]
fn a_tree_deeper_than_the_stack_in_a_landlock_session_is_removed_at_its_end() {
    each_mode(|case| {
        let _rm = RmDeep(vec![case.home().join(".cache/guard/sessions")]);
        let out = case.run(&[
            "run",
            "-q",
            "--isolation",
            "landlock",
            "--",
            "/usr/bin/python3",
            "-c",
            &format!(
                "{}print('tmp=' + os.environ['TMPDIR'])\n",
                deep_tree("os.environ['TMPDIR']")
            ),
        ]);
        out.expect_code(0)
            .expect_fields(&[("made", &DEPTH.to_string())]);
        assert!(!out.stderr.contains("overflow"), "{}", out.all());
        let tmp = out.field("tmp").expect("the session's TMPDIR");
        assert!(
            std::fs::symlink_metadata(&tmp).is_err(),
            "{tmp} was kept: {}",
            out.all()
        );
    });
}

/// Hole: this machine's own address, and its subnet, spelled as the IPv6
/// forms that embed an IPv4 address a translator dials: NAT64
/// (`64:ff9b::c000:202` for 192.0.2.2) and 6to4 (`2002:c000:202::1`).
/// Their class is that of the IPv4 address (documentation range here,
/// public on a VPS), and the interface check compared them only with the
/// interfaces' IPv6 addresses: a name pinned (or resolving) to them was
/// dialed, and on a network with a NAT64 gateway (IPv6-only networks with
/// DNS64) that reaches this machine's services and its LAN. Now they are
/// refused as local (403 naming the class, SOCKS reply 2, a refuse event).
/// Held, checked alongside: the IPv4-mapped form (`::ffff:192.0.2.2`, a
/// class of its own), the subnet's broadcast address, `0.0.0.0` and `::`
/// (which a connect takes for this machine), and IPv6 link-local with a
/// scope. The service sees no connection from the sandbox.
#[test]
fn this_machines_address_in_ipv6_forms_is_not_public() {
    use crate::egress_layer::{Loopback, PROXY, assert_refused, run_logged};
    let ip = crate::network::machine_ipv4();
    let o = ip.octets();
    let (hi, lo) = (
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    );
    // Another address of the machine's subnet (at least a /24 here).
    let neighbour = u16::from_be_bytes([o[2], if o[3] == 1 { 2 } else { 1 }]);
    let broadcast = std::net::Ipv4Addr::new(o[0], o[1], o[2], 255);
    let pins = [
        (
            "nat64",
            format!("64:ff9b::{hi:x}:{lo:x}"),
            "local (this machine's own)",
        ),
        (
            "sixtofour",
            format!("2002:{hi:x}:{lo:x}::1"),
            "local (this machine's own)",
        ),
        (
            "nat64lan",
            format!("64:ff9b::{hi:x}:{neighbour:x}"),
            "local-network (on a subnet of this machine's interfaces)",
        ),
        ("mapped", format!("::ffff:{ip}"), "IPv4-mapped IPv6 address"),
        (
            "broadcast",
            broadcast.to_string(),
            "local-network (on a subnet of this machine's interfaces)",
        ),
        ("zero", "0.0.0.0".to_string(), "unspecified (0.0.0.0/8)"),
        ("zero6", "::".to_string(), "unspecified (::)"),
        ("linklocal", "fe80::1".to_string(), "link-local (fe80::/10)"),
    ];
    each_mode(|mut case| {
        let srv = Loopback::start_on(&mut case, "[::]:0");
        let port = srv.port;
        let allow: Vec<String> = pins
            .iter()
            .map(|(n, _, _)| format!("\"{n}.guard.test:{port}\""))
            .collect();
        let hosts: String = pins
            .iter()
            .map(|(n, a, _)| format!("\"{n}.guard.test\" = \"{a}\"\n"))
            .collect();
        let prof = case.write(
            "embedded.toml",
            &format!(
                "{}\n[network]\nallow = [{}]\n\n[network.hosts]\n{hosts}",
                include_str!("../../profiles/default.toml"),
                allow.join(", ")
            ),
        );
        let names: Vec<String> = pins.iter().map(|(n, _, _)| format!("b{n:?}")).collect();
        case.write_python(&format!(
            r#"{PROXY}
def body(req):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(req)
    d = b""
    while True:
        c = s.recv(4096)
        if not c:
            break
        d += c
    return d
for name in ({names}):
    t = name + b".guard.test:{port}"
    out(name.decode() + "_connect", proxy(b"CONNECT " + t + b" HTTP/1.1\r\nHost: " + t + b"\r\n\r\n"))
    r = body(b"GET http://" + t + b"/ HTTP/1.1\r\nHost: " + t + b"\r\nConnection: close\r\n\r\n")
    out(name.decode() + "_get", r.split(b" ")[1].decode() if b" " in r else "none")
    cls = r.split(b", a ", 1)[1].split(b" address, and", 1)[0].decode() if b" address, and" in r else "none"
    out(name.decode() + "_class", cls.replace(" ", "_"))
    out(name.decode() + "_socks", socks(name + b".guard.test", {port}))
"#,
            names = names.join(", ") + ","
        ));
        let (out, log) = run_logged(&case, &["-p", prof.to_str().unwrap()]);
        let mut expected = Vec::new();
        for (n, _, class) in &pins {
            expected.push((format!("{n}_connect"), "403".to_string()));
            expected.push((format!("{n}_get"), "403".to_string()));
            expected.push((format!("{n}_class"), class.replace(' ', "_")));
            expected.push((format!("{n}_socks"), "2".to_string()));
        }
        let expected: Vec<(&str, &str)> = expected
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        out.fields(&expected);
        for (n, _, _) in &pins {
            assert_refused(&log, &format!("{n}.guard.test"), "non-public-address");
        }
        assert_eq!(srv.finish(), 0, "the service was reached from the sandbox");
        case.assert_no_leak(&out);
    });
}

/// Held: what a session leaves in its persistent home cannot make
/// `guard prune` block or reach outside guard's state: a FIFO (opening it
/// would wait for a writer), a unix socket, a link to the project and one
/// to `/`, a link to itself, and a directory it closed (mode 000) holding
/// a link to the project. A hard link to a project file cannot be made
/// (the home is another mount: EXDEV). Prune removes the home, exits 0,
/// and the project's file is untouched.
#[test]
fn what_a_session_leaves_in_its_home_cannot_steer_prune() {
    each_mode(|case| {
        persistent_profile(&case);
        case.write("keep.txt", "keep me\n");
        let out = case.run(&[
            "run",
            "-q",
            "-p",
            "keeper",
            "--",
            "python3",
            "-c",
            "import os, socket\n\
             h = os.path.expanduser('~')\n\
             p = os.getcwd()\n\
             os.mkfifo(h + '/fifo')\n\
             socket.socket(socket.AF_UNIX).bind(h + '/sock')\n\
             os.symlink(p + '/keep.txt', h + '/to-project')\n\
             os.symlink('/', h + '/to-root')\n\
             os.symlink(h + '/loop', h + '/loop')\n\
             os.mkdir(h + '/closed')\n\
             os.symlink(p, h + '/closed/project')\n\
             os.chmod(h + '/closed', 0)\n\
             try:\n    os.link(p + '/keep.txt', h + '/hard')\n    print('hard=made')\n\
             except OSError as e:\n    print('hard=errno-%d' % e.errno)\n\
             print('planted=1')\n",
        ]);
        out.expect_code(0)
            .expect_fields(&[("planted", "1"), ("hard", "errno-18")]);
        let home = case.env.persistent_home("keeper");
        let project = case.project().to_str().unwrap();
        let out = case.run(&["prune", "--project", project]);
        out.expect_code(0);
        assert!(
            out.stdout.contains(&format!("removed {project}")),
            "{}",
            out.all()
        );
        assert!(
            std::fs::symlink_metadata(&home).is_err(),
            "{} was kept: {}",
            home.display(),
            out.all()
        );
        assert_eq!(
            std::fs::read_to_string(case.project().join("keep.txt")).unwrap(),
            "keep me\n"
        );
        assert!(std::path::Path::new("/usr/bin").is_dir());
    });
}
