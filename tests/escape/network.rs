//! Network: the sandbox has its own network namespace with only loopback.
//! Host services (TCP/UDP on the host's loopback or its own address, IPv6,
//! abstract and pathname unix sockets) are unreachable, nothing routes
//! outside, and raw/packet/exotic sockets and interface changes are refused.
//!
//! Host-side servers greet every client with a canary: a successful
//! connection would print it (and the leak check would fail) and is also
//! counted on the host.

use crate::support::{Case, Expect, each_mode, errno::*};
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A host server in a thread that greets every client with a canary and
/// counts connections.
struct Greeter {
    greeting: String,
    /// Connections the test itself made from the host (controls).
    controls: usize,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

trait Accept: Send + 'static {
    fn accept_one(&self) -> std::io::Result<Box<dyn Write>>;
}

impl Accept for TcpListener {
    fn accept_one(&self) -> std::io::Result<Box<dyn Write>> {
        self.accept().map(|(s, _)| Box::new(s) as Box<dyn Write>)
    }
}

impl Accept for UnixListener {
    fn accept_one(&self) -> std::io::Result<Box<dyn Write>> {
        self.accept().map(|(s, _)| Box::new(s) as Box<dyn Write>)
    }
}

impl Greeter {
    fn start(listener: impl Accept, greeting: String) -> Greeter {
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s, g) = (hits.clone(), stop.clone(), greeting.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept_one() {
                    Ok(mut conn) => {
                        h.fetch_add(1, Ordering::SeqCst);
                        let _ = conn.write_all(format!("{g}\n").as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Greeter {
            greeting,
            controls: 0,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// Control: a client on the host does get the greeting, so the server
    /// would notice (and the canary would show) if the sandbox got through.
    fn control(&mut self, got: &str) {
        assert!(
            got.contains(&self.greeting),
            "control: the host server did not answer: {got:?}"
        );
        self.controls += 1;
    }

    fn control_tcp(&mut self, addr: std::net::SocketAddr) {
        let s = std::net::TcpStream::connect(addr).expect("control: connect to the host server");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut line)
            .expect("control: read greeting");
        self.control(&line);
    }

    fn control_unix(&mut self, s: std::os::unix::net::UnixStream) {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut line)
            .expect("control: read greeting");
        self.control(&line);
    }

    fn tcp(case: &mut Case, addr: &str) -> (Greeter, u16) {
        let l =
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind host server on {addr}: {e}"));
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("local addr").port();
        (Greeter::start(l, case.add_canary("greet")), port)
    }

    fn unix(case: &mut Case, l: UnixListener) -> Greeter {
        l.set_nonblocking(true).expect("nonblocking");
        Greeter::start(l, case.add_canary("greet"))
    }

    /// Stop the server; the number of connections it accepted.
    fn finish(mut self) -> usize {
        // Connections still in the backlog count too.
        std::thread::sleep(Duration::from_millis(30));
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
        self.hits.load(Ordering::SeqCst) - self.controls
    }
}

/// Python: connect and read the greeting; prints the errno, or
/// "connected" (and what the server said).
const CONNECT: &str = r#"
def connect(family, addr, kind=socket.SOCK_STREAM):
    s = socket.socket(family, kind)
    s.settimeout(5)
    try:
        s.connect(addr)
        print("got", s.recv(200))
        return "connected"
    except OSError as e:
        return e.errno
"#;

/// The host's first non-loopback IPv4 address that is up.
pub(crate) fn machine_ipv4() -> Ipv4Addr {
    let mut found = None;
    // SAFETY: getifaddrs fills a list we walk read-only and free once.
    unsafe {
        let mut ifa: *mut libc::ifaddrs = std::ptr::null_mut();
        assert_eq!(libc::getifaddrs(&mut ifa), 0, "getifaddrs");
        let mut p = ifa;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null()
                && (*a).sa_family as i32 == libc::AF_INET
                && (*p).ifa_flags & libc::IFF_UP as u32 != 0
            {
                let sin = &*(a as *const libc::sockaddr_in);
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !ip.is_loopback() && found.is_none() {
                    found = Some(ip);
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(ifa);
    }
    found.expect("this host has no non-loopback IPv4 address to test against")
}

/// Only `lo` exists, and it is up.
#[test]
fn only_loopback_interface() {
    each_mode(|case| {
        case.python(
            r#"
lines = open("/proc/net/dev").read().splitlines()[2:]
out("proc_net_dev", ",".join(sorted(l.split(":")[0].strip() for l in lines)))
out("if_nameindex", ",".join(n for _, n in socket.if_nameindex()))
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
c = socket.create_connection(s.getsockname())
out("loopback_works", int(s.accept()[0] is not None))
"#,
        )
        .fields(&[
            ("proc_net_dev", "lo"),
            ("if_nameindex", "lo"),
            ("loopback_works", "1"),
        ]);
    });
}

/// A TCP server on the host's 127.0.0.1: the sandbox's 127.0.0.1 is its own
/// loopback, where nothing listens on that port.
#[test]
fn host_loopback_tcp_unreachable() {
    each_mode(|mut case| {
        let (mut server, port) = Greeter::tcp(&mut case, "127.0.0.1:0");
        server.control_tcp(([127, 0, 0, 1], port).into());
        let out = case.python(&format!(
            "{CONNECT}\nout('v4', connect(socket.AF_INET, ('127.0.0.1', {port})))\nout('localhost', connect(socket.AF_INET, ('localhost', {port})))"
        ));
        let hits = server.finish();
        out.fields(&[("v4", ECONNREFUSED), ("localhost", ECONNREFUSED)]);
        assert_eq!(hits, 0, "the host server was reached");
    });
}

/// The machine's own non-loopback address (a host server listening on all
/// addresses): no route, since the namespace has no other interface.
#[test]
fn machine_address_unreachable() {
    let ip = machine_ipv4();
    each_mode(|mut case| {
        let (mut server, port) = Greeter::tcp(&mut case, "0.0.0.0:0");
        server.control_tcp((ip, port).into());
        let out = case.python(&format!(
            "{CONNECT}\nout('machine', connect(socket.AF_INET, ('{ip}', {port})))"
        ));
        let hits = server.finish();
        out.fields(&[("machine", ENETUNREACH)]);
        assert_eq!(hits, 0, "the host server was reached");
    });
}

/// A server on the host's ::1.
#[test]
fn ipv6_loopback_unreachable() {
    each_mode(|mut case| {
        let (mut server, port) = Greeter::tcp(&mut case, "[::1]:0");
        server.control_tcp((std::net::Ipv6Addr::LOCALHOST, port).into());
        let out = case.python(&format!(
            "{CONNECT}\nout('v6', connect(socket.AF_INET6, ('::1', {port})))"
        ));
        let hits = server.finish();
        out.fields(&[("v6", ECONNREFUSED)]);
        assert_eq!(hits, 0, "the host server was reached");
    });
}

/// UDP: to a public resolver and to the machine's address there is no
/// route; a datagram to the host's 127.0.0.1 port stays in the sandbox's
/// loopback (the port is closed there: ECONNREFUSED) and never arrives.
#[test]
fn udp_cannot_leave() {
    let ip = machine_ipv4();
    each_mode(|case| {
        let host = UdpSocket::bind("127.0.0.1:0").expect("bind host UDP");
        host.set_nonblocking(true).expect("nonblocking");
        let port = host.local_addr().expect("addr").port();
        let out = case.python(&format!(
            r#"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out("public", err(u.sendto, b"x", ("8.8.8.8", 53)))
out("machine", err(u.sendto, b"x", ("{ip}", {port})))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(2)
c.connect(("127.0.0.1", {port}))
out("loopback_send", err(c.send, b"guard-escape-udp"))
out("loopback_recv", err(c.recv, 100))
"#
        ));
        std::thread::sleep(Duration::from_millis(30));
        let mut buf = [0u8; 64];
        let got = host.recv_from(&mut buf);
        out.fields(&[
            ("public", ENETUNREACH),
            ("machine", ENETUNREACH),
            ("loopback_send", "0"),
            ("loopback_recv", ECONNREFUSED),
        ]);
        assert!(
            matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a datagram reached the host: {got:?}"
        );
    });
}

/// No route to anything outside: the cloud metadata address, public IPv4
/// and IPv6 hosts, and the machine's IPv6 addresses.
#[test]
fn no_route_outside() {
    let v6: Vec<String> = std::fs::read_to_string("/proc/net/if_inet6")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let hex = l.split_whitespace().next()?;
            let bytes: Vec<u8> = (0..16)
                .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                .collect();
            let a: [u8; 16] = bytes.try_into().ok()?;
            let ip = std::net::Ipv6Addr::from(a);
            // Link-local needs a scope; loopback is covered elsewhere.
            (!ip.is_loopback() && (a[0], a[1] & 0xc0) != (0xfe, 0x80)).then(|| ip.to_string())
        })
        .collect();
    eprintln!("machine IPv6 addresses: {v6:?}");
    each_mode(|case| {
        let mut code = format!(
            "{CONNECT}\nout('metadata', connect(socket.AF_INET, ('169.254.169.254', 80)))\n\
             out('public4', connect(socket.AF_INET, ('1.1.1.1', 443)))\n\
             out('public6', connect(socket.AF_INET6, ('2606:4700:4700::1111', 443)))\n"
        );
        for (i, a) in v6.iter().enumerate() {
            code.push_str(&format!(
                "out('machine6_{i}', connect(socket.AF_INET6, ('{a}', 22)))\n"
            ));
        }
        let out = case.python(&code);
        out.fields(&[
            ("metadata", ENETUNREACH),
            ("public4", ENETUNREACH),
            ("public6", ENETUNREACH),
        ]);
        for i in 0..v6.len() {
            out.fields(&[(&format!("machine6_{i}"), ENETUNREACH)]);
        }
    });
}

/// Raw IP sockets (which craft arbitrary packets), with or without type
/// flags, and the obsolete SOCK_PACKET.
#[test]
fn raw_ip_sockets_refused() {
    each_mode(|case| {
        case.python(
            r#"
RAW, PACKET = socket.SOCK_RAW, 10
out("inet_raw", err(socket.socket, socket.AF_INET, RAW, socket.IPPROTO_ICMP))
out("inet_raw_tcp", err(socket.socket, socket.AF_INET, RAW, socket.IPPROTO_TCP))
out("inet_raw_flags", err(socket.socket, socket.AF_INET, RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 255))
out("inet6_raw", err(socket.socket, socket.AF_INET6, RAW, socket.IPPROTO_ICMPV6))
out("inet_packet", err(socket.socket, socket.AF_INET, PACKET, 0))
out("inet_dgram", err(socket.socket, socket.AF_INET, socket.SOCK_DGRAM, 0))
"#,
        )
        .fields(&[
            ("inet_raw", EPERM),
            ("inet_raw_tcp", EPERM),
            ("inet_raw_flags", EPERM),
            ("inet6_raw", EPERM),
            ("inet_packet", EPERM),
            ("inet_dgram", "0"),
        ]);
    });
}

/// AF_PACKET and families with no use inside (vsock, alg, xdp, bluetooth,
/// key, can, tipc, rds, ...) are refused whatever the type.
#[test]
fn packet_and_exotic_families_refused() {
    each_mode(|case| {
        case.python(
            r#"
families = {"packet": 17, "key": 15, "appletalk": 5, "x25": 9, "rds": 21, "llc": 26, "can": 29,
            "tipc": 30, "bluetooth": 31, "alg": 38, "nfc": 39, "vsock": 40, "kcm": 41, "qipcrtr": 42,
            "smc": 43, "xdp": 44, "mctp": 45}
for name, fam in families.items():
    worst = 0
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW, socket.SOCK_SEQPACKET):
        e = err(socket.socket, fam, kind, 0)
        if e != errno.EPERM:
            worst = e
    out(name, errno.EPERM if worst == 0 else "%d" % worst)
out("unix", err(socket.socket, socket.AF_UNIX, socket.SOCK_STREAM, 0))
"#,
        )
        .fields(&[
            ("packet", EPERM),
            ("key", EPERM),
            ("appletalk", EPERM),
            ("x25", EPERM),
            ("rds", EPERM),
            ("llc", EPERM),
            ("can", EPERM),
            ("tipc", EPERM),
            ("bluetooth", EPERM),
            ("alg", EPERM),
            ("nfc", EPERM),
            ("vsock", EPERM),
            ("kcm", EPERM),
            ("qipcrtr", EPERM),
            ("smc", EPERM),
            ("xdp", EPERM),
            ("mctp", EPERM),
            ("unix", "0"),
        ]);
    });
}

/// Python: a rtnetlink request; returns the reply messages.
const NETLINK: &str = r#"
def rtnl(msg_type, flags, payload):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)   # NETLINK_ROUTE
    s.bind((0, 0))
    s.send(struct.pack("=LHHLL", 16 + len(payload), msg_type, flags, 1, 0) + payload)
    msgs, done = [], False
    while not done:
        data = s.recv(65536)
        off = 0
        while off < len(data):
            ln, typ, _, _, _ = struct.unpack_from("=LHHLL", data, off)
            msgs.append((typ, data[off + 16:off + ln]))
            if typ in (2, 3) or not flags & 0x300:   # NLMSG_ERROR, NLMSG_DONE, or not a dump
                done = True
            off += (ln + 3) & ~3
    return msgs
def attrs(buf):
    a = {}
    while len(buf) >= 4:
        alen, atyp = struct.unpack_from("=HH", buf)
        a[atyp] = buf[4:alen]
        buf = buf[(alen + 3) & ~3:]
    return a
"#;

/// rtnetlink (which getifaddrs uses, so it stays allowed) sees only `lo`.
#[test]
fn netlink_sees_only_loopback() {
    each_mode(|case| {
        case.python(&format!(
            r#"{NETLINK}
names = []
for typ, body in rtnl(18, 0x301, struct.pack("=BxHiII", 0, 0, 0, 0, 0)):   # RTM_GETLINK dump
    if typ == 16:                                                          # RTM_NEWLINK
        names.append(attrs(body[16:]).get(3, b"").rstrip(b"\0").decode())  # IFLA_IFNAME
out("links", ",".join(sorted(names)))
addrs = []
for typ, body in rtnl(22, 0x301, struct.pack("=BBBBI", 0, 0, 0, 0, 0)):    # RTM_GETADDR dump
    if typ == 20:
        fam = body[0]
        a = attrs(body[8:]).get(1, b"")                                     # IFA_ADDRESS
        addrs.append(socket.inet_ntop(fam, a))
out("addrs", ",".join(sorted(addrs)))
"#
        ))
        .fields(&[("links", "lo"), ("addrs", "127.0.0.1,::1")]);
    });
}

/// rtnetlink cannot change the namespace: adding an address, a route or a
/// new interface is refused (no CAP_NET_ADMIN).
#[test]
fn netlink_cannot_configure() {
    each_mode(|case| {
        case.python(&format!(
            r#"{NETLINK}
def rta(t, data):
    return struct.pack("=HH", 4 + len(data), t) + data + b"\0" * ((4 - len(data) % 4) % 4)
def verdict(msgs):
    for typ, body in msgs:
        if typ == 2:
            return -struct.unpack_from("=i", body)[0]
    return "no-answer"
ACK_CREATE = 0x1 | 0x4 | 0x400 | 0x200                      # REQUEST|ACK|CREATE|EXCL
addr = struct.pack("=BBBBI", socket.AF_INET, 8, 0, 0, 1) + rta(2, socket.inet_aton("10.9.9.9")) + rta(1, socket.inet_aton("10.9.9.9"))
out("add_address", verdict(rtnl(20, ACK_CREATE, addr)))   # RTM_NEWADDR on lo
route = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0) + rta(4, struct.pack("=i", 1))
out("add_route", verdict(rtnl(24, ACK_CREATE, route)))     # RTM_NEWROUTE default dev lo
link = struct.pack("=BxHiII", 0, 0, 0, 0, 0) + rta(3, b"evil0\0") + rta(18, rta(1, b"dummy"))
out("add_link", verdict(rtnl(16, ACK_CREATE, link)))       # RTM_NEWLINK dummy
"#
        ))
        .fields(&[("add_address", EPERM), ("add_route", EPERM), ("add_link", EPERM)]);
    });
}

/// An abstract unix socket the host created (abstract names belong to the
/// network namespace): not found from inside.
#[test]
fn host_abstract_unix_socket_unreachable() {
    use std::os::linux::net::SocketAddrExt;
    each_mode(|mut case| {
        let name = format!("guard-escape-{}", case.add_canary("abs"));
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract name");
        let mut server = Greeter::unix(
            &mut case,
            UnixListener::bind_addr(&addr).expect("bind abstract socket"),
        );
        server.control_unix(
            std::os::unix::net::UnixStream::connect_addr(&addr).expect("control: connect"),
        );
        // The name itself is a canary: it must not be listed inside either.
        let out = case.python(&format!(
            "{CONNECT}\nout('abstract', connect(socket.AF_UNIX, '\\0{name}'))\n\
             out('listed', int('{name}' in open('/proc/net/unix').read()))"
        ));
        let hits = server.finish();
        out.fields(&[("abstract", ECONNREFUSED), ("listed", "0")]);
        assert_eq!(hits, 0, "the host's abstract socket was reached");
    });
}

/// A pathname socket in the host's /tmp (a stand-in for docker.sock, world
/// connectable): the file does not exist inside.
#[test]
fn host_docker_socket_invisible() {
    each_mode(|mut case| {
        let path = std::path::PathBuf::from(format!(
            "/tmp/guard-escape-docker-{}.sock",
            case.add_canary("sock")
        ));
        let listener = UnixListener::bind(&path).expect("bind host socket");
        case.remove_on_drop(path.clone());
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod socket");
        let mut server = Greeter::unix(&mut case, listener);
        server.control_unix(
            std::os::unix::net::UnixStream::connect(&path).expect("control: connect"),
        );
        let out = case.python(&format!(
            "{CONNECT}\nout('docker', connect(socket.AF_UNIX, '{}'))\nout('run_docker', connect(socket.AF_UNIX, '/run/docker.sock'))",
            path.display()
        ));
        let hits = server.finish();
        out.fields(&[("docker", ENOENT), ("run_docker", ENOENT)]);
        assert_eq!(hits, 0, "the host socket was reached");
    });
}

/// A socket a host program listens on inside the project (a dev database's,
/// a daemon's), world-connectable: the network namespace does not stand
/// between a process and a socket file it can see. It is hidden.
#[test]
fn host_socket_in_the_project_unreachable() {
    each_mode(|mut case| {
        let path = case
            .project()
            .join(format!("db-{}.sock", std::process::id()));
        let listener = UnixListener::bind(&path).expect("bind host socket");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod socket");
        let mut server = Greeter::unix(&mut case, listener);
        server.control_unix(
            std::os::unix::net::UnixStream::connect(&path).expect("control: connect"),
        );
        case.env.own();
        let out = case.python(&format!(
            "{CONNECT}\nout('project_socket', connect(socket.AF_UNIX, '{}'))",
            path.display()
        ));
        let hits = server.finish();
        // An empty read-only file stands in its place.
        out.fields(&[("project_socket", EACCES)]);
        assert_eq!(hits, 0, "the host program's socket was reached");
    });
}

/// An ssh-agent socket in the host home, named by SSH_AUTH_SOCK in the
/// supervisor's environment: neither the variable nor the socket reaches
/// the command.
#[test]
fn ssh_agent_socket_unreachable() {
    each_mode(|mut case| {
        let path = case.home().join(".ssh/agent.sock");
        std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir .ssh");
        let listener = UnixListener::bind(&path).expect("bind agent socket");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod socket");
        case.env.own();
        case.set_env("SSH_AUTH_SOCK", &path.display().to_string());
        let mut server = Greeter::unix(&mut case, listener);
        server.control_unix(
            std::os::unix::net::UnixStream::connect(&path).expect("control: connect"),
        );
        let out = case.python(&format!(
            "{CONNECT}\nout('var', os.environ.get('SSH_AUTH_SOCK', 'absent'))\nout('agent', connect(socket.AF_UNIX, '{}'))",
            path.display()
        ));
        let hits = server.finish();
        out.fields(&[("var", "absent"), ("agent", ENOENT)]);
        assert_eq!(hits, 0, "the agent socket was reached");
    });
}
