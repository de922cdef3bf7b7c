//! Session control (issue 19) through the real binary: the admin API driven with curl and
//! its answers parsed as JSON, revocation by a token file or directory edit (seen at once
//! by inotify), a Redis key deleted or changed on a real redis-server (at once with
//! keyspace notifications, periodically without), and an HTTP token API that starts
//! answering 404, JWT expiry and the session time limit. Sessions that are not targeted
//! keep going (bytes checked). The revocation tests print the time from the change to the
//! close frame.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::admin::{ADMIN_TOKEN, admin_url, curl};
use common::pki::TempDir;
use common::redis::Redis;
use common::token_api::token_api;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str) -> Ws {
    connect_async(url).await.unwrap_or_else(|e| panic!("{url}: {e}")).0
}

/// One echo through a live session.
async fn echo(ws: &mut Ws, data: &[u8]) {
    ws.send(Message::binary(data.to_vec())).await.unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an echo").unwrap().unwrap() {
            Message::Binary(b) => got.extend_from_slice(&b),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, data);
}

/// Waits for the session's close frame: its code and reason, and how long it took.
async fn closed(ws: &mut Ws, limit: Duration) -> (u16, String, Duration) {
    let start = Instant::now();
    loop {
        match tokio::time::timeout(limit, ws.next()).await.expect("a close frame in time") {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string(), start.elapsed());
            }
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

fn token_file_proxy(dir: &TempDir, tokens: &str, extra: &[&str]) -> Proxy {
    std::fs::write(dir.path("tokens"), tokens).unwrap();
    std::fs::write(dir.path("admin-token"), format!("{ADMIN_TOKEN}\n")).unwrap();
    let mut args = vec!["--token-plugin", "TokenFile", "--token-source"];
    let tokens = dir.str("tokens");
    let admin = dir.str("admin-token");
    args.push(&tokens);
    args.extend(["--admin-listen", "127.0.0.1:0", "--admin-token-file", &admin]);
    args.extend(extra);
    args.push("127.0.0.1:0");
    Proxy::start(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_lists_and_ends_sessions() {
    let dir = TempDir::new("admin");
    let a = echo_target("127.0.0.1:0").await;
    let b = echo_target("127.0.0.1:0").await;
    let proxy = token_file_proxy(&dir, &format!("secret-alpha: {a}\nsecret-beta: {b}\n"), &[]);
    let api = admin_url(&proxy);
    let base = proxy.url();
    let mut alpha1 = open(&format!("{base}?token=secret-alpha")).await;
    let mut alpha2 = open(&format!("{base}?token=secret-alpha")).await;
    let mut beta = open(&format!("{base}?token=secret-beta")).await;
    echo(&mut alpha1, b"one").await;
    echo(&mut beta, b"two").await;

    // Refused without the token, or with another.
    assert_eq!(curl("GET", &format!("{api}/sessions"), None).0, 401);
    assert_eq!(curl("GET", &format!("{api}/sessions"), Some("not-the-admin-token")).0, 401);
    assert_eq!(curl("DELETE", &format!("{api}/sessions/1"), None).0, 401);

    let (status, list) = curl("GET", &format!("{api}/sessions"), Some(ADMIN_TOKEN));
    assert_eq!(status, 200);
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{list}");
    let alpha_id = &sha256_hex(b"secret-alpha")[..8];
    assert_eq!(sessions.iter().filter(|s| s["token_id"] == alpha_id).count(), 2, "{list}");
    let beta_session = sessions.iter().find(|s| s["target"] == b.to_string()).unwrap();
    assert_eq!(beta_session["bytes_to_target"], 3);
    assert_eq!(beta_session["bytes_to_client"], 3);
    assert_eq!((beta_session["tls"].clone(), beta_session["subprotocol"].clone()), (false.into(), "binary".into()));
    assert!(beta_session["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(!list.to_string().contains("secret-"), "a raw token in the admin API: {list}");

    // All sessions of one token: both end with the reason; the other session goes on.
    let url = format!("{api}/sessions?token={alpha_id}&reason=VM%20deleted");
    assert_eq!(curl("DELETE", &url, Some(ADMIN_TOKEN)), (200, serde_json::json!({"ended": 2})));
    for ws in [&mut alpha1, &mut alpha2] {
        let (code, reason, _) = closed(ws, Duration::from_secs(5)).await;
        assert_eq!((code, reason.as_str()), (1000, "VM deleted"));
    }
    echo(&mut beta, b"still here").await;

    // One session by id; a target's sessions.
    let id = beta_session["id"].as_u64().unwrap();
    let mut beta2 = open(&format!("{base}?token=secret-beta")).await;
    assert_eq!(curl("DELETE", &format!("{api}/sessions/{id}"), Some(ADMIN_TOKEN)).1["ended"], 1);
    assert_eq!(closed(&mut beta, Duration::from_secs(5)).await.1, "Ended by the administrator");
    echo(&mut beta2, b"the newer one lives").await;
    assert_eq!(curl("DELETE", &format!("{api}/sessions?target={b}"), Some(ADMIN_TOKEN)).1["ended"], 1);
    assert_eq!(closed(&mut beta2, Duration::from_secs(5)).await.0, 1000);
    proxy.wait_log("session closed: ended (admin), closed with 1000 \"VM deleted\"", Duration::from_secs(5));

    let metrics_proxy = proxy.log();
    assert!(metrics_proxy.contains("admin API: ended 2 (the sessions of token ["), "{metrics_proxy}");
}

#[test]
fn admin_api_refuses_a_public_address_and_a_short_token() {
    let dir = TempDir::new("admin-refuse");
    std::fs::write(dir.path("t"), format!("{ADMIN_TOKEN}\n")).unwrap();
    std::fs::write(dir.path("short"), "abc\n").unwrap();
    let (status, out) =
        run_proxy(&["--admin-listen", "0.0.0.0:0", "--admin-token-file", &dir.str("t"), "127.0.0.1:0", "h:1"]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("listen on a loopback address or a UNIX socket"), "{out}");
    let (status, out) =
        run_proxy(&["--admin-listen", "127.0.0.1:0", "--admin-token-file", &dir.str("short"), "127.0.0.1:0", "h:1"]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("at least 16 characters"), "{out}");
}

/// Revocation by a token file edit, seen by the file's watch (inotify): with
/// `--revoke-check-interval 60` the periodic check cannot be what ends the session. A
/// token removed by a rewrite in place, and one that leads elsewhere after an atomic
/// rename-replace, end their sessions within a second or so; the other token's session
/// goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_in_a_token_file_at_once() {
    let dir = TempDir::new("revoke-file");
    let a = echo_target("127.0.0.1:0").await;
    let b = echo_target("127.0.0.1:0").await;
    let interval = ["--revoke-live-sessions", "--revoke-check-interval", "60"];
    let proxy = token_file_proxy(&dir, &format!("vm1: {a}\nvm2: {b}\nvm3: {b}\n"), &interval);
    proxy.wait_log("watched (inotify)", Duration::from_secs(5));
    let mut one = open(&format!("{}?token=vm1", proxy.url())).await;
    let mut two = open(&format!("{}?token=vm2", proxy.url())).await;
    let mut three = open(&format!("{}?token=vm3", proxy.url())).await;
    echo(&mut one, b"x").await;

    revoked_by(&mut one, "token file (rewritten in place)", || {
        std::fs::write(dir.path("tokens"), format!("vm2: {b}\nvm3: {b}\n")).unwrap();
    })
    .await;
    echo(&mut two, b"untouched").await;

    // A token that now leads elsewhere, written as editors and portals do: a new file
    // renamed over the old one.
    let c = echo_target("127.0.0.1:0").await;
    std::fs::write(dir.path(".tokens.new"), format!("vm2: {c}\nvm3: {b}\n")).unwrap();
    revoked_by(&mut two, "token file (renamed over)", || {
        std::fs::rename(dir.path(".tokens.new"), dir.path("tokens")).unwrap();
    })
    .await;
    echo(&mut three, b"still untouched").await;
}

/// The same with a token directory (`--token-source DIR`): deleting the file that holds a
/// token ends its session at once; a token in another file keeps its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_in_a_token_directory_at_once() {
    let dir = TempDir::new("revoke-dir");
    let a = echo_target("127.0.0.1:0").await;
    let b = echo_target("127.0.0.1:0").await;
    std::fs::create_dir(dir.path("tokens.d")).unwrap();
    std::fs::write(dir.path("tokens.d/vm1"), format!("vm1: {a}\n")).unwrap();
    std::fs::write(dir.path("tokens.d/vm2"), format!("vm2: {b}\n")).unwrap();
    let source = dir.str("tokens.d");
    let proxy = revoking_proxy("TokenFile", &source, "60");
    proxy.wait_log("watched (inotify)", Duration::from_secs(5));
    let mut one = open(&format!("{}?token=vm1", proxy.url())).await;
    let mut two = open(&format!("{}?token=vm2", proxy.url())).await;
    echo(&mut one, b"x").await;
    revoked_by(&mut one, "token directory (file deleted)", || {
        std::fs::remove_file(dir.path("tokens.d/vm1")).unwrap();
    })
    .await;
    echo(&mut two, b"untouched").await;
}

/// `TokenFileName` (a file per token, named after it, holding its target) is watched too:
/// removing the file ends the session at once, and rewriting another token's file to name
/// another target ends that one; a third session is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_in_a_token_file_name_directory_at_once() {
    let dir = TempDir::new("revoke-filename");
    let target = echo_target("127.0.0.1:0").await;
    std::fs::create_dir(dir.path("tokens")).unwrap();
    for token in ["vm1", "vm2", "vm3"] {
        std::fs::write(dir.path(&format!("tokens/{token}")), format!("{target}\n")).unwrap();
    }
    let source = dir.str("tokens");
    let proxy = revoking_proxy("TokenFileName", &source, "60");
    proxy.wait_log("watched (inotify)", Duration::from_secs(5));
    let mut one = open(&format!("{}?token=vm1", proxy.url())).await;
    let mut two = open(&format!("{}?token=vm2", proxy.url())).await;
    let mut three = open(&format!("{}?token=vm3", proxy.url())).await;
    echo(&mut one, b"x").await;
    revoked_by(&mut one, "TokenFileName (file deleted)", || {
        std::fs::remove_file(dir.path("tokens/vm1")).unwrap();
    })
    .await;
    echo(&mut two, b"untouched").await;
    let elsewhere = echo_target("127.0.0.1:0").await;
    revoked_by(&mut two, "TokenFileName (file rewritten)", || {
        std::fs::write(dir.path("tokens/vm2"), format!("{elsewhere}\n")).unwrap();
    })
    .await;
    echo(&mut three, b"still untouched").await;
}

/// `UnixDomainSocketDirectory` is watched too: a socket removed from the directory (its VM
/// gone) ends the session that named it at once; the other socket's session is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_in_a_unix_socket_directory_at_once() {
    let dir = TempDir::new("revoke-uds");
    std::fs::create_dir(dir.path("sockets")).unwrap();
    for name in ["a.sock", "b.sock"] {
        let listener = tokio::net::UnixListener::bind(dir.path(&format!("sockets/{name}"))).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
    }
    let source = dir.str("sockets");
    let proxy = revoking_proxy("UnixDomainSocketDirectory", &source, "60");
    proxy.wait_log("watched (inotify)", Duration::from_secs(5));
    let mut one = open(&format!("{}?token=a.sock", proxy.url())).await;
    let mut two = open(&format!("{}?token=b.sock", proxy.url())).await;
    echo(&mut one, b"x").await;
    revoked_by(&mut one, "UnixDomainSocketDirectory (socket removed)", || {
        std::fs::remove_file(dir.path("sockets/a.sock")).unwrap();
    })
    .await;
    echo(&mut two, b"untouched").await;
}

/// `ReadOnlyTokenFile` is not watched: its edits apply on SIGHUP, and so do its
/// revocations, at once (not at the next periodic check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_in_a_read_only_token_file_on_sighup() {
    let dir = TempDir::new("revoke-hup");
    let a = echo_target("127.0.0.1:0").await;
    std::fs::write(dir.path("tokens"), format!("vm1: {a}\nvm2: {a}\n")).unwrap();
    let tokens = dir.str("tokens");
    let args = ["--token-plugin", "ReadOnlyTokenFile", "--token-source", &tokens, "--revoke-live-sessions"];
    let proxy = Proxy::start(&[&args[..], &["--revoke-check-interval", "60", "127.0.0.1:0"]].concat());
    let mut one = open(&format!("{}?token=vm1", proxy.url())).await;
    let mut two = open(&format!("{}?token=vm2", proxy.url())).await;
    std::fs::write(dir.path("tokens"), format!("vm2: {a}\n")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    echo(&mut one, b"not reloaded yet").await;
    let changed = Instant::now();
    proxy.signal("HUP");
    let (code, reason, _) = closed(&mut one, Duration::from_secs(3)).await;
    assert_eq!((code, reason.as_str()), (1008, "Token revoked"));
    eprintln!("ReadOnlyTokenFile (SIGHUP): signal to close frame in {:?}", changed.elapsed());
    echo(&mut two, b"untouched").await;
}

/// Makes `change`, then waits (3 s at most) for `ws`'s close frame, 1008 "Token revoked",
/// and prints the time from the change to the close as `what`.
async fn revoked_by(ws: &mut Ws, what: &str, change: impl FnOnce()) {
    let changed = Instant::now();
    change();
    let (code, reason, _) = closed(ws, Duration::from_secs(3)).await;
    assert_eq!((code, reason.as_str()), (1008, "Token revoked"));
    eprintln!("{what}: change to close frame in {:?}", changed.elapsed());
}

/// The proxy on a token source (`--token-plugin PLUGIN --token-source SOURCE`), revoking
/// live sessions, with `--revoke-check-interval SECS` as the fallback.
fn revoking_proxy(plugin: &str, source: &str, interval: &str) -> Proxy {
    Proxy::start(&[
        "--token-plugin",
        plugin,
        "--token-source",
        source,
        "--revoke-live-sessions",
        "--revoke-check-interval",
        interval,
        "127.0.0.1:0",
    ])
}

/// Revocation by Redis keyspace notifications (enabled on the server by the test, as an
/// operator would): with `--revoke-check-interval 60`, deleting a token's key, or giving
/// it another target, ends its session at once; keys are in a namespace with a colon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_in_redis_at_once_with_keyspace_notifications() {
    let redis = Redis::start(None);
    redis.cli(&["CONFIG", "SET", "notify-keyspace-events", "KA"]);
    let target = echo_target("127.0.0.1:0").await;
    for token in ["vm1", "vm2", "vm3"] {
        redis.set(0, &format!("app:vnc:{token}"), &target.to_string());
    }
    let proxy = revoking_proxy("TokenRedis", &format!("127.0.0.1:{}:::\"app:vnc\"", redis.port), "60");
    proxy.wait_log("sends keyspace notifications (notify-keyspace-events", Duration::from_secs(5));
    assert!(proxy.log().contains("a revoked token's sessions end at once"), "{}", proxy.log());
    let mut one = open(&format!("{}?token=vm1", proxy.url())).await;
    let mut two = open(&format!("{}?token=vm2", proxy.url())).await;
    let mut three = open(&format!("{}?token=vm3", proxy.url())).await;
    echo(&mut one, b"x").await;

    revoked_by(&mut one, "Redis with keyspace notifications (DEL)", || {
        redis.cli(&["DEL", "app:vnc:vm1"]);
    })
    .await;
    echo(&mut two, b"untouched").await;

    let elsewhere = echo_target("127.0.0.1:0").await;
    revoked_by(&mut two, "Redis with keyspace notifications (SET elsewhere)", || {
        redis.set(0, "app:vnc:vm2", &elsewhere.to_string());
    })
    .await;
    echo(&mut three, b"still untouched").await;
}

/// The keyspace subscription comes back when Redis drops it (`CLIENT KILL TYPE pubsub`,
/// as a failover or a restart would): the loss and the return are logged, and a deleted
/// key ends its session at once again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_subscription_comes_back_after_a_disconnect() {
    let redis = Redis::start(None);
    redis.cli(&["CONFIG", "SET", "notify-keyspace-events", "Kg$x"]);
    let target = echo_target("127.0.0.1:0").await;
    redis.set(0, "vm1", &target.to_string());
    redis.set(0, "vm2", &target.to_string());
    let proxy = revoking_proxy("TokenRedis", &format!("127.0.0.1:{}", redis.port), "60");
    proxy.wait_log("sends keyspace notifications", Duration::from_secs(5));
    let mut one = open(&format!("{}?token=vm1", proxy.url())).await;
    let mut two = open(&format!("{}?token=vm2", proxy.url())).await;
    assert_eq!(redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]), "1");
    proxy.wait_log("no keyspace notifications from Redis at", Duration::from_secs(5));
    proxy.wait_log("subscribed again to keyspace notifications", Duration::from_secs(5));
    // The return is followed by a check of every token (30 ms later); once it is over, the
    // DEL below can only be heard through the new subscription.
    tokio::time::sleep(Duration::from_millis(300)).await;
    echo(&mut one, b"still open").await;
    revoked_by(&mut one, "Redis, subscription restored (DEL)", || {
        redis.cli(&["DEL", "vm1"]);
    })
    .await;
    echo(&mut two, b"untouched").await;
}

/// Without keyspace notifications (the server's default), the periodic check ends the
/// session: about `--revoke-check-interval 2` after the previous check, not before. The
/// previous check is seen by a first token deleted: its session ends at a check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_in_redis_periodically_without_notifications() {
    let redis = Redis::start(None);
    let target = echo_target("127.0.0.1:0").await;
    for token in ["vm0", "vm1", "vm2"] {
        redis.set(0, token, &target.to_string());
    }
    let proxy = revoking_proxy("TokenRedis", &format!("127.0.0.1:{}", redis.port), "2");
    proxy.wait_log("sends no keyspace notifications for token keys", Duration::from_secs(5));
    assert!(proxy.log().contains("end within 2s (--revoke-check-interval)"), "{}", proxy.log());
    let mut zero = open(&format!("{}?token=vm0", proxy.url())).await;
    let mut one = open(&format!("{}?token=vm1", proxy.url())).await;
    let mut two = open(&format!("{}?token=vm2", proxy.url())).await;
    echo(&mut one, b"x").await;
    redis.cli(&["DEL", "vm0"]);
    assert_eq!(closed(&mut zero, Duration::from_secs(5)).await.1, "Token revoked");
    let changed = Instant::now();
    redis.cli(&["DEL", "vm1"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    echo(&mut one, b"not yet").await;
    let (code, reason, _) = closed(&mut one, Duration::from_secs(5)).await;
    let took = changed.elapsed();
    assert_eq!((code, reason.as_str()), (1008, "Token revoked"));
    eprintln!(
        "Redis without keyspace notifications (DEL, --revoke-check-interval 2): change to close frame in {took:?}"
    );
    assert!(took >= Duration::from_secs(1), "ended before the periodic check: {took:?}");
    echo(&mut two, b"untouched").await;
}

/// Revocation by an HTTP token API that starts answering 404 (restarted without the token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_by_an_http_api() {
    let dir = TempDir::new("revoke-api");
    let target = echo_target("127.0.0.1:0").await;
    let port = closed_port();
    let api = |tokens: &[&str]| {
        let tokens: Vec<String> = tokens.iter().map(|t| format!("{t}=127.0.0.1:{}", target.port())).collect();
        token_api(&dir.0, &tokens, port).0
    };
    let first = api(&["vm1", "vm2"]);
    let proxy = Proxy::start(&[
        "--token-plugin",
        "BaseTokenAPI",
        "--token-source",
        &format!("http://127.0.0.1:{port}/plain/%s"),
        "--revoke-live-sessions",
        "--revoke-check-interval",
        "1",
        "127.0.0.1:0",
    ]);
    let mut one = open(&format!("{}?token=vm1", proxy.url())).await;
    let mut two = open(&format!("{}?token=vm2", proxy.url())).await;
    echo(&mut one, b"x").await;
    drop(first);
    let second = api(&["vm2"]);
    let (code, reason, took) = closed(&mut one, Duration::from_secs(10)).await;
    assert_eq!((code, reason.as_str()), (1008, "Token revoked"));
    eprintln!("HTTP API: revocation (API back without the token) to close frame in {took:?}");
    echo(&mut two, b"untouched").await;
    drop(second);
}

/// A JWT that expires in 2 s ends its session then (1008 "Token expired"); a session of a
/// token without expiry goes on; --max-session-duration ends any session (1001).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_and_session_time_limit() {
    let dir = TempDir::new("expiry");
    let target = echo_target("127.0.0.1:0").await;
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &dir.str("rsa.key")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sign = |claims: serde_json::Value| {
        let out = Command::new(python())
            .arg(repo_root().join("tests/peers/jwt_tool.py"))
            .args(["RS256", &dir.str("rsa.key"), &claims.to_string()])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let short = sign(serde_json::json!({"host": "127.0.0.1", "port": target.port(), "exp": now + 3}));
    let forever = sign(serde_json::json!({"host": "127.0.0.1", "port": target.port()}));
    let proxy = Proxy::start(&[
        "--token-plugin",
        "JWTTokenApi",
        "--token-source",
        &dir.str("rsa.key"),
        "--end-session-at-token-expiry",
        "127.0.0.1:0",
    ]);
    let mut expiring = open(&format!("{}?token={short}", proxy.url())).await;
    let mut lasting = open(&format!("{}?token={forever}", proxy.url())).await;
    let (code, reason, took) = closed(&mut expiring, Duration::from_secs(10)).await;
    assert_eq!((code, reason.as_str()), (1008, "Token expired"));
    eprintln!("JWT: closed {took:?} after the session opened (exp was at most 3 s away)");
    echo(&mut lasting, b"no exp, no end").await;

    let limited = Proxy::start(&["--max-session-duration", "1", "127.0.0.1:0", &target.to_string()]);
    let mut ws = open(&limited.url()).await;
    let (code, reason, _) = closed(&mut ws, Duration::from_secs(10)).await;
    assert_eq!((code, reason.as_str()), (1001, "Session time limit"));
}
