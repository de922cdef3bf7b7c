//! Living on a host: -D (returns at once, serves, stops cleanly on SIGTERM), syslog over
//! UDP and a UNIX datagram socket (RFC 5424 and BSD), --log-file reopened on SIGHUP, and
//! sd_notify readiness.

mod common;

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::TempDir;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_websockify");

fn wait<F: FnMut() -> bool>(what: &str, mut f: F) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_returns_at_once_serves_and_stops() {
    let dir = TempDir::new("daemon");
    let target = echo_target("127.0.0.1:0").await;
    let port = closed_port();
    let started = Instant::now();
    let status = Command::new(BIN)
        .args(["-D", "--pid-file", &dir.str("ws.pid"), "--log-file", &dir.str("ws.log")])
        .args([&format!("127.0.0.1:{port}"), &target.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(3), "-D returns at once");
    let pid_path = dir.path("ws.pid");
    wait("the pid file", || std::fs::read_to_string(&pid_path).is_ok_and(|p| !p.trim().is_empty()));
    let pid = std::fs::read_to_string(&pid_path).unwrap().trim().to_owned();
    let url = format!("ws://127.0.0.1:{port}/websockify");
    let out = tokio::task::spawn_blocking(move || {
        wait("the daemon's port", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        peer("python", &url, "echo", &["--bytes", "100000"])
    })
    .await
    .unwrap();
    assert_eq!(out["match"], true, "{out}");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let proc_dir = format!("/proc/{pid}");
    wait("the daemon to exit", || !std::path::Path::new(&proc_dir).exists() || is_zombie(&proc_dir));
    let log = std::fs::read_to_string(dir.path("ws.log")).unwrap();
    assert!(log.contains("WebSocket connection") && log.contains("SIGTERM received"), "{log}");
}

fn is_zombie(proc_dir: &str) -> bool {
    std::fs::read_to_string(format!("{proc_dir}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}

#[tokio::test]
async fn syslog_udp_rfc5424_and_unix_bsd() {
    let dir = TempDir::new("syslog");
    let target = echo_target("127.0.0.1:0").await;
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _a = Proxy::start(&["--syslog", &udp.local_addr().unwrap().to_string(), "127.0.0.1:0", &target.to_string()]);
    let mut buf = [0u8; 2048];
    let n = udp.recv(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    // <14> = facility user (1) * 8 + severity info (6); version 1; app websockify.
    assert!(line.starts_with("<14>1 20"), "{line}");
    assert!(line.contains(" websockify ") && line.contains("WebSocket server settings"), "{line}");
    let path = dir.path("log.sock");
    let unix = UnixDatagram::bind(&path).unwrap();
    unix.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _b = Proxy::start(&["--syslog", path.to_str().unwrap(), "--legacy-syslog", "127.0.0.1:0", &target.to_string()]);
    let n = unix.recv(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(line.starts_with("<14>websockify["), "{line}");
    assert!(line.contains("]: WebSocket server settings"), "{line}");
    // A syslog destination that does not exist is a clear start-up error.
    let (status, out) = run_proxy(&["--syslog", "/nonexistent/log", "127.0.0.1:0", "h:1"]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("cannot reach syslog"), "{out}");
}

#[tokio::test]
async fn log_file_reopened_on_sighup() {
    let dir = TempDir::new("logrotate");
    let target = echo_target("127.0.0.1:0").await;
    let log = dir.path("ws.log");
    let mut child = Command::new(BIN)
        .args(["--log-file", log.to_str().unwrap(), "127.0.0.1:0", &target.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait("the log", || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("proxying from")));
    // logrotate: move the file away, then SIGHUP.
    std::fs::rename(&log, dir.path("ws.log.1")).unwrap();
    Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    wait("a fresh log file", || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("reopened")));
    let old = std::fs::read_to_string(dir.path("ws.log.1")).unwrap();
    assert!(old.contains("SIGHUP received"), "{old}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn sd_notify_ready() {
    let dir = TempDir::new("notify");
    let target = echo_target("127.0.0.1:0").await;
    let path = dir.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _proxy =
        Proxy::start_with_env(&["127.0.0.1:0", &target.to_string()], &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
}
