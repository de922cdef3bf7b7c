//! Log records (`host::logging`): a request head from arbitrary bytes
//! (`http::parse_head`), its target and headers put into log events through a real
//! `tracing` subscriber with the layers the binary uses (`text_layer` for stderr and
//! `--log-file`, `syslog_layer`) and their `RecordWriter`: as span fields, Display and
//! Debug fields and in messages, raw and percent-decoded (as the token redaction shows
//! noVNC's `path=` parameter); the input itself goes in too, as the text of a bad request.
//!
//! Checked: every event gives exactly one record per layer; each record is valid UTF-8 and
//! exactly one line (one `\n`, at its end) with no other control character (C0, DEL, C1)
//! and no Unicode line separator, so no value can forge a second line, start a second
//! syslog message, or drive a terminal; and `escape_record` on the raw bytes obeys the same
//! rule, leaves a record without control characters as it was, and appends.
#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt as _;
use websockify::host::logging::{Deliver, Format, RecordWriter, escape_record, syslog_layer, text_layer};
use websockify::wire::http::{HeadLimits, parse_head};

#[derive(Default)]
struct Collect(Mutex<Vec<Vec<u8>>>);

impl Deliver for Collect {
    fn deliver(&self, _: Level, record: &[u8]) {
        self.0.lock().unwrap().push(record.to_vec());
    }
}

fuzz_target!(|data: &[u8]| {
    check_escaper(data);

    let collect = Arc::new(Collect::default());
    let to: Vec<Arc<dyn Deliver>> = vec![collect.clone()];
    let subscriber = tracing_subscriber::registry()
        .with(text_layer(RecordWriter::new(Format::Text, to.clone())))
        .with(syslog_layer(RecordWriter::new(Format::Text, to)));
    let events = AtomicUsize::new(0);
    let event = || events.fetch_add(1, Ordering::Relaxed);
    tracing::subscriber::with_default(subscriber, || {
        let text = String::from_utf8_lossy(data);
        tracing::info!("bad request: {text}");
        event();
        let Ok(Some((req, _))) = parse_head(data, HeadLimits::default()) else { return };
        let decoded = percent_decode(req.target.as_bytes());
        let decoded = String::from_utf8_lossy(&decoded);
        let span = tracing::info_span!("conn", id = 1, peer = %decoded, target = ?req.target);
        let _entered = span.enter();
        tracing::debug!(method = %req.method, path = %decoded, "request");
        event();
        tracing::info!("{} {}: 405, plain HTTP is not served ({decoded})", req.method, req.target);
        event();
        for (name, value) in &req.headers {
            let value = String::from_utf8_lossy(value);
            let decoded = percent_decode(value.as_bytes());
            let decoded = String::from_utf8_lossy(&decoded);
            tracing::warn!(header = %name, value = %value, decoded = %decoded, "{name}: {value} ({decoded})");
            event();
            tracing::error!(?value, "{decoded:?}");
            event();
        }
    });

    let records = collect.0.lock().unwrap();
    assert_eq!(records.len(), 2 * events.load(Ordering::Relaxed), "one record per event and layer");
    for record in records.iter() {
        check_line(record);
    }
});

/// Exactly one line: valid UTF-8, one `\n` at the end, no other control character.
fn check_line(record: &[u8]) {
    let text = std::str::from_utf8(record).unwrap_or_else(|e| panic!("not UTF-8 ({e}): {record:?}"));
    let body = text.strip_suffix('\n').unwrap_or_else(|| panic!("no final newline: {text:?}"));
    if let Some(c) = body.chars().find(|&c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        panic!("control character {c:?} in the record {text:?}");
    }
}

fn check_escaper(data: &[u8]) {
    let mut out = b"kept".to_vec();
    escape_record(data, &mut out);
    assert!(out.starts_with(b"kept"));
    let escaped = &out[4..];
    check_line(escaped);
    // At most `\u{2028}` (9 bytes) for a 3-byte character, `\xNN` for a byte.
    assert!(escaped.len() <= 4 * data.len() + 1);
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if let Ok(text) = std::str::from_utf8(body)
        && !text.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        assert_eq!(&escaped[..escaped.len() - 1], body, "a clean record is left as it was");
    }
}

/// `%XX` decoded, as the log's token redaction decodes query values (a bad escape is kept).
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (s.get(i + 1).copied().and_then(hex), s.get(i + 2).copied().and_then(hex))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}
