//! `hixie::HixieDecoder` (Hixie-75/76 framing: `0x00 text 0xFF`, other sentinel and
//! length-prefixed frames skipped, `0xFF 0x00` close) driven as the relay drives it, with the same per-call
//! checks as `frame_decoder`, and its events compared with a reference that parses the
//! whole input at once. A small message limit (100 bytes) makes the limit reachable.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use websockify::wire::hixie::HixieDecoder;
use websockify::wire::ws::{Event, ProtocolError};

const MAX_MESSAGE: u64 = 100;

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Input ran out; the payload received so far of the text frame in progress.
    Incomplete(Vec<u8>),
    Closed,
    Error(ProtocolError),
}
/// Bytes after the consumed ones checked for untouched after each call.
const WINDOW: usize = 256;

fuzz_target!(|data: &[u8]| {
    let input = common::Input::parse(data);
    let want = reference(input.stream);
    let got = streaming(&input);
    assert_eq!(got, want, "stream {:x?}", input.stream);
});

fn streaming(input: &common::Input) -> (Vec<Vec<u8>>, End) {
    let mut decoder = HixieDecoder::new(MAX_MESSAGE);
    let mut buf: Vec<u8> = Vec::new();
    let mut messages = Vec::new();
    let mut message: Vec<u8> = Vec::new();
    let mut cursor = 0;
    // Offset in the stream of buf[0].
    let mut base = 0;
    for chunk in input.chunks(input.stream, &mut cursor) {
        buf.extend_from_slice(chunk);
        let mut pos = 0;
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls <= buf.len() + 2, "decode loops: {calls} calls on {} bytes", buf.len());
            let slice = &mut buf[pos..];
            let len = slice.len();
            let (event, used) = match decoder.decode(slice) {
                Ok(ok) => ok,
                Err(e) => return (messages, End::Error(e)),
            };
            assert!(used <= len, "consumed {used} of {len}");
            // The bytes after the consumed ones are still the input's own. Checked over a
            // window (a write further on would show as wrong payload against the reference)
            // so that the check costs no more than the decoding.
            let at = base + pos + used;
            let n = (len - used).min(WINDOW);
            assert_eq!(&slice[used..used + n], &input.stream[at..at + n], "bytes after the consumed ones changed");
            let consumed = &slice[..used];
            let within = |r: &std::ops::Range<usize>| {
                assert!(r.start <= r.end && r.end <= used, "range {r:?} outside the {used} consumed bytes");
                consumed[r.clone()].to_vec()
            };
            match event {
                Event::NeedMore => {
                    pos += used;
                    let again = decoder.decode(&mut buf[pos..]);
                    assert_eq!(again, Ok((Event::NeedMore, 0)), "NeedMore asked again without new bytes");
                    break;
                }
                Event::Data { payload, text, last } => {
                    assert!(used > 0, "a data event consumed nothing");
                    assert!(text, "Hixie data is text");
                    message.extend_from_slice(&within(&payload));
                    if last {
                        messages.push(std::mem::take(&mut message));
                    }
                }
                Event::Close { code, reason } => {
                    assert_eq!(code, None);
                    assert!(within(&reason).is_empty());
                    return (messages, End::Closed);
                }
                other => panic!("Hixie framing has no {other:?}"),
            }
            pos += used;
        }
        buf.drain(..pos);
        base += pos;
    }
    (messages, End::Incomplete(message))
}

/// Hixie framing over the whole input: frame type 0x00 starts a text frame that runs to
/// 0xFF; other types with the high bit clear run to 0xFF too and are discarded; with the
/// high bit set, a base-128 length (high bit: more digits) follows and that many bytes are
/// skipped, except that type 0xFF with length 0 is the close frame.
fn reference(input: &[u8]) -> (Vec<Vec<u8>>, End) {
    let mut messages = Vec::new();
    let mut i = 0;
    while i < input.len() {
        let frame_type = input[i];
        i += 1;
        if frame_type & 0x80 == 0 {
            let rest = &input[i..];
            let end = rest.iter().position(|&b| b == 0xFF);
            if frame_type != 0x00 {
                // Another sentinel-terminated type: read to its 0xFF and discarded.
                let Some(end) = end else { return (messages, End::Incomplete(Vec::new())) };
                i += end + 1;
                continue;
            }
            let text = &rest[..end.unwrap_or(rest.len())];
            if text.len() as u64 > MAX_MESSAGE {
                return (messages, End::Error(ProtocolError::MessageTooBig(MAX_MESSAGE)));
            }
            let Some(end) = end else { return (messages, End::Incomplete(text.to_vec())) };
            messages.push(text.to_vec());
            i += end + 1;
        } else {
            let mut len: u64 = 0;
            loop {
                let Some(&b) = input.get(i) else { return (messages, End::Incomplete(Vec::new())) };
                i += 1;
                len = match len.checked_mul(128).and_then(|l| l.checked_add(u64::from(b & 0x7F))) {
                    Some(len) => len,
                    None => return (messages, End::Error(ProtocolError::LengthOverflow)),
                };
                if b & 0x80 == 0 {
                    break;
                }
            }
            if frame_type == 0xFF && len == 0 {
                return (messages, End::Closed);
            }
            if (input.len() - i) as u64 <= len {
                // The skipped frame runs to (or past) the end of the input.
                if (input.len() - i) as u64 == len {
                    i = input.len();
                    continue;
                }
                return (messages, End::Incomplete(Vec::new()));
            }
            i += len as usize;
        }
    }
    (messages, End::Incomplete(Vec::new()))
}
