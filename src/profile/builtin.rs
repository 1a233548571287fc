//! Built-in profiles, compiled in from profiles/*.toml.

const BUILTINS: &[(&str, &str)] = &[("default", include_str!("../../profiles/default.toml"))];

pub fn builtin_source(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}
