//! `encoding::Base64Decoder` fed a base64 message in fuzzer-chosen chunks (`last` on the
//! final one) must agree with the `base64` crate's STANDARD engine on the whole message:
//! the same bytes when both succeed; whenever the whole message decodes, the streaming
//! decoder must succeed too; and it must not accept what the whole-message decode refuses.
//! Several messages may go through one decoder, as in a connection.
#![no_main]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use websockify::wire::encoding::Base64Decoder;

fuzz_target!(|data: &[u8]| {
    let input = common::Input::parse(data);
    let mut decoder = Base64Decoder::default();
    let mut cursor = 0;
    // '\n' is not in the base64 alphabet, so it can separate messages.
    for message in input.messages(b'\n') {
        let chunks = input.chunks(message, &mut cursor);
        let whole = STANDARD.decode(message);
        let mut out = Vec::new();
        let mut result = Ok(());
        for (i, chunk) in chunks.iter().enumerate() {
            result = decoder.feed(chunk, i == chunks.len() - 1, &mut out);
            if result.is_err() {
                break;
            }
        }
        let text = String::from_utf8_lossy(message);
        match (&whole, &result) {
            (Ok(want), Ok(())) => assert_eq!(&out, want, "{text:?} in {} chunks", chunks.len()),
            (Ok(_), Err(e)) => panic!("valid base64 {text:?} in {} chunks refused: {e}", chunks.len()),
            (Err(e), Ok(())) => panic!("invalid base64 {text:?} ({e}) accepted in {} chunks", chunks.len()),
            (Err(_), Err(_)) => {}
        }
        assert!(out.len() <= message.len() / 4 * 3);
        if result.is_err() {
            // The connection is failed; the decoder is not used again.
            return;
        }
    }
});
