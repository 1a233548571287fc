//! Real agents inside their built-in profiles (issue 5): installed from the
//! machine's npm registry into the test project, started by name so guard
//! picks their profile, run once for `--version` and once with a prompt and
//! a dummy key. Asserted: they start, every connection they attempt goes to
//! a host their profile allows (from the session log), they can write their
//! own state (the persistent home), and none of the real home is visible.
//! Codex's own sandbox cannot nest in guard's: with it turned off the way its
//! profile says, a command it runs for a stand-in model writes to the project.
//!
//! Needs npm and the registry (`npm config get registry`); fails loudly
//! without them. This machine has no route to the agents' APIs, so the
//! prompt itself fails after the proxy let the connection through.

mod common;

use common::{Env, Mode, canary, modes};
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

struct Agent {
    package: &'static str,
    bin: &'static str,
    version_marker: &'static str,
    key_var: &'static str,
    prompt: &'static [&'static str],
    allowed: &'static [&'static str],
    state: &'static str,
}

const AGENTS: &[Agent] = &[
    Agent {
        package: "@anthropic-ai/claude-code",
        bin: "claude",
        version_marker: "Claude Code",
        key_var: "ANTHROPIC_API_KEY",
        prompt: &["-p", "say hi"],
        allowed: &["api.anthropic.com", "claude.ai", "platform.claude.com"],
        state: ".claude.json",
    },
    Agent {
        package: "@google/gemini-cli",
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
        package: "@openai/codex",
        bin: "codex",
        version_marker: "codex-cli",
        key_var: "OPENAI_API_KEY",
        // The project is not a git repository: without the flag codex stops.
        prompt: &["exec", "--skip-git-repo-check", "say hi"],
        allowed: &["api.openai.com", "chatgpt.com", "auth.openai.com"],
        state: ".codex",
    },
    Agent {
        package: "opencode-ai",
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
];

#[test]
fn real_agents_start_under_their_profiles() {
    // One install for every mode: the agents live in a directory both uids read.
    let tools = common::TempDir::new("agents", Mode::Invoker);
    npm_install(
        &tools.path,
        &AGENTS.iter().map(|a| a.package).collect::<Vec<_>>(),
    );
    let registry = common::npm_registry_host();
    for mode in modes() {
        for agent in AGENTS {
            let env = Env::new(mode);
            let secret = canary("realhome");
            env.home.write("real-home-secret.txt", &secret);
            env.own();
            // The agent is granted read-only at its install location.
            let bin = tools.path.join("bin").join(agent.bin);
            let path = format!(
                "{}:{}",
                tools.path.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let run = |args: &[&str], log: &std::path::Path| {
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
                        .output()
                        .unwrap(),
                )
            };
            let log = env.home.join("version.jsonl");
            // Started by name: guard picks the agent's profile itself.
            let version = run(&["--", bin.to_str().unwrap(), "--version"], &log);
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
            let mut args = vec![
                "-p",
                agent.bin,
                "--",
                "timeout",
                "15",
                bin.to_str().unwrap(),
            ];
            args.extend_from_slice(agent.prompt);
            let prompt = run(&args, &log);
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
                    agent.allowed.contains(&h.as_str()) || *h == registry,
                    "{} tried {h}, not in its profile\n{}",
                    agent.bin,
                    prompt.all()
                );
            }
            prompt.assert_no_canary(&secret);

            // Its own state was written to its persistent home; the real
            // home is untouched and invisible.
            let homes = env.home.join(".local/share/guard/homes").join(agent.bin);
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
            if agent.bin == "codex" {
                codex_acts_with_its_sandbox_off(&env, &bin, &run);
            }
        }
    }
}

/// Codex's own sandbox cannot start inside guard; profiles/codex.toml says to
/// turn it off in the config of the persistent home. Done so, a command codex
/// runs for the model must write to the project. The model is a stand-in on
/// the sandbox's own loopback (tests/support/fake_responses.py), reached
/// through a provider defined on the command line so that the config holds
/// only what the profile describes.
fn codex_acts_with_its_sandbox_off(
    env: &Env,
    codex: &std::path::Path,
    run: &dyn Fn(&[&str], &std::path::Path) -> common::Outcome,
) {
    let config = env
        .home
        .join(".local/share/guard/homes/codex/.codex/config.toml");
    // First, so that it stays a top-level key whatever tables follow.
    let rest = std::fs::read_to_string(&config).unwrap_or_default();
    std::fs::write(
        &config,
        format!("sandbox_mode = \"danger-full-access\"\n{rest}"),
    )
    .unwrap();
    env.project.write(
        "fake_responses.py",
        include_str!("support/fake_responses.py"),
    );
    env.own();
    let script = format!(
        "python3 fake_responses.py 18080 'touch made-by-codex && echo made' .fake-ready &
         for _ in $(seq 100); do [ -e .fake-ready ] && break; sleep 0.1; done
         exec timeout 60 {} exec --skip-git-repo-check \
           -c model_provider=stand-in -c model_providers.stand-in.name=stand-in \
           -c model_providers.stand-in.base_url=http://127.0.0.1:18080/v1 \
           -c model_providers.stand-in.env_key=OPENAI_API_KEY \
           -c model_providers.stand-in.wire_api=responses 'make a file'",
        codex.display()
    );
    let log = env.home.join("act.jsonl");
    let out = run(&["-p", "codex", "--", "sh", "-c", &script], &log);
    out.expect_code(0);
    assert!(
        env.project.join("made-by-codex").exists(),
        "codex's command did not run: {}",
        out.all()
    );
}
