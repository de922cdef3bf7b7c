//! Telling connections apart by their first bytes, on one port: TLS (a handshake record
//! starts with 0x16, an SSLv2-style hello with 0x80), a Flash cross-domain policy request,
//! or else HTTP. Every byte read here is handed on to the next stage.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// What Flash clients send before opening a socket.
pub const POLICY_REQUEST: &[u8] = b"<policy-file-request/>";
/// The answer (SPEC §2): any domain, any port, then a NUL byte.
pub const POLICY_RESPONSE: &[u8] =
    b"<cross-domain-policy><allow-access-from domain=\"*\" to-ports=\"*\" /></cross-domain-policy>\0";

/// The kind of a new connection, with the bytes read to find out.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Tls(BytesMut),
    FlashPolicy,
    Http(BytesMut),
}

#[derive(Debug, thiserror::Error)]
pub enum SniffError {
    #[error("no data within {0:?}")]
    Timeout(Duration),
    #[error("closed before sending anything")]
    Closed,
    #[error("reading the first bytes: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the first bytes of `io` (within `timeout`) and classifies the connection.
pub async fn sniff<S: AsyncRead + Unpin>(io: &mut S, timeout: Duration) -> Result<Kind, SniffError> {
    sniff_after(io, BytesMut::new(), timeout).await
}

/// Like [`sniff`], `buf` holding the connection's first bytes if some were read already
/// (after a PROXY protocol header).
pub async fn sniff_after<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: BytesMut,
    timeout: Duration,
) -> Result<Kind, SniffError> {
    tokio::time::timeout(timeout, classify(io, buf)).await.map_err(|_| SniffError::Timeout(timeout))?
}

async fn classify<S: AsyncRead + Unpin>(io: &mut S, mut buf: BytesMut) -> Result<Kind, SniffError> {
    buf.reserve(1024);
    if buf.is_empty() && io.read_buf(&mut buf).await? == 0 {
        return Err(SniffError::Closed);
    }
    if matches!(buf[0], 0x16 | 0x80) {
        return Ok(Kind::Tls(buf));
    }
    // A policy request may arrive in pieces: read while it still could be one.
    while buf.len() < POLICY_REQUEST.len() && POLICY_REQUEST.starts_with(&buf) {
        if io.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    if buf.starts_with(POLICY_REQUEST) {
        return Ok(Kind::FlashPolicy);
    }
    Ok(Kind::Http(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn kinds() {
        let t = Duration::from_secs(1);
        assert!(
            matches!(sniff(&mut &b"\x16\x03\x01\x02"[..], t).await.unwrap(), Kind::Tls(b) if &b[..] == b"\x16\x03\x01\x02")
        );
        assert!(matches!(sniff(&mut &b"\x80\x2e"[..], t).await.unwrap(), Kind::Tls(_)));
        assert_eq!(sniff(&mut &b"<policy-file-request/>\0"[..], t).await.unwrap(), Kind::FlashPolicy);
        assert!(
            matches!(sniff(&mut &b"GET / HTTP/1.1\r\n"[..], t).await.unwrap(), Kind::Http(b) if &b[..] == b"GET / HTTP/1.1\r\n")
        );
        assert!(matches!(sniff(&mut &b"<policy"[..], t).await.unwrap(), Kind::Http(b) if &b[..] == b"<policy"));
        assert!(matches!(sniff(&mut &b""[..], t).await, Err(SniffError::Closed)));
    }

    #[tokio::test]
    async fn policy_request_in_pieces_and_silence() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let task = tokio::spawn(async move { sniff(&mut server, Duration::from_secs(5)).await.unwrap() });
        for piece in POLICY_REQUEST.chunks(5) {
            client.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        assert_eq!(task.await.unwrap(), Kind::FlashPolicy);
        let (_client, mut server) = tokio::io::duplex(64);
        let err = sniff(&mut server, Duration::from_millis(20)).await.unwrap_err();
        assert!(matches!(err, SniffError::Timeout(_)));
    }
}
