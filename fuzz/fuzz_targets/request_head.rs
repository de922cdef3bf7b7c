//! `http::parse_head` on arbitrary bytes, then, for a parsed head, `handshake::classify`
//! and `handshake::accept` as the connection does (the bytes after the head as its body,
//! over plain and TLS connections), and every response rendered.
//!
//! Checked: a parsed head's length is within the input; parsing exactly the head again
//! gives the same request, and shorter prefixes of it are "need more" (the incremental
//! reader relies on both); the handshake's answer depends only on the body bytes it
//! needs (`body_needed`), not on a first frame sent right behind them; an accepted upgrade
//! is a 101 that parses back with exactly its headers: for RFC 6455 a well-formed accept
//! key and the protocol matching the encoding, for Hixie the Location rebuilt from Host and
//! target as one value and the 16-byte Hixie-76 answer; a refusal is 400, 405 or 426; every
//! `Response` (refusals, and the error answering an unparsable head) renders to bytes that
//! parse back as one HTTP response with exactly its status, headers and body (no header
//! can smuggle in a line break).
#![no_main]

use libfuzzer_sys::fuzz_target;
use websockify::wire::encoding::Encoding;
use websockify::wire::handshake::{Accepted, Framing, RequestKind, accept, body_needed, classify};
use websockify::wire::hixie::{self, Draft};
use websockify::wire::http::{HeadLimits, Request, Response, parse_head};

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits::default();
    let (req, len) = match parse_head(data, limits) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return,
        Err(e) => {
            if let Some(status) = e.status() {
                check_response(&Response::error(status, e.to_string()));
            }
            return;
        }
    };
    assert!(len <= data.len() && len <= limits.max_bytes);

    let (again, again_len) = parse_head(&data[..len], limits).expect("the head alone parses").expect("is complete");
    assert_eq!(again_len, len);
    assert_same(&req, &again);
    for cut in [len - 1, len / 2, len.saturating_sub(2), len.saturating_sub(4)] {
        if cut < len {
            assert!(
                matches!(parse_head(&data[..cut], limits), Ok(None)),
                "prefix of {cut} of a {len}-byte head is not partial: {:?}",
                parse_head(&data[..cut], limits).map(|r| r.map(|(_, n)| n))
            );
        }
    }

    // The look-ups the handshake uses, on every header name present.
    for (name, _) in &req.headers {
        let count = req.header_count(name);
        assert!(count >= 1);
        let _ = req.header(name);
        for token in req.header_tokens(name) {
            assert!(!token.is_empty() && token.trim() == token);
            assert!(req.has_token(name, token));
        }
    }

    let kind = classify(&req);
    assert_eq!(kind == RequestKind::WebSocket, req.has_token("upgrade", "WebSocket"));
    // As the connection does: `body` is every byte that followed the head.
    let body = &data[len..];
    let needed = body_needed(&req);
    assert!(needed == 0 || needed == 8, "body_needed {needed}");
    for secure in [false, true] {
        let result = accept(&req, body, secure);
        if body.len() >= needed {
            // The verdict depends only on the bytes the handshake uses: a client's first
            // frame may already follow them in the same read.
            assert_eq!(
                result,
                accept(&req, &body[..needed], secure),
                "handshake answer changes with the {} bytes after the {needed} it needs",
                body.len() - needed
            );
        }
        match result {
            Ok(accepted) => check_accepted(&req, &accepted, needed, body.len(), secure),
            Err(refusal) => {
                assert!(matches!(refusal.status, 400 | 405 | 426), "refused with {}", refusal.status);
                check_response(&refusal);
            }
        }
    }
});

/// An accepted handshake's 101 parses back as one response whose headers carry exactly
/// what the handshake decided, with nothing after its head but Hixie-76's 16-byte answer.
fn check_accepted(req: &Request, a: &Accepted, needed: usize, body_len: usize, secure: bool) {
    assert_eq!(a.consumed, needed);
    assert!(a.consumed <= body_len);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(&a.response) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("101 does not parse ({other:?}): {:?}", String::from_utf8_lossy(&a.response)),
    };
    assert_eq!(parsed.code, Some(101));
    let got: Vec<(&str, &[u8])> = parsed.headers.iter().map(|h| (h.name, h.value)).collect();
    let get = |name: &str| got.iter().find(|(n, _)| *n == name).map(|(_, v)| std::str::from_utf8(v).expect("UTF-8"));
    let after_head = &a.response[head_len..];
    match (a.framing, hixie::draft_of(req)) {
        (Framing::Rfc6455, None) => {
            assert!(after_head.is_empty());
            let key = get("Sec-WebSocket-Accept").expect("accept key");
            assert_eq!(key.len(), 28, "{key}");
            assert!(key.ends_with('=') && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
            let protocol = get("Sec-WebSocket-Protocol");
            match (a.encoding, protocol) {
                (Encoding::Binary, None | Some("binary")) | (Encoding::Base64, Some("base64")) => {}
                other => panic!("encoding and protocol disagree: {other:?}"),
            }
            assert_eq!(got.len(), 3 + usize::from(protocol.is_some()), "{got:?}");
        }
        (Framing::Hixie, Some(draft)) => {
            assert_eq!(a.encoding, Encoding::Base64);
            let prefix = if draft == Draft::Hixie76 { "Sec-WebSocket-" } else { "WebSocket-" };
            assert_eq!(after_head.len(), if draft == Draft::Hixie76 { 16 } else { 0 });
            // Host and target travel into Location: they must come back as one value.
            let scheme = if secure { "wss" } else { "ws" };
            let location = format!("{scheme}://{}{}", req.header("Host").expect("Host"), req.target);
            assert_eq!(get(&format!("{prefix}Location")), Some(location.as_str()), "{got:?}");
            let origin = get(&format!("{prefix}Origin")).expect("Origin");
            assert_eq!(origin, req.header("Origin").unwrap_or("null").trim_matches([' ', '\t']));
            let protocol = get(&format!("{prefix}Protocol"));
            assert!(matches!(protocol, None | Some("base64")));
            assert_eq!(got.len(), 4 + usize::from(protocol.is_some()), "{got:?}");
        }
        other => panic!("framing and draft disagree: {other:?}"),
    }
}

fn assert_same(a: &Request, b: &Request) {
    assert_eq!((&a.method, &a.target, a.version), (&b.method, &b.target, b.version));
    assert_eq!(a.headers, b.headers);
}

/// `r.to_bytes()` parses back as exactly `r`: status, its headers in order (plus the three
/// an error response adds), and the body.
fn check_response(r: &Response) {
    let bytes = r.to_bytes();
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(&bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("response does not parse ({other:?}): {:?}", String::from_utf8_lossy(&bytes)),
    };
    assert_eq!(parsed.code, Some(r.status));
    assert_eq!(parsed.version, Some(1));
    let mut want: Vec<(String, String)> = r.headers.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
    if r.status != 101 {
        want.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
        want.push(("Content-Length".into(), r.body.len().to_string()));
        want.push(("Connection".into(), "close".into()));
    }
    let got: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_string(), String::from_utf8(h.value.to_vec()).expect("UTF-8 header value")))
        .collect();
    assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&bytes));
    let body = if r.status == 101 { "" } else { r.body.as_str() };
    assert_eq!(&bytes[head_len..], body.as_bytes());
}
