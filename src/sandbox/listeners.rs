//! The egress listeners, created by pid 1 inside the sandbox's network
//! namespace and handed to the supervisor (see `net`).
//!
//! Threat model: these sockets are the only way out of the namespace, so
//! only the supervisor may hold them: they are created close-on-exec, sent
//! over the control socket and closed here before anything runs, so the
//! command never inherits one (it could otherwise accept connections meant
//! for the proxy). They are bound before capabilities are dropped: ports
//! below 1024 (53, 80, 443) need CAP_NET_BIND_SERVICE, which pid 1 holds in
//! its own user namespace and nothing after it does, so the command cannot
//! bind them itself either (and SO_REUSEPORT is never set, so it cannot
//! share them).

use crate::error::{Error, Result};
use crate::net::{ListenerKind, ListenerSpec};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, bind, listen, socket,
};
use std::os::fd::{AsRawFd, OwnedFd};

/// Backlog of the TCP listeners: bursts of hundreds of connections (package
/// managers, tests) wait here while the supervisor accepts.
const BACKLOG: i32 = 4096;

pub fn create(specs: &[ListenerSpec]) -> Result<Vec<OwnedFd>> {
    specs.iter().map(create_one).collect()
}

fn create_one(spec: &ListenerSpec) -> Result<OwnedFd> {
    let what = || format!("create the egress listener {}", spec.describe());
    let ty = match spec.kind {
        ListenerKind::DnsUdp => SockType::Datagram,
        _ => SockType::Stream,
    };
    let fd = socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| Error::sys(what(), e))?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(spec.addr)).map_err(|e| Error::sys(what(), e))?;
    if ty == SockType::Stream {
        let backlog = Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN);
        listen(&fd, backlog).map_err(|e| Error::sys(what(), e))?;
    }
    Ok(fd)
}
