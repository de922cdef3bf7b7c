//! Findings of the outside security review (issue 17), each reproduced against the real
//! binary: the test fails on the code the review tried and passes with the fix. Other
//! findings live beside the feature they concern: tests/record.rs (recordings),
//! tests/wrap.rs (secrets and the wrapped program), tests/logging.rs (log sinks).

mod common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use common::raw;
use common::*;

/// Sends `head` (a whole request head) on a raw connection; returns the status line.
fn raw_status(port: u16, head: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
        out.push(byte[0]);
    }
    String::from_utf8_lossy(&out).trim_end().to_owned()
}

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/// Finding 1: a percent-encoded newline in a noVNC-style `path=` parameter (shown decoded,
/// tokens redacted) wrote a second, forged log line. Now the request's line is one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_newline_forges_no_log_line() {
    let target = echo_target("127.0.0.1:0").await.to_string();
    let proxy = Proxy::start(&["127.0.0.1:0", &target]);
    let forged = "/x?a=%0a2026-12-04T16:00:09.000000Z%20%20INFO%20conn{id=9%20peer=10.0.0.1:1}:%20FORGED%26token=1";
    let status = raw_status(proxy.addr.port(), &format!("GET {forged} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    proxy.wait_log("FORGED", Duration::from_secs(5));
    let log = proxy.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("FORGED")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("\\n2026-12-04T16:00:09"), "the newline is shown escaped: {}", lines[0]);
    assert!(!log.lines().any(|l| l.starts_with("2026-12-04T16:00:09")), "{log}");
}

/// Finding 5: a failed Basic-auth login logged the user field, where a password typed
/// into it would land. Only a configured user's name is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_failure_logs_no_unknown_user_name() {
    use base64::Engine as _;
    let target = echo_target("127.0.0.1:0").await.to_string();
    let proxy =
        Proxy::start(&["--auth-plugin", "BasicHTTPAuth", "--auth-source", "admin:right", "127.0.0.1:0", &target]);
    let basic = |creds: &str| base64::engine::general_purpose::STANDARD.encode(creds);
    for creds in ["MyS3cretPassw0rd:x", "admin:wrong"] {
        let head = format!("GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}Authorization: Basic {}\r\n\r\n", basic(creds));
        assert_eq!(raw_status(proxy.addr.port(), &head), "HTTP/1.1 401 Unauthorized");
    }
    proxy.wait_log("unknown user", Duration::from_secs(5));
    proxy.wait_log("wrong password for user \"admin\"", Duration::from_secs(5));
    assert!(!proxy.log().contains("MyS3cretPassw0rd"), "{}", proxy.log());
}

/// Finding 6: a request target without a leading slash (`GET SuperSecretTok HTTP/1.1`)
/// reached the token lookup and its log line unredacted. It is refused with 400 first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_target_that_is_not_a_path_is_refused() {
    let dir = common::pki::TempDir::new("sec-target");
    let target = echo_target("127.0.0.1:0").await;
    std::fs::write(dir.path("tokens"), format!("SuperSecretTok: {target}\n")).unwrap();
    let proxy = Proxy::start(&[
        "--token-plugin",
        "TokenFile",
        "--token-source",
        &dir.str("tokens"),
        "--token-from-path",
        "-v",
        "127.0.0.1:0",
    ]);
    for form in ["SuperSecretTok", "*", "example.com:443"] {
        let head = format!("GET {form} HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n");
        assert_eq!(raw_status(proxy.addr.port(), &head), "HTTP/1.1 400 Bad Request", "{form}");
    }
    // The forms clients use still work: origin-form and absolute-form.
    let head = format!("GET /websockify/SuperSecretTok HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n");
    assert_eq!(raw_status(proxy.addr.port(), &head), "HTTP/1.1 101 Switching Protocols");
    let head = format!("GET http://x/?token=SuperSecretTok HTTP/1.1\r\nHost: x\r\n{UPGRADE}\r\n");
    assert_eq!(raw_status(proxy.addr.port(), &head), "HTTP/1.1 101 Switching Protocols");
    proxy.wait_log("session closed", Duration::from_secs(5));
    assert!(!proxy.log().contains("SuperSecretTok"), "{}", proxy.log());
}

/// An unfinished text message: the first fragment (FIN clear, opcode text) of `len` bytes.
fn text_fragment(len: usize) -> Vec<u8> {
    let mut f = raw::frame(0x1, &vec![b'a'; len]);
    f[0] &= 0x7f;
    f
}

/// Finding 4: each client could pin about 1 MiB with an unfinished text message, without
/// any bound across clients. Held text is now under a process-wide budget
/// (--max-held-text-total): the session that would go past it is closed with 1009, and the
/// others keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_text_is_under_a_process_wide_budget() {
    use tokio::io::AsyncWriteExt as _;
    let target = echo_target("127.0.0.1:0").await.to_string();
    let proxy =
        Proxy::start(&["--max-held-text-total", "2500000", "--metrics-listen", "127.0.0.1:0", "127.0.0.1:0", &target]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = raw::raw_session(proxy.addr, "/").await;
        s.write_all(&text_fragment(1_000_000)).await.unwrap();
        read_through(&mut s).await;
        held.push(s);
    }
    let mut third = raw::raw_session(proxy.addr, "/").await;
    third.write_all(&text_fragment(1_000_000)).await.unwrap();
    let (_, code) = raw::read_close(&mut third, Duration::from_secs(5)).await;
    assert_eq!(code, Some(1009), "{}", proxy.log());
    // The session's end (and its log line) waits for the client to answer the close or to go:
    // it goes, so the line does not race the proxy's 5 s close timeout.
    drop(third);
    proxy.wait_log("Too much unfinished text held by all sessions", Duration::from_secs(10));
    // The two within the budget finish their messages and are echoed whole.
    for s in &mut held {
        s.write_all(&raw::frame(0x80, b"!")).await.unwrap();
    }
    let metrics = metrics_text(&proxy).await;
    assert!(metrics.contains("websockify_limits_hit_total{limit=\"max-held-text-total\"} 1"), "{metrics}");
}

/// Sends a ping and waits for its pong: the proxy has read everything sent before it (the
/// fragment of an unfinished text message is held, not echoed, so the pong comes first).
async fn read_through(s: &mut tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    s.write_all(&raw::frame(0x9, b"read")).await.unwrap();
    let mut pong = [0u8; 6];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut pong)).await.expect("a pong").unwrap();
    assert_eq!(&pong, b"\x8a\x04read");
}

/// Tries `url` until it opens (at most 10 s): a freed slot is seen once the proxy has
/// noticed the close that frees it.
async fn opens_once_freed(url: &str) -> Ws {
    let start = std::time::Instant::now();
    loop {
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => return ws,
            Err(e) => assert!(start.elapsed() < Duration::from_secs(10), "{url}: still refused: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET /metrics on the proxy's --metrics-listen address (from its settings lines).
async fn metrics_text(proxy: &Proxy) -> String {
    proxy.wait_log("Prometheus metrics at", Duration::from_secs(5));
    let log = proxy.log();
    let addr = log
        .lines()
        .find_map(|l| l.split("Prometheus metrics at http://").nth(1))
        .map(|a| a.split('/').next().unwrap().to_owned());
    let addr = addr.unwrap_or_else(|| panic!("no metrics address in {log}"));
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Finding 7: --verify-client without --ssl-only still serves plain ws:// clients (as
/// upstream does); it now says so at start and in --check-config.
#[test]
fn verify_client_without_ssl_only_warns() {
    let dir = common::pki::TempDir::new("sec-verify");
    let ca = common::pki::Ca::new("sec-verify-ca");
    let (cert, key) = ca.issue(&dir.0, "server", "localhost", false);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (status, out) =
        run_proxy(&["--check-config", "--cert", cert, "--key", key, "--verify-client", "127.0.0.1:0", "h:1"]);
    assert!(status.success(), "{out}");
    assert!(out.contains("warning: --verify-client without --ssl-only"), "{out}");
    let (status, out) = run_proxy(&[
        "--check-config",
        "--cert",
        cert,
        "--key",
        key,
        "--verify-client",
        "--ssl-only",
        "127.0.0.1:0",
        "h:1",
    ]);
    assert!(status.success() && !out.contains("without --ssl-only"), "{out}");
}

/// Finding 9: a client with an IPv6 /64 (every home line) had 2^64 addresses, each
/// counted apart by --max-sessions-per-ip. IPv6 clients now count per /64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_count_per_prefix() {
    let target = echo_target("127.0.0.1:0").await.to_string();
    let proxy = Proxy::start(&["--max-sessions-per-ip", "1", "--trusted-proxy", "127.0.0.1", "127.0.0.1:0", &target]);
    let open = |from: &'static str| {
        let addr = proxy.addr;
        async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!("GET / HTTP/1.1\r\nHost: x\r\n{UPGRADE}X-Forwarded-For: {from}\r\n\r\n");
            s.write_all(head.as_bytes()).await.unwrap();
            let mut line = [0u8; 12];
            s.read_exact(&mut line).await.unwrap();
            (String::from_utf8_lossy(&line).into_owned(), s)
        }
    };
    let (first, _kept) = open("2001:db8:1:2::1").await;
    assert_eq!(first, "HTTP/1.1 101");
    let (same_line, _) = open("2001:db8:1:2:ffff:ffff:ffff:fffe").await;
    assert_eq!(same_line, "HTTP/1.1 429", "another address of the same /64");
    let (other_line, _kept2) = open("2001:db8:1:3::1").await;
    assert_eq!(other_line, "HTTP/1.1 101");
    proxy.wait_log("too many sessions from 2001:db8:1:2::/64: limit 1", Duration::from_secs(5));
}

/// Finding 18: connections that have not become sessions (a stalled TLS handshake costs
/// about 28 KB) were bounded only by time. They are capped (--max-pending-handshakes):
/// more are closed at accept, counted, and a session can still start once one leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_handshakes_are_capped() {
    let target = echo_target("127.0.0.1:0").await.to_string();
    let proxy =
        Proxy::start(&["--max-pending-handshakes", "8", "--metrics-listen", "127.0.0.1:0", "127.0.0.1:0", &target]);
    let idle: Vec<_> = (0..8).map(|_| std::net::TcpStream::connect(proxy.addr).unwrap()).collect();
    // All 8 accepted (counted) before the ninth comes.
    let start = std::time::Instant::now();
    while !metrics_text(&proxy).await.contains("websockify_connections_accepted_total 8") {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", metrics_text(&proxy).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut over = std::net::TcpStream::connect(proxy.addr).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    let read = over.read(&mut byte);
    let closed = matches!(&read, Ok(0)) || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
    assert!(closed, "closed at accept: {read:?}");
    proxy.wait_log("connections are not yet sessions (--max-pending-handshakes)", Duration::from_secs(5));
    let metrics = metrics_text(&proxy).await;
    assert!(metrics.contains("websockify_limits_hit_total{limit=\"max-pending-handshakes\"} 1"), "{metrics}");
    // Once they go (and the proxy has seen them go: tries until then, each refused one
    // counted too), sessions start again.
    drop(idle);
    drop(opens_once_freed(&proxy.url()).await);
    let url = proxy.url();
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "1000"])).await.unwrap();
    assert_eq!(out["match"], true, "{out}");
}

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs a tests/peers tool with the peers' Python; returns its stdout lines.
fn peer_tool(tool: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/peers").join(tool))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

/// The HTTP status a WebSocket request for `url` gets (101 when a session opens); the
/// session is kept open in `keep`.
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_status(url: &str, keep: &mut Vec<Ws>) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => {
            keep.push(ws);
            101
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// Finding 8: a JWT whose `crit` header names an extension was accepted. RFC 7515 4.1.11:
/// we process no extension, so any `crit` is refused (403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_with_crit_header_is_refused() {
    let dir = common::pki::TempDir::new("sec-crit");
    let target = echo_target("127.0.0.1:0").await;
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &dir.str("rsa.key")]);
    let claims = format!(r#"{{"host": "127.0.0.1", "port": {}}}"#, target.port());
    let plain = &peer_tool("jwt_tool.py", &["RS256", &dir.str("rsa.key"), &claims], &[])[0];
    let crit =
        &peer_tool("jwt_tool.py", &["RS256", &dir.str("rsa.key"), &claims], &[("JWT_HEADERS", r#"{"crit": ["exp"]}"#)])
            [0];
    let proxy = Proxy::start(&["--token-plugin", "JWTTokenApi", "--token-source", &dir.str("rsa.key"), "127.0.0.1:0"]);
    let mut keep = Vec::new();
    assert_eq!(open_status(&format!("{}?token={plain}", proxy.url()), &mut keep).await, 101);
    assert_eq!(open_status(&format!("{}?token={crit}", proxy.url()), &mut keep).await, 403);
    proxy.wait_log("critical extensions this server does not process", Duration::from_secs(5));
}

/// Finding 14: --max-sessions-per-token counted token strings, so one signed JWT wrapped in
/// a new JWE each time (anyone can encrypt to the public key) or given its ECDSA twin
/// signature (r, n-s) was many tokens. Sessions now count per signed content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_token_cap_counts_the_signed_content() {
    let dir = common::pki::TempDir::new("sec-tokcap");
    let target = echo_target("127.0.0.1:0").await;
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &dir.str("rsa.key")]);
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &dir.str("p256.key")]);
    let claims = format!(r#"{{"host": "127.0.0.1", "port": {}}}"#, target.port());
    let mut keep = Vec::new();

    // One RS256 JWT, encrypted twice to the proxy's public key: two different strings.
    let rsa = dir.str("rsa.key");
    let jwe1 = &peer_tool("jwe_tool.py", &["RSA-OAEP", "A256GCM", &rsa, &claims], &[])[0];
    let jwe2 = &peer_tool("jwe_tool.py", &["RSA-OAEP", "A256GCM", &rsa, &claims], &[])[0];
    assert_ne!(jwe1, jwe2);
    let proxy = Proxy::start(&[
        "--token-plugin",
        "JWTTokenApi",
        "--token-source",
        &rsa,
        "--max-sessions-per-token",
        "1",
        "127.0.0.1:0",
    ]);
    assert_eq!(open_status(&format!("{}?token={jwe1}", proxy.url()), &mut keep).await, 101);
    assert_eq!(open_status(&format!("{}?token={jwe2}", proxy.url()), &mut keep).await, 429, "{}", proxy.log());

    // An ES256 JWT and its twin: both verify, one grant.
    let p256 = dir.str("p256.key");
    let twins = peer_tool("jwt_tool.py", &["ES256-TWIN", &p256, &claims], &[]);
    assert_ne!(twins[0], twins[1]);
    let ec = Proxy::start(&[
        "--token-plugin",
        "JWTTokenApi",
        "--token-source",
        &p256,
        "--max-sessions-per-token",
        "1",
        "127.0.0.1:0",
    ]);
    assert_eq!(open_status(&format!("{}?token={}", ec.url(), twins[0]), &mut keep).await, 101);
    assert_eq!(open_status(&format!("{}?token={}", ec.url(), twins[1]), &mut keep).await, 429, "{}", ec.log());
    drop(keep);
    // The twin alone is a valid token (so the cap, not the signature check, refused it).
    opens_once_freed(&format!("{}?token={}", ec.url(), twins[1])).await;
}

/// Finding 15: 16 idle connections to --metrics-listen held every slot, and a scrape took
/// 4.7 s. Now a connection has 1 s for its request head, 256 are served at once and at
/// most 8 per client address: 50 idle connections from one address do not delay a
/// scrape from another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_starve_the_metrics_endpoint() {
    let target = echo_target("127.0.0.1:0").await.to_string();
    let proxy = Proxy::start(&["--metrics-listen", "127.0.0.1:0", "127.0.0.1:0", &target]);
    proxy.wait_log("Prometheus metrics at", Duration::from_secs(5));
    let log = proxy.log();
    let addr: std::net::SocketAddr = log
        .lines()
        .find_map(|l| l.split("Prometheus metrics at http://").nth(1))
        .map(|a| a.trim_end_matches("/metrics").parse().unwrap())
        .unwrap();
    let idle: Vec<_> = (0..50).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let scrape = || {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 2], 0)).into()).unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut s: std::net::TcpStream = socket.into();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = std::time::Instant::now();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out, started.elapsed())
    };
    let (out, took) = scrape();
    assert!(out.starts_with("HTTP/1.1 200 OK") && out.contains("websockify_build_info"), "{out}");
    eprintln!("scrape beside 50 idle connections took {took:?}");
    assert!(took < Duration::from_secs(1), "the scrape waited behind idle connections: {took:?}");
    // The idle ones are closed once their head deadline (1 s) passes.
    std::thread::sleep(Duration::from_millis(1500));
    let mut first = &idle[0];
    let mut byte = [0u8; 1];
    first.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let read = first.read(&mut byte);
    let closed = matches!(&read, Ok(0)) || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
    assert!(closed, "an idle connection was let stay: {read:?}");
}

/// Finding 10: a proxy on a privileged port that reads a root-owned key ran as root for its
/// whole life. With --user it binds and reads as root, then becomes that user for good;
/// sessions work, and /proc shows the new ids (this test runs as root, as CI does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_option_drops_root_after_binding() {
    if !nix_is_root() {
        panic!("this test needs root (CI runs as root): it checks the switch away from root");
    }
    let dir = common::pki::TempDir::new("sec-user");
    let ca = common::pki::Ca::new("sec-user-ca");
    let (cert, key) = ca.issue(&dir.0, "server", "localhost", false);
    // The key readable by root only, as a distribution installs it.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let port =
        (600..1000).find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()).expect("a free port < 1024");
    let target = echo_target("127.0.0.1:0").await.to_string();
    let proxy = Proxy::start(&[
        "--threads",
        "3",
        "--user",
        "nobody",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        &format!("127.0.0.1:{port}"),
        &target,
    ]);
    proxy.wait_log("running as nobody (uid 65534, gid 65534)", Duration::from_secs(5));
    // Every thread: the serving threads (`--threads`, 3 here) and the log sinks' exist
    // before the change, and each thread has its own credentials in the kernel.
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{}/task", proxy.child.id())).unwrap().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap();
        let field = |name: &str| {
            status.lines().find_map(|l| l.strip_prefix(name)).unwrap().split_whitespace().collect::<Vec<_>>()
        };
        assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
        assert_eq!(field("Gid:"), ["65534"; 4], "{status}");
        assert!(!field("Groups:").contains(&"0"), "no root group left: {status}");
        threads += 1;
    }
    assert!(threads >= 3, "{threads} threads");
    let url = format!("ws://127.0.0.1:{port}/");
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "100000"])).await.unwrap();
    assert_eq!(out["match"], true, "{out}");

    let (status, out) = run_proxy(&["--user", "no-such-user-here", "127.0.0.1:0", &target]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("no such user \"no-such-user-here\""), "{out}");
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .is_some_and(|ids| ids.split_whitespace().nth(1) == Some("0"))
}
