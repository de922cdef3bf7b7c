//! Where connections come from: a UNIX socket with its mode bits, a listening socket or
//! one connection on fd 0 (--inetd, driven by socat), and systemd socket activation
//! (systemd-socket-activate, LISTEN_FDS).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pki::TempDir;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_websockify");

async fn echo_over<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: S, url: &str) {
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws.send(Message::binary(b"hello through".to_vec())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(b"hello through".to_vec()));
    ws.close(None).await.unwrap();
}

async fn wait_for<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn unix_listen_with_mode_bits() {
    let dir = TempDir::new("ulisten");
    let target = echo_target("127.0.0.1:0").await;
    let sock = dir.path("ws.sock");
    let mut child = Command::new(BIN)
        .args(["--unix-listen", sock.to_str().unwrap(), "--unix-listen-mode", "660", &target.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the socket", || sock.exists()).await;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o660);
    echo_over(tokio::net::UnixStream::connect(&sock).await.unwrap(), "ws://localhost/websockify").await;
    // A second instance refuses the live socket instead of stealing it.
    let out = Command::new(BIN).args(["--unix-listen", sock.to_str().unwrap(), "h:1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    // SIGTERM: the socket file is removed.
    Command::new("kill").arg(child.id().to_string()).status().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!sock.exists(), "socket file left behind");
    // The default mode is 0600.
    let mut child = Command::new(BIN)
        .args(["--unix-listen", sock.to_str().unwrap(), &target.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the socket", || sock.exists()).await;
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o7777, 0o600);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn inetd_listening_socket_on_stdin() {
    let target = echo_target("127.0.0.1:0").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = std::os::fd::OwnedFd::from(listener);
    let mut child = Command::new(BIN)
        .arg("--inetd")
        .arg(target.to_string())
        .stdin(Stdio::from(fd))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    echo_over(stream, &format!("ws://{addr}/")).await;
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn inetd_one_connection_per_process_with_socat() {
    let target = echo_target("127.0.0.1:0").await;
    let port = closed_port();
    // socat accepts and execs one proxy per connection with the socket as stdin (nofork).
    let mut socat = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        // Quoted: the target's colon would otherwise split socat's address.
        .arg(format!("EXEC:\"{BIN} --inetd {target}\",nofork"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/websockify");
    let mut ok = None;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            ok = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ok.expect("socat listening");
    for _ in 0..2 {
        let url = url.clone();
        let out =
            tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "200000"])).await.unwrap();
        assert_eq!(out["match"], true, "{out}");
    }
    let _ = socat.kill();
    let _ = socat.wait();
}

#[tokio::test]
async fn systemd_socket_activation() {
    let target = echo_target("127.0.0.1:0").await;
    let port = closed_port();
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}"), BIN, &target.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (Debian's systemd package)");
    let url = format!("ws://127.0.0.1:{port}/websockify");
    wait_for("systemd-socket-activate", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await;
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "100000"])).await.unwrap();
    assert_eq!(out["match"], true, "{out}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = Command::new("pkill").args(["-f", &format!("{BIN} {target}")]).status();
}

/// The shipped unit files pass `systemd-analyze verify`, and the service's command line,
/// given a socket the way websockify.socket gives it, serves and reports readiness.
#[tokio::test]
async fn shipped_systemd_units() {
    let dir = TempDir::new("units");
    let deploy = repo_root().join("deploy");
    let service = std::fs::read_to_string(deploy.join("websockify.service")).unwrap();
    let exec = service.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap().to_owned();
    let service = service.replace("/usr/local/bin/websockify", BIN);
    std::fs::write(dir.path("websockify.service"), &service).unwrap();
    std::fs::copy(deploy.join("websockify.socket"), dir.path("websockify.socket")).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", &dir.str("websockify.service"), &dir.str("websockify.socket")])
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let complaints = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success() && complaints.trim().is_empty(), "{complaints}");

    // ExecStart's arguments, with the log file and target swapped for test ones.
    let target = echo_target("127.0.0.1:0").await;
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| match a {
            "/var/log/websockify/websockify.log" => dir.str("ws.log"),
            "localhost:5900" => target.to_string(),
            other => other.to_owned(),
        })
        .collect();
    let port = closed_port();
    let notify = dir.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{port}"), "-E", &format!("NOTIFY_SOCKET={}", notify.display()), BIN])
        .args(&args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the socket", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await;
    let url = format!("ws://127.0.0.1:{port}/websockify");
    let out = tokio::task::spawn_blocking(move || peer("python", &url, "echo", &["--bytes", "10000"])).await.unwrap();
    assert_eq!(out["match"], true, "{out}");
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    let _ = child.kill();
    let _ = child.wait();
    let _ = Command::new("pkill").args(["-f", &format!("{BIN} --log-file {}", dir.str("ws.log"))]).status();
}
