//! `BaseTokenAPI` and `JSONTokenApi`: an HTTP(S) GET on a URL with `%s` replaced by the
//! token. 2xx with a body `host:port` (or JSON `{"host": ..., "port": ...}`) is the target;
//! any other status means an unknown token.
//!
//! The client is a few lines over our own stream types rather than a general HTTP crate:
//! one GET per lookup, HTTP/1.0 so that the answer is never chunked, a bounded body and
//! one deadline for everything.

use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{BoxFuture, TokenError, TokenResolver, parse_target};
use crate::outbound::Target;

/// Time allowed for a whole lookup (connect, TLS, request, answer).
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read.
const MAX_RESPONSE: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiFormat {
    /// `BaseTokenAPI`: the body is `host:port`.
    Plain,
    /// `JSONTokenApi`: the body is `{"host": "...", "port": N or "N"}`.
    Json,
}

pub struct TokenApi {
    template: String,
    /// The template's scheme, host and port (for the settings summary and the tests).
    base: Url,
    format: ApiFormat,
    /// The client side of TLS, made when the first `https://` URL is requested (the
    /// template's, or a redirect's).
    connector: std::sync::OnceLock<TlsConnector>,
}

/// Redirects followed per lookup (301, 302, 303, 307, 308), as an HTTP client library
/// would; each to the same scheme or from `http` up to `https`, never down.
const MAX_REDIRECTS: usize = 5;

/// What a token may contain unencoded in the API's URL: RFC 3986's unreserved characters.
const TOKEN_ENCODE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// An `http://` or `https://` URL, split as a request needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Url {
    tls: bool,
    host: String,
    port: u16,
    /// The path and query (`/` when the URL has none).
    path: String,
}

impl Url {
    fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("must start with http:// or https://".into());
        };
        let cut = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(cut);
        let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h.trim_matches(['[', ']']).to_owned(), p.parse().map_err(|_| "invalid port".to_owned())?)
            }
            _ => (authority.trim_matches(['[', ']']).to_owned(), default_port),
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err("white space or control characters in the path".into());
        }
        Ok(Self { tls, host, port, path })
    }

    /// Where a redirect's `Location` points, relative to this URL.
    fn join(&self, location: &str) -> Result<Self, String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Self::parse(location);
        }
        if location.starts_with("//") {
            return Self::parse(&format!("{}:{location}", if self.tls { "https" } else { "http" }));
        }
        let path = if location.starts_with('/') {
            location.to_owned()
        } else {
            let dir = self.path.split('?').next().unwrap_or("/");
            format!("{}{location}", &dir[..dir.rfind('/').map_or(0, |i| i + 1)])
        };
        Self::parse(&format!("{}://{}{path}", if self.tls { "https" } else { "http" }, self.authority()))
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", if self.tls { "https" } else { "http" }, self.authority(), self.path)
    }
}

/// An answer of the token API.
enum Answer {
    /// A 2xx answer's body.
    Body(String),
    /// A redirect to this `Location`.
    Redirect(String),
    /// Any other status: the token is unknown.
    Other(u16),
}

impl TokenApi {
    pub fn new(source: &str, format: ApiFormat) -> Result<Self, TokenError> {
        let bad = |why: &str| TokenError::Config(format!("token API URL {source:?}: {why}"));
        if !source.contains("%s") {
            return Err(bad("must contain %s where the token goes"));
        }
        let base = Url::parse(&source.replacen("%s", "token", 1)).map_err(|e| bad(&e))?;
        let api = Self { template: source.to_owned(), base, format, connector: std::sync::OnceLock::new() };
        if api.base.tls {
            api.connector().map_err(|e| bad(&e.to_string()))?;
        }
        Ok(api)
    }

    fn connector(&self) -> Result<&TlsConnector, TokenError> {
        if let Some(c) = self.connector.get() {
            return Ok(c);
        }
        let made = crate::tls::connector(None).map_err(|e| TokenError::Config(e.to_string()))?;
        Ok(self.connector.get_or_init(|| made))
    }

    /// The token goes into `%s` percent-encoded, RFC 3986's unreserved characters as they
    /// are (`a.b-c_d~e` arrives as written), so that the API sees what it would from any
    /// HTTP client library; redirects are followed ([`MAX_REDIRECTS`]).
    async fn get(&self, token: &str) -> Result<Option<String>, TokenError> {
        let encoded = percent_encoding::utf8_percent_encode(token, TOKEN_ENCODE).to_string();
        let mut url = Url::parse(&self.template.replacen("%s", &encoded, 1))
            .map_err(|e| TokenError::Config(format!("token API URL: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let location = match self.fetch(&url).await? {
                Answer::Body(body) => return Ok(Some(body)),
                Answer::Other(status) => {
                    tracing::debug!("token API answered {status}");
                    return Ok(None);
                }
                Answer::Redirect(location) => location,
            };
            let next = url
                .join(&location)
                .map_err(|e| TokenError::Unavailable(format!("token API redirect to {location:?}: {e}")))?;
            if url.tls && !next.tls {
                return Err(TokenError::Unavailable(format!(
                    "token API redirect from https:// down to http:// refused ({})",
                    next.authority()
                )));
            }
            tracing::debug!("token API redirects to {}", next.authority());
            url = next;
        }
        Err(TokenError::Unavailable(format!("token API: more than {MAX_REDIRECTS} redirects")))
    }

    async fn fetch(&self, url: &Url) -> Result<Answer, TokenError> {
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: websockify-rs\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            url.path,
            url.authority()
        );
        let unavailable = |e: std::io::Error| TokenError::Unavailable(format!("{}: {e}", url.authority()));
        let tcp = TcpStream::connect((url.host.as_str(), url.port)).await.map_err(unavailable)?;
        let mut response = Vec::new();
        if url.tls {
            let name = ServerName::try_from(url.host.clone()).map_err(|e| TokenError::Config(e.to_string()))?;
            let mut tls = self.connector()?.connect(name, tcp).await.map_err(unavailable)?;
            tls.write_all(request.as_bytes()).await.map_err(unavailable)?;
            read_bounded(&mut tls, &mut response).await.map_err(unavailable)?;
        } else {
            let mut tcp = tcp;
            tcp.write_all(request.as_bytes()).await.map_err(unavailable)?;
            read_bounded(&mut tcp, &mut response).await.map_err(unavailable)?;
        }
        parse_response(&response)
    }
}

async fn read_bounded<R: tokio::io::AsyncRead + Unpin>(io: &mut R, out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut limited = io.take(MAX_RESPONSE as u64 + 1);
    match limited.read_to_end(out).await {
        Ok(_) => {}
        // Many servers end HTTPS answers without TLS close_notify; the answer is still
        // checked against its Content-Length, so a cut-off body is not taken as whole.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    if out.len() > MAX_RESPONSE {
        return Err(std::io::Error::other(format!("answer larger than {MAX_RESPONSE} bytes")));
    }
    Ok(())
}

/// What an answer says: a 2xx answer's body, a redirect's `Location`, or another status.
fn parse_response(raw: &[u8]) -> Result<Answer, TokenError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return Err(TokenError::Unavailable("malformed HTTP answer from the token API".into())),
    };
    let status = resp.code.unwrap_or(0);
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    if matches!(status, 301 | 302 | 303 | 307 | 308)
        && let Some(location) = header("Location")
    {
        return Ok(Answer::Redirect(location.to_owned()));
    }
    let declared = header("Content-Length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| raw.len() - len < n) {
        return Err(TokenError::Unavailable("token API answer cut short".into()));
    }
    if !(200..300).contains(&status) {
        return Ok(Answer::Other(status));
    }
    Ok(Answer::Body(String::from_utf8_lossy(&raw[len..]).into_owned()))
}

/// The target in an answer body.
fn parse_body(body: &str, format: ApiFormat) -> Result<Target, TokenError> {
    match format {
        ApiFormat::Plain => parse_target(body),
        ApiFormat::Json => {
            #[derive(serde::Deserialize)]
            struct Answer {
                host: String,
                port: serde_json::Value,
            }
            let a: Answer = serde_json::from_str(body).map_err(|e| TokenError::BadTarget(format!("JSON: {e}")))?;
            // Upstream's convention for a UNIX socket: host "unix_socket", the path as port.
            if let (true, serde_json::Value::String(path)) = (a.host == "unix_socket", &a.port) {
                return Ok(Target::Unix(path.into()));
            }
            let port = match &a.port {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            let port = port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0);
            let port = port.ok_or_else(|| TokenError::BadTarget(format!("invalid port {}", a.port)))?;
            Ok(Target::Tcp { host: a.host.trim_matches(['[', ']']).to_owned(), port })
        }
    }
}

impl TokenResolver for TokenApi {
    fn lookup<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Target>, TokenError>> {
        Box::pin(async move {
            let body =
                tokio::time::timeout(TIMEOUT, self.get(token)).await.map_err(|_| TokenError::Timeout(TIMEOUT))??;
            body.map(|b| parse_body(&b, self.format)).transpose()
        })
    }

    fn describe(&self) -> String {
        let kind = if self.format == ApiFormat::Json { "JSONTokenApi" } else { "BaseTokenAPI" };
        format!("{kind} {}", self.template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let a = TokenApi::new("http://127.0.0.1:8080/lookup?t=%s", ApiFormat::Plain).unwrap();
        assert_eq!((a.base.host.as_str(), a.base.port, a.base.tls), ("127.0.0.1", 8080, false));
        let a = TokenApi::new("http://[::1]/t/%s", ApiFormat::Json).unwrap();
        assert_eq!((a.base.host.as_str(), a.base.port), ("::1", 80));
        let u = Url::parse("http://api:8080/v1/lookup/tok?x=1").unwrap();
        assert_eq!(u.join("/other").unwrap().to_string(), "http://api:8080/other");
        assert_eq!(u.join("next").unwrap().to_string(), "http://api:8080/v1/lookup/next");
        assert_eq!(u.join("https://b/x").unwrap().to_string(), "https://b:443/x");
        assert_eq!(u.join("//c:81/y").unwrap().to_string(), "http://c:81/y");
        let encoded = percent_encoding::utf8_percent_encode("a.b-c_d~e/f g%", TOKEN_ENCODE).to_string();
        assert_eq!(encoded, "a.b-c_d~e%2Ff%20g%25");
        assert!(TokenApi::new("ftp://x/%s", ApiFormat::Plain).is_err());
        assert!(TokenApi::new("http://x/no-placeholder", ApiFormat::Plain).is_err());
    }

    #[test]
    fn answers() {
        let body = |raw: &[u8]| match parse_response(raw).unwrap() {
            Answer::Body(b) => Some(b),
            Answer::Redirect(l) => Some(format!("-> {l}")),
            Answer::Other(_) => None,
        };
        assert_eq!(body(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nh:1").as_deref(), Some("h:1"));
        assert_eq!(body(b"HTTP/1.1 404 Not Found\r\n\r\nno"), None);
        assert_eq!(body(b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n").as_deref(), Some("-> /x"));
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nh:1").is_err(), "cut short");
        let tcp = |h: &str, p| Target::Tcp { host: h.into(), port: p };
        assert_eq!(parse_body("vnc:5900\n", ApiFormat::Plain).unwrap(), tcp("vnc", 5900));
        assert_eq!(parse_body(r#"{"host":"vnc","port":5901}"#, ApiFormat::Json).unwrap(), tcp("vnc", 5901));
        assert_eq!(parse_body(r#"{"host":"::1","port":"5902"}"#, ApiFormat::Json).unwrap(), tcp("::1", 5902));
        assert!(parse_body(r#"{"host":"vnc"}"#, ApiFormat::Json).is_err());
        assert_eq!(
            parse_body(r#"{"host":"unix_socket","port":"/run/a.sock"}"#, ApiFormat::Json).unwrap(),
            Target::Unix("/run/a.sock".into())
        );
        assert_eq!(
            parse_body("unix_socket:/run/b.sock", ApiFormat::Plain).unwrap(),
            Target::Unix("/run/b.sock".into())
        );
        assert!(parse_body(r#"{"host":"vnc","port":70000}"#, ApiFormat::Json).is_err());
    }
}
