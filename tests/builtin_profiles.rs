//! Every built-in profile parses, resolves and its merged form is stable:
//! `guard profile show NAME` is compared with tests/golden/NAME.txt.
//! Regenerate after an intended change with `GUARD_UPDATE_GOLDEN=1 cargo test`.

mod common;

use common::{Env, Mode};

const BUILTINS: &[&str] = &[
    "default",
    "offline",
    "git",
    "node",
    "python",
    "rust",
    "go",
    "claude",
    "codex",
    "gemini",
    "copilot",
    "amp",
    "opencode",
    "cursor-agent",
    "agent",
    "aider",
    "goose",
];

#[test]
fn builtin_profiles_match_their_golden_files() {
    let env = Env::new(Mode::Invoker);
    let list = env.run(&["profile", "list"]);
    list.expect_code(0);
    for name in BUILTINS {
        assert!(
            list.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{name} "))),
            "{name} not listed"
        );
        let out = env.run(&["profile", "show", name]);
        out.expect_code(0);
        let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/golden/{name}.txt"));
        if std::env::var_os("GUARD_UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &out.stdout).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with GUARD_UPDATE_GOLDEN=1 to create it)",
                golden.display()
            )
        });
        assert_eq!(
            out.stdout, want,
            "profile {name} changed; if intended, regenerate with GUARD_UPDATE_GOLDEN=1"
        );
        // And it resolves into a plan on this machine.
        let explain = env.run(&["explain", "-p", name, "--", "true"]);
        explain.expect_code(0);
        assert!(
            explain.stdout.contains("mount plan"),
            "{name}: {}",
            explain.all()
        );
    }
}
