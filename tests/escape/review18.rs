//! The eighteenth review: the built-in agent and toolchain profiles, which
//! show more of the home than the default one (toolchains read-only, their
//! caches copy-on-write, a persistent home for the agent). Each test names
//! the attack; the ones that say "Hole" failed before the fix that came
//! with them, the others lock in what held.

use crate::common::{Mode, NOBODY, Outcome, TempDir};
use crate::support::{Case, Expect, each_mode};
use std::path::Path;

/// `guard run -p PROFILE -- sh -c SCRIPT`; asserts that no canary leaked.
fn run_profile(case: &Case, profile: &str, script: &str) -> Outcome {
    case.run(&["run", "-p", profile, "--", "sh", "-c", script])
}

/// The last session's log has a `hidden` (or `redacted`) event for `path`:
/// guard covered the file for what it holds, it did not go missing.
fn expect_covered(case: &Case, action: &str, path: &Path) {
    let log = case.run(&["log", "--json"]);
    let path = path.display().to_string();
    assert!(
        log.stdout.lines().any(|l| {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                return false;
            };
            v["kind"] == "fs" && v["action"] == action && v["path"] == path.as_str()
        }),
        "no {action} event for {path}:\n{}",
        log.all()
    );
}

/// Write a file of the host home (owned by the mode's uid afterwards).
fn home_file(case: &Case, rel: &str, content: &str) -> std::path::PathBuf {
    let p = case.env.home.write(rel, content);
    case.env.own();
    p
}

/// Hole: a profile's copy-on-write caches (`~/.npm`, `~/.cache/pip`,
/// `~/.cargo/registry`, `~/.rustup`, `~/go/pkg/mod`, …) show the host's
/// directory whole as their lower layer, but the secrets scan looked only
/// at grants: a token a tool left there (npm writes the command line of a
/// failed `npm publish --//registry…:_authToken=…` to `~/.npm/_logs`) was
/// readable as it is in every agent profile, which all build on these
/// blocks. Now the caches are scanned like the home paths the profile
/// grants, except the package contents each building block skips.
#[test]
fn a_token_left_in_a_toolchain_cache_stays_hidden() {
    each_mode(|mut case| {
        let cases = [
            ("node", ".npm/_logs/2026-01-01T00_00_00_000Z-debug-0.log"),
            ("python", ".cache/pip/debug.log"),
            ("rust", ".rustup/settings.toml"),
            ("go", ".cache/go-build/debug.log"),
            ("claude", ".cargo/registry/publish.log"),
        ];
        for (profile, rel) in cases {
            let token = case.add_gh_canary(profile);
            let file = home_file(
                &case,
                rel,
                &format!("verbose argv \"publish\" \"--//registry.example/:_authToken={token}\"\n"),
            );
            let dir = Path::new(rel).parent().unwrap().display().to_string();
            home_file(&case, &format!("{dir}/plain.txt"), "nothing secret\n");
            let out = run_profile(
                &case,
                profile,
                &format!(
                    "echo ran=1; echo size=$(wc -c < ~/{rel}); cat ~/{rel}; \
                     echo plain=$(cat ~/{dir}/plain.txt | tr ' ' _)"
                ),
            );
            out.ran();
            out.fields(&[("size", "0"), ("plain", "nothing_secret")]);
            out.assert_no_canary(&token);
            expect_covered(&case, "hidden", &file);
        }
        // At the `landlock` level (no copy-on-write, the host's cache
        // read-only) the file is left out of the grants.
        let log = case.home().join(cases[0].1);
        let out = case.run(&[
            "run",
            "--isolation",
            "landlock",
            "-p",
            "node",
            "--",
            "sh",
            "-c",
            &format!(
                "echo ran=1; cat {} 2>/dev/null || echo read=refused",
                log.display()
            ),
        ]);
        out.ran();
        out.fields(&[("read", "refused")]);
        expect_covered(&case, "hidden", &log);
    });
}

/// The caches skip only the packages they hold: a token in a crate's or a
/// module's source is third-party code the user did not write, and a
/// redaction would break the build that uses it. Whatever else lies in the
/// same cache is scanned: the npm log beside the package store.
#[test]
fn the_caches_package_contents_are_not_redacted() {
    each_mode(|mut case| {
        let token = case.add_gh_canary("npmlog");
        let log = home_file(
            &case,
            ".npm/_logs/debug-0.log",
            &format!("Authorization: Bearer {token}\n"),
        );
        // A crate's test fixture holding a key-shaped string, as some do.
        let fixture = crate::common::gh_token("fixture0123456789");
        home_file(
            &case,
            ".cargo/registry/src/index.example-1/demo-1.0.0/src/lib.rs",
            &format!("pub const FIXTURE: &str = \"{fixture}\";\n"),
        );
        let out = run_profile(
            &case,
            "claude",
            &"echo ran=1; echo log=$(wc -c < ~/.npm/_logs/debug-0.log); \
             grep -c FIXTURE_VALUE ~/.cargo/registry/src/index.example-1/demo-1.0.0/src/lib.rs | sed 's/^/crate=/'"
                .replace("FIXTURE_VALUE", &fixture),
        );
        out.ran();
        out.fields(&[("log", "0"), ("crate", "1")]);
        expect_covered(&case, "hidden", &log);
    });
}

/// Hole: a toolchain directory kept elsewhere and linked from the home
/// (`~/.nvm -> /data/nvm` on a small home partition, or `~/.local` on
/// another disk) is granted where the link leads, and the scan looked only
/// at grants below the home: the global npmrc of an nvm-installed node
/// (`{prefix}/etc/npmrc`, where `npm config set --global` writes the
/// registry token) and a script in `~/.local/bin` holding a token were
/// shown as they are. Now the targets of the home's links are scanned too.
#[test]
fn a_toolchain_directory_linked_out_of_the_home_is_scanned() {
    each_mode(|mut case| {
        let elsewhere = TempDir::new("elsewhere", case.mode());
        let npm_token = case.add_gh_canary("nvmnpmrc");
        let script_token = case.add_gh_canary("localbin");
        let npmrc = elsewhere.write(
            "nvm/versions/node/v22.0.0/etc/npmrc",
            &format!("//registry.example/:_authToken={npm_token}\n"),
        );
        elsewhere.write("nvm/versions/node/v22.0.0/bin/.keep", "");
        let script = elsewhere.write(
            "local/bin/deploy",
            &format!("#!/bin/sh\nexport GITHUB_TOKEN={script_token}\n"),
        );
        elsewhere.own(case.mode());
        let home = case.home().to_path_buf();
        std::os::unix::fs::symlink(elsewhere.join("nvm"), home.join(".nvm")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("local"), home.join(".local")).unwrap();
        if case.mode() == Mode::Unprivileged {
            for l in [".nvm", ".local"] {
                std::os::unix::fs::lchown(home.join(l), Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        let read = |profile: &str, via_home: &str, target: &Path| {
            let out = run_profile(
                &case,
                profile,
                &format!(
                    "echo ran=1; echo home=$(wc -c < ~/{via_home}); echo target=$(wc -c < {t}); \
                     cat ~/{via_home} {t}",
                    t = target.display()
                ),
            );
            out.ran();
            out.fields(&[("home", "0"), ("target", "0")]);
            out.assert_no_canary(&npm_token)
                .assert_no_canary(&script_token);
        };
        read("node", ".nvm/versions/node/v22.0.0/etc/npmrc", &npmrc);
        expect_covered(&case, "hidden", &npmrc);
        read("python", ".local/bin/deploy", &script);
        expect_covered(&case, "hidden", &script);
    });
}

/// Held: registry tokens in the toolchain configs the profiles show
/// read-only are redacted, the rest of the file kept for the tool (cargo's
/// `[registries]` and `[registry]` tokens; an nvm node's global npmrc).
#[test]
fn tokens_in_the_toolchain_configs_a_profile_shows_stay_out() {
    each_mode(|mut case| {
        let (reg, main) = (
            case.add_gh_canary("cargoreg"),
            case.add_gh_canary("cargomain"),
        );
        let npm = case.add_gh_canary("nvmglobal");
        let config = home_file(
            &case,
            ".cargo/config.toml",
            &format!(
                "[registries.corp]\nindex = \"sparse+https://crates.corp.example/index/\"\n\
                 token = \"{reg}\"\n[registry]\ntoken = \"{main}\"\n[net]\ngit-fetch-with-cli = true\n"
            ),
        );
        home_file(&case, ".cargo/bin/.keep", "");
        let npmrc = home_file(
            &case,
            ".nvm/versions/node/v22.0.0/etc/npmrc",
            &format!("//registry.example/:_authToken={npm}\n"),
        );
        for profile in ["rust", "claude"] {
            let out = run_profile(
                &case,
                profile,
                "echo ran=1; grep -c crates.corp.example ~/.cargo/config.toml | sed 's/^/index=/'; \
                 cat ~/.cargo/config.toml ~/.nvm/versions/node/v22.0.0/etc/npmrc",
            );
            out.ran();
            out.fields(&[("index", "1")]);
            expect_covered(&case, "redacted", &config);
        }
        let out = run_profile(
            &case,
            "node",
            "echo ran=1; echo size=$(wc -c < ~/.nvm/versions/node/v22.0.0/etc/npmrc)",
        );
        out.ran();
        out.fields(&[("size", "0")]);
        expect_covered(&case, "hidden", &npmrc);
    });
}

/// Held: nothing the sandbox writes to the toolchain paths an agent
/// profile shows reaches the real home, where it would run later outside
/// (a `cargo` or script shadowing the user's on PATH, a cargo `runner` in
/// its config, nvm's `nvm.sh` that the login shell sources, a `.pth` file,
/// shell start-up files). The read-only grants refuse the write (EROFS);
/// the caches and the persistent home take it in guard's own directories.
#[test]
fn writes_to_toolchain_paths_never_reach_the_real_home() {
    each_mode(|case| {
        for (rel, content) in [
            (".cargo/bin/cargo", "#!/bin/sh\n"),
            (".cargo/config.toml", "[build]\njobs = 1\n"),
            (".local/bin/pip", "#!/bin/sh\n"),
            (".nvm/nvm.sh", "nvm() { :; }\n"),
            (".pyenv/shims/python", "#!/bin/sh\n"),
            (".npm/_logs/.keep", ""),
            (".cargo/registry/.keep", ""),
            (".bashrc", "# mine\n"),
        ] {
            home_file(&case, rel, content);
        }
        let home = case.home().to_path_buf();
        let snapshot = || {
            let out = std::process::Command::new("find")
                .arg(&home)
                .args([
                    "-path",
                    &format!("{}/.local/share/guard", home.display()),
                    "-prune",
                ])
                .args([
                    "-o",
                    "-path",
                    &format!("{}/.local/state/guard", home.display()),
                    "-prune",
                ])
                .args([
                    "-o",
                    "-path",
                    &format!("{}/.cache/guard", home.display()),
                    "-prune",
                ])
                .args(["-o", "-printf", "%p %s %T@ %m\\n"])
                .output()
                .expect("run find");
            let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            lines.sort();
            lines
        };
        // guard's own start-up on the host leaves state the first time
        // (its directories; npm, asked for its default registry, its log).
        for profile in ["claude", "rust", "node", "python"] {
            run_profile(&case, profile, "true").expect_code(0);
        }
        let before = snapshot();
        let script = "echo ran=1
w() { if printf 'echo PLANTED\\n' 2>/tmp/err >> \"$1\"; then echo \"$2=written\"; else echo \"$2=$(sed 's/.*: //' /tmp/err | tr ' ' _)\"; fi; }
w ~/.cargo/bin/cargo cargo_bin
w ~/.local/bin/pip local_bin
w ~/.nvm/nvm.sh nvm
w ~/.pyenv/shims/python pyenv
w ~/.npm/_logs/x.log npm_cache
w ~/.cargo/registry/x cargo_cache
mkdir -p ~/.local/lib/python3.11/site-packages ~/.config/systemd/user 2>/dev/null
w ~/.local/lib/python3.11/site-packages/evil.pth pth
w ~/.config/systemd/user/evil.service unit
w ~/.bashrc bashrc
w ~/.ssh/rc ssh_rc
";
        for profile in ["claude", "rust", "node", "python"] {
            let out = run_profile(&case, profile, script);
            out.ran();
            let ro = "Read-only_file_system";
            // Read-only grants refuse; the caches and the sandbox's own
            // home take the write, in guard's directories.
            let expected: &[(&str, &str)] = match profile {
                "claude" => &[
                    ("cargo_bin", ro),
                    ("local_bin", ro),
                    ("nvm", ro),
                    ("pyenv", ro),
                    ("npm_cache", "written"),
                    ("cargo_cache", "written"),
                    ("pth", "written"),
                    ("unit", "written"),
                    ("bashrc", "written"),
                ],
                "rust" => &[("cargo_bin", ro), ("cargo_cache", "written")],
                "node" => &[("nvm", ro), ("npm_cache", "written")],
                _ => &[("local_bin", ro), ("pyenv", ro)],
            };
            out.fields(expected);
            assert_eq!(
                snapshot(),
                before,
                "{profile}: the real home changed:\n{}",
                out.all()
            );
        }
        // Where claude's writes went: its persistent home, never run outside.
        let persistent = case.env.persistent_home("claude");
        for rel in [".bashrc", ".config/systemd/user/evil.service"] {
            let text = std::fs::read_to_string(persistent.join(rel)).unwrap_or_default();
            assert!(text.contains("PLANTED"), "{rel} not in the persistent home");
        }
    });
}

/// The proxy's answer to `CONNECT host:443` from inside the sandbox:
/// 403 when the allowlist refuses the host, 502 when it allows it (no
/// such host can be reached from the test machine).
pub(crate) const CONNECT: &str = r#"echo ran=1; python3 -c '
import os, socket, sys
p = os.environ["HTTPS_PROXY"].split("//")[1].rstrip("/")
h, port = p.rsplit(":", 1)
for host in sys.argv[1:]:
    s = socket.create_connection((h, int(port)), timeout=20)
    s.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (host, host)).encode())
    print("%s=%s" % (host.split(".")[0], s.recv(200).split()[1].decode()))
' "$@""#;

/// Hole: the registries a profile allows (`registries = ["pip", "npm"]`,
/// in every agent profile) came from the config files the environment
/// names, wherever they lay: with `PIP_CONFIG_FILE=$PWD/pip.conf` or
/// `NPM_CONFIG_USERCONFIG=$PWD/.npmrc` (CI settings a project's direnv
/// exports) the repository's own file, writable inside the sandbox, chose
/// a host guard allowed: one session wrote any host there, the next could
/// send to it, with no `guard trust`. Now a config file in the project is
/// never read for registries.
#[test]
fn a_registry_config_in_the_project_opens_no_egress() {
    each_mode(|mut case| {
        case.write(
            "ci/pip.conf",
            "[global]\nindex-url = https://pipexfil.example/simple\n",
        );
        case.write("ci/npmrc", "registry=https://npmexfil.example/\n");
        let pip = case.project().join("ci/pip.conf").display().to_string();
        let npmrc = case.project().join("ci/npmrc").display().to_string();
        case.set_env("PIP_CONFIG_FILE", &pip);
        case.set_env("NPM_CONFIG_USERCONFIG", &npmrc);
        let out = case.run(&[
            "run",
            "-p",
            "claude",
            "--",
            "sh",
            "-c",
            CONNECT,
            "sh",
            "pipexfil.example",
            "npmexfil.example",
        ]);
        out.ran();
        out.fields(&[("pipexfil", "403"), ("npmexfil", "403")]);
        assert!(
            out.stderr.contains("pipexfil.example:443 (not-allowed)"),
            "{}",
            out.all()
        );
        // The same files outside the project are the user's: allowed.
        let elsewhere = TempDir::new("userconf", case.mode());
        let pip = elsewhere.write(
            "pip.conf",
            "[global]\nindex-url = https://pipexfil.example/simple\n",
        );
        elsewhere.own(case.mode());
        let mut cmd = case.guard(&[
            "run",
            "-p",
            "python",
            "--",
            "sh",
            "-c",
            CONNECT,
            "sh",
            "pipexfil.example",
        ]);
        cmd.env("PIP_CONFIG_FILE", &pip);
        let out = case.output(cmd);
        out.ran();
        out.fields(&[("pipexfil", "502")]);
    });
}

/// Hole: a cache directory that is a link (`~/.npm -> .npm-data`, a cache
/// kept on another disk) was mounted copy-on-write over what the link
/// leads to, but the secrets scan, which never follows links, did not
/// look there: a token in npm's log behind the link was readable. Now such
/// a cache is not mounted (the tool starts with an empty one), with a
/// warning. A toolchain home linked whole (`~/.cargo -> /data/cargo`) no
/// longer stops every profile built on `rust` at the mount of its cache.
#[test]
fn a_cache_reached_through_a_link_is_not_shown_unscanned() {
    each_mode(|mut case| {
        let token = case.add_gh_canary("npmlink");
        home_file(
            &case,
            ".npm-data/_logs/debug-0.log",
            &format!("Authorization: Bearer {token}\n"),
        );
        let elsewhere = TempDir::new("cargohome", case.mode());
        elsewhere.write("cargo/registry/index/.keep", "");
        elsewhere.write("cargo/bin/.keep", "");
        elsewhere.own(case.mode());
        let home = case.home().to_path_buf();
        std::os::unix::fs::symlink(".npm-data", home.join(".npm")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("cargo"), home.join(".cargo")).unwrap();
        if case.mode() == Mode::Unprivileged {
            for l in [".npm", ".cargo"] {
                std::os::unix::fs::lchown(home.join(l), Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        for profile in ["node", "claude"] {
            let out = run_profile(
                &case,
                profile,
                "echo ran=1; cat ~/.npm/_logs/debug-0.log 2>/dev/null || echo read=absent",
            );
            out.ran();
            out.expect_code(0);
            out.fields(&[("read", "absent")]);
            assert!(
                out.stderr.contains(&format!(
                    "{} leads to {} through a symlink",
                    home.join(".npm").display(),
                    home.join(".npm-data").display()
                )),
                "{profile}: no warning:\n{}",
                out.all()
            );
        }
    });
}

/// A directory in /opt for one test, readable by every uid, removed on drop.
struct OptDir(std::path::PathBuf);

impl OptDir {
    fn new(tag: &str) -> OptDir {
        let p = std::path::PathBuf::from(format!(
            "/opt/guard-r18-{}-{tag}-{}",
            std::process::id(),
            crate::common::canary("d")
        ));
        std::fs::create_dir_all(&p).expect("create a directory in /opt");
        OptDir(p)
    }

    fn write(&self, rel: &str, content: &str) -> std::path::PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        let st = std::process::Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&self.0)
            .status()
            .expect("run chmod");
        assert!(st.success());
        p
    }
}

impl Drop for OptDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Hole: a toolchain's home outside the user's home, where the toolchain
/// profiles point the tools (they pass CARGO_HOME, NVM_DIR, …): the
/// official Rust image keeps CARGO_HOME in /usr/local/cargo, devcontainers
/// install nvm in /usr/local/share/nvm, teams put toolchains in /opt.
/// Profiles show /usr and /opt read-only and the scan does not enter them,
/// so `cargo login`'s credentials.toml, a registry token in cargo's
/// config.toml and a node's global npmrc there were shown as they are, to
/// `cat` and to `cargo publish` alike. Now the toolchain homes the
/// environment names are scanned (not the packages they hold) and cargo's
/// login files there are hidden.
#[test]
fn a_toolchain_home_outside_the_home_is_scanned() {
    each_mode(|mut case| {
        let opt = OptDir::new("tools");
        let (login, config, npm) = (
            case.add_gh_canary("cargologin"),
            case.add_gh_canary("cargoconfig"),
            case.add_gh_canary("nvmnpmrc"),
        );
        let creds = opt.write(
            "cargo/credentials.toml",
            &format!("[registry]\ntoken = \"{login}\"\n"),
        );
        let cfg = opt.write(
            "cargo/config.toml",
            &format!("[registries.corp]\nindex = \"sparse+https://crates.corp.example/\"\ntoken = \"{config}\"\n"),
        );
        let fixture = crate::common::gh_token("optfixture0123456");
        opt.write(
            "cargo/registry/src/index.example-1/demo-1.0.0/src/lib.rs",
            &format!("pub const FIXTURE: &str = \"{fixture}\";\n"),
        );
        let npmrc = opt.write(
            "nvm/versions/node/v22.0.0/etc/npmrc",
            &format!("//registry.example/:_authToken={npm}\n"),
        );
        case.set_env("CARGO_HOME", &opt.0.join("cargo").display().to_string());
        case.set_env("NVM_DIR", &opt.0.join("nvm").display().to_string());
        for profile in ["rust", "claude", "node", "default"] {
            let out = run_profile(
                &case,
                profile,
                &format!(
                    "echo ran=1; echo login=$(wc -c < {c}); echo npmrc=$(wc -c < {n}); \
                     grep -c crates.corp.example {g} | sed 's/^/index=/'; \
                     grep -c {fixture} {d}/cargo/registry/src/index.example-1/demo-1.0.0/src/lib.rs | sed 's/^/crate=/'; \
                     cat {c} {g} {n}",
                    c = creds.display(),
                    g = cfg.display(),
                    n = npmrc.display(),
                    d = opt.0.display(),
                ),
            );
            out.ran();
            out.fields(&[
                ("login", "0"),
                ("npmrc", "0"),
                ("index", "1"),
                ("crate", "1"),
            ]);
            expect_covered(&case, "redacted", &cfg);
            expect_covered(&case, "hidden", &npmrc);
        }
    });
}

/// Hole (found by review 18, fixed after it): the copilot profile passed
/// `GH_TOKEN` and `GITHUB_TOKEN` with api.github.com allowed. In a
/// developer's shell those are gh's (or a CI's) token for every scope:
/// the agent could call the GitHub API with it for anything, which is why
/// the profile never imports `~/.config/gh`. Now only the variable meant
/// for copilot passes (`COPILOT_GITHUB_TOKEN`); another needs
/// `--allow-env`, and the run says what it removed.
#[test]
fn copilot_gets_its_own_token_not_the_users_github_token() {
    each_mode(|mut case| {
        let gh = case.add_gh_canary("gh");
        let ci = case.add_gh_canary("ci");
        let own = format!("copilot-{}", std::process::id());
        case.set_env("GH_TOKEN", &gh);
        case.set_env("GITHUB_TOKEN", &ci);
        case.set_env("COPILOT_GITHUB_TOKEN", &own);
        let out = run_profile(
            &case,
            "copilot",
            "env; cat /proc/self/environ | tr '\\0' '\\n'; \
             echo gh=${GH_TOKEN:-unset}; echo github=${GITHUB_TOKEN:-unset}",
        );
        out.expect_code(0);
        out.expect_fields(&[("gh", "unset"), ("github", "unset")]);
        assert!(
            out.stdout.contains(&format!("COPILOT_GITHUB_TOKEN={own}")),
            "{}",
            out.all()
        );
        let log = case.run(&["log", "--json"]);
        for name in ["GH_TOKEN", "GITHUB_TOKEN"] {
            assert!(
                log.stdout.lines().any(|l| l.contains("\"kind\":\"env\"")
                    && l.contains(&format!("\"name\":\"{name}\""))
                    && l.contains("\"action\":\"removed\"")),
                "{name} was not reported removed:\n{}",
                log.all()
            );
        }
    });
}
