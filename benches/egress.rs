//! Egress benchmark: the same client code, directly against a loopback
//! server, through a minimal splice relay (the reference for what any relay
//! costs), and through guard (CONNECT tunnel, HTTP proxy and transparent
//! paths), side by side in interleaved rounds. Besides wall-clock figures it
//! reports the CPU time all processes spent per GiB and per request, which
//! other load on the machine barely disturbs and which shows the ceiling a
//! relay meets on a 2-CPU machine. Run with scripts/bench-egress.sh (needs
//! root: the transparent path dials port 80, so the server listens on
//! 127.31.0.2:80).
//!
//! Inside guard this binary is re-executed as `egress client ...`; the
//! reference relay runs as `egress relay`, a process of its own like guard.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "127.31.0.2:80";
/// The same server on a port guard relays as an opaque TCP tunnel (no
/// HTTP or TLS inspection): what HTTPS through CONNECT costs after the
/// ClientHello check.
const TUNNEL_PORT: u16 = 8080;
const NAME: &str = "bench.guard.test";
const PROXY: &str = "127.0.0.1:3128";
/// The reference relay (see `reference_relay`).
const RELAY: &str = "127.31.0.3:80";
const GIB: u64 = 1 << 30;
const NEW_CONNS: usize = 1000;
const REUSED: usize = 200;
const CONCURRENT: usize = 500;
/// Runs of each keep-alive test within one round (the median is reported).
const REPEAT: usize = 15;
/// Keep-alive tests: phase name, what is requested, label. Small answers
/// show the cost of the hops; a few kilobytes, a typical API answer; many
/// small chunks, a streamed answer (server-sent events) that arrived.
const REUSED_KINDS: [(&str, &str, &str); 3] = [
    ("reused", "/small", "64 B answers"),
    ("reused8k", "/bytes/8192", "8 KiB answers"),
    ("stream", "/chunks/20", "chunked answers, 20 x 64 B"),
];
/// Rounds over all paths; each figure is the median over rounds.
const ROUNDS: usize = 5;
const PATHS: [&str; 5] = ["direct", "relay", "tunnel", "proxy", "transparent"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        client(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("serve") {
        // Only the server (for profiling by hand); `serve pin`: on CPU 0,
        // as in the latency phase.
        if args.get(1).map(String::as_str) == Some("pin") {
            PIN.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        serve();
        loop {
            std::thread::park();
        }
    }
    if args.first().map(String::as_str) == Some("relay") {
        reference_relay();
        return;
    }
    harness();
}

// ---------------------------------------------------------------- server

fn serve() {
    let ip = SERVER.split(':').next().unwrap();
    for addr in [SERVER.to_string(), format!("{ip}:{TUNNEL_PORT}")] {
        let l = TcpListener::bind(&addr).unwrap_or_else(|e| {
            eprintln!(
                "bench: cannot bind {addr}: {e} (run as root: the transparent path needs port 80)"
            );
            std::process::exit(2)
        });
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || serve_conn(s));
            }
        });
    }
}

/// A second reference: the simplest fast user-space relay of the same
/// shape as guard's (client -> relay -> server over loopback, in a process
/// of its own), with none of guard's checks: one thread per direction,
/// blocking splice(2) through a 1 MiB pipe, TCP_NODELAY on both sides.
/// What it costs over direct is the price of any relay on this machine (a
/// second TCP connection and a process in the middle), not of guard.
///
/// The main thread accepts, so the harness sets the CPUs of every relay
/// thread by setting its affinity (new threads inherit it). Each line on
/// stdin is answered with the CPU time the process has used so far.
fn reference_relay() {
    let l = TcpListener::bind(RELAY).unwrap_or_else(|e| {
        eprintln!("bench: cannot bind {RELAY}: {e}");
        std::process::exit(2)
    });
    std::thread::spawn(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
            println!("{}", cpu_seconds(libc::RUSAGE_SELF));
            line.clear();
        }
        std::process::exit(0);
    });
    println!("ready");
    for c in l.incoming().flatten() {
        std::thread::spawn(move || {
            let Ok(u) = TcpStream::connect(SERVER) else {
                return;
            };
            let _ = c.set_nodelay(true);
            let _ = u.set_nodelay(true);
            let (c2, u2) = (c.try_clone().unwrap(), u.try_clone().unwrap());
            let up = std::thread::spawn(move || splice_all(&c2, &u2));
            splice_all(&u, &c);
            let _ = up.join();
        });
    }
}

fn splice_all(from: &TcpStream, to: &TcpStream) {
    use std::os::fd::AsRawFd;
    let mut p = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array; fcntl and splice take
    // descriptors only; the pipe is closed below.
    unsafe {
        assert_eq!(libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC), 0);
        libc::fcntl(p[1], libc::F_SETPIPE_SZ, 1 << 20);
        loop {
            let n = libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                p[1],
                std::ptr::null_mut(),
                1 << 20,
                libc::SPLICE_F_MOVE,
            );
            if n <= 0 {
                break;
            }
            let mut left = n as usize;
            while left > 0 {
                let m = libc::splice(
                    p[0],
                    std::ptr::null_mut(),
                    to.as_raw_fd(),
                    std::ptr::null_mut(),
                    left,
                    libc::SPLICE_F_MOVE,
                );
                if m <= 0 {
                    break;
                }
                left -= m as usize;
            }
            if left > 0 {
                break;
            }
        }
        libc::close(p[0]);
        libc::close(p[1]);
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Set when the latency phases run: new server threads go to CPU 0, with
/// the client and guard.
static PIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Restrict the calling thread (and what it spawns) to `cpus`.
fn set_affinity(cpus: &[usize]) {
    set_affinity_of(0, cpus);
}

/// Restrict thread `tid` (0: the caller) to `cpus`.
fn set_affinity_of(tid: libc::pid_t, cpus: &[usize]) {
    // SAFETY: cpu_set_t is plain data, initialized by CPU_ZERO/CPU_SET;
    // sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for c in cpus {
            libc::CPU_SET(*c, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// User plus system CPU time of `who` (RUSAGE_SELF: this process, all its
/// threads, living or gone; RUSAGE_CHILDREN: its waited-for descendants).
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn all_cpus() -> Vec<usize> {
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

fn pinned_or_all() -> Vec<usize> {
    if PIN.load(std::sync::atomic::Ordering::SeqCst) {
        vec![0]
    } else {
        all_cpus()
    }
}

fn serve_conn(s: TcpStream) {
    set_affinity(&pinned_or_all());
    let _ = s.set_nodelay(true);
    let mut w = match s.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(s);
    let chunk = vec![b'x'; 1 << 20];
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut close = false;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h.trim().is_empty() {
                break;
            }
            if h.to_ascii_lowercase().starts_with("connection: close") {
                close = true;
            }
        }
        let path = path
            .rsplit_once("://")
            .map_or(path.as_str(), |(_, r)| r.find('/').map_or("/", |i| &r[i..]))
            .to_string();
        if let Some(n) = path.strip_prefix("/chunks/") {
            // One write per chunk, as a server streaming events does.
            let chunk = [b"40\r\n".as_slice(), &[b'x'; 64], b"\r\n"].concat();
            let mut ok = w
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .is_ok();
            for _ in 0..n.parse().unwrap_or(0) {
                ok = ok && w.write_all(&chunk).is_ok();
            }
            if !ok || w.write_all(b"0\r\n\r\n").is_err() || close {
                return;
            }
            continue;
        }
        let len: u64 = if let Some(n) = path.strip_prefix("/bytes/") {
            n.parse().unwrap_or(0)
        } else {
            if path.starts_with("/slow") {
                std::thread::sleep(Duration::from_millis(500));
            }
            64
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: {}\r\n\r\n",
            if close { "close" } else { "keep-alive" }
        );
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if w.write_all(&chunk[..n]).is_err() {
                return;
            }
            left -= n as u64;
        }
        if close {
            return;
        }
    }
}

// ---------------------------------------------------------------- client

#[derive(Clone, Copy, PartialEq)]
enum Path_ {
    Direct,
    Relay,
    Proxy,
    Transparent,
    Tunnel,
}

impl Path_ {
    fn parse(s: &str) -> Path_ {
        match s {
            "proxy" => Path_::Proxy,
            "transparent" => Path_::Transparent,
            "relay" => Path_::Relay,
            "tunnel" => Path_::Tunnel,
            _ => Path_::Direct,
        }
    }

    fn connect(self) -> TcpStream {
        // Resolved once (like any client with a DNS cache), outside the timing.
        static FAKE: std::sync::OnceLock<SocketAddr> = std::sync::OnceLock::new();
        let addr: SocketAddr = match self {
            Path_::Direct => SERVER.parse().unwrap(),
            Path_::Relay => RELAY.parse().unwrap(),
            Path_::Proxy | Path_::Tunnel => PROXY.parse().unwrap(),
            // Resolved through guard's DNS: a fake 127.77.x.y address.
            Path_::Transparent => {
                *FAKE.get_or_init(|| (NAME, 80).to_socket_addrs().unwrap().next().unwrap())
            }
        };
        let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_nodelay(true).unwrap();
        if self == Path_::Tunnel {
            write!(
                s,
                "CONNECT {NAME}:{TUNNEL_PORT} HTTP/1.1\r\nHost: {NAME}:{TUNNEL_PORT}\r\n\r\n"
            )
            .unwrap();
            // Nothing follows guard's answer until the first request.
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "proxy closed the CONNECT");
                head.extend_from_slice(&buf[..n]);
            }
            assert!(
                head.starts_with(b"HTTP/1.1 200"),
                "CONNECT refused: {}",
                String::from_utf8_lossy(&head)
            );
        }
        s
    }

    fn request(self, path: &str, close: bool) -> Vec<u8> {
        let target = match self {
            Path_::Proxy => format!("http://{NAME}{path}"),
            _ => path.to_string(),
        };
        // The port belongs in Host when it is not the scheme's default:
        // guard refuses a Host that names another port than the tunnel's.
        let host = match self {
            Path_::Tunnel => format!("{NAME}:{TUNNEL_PORT}"),
            _ => NAME.to_string(),
        };
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\n{}\r\n",
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes()
    }
}

/// Read one response; returns body length.
fn read_response(r: &mut BufReader<TcpStream>, buf: &mut [u8]) -> u64 {
    let mut len = 0u64;
    let mut chunked = false;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("HTTP/1.1 200"),
        "unexpected response: {line:?}"
    );
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
        chunked |= line.eq_ignore_ascii_case("transfer-encoding: chunked\r\n");
    }
    if chunked {
        return read_chunked(r);
    }
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = r.read(&mut buf[..want]).unwrap();
        assert!(n > 0, "truncated body");
        left -= n as u64;
    }
    len
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> u64 {
    let mut total = 0;
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let n = usize::from_str_radix(line.trim(), 16).unwrap();
        let mut data = vec![0u8; n + 2];
        r.read_exact(&mut data).unwrap();
        assert!(data.ends_with(b"\r\n"), "bad chunk");
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

fn download(p: Path_) -> f64 {
    let s = p.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    w.write_all(&p.request(&format!("/bytes/{GIB}"), true))
        .unwrap();
    let n = read_response(&mut r, &mut buf);
    assert_eq!(n, GIB);
    GIB as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn new_connections(p: Path_) -> Vec<f64> {
    let mut buf = vec![0u8; 4096];
    drop(p.connect()); // resolve (transparent) before timing
    (0..NEW_CONNS)
        .map(|_| {
            let start = Instant::now();
            let s = p.connect();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            w.write_all(&p.request("/small", true)).unwrap();
            read_response(&mut r, &mut buf);
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn reused(p: Path_, what: &str) -> f64 {
    let s = p.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    for _ in 0..REUSED {
        w.write_all(&p.request(what, false)).unwrap();
        read_response(&mut r, &mut buf);
    }
    start.elapsed().as_secs_f64() * 1000.0
}

fn concurrent(p: Path_) -> usize {
    let ts: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            std::thread::spawn(move || {
                let s = p.connect();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut buf = vec![0u8; 4096];
                w.write_all(&p.request("/slow", true)).unwrap();
                read_response(&mut r, &mut buf);
            })
        })
        .collect();
    ts.into_iter().filter_map(|t| t.join().ok()).count()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `client PATH PHASE` prints `key=value` results (inside guard for
/// guard's paths).
fn client(args: &[String]) {
    let p = Path_::parse(args.first().map_or("", String::as_str));
    match args.get(1).map(String::as_str) {
        Some("throughput") => println!("download_mbps={:.0}", download(p)),
        Some("newconn") => println!("newconn_median_ms={:.4}", median(new_connections(p))),
        Some(phase) if REUSED_KINDS.iter().any(|k| k.0 == phase) => {
            let what = REUSED_KINDS
                .iter()
                .find(|k| k.0 == phase)
                .map_or("", |k| k.1);
            println!(
                "reused_total_ms={:.3}",
                median((0..REPEAT).map(|_| reused(p, what)).collect())
            );
        }
        // Start-up and exit only: subtracted from the CPU time of the others.
        Some("noop") => {}
        Some("concurrent") => {
            println!("concurrent_ok={}", concurrent(p));
            println!("done");
            let _ = std::io::stdout().flush();
            // Stay alive until the harness has read the supervisor's peak RSS.
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        other => panic!("unknown phase {other:?}"),
    }
}

// ---------------------------------------------------------------- harness

fn guard_bin() -> PathBuf {
    std::env::var_os("GUARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/guard"))
}

fn setup_dir() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(format!("/tmp/guard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("bench.toml");
    let text = format!(
        "{}\n[network]\nallow = [{{ host = \"{NAME}\", private = true }}, {{ host = \"{NAME}:{TUNNEL_PORT}\", private = true }}]\n[network.hosts]\n\"{NAME}\" = \"{}\"\n",
        include_str!("../profiles/default.toml"),
        SERVER.split(':').next().unwrap()
    );
    std::fs::write(&profile, text).unwrap();
    (dir, profile)
}

fn guard_cmd(dir: &Path, profile: &Path, args: &[&str]) -> Command {
    let exe = std::env::current_exe().unwrap();
    let exe_dir = exe.parent().unwrap().to_path_buf();
    let mut c = Command::new(guard_bin());
    c.args(["run", "-q", "-p"])
        .arg(profile)
        .arg("--project")
        .arg(dir)
        .arg("--ro")
        .arg(&exe_dir)
        .arg("--")
        .arg(&exe)
        .arg("client")
        .args(args)
        .current_dir(dir);
    c
}

fn field(out: &str, key: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in client output:\n{out}"))
}

/// The reference relay process, and how to read its CPU time.
struct Relay {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Relay {
    fn start() -> Relay {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("relay")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the reference relay did not start");
        Relay { child, out }
    }

    fn cpu_seconds(&mut self) -> f64 {
        writeln!(self.child.stdin.as_mut().unwrap()).unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().parse().unwrap()
    }

    /// Every relay thread starts on the main thread's CPUs.
    fn pin(&self, cpus: &[usize]) {
        set_affinity_of(self.child.id() as libc::pid_t, cpus);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The same client, as its own process: directly or inside guard. The
/// latency phases run client, guard, relay and server on CPU 0 (cross-CPU
/// wake-ups on this VM vary by an order of magnitude); throughput runs
/// unpinned. Returns the output and the CPU time every process involved
/// used meanwhile: the client or guard with everything it started, the
/// server threads (this process) and the reference relay.
fn run_client(
    dir: &Path,
    profile: &Path,
    relay: &mut Relay,
    path: &str,
    phase: &str,
) -> (String, f64) {
    use std::os::unix::process::CommandExt;
    let mut cmd = if path == "direct" || path == "relay" {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["client", path, phase]);
        c
    } else {
        guard_cmd(dir, profile, &[path, phase])
    };
    let pin = phase != "throughput";
    let cpus = if pin { vec![0] } else { all_cpus() };
    PIN.store(pin, std::sync::atomic::Ordering::SeqCst);
    relay.pin(&cpus);
    let cpu = |relay: &mut Relay| {
        cpu_seconds(libc::RUSAGE_SELF) + cpu_seconds(libc::RUSAGE_CHILDREN) + relay.cpu_seconds()
    };
    let before = cpu(relay);
    // SAFETY: sched_setaffinity in the child before exec; async-signal-safe
    // (the CPU list was allocated before the fork).
    unsafe {
        cmd.pre_exec(move || {
            set_affinity(&cpus);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let used = cpu(relay) - before;
    PIN.store(false, std::sync::atomic::Ordering::SeqCst);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{path} {phase} failed: {}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    (text, used)
}

/// Figures of one round for one path.
#[derive(Clone, Copy)]
struct Figures {
    mbps: f64,
    newconn_ms: f64,
    /// CPU seconds per GiB downloaded, all processes.
    cpu_per_gib: f64,
    /// Per keep-alive test (`REUSED_KINDS`): total ms for the requests, and
    /// CPU microseconds per request, all processes.
    reused_ms: [f64; REUSED_KINDS.len()],
    cpu_per_req_us: [f64; REUSED_KINDS.len()],
}

fn measure(dir: &Path, profile: &Path, relay: &mut Relay, path: &str) -> Figures {
    let mut run = |phase| run_client(dir, profile, relay, path, phase);
    // Start-up and exit (guard's own, or a bare process's) are paid once per
    // run, not per byte or request.
    let (_, fixed) = run("noop");
    let (tp, tp_cpu) = run("throughput");
    let (nc, _) = run("newconn");
    let mut reused_ms = [0.0; REUSED_KINDS.len()];
    let mut cpu_per_req_us = [0.0; REUSED_KINDS.len()];
    for (k, (phase, _, _)) in REUSED_KINDS.iter().enumerate() {
        let (ru, ru_cpu) = run(phase);
        reused_ms[k] = field(&ru, "reused_total_ms");
        cpu_per_req_us[k] = (ru_cpu - fixed) * 1e6 / (REPEAT * REUSED) as f64;
    }
    Figures {
        mbps: field(&tp, "download_mbps"),
        newconn_ms: field(&nc, "newconn_median_ms"),
        // The download is 1 GiB.
        cpu_per_gib: tp_cpu - fixed,
        reused_ms,
        cpu_per_req_us,
    }
}

fn peak_rss_during_concurrency(dir: &Path, profile: &Path, path: &str) -> (usize, f64) {
    let mut child = guard_cmd(dir, profile, &[path, "concurrent"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut ok = 0usize;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(v) = line.trim().strip_prefix("concurrent_ok=") {
            ok = v.parse().unwrap_or(0);
        }
        if line.trim() == "done" {
            break;
        }
        line.clear();
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    drop(child.stdin.take());
    let _ = child.wait();
    (ok, hwm_kib / 1024.0)
}

fn harness() {
    assert!(
        guard_bin().exists(),
        "build guard first: cargo build --release ({})",
        guard_bin().display()
    );
    serve();
    let mut relay = Relay::start();
    let (dir, profile) = setup_dir();
    // Warm up the server.
    let _ = new_connections(Path_::Direct);

    println!(
        "guard egress benchmark (server {SERVER}, {} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // Rounds interleave the paths, so a burst of load from elsewhere on the
    // machine lands on all of them rather than on one.
    let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); PATHS.len()];
    let rounds = if std::env::var_os("RSS_ONLY").is_some() {
        0
    } else {
        ROUNDS
    };
    for _ in 0..rounds {
        for (i, path) in PATHS.iter().enumerate() {
            runs[i].push(measure(&dir, &profile, &mut relay, path));
        }
    }
    let med = |i: usize, f: &dyn Fn(&Figures) -> f64| median(runs[i].iter().map(f).collect());
    // RSS_ONLY=1: only the memory figures (for comparing builds quickly).
    if std::env::var_os("RSS_ONLY").is_some() {
        for p in ["proxy", "tunnel"] {
            let (ok, mib) = peak_rss_during_concurrency(&dir, &profile, p);
            println!("supervisor peak RSS ({p}): {mib:.1} MiB ({ok}/{CONCURRENT} completed)");
        }
        return;
    }
    let rss: Vec<(&str, usize, f64)> = ["proxy", "tunnel"]
        .into_iter()
        .map(|p| {
            let (ok, mib) = peak_rss_during_concurrency(&dir, &profile, p);
            (p, ok, mib)
        })
        .collect();
    drop(relay);

    let row = |label: &str, cell: &dyn Fn(usize) -> String, note: &str| {
        let cells: Vec<String> = (0..PATHS.len())
            .map(|i| format!("{:>12}", cell(i)))
            .collect();
        println!("{label:<44}{}{note}", cells.join(""));
    };
    let ratio = |i: usize, f: &dyn Fn(&Figures) -> f64| {
        if i == 0 {
            String::new()
        } else {
            format!("{:.2}x", med(i, f) / med(0, f))
        }
    };
    println!();
    row("", &|i| PATHS[i].to_string(), "");
    row(
        "1 GiB download, MB/s",
        &|i| format!("{:.0}", med(i, &|f| f.mbps)),
        "",
    );
    row(
        "  ratio to direct",
        &|i| ratio(i, &|f| f.mbps),
        "  (target >= 0.90x)",
    );
    row(
        "  CPU time, all processes, s per GiB",
        &|i| format!("{:.3}", med(i, &|f| f.cpu_per_gib)),
        "",
    );
    row(
        &format!("{NEW_CONNS} new connections, median ms"),
        &|i| format!("{:.3}", med(i, &|f| f.newconn_ms)),
        "",
    );
    row(
        "  added per new connection, ms",
        &|i| {
            if i == 0 {
                String::new()
            } else {
                format!(
                    "{:+.3}",
                    med(i, &|f| f.newconn_ms) - med(0, &|f| f.newconn_ms)
                )
            }
        },
        "  (target <= +0.300 ms)",
    );
    for (k, (_, _, label)) in REUSED_KINDS.iter().enumerate() {
        row(
            &format!("{REUSED} requests on one connection, ms"),
            &|i| format!("{:.2}", med(i, &|f| f.reused_ms[k])),
            &format!("  {label}"),
        );
        row(
            "  ratio to direct",
            &|i| ratio(i, &|f| f.reused_ms[k]),
            "  (target <= 1.20x)",
        );
        row(
            "  CPU time, all processes, us per request",
            &|i| format!("{:.1}", med(i, &|f| f.cpu_per_req_us[k])),
            "",
        );
    }
    println!();
    println!(
        "relay:  a minimal splice relay (own process, thread per direction), none of guard's checks\n\
         tunnel: CONNECT through guard's HTTP proxy to port {TUNNEL_PORT}; HTTP inside is checked request by request, as on port 80\n\
         proxy, transparent: plain HTTP, every request parsed and checked by guard\n\
         medians of {ROUNDS} interleaved rounds (reused connection: each round the median of {REPEAT} runs);\n\
         CPU times exclude start-up and exit (a run that does nothing is subtracted)"
    );
    for (path, ok, mib) in rss {
        println!(
            "supervisor peak RSS, {CONCURRENT} concurrent connections ({path}): {mib:.1} MiB \
             ({ok}/{CONCURRENT} completed; target <= 16 MiB)"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
