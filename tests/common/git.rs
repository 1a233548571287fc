//! Shared by the tests of secrets in git history (tests/git_history.rs and
//! tests/git_history_escape.rs): git on the host, run without the user's or
//! the system's configuration, and scripts run inside in named sections,
//! with a walker that reads every object file by hand.

use super::{Env, Outcome};
use std::path::Path;
use std::process::{Command, Output};

/// A client holding a GitHub token where `{tok}` is.
pub const CLIENT_PY: &str = "import requests

GITHUB = \"{tok}\"

def repos():
    return requests.get(\"https://api.github.com/user/repos\")
";

/// What commands inside search for: all of a canary but its last two
/// characters. A leak prints the whole value; a command line echoed back
/// (by an error message, say) never does.
pub fn fragment(c: &str) -> &str {
    &c[..c.len() - 2]
}

/// `-e FRAGMENT` for each canary, for grep and git grep.
pub fn patterns(canaries: &[String]) -> String {
    canaries
        .iter()
        .map(|c| format!("-e {}", fragment(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `git ARGS` on the host in `dir`, without user or system configuration,
/// not yet run. `gc.auto=0`: git never packs on its own behind a test, so
/// the loose/packed layout a test built and checked is the one guard reads.
pub fn git_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.args([
        "-c",
        "safe.directory=*",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "-c",
        "init.defaultBranch=main",
        "-c",
        "gc.auto=0",
    ])
    .args(args)
    .current_dir(dir)
    .env("GIT_CONFIG_GLOBAL", "/dev/null")
    .env("GIT_CONFIG_NOSYSTEM", "1")
    // One date for every commit, as on a fast machine: the order in which
    // git walks unrelated histories (`fast-export --all`: notes, stash,
    // tags) follows their dates, and a slow machine spread them apart.
    .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
    .env("GIT_AUTHOR_DATE", "@1700000000 +0000");
    cmd
}

/// `git ARGS` on the host in `dir`, whatever its outcome.
pub fn git_output(dir: &Path, args: &[&str]) -> Output {
    git_command(dir, args)
        .output()
        .unwrap_or_else(|e| panic!("git must be installed for the git history tests: {e}"))
}

/// `git ARGS` on the host, which must succeed: its stdout. A failure shows
/// stderr only (stdout may hold a secret).
pub fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let o = git_output(dir, args);
    assert!(
        o.status.success(),
        "host git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

pub fn git_text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(git(dir, args)).expect("utf-8")
}

/// Stage everything and commit it.
pub fn commit(dir: &Path, msg: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
}

/// (loose objects, packs) as `git count-objects -v` reports them.
pub fn object_counts(dir: &Path) -> (u64, u64) {
    let text = git_text(dir, &["count-objects", "-v"]);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {text}"))
    };
    (field("count:"), field("packs:"))
}

/// The host repository is sound (`git fsck --full`) and every `rev:path`
/// of `committed` still reads as committed there, secrets included.
pub fn assert_host_intact(repo: &Path, committed: &[(String, String)]) {
    let o = git_output(repo, &["fsck", "--full"]);
    assert!(
        o.status.success(),
        "git fsck --full on the host failed in {}: {}",
        repo.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    for (spec, want) in committed {
        let got = git(repo, &["show", spec]);
        // Never print the bytes: they hold the secret.
        assert!(
            got == want.as_bytes(),
            "on the host, `git show {spec}` no longer gives what was committed"
        );
    }
}

/// A shell prelude for scripts run inside: `git` with an identity, no pager
/// and, as on the host, no automatic gc (a commit inside never repacks what
/// a later section reads, unless the test asks); `run NAME 'COMMAND'` prints
/// COMMAND's output (stdout and stderr) between markers with its exit
/// status; /tmp/walk.py DIR... prints every file below the directories (but
/// the sample hooks), every loose object inflated, and every zlib stream
/// found at any offset of every pack.
pub const PRELUDE: &str = r#"
git() { command git -c safe.directory='*' -c user.name=t -c user.email=t@t -c core.pager=cat -c color.ui=never -c gc.auto=0 "$@"; }
run() { printf '<<<%s\n' "$1"; eval "$2" 2>&1; printf '\n>>>%s rc=%s\n' "$1" "$?"; }
cat > /tmp/walk.py <<'EOF'
import os, sys, zlib
w = sys.stdout.buffer.write
hexd = set("0123456789abcdef")
loose = streams = unreadable = 0
for top in sys.argv[1:]:
    for d, dirs, files in os.walk(top):
        dirs[:] = sorted(x for x in dirs if x != "hooks")
        for f in sorted(files):
            p = os.path.join(d, f)
            try:
                data = open(p, "rb").read()
            except OSError as e:
                w(b"unreadable %s errno=%d\n" % (p.encode(), e.errno))
                unreadable += 1
                continue
            parent = os.path.basename(d)
            if len(parent) == 2 and len(f) == 38 and set(parent + f) <= hexd:
                try:
                    w(zlib.decompress(data) + b"\n")
                    loose += 1
                except zlib.error:
                    w(b"bad loose object %s\n" % p.encode())
            elif f.endswith(".pack"):
                mv = memoryview(data)
                for i in range(len(data)):
                    z = zlib.decompressobj()
                    try:
                        out = z.decompress(mv[i:])
                    except zlib.error:
                        continue
                    if z.eof and out:
                        w(out + b"\n")
                        streams += 1
            elif not f.endswith((".idx", ".rev")):
                w(data + b"\n")
w(b"walked loose=%d streams=%d unreadable=%d\n" % (loose, streams, unreadable))
EOF
run tools 'command -v git && command -v python3'
"#;

/// The output of a script built on [`PRELUDE`], by section.
pub struct Sections(pub Outcome);

impl Sections {
    /// `BODY` run inside, in the project.
    pub fn run(env: &Env, body: &str) -> Sections {
        Sections::run_in(env, &env.project.path, &[], body)
    }

    /// In `cwd` (the project), with extra `guard run` options (a profile).
    pub fn run_in(env: &Env, cwd: &Path, opts: &[&str], body: &str) -> Sections {
        let script = format!("{PRELUDE}{body}\ntrue\n");
        let mut args = vec!["run"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["--", "sh", "-c", &script]);
        let out = Outcome::from(
            env.guard(&args)
                .current_dir(cwd)
                .output()
                .expect("spawn guard"),
        );
        out.expect_code(0);
        let s = Sections(out);
        // Fail loudly when the tools the attacks need are missing.
        s.ok("tools");
        s
    }

    /// (exit status, output) of section `name`.
    pub fn get(&self, name: &str) -> (i32, &str) {
        let out = &self.0.stdout;
        let start = format!("<<<{name}\n");
        let end = format!("\n>>>{name} rc=");
        let s = out
            .find(&start)
            .unwrap_or_else(|| panic!("no section {name} in\n{}", self.0.all()))
            + start.len();
        let e = s + out[s..]
            .find(&end)
            .unwrap_or_else(|| panic!("section {name} not closed in\n{}", self.0.all()));
        let rc = out[e + end.len()..]
            .lines()
            .next()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no exit status for {name}"));
        (rc, &out[s..e])
    }

    /// The output of section `name`, which must have succeeded.
    pub fn ok(&self, name: &str) -> &str {
        let (rc, body) = self.get(name);
        assert_eq!(rc, 0, "`{name}` failed inside the sandbox:\n{body}");
        body
    }

    /// Every section of `names` succeeded.
    pub fn ok_all(&self, names: &[&str]) {
        for name in names {
            self.ok(name);
        }
    }

    /// The output of section `name`, which must have succeeded and hold
    /// every one of `needles` (`ctx` says which case failed).
    pub fn ok_containing(&self, name: &str, needles: &[&str], ctx: &str) -> &str {
        let body = self.ok(name);
        for needle in needles {
            assert!(
                body.contains(needle),
                "{ctx}: {needle:?} missing from `{name}`:
{body}"
            );
        }
        body
    }

    /// Section `name`, a grep: exit status 1 and no output
    /// (not 2, an error, which would prove nothing).
    pub fn assert_found_nothing(&self, name: &str, what: &str) {
        let (rc, found) = self.get(name);
        assert_eq!((rc, found.trim()), (1, ""), "{what}");
    }

    /// (loose objects, pack streams) that walk.py inflated, in section `name`.
    pub fn walked(&self, name: &str) -> (u64, u64) {
        let body = self.ok(name);
        let line = body
            .lines()
            .find_map(|l| l.strip_prefix("walked "))
            .unwrap_or_else(|| panic!("walk.py did not finish:\n{body}"));
        let field = |k: &str| -> u64 {
            line.split(' ')
                .find_map(|f| f.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {line}"))
        };
        assert_eq!(field("unreadable="), 0, "walk.py could not read files");
        (field("loose="), field("streams="))
    }

    /// None of `canaries` appears anywhere in what the script printed.
    pub fn assert_no_canary(&self, canaries: &[String]) {
        for c in canaries {
            self.0.assert_no_canary(c);
        }
    }
}
