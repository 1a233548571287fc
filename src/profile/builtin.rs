//! Built-in profiles, compiled in from profiles/*.toml.

const BUILTINS: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.toml")),
    ("offline", include_str!("../../profiles/offline.toml")),
    // Building blocks the agent profiles extend.
    ("git", include_str!("../../profiles/git.toml")),
    ("node", include_str!("../../profiles/node.toml")),
    ("python", include_str!("../../profiles/python.toml")),
    ("rust", include_str!("../../profiles/rust.toml")),
    ("go", include_str!("../../profiles/go.toml")),
    // Agents, chosen automatically from the command name.
    ("claude", include_str!("../../profiles/claude.toml")),
    ("codex", include_str!("../../profiles/codex.toml")),
    ("gemini", include_str!("../../profiles/gemini.toml")),
    ("copilot", include_str!("../../profiles/copilot.toml")),
    ("amp", include_str!("../../profiles/amp.toml")),
    ("opencode", include_str!("../../profiles/opencode.toml")),
    (
        "cursor-agent",
        include_str!("../../profiles/cursor-agent.toml"),
    ),
    ("agent", include_str!("../../profiles/cursor-agent.toml")),
    ("aider", include_str!("../../profiles/aider.toml")),
    ("goose", include_str!("../../profiles/goose.toml")),
];

pub fn builtin_source(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}
