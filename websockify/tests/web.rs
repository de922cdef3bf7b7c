//! The static web server on the proxy's port, fetched with curl and raw requests: pages,
//! HEAD, ranges, conditional requests, keep-alive then upgrade on the same connection, and
//! the traversal / open-redirect table. Plus every kind of client on one port at once.

mod common;

use std::process::Command;
use std::time::Duration;

use common::pki::{Ca, TempDir};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A web root with an index, a subdirectory, a binary file and a secret beside the root.
fn site() -> TempDir {
    let dir = TempDir::new("web");
    let www = dir.path("www");
    std::fs::create_dir_all(www.join("sub/empty")).unwrap();
    std::fs::write(www.join("index.html"), "<html><title>home</title>hello</html>").unwrap();
    std::fs::write(www.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(www.join("sub/data.bin"), (0..=255u8).collect::<Vec<_>>()).unwrap();
    std::fs::write(dir.path("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.path("secret.txt"), www.join("link-out.txt")).unwrap();
    dir
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl").args(["-s", "-S", "-i", "--path-as-is"]).args(args).output().expect("curl");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let split = out.stdout.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.stdout.len(), |p| p + 4);
    (String::from_utf8_lossy(&out.stdout[..split]).into_owned(), out.stdout[split..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_ranges_and_conditionals_with_curl() {
    let site = site();
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--web", &site.str("www"), "127.0.0.1:0", &target.to_string()]);
    let base = format!("http://127.0.0.1:{}", proxy.addr.port());
    let (head, body) = curl(&[&format!("{base}/")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(body, b"<html><title>home</title>hello</html>");
    let (head, _) = curl(&[&format!("{base}/app.js")]);
    assert_eq!(header(&head, "Content-Type"), Some("text/javascript; charset=utf-8"), "{head}");
    // HEAD: same headers, no body.
    let (head, body) = curl(&["-I", &format!("{base}/sub/data.bin")]);
    assert_eq!(header(&head, "Content-Length"), Some("256"));
    assert!(body.is_empty());
    // Range.
    let (head, body) = curl(&["-r", "10-19", &format!("{base}/sub/data.bin")]);
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(header(&head, "Content-Range"), Some("bytes 10-19/256"));
    assert_eq!(body, (10..20u8).collect::<Vec<_>>());
    let (head, _) = curl(&["-r", "300-", &format!("{base}/sub/data.bin")]);
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    // Conditionals: ETag and Last-Modified give 304.
    let (head, _) = curl(&[&format!("{base}/sub/data.bin")]);
    let etag = header(&head, "ETag").unwrap().to_owned();
    let last_modified = header(&head, "Last-Modified").unwrap().to_owned();
    let (head, body) = curl(&["-H", &format!("If-None-Match: {etag}"), &format!("{base}/sub/data.bin")]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    assert!(body.is_empty());
    let (head, _) = curl(&["-H", &format!("If-Modified-Since: {last_modified}"), &format!("{base}/sub/data.bin")]);
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    let (head, _) = curl(&["-H", "If-None-Match: \"other\"", &format!("{base}/sub/data.bin")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Directories: redirect without the slash; no listing by default.
    let (head, _) = curl(&[&format!("{base}/sub")]);
    assert!(head.starts_with("HTTP/1.1 301") && header(&head, "Location") == Some("/sub/"), "{head}");
    let (head, _) = curl(&[&format!("{base}/sub/")]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // Other methods.
    let (head, _) = curl(&["-X", "POST", &format!("{base}/")]);
    assert!(head.starts_with("HTTP/1.1 405") && header(&head, "Allow") == Some("GET, HEAD"), "{head}");
    // Keep-alive: curl reuses one connection for two URLs.
    let out = Command::new("curl")
        .args(["-s", "-v", "-o", "/dev/null", "-o", "/dev/null", &format!("{base}/"), &format!("{base}/app.js")])
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(verbose.contains("Re-using existing connection") || verbose.contains("Reusing existing"), "{verbose}");
}

#[tokio::test]
async fn listings_only_when_enabled() {
    let site = site();
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--web", &site.str("www"), "--dir-listing", "127.0.0.1:0", &target.to_string()]);
    let (head, body) = curl(&[&format!("http://127.0.0.1:{}/sub/", proxy.addr.port())]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains("data.bin") && body.contains("empty/"), "{body}");
    let proxy =
        Proxy::start(&["--web", &site.str("www"), "--dir-listing", "--file-only", "127.0.0.1:0", &target.to_string()]);
    let (head, _) = curl(&[&format!("http://127.0.0.1:{}/sub/", proxy.addr.port())]);
    assert!(head.starts_with("HTTP/1.1 404"), "--file-only wins: {head}");
}

/// Sends raw requests on one connection; returns everything the server sent.
async fn raw(addr: std::net::SocketAddr, requests: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(requests).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn traversal_and_redirect_attacks() {
    let site = site();
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--web", &site.str("www"), "127.0.0.1:0", &target.to_string()]);
    let cases: &[(&str, &str)] = &[
        ("/../secret.txt", "403"),
        ("/%2e%2e/secret.txt", "403"),
        ("/%2e%2e%2fsecret.txt", "403"),
        ("/sub/..%2f..%2fsecret.txt", "403"),
        ("/..%5csecret.txt", "400"),
        ("/link-out.txt", "404"),
        ("/index.html%00.js", "400"),
        ("//etc/passwd", "404"),
        ("/etc/passwd", "404"),
    ];
    for (path, status) in cases {
        let resp =
            raw(proxy.addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await;
        assert!(resp.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {resp}");
        assert!(!resp.contains("secret"), "{path}: {resp}");
    }
    // CVE-2021-28861 class: `//host/dir` must redirect within the site, never to `//host`.
    for path in ["//sub", "//evil.example/sub", "/%2fsub"] {
        let resp =
            raw(proxy.addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await;
        let location = header(&resp, "Location");
        assert!(location.is_none_or(|l| l.starts_with('/') && !l.starts_with("//")), "{path}: {resp}");
    }
    let resp = raw(proxy.addr, format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000)).as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 414"), "{resp}");
}

#[tokio::test]
async fn keep_alive_then_websocket_on_one_connection() {
    let site = site();
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--web", &site.str("www"), "127.0.0.1:0", &target.to_string()]);
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    // Two pipelined page requests, then an upgrade, on the same connection.
    s.write_all(b"GET /app.js HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    s.write_all(
        b"GET /websockify HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
          \x82\x83\x00\x00\x00\x00abc",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"\x82\x03abc") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(text.contains("console.log(1)"));
    assert!(text.contains("HTTP/1.1 101 Switching Protocols"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_client_on_one_port() {
    let site = site();
    let ca = Ca::new("mixed CA");
    let ca_pem = ca.write(&site.0, "ca.pem");
    ca.issue(&site.0, "server", "localhost", false);
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&[
        "--web",
        &site.str("www"),
        "--cert",
        &site.str("server.pem"),
        "--key",
        &site.str("server.key"),
        "127.0.0.1:0",
        &target.to_string(),
    ]);
    let port = proxy.addr.port();
    // http:// and https:// page loads.
    let (head, body) = curl(&[&format!("http://127.0.0.1:{port}/")]);
    assert!(head.starts_with("HTTP/1.1 200") && body.ends_with(b"hello</html>"), "{head}");
    let (head, body) = curl(&["--cacert", ca_pem.to_str().unwrap(), &format!("https://localhost:{port}/")]);
    assert!(head.starts_with("HTTP/1.1 200") && body.ends_with(b"hello</html>"), "{head}");
    // ws:// and wss:// sessions.
    let (ws_url, wss_url) = (format!("ws://127.0.0.1:{port}/websockify"), format!("wss://localhost:{port}/websockify"));
    let ca_arg = ca_pem.to_str().unwrap().to_owned();
    let (plain, tls) = tokio::task::spawn_blocking(move || {
        (
            peer("python", &ws_url, "echo", &["--bytes", "500000"]),
            peer("node", &wss_url, "echo", &["--bytes", "500000", "--cafile", &ca_arg]),
        )
    })
    .await
    .unwrap();
    assert_eq!((plain["match"].clone(), tls["match"].clone()), (true.into(), true.into()), "{plain} {tls}");
    // A Flash policy request.
    let policy = raw(proxy.addr, b"<policy-file-request/>\0").await;
    assert_eq!(
        policy,
        "<cross-domain-policy><allow-access-from domain=\"*\" to-ports=\"*\" /></cross-domain-policy>\0"
    );
    // A Hixie-76 session (the draft's example keys), base64 in 0x00..0xFF frames.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        b"GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\
          Sec-WebSocket-Protocol: base64\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
          Origin: http://example.com\r\n\r\n^n:ds[4U\x00aGl4aWU=\xff",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\x00aGl4aWU=\xff") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101 WebSocket Protocol Handshake\r\n"), "{text}");
    assert!(text.contains("\r\n\r\n8jKS'y:G*Co,Wxa-\x00aGl4aWU=\u{FFFD}"), "challenge then echo: {text:?}");
    s.write_all(b"\xff\x00").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await.unwrap();
    assert_eq!(rest, b"\xff\x00", "Hixie close echoed");
}
