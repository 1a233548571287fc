//! Moving bytes: a buffered view of each connection for the first bytes
//! (heads, hellos), then splice(2) through a pipe, so the payload never
//! enters user space and no code runs per byte.
//!
//! Threat model: a client (or server) that sends slowly, never finishes a
//! head, or floods must cost bounded memory and no busy loop. Heads are read
//! into a buffer capped by the caller with a deadline; after that, data moves
//! kernel-to-kernel through one pipe per direction, created lazily (a pipe
//! holds at most its capacity). Every descriptor is owned (`OwnedFd`,
//! `TcpStream`), so every exit path closes it.

use super::sys::{self, Pipe};
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes moved per splice call (bounded by the pipe's capacity).
const CHUNK: usize = 1 << 20;
/// Pipe capacity asked for (best effort).
const PIPE_SIZE: usize = 1024 * 1024;
/// Buffer for the copy fallback when no pipe can be had.
const FALLBACK_BUF: usize = 64 * 1024;

/// The reading side of a connection: bytes read but not yet consumed
/// (`buf[pos..end]`; the rest of `buf` is initialized spare room, so reads
/// need no zeroing), and the pipe used to splice from it.
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    pipe: Option<Pipe>,
}

/// A connection plus its reader state.
pub struct Conn {
    pub stream: TcpStream,
    pub rd: Reader,
}

/// What reading a head produced.
pub enum Head<T, E> {
    Done(T),
    /// The parser refused the bytes.
    Bad(E),
    /// End of stream before any byte of a head.
    Closed,
    /// End of stream (or the buffer limit) in the middle of a head.
    Truncated,
    TimedOut,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            rd: Reader::default(),
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.rd.buf[self.rd.pos..self.rd.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.rd.pos = (self.rd.pos + n).min(self.rd.end);
        if self.rd.pos == self.rd.end {
            self.rd.pos = 0;
            self.rd.end = 0;
        }
    }

    /// Read more bytes into the buffer, keeping at most `max` buffered.
    /// `Ok(0)`: end of stream, or the buffer is full.
    pub async fn fill(&mut self, max: usize) -> io::Result<usize> {
        self.rd.fill(&self.stream, max).await
    }

    /// Read until `parse` recognizes a complete head at the start of the
    /// buffer (then consume it), refuses it, or `max`/`limit` runs out.
    /// `Ok(None)` from `parse` means "need more bytes".
    pub async fn read_head<T, E>(
        &mut self,
        max: usize,
        limit: Duration,
        mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, E>,
    ) -> io::Result<Head<T, E>> {
        let work = async {
            loop {
                if !self.buffered().is_empty() {
                    match parse(self.buffered()) {
                        Ok(Some((t, used))) => {
                            self.consume(used);
                            return Ok(Head::Done(t));
                        }
                        Ok(None) => {}
                        Err(e) => return Ok(Head::Bad(e)),
                    }
                }
                let was_empty = self.buffered().is_empty();
                if self.fill(max).await? == 0 {
                    return Ok(if was_empty {
                        Head::Closed
                    } else {
                        Head::Truncated
                    });
                }
            }
        };
        match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Ok(Head::TimedOut),
        }
    }

    /// Read one CRLF-terminated line (without the CRLF), at most `max` bytes.
    pub async fn read_line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buffered().windows(2).position(|w| w == b"\r\n") {
                let line = self.buffered()[..i].to_vec();
                self.consume(i + 2);
                return Ok(Some(line));
            }
            if self.buffered().len() >= max || self.fill(max + 2).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Copy exactly `n` bytes to `dst`: buffered bytes first, then splice.
    pub async fn copy_exact(&mut self, dst: &TcpStream, n: u64) -> io::Result<()> {
        let mut left = n;
        let take = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(self.buffered().len());
        if take > 0 {
            write_all(dst, &self.buffered()[..take]).await?;
            self.consume(take);
            left -= take as u64;
        }
        if left == 0 {
            return Ok(());
        }
        let mut moved = 0;
        self.rd
            .pump(&self.stream, dst, Some(left), &mut moved)
            .await?;
        if moved < left {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the middle of a body",
            ));
        }
        Ok(())
    }
}

impl Reader {
    /// Read more bytes from `stream` into the buffer, keeping at most `max`
    /// buffered. `Ok(0)`: end of stream, or the buffer is full.
    pub async fn fill(&mut self, stream: &TcpStream, max: usize) -> io::Result<usize> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let room = max.saturating_sub(self.end);
        if room == 0 {
            return Ok(0);
        }
        // Small first reads (most heads are a few hundred bytes; hundreds of
        // connections may wait at once), growing when a head is larger.
        let want = room.min(self.end.clamp(2048, 16 * 1024));
        if self.buf.len() < self.end + want {
            self.buf.resize(self.end + want, 0);
        }
        loop {
            match stream.try_read(&mut self.buf[self.end..self.end + want]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Move bytes from `src` to `dst` until end of stream or `limit` bytes,
    /// adding each chunk to `moved` as it goes: a relay stopped in the
    /// middle (guard exiting) still knows what it moved. Buffered bytes
    /// must have been flushed before.
    pub async fn pump(
        &mut self,
        src: &TcpStream,
        dst: &TcpStream,
        limit: Option<u64>,
        moved: &mut u64,
    ) -> io::Result<()> {
        if self.pipe.is_none() {
            self.pipe = Pipe::new().ok();
            if let Some(p) = &self.pipe {
                p.grow(PIPE_SIZE);
            }
        }
        match &self.pipe {
            Some(pipe) => splice_loop(pipe, src, dst, limit, moved).await,
            None => copy_loop(src, dst, limit, moved).await,
        }
    }

    /// Forward what is buffered, then everything else until end of stream.
    /// `count` is kept current so the caller knows the total even on error.
    pub async fn forward_all(
        &mut self,
        src: &TcpStream,
        dst: &TcpStream,
        count: &mut u64,
    ) -> io::Result<()> {
        if self.pos < self.end {
            write_all(dst, &self.buf[self.pos..self.end]).await?;
            *count += (self.end - self.pos) as u64;
        }
        // From here on bytes go through the pipe: free the head buffer.
        self.buf = Vec::new();
        self.pos = 0;
        self.end = 0;
        loop {
            let before = *count;
            self.pump(src, dst, Some(CHUNK as u64 * 64), count).await?;
            if *count - before < CHUNK as u64 * 64 {
                return Ok(());
            }
        }
    }
}

async fn splice_loop(
    pipe: &Pipe,
    src: &TcpStream,
    dst: &TcpStream,
    limit: Option<u64>,
    moved: &mut u64,
) -> io::Result<()> {
    let (sfd, dfd) = (src.as_raw_fd(), dst.as_raw_fd());
    let (pr, pw) = (pipe.read.as_raw_fd(), pipe.write.as_raw_fd());
    let mut total: u64 = 0;
    loop {
        let want = match limit {
            Some(l) if l <= total => return Ok(()),
            Some(l) => usize::try_from(l - total).unwrap_or(CHUNK).min(CHUNK),
            None => CHUNK,
        };
        let n = src
            .async_io(Interest::READABLE, || sys::splice(sfd, pw, want))
            .await?;
        if n == 0 {
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            left -= dst
                .async_io(Interest::WRITABLE, || sys::splice(pr, dfd, left))
                .await?;
        }
        total += n as u64;
        *moved += n as u64;
    }
}

async fn copy_loop(
    src: &TcpStream,
    dst: &TcpStream,
    limit: Option<u64>,
    moved: &mut u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; FALLBACK_BUF];
    let mut total: u64 = 0;
    loop {
        let want = match limit {
            Some(l) if l <= total => return Ok(()),
            Some(l) => usize::try_from(l - total)
                .unwrap_or(FALLBACK_BUF)
                .min(FALLBACK_BUF),
            None => FALLBACK_BUF,
        };
        let n = src
            .async_io(Interest::READABLE, || src.try_read(&mut buf[..want]))
            .await?;
        if n == 0 {
            return Ok(());
        }
        write_all(dst, &buf[..n]).await?;
        total += n as u64;
        *moved += n as u64;
    }
}

pub async fn write_all(dst: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = dst
            .async_io(Interest::WRITABLE, || dst.try_write(data))
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    Ok(())
}

fn shutdown_write(s: &TcpStream) {
    let _ = nix::sys::socket::shutdown(s.as_raw_fd(), nix::sys::socket::Shutdown::Write);
}

/// Why the first bytes of a gated direction stopped coming before the
/// gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// End of stream.
    Closed,
    /// The buffer limit was reached.
    Full,
    /// They did not complete in time.
    TimedOut,
}

/// A gate's verdict on the first bytes of a direction (see [`relay_gated`]).
pub enum Gate<R> {
    /// Not enough bytes to decide yet.
    More,
    /// Relay everything from here on.
    Open,
    /// Forward this many bytes, then ask again about what follows (a
    /// protocol's own preamble before its TLS, answered by the server).
    Pass(usize),
    /// Forward nothing; end the relay.
    Refuse(R),
}

/// How long a relay may still forward what the client sent once guard is
/// exiting.
pub const DRAIN_AT_EXIT: Duration = Duration::from_secs(1);

/// Relay both directions until both ends have finished (each end's EOF is
/// passed on as a half-close), either fails, or `stop` completes (guard is
/// exiting). Returns bytes a→b and b→a.
pub async fn relay(
    a: &mut Conn,
    b: &mut Conn,
    stop: impl std::future::Future<Output = ()>,
) -> (u64, u64) {
    let (up, down, _) = relay_gated(a, b, stop, 0, Duration::ZERO, |_: &[u8], _| {
        Gate::<()>::Open
    })
    .await;
    (up, down)
}

/// [`relay`], with the first bytes a→b held back until `gate` says what
/// they are. b→a flows meanwhile: in protocols where the server speaks
/// first, the client sends nothing before it has the greeting. The wait
/// for the first byte has no deadline (a silent client is not a slow one);
/// from the first byte on, the gate decides within `limit` and `max` bytes,
/// and is asked once more with the reason when bytes stop coming (a `More`
/// then counts as `Open`: the gate says what a stall means). Returns bytes
/// a→b and b→a, and the refusal if the gate refused.
pub async fn relay_gated<R>(
    a: &mut Conn,
    b: &mut Conn,
    stop: impl std::future::Future<Output = ()>,
    max: usize,
    limit: Duration,
    mut gate: impl FnMut(&[u8], Option<Stall>) -> Gate<R>,
) -> (u64, u64, Option<R>) {
    let (sa, ra) = (&a.stream, &mut a.rd);
    let (sb, rb) = (&b.stream, &mut b.rd);
    let (mut up, mut down) = (0u64, 0u64);
    let mut refused = None;
    {
        let up_f = async {
            if let Some(r) = first_bytes(sa, ra, sb, &mut up, max, limit, &mut gate).await? {
                refused = Some(r);
                return Err(io::Error::other("refused by the gate"));
            }
            let r = ra.forward_all(sa, sb, &mut up).await;
            if r.is_ok() {
                shutdown_write(sb);
            }
            r
        };
        let down_f = async {
            let r = rb.forward_all(sb, sa, &mut down).await;
            if r.is_ok() {
                shutdown_write(sa);
            }
            r
        };
        tokio::pin!(up_f, down_f, stop);
        let (mut up_done, mut down_done) = (false, false);
        while !(up_done && down_done) {
            tokio::select! {
                _ = &mut stop => {
                    // guard is exiting because the sandbox's processes are
                    // gone: the client's end is closed, but what it sent
                    // just before (a request it did not wait to see
                    // answered) is still in this socket, and must still go
                    // out. Bounded: the server may not take it.
                    if !up_done {
                        let _ = tokio::time::timeout(DRAIN_AT_EXIT, &mut up_f).await;
                    }
                    break;
                }
                r = &mut up_f, if !up_done => {
                    up_done = true;
                    if r.is_err() { break; }
                }
                r = &mut down_f, if !down_done => {
                    down_done = true;
                    if r.is_err() { break; }
                }
            }
        }
    }
    (up, down, refused)
}

/// Buffer the first bytes from `src` until `gate` decides (what it passes
/// goes to `dst`, counted in `sent`). `Ok(Some)`: refused.
async fn first_bytes<R>(
    src: &TcpStream,
    rd: &mut Reader,
    dst: &TcpStream,
    sent: &mut u64,
    max: usize,
    limit: Duration,
    gate: &mut impl FnMut(&[u8], Option<Stall>) -> Gate<R>,
) -> io::Result<Option<R>> {
    let verdict = |g: Gate<R>| match g {
        Gate::Refuse(r) => Some(r),
        Gate::Open | Gate::More | Gate::Pass(_) => None,
    };
    let mut deadline = None;
    loop {
        let buffered = &rd.buf[rd.pos..rd.end];
        if !buffered.is_empty() {
            match gate(buffered, None) {
                Gate::More => {}
                Gate::Pass(n) => {
                    let n = n.min(buffered.len());
                    write_all(dst, &buffered[..n]).await?;
                    rd.pos += n;
                    *sent += n as u64;
                    // What follows waits for the server's answer: its
                    // clock starts again at its own first byte.
                    deadline = None;
                    continue;
                }
                g => return Ok(verdict(g)),
            }
        }
        let before = rd.end - rd.pos;
        // The clock starts at the first byte: a client may wait for the
        // server's greeting as long as it likes, but once it has begun,
        // what it began must complete in time (else a pause after the
        // first byte would let the rest through unchecked).
        let read = match deadline {
            None if before == 0 => Ok(rd.fill(src, max).await),
            _ => {
                let d = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + limit);
                tokio::time::timeout_at(d, rd.fill(src, max)).await
            }
        };
        let stall = match read {
            Ok(Ok(0)) if before >= max => Stall::Full,
            Ok(Ok(0)) => Stall::Closed,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => return Err(e),
            Err(_) => Stall::TimedOut,
        };
        return Ok(verdict(gate(&rd.buf[rd.pos..rd.end], Some(stall))));
    }
}
