//! `--metrics-listen`: a known workload (sessions with known byte counts, a refused
//! handshake, an unknown token, a per-IP cap hit, TLS handshakes good and bad), then the
//! endpoint scraped over HTTP and parsed by the official Python client's exposition-format
//! parser (`tests/peers/scrape.py`, `prometheus_client.parser`), and every value checked.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::pki::{Ca, TempDir};
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

/// Starts the proxy with `args` plus `--metrics-listen 127.0.0.1:0`; returns it and the
/// metrics URL it logged.
fn start_with_metrics(args: &[&str]) -> (Proxy, String) {
    let mut all = vec!["--metrics-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let proxy = Proxy::start(&all);
    proxy.wait_log("/metrics", Duration::from_secs(5));
    let log = proxy.log();
    let url = log
        .split("Prometheus metrics at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
        .to_owned();
    (proxy, url)
}

/// A scrape, as parsed by `prometheus_client.parser`.
struct Scrape(Value);

impl Scrape {
    async fn get(url: &str) -> Self {
        let url = url.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(python()).arg(repo_root().join("tests/peers/scrape.py")).arg(&url).output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "scrape.py failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        Self(serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("scrape.py printed {stdout:?}: {e}")))
    }

    /// The value of the one sample named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self.0["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][k] == *v))
            .map(|s| s["value"].as_f64().unwrap())
            .collect();
        match found.as_slice() {
            [one] => *one,
            _ => panic!("{} samples {name}{labels:?} in {}", found.len(), self.0),
        }
    }

    fn family_type(&self, family: &str) -> &str {
        self.0["families"][family]["type"].as_str().unwrap_or_else(|| panic!("no family {family} in {}", self.0))
    }
}

/// Opens a session with `token` and echoes `messages` binary messages of `size` bytes
/// through it; returns it still open.
async fn echo_session(
    proxy: SocketAddr,
    token: &str,
    messages: usize,
    size: usize,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let url = format!("ws://{proxy}/websockify?token={token}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("session");
    for i in 0..messages {
        ws.send(Message::binary(random_bytes(size, i as u64))).await.unwrap();
    }
    let mut got = 0;
    while got < messages * size {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => got += b.len(),
            other => panic!("expected echoed data, got {other:?}"),
        }
    }
    assert_eq!(got, messages * size);
    ws
}

/// The status a WebSocket upgrade is refused with.
async fn refused_status(url: String) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_workload_scraped_and_parsed() {
    const SIZE: usize = 1000;
    const MESSAGES: usize = 3;
    let echo = echo_target("127.0.0.1:0").await;
    let dir = TempDir::new("metrics");
    std::fs::write(dir.path("tokens"), format!("vm1: {echo}\n")).unwrap();
    let (proxy, url) = start_with_metrics(&[
        "--token-plugin",
        "TokenFile",
        "--token-source",
        &dir.str("tokens"),
        "--max-sessions-per-ip",
        "3",
        "127.0.0.1:0",
    ]);

    // Before anything: every family there, at zero, in the types they are documented as.
    let s = Scrape::get(&url).await;
    assert!(s.0["content_type"].as_str().unwrap().starts_with("text/plain; version=0.0.4"), "{}", s.0);
    assert_eq!(s.value("websockify_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert_eq!(s.family_type("websockify_build_info"), "gauge");
    assert_eq!(s.value("websockify_sessions_open", &[]), 0.0);
    assert_eq!(s.family_type("websockify_sessions_open"), "gauge");
    // The parser names a counter's family without `_total`.
    for counter in
        ["websockify_sessions", "websockify_bytes", "websockify_connections_accepted", "websockify_limits_hit"]
    {
        assert_eq!(s.family_type(counter), "counter", "{counter}");
    }
    assert_eq!(s.value("websockify_limits_hit_total", &[("limit", "max-sessions-per-ip")]), 0.0);
    assert_eq!(s.value("websockify_tls_handshakes_total", &[("result", "ok")]), 0.0);

    // Three sessions, each MESSAGES x SIZE bytes echoed, kept open: the byte counters move
    // while sessions live, not only when they end.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(echo_session(proxy.addr, "vm1", MESSAGES, SIZE).await);
    }
    let each_way = (3 * MESSAGES * SIZE) as f64;
    let s = Scrape::get(&url).await;
    assert_eq!(s.value("websockify_sessions_open", &[]), 3.0);
    assert_eq!(s.value("websockify_sessions_total", &[]), 3.0);
    assert_eq!(s.value("websockify_bytes_total", &[("direction", "to_target")]), each_way);
    assert_eq!(s.value("websockify_bytes_total", &[("direction", "to_client")]), each_way);

    // A fourth from the same address: the per-IP cap (after a successful lookup).
    assert_eq!(refused_status(format!("ws://{}/websockify?token=vm1", proxy.addr)).await, 429);
    // An unknown token.
    assert_eq!(refused_status(format!("ws://{}/websockify?token=nope", proxy.addr)).await, 404);
    // A handshake refused for its version, written by hand (clients will not send it).
    let mut raw = TcpStream::connect(proxy.addr).await.unwrap();
    raw.write_all(
        b"GET /websockify?token=vm1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 9\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 426"), "{}", String::from_utf8_lossy(&answer));

    for mut ws in sessions {
        ws.close(Some(CloseFrame { code: 1000.into(), reason: "done".into() })).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    }
    let closed = || proxy.log().matches("session closed:").count();
    let start = std::time::Instant::now();
    while closed() < 3 {
        assert!(start.elapsed() < Duration::from_secs(10), "sessions did not end:\n{}", proxy.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let s = Scrape::get(&url).await;
    assert_eq!(s.value("websockify_connections_accepted_total", &[]), 6.0, "3 sessions, 3 refused");
    assert_eq!(s.value("websockify_sessions_open", &[]), 0.0);
    assert_eq!(s.value("websockify_sessions_total", &[]), 3.0);
    assert_eq!(s.value("websockify_bytes_total", &[("direction", "to_target")]), each_way);
    assert_eq!(s.value("websockify_bytes_total", &[("direction", "to_client")]), each_way);
    assert_eq!(s.value("websockify_session_closes_total", &[("code", "1000")]), 3.0);
    assert_eq!(s.value("websockify_token_lookups_total", &[("result", "found")]), 4.0);
    assert_eq!(s.value("websockify_token_lookups_total", &[("result", "not_found")]), 1.0);
    assert_eq!(s.value("websockify_token_lookups_total", &[("result", "error")]), 0.0);
    assert_eq!(s.family_type("websockify_token_lookup_duration_seconds"), "histogram");
    assert_eq!(s.value("websockify_token_lookup_duration_seconds_count", &[]), 5.0);
    assert_eq!(s.value("websockify_token_lookup_duration_seconds_bucket", &[("le", "+Inf")]), 5.0);
    assert_eq!(s.value("websockify_token_lookup_duration_seconds_bucket", &[("le", "5")]), 5.0);
    let sum = s.value("websockify_token_lookup_duration_seconds_sum", &[]);
    assert!(sum > 0.0 && sum < 5.0, "lookup time sum {sum}");
    let failures =
        |reason, status| s.value("websockify_handshake_failures_total", &[("reason", reason), ("status", status)]);
    assert_eq!(failures("limit", "429"), 1.0);
    assert_eq!(failures("token", "404"), 1.0);
    assert_eq!(failures("invalid_upgrade", "426"), 1.0);
    let failure_count = s.0["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["name"] == "websockify_handshake_failures_total")
        .count();
    assert_eq!(failure_count, 3, "no other failure series: {}", s.0);
    assert_eq!(s.value("websockify_limits_hit_total", &[("limit", "max-sessions-per-ip")]), 1.0);
    assert_eq!(s.value("websockify_limits_hit_total", &[("limit", "max-sessions")]), 0.0);
    assert_eq!(s.value("websockify_target_connect_failures_total", &[]), 0.0);

    // Only GET /metrics is served.
    let other = Scrape::get(&url.replace("/metrics", "/other")).await;
    assert_eq!(other.0["status"], 404, "{}", other.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_message_size_and_target_failures() {
    let dir = TempDir::new("metrics-tls");
    let ca = Ca::new("metrics test CA");
    ca.write(&dir.0, "ca.pem");
    ca.issue(&dir.0, "server", "localhost", false);
    let echo = echo_target("127.0.0.1:0").await;
    let dead = closed_port();
    std::fs::write(dir.path("tokens"), format!("vm1: {echo}\ndead: 127.0.0.1:{dead}\n")).unwrap();
    let (proxy, url) = start_with_metrics(&[
        "--cert",
        &dir.str("server.pem"),
        "--key",
        &dir.str("server.key"),
        "--token-plugin",
        "TokenFile",
        "--token-source",
        &dir.str("tokens"),
        "--max-message-size",
        "100",
        "127.0.0.1:0",
    ]);
    // curl completes a TLS handshake (then gets 405: no --web) ...
    let port = proxy.addr.port().to_string();
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", &dir.str("ca.pem")])
        .arg(format!("https://localhost:{port}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "405");
    // ... and a client that does not trust the certificate fails one.
    let out = Command::new("curl").args(["-s", "-o", "/dev/null"]).arg(format!("https://localhost:{port}/")).output();
    assert!(!out.unwrap().status.success());
    // A message over --max-message-size: closed with 1009.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/?token=vm1", proxy.addr)).await.unwrap();
    ws.send(Message::binary(vec![0u8; 101])).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1009);
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    // After its close frame the proxy reads until the client closes its end, for at most
    // 5 s (the same as the wait below): a client that is no longer polled never does, so
    // close it here rather than race that deadline.
    drop(ws);
    // A target that cannot be reached: 101, then 1011.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/?token=dead", proxy.addr)).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    proxy.wait_log("session closed: protocol error", Duration::from_secs(5));

    let s = Scrape::get(&url).await;
    assert_eq!(s.value("websockify_tls_handshakes_total", &[("result", "ok")]), 1.0);
    assert_eq!(s.value("websockify_tls_handshakes_total", &[("result", "failed")]), 1.0);
    assert_eq!(s.value("websockify_session_closes_total", &[("code", "1009")]), 1.0);
    assert_eq!(s.value("websockify_limits_hit_total", &[("limit", "max-message-size")]), 1.0);
    assert_eq!(s.value("websockify_target_connect_failures_total", &[]), 1.0);
    assert_eq!(s.value("websockify_sessions_total", &[]), 1.0, "the unreachable target's session never relayed");
}
