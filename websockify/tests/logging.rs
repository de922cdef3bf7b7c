//! Logging never stops the proxy, and a log record is one line.
//!
//! Against the real binary: a syslog socket nobody reads, and a stderr pipe nobody reads,
//! while 200 WebSocket sessions go through with `-v` (before issue 17's finding 12 both
//! froze every worker thread, and no session finished); a log file on a full disk loses
//! its lines, not the sessions; a syslog daemon restarted at the same path is reconnected;
//! a request crafted to forge a log line (a percent-encoded newline followed by a fake
//! record, a fake syslog priority) stays one line in the log file, in syslog and in JSON.

mod common;

use std::io::Read as _;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pki::TempDir;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const SESSIONS: usize = 200;
/// Sessions in flight at once.
const CONCURRENCY: usize = 20;
/// Generous: 200 sessions take about a second on a debug build; what is checked is that
/// none waits for a log sink.
const ALL_SESSIONS_WITHIN: Duration = Duration::from_secs(30);

/// The request of the finding: a percent-encoded newline, then a fake record.
const FORGED_TARGET: &str =
    "/x?a=%0a2026-12-04T16:00:09.000000Z%20%20INFO%20conn{id=9%20peer=10.0.0.1:1}:%20FORGED%26token=1";
/// The same for syslog: CR, LF and NUL, then a fake priority and header.
const FORGED_SYSLOG_TARGET: &str =
    "/x?a=%0d%0a%00%3c11%3e1%202026-12-04T16:00:09.000Z%20h%20websockify%201%20-%20-%20FORGED%26token=1";

/// One echo session: a message there and back, then a clean close.
async fn one_session(proxy: SocketAddr) {
    one_session_at(proxy, "/websockify").await;
}

/// [`one_session`] with request target `path` (logged twice with `-v`).
async fn one_session_at(proxy: SocketAddr, path: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{proxy}{path}")).await.expect("session");
    ws.send(Message::binary(b"ping".to_vec())).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], b"ping"),
        other => panic!("expected the echo, got {other:?}"),
    }
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

/// `n` sessions, [`CONCURRENCY`] at a time; fails if they take longer than
/// [`ALL_SESSIONS_WITHIN`]. Returns the time they took.
async fn sessions(proxy: SocketAddr, n: usize) -> Duration {
    sessions_at(proxy, n, "/websockify").await
}

/// [`sessions`] with request target `path`.
async fn sessions_at(proxy: SocketAddr, n: usize, path: &str) -> Duration {
    let started = Instant::now();
    let all = async {
        let mut running = tokio::task::JoinSet::new();
        for _ in 0..n {
            if running.len() >= CONCURRENCY {
                running.join_next().await.unwrap().unwrap();
            }
            let path = path.to_owned();
            running.spawn(async move { one_session_at(proxy, &path).await });
        }
        while let Some(done) = running.join_next().await {
            done.unwrap();
        }
    };
    tokio::time::timeout(ALL_SESSIONS_WITHIN, all)
        .await
        .unwrap_or_else(|_| panic!("{n} sessions did not finish within {ALL_SESSIONS_WITHIN:?}"));
    started.elapsed()
}

/// A request target of 2 KB, logged twice per session with `-v`: 200 sessions log 800 KB,
/// more than a pipe (64 KiB), a socket's send buffer and the sink's queue (512 KiB) hold,
/// so a sink nobody reads drops lines.
fn long_path() -> String {
    format!("/websockify?pad={}", "x".repeat(2000))
}

/// `GET /metrics` on the address the proxy logged.
async fn scrape(proxy: &Proxy) -> String {
    proxy.wait_log("Prometheus metrics at ", Duration::from_secs(5));
    let log = proxy.log();
    let url = log.split("Prometheus metrics at http://").nth(1).and_then(|r| r.split_whitespace().next()).unwrap();
    let addr = url.trim_end_matches("/metrics").to_owned();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

/// A child process killed when the test ends, even by a panic.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of the sample `name` in a scrape.
fn sample(scrape: &str, name: &str) -> f64 {
    let line = scrape.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{scrape}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syslog_nobody_reads_does_not_stop_sessions() {
    let dir = TempDir::new("dead-syslog");
    let echo = echo_target("127.0.0.1:0").await;
    let path = dir.path("log.sock");
    // Bound, never read: its queue (10 datagrams) fills at once.
    let _syslog = UnixDatagram::bind(&path).unwrap();
    let proxy = Proxy::start(&[
        "-v",
        "--syslog",
        &dir.str("log.sock"),
        "--metrics-listen",
        "127.0.0.1:0",
        "127.0.0.1:0",
        &echo.to_string(),
    ]);
    // Long lines, so that drops do not depend on how many datagrams the kernel queues
    // (`net.unix.max_dgram_qlen`: 10 by default, 512 under systemd's sysctl defaults).
    let took = sessions_at(proxy.addr, SESSIONS, &long_path()).await;
    eprintln!("{SESSIONS} sessions with a syslog nobody reads: {took:?}");
    let notice =
        "websockify: syslog is not keeping up; dropping log lines (counted in websockify_log_lines_dropped_total)";
    proxy.wait_log(notice, Duration::from_secs(5));
    let scrape = scrape(&proxy).await;
    let dropped = sample(&scrape, "websockify_log_lines_dropped_total{sink=\"syslog\"}");
    assert!(dropped > 0.0, "{scrape}");
    assert_eq!(sample(&scrape, "websockify_log_lines_dropped_total{sink=\"stderr\"}"), 0.0, "{scrape}");
    // More sessions, more drops: still said once.
    sessions(proxy.addr, 20).await;
    assert_eq!(proxy.log().matches(notice).count(), 1, "{}", proxy.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_does_not_stop_sessions() {
    let echo = echo_target("127.0.0.1:0").await;
    let port = closed_port();
    let mut child = Killed(
        Command::new(binary())
            .args(["-v", &format!("127.0.0.1:{port}"), &echo.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Held, not read (yet): the pipe (64 KiB) fills with the first few hundred lines.
    let mut stderr = child.0.stderr.take().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the proxy did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let took = sessions_at(addr, SESSIONS, &long_path()).await;
    eprintln!("{SESSIONS} sessions with a stderr nobody reads: {took:?}");

    // Now read it: the lines queued before the drops, the notice (once), then what follows.
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let notice = "websockify: stderr is not keeping up; dropping log lines";
    let waiting = Instant::now();
    while !text.lock().unwrap().contains(notice) {
        assert!(waiting.elapsed() < Duration::from_secs(10), "no notice in {}", text.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The reader keeps up now: the last lines get through, and the exit waits for them.
    assert!(Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap().success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    reader.join().unwrap();
    let text = text.lock().unwrap();
    assert_eq!(text.matches(notice).count(), 1, "{text}");
    assert!(text.contains("SIGTERM received"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_log_file_lines_not_sessions() {
    let echo = echo_target("127.0.0.1:0").await;
    // Every write fails with ENOSPC.
    let proxy = Proxy::start(&[
        "-v",
        "--log-file",
        "/dev/full",
        "--metrics-listen",
        "127.0.0.1:0",
        "127.0.0.1:0",
        &echo.to_string(),
    ]);
    sessions(proxy.addr, 20).await;
    let notice = "websockify: cannot write to the log file /dev/full: No space left on device";
    proxy.wait_log(notice, Duration::from_secs(5));
    let scrape = scrape(&proxy).await;
    assert!(sample(&scrape, "websockify_log_lines_dropped_total{sink=\"file\"}") > 0.0, "{scrape}");
    assert_eq!(proxy.log().matches(notice).count(), 1, "{}", proxy.log());
    // Stderr still has every line.
    proxy.wait_log("session closed", Duration::from_secs(5));
}

/// Waits for a datagram on `reader` containing `needle`, making a session through `proxy`
/// before each look; panics after `limit`.
async fn wait_datagram(reader: &UnixDatagram, proxy: SocketAddr, needle: &str, limit: Duration) -> String {
    let started = Instant::now();
    reader.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        assert!(started.elapsed() < limit, "no datagram with {needle:?} within {limit:?}");
        one_session(proxy).await;
        while let Ok(n) = reader.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains(needle) {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_restarted_at_the_same_path_is_reconnected() {
    let dir = TempDir::new("syslog-restart");
    let echo = echo_target("127.0.0.1:0").await;
    let path = dir.path("log.sock");
    let first = UnixDatagram::bind(&path).unwrap();
    let proxy = Proxy::start(&["--syslog", &dir.str("log.sock"), "127.0.0.1:0", &echo.to_string()]);
    wait_datagram(&first, proxy.addr, "WebSocket connection", Duration::from_secs(5)).await;

    // A restart: the old socket closed, a new one bound at the path.
    drop(first);
    std::fs::remove_file(&path).unwrap();
    let second = UnixDatagram::bind(&path).unwrap();
    wait_datagram(&second, proxy.addr, "WebSocket connection", Duration::from_secs(5)).await;
    proxy.wait_log("reconnected", Duration::from_secs(5));

    // An outage: gone for a while (lines lost, said once), then back.
    drop(second);
    std::fs::remove_file(&path).unwrap();
    for _ in 0..5 {
        one_session(proxy.addr).await;
    }
    proxy.wait_log("unreachable", Duration::from_secs(5));
    let third = UnixDatagram::bind(&path).unwrap();
    wait_datagram(&third, proxy.addr, "WebSocket connection", Duration::from_secs(10)).await;
    // The notice is said on stderr before the line is sent, but stderr's writer thread
    // may write it a few milliseconds after the datagram arrives: wait for it.
    let path = path.display().to_string();
    let reconnected = format!("websockify: syslog at {path} reconnected");
    let started = Instant::now();
    while proxy.log().matches(&reconnected).count() < 2 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let log = proxy.log();
    assert_eq!(log.matches(&format!("websockify: syslog at {path} unreachable: ")).count(), 2, "{log}");
    assert_eq!(log.matches(&reconnected).count(), 2, "{log}");
}

/// Sends `head` on a fresh connection and reads the answer's head.
async fn raw_request(proxy: SocketAddr, head: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("an answer");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The request heads of the forgery tests: the forged targets, and an upgrade whose
/// offered subprotocols (logged in the refusal) carry C1 controls (CSI, NEL) and whose
/// target carries a percent-encoded ESC in noVNC's `path=` parameter (logged decoded).
fn forgeries() -> Vec<Vec<u8>> {
    let upgrade = |target: &str, extra: &[u8]| {
        let mut head = format!(
            "GET {target} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        )
        .into_bytes();
        head.extend_from_slice(extra);
        head.extend_from_slice(b"\r\n");
        head
    };
    vec![
        format!("GET {FORGED_TARGET} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes(),
        format!("GET {FORGED_SYSLOG_TARGET} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes(),
        upgrade("/websockify", b"Sec-WebSocket-Protocol: ESCAPE1 \xc2\x9b2J, x\xc2\x85y\r\n"),
        upgrade("/websockify?path=ESCAPE2%1b%5b2J%0d%0a%3ftoken%3d1", b""),
    ]
}

/// No control character in `text` but the newlines between lines.
fn assert_no_controls(text: &str) {
    for (i, line) in text.lines().enumerate() {
        assert!(!line.chars().any(char::is_control), "line {i} has a control character: {line:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_line_stays_one_line_in_the_log_file() {
    let dir = TempDir::new("forged-file");
    let echo = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--log-file", &dir.str("ws.log"), "127.0.0.1:0", &echo.to_string()]);
    for head in forgeries() {
        raw_request(proxy.addr, &head).await;
    }
    let path = dir.path("ws.log");
    let started = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("ESCAPE2") && text.matches("FORGED").count() >= 2 {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not logged:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(text.ends_with('\n'));
    assert_no_controls(&text);
    let forged: Vec<&str> = text.lines().filter(|l| l.contains("FORGED")).collect();
    assert_eq!(forged.len(), 2, "{text}");
    for line in forged {
        // The request's own line: the proxy's time and level, the connection, the method.
        assert!(line.contains("conn{id=") && line.contains(": GET /x?a="), "{line}");
    }
    assert!(!text.lines().any(|l| l.starts_with("2026-12-04T16:00:09")), "{text}");
    assert!(!text.lines().any(|l| l.starts_with('<')), "{text}");
    // The C1 controls of the header and the decoded ESC come out as escapes.
    let escape1 = text.lines().find(|l| l.contains("ESCAPE1")).unwrap_or_else(|| panic!("{text}"));
    assert!(escape1.contains(r"\u{9b}2J") && escape1.contains(r"x\u{85}y"), "{escape1}");
    let escape2 = text.lines().find(|l| l.contains("ESCAPE2")).unwrap_or_else(|| panic!("{text}"));
    assert!(escape2.contains(r"ESCAPE2\x1b[2J") || escape2.contains(r"ESCAPE2\u{1b}[2J"), "{escape2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_line_is_one_syslog_message() {
    let dir = TempDir::new("forged-syslog");
    let echo = echo_target("127.0.0.1:0").await;
    let path = dir.path("log.sock");
    let reader = UnixDatagram::bind(&path).unwrap();
    reader.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let proxy = Proxy::start(&["-v", "--syslog", &dir.str("log.sock"), "127.0.0.1:0", &echo.to_string()]);
    for head in forgeries() {
        raw_request(proxy.addr, &head).await;
    }
    let mut datagrams = Vec::new();
    let mut buf = vec![0u8; 65536];
    let started = Instant::now();
    while datagrams.iter().filter(|d: &&Vec<u8>| d.windows(6).any(|w| w == b"FORGED")).count() < 2
        || !datagrams.iter().any(|d| d.windows(7).any(|w| w == b"ESCAPE2"))
    {
        assert!(started.elapsed() < Duration::from_secs(10), "not logged: {datagrams:?}");
        if let Ok(n) = reader.recv(&mut buf) {
            datagrams.push(buf[..n].to_vec());
        }
    }
    for d in &datagrams {
        let text = std::str::from_utf8(d).unwrap_or_else(|_| panic!("not UTF-8: {d:?}"));
        // One message: one priority, at the start; no control character at all (the
        // message has no newline of its own).
        let header = text.strip_prefix('<').and_then(|t| t.split_once(">1 20")).map(|(pri, _)| pri);
        assert!(header.is_some_and(|pri| pri.parse::<u8>().is_ok()), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
    let forged: Vec<String> = datagrams
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .filter(|d| d.contains("FORGED") && (d.contains(": GET /x?a=") || d.contains("path=/x?a=")))
        .collect();
    assert_eq!(forged.len(), 4, "the debug request line and the 405 line, twice: {forged:#?}");
    // CR LF NUL escaped (at the source or by the writer), the fake header inline.
    assert!(forged.iter().any(|d| d.contains(r"/x?a=\r\n\") && d.contains("<11>1 2026-12-04")), "{forged:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_line_is_one_json_object() {
    let dir = TempDir::new("forged-json");
    let echo = echo_target("127.0.0.1:0").await;
    let log = dir.path("ws.log");
    let _child = Killed(
        Command::new(binary())
            .args(["--log-format", "json", "--log-file", &dir.str("ws.log"), "127.0.0.1:0", &echo.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let port: u16 = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("Listen on ").nth(1) {
            break rest.split('"').next().unwrap().rsplit(':').next().unwrap().trim().parse().unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    for head in forgeries() {
        raw_request(proxy, &head).await;
    }
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("ESCAPE2") && text.matches("FORGED").count() >= 2 {
            break text;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not logged:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_no_controls(&text);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l:?}")))
        .collect();
    let forged: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["message"].as_str().is_some_and(|m| m.contains("FORGED"))).collect();
    assert_eq!(forged.len(), 2, "{text}");
    // The C1 controls survive as JSON escapes: parsed back, the message has them.
    let escape1 = lines
        .iter()
        .filter_map(|l| l["message"].as_str())
        .find(|m| m.contains("ESCAPE1"))
        .unwrap_or_else(|| panic!("{text}"));
    // Parsed back, the message has the control itself, or tracing's own escape of it.
    assert!(escape1.contains("\u{9b}2J") || escape1.contains(r"\u{9b}2J"), "{escape1:?}");
}
