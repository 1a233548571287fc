//! Attacks on the protection of secrets in git history, as a hostile agent
//! inside `guard run` would try them, and as a hostile repository (cloned
//! from an attacker) would: files hidden by a path rule whose content alone
//! looks harmless, history split across packs, repositories not named
//! `.git`, objects borrowed through `alternates`, links and fifos planted in
//! `.git/objects` by an earlier session (guard reads those files on the
//! host, unsandboxed, before every run), and packs built to make guard
//! spend unbounded time. Every case checks that the attack ran (git read
//! the history, the planted file was there), that it failed for the right
//! reason, and that no canary was printed. Every case runs in every mode.
//!
//! Token-shaped values are assembled at run time, so this file itself holds
//! nothing guard's scanner would flag.

mod common;

use common::git::{
    CLIENT_PY, Sections, assert_host_intact, commit, fragment, git, git_command, git_text,
    object_counts, patterns,
};
use common::{Env, Mode, Outcome, canary, gh_canary, modes};
use std::path::Path;
use std::process::{Command, Stdio};

/// `git ARGS` on the host with `input` on stdin, which must succeed: its
/// stdout.
fn git_stdin(dir: &Path, args: &[&str], input: &str) -> Vec<u8> {
    use std::io::Write;
    let mut child = git_command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn git");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to git");
    let out = child.wait_with_output().expect("wait git");
    assert!(out.status.success(), "git {args:?}");
    out.stdout
}

/// Every object's name in the repository at `dir`, as git lists them.
fn all_objects(dir: &Path) -> Vec<String> {
    git_text(
        dir,
        &[
            "cat-file",
            "--batch-all-objects",
            "--batch-check=%(objectname)",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// Pack exactly `objects` (names) into a new pack of the repository.
fn pack_objects(dir: &Path, objects: &[String], extra: &[&str]) {
    let mut args = vec!["pack-objects", "-q"];
    args.extend_from_slice(extra);
    args.push(".git/objects/pack/pack");
    git_stdin(dir, &args, &(objects.join("\n") + "\n"));
}

// ---------------------------------------------------------------------
// Path rules: files hidden for what they are, not for what they contain.
// ---------------------------------------------------------------------

/// Where the objects of the path-rule project are.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    Loose,
    Packed,
    /// Commits and root trees in one pack, every subtree and blob in
    /// another: a tree's name is in a different pack than its entries.
    Split,
    /// Committed under harmless names, packed, seen by a first run; then
    /// the directories renamed into place by a new commit (loose): the
    /// subtrees are old, only the root naming them is new.
    RenamedAfterARun,
}

/// Files that the worktree scan hides by path rule alone: low-entropy
/// values no content rule matches. (path, harmless name it is committed
/// under first for `RenamedAfterARun`, content.)
fn path_rule_files(c: &[String]) -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            ".aws/credentials",
            "awsconf/credentials",
            format!("[profile {}]\nregion = eu-west-1\noutput = json\n", c[0]),
        ),
        (
            "deploy/.kube/config",
            "deploy/kubeconf/config",
            format!("apiVersion: v1\nkind: Config\nusers:\n- name: {}\n", c[1]),
        ),
        (
            "ops/.ssh/config",
            "ops/sshconf/config",
            format!("Host bastion\n  User {}\n  Port 2222\n", c[2]),
        ),
        (
            ".docker/config.json",
            "dockerconf/config.json",
            format!("{{\"credsStore\": \"{}\"}}\n", c[3]),
        ),
        (
            "keys/id_ed25519",
            "keys/deploy_key",
            format!("comment {}\n", c[4]),
        ),
    ]
}

struct PathRuleProject {
    env: Env,
    canaries: Vec<String>,
    /// The same shape of content under a path no rule names, with its own
    /// canary: shows the content alone is not flagged.
    control: String,
    committed: Vec<(String, String)>,
}

/// A repository whose first commit added the files of [`path_rule_files`]
/// (and a README, and `notes/plain.txt` with a canary in the same shape),
/// whose second removed them: only the history holds them.
fn path_rule_project(mode: Mode, layout: Layout) -> PathRuleProject {
    let env = Env::new(mode);
    let dir = env.project.path.clone();
    let canaries: Vec<String> = (0..5).map(|i| canary(&format!("pr{i}"))).collect();
    let control = canary("plain");
    let files = path_rule_files(&canaries);
    let p = &env.project;
    p.write("README", "tooling\n");
    p.write(
        "notes/plain.txt",
        &format!("[profile {control}]\nregion = eu-west-1\noutput = json\n"),
    );
    let renamed = layout == Layout::RenamedAfterARun;
    for (path, first, content) in &files {
        p.write(if renamed { first } else { path }, content);
    }
    git(&dir, &["init", "-q"]);
    commit(&dir, "add the configuration");
    if renamed {
        git(&dir, &["gc", "-q"]);
        env.own();
        // The first run remembers every pack and loose object as read.
        env.sh("true").expect_code(0);
        for (path, first, _) in &files {
            let to = dir.join(path);
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            git(&dir, &["mv", first, path]);
        }
        commit(&dir, "move the configuration into place");
    }
    let mut committed: Vec<(String, String)> = files
        .iter()
        .map(|(path, _, content)| (format!("HEAD:{path}"), content.clone()))
        .collect();
    committed.push(("HEAD:README".into(), "tooling\n".into()));
    for (path, _, _) in &files {
        git(&dir, &["rm", "-q", path]);
    }
    commit(&dir, "remove the configuration");
    for c in &mut committed {
        c.0 = c.0.replacen("HEAD:", "HEAD~1:", 1);
    }
    match layout {
        Layout::Loose => {}
        Layout::Packed => {
            git(&dir, &["gc", "-q"]);
        }
        Layout::Split => {
            let roots = git_text(&dir, &["log", "--all", "--format=%H %T"]);
            let first: Vec<String> = roots.split_whitespace().map(str::to_string).collect();
            let rest: Vec<String> = all_objects(&dir)
                .into_iter()
                .filter(|o| !first.contains(o))
                .collect();
            pack_objects(&dir, &first, &[]);
            pack_objects(&dir, &rest, &[]);
            git(&dir, &["prune-packed"]);
            let (loose, packs) = object_counts(&dir);
            assert!(loose == 0 && packs == 2, "{loose} loose, {packs} packs");
        }
        Layout::RenamedAfterARun => {
            let (loose, packs) = object_counts(&dir);
            assert!(loose > 0 && packs == 1, "{loose} loose, {packs} packs");
        }
    }
    env.own();
    PathRuleProject {
        env,
        canaries,
        control,
        committed,
    }
}

/// `.aws/credentials` and the others are hidden in the worktree by path
/// rules. Committed, they must read empty from history too, however the
/// objects are stored: a directory rule (`**/.aws`) covers the files below
/// it, and a tree's path is known even when its parent is in another pack,
/// or was committed after guard last looked.
#[test]
fn files_hidden_by_path_rules_stay_hidden_in_history() {
    for mode in modes() {
        for layout in [
            Layout::Loose,
            Layout::Packed,
            Layout::Split,
            Layout::RenamedAfterARun,
        ] {
            let p = path_rule_project(mode, layout);
            let ctx = format!("{mode:?}, {layout:?}");
            let files = path_rule_files(&p.canaries);
            let mut body = format!(
                r#"
run stat 'git log --no-renames --stat=200 --format=%s'
run readme 'git show HEAD~1:README'
run plain 'git show HEAD~1:notes/plain.txt | grep -c {control}'
run count 'git cat-file --batch-all-objects --batch-check | wc -l'
run batch 'git cat-file --batch-all-objects --batch'
run log 'git log -p --all'
run grep_history 'git grep {pat} $(git rev-list --all)'
run walk 'python3 /tmp/walk.py .git'
"#,
                control = fragment(&p.control),
                pat = patterns(&p.canaries),
            );
            for (i, (path, _, _)) in files.iter().enumerate() {
                body.push_str(&format!("run show{i} 'git show HEAD~1:{path}'\n"));
            }
            let s = Sections::run(&p.env, &body);

            // git read the whole history: every path, the control file.
            let stat = s.ok("stat");
            for (path, _, _) in &files {
                assert!(stat.contains(path), "{ctx}: {path} missing:\n{stat}");
            }
            assert!(stat.contains("remove the configuration"), "{ctx}");
            assert_eq!(s.ok("readme"), "tooling\n", "{ctx}");
            assert_eq!(
                s.ok("plain").trim(),
                "1",
                "{ctx}: the same content under a plain path must stay readable \
                 (else the files below were flagged by content, not by path)"
            );
            let host_count = all_objects(&p.env.project.path).len();
            assert_eq!(
                s.ok("count").trim().parse::<usize>().ok(),
                Some(host_count),
                "{ctx}"
            );
            assert!(s.ok("batch").contains("tooling"), "{ctx}");
            let (loose, streams) = s.walked("walk");
            assert!(loose + streams > 0, "{ctx}: walk.py inflated nothing");
            assert!(s.ok("walk").contains("tooling"), "{ctx}");

            assert_host_intact(&p.env.project.path, &p.committed);

            // No secret anywhere.
            s.assert_no_canary(&p.canaries);

            // Because each file reads as the worktree would show it: empty.
            for (i, (path, _, _)) in files.iter().enumerate() {
                assert_eq!(
                    s.ok(&format!("show{i}")).trim(),
                    "",
                    "{ctx}: HEAD~1:{path} is not empty"
                );
            }
            s.assert_found_nothing("grep_history", &format!("{ctx}: git grep"));
        }
    }
}

// ---------------------------------------------------------------------
// Repositories git finds by other means than a `.git` directory.
// ---------------------------------------------------------------------

/// A bare clone named `backup`, a repository with `--separate-git-dir`
/// (`gitdata`), `light`, whose objects are in `store` (a bare objects
/// directory, reached only through `light/objects/info/alternates`), and a
/// submodule at a nested path (`libs/sub`: its repository is
/// `.git/modules/libs/sub`). Each holds a committed token.
#[test]
fn repositories_by_other_names_and_borrowed_objects_are_sanitized() {
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.path.clone();
        let toks = [
            gh_canary("bare"),
            gh_canary("sep"),
            gh_canary("alt"),
            gh_canary("submodule"),
        ];
        common::git_repo_with_readme(&dir);
        // Source repositories outside the project.
        let src = common::TempDir::new("src", Mode::Invoker);
        for (i, tok) in toks.iter().enumerate() {
            let r = src.join(&format!("r{i}"));
            std::fs::create_dir_all(&r).expect("mkdir");
            std::fs::write(r.join("client.py"), CLIENT_PY.replace("{tok}", tok)).expect("write");
            std::fs::write(r.join("README"), format!("repository {i}\n")).expect("write");
            git(&r, &["init", "-q"]);
            commit(&r, &format!("client {i}"));
            git(&r, &["gc", "-q"]);
        }
        let r = |i: usize| src.join(&format!("r{i}")).display().to_string();
        git(&dir, &["clone", "-q", "--bare", &r(0), "backup"]);
        git(
            &dir,
            &["clone", "-q", "--separate-git-dir=gitdata", &r(1), "sep"],
        );
        git(&dir, &["clone", "-q", "--bare", &r(2), "light"]);
        std::fs::rename(dir.join("light/objects"), dir.join("store")).expect("move objects");
        std::fs::create_dir_all(dir.join("light/objects/info")).expect("mkdir");
        std::fs::write(dir.join("light/objects/info/alternates"), "../../store\n")
            .expect("alternates");
        git(&dir.join("light"), &["cat-file", "-e", "HEAD:client.py"]);
        git(
            &dir,
            &[
                "-c",
                "protocol.file.allow=always",
                "submodule",
                "-q",
                "add",
                &r(3),
                "libs/sub",
            ],
        );
        commit(&dir, "add the submodule");
        assert!(dir.join(".git/modules/libs/sub/objects").is_dir());
        env.own();
        let pat = patterns(&toks);
        let s = Sections::run(
            &env,
            &format!(
                r#"
run backup 'git -C backup show HEAD:client.py'
run sep 'git -C sep show HEAD:client.py'
run light 'git -C light show HEAD:client.py'
run libs/sub 'git -C libs/sub show HEAD:client.py'
run logs 'for r in backup sep light libs/sub; do git -C $r log -p --all; done'
run batch 'for r in backup sep light libs/sub; do git -C $r cat-file --batch-all-objects --batch; done'
run grep_raw 'grep -ra {pat} backup gitdata store light sep libs .git'
run walk 'python3 /tmp/walk.py backup gitdata store light .git/modules'
"#
            ),
        );
        let logs = s.ok("logs");
        for i in 0..4 {
            assert!(logs.contains(&format!("client {i}")), "{logs}");
            assert!(logs.contains(&format!("+repository {i}")), "{logs}");
        }
        assert!(s.ok("batch").contains("def repos():"));
        let (_, streams) = s.walked("walk");
        assert!(streams > 0, "walk.py inflated nothing");
        assert!(s.ok("walk").contains("def repos():"));

        s.assert_no_canary(&toks);

        for name in ["backup", "sep", "light", "libs/sub"] {
            let shown = s.ok(name);
            assert!(
                shown.contains("GITHUB = \"guard-redacted:github-token\"")
                    && shown.contains("def repos():"),
                "{name}: {shown}"
            );
        }
        s.assert_found_nothing("grep_raw", "grep -ra");
        // The host's copies were only read.
        for (i, name) in ["backup", "sep", "light", "libs/sub"].iter().enumerate() {
            let got = git(&dir.join(name), &["show", "HEAD:client.py"]);
            assert!(
                got == CLIENT_PY.replace("{tok}", &toks[i]).as_bytes(),
                "{name} changed on the host"
            );
        }
    }
}

// ---------------------------------------------------------------------
// Links planted by an earlier session.
// ---------------------------------------------------------------------

/// A profile with a persistent home: what the sandbox writes in its home
/// is there again in the next session (as with the agents' profiles).
const PERSISTENT: &str = "version = 1\nextends = [\"default\"]\n\n[home]\npersist = true\n";

/// An earlier session links `.git/modules` (or `.git/objects/pack`) of the
/// project's repository to a repository of the user's real home, and
/// creates the same directories in its own persistent home, where the
/// links land inside the sandbox. guard reads object files on the host
/// before the next session: following those links, it would sanitize the
/// private repository's packs and mount the copies where the sandbox can
/// read them (all of that repository's code). The links must not be
/// followed; the next session still starts.
#[test]
fn links_planted_in_git_directories_are_not_followed() {
    for mode in modes() {
        for planted in ["modules", "pack"] {
            let env = Env::new(mode);
            // The project is in the home (as usual), beside the user's
            // private repository.
            let dir = env.home.join("work");
            std::fs::create_dir_all(&dir).expect("mkdir");
            common::git_repo_with_readme(&dir);
            git(&dir, &["gc", "-q"]);
            // The user's private repository, in the real home: never
            // granted, with a committed token (so guard would sanitize it).
            let private = env.home.join("private");
            let code = canary("privatecode");
            let tok = gh_canary("private");
            std::fs::create_dir_all(&private).expect("mkdir");
            std::fs::write(private.join("client.py"), CLIENT_PY.replace("{tok}", &tok))
                .expect("write");
            std::fs::write(private.join("core.py"), format!("# roadmap: {code}\n")).expect("write");
            git(&private, &["init", "-q"]);
            commit(&private, "private");
            git(&private, &["gc", "-q"]);
            let private_packs: Vec<String> = std::fs::read_dir(private.join(".git/objects/pack"))
                .expect("private packs")
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".pack")
                        .map(str::to_string)
                })
                .collect();
            assert_eq!(private_packs.len(), 1);
            let profile = env.home.write("persistent.toml", PERSISTENT);
            let profile = profile.to_str().expect("utf-8 path").to_string();
            env.own();
            // Relative links: the same path on the host (the real home) and
            // inside (the sandbox's persistent home).
            let plant = match planted {
                "modules" => "ln -s ../../private .git/modules",
                _ => {
                    "mv .git/objects/pack .git/objects/pack.orig && ln -s ../../../private/.git/objects/pack .git/objects/pack"
                }
            };
            let s = Sections::run_in(
                &env,
                &dir,
                &["-p", &profile],
                &format!(
                    r#"
run plant 'mkdir -p ~/private/.git/objects/pack && {plant} && echo planted'
"#
                ),
            );
            assert!(s.ok("plant").contains("planted"), "{}", s.0.all());
            let link = match planted {
                "modules" => dir.join(".git/modules"),
                _ => dir.join(".git/objects/pack"),
            };
            if planted == "modules" {
                // A link in the git directory is moved aside after the run
                // (git writes through such links); planted again here, as
                // by a session whose check never ran, for the next session
                // to be shown not to follow it.
                assert!(
                    s.0.stderr.contains("a link in a git directory"),
                    "{}",
                    s.0.all()
                );
                std::os::unix::fs::symlink("../../private", &link).expect("plant the link again");
            }
            assert!(
                std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
                "the link was not planted"
            );

            let frag = fragment(&code);
            let s = Sections::run_in(
                &env,
                &dir,
                &["-p", &profile],
                &format!(
                    r#"
run link 'readlink .git/{planted} .git/objects/pack; ls -d ~/private/.git/objects/pack'
run inside 'ls -A ~/private/.git/objects/pack | wc -l'
run grep_raw 'grep -ra -e {frag} -e {tokfrag} ~ .git'
run walk 'python3 /tmp/walk.py ~/private .git'
run status 'git status --porcelain'
"#,
                    tokfrag = fragment(&tok),
                ),
            );
            let ctx = format!("{mode:?}, {planted}");
            // The links are in place inside, and lead to the sandbox's home.
            let shown = s.get("link").1;
            assert!(shown.contains("../private"), "{ctx}: {shown}");
            s.walked("walk");

            for c in [&code, &tok] {
                s.0.assert_no_canary(c);
            }
            // Nothing of the private repository was mounted in the home...
            assert_eq!(s.ok("inside").trim(), "0", "{ctx}: files appeared");
            s.assert_found_nothing("grep_raw", &format!("{ctx}: grep"));
            // ...because guard did not read it: no sanitized copy of it.
            let cache = env.home.join(".cache/guard/git");
            let copies: Vec<String> = std::fs::read_dir(&cache)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                !copies.iter().any(|c| c.starts_with(&private_packs[0])),
                "{ctx}: guard read the private repository's pack: {copies:?}"
            );
        }
    }
}

/// Kill-on-timeout wrapper: `guard ARGS` must end within `secs` (a hang
/// before the sandbox starts is a failure, not a stuck test).
fn run_within(env: &Env, secs: u32, args: &[&str]) -> Outcome {
    let inner = env.guard(args);
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &secs.to_string()])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(&env.project.path)
        .stdin(Stdio::null());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = Outcome::from(cmd.output().expect("spawn timeout"));
    assert_ne!(
        out.code,
        137,
        "guard did not finish within {secs} s:\n{}",
        out.all()
    );
    out
}

/// An earlier session plants, where guard reads object files on the host:
/// a fifo named as a pack's index (beside a pack), a fifo and a 64 GiB
/// sparse file as loose objects, and a fifo as `info/alternates`. The next
/// session must start, not block on a fifo or read gigabytes.
#[test]
fn fifos_and_huge_files_planted_in_objects_do_not_stall_guard() {
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.path.clone();
        common::git_repo_with_readme(&dir);
        git(&dir, &["gc", "-q"]);
        env.own();
        let stem = format!("pack-{}", "ab".repeat(20));
        let s = Sections::run(
            &env,
            &format!(
                r#"
run plant 'cd .git/objects && head -c 64 /dev/zero > pack/{stem}.pack && mkfifo pack/{stem}.idx && mkdir -p ab cd && mkfifo ab/{loose} && truncate -s 64G cd/{loose} && mkfifo info/alternates && echo planted'
"#,
                loose = "0".repeat(38),
            ),
        );
        assert!(s.ok("plant").contains("planted"));
        let objects = dir.join(".git/objects");
        use std::os::unix::fs::FileTypeExt;
        for f in [format!("pack/{stem}.idx"), format!("ab/{}", "0".repeat(38))] {
            assert!(
                std::fs::symlink_metadata(objects.join(&f)).is_ok_and(|m| m.file_type().is_fifo()),
                "{f} is no fifo"
            );
        }

        let out = run_within(&env, 120, &["run", "--", "sh", "-c", "echo session-ran"]);
        out.expect_code(0);
        assert!(out.stdout.contains("session-ran"), "{}", out.all());
        // Guard looked at the planted pack and said it could not check it.
        assert!(
            out.stderr.contains(&format!("{stem}.pack was not checked")),
            "{}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------
// Hostile packs.
// ---------------------------------------------------------------------

/// Writes, into the pack directory given, a pack of one 16 MiB blob and N
/// deltas each rebuilding it whole from the previous one (a few bytes
/// each), with an index naming them. Resolving them all would copy N x 16
/// MiB.
const DELTA_BOMB_PY: &str = r#"
import sys, zlib, hashlib, struct, os
d, n = sys.argv[1], int(sys.argv[2])
size = 16 * 1024 * 1024 - 64
def header(kind, size):
    c = (kind << 4) | (size & 15); size >>= 4; out = b''
    while size:
        out += bytes([c | 0x80]); c = size & 0x7f; size >>= 7
    return out + bytes([c])
def varint(v):
    out = b''
    while True:
        c = v & 0x7f; v >>= 7
        if v: out += bytes([c | 0x80])
        else: return out + bytes([c])
def ofs(dist):
    out = [dist & 0x7f]; dist >>= 7
    while dist:
        dist -= 1; out.append(0x80 | (dist & 0x7f)); dist >>= 7
    return bytes(reversed(out))
body = bytearray(b'PACK' + struct.pack('>II', 2, n + 1))
offsets = [len(body)]
body += header(3, size) + zlib.compress(b'\0' * size)
copy = size - 1
raw = varint(size) + varint(size) + bytes([0xf0, copy & 0xff, (copy >> 8) & 0xff, (copy >> 16) & 0xff]) + b'\x01X'
delta = zlib.compress(raw)
for i in range(n):
    at = len(body)
    body += header(6, len(raw)) + ofs(at - offsets[-1]) + delta
    offsets.append(at)
sha = hashlib.sha1(body).digest()
body += sha
names = sorted((hashlib.sha1(b'bomb %d' % i).digest(), off) for i, off in enumerate(offsets))
idx = bytearray(b'\xfftOc' + struct.pack('>I', 2))
counts = [0] * 256
for o, _ in names: counts[o[0]] += 1
total = 0
for c in counts:
    total += c; idx += struct.pack('>I', total)
for o, _ in names: idx += o
for _ in names: idx += b'\0\0\0\0'
for _, off in names: idx += struct.pack('>I', off)
idx += sha
idx += hashlib.sha1(idx).digest()
open(os.path.join(d, 'pack-%s.pack' % sha.hex()), 'wb').write(body)
open(os.path.join(d, 'pack-%s.idx' % sha.hex()), 'wb').write(idx)
print('pack-%s %s' % (sha.hex(), hashlib.sha1(b'bomb 50').hexdigest()))
"#;

/// A cloned repository whose pack is a delta bomb: 100,000 deltas of a
/// few bytes, each rebuilding a 16 MiB blob (1.6 TB to copy in all). guard
/// reads packs on the host before the run: it must give up on that pack in
/// bounded time (and say it could not check it), and the run start.
#[test]
fn a_delta_bomb_pack_is_given_up_in_bounded_time() {
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.path.clone();
        common::git_repo_with_readme(&dir);
        let out = Command::new("python3")
            .args(["-c", DELTA_BOMB_PY])
            .arg(dir.join(".git/objects/pack"))
            .arg("100000")
            .output()
            .expect("python3 must be installed for this test");
        assert!(out.status.success(), "{out:?}");
        let printed = String::from_utf8(out.stdout).expect("utf-8");
        let (stem, delta) = printed.trim().split_once(' ').expect("stem and name");
        // git itself reads the pack: a delta in it rebuilds 16 MiB.
        let size = git_text(&dir, &["cat-file", "-s", delta]);
        assert_eq!(size.trim(), (16 * 1024 * 1024 - 64).to_string());
        env.own();

        let out = run_within(&env, 120, &["run", "--", "sh", "-c", "echo session-ran"]);
        out.expect_code(0);
        assert!(out.stdout.contains("session-ran"), "{}", out.all());
        assert!(
            out.stderr.contains(&format!("{stem}.pack was not checked"))
                && out.stderr.contains("expands"),
            "{}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------
// Pack layouts and refs that held: kept as regressions.
// ---------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Packing {
    /// Deltas naming their base by object name (`pack-objects` without
    /// `--delta-base-offset`).
    RefDeltas,
    /// `git repack -adb`: a bitmap and a reverse index, which must still
    /// match the sanitized pack.
    Bitmap,
    /// The same objects in two packs.
    TwoCopies,
    /// An unreachable commit holding the token, in a cruft pack (`.mtimes`).
    Cruft,
}

/// A token in a script's history (delta chains around it), in an
/// annotated tag's message, a note, a stash and a commit message: every
/// packing, every way to read it.
#[test]
fn other_packings_and_refs_stay_sanitized_and_usable() {
    for mode in modes() {
        for packing in [
            Packing::RefDeltas,
            Packing::Bitmap,
            Packing::TwoCopies,
            Packing::Cruft,
        ] {
            let ctx = format!("{mode:?}, {packing:?}");
            let env = Env::new(mode);
            let dir = env.project.path.clone();
            let toks: Vec<String> = ["script", "tag", "note", "stash", "msg", "lost"]
                .iter()
                .map(|t| gh_canary(t))
                .collect();
            let body: String = (0..200).map(|i| format!("echo step-{i}\n")).collect();
            let with = |tok: &str| {
                body.replacen(
                    "echo step-100\n",
                    &format!("TOKEN={tok}\necho step-100\n"),
                    1,
                )
            };
            let p = &env.project;
            p.write("app.sh", &with(&toks[0]));
            p.write("README", "layouts\n");
            git(&dir, &["init", "-q"]);
            commit(&dir, "first");
            p.write("app.sh", &format!("{}echo extra\n", with(&toks[0])));
            commit(&dir, "second");
            p.write("app.sh", &body);
            commit(&dir, "third");
            git(
                &dir,
                &["tag", "-a", "v1", "-m", &format!("release {}", toks[1])],
            );
            git(&dir, &["notes", "add", "-m", &format!("note {}", toks[2])]);
            p.write("stashed.py", &CLIENT_PY.replace("{tok}", &toks[3]));
            git(&dir, &["add", "stashed.py"]);
            git(&dir, &["stash", "-q"]);
            git(
                &dir,
                &[
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    &format!("deploy with {}", toks[4]),
                ],
            );
            // Not at HEAD: git checks the name of a commit it is handed
            // directly (`HEAD~1` parses HEAD), and a sanitized one fails.
            p.write("README", "layouts\nfourth\n");
            commit(&dir, "fourth");
            let mut lost = String::new();
            if packing == Packing::Cruft {
                p.write("lost.py", &CLIENT_PY.replace("{tok}", &toks[5]));
                commit(&dir, "lost");
                lost = git_text(&dir, &["rev-parse", "HEAD:lost.py"])
                    .trim()
                    .to_string();
                git(&dir, &["reset", "-q", "--hard", "HEAD~1"]);
                git(&dir, &["reflog", "expire", "--expire=now", "--all"]);
            }
            match packing {
                Packing::RefDeltas => {
                    let objs: Vec<String> = all_objects(&dir);
                    pack_objects(&dir, &objs, &["--window=50", "--depth=50"]);
                    git(&dir, &["prune-packed"]);
                    let idx = std::fs::read_dir(dir.join(".git/objects/pack"))
                        .expect("pack dir")
                        .flatten()
                        .map(|e| e.path())
                        .find(|p| p.extension().is_some_and(|x| x == "idx"))
                        .expect("an index");
                    let idx = idx.to_str().expect("utf-8 path");
                    let verify = git_text(&dir, &["verify-pack", "-v", idx]);
                    assert!(
                        verify.contains("chain length = 1"),
                        "{ctx}: no deltas\n{verify}"
                    );
                }
                Packing::Bitmap => {
                    git(&dir, &["repack", "-q", "-a", "-d", "-b"]);
                    let names: Vec<String> = std::fs::read_dir(dir.join(".git/objects/pack"))
                        .expect("pack dir")
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    assert!(
                        names.iter().any(|n| n.ends_with(".bitmap"))
                            && names.iter().any(|n| n.ends_with(".rev")),
                        "{names:?}"
                    );
                }
                Packing::TwoCopies => {
                    git(&dir, &["gc", "-q"]);
                    let objs: Vec<String> = all_objects(&dir);
                    pack_objects(&dir, &objs, &["--no-reuse-delta", "--window=0"]);
                    let (_, packs) = object_counts(&dir);
                    assert_eq!(packs, 2, "{ctx}");
                }
                Packing::Cruft => {
                    git(&dir, &["gc", "-q", "--cruft", "--prune=never"]);
                    let names: Vec<String> = std::fs::read_dir(dir.join(".git/objects/pack"))
                        .expect("pack dir")
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    assert!(names.iter().any(|n| n.ends_with(".mtimes")), "{names:?}");
                }
            }
            let (loose, _) = object_counts(&dir);
            assert_eq!(loose, 0, "{ctx}");
            let host_count = all_objects(&dir).len();
            let host_commits = git_text(&dir, &["rev-list", "--all", "--count"]);
            env.own();

            let pat = patterns(&toks);
            let s = Sections::run(
                &env,
                &format!(
                    r#"
run count 'git cat-file --batch-all-objects --batch-check | wc -l'
run commits 'git rev-list --all --count'
run bitmap 'git rev-list --use-bitmap-index --count --all'
run log 'git log -p --all'
run tag 'git show v1'
run note 'git notes show HEAD~2'
run stash 'git stash show -p stash@{{0}}'
run old 'git show HEAD~3:app.sh'
run batch 'git cat-file --batch-all-objects --batch'
run export 'git fast-export --all --show-original-ids'
run bundle 'mkdir -p /tmp/b && git bundle create /tmp/b/all.pack --all && python3 /tmp/walk.py /tmp/b'
run archive 'for r in $(git rev-list --all); do git archive $r | tar -xOf -; done'
run lost 'test -z "{lost}" || git cat-file -p {lost}'
run grep_history 'git grep {pat} $(git log --all --format=%T)'
run grep_control 'git grep -c step-150 $(git log --all --format=%T) | wc -l'
run grep_raw 'grep -ra {pat} .git /tmp/b'
run walk 'python3 /tmp/walk.py .git'
"#
                ),
            );
            // git read everything, bitmaps and reverse indexes included.
            assert_eq!(
                s.ok("count").trim().parse::<usize>().ok(),
                Some(host_count),
                "{ctx}"
            );
            assert_eq!(s.ok("commits").trim(), host_commits.trim(), "{ctx}");
            assert_eq!(s.ok("bitmap").trim(), host_commits.trim(), "{ctx}");
            s.ok_containing(
                "log",
                &["first", "second", "third", "+echo extra", "echo step-150"],
                &ctx,
            );
            let old = s.ok("old");
            assert!(
                old.contains("TOKEN=guard-redacted:github-token") && old.contains("echo step-199"),
                "{ctx}: {old}"
            );
            assert!(s.ok("tag").contains("release guard-redacted:"), "{ctx}");
            s.ok("note");
            s.ok("stash");
            // fast-export checks every blob's name: it stops at the first
            // sanitized one (a known limit), after reading history.
            assert!(s.get("export").1.contains("original-oid"), "{ctx}");
            assert!(s.ok("bundle").contains("echo step-150"), "{ctx}");
            assert!(s.ok("archive").contains("echo step-150"), "{ctx}");
            if packing == Packing::Cruft {
                let lost = s.ok("lost");
                assert!(
                    lost.contains("GITHUB = \"guard-redacted:github-token\""),
                    "{ctx}: {lost}"
                );
            }
            let (_, streams) = s.walked("walk");
            assert!(streams > 0, "{ctx}: walk.py inflated nothing");
            assert!(s.ok("walk").contains("echo step-150"), "{ctx}");

            s.assert_no_canary(&toks);
            assert_ne!(s.ok("grep_control").trim(), "0", "{ctx}");
            s.assert_found_nothing("grep_history", &format!("{ctx}: git grep"));
            s.assert_found_nothing("grep_raw", &format!("{ctx}: grep -ra"));
            assert_host_intact(&dir, &[("HEAD~4:app.sh".to_string(), with(&toks[0]))]);
        }
    }
}

/// A cloned repository whose trees name one subtree twice per level, 40
/// levels deep: 2^40 paths to one file. Naming every path a blob has (for
/// the path rules) must stop in bounded time, and say so.
#[test]
fn trees_with_exponentially_many_paths_are_cut_short() {
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.path.clone();
        common::git_repo_with_readme(&dir);
        let blob = git_text(&dir, &["hash-object", "-w", "README"]);
        let mut tree = String::new();
        for level in 0..=40 {
            let listing = if level == 0 {
                format!("100644 blob {}\tf\n", blob.trim())
            } else {
                format!("040000 tree {tree}\ta\n040000 tree {tree}\tb\n")
            };
            let out = git_stdin(&dir, &["mktree"], &listing);
            tree = String::from_utf8(out).expect("utf-8").trim().to_string();
        }
        let c = git_text(&dir, &["commit-tree", &tree, "-m", "deep"]);
        git(&dir, &["update-ref", "refs/heads/deep", c.trim()]);
        env.own();

        let out = run_within(&env, 120, &["run", "--", "sh", "-c", "echo session-ran"]);
        out.expect_code(0);
        assert!(out.stdout.contains("session-ran"), "{}", out.all());
        assert!(
            out.stderr.contains("more paths than a repository has"),
            "{}",
            out.stderr
        );
    }
}

/// A bare repository whose `HEAD` is a symbolic link to its branch (git
/// accepts one; an earlier session can make the swap) was not taken for
/// a repository, and its history was not scanned: `git --git-dir=backup
/// show` read the token.
#[test]
fn a_bare_repository_with_a_symlinked_head_is_still_scanned() {
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.path.clone();
        common::git_repo_with_readme(&dir);
        let tok = gh_canary("symhead");
        let src = common::TempDir::new("src", Mode::Invoker);
        std::fs::write(src.join("client.py"), CLIENT_PY.replace("{tok}", &tok)).expect("write");
        git(&src.path, &["init", "-q"]);
        commit(&src.path, "client");
        let blob = git_text(&src.path, &["rev-parse", "HEAD:client.py"])
            .trim()
            .to_string();
        git(
            &dir,
            &[
                "clone",
                "-q",
                "--bare",
                &src.path.display().to_string(),
                "backup",
            ],
        );
        let backup = dir.join("backup");
        std::fs::remove_file(backup.join("HEAD")).expect("rm HEAD");
        std::os::unix::fs::symlink("refs/heads/main", backup.join("HEAD")).expect("ln -s");
        // git still takes it for a repository, and reads the token.
        assert!(git(&backup, &["show", &blob]).starts_with(b"import requests"));
        env.own();
        let s = Sections::run(
            &env,
            &format!(
                "run show 'git --git-dir=backup show {blob}'\nrun head 'git --git-dir=backup show HEAD:client.py'\nrun grep_raw 'grep -ra {} backup'",
                fragment(&tok)
            ),
        );
        s.0.assert_no_canary(&tok);
        for name in ["show", "head"] {
            let shown = s.ok(name);
            assert!(
                shown.contains("GITHUB = \"guard-redacted:github-token\""),
                "{name}: {shown}"
            );
        }
        s.assert_found_nothing("grep_raw", "grep -ra backup");
        assert!(
            std::fs::symlink_metadata(backup.join("HEAD")).is_ok_and(|m| m.is_symlink()),
            "HEAD is no longer a link"
        );
    }
}

/// Text with a NUL in its first 8 KiB, and UTF-16 text: the worktree scan
/// searches them (any program reads them as text) and hides a file holding
/// a token, but the history scan skipped any blob with a NUL: `git show`
/// of the commit that removed them gave the tokens back. Now a blob is
/// judged as the file would be, and reads empty.
#[test]
fn binary_looking_blobs_are_judged_as_the_worktree_scan_judges_files() {
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.path.clone();
        let toks = [gh_canary("nul"), gh_canary("utf16")];
        let nul = format!(
            "{}\0\0{}",
            "x".repeat(16),
            CLIENT_PY.replace("{tok}", &toks[0])
        );
        let mut utf16 = vec![0xff, 0xfe];
        for u in CLIENT_PY.replace("{tok}", &toks[1]).encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        std::fs::write(dir.join("notes.txt"), &nul).expect("write");
        std::fs::write(dir.join("utf16.txt"), &utf16).expect("write");
        env.project.write("README", "tooling\n");
        git(&dir, &["init", "-q"]);
        commit(&dir, "add notes");
        git(&dir, &["rm", "-q", "notes.txt", "utf16.txt"]);
        commit(&dir, "remove notes");
        // On the host, git gives them back whole.
        assert_eq!(git(&dir, &["show", "HEAD~1:notes.txt"]), nul.as_bytes());
        assert_eq!(git(&dir, &["show", "HEAD~1:utf16.txt"]), utf16);
        env.own();
        let s = Sections::run(
            &env,
            "run nul 'git show HEAD~1:notes.txt | tr -d \"\\000\"'\n\
             run utf16 'git show HEAD~1:utf16.txt | tr -d \"\\000\"'\n\
             run sizes 'git cat-file -s HEAD~1:notes.txt; git cat-file -s HEAD~1:utf16.txt'\n\
             run readme 'git show HEAD~1:README'\n\
             run log 'git log -p | tr -d \"\\000\"'",
        );
        s.assert_no_canary(&toks);
        assert_eq!(s.ok("readme").trim(), "tooling");
        assert!(s.ok("log").contains("remove notes"));
        // Hidden, as the worktree copies would be: empty blobs.
        assert_eq!(s.ok("nul").trim(), "");
        assert_eq!(s.ok("utf16").trim(), "");
        assert_eq!(
            s.ok("sizes").split_whitespace().collect::<Vec<_>>(),
            ["0", "0"]
        );
    }
}

// ---------------------------------------------------------------------
// Object files guard could not check: never served unread.
// ---------------------------------------------------------------------

/// A repository whose only commit adds `client.py` (a token) as a loose
/// object: (the token, the blob's name).
fn loose_token_repo(env: &Env, tag: &str) -> (String, String) {
    let dir = &env.project.path;
    let tok = gh_canary(tag);
    env.project
        .write("client.py", &CLIENT_PY.replace("{tok}", &tok));
    git(dir, &["init", "-q"]);
    commit(dir, "client");
    let blob = git_text(dir, &["rev-parse", "HEAD:client.py"])
        .trim()
        .to_string();
    let (loose, packs) = object_counts(dir);
    assert!(loose > 0 && packs == 0, "{loose} loose, {packs} packs");
    (tok, blob)
}

/// The mode bits of `path` on the host.
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

/// An earlier session sets every loose-object directory to 0300: the
/// user's git still writes and reads objects by name (that needs only
/// `wx`), but guard, running as the user, cannot list them, and took the
/// error for an empty directory: nothing was read or hidden. The next
/// session sets one back to 0755 and reads the token with `git show`. A
/// directory guard cannot list is now hidden inside (as root, guard lists
/// it anyway and the blob reads redacted).
#[test]
fn loose_object_directories_guard_cannot_list_are_hidden() {
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.path.clone();
        let (tok, blob) = loose_token_repo(&env, "unlisted");
        env.own();
        let s = Sections::run(
            &env,
            "run plant 'chmod 0300 .git/objects/[0-9a-f][0-9a-f] && echo planted'",
        );
        assert!(s.ok("plant").contains("planted"));
        s.0.assert_no_canary(&tok);
        let fan = format!(".git/objects/{}", &blob[..2]);
        assert_eq!(mode_of(&dir.join(&fan)), 0o300, "the directory was not set");
        // The user's git still reads the object through it.
        assert!(git(&dir, &["show", &blob]).starts_with(b"import requests"));

        let s = Sections::run(
            &env,
            &format!(
                "run fix 'chmod 755 {fan} && echo fixed'\nrun show 'git show {blob}'\nrun log 'git log --oneline'"
            ),
        );
        s.0.assert_no_canary(&tok);
        let (rc, shown) = s.get("show");
        // guard as an ordinary user (the harness's unprivileged mode, or
        // this test run as one) cannot list the directories; as root it can.
        match mode {
            _ if !common::is_root() || mode == Mode::Unprivileged => {
                // Every directory was hidden: the commit too.
                assert_ne!(rc, 0, "git show read the object: {shown}");
                let (rc, log) = s.get("log");
                assert!(rc != 0 && log.contains("bad object"), "{log}");
                assert!(
                    s.0.stderr.contains(&format!("{fan} was not checked"))
                        && s.0.stderr.contains("hidden inside"),
                    "{}",
                    s.0.stderr
                );
            }
            _ => {
                assert!(s.ok("fix").contains("fixed"));
                assert!(s.ok("log").contains("client"), "{}", s.0.all());
                assert!(
                    shown.contains("GITHUB = \"guard-redacted:github-token\""),
                    "{shown}"
                );
            }
        }
    }
}

/// A loose object guard could not read once (a concurrent session made it
/// mode 000; guard runs as the user) was remembered as read: its
/// directory unchanged, the next run never read it again, and once the
/// mode was back its token was served. Now it is hidden while unread and
/// read again on the next run, which redacts it.
#[test]
fn a_loose_object_guard_could_not_read_is_read_again() {
    use std::os::unix::fs::PermissionsExt;
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.path.clone();
        let (tok, blob) = loose_token_repo(&env, "unread");
        env.own();
        let object = dir.join(format!(".git/objects/{}/{}", &blob[..2], &blob[2..]));
        let old = mode_of(&object);
        std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let s = Sections::run(&env, &format!("run show 'git show {blob}'"));
        s.0.assert_no_canary(&tok);
        let (rc, shown) = s.get("show");
        if !common::is_root() || mode == Mode::Unprivileged {
            // Guard (an ordinary user) could not read it: the attack ran.
            assert!(
                s.0.stderr
                    .contains(&format!("{}/{} was not checked", &blob[..2], &blob[2..]))
                    && s.0.stderr.contains("hidden inside"),
                "{}",
                s.0.stderr
            );
            assert_ne!(rc, 0, "{shown}");
        }
        // The mode put back, as the other session would.
        std::fs::set_permissions(&object, std::fs::Permissions::from_mode(old)).expect("chmod");
        assert!(git(&dir, &["show", &blob]).starts_with(b"import requests"));
        let s = Sections::run(&env, &format!("run show 'git show {blob}'"));
        s.0.assert_no_canary(&tok);
        let shown = s.ok("show");
        assert!(
            shown.contains("GITHUB = \"guard-redacted:github-token\""),
            "{shown}"
        );
        assert!(!s.0.stderr.contains("was not checked"), "{}", s.0.stderr);
    }
}

/// A pack under another program's lease answered guard's `O_NONBLOCK`
/// open with EAGAIN: the pack was left unchecked (remembered so until it
/// changed) and served, and git inside, whose open waits, read the token.
/// Now guard waits out the lease as git's open would, and redacts it.
#[test]
fn a_pack_under_another_programs_lease_is_still_read() {
    for mode in modes() {
        let env = Env::new(mode);
        let dir = env.project.path.clone();
        let (tok, blob) = loose_token_repo(&env, "leased");
        git(&dir, &["gc", "-q"]);
        let pack = std::fs::read_dir(dir.join(".git/objects/pack"))
            .expect("pack dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "pack"))
            .expect("a pack");
        let holder_py = env.home.write("holder.py", common::LEASE_HOLDER);
        env.own();
        let holder = common::KillOnDrop(
            env.as_user("/usr/bin/python3")
                .arg(&holder_py)
                .arg(&pack)
                .current_dir(&env.home.path)
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the lease holder"),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !env.home.join(".leased").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            env.home.join(".leased").exists(),
            "the holder took no lease"
        );
        let s = Sections::run(&env, &format!("run show 'git show {blob}'"));
        std::fs::write(env.home.join(".host-done"), "").expect("write");
        drop(holder);
        s.0.assert_no_canary(&tok);
        // The lease was there when guard opened the pack: the holder let go.
        assert!(env.home.join(".let-go").exists(), "{}", s.0.all());
        let shown = s.ok("show");
        assert!(
            shown.contains("GITHUB = \"guard-redacted:github-token\""),
            "{shown}"
        );
        assert!(!s.0.stderr.contains("was not checked"), "{}", s.0.stderr);
    }
}
