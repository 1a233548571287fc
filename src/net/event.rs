//! One structured event per decision (target `audit`, kind `net`): via, host,
//! port, decision, reason, bytes each way, duration. `--log FILE` writes
//! them as JSON lines; `-v` shows them on stderr. Refused destinations are
//! also counted for the summary printed when the command exits.

use super::decide::Refusal;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most distinct refused destinations remembered for the summary.
const MAX_BLOCKED: usize = 256;

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

    pub fn allowed(&self, rule: &str, addr: SocketAddr, sent: u64, received: u64) {
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
        blocked.note(&r.host, r.port, r.why_tag());
    }
}

/// DNS decisions (no bytes leave; logged so an audit can show that).
pub fn dns(name: &str, qtype: u16, answer: &str) {
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

/// Refused destinations, for the exit summary.
#[derive(Default)]
pub struct Blocked {
    seen: Mutex<BTreeMap<String, (u64, &'static str)>>,
}

impl Blocked {
    fn note(&self, host: &str, port: u16, why: &'static str) {
        let Ok(mut m) = self.seen.lock() else {
            return;
        };
        let key = format!("{host}:{port}");
        if let Some(e) = m.get_mut(&key) {
            e.0 += 1;
        } else if m.len() < MAX_BLOCKED {
            m.insert(key, (1, why));
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
