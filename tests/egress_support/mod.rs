//! Local servers for the egress tests, on the host's loopback only:
//! a tiny HTTP/1.1 server (keep-alive, chunked request and response bodies,
//! bodies of any size, an event stream, a git smart-HTTP CGI, an Upgrade
//! endpoint that echoes lines) in Rust threads, and an HTTPS server (`openssl s_server`
//! with a certificate generated at test time).
//!
//! The fixed servers listen on 127.31.0.1, an address nothing else uses.
//! Run as root (as in CI), they listen on ports 80 and 443, the ports a
//! bare name rule allows (the sandbox dials the name on those ports in
//! transparent mode and guard dials the pinned address on the same port),
//! so the tests check the default-port rules. A user cannot bind those: then
//! the servers listen on ports the kernel picks, and the test profiles
//! also allow the names on those ports (`name:port`). Everything that
//! names a server's port goes through [`http_port`], [`https_port`] and the
//! helpers below. A server that cannot start fails the test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The host address the allowed test names are pinned to.
pub const SERVER_IP: &str = "127.31.0.1";
/// Marker every response of the test servers carries: if it shows up in a
/// refused attempt's output, bytes came back from the host.
pub const SERVED: &str = "SERVED-BY-HOST-7f3a9c";

/// Everything served by the fixed servers.
pub struct Servers {
    /// 127.31.0.1:80 (as a user: a port the kernel picks)
    pub http: SocketAddr,
    /// 127.0.0.1:<random>: a host loopback service the sandbox must never reach.
    pub loopback: SocketAddr,
    /// 127.31.0.1:443, as a user another port (openssl s_server -WWW,
    /// files from `www`)
    pub https: SocketAddr,
    pub www: PathBuf,
    /// Bare repositories served over smart HTTP at /git/NAME.git.
    pub git_root: PathBuf,
}

pub fn servers() -> &'static Servers {
    static S: OnceLock<Servers> = OnceLock::new();
    S.get_or_init(|| {
        remove_stale_fixtures();
        let base = PathBuf::from(format!("/tmp/guard-egress-fixtures-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("create fixture dir");
        let git_root = base.join("git");
        make_repo(&git_root);
        let http = start_http(
            &format!("{SERVER_IP}:{}", if is_root() { 80 } else { 0 }),
            git_root.clone(),
        );
        let loopback = start_http("127.0.0.1:0", git_root.clone());
        let www = base.join("www");
        std::fs::create_dir_all(&www).expect("create www");
        std::fs::write(www.join("hello.txt"), format!("{SERVED} over TLS\n"))
            .expect("write www file");
        let https = start_https(&base, &www);
        Servers {
            http,
            loopback,
            https,
            www,
            git_root,
        }
    })
}

/// Fixture directories of earlier test runs whose process is gone.
fn remove_stale_fixtures() {
    let Ok(entries) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_prefix("guard-egress-fixtures-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A bare repository `repo.git` with one commit holding README = SERVED.
fn make_repo(root: &Path) {
    let work = root.with_file_name("git-work");
    std::fs::create_dir_all(&work).expect("mkdir git work");
    std::fs::create_dir_all(root).expect("mkdir git root");
    std::fs::write(work.join("README"), format!("{SERVED} via git\n")).expect("write README");
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .output()
            .expect("git is required for the egress tests (apt-get install git)");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "README"]);
    git(&work, &["commit", "-q", "-m", "fixture"]);
    git(
        root,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"],
    );
}

/// Whether the tests run as root (and so may bind ports below 1024).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A port free on [`SERVER_IP`] just now, for a server started by another
/// program (openssl) that is told its port.
fn free_port() -> u16 {
    TcpListener::bind(format!("{SERVER_IP}:0"))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {SERVER_IP}: {e}"))
}

/// The HTTP server's port: 80 as root, else a port the kernel picked.
pub fn http_port() -> u16 {
    servers().http.port()
}

/// The HTTPS server's port: 443 as root, else a free port.
pub fn https_port() -> u16 {
    servers().https.port()
}

/// Whether the servers listen on the default ports (80 and 443), the ones a
/// rule without a port allows: true when the tests run as root.
pub fn default_ports() -> bool {
    http_port() == 80 && https_port() == 443
}

/// `name` as the authority of an `http://` URL to the HTTP server, and as
/// the Host header that goes with it: `name`, or `name:port` when the
/// server is not on port 80.
pub fn http_authority(name: &str) -> String {
    match http_port() {
        80 => name.to_string(),
        p => format!("{name}:{p}"),
    }
}

/// `name` as the authority of an `https://` URL to the HTTPS server:
/// `name`, or `name:port` when the server is not on port 443.
pub fn https_authority(name: &str) -> String {
    match https_port() {
        443 => name.to_string(),
        p => format!("{name}:{p}"),
    }
}

/// Allow rules (as written in a profile, without quotes) for `name`: the
/// bare name (meaning ports 443 and 80, where the servers listen as root),
/// and as a user also `name:http_port` and `name:https_port`. (As a user
/// nothing listens on ports 80 and 443: checks there are those that guard
/// refuses before it dials.)
pub fn rules_for(name: &str) -> Vec<String> {
    let mut rules = vec![name.to_string()];
    if !default_ports() {
        rules.push(format!("{name}:{}", http_port()));
        rules.push(format!("{name}:{}", https_port()));
    }
    rules
}

/// A test script with the servers' ports filled in: `@WEB@` becomes the
/// HTTP authority of `web.guard.test` (for URLs and Host headers),
/// `@HTTP_PORT@` and `@HTTPS_PORT@` the ports.
pub fn fill(script: &str) -> String {
    script
        .replace("@WEB@", &http_authority("web.guard.test"))
        .replace("@HTTP_PORT@", &http_port().to_string())
        .replace("@HTTPS_PORT@", &https_port().to_string())
}

static CONN_IDS: AtomicUsize = AtomicUsize::new(1);

fn start_http(bind: &str, git_root: PathBuf) -> SocketAddr {
    let l = TcpListener::bind(bind)
        .unwrap_or_else(|e| panic!("cannot bind the test HTTP server on {bind}: {e}"));
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let root = git_root.clone();
            std::thread::spawn(move || {
                let _ = serve_conn(s, &root);
            });
        }
    });
    addr
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; n];
        r.read_exact(&mut body).ok()?;
        req.body = body;
    } else if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end).ok()?;
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            req.body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(req)
}

fn serve_conn(s: TcpStream, git_root: &Path) -> std::io::Result<()> {
    let conn = CONN_IDS.fetch_add(1, Ordering::SeqCst);
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    while let Some(req) = read_request(&mut r) {
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if req.path.starts_with("/upgrade") && req.header("upgrade").is_some() {
            return upgraded(&req, conn, r, w);
        }
        if let Some(n) = req.path.strip_prefix("/chunked/") {
            chunked(&mut w, n.parse().unwrap_or(0))?;
            continue;
        }
        if req.path == "/events" {
            events(&mut w)?;
            continue;
        }
        let (status, ctype, body) = if req.path.starts_with("/git/") {
            cgi_git(&req, git_root)
        } else if let Some(n) = req.path.strip_prefix("/size/") {
            let mut body = format!("{SERVED}\n").into_bytes();
            body.extend(pattern(n.parse().unwrap_or(0)));
            ("200 OK".into(), "application/octet-stream".into(), body)
        } else {
            if req.path.starts_with("/slow") {
                std::thread::sleep(Duration::from_millis(300));
            }
            let body = format!(
                "{SERVED} conn={conn} method={} path={} host={} body_len={} body_sum={}\n",
                req.method,
                req.path,
                req.header("host").unwrap_or("-"),
                req.body.len(),
                req.body.iter().map(|b| u64::from(*b)).sum::<u64>()
            );
            (
                "200 OK".to_string(),
                "text/plain".to_string(),
                body.into_bytes(),
            )
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            body.len(),
            if close { "close" } else { "keep-alive" }
        );
        w.write_all(head.as_bytes())?;
        if req.method != "HEAD" {
            w.write_all(&body)?;
        }
        if close {
            break;
        }
    }
    Ok(())
}

/// The body of /size/N after its first line (the SERVED marker): N bytes
/// that any copy mistake (lost, repeated or reordered bytes) changes.
/// Test scripts compute the same in Python: `(i * 7 + 3) % 251`.
pub fn pattern(n: usize) -> impl Iterator<Item = u8> {
    (0..n).map(|i| ((i * 7 + 3) % 251) as u8)
}

/// /chunked/N: the /size/N body, chunked: chunk sizes from 1 byte to 20 KB,
/// some written with their size line and CRLF, some in pieces, one with an
/// extension, then a trailer.
fn chunked(w: &mut TcpStream, n: usize) -> std::io::Result<()> {
    write!(
        w,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Check\r\n\r\n"
    )?;
    let mut body = format!("{SERVED}\n").into_bytes();
    body.extend(pattern(n));
    let sizes = [1, 7, 100, 3000, 20000, 500];
    let mut at = 0;
    for (i, size) in sizes.iter().cycle().enumerate() {
        if at == body.len() {
            break;
        }
        let part = &body[at..(at + size).min(body.len())];
        at += part.len();
        let ext = if i == 2 { ";ext=1" } else { "" };
        if i % 2 == 0 {
            let mut one = format!("{:x}{ext}\r\n", part.len()).into_bytes();
            one.extend_from_slice(part);
            one.extend_from_slice(b"\r\n");
            w.write_all(&one)?;
        } else {
            write!(w, "{:x}{ext}\r\n", part.len())?;
            w.write_all(part)?;
            w.write_all(b"\r\n")?;
        }
    }
    w.write_all(b"0\r\nX-Check: done\r\n\r\n")
}

/// /events: a chunked stream of two events a second apart, like
/// server-sent events: the first must reach the client before the second
/// is sent.
fn events(w: &mut TcpStream) -> std::io::Result<()> {
    write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
         e\r\ndata: tick-1\n\n\r\n"
    )?;
    std::thread::sleep(Duration::from_secs(1));
    write!(w, "e\r\ndata: tick-2\n\n\r\n0\r\n\r\n")
}

/// `Upgrade` on /upgrade: 101, a greeting in the same write (so it arrives
/// with the response head), then every line echoed back until end of
/// stream, then the server's own end of stream.
fn upgraded(
    req: &Request,
    conn: usize,
    mut r: BufReader<TcpStream>,
    mut w: TcpStream,
) -> std::io::Result<()> {
    let proto = req.header("upgrade").unwrap_or("-");
    write!(
        w,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {proto}\r\nConnection: Upgrade\r\n\r\n\
         {SERVED} upgraded conn={conn} host={}\n",
        req.header("host").unwrap_or("-")
    )?;
    let mut line = String::new();
    while r.read_line(&mut line)? > 0 {
        writeln!(w, "echo: {}", line.trim_end())?;
        line.clear();
    }
    w.shutdown(std::net::Shutdown::Write)
}

/// git smart HTTP through `git http-backend` (CGI).
fn cgi_git(req: &Request, root: &Path) -> (String, String, Vec<u8>) {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &path["/git".len()..])
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &req.method)
        .env("CONTENT_TYPE", req.header("content-type").unwrap_or(""))
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("GIT_PROTOCOL", req.header("git-protocol").unwrap_or(""))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run git http-backend");
    let mut stdin = child.stdin.take().unwrap();
    let body = req.body.clone();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().expect("git http-backend output");
    let _ = feeder.join();
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((i, n)) = split else {
        return ("500 CGI".into(), "text/plain".into(), raw);
    };
    let head = String::from_utf8_lossy(&raw[..i]).to_string();
    let mut status = "200 OK".to_string();
    let mut ctype = "application/octet-stream".to_string();
    for l in head.lines() {
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("status") {
                status = v.trim().to_string();
            } else if k.eq_ignore_ascii_case("content-type") {
                ctype = v.trim().to_string();
            }
        }
    }
    (status, ctype, raw[i + n..].to_vec())
}

/// `openssl s_server -WWW` on 127.31.0.1:443 (as a user: a free port), with a fresh self-signed
/// certificate. It runs under a thread that lives as long as the test
/// process; PDEATHSIG stops it when that thread (the process) ends.
fn start_https(base: &Path, www: &Path) -> SocketAddr {
    let cert = base.join("cert.pem");
    let key = base.join("key.pem");
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/CN=web.guard.test"])
        .args(["-addext", "subjectAltName=DNS:web.guard.test"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is required for the egress tests (apt-get install openssl)");
    assert!(st.success(), "openssl req failed");
    let addr: SocketAddr = format!("{SERVER_IP}:{}", if is_root() { 443 } else { free_port() })
        .parse()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (www, cert, key) = (www.to_path_buf(), cert.clone(), key.clone());
    std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("openssl");
        cmd.args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(addr.to_string())
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .current_dir(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl in the forked child before exec; async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start openssl s_server");
        tx.send(()).unwrap();
        let _ = child.wait();
    });
    rx.recv().unwrap();
    // Wait until it accepts (30 s: a loaded machine).
    for _ in 0..3000 {
        if TcpStream::connect(addr).is_ok() {
            return addr;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("openssl s_server did not start on {addr}");
}
