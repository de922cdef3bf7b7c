//! The embedding examples (websockify/examples/) run as the programs they are, driven by a
//! real WebSocket client (tokio-tungstenite) against loopback targets: a custom token
//! resolver, a custom authenticator, run-once, and a graceful shutdown from the host.

mod common;

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The example's binary, built once per test run with the profile of this test binary
/// (`cargo test` alone does not build examples when a single test is chosen).
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    BUILT.get_or_init(|| {
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--locked", "-p", "websockify", "--examples", "--profile", profile])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build --examples failed");
    });
    profile_dir.join("examples").join(name)
}

/// A running example; killed on drop.
struct Example {
    child: Child,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Example {
    /// Starts the example and waits for its "listening on ADDR" line.
    fn start(name: &str, args: &[&str]) -> Example {
        let mut child = Command::new(example(name))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start example {name}: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name} printed {line:?}"))
            .parse()
            .unwrap();
        Example { child, stdout, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Waits for the process to end; returns its status and the rest of its stdout.
    fn wait(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < limit, "the example did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        (status, rest)
    }

    fn interrupt(&self) {
        let ok = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP status of a refused WebSocket handshake.
async fn refused(request: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin) -> u16 {
    match tokio_tungstenite::connect_async(request).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a session"),
    }
}

/// Reads the first binary message of a session, then closes it.
async fn first_message(request: impl tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin) -> Vec<u8> {
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let data = ws.next().await.unwrap().unwrap().into_data().to_vec();
    ws.close(None).await.unwrap();
    data
}

async fn echo_once(url: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::binary(b"ping through".to_vec())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_data().as_ref(), b"ping through");
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_resolver_routes_each_token_to_its_target() {
    let a = source_target(Arc::new(b"console A".to_vec())).await;
    let b = source_target(Arc::new(b"console B".to_vec())).await;
    let ex = Example::start("token_resolver", &["127.0.0.1:0", &format!("vnc1={a}"), &format!("vnc2={b}")]);
    assert_eq!(first_message(ex.url("/?token=vnc2")).await, b"console B");
    assert_eq!(first_message(ex.url("/websockify?token=vnc1")).await, b"console A");
    assert_eq!(refused(ex.url("/?token=nope")).await, 404);
    assert_eq!(refused(ex.url("/")).await, 400);
    ex.interrupt();
    let (status, _) = tokio::task::spawn_blocking(move || ex.wait(Duration::from_secs(10))).await.unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticator_lets_only_known_sessions_through() {
    let target = echo_target("127.0.0.1:0").await;
    let ex = Example::start("authenticator", &["127.0.0.1:0", &target.to_string(), "s3cr3t", "other"]);
    let with_cookie = |cookie: &str| {
        let mut request = ex.url("/").into_client_request().unwrap();
        request.headers_mut().insert("Cookie", cookie.parse().unwrap());
        request
    };
    assert_eq!(refused(ex.url("/")).await, 401);
    assert_eq!(refused(with_cookie("session=guess")).await, 403);
    let (mut ws, _) = tokio_tungstenite::connect_async(with_cookie("theme=dark; session=s3cr3t")).await.unwrap();
    ws.send(Message::binary(b"let in".to_vec())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_data().as_ref(), b"let in");
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    ex.interrupt();
    let (status, out) = tokio::task::spawn_blocking(move || ex.wait(Duration::from_secs(10))).await.unwrap();
    assert!(status.success(), "{status}");
    // The authenticator saw each refused client's address.
    assert!(out.contains("refused 127.0.0.1: no session cookie"), "{out}");
    assert!(out.contains("refused 127.0.0.1: unknown session cookie"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_exits_after_the_first_session() {
    let target = echo_target("127.0.0.1:0").await;
    let ex = Example::start("run_once", &["127.0.0.1:0", &target.to_string()]);
    echo_once(&ex.url("/")).await;
    let (status, rest) = tokio::task::spawn_blocking(move || ex.wait(Duration::from_secs(10))).await.unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(rest, "session over\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_live_sessions_with_1001() {
    let target = echo_target("127.0.0.1:0").await;
    let mut ex = Example::start("graceful_shutdown", &["127.0.0.1:0", &target.to_string()]);
    let (mut ws, _) = tokio_tungstenite::connect_async(ex.url("/")).await.unwrap();
    ws.send(Message::binary(b"still here".to_vec())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_data().as_ref(), b"still here");

    // The host program decides to stop.
    ex.child.stdin.as_mut().unwrap().write_all(b"stop\n").unwrap();
    let close = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a close frame in time");
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected close 1001, got {other:?}"),
    }
    // tokio-tungstenite answers the close; the server then returns from run().
    while ws.next().await.is_some() {}
    let (status, rest) = tokio::task::spawn_blocking(move || ex.wait(Duration::from_secs(10))).await.unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(rest, "stopping\nstopped\n");
}
