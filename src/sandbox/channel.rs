//! The control socket between the supervisor and the sandbox's setup
//! processes: length-prefixed JSON frames over a unix stream socket.
//! Errors found inside travel here and are printed once, by the supervisor.

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

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
    /// The run goes on with less protection (only with --allow-degraded).
    Degraded { msg: String },
    /// The command finished with this status (128+N for signal N). Sent by
    /// pid 1 just before it exits, so guard can exit without waiting for the
    /// kernel to tear the namespaces down.
    Exited { code: i32 },
}

pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)
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
