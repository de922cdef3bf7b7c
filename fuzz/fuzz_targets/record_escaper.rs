//! The session recorder's escaper (`record::escape`): bytes as the inside of a
//! single-quoted JavaScript string in noVNC's player format.
//!
//! Checked: the output is printable ASCII only (no line break can end the string early),
//! every `'` and `\` in it starts an escape (`\xNN`, lower-case hex), so the string cannot
//! be closed or its escapes shifted by the data; it is at most 4 bytes per input byte;
//! decoding it gives back exactly the input; and escaping appends (what was in the buffer
//! before is kept).
#![no_main]

use libfuzzer_sys::fuzz_target;
use websockify::session::record::escape;

fuzz_target!(|data: &[u8]| {
    let mut out = b"'{12{".to_vec();
    escape(data, &mut out);
    assert!(out.starts_with(b"'{12{"));
    let escaped = &out[5..];
    assert!(escaped.len() <= 4 * data.len());
    assert!(escaped.iter().all(|b| (0x20..0x7f).contains(b)), "{:?}", String::from_utf8_lossy(escaped));

    let mut decoded = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < escaped.len() {
        match escaped[i] {
            b'\'' => panic!("unescaped quote at {i}"),
            b'\\' => {
                assert!(i + 3 < escaped.len() && escaped[i + 1] == b'x', "bad escape at {i}");
                let hex = std::str::from_utf8(&escaped[i + 2..i + 4]).unwrap();
                assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{hex}");
                decoded.push(u8::from_str_radix(hex, 16).unwrap());
                i += 4;
            }
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    assert_eq!(decoded, data);
});
