//! The RFC 6455 opening handshake: decide from a request head whether it is a WebSocket
//! upgrade we accept, which subprotocol (encoding) the session uses, and what to answer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

use crate::wire::encoding::Encoding;
use crate::wire::hixie::{self, Draft};
use crate::wire::http::{Request, Response};

/// The GUID of RFC 6455 §1.3, appended to the client's key to form the accept value.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Protocol versions accepted: 13 (RFC 6455) and the drafts 7 and 8 that only differ in
/// the version number on the wire.
const VERSIONS: [&str; 3] = ["13", "8", "7"];

/// What kind of request this is, decided before any WebSocket rule is checked.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `Upgrade: websocket`: a WebSocket handshake to validate.
    WebSocket,
    /// Anything else: plain HTTP.
    Http,
}

pub fn classify(req: &Request) -> RequestKind {
    if req.has_token("Upgrade", "websocket") { RequestKind::WebSocket } else { RequestKind::Http }
}

/// The framing a session uses on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Rfc6455,
    /// Hixie-75/76: `0x00 text 0xFF` frames, always base64.
    Hixie,
}

/// An accepted handshake: how the session talks, and the 101 response to send.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    pub encoding: Encoding,
    pub framing: Framing,
    /// The complete 101 response (for Hixie-76 including the challenge answer).
    pub response: Vec<u8>,
    /// Bytes of `body` the handshake used (Hixie-76's key3).
    pub consumed: usize,
}

/// How many bytes after the head a handshake needs before [`accept`] can decide (the
/// 8-byte key3 of Hixie-76).
pub fn body_needed(req: &Request) -> usize {
    if hixie::draft_of(req) == Some(Draft::Hixie76) { hixie::KEY3_LEN } else { 0 }
}

/// Validates a WebSocket upgrade request. `body` holds the bytes that followed the head;
/// `secure` says whether the connection is TLS (for Hixie's Location). An `Err` is the
/// response that refuses it.
pub fn accept(req: &Request, body: &[u8], secure: bool) -> Result<Accepted, Response> {
    if let Some(draft) = hixie::draft_of(req) {
        if req.method != "GET" {
            return Err(Response::error(405, "WebSocket upgrade requires GET").with_header("Allow", "GET"));
        }
        let response = hixie::response(req, draft, body, secure).map_err(|e| Response::error(400, e))?;
        let consumed = body_needed(req);
        return Ok(Accepted { encoding: Encoding::Base64, framing: Framing::Hixie, response, consumed });
    }
    if req.method != "GET" {
        return Err(Response::error(405, format!("WebSocket upgrade requires GET, not {}", req.method))
            .with_header("Allow", "GET"));
    }
    if req.version < 1 {
        return Err(Response::error(400, "WebSocket upgrade requires HTTP/1.1"));
    }
    if req.header("Host").is_none() {
        return Err(Response::error(400, "Missing Host header"));
    }
    if !req.has_token("Connection", "upgrade") {
        return Err(Response::error(400, "Missing \"Connection: Upgrade\" header"));
    }
    match req.header("Sec-WebSocket-Version").map(str::trim) {
        Some(v) if VERSIONS.contains(&v) && req.header_count("Sec-WebSocket-Version") == 1 => {}
        Some(v) => {
            return Err(Response::error(426, format!("Unsupported WebSocket version {v:?}; this server speaks 13"))
                .with_header("Sec-WebSocket-Version", "13"));
        }
        None => {
            return Err(Response::error(426, "Missing Sec-WebSocket-Version header; this server speaks 13")
                .with_header("Sec-WebSocket-Version", "13"));
        }
    }
    let key = match req.header("Sec-WebSocket-Key").map(str::trim) {
        None => return Err(Response::error(400, "Missing Sec-WebSocket-Key header")),
        Some(k) if req.header_count("Sec-WebSocket-Key") == 1 && BASE64.decode(k).is_ok_and(|raw| raw.len() == 16) => k,
        Some(_) => return Err(Response::error(400, "Invalid Sec-WebSocket-Key header: must be 16 bytes in base64")),
    };
    let (encoding, protocol) = negotiate(req)?;
    let mut response = Response { status: 101, headers: Vec::new(), body: String::new() }
        .with_header("Upgrade", "websocket")
        .with_header("Connection", "Upgrade")
        .with_header("Sec-WebSocket-Accept", accept_key(key));
    if let Some(protocol) = protocol {
        response = response.with_header("Sec-WebSocket-Protocol", protocol);
    }
    Ok(Accepted { encoding, framing: Framing::Rfc6455, response: response.to_bytes(), consumed: 0 })
}

/// Picks the session encoding from `Sec-WebSocket-Protocol`: `binary` preferred, then
/// `base64`; no header (or an empty one) means binary with no protocol echoed.
fn negotiate(req: &Request) -> Result<(Encoding, Option<&'static str>), Response> {
    let offered: Vec<&str> = req.header_tokens("Sec-WebSocket-Protocol").collect();
    if offered.is_empty() {
        return Ok((Encoding::Binary, None));
    }
    if offered.contains(&"binary") {
        return Ok((Encoding::Binary, Some("binary")));
    }
    if offered.contains(&"base64") {
        return Ok((Encoding::Base64, Some("base64")));
    }
    Err(Response::error(
        400,
        format!("Unsupported subprotocol(s) offered: {}; supported: binary, base64", offered.join(", ")),
    ))
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http::{HeadLimits, parse_head};

    fn request(extra: &str) -> Request {
        let raw = format!(
            "GET /websockify HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        );
        parse_head(raw.as_bytes(), HeadLimits::default()).unwrap().unwrap().0
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// A header of an accepted handshake's 101 response.
    fn header_101(a: &Accepted, name: &str) -> Option<String> {
        let text = String::from_utf8(a.response.clone()).unwrap();
        text.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
    }

    fn accept(req: &Request) -> Result<Accepted, Response> {
        super::accept(req, b"", false)
    }

    #[test]
    fn rfc6455_accept_key_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_versions_13_8_7() {
        for v in ["13", "8", "7"] {
            let ok = accept(&request(&format!("Sec-WebSocket-Version: {v}\r\n"))).unwrap();
            assert!(ok.response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
            assert_eq!(header_101(&ok, "Sec-WebSocket-Accept").as_deref(), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
            assert_eq!(ok.framing, Framing::Rfc6455);
        }
    }

    #[test]
    fn unsupported_or_missing_version_is_426() {
        for extra in ["Sec-WebSocket-Version: 12\r\n", ""] {
            let err = accept(&request(extra)).unwrap_err();
            assert_eq!(err.status, 426);
            assert_eq!(header(&err, "Sec-WebSocket-Version"), Some("13"));
        }
    }

    #[test]
    fn subprotocol_negotiation() {
        type Want = Result<(Encoding, Option<&'static str>), ()>;
        let cases: [(&str, Want); 7] = [
            ("", Ok((Encoding::Binary, None))),
            ("Sec-WebSocket-Protocol: binary\r\n", Ok((Encoding::Binary, Some("binary")))),
            ("Sec-WebSocket-Protocol: base64\r\n", Ok((Encoding::Base64, Some("base64")))),
            ("Sec-WebSocket-Protocol: base64, binary\r\n", Ok((Encoding::Binary, Some("binary")))),
            ("Sec-WebSocket-Protocol:  base64 ,foo\r\n", Ok((Encoding::Base64, Some("base64")))),
            (
                "Sec-WebSocket-Protocol: foo\r\nSec-WebSocket-Protocol: binary\r\n",
                Ok((Encoding::Binary, Some("binary"))),
            ),
            ("Sec-WebSocket-Protocol: foo, bar\r\n", Err(())),
        ];
        for (extra, want) in cases {
            let got = accept(&request(&format!("Sec-WebSocket-Version: 13\r\n{extra}")));
            match (got, want) {
                (Ok(a), Ok((enc, proto))) => {
                    assert_eq!(a.encoding, enc, "{extra}");
                    assert_eq!(header_101(&a, "Sec-WebSocket-Protocol").as_deref(), proto, "{extra}");
                }
                (Err(r), Err(())) => {
                    assert_eq!(r.status, 400);
                    assert!(r.body.contains("foo, bar") && r.body.contains("binary, base64"), "{}", r.body);
                }
                (got, want) => panic!("{extra}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn precise_400s() {
        let ok = "Sec-WebSocket-Version: 13\r\n";
        let raw = |s: &str| parse_head(s.as_bytes(), HeadLimits::default()).unwrap().unwrap().0;
        let no_host = raw(
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        assert_eq!(accept(&no_host).unwrap_err().body, "Missing Host header\n");
        let no_conn = raw(
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        assert!(accept(&no_conn).unwrap_err().body.contains("Connection: Upgrade"));
        let no_key = raw(
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        assert_eq!(accept(&no_key).unwrap_err().body, "Missing Sec-WebSocket-Key header\n");
        let short_key = raw(
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n\r\n",
        );
        assert_eq!(accept(&short_key).unwrap_err().status, 400);
        let post = raw(&format!(
            "POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{ok}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ));
        assert_eq!(accept(&post).unwrap_err().status, 405);
        let http10 = raw(&format!(
            "GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{ok}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ));
        assert_eq!(accept(&http10).unwrap_err().status, 400);
    }

    #[test]
    fn classify_plain_http() {
        let raw = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", HeadLimits::default()).unwrap().unwrap().0;
        assert_eq!(classify(&raw), RequestKind::Http);
        assert_eq!(classify(&request("")), RequestKind::WebSocket);
    }
}
