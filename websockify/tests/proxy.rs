//! The real binary in front of real targets, driven by tokio-tungstenite (a client crate
//! written by others) and, for what no client library will send, raw frames over TCP.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(url: &str, protocols: Option<&str>) -> Result<(Ws, Option<String>), WsError> {
    let mut req = url.into_client_request().unwrap();
    if let Some(p) = protocols {
        req.headers_mut().insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    let (ws, resp) = connect_async(req).await?;
    let proto = resp.headers().get("Sec-WebSocket-Protocol").map(|v| v.to_str().unwrap().to_owned());
    Ok((ws, proto))
}

/// Reads until the server's close frame; returns the payload bytes and the close frame.
async fn read_to_close(ws: &mut Ws) -> (Vec<u8>, Option<CloseFrame>) {
    let mut data = Vec::new();
    while let Some(msg) = ws.next().await {
        match msg.expect("clean stream") {
            Message::Binary(b) => data.extend_from_slice(&b),
            Message::Close(frame) => return (data, frame),
            _ => {}
        }
    }
    (data, None)
}

fn close_of(frame: &Option<CloseFrame>) -> (u16, String) {
    let f = frame.as_ref().expect("a close frame");
    (u16::from(f.code), f.reason.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_both_ways_with_checksum() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    let (ws, proto) = connect(&proxy.url(), None).await.unwrap();
    assert_eq!(proto, None, "no protocol offered, none echoed");
    let data = Arc::new(random_bytes(100 << 20, 1));
    let (mut tx, mut rx) = ws.split();
    let sender = {
        let data = data.clone();
        tokio::spawn(async move {
            // Mixed message sizes, as real clients send.
            let mut pos = 0;
            for size in [1usize, 125, 126, 65535, 65536, 65537, 1 << 20].iter().cycle() {
                if pos == data.len() {
                    break;
                }
                let end = (pos + size).min(data.len());
                tx.send(Message::binary(data[pos..end].to_vec())).await.unwrap();
                pos = end;
            }
            tx
        })
    };
    let mut got = Vec::with_capacity(data.len());
    while got.len() < data.len() {
        match rx.next().await.unwrap().unwrap() {
            Message::Binary(b) => got.extend_from_slice(&b),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    let mut tx = sender.await.unwrap();
    tx.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "done".into() }))).await.unwrap();
    let mut ws = tx.reunite(rx).unwrap();
    let (_, close) = read_to_close(&mut ws).await;
    assert_eq!(close_of(&close), (1000, "done".into()), "client close echoed");
}

#[tokio::test]
async fn subprotocol_negotiation() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    for (offer, want) in [
        ("binary", "binary"),
        ("base64", "base64"),
        ("base64, binary", "binary"),
        (" binary ,base64", "binary"),
        ("foo, base64", "base64"),
    ] {
        let (mut ws, proto) = connect(&proxy.url(), Some(offer)).await.unwrap();
        assert_eq!(proto.as_deref(), Some(want), "offer {offer:?}");
        ws.close(None).await.unwrap();
    }
    match connect(&proxy.url(), Some("foo, bar")).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), 400);
            let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("supported: binary, base64"), "{body}");
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn base64_mode_both_ways() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    let (mut ws, proto) = connect(&proxy.url(), Some("base64")).await.unwrap();
    assert_eq!(proto.as_deref(), Some("base64"));
    let data = random_bytes(300_000, 2);
    for chunk in data.chunks(7000) {
        ws.send(Message::text(STANDARD.encode(chunk))).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < data.len() {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => got.extend(STANDARD.decode(t.as_str()).expect("complete padded base64 per message")),
            other => panic!("expected text frames in base64 mode, got {other:?}"),
        }
    }
    assert_eq!(got, data);
    // Invalid base64 closes with 1007.
    ws.send(Message::text("not base64!")).await.unwrap();
    let (_, close) = read_to_close(&mut ws).await;
    assert_eq!(close_of(&close).0, 1007);
}

#[tokio::test]
async fn text_frames_forwarded_as_utf8_bytes() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    let (mut ws, _) = connect(&proxy.url(), None).await.unwrap();
    ws.send(Message::text("héllo")).await.unwrap();
    match ws.next().await.unwrap().unwrap() {
        Message::Binary(b) => assert_eq!(&b[..], "héllo".as_bytes()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn target_close_delivers_everything_then_1000() {
    let data = Arc::new(random_bytes(5 << 20, 3));
    let target = source_target(data.clone()).await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    let (mut ws, _) = connect(&proxy.url(), None).await.unwrap();
    let (got, close) = read_to_close(&mut ws).await;
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    assert_eq!(close_of(&close), (1000, "Target closed".into()));
}

#[tokio::test]
async fn client_close_writes_everything_to_target_first() {
    let (target, mut seen) = sink_target().await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    let (mut ws, _) = connect(&proxy.url(), None).await.unwrap();
    let data = random_bytes(20 << 20, 4);
    for chunk in data.chunks(100_000) {
        ws.feed(Message::binary(chunk.to_vec())).await.unwrap();
    }
    ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Away, reason: "bye".into() }))).await.unwrap();
    let (_, close) = read_to_close(&mut ws).await;
    assert_eq!(close_of(&close), (1001, "bye".into()), "close code and reason echoed");
    let got = tokio::time::timeout(Duration::from_secs(20), seen.recv()).await.unwrap().unwrap();
    assert_eq!((got.bytes, got.sha256), (data.len() as u64, sha256_hex(&data)));
}

#[tokio::test]
async fn target_unreachable_is_1011() {
    let port = closed_port();
    let proxy = Proxy::start(&["127.0.0.1:0", &format!("127.0.0.1:{port}")]);
    let (mut ws, _) = connect(&proxy.url(), None).await.unwrap();
    let (_, close) = read_to_close(&mut ws).await;
    assert_eq!(close_of(&close), (1011, "Failed to connect to downstream server".into()));
    proxy.wait_log("failed to connect", std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn ipv6_listen_and_target() {
    let target = echo_target("[::1]:0").await;
    let proxy = Proxy::start(&["[::1]:0", &format!("[::1]:{}", target.port())]);
    assert!(proxy.addr.is_ipv6());
    let (mut ws, _) = connect(&format!("ws://[::1]:{}/", proxy.addr.port()), None).await.unwrap();
    ws.send(Message::binary(b"over v6".to_vec())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(b"over v6".to_vec()));
    // The `::1:PORT` form (last colon splits) and a host name target.
    let proxy = Proxy::start(&["::1:0", &format!("localhost:{}", echo_target("127.0.0.1:0").await.port())]);
    let (mut ws, _) = connect(&format!("ws://[::1]:{}/", proxy.addr.port()), None).await.unwrap();
    ws.send(Message::binary(b"name".to_vec())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(b"name".to_vec()));
}

#[tokio::test]
async fn unix_target() {
    let dir = std::env::temp_dir().join(format!("wsfy-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("target.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let proxy = Proxy::start(&["127.0.0.1:0", "--unix-target", path.to_str().unwrap()]);
    let (mut ws, _) = connect(&proxy.url(), None).await.unwrap();
    ws.send(Message::binary(b"via unix".to_vec())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(b"via unix".to_vec()));
    ws.close(None).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn run_once_exits_after_first_session() {
    let target = echo_target("127.0.0.1:0").await;
    let mut proxy = Proxy::start(&["--run-once", "127.0.0.1:0", &target.to_string()]);
    // A plain HTTP request is not a session.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    assert!(proxy.child.try_wait().unwrap().is_none(), "still running after a non-session");
    let (mut ws, _) = connect(&proxy.url(), None).await.unwrap();
    ws.send(Message::binary(b"x".to_vec())).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
    let status = tokio::task::spawn_blocking(move || proxy.wait_exit(Duration::from_secs(10))).await.unwrap();
    assert_eq!(status.map(|s| s.code()), Some(Some(0)));
}

#[tokio::test]
async fn sigterm_closes_live_sessions_with_1001() {
    let target = echo_target("127.0.0.1:0").await;
    let mut proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let (mut ws, _) = connect(&proxy.url(), None).await.unwrap();
        ws.send(Message::binary(b"live".to_vec())).await.unwrap();
        ws.next().await.unwrap().unwrap();
        sessions.push(ws);
    }
    proxy.signal("TERM");
    for mut ws in sessions {
        let (_, close) = read_to_close(&mut ws).await;
        assert_eq!(close_of(&close).0, 1001);
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = proxy.wait_exit(Duration::from_secs(10));
        (status, proxy.log())
    })
    .await
    .unwrap();
    assert_eq!(status.0.map(|s| s.code()), Some(Some(0)), "{}", status.1);
    // New connections are refused once it has exited.
    assert!(status.1.contains("SIGTERM received"));
}

#[tokio::test]
async fn heartbeat_pings() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--heartbeat", "1", "127.0.0.1:0", &target.to_string()]);
    let (mut ws, _) = connect(&proxy.url(), None).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(msg, Message::Ping(_)), "{msg:?}");
}

#[tokio::test]
async fn idle_timeout_and_timeout_exit() {
    let target = echo_target("127.0.0.1:0").await;
    let mut idle = Proxy::start(&["--idle-timeout", "1", "127.0.0.1:0", &target.to_string()]);
    let mut timeout = Proxy::start(&["--timeout", "1", "127.0.0.1:0", &target.to_string()]);
    let (a, b) = tokio::task::spawn_blocking(move || {
        (idle.wait_exit(Duration::from_secs(10)), timeout.wait_exit(Duration::from_secs(10)))
    })
    .await
    .unwrap();
    assert_eq!(a.map(|s| s.code()), Some(Some(0)));
    assert_eq!(b.map(|s| s.code()), Some(Some(0)));
}

/// Sends a raw (hand-built) request and returns the response head and what follows.
async fn raw_session(addr: std::net::SocketAddr, extra_headers: &str, frames: &[u8]) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /websockify HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra_headers}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(frames).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await.expect("server closes");
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").map_or(out.len(), |p| p + 4);
    (String::from_utf8_lossy(&out[..split]).into_owned(), out[split..].to_vec())
}

/// The close code at the end of the server's frames (last frame must be a close).
fn last_close_code(frames: &[u8]) -> u16 {
    let mut pos = 0;
    let mut last = None;
    while pos + 2 <= frames.len() {
        let len = (frames[pos + 1] & 0x7F) as usize;
        let (hlen, len) = match len {
            126 => (4, u16::from_be_bytes([frames[pos + 2], frames[pos + 3]]) as usize),
            127 => (10, u64::from_be_bytes(frames[pos + 2..pos + 10].try_into().unwrap()) as usize),
            n => (2, n),
        };
        last = Some((frames[pos] & 0x0F, &frames[pos + hlen..pos + hlen + len]));
        pos += hlen + len;
    }
    let (op, payload) = last.expect("a frame");
    assert_eq!(op, 0x8, "last frame is a close");
    u16::from_be_bytes([payload[0], payload[1]])
}

#[tokio::test]
async fn protocol_violations_get_their_close_codes() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--max-message-size", "1000", "127.0.0.1:0", &target.to_string()]);
    let v13 = "Sec-WebSocket-Version: 13\r\n";
    let cases: [(&[u8], u16); 6] = [
        (b"\x82\x03abc", 1002),                                      // unmasked
        (b"\xC2\x80\0\0\0\0", 1002),                                 // RSV1 without extension
        (b"\x81\x81\0\0\0\0\xFF", 1007),                             // invalid UTF-8 text
        (b"\x82\xFE\x07\xD0\0\0\0\0", 1009),                         // 2000 bytes > 1000 limit
        (b"\x82\xFF\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF\0\0\0\0", 1009), // 2^63-1 byte header
        (b"\x88\x82\0\0\0\0\x03\xED", 1002),                         // close code 1005 is reserved
    ];
    for (frames, code) in cases {
        let (head, rest) = raw_session(proxy.addr, v13, frames).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert_eq!(last_close_code(&rest), code, "frames {frames:x?}");
    }
    // Ping answered with pong of the same payload, before the close echo.
    let (_, rest) = raw_session(proxy.addr, v13, b"\x89\x82\0\0\0\0hi\x88\x82\0\0\0\0\x03\xE8").await;
    assert_eq!(&rest[..4], b"\x8A\x02hi");
    assert_eq!(last_close_code(&rest[4..]), 1000);
}

#[tokio::test]
async fn handshake_errors_are_precise() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["127.0.0.1:0", &target.to_string()]);
    let (head, _) = raw_session(proxy.addr, "Sec-WebSocket-Version: 12\r\n", b"").await;
    assert!(head.starts_with("HTTP/1.1 426") && head.contains("Sec-WebSocket-Version: 13"), "{head}");
    let (head, _) = raw_session(proxy.addr, "", b"").await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    let (head, body) =
        raw_session(proxy.addr, "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n", b"").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("supported: binary, base64"));
    // Garbage and oversized heads.
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"\x01\x02garbage\r\n\r\n").await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let _ = s.write_all(big.as_bytes()).await;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 431"));
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [&["6080"][..], &["abc", "h:1"], &["6080", "h:1", "--web", "x"], &["6080", "h:1", "--nope"]] {
        let (status, out) = run_proxy(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {out}");
        assert_eq!(out.trim().lines().count(), 1, "{args:?}: {out}");
        assert!(out.starts_with("websockify: "), "{out}");
    }
    let (status, out) = run_proxy(&["--help"]);
    assert_eq!(status.code(), Some(0));
    assert!(out.contains("--unix-target") && out.contains("--heartbeat"));
    // An unbindable listen address is a clear failure, not exit 0.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (status, out) = run_proxy(&[&l.local_addr().unwrap().to_string(), "h:1"]);
    assert_eq!(status.code(), Some(1));
    assert!(out.contains("cannot listen on"), "{out}");
}

#[tokio::test]
async fn timeout_lets_live_sessions_finish() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--timeout", "1", "127.0.0.1:0", &target.to_string()]);
    let (mut ws, _) = connect(&proxy.url(), None).await.unwrap();
    let mut proxy = tokio::task::spawn_blocking(move || {
        proxy.wait_log("--timeout reached", Duration::from_secs(10));
        proxy
    })
    .await
    .unwrap();
    // Past the timeout the listener is gone but the live session still works.
    assert!(TcpStream::connect(proxy.addr).await.is_err(), "no longer accepting");
    ws.send(Message::binary(b"still here".to_vec())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(b"still here".to_vec()));
    assert!(proxy.child.try_wait().unwrap().is_none());
    ws.close(None).await.unwrap();
    let status = tokio::task::spawn_blocking(move || proxy.wait_exit(Duration::from_secs(10))).await.unwrap();
    assert_eq!(status.map(|s| s.code()), Some(Some(0)));
}
