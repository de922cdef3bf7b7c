//! `ws::Utf8Validator` fed a message in fuzzer-chosen chunks must reach the verdict of
//! `std::str::from_utf8` on the whole message, and fail fast: exactly at the first chunk
//! after which the bytes seen so far can no longer be the start of valid UTF-8.
//! Several messages may go through one validator, as in a connection.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use websockify::wire::ws::Utf8Validator;

fuzz_target!(|data: &[u8]| {
    let input = common::Input::parse(data);
    let mut validator = Utf8Validator::default();
    let mut cursor = 0;
    // 0xFF never occurs in UTF-8, so it can separate messages.
    for message in input.messages(0xFF) {
        let chunks = input.chunks(message, &mut cursor);
        let whole_ok = std::str::from_utf8(message).is_ok();
        // The oracle, kept linear: `good` bytes of the message are known to be whole
        // characters; only the bytes after them are checked again.
        let (mut fed, mut good) = (0, 0);
        let mut ok = true;
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i == chunks.len() - 1;
            fed += chunk.len();
            let result = validator.feed(chunk, last);
            let expect_err = match std::str::from_utf8(&message[good..fed]) {
                Ok(_) => {
                    good = fed;
                    false
                }
                Err(e) => {
                    good += e.valid_up_to();
                    e.error_len().is_some() || last
                }
            };
            assert_eq!(
                result.is_err(),
                expect_err,
                "chunk {i} of {} (bytes ..{fed}, last {last}) of {message:x?}: got {result:?}",
                chunks.len()
            );
            if result.is_err() {
                ok = false;
                break;
            }
        }
        assert_eq!(ok, whole_ok, "verdict on {message:x?}");
        if !ok {
            // The connection is failed; the validator is not used again.
            return;
        }
    }
});
