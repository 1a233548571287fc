//! How scan results read: `guard scan` text and JSON, the rule list, and the
//! lines `guard explain` shows. Paths, rule ids, line numbers and
//! fingerprints only; never a secret value.

use super::history::History;
use super::{Action, Flagged, Rules, ScanReport, env_rules, path_rules};
use std::fmt::Write;
use std::path::Path;

/// `path` as the user thinks of it: relative to the project, `~/…` in
/// home, else absolute. Control characters are escaped: the name may have
/// been chosen by a sandbox to write escape sequences to the terminal.
pub fn display(path: &Path, project: &Path, home: &Path) -> String {
    use crate::host::printable;
    if let Ok(rel) = path.strip_prefix(project)
        && !rel.as_os_str().is_empty()
    {
        return printable(rel);
    }
    if let Ok(rel) = path.strip_prefix(home) {
        return format!("~/{}", printable(rel));
    }
    printable(path)
}

/// Repositories whose history holds secrets, and object files that could
/// not be checked.
pub fn history_lines(h: &History, project: &Path, home: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for s in &h.sanitized {
        out.push(format!(
            "history {}  {} object{} shown sanitized ({})",
            display(&s.objects, project, home),
            s.blobs,
            if s.blobs == 1 { "" } else { "s" },
            s.rules.join(", ")
        ));
    }
    for (p, why) in &h.unchecked {
        // Object files that could not be checked are hidden (`why` says).
        let readable = if why.ends_with("hidden inside") {
            ""
        } else {
            ": secrets committed there are readable"
        };
        out.push(format!(
            "unchecked {}  git history not checked ({why}){readable}",
            display(p, project, home)
        ));
    }
    out
}

/// One line per hit: `hide    .env  dotenv` or `redact  a.sh:3  rule  fp …`.
pub fn lines(flagged: &[Flagged], project: &Path, home: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in flagged {
        let mut p = display(&f.path, project, home);
        if f.dir {
            p.push('/');
        }
        match f.action {
            Action::Hide => {
                let mut ids: Vec<&str> = f.hits.iter().map(|h| h.rule.as_str()).collect();
                ids.dedup();
                out.push(format!("hide    {p}  {} ({})", ids.join(", "), f.reason));
            }
            Action::Redact => {
                for h in &f.hits {
                    let at = h.line.map(|l| format!(":{l}")).unwrap_or_default();
                    let fp = h
                        .fingerprint
                        .as_deref()
                        .map(|f| format!("  fp {f}"))
                        .unwrap_or_default();
                    out.push(format!("redact  {p}{at}  {}{fp}", h.rule));
                }
            }
        }
    }
    out
}

pub fn text(project: &Path, home: &Path, r: &ScanReport, history: &History) -> String {
    let mut s = String::new();
    for l in lines(&r.flagged, project, home) {
        let _ = writeln!(s, "{l}");
    }
    for l in history_lines(history, project, home) {
        let _ = writeln!(s, "{l}");
    }
    let hidden = r
        .flagged
        .iter()
        .filter(|f| f.action == Action::Hide)
        .count();
    let redacted = r.flagged.len() - hidden;
    let st = &r.stats;
    let _ = writeln!(
        s,
        "{hidden} hidden, {redacted} redacted; {} files ({} cached, {} read, {} binary, {} over 2 MiB, {} unreadable) in {} ms",
        st.files, st.cached, st.read, st.binary, st.large, st.errors, st.elapsed_ms
    );
    s
}

pub fn json(project: &Path, r: &ScanReport, history: &History) -> String {
    let unchecked: Vec<serde_json::Value> = history
        .unchecked
        .iter()
        .map(|(p, why)| serde_json::json!({ "path": p.to_string_lossy(), "reason": why }))
        .collect();
    let v = serde_json::json!({
        "project": project.to_string_lossy(),
        "flagged": r.flagged,
        "history": { "sanitized": history.sanitized, "unchecked": unchecked },
        "stats": r.stats,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// `guard scan --rules --json`: the content rules with, for each, a single
/// regex a grep tool can run that finds the same candidates (keywords
/// folded into the pattern), so benchmarks compare like with like.
pub fn rules_json(rules: &Rules) -> String {
    let list: Vec<serde_json::Value> = rules
        .content
        .rules()
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "description": r.description,
                "regex": r.pattern,
                "keywords": r.keywords,
                "grep": grep_equivalent(r),
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "content_rules": list })).unwrap_or_default()
}

fn grep_equivalent(r: &super::ContentRule) -> String {
    match r
        .pattern
        .strip_prefix(super::content_rules::ASSIGNMENT_NAME)
    {
        Some(rest) if !r.keywords.is_empty() => {
            let words: Vec<String> = r.keywords.iter().map(|k| regex::escape(k)).collect();
            format!(
                "(?-u)(?i:{})[A-Za-z0-9_.\\-]{{0,80}}{rest}",
                words.join("|")
            )
        }
        _ => format!("(?-u){}", r.pattern),
    }
}

/// `guard scan --rules`: every rule in force, as data.
pub fn rules(rules: &Rules) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "content rules (regex; keywords prefilter the lines it runs on):"
    );
    for r in rules.content.rules() {
        let _ = writeln!(
            s,
            "  {:<26} {}\n      regex: {}",
            r.id, r.description, r.pattern
        );
        if !r.keywords.is_empty() {
            let _ = writeln!(s, "      keywords: {}", r.keywords.join(" "));
        }
    }
    let _ = writeln!(s, "path rules (hide matching files and directories):");
    for r in rules.paths.rules() {
        let cond = match r.when {
            path_rules::When::Always => "",
            path_rules::When::IfSecretContent => " (only if its content holds a secret)",
            path_rules::When::UnlessCertificates => " (unless it holds only certificates)",
        };
        let _ = writeln!(
            s,
            "  {:<26} {}{cond}\n      globs: {}",
            r.id,
            r.description,
            r.globs.join(" ")
        );
        if !r.except.is_empty() {
            let _ = writeln!(s, "      except: {}", r.except.join(" "));
        }
    }
    let _ = writeln!(
        s,
        "environment rules (names; values are checked with the content rules):"
    );
    for r in env_rules::BUILTIN {
        if !rules.disabled.iter().any(|d| d == r.id) {
            let _ = writeln!(
                s,
                "  {:<26} {}: {}",
                r.id,
                r.description,
                r.patterns.join(" ")
            );
        }
    }
    let _ = writeln!(
        s,
        "  {:<26} agent sockets: {}",
        "env-agent-socket",
        env_rules::AGENT_SOCKETS.join(" ")
    );
    let _ = writeln!(s, "  {:<26} a value any content rule matches", "env-value");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Hit;
    use std::path::PathBuf;

    #[test]
    fn lines_name_paths_rules_and_lines_never_values() {
        let (p, h) = (Path::new("/home/u/app"), Path::new("/home/u"));
        let flagged = vec![
            Flagged {
                path: PathBuf::from("/home/u/app/.aws"),
                dir: true,
                action: Action::Hide,
                reason: "AWS".into(),
                hits: vec![Hit {
                    rule: "aws".into(),
                    line: None,
                    fingerprint: None,
                }],
            },
            Flagged {
                path: PathBuf::from("/home/u/.gitconfig"),
                dir: false,
                action: Action::Redact,
                reason: "mixed".into(),
                hits: vec![Hit {
                    rule: "github-token".into(),
                    line: Some(6),
                    fingerprint: Some("0a1b2c3d".into()),
                }],
            },
        ];
        assert_eq!(
            lines(&flagged, p, h),
            [
                "hide    .aws/  aws (AWS)",
                "redact  ~/.gitconfig:6  github-token  fp 0a1b2c3d"
            ]
        );
        assert_eq!(display(Path::new("/srv/x"), p, h), "/srv/x");
    }
}
