//! `--log-format json`: every line written to stderr or `--log-file` parses as one JSON
//! object (serde_json), and each session ends with a summary line whose fields are the
//! client, target, token id, bytes each way, duration and close code and reason; the text
//! format carries the same fields.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::TempDir;
use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// The proxy with its log going to a file (stderr redirected there, or `--log-file`).
struct Logged {
    child: Child,
    log: std::path::PathBuf,
}

impl Logged {
    fn start(log: &Path, args: &[&str], to_log_file: bool) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_websockify"));
        if to_log_file {
            command.arg("--log-file").arg(log).stderr(Stdio::null());
        } else {
            command.stderr(std::fs::File::create(log).unwrap());
        }
        let child = command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap();
        Self { child, log: log.to_owned() }
    }

    /// Every line so far, each parsed as JSON (a line that does not parse fails the test).
    fn lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // A line still being written has no newline yet.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}")))
            .collect()
    }

    /// Waits for a line whose message contains `needle`.
    fn wait_for(&self, needle: &str) -> Value {
        let start = Instant::now();
        loop {
            if let Some(line) =
                self.lines().into_iter().find(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
            {
                return line;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no {needle:?} in {:?}", self.lines());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn port(&self) -> u16 {
        let line = self.wait_for("Listen on ");
        let message = line["message"].as_str().unwrap();
        message.rsplit(':').next().unwrap().trim().parse().unwrap()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_id(token: &str) -> String {
    sha256_hex(token.as_bytes())[..8].to_owned()
}

/// One session through the proxy on `port` with token `vm1`: `n` bytes echoed, then a
/// close with 4000 "bye".
async fn session(port: u16, n: usize) {
    let url = format!("ws://127.0.0.1:{port}/websockify?token=vm1");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::binary(random_bytes(n, 7))).await.unwrap();
    let mut got = 0;
    while got < n {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => got += b.len(),
            other => panic!("expected the echo, got {other:?}"),
        }
    }
    ws.close(Some(CloseFrame { code: 4000.into(), reason: "bye".into() })).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_and_the_session_summary() {
    let echo = echo_target("127.0.0.1:0").await;
    let dir = TempDir::new("logs");
    std::fs::write(dir.path("tokens"), format!("vm1: {echo}\n")).unwrap();
    for to_log_file in [false, true] {
        let log = dir.path(if to_log_file { "file.log" } else { "stderr.log" });
        let proxy = Logged::start(
            &log,
            &[
                "--log-format",
                "json",
                "--token-plugin",
                "TokenFile",
                "--token-source",
                &dir.str("tokens"),
                "127.0.0.1:0",
            ],
            to_log_file,
        );
        let port = proxy.port();
        session(port, 5000).await;
        let summary = proxy.wait_for("session closed");
        let where_ = if to_log_file { "--log-file" } else { "stderr" };
        assert_eq!(summary["level"], "INFO", "{where_}: {summary}");
        assert!(summary["timestamp"].is_string(), "{summary}");
        assert_eq!(summary["to_target"], 5000, "{where_}: {summary}");
        assert_eq!(summary["to_client"], 5000, "{summary}");
        assert_eq!(summary["close_code"], 4000, "{summary}");
        assert_eq!(summary["close_reason"], "client closed (4000)", "{summary}");
        assert_eq!(summary["target"], echo.to_string(), "{summary}");
        assert_eq!(summary["token_id"], token_id("vm1"), "{summary}");
        assert!(summary["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{summary}");
        let secs: f64 = summary["secs"].as_str().unwrap().parse().unwrap();
        assert!((0.0..10.0).contains(&secs), "{summary}");
        // The connection's span: its id and peer.
        assert_eq!(summary["span"]["name"], "conn", "{summary}");
        assert!(summary["span"]["id"].is_number(), "{summary}");
        assert_eq!(summary["span"]["peer"], summary["client"], "{summary}");
        // The token itself is in no summary.
        assert!(!summary.to_string().contains("\"vm1\""), "{summary}");
        // Every line written so far parses (lines() panics otherwise), and there are several.
        assert!(proxy.lines().len() > 5);
    }
}

#[test]
fn text_summary_carries_the_same_fields() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let echo = rt.block_on(echo_target("127.0.0.1:0"));
    let dir = TempDir::new("logs-text");
    std::fs::write(dir.path("tokens"), format!("vm1: {echo}\n")).unwrap();
    let proxy = Proxy::start(&["--token-plugin", "TokenFile", "--token-source", &dir.str("tokens"), "127.0.0.1:0"]);
    rt.block_on(session(proxy.addr.port(), 300));
    proxy.wait_log("session closed", Duration::from_secs(10));
    let log = proxy.log();
    let line = log.lines().find(|l| l.contains("session closed")).unwrap();
    for field in [
        "session closed: client closed (4000)".to_owned(),
        "to_target=300 to_client=300 secs=".to_owned(),
        "close_code=4000".to_owned(),
        "close_reason=client closed (4000)".to_owned(),
        "client=127.0.0.1:".to_owned(),
        format!("target={echo}"),
        format!("token_id={}", token_id("vm1")),
    ] {
        assert!(line.contains(&field), "{field:?} not in {line:?}");
    }
}

#[test]
fn unknown_log_format_is_a_usage_error() {
    let (status, out) = run_proxy(&["--log-format", "xml", "6080", "localhost:5900"]);
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("--log-format"), "{out}");
}
