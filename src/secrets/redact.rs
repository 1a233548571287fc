//! Redaction: the copy of a file the sandbox reads instead of the original,
//! with each secret value replaced by `guard-redacted:<rule-id>`. The host
//! file is only read, never modified.

use super::content_rules::ContentEngine;
use super::scan::classify;
use super::{Action, Finding, Flagged, MAX_FILE_SIZE, Redaction, Rules};
use crate::error::{Error, Result};
use nix::fcntl::OFlag;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub const MARKER: &str = "guard-redacted:";

/// Replace each finding's bytes with the marker naming its rule.
/// `findings` are sorted and do not overlap (as the engine returns them).
pub fn apply(content: &[u8], findings: &[Finding], engine: &ContentEngine) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    let mut at = 0usize;
    for f in findings {
        let (s, e) = (f.start as usize, f.end as usize);
        if s < at || e > content.len() {
            continue;
        }
        out.extend_from_slice(&content[at..s]);
        out.extend_from_slice(MARKER.as_bytes());
        out.extend_from_slice(engine.rule_id(f.rule).as_bytes());
        at = e;
    }
    out.extend_from_slice(&content[at..]);
    out
}

/// The name a value starting at `start` is assigned to on its line, in
/// any of the usual forms (`NAME=value`, `export NAME="value"`,
/// `name: value`, `"name": "value"`): `None` when nothing is assigned there.
pub fn assigned_name(content: &[u8], start: usize) -> Option<&str> {
    let line_start = content[..start.min(content.len())]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let before = &content[line_start..start.min(content.len())];
    let trim = |s: &[u8], set: &[u8]| -> usize {
        s.iter()
            .rposition(|b| !set.contains(b))
            .map_or(0, |i| i + 1)
    };
    // The value's opening quote, the assignment, the name's closing quote.
    let at = trim(before, b" \t\"'");
    let op = before[..at].last()?;
    if *op != b'=' && *op != b':' {
        return None;
    }
    let end = trim(&before[..at - 1], b" \t\"'");
    let name = &before[..end];
    let begin = name
        .iter()
        .rposition(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
        .map_or(0, |i| i + 1);
    std::str::from_utf8(&name[begin..])
        .ok()
        .filter(|n| !n.is_empty())
}

/// A secret value often appears twice (`PASSWORD=x` then `echo x | login`)
/// while only the assignment is recognisable as a secret: replace every
/// other occurrence of a flagged value too. Values shorter than 8 bytes are
/// left alone (they would match ordinary text), and so is a copy inside a
/// longer word: a value taken for a secret in error (`nextBraceIsClass` in
/// minified code) must not take every identifier holding it along.
pub fn redact_copies(
    original: &[u8],
    mut out: Vec<u8>,
    findings: &[Finding],
    engine: &ContentEngine,
) -> Vec<u8> {
    for f in findings {
        let (s, e) = (f.start as usize, f.end as usize);
        let Some(value) = original.get(s..e) else {
            continue;
        };
        if value.len() < 8 {
            continue;
        }
        let marker = [MARKER.as_bytes(), engine.rule_id(f.rule).as_bytes()].concat();
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut at = 0;
        while let Some(pos) = out[at..].windows(value.len()).position(|w| w == value) {
            let start = at + pos;
            let end = start + value.len();
            let inside = (start > 0 && word(out[start - 1]) && word(value[0]))
                || (out.get(end).is_some_and(|&b| word(b)) && word(value[value.len() - 1]));
            if inside {
                at = start + 1;
                continue;
            }
            out.splice(start..end, marker.iter().copied());
            at = start + marker.len();
        }
    }
    out
}

/// `content` as the sandbox reads it: every flagged value, and every
/// other copy of it, replaced by its marker.
pub fn redacted(content: &[u8], findings: &[Finding], engine: &ContentEngine) -> Vec<u8> {
    redact_copies(content, apply(content, findings, engine), findings, engine)
}

/// What to do with a file the scan wants redacted, decided on its content
/// as it is now (it is read again: the copy and the rules must agree).
#[derive(Debug)]
pub enum Outcome {
    Redact(Redaction),
    /// Hide after all (mostly secrets now, not UTF-8, or too large).
    Hide(String),
    /// No secret any more.
    Clean,
}

pub fn prepare(path: &Path, rules: &Rules) -> Result<Outcome> {
    // Another program may remove or lock up the file meanwhile (nothing of
    // the sandbox runs yet): gone, there is nothing to show; unreadable,
    // it is hidden.
    // Never through a link, on the way either: the scan found a regular
    // file at this canonical path; a directory on the way swapped for a
    // link since (by a sandbox writing the project) would redact, and
    // show, a file out of it.
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let mut file = match crate::host::open_no_links(path, flags).map(std::fs::File::from) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Clean),
        Err(e) => {
            return Ok(Outcome::Hide(format!(
                "cannot be read since the scan ({})",
                crate::error::os_text(&e)
            )));
        }
    };
    let meta = file.metadata().map_err(|e| Error::io("read", path, e))?;
    if !meta.is_file() || meta.len() > MAX_FILE_SIZE {
        return Ok(Outcome::Hide("changed since the scan".into()));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    (&mut file)
        .take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("read", path, e))?;
    if buf.len() as u64 > MAX_FILE_SIZE || buf[..buf.len().min(8192)].contains(&0) {
        return Ok(Outcome::Hide("changed since the scan".into()));
    }
    let mut scan = rules.content.scan(&buf)?;
    if super::installed_package(path) {
        scan = scan.formats_only(&rules.content);
    }
    if scan.findings.is_empty() {
        return Ok(Outcome::Clean);
    }
    let (action, why) = classify(rules, None, &scan);
    if action == Action::Hide {
        return Ok(Outcome::Hide(why));
    }
    let Ok(content) = String::from_utf8(redacted(&buf, &scan.findings, &rules.content)) else {
        return Ok(Outcome::Hide(
            "secret in a file that is not UTF-8 text".into(),
        ));
    };
    let ids = rules.content.rule_ids(&scan.findings);
    Ok(Outcome::Redact(Redaction {
        path: path.to_path_buf(),
        content,
        mode: meta.permissions().mode() & 0o777,
        rules: ids,
    }))
}

/// Most bytes of redacted copies one run carries (they travel in the plan).
pub const MAX_TOTAL: usize = 32 << 20;

/// Turn the scan's redact verdicts into copies; files that cannot be
/// redacted are hidden instead (never left as they are).
pub fn prepare_all(flagged: &mut Vec<Flagged>, rules: &Rules) -> Result<Vec<Redaction>> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for f in flagged.iter_mut().filter(|f| f.action == Action::Redact) {
        match prepare(&f.path, rules)? {
            Outcome::Redact(r) if total + r.content.len() <= MAX_TOTAL => {
                total += r.content.len();
                out.push(r);
            }
            Outcome::Redact(_) => {
                f.action = Action::Hide;
                f.reason = "redacted copies exceed 32 MiB in total".into();
            }
            Outcome::Hide(why) => {
                f.action = Action::Hide;
                f.reason = why;
            }
            // Clean now: the sandbox may see it as it is.
            Outcome::Clean => f.hits.clear(),
        }
    }
    flagged.retain(|f| !f.hits.is_empty());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::content_rules;

    #[test]
    fn replaces_only_the_values() {
        let e = ContentEngine::new(content_rules::builtin()).unwrap();
        let gh = ["gh", "p_", &"Zx9Yw8Vu7Ts6".repeat(3)].concat();
        let text = format!("#!/bin/sh\nset -eu\nexport GH={gh}\necho done\n");
        let scan = e.scan(text.as_bytes()).unwrap();
        let out = String::from_utf8(apply(text.as_bytes(), &scan.findings, &e)).unwrap();
        assert_eq!(
            out,
            "#!/bin/sh\nset -eu\nexport GH=guard-redacted:github-token\necho done\n"
        );
    }

    /// A file another program removed after the scan is no reason to fail
    /// the run (tests planting in /etc did that to each other); one that
    /// cannot be read any more is hidden.
    #[test]
    fn a_file_gone_or_unreadable_since_the_scan() {
        let rules = crate::secrets::Rules::new(
            &crate::profile::Secrets::default(),
            "t",
            Path::new("/h"),
            Path::new("/p"),
        )
        .unwrap();
        let gone = std::env::temp_dir().join(format!("guard-redact-gone-{}", std::process::id()));
        assert!(matches!(prepare(&gone, &rules).unwrap(), Outcome::Clean));
        let dir = std::env::temp_dir().join(format!("guard-redact-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).unwrap();
        // O_NOFOLLOW refuses a link put where the file was: hidden.
        let out = prepare(&dir.join("link"), &rules).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(out, Outcome::Hide(_)), "{out:?}");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::secrets::content_rules;
    use proptest::prelude::*;

    fn engine() -> ContentEngine {
        ContentEngine::new(content_rules::builtin()).unwrap()
    }

    proptest! {
        /// Scanning arbitrary bytes never panics, and redaction removes
        /// every byte range the scanner flagged as a secret value.
        #[test]
        fn redaction_removes_every_flagged_value(
            data in proptest::collection::vec(any::<u8>(), 0..800),
        ) {
            let e = engine();
            let scan = e.scan(&data).unwrap();
            let out = redact_copies(&data, apply(&data, &scan.findings, &e), &scan.findings, &e);
            for f in &scan.findings {
                let value = &data[f.start as usize..f.end as usize];
                if value.len() >= 8 {
                    prop_assert!(!out.windows(value.len()).any(|w| w == value));
                }
            }
        }

        /// A token embedded in arbitrary text is found and redacted.
        #[test]
        fn embedded_tokens_are_redacted(
            before in "[ -~\n]{0,80}",
            after in "[ -~\n]{0,80}",
            body in "[A-Za-z0-9]{36}",
        ) {
            let token = format!("{}{}{}", "gh", "p_", body);
            let text = format!("{before}\nconst t = \"{token}\";\n{after}");
            let e = engine();
            let scan = e.scan(text.as_bytes()).unwrap();
            let out = apply(text.as_bytes(), &scan.findings, &e);
            prop_assert!(!String::from_utf8_lossy(&out).contains(&token));
        }
    }
}

#[cfg(test)]
mod copies {
    use super::*;
    use crate::secrets::content_rules;

    #[test]
    fn the_name_a_value_is_assigned_to() {
        let name = |line: &str, value: &str| {
            let at = line.find(value).unwrap();
            assigned_name(line.as_bytes(), at).map(str::to_string)
        };
        assert_eq!(
            name("X=1\nexport API_KEY=abc", "abc").as_deref(),
            Some("API_KEY")
        );
        assert_eq!(
            name("  \"primaryApiKey\": \"abc\",", "abc").as_deref(),
            Some("primaryApiKey")
        );
        assert_eq!(name("token: 'abc'", "abc").as_deref(), Some("token"));
        assert_eq!(name("key = \"abc\"", "abc").as_deref(), Some("key"));
        assert_eq!(name("[\"abc\"]", "abc"), None);
        assert_eq!(name("abc", "abc"), None);
        assert_eq!(name("curl -H abc", "abc"), None);
    }

    #[test]
    fn every_copy_of_a_flagged_value_is_redacted() {
        let e = ContentEngine::new(content_rules::builtin()).unwrap();
        let pw = ["Zq8vL2mN", "4pQ6rS8t"].concat();
        // A copy inside a longer word is another word (an identifier
        // holding a value flagged in error), left alone.
        let text = format!(
            "DB_PASSWORD={pw}\necho {pw} | docker login --password-stdin\nx{pw}y = call(\"{pw}\")\n"
        );
        let scan = e.scan(text.as_bytes()).unwrap();
        assert!(!scan.findings.is_empty());
        let out = redact_copies(
            text.as_bytes(),
            apply(text.as_bytes(), &scan.findings, &e),
            &scan.findings,
            &e,
        );
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.matches(&pw).count(), 1, "{out}");
        assert!(
            out.contains(&format!("x{pw}y = call(\"guard-redacted:")),
            "{out}"
        );
        assert!(out.contains("docker login"), "{out}");
    }
}
