//! Secrets layer: a hidden or redacted file must stay hidden or redacted
//! whatever path reaches it (hard links, symlinks), its hiding mount cannot
//! be removed, secrets are found in git-ignored and innocently named files,
//! and the scan cache cannot be fooled into serving a stale verdict.
//!
//! Secret values are assembled at run time so this file holds nothing the
//! scanner would flag.

use crate::support::{Case, Expect, each_mode, each_mode_alone, errno::*};
use std::process::Command;

/// A GitHub-token-shaped canary (prefix + 36 alphanumerics): flagged by
/// content wherever it appears.
pub(crate) fn gh_token(case: &mut Case, tag: &str) -> String {
    let c = case.add_canary(tag);
    let body: String = c
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .chain("Zq8vL2mN4pQ6rS8tU0vW1xY3".chars().cycle())
        .take(36)
        .collect();
    // The canary itself is a prefix of the token, so a leak of the token
    // is caught by the canary check too.
    ["gh", "p_", &body].concat()
}

/// Python: `show(label, path)` prints `label=empty`, `label=redacted`
/// (the file holds a guard-redacted marker and no canary), or
/// `label=leaked-N` (N bytes that are neither), never the content.
pub(crate) const SHOW: &str = r#"
def show(label, path):
    try:
        data = open(path, "rb").read()
    except OSError as e:
        out(label, "errno-%d" % e.errno)
        return
    if not data:
        out(label, "empty")
    elif b"CANARY" in data:
        out(label, "leaked-%d" % len(data))
    elif b"guard-redacted:" in data:
        out(label, "redacted")
    else:
        out(label, "other-%d" % len(data))
"#;

/// A file hidden because of its name (`.env`), whose content alone would
/// not be flagged, reached through existing hard links with innocent names
/// (same inode). The hard links must read as hidden too.
#[test]
fn hidden_file_through_an_existing_hard_link() {
    each_mode(|mut case| {
        let c = case.add_canary("hardlink");
        let env = case.write(".env", &format!("greeting {c}\n"));
        let p = case.project().to_path_buf();
        std::fs::create_dir_all(p.join("docs")).expect("mkdir docs");
        std::fs::hard_link(&env, p.join("notes.txt")).expect("hard link");
        std::fs::hard_link(&env, p.join("docs/readme.md")).expect("hard link");
        case.env.own();
        case.python(&format!(
            r#"{SHOW}
show("env", ".env")
out("same_inode", int(os.stat(".env").st_ino == os.stat("notes.txt").st_ino))
show("notes", "notes.txt")
show("readme", "docs/readme.md")
"#
        ))
        .fields(&[("env", "empty"), ("notes", "empty"), ("readme", "empty")]);
    });
}

/// Symlinks inside the project (relative and absolute, planted before the
/// run and created inside) to a hidden and a redacted file show the hidden
/// or redacted view, never the original.
#[test]
fn symlink_to_hidden_and_redacted_files() {
    each_mode(|mut case| {
        let dot = case.add_canary("dotenv");
        let tok = gh_token(&mut case, "symtok");
        case.write(".env", &format!("STRIPE_KEY={dot}\n"));
        case.write(
            "src/client.py",
            &format!("import os\n\nGITHUB = \"{tok}\"\n\ndef main():\n    print(os.getcwd())\n"),
        );
        let p = case.project().to_path_buf();
        std::fs::create_dir_all(p.join("docs")).expect("mkdir docs");
        std::os::unix::fs::symlink("../.env", p.join("docs/env.md")).expect("symlink");
        std::os::unix::fs::symlink(p.join("src/client.py"), p.join("docs/client.md"))
            .expect("symlink");
        case.env.own();
        let proj = p.display().to_string();
        case.python(&format!(
            r#"{SHOW}
show("rel_hidden", "docs/env.md")
show("abs_redacted", "docs/client.md")
os.symlink("{proj}/.env", "new-env-link")
os.symlink("src/client.py", "new-client-link")
show("new_hidden", "new-env-link")
show("new_redacted", "new-client-link")
show("proc_hidden", "/proc/self/cwd/docs/env.md")
out("nofollow", err(os.open, "docs/env.md", os.O_RDONLY | os.O_NOFOLLOW))
"#
        ))
        .fields(&[
            ("rel_hidden", "empty"),
            ("abs_redacted", "redacted"),
            ("new_hidden", "empty"),
            ("new_redacted", "redacted"),
            ("proc_hidden", "empty"),
            ("nofollow", "40"), // ELOOP
        ]);
    });
}

/// The mounts that hide and redact cannot be unmounted (mount calls are
/// refused: EPERM), renamed or removed (mount points: EBUSY), nor can the
/// directories above them (EBUSY); afterwards the files still read
/// hidden/redacted, and the host copies are intact.
#[test]
fn hiding_mount_cannot_be_unmounted_or_renamed() {
    each_mode(|mut case| {
        let dot = case.add_canary("dotenv");
        let tok = gh_token(&mut case, "mnttok");
        let env_text = format!("STRIPE_KEY={dot}\n");
        let client_text =
            format!("import os\n\nGITHUB = \"{tok}\"\n\ndef main():\n    print(os.getcwd())\n");
        case.write(".env", &env_text);
        case.write("src/client.py", &client_text);
        case.python(&format!(
            r#"{SHOW}
MNT_DETACH = 2
out("umount_hidden", sc(166, b".env", MNT_DETACH)[1])
out("umount_redacted", sc(166, b"src/client.py", MNT_DETACH)[1])
out("umount_hidden_plain", sc(166, b".env", 0)[1])
out("rename_hidden", err(os.rename, ".env", "moved.env"))
out("rename_redacted", err(os.rename, "src/client.py", "src/moved.py"))
out("unlink_hidden", err(os.unlink, ".env"))
open("decoy", "w").write("x\n")
out("rename_over_hidden", err(os.rename, "decoy", ".env"))
show("after_hidden", ".env")
show("after_redacted", "src/client.py")
# The parent directory is a mount point too: renamed, it would carry the
# real file away from the path the next session redacts.
out("rename_dir", err(os.rename, "src", "src.old"))
show("after_dir_rename", "src/client.py")
"#
        ))
        .fields(&[
            ("umount_hidden", EPERM),
            ("umount_redacted", EPERM),
            ("umount_hidden_plain", EPERM),
            ("rename_hidden", EBUSY),
            ("rename_redacted", EBUSY),
            ("unlink_hidden", EBUSY),
            ("rename_over_hidden", EBUSY),
            ("after_hidden", "empty"),
            ("after_redacted", "redacted"),
            ("rename_dir", EBUSY),
            ("after_dir_rename", "redacted"),
        ]);
        let p = case.project();
        assert_eq!(std::fs::read_to_string(p.join(".env")).unwrap(), env_text);
        assert_eq!(
            std::fs::read_to_string(p.join("src/client.py")).unwrap(),
            client_text
        );
    });
}

/// A secret in a git-ignored, deeply nested file and one in a file with an
/// innocent name (no secret-looking name anywhere) are still redacted.
#[test]
fn secret_in_gitignored_nested_file_and_innocent_name() {
    each_mode(|mut case| {
        let t1 = gh_token(&mut case, "ignored");
        let t2 = gh_token(&mut case, "innocent");
        let st = Command::new("git")
            .args(["init", "-q"])
            .current_dir(case.project())
            .status()
            .expect("git");
        assert!(st.success());
        case.write(".gitignore", "build/\n*.log\n");
        case.write(
            "build/out/deep/er/settings.py",
            &format!("import sys\n\nVALUE = \"{t1}\"\n\ndef run():\n    return sys.argv\n"),
        );
        case.write(
            "notes/monday.txt",
            &format!(
                "Meeting notes\n- ship the release\n- use {t2} for the api\n- lunch at noon\n"
            ),
        );
        case.write(
            "run.log",
            &format!("started\nauth with {t2}\nfinished ok\n"),
        );
        case.python(&format!(
            r#"{SHOW}
show("ignored_nested", "build/out/deep/er/settings.py")
show("innocent", "notes/monday.txt")
show("ignored_log", "run.log")
import subprocess
g = subprocess.run(["grep", "-rl", "--exclude=attack.py", "CANARY", "."], capture_output=True)
out("grep_hits", len(g.stdout.splitlines()))
"#
        ))
        .fields(&[
            ("ignored_nested", "redacted"),
            ("innocent", "redacted"),
            ("ignored_log", "redacted"),
            ("grep_hits", "0"),
        ]);
    });
}

/// Cache poisoning: a clean file is scanned and cached, then rewritten on
/// the host with a secret of the same size and its mtime put back
/// (`touch -r`). Only the ctime changed; the next run must still redact it.
#[test]
fn cache_poisoning_same_size_and_mtime() {
    each_mode(|mut case| {
        let tok = gh_token(&mut case, "poison");
        let clean_tok: String = "x".repeat(tok.len());
        let text = |t: &str| {
            format!("import os\n\nVALUE = \"{t}\"\n\ndef main():\n    print(os.getcwd())\n")
        };
        let f = case.write("src/app.py", &text(&clean_tok));
        let reference = case.project().join("mtime.ref");
        std::fs::copy(&f, &reference).expect("copy");
        let st = Command::new("touch")
            .arg("-r")
            .arg(&f)
            .arg(&reference)
            .status()
            .expect("touch");
        assert!(st.success());
        case.env.own();
        // Files changed in the last two seconds are never cached.
        std::thread::sleep(std::time::Duration::from_millis(2200));
        case.write_python(&format!("{SHOW}\nshow(\"app\", \"src/app.py\")\n"));
        case.env.own();
        let first = case.run_python();
        first.fields(&[("app", &format!("other-{}", text(&clean_tok).len()))]);
        let before = std::fs::metadata(&f).expect("stat");
        // Rewrite in place (same inode), same size, old mtime.
        std::fs::write(&f, text(&tok)).expect("rewrite");
        let st = Command::new("touch")
            .arg("-r")
            .arg(&reference)
            .arg(&f)
            .status()
            .expect("touch");
        assert!(st.success());
        let after = std::fs::metadata(&f).expect("stat");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (
                before.ino(),
                before.size(),
                before.mtime(),
                before.mtime_nsec()
            ),
            (after.ino(), after.size(), after.mtime(), after.mtime_nsec()),
            "fixture: inode, size and mtime must be unchanged"
        );
        let second = case.run_python();
        second.fields(&[("app", "redacted")]);
    });
}

/// A token in `.git/config` (a remote URL with credentials, an
/// `http.extraheader`): `.git/config` is a protected path, and protection
/// must not win over the secret. Full level: the file reads redacted and
/// stays read-only (git still reads its config); landlock level: it is
/// unreadable. The host file is unchanged either way.
#[test]
fn token_in_protected_git_config() {
    for isolation in ["full", "landlock"] {
        each_mode(|mut case| {
            let tok = gh_token(&mut case, "gitcfg");
            let p = case.project().to_path_buf();
            let git = |args: &[&str]| {
                let o = Command::new("git")
                    .args(["-c", "safe.directory=*"])
                    .args(args)
                    .current_dir(&p)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .output()
                    .expect("git is required");
                assert!(o.status.success(), "git {args:?}");
            };
            git(&["init", "-q"]);
            let url = format!("https://x-access-token:{tok}@example.invalid/o/r.git");
            git(&["remote", "add", "origin", &url]);
            case.env.own();
            let config = p.join(".git/config");
            let before = std::fs::read(&config).expect("read config");
            assert!(before.windows(tok.len()).any(|w| w == tok.as_bytes()));
            case.write_python(&format!(
                r#"{SHOW}
import subprocess
show("config", ".git/config")
try:
    open(".git/config", "a").write("x")
    out("append", "ok")
except OSError as e:
    out("append", "errno-%d" % e.errno)
r = subprocess.run(["git", "config", "--get", "remote.origin.url"], capture_output=True)
out("git_url", "redacted" if b"guard-redacted:" in r.stdout else "rc-%d" % r.returncode)
"#
            ));
            let out = case.run(&[
                "run",
                "--isolation",
                isolation,
                "--",
                "/usr/bin/python3",
                "attack.py",
            ]);
            out.ran();
            if isolation == "full" {
                out.fields(&[
                    ("config", "redacted"),
                    ("git_url", "redacted"),
                    ("append", "errno-30"),
                ]);
            } else {
                out.fields(&[("config", "errno-13"), ("append", "errno-13")]);
            }
            assert_eq!(std::fs::read(&config).expect("read config"), before);
        });
    }
}

/// A protected file that is also a secret (`.vscode/settings.json` holding
/// nothing but a token): hidden, and still protected. Its directory must
/// not be renamed away so that a new `settings.json`, which the editor
/// runs outside later, takes its place on the host.
#[test]
fn secret_protected_file_keeps_its_protection() {
    each_mode(|mut case| {
        let tok = gh_token(&mut case, "vscode");
        case.write(
            ".vscode/settings.json",
            &format!("{{\"github.token\": \"{tok}\"}}\n"),
        );
        case.env.own();
        let settings = case.project().join(".vscode/settings.json");
        let before = std::fs::read(&settings).expect("read settings");
        case.python(&format!(
            r#"{SHOW}
show("settings", ".vscode/settings.json")
out("rename_dir", err(os.rename, ".vscode", ".vscode-old"))
out("rename_file", err(os.rename, ".vscode/settings.json", ".vscode/old.json"))
"#
        ))
        .fields(&[
            ("settings", "empty"),
            ("rename_dir", EBUSY),
            ("rename_file", EBUSY),
        ]);
        assert_eq!(std::fs::read(&settings).expect("read settings"), before);
        assert!(!case.project().join(".vscode-old").exists());
    });
}

/// Python's bytecode cache of a redacted source holds the secret string
/// verbatim (`grep -ra`, `strings`). It is hidden; Python then compiles the
/// redacted source and runs with the redacted value.
#[test]
fn python_bytecode_of_a_redacted_file_is_hidden() {
    each_mode(|mut case| {
        let tok = gh_token(&mut case, "pyc");
        case.write(
            "app/settings.py",
            &format!("import os\n\nDEBUG = True\nGITHUB = \"{tok}\"\nTIMEOUT = 30\n"),
        );
        let st = Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import py_compile; py_compile.compile('app/settings.py')",
            ])
            .current_dir(case.project())
            .status()
            .expect("python3 is required");
        assert!(st.success(), "py_compile failed");
        let cache = case.project().join("app/__pycache__");
        let pyc = std::fs::read_dir(&cache)
            .expect("__pycache__ written")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "pyc"))
            .expect("a .pyc written");
        let before = std::fs::read(&pyc).expect("read pyc");
        assert!(
            before.windows(tok.len()).any(|w| w == tok.as_bytes()),
            "the bytecode holds the token (the attack is real)"
        );
        case.env.own();
        let name = crate::support::basename(&pyc);
        case.python(&format!(
            r#"{SHOW}
import sys
show("pyc", "app/__pycache__/{name}")
sys.path.insert(0, "app")
import settings
out("imported", "redacted" if settings.GITHUB.startswith("guard-redacted:") else "other")
out("timeout", settings.TIMEOUT)
"#
        ))
        .fields(&[
            ("pyc", "empty"),
            ("imported", "redacted"),
            ("timeout", "30"),
        ]);
        assert_eq!(std::fs::read(&pyc).expect("read pyc"), before);
    });
}

/// Hole: the secrets scan looked at the project and the granted parts of
/// home, but every profile also shows /etc, where an administrator leaves
/// tokens for every user's tools: `/etc/environment`, a `pip.conf` whose
/// index URL carries a password, a unit file's `Environment=`. World-
/// readable, they were read inside as they are. Now /etc and /usr/local/etc
/// are scanned like the project, at both levels and whoever runs guard.
#[test]
fn secrets_in_the_machines_configuration_are_hidden_or_redacted() {
    assert!(
        crate::common::is_root(),
        "this test plants files in /etc and must run as root (as CI does)"
    );
    each_mode_alone(|mut case| {
        let tok = gh_token(&mut case, "etcenv");
        let pass = case.add_canary("etcpass");
        let dir =
            crate::support::EtcFixture(format!("/etc/guard-secrets-{}", std::process::id()).into());
        std::fs::create_dir_all(&dir.0).expect("create the /etc fixture");
        let unit = format!(
            "[Unit]\nDescription=sync\n\n[Service]\nExecStart=/usr/bin/true\nEnvironment=GH_TOKEN={tok}\nRestart=always\n"
        );
        for (name, content) in [
            ("environment", format!("GITHUB_TOKEN={tok}\n")),
            (
                "pip.conf",
                format!("[global]\nindex-url = https://deploy:{pass}@pkgs.internal.test/simple\n"),
            ),
            ("sync.service", unit),
        ] {
            let file = dir.0.join(name);
            std::fs::write(&file, content).expect("write the /etc fixture");
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .expect("chmod the /etc fixture");
        }
        case.write_python(&format!(
            r#"{SHOW}
show("environment", "{d}/environment")
show("pip", "{d}/pip.conf")
show("unit", "{d}/sync.service")
"#,
            d = dir.0.display()
        ));
        // At the landlock level nothing can stand in for a file: Landlock
        // grants the files around it instead.
        for (level, hidden, redacted) in [
            ("full", "empty", "redacted"),
            ("landlock", "errno-13", "errno-13"),
        ] {
            let out = case.run_python_at(level);
            out.expect_code(0);
            out.fields(&[("environment", hidden), ("pip", hidden), ("unit", redacted)]);
        }
    });
}

/// Hole: a file or directory of the user's that they made unreadable
/// (`chmod 000`) was not scanned (guard could not read it) and so not
/// hidden; inside, where the sandbox runs as that user, `chmod` gave the
/// permission back and the secret was read. Now what guard cannot read
/// though the user owns it is hidden. (Run as root, guard reads it and
/// judges its content.)
#[test]
fn files_the_user_made_unreadable_cannot_be_made_readable_inside() {
    use std::os::unix::fs::PermissionsExt;
    each_mode(|mut case| {
        let in_file = gh_token(&mut case, "modefile");
        let in_dir = gh_token(&mut case, "modedir");
        let file = case.write("creds.txt", &format!("{in_file}\n"));
        case.write("vault/notes.txt", &format!("{in_dir}\n"));
        case.env.own();
        let dir = case.project().join("vault");
        for p in [&file, &dir] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
        }
        case.write_python(&format!(
            r#"{SHOW}
out("chmod_file", err(os.chmod, "creds.txt", 0o600))
show("file", "creds.txt")
out("chmod_dir", err(os.chmod, "vault", 0o700))
show("dir", "vault/notes.txt")
"#
        ));
        // As root guard reads both and hides them by content; as the
        // user it cannot, and hides them for that. Either way the stand-in
        // is read-only and the directory's files are out of reach.
        let root = case.mode() == crate::common::Mode::Invoker && crate::common::is_root();
        let full: &[(&str, &str)] = if root {
            &[
                ("chmod_file", EROFS),
                ("file", "empty"),
                ("chmod_dir", "0"),
                ("dir", "empty"),
            ]
        } else {
            &[
                ("chmod_file", EROFS),
                ("file", "empty"),
                ("chmod_dir", EROFS),
                ("dir", "errno-2"),
            ]
        };
        let out = case.run(&["run", "-q", "--", "/usr/bin/python3", "attack.py"]);
        out.ran();
        out.expect_code(0);
        out.fields(full);
        // The user's choice stands: guard did not open the directory up
        // after the run.
        if !root {
            for p in [&file, &dir] {
                let mode = std::fs::symlink_metadata(p)
                    .expect("stat")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o000, "{} was made readable", p.display());
            }
        }
        // The landlock level cannot refuse chmod (Landlock does not govern
        // it), but the files stay unreadable.
        let out = case.run_python_at("landlock");
        out.expect_code(0);
        out.fields(&[("file", "errno-13"), ("dir", "errno-13")]);
    });
}
