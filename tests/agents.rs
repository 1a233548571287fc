//! Real agents inside their built-in profiles (issue 5): installed from the
//! machine's npm registry (aider: from its Python package index, into a
//! virtualenv where uv's tool install puts it), started by name so guard
//! picks their profile, run once for `--version` and once with a prompt and
//! a dummy key. Asserted: they start, every connection they attempt goes to
//! a host their profile allows (from the session log), they can write their
//! own state (the persistent home), and none of the real home is visible.
//! Then each agent whose model API can be stood in for (all but copilot and
//! amp) acts: a stand-in model (tests/support/fake_model.py) has it run a
//! shell command that writes one project file and reads another (aider,
//! which edits by text: write a file and send one it read), gets the result
//! back and lets it finish. Codex's own sandbox cannot nest in guard's: it is
//! turned off the way its profile says.
//!
//! Needs npm and the registry (`npm config get registry`), and
//! /usr/bin/python3 with venv and pip's configured index; fails loudly
//! without them. This machine has no route to the agents' APIs, so the
//! prompt itself fails after the proxy let the connection through.

mod common;

use common::{Env, Mode, canary, modes};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// Install `packages` into `prefix` with the machine's npm (on the host).
fn npm_install(prefix: &std::path::Path, packages: &[&str]) {
    let st = Command::new("npm")
        .args(["install", "-g", "--no-audit", "--no-fund", "--prefix"])
        .arg(prefix)
        .args(packages)
        .status()
        .expect("npm is required for the agent tests (apt-get install npm)");
    assert!(st.success(), "npm install {packages:?} failed");
}

/// A virtualenv with `package` from pip's configured index, built with the
/// system interpreter: the venv's interpreter link must resolve for both
/// uids and inside the sandbox, where /usr is visible (a pyenv under /root
/// is neither).
fn pip_install(venv: &std::path::Path, package: &str) {
    let st = Command::new("/usr/bin/python3")
        .args(["-m", "venv"])
        .arg(venv)
        .status()
        .expect("/usr/bin/python3 is required for the aider test");
    assert!(
        st.success(),
        "python3 -m venv failed (Debian: apt-get install python3-venv)"
    );
    // No bytecode, as uv installs tools: a third faster here, and the
    // read-only environment inside compiles what aider imports on each start.
    let st = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--no-compile", package])
        .status()
        .expect("run pip");
    assert!(st.success(), "pip install {package} failed");
}

/// `venv` placed at `at` as hard links (no copy of its ~600 MB), with the
/// entry point `bin` pointing at the interpreter of its new place.
fn place_venv(venv: &std::path::Path, at: &std::path::Path, bin: &str) {
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-al")
        .arg(venv)
        .arg(at)
        .status()
        .unwrap();
    assert!(st.success(), "cp -al {} {}", venv.display(), at.display());
    let script = std::fs::read_to_string(venv.join("bin").join(bin)).unwrap();
    let body = script.split_once('\n').map_or("", |(_, b)| b);
    // A new file: writing through the link would change the original.
    let entry = at.join("bin").join(bin);
    std::fs::remove_file(&entry).unwrap();
    std::fs::write(
        &entry,
        format!("#!{}\n{body}", at.join("bin/python3").display()),
    )
    .unwrap();
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Hosts whose connections passed the allowlist (allowed, or allowed but
/// unreachable from this machine). Connections the allowlist refused
/// (telemetry an agent could not be talked out of) never left the sandbox.
fn net_hosts(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "net" && e.get("decision").is_some() && e["via"] != "dns")
        .filter(|e| {
            e["decision"] == "allow"
                || matches!(
                    e["why"].as_str(),
                    Some("resolve-failed" | "connect-failed" | "connect-timeout")
                )
        })
        .map(|e| e["host"].as_str().unwrap_or("").to_string())
        .collect()
}

fn session_profile(log: &std::path::Path) -> String {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["kind"] == "session" && e["event"] == "start")
        .map(|e| e["profile"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

enum Source {
    /// npm package, installed globally into the shared tools directory.
    Npm(&'static str),
    /// Python package: one virtualenv, placed in each test home where
    /// `uv tool install` puts it (~/.local/share/uv/tools/PACKAGE).
    Pip(&'static str),
}

struct Agent {
    source: Source,
    bin: &'static str,
    version_marker: &'static str,
    key_var: &'static str,
    prompt: &'static [&'static str],
    allowed: &'static [&'static str],
    state: &'static str,
}

const AGENTS: &[Agent] = &[
    Agent {
        source: Source::Npm("@anthropic-ai/claude-code"),
        bin: "claude",
        version_marker: "Claude Code",
        key_var: "ANTHROPIC_API_KEY",
        prompt: &["-p", "say hi"],
        allowed: &["api.anthropic.com", "claude.ai", "platform.claude.com"],
        state: ".claude.json",
    },
    Agent {
        source: Source::Npm("@google/gemini-cli"),
        bin: "gemini",
        version_marker: ".",
        key_var: "GEMINI_API_KEY",
        prompt: &["-p", "say hi"],
        allowed: &[
            "generativelanguage.googleapis.com",
            "cloudcode-pa.googleapis.com",
            "oauth2.googleapis.com",
            "accounts.google.com",
            "www.googleapis.com",
        ],
        state: ".gemini",
    },
    Agent {
        source: Source::Npm("@openai/codex"),
        bin: "codex",
        version_marker: "codex-cli",
        key_var: "OPENAI_API_KEY",
        // The project is not a git repository: without the flag codex stops.
        prompt: &["exec", "--skip-git-repo-check", "say hi"],
        allowed: &["api.openai.com", "chatgpt.com", "auth.openai.com"],
        state: ".codex",
    },
    Agent {
        source: Source::Npm("opencode-ai"),
        bin: "opencode",
        version_marker: ".",
        key_var: "ANTHROPIC_API_KEY",
        prompt: &["run", "say hi"],
        allowed: &[
            "models.opencode.ai",
            "opencode.ai",
            "api.anthropic.com",
            "api.openai.com",
            "generativelanguage.googleapis.com",
            "openrouter.ai",
        ],
        state: ".local/share/opencode",
    },
    Agent {
        source: Source::Npm("@github/copilot"),
        bin: "copilot",
        version_marker: "GitHub Copilot CLI",
        key_var: "COPILOT_GITHUB_TOKEN",
        // Required in non-interactive mode (`copilot --help`).
        prompt: &["-p", "say hi", "--allow-all-tools"],
        allowed: &[
            "api.github.com",
            "github.com",
            "api.githubcopilot.com",
            "*.githubcopilot.com",
        ],
        state: ".copilot",
    },
    Agent {
        source: Source::Npm("@sourcegraph/amp"),
        bin: "amp",
        version_marker: ".",
        key_var: "AMP_API_KEY",
        prompt: &["-x", "say hi"],
        allowed: &["ampcode.com", "static.ampcode.com"],
        state: ".local/share/amp",
    },
    Agent {
        source: Source::Pip("aider-chat"),
        bin: "aider",
        version_marker: "aider ",
        key_var: "OPENAI_API_KEY",
        prompt: &["--message", "say hi", "--yes-always", "--no-git"],
        allowed: &[
            "api.openai.com",
            "api.anthropic.com",
            "generativelanguage.googleapis.com",
            "api.deepseek.com",
            "openrouter.ai",
        ],
        state: ".aider",
    },
];

/// `host` is `pattern`, or below it for `*.suffix`.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.ends_with(&format!(".{suffix}")),
        None => host == pattern,
    }
}

#[test]
fn real_agents_start_under_their_profiles() {
    // One install for every mode: the agents live in a directory both uids read.
    let tools = common::TempDir::new("agents", Mode::Invoker);
    let npm: Vec<&str> = AGENTS
        .iter()
        .filter_map(|a| match a.source {
            Source::Npm(p) => Some(p),
            Source::Pip(_) => None,
        })
        .collect();
    npm_install(&tools.path, &npm);
    // Not under `tools` (granted with --ro, all of it scanned): each test
    // home gets it where `uv tool install` puts it, which the aider profile
    // grants and whose packages it keeps out of the secrets scan.
    let venvs = common::TempDir::new("venvs", Mode::Invoker);
    for agent in AGENTS {
        if let Source::Pip(p) = agent.source {
            pip_install(&venvs.join(p), p);
        }
    }
    let registry = common::npm_registry_host();
    for mode in modes() {
        for agent in AGENTS {
            let env = Env::new(mode);
            let secret = canary("realhome");
            env.home.write("real-home-secret.txt", &secret);
            // The agent is granted read-only at its install location: the
            // tools directory, or for a Python agent where its profile says.
            let bin = match agent.source {
                Source::Npm(_) => tools.path.join("bin").join(agent.bin),
                Source::Pip(p) => {
                    let at = env.home.join(".local/share/uv/tools").join(p);
                    place_venv(&venvs.join(p), &at, agent.bin);
                    at.join("bin").join(agent.bin)
                }
            };
            env.own();
            let path = format!(
                "{}:{}",
                tools.path.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let run = |args: &[&str], log: &std::path::Path, vars: &[(&str, &str)]| {
                let mut all = vec![
                    "run",
                    "--ro",
                    tools.path.to_str().unwrap(),
                    "--log",
                    log.to_str().unwrap(),
                ];
                all.extend_from_slice(args);
                common::Outcome::from(
                    env.guard(&all)
                        .env("PATH", &path)
                        .env(agent.key_var, "dummy-key-for-tests")
                        .env("GEMINI_CLI_TRUST_WORKSPACE", "true")
                        .envs(vars.iter().copied())
                        .output()
                        .unwrap(),
                )
            };
            let log = env.home.join("version.jsonl");
            // Started by name: guard picks the agent's profile itself.
            let version = run(&["--", bin.to_str().unwrap(), "--version"], &log, &[]);
            version.expect_code(0);
            assert!(
                version.stdout.contains(agent.version_marker),
                "{}: {}",
                agent.bin,
                version.all()
            );
            assert_eq!(
                session_profile(&log),
                agent.bin,
                "profile not chosen from the command name"
            );

            let log = env.home.join("prompt.jsonl");
            // Agents retry an unreachable API for minutes: stop after 15 s
            // (each tried every host it contacts within 6 s here, the rest
            // are retries). The profile is named: the command is `timeout`.
            // aider compiles what it imports at every start (its
            // environment is read-only inside): on a loaded 2-CPU machine
            // that alone took over 15 s.
            let limit = if agent.bin == "aider" { "40" } else { "15" };
            let mut args = vec![
                "-p",
                agent.bin,
                "--",
                "timeout",
                limit,
                bin.to_str().unwrap(),
            ];
            args.extend_from_slice(agent.prompt);
            let prompt = run(&args, &log, &[]);
            // No API is reachable from here: the run fails, but only after
            // it tried an allowed host and nothing else.
            let hosts = net_hosts(&log);
            assert!(
                !hosts.is_empty(),
                "{} made no connection past the allowlist: {}",
                agent.bin,
                prompt.all()
            );
            for h in &hosts {
                assert!(
                    agent.allowed.iter().any(|a| host_matches(a, h)) || *h == registry,
                    "{} tried {h}, not in its profile\n{}",
                    agent.bin,
                    prompt.all()
                );
            }
            prompt.assert_no_canary(&secret);

            // Its own state was written to its persistent home; the real
            // home is untouched and invisible.
            let homes = env.persistent_home(agent.bin);
            assert!(
                homes.join(agent.state).exists(),
                "{} wrote no state in {}",
                agent.bin,
                homes.display()
            );
            let ls = env.run(&[
                "run",
                "-p",
                agent.bin,
                "--",
                "ls",
                "-A",
                env.home.path.to_str().unwrap(),
            ]);
            ls.expect_code(0);
            assert!(!ls.stdout.contains("real-home-secret.txt"), "{}", ls.stdout);
            assert!(
                !env.home.join(agent.state).exists() || agent.state == ".gemini",
                "state leaked to the real home"
            );
            if let Some(act) = act_of(agent.bin, &env) {
                agent_acts(&env, agent.bin, &bin, &act, &run);
            }
        }
    }
}

/// Where the stand-in model listens, on the sandbox's own loopback.
const STAND_IN: &str = "http://127.0.0.1:18080";

/// How a stand-in model (tests/support/fake_model.py) makes one agent act.
struct Act {
    /// The wire format the agent speaks, as fake_model.py names it.
    api: &'static str,
    /// What the model does: a command for the agent's shell tool; for aider,
    /// which edits by text rather than by tool calls, an edit in its format.
    action: String,
    /// After the agent's binary: a one-shot prompt whose tools run unasked.
    args: Vec<String>,
    /// Set on the host: what points the agent at the stand-in must get
    /// through its profile.
    vars: Vec<(&'static str, &'static str)>,
    /// What the agent prints once the model has finished.
    finished: &'static str,
}

/// The act of `bin`, after writing the configuration it needs.
fn act_of(bin: &str, env: &Env) -> Option<Act> {
    let persistent = env.persistent_home(bin);
    // Writes one project file, reads another: the model must get its text.
    let shell = format!("echo made > made-by-{bin} && cat note.txt");
    let done = "done: the command ran";
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect();
    match bin {
        "claude" => Some(Act {
            api: "messages",
            action: shell,
            // Not --dangerously-skip-permissions: Claude Code refuses it as
            // root, and the sandbox runs as root in one of the modes.
            args: owned(&["-p", "make a file", "--allowedTools", "Bash"]),
            vars: vec![("ANTHROPIC_BASE_URL", STAND_IN)],
            finished: done,
        }),
        "gemini" => {
            // Given a base URL, gemini-cli (0.61) picks a "gateway" sign-in
            // that its own headless check then rejects ("Invalid auth method
            // selected"); the API-key sign-in, chosen in its settings, uses
            // the URL as well.
            let path = persistent.join(".gemini/settings.json");
            let mut settings: serde_json::Value = std::fs::read_to_string(&path)
                .map_or(serde_json::json!({}), |s| serde_json::from_str(&s).unwrap());
            settings["security"]["auth"]["selectedType"] = "gemini-api-key".into();
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, settings.to_string()).unwrap();
            Some(Act {
                api: "gemini",
                action: shell,
                args: owned(&["-p", "make a file", "--yolo"]),
                vars: vec![("GOOGLE_GEMINI_BASE_URL", STAND_IN)],
                finished: done,
            })
        }
        "codex" => {
            // Codex's own sandbox cannot start inside guard; profiles/codex.toml
            // says to turn it off in the config of the persistent home. First,
            // so that it stays a top-level key whatever tables follow. The
            // model is a provider defined on the command line, so that the
            // config holds only what the profile describes.
            let config = persistent.join(".codex/config.toml");
            let rest = std::fs::read_to_string(&config).unwrap_or_default();
            std::fs::write(
                &config,
                format!("sandbox_mode = \"danger-full-access\"\n{rest}"),
            )
            .unwrap();
            let mut args = owned(&["exec", "--skip-git-repo-check"]);
            for c in [
                "model_provider=stand-in",
                "model_providers.stand-in.name=stand-in",
                &format!("model_providers.stand-in.base_url={STAND_IN}/v1"),
                "model_providers.stand-in.env_key=OPENAI_API_KEY",
                "model_providers.stand-in.wire_api=responses",
            ] {
                args.extend(["-c".to_string(), c.to_string()]);
            }
            args.push("make a file".into());
            Some(Act {
                api: "responses",
                action: shell,
                args,
                vars: vec![],
                finished: done,
            })
        }
        "opencode" => {
            // A provider of the project's config; opencode bundles the SDK.
            let config = serde_json::json!({
                "provider": {"stand-in": {
                    "npm": "@ai-sdk/openai-compatible",
                    "name": "stand-in",
                    "options": {"baseURL": format!("{STAND_IN}/v1")},
                    "models": {"model": {"name": "model", "tool_call": true}},
                }},
                "model": "stand-in/model",
                "permission": {"bash": "allow"},
            });
            env.project.write("opencode.json", &config.to_string());
            Some(Act {
                api: "chat",
                action: shell,
                args: owned(&["run", "make a file"]),
                vars: vec![],
                finished: done,
            })
        }
        "aider" => Some(Act {
            api: "chat-edit",
            // Its "whole" format: the file's name, then all of its text. It
            // runs no shell command unasked (--yes-always declines them).
            action: format!("made-by-{bin}\n```\nmade\n```\n"),
            args: owned(&[
                "--model",
                "openai/stand-in",
                "--openai-api-base",
                &format!("{STAND_IN}/v1"),
                "--edit-format",
                "whole",
                "--no-git",
                "--yes-always",
                "--no-show-model-warnings",
                // Read into the chat: the model must be sent its text.
                "--read",
                "note.txt",
                "--message",
                "make a file",
            ]),
            vars: vec![],
            finished: "Applied edit to made-by-aider",
        }),
        // Their models are their vendors' own services, with no base URL
        // to point elsewhere.
        "copilot" | "amp" => None,
        other => panic!("no act written for {other}"),
    }
}

/// `guard run ARGS` for one agent, logging to a file, with more variables
/// set on the host.
type GuardRun<'a> = dyn Fn(&[&str], &std::path::Path, &[(&str, &str)]) -> common::Outcome + 'a;

/// The agent, under its own profile, takes the stand-in model's tool call,
/// runs the command in the sandbox (it writes one project file and reads
/// another), sends the result back and finishes. The stand-in runs inside
/// the sandbox, on its loopback: the sandbox has no other route out than
/// guard's proxy, and this machine none to the real APIs.
fn agent_acts(env: &Env, bin: &str, exe: &std::path::Path, act: &Act, run: &GuardRun) {
    env.project
        .write("fake_model.py", include_str!("support/fake_model.py"));
    let note = format!("read-by-{bin}");
    env.project.write("note.txt", &format!("{note}\n"));
    env.own();
    let port = STAND_IN.rsplit(':').next().unwrap();
    let script = format!(
        "python3 fake_model.py \"$1\" {port} \"$2\" .fake-ready .fake-seen &
         for _ in $(seq 600); do [ -e .fake-ready ] && break; sleep 0.1; done
         shift 2
         exec timeout 90 \"$@\""
    );
    let mut args = vec!["-p", bin, "--", "sh", "-c", &script, "sh", act.api];
    args.extend([act.action.as_str(), exe.to_str().unwrap()]);
    args.extend(act.args.iter().map(String::as_str));
    let out = run(&args, &env.home.join("act.jsonl"), &act.vars);
    out.expect_code(0);
    assert_eq!(
        common::read_host(&env.project.path.join(format!("made-by-{bin}"))).as_deref(),
        Some("made\n"),
        "{bin} did not write the project file: {}",
        out.all()
    );
    let seen = common::read_host(&env.project.join(".fake-seen")).unwrap_or_default();
    assert!(
        seen.contains(&note),
        "{bin} did not send the model what it read: {seen:?}\n{}",
        out.all()
    );
    assert!(
        out.stdout.contains(act.finished),
        "{bin} did not finish: {}",
        out.all()
    );
}
