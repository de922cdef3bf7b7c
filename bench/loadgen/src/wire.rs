//! What goes over the wire: URLs, the target's request lines, client frames,
//! the opening handshake, and a sans-IO reader of server frames.
//!
//! Everything here is pure: the blocking client (`client.rs`) and the async
//! swarm (`swarm.rs`) share it and only differ in how bytes are read.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::io;

/// The stream both ends of a measurement agree on: 0..=255 repeated. Period
/// 256, so any buffer whose length is a multiple of 256 sent over and over
/// stays one continuous, checkable stream.
pub fn pattern(offset: usize, n: usize) -> Vec<u8> {
    (offset..offset + n).map(|i| i as u8).collect()
}

/// Bytes of a stream compared with `pattern` at each end: a proxy that
/// corrupts data fails the run instead of looking fast.
pub const CHECK_BYTES: u64 = 65536;

/// How to reach a system under test.
#[derive(Clone, Debug)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
    /// WebSocket framing (ws://, wss://) or raw bytes (tcp://, tls://).
    pub ws: bool,
    pub tls: bool,
}

impl Url {
    pub fn parse(text: &str) -> io::Result<Url> {
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("bad URL {text:?}"));
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let (ws, tls) = match scheme {
            "tcp" => (false, false),
            "tls" => (false, true),
            "ws" => (true, false),
            "wss" => (true, true),
            _ => return Err(bad()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        Ok(Url { host: host.to_string(), port, path: path.to_string(), ws, tls })
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The mask of every client frame: a fixed key is as good as a random one
/// for a proxy, and lets frames be built once.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One final, masked client frame (RFC 6455 section 5.2), appended to `out`.
pub fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    let n = payload.len();
    out.push(0x80 | opcode);
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]));
}

/// `payload` as the client sends it: one binary frame, or raw bytes.
pub fn message(ws: bool, payload: &[u8]) -> Vec<u8> {
    if !ws {
        return payload.to_vec();
    }
    let mut out = Vec::with_capacity(payload.len() + 14);
    push_frame(&mut out, 0x2, payload);
    out
}

/// The close frame a client sends when it is done (code 1000).
pub fn close_frame() -> Vec<u8> {
    let mut out = Vec::new();
    push_frame(&mut out, 0x8, &1000u16.to_be_bytes());
    out
}

/// The opening handshake request and the `Sec-WebSocket-Accept` it expects.
///
/// It offers the `binary` subprotocol: websockify-js refuses a client that
/// offers neither `binary` nor `base64`, and the others treat `binary` as
/// they treat no offer.
pub fn handshake_request(url: &Url, nonce: u64) -> (Vec<u8>, String) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.encode(nonce.to_le_bytes().repeat(2));
    let accept = accept_key(&key);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: binary\r\n\r\n",
        url.path,
        url.addr()
    );
    (request.into_bytes(), accept)
}

fn accept_key(key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(
        Sha1::new().chain_update(key.as_bytes()).chain_update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").finalize(),
    )
}

/// Checks a complete response head (up to and including the blank line).
pub fn check_handshake_response(head: &[u8], accept: &str) -> io::Result<()> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    if status.split(' ').nth(1) != Some("101") {
        return Err(io::Error::other(format!("handshake refused: {status:?}")));
    }
    let got = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, v)| v.trim());
    if got != Some(accept) {
        return Err(io::Error::other("handshake: bad Sec-WebSocket-Accept"));
    }
    Ok(())
}

/// Where the response head ends (index past "\r\n\r\n"), if it is complete.
pub fn head_end(data: &[u8]) -> Option<usize> {
    data.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Counts payload bytes in what the server sends, without copying them:
/// frame headers are parsed, data payloads counted (or kept on request),
/// control frames (ping, pong) skipped. A close frame is an error: no run
/// expects one before it has all its bytes. Raw TCP is all payload.
pub struct Deframer {
    ws: bool,
    head: [u8; 10],
    head_len: usize,
    remaining: u64,
    counting: bool,
}

impl Deframer {
    pub fn new(ws: bool) -> Deframer {
        Deframer { ws, head: [0; 10], head_len: 0, remaining: 0, counting: true }
    }

    /// Feeds `data`, stopping once `want` payload bytes were seen; payload
    /// bytes are appended to `keep` if given. Returns (bytes of `data` used,
    /// payload bytes seen).
    pub fn feed(&mut self, data: &[u8], want: u64, mut keep: Option<&mut Vec<u8>>) -> io::Result<(usize, u64)> {
        let mut used = 0;
        let mut got = 0u64;
        while used < data.len() && got < want {
            if self.ws && self.remaining == 0 && !self.header(data, &mut used)? {
                continue;
            }
            let avail = (data.len() - used) as u64;
            let take = if self.ws { avail.min(self.remaining) } else { avail };
            let take = if self.counting { take.min(want - got) } else { take };
            if self.counting {
                if let Some(k) = keep.as_deref_mut() {
                    k.extend_from_slice(&data[used..used + take as usize]);
                }
                got += take;
            }
            if self.ws {
                self.remaining -= take;
            }
            used += take as usize;
        }
        Ok((used, got))
    }

    /// Takes header bytes from data[*used..]; true once a data or control
    /// frame with a payload is current (empty frames are skipped here).
    fn header(&mut self, data: &[u8], used: &mut usize) -> io::Result<bool> {
        while *used < data.len() {
            self.head[self.head_len] = data[*used];
            self.head_len += 1;
            *used += 1;
            let Some(len) = self.complete_header()? else { continue };
            self.head_len = 0;
            if self.head[0] & 0x0f == 0x8 {
                return Err(io::Error::other("server sent a close frame"));
            }
            self.counting = self.head[0] & 0x0f < 0x8;
            self.remaining = len;
            return Ok(len > 0);
        }
        Ok(false)
    }

    fn complete_header(&self) -> io::Result<Option<u64>> {
        if self.head_len < 2 {
            return Ok(None);
        }
        if self.head[1] & 0x80 != 0 {
            return Err(io::Error::other("server sent a masked frame"));
        }
        let need = match self.head[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        if self.head_len < need {
            return Ok(None);
        }
        Ok(Some(match need {
            4 => u16::from_be_bytes([self.head[2], self.head[3]]) as u64,
            10 => u64::from_be_bytes(self.head[2..10].try_into().unwrap()),
            _ => (self.head[1] & 0x7f) as u64,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deframer_counts_across_splits_and_skips_pings() {
        // Server frames: binary "abc", ping "x", binary of 300 bytes (16-bit length).
        let mut s = vec![0x82, 3, b'a', b'b', b'c', 0x89, 1, b'x', 0x82, 126, 0x01, 0x2c];
        s.extend(std::iter::repeat_n(7u8, 300));
        for split in 0..s.len() {
            let mut d = Deframer::new(true);
            let mut kept = Vec::new();
            let (u1, g1) = d.feed(&s[..split], 1000, Some(&mut kept)).unwrap();
            assert_eq!(u1, split);
            let (u2, g2) = d.feed(&s[split..], 1000, Some(&mut kept)).unwrap();
            assert_eq!(u2, s.len() - split);
            assert_eq!(g1 + g2, 303);
            assert_eq!(&kept[..3], b"abc");
        }
    }

    #[test]
    fn deframer_stops_at_want() {
        let s = [0x82, 4, 1, 2, 3, 4, 0x82, 1, 5];
        let mut d = Deframer::new(true);
        assert_eq!(d.feed(&s, 3, None).unwrap(), (5, 3));
        assert_eq!(d.feed(&s[5..], 10, None).unwrap(), (4, 2));
    }

    #[test]
    fn handshake_accept_matches_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
