//! The audit trail: one structured event for everything guard decides,
//! written as JSON lines to the session log, and the exit summary.
//!
//! Events are ordinary `tracing` events with target [`TARGET`] and a `kind`
//! field (`session`, `fs`, `env`, `net`, `trust`, `degraded`). They never
//! carry a secret value: paths, rule ids, names, hosts, counts.

use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

pub const TARGET: &str = "audit";

/// Sessions kept in the state dir; older logs are deleted.
const KEEP_SESSIONS: usize = 50;

#[derive(Default)]
struct State {
    file: Option<std::io::BufWriter<std::fs::File>>,
    events: Vec<Map<String, Value>>,
    refusals_kept: usize,
    /// Refused connections beyond `REFUSALS_KEPT`: counted, in the log only.
    refusals_not_kept: u64,
    /// Refusals the network layer counted past its quota and never sent
    /// here (its `not-logged` events carry the count so far).
    refusals_not_logged: u64,
    /// Destinations (host:port) of the kept refusals. Past the cap, a
    /// destination not seen yet is still kept: otherwise 2,000 refusals to
    /// a decoy would hide the host the sandbox really tried from the
    /// summary. At most `REFUSALS_KEPT` of them, so at most twice
    /// `REFUSALS_KEPT` events in all.
    refused_to: std::collections::HashSet<String>,
}

/// Refused connections kept in memory for the exit summary. A sandbox can
/// make refused attempts without end; each kept event costs ~2.7 KB.
const REFUSALS_KEPT: usize = 2000;

/// Handle to the session's audit trail.
#[derive(Clone, Default)]
pub struct Session {
    state: Arc<Mutex<State>>,
    pub path: Option<PathBuf>,
}

struct AuditLayer {
    state: Arc<Mutex<State>>,
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
}

impl<S: tracing::Subscriber> Layer<S> for AuditLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut map = Map::new();
        map.insert(
            "ts".into(),
            Value::String(timestamp(std::time::SystemTime::now())),
        );
        event.record(&mut JsonVisitor(&mut map));
        if let Ok(mut st) = self.state.lock() {
            // The network layer bounds what it sends here (`net::event`:
            // past a quota per kind, events are counted, not emitted).
            let net = map.get("kind").and_then(Value::as_str) == Some("net");
            if let Some(f) = st.file.as_mut() {
                let _ = serde_json::to_writer(&mut *f, &map);
                let _ = f.write_all(b"\n");
            }
            // Kept in memory for the exit summary only. Allowed connections,
            // requests and DNS answers (one event each, unbounded over a
            // session) are not in the summary; keeping them grew the
            // supervisor by ~2.7 KB per request.
            let refused =
                map.get("decision").and_then(Value::as_str) == Some("refuse") || dns_refusal(&map);
            if net
                && map.get("event").and_then(Value::as_str) == Some("not-logged")
                && map.get("what").and_then(Value::as_str) == Some("refusal")
                && let Some(n) = map.get("count").and_then(Value::as_u64)
            {
                st.refusals_not_logged = st.refusals_not_logged.max(n);
            }
            if net && refused {
                let to = format!(
                    "{}:{}",
                    map.get("host").and_then(Value::as_str).unwrap_or(""),
                    map.get("port").and_then(Value::as_u64).unwrap_or(0)
                );
                let new = !st.refused_to.contains(&to) && st.refused_to.len() < REFUSALS_KEPT;
                if st.refusals_kept >= REFUSALS_KEPT && !new {
                    st.refusals_not_kept += 1;
                    return;
                }
                st.refusals_kept += 1;
                st.refused_to.insert(to);
            }
            if !net || refused {
                st.events.push(map);
            }
        }
    }
}

/// Install logging: human-readable warnings on stderr (more with -v) and,
/// when `log` is given, the audit trail to that file. A log the user asked
/// for (`required`, `--log FILE`) that cannot be written is an error; the
/// default session log only earns a warning.
pub fn init(verbose: u8, log: Option<PathBuf>, required: bool) -> crate::error::Result<Session> {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let mut state = State::default();
    let mut path = None;
    if let Some(p) = log {
        match open_log(&p) {
            Ok(f) => {
                state.file = Some(std::io::BufWriter::new(f));
                path = Some(p);
            }
            Err(e) if required => {
                return Err(crate::error::Error::usage_hint(
                    format!(
                        "--log {}: cannot write the audit log there: {e}",
                        p.display()
                    ),
                    "give --log the path of a file you can write (it is created, or appended to)",
                ));
            }
            Err(e) => eprintln!(
                "guard: warning: cannot write the session log {}: {e}",
                p.display()
            ),
        }
    }
    let state = Arc::new(Mutex::new(state));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_filter(tracing_subscriber::filter::LevelFilter::from_level(level));
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(AuditLayer {
            state: Arc::clone(&state),
        })
        .try_init();
    Ok(Session { state, path })
}

/// Open (create, or append to) a log file. Never waits: a FIFO nobody
/// reads is an error rather than a hang.
fn open_log(p: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => "it is a FIFO that no process reads".to_string(),
            _ => crate::error::os_text(&e),
        })?;
    let meta = f.metadata().map_err(|e| crate::error::os_text(&e))?;
    if meta.is_dir() {
        return Err("it is a directory".into());
    }
    // Writes block again, like those to any log (a pipe's reader may be slow).
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no memory is passed.
    unsafe {
        use std::os::fd::AsRawFd;
        let fd = f.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(f)
}

impl Session {
    /// The events the exit summary reads: all but allowed network traffic
    /// and DNS answers, which are only in the log file.
    pub fn events(&self) -> Vec<Map<String, Value>> {
        self.state
            .lock()
            .map(|s| {
                let mut events = s.events.clone();
                if s.refusals_not_kept > 0 {
                    let mut note = Map::new();
                    note.insert("kind".into(), Value::from("note"));
                    note.insert(
                        "text".into(),
                        Value::from(format!(
                            "{} more refused connection(s) are in the log only",
                            s.refusals_not_kept
                        )),
                    );
                    events.push(note);
                }
                if s.refusals_not_logged > 0 {
                    let mut note = Map::new();
                    note.insert("kind".into(), Value::from("note"));
                    note.insert(
                        "text".into(),
                        Value::from(format!(
                            "{} more refused connection(s) were counted, not logged (past the session's quota)",
                            s.refusals_not_logged
                        )),
                    );
                    events.push(note);
                }
                events
            })
            .unwrap_or_default()
    }

    pub fn flush(&self) {
        if let Ok(mut st) = self.state.lock()
            && let Some(f) = st.file.as_mut()
        {
            let _ = f.flush();
        }
    }
}

/// Default log file for a new session: $XDG_STATE_HOME/guard/sessions/
/// TIMESTAMP-PID.jsonl. Prunes old sessions.
pub fn new_session_path() -> Option<PathBuf> {
    let dir = crate::host::state_dir()?.join("sessions");
    std::fs::create_dir_all(&dir).ok()?;
    let stamp = timestamp(std::time::SystemTime::now())
        .replace([':', '-'], "")
        .replace('T', "-");
    let stamp = stamp.split('.').next().unwrap_or("session").to_string();
    Some(dir.join(format!("{stamp}-{}.jsonl", std::process::id())))
}

pub fn sessions_dir() -> Option<PathBuf> {
    crate::host::state_dir().map(|d| d.join("sessions"))
}

/// Session logs, oldest first.
pub fn list_sessions() -> Vec<PathBuf> {
    let Some(dir) = sessions_dir() else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    // By the second in the name (TIMESTAMP-PID), then by when the file was
    // made: two sessions started in one second are not in pid order (pid
    // 10002 sorts before 9998 as text, and pids wrap).
    v.sort_by_cached_key(|p| {
        let stamp = p
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.rsplit_once('-'))
            .map(|(stamp, _)| stamp.to_string());
        let made = std::fs::metadata(p).and_then(|m| m.created()).ok();
        (stamp, made, p.clone())
    });
    v
}

/// Delete the oldest session logs beyond the last `KEEP_SESSIONS`. Called
/// by `guard run` once the setup process is starting, off the start-up's
/// critical path.
pub fn prune_sessions() {
    if let Some(dir) = sessions_dir() {
        prune(&dir);
    }
}

fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    // The current session's log exists already: it is among those kept.
    if logs.len() <= KEEP_SESSIONS {
        return;
    }
    logs.sort();
    for old in &logs[..logs.len() - KEEP_SESSIONS] {
        let _ = std::fs::remove_file(old);
    }
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn timestamp(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn s<'a>(e: &'a Map<String, Value>, k: &str) -> &'a str {
    e.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A field of an event for the terminal: paths and names come from the
/// sandbox's side (a file name an earlier session chose), so control
/// characters are escaped rather than written as escape sequences.
fn shown(e: &Map<String, Value>, k: &str) -> String {
    crate::host::printable(Path::new(s(e, k)))
}

/// The exit summary: what the sandbox was stopped from doing, and how to
/// allow it. `color`: ANSI bold/red/yellow (only on a terminal, never with
/// NO_COLOR).
/// How a user allows `host` (a name, with `:port` unless 443/80).
fn allow_hint(host: &str) -> String {
    format!("allow with: --allow-host {host}   or in a profile: [network] allow = [\"{host}\"]")
}

/// `, N times` when more than once.
fn times(n: usize) -> String {
    if n > 1 {
        format!(", {n} times")
    } else {
        String::new()
    }
}

/// A name guard's DNS server refused (not allowlisted).
fn dns_refusal(e: &Map<String, Value>) -> bool {
    s(e, "kind") == "net" && s(e, "via") == "dns" && s(e, "decision").starts_with("refused")
}

pub fn summary(events: &[Map<String, Value>], log: Option<&Path>, color: bool) -> String {
    let (bold, red, yellow, reset) = if color {
        ("\x1b[1m", "\x1b[31m", "\x1b[33m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    let mut out = String::new();
    // (host:port, count, host, why)
    let mut refused: Vec<(String, usize, String, String)> = Vec::new();
    for e in events
        .iter()
        .filter(|e| s(e, "kind") == "net" && s(e, "decision") == "refuse")
    {
        let host = shown(e, "host");
        let port = e
            .get("port")
            .and_then(Value::as_u64)
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        let key = format!("{host}{port}");
        // The rule that allows it: the name, plus the port unless 443/80.
        let rule = match e.get("port").and_then(Value::as_u64) {
            Some(p) if p != 443 && p != 80 => format!("{host}:{p}"),
            _ => host,
        };
        match refused.iter_mut().find(|r| r.0 == key) {
            Some(r) => r.1 += 1,
            None => refused.push((key, 1, rule, shown(e, "why"))),
        }
    }
    // Names the DNS server refused (programs that ignore proxy variables,
    // in transparent mode: `fetch()` in Node, ssh): their error says only
    // that the name does not resolve.
    let mut names: Vec<(String, usize)> = Vec::new();
    for e in events.iter().filter(|e| dns_refusal(e)) {
        let host = shown(e, "host");
        match names.iter_mut().find(|n| n.0 == host) {
            Some(n) => n.1 += 1,
            None => names.push((host, 1)),
        }
    }
    if !names.is_empty() {
        out.push_str(&format!(
            "  {red}network{reset}: refused to resolve {} name(s) (programs that do not use the proxy)\n",
            names.len()
        ));
        for (host, n) in &names {
            out.push_str(&format!(
                "    {host} (not-allowed{})  {}\n",
                times(*n),
                allow_hint(host)
            ));
        }
    }
    if !refused.is_empty() {
        let total: usize = refused.iter().map(|r| r.1).sum();
        out.push_str(&format!(
            "  {red}network{reset}: refused {total} connection(s) to {} destination(s)\n",
            refused.len()
        ));
        for (key, n, host, why) in &refused {
            let why = if why.is_empty() {
                "refused"
            } else {
                why.as_str()
            };
            let times = times(*n);
            // Only a destination the allowlist refused can be allowed; an
            // allowed one that failed (no DNS, no route) needs no new rule.
            let fix = match why {
                "not-allowed" | "port-not-allowed" | "refused" => allow_hint(host),
                "ip-literal" | "non-public-address" => format!(
                    "needs a profile rule: [network] allow = [{{ host = \"{host}\", private = true }}]"
                ),
                "resolve-failed" | "connect-failed" | "connect-timeout" => {
                    "allowed, but the destination could not be reached from this machine"
                        .to_string()
                }
                _ => "refused by guard's checks; no rule allows this".to_string(),
            };
            out.push_str(&format!("    {key} ({why}{times})  {fix}\n"));
        }
    }
    for e in events.iter().filter(|e| s(e, "kind") == "note") {
        out.push_str(&format!("    {}\n", shown(e, "text")));
    }
    let files: Vec<&Map<String, Value>> = events.iter().filter(|e| s(e, "kind") == "fs").collect();
    if !files.is_empty() {
        let hidden = files.iter().filter(|e| s(e, "action") == "hidden").count();
        let redacted = files
            .iter()
            .filter(|e| s(e, "action") == "redacted")
            .count();
        let quarantined = files
            .iter()
            .filter(|e| s(e, "action") == "quarantined")
            .count();
        let restored = files
            .iter()
            .filter(|e| s(e, "action") == "restored")
            .count();
        let history = files
            .iter()
            .filter(|e| s(e, "action") == "sanitized")
            .count();
        let covered = files.iter().filter(|e| s(e, "action") == "covered").count();
        let mut parts = vec![format!("{hidden} hidden"), format!("{redacted} redacted")];
        if history > 0 {
            parts.push(format!(
                "git history sanitized in {history} repositor{}",
                if history == 1 { "y" } else { "ies" }
            ));
        }
        if quarantined > 0 {
            parts.push(format!(
                "{red}{quarantined} protected path(s) created and moved aside{reset}"
            ));
        }
        if restored > 0 {
            parts.push(format!(
                "{red}{restored} protected path(s) changed and restored{reset}"
            ));
        }
        if covered > 0 {
            parts.push(format!(
                "{covered} replaced on the host during the run and covered again"
            ));
        }
        let mut paths: Vec<String> = Vec::new();
        for e in &files {
            let p = shown(e, "path");
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        let more = paths.len().saturating_sub(5);
        let first = &paths[..paths.len().min(5)];
        out.push_str(&format!(
            "  {yellow}files{reset}: {}: {}{}\n",
            parts.join(", "),
            first.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    // Variables the profile simply does not pass are routine (they are in
    // the log); the summary names the ones removed because they hold secrets.
    let env: Vec<String> = events
        .iter()
        .filter(|e| {
            s(e, "kind") == "env" && s(e, "action") == "removed" && s(e, "reason") == "secret"
        })
        .map(|e| shown(e, "name"))
        .collect();
    if !env.is_empty() {
        let first: Vec<&str> = env.iter().take(10).map(String::as_str).collect();
        let more = env.len() - first.len();
        out.push_str(&format!(
            "  {yellow}env{reset}: {} secret variable(s) removed: {}{}\n",
            env.len(),
            first.join(" "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    for e in events.iter().filter(|e| s(e, "kind") == "degraded") {
        out.push_str(&format!("  {red}degraded{reset}: {}\n", shown(e, "detail")));
    }
    if out.is_empty() {
        return String::new();
    }
    let mut head = format!("{bold}guard: session summary{reset}\n");
    head.push_str(&out);
    if let Some(p) = log {
        head.push_str(&format!("  log: {}\n", p.display()));
    }
    head
}

fn read_events(path: &Path) -> crate::Result<Vec<Map<String, Value>>> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io("read", path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Map<String, Value>>(l).ok())
        .collect())
}

fn last_session() -> crate::Result<PathBuf> {
    list_sessions().pop().ok_or_else(|| {
        crate::Error::usage_hint(
            "no guard session has been recorded yet",
            "run something with `guard run -- COMMAND` first",
        )
    })
}

/// The kinds of event a session log holds (`guard log --kind`).
const LOG_KINDS: &[&str] = &["net", "fs", "env", "session", "trust", "degraded"];

/// `guard log`: a past session's events, optionally one kind only.
pub fn show_log(args: &crate::cli::LogArgs) -> crate::Result<i32> {
    let path = match &args.session {
        None => last_session()?,
        Some(s) if Path::new(s).is_file() => PathBuf::from(s),
        Some(s) => list_sessions()
            .into_iter()
            .rev()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(s.as_str()))
            })
            .ok_or_else(|| {
                crate::Error::usage_hint(format!("no session matching {s:?}"), "guard log --last")
            })?,
    };
    if let Some(k) = args.kind.as_deref()
        && !LOG_KINDS.contains(&k)
    {
        return Err(crate::Error::usage_hint(
            format!("--kind {k:?}: no such kind of event"),
            format!("one of: {}", LOG_KINDS.join(", ")),
        ));
    }
    if !path.is_file() {
        return Err(crate::Error::usage_hint(
            format!("{}: not a session log file", path.display()),
            "guard log --last",
        ));
    }
    let events = read_events(&path)?;
    let keep = |e: &&Map<String, Value>| args.kind.as_deref().is_none_or(|k| s(e, "kind") == k);
    if args.json {
        for e in events.iter().filter(keep) {
            println!("{}", Value::Object(e.clone()));
        }
        return Ok(0);
    }
    println!("# {}", path.display());
    for e in events.iter().filter(keep) {
        let rest: Vec<String> = e
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "ts" | "kind"))
            // Paths and names come from the sandbox's side (a file name an
            // earlier session chose), as in the summary.
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={}", crate::host::printable(Path::new(s))),
                other => format!("{k}={other}"),
            })
            .collect();
        println!("{} {:<8} {}", s(e, "ts"), s(e, "kind"), rest.join(" "));
    }
    Ok(0)
}

/// `guard explain --suggest`: profile lines that would allow what the last
/// session refused. Printed for review; nothing is applied.
pub fn suggest() -> crate::Result<String> {
    let path = last_session()?;
    let events = read_events(&path)?;
    let mut hosts: Vec<String> = Vec::new();
    for e in events
        .iter()
        .filter(|e| s(e, "kind") == "net" && s(e, "decision") == "refuse")
        // Only what the allowlist refused: a rule would not fix the rest.
        .filter(|e| matches!(s(e, "why"), "not-allowed" | "port-not-allowed" | ""))
    {
        let host = s(e, "host");
        if host.is_empty() {
            continue;
        }
        let port = e.get("port").and_then(Value::as_u64);
        let rule = match port {
            Some(p) if p != 443 && p != 80 => format!("{host}:{p}"),
            _ => host.to_string(),
        };
        if !hosts.contains(&rule) {
            hosts.push(rule);
        }
    }
    let mut out = format!("# from {}\n", path.display());
    if hosts.is_empty() {
        out.push_str("# nothing was refused in that session\n");
        return Ok(out);
    }
    out.push_str("# review, then add to your profile (or pass --allow-host for one run):\n[network]\nallow = [\n");
    for h in &hosts {
        out.push_str(&format!("  \"{h}\",\n"));
    }
    out.push_str("]\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.123Z");
    }

    /// A `kind = "net"` event with these fields.
    fn net_event(fields: &[(&str, Value)]) -> Map<String, Value> {
        let mut e = Map::new();
        e.insert("kind".into(), "net".into());
        for (k, v) in fields {
            e.insert((*k).into(), v.clone());
        }
        e
    }

    #[test]
    fn summary_names_the_refused_host_and_the_allowing_flag() {
        let e = net_event(&[
            ("decision", "refuse".into()),
            ("host", "evil.example".into()),
            ("port", 443.into()),
        ]);
        let text = summary(&[e.clone(), e], None, false);
        assert!(
            text.contains("evil.example:443 (refused, 2 times)"),
            "{text}"
        );
        assert!(text.contains("--allow-host evil.example"), "{text}");
        assert!(!text.contains('\x1b'));
        assert!(summary(&[], None, true).is_empty());
    }

    /// A program that ignores the proxy learns only that the name does not
    /// resolve: the summary names it and how to allow it (review 32).
    #[test]
    fn summary_names_the_names_dns_refused() {
        let e = net_event(&[
            ("via", "dns".into()),
            ("host", "api.example.org".into()),
            ("decision", "refused (not allowlisted)".into()),
        ]);
        let answered = net_event(&[
            ("via", "dns".into()),
            ("host", "ok.example.org".into()),
            ("decision", "answered 127.0.0.2".into()),
        ]);
        let text = summary(&[e.clone(), e, answered], None, false);
        assert!(
            text.contains("refused to resolve 1 name(s)")
                && text.contains("api.example.org (not-allowed, 2 times)  allow with: --allow-host api.example.org"),
            "{text}"
        );
        assert!(!text.contains("ok.example.org"), "{text}");
    }
}
