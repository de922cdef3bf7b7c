//! `ws::Decoder` driven exactly as the relay drives it: bytes arrive in fuzzer-chosen
//! reads and are appended to a buffer; `decode(&mut buf[pos..])` is called until
//! `NeedMore` or an error, then the consumed bytes are drained.
//!
//! Checked on every call: consumed <= the slice's length; returned ranges lie within the
//! consumed bytes (a data payload ends exactly where consumption does); every event but
//! `NeedMore` consumes at least one byte (no loop can spin); `NeedMore` asked again without
//! new bytes is `NeedMore` with nothing consumed; bytes after the consumed ones are left
//! untouched (the relay keeps them).
//!
//! Checked on the whole stream: the events (whole messages, pings, pongs, close), the
//! payload of an unfinished message, and the error if any, equal those of a simple
//! reference decoder that sees the whole input at once and unmasks byte by byte; and the
//! payload delivered never exceeds the input.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use websockify::wire::ws::{Decoder, DecoderConfig, Event, ProtocolError};

const MAX_MESSAGE: u64 = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Message { text: bool, data: Vec<u8> },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, Vec<u8>),
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Input ran out; the payload received so far of the message in progress.
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

fn streaming(input: &common::Input) -> (Vec<Ev>, End) {
    let mut decoder = Decoder::new(DecoderConfig { max_message: MAX_MESSAGE });
    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let mut message: Option<(bool, Vec<u8>)> = None;
    let mut delivered = 0usize;
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
                Err(e) => return (events, End::Error(e)),
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
                    assert_eq!(payload.end, used, "data payload does not end where consumption does");
                    let bytes = within(&payload);
                    delivered += bytes.len();
                    let (msg_text, msg) = message.get_or_insert_with(|| (text, Vec::new()));
                    assert_eq!(*msg_text, text, "text flag changed within a message");
                    msg.extend_from_slice(&bytes);
                    if last {
                        let (text, data) = message.take().expect("message in progress");
                        events.push(Ev::Message { text, data });
                    }
                }
                Event::Ping(r) | Event::Pong(r) if r.end != used => {
                    panic!("control payload {r:?} is not the end of {used}")
                }
                Event::Ping(r) => events.push(Ev::Ping(within(&r))),
                Event::Pong(r) => events.push(Ev::Pong(within(&r))),
                Event::Close { code, reason } => {
                    assert_eq!(reason.end, used, "close reason is not the end of the frame");
                    events.push(Ev::Close(code, within(&reason)));
                    // The relay stops reading at the client's close.
                    return (events, End::Closed);
                }
            }
            pos += used;
        }
        buf.drain(..pos);
        base += pos;
    }
    assert!(delivered <= input.stream.len());
    (events, End::Incomplete(message.map(|(_, m)| m).unwrap_or_default()))
}

/// RFC 6455 §5 for a server, written for clarity over the whole input: the same checks in
/// the same order as the decoder (an error is reported as soon as the bytes that show it
/// have arrived), payload unmasked one byte at a time.
fn reference(input: &[u8]) -> (Vec<Ev>, End) {
    let mut events = Vec::new();
    // The data message in progress: text?, payload so far.
    let mut message: Option<(bool, Vec<u8>)> = None;
    let mut rest = input;
    macro_rules! need {
        ($n:expr) => {
            if rest.len() < $n {
                return (events, End::Incomplete(message.map(|(_, m)| m).unwrap_or_default()));
            }
        };
    }
    macro_rules! fail {
        ($e:expr) => {
            return (events, End::Error($e))
        };
    }
    loop {
        need!(2);
        let fin = rest[0] & 0x80 != 0;
        let rsv = rest[0] & 0x70;
        let opcode = rest[0] & 0x0F;
        if !matches!(opcode, 0x0 | 0x1 | 0x2 | 0x8 | 0x9 | 0xA) {
            fail!(ProtocolError::ReservedOpCode(opcode));
        }
        let masked = rest[1] & 0x80 != 0;
        let (len, mut header) = match rest[1] & 0x7F {
            126 => {
                need!(4);
                (u64::from(rest[2]) << 8 | u64::from(rest[3]), 4)
            }
            127 => {
                need!(10);
                let len = rest[2..10].iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
                if len >= 1 << 63 {
                    fail!(ProtocolError::LengthOverflow);
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let control = opcode >= 0x8;
        if control && !fin {
            fail!(ProtocolError::FragmentedControl);
        }
        if control && len > 125 {
            fail!(ProtocolError::ControlTooLong(len));
        }
        let mut key = [0u8; 4];
        if masked {
            need!(header + 4);
            key.copy_from_slice(&rest[header..header + 4]);
            header += 4;
        }
        if rsv != 0 {
            fail!(ProtocolError::ReservedBits);
        }
        if !masked {
            fail!(ProtocolError::Unmasked);
        }
        let unmask = |bytes: &[u8]| -> Vec<u8> { bytes.iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect() };
        if control {
            let len = len as usize;
            need!(header + len);
            let payload = unmask(&rest[header..header + len]);
            rest = &rest[header + len..];
            match opcode {
                0x9 => events.push(Ev::Ping(payload)),
                0xA => events.push(Ev::Pong(payload)),
                _ => {
                    let event = match payload.as_slice() {
                        [] => Ev::Close(None, Vec::new()),
                        [_] => fail!(ProtocolError::CloseTooShort),
                        [hi, lo, reason @ ..] => {
                            let code = u16::from(*hi) << 8 | u16::from(*lo);
                            let valid = (1000..=1003).contains(&code)
                                || (1007..=1014).contains(&code)
                                || (3000..=4999).contains(&code);
                            if !valid {
                                fail!(ProtocolError::InvalidCloseCode(code));
                            }
                            if std::str::from_utf8(reason).is_err() {
                                fail!(ProtocolError::InvalidCloseReason);
                            }
                            Ev::Close(Some(code), reason.to_vec())
                        }
                    };
                    events.push(event);
                    return (events, End::Closed);
                }
            }
            continue;
        }
        let (text, mut data) = match (opcode, message.take()) {
            (0x0, None) => fail!(ProtocolError::UnexpectedContinuation),
            (0x0, Some(m)) => m,
            (_, Some(_)) => fail!(ProtocolError::ExpectedContinuation),
            (op, None) => (op == 0x1, Vec::new()),
        };
        if (data.len() as u64).saturating_add(len) > MAX_MESSAGE {
            fail!(ProtocolError::MessageTooBig(MAX_MESSAGE));
        }
        let available = (rest.len() - header).min(len as usize);
        data.extend(unmask(&rest[header..header + available]));
        let complete = available as u64 == len;
        if text {
            // Fail fast: invalid as soon as the bytes so far cannot begin valid UTF-8.
            if let Err(e) = std::str::from_utf8(&data) {
                if e.error_len().is_some() || (complete && fin) {
                    fail!(ProtocolError::InvalidUtf8);
                }
            }
        }
        message = Some((text, data));
        need!(header + len as usize);
        rest = &rest[header + len as usize..];
        if fin {
            let (text, data) = message.take().expect("just set");
            events.push(Ev::Message { text, data });
        }
    }
}
