//! Profile errors as a user reads them: `file:line:column`, the key, what
//! is wrong in TOML's words (not Rust's type names), and how to fix it.

use crate::error::Error;
use toml::de::{DeTable, DeValue};

/// Where the format is described, for hints.
pub const FORMAT_DOC: &str = "docs/profiles.md";

/// A profile error at byte `offset` of `text`.
pub fn at(text: &str, origin: &str, offset: usize, msg: String, hint: impl Into<String>) -> Error {
    let (line, col) = line_col(text, offset);
    Error::Profile {
        location: format!("{origin}:{line}:{col}"),
        msg,
        hint: Some(hint.into()),
    }
}

/// The error for a file that TOML or the profile schema refused.
pub fn from_toml(e: &toml::de::Error, text: &str, origin: &str) -> Error {
    let span = e.span();
    let offset = span.as_ref().map_or(0, |s| s.start);
    let raw = e.message().trim();
    let key = keys_of(e);
    let place = || match &key {
        Some(k) => format!("in [{k}]"),
        None => "at the top level".to_string(),
    };
    let (msg, hint) = if raw == "duplicate key" {
        let name = span
            .and_then(|s| text.get(s))
            .map(str::trim)
            .unwrap_or_default();
        (
            format!("duplicate key `{name}`"),
            "a key, or a [table] header, may appear only once: remove or merge the repeated one"
                .to_string(),
        )
    } else if DeTable::parse(text).is_err() {
        (
            format!("TOML syntax: {raw}"),
            "fix the syntax at that position: strings in double quotes, lists in [ ], one `key = value` per line (https://toml.io)".to_string(),
        )
    } else if let Some(rest) = raw.strip_prefix("unknown field ") {
        let (name, expected) = rest.split_once(", ").unwrap_or((rest, ""));
        (
            format!("unknown key {name} {}; {expected}", place()),
            format!(
                "remove it or correct its spelling (unknown keys are errors on purpose: a misspelt security setting must not be silently ignored); every key is described in {FORMAT_DOC}"
            ),
        )
    } else if raw == "missing field `version`" {
        (
            "missing key `version`".to_string(),
            format!(
                "add `version = {}` as the first line",
                super::SCHEMA_VERSION
            ),
        )
    } else if let Some(field) = raw.strip_prefix("missing field ") {
        (
            format!("missing key {field} {}", place()),
            format!("add it; every key is described in {FORMAT_DOC}"),
        )
    } else {
        let hint = match key.as_deref() {
            Some(k) if k.starts_with("network.allow") => {
                "give a host name (\"example.com\"), \"*.example.com\", \"example.com:8443\", an IP address or CIDR range, or { host = \"...\", private = true }".to_string()
            }
            Some(k) if k.starts_with("network.hosts") => {
                "give an IP address, as in \"api.internal\" = \"10.1.2.3\"".to_string()
            }
            _ => format!("the type of every key is described in {FORMAT_DOC}"),
        };
        let msg = match &key {
            Some(k) => format!("key `{k}`: {}", plain_types(raw)),
            None => plain_types(raw),
        };
        (msg, hint)
    };
    at(text, origin, offset, msg, hint)
}

/// The dotted key the error is about (`filesystem.read`). The toml crate
/// keeps it private but prints it when it has no source text to show.
fn keys_of(e: &toml::de::Error) -> Option<String> {
    let mut bare = e.clone();
    bare.set_input(None);
    bare.to_string().lines().find_map(|l| {
        l.strip_prefix("in `")
            .and_then(|k| k.strip_suffix('`'))
            .map(str::to_string)
    })
}

/// serde's Rust-flavoured type names in TOML's words.
fn plain_types(raw: &str) -> String {
    let mut s = raw.replace(" as i128", "");
    for (rust, toml) in [
        ("expected a sequence", "expected a list [...]"),
        ("invalid type: sequence", "invalid type: list"),
        ("expected a map", "expected a table"),
        ("invalid type: map", "invalid type: table"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected a boolean", "expected true or false"),
        ("floating point", "number"),
    ] {
        s = s.replace(rust, toml);
    }
    // `expected struct Filesystem`
    if let Some(at) = s.find("expected struct ") {
        s.truncate(at);
        s.push_str("expected a table");
    }
    s
}

/// Byte offset, in the profile's text, of the key at `keys` (for a list,
/// of its element equal to `elem`; for a table, of its key `elem`), or of
/// the deepest part of that path the file has. For errors found after the
/// file was deserialized.
pub fn locate(text: &str, keys: &[&str], elem: Option<&str>) -> usize {
    let Ok(doc) = DeTable::parse(text) else {
        return 0;
    };
    let mut table = doc.get_ref();
    let mut offset = 0;
    for (i, k) in keys.iter().enumerate() {
        let Some((name, value)) = table.iter().find(|(name, _)| name.get_ref() == k) else {
            return offset;
        };
        offset = name.span().start;
        let last = i + 1 == keys.len();
        match value.get_ref() {
            DeValue::Table(t) if !last => table = t,
            DeValue::Table(t) => {
                return elem
                    .and_then(|e| t.iter().find(|(n, _)| n.get_ref() == e))
                    .map_or(offset, |(n, _)| n.span().start);
            }
            DeValue::Array(items) if last => {
                return elem
                    .and_then(|e| items.iter().find(|v| v.get_ref().as_str() == Some(e)))
                    .map_or(value.span().start, |v| v.span().start);
            }
            _ => return offset,
        }
    }
    offset
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_values_and_keys() {
        let text = "version = 1\n[filesystem]\nread = [\"/a\", \"rel\"]\n[env.set]\nA = \"x\"\n";
        assert_eq!(
            line_col(text, locate(text, &["filesystem", "read"], Some("rel"))),
            (3, 15)
        );
        assert_eq!(
            line_col(text, locate(text, &["env", "set"], Some("A"))),
            (5, 1)
        );
        assert_eq!(line_col(text, locate(text, &["version"], None)), (1, 1));
        assert_eq!(line_col(text, locate(text, &["nosuch"], None)), (1, 1));
    }

    #[test]
    fn rust_type_names_are_translated() {
        assert_eq!(
            plain_types("invalid type: string \"x\", expected a sequence"),
            "invalid type: string \"x\", expected a list [...]"
        );
        assert_eq!(
            plain_types("invalid type: string \"x\", expected struct Filesystem"),
            "invalid type: string \"x\", expected a table"
        );
        assert_eq!(
            plain_types("invalid type: integer `99999999999999999999` as i128, expected u32"),
            "invalid type: integer `99999999999999999999`, expected a whole number (0 or more)"
        );
    }
}
