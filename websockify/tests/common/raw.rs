//! Raw WebSocket client pieces for what no client library will do: hand-built upgrades,
//! frames written byte by byte or by the million, and reading the server's frames up to
//! its close.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens a session with a hand-built upgrade; returns the stream after the 101 head.
pub async fn raw_session(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "head so far: {:?}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

/// A masked client frame (mask key 0, so the payload goes as is).
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(payload);
    f
}

/// Reads server frames until a close frame; returns the data bytes before it and its code.
pub async fn read_close(s: &mut TcpStream, limit: Duration) -> (u64, Option<u16>) {
    let mut buf = Vec::new();
    let mut data = 0u64;
    let deadline = Instant::now() + limit;
    loop {
        // Parse what we have.
        while buf.len() >= 2 {
            let len7 = (buf[1] & 0x7f) as usize;
            let (hlen, len) = match len7 {
                126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
                127 if buf.len() >= 10 => (10, u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize),
                126 | 127 => break,
                n => (2, n),
            };
            if buf.len() < hlen + len {
                break;
            }
            if buf[0] & 0x0f == 0x8 {
                let code = (len >= 2).then(|| u16::from_be_bytes([buf[hlen], buf[hlen + 1]]));
                return (data, code);
            }
            if buf[0] & 0x0f <= 0x2 {
                data += len as u64;
            }
            buf.drain(..hlen + len);
        }
        let mut chunk = vec![0u8; 65536];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (data, None),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no close frame within {limit:?} ({data} data bytes)"),
        }
    }
}
