//! The per-session and per-connection limits of issue 8, each against the real binary:
//! a session idle timeout, a control-frame rate, the text hold bound, the first-byte and
//! whole-handshake deadlines. Clients: tokio-tungstenite, and raw TCP for what no client
//! library does on purpose.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(url: &str) -> Ws {
    connect_async(url).await.expect("handshake").0
}

/// Reads messages until the server's close frame (answering pings is tungstenite's job).
async fn close_frame(ws: &mut Ws, limit: Duration) -> (u16, String) {
    let frame = tokio::time::timeout(limit, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame,
                Ok(_) => {}
                Err(e) => panic!("stream failed before the close frame: {e}"),
            }
        }
        None
    })
    .await
    .expect("a close frame in time")
    .expect("a close frame, not just an end of stream");
    (u16::from(frame.code), frame.reason.to_string())
}

#[tokio::test]
async fn idle_session_is_closed_with_1001_and_busy_one_is_not() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--session-idle-timeout", "1", "127.0.0.1:0", &target.to_string()]);
    let mut idle = connect(&proxy.url()).await;
    let mut busy = connect(&proxy.url()).await;
    let started = Instant::now();
    // The busy session echoes every 300 ms for 2.5 s, past the idle one's end.
    let busy_task = tokio::spawn(async move {
        for i in 0..8u8 {
            busy.send(Message::binary(vec![i; 10])).await.unwrap();
            match busy.next().await.unwrap().unwrap() {
                Message::Binary(b) => assert_eq!(&b[..], &[i; 10]),
                other => panic!("busy session got {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        busy
    });
    let (code, reason) = close_frame(&mut idle, Duration::from_secs(5)).await;
    let after = started.elapsed();
    assert_eq!((code, reason.as_str()), (1001, "Session idle timeout"));
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(3), "closed after {after:?}");
    let mut busy = busy_task.await.unwrap();
    busy.close(None).await.unwrap();
    proxy.wait_log("idle timeout", Duration::from_secs(5));
}

// Multi-threaded: `wait_log` blocks its thread, and the echo target in this runtime must
// keep running meanwhile (the proxy drains it before the session ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_is_closed_with_1008() {
    let target = echo_target("127.0.0.1:0").await;
    let proxy = Proxy::start(&["--max-control-rate", "20", "127.0.0.1:0", &target.to_string()]);
    // Within the rate: 10 pings, all answered, the session goes on.
    let mut calm = connect(&proxy.url()).await;
    for _ in 0..10 {
        calm.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    }
    calm.send(Message::binary(b"still here".to_vec())).await.unwrap();
    let mut pongs = 0;
    loop {
        match calm.next().await.unwrap().unwrap() {
            Message::Pong(_) => pongs += 1,
            Message::Binary(b) => {
                assert_eq!(&b[..], b"still here");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(pongs, 10);
    // Over the rate: closed with 1008.
    let mut flood = connect(&proxy.url()).await;
    for _ in 0..200 {
        if flood.send(Message::Ping(b"x".to_vec().into())).await.is_err() {
            break;
        }
    }
    let frame = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(msg) = flood.next().await {
            if let Ok(Message::Close(frame)) = msg {
                return frame;
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("a close frame");
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1008, "Too many control frames"));
    // After its close frame the proxy reads until the client closes its end, for at most
    // 5 s (the same as the wait below): close it rather than race that deadline.
    drop(flood);
    proxy.wait_log("protocol error, closed with 1008: Too many control frames", Duration::from_secs(5));
    // The calm session is unaffected.
    calm.send(Message::binary(b"after".to_vec())).await.unwrap();
    assert_eq!(calm.next().await.unwrap().unwrap(), Message::binary(b"after".to_vec()));
}

#[tokio::test]
async fn long_text_message_is_streamed_past_the_hold_bound() {
    let (target, mut seen) = sink_target().await;
    let proxy = Proxy::start(&["--max-text-hold", "65536", "127.0.0.1:0", &target.to_string()]);
    let mut ws = connect(&proxy.url()).await;
    let text: String = (0..3_000_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    ws.send(Message::text(text.clone())).await.unwrap();
    ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await.unwrap();
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            break;
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await.unwrap().unwrap();
    assert_eq!((got.bytes, got.sha256), (text.len() as u64, sha256_hex(text.as_bytes())));
}

/// A text message longer than the hold bound with invalid UTF-8 at its end: the part
/// beyond the bound was already forwarded, and the session closes with 1007.
#[tokio::test]
async fn invalid_utf8_after_the_hold_bound_is_1007() {
    let (target, _seen) = sink_target().await;
    let proxy = Proxy::start(&["--max-text-hold", "1024", "127.0.0.1:0", &target.to_string()]);
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut payload = vec![b'a'; 4096];
    payload.push(0xFF);
    let mut frame = vec![0x81, 0xFE, (payload.len() >> 8) as u8, payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(&payload); // zero mask key: payload as is
    tcp.write_all(&frame).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let frames = &got[text.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(frames[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([frames[2], frames[3]]), 1007);
}

#[tokio::test]
async fn silent_connection_is_dropped_at_the_first_byte_deadline() {
    let proxy = Proxy::start(&["--first-byte-timeout", "1", "127.0.0.1:0", "127.0.0.1:9"]);
    let started = Instant::now();
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "closed without a word: {n:?}");
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(3), "closed after {after:?}");
}

/// The handshake deadline counts from accept: a client that waits a second before its
/// first bytes and then trickles the rest is cut off 2 s after accept, not 2 s after its
/// first bytes.
#[tokio::test]
async fn trickled_head_is_cut_off_at_the_handshake_deadline() {
    let proxy = Proxy::start(&["--handshake-timeout", "2", "--first-byte-timeout", "2", "127.0.0.1:0", "127.0.0.1:9"]);
    let started = Instant::now();
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = wr.write_all(b"GET / HTTP/1.1\r\n").await;
        while wr.write_all(b"X-A: b\r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), rd.read_to_end(&mut got)).await;
    let after = started.elapsed();
    assert!(after >= Duration::from_millis(1900) && after < Duration::from_millis(2800), "cut off after {after:?}");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[test]
fn limit_flags_are_validated() {
    for (flag, value) in [
        ("--first-byte-timeout", "0"),
        ("--tls-handshake-timeout", "0"),
        ("--connect-timeout", "0"),
        ("--max-request-head", "10"),
        ("--max-headers", "0"),
    ] {
        let (status, stderr) = run_proxy(&[flag, value, "6080", "localhost:5900"]);
        assert_eq!(status.code(), Some(2), "{flag} {value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(flag), "{stderr}");
    }
}
