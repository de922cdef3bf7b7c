//! Wrap mode (`websockify PORT -- PROGRAM ARGS`) with real programs that bind the port
//! themselves (Python's http.server, socat), reached through the proxy by a WebSocket
//! client crate; each `--wrap-mode`; and the end of the program's process group when the
//! proxy stops.
//!
//! The proxy finds `librebind.so` beside its binary. `cargo test` does not build that
//! cdylib (no test links it), so [`rebind`] runs `cargo build -p rebind` once per test
//! binary for the same profile and target directory: cargo holds no lock while tests
//! run, and a fresh library makes it a no-op.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The interposer beside the proxy binary, built if needed.
fn rebind() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let profile_dir = Path::new(env!("CARGO_BIN_EXE_websockify")).parent().expect("target/<profile>");
        let lib = profile_dir.join("librebind.so");
        if let Some(cargo) = std::env::var_os("CARGO") {
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev",
                Some(other) => other,
            };
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "rebind", "--profile", profile, "--target-dir"])
                .arg(profile_dir.parent().unwrap())
                .arg("--manifest-path")
                .arg(repo_root().join("Cargo.toml"))
                .status()
                .expect("run cargo build -p rebind");
            assert!(status.success(), "cargo build -p rebind failed");
        }
        assert!(lib.exists(), "{} missing: run cargo build -p rebind", lib.display());
        lib
    })
}

/// A port free on every interface now, for the proxy and the program to agree on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
}

/// The proxy wrapping a program; on drop (a failed test), the program's process groups
/// are killed too so that no test leaves a server behind.
struct Wrapped {
    proxy: Proxy,
    port: u16,
}

impl Wrapped {
    /// `websockify OPTIONS 127.0.0.1:PORT -- PROGRAM`; `{port}` in the program's
    /// arguments becomes the port.
    fn start(options: &[&str], program: &[&str]) -> Wrapped {
        Self::start_with_env(options, program, &[])
    }

    fn start_with_env(options: &[&str], program: &[&str], env: &[(&str, &str)]) -> Wrapped {
        rebind();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let program: Vec<String> = program.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
        let mut args: Vec<&str> = options.to_vec();
        args.push(&listen);
        args.push("--");
        args.extend(program.iter().map(String::as_str));
        let proxy = Proxy::start_with_env(&args, env);
        Wrapped { proxy, port }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/websockify", self.port)
    }

    /// The pids (= process group ids) of every start of the program so far.
    fn pids(&self) -> Vec<i32> {
        self.proxy.log().lines().filter_map(|l| l.split("(pid ").nth(1)?.split(')').next()?.parse().ok()).collect()
    }

    /// The loopback port the program was moved to.
    fn moved_port(&self) -> u16 {
        let log = self.proxy.log();
        let line = log.lines().find(|l| l.contains("- proxying from")).expect("settings line");
        line.rsplit("(port ").next().unwrap().trim_end_matches(')').parse().expect("moved port")
    }

    /// SIGTERM; returns the exit code once the proxy has exited.
    fn terminate(&mut self, limit: Duration) -> i32 {
        self.proxy.signal("TERM");
        let status =
            self.proxy.wait_exit(limit).unwrap_or_else(|| panic!("no exit in {limit:?}:\n{}", self.proxy.log()));
        status.code().expect("exit code")
    }

    /// Asserts that no process of any of the program's groups is alive (zombies aside).
    fn assert_program_gone(&self) {
        let pids = self.pids();
        assert!(!pids.is_empty(), "no program start in the log:\n{}", self.proxy.log());
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left: Vec<String> = pids.iter().flat_map(|g| live_group_members(*g)).collect();
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "left running: {left:?}\n{}", self.proxy.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(std::net::TcpListener::bind(("127.0.0.1", self.moved_port())).is_ok(), "the moved port is still held");
    }
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Live (non-zombie) processes of process group `pgid`, as "pid comm".
fn live_group_members(pgid: i32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|f| f.parse::<i32>().ok()) == Some(pgid) && fields.first() != Some(&"Z") {
            found.push(head.replace(" (", " "));
        }
    }
    found
}

/// A client handshake offering the `binary` subprotocol.
fn request(url: &str) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "binary".parse().unwrap());
    req
}

/// One WebSocket session: send `payload` as one binary message, collect what comes back
/// until `done` says it is complete (or the proxy closes the session).
async fn session(url: &str, payload: &[u8], done: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>, String> {
    let exchange = async {
        let (mut ws, _) = connect_async(request(url)).await.map_err(|e| format!("connect: {e}"))?;
        ws.send(Message::binary(payload.to_vec())).await.map_err(|e| format!("send: {e}"))?;
        let mut data = Vec::new();
        while let Some(msg) = ws.next().await {
            match msg.map_err(|e| format!("read: {e}"))? {
                Message::Binary(b) => data.extend_from_slice(&b),
                Message::Close(frame) if !done(&data) => return Err(format!("closed {frame:?} after {data:?}")),
                Message::Close(_) => return Ok(data),
                _ => {}
            }
            if done(&data) {
                let _ = ws.close(None).await;
                return Ok(data);
            }
        }
        Err(format!("stream ended after {data:?}"))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.unwrap_or_else(|_| Err("timed out".into()))
}

/// Repeats [`session`] until the program listens (a refused target ends the session with
/// 1011), at most 15 s.
async fn session_when_ready(url: &str, payload: &[u8], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match session(url, payload, &done).await {
            Ok(data) => return data,
            Err(e) if Instant::now() > deadline => panic!("program never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn echoed(payload: &'static [u8]) -> impl Fn(&[u8]) -> bool {
    move |data| data.len() >= payload.len()
}

fn http_complete(data: &[u8]) -> bool {
    data.windows(11).any(|w| w == b"wrap-marker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_through_the_proxy_then_sigterm_ends_it() {
    let dir = tempdir("http");
    std::fs::write(dir.join("hello.txt"), "wrap-marker\n").unwrap();
    let dir_arg = dir.to_str().unwrap();
    let mut w =
        Wrapped::start(&[], &["python3", "-m", "http.server", "{port}", "--bind", "0.0.0.0", "--directory", dir_arg]);
    let response = session_when_ready(&w.url(), b"GET /hello.txt HTTP/1.0\r\n\r\n", http_complete).await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    // Its own log line (stderr), prefixed with the program name.
    w.proxy.wait_log("python3: 127.0.0.1 - - ", Duration::from_secs(5));
    assert_eq!(w.terminate(Duration::from_secs(10)), 0);
    w.assert_program_gone();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_ipv6_program_is_reached() {
    // An IPv6 socket on [::] accepting IPv4 too (the Linux default): the interposer moves it
    // where the proxy's connections to 127.0.0.1 reach it.
    let script = "import socket, sys\n\
                  s = socket.socket(socket.AF_INET6)\n\
                  s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
                  s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                  s.bind(('::', int(sys.argv[1])))\n\
                  s.listen(5)\n\
                  print('bound', s.getsockname()[0], flush=True)\n\
                  while True:\n    c, _ = s.accept()\n    c.sendall(c.recv(100).upper())\n    c.close()\n";
    let mut w = Wrapped::start(&[], &["python3", "-c", script, "{port}"]);
    let got = session_when_ready(&w.url(), b"dual stack", echoed(b"dual stack")).await;
    assert_eq!(got, b"DUAL STACK");
    w.proxy.wait_log("python3: bound ::ffff:127.0.0.1", Duration::from_secs(5));
    assert_eq!(w.terminate(Duration::from_secs(10)), 0);
    w.assert_program_gone();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socat_echo_and_sigterm_ends_its_forked_children() {
    let mut w = Wrapped::start(&[], &["socat", "TCP-LISTEN:{port},reuseaddr,fork", "EXEC:cat"]);
    let got = session_when_ready(&w.url(), b"hello through socat", echoed(b"hello through socat")).await;
    assert_eq!(got, b"hello through socat");
    // A session left open: socat has forked a child and `cat` for it, in the same group.
    let (mut ws, _) = connect_async(request(&w.url())).await.unwrap();
    ws.send(Message::binary(b"open".to_vec())).await.unwrap();
    assert!(matches!(ws.next().await, Some(Ok(Message::Binary(b))) if b.as_ref() == b"open"));
    let pgid = w.pids()[0];
    assert!(live_group_members(pgid).len() >= 3, "{:?}", live_group_members(pgid));
    let close = tokio::spawn(close_code(ws));
    assert_eq!(w.terminate(Duration::from_secs(15)), 0);
    w.assert_program_gone();
    assert_eq!(close.await.unwrap(), Some(1001));
}

/// `--unix-target SOCK -- PROGRAM` (Jupyter desktop proxies run a VNC server on a UNIX
/// socket so): the program is started and cleaned up as in wrap mode, and sessions go to
/// the socket. The Python websockify, run the same way beside ours (with our interposer
/// as its `rebind.so`: its pip package ships none), serves the same session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_target_with_a_wrapped_program() {
    let dir = common::pki::TempDir::new("wrap-unix");
    let sock = dir.str("vnc.sock");
    let program = format!("UNIX-LISTEN:{sock},fork");
    let mut w = Wrapped::start(&["--unix-target", &sock], &["socat", &program, "EXEC:cat"]);
    let data = session_when_ready(&w.url(), b"over a unix socket", echoed(b"over a unix socket")).await;
    assert_eq!(data, b"over a unix socket");
    assert!(w.proxy.log().contains(&format!("proxying from 127.0.0.1:{} to {sock}", w.port)), "{}", w.proxy.log());
    let pids = w.pids();
    assert_eq!(pids.len(), 1, "{}", w.proxy.log());
    assert_eq!(w.terminate(Duration::from_secs(10)), 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !live_group_members(pids[0]).is_empty() {
        assert!(Instant::now() < deadline, "the program outlived the proxy: {:?}", live_group_members(pids[0]));
        std::thread::sleep(Duration::from_millis(20));
    }

    // Side by side: the Python websockify with the same command line.
    let upstream_bin = repo_root().join(".peers/venv/bin/websockify");
    assert!(upstream_bin.exists(), "the Python websockify is missing: run scripts/peers.sh");
    std::os::unix::fs::symlink(&upstream_bin, dir.path("websockify")).unwrap();
    std::os::unix::fs::symlink(rebind(), dir.path("rebind.so")).unwrap();
    let up_sock = dir.str("up.sock");
    let port = free_port();
    let mut upstream = Command::new(dir.path("websockify"))
        .args(["--unix-target", &up_sock, &format!("127.0.0.1:{port}"), "--", "socat"])
        .arg(format!("UNIX-LISTEN:{up_sock},fork"))
        .arg("EXEC:cat")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/websockify");
    let data = session_when_ready(&url, b"upstream too", echoed(b"upstream too")).await;
    let _ = Command::new("pkill").args(["-f", &format!("UNIX-LISTEN:{up_sock}")]).status();
    let _ = upstream.kill();
    let _ = upstream.wait();
    assert_eq!(data, b"upstream too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_mode_exits_with_the_program_status() {
    let mut w = Wrapped::start(&[], &["sh", "-c", "echo about to exit; sleep 1; exit 7"]);
    let status = w.proxy.wait_exit(Duration::from_secs(20)).expect("proxy exits with the program");
    assert_eq!(status.code(), Some(7), "{}", w.proxy.log());
    let log = w.proxy.log();
    let said = log.find("sh: about to exit").expect("program output logged");
    let exited = log.find("exited with status 7").expect("exit logged");
    assert!(said < exited, "{log}");

    let mut w = Wrapped::start(&["--wrap-mode=exit"], &["sh", "-c", "kill -KILL $$"]);
    let status = w.proxy.wait_exit(Duration::from_secs(20)).expect("proxy exits with the program");
    assert_eq!(status.code(), Some(128 + 9), "{}", w.proxy.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_mode_closes_sessions_and_ends_what_the_program_left() {
    // The shell exits with 3 after 3 s; the socat it started is still serving a session.
    let mut w = Wrapped::start(&[], &["sh", "-c", "socat TCP-LISTEN:{port},reuseaddr,fork EXEC:cat & sleep 3; exit 3"]);
    let deadline = Instant::now() + Duration::from_millis(2500);
    let ws = loop {
        let (mut ws, _) = connect_async(request(&w.url())).await.unwrap();
        let _ = ws.send(Message::binary(b"ping".to_vec())).await;
        if let Some(Ok(Message::Binary(_))) = ws.next().await {
            break ws;
        }
        assert!(Instant::now() < deadline, "socat never answered:\n{}", w.proxy.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let close = tokio::time::timeout(Duration::from_secs(15), close_code(ws)).await.expect("closed in time");
    assert_eq!(close, Some(1001));
    let status = w.proxy.wait_exit(Duration::from_secs(20)).expect("proxy exits");
    assert_eq!(status.code(), Some(3), "{}", w.proxy.log());
    w.assert_program_gone();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_mode_keeps_serving_a_daemonized_program() {
    // "Daemonizes": starts the server in the background and exits at once.
    let mut w = Wrapped::start(
        &["--wrap-mode", "ignore"],
        &["sh", "-c", "socat TCP-LISTEN:{port},reuseaddr,fork EXEC:cat & exit 0"],
    );
    w.proxy.wait_log("exited with status 0", Duration::from_secs(10));
    w.proxy.wait_log("still serving", Duration::from_secs(5));
    let got = session_when_ready(&w.url(), b"after the parent left", echoed(b"after the parent left")).await;
    assert_eq!(got, b"after the parent left");
    assert!(w.proxy.child.try_wait().unwrap().is_none(), "the proxy keeps running");
    assert_eq!(w.terminate(Duration::from_secs(15)), 0);
    w.assert_program_gone();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respawn_mode_serves_again_after_each_exit() {
    // Without `fork`, socat serves one connection and exits, like an inetd-style telnetd.
    let mut w = Wrapped::start(&["--wrap-mode", "respawn"], &["socat", "TCP-LISTEN:{port},reuseaddr", "EXEC:cat"]);
    for round in [&b"first"[..], b"second", b"third"] {
        let got = session_when_ready(&w.url(), round, move |d: &[u8]| d.len() >= round.len()).await;
        assert_eq!(got, round);
    }
    assert!(w.pids().len() >= 3, "{}", w.proxy.log());
    assert_eq!(w.terminate(Duration::from_secs(15)), 0);
    w.assert_program_gone();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respawn_is_throttled_to_three_starts_per_ten_seconds() {
    let dir = tempdir("respawn");
    let starts = dir.join("starts");
    let script = format!("echo start >> '{}'", starts.display());
    let mut w = Wrapped::start(&["--wrap-mode", "respawn"], &["sh", "-c", &script]);
    let count = || std::fs::read_to_string(&starts).map_or(0, |s| s.lines().count());
    let deadline = Instant::now() + Duration::from_secs(10);
    while count() < 3 {
        assert!(Instant::now() < deadline, "three quick starts expected:\n{}", w.proxy.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = Instant::now();
    w.proxy.wait_log("respawning too fast", Duration::from_secs(5));
    // The 4th start is due 10 s after the mean of the first three (all within ~now), the
    // 5th ~13.3 s after them.
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(third.elapsed())).await;
    assert_eq!(count(), 3, "{}", w.proxy.log());
    tokio::time::sleep(Duration::from_millis(11_500).saturating_sub(third.elapsed())).await;
    assert_eq!(count(), 4, "{}", w.proxy.log());
    // Waiting out the throttle does not delay a shutdown.
    let asked = Instant::now();
    assert_eq!(w.terminate(Duration::from_secs(5)), 0);
    assert!(asked.elapsed() < Duration::from_secs(3), "{:?}", asked.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_ignoring_sigterm_gets_sigkill_after_the_grace_period() {
    let mut w = Wrapped::start(&[], &["sh", "-c", "trap '' TERM; echo ready; sleep 600"]);
    w.proxy.wait_log("sh: ready", Duration::from_secs(10));
    let asked = Instant::now();
    assert_eq!(w.terminate(Duration::from_secs(20)), 0);
    let took = asked.elapsed();
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(10), "{took:?}");
    w.proxy.wait_log("sending SIGKILL", Duration::from_secs(5));
    w.assert_program_gone();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_of_the_program() {
    // An LD_PRELOAD of the proxy's environment stays, after the interposer.
    let w = Wrapped::start_with_env(
        &[],
        &["sh", "-c", "echo \"env: $LD_PRELOAD $REBIND_OLD_PORT $REBIND_NEW_PORT\"; sleep 600"],
        &[("LD_PRELOAD", "libc.so.6")],
    );
    w.proxy.wait_log("sh: env: ", Duration::from_secs(10));
    let want =
        format!("sh: env: {}:libc.so.6 {} {}", rebind().canonicalize().unwrap().display(), w.port, w.moved_port());
    w.proxy.wait_log(&want, Duration::from_secs(5));
}

/// Security review, finding 2: the secrets the proxy reads from its environment (Basic-auth
/// credentials, the key password, the Redis password) do not reach the wrapped program,
/// neither its variables nor its /proc/PID/environ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_withheld_from_the_program() {
    let script = "echo \"env: [$WEBSOCKIFY_AUTH_SOURCE][$WEBSOCKIFY_KEY_PASSWORD][$WEBSOCKIFY_REDIS_PASSWORD][$KEEP]\"; \
                  echo \"environ: $(tr '\\0' '\\n' < /proc/$$/environ | grep -c SECRET)\"; sleep 600";
    let w = Wrapped::start_with_env(
        &["--auth-plugin", "BasicHTTPAuth"],
        &["sh", "-c", script],
        &[
            ("WEBSOCKIFY_AUTH_SOURCE", "admin:SECRET-basic"),
            ("WEBSOCKIFY_KEY_PASSWORD", "SECRET-key"),
            ("WEBSOCKIFY_REDIS_PASSWORD", "SECRET-redis"),
            ("KEEP", "kept"),
        ],
    );
    w.proxy.wait_log("sh: env: [][][][kept]", Duration::from_secs(10));
    w.proxy.wait_log("sh: environ: 0", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnetd_behind_socat_gives_a_shell() {
    // inetutils' telnetd only runs from inetd: socat listens and execs one per connection,
    // with the connection as its stdin/stdout. Its "login" is a shell.
    let telnetd = Path::new("/usr/sbin/telnetd");
    assert!(telnetd.exists(), "telnetd missing: run scripts/peers.sh (installs inetutils-telnetd)");
    let dir = tempdir("telnetd");
    let login = dir.join("login.sh");
    std::fs::write(&login, "#!/bin/sh\nPS1='wrap$ ' exec /bin/sh -i\n").unwrap();
    std::fs::set_permissions(&login, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let exec = format!("EXEC:{} -h -E {},nofork", telnetd.display(), login.display());
    let mut w = Wrapped::start(&[], &["socat", "TCP-LISTEN:{port},reuseaddr,fork", &exec]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut ws, mut telnet) = loop {
        let (mut ws, _) = connect_async(request(&w.url())).await.unwrap();
        // A refused target ends the session at once (1011); telnetd starts with options.
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Binary(first)))) => {
                let mut telnet = Telnet::default();
                let reply = telnet.feed(&first);
                if !reply.is_empty() {
                    ws.send(Message::binary(reply)).await.unwrap();
                }
                break (ws, telnet);
            }
            other => assert!(Instant::now() < deadline, "telnetd never answered: {other:?}\n{}", w.proxy.log()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut asked = false;
    let answered = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if !asked && telnet.text.ends_with(b"wrap$ ") {
                ws.send(Message::binary(b"echo $((6*7))\r\n".to_vec())).await.unwrap();
                asked = true;
            }
            if asked && telnet.text.windows(2).any(|w| w == b"42") {
                return;
            }
            match ws.next().await {
                Some(Ok(Message::Binary(data))) => {
                    let reply = telnet.feed(&data);
                    if !reply.is_empty() {
                        ws.send(Message::binary(reply)).await.unwrap();
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("session ended: {other:?}"),
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "no shell answer; got {:?}\n{}", String::from_utf8_lossy(&telnet.text), w.proxy.log());
    let close = tokio::spawn(close_code(ws));
    assert_eq!(w.terminate(Duration::from_secs(15)), 0);
    w.assert_program_gone();
    assert_eq!(close.await.unwrap(), Some(1001));
}

/// Reads (answering the close handshake) until the server's close frame; its code.
async fn close_code(mut ws: Ws) -> Option<u16> {
    while let Some(msg) = ws.next().await {
        if let Message::Close(frame) = msg.ok()? {
            return frame.map(|f| u16::from(f.code));
        }
    }
    None
}

/// The client side of telnet option negotiation, refusing every option (the server then
/// uses the defaults: a plain network virtual terminal).
#[derive(Default)]
struct Telnet {
    pending: Vec<u8>,
    /// The data received, commands removed.
    text: Vec<u8>,
}

impl Telnet {
    const IAC: u8 = 0xff;
    const SB: u8 = 0xfa;
    const SE: u8 = 0xf0;
    const WILL: u8 = 0xfb;
    const WONT: u8 = 0xfc;
    const DO: u8 = 0xfd;
    const DONT: u8 = 0xfe;

    /// Takes bytes from the server; returns the replies to send.
    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(data);
        let mut reply = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            let rest = &self.pending[i..];
            if rest[0] != Self::IAC {
                self.text.push(rest[0]);
                i += 1;
                continue;
            }
            match rest.get(1) {
                None => break,
                Some(&Self::IAC) => {
                    self.text.push(Self::IAC);
                    i += 2;
                }
                Some(&cmd @ (Self::WILL | Self::WONT | Self::DO | Self::DONT)) => {
                    let Some(&option) = rest.get(2) else { break };
                    match cmd {
                        Self::DO => reply.extend_from_slice(&[Self::IAC, Self::WONT, option]),
                        Self::WILL => reply.extend_from_slice(&[Self::IAC, Self::DONT, option]),
                        _ => {}
                    }
                    i += 3;
                }
                Some(&Self::SB) => match rest.windows(2).position(|w| w == [Self::IAC, Self::SE]) {
                    Some(end) => i += end + 2,
                    None => break,
                },
                Some(_) => i += 2,
            }
        }
        self.pending.drain(..i);
        reply
    }
}

#[test]
fn command_line_errors() {
    let (status, out) = run_proxy(&["--wrap-mode", "bogus", "6080", "--", "prog"]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.contains("bogus"), "{out}");
    rebind();
    let (status, out) = run_proxy(&["127.0.0.1:0", "--", "/nonexistent/program"]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("cannot start '/nonexistent/program'"), "{out}");
}

#[test]
fn interposer_search() {
    // The binary alone in a directory (a hard link: /proc/self/exe then names this one).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wrap-search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("websockify");
    std::fs::hard_link(env!("CARGO_BIN_EXE_websockify"), &exe).unwrap();
    let run = |env: &[(&str, &Path)]| {
        let out = Command::new(&exe)
            .args(["127.0.0.1:0", "--", "sh", "-c", "exit 5"])
            .env_remove("WEBSOCKIFY_REBIND")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&dir.join("librebind.so").display().to_string()), "{err}");
    assert!(err.contains("lib/websockify/librebind.so"), "{err}");
    assert!(err.contains("cargo build"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // WEBSOCKIFY_REBIND names one.
    let (code, err) = run(&[("WEBSOCKIFY_REBIND", rebind())]);
    assert_eq!(code, Some(5), "{err}");
    // The installed layout: ../lib/websockify/ beside bin/.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(dir.join("lib/websockify")).unwrap();
    std::fs::rename(&exe, bin.join("websockify")).unwrap();
    std::fs::copy(rebind(), dir.join("lib/websockify/librebind.so")).unwrap();
    let out = Command::new(bin.join("websockify"))
        .args(["127.0.0.1:0", "--", "sh", "-c", "exit 6"])
        .env_remove("WEBSOCKIFY_REBIND")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the target's tmp dir.
fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wrap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
