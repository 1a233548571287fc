//! The control socket between the supervisor and the sandbox's setup
//! processes: length-prefixed JSON frames over a unix stream socket.
//! Errors found inside travel here and are printed once, by the supervisor.
//!
//! One message carries descriptors: [`Report::Listeners`], sent by pid 1
//! with the egress listeners it created inside the sandbox's network
//! namespace attached as SCM_RIGHTS to the frame's first byte
//! ([`send_with_fds`]). The supervisor reads every frame with
//! [`recv_with_fds`], so descriptors can never be left unread in the socket.
//!
//! Threat model: only guard's own setup code may speak on this socket. It
//! is close-on-exec from the start of the setup process, and pid 1 drops it
//! once the command is started, so the command can neither forge reports nor
//! hand the supervisor sockets of its own; the supervisor also accepts
//! descriptors only in the one `Listeners` message, only the ones the plan
//! asked for, and closes any others. Frames are bounded ([`MAX_FRAME`],
//! [`MAX_FDS`]).

use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Frames larger than this are refused (a plan with many hidden files is a
/// few hundred KiB at most).
const MAX_FRAME: usize = 64 << 20;

/// Messages from the sandbox side to the supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum Report {
    /// Setup failed, or the command could not be executed; `code` is the exit
    /// status guard should use (125, 126, 127).
    Failed {
        msg: String,
        hint: Option<String>,
        code: i32,
    },
    /// The namespaces could not be created; nothing has run.
    NoNamespaces { cause: String, hint: String },
    /// The run goes on with less protection (only with --allow-degraded).
    Degraded { msg: String },
    /// The command finished with this status (128+N for signal N). Sent by
    /// pid 1 just before it exits, so guard can exit without waiting for the
    /// kernel to tear the namespaces down.
    Exited { code: i32 },
    /// Egress listeners, in this order, as the frame's descriptors.
    Listeners {
        kinds: Vec<crate::net::ListenerKind>,
    },
}

/// Most descriptors one frame may carry (the kernel's SCM_MAX_FD is 253).
pub const MAX_FDS: usize = 64;

fn frame<T: Serialize>(msg: &T) -> std::io::Result<Vec<u8>> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    w.write_all(&frame(msg)?)
}

/// Send one frame with `fds` attached (SCM_RIGHTS). The descriptors stay
/// open here; the caller closes its copies.
pub fn send_with_fds<T: Serialize>(
    s: &mut UnixStream,
    msg: &T,
    fds: &[RawFd],
) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    if fds.len() > MAX_FDS {
        return Err(std::io::Error::other(format!(
            "too many descriptors ({})",
            fds.len()
        )));
    }
    let frame = frame(msg)?;
    let cmsg = [ControlMessage::ScmRights(fds)];
    let sent = loop {
        match sendmsg::<()>(
            s.as_raw_fd(),
            &[IoSlice::new(&frame)],
            &cmsg,
            MsgFlags::empty(),
            None,
        ) {
            Err(nix::Error::EINTR) => continue,
            r => break r.map_err(std::io::Error::from)?,
        }
    };
    // The descriptors went with the first byte; the rest is plain data.
    s.write_all(&frame[sent..])
}

/// Read one frame and any descriptors that came with it; `Ok(None)` on a
/// clean end of stream. Received descriptors are close-on-exec.
pub fn recv_with_fds<T: for<'de> Deserialize<'de>>(
    s: &mut UnixStream,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut fds = Vec::new();
    let mut len = [0u8; 4];
    if !read_exact_fds(s, &mut len, &mut fds)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "control frame too large ({len} bytes)"
        )));
    }
    let mut body = vec![0u8; len];
    if !read_exact_fds(s, &mut body, &mut fds)? {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let msg = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    Ok(Some((msg, fds)))
}

/// Fill `buf` with recvmsg, collecting descriptors. `Ok(false)`: end of
/// stream before the first byte.
fn read_exact_fds(s: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> std::io::Result<bool> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, cmsg_space, recvmsg};
    let mut space = vec![0u8; cmsg_space::<[RawFd; MAX_FDS]>()];
    let mut got = 0;
    while got < buf.len() {
        let mut iov = [IoSliceMut::new(&mut buf[got..])];
        let msg = match recvmsg::<()>(
            s.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::Error::EINTR) => continue,
            r => r.map_err(std::io::Error::from)?,
        };
        let n = msg.bytes;
        // Take ownership of every descriptor first, so none leaks even if
        // the control data was truncated.
        let truncated = msg.cmsgs().is_err();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    fds.extend(raw.into_iter().map(super::sys::own_fd));
                }
            }
        }
        if truncated {
            return Err(std::io::Error::other(
                "descriptors lost on the control socket (truncated)",
            ));
        }
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(true)
}

/// Read one frame; `Ok(None)` on a clean end of stream.
pub fn recv<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "control frame too large ({len} bytes)"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn descriptors_travel_with_their_frame() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send(
            &mut a,
            &Report::Degraded {
                msg: "first".into(),
            },
        )
        .unwrap();
        let kinds = vec![
            crate::net::ListenerKind::HttpProxy,
            crate::net::ListenerKind::DnsUdp,
        ];
        send_with_fds(
            &mut a,
            &Report::Listeners {
                kinds: kinds.clone(),
            },
            &[r.as_raw_fd(), w.as_raw_fd()],
        )
        .unwrap();
        drop(a);
        let (m, fds) = recv_with_fds::<Report>(&mut b).unwrap().unwrap();
        assert!(matches!(m, Report::Degraded { .. }));
        assert!(fds.is_empty());
        let (m, fds) = recv_with_fds::<Report>(&mut b).unwrap().unwrap();
        assert!(matches!(m, Report::Listeners { kinds: k } if k == kinds));
        assert_eq!(fds.len(), 2);
        // The received write end feeds the original read end.
        nix::unistd::write(fds[1].as_fd(), b"x").unwrap();
        let mut buf = [0u8; 1];
        nix::unistd::read(r.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf, b"x");
        assert!(recv_with_fds::<Report>(&mut b).unwrap().is_none());
    }
}
