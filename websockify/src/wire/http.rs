//! The HTTP request head: read it under a size and time bound, parse it, and write the
//! small responses the proxy sends itself (101 and errors).
//!
//! Bytes that arrive after the head (a client may send its first frame together with the
//! handshake) are kept and handed to the next stage, never lost.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Limits on what a client may send before its request head is complete.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Largest request head (request line and headers), in bytes.
    pub max_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Time allowed from accept to the end of the head.
    pub timeout: Duration,
}

impl Default for HeadLimits {
    fn default() -> Self {
        Self { max_bytes: 16 * 1024, max_headers: 64, timeout: Duration::from_secs(10) }
    }
}

/// A parsed request head. Header names keep their case; look-ups ignore it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// The value of the one header named `name`, as text. `None` if absent or not UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// How many times the header `name` appears.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }

    /// Every value of a list-valued header (`Connection`, `Sec-WebSocket-Protocol`): all its
    /// occurrences split on commas, trimmed, empty items dropped.
    pub fn header_tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether the list-valued header `name` contains `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }
}

/// Why no request head could be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("connection closed before the request head was complete")]
    Closed,
    #[error("request head not complete within {0:?}")]
    Timeout(Duration),
    #[error("request head larger than {0} bytes")]
    TooLarge(usize),
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    #[error("reading the request head: {0}")]
    Io(#[from] std::io::Error),
}

impl HeadError {
    /// The HTTP status to answer with, if the client is still there to read one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Closed | Self::Io(_) => None,
            Self::Timeout(_) => Some(408),
            Self::TooLarge(_) | Self::TooManyHeaders(_) => Some(431),
            Self::Malformed(_) => Some(400),
        }
    }
}

/// Reads and parses one request head from `io`, starting with whatever `buf` already holds.
/// On success `buf` holds only the bytes that followed the head.
pub async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    limits: HeadLimits,
) -> Result<Request, HeadError> {
    match tokio::time::timeout(limits.timeout, read_head_inner(io, buf, limits)).await {
        Ok(result) => result,
        Err(_) => Err(HeadError::Timeout(limits.timeout)),
    }
}

async fn read_head_inner<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    limits: HeadLimits,
) -> Result<Request, HeadError> {
    loop {
        if let Some((request, len)) = parse_head(buf, limits)? {
            let _ = buf.split_to(len);
            return Ok(request);
        }
        if buf.len() >= limits.max_bytes {
            return Err(HeadError::TooLarge(limits.max_bytes));
        }
        buf.reserve(limits.max_bytes.min(4096));
        // Read no further than the limit allows, so one read cannot overshoot it much.
        if io.read_buf(buf).await? == 0 {
            return Err(HeadError::Closed);
        }
    }
}

/// Parses a complete head from the front of `buf`: `Ok(None)` if more bytes are needed.
pub fn parse_head(buf: &[u8], limits: HeadLimits) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders(limits.max_headers)),
        Err(e) => return Err(HeadError::Malformed(parse_error_text(e))),
    };
    if len > limits.max_bytes {
        return Err(HeadError::TooLarge(limits.max_bytes));
    }
    // Origin-form (`/path?query`) or absolute-form (`http://host/path`) only (RFC 9112
    // 3.2): any other form (`GET TOKEN HTTP/1.1`) would reach the token lookup in a shape
    // the log's token redaction does not know, and no client of ours sends one.
    let target = req.path.unwrap_or_default();
    let absolute = ["http://", "https://", "ws://", "wss://"]
        .iter()
        .any(|s| target.get(..s.len()).is_some_and(|t| t.eq_ignore_ascii_case(s)));
    if !target.starts_with('/') && !absolute {
        return Err(HeadError::Malformed("the request target is neither /path nor http://host/path"));
    }
    let request = Request {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        version: req.version.unwrap_or(1),
        headers: req.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
    };
    Ok(Some((request, len)))
}

fn parse_error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in the request line",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// Client text as a log line may show it: control characters (CR, LF, ESC, NUL, ...),
/// which could end the line or forge another, escaped as Rust escapes them (`\n`,
/// `\u{1b}`); everything else as it is. Used after any decoding.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// A response the proxy writes itself: a status, a few headers and a short text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Response {
    /// An error response with a plain-text body (a newline is added).
    pub fn error(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        body.push('\n');
        Self { status, headers: Vec::new(), body }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The response as bytes. Error responses close the connection.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason_phrase(self.status));
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.status != 101 {
            out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
            out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        if self.status != 101 {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }

    pub async fn write_to<W: AsyncWrite + Unpin>(&self, io: &mut W) -> std::io::Result<()> {
        io.write_all(&self.to_bytes()).await?;
        io.flush().await
    }
}

/// The reason phrase of a status code (RFC 9110's), for every status the proxy, its web
/// server or a plugin's answer can carry; one table so that a code never goes out with
/// another's phrase.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        511 => "Network Authentication Required",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_head_and_keeps_the_rest() {
        let raw = b"GET /websockify?token=a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\r\n\x82\x80";
        let (req, len) = parse_head(raw, HeadLimits::default()).unwrap().unwrap();
        assert_eq!(&raw[len..], b"\x82\x80");
        assert_eq!((req.method.as_str(), req.target.as_str(), req.version), ("GET", "/websockify?token=a", 1));
        assert_eq!(req.header("host"), Some("x"));
        assert!(req.has_token("connection", "upgrade"));
        assert!(!req.has_token("connection", "close"));
    }

    #[test]
    fn partial_and_malformed_heads() {
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n", HeadLimits::default()).unwrap().is_none());
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", HeadLimits::default()),
            Err(HeadError::Malformed(_))
        ));
        let limits = HeadLimits { max_headers: 2, ..HeadLimits::default() };
        let err = parse_head(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n", limits).unwrap_err();
        assert_eq!(err.status(), Some(431));
    }

    #[test]
    fn tokens_split_over_repeated_headers() {
        let raw = b"GET / HTTP/1.1\r\nSec-WebSocket-Protocol: , base64 ,binary\r\nsec-websocket-protocol: foo\r\n\r\n";
        let (req, _) = parse_head(raw, HeadLimits::default()).unwrap().unwrap();
        assert_eq!(req.header_tokens("Sec-WebSocket-Protocol").collect::<Vec<_>>(), ["base64", "binary", "foo"]);
    }

    #[tokio::test]
    async fn head_size_and_time_bounds() {
        let limits = HeadLimits { max_bytes: 64, max_headers: 8, timeout: Duration::from_millis(50) };
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100));
        let err = read_head(&mut big.as_bytes(), &mut BytesMut::new(), limits).await.unwrap_err();
        assert!(matches!(err, HeadError::TooLarge(64)), "{err}");
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let err = read_head(&mut server, &mut BytesMut::new(), limits).await.unwrap_err();
        assert_eq!(err.status(), Some(408));
        drop(client);
        let err = read_head(&mut &b"GET / HT"[..], &mut BytesMut::new(), limits).await.unwrap_err();
        assert!(matches!(err, HeadError::Closed));
    }

    #[test]
    fn error_response_bytes() {
        let r = Response::error(426, "Unsupported WebSocket version").with_header("Sec-WebSocket-Version", "13");
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(text.ends_with("Content-Length: 30\r\nConnection: close\r\n\r\nUnsupported WebSocket version\n"));
    }
}
