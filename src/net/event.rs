//! One structured event per decision (target `audit`, kind `net`): via, host,
//! port, decision, reason, bytes each way, duration. `--log FILE` writes
//! them as JSON lines; `-v` shows them on stderr. Refused destinations are
//! also counted for the summary printed when the command exits.
//!
//! Threat model: every event is a line in the session log on the host's
//! disk, and the sandbox decides how many there are. DNS answers and
//! refusals cost it one datagram or one refused request each (a flood wrote
//! ~6 MB/s, without end), allowed requests one round trip to an allowed
//! host. Past [`LOGGED_PER_KIND`] events of a kind they are counted instead
//! of written, and the log says how many were not written: allowed ones
//! with their bytes, per destination. The first refusal of each destination
//! (up to [`MAX_BLOCKED`] of them) is always written.

use super::decide::Refusal;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Most distinct refused destinations remembered for the summary.
const MAX_BLOCKED: usize = 256;
/// DNS, refusal and allowed events written per session (a few MB each).
pub const LOGGED_PER_KIND: u64 = 10_000;

pub struct Event {
    via: &'static str,
    host: String,
    port: u16,
    start: Instant,
}

impl Event {
    pub fn new(via: &'static str, host: impl ToString, port: u16) -> Event {
        Event {
            via,
            host: host.to_string(),
            port,
            start: Instant::now(),
        }
    }

    fn ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    pub fn allowed(
        &self,
        blocked: &Blocked,
        rule: &str,
        addr: SocketAddr,
        sent: u64,
        received: u64,
    ) {
        if !blocked.allowed.admit("allowed") {
            blocked.unlogged_allowed(&format!("{}:{}", self.host, self.port), sent, received);
            return;
        }
        tracing::info!(
            target: crate::audit::TARGET,
            kind = "net",
            via = self.via,
            host = %self.host,
            port = self.port,
            decision = "allow",
            reason = "allowlisted",
            rule,
            addr = %addr,
            bytes_sent = sent,
            bytes_received = received,
            duration_ms = self.ms(),
            "allowed {}:{}",
            self.host,
            self.port
        );
    }

    pub fn refused(&self, blocked: &Blocked, r: &Refusal, sent: u64, received: u64) {
        // A destination refused for the first time is written even past
        // the quota: a flood to decoys must not hide the one that matters.
        let new = blocked.note(&r.host, r.port, r.why_tag());
        if !new && !blocked.refusals.admit("refusal") {
            return;
        }
        tracing::info!(
            target: crate::audit::TARGET,
            kind = "net",
            via = self.via,
            host = %r.host,
            port = r.port,
            decision = "refuse",
            reason = %r.reason(),
            why = r.why_tag(),
            bytes_sent = sent,
            bytes_received = received,
            duration_ms = self.ms(),
            "refused {}:{}",
            r.host,
            r.port
        );
    }
}

/// DNS decisions (no bytes leave; logged so an audit can show that).
pub fn dns(blocked: &Blocked, name: &str, qtype: u16, answer: &str) {
    if !blocked.dns.admit("dns") {
        return;
    }
    tracing::info!(
        target: crate::audit::TARGET,
            kind = "net",
        via = "dns",
        host = %name,
        qtype,
        decision = answer,
        upstream = false,
        "dns {name} {answer}"
    );
}

/// Events of one kind written so far; past [`LOGGED_PER_KIND`], counted.
#[derive(Default)]
struct Quota(AtomicU64);

impl Quota {
    /// May the next event of this kind be written? Past the quota, one
    /// event says so each time the count not written doubles (a few dozen
    /// lines however long the flood).
    fn admit(&self, what: &'static str) -> bool {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let over = n.saturating_sub(LOGGED_PER_KIND - 1);
        if over == 0 {
            return true;
        }
        if over.is_power_of_two() {
            not_logged(what, over);
        }
        false
    }

    fn not_logged(&self) -> u64 {
        self.0
            .load(Ordering::Relaxed)
            .saturating_sub(LOGGED_PER_KIND)
    }
}

fn not_logged(what: &'static str, count: u64) {
    tracing::info!(
        target: crate::audit::TARGET,
        kind = "net",
        event = "not-logged",
        what,
        count,
        limit = LOGGED_PER_KIND,
        "{count} {what} events not logged (more than {LOGGED_PER_KIND} in this session)"
    );
}

/// Refused destinations, for the exit summary, and what the log holds.
#[derive(Default)]
pub struct Blocked {
    seen: Mutex<BTreeMap<String, (u64, &'static str)>>,
    dns: Quota,
    refusals: Quota,
    allowed: Quota,
    /// Allowed connections not written, by destination (at most
    /// [`MAX_BLOCKED`], the rest under "-"): count, bytes sent, received.
    unlogged: Mutex<BTreeMap<String, [u64; 3]>>,
}

impl Blocked {
    /// Count a refusal; `true` if its destination is newly remembered.
    fn note(&self, host: &str, port: u16, why: &'static str) -> bool {
        let Ok(mut m) = self.seen.lock() else {
            return false;
        };
        let key = format!("{host}:{port}");
        if let Some(e) = m.get_mut(&key) {
            e.0 += 1;
        } else if m.len() < MAX_BLOCKED {
            m.insert(key, (1, why));
            return true;
        }
        false
    }

    fn unlogged_allowed(&self, dest: &str, sent: u64, received: u64) {
        let Ok(mut m) = self.unlogged.lock() else {
            return;
        };
        let key = if m.len() < MAX_BLOCKED || m.contains_key(dest) {
            dest
        } else {
            "-"
        };
        let e = m.entry(key.to_string()).or_default();
        e[0] += 1;
        e[1] += sent;
        e[2] += received;
    }

    /// At the end of the session: the exact counts of events not written,
    /// and the allowed traffic they stood for.
    pub fn log_not_logged(&self) {
        for (what, q) in [
            ("dns", &self.dns),
            ("refusal", &self.refusals),
            ("allowed", &self.allowed),
        ] {
            let n = q.not_logged();
            if n > 0 {
                not_logged(what, n);
            }
        }
        let Ok(m) = self.unlogged.lock() else {
            return;
        };
        for (dest, [count, sent, received]) in m.iter() {
            tracing::info!(
                target: crate::audit::TARGET,
                kind = "net",
                event = "not-logged",
                what = "allowed",
                destination = %dest,
                count,
                bytes_sent = sent,
                bytes_received = received,
                "{count} allowed connections or requests to {dest} not logged"
            );
        }
    }

    /// "host:port (why) ×N" lines.
    pub fn summary(&self) -> Vec<String> {
        let Ok(m) = self.seen.lock() else {
            return Vec::new();
        };
        m.iter()
            .map(|(k, (n, why))| {
                if *n > 1 {
                    format!("{k} ({why}, {n} times)")
                } else {
                    format!("{k} ({why})")
                }
            })
            .collect()
    }
}
