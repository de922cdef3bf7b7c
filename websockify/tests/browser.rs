//! Headless Chromium (Debian's, driven by playwright-core: tests/browser/check_pages.js)
//! loads pages over http:// and https:// from `--web`, fetches a range, revalidates with
//! 304, and runs a WebSocket echo over ws:// and wss://, all on one port. Chromium trusts
//! exactly the test certificate (by its SPKI hash).

mod common;

use std::process::Command;

use common::pki::{Ca, TempDir};
use common::*;

/// Runs tests/browser/check_pages.js with `args` (one `--base URL` per site); returns
/// its JSON line for each base, in order.
async fn check_pages(args: Vec<String>) -> Vec<serde_json::Value> {
    assert!(
        repo_root().join("tests/browser/node_modules/playwright-core").exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium or playwright-core missing: run scripts/peers.sh (as root for the apt part)"
    );
    let bases = args.iter().filter(|a| *a == "--base").count();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(repo_root().join("tests/browser/check_pages.js")).args(args).output().expect("node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "driver failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), bases, "{stdout}");
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_pages_and_websockets_over_http_and_https() {
    let dir = TempDir::new("browser");
    std::fs::create_dir_all(dir.path("www/sub")).unwrap();
    std::fs::write(
        dir.path("www/index.html"),
        "<!DOCTYPE html><title>websockify test</title><p>Hello from the web root.</p>",
    )
    .unwrap();
    std::fs::write(dir.path("www/sub/data.bin"), (0..4096u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
    let ca = Ca::new("browser CA");
    ca.issue(&dir.0, "server", "localhost", false);
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--web",
        &dir.str("www"),
        "--cert",
        &dir.str("server.pem"),
        "--key",
        &dir.str("server.key"),
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let port = proxy.addr.port();
    let results = check_pages(vec![
        "--base".into(),
        format!("http://127.0.0.1:{port}"),
        "--base".into(),
        format!("https://localhost:{port}"),
        "--cert".into(),
        dir.str("server.pem"),
    ])
    .await;
    for r in &results {
        let base = r["base"].as_str().unwrap();
        assert_eq!(r["page"]["status"], 200, "{base}: {r}");
        assert_eq!(r["page"]["title"], "websockify test", "{base}");
        assert_eq!(r["range"]["status"], 206, "{base}");
        assert_eq!(r["range"]["contentRange"], "bytes 10-19/4096", "{base}");
        assert_eq!(r["range"]["hex"], "0a0b0c0d0e0f10111213", "{base}");
        // The page reload revalidates: the server answers 304 on the wire.
        let reload_statuses: Vec<&serde_json::Value> =
            r["reload"]["wire"].as_array().unwrap().iter().map(|w| &w["wireStatus"]).collect();
        assert!(reload_statuses.contains(&&serde_json::Value::from(304)), "{base}: {}", r["reload"]);
        let ws = &r["websocket"];
        assert_eq!(ws["ok"], true, "{base}: {ws}");
        assert_eq!(ws["received"], 100_000, "{base}");
        assert_eq!(ws["closeCode"], 1000, "{base}");
    }
    assert!(results[1]["websocket"]["url"].as_str().unwrap().starts_with("wss://"));
    proxy.wait_log("SSL/TLS (wss://) WebSocket connection", std::time::Duration::from_secs(5));
    proxy.wait_log("Plain non-SSL (ws://) WebSocket connection", std::time::Duration::from_secs(5));
}

/// Chromium's own Origin header against ExpectOrigin: the page's WebSocket opens when its
/// origin is allowed, and is refused (no 101) when it is not; the page itself still loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_origin_checked() {
    let dir = TempDir::new("browser-origin");
    std::fs::create_dir_all(dir.path("www/sub")).unwrap();
    std::fs::write(dir.path("www/index.html"), "<!DOCTYPE html><title>origin test</title>").unwrap();
    std::fs::write(dir.path("www/sub/data.bin"), vec![0u8; 4096]).unwrap();
    let target = echo_target("127.0.0.1:0").await;
    let (good_port, bad_port) = (closed_port(), closed_port());
    let allowed = format!("http://127.0.0.1:{good_port}");
    let good = Proxy::start(&[
        "--web",
        &dir.str("www"),
        "--auth-plugin",
        "ExpectOrigin",
        "--auth-source",
        &allowed,
        &format!("127.0.0.1:{good_port}"),
        &target.to_string(),
    ]);
    let bad = Proxy::start(&[
        "--web",
        &dir.str("www"),
        "--auth-plugin",
        "ExpectOrigin",
        "--auth-source",
        "https://console.example.com",
        &format!("127.0.0.1:{bad_port}"),
        &target.to_string(),
    ]);
    let results = check_pages(vec![
        "--base".into(),
        format!("http://127.0.0.1:{good_port}"),
        "--base".into(),
        format!("http://127.0.0.1:{bad_port}"),
    ])
    .await;
    assert_eq!(results[0]["page"]["status"], 200);
    assert_eq!(results[0]["websocket"]["ok"], true, "{}", results[0]["websocket"]);
    assert_eq!(results[1]["page"]["status"], 200, "files need no auth without --web-auth");
    assert_ne!(results[1]["websocket"]["ok"], true, "{}", results[1]["websocket"]);
    bad.wait_log("Invalid Origin header", std::time::Duration::from_secs(5));
    drop(good);
}

/// Chromium with Basic credentials (--web-auth): right ones load the page and open the
/// WebSocket, wrong ones get neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_basic_auth() {
    let dir = TempDir::new("browser-basic");
    std::fs::create_dir_all(dir.path("www/sub")).unwrap();
    std::fs::write(dir.path("www/index.html"), "<!DOCTYPE html><title>private</title>").unwrap();
    std::fs::write(dir.path("www/sub/data.bin"), vec![0u8; 4096]).unwrap();
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--web",
        &dir.str("www"),
        "--web-auth",
        "--auth-plugin",
        "BasicHTTPAuth",
        "--auth-source",
        "alice:s3cret",
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let port = proxy.addr.port();
    let results = check_pages(vec![
        "--base".into(),
        format!("http://alice:s3cret@127.0.0.1:{port}"),
        "--base".into(),
        format!("http://alice:wrong@127.0.0.1:{port}"),
    ])
    .await;
    assert_eq!(
        (results[0]["page"]["status"].clone(), results[0]["page"]["title"].clone()),
        (200.into(), "private".into())
    );
    assert_eq!(results[0]["websocket"]["ok"], true, "{}", results[0]["websocket"]);
    // Chromium gives up on credentials the server keeps refusing with 401.
    assert!(
        results[1]["page"]["error"].as_str().is_some_and(|e| e.contains("ERR_INVALID_AUTH_CREDENTIALS")),
        "{}",
        results[1]["page"]
    );
    assert_ne!(results[1]["websocket"]["ok"], true, "{}", results[1]["websocket"]);
    assert!(!proxy.log().contains("s3cret"), "no secret in the log");
}
