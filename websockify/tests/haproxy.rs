//! Many instances: two proxies behind HAProxy (Debian's `haproxy`, run with the shipped
//! `deploy/haproxy.cfg`, its ports substituted), in TCP mode with PROXY protocol v2, each
//! started from the shipped `deploy/websockify-instance.toml`, sharing one Redis token
//! store (a real `redis-server`). Sessions work through either instance, a token changed
//! in Redis is seen by both, and one instance stopped with SIGTERM closes its own sessions
//! with 1001 while the other's go on and new sessions reach it. The shipped
//! `deploy/websockify@.service` passes `systemd-analyze verify`.
//! Needs `scripts/peers.sh` (haproxy, redis-server).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::haproxy::Haproxy;
use common::pki::TempDir;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{WebSocketStream, client_async};

const WAIT: Duration = Duration::from_secs(15);

type Ws = WebSocketStream<TcpStream>;

/// A throw-away `redis-server` on 127.0.0.1 (no persistence); killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let ok = Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(ok, "redis-server is missing: run scripts/peers.sh redis (or scripts/peers.sh) to install it");
        let port = closed_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = Redis { child, port };
        let start = Instant::now();
        while redis.cli(&["PING"]) != "PONG" {
            assert!(start.elapsed() < WAIT, "redis-server on port {port} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &self.port.to_string()]).args(args).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP target that greets each connection with its `name` and a newline, then echoes.
async fn named_target(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if s.write_all(format!("{name}\n").as_bytes()).await.is_ok() {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
        }
    });
    addr
}

/// A session through the balancer with `?token=desk`: its WebSocket, the client's local
/// address (which the instance logs as `client=...`, from the PROXY header) and the name
/// of the target it reached.
async fn session(front: u16) -> (Ws, SocketAddr, String) {
    let stream = TcpStream::connect(("127.0.0.1", front)).await.unwrap();
    let local = stream.local_addr().unwrap();
    let (mut ws, _) = client_async(format!("ws://127.0.0.1:{front}/websockify?token=desk"), stream).await.unwrap();
    let greeting = next_data(&mut ws).await;
    let name = String::from_utf8(greeting).unwrap().trim_end().to_owned();
    (ws, local, name)
}

async fn next_data(ws: &mut Ws) -> Vec<u8> {
    match tokio::time::timeout(WAIT, ws.next()).await.expect("a message") {
        Some(Ok(Message::Binary(data))) => data.to_vec(),
        other => panic!("expected data, got {other:?}"),
    }
}

async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::binary(text.as_bytes().to_vec())).await.unwrap();
    assert_eq!(next_data(ws).await, text.as_bytes());
}

/// The shipped HAProxy configuration with the test's ports, logging to stdout.
fn shipped_haproxy_cfg(front: u16, a: SocketAddr, b: SocketAddr) -> String {
    let cfg = std::fs::read_to_string(repo_root().join("deploy/haproxy.cfg")).unwrap();
    for needle in ["log /dev/log local0", "bind :6080", "127.0.0.1:6081", "127.0.0.1:6082"] {
        assert_eq!(cfg.matches(needle).count(), 1, "deploy/haproxy.cfg no longer has {needle:?} once");
    }
    cfg.replace("log /dev/log local0", "log stdout format raw local0")
        .replace("bind :6080", &format!("bind 127.0.0.1:{front}"))
        .replace("127.0.0.1:6081", &a.to_string())
        .replace("127.0.0.1:6082", &b.to_string())
}

/// Which instance served a session: the one that logged its client address (from the
/// PROXY header).
fn served_by(a: &Proxy, b: &Proxy, local: SocketAddr) -> &'static str {
    let needle = format!("client={local}}}");
    let start = Instant::now();
    loop {
        match (a.log().contains(&needle), b.log().contains(&needle)) {
            (true, false) => return "a",
            (false, true) => return "b",
            (true, true) => panic!("{local} in both logs"),
            (false, false) => assert!(start.elapsed() < WAIT, "{local} in no log:\n{}\n{}", a.log(), b.log()),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn two_instances_behind_haproxy_share_redis_and_drain_alone() {
    let redis = Redis::start();
    let (one, two) = (named_target("one").await, named_target("two").await);
    assert_eq!(redis.cli(&["SET", "websockify:desk", &format!("{{\"host\": \"{one}\"}}")]), "OK");
    let instance_toml = repo_root().join("deploy/websockify-instance.toml");
    let source = format!("127.0.0.1:{}:0::websockify", redis.port);
    let start_instance =
        || Proxy::start(&["--config", instance_toml.to_str().unwrap(), "127.0.0.1:0", "--token-source", &source, "-v"]);
    let (a, mut b) = (start_instance(), start_instance());
    let front = closed_port();
    let _haproxy = Haproxy::start(&shipped_haproxy_cfg(front, a.addr, b.addr), &[front]);

    // Long sessions, leastconn: the first two go one to each instance, and so do the next
    // two; each instance looks the token up in Redis for each.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let (mut ws, local, name) = session(front).await;
        assert_eq!(name, "one");
        echo(&mut ws, "before the change").await;
        sessions.push((ws, served_by(&a, &b, local)));
    }
    assert_ne!(sessions[0].1, sessions[1].1, "a:\n{}\nb:\n{}", a.log(), b.log());
    assert_eq!(redis.cli(&["SET", "websockify:desk", &two.to_string()]), "OK");
    for _ in 0..2 {
        let (mut ws, local, name) = session(front).await;
        assert_eq!(name, "two", "the token change is seen at once");
        echo(&mut ws, "after the change").await;
        sessions.push((ws, served_by(&a, &b, local)));
    }
    assert_ne!(sessions[2].1, sessions[3].1);
    // Logs name a token by its id (the first 8 hex digits of its SHA-256), never itself.
    let desk = &sha256_hex(b"desk")[..8];
    for proxy in [&a, &b] {
        proxy.wait_log(&format!("connecting to: {one} (/websockify?token=[{desk}])"), WAIT);
        proxy.wait_log(&format!("connecting to: {two} (/websockify?token=[{desk}])"), WAIT);
        let log = proxy.log();
        assert!(!log.contains("desk"), "{log}");
    }

    // Instance b stops (SIGTERM): its sessions close with 1001 ...
    b.signal("TERM");
    let (mut on_a, on_b): (Vec<_>, Vec<_>) = sessions.into_iter().partition(|(_, by)| *by == "a");
    for (mut ws, _) in on_b {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a close") {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    assert!(b.wait_exit(WAIT).is_some_and(|s| s.success()), "instance b exits 0:\n{}", b.log());
    // ... while a's go on, and new sessions reach a.
    for (ws, _) in &mut on_a {
        echo(ws, "still here").await;
    }
    let (mut ws, local, name) = session(front).await;
    assert_eq!(name, "two");
    echo(&mut ws, "new after the stop").await;
    assert_eq!(served_by(&a, &b, local), "a");
    for (ws, _) in &mut on_a {
        echo(ws, "and still").await;
    }
    assert!(!a.log().contains("WARN") && !a.log().contains("ERROR"), "{}", a.log());
}

/// The template unit passes `systemd-analyze verify` for an instance.
#[test]
fn shipped_template_unit_verifies() {
    let dir = TempDir::new("units@");
    let unit = std::fs::read_to_string(repo_root().join("deploy/websockify@.service")).unwrap();
    assert!(unit.contains("--config /etc/websockify/%i.toml"));
    std::fs::write(
        dir.path("websockify@.service"),
        unit.replace("/usr/local/bin/websockify", env!("CARGO_BIN_EXE_websockify")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", &dir.str("websockify@ws1.service")])
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let complaints = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success() && complaints.trim().is_empty(), "{complaints}");
    // The instance configuration it points at is valid as shipped.
    let toml = repo_root().join("deploy/websockify-instance.toml");
    let (status, out) = run_proxy(&["--config", toml.to_str().unwrap(), "--check-config"]);
    assert!(status.success() && out.contains("configuration OK"), "{out}");
}
