//! The supervisor's egress service: takes the listeners pid 1 created inside
//! the sandbox's network namespace and serves them on one thread with a
//! single-threaded tokio runtime, dialing out from the host's namespace.
//!
//! Threat model: the service must outlive neither the supervisor nor its
//! bounds. It runs in the supervisor process (which exits with the command),
//! holds at most [`MAX_CONNECTIONS`] client connections at once (further
//! connections wait in the listen backlog), and survives running out of
//! descriptors by pausing its accept loops instead of spinning.

use super::allowlist::normalize_name;
use super::dns::{self, FakeAddrs, Outcome};
use super::event::{self, Blocked};
use super::proxy::{self, HEAD_TIMEOUT, Shared};
use super::{ListenerKind, NetPolicy, sys};
use crate::error::{Error, Result};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

/// Client connections served at once, over all listeners.
const MAX_CONNECTIONS: usize = 2048;

/// Handle kept by the supervisor while the command runs.
pub struct Egress {
    shared: Arc<Shared>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Egress {
    /// Refused destinations, for the exit summary.
    pub fn blocked(&self) -> Vec<String> {
        self.shared.blocked.summary()
    }

    /// The command has exited: end open relays so each logs its event, and
    /// wait for that: as long as a relay may still forward what a client
    /// sent just before it exited, and a little more for the events.
    /// Nothing in flight, no wait: the relays end at once.
    pub fn stop(&self) {
        let deadline = super::relay::DRAIN_AT_EXIT + Duration::from_millis(300);
        // send_replace: `send` does nothing while no task has subscribed yet
        // (a command that exits at once), and the wait below would time out.
        self.shared.stop.send_replace(true);
        let _ = self.done.recv_timeout(deadline);
        self.shared.blocked.log_not_logged();
    }
}

/// Start serving `listeners` (received from pid 1) on a background thread.
pub fn start(policy: &NetPolicy, listeners: Vec<(ListenerKind, OwnedFd)>) -> Result<Egress> {
    sys::raise_nofile();
    let shared = Arc::new(Shared {
        allow: policy.allow.clone(),
        fake: FakeAddrs::default(),
        blocked: Blocked::default(),
        stop: tokio::sync::watch::Sender::new(false),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .thread_name("guard-egress")
        .build()
        .map_err(|e| Error::sys("start the egress proxy runtime", e))?;
    let sh = shared.clone();
    let (tx, done) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("guard-egress".into())
        .spawn(move || {
            rt.block_on(serve(sh, listeners));
            let _ = tx.send(());
        })
        .map_err(|e| Error::sys("start the egress proxy thread", e))?;
    Ok(Egress { shared, done })
}

async fn serve(sh: Arc<Shared>, listeners: Vec<(ListenerKind, OwnedFd)>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut tasks = Vec::new();
    for (kind, fd) in listeners {
        let sh = sh.clone();
        let limit = limit.clone();
        match kind {
            ListenerKind::DnsUdp => {
                let std = std::net::UdpSocket::from(fd);
                match std
                    .set_nonblocking(true)
                    .and_then(|_| UdpSocket::from_std(std))
                {
                    Ok(s) => tasks.push(tokio::spawn(dns_udp(sh, s))),
                    Err(e) => tracing::error!("guard: cannot serve DNS over UDP: {e}"),
                }
            }
            tcp_kind => {
                let std = std::net::TcpListener::from(fd);
                match std
                    .set_nonblocking(true)
                    .and_then(|_| TcpListener::from_std(std))
                {
                    Ok(l) => tasks.push(tokio::spawn(accept_loop(sh, l, tcp_kind, limit))),
                    Err(e) => tracing::error!("guard: cannot serve {tcp_kind:?}: {e}"),
                }
            }
        }
    }
    // Serve until guard exits, then let open connections finish their
    // events: every connection holds a permit, so all permits back means
    // all connections are done.
    sh.stopped().await;
    for t in &tasks {
        t.abort();
    }
    let _ = limit.acquire_many(MAX_CONNECTIONS as u32).await;
}

async fn accept_loop(sh: Arc<Shared>, l: TcpListener, kind: ListenerKind, limit: Arc<Semaphore>) {
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        match l.accept().await {
            Ok((s, _)) => {
                let sh = sh.clone();
                tokio::spawn(async move {
                    handle(&sh, s, kind).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning.
                tracing::warn!("guard: egress accept failed: {e}");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(sh: &Shared, s: TcpStream, kind: ListenerKind) {
    match kind {
        ListenerKind::HttpProxy => super::forward::http_proxy(sh, s).await,
        ListenerKind::Socks5 => proxy::socks(sh, s).await,
        ListenerKind::Transparent(port) => proxy::transparent(sh, s, port).await,
        ListenerKind::DnsTcp => dns_tcp(sh, s).await,
        ListenerKind::DnsUdp => {}
    }
}

/// The fake address for an allowlisted name; `None` for any other name.
fn lookup(sh: &Shared, name: &str) -> Option<Result<Ipv4Addr, dns::TableFull>> {
    let name = normalize_name(name).ok()?;
    sh.allow.names(&name).then(|| sh.fake.addr_for(&name))
}

fn answer(sh: &Shared, q: &[u8]) -> Option<Vec<u8>> {
    let (resp, outcome) = dns::answer(q, |n| lookup(sh, n))?;
    let qtype = dns::parse_query(q).ok().flatten().map_or(0, |q| q.qtype);
    match outcome {
        Outcome::Answered(n, a) => event::dns(&sh.blocked, &n, qtype, &format!("answered {a}")),
        Outcome::NoData(n, _) => {
            event::dns(&sh.blocked, &n, qtype, "answered (no record of this type)")
        }
        Outcome::Refused(n) => event::dns(&sh.blocked, &n, qtype, "refused (not allowlisted)"),
        Outcome::Error(rcode) => event::dns(&sh.blocked, "-", qtype, &format!("error {rcode:?}")),
    }
    Some(resp)
}

async fn dns_udp(sh: Arc<Shared>, s: UdpSocket) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = s.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if let Some(resp) = answer(&sh, &buf[..n]) {
            let _ = s.send_to(&resp, peer).await;
        }
    }
}

/// DNS over TCP: 2-byte length, message; several per connection.
async fn dns_tcp(sh: &Shared, mut s: TcpStream) {
    let mut buf = vec![0u8; 512];
    loop {
        let one = async {
            let len = usize::from(s.read_u16().await?);
            buf.resize(len, 0);
            s.read_exact(&mut buf).await?;
            std::io::Result::Ok(())
        };
        match tokio::time::timeout(HEAD_TIMEOUT, one).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        let Some(resp) = answer(sh, &buf) else {
            return;
        };
        let mut out = (resp.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&resp);
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}
