//! RFC 6455 framing for a server, sans-IO.
//!
//! The decoder works **in place** on the caller's read buffer: it parses a frame header,
//! unmasks the payload where it lies and hands back *ranges* of that buffer. A data frame's
//! payload is streamed chunk by chunk as it arrives, so a frame that announces 2^62 bytes
//! costs no memory; only control frames (at most 125 bytes) are held whole.
//!
//! Why not a frame library: fastwebsockets and tokio-websockets both read a whole frame
//! into memory before yielding it (a 64 MiB frame is a 64 MiB allocation) and copy the
//! payload into their own buffers. A byte-stream proxy wants the opposite: unmask in the
//! read buffer and write straight to the target. This module is ~400 lines, fuzzed
//! (`fuzz/fuzz_targets/frame_decoder.rs`) and checked by Autobahn|Testsuite.

use std::ops::Range;

/// Largest header a frame can have: 2 + 8 (length) + 4 (mask).
pub const MAX_HEADER: usize = 14;
/// Largest header a server frame has (servers never mask).
pub const MAX_SERVER_HEADER: usize = 10;
/// Control frames carry at most this many payload bytes (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Close status codes we send or need by name (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Whether a peer may send `code` in a close frame (RFC 6455 §7.4 and the IANA registry):
/// 1004-1006 and 1015 are reserved for local use, below 1000 and 1016-2999 are unassigned,
/// 3000-4999 belong to libraries and applications.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A violation of RFC 6455 by the peer, with the close code it calls for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    #[error("reserved opcode {0:#x}")]
    ReservedOpCode(u8),
    #[error("client frame is not masked")]
    Unmasked,
    #[error("control frame is fragmented")]
    FragmentedControl,
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    #[error("frame length has the most significant bit set")]
    LengthOverflow,
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    #[error("close frame with a one-byte payload")]
    CloseTooShort,
    #[error("close frame with invalid status code {0}")]
    InvalidCloseCode(u16),
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("message exceeds the {0}-byte limit")]
    MessageTooBig(u64),
}

impl ProtocolError {
    /// The close code this violation is answered with.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::InvalidCloseReason | Self::InvalidUtf8 => close_code::INVALID_PAYLOAD,
            Self::MessageTooBig(_) => close_code::TOO_BIG,
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// Parses a frame header from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` does not hold the whole header yet, else the header and
/// its length in bytes. Checks only what the header alone can tell (opcode, control
/// frame rules, length encoding); the decoder adds the stateful rules.
pub fn decode_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtocolError::ReservedOpCode(b0 & 0x0F))?;
    let masked = b1 & 0x80 != 0;
    let (len, mut pos) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthOverflow);
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControl);
        }
        if len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(ProtocolError::ControlTooLong(len));
        }
    }
    let mask = if masked {
        let Some(m) = buf.get(pos..pos + 4) else { return Ok(None) };
        pos += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    Ok(Some((FrameHeader { fin, rsv, opcode, mask, len }, pos)))
}

/// Writes an unmasked (server) frame header for a `len`-byte payload at the *end* of
/// `dst`, so that the payload can follow it without a copy; returns the header length.
///
/// The relay reads target bytes into `buf[MAX_SERVER_HEADER..]` and calls this on
/// `buf[..MAX_SERVER_HEADER]`, then writes `buf[MAX_SERVER_HEADER - n..]` in one call.
pub fn encode_header_before(dst: &mut [u8; MAX_SERVER_HEADER], fin: bool, opcode: OpCode, len: usize) -> usize {
    let b0 = (u8::from(fin) << 7) | opcode as u8;
    if len < 126 {
        dst[8] = b0;
        dst[9] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        dst[6] = b0;
        dst[7] = 126;
        dst[8..].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        dst[0] = b0;
        dst[1] = 127;
        dst[2..].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A whole control frame (close, ping or pong) from the server, on the stack.
#[derive(Clone, Copy)]
pub struct ControlFrame {
    bytes: [u8; 2 + MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl ControlFrame {
    /// A ping or pong carrying `payload` (truncated to 125 bytes).
    pub fn new(opcode: OpCode, payload: &[u8]) -> Self {
        let n = payload.len().min(MAX_CONTROL_PAYLOAD);
        let mut bytes = [0; 2 + MAX_CONTROL_PAYLOAD];
        bytes[0] = 0x80 | opcode as u8;
        bytes[1] = n as u8;
        bytes[2..2 + n].copy_from_slice(&payload[..n]);
        Self { bytes, len: (2 + n) as u8 }
    }

    /// A close frame with `code` and `reason` (cut at a character boundary to fit 123 bytes).
    /// `code` None sends an empty close payload.
    pub fn close(code: Option<u16>, reason: &str) -> Self {
        let Some(code) = code else { return Self::new(OpCode::Close, &[]) };
        let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
        Self::new(OpCode::Close, &payload[..2 + cut])
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// XORs `buf` with the masking key, starting `offset` bytes into the key's cycle.
///
/// Works a machine word at a time; this is the one per-byte loop on the client-to-target
/// path, and the compiler vectorises the word loop.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let word = u32::from_ne_bytes(key);
    let wide = u64::from(word) | (u64::from(word) << 32);
    let (head, rest) = buf.split_at_mut(buf.len().min((8 - buf.as_ptr() as usize % 8) % 8));
    for (i, b) in head.iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
    let wide = wide.rotate_right(8 * (head.len() as u32 % 4));
    let mut chunks = rest.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    let tail_key = wide.to_ne_bytes();
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= tail_key[i];
    }
}

/// What the decoder found at the front of the buffer. Ranges index the buffer passed to
/// [`Decoder::decode`]; payload there is already unmasked.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Not enough bytes for the next step; read more and call again with the rest.
    NeedMore,
    /// A piece of a data message's payload. `last` marks the end of the message.
    Data {
        payload: Range<usize>,
        text: bool,
        last: bool,
    },
    Ping(Range<usize>),
    Pong(Range<usize>),
    /// A valid close frame: status code (None if the frame was empty) and UTF-8 reason.
    Close {
        code: Option<u16>,
        reason: Range<usize>,
    },
}

/// Decoding limits.
#[derive(Clone, Copy, Debug)]
pub struct DecoderConfig {
    /// Largest message (sum of its frames' payloads) accepted; larger closes with 1009.
    pub max_message: u64,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self { max_message: 64 << 20 }
    }
}

/// The receive side of a server's RFC 6455 connection: validates frames and messages and
/// streams payload.
#[derive(Debug)]
pub struct Decoder {
    config: DecoderConfig,
    /// The data frame whose payload is being streamed, if any.
    frame: Option<PayloadState>,
    /// The message in progress (fragmented or not): its type and length so far.
    message: Option<MessageState>,
    utf8: Utf8Validator,
}

#[derive(Debug, Clone, Copy)]
struct PayloadState {
    remaining: u64,
    mask: [u8; 4],
    offset: usize,
    fin: bool,
}

#[derive(Debug, Clone, Copy)]
struct MessageState {
    text: bool,
    len: u64,
}

impl Decoder {
    pub fn new(config: DecoderConfig) -> Self {
        Self { config, frame: None, message: None, utf8: Utf8Validator::default() }
    }

    /// Decodes the next event from `buf`, unmasking payload in place.
    ///
    /// Returns the event and how many bytes of `buf` it consumed. Call again on the
    /// unconsumed rest until [`Event::NeedMore`]; then keep the rest and append new bytes.
    pub fn decode(&mut self, buf: &mut [u8]) -> Result<(Event, usize), ProtocolError> {
        if let Some(frame) = self.frame {
            return self.payload(buf, 0, frame);
        }
        let Some((header, hlen)) = decode_header(buf)? else { return Ok((Event::NeedMore, 0)) };
        if header.rsv != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        let Some(mask) = header.mask else { return Err(ProtocolError::Unmasked) };
        match header.opcode {
            OpCode::Continuation | OpCode::Text | OpCode::Binary => {
                self.start_frame(&header)?;
                let frame = PayloadState { remaining: header.len, mask, offset: 0, fin: header.fin };
                self.payload(buf, hlen, frame)
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => {
                let len = header.len as usize;
                let Some(payload) = buf.get_mut(hlen..hlen + len) else {
                    return Ok((Event::NeedMore, 0));
                };
                apply_mask(payload, mask, 0);
                let range = hlen..hlen + len;
                let event = match header.opcode {
                    OpCode::Ping => Event::Ping(range),
                    OpCode::Pong => Event::Pong(range),
                    _ => parse_close(payload, hlen)?,
                };
                Ok((event, hlen + len))
            }
        }
    }

    /// Applies the message-level rules to a new data frame's header.
    fn start_frame(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        let message = match (header.opcode, self.message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(m)) => m,
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (op, None) => MessageState { text: op == OpCode::Text, len: 0 },
        };
        let len = message.len.saturating_add(header.len);
        if len > self.config.max_message {
            return Err(ProtocolError::MessageTooBig(self.config.max_message));
        }
        self.message = Some(MessageState { len, ..message });
        Ok(())
    }

    /// Streams as much of the current data frame's payload as `buf[start..]` holds.
    fn payload(
        &mut self,
        buf: &mut [u8],
        start: usize,
        mut frame: PayloadState,
    ) -> Result<(Event, usize), ProtocolError> {
        let available = (buf.len() - start) as u64;
        let n = frame.remaining.min(available) as usize;
        let chunk = &mut buf[start..start + n];
        apply_mask(chunk, frame.mask, frame.offset);
        frame.remaining -= n as u64;
        frame.offset = (frame.offset + n) % 4;
        let message = self.message.expect("a data frame belongs to a message");
        let last = frame.remaining == 0 && frame.fin;
        if message.text {
            self.utf8.feed(chunk, last)?;
        }
        if n == 0 && frame.remaining > 0 {
            self.frame = Some(frame);
            return Ok((Event::NeedMore, start));
        }
        self.frame = (frame.remaining > 0).then_some(frame);
        if last {
            self.message = None;
        }
        Ok((Event::Data { payload: start..start + n, text: message.text, last }, start + n))
    }
}

/// Validates a close frame's payload (already unmasked) found at `buf[at..]`.
fn parse_close(payload: &[u8], at: usize) -> Result<Event, ProtocolError> {
    match payload {
        [] => Ok(Event::Close { code: None, reason: at..at }),
        [_] => Err(ProtocolError::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(ProtocolError::InvalidCloseReason);
            }
            Ok(Event::Close { code: Some(code), reason: at + 2..at + payload.len() })
        }
    }
}

/// Incremental UTF-8 validation across chunk and frame boundaries, failing at the first
/// byte that cannot start or continue a valid sequence (as Autobahn's "fail fast" cases
/// expect).
#[derive(Debug, Default)]
pub struct Utf8Validator {
    /// An incomplete sequence carried over from the previous chunk.
    carry: [u8; 4],
    carried: usize,
}

impl Utf8Validator {
    /// Checks `chunk`; `last` says the message ends with it (no sequence may stay open).
    pub fn feed(&mut self, mut chunk: &[u8], last: bool) -> Result<(), ProtocolError> {
        if self.carried > 0 {
            // Complete the carried sequence with as few bytes as it needs.
            let need = utf8_width(self.carry[0]).max(self.carried + 1);
            let take = (need - self.carried).min(chunk.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&chunk[..take]);
            let have = self.carried + take;
            match std::str::from_utf8(&self.carry[..have]) {
                Ok(_) => {
                    self.carried = 0;
                    chunk = &chunk[take..];
                }
                Err(e) if e.error_len().is_none() => {
                    // Still incomplete: the chunk was too short to finish it.
                    self.carried = have;
                    return if last { Err(ProtocolError::InvalidUtf8) } else { Ok(()) };
                }
                Err(_) => return Err(ProtocolError::InvalidUtf8),
            }
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() && !last => {
                let tail = &chunk[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carried = tail.len();
                Ok(())
            }
            Err(_) => Err(ProtocolError::InvalidUtf8),
        }
    }
}

/// Length of the UTF-8 sequence a lead byte starts (1 for bytes that cannot lead, so the
/// validator then reports them).
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masks `payload` with `key` and prefixes a client frame header.
    fn client_frame(first: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    fn decode_all(dec: &mut Decoder, mut buf: Vec<u8>) -> Result<Vec<(Event, Vec<u8>)>, ProtocolError> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let (ev, used) = dec.decode(&mut buf[pos..])?;
            let bytes = match &ev {
                Event::NeedMore => return Ok(out),
                Event::Data { payload: r, .. } | Event::Ping(r) | Event::Pong(r) => buf[pos..][r.clone()].to_vec(),
                Event::Close { reason, .. } => buf[pos..][reason.clone()].to_vec(),
            };
            out.push((ev, bytes));
            pos += used;
        }
    }

    #[test]
    fn rfc6455_example_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let mut dec = Decoder::new(DecoderConfig::default());
        let events = decode_all(&mut dec, frame.to_vec()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, Event::Data { payload: 6..11, text: true, last: true });
        assert_eq!(events[0].1, b"Hello");
    }

    #[test]
    fn rfc6455_example_unmasked_is_refused() {
        // RFC 6455 §5.7: the unmasked "Hello" is what a server sends, never a client.
        let frame = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let mut dec = Decoder::new(DecoderConfig::default());
        assert_eq!(dec.decode(&mut frame.clone()), Err(ProtocolError::Unmasked));
        assert_eq!(ProtocolError::Unmasked.close_code(), 1002);
    }

    #[test]
    fn rfc6455_example_fragmented_text() {
        // RFC 6455 §5.7 "Hel" + "lo", masked here as a client must.
        let key = [1, 2, 3, 4];
        let mut bytes = client_frame(0x01, b"Hel", key);
        bytes.extend(client_frame(0x80, b"lo", key));
        let mut dec = Decoder::new(DecoderConfig::default());
        let events = decode_all(&mut dec, bytes).unwrap();
        assert_eq!(events.len(), 2);
        assert!(matches!(events[0].0, Event::Data { text: true, last: false, .. }));
        assert!(matches!(events[1].0, Event::Data { text: true, last: true, .. }));
        assert_eq!([&events[0].1[..], &events[1].1[..]].concat(), b"Hello");
    }

    #[test]
    fn header_lengths_7_16_64_bit() {
        let (h, n) = decode_header(&[0x82, 0x80 | 125, 1, 2, 3, 4]).unwrap().unwrap();
        assert_eq!((h.len, n), (125, 6));
        // RFC 6455 §5.7: 256 bytes binary, 16-bit length.
        let (h, n) = decode_header(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.len, n, h.mask), (256, 4, None));
        // RFC 6455 §5.7: 64 KiB binary, 64-bit length.
        let (h, n) = decode_header(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap().unwrap();
        assert_eq!((h.len, n), (65536, 10));
        // A length with the top bit set is invalid.
        assert_eq!(decode_header(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]), Err(ProtocolError::LengthOverflow));
        // Incomplete headers ask for more.
        for partial in [&[0x82][..], &[0x82, 0xFE, 0x01], &[0x82, 0xFF, 0, 0, 0], &[0x82, 0x85, 1, 2]] {
            assert_eq!(decode_header(partial), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn large_frames_decode_and_stream() {
        let key = [0xAA, 0x55, 0x0F, 0xF0];
        for len in [126usize, 65535, 65536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let bytes = client_frame(0x82, &payload, key);
            // Feed in 1000-byte reads, as a socket would deliver it.
            let mut dec = Decoder::new(DecoderConfig::default());
            let (mut got, mut pending) = (Vec::new(), Vec::new());
            for piece in bytes.chunks(1000) {
                pending.extend_from_slice(piece);
                let mut pos = 0;
                loop {
                    let (ev, used) = dec.decode(&mut pending[pos..]).unwrap();
                    if let Event::Data { payload, .. } = &ev {
                        got.extend_from_slice(&pending[pos..][payload.clone()]);
                    }
                    pos += used;
                    if ev == Event::NeedMore {
                        break;
                    }
                }
                pending.drain(..pos);
            }
            assert_eq!(got, payload, "len {len}");
        }
    }

    #[test]
    fn server_headers_7_16_64_bit() {
        let mut h = [0u8; MAX_SERVER_HEADER];
        let n = encode_header_before(&mut h, true, OpCode::Binary, 5);
        assert_eq!(&h[MAX_SERVER_HEADER - n..], &[0x82, 0x05]);
        let n = encode_header_before(&mut h, true, OpCode::Binary, 256);
        assert_eq!(&h[MAX_SERVER_HEADER - n..], &[0x82, 0x7E, 0x01, 0x00]);
        let n = encode_header_before(&mut h, true, OpCode::Text, 65536);
        assert_eq!(&h[MAX_SERVER_HEADER - n..], &[0x81, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn control_frames_encode() {
        assert_eq!(ControlFrame::new(OpCode::Pong, b"Hello").as_bytes(), &[0x8A, 0x05, b'H', b'e', b'l', b'l', b'o']);
        assert_eq!(ControlFrame::close(Some(1000), "Target closed").as_bytes()[..4], [0x88, 15, 0x03, 0xE8]);
        assert_eq!(ControlFrame::close(None, "ignored").as_bytes(), &[0x88, 0x00]);
        // A long multi-byte reason is cut at a character boundary within 125 bytes.
        let long = "é".repeat(100);
        let frame = ControlFrame::close(Some(1001), &long);
        assert_eq!(frame.as_bytes().len(), 2 + 2 + 122);
        assert!(std::str::from_utf8(&frame.as_bytes()[4..]).is_ok());
    }

    #[test]
    fn mask_at_any_offset_and_alignment() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let data: Vec<u8> = (0..100u8).collect();
        for start in 0..8 {
            for offset in 0..4 {
                let mut buf = data.clone();
                apply_mask(&mut buf[start..], key, offset);
                for (i, b) in buf[start..].iter().enumerate() {
                    assert_eq!(*b, data[start + i] ^ key[(i + offset) % 4]);
                }
            }
        }
    }

    #[test]
    fn control_frame_rules() {
        let key = [9, 8, 7, 6];
        let mut dec = Decoder::new(DecoderConfig::default());
        // Fragmented ping.
        assert_eq!(dec.decode(&mut client_frame(0x09, b"x", key)), Err(ProtocolError::FragmentedControl));
        // 126-byte ping.
        let mut dec = Decoder::new(DecoderConfig::default());
        assert_eq!(dec.decode(&mut client_frame(0x89, &[0; 126], key)), Err(ProtocolError::ControlTooLong(126)));
        // A ping between fragments is fine.
        let mut bytes = client_frame(0x02, b"ab", key);
        bytes.extend(client_frame(0x89, b"p", key));
        bytes.extend(client_frame(0x80, b"cd", key));
        let mut dec = Decoder::new(DecoderConfig::default());
        let events = decode_all(&mut dec, bytes).unwrap();
        assert!(matches!(events[1].0, Event::Ping(_)));
        assert_eq!(events[1].1, b"p");
        assert!(matches!(events[2].0, Event::Data { last: true, text: false, .. }));
        // A partial control frame waits for the rest.
        let mut dec = Decoder::new(DecoderConfig::default());
        assert_eq!(dec.decode(&mut client_frame(0x89, b"hello", key)[..8].to_vec()), Ok((Event::NeedMore, 0)));
    }

    #[test]
    fn reserved_bits_and_opcodes() {
        let key = [1, 1, 1, 1];
        for first in [0xC2u8, 0xA2, 0x92] {
            let mut dec = Decoder::new(DecoderConfig::default());
            assert_eq!(dec.decode(&mut client_frame(first, b"x", key)), Err(ProtocolError::ReservedBits));
        }
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            let mut dec = Decoder::new(DecoderConfig::default());
            assert_eq!(dec.decode(&mut client_frame(0x80 | op, b"", key)), Err(ProtocolError::ReservedOpCode(op)));
        }
    }

    #[test]
    fn continuation_rules() {
        let key = [3, 1, 4, 1];
        let mut dec = Decoder::new(DecoderConfig::default());
        assert_eq!(dec.decode(&mut client_frame(0x80, b"x", key)), Err(ProtocolError::UnexpectedContinuation));
        let mut bytes = client_frame(0x01, b"a", key);
        bytes.extend(client_frame(0x81, b"b", key));
        let mut dec = Decoder::new(DecoderConfig::default());
        assert_eq!(decode_all(&mut dec, bytes), Err(ProtocolError::ExpectedContinuation));
    }

    #[test]
    fn close_code_rules() {
        let key = [5, 6, 7, 8];
        let close = |payload: &[u8]| {
            let mut dec = Decoder::new(DecoderConfig::default());
            let mut f = client_frame(0x88, payload, key);
            dec.decode(&mut f).map(|(ev, _)| ev)
        };
        assert_eq!(close(&[]), Ok(Event::Close { code: None, reason: 6..6 }));
        assert_eq!(close(&[0x03]), Err(ProtocolError::CloseTooShort));
        for code in [1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
        {
            assert!(
                matches!(close(&code.to_be_bytes()), Ok(Event::Close { code: Some(c), .. }) if c == code),
                "{code}"
            );
        }
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert_eq!(close(&code.to_be_bytes()), Err(ProtocolError::InvalidCloseCode(code)), "{code}");
        }
        assert_eq!(close(&[0x03, 0xE8, 0xFF]), Err(ProtocolError::InvalidCloseReason));
        assert_eq!(ProtocolError::InvalidCloseReason.close_code(), 1007);
        let ok = close(b"\x03\xe8bye").unwrap();
        assert_eq!(ok, Event::Close { code: Some(1000), reason: 8..11 });
    }

    #[test]
    fn message_size_limit_closes_1009() {
        let key = [0; 4];
        let mut dec = Decoder::new(DecoderConfig { max_message: 10 });
        let mut bytes = client_frame(0x02, &[0; 6], key);
        bytes.extend(client_frame(0x80, &[0; 6], key));
        let err = decode_all(&mut dec, bytes).unwrap_err();
        assert_eq!(err, ProtocolError::MessageTooBig(10));
        assert_eq!(err.close_code(), 1009);
        // The limit is judged on the header: no payload needs to arrive.
        let mut dec = Decoder::new(DecoderConfig { max_message: 10 });
        let header = [0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];
        assert_eq!(dec.decode(&mut header.clone()), Err(ProtocolError::MessageTooBig(10)));
    }

    #[test]
    fn utf8_split_across_frames_and_chunks() {
        let text = "κόσμε 𝄞 ok".as_bytes();
        for split in 0..text.len() {
            let mut v = Utf8Validator::default();
            v.feed(&text[..split], false).unwrap();
            v.feed(&text[split..], true).unwrap();
        }
        // Byte by byte.
        let mut v = Utf8Validator::default();
        for (i, b) in text.iter().enumerate() {
            v.feed(&[*b], i == text.len() - 1).unwrap();
        }
        // An incomplete sequence at the end of the message fails.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xF0, 0x9D], true), Err(ProtocolError::InvalidUtf8));
        // Fail fast: an invalid continuation fails before the message ends.
        let mut v = Utf8Validator::default();
        v.feed(&[0xCE], false).unwrap();
        assert_eq!(v.feed(&[0x41], false), Err(ProtocolError::InvalidUtf8));
        // Surrogates and over-long forms are invalid.
        for bad in [&[0xED, 0xA0, 0x80][..], &[0xC0, 0x80], &[0xF4, 0x90, 0x80, 0x80]] {
            let mut v = Utf8Validator::default();
            assert_eq!(v.feed(bad, false), Err(ProtocolError::InvalidUtf8), "{bad:?}");
        }
    }

    #[test]
    fn invalid_utf8_text_frame_closes_1007() {
        let mut dec = Decoder::new(DecoderConfig::default());
        let err = dec.decode(&mut client_frame(0x81, &[0xFF], [1, 2, 3, 4])).unwrap_err();
        assert_eq!((err.clone(), err.close_code()), (ProtocolError::InvalidUtf8, 1007));
    }
}
