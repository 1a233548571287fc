//! Secrets: files hidden or redacted, environment scrubbed, `guard scan`,
//! the cache, and no false positives on real code. Every case runs the real
//! binary in every mode (as the invoker, and as uid 65534 when root).
//!
//! Token-shaped values are assembled at run time, so this file itself holds
//! nothing guard's scanner would flag (the false-positive test scans it).

mod common;

use common::{
    DOMAINS_SH, Env, Mode, Outcome, canary, gh_canary, host_git, modes, pem, uuid_canary,
};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default profile, with `[secrets]` keys and extra TOML added (a
/// profile given by path does not extend the default one).
fn profile_from_default(secrets_keys: &str, extra: &str, pass_all: bool) -> String {
    let mut text = include_str!("../profiles/default.toml").to_string();
    if pass_all {
        text = text.replacen("pass = [", "pass = [\"*\", ", 1);
    }
    if text.contains("\n[secrets]\n") {
        text = text.replacen(
            "\n[secrets]\n",
            &format!("\n[secrets]\n{secrets_keys}\n"),
            1,
        );
    } else {
        text.push_str(&format!("\n[secrets]\n{secrets_keys}\n"));
    }
    text.push_str(extra);
    text
}

/// A canary that looks like a generated password or key (mixed classes,
/// no words), as the generic rule expects of a real secret.
fn random_canary(tag: &str) -> String {
    canary(tag)
        .chars()
        .zip("7kQ2xZ9mR4tW8pL3".chars().cycle())
        .flat_map(|(a, b)| [a, b])
        .collect()
}

struct Fixture {
    env: Env,
    /// Every secret value planted; none may ever be printed.
    canaries: Vec<String>,
}

impl Fixture {
    fn assert_no_canary(&self, out: &Outcome) {
        for c in &self.canaries {
            out.assert_no_canary(c);
        }
    }
}

/// A project and a home with canaries in every form.
fn fixture(mode: Mode) -> Fixture {
    let env = Env::new(mode);
    let p = &env.project;
    let uuid = uuid_canary();
    let yaml_pw = random_canary("yml");
    let json_key = canary("jsonkey");
    let dotenv = canary("dotenv");
    let pem_body = canary("pembody");
    let py_tok = gh_canary("py");
    let home_tok = gh_canary("home");
    let cred = canary("cred");
    // Provider tokens passed straight to a client: no secret-sounding name
    // next to them, only their format gives them away.
    let filler = |tag: &str, n: usize| -> String {
        canary(tag)
            .chars()
            .chain("Zq8vL2mN4pQ6rS8tU0vW1xY3".chars().cycle())
            .take(n)
            .collect()
    };
    let groq = ["gs", "k_", &filler("groq", 52)].concat();
    let sendgrid = ["S", "G.", &filler("sg", 22), ".", &filler("sgb", 43)].concat();
    let maven_pw = random_canary("mvn");

    let script = p.write("scripts/domains.sh", &DOMAINS_SH.replace("{uuid}", &uuid));
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    p.write(
        "config/app.yaml",
        &format!(
            "name: shop\nport: 8080\ndatabase:\n  host: db.internal\n  user: shop\n  password: \"{yaml_pw}\"\nlog_level: info\nworkers: 4\n"
        ),
    );
    p.write(
        "config/service.json",
        &format!(
            "{{\n  \"client_email\": \"deployer@example.iam\",\n  \"private_key\": \"{}\"\n}}\n",
            pem(&json_key).replace('\n', "\\n")
        ),
    );
    p.write(".env", &format!("STRIPE_KEY={dotenv}\n"));
    p.write(
        ".env.example",
        "STRIPE_KEY=<your stripe key>\nDB_PASSWORD=changeme\n",
    );
    p.write("deploy/prod/tls/server.pem", &pem(&pem_body));
    p.write(
        "src/client.py",
        &format!(
            "import requests\n\nGITHUB = \"{py_tok}\"\n\ndef repos():\n    return requests.get(\"https://api.github.com/user/repos\")\n"
        ),
    );
    p.write(
        "src/llm.ts",
        &format!(
            "import Groq from \"groq-sdk\";\n\nexport const client = new Groq(\"{groq}\");\nexport const model = \"llama\";\n"
        ),
    );
    p.write(
        "src/mail.py",
        &format!(
            "from sendgrid import SendGridAPIClient\n\nsg = SendGridAPIClient(\"{sendgrid}\")\n\ndef send(message):\n    return sg.send(message)\n"
        ),
    );
    p.write(
        "ci/settings.xml",
        &format!(
            "<settings>\n  <servers>\n    <server>\n      <id>releases</id>\n      <username>deploy</username>\n      <password>{maven_pw}</password>\n    </server>\n  </servers>\n</settings>\n"
        ),
    );
    p.write(
        "README.md",
        "# shop\n\nRun scripts/domains.sh to update DNS.\n",
    );
    env.home.write(
        ".gitconfig",
        &format!("[user]\n\tname = Dev\n\temail = dev@example.org\n[github]\n\tuser = dev\n\ttoken = {home_tok}\n"),
    );
    env.home.write(
        ".config/git/credentials",
        &format!("https://dev:{cred}@git.example.org\n"),
    );
    env.home.write(".config/git/ignore", "*.swp\n");
    std::os::unix::fs::symlink(".env", p.join("env-link")).expect("symlink");
    host_git(&p.path, &["init", "-q"]);
    // Intent-to-add: `git grep` searches these files, and no blob holding a
    // secret is written to .git/objects.
    host_git(&p.path, &["add", "-N", "."]);
    env.own();
    Fixture {
        env,
        canaries: vec![
            uuid, yaml_pw, json_key, dotenv, pem_body, py_tok, home_tok, cred, groq, sendgrid,
            maven_pw,
        ],
    }
}

/// `guard ARGS` without the caller's cache location (tests use their home).
fn guard(env: &Env, args: &[&str]) -> Outcome {
    Outcome::from(
        env.guard(args)
            .env_remove("XDG_CACHE_HOME")
            .output()
            .expect("spawn guard"),
    )
}

#[test]
fn no_file_canary_reaches_the_sandbox() {
    for mode in modes() {
        let f = fixture(mode);
        let script = r#"
            set -u
            echo "== cat every file"
            find . -path ./.git -prune -o -type f -print | sort | while read -r f; do echo "-- $f"; cat "$f"; done
            cat env-link; echo "env-link=$?"
            echo "== grep -r"
            grep -rn '' . --exclude-dir=.git
            echo "== git grep"
            git grep -n -I -e '' ; echo "git-grep=$?"
            git grep -c guard-redacted -- scripts/domains.sh
            echo "== home"
            cat "$HOME/.gitconfig"; cat "$HOME/.config/git/credentials"; cat "$HOME/.config/git/ignore"
            grep -rn '' "$HOME" 2>&1
            echo "== find"
            find / -xdev 2>/dev/null | grep -c . 
            echo "== env"
            env; tr '\0' '\n' < /proc/self/environ
            echo "== run the redacted script"
            ./scripts/domains.sh
            ls -l scripts/domains.sh
        "#;
        let out = guard(&f.env, &["run", "--", "sh", "-c", script]);
        out.expect_code(0);
        f.assert_no_canary(&out);
        let o = &out.stdout;
        // Redacted files read the same but for the values.
        assert!(
            o.contains("RAILWAY_TOKEN=guard-redacted:secret-assignment\n"),
            "{o}"
        );
        assert!(
            o.contains("for domain in app.example.org api.example.org; do"),
            "{o}"
        );
        assert!(o.contains("all-domains-updated"), "{o}");
        // The copy keeps the original's mode: still executable.
        assert!(o.contains("updating app.example.org"), "{o}");
        assert!(
            o.lines()
                .any(|l| l.starts_with("-rwxr-xr-x ") && l.ends_with("scripts/domains.sh")),
            "{o}"
        );
        assert!(
            o.contains("  password: \"guard-redacted:secret-assignment\"\n"),
            "{o}"
        );
        assert!(o.contains("workers: 4"), "{o}");
        assert!(
            o.contains("GITHUB = \"guard-redacted:github-token\""),
            "{o}"
        );
        assert!(o.contains("\ttoken = guard-redacted:github-token"), "{o}");
        assert!(
            o.contains("export const client = new Groq(\"guard-redacted:groq-key\");"),
            "{o}"
        );
        assert!(
            o.contains("sg = SendGridAPIClient(\"guard-redacted:sendgrid-key\")"),
            "{o}"
        );
        assert!(
            o.contains("      <password>guard-redacted:xml-secret-element</password>\n"),
            "{o}"
        );
        assert!(o.contains("      <username>deploy</username>\n"), "{o}");
        assert!(o.contains("\temail = dev@example.org"), "{o}");
        // git grep really read the (redacted) working tree.
        assert!(
            o.lines().any(|l| l == "scripts/domains.sh:1"),
            "git grep -c: {o}"
        );
        assert!(
            o.lines()
                .any(|l| l.starts_with("scripts/domains.sh:4:RAILWAY_TOKEN=guard-redacted:")),
            "{o}"
        );
        assert!(o.contains("git-grep=0"), "{o}");
        // Placeholders only: not hidden.
        assert!(o.contains("STRIPE_KEY=<your stripe key>"), "{o}");
        // Untouched home file next to a hidden one.
        assert!(o.contains("*.swp"), "{o}");
        assert!(o.contains("env-link=0"), "{o}");
    }
}

#[test]
fn writes_to_hidden_and_redacted_files_fail_and_hosts_are_unchanged() {
    for mode in modes() {
        let f = fixture(mode);
        let watched = [
            "scripts/domains.sh",
            "config/app.yaml",
            ".env",
            "deploy/prod/tls/server.pem",
            "config/service.json",
        ];
        let before: Vec<Option<String>> = watched
            .iter()
            .map(|w| common::read_host(&f.env.project.join(w)))
            .collect();
        let home_before = common::read_host(&f.env.home.join(".gitconfig"));
        let script = r#"
            for f in scripts/domains.sh config/app.yaml "$HOME/.gitconfig" .env deploy/prod/tls/server.pem; do
              ( echo pwned >> "$f" ) 2>&1 | sed "s|^|append $f: |"
              ( : > "$f" ) 2>&1 | sed "s|^|truncate $f: |"
              rm -f "$f" 2>&1 | sed "s|^|rm $f: |"
              mv "$f" "$f.moved" 2>&1 | sed "s|^|mv $f: |"
              chmod 777 "$f" 2>&1 | sed "s|^|chmod $f: |"
            done
            ls scripts config
        "#;
        let out = guard(&f.env, &["run", "--", "sh", "-c", script]);
        out.expect_code(0);
        f.assert_no_canary(&out);
        let o = &out.stdout;
        for file in ["scripts/domains.sh", "config/app.yaml", "/.gitconfig"] {
            let lines: Vec<&str> = o.lines().filter(|l| l.contains(file)).collect();
            let ends = |verb: &str, why: &str| {
                lines
                    .iter()
                    .any(|l| l.starts_with(verb) && l.ends_with(why))
            };
            assert!(ends("append", "Read-only file system"), "{file}: {o}");
            assert!(ends("truncate", "Read-only file system"), "{file}: {o}");
            assert!(ends("chmod", "Read-only file system"), "{file}: {o}");
            if !file.starts_with('/') {
                // A mount point cannot be removed or renamed.
                assert!(ends("rm", "Device or resource busy"), "{file}: {o}");
                assert!(ends("mv", "Device or resource busy"), "{file}: {o}");
            }
        }
        for file in [".env", "server.pem"] {
            let lines: Vec<&str> = o
                .lines()
                .filter(|l| l.contains(file) && l.starts_with("append"))
                .collect();
            assert!(
                lines
                    .iter()
                    .any(|l| l.ends_with("Read-only file system")
                        || l.ends_with("Permission denied")),
                "{file}: {o}"
            );
        }
        assert!(o.contains("domains.sh"), "{o}");
        let after: Vec<Option<String>> = watched
            .iter()
            .map(|w| common::read_host(&f.env.project.join(w)))
            .collect();
        assert_eq!(before, after, "host files changed");
        assert!(before.iter().all(Option::is_some));
        assert_eq!(
            home_before,
            common::read_host(&f.env.home.join(".gitconfig"))
        );
    }
}

#[test]
fn secret_env_vars_never_reach_the_command() {
    for mode in modes() {
        let env = Env::new(mode);
        // Pass everything: only the secret filter stands between the
        // caller's environment and the command.
        env.project
            .write("all-env.toml", &profile_from_default("", "", true));
        env.own();
        let railway = uuid_canary();
        let aws = canary("aws");
        let gh = gh_canary("ghenv");
        let db = canary("db");
        let innocent = gh_canary("innocent");
        let socket = canary("sock");
        let plain = canary("plain");
        let secrets = [&railway, &aws, &gh, &db, &innocent, &socket];
        let script = "env; echo ==; tr '\\0' '\\n' < /proc/self/environ; echo ==; cat /proc/1/environ 2>&1 | tr '\\0' '\\n'";
        let run = |extra: &[&str]| {
            let mut args = vec!["run", "-p", "all-env.toml"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["--", "sh", "-c", script]);
            Outcome::from(
                env.guard(&args)
                    .env_remove("XDG_CACHE_HOME")
                    .env("RAILWAY_TOKEN", &railway)
                    .env("AWS_SECRET_ACCESS_KEY", &aws)
                    .env("GITHUB_TOKEN", &gh)
                    .env("DATABASE_URL", format!("postgres://u:{db}@host/db"))
                    .env("BUILD_LABEL", &innocent)
                    .env("SSH_AUTH_SOCK", format!("/tmp/{socket}/agent.1"))
                    .env("PLAIN_SETTING", &plain)
                    .output()
                    .expect("spawn guard"),
            )
        };
        let out = run(&[]);
        out.expect_code(0);
        for s in secrets {
            out.assert_no_canary(s);
        }
        // The profile's wildcard does pass ordinary variables: the secrets
        // above were removed by the secret filter, not by the allowlist.
        assert!(
            out.stdout.contains(&format!("PLAIN_SETTING={plain}")),
            "{}",
            out.stdout
        );

        // Named explicitly, a variable passes; the others still do not.
        let out = run(&[
            "--allow-env",
            "GITHUB_TOKEN",
            "--allow-env",
            "SSH_AUTH_SOCK",
        ]);
        out.expect_code(0);
        assert!(
            out.stdout.contains(&format!("GITHUB_TOKEN={gh}\n")),
            "{}",
            out.stdout
        );
        for s in [&railway, &aws, &db, &innocent, &socket] {
            out.assert_no_canary(s);
        }

        // `explain` names what it removed, never the values.
        let out = Outcome::from(
            env.guard(&["explain", "-p", "all-env.toml", "--", "true"])
                .env("RAILWAY_TOKEN", &railway)
                .env("BUILD_LABEL", &innocent)
                .output()
                .expect("spawn guard"),
        );
        out.expect_code(0);
        out.assert_no_canary(&railway).assert_no_canary(&innocent);
        assert!(
            out.stdout.contains("RAILWAY_TOKEN (env-token)"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("BUILD_LABEL (env-value:github-token)"),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn default_profile_filters_wildcard_passes_and_honours_allow_env() {
    for mode in modes() {
        let env = Env::new(mode);
        let tok = gh_canary("lc");
        let label = gh_canary("label");
        // LC_* is passed by a wildcard in the default profile: a token in it
        // is still removed. BUILD_LABEL is named by --allow-env: it passes.
        let out = Outcome::from(
            env.guard(&["run", "--allow-env", "BUILD_LABEL", "--", "sh", "-c", "env"])
                .env_remove("XDG_CACHE_HOME")
                .env("LC_BUILD", &tok)
                .env("LC_PAPER", "a4")
                .env("BUILD_LABEL", &label)
                .output()
                .expect("spawn guard"),
        );
        out.expect_code(0).assert_no_canary(&tok);
        assert!(out.stdout.contains("LC_PAPER=a4\n"), "{}", out.stdout);
        assert!(
            out.stdout.contains(&format!("BUILD_LABEL={label}\n")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn scan_lists_findings_without_values() {
    for mode in modes() {
        let f = fixture(mode);
        let out = guard(&f.env, &["scan"]);
        out.expect_code(0);
        f.assert_no_canary(&out);
        let o = &out.stdout;
        for line in [
            "hide    .env  dotenv",
            "hide    deploy/prod/tls/server.pem  key-file",
            "redact  scripts/domains.sh:4  secret-assignment  fp ",
            "redact  config/app.yaml:6  secret-assignment  fp ",
            "redact  src/client.py:3  github-token  fp ",
            "redact  ~/.gitconfig:6  github-token  fp ",
            "hide    ~/.config/git/credentials  git-credentials",
        ] {
            assert!(
                o.lines().any(|l| l.starts_with(line)),
                "missing {line:?} in\n{o}"
            );
        }
        assert!(!o.contains(".env.example"), "{o}");
        assert!(!o.contains("README"), "{o}");

        let out = guard(&f.env, &["scan", "--json"]);
        out.expect_code(0);
        f.assert_no_canary(&out);
        let v: serde_json::Value =
            serde_json::from_str(&out.stdout).expect("scan --json prints JSON");
        let flagged = v["flagged"].as_array().expect("flagged list");
        let domains = flagged
            .iter()
            .find(|x| {
                x["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("scripts/domains.sh"))
            })
            .expect("domains.sh flagged");
        assert_eq!(domains["action"], "redact");
        assert_eq!(domains["hits"][0]["line"], 4);
        assert_eq!(
            domains["hits"][0]["fingerprint"].as_str().map(str::len),
            Some(8)
        );

        // An explicit directory works from anywhere.
        let out = guard(
            &f.env,
            &["scan", f.env.project.path.to_str().expect("utf-8 path")],
        );
        out.expect_code(0);
        assert!(
            out.stdout.contains("scripts/domains.sh:4"),
            "{}",
            out.stdout
        );

        // explain lists the same files.
        let out = guard(&f.env, &["explain", "--", "true"]);
        out.expect_code(0);
        f.assert_no_canary(&out);
        assert!(
            out.stdout
                .contains("redact  scripts/domains.sh:4  secret-assignment"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("redact   "), "{}", out.stdout);
    }
}

/// Copy `src` into `dst` (cp -a keeps it simple and exact).
fn copy_tree(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .expect("run cp");
    assert!(st.success(), "cp -a {} failed", src.display());
}

fn registry_crate(prefix: &str) -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME must be set");
    let src = cargo_home.join("registry").join("src");
    let mut found = Vec::new();
    for index in
        std::fs::read_dir(&src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()))
    {
        let index = index.expect("registry entry").path();
        for krate in std::fs::read_dir(&index).expect("registry index dir") {
            let p = krate.expect("crate dir").path();
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
            {
                found.push(p);
            }
        }
    }
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no crate {prefix}* under {}: run `cargo fetch` first",
            src.display()
        )
    })
}

#[test]
fn no_false_positives_on_guards_own_tree_and_real_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for mode in modes() {
        let env = Env::new(mode);
        let tree = env.project.join("guard");
        std::fs::create_dir_all(&tree).expect("mkdir");
        for part in [
            "src",
            "tests",
            "profiles",
            "scripts",
            "Cargo.toml",
            "Cargo.lock",
        ] {
            let p = root.join(part);
            assert!(p.exists(), "{} is missing", p.display());
            copy_tree(&p, &tree);
        }
        // Crates guard itself depends on: `cargo build` has fetched them
        // (ignore, once among them, left with guard's own walker).
        for krate in ["regex-1.", "serde_json-1.", "tokio-1.", "clap_builder-4."] {
            copy_tree(&registry_crate(krate), &env.project.path);
        }
        env.project.write(
            "web/.env.example",
            "API_KEY=<your api key>\nDATABASE_URL=postgres://user:password@localhost/app\n",
        );
        env.own();
        let out = guard(&env, &["scan"]);
        out.expect_code(0);
        let last = out.stdout.lines().last().unwrap_or("");
        assert!(last.starts_with("0 hidden, 0 redacted; "), "{}", out.stdout);
        let files: usize = last
            .split("; ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("file count");
        assert!(files > 200, "scanned too few files: {last}");
    }
}

#[test]
fn cache_rescans_changed_files_and_catches_new_ones() {
    for mode in modes() {
        let f = fixture(mode);
        // Files changed in the last two seconds are never cached
        // (timestamps are coarse); let the fixture age past that.
        std::thread::sleep(std::time::Duration::from_millis(2200));
        let stats = |o: &Outcome| o.stdout.lines().last().unwrap_or("").to_string();
        let first = guard(&f.env, &["scan"]);
        first.expect_code(0);
        let second = guard(&f.env, &["scan"]);
        second.expect_code(0);
        assert_eq!(first.stdout.lines().count(), second.stdout.lines().count());
        assert!(
            stats(&second).contains(" 0 read,"),
            "warm scan read files: {}",
            stats(&second)
        );

        // A clean file gains a secret; a new secret file appears.
        let tok = gh_canary("later");
        let readme = f.env.project.join("README.md");
        let mut text = std::fs::read_to_string(&readme).expect("read README");
        text.push_str(&format!("\nUse `curl -H 'Authorization: token {tok}'` for the API.\nThen run the tests.\nDone.\n"));
        std::fs::write(&readme, text).expect("write README");
        let late = canary("late");
        let new_file = f
            .env
            .project
            .write("deploy/.env.production", &format!("RAILWAY_TOKEN={late}\n"));
        // Not `own()`: chown changes every file's ctime, and so its cache key.
        if mode == Mode::Unprivileged {
            let st = Command::new("chown")
                .arg(format!("{0}:{0}", common::NOBODY))
                .arg(&new_file)
                .status()
                .expect("run chown");
            assert!(st.success());
        }
        let third = guard(&f.env, &["scan"]);
        third.expect_code(0);
        third.assert_no_canary(&tok).assert_no_canary(&late);
        assert!(
            third.stdout.contains("redact  README.md:5  github-token"),
            "{}",
            third.stdout
        );
        assert!(
            third
                .stdout
                .contains("hide    deploy/.env.production  dotenv"),
            "{}",
            third.stdout
        );
        assert!(
            stats(&third).contains(" 1 read,"),
            "only README.md is read again: {}",
            stats(&third)
        );

        let out = guard(
            &f.env,
            &[
                "run",
                "--",
                "sh",
                "-c",
                "cat README.md deploy/.env.production",
            ],
        );
        out.expect_code(0);
        out.assert_no_canary(&tok).assert_no_canary(&late);
        assert!(
            out.stdout.contains("token guard-redacted:github-token"),
            "{}",
            out.stdout
        );

        // The cache holds no value.
        let dir = f.env.home.join(".cache/guard");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no cache dir {}: {e}", dir.display()))
        {
            let path = e.expect("entry").path();
            if path.is_dir() {
                continue; // guard's session and lock directories, not the scan cache
            }
            let bytes = std::fs::read(&path).expect("read cache");
            let text = String::from_utf8_lossy(&bytes);
            for c in f.canaries.iter().chain([&tok, &late]) {
                assert!(!text.contains(c.as_str()), "cache holds a secret");
            }
            seen += 1;
        }
        assert!(seen > 0, "no cache file written");
    }
}

/// `guard scan --json`: the flagged paths (relative to the project) and
/// the stats.
fn scan_json(env: &Env) -> (Vec<String>, serde_json::Value) {
    let out = guard(env, &["scan", "--json"]);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("scan --json prints JSON");
    let root = env.project.path.to_str().expect("utf-8 path").to_string() + "/";
    let mut paths: Vec<String> = v["flagged"]
        .as_array()
        .expect("flagged list")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .map(|p| p.strip_prefix(&root).unwrap_or(p).to_string())
        .collect();
    paths.sort();
    (paths, v["stats"].clone())
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::symlink_metadata(p)
        .and_then(|m| m.modified())
        .expect("mtime")
}

/// Set a file's or directory's mtime back (its ctime moves on regardless).
fn set_mtime(p: &Path, t: std::time::SystemTime) {
    std::fs::File::open(p)
        .and_then(|f| f.set_modified(t))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", p.display()));
}

/// The warm scan trusts remembered directory listings and file results only
/// while nothing changed: every kind of change made to a remembered tree is
/// seen, including changes that restore the mtime, and nothing is followed
/// through a symlink swapped in.
#[test]
fn cache_sees_every_kind_of_change_in_a_remembered_tree() {
    for mode in modes() {
        let env = Env::new(mode);
        let outside = common::TempDir::new("outside", mode);
        let p = &env.project;
        let tok = |tag: &str| gh_canary(tag);
        let (t_inplace, t_added, t_newdir, t_moved, t_replaced, t_typed, t_out) = (
            tok("inplace"),
            tok("added"),
            tok("newdir"),
            tok("moved"),
            tok("replaced"),
            tok("typed"),
            tok("outside"),
        );
        let code = |v: &str| format!("fn main() {{\n    let t = \"{v}\";\n    run(t);\n}}\n");
        let blank = "x".repeat(t_inplace.len());
        p.write("inplace/main.rs", &code(&blank));
        p.write("added/lib.rs", &code("nothing"));
        p.write("newdir/lib.rs", &code("nothing"));
        p.write("moved/from/creds.rs", &code(&t_moved));
        p.write("moved/to/lib.rs", &code("nothing"));
        p.write("renamed/notes.txt", "A=1\n");
        p.write("replaced/data.rs", &code(&blank));
        p.write("linked/file.txt", "plain\n");
        p.write("linked/dir/file.txt", "plain\n");
        p.write("typed/thing", "plain\n");
        outside.write("secret.rs", &code(&t_out));
        env.own();
        outside.own(mode);
        // Nothing changed in the last two seconds is cached; let it age.
        std::thread::sleep(std::time::Duration::from_millis(2200));
        let (first, before) = scan_json(&env);
        assert_eq!(first, ["moved/from/creds.rs"]);
        let (again, stats) = scan_json(&env);
        assert_eq!(again, first);
        assert_eq!(stats["read"], 0, "{stats}");
        assert_eq!(stats["listed"], 0, "every directory remembered: {stats}");
        assert!(stats["dirs"].as_u64() > Some(10), "{stats}");

        // Same size, mtime restored: only the ctime tells.
        let f = p.join("inplace/main.rs");
        let t = mtime(&f);
        std::fs::write(&f, code(&t_inplace)).expect("write");
        set_mtime(&f, t);
        // A new file in a directory whose mtime is then restored.
        let d = p.join("added");
        let t = mtime(&d);
        p.write("added/new.rs", &code(&t_added));
        set_mtime(&d, t);
        // A new directory.
        p.write("newdir/sub/deeper/new.rs", &code(&t_newdir));
        // A flagged file moved to another directory (its inode, and so its
        // cached result, is the same), a clean one renamed to `.env`.
        std::fs::rename(p.join("moved/from/creds.rs"), p.join("moved/to/creds.rs")).expect("mv");
        std::fs::rename(p.join("renamed/notes.txt"), p.join("renamed/.env")).expect("mv");
        // Another inode renamed over a file: same size, same mtime.
        let f = p.join("replaced/data.rs");
        let t = mtime(&f);
        let tmp = p.write("replaced/.tmp", &code(&t_replaced));
        set_mtime(&tmp, t);
        std::fs::rename(&tmp, &f).expect("mv");
        // A file and a directory swapped for symlinks to secrets outside.
        std::fs::remove_file(p.join("linked/file.txt")).expect("rm");
        std::os::unix::fs::symlink(outside.join("secret.rs"), p.join("linked/file.txt"))
            .expect("symlink");
        std::fs::remove_dir_all(p.join("linked/dir")).expect("rm");
        std::os::unix::fs::symlink(&outside.path, p.join("linked/dir")).expect("symlink");
        // A file swapped for a directory of the same name.
        std::fs::remove_file(p.join("typed/thing")).expect("rm");
        p.write("typed/thing/creds.rs", &code(&t_typed));

        let (paths, stats) = scan_json(&env);
        assert_eq!(
            paths,
            [
                "added/new.rs",
                "inplace/main.rs",
                "moved/to/creds.rs",
                "newdir/sub/deeper/new.rs",
                "renamed/.env",
                "replaced/data.rs",
                "typed/thing/creds.rs",
            ],
            "{stats}"
        );
        // The scan also covers /etc, where an unprivileged uid cannot read
        // root's files: no error of the project's own.
        assert_eq!(stats["errors"], before["errors"], "{stats}");
        // The same again from the updated cache; and `guard run` shows none.
        assert_eq!(scan_json(&env).0, paths);
        let out = guard(
            &env,
            &[
                "run",
                "--",
                "sh",
                "-c",
                "cat inplace/main.rs added/new.rs replaced/data.rs moved/to/creds.rs",
            ],
        );
        out.expect_code(0);
        for t in [&t_inplace, &t_added, &t_replaced, &t_moved, &t_out] {
            out.assert_no_canary(t);
        }
        assert!(
            out.stdout.contains("guard-redacted:github-token"),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn profile_rules_ignore_and_errors() {
    for mode in modes() {
        let env = Env::new(mode);
        let acme = format!("acme_live_{}", canary("acme"));
        env.project.write(
            "app/billing.rb",
            &format!("class Billing\n  KEY = '{acme}'\n  def charge; end\nend\n"),
        );
        env.project.write("fixtures/fake.env", "X=1\n");
        env.project.write("notes/.env", "Y=2\n");
        env.project.write(
            "p.toml",
            &profile_from_default(
                "ignore = [\"fixtures/**\"]\ndisable = [\"jwt\"]",
                "\n[[secrets.content_rules]]\nid = \"acme-key\"\ndescription = \"ACME live key\"\nregex = 'acme_live_[A-Za-z0-9]{10,}'\nkeywords = [\"acme_live_\"]\n\
                 [[secrets.path_rules]]\nid = \"notes\"\ndescription = \"private notes\"\nglobs = [\"notes\"]\n",
                false,
            ),
        );
        env.project.write(
            "bad.toml",
            "version = 1\n[[secrets.content_rules]]\nid = \"x\"\ndescription = \"d\"\nregex = \"acme_[0-9\"\n",
        );
        env.own();
        let out = guard(&env, &["scan", "-p", "p.toml"]);
        out.expect_code(0);
        out.assert_no_canary(&acme);
        assert!(
            out.stdout.contains("redact  app/billing.rb:2  acme-key"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("hide    notes/  notes"),
            "{}",
            out.stdout
        );
        assert!(!out.stdout.contains("fixtures"), "{}", out.stdout);

        let out = guard(
            &env,
            &[
                "run",
                "-p",
                "p.toml",
                "--",
                "sh",
                "-c",
                "cat app/billing.rb; ls -A notes; cat fixtures/fake.env",
            ],
        );
        out.expect_code(0);
        out.assert_no_canary(&acme);
        assert!(
            out.stdout.contains("KEY = 'guard-redacted:acme-key'"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("X=1"),
            "ignored path stays visible: {}",
            out.stdout
        );
        assert!(
            !out.stdout.contains(".env"),
            "notes/ is hidden: {}",
            out.stdout
        );

        for cmd in [
            &["scan", "-p", "bad.toml"][..],
            &["run", "-p", "bad.toml", "--", "true"],
        ] {
            let out = guard(&env, cmd);
            out.expect_code(125);
            assert!(out.stderr.contains("bad.toml:5:"), "{}", out.stderr);
            assert!(
                out.stderr.contains("secrets.content_rules[0].regex"),
                "{}",
                out.stderr
            );
            assert!(out.stderr.contains("hint:"), "{}", out.stderr);
        }
    }
}

/// A hidden or redacted file that a program on the host replaces during
/// the run (an editor's save, `sed -i`: a new file renamed over it) takes
/// the mount that hid it away with its old directory entry. It is covered
/// again at once, as before: the new file's secrets do not reach the
/// sandbox, which cannot write it either, and a redacted file shows its
/// new code.
#[test]
fn secret_files_the_host_replaces_during_the_run_stay_hidden() {
    for mode in modes() {
        let env = Env::new(mode);
        let (old, new, new_py) = (gh_canary("OLD"), gh_canary("NEW"), gh_canary("NEWPY"));
        env.project.write(".env", &format!("GITHUB_TOKEN={old}\n"));
        let code = "import os\nDEBUG = True\n";
        env.project
            .write("settings.py", &format!("{code}GITHUB_TOKEN = \"{old}\"\n"));
        env.own();
        // Waits (up to 30 s each) for .env to read empty and settings.py to
        // show its new code redacted, then shows both.
        let out = env.with_host_change(
            "echo 1 > .started; i=0; until [ -e .host-done ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done; \
             i=0; while [ -s .env ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; \
             i=0; until grep -q 'DEBUG = False' settings.py && grep -q guard-redacted settings.py || [ $i -ge 600 ]; do sleep 0.05; i=$((i+1)); done; \
             echo env=$(wc -c < .env); echo py=$(grep -c 'guard-redacted:github-token' settings.py); \
             echo debug=$(grep DEBUG settings.py); cat .env settings.py; \
             echo x >> .env; echo write=$?; echo x >> settings.py; echo write_py=$?",
            || {
                env.replace_on_host(".env", &format!("GITHUB_TOKEN={new}\n"));
                env.replace_on_host(
                    "settings.py",
                    &format!("import os\nDEBUG = False\nGITHUB_TOKEN = \"{new_py}\"\n"),
                );
            },
        );
        out.expect_code(0);
        for c in [&old, &new, &new_py] {
            out.assert_no_canary(c);
        }
        out.expect_fields(&[
            ("env", "0"),
            ("py", "1"),
            ("debug", "DEBUG = False"),
            ("write", "2"),
            ("write_py", "2"),
        ]);
        // Read-only (root), and mode 0444 before that (anyone else).
        assert!(
            out.stderr.contains(".env: Read-only file system")
                || out.stderr.contains(".env: Permission denied"),
            "{}",
            out.all()
        );
        assert_eq!(
            std::fs::read_to_string(env.project.join(".env")).unwrap(),
            format!("GITHUB_TOKEN={new}\n")
        );
        // Covered by guard, not gone by chance.
        for f in [".env", "settings.py"] {
            env.expect_logged("covered", f);
        }
        assert!(
            out.stderr
                .contains("2 replaced on the host during the run and covered again"),
            "{}",
            out.all()
        );
    }
}

/// While the user edits a secret file on the host, the editor keeps a copy
/// of it next to it (vim's swap `.env.swp`, a backup `settings.py~`): a
/// new file, which no scan saw. Each is hidden as it appears.
#[test]
fn editors_copies_of_secret_files_made_during_the_run_are_hidden() {
    for mode in modes() {
        let env = Env::new(mode);
        let (old, swap, backup) = (gh_canary("OLD"), gh_canary("SWAP"), gh_canary("BAK"));
        env.project.write(".env", &format!("GITHUB_TOKEN={old}\n"));
        env.project.write(
            "settings.py",
            &format!("import os\nGITHUB_TOKEN = \"{old}\"\n"),
        );
        env.own();
        // Waits (up to 30 s each) for each copy to read empty.
        let out = env.with_host_change(
            "echo 1 > .started; i=0; until [ -e .host-done ] || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done; \
             for f in .env.swp settings.py~; do i=0; while [ -s $f ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; done; \
             echo swap=$(wc -c < .env.swp); echo backup=$(wc -c < settings.py~); cat .env.swp settings.py~",
            || {
                for (name, tok) in [(".env.swp", &swap), ("settings.py~", &backup)] {
                    env.write_on_host(name, &format!("b0VIM 9.0\0GITHUB_TOKEN={tok}\n"));
                }
            },
        );
        out.expect_code(0);
        for c in [&old, &swap, &backup] {
            out.assert_no_canary(c);
        }
        out.expect_fields(&[("swap", "0"), ("backup", "0")]);
        for f in [".env.swp", "settings.py~"] {
            env.expect_logged("covered", f);
        }
    }
}
