//! `TokenRedis`: the value parser (JSON `{"host": "h:p"}` or plain `h:p` /
//! `unix_socket:/path`) and the `--token-source` parser.
//!
//! Input: byte 0 chooses the parser (even: a value, odd: a source), the rest is its text.
//!
//! Checked for values: a value that is not UTF-8 is refused; a plain value (not starting
//! with `{` after trimming) gives exactly what `parse_target` gives on it; a JSON value
//! gives exactly what `parse_target` gives on its `"host"` string, and is refused when it is
//! not a JSON object with a string `host`. For sources: parsing never panics, and a source
//! accepted describes itself as a `redis://` URL (never with a password: see the module's
//! tests) that does not contain the fourth field given as `:pw-<marker>:` (unless the source
//! holds the marker elsewhere).
#![no_main]

use libfuzzer_sys::fuzz_target;
use websockify::admission::token::parsers::redis_value;
use websockify::admission::token::{TokenRedis, TokenResolver, parse_target};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        check_value(rest);
    } else {
        check_source(rest);
    }
});

fn check_value(raw: &[u8]) {
    let result = redis_value(raw);
    let Ok(text) = std::str::from_utf8(raw) else {
        assert!(result.is_err(), "non-UTF-8 value accepted: {result:?}");
        return;
    };
    let text = text.trim();
    if !text.starts_with('{') {
        assert_eq!(result.ok(), parse_target(text).ok(), "plain value {text:?}");
        return;
    }
    let host = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|json| json.get("host").and_then(serde_json::Value::as_str).map(str::to_owned));
    match host {
        Some(host) => assert_eq!(result.ok(), parse_target(&host).ok(), "JSON value {text:?}"),
        None => assert!(result.is_err(), "JSON value without a string host accepted: {text:?} -> {result:?}"),
    }
}

fn check_source(raw: &[u8]) {
    let Ok(text) = std::str::from_utf8(raw) else { return };
    if let Ok(redis) = TokenRedis::new(text) {
        let shown = redis.describe();
        assert!(shown.contains("redis://"), "{shown}");
    }
    // The same source with a recognisable password in the fourth field: it must never be
    // shown. Only for sources that leave the password field alone (three plain fields) and
    // do not hold the marker themselves (a host named `a5ecret` is rightly shown).
    let fields: Vec<&str> = text.splitn(4, ':').collect();
    if fields.len() == 3 && !text.contains("5ecret") && fields.iter().all(|f| !f.contains(['"', '[', ']'])) {
        let with_pw = format!("{text}:pw-5ecret-marker");
        if let Ok(redis) = TokenRedis::new(&with_pw) {
            let shown = redis.describe();
            assert!(!shown.contains("5ecret"), "password shown: {shown}");
        }
    }
}
