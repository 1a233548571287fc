//! The everyday work an agent does, inside guard: real tools (git, make,
//! python, node, curl, npm, pip, openssl …) run by the real binary in real
//! sandboxes, in every mode. Each check is something that works outside
//! guard and broke, or could break, inside it for no security reason.
//!
//! A missing tool fails the test (its check prints nothing or exit 127),
//! never skips it. The two tests that need the network derive the registry
//! host at run time from the machine's own npm and pip.

mod common;

use common::{Env, modes};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// `guard run ARGS -- bash -c SCRIPT`, where SCRIPT prints `name=value`
/// lines; `set -u` so a typo in a test is an error, not an empty value.
fn bash(env: &Env, args: &[&str], script: &str) -> common::Outcome {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let script = format!("set -u\n{script}");
    all.extend_from_slice(&["--", "bash", "-c", &script]);
    env.run(&all)
}

#[test]
fn everyday_developer_commands_work() {
    for mode in modes() {
        let env = Env::new(mode);
        // Two independent targets (`make -j2` runs both); a file that
        // mentions "rebase" for `grep -r`.
        env.project
            .write("Makefile", "all: a b\na:\n\t@echo a\nb:\n\t@echo b\n");
        env.project.write("notes.txt", "rebase often\n");
        env.own();
        let r = bash(
            &env,
            &["--allow-host", "pkgs.guard.test"],
            r#"
            # git: the whole branch-and-rebase routine, a stash, a worktree.
            git init -q -b main repo && cd repo
            git config user.email dev@example.test && git config user.name Dev
            echo one > f && git add f && git commit -qm one
            git checkout -qb feature && echo two >> f && git commit -qam two
            git checkout -q main && echo three > g && git add g && git commit -qm three
            git checkout -q feature && git rebase -q main && echo rebase=$(git log --format=%s | tr '\n' ,)
            echo dirty >> f && git stash -q && echo stash=$(git stash list | wc -l) && git stash pop -q
            git worktree add -q ../wt -b side && echo worktree=$(ls ../wt | tr '\n' ,)
            echo logp=$(git --no-pager log -p -1 | grep -c '^+two')
            cd ..
            # Builds, search and edits in the project.
            echo make=$(make -s -j2 | sort | tr '\n' ,)
            echo find=$(find . -name Makefile | wc -l)
            echo grep=$(grep -rl --exclude-dir=.git rebase . | wc -l)
            echo rg=$(rg -l 'all:' . | wc -l)
            echo foo > s.txt && sed -i s/foo/bar/ s.txt && echo sed=$(cat s.txt)
            t=$(mktemp) && d=$(mktemp -d) && echo mktemp=$(test -f "$t" && test -d "$d" && echo ok)
            echo flock=$(flock ./lock -c 'echo held')
            # Processes: job control, timeout, nohup, ps, top.
            sleep 100 & kill %1; wait; echo jobs=done
            timeout 1 sleep 5; echo timeout=$?
            nohup sh -c 'echo detached' > nohup.txt 2>&1; echo nohup=$(cat nohup.txt)
            echo ps=$(ps -eo comm | grep -c '^ps$')
            echo top=$(top -bn1 | grep -c '^ *PID')
            echo login=$(bash -lc 'echo ok')
            # Python multiprocessing needs /dev/shm (POSIX semaphores).
            echo mp=$(python3 -c 'import multiprocessing as m; print(sum(m.Pool(2).map(abs, [-1, -2])))')
            echo tz=$(TZ=Asia/Tokyo date -d @0 +%H)
            echo locale=$(locale -a | grep -ci '^c.utf-\?8$')
            # Servers on loopback, and clients inside talking to them.
            python3 -m http.server 8765 --bind 127.0.0.1 > /dev/null 2>&1 &
            for i in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:8765/ && break; sleep 0.1; done
            echo http=$(curl -s -o /dev/null -w '%{http_code}' http://localhost:8765/)
            kill $!
            echo node=$(node -e 'const h=require("http");const s=h.createServer((q,r)=>r.end("up")).listen(0,"localhost",()=>fetch("http://localhost:"+s.address().port).then(r=>r.text()).then(t=>{console.log(t);s.close()}))')
            # An allowed name resolves (to guard's local address for it).
            echo dns=$(getent hosts pkgs.guard.test | grep -c '^127\.')
            "#,
        );
        r.expect_code(0).expect_fields(&[
            ("rebase", "two,three,one,"),
            ("stash", "1"),
            ("worktree", "f,g,"),
            ("logp", "1"),
            ("make", "a,b,"),
            ("find", "1"),
            ("grep", "1"),
            ("rg", "1"),
            ("sed", "bar"),
            ("mktemp", "ok"),
            ("flock", "held"),
            ("jobs", "done"),
            ("timeout", "124"),
            ("nohup", "detached"),
            ("ps", "1"),
            ("top", "1"),
            ("login", "ok"),
            ("mp", "3"),
            ("tz", "09"),
            ("locale", "1"),
            ("http", "200"),
            ("node", "up"),
            ("dns", "1"),
        ]);
    }
}

/// Agents fix a missing identity or a "dubious ownership" refusal with
/// `git config --global`, which writes a new file and renames it over
/// ~/.gitconfig: the session's home holds a private copy it can replace,
/// in the private home, in an agent's persistent one and at the `landlock`
/// level; the host file is unchanged.
#[test]
fn git_config_global_changes_a_private_copy() {
    for mode in modes() {
        let env = Env::new(mode);
        let host = "[user]\n\tname = Host User\n\temail = host@example.test\n";
        env.home.write(".gitconfig", host);
        env.own();
        let runs: [&[&str]; 3] = [
            &["-p", "default"],
            &["-p", "claude"],
            &["--isolation", "landlock"],
        ];
        for args in runs {
            let r = bash(
                &env,
                args,
                r#"
                echo before=$(git config --global user.name)
                git config --global user.name Agent && git config --global --add safe.directory '*'
                echo after=$(git config --global user.name),$(git config --global safe.directory)
                cd "$(mktemp -d ./repo.XXXX)" && git init -q && echo x > x && git add x && git commit -qm x
                echo author=$(git log --format=%an)
                "#,
            );
            r.expect_code(0).expect_fields(&[
                ("before", "Host User"),
                ("after", "Agent,*"),
                ("author", "Agent"),
            ]);
            assert_eq!(
                common::read_host(&env.home.join(".gitconfig")).as_deref(),
                Some(host),
                "{args:?}: the host's ~/.gitconfig changed"
            );
        }
    }
}

/// A tool installed in the home by its usual installer, as a script that
/// prints `out`.
fn plant_tool(env: &Env, rel: &str, out: &str) {
    let p = env.home.write(rel, &format!("#!/bin/sh\necho {out}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod tool");
}

/// Agents build and test projects: cargo and rustup's toolchains, go's
/// installed tools, and the interpreters pyenv and uv install (which a
/// project's virtualenv links to) are visible in every agent's profile,
/// not only with `-p rust` or `-p python`.
#[test]
fn agent_profiles_see_the_users_toolchains() {
    const AGENTS: &[&str] = &[
        "claude",
        "codex",
        "gemini",
        "copilot",
        "amp",
        "opencode",
        "cursor-agent",
        "aider",
        "goose",
    ];
    for mode in modes() {
        let env = Env::new(mode);
        plant_tool(&env, ".cargo/bin/cargo", "cargo-runs");
        plant_tool(&env, "go/bin/gopls", "gopls-runs");
        plant_tool(
            &env,
            ".pyenv/versions/3.12.1/bin/python3",
            "pyenv-python-runs",
        );
        // A virtualenv made outside with pyenv's interpreter.
        std::fs::create_dir_all(env.project.join(".venv/bin")).expect("mkdir venv");
        std::os::unix::fs::symlink(
            env.home.join(".pyenv/versions/3.12.1/bin/python3"),
            env.project.join(".venv/bin/python"),
        )
        .expect("link venv python");
        env.own();
        let path = format!(
            "{home}/.cargo/bin:{home}/go/bin:/usr/bin:/bin",
            home = env.home.path.display()
        );
        for agent in AGENTS {
            let out = common::Outcome::from(
                env.guard(&[
                    "run",
                    "-p",
                    agent,
                    "--",
                    "sh",
                    "-c",
                    "echo cargo=$(cargo); echo gopls=$(gopls); echo venv=$(.venv/bin/python)",
                ])
                .env("PATH", &path)
                .output()
                .expect("spawn guard"),
            );
            out.expect_code(0).expect_fields(&[
                ("cargo", "cargo-runs"),
                ("gopls", "gopls-runs"),
                ("venv", "pyenv-python-runs"),
            ]);
        }
    }
}

/// Networks that inspect TLS give their CA through SSL_CERT_FILE,
/// NODE_EXTRA_CA_CERTS and friends; without them every TLS client inside
/// fails to verify. Here the CA is a self-signed certificate made inside
/// the sandbox for a server on its loopback: each client trusts it only
/// through its variable.
#[test]
fn ca_bundle_variables_reach_tls_clients() {
    for mode in modes() {
        let env = Env::new(mode);
        env.project.write("www/hello.txt", "tls-ok\n");
        env.own();
        let ca = "/tmp/guard-wf-ca/ca.crt";
        let out = common::Outcome::from(
            env.guard(&[
                "run",
                "--",
                "bash",
                "-c",
                r#"
                set -u
                d=/tmp/guard-wf-ca && mkdir -p $d
                openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                  -keyout $d/key -out $d/ca.crt -days 1 -subj /CN=localhost \
                  -addext subjectAltName=DNS:localhost 2> /dev/null
                cd www && openssl s_server -quiet -WWW -accept 127.0.0.1:8443 \
                  -cert $d/ca.crt -key $d/key > /dev/null 2>&1 &
                for i in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/8443) 2> /dev/null && break; sleep 0.1; done
                u=https://localhost:8443/hello.txt
                echo curl=$(env -u SSL_CERT_FILE curl -sS $u 2>&1)
                echo node=$(node -e 'fetch(process.argv[1]).then(r=>r.text()).then(t=>process.stdout.write(t)).catch(e=>console.log(e.cause&&e.cause.code))' $u)
                echo python=$(python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())' $u 2>&1 | tail -1)
                kill %1
                "#,
            ])
            .env("CURL_CA_BUNDLE", ca)
            .env("NODE_EXTRA_CA_CERTS", ca)
            .env("SSL_CERT_FILE", ca)
            .output()
            .expect("spawn guard"),
        );
        out.expect_code(0).expect_fields(&[
            ("curl", "tls-ok"),
            ("node", "tls-ok"),
            ("python", "tls-ok"),
        ]);
    }
}

/// The hosts pip downloads from, as pip on this machine is configured:
/// its index-url setting, else pip's own default index and file host
/// (asked of pip here, independently of guard's own lookup).
fn pip_index_hosts() -> Vec<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys\n\
             from pip._internal.configuration import Configuration\n\
             from pip._internal.models.index import PyPI\n\
             c = Configuration(isolated=False); c.load()\n\
             url = dict(c.items()).get('global.index-url')\n\
             if url: print(url.split('://')[1].split('/')[0].split(':')[0])\n\
             else: print(PyPI.netloc); print(PyPI.file_storage_domain)",
        ])
        .current_dir("/")
        .output()
        .expect("python3 with pip must be installed for this test");
    assert!(out.status.success(), "ask pip for its index: {out:?}");
    let hosts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(!hosts.is_empty(), "pip names no index: {out:?}");
    hosts
}

/// The python profile allows the index pip is configured with, as the
/// node profile allows npm's registry: `pip install` in a virtualenv works
/// without naming a host.
#[test]
fn pip_installs_into_a_venv_from_the_configured_index() {
    let hosts = pip_index_hosts();
    for mode in modes() {
        let env = Env::new(mode);
        env.project.write(
            "test_one.py",
            "import six\n\ndef test_one():\n    assert six.PY3\n",
        );
        env.own();
        let plan = env.run(&["explain", "-p", "python", "--", "true"]);
        plan.expect_code(0);
        for h in &hosts {
            assert!(
                plan.stdout
                    .lines()
                    .any(|l| l.trim().starts_with(&format!("allow {h} "))),
                "{h} is not allowed:\n{}",
                plan.stdout
            );
        }
        let r = bash(
            &env,
            &["-p", "python"],
            r#"
            /usr/bin/python3 -m venv .venv
            .venv/bin/pip install -q --disable-pip-version-check six
            echo import=$(.venv/bin/python -c 'import six; print(six.PY3)')
            echo test=$(.venv/bin/python -c 'import test_one; test_one.test_one(); print("passed")')
            "#,
        );
        r.expect_code(0)
            .expect_fields(&[("import", "True"), ("test", "passed")]);
    }
}

#[test]
fn npm_installs_from_the_registry_and_runs_install_scripts() {
    // The node profile allows the registry npm is configured with; the host
    // is only checked to exist here, so a machine without npm fails loudly.
    let _ = common::npm_registry_host();
    for mode in modes() {
        let env = Env::new(mode);
        env.project.write(
            "dep/package.json",
            r#"{"name":"dep","version":"1.0.0","scripts":{"postinstall":"node -e \"require('fs').writeFileSync(process.env.INIT_CWD+'/post.txt','ran')\""}}"#,
        );
        env.own();
        let r = bash(
            &env,
            &["-p", "node"],
            r#"
            npm init -y > /dev/null
            npm install --no-audit --no-fund is-odd ./dep > /dev/null 2>&1
            echo require=$(node -e 'console.log(require("is-odd")(3))')
            echo postinstall=$(cat post.txt)
            npm pkg set scripts.check='echo checked' && echo script=$(npm run -s check)
            "#,
        );
        r.expect_code(0).expect_fields(&[
            ("require", "true"),
            ("postinstall", "ran"),
            ("script", "checked"),
        ]);
    }
}

/// The python profile allows the index pip is configured with, asking the
/// host's pip for its default when nothing is configured. An interpreter
/// without pip (Debian's, until python3-pip is installed) answers nothing:
/// that answer is remembered too, so it is not asked again at every start
/// of every agent (~25 ms each time).
#[test]
fn an_interpreter_without_pip_is_asked_once() {
    for mode in modes() {
        let env = Env::new(mode);
        let log = env.home.path.join("asked.log");
        let python = env.home.write(
            "no-pip/python3",
            &format!("#!/bin/sh\necho asked >> {}\nexit 1\n", log.display()),
        );
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755))
            .expect("chmod python3");
        env.own();
        let path = format!("{}/no-pip:/usr/bin:/bin", env.home.path.display());
        for _ in 0..3 {
            let out = common::Outcome::from(
                env.guard(&["run", "-p", "python", "--", "true"])
                    .env("PATH", &path)
                    .env_remove("PIP_INDEX_URL")
                    .env_remove("PIP_CONFIG_FILE")
                    .output()
                    .expect("spawn guard"),
            );
            out.expect_code(0);
        }
        let asked = std::fs::read_to_string(&log).expect("the interpreter was asked");
        assert_eq!(asked.lines().count(), 1, "asked at every start: {asked:?}");
    }
}

/// git over ssh, as a profile of the user's sets it up: the ssh-agent's
/// socket, which guard shows only when a profile passes SSH_AUTH_SOCK by
/// name (the variable alone named a socket the sandbox could not reach),
/// and an allowed host's port 22 (here a stand-in server on another port),
/// relayed as plain TCP through the transparent path.
#[test]
fn git_over_ssh_reaches_the_agent_a_profile_passes_and_an_allowed_port() {
    use std::io::{BufRead, Write};
    for mode in modes() {
        let env = Env::new(mode);
        let keys = common::TempDir::new("ssh", mode);
        let sock = keys.join("agent.sock");
        let as_user = |program: &str| match mode {
            common::Mode::Invoker => Command::new(program),
            common::Mode::Unprivileged => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={}", common::NOBODY),
                    &format!("--regid={}", common::NOBODY),
                    "--clear-groups",
                    "--",
                    program,
                ]);
                c
            }
        };
        let _agent = common::KillOnDrop(
            as_user("ssh-agent")
                .arg("-D")
                .arg("-a")
                .arg(&sock)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("ssh-agent is required (apt-get install openssh-client)"),
        );
        let key = keys.join("id_ed25519");
        let made = as_user("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "guard-test-key",
                "-f",
            ])
            .arg(&key)
            .status()
            .expect("run ssh-keygen");
        assert!(made.success());
        for _ in 0..100 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let added = as_user("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .expect("run ssh-add");
        assert!(added.status.success(), "{added:?}");

        // A stand-in for the git host's ssh server: its banner, then the
        // client's.
        let server = std::net::TcpListener::bind("127.31.0.1:0").expect("bind stand-in server");
        let port = server.local_addr().unwrap().port();
        let served = std::thread::spawn(move || {
            let (mut s, _) = server.accept().expect("accept");
            s.write_all(b"SSH-2.0-guard-stand-in\r\n").unwrap();
            let mut line = String::new();
            std::io::BufReader::new(s).read_line(&mut line).unwrap();
            line
        });
        env.project.write(
            "ssh.toml",
            &format!(
                "version = 1\nextends = [\"git\"]\n[env]\npass = [\"SSH_AUTH_SOCK\"]\n\
                 [network]\nallow = [{{ host = \"git.guard.test:{port}\", private = true }}]\n\
                 [network.hosts]\n\"git.guard.test\" = \"127.31.0.1\"\n"
            ),
        );
        env.own();
        let script = format!(
            "ssh-add -l | sed 's/^/key=/'\n\
             python3 -c \"import socket; s = socket.create_connection(('git.guard.test', {port}), timeout=10); print('banner=' + s.recv(100).decode().strip()); s.sendall(b'SSH-2.0-client\\r\\n')\""
        );
        // guard started from a shell of the user's that has the agent.
        let with_agent = |args: &[&str]| {
            common::Outcome::from(
                env.guard(args)
                    .env("SSH_AUTH_SOCK", &sock)
                    .output()
                    .expect("spawn guard"),
            )
        };
        let out = with_agent(&["run", "-p", "ssh.toml", "--", "bash", "-c", &script]);
        out.expect_code(0);
        assert!(
            out.field("key")
                .is_some_and(|k| k.contains("guard-test-key")),
            "{}",
            out.all()
        );
        assert_eq!(
            out.field("banner").as_deref(),
            Some("SSH-2.0-guard-stand-in")
        );
        assert_eq!(served.join().unwrap().trim(), "SSH-2.0-client");

        // Without the profile naming it, neither reaches the command.
        let out = with_agent(&[
            "run",
            "--",
            "bash",
            "-c",
            "echo var=${SSH_AUTH_SOCK:-absent}; ssh-add -l; echo rc=$?",
        ]);
        out.expect_fields(&[("var", "absent"), ("rc", "2")]);
    }
}

/// The user's npmrc and pip.conf name a mirror: guard allows it, and npm
/// and pip inside must use it (the files themselves are not in the view;
/// without them npm fell back to its built-in registry, which the
/// allowlist did not hold). A URL with credentials is never passed.
#[test]
fn npm_and_pip_inside_use_the_registries_the_user_configured() {
    for mode in modes() {
        let env = Env::new(mode);
        let home = &env.home.path;
        std::fs::write(
            home.join(".npmrc"),
            "registry=https://npm.mirror.guard.test/\n",
        )
        .expect("write .npmrc");
        std::fs::create_dir_all(home.join(".config/pip")).expect("mkdir pip");
        // Assembled here: this file must scan clean.
        let pw = ["hunter2", "hunter2"].concat();
        std::fs::write(
            home.join(".config/pip/pip.conf"),
            format!(
                "[global]\nindex-url = https://pypi.mirror.guard.test/simple/\nextra-index-url = https://deploy:{}@private.guard.test/simple/\n",
                pw
            ),
        )
        .expect("write pip.conf");
        env.own();
        let r = bash(
            &env,
            &["-p", "node"],
            "echo npm=${npm_config_registry:-none}; echo npmcfg=$(npm config get registry)",
        );
        r.expect_code(0).expect_fields(&[
            ("npm", "https://npm.mirror.guard.test/"),
            ("npmcfg", "https://npm.mirror.guard.test/"),
        ]);
        let r = bash(
            &env,
            &["-p", "python"],
            "echo index=${PIP_INDEX_URL:-none}; echo extra=${PIP_EXTRA_INDEX_URL:-none}",
        );
        r.expect_code(0).expect_fields(&[
            ("index", "https://pypi.mirror.guard.test/simple/"),
            ("extra", "none"),
        ]);
        assert!(!r.stdout.contains("hunter2"), "{}", r.all());
    }
}

/// This machine's real cargo (the toolchain's, not rustup's proxy), copied
/// into the test home's `~/.cargo/bin`: rustup's toolchains under /root
/// are out of uid 65534's reach. Returns that bin directory.
fn cargo_into(home: &std::path::Path) -> std::path::PathBuf {
    let out = Command::new("rustup")
        .args(["which", "cargo"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .or_else(|| {
            Command::new("sh")
                .args(["-c", "command -v cargo"])
                .output()
                .ok()
        })
        .expect("cargo must be installed for this test");
    let real = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(real.is_file(), "no cargo at {real:?}");
    let bin = home.join(".cargo/bin");
    std::fs::create_dir_all(&bin).expect("mkdir ~/.cargo/bin");
    // By a child process: a descriptor of ours open for writing would be
    // inherited by other tests' children and make exec fail (ETXTBSY).
    let st = Command::new("cp")
        .arg(&real)
        .arg(bin.join("cargo"))
        .status()
        .expect("run cp");
    assert!(st.success(), "copy cargo");
    std::fs::set_permissions(bin.join("cargo"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod cargo");
    bin
}

/// `cargo generate-lockfile` reaches the registry cargo is
/// configured for under the rust profile (the host asked of cargo itself,
/// never written in guard), and are refused without the profile's rule.
#[test]
fn cargo_fetches_crates_from_its_registry_under_the_rust_profile() {
    for mode in modes() {
        let env = Env::new(mode);
        let bin = cargo_into(&env.home.path);
        env.project.write(
            "Cargo.toml",
            "[package]\nname = \"fetcher\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"1\"\n",
        );
        env.project.write("src/lib.rs", "");
        // The same toolchain without the registry rule.
        env.home.write(
            ".config/guard/profiles/norust.toml",
            "version = 1\nextends = [\"default\"]\n\n[filesystem]\nread = [\"~/.cargo/bin\"]\n\n[home]\ncache = [\"~/.cargo/registry\"]\n",
        );
        env.own();
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
        let guard = |args: &[&str]| {
            common::Outcome::from(
                env.guard(args)
                    .env("PATH", &path)
                    .env_remove("CARGO_HOME")
                    .env_remove("CARGO_REGISTRIES_CRATES_IO_PROTOCOL")
                    .output()
                    .expect("spawn guard"),
            )
        };
        let explain = guard(&["explain", "-p", "rust", "--", "true"]);
        explain.expect_code(0);
        let host = explain
            .stdout
            .lines()
            .find(|l| l.contains("[cargo's configured registry]"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no cargo registry rule: {}", explain.all()))
            .to_string();
        // Locking reads the registry's index over the network (a fetch
        // would need the toolchain's rustc, which uid 65534 cannot reach).
        let script = "cargo generate-lockfile -q; echo lock=$?";
        let r = guard(&["run", "-p", "rust", "--", "sh", "-c", script]);
        r.expect_code(0).expect_fields(&[("lock", "0")]);
        let lock = std::fs::read_to_string(env.project.join("Cargo.lock")).expect("Cargo.lock");
        assert!(lock.contains("name = \"itoa\""), "{lock}");

        std::fs::remove_file(env.project.join("Cargo.lock")).expect("rm Cargo.lock");
        let r = guard(&[
            "run",
            "-p",
            "norust",
            "--",
            "sh",
            "-c",
            "CARGO_NET_RETRY=0 cargo generate-lockfile -q; echo lock=$?",
        ]);
        r.expect_code(0);
        assert_ne!(r.field("lock").as_deref(), Some("0"), "{}", r.all());
        assert!(
            r.stderr.contains(&format!("{host}:443 (not-allowed)")),
            "the refusal names cargo's registry: {}",
            r.all()
        );
        assert!(!env.project.join("Cargo.lock").exists());
    }
}

/// go inside uses the module proxy and checksum database the user set with
/// `go env -w` (their go env file is not in the view), and those hosts are
/// allowed under the go profile, as `go env` reports them.
#[test]
fn go_uses_the_module_proxy_the_user_configured() {
    let go = Command::new("sh")
        .args(["-c", "command -v go"])
        .output()
        .expect("run sh");
    assert!(
        go.status.success(),
        "go must be installed for this test (.ci/run installs golang-go)"
    );
    for mode in modes() {
        let env = Env::new(mode);
        env.home.write(
            ".config/go/env",
            "GOPROXY=https://goproxy.guard.test/mod,direct\nGOSUMDB=sum.guard.test\n",
        );
        env.own();
        let connect = r#"python3 -c '
import os, socket, sys
h, port = os.environ["HTTPS_PROXY"].split("//")[1].rstrip("/").rsplit(":", 1)
for host in sys.argv[1:]:
    s = socket.create_connection((h, int(port)), timeout=20)
    s.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (host, host)).encode())
    print("%s=%s" % (host.split(".")[0], s.recv(200).split()[1].decode()))
' goproxy.guard.test sum.guard.test other.guard.test"#;
        let r = bash(
            &env,
            &["-p", "go"],
            &format!("echo proxy=$(go env GOPROXY); echo sumdb=$(go env GOSUMDB)\n{connect}"),
        );
        // Allowed names answer 502 (nothing resolves them from here);
        // others 403.
        r.expect_code(0).expect_fields(&[
            ("proxy", "https://goproxy.guard.test/mod,direct"),
            ("sumdb", "sum.guard.test"),
            ("goproxy", "502"),
            ("sum", "502"),
            ("other", "403"),
        ]);
    }
}
