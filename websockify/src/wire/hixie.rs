//! The pre-RFC WebSocket drafts the seed era supported: Hixie-76 (key1/key2/key3 MD5
//! challenge) and Hixie-75 (no challenge). Both frame text as `0x00 <UTF-8> 0xFF` and close
//! with `0xFF 0x00`; websockify always carries base64 in them.

use md5::{Digest, Md5};
use std::ops::Range;

use crate::wire::http::Request;
use crate::wire::ws::{Event, ProtocolError};

/// Which draft a request speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draft {
    Hixie75,
    Hixie76,
}

/// Whether a request without `Sec-WebSocket-Version` is a Hixie handshake, and which.
pub fn draft_of(req: &Request) -> Option<Draft> {
    if req.header("Sec-WebSocket-Version").is_some() {
        return None;
    }
    if req.header("Sec-WebSocket-Key1").is_some() || req.header("Sec-WebSocket-Key2").is_some() {
        return Some(Draft::Hixie76);
    }
    (req.header("Sec-WebSocket-Key").is_none()).then_some(Draft::Hixie75)
}

/// Bytes of the key3 body that follows a Hixie-76 request head.
pub const KEY3_LEN: usize = 8;

/// The 101 response of a Hixie handshake; for Hixie-76 `key3` must start with the 8
/// bytes after the head. `secure` picks `wss://` for the Location.
pub fn response(req: &Request, draft: Draft, key3: &[u8], secure: bool) -> Result<Vec<u8>, &'static str> {
    let host = req.header("Host").ok_or("Missing Host header")?;
    let origin = req.header("Origin").unwrap_or("null");
    let scheme = if secure { "wss" } else { "ws" };
    let location = format!("{scheme}://{host}{}", req.target);
    // The protocol is echoed only if the client offered base64, the one encoding Hixie
    // sessions use here.
    let protocol_header = if draft == Draft::Hixie76 { "Sec-WebSocket-Protocol" } else { "WebSocket-Protocol" };
    let offered_base64 = req.header_tokens(protocol_header).any(|p| p == "base64");
    let mut out = match draft {
        Draft::Hixie76 => format!(
            "HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Origin: {origin}\r\nSec-WebSocket-Location: {location}\r\n"
        ),
        Draft::Hixie75 => format!(
            "HTTP/1.1 101 Web Socket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
             WebSocket-Origin: {origin}\r\nWebSocket-Location: {location}\r\n"
        ),
    };
    if offered_base64 {
        out.push_str(&format!("{protocol_header}: base64\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if draft == Draft::Hixie76 {
        let key1 = req.header("Sec-WebSocket-Key1").ok_or("Missing Sec-WebSocket-Key1 header")?;
        let key2 = req.header("Sec-WebSocket-Key2").ok_or("Missing Sec-WebSocket-Key2 header")?;
        let key3: &[u8; KEY3_LEN] =
            key3.get(..KEY3_LEN).and_then(|k| k.try_into().ok()).ok_or("Missing the 8-byte key3 body")?;
        out.extend_from_slice(&challenge(key1, key2, key3).ok_or("Invalid Sec-WebSocket-Key1/Key2")?);
    }
    Ok(out)
}

/// The Hixie-76 challenge answer: MD5 of the two key numbers (big-endian 32-bit) and key3.
pub fn challenge(key1: &str, key2: &str, key3: &[u8; KEY3_LEN]) -> Option<[u8; 16]> {
    let mut md5 = Md5::new();
    md5.update(key_number(key1)?.to_be_bytes());
    md5.update(key_number(key2)?.to_be_bytes());
    md5.update(key3);
    Some(md5.finalize().into())
}

/// The digits of a key divided by its number of spaces; must divide exactly.
fn key_number(key: &str) -> Option<u32> {
    let digits: String = key.chars().filter(char::is_ascii_digit).collect();
    let spaces = key.chars().filter(|c| *c == ' ').count() as u64;
    let n: u64 = digits.parse().ok()?;
    if spaces == 0 || n % spaces != 0 {
        return None;
    }
    u32::try_from(n / spaces).ok()
}

/// Streaming decoder of Hixie frames from the client, with the same events as the RFC 6455
/// decoder (payload ranges into the caller's buffer).
#[derive(Debug, Default)]
pub struct HixieDecoder {
    state: State,
    /// Bytes of the current message so far, for the message size limit.
    message_len: u64,
    max_message: u64,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    FrameStart,
    /// Inside a `0x00 ... 0xFF` text frame.
    Text,
    /// Inside a sentinel-terminated frame of another type (0x01-0x7F): the drafts say to
    /// read it to its 0xFF and discard it.
    SkipText,
    /// Reading the length of a binary-typed frame (high bit set), which is skipped.
    Length {
        frame_type: u8,
        len: u64,
    },
    Skip(u64),
}

impl HixieDecoder {
    pub fn new(max_message: u64) -> Self {
        Self { max_message, ..Self::default() }
    }

    pub fn decode(&mut self, buf: &mut [u8]) -> Result<(Event, usize), ProtocolError> {
        let mut pos = 0;
        loop {
            let Some(&byte) = buf.get(pos) else { return Ok((Event::NeedMore, pos)) };
            match self.state {
                State::FrameStart if byte == 0x00 => {
                    self.state = State::Text;
                    self.message_len = 0;
                    pos += 1;
                }
                State::FrameStart if byte & 0x80 == 0 => {
                    self.state = State::SkipText;
                    pos += 1;
                }
                State::SkipText => match buf[pos..].iter().position(|&b| b == 0xFF) {
                    Some(i) => {
                        pos += i + 1;
                        self.state = State::FrameStart;
                    }
                    None => pos = buf.len(),
                },
                State::FrameStart => {
                    self.state = State::Length { frame_type: byte, len: 0 };
                    pos += 1;
                }
                State::Length { frame_type, len } => {
                    pos += 1;
                    let len = len
                        .checked_mul(128)
                        .and_then(|l| l.checked_add(u64::from(byte & 0x7F)))
                        .ok_or(ProtocolError::LengthOverflow)?;
                    if byte & 0x80 != 0 {
                        self.state = State::Length { frame_type, len };
                    } else if frame_type == 0xFF && len == 0 {
                        self.state = State::FrameStart;
                        return Ok((Event::Close { code: None, reason: pos..pos }, pos));
                    } else {
                        self.state = State::Skip(len);
                    }
                }
                State::Skip(left) => {
                    let n = left.min((buf.len() - pos) as u64);
                    pos += n as usize;
                    self.state = if left == n { State::FrameStart } else { State::Skip(left - n) };
                }
                State::Text => {
                    let rest = &buf[pos..];
                    let (end, last) = match rest.iter().position(|&b| b == 0xFF) {
                        Some(i) => (pos + i, true),
                        None => (buf.len(), false),
                    };
                    self.message_len += (end - pos) as u64;
                    if self.message_len > self.max_message {
                        return Err(ProtocolError::MessageTooBig(self.max_message));
                    }
                    let payload: Range<usize> = pos..end;
                    if last {
                        self.state = State::FrameStart;
                    }
                    let consumed = if last { end + 1 } else { end };
                    if payload.is_empty() && !last {
                        return Ok((Event::NeedMore, consumed));
                    }
                    return Ok((Event::Data { payload, text: true, last }, consumed));
                }
            }
        }
    }
}

/// The Hixie close frame.
pub const CLOSE: [u8; 2] = [0xFF, 0x00];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http::{HeadLimits, parse_head};

    #[test]
    fn draft76_example_vector() {
        // draft-hixie-thewebsocketprotocol-76, section 1.3 / 5.2.
        let answer = challenge("4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", b"^n:ds[4U").unwrap();
        assert_eq!(&answer, b"8jKS'y:G*Co,Wxa-");
    }

    #[test]
    fn invalid_keys() {
        assert_eq!(key_number("12345"), None, "no spaces");
        assert_eq!(key_number("1 0 1"), None, "101 / 2 is not whole");
        assert_eq!(key_number("x y"), None, "no digits");
    }

    #[test]
    fn draft76_response() {
        let raw = b"GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\
                    Sec-WebSocket-Protocol: base64\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n\
                    Origin: http://example.com\r\n\r\n^n:ds[4U";
        let (req, len) = parse_head(raw, HeadLimits::default()).unwrap().unwrap();
        assert_eq!(draft_of(&req), Some(Draft::Hixie76));
        let out = response(&req, Draft::Hixie76, &raw[len..], false).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 101 WebSocket Protocol Handshake\r\n"));
        assert!(text.contains("Sec-WebSocket-Origin: http://example.com\r\n"));
        assert!(text.contains("Sec-WebSocket-Location: ws://example.com/demo\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: base64\r\n"));
        assert!(out.ends_with(b"\r\n\r\n8jKS'y:G*Co,Wxa-"));
        let wss = response(&req, Draft::Hixie76, &raw[len..], true).unwrap();
        assert!(String::from_utf8_lossy(&wss).contains("Location: wss://example.com/demo"));
    }

    #[test]
    fn draft75_response() {
        let raw =
            b"GET /x HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nHost: h:1\r\nOrigin: http://o\r\n\r\n";
        let (req, _) = parse_head(raw, HeadLimits::default()).unwrap().unwrap();
        assert_eq!(draft_of(&req), Some(Draft::Hixie75));
        let out = String::from_utf8(response(&req, Draft::Hixie75, &[], false).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 101 Web Socket Protocol Handshake\r\n"));
        assert!(out.contains("WebSocket-Location: ws://h:1/x\r\n") && out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn frames_stream_and_close() {
        let mut d = HixieDecoder::new(1 << 20);
        let mut buf = b"\x00QUJD\xff\x00RE".to_vec();
        let (ev, used) = d.decode(&mut buf).unwrap();
        assert_eq!(ev, Event::Data { payload: 1..5, text: true, last: true });
        assert_eq!(used, 6);
        let (ev, used2) = d.decode(&mut buf[used..]).unwrap();
        assert_eq!(ev, Event::Data { payload: 1..3, text: true, last: false });
        assert_eq!(used2, 3);
        let mut rest = b"VG\xff\xff\x00".to_vec();
        let (ev, used) = d.decode(&mut rest).unwrap();
        assert_eq!(ev, Event::Data { payload: 0..2, text: true, last: true });
        let (ev, _) = d.decode(&mut rest[used..]).unwrap();
        assert!(matches!(ev, Event::Close { code: None, .. }));
    }

    #[test]
    fn length_frames_are_skipped_and_limits_hold() {
        let mut d = HixieDecoder::new(4);
        let mut buf = b"\x80\x03abc\x01eHl6\xff\x00QUJD\xff".to_vec();
        let (ev, _) = d.decode(&mut buf).unwrap();
        assert_eq!(ev, Event::Data { payload: 12..16, text: true, last: true }, "typed frames skipped");
        let mut big = b"\x00QUJDRA==".to_vec();
        assert_eq!(d.decode(&mut big), Err(ProtocolError::MessageTooBig(4)));
    }
}
