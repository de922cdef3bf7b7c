//! Test harness: the real `websockify` binary started on port 0, real TCP/UNIX targets,
//! and paths to the independent peer clients (Python `websockets`, Node `ws`).

#![allow(dead_code)] // each test file uses its own part of the harness

pub mod admin;
pub mod haproxy;
pub mod measure;
pub mod pki;
pub mod raw;
pub mod redis;
pub mod token_api;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The repository root (the workspace above this package).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A running proxy process; killed on drop.
pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl Proxy {
    /// Starts `websockify ARGS` (the listen address in ARGS should use port 0) and waits for
    /// the "Listen on" line to learn the port.
    pub fn start(args: &[&str]) -> Proxy {
        Self::start_with_env(args, &[])
    }

    /// Like [`Proxy::start`], with extra environment variables for the child.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        Self::spawn(args, env, None)
    }

    /// Like [`Proxy::start`], in working directory `dir`.
    pub fn start_in(dir: &Path, args: &[&str]) -> Proxy {
        Self::spawn(args, &[], Some(dir))
    }

    /// Like [`Proxy::start_with_env`], the binary started through `wrapper` (a program
    /// that execs its arguments, such as `prlimit --nofile=40:40 --`), so that the child's
    /// process id is still the proxy's.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let Some((program, wrapper_args)) = wrapper.split_first() else { return Self::spawn(args, env, None) };
        let mut command = Command::new(program);
        command.args(wrapper_args).arg(binary());
        Self::start_program(command, args, env)
    }

    /// Like [`Proxy::start_with_env`], another program than the binary built here (the
    /// `websockify` a pip wheel installed, `python -m websockify`): `command ARGS`.
    pub fn start_program(command: Command, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        Self::spawn_command(command, args, env, None)
    }

    fn spawn(args: &[&str], env: &[(&str, &str)], dir: Option<&Path>) -> Proxy {
        Self::spawn_command(Command::new(binary()), args, env, dir)
    }

    fn spawn_command(mut command: Command, args: &[&str], env: &[(&str, &str)], dir: Option<&Path>) -> Proxy {
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start websockify");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // The line is in the log before the test learns the address.
                sink.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(addr) = line.split("Listen on ").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().to_owned());
                    }
                }
            }
        });
        let listen = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("websockify did not start: {}", log.lock().unwrap());
            }
        };
        let addr = if let Some(port) = listen.strip_prefix(':') {
            SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap()))
        } else {
            listen.parse().unwrap_or_else(|e| panic!("listen address {listen:?}: {e}"))
        };
        Proxy { child, addr, log }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/websockify", self.addr)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (at most `limit`); panics with the log if not.
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(start.elapsed() < limit, "no {needle:?} in the log within {limit:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The proxy binary: the one cargo built for this test, or `$WEBSOCKIFY_TEST_BIN` (to
/// measure a release build: `WEBSOCKIFY_TEST_BIN=target/release/websockify cargo test
/// --test attack -- --nocapture`).
pub fn binary() -> PathBuf {
    match std::env::var_os("WEBSOCKIFY_TEST_BIN") {
        Some(bin) => repo_root().join(bin),
        None => PathBuf::from(env!("CARGO_BIN_EXE_websockify")),
    }
}

/// Whether [`binary`] is an optimised build (the latency bounds of the attack tests are
/// tighter for it: a debug build spends about ten times the CPU on each request).
pub fn release_binary() -> bool {
    match std::env::var_os("WEBSOCKIFY_TEST_BIN") {
        Some(bin) => bin.to_string_lossy().contains("release"),
        None => !cfg!(debug_assertions),
    }
}

/// Slack on top of twice a legitimate session's baseline p99 (and the p99 of the socat
/// control, which shows what the machine itself adds meanwhile), in the attack and fault
/// tests: 20 ms for a release build. A debug build does about ten times the work per
/// request, so a flood's bursts hold its two worker threads longer: 100 ms.
/// docs/reliability.md quotes release numbers.
pub fn latency_slack() -> Duration {
    Duration::from_millis(if release_binary() { 20 } else { 100 })
}

/// Runs the proxy binary to completion with `args` (for command-line errors).
pub fn run_proxy(args: &[&str]) -> (ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_websockify")).args(args).output().expect("run websockify");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout))
}

/// A TCP echo server on 127.0.0.1 (or `bind`), one task per connection.
pub async fn echo_target(bind: &str) -> SocketAddr {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// What a sink target saw on one connection.
#[derive(Debug)]
pub struct Received {
    pub bytes: u64,
    pub sha256: String,
}

/// A TCP target that reads each connection to EOF and reports what it got.
pub async fn sink_target() -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut sha = Sha256::new();
                let mut bytes = 0u64;
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    sha.update(&buf[..n]);
                    bytes += n as u64;
                }
                let _ = tx.send(Received { bytes, sha256: hex(&sha.finalize()) });
            });
        }
    });
    (addr, rx)
}

/// A TCP target that writes `data` to each connection, then closes it.
pub async fn source_target(data: Arc<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let data = data.clone();
            tokio::spawn(async move {
                let _ = s.write_all(&data).await;
                let _ = s.shutdown().await;
                // Keep reading so the close is a FIN, not a reset.
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

/// A port on 127.0.0.1 where nothing listens.
/// A port nothing listens on. Taken below the ephemeral range (32768 and up): a port freed
/// from `bind(0)` can be handed to another test's listener, and a connect to a closed port
/// in the ephemeral range can pick it as its own source port and connect to itself.
pub fn closed_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 20_000 + (std::process::id() % 6_000) as u16 * 2;
    loop {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 12_000;
        let port = 20_000 + (start - 20_000 + offset) % 12_679;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Sends `data` as one binary message and reads binary messages until as many bytes came
/// back, which must be `data` (an echo target behind the proxy).
pub async fn ws_echo<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, data: &[u8])
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::binary(data.to_vec())).await.unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => got.extend_from_slice(&b),
            other => panic!("{other:?}"),
        }
    }
    assert!(got == data, "the echo differs ({} bytes)", data.len());
}

pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Python interpreter of the peers venv; panics with the set-up command if missing.
pub fn python() -> PathBuf {
    let py = repo_root().join(".peers/venv/bin/python");
    assert!(py.exists(), "Python peers missing: run scripts/peers.sh (the README's test command does)");
    py
}

/// Runs a peer client (`python` or `node`) with a scenario; returns its JSON output.
pub fn peer(kind: &str, url: &str, scenario: &str, opts: &[&str]) -> serde_json::Value {
    let root = repo_root();
    let mut cmd = match kind {
        "python" => {
            let mut c = Command::new(python());
            c.arg(root.join("tests/peers/ws_client.py"));
            c
        }
        "node" => {
            assert!(root.join("tests/node/node_modules/ws").exists(), "Node peers missing: run scripts/peers.sh");
            let mut c = Command::new("node");
            c.arg(root.join("tests/node/client.js"));
            c
        }
        other => panic!("unknown peer {other}"),
    };
    let out = cmd.arg(url).arg(scenario).args(opts).output().expect("run peer client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("{kind} {scenario}: bad output {stdout:?} ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr))
    })
}
