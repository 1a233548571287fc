//! Secrets in git history: a secret the worktree view hides or redacts must
//! not be readable through git's object database either (`git show`,
//! `git log -p`, `git grep` over every revision, `git cat-file`, or reading
//! and inflating `.git/objects` by hand), whether the objects are loose,
//! packed or both, in the project's repository and in nested ones. git keeps
//! working inside, and the host repository is never modified. Every case
//! runs the real binary in every mode (as the invoker, and as uid 65534 when
//! root).
//!
//! Token-shaped values are assembled at run time, so this file itself holds
//! nothing guard's scanner would flag.

mod common;

use common::git::{
    CLIENT_PY, Sections, assert_host_intact, commit, git, git_text, object_counts, patterns,
};
use common::{DOMAINS_SH, Env, Mode, Outcome, canary, gh_canary, modes, pem, uuid_canary};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const UTIL_PY: &str = "def slug(name):\n    return name.lower().replace(\" \", \"-\")\n";

/// A certificate (public: a key-file name with only certificates in it
/// stays readable, in the worktree and through git).
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUQvA0tEeFmJ2mMuW3bqgNZxGzUxkwCgYIKoZIzj0EAwIw
-----END CERTIFICATE-----
";

const CI_SH: &str = "#!/bin/sh
set -eu
curl -fsS -H \"Authorization: token {tok}\" https://api.github.com/user
echo ci-done
";

/// Stage everything, commit and tag the commit.
fn commit_tagged(dir: &Path, msg: &str, tag: &str) {
    commit(dir, msg);
    git(dir, &["tag", tag]);
}

/// Pack everything on the host, as `git gc` does in a long-lived clone.
fn pack_all(dir: &Path) {
    git(dir, &["gc", "-q"]);
    let (loose, packs) = object_counts(dir);
    assert!(
        loose == 0 && packs >= 1,
        "git gc left {loose} loose objects, {packs} packs"
    );
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// Fresh commits: loose objects only.
    Loose,
    /// Everything packed by `git gc`.
    Packed,
    /// Packed history plus a newer loose commit holding another secret.
    Mixed,
    /// Like `Mixed`, then the newer commit packed on its own and a
    /// multi-pack index written over both packs (offsets into sanitized
    /// packs move: the index must follow).
    MultiPack,
}

impl State {
    fn has_newer_commit(self) -> bool {
        matches!(self, State::Mixed | State::MultiPack)
    }
}

/// A project whose repository (`repo`) holds committed secrets.
struct Project {
    env: Env,
    /// The repository holding the secrets (the project, or one nested in it).
    repo: PathBuf,
    /// Every secret value committed; none may ever be printed.
    canaries: Vec<String>,
    /// `commit:path` and the bytes committed there, to check on the host.
    committed: Vec<(String, String)>,
}

impl Project {
    /// The project in `env` once its repository is written: handed to the
    /// uid of the mode (git ran on the host as the invoker).
    fn new(
        env: Env,
        repo: PathBuf,
        canaries: Vec<String>,
        committed: Vec<(&str, String)>,
    ) -> Project {
        env.own();
        let committed = committed
            .into_iter()
            .map(|(spec, bytes)| (spec.to_string(), bytes))
            .collect();
        Project {
            env,
            repo,
            canaries,
            committed,
        }
    }

    fn assert_no_canary(&self, out: &Outcome) {
        for c in &self.canaries {
            out.assert_no_canary(c);
        }
    }

    fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        objects_snapshot(&self.repo)
    }

    /// The host repository is intact: `git fsck --full` passes and every
    /// committed file still reads as committed, secrets included.
    fn assert_host_repo_intact(&self) {
        assert_host_intact(&self.repo, &self.committed);
    }
}

/// Every file under `repo/.git/objects`, path and bytes.
fn objects_snapshot(repo: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, d: &Path, m: &mut BTreeMap<String, Vec<u8>>) {
        let entries = std::fs::read_dir(d).unwrap_or_else(|e| panic!("read {}: {e}", d.display()));
        for e in entries {
            let path = e.expect("dir entry").path();
            if path.is_dir() {
                walk(base, &path, m);
            } else {
                let rel = path.strip_prefix(base).expect("below base").display();
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                m.insert(rel.to_string(), bytes);
            }
        }
    }
    let base = repo.join(".git/objects");
    let mut m = BTreeMap::new();
    walk(&base, &base, &mut m);
    assert!(!m.is_empty(), "no objects under {}", base.display());
    m
}

/// Every object file there before is still there, byte for byte; with
/// `exact`, nothing was added either.
fn assert_objects_kept(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
    exact: bool,
) {
    let changed: Vec<&String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        changed.is_empty(),
        "object files changed or removed on the host: {changed:?}"
    );
    if exact {
        let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        assert!(
            added.is_empty(),
            "object files added on the host: {added:?}"
        );
    }
}

/// The project's repository: two commits (tags v1, v2) with a redacted
/// script, a redacted client and a hidden `.env`, then, for `Mixed`, a
/// third (v3) adding a redacted CI script after everything was packed.
fn project(mode: Mode, state: State) -> Project {
    let env = Env::new(mode);
    let dir = env.project.path.clone();
    let uuid = uuid_canary();
    let tok = gh_canary("client");
    let db = canary("dotenv");
    let domains1 = DOMAINS_SH.replace("{uuid}", &uuid);
    let domains2 = format!("{domains1}echo second-step-done\n");
    let client = CLIENT_PY.replace("{tok}", &tok);
    let dotenv = format!("DATABASE_URL=postgres://u:{db}@host/db\n");
    // A key file no content rule would flag (Rails' `master.key` is bare
    // hex), hidden by its name alone; and a certificate, which is not.
    let master = canary("masterkey");
    let p = &env.project;
    p.write("config/master.key", &format!("{master}\n"));
    p.write("certs/ca.pem", CA_PEM);
    p.write("README", "hello\n");
    p.write("scripts/domains.sh", &domains1);
    p.write(".env", &dotenv);
    p.write("src/client.py", &client);
    p.write("src/util.py", UTIL_PY);
    git(&dir, &["init", "-q"]);
    commit_tagged(&dir, "first deployment script", "v1");
    p.write("README", "hello\nsecond\n");
    p.write("scripts/domains.sh", &domains2);
    commit_tagged(&dir, "second deployment step", "v2");
    let mut canaries = vec![uuid, tok, db, master.clone()];
    let mut committed = vec![
        ("v1:scripts/domains.sh", domains1),
        ("v2:scripts/domains.sh", domains2),
        ("v1:.env", dotenv.clone()),
        ("v2:.env", dotenv),
        ("v2:src/client.py", client),
        ("v1:README", "hello\n".to_string()),
        ("v2:config/master.key", format!("{master}\n")),
        ("v2:certs/ca.pem", CA_PEM.to_string()),
        ("v1:src/util.py", UTIL_PY.to_string()),
    ];
    match state {
        State::Loose => {
            let (loose, packs) = object_counts(&dir);
            assert!(loose > 0 && packs == 0, "{loose} loose, {packs} packs");
        }
        State::Packed => pack_all(&dir),
        State::Mixed | State::MultiPack => {
            pack_all(&dir);
            let ci_tok = gh_canary("ci");
            let ci = CI_SH.replace("{tok}", &ci_tok);
            p.write("deploy/ci.sh", &ci);
            p.write("README", "hello\nsecond\nthird\n");
            commit_tagged(&dir, "ci script", "v3");
            if state == State::MultiPack {
                git(&dir, &["repack", "-q", "-d"]);
                git(&dir, &["multi-pack-index", "write"]);
                let (loose, packs) = object_counts(&dir);
                assert!(loose == 0 && packs >= 2, "{loose} loose, {packs} packs");
                assert!(dir.join(".git/objects/pack/multi-pack-index").is_file());
            } else {
                let (loose, packs) = object_counts(&dir);
                assert!(loose > 0 && packs >= 1, "{loose} loose, {packs} packs");
            }
            canaries.push(ci_tok);
            committed.push(("v3:deploy/ci.sh", ci));
        }
    }
    Project::new(env, dir, canaries, committed)
}

/// Lines of a diff that change content (not the `---`/`+++` headers).
fn hunk_lines(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect()
}

/// Every way to read a committed secret through git, at one state of the
/// repository. First the attacks' controls (git ran and read the history),
/// then the host, then the leak, then why it did not leak (sanitized
/// objects, not a broken git).
fn committed_secrets_stay_hidden(state: State) {
    for mode in modes() {
        let p = project(mode, state);
        let before = p.objects();
        let pat = patterns(&p.canaries);
        let mut body = format!(
            r#"
run show_domains 'git show HEAD:scripts/domains.sh'
run show_domains_v1 'git show v1:scripts/domains.sh'
run show_env 'git show HEAD:.env'
run show_client 'git show HEAD:src/client.py'
run catfile_domains 'git cat-file -p HEAD:scripts/domains.sh'
run catfile_env 'git cat-file -p HEAD:.env'
run show_key 'git show HEAD:config/master.key'
run show_ca 'git show HEAD:certs/ca.pem'
run diff 'git diff HEAD'
run status 'git status'
run log 'git log -p --all'
run grep_history 'git grep {pat} $(git rev-list --all)'
run grep_control 'git grep -c all-domains-updated $(git rev-list --all)'
run batch 'git cat-file --batch-all-objects --batch'
run grep_raw 'grep -ra {pat} .git'
run walk 'python3 /tmp/walk.py .git'
"#
        );
        if state.has_newer_commit() {
            body.push_str("run show_ci 'git show HEAD:deploy/ci.sh'\n");
        }
        let s = Sections::run(&p.env, &body);

        // git ran and read the whole history.
        s.ok_all(&[
            "show_domains",
            "show_domains_v1",
            "show_env",
            "show_client",
            "catfile_domains",
            "catfile_env",
            "show_key",
            "show_ca",
            "diff",
            "status",
        ]);
        let log = s.ok_containing(
            "log",
            &[
                "first deployment script",
                "second deployment step",
                "+echo second-step-done",
                "for domain in app.example.org api.example.org; do",
                "def repos():",
            ],
            &format!("{mode:?}"),
        );
        let control = s.ok("grep_control");
        assert!(
            control
                .lines()
                .any(|l| l.ends_with(":scripts/domains.sh:1")),
            "git grep over the history found nothing:\n{control}"
        );
        let batch = s.ok("batch");
        assert!(batch.contains("all-domains-updated"), "{batch}");
        let (loose, streams) = s.walked("walk");
        match state {
            State::Loose => assert!(loose > 0, "walk.py inflated no loose object"),
            State::Packed => assert!(streams > 0, "walk.py inflated nothing in the pack"),
            State::Mixed => assert!(loose > 0 && streams > 0, "{loose} loose, {streams}"),
            State::MultiPack => assert!(streams > 0, "walk.py inflated nothing in the packs"),
        }
        assert!(
            s.ok("walk")
                .contains("for domain in app.example.org api.example.org; do"),
            "walk.py did not inflate scripts/domains.sh"
        );

        // The host repository was only read.
        assert_objects_kept(&before, &p.objects(), true);
        p.assert_host_repo_intact();

        // No secret anywhere.
        p.assert_no_canary(&s.0);

        // Because the objects read as the worktree does.
        let shown = s.ok("show_domains");
        assert!(shown.contains("RAILWAY_TOKEN=guard-redacted:"), "{shown}");
        assert!(shown.contains("echo second-step-done"), "{shown}");
        assert_eq!(s.ok("catfile_domains"), shown);
        let v1 = s.ok("show_domains_v1");
        assert!(v1.contains("RAILWAY_TOKEN=guard-redacted:"), "{v1}");
        assert!(
            v1.contains("all-domains-updated") && !v1.contains("second-step-done"),
            "{v1}"
        );
        assert_eq!(s.ok("show_env").trim(), "", "HEAD:.env is not empty");
        assert_eq!(s.ok("catfile_env").trim(), "", "HEAD:.env is not empty");
        assert_eq!(
            s.ok("show_key").trim(),
            "",
            "HEAD:config/master.key is not empty"
        );
        assert_eq!(s.ok("show_ca"), CA_PEM, "HEAD:certs/ca.pem was changed");
        let client = s.ok("show_client");
        assert!(
            client.contains("GITHUB = \"guard-redacted:github-token\"")
                && client.contains("def repos():"),
            "{client}"
        );
        if state.has_newer_commit() {
            let ci = s.ok("show_ci");
            assert!(
                ci.contains("token guard-redacted:github-token") && ci.contains("echo ci-done"),
                "{ci}"
            );
        }
        // The tracked files read the same in HEAD and in the worktree.
        let diff = s.ok("diff");
        assert!(hunk_lines(diff).is_empty(), "git diff HEAD:\n{diff}");
        assert!(log.contains("guard-redacted:"), "{log}");
        s.assert_found_nothing("grep_history", "git grep over the history");
        s.assert_found_nothing("grep_raw", "grep -ra .git");
        assert!(s.ok("walk").contains("guard-redacted:"));
    }
}

#[test]
fn committed_secrets_stay_hidden_in_loose_objects() {
    committed_secrets_stay_hidden(State::Loose);
}

#[test]
fn committed_secrets_stay_hidden_in_packs() {
    committed_secrets_stay_hidden(State::Packed);
}

#[test]
fn committed_secrets_stay_hidden_in_packs_and_newer_loose_objects() {
    committed_secrets_stay_hidden(State::Mixed);
}

#[test]
fn committed_secrets_stay_hidden_in_several_packs_with_a_multi_pack_index() {
    committed_secrets_stay_hidden(State::MultiPack);
}

const RELEASE_SH: &str = "#!/bin/sh
# Release the current build to production.
set -eu
RAILWAY_TOKEN={token}
export RAILWAY_TOKEN
railway up --service web
echo release-done
";

const SETTINGS_PY: &str = "import os\n\nGITHUB = {tok}\nTIMEOUT = 30\n";

/// Secrets committed once and removed by the next commit: HEAD and the
/// worktree are clean (HEAD~1 holds them), loose or packed.
fn history_only_project(mode: Mode, packed: bool) -> Project {
    let env = Env::new(mode);
    let dir = env.project.path.clone();
    let uuid = uuid_canary();
    let tok = gh_canary("settings");
    let db = canary("oldenv");
    let pem_body = canary("oldpem");
    let release1 = RELEASE_SH.replace("{token}", &uuid);
    let settings1 = SETTINGS_PY.replace("{tok}", &format!("\"{tok}\""));
    let dotenv = format!("DATABASE_URL=postgres://u:{db}@host/db\n");
    let key = pem(&pem_body);
    let p = &env.project;
    p.write("README", "release tooling\n");
    p.write("deploy/release.sh", &release1);
    p.write("src/settings.py", &settings1);
    p.write(".env", &dotenv);
    p.write("deploy/tls/server.pem", &key);
    git(&dir, &["init", "-q"]);
    commit_tagged(&dir, "add the release script", "v1");
    p.write(
        "deploy/release.sh",
        &RELEASE_SH.replace("{token}", "\"${RAILWAY_TOKEN:?set RAILWAY_TOKEN}\""),
    );
    p.write(
        "src/settings.py",
        &SETTINGS_PY.replace("{tok}", "os.environ[\"GITHUB\"]"),
    );
    std::fs::remove_file(p.join(".env")).expect("rm .env");
    std::fs::remove_file(p.join("deploy/tls/server.pem")).expect("rm server.pem");
    commit_tagged(&dir, "read credentials from the environment", "v2");
    if packed {
        pack_all(&dir);
    }
    Project::new(
        env,
        dir,
        vec![uuid, tok, db, pem_body],
        vec![
            ("v1:deploy/release.sh", release1),
            ("v1:src/settings.py", settings1),
            ("v1:.env", dotenv),
            ("v1:deploy/tls/server.pem", key),
        ],
    )
}

/// A secret removed from the tree lives on in the commit before: `git log
/// -p` and the rest must not show it, and still show the history around it.
#[test]
fn secrets_only_in_history_stay_hidden() {
    for mode in modes() {
        for packed in [false, true] {
            let p = history_only_project(mode, packed);
            let before = p.objects();
            let pat = patterns(&p.canaries);
            let s = Sections::run(
                &p.env,
                &format!(
                    r#"
run now 'cat deploy/release.sh src/settings.py'
run log 'git log -p'
run show_old 'git show HEAD~1:deploy/release.sh'
run show_old_settings 'git show HEAD~1:src/settings.py'
run show_old_env 'git show HEAD~1:.env'
run show_old_pem 'git show HEAD~1:deploy/tls/server.pem'
run grep_history 'git grep {pat} $(git rev-list --all)'
run batch 'git cat-file --batch-all-objects --batch'
run walk 'python3 /tmp/walk.py .git'
"#
                ),
            );
            let ctx = format!("{mode:?}, packed={packed}");
            // The worktree holds no secret: only the history does.
            let now = s.ok("now");
            assert!(
                now.contains("RAILWAY_TOKEN=\"${RAILWAY_TOKEN:?set RAILWAY_TOKEN}\"")
                    && !now.contains("guard-redacted"),
                "{ctx}: {now}"
            );
            let log = s.ok_containing(
                "log",
                &[
                    "add the release script",
                    "read credentials from the environment",
                    "railway up --service web",
                    "echo release-done",
                    " TIMEOUT = 30",
                    "+GITHUB = os.environ[\"GITHUB\"]",
                ],
                &ctx,
            );
            s.ok_all(&[
                "show_old",
                "show_old_settings",
                "show_old_env",
                "show_old_pem",
            ]);
            assert!(s.ok("batch").contains("echo release-done"), "{ctx}");
            let (loose, streams) = s.walked("walk");
            assert!(
                if packed { streams > 0 } else { loose > 0 },
                "{ctx}: walk.py inflated nothing"
            );

            assert_objects_kept(&before, &p.objects(), true);
            p.assert_host_repo_intact();

            p.assert_no_canary(&s.0);

            assert!(log.contains("guard-redacted:"), "{ctx}: {log}");
            let old = s.ok("show_old");
            assert!(
                old.contains("RAILWAY_TOKEN=guard-redacted:") && old.contains("echo release-done"),
                "{ctx}: {old}"
            );
            let old = s.ok("show_old_settings");
            assert!(
                old.contains("GITHUB = \"guard-redacted:github-token\"")
                    && old.contains("TIMEOUT = 30"),
                "{ctx}: {old}"
            );
            assert_eq!(s.ok("show_old_env").trim(), "", "{ctx}: HEAD~1:.env");
            s.assert_found_nothing("grep_history", &format!("{ctx}: git grep"));
            assert!(s.ok("walk").contains("guard-redacted:"), "{ctx}");
        }
    }
}

/// git works in a sanitized repository: the log lists every commit, status
/// runs, a file from history reads exactly as committed, and a new commit
/// can be made. The commit lands on the host, whose repository stays sound.
#[test]
fn git_keeps_working_in_a_sanitized_repository() {
    for mode in modes() {
        let p = project(mode, State::Mixed);
        let before = p.objects();
        let subjects = git_text(&p.repo, &["log", "--format=%s"]);
        let subjects: Vec<&str> = subjects.lines().collect();
        assert_eq!(subjects.len(), 3);
        let s = Sections::run(
            &p.env,
            r#"
run log_before 'git log --oneline'
run status 'git status'
run readme_v1 'git show v1:README'
run util_v1 'git show HEAD~2:src/util.py'
run commit 'echo "made inside" > notes.txt && git add notes.txt && git commit -q -m "commit made inside" && git show HEAD:notes.txt'
run log_after 'git log --oneline'
run status_after 'git status --porcelain'
"#,
        );
        let log = s.ok("log_before");
        assert_eq!(log.trim().lines().count(), 3, "{log}");
        for subject in &subjects {
            assert!(log.contains(subject), "{subject:?} missing:\n{log}");
        }
        s.ok("status");
        assert_eq!(s.ok("readme_v1"), "hello\n");
        assert_eq!(s.ok("util_v1"), UTIL_PY);
        assert_eq!(s.ok("commit"), "made inside\n");
        let log = s.ok("log_after");
        assert_eq!(log.trim().lines().count(), 4, "{log}");
        assert!(
            log.lines()
                .next()
                .is_some_and(|l| l.ends_with(" commit made inside")),
            "{log}"
        );
        assert!(
            !s.ok("status_after").contains("notes.txt"),
            "notes.txt not committed"
        );
        p.assert_no_canary(&s.0);

        // On the host: the new commit is there, nothing else changed.
        assert_objects_kept(&before, &p.objects(), false);
        p.assert_host_repo_intact();
        let head = git(&p.repo, &["log", "-1", "--format=%s"]);
        assert_eq!(head, b"commit made inside\n");
        assert_eq!(git(&p.repo, &["show", "HEAD:notes.txt"]), b"made inside\n");
    }
}

/// `git gc` and `git repack` inside (which may fail) leave the host's
/// repository sound and its content as committed: a sanitized object never
/// ends up in a pack on the host.
#[test]
fn git_gc_inside_does_not_corrupt_the_host_repository() {
    for mode in modes() {
        for state in [State::Loose, State::Packed, State::Mixed, State::MultiPack] {
            let p = project(mode, state);
            let objects_before = git(&p.repo, &["rev-list", "--all", "--objects"]);
            let s = Sections::run(
                &p.env,
                r#"
run gc 'git gc'
run repack 'git repack -a -d -f'
run prune 'git prune --expire=now'
run show 'git show HEAD:scripts/domains.sh'
"#,
            );
            let ctx = format!("{mode:?}, {state:?}");
            for name in ["gc", "repack", "prune", "show"] {
                s.get(name);
            }
            p.assert_host_repo_intact();
            assert_eq!(
                git(&p.repo, &["rev-list", "--all", "--objects"]),
                objects_before,
                "{ctx}: objects lost on the host"
            );
            p.assert_no_canary(&s.0);
        }
    }
}

/// A project with a nested repository, `vendor/lib`, whose history holds
/// secrets: packed first commit, loose second one.
fn nested_project(mode: Mode) -> Project {
    let env = Env::new(mode);
    common::git_repo_with_readme(&env.project.path);
    let dir = env.project.join("vendor/lib");
    let uuid = uuid_canary();
    let tok = gh_canary("vendored");
    let db = canary("vendorenv");
    let pem_body = canary("vendorpem");
    let deploy = DOMAINS_SH.replace("{uuid}", &uuid);
    let client = CLIENT_PY.replace("{tok}", &tok);
    let dotenv = format!("DATABASE_URL=postgres://u:{db}@host/db\n");
    let key = pem(&pem_body);
    let p = &env.project;
    p.write("vendor/lib/deploy.sh", &deploy);
    p.write("vendor/lib/.env", &dotenv);
    p.write("vendor/lib/certs/dev.pem", &key);
    git(&dir, &["init", "-q"]);
    commit_tagged(&dir, "vendor the lib", "v1");
    pack_all(&dir);
    p.write("vendor/lib/client.py", &client);
    commit_tagged(&dir, "add the api client", "v2");
    Project::new(
        env,
        dir,
        vec![uuid, tok, db, pem_body],
        vec![
            ("v1:deploy.sh", deploy),
            ("v1:.env", dotenv),
            ("v1:certs/dev.pem", key),
            ("v2:client.py", client),
        ],
    )
}

#[test]
fn nested_repository_history_stays_hidden() {
    for mode in modes() {
        let p = nested_project(mode);
        let before = p.objects();
        let pat = patterns(&p.canaries);
        let s = Sections::run(
            &p.env,
            &format!(
                r#"
run top_status 'git status'
cd vendor/lib || exit 1
run show_deploy 'git show HEAD:deploy.sh'
run show_client 'git show HEAD:client.py'
run show_env 'git show HEAD:.env'
run show_pem 'git show HEAD:certs/dev.pem'
run log 'git log -p --all'
run grep_history 'git grep {pat} $(git rev-list --all)'
run batch 'git cat-file --batch-all-objects --batch'
run walk 'python3 /tmp/walk.py .git'
"#
            ),
        );
        s.ok_all(&[
            "top_status",
            "show_deploy",
            "show_client",
            "show_env",
            "show_pem",
        ]);
        let log = s.ok_containing(
            "log",
            &[
                "vendor the lib",
                "add the api client",
                "all-domains-updated",
            ],
            &format!("{mode:?}"),
        );
        assert!(s.ok("batch").contains("def repos():"));
        let (loose, streams) = s.walked("walk");
        assert!(loose > 0 && streams > 0, "{loose} loose, {streams} streams");

        assert_objects_kept(&before, &p.objects(), true);
        p.assert_host_repo_intact();

        p.assert_no_canary(&s.0);

        let deploy = s.ok("show_deploy");
        assert!(
            deploy.contains("RAILWAY_TOKEN=guard-redacted:")
                && deploy.contains("all-domains-updated"),
            "{deploy}"
        );
        let client = s.ok("show_client");
        assert!(
            client.contains("GITHUB = \"guard-redacted:github-token\""),
            "{client}"
        );
        assert_eq!(s.ok("show_env").trim(), "");
        assert!(log.contains("guard-redacted:"), "{log}");
        s.assert_found_nothing("grep_history", "git grep");
        assert!(s.ok("walk").contains("guard-redacted:"));
    }
}

/// `guard scan` and `guard scan --json` of projects with secrets in their
/// history run and print no secret.
#[test]
fn scan_never_prints_a_secret_from_history() {
    for mode in modes() {
        let projects = [
            project(mode, State::Mixed),
            history_only_project(mode, true),
            nested_project(mode),
        ];
        for (i, p) in projects.iter().enumerate() {
            let out = p.env.run(&["scan"]);
            out.expect_code(0);
            p.assert_no_canary(&out);
            // The worktree scan ran (the first and last have flagged files).
            if i != 1 {
                assert!(out.stdout.contains("redact  "), "{}", out.stdout);
            }
            let out = p.env.run(&["scan", "--json"]);
            out.expect_code(0);
            p.assert_no_canary(&out);
            let v: serde_json::Value =
                serde_json::from_str(&out.stdout).expect("scan --json prints JSON");
            assert!(v["flagged"].is_array(), "{}", out.stdout);
        }
    }
}
