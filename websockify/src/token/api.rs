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
use crate::config::Target;

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
    tls: bool,
    host: String,
    port: u16,
    format: ApiFormat,
    connector: Option<TlsConnector>,
}

impl TokenApi {
    pub fn new(source: &str, format: ApiFormat) -> Result<Self, TokenError> {
        let bad = |why: &str| TokenError::Config(format!("token API URL {source:?}: {why}"));
        let (tls, rest) = if let Some(r) = source.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = source.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        if !source.contains("%s") {
            return Err(bad("must contain %s where the token goes"));
        }
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h.trim_matches(['[', ']']).to_owned(), p.parse().map_err(|_| bad("invalid port"))?)
            }
            _ => (authority.trim_matches(['[', ']']).to_owned(), default_port),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let connector = tls.then(|| crate::tls::connector(None)).transpose().map_err(|e| bad(&e.to_string()))?;
        Ok(Self { template: source.to_owned(), tls, host, port, format, connector })
    }

    async fn get(&self, token: &str) -> Result<Option<String>, TokenError> {
        let encoded = percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC).to_string();
        let url = self.template.replacen("%s", &encoded, 1);
        let scheme_len = if self.tls { "https://".len() } else { "http://".len() };
        let path = url[scheme_len..].find('/').map_or("/".to_owned(), |i| url[scheme_len + i..].to_owned());
        let host_header = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {host_header}\r\nUser-Agent: websockify-rs\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let unavailable = |e: std::io::Error| TokenError::Unavailable(format!("{}:{}: {e}", self.host, self.port));
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(unavailable)?;
        let mut response = Vec::new();
        match &self.connector {
            Some(connector) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| TokenError::Config(e.to_string()))?;
                let mut tls = connector.connect(name, tcp).await.map_err(unavailable)?;
                tls.write_all(request.as_bytes()).await.map_err(unavailable)?;
                read_bounded(&mut tls, &mut response).await.map_err(unavailable)?;
            }
            None => {
                let mut tcp = tcp;
                tcp.write_all(request.as_bytes()).await.map_err(unavailable)?;
                read_bounded(&mut tcp, &mut response).await.map_err(unavailable)?;
            }
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

/// The body of a 2xx answer; `None` for any other status.
fn parse_response(raw: &[u8]) -> Result<Option<String>, TokenError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return Err(TokenError::Unavailable("malformed HTTP answer from the token API".into())),
    };
    let status = resp.code.unwrap_or(0);
    let declared = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Content-Length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| raw.len() - len < n) {
        return Err(TokenError::Unavailable("token API answer cut short".into()));
    }
    if !(200..300).contains(&status) {
        tracing::debug!("token API answered {status}");
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&raw[len..]).into_owned()))
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
        assert_eq!((a.host.as_str(), a.port, a.tls), ("127.0.0.1", 8080, false));
        let a = TokenApi::new("http://[::1]/t/%s", ApiFormat::Json).unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 80));
        assert!(TokenApi::new("ftp://x/%s", ApiFormat::Plain).is_err());
        assert!(TokenApi::new("http://x/no-placeholder", ApiFormat::Plain).is_err());
    }

    #[test]
    fn answers() {
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nh:1").unwrap().as_deref(),
            Some("h:1")
        );
        assert_eq!(parse_response(b"HTTP/1.1 404 Not Found\r\n\r\nno").unwrap(), None);
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
