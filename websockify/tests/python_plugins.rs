//! Custom Python plugins written for upstream (`tests/plugins/`), loaded by dotted class
//! path: real interpreters (the system `python3`, with our compatible `websockify` modules,
//! and the peers venv's, with upstream installed), a real SQLite file, redis-server and
//! token API, the same plugins run under the Python websockify and the answers compared,
//! and plugins that raise, hang and kill their own process.

mod common;

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::TempDir;
use common::redis::Redis;
use common::upstream::Upstream;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

fn plugins_dir() -> String {
    repo_root().join("tests/plugins").to_string_lossy().into_owned()
}

/// Our proxy with `tests/plugins` on `PYTHONPATH`.
fn ours(args: &[&str]) -> Proxy {
    let mut all = vec!["-v"];
    all.extend_from_slice(args);
    Proxy::start_with_env(&all, &[("PYTHONPATH", &plugins_dir())])
}

/// The Python websockify with `tests/plugins` on `PYTHONPATH`.
fn start_upstream(args: &[&str], target: Option<&str>) -> Upstream {
    Upstream::start(&std::env::temp_dir(), args, target, &[("PYTHONPATH", &plugins_dir())])
}

/// A WebSocket handshake by hand: the status and headers of the answer (the same client
/// for both proxies, so that their answers compare).
fn answer(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Ws {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (k, v) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    match tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(req)).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => panic!("{addr}{path}: {e}"),
        Err(_) => panic!("{addr}{path}: no answer"),
    }
}

async fn echo(ws: &mut Ws, data: &[u8]) {
    ws.send(Message::binary(data.to_vec())).await.unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => got.extend_from_slice(&b),
            Ok(Some(Ok(Message::Text(t)))) => got.extend_from_slice(t.as_bytes()),
            other => panic!("echo: {other:?}"),
        }
    }
    assert_eq!(got, data);
}

/// A session through `addr` with `path` echoes bytes.
async fn works(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) {
    let mut ws = open(addr, path, headers).await;
    echo(&mut ws, format!("through {path}").as_bytes()).await;
    let _ = ws.close(None).await;
}

fn venv_python() -> String {
    python().to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_plugins_over_sqlite_redis_and_an_api_as_upstream_runs_them() {
    let dir = TempDir::new("pyplug");
    let target = echo_target("127.0.0.1:0").await;
    let db = dir.path("tokens.db");
    let made = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3, sys; d = sqlite3.connect(sys.argv[1]); \
             d.execute('CREATE TABLE tokens(token, host, port)'); \
             d.execute(\"INSERT INTO tokens VALUES ('vm1', '127.0.0.1', {})\"); d.commit()",
            target.port()
        ))
        .arg(&db)
        .status()
        .unwrap();
    assert!(made.success());
    let db = db.to_string_lossy().into_owned();

    // SQLite: under the system python3 (our compatible websockify.token_plugins) and the
    // venv's (upstream's), and under the Python websockify itself.
    for python in ["python3", &venv_python()] {
        let proxy = ours(&[
            "--plugin-python",
            python,
            "--token-plugin",
            "tokens_sqlite.SqliteTokens",
            "--token-source",
            &db,
            "127.0.0.1:0",
        ]);
        works(proxy.addr, "/?token=vm1", &[]).await;
        assert_eq!(answer(proxy.addr, "/?token=nope", &[]).0, 404, "{python}");
        proxy.wait_log("Python plugin host started", Duration::from_secs(5));
    }
    let upstream = start_upstream(&["--token-plugin", "tokens_sqlite.SqliteTokens", "--token-source", &db], None);
    works(upstream.addr(), "/?token=vm1", &[]).await;

    // Redis through the `redis` package of the venv.
    let redis = Redis::start(None);
    let set = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "SET", "vnc:vm2", &target.to_string()])
        .output()
        .unwrap();
    assert!(set.status.success());
    let source = format!("127.0.0.1:{}", redis.port);
    let proxy = ours(&[
        "--plugin-python",
        &venv_python(),
        "--token-plugin",
        "tokens_redis.RedisTokens",
        "--token-source",
        &source,
        "127.0.0.1:0",
    ]);
    works(proxy.addr, "/?token=vm2", &[]).await;
    assert_eq!(answer(proxy.addr, "/?token=nope", &[]).0, 404);
    let upstream = start_upstream(&["--token-plugin", "tokens_redis.RedisTokens", "--token-source", &source], None);
    works(upstream.addr(), "/?token=vm2", &[]).await;

    // A BaseTokenAPI subclass with its own process_result: `requests` (venv, upstream's
    // class) and `urllib` (our class, when `requests` is missing: `-I` hides user site
    // packages, and a plain venv without it stands for a site that lacks it).
    let bare = dir.path("bare");
    assert!(Command::new("python3").args(["-m", "venv", "--without-pip"]).arg(&bare).status().unwrap().success());
    let bare_python = bare.join("bin/python").to_string_lossy().into_owned();
    let api = TokenApi::start(&dir, target);
    let source = format!("http://127.0.0.1:{}/json/%s", api.port);
    for python in [venv_python(), bare_python] {
        let proxy = ours(&[
            "--plugin-python",
            &python,
            "--token-plugin",
            "tokens_api.JsonApi",
            "--token-source",
            &source,
            "127.0.0.1:0",
        ]);
        works(proxy.addr, "/?token=vm1", &[]).await;
        assert_eq!(answer(proxy.addr, "/?token=nope", &[]).0, 404, "{python}");
    }
    let upstream = start_upstream(&["--token-plugin", "tokens_api.JsonApi", "--token-source", &source], None);
    works(upstream.addr(), "/?token=vm1", &[]).await;
}

/// tests/peers/token_api.py knowing `vm1`.
struct TokenApi {
    child: Child,
    port: String,
}

impl TokenApi {
    fn start(dir: &TempDir, target: SocketAddr) -> TokenApi {
        let port_file = dir.path("api-port");
        let child = Command::new(python())
            .arg(repo_root().join("tests/peers/token_api.py"))
            .arg(&port_file)
            .arg(format!("vm1=127.0.0.1:{}", target.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Owned (killed and waited for on drop) before anything may panic.
        let mut api = TokenApi { child, port: String::new() };
        let start = Instant::now();
        loop {
            if let Ok(port) = std::fs::read_to_string(&port_file)
                && !port.is_empty()
            {
                api.port = port;
                return api;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "token_api.py did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TokenApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_names_run_our_builtins_and_other_paths_run_python() {
    let dir = TempDir::new("pyname");
    let target = echo_target("127.0.0.1:0").await;
    let file = dir.path("tokens");
    std::fs::write(&file, format!("vm1: {target}\n")).unwrap();
    let file = file.to_string_lossy().into_owned();
    // Both spellings of a built-in name run the Rust TokenFile: no Python is started.
    for name in ["TokenFile", "websockify.token_plugins.TokenFile"] {
        let proxy = ours(&["--token-plugin", name, "--token-source", &file, "127.0.0.1:0"]);
        works(proxy.addr, "/?token=vm1", &[]).await;
        assert!(!proxy.log().contains("Python plugin"), "{}", proxy.log());
    }
    // Upstream's own class under another dotted name runs in Python (the venv has upstream).
    let proxy = ours(&[
        "--plugin-python",
        &venv_python(),
        "--token-plugin",
        "upstream_alias.TokenFile",
        "--token-source",
        &file,
        "127.0.0.1:0",
    ]);
    works(proxy.addr, "/?token=vm1", &[]).await;
    assert_eq!(answer(proxy.addr, "/?token=nope", &[]).0, 404);
    proxy.wait_log("plugin upstream_alias.TokenFile: Python plugin host started", Duration::from_secs(5));
    // An upstream class we have no built-in for, by its full name: a BasePlugin knows no token.
    let proxy = ours(&["--token-plugin", "websockify.token_plugins.BasePlugin", "--token-source", "x", "127.0.0.1:0"]);
    assert_eq!(answer(proxy.addr, "/?token=vm1", &[]).0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_plugins_answer_as_upstream() {
    let target = echo_target("127.0.0.1:0").await;
    let t = target.to_string();
    let key = [("X-Api-Key", "s3cret")];
    let proxy = ours(&["--auth-plugin", "auth_header.ApiKeyAuth", "--auth-source", "s3cret", "127.0.0.1:0", &t]);
    let upstream = start_upstream(&["--auth-plugin", "auth_header.ApiKeyAuth", "--auth-source", "s3cret"], Some(&t));
    for addr in [proxy.addr, upstream.addr()] {
        works(addr, "/", &key).await;
        let (status, headers) = answer(addr, "/", &[("X-Api-Key", "wrong")]);
        assert_eq!(status, 403, "{addr}");
        assert_eq!(header(&headers, "x-denied-by"), Some("ApiKeyAuth"), "{addr}: {headers:?}");
    }
    proxy.wait_log("AuthenticationError 403 bad or missing key", Duration::from_secs(5));
    // Upstream passes the target to authenticate(); so do we, for a fixed target.
    let proxy = ours(&["--auth-plugin", "misbehaving.TargetAuth", "--auth-source", &t, "127.0.0.1:0", &t]);
    let upstream = start_upstream(&["--auth-plugin", "misbehaving.TargetAuth", "--auth-source", &t], Some(&t));
    for addr in [proxy.addr, upstream.addr()] {
        works(addr, "/", &[]).await;
    }
    // A plain exception: a 502 and the exception in the log (upstream drops the connection).
    let proxy = ours(&["--auth-plugin", "misbehaving.BrokenAuth", "127.0.0.1:0", &t]);
    assert_eq!(answer(proxy.addr, "/", &[]).0, 502);
    proxy.wait_log("plugin misbehaving.BrokenAuth raised RuntimeError: auth backend down", Duration::from_secs(5));
    // A hung check: a 504 at the deadline, and meanwhile another request's check answers.
    // On one serving thread (`--threads 1`): the hung check's wait holds no thread.
    let proxy =
        ours(&["--threads", "1", "--plugin-timeout", "3", "--auth-plugin", "misbehaving.SlowAuth", "127.0.0.1:0", &t]);
    let addr = proxy.addr;
    let slow = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        (answer(addr, "/", &[("X-Slow", "1")]).0, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    works(addr, "/", &[]).await;
    assert!(start.elapsed() < Duration::from_millis(1500), "held up by the hung check: {:?}", start.elapsed());
    let (status, took) = slow.await.unwrap();
    assert_eq!(status, 504);
    assert!(took < Duration::from_secs(6), "{took:?}");
    proxy.wait_log("plugin misbehaving.SlowAuth timed out after 3s", Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_raises_hangs_or_dies_costs_only_its_own_lookup() {
    let target = echo_target("127.0.0.1:0").await;
    let t = target.to_string();
    let proxy =
        ours(&["--plugin-timeout", "1", "--token-plugin", "misbehaving.Moody", "--token-source", &t, "127.0.0.1:0"]);
    let addr = proxy.addr;
    let mut live = open(addr, "/?token=vm1", &[]).await;
    echo(&mut live, b"before").await;

    // Raises: 502, the plugin and the exception in the log, not the token.
    let secret = "raise-SECRET-4242";
    assert_eq!(answer(addr, &format!("/?token={secret}"), &[]).0, 502);
    proxy.wait_log("plugin misbehaving.Moody raised ValueError: no database for", Duration::from_secs(5));
    assert!(!proxy.log().contains(secret), "{}", proxy.log());

    // Hangs: 504 at the deadline, while another session's lookup is not held up.
    let slow = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        (answer(addr, "/?token=slow", &[]).0, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    works(addr, "/?token=quick", &[]).await;
    assert!(start.elapsed() < Duration::from_millis(900), "held up by the slow lookup: {:?}", start.elapsed());
    let (status, took) = slow.await.unwrap();
    assert_eq!(status, 504);
    assert!(took < Duration::from_secs(4), "{took:?}");
    proxy.wait_log("plugin misbehaving.Moody: lookup of token [", Duration::from_secs(5));

    // A print() goes to the log (escaped), not into the protocol.
    works(addr, "/?token=print", &[]).await;
    proxy.wait_log("a plugin that prints\\u{1b}[31m", Duration::from_secs(5));

    // Kills its own process: that lookup fails, the host is started again for the next
    // ones, and the session already open is untouched.
    assert_eq!(answer(addr, "/?token=die", &[]).0, 502);
    proxy.wait_log("exited (signal: 9", Duration::from_secs(5));
    for _ in 0..3 {
        works(addr, "/?token=again", &[]).await;
    }
    let data = random_bytes(256 * 1024, 7);
    echo(&mut live, &data).await;
    let _ = live.close(None).await;
}

#[test]
fn a_constructor_that_raises_fails_the_start_with_the_exception() {
    let root = repo_root();
    let run = |args: &[&str]| {
        let out = Command::new(binary())
            .args(args)
            .env("PYTHONPATH", root.join("tests/plugins"))
            .output()
            .expect("run websockify");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout))
    };
    let bad = ["--token-plugin", "misbehaving.BadConstructor", "--token-source", "/db", "127.0.0.1:0"];
    let (code, out) = run(&bad);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("RuntimeError: cannot open /db"), "{out}");
    let (code, out) = run(&[&["--check-config"][..], &bad].concat());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("RuntimeError: cannot open /db"), "{out}");
    let (code, out) = run(&["--auth-plugin", "no_such_module.Auth", "127.0.0.1:0", "127.0.0.1:1"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("ModuleNotFoundError: No module named 'no_such_module'"), "{out}");
    let missing = PathBuf::from("/nonexistent/python3");
    let (code, out) = run(&[
        "--plugin-python",
        missing.to_str().unwrap_or_default(),
        "--token-plugin",
        "trivial.Fixed",
        "--token-source",
        "h:1",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("/nonexistent/python3"), "{out}");
    // A good plugin passes the check.
    let (code, out) =
        run(&["--check-config", "--token-plugin", "trivial.Fixed", "--token-source", "127.0.0.1:1", "127.0.0.1:0"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("token source answers: Python plugin trivial.Fixed"), "{out}");
}
