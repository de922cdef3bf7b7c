//! `TokenRedis` against a real `redis-server` (started here on a free loopback port, no
//! persistence): through the real binary, and through the library for exact error variants.
//! Needs `redis-server` and `redis-cli`: `scripts/peers.sh redis` installs them.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use websockify::config::Target;
use websockify::token::{TokenError, TokenResolver};

/// The status code of the proxy's answer to a WebSocket handshake with `?token=TOKEN`,
/// and how long it took.
async fn handshake_status(addr: SocketAddr, token: &str) -> (u16, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /websockify?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await.expect("an answer").unwrap();
        assert!(n > 0, "closed without a response: {:?}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("bad head {head:?}"));
    (status, start.elapsed())
}

/// A WebSocket session with `?token=TOKEN` carries data both ways (to an echo target).
async fn echo_through(proxy: &Proxy, token: &str) {
    let url = format!("ws://{}/websockify?token={token}", proxy.addr);
    let (mut ws, _) =
        connect_async(url.as_str()).await.unwrap_or_else(|e| panic!("token {token}: {e}\nlog:\n{}", proxy.log()));
    ws.send(Message::binary(format!("hello {token}").into_bytes())).await.unwrap();
    let reply = loop {
        match ws.next().await.expect("a reply").unwrap() {
            Message::Binary(b) => break b,
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(&reply[..], format!("hello {token}").as_bytes());
    let _ = ws.close(None).await;
}

fn proxy_for(source: &str) -> Proxy {
    Proxy::start(&["--token-plugin", "TokenRedis", "--token-source", source, "127.0.0.1:0"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_plain_values_with_namespace() {
    let redis = Redis::start(None);
    let target = echo_target("127.0.0.1:0").await;
    let dead = format!("127.0.0.1:{}", closed_port());
    redis.set(0, "ns:json", &format!(r#"{{"host": "{target}"}}"#));
    redis.set(0, "ns:plain", &target.to_string());
    redis.set(0, "ns:bad", "not a target");
    redis.set(0, "ns:badjson", r#"{"port": 5900}"#);
    redis.set(0, "bare", &dead); // outside the namespace
    let proxy = proxy_for(&format!("127.0.0.1:{}:0::ns", redis.port));
    echo_through(&proxy, "json").await;
    echo_through(&proxy, "plain").await;
    assert_eq!(handshake_status(proxy.addr, "missing").await.0, 404);
    assert_eq!(handshake_status(proxy.addr, "bare").await.0, 404, "keys are namespace:token");
    assert_eq!(handshake_status(proxy.addr, "bad").await.0, 502);
    assert_eq!(handshake_status(proxy.addr, "badjson").await.0, 502);
    // Values are read on each lookup: a changed key takes effect at once.
    let other = echo_target("127.0.0.1:0").await;
    redis.set(0, "ns:plain", &other.to_string());
    echo_through(&proxy, "plain").await;
    let id = &sha256_hex(b"plain")[..8];
    proxy.wait_log(&format!("connecting to: {other} (/websockify?token=[{id}])"), Duration::from_secs(5));
    // Without a namespace the token is the key.
    let bare = proxy_for(&format!("127.0.0.1:{}", redis.port));
    redis.set(0, "bare", &target.to_string());
    echo_through(&bare, "bare").await;
    assert_eq!(handshake_status(bare.addr, "json").await.0, 404);
    let log = bare.log();
    assert!(log.contains(&format!("TokenRedis redis://127.0.0.1:{}/0", redis.port)), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_number_and_quoted_namespace() {
    let redis = Redis::start(None);
    let target = echo_target("127.0.0.1:0").await;
    redis.set(3, "app:vnc:tok", &target.to_string());
    redis.set(0, "app:vnc:only0", &target.to_string());
    let proxy = proxy_for(&format!("127.0.0.1:{}:3::\"app:vnc\"", redis.port));
    echo_through(&proxy, "tok").await;
    assert_eq!(handshake_status(proxy.addr, "only0").await.0, 404, "db 3, not db 0");
    // An empty db field is db 0.
    let db0 = proxy_for(&format!("127.0.0.1:{}:::\"app:vnc\"", redis.port));
    echo_through(&db0, "only0").await;
    assert_eq!(handshake_status(db0.addr, "tok").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password() {
    let redis = Redis::start(Some("pa:ss-w0rd"));
    let target = echo_target("127.0.0.1:0").await;
    redis.set(0, "ns:tok", &target.to_string());
    let proxy = proxy_for(&format!("127.0.0.1:{}:0:\"pa:ss-w0rd\":ns", redis.port));
    echo_through(&proxy, "tok").await;
    assert!(!proxy.log().contains("pa:ss-w0rd"), "password in the log:\n{}", proxy.log());
    // A wrong password or none: the lookup fails (502), and the log does not show it.
    let wrong = proxy_for(&format!("127.0.0.1:{}:0:not-the-password:ns", redis.port));
    assert_eq!(handshake_status(wrong.addr, "tok").await.0, 502);
    assert_eq!(handshake_status(wrong.addr, "tok").await.0, 502);
    wrong.wait_log(&format!("token [{}]", &sha256_hex(b"tok")[..8]), Duration::from_secs(5));
    let log = wrong.log();
    assert!(log.contains("authentication failed") || log.contains("WRONGPASS"), "{log}");
    assert!(!log.contains("not-the-password"), "password in the log:\n{log}");
    let none = proxy_for(&format!("127.0.0.1:{}:::ns", redis.port));
    assert_eq!(handshake_status(none.addr, "tok").await.0, 502);
}

/// Redis down when the proxy starts, then up, killed, restarted on the same port: the proxy
/// keeps running, answers 502/504 quickly while Redis is down, and works again as soon as
/// it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_and_restarted() {
    let port = closed_port();
    let target = echo_target("127.0.0.1:0").await;
    let proxy = proxy_for(&format!("127.0.0.1:{port}"));
    let assert_down = |(status, took): (u16, Duration)| {
        assert!(status == 502 || status == 504, "status {status}");
        assert!(took < Duration::from_millis(3500), "took {took:?}");
    };
    assert_down(handshake_status(proxy.addr, "tok").await);
    assert_down(handshake_status(proxy.addr, "tok").await);

    let mut redis = Redis::start_on(port, None);
    redis.set(0, "tok", &target.to_string());
    echo_through(&proxy, "tok").await;
    echo_through(&proxy, "tok").await;

    redis.stop();
    for _ in 0..3 {
        assert_down(handshake_status(proxy.addr, "tok").await);
    }

    redis.restart();
    redis.set(0, "tok", &target.to_string());
    echo_through(&proxy, "tok").await;
    assert_eq!(handshake_status(proxy.addr, "other").await.0, 404);

    // Restarted while the proxy is idle: the first lookup after it already works.
    redis.stop();
    redis.restart();
    redis.set(0, "tok", &target.to_string());
    echo_through(&proxy, "tok").await;
    let log = proxy.log();
    assert!(log.contains("cannot use Redis at") && log.contains("answers again"), "{log}");
}

/// 200 lookups (20 at a time) go over one connection to Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_lookups_share_one_connection() {
    let redis = Redis::start(None);
    let target = echo_target("127.0.0.1:0").await;
    redis.set(0, "tok", &target.to_string());
    let proxy = proxy_for(&format!("127.0.0.1:{}", redis.port));
    echo_through(&proxy, "tok").await; // the first lookup connects
    let before = redis.info("total_connections_received");
    let addr = proxy.addr;
    for _ in 0..10 {
        let batch: Vec<_> = (0..20)
            .map(|i| {
                tokio::spawn(async move { handshake_status(addr, if i % 2 == 0 { "tok" } else { "nope" }).await.0 })
            })
            .collect();
        for (i, task) in batch.into_iter().enumerate() {
            assert_eq!(task.await.unwrap(), if i % 2 == 0 { 101 } else { 404 });
        }
    }
    let clients = redis.other_clients();
    // The INFO call itself is one more connection.
    let new = redis.info("total_connections_received") - before - 2;
    assert_eq!(clients, 1, "{}", redis.cli(&["CLIENT", "LIST"]));
    assert_eq!(new, 0, "the proxy opened {new} more connections to Redis");
}

// Through the library: the exact results of TokenResolver::lookup.

fn plugin(source: &str) -> std::sync::Arc<dyn TokenResolver> {
    websockify::token::plugin("TokenRedis", source).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn lookup_results() {
    let redis = Redis::start(None);
    redis.set(2, "x:json", r#"{"host": "vnc.example:5901"}"#);
    redis.set(2, "x:plain", "[::1]:5902");
    redis.set(2, "x:unix", "unix_socket:/run/vnc.sock");
    redis.set(2, "x:bad", "{oops");
    redis.cli(&["-n", "2", "HSET", "x:hash", "host", "h:1"]);
    let r = plugin(&format!("127.0.0.1:{}:2::x", redis.port));
    let tcp = |h: &str, p| Some(Target::Tcp { host: h.into(), port: p });
    assert_eq!(r.lookup("json").await.unwrap(), tcp("vnc.example", 5901));
    assert_eq!(r.lookup("plain").await.unwrap(), tcp("::1", 5902));
    assert_eq!(r.lookup("unix").await.unwrap(), Some(Target::Unix("/run/vnc.sock".into())));
    assert_eq!(r.lookup("nope").await.unwrap(), None);
    assert!(matches!(r.lookup("bad").await, Err(TokenError::BadTarget(_))));
    assert!(matches!(r.lookup("hash").await, Err(TokenError::BadTarget(_))));
    assert_eq!(r.lookup("json").await.unwrap(), tcp("vnc.example", 5901), "still fine after errors");
    assert_eq!(r.describe(), format!("TokenRedis redis://127.0.0.1:{}/2 (namespace \"x\")", redis.port));
}

/// Stopped Redis: `Unavailable` at once. Hung Redis (SIGSTOP): `Timeout` after 3 s, and a
/// new connection once it answers again.
#[tokio::test]
async fn stopped_and_hung_redis() {
    let mut redis = Redis::start(Some("secret-pw"));
    redis.set(0, "tok", "h:1");
    let r = plugin(&format!("127.0.0.1:{}:0:secret-pw", redis.port));
    assert!(r.lookup("tok").await.unwrap().is_some());

    redis.stop();
    for _ in 0..3 {
        let start = Instant::now();
        let err = r.lookup("tok").await.expect_err("Redis is down");
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
        assert!(matches!(err, TokenError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains("secret-pw"), "{err}");
    }
    redis.restart();
    redis.set(0, "tok", "h:2");
    assert_eq!(r.lookup("tok").await.unwrap(), Some(Target::Tcp { host: "h".into(), port: 2 }));

    redis.signal("STOP");
    let start = Instant::now();
    let err = r.lookup("tok").await.expect_err("Redis is hung");
    let took = start.elapsed();
    redis.signal("CONT");
    assert!(matches!(err, TokenError::Timeout(_)), "{err:?}");
    assert!(took >= Duration::from_millis(2900) && took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(r.lookup("tok").await.unwrap(), Some(Target::Tcp { host: "h".into(), port: 2 }));
}

/// Security review, finding 16: a 100 MB value under a token key raised the proxy's RSS by
/// hundreds of MB over a few lookups. A value longer than 64 KiB is refused after
/// `STRLEN`, never read; the others still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_value_is_refused_unread() {
    let redis = Redis::start(None);
    let target = echo_target("127.0.0.1:0").await;
    redis.set(0, "ok", &target.to_string());
    // 8 MB: SETRANGE makes it without sending it through redis-cli's arguments.
    assert_eq!(redis.cli(&["SETRANGE", "huge", "8000000", "x"]), "8000001");
    let proxy = proxy_for(&format!("127.0.0.1:{}", redis.port));
    let pid = proxy.child.id();
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap()
    };
    let before = rss();
    for _ in 0..6 {
        assert_eq!(handshake_status(proxy.addr, "huge").await.0, 502);
    }
    let after = rss();
    proxy.wait_log("is 8000001 bytes, more than the 65536 a target takes: refused unread", Duration::from_secs(5));
    eprintln!("RSS {before} kB before six lookups of an 8 MB value, {after} kB after");
    assert!(after < before + 4096, "RSS grew from {before} to {after} kB");
    echo_through(&proxy, "ok").await;
}

/// Security review, finding 17: the Redis password had no alternative to the source on the
/// command line (visible in `ps`). It may come from a file or the environment, and
/// --check-config connects and reports a wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_file_or_environment_and_checked() {
    let redis = Redis::start(Some("s3cret"));
    let target = echo_target("127.0.0.1:0").await;
    redis.set(0, "tok", &target.to_string());
    let dir = common::pki::TempDir::new("redis-pw");
    std::fs::write(dir.path("pw"), "s3cret\n").unwrap();
    std::fs::write(dir.path("wrong"), "nope\n").unwrap();
    let source = format!("127.0.0.1:{}", redis.port);
    let from_file = Proxy::start(&[
        "--token-plugin",
        "TokenRedis",
        "--token-source",
        &source,
        "--redis-password-file",
        &dir.str("pw"),
        "127.0.0.1:0",
    ]);
    echo_through(&from_file, "tok").await;
    let from_env = Proxy::start_with_env(
        &["--token-plugin", "TokenRedis", "--token-source", &source, "127.0.0.1:0"],
        &[("WEBSOCKIFY_REDIS_PASSWORD", "s3cret")],
    );
    echo_through(&from_env, "tok").await;

    let check = |pw: &str| {
        run_proxy(&[
            "--check-config",
            "--token-plugin",
            "TokenRedis",
            "--token-source",
            &source,
            "--redis-password-file",
            &dir.str(pw),
            "127.0.0.1:0",
        ])
    };
    let (status, out) = check("pw");
    assert!(status.success() && out.contains("token source answers: TokenRedis"), "{out}");
    let (status, out) = check("wrong");
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("token source TokenRedis") && !out.contains("nope"), "{out}");
    let mut stopped = redis;
    stopped.stop();
    let (status, out) = check("pw");
    assert!(status.success(), "an unreachable Redis is a warning (the proxy starts and retries): {out}");
    assert!(out.contains("warning: token source TokenRedis") && out.contains("unreachable now"), "{out}");
}

/// A config file that holds a secret and that every user may read: a warning at start and
/// in --check-config.
#[test]
fn world_readable_config_with_a_secret_warns() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = common::pki::TempDir::new("cfg-perm");
    let file = dir.path("ws.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:0\"\ntarget = \"h:1\"\nauth-plugin = \"BasicHTTPAuth\"\nauth-source = \"u:p\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (status, out) = run_proxy(&["--config", file.to_str().unwrap(), "--check-config"]);
    assert!(status.success(), "{out}");
    assert!(out.contains("holds a secret (auth-source) and is readable by every user (mode 0644)"), "{out}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (status, out) = run_proxy(&["--config", file.to_str().unwrap(), "--check-config"]);
    assert!(status.success() && !out.contains("readable by every user"), "{out}");
}
