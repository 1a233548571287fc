//! Egress benchmark: the same client code, directly against a loopback
//! server and through guard (HTTP proxy and transparent paths), side by side.
//! Run with scripts/bench-egress.sh (needs root: the transparent path dials
//! port 80, so the server listens on 127.31.0.2:80).
//!
//! Inside guard this binary is re-executed as `egress client ...`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "127.31.0.2:80";
const NAME: &str = "bench.guard.test";
const PROXY: &str = "127.0.0.1:3128";
const GIB: u64 = 1 << 30;
const NEW_CONNS: usize = 1000;
const REUSED: usize = 200;
const CONCURRENT: usize = 500;
/// Runs of the keep-alive test (the median is reported).
const REPEAT: usize = 15;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        client(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("serve") {
        // Only the server (for profiling by hand).
        serve();
        loop {
            std::thread::park();
        }
    }
    harness();
}

// ---------------------------------------------------------------- server

fn serve() {
    let l = TcpListener::bind(SERVER).unwrap_or_else(|e| {
        eprintln!(
            "bench: cannot bind {SERVER}: {e} (run as root: the transparent path needs port 80)"
        );
        std::process::exit(2)
    });
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve_conn(s));
        }
    });
}

/// Set when the latency phases run: new server threads go to CPU 0, with
/// the client and guard.
static PIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Restrict the calling thread (and what it spawns) to `cpus`.
fn set_affinity(cpus: &[usize]) {
    // SAFETY: cpu_set_t is plain data, initialized by CPU_ZERO/CPU_SET;
    // sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for c in cpus {
            libc::CPU_SET(*c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn all_cpus() -> Vec<usize> {
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

fn serve_conn(s: TcpStream) {
    if PIN.load(std::sync::atomic::Ordering::SeqCst) {
        set_affinity(&[0]);
    } else {
        set_affinity(&all_cpus());
    }
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
    Proxy,
    Transparent,
}

impl Path_ {
    fn parse(s: &str) -> Path_ {
        match s {
            "proxy" => Path_::Proxy,
            "transparent" => Path_::Transparent,
            _ => Path_::Direct,
        }
    }

    fn connect(self) -> TcpStream {
        // Resolved once (like any client with a DNS cache), outside the timing.
        static FAKE: std::sync::OnceLock<SocketAddr> = std::sync::OnceLock::new();
        let addr: SocketAddr = match self {
            Path_::Direct => SERVER.parse().unwrap(),
            Path_::Proxy => PROXY.parse().unwrap(),
            // Resolved through guard's DNS: a fake 127.77.x.y address.
            Path_::Transparent => {
                *FAKE.get_or_init(|| (NAME, 80).to_socket_addrs().unwrap().next().unwrap())
            }
        };
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_nodelay(true).unwrap();
        s
    }

    fn request(self, path: &str, close: bool) -> Vec<u8> {
        let target = match self {
            Path_::Proxy => format!("http://{NAME}{path}"),
            _ => path.to_string(),
        };
        format!(
            "GET {target} HTTP/1.1\r\nHost: {NAME}\r\n{}\r\n",
            if close { "Connection: close\r\n" } else { "" }
        )
        .into_bytes()
    }
}

/// Read one response; returns body length.
fn read_response(r: &mut BufReader<TcpStream>, buf: &mut [u8]) -> u64 {
    let mut len = 0u64;
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

fn reused(p: Path_) -> f64 {
    let s = p.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut buf = vec![0u8; 4096];
    let start = Instant::now();
    for _ in 0..REUSED {
        w.write_all(&p.request("/small", false)).unwrap();
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

/// Inside guard: `client PATH` prints `key=value` results.
fn client(args: &[String]) {
    let p = Path_::parse(args.first().map_or("", String::as_str));
    if args.get(1).map(String::as_str) == Some("reused") {
        println!(
            "reused_total_ms={:.3}",
            median((0..REPEAT).map(|_| reused(p)).collect())
        );
        return;
    }
    if args.get(1).map(String::as_str) == Some("download") {
        println!("download_mbps={:.0}", download(p));
        return;
    }
    if args.get(1).map(String::as_str) == Some("concurrent") {
        println!("concurrent_ok={}", concurrent(p));
        println!("done");
        let _ = std::io::stdout().flush();
        // Stay alive until the harness has read the supervisor's peak RSS.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return;
    }
    match args.get(1).map(String::as_str) {
        Some("throughput") => {
            println!(
                "download_mbps={:.0}",
                median((0..3).map(|_| download(p)).collect())
            );
        }
        _ => {
            println!("newconn_median_ms={:.4}", median(new_connections(p)));
            println!(
                "reused_total_ms={:.3}",
                median((0..REPEAT).map(|_| reused(p)).collect())
            );
        }
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
        "{}\n[network]\nallow = [{{ host = \"{NAME}\", private = true }}]\n[network.hosts]\n\"{NAME}\" = \"{}\"\n",
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

/// The same client, as its own process: directly or inside guard. The
/// latency phase runs client, guard and server on CPU 0; throughput runs
/// unpinned.
fn run_client(dir: &Path, profile: &Path, path: &str, phase: &str) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = if path == "direct" {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["client", "direct", phase]);
        c
    } else {
        guard_cmd(dir, profile, &[path, phase])
    };
    let pin = phase == "latency";
    // SAFETY: sched_setaffinity in the child before exec; async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if pin {
                set_affinity(&[0]);
            } else {
                set_affinity(&all_cpus());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{path} {phase} failed: {}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn measure(dir: &Path, profile: &Path, path: &str) -> (f64, f64, f64) {
    PIN.store(false, std::sync::atomic::Ordering::SeqCst);
    let tp = run_client(dir, profile, path, "throughput");
    PIN.store(true, std::sync::atomic::Ordering::SeqCst);
    let lat = run_client(dir, profile, path, "latency");
    PIN.store(false, std::sync::atomic::Ordering::SeqCst);
    (
        field(&tp, "download_mbps"),
        field(&lat, "newconn_median_ms"),
        field(&lat, "reused_total_ms"),
    )
}

fn peak_rss_during_concurrency(dir: &Path, profile: &Path) -> (usize, f64) {
    let mut child = guard_cmd(dir, profile, &["proxy", "concurrent"])
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
    let (dir, profile) = setup_dir();
    // Warm up the server.
    let _ = new_connections(Path_::Direct);

    println!(
        "guard egress benchmark (server {SERVER}, {} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (d_tp, d_new, d_reuse) = measure(&dir, &profile, "direct");
    let (p_tp, p_new, p_reuse) = measure(&dir, &profile, "proxy");
    let (t_tp, t_new, t_reuse) = measure(&dir, &profile, "transparent");
    let (ok, rss) = peak_rss_during_concurrency(&dir, &profile);

    println!();
    println!(
        "{:<44} {:>12} {:>12} {:>12}",
        "", "direct", "proxy", "transparent"
    );
    println!(
        "{:<44} {:>12.0} {:>12.0} {:>12.0}",
        "1 GiB download, MB/s (median of 3)", d_tp, p_tp, t_tp
    );
    println!(
        "{:<44} {:>12} {:>11.2}x {:>11.2}x   (target >= 0.90x)",
        "  ratio to direct",
        "",
        p_tp / d_tp,
        t_tp / d_tp
    );
    println!(
        "{:<44} {:>12.3} {:>12.3} {:>12.3}",
        format!("{NEW_CONNS} new connections, median ms"),
        d_new,
        p_new,
        t_new
    );
    println!(
        "{:<44} {:>12} {:>+12.3} {:>+12.3}   (target <= +0.300 ms)",
        "  added per new connection, ms",
        "",
        p_new - d_new,
        t_new - d_new
    );
    println!(
        "{:<44} {:>12.2} {:>12.2} {:>12.2}",
        format!("{REUSED} requests on one connection, ms (median of {REPEAT})"),
        d_reuse,
        p_reuse,
        t_reuse
    );
    println!(
        "{:<44} {:>12} {:>11.2}x {:>11.2}x   (target <= 1.20x)",
        "  ratio to direct",
        "",
        p_reuse / d_reuse,
        t_reuse / d_reuse
    );
    println!(
        "supervisor peak RSS with {CONCURRENT} concurrent connections: {rss:.1} MiB ({ok}/{CONCURRENT} completed; target <= 16 MiB)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
